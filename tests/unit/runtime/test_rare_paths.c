/*
 * test_rare_paths.c: what the runtime releases on paths that are rare in
 * real use and so go unseen without fault injection: a process that never
 * runs (its first stack cannot be had: rt_fault.h fails the nth stack
 * allocation) and a process ended while it holds messages it received.
 * Leaks show here as a count (arguments released, messages_live) and, in
 * sanitizer builds, as LeakSanitizer reports.
 */
#include "rt/gen_server.h"
#include "rt/task.h"
#include "rt_fault.h"
#include "rt_test.h"

#include <unistd.h>

enum { T_PING = 1, T_PAYLOAD, T_HELD };

static _Atomic int entries_run;
static _Atomic int args_freed;

static void count_entry(void *arg)
{
    atomic_fetch_add(&entries_run, 1);
    free(arg);
}

static void count_arg_free(void *arg)
{
    atomic_fetch_add(&args_freed, 1);
    free(arg);
}

START_TEST(a_process_that_never_runs_releases_what_its_spawner_handed_it)
{
    rt_test_start(1);
    atomic_store(&entries_run, 0);
    atomic_store(&args_freed, 0);
    rt__test_stack_fail_nth(1);
    rt_pid pid;
    struct rt_spawn_opts o = {.arg_free = count_arg_free};
    ck_assert_int_eq(rt_spawn(count_entry, malloc(64), &o, &pid), 0);
    rt_atom reason = RT_UNDEFINED;
    ck_assert_int_eq(rt_join(pid, rt_test_scaled(5000), &reason), 0);
    ck_assert_uint_eq(reason, RT_SYSTEM_LIMIT);
    ck_assert_int_eq(atomic_load(&entries_run), 0);
    ck_assert_int_eq(atomic_load(&args_freed), 1);
    rt_test_stop();
}
END_TEST

START_TEST(only_the_nth_stack_allocation_fails_and_arg_free_is_not_called_for_one_that_ran)
{
    rt_test_start(1);
    atomic_store(&entries_run, 0);
    atomic_store(&args_freed, 0);
    rt__test_stack_fail_nth(3);
    struct rt_spawn_opts o = {.arg_free = count_arg_free};
    rt_pid pids[5];
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(rt_spawn(count_entry, malloc(16), &o, &pids[i]), 0);
    int limited = 0;
    for (int i = 0; i < 5; i++) {
        rt_atom reason = RT_UNDEFINED;
        ck_assert_int_eq(rt_join(pids[i], rt_test_scaled(5000), &reason), 0);
        limited += reason == RT_SYSTEM_LIMIT;
    }
    ck_assert_int_eq(limited, 1);
    ck_assert_int_eq(atomic_load(&entries_run), 4);
    ck_assert_int_eq(atomic_load(&args_freed), 1);
    rt_test_stop();
}
END_TEST

static struct rt_msg *task_fn(void *arg)
{
    (void)arg;
    return rt_msg_new(T_PAYLOAD, 0);
}

/* rt_task_async hands the task a block of its own (freed by the task);
 * a task that never runs must not leak it. */
static void task_owner(void *arg)
{
    (void)arg;
    rt_trap_exit(true);
    struct rt_task t;
    rt__test_stack_fail_nth(1);
    ck_assert_int_eq(rt_task_async(task_fn, "copied", 7, &t), 0);
    struct rt_msg *res = NULL;
    rt_atom reason = RT_UNDEFINED;
    ck_assert_int_eq(rt_task_await(&t, rt_test_scaled(5000), &res, &reason), -ECONNRESET);
    ck_assert_uint_eq(reason, RT_SYSTEM_LIMIT);
    ck_assert_ptr_null(res);
    rt_msg_free(rt_receive(0)); /* the task's EXIT, if it is still queued */
}

START_TEST(a_task_that_never_runs_leaks_nothing)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(task_owner, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void gs_init(void *arg, struct rt_gs_result *r)
{
    (void)arg;
    r->state = NULL;
}

static const struct rt_gen_server_ops gs_ops = {.name = "never_runs", .init = gs_init};

/* proc_lib hands the child a start block (the child frees it). */
static void gs_starter(void *arg)
{
    (void)arg;
    rt_trap_exit(true);
    rt__test_stack_fail_nth(1);
    rt_pid pid = 0;
    rt_atom reason = RT_UNDEFINED;
    ck_assert_int_eq(rt_gen_server_start_link(&gs_ops, NULL, NULL, &pid, &reason), -ECHILD);
    ck_assert_uint_eq(reason, RT_SYSTEM_LIMIT);
}

START_TEST(a_gen_server_that_never_runs_leaks_nothing)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(gs_starter, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

/* ---- messages held when a process ends ---------------------------------- */

static _Atomic int held_ready;

/* Receives `n` messages, keeps them in locals (one in a heap block of its
 * own), frees none, and waits to be ended. */
static void holder(void *arg)
{
    int n = (int)(intptr_t)arg;
    struct rt_msg **kept = rt_alloc((size_t)n * sizeof(*kept));
    for (int i = 0; i < n; i++)
        kept[i] = recv_type(T_HELD, RT_INFINITY);
    atomic_store(&held_ready, 1);
    /* A message received and freed is not freed again at the end. */
    rt_msg_free(recv_type(T_PING, RT_INFINITY));
    for (;;)
        rt_sleep(1000);
}

static rt_pid start_holder(int n)
{
    atomic_store(&held_ready, 0);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(holder, (void *)(intptr_t)n, NULL, &pid), 0);
    for (int i = 0; i < n; i++) {
        struct rt_msg *m = rt_msg_new(T_HELD, 256);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(rt_send(pid, m), 0);
    }
    for (int i = 0; i < 5000 && !atomic_load(&held_ready); i++)
        usleep(1000);
    ck_assert(atomic_load(&held_ready));
    ck_assert_int_eq(rt_send(pid, rt_msg_new(T_PING, 0)), 0);
    return pid;
}

START_TEST(a_process_killed_between_receive_and_free_leaks_no_message)
{
    rt_test_start(2);
    rt_pid pid = start_holder(3);
    ck_assert_int_eq(rt_exit_signal(pid, RT_KILL), 0);
    rt_atom reason = RT_UNDEFINED;
    ck_assert_int_eq(rt_join(pid, rt_test_scaled(5000), &reason), 0);
    ck_assert_uint_eq(reason, RT_KILLED);
    rt_test_stop(); /* messages_live == 0 */
}
END_TEST

static void exits_holding(void *arg)
{
    (void)arg;
    struct rt_msg *m = rt_receive(RT_INFINITY);
    ck_assert_ptr_nonnull(m);
    rt_exit(RT_SHUTDOWN);
}

START_TEST(a_process_that_exits_holding_a_message_leaks_it_not)
{
    rt_test_start(1);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(exits_holding, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_send(pid, rt_msg_new(T_HELD, 32)), 0);
    rt_atom reason = RT_UNDEFINED;
    ck_assert_int_eq(rt_join(pid, rt_test_scaled(5000), &reason), 0);
    ck_assert_uint_eq(reason, RT_SHUTDOWN);
    rt_test_stop();
}
END_TEST

/* A message sent on as received, and one detached and handed over by
 * pointer, belong to their new owner: their first holder's exit frees
 * neither (ASan would report the use after free). */
enum { T_CARRIER = 7 };

static void forwarder(void *arg)
{
    rt_pid to = (rt_pid)(uintptr_t)arg;
    struct rt_msg *a = recv_type(T_PAYLOAD, RT_INFINITY);
    struct rt_msg *b = recv_type(T_HELD, RT_INFINITY);
    ck_assert_int_eq(rt_send(to, a), 0);
    rt_msg_detach(b);
    struct rt_msg *c = rt_msg_new(T_CARRIER, sizeof b);
    memcpy(c->data, &b, sizeof b);
    ck_assert_int_eq(rt_send(to, c), 0);
    rt_exit(RT_SHUTDOWN);
}

static void final_receiver(void *arg)
{
    (void)arg;
    rt_pid me = rt_self();
    rt_pid fw;
    rt_ref mref = 0;
    struct rt_spawn_opts o = {.monitor = true, .monitor_ref = &mref};
    ck_assert_int_eq(rt_spawn(forwarder, (void *)(uintptr_t)me, &o, &fw), 0);
    struct rt_msg *a = rt_msg_new(T_PAYLOAD, 8);
    memcpy(a->data, "payload", 8);
    ck_assert_int_eq(rt_send(fw, a), 0);
    ck_assert_int_eq(rt_send(fw, rt_msg_new(T_HELD, 8)), 0);
    struct rt_msg *down = rt_receive_ref(mref, rt_test_scaled(5000));
    ck_assert_ptr_nonnull(down);
    ck_assert_uint_eq(down->u64, RT_SHUTDOWN); /* gone: whatever it held is freed */
    rt_msg_free(down);
    struct rt_msg *got = recv_type(T_PAYLOAD, RT_INFINITY);
    ck_assert_str_eq((const char *)got->data, "payload");
    struct rt_msg *c = recv_type(T_CARRIER, RT_INFINITY);
    struct rt_msg *b;
    memcpy(&b, c->data, sizeof b);
    ck_assert_uint_eq(b->type, T_HELD);
    rt_msg_free(c);
    rt_msg_free(got);
    rt_msg_free(b);
}

START_TEST(a_message_sent_on_or_detached_outlives_its_first_holder)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(final_receiver, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rare_paths", a_process_that_never_runs_releases_what_its_spawner_handed_it,
             only_the_nth_stack_allocation_fails_and_arg_free_is_not_called_for_one_that_ran,
             a_task_that_never_runs_leaks_nothing, a_gen_server_that_never_runs_leaks_nothing,
             a_process_killed_between_receive_and_free_leaks_no_message,
             a_process_that_exits_holding_a_message_leaks_it_not,
             a_message_sent_on_or_detached_outlives_its_first_holder)
