/*
 * exchange.c: the exchange (exchange.h), the only code that reads from or
 * writes to a client connection and the only writer of the exchange's
 * response state; and the plain-socket transport beneath it.
 *
 * Reading: the connection process reads request heads (try_read, fill,
 * hibernate between requests); the request process reads the body through
 * gw__ex_body_next, whose two timeouts bound a slow client (each read, and
 * all the waiting for one body together). Writing: every byte of a
 * response goes through gw__ex_write/writev, which mark the response
 * started; answers the gateway makes itself are built by http/response.c
 * and carry the request id and the exchange's keep-alive decision, and are
 * framed here by the request's method: an answer to HEAD states the length
 * a GET would get and sends no body, whichever code answers (RFC 9112
 * §6.3; a keep-alive client would read a body as the next response).
 * A client refused before it has an exchange (listener.c) is answered here
 * too, on its bare descriptor (gw__ex_refuse).
 */
#include "exchange.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_int.h"
#include "policy/policy.h"

/* ---- the plain-socket transport ------------------------------------------- */

static ssize_t sock_read(struct gw__transport *t, void *buf, size_t cap, int64_t timeout_ms)
{
    if (timeout_ms != 0)
        return rt_read(t->fd, buf, cap, timeout_ms);
    for (;;) {
        ssize_t n = read(t->fd, buf, cap);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t sock_write(struct gw__transport *t, const void *buf, size_t len, int64_t timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : rt_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        ssize_t w = write(t->fd, buf, len);
        if (w > 0)
            return w;
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            return -errno;
        uint64_t now = rt_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        int r = rt_poll(t->fd, RT_POLL_OUT,
                        deadline == UINT64_MAX ? RT_INFINITY : (int64_t)(deadline - now));
        if (r < 0)
            return r;
    }
}

static int sock_writev(struct gw__transport *t, const struct iovec *iov, int iovcnt,
                       int64_t timeout_ms)
{
    ssize_t n = rt_writev(t->fd, iov, iovcnt, timeout_ms);
    return n < 0 ? (int)n : 0;
}

static int sock_wait(struct gw__transport *t, unsigned events, int64_t timeout_ms)
{
    return rt_poll(t->fd, events, timeout_ms);
}

static void sock_shutdown(struct gw__transport *t)
{
    shutdown(t->fd, SHUT_WR);
}

static int sock_split(struct gw__transport *t, struct gw__transport **out)
{
    int fd = fcntl(t->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    return gw__transport_socket_new(fd, out);
}

static void sock_close(struct gw__transport *t)
{
    rt_close(t->fd);
    free(t);
}

static const struct gw__transport_ops sock_ops = {
    .read = sock_read,
    .write = sock_write,
    .writev = sock_writev,
    .wait = sock_wait,
    .shutdown = sock_shutdown,
    .split = sock_split,
    .close = sock_close,
};

int gw__transport_socket_new(int fd, struct gw__transport **out)
{
    int rc = rt_fd_nonblock(fd);
    if (rc < 0) {
        rt_close(fd);
        return rc;
    }
    return gw__transport_socket_wrap(fd, out);
}

int gw__transport_socket_wrap(int fd, struct gw__transport **out)
{
    struct gw__transport *t = malloc(sizeof(*t));
    if (!t) {
        rt_close(fd);
        return -ENOMEM;
    }
    t->ops = &sock_ops;
    t->fd = fd;
    *out = t;
    return 0;
}

void gw__transport_socket_borrow(struct gw__transport *t, int fd)
{
    t->ops = &sock_ops;
    t->fd = fd;
}

int gw__transport_write_all(struct gw__transport *t, const void *buf, size_t len,
                            int64_t timeout_ms)
{
    struct iovec iov = {(void *)buf, len};
    return t->ops->writev(t, &iov, 1, timeout_ms);
}

/* ---- the exchange ----------------------------------------------------------- */

/* The input buffer and the request part (exchange.h), one block. */
struct ex_in {
    struct gw__ex_req req;
    char buf[GW__BUF_SIZE];
};

/* Where the request part's strings point while there is none: read as
 * empty, never written (nothing writes them outside a request). */
static char no_text[1];

_Static_assert(GW__BUF_SIZE <= UINT32_MAX, "input offsets are 32-bit");

/* The block ex->buf is in (a buffer of ensure_buf's). */
static struct ex_in *in_of(struct gw__exchange *ex)
{
    return ex->buf ? (struct ex_in *)(ex->buf - offsetof(struct ex_in, buf)) : NULL;
}

static void req_part_clear(struct gw__exchange *ex)
{
    ex->client = ex->request_id = ex->capped_route = no_text;
}

int gw__ex_new(struct gw__exchange **out, struct gw__transport *tp, struct gw__listener *lis,
               const char *client_addr)
{
    size_t alen = strnlen(client_addr, GW__ADDR_TEXT_SIZE - 1);
    struct gw__exchange *ex = calloc(1, sizeof(*ex) + alen + 1);
    if (!ex) {
        tp->ops->close(tp);
        return -ENOMEM;
    }
    char *addr = (char *)(ex + 1);
    memcpy(addr, client_addr, alen);
    ex->client_addr = addr;
    req_part_clear(ex);
    atomic_store_explicit(&ex->refs, 1, memory_order_relaxed);
    ex->tp = tp;
    ex->lis = lis;
    ex->write_timeout_ms = GW__WRITE_TIMEOUT_MS;
    int rc = gw_http_parser_new(&ex->parser, GW_HTTP_REQUEST, &lis->limits);
    if (rc < 0) {
        gw__exchange_unref(ex);
        return rc;
    }
    *out = ex;
    return 0;
}

void gw__exchange_unref(void *arg)
{
    struct gw__exchange *ex = arg;
    /* acq_rel: the last owner sees the other's writes before freeing. */
    if (atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (ex->tp)
        ex->tp->ops->close(ex->tp);
    gw_http_parser_free(ex->parser);
    gw_http_head_free(ex->head);
    free(in_of(ex));
    free(ex->tls);
    free(ex);
}

/* The input buffer and with it the request part: one allocation while a
 * connection is busy, none while it is idle. */
static int ensure_buf(struct gw__exchange *ex)
{
    if (ex->buf)
        return 0;
    struct ex_in *in = malloc(sizeof(*in));
    if (!in)
        return -ENOMEM;
    in->req.client[0] = in->req.request_id[0] = in->req.capped_route[0] = 0;
    ex->buf = in->buf;
    ex->client = in->req.client;
    ex->request_id = in->req.request_id;
    ex->capped_route = in->req.capped_route;
    return 0;
}

/* Reads into the empty buffer without waiting: 1, 0 (nothing yet),
 * -ECONNRESET. */
static int read_now(struct gw__exchange *ex)
{
    if (ensure_buf(ex) < 0)
        return -ECONNRESET;
    ssize_t n = ex->tp->ops->read(ex->tp, ex->buf, GW__BUF_SIZE, 0);
    if (n > 0) {
        ex->off = 0;
        ex->len = (size_t)n;
        return 1;
    }
    if (n == -EAGAIN)
        return 0;
    return -ECONNRESET;
}

int gw__ex_try_read(struct gw__exchange *ex)
{
    return read_now(ex);
}

int gw__ex_fill(struct gw__exchange *ex, int64_t timeout_ms)
{
    int r = ex->tp->ops->wait(ex->tp, RT_POLL_IN | RT_POLL_MSG, timeout_ms);
    if (r == -ETIMEDOUT)
        return r;
    if (r < 0)
        return -ECONNRESET;
    if (r == (int)RT_POLL_MSG)
        return 0;
    r = read_now(ex);
    return r == 0 ? -EAGAIN : r;
}

/* The parser, made again after an idle period gave it back
 * (gw__ex_idle_trim): between messages it holds nothing a fresh one lacks
 * (every message starts from llhttp's start state and a reset scanner). */
static int ensure_parser(struct gw__exchange *ex)
{
    if (ex->parser)
        return 0;
    return gw_http_parser_new(&ex->parser, GW_HTTP_REQUEST, &ex->lis->limits);
}

int gw__ex_feed(struct gw__exchange *ex, struct gw_http_event *ev)
{
    size_t used = 0;
    int rc = ensure_parser(ex);
    if (rc < 0)
        return rc;
    rc = gw_http_parser_feed(ex->parser, ex->buf + ex->off, ex->len, &used, ev);
    if (rc < 0) {
        if (ex->buf)
            ex->request_id[0] = 0;
        return rc;
    }
    ex->off += used;
    ex->len -= used;
    return rc;
}

bool gw__ex_in_message(const struct gw__exchange *ex)
{
    return ex->parser && gw_http_parser_in_message(ex->parser);
}

int gw__ex_take_end(struct gw__exchange *ex)
{
    size_t used = 0;
    struct gw_http_event ev;
    int rc = gw_http_parser_feed(ex->parser, ex->buf + ex->off, 0, &used, &ev);
    return rc < 0 ? rc : 0;
}

/* Whether the exchange holds something gw__ex_idle_trim gives back. */
static bool trimmable(const struct gw__exchange *ex)
{
    return ex->buf || ex->parser || ex->tp->ops->trim;
}

void gw__ex_idle_trim(struct gw__exchange *ex)
{
    if (!ex->idle_since || rt_now_ms() - ex->idle_since < GW__TRIM_AFTER_MS)
        return;
    free(in_of(ex));
    ex->buf = NULL;
    req_part_clear(ex);
    ex->off = ex->len = 0;
    /* The parser too (about 500 bytes with its limits and llhttp's
     * state): an idle connection keeps only what says who it is. The next
     * bytes make a fresh one (gw__ex_feed). */
    ex->parser = gw_http_parser_free(ex->parser);
    if (ex->tp->ops->trim)
        ex->tp->ops->trim(ex->tp);
}

_Noreturn void gw__ex_hibernate(struct gw__exchange *ex, int64_t timeout_ms, rt_entry fn, void *arg)
{
    /* A transport may hold bytes already taken off the socket (a TLS
     * session's read-ahead, or the plaintext of a record not read whole):
     * then there is nothing to sleep for. Only the transport is asked, not
     * the socket: the hibernation's own wait sees a readable socket at
     * once, so a poll() here would cost a system call per keep-alive
     * request for nothing. */
    if (ex->tp->ops->pending && ex->tp->ops->pending(ex->tp))
        timeout_ms = 0;
    /* Not idle long enough to trim yet: wake when it is (gw__ex_idle_trim
     * then trims, and the caller hibernates for the rest). */
    if (trimmable(ex) && ex->idle_since) {
        uint64_t idle = rt_now_ms() - ex->idle_since;
        if (idle < GW__TRIM_AFTER_MS &&
            (timeout_ms < 0 || (uint64_t)timeout_ms > GW__TRIM_AFTER_MS - idle))
            timeout_ms = (int64_t)(GW__TRIM_AFTER_MS - idle);
    }
    rt_hibernate_poll(ex->tp->fd, RT_POLL_IN, timeout_ms, fn, arg);
}

void gw__ex_begin(struct gw__exchange *ex, struct gw_http_head *head)
{
    ex->head = head;
    ex->body_wait_ms = 0; /* each request's body has its own budget */
    ex->response_started = false;
    ex->continued = false;
    ex->keep_alive = head->keep_alive && !ex->draining;
    ex->status = 0;
    ex->request_id[0] = 0;
    ex->pol = NULL;
    ex->capped_route[0] = 0;
}

void gw__ex_shutdown(struct gw__exchange *ex)
{
    ex->tp->ops->shutdown(ex->tp);
}

/* ---- writing ------------------------------------------------------------------ */

/* A request process over its memory cap exits before its first write: the
 * answer to give is its connection's (503), not what the failed
 * allocation made the request conclude. */
int gw__ex_write(struct gw__exchange *ex, const void *buf, size_t len)
{
    rt_exit_if_over_cap();
    ex->response_started = true;
    return gw__transport_write_all(ex->tp, buf, len, ex->write_timeout_ms);
}

int gw__ex_writev(struct gw__exchange *ex, const struct iovec *iov, int iovcnt)
{
    rt_exit_if_over_cap();
    ex->response_started = true;
    return ex->tp->ops->writev(ex->tp, iov, iovcnt, ex->write_timeout_ms);
}

void gw__ex_close_after(struct gw__exchange *ex)
{
    ex->keep_alive = false;
}

int gw__ex_send_buffer(struct gw__exchange *ex, int bytes)
{
    if (setsockopt(ex->tp->fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) < 0)
        return -errno;
    return 0;
}

void gw__ex_status(struct gw__exchange *ex, int status)
{
    ex->status = status;
}

bool gw__ex_head_request(const struct gw__exchange *ex)
{
    /* Methods are case-sensitive (RFC 9110 §9.1): only "HEAD" is HEAD. */
    if (ex->head)
        return strcmp(ex->head->method, "HEAD") == 0;
    size_t n = 0;
    const char *m = ex->parser ? gw_http_parser_method(ex->parser, &n) : NULL;
    return m && n == 4 && memcmp(m, "HEAD", 4) == 0;
}

/* a.fields followed by the policy chain's response fields (ex->pol):
 * *merged when both are there (rt_alloc'd: the caller frees it), else the
 * one that is. -ENOMEM. */
static int with_policy_fields(const struct gw__exchange *ex, struct gw_http_answer *a,
                              struct gw_http_kv **merged)
{
    *merged = NULL;
    if (!ex->pol || !ex->pol->nresp)
        return 0;
    if (!a->nfields) {
        a->fields = ex->pol->resp;
        a->nfields = ex->pol->nresp;
        return 0;
    }
    size_t n = a->nfields + ex->pol->nresp;
    struct gw_http_kv *m = rt_alloc(n * sizeof(*m));
    if (!m)
        return -ENOMEM;
    memcpy(m, a->fields, a->nfields * sizeof(*m));
    memcpy(m + a->nfields, ex->pol->resp, ex->pol->nresp * sizeof(*m));
    a->fields = m;
    a->nfields = n;
    *merged = m;
    return 0;
}

/* An error answer with the fields of `a` beyond the exchange's own. */
static int error_with(struct gw__exchange *ex, struct gw_http_answer a, const char *message,
                      bool keep)
{
    if (!keep)
        ex->keep_alive = false;
    a.request_id = ex->request_id;
    a.close = !ex->keep_alive;
    a.head_only = gw__ex_head_request(ex);
    struct gw_http_kv *merged;
    int rc = with_policy_fields(ex, &a, &merged);
    if (rc < 0)
        return rc;
    /* The error body is bounded (gw_http_error_answer cuts the message);
     * the fields are bounded by what their callers hold. */
    char sbuf[1024];
    size_t cap = sizeof sbuf;
    for (size_t i = 0; i < a.nfields; i++)
        cap += strlen(a.fields[i].name) + strlen(a.fields[i].value) + 4;
    char *buf = cap == sizeof sbuf ? sbuf : rt_alloc(cap);
    size_t n = 0;
    rc = buf ? gw_http_error_answer(&a, message, buf, cap, &n) : -ENOMEM;
    if (rc == 0) {
        ex->status = a.status;
        rc = gw__ex_write(ex, buf, n);
    }
    if (buf != sbuf)
        rt_free(buf);
    rt_free(merged);
    return rc;
}

int gw__ex_error_fields(struct gw__exchange *ex, int status, const char *message, bool keep,
                        const struct gw_http_kv *extra, size_t nextra)
{
    return error_with(ex,
                      (struct gw_http_answer){.status = status, .fields = extra, .nfields = nextra},
                      message, keep);
}

int gw__ex_error_allow(struct gw__exchange *ex, int status, const char *message, bool keep,
                       const char *allow)
{
    return error_with(ex, (struct gw_http_answer){.status = status, .allow = allow}, message, keep);
}

int gw__ex_error(struct gw__exchange *ex, int status, const char *message, bool keep)
{
    return gw__ex_error_allow(ex, status, message, keep, NULL);
}

int gw__ex_error_retry(struct gw__exchange *ex, int status, const char *message,
                       unsigned retry_after_s)
{
    char secs[16];
    snprintf(secs, sizeof secs, "%u", retry_after_s);
    struct gw_http_kv f = {"Retry-After", secs};
    return error_with(ex, (struct gw_http_answer){.status = status, .fields = &f, .nfields = 1},
                      message, false);
}

int gw__ex_answer(struct gw__exchange *ex, const struct gw_http_answer *a, const void *body,
                  size_t body_len)
{
    struct gw_http_answer h = *a;
    if (a->until_close)
        gw__ex_close_after(ex); /* nothing else tells the client where the body ends */
    h.request_id = ex->request_id;
    h.close = !ex->keep_alive;
    h.content_length = body_len;
    h.head_only = gw__ex_head_request(ex);
    struct gw_http_kv *merged;
    if (with_policy_fields(ex, &h, &merged) < 0)
        return -ENOMEM;
    /* The fields a caller adds are bounded by what it holds (a route's
     * respond fields, the admin API's static values): room for them all. */
    size_t cap = 512 + (h.location ? strlen(h.location) : 0) +
                 (h.location_query ? strlen(h.location_query) : 0) +
                 (h.allow ? strlen(h.allow) : 0) + (h.content_type ? strlen(h.content_type) : 0);
    for (size_t i = 0; i < h.nfields; i++)
        cap += strlen(h.fields[i].name) + strlen(h.fields[i].value) + 4;
    char *head = rt_alloc(cap);
    if (!head) {
        rt_free(merged);
        return -ENOMEM;
    }
    size_t hn = 0;
    int rc = gw_http_answer_head_write(&h, head, cap, &hn);
    if (rc == 0) {
        ex->status = a->status;
        bool with_body = !h.head_only && gw_http_status_has_body(a->status);
        struct iovec iov[2] = {{head, hn}, {(void *)body, with_body ? body_len : 0}};
        rc = gw__ex_writev(ex, iov, 2);
    }
    rt_free(head);
    rt_free(merged);
    return rc;
}

/* ---- the request body ---------------------------------------------------------- */

int gw__ex_body_next(struct gw__exchange *ex, const char **data, size_t *len, int64_t timeout_ms)
{
    for (;;) {
        size_t used = 0;
        struct gw_http_event ev;
        int rc = gw_http_parser_feed(ex->parser, ex->buf + ex->off, ex->len, &used, &ev);
        if (rc < 0)
            return rc == -EBUSY ? 0 : rc;
        ex->off += used;
        ex->len -= used;
        if (ev.type == GW_HTTP_EV_BODY) {
            *data = ev.data;
            *len = ev.len;
            return 1;
        }
        if (ev.type == GW_HTTP_EV_DONE)
            return 0;
        if (ev.type == GW_HTTP_EV_HEAD) {
            /* cannot happen inside a body; refuse rather than leak */
            gw_http_head_free(ev.head);
            return -EPROTO;
        }
        if (ex->len > 0)
            continue;
        if (ex->eof)
            return -ECONNRESET;
        /* Each read has its timeout, and the body as a whole a budget of
         * waiting: a body trickled just fast enough for the first would
         * otherwise hold its upstream connection for as long as the client
         * likes. Only time spent waiting for the client counts: connecting
         * to an upstream, retries and writes to a slow one are not the
         * client's delay (its bytes wait in the socket meanwhile). */
        uint64_t budget = ex->lis->body_timeout_ms;
        if (ex->body_wait_ms >= budget)
            return -ETIMEDOUT;
        if (timeout_ms < 0 || budget - ex->body_wait_ms < (uint64_t)timeout_ms)
            timeout_ms = (int64_t)(budget - ex->body_wait_ms);
        if (ensure_buf(ex) < 0)
            return -ENOMEM;
        ex->off = 0;
        uint64_t t0 = rt_now_ms();
        /* A timeout of 0 left would mean "do not wait" to the transport:
         * the budget is spent, which is a timeout. */
        ssize_t n = timeout_ms > 0 ? ex->tp->ops->read(ex->tp, ex->buf, GW__BUF_SIZE, timeout_ms)
                                   : -ETIMEDOUT;
        uint64_t waited = ex->body_wait_ms + (rt_now_ms() - t0);
        ex->body_wait_ms = waited < UINT32_MAX ? (uint32_t)waited : UINT32_MAX;
        if (n == 0) {
            ex->eof = true;
            struct gw_http_event fe;
            if (gw_http_parser_finish(ex->parser, &fe) == 0 && fe.type == GW_HTTP_EV_DONE)
                return 0;
            return -ECONNRESET;
        }
        if (n < 0)
            return (int)n;
        ex->len = (size_t)n;
    }
}

int gw__ex_body_status(const struct gw__exchange *ex, int rc)
{
    if (rc == -EPROTO)
        return gw_http_parser_status(ex->parser);
    if (rc == -ETIMEDOUT)
        return 408;
    return 400;
}

int gw__ex_continue(struct gw__exchange *ex)
{
    if (!ex->head->expect_continue || ex->head->framing == GW_HTTP_BODY_NONE || ex->continued)
        return 0;
    ex->continued = true;
    char buf[64];
    size_t n = 0;
    struct gw_http_answer a = {.status = 100};
    int rc = gw_http_answer_head_write(&a, buf, sizeof buf, &n);
    if (rc < 0)
        return rc;
    /* An interim answer: the response itself has not started. */
    return gw__transport_write_all(ex->tp, buf, n, ex->write_timeout_ms);
}

int gw__ex_discard_body(struct gw__exchange *ex)
{
    if (gw__ex_continue(ex) < 0)
        return 400;
    const char *d;
    size_t n;
    int rc;
    while ((rc = gw__ex_body_next(ex, &d, &n, ex->lis->request_timeout_ms)) == 1)
        ;
    return rc == 0 ? 0 : gw__ex_body_status(ex, rc);
}

int gw__ex_collect_body(struct gw__exchange *ex, size_t max, char **out, size_t *len)
{
    if (gw__ex_continue(ex) < 0)
        return 400;
    size_t cap = 4096, used = 0;
    char *body = rt_alloc(cap);
    if (!body)
        return -ENOMEM;
    const char *d;
    size_t n;
    int r;
    while ((r = gw__ex_body_next(ex, &d, &n, ex->lis->request_timeout_ms)) == 1) {
        if (used + n + 1 > max) {
            rt_free(body);
            return -EMSGSIZE;
        }
        if (used + n + 1 > cap) {
            size_t ncap = cap;
            while (used + n + 1 > ncap)
                ncap *= 2;
            char *nb = rt_realloc(body, ncap);
            if (!nb) {
                rt_free(body);
                return -ENOMEM;
            }
            body = nb;
            cap = ncap;
        }
        memcpy(body + used, d, n);
        used += n;
    }
    if (r < 0) {
        rt_free(body);
        return gw__ex_body_status(ex, r);
    }
    body[used] = 0;
    *out = body;
    *len = used;
    return 0;
}

/* ---- a tunnel ------------------------------------------------------------------ */

void gw__ex_take_buffered(struct gw__exchange *ex, const char **data, size_t *len)
{
    *data = ex->buf ? ex->buf + ex->off : NULL;
    *len = ex->len;
    ex->off += ex->len;
    ex->len = 0;
}

int gw__ex_tunnel_open(struct gw__exchange *ex, struct gw__transport **writer)
{
    ex->keep_alive = false; /* nothing follows a tunnel on this connection */
    ex->response_started = true;
    return ex->tp->ops->split(ex->tp, writer);
}

int gw__ex_tunnel_read(struct gw__exchange *ex, int64_t timeout_ms, const char **data, size_t *len)
{
    int r = gw__ex_fill(ex, timeout_ms);
    if (r != 1)
        return r;
    *data = ex->buf + ex->off;
    *len = ex->len;
    ex->len = 0;
    return 1;
}

/* ---- a refusal ------------------------------------------------------------------ */

/* TLS: a client of a TLS listener cannot read a plaintext 503, and an
 * answer inside a session would cost a handshake (CPU, the session's
 * memory, round trips) exactly when the listener has none to spare: it is
 * closed without an answer (what it sent is read and dropped first, so the
 * close is an orderly one, not a reset, where that is possible at once).
 * The choice is made here, so listener.c keeps deciding only when to
 * refuse. */
void gw__ex_refuse(int fd, bool tls, int64_t linger_ms)
{
    char sink[4096];
    size_t n = 0;
    if (tls) {
        shutdown(fd, SHUT_WR);
        while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
            ;
        return;
    }
    if (gw_http_busy_write(sink, sizeof sink, &n) < 0)
        n = 0;
    if (linger_ms > 0) {
        if (!n || rt_write(fd, sink, n, linger_ms) < 0)
            return;
        shutdown(fd, SHUT_WR);
        uint64_t end = rt_now_ms() + (uint64_t)linger_ms;
        while (rt_now_ms() < end &&
               rt_read(fd, sink, sizeof sink, (int64_t)(end - rt_now_ms())) > 0)
            ;
        return;
    }
    ssize_t w = n ? send(fd, sink, n, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
    (void)w; /* nothing more to try: the socket is closed either way */
    shutdown(fd, SHUT_WR);
    while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
}
