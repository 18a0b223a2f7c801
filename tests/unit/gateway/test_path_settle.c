/* test_path_settle.c: the route a path holding "%2F", ";" or "%3B" goes to
 * (gateway/src/path_settle.c), against a table with a deny route for
 * /admin, a tightening route for /internal, an exact deny route and a
 * catch-all. Each case is run as the request process runs it: first pass,
 * match, settle; the outcome is the route answering, 400 or a redirect. */
#include "path_settle.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jpos/diag.h"

static const char routes_json[] =
    "{\"routes\": ["
    "{\"name\": \"deny\", \"priority\": 10, \"match\": {\"path_prefix\": \"/admin\"},"
    " \"respond\": {\"status\": 403}},"
    "{\"name\": \"exact\", \"priority\": 10, \"match\": {\"path\": \"/exact\"},"
    " \"respond\": {\"status\": 403}},"
    "{\"name\": \"internal\", \"priority\": 5, \"match\": {\"path_prefix\": \"/internal\"},"
    " \"upstream\": \"up\", \"path_policy\": {\"escaped_slashes\": \"refuse\","
    " \"params\": \"refuse\"}},"
    "{\"name\": \"projects\", \"priority\": 5, \"match\": {\"path\": \"/projects/:id\"},"
    " \"upstream\": \"up\"},"
    "{\"name\": \"files\", \"priority\": 5, \"match\": {\"path_prefix\": \"/files\"},"
    " \"upstream\": \"up\", \"path_policy\": {\"escaped_slashes\": \"decode\"}},"
    "{\"name\": \"all\", \"match\": {\"path\": \"/*rest\"}, \"upstream\": \"up\"}"
    "]}";

static struct route_table *table;

static void setup(void)
{
    const char *up[] = {"up"};
    struct route_builder *b = NULL;
    struct jpos_diags d;
    jpos_diags_init(&d);
    ck_assert_int_eq(route_builder_new(&b, up, 1), 0);
    ck_assert_int_eq(route_builder_add_text(b, "t.json", routes_json, strlen(routes_json), &d), 0);
    if (route_builder_compile(b, &table, &d) != 0)
        jpos_diags_print(&d, stderr);
    ck_assert_ptr_nonnull(table);
    route_builder_free(b);
    jpos_diags_done(&d);
}

static void teardown(void)
{
    route_table_unref(table);
    table = NULL;
}

/* The outcome of `target` on a listener with policy `lis`: the name of the
 * route that answers and, through *fwd, the path forwarded (or "404",
 * "400", "308 <location>"). */
static const char *settle(const struct gw_http_path_policy *lis, const char *target, char *fwd,
                          size_t fwdcap)
{
    static char out[512];
    size_t n = strlen(target), cap = 3 * n + 2;
    char *tbuf = malloc(cap), *sbuf = malloc(cap);
    ck_assert(tbuf && sbuf);
    struct gw_http_path_policy first = gw__path_first_policy(lis);
    struct gw_http_target t;
    fwd[0] = 0;
    if (gw_http_target_canon_policy(&first, "GET", target, n, tbuf, cap, &t) < 0) {
        snprintf(out, sizeof out, "400");
        goto done;
    }
    struct route_request rr = {
        .method = "GET", .method_len = 3, .path = t.path, .path_len = t.path_len};
    struct route_match m;
    enum route_match_result res = route_table_match(table, &rr, &m);
    if (t.escaped_slash || t.params) {
        int sr = gw__path_settle(lis, table, &rr, "GET", target, n, sbuf, cap, &t, &res, &m);
        if (sr == 1) {
            snprintf(out, sizeof out, "308 %s", t.path);
            goto done;
        }
        if (sr < 0) {
            ck_assert_int_eq(sr, -EINVAL);
            snprintf(out, sizeof out, "400");
            goto done;
        }
        /* the path matched is the path forwarded */
        ck_assert_ptr_eq(rr.path, t.path);
    }
    if (res != ROUTE_MATCHED) {
        snprintf(out, sizeof out, "404");
        goto done;
    }
    snprintf(out, sizeof out, "%s", m.route->name);
    snprintf(fwd, fwdcap, "%s", t.path);
done:
    free(tbuf);
    free(sbuf);
    return out;
}

struct settle_case {
    const char *target;
    const char *outcome; /* route name, "400", "404" or "308 <path>" */
    const char *forwarded;
};

static void run_cases(const struct gw_http_path_policy *lis, const struct settle_case *c)
{
    for (; c->target; c++) {
        char fwd[512];
        const char *got = settle(lis, c->target, fwd, sizeof fwd);
        if (strcmp(got, c->outcome) != 0)
            ck_abort_msg("%s: %s, expected %s", c->target, got, c->outcome);
        if (c->forwarded && strcmp(fwd, c->forwarded) != 0)
            ck_abort_msg("%s: forwarded %s, expected %s", c->target, fwd, c->forwarded);
    }
}

START_TEST(test_keep_refuses_a_path_whose_decoded_reading_routes_elsewhere)
{
    static const struct gw_http_path_policy keep = {.slashes = GW_HTTP_SLASHES_KEEP};
    static const struct settle_case cases[] = {
        {"/admin%2Fx", "400", NULL},         /* decoded: /admin/x, the deny route */
        {"/admin%2fx/y?q", "400", NULL},     /* likewise */
        {"/internal%2Fx", "400", NULL},      /* decoded: /internal/x, which refuses */
        {"/exact%2Fx", "all", "/exact%2Fx"}, /* /exact/x: no route but the catch-all */
        {"/a%2Fb/c", "all", "/a%2Fb/c"},     /* both readings: the catch-all */
        {"/x/a%2Fadmin", "all", "/x/a%2Fadmin"},
        /* a one-segment :param holds a%2Fb, but decoded the path goes to the
         * catch-all: a backend decoding it would serve what another route
         * claims */
        {"/projects/a%2Fb", "400", NULL},
        {"/x/..%2Fadmin", "400", NULL}, /* a ".." piece (target.c) */
        {NULL, NULL, NULL},
    };
    run_cases(&keep, cases);
}
END_TEST

START_TEST(test_params_keep_refuses_a_path_whose_stripped_reading_routes_elsewhere)
{
    static const struct gw_http_path_policy keep = {.params = GW_HTTP_PARAMS_KEEP};
    static const struct gw_http_path_policy both = {.slashes = GW_HTTP_SLASHES_KEEP,
                                                    .params = GW_HTTP_PARAMS_KEEP};
    static const struct settle_case params[] = {
        {"/admin;x", "400", NULL},
        {"/admin%3Bx", "400", NULL},
        {"/internal;x", "400", NULL}, /* the route refuses, stripped or not */
        {"/exact;jsessionid=1", "400", NULL},
        {"/app/login;jsessionid=1", "all", "/app/login;jsessionid=1"},
        {"/app/login%3bx", "all", "/app/login%3Bx"},
        {"/public/..%3B/admin", "400", NULL},
        {NULL, NULL, NULL},
    };
    run_cases(&keep, params);
    static const struct settle_case mixed[] = {
        {"/admin;x%2Fy", "400", NULL}, /* decoded, then stripped: /admin/y */
        {"/exact;y%2Fz", "400", NULL}, /* stripped to the next "/", then decoded: /exact */
        {"/a;x%2Fb", "all", "/a;x%2Fb"},
        {NULL, NULL, NULL},
    };
    run_cases(&both, mixed);
}
END_TEST

START_TEST(test_decode_applies_the_decoded_paths_route)
{
    static const struct gw_http_path_policy decode = {.slashes = GW_HTTP_SLASHES_DECODE};
    static const struct gw_http_path_policy decode_params = {.slashes = GW_HTTP_SLASHES_DECODE,
                                                             .params = GW_HTTP_PARAMS_KEEP};
    static const struct settle_case cases[] = {
        {"/x/..%2Fpublic/a%2Fb", "all", "/public/a/b"},
        {"/x/..%2Finternal/a%2Fb", "400", NULL}, /* /internal refuses %2F */
        {"/x/..%2Fadmin", "deny", NULL},         /* decoded: /admin, denied */
        {NULL, NULL, NULL},
    };
    run_cases(&decode, cases);
    static const struct settle_case params[] = {
        /* decoded to /x/admin;y, which a container reads as /x/admin */
        {"/x%2Fadmin;y", "all", "/x/admin;y"},
        /* decoded to /admin;y: stripped, /admin */
        {"/a/..%2Fadmin;y", "400", NULL},
        {NULL, NULL, NULL},
    };
    run_cases(&decode_params, params);
    /* a strict listener: /files decodes; the catch-all it may lead to
     * takes the listener's refuse */
    static const struct gw_http_path_policy strict;
    static const struct settle_case route[] = {
        {"/files/a%2Fb.txt", "files", "/files/a/b.txt"},
        {"/files/..%2Fother", "400", NULL},
        {"/other/a%2Fb", "400", NULL},
        {NULL, NULL, NULL},
    };
    run_cases(&strict, route);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("path_settle");
    TCase *t = tcase_create("settle");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_keep_refuses_a_path_whose_decoded_reading_routes_elsewhere);
    tcase_add_test(t, test_params_keep_refuses_a_path_whose_stripped_reading_routes_elsewhere);
    tcase_add_test(t, test_decode_applies_the_decoded_paths_route);
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
