/* test_http_parser.c: the strict HTTP/1.1 request and response parser.
 * Each test is named after the rule it asserts. Inputs are fed whole and
 * one byte at a time: both must give the same result. */
#include "gw/http1.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXMSG 8

struct result {
    int rc;     /* 0, or the error from feed/finish */
    int status; /* parser status after -EPROTO */
    const char *reason;
    int nmsg; /* complete messages */
    struct gw_http_head *heads[MAXMSG];
    char body[MAXMSG][4096];
    size_t body_len[MAXMSG];
    size_t consumed;    /* bytes consumed when parsing stopped */
    bool in_message;    /* input ended inside a message */
    bool body_in_input; /* every body piece pointed into the fed buffer */
};

static void result_free(struct result *r)
{
    for (int i = 0; i < MAXMSG; i++)
        gw_http_head_free(r->heads[i]);
    memset(r, 0, sizeof(*r));
}

/* Parses `in` fed in pieces of `step` bytes (0: whole), stopping after an
 * upgrade. `finish` reports end of input to the parser. */
static void parse(enum gw_http_kind kind, const struct gw_http_limits *lim, const char *in,
                  size_t len, size_t step, bool finish, bool head_req, struct result *r)
{
    struct gw_http_parser *p = NULL;
    memset(r, 0, sizeof(*r));
    r->body_in_input = true;
    ck_assert_int_eq(gw_http_parser_new(&p, kind, lim), 0);
    gw_http_parser_expect(p, head_req, false);
    size_t pos = 0;
    int cur = 0; /* index of the message in progress */
    bool stop = false;
    if (!step)
        step = len ? len : 1;
    while (pos < len && !stop && !r->rc) {
        size_t n = len - pos < step ? len - pos : step;
        const char *buf = in + pos;
        size_t off = 0;
        for (;;) {
            size_t used;
            struct gw_http_event ev;
            int rc = gw_http_parser_feed(p, buf + off, n - off, &used, &ev);
            if (rc < 0) {
                r->rc = rc;
                r->status = gw_http_parser_status(p);
                r->reason = gw_http_parser_reason(p);
                break;
            }
            ck_assert_uint_le(used, n - off);
            off += used;
            if (ev.type == GW_HTTP_EV_NEED_MORE) {
                ck_assert_uint_eq(off, n); /* NEED_MORE only when all was taken */
                break;
            }
            if (ev.type == GW_HTTP_EV_HEAD) {
                ck_assert_int_lt(cur, MAXMSG);
                r->heads[cur] = ev.head;
            } else if (ev.type == GW_HTTP_EV_BODY) {
                if (ev.data < buf || ev.data + ev.len > buf + n)
                    r->body_in_input = false;
                ck_assert_uint_le(r->body_len[cur] + ev.len, sizeof(r->body[cur]));
                memcpy(r->body[cur] + r->body_len[cur], ev.data, ev.len);
                r->body_len[cur] += ev.len;
            } else if (ev.type == GW_HTTP_EV_DONE) {
                bool up = r->heads[cur]->upgrade;
                cur++;
                r->nmsg = cur;
                if (up) {
                    stop = true;
                    break;
                }
                gw_http_parser_expect(p, head_req, false);
            }
        }
        pos += off;
    }
    r->consumed = pos;
    if (!r->rc && finish && !stop) {
        struct gw_http_event ev;
        int rc = gw_http_parser_finish(p, &ev);
        if (rc < 0) {
            r->rc = rc;
            r->status = gw_http_parser_status(p);
            r->reason = gw_http_parser_reason(p);
        } else if (ev.type == GW_HTTP_EV_DONE) {
            r->nmsg = ++cur;
        }
    }
    r->in_message = gw_http_parser_in_message(p);
    gw_http_parser_free(p);
}

/* Parses whole and byte by byte; asserts both agree; leaves the whole run
 * in *r. */
static void parse2(enum gw_http_kind kind, const struct gw_http_limits *lim, const char *in,
                   bool finish, bool head_req, struct result *r)
{
    struct result b;
    size_t len = strlen(in);
    parse(kind, lim, in, len, 0, finish, head_req, r);
    parse(kind, lim, in, len, 1, finish, head_req, &b);
    ck_assert_int_eq(r->rc, b.rc);
    ck_assert_int_eq(r->status, b.status);
    ck_assert_int_eq(r->nmsg, b.nmsg);
    for (int i = 0; i < r->nmsg; i++) {
        ck_assert_uint_eq(r->heads[i]->nheaders, b.heads[i]->nheaders);
        for (size_t k = 0; k < r->heads[i]->nheaders; k++) {
            ck_assert_str_eq(r->heads[i]->headers[k].name, b.heads[i]->headers[k].name);
            ck_assert_str_eq(r->heads[i]->headers[k].value, b.heads[i]->headers[k].value);
            ck_assert_uint_eq(r->heads[i]->headers[k].value_len, b.heads[i]->headers[k].value_len);
        }
        ck_assert_uint_eq(r->body_len[i], b.body_len[i]);
        ck_assert(memcmp(r->body[i], b.body[i], r->body_len[i]) == 0);
    }
    result_free(&b);
}

static void req(const char *in, struct result *r)
{
    parse2(GW_HTTP_REQUEST, NULL, in, false, false, r);
}

/* Asserts the request is refused with `status`. */
static void refused(const char *in, int status)
{
    struct result r;
    req(in, &r);
    if (r.rc != -EPROTO || r.status != status)
        ck_abort_msg("expected %d for %s, got rc %d status %d (%s)", status, in, r.rc, r.status,
                     r.reason ? r.reason : "");
    ck_assert_int_eq(r.nmsg, 0);
    result_free(&r);
}

static void accepted(const char *in, int nmsg)
{
    struct result r;
    req(in, &r);
    if (r.rc != 0)
        ck_abort_msg("expected acceptance of %s, got %d (%s)", in, r.status, r.reason);
    ck_assert_int_eq(r.nmsg, nmsg);
    result_free(&r);
}

#define H11 "Host: example.com\r\n"

START_TEST(test_request_head_is_copied_into_caller_owned_storage)
{
    char in[] = "POST /a/b?c=d HTTP/1.1\r\n" H11 "X-Thing:  spaced value \t\r\n"
                "Content-Length: 3\r\n\r\nabc";
    struct result r;
    parse(GW_HTTP_REQUEST, NULL, in, strlen(in), 0, false, false, &r);
    ck_assert_int_eq(r.rc, 0);
    memset(in, 'Z', sizeof(in) - 1); /* the head must not point into the input */
    struct gw_http_head *h = r.heads[0];
    ck_assert_str_eq(h->method, "POST");
    ck_assert_str_eq(h->target, "/a/b?c=d");
    ck_assert_uint_eq(h->version_major, 1);
    ck_assert_uint_eq(h->version_minor, 1);
    ck_assert_uint_eq(h->nheaders, 3);
    ck_assert_str_eq(h->headers[1].name, "X-Thing");
    ck_assert_str_eq(h->headers[1].value, "spaced value");
    ck_assert_str_eq(gw_http_head_get(h, "x-thing", NULL), "spaced value");
    ck_assert_int_eq(h->framing, GW_HTTP_BODY_LENGTH);
    ck_assert_uint_eq(h->content_length, 3);
    struct gw_http_head *c = gw_http_head_dup(h);
    gw_http_head_free(r.heads[0]);
    r.heads[0] = NULL;
    ck_assert_str_eq(c->headers[1].value, "spaced value");
    ck_assert_str_eq(c->target, "/a/b?c=d");
    gw_http_head_free(c);
    result_free(&r);
}
END_TEST

START_TEST(test_field_values_lose_only_surrounding_whitespace)
{
    struct result r;
    req("GET / HTTP/1.1\r\n" H11 "A: \t x \t y \t\r\nB:\r\nC:   \r\nD:z\r\n\r\n", &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(gw_http_head_get(r.heads[0], "a", NULL), "x \t y");
    ck_assert_str_eq(gw_http_head_get(r.heads[0], "b", NULL), "");
    ck_assert_str_eq(gw_http_head_get(r.heads[0], "c", NULL), "");
    ck_assert_str_eq(gw_http_head_get(r.heads[0], "d", NULL), "z");
    result_free(&r);
}
END_TEST

START_TEST(test_a_field_sent_once_has_its_only_value)
{
    struct result r;
    req("GET / HTTP/1.1\r\n" H11 "X-Api-Key: k1\r\nB: b\r\nx-api-key: k2\r\nEmpty:\r\n"
        "X-Api: no\r\n\r\n",
        &r);
    ck_assert_int_eq(r.rc, 0);
    const struct gw_http_head *h = r.heads[0];
    size_t len = 99, n = 99;
    /* twice, in any case: none is the value, and the count says so */
    ck_assert_ptr_null(gw_http_head_get_only(h, "x-api-key", &len, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(len, 99);
    ck_assert_str_eq(gw_http_head_get_only(h, "b", &len, &n), "b");
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(len, 1);
    ck_assert_str_eq(gw_http_head_get_only(h, "EMPTY", &len, &n), "");
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(gw_http_head_get_only(h, "x-api", NULL, &n), "no");
    ck_assert_ptr_null(gw_http_head_get_only(h, "x-ap", &len, &n));
    ck_assert_uint_eq(n, 0);
    result_free(&r);
}
END_TEST

START_TEST(test_body_is_streamed_in_pieces_pointing_into_input)
{
    struct result r;
    req("PUT /u HTTP/1.1\r\n" H11 "Content-Length: 11\r\n\r\nhello world", &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.nmsg, 1);
    ck_assert_uint_eq(r.body_len[0], 11);
    ck_assert(memcmp(r.body[0], "hello world", 11) == 0);
    ck_assert(r.body_in_input);
    result_free(&r);
}
END_TEST

START_TEST(test_chunked_body_is_decoded)
{
    struct result r;
    req("POST /c HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6;name=val;x=\"q;s\"\r\n world\r\n0\r\nTrailer-A: 1\r\n\r\n",
        &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.nmsg, 1);
    ck_assert_int_eq(r.heads[0]->framing, GW_HTTP_BODY_CHUNKED);
    ck_assert_uint_eq(r.body_len[0], 11);
    ck_assert(memcmp(r.body[0], "hello world", 11) == 0);
    result_free(&r);
}
END_TEST

START_TEST(test_pipelined_requests_are_separated)
{
    const char *in = "GET /1 HTTP/1.1\r\n" H11 "\r\n"
                     "POST /2 HTTP/1.1\r\n" H11 "Content-Length: 2\r\n\r\nok"
                     "GET /3 HTTP/1.1\r\n" H11 "\r\n";
    struct result r;
    req(in, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.nmsg, 3);
    ck_assert_str_eq(r.heads[0]->target, "/1");
    ck_assert_str_eq(r.heads[1]->target, "/2");
    ck_assert_str_eq(r.heads[2]->target, "/3");
    ck_assert_uint_eq(r.body_len[1], 2);
    result_free(&r);

    /* DONE reports where the next request starts. */
    struct gw_http_parser *p;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
    const char *two = "GET /1 HTTP/1.1\r\n" H11 "\r\nGET /2 HTTP/1.1\r\n";
    size_t used, total = 0;
    struct gw_http_event ev;
    ck_assert_int_eq(gw_http_parser_feed(p, two, strlen(two), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_head_free(ev.head);
    total += used;
    ck_assert_int_eq(gw_http_parser_feed(p, two + total, strlen(two) - total, &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_DONE);
    total += used;
    ck_assert_uint_eq(total, strlen("GET /1 HTTP/1.1\r\n" H11 "\r\n"));
    ck_assert(!gw_http_parser_in_message(p));
    gw_http_parser_free(p);
}
END_TEST

START_TEST(test_keep_alive_follows_version_and_connection)
{
    struct result r;
    req("GET / HTTP/1.1\r\n" H11 "\r\n", &r);
    ck_assert(r.heads[0]->keep_alive);
    result_free(&r);
    req("GET / HTTP/1.1\r\n" H11 "Connection: foo, Close\r\n\r\n", &r);
    ck_assert(!r.heads[0]->keep_alive);
    result_free(&r);
    req("GET / HTTP/1.0\r\n\r\n", &r);
    ck_assert(!r.heads[0]->keep_alive);
    result_free(&r);
    req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
    ck_assert(r.heads[0]->keep_alive);
    result_free(&r);
}
END_TEST

START_TEST(test_data_after_connection_close_is_refused)
{
    struct result r;
    req("GET / HTTP/1.1\r\n" H11 "Connection: close\r\n\r\nGET /x HTTP/1.1\r\n" H11 "\r\n", &r);
    ck_assert_int_eq(r.nmsg, 1);
    ck_assert_int_eq(r.rc, -EPROTO);
    ck_assert_int_eq(r.status, 400);
    result_free(&r);
}
END_TEST

START_TEST(test_expect_continue_is_reported)
{
    struct result r;
    req("PUT /x HTTP/1.1\r\n" H11 "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\nx", &r);
    ck_assert(r.heads[0]->expect_continue);
    result_free(&r);
    req("PUT /x HTTP/1.1\r\n" H11 "Content-Length: 1\r\n\r\nx", &r);
    ck_assert(!r.heads[0]->expect_continue);
    result_free(&r);
}
END_TEST

START_TEST(test_upgrade_is_reported_and_tunnel_bytes_left)
{
    const char *in = "GET /ws HTTP/1.1\r\n" H11 "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                     "\x81\x05tunnel";
    struct result r;
    req(in, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.nmsg, 1);
    ck_assert(r.heads[0]->upgrade);
    ck_assert_uint_lt(r.consumed, strlen(in));
    result_free(&r);
    req("GET /ws HTTP/1.1\r\n" H11 "Upgrade: websocket\r\n\r\n", &r);
    ck_assert(!r.heads[0]->upgrade); /* no Connection: upgrade */
    result_free(&r);
}
END_TEST

START_TEST(test_refused_upgrade_resumes_as_http)
{
    const char *a = "GET /ws HTTP/1.1\r\n" H11 "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    const char *b = "GET /next HTTP/1.1\r\n" H11 "\r\n";
    struct gw_http_parser *p;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
    size_t used;
    struct gw_http_event ev;
    ck_assert_int_eq(gw_http_parser_feed(p, a, strlen(a), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    ck_assert(ev.head->upgrade);
    gw_http_head_free(ev.head);
    ck_assert_int_eq(gw_http_parser_feed(p, b, strlen(b), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_DONE);
    ck_assert_uint_eq(used, 0);
    /* the upstream said no: the bytes that follow are HTTP again */
    ck_assert_int_eq(gw_http_parser_feed(p, b, strlen(b), &used, &ev), -EBUSY);
    gw_http_parser_resume_after_upgrade(p);
    ck_assert_int_eq(gw_http_parser_feed(p, b, strlen(b), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    ck_assert_str_eq(ev.head->target, "/next");
    gw_http_head_free(ev.head);
    ck_assert_int_eq(gw_http_parser_feed(p, b + used, strlen(b) - used, &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_DONE);
    gw_http_parser_free(p);
}
END_TEST

START_TEST(test_bare_cr_is_refused)
{
    refused("GET / HTTP/1.1\r\n" H11 "X: a\rb\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r" H11 "\r\n", 400);
    refused("GET / HTTP/1.1\r\n" H11 "X: 1\r\n\rZ", 400);
}
END_TEST

START_TEST(test_bare_lf_is_refused)
{
    refused("GET / HTTP/1.1\n" H11 "\r\n", 400);
    refused("GET / HTTP/1.1\r\n" H11 "X: 1\n\r\n", 400);
    refused("GET / HTTP/1.1\r\n" H11 "\n", 400);
}
END_TEST

START_TEST(test_obs_fold_is_refused)
{
    refused("GET / HTTP/1.1\r\n" H11 "X: a\r\n b\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\n" H11 "X: a\r\n b: c\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\n" H11 "Content-Length: 0\r\n\t1\r\n\r\n", 400);
}
END_TEST

START_TEST(test_whitespace_before_colon_is_refused)
{
    refused("GET / HTTP/1.1\r\n" H11 "Content-Length : 0\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\n" H11 "X\t: 0\r\n\r\n", 400);
}
END_TEST

START_TEST(test_empty_header_name_is_refused)
{
    refused("GET / HTTP/1.1\r\n" H11 ": value\r\n\r\n", 400);
}
END_TEST

START_TEST(test_ctl_and_nul_in_names_and_values_are_refused)
{
    static const char in1[] = "GET / HTTP/1.1\r\n" H11 "X: a\0b\r\n\r\n";
    struct result r;
    parse(GW_HTTP_REQUEST, NULL, in1, sizeof(in1) - 1, 0, false, false, &r);
    ck_assert_int_eq(r.rc, -EPROTO);
    ck_assert_int_eq(r.status, 400);
    result_free(&r);
    refused("GET / HTTP/1.1\r\n" H11 "X\x01Y: a\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\n" H11 "X: a\x7f\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\n" H11 "X: a\x0b\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\n" H11 "X(Y): a\r\n\r\n", 400);
    accepted("GET / HTTP/1.1\r\n" H11 "X: caf\xc3\xa9\t ok\r\n\r\n", 1); /* obs-text, HTAB */
}
END_TEST

START_TEST(test_invalid_content_length_is_refused)
{
    static const char *const bad[] = {
        "", "-1", "+1", "1 2", "0x10", "1,1", "1, 1", "1.0", "abc", "99999999999999999999", NULL};
    for (int i = 0; bad[i]; i++) {
        char in[256];
        snprintf(in, sizeof(in), "POST / HTTP/1.1\r\n" H11 "Content-Length: %s\r\n\r\n", bad[i]);
        refused(in, 400);
    }
    accepted("POST / HTTP/1.1\r\n" H11 "Content-Length: 007\r\n\r\n1234567", 1);
}
END_TEST

START_TEST(test_duplicate_content_length_is_refused_even_when_equal)
{
    refused("POST / HTTP/1.1\r\n" H11 "Content-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400);
    refused("POST / HTTP/1.1\r\n" H11 "Content-Length: 1\r\ncontent-length: 1\r\n\r\nx", 400);
}
END_TEST

START_TEST(test_content_length_with_transfer_encoding_is_refused)
{
    refused("POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\n",
            400);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            400);
}
END_TEST

START_TEST(test_transfer_encoding_must_end_in_chunked)
{
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\n\r\n", 400);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n", 400);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
            "\r\n",
            400);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", 400);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked;x=1\r\n\r\n", 400);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding:\r\n\r\n", 400);
    refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
    accepted("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 1);
}
END_TEST

START_TEST(test_unknown_transfer_coding_is_501)
{
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: pigeons, chunked\r\n\r\n", 501);
}
END_TEST

START_TEST(test_bad_chunk_sizes_are_refused)
{
    static const char *const bad[] = {
        "g", "-1", " 5", "5 ", "0x5", "", "11111111111111111", "00000000000000005", "5\n", NULL};
    for (int i = 0; bad[i]; i++) {
        char in[256];
        snprintf(in, sizeof(in),
                 "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n"
                 "0\r\n\r\n",
                 bad[i]);
        refused(in, 400);
    }
}
END_TEST

/* Asserts that the scanner itself refuses `in` with `status` and its own
 * `reason`, fed whole and byte by byte. Checks llhttp would also make are
 * otherwise invisible: llhttp refusing after a scanner that let the input
 * through gives the same status with llhttp's reason. */
static void refused_by_scanner(enum gw_http_kind kind, const char *in, int status,
                               const char *reason)
{
    for (size_t step = 0; step < 2; step++) {
        struct result r;
        parse(kind, NULL, in, strlen(in), step, kind == GW_HTTP_RESPONSE, false, &r);
        if (r.rc != -EPROTO || r.status != status || !r.reason || strcmp(r.reason, reason) != 0)
            ck_abort_msg("expected %d (%s) from the scanner for %s, got rc %d status %d (%s)",
                         status, reason, in, r.rc, r.status, r.reason ? r.reason : "");
        ck_assert_int_eq(r.nmsg, 0);
        result_free(&r);
    }
}

START_TEST(test_scanner_refuses_content_length_with_transfer_encoding_itself)
{
    static const char *const why = "both Content-Length and Transfer-Encoding";
    refused_by_scanner(GW_HTTP_REQUEST,
                       "POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nTransfer-Encoding: "
                       "chunked\r\n\r\n0\r\n\r\n",
                       400, why);
    refused_by_scanner(GW_HTTP_REQUEST,
                       "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: "
                       "0\r\n\r\n0\r\n\r\n",
                       400, why);
    refused_by_scanner(GW_HTTP_REQUEST,
                       "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n"
                       "Content-Length: 5\r\n\r\n0\r\n\r\n",
                       400, why);
    refused_by_scanner(GW_HTTP_RESPONSE,
                       "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
                       "\r\n3\r\nabc\r\n0\r\n\r\n",
                       502, why);
}
END_TEST

START_TEST(test_scanner_refuses_chunk_sizes_over_16_digits_itself)
{
    static const char *const why = "chunk size too large";
    /* 17 digits that overflow 64 bits, which llhttp also refuses, and 17
     * digits that do not (leading zeros), which llhttp alone accepts. */
    static const char *const sizes[] = {"11111111111111111", "00000000000000005",
                                        "0000000000000000000000005", NULL};
    for (int i = 0; sizes[i]; i++) {
        char in[256];
        snprintf(in, sizeof in,
                 "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n"
                 "0\r\n\r\n",
                 sizes[i]);
        refused_by_scanner(GW_HTTP_REQUEST, in, 400, why);
        snprintf(in, sizeof in,
                 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n"
                 "0\r\n\r\n",
                 sizes[i]);
        refused_by_scanner(GW_HTTP_RESPONSE, in, 502, why);
    }
    /* Sixteen digits are the most the scanner takes. */
    accepted("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n0000000000000005\r\n"
             "hello\r\n0\r\n\r\n",
             1);
}
END_TEST

START_TEST(test_chunk_data_must_end_in_crlf)
{
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n3\r\nhelloXX\r\n0\r\n\r\n",
            400);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
            400);
}
END_TEST

START_TEST(test_chunk_extensions_are_bounded)
{
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    char in[4096];
    int n =
        snprintf(in, sizeof(in), "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n1;");
    while (n < 2000)
        in[n++] = 'a';
    strcpy(in + n, "\r\nx\r\n0\r\n\r\n");
    struct result r;
    parse2(GW_HTTP_REQUEST, &lim, in, false, false, &r);
    ck_assert_int_eq(r.rc, -EPROTO);
    ck_assert_int_eq(r.status, 400);
    ck_assert_int_eq(r.nmsg, 0);
    result_free(&r);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n1;\r\nx\r\n0\r\n\r\n",
            400);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n1;a=\"x\r\nx\r\n0\r\n\r\n",
            400);
}
END_TEST

START_TEST(test_header_bytes_limit_is_431)
{
    char in[20000];
    int n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\n" H11 "X: ");
    while (n < 17000)
        in[n++] = 'a';
    strcpy(in + n, "\r\n\r\n");
    refused(in, 431);
}
END_TEST

START_TEST(test_header_count_limit_is_431)
{
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    lim.max_header_count = 3;
    struct result r;
    parse2(GW_HTTP_REQUEST, &lim, "GET / HTTP/1.1\r\n" H11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", false,
           false, &r);
    ck_assert_int_eq(r.status, 431);
    result_free(&r);
    parse2(GW_HTTP_REQUEST, &lim, "GET / HTTP/1.1\r\n" H11 "A: 1\r\nB: 2\r\n\r\n", false, false,
           &r);
    ck_assert_int_eq(r.rc, 0);
    result_free(&r);
}
END_TEST

START_TEST(test_uri_limit_is_414)
{
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    lim.max_uri_bytes = 10;
    struct result r;
    parse2(GW_HTTP_REQUEST, &lim, "GET /0123456789 HTTP/1.1\r\n" H11 "\r\n", false, false, &r);
    ck_assert_int_eq(r.status, 414);
    result_free(&r);
    parse2(GW_HTTP_REQUEST, &lim, "GET /12345678 HTTP/1.1\r\n" H11 "\r\n", false, false, &r);
    ck_assert_int_eq(r.rc, 0);
    result_free(&r);
}
END_TEST

START_TEST(test_body_limit_is_413)
{
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    lim.max_body_bytes = 4;
    struct result r;
    parse2(GW_HTTP_REQUEST, &lim, "POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\n\r\nhello", false,
           false, &r);
    ck_assert_int_eq(r.status, 413);
    result_free(&r);
    parse2(GW_HTTP_REQUEST, &lim,
           "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n"
           "0\r\n\r\n",
           false, false, &r);
    ck_assert_int_eq(r.status, 413);
    result_free(&r);
    parse2(GW_HTTP_REQUEST, &lim, "POST / HTTP/1.1\r\n" H11 "Content-Length: 4\r\n\r\nhell", false,
           false, &r);
    ck_assert_int_eq(r.rc, 0);
    result_free(&r);

    /* The route's limit, set after the head. */
    struct gw_http_parser *p;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
    const char *in = "POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\n\r\nhello";
    size_t used;
    struct gw_http_event ev;
    ck_assert_int_eq(gw_http_parser_feed(p, in, strlen(in), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_head_free(ev.head);
    ck_assert_int_eq(gw_http_parser_set_body_limit(p, 4), -EMSGSIZE);
    ck_assert_int_eq(gw_http_parser_status(p), 413);
    gw_http_parser_free(p);
}
END_TEST

START_TEST(test_host_is_required_once_and_valid)
{
    refused("GET / HTTP/1.1\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    accepted("GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", 1);
    accepted("GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", 1);
    accepted("GET / HTTP/1.0\r\n\r\n", 1);
}
END_TEST

START_TEST(test_body_on_get_or_head_is_refused)
{
    refused("GET / HTTP/1.1\r\n" H11 "Content-Length: 3\r\n\r\nabc", 400);
    refused("HEAD / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
    accepted("GET / HTTP/1.1\r\n" H11 "Content-Length: 0\r\n\r\n", 1);
}
END_TEST

START_TEST(test_framing_lookalike_names_are_refused)
{
    refused("POST / HTTP/1.1\r\n" H11 "Content_Length: 3\r\n\r\nabc", 400);
    refused("POST / HTTP/1.1\r\n" H11 "Transfer--Encoding: chunked\r\n\r\n", 400);
    refused("POST / HTTP/1.1\r\n" H11 "transfer_encoding: chunked\r\n\r\n", 400);
}
END_TEST

START_TEST(test_http_version_rules)
{
    refused("GET / HTTP/2.0\r\n" H11 "\r\n", 505);
    refused("GET / HTTP/0.9\r\n" H11 "\r\n", 400);
    refused("GET / http/1.1\r\n" H11 "\r\n", 400);
    refused("GET / HTTP/1.1 \r\n" H11 "\r\n", 400);
    refused("GET /\r\n\r\n", 400);
    refused("GET  / HTTP/1.1\r\n" H11 "\r\n", 400);
    accepted("\r\nGET / HTTP/1.1\r\n" H11 "\r\n", 1); /* RFC 9112 §2.2 */
}
END_TEST

static void resp(const char *in, bool head_req, struct result *r);

/* realloc is wrapped for this test (meson.build: --wrap=realloc), so that a
 * head's storage can be made to run out exactly where the test wants. While
 * alloc_limit is set, growing a block past it fails, and a fresh block of
 * exactly alloc_limit bytes gets GUARD bytes of 0x7E after its end, which
 * the parser must never touch ('~': above any digit, as heap garbage may be). */
#define GUARD 16
static size_t alloc_limit;
static unsigned char *guarded[8];
static size_t nguarded;
void *__real_realloc(void *ptr, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
void *__wrap_realloc(void *ptr, size_t size)
{
    if (alloc_limit && size > alloc_limit)
        return NULL;
    if (alloc_limit && !ptr && size == alloc_limit && nguarded < 8) {
        unsigned char *b = __real_realloc(NULL, size + GUARD);
        if (b) {
            memset(b + size, 0x7E, GUARD);
            guarded[nguarded++] = b + size;
        }
        return b;
    }
    return __real_realloc(ptr, size);
}

/* Feeds `in` (a head whose `what` is `len` bytes long) with the head's
 * storage unable to grow past 512 bytes: the feed fails for memory, and
 * no byte past any block the parser was given is written. */
static void feed_out_of_storage(const char *in, const char *what, size_t len)
{
    struct gw_http_parser *p = NULL;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
    nguarded = 0;
    alloc_limit = 512;
    struct gw_http_event ev;
    size_t used = 0;
    int rc = gw_http_parser_feed(p, in, strlen(in), &used, &ev);
    alloc_limit = 0;
    ck_assert_msg(rc == -ENOMEM, "%s of %zu bytes: %d", what, len, rc);
    for (size_t g = 0; g < nguarded; g++)
        for (size_t i = 0; i < GUARD; i++)
            ck_assert_msg(guarded[g][i] == 0x7E, "%s of %zu bytes: byte %zu past the end", what,
                          len, i);
    gw_http_parser_free(p);
}

START_TEST(test_storage_running_out_in_the_version_writes_nothing_past_it)
{
    /* The head's storage starts at 512 bytes: a target of each length
     * around that puts every byte of the version at its end in turn; the
     * growth there fails, and the version (1.2, which is stored as 1.1)
     * must not be read or written past what was stored. */
    for (size_t len = 480; len <= 520; len++) {
        char in[1024];
        int n = snprintf(in, sizeof in, "GET /");
        memset(in + n, 'a', len);
        snprintf(in + n + len, sizeof in - (size_t)n - len, " HTTP/1.2\r\n" H11 "\r\n");
        feed_out_of_storage(in, "target", len);
    }
}
END_TEST

START_TEST(test_storage_running_out_at_a_field_end_writes_nothing_past_it)
{
    /* As above for a field's name and value: each length puts the end of
     * the value (where its NUL goes) and the colon at the storage's end
     * in turn; growing fails there, and nothing is written past it. */
    for (size_t len = 440; len <= 520; len++) {
        char in[1024];
        int n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nX-N: ");
        memset(in + n, 'v', len);
        snprintf(in + n + len, sizeof in - (size_t)n - len, "\r\nX-Name-After: w\r\n" H11 "\r\n");
        feed_out_of_storage(in, "value", len);
    }
}
END_TEST

START_TEST(test_a_higher_http_1_minor_version_is_read_as_1_1)
{
    /* RFC 9110 §2.5: processed as the highest 1.x implemented, whatever
     * split the bytes arrive in (parse2 feeds whole and byte by byte) */
    static const char *const reqs[] = {"GET / HTTP/1.2\r\n" H11 "\r\n",
                                       "GET / HTTP/1.9\r\n" H11 "\r\n", NULL};
    for (int i = 0; reqs[i]; i++) {
        struct result r;
        req(reqs[i], &r);
        ck_assert_msg(r.rc == 0, "%s refused: %s", reqs[i], r.reason ? r.reason : "");
        ck_assert_int_eq(r.nmsg, 1);
        ck_assert_uint_eq(r.heads[0]->version_major, 1);
        ck_assert_uint_eq(r.heads[0]->version_minor, 1);
        ck_assert(r.heads[0]->keep_alive); /* 1.1's default, not 1.0's */
        result_free(&r);
    }
    /* as 1.1: Host is required, pipelining and chunked work */
    refused("GET / HTTP/1.2\r\n\r\n", 400);
    accepted("POST / HTTP/1.3\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
             "GET / HTTP/1.2\r\n" H11 "\r\n",
             2);
    /* a response from an upstream likewise */
    struct result r;
    resp("HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", false, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_uint_eq(r.heads[0]->version_minor, 1);
    ck_assert_uint_eq(r.body_len[0], 2);
    result_free(&r);
}
END_TEST

/* The scanner takes a method, an HTTP-version, OWS and a reason phrase
 * as runs when the bytes are there, byte by byte when they are not: every
 * split of the input gives the same verdict, the same status and the same
 * head (method, version as stored, reason, field values). */
START_TEST(test_run_and_byte_paths_agree_at_every_split)
{
    static const struct {
        enum gw_http_kind kind;
        const char *in;
    } cases[] = {
        {GW_HTTP_REQUEST, "PATCH /a HTTP/1.1\r\nHost: h\r\nX-A:  \t v w \t\r\n\r\n"},
        {GW_HTTP_REQUEST, "GET / HTTP/1.7\r\nHost: h\r\n\r\n"},
        {GW_HTTP_REQUEST, "GET / HTTP/2.1\r\nHost: h\r\n\r\n"},
        {GW_HTTP_REQUEST, "GET / HTTP/1.x\r\nHost: h\r\n\r\n"},
        {GW_HTTP_REQUEST, "GET / HTTP/11.1\r\nHost: h\r\n\r\n"},
        {GW_HTTP_REQUEST, "GET / HTTP/1.\r\nHost: h\r\n\r\n"},
        {GW_HTTP_REQUEST, "GET / HTTX/1.1\r\nHost: h\r\n\r\n"},
        {GW_HTTP_REQUEST, "G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n"},
        {GW_HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: h\r\nX-A: \t\x01\r\n\r\n"},
        {GW_HTTP_RESPONSE, "HTTP/1.1 200 Very  OK\t!\r\nContent-Length: 0\r\n\r\n"},
        {GW_HTTP_RESPONSE, "HTTP/1.5 204 No Content\r\n\r\n"},
        {GW_HTTP_RESPONSE, "HTTP/3.0 200 OK\r\nContent-Length: 0\r\n\r\n"},
        {GW_HTTP_RESPONSE, "HTTP/1.1 200 O\x7fK\r\nContent-Length: 0\r\n\r\n"},
        {GW_HTTP_RESPONSE, "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
        {GW_HTTP_RESPONSE, "XTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *in = cases[c].in;
        size_t len = strlen(in);
        struct result whole;
        parse(cases[c].kind, NULL, in, len, 0, true, false, &whole);
        for (size_t step = 1; step < len; step++) {
            struct result r;
            parse(cases[c].kind, NULL, in, len, step, true, false, &r);
            ck_assert_msg(r.rc == whole.rc && r.status == whole.status && r.nmsg == whole.nmsg,
                          "%s in steps of %zu: rc %d status %d, whole: rc %d status %d", in, step,
                          r.rc, r.status, whole.rc, whole.status);
            if (r.nmsg) {
                const struct gw_http_head *a = whole.heads[0], *b = r.heads[0];
                ck_assert_uint_eq(a->version_minor, b->version_minor);
                if (a->is_response)
                    ck_assert_str_eq(a->reason, b->reason);
                else
                    ck_assert_str_eq(a->method, b->method);
                ck_assert_uint_eq(a->nheaders, b->nheaders);
                for (size_t k = 0; k < a->nheaders; k++)
                    ck_assert_str_eq(a->headers[k].value, b->headers[k].value);
            }
            result_free(&r);
        }
        result_free(&whole);
    }
    /* what the runs must store */
    struct result r;
    parse(GW_HTTP_REQUEST, NULL, cases[0].in, strlen(cases[0].in), 0, false, false, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(r.heads[0]->method, "PATCH");
    ck_assert_str_eq(r.heads[0]->headers[1].value, "v w");
    result_free(&r);
    parse(GW_HTTP_RESPONSE, NULL, cases[9].in, strlen(cases[9].in), 0, false, false, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(r.heads[0]->reason, "Very  OK\t!");
    result_free(&r);
    parse(GW_HTTP_REQUEST, NULL, cases[2].in, strlen(cases[2].in), 0, false, false, &r);
    ck_assert_int_eq(r.status, 505);
    result_free(&r);
}
END_TEST

START_TEST(test_unknown_method_is_501)
{
    refused("FROB / HTTP/1.1\r\n" H11 "\r\n", 501);
    refused("G@T / HTTP/1.1\r\n" H11 "\r\n", 400);
}
END_TEST

START_TEST(test_truncated_request_is_refused_at_eof)
{
    struct result r;
    parse2(GW_HTTP_REQUEST, NULL, "POST / HTTP/1.1\r\n" H11 "Content-Length: 9\r\n\r\nabc", true,
           false, &r);
    ck_assert_int_eq(r.rc, -EPROTO);
    result_free(&r);
    parse2(GW_HTTP_REQUEST, NULL, "POST / HTTP/1.1\r\n" H11 "Content-Length: 9\r\n\r\nabc", false,
           false, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert(r.in_message);
    result_free(&r);
}
END_TEST

START_TEST(test_trim_between_messages_keeps_parsing)
{
    const char *a = "GET /1 HTTP/1.1\r\n" H11 "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    const char *b = "GET /2 HTTP/1.1\r\n" H11 "\r\n";
    struct gw_http_parser *p;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
    size_t used, half = strlen(b) / 2;
    struct gw_http_event ev;
    ck_assert_int_eq(gw_http_parser_feed(p, a, strlen(a), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_head_free(ev.head);
    ck_assert_int_eq(gw_http_parser_feed(p, "", 0, &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_DONE);
    gw_http_parser_trim(p); /* idle: storage given back */
    ck_assert_int_eq(gw_http_parser_feed(p, b, half, &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_NEED_MORE);
    ck_assert(gw_http_parser_in_message(p));
    gw_http_parser_trim(p); /* inside a head: must keep what was read */
    ck_assert_int_eq(gw_http_parser_feed(p, b + half, strlen(b) - half, &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    ck_assert_str_eq(ev.head->target, "/2");
    ck_assert_str_eq(gw_http_head_get(ev.head, "host", NULL), "example.com");
    gw_http_head_free(ev.head);
    gw_http_parser_free(p);
}
END_TEST

/* --- responses ------------------------------------------------------------ */

static void resp(const char *in, bool head_req, struct result *r)
{
    parse2(GW_HTTP_RESPONSE, NULL, in, true, head_req, r);
}

START_TEST(test_response_framing_follows_rfc9112_section6)
{
    struct result r;
    resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.heads[0]->framing, GW_HTTP_BODY_LENGTH);
    ck_assert_uint_eq(r.body_len[0], 5);
    result_free(&r);

    /* HEAD: no body whatever Content-Length says; next response follows. */
    resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
         true, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.nmsg, 2);
    ck_assert_int_eq(r.heads[0]->framing, GW_HTTP_BODY_NONE);
    result_free(&r);

    static const char *const nobody[] = {"HTTP/1.1 204 No Content\r\n\r\n",
                                         "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                                         "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", NULL};
    for (int i = 0; nobody[i]; i++) {
        resp(nobody[i], false, &r);
        ck_assert_int_eq(r.rc, 0);
        ck_assert_int_eq(r.nmsg, 1);
        ck_assert_int_eq(r.heads[0]->framing, GW_HTTP_BODY_NONE);
        result_free(&r);
    }

    resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false, &r);
    ck_assert_int_eq(r.heads[0]->framing, GW_HTTP_BODY_CHUNKED);
    ck_assert_uint_eq(r.body_len[0], 3);
    result_free(&r);

    /* No length: read until close, then complete at EOF. */
    resp("HTTP/1.1 200 OK\r\n\r\nuntil close", false, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.nmsg, 1);
    ck_assert_int_eq(r.heads[0]->framing, GW_HTTP_BODY_CLOSE);
    ck_assert(!r.heads[0]->keep_alive);
    ck_assert_uint_eq(r.body_len[0], 11);
    result_free(&r);

    resp("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", false, &r);
    ck_assert_int_eq(r.nmsg, 2);
    ck_assert_int_eq(r.heads[0]->status, 100);
    ck_assert_int_eq(r.heads[1]->status, 200);
    result_free(&r);
}
END_TEST

START_TEST(test_malformed_response_is_refused_with_502)
{
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", /* cut short at EOF */
        "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
        NULL};
    for (int i = 0; bad[i]; i++) {
        struct result r;
        resp(bad[i], false, &r);
        if (r.rc != -EPROTO || r.status != 502)
            ck_abort_msg("expected 502 for %s, got %d %d", bad[i], r.rc, r.status);
        result_free(&r);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_parser");
    TCase *t = tcase_create("request");
    tcase_add_test(t, test_request_head_is_copied_into_caller_owned_storage);
    tcase_add_test(t, test_field_values_lose_only_surrounding_whitespace);
    tcase_add_test(t, test_a_field_sent_once_has_its_only_value);
    tcase_add_test(t, test_body_is_streamed_in_pieces_pointing_into_input);
    tcase_add_test(t, test_chunked_body_is_decoded);
    tcase_add_test(t, test_pipelined_requests_are_separated);
    tcase_add_test(t, test_keep_alive_follows_version_and_connection);
    tcase_add_test(t, test_data_after_connection_close_is_refused);
    tcase_add_test(t, test_expect_continue_is_reported);
    tcase_add_test(t, test_upgrade_is_reported_and_tunnel_bytes_left);
    tcase_add_test(t, test_refused_upgrade_resumes_as_http);
    tcase_add_test(t, test_bare_cr_is_refused);
    tcase_add_test(t, test_bare_lf_is_refused);
    tcase_add_test(t, test_obs_fold_is_refused);
    tcase_add_test(t, test_whitespace_before_colon_is_refused);
    tcase_add_test(t, test_empty_header_name_is_refused);
    tcase_add_test(t, test_ctl_and_nul_in_names_and_values_are_refused);
    tcase_add_test(t, test_invalid_content_length_is_refused);
    tcase_add_test(t, test_duplicate_content_length_is_refused_even_when_equal);
    tcase_add_test(t, test_content_length_with_transfer_encoding_is_refused);
    tcase_add_test(t, test_transfer_encoding_must_end_in_chunked);
    tcase_add_test(t, test_unknown_transfer_coding_is_501);
    tcase_add_test(t, test_bad_chunk_sizes_are_refused);
    tcase_add_test(t, test_scanner_refuses_content_length_with_transfer_encoding_itself);
    tcase_add_test(t, test_scanner_refuses_chunk_sizes_over_16_digits_itself);
    tcase_add_test(t, test_chunk_data_must_end_in_crlf);
    tcase_add_test(t, test_chunk_extensions_are_bounded);
    tcase_add_test(t, test_header_bytes_limit_is_431);
    tcase_add_test(t, test_header_count_limit_is_431);
    tcase_add_test(t, test_uri_limit_is_414);
    tcase_add_test(t, test_body_limit_is_413);
    tcase_add_test(t, test_host_is_required_once_and_valid);
    tcase_add_test(t, test_body_on_get_or_head_is_refused);
    tcase_add_test(t, test_framing_lookalike_names_are_refused);
    tcase_add_test(t, test_http_version_rules);
    tcase_add_test(t, test_a_higher_http_1_minor_version_is_read_as_1_1);
    tcase_add_test(t, test_storage_running_out_in_the_version_writes_nothing_past_it);
    tcase_add_test(t, test_run_and_byte_paths_agree_at_every_split);
    tcase_add_test(t, test_storage_running_out_at_a_field_end_writes_nothing_past_it);
    tcase_add_test(t, test_unknown_method_is_501);
    tcase_add_test(t, test_truncated_request_is_refused_at_eof);
    tcase_add_test(t, test_trim_between_messages_keeps_parsing);
    suite_add_tcase(s, t);
    t = tcase_create("response");
    tcase_add_test(t, test_response_framing_follows_rfc9112_section6);
    tcase_add_test(t, test_malformed_response_is_refused_with_502);
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
