/* test_http_target.c: request-target canonicalisation (gateway/src/http/
 * target.c). The path a route sees is the path forwarded upstream, so each
 * bypass of a deny rule on /admin must be refused or become exactly
 * "/admin" (which the rule then catches). */
#include "gw/http1.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns 0 and the canonical path (+ "?query") in out, or the error; t
 * points into a buffer valid until the next call. */
static int canon(const char *method, const char *target, char *out, size_t outcap,
                 struct gw_http_target *t)
{
    static char buf[4096];
    int r = gw_http_target_canon(method, target, strlen(target), buf, sizeof(buf), t);
    if (r == 0) {
        ck_assert_uint_eq(strlen(t->path), t->path_len);
        snprintf(out, outcap, "%s%s%s", t->path, t->query ? "?" : "", t->query ? t->query : "");
    }
    return r;
}

static void expect_path(const char *target, const char *want)
{
    char out[4096];
    struct gw_http_target t;
    int r = canon("GET", target, out, sizeof(out), &t);
    if (r != 0)
        ck_abort_msg("%s refused (%d), expected %s", target, r, want);
    if (strcmp(out, want) != 0)
        ck_abort_msg("%s -> %s, expected %s", target, out, want);
}

static void expect_refused(const char *target)
{
    char out[4096];
    struct gw_http_target t;
    int r = canon("GET", target, out, sizeof(out), &t);
    if (r != -EINVAL)
        ck_abort_msg("%s not refused: %d -> %s", target, r, r == 0 ? out : "");
}

START_TEST(test_admin_bypasses_are_refused_or_become_admin)
{
    /* Issue 9's list: canonicalised to /admin ... */
    expect_path("//admin", "/admin");
    expect_path("/./admin", "/admin");
    expect_path("/x/../admin", "/admin");
    expect_path("/x/%2e%2e/admin", "/admin");
    expect_path("/x/%2E%2e/admin", "/admin");
    expect_path("/%61dmin", "/admin");
    expect_path("/x/.%2e/admin", "/admin");
    expect_path("///x//..//admin", "/admin");
    /* ... or refused. */
    expect_refused("/x/..%2fadmin");
    expect_refused("/x/..%2Fadmin");
    expect_refused("/admin;x");
    expect_refused("/admin%00");
    expect_refused("/admin%00.html");
    expect_refused("/admin x");
    expect_refused("/admin#x");
    expect_refused("/x/..\\admin");
    expect_refused("/x/..%5cadmin");
    expect_refused("/x/%c0%ae%c0%ae/admin"); /* overlong "." */
    expect_refused("/x/%e0%80%ae/admin");    /* overlong, 3 bytes */
    expect_refused("/%c0%afadmin");          /* overlong "/" */
    expect_refused("/x/\xc0\xae\xc0\xae/admin");
}
END_TEST

START_TEST(test_dot_segments_above_root_are_refused)
{
    expect_refused("/..");
    expect_refused("/../admin");
    expect_refused("/a/../../admin");
    expect_refused("/%2e%2e/admin");
}
END_TEST

START_TEST(test_trailing_slash_and_root_are_kept)
{
    expect_path("/", "/");
    expect_path("/a/", "/a/");
    expect_path("/a/.", "/a/");
    expect_path("/a/b/..", "/a/");
    expect_path("/a//", "/a/");
    expect_path("/a/b/../", "/a/");
}
END_TEST

START_TEST(test_escapes_are_normalised)
{
    expect_path("/a%7eb", "/a~b"); /* unreserved: decoded */
    expect_path("/a%2db%5F", "/a-b_");
    expect_path("/a%20b", "/a%20b");             /* reserved/other: kept */
    expect_path("/a%3bb", "/a%3Bb");             /* uppercase hex */
    expect_path("/a%3Fb?q=%3f", "/a%3Fb?q=%3f"); /* the query is kept as sent */
    expect_path("/caf%C3%A9", "/caf%C3%A9");     /* valid UTF-8 kept encoded */
    expect_path("/caf\xc3\xa9", "/caf%C3%A9");   /* raw UTF-8 encoded */
    expect_refused("/a%");
    expect_refused("/a%4");
    expect_refused("/a%zz");
    expect_refused("/a%0a");
    expect_refused("/a%7f");
    expect_refused("/caf%C3");    /* truncated UTF-8 */
    expect_refused("/%ed%a0%80"); /* surrogate */
    expect_refused("/\xff");
}
END_TEST

START_TEST(test_query_is_not_part_of_the_path)
{
    char out[256];
    struct gw_http_target t;
    ck_assert_int_eq(canon("GET", "/a/../b?x=/../y&z=|", out, sizeof(out), &t), 0);
    ck_assert_str_eq(t.path, "/b");
    ck_assert_str_eq(t.query, "x=/../y&z=|");
    ck_assert_int_eq(canon("GET", "/b", out, sizeof(out), &t), 0);
    ck_assert_ptr_null(t.query);
    expect_refused("/b?x#frag");
    expect_refused("/b?x=%g1");
}
END_TEST

START_TEST(test_characters_outside_pchar_are_refused)
{
    static const char *const bad[] = {"/a\"b", "/a<b", "/a>b", "/a{b", "/a}b",  "/a|b",
                                      "/a^b",  "/a`b", "/a[b", "/a]b", "/a\\b", NULL};
    for (int i = 0; bad[i]; i++)
        expect_refused(bad[i]);
    expect_path("/a!$&'()*+,=:@b", "/a!$&'()*+,=:@b");
}
END_TEST

START_TEST(test_absolute_form_keeps_the_authority)
{
    char out[256];
    struct gw_http_target t;
    ck_assert_int_eq(canon("GET", "http://API.Example.com:8080/x/../admin?q", out, sizeof(out), &t),
                     0);
    ck_assert_int_eq(t.form, GW_HTTP_ABSOLUTE_FORM);
    ck_assert_str_eq(t.authority, "api.example.com:8080");
    ck_assert_str_eq(out, "/admin?q");
    ck_assert_int_eq(canon("GET", "https://a.example", out, sizeof(out), &t), 0);
    ck_assert_str_eq(t.path, "/");
    expect_refused("http://user:pw@a.example/");
    expect_refused("http:///admin");
    expect_refused("ftp://a.example/");
    expect_refused("http://a b/");
}
END_TEST

START_TEST(test_asterisk_form_only_for_options)
{
    char out[16];
    struct gw_http_target t;
    ck_assert_int_eq(canon("OPTIONS", "*", out, sizeof(out), &t), 0);
    ck_assert_int_eq(t.form, GW_HTTP_ASTERISK_FORM);
    ck_assert_int_eq(canon("GET", "*", out, sizeof(out), &t), -EINVAL);
    expect_refused("a.example:443"); /* authority-form: CONNECT is not proxied */
    /* nor is CONNECT with any other target form (a fuzz finding: "CONNECT /") */
    ck_assert_int_eq(canon("CONNECT", "/", out, sizeof(out), &t), -EINVAL);
    ck_assert_int_eq(canon("CONNECT", "http://a.example/", out, sizeof(out), &t), -EINVAL);
    expect_refused("admin");
    expect_refused("");
}
END_TEST

START_TEST(test_small_buffer_is_enospc)
{
    char buf[8];
    struct gw_http_target t;
    ck_assert_int_eq(gw_http_target_canon("GET", "/abcdef", 7, buf, sizeof(buf), &t), -ENOSPC);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_target");
    TCase *t = tcase_create("canon");
    tcase_add_test(t, test_admin_bypasses_are_refused_or_become_admin);
    tcase_add_test(t, test_dot_segments_above_root_are_refused);
    tcase_add_test(t, test_trailing_slash_and_root_are_kept);
    tcase_add_test(t, test_escapes_are_normalised);
    tcase_add_test(t, test_query_is_not_part_of_the_path);
    tcase_add_test(t, test_characters_outside_pchar_are_refused);
    tcase_add_test(t, test_absolute_form_keeps_the_authority);
    tcase_add_test(t, test_asterisk_form_only_for_options);
    tcase_add_test(t, test_small_buffer_is_enospc);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
