/* test_accept.c: the server's handshake (gw_tls_accept) run in a process,
 * with the client on the other end of a socketpair driven from the test's
 * thread. A plaintext HTTP request on the TLS port is answered 400 and
 * counted as a "plaintext" failure: counted before the answer goes out, so
 * a client that has read the answer finds the failure in /metrics, while
 * the connection still lingers (up to a second) for the client to close. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "rt/rt.h"
#include "tls/tls.h"
#include "tls_test.h"

struct accept_run {
    struct gw_tls_listener *tl;
    int fd;
    int rc;
    enum gw_tls_fail why;
};

static void accept_main(void *arg)
{
    struct accept_run *a = arg;
    struct gw__transport *t = NULL;
    struct gw_tls_peer peer;
    a->rc = gw_tls_accept(a->tl, a->fd, 5000, &t, &peer, &a->why);
}

START_TEST(a_plaintext_request_is_counted_before_its_answer_is_read)
{
    struct gw_tls_cert_config cert = {.cert = P("ec.pem"), .key = P("ec.key")};
    struct gw_listener_config cfg = {.name = "public",
                                     .tls = {.enabled = true, .certs = &cert, .ncerts = 1}};
    struct accept_run a = {.rc = 1};
    char err[512] = "";
    ck_assert_msg(gw_tls_listener_init(&cfg, &a.tl, err, sizeof err) == 0, "%s", err);
    struct rt_config rc;
    rt_config_default(&rc);
    rc.schedulers = 1;
    ck_assert_int_eq(rt_start(&rc), 0);

    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* A bound on the client's reads, should the answer never come. */
    struct timeval tv = {.tv_sec = 10};
    ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    a.fd = sv[0];
    uint64_t before = gw_tls_failures(true, GW_TLS_FAIL_PLAINTEXT);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(accept_main, &a, NULL, &pid), 0);

    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(sv[1], req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    /* The whole answer: the server stops sending after it (EOF here), then
     * reads what the client sends until the client closes. */
    char got[1024];
    size_t have = 0;
    for (;;) {
        ck_assert_uint_lt(have, sizeof got - 1);
        ssize_t n = recv(sv[1], got + have, sizeof got - 1 - have, 0);
        ck_assert_msg(n >= 0, "recv: %s", strerror(errno));
        if (n == 0)
            break;
        have += (size_t)n;
    }
    got[have] = '\0';
    ck_assert_msg(strncmp(got, "HTTP/1.1 400 ", 13) == 0, "%s", got);
    /* The client has its answer and has not closed: the server lingers,
     * and the failure is already counted. */
    ck_assert_uint_eq(gw_tls_failures(true, GW_TLS_FAIL_PLAINTEXT), before + 1);

    close(sv[1]);
    ck_assert_int_eq(rt_join(pid, 10000, NULL), 0);
    ck_assert_int_eq(a.rc, -EPROTO);
    ck_assert_int_eq(a.why, GW_TLS_FAIL_PLAINTEXT);
    /* Once, not again when the handshake gives up. */
    ck_assert_uint_eq(gw_tls_failures(true, GW_TLS_FAIL_PLAINTEXT), before + 1);
    ck_assert_int_eq(rt_stop(), 0);
    gw_tls_listener_free(a.tl);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls_accept");
    TCase *tc = tcase_create("accept");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_plaintext_request_is_counted_before_its_answer_is_read);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
