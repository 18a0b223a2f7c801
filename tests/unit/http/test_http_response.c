/* test_http_response.c: the answers the gateway makes itself
 * (gateway/src/http/response.c): every head form (error, respond route,
 * admin, redirect, 100 Continue, 101, the over-limit 503), Allow and
 * Location as fields, Content-Length always the body's, no length where
 * the status has no body, and the error body's JSON escaping. Each answer
 * is parsed back with the module's own strict response parser. */
#include "gw/http1.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Parses the head of `out` (n bytes) as a response; *used gets its length. */
static struct gw_http_head *parse(const char *out, size_t n, size_t *used)
{
    struct gw_http_parser *p;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_RESPONSE, NULL), 0);
    struct gw_http_event ev;
    int r = gw_http_parser_feed(p, out, n, used, &ev);
    if (r != 0)
        ck_abort_msg("cannot parse back: %s (%.*s)", gw_http_parser_reason(p), (int)n, out);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_parser_free(p);
    return ev.head;
}

/* True when v is the IMF-fixdate of a second between `from` and now. */
static bool date_since(const char *v, time_t from)
{
    char want[GW_HTTP_DATE_LEN + 1];
    for (time_t t = from; v && t <= time(NULL); t++) {
        gw_http_date_format((int64_t)t, want);
        if (strcmp(v, want) == 0)
            return true;
    }
    return false;
}

START_TEST(answer_head_has_status_line_and_fields_in_order)
{
    struct gw_http_kv f[] = {{"x-one", "1"}, {"cache-tag", "a b"}};
    struct gw_http_answer a = {.status = 201,
                               .request_id = "rid-1",
                               .content_type = "text/plain",
                               .content_length = 5,
                               .fields = f,
                               .nfields = 2};
    char out[512], want[512];
    size_t n;
    time_t t0 = time(NULL);
    ck_assert_int_eq(gw_http_answer_head_write(&a, out, sizeof out, &n), 0);
    out[n] = 0;
    size_t used;
    struct gw_http_head *h = parse(out, n, &used);
    const char *date = gw_http_head_get(h, "date", NULL);
    ck_assert(date_since(date, t0));
    snprintf(want, sizeof want,
             "HTTP/1.1 201 Created\r\nDate: %s\r\nx-one: 1\r\ncache-tag: a b\r\n"
             "Content-Type: text/plain\r\nContent-Length: 5\r\n"
             "X-Request-Id: rid-1\r\n\r\n",
             date);
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(used, n);
    ck_assert(h->keep_alive);
    ck_assert_uint_eq(h->content_length, 5);
    gw_http_head_free(h);
}
END_TEST

START_TEST(answer_head_for_admin_has_no_store_fields_and_close)
{
    const struct gw_http_kv auth = {"WWW-Authenticate", "Bearer realm=\"x\""};
    struct gw_http_answer a = {.status = 401,
                               .request_id = "r",
                               .close = true,
                               .content_type = "application/json",
                               .content_length = 2,
                               .no_store = true,
                               .fields = &auth,
                               .nfields = 1};
    char out[512];
    size_t n, used;
    ck_assert_int_eq(gw_http_answer_head_write(&a, out, sizeof out, &n), 0);
    struct gw_http_head *h = parse(out, n, &used);
    ck_assert_int_eq(h->status, 401);
    ck_assert_str_eq(gw_http_head_get(h, "cache-control", NULL), "no-store");
    ck_assert_str_eq(gw_http_head_get(h, "www-authenticate", NULL), "Bearer realm=\"x\"");
    ck_assert(!h->keep_alive);
    gw_http_head_free(h);
}
END_TEST

START_TEST(redirect_has_location_with_its_query)
{
    struct gw_http_answer a = {
        .status = 308, .request_id = "r", .location = "/a/b", .location_query = "x=1"};
    char out[512];
    size_t n, used;
    ck_assert_int_eq(gw_http_answer_head_write(&a, out, sizeof out, &n), 0);
    struct gw_http_head *h = parse(out, n, &used);
    ck_assert_int_eq(h->status, 308);
    ck_assert_str_eq(h->reason, "Permanent Redirect");
    ck_assert_str_eq(gw_http_head_get(h, "location", NULL), "/a/b?x=1");
    ck_assert_str_eq(gw_http_head_get(h, "content-length", NULL), "0");
    gw_http_head_free(h);
}
END_TEST

START_TEST(https_location_keeps_the_name_and_replaces_the_port)
{
    char b[128];
    static const struct {
        const char *host;
        unsigned port;
        const char *path, *want;
    } ok[] = {
        {"api.example.com", 443, "/a/b", "https://api.example.com/a/b"},
        {"api.example.com:8080", 443, "/", "https://api.example.com/"},
        {"api.example.com:8080", 8443, "/x", "https://api.example.com:8443/x"},
        {"127.0.0.1:80", 9443, "/p%20q", "https://127.0.0.1:9443/p%20q"},
        {"[::1]:8080", 443, "/v6", "https://[::1]/v6"},
        {"[::1]", 4443, "/v6", "https://[::1]:4443/v6"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int n = gw_http_https_location(ok[i].host, strlen(ok[i].host), (uint16_t)ok[i].port,
                                       ok[i].path, b, sizeof b);
        ck_assert_int_eq(n, (int)strlen(ok[i].want));
        ck_assert_str_eq(b, ok[i].want);
    }
    /* A host that is not one would send the client elsewhere. */
    static const char *const bad[] = {"evil.example/x", "a@evil.example",      "a b", "", "x:y",
                                      "[::1",           "a\r\nSet-Cookie: x=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(gw_http_https_location(bad[i], strlen(bad[i]), 443, "/", b, sizeof b),
                         -EINVAL);
    ck_assert_int_eq(gw_http_https_location(NULL, 0, 443, "/", b, sizeof b), -EINVAL);
    ck_assert_int_eq(gw_http_https_location("a", 1, 443, "/x\r\n", b, sizeof b), -EINVAL);
    ck_assert_int_eq(gw_http_https_location("a.example", 9, 443, "/long", b, 20), -ENOSPC);
}
END_TEST

START_TEST(statuses_without_a_body_state_no_length)
{
    static const int st[] = {100, 204, 304};
    for (size_t i = 0; i < 3; i++) {
        struct gw_http_answer a = {.status = st[i], .content_length = 9};
        char out[256];
        size_t n;
        ck_assert_int_eq(gw_http_answer_head_write(&a, out, sizeof out, &n), 0);
        out[n] = 0;
        ck_assert_ptr_null(strstr(out, "Content-Length"));
    }
    struct gw_http_answer c = {.status = 100};
    char out[64];
    size_t n;
    ck_assert_int_eq(gw_http_answer_head_write(&c, out, sizeof out, &n), 0);
    ck_assert_uint_eq(n, 25);
    ck_assert(memcmp(out, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
}
END_TEST

START_TEST(date_is_the_imf_fixdate_of_the_second)
{
    static const struct {
        int64_t t;
        const char *text;
    } cases[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"}, /* RFC 9110 §5.6.7's example */
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
        {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
        {4107542399, "Sun, 28 Feb 2100 23:59:59 GMT"},
        {253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[GW_HTTP_DATE_LEN + 1];
        memset(out, 'x', sizeof out);
        gw_http_date_format(cases[i].t, out);
        ck_assert_str_eq(out, cases[i].text);
    }
}
END_TEST

START_TEST(date_is_formatted_once_per_second_per_thread)
{
    time_t t0 = time(NULL);
    uint64_t f0 = gw_http_date_formats();
    const char *first = gw_http_date_now();
    for (int i = 0; i < 100000; i++)
        ck_assert_ptr_eq(gw_http_date_now(), first); /* the thread's one cache */
    time_t t1 = time(NULL);
    ck_assert(date_since(first, t1));
    /* one format per second seen, not one per call */
    ck_assert_uint_le(gw_http_date_formats() - f0, (uint64_t)(t1 - t0) + 1);
}
END_TEST

START_TEST(every_final_answer_carries_a_date)
{
    static const int st[] = {200, 204, 301, 304, 400, 404, 500, 503};
    time_t t0 = time(NULL);
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        struct gw_http_answer a = {.status = st[i], .request_id = "r"};
        char out[1024];
        size_t n, used;
        ck_assert_int_eq(gw_http_error_answer(&a, NULL, out, sizeof out, &n), 0);
        struct gw_http_head *h = parse(out, n, &used);
        ck_assert_uint_eq(gw_http_head_count(h, "date"), 1);
        ck_assert_msg(date_since(gw_http_head_get(h, "date", NULL), t0), "%d: %s", st[i],
                      gw_http_head_get(h, "date", NULL));
        gw_http_head_free(h);
    }
    char out[512];
    size_t n, used;
    ck_assert_int_eq(gw_http_busy_write(out, sizeof out, &n), 0); /* the over-limit 503 */
    struct gw_http_head *h = parse(out, n, &used);
    ck_assert(date_since(gw_http_head_get(h, "date", NULL), t0));
    gw_http_head_free(h);
}
END_TEST

START_TEST(an_answer_without_a_body_names_no_content_type)
{
    static const int st[] = {204, 304};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        struct gw_http_answer a = {.status = st[i], .request_id = "r"};
        char out[1024];
        size_t n, used;
        ck_assert_int_eq(gw_http_error_answer(&a, NULL, out, sizeof out, &n), 0);
        struct gw_http_head *h = parse(out, n, &used);
        ck_assert_uint_eq(used, n);
        ck_assert_ptr_null(gw_http_head_get(h, "content-type", NULL));
        ck_assert_ptr_null(gw_http_head_get(h, "content-length", NULL));
        gw_http_head_free(h);
    }
}
END_TEST

START_TEST(method_not_allowed_has_allow_as_a_field)
{
    struct gw_http_answer a = {.status = 405, .request_id = "rid-2", .allow = "GET, HEAD"};
    char out[1024];
    size_t n, used;
    ck_assert_int_eq(
        gw_http_error_answer(&a, "method not allowed for this route", out, sizeof out, &n), 0);
    struct gw_http_head *h = parse(out, n, &used);
    ck_assert_int_eq(h->status, 405);
    ck_assert_str_eq(gw_http_head_get(h, "allow", NULL), "GET, HEAD");
    ck_assert_uint_eq(gw_http_head_count(h, "allow"), 1);
    ck_assert_uint_eq(h->content_length, n - used);
    json_error_t err;
    json_t *j = json_loadb(out + used, n - used, 0, &err);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
                     "method not allowed for this route");
    json_decref(j);
    gw_http_head_free(h);
}
END_TEST

/* The over-limit 503 the listener writes: its length is its body's. */
START_TEST(refusal_503_length_matches_its_body)
{
    char out[512];
    size_t n, used;
    ck_assert_int_eq(gw_http_busy_write(out, sizeof out, &n), 0);
    struct gw_http_head *h = parse(out, n, &used);
    ck_assert_int_eq(h->status, 503);
    ck_assert_uint_eq(h->content_length, n - used);
    ck_assert(!h->keep_alive);
    json_error_t err;
    json_t *j = json_loadb(out + used, n - used, 0, &err);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "too many connections");
    json_decref(j);
    gw_http_head_free(h);
    ck_assert_int_eq(gw_http_busy_write(out, n - 1, &used), -ENOSPC);
}
END_TEST

/* The error body goes through the gateway's one escaper: invalid UTF-8
 * becomes U+FFFD, so any message gives valid JSON. */
START_TEST(error_body_escapes_invalid_utf8_to_valid_json)
{
    char out[1024];
    size_t n, used;
    ck_assert_int_eq(
        gw_http_error_write(400, "bad \xff byte \"q\"\x01", "r", true, out, sizeof out, &n), 0);
    struct gw_http_head *h = parse(out, n, &used);
    ck_assert_uint_eq(h->content_length, n - used);
    json_error_t err;
    json_t *j = json_loadb(out + used, n - used, 0, &err);
    ck_assert_msg(j != NULL, "%s: %.*s", err.text, (int)(n - used), out + used);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
                     "bad \xef\xbf\xbd byte \"q\"\x01");
    json_decref(j);
    gw_http_head_free(h);
}
END_TEST

START_TEST(error_with_a_long_message_is_cut_not_refused)
{
    char msg[2000];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    char out[1024];
    size_t n, used;
    ck_assert_int_eq(gw_http_error_write(502, msg, "rid", false, out, sizeof out, &n), 0);
    struct gw_http_head *h = parse(out, n, &used);
    json_error_t err;
    json_t *j = json_loadb(out + used, n - used, 0, &err);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "rid");
    json_decref(j);
    gw_http_head_free(h);
}
END_TEST

START_TEST(switching_head_keeps_upgrade_and_adds_the_request_id)
{
    const char up[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n";
    size_t used;
    struct gw_http_head *r = parse(up, sizeof up - 1, &used);
    char out[512];
    size_t n;
    ck_assert_int_eq(gw_http_switching_head_write(r, "rid-3", NULL, out, sizeof out, &n), 0);
    out[n] = 0;
    ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n"
                          "X-Request-Id: rid-3\r\n\r\n");
    ck_assert_int_eq(gw_http_switching_head_write(r, "rid-3", NULL, out, 20, &n), -ENOSPC);
    gw_http_head_free(r);
}
END_TEST

START_TEST(switching_head_states_no_content_length)
{
    /* RFC 9110 §8.6: no Content-Length in a 1xx, whatever the upstream sent. */
    const char up[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Content-Length: 0\r\nConnection: Upgrade\r\n\r\n";
    size_t used;
    struct gw_http_head *r = parse(up, sizeof up - 1, &used);
    char out[512];
    size_t n;
    ck_assert_int_eq(gw_http_switching_head_write(r, "rid-3", NULL, out, sizeof out, &n), 0);
    out[n] = 0;
    ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nX-Request-Id: rid-3\r\n\r\n");
    gw_http_head_free(r);
}
END_TEST

START_TEST(switching_head_carries_the_policy_fields)
{
    /* A policy's answer fields (RateLimit, CORS) go on every answer, the
     * 101 too: they replace the upstream's of the same name, but Vary,
     * which is added to. */
    const char up[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nRateLimit: \"up\";r=1\r\nVary: Cookie\r\n\r\n";
    size_t used;
    struct gw_http_head *r = parse(up, sizeof up - 1, &used);
    const struct gw_http_kv set[] = {{"RateLimit", "\"gw\";r=9;t=1"}};
    const struct gw_http_kv add[] = {{"Vary", "Origin"}};
    const struct gw_http_edits e = {.set = set, .nset = 1, .add = add, .nadd = 1};
    char out[512];
    size_t n;
    ck_assert_int_eq(gw_http_switching_head_write(r, "rid-5", &e, out, sizeof out, &n), 0);
    out[n] = 0;
    ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nVary: Cookie\r\n"
                          "RateLimit: \"gw\";r=9;t=1\r\nVary: Origin\r\n"
                          "X-Request-Id: rid-5\r\n\r\n");
    gw_http_head_free(r);
}
END_TEST

START_TEST(switching_head_carries_one_request_id_the_gateways)
{
    const char up[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "X-Request-Id: upstream-id\r\nConnection: Upgrade\r\n\r\n";
    size_t used;
    struct gw_http_head *r = parse(up, sizeof up - 1, &used);
    char out[512];
    size_t n;
    ck_assert_int_eq(gw_http_switching_head_write(r, "rid-4", NULL, out, sizeof out, &n), 0);
    out[n] = 0;
    ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nX-Request-Id: rid-4\r\n\r\n");
    gw_http_head_free(r);
}
END_TEST

START_TEST(small_buffer_is_enospc_and_bad_status_einval)
{
    struct gw_http_answer a = {.status = 200, .content_type = "text/plain"};
    char out[512];
    size_t n;
    ck_assert_int_eq(gw_http_answer_head_write(&a, out, 20, &n), -ENOSPC);
    a.status = 42;
    ck_assert_int_eq(gw_http_answer_head_write(&a, out, sizeof out, &n), -EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_response");
    TCase *t = tcase_create("answers");
    tcase_add_test(t, answer_head_has_status_line_and_fields_in_order);
    tcase_add_test(t, answer_head_for_admin_has_no_store_fields_and_close);
    tcase_add_test(t, redirect_has_location_with_its_query);
    tcase_add_test(t, https_location_keeps_the_name_and_replaces_the_port);
    tcase_add_test(t, statuses_without_a_body_state_no_length);
    tcase_add_test(t, date_is_the_imf_fixdate_of_the_second);
    tcase_add_test(t, date_is_formatted_once_per_second_per_thread);
    tcase_add_test(t, every_final_answer_carries_a_date);
    tcase_add_test(t, an_answer_without_a_body_names_no_content_type);
    tcase_add_test(t, method_not_allowed_has_allow_as_a_field);
    tcase_add_test(t, refusal_503_length_matches_its_body);
    tcase_add_test(t, error_body_escapes_invalid_utf8_to_valid_json);
    tcase_add_test(t, error_with_a_long_message_is_cut_not_refused);
    tcase_add_test(t, switching_head_keeps_upgrade_and_adds_the_request_id);
    tcase_add_test(t, switching_head_states_no_content_length);
    tcase_add_test(t, switching_head_carries_one_request_id_the_gateways);
    tcase_add_test(t, switching_head_carries_the_policy_fields);
    tcase_add_test(t, small_buffer_is_enospc_and_bad_status_einval);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
