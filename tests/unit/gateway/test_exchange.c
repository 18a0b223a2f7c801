/* test_exchange.c: the exchange (gateway/src/exchange.c) over a socketpair.
 *
 * One end of the pair is the exchange's client transport, the other the
 * test's "client", driven from the main thread with plain blocking calls.
 * Each test runs its exchange side in a runtime process (the exchange reads
 * and writes through the runtime's parking I/O), which records the first
 * failed assertion and exits; the main thread reports it and checks what
 * reached the client. Covered: reading a body (length, chunked, per-read
 * and whole-body timeouts, the client closing), 100 Continue sent once and
 * only when asked, error answers and the keep-alive decision, the response
 * state as the API leaves it, a write to a client that stops reading
 * timing out, the 503 a client refused before it has an exchange gets
 * on its bare descriptor, and what a connection or request process that
 * never runs (no stack for it) gives back. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_int.h"
#include "rt_fault.h"

static char t_failure[512];
static atomic_int t_failed;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (atomic_exchange(&t_failed, 1) == 0)                                                \
                snprintf(t_failure, sizeof t_failure, "%s:%d: %s", __FILE__, __LINE__, #c);        \
            rt_exit(rt_atom_intern("test_failed"));                                                \
        }                                                                                          \
    } while (0)

static int64_t scaled(int64_t ms)
{
    const char *s = getenv("TANDEM_TEST_TIME_SCALE");
    int k = s ? atoi(s) : 1;
    return ms * (k > 0 ? k : 1);
}

static struct gw__listener lis;
static int peer = -1; /* the test's client end */
static int side = -1; /* the exchange's end */

static void setup(void)
{
    memset(&lis, 0, sizeof lis);
    lis.name = "test";
    gw_http_limits_default(&lis.limits);
    lis.request_timeout_ms = 5000;
    lis.body_timeout_ms = 5000;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer = sv[0];
    side = sv[1];
    atomic_store(&t_failed, 0);
    struct rt_config c;
    rt_config_default(&c);
    c.schedulers = 1;
    ck_assert_int_eq(rt_start(&c), 0);
}

static void teardown(void)
{
    ck_assert_int_eq(rt_stop(), 0);
    close(peer);
    peer = side = -1;
}

/* Runs fn in a process and waits for it; fails the test with the process's
 * first failed assertion. */
static void run(rt_entry fn)
{
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(fn, NULL, NULL, &pid), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, scaled(20000), &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_msg(reason == RT_NORMAL, "the exchange process ended with %s", rt_atom_name(reason));
}

static void send_all(const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(peer, s, n);
        ck_assert_int_gt(w, 0);
        s += w;
        n -= (size_t)w;
    }
}

static void send_str(const char *s)
{
    send_all(s, strlen(s));
}

/* Everything the exchange wrote, once it closed its end (or after a short
 * quiet spell when `until_quiet`). NUL-terminated in a static buffer. */
static char got[1 << 16];
static size_t got_len;

static const char *received(void)
{
    got_len = 0;
    for (;;) {
        struct pollfd p = {.fd = peer, .events = POLLIN};
        if (poll(&p, 1, (int)scaled(200)) <= 0)
            break;
        ssize_t n = read(peer, got + got_len, sizeof got - 1 - got_len);
        if (n <= 0)
            break;
        got_len += (size_t)n;
    }
    got[got_len] = 0;
    return got;
}

/* `out` with the Date field every answer carries after its status line
 * taken out, once it is checked to be there and to be an IMF-fixdate. */
static const char *undated(const char *out)
{
    static char buf[sizeof got];
    const char *d = strstr(out, "\r\nDate: ");
    ck_assert_msg(d && (size_t)(d - out) == strcspn(out, "\r"), "no Date after the status line");
    d += 2;
    ck_assert_msg(strlen(d) > 6 + GW_HTTP_DATE_LEN &&
                      memcmp(d + 6 + GW_HTTP_DATE_LEN, "\r\n", 2) == 0 &&
                      memcmp(d + 6 + GW_HTTP_DATE_LEN - 4, " GMT", 4) == 0,
                  "bad Date: %s", d);
    size_t pre = (size_t)(d - out), line = 6 + GW_HTTP_DATE_LEN + 2;
    memcpy(buf, out, pre);
    strcpy(buf + pre, d + line);
    return buf;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* In the exchange process: an exchange over `side` with the next request
 * head read and begun. */
static struct gw__exchange *open_request(void)
{
    struct gw__transport *tp;
    T_ASSERT(gw__transport_socket_new(side, &tp) == 0);
    struct gw__exchange *ex;
    T_ASSERT(gw__ex_new(&ex, tp, &lis, "") == 0);
    rt_defer(gw__exchange_unref, ex);
    for (;;) {
        if (ex->len == 0) {
            int r = gw__ex_fill(ex, scaled(5000));
            T_ASSERT(r == 1 || r == -EAGAIN);
            continue;
        }
        struct gw_http_event ev;
        T_ASSERT(gw__ex_feed(ex, &ev) == 0);
        if (ev.type == GW_HTTP_EV_HEAD) {
            gw__ex_begin(ex, ev.head);
            memcpy(ex->request_id, "rid-7", 6);
            return ex;
        }
        T_ASSERT(ev.type == GW_HTTP_EV_NEED_MORE);
    }
}

/* The whole body read through gw__ex_body_next: its return at the end and
 * the bytes. */
static int body_rc;
static char body[4096];
static size_t body_len;

static void read_body(struct gw__exchange *ex)
{
    const char *d;
    size_t n;
    body_len = 0;
    while ((body_rc = gw__ex_body_next(ex, &d, &n, lis.request_timeout_ms)) == 1) {
        T_ASSERT(body_len + n <= sizeof body);
        memcpy(body + body_len, d, n);
        body_len += n;
    }
}

/* ---- body reading ------------------------------------------------------------- */

static void p_read_body(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    read_body(ex);
    T_ASSERT(!ex->response_started);
}

START_TEST(content_length_body_is_read_whole_and_ends_with_zero)
{
    send_str("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello");
    send_str(" world");
    run(p_read_body);
    ck_assert_int_eq(body_rc, 0);
    ck_assert_uint_eq(body_len, 11);
    ck_assert(memcmp(body, "hello world", 11) == 0);
}
END_TEST

START_TEST(chunked_body_is_decoded_and_ends_with_zero)
{
    send_str("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    run(p_read_body);
    ck_assert_int_eq(body_rc, 0);
    ck_assert_uint_eq(body_len, 11);
    ck_assert(memcmp(body, "hello world", 11) == 0);
}
END_TEST

static int status_of_rc;
static void p_read_body_status(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    read_body(ex);
    status_of_rc = gw__ex_body_status(ex, body_rc);
}

START_TEST(body_read_times_out_per_read_and_answers_408)
{
    lis.request_timeout_ms = (uint32_t)scaled(150);
    send_str("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    uint64_t t0 = rt_now_ms();
    run(p_read_body_status);
    ck_assert_int_eq(body_rc, -ETIMEDOUT);
    ck_assert_int_eq(status_of_rc, 408);
    ck_assert_uint_ge(rt_now_ms() - t0, (uint64_t)scaled(150));
}
END_TEST

/* A body trickled just fast enough for each read still meets the budget
 * for all the waiting together. */
static void p_trickle(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    read_body(ex);
    status_of_rc = gw__ex_body_status(ex, body_rc);
}

START_TEST(body_that_trickles_meets_the_whole_body_budget)
{
    lis.request_timeout_ms = (uint32_t)scaled(2000);
    lis.body_timeout_ms = (uint32_t)scaled(300);
    send_str("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n");
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(p_trickle, NULL, NULL, &pid), 0);
    for (int i = 0; i < 8; i++) {
        usleep((useconds_t)scaled(80) * 1000);
        ssize_t w = write(peer, "x", 1);
        (void)w; /* the exchange may have given up already */
    }
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, scaled(20000), &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_int_eq(body_rc, -ETIMEDOUT);
    ck_assert_int_eq(status_of_rc, 408);
    ck_assert_uint_lt(body_len, 8);
}
END_TEST

START_TEST(client_closing_mid_body_is_a_reset_answered_400)
{
    send_str("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    shutdown(peer, SHUT_WR);
    run(p_read_body_status);
    ck_assert_int_eq(body_rc, -ECONNRESET);
    ck_assert_int_eq(status_of_rc, 400);
    ck_assert_uint_eq(body_len, 3);
}
END_TEST

START_TEST(malformed_chunk_is_refused_with_the_parsers_status)
{
    send_str("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    run(p_read_body_status);
    ck_assert_int_eq(body_rc, -EPROTO);
    ck_assert_int_eq(status_of_rc, 400);
}
END_TEST

/* ---- 100 Continue ---------------------------------------------------------------- */

static bool started_after_continue;
static void p_continue(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    T_ASSERT(gw__ex_continue(ex) == 0);
    T_ASSERT(gw__ex_continue(ex) == 0);
    T_ASSERT(gw__ex_discard_body(ex) == 0); /* would send it again if it could */
    started_after_continue = ex->response_started;
    T_ASSERT(gw__ex_error(ex, 404, "nothing here", true) == 0);
}

START_TEST(continue_is_sent_once_and_does_not_start_the_response)
{
    send_str("POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
             "hello");
    run(p_continue);
    const char *out = received();
    ck_assert_uint_eq(count_of(out, "HTTP/1.1 100 Continue\r\n\r\n"), 1);
    ck_assert(strncmp(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 ", 38) == 0);
    ck_assert(!started_after_continue);
}
END_TEST

static void p_no_continue(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    T_ASSERT(gw__ex_continue(ex) == 0);
    T_ASSERT(gw__ex_error(ex, 404, NULL, true) == 0);
}

START_TEST(continue_is_not_sent_without_expect_or_without_a_body)
{
    send_str("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    run(p_no_continue);
    ck_assert_uint_eq(count_of(received(), "100 Continue"), 0);
}
END_TEST

START_TEST(continue_is_not_sent_for_a_bodiless_request)
{
    send_str("GET /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
    run(p_no_continue);
    ck_assert_uint_eq(count_of(received(), "100 Continue"), 0);
}
END_TEST

/* ---- answers and the response state ------------------------------------------------ */

static bool keep_before, keep_after, started_before, started_after;
static int status_after;

static void p_error_keep(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    keep_before = ex->keep_alive;
    started_before = ex->response_started;
    T_ASSERT(ex->status == 0);
    T_ASSERT(gw__ex_error(ex, 404, "no route matches this request", true) == 0);
    keep_after = ex->keep_alive;
    started_after = ex->response_started;
    status_after = ex->status;
}

START_TEST(error_that_may_keep_the_connection_keeps_it)
{
    send_str("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    run(p_error_keep);
    ck_assert(keep_before && keep_after);
    ck_assert(!started_before && started_after);
    ck_assert_int_eq(status_after, 404);
    const char *out = received();
    ck_assert(strncmp(out, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    ck_assert_ptr_null(strstr(out, "Connection: close"));
    ck_assert_ptr_nonnull(strstr(out, "X-Request-Id: rid-7\r\n"));
    ck_assert_ptr_nonnull(
        strstr(out, "{\"error\": \"no route matches this request\", \"request_id\": \"rid-7\"}\n"));
}
END_TEST

static void p_error_close(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    T_ASSERT(gw__ex_error(ex, 413, "too big", false) == 0);
    keep_after = ex->keep_alive;
    status_after = ex->status;
}

START_TEST(error_that_must_close_closes_and_says_so)
{
    send_str("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    run(p_error_close);
    ck_assert(!keep_after);
    ck_assert_int_eq(status_after, 413);
    ck_assert_ptr_nonnull(strstr(received(), "Connection: close\r\n"));
}
END_TEST

static void p_error_on_closing_request(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    T_ASSERT(!ex->keep_alive); /* the client asked to close */
    T_ASSERT(gw__ex_error(ex, 404, NULL, true) == 0);
    keep_after = ex->keep_alive;
}

START_TEST(error_on_a_request_that_closes_says_close_even_when_it_may_keep)
{
    send_str("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    run(p_error_on_closing_request);
    ck_assert(!keep_after);
    ck_assert_ptr_nonnull(strstr(received(), "Connection: close\r\n"));
}
END_TEST

static void p_answer(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    gw__ex_close_after(ex);
    struct gw_http_answer a = {.status = 200, .content_type = "text/plain"};
    T_ASSERT(gw__ex_answer(ex, &a, "hi there", 8) == 0);
    status_after = ex->status;
    started_after = ex->response_started;
    keep_after = ex->keep_alive;
}

START_TEST(answer_carries_the_exchanges_id_and_close_decision)
{
    send_str("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    run(p_answer);
    ck_assert_int_eq(status_after, 200);
    ck_assert(started_after && !keep_after);
    ck_assert_str_eq(undated(received()), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                          "Content-Length: 8\r\nX-Request-Id: rid-7\r\n"
                                          "Connection: close\r\n\r\nhi there");
}
END_TEST

static void p_answer_head(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    struct gw_http_answer a = {.status = 200, .content_type = "text/plain"};
    T_ASSERT(gw__ex_answer(ex, &a, "hi there", 8) == 0);
}

START_TEST(answer_to_head_states_the_length_and_sends_no_body)
{
    send_str("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
    run(p_answer_head);
    ck_assert_str_eq(undated(received()), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                          "Content-Length: 8\r\nX-Request-Id: rid-7\r\n\r\n");
}
END_TEST

static void p_error_head(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    T_ASSERT(gw__ex_error(ex, 502, "no upstream target answered", true) == 0);
    keep_after = ex->keep_alive;
}

START_TEST(error_to_head_states_the_length_and_sends_no_body)
{
    /* The same error to GET first, for the length a GET gets. */
    send_str("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    run(p_error_head);
    const char *out = received();
    const char *end = strstr(out, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    size_t get_body = strlen(end + 4);
    ck_assert_uint_gt(get_body, 0);
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", get_body);
    close(peer);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer = sv[0];
    side = sv[1];
    send_str("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
    run(p_error_head);
    ck_assert(keep_after);
    out = received();
    ck_assert(strncmp(out, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0);
    ck_assert_ptr_nonnull(strstr(out, cl));
    end = strstr(out, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_str_eq(end, "\r\n\r\n"); /* nothing after the head */
}
END_TEST

/* A request refused while its head was read has no head to ask: its
 * method is the parser's. */
static void p_refused_head(void *arg)
{
    (void)arg;
    struct gw__transport *tp;
    T_ASSERT(gw__transport_socket_new(side, &tp) == 0);
    struct gw__exchange *ex;
    T_ASSERT(gw__ex_new(&ex, tp, &lis, "") == 0);
    rt_defer(gw__exchange_unref, ex);
    for (;;) {
        if (ex->len == 0) {
            int r = gw__ex_fill(ex, scaled(5000));
            T_ASSERT(r == 1 || r == -EAGAIN);
            continue;
        }
        struct gw_http_event ev;
        int rc = gw__ex_feed(ex, &ev);
        if (rc == -EPROTO)
            break;
        T_ASSERT(rc == 0 && ev.type == GW_HTTP_EV_NEED_MORE);
    }
    T_ASSERT(ex->head == NULL);
    T_ASSERT(gw__ex_head_request(ex));
    T_ASSERT(gw__ex_error(ex, gw_http_parser_status(ex->parser), gw_http_parser_reason(ex->parser),
                          false) == 0);
}

START_TEST(refused_head_request_gets_an_error_without_body)
{
    send_str("HEAD /x HTTP/1.1\r\n\r\n"); /* no Host: 400 */
    run(p_refused_head);
    const char *out = received();
    ck_assert(strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    ck_assert_ptr_nonnull(strstr(out, "Content-Length: "));
    ck_assert_ptr_null(strstr(out, "Content-Length: 0\r\n"));
    const char *end = strstr(out, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_str_eq(end, "\r\n\r\n");
}
END_TEST

static void p_begin_resets(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    T_ASSERT(gw__ex_error(ex, 400, NULL, false) == 0);
    T_ASSERT(ex->response_started && !ex->keep_alive && ex->status == 400);
    struct gw_http_event ev;
    T_ASSERT(gw__ex_take_end(ex) == 0);
    for (;;) {
        if (ex->len == 0)
            T_ASSERT(gw__ex_fill(ex, scaled(5000)) != -ETIMEDOUT);
        T_ASSERT(gw__ex_feed(ex, &ev) == 0);
        if (ev.type == GW_HTTP_EV_HEAD)
            break;
    }
    gw_http_head_free(ex->head);
    gw__ex_begin(ex, ev.head);
    T_ASSERT(!ex->response_started && ex->keep_alive && ex->status == 0 && !ex->request_id[0]);
    gw__ex_status(ex, 299);
    T_ASSERT(ex->status == 299 && !ex->response_started);
}

START_TEST(a_new_request_starts_with_fresh_response_state)
{
    send_str("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    run(p_begin_resets);
}
END_TEST

/* ---- trimming while idle ---------------------------------------------------------------- */

static _Atomic int trims;
static void count_trim(struct gw__transport *t)
{
    (void)t;
    atomic_fetch_add(&trims, 1);
}

static struct gw__transport_ops trimming_ops;
static uint64_t slept_since, woke_after;

/* An exchange over `side` whose transport counts its trims. */
static struct gw__exchange *trimming_exchange(void)
{
    struct gw__transport *tp;
    T_ASSERT(gw__transport_socket_new(side, &tp) == 0);
    trimming_ops = *tp->ops;
    trimming_ops.trim = count_trim;
    tp->ops = &trimming_ops;
    struct gw__exchange *ex;
    T_ASSERT(gw__ex_new(&ex, tp, &lis, "") == 0);
    return ex;
}

static void p_trim_after_delay(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = trimming_exchange();
    ex->idle_since = rt_now_ms();
    gw__ex_idle_trim(ex);
    T_ASSERT(atomic_load(&trims) == 0); /* just idle: the transport keeps what it holds */
    ex->idle_since = rt_now_ms() - GW__TRIM_AFTER_MS;
    gw__ex_idle_trim(ex);
    T_ASSERT(atomic_load(&trims) == 1);
    gw__exchange_unref(ex);
}

START_TEST(idle_trim_asks_the_transport_once_idle_the_trim_delay)
{
    atomic_store(&trims, 0);
    run(p_trim_after_delay);
}
END_TEST

static void woke(void *arg)
{
    struct gw__exchange *ex = arg;
    woke_after = rt_now_ms() - slept_since;
    gw__ex_idle_trim(ex);
    gw__exchange_unref(ex);
}

static void p_hibernate_until_trim(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = trimming_exchange();
    slept_since = ex->idle_since = rt_now_ms();
    gw__ex_idle_trim(ex);
    gw__ex_hibernate(ex, scaled(10000), woke, ex);
}

START_TEST(hibernation_wakes_to_trim_a_transport_that_can)
{
    atomic_store(&trims, 0);
    run(p_hibernate_until_trim);
    /* woken at the trim delay, not at the idle timeout, and trimmed then */
    ck_assert_uint_ge(woke_after, GW__TRIM_AFTER_MS);
    ck_assert_uint_lt(woke_after, (uint64_t)scaled(5000));
    ck_assert_int_eq(atomic_load(&trims), 1);
}
END_TEST

/* A keep-alive client back within the trim delay finds its connection's
 * input buffer and parser in place; one that stays away longer does not
 * cost them. */
static void p_buffer_kept_until_trim_delay(void *arg)
{
    (void)arg;
    struct gw__transport *tp;
    T_ASSERT(gw__transport_socket_new(side, &tp) == 0);
    struct gw__exchange *ex;
    T_ASSERT(gw__ex_new(&ex, tp, &lis, "") == 0);
    T_ASSERT(gw__ex_try_read(ex) == 0); /* nothing sent: the buffer is made, nothing read */
    T_ASSERT(ex->buf && ex->parser);
    const char *buf = ex->buf;
    ex->idle_since = rt_now_ms();
    gw__ex_idle_trim(ex);
    T_ASSERT(ex->buf == buf && ex->parser); /* just idle: kept */
    send_str("GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
    T_ASSERT(gw__ex_fill(ex, scaled(5000)) == 1);
    T_ASSERT(ex->buf == buf); /* read into the same buffer */
    ex->off = ex->len = 0;
    ex->idle_since = rt_now_ms() - GW__TRIM_AFTER_MS;
    gw__ex_idle_trim(ex);
    T_ASSERT(!ex->buf && !ex->parser); /* idle the delay: given back */
    gw__exchange_unref(ex);
}

START_TEST(idle_connection_keeps_its_buffer_and_parser_until_the_trim_delay)
{
    run(p_buffer_kept_until_trim_delay);
}
END_TEST

static void woke_plain(void *arg)
{
    struct gw__exchange *ex = arg;
    woke_after = rt_now_ms() - slept_since;
    gw__ex_idle_trim(ex);
    T_ASSERT(!ex->buf && !ex->parser);
    gw__exchange_unref(ex);
}

static void p_hibernate_plain_until_trim(void *arg)
{
    (void)arg;
    struct gw__transport *tp;
    T_ASSERT(gw__transport_socket_new(side, &tp) == 0);
    T_ASSERT(tp->ops->trim == NULL); /* only the buffer and the parser to give back */
    struct gw__exchange *ex;
    T_ASSERT(gw__ex_new(&ex, tp, &lis, "") == 0);
    T_ASSERT(gw__ex_try_read(ex) == 0);
    slept_since = ex->idle_since = rt_now_ms();
    gw__ex_idle_trim(ex);
    T_ASSERT(ex->buf && ex->parser);
    gw__ex_hibernate(ex, scaled(10000), woke_plain, ex);
}

START_TEST(hibernation_wakes_to_give_back_a_kept_buffer)
{
    woke_after = 0;
    run(p_hibernate_plain_until_trim);
    /* woken at the trim delay, not at the idle timeout, and trimmed then */
    ck_assert_uint_ge(woke_after, GW__TRIM_AFTER_MS);
    ck_assert_uint_lt(woke_after, (uint64_t)scaled(5000));
}
END_TEST

/* ---- writing to a client that stops reading ----------------------------------------- */

static int write_rc;
static uint64_t write_ms;

static void p_stuck(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    ex->write_timeout_ms = scaled(300);
    size_t n = 8u << 20; /* far more than a socketpair buffers */
    char *big = rt_alloc(n);
    T_ASSERT(big);
    memset(big, 'x', n);
    uint64_t t0 = rt_now_ms();
    write_rc = gw__ex_write(ex, big, n);
    write_ms = rt_now_ms() - t0;
}

START_TEST(write_to_a_client_that_stops_reading_times_out)
{
    send_str("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    run(p_stuck);
    ck_assert_int_eq(write_rc, -ETIMEDOUT);
    ck_assert_uint_ge(write_ms, (uint64_t)scaled(300));
    ck_assert_uint_lt(write_ms, (uint64_t)scaled(5000));
}
END_TEST

/* ---- a refusal on the bare descriptor ------------------------------------------------ */

static const char busy_prefix[] = "HTTP/1.1 503 Service Unavailable\r\n";

/* Bytes waiting to be read on fd. */
static int unread(int fd)
{
    int n = -1;
    ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/* The client's view: the whole 503, then the end of the stream. */
static void check_busy_answer(const char *out)
{
    ck_assert_msg(strncmp(out, busy_prefix, sizeof busy_prefix - 1) == 0, "%s", out);
    const char *end = strstr(out, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_str_eq(end + 4, "{\"error\": \"too many connections\"}\n");
    ck_assert_ptr_nonnull(strstr(out, "Connection: close\r\n"));
}

START_TEST(refusal_without_lingering_answers_503_and_drops_what_was_sent)
{
    ck_assert_int_eq(rt_fd_nonblock(side), 0); /* as accepted */
    send_str("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    ck_assert_int_gt(unread(side), 0);
    gw__ex_refuse(side, false, 0);
    ck_assert_int_eq(unread(side), 0);          /* read and dropped */
    ck_assert_int_ne(fcntl(side, F_GETFD), -1); /* still the caller's */
    check_busy_answer(received());
    char c;
    ck_assert_int_eq(read(peer, &c, 1), 0); /* it stopped sending */
    close(side);
}
END_TEST

START_TEST(refusal_on_a_tls_listener_closes_without_an_answer)
{
    ck_assert_int_eq(rt_fd_nonblock(side), 0); /* as accepted */
    /* the start of a ClientHello: such a client cannot read a plaintext 503 */
    static const char hello[] = {0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00};
    ck_assert_int_eq(write(peer, hello, sizeof hello), (ssize_t)sizeof hello);
    gw__ex_refuse(side, true, 1000);
    ck_assert_int_eq(unread(side), 0);          /* read and dropped */
    ck_assert_int_ne(fcntl(side, F_GETFD), -1); /* still the caller's */
    char c;
    ck_assert_int_eq(read(peer, &c, 1), 0); /* nothing, then the end of the stream */
    close(side);
}
END_TEST

static uint64_t refuse_ms;
static void p_refuse_linger(void *arg)
{
    (void)arg;
    uint64_t t0 = rt_now_ms();
    gw__ex_refuse(side, false, scaled(3000));
    refuse_ms = rt_now_ms() - t0;
    T_ASSERT(fcntl(side, F_GETFD) != -1); /* still the caller's */
    rt_close(side);
}

START_TEST(lingering_refusal_answers_503_and_reads_until_the_client_closes)
{
    ck_assert_int_eq(rt_fd_nonblock(side), 0); /* as accepted */
    send_str("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(p_refuse_linger, NULL, NULL, &pid), 0);
    check_busy_answer(received());
    char c;
    ck_assert_int_eq(read(peer, &c, 1), 0); /* it stopped sending, and still reads: */
    send_str("hello");
    usleep((useconds_t)scaled(50) * 1000);
    close(peer); /* ends the lingering before its time */
    peer = -1;
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, scaled(20000), &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_int_eq(reason, RT_NORMAL);
    ck_assert_uint_ge(refuse_ms, (uint64_t)scaled(50)); /* it lingered */
    ck_assert_uint_lt(refuse_ms, (uint64_t)scaled(3000));
}
END_TEST

/* ---- connection and request processes that never run ---------------------
 * rt_fault.h fails the nth stack allocation: the process is reaped before
 * its first instruction, and what conn.c handed it (the client's socket and
 * its count; the exchange reference of a request process) must still be
 * given back. */

static struct gw_listener_stats t_stats;
static rt_atom conn_reason;

/* Starts a connection process on `side` as the connection supervisor does
 * (linked) and waits for it to end. */
static void p_start_conn(void *arg)
{
    unsigned fail_nth = (unsigned)(uintptr_t)arg;
    rt_trap_exit(true);
    atomic_store(&t_stats.connections, 1); /* counted by the acceptor */
    struct gw__conn_arg cs = {.fd = side, .lis = &lis};
    rt_pid pid;
    rt_atom reason = RT_NORMAL;
    rt__test_stack_fail_nth(fail_nth);
    T_ASSERT(gw__conn_start(NULL, &cs, sizeof cs, &pid, &reason) == 0);
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        bool done = m->type == RT_MSG_EXIT && m->from == pid;
        if (done)
            conn_reason = (rt_atom)m->u64;
        rt_msg_free(m);
        if (done)
            break;
    }
}

/* Waits until the client's end sees the other end closed (read 0), keeping
 * what was written before in `got`; false if it stays open. */
static bool peer_sees_close(int64_t ms)
{
    char buf[4096];
    for (;;) {
        struct pollfd pfd = {.fd = peer, .events = POLLIN};
        if (poll(&pfd, 1, (int)ms) <= 0)
            return false;
        ssize_t n = read(peer, buf, sizeof buf);
        if (n <= 0)
            return n == 0;
        size_t k = (size_t)n < sizeof got - 1 - got_len ? (size_t)n : sizeof got - 1 - got_len;
        memcpy(got + got_len, buf, k);
        got_len += k;
        got[got_len] = 0;
    }
}

/* Hibernation over a transport that holds bytes of its own (a TLS session's
 * read-ahead): it asks the transport's `pending`, never the socket (a
 * poll() per keep-alive request), and wakes at once when bytes are held. */
static const struct gw__transport_ops *sock_ops;
static struct gw__transport_ops held_ops;
static bool held_pending;
static _Atomic int held_waits;
static uint64_t hib_start, hib_woke;
static char held_peer; /* stands for a handshake's outcome: the exchange is a TLS one */

static int held_wait(struct gw__transport *t, unsigned events, int64_t timeout_ms)
{
    atomic_fetch_add(&held_waits, 1);
    return sock_ops->wait(t, events, timeout_ms);
}

static bool held_pending_fn(struct gw__transport *t)
{
    (void)t;
    return held_pending;
}

static void p_hibernated(void *arg)
{
    struct gw__exchange *ex = arg;
    hib_woke = rt_now_ms();
    ex->tls = NULL;
}

static void p_hibernate_held(void *arg)
{
    (void)arg;
    struct gw__transport *tp;
    T_ASSERT(gw__transport_socket_new(side, &tp) == 0);
    sock_ops = tp->ops;
    held_ops = *sock_ops;
    held_ops.wait = held_wait;
    held_ops.pending = held_pending_fn;
    tp->ops = &held_ops;
    struct gw__exchange *ex;
    T_ASSERT(gw__ex_new(&ex, tp, &lis, "") == 0);
    rt_defer(gw__exchange_unref, ex);
    ex->tls = (struct gw_tls_peer *)(void *)&held_peer;
    hib_start = rt_now_ms();
    gw__ex_hibernate(ex, scaled(600), p_hibernated, ex);
}

START_TEST(hibernating_asks_the_transport_for_held_bytes_not_the_socket)
{
    /* Nothing held, nothing sent: sleeps its timeout, and no readiness
     * check went to the socket first. */
    held_pending = false;
    atomic_store(&held_waits, 0);
    run(p_hibernate_held);
    int waits = atomic_load(&held_waits);
    ck_assert_int_eq(waits, 0);
    ck_assert_uint_ge(hib_woke - hib_start, scaled(600) - 50);
}
END_TEST

START_TEST(hibernating_with_bytes_held_wakes_at_once)
{
    /* The socket has nothing, the transport has bytes: no sleep. */
    held_pending = true;
    atomic_store(&held_waits, 0);
    run(p_hibernate_held);
    int waits = atomic_load(&held_waits);
    ck_assert_int_eq(waits, 0);
    ck_assert_uint_lt(hib_woke - hib_start, scaled(1000));
}
END_TEST

START_TEST(a_connection_process_that_never_runs_closes_the_socket_and_gives_back_its_count)
{
    lis.stats = &t_stats;
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(p_start_conn, (void *)(uintptr_t)1, NULL, &pid), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, scaled(20000), &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_uint_eq(conn_reason, RT_SYSTEM_LIMIT);
    ck_assert(peer_sees_close(scaled(2000)));
    ck_assert_uint_eq(atomic_load(&t_stats.connections), 0);
}
END_TEST

START_TEST(a_request_process_that_never_runs_gives_back_the_exchange)
{
    lis.stats = &t_stats;
    lis.header_timeout_ms = 5000;
    lis.idle_timeout_ms = 5000;
    ck_assert_int_eq(rt_fd_nonblock(side), 0); /* as accepted */
    send_str("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    got_len = 0;
    got[0] = 0;
    rt_pid pid;
    /* The connection process gets the first stack; its request process
     * would get the second. */
    ck_assert_int_eq(rt_spawn(p_start_conn, (void *)(uintptr_t)2, NULL, &pid), 0);
    /* The connection answers and closes: the exchange (and the socket it
     * owns) is freed only once the request process's reference is gone. */
    ck_assert_msg(peer_sees_close(scaled(5000)), "the connection stayed open");
    ck_assert_msg(strstr(got, "HTTP/1.1 500") != NULL, "got: %s", got);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, scaled(20000), &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_uint_eq(atomic_load(&t_stats.connections), 0);
    /* The connection only shut its sending side down; the exchange, freed
     * with its last reference before the connection process ended, closed
     * the socket, so the client can no longer send. */
    ck_assert_msg(send(peer, "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE,
                  "the exchange was not freed");
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the test writes to an exchange that may have closed */
    Suite *s = suite_create("gw_exchange");
    TCase *tc = tcase_create("exchange");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, content_length_body_is_read_whole_and_ends_with_zero);
    tcase_add_test(tc, chunked_body_is_decoded_and_ends_with_zero);
    tcase_add_test(tc, body_read_times_out_per_read_and_answers_408);
    tcase_add_test(tc, body_that_trickles_meets_the_whole_body_budget);
    tcase_add_test(tc, client_closing_mid_body_is_a_reset_answered_400);
    tcase_add_test(tc, malformed_chunk_is_refused_with_the_parsers_status);
    tcase_add_test(tc, continue_is_sent_once_and_does_not_start_the_response);
    tcase_add_test(tc, continue_is_not_sent_without_expect_or_without_a_body);
    tcase_add_test(tc, continue_is_not_sent_for_a_bodiless_request);
    tcase_add_test(tc, error_that_may_keep_the_connection_keeps_it);
    tcase_add_test(tc, error_that_must_close_closes_and_says_so);
    tcase_add_test(tc, error_on_a_request_that_closes_says_close_even_when_it_may_keep);
    tcase_add_test(tc, answer_carries_the_exchanges_id_and_close_decision);
    tcase_add_test(tc, answer_to_head_states_the_length_and_sends_no_body);
    tcase_add_test(tc, error_to_head_states_the_length_and_sends_no_body);
    tcase_add_test(tc, refused_head_request_gets_an_error_without_body);
    tcase_add_test(tc, a_new_request_starts_with_fresh_response_state);
    tcase_add_test(tc, write_to_a_client_that_stops_reading_times_out);
    tcase_add_test(tc, refusal_without_lingering_answers_503_and_drops_what_was_sent);
    tcase_add_test(tc, refusal_on_a_tls_listener_closes_without_an_answer);
    tcase_add_test(tc, idle_trim_asks_the_transport_once_idle_the_trim_delay);
    tcase_add_test(tc, hibernation_wakes_to_trim_a_transport_that_can);
    tcase_add_test(tc, idle_connection_keeps_its_buffer_and_parser_until_the_trim_delay);
    tcase_add_test(tc, hibernation_wakes_to_give_back_a_kept_buffer);
    tcase_add_test(tc, lingering_refusal_answers_503_and_reads_until_the_client_closes);
    tcase_add_test(tc, hibernating_asks_the_transport_for_held_bytes_not_the_socket);
    tcase_add_test(tc, hibernating_with_bytes_held_wakes_at_once);
    tcase_add_test(tc,
                   a_connection_process_that_never_runs_closes_the_socket_and_gives_back_its_count);
    tcase_add_test(tc, a_request_process_that_never_runs_gives_back_the_exchange);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
