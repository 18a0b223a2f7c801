/* rt_test.h: helpers shared by the runtime's unit tests. */
#ifndef RT_TEST_H
#define RT_TEST_H

#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rt/rt.h"

/* Bounds on waits for something that should happen, stretched on slow
 * (sanitizer, valgrind) runs by TANDEM_TEST_TIME_SCALE. */
static inline int64_t rt_test_scaled(int64_t ms)
{
    const char *s = getenv("TANDEM_TEST_TIME_SCALE");
    int k = s ? atoi(s) : 1;
    return ms * (k > 0 ? k : 1);
}

/* Under valgrind (RT_VALGRIND set by its test setup), which runs one thread
 * at a time many times slower: stress tests do less of the same work. */
static inline bool rt_test_under_valgrind(void)
{
    const char *s = getenv("RT_VALGRIND");
    return s && *s && strcmp(s, "0") != 0;
}

static inline void rt_test_start(unsigned schedulers)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = schedulers;
    ck_assert_int_eq(rt_start(&cfg), 0);
}

/* Ends a test: nothing may be left alive and no message may be left. */
static inline void rt_test_stop(void)
{
    ck_assert_int_eq(rt_wait_idle(5000), 0);
    struct rt_system_info si;
    ck_assert_int_eq(rt_system_info(&si), 0);
    ck_assert_uint_eq(si.process_count, 0);
    ck_assert_uint_eq(si.messages_live, 0);
    ck_assert_int_eq(rt_stop(), 0);
}

/* Runs fn(arg) as a process and waits for it; returns its exit reason. */
static inline rt_atom rt_test_run(rt_entry fn, void *arg)
{
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(fn, arg, NULL, &pid), 0);
    rt_atom reason = RT_UNDEFINED;
    ck_assert_int_eq(rt_join(pid, 20000, &reason), 0);
    return reason;
}

/* A message carrying one 64-bit value. */
static inline struct rt_msg *msg_u64(uint32_t type, uint64_t v)
{
    struct rt_msg *m = rt_msg_new(type, 0);
    m->u64 = v;
    return m;
}

static inline uint64_t recv_u64(int64_t timeout)
{
    struct rt_msg *m = rt_receive(timeout);
    ck_assert_ptr_nonnull(m);
    uint64_t v = m->u64;
    rt_msg_free(m);
    return v;
}

/* Receives a message of `type` (selectively), or fails the test. */
static inline struct rt_msg *recv_type(uint32_t type, int64_t timeout);
static inline bool match_type(const struct rt_msg *m, void *ctx)
{
    return m->type == *(uint32_t *)ctx;
}
static inline struct rt_msg *recv_type(uint32_t type, int64_t timeout)
{
    return rt_receive_match(match_type, &type, timeout);
}

static inline void wait_until_dead(rt_pid pid)
{
    for (int i = 0; i < 2000 && rt_is_alive(pid); i++)
        rt_sleep(1);
    ck_assert(!rt_is_alive(pid));
}

/* Runs after every test, also one that failed: under valgrind (CK_FORK=no)
 * all tests share one process, and a runtime left running by a test that
 * failed half-way would make every later rt_start fail with -EALREADY. */
static inline void rt_test_teardown(void)
{
    rt_stop();
}

/* A test case of `n` tests, each ending with rt_test_teardown. */
static inline TCase *rt_test_tcase(const char *name, TTest const *const *tests, size_t n)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, NULL, rt_test_teardown);
    for (size_t i = 0; i < n; i++)
        _tcase_add_test(tc, tests[i], 0, 0, 0, 1);
    return tc;
}

#define RT_TEST_MAIN(suite_name, ...)                                                              \
    int main(void)                                                                                 \
    {                                                                                              \
        Suite *s = suite_create(suite_name);                                                       \
        TTest const *tests[] = {__VA_ARGS__};                                                      \
        suite_add_tcase(s, rt_test_tcase("core", tests, sizeof tests / sizeof tests[0]));          \
        SRunner *sr = srunner_create(s);                                                           \
        srunner_run_all(sr, CK_NORMAL);                                                            \
        int failed = srunner_ntests_failed(sr);                                                    \
        srunner_free(sr);                                                                          \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                                               \
    }

#endif
