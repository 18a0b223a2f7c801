/*
 * test_aliases.c: process aliases (OTP 24, OTP-SEMANTICS §1.1): a message
 * to an active alias is delivered, one to a deactivated alias is dropped
 * before it reaches the queue, one already queued stays. A process with
 * many requests in flight holds one alias per request.
 */
#include "rt_test.h"

enum { T_HIT = 1 };

#define MANY 1000

static void many_body(void *arg)
{
    (void)arg;
    static rt_ref aliases[MANY];
    for (int i = 0; i < MANY; i++) {
        aliases[i] = rt_alias();
        ck_assert_uint_ne(aliases[i], 0);
    }
    /* Every other one deactivated, from both ends and the middle. */
    for (int i = 0; i < MANY; i += 2)
        rt_unalias(aliases[i]);
    for (int i = 0; i < MANY; i++)
        rt_send_alias(rt_self(), aliases[i], msg_u64(T_HIT, (uint64_t)i));
    int got = 0;
    struct rt_msg *m;
    while ((m = rt_receive(0))) {
        ck_assert_uint_eq(m->u64 % 2, 1);
        ck_assert_uint_eq(m->ref, aliases[m->u64]);
        rt_msg_free(m);
        got++;
    }
    ck_assert_int_eq(got, MANY / 2);
    for (int i = 1; i < MANY; i += 2)
        rt_unalias(aliases[i]);
    rt_send_alias(rt_self(), aliases[MANY - 1], msg_u64(T_HIT, 0));
    ck_assert_ptr_null(rt_receive(0));
}

START_TEST(a_process_holds_many_aliases_and_only_deactivated_ones_drop_messages)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(many_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void limit_body(void *arg)
{
    (void)arg;
    static rt_ref aliases[RT_MAX_ALIASES];
    for (int i = 0; i < RT_MAX_ALIASES; i++) {
        aliases[i] = rt_alias();
        ck_assert_uint_ne(aliases[i], 0);
    }
    ck_assert_uint_eq(rt_alias(), 0);
    rt_unalias(aliases[7]);
    ck_assert_uint_ne(rt_alias(), 0);
}

START_TEST(aliases_are_bounded_per_process)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(limit_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_aliases", a_process_holds_many_aliases_and_only_deactivated_ones_drop_messages,
             aliases_are_bounded_per_process)
