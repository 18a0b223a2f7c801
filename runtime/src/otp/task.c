/*
 * task.c: a function run in a linked, monitored process whose result comes
 * back as one message tagged with a fresh ref.
 *
 * The task process gets a heap block (fn, argument copy, owner, ref) that
 * it frees first thing, after moving the argument copy into its own
 * rt_alloc'd memory. Awaiting consumes the result, then the DOWN; it unlinks
 * before that so no EXIT is left behind for a trapping owner. All of these
 * arrive after the spawn, so awaiting looks only past the owner's receive
 * mark taken then: its cost does not depend on the owner's queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "otp_int.h"
#include "rt/task.h"

struct task_block {
    rt_task_fn fn;
    void *arg; /* the caller's pointer, or NULL with a copy in data */
    size_t arg_size;
    rt_pid owner;
    rt_ref ref;
    _Alignas(16) unsigned char data[];
};

/* Frees the result inside an undelivered result message. */
static void result_dtor(struct rt_msg *m)
{
    struct rt_msg *res = NULL;
    memcpy(&res, m->data, sizeof res);
    rt_msg_free(res);
}

static void task_entry(void *p)
{
    struct task_block *b = p;
    rt_task_fn fn = b->fn;
    rt_pid owner = b->owner;
    rt_ref ref = b->ref;
    void *arg = b->arg;
    if (b->arg_size) {
        arg = rt_alloc(b->arg_size);
        if (!arg) {
            free(b);
            rt_exit(RT_SYSTEM_LIMIT);
        }
        memcpy(arg, b->data, b->arg_size);
    }
    free(b);
    rt_set_kind(RT_KIND_TASK);
    struct rt_msg *res = fn(arg);
    struct rt_msg *m = rt_msg_new(RT_MSG_TASK_REPLY, sizeof res);
    if (!m) {
        rt_msg_free(res);
        rt_exit(RT_SYSTEM_LIMIT);
    }
    /* Passed by pointer: a result this process received must not be
     * freed with it when it exits below. */
    rt_msg_detach(res);
    memcpy(m->data, &res, sizeof res);
    m->ref = ref;
    /* The result message owns `res` until the owner takes it. */
    m->dtor = result_dtor;
    rt_send(owner, m);
}

int rt_task_async(rt_task_fn fn, const void *arg, size_t arg_size, struct rt_task *task)
{
    struct task_block *b = malloc(sizeof *b + arg_size);
    if (!b)
        return -ENOMEM;
    b->fn = fn;
    b->arg = arg_size ? NULL : (void *)arg;
    b->arg_size = arg_size;
    b->owner = rt_self();
    b->ref = rt_make_ref();
    if (arg_size)
        memcpy(b->data, arg, arg_size);
    rt_ref mref = 0;
    rt_pid pid = 0;
    struct rt_spawn_opts so = {
        .link = true,
        .monitor = true,
        .monitor_ref = &mref,
        .initial_call = "task",
        .kind = RT_KIND_TASK,
        .arg_free = free, /* task_entry frees it; a task that never runs cannot */
    };
    rt_ref ref = b->ref;
    rt_mark mark = rt_receive_mark();
    int rc = rt_spawn(task_entry, b, &so, &pid);
    if (rc < 0) {
        free(b);
        return rc;
    }
    task->pid = pid;
    task->mref = mref;
    task->ref = ref;
    task->owner = rt_self();
    task->mark = mark;
    return 0;
}

struct task_match {
    rt_ref ref, mref;
};

static bool match_task(const struct rt_msg *m, void *ctx)
{
    const struct task_match *t = ctx;
    return (m->type == RT_MSG_TASK_REPLY && m->ref == t->ref) ||
           (m->type == RT_MSG_DOWN && m->ref == t->mref);
}

static struct rt_msg *unwrap(struct rt_msg *m)
{
    struct rt_msg *res = NULL;
    memcpy(&res, m->data, sizeof res);
    rt_msg_free(m);
    return res;
}

/* The task is finished (result or DOWN seen): drop the link, its EXIT and
 * its DOWN. */
static void finish(struct rt_task *task, bool down_seen)
{
    rt_unlink(task->pid);
    if (!down_seen)
        rt__wait_down_since(task->mark, task->mref, RT_INFINITY, NULL);
    rt__flush_exit_since(task->mark, task->pid, 0);
    task->pid = 0;
}

static int await(struct rt_task *task, int64_t timeout_ms, struct rt_msg **result, rt_atom *reason,
                 bool kill_on_timeout)
{
    if (task->owner != rt_self() || !task->pid)
        return -EPERM;
    struct task_match tm = {task->ref, task->mref};
    struct rt_msg *m = rt_receive_match_since(task->mark, match_task, &tm, timeout_ms);
    if (!m) {
        if (!kill_on_timeout)
            return -ETIMEDOUT;
        rt_task_shutdown(task);
        return -ETIMEDOUT;
    }
    if (m->type == RT_MSG_DOWN) {
        rt_atom why = (rt_atom)m->u64;
        rt_msg_free(m);
        finish(task, true);
        if (reason)
            *reason = why;
        return -ECONNRESET;
    }
    struct rt_msg *res = unwrap(m);
    finish(task, false);
    *result = res;
    return 0;
}

int rt_task_await(struct rt_task *task, int64_t timeout_ms, struct rt_msg **result, rt_atom *reason)
{
    return await(task, timeout_ms, result, reason, true);
}

int rt_task_yield(struct rt_task *task, int64_t timeout_ms, struct rt_msg **result, rt_atom *reason)
{
    return await(task, timeout_ms, result, reason, false);
}

int rt_task_shutdown(struct rt_task *task)
{
    if (!task->pid || task->owner != rt_self())
        return 0;
    rt_unlink(task->pid);
    rt_exit_signal(task->pid, RT_KILL);
    rt__wait_down_since(task->mark, task->mref, RT_INFINITY, NULL);
    rt__flush_exit_since(task->mark, task->pid, 0);
    /* A result sent just before the kill. */
    struct task_match tm = {task->ref, 0};
    struct rt_msg *m = rt_receive_match_since(task->mark, match_task, &tm, 0);
    if (m)
        rt_msg_free(unwrap(m));
    task->pid = 0;
    return 0;
}

int rt_task_await_many(struct rt_task *tasks, size_t n, int64_t timeout_ms, struct rt_msg **results,
                       int *rcs)
{
    uint64_t deadline = timeout_ms >= 0 ? rt_now_ms() + (uint64_t)timeout_ms : 0;
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t left = RT_INFINITY;
        if (timeout_ms >= 0) {
            uint64_t now = rt_now_ms();
            left = now >= deadline ? 0 : (int64_t)(deadline - now);
        }
        struct rt_msg *res = NULL;
        rt_atom why = RT_NORMAL;
        int rc = rt_task_await(&tasks[i], left, &res, &why);
        results[i] = rc == 0 ? res : NULL;
        if (rcs)
            rcs[i] = rc;
        if (rc != 0 && !first)
            first = rc;
    }
    return first;
}
