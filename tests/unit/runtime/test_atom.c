/* test_atom.c: the atom table. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt/rt.h"

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

int main(void)
{
    Suite *s = suite_create("rt_atom");
    TCase *tc = tcase_create("atom");
    tcase_add_test(tc, atom_intern_returns_same_atom_for_same_text);
    tcase_add_test(tc, atom_predefined_names_intern_to_their_values);
    tcase_add_test(tc, atom_shutdown_with_detail_is_clean_but_other_reasons_are_not);
    tcase_add_test(tc, atom_many_interned_stay_distinct);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
