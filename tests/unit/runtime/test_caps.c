/* test_caps.c: per-process caps, rt_set_max_memory and rt_set_max_time. */
#include "rt_test.h"

#include <stdatomic.h>

static _Atomic int reached;     /* how far a process got past its cap */
static _Atomic int allocations; /* blocks a process got before the NULL */

static void alloc_until_refused(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    rt_set_max_memory(cap);
    for (int i = 0; i < 1000; i++) {
        if (!rt_alloc(4096))
            break;
        atomic_fetch_add(&allocations, 1);
    }
    atomic_store(&reached, 1);
    /* The next runtime call that handles signals ends it. */
    rt_receive(0);
    atomic_store(&reached, 2);
}

START_TEST(memory_cap_refuses_the_allocation_and_exits_at_the_next_runtime_call)
{
    rt_test_start(2);
    atomic_store(&reached, 0);
    atomic_store(&allocations, 0);
    rt_atom reason = rt_test_run(alloc_until_refused, (void *)(uintptr_t)(64 * 1024));
    ck_assert_str_eq(rt_atom_name(reason), "memory_limit");
    ck_assert_int_eq(reason, RT_MEMORY_LIMIT);
    /* 16 blocks of 4 KiB fit in 64 KiB; the 17th is refused. */
    ck_assert_int_eq(atomic_load(&allocations), 16);
    ck_assert_int_eq(atomic_load(&reached), 1);
    rt_test_stop();
}
END_TEST

static void alloc_then_exit_otherwise(void *arg)
{
    (void)arg;
    rt_set_max_memory(1000);
    if (!rt_alloc(2000))
        rt_exit(RT_SYSTEM_LIMIT); /* the caller's own reading of the NULL */
    rt_exit(RT_NORMAL);
}

START_TEST(memory_cap_is_the_exit_reason_whatever_the_process_exits_of_after)
{
    rt_test_start(1);
    ck_assert_int_eq(rt_test_run(alloc_then_exit_otherwise, NULL), RT_MEMORY_LIMIT);
    rt_test_stop();
}
END_TEST

static void realloc_past_the_cap(void *arg)
{
    (void)arg;
    rt_set_max_memory(10000);
    char *b = rt_alloc(6000);
    ck_assert_ptr_nonnull(b);
    memset(b, 'x', 6000);
    char *s = rt_realloc(b, 4000); /* shrinking is always allowed */
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_null(rt_realloc(s, 12000));
    /* The old block stays valid and owned. */
    ck_assert_int_eq(s[3999], 'x');
    atomic_store(&reached, 1);
    rt_yield();
    atomic_store(&reached, 2);
}

START_TEST(memory_cap_counts_realloc_growth_and_keeps_the_old_block)
{
    rt_test_start(1);
    atomic_store(&reached, 0);
    ck_assert_int_eq(rt_test_run(realloc_past_the_cap, NULL), RT_MEMORY_LIMIT);
    ck_assert_int_eq(atomic_load(&reached), 1);
    rt_test_stop();
}
END_TEST

static void trapping_over_the_cap(void *arg)
{
    (void)arg;
    rt_trap_exit(true);
    rt_set_max_memory(100);
    ck_assert_ptr_null(rt_alloc(200));
    struct rt_msg *m = rt_receive(1000); /* no EXIT message: it ends here */
    rt_msg_free(m);
    atomic_store(&reached, 2);
}

START_TEST(memory_cap_cannot_be_trapped)
{
    rt_test_start(1);
    atomic_store(&reached, 0);
    ck_assert_int_eq(rt_test_run(trapping_over_the_cap, NULL), RT_MEMORY_LIMIT);
    ck_assert_int_eq(atomic_load(&reached), 0);
    rt_test_stop();
}
END_TEST

static void cap_removed(void *arg)
{
    (void)arg;
    rt_set_max_memory(100);
    void *a = rt_alloc(100); /* exactly the cap */
    ck_assert_ptr_nonnull(a);
    rt_set_max_memory(0);
    void *b = rt_alloc(1 << 20);
    ck_assert_ptr_nonnull(b);
    rt_free(b);
    rt_free(a);
}

START_TEST(memory_up_to_the_cap_and_without_one_is_given)
{
    rt_test_start(1);
    ck_assert_int_eq(rt_test_run(cap_removed, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void wait_forever_capped(void *arg)
{
    rt_set_max_time((uint64_t)(uintptr_t)arg);
    rt_receive(RT_INFINITY);
}

START_TEST(time_cap_ends_a_waiting_process_with_time_limit)
{
    rt_test_start(2);
    uint64_t t0 = rt_now_ms();
    ck_assert_int_eq(rt_test_run(wait_forever_capped, (void *)(uintptr_t)50), RT_TIME_LIMIT);
    uint64_t took = rt_now_ms() - t0;
    ck_assert_uint_ge(took, 50);
    ck_assert_uint_lt(took, (uint64_t)rt_test_scaled(5000));
    rt_test_stop();
}
END_TEST

static void spin_on_reductions(void *arg)
{
    (void)arg;
    rt_trap_exit(true);
    rt_set_max_time(50);
    /* Never waits and never yields of its own accord: it only spends
     * reductions, as a busy loop calling into the runtime does. */
    for (;;)
        rt_reductions(1);
}

START_TEST(time_cap_reaches_a_loop_that_never_yields_of_its_own_accord)
{
    /* One scheduler: the loop holds it except at the ends of its slices,
     * where the timer that ends it fires. */
    rt_test_start(1);
    ck_assert_int_eq(rt_test_run(spin_on_reductions, NULL), RT_TIME_LIMIT);
    rt_test_stop();
}
END_TEST

static void time_cap_then_done(void *arg)
{
    (void)arg;
    ck_assert_int_eq(rt_set_max_time(60000), 0);
}

START_TEST(time_cap_timer_goes_with_the_process)
{
    rt_test_start(1);
    ck_assert_int_eq(rt_test_run(time_cap_then_done, NULL), RT_NORMAL);
    /* rt_test_stop asserts that no message is left: the timer's signal was
     * freed with the process, not left for 60 s. */
    rt_test_stop();
}
END_TEST

static void time_cap_replaced_then_removed(void *arg)
{
    (void)arg;
    rt_set_max_time(20);
    rt_set_max_time(30);
    rt_set_max_time(0);
    rt_sleep(150);
}

START_TEST(time_cap_replaced_and_removed_fires_no_more)
{
    rt_test_start(1);
    ck_assert_int_eq(rt_test_run(time_cap_replaced_then_removed, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void sibling(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        ck_assert_ptr_nonnull(rt_alloc(4096));
    rt_sleep(100);
}

START_TEST(a_process_over_its_cap_leaves_the_others_alone)
{
    rt_test_start(2);
    rt_pid a, b, c;
    ck_assert_int_eq(rt_spawn(sibling, NULL, NULL, &a), 0);
    ck_assert_int_eq(rt_spawn(alloc_until_refused, (void *)(uintptr_t)8192, NULL, &b), 0);
    ck_assert_int_eq(rt_spawn(wait_forever_capped, (void *)(uintptr_t)20, NULL, &c), 0);
    rt_atom ra, rb, rc;
    ck_assert_int_eq(rt_join(a, 20000, &ra), 0);
    ck_assert_int_eq(rt_join(b, 20000, &rb), 0);
    ck_assert_int_eq(rt_join(c, 20000, &rc), 0);
    ck_assert_int_eq(ra, RT_NORMAL);
    ck_assert_int_eq(rb, RT_MEMORY_LIMIT);
    ck_assert_int_eq(rc, RT_TIME_LIMIT);
    rt_test_stop();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rt_caps");
    TCase *tc = tcase_create("caps");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, memory_cap_refuses_the_allocation_and_exits_at_the_next_runtime_call);
    tcase_add_test(tc, memory_cap_is_the_exit_reason_whatever_the_process_exits_of_after);
    tcase_add_test(tc, memory_cap_counts_realloc_growth_and_keeps_the_old_block);
    tcase_add_test(tc, memory_cap_cannot_be_trapped);
    tcase_add_test(tc, memory_up_to_the_cap_and_without_one_is_given);
    tcase_add_test(tc, time_cap_ends_a_waiting_process_with_time_limit);
    tcase_add_test(tc, time_cap_reaches_a_loop_that_never_yields_of_its_own_accord);
    tcase_add_test(tc, time_cap_timer_goes_with_the_process);
    tcase_add_test(tc, time_cap_replaced_and_removed_fires_no_more);
    tcase_add_test(tc, a_process_over_its_cap_leaves_the_others_alone);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
