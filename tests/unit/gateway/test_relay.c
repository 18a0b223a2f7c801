/* test_relay.c: one upstream attempt (gateway/src/relay.c) over socketpairs.
 *
 * The test process plays the request process: it holds an exchange whose
 * client socket is one end of a socketpair, parses the request head into
 * it as the connection process would, and runs the attempt on one end of
 * another socketpair. Scripted peers (processes) sit on the other ends: an
 * upstream that reads the request and answers from a script, and, for
 * bodies larger than a socket buffer, a client that writes the body. What
 * the client received is read once the attempt returned. No route table,
 * pool or target takes part: the attempt's reports and 101s come through
 * its callbacks. */
#include "../otp/otp_test.h"

#include <errno.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

static int64_t scaled(int64_t ms)
{
    const char *s = getenv("TANDEM_TEST_TIME_SCALE");
    int k = s ? atoi(s) : 1;
    return ms * (k > 0 ? k : 1);
}

#define PEER_CAP (1u << 20)

struct piece {
    const char *d;
    size_t n; /* 0: strlen(d) */
    uint32_t pause_ms;
};

/* A scripted peer on one end of a socketpair: reads until it has `expect`
 * bytes or what it read ends with `until` (neither: reads nothing), then
 * writes its pieces, then keeps the connection open for hold_ms, then
 * closes it (unless keep_open: the test closes it). */
struct peer {
    int fd;
    size_t expect;
    const char *until;
    char *got;
    size_t got_len;
    struct piece out[6];
    uint32_t hold_ms;
    bool keep_open;
    bool running;
    rt_ref mon;
};

static bool ends_with(const char *b, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n >= k && memcmp(b + n - k, s, k) == 0;
}

static void peer_main(void *arg)
{
    struct peer *p = arg;
    while (p->expect || p->until) {
        if (p->expect && p->got_len >= p->expect)
            break;
        if (p->until && ends_with(p->got, p->got_len, p->until))
            break;
        ssize_t n = rt_read(p->fd, p->got + p->got_len, PEER_CAP - p->got_len, scaled(5000));
        if (n <= 0)
            break;
        p->got_len += (size_t)n;
    }
    for (size_t i = 0; i < sizeof p->out / sizeof p->out[0] && p->out[i].d; i++) {
        if (p->out[i].pause_ms)
            rt_sleep((uint64_t)scaled(p->out[i].pause_ms));
        size_t n = p->out[i].n ? p->out[i].n : strlen(p->out[i].d);
        if (rt_write(p->fd, p->out[i].d, n, scaled(5000)) < 0)
            break;
    }
    if (p->hold_ms)
        rt_sleep((uint64_t)scaled(p->hold_ms));
    if (!p->keep_open) {
        rt_close(p->fd);
        p->fd = -1;
    }
}

/* What one test holds: the exchange, the attempt and the two peers. */
struct fx {
    int c[2]; /* the exchange's end, the client's end */
    int u[2]; /* the attempt's end, the upstream's end */
    struct gw__listener lis;
    struct gw__exchange ex;
    struct gw__ex_req req;    /* the exchange's request part */
    struct gw__transport tp;  /* borrows c[0] */
    struct gw__transport utp; /* borrows u[0] */
    struct gw__relay r;
    struct peer up, cl;
    int reports_ok, reports_failed;
    int at_report; /* bytes the client could read when success was reported */
    char what[128];
    int upgrades;
    char pending[64];
    size_t plen;
    char *out; /* what the client received */
    size_t out_len;
};

static struct fx F;

static void t_reset(void)
{
    memset(&F, 0, sizeof F);
}

static void fx_report(void *ctx, bool ok, const char *what)
{
    struct fx *f = ctx;
    if (ok) {
        f->reports_ok++;
        T_EQ(ioctl(f->c[1], FIONREAD, &f->at_report), 0);
        return;
    }
    f->reports_failed++;
    snprintf(f->what, sizeof f->what, "%s", what);
}

static void fx_upgrade(void *ctx, struct gw__transport *up, const struct gw_http_head *resp,
                       const char *pending, size_t plen)
{
    struct fx *f = ctx;
    T_ASSERT(up == &f->utp);
    T_EQ(resp->status, 101);
    f->upgrades++;
    T_ASSERT(plen < sizeof f->pending);
    memcpy(f->pending, pending, plen);
    f->plen = plen;
}

/* The exchange with `request` (its head whole, maybe some body) read from
 * the client, and the attempt that sends `up_head` upstream. */
static void fx_open(const char *request, const char *up_head)
{
    struct fx *f = &F;
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->c), 0);
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->u), 0);
    for (int i = 0; i < 2; i++) {
        T_EQ(rt_fd_nonblock(f->c[i]), 0);
        T_EQ(rt_fd_nonblock(f->u[i]), 0);
    }
    f->lis.request_timeout_ms = (uint32_t)scaled(2000);
    f->lis.body_timeout_ms = (uint32_t)scaled(5000);
    gw_http_limits_default(&f->lis.limits);
    struct gw__exchange *ex = &f->ex;
    gw__transport_socket_borrow(&f->tp, f->c[0]);
    gw__transport_socket_borrow(&f->utp, f->u[0]);
    ex->tp = &f->tp;
    ex->write_timeout_ms = GW__WRITE_TIMEOUT_MS;
    ex->lis = &f->lis;
    ex->client_addr = "192.0.2.1";
    ex->client = f->req.client;
    ex->capped_route = f->req.capped_route;
    ex->request_id = f->req.request_id;
    T_EQ(gw_http_parser_new(&ex->parser, GW_HTTP_REQUEST, &f->lis.limits), 0);
    ex->buf = malloc(GW__BUF_SIZE);
    T_ASSERT(ex->buf);
    size_t n = strlen(request);
    T_ASSERT(n <= GW__BUF_SIZE);
    memcpy(ex->buf, request, n);
    size_t used = 0;
    struct gw_http_event ev;
    T_EQ(gw_http_parser_feed(ex->parser, ex->buf, n, &used, &ev), 0);
    T_EQ(ev.type, GW_HTTP_EV_HEAD);
    ex->head = ev.head;
    ex->off = used;
    ex->len = n - used;
    ex->keep_alive = ev.head->keep_alive;
    snprintf(ex->request_id, GW__REQUEST_ID_SIZE, "rid-1");
    f->r = (struct gw__relay){.ex = ex,
                              .head = up_head,
                              .head_len = strlen(up_head),
                              .response_timeout_ms = (uint32_t)scaled(300),
                              .read_timeout_ms = (uint32_t)scaled(300),
                              .rbuf = rt_alloc(GW__RELAY_FIRST),
                              .rbuf_cap = GW__RELAY_FIRST,
                              .ops = {fx_report, fx_upgrade, f},
                              .up = &f->utp,
                              .fail_status = 502,
                              .fail_msg = "none"};
    f->up.fd = f->u[1];
    f->cl.fd = f->c[1];
    f->up.got = malloc(PEER_CAP);
    f->out = malloc(PEER_CAP);
    T_ASSERT(f->r.rbuf && f->up.got && f->out);
}

static void fx_start(struct peer *p)
{
    struct rt_spawn_opts o = {.monitor = true, .monitor_ref = &p->mon, .initial_call = "test:peer"};
    rt_pid pid;
    T_EQ(rt_spawn(peer_main, p, &o, &pid), 0);
    p->running = true;
}

static void fx_join(struct peer *p)
{
    if (!p->running)
        return;
    struct rt_msg *m = rt_receive_ref(p->mon, scaled(20000));
    T_ASSERT(m);
    rt_msg_free(m);
    p->running = false;
}

/* Reads the body start, then runs one attempt with the upstream's script
 * (already set in F.up). */
static enum gw__relay_result fx_attempt(void)
{
    fx_start(&F.up);
    T_EQ(gw__relay_preread(&F.r), 0);
    enum gw__relay_result res = gw__relay_attempt(&F.r);
    fx_join(&F.up);
    fx_join(&F.cl);
    /* What the client received: all written before the attempt returned. */
    F.out_len = 0;
    for (;;) {
        ssize_t n = recv(F.c[1], F.out + F.out_len, PEER_CAP - 1 - F.out_len, MSG_DONTWAIT);
        if (n <= 0)
            break;
        F.out_len += (size_t)n;
    }
    F.out[F.out_len] = 0;
    return res;
}

static void fx_close(void)
{
    struct fx *f = &F;
    gw_http_parser_free(f->ex.parser);
    gw_http_head_free(f->ex.head);
    free(f->ex.buf);
    gw__relay_preread_release(&f->r);
    rt_free(f->r.rbuf);
    free(f->up.got);
    free(f->out);
    rt_close(f->c[0]);
    rt_close(f->u[0]);
    if (f->up.fd >= 0)
        rt_close(f->up.fd);
    if (f->cl.fd >= 0)
        rt_close(f->cl.fd);
}

/* The body of a response in F.out: what follows the head. */
static const char *out_body(void)
{
    const char *e = strstr(F.out, "\r\n\r\n");
    T_ASSERT(e);
    return e + 4;
}

/* Decodes a chunked body into `dst`; returns its length, or -1 when it is
 * not well-formed chunked framing ending with the last chunk and nothing
 * after it. */
static long dechunk(const char *src, size_t n, char *dst)
{
    size_t i = 0, out = 0;
    for (;;) {
        char *end;
        if (i >= n)
            return -1;
        unsigned long sz = strtoul(src + i, &end, 16);
        const char *crlf = memmem(end, n - (size_t)(end - src), "\r\n", 2);
        if (end == src + i || !crlf || crlf != end)
            return -1; /* the gateway writes no extensions */
        i = (size_t)(crlf - src) + 2;
        if (sz == 0)
            return i + 2 == n && memcmp(src + i, "\r\n", 2) == 0 ? (long)out : -1;
        if (i + sz + 2 > n || memcmp(src + i + sz, "\r\n", 2) != 0)
            return -1;
        memcpy(dst + out, src + i, sz);
        out += sz;
        i += sz + 2;
    }
}

static const char get_req[] = "GET /x HTTP/1.1\r\nHost: gw\r\n\r\n";
static const char get_up[] = "GET /x HTTP/1.1\r\nHost: up\r\n\r\n";

/* ---- responses -------------------------------------------------------------- */

static void content_length_body(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe"};
    F.up.out[1] = (struct piece){.d = "llo", .n = 0, .pause_ms = 20};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT(F.up.got_len == strlen(get_up) && memcmp(F.up.got, get_up, F.up.got_len) == 0);
    T_ASSERT_F(strncmp(F.out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", F.out);
    T_ASSERT(strstr(F.out, "\r\nContent-Length: 5\r\n"));
    T_ASSERT(strstr(F.out, "\r\nX-Request-Id: rid-1\r\n"));
    T_ASSERT(!strstr(F.out, "chunked"));
    T_ASSERT_F(strcmp(out_body(), "hello") == 0, "%s", F.out);
    T_ASSERT(F.r.reusable);
    T_EQ(F.r.bytes_out, 5);
    T_EQ(F.ex.status, 200);
    T_ASSERT(F.ex.keep_alive && F.ex.response_started);
    T_EQ(F.reports_ok, 1);
    T_EQ(F.reports_failed, 0);
    T_EQ(F.r.rbuf_cap, GW__RELAY_FIRST); /* a small response: the first buffer did */
    fx_close();
}

START_TEST(content_length_response_relayed_and_connection_reusable)
{
    t_run(content_length_body, true);
}
END_TEST

/* A response larger than the first read buffer: the read that fills it
 * makes the buffer GW__RELAY_BUF for the rest, and every byte is relayed. */
#define LARGE_BODY (96u * 1024)
static char large_resp[LARGE_BODY + 128];

static void large_body(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    int n = snprintf(large_resp, sizeof large_resp, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n",
                     LARGE_BODY);
    for (size_t i = 0; i < LARGE_BODY; i++)
        large_resp[(size_t)n + i] = (char)('a' + i % 26);
    F.up.out[0] = (struct piece){.d = large_resp, .n = (size_t)n + LARGE_BODY};
    F.up.keep_open = true;
    T_EQ(F.r.rbuf_cap, GW__RELAY_FIRST);
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_EQ(F.r.rbuf_cap, GW__RELAY_BUF);
    T_EQ(F.r.bytes_out, LARGE_BODY);
    const char *b = out_body();
    T_EQ((size_t)(F.out + F.out_len - b), LARGE_BODY);
    T_ASSERT(memcmp(b, large_resp + n, LARGE_BODY) == 0);
    T_ASSERT(F.r.reusable);
    fx_close();
}

START_TEST(a_large_response_grows_the_read_buffer_and_is_relayed_whole)
{
    t_run(large_body, true);
}
END_TEST

/* A response head longer than the buffer the client's head is written to
 * first (GW__HEAD_FIRST) is written again into the full one, whole. */
static char big_head[8192];

static void long_head_body(void)
{
    fx_open(get_req, get_up);
    size_t n = (size_t)snprintf(big_head, sizeof big_head, "HTTP/1.1 200 OK\r\nX-Big: ");
    ck_assert_uint_gt(sizeof big_head - n, 4 * GW__HEAD_FIRST);
    memset(big_head + n, 'b', 3 * GW__HEAD_FIRST);
    n += 3 * GW__HEAD_FIRST;
    snprintf(big_head + n, sizeof big_head - n, "\r\nContent-Length: 5\r\n\r\nhello");
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = big_head};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    const char *v = strstr(F.out, "\r\nX-Big: ");
    T_ASSERT_F(v, "%.80s", F.out);
    v += 9;
    size_t k = 0;
    while (v[k] == 'b')
        k++;
    T_EQ(k, 3 * GW__HEAD_FIRST);
    T_ASSERT_F(strcmp(out_body(), "hello") == 0, "%.80s", F.out);
    T_EQ(F.ex.status, 200);
    fx_close();
}

START_TEST(response_head_longer_than_the_first_buffer_relayed_whole)
{
    t_run(long_head_body, true);
}
END_TEST

/* The target's success is recorded before the client can read the
 * response's last byte, whatever its framing: a client that sends its next
 * request as soon as it has the answer finds the target's health up to
 * date. */
static void success_before_last_byte(void)
{
    static const char *const shapes[][3] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", "llo"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", "0\r\n\r\n"},
        {"HTTP/1.1 204 No Content\r\n\r\n"},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        t_reset();
        fx_open(get_req, get_up);
        F.up.until = "\r\n\r\n";
        for (size_t j = 0; j < 3 && shapes[i][j]; j++)
            F.up.out[j] = (struct piece){.d = shapes[i][j], .pause_ms = j ? 20 : 0};
        F.up.keep_open = true;
        T_EQ(fx_attempt(), GW__RELAY_DONE);
        T_EQ(F.reports_ok, 1);
        T_ASSERT_F(F.at_report >= 0 && (size_t)F.at_report < F.out_len,
                   "shape %zu: the client had %d of %zu bytes at the report", i, F.at_report,
                   F.out_len);
        fx_close();
    }
}

START_TEST(target_success_is_recorded_before_the_client_has_the_last_byte)
{
    t_run(success_before_last_byte, true);
}
END_TEST

/* Bytes past the response on the upstream connection: it cannot go back to
 * the pool. */
static void bytes_past_body(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK"};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT_F(strcmp(out_body(), "ok") == 0, "%s", F.out);
    T_ASSERT(!F.r.reusable);
    fx_close();
}

START_TEST(bytes_past_the_response_make_the_connection_unreusable)
{
    t_run(bytes_past_body, true);
}
END_TEST

static void chunked_body(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] =
        (struct piece){.d = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nab"};
    F.up.out[1] = (struct piece){.d = "c\r\n2\r\nde\r\n", .n = 0, .pause_ms = 20};
    F.up.out[2] = (struct piece){.d = "0\r\n\r\n", .n = 0, .pause_ms = 20};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT(strstr(F.out, "\r\nTransfer-Encoding: chunked\r\n"));
    T_ASSERT(!strstr(F.out, "ext"));
    const char *b = out_body();
    char dec[64];
    long n = dechunk(b, strlen(b), dec);
    T_ASSERT_F(n == 5 && memcmp(dec, "abcde", 5) == 0, "%s", F.out);
    T_ASSERT(F.r.reusable);
    T_EQ(F.r.bytes_out, 5);
    T_ASSERT(F.ex.keep_alive);
    fx_close();
}

START_TEST(chunked_response_reframed)
{
    t_run(chunked_body, true);
}
END_TEST

static void until_close_body(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\n\r\nsome "};
    F.up.out[1] = (struct piece){.d = "data", .n = 0, .pause_ms = 20};
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT(strstr(F.out, "\r\nTransfer-Encoding: chunked\r\n"));
    const char *b = out_body();
    char dec[64];
    long n = dechunk(b, strlen(b), dec);
    T_ASSERT_F(n == 9 && memcmp(dec, "some data", 9) == 0, "%s", F.out);
    T_ASSERT(!F.r.reusable);
    T_ASSERT(!F.ex.keep_alive);
    T_EQ(F.reports_ok, 1);
    fx_close();
}

START_TEST(read_until_close_response_relayed_chunked_with_last_chunk)
{
    t_run(until_close_body, true);
}
END_TEST

/* Closed right after the head: the held head and the last chunk. */
static void until_close_empty_body(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\n\r\n"};
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT_F(strncmp(F.out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", F.out);
    T_ASSERT(strstr(F.out, "\r\nTransfer-Encoding: chunked\r\n"));
    T_ASSERT_F(strcmp(out_body(), "0\r\n\r\n") == 0, "%s", F.out);
    T_EQ(F.r.bytes_out, 0);
    T_ASSERT(!F.ex.keep_alive);
    fx_close();
}

START_TEST(read_until_close_empty_body_gets_head_and_last_chunk)
{
    t_run(until_close_empty_body, true);
}
END_TEST

static void empty_bodies(void)
{
    static const char *answers[] = {
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    };
    static const char *expect_body[] = {"", "", "0\r\n\r\n"};
    for (size_t i = 0; i < 3; i++) {
        t_reset();
        fx_open(get_req, get_up);
        F.up.until = "\r\n\r\n";
        F.up.out[0] = (struct piece){.d = answers[i]};
        F.up.keep_open = true;
        T_EQ(fx_attempt(), GW__RELAY_DONE);
        T_ASSERT_F(strstr(F.out, "\r\nX-Request-Id: rid-1\r\n"), "%zu: %s", i, F.out);
        T_ASSERT_F(strcmp(out_body(), expect_body[i]) == 0, "%zu: %s", i, F.out);
        T_ASSERT(F.r.reusable);
        T_EQ(F.reports_ok, 1);
        fx_close();
    }
}

START_TEST(empty_body_response_written_whole)
{
    t_run(empty_bodies, true);
}
END_TEST

static void head_body(void)
{
    fx_open("HEAD /x HTTP/1.1\r\nHost: gw\r\n\r\n", "HEAD /x HTTP/1.1\r\nHost: up\r\n\r\n");
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT_F(strstr(F.out, "\r\nContent-Length: 10\r\n"), "%s", F.out);
    T_ASSERT_F(strcmp(out_body(), "") == 0, "%s", F.out);
    T_ASSERT(F.r.reusable);
    T_EQ(F.ex.status, 200);
    fx_close();
}

START_TEST(head_response_has_no_body)
{
    t_run(head_body, true);
}
END_TEST

static void interim_body(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 100 Continue\r\n\r\n"};
    F.up.out[1] = (struct piece){
        .d = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n", .n = 0, .pause_ms = 20};
    F.up.out[2] = (struct piece){
        .d = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", .n = 0, .pause_ms = 20};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT_F(strncmp(F.out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", F.out);
    T_ASSERT(!strstr(F.out, "100") && !strstr(F.out, "103") && !strstr(F.out, "Link"));
    T_ASSERT(strcmp(out_body(), "ok") == 0);
    T_ASSERT(F.r.reusable);
    T_EQ(F.ex.status, 200);
    fx_close();
}

START_TEST(interim_responses_skipped)
{
    t_run(interim_body, true);
}
END_TEST

static void upgrade_body(void)
{
    fx_open("GET /ws HTTP/1.1\r\nHost: gw\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 101 Switching Protocols\r\nConnection: "
                                      "upgrade\r\nUpgrade: websocket\r\n\r\nXYZ"};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_EQ(F.upgrades, 1);
    T_ASSERT(F.plen == 3 && memcmp(F.pending, "XYZ", 3) == 0);
    T_ASSERT(!F.ex.keep_alive);
    T_ASSERT(!F.r.reusable);
    fx_close();
}

START_TEST(switching_protocols_handed_to_the_tunnel)
{
    t_run(upgrade_body, true);
}
END_TEST

/* ---- failures --------------------------------------------------------------- */

static void timeout_before_head(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.hold_ms = 900;
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_EQ(F.r.fail_status, 504);
    T_EQ(F.out_len, 0);
    T_ASSERT(!F.ex.response_started);
    T_EQ(F.reports_failed, 1);
    T_ASSERT(strcmp(F.what, "response timeout") == 0);
    T_ASSERT(!F.r.reusable);
    fx_close();
}

START_TEST(response_timeout_before_head_answers_504)
{
    t_run(timeout_before_head, true);
}
END_TEST

/* The head came but no body byte: the client has seen nothing yet, so the
 * timeout can still be answered. */
static void timeout_head_held(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"};
    F.up.hold_ms = 900;
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_EQ(F.r.fail_status, 504);
    T_EQ(F.out_len, 0);
    T_ASSERT(!F.ex.response_started);
    fx_close();
}

START_TEST(response_timeout_with_head_unwritten_answers_504)
{
    t_run(timeout_head_held, true);
}
END_TEST

static void timeout_after_head(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"};
    F.up.hold_ms = 900;
    T_EQ(fx_attempt(), GW__RELAY_CLOSE);
    T_ASSERT_F(strncmp(F.out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", F.out);
    T_ASSERT_F(strcmp(out_body(), "abc") == 0, "%s", F.out);
    T_ASSERT(!strstr(F.out, "504"));
    T_EQ(F.ex.status, 200);
    T_EQ(F.reports_failed, 1);
    T_ASSERT(!F.r.reusable);
    fx_close();
}

START_TEST(response_timeout_after_head_closes_without_second_answer)
{
    t_run(timeout_after_head, true);
}
END_TEST

static void early_close(void)
{
    /* A fresh connection: the failure is the upstream's. */
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_EQ(F.r.fail_status, 502);
    T_ASSERT(strcmp(F.r.fail_msg, "upstream closed the connection") == 0);
    T_ASSERT(strcmp(F.what, "closed the connection early") == 0);
    T_EQ(F.out_len, 0);
    fx_close();
    /* A pooled connection found closed: tried again, not held against the
     * upstream. */
    t_reset();
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.r.reused = true;
    T_EQ(fx_attempt(), GW__RELAY_RETRY);
    T_EQ(F.reports_failed, 0);
    T_EQ(F.out_len, 0);
    fx_close();
    /* ... unless a byte of a response came first. */
    t_reset();
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 O"};
    F.r.reused = true;
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_EQ(F.r.fail_status, 502);
    T_EQ(F.reports_failed, 1);
    fx_close();
}

START_TEST(upstream_closing_before_head_answers_502_or_retries_a_reused_connection)
{
    t_run(early_close, true);
}
END_TEST

static void close_mid_body(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"};
    T_EQ(fx_attempt(), GW__RELAY_CLOSE);
    T_ASSERT_F(strcmp(out_body(), "abc") == 0, "%s", F.out);
    T_ASSERT(!strstr(F.out, "502"));
    T_EQ(F.reports_failed, 1);
    fx_close();
}

START_TEST(upstream_closing_mid_body_closes_the_client)
{
    t_run(close_mid_body, true);
}
END_TEST

static void malformed(void)
{
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 2x0 OK\r\n\r\n"};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_EQ(F.r.fail_status, 502);
    T_ASSERT(strcmp(F.r.fail_msg, "upstream sent a malformed response") == 0);
    T_EQ(F.reports_failed, 1);
    T_EQ(F.out_len, 0);
    T_ASSERT(!F.r.reusable);
    fx_close();
}

START_TEST(malformed_response_answers_502)
{
    t_run(malformed, true);
}
END_TEST

static void head_too_large(void)
{
    /* Over the response parser's head limit. */
    size_t big = GW_HTTP_PARSER_MAX_HEADER_BYTES + 100;
    char *resp = malloc(big + 64);
    T_ASSERT(resp);
    int n = snprintf(resp, 64, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(resp + n, 'a', big);
    memcpy(resp + n + big, "\r\n\r\n", 5);
    fx_open(get_req, get_up);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = resp};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_EQ(F.r.fail_status, 502);
    T_EQ(F.out_len, 0);
    fx_close();
    free(resp);
    /* Within the parser's limit, but too large once the route's fields are
     * added: the gateway answers 502 itself. */
    t_reset();
    size_t vlen = GW__HEAD_BUF;
    char *v = malloc(vlen + 1);
    T_ASSERT(v);
    memset(v, 'b', vlen);
    v[vlen] = 0;
    struct gw_http_kv add = {"x-added", v};
    struct gw_http_edits ed = {.add = &add, .nadd = 1};
    fx_open(get_req, get_up);
    F.r.resp_edits = &ed;
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT_F(strncmp(F.out, "HTTP/1.1 502 ", 13) == 0, "%s", F.out);
    T_ASSERT(strstr(F.out, "upstream response head too large"));
    T_EQ(F.ex.status, 502);
    T_ASSERT(!F.ex.keep_alive);
    T_ASSERT(!F.r.reusable);
    T_ASSERT(strcmp(F.what, "response head too large") == 0);
    fx_close();
    free(v);
}

START_TEST(response_head_too_large_answers_502)
{
    t_run(head_too_large, true);
}
END_TEST

/* An HTTP/1.0 client cannot take chunks: the body goes as it is and the
 * client connection closes to end it. The upstream connection is not given
 * back to the pool then, as before the relay had its own file. */
static void client10_body(void)
{
    fx_open("GET /x HTTP/1.0\r\nHost: gw\r\nConnection: keep-alive\r\n\r\n", get_up);
    T_ASSERT(F.ex.keep_alive);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                                      "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT_F(!strstr(F.out, "chunked") && strcmp(out_body(), "abcde") == 0, "%s", F.out);
    T_ASSERT(!F.ex.keep_alive);
    T_ASSERT(!F.r.reusable);
    T_EQ(F.r.bytes_out, 5);
    fx_close();
}

START_TEST(http10_client_gets_the_body_until_close_and_the_upstream_is_not_pooled)
{
    t_run(client10_body, true);
}
END_TEST

/* Once the head is in, each read waits read_timeout_ms: the response
 * deadline bounds only the wait for the head, even while the head is held
 * back for the first body piece. */
static void slow_body_after_head(void)
{
    fx_open(get_req, get_up);
    F.r.response_timeout_ms = (uint32_t)scaled(300);
    F.r.read_timeout_ms = (uint32_t)scaled(3000);
    F.up.until = "\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"};
    F.up.out[1] = (struct piece){.d = "ab", .n = 0, .pause_ms = 700};
    F.up.out[2] = (struct piece){.d = "cd", .n = 0, .pause_ms = 700};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT_F(strcmp(out_body(), "abcd") == 0, "%s", F.out);
    T_EQ(F.reports_failed, 0);
    T_ASSERT(F.r.reusable);
    fx_close();
}

START_TEST(body_reads_wait_the_read_timeout_not_the_response_deadline)
{
    t_run(slow_body_after_head, true);
}
END_TEST

/* ---- request bodies --------------------------------------------------------- */

#define BIG_BODY (3 * GW__PREREAD + 1234)

static char *pattern(size_t n)
{
    char *b = malloc(n);
    T_ASSERT(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)('a' + (i * 7 + i / 251) % 26);
    return b;
}

static void body_by_length(void)
{
    char req[128], up[128];
    snprintf(req, sizeof req, "POST /u HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n",
             BIG_BODY);
    snprintf(up, sizeof up, "POST /u HTTP/1.1\r\nHost: up\r\nContent-Length: %d\r\n\r\n", BIG_BODY);
    char *body = pattern(BIG_BODY);
    fx_open(req, up);
    F.up.expect = strlen(up) + BIG_BODY;
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"};
    F.up.keep_open = true;
    /* The client sends its body in three writes. */
    size_t third = BIG_BODY / 3;
    F.cl.out[0] = (struct piece){.d = body, .n = third};
    F.cl.out[1] = (struct piece){.d = body + third, .n = third, .pause_ms = 10};
    F.cl.out[2] = (struct piece){.d = body + 2 * third, .n = BIG_BODY - 2 * third, .pause_ms = 10};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT(F.r.body_started);
    T_ASSERT(!F.r.pre_complete);
    T_EQ(F.up.got_len, strlen(up) + BIG_BODY);
    T_ASSERT(memcmp(F.up.got, up, strlen(up)) == 0);
    T_ASSERT(memcmp(F.up.got + strlen(up), body, BIG_BODY) == 0);
    T_ASSERT_F(strncmp(F.out, "HTTP/1.1 201 Created\r\n", 22) == 0, "%s", F.out);
    T_ASSERT(F.r.reusable);
    fx_close();
    free(body);
}

START_TEST(request_body_streamed_by_length)
{
    t_run(body_by_length, true);
}
END_TEST

static void body_chunked(void)
{
    static const char req[] = "POST /u HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char up[] = "POST /u HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n";
    char *body = pattern(BIG_BODY);
    /* The client's chunks: of several sizes, one with an extension. */
    size_t cap = BIG_BODY + 4096, n = 0, at = 0;
    char *wire = malloc(cap);
    T_ASSERT(wire);
    static const size_t sizes[] = {1, 4000, 70000, 17, 65536};
    for (size_t i = 0; at < BIG_BODY; i++) {
        size_t k = sizes[i % 5];
        if (k > BIG_BODY - at)
            k = BIG_BODY - at;
        n += (size_t)snprintf(wire + n, cap - n, i == 2 ? "%zx;a=b\r\n" : "%zx\r\n", k);
        memcpy(wire + n, body + at, k);
        n += k;
        memcpy(wire + n, "\r\n", 2);
        n += 2;
        at += k;
    }
    memcpy(wire + n, "0\r\n\r\n", 5);
    n += 5;
    fx_open(req, up);
    F.up.until = "\r\n0\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
    F.up.keep_open = true;
    F.cl.out[0] = (struct piece){.d = wire, .n = n / 2};
    F.cl.out[1] = (struct piece){.d = wire + n / 2, .n = n - n / 2, .pause_ms = 10};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT(F.r.body_started);
    T_ASSERT(memcmp(F.up.got, up, strlen(up)) == 0);
    char *dec = malloc(BIG_BODY);
    T_ASSERT(dec);
    long d = dechunk(F.up.got + strlen(up), F.up.got_len - strlen(up), dec);
    T_ASSERT_F(d == BIG_BODY, "%ld", d);
    T_ASSERT(memcmp(dec, body, BIG_BODY) == 0);
    T_ASSERT(F.r.reusable);
    fx_close();
    free(dec);
    free(wire);
    free(body);
}

START_TEST(request_body_streamed_chunked)
{
    t_run(body_chunked, true);
}
END_TEST

/* A small body is read whole before the attempt: sent as one piece (with
 * the last chunk when chunked), and the request could be sent again. */
static void small_bodies(void)
{
    fx_open("POST /u HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello",
            "POST /u HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    F.up.until = "hello";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT(F.r.pre_complete && !F.r.body_started);
    T_ASSERT(ends_with(F.up.got, F.up.got_len, "\r\n\r\nhello"));
    fx_close();
    t_reset();
    fx_open("POST /u HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n"
            "Expect: 100-continue\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
            "POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    F.up.until = "\r\n0\r\n\r\n";
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT(F.r.pre_complete && !F.r.body_started);
    T_ASSERT(ends_with(F.up.got, F.up.got_len, "\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    T_ASSERT_F(strncmp(F.out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 42) == 0, "%s",
               F.out);
    fx_close();
}

START_TEST(request_body_read_whole_when_small)
{
    t_run(small_bodies, true);
}
END_TEST

/* A client whose streamed body stops coming gets 408, and the connection
 * closes as the body was not read; nothing is held against the upstream.
 * The caller answers, after it let go of the upstream connection: the
 * attempt writes nothing to the client. */
static void body_stops(void)
{
    static const char up[] = "POST /u HTTP/1.1\r\n\r\n";
    char req[128];
    snprintf(req, sizeof req, "POST /u HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n",
             BIG_BODY);
    char *body = pattern(BIG_BODY);
    fx_open(req, up);
    F.lis.request_timeout_ms = (uint32_t)scaled(200);
    F.cl.out[0] = (struct piece){.d = body, .n = GW__PREREAD + 10};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    F.up.expect = strlen(up) + GW__PREREAD + 10;
    F.up.keep_open = true;
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_EQ(F.r.fail_status, 408);
    T_ASSERT(strcmp(F.r.fail_msg, "could not read the request body") == 0);
    T_EQ(F.out_len, 0);
    T_ASSERT(!F.ex.response_started);
    T_ASSERT(!F.ex.keep_alive);
    T_EQ(F.reports_failed, 0);
    T_ASSERT(!F.r.reusable);
    fx_close();
    free(body);
}

START_TEST(request_body_stopping_left_to_the_caller_to_answer_408)
{
    t_run(body_stops, true);
}
END_TEST

/* A pooled connection that closes without an answer once the body has
 * streamed from the client is not a stale connection to try again: the body
 * is gone. 502. */
static void reused_after_body(void)
{
    char req[128], up[128];
    snprintf(req, sizeof req, "POST /u HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n",
             BIG_BODY);
    snprintf(up, sizeof up, "POST /u HTTP/1.1\r\nHost: up\r\nContent-Length: %d\r\n\r\n", BIG_BODY);
    char *body = pattern(BIG_BODY);
    fx_open(req, up);
    F.r.reused = true;
    F.up.expect = strlen(up) + BIG_BODY; /* then closes, answering nothing */
    F.cl.out[0] = (struct piece){.d = body, .n = BIG_BODY};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_ASSERT(F.r.body_started);
    T_EQ(F.up.got_len, strlen(up) + BIG_BODY);
    T_EQ(F.r.fail_status, 502);
    T_EQ(F.reports_failed, 1);
    T_EQ(F.out_len, 0);
    fx_close();
    free(body);
}

START_TEST(reused_connection_closing_after_a_streamed_body_is_not_retried)
{
    t_run(reused_after_body, true);
}
END_TEST

/* The upstream stops reading a streamed body (closes): 502, answered by the
 * caller once the connection is given back. */
static void upstream_stops_reading(void)
{
    static const char up[] = "POST /u HTTP/1.1\r\n\r\n";
    char req[128];
    snprintf(req, sizeof req, "POST /u HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n",
             BIG_BODY);
    char *body = pattern(BIG_BODY);
    fx_open(req, up);
    F.cl.out[0] = (struct piece){.d = body, .n = GW__PREREAD + 10};
    F.cl.out[1] = (struct piece){
        .d = body + GW__PREREAD + 10, .n = BIG_BODY - GW__PREREAD - 10, .pause_ms = 100};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    /* It takes the head and the pre-read start, then closes. */
    F.up.expect = strlen(up) + GW__PREREAD + 10;
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_EQ(F.r.fail_status, 502);
    T_ASSERT(strcmp(F.r.fail_msg, "upstream stopped reading the request") == 0);
    T_EQ(F.out_len, 0);
    T_ASSERT(!F.ex.response_started);
    T_ASSERT(!F.ex.keep_alive);
    T_EQ(F.reports_failed, 1);
    T_ASSERT(strcmp(F.what, "write error") == 0);
    fx_close();
    free(body);
}

START_TEST(upstream_stopping_to_read_the_body_left_to_the_caller_to_answer_502)
{
    t_run(upstream_stops_reading, true);
}
END_TEST

/* The pre-read buffers of all requests share one budget. A small body
 * holds a buffer its size, not the whole cap; a body that finds the budget
 * spent gets -EBUSY (the caller answers 503); and the charge comes back
 * when the buffer is let go, and when its process ends holding it. */
static void hold_body_and_exit(void *arg)
{
    struct fx *f = arg;
    T_EQ(gw__relay_preread(&f->r), 0);
    T_EQ(gw__preread_held(), GW__PREREAD_MIN);
    f->r.hold = NULL; /* the process ends without letting go: its own end must */
}

static void budget(void)
{
    static const char small[] = "POST /u HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n";
    char *body = pattern(GW__PREREAD);
    T_EQ(gw__preread_held(), 0);

    fx_open(small, "");
    F.cl.out[0] = (struct piece){.d = body, .n = 100};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    T_EQ(gw__relay_preread(&F.r), 0);
    T_ASSERT(F.r.pre_complete && F.r.pre_len == 100 && memcmp(F.r.pre, body, 100) == 0);
    T_EQ(gw__preread_held(), GW__PREREAD_MIN);
    gw__relay_preread_release(&F.r);
    T_EQ(gw__preread_held(), 0);
    fx_join(&F.cl);
    fx_close();

    /* Room for two small buffers, not for one body of 20000 bytes. */
    gw__preread_budget_set(2 * GW__PREREAD_MIN);
    char req[128];
    snprintf(req, sizeof req, "POST /u HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n", 20000);
    fx_open(req, "");
    F.cl.out[0] = (struct piece){.d = body, .n = 20000};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    T_EQ(gw__relay_preread(&F.r), -EBUSY);
    T_ASSERT(gw__preread_held() <= 2 * GW__PREREAD_MIN); /* what it had, until it lets go */
    gw__relay_preread_release(&F.r);
    T_EQ(gw__preread_held(), 0);
    fx_join(&F.cl);
    fx_close();

    fx_open(small, "");
    F.cl.out[0] = (struct piece){.d = body, .n = 100};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    rt_ref mon;
    rt_pid pid;
    struct rt_spawn_opts o = {.monitor = true, .monitor_ref = &mon, .initial_call = "test:holder"};
    T_EQ(rt_spawn(hold_body_and_exit, &F, &o, &pid), 0);
    struct rt_msg *m = rt_receive_ref(mon, scaled(20000));
    T_ASSERT(m);
    rt_msg_free(m);
    T_EQ(gw__preread_held(), 0);
    fx_join(&F.cl);
    fx_close();
    gw__preread_budget_set(GW__BODY_BUFFER_DEFAULT);
    free(body);
}

START_TEST(request_bodies_held_before_forwarding_share_one_bounded_budget)
{
    t_run(budget, true);
}
END_TEST

/* A whole body held for a retry stays charged while the answer can still
 * fail unseen (the head held, unwritten), and goes back to the budget once
 * the client has the head: the request can no longer be sent again, and a
 * client reading a long answer slowly must not hold the budget meanwhile. */
static void held_body_given_back_once_streaming(void)
{
    static const char req[] = "POST /u HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n";
    static const char up[] = "POST /u HTTP/1.1\r\nHost: up\r\nContent-Length: 100\r\n\r\n";
    char *body = pattern(100);
    T_EQ(gw__preread_held(), 0);

    /* The head arrives, then nothing: 504, not yet seen by the client, so
     * the request may still go to another target with the body held. */
    fx_open(req, up);
    F.up.expect = strlen(up) + 100;
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"};
    F.up.hold_ms = 900;
    F.cl.out[0] = (struct piece){.d = body, .n = 100};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    T_EQ(fx_attempt(), GW__RELAY_FAILED);
    T_ASSERT(F.r.pre_complete && F.r.pre_len == 100 && memcmp(F.r.pre, body, 100) == 0);
    T_EQ(gw__preread_held(), GW__PREREAD_MIN);
    fx_close();
    T_EQ(gw__preread_held(), 0);
    t_reset();

    /* The answer streams to the client: the charge is back before the
     * attempt ends. */
    fx_open(req, up);
    F.up.expect = strlen(up) + 100;
    F.up.out[0] = (struct piece){.d = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe"};
    F.up.out[1] = (struct piece){.d = "llo", .pause_ms = 20};
    F.up.keep_open = true;
    F.cl.out[0] = (struct piece){.d = body, .n = 100};
    F.cl.keep_open = true;
    fx_start(&F.cl);
    T_EQ(fx_attempt(), GW__RELAY_DONE);
    T_ASSERT_F(strcmp(out_body(), "hello") == 0, "%s", F.out);
    T_EQ(F.up.got_len, strlen(up) + 100);
    T_ASSERT(memcmp(F.up.got + strlen(up), body, 100) == 0);
    T_EQ(gw__preread_held(), 0);
    T_ASSERT(!F.r.hold);
    fx_close();
    free(body);
}

START_TEST(a_held_request_body_is_given_back_once_the_client_has_the_answers_head)
{
    t_run(held_body_given_back_once_streaming, true);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = tcase_create("responses");
    tcase_add_test(tc, content_length_response_relayed_and_connection_reusable);
    tcase_add_test(tc, a_large_response_grows_the_read_buffer_and_is_relayed_whole);
    tcase_add_test(tc, response_head_longer_than_the_first_buffer_relayed_whole);
    tcase_add_test(tc, target_success_is_recorded_before_the_client_has_the_last_byte);
    tcase_add_test(tc, bytes_past_the_response_make_the_connection_unreusable);
    tcase_add_test(tc, chunked_response_reframed);
    tcase_add_test(tc, read_until_close_response_relayed_chunked_with_last_chunk);
    tcase_add_test(tc, read_until_close_empty_body_gets_head_and_last_chunk);
    tcase_add_test(tc, empty_body_response_written_whole);
    tcase_add_test(tc, head_response_has_no_body);
    tcase_add_test(tc, interim_responses_skipped);
    tcase_add_test(tc, switching_protocols_handed_to_the_tunnel);
    suite_add_tcase(s, tc);
    tc = tcase_create("failures");
    tcase_add_test(tc, response_timeout_before_head_answers_504);
    tcase_add_test(tc, response_timeout_with_head_unwritten_answers_504);
    tcase_add_test(tc, response_timeout_after_head_closes_without_second_answer);
    tcase_add_test(tc, upstream_closing_before_head_answers_502_or_retries_a_reused_connection);
    tcase_add_test(tc, upstream_closing_mid_body_closes_the_client);
    tcase_add_test(tc, malformed_response_answers_502);
    tcase_add_test(tc, response_head_too_large_answers_502);
    tcase_add_test(tc, http10_client_gets_the_body_until_close_and_the_upstream_is_not_pooled);
    tcase_add_test(tc, body_reads_wait_the_read_timeout_not_the_response_deadline);
    suite_add_tcase(s, tc);
    tc = tcase_create("request bodies");
    tcase_add_test(tc, request_body_streamed_by_length);
    tcase_add_test(tc, request_body_streamed_chunked);
    tcase_add_test(tc, request_body_read_whole_when_small);
    tcase_add_test(tc, request_body_stopping_left_to_the_caller_to_answer_408);
    tcase_add_test(tc, reused_connection_closing_after_a_streamed_body_is_not_retried);
    tcase_add_test(tc, upstream_stopping_to_read_the_body_left_to_the_caller_to_answer_502);
    tcase_add_test(tc, request_bodies_held_before_forwarding_share_one_bounded_budget);
    tcase_add_test(tc, a_held_request_body_is_given_back_once_the_client_has_the_answers_head);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Writes to a peer that closed fail with EPIPE, as in the gateway. */
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
