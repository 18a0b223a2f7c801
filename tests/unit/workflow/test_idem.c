/*
 * test_idem.c: the client idempotency rules (workflow/idem.h), one test per
 * rule of the IETF httpapi Idempotency-Key draft as the gateway applies it,
 * and what a client is shown of an instance (workflow/status.h). Pure
 * functions: no runtime.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gw/http1.h"
#include "workflow/idem.h"
#include "workflow/status.h"

/* A parsed request head with header lines `fields` (each ending CRLF). */
static struct gw_http_head *head_of(const char *fields)
{
    char text[4096];
    snprintf(text, sizeof text, "POST /transfers HTTP/1.1\r\nHost: x\r\n%s\r\n", fields);
    struct gw_http_parser *p = NULL;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
    struct gw_http_event ev;
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, text, strlen(text), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_parser_free(p);
    return ev.head;
}

static int key_of(const char *fields, char *out, size_t cap)
{
    struct gw_http_head *h = head_of(fields);
    const char *k = NULL;
    size_t n = 0;
    int rc = gw_idem_key(h, "idempotency-key", &k, &n);
    if (rc == 0)
        snprintf(out, cap, "%.*s", (int)n, k);
    gw_http_head_free(h);
    return rc;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* ---- the key ------------------------------------------------------------------- */

START_TEST(key_one_visible_ascii_field_is_taken)
{
    char k[300];
    ck_assert_int_eq(key_of("Idempotency-Key: tx-42.a_b~\"c\"\r\n", k, sizeof k), 0);
    ck_assert_str_eq(k, "tx-42.a_b~\"c\"");
}
END_TEST

START_TEST(key_absent_is_enoent)
{
    char k[8];
    ck_assert_int_eq(key_of("", k, sizeof k), -ENOENT);
}
END_TEST

START_TEST(key_of_255_bytes_is_taken_256_refused)
{
    char f[600], k[300], v[257];
    memset(v, 'k', 255);
    v[255] = 0;
    snprintf(f, sizeof f, "Idempotency-Key: %s\r\n", v);
    ck_assert_int_eq(key_of(f, k, sizeof k), 0);
    ck_assert_uint_eq(strlen(k), 255);
    memset(v, 'k', 256);
    v[256] = 0;
    snprintf(f, sizeof f, "Idempotency-Key: %s\r\n", v);
    ck_assert_int_eq(key_of(f, k, sizeof k), -EINVAL);
}
END_TEST

START_TEST(key_empty_or_not_visible_ascii_is_refused)
{
    char k[64];
    ck_assert_int_eq(key_of("Idempotency-Key:\r\n", k, sizeof k), -EINVAL);
    ck_assert_int_eq(key_of("Idempotency-Key: a b\r\n", k, sizeof k), -EINVAL);
    ck_assert_int_eq(key_of("Idempotency-Key: a\tb\r\n", k, sizeof k), -EINVAL);
    ck_assert_int_eq(key_of("Idempotency-Key: caf\xc3\xa9\r\n", k, sizeof k), -EINVAL);
}
END_TEST

START_TEST(key_in_several_fields_is_refused)
{
    char k[64];
    ck_assert_int_eq(key_of("Idempotency-Key: a\r\nIdempotency-Key: a\r\n", k, sizeof k), -E2BIG);
}
END_TEST

/* ---- the scope -------------------------------------------------------------------- */

START_TEST(scope_is_the_consumer_when_known)
{
    char s[WF_SCOPE_MAX + 1];
    ck_assert_int_eq(gw_idem_scope("acme", "transfer", s, sizeof s), 0);
    ck_assert_str_eq(s, "consumer:acme");
}
END_TEST

START_TEST(scope_is_the_route_without_a_consumer)
{
    char s[WF_SCOPE_MAX + 1];
    ck_assert_int_eq(gw_idem_scope(NULL, "transfer", s, sizeof s), 0);
    ck_assert_str_eq(s, "route:transfer");
}
END_TEST

START_TEST(scope_longer_than_the_journal_keeps_is_refused)
{
    char s[WF_SCOPE_MAX + 64], name[WF_SCOPE_MAX + 1];
    memset(name, 'n', WF_SCOPE_MAX);
    name[WF_SCOPE_MAX] = 0;
    ck_assert_int_eq(gw_idem_scope(NULL, name, s, sizeof s), -ENAMETOOLONG);
}
END_TEST

/* ---- the fingerprint ---------------------------------------------------------------- */

START_TEST(fingerprint_is_sha256_of_method_path_query_and_body)
{
    unsigned char fp[WF_FINGERPRINT_LEN];
    char h[2 * WF_FINGERPRINT_LEN + 1];
    const char *body = "{\"amount\":5}";
    gw_idem_fingerprint("POST", "/transfers", 10, "x=1", 3, body, strlen(body), fp);
    hex(fp, sizeof fp, h);
    /* hashlib.sha256(b'POST\0/transfers?x=1\0{"amount":5}') */
    ck_assert_str_eq(h, "b8deb19575bc918bea07745824d7cd579f5983acf09a37fd4f0f8e149357c6a7");
    gw_idem_fingerprint("GET", "/a", 2, NULL, 0, NULL, 0, fp);
    hex(fp, sizeof fp, h);
    ck_assert_str_eq(h, "f338a2974553c092dcaf5a70baab081972e55a182a6055c18bf6ffb953b4235c");
}
END_TEST

START_TEST(fingerprint_differs_when_any_part_differs)
{
    unsigned char a[WF_FINGERPRINT_LEN], b[WF_FINGERPRINT_LEN];
    gw_idem_fingerprint("POST", "/t", 2, NULL, 0, "{}", 2, a);
    gw_idem_fingerprint("PUT", "/t", 2, NULL, 0, "{}", 2, b);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    gw_idem_fingerprint("POST", "/t", 2, "", 0, "{}", 2, b); /* "/t?" is another target */
    ck_assert(memcmp(a, b, sizeof a) != 0);
    gw_idem_fingerprint("POST", "/t", 2, NULL, 0, "{ }", 3, b);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    /* The NUL between path and body keeps their boundary. */
    gw_idem_fingerprint("POST", "/t{", 3, NULL, 0, "}", 1, b);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    gw_idem_fingerprint("POST", "/t", 2, NULL, 0, "{}", 2, b);
    ck_assert(memcmp(a, b, sizeof a) == 0);
}
END_TEST

/* ---- the decision -------------------------------------------------------------------- */

static struct wf_record rec(bool terminal, unsigned char fpbyte, int64_t expires)
{
    struct wf_record r;
    memset(&r, 0, sizeof r);
    memset(r.fingerprint, fpbyte, WF_FINGERPRINT_LEN);
    r.terminal = terminal;
    r.key_expires_ms = expires;
    return r;
}

START_TEST(first_request_with_a_key_starts_an_instance)
{
    unsigned char fp[WF_FINGERPRINT_LEN];
    memset(fp, 1, sizeof fp);
    ck_assert_int_eq(gw_idem_decide(true, true, NULL, fp, 1000), GW_IDEM_START);
}
END_TEST

START_TEST(repeat_after_completion_replays_the_stored_answer)
{
    unsigned char fp[WF_FINGERPRINT_LEN];
    memset(fp, 1, sizeof fp);
    struct wf_record r = rec(true, 1, 5000);
    ck_assert_int_eq(gw_idem_decide(true, true, &r, fp, 1000), GW_IDEM_REPLAY);
}
END_TEST

START_TEST(repeat_with_another_payload_is_422)
{
    unsigned char fp[WF_FINGERPRINT_LEN];
    memset(fp, 1, sizeof fp);
    struct wf_record r = rec(true, 2, 5000);
    enum gw_idem_verdict v = gw_idem_decide(true, true, &r, fp, 1000);
    ck_assert_int_eq(v, GW_IDEM_MISMATCH);
    ck_assert_int_eq(gw_idem_status(v), 422);
    r.terminal = false; /* whatever the first one's state */
    ck_assert_int_eq(gw_idem_decide(true, true, &r, fp, 1000), GW_IDEM_MISMATCH);
}
END_TEST

START_TEST(repeat_while_running_is_409)
{
    unsigned char fp[WF_FINGERPRINT_LEN];
    memset(fp, 1, sizeof fp);
    struct wf_record r = rec(false, 1, 5000);
    enum gw_idem_verdict v = gw_idem_decide(true, true, &r, fp, 1000);
    ck_assert_int_eq(v, GW_IDEM_IN_PROGRESS);
    ck_assert_int_eq(gw_idem_status(v), 409);
}
END_TEST

START_TEST(missing_key_where_required_is_400)
{
    enum gw_idem_verdict v = gw_idem_decide(true, false, NULL, NULL, 1000);
    ck_assert_int_eq(v, GW_IDEM_MISSING);
    ck_assert_int_eq(gw_idem_status(v), 400);
}
END_TEST

START_TEST(missing_key_where_optional_starts_an_instance)
{
    ck_assert_int_eq(gw_idem_decide(false, false, NULL, NULL, 1000), GW_IDEM_START);
}
END_TEST

START_TEST(expired_key_starts_a_new_instance)
{
    unsigned char fp[WF_FINGERPRINT_LEN];
    memset(fp, 1, sizeof fp);
    struct wf_record r = rec(true, 2, 1000);
    ck_assert_int_eq(gw_idem_decide(true, true, &r, fp, 1000), GW_IDEM_START);
    ck_assert_int_eq(gw_idem_decide(true, true, &r, fp, 999), GW_IDEM_MISMATCH);
}
END_TEST

START_TEST(expired_key_of_a_running_instance_is_still_taken)
{
    unsigned char fp[WF_FINGERPRINT_LEN];
    memset(fp, 1, sizeof fp);
    struct wf_record r = rec(false, 1, 1000);
    ck_assert_int_eq(gw_idem_decide(true, true, &r, fp, 2000), GW_IDEM_IN_PROGRESS);
    r = rec(false, 2, 1000);
    ck_assert_int_eq(gw_idem_decide(true, true, &r, fp, 2000), GW_IDEM_MISMATCH);
}
END_TEST

/* ---- the stored answer ------------------------------------------------------------------ */

START_TEST(stored_headers_give_the_fields_that_matter)
{
    struct gw_idem_fields f;
    ck_assert_int_eq(gw_idem_stored_fields("{\"Content-Type\":\"application/json\","
                                           "\"Location\":\"/accounts/7\",\"ETag\":\"\\\"v1\\\"\","
                                           "\"Content-Length\":\"99\",\"X-Request-Id\":\"old\","
                                           "\"Connection\":\"close\",\"X-Bad\":\"a\\r\\nb\","
                                           "\"bad name\":\"v\",\"X-Num\":5}",
                                           &f),
                     0);
    ck_assert_str_eq(f.content_type, "application/json");
    ck_assert_str_eq(f.location, "/accounts/7");
    ck_assert_uint_eq(f.n, 1);
    ck_assert_str_eq(f.kv[0].name, "ETag");
    ck_assert_str_eq(f.kv[0].value, "\"v1\"");
    gw_idem_fields_done(&f);
    ck_assert_int_eq(gw_idem_stored_fields("[1]", &f), -EINVAL);
    ck_assert_int_eq(gw_idem_stored_fields(NULL, &f), 0);
    ck_assert_uint_eq(f.n, 0);
    ck_assert_ptr_null(f.content_type);
}
END_TEST

/* The replayed head is the first head: both are written from the record. */
START_TEST(replayed_answer_is_byte_identical)
{
    const char *stored = "{\"Content-Type\":\"application/json\",\"Location\":\"/x/1\"}";
    char heads[2][1024];
    size_t lens[2];
    for (int i = 0; i < 2; i++) {
        struct gw_idem_fields f;
        ck_assert_int_eq(gw_idem_stored_fields(stored, &f), 0);
        struct gw_http_answer a = {.status = 201,
                                   .content_type = f.content_type,
                                   .location = f.location,
                                   .fields = f.kv,
                                   .nfields = f.n,
                                   .content_length = 9};
        ck_assert_int_eq(gw_http_answer_head_write(&a, heads[i], sizeof heads[i], &lens[i]), 0);
        gw_idem_fields_done(&f);
    }
    ck_assert_uint_eq(lens[0], lens[1]);
    ck_assert(memcmp(heads[0], heads[1], lens[0]) == 0);
    heads[0][lens[0]] = 0;
    ck_assert_ptr_nonnull(strstr(heads[0], "HTTP/1.1 201 "));
    ck_assert_ptr_nonnull(strstr(heads[0], "\r\nContent-Type: application/json\r\n"));
    ck_assert_ptr_nonnull(strstr(heads[0], "\r\nLocation: /x/1\r\n"));
}
END_TEST

/* ---- status ------------------------------------------------------------------------------ */

START_TEST(instance_ids_are_32_lower_case_hex)
{
    ck_assert(gw_wf_id_valid("0123456789abcdef0123456789abcdef", 32));
    ck_assert(!gw_wf_id_valid("0123456789ABCDEF0123456789abcdef", 32));
    ck_assert(!gw_wf_id_valid("0123456789abcdef0123456789abcde", 31));
    ck_assert(!gw_wf_id_valid("0123456789abcdef0123456789abcdeg", 32));
    ck_assert(!gw_wf_id_valid("../../../../../../../../etc/pass", 32));
}
END_TEST

START_TEST(status_path_matches_its_prefix_only)
{
    const char *rest = NULL;
    size_t n = 0;
    ck_assert_int_eq(gw_wf_status_path_match("/workflows/", "/workflows/abc", 14, &rest, &n), 1);
    ck_assert_uint_eq(n, 3);
    ck_assert(memcmp(rest, "abc", 3) == 0);
    ck_assert_int_eq(gw_wf_status_path_match("/workflows/", "/workflows", 10, &rest, &n), 0);
    ck_assert_int_eq(gw_wf_status_path_match("/workflows/", "/workflowsx/a", 13, &rest, &n), 0);
}
END_TEST

START_TEST(status_document_has_result_once_terminal)
{
    struct wf_record r;
    memset(&r, 0, sizeof r);
    strcpy(r.id, "0123456789abcdef0123456789abcdef");
    r.def_name = "transfer";
    r.state = "step:debit";
    r.created_ms = 1765000000123;
    r.updated_ms = 1765000001000;
    json_t *o = gw_wf_status_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(o, "id")), r.id);
    ck_assert_str_eq(json_string_value(json_object_get(o, "workflow")), "transfer");
    ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "step:debit");
    ck_assert_str_eq(json_string_value(json_object_get(o, "created")), "2025-12-06T05:46:40.123Z");
    ck_assert_ptr_null(json_object_get(o, "result"));
    json_decref(o);
    r.state = "completed";
    r.terminal = true;
    r.answer_status = 200;
    r.answer_body = "{\"ok\":true}";
    r.answer_body_len = strlen(r.answer_body);
    o = gw_wf_status_json(&r);
    json_t *res = json_object_get(o, "result");
    ck_assert_int_eq(json_integer_value(json_object_get(res, "status")), 200);
    ck_assert(json_is_true(json_object_get(json_object_get(res, "body"), "ok")));
    json_decref(o);
    r.answer_body = "plain";
    r.answer_body_len = 5;
    o = gw_wf_status_json(&r);
    res = json_object_get(o, "result");
    ck_assert_str_eq(json_string_value(json_object_get(res, "body")), "plain");
    json_decref(o);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("workflow_idem");
    TCase *tc = tcase_create("idem");
    tcase_add_test(tc, key_one_visible_ascii_field_is_taken);
    tcase_add_test(tc, key_absent_is_enoent);
    tcase_add_test(tc, key_of_255_bytes_is_taken_256_refused);
    tcase_add_test(tc, key_empty_or_not_visible_ascii_is_refused);
    tcase_add_test(tc, key_in_several_fields_is_refused);
    tcase_add_test(tc, scope_is_the_consumer_when_known);
    tcase_add_test(tc, scope_is_the_route_without_a_consumer);
    tcase_add_test(tc, scope_longer_than_the_journal_keeps_is_refused);
    tcase_add_test(tc, fingerprint_is_sha256_of_method_path_query_and_body);
    tcase_add_test(tc, fingerprint_differs_when_any_part_differs);
    tcase_add_test(tc, first_request_with_a_key_starts_an_instance);
    tcase_add_test(tc, repeat_after_completion_replays_the_stored_answer);
    tcase_add_test(tc, repeat_with_another_payload_is_422);
    tcase_add_test(tc, repeat_while_running_is_409);
    tcase_add_test(tc, missing_key_where_required_is_400);
    tcase_add_test(tc, missing_key_where_optional_starts_an_instance);
    tcase_add_test(tc, expired_key_starts_a_new_instance);
    tcase_add_test(tc, expired_key_of_a_running_instance_is_still_taken);
    tcase_add_test(tc, stored_headers_give_the_fields_that_matter);
    tcase_add_test(tc, replayed_answer_is_byte_identical);
    tcase_add_test(tc, instance_ids_are_32_lower_case_hex);
    tcase_add_test(tc, status_path_matches_its_prefix_only);
    tcase_add_test(tc, status_document_has_result_once_terminal);
    suite_add_tcase(s, tc);
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
