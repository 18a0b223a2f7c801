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

static const struct gw_http_path_policy strict;
static const struct gw_http_path_policy keep_slashes = {.slashes = GW_HTTP_SLASHES_KEEP};
static const struct gw_http_path_policy decode_slashes = {.slashes = GW_HTTP_SLASHES_DECODE};
static const struct gw_http_path_policy redirect_slashes = {.slashes = GW_HTTP_SLASHES_REDIRECT};
static const struct gw_http_path_policy keep_params = {.params = GW_HTTP_PARAMS_KEEP};
static const struct gw_http_path_policy keep_both = {.slashes = GW_HTTP_SLASHES_KEEP,
                                                     .params = GW_HTTP_PARAMS_KEEP};
static const struct gw_http_path_policy opaque = {.slashes = GW_HTTP_SLASHES_OPAQUE,
                                                  .params = GW_HTTP_PARAMS_OPAQUE};
static const struct gw_http_path_policy decode_keep_params = {.slashes = GW_HTTP_SLASHES_DECODE,
                                                              .params = GW_HTTP_PARAMS_KEEP};
static const struct gw_http_path_policy refuse_controls = {.refuse_controls = true};
static const struct gw_http_path_policy encode_utf8 = {.encode_raw_utf8 = true};

static const struct gw_http_path_policy *const every_policy[] = {
    &strict, &keep_slashes,       &decode_slashes,  &redirect_slashes, &keep_params, &keep_both,
    &opaque, &decode_keep_params, &refuse_controls, &encode_utf8,      NULL};

/* As canon(), under `pol`. */
static int canon_p(const struct gw_http_path_policy *pol, const char *target, char *out,
                   size_t outcap, struct gw_http_target *t)
{
    static char buf[4096];
    int r = gw_http_target_canon_policy(pol, "GET", target, strlen(target), buf, sizeof(buf), t);
    if (r == 0) {
        ck_assert_uint_eq(strlen(t->path), t->path_len);
        snprintf(out, outcap, "%s%s%s", t->path, t->query ? "?" : "", t->query ? t->query : "");
    }
    return r;
}

static void expect_path_p(const struct gw_http_path_policy *pol, const char *target,
                          const char *want)
{
    char out[4096];
    struct gw_http_target t;
    int r = canon_p(pol, target, out, sizeof(out), &t);
    if (r != 0)
        ck_abort_msg("%s refused (%d), expected %s", target, r, want);
    if (strcmp(out, want) != 0)
        ck_abort_msg("%s -> %s, expected %s", target, out, want);
}

static void expect_refused_p(const struct gw_http_path_policy *pol, const char *target)
{
    char out[4096];
    struct gw_http_target t;
    int r = canon_p(pol, target, out, sizeof(out), &t);
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
    expect_path("/a%2cb", "/a%2Cb");             /* uppercase hex */
    expect_path("/a%3Fb?q=%3f", "/a%3Fb?q=%3f"); /* the query is kept as sent */
    expect_path("/caf%C3%A9", "/caf%C3%A9");     /* valid UTF-8 kept encoded */
    expect_refused("/caf\xc3\xa9");              /* raw UTF-8: not HTTP */
    expect_refused("/a%");
    expect_refused("/a%4");
    expect_refused("/a%zz");
    expect_refused("/a%0a"); /* a control ending a segment */
    expect_refused("/a%7f");
    expect_refused("/caf%C3");    /* truncated UTF-8 */
    expect_refused("/%ed%a0%80"); /* surrogate */
    expect_refused("/\xff");
}
END_TEST

START_TEST(test_raw_non_ascii_in_the_target_is_refused_unless_encoded)
{
    /* RFC 9112 §3.2: a request-target is ASCII; escapes are how UTF-8 is sent */
    static const char *const raw[] = {"/caf\xc3\xa9",
                                      "/caf\xc3\xa9/x",
                                      "/x?q=caf\xc3\xa9",
                                      "/x?\xe2\x82\xac",
                                      "http://a.example/caf\xc3\xa9",
                                      NULL};
    static const char *const encoded[] = {"/caf%C3%A9",   "/caf%C3%A9/x", "/x?q=caf%C3%A9",
                                          "/x?%E2%82%AC", "/caf%C3%A9",   NULL};
    for (int i = 0; raw[i]; i++) {
        expect_refused(raw[i]);
        for (int p = 0; every_policy[p] != &encode_utf8; p++)
            expect_refused_p(every_policy[p], raw[i]);
        expect_path_p(&encode_utf8, raw[i], encoded[i]); /* the legacy listener option */
    }
    /* the escaped form passes under every policy */
    expect_path("/caf%c3%a9?q=%E2%82%AC", "/caf%C3%A9?q=%E2%82%AC");
    /* what is not UTF-8 stays refused even when raw UTF-8 is encoded */
    expect_refused_p(&encode_utf8, "/\xff");
    expect_refused_p(&encode_utf8, "/caf\xc3");
    expect_refused_p(&encode_utf8, "/\xc0\xae");
    expect_refused_p(&encode_utf8, "/x?\xed\xa0\x80");
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

/* Escaped characters a backend's trim removes (Java trim: all <= U+0020;
 * PHP: NUL, HT, LF, VT, CR, space; Go TrimSpace and Python strip: Unicode
 * White_Space, NEL and NBSP included; JavaScript: also U+FEFF), and other
 * controls, as escapes and (for the non-ASCII ones) raw UTF-8. */
static const char *const edge_chars[] = {
    "%20",       "%09",       "%0A",       "%0a",       "%0D",          "%0B",
    "%0C",       "%01",       "%1F",       "%1c",       "%7F",          "%C2%85",
    "%C2%A0",    "%c2%a0",    "%C2%80",    "%C2%9F",    "%E1%9A%80",    "%E1%A0%8E",
    "%E2%80%80", "%E2%80%8A", "%E2%80%8B", "%E2%80%A8", "%E2%80%A9",    "%E2%80%AF",
    "%E2%81%9F", "%E3%80%80", "%EF%BB%BF", "\xc2\xa0",  "\xe3\x80\x80", NULL};

/* shape with each "^" replaced by c */
static void fill(char *out, size_t cap, const char *shape, const char *c)
{
    size_t o = 0;
    for (; *shape && o + strlen(c) + 1 < cap; shape++) {
        if (*shape == '^') {
            memcpy(out + o, c, strlen(c));
            o += strlen(c);
        } else {
            out[o++] = *shape;
        }
    }
    out[o] = 0;
}

START_TEST(test_segment_edge_whitespace_and_controls_are_refused)
{
    /* where a segment (or a piece of one) begins or ends */
    static const char *const shapes[] = {
        "/admin^", "/admin^/", "/admin^/x", "/admin^?q=1", "/x/admin^", "/^admin",      "/x/^admin",
        "/^",      "/^/admin", "/^^/admin", "/admin^%3Bx", "/a%3B^b",   "/admin^/../x", NULL};
    char target[256];
    for (int p = 0; every_policy[p]; p++)
        for (int c = 0; edge_chars[c]; c++)
            for (int k = 0; shapes[k]; k++) {
                fill(target, sizeof target, shapes[k], edge_chars[c]);
                expect_refused_p(every_policy[p], target);
            }
    /* next to ";" and "%2F" where those are allowed */
    static const struct gw_http_path_policy *const both[] = {&keep_both, &opaque, NULL};
    static const char *const delimited[] = {"/admin^;x", "/a;^x",   "/a;x^",
                                            "/a^%2Fb",   "/a%2F^b", NULL};
    for (int p = 0; both[p]; p++)
        for (int c = 0; edge_chars[c]; c++)
            for (int k = 0; delimited[k]; k++) {
                fill(target, sizeof target, delimited[k], edge_chars[c]);
                expect_refused_p(both[p], target);
            }
    /* decoded, "%2F" ends a segment like "/" */
    expect_refused_p(&decode_slashes, "/admin%20%2Fx");
    /* a lone %A0 (NBSP in Latin-1) is not UTF-8: refused anyway */
    expect_refused("/admin%A0");
    /* inside a segment nothing is trimmed: kept */
    expect_path("/a%20b", "/a%20b");
    expect_path("/a%C2%A0b", "/a%C2%A0b");
    expect_path_p(&encode_utf8,
                  "/a\xc2\xa0"
                  "b",
                  "/a%C2%A0b");
}
END_TEST

START_TEST(test_controls_inside_a_segment_are_forwarded_escaped)
{
    expect_path("/a%09b", "/a%09b");
    expect_path("/a%0ab/c", "/a%0Ab/c");
    expect_path("/a%0Db", "/a%0Db");
    expect_path("/a%0d%0ab", "/a%0D%0Ab");
    expect_path("/a%01b%1fc", "/a%01b%1Fc");
    expect_path("/a%7fb", "/a%7Fb");
    expect_path("/a%C2%85b", "/a%C2%85b");
    /* NUL truncates paths in C-string backends; "\" separates on some */
    expect_refused("/a%00b");
    expect_refused("/a%5cb");
    /* a listener may refuse them all */
    expect_refused_p(&refuse_controls, "/a%09b");
    expect_refused_p(&refuse_controls, "/a%0Ab");
    expect_refused_p(&refuse_controls, "/a%7Fb");
    expect_path_p(&refuse_controls, "/a%20b", "/a%20b");
}
END_TEST

START_TEST(test_escaped_slash_is_refused_by_default)
{
    expect_refused("/projects/group%2Fproject");
    expect_refused("/projects/group%2fproject");
    expect_refused_p(&keep_params, "/projects/group%2Fproject");
}
END_TEST

START_TEST(test_escaped_slash_keep_routes_it_as_a_segment_byte)
{
    char out[256];
    struct gw_http_target t;
    ck_assert_int_eq(canon_p(&keep_slashes, "/projects/group%2fproject?x", out, sizeof out, &t), 0);
    ck_assert_str_eq(out, "/projects/group%2Fproject?x");
    ck_assert(t.escaped_slash);
    ck_assert_int_eq(canon_p(&keep_slashes, "/projects/x", out, sizeof out, &t), 0);
    ck_assert(!t.escaped_slash);
    expect_path_p(&keep_slashes, "/a%2Fb%2Fc/../d", "/d");
    /* pieces a backend that decodes %2F would read as segments of their own */
    expect_refused_p(&keep_slashes, "/x/..%2Fadmin");
    expect_refused_p(&keep_slashes, "/x/%2e%2e%2fadmin");
    expect_refused_p(&keep_slashes, "/x/.%2Fadmin");
    expect_refused_p(&keep_slashes, "/%2Fadmin");
    expect_refused_p(&keep_slashes, "/a%2F");
    expect_refused_p(&keep_slashes, "/a%2F%2Fb");
    expect_refused_p(&keep_slashes, "/a%2F..");
    /* the first pass keeps them, for the route to decide */
    char a[256], b[256];
    ck_assert_int_eq(canon_p(&opaque, "/x/..%2Fadmin", a, sizeof a, &t), 0);
    ck_assert_str_eq(a, "/x/..%2Fadmin");
    /* where KEEP accepts, the first pass gives the same bytes */
    static const char *const ok[] = {"/p/g%2Fp", "/a%2fb/c/", "//a%2Fb//c", NULL};
    for (int i = 0; ok[i]; i++) {
        ck_assert_int_eq(canon_p(&keep_slashes, ok[i], a, sizeof a, &t), 0);
        ck_assert_int_eq(canon_p(&opaque, ok[i], b, sizeof b, &t), 0);
        ck_assert_str_eq(a, b);
    }
}
END_TEST

START_TEST(test_escaped_slash_decode_and_redirect_make_it_a_slash)
{
    static const struct gw_http_path_policy *const pols[] = {&decode_slashes, &redirect_slashes,
                                                             NULL};
    for (int p = 0; pols[p]; p++) {
        char out[256];
        struct gw_http_target t;
        ck_assert_int_eq(canon_p(pols[p], "/a%2Fb?q=%2F", out, sizeof out, &t), 0);
        ck_assert_str_eq(out, "/a/b?q=%2F");
        ck_assert(t.escaped_slash);
        expect_path_p(pols[p], "/x/..%2Fadmin", "/admin");
        expect_path_p(pols[p], "/x/%2e%2e%2fadmin", "/admin");
        expect_path_p(pols[p], "/%2F%2Fadmin", "/admin");
        expect_path_p(pols[p], "/a%2F", "/a/");
        expect_refused_p(pols[p], "/..%2Fadmin");
        expect_refused_p(pols[p], "/a%5Cb");
    }
}
END_TEST

START_TEST(test_path_params_are_refused_by_default_and_kept_when_allowed)
{
    expect_refused("/app/login;jsessionid=ABC");
    expect_refused_p(&keep_slashes, "/app;x");
    char out[256];
    struct gw_http_target t;
    ck_assert_int_eq(canon_p(&keep_params, "/app/login;jsessionid=ABC?x=1", out, sizeof out, &t),
                     0);
    ck_assert_str_eq(out, "/app/login;jsessionid=ABC?x=1");
    ck_assert(t.params);
    expect_path_p(&keep_params, "/a;x=1;y/b;z", "/a;x=1;y/b;z");
    expect_path_p(&keep_params, "/a;x/../b", "/b");
    /* a name a servlet container would strip to ".", ".." or nothing */
    expect_refused_p(&keep_params, "/app/..;/admin");
    expect_refused_p(&keep_params, "/app/%2e%2e;x/admin");
    expect_refused_p(&keep_params, "/app/.;x");
    expect_refused_p(&keep_params, "/;x/admin");
    expect_refused_p(&keep_params, "/app/;jsessionid=1");
    /* with escaped slashes kept too, each part between them is a name */
    expect_refused_p(&keep_both, "/a;x%2F..;y");
    expect_path_p(&keep_both, "/a;x%2Fb;y", "/a;x%2Fb;y");
    /* the first pass keeps them all */
    expect_path_p(&opaque, "/app/..;/admin", "/app/..;/admin");
}
END_TEST

START_TEST(test_canonical_paths_are_fixed_points_under_every_policy)
{
    static const char *const targets[] = {
        "/a/b",     "//a/./b/../c/", "/a%2Fb",    "/a%2f..%2Fb",  "/x/..%2Fadmin",
        "/a;x/b;y", "/..;/x",        "/a%09b%0A", "/a%09b",       "/caf\xc3\xa9%2F",
        "/%2F%2F",  "/a%2F;x",       "/a%3Bb;c",  "/a%7eb?q=%2F", NULL};
    for (int p = 0; every_policy[p]; p++)
        for (int i = 0; targets[i]; i++) {
            char a[512], b[512];
            struct gw_http_target t;
            if (canon_p(every_policy[p], targets[i], a, sizeof a, &t) != 0)
                continue;
            if (canon_p(every_policy[p], a, b, sizeof b, &t) != 0)
                ck_abort_msg("policy %d: %s -> %s, refused when canonicalised again", p, targets[i],
                             a);
            if (strcmp(a, b) != 0)
                ck_abort_msg("policy %d: %s -> %s -> %s", p, targets[i], a, b);
        }
}
END_TEST

START_TEST(test_escaped_semicolon_is_a_path_parameter_delimiter)
{
    static const struct gw_http_path_policy keep_trailing = {.keep_trailing_dots = true};
    /* refused where ";" is: some backends decode before they split off
     * ";params" ("/public/..;/admin" is /admin to Tomcat) */
    expect_refused("/public/..%3B/admin");
    expect_refused("/..%3Bx/admin");
    expect_refused("/a%3bb");
    expect_refused_p(&keep_slashes, "/public/..%3B/admin");
    expect_refused_p(&keep_trailing, "/a%3Bb");
    /* kept, a name before it may not be empty, "." or ".." */
    expect_refused_p(&keep_params, "/public/..%3B/admin");
    expect_refused_p(&keep_params, "/..%3Bx/admin");
    expect_refused_p(&keep_params, "/app/.%3bx");
    expect_refused_p(&keep_params, "/%3Bx/admin");
    expect_refused_p(&keep_both, "/a%3Bx%2F..%3By");
    char out[256];
    struct gw_http_target t;
    ck_assert_int_eq(canon_p(&keep_params, "/a%3bb", out, sizeof out, &t), 0);
    ck_assert_str_eq(out, "/a%3Bb");
    ck_assert(t.params);
    /* the first pass keeps it, for the route to decide */
    ck_assert_int_eq(canon_p(&opaque, "/public/..%3B/admin", out, sizeof out, &t), 0);
    ck_assert_str_eq(out, "/public/..%3B/admin");
    ck_assert(t.params);
}
END_TEST

START_TEST(test_trailing_dots_are_refused_unless_kept)
{
    static const struct gw_http_path_policy keep_dots = {.keep_trailing_dots = true};
    static const char *const refused[] = {"/admin.", "/admin%2E", "/admin%2e/x", "/admin../x",
                                          "/a/...",  "/a/b./",    "/admin.?q",   NULL};
    for (int p = 0; every_policy[p]; p++)
        for (int i = 0; refused[i]; i++)
            expect_refused_p(every_policy[p], refused[i]);
    /* a piece before ";", "%2F" or "%3B" ends a name too */
    expect_refused_p(&keep_both, "/admin.;x");
    expect_refused_p(&keep_both, "/admin.%2Fx");
    expect_refused_p(&keep_both, "/admin.%3Bx");
    expect_refused_p(&opaque, "/admin.%2Fx");
    /* dots elsewhere, and dot segments, are not trailing dots */
    expect_path("/a.b/.well-known/c.d", "/a.b/.well-known/c.d");
    expect_path("/a/./b/../c", "/a/c");
    expect_path("/a/%2E%2E/b", "/b");
    expect_path_p(&opaque, "/x/..%2Fadmin", "/x/..%2Fadmin");
    expect_path_p(&decode_slashes, "/x/..%2Fadmin", "/admin");
    /* a listener that needs them (DNS names: PowerDNS's zones) keeps them */
    expect_path_p(&keep_dots, "/zones/example.org./records", "/zones/example.org./records");
    expect_path_p(&keep_dots, "/admin%2E", "/admin.");
}
END_TEST

START_TEST(test_strip_reads_the_path_as_a_parameter_stripping_backend)
{
    static const struct gw_http_path_policy decode_strip = {.slashes = GW_HTTP_SLASHES_DECODE,
                                                            .params = GW_HTTP_PARAMS_STRIP};
    static const struct gw_http_path_policy opaque_strip = {.slashes = GW_HTTP_SLASHES_OPAQUE,
                                                            .params = GW_HTTP_PARAMS_STRIP};
    /* decoded first, then stripped up to the next "/" */
    expect_path_p(&decode_strip, "/admin;x", "/admin");
    expect_path_p(&decode_strip, "/admin%3Bx/y", "/admin/y");
    expect_path_p(&decode_strip, "/a;x%2Fb", "/a/b");
    expect_path_p(&decode_strip, "/x/..;y/admin", "/admin");
    expect_path_p(&decode_strip, "/;x/admin", "/admin");
    /* stripped up to the next raw "/", then (by the caller) decoded:
     * Tomcat's order */
    expect_path_p(&opaque_strip, "/a;x%2Fb/c", "/a/c");
    expect_path_p(&opaque_strip, "/a%2Fb;x/c", "/a%2Fb/c");
    expect_refused_p(&opaque_strip, "/a;x%2");
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
    tcase_add_test(t, test_raw_non_ascii_in_the_target_is_refused_unless_encoded);
    tcase_add_test(t, test_query_is_not_part_of_the_path);
    tcase_add_test(t, test_characters_outside_pchar_are_refused);
    tcase_add_test(t, test_absolute_form_keeps_the_authority);
    tcase_add_test(t, test_asterisk_form_only_for_options);
    tcase_add_test(t, test_small_buffer_is_enospc);
    tcase_add_test(t, test_segment_edge_whitespace_and_controls_are_refused);
    tcase_add_test(t, test_controls_inside_a_segment_are_forwarded_escaped);
    tcase_add_test(t, test_escaped_slash_is_refused_by_default);
    tcase_add_test(t, test_escaped_slash_keep_routes_it_as_a_segment_byte);
    tcase_add_test(t, test_escaped_slash_decode_and_redirect_make_it_a_slash);
    tcase_add_test(t, test_path_params_are_refused_by_default_and_kept_when_allowed);
    tcase_add_test(t, test_canonical_paths_are_fixed_points_under_every_policy);
    tcase_add_test(t, test_escaped_semicolon_is_a_path_parameter_delimiter);
    tcase_add_test(t, test_trailing_dots_are_refused_unless_kept);
    tcase_add_test(t, test_strip_reads_the_path_as_a_parameter_stripping_backend);
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
