/*
 * test_priority.c: scheduling priorities (rt.h, enum rt_priority): the
 * order one scheduler picks its queued processes in, and the bounds that
 * keep normal and low processes running beside busier higher ones.
 *
 * Each ordering test queues its processes from one spawner process on a
 * single scheduler, which does not yield while it spawns (a spawn costs one
 * reduction of the budget): when it exits, the order the others run in is
 * the scheduler's choice alone.
 */
#include "rt_test.h"

#include <stdint.h>

#define NORMALS 32

static _Atomic int seq;
static int order[NORMALS + 1];
static _Atomic int flag;

static void record(void *arg)
{
    order[(intptr_t)arg] = atomic_fetch_add(&seq, 1);
}

static void reset_order(void)
{
    atomic_store(&seq, 0);
    for (int i = 0; i <= NORMALS; i++)
        order[i] = -1;
}

static void spawn_recorder(intptr_t i, enum rt_priority prio)
{
    struct rt_spawn_opts o = {.priority = prio};
    ck_assert_int_eq(rt_spawn(record, (void *)i, &o, NULL), 0);
}

/* ---- high ---- */

static void normals_then_one_high(void *arg)
{
    (void)arg;
    for (intptr_t i = 0; i < NORMALS; i++)
        spawn_recorder(i, RT_PRIORITY_NORMAL);
    spawn_recorder(NORMALS, RT_PRIORITY_HIGH);
}

START_TEST(high_priority_process_runs_before_queued_normal_ones)
{
    rt_test_start(1);
    reset_order();
    ck_assert_int_eq(rt_test_run(normals_then_one_high, NULL), RT_NORMAL);
    ck_assert_int_eq(rt_wait_idle(5000), 0);
    ck_assert_int_eq(order[NORMALS], 0);
    for (int i = 0; i < NORMALS; i++)
        ck_assert_int_eq(order[i], i + 1); /* the normal ones in their own order */
    rt_test_stop();
}
END_TEST

/* A process that raised its own priority and waits jumps the queue when a
 * message wakes it. */
static void raised_then_waits(void *arg)
{
    (void)arg;
    ck_assert_int_eq(rt_set_priority(RT_PRIORITY_HIGH), RT_PRIORITY_NORMAL);
    rt_send(rt_parent(), msg_u64(1, 0)); /* "waiting now" */
    rt_msg_free(rt_receive(RT_INFINITY));
    order[NORMALS] = atomic_fetch_add(&seq, 1);
}

static void normals_then_wake_high(void *arg)
{
    (void)arg;
    rt_pid waiter;
    ck_assert_int_eq(rt_spawn(raised_then_waits, NULL, NULL, &waiter), 0);
    recv_u64(5000);
    for (intptr_t i = 0; i < NORMALS; i++)
        spawn_recorder(i, RT_PRIORITY_NORMAL);
    ck_assert_int_eq(rt_send(waiter, msg_u64(2, 0)), 0);
}

START_TEST(woken_high_priority_process_runs_before_queued_normal_ones)
{
    rt_test_start(1);
    reset_order();
    ck_assert_int_eq(rt_test_run(normals_then_wake_high, NULL), RT_NORMAL);
    ck_assert_int_eq(rt_wait_idle(5000), 0);
    ck_assert_int_eq(order[NORMALS], 0);
    rt_test_stop();
}
END_TEST

/* ---- low ---- */

static void one_low_then_normals(void *arg)
{
    (void)arg;
    spawn_recorder(NORMALS, RT_PRIORITY_LOW);
    for (intptr_t i = 0; i < NORMALS; i++)
        spawn_recorder(i, RT_PRIORITY_NORMAL);
}

START_TEST(low_priority_process_runs_after_every_eighth_normal_one)
{
    rt_test_start(1);
    reset_order();
    ck_assert_int_eq(rt_test_run(one_low_then_normals, NULL), RT_NORMAL);
    ck_assert_int_eq(rt_wait_idle(5000), 0);
    /* Queued first, it still lets RT_PRIORITY_LOW_EVERY normal ones go first. */
    ck_assert_int_eq(order[NORMALS], RT_PRIORITY_LOW_EVERY);
    rt_test_stop();
}
END_TEST

/* ---- starvation bounds ---- */

static void busy_until_flag(void *arg)
{
    (void)arg;
    while (!atomic_load(&flag))
        rt_yield();
}

static void set_flag(void *arg)
{
    (void)arg;
    atomic_store(&flag, 1);
}

/* Two busy processes at `busy` keep the queue of their priority never
 * empty; one at `lower` must still run, or the join times out. */
static void starvation_case(enum rt_priority busy, enum rt_priority lower)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    struct rt_spawn_opts ob = {.priority = busy}, ol = {.priority = lower};
    rt_pid b1, b2, l;
    ck_assert_int_eq(rt_spawn(busy_until_flag, NULL, &ob, &b1), 0);
    ck_assert_int_eq(rt_spawn(busy_until_flag, NULL, &ob, &b2), 0);
    ck_assert_int_eq(rt_spawn(set_flag, NULL, &ol, &l), 0);
    int rc = rt_join(l, rt_test_scaled(5000), NULL);
    atomic_store(&flag, 1); /* let the busy ones end whatever happened */
    ck_assert_msg(rc == 0, "a process below a busy priority never ran");
    ck_assert_int_eq(rt_join(b1, 5000, NULL), 0);
    ck_assert_int_eq(rt_join(b2, 5000, NULL), 0);
    rt_test_stop();
}

START_TEST(normal_process_runs_while_high_priority_ones_stay_busy)
{
    starvation_case(RT_PRIORITY_HIGH, RT_PRIORITY_NORMAL);
}
END_TEST

START_TEST(low_process_runs_while_normal_ones_stay_busy)
{
    starvation_case(RT_PRIORITY_NORMAL, RT_PRIORITY_LOW);
}
END_TEST

START_TEST(low_process_runs_while_high_priority_ones_stay_busy)
{
    starvation_case(RT_PRIORITY_HIGH, RT_PRIORITY_LOW);
}
END_TEST

/* ---- the API ---- */

static void set_priority_calls(void *arg)
{
    (void)arg;
    ck_assert_int_eq(rt_set_priority(RT_PRIORITY_HIGH), RT_PRIORITY_NORMAL);
    ck_assert_int_eq(rt_set_priority(RT_PRIORITY_LOW), RT_PRIORITY_HIGH);
    ck_assert_int_eq(rt_set_priority((enum rt_priority)RT_PRIORITY_COUNT), -EINVAL);
    ck_assert_int_eq(rt_set_priority(RT_PRIORITY_NORMAL), RT_PRIORITY_LOW);
}

START_TEST(set_priority_returns_the_previous_one_and_refuses_others)
{
    rt_test_start(1);
    ck_assert_int_eq(rt_test_run(set_priority_calls, NULL), RT_NORMAL);
    ck_assert_int_eq(rt_set_priority(RT_PRIORITY_HIGH), -EPERM); /* not a process */
    struct rt_spawn_opts o = {.priority = (enum rt_priority)RT_PRIORITY_COUNT};
    ck_assert_int_eq(rt_spawn(set_flag, NULL, &o, NULL), -EINVAL);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_priority", high_priority_process_runs_before_queued_normal_ones,
             woken_high_priority_process_runs_before_queued_normal_ones,
             low_priority_process_runs_after_every_eighth_normal_one,
             normal_process_runs_while_high_priority_ones_stay_busy,
             low_process_runs_while_normal_ones_stay_busy,
             low_process_runs_while_high_priority_ones_stay_busy,
             set_priority_returns_the_previous_one_and_refuses_others)
