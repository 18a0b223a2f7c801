/* test_watchdog_blame.c: the watchdog's slice of a process starts when that
 * process starts running, not when the previous one's run returned: a
 * process's exit cleanups are charged to it, never to the next one. */
#include "rt_test.h"
#include <pthread.h>
#include <stdio.h>
#include <time.h>

static _Atomic uint64_t blamed_b;
static _Atomic uint64_t pid_b;

static void on_log(enum rt_log_level lvl, const char *msg, void *ctx)
{
    (void)lvl;
    (void)ctx;
    char want[64];
    snprintf(want, sizeof want, "process %llu ", (unsigned long long)atomic_load(&pid_b));
    if (strstr(msg, "without yielding")) {
        fprintf(stderr, "LOG: %s\n", msg);
        if (strncmp(msg, want, strlen(want)) == 0)
            atomic_store(&blamed_b, 1);
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void spin_ms(uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    while (now_ms() < end)
        ;
}

static void slow_cleanup(void *arg)
{
    (void)arg;
    spin_ms(450);
} /* under the 500 ms limit */
static void a_main(void *arg)
{
    (void)arg;
    rt_defer(slow_cleanup, NULL);
}
static void b_main(void *arg)
{
    (void)arg;
    spin_ms(250);
} /* also under the limit */

static void parent(void *arg)
{
    (void)arg;
    rt_pid a, b;
    ck_assert_int_eq(rt_spawn(a_main, NULL, NULL, &a), 0);
    ck_assert_int_eq(rt_spawn(b_main, NULL, NULL, &b), 0);
    atomic_store(&pid_b, b);
}

START_TEST(an_exit_cleanup_is_not_charged_to_the_next_process_slice)
{
    rt_set_log_handler(on_log, NULL);
    rt_test_start(1);
    ck_assert_int_eq(rt_test_run(parent, NULL), RT_NORMAL);
    ck_assert_int_eq(rt_wait_idle(5000), 0);
    ck_assert_msg(!atomic_load(&blamed_b), "B (250 ms) was blamed for A's 450 ms exit cleanup");
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("watchdog_blame", an_exit_cleanup_is_not_charged_to_the_next_process_slice)
