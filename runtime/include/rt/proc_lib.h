/*
 * proc_lib.h: the synchronous start protocol shared by every behaviour
 * (OTP's proc_lib), and the message types the behaviours reserve.
 *
 * A starter spawns the child (linked or not, optionally registered and
 * monitored) and blocks until the child acknowledges the end of its
 * initialisation with rt_proc_init_ack / rt_proc_init_fail /
 * rt_proc_init_ignore, until the child dies, or until the start timeout
 * passes (then the child is killed). The ack travels to a process alias of
 * the starter, so an ack that comes after a timeout is dropped.
 *
 * The child learns its parent through rt_parent() and is labelled with the
 * initial call for introspection; crash reports for reasons other than
 * normal/shutdown/shutdown:* come from the runtime itself.
 */
#ifndef RT_PROC_LIB_H
#define RT_PROC_LIB_H

#include "rt/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A start that the child asked to be ignored (OTP's `ignore`): not an error,
 * so a positive value; nothing is running afterwards. */
#define RT_IGNORE 1

/* Message types reserved by the behaviours, in the runtime's system range. */
#define RT_MSG_ACK (RT_MSG_SYSTEM + 0x20)          /* init ack, proc_lib */
#define RT_MSG_SYS (RT_MSG_SYSTEM + 0x21)          /* a sys request, see sys.h */
#define RT_MSG_GS_TIMEOUT (RT_MSG_SYSTEM + 0x22)   /* gen_server timeout info */
#define RT_MSG_TASK_REPLY (RT_MSG_SYSTEM + 0x23)   /* a task's result */
#define RT_MSG_STATEM_TIMER (RT_MSG_SYSTEM + 0x24) /* gen_statem timer expiry */
#define RT_MSG_SUP (RT_MSG_SYSTEM + 0x25)          /* supervisor internal */

/* Debug flags for a behaviour's initial sys debug options. */
#define RT_DEBUG_TRACE 0x1u      /* sys:trace(Pid, true) */
#define RT_DEBUG_LOG 0x2u        /* sys:log(Pid, true) */
#define RT_DEBUG_STATISTICS 0x4u /* sys:statistics(Pid, true) */

/* Options common to every behaviour's start. All-zero (or NULL) = defaults:
 * not registered, no start timeout, no debug. */
struct rt_start_opts {
    const char *name;         /* register the child under this name (OTP {local,N}) */
    int64_t timeout_ms;       /* start (init) timeout; 0 or RT_INFINITY = none */
    bool monitor;             /* start_monitor: also monitor the child */
    rt_ref *monitor_ref;      /* out, with .monitor, written on success */
    size_t stack_size;        /* 0 = runtime default */
    const char *initial_call; /* introspection label; default per behaviour */
    int64_t hibernate_after;  /* gen_server/gen_statem: hibernate when idle this long; 0 = never */
    unsigned debug;           /* RT_DEBUG_* */
    unsigned log_size;        /* ring buffer size for RT_DEBUG_LOG (0 = 10) */
};

/* Handed to the child's entry: where its ack goes. Copy it; it is valid
 * only until the entry function returns (it lives on the child's stack). */
struct rt_proc_starter {
    rt_pid pid;                       /* the starter */
    rt_ref ack;                       /* alias of the starter the ack is sent to */
    const struct rt_start_opts *opts; /* the starter's options; valid until ack */
};

typedef void (*rt_proc_entry)(void *arg, const struct rt_proc_starter *starter);

/* Process context; blocks until the child acks, dies or times out.
 * Spawns entry(arg, starter) (linked with _link, as OTP's start_link) and
 * waits for its ack. `arg` is passed as is: it must stay valid until the
 * ack (the starter blocks meanwhile, so its stack is fine).
 * Returns:
 *   0          the child acked success; *out = its pid.
 *   RT_IGNORE  the child called rt_proc_init_ignore; it exits normal.
 *   -ECHILD    the child failed (rt_proc_init_fail, or died before acking);
 *              *reason = the failure reason.
 *   -EEXIST    opts->name is taken: *out = the pid holding it
 *              ({already_started, Pid}), *reason = RT_UNDEFINED. A holder
 *              one of whose spawners has exited (an orphan, on its way out
 *              after its supervisor was killed) is waited for first, up to
 *              5 s or the start timeout (which the wait counts against),
 *              once per holder (runtime/src/otp/README.md).
 *   -ETIMEDOUT the start timeout passed; the child was killed.
 *   -EAGAIN/-ENOMEM  spawn failed.
 * `out` and `reason` may be NULL. A starter not trapping exits that links to
 * a child exiting abnormally dies with it, as in OTP. */
int rt_proc_start_link(rt_proc_entry entry, void *arg, const struct rt_start_opts *opts,
                       rt_pid *out, rt_atom *reason);
int rt_proc_start(rt_proc_entry entry, void *arg, const struct rt_start_opts *opts, rt_pid *out,
                  rt_atom *reason);

/* Child, process context. Acknowledge: init succeeded (proc_lib:init_ack). */
void rt_proc_init_ack(const struct rt_proc_starter *st);
/* Child. Acknowledge ignore; the caller then normally returns/exits normal. */
void rt_proc_init_ignore(const struct rt_proc_starter *st);
/* Child. proc_lib:init_fail: acks the failure `reason` synchronously, then
 * exits with `exit_reason`. */
_Noreturn void rt_proc_init_fail(const struct rt_proc_starter *st, rt_atom reason,
                                 rt_atom exit_reason);

/* Process context; blocks. proc_lib:stop: asks `pid` to terminate with
 * `reason` through the sys protocol (the behaviour's terminate runs), waits
 * up to timeout_ms (RT_INFINITY) for it to exit. Returns 0 when it exited
 * with `reason`; -ESRCH if it was not alive (noproc); -ETIMEDOUT (the
 * process is left running); -ECONNRESET if it exited with another reason,
 * written to *exit_reason (may be NULL). */
int rt_proc_stop(rt_pid pid, rt_atom reason, int64_t timeout_ms, rt_atom *exit_reason);

#ifdef __cplusplus
}
#endif
#endif
