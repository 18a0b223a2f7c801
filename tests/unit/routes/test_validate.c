/* test_validate.c: route-file validation — every problem, at its exact
 * line, column and JSON path, with a message that says what to do. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "jpos/json.h"

/* The diagnostic whose message contains `needle`; fails the test if none. */
static const struct jpos_diag *find(const struct jpos_diags *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->items[i].message, needle))
            return &d->items[i];
    jpos_diags_print(d, stderr);
    ck_abort_msg("no diagnostic contains \"%s\"", needle);
    return NULL;
}

static void expect(const struct jpos_diags *d, const char *needle, unsigned line, unsigned col,
                   const char *path)
{
    const struct jpos_diag *g = find(d, needle);
    ck_assert_uint_eq(g->line, line);
    ck_assert_uint_eq(g->column, col);
    ck_assert_str_eq(g->path, path);
    ck_assert_int_eq(g->level, JPOS_DIAG_ERROR);
}

static struct jpos_diags run(const char *json)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct route_table *t = build_table(json, &d);
    ck_assert_ptr_null(t);
    ck_assert_uint_gt(d.nerrors, 0);
    return d;
}

START_TEST(syntax_error_reports_jansson_position)
{
    struct jpos_diags d = run("{\n  \"routes\": [\n    {\"name\": \"a\",,}\n  ]\n}\n");
    ck_assert_uint_eq(d.nerrors, 1);
    const struct jpos_diag *g = find(&d, "invalid JSON");
    ck_assert_uint_eq(g->line, 3);
    ck_assert_uint_eq(g->column, 18);
    ck_assert_str_eq(g->file, "t.json");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(unknown_key_suggests_the_closest_known_key)
{
    const char *txt = "{\n"
                      "  \"routes\": [\n"
                      "    {\n"
                      "      \"name\": \"a\",\n"
                      "      \"match\": {\"pth\": \"/x\"},\n"
                      "      \"upstrem\": \"demo\"\n"
                      "    }\n"
                      "  ]\n"
                      "}\n";
    struct jpos_diags d = run(txt);
    expect(&d, "unknown key \"pth\" in match; did you mean \"path\"?", 5, 17,
           "routes[0].match.pth");
    expect(&d, "unknown key \"upstrem\" in route; did you mean \"upstream\"?", 6, 7,
           "routes[0].upstrem");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(unknown_key_without_close_match_lists_known_keys)
{
    struct jpos_diags d = run("{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/\","
                              "\"zzzzzz\":1},\"respond\":{}}]}");
    const struct jpos_diag *g = find(&d, "unknown key \"zzzzzz\" in match (known keys: host, path");
    ck_assert_str_eq(g->path, "routes[0].match.zzzzzz");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(every_problem_is_reported_not_just_the_first)
{
    const char *txt = "{\"routes\": [\n"
                      " {\"name\": 5, \"match\": {\"path\": \"x\"}, \"upstream\": \"demo\"},\n"
                      " {\"name\": \"b\", \"match\": {\"path\": \"/b\", \"methods\": \"GET\"},"
                      " \"respond\": {\"status\": 99}},\n"
                      " {\"name\": \"c\", \"match\": {\"path_prefix\": \"/c\"}, \"retries\": 1.5,"
                      " \"upstream\": \"demo\"}\n"
                      "]}";
    struct jpos_diags d = run(txt);
    ck_assert_uint_eq(d.nerrors, 5);
    expect(&d, "expected a string, got an integer", 2, 11, "routes[0].name");
    expect(&d, "path must start with '/'", 2, 32, "routes[0].match.path");
    expect(&d, "expected an array, got a string", 3, 51, "routes[1].match.methods");
    expect(&d, "bad status 99", 3, 81, "routes[1].respond.status");
    expect(&d, "expected an integer, got a number with a fraction", 4, 59, "routes[2].retries");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(unknown_upstream_suggests_a_defined_one)
{
    const char *txt = "{\"routes\": [\n"
                      "  {\"name\": \"pay\", \"match\": {\"path_prefix\": \"/pay\"},\n"
                      "   \"upstream\": \"paymnts\"}\n"
                      "]}";
    struct jpos_diags d = run(txt);
    ck_assert_uint_eq(d.nerrors, 1);
    expect(&d, "unknown upstream \"paymnts\"; did you mean \"payments\"?", 3, 16,
           "routes[0].upstream");
    jpos_diags_done(&d);
    d = run("{\"routes\":[{\"name\":\"x\",\"match\":{\"path\":\"/\"},\"upstream\":\"zzzzzzzz\"}]}");
    find(&d, "unknown upstream \"zzzzzzzz\" (defined: \"demo\", \"payments\", \"users\")");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(route_needs_exactly_one_of_upstream_and_respond)
{
    struct jpos_diags d =
        run("{\"routes\":[\n"
            "{\"name\":\"none\",\"match\":{\"path\":\"/a\"}},\n"
            "{\"name\":\"both\",\"match\":{\"path\":\"/b\"},\"upstream\":\"demo\","
            "\"respond\":{}}\n"
            "]}");
    expect(&d,
           "route needs \"upstream\" (forward to a backend), \"respond\" (answer directly) or "
           "\"workflow\"",
           2, 1, "routes[0]");
    expect(&d, "one of \"upstream\", \"respond\" and \"workflow\", not several", 3, 56,
           "routes[1].respond");
    jpos_diags_done(&d);
}
END_TEST

static const char *const test_workflows[] = {"transfer", "refund"};

/* Compiles `json` with the workflow names above; NULL on errors. */
static struct route_table *build_wf(const char *json, struct jpos_diags *d)
{
    struct route_builder *b;
    ck_assert_int_eq(route_builder_new(&b, test_upstreams, 3), 0);
    ck_assert_int_eq(route_builder_set_workflows(b, test_workflows, 2), 0);
    route_builder_add_text(b, "t.json", json, strlen(json), d);
    struct route_table *t = NULL;
    int r = route_builder_compile(b, &t, d);
    route_builder_free(b);
    return r == 0 ? t : NULL;
}

START_TEST(workflow_route_names_a_known_workflow)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct route_table *t =
        build_wf("{\"routes\":[{\"name\":\"t\",\"match\":{\"path\":\"/transfers\"},"
                 "\"workflow\":\"transfer\",\"max_body_bytes\":4096}]}",
                 &d);
    ck_assert_ptr_nonnull(t);
    const struct route *r = route_table_route(t, 0);
    ck_assert_str_eq(r->workflow, "transfer");
    ck_assert_ptr_null(r->upstream);
    ck_assert_ptr_null(r->respond);
    ck_assert_int_eq(r->upstream_index, -1);
    route_table_unref(t);

    t = build_wf("{\"routes\":[\n"
                 "{\"name\":\"a\",\"match\":{\"path\":\"/a\"},\"workflow\":\"transfr\"},\n"
                 "{\"name\":\"b\",\"match\":{\"path\":\"/b\"},\"workflow\":\"zzzzzzzz\"},\n"
                 "{\"name\":\"c\",\"match\":{\"path\":\"/c\"},\"upstream\":\"demo\","
                 "\"workflow\":\"transfer\"},\n"
                 "{\"name\":\"d\",\"match\":{\"path\":\"/d\"},\"workflow\":\"transfer\","
                 "\"rewrite\":\"/x\"}\n"
                 "]}",
                 &d);
    ck_assert_ptr_null(t);
    expect(&d, "unknown workflow \"transfr\"; did you mean \"transfer\"?", 2, 46,
           "routes[0].workflow");
    expect(&d, "unknown workflow \"zzzzzzzz\" (defined: \"transfer\", \"refund\")", 3, 46,
           "routes[1].workflow");
    expect(&d, "one of \"upstream\", \"respond\" and \"workflow\", not several", 4, 53,
           "routes[2].workflow");
    expect(&d, "\"rewrite\" has no effect on a route that runs a workflow", 5, 57,
           "routes[3].rewrite");
    jpos_diags_done(&d);

    /* without the names, no workflow is known */
    d = run(
        "{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/a\"},\"workflow\":\"transfer\"}]}");
    find(&d, "unknown workflow \"transfer\": the workflows directory defines none");
    jpos_diags_done(&d);
}
END_TEST

static int drops;
static void drop_count(void *p)
{
    ck_assert_ptr_eq(p, &drops);
    drops++;
}

START_TEST(table_attachment_is_dropped_with_the_table)
{
    struct route_table *t = build_ok(
        "{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/a\"},\"upstream\":\"demo\"}]}");
    ck_assert_ptr_null(route_table_attachment(t));
    drops = 0;
    route_table_attach(t, &drops, drop_count);
    ck_assert_ptr_eq(route_table_attachment(t), &drops);
    route_table_ref(t);
    route_table_unref(t);
    ck_assert_int_eq(drops, 0);
    route_table_unref(t);
    ck_assert_int_eq(drops, 1);
}
END_TEST

START_TEST(duplicate_route_name_points_at_the_first)
{
    struct route_builder *b;
    struct jpos_diags d;
    jpos_diags_init(&d);
    ck_assert_int_eq(route_builder_new(&b, test_upstreams, 3), 0);
    const char *a = "{\"routes\":[\n  {\"name\": \"users\", \"match\": {\"path\": \"/a\"}, "
                    "\"respond\": {}}\n]}";
    const char *c = "{\"routes\":[\n\n  {\"name\": \"users\", \"match\": {\"path\": \"/b\"}, "
                    "\"respond\": {}}\n]}";
    ck_assert_int_eq(route_builder_add_text(b, "a.json", a, strlen(a), &d), 0);
    ck_assert_int_eq(route_builder_add_text(b, "b.json", c, strlen(c), &d), 0);
    struct route_table *t = NULL;
    ck_assert_int_eq(route_builder_compile(b, &t, &d), -EINVAL);
    ck_assert_ptr_null(t);
    const struct jpos_diag *g =
        find(&d, "duplicate route name \"users\"; it is first defined at a.json:2:12");
    ck_assert_str_eq(g->file, "b.json");
    ck_assert_uint_eq(g->line, 3);
    ck_assert_uint_eq(g->column, 12);
    ck_assert_str_eq(g->path, "routes[0].name");
    route_builder_free(b);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(routes_that_cannot_be_told_apart_conflict)
{
    const char *txt =
        "{\"routes\":[\n"
        "  {\"name\":\"a\",\"match\":{\"path\":\"/u/:id\",\"methods\":[\"GET\",\"POST\"]},"
        "\"respond\":{}},\n"
        "  {\"name\":\"b\",\"match\":{\"path\":\"/u/:uid\",\"methods\":[\"GET\"]},"
        "\"respond\":{}}\n"
        "]}";
    struct jpos_diags d = run(txt);
    ck_assert_uint_eq(d.nerrors, 1);
    expect(&d,
           "route \"b\" conflicts with route \"a\" (t.json:2:23): both match GET, HEAD /u/:uid on "
           "any host with equal precedence",
           3, 23, "routes[1].match");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(routes_that_differ_do_not_conflict)
{
    /* different priority, disjoint methods, incompatible headers, other host */
    struct route_table *t = build_ok(
        "{\"routes\":["
        "{\"name\":\"a\",\"match\":{\"path\":\"/x\"},\"respond\":{}},"
        "{\"name\":\"b\",\"priority\":1,\"match\":{\"path\":\"/x\"},\"respond\":{}},"
        "{\"name\":\"c\",\"match\":{\"path\":\"/y\",\"methods\":[\"GET\"]},\"respond\":{}},"
        "{\"name\":\"d\",\"match\":{\"path\":\"/y\",\"methods\":[\"POST\"]},\"respond\":{}},"
        "{\"name\":\"e\",\"match\":{\"path\":\"/z\",\"headers\":{\"x\":\"1\"}},\"respond\":{}},"
        "{\"name\":\"f\",\"match\":{\"path\":\"/z\",\"headers\":{\"x\":\"2\"}},\"respond\":{}},"
        "{\"name\":\"g\",\"match\":{\"host\":\"a.com\",\"path\":\"/x\"},\"respond\":{}}"
        "]}");
    route_table_unref(t);
}
END_TEST

START_TEST(headers_that_can_hold_together_conflict)
{
    struct jpos_diags d =
        run("{\"routes\":["
            "{\"name\":\"e\",\"match\":{\"path\":\"/z\",\"headers\":{\"x\":\"1\"}},\"respond\":{}},"
            "{\"name\":\"f\",\"match\":{\"path\":\"/z\",\"headers\":{\"y\":true}},\"respond\":{}}"
            "]}");
    find(&d, "route \"f\" conflicts with route \"e\"");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(bad_paths_and_hosts_are_explained)
{
    struct jpos_diags d =
        run("{\"routes\":["
            "{\"name\":\"a\",\"match\":{\"path\":\"/a//b\"},\"respond\":{}},"
            "{\"name\":\"b\",\"match\":{\"path\":\"/b?x=1\"},\"respond\":{}},"
            "{\"name\":\"c\",\"match\":{\"path\":\"/c/*rest/d\"},\"respond\":{}},"
            "{\"name\":\"d\",\"match\":{\"path_prefix\":\"/d/*rest\"},\"respond\":{}},"
            "{\"name\":\"e\",\"match\":{\"path\":\"/e\",\"host\":\"a.com:80\"},\"respond\":{}},"
            "{\"name\":\"f\",\"match\":{\"path\":\"/f\",\"host\":\"a.*.com\"},\"respond\":{}},"
            "{\"name\":\"g\",\"match\":{\"path\":\"/g/:id/:id\"},\"respond\":{}},"
            "{\"name\":\"h\",\"match\":{\"path\":\"/h\",\"methods\":[\"get\"]},\"respond\":{}}"
            "]}");
    ck_assert_uint_eq(d.nerrors, 8);
    find(&d, "empty segment");
    find(&d, "must not contain '?'");
    find(&d, "must be the last segment");
    find(&d, "path_prefix cannot hold a wildcard");
    find(&d, "must not include a port");
    find(&d, "'*' can only be the whole first label");
    find(&d, "parameter \"id\" appears twice");
    find(&d, "unknown method \"get\"; methods are case-sensitive: did you mean \"GET\"?");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(rewrite_must_use_parameters_of_the_path)
{
    struct jpos_diags d = run("{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/u/:id\"},"
                              "\"upstream\":\"demo\",\"rewrite\":\"/v2/:idd\"}]}");
    find(&d, "rewrite uses \":idd\" but the path has no such parameter; did you mean \"id\"?");
    jpos_diags_done(&d);
}
END_TEST

/* A route with path "/:a" whose rewrite is `refs` times `ref` (a "/:a" in
 * JSON) then `tail`; the rewrite's value starts at line 2, column 13. */
static void rewrite_route_of(char *json, size_t cap, int refs, const char *ref, const char *tail)
{
    char rw[768] = "";
    for (int i = 0; i < refs; i++)
        strcat(rw, ref);
    strcat(rw, tail);
    snprintf(json, cap,
             "{\"routes\":[{\"name\":\"r\",\"match\":{\"path\":\"/:a\"},\"upstream\":\"demo\",\n"
             "  \"rewrite\":\"%s\"}]}",
             rw);
}

static void rewrite_route(char *json, size_t cap, int refs, const char *tail)
{
    rewrite_route_of(json, cap, refs, "/:a", tail);
}

START_TEST(rewrite_with_more_parts_than_the_limit_is_refused_at_its_position)
{
    /* 33 references and a trailing literal: the "/" before the 33rd
     * reference, at byte 96, would be part 65. */
    char json[1024];
    rewrite_route(json, sizeof(json), 33, "/x");
    struct jpos_diags d = run(json);
    ck_assert_uint_eq(d.nerrors, 1);
    expect(&d,
           "rewrite has more than 64 parts (runs of literal text and :param or *wildcard "
           "references); part 65 starts at byte 96 of the decoded value",
           2, 13, "routes[0].rewrite");
    jpos_diags_done(&d);

    /* The position counts bytes of the decoded value: each "/" written as
     * the escape "\/" takes two bytes in the file, still one here. */
    rewrite_route_of(json, sizeof(json), 33, "\\/:a", "/x");
    d = run(json);
    ck_assert_uint_eq(d.nerrors, 1);
    expect(&d, "part 65 starts at byte 96 of the decoded value", 2, 13, "routes[0].rewrite");
    jpos_diags_done(&d);

    /* 32 references (64 parts) leave no room for a trailing literal. */
    rewrite_route(json, sizeof(json), 32, "/x");
    d = run(json);
    ck_assert_uint_eq(d.nerrors, 1);
    expect(&d, "part 65 starts at byte 96 of the decoded value", 2, 13, "routes[0].rewrite");
    jpos_diags_done(&d);

    /* Exactly 64 parts is allowed, and every one is substituted. */
    rewrite_route(json, sizeof(json), 32, "");
    struct route_table *t = build_ok(json);
    struct route_request req;
    struct route_match m;
    make_req(&req, "GET", NULL, "/7", NULL);
    ck_assert_int_eq(route_table_match(t, &req, &m), ROUTE_MATCHED);
    char want[128] = "", got[128];
    for (int i = 0; i < 32; i++)
        strcat(want, "/7");
    ck_assert_int_eq(route_upstream_path(&m, &req, NULL, 0, got, sizeof(got)), 64);
    ck_assert_str_eq(got, want);
    route_table_unref(t);
}
END_TEST

START_TEST(forwarding_options_on_a_direct_response_are_errors)
{
    struct jpos_diags d = run("{\"routes\":[{\"name\":\"a\",\"match\":{\"path_prefix\":\"/u\"},"
                              "\"respond\":{},\"strip_prefix\":true,\"retries\":2}]}");
    ck_assert_uint_eq(d.nerrors, 2);
    find(&d, "\"strip_prefix\" has no effect on a route that responds directly");
    find(&d, "\"retries\" has no effect on a route that responds directly");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(strip_prefix_on_a_whole_path_is_an_error)
{
    struct jpos_diags d = run("{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/u\"},"
                              "\"upstream\":\"demo\",\"strip_prefix\":true}]}");
    find(&d, "strip_prefix needs \"path_prefix\" or a wildcard path");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(managed_headers_cannot_be_set)
{
    struct jpos_diags d =
        run("{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/u\"},\"upstream\":\"demo\","
            "\"request_headers\":{\"set\":{\"Content-Length\":\"5\",\"x-ok\":\"a\\nb\"}}}]}");
    ck_assert_uint_eq(d.nerrors, 2);
    find(&d, "\"Content-Length\" is managed by the gateway");
    const struct jpos_diag *g = find(&d, "must not contain control characters");
    ck_assert_str_eq(g->path, "routes[0].request_headers.set.x-ok");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(tunnel_idle_timeout_is_a_route_timeout_with_a_range)
{
    struct route_table *t =
        build_ok("{\"routes\":[{\"name\":\"ws\",\"match\":{\"path\":\"/ws\"},"
                 "\"upstream\":\"demo\",\"timeouts\":{\"tunnel_idle_ms\":86400000}},"
                 "{\"name\":\"api\",\"match\":{\"path\":\"/api\"},\"upstream\":\"demo\"}]}");
    struct route_request req;
    struct route_match m;
    make_req(&req, "GET", NULL, "/ws", NULL);
    ck_assert_int_eq(route_table_match(t, &req, &m), ROUTE_MATCHED);
    ck_assert_uint_eq(m.route->tunnel_idle_ms, 86400000);
    make_req(&req, "GET", NULL, "/api", NULL);
    ck_assert_int_eq(route_table_match(t, &req, &m), ROUTE_MATCHED);
    ck_assert_uint_eq(m.route->tunnel_idle_ms, 0); /* the listener's */
    route_table_unref(t);

    struct jpos_diags d = run("{\"routes\":[{\"name\":\"ws\",\"match\":{\"path\":\"/ws\"},"
                              "\"upstream\":\"demo\",\"timeouts\":{\"tunnel_idle_ms\":0}}]}");
    const struct jpos_diag *g = find(&d, "must be between 1 and 86400000, got 0");
    ck_assert_str_eq(g->path, "routes[0].timeouts.tunnel_idle_ms");
    jpos_diags_done(&d);
}
END_TEST

/* Builds a JSON object of n members "x-hK": "v". */
static void header_members(char *buf, size_t cap, int n)
{
    size_t o = (size_t)snprintf(buf, cap, "{");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s\"x-h%d\":\"v\"", i ? "," : "", i);
    snprintf(buf + o, cap - o, "}");
}

START_TEST(header_objects_have_a_size_limit_and_valid_names)
{
    char members[4096], json[8192];
    header_members(members, sizeof members, ROUTE_MAX_HEADER_CONDS + 1);
    snprintf(json, sizeof json,
             "{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/a\",\"headers\":%s},"
             "\"upstream\":\"demo\"}]}",
             members);
    struct jpos_diags d = run(json);
    find(&d, "header conditions; at most 8");
    jpos_diags_done(&d);
    header_members(members, sizeof members, ROUTE_MAX_HEADER_EDITS + 1);
    snprintf(json, sizeof json,
             "{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/a\"},\"upstream\":\"demo\","
             "\"request_headers\":{\"set\":%s}}]}",
             members);
    d = run(json);
    find(&d, "headers; at most 32");
    jpos_diags_done(&d);
    d = run("{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/a\",\"headers\":{\"x y\":true}},"
            "\"respond\":{\"status\":200,\"headers\":{\"bad:name\":\"v\"}}}]}");
    ck_assert_uint_eq(d.nerrors, 2);
    find(&d, "\"x y\" is not a valid header name");
    find(&d, "\"bad:name\" is not a valid header name");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(columns_count_characters_not_bytes)
{
    /* "é" is two bytes but one column, as in jansson's own errors. */
    struct jpos_diags d =
        run("{\"routes\":[{\"name\":\"é\",\"match\":{\"path\":\"x\"},\"respond\":{}}]}");
    const struct jpos_diag *g = find(&d, "path must start with '/'");
    ck_assert_uint_eq(g->line, 1);
    ck_assert_uint_eq(g->column, 40); /* 41 if bytes were counted */
    jpos_diags_done(&d);
}
END_TEST

START_TEST(nesting_beyond_the_limit_is_refused_before_parsing)
{
    char txt[400];
    size_t n = 0;
    n += (size_t)snprintf(txt + n, sizeof(txt) - n, "{\"routes\":");
    for (int i = 0; i < 100; i++)
        txt[n++] = '[';
    txt[n] = '\0';
    struct jpos_diags d = run(txt);
    const struct jpos_diag *g = find(&d, "nested deeper than 64 levels");
    ck_assert_uint_eq(g->line, 1);
    ck_assert_uint_eq(g->column, 11 + 63);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(depth_check_counts_brackets_outside_strings_in_any_text)
{
    unsigned line = 0, col = 0;
    /* 64 levels pass, the 65th bracket is refused at its own position. */
    char txt[8192];
    size_t n = 0;
    for (int i = 0; i < 64; i++)
        txt[n++] = i % 2 ? '{' : '[';
    ck_assert_int_eq(jpos_depth_check(txt, n, 64, &line, &col), 0);
    txt[n++] = '[';
    ck_assert_int_eq(jpos_depth_check(txt, n, 64, &line, &col), -E2BIG);
    ck_assert_uint_eq(line, 1);
    ck_assert_uint_eq(col, 65);
    /* Closed levels do not count; brackets in strings (with escaped quotes)
     * do not count; a line break and a multibyte character move the
     * position as jansson counts it. */
    const char *flat = "[[]],[[]],[\"[[[\\\"[[[\"]";
    ck_assert_int_eq(jpos_depth_check(flat, strlen(flat), 2, &line, &col), 0);
    const char *deep = "{\"\u00e9\":\n \"\u00e9\", \"x\": [[";
    ck_assert_int_eq(jpos_depth_check(deep, strlen(deep), 2, &line, &col), -E2BIG);
    ck_assert_uint_eq(line, 2);
    ck_assert_uint_eq(col, 13);
    /* Invalid JSON is counted all the same: no parser may see it deeper. */
    n = 0;
    txt[n++] = '1';
    for (int i = 0; i < 3000; i++)
        txt[n++] = '[';
    ck_assert_int_eq(jpos_depth_check(txt, n, 64, &line, &col), -E2BIG);
    ck_assert_uint_eq(col, 66);
    /* An unterminated string hides what follows: nothing after it is parsed. */
    ck_assert_int_eq(jpos_depth_check("\"[[[", 4, 1, &line, &col), 0);
}
END_TEST

START_TEST(file_must_hold_a_routes_array)
{
    struct jpos_diags d = run("{\"rutes\": []}");
    find(&d, "unknown key \"rutes\" in route file; did you mean \"routes\"?");
    find(&d, "route file has no \"routes\" array");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(json_paths_quote_keys_that_are_not_identifiers)
{
    struct jpos_doc doc;
    struct jpos_diags d;
    jpos_diags_init(&d);
    const char *txt = "{\"a b\": [0, {\"c\": 1}]}";
    ck_assert_int_eq(jpos_doc_parse(&doc, "x.json", txt, strlen(txt), &d), 0);
    struct jpos_val root, ab, el, c;
    jpos_val_root(&doc, &root);
    ck_assert(jpos_obj_get(&root, "a b", &ab));
    struct jpos_iter it;
    jpos_iter_init(&it, &ab);
    ck_assert(jpos_iter_next(&it, &el));
    ck_assert(jpos_iter_next(&it, &el));
    ck_assert(jpos_obj_get(&el, "c", &c));
    char buf[64];
    jpos_val_path(&c, buf, sizeof(buf));
    ck_assert_str_eq(buf, "[\"a b\"][1].c");
    unsigned line, col;
    jpos_val_pos(&c, &line, &col);
    ck_assert_uint_eq(col, 19);
    jpos_val_key_pos(&c, &line, &col);
    ck_assert_uint_eq(col, 14);
    jpos_doc_done(&doc);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(suggestions_need_a_plausible_typo)
{
    const char *const keys[] = {"path", "path_prefix", "host", "methods", "headers"};
    ck_assert_str_eq(jpos_suggest("pth", keys, 5), "path");
    ck_assert_str_eq(jpos_suggest("hots", keys, 5), "host");
    ck_assert_str_eq(jpos_suggest("PATH", keys, 5), "path");
    ck_assert_str_eq(jpos_suggest("path_prefx", keys, 5), "path_prefix");
    ck_assert_ptr_null(jpos_suggest("banana", keys, 5));
    ck_assert_ptr_null(jpos_suggest("x", keys, 5));
    ck_assert_uint_eq(jpos_edit_distance("ab", "ba"), 1);
    ck_assert_uint_eq(jpos_edit_distance("kitten", "sitting"), 3);
}
END_TEST

START_TEST(diagnostics_are_capped_but_counted)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    d.max = 3;
    for (int i = 0; i < 10; i++)
        jpos_diag_add(&d, JPOS_DIAG_ERROR, "f", 1, 1, "", "e%d", i);
    ck_assert_uint_eq(d.n, 3);
    ck_assert_uint_eq(d.nerrors, 10);
    ck_assert_uint_eq(d.dropped, 7);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(path_policy_is_read_and_checked)
{
    struct route_table *t = build_ok(
        "{\"routes\":[{\"name\":\"gitlab\",\"match\":{\"path_prefix\":\"/api/v4/projects\"},"
        "\"upstream\":\"demo\",\"path_policy\":{\"escaped_slashes\":\"keep\"}},"
        "{\"name\":\"java\",\"match\":{\"path_prefix\":\"/app\"},\"upstream\":\"demo\","
        "\"path_policy\":{\"params\":\"keep\",\"escaped_slashes\":\"redirect\"}},"
        "{\"name\":\"deny\",\"match\":{\"path_prefix\":\"/admin\"},\"respond\":{\"status\":403},"
        "\"path_policy\":{\"escaped_slashes\":\"refuse\",\"params\":\"refuse\"}},"
        "{\"name\":\"files\",\"match\":{\"path_prefix\":\"/files\"},\"upstream\":\"demo\","
        "\"path_policy\":{\"escaped_slashes\":\"decode\"}},"
        "{\"name\":\"plain\",\"match\":{\"path\":\"/p\"},\"upstream\":\"demo\"}]}");
    const struct route *r = route_table_find(t, "gitlab");
    ck_assert_int_eq(r->escaped_slashes, ROUTE_SLASHES_KEEP);
    ck_assert_int_eq(r->path_params, ROUTE_PARAMS_LISTENER);
    r = route_table_find(t, "java");
    ck_assert_int_eq(r->escaped_slashes, ROUTE_SLASHES_REDIRECT);
    ck_assert_int_eq(r->path_params, ROUTE_PARAMS_KEEP);
    r = route_table_find(t, "deny");
    ck_assert_int_eq(r->escaped_slashes, ROUTE_SLASHES_REFUSE);
    ck_assert_int_eq(r->path_params, ROUTE_PARAMS_REFUSE);
    ck_assert_int_eq(route_table_find(t, "files")->escaped_slashes, ROUTE_SLASHES_DECODE);
    r = route_table_find(t, "plain");
    ck_assert_int_eq(r->escaped_slashes, ROUTE_SLASHES_LISTENER);
    ck_assert_int_eq(r->path_params, ROUTE_PARAMS_LISTENER);
    route_table_unref(t);

    struct jpos_diags d =
        run("{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/u\"},\"upstream\":\"demo\","
            "\"path_policy\":{\"escaped_slashes\":\"decod\",\"params\":\"strip\","
            "\"controls\":\"refuse\"}},"
            "{\"name\":\"b\",\"match\":{\"path\":\"/v\"},\"upstream\":\"demo\","
            "\"path_policy\":\"keep\"}]}");
    const struct jpos_diag *g =
        find(&d, "unknown escaped_slashes \"decod\"; did you mean \"decode\"?");
    ck_assert_str_eq(g->path, "routes[0].path_policy.escaped_slashes");
    find(&d, "unknown params \"strip\" (one of \"refuse\", \"keep\")");
    find(&d, "unknown key \"controls\" in path_policy");
    find(&d, "expected an object, got a string");
    ck_assert_uint_eq(d.nerrors, 4);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(redirect_https_takes_true_or_a_port)
{
    struct route_table *t =
        build_ok("{\"routes\":[{\"name\":\"on\",\"match\":{\"path\":\"/a\"},\"upstream\":\"demo\","
                 "\"redirect_https\":true},"
                 "{\"name\":\"port\",\"match\":{\"path\":\"/b\"},\"respond\":{},"
                 "\"redirect_https\":8443},"
                 "{\"name\":\"off\",\"match\":{\"path\":\"/c\"},\"upstream\":\"demo\","
                 "\"redirect_https\":false},"
                 "{\"name\":\"plain\",\"match\":{\"path\":\"/d\"},\"upstream\":\"demo\"}]}");
    ck_assert_uint_eq(route_table_find(t, "on")->redirect_https, 443);
    ck_assert_uint_eq(route_table_find(t, "port")->redirect_https, 8443);
    ck_assert_uint_eq(route_table_find(t, "off")->redirect_https, 0);
    ck_assert_uint_eq(route_table_find(t, "plain")->redirect_https, 0);
    route_table_unref(t);

    struct jpos_diags d =
        run("{\"routes\":[{\"name\":\"a\",\"match\":{\"path\":\"/u\"},\"upstream\":\"demo\","
            "\"redirect_https\":\"yes\"},"
            "{\"name\":\"b\",\"match\":{\"path\":\"/v\"},\"upstream\":\"demo\","
            "\"redirect_https\":70000},"
            "{\"name\":\"c\",\"match\":{\"path\":\"/w\"},\"upstream\":\"demo\","
            "\"redirect_https\":0}]}");
    const struct jpos_diag *g =
        find(&d, "redirect_https must be true, false or a port number (1-65535), got a string");
    ck_assert_str_eq(g->path, "routes[0].redirect_https");
    ck_assert_uint_eq(d.nerrors, 3);
    jpos_diags_done(&d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("route_validate");
    TCase *tc = tcase_create("validate");
    tcase_add_test(tc, syntax_error_reports_jansson_position);
    tcase_add_test(tc, unknown_key_suggests_the_closest_known_key);
    tcase_add_test(tc, unknown_key_without_close_match_lists_known_keys);
    tcase_add_test(tc, every_problem_is_reported_not_just_the_first);
    tcase_add_test(tc, unknown_upstream_suggests_a_defined_one);
    tcase_add_test(tc, route_needs_exactly_one_of_upstream_and_respond);
    tcase_add_test(tc, workflow_route_names_a_known_workflow);
    tcase_add_test(tc, table_attachment_is_dropped_with_the_table);
    tcase_add_test(tc, duplicate_route_name_points_at_the_first);
    tcase_add_test(tc, routes_that_cannot_be_told_apart_conflict);
    tcase_add_test(tc, routes_that_differ_do_not_conflict);
    tcase_add_test(tc, headers_that_can_hold_together_conflict);
    tcase_add_test(tc, bad_paths_and_hosts_are_explained);
    tcase_add_test(tc, rewrite_must_use_parameters_of_the_path);
    tcase_add_test(tc, rewrite_with_more_parts_than_the_limit_is_refused_at_its_position);
    tcase_add_test(tc, forwarding_options_on_a_direct_response_are_errors);
    tcase_add_test(tc, strip_prefix_on_a_whole_path_is_an_error);
    tcase_add_test(tc, managed_headers_cannot_be_set);
    tcase_add_test(tc, columns_count_characters_not_bytes);
    tcase_add_test(tc, nesting_beyond_the_limit_is_refused_before_parsing);
    tcase_add_test(tc, depth_check_counts_brackets_outside_strings_in_any_text);
    tcase_add_test(tc, file_must_hold_a_routes_array);
    tcase_add_test(tc, json_paths_quote_keys_that_are_not_identifiers);
    tcase_add_test(tc, suggestions_need_a_plausible_typo);
    tcase_add_test(tc, diagnostics_are_capped_but_counted);
    tcase_add_test(tc, header_objects_have_a_size_limit_and_valid_names);
    tcase_add_test(tc, path_policy_is_read_and_checked);
    tcase_add_test(tc, redirect_https_takes_true_or_a_port);
    tcase_add_test(tc, tunnel_idle_timeout_is_a_route_timeout_with_a_range);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
