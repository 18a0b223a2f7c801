/* test_task.c: tasks (Elixir's Task semantics; OTP has no task module, so
 * the rules are the gateway's fan-out needs): linked, awaited with a
 * timeout, gathered. On an await timeout Tandem kills the task and returns
 * -ETIMEDOUT instead of exiting the caller. */
#include <errno.h>

#include "otp_test.h"
#include "rt/task.h"

static void t_reset(void) {}

static struct rt_msg *square(void *arg)
{
    int v = *(int *)arg;
    return t_int_msg(0, v * v);
}

static struct rt_msg *slow(void *arg)
{
    rt_sleep((uint64_t) * (int *)arg);
    return t_int_msg(0, 1);
}

static struct rt_msg *crash(void *arg)
{
    rt_exit(rt_atom_intern("task_crashed"));
}

static struct rt_msg *kind_of_self(void *arg)
{
    struct rt_proc_info pi;
    rt_proc_info(rt_self(), &pi);
    return t_int_msg(0, pi.kind);
}

static void b_await(void)
{
    struct rt_task t;
    int v = 7;
    T_EQ(rt_task_async(square, &v, sizeof v, &t), 0);
    v = 100; /* the argument was copied */
    struct rt_msg *res = NULL;
    T_EQ(rt_task_await(&t, 1000, &res, NULL), 0);
    T_EQ(t_int(res), 49);
    rt_msg_free(res);
    T_EQ(rt_task_async(kind_of_self, NULL, 0, &t), 0);
    T_EQ(rt_task_await(&t, 1000, &res, NULL), 0);
    T_EQ(t_int(res), RT_KIND_TASK);
    rt_msg_free(res);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(task_await_returns_the_result_of_the_function)
{
    t_run(b_await, true);
}
END_TEST

static void b_many(void)
{
    enum { N = 40 };
    rt_trap_exit(true); /* and no EXIT of a finished task is left behind */
    struct rt_task ts[N];
    struct rt_msg *res[N];
    int rcs[N];
    for (int i = 0; i < N; i++)
        T_EQ(rt_task_async(square, &i, sizeof i, &ts[i]), 0);
    T_EQ(rt_task_await_many(ts, N, 2000, res, rcs), 0);
    for (int i = 0; i < N; i++) {
        T_EQ(rcs[i], 0);
        T_EQ(t_int(res[i]), i * i);
        rt_msg_free(res[i]);
    }
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(task_await_many_gathers_every_result_in_task_order)
{
    t_run(b_many, true);
}
END_TEST

static void b_many_deadline(void)
{
    struct rt_task ts[3];
    struct rt_msg *res[3];
    int rcs[3];
    int fast = 1, late = 5000;
    T_EQ(rt_task_async(slow, &fast, sizeof fast, &ts[0]), 0);
    T_EQ(rt_task_async(slow, &late, sizeof late, &ts[1]), 0);
    T_EQ(rt_task_async(slow, &fast, sizeof fast, &ts[2]), 0);
    rt_pid late_pid = ts[1].pid;
    uint64_t t0 = rt_now_ms();
    T_EQ(rt_task_await_many(ts, 3, 100, res, rcs), -ETIMEDOUT);
    T_ASSERT(rt_now_ms() - t0 < 1000); /* one overall deadline */
    T_EQ(rcs[0], 0);
    T_EQ(rcs[1], -ETIMEDOUT);
    T_EQ(rcs[2], 0);
    T_ASSERT(res[1] == NULL);
    rt_msg_free(res[0]);
    rt_msg_free(res[2]);
    T_ASSERT(!rt_is_alive(late_pid));
}
START_TEST(task_await_many_kills_tasks_unfinished_at_the_deadline)
{
    t_run(b_many_deadline, true);
}
END_TEST

static void b_timeout(void)
{
    rt_trap_exit(true);
    struct rt_task t;
    int ms = 5000;
    T_EQ(rt_task_async(slow, &ms, sizeof ms, &t), 0);
    rt_pid pid = t.pid;
    struct rt_msg *res = NULL;
    T_EQ(rt_task_await(&t, 50, &res, NULL), -ETIMEDOUT);
    T_ASSERT(!rt_is_alive(pid));
    T_EQ(rt_mailbox_len(), 0); /* no EXIT, no DOWN, no result left over */
}
START_TEST(task_await_timeout_kills_the_task_and_leaves_nothing_in_the_mailbox)
{
    t_run(b_timeout, true);
}
END_TEST

static void b_yield(void)
{
    struct rt_task t;
    int ms = 100;
    T_EQ(rt_task_async(slow, &ms, sizeof ms, &t), 0);
    struct rt_msg *res = NULL;
    T_EQ(rt_task_yield(&t, 10, &res, NULL), -ETIMEDOUT);
    T_ASSERT(rt_is_alive(t.pid));
    T_EQ(rt_task_yield(&t, 1000, &res, NULL), 0);
    T_EQ(t_int(res), 1);
    rt_msg_free(res);
}
START_TEST(task_yield_timeout_keeps_the_task_running)
{
    t_run(b_yield, true);
}
END_TEST

static void b_crash_trapping(void)
{
    rt_trap_exit(true);
    struct rt_task t;
    T_EQ(rt_task_async(crash, NULL, 0, &t), 0);
    struct rt_msg *res = NULL;
    rt_atom why = 0;
    T_EQ(rt_task_await(&t, 1000, &res, &why), -ECONNRESET);
    T_EQ(why, rt_atom_intern("task_crashed"));
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(task_crash_is_reported_by_await_to_a_trapping_owner)
{
    t_run(b_crash_trapping, true);
}
END_TEST

static void owner(void *arg)
{
    struct rt_task t;
    rt_task_async(crash, NULL, 0, &t);
    struct rt_msg *res = NULL;
    rt_task_await(&t, 5000, &res, NULL);
    rt_exit(rt_atom_intern("owner_survived"));
}
static void b_crash_links(void)
{
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(owner, NULL, &so, NULL), 0);
    struct rt_msg *d = rt_receive_ref(mref, 5000);
    T_ASSERT(d);
    T_EQ(d->u64, rt_atom_intern("task_crashed"));
    rt_msg_free(d);
}
START_TEST(task_crash_takes_down_a_non_trapping_owner_through_the_link)
{
    t_run(b_crash_links, true);
}
END_TEST

static void dies_with_tasks(void *arg)
{
    struct rt_task t;
    int ms = 10000;
    rt_task_async(slow, &ms, sizeof ms, &t);
    *(rt_pid *)arg = t.pid;
    rt_sleep(20);
    rt_exit(rt_atom_intern("owner_gone"));
}
static void b_owner_dies(void)
{
    rt_pid *slot = rt_calloc(1, sizeof *slot);
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(dies_with_tasks, slot, &so, NULL), 0);
    rt_msg_free(rt_receive_ref(mref, 5000));
    rt_pid task = *slot;
    for (int i = 0; i < 100 && rt_is_alive(task); i++)
        rt_sleep(2);
    T_ASSERT(!rt_is_alive(task)); /* linked: the task dies with its owner */
}
START_TEST(task_dies_with_its_owner)
{
    t_run(b_owner_dies, true);
}
END_TEST

static void not_owner(void *arg)
{
    struct rt_msg *res = NULL;
    *(int *)((char *)arg + sizeof(struct rt_task)) =
        rt_task_await((struct rt_task *)arg, 100, &res, NULL);
}
static void b_not_owner(void)
{
    char *buf = rt_calloc(1, sizeof(struct rt_task) + sizeof(int));
    struct rt_task *t = (struct rt_task *)buf;
    int ms = 50;
    T_EQ(rt_task_async(slow, &ms, sizeof ms, t), 0);
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(not_owner, buf, &so, NULL), 0);
    rt_msg_free(rt_receive_ref(mref, 2000));
    T_EQ(*(int *)(buf + sizeof(struct rt_task)), -EPERM);
    struct rt_msg *res = NULL;
    T_EQ(rt_task_await(t, 1000, &res, NULL), 0);
    rt_msg_free(res);
}
START_TEST(task_can_only_be_awaited_by_its_owner)
{
    t_run(b_not_owner, true);
}
END_TEST

static void op_async_await(void *ctx)
{
    struct rt_task t;
    int v = 3;
    T_EQ(rt_task_async(square, &v, sizeof v, &t), 0);
    struct rt_msg *res = NULL;
    T_EQ(rt_task_await(&t, 5000, &res, NULL), 0);
    T_EQ(t_int(res), 9);
    rt_msg_free(res);
}
static void b_deep_await(void)
{
    t_assert_cost_independent_of_queue(op_async_await, NULL);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(task_await_costs_the_same_whatever_the_owner_has_queued)
{
    t_run(b_deep_await, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("task");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, task_await_returns_the_result_of_the_function);
    tcase_add_test(tc, task_await_many_gathers_every_result_in_task_order);
    tcase_add_test(tc, task_await_many_kills_tasks_unfinished_at_the_deadline);
    tcase_add_test(tc, task_await_timeout_kills_the_task_and_leaves_nothing_in_the_mailbox);
    tcase_add_test(tc, task_yield_timeout_keeps_the_task_running);
    tcase_add_test(tc, task_crash_is_reported_by_await_to_a_trapping_owner);
    tcase_add_test(tc, task_crash_takes_down_a_non_trapping_owner_through_the_link);
    tcase_add_test(tc, task_dies_with_its_owner);
    tcase_add_test(tc, task_can_only_be_awaited_by_its_owner);
    tcase_add_test(tc, task_await_costs_the_same_whatever_the_owner_has_queued);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
