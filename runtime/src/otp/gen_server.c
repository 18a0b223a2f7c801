/*
 * gen_server.c: the generic server loop.
 *
 * The server's control state (struct gs) is rt_alloc'd in the server
 * process, registered as its user pointer, and survives hibernation: after
 * rt_hibernate the loop restarts from it on a fresh stack. Only the server
 * process touches it.
 *
 * Loop order, as OTP's: a pending {continue,C} runs before any message;
 * then, unless suspended, the next message in arrival order (with the
 * callback's timeout if any); while suspended only system messages and the
 * parent's EXIT are received, everything else stays queued.
 *
 * Hibernation is the last callback's choice and lasts until the next
 * callback: a system message that wakes the server is answered and the
 * server hibernates again (OTP's loop keeps `hibernate` as its timeout).
 *
 * A callback the ops table lacks is OTP's call to an unexported function:
 * the server exits with reason `undef` (terminate runs, as for any crash
 * in a callback), and the caller of a call gets that exit.
 *
 * Terminating for a reason other than normal/shutdown, the server first
 * formats its state through format_status into its crash report (OTP's
 * "Generic server terminating" report): before terminate, which may free
 * the state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "otp_int.h"
#include "rt/gen_server.h"

struct gs {
    const struct rt_gen_server_ops *ops;
    void *state;
    struct rt__sys sys;
    int64_t timeout; /* from the last result: RT_INFINITY = none */
    bool hibernate;  /* from the last result; kept across system messages */
    int64_t hibernate_after;
    struct rt_msg *cont;
    struct rt_msg *cur; /* the message a callback is handling, until freed or taken */
};

static _Noreturn void gs_loop(struct gs *g, bool woken);

/* ---- result helpers ---------------------------------------------------------- */

void rt_gs_ok(struct rt_gs_result *r)
{
    r->kind = RT_GS_OK;
}

void rt_gs_noreply(struct rt_gs_result *r)
{
    r->kind = RT_GS_NOREPLY;
}

void rt_gs_reply(struct rt_gs_result *r, struct rt_msg *reply)
{
    r->kind = RT_GS_REPLY;
    r->reply = reply;
}

void rt_gs_stop(struct rt_gs_result *r, rt_atom reason)
{
    r->kind = RT_GS_STOP;
    r->reason = reason;
}

void rt_gs_stop_reply(struct rt_gs_result *r, rt_atom reason, struct rt_msg *reply)
{
    r->kind = RT_GS_STOP;
    r->reason = reason;
    r->reply = reply;
}

void rt_gs_ignore(struct rt_gs_result *r)
{
    r->kind = RT_GS_IGNORE;
}

void rt_gs_error(struct rt_gs_result *r, rt_atom reason)
{
    r->kind = RT_GS_ERROR;
    r->reason = reason;
}

void rt_gs_timeout(struct rt_gs_result *r, int64_t ms)
{
    r->timeout = ms;
}

void rt_gs_hibernate(struct rt_gs_result *r)
{
    r->hibernate = true;
}

void rt_gs_continue(struct rt_gs_result *r, struct rt_msg *cont)
{
    if (!cont)
        cont = rt_msg_new(0, 0);
    rt_msg_free(r->cont);
    r->cont = cont;
}

struct rt_msg *rt_gs_take(struct rt_gs_result *r)
{
    struct rt_msg *m = r->msg;
    struct gs *g = rt_get_user();
    r->msg = NULL;
    if (g && g->cur == m)
        g->cur = NULL;
    return m;
}

/* Deferred at start: a callback that exits (rt_exit, or a kill while it
 * runs) must not leak the message it was handling or a pending continue. */
static void gs_cleanup(void *p)
{
    struct gs *g = p;
    rt_msg_free(g->cur);
    rt_msg_free(g->cont);
    g->cur = g->cont = NULL;
}

/* ---- termination --------------------------------------------------------------- */

static const char *module_name(const struct gs *g)
{
    return g->ops->name ? g->ops->name : "gen_server";
}

static size_t gs_state_text(const void *self, char *buf, size_t size)
{
    const struct gs *g = self;
    return rt__format_state(g->ops->format_status, g->state, module_name(g), buf, size);
}

static _Noreturn void gs_terminate(struct gs *g, rt_atom reason, struct rt_msg *reply,
                                   const struct rt_gs_from *from)
{
    rt__sys_event(&g->sys, RT_SYS_EV_TERMINATE, 0, 0, 0);
    rt_msg_free(g->cont);
    g->cont = NULL;
    /* Formatted now: terminate may free the state. OTP's report shows the
     * state terminate was called with, through format_status. */
    rt__crash_state(reason, gs_state_text, g);
    if (g->ops->terminate)
        g->ops->terminate(reason, g->state);
    /* {stop,Reason,Reply,S}: the reply goes after terminate has returned. */
    if (from)
        rt__reply(from->pid, from->alias, reply);
    else
        rt_msg_free(reply);
    rt_exit(reason);
}

/* ---- sys hooks ---------------------------------------------------------------- */

static void h_get_state(void *self, struct rt_sys_state *out)
{
    struct gs *g = self;
    memset(out, 0, sizeof *out);
    out->state = g->state;
}

static int h_replace_state(void *self, rt_sys_replace_fn fn, void *arg)
{
    struct gs *g = self;
    void *n = NULL;
    int st = 0;
    if (!fn || fn(g->state, &st, arg, &n) < 0)
        return -ECANCELED;
    g->state = n;
    return 0;
}

static void h_status(void *self, struct rt_sys_status *out)
{
    struct gs *g = self;
    snprintf(out->module, sizeof out->module, "%s", module_name(g));
    gs_state_text(g, out->formatted, sizeof out->formatted);
}

static void h_terminate(void *self, rt_atom reason)
{
    gs_terminate(self, reason, NULL, NULL);
}

static int h_change_code(void *self, const char *vsn, const void *extra)
{
    struct gs *g = self;
    void *n = NULL;
    if (!g->ops->code_change)
        return -ENOSYS; /* OTP: {error, {'EXIT', {undef, ...}}}, the server runs on */
    int rc = g->ops->code_change(vsn, g->state, extra, &n);
    if (rc < 0)
        return rc;
    g->state = n;
    return 0;
}

static const struct rt__sys_hooks hooks = {
    .get_state = h_get_state,
    .replace_state = h_replace_state,
    .status = h_status,
    .terminate = h_terminate,
    .change_code = h_change_code,
};

/* ---- loop ------------------------------------------------------------------------ */

static void result_init(struct gs *g, struct rt_gs_result *r, struct rt_msg *m, enum rt_gs_kind k)
{
    memset(r, 0, sizeof *r);
    r->kind = k;
    r->state = g->state;
    r->timeout = RT_INFINITY;
    r->msg = m;
    g->cur = m;
}

/* Applies a callback's result; `from` is set for handle_call. */
static void apply(struct gs *g, struct rt_gs_result *r, const struct rt_gs_from *from)
{
    rt_msg_free(r->msg);
    r->msg = NULL;
    g->cur = NULL;
    g->state = r->state;
    switch (r->kind) {
    case RT_GS_REPLY:
        if (!from) {
            rt_msg_free(r->reply);
            rt_msg_free(r->cont);
            gs_terminate(g, rt_atom_intern("bad_return_value"), NULL, NULL);
        }
        rt__sys_event(&g->sys, RT_SYS_EV_OUT, r->reply ? r->reply->type : 0, from->pid, 0);
        rt__reply(from->pid, from->alias, r->reply);
        break;
    case RT_GS_OK:
    case RT_GS_NOREPLY:
        rt__sys_event(&g->sys, RT_SYS_EV_NOREPLY, 0, 0, 0);
        break;
    case RT_GS_STOP:
        rt_msg_free(r->cont);
        gs_terminate(g, r->reason, r->reply, r->reply ? from : NULL);
    default:
        rt_msg_free(r->reply);
        rt_msg_free(r->cont);
        gs_terminate(g, rt_atom_intern("bad_return_value"), NULL, NULL);
    }
    g->timeout = r->timeout;
    g->hibernate = r->hibernate;
    g->cont = r->cont;
}

/* The callback is missing: the message is the loop's, freed before the
 * exit (no callback holds it), then the server exits `undef`. */
static _Noreturn void undef(struct gs *g, struct rt_msg *m)
{
    rt_msg_free(m);
    g->cur = NULL;
    gs_terminate(g, rt_atom_intern("undef"), NULL, NULL);
}

static void dispatch(struct gs *g, struct rt_msg *m)
{
    struct rt_gs_result r;
    uint32_t t = m->type;
    if (t == RT_MSG_SYS) {
        rt__sys_handle(&g->sys, &hooks, g, m);
        return;
    }
    if (t == RT_MSG_EXIT && m->from == g->sys.parent && g->sys.parent) {
        rt_atom why = (rt_atom)m->u64;
        rt_msg_free(m);
        gs_terminate(g, why, NULL, NULL);
    }
    if (t < RT_MSG_SYSTEM && (t & RT_GS_CALL_BIT)) {
        struct rt_gs_from from = {.pid = m->from, .alias = m->ref};
        m->type = t & ~(RT_GS_CALL_BIT | RT_GS_CAST_BIT);
        rt__sys_event(&g->sys, RT_SYS_EV_IN, m->type, m->from, 0);
        if (!g->ops->handle_call)
            undef(g, m);
        result_init(g, &r, m, RT_GS_NOREPLY);
        g->ops->handle_call(m, &from, g->state, &r);
        apply(g, &r, &from);
        return;
    }
    if (t < RT_MSG_SYSTEM && (t & RT_GS_CAST_BIT)) {
        m->type = t & ~RT_GS_CAST_BIT;
        rt__sys_event(&g->sys, RT_SYS_EV_IN, m->type, m->from, 0);
        if (!g->ops->handle_cast)
            undef(g, m);
        result_init(g, &r, m, RT_GS_NOREPLY);
        g->ops->handle_cast(m, g->state, &r);
        apply(g, &r, NULL);
        return;
    }
    rt__sys_event(&g->sys, RT_SYS_EV_IN, t, m->from, 0);
    if (!g->ops->handle_info) {
        rt_log(RT_LOG_WARNING, "%s %#llx: undefined handle_info, message type %#x dropped",
               module_name(g), (unsigned long long)rt_self(), t);
        rt_msg_free(m);
        return;
    }
    result_init(g, &r, m, RT_GS_NOREPLY);
    g->ops->handle_info(m, g->state, &r);
    apply(g, &r, NULL);
}

static void wake(void *p)
{
    gs_loop(p, true);
}

static _Noreturn void gs_loop(struct gs *g, bool woken)
{
    for (;;) {
        if (g->cont) {
            struct rt_gs_result r;
            struct rt_msg *c = g->cont;
            g->cont = NULL;
            if (!g->ops->handle_continue)
                undef(g, c);
            result_init(g, &r, c, RT_GS_NOREPLY);
            g->ops->handle_continue(c, g->state, &r);
            apply(g, &r, NULL);
            continue;
        }
        /* Just woken: take the message that woke us first. Suspended, the
         * queue may hold messages that wait for resume; they would wake a
         * hibernated process at once, so it stays awake then. */
        if (g->hibernate && !woken && (!g->sys.suspended || rt_mailbox_len() == 0))
            rt_hibernate(wake, g);
        woken = false;
        struct rt_msg *m;
        if (g->sys.suspended) {
            m = rt_receive_match(rt__sys_match_suspended, &g->sys, RT_INFINITY);
            if (m)
                dispatch(g, m);
            continue;
        }
        int64_t t = g->timeout;
        bool idle_hibernate = false;
        if (t < 0 && g->hibernate_after > 0) {
            t = g->hibernate_after;
            idle_hibernate = true;
        }
        m = rt_receive(t);
        if (!m) {
            if (idle_hibernate) {
                g->hibernate = true;
                continue;
            }
            g->timeout = RT_INFINITY;
            m = rt_msg_new(RT_MSG_GS_TIMEOUT, 0);
            if (!m)
                continue;
            m->from = rt_self();
        } else if (m->type != RT_MSG_SYS) {
            /* Any message cancels the timeout; a system message restarts it. */
            g->timeout = RT_INFINITY;
        }
        dispatch(g, m);
    }
}

struct gs_start {
    const struct rt_gen_server_ops *ops;
    void *arg;
};

static void gs_entry(void *arg, const struct rt_proc_starter *st)
{
    struct gs_start s = *(struct gs_start *)arg;
    struct gs *g = rt_calloc(1, sizeof *g);
    if (!g)
        rt_proc_init_fail(st, RT_SYSTEM_LIMIT, RT_SYSTEM_LIMIT);
    rt_set_kind(RT_KIND_SERVER);
    rt_set_user(g);
    rt_defer(gs_cleanup, g);
    g->ops = s.ops;
    g->timeout = RT_INFINITY;
    g->hibernate_after = st->opts ? st->opts->hibernate_after : 0;
    rt__sys_init(&g->sys, "gen_server", st->opts);
    struct rt_gs_result r;
    result_init(g, &r, NULL, RT_GS_OK);
    s.ops->init(s.arg, &r);
    switch (r.kind) {
    case RT_GS_OK:
    case RT_GS_NOREPLY:
        g->state = r.state;
        g->timeout = r.timeout;
        g->hibernate = r.hibernate;
        g->cont = r.cont;
        rt_msg_free(r.reply);
        rt_proc_init_ack(st);
        gs_loop(g, false);
    case RT_GS_IGNORE:
        rt_msg_free(r.cont);
        rt_proc_init_ignore(st);
        rt_exit(RT_NORMAL);
    case RT_GS_STOP:
        rt_msg_free(r.cont);
        rt_proc_init_fail(st, r.reason, r.reason);
    case RT_GS_ERROR:
        rt_msg_free(r.cont);
        rt_proc_init_fail(st, r.reason, RT_NORMAL);
    default: {
        rt_atom bad = rt_atom_intern("bad_return_value");
        rt_msg_free(r.cont);
        rt_proc_init_fail(st, bad, bad);
    }
    }
}

static int start(const struct rt_gen_server_ops *ops, void *arg, const struct rt_start_opts *opts,
                 bool link, rt_pid *out, rt_atom *reason)
{
    struct gs_start s = {.ops = ops, .arg = arg};
    struct rt_start_opts o = {0};
    if (!ops || !ops->init)
        return -EINVAL;
    if (opts)
        o = *opts;
    if (!o.initial_call)
        o.initial_call = ops->name ? ops->name : "gen_server";
    return link ? rt_proc_start_link(gs_entry, &s, &o, out, reason)
                : rt_proc_start(gs_entry, &s, &o, out, reason);
}

int rt_gen_server_start_link(const struct rt_gen_server_ops *ops, void *arg,
                             const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason)
{
    return start(ops, arg, opts, true, out, reason);
}

int rt_gen_server_start(const struct rt_gen_server_ops *ops, void *arg,
                        const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason)
{
    return start(ops, arg, opts, false, out, reason);
}

/* ---- enter_loop --------------------------------------------------------------------- */

_Noreturn void rt_gen_server_enter_loop(const struct rt_gen_server_ops *ops,
                                        const struct rt_start_opts *opts, void *state,
                                        const struct rt_gs_result *how)
{
    struct rt_msg *cont = how ? how->cont : NULL;
    /* OTP's order: the name first (gen:get_proc_name), then the parent
     * (gen:get_parent). */
    if (opts && opts->name && rt_whereis(opts->name) != rt_self()) {
        rt_msg_free(cont);
        rt_exit(rt_atom_intern("process_not_registered"));
    }
    if (!rt__proc_lib_started()) {
        rt_msg_free(cont);
        rt_exit(rt_atom_intern("process_was_not_started_by_proc_lib"));
    }
    if (!ops) {
        rt_msg_free(cont);
        rt_exit(RT_BADARG);
    }
    struct gs *g = rt_calloc(1, sizeof *g);
    if (!g) {
        rt_msg_free(cont);
        rt_exit(RT_SYSTEM_LIMIT);
    }
    rt_set_kind(RT_KIND_SERVER);
    rt_set_user(g);
    rt_defer(gs_cleanup, g);
    g->ops = ops;
    g->state = state;
    g->timeout = how ? how->timeout : RT_INFINITY;
    g->hibernate = how && how->hibernate;
    g->cont = cont;
    g->hibernate_after = opts ? opts->hibernate_after : 0;
    rt__sys_init(&g->sys, "gen_server", opts);
    gs_loop(g, false);
}

int rt_gen_server_call(rt_pid server, struct rt_msg *req, int64_t timeout_ms, struct rt_msg **reply,
                       rt_atom *reason)
{
    if (!req)
        return -EINVAL;
    if (req->type >= RT_GS_TYPE_LIMIT) {
        rt_msg_free(req);
        return -EINVAL;
    }
    req->type |= RT_GS_CALL_BIT;
    return rt__call(server, req, timeout_ms, reply, reason);
}

int rt_gen_server_call_name(const char *name, struct rt_msg *req, int64_t timeout_ms,
                            struct rt_msg **reply, rt_atom *reason)
{
    rt_pid pid = rt_whereis(name);
    if (!pid) {
        rt_msg_free(req);
        if (reason)
            *reason = RT_NOPROC;
        return -ESRCH;
    }
    return rt_gen_server_call(pid, req, timeout_ms, reply, reason);
}

int rt_gen_server_cast(rt_pid server, struct rt_msg *msg)
{
    if (!msg)
        return 0;
    if (msg->type >= RT_GS_TYPE_LIMIT) {
        rt_msg_free(msg);
        return 0;
    }
    msg->type |= RT_GS_CAST_BIT;
    rt_send(server, msg);
    return 0;
}

int rt_gen_server_cast_name(const char *name, struct rt_msg *msg)
{
    rt_pid pid = rt_whereis(name);
    if (!pid) {
        rt_msg_free(msg);
        return 0;
    }
    return rt_gen_server_cast(pid, msg);
}

int rt_gen_server_reply(const struct rt_gs_from *from, struct rt_msg *reply)
{
    return rt__reply(from->pid, from->alias, reply);
}

int rt_gen_server_stop(rt_pid server, rt_atom reason, int64_t timeout_ms, rt_atom *exit_reason)
{
    return rt_proc_stop(server, reason, timeout_ms, exit_reason);
}
