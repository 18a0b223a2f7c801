/*
 * pool.c: each upstream target's keep-alive connection pool: checking a
 * connection out (an idle one, or a new one connected within the timeout)
 * and back in.
 *
 * The hot path never goes through a process and does no I/O under a lock:
 * a checkout takes a busy slot with one atomic add (max_connections bounds
 * the busy connections at every moment, which the descriptor budget counts
 * on, fdlimit.c), then pops the idle stack under the pool's mutex; a
 * checkin pushes under it. A checked-out connection is guarded by a
 * deferred cleanup of the request process, so a process killed or crashed
 * with it still closes it and gives its slot back; so is a new one while
 * it connects and handshakes, which can take the whole connect timeout.
 *
 * A connection is a transport (exchange.h), pooled as it is: whoever reads
 * and writes the upstream (relay.c, tunnel.c, workflow/call.c, the health
 * checks) does it through the transport and never learns what is beneath
 * it. For an upstream with `tls` a new connection is handshaken here
 * (tls/client.c), within the connect timeout, and an idle TLS connection
 * is pooled and reused like a plain one: no handshake per request.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "gw_int.h"
#include "tls/tls.h"
#include "upstream_int.h"

int gw__pool_init(struct gw__pool *p, uint32_t max_idle, uint32_t max_active)
{
    pthread_mutex_init(&p->lock, NULL);
    p->max_idle = max_idle;
    p->max_active = max_active;
    p->nidle = 0;
    atomic_init(&p->active, 0);
    p->idle = calloc(max_idle ? max_idle : 1, sizeof(*p->idle));
    return p->idle ? 0 : -ENOMEM;
}

void gw__pool_done(struct gw__pool *p)
{
    for (size_t k = 0; k < p->nidle; k++)
        p->idle[k]->ops->close(p->idle[k]);
    free(p->idle);
    p->idle = NULL;
    p->nidle = 0;
    pthread_mutex_destroy(&p->lock);
}

void gw__pool_counts(struct gw__pool *p, uint32_t *active, size_t *idle)
{
    pthread_mutex_lock(&p->lock);
    *idle = p->nidle;
    pthread_mutex_unlock(&p->lock);
    /* Relaxed: a figure shown on its own. */
    *active = atomic_load_explicit(&p->active, memory_order_relaxed);
}

/* An idle connection is still open when reading it now finds nothing: one
 * read, which consumes what it finds, and anything found makes the
 * connection unusable anyway (an upstream says nothing unasked, and a
 * close or an alert is the end of it). */
static bool still_open(struct gw__transport *tp)
{
    char c;
    return tp->ops->read(tp, &c, 1, 0) == -EAGAIN;
}

struct checkout_guard {
    struct gw__pool *pool;
    struct gw__transport *tp; /* NULL while a new connection is being made */
};

/* Runs only when the process ends with the slot still taken: the
 * connection checked out, or one still connecting or handshaking (whose
 * socket gw__target_connect's own cleanup closes). */
static void checkout_abandoned(void *arg)
{
    struct checkout_guard *g = arg;
    atomic_fetch_sub_explicit(&g->pool->active, 1, memory_order_relaxed);
    if (g->tp)
        g->tp->ops->close(g->tp);
}

/* A deferred cleanup for pool p's slot and tp (may be NULL: set *out's tp
 * once there is one); 0 when out of memory. */
static uint64_t guard_new(struct gw__pool *p, struct gw__transport *tp, struct checkout_guard **out)
{
    struct checkout_guard *g = rt_alloc(sizeof(*g)); /* freed with the process */
    if (!g)
        return 0;
    g->pool = p;
    g->tp = tp;
    *out = g;
    return rt_defer(checkout_abandoned, g);
}

int gw__conn_checkout(struct gw_target *t, uint32_t connect_timeout_ms, bool probe,
                      struct gw__upconn *c, char *why, size_t whylen)
{
    struct gw__pool *p = &t->pool;
    atomic_fetch_add_explicit(&t->requests, 1, memory_order_relaxed);
    /* The slot first, for a pooled connection as for a new one still
     * connecting: max_connections then bounds the busy connections at every
     * moment, which the descriptor budget counts on (fdlimit.c). Relaxed: a
     * count alone; fetch_add hands each caller a distinct value. */
    if (atomic_fetch_add_explicit(&p->active, 1, memory_order_relaxed) >= p->max_active) {
        atomic_fetch_sub_explicit(&p->active, 1, memory_order_relaxed);
        return -EBUSY;
    }
    for (;;) {
        struct gw__transport *tp = NULL;
        pthread_mutex_lock(&p->lock);
        if (p->nidle)
            tp = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->lock);
        if (!tp)
            break;
        /* Out of the pool: the caller's client counts it from now on. */
        gw__fds_idle_leave();
        if (!probe || still_open(tp)) {
            struct checkout_guard *g;
            c->tp = tp;
            c->reused = true;
            c->guard = guard_new(p, tp, &g);
            return 0;
        }
        tp->ops->close(tp);
    }
    /* Guarded from before the connect: connecting and a TLS handshake
     * wait, and a process killed there (a workflow call past its deadline)
     * must still give the slot back. */
    struct checkout_guard *g = NULL;
    uint64_t guard = guard_new(p, NULL, &g);
    struct gw__transport *tp = NULL;
    int rc = gw__target_connect(t, connect_timeout_ms, &tp, why, whylen);
    if (rc < 0) {
        if (guard)
            rt_undefer(guard, false);
        atomic_fetch_sub_explicit(&p->active, 1, memory_order_relaxed);
        return rc;
    }
    if (guard)
        g->tp = tp;
    c->tp = tp;
    c->reused = false;
    c->guard = guard;
    return 0;
}

/* At most one log line a second per target for failed handshakes: the
 * reason stays in last_error for every one. */
static void log_tls_failure(struct gw_target *t, const char *reason)
{
    uint64_t now = rt_now_ms();
    /* Relaxed: a stamp compared with the clock, publishing nothing. */
    uint64_t last = atomic_load_explicit(&t->tls_logged_ms, memory_order_relaxed);
    if (last && now - last < 1000)
        return;
    if (!atomic_compare_exchange_strong_explicit(&t->tls_logged_ms, &last, now,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    rt_log(RT_LOG_WARNING, "upstream %s: target %s: %s", t->up->cfg->name, t->addr, reason);
}

/* Closes a socket still connecting when its process ends. */
static void socket_abandoned(void *arg)
{
    rt_close((int)(intptr_t)arg);
}

int gw__target_connect(struct gw_target *t, uint32_t timeout_ms, struct gw__transport **out,
                       char *why, size_t whylen)
{
    char reason[96];
    uint64_t deadline = rt_now_ms() + timeout_ms;
    int fd = socket(t->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = errno;
        if (why)
            snprintf(why, whylen, "connect failed");
        return -err;
    }
    /* The connect waits: a process killed there still closes the socket.
     * From the handshake on, gw_tls_connect guards what it makes of it. */
    uint64_t guard = rt_defer(socket_abandoned, (void *)(intptr_t)fd);
    if (!guard) {
        rt_close(fd);
        if (why)
            snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = rt_connect(fd, (struct sockaddr *)&t->sa, t->salen, timeout_ms);
    rt_undefer(guard, false);
    if (rc < 0) {
        rt_close(fd);
        if (why)
            snprintf(why, whylen, "%s", rc == -ETIMEDOUT ? "connect timeout" : "connect failed");
        return rc;
    }
    if (!t->up->tls) {
        /* Non-blocking since socket(): wrapped without another fcntl. */
        rc = gw__transport_socket_wrap(fd, out);
        if (rc < 0 && why)
            snprintf(why, whylen, "out of memory");
        return rc;
    }
    /* The handshake has what is left of the connect timeout. */
    uint64_t now = rt_now_ms();
    enum gw_tls_fail fail = GW_TLS_FAIL_PROTOCOL;
    rc = gw_tls_connect(t->up->tls, fd, t->host, now < deadline ? (int64_t)(deadline - now) : 0,
                        out, &fail, reason, sizeof reason);
    if (rc < 0) {
        log_tls_failure(t, reason);
        if (why)
            snprintf(why, whylen, "%s", reason);
        /* A handshake cut short by the deadline is a connect timeout to
         * the caller; any other failure is the target refusing TLS. */
        return rc == -ETIMEDOUT ? rc : -EPROTO;
    }
    return 0;
}

void gw__conn_checkin(struct gw_target *t, struct gw__upconn *c, bool reusable)
{
    struct gw__pool *p = &t->pool;
    struct gw__transport *tp = c->tp;
    if (!tp)
        return;
    c->tp = NULL;
    if (c->guard)
        rt_undefer(c->guard, false);
    c->guard = 0;
    atomic_fetch_sub_explicit(&p->active, 1, memory_order_relaxed);
    if (reusable) {
        /* Idle, it is no client's: it joins the pool only if it fits in the
         * descriptor budget (fdlimit.c). */
        pthread_mutex_lock(&p->lock);
        if (p->nidle < p->max_idle && gw__fds_idle_admit()) {
            p->idle[p->nidle++] = tp;
            tp = NULL;
        }
        pthread_mutex_unlock(&p->lock);
    }
    if (tp)
        tp->ops->close(tp);
}
