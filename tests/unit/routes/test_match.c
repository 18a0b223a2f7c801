/* test_match.c: which route wins — one test per matching rule. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* A route answering directly, named n, with the given match object. */
#define R(n, match) "{\"name\":\"" n "\",\"match\":" match ",\"respond\":{\"status\":200}}"
#define R_X(n, match, extra)                                                                       \
    "{\"name\":\"" n "\",\"match\":" match ",\"upstream\":\"demo\"" extra "}"
#define FILE_OF1(a) "{\"routes\":[" a "]}"
#define FILE_OF2(a, b) "{\"routes\":[" a "," b "]}"
#define FILE_OF3(a, b, c) "{\"routes\":[" a "," b "," c "]}"
#define FILE_OF_PICK(_1, _2, _3, NAME, ...) NAME
#define FILE_OF(...) FILE_OF_PICK(__VA_ARGS__, FILE_OF3, FILE_OF2, FILE_OF1, none)(__VA_ARGS__)

START_TEST(exact_path_matches_only_itself)
{
    struct route_table *t = build_ok(FILE_OF(R("hello", "{\"path\":\"/hello\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/hello"), "hello");
    ck_assert_str_eq(winner(t, "GET", NULL, "/hello/"), "404");
    ck_assert_str_eq(winner(t, "GET", NULL, "/hellox"), "404");
    ck_assert_str_eq(winner(t, "GET", NULL, "/hello/x"), "404");
    ck_assert_str_eq(winner(t, "GET", NULL, "/"), "404");
    route_table_unref(t);
}
END_TEST

START_TEST(root_path_is_its_own_route)
{
    struct route_table *t = build_ok(FILE_OF(R("root", "{\"path\":\"/\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/"), "root");
    ck_assert_str_eq(winner(t, "GET", NULL, "/x"), "404");
    ck_assert_str_eq(winner(t, "GET", NULL, ""), "404");
    ck_assert_str_eq(winner(t, "GET", NULL, "*"), "404");
    route_table_unref(t);
}
END_TEST

START_TEST(prefix_matches_on_segment_boundary)
{
    struct route_table *t = build_ok(FILE_OF(R("api", "{\"path_prefix\":\"/api\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/api"), "api");
    ck_assert_str_eq(winner(t, "GET", NULL, "/api/"), "api");
    ck_assert_str_eq(winner(t, "GET", NULL, "/api/v1/x"), "api");
    ck_assert_str_eq(winner(t, "GET", NULL, "/apix"), "404");
    ck_assert_str_eq(winner(t, "GET", NULL, "/ap"), "404");
    route_table_unref(t);
}
END_TEST

START_TEST(prefix_trailing_slash_is_ignored)
{
    struct route_table *t = build_ok(FILE_OF(R("api", "{\"path_prefix\":\"/api/\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/api"), "api");
    ck_assert_str_eq(winner(t, "GET", NULL, "/api/x"), "api");
    ck_assert_str_eq(winner(t, "GET", NULL, "/apix"), "404");
    route_table_unref(t);
}
END_TEST

START_TEST(root_prefix_matches_everything)
{
    struct route_table *t = build_ok(FILE_OF(R("all", "{\"path_prefix\":\"/\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/"), "all");
    ck_assert_str_eq(winner(t, "GET", NULL, "/a/b/c"), "all");
    route_table_unref(t);
}
END_TEST

START_TEST(parameter_captures_one_segment)
{
    struct route_table *t = build_ok(FILE_OF(R("user", "{\"path\":\"/users/:id/posts/:post\"}")));
    struct route_request req;
    struct route_match m;
    make_req(&req, "GET", NULL, "/users/42/posts/7", NULL);
    ck_assert_int_eq(route_table_match(t, &req, &m), ROUTE_MATCHED);
    ck_assert_uint_eq(m.nparams, 2);
    ck_assert_str_eq(m.params[0].name, "id");
    ck_assert_int_eq((int)m.params[0].len, 2);
    ck_assert(memcmp(m.params[0].value, "42", 2) == 0);
    ck_assert_str_eq(m.params[1].name, "post");
    ck_assert_int_eq((int)m.params[1].len, 1);
    ck_assert(memcmp(m.params[1].value, "7", 1) == 0);
    ck_assert_str_eq(winner(t, "GET", NULL, "/users//posts/7"), "404"); /* empty parameter */
    ck_assert_str_eq(winner(t, "GET", NULL, "/users/42/posts"), "404");
    ck_assert_str_eq(winner(t, "GET", NULL, "/users/42/posts/7/x"), "404");
    route_table_unref(t);
}
END_TEST

START_TEST(wildcard_captures_the_rest)
{
    struct route_table *t = build_ok(FILE_OF(R("static", "{\"path\":\"/static/*rest\"}")));
    struct route_request req;
    struct route_match m;
    make_req(&req, "GET", NULL, "/static/css/a.css", NULL);
    ck_assert_int_eq(route_table_match(t, &req, &m), ROUTE_MATCHED);
    ck_assert_uint_eq(m.nparams, 1);
    ck_assert_str_eq(m.params[0].name, "rest");
    ck_assert_int_eq((int)m.params[0].len, 9);
    ck_assert(memcmp(m.params[0].value, "css/a.css", 9) == 0);
    ck_assert_int_eq((int)m.rest_len, 9);
    make_req(&req, "GET", NULL, "/static/", NULL);
    ck_assert_int_eq(route_table_match(t, &req, &m), ROUTE_MATCHED);
    ck_assert_int_eq((int)m.params[0].len, 0);
    ck_assert_str_eq(winner(t, "GET", NULL, "/static"), "404");
    route_table_unref(t);
}
END_TEST

START_TEST(exact_beats_parameter)
{
    struct route_table *t = build_ok(
        FILE_OF(R("param", "{\"path\":\"/users/:id\"}"), R("me", "{\"path\":\"/users/me\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/users/me"), "me");
    ck_assert_str_eq(winner(t, "GET", NULL, "/users/you"), "param");
    route_table_unref(t);
}
END_TEST

START_TEST(parameter_beats_wildcard)
{
    struct route_table *t = build_ok(FILE_OF(R("wild", "{\"path\":\"/files/*rest\"}"),
                                             R("param", "{\"path\":\"/files/:name\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/files/a"), "param");
    ck_assert_str_eq(winner(t, "GET", NULL, "/files/a/b"), "wild");
    route_table_unref(t);
}
END_TEST

START_TEST(wildcard_beats_prefix)
{
    struct route_table *t = build_ok(FILE_OF(R("prefix", "{\"path_prefix\":\"/static\"}"),
                                             R("wild", "{\"path\":\"/static/*rest\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/static/x"), "wild");
    ck_assert_str_eq(winner(t, "GET", NULL, "/static"), "prefix");
    route_table_unref(t);
}
END_TEST

START_TEST(full_parameter_route_beats_longer_prefix)
{
    /* A full match is preferred whatever the prefix's length. */
    struct route_table *t = build_ok(FILE_OF(R("prefix", "{\"path_prefix\":\"/api/v1\"}"),
                                             R("param", "{\"path\":\"/api/:ver/items\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/api/v1/items"), "param");
    ck_assert_str_eq(winner(t, "GET", NULL, "/api/v1/other"), "prefix");
    route_table_unref(t);
}
END_TEST

START_TEST(longer_prefix_beats_shorter)
{
    struct route_table *t = build_ok(FILE_OF(R("short", "{\"path_prefix\":\"/api\"}"),
                                             R("long", "{\"path_prefix\":\"/api/v1\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/api/v1/x"), "long");
    ck_assert_str_eq(winner(t, "GET", NULL, "/api/v2/x"), "short");
    route_table_unref(t);
}
END_TEST

START_TEST(longer_wildcard_beats_shorter)
{
    struct route_table *t = build_ok(
        FILE_OF(R("short", "{\"path\":\"/s/*rest\"}"), R("long", "{\"path\":\"/s/img/*rest\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/s/img/a.png"), "long");
    ck_assert_str_eq(winner(t, "GET", NULL, "/s/css/a.css"), "short");
    route_table_unref(t);
}
END_TEST

START_TEST(leftmost_literal_segment_wins)
{
    struct route_table *t =
        build_ok(FILE_OF(R("right", "{\"path\":\"/:x/b\"}"), R("left", "{\"path\":\"/a/:y\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/a/b"), "left");
    ck_assert_str_eq(winner(t, "GET", NULL, "/z/b"), "right");
    route_table_unref(t);
}
END_TEST

START_TEST(literal_dead_end_falls_back_to_parameter)
{
    struct route_table *t =
        build_ok(FILE_OF(R("lit", "{\"path\":\"/a/b/c\"}"), R("param", "{\"path\":\"/a/:x/d\"}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/a/b/d"), "param");
    ck_assert_str_eq(winner(t, "GET", NULL, "/a/b/c"), "lit");
    route_table_unref(t);
}
END_TEST

START_TEST(priority_overrides_precedence)
{
    struct route_table *t =
        build_ok(FILE_OF(R("exact", "{\"path\":\"/x\"}"),
                         "{\"name\":\"catchall\",\"priority\":10,\"match\":{\"path_prefix\":\"/\"},"
                         "\"respond\":{}}"));
    ck_assert_str_eq(winner(t, "GET", NULL, "/x"), "catchall");
    route_table_unref(t);
}
END_TEST

START_TEST(exact_host_then_wildcard_host_then_any)
{
    struct route_table *t = build_ok(FILE_OF(
        R("any", "{\"path\":\"/\"}"), R("wild", "{\"host\":\"*.example.com\",\"path\":\"/\"}"),
        R("exact", "{\"host\":\"api.example.com\",\"path\":\"/\"}")));
    ck_assert_str_eq(winner(t, "GET", "api.example.com", "/"), "exact");
    ck_assert_str_eq(winner(t, "GET", "www.example.com", "/"), "wild");
    ck_assert_str_eq(winner(t, "GET", "a.b.example.com", "/"), "wild");
    ck_assert_str_eq(winner(t, "GET", "example.com", "/"), "any");
    ck_assert_str_eq(winner(t, "GET", "other.org", "/"), "any");
    ck_assert_str_eq(winner(t, "GET", NULL, "/"), "any");
    route_table_unref(t);
}
END_TEST

START_TEST(longest_wildcard_host_suffix_wins)
{
    struct route_table *t =
        build_ok(FILE_OF(R("short", "{\"host\":\"*.example.com\",\"path\":\"/\"}"),
                         R("long", "{\"host\":\"*.api.example.com\",\"path\":\"/\"}")));
    ck_assert_str_eq(winner(t, "GET", "x.api.example.com", "/"), "long");
    ck_assert_str_eq(winner(t, "GET", "x.www.example.com", "/"), "short");
    ck_assert_str_eq(winner(t, "GET", "api.example.com", "/"), "short");
    route_table_unref(t);
}
END_TEST

START_TEST(host_group_without_match_falls_through)
{
    struct route_table *t =
        build_ok(FILE_OF(R("host-users", "{\"host\":\"api.example.com\",\"path\":\"/users\"}"),
                         R("any-health", "{\"path\":\"/health\"}")));
    ck_assert_str_eq(winner(t, "GET", "api.example.com", "/health"), "any-health");
    ck_assert_str_eq(winner(t, "GET", "api.example.com", "/users"), "host-users");
    ck_assert_str_eq(winner(t, "GET", "other", "/users"), "404");
    route_table_unref(t);
}
END_TEST

START_TEST(host_ignores_port_case_and_trailing_dot)
{
    struct route_table *t =
        build_ok(FILE_OF(R("h", "{\"host\":\"API.Example.com\",\"path\":\"/\"}")));
    ck_assert_str_eq(winner(t, "GET", "api.example.com:8080", "/"), "h");
    ck_assert_str_eq(winner(t, "GET", "Api.EXAMPLE.com.", "/"), "h");
    ck_assert_str_eq(winner(t, "GET", "api.example.org", "/"), "404");
    route_table_unref(t);
}
END_TEST

START_TEST(method_mismatch_is_405_with_allowed_methods)
{
    struct route_table *t =
        build_ok(FILE_OF(R("post", "{\"path\":\"/x\",\"methods\":[\"POST\",\"PUT\"]}")));
    struct route_request req;
    struct route_match m;
    make_req(&req, "GET", NULL, "/x", NULL);
    ck_assert_int_eq(route_table_match(t, &req, &m), ROUTE_NO_METHOD);
    ck_assert_uint_eq(m.allowed, ROUTE_M_POST | ROUTE_M_PUT);
    char allow[64];
    route_methods_format(m.allowed, allow, sizeof(allow));
    ck_assert_str_eq(allow, "POST, PUT");
    ck_assert_str_eq(winner(t, "POST", NULL, "/x"), "post");
    ck_assert_str_eq(winner(t, "GET", NULL, "/y"), "404");
    route_table_unref(t);
}
END_TEST

START_TEST(route_listing_methods_beats_route_without)
{
    struct route_table *t = build_ok(FILE_OF(R("any", "{\"path\":\"/x\"}"),
                                             R("get", "{\"path\":\"/x\",\"methods\":[\"GET\"]}")));
    ck_assert_str_eq(winner(t, "GET", NULL, "/x"), "get");
    ck_assert_str_eq(winner(t, "DELETE", NULL, "/x"), "any");
    route_table_unref(t);
}
END_TEST

START_TEST(get_implies_head_unless_head_is_routed)
{
    struct route_table *t = build_ok(FILE_OF(R("get", "{\"path\":\"/x\",\"methods\":[\"GET\"]}")));
    ck_assert_str_eq(winner(t, "HEAD", NULL, "/x"), "get");
    route_table_unref(t);
    t = build_ok(FILE_OF(R("get", "{\"path\":\"/x\",\"methods\":[\"GET\"]}"),
                         R("head", "{\"path\":\"/x\",\"methods\":[\"HEAD\"]}")));
    ck_assert_str_eq(winner(t, "HEAD", NULL, "/x"), "head");
    ck_assert_str_eq(winner(t, "GET", NULL, "/x"), "get");
    route_table_unref(t);
}
END_TEST

START_TEST(extension_methods_match_exactly)
{
    struct route_table *t =
        build_ok(FILE_OF(R("dav", "{\"path\":\"/d\",\"methods\":[\"PROPFIND\"]}")));
    ck_assert_str_eq(winner(t, "PROPFIND", NULL, "/d"), "dav");
    ck_assert_str_eq(winner(t, "PROPPATCH", NULL, "/d"), "405");
    route_table_unref(t);
}
END_TEST

START_TEST(header_conditions_equal_present_absent)
{
    struct route_table *t =
        build_ok(FILE_OF(R("prod", "{\"path\":\"/x\",\"headers\":{\"X-Env\":\"prod\"}}"),
                         R("beta", "{\"path\":\"/y\",\"headers\":{\"x-beta\":true}}"),
                         R("nobeta", "{\"path\":\"/y\",\"headers\":{\"x-beta\":false}}")));
    struct test_headers prod = {{"x-env"}, {"prod"}};
    struct test_headers dev = {{"x-env"}, {"dev"}};
    struct test_headers beta = {{"x-beta"}, {""}};
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", &prod), "prod");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", &dev), "404");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", NULL), "404");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/y", &beta), "beta");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/y", &dev), "nobeta");
    route_table_unref(t);
}
END_TEST

START_TEST(equal_condition_must_hold_for_every_line_of_a_repeated_field)
{
    struct route_table *t =
        build_ok(FILE_OF(R("admin", "{\"path\":\"/x\",\"headers\":{\"x-role\":\"admin\"}}"),
                         R("other", "{\"path\":\"/x\"}")));
    /* The gateway forwards every line: an upstream reading the last one
     * would see "user" on a request routed as "admin". */
    struct test_headers admin_user = {{"x-role", "x-role"}, {"admin", "user"}};
    struct test_headers user_admin = {{"x-role", "x-role"}, {"user", "admin"}};
    struct test_headers apart = {{"x-role", "accept", "x-role"}, {"admin", "*/*", "user"}};
    struct test_headers admin_empty = {{"x-role", "x-role"}, {"admin", ""}};
    struct test_headers one_line_list = {{"x-role"}, {"admin, user"}};
    struct test_headers admin_admin = {{"x-role", "accept", "x-role"}, {"admin", "*/*", "admin"}};
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", &admin_user), "other");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", &user_admin), "other");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", &apart), "other");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", &admin_empty), "other");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", &one_line_list), "other");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", &admin_admin), "admin");
    route_table_unref(t);
}
END_TEST

START_TEST(present_and_absent_see_every_line_of_a_repeated_field)
{
    struct route_table *t =
        build_ok(FILE_OF(R("debug", "{\"path\":\"/p\",\"headers\":{\"x-debug\":true}}"),
                         R("modern", "{\"path\":\"/q\",\"headers\":{\"x-legacy\":false}}"),
                         R("legacy", "{\"path\":\"/q\",\"headers\":{\"x-legacy\":true}}")));
    struct test_headers two_debug = {{"x-debug", "x-debug"}, {"1", ""}};
    struct test_headers later_legacy = {{"x-a", "x-legacy", "x-legacy"}, {"1", "1", "2"}};
    struct test_headers none = {{"x-a"}, {"1"}};
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/p", &two_debug), "debug");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/q", &later_legacy), "legacy");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/q", &none), "modern");
    route_table_unref(t);
}
END_TEST

START_TEST(more_header_conditions_win)
{
    struct route_table *t =
        build_ok(FILE_OF(R("plain", "{\"path\":\"/x\"}"),
                         R("canary", "{\"path\":\"/x\",\"headers\":{\"x-canary\":\"1\"}}")));
    struct test_headers canary = {{"x-canary"}, {"1"}};
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", &canary), "canary");
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/x", NULL), "plain");
    route_table_unref(t);
}
END_TEST

START_TEST(path_specificity_beats_header_conditions)
{
    struct route_table *t =
        build_ok(FILE_OF(R("param", "{\"path\":\"/u/:id\",\"headers\":{\"x-a\":true}}"),
                         R("me", "{\"path\":\"/u/me\"}")));
    struct test_headers a = {{"x-a"}, {"1"}};
    ck_assert_str_eq(winner_h(t, "GET", NULL, "/u/me", &a), "me");
    route_table_unref(t);
}
END_TEST

static const char *upath(const struct route_table *t, const char *path, const char *query)
{
    static char buf[256];
    struct route_request req;
    struct route_match m;
    make_req(&req, "GET", NULL, path, NULL);
    ck_assert_int_eq(route_table_match(t, &req, &m), ROUTE_MATCHED);
    int n = route_upstream_path(&m, &req, query, query ? strlen(query) : 0, buf, sizeof(buf));
    ck_assert_int_ge(n, 0);
    ck_assert_uint_eq((size_t)n, strlen(buf));
    return buf;
}

START_TEST(strip_prefix_forwards_the_remainder)
{
    struct route_table *t =
        build_ok(FILE_OF(R_X("api", "{\"path_prefix\":\"/api\"}", ",\"strip_prefix\":true"),
                         R_X("st", "{\"path\":\"/static/*f\"}", ",\"strip_prefix\":true"),
                         R_X("keep", "{\"path_prefix\":\"/keep\"}", "")));
    ck_assert_str_eq(upath(t, "/api/users/1", NULL), "/users/1");
    ck_assert_str_eq(upath(t, "/api", NULL), "/");
    ck_assert_str_eq(upath(t, "/api/", "a=1"), "/?a=1");
    ck_assert_str_eq(upath(t, "/static/css/x.css", NULL), "/css/x.css");
    ck_assert_str_eq(upath(t, "/keep/x", "q"), "/keep/x?q");
    route_table_unref(t);
}
END_TEST

START_TEST(rewrite_substitutes_parameters)
{
    struct route_table *t = build_ok(FILE_OF(
        R_X("u", "{\"path\":\"/users/:id\"}", ",\"rewrite\":\"/v2/people/:id/profile\""),
        R_X("f", "{\"path\":\"/files/*p\"}", ",\"rewrite\":\"/blob/*p\""),
        R_X("t", "{\"path_prefix\":\"/t/:tenant\"}", ",\"rewrite\":\"/tenants/:tenant/\"")));
    ck_assert_str_eq(upath(t, "/users/42", "x=1"), "/v2/people/42/profile?x=1");
    ck_assert_str_eq(upath(t, "/files/a/b", NULL), "/blob/a/b");
    ck_assert_str_eq(upath(t, "/t/acme/orders/9", NULL), "/tenants/acme/orders/9");
    ck_assert_str_eq(upath(t, "/t/acme", NULL), "/tenants/acme/");
    route_table_unref(t);
}
END_TEST

START_TEST(upstream_path_reports_overflow)
{
    struct route_table *t = build_ok(FILE_OF(R_X("k", "{\"path_prefix\":\"/k\"}", "")));
    struct route_request req;
    struct route_match m;
    make_req(&req, "GET", NULL, "/k/abcdef", NULL);
    ck_assert_int_eq(route_table_match(t, &req, &m), ROUTE_MATCHED);
    char buf[8];
    ck_assert_int_eq(route_upstream_path(&m, &req, NULL, 0, buf, sizeof(buf)), -ENOSPC);
    route_table_unref(t);
}
END_TEST

/* 10,000 generated routes of every kind over several hosts compile, and each
 * is found by a request made for it. */
START_TEST(ten_thousand_generated_routes_compile_and_match)
{
    size_t cap = 4u << 20, len = 0;
    char *json = malloc(cap);
    ck_assert_ptr_nonnull(json);
    len += (size_t)snprintf(json + len, cap - len, "{\"routes\":[");
    for (int i = 0; i < 10000; i++) {
        char hostbuf[64] = "";
        if (i % 5 == 0)
            snprintf(hostbuf, sizeof(hostbuf), ",\"host\":\"h%d.example.com\"", i % 7);
        switch (i % 4) {
        case 0:
            len += (size_t)snprintf(json + len, cap - len,
                                    "%s{\"name\":\"r%d\",\"match\":{\"path\":\"/svc%d/items\"%s},"
                                    "\"upstream\":\"demo\"}",
                                    i ? "," : "", i, i, hostbuf);
            break;
        case 1:
            len += (size_t)snprintf(json + len, cap - len,
                                    ",{\"name\":\"r%d\",\"match\":{\"path\":\"/svc%d/items/:id\"%s,"
                                    "\"methods\":[\"GET\"]},\"upstream\":\"demo\"}",
                                    i, i, hostbuf);
            break;
        case 2:
            len +=
                (size_t)snprintf(json + len, cap - len,
                                 ",{\"name\":\"r%d\",\"match\":{\"path\":\"/svc%d/files/*rest\"%s},"
                                 "\"upstream\":\"demo\"}",
                                 i, i, hostbuf);
            break;
        default:
            len += (size_t)snprintf(json + len, cap - len,
                                    ",{\"name\":\"r%d\",\"match\":{\"path_prefix\":\"/svc%d\"%s},"
                                    "\"upstream\":\"demo\"}",
                                    i, i, hostbuf);
            break;
        }
    }
    len += (size_t)snprintf(json + len, cap - len, "]}");
    ck_assert_uint_lt(len, cap);
    struct route_table *t = build_ok(json);
    ck_assert_uint_eq(route_table_count(t), 10000);
    for (int i = 0; i < 10000; i++) {
        char path[64], host[64], name[16];
        const char *suffix[] = {"/items", "/items/7", "/files/a/b", "/x"};
        snprintf(path, sizeof(path), "/svc%d%s", i, suffix[i % 4]);
        snprintf(host, sizeof(host), "h%d.example.com", i % 7);
        snprintf(name, sizeof(name), "r%d", i);
        ck_assert_str_eq(winner(t, "GET", (i % 5 == 0) ? host : NULL, path), name);
    }
    route_table_unref(t);
    free(json);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("route_match");
    TCase *tc = tcase_create("match");
    tcase_add_test(tc, exact_path_matches_only_itself);
    tcase_add_test(tc, root_path_is_its_own_route);
    tcase_add_test(tc, prefix_matches_on_segment_boundary);
    tcase_add_test(tc, prefix_trailing_slash_is_ignored);
    tcase_add_test(tc, root_prefix_matches_everything);
    tcase_add_test(tc, parameter_captures_one_segment);
    tcase_add_test(tc, wildcard_captures_the_rest);
    tcase_add_test(tc, exact_beats_parameter);
    tcase_add_test(tc, parameter_beats_wildcard);
    tcase_add_test(tc, wildcard_beats_prefix);
    tcase_add_test(tc, full_parameter_route_beats_longer_prefix);
    tcase_add_test(tc, longer_prefix_beats_shorter);
    tcase_add_test(tc, longer_wildcard_beats_shorter);
    tcase_add_test(tc, leftmost_literal_segment_wins);
    tcase_add_test(tc, literal_dead_end_falls_back_to_parameter);
    tcase_add_test(tc, priority_overrides_precedence);
    tcase_add_test(tc, exact_host_then_wildcard_host_then_any);
    tcase_add_test(tc, longest_wildcard_host_suffix_wins);
    tcase_add_test(tc, host_group_without_match_falls_through);
    tcase_add_test(tc, host_ignores_port_case_and_trailing_dot);
    tcase_add_test(tc, method_mismatch_is_405_with_allowed_methods);
    tcase_add_test(tc, route_listing_methods_beats_route_without);
    tcase_add_test(tc, get_implies_head_unless_head_is_routed);
    tcase_add_test(tc, extension_methods_match_exactly);
    tcase_add_test(tc, header_conditions_equal_present_absent);
    tcase_add_test(tc, equal_condition_must_hold_for_every_line_of_a_repeated_field);
    tcase_add_test(tc, present_and_absent_see_every_line_of_a_repeated_field);
    tcase_add_test(tc, more_header_conditions_win);
    tcase_add_test(tc, path_specificity_beats_header_conditions);
    tcase_add_test(tc, strip_prefix_forwards_the_remainder);
    tcase_add_test(tc, rewrite_substitutes_parameters);
    tcase_add_test(tc, upstream_path_reports_overflow);
    tcase_add_test(tc, ten_thousand_generated_routes_compile_and_match);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
