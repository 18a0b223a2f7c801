/* test_transport.c: the TLS session transport's reading of records. The
 * socket is read for everything it holds, not a record's header and body
 * apart; what mbedtls did not ask for yet is kept (the read-ahead), reported
 * as pending, and given back as soon as it is served. Records cut anywhere
 * by the network still read whole. A server transport (gw__tls_transport_new
 * over a listener's configuration) faces a plain mbedtls client over a
 * socketpair; reads use timeout 0, so no runtime is needed. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "exchange.h"
#include "tls/tls_int.h"
#include "tls_test.h"

/* The client's BIO: to the socket, or into `held` while holding (the test
 * then hands the bytes to the socket in pieces of its choosing). */
struct client {
    int fd;
    bool hold;
    unsigned char held[65536];
    size_t nheld;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
};

static int c_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct client *c = ctx;
    if (c->hold) {
        ck_assert_uint_le(c->nheld + len, sizeof c->held);
        memcpy(c->held + c->nheld, buf, len);
        c->nheld += len;
        return (int)len;
    }
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_SEND_FAILED;
    return (int)n;
}

static int c_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct client *c = ctx;
    ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_READ : MBEDTLS_ERR_NET_RECV_FAILED;
    return (int)n;
}

struct pair {
    struct gw_tls_certset *certs;
    struct gw_tls_server *srv;
    struct gw__transport *st; /* the server's transport */
    int sfd;
    struct client c;
};

static void release_srv(void *srv)
{
    gw_tls_server_unref(srv);
}

/* A listener's configuration with the standard set's EC certificate, a
 * server transport and a client, handshaken. */
static void pair_open(struct pair *p)
{
    memset(p, 0, sizeof *p);
    ck_assert_int_eq(gw_tls_init(), 0);
    struct gw_tls_cert_config cert = {.cert = P("ec.pem"), .key = P("ec.key")};
    struct gw_tls_listener_config cfg = {.enabled = true, .certs = &cert, .ncerts = 1};
    char err[512] = "";
    ck_assert_msg(gw_tls_certset_load(&cfg, &p->certs, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(gw_tls_server_new(&cfg, p->certs, &p->srv, err, sizeof err) == 0, "%s", err);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p->sfd = sv[0];
    p->c.fd = sv[1];
    ck_assert_int_eq(gw__tls_transport_new(sv[0], &p->srv->conf, gw__tls_server_ref(p->srv),
                                           release_srv, &p->st),
                     0);

    struct client *c = &p->c;
    mbedtls_ssl_config_init(&c->conf);
    ck_assert_int_eq(mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
                                                 MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT),
                     0);
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_rng(&c->conf, gw_tls_rng, NULL);
    mbedtls_ssl_init(&c->ssl);
    ck_assert_int_eq(mbedtls_ssl_setup(&c->ssl, &c->conf), 0);
    mbedtls_ssl_set_bio(&c->ssl, c, c_send, c_recv, NULL);

    mbedtls_ssl_context *ss = gw__tls_transport_ssl(p->st);
    int rs = -1, rc = -1;
    for (int i = 0; i < 1000 && (rs != 0 || rc != 0); i++) {
        if (rc != 0)
            rc = mbedtls_ssl_handshake(&c->ssl);
        if (rs != 0)
            rs = mbedtls_ssl_handshake(ss);
        ck_assert_msg(rc == 0 || rc == MBEDTLS_ERR_SSL_WANT_READ, "client: -0x%x", -rc);
        ck_assert_msg(rs == 0 || rs == MBEDTLS_ERR_SSL_WANT_READ, "server: -0x%x", -rs);
    }
    ck_assert_int_eq(rs, 0);
    ck_assert_int_eq(rc, 0);
}

static void pair_close(struct pair *p)
{
    p->st->ops->close(p->st); /* closes sfd */
    mbedtls_ssl_free(&p->c.ssl);
    mbedtls_ssl_config_free(&p->c.conf);
    close(p->c.fd);
    gw_tls_server_unref(p->srv);
    gw_tls_certset_unref(p->certs);
}

/* One record from the client: `len` bytes of `s` (at most 16 KiB). */
static void client_record(struct pair *p, const void *s, size_t len)
{
    int n = mbedtls_ssl_write(&p->c.ssl, s, len);
    ck_assert_int_eq(n, (int)len);
}

static int socket_holds(int fd)
{
    int n = -1;
    ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

static const char req_a[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
static const char req_b[] = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";

START_TEST(one_socket_read_takes_every_record_the_socket_holds)
{
    struct pair p;
    pair_open(&p);
    client_record(&p, req_a, strlen(req_a));
    client_record(&p, req_b, strlen(req_b));
    ck_assert_int_gt(socket_holds(p.sfd), 0);

    char buf[4096];
    ssize_t n = p.st->ops->read(p.st, buf, sizeof buf, 0);
    ck_assert_int_eq(n, (ssize_t)strlen(req_a));
    ck_assert_mem_eq(buf, req_a, (size_t)n);
    /* The second record left the socket with the first... */
    ck_assert_int_eq(socket_holds(p.sfd), 0);
    ck_assert_uint_gt(gw__tls_transport_read_ahead(p.st), 0);
    /* ...so it is pending: nobody may sleep on the socket for it. */
    ck_assert(gw_tls_transport_pending(p.st));
    ck_assert_int_eq(p.st->ops->wait(p.st, RT_POLL_IN, 0), (int)RT_POLL_IN);

    n = p.st->ops->read(p.st, buf, sizeof buf, 0);
    ck_assert_int_eq(n, (ssize_t)strlen(req_b));
    ck_assert_mem_eq(buf, req_b, (size_t)n);
    ck_assert_int_eq(p.st->ops->read(p.st, buf, sizeof buf, 0), -EAGAIN);
    ck_assert(!gw_tls_transport_pending(p.st));
    pair_close(&p);
}
END_TEST

START_TEST(read_ahead_is_given_back_once_served)
{
    struct pair p;
    pair_open(&p);
    char buf[4096];
    for (int round = 0; round < 3; round++) {
        client_record(&p, req_a, strlen(req_a));
        client_record(&p, req_b, strlen(req_b));
        ck_assert_int_eq(p.st->ops->read(p.st, buf, sizeof buf, 0), (ssize_t)strlen(req_a));
        ck_assert_uint_gt(gw__tls_transport_read_ahead(p.st), 0);
        ck_assert_int_eq(p.st->ops->read(p.st, buf, sizeof buf, 0), (ssize_t)strlen(req_b));
        /* Between requests the connection holds no read-ahead (LeakSanitizer
         * and the close below see the rest). */
        ck_assert_uint_eq(gw__tls_transport_read_ahead(p.st), 0);
        ck_assert_int_eq(p.st->ops->read(p.st, buf, sizeof buf, 0), -EAGAIN);
    }
    /* Closed with bytes still held: they go with the session. */
    client_record(&p, req_a, strlen(req_a));
    client_record(&p, req_b, strlen(req_b));
    ck_assert_int_eq(p.st->ops->read(p.st, buf, sizeof buf, 0), (ssize_t)strlen(req_a));
    ck_assert_uint_gt(gw__tls_transport_read_ahead(p.st), 0);
    pair_close(&p);
}
END_TEST

/* Reads everything the server can without waiting, appended to out. */
static size_t drain(struct pair *p, char *out, size_t have, size_t cap)
{
    for (;;) {
        ssize_t n = p->st->ops->read(p->st, out + have, cap - have, 0);
        if (n == -EAGAIN)
            return have;
        ck_assert_int_gt(n, 0);
        have += (size_t)n;
    }
}

START_TEST(records_cut_anywhere_read_whole_and_in_order)
{
    static char want[40000], got[40000];
    size_t nwant = 0;
    struct pair p;
    pair_open(&p);
    /* Pipelined requests in small records, a full-size record (a large
     * body) and more small ones, as the network may cut them: pieces of
     * 1, 2, 3, 5, 8, ... bytes, cutting headers, bodies and boundaries. */
    p.c.hold = true;
    client_record(&p, req_a, strlen(req_a));
    memcpy(want + nwant, req_a, strlen(req_a));
    nwant += strlen(req_a);
    static char big[16384];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    client_record(&p, big, sizeof big);
    memcpy(want + nwant, big, sizeof big);
    nwant += sizeof big;
    for (int i = 0; i < 20; i++) {
        const char *r = i % 2 ? req_a : req_b;
        client_record(&p, r, strlen(r));
        memcpy(want + nwant, r, strlen(r));
        nwant += strlen(r);
    }
    client_record(&p, big, 9000);
    memcpy(want + nwant, big, 9000);
    nwant += 9000;
    p.c.hold = false;

    size_t off = 0, have = 0, a = 1, b = 2;
    while (off < p.c.nheld) {
        size_t piece = a < p.c.nheld - off ? a : p.c.nheld - off;
        ck_assert_int_eq(send(p.c.fd, p.c.held + off, piece, 0), (ssize_t)piece);
        off += piece;
        have = drain(&p, got, have, sizeof got);
        size_t next = a + b;
        a = b;
        b = next > 20000 ? 1 : next;
    }
    ck_assert_uint_eq(have, nwant);
    ck_assert_mem_eq(got, want, nwant);
    ck_assert_uint_eq(gw__tls_transport_read_ahead(p.st), 0);
    pair_close(&p);
}
END_TEST

/* Everything the socket held in one go, many records at once. */
START_TEST(many_records_in_one_socket_read_all_come_out)
{
    static char want[40000], got[40000];
    size_t nwant = 0;
    struct pair p;
    pair_open(&p);
    p.c.hold = true;
    for (int i = 0; i < 200; i++) {
        const char *r = i % 3 ? req_a : req_b;
        client_record(&p, r, strlen(r));
        memcpy(want + nwant, r, strlen(r));
        nwant += strlen(r);
    }
    p.c.hold = false;
    ck_assert_int_eq(send(p.c.fd, p.c.held, p.c.nheld, 0), (ssize_t)p.c.nheld);
    size_t have = drain(&p, got, 0, sizeof got);
    ck_assert_uint_eq(have, nwant);
    ck_assert_mem_eq(got, want, nwant);
    ck_assert_uint_eq(gw__tls_transport_read_ahead(p.st), 0);
    pair_close(&p);
}
END_TEST

/* A response head and a short body (the exchange's writev) go out as one
 * record, gathered without an allocation: this test runs outside any
 * process, where rt_alloc has no process to allocate for and fails, as a
 * per-write allocation did before (and cost every answer a malloc and a
 * free). */
START_TEST(writev_pieces_go_out_as_one_record_without_an_allocation)
{
    struct pair p;
    pair_open(&p);
    static const char head[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
    struct iovec iov[3] = {{(void *)head, strlen(head)}, {(void *)"o", 1}, {(void *)"k", 1}};
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(p.st->ops->writev(p.st, iov, 3, 0), 0);
        /* One record: one read of the client's takes all of it. */
        char got[256];
        int n = mbedtls_ssl_read(&p.c.ssl, (unsigned char *)got, sizeof got);
        ck_assert_int_eq(n, (int)strlen(head) + 2);
        ck_assert_mem_eq(got, head, strlen(head));
        ck_assert_mem_eq(got + strlen(head), "ok", 2);
        ck_assert_int_eq(socket_holds(p.c.fd), 0);
    }
    pair_close(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls_transport");
    TCase *tc = tcase_create("records");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, one_socket_read_takes_every_record_the_socket_holds);
    tcase_add_test(tc, read_ahead_is_given_back_once_served);
    tcase_add_test(tc, records_cut_anywhere_read_whole_and_in_order);
    tcase_add_test(tc, many_records_in_one_socket_read_all_come_out);
    tcase_add_test(tc, writev_pieces_go_out_as_one_record_without_an_allocation);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
