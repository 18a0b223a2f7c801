/* rt_test.h: helpers shared by the runtime's unit tests. */
#ifndef RT_TEST_H
#define RT_TEST_H

#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rt/rt.h"

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

#define RT_TEST_MAIN(suite_name, ...)                                                              \
    int main(void)                                                                                 \
    {                                                                                              \
        Suite *s = suite_create(suite_name);                                                       \
        TCase *tc = tcase_create("core");                                                          \
        tcase_set_timeout(tc, 60);                                                                 \
        TTest const *tests[] = {__VA_ARGS__};                                                      \
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)                                \
            _tcase_add_test(tc, tests[i], 0, 0, 0, 1);                                             \
        suite_add_tcase(s, tc);                                                                    \
        SRunner *sr = srunner_create(s);                                                           \
        srunner_run_all(sr, CK_NORMAL);                                                            \
        int failed = srunner_ntests_failed(sr);                                                    \
        srunner_free(sr);                                                                          \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                                               \
    }

#endif
