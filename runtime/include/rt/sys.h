/*
 * sys.h: OTP's sys module: system messages that every behaviour process
 * (gen_server, supervisor, gen_statem, gen_event) answers inside its loop,
 * also while suspended and after hibernation.
 *
 * All rt_sys_* calls are made from process context and block up to
 * timeout_ms (RT_INFINITY allowed; OTP's default is RT_SYS_DEFAULT_TIMEOUT).
 * They send one RT_MSG_SYS message to the target and wait for the reply on
 * an alias, monitoring the target: common errors are
 *   -ETIMEDOUT   no answer (for example the target is not a behaviour);
 *   -ESRCH       the target is not alive;
 *   -ECONNRESET  the target exited before answering.
 * Function arguments (replace_state, install) run in the target process; the
 * bytes of their `arg` are copied into the request, so nothing refers to the
 * caller's memory after a timeout.
 */
#ifndef RT_SYS_H
#define RT_SYS_H

#include "rt/proc_lib.h"
#include "rt/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RT_SYS_DEFAULT_TIMEOUT 5000
#define RT_SYS_LOG_DEFAULT 10
#define RT_SYS_LOG_MAX 1024

/* What sys:get_state returns. gen_server and supervisor: `state`. gen_statem:
 * `state` is the data, `statem_state` the state and `state_name` its name.
 * gen_event (OTP's [{Module, Id, State}]): `state` is the manager's array
 * of `count` struct rt_ge_handler_state, newest handler first.
 * The state pointer refers to the target's memory: dereference it only
 * while the target is suspended, or if the state is immutable. */
struct rt_sys_state {
    void *state;
    int statem_state;
    char state_name[32];
    size_t count;
};

/* Runs in the target process. Returns 0 and writes *new_state, or -errno:
 * then the state stays unchanged and the caller gets -ECANCELED
 * (OTP's {callback_failed, ...}). For gen_statem, `state` is the data and
 * *statem_state may be changed. For gen_event it runs once per handler,
 * `state` being that handler's struct rt_ge_handler_state and *new_state
 * its new state; a handler for which it fails keeps its state and the
 * others still change (OTP's per-handler catch), so the call returns 0. */
typedef int (*rt_sys_replace_fn)(void *state, int *statem_state, void *arg, void **new_state);

enum rt_sys_run_status { RT_SYS_RUNNING = 0, RT_SYS_SUSPENDED };

/* format_status, one shape for every behaviour's callback (gen_server and
 * so supervisor, gen_event handlers; gen_statem's rt_statem_format_status_fn
 * takes its state as well): writes a text form of `state` into buf, at most
 * `cap` bytes (no NUL needed), and returns how many it wrote; a larger
 * value (what snprintf returns when it truncates) counts as cap. The
 * behaviour supplies the buffer and terminates the text. It runs in the
 * process that owns the state, for sys get_status (the admin API shows it)
 * and, just before a terminate for a reason other than
 * normal/shutdown/shutdown:*, for the crash report (rt_crash_report.state).
 * Both leave the process, so one text serves both: the place to leave out
 * or mask secrets (OTP's format_status/1). Without one, the text is
 * "<module> state=<address>". */
typedef size_t (*rt_format_status_fn)(const void *state, char *buf, size_t cap);

/* sys:get_status. */
struct rt_sys_status {
    rt_pid pid;
    rt_pid parent;
    char module[64];    /* ops->name */
    char behaviour[16]; /* "gen_server", "supervisor", "gen_statem", "gen_event" */
    enum rt_sys_run_status status;
    char state_name[32]; /* gen_statem's current state, else "" */
    char formatted[256]; /* format_status output */
    unsigned debug;      /* RT_DEBUG_* in effect */
    size_t log_len;      /* entries in the log ring */
};

/* sys:statistics. */
struct rt_sys_statistics {
    uint64_t start_time_ms; /* rt_now_ms() when statistics were enabled */
    uint64_t current_time_ms;
    uint64_t reductions; /* reductions since enabled */
    uint64_t messages_in;
    uint64_t messages_out;
};

/* One debug event (trace and log). */
enum rt_sys_event_kind {
    RT_SYS_EV_IN = 0,      /* {in, Msg} / {in, Msg, From} */
    RT_SYS_EV_OUT,         /* {out, Reply, To} */
    RT_SYS_EV_NOREPLY,     /* {noreply, State} */
    RT_SYS_EV_CONSUME,     /* gen_statem: event consumed in a state */
    RT_SYS_EV_POSTPONE,    /* gen_statem */
    RT_SYS_EV_ENTER,       /* gen_statem: state enter */
    RT_SYS_EV_START_TIMER, /* gen_statem */
    RT_SYS_EV_TERMINATE,
};
const char *rt_sys_event_name(enum rt_sys_event_kind k);

struct rt_sys_event {
    uint64_t time_ms;
    enum rt_sys_event_kind kind;
    uint32_t msg_type; /* the message's type (call/cast bits cleared) */
    rt_pid peer;       /* sender or reply target, 0 if none */
    int state;         /* gen_statem: the state at the event */
};

int rt_sys_get_state(rt_pid pid, int64_t timeout_ms, struct rt_sys_state *out);
/* Returns 0 and writes *out with the new state, or -ECANCELED when fn
 * failed (state unchanged). */
int rt_sys_replace_state(rt_pid pid, rt_sys_replace_fn fn, const void *arg, size_t arg_size,
                         int64_t timeout_ms, struct rt_sys_state *out);
/* While suspended, only system messages and the parent's exit are handled;
 * everything else stays queued, in order, until resume. */
int rt_sys_suspend(rt_pid pid, int64_t timeout_ms);
int rt_sys_resume(rt_pid pid, int64_t timeout_ms);
int rt_sys_get_status(rt_pid pid, int64_t timeout_ms, struct rt_sys_status *out);

enum rt_sys_flag { RT_SYS_OFF = 0, RT_SYS_ON, RT_SYS_GET };
/* statistics(Pid, true|false|get). With RT_SYS_GET: 0 and *out, or
 * -ENODATA when statistics are off (no_statistics). out may be NULL
 * otherwise. */
int rt_sys_statistics(rt_pid pid, enum rt_sys_flag flag, int64_t timeout_ms,
                      struct rt_sys_statistics *out);
/* trace(Pid, true|false): prints every event through rt_log (debug level). */
int rt_sys_trace(rt_pid pid, bool on, int64_t timeout_ms);
/* log(Pid, true|{true,N}|false): keeps a ring of the last `size` events
 * (0 = RT_SYS_LOG_DEFAULT, at most RT_SYS_LOG_MAX). */
int rt_sys_log(rt_pid pid, bool on, unsigned size, int64_t timeout_ms);
/* log(Pid, get): writes up to max events, oldest first, to out and the total
 * number held to *count. */
int rt_sys_log_get(rt_pid pid, struct rt_sys_event *out, size_t max, size_t *count,
                   int64_t timeout_ms);
/* sys:install: fn(event, arg) runs in the target process after every debug
 * event (gen_statem adds consume/postpone/enter/start_timer); it returns
 * true when done, which uninstalls it (a fun returning `done`). `arg_size`
 * bytes at `arg` are copied into the target; the copy is what fn gets.
 * At most RT_SYS_MAX_FUNS per process (-ENOSPC); installing the same fn
 * again replaces its argument. */
#define RT_SYS_MAX_FUNS 4
typedef bool (*rt_sys_debug_fn)(const struct rt_sys_event *ev, void *arg);
int rt_sys_install(rt_pid pid, rt_sys_debug_fn fn, const void *arg, size_t arg_size,
                   int64_t timeout_ms);
/* sys:remove: uninstalls fn (-ENOENT if not installed). */
int rt_sys_remove(rt_pid pid, rt_sys_debug_fn fn, int64_t timeout_ms);
/* no_debug: turns trace, log and statistics off and removes installed
 * functions. */
int rt_sys_no_debug(rt_pid pid, int64_t timeout_ms);
/* sys:terminate: the behaviour's terminate runs with `reason` and the
 * process exits with it. Returns once it has exited (0), like OTP. */
int rt_sys_terminate(rt_pid pid, rt_atom reason, int64_t timeout_ms);
/* sys:change_code: only while suspended (else -EBUSY); calls the
 * behaviour's code_change; -ECANCELED if it failed, -ENOSYS if the
 * behaviour has none (OTP's {error, {'EXIT', {undef, ...}}}); either way
 * the state is unchanged and the process runs on. */
int rt_sys_change_code(rt_pid pid, const char *old_vsn, const void *extra, size_t extra_size,
                       int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
