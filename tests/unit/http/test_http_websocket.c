/* test_http_websocket.c: the WebSocket handshake checks
 * (gateway/src/http/websocket.c): SHA-1 against the RFC 3174 test vectors,
 * the accept value against RFC 6455's example, the request's key and
 * version, and the 101's accept. */
#include "gw/http1.h"

#include "../../../gateway/src/http/http_int.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void sha1_hex(const char *data, size_t len, size_t repeat, char out[41])
{
    struct gw__http_sha1 s;
    unsigned char d[20];
    gw__http_sha1_init(&s);
    for (size_t i = 0; i < repeat; i++)
        gw__http_sha1_update(&s, data, len);
    gw__http_sha1_final(&s, d);
    for (int i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02X", d[i]);
}

START_TEST(sha1_matches_the_rfc3174_test_vectors)
{
    /* RFC 3174 §7.3: TEST1..TEST4 with their repeat counts. */
    char h[41];
    sha1_hex("abc", 3, 1, h);
    ck_assert_str_eq(h, "A9993E364706816ABA3E25717850C26C9CD0D89D");
    const char *t2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1_hex(t2, strlen(t2), 1, h);
    ck_assert_str_eq(h, "84983E441C3BD26EBAAE4AA1F95129E5E54670F1");
    sha1_hex("a", 1, 1000000, h);
    ck_assert_str_eq(h, "34AA973CD4C4DAA4F61EEB2BDBAD27316534016F");
    const char *t4 = "0123456701234567012345670123456701234567012345670123456701234567";
    sha1_hex(t4, strlen(t4), 10, h);
    ck_assert_str_eq(h, "DEA356A2CDDD90C7A7ECEDC5EBB563934F460452");
    /* and the empty message, and lengths around the padding boundary */
    sha1_hex("", 0, 1, h);
    ck_assert_str_eq(h, "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709");
    char m[64];
    memset(m, 'a', sizeof m);
    sha1_hex(m, 55, 1, h);
    ck_assert_str_eq(h, "C1C8BBDC22796E28C0E15163D20899B65621D65A");
    sha1_hex(m, 56, 1, h);
    ck_assert_str_eq(h, "C2DB330F6083854C99D4B5BFB6E8F29F201BE699");
    sha1_hex(m, 64, 1, h);
    ck_assert_str_eq(h, "0098BA824B5C16427BD7A1122A5A442A25EC644D");
}
END_TEST

START_TEST(accept_matches_the_rfc6455_example)
{
    char acc[GW_HTTP_WS_ACCEPT_SIZE];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    gw_http_websocket_accept(key, strlen(key), acc);
    ck_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

static struct gw_http_head *parse(const char *text, enum gw_http_kind kind)
{
    struct gw_http_parser *p;
    ck_assert_int_eq(gw_http_parser_new(&p, kind, NULL), 0);
    struct gw_http_event ev;
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, text, strlen(text), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_parser_free(p);
    return ev.head;
}

/* The request check's verdict for a request head `fields` (after the
 * request line) and its accept value. */
static int check_request(const char *method, const char *fields, char acc[GW_HTTP_WS_ACCEPT_SIZE])
{
    char text[1024];
    snprintf(text, sizeof text, "%s /ws HTTP/1.1\r\nHost: a\r\n%s\r\n", method, fields);
    struct gw_http_head *h = parse(text, GW_HTTP_REQUEST);
    const char *why = NULL;
    int rc = gw_http_websocket_request_check(h, acc, &why);
    if (rc < 0)
        ck_assert_ptr_nonnull(why);
    gw_http_head_free(h);
    return rc;
}

#define UPG "Upgrade: websocket\r\nConnection: Upgrade\r\n"

START_TEST(websocket_request_needs_one_valid_key_and_version_13)
{
    char acc[GW_HTTP_WS_ACCEPT_SIZE];
    ck_assert_int_eq(check_request("GET",
                                   UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                       "Sec-WebSocket-Version: 13\r\n",
                                   acc),
                     1);
    ck_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* not a websocket upgrade: nothing to check */
    ck_assert_int_eq(check_request("GET", "", acc), 0);
    ck_assert_str_eq(acc, "");
    ck_assert_int_eq(check_request("GET", "Upgrade: h2c\r\nConnection: Upgrade\r\n", acc), 0);
    /* no key, no version, a wrong version */
    ck_assert_int_eq(check_request("GET", UPG "Sec-WebSocket-Version: 13\r\n", acc), -EINVAL);
    ck_assert_int_eq(
        check_request("GET", UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", acc), -EINVAL);
    ck_assert_int_eq(check_request("GET",
                                   UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                       "Sec-WebSocket-Version: 8\r\n",
                                   acc),
                     -EINVAL);
    /* keys that are not base64 of 16 bytes, and two keys */
    const char *bad[] = {"abc",
                         "dGhlIHNhbXBsZSBub25jZQ=",
                         "dGhlIHNhbXBsZSBub25jZQ===",
                         "dGhlIHNhbXBsZSBub25jZR==",
                         "dGhlIHNhbXBsZSBub25jZ*==",
                         "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char f[512];
        snprintf(f, sizeof f, UPG "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", bad[i]);
        ck_assert_msg(check_request("GET", f, acc) == -EINVAL, "key %s", bad[i]);
    }
    /* a handshake is a GET */
    ck_assert_int_eq(check_request("POST",
                                   UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                       "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n",
                                   acc),
                     -EINVAL);
}
END_TEST

static bool response_ok(const char *fields)
{
    char text[1024];
    snprintf(text, sizeof text, "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", fields);
    struct gw_http_head *h = parse(text, GW_HTTP_RESPONSE);
    bool ok = gw_http_websocket_response_ok(h, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    gw_http_head_free(h);
    return ok;
}

START_TEST(websocket_101_needs_the_accept_the_key_calls_for)
{
    ck_assert(response_ok(UPG "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    ck_assert(!response_ok(UPG));
    ck_assert(!response_ok(UPG "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n"));
    ck_assert(!response_ok(UPG "Sec-WebSocket-Accept: S3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    ck_assert(!response_ok(UPG "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    ck_assert(!response_ok("Upgrade: h2c\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_websocket");
    TCase *t = tcase_create("handshake");
    tcase_add_test(t, sha1_matches_the_rfc3174_test_vectors);
    tcase_add_test(t, accept_matches_the_rfc6455_example);
    tcase_add_test(t, websocket_request_needs_one_valid_key_and_version_13);
    tcase_add_test(t, websocket_101_needs_the_accept_the_key_calls_for);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
