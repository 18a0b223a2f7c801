/*
 * test_spawn.c: what a spawn costs the spawner, where a test can see it.
 *
 * This executable defines clock_gettime itself, so that every clock read of
 * the runtime linked into it comes here: it counts the reads made on the
 * calling thread and answers with the system call (no vDSO, which is fine
 * for a test).
 */
#include "rt_test.h"

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static __thread unsigned long clock_reads;

int clock_gettime(clockid_t id, struct timespec *ts)
{
    clock_reads++;
    return (int)syscall(SYS_clock_gettime, id, ts);
}

struct spawn_probe {
    _Atomic unsigned long reads;
    _Atomic uint64_t before_ms, after_ms, started_ms;
    _Atomic int rc;
};

static void child_waits(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(RT_INFINITY));
}

static void spawns_one(void *arg)
{
    struct spawn_probe *pr = arg;
    atomic_store(&pr->before_ms, rt_now_ms());
    rt_yield(); /* a fresh slice: the spawn below cannot spend the budget */
    rt_pid child = 0;
    unsigned long n0 = clock_reads;
    int rc = rt_spawn(child_waits, NULL, NULL, &child);
    atomic_store(&pr->reads, clock_reads - n0);
    atomic_store(&pr->rc, rc);
    struct rt_proc_info info;
    if (rc == 0 && rt_proc_info(child, &info) == 0)
        atomic_store(&pr->started_ms, info.started_ms);
    atomic_store(&pr->after_ms, rt_now_ms());
    if (rc == 0)
        rt_send(child, rt_msg_new(1, 0));
}

START_TEST(a_spawn_by_a_process_reads_no_clock_and_dates_the_child_within_the_spawners_slice)
{
    rt_test_start(1);
    struct spawn_probe pr = {0};
    ck_assert_int_eq(rt_test_run(spawns_one, &pr), RT_NORMAL);
    ck_assert_int_eq(atomic_load(&pr.rc), 0);
    unsigned long reads = atomic_load(&pr.reads);
    ck_assert_uint_eq(reads, 0);
    /* Its start time is the spawner's slice start: after the spawner began,
     * not after the spawn returned. */
    uint64_t started = atomic_load(&pr.started_ms);
    ck_assert_uint_ge(started, atomic_load(&pr.before_ms));
    ck_assert_uint_le(started, atomic_load(&pr.after_ms));
    rt_test_stop();
}
END_TEST

START_TEST(a_spawn_from_a_thread_that_runs_no_process_dates_the_child_by_the_clock)
{
    rt_test_start(1);
    uint64_t before = rt_now_ms();
    rt_pid child = 0;
    ck_assert_int_eq(rt_spawn(child_waits, NULL, NULL, &child), 0);
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(child, &info), 0);
    ck_assert_uint_ge(info.started_ms, before);
    ck_assert_uint_le(info.started_ms, rt_now_ms());
    rt_send(child, rt_msg_new(1, 0));
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_spawn",
             a_spawn_by_a_process_reads_no_clock_and_dates_the_child_within_the_spawners_slice,
             a_spawn_from_a_thread_that_runs_no_process_dates_the_child_by_the_clock)
