/* test_cors.c: the `cors` policy kind (gateway/src/policy/cors.c): what it
 * loads and refuses to load, and its verdict and fields for preflights and
 * actual requests. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/http1.h"
#include "jpos/json.h"
#include "policy/cors.h"
#include "policy/policy.h"
#include "resp_wire.h"

static int compile(const char *text, void **state, struct jpos_diags *d)
{
    const struct gw_pol_kind *k = gw_pol_kind_find("cors");
    ck_assert_ptr_nonnull(k);
    struct jpos_doc doc;
    int rc = jpos_doc_parse(&doc, "cors.json", text, strlen(text), d);
    if (rc == 0) {
        struct jpos_val root;
        jpos_val_root(&doc, &root);
        struct gw_pol_env env = {0};
        rc = k->compile(d, &root, &env, state);
    }
    jpos_doc_done(&doc);
    return rc;
}

static void *policy(const char *keys)
{
    char text[2048];
    snprintf(text, sizeof text, "{\"name\": \"web\", \"type\": \"cors\", %s}", keys);
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *st = NULL;
    int rc = compile(text, &st, &d);
    if (rc != 0)
        jpos_diags_print(&d, stderr);
    ck_assert_int_eq(rc, 0);
    jpos_diags_done(&d);
    return st;
}

static void policy_free(void *st)
{
    gw_pol_kind_find("cors")->free(st);
}

static char *load_error(const char *keys)
{
    char text[2048];
    snprintf(text, sizeof text, "{\"name\": \"web\", \"type\": \"cors\", %s}", keys);
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *st = NULL;
    ck_assert_int_eq(compile(text, &st, &d), -EINVAL);
    ck_assert_uint_ge(d.n, 1);
    char *m = strdup(d.items[0].message);
    jpos_diags_done(&d);
    return m;
}

/* One request through the policy. */
struct run {
    struct gw_http_head *h;
    struct gw_pol_req rq;
    enum gw_cors_verdict v;
};

static void run(struct run *r, void *st, const char *method, const char *fields)
{
    char req[2048];
    snprintf(req, sizeof req, "%s /api HTTP/1.1\r\nHost: api.example.com\r\n%s\r\n", method,
             fields);
    struct gw_http_parser *p;
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, &lim), 0);
    size_t used;
    struct gw_http_event ev;
    ck_assert_int_eq(gw_http_parser_feed(p, req, strlen(req), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_parser_free(p);
    r->h = ev.head;
    r->rq = (struct gw_pol_req){.head = r->h, .client = "192.0.2.7"};
    r->v = gw__cors_eval(st, &r->rq);
}

static void done(struct run *r)
{
    /* Whatever the verdict, the fields go on the answer as they are. */
    ck_assert(resp_fields_need_no_check(&r->rq));
    gw_http_head_free(r->h);
}

/* The value of answer field `name`, NULL when absent; at most once. */
static const char *field(const struct run *r, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < r->rq.nresp; i++) {
        if (strcasecmp(r->rq.resp[i].name, name) != 0)
            continue;
        ck_assert_msg(!v, "%s twice", name);
        v = r->rq.resp[i].value;
    }
    return v;
}

static size_t cors_fields(const struct run *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->rq.nresp; i++)
        n += strncasecmp(r->rq.resp[i].name, "access-control-", 15) == 0;
    return n;
}

#define PREFLIGHT(origin, method, hdrs)                                                            \
    "Origin: " origin "\r\nAccess-Control-Request-Method: " method "\r\n" hdrs

static const char *const web =
    "\"origins\": [\"https://app.example.com\", \"https://*.example.org\", "
    "\"http://localhost:8080\"], \"methods\": [\"GET\", \"PUT\"], "
    "\"headers\": [\"Content-Type\", \"x-trace\"], \"expose_headers\": [\"x-request-id\"], "
    "\"credentials\": true, \"max_age_s\": 120";

START_TEST(test_preflight_from_an_allowed_origin_is_answered_with_allow_fields)
{
    void *st = policy(web);
    struct run r;
    run(&r, st, "OPTIONS",
        PREFLIGHT("https://app.example.com", "PUT",
                  "Access-Control-Request-Headers: x-trace,"
                  "content-type\r\n"));
    ck_assert_int_eq(r.v, GW_CORS_PREFLIGHT_OK);
    ck_assert_str_eq(field(&r, "access-control-allow-origin"), "https://app.example.com");
    ck_assert_str_eq(field(&r, "access-control-allow-credentials"), "true");
    ck_assert_str_eq(field(&r, "access-control-allow-methods"), "GET, PUT");
    ck_assert_str_eq(field(&r, "access-control-allow-headers"), "content-type, x-trace");
    ck_assert_str_eq(field(&r, "access-control-max-age"), "120");
    ck_assert_ptr_nonnull(strstr(field(&r, "vary"), "Origin"));
    ck_assert_ptr_nonnull(strstr(field(&r, "vary"), "Access-Control-Request-Headers"));
    /* exposed fields are for actual responses */
    ck_assert_ptr_null(field(&r, "access-control-expose-headers"));
    done(&r);
    /* a pattern: any subdomain, any depth; the port is the pattern's */
    run(&r, st, "OPTIONS", PREFLIGHT("https://a.b.example.org", "GET", ""));
    ck_assert_int_eq(r.v, GW_CORS_PREFLIGHT_OK);
    ck_assert_str_eq(field(&r, "access-control-allow-origin"), "https://a.b.example.org");
    /* the fields allowed, whether or not any were asked for */
    ck_assert_str_eq(field(&r, "access-control-allow-headers"), "content-type, x-trace");
    done(&r);
    run(&r, st, "OPTIONS", PREFLIGHT("HTTP://LOCALHOST:8080", "GET", ""));
    ck_assert_int_eq(r.v, GW_CORS_PREFLIGHT_OK);
    done(&r);
    policy_free(st);
}
END_TEST

START_TEST(test_preflight_refused_without_any_allow_field)
{
    void *st = policy(web);
    static const char *const refused[] = {
        PREFLIGHT("https://evil.example.com", "PUT", ""),
        PREFLIGHT("https://example.org", "GET", ""),          /* the pattern's bare domain */
        PREFLIGHT("http://app.example.org", "GET", ""),       /* another scheme */
        PREFLIGHT("https://app.example.org:8443", "GET", ""), /* another port */
        PREFLIGHT("https://app.example.com.evil.net", "GET", ""),
        PREFLIGHT("https://x.evil.net/.example.org", "GET", ""),
        PREFLIGHT("https://x:1@y.example.org", "GET", ""),
        PREFLIGHT("https://.example.org", "GET", ""),
        PREFLIGHT("null", "GET", ""),
        PREFLIGHT("https://app.example.com", "DELETE", ""), /* method not listed */
        PREFLIGHT("https://app.example.com", "put", ""),    /* methods are case-sensitive */
        PREFLIGHT("https://app.example.com", "PUT",
                  "Access-Control-Request-Headers: x-trace, x-secret\r\n"),
        "Origin: https://app.example.com\r\nOrigin: https://evil.example.com\r\n"
        "Access-Control-Request-Method: GET\r\n",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        struct run r;
        run(&r, st, "OPTIONS", refused[i]);
        ck_assert_msg(r.v == GW_CORS_REFUSED, "%s", refused[i]);
        ck_assert_msg(cors_fields(&r) == 0, "%s", refused[i]);
        ck_assert_ptr_nonnull(field(&r, "vary"));
        done(&r);
    }
    policy_free(st);
}
END_TEST

START_TEST(test_actual_request_from_allowed_origin_gets_origin_credentials_expose)
{
    void *st = policy(web);
    struct run r;
    run(&r, st, "PUT", "Origin: https://app.example.com\r\nContent-Length: 0\r\n");
    ck_assert_int_eq(r.v, GW_CORS_PASS);
    ck_assert_str_eq(field(&r, "access-control-allow-origin"), "https://app.example.com");
    ck_assert_str_eq(field(&r, "access-control-allow-credentials"), "true");
    ck_assert_str_eq(field(&r, "access-control-expose-headers"), "x-request-id");
    ck_assert_str_eq(field(&r, "vary"), "Origin");
    ck_assert_ptr_null(field(&r, "access-control-allow-methods"));
    done(&r);
    /* an OPTIONS without Access-Control-Request-Method is no preflight */
    run(&r, st, "OPTIONS", "Origin: https://app.example.com\r\n");
    ck_assert_int_eq(r.v, GW_CORS_PASS);
    ck_assert_str_eq(field(&r, "access-control-allow-origin"), "https://app.example.com");
    done(&r);
    policy_free(st);
}
END_TEST

START_TEST(test_actual_request_from_other_origin_goes_on_without_cors_fields)
{
    void *st = policy(web);
    struct run r;
    run(&r, st, "GET", "Origin: https://evil.example.com\r\n");
    ck_assert_int_eq(r.v, GW_CORS_PASS);
    ck_assert_uint_eq(cors_fields(&r), 0);
    ck_assert_str_eq(field(&r, "vary"), "Origin");
    done(&r);
    /* no Origin: the answer still varies by it, for caches */
    run(&r, st, "GET", "");
    ck_assert_int_eq(r.v, GW_CORS_PASS);
    ck_assert_uint_eq(cors_fields(&r), 0);
    ck_assert_str_eq(field(&r, "vary"), "Origin");
    done(&r);
    policy_free(st);
}
END_TEST

START_TEST(test_any_origin_answers_star_and_any_header_echoes)
{
    void *st = policy("\"origins\": [\"*\"], \"headers\": [\"*\"], \"expose_headers\": [\"*\"]");
    struct run r;
    run(&r, st, "OPTIONS",
        PREFLIGHT("https://whoever.net", "PATCH", "Access-Control-Request-Headers: x-a, x-b\r\n"));
    ck_assert_int_eq(r.v, GW_CORS_PREFLIGHT_OK);
    ck_assert_str_eq(field(&r, "access-control-allow-origin"), "*");
    ck_assert_ptr_null(field(&r, "access-control-allow-credentials"));
    /* methods not listed: what the route serves (no route here: any),
     * answered with the one asked for */
    ck_assert_str_eq(field(&r, "access-control-allow-methods"), "PATCH");
    ck_assert_str_eq(field(&r, "access-control-allow-headers"), "x-a, x-b");
    ck_assert_str_eq(field(&r, "access-control-max-age"), "600");
    done(&r);
    run(&r, st, "GET", "Origin: https://whoever.net\r\n");
    ck_assert_str_eq(field(&r, "access-control-allow-origin"), "*");
    ck_assert_str_eq(field(&r, "access-control-expose-headers"), "*");
    done(&r);
    /* still no "null" */
    run(&r, st, "GET", "Origin: null\r\n");
    ck_assert_uint_eq(cors_fields(&r), 0);
    done(&r);
    policy_free(st);
}
END_TEST

START_TEST(test_request_headers_are_bounded)
{
    void *st = policy("\"origins\": [\"*\"], \"headers\": [\"*\"]");
    char f[4096] = "Origin: https://a.net\r\nAccess-Control-Request-Method: GET\r\n"
                   "Access-Control-Request-Headers: ";
    for (int i = 0; i <= GW_CORS_MAX_REQUEST_HEADERS; i++) {
        char n[16];
        snprintf(n, sizeof n, "%sx-%d", i ? "," : "", i);
        strcat(f, n);
    }
    strcat(f, "\r\n");
    struct run r;
    run(&r, st, "OPTIONS", f);
    ck_assert_int_eq(r.v, GW_CORS_REFUSED);
    done(&r);
    run(&r, st, "OPTIONS",
        PREFLIGHT("https://a.net", "GET", "Access-Control-Request-Headers: x-a, b@d\r\n"));
    ck_assert_int_eq(r.v, GW_CORS_REFUSED);
    done(&r);
    policy_free(st);
}
END_TEST

START_TEST(test_star_with_credentials_is_a_load_error)
{
    char *m = load_error("\"origins\": [\"*\"], \"credentials\": true");
    ck_assert_ptr_nonnull(strstr(m, "cannot go with the origin \"*\""));
    free(m);
    m = load_error("\"origins\": [\"https://a.example\"], \"credentials\": true, "
                   "\"expose_headers\": [\"*\"]");
    ck_assert_ptr_nonnull(strstr(m, "expose_headers"));
    free(m);
}
END_TEST

START_TEST(test_origin_entries_are_checked_at_load)
{
    static const struct {
        const char *keys, *says;
    } cases[] = {
        {"\"origins\": [\"https://app.example.com/\"]", "no path"},
        {"\"origins\": [\"app.example.com\"]", "scheme://host"},
        {"\"origins\": [\"https://*.com\"]", "two labels"},
        {"\"origins\": [\"https://a.*.example.com\"]", "'*'"},
        {"\"origins\": [\"https://*example.com\"]", "'*'"},
        {"\"origins\": [\"null\"]", "\"null\""},
        {"\"origins\": [\"https://a.example:80x\"]", "port"},
        {"\"origins\": []", "1 to"},
        {"\"methods\": [\"GET\"]", "needs \"origins\""},
        {"\"origins\": [\"*\"], \"methods\": [\"G T\"]", "not a method"},
        {"\"origins\": [\"*\"], \"max_age_s\": 100000", ""},
        {"\"origins\": [\"*\"], \"expose_header\": []", "did you mean \"expose_headers\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *m = load_error(cases[i].keys);
        ck_assert_msg(strstr(m, cases[i].says), "%s: %s", cases[i].keys, m);
        free(m);
    }
}
END_TEST

START_TEST(test_describe_shows_the_policy_as_written)
{
    void *st = policy(web);
    json_t *o = gw_pol_kind_find("cors")->describe(st);
    ck_assert_ptr_nonnull(o);
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(text, "{\"credentials\":true,\"expose_headers\":[\"x-request-id\"],"
                           "\"headers\":[\"content-type\",\"x-trace\"],\"max_age_s\":120,"
                           "\"methods\":[\"GET\",\"PUT\"],\"origins\":[\"https://app.example.com\","
                           "\"https://*.example.org\",\"http://localhost:8080\"]}");
    free(text);
    json_decref(o);
    policy_free(st);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cors");
    TCase *t = tcase_create("preflight");
    tcase_add_test(t, test_preflight_from_an_allowed_origin_is_answered_with_allow_fields);
    tcase_add_test(t, test_preflight_refused_without_any_allow_field);
    tcase_add_test(t, test_request_headers_are_bounded);
    suite_add_tcase(s, t);
    t = tcase_create("actual");
    tcase_add_test(t, test_actual_request_from_allowed_origin_gets_origin_credentials_expose);
    tcase_add_test(t, test_actual_request_from_other_origin_goes_on_without_cors_fields);
    tcase_add_test(t, test_any_origin_answers_star_and_any_header_echoes);
    suite_add_tcase(s, t);
    t = tcase_create("load");
    tcase_add_test(t, test_star_with_credentials_is_a_load_error);
    tcase_add_test(t, test_origin_entries_are_checked_at_load);
    tcase_add_test(t, test_describe_shows_the_policy_as_written);
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
