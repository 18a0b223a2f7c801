/*
 * conn.c: the connection process, one per client connection.
 *
 * It reads from the socket, feeds the request parser, enforces the
 * connection's timeouts (header_timeout_ms from the first byte of a request
 * head: slowloris; idle_timeout_ms between requests; body_timeout_ms for
 * the time spent waiting for the client's body bytes, all reads together,
 * with request_timeout_ms for each read of it, applied by gw__ex_body_next),
 * and for each request
 * head starts a request process, lends it the exchange and waits for it to
 * end. Requests on a connection are handled one after another, so pipelined
 * responses leave in request order. A request process that dies before it
 * answered gets its client a 500 (502 when it was killed from outside;
 * 503 when it went over its memory cap, 504 over its time cap, which are
 * also logged and counted here: the process that would have is gone);
 * one that dies after it started answering costs the connection, since the
 * client cannot tell where the response ended. Either way nothing else is
 * affected. It reads and writes the client only through the exchange
 * (exchange.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw/metrics.h"
#include "gw_int.h"
#include "tls/tls.h"

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

/* The connection process's one cleanup once it has its exchange: the
 * exchange's reference, then the count (conn_closed). */
static void conn_end(void *arg)
{
    struct gw__exchange *ex = arg;
    struct gw__listener *l = ex->lis;
    gw__exchange_unref(ex);
    conn_closed(l);
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

/* The record of a request its memory or time cap ended: the answer when
 * none had started, the access log line (naming the cap) and the metrics
 * its request process would have written. */
static void capped(struct gw__exchange *ex, rt_atom reason, uint64_t t0_ns)
{
    bool mem = reason == RT_MEMORY_LIMIT;
    if (!ex->response_started)
        gw__ex_error(ex, mem ? 503 : 504,
                     mem ? "the request went over its memory limit"
                         : "the request went over its time limit",
                     false);
    uint64_t dur = (rt_now_ns() - t0_ns) / 1000;
    const char *route = ex->capped_route[0] ? ex->capped_route : NULL;
    gw_metrics_request_killed(mem ? GW_METRICS_KILL_MEMORY : GW_METRICS_KILL_TIME);
    gw_metrics_request(route, ex->status, dur);
    if (!gw.cfg->access_log)
        return;
    /* The target as received, up to its query (which may carry a
     * credential): the canonical path died with the request process. */
    const struct gw_http_head *h = ex->head;
    char path[2048];
    size_t n = strcspn(h->target, "?");
    snprintf(path, sizeof path, "%.*s", (int)(n < sizeof path ? n : sizeof path - 1), h->target);
    gw__access_log(ex, h->method, path, route, NULL, NULL, ex->status, 0, dur, 0,
                   rt_atom_name(reason));
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
    int r = gw__ex_try_read(ex);
    if (r > 0) {
        ex->idle_since = 0;
        return true;
    }
    if (r < 0)
        return false;
    uint64_t end = ex->idle_since + ex->lis->idle_timeout_ms;
    if (now >= end)
        return false;
    gw__ex_idle_trim(ex);
    gw__ex_hibernate(ex, (int64_t)(end - now), conn_resume, ex);
}

static void serve(struct gw__exchange *ex)
{
    struct gw__listener *l = ex->lis;
    uint64_t head_deadline = 0;
    for (;;) {
        struct rt_msg *dm = rt_receive_match(is_drain, NULL, 0);
        if (dm) {
            ex->draining = true;
            ex->drain_linger = dm->u64 == GW__DRAIN_LINGER;
            rt_msg_free(dm);
        }
        /* A binary upgrade's handover tells the connections it finds; one
         * accepted just before it whose process started after that message
         * went out learns it here, before its next request, and closes
         * after answering it as they do. Relaxed: a flag set once, read
         * again on every request. */
        if (!ex->draining && atomic_load_explicit(&gw.handover, memory_order_relaxed)) {
            ex->draining = true;
            ex->drain_linger = true;
        }
        bool in_msg = gw__ex_in_message(ex);
        if (ex->draining && !ex->drain_linger && !in_msg && ex->len == 0)
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
                    gw__ex_error(ex, 408, "request head not received in time", false);
                    return;
                }
                tmo = (int64_t)(head_deadline - now);
            } else {
                head_deadline = 0;
                tmo = l->idle_timeout_ms;
            }
            int r = gw__ex_fill(ex, tmo);
            if (r == -ETIMEDOUT) {
                if (in_msg) {
                    gw__ex_error(ex, 408, "request head not received in time", false);
                }
                return;
            }
            if (r == -EAGAIN)
                continue;
            if (r < 0)
                return; /* closed or reset: nothing to answer */
            if (r == 0) {
                struct rt_msg *m = rt_receive(0);
                if (m && m->type == GW__MSG_DRAIN) {
                    ex->draining = true;
                    ex->drain_linger = m->u64 == GW__DRAIN_LINGER;
                }
                rt_msg_free(m);
                continue;
            }
            if (!gw__ex_in_message(ex))
                head_deadline = rt_now_ms() + l->header_timeout_ms;
        }
        struct gw_http_event ev;
        int rc = gw__ex_feed(ex, &ev);
        if (rc < 0) {
            if (rc == -EPROTO)
                gw__ex_error(ex, gw_http_parser_status(ex->parser),
                             gw_http_parser_reason(ex->parser), false);
            return;
        }
        if (ev.type == GW_HTTP_EV_NEED_MORE)
            continue;
        if (ev.type == GW_HTTP_EV_DONE)
            continue; /* the end of a bodiless request the request process answered */
        if (ev.type != GW_HTTP_EV_HEAD) {
            /* a body or end without a request process: out of step */
            return;
        }
        head_deadline = 0;
        gw__ex_begin(ex, ev.head);
        atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
        rt_ref ref;
        rt_pid req;
        /* A request process that never runs gives back the reference it
         * was handed, as its deferred cleanup would have. */
        struct rt_spawn_opts o = {.monitor = true,
                                  .monitor_ref = &ref,
                                  .kind = gw__kinds.request,
                                  .initial_call = "gw_request:handle",
                                  .arg_free = gw__exchange_unref,
                                  .arena = GW__REQUEST_ARENA};
        uint64_t t0 = rt_now_ns();
        if (rt_spawn(gw__request_main, ex, &o, &req) < 0) {
            atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_relaxed);
            gw__ex_error(ex, 503, "gateway overloaded", false); /* framed by the head's method */
            gw_http_head_free(ex->head);
            ex->head = NULL;
            return;
        }
        rt_atom reason = await_request(ref);
        /* The policy chain's state (its response fields) lived on the
         * request process's stack and in its heap, both gone now however
         * it ended: a cap, a crash or a kill mid-write leave ex->pol
         * pointing at freed memory that no answer below may read. The
         * monitor's message orders this store after the process's end. */
        ex->pol = NULL;
        if (reason == RT_MEMORY_LIMIT || reason == RT_TIME_LIMIT) {
            capped(ex, reason, t0);
            return;
        }
        if (reason != RT_NORMAL) {
            /* The request process crashed or was killed. Its exchange
             * reference died with it (deferred cleanup ran), so the socket
             * is still ours. */
            if (!ex->response_started) {
                /* Stopped from outside (an exit signal `kill`, or the
                 * admin API's kill with its reason) rather than crashed. */
                bool stopped =
                    reason == RT_KILLED || reason == RT_KILL || gw__admin_kill_reason(reason);
                int status = stopped ? 502 : 500;
                gw__ex_error(ex, status,
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
        if (gw__ex_take_end(ex) < 0)
            return;
    }
}

static void conn_main(void *arg)
{
    struct gw__conn_arg cs = *(struct gw__conn_arg *)arg;
    free(arg);
    struct gw__listener *l = cs.lis;
    uint64_t closed = rt_defer(conn_closed, l); /* the acceptor counted the connection */
    /* The peer's address first: the transport owns the descriptor after. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[GW__ADDR_TEXT_SIZE] = "";
    bool loopback = false;
    if (getpeername(cs.fd, (struct sockaddr *)&ss, &sl) == 0)
        gw__addr_text((struct sockaddr *)&ss, addr, sizeof addr, &loopback);
    rt_set_detail("%s %s", l->name, addr);
    struct gw__transport *tp;
    struct gw__exchange *ex;
    struct gw_tls_peer peer;
    if (l->tls) {
        /* The handshake, here in the connection's own process and under
         * the header timeout: a client stalling in it is dropped like one
         * stalling in its request head. */
        enum gw_tls_fail why;
        int rc = gw_tls_accept(l->tls, cs.fd, l->header_timeout_ms, &tp, &peer, &why);
        if (rc < 0) {
            rt_log(RT_LOG_DEBUG, "listener %s: TLS handshake with %s failed: %s", l->name, addr,
                   gw_tls_fail_name(why));
            return;
        }
    } else if (gw__transport_socket_new(cs.fd, &tp) < 0) {
        return;
    }
    if (gw__ex_new(&ex, tp, l, addr) < 0)
        return;
    /* One cleanup record rather than two for the rest of the connection's
     * life: each is a block an idle connection keeps. */
    if (rt_defer(conn_end, ex))
        rt_undefer(closed, false);
    ex->client_loopback = loopback;
    if (l->tls) {
        if (!(ex->tls = malloc(sizeof *ex->tls)))
            return;
        *ex->tls = peer;
    }
    conn_resume(ex);
}

/* The body of the connection process, also where it resumes after an idle
 * hibernation (on a fresh stack). */
static void conn_resume(void *arg)
{
    struct gw__exchange *ex = arg;
    /* A client descriptor that could not be waited on (an epoll error; a
     * second waiter cannot be, the connection is its only one) is closed
     * rather than read again and again until the idle timeout. */
    if (rt_hibernate_poll_error() == 0)
        serve(ex);
    gw__ex_shutdown(ex);
}

/* A connection process that never ran (no stack for it): the client's
 * socket and its count, which conn_main would have taken over, are given
 * back here. */
static void conn_never_ran(void *arg)
{
    struct gw__conn_arg *cs = arg;
    close(cs->fd);
    conn_closed(cs->lis);
    free(cs);
}

int gw__conn_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    (void)arg;
    if (extra_size != sizeof(struct gw__conn_arg)) {
        *reason = RT_BADARG;
        return -EINVAL;
    }
    /* On failure the acceptor closes the socket. */
    struct gw__conn_arg *cs = malloc(sizeof(*cs));
    if (!cs) {
        *reason = RT_SYSTEM_LIMIT;
        return -ENOMEM;
    }
    memcpy(cs, extra, sizeof(*cs));
    struct rt_spawn_opts o = {.link = true,
                              .kind = gw__kinds.connection,
                              .initial_call = "gw_conn:loop",
                              .arg_free = conn_never_ran};
    int rc = rt_spawn(conn_main, cs, &o, out);
    if (rc < 0) {
        free(cs);
        *reason = RT_SYSTEM_LIMIT;
    }
    return rc;
}
