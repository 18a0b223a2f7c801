/*
 * gen_event.c: the event manager loop and its client side.
 *
 * The manager's control state (struct ge) is rt_alloc'd in the manager
 * process, registered as its user pointer, and survives hibernation; only
 * the manager touches it. Handlers live in one array, newest first (OTP's
 * list, new handlers at its head), so that sys get_state can hand it out
 * as is. Every change to the array happens in the loop, between callbacks:
 * a callback cannot reach its own manager (a call to self fails), so the
 * array never changes under a running callback.
 *
 * Removing a handler always goes through gone(): its terminate runs, a
 * crash is logged, and the process supervising it (add_sup_handler) gets
 * its gen_event_EXIT. The rules follow OTP's gen_event.erl: which
 * terminate argument and which gen_event_EXIT reason each path gives, a
 * swap keeping the handler's place and supervisor, a supervisor's exit
 * removing its handlers before the other handlers see the EXIT.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "otp_int.h"
#include "rt/gen_event.h"

enum ge_op {
    GE_ADD = 1,
    GE_ADD_SUP,
    GE_DELETE,
    GE_SWAP,
    GE_SWAP_SUP,
    GE_CALL,
    GE_SYNC_NOTIFY,
    GE_WHICH,
};

/* A request: args1 at args[0], args2 at args[off2]. `inner` (a call's
 * request, a sync_notify's event) is owned by the request message. */
struct ge_req {
    int op;
    struct rt_ge_handler h1, h2;
    struct rt_msg *inner;
    size_t size1, size2, off2;
    _Alignas(16) unsigned char args[];
};

/* A reply; `inner` (a call's reply, a deleted handler's terminate result)
 * is owned by the reply message. */
struct ge_rep {
    int rc;
    rt_atom reason;
    struct rt_msg *inner;
    size_t count;
    struct rt_ge_handler list[];
};

struct ge {
    struct rt__sys sys;
    struct rt_ge_handler_state *h; /* newest first */
    size_t n, cap;
    bool hibernate; /* from the last handler results; kept across system messages */
    /* Started linked (start_link): the parent's exit ends the manager and
     * its link is never removed. Otherwise the starter is just another
     * process (OTP's nolink start makes the manager its own parent). */
    bool parent_linked;
    int64_t hibernate_after;
    struct rt_msg *cur; /* the message being handled, until freed */
};

static _Noreturn void ge_loop(struct ge *g, bool woken);

/* ---- result helpers ---------------------------------------------------------- */

void rt_ge_ok(struct rt_ge_result *r)
{
    r->kind = RT_GE_OK;
}

void rt_ge_reply(struct rt_ge_result *r, struct rt_msg *reply)
{
    rt_msg_free(r->reply);
    r->reply = reply;
}

void rt_ge_hibernate(struct rt_ge_result *r)
{
    r->hibernate = true;
}

void rt_ge_remove(struct rt_ge_result *r)
{
    r->kind = RT_GE_REMOVE;
}

void rt_ge_error(struct rt_ge_result *r, rt_atom reason)
{
    r->kind = RT_GE_ERROR;
    r->reason = reason;
}

static void *copy_bytes(const void *p, size_t n)
{
    void *c = rt_alloc(n ? n : 1);
    if (c && n)
        memcpy(c, p, n);
    return c;
}

int rt_ge_swap(struct rt_ge_result *r, const void *args1, size_t size1, struct rt_ge_handler to,
               const void *args2, size_t size2)
{
    void *a1 = copy_bytes(args1, size1), *a2 = copy_bytes(args2, size2);
    if (!a1 || !a2) {
        rt_free(a1);
        rt_free(a2);
        return -ENOMEM;
    }
    rt_free(r->swap_args1);
    rt_free(r->swap_args2);
    r->kind = RT_GE_SWAP;
    r->swap_to = to;
    r->swap_args1 = a1;
    r->swap_size1 = size1;
    r->swap_args2 = a2;
    r->swap_size2 = size2;
    return 0;
}

static void result_init(struct rt_ge_result *r, void *state)
{
    memset(r, 0, sizeof *r);
    r->state = state;
}

static void result_done(struct rt_ge_result *r)
{
    rt_msg_free(r->reply);
    rt_free(r->swap_args1);
    rt_free(r->swap_args2);
    r->reply = NULL;
    r->swap_args1 = r->swap_args2 = NULL;
}

/* ---- messages ------------------------------------------------------------------- */

static void req_dtor(struct rt_msg *m)
{
    rt_msg_free(((struct ge_req *)m->data)->inner);
}

static void rep_dtor(struct rt_msg *m)
{
    rt_msg_free(((struct ge_rep *)m->data)->inner);
}

static bool is_req(const struct rt_msg *m)
{
    return m->type == RT_MSG_GEN_EVENT && m->size >= sizeof(struct ge_req);
}

/* Frees a message the loop holds, with what a request owns. */
static void release(struct rt_msg *m)
{
    if (m && is_req(m))
        req_dtor(m);
    rt_msg_free(m);
}

/* Deferred at start: a callback that exits must not leak the message the
 * loop was handling. */
static void ge_cleanup(void *p)
{
    struct ge *g = p;
    release(g->cur);
    g->cur = NULL;
}

static const char *handler_name(struct rt_ge_handler h)
{
    return h.ops && h.ops->name ? h.ops->name : "handler";
}

/* ---- the handler list -------------------------------------------------------------- */

static bool same(struct rt_ge_handler a, struct rt_ge_handler b)
{
    return a.ops == b.ops && a.id == b.id;
}

/* OTP's search: the newest handler installed as h, or -1. */
static long find(const struct ge *g, struct rt_ge_handler h)
{
    for (size_t i = 0; i < g->n; i++)
        if (same(g->h[i].handler, h))
            return (long)i;
    return -1;
}

/* Takes entry i out of the list (OTP's split). */
static struct rt_ge_handler_state take(struct ge *g, size_t i)
{
    struct rt_ge_handler_state e = g->h[i];
    memmove(&g->h[i], &g->h[i + 1], (g->n - i - 1) * sizeof *g->h);
    g->n--;
    return e;
}

/* Puts a handler at the head of the list (capacity checked by the caller). */
static void push(struct ge *g, struct rt_ge_handler_state e)
{
    memmove(&g->h[1], &g->h[0], g->n * sizeof *g->h);
    g->h[0] = e;
    g->n++;
}

static int reserve(struct ge *g)
{
    if (g->n >= RT_GE_MAX_HANDLERS)
        return -ENOSPC;
    if (g->n < g->cap)
        return 0;
    size_t cap = g->cap ? g->cap * 2 : 8;
    if (cap > RT_GE_MAX_HANDLERS)
        cap = RT_GE_MAX_HANDLERS;
    struct rt_ge_handler_state *h = rt_realloc(g->h, cap * sizeof *h);
    if (!h)
        return -ENOMEM;
    g->h = h;
    g->cap = cap;
    return 0;
}

static void log_crash(struct rt_ge_handler h, rt_atom why)
{
    rt_log(RT_LOG_ERROR, "gen_event %#llx: handler %s/%llu crashed: %s",
           (unsigned long long)rt_self(), handler_name(h), (unsigned long long)h.id,
           rt_atom_name(why));
}

static bool clean_exit(rt_atom why)
{
    return why == RT_NORMAL || why == RT_SHUTDOWN || why == rt_atom_intern("swapped");
}

static void tell_sup(rt_pid sup, struct rt_ge_handler h, rt_atom why, struct rt_ge_handler new_h,
                     rt_pid new_sup)
{
    if (!sup)
        return;
    struct rt_ge_exit x = {.handler = h, .reason = why, .new_handler = new_h, .new_sup = new_sup};
    struct rt_msg *m = rt_msg_copy(RT_MSG_GEN_EVENT_EXIT, &x, sizeof x);
    if (m)
        rt_send(sup, m);
}

/* A handler is out of the list: runs its terminate, logs a crash and tells
 * its supervising process why it went (`why`: normal, shutdown, swapped
 * with new_h/new_sup, or the failure). Returns terminate's result. */
static struct rt_msg *gone(struct rt_ge_handler_state e, const struct rt_ge_stop *stop, rt_atom why,
                           struct rt_ge_handler new_h, rt_pid new_sup)
{
    struct rt_msg *res = NULL;
    if (e.handler.ops->terminate)
        res = e.handler.ops->terminate(stop, e.state);
    if (!clean_exit(why))
        log_crash(e.handler, why);
    tell_sup(e.sup, e.handler, why, new_h, new_sup);
    return res;
}

static void gone_free(struct rt_ge_handler_state e, enum rt_ge_stop_kind kind, rt_atom reason,
                      rt_atom why)
{
    struct rt_ge_stop st = {.kind = kind, .reason = reason};
    static const struct rt_ge_handler none;
    rt_msg_free(gone(e, &st, why, none, 0));
}

/* Runs h's init (OTP's server_add_handler) and installs it at the head,
 * supervised by sup (0: none). 0, or -ECANCELED with *reason. */
static int add(struct ge *g, struct rt_ge_handler h, const void *arg, size_t size,
               const struct rt_ge_swap *swap, rt_pid sup, rt_atom *reason)
{
    int rc = reserve(g);
    if (rc < 0)
        return rc;
    if (!h.ops || !h.ops->init) {
        *reason = rt_atom_intern("undef");
        return -ECANCELED;
    }
    struct rt_ge_result r;
    result_init(&r, NULL);
    h.ops->init(size ? arg : NULL, size, swap, &r);
    if (r.kind != RT_GE_OK) {
        *reason = r.kind == RT_GE_ERROR ? r.reason : rt_atom_intern("bad_return_value");
        result_done(&r);
        return -ECANCELED;
    }
    push(g, (struct rt_ge_handler_state){.handler = h, .state = r.state, .sup = sup});
    g->hibernate = r.hibernate;
    result_done(&r);
    return 0;
}

/* A callback of handler i asked for a swap (OTP's do_swap): the old
 * handler terminates with args1 and its new state, the new one takes its
 * place and its supervisor. Returns true if a handler remains at i. */
static bool swap_in_place(struct ge *g, size_t i, struct rt_ge_result *r)
{
    struct rt_ge_handler_state old = g->h[i];
    old.state = r->state;
    struct rt_ge_stop st = {
        .kind = RT_GE_STOP_SWAP, .args = r->swap_args1, .args_size = r->swap_size1};
    struct rt_ge_swap sw = {.found = true};
    sw.term = gone(old, &st, rt_atom_intern("swapped"), r->swap_to, old.sup);
    struct rt_ge_handler to = r->swap_to;
    struct rt_ge_result nr;
    result_init(&nr, NULL);
    if (to.ops && to.ops->init)
        to.ops->init(r->swap_size2 ? r->swap_args2 : NULL, r->swap_size2, &sw, &nr);
    else
        rt_ge_error(&nr, rt_atom_intern("undef"));
    rt_msg_free(sw.term);
    bool ok = nr.kind == RT_GE_OK;
    if (ok) {
        g->h[i] = (struct rt_ge_handler_state){.handler = to, .state = nr.state, .sup = old.sup};
    } else {
        /* The new handler never ran: no terminate, only the report. */
        rt_atom why = nr.kind == RT_GE_ERROR ? nr.reason : rt_atom_intern("bad_return_value");
        log_crash(to, why);
        static const struct rt_ge_handler none;
        tell_sup(old.sup, to, why, none, 0);
        take(g, i);
    }
    result_done(&nr);
    return ok;
}

/* Applies a handle_event/handle_info/handle_call result for handler i
 * (OTP's server_update). Returns true if a handler remains at i. */
static bool update(struct ge *g, size_t i, struct rt_ge_result *r)
{
    switch (r->kind) {
    case RT_GE_OK:
        g->h[i].state = r->state;
        return true;
    case RT_GE_SWAP:
        return swap_in_place(g, i, r);
    case RT_GE_REMOVE: {
        struct rt_ge_handler_state e = take(g, i);
        /* OTP passes the state from before the callback. */
        gone_free(e, RT_GE_STOP_REMOVE, 0, RT_NORMAL);
        return false;
    }
    case RT_GE_ERROR:
    default: {
        struct rt_ge_handler_state e = take(g, i);
        gone_free(e, RT_GE_STOP_ERROR, r->reason, r->reason);
        return false;
    }
    }
}

/* Runs an event (or, with `info`, any other message) through every
 * handler (OTP's server_notify). */
static void notify_all(struct ge *g, const struct rt_msg *m, bool info)
{
    bool hib = false;
    for (size_t i = 0; i < g->n;) {
        const struct rt_ge_handler_ops *ops = g->h[i].handler.ops;
        void (*cb)(const struct rt_msg *, void *, struct rt_ge_result *) =
            info ? ops->handle_info : ops->handle_event;
        struct rt_ge_result r;
        result_init(&r, g->h[i].state);
        if (!cb && info) {
            rt_log(RT_LOG_WARNING,
                   "gen_event %#llx: handler %s has no handle_info, message "
                   "type %#x dropped",
                   (unsigned long long)rt_self(), handler_name(g->h[i].handler), m->type);
            i++;
            continue;
        }
        if (cb)
            cb(m, g->h[i].state, &r);
        else
            rt_ge_error(&r, rt_atom_intern("undef"));
        if (update(g, i, &r)) {
            hib |= r.hibernate;
            i++;
        }
        result_done(&r);
    }
    g->hibernate = hib;
}

/* ---- termination --------------------------------------------------------------- */

/* The manager's state: its handlers, newest first, each as its
 * format_status writes its state. */
static size_t ge_state_text(const void *self, char *buf, size_t size)
{
    const struct ge *g = self;
    int k = snprintf(buf, size, "%zu handlers", g->n);
    size_t used = rt__format_end(buf, size, k < 0 ? 0 : (size_t)k);
    for (size_t i = 0; i < g->n && used + 1 < size; i++) {
        const struct rt_ge_handler_state *e = &g->h[i];
        char one[128];
        rt__format_state(e->handler.ops->format_status, e->state, handler_name(e->handler), one,
                         sizeof one);
        k = snprintf(buf + used, size - used, "%s %s/%llu: %s", i ? ";" : ":",
                     handler_name(e->handler), (unsigned long long)e->handler.id, one);
        used += rt__format_end(buf + used, size - used, k < 0 ? 0 : (size_t)k);
    }
    return used;
}

/* OTP's terminate_server: every handler terminates with `stop`, their
 * supervisors are told `shutdown` and unlinked (they must not die with the
 * manager), the parent stays linked. */
static _Noreturn void terminate_server(struct ge *g, rt_atom reason)
{
    rt__sys_event(&g->sys, RT_SYS_EV_TERMINATE, 0, 0, 0);
    /* Before the handlers' terminate, which may free their states. */
    rt__crash_state(reason, ge_state_text, g);
    while (g->n) {
        struct rt_ge_handler_state e = take(g, 0);
        gone_free(e, RT_GE_STOP_MANAGER, 0, RT_SHUTDOWN);
        if (e.sup && !(g->parent_linked && e.sup == g->sys.parent))
            rt_unlink(e.sup);
    }
    rt_exit(reason);
}

/* A linked process exited: the handlers it supervised go first, then every
 * handler sees the EXIT (OTP's handle_exit). */
static void handle_exit(struct ge *g, struct rt_msg *m)
{
    rt_atom why = (rt_atom)m->u64;
    for (size_t i = 0; i < g->n;) {
        if (g->h[i].sup != m->from) {
            i++;
            continue;
        }
        struct rt_ge_handler_state e = take(g, i);
        gone_free(e, RT_GE_STOP_SUPERVISOR, why, RT_SHUTDOWN);
    }
    notify_all(g, m, true);
    g->hibernate = false;
}

/* ---- requests ---------------------------------------------------------------------- */

static void reply(const struct rt_msg *req, int rc, rt_atom reason, struct rt_msg *inner,
                  const struct ge *list)
{
    size_t n = list ? list->n : 0;
    struct rt_msg *m =
        rt_msg_new(RT_MSG_GEN_EVENT, sizeof(struct ge_rep) + n * sizeof(struct rt_ge_handler));
    if (!m) {
        rt_msg_free(inner);
        return;
    }
    struct ge_rep *p = (struct ge_rep *)m->data;
    p->rc = rc;
    p->reason = reason;
    rt_msg_detach(inner); /* passed by pointer: the caller's once sent */
    p->inner = inner;
    p->count = n;
    for (size_t i = 0; i < n; i++)
        p->list[i] = list->h[i].handler;
    m->dtor = rep_dtor;
    rt__reply(req->from, req->ref, m);
}

static void do_call(struct ge *g, const struct rt_msg *m, const struct ge_req *q)
{
    long i = find(g, q->h1);
    if (i < 0) {
        reply(m, -ENOENT, 0, NULL, NULL);
        return;
    }
    const struct rt_ge_handler_ops *ops = g->h[i].handler.ops;
    struct rt_ge_result r;
    result_init(&r, g->h[i].state);
    if (ops->handle_call && q->inner)
        ops->handle_call(q->inner, g->h[i].state, &r);
    else
        rt_ge_error(&r, ops->handle_call ? rt_atom_intern("badarg") : rt_atom_intern("undef"));
    enum rt_ge_kind kind = r.kind;
    rt_atom why = r.reason;
    struct rt_msg *rep = r.reply;
    r.reply = NULL;
    bool kept = update(g, (size_t)i, &r);
    g->hibernate = kept && r.hibernate;
    result_done(&r);
    if (kind == RT_GE_ERROR) {
        rt_msg_free(rep);
        reply(m, -ECANCELED, why, NULL, NULL);
        return;
    }
    reply(m, 0, 0, rep, NULL);
}

/* OTP's server_swap_handler: `old` terminates (if installed), `to` is
 * added with what it returned, supervised by the caller for swap_sup, else
 * by whoever supervised `old`. */
static void do_swap(struct ge *g, const struct rt_msg *m, const struct ge_req *q, bool sup)
{
    struct rt_ge_swap sw = {0};
    rt_pid old_sup = 0;
    long i = find(g, q->h1);
    if (i >= 0) {
        struct rt_ge_handler_state e = take(g, (size_t)i);
        old_sup = e.sup;
        struct rt_ge_stop st = {
            .kind = RT_GE_STOP_SWAP, .args = q->size1 ? q->args : NULL, .args_size = q->size1};
        sw.found = true;
        sw.term = gone(e, &st, rt_atom_intern("swapped"), q->h2, sup ? m->from : old_sup);
    }
    rt_pid new_sup = sup ? m->from : old_sup;
    rt_atom why = 0;
    int rc = 0;
    if (new_sup && rt_link(new_sup) < 0)
        rc = -ESRCH; /* the supervising process is gone: nothing to add */
    if (rc == 0)
        rc = add(g, q->h2, q->args + q->off2, q->size2, &sw, new_sup, &why);
    rt_msg_free(sw.term);
    reply(m, rc, why, NULL, NULL);
}

static void handle_req(struct ge *g, const struct rt_msg *m)
{
    const struct ge_req *q = (const struct ge_req *)m->data;
    rt_atom why = 0;
    int rc;
    /* Only a handler's result asks for hibernation (add, call, notify). */
    g->hibernate = false;
    switch (q->op) {
    case GE_ADD:
        rc = add(g, q->h1, q->args, q->size1, NULL, 0, &why);
        reply(m, rc, why, NULL, NULL);
        break;
    case GE_ADD_SUP:
        /* OTP links before init and keeps the link whatever happens (the
         * process may supervise other handlers). A caller already gone
         * would have its handler removed at once: it is not added. */
        if (rt_link(m->from) < 0)
            break;
        rc = add(g, q->h1, q->args, q->size1, NULL, m->from, &why);
        reply(m, rc, why, NULL, NULL);
        break;
    case GE_DELETE: {
        long i = find(g, q->h1);
        if (i < 0) {
            reply(m, -ENOENT, 0, NULL, NULL);
            break;
        }
        struct rt_ge_handler_state e = take(g, (size_t)i);
        struct rt_ge_stop st = {
            .kind = RT_GE_STOP_DELETE, .args = q->size1 ? q->args : NULL, .args_size = q->size1};
        static const struct rt_ge_handler none;
        reply(m, 0, 0, gone(e, &st, RT_NORMAL, none, 0), NULL);
        break;
    }
    case GE_SWAP:
    case GE_SWAP_SUP:
        do_swap(g, m, q, q->op == GE_SWAP_SUP);
        break;
    case GE_CALL:
        do_call(g, m, q);
        break;
    case GE_SYNC_NOTIFY:
        if (q->inner)
            notify_all(g, q->inner, false);
        reply(m, 0, 0, NULL, NULL);
        break;
    case GE_WHICH:
        reply(m, 0, 0, NULL, g);
        break;
    default:
        reply(m, -EOPNOTSUPP, 0, NULL, NULL);
        break;
    }
}

/* ---- sys hooks ---------------------------------------------------------------- */

static void h_get_state(void *self, struct rt_sys_state *out)
{
    struct ge *g = self;
    memset(out, 0, sizeof *out);
    out->state = g->h;
    out->count = g->n;
}

static int h_replace_state(void *self, rt_sys_replace_fn fn, void *arg)
{
    struct ge *g = self;
    if (!fn)
        return -ECANCELED;
    for (size_t i = 0; i < g->n; i++) {
        void *n = NULL;
        int st = 0;
        if (fn(&g->h[i], &st, arg, &n) == 0)
            g->h[i].state = n;
    }
    return 0;
}

static void h_status(void *self, struct rt_sys_status *out)
{
    snprintf(out->module, sizeof out->module, "gen_event");
    ge_state_text(self, out->formatted, sizeof out->formatted);
}

static void h_terminate(void *self, rt_atom reason)
{
    terminate_server(self, reason);
}

/* Tandem's change_code names no module: every handler that has a
 * code_change runs it; all of them or none take their new state, as
 * OTP's single failing update aborts the whole change. */
static int h_change_code(void *self, const char *vsn, const void *extra)
{
    struct ge *g = self;
    void **next = rt_calloc(g->n ? g->n : 1, sizeof *next);
    if (!next)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < g->n && rc == 0; i++) {
        next[i] = g->h[i].state;
        if (g->h[i].handler.ops->code_change)
            rc = g->h[i].handler.ops->code_change(vsn, g->h[i].state, extra, &next[i]);
    }
    if (rc == 0)
        for (size_t i = 0; i < g->n; i++)
            g->h[i].state = next[i];
    rt_free(next);
    return rc < 0 ? rc : 0;
}

static const struct rt__sys_hooks hooks = {
    .get_state = h_get_state,
    .replace_state = h_replace_state,
    .status = h_status,
    .terminate = h_terminate,
    .change_code = h_change_code,
};

/* ---- loop ------------------------------------------------------------------------ */

static void dispatch(struct ge *g, struct rt_msg *m)
{
    uint32_t t = m->type;
    if (t == RT_MSG_SYS) {
        rt__sys_handle(&g->sys, &hooks, g, m);
        return;
    }
    if (t == RT_MSG_EXIT && g->parent_linked && m->from == g->sys.parent) {
        rt_atom why = (rt_atom)m->u64;
        rt_msg_free(m);
        terminate_server(g, why);
    }
    g->cur = m;
    if (t < RT_MSG_SYSTEM && (t & RT_GS_CAST_BIT) && !(t & RT_GS_CALL_BIT)) {
        m->type = t & ~RT_GS_CAST_BIT;
        rt__sys_event(&g->sys, RT_SYS_EV_IN, m->type, m->from, 0);
        notify_all(g, m, false);
    } else if (is_req(m)) {
        rt__sys_event(&g->sys, RT_SYS_EV_IN, t, m->from, 0);
        handle_req(g, m);
    } else {
        rt__sys_event(&g->sys, RT_SYS_EV_IN, t, m->from, 0);
        if (t == RT_MSG_EXIT)
            handle_exit(g, m);
        else
            notify_all(g, m, true);
    }
    g->cur = NULL;
    release(m);
}

static void wake(void *p)
{
    ge_loop(p, true);
}

static _Noreturn void ge_loop(struct ge *g, bool woken)
{
    for (;;) {
        /* As gen_server's loop: just woken, take the message that woke us;
         * suspended with messages waiting for resume, stay awake. */
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
        m = rt_receive(g->hibernate_after > 0 ? g->hibernate_after : RT_INFINITY);
        if (!m) {
            g->hibernate = true;
            continue;
        }
        dispatch(g, m);
    }
}

static void ge_entry(void *arg, const struct rt_proc_starter *st)
{
    (void)arg;
    struct ge *g = rt_calloc(1, sizeof *g);
    if (!g)
        rt_proc_init_fail(st, RT_SYSTEM_LIMIT, RT_SYSTEM_LIMIT);
    rt_set_kind(RT_KIND_SERVER);
    rt_set_user(g);
    rt_defer(ge_cleanup, g);
    /* OTP's manager traps exits: its parent's exit terminates it in order,
     * a supervising process's exit removes that process's handlers. */
    rt_trap_exit(true);
    g->hibernate_after = st->opts ? st->opts->hibernate_after : 0;
    rt__sys_init(&g->sys, "gen_event", st->opts);
    rt_pid links[2];
    int nl = rt_proc_links(rt_self(), links, 2);
    g->parent_linked = g->sys.parent && nl > 0 && links[0] == g->sys.parent;
    rt_proc_init_ack(st);
    ge_loop(g, false);
}

static int start(const struct rt_start_opts *opts, bool link, rt_pid *out, rt_atom *reason)
{
    struct rt_start_opts o = {0};
    if (opts)
        o = *opts;
    if (!o.initial_call)
        o.initial_call = "gen_event";
    return link ? rt_proc_start_link(ge_entry, NULL, &o, out, reason)
                : rt_proc_start(ge_entry, NULL, &o, out, reason);
}

int rt_gen_event_start_link(const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason)
{
    return start(opts, true, out, reason);
}

int rt_gen_event_start(const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason)
{
    return start(opts, false, out, reason);
}

/* ---- client side ------------------------------------------------------------ */

static struct rt_msg *new_req(int op, struct rt_ge_handler h1, const void *a1, size_t s1,
                              struct rt_ge_handler h2, const void *a2, size_t s2,
                              struct rt_msg *inner)
{
    size_t off2 = (s1 + 15) & ~(size_t)15;
    if (s1 > UINT32_MAX || s2 > UINT32_MAX) {
        rt_msg_free(inner);
        return NULL;
    }
    struct rt_msg *m = rt_msg_new(RT_MSG_GEN_EVENT, sizeof(struct ge_req) + off2 + s2);
    if (!m) {
        rt_msg_free(inner);
        return NULL;
    }
    struct ge_req *q = (struct ge_req *)m->data;
    q->op = op;
    q->h1 = h1;
    q->h2 = h2;
    rt_msg_detach(inner); /* passed by pointer: the manager's once sent */
    q->inner = inner;
    q->size1 = s1;
    q->size2 = s2;
    q->off2 = off2;
    if (s1)
        memcpy(q->args, a1, s1);
    if (s2)
        memcpy(q->args + off2, a2, s2);
    m->dtor = req_dtor;
    return m;
}

/* Sends a request; returns the manager's rc or a call error. On success
 * `rep` (when given) takes the reply message; otherwise, and on any error,
 * the reply and what it carries are freed here. */
static int request(rt_pid mgr, struct rt_msg *req, int64_t timeout_ms, struct rt_msg **rep,
                   rt_atom *reason)
{
    struct rt_msg *r = NULL;
    if (!req)
        return -ENOMEM;
    int rc = rt__call(mgr, req, timeout_ms, &r, reason);
    if (rc < 0)
        return rc;
    if (!r || r->type != RT_MSG_GEN_EVENT || r->size < sizeof(struct ge_rep)) {
        rt_msg_free(r);
        return -EPROTO;
    }
    struct ge_rep *p = (struct ge_rep *)r->data;
    rc = p->rc;
    if (rc == -ECANCELED && reason)
        *reason = p->reason;
    if (rep && rc >= 0) {
        *rep = r;
    } else {
        rt_msg_free(p->inner);
        rt_msg_free(r);
    }
    return rc;
}

/* A request whose reply carries a message: `inner` takes it on success (it
 * is freed when `inner` is NULL). */
static int request_inner(rt_pid mgr, struct rt_msg *req, int64_t timeout_ms, struct rt_msg **inner,
                         rt_atom *reason)
{
    struct rt_msg *r = NULL;
    int rc = request(mgr, req, timeout_ms, &r, reason);
    if (rc < 0)
        return rc;
    struct rt_msg *res = ((struct ge_rep *)r->data)->inner;
    rt_msg_free(r);
    if (inner)
        *inner = res;
    else
        rt_msg_free(res);
    return 0;
}

static const struct rt_ge_handler no_handler;

static int add_req(int op, rt_pid mgr, struct rt_ge_handler h, const void *arg, size_t size,
                   rt_atom *reason)
{
    return request(mgr, new_req(op, h, arg, size, no_handler, NULL, 0, NULL), RT_INFINITY, NULL,
                   reason);
}

int rt_gen_event_add_handler(rt_pid mgr, struct rt_ge_handler h, const void *arg, size_t arg_size,
                             rt_atom *reason)
{
    return add_req(GE_ADD, mgr, h, arg, arg_size, reason);
}

int rt_gen_event_add_sup_handler(rt_pid mgr, struct rt_ge_handler h, const void *arg,
                                 size_t arg_size, rt_atom *reason)
{
    return add_req(GE_ADD_SUP, mgr, h, arg, arg_size, reason);
}

int rt_gen_event_delete_handler(rt_pid mgr, struct rt_ge_handler h, const void *arg,
                                size_t arg_size, struct rt_msg **result)
{
    return request_inner(mgr, new_req(GE_DELETE, h, arg, arg_size, no_handler, NULL, 0, NULL),
                         RT_INFINITY, result, NULL);
}

int rt_gen_event_swap_handler(rt_pid mgr, struct rt_ge_handler old, const void *args1, size_t size1,
                              struct rt_ge_handler to, const void *args2, size_t size2,
                              rt_atom *reason)
{
    return request(mgr, new_req(GE_SWAP, old, args1, size1, to, args2, size2, NULL), RT_INFINITY,
                   NULL, reason);
}

int rt_gen_event_swap_sup_handler(rt_pid mgr, struct rt_ge_handler old, const void *args1,
                                  size_t size1, struct rt_ge_handler to, const void *args2,
                                  size_t size2, rt_atom *reason)
{
    return request(mgr, new_req(GE_SWAP_SUP, old, args1, size1, to, args2, size2, NULL),
                   RT_INFINITY, NULL, reason);
}

int rt_gen_event_which_handlers(rt_pid mgr, struct rt_ge_handler *out, size_t max, size_t *count)
{
    struct rt_msg *r = NULL;
    int rc = request(mgr, new_req(GE_WHICH, no_handler, NULL, 0, no_handler, NULL, 0, NULL),
                     RT_INFINITY, &r, NULL);
    if (rc < 0)
        return rc;
    const struct ge_rep *p = (const struct ge_rep *)r->data;
    size_t n = p->count;
    if (r->size < sizeof *p + n * sizeof(struct rt_ge_handler))
        n = 0;
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = p->list[i];
    if (count)
        *count = n;
    rt_msg_free(r);
    return 0;
}

int rt_gen_event_notify(rt_pid mgr, struct rt_msg *event)
{
    if (!event)
        return -EINVAL;
    if (event->type >= RT_GS_TYPE_LIMIT) {
        rt_msg_free(event);
        return -EINVAL;
    }
    event->type |= RT_GS_CAST_BIT;
    rt_send(mgr, event);
    return 0;
}

int rt_gen_event_notify_name(const char *name, struct rt_msg *event)
{
    rt_pid pid = name ? rt_whereis(name) : 0;
    if (!pid) {
        rt_msg_free(event);
        return -ESRCH;
    }
    return rt_gen_event_notify(pid, event);
}

int rt_gen_event_sync_notify(rt_pid mgr, struct rt_msg *event)
{
    if (!event)
        return -EINVAL;
    if (event->type >= RT_GS_TYPE_LIMIT) {
        rt_msg_free(event);
        return -EINVAL;
    }
    return request(mgr, new_req(GE_SYNC_NOTIFY, no_handler, NULL, 0, no_handler, NULL, 0, event),
                   RT_INFINITY, NULL, NULL);
}

int rt_gen_event_call(rt_pid mgr, struct rt_ge_handler h, struct rt_msg *req, int64_t timeout_ms,
                      struct rt_msg **reply, rt_atom *reason)
{
    if (!req)
        return -EINVAL;
    return request_inner(mgr, new_req(GE_CALL, h, NULL, 0, no_handler, NULL, 0, req), timeout_ms,
                         reply, reason);
}

int rt_gen_event_stop(rt_pid mgr, rt_atom reason, int64_t timeout_ms, rt_atom *exit_reason)
{
    return rt_proc_stop(mgr, reason, timeout_ms, exit_reason);
}
