/* test_atom.c: the atom table. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt/rt.h"
#include "rt_fault.h"

START_TEST(atom_intern_returns_same_atom_for_same_text)
{
    rt_atom a = rt_atom_intern("some_reason");
    rt_atom b = rt_atom_intern("some_reason");
    ck_assert_uint_eq(a, b);
    ck_assert_uint_ge(a, RT_ATOM_PREDEFINED_COUNT);
    ck_assert_str_eq(rt_atom_name(a), "some_reason");
    ck_assert_uint_ne(rt_atom_intern("other_reason"), a);
}
END_TEST

START_TEST(atom_predefined_names_intern_to_their_values)
{
    ck_assert_uint_eq(rt_atom_intern("normal"), RT_NORMAL);
    ck_assert_uint_eq(rt_atom_intern("killed"), RT_KILLED);
    ck_assert_str_eq(rt_atom_name(RT_NOPROC), "noproc");
    ck_assert_str_eq(rt_atom_name(0xfffffff0u), "?");
}
END_TEST

START_TEST(atom_shutdown_with_detail_is_clean_but_other_reasons_are_not)
{
    ck_assert(rt_reason_is_clean(RT_NORMAL));
    ck_assert(rt_reason_is_clean(RT_SHUTDOWN));
    ck_assert(rt_reason_is_clean(rt_atom_intern("shutdown:reload")));
    ck_assert(rt_reason_is_shutdown(rt_atom_intern("shutdown:reload")));
    ck_assert(!rt_reason_is_clean(RT_KILLED));
    ck_assert(!rt_reason_is_clean(rt_atom_intern("shutdownx")));
    ck_assert(!rt_reason_is_shutdown(RT_NORMAL));
}
END_TEST

START_TEST(atom_many_interned_stay_distinct)
{
    char buf[32];
    rt_atom first = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(buf, sizeof buf, "atom_%d", i);
        rt_atom a = rt_atom_intern(buf);
        ck_assert_uint_ne(a, RT_SYSTEM_LIMIT);
        if (i == 0)
            first = a;
        ck_assert_str_eq(rt_atom_name(a), buf);
    }
    ck_assert_uint_eq(rt_atom_intern("atom_0"), first);
}
END_TEST

static uint64_t locks_since(uint64_t before)
{
    return rt__test_atom_lock_count() - before;
}

START_TEST(atom_intern_of_a_known_name_takes_no_lock)
{
    rt_atom a = rt_atom_intern("known_before");
    uint64_t before = rt__test_atom_lock_count();
    for (int i = 0; i < 1000; i++) {
        ck_assert_uint_eq(rt_atom_intern("known_before"), a);
        ck_assert_uint_eq(rt_atom_intern("shutdown"), RT_SHUTDOWN);
    }
    ck_assert_uint_eq(locks_since(before), 0);
    /* A new name still takes it, once, to be added. */
    rt_atom b = rt_atom_intern("new_after");
    ck_assert_uint_ne(b, a);
    ck_assert_uint_eq(locks_since(before), 1);
}
END_TEST

/* Threads interning the same new names at once: each name gets one atom,
 * whether a thread found it without the lock or added it. */
#define RACE_THREADS 4
#define RACE_NAMES 2000
static rt_atom race_seen[RACE_THREADS][RACE_NAMES];

static void *race_intern(void *arg)
{
    rt_atom *out = arg;
    char buf[32];
    for (int i = 0; i < RACE_NAMES; i++) {
        snprintf(buf, sizeof buf, "race_%d", i);
        out[i] = rt_atom_intern(buf);
    }
    return NULL;
}

START_TEST(atom_intern_racing_threads_agree_on_each_new_name)
{
    pthread_t t[RACE_THREADS];
    for (int k = 0; k < RACE_THREADS; k++)
        ck_assert_int_eq(pthread_create(&t[k], NULL, race_intern, race_seen[k]), 0);
    for (int k = 0; k < RACE_THREADS; k++)
        pthread_join(t[k], NULL);
    char buf[32];
    for (int i = 0; i < RACE_NAMES; i++) {
        snprintf(buf, sizeof buf, "race_%d", i);
        ck_assert_str_eq(rt_atom_name(race_seen[0][i]), buf);
        for (int k = 1; k < RACE_THREADS; k++)
            ck_assert_uint_eq(race_seen[k][i], race_seen[0][i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rt_atom");
    TCase *tc = tcase_create("atom");
    tcase_add_test(tc, atom_intern_returns_same_atom_for_same_text);
    tcase_add_test(tc, atom_predefined_names_intern_to_their_values);
    tcase_add_test(tc, atom_shutdown_with_detail_is_clean_but_other_reasons_are_not);
    tcase_add_test(tc, atom_many_interned_stay_distinct);
    tcase_add_test(tc, atom_intern_of_a_known_name_takes_no_lock);
    tcase_add_test(tc, atom_intern_racing_threads_agree_on_each_new_name);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
