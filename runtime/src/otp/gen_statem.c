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
 * dropped. A time-out zero starts no timer: the timer is marked active
 * and zero, and a marker node carrying its token goes into the internal
 * queue (an event time-out's at the end of the transition, in front, unless
 * a real event is queued, which would cancel it). A marker whose token no
 * longer matches (restarted, cancelled, state changed) is dropped when
 * popped, so only the last zero time-out of a kind is delivered.
 *
 * hibernate is a mode that lasts until the next event is processed: the
 * loop hibernates whenever it would wait, also after a system message.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "otp_int.h"
#include "rt/gen_statem.h"

struct ev_node {
    struct ev_node *next;
    uint64_t token; /* non-zero: a time-out zero marker for that timer token */
    struct rt_statem_event ev;
};

struct evq {
    struct ev_node *head, *tail;
};

struct sm_timer {
    bool active;
    bool zero; /* time-out zero: no timer runs, a queue marker delivers it */
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
    bool event_zero; /* the event timer went zero in this transition: place it */
    bool hibernate;  /* hibernate whenever idle, until an event is processed */
    bool awake;      /* just woken from hibernation: receive before sleeping */
    int64_t hibernate_after;
    struct rt_msg *cur;           /* the event message a callback is handling */
    enum rt_event_type last_type; /* the last event, for the termination report */
    bool had_event;
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

void rt_sm_next_call(struct rt_statem_result *r, const struct rt_gs_from *from, struct rt_msg *msg)
{
    size_t k = r->n_actions;
    rt_sm_next_event(r, RT_EV_CALL, msg);
    if (r->n_actions > k)
        r->actions[k].from = *from;
}

void rt_sm_next_generic_timeout(struct rt_statem_result *r, rt_atom name, struct rt_msg *msg)
{
    size_t k = r->n_actions;
    rt_sm_next_event(r, RT_EV_GENERIC_TIMEOUT, msg);
    if (r->n_actions > k)
        r->actions[k].name = name;
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

static void q_push_front(struct evq *q, struct ev_node *n)
{
    n->next = q->head;
    q->head = n;
    if (!q->tail)
        q->tail = n;
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
    if (!t->zero)
        rt_cancel_timer(t->tref);
    rt_msg_free(t->content);
    t->content = NULL;
    t->active = t->zero = false;
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

static _Noreturn void sm_terminate(struct sm *s, rt_atom reason);

/* Queues the marker that delivers zero timer t (in front, or at the back). */
static void enqueue_marker(struct sm *s, const struct sm_timer *t, bool front)
{
    struct rt_statem_event ev = {.type = t->type, .timeout_name = t->name};
    struct ev_node *n = node_new(&ev);
    if (!n)
        sm_terminate(s, RT_SYSTEM_LIMIT);
    n->token = t->token;
    if (front)
        q_push_front(&s->queue, n);
    else
        q_push_back(&s->queue, n);
}

static void timer_start(struct sm *s, const struct rt_statem_action *a)
{
    struct sm_timer *t = find_timer(s, a->type, a->name, !a->cancel);
    if (a->cancel) {
        if (t)
            timer_cancel(t);
        rt_msg_free(a->msg);
        return;
    }
    if (a->update && t && t->active) {
        rt_msg_free(t->content);
        t->content = a->msg;
        return;
    }
    if (!t) {
        rt_msg_free(a->msg);
        sm_terminate(s, RT_SYSTEM_LIMIT);
    }
    timer_cancel(t);
    /* An update of a timer that is not running is delivered at once, as a
     * time-out zero. */
    int64_t ms = a->update ? 0 : a->ms;
    if (a->abs && !a->update) {
        uint64_t now = rt_now_ms();
        ms = (uint64_t)a->ms > now ? (int64_t)((uint64_t)a->ms - now) : 0;
    }
    t->active = true;
    t->type = a->type;
    t->name = a->name;
    t->token = ++s->next_token;
    t->content = a->msg;
    rt__sys_event(&s->sys, RT_SYS_EV_START_TIMER, a->type, 0, s->state);
    if (ms <= 0) {
        t->zero = true;
        if (a->type == RT_EV_TIMEOUT)
            s->event_zero = true; /* placed once the transition is done */
        else
            enqueue_marker(s, t, false);
        return;
    }
    t->zero = false;
    struct timer_msg tm = {.type = a->type, .name = a->name, .token = t->token};
    struct rt_msg *m = rt_msg_copy(RT_MSG_STATEM_TIMER, &tm, sizeof tm);
    if (!m) {
        t->active = false; /* no timer runs: cleanup must not cancel one */
        rt_msg_free(t->content);
        t->content = NULL;
        sm_terminate(s, RT_SYSTEM_LIMIT);
    }
    if (rt_send_after(rt_self(), (uint64_t)ms, m, &t->tref) < 0) {
        t->active = false;
        t->content = NULL;
        rt_msg_free(a->msg);
    }
}

/* An event time-out zero set in this transition goes in front of the
 * queue, ahead of other time-out zero markers (OTP counts those as started
 * after it fired), unless an event is queued: that event would cancel it. */
static void place_event_zero(struct sm *s)
{
    struct sm_timer *t = &s->event_timer;
    bool pending = s->event_zero;
    s->event_zero = false;
    if (!pending || !t->active || !t->zero)
        return;
    for (const struct ev_node *n = s->queue.head; n; n = n->next) {
        if (!n->token) {
            timer_cancel(t);
            return;
        }
    }
    enqueue_marker(s, t, true);
}

/* The time-out event a popped marker stands for; false if it is stale. */
static bool zero_event(struct sm *s, uint64_t token, struct rt_statem_event *ev)
{
    struct sm_timer *t = find_timer(s, ev->type, ev->timeout_name, false);
    if (!t || !t->active || !t->zero || t->token != token)
        return false;
    ev->msg = t->content;
    t->content = NULL;
    t->active = t->zero = false;
    return true;
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

static const char *state_name(const struct sm *s, int state)
{
    if (s->ops->state_names && state >= 0 && (size_t)state < s->ops->n_states &&
        s->ops->state_names[state])
        return s->ops->state_names[state];
    return NULL;
}

static const char *module_name(const struct sm *s)
{
    return s->ops->name ? s->ops->name : "gen_statem";
}

static void state_text(const struct sm *s, char *buf, size_t len)
{
    const char *n = state_name(s, s->state);
    if (n)
        snprintf(buf, len, "%s", n);
    else
        snprintf(buf, len, "%d", s->state);
}

/* sys get_status's text: format_status's, or the default. */
static size_t sm_status_text(const void *self, char *buf, size_t size)
{
    const struct sm *s = self;
    if (size == 0)
        return 0;
    if (s->ops->format_status)
        return rt__format_end(buf, size, s->ops->format_status(s->state, s->data, buf, size - 1));
    char st[32];
    state_text(s, st, sizeof st);
    int w = snprintf(buf, size, "%s state=%s data=%p", module_name(s), st, s->data);
    return rt__format_end(buf, size, w < 0 ? 0 : (size_t)w);
}

static size_t q_len(const struct evq *q)
{
    size_t n = 0;
    for (const struct ev_node *e = q->head; e; e = e->next)
        n++;
    return n;
}

/* The crash report's text (OTP's gen_statem report: state, last event,
 * queue lengths, then the data as format_status describes it). The
 * machine's own fields come first, bounded, so that a long format_status
 * text is what the report's limit cuts. */
static size_t sm_crash_text(const void *self, char *buf, size_t size)
{
    const struct sm *s = self;
    char st[32];
    state_text(s, st, sizeof st);
    int w = snprintf(buf, size, "state=%s last_event=%s queued=%zu postponed=%zu ", st,
                     s->had_event ? rt_event_type_name(s->last_type) : "none", q_len(&s->queue),
                     q_len(&s->postponed));
    size_t n = rt__format_end(buf, size, w < 0 ? 0 : (size_t)w);
    return n + sm_status_text(s, buf + n, size - n);
}

static _Noreturn void sm_terminate(struct sm *s, rt_atom reason)
{
    rt__sys_event(&s->sys, RT_SYS_EV_TERMINATE, 0, 0, s->state);
    /* Before terminate, which may free the data format_status reads. */
    rt__crash_state(reason, sm_crash_text, s);
    free_all(s);
    if (s->ops->terminate)
        s->ops->terminate(reason, s->state, s->data);
    rt_exit(reason);
}

static void publish_state(const struct sm *s)
{
    char buf[32];
    state_text(s, buf, sizeof buf);
    rt_set_state_name(buf);
}

static void h_get_state(void *self, struct rt_sys_state *out)
{
    struct sm *s = self;
    memset(out, 0, sizeof *out);
    out->state = s->data;
    out->statem_state = s->state;
    state_text(s, out->state_name, sizeof out->state_name);
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
    snprintf(out->module, sizeof out->module, "%s", module_name(s));
    state_text(s, out->state_name, sizeof out->state_name);
    sm_status_text(s, out->formatted, sizeof out->formatted);
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
            /* From and Name as given: an inserted call answers its caller. */
            struct rt_statem_event ev = {
                .type = a->type, .from = a->from, .timeout_name = a->name, .msg = a->msg};
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

static void start_timers(struct sm *s, struct rt_statem_result *r)
{
    for (size_t i = 0; i < r->n_actions; i++) {
        struct rt_statem_action *a = &r->actions[i];
        if (a->kind != RT_ACT_TIMER)
            continue;
        struct rt_statem_action copy = *a;
        a->msg = NULL;
        timer_start(s, &copy);
    }
}

/* The state enter call; its result may not change the state. repeat_state
 * runs it again with the same old state (the state before the change). */
static void enter_state(struct sm *s, int old)
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
        start_timers(s, &r);
        if (r.kind != RT_SM_REPEAT_STATE)
            return;
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
    if (s->ops->state_enter && (changed || r->kind == RT_SM_REPEAT_STATE))
        enter_state(s, initial ? s->state : old);
    start_timers(s, r);
    place_event_zero(s);
}

static void process_event(struct sm *s, struct rt_statem_event *ev)
{
    struct rt_statem_result r;
    /* An event ends hibernation; its transition may ask for it again. */
    s->hibernate = false;
    s->had_event = true;
    s->last_type = ev->type;
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
    struct sm *s = p;
    s->awake = true;
    sm_loop(s);
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
                uint64_t token = n->token;
                rt_free(n);
                if (token && !zero_event(s, token, &ev))
                    continue; /* a stale time-out zero */
                process_event(s, &ev);
                continue;
            }
            /* Woken, it first receives what woke it; still hibernating
             * after that (no event came), it goes back to sleep. */
            if (s->hibernate && !s->awake)
                rt_hibernate(wake, s);
            s->awake = false;
            m = rt_receive(s->hibernate_after > 0 && !s->hibernate ? s->hibernate_after
                                                                   : RT_INFINITY);
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

/* The machine's control state, in the calling process, which it becomes. */
static struct sm *sm_new(const struct rt_gen_statem_ops *ops, const struct rt_start_opts *opts)
{
    struct sm *s = rt_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    rt_set_kind(RT_KIND_STATEM);
    rt_set_user(s);
    rt_defer(sm_cleanup, s);
    s->ops = ops;
    s->hibernate_after = opts ? opts->hibernate_after : 0;
    rt__sys_init(&s->sys, "gen_statem", opts);
    return s;
}

/* init's (or enter_loop's) actions: all but postpone. */
static bool init_actions_ok(const struct rt_statem_result *r)
{
    for (size_t i = 0; i < r->n_actions; i++)
        if (r->actions[i].kind == RT_ACT_POSTPONE)
            return false;
    return true;
}

/* Enters the initial state (its enter call, init's actions) and loops. */
static _Noreturn void sm_run(struct sm *s, struct rt_statem_result *r)
{
    s->state = r->state;
    s->data = r->data;
    struct rt_statem_event none = {.type = RT_EV_INTERNAL};
    transition(s, &none, r, true);
    sm_loop(s);
}

static void sm_entry(void *arg, const struct rt_proc_starter *st)
{
    struct sm_start ss = *(struct sm_start *)arg;
    struct sm *s = sm_new(ss.ops, st->opts);
    if (!s)
        rt_proc_init_fail(st, RT_SYSTEM_LIMIT, RT_SYSTEM_LIMIT);
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
        if (!init_actions_ok(&r)) {
            rt_atom bad = rt_atom_intern("bad_action_from_init");
            free_actions(&r, 0);
            rt_proc_init_fail(st, bad, bad);
        }
        rt_proc_init_ack(st);
        sm_run(s, &r);
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

static bool ops_ok(const struct rt_gen_statem_ops *ops)
{
    if (!ops)
        return false;
    return ops->mode == RT_HANDLE_EVENT_FUNCTION ? ops->handle_event != NULL
                                                 : ops->state_functions != NULL;
}

static int start(const struct rt_gen_statem_ops *ops, void *arg, const struct rt_start_opts *opts,
                 bool link, rt_pid *out, rt_atom *reason)
{
    struct sm_start ss = {.ops = ops, .arg = arg};
    struct rt_start_opts o = {0};
    if (!ops_ok(ops) || !ops->init)
        return -EINVAL;
    if (opts)
        o = *opts;
    if (!o.initial_call)
        o.initial_call = ops->name ? ops->name : "gen_statem";
    return link ? rt_proc_start_link(sm_entry, &ss, &o, out, reason)
                : rt_proc_start(sm_entry, &ss, &o, out, reason);
}

_Noreturn void rt_gen_statem_enter_loop(const struct rt_gen_statem_ops *ops,
                                        const struct rt_start_opts *opts, int state, void *data,
                                        struct rt_statem_result *actions)
{
    struct rt_statem_result r;
    memset(&r, 0, sizeof r);
    if (actions) {
        r = *actions;
        actions->n_actions = 0; /* the messages are the loop's now */
    }
    r.kind = RT_SM_OK;
    r.state = state;
    r.data = data;
    if (!ops_ok(ops)) {
        free_actions(&r, 0);
        rt_exit(RT_BADARG);
    }
    if (opts && opts->name && rt_whereis(opts->name) != rt_self()) {
        free_actions(&r, 0);
        rt_exit(rt_atom_intern("process_not_registered"));
    }
    if (r.overflow || !init_actions_ok(&r)) {
        free_actions(&r, 0);
        rt_exit(rt_atom_intern("bad_action_from_enter_loop"));
    }
    struct sm *s = sm_new(ops, opts);
    if (!s) {
        free_actions(&r, 0);
        rt_exit(RT_SYSTEM_LIMIT);
    }
    sm_run(s, &r);
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
