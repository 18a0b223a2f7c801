/*
 * task.h: run a function in its own process and await its result (Elixir's
 * Task / OTP's rpc-style fan-out), for parallel work such as upstream calls.
 *
 * A task is spawned linked to and monitored by its owner (the caller of
 * rt_task_async). Only the owner may await it. The result is a message that
 * passes to the owner. A task that crashes takes its owner down through the
 * link unless the owner traps exits; then the await reports the reason.
 * Awaiting also removes the link and flushes the task's EXIT and DOWN, so a
 * finished task leaves nothing in the owner's mailbox.
 */
#ifndef RT_TASK_H
#define RT_TASK_H

#include "rt/proc_lib.h"
#include "rt/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs in the task process; returns the result message (or NULL), which
 * passes to the owner. */
typedef struct rt_msg *(*rt_task_fn)(void *arg);

/* The owner's handle: plain data, kept by the owner. */
struct rt_task {
    rt_pid pid;
    rt_ref mref; /* monitor of the task */
    rt_ref ref;  /* tags the result message */
    rt_pid owner;
    rt_mark mark; /* the owner's mailbox before the spawn: awaiting skips
                     what was queued earlier */
};

/* Process context. Starts fn(arg) in a new process linked to the caller.
 * With arg_size > 0 the bytes at arg are copied into the task's memory;
 * otherwise the pointer is passed as is (it must stay valid until the task
 * is done). 0 and *task, or -EAGAIN/-ENOMEM. */
int rt_task_async(rt_task_fn fn, const void *arg, size_t arg_size, struct rt_task *task);

/* Process context, owner only; blocks up to timeout_ms (RT_INFINITY).
 * 0 and *result (the owner frees it; may be NULL); -ECONNRESET with
 * *reason when the task exited without a result (the owner only sees this
 * when trapping exits); -ETIMEDOUT: the task is killed (unlike Elixir, which
 * exits the caller); -EPERM if the caller is not the owner. Afterwards the
 * task is finished and nothing of it remains in the mailbox. */
int rt_task_await(struct rt_task *task, int64_t timeout_ms, struct rt_msg **result,
                  rt_atom *reason);

/* Like rt_task_await, but on timeout the task keeps running and may be
 * awaited again (Task.yield): -ETIMEDOUT. */
int rt_task_yield(struct rt_task *task, int64_t timeout_ms, struct rt_msg **result,
                  rt_atom *reason);

/* Kills the task (brutal) unless it has finished; frees a result that was
 * already sent. Always 0. */
int rt_task_shutdown(struct rt_task *task);

/* Fan-in: awaits all n tasks within one overall timeout. results[i] gets
 * each result (NULL on failure) and rcs[i] each task's code as
 * rt_task_await's (rcs may be NULL). Tasks unfinished at the deadline are
 * killed. Returns 0 if every task produced a result, else the first
 * non-zero code in task order. */
int rt_task_await_many(struct rt_task *tasks, size_t n, int64_t timeout_ms, struct rt_msg **results,
                       int *rcs);

#ifdef __cplusplus
}
#endif
#endif
