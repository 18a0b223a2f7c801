/*
 * gen_statem.c: the generic state machine loop.
 *
 * The machine's control state (struct sm) is rt_alloc'd in its process and
 * survives hibernation. Events come first from the internal queue (inserted
 * next_events, retried postponed events, time-out-zero events), then from
 * the mailbox. After each event, as OTP's gen_statem does: the event is
 * postponed or dropped; on a state change the state timeout is cancelled and
 * the postponed events go back to the front of the queue, oldest first;
 * next_events go in front of them in action order; the state enter call
 * runs; then timers are started.
 *
 * Timers are rt_send_after messages to self carrying a token; the content
 * of a timeout event is kept here so that `update` can change it, and a
 * stale expiry (cancelled, restarted) is recognised by its token and
 * dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "otp_int.h"
#include "rt/gen_statem.h"

struct ev_node {
    struct ev_node *next;
    struct rt_statem_event ev;
};

struct evq {
    struct ev_node *head, *tail;
};

struct sm_timer {
    bool active;
    enum rt_event_type type;
    rt_atom name;
    uint64_t token;
    rt_ref tref;
    struct rt_msg *content;
};

struct timer_msg {
    enum rt_event_type type;
    rt_atom name;
    uint64_t token;
};

#define MAX_GENERIC 32

struct sm {
    const struct rt_gen_statem_ops *ops;
    int state;
    void *data;
    struct rt__sys sys;
    struct evq queue;     /* internal events, processed before the mailbox */
    struct evq postponed; /* oldest first */
    struct sm_timer event_timer, state_timer;
    struct sm_timer generic[MAX_GENERIC];
    uint64_t next_token;
    bool hibernate;
    int64_t hibernate_after;
    struct rt_msg *cur; /* the event message a callback is handling */
};

static _Noreturn void sm_loop(struct sm *s);

static const char *const ev_names[] = {
    "call", "cast", "info", "timeout", "state_timeout", "generic_timeout", "internal", "enter",
};

const char *rt_event_type_name(enum rt_event_type t)
{
    return (unsigned)t < sizeof ev_names / sizeof ev_names[0] ? ev_names[t] : "?";
}

/* ---- result helpers -------------------------------------------------------------- */

static struct rt_statem_action *add_action(struct rt_statem_result *r)
{
    if (r->n_actions >= RT_STATEM_MAX_ACTIONS) {
        r->overflow = true;
        return NULL;
    }
    struct rt_statem_action *a = &r->actions[r->n_actions++];
    memset(a, 0, sizeof *a);
    return a;
}

void rt_sm_init_ok(struct rt_statem_result *r, int state, void *data)
{
    r->kind = RT_SM_OK;
    r->state = state;
    r->data = data;
}

void rt_sm_next_state(struct rt_statem_result *r, int state)
{
    r->kind = RT_SM_NEXT_STATE;
    r->state = state;
}

void rt_sm_keep_state(struct rt_statem_result *r)
{
    r->kind = RT_SM_KEEP_STATE;
}

void rt_sm_repeat_state(struct rt_statem_result *r)
{
    r->kind = RT_SM_REPEAT_STATE;
}

void rt_sm_stop(struct rt_statem_result *r, rt_atom reason)
{
    r->kind = RT_SM_STOP;
    r->reason = reason;
}

void rt_sm_stop_reply(struct rt_statem_result *r, rt_atom reason, const struct rt_gs_from *from,
                      struct rt_msg *reply)
{
    rt_sm_reply(r, from, reply);
    rt_sm_stop(r, reason);
}

void rt_sm_ignore(struct rt_statem_result *r)
{
    r->kind = RT_SM_IGNORE;
}

void rt_sm_error(struct rt_statem_result *r, rt_atom reason)
{
    r->kind = RT_SM_ERROR;
    r->reason = reason;
}

void rt_sm_postpone(struct rt_statem_result *r)
{
    struct rt_statem_action *a = add_action(r);
    if (a)
        a->kind = RT_ACT_POSTPONE;
}

void rt_sm_next_event(struct rt_statem_result *r, enum rt_event_type type, struct rt_msg *msg)
{
    struct rt_statem_action *a = add_action(r);
    if (!a) {
        rt_msg_free(msg);
        return;
    }
    a->kind = RT_ACT_NEXT_EVENT;
    a->type = type;
    a->msg = msg;
}

void rt_sm_reply(struct rt_statem_result *r, const struct rt_gs_from *from, struct rt_msg *reply)
{
    struct rt_statem_action *a = add_action(r);
    if (!a) {
        rt_msg_free(reply);
        return;
    }
    a->kind = RT_ACT_REPLY;
    a->from = *from;
    a->msg = reply;
}

void rt_sm_timer(struct rt_statem_result *r, enum rt_event_type type, rt_atom name, int64_t ms,
                 bool abs, struct rt_msg *msg)
{
    struct rt_statem_action *a = add_action(r);
    if (!a) {
        rt_msg_free(msg);
        return;
    }
    a->kind = RT_ACT_TIMER;
    a->type = type;
    a->name = name;
    a->ms = ms;
    a->abs = abs;
    a->cancel = ms == RT_INFINITY;
    a->msg = msg;
}

void rt_sm_event_timeout(struct rt_statem_result *r, int64_t ms, struct rt_msg *msg)
{
    rt_sm_timer(r, RT_EV_TIMEOUT, 0, ms, false, msg);
}

void rt_sm_state_timeout(struct rt_statem_result *r, int64_t ms, struct rt_msg *msg)
{
    rt_sm_timer(r, RT_EV_STATE_TIMEOUT, 0, ms, false, msg);
}

void rt_sm_generic_timeout(struct rt_statem_result *r, rt_atom name, int64_t ms, struct rt_msg *msg)
{
    rt_sm_timer(r, RT_EV_GENERIC_TIMEOUT, name, ms, false, msg);
}

void rt_sm_cancel_timer(struct rt_statem_result *r, enum rt_event_type type, rt_atom name)
{
    rt_sm_timer(r, type, name, RT_INFINITY, false, NULL);
}

void rt_sm_update_timer(struct rt_statem_result *r, enum rt_event_type type, rt_atom name,
                        struct rt_msg *msg)
{
    struct rt_statem_action *a = add_action(r);
    if (!a) {
        rt_msg_free(msg);
        return;
    }
    a->kind = RT_ACT_TIMER;
    a->type = type;
    a->name = name;
    a->update = true;
    a->msg = msg;
}

void rt_sm_hibernate(struct rt_statem_result *r)
{
    struct rt_statem_action *a = add_action(r);
    if (a)
        a->kind = RT_ACT_HIBERNATE;
}

struct rt_msg *rt_sm_take(struct rt_statem_event *ev)
{
    struct rt_msg *m = ev->msg;
    struct sm *s = rt_get_user();
    ev->msg = NULL;
    if (s && m && s->cur == m)
        s->cur = NULL;
    return m;
}

/* ---- queues ---------------------------------------------------------------------- */

static struct ev_node *node_new(const struct rt_statem_event *ev)
{
    struct ev_node *n = rt_calloc(1, sizeof *n);
    if (n)
        n->ev = *ev;
    return n;
}

static void q_push_back(struct evq *q, struct ev_node *n)
{
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

/* Puts all of `front` before q's contents; `front` becomes empty. */
static void q_prepend(struct evq *q, struct evq *front)
{
    if (!front->head)
        return;
    front->tail->next = q->head;
    if (!q->tail)
        q->tail = front->tail;
    q->head = front->head;
    front->head = front->tail = NULL;
}

static struct ev_node *q_pop(struct evq *q)
{
    struct ev_node *n = q->head;
    if (n) {
        q->head = n->next;
        if (!q->head)
            q->tail = NULL;
    }
    return n;
}

static void q_free(struct evq *q)
{
    struct ev_node *n;
    while ((n = q_pop(q))) {
        rt_msg_free(n->ev.msg);
        rt_free(n);
    }
}

/* ---- timers ---------------------------------------------------------------------- */

static void timer_cancel(struct sm_timer *t)
{
    if (!t->active)
        return;
    rt_cancel_timer(t->tref);
    rt_msg_free(t->content);
    t->content = NULL;
    t->active = false;
}

static struct sm_timer *find_timer(struct sm *s, enum rt_event_type type, rt_atom name, bool create)
{
    if (type == RT_EV_TIMEOUT)
        return &s->event_timer;
    if (type == RT_EV_STATE_TIMEOUT)
        return &s->state_timer;
    struct sm_timer *free_slot = NULL;
    for (size_t i = 0; i < MAX_GENERIC; i++) {
        if (s->generic[i].active && s->generic[i].name == name)
            return &s->generic[i];
        if (!s->generic[i].active && !free_slot)
            free_slot = &s->generic[i];
    }
    return create ? free_slot : NULL;
}

static void enqueue_timeout(struct sm *s, enum rt_event_type type, rt_atom name,
                            struct rt_msg *content)
{
    struct rt_statem_event ev = {.type = type, .timeout_name = name, .msg = content};
    struct ev_node *n = node_new(&ev);
    if (!n) {
        rt_msg_free(content);
        return;
    }
    q_push_back(&s->queue, n);
}

static _Noreturn void sm_terminate(struct sm *s, rt_atom reason);

static void timer_start(struct sm *s, const struct rt_statem_action *a, bool *event_zero,
                        struct rt_msg **event_zero_msg)
{
    struct sm_timer *t = find_timer(s, a->type, a->name, !a->cancel && !a->update);
    if (a->cancel) {
        if (t)
            timer_cancel(t);
        rt_msg_free(a->msg);
        return;
    }
    if (a->update) {
        if (t && t->active) {
            rt_msg_free(t->content);
            t->content = a->msg;
        } else if (a->type == RT_EV_TIMEOUT) {
            *event_zero = true;
            rt_msg_free(*event_zero_msg);
            *event_zero_msg = a->msg;
        } else {
            enqueue_timeout(s, a->type, a->name, a->msg);
        }
        return;
    }
    if (!t) {
        rt_msg_free(a->msg);
        sm_terminate(s, RT_SYSTEM_LIMIT);
    }
    timer_cancel(t);
    int64_t ms = a->ms;
    if (a->abs) {
        uint64_t now = rt_now_ms();
        ms = (uint64_t)a->ms > now ? (int64_t)((uint64_t)a->ms - now) : 0;
    }
    if (ms <= 0) {
        /* Time-out zero: no timer; queued after the events already queued. */
        if (a->type == RT_EV_TIMEOUT) {
            *event_zero = true;
            rt_msg_free(*event_zero_msg);
            *event_zero_msg = a->msg;
        } else {
            enqueue_timeout(s, a->type, a->name, a->msg);
        }
        return;
    }
    struct timer_msg tm = {.type = a->type, .name = a->name, .token = ++s->next_token};
    struct rt_msg *m = rt_msg_copy(RT_MSG_STATEM_TIMER, &tm, sizeof tm);
    if (!m) {
        rt_msg_free(a->msg);
        sm_terminate(s, RT_SYSTEM_LIMIT);
    }
    t->active = true;
    t->type = a->type;
    t->name = a->name;
    t->token = tm.token;
    t->content = a->msg;
    rt__sys_event(&s->sys, RT_SYS_EV_START_TIMER, a->type, 0, s->state);
    if (rt_send_after(rt_self(), (uint64_t)ms, m, &t->tref) < 0) {
        t->active = false;
        t->content = NULL;
        rt_msg_free(a->msg);
    }
}

/* ---- termination and sys hooks ------------------------------------------------------ */

static void free_all(struct sm *s)
{
    q_free(&s->queue);
    q_free(&s->postponed);
    timer_cancel(&s->event_timer);
    timer_cancel(&s->state_timer);
    for (size_t i = 0; i < MAX_GENERIC; i++)
        timer_cancel(&s->generic[i]);
}

/* Deferred at start: however the process exits, queued and in-flight
 * event messages and timer contents are freed. */
static void sm_cleanup(void *p)
{
    struct sm *s = p;
    free_all(s);
    rt_msg_free(s->cur);
    s->cur = NULL;
}

static _Noreturn void sm_terminate(struct sm *s, rt_atom reason)
{
    rt__sys_event(&s->sys, RT_SYS_EV_TERMINATE, 0, 0, s->state);
    free_all(s);
    if (s->ops->terminate)
        s->ops->terminate(reason, s->state, s->data);
    rt_exit(reason);
}

static const char *state_name(const struct sm *s, int state)
{
    if (s->ops->state_names && state >= 0 && (size_t)state < s->ops->n_states &&
        s->ops->state_names[state])
        return s->ops->state_names[state];
    return NULL;
}

static void publish_state(const struct sm *s)
{
    const char *n = state_name(s, s->state);
    char buf[32];
    if (!n) {
        snprintf(buf, sizeof buf, "%d", s->state);
        n = buf;
    }
    rt_set_state_name(n);
}

static void h_get_state(void *self, struct rt_sys_state *out)
{
    struct sm *s = self;
    memset(out, 0, sizeof *out);
    out->state = s->data;
    out->statem_state = s->state;
    const char *n = state_name(s, s->state);
    if (n)
        snprintf(out->state_name, sizeof out->state_name, "%s", n);
    else
        snprintf(out->state_name, sizeof out->state_name, "%d", s->state);
}

static int h_replace_state(void *self, rt_sys_replace_fn fn, void *arg)
{
    struct sm *s = self;
    int st = s->state;
    void *n = NULL;
    if (!fn || fn(s->data, &st, arg, &n) < 0)
        return -ECANCELED;
    s->data = n;
    s->state = st;
    publish_state(s);
    return 0;
}

static void h_status(void *self, struct rt_sys_status *out)
{
    struct sm *s = self;
    snprintf(out->module, sizeof out->module, "%s", s->ops->name ? s->ops->name : "gen_statem");
    struct rt_sys_state st;
    h_get_state(s, &st);
    snprintf(out->state_name, sizeof out->state_name, "%s", st.state_name);
    if (s->ops->format_status)
        s->ops->format_status(s->state, s->data, out->formatted, sizeof out->formatted);
    else
        snprintf(out->formatted, sizeof out->formatted, "%s state=%s data=%p", out->module,
                 st.state_name, s->data);
}

static void h_terminate(void *self, rt_atom reason)
{
    sm_terminate(self, reason);
}

static int h_change_code(void *self, const char *vsn, const void *extra)
{
    struct sm *s = self;
    if (!s->ops->code_change)
        return 0;
    int st = s->state;
    void *n = NULL;
    int rc = s->ops->code_change(vsn, &st, s->data, extra, &n);
    if (rc < 0)
        return rc;
    s->state = st;
    s->data = n;
    publish_state(s);
    return 0;
}

static const struct rt__sys_hooks hooks = {
    .get_state = h_get_state,
    .replace_state = h_replace_state,
    .status = h_status,
    .terminate = h_terminate,
    .change_code = h_change_code,
};

/* ---- event processing ------------------------------------------------------------- */

static void call_state(struct sm *s, struct rt_statem_event *ev, struct rt_statem_result *r)
{
    memset(r, 0, sizeof *r);
    r->kind = RT_SM_KEEP_STATE;
    r->state = s->state;
    r->data = s->data;
    s->cur = ev->msg;
    if (s->ops->mode == RT_HANDLE_EVENT_FUNCTION) {
        s->ops->handle_event(ev, s->state, s->data, r);
        s->cur = NULL;
        return;
    }
    if (s->state < 0 || (size_t)s->state >= s->ops->n_states ||
        !s->ops->state_functions[s->state]) {
        rt_msg_free(ev->msg);
        ev->msg = NULL;
        sm_terminate(s, rt_atom_intern("bad_state"));
    }
    s->ops->state_functions[s->state](ev, s->state, s->data, r);
    s->cur = NULL;
}

static void free_actions(struct rt_statem_result *r, size_t from)
{
    for (size_t i = from; i < r->n_actions; i++)
        rt_msg_free(r->actions[i].msg);
}

/* Sends replies and collects the rest; returns -1 on a bad enter action. */
static int run_actions(struct sm *s, struct rt_statem_result *r, bool enter, bool *postpone,
                       struct evq *inserted, bool *hibernate)
{
    for (size_t i = 0; i < r->n_actions; i++) {
        struct rt_statem_action *a = &r->actions[i];
        switch (a->kind) {
        case RT_ACT_REPLY:
            rt__sys_event(&s->sys, RT_SYS_EV_OUT, a->msg ? a->msg->type : 0, a->from.pid, s->state);
            rt__reply(a->from.pid, a->from.alias, a->msg);
            a->msg = NULL;
            break;
        case RT_ACT_POSTPONE:
            if (enter)
                return -1;
            *postpone = true;
            break;
        case RT_ACT_NEXT_EVENT: {
            if (enter)
                return -1;
            struct rt_statem_event ev = {.type = a->type, .msg = a->msg};
            if (ev.type == RT_EV_CALL)
                ev.from.pid = rt_self();
            struct ev_node *n = node_new(&ev);
            if (!n)
                return -1;
            a->msg = NULL;
            q_push_back(inserted, n);
            break;
        }
        case RT_ACT_HIBERNATE:
            *hibernate = true;
            break;
        case RT_ACT_TIMER:
            break;
        }
    }
    return 0;
}

static void start_timers(struct sm *s, struct rt_statem_result *r, bool *event_zero,
                         struct rt_msg **event_zero_msg)
{
    for (size_t i = 0; i < r->n_actions; i++) {
        struct rt_statem_action *a = &r->actions[i];
        if (a->kind != RT_ACT_TIMER)
            continue;
        struct rt_statem_action copy = *a;
        a->msg = NULL;
        timer_start(s, &copy, event_zero, event_zero_msg);
    }
}

/* The state enter call; its result may not change the state. */
static void enter_state(struct sm *s, int old, bool *event_zero, struct rt_msg **ez_msg)
{
    struct rt_statem_result r;
    for (;;) {
        struct rt_statem_event ev = {.type = RT_EV_ENTER, .old_state = old};
        rt__sys_event(&s->sys, RT_SYS_EV_ENTER, 0, 0, s->state);
        call_state(s, &ev, &r);
        rt_msg_free(ev.msg);
        if (r.overflow) {
            free_actions(&r, 0);
            sm_terminate(s, RT_SYSTEM_LIMIT);
        }
        s->data = r.data;
        bool postpone = false, hib = false;
        struct evq inserted = {0};
        if (run_actions(s, &r, true, &postpone, &inserted, &hib) < 0) {
            free_actions(&r, 0);
            q_free(&inserted);
            sm_terminate(s, rt_atom_intern("bad_state_enter_action_from_state_function"));
        }
        if (hib)
            s->hibernate = true;
        if (r.kind == RT_SM_STOP) {
            free_actions(&r, 0);
            sm_terminate(s, r.reason);
        }
        if (r.kind == RT_SM_NEXT_STATE && r.state != s->state) {
            free_actions(&r, 0);
            sm_terminate(s, rt_atom_intern("bad_state_enter_return_from_state_function"));
        }
        start_timers(s, &r, event_zero, ez_msg);
        if (r.kind != RT_SM_REPEAT_STATE)
            return;
        old = s->state;
    }
}

/* Applies the result of handling `ev` (whose message r may have taken). */
static void transition(struct sm *s, struct rt_statem_event *ev, struct rt_statem_result *r,
                       bool initial)
{
    bool postpone = false, hib = false;
    struct evq inserted = {0};
    if (r->overflow) {
        free_actions(r, 0);
        rt_msg_free(ev->msg);
        ev->msg = NULL;
        sm_terminate(s, RT_SYSTEM_LIMIT);
    }
    s->data = r->data;
    if (run_actions(s, r, false, &postpone, &inserted, &hib) < 0) {
        free_actions(r, 0);
        q_free(&inserted);
        rt_msg_free(ev->msg);
        ev->msg = NULL;
        sm_terminate(s, RT_SYSTEM_LIMIT);
    }
    if (r->kind == RT_SM_STOP) {
        free_actions(r, 0);
        q_free(&inserted);
        rt_msg_free(ev->msg);
        ev->msg = NULL;
        sm_terminate(s, r->reason);
    }
    if (r->kind != RT_SM_KEEP_STATE && r->kind != RT_SM_NEXT_STATE &&
        r->kind != RT_SM_REPEAT_STATE && !(initial && r->kind == RT_SM_OK)) {
        free_actions(r, 0);
        q_free(&inserted);
        rt_msg_free(ev->msg);
        ev->msg = NULL;
        sm_terminate(s, rt_atom_intern("bad_return_from_state_function"));
    }
    if (postpone && !initial) {
        rt__sys_event(&s->sys, RT_SYS_EV_POSTPONE, ev->msg ? ev->msg->type : 0, ev->from.pid,
                      s->state);
        struct ev_node *n = node_new(ev);
        if (n) {
            ev->msg = NULL;
            q_push_back(&s->postponed, n);
        }
    } else if (!initial) {
        rt__sys_event(&s->sys, RT_SYS_EV_CONSUME, ev->msg ? ev->msg->type : 0, ev->from.pid,
                      s->state);
    }
    rt_msg_free(ev->msg);
    ev->msg = NULL;
    int old = s->state;
    bool changed = initial || (r->kind == RT_SM_NEXT_STATE && r->state != s->state) ||
                   (initial && r->kind == RT_SM_OK);
    if (r->kind == RT_SM_NEXT_STATE || r->kind == RT_SM_OK)
        s->state = r->state;
    if (changed && !initial) {
        timer_cancel(&s->state_timer);
        /* Postponed events are retried, oldest first, ahead of queued ones. */
        q_prepend(&s->queue, &s->postponed);
    }
    /* Inserted events go first, in action order. */
    q_prepend(&s->queue, &inserted);
    if (changed)
        publish_state(s);
    if (hib)
        s->hibernate = true;
    bool event_zero = false;
    struct rt_msg *ez_msg = NULL;
    if (s->ops->state_enter && (changed || r->kind == RT_SM_REPEAT_STATE))
        enter_state(s, initial ? s->state : old, &event_zero, &ez_msg);
    start_timers(s, r, &event_zero, &ez_msg);
    if (event_zero) {
        /* An event time-out zero is cancelled by any event already queued. */
        if (!s->queue.head)
            enqueue_timeout(s, RT_EV_TIMEOUT, 0, ez_msg);
        else
            rt_msg_free(ez_msg);
    }
}

static void process_event(struct sm *s, struct rt_statem_event *ev)
{
    struct rt_statem_result r;
    /* Any event cancels the event timeout. */
    if (ev->type != RT_EV_TIMEOUT)
        timer_cancel(&s->event_timer);
    rt__sys_event(&s->sys, RT_SYS_EV_IN, ev->msg ? ev->msg->type : 0, ev->from.pid, s->state);
    call_state(s, ev, &r);
    transition(s, ev, &r, false);
}

/* Turns a timer expiry into an event; false if it is stale. */
static bool timer_event(struct sm *s, const struct rt_msg *m, struct rt_statem_event *ev)
{
    struct timer_msg tm;
    if (m->size < sizeof tm)
        return false;
    memcpy(&tm, m->data, sizeof tm);
    struct sm_timer *t = find_timer(s, tm.type, tm.name, false);
    if (!t || !t->active || t->token != tm.token)
        return false;
    ev->type = tm.type;
    ev->timeout_name = tm.name;
    ev->msg = t->content;
    t->content = NULL;
    t->active = false;
    return true;
}

static void wake(void *p)
{
    sm_loop(p);
}

static _Noreturn void sm_loop(struct sm *s)
{
    for (;;) {
        struct rt_msg *m;
        if (s->sys.suspended) {
            m = rt_receive_match(rt__sys_match_suspended, &s->sys, RT_INFINITY);
        } else {
            struct ev_node *n = q_pop(&s->queue);
            if (n) {
                struct rt_statem_event ev = n->ev;
                rt_free(n);
                process_event(s, &ev);
                continue;
            }
            if (s->hibernate) {
                s->hibernate = false;
                rt_hibernate(wake, s);
            }
            m = rt_receive(s->hibernate_after > 0 ? s->hibernate_after : RT_INFINITY);
            if (!m) {
                s->hibernate = true;
                continue;
            }
        }
        if (!m)
            continue;
        if (m->type == RT_MSG_SYS) {
            rt__sys_handle(&s->sys, &hooks, s, m);
            continue;
        }
        if (m->type == RT_MSG_EXIT && s->sys.parent && m->from == s->sys.parent) {
            rt_atom why = (rt_atom)m->u64;
            rt_msg_free(m);
            sm_terminate(s, why);
        }
        struct rt_statem_event ev = {.type = RT_EV_INFO, .msg = m};
        uint32_t t = m->type;
        if (t == RT_MSG_STATEM_TIMER && m->from == rt_self()) {
            bool live = timer_event(s, m, &ev);
            rt_msg_free(m);
            if (!live)
                continue;
        } else if (t < RT_MSG_SYSTEM && (t & RT_GS_CALL_BIT)) {
            ev.type = RT_EV_CALL;
            ev.from.pid = m->from;
            ev.from.alias = m->ref;
            m->type = t & ~(RT_GS_CALL_BIT | RT_GS_CAST_BIT);
        } else if (t < RT_MSG_SYSTEM && (t & RT_GS_CAST_BIT)) {
            ev.type = RT_EV_CAST;
            m->type = t & ~RT_GS_CAST_BIT;
        }
        process_event(s, &ev);
    }
}

struct sm_start {
    const struct rt_gen_statem_ops *ops;
    void *arg;
};

static void sm_entry(void *arg, const struct rt_proc_starter *st)
{
    struct sm_start ss = *(struct sm_start *)arg;
    struct sm *s = rt_calloc(1, sizeof *s);
    if (!s)
        rt_proc_init_fail(st, RT_SYSTEM_LIMIT, RT_SYSTEM_LIMIT);
    rt_set_kind(RT_KIND_STATEM);
    rt_set_user(s);
    rt_defer(sm_cleanup, s);
    s->ops = ss.ops;
    s->hibernate_after = st->opts ? st->opts->hibernate_after : 0;
    rt__sys_init(&s->sys, "gen_statem", st->opts);
    struct rt_statem_result r;
    memset(&r, 0, sizeof r);
    r.kind = RT_SM_OK;
    ss.ops->init(ss.arg, &r);
    switch (r.kind) {
    case RT_SM_OK: {
        if (r.overflow) {
            free_actions(&r, 0);
            rt_proc_init_fail(st, RT_SYSTEM_LIMIT, RT_SYSTEM_LIMIT);
        }
        for (size_t i = 0; i < r.n_actions; i++) {
            if (r.actions[i].kind == RT_ACT_POSTPONE) {
                rt_atom bad = rt_atom_intern("bad_action_from_init");
                free_actions(&r, 0);
                rt_proc_init_fail(st, bad, bad);
            }
        }
        s->state = r.state;
        s->data = r.data;
        rt_proc_init_ack(st);
        struct rt_statem_event none = {.type = RT_EV_INTERNAL};
        transition(s, &none, &r, true);
        sm_loop(s);
    }
    case RT_SM_IGNORE:
        free_actions(&r, 0);
        rt_proc_init_ignore(st);
        rt_exit(RT_NORMAL);
    case RT_SM_ERROR:
        free_actions(&r, 0);
        rt_proc_init_fail(st, r.reason, RT_NORMAL);
    case RT_SM_STOP:
        free_actions(&r, 0);
        rt_proc_init_fail(st, r.reason, r.reason);
    default: {
        rt_atom bad = rt_atom_intern("bad_return_from_init");
        free_actions(&r, 0);
        rt_proc_init_fail(st, bad, bad);
    }
    }
}

static int start(const struct rt_gen_statem_ops *ops, void *arg, const struct rt_start_opts *opts,
                 bool link, rt_pid *out, rt_atom *reason)
{
    struct sm_start ss = {.ops = ops, .arg = arg};
    struct rt_start_opts o = {0};
    if (!ops || !ops->init)
        return -EINVAL;
    if (ops->mode == RT_HANDLE_EVENT_FUNCTION ? !ops->handle_event : !ops->state_functions)
        return -EINVAL;
    if (opts)
        o = *opts;
    if (!o.initial_call)
        o.initial_call = ops->name ? ops->name : "gen_statem";
    return link ? rt_proc_start_link(sm_entry, &ss, &o, out, reason)
                : rt_proc_start(sm_entry, &ss, &o, out, reason);
}

int rt_gen_statem_start_link(const struct rt_gen_statem_ops *ops, void *arg,
                             const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason)
{
    return start(ops, arg, opts, true, out, reason);
}

int rt_gen_statem_start(const struct rt_gen_statem_ops *ops, void *arg,
                        const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason)
{
    return start(ops, arg, opts, false, out, reason);
}

int rt_gen_statem_call(rt_pid pid, struct rt_msg *req, int64_t timeout_ms, struct rt_msg **reply,
                       rt_atom *reason)
{
    return rt_gen_server_call(pid, req, timeout_ms, reply, reason);
}

int rt_gen_statem_cast(rt_pid pid, struct rt_msg *msg)
{
    return rt_gen_server_cast(pid, msg);
}

int rt_gen_statem_reply(const struct rt_gs_from *from, struct rt_msg *reply)
{
    return rt_gen_server_reply(from, reply);
}

int rt_gen_statem_stop(rt_pid pid, rt_atom reason, int64_t timeout_ms, rt_atom *exit_reason)
{
    return rt_proc_stop(pid, reason, timeout_ms, exit_reason);
}
