/*
 * sys.c: OTP's sys module. The client side sends one RT_MSG_SYS request
 * through rt__call; the server side (rt__sys_handle) runs inside every
 * behaviour's loop, with hooks into the behaviour for its state.
 *
 * Debug state (trace flag, log ring, statistics counters) lives in the
 * behaviour's struct rt__sys, owned by that process alone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "otp_int.h"
#include "rt/sys.h"

static const char *const event_names[] = {
    [RT_SYS_EV_IN] = "in",
    [RT_SYS_EV_OUT] = "out",
    [RT_SYS_EV_NOREPLY] = "noreply",
    [RT_SYS_EV_CONSUME] = "consume",
    [RT_SYS_EV_POSTPONE] = "postpone",
    [RT_SYS_EV_ENTER] = "enter",
    [RT_SYS_EV_START_TIMER] = "start_timer",
    [RT_SYS_EV_TERMINATE] = "terminate",
};

const char *rt_sys_event_name(enum rt_sys_event_kind k)
{
    if ((unsigned)k >= sizeof event_names / sizeof event_names[0])
        return "?";
    return event_names[k];
}

static uint64_t my_reductions(void)
{
    struct rt_proc_info info;
    if (rt_proc_info(rt_self(), &info) < 0)
        return 0;
    return info.reductions;
}

static void stats_on(struct rt__sys *sys)
{
    sys->debug |= RT_DEBUG_STATISTICS;
    sys->st_start_ms = rt_now_ms();
    sys->st_reds0 = my_reductions();
    sys->st_in = sys->st_out = 0;
}

static void log_on(struct rt__sys *sys, unsigned size)
{
    if (size == 0)
        size = RT_SYS_LOG_DEFAULT;
    if (size > RT_SYS_LOG_MAX)
        size = RT_SYS_LOG_MAX;
    struct rt_sys_event *ring = rt_calloc(size, sizeof *ring);
    if (!ring)
        return;
    rt_free(sys->log);
    sys->log = ring;
    sys->log_cap = size;
    sys->log_head = sys->log_len = 0;
    sys->debug |= RT_DEBUG_LOG;
}

static void log_off(struct rt__sys *sys)
{
    rt_free(sys->log);
    sys->log = NULL;
    sys->log_cap = sys->log_head = sys->log_len = 0;
    sys->debug &= ~RT_DEBUG_LOG;
}

size_t rt__format_end(char *buf, size_t size, size_t n)
{
    if (size == 0)
        return 0;
    if (n > size - 1)
        n = size - 1;
    buf[n] = 0;
    return strlen(buf); /* a callback's snprintf may have ended it sooner */
}

size_t rt__format_state(rt_format_status_fn fn, const void *state, const char *module, char *buf,
                        size_t size)
{
    if (size == 0)
        return 0;
    if (fn)
        return rt__format_end(buf, size, fn(state, buf, size - 1));
    /* "<module> state=<address>" as snprintf's %p writes it, built by hand:
     * every abnormal exit of a behaviour without format_status formats
     * this for its crash report, and snprintf costs ten times as much. */
    char addr[2 + 2 * sizeof(uintptr_t) + 1], *a = addr + sizeof addr;
    *--a = 0;
    uintptr_t v = (uintptr_t)state;
    if (!v) {
        a -= 5;
        memcpy(a, "(nil)", 5);
    } else {
        for (; v; v >>= 4)
            *--a = "0123456789abcdef"[v & 15];
        *--a = 'x';
        *--a = '0';
    }
    size_t n = 0;
    const char *parts[] = {module, " state=", a};
    for (size_t i = 0; i < 3; i++) {
        size_t len = strnlen(parts[i], size - 1 - n);
        memcpy(buf + n, parts[i], len);
        n += len;
    }
    buf[n] = 0;
    return n;
}

void rt__crash_state(rt_atom reason, rt__state_text_fn text, const void *self)
{
    if (rt_reason_is_clean(reason))
        return;
    char buf[RT_CRASH_STATE_MAX];
    text(self, buf, sizeof buf);
    rt_set_crash_state(buf);
}

void rt__sys_init(struct rt__sys *sys, const char *behaviour, const struct rt_start_opts *opts)
{
    memset(sys, 0, sizeof *sys);
    sys->parent = rt_parent();
    sys->behaviour = behaviour;
    if (!opts)
        return;
    if (opts->debug & RT_DEBUG_TRACE)
        sys->debug |= RT_DEBUG_TRACE;
    if (opts->debug & RT_DEBUG_LOG)
        log_on(sys, opts->log_size);
    if (opts->debug & RT_DEBUG_STATISTICS)
        stats_on(sys);
}

static void funs_clear(struct rt__sys *sys)
{
    for (int i = 0; i < RT_SYS_MAX_FUNS; i++) {
        rt_free(sys->funs[i].arg);
        sys->funs[i].fn = NULL;
        sys->funs[i].arg = NULL;
    }
    sys->debug &= ~RT__DEBUG_FUNS;
}

static void funs_update_flag(struct rt__sys *sys)
{
    sys->debug &= ~RT__DEBUG_FUNS;
    for (int i = 0; i < RT_SYS_MAX_FUNS; i++)
        if (sys->funs[i].fn)
            sys->debug |= RT__DEBUG_FUNS;
}

static int fun_install(struct rt__sys *sys, rt_sys_debug_fn fn, const void *arg, size_t size)
{
    int slot = -1;
    for (int i = 0; i < RT_SYS_MAX_FUNS; i++) {
        if (sys->funs[i].fn == fn) {
            slot = i;
            break;
        }
        if (!sys->funs[i].fn && slot < 0)
            slot = i;
    }
    if (!fn)
        return -EINVAL;
    if (slot < 0)
        return -ENOSPC;
    void *copy = NULL;
    if (size) {
        copy = rt_alloc(size);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, arg, size);
    }
    rt_free(sys->funs[slot].arg);
    sys->funs[slot].fn = fn;
    sys->funs[slot].arg = copy;
    funs_update_flag(sys);
    return 0;
}

static int fun_remove(struct rt__sys *sys, rt_sys_debug_fn fn)
{
    for (int i = 0; i < RT_SYS_MAX_FUNS; i++) {
        if (sys->funs[i].fn == fn) {
            rt_free(sys->funs[i].arg);
            sys->funs[i].fn = NULL;
            sys->funs[i].arg = NULL;
            funs_update_flag(sys);
            return 0;
        }
    }
    return -ENOENT;
}

void rt__sys_event(struct rt__sys *sys, enum rt_sys_event_kind kind, uint32_t type, rt_pid peer,
                   int state)
{
    if (!sys->debug)
        return;
    if (sys->debug & RT_DEBUG_STATISTICS) {
        if (kind == RT_SYS_EV_IN)
            sys->st_in++;
        else if (kind == RT_SYS_EV_OUT)
            sys->st_out++;
    }
    struct rt_sys_event ev = {
        .time_ms = rt_now_ms(), .kind = kind, .msg_type = type, .peer = peer, .state = state};
    if ((sys->debug & RT_DEBUG_LOG) && sys->log_cap) {
        unsigned i = (sys->log_head + sys->log_len) % sys->log_cap;
        if (sys->log_len == sys->log_cap) {
            i = sys->log_head;
            sys->log_head = (sys->log_head + 1) % sys->log_cap;
        } else {
            sys->log_len++;
        }
        sys->log[i] = ev;
    }
    if (sys->debug & RT__DEBUG_FUNS) {
        for (int i = 0; i < RT_SYS_MAX_FUNS; i++) {
            if (sys->funs[i].fn && sys->funs[i].fn(&ev, sys->funs[i].arg))
                fun_remove(sys, sys->funs[i].fn);
        }
    }
    if (sys->debug & RT_DEBUG_TRACE)
        rt_log(RT_LOG_DEBUG, "sys trace %s %#llx: %s type=%#x peer=%#llx state=%d", sys->behaviour,
               (unsigned long long)rt_self(), rt_sys_event_name(kind), type,
               (unsigned long long)peer, state);
}

bool rt__sys_match_suspended(const struct rt_msg *m, void *ctx)
{
    const struct rt__sys *sys = ctx;
    return m->type == RT_MSG_SYS || (m->type == RT_MSG_EXIT && m->from == sys->parent);
}

static void reply_rc(const struct rt_msg *req, int rc)
{
    if (!req->ref)
        return;
    struct rt_msg *m = rt_msg_new(RT_MSG_SYS, sizeof(struct rt__sys_rep));
    if (!m)
        return;
    ((struct rt__sys_rep *)m->data)->rc = rc;
    rt_send_alias(req->from, req->ref, m);
}

void rt__sys_handle(struct rt__sys *sys, const struct rt__sys_hooks *h, void *self,
                    struct rt_msg *m)
{
    const struct rt__sys_req *q = (const struct rt__sys_req *)m->data;
    struct rt_msg *rep = NULL;
    struct rt__sys_rep *r;
    if (m->size < sizeof *q) {
        reply_rc(m, -EINVAL);
        goto out;
    }
    switch (q->op) {
    case RT__SYS_GET_STATE:
    case RT__SYS_REPLACE_STATE: {
        int rc = 0;
        if (q->op == RT__SYS_REPLACE_STATE)
            rc = h->replace_state(self, q->fn, (void *)q->arg);
        rep = rt_msg_new(RT_MSG_SYS, sizeof *r);
        if (!rep)
            break;
        r = (struct rt__sys_rep *)rep->data;
        r->rc = rc;
        h->get_state(self, &r->u.state);
        break;
    }
    case RT__SYS_SUSPEND:
        sys->suspended = true;
        reply_rc(m, 0);
        break;
    case RT__SYS_RESUME:
        sys->suspended = false;
        reply_rc(m, 0);
        break;
    case RT__SYS_GET_STATUS:
        rep = rt_msg_new(RT_MSG_SYS, sizeof *r);
        if (!rep)
            break;
        r = (struct rt__sys_rep *)rep->data;
        r->u.status.pid = rt_self();
        r->u.status.parent = sys->parent;
        snprintf(r->u.status.behaviour, sizeof r->u.status.behaviour, "%s", sys->behaviour);
        r->u.status.status = sys->suspended ? RT_SYS_SUSPENDED : RT_SYS_RUNNING;
        r->u.status.debug = sys->debug & ~RT__DEBUG_FUNS;
        r->u.status.log_len = sys->log_len;
        h->status(self, &r->u.status);
        break;
    case RT__SYS_STATISTICS:
        if (q->flag == RT_SYS_ON) {
            stats_on(sys);
            reply_rc(m, 0);
        } else if (q->flag == RT_SYS_OFF) {
            sys->debug &= ~RT_DEBUG_STATISTICS;
            reply_rc(m, 0);
        } else if (!(sys->debug & RT_DEBUG_STATISTICS)) {
            reply_rc(m, -ENODATA);
        } else {
            rep = rt_msg_new(RT_MSG_SYS, sizeof *r);
            if (!rep)
                break;
            r = (struct rt__sys_rep *)rep->data;
            r->u.stats.start_time_ms = sys->st_start_ms;
            r->u.stats.current_time_ms = rt_now_ms();
            r->u.stats.reductions = my_reductions() - sys->st_reds0;
            r->u.stats.messages_in = sys->st_in;
            r->u.stats.messages_out = sys->st_out;
        }
        break;
    case RT__SYS_TRACE:
        if (q->flag)
            sys->debug |= RT_DEBUG_TRACE;
        else
            sys->debug &= ~RT_DEBUG_TRACE;
        reply_rc(m, 0);
        break;
    case RT__SYS_LOG:
        if (q->flag)
            log_on(sys, q->size);
        else
            log_off(sys);
        reply_rc(m, 0);
        break;
    case RT__SYS_LOG_GET: {
        size_t n = sys->log_len;
        rep = rt_msg_new(RT_MSG_SYS, sizeof *r + n * sizeof(struct rt_sys_event));
        if (!rep)
            break;
        r = (struct rt__sys_rep *)rep->data;
        r->count = n;
        struct rt_sys_event *evs = (struct rt_sys_event *)r->data;
        for (size_t i = 0; i < n; i++)
            evs[i] = sys->log[(sys->log_head + i) % sys->log_cap];
        break;
    }
    case RT__SYS_NO_DEBUG:
        log_off(sys);
        funs_clear(sys);
        sys->debug = 0;
        reply_rc(m, 0);
        break;
    case RT__SYS_TERMINATE: {
        rt_atom why = q->reason;
        rt_msg_free(m);
        h->terminate(self, why);
        rt_exit(why);
    }
    case RT__SYS_CHANGE_CODE: {
        if (!sys->suspended) {
            reply_rc(m, -EBUSY);
            break;
        }
        int rc = h->change_code(self, q->vsn, q->arg_size ? q->arg : NULL);
        /* -ENOSYS: no code_change callback (OTP's undef); any other
         * failure is the callback's. */
        reply_rc(m, rc == -ENOSYS ? rc : rc < 0 ? -ECANCELED : 0);
        break;
    }
    case RT__SYS_INSTALL:
        reply_rc(m, fun_install(sys, q->dfn, q->arg, q->arg_size));
        break;
    case RT__SYS_REMOVE:
        reply_rc(m, fun_remove(sys, q->dfn));
        break;
    default:
        reply_rc(m, -EOPNOTSUPP);
        break;
    }
    if (rep) {
        if (m->ref)
            rt_send_alias(m->from, m->ref, rep);
        else
            rt_msg_free(rep);
    }
out:
    rt_msg_free(m);
}

/* ---- client side ------------------------------------------------------------ */

static struct rt_msg *new_req(int op, const void *arg, size_t arg_size)
{
    struct rt_msg *m = rt_msg_new(RT_MSG_SYS, sizeof(struct rt__sys_req) + arg_size);
    if (!m)
        return NULL;
    struct rt__sys_req *q = (struct rt__sys_req *)m->data;
    q->op = op;
    q->arg_size = arg_size;
    if (arg_size)
        memcpy(q->arg, arg, arg_size);
    return m;
}

/* Sends the request; on 0 *rep holds the reply (rc already checked). */
static int sys_call(rt_pid pid, struct rt_msg *req, int64_t timeout_ms, struct rt_msg **rep)
{
    struct rt_msg *r = NULL;
    if (!req)
        return -ENOMEM;
    int rc = rt__call(pid, req, timeout_ms, &r, NULL);
    if (rc < 0)
        return rc;
    if (!r || r->size < sizeof(struct rt__sys_rep)) {
        rt_msg_free(r);
        return -EPROTO;
    }
    rc = ((struct rt__sys_rep *)r->data)->rc;
    if (rc < 0 && rc != -ECANCELED) {
        rt_msg_free(r);
        return rc;
    }
    if (rep)
        *rep = r;
    else
        rt_msg_free(r);
    return rc;
}

static int simple(rt_pid pid, int op, int flag, unsigned size, int64_t timeout_ms)
{
    struct rt_msg *m = new_req(op, NULL, 0);
    if (m) {
        ((struct rt__sys_req *)m->data)->flag = flag;
        ((struct rt__sys_req *)m->data)->size = size;
    }
    return sys_call(pid, m, timeout_ms, NULL);
}

int rt_sys_get_state(rt_pid pid, int64_t timeout_ms, struct rt_sys_state *out)
{
    struct rt_msg *r = NULL;
    int rc = sys_call(pid, new_req(RT__SYS_GET_STATE, NULL, 0), timeout_ms, &r);
    if (rc < 0)
        return rc;
    *out = ((struct rt__sys_rep *)r->data)->u.state;
    rt_msg_free(r);
    return 0;
}

int rt_sys_replace_state(rt_pid pid, rt_sys_replace_fn fn, const void *arg, size_t arg_size,
                         int64_t timeout_ms, struct rt_sys_state *out)
{
    struct rt_msg *r = NULL;
    struct rt_msg *m = new_req(RT__SYS_REPLACE_STATE, arg, arg_size);
    if (m)
        ((struct rt__sys_req *)m->data)->fn = fn;
    int rc = sys_call(pid, m, timeout_ms, &r);
    if (rc < 0) {
        rt_msg_free(r);
        return rc;
    }
    if (out)
        *out = ((struct rt__sys_rep *)r->data)->u.state;
    rt_msg_free(r);
    return 0;
}

int rt_sys_suspend(rt_pid pid, int64_t timeout_ms)
{
    return simple(pid, RT__SYS_SUSPEND, 0, 0, timeout_ms);
}

int rt_sys_resume(rt_pid pid, int64_t timeout_ms)
{
    return simple(pid, RT__SYS_RESUME, 0, 0, timeout_ms);
}

int rt_sys_get_status(rt_pid pid, int64_t timeout_ms, struct rt_sys_status *out)
{
    struct rt_msg *r = NULL;
    int rc = sys_call(pid, new_req(RT__SYS_GET_STATUS, NULL, 0), timeout_ms, &r);
    if (rc < 0)
        return rc;
    *out = ((struct rt__sys_rep *)r->data)->u.status;
    rt_msg_free(r);
    return 0;
}

int rt_sys_statistics(rt_pid pid, enum rt_sys_flag flag, int64_t timeout_ms,
                      struct rt_sys_statistics *out)
{
    struct rt_msg *r = NULL;
    struct rt_msg *m = new_req(RT__SYS_STATISTICS, NULL, 0);
    if (m)
        ((struct rt__sys_req *)m->data)->flag = flag;
    int rc = sys_call(pid, m, timeout_ms, &r);
    if (rc < 0)
        return rc;
    if (flag == RT_SYS_GET && out)
        *out = ((struct rt__sys_rep *)r->data)->u.stats;
    rt_msg_free(r);
    return 0;
}

int rt_sys_trace(rt_pid pid, bool on, int64_t timeout_ms)
{
    return simple(pid, RT__SYS_TRACE, on, 0, timeout_ms);
}

int rt_sys_log(rt_pid pid, bool on, unsigned size, int64_t timeout_ms)
{
    return simple(pid, RT__SYS_LOG, on, size, timeout_ms);
}

int rt_sys_log_get(rt_pid pid, struct rt_sys_event *out, size_t max, size_t *count,
                   int64_t timeout_ms)
{
    struct rt_msg *r = NULL;
    int rc = sys_call(pid, new_req(RT__SYS_LOG_GET, NULL, 0), timeout_ms, &r);
    if (rc < 0)
        return rc;
    const struct rt__sys_rep *p = (const struct rt__sys_rep *)r->data;
    size_t n = p->count < max ? p->count : max;
    if (n)
        memcpy(out, p->data, n * sizeof *out);
    if (count)
        *count = p->count;
    rt_msg_free(r);
    return 0;
}

int rt_sys_no_debug(rt_pid pid, int64_t timeout_ms)
{
    return simple(pid, RT__SYS_NO_DEBUG, 0, 0, timeout_ms);
}

int rt_sys_install(rt_pid pid, rt_sys_debug_fn fn, const void *arg, size_t arg_size,
                   int64_t timeout_ms)
{
    struct rt_msg *m = new_req(RT__SYS_INSTALL, arg, arg_size);
    if (m)
        ((struct rt__sys_req *)m->data)->dfn = fn;
    return sys_call(pid, m, timeout_ms, NULL);
}

int rt_sys_remove(rt_pid pid, rt_sys_debug_fn fn, int64_t timeout_ms)
{
    struct rt_msg *m = new_req(RT__SYS_REMOVE, NULL, 0);
    if (m)
        ((struct rt__sys_req *)m->data)->dfn = fn;
    return sys_call(pid, m, timeout_ms, NULL);
}

int rt_sys_terminate(rt_pid pid, rt_atom reason, int64_t timeout_ms)
{
    int rc = rt_proc_stop(pid, reason, timeout_ms, NULL);
    return rc == -ECONNRESET ? 0 : rc;
}

int rt_sys_change_code(rt_pid pid, const char *old_vsn, const void *extra, size_t extra_size,
                       int64_t timeout_ms)
{
    struct rt_msg *m = new_req(RT__SYS_CHANGE_CODE, extra, extra_size);
    if (m)
        snprintf(((struct rt__sys_req *)m->data)->vsn, 32, "%s", old_vsn ? old_vsn : "");
    struct rt_msg *r = NULL;
    int rc = sys_call(pid, m, timeout_ms, &r);
    rt_msg_free(r);
    return rc;
}
