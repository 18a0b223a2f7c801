/*
 * jwks_fetcher.c: the fetcher process of a JWKS source (jwks_fetch.c keeps
 * the sources): a gen_server registered under the source's name, started
 * on first need under jwks_sup (simple_one_for_one, transient children).
 * It fetches at most once per refresh_min_interval_s whoever asks, and
 * publishes what it fetched in the source; a fetch that fails (connection,
 * TLS handshake or certificate, status, size, a set that does not parse)
 * keeps the last good set and leaves its reason in the log and the source.
 *
 * The fetch is HTTP/1.1 on the runtime's I/O (the fetcher parks, never a
 * scheduler; the name is resolved, and an https source's CA bundle read,
 * on the blocking pool), through a transport: a plain socket for http, the
 * gateway's TLS client (tls/client.c) for https, verifying the server's
 * certificate against the source's CA bundle or the system store and its
 * server name, always. Bounded in time (GW_JWKS_FETCH_TIMEOUT_MS, the
 * handshake included) and size (GW_JWKS_MAX_BYTES of body, 16 KiB of head),
 * parsed with llhttp (chunked or not). Built with the gateway only: the
 * configuration's builds (its fuzzer, the admin API's tests) carry no TLS
 * client.
 */
#include <errno.h>
#include <stdatomic.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>

#include "../exchange.h"
#include "../tls/tls.h"
#include "jwks_src.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"

#define GW_JWKS_MAX_HEAD 16384

/* ---- the fetch ------------------------------------------------------------ */

struct fetch {
    char *body;
    size_t len;
    size_t head;
    bool too_big, done;
};

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct fetch *f = p->data;
    if (f->len + len > GW_JWKS_MAX_BYTES) {
        f->too_big = true;
        return -1;
    }
    memcpy(f->body + f->len, at, len);
    f->len += len;
    return 0;
}

static int on_complete(llhttp_t *p)
{
    struct fetch *f = p->data;
    f->done = true;
    return HPE_PAUSED;
}

static int on_header_bytes(llhttp_t *p, const char *at, size_t len)
{
    struct fetch *f = p->data;
    (void)at;
    f->head += len;
    return f->head > GW_JWKS_MAX_HEAD ? -1 : 0;
}

/* Work handed to the blocking pool lives on the heap with two references,
 * the fetcher's (dropped by a deferred cleanup, so also when the fetcher is
 * killed while parked) and the pool thread's: the thread never writes into
 * the stack of a process that is gone. */
struct resolve {
    _Atomic int refs;
    const struct gw_jwks_src *s;
    struct sockaddr_storage sa;
    socklen_t salen;
};

static void resolve_unref(void *arg)
{
    struct resolve *r = arg;
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        free(r);
}

static intptr_t resolve_blocking(void *arg)
{
    struct resolve *r = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    intptr_t rc = -EHOSTUNREACH;
    if (getaddrinfo(r->s->host, r->s->port, &hints, &res) == 0 && res) {
        memcpy(&r->sa, res->ai_addr, res->ai_addrlen);
        r->salen = res->ai_addrlen;
        rc = 0;
    }
    if (res)
        freeaddrinfo(res);
    resolve_unref(r);
    return rc;
}

/* Runs job(arg) on the blocking pool for a job holding two references
 * (`refs` at 2): the pool's, dropped by job itself, and the caller's,
 * dropped by unref when the caller is done with it or exits. 0 or -errno;
 * *res is job's result. */
static int run_blocking(intptr_t (*job)(void *), void *arg, void (*unref)(void *), uint64_t *guard,
                        intptr_t *res)
{
    *guard = rt_defer(unref, arg);
    if (!*guard) {
        unref(arg);
        unref(arg);
        return -ENOMEM;
    }
    int rc = rt_blocking(job, arg, res);
    if (rc < 0)
        unref(arg); /* the pool's reference: the job never ran */
    return rc;
}

static int64_t left_ms(uint64_t deadline)
{
    uint64_t now = rt_now_ms();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

/* An https source's client configuration, built on the blocking pool (it
 * reads and parses the CA bundle: the system store is some 140
 * certificates). Built for each fetch, so that a changed bundle is used
 * from the next fetch on; fetches are rare (refresh_min_interval_s). */
struct client_build {
    _Atomic int refs;
    const struct gw_jwks_src *s;
    struct gw_tls_client *client; /* taken by the fetcher, else freed with the job */
    char err[160];
};

static void client_build_unref(void *arg)
{
    struct client_build *b = arg;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    gw_tls_client_free(b->client);
    free(b);
}

static intptr_t client_build_blocking(void *arg)
{
    struct client_build *b = arg;
    /* Verification is never off: the configuration has no key to turn it
     * off, and a bundle that does not parse fails the fetch. */
    const struct gw_tls_upstream_config cfg = {
        .enabled = true,
        .verify = true,
        .ca = b->s->ca,
        .server_name = b->s->server_name,
        .min_version = GW_TLS_1_2,
    };
    intptr_t rc = gw_tls_client_new(&cfg, &b->client, b->err, sizeof b->err);
    client_build_unref(b);
    return rc;
}

/* The transport to the source's server over the connected socket fd
 * (owned from now on): fd itself for http, a verified TLS session for
 * https. 0, or a negative errno with the reason in err. */
static int open_transport(const struct gw_jwks_src *s, int fd, uint64_t deadline,
                          struct gw_tls_client **client, struct gw__transport **out, char *err,
                          size_t errlen)
{
    if (!s->https) {
        int rc = gw__transport_socket_wrap(fd, out);
        if (rc < 0)
            snprintf(err, errlen, "no transport: %s", strerror(-rc));
        return rc;
    }
    struct client_build *b = calloc(1, sizeof(*b));
    if (!b) {
        rt_close(fd);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&b->refs, 2);
    b->s = s;
    intptr_t res = 0;
    uint64_t guard = 0;
    int rc = run_blocking(client_build_blocking, b, client_build_unref, &guard, &res);
    if (rc == 0 && res < 0)
        rc = (int)res;
    if (rc < 0) {
        rt_close(fd);
        snprintf(err, errlen, "%s", guard && b->err[0] ? b->err : strerror(-rc));
        if (guard)
            rt_undefer(guard, true);
        return rc;
    }
    struct gw_tls_client *c = b->client;
    b->client = NULL;
    rt_undefer(guard, true);
    enum gw_tls_fail why;
    rc = gw_tls_connect(c, fd, s->host, left_ms(deadline), out, &why, err, errlen);
    if (rc < 0) {
        gw_tls_client_free(c);
        return rc;
    }
    *client = c;
    return 0;
}

/* GETs the source's URL: 0 with a malloc'ed body, or a negative errno
 * with the reason in why. Process context (the fetcher); parks. */
static int http_get(const struct gw_jwks_src *s, char **body, size_t *len, char *why, size_t whylen)
{
    uint64_t deadline = rt_now_ms() + GW_JWKS_FETCH_TIMEOUT_MS;
    struct resolve *r = calloc(1, sizeof(*r));
    struct fetch f = {0};
    struct gw_tls_client *client = NULL;
    struct gw__transport *t = NULL;
    char *buf = NULL;
    int fd = -1;
    intptr_t res = 0;
    if (!r) {
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&r->refs, 2);
    r->s = s;
    uint64_t rguard = 0;
    int rc = run_blocking(resolve_blocking, r, resolve_unref, &rguard, &res);
    if (rc < 0 || res < 0) {
        if (rguard)
            rt_undefer(rguard, true);
        snprintf(why, whylen, "cannot resolve the host");
        return rc < 0 ? rc : (int)res;
    }
    struct sockaddr_storage sa = r->sa;
    socklen_t salen = r->salen;
    rt_undefer(rguard, true);
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(why, whylen, "no socket");
        return -errno;
    }
    f.body = malloc(GW_JWKS_MAX_BYTES);
    buf = malloc(16384);
    if (!f.body || !buf) {
        rc = -ENOMEM;
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    rc = rt_connect(fd, (struct sockaddr *)&sa, salen, left_ms(deadline));
    if (rc < 0) {
        snprintf(why, whylen, "cannot connect");
        goto out;
    }
    rc = open_transport(s, fd, deadline, &client, &t, why, whylen);
    fd = -1; /* the transport's, or closed */
    if (rc < 0)
        goto out;
    const char *dflt = s->https ? "443" : "80";
    bool v6 = strchr(s->host, ':') != NULL;
    int n = snprintf(buf, 16384,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nAccept: application/json\r\n"
                     "User-Agent: tandem\r\nConnection: close\r\n\r\n",
                     s->path, v6 ? "[" : "", s->host, v6 ? "]" : "",
                     strcmp(s->port, dflt) ? ":" : "", strcmp(s->port, dflt) ? s->port : "");
    if (n < 0 || n >= 16384) {
        rc = -E2BIG;
        snprintf(why, whylen, "URL too long");
        goto out;
    }
    rc = gw__transport_write_all(t, buf, (size_t)n, left_ms(deadline));
    if (rc < 0) {
        snprintf(why, whylen, "cannot send the request");
        goto out;
    }
    llhttp_settings_t set;
    llhttp_settings_init(&set);
    set.on_body = on_body;
    set.on_message_complete = on_complete;
    set.on_header_field = on_header_bytes;
    set.on_header_value = on_header_bytes;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &set);
    p.data = &f;
    while (!f.done) {
        int64_t left = left_ms(deadline);
        ssize_t got = left > 0 ? t->ops->read(t, buf, 16384, left) : -ETIMEDOUT;
        if (got < 0) {
            rc = got == -EAGAIN ? -ETIMEDOUT : (int)got;
            snprintf(why, whylen, "%s", rc == -ETIMEDOUT ? "timed out" : "read failed");
            goto out;
        }
        llhttp_errno_t e = got == 0 ? llhttp_finish(&p) : llhttp_execute(&p, buf, (size_t)got);
        if (f.too_big) {
            rc = -EFBIG;
            snprintf(why, whylen, "key set too large");
            goto out;
        }
        if (e != HPE_OK && e != HPE_PAUSED) {
            rc = -EPROTO;
            snprintf(why, whylen, "bad HTTP response");
            goto out;
        }
        if (got == 0 && !f.done) {
            rc = -EPROTO;
            snprintf(why, whylen, "response cut short");
            goto out;
        }
    }
    if (llhttp_get_status_code(&p) != 200) {
        rc = -EPROTO;
        snprintf(why, whylen, "status %d, not 200", llhttp_get_status_code(&p));
        goto out;
    }
    *body = f.body;
    *len = f.len;
    f.body = NULL;
    rc = 0;
out:
    if (t)
        t->ops->close(t);
    /* After the session that used it. */
    gw_tls_client_free(client);
    if (fd >= 0)
        rt_close(fd);
    free(f.body);
    free(buf);
    return rc;
}

static void fetch_now(struct gw_jwks_src *s)
{
    char *body = NULL;
    size_t len = 0;
    char why[sizeof s->error] = "";
    s->attempt_ms = rt_now_ms();
    s->attempted = true;
    /* Relaxed: a statistic. */
    atomic_fetch_add_explicit(&s->fetches, 1, memory_order_relaxed);
    int rc = http_get(s, &body, &len, why, sizeof why);
    struct gw_jwks *keys = NULL;
    if (rc == 0)
        rc = gw_jwks_parse(body, len, &keys, why, sizeof why);
    free(body);
    if (rc < 0) {
        if (!why[0])
            snprintf(why, sizeof why, "%s", strerror(-rc));
        rt_log(RT_LOG_WARNING, "jwks %s: fetch failed (%s); keeping the last good key set", s->url,
               why);
        pthread_mutex_lock(&s->lock);
        memcpy(s->error, why, sizeof s->error);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    pthread_mutex_lock(&s->lock);
    struct gw_jwks *old = s->keys;
    s->keys = keys;
    s->fetched_ms = rt_now_ms();
    s->error[0] = 0;
    pthread_mutex_unlock(&s->lock);
    gw_jwks_unref(old);
}

/* ---- the fetcher process ---------------------------------------------------- */

static void maybe_fetch(struct gw_jwks_src *s, const struct rt_msg *m)
{
    struct gw_jwks_refresh_req q = {0};
    if (m->size >= sizeof q)
        memcpy(&q, m->data, sizeof q);
    if (s->attempted && rt_now_ms() - s->attempt_ms < q.min_interval_ms)
        return;
    fetch_now(s);
}

static void fetcher_init(void *arg, struct rt_gs_result *r)
{
    r->state = arg;
    rt_gs_ok(r);
}

static void fetcher_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                         struct rt_gs_result *r)
{
    (void)from;
    if (req->type == GW_JWKS_REFRESH)
        maybe_fetch(state, req);
    rt_gs_reply(r, NULL);
}

static void fetcher_cast(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    struct gw_jwks_src *s = state;
    if (msg->type == GW_JWKS_REFRESH) {
        /* Release: a request that sets the flag again sees this fetch's
         * keys published (they are, under the source's lock, before). */
        atomic_store_explicit(&s->refresh_queued, 0, memory_order_release);
        maybe_fetch(s, msg);
    }
    rt_gs_noreply(r);
}

static size_t fetcher_status(const void *state, char *buf, size_t cap)
{
    const struct gw_jwks_src *s = state;
    int n = snprintf(buf, cap, "jwks url=%s fetches=%llu", s->url,
                     (unsigned long long)gw_jwks_src_fetches(s));
    return n < 0 ? 0 : (size_t)n;
}

static const struct rt_gen_server_ops fetcher_ops = {
    .name = "gw_jwks_fetcher",
    .init = fetcher_init,
    .handle_call = fetcher_call,
    .handle_cast = fetcher_cast,
    .format_status = fetcher_status,
};

static int fetcher_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                         rt_atom *reason)
{
    (void)arg;
    struct gw_jwks_src *s;
    if (extra_size != sizeof s)
        return -EINVAL;
    memcpy(&s, extra, sizeof s);
    struct rt_start_opts o = {.name = s->name, .initial_call = "gw_jwks_fetcher"};
    return rt_gen_server_start_link(&fetcher_ops, s, &o, out, reason);
}

static int jwks_sup_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    (void)arg;
    const struct rt_child_spec spec = {
        .id = "jwks_fetcher",
        .start = fetcher_start,
        .restart = RT_TRANSIENT,
        .shutdown = 1000,
        .type = RT_WORKER,
    };
    flags->strategy = RT_SIMPLE_ONE_FOR_ONE;
    flags->intensity = 10;
    flags->period_s = 10;
    return rt_sup_init_child(init, &spec);
}

int gw_jwks_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_start_opts o = {.name = GW_JWKS_SUP, .initial_call = "gw_jwks_sup"};
    return rt_sup_start_link(jwks_sup_init, NULL, &o, out, reason);
}
