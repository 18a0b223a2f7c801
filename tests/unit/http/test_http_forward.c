/* test_http_forward.c: the heads a proxy writes (gateway/src/http/
 * forward.c): hop-by-hop removal, Connection-named fields, X-Forwarded-*,
 * X-Request-Id, the client response head, chunked framing and JSON errors.
 * Every written head is parsed back with the module's own strict parser. */
#include "gw/http1.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Parses one complete head of `kind` from `in`. */
static struct gw_http_head *head_of(enum gw_http_kind kind, const char *in, size_t len)
{
    struct gw_http_parser *p;
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    lim.require_host = false;
    ck_assert_int_eq(gw_http_parser_new(&p, kind, &lim), 0);
    size_t used;
    struct gw_http_event ev;
    int r = gw_http_parser_feed(p, in, len, &used, &ev);
    if (r != 0)
        ck_abort_msg("cannot parse back: %s (%.*s)", gw_http_parser_reason(p), (int)len, in);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_parser_free(p);
    return ev.head;
}

static struct gw_http_head *request(const char *in)
{
    return head_of(GW_HTTP_REQUEST, in, strlen(in));
}

static const struct gw_http_fwd base_fwd = {
    .client_addr = "192.0.2.7",
    .request_id = "rid-1",
};

/* Writes the upstream head for `in` with `f` and parses it back. */
static struct gw_http_head *forward(const char *in, const struct gw_http_fwd *f, char *out,
                                    size_t cap)
{
    struct gw_http_head *h = request(in);
    size_t n;
    ck_assert_int_eq(gw_http_request_head_write(h, f, out, cap, &n), 0);
    ck_assert_uint_lt(n, cap);
    out[n] = 0;
    struct gw_http_head *u = head_of(GW_HTTP_REQUEST, out, n);
    gw_http_head_free(h);
    return u;
}

/* A TLS listener's client-certificate fields: the gateway writes them from
 * the handshake, and a client's copy (any case, any number of lines) is
 * never forwarded, nor can a Connection list or a route edit get one
 * through. */
START_TEST(test_owned_fields_replace_what_the_client_sent)
{
    char out[4096];
    static const struct gw_http_kv set[] = {{"X-Client-Subject", "CN=route"}};
    static const struct gw_http_kv add[] = {{"x-client-cert-sha256", "route"}};
    struct gw_http_edits e = {.set = set, .nset = 1, .add = add, .nadd = 1};
    struct gw_http_kv owned[] = {{"X-Client-Subject", "CN=alice,O=Example"},
                                 {"X-Client-Cert-Sha256", "ab12"}};
    struct gw_http_fwd f = base_fwd;
    f.owned = owned;
    f.nowned = 2;
    f.edits = &e;
    const char *in = "GET / HTTP/1.1\r\nHost: a\r\nx-client-subject: CN=mallory\r\n"
                     "X-CLIENT-SUBJECT: CN=eve\r\nX-Client-Cert-Sha256: ff\r\n"
                     "Connection: x-client-subject\r\nAccept: */*\r\n\r\n";
    /* Edits made of checked parts are written without a byte-by-byte
     * check, but the listener's names are still its own. */
    for (int checked = 0; checked < 2; checked++) {
        e.checked = checked;
        struct gw_http_head *u = forward(in, &f, out, sizeof(out));
        ck_assert_uint_eq(gw_http_head_count(u, "x-client-subject"), 1);
        ck_assert_str_eq(gw_http_head_get(u, "x-client-subject", NULL), "CN=alice,O=Example");
        ck_assert_uint_eq(gw_http_head_count(u, "x-client-cert-sha256"), 1);
        ck_assert_str_eq(gw_http_head_get(u, "x-client-cert-sha256", NULL), "ab12");
        ck_assert_str_eq(gw_http_head_get(u, "accept", NULL), "*/*");
        gw_http_head_free(u);
    }
    e.checked = false;
    struct gw_http_head *u;

    /* No certificate: no value, and still no client copy. */
    owned[0].value = owned[1].value = NULL;
    u = forward(in, &f, out, sizeof(out));
    ck_assert_uint_eq(gw_http_head_count(u, "x-client-subject"), 0);
    ck_assert_uint_eq(gw_http_head_count(u, "x-client-cert-sha256"), 0);
    gw_http_head_free(u);

    /* A listener that configures none forwards the client's fields. */
    f.nowned = 0;
    f.edits = NULL;
    u = forward(in, &f, out, sizeof(out));
    ck_assert_uint_eq(gw_http_head_count(u, "x-client-cert-sha256"), 1);
    gw_http_head_free(u);
}
END_TEST

/* A value can never end the field or the head: CR, LF, controls, DEL and
 * non-ASCII bytes are written as '?', and a value is cut at its bound. */
START_TEST(test_owned_values_are_sanitized_and_bounded)
{
    char out[8192];
    char big[GW_HTTP_OWNED_VALUE_MAX + 200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    struct gw_http_kv owned[] = {{"X-Client-Subject", "CN=a\r\nX-Admin: 1\x01\x7f\xc3\xa9 b"},
                                 {"X-Client-Cert-Sha256", big}};
    struct gw_http_fwd f = base_fwd;
    f.owned = owned;
    f.nowned = 2;
    struct gw_http_head *u = forward("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &f, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "x-client-subject", NULL), "CN=a??X-Admin: 1???? b");
    ck_assert_ptr_null(gw_http_head_get(u, "x-admin", NULL));
    size_t n = 0;
    gw_http_head_get(u, "x-client-cert-sha256", &n);
    ck_assert_uint_eq(n, GW_HTTP_OWNED_VALUE_MAX);
    gw_http_head_free(u);

    /* A name that is not a token, one of the gateway's own fields, a
     * hop-by-hop one or one of those a client never gets through, is
     * never written. */
    struct gw_http_kv odd[] = {{"Bad Name", "v"},
                               {"X-Forwarded-For", "6.6.6.6"},
                               {"Keep-Alive", "timeout=9"},
                               {"Proxy-Thing", "1"},
                               {"True-Client-IP", "6.6.6.6"}};
    f.owned = odd;
    f.nowned = sizeof odd / sizeof odd[0];
    u = forward("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &f, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-for", NULL), "192.0.2.7");
    ck_assert_uint_eq(gw_http_head_count(u, "x-forwarded-for"), 1);
    ck_assert_ptr_null(gw_http_head_get(u, "keep-alive", NULL));
    ck_assert_ptr_null(gw_http_head_get(u, "proxy-thing", NULL));
    ck_assert_ptr_null(gw_http_head_get(u, "true-client-ip", NULL));
    gw_http_head_free(u);
}
END_TEST

START_TEST(test_hop_by_hop_fields_are_removed)
{
    char out[4096];
    struct gw_http_head *u = forward("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n"
                                     "Keep-Alive: timeout=5\r\nProxy-Authorization: x\r\n"
                                     "Proxy-Connection: y\r\nTE: trailers\r\nTrailer: X\r\n"
                                     "Upgrade: websocket\r\nAccept: */*\r\n\r\n",
                                     &base_fwd, out, sizeof(out));
    static const char *const gone[] = {"connection",       "keep-alive", "proxy-authorization",
                                       "proxy-connection", "te",         "trailer",
                                       "upgrade",          NULL};
    for (int i = 0; gone[i]; i++)
        if (gw_http_head_get(u, gone[i], NULL))
            ck_abort_msg("%s forwarded", gone[i]);
    ck_assert_str_eq(gw_http_head_get(u, "accept", NULL), "*/*");
    ck_assert_str_eq(gw_http_head_get(u, "host", NULL), "a");
    ck_assert_uint_eq(u->version_minor, 1);
    gw_http_head_free(u);
}
END_TEST

START_TEST(test_fields_named_in_connection_are_removed_but_not_protected_ones)
{
    char out[4096];
    struct gw_http_fwd f = base_fwd;
    f.tls = true;
    struct gw_http_head *u =
        forward("POST /p HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, X-Forwarded-For, "
                "X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id, Host, Content-Length, "
                "Transfer-Encoding\r\nX-Secret: 1\r\nX-Forwarded-For: 10.0.0.1\r\n"
                "Content-Length: 2\r\n\r\nok",
                &f, out, sizeof(out));
    ck_assert_ptr_null(gw_http_head_get(u, "x-secret", NULL));
    ck_assert_str_eq(gw_http_head_get(u, "host", NULL), "a");
    ck_assert_str_eq(gw_http_head_get(u, "content-length", NULL), "2");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-for", NULL), "192.0.2.7");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-proto", NULL), "https");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-host", NULL), "a");
    ck_assert_str_eq(gw_http_head_get(u, "x-request-id", NULL), "rid-1");
    ck_assert_int_eq(u->framing, GW_HTTP_BODY_LENGTH);
    gw_http_head_free(u);
}
END_TEST

/* A Connection field listing only "keep-alive", "close" and hop-by-hop
 * names, then one naming a field before and after it: both copies of
 * that field go, on a request and on a response. */
START_TEST(test_a_later_connection_field_still_removes_what_it_names)
{
    char out[4096];
    struct gw_http_head *u =
        forward("GET / HTTP/1.1\r\nX-Early: 1\r\nConnection: keep-alive, close, TE\r\n"
                "Host: a\r\nX-Keep: k\r\nConnection: X-Early, x-late\r\nX-Late: 2\r\n\r\n",
                &base_fwd, out, sizeof(out));
    ck_assert_ptr_null(gw_http_head_get(u, "x-early", NULL));
    ck_assert_ptr_null(gw_http_head_get(u, "x-late", NULL));
    ck_assert_str_eq(gw_http_head_get(u, "x-keep", NULL), "k");
    gw_http_head_free(u);
    u = forward("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-Keep: k\r\n\r\n",
                &base_fwd, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "x-keep", NULL), "k");
    gw_http_head_free(u);
}
END_TEST

/* The parser looks for the Connection field that names fields once per
 * head (connection_at), so that no writer walks the fields for it again;
 * a head whose connection_at is 0 (built by hand) is looked at by the
 * writer itself, with the same result. */
START_TEST(test_parser_records_where_connection_names_start)
{
    struct gw_http_head *h = request("GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
    ck_assert_uint_eq(h->connection_at, h->nheaders + 1);
    gw_http_head_free(h);
    h = request("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close, TE\r\n\r\n");
    ck_assert_uint_eq(h->connection_at, h->nheaders + 1);
    gw_http_head_free(h);
    h = request("GET / HTTP/1.1\r\nX-Early: 1\r\nConnection: keep-alive\r\nHost: a\r\n"
                "Connection: X-Early\r\nX-Keep: k\r\n\r\n");
    ck_assert_uint_eq(h->connection_at, 4); /* index 3, the second Connection field */
    struct gw_http_head *dup = gw_http_head_dup(h);
    ck_assert_uint_eq(dup->connection_at, 4);
    gw_http_head_free(dup);
    char a[4096], b[4096];
    size_t na, nb;
    ck_assert_int_eq(gw_http_request_head_write(h, &base_fwd, a, sizeof a, &na), 0);
    h->connection_at = 0; /* as a head built by hand */
    ck_assert_int_eq(gw_http_request_head_write(h, &base_fwd, b, sizeof b, &nb), 0);
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(a, b, na), 0);
    a[na] = 0;
    ck_assert_ptr_null(strstr(a, "X-Early"));
    ck_assert_ptr_nonnull(strstr(a, "X-Keep: k"));
    gw_http_head_free(h);
    const char *resp = "HTTP/1.1 200 OK\r\nConnection: x-a\r\nX-A: 1\r\n\r\n";
    h = head_of(GW_HTTP_RESPONSE, resp, strlen(resp));
    ck_assert_uint_eq(h->connection_at, 1);
    gw_http_head_free(h);
}
END_TEST

START_TEST(test_x_forwarded_for_is_trusted_only_from_trusted_peers)
{
    char out[4096];
    const char *in = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n"
                     "X-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: https\r\n"
                     "X-Forwarded-Host: front.example\r\n\r\n";
    struct gw_http_head *u = forward(in, &base_fwd, out, sizeof(out));
    ck_assert_uint_eq(gw_http_head_count(u, "x-forwarded-for"), 1);
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-for", NULL), "192.0.2.7");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-proto", NULL), "http");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-host", NULL), "a");
    gw_http_head_free(u);

    struct gw_http_fwd f = base_fwd;
    f.peer_trusted = true;
    u = forward(in, &f, out, sizeof(out));
    ck_assert_uint_eq(gw_http_head_count(u, "x-forwarded-for"), 1);
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-for", NULL), "10.0.0.1, 10.0.0.2, 192.0.2.7");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-proto", NULL), "https");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-host", NULL), "front.example");
    gw_http_head_free(u);
}
END_TEST

/* What a client sends as Forwarded, X-Real-IP, X-Forwarded-Port and
 * X-Forwarded-Prefix, each twice, with a Connection field naming them. */
static const char *const spoofed =
    "GET /api/x HTTP/1.1\r\nHost: app.example:8080\r\n"
    "Connection: Forwarded, X-Real-IP, X-Forwarded-Port, X-Forwarded-Prefix\r\n"
    "Forwarded: for=6.6.6.6;host=evil.example;proto=https\r\nForwarded: for=7.7.7.7\r\n"
    "X-Real-IP: 6.6.6.6\r\nX-Real-IP: 7.7.7.7\r\n"
    "X-Forwarded-Port: 443\r\nX-Forwarded-Port: 1\r\n"
    "X-Forwarded-Prefix: /evil\r\nX-Forwarded-Prefix: /worse\r\n\r\n";

START_TEST(test_client_forwarding_fields_are_replaced_by_the_gateways)
{
    char out[4096];
    struct gw_http_fwd f = base_fwd;
    f.port = 8080;
    f.prefix = "/api";
    f.prefix_len = 4;
    struct gw_http_head *u = forward(spoofed, &f, out, sizeof(out));
    static const char *const names[] = {"forwarded", "x-real-ip", "x-forwarded-port",
                                        "x-forwarded-prefix", NULL};
    for (int i = 0; names[i]; i++)
        ck_assert_uint_eq(gw_http_head_count(u, names[i]), 1);
    ck_assert_str_eq(gw_http_head_get(u, "forwarded", NULL),
                     "for=192.0.2.7;host=\"app.example:8080\";proto=http");
    ck_assert_str_eq(gw_http_head_get(u, "x-real-ip", NULL), "192.0.2.7");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-port", NULL), "8080");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-prefix", NULL), "/api");
    gw_http_head_free(u);
    /* HTTP/1.0 without Host, no port known: no X-Forwarded-Port */
    f = base_fwd;
    u = forward("GET / HTTP/1.0\r\n\r\n", &f, out, sizeof(out));
    ck_assert_ptr_null(gw_http_head_get(u, "x-forwarded-port", NULL));
    gw_http_head_free(u);

    /* Nothing stripped: no prefix; an IPv6 peer is a quoted, bracketed
     * node; TLS is https. */
    f = base_fwd;
    f.client_addr = "2001:db8::1";
    f.tls = true;
    u = forward(spoofed, &f, out, sizeof(out));
    ck_assert_ptr_null(gw_http_head_get(u, "x-forwarded-prefix", NULL));
    ck_assert_str_eq(gw_http_head_get(u, "x-real-ip", NULL), "2001:db8::1");
    ck_assert_str_eq(gw_http_head_get(u, "forwarded", NULL),
                     "for=\"[2001:db8::1]\";host=\"app.example:8080\";proto=https");
    gw_http_head_free(u);

    /* No usable address (a Unix socket) is "unknown"; a host that is a
     * token is written bare; HTTP/1.0 without Host has no host= at all. */
    f = base_fwd;
    f.client_addr = "unix";
    u = forward("GET / HTTP/1.1\r\nHost: app.example\r\n\r\n", &f, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "forwarded", NULL),
                     "for=unknown;host=app.example;proto=http");
    gw_http_head_free(u);
    u = forward("GET / HTTP/1.0\r\n\r\n", &base_fwd, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "forwarded", NULL), "for=192.0.2.7;proto=http");
    gw_http_head_free(u);
}
END_TEST

START_TEST(test_forwarding_fields_are_kept_only_from_trusted_peers)
{
    char out[4096];
    struct gw_http_fwd f = base_fwd;
    f.peer_trusted = true;
    f.port = 8080;
    f.prefix = "/api";
    f.prefix_len = 4;
    struct gw_http_head *u = forward(spoofed, &f, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "forwarded", NULL),
                     "for=6.6.6.6;host=evil.example;proto=https, for=7.7.7.7, "
                     "for=192.0.2.7;host=\"app.example:8080\";proto=http");
    /* X-Real-IP is the client the gateway resolved, not the hop's own */
    ck_assert_str_eq(gw_http_head_get(u, "x-real-ip", NULL), "192.0.2.7");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-port", NULL), "443");
    /* the trusted hop's prefix, then what this route stripped */
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-prefix", NULL), "/evil/api");
    ck_assert_uint_eq(gw_http_head_count(u, "forwarded"), 1);
    ck_assert_uint_eq(gw_http_head_count(u, "x-real-ip"), 1);
    gw_http_head_free(u);
}
END_TEST

/* Behind a trusted proxy the gateway's client comes from X-Forwarded-For:
 * X-Real-IP names it, while the chain still ends with the peer. */
START_TEST(test_x_real_ip_is_the_resolved_client)
{
    char out[4096];
    struct gw_http_fwd f = base_fwd;
    f.peer_trusted = true;
    f.client = "203.0.113.9";
    struct gw_http_head *u = forward("GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 6.6.6.6\r\n"
                                     "X-Forwarded-For: 203.0.113.9\r\n\r\n",
                                     &f, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "x-real-ip", NULL), "203.0.113.9");
    ck_assert_uint_eq(gw_http_head_count(u, "x-real-ip"), 1);
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-for", NULL), "203.0.113.9, 192.0.2.7");
    gw_http_head_free(u);
}
END_TEST

START_TEST(test_route_edits_cannot_forge_forwarding_fields)
{
    char out[4096];
    static const struct gw_http_kv set[] = {{"forwarded", "for=1.2.3.4"},
                                            {"X-Real-IP", "1.2.3.4"},
                                            {"x-forwarded-port", "1"},
                                            {"x-forwarded-prefix", "/forged"}};
    static const char *const remove[] = {"forwarded", "x-real-ip", "x-forwarded-port",
                                         "x-forwarded-prefix"};
    struct gw_http_edits e = {
        .set = set, .nset = 4, .add = set, .nadd = 4, .remove = remove, .nremove = 4};
    struct gw_http_fwd f = base_fwd;
    f.edits = &e;
    f.port = 80;
    f.prefix = "/p";
    f.prefix_len = 2;
    struct gw_http_head *u = forward("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &f, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "forwarded", NULL), "for=192.0.2.7;host=a;proto=http");
    ck_assert_str_eq(gw_http_head_get(u, "x-real-ip", NULL), "192.0.2.7");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-port", NULL), "80");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-prefix", NULL), "/p");
    ck_assert_uint_eq(gw_http_head_count(u, "forwarded"), 1);
    ck_assert_uint_eq(gw_http_head_count(u, "x-real-ip"), 1);
    ck_assert_uint_eq(gw_http_head_count(u, "x-forwarded-port"), 1);
    ck_assert_uint_eq(gw_http_head_count(u, "x-forwarded-prefix"), 1);
    gw_http_head_free(u);
}
END_TEST

START_TEST(test_forwarded_port_is_the_port_the_client_addressed)
{
    /* Bound to 8080 behind a mapping from 80: the backend must build URLs
     * with the port in the Host the client used, else the scheme's. */
    static const struct {
        const char *head;
        bool tls;
        const char *port;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n", false, "80"},
        {"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n", true, "443"},
        {"GET / HTTP/1.1\r\nHost: app.example:8443\r\n\r\n", false, "8443"},
        {"GET / HTTP/1.1\r\nHost: app.example:\r\n\r\n", false, "80"},
        {"GET / HTTP/1.1\r\nHost: [2001:db8::1]:9000\r\n\r\n", false, "9000"},
        {"GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", false, "80"},
        {"GET / HTTP/1.1\r\nHost: 192.0.2.1:81\r\n\r\n", false, "81"},
        /* an absolute-form target's authority is what was addressed */
        {"GET http://b.example:82/ HTTP/1.1\r\nHost: b.example:82\r\n\r\n", false, "82"},
        /* HTTP/1.0 without Host: the port the client connected to */
        {"GET / HTTP/1.0\r\n\r\n", false, "8080"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[4096];
        struct gw_http_fwd f = base_fwd;
        f.port = 8080;
        f.tls = cases[i].tls;
        struct gw_http_head *u = forward(cases[i].head, &f, out, sizeof(out));
        const char *got = gw_http_head_get(u, "x-forwarded-port", NULL);
        if (!got || strcmp(got, cases[i].port) != 0)
            ck_abort_msg("%s: X-Forwarded-Port %s, expected %s", cases[i].head,
                         got ? got : "(none)", cases[i].port);
        ck_assert_uint_eq(gw_http_head_count(u, "x-forwarded-port"), 1);
        gw_http_head_free(u);
    }
}
END_TEST

START_TEST(test_client_fields_frameworks_trust_are_dropped)
{
    static const char *const names[] = {"X-Forwarded-Ssl",
                                        "X-Forwarded-Scheme",
                                        "X-Forwarded-Protocol",
                                        "X-Url-Scheme",
                                        "Front-End-Https",
                                        "X-Forwarded-Server",
                                        "X-Host",
                                        "X-Original-Host",
                                        "X-Original-URL",
                                        "X-Rewrite-URL",
                                        "X-Original-URI",
                                        "X-Forwarded-Uri",
                                        "X-Forwarded",
                                        "Forwarded-For",
                                        "True-Client-IP",
                                        "X-Client-IP",
                                        "Client-IP",
                                        "X-Cluster-Client-IP",
                                        "CF-Connecting-IP",
                                        "Fastly-Client-IP",
                                        "X-ProxyUser-Ip",
                                        "X-Originating-IP",
                                        "X-Remote-IP",
                                        "X-Remote-Addr",
                                        NULL};
    char in[4096], out[8192];
    size_t n = (size_t)snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: a\r\nX-Kept: 1\r\n");
    for (int i = 0; names[i]; i++)
        n += (size_t)snprintf(in + n, sizeof in - n, "%s: 6.6.6.6\r\n", names[i]);
    snprintf(in + n, sizeof in - n, "\r\n");
    /* from a trusted hop too: these are not fields the gateway vouches for */
    for (int trusted = 0; trusted < 2; trusted++) {
        struct gw_http_fwd f = base_fwd;
        f.peer_trusted = trusted;
        struct gw_http_head *u = forward(in, &f, out, sizeof(out));
        for (int i = 0; names[i]; i++)
            if (gw_http_head_get(u, names[i], NULL))
                ck_abort_msg("%s reached the upstream", names[i]);
        ck_assert_str_eq(gw_http_head_get(u, "x-kept", NULL), "1");
        gw_http_head_free(u);
    }
    /* a route may still set one: the operator's word, not the client's */
    static const struct gw_http_kv set[] = {{"x-forwarded-ssl", "on"}};
    struct gw_http_edits e = {.set = set, .nset = 1};
    struct gw_http_fwd f = base_fwd;
    f.edits = &e;
    struct gw_http_head *u = forward(in, &f, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-ssl", NULL), "on");
    ck_assert_uint_eq(gw_http_head_count(u, "x-forwarded-ssl"), 1);
    gw_http_head_free(u);
    /* an upstream's response keeps them: they are about requests */
    struct gw_http_head *r = head_of(
        GW_HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nX-Original-URL: /a\r\nContent-Length: 0\r\n\r\n",
        strlen("HTTP/1.1 200 OK\r\nX-Original-URL: /a\r\nContent-Length: 0\r\n\r\n"));
    size_t ol;
    enum gw_http_out_framing fr;
    bool ka;
    ck_assert_int_eq(
        gw_http_response_head_write(r, NULL, "rid", true, out, sizeof out, &ol, &fr, &ka), 0);
    out[ol] = 0;
    ck_assert_ptr_nonnull(strstr(out, "X-Original-URL: /a\r\n"));
    gw_http_head_free(r);
}
END_TEST

START_TEST(test_request_id_is_kept_when_valid_else_generated)
{
    size_t n;
    struct gw_http_head *h = request("GET / HTTP/1.1\r\nX-Request-Id: abc-123.Z:9_\r\n\r\n");
    ck_assert_str_eq(gw_http_request_id(h, "gen", &n), "abc-123.Z:9_");
    ck_assert_uint_eq(n, 12);
    gw_http_head_free(h);
    h = request("GET / HTTP/1.1\r\n\r\n");
    ck_assert_str_eq(gw_http_request_id(h, "gen", &n), "gen");
    gw_http_head_free(h);
    h = request("GET / HTTP/1.1\r\nX-Request-Id: a b<script>\r\n\r\n");
    ck_assert_str_eq(gw_http_request_id(h, "gen", NULL), "gen");
    gw_http_head_free(h);
    h = request("GET / HTTP/1.1\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n\r\n");
    ck_assert_str_eq(gw_http_request_id(h, "gen", NULL), "gen");
    gw_http_head_free(h);

    char out[4096];
    struct gw_http_fwd f = base_fwd;
    h = request("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: mine\r\n\r\n");
    f.request_id = gw_http_request_id(h, "gen", NULL);
    struct gw_http_head *u =
        forward("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: mine\r\n\r\n", &f, out, sizeof(out));
    gw_http_head_free(h);
    ck_assert_uint_eq(gw_http_head_count(u, "x-request-id"), 1);
    ck_assert_str_eq(gw_http_head_get(u, "x-request-id", NULL), "mine");
    gw_http_head_free(u);
}
END_TEST

START_TEST(test_path_host_and_traceparent)
{
    char out[4096];
    struct gw_http_fwd f = base_fwd;
    f.path = "/v2/users?id=1";
    f.path_len = strlen(f.path);
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    char in[512];
    snprintf(in, sizeof(in),
             "GET /api/users?id=1 HTTP/1.1\r\nHost: api.example\r\n"
             "traceparent: %s\r\n\r\n",
             tp);
    struct gw_http_head *u = forward(in, &f, out, sizeof(out));
    ck_assert_str_eq(u->target, "/v2/users?id=1");
    ck_assert_str_eq(gw_http_head_get(u, "host", NULL), "api.example");
    ck_assert_str_eq(gw_http_head_get(u, "traceparent", NULL), tp);
    gw_http_head_free(u);
    f.host_override = "backend.internal:9000";
    u = forward(in, &f, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "host", NULL), "backend.internal:9000");
    ck_assert_uint_eq(gw_http_head_count(u, "host"), 1);
    gw_http_head_free(u);
    f.path = "/bad path";
    f.path_len = strlen(f.path);
    struct gw_http_head *h = request(in);
    size_t n;
    ck_assert_int_eq(gw_http_request_head_write(h, &f, out, sizeof(out), &n), -EINVAL);
    gw_http_head_free(h);
}
END_TEST

START_TEST(test_absolute_form_authority_is_the_host)
{
    char out[4096];
    struct gw_http_fwd f = base_fwd;
    f.path = "/p";
    f.path_len = 2;
    struct gw_http_head *u = forward("GET http://api.example:8080/p HTTP/1.1\r\n"
                                     "Host: other.example\r\n\r\n",
                                     &f, out, sizeof(out));
    ck_assert_uint_eq(gw_http_head_count(u, "host"), 1);
    ck_assert_str_eq(gw_http_head_get(u, "host", NULL), "api.example:8080");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-host", NULL), "api.example:8080");
    ck_assert_str_eq(u->target, "/p");
    gw_http_head_free(u);
    f.host_override = "backend:9000";
    u = forward("GET http://api.example/p HTTP/1.1\r\nHost: api.example\r\n\r\n", &f, out,
                sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "host", NULL), "backend:9000");
    ck_assert_str_eq(gw_http_head_get(u, "x-forwarded-host", NULL), "api.example");
    gw_http_head_free(u);
}
END_TEST

START_TEST(test_chunked_request_is_forwarded_chunked_with_its_codings)
{
    char out[4096];
    struct gw_http_head *u = forward("POST / HTTP/1.1\r\nHost: a\r\n"
                                     "Transfer-Encoding: gzip, chunked\r\n\r\n",
                                     &base_fwd, out, sizeof(out));
    ck_assert_int_eq(u->framing, GW_HTTP_BODY_CHUNKED);
    ck_assert_str_eq(gw_http_head_get(u, "transfer-encoding", NULL), "gzip, chunked");
    ck_assert_ptr_null(gw_http_head_get(u, "content-length", NULL));
    gw_http_head_free(u);
}
END_TEST

START_TEST(test_upgrade_is_forwarded_only_when_tunnelling)
{
    char out[4096];
    const char *in = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
    struct gw_http_head *u = forward(in, &base_fwd, out, sizeof(out));
    ck_assert_ptr_null(gw_http_head_get(u, "upgrade", NULL));
    gw_http_head_free(u);
    struct gw_http_fwd f = base_fwd;
    f.tunnel = true;
    u = forward(in, &f, out, sizeof(out));
    ck_assert_str_eq(gw_http_head_get(u, "upgrade", NULL), "websocket");
    ck_assert(u->upgrade);
    ck_assert_str_eq(gw_http_head_get(u, "sec-websocket-key", NULL), "k");
    gw_http_head_free(u);
}
END_TEST

START_TEST(test_small_buffer_is_enospc)
{
    struct gw_http_head *h = request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    char out[32];
    size_t n = 12345;
    ck_assert_int_eq(gw_http_request_head_write(h, &base_fwd, out, sizeof(out), &n), -ENOSPC);
    ck_assert_uint_eq(n, 12345); /* out-params untouched on failure */
    gw_http_head_free(h);
}
END_TEST

/* --- client response heads ------------------------------------------------ */

static struct gw_http_head *respond(const char *upstream, const char *client_req, bool ka,
                                    enum gw_http_out_framing *fr, bool *ka_out, char *out,
                                    size_t cap)
{
    struct gw_http_head *r = head_of(GW_HTTP_RESPONSE, upstream, strlen(upstream));
    struct gw_http_head *q = request(client_req);
    size_t n;
    ck_assert_int_eq(gw_http_response_head_write(r, q, "rid-9", ka, out, cap, &n, fr, ka_out), 0);
    out[n] = 0;
    struct gw_http_head *c = head_of(GW_HTTP_RESPONSE, out, n);
    gw_http_head_free(r);
    gw_http_head_free(q);
    return c;
}

/* The client head written for upstream response `up` with route edits `e`. */
static struct gw_http_head *relayed(const char *up, const struct gw_http_edits *e)
{
    static char out[4096];
    struct gw_http_head *r = head_of(GW_HTTP_RESPONSE, up, strlen(up));
    size_t n;
    enum gw_http_out_framing fr;
    bool ka;
    ck_assert_int_eq(
        gw_http_response_head_write_edited(r, NULL, "rid", true, e, out, sizeof out, &n, &fr, &ka),
        0);
    gw_http_head_free(r);
    return head_of(GW_HTTP_RESPONSE, out, n);
}

/* True when the relayed head has exactly one Date, the gateway's: the IMF-fixdate
 * of a second between `from` and now. */
static bool gateway_date(const struct gw_http_head *c, time_t from)
{
    const char *v = gw_http_head_get(c, "date", NULL);
    char want[GW_HTTP_DATE_LEN + 1];
    for (time_t t = from; v && gw_http_head_count(c, "date") == 1 && t <= time(NULL); t++) {
        gw_http_date_format((int64_t)t, want);
        if (strcmp(v, want) == 0)
            return true;
    }
    return false;
}

START_TEST(test_relayed_response_gets_a_date_only_when_the_origin_sent_none)
{
    static const char origin[] = "Sun, 06 Nov 1994 08:49:37 GMT";
    time_t t0 = time(NULL);
    struct gw_http_head *c = relayed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL);
    ck_assert(gateway_date(c, t0));
    gw_http_head_free(c);
    c = relayed("HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                "Content-Length: 0\r\n\r\n",
                NULL);
    ck_assert_str_eq(gw_http_head_get(c, "date", NULL), origin); /* the origin's is kept */
    ck_assert_uint_eq(gw_http_head_count(c, "date"), 1);
    gw_http_head_free(c);
    /* the origin's dropped by its own Connection field or by a route: ours */
    c = relayed("HTTP/1.1 200 OK\r\nConnection: date\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                "Content-Length: 0\r\n\r\n",
                NULL);
    ck_assert(gateway_date(c, t0));
    gw_http_head_free(c);
    static const char *const rm[] = {"Date"};
    struct gw_http_edits remove = {.remove = rm, .nremove = 1};
    c = relayed("HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                "Content-Length: 0\r\n\r\n",
                &remove);
    ck_assert(gateway_date(c, t0));
    gw_http_head_free(c);
    /* a route that sets one has the last word: still one Date */
    static const struct gw_http_kv set[] = {{"date", "Mon, 07 Nov 1994 08:49:37 GMT"}};
    struct gw_http_edits setting = {.set = set, .nset = 1};
    c = relayed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &setting);
    ck_assert_str_eq(gw_http_head_get(c, "date", NULL), "Mon, 07 Nov 1994 08:49:37 GMT");
    ck_assert_uint_eq(gw_http_head_count(c, "date"), 1);
    gw_http_head_free(c);
    /* an interim response stays as it was */
    c = relayed("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", NULL);
    ck_assert_uint_eq(gw_http_head_count(c, "date"), 0);
    gw_http_head_free(c);
}
END_TEST

/* Checked edits (a policy chain's answer fields) are written as given:
 * byte for byte what the checking writer writes for them, and they still
 * replace the upstream's fields of their names. Unchecked edits are still
 * checked: a value that would end the field, a protected name or a name
 * that is no token are never written. */
START_TEST(test_checked_edits_are_written_as_the_checking_writer_writes_them)
{
    static const char up[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nRateLimit: up\r\n"
                             "ratelimit-policy: up\r\nVary: Cookie\r\n\r\n";
    static const struct gw_http_kv set[] = {{"RateLimit-Policy", "\"gw\";q=10;w=1"},
                                            {"RateLimit", "\"gw\";r=9;t=1"}};
    static const struct gw_http_kv add[] = {{"Vary", "Origin"}};
    struct gw_http_edits e = {.set = set, .nset = 2, .add = add, .nadd = 1};
    char out[2][4096];
    size_t n[2];
    for (int checked = 0; checked < 2; checked++) {
        e.checked = checked;
        struct gw_http_head *r = head_of(GW_HTTP_RESPONSE, up, sizeof up - 1);
        enum gw_http_out_framing fr;
        bool ka;
        ck_assert_int_eq(gw_http_response_head_write_edited(r, NULL, "rid", true, &e, out[checked],
                                                            sizeof out[checked], &n[checked], &fr,
                                                            &ka),
                         0);
        gw_http_head_free(r);
        struct gw_http_head *c = head_of(GW_HTTP_RESPONSE, out[checked], n[checked]);
        ck_assert_uint_eq(gw_http_head_count(c, "ratelimit"), 1);
        ck_assert_str_eq(gw_http_head_get(c, "ratelimit", NULL), "\"gw\";r=9;t=1");
        ck_assert_uint_eq(gw_http_head_count(c, "ratelimit-policy"), 1);
        ck_assert_str_eq(gw_http_head_get(c, "ratelimit-policy", NULL), "\"gw\";q=10;w=1");
        ck_assert_uint_eq(gw_http_head_count(c, "vary"), 2);
        gw_http_head_free(c);
    }
    ck_assert_uint_eq(n[0], n[1]);
    ck_assert(memcmp(out[0], out[1], n[0]) == 0);

    static const struct gw_http_kv bad[] = {{"X-Split", "a\r\nX-Injected: 1"},
                                            {"X-Lf", "a\nX-Injected: 2"},
                                            {"Transfer-Encoding", "chunked"},
                                            {"Content-Length", "9"},
                                            {"X-Request-Id", "forged"},
                                            {"Bad Name", "v"},
                                            {"", "v"},
                                            {"X-Fine", "kept"}};
    struct gw_http_edits unchecked = {.add = bad, .nadd = sizeof bad / sizeof bad[0]};
    struct gw_http_head *c = relayed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &unchecked);
    ck_assert_uint_eq(c->nheaders, 4); /* X-Fine, Date, Content-Length, X-Request-Id */
    ck_assert_str_eq(gw_http_head_get(c, "x-fine", NULL), "kept");
    ck_assert_str_eq(gw_http_head_get(c, "content-length", NULL), "0");
    ck_assert_str_eq(gw_http_head_get(c, "x-request-id", NULL), "rid");
    ck_assert_ptr_null(gw_http_head_get(c, "x-injected", NULL));
    ck_assert_ptr_null(gw_http_head_get(c, "transfer-encoding", NULL));
    gw_http_head_free(c);
}
END_TEST

START_TEST(test_response_hop_by_hop_removed_and_request_id_echoed)
{
    char out[4096];
    enum gw_http_out_framing fr;
    bool ka;
    struct gw_http_head *c = respond("HTTP/1.1 200 OK\r\nConnection: X-Internal\r\n"
                                     "X-Internal: secret\r\nKeep-Alive: timeout=1\r\n"
                                     "X-Request-Id: upstream-id\r\nContent-Length: 2\r\n"
                                     "ETag: \"e\"\r\n\r\n",
                                     "GET / HTTP/1.1\r\n\r\n", true, &fr, &ka, out, sizeof(out));
    ck_assert_ptr_null(gw_http_head_get(c, "x-internal", NULL));
    ck_assert_ptr_null(gw_http_head_get(c, "keep-alive", NULL));
    ck_assert_uint_eq(gw_http_head_count(c, "x-request-id"), 1);
    ck_assert_str_eq(gw_http_head_get(c, "x-request-id", NULL), "rid-9");
    ck_assert_str_eq(gw_http_head_get(c, "etag", NULL), "\"e\"");
    ck_assert_int_eq(fr, GW_HTTP_OUT_LENGTH);
    ck_assert(ka);
    ck_assert(c->keep_alive);
    gw_http_head_free(c);
}
END_TEST

START_TEST(test_response_framing_for_the_client)
{
    char out[4096];
    enum gw_http_out_framing fr;
    bool ka;
    /* read-until-close upstream body: chunked to an HTTP/1.1 client */
    struct gw_http_head *c = respond("HTTP/1.1 200 OK\r\n\r\n", "GET / HTTP/1.1\r\n\r\n", true, &fr,
                                     &ka, out, sizeof(out));
    ck_assert_int_eq(fr, GW_HTTP_OUT_CHUNKED);
    ck_assert_int_eq(c->framing, GW_HTTP_BODY_CHUNKED);
    ck_assert(ka);
    gw_http_head_free(c);
    /* ... and close-delimited to an HTTP/1.0 client */
    c = respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, &fr, &ka, out,
                sizeof(out));
    ck_assert_int_eq(fr, GW_HTTP_OUT_CLOSE);
    ck_assert(!ka);
    ck_assert_str_eq(gw_http_head_get(c, "connection", NULL), "close");
    gw_http_head_free(c);
    /* HEAD: no body, the length the body would have stated */
    c = respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD / HTTP/1.1\r\n\r\n", true,
                &fr, &ka, out, sizeof(out));
    ck_assert_int_eq(fr, GW_HTTP_OUT_NONE);
    ck_assert_str_eq(gw_http_head_get(c, "content-length", NULL), "5");
    ck_assert(ka);
    gw_http_head_free(c);
    c = respond("HTTP/1.1 204 No Content\r\n\r\n", "DELETE /x HTTP/1.1\r\n\r\n", true, &fr, &ka,
                out, sizeof(out));
    ck_assert_int_eq(fr, GW_HTTP_OUT_NONE);
    gw_http_head_free(c);
    /* the connection process asks to close */
    c = respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET / HTTP/1.1\r\n\r\n", false,
                &fr, &ka, out, sizeof(out));
    ck_assert(!ka);
    ck_assert(!c->keep_alive);
    gw_http_head_free(c);
}
END_TEST

START_TEST(test_chunk_encoder_round_trips_through_the_parser)
{
    char wire[256];
    int n = snprintf(wire, sizeof(wire), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    const char *pieces[] = {"hello", " ", "chunked world"};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(pieces[i]);
        n += gw_http_chunk_start(len, wire + n, sizeof(wire) - (size_t)n);
        memcpy(wire + n, pieces[i], len);
        n += (int)len;
        n += gw_http_chunk_end(wire + n, sizeof(wire) - (size_t)n);
    }
    n += gw_http_chunk_last(wire + n, sizeof(wire) - (size_t)n);
    ck_assert_int_eq(gw_http_chunk_start(0, wire, sizeof(wire)), -EINVAL);
    ck_assert_int_eq(gw_http_chunk_start(0x1234, wire, 3), -ENOSPC);

    struct gw_http_parser *p;
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    lim.require_host = false;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, &lim), 0);
    char body[64];
    size_t blen = 0, off = 0;
    bool done = false;
    while (!done) {
        size_t used;
        struct gw_http_event ev;
        ck_assert_int_eq(gw_http_parser_feed(p, wire + off, (size_t)n - off, &used, &ev), 0);
        off += used;
        if (ev.type == GW_HTTP_EV_HEAD)
            gw_http_head_free(ev.head);
        else if (ev.type == GW_HTTP_EV_BODY) {
            memcpy(body + blen, ev.data, ev.len);
            blen += ev.len;
        } else if (ev.type == GW_HTTP_EV_DONE)
            done = true;
        else
            ck_abort_msg("incomplete");
    }
    ck_assert_uint_eq(off, (size_t)n);
    ck_assert_uint_eq(blen, 19);
    ck_assert(memcmp(body, "hello chunked world", 19) == 0);
    gw_http_parser_free(p);
}
END_TEST

START_TEST(test_json_error_response)
{
    char out[1024];
    size_t n;
    ck_assert_int_eq(
        gw_http_error_write(502, "upstream \"a\" failed\n", "rid-1", true, out, sizeof(out), &n),
        0);
    struct gw_http_parser *p;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_RESPONSE, NULL), 0);
    size_t used;
    struct gw_http_event ev;
    ck_assert_int_eq(gw_http_parser_feed(p, out, n, &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    struct gw_http_head *h = ev.head;
    ck_assert_int_eq(h->status, 502);
    ck_assert_str_eq(h->reason, "Bad Gateway");
    ck_assert_str_eq(gw_http_head_get(h, "content-type", NULL), "application/json");
    ck_assert_str_eq(gw_http_head_get(h, "x-request-id", NULL), "rid-1");
    ck_assert(!h->keep_alive);
    ck_assert_uint_eq(h->content_length, n - used);
    json_error_t err;
    json_t *j = json_loadb(out + used, n - used, 0, &err);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "upstream \"a\" failed\n");
    ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "rid-1");
    json_decref(j);
    gw_http_head_free(h);
    gw_http_parser_free(p);

    ck_assert_int_eq(gw_http_error_write(404, NULL, NULL, false, out, sizeof(out) - 1, &n), 0);
    out[n] = 0;
    const char *body = strstr(out, "\r\n\r\n") + 4;
    j = json_loads(body, 0, &err);
    ck_assert_ptr_nonnull(j);
    ck_assert(json_is_null(json_object_get(j, "request_id")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "Not Found");
    json_decref(j);
    ck_assert_int_eq(gw_http_error_write(400, "x", "r", true, out, 40, &n), -ENOSPC);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_forward");
    TCase *t = tcase_create("request");
    tcase_add_test(t, test_hop_by_hop_fields_are_removed);
    tcase_add_test(t, test_fields_named_in_connection_are_removed_but_not_protected_ones);
    tcase_add_test(t, test_a_later_connection_field_still_removes_what_it_names);
    tcase_add_test(t, test_x_forwarded_for_is_trusted_only_from_trusted_peers);
    tcase_add_test(t, test_client_forwarding_fields_are_replaced_by_the_gateways);
    tcase_add_test(t, test_forwarding_fields_are_kept_only_from_trusted_peers);
    tcase_add_test(t, test_x_real_ip_is_the_resolved_client);
    tcase_add_test(t, test_route_edits_cannot_forge_forwarding_fields);
    tcase_add_test(t, test_request_id_is_kept_when_valid_else_generated);
    tcase_add_test(t, test_forwarded_port_is_the_port_the_client_addressed);
    tcase_add_test(t, test_client_fields_frameworks_trust_are_dropped);
    tcase_add_test(t, test_path_host_and_traceparent);
    tcase_add_test(t, test_absolute_form_authority_is_the_host);
    tcase_add_test(t, test_chunked_request_is_forwarded_chunked_with_its_codings);
    tcase_add_test(t, test_upgrade_is_forwarded_only_when_tunnelling);
    tcase_add_test(t, test_small_buffer_is_enospc);
    suite_add_tcase(s, t);
    t = tcase_create("response");
    tcase_add_test(t, test_relayed_response_gets_a_date_only_when_the_origin_sent_none);
    tcase_add_test(t, test_checked_edits_are_written_as_the_checking_writer_writes_them);
    tcase_add_test(t, test_response_hop_by_hop_removed_and_request_id_echoed);
    tcase_add_test(t, test_response_framing_for_the_client);
    tcase_add_test(t, test_chunk_encoder_round_trips_through_the_parser);
    tcase_add_test(t, test_json_error_response);
    tcase_add_test(t, test_owned_fields_replace_what_the_client_sent);
    tcase_add_test(t, test_parser_records_where_connection_names_start);
    tcase_add_test(t, test_owned_values_are_sanitized_and_bounded);
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
