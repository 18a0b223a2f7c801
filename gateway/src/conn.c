/*
 * conn.c: the connection process, one per client connection.
 *
 * It reads from the socket, feeds the request parser, enforces the
 * connection's timeouts (header_timeout_ms from the first byte of a request
 * head: slowloris; idle_timeout_ms between requests; body_timeout_ms for
 * the time spent waiting for the client's body bytes, all reads together,
 * with request_timeout_ms for each read of it, applied by gw__body_next),
 * and for each request
 * head starts a request process, lends it the exchange and waits for it to
 * end. Requests on a connection are handled one after another, so pipelined
 * responses leave in request order. A request process that dies before it
 * answered gets its client a 500 (502 when it was killed from outside);
 * one that dies after it started answering costs the connection, since the
 * client cannot tell where the response ended. Either way nothing else is
 * affected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_int.h"

struct conn_start {
    int fd;
    struct gw__listener *lis;
};

void gw__exchange_unref(void *arg)
{
    struct gw__exchange *ex = arg;
    /* acq_rel: the last owner sees the other's writes before freeing. */
    if (atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (ex->fd >= 0)
        rt_close(ex->fd);
    gw_http_parser_free(ex->parser);
    gw_http_head_free(ex->head);
    free(ex->buf);
    free(ex);
}

int gw__client_write(struct gw__exchange *ex, const void *buf, size_t len)
{
    ex->response_started = true;
    ssize_t n = rt_write(ex->fd, buf, len, GW__WRITE_TIMEOUT_MS);
    return n < 0 ? (int)n : 0;
}

int gw__client_error(struct gw__exchange *ex, int status, const char *message, bool keep)
{
    char buf[1024];
    size_t n = 0;
    int rc = gw_http_error_write(status, message, ex->request_id[0] ? ex->request_id : NULL, !keep,
                                 buf, sizeof buf, &n);
    if (rc < 0)
        return rc;
    ex->status = status;
    if (!keep)
        ex->keep_alive = false;
    return gw__client_write(ex, buf, n);
}

int gw__body_next(struct gw__exchange *ex, const char **data, size_t *len, int64_t timeout_ms)
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
        ex->off = 0;
        uint64_t t0 = rt_now_ms();
        ssize_t n = rt_read(ex->fd, ex->buf, GW__BUF_SIZE, timeout_ms);
        ex->body_wait_ms += rt_now_ms() - t0;
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

static void conn_closed(void *arg)
{
    struct gw__listener *l = arg;
    /* The acceptor admitted a public connection into the descriptor budget;
     * a descriptor is free now, for a spare that was lost (fdlimit.c). */
    if (!l->admin)
        gw__fds_client_leave();
    gw__fds_spare_retry();
    atomic_fetch_sub_explicit(&l->stats->connections, 1, memory_order_relaxed);
}

static bool is_drain(const struct rt_msg *m, void *ctx)
{
    (void)ctx;
    return m->type == GW__MSG_DRAIN;
}

/* Waits for the request process; returns its exit reason. */
static rt_atom await_request(rt_ref ref)
{
    struct rt_msg *m = rt_receive_ref(ref, RT_INFINITY);
    rt_atom reason = (rt_atom)m->u64;
    rt_msg_free(m);
    return reason;
}

static void conn_resume(void *arg);

/* Between requests, with nothing buffered: reads what is there, or
 * hibernates (no stack, no buffer) until the socket is readable, a message
 * comes (drain) or the idle timeout passes. Returns false to close. */
static bool idle_read(struct gw__exchange *ex)
{
    uint64_t now = rt_now_ms();
    if (!ex->idle_since)
        ex->idle_since = now;
    if (!ex->buf && !(ex->buf = malloc(GW__BUF_SIZE)))
        return false;
    ssize_t n = read(ex->fd, ex->buf, GW__BUF_SIZE);
    if (n > 0) {
        ex->off = 0;
        ex->len = (size_t)n;
        ex->idle_since = 0;
        return true;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
        return false;
    uint64_t end = ex->idle_since + ex->lis->idle_timeout_ms;
    if (now >= end)
        return false;
    free(ex->buf);
    ex->buf = NULL;
    ex->off = ex->len = 0;
    gw_http_parser_trim(ex->parser); /* give back the head storage while idle */
    rt_hibernate_poll(ex->fd, RT_POLL_IN, (int64_t)(end - now), conn_resume, ex);
}

static void serve(struct gw__exchange *ex)
{
    struct gw__listener *l = ex->lis;
    uint64_t head_deadline = 0;
    for (;;) {
        struct rt_msg *dm = rt_receive_match(is_drain, NULL, 0);
        if (dm) {
            rt_msg_free(dm);
            ex->draining = true;
        }
        bool in_msg = gw_http_parser_in_message(ex->parser);
        if (ex->draining && !in_msg && ex->len == 0)
            return;
        if (ex->len == 0 && !in_msg) {
            if (!idle_read(ex))
                return;
            head_deadline = rt_now_ms() + l->header_timeout_ms;
        } else if (ex->len == 0) {
            int64_t tmo;
            if (in_msg) {
                uint64_t now = rt_now_ms();
                if (!head_deadline)
                    head_deadline = now + l->header_timeout_ms;
                if (now >= head_deadline) {
                    gw__client_error(ex, 408, "request head not received in time", false);
                    return;
                }
                tmo = (int64_t)(head_deadline - now);
            } else {
                head_deadline = 0;
                tmo = l->idle_timeout_ms;
            }
            int r = rt_poll(ex->fd, RT_POLL_IN | RT_POLL_MSG, tmo);
            if (r == -ETIMEDOUT) {
                if (in_msg) {
                    gw__client_error(ex, 408, "request head not received in time", false);
                }
                return;
            }
            if (r < 0)
                return;
            if (r == (int)RT_POLL_MSG) {
                struct rt_msg *m = rt_receive(0);
                if (m && m->type == GW__MSG_DRAIN)
                    ex->draining = true;
                rt_msg_free(m);
                continue;
            }
            ex->off = 0;
            ssize_t n = read(ex->fd, ex->buf, GW__BUF_SIZE);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n <= 0)
                return; /* closed or reset: nothing to answer */
            ex->len = (size_t)n;
            if (!gw_http_parser_in_message(ex->parser))
                head_deadline = rt_now_ms() + l->header_timeout_ms;
        }
        size_t used = 0;
        struct gw_http_event ev;
        int rc = gw_http_parser_feed(ex->parser, ex->buf + ex->off, ex->len, &used, &ev);
        if (rc < 0) {
            if (rc == -EPROTO) {
                ex->request_id[0] = 0;
                gw__client_error(ex, gw_http_parser_status(ex->parser),
                                 gw_http_parser_reason(ex->parser), false);
            }
            return;
        }
        ex->off += used;
        ex->len -= used;
        if (ev.type == GW_HTTP_EV_NEED_MORE)
            continue;
        if (ev.type == GW_HTTP_EV_DONE)
            continue; /* the end of a bodiless request the request process answered */
        if (ev.type != GW_HTTP_EV_HEAD) {
            /* a body or end without a request process: out of step */
            return;
        }
        head_deadline = 0;
        ex->head = ev.head;
        ex->body_wait_ms = 0; /* each request's body has its own budget */
        ex->response_started = false;
        ex->keep_alive = ev.head->keep_alive && !ex->draining;
        ex->status = 0;
        ex->request_id[0] = 0;
        atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
        rt_ref ref;
        rt_pid req;
        struct rt_spawn_opts o = {.monitor = true,
                                  .monitor_ref = &ref,
                                  .kind = RT_KIND_REQUEST,
                                  .initial_call = "gw_request:handle"};
        if (rt_spawn(gw__request_main, ex, &o, &req) < 0) {
            atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_relaxed);
            gw_http_head_free(ex->head);
            ex->head = NULL;
            gw__client_error(ex, 503, "gateway overloaded", false);
            return;
        }
        rt_atom reason = await_request(ref);
        if (reason != RT_NORMAL) {
            /* The request process crashed or was killed. Its exchange
             * reference died with it (deferred cleanup ran), so the socket
             * is still ours. */
            if (!ex->response_started) {
                int status = (reason == RT_KILLED || reason == RT_KILL) ? 502 : 500;
                gw__client_error(ex, status,
                                 status == 502 ? "request process was stopped"
                                               : "internal error while handling the request",
                                 false);
            }
            return;
        }
        gw_http_head_free(ex->head);
        ex->head = NULL;
        if (!ex->keep_alive)
            return;
        /* A bodiless request leaves its end pending in the parser: take it
         * now, so that the wait for the next request is an idle wait
         * (idle timeout, hibernation), not a wait inside a message. */
        size_t dused = 0;
        struct gw_http_event dev;
        if (gw_http_parser_feed(ex->parser, ex->buf + ex->off, 0, &dused, &dev) < 0)
            return;
    }
}

static void conn_main(void *arg)
{
    struct conn_start cs = *(struct conn_start *)arg;
    free(arg);
    struct gw__listener *l = cs.lis;
    rt_defer(conn_closed, l); /* the acceptor counted the connection */
    struct gw__exchange *ex = calloc(1, sizeof(*ex));
    if (!ex) {
        close(cs.fd);
        return;
    }
    atomic_store_explicit(&ex->refs, 1, memory_order_relaxed);
    ex->fd = cs.fd;
    ex->lis = l;
    ex->conn = rt_self();
    rt_defer(gw__exchange_unref, ex);
    if (gw_http_parser_new(&ex->parser, GW_HTTP_REQUEST, &l->limits) < 0)
        return;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(cs.fd, (struct sockaddr *)&ss, &sl) == 0)
        gw__addr_text((struct sockaddr *)&ss, ex->client_addr, sizeof ex->client_addr,
                      &ex->client_loopback);
    rt_set_detail("%s %s", l->name, ex->client_addr);
    conn_resume(ex);
}

/* The body of the connection process, also where it resumes after an idle
 * hibernation (on a fresh stack). */
static void conn_resume(void *arg)
{
    struct gw__exchange *ex = arg;
    serve(ex);
    /* Lingering close: stop sending, so the client reads our last response
     * rather than a reset caused by unread request bytes. */
    shutdown(ex->fd, SHUT_WR);
}

int gw__conn_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    (void)arg;
    if (extra_size != sizeof(struct conn_start)) {
        *reason = RT_BADARG;
        return -EINVAL;
    }
    /* On failure the acceptor closes the socket. */
    struct conn_start *cs = malloc(sizeof(*cs));
    if (!cs) {
        *reason = RT_SYSTEM_LIMIT;
        return -ENOMEM;
    }
    memcpy(cs, extra, sizeof(*cs));
    struct rt_spawn_opts o = {
        .link = true, .kind = RT_KIND_CONNECTION, .initial_call = "gw_conn:loop"};
    int rc = rt_spawn(conn_main, cs, &o, out);
    if (rc < 0) {
        free(cs);
        *reason = RT_SYSTEM_LIMIT;
    }
    return rc;
}

/* exchange API (temporary): thin forms of the exchange's calls (gw_int.h),
 * over the functions above, until exchange.c takes them over. */

int gw__ex_write(struct gw__exchange *ex, const void *buf, size_t len)
{
    return gw__client_write(ex, buf, len);
}

int gw__ex_writev(struct gw__exchange *ex, const struct iovec *iov, int iovcnt)
{
    ex->response_started = true;
    ssize_t n = rt_writev(ex->fd, iov, iovcnt, GW__WRITE_TIMEOUT_MS);
    return n < 0 ? (int)n : 0;
}

void gw__ex_close_after(struct gw__exchange *ex)
{
    ex->keep_alive = false;
}

void gw__ex_status(struct gw__exchange *ex, int status)
{
    ex->status = status;
}

int gw__ex_error(struct gw__exchange *ex, int status, const char *message, bool keep)
{
    return gw__client_error(ex, status, message, keep);
}

int gw__ex_body_next(struct gw__exchange *ex, const char **data, size_t *len, int64_t timeout_ms)
{
    return gw__body_next(ex, data, len, timeout_ms);
}

int gw__ex_body_status(const struct gw__exchange *ex, int rc)
{
    if (rc == -EPROTO)
        return gw_http_parser_status(ex->parser);
    return rc == -ETIMEDOUT ? 408 : 400;
}

int gw__ex_continue(struct gw__exchange *ex)
{
    if (!ex->head->expect_continue || ex->head->framing == GW_HTTP_BODY_NONE)
        return 0;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t n = rt_write(ex->fd, cont, sizeof cont - 1, GW__WRITE_TIMEOUT_MS);
    return n < 0 ? (int)n : 0;
}
