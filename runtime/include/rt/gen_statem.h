/*
 * gen_statem.h: OTP's gen_statem on Tandem's processes.
 *
 * States are ints (an enum of the user's). In RT_STATE_FUNCTIONS mode the
 * state indexes ops->state_functions (OTP's Module:State/3); in
 * RT_HANDLE_EVENT_FUNCTION mode ops->handle_event handles every event
 * (OTP's Module:handle_event/4). With ops->state_enter, an RT_EV_ENTER event
 * is delivered on every state change, for the initial state, and on
 * repeat_state.
 *
 * Calls and casts use gen_server's wire protocol (RT_GS_CALL_BIT /
 * RT_GS_CAST_BIT), so rt_gen_server_call/cast work on a gen_statem too;
 * sys messages are answered by the loop, also while suspended or hibernated.
 *
 * An event's message belongs to the loop and is freed after the callback
 * returns, unless the callback takes it (rt_sm_take) or postpones the event
 * (the loop keeps it and delivers it again). Messages given to actions
 * (replies, next_event contents, timeout contents) pass to the loop.
 *
 * The behaviour owns its process's user pointer (rt_set_user): callbacks
 * must not change it.
 *
 * Time-out zero (OTP): no timer runs; the time-out event is queued after
 * the events already queued, and a time-out of the same type (and name)
 * started or cancelled before it is delivered replaces or cancels it. An
 * event time-out zero is cancelled by any event queued before it and is
 * delivered before other time-out zero events.
 *
 * hibernate lasts until the next event: a hibernated machine woken by a
 * system message (sys suspend, get_state, ...) or by a stale timer goes
 * back to hibernation.
 *
 * Terminating with a reason other than normal/shutdown/shutdown:*, the
 * machine formats its state name, last event, queue lengths and its data
 * as format_status describes it into its crash report
 * (rt_crash_report.state), as a gen_server does: before terminate runs,
 * which may free the data.
 *
 * A callback fills struct rt_statem_result with the rt_sm_* helpers. The
 * default result is keep_state with the data unchanged (r->data preset to
 * the current data; assign it to replace the data). Actions run in the
 * order added; for timeouts of the same type (and name) the last wins.
 */
#ifndef RT_GEN_STATEM_H
#define RT_GEN_STATEM_H

#include "rt/gen_server.h"
#include "rt/proc_lib.h"
#include "rt/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rt_statem_mode { RT_STATE_FUNCTIONS = 0, RT_HANDLE_EVENT_FUNCTION };

enum rt_event_type {
    RT_EV_CALL = 0, /* {call, From}: ev->from */
    RT_EV_CAST,
    RT_EV_INFO,
    RT_EV_TIMEOUT, /* event timeout */
    RT_EV_STATE_TIMEOUT,
    RT_EV_GENERIC_TIMEOUT, /* {timeout, Name}: ev->timeout_name */
    RT_EV_INTERNAL,        /* only from next_event */
    RT_EV_ENTER,           /* state enter call: ev->old_state */
};
const char *rt_event_type_name(enum rt_event_type t);

struct rt_statem_event {
    enum rt_event_type type;
    struct rt_gs_from from; /* RT_EV_CALL */
    rt_atom timeout_name;   /* RT_EV_GENERIC_TIMEOUT */
    int old_state;          /* RT_EV_ENTER */
    struct rt_msg *msg;     /* content, or NULL (see rt_sm_take) */
};

enum rt_statem_kind {
    RT_SM_KEEP_STATE = 0, /* keep_state / keep_state_and_data */
    RT_SM_NEXT_STATE,
    RT_SM_REPEAT_STATE,
    RT_SM_STOP,
    RT_SM_OK,     /* init: {ok, State, Data, Actions} (set by rt_sm_init_ok) */
    RT_SM_IGNORE, /* init only */
    RT_SM_ERROR,  /* init only: {error, Reason} */
};

enum rt_statem_action_kind {
    RT_ACT_POSTPONE = 0,
    RT_ACT_NEXT_EVENT,
    RT_ACT_REPLY,
    RT_ACT_TIMER, /* event, state or generic timeout: start, cancel or update */
    RT_ACT_HIBERNATE,
};

#define RT_STATEM_MAX_ACTIONS 16

struct rt_statem_action {
    enum rt_statem_action_kind kind;
    enum rt_event_type type; /* next_event type; timer type (TIMEOUT/STATE_/GENERIC_) */
    struct rt_gs_from from;  /* reply */
    rt_atom name;            /* generic timer name */
    int64_t ms;              /* timer: ms (absolute deadline with abs), RT_INFINITY = cancel */
    bool abs;                /* ms is an rt_now_ms() deadline */
    bool update;             /* {T, update, Msg}: change content, keep expiry */
    bool cancel;
    struct rt_msg *msg;
};

struct rt_statem_result {
    enum rt_statem_kind kind;
    int state;  /* next_state / init's state */
    void *data; /* preset to the current data */
    rt_atom reason;
    size_t n_actions;
    struct rt_statem_action actions[RT_STATEM_MAX_ACTIONS];
    bool overflow; /* too many actions: the server stops with system_limit */
};

typedef void (*rt_sm_state_fn)(struct rt_statem_event *ev, int state, void *data,
                               struct rt_statem_result *r);

/* format_status: rt_format_status_fn (sys.h) with the machine's state, the
 * data being what it describes; the same rules (at most cap bytes, returns
 * the length, runs for sys get_status and for the crash report, the place
 * to leave secrets out). Without one, the text is
 * "<name> state=<state name> data=<address>". */
typedef size_t (*rt_statem_format_status_fn)(int state, const void *data, char *buf, size_t cap);

struct rt_gen_statem_ops {
    const char *name;
    enum rt_statem_mode mode;
    bool state_enter;
    /* Required: rt_sm_init_ok(r, state, data) (+ actions), rt_sm_ignore,
     * rt_sm_stop, rt_sm_error. */
    void (*init)(void *arg, struct rt_statem_result *r);
    const rt_sm_state_fn *state_functions; /* RT_STATE_FUNCTIONS, indexed by state */
    size_t n_states;                       /* entries in state_functions/state_names */
    const char *const *state_names;        /* optional, for introspection */
    rt_sm_state_fn handle_event;           /* RT_HANDLE_EVENT_FUNCTION */
    void (*terminate)(rt_atom reason, int state, void *data);
    int (*code_change)(const char *old_vsn, int *state, void *data, const void *extra,
                       void **new_data);
    /* Optional: see rt_statem_format_status_fn. */
    rt_statem_format_status_fn format_status;
};

/* Result helpers (inside callbacks). */
void rt_sm_init_ok(struct rt_statem_result *r, int state, void *data);
void rt_sm_next_state(struct rt_statem_result *r, int state);
void rt_sm_keep_state(struct rt_statem_result *r);
void rt_sm_repeat_state(struct rt_statem_result *r);
void rt_sm_stop(struct rt_statem_result *r, rt_atom reason);
/* stop_and_reply: `reply` to `from` is sent, then terminate runs (as OTP). */
void rt_sm_stop_reply(struct rt_statem_result *r, rt_atom reason, const struct rt_gs_from *from,
                      struct rt_msg *reply);
void rt_sm_ignore(struct rt_statem_result *r);
void rt_sm_error(struct rt_statem_result *r, rt_atom reason);

/* Actions. */
void rt_sm_postpone(struct rt_statem_result *r);
/* {next_event, Type, Msg}. For {call, From} and {{timeout, Name}} use the
 * two below: this one leaves from and timeout_name empty. */
void rt_sm_next_event(struct rt_statem_result *r, enum rt_event_type type, struct rt_msg *msg);
/* {next_event, {call, From}, Msg}: the inserted call can be answered
 * (rt_sm_reply) to `from`, for instance the caller of the event that
 * inserts it. */
void rt_sm_next_call(struct rt_statem_result *r, const struct rt_gs_from *from, struct rt_msg *msg);
/* {next_event, {timeout, Name}, Msg}. */
void rt_sm_next_generic_timeout(struct rt_statem_result *r, rt_atom name, struct rt_msg *msg);
void rt_sm_reply(struct rt_statem_result *r, const struct rt_gs_from *from, struct rt_msg *reply);
/* Event timeout (cancelled by any event); ms 0 = queued after the events
 * already queued. */
void rt_sm_event_timeout(struct rt_statem_result *r, int64_t ms, struct rt_msg *msg);
/* State timeout (cancelled by a state change; RT_INFINITY cancels). */
void rt_sm_state_timeout(struct rt_statem_result *r, int64_t ms, struct rt_msg *msg);
/* Named generic timeout (survives state changes; RT_INFINITY cancels). */
void rt_sm_generic_timeout(struct rt_statem_result *r, rt_atom name, int64_t ms,
                           struct rt_msg *msg);
/* Low level: any timer action (type RT_EV_TIMEOUT, RT_EV_STATE_TIMEOUT or
 * RT_EV_GENERIC_TIMEOUT), absolute or relative. */
void rt_sm_timer(struct rt_statem_result *r, enum rt_event_type type, rt_atom name, int64_t ms,
                 bool abs, struct rt_msg *msg);
void rt_sm_cancel_timer(struct rt_statem_result *r, enum rt_event_type type, rt_atom name);
/* {Type, update, Msg}: new content, same expiry; if not running, the event
 * is delivered at once (like time-out zero). */
void rt_sm_update_timer(struct rt_statem_result *r, enum rt_event_type type, rt_atom name,
                        struct rt_msg *msg);
void rt_sm_hibernate(struct rt_statem_result *r);
/* Takes the event's message: the callback now owns it. */
struct rt_msg *rt_sm_take(struct rt_statem_event *ev);

/* Process context; blocks until init returns. As rt_gen_server_start_link. */
int rt_gen_statem_start_link(const struct rt_gen_statem_ops *ops, void *arg,
                             const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason);
int rt_gen_statem_start(const struct rt_gen_statem_ops *ops, void *arg,
                        const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason);
/* gen_statem:enter_loop: turns the calling process into a state machine in
 * `state` with `data`, as if init had returned rt_sm_init_ok with the
 * actions in *actions (NULL for none; fill it with the rt_sm_* action
 * helpers: its messages pass to the loop; postpone is refused). ops->init
 * is not called and may be NULL. The caller's parent (rt_parent) becomes
 * the machine's parent; the behaviour takes over the process's user
 * pointer. From opts (may be NULL) it uses hibernate_after, debug and
 * log_size; with opts->name the caller must already be registered under
 * that name. Process context; never returns: the process exits with
 * badarg (bad ops), process_not_registered or bad_action_from_enter_loop
 * when it cannot start. */
_Noreturn void rt_gen_statem_enter_loop(const struct rt_gen_statem_ops *ops,
                                        const struct rt_start_opts *opts, int state, void *data,
                                        struct rt_statem_result *actions);
/* As rt_gen_server_call / _cast / _reply / _stop. */
int rt_gen_statem_call(rt_pid pid, struct rt_msg *req, int64_t timeout_ms, struct rt_msg **reply,
                       rt_atom *reason);
int rt_gen_statem_cast(rt_pid pid, struct rt_msg *msg);
int rt_gen_statem_reply(const struct rt_gs_from *from, struct rt_msg *reply);
int rt_gen_statem_stop(rt_pid pid, rt_atom reason, int64_t timeout_ms, rt_atom *exit_reason);

#ifdef __cplusplus
}
#endif
#endif
