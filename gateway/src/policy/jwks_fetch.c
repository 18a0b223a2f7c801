/*
 * jwks_fetch.c: key sets fetched by URL. One source per URL (struct
 * gw_jwks_src), kept for the gateway's life so that its keys and the time
 * of its last fetch survive route reloads; one fetcher process per source
 * (a gen_server registered as "jwks:<hash of the URL>"), started on first
 * need under jwks_sup (simple_one_for_one, transient children).
 *
 * Requests never go through the fetcher to read keys: the source publishes
 * its last good set (reference counted) and a request takes a reference
 * under a lock held for a pointer copy. A request asks the fetcher only
 * when the source has no keys yet or a token names a kid the set lacks
 * (it then parks in a gen_server call with a timeout), or, without
 * waiting, when the set is older than the policy's refresh interval. The
 * fetcher fetches at most once per refresh_min_interval_s whoever asks, so
 * made-up kids cannot make it hammer the issuer; calls that queue up while
 * it fetches are answered from the fresh set without another fetch. A
 * fetch that fails (connection, status, size, a set that does not parse)
 * keeps the last good set.
 *
 * The fetch is HTTP/1.1 over plain TCP on the runtime's I/O (the fetcher
 * parks, never a scheduler; the name is resolved on the blocking pool),
 * bounded in time (GW_JWKS_FETCH_TIMEOUT_MS) and size (GW_JWKS_MAX_BYTES of
 * body, 16 KiB of head), parsed with llhttp (chunked or not).
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>

#include "jwt_int.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"
#include "tls/compat.h"

#define GW_JWKS_FETCH_TIMEOUT_MS 3000
#define GW_JWKS_MAX_HEAD 16384
#define JWKS_SUP "jwks_sup"

struct gw_jwks_src {
    char *url;
    char host[256];
    char port[8];
    char *path;
    char name[48];        /* the fetcher's registered name */
    pthread_mutex_t lock; /* guards keys and fetched_ms: held for pointer copies */
    struct gw_jwks *keys;
    uint64_t fetched_ms;
    atomic_uint_least64_t fetches;
    /* A refresh without a waiter is queued: further ones are not sent, so
     * a stale set under load costs the fetcher one message, not one per
     * request. The time it was queued, 0 when none: one queued longer than
     * two fetches ago was lost (the fetcher died with it) and is sent
     * again. */
    atomic_uint_least64_t refresh_queued;
    /* The fetcher's own (one process at a time). */
    uint64_t attempt_ms;
    bool attempted;
};

static pthread_mutex_t srcs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_jwks_src *srcs[GW_JWKS_MAX_SOURCES];
static size_t nsrcs;

/* "http://host[:port]/path": host a name, an IPv4 address or [IPv6]. */
static int parse_url(struct gw_jwks_src *s, const char *url, char *err, size_t errlen)
{
    const char *p = url + 7;
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen,
                 "a JWKS URL must be http://host[:port]/path (https is not yet "
                 "supported: use jwks_file, or http on a trusted network)");
        return -EINVAL;
    }
    const char *hend;
    const char *h = p;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend) {
            snprintf(err, errlen, "unterminated IPv6 address in the JWKS URL");
            return -EINVAL;
        }
        h = p + 1;
        p = hend + 1;
    } else {
        hend = p + strcspn(p, ":/?#");
        p = hend;
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl >= sizeof s->host) {
        snprintf(err, errlen, "the JWKS URL has no host, or a host too long");
        return -EINVAL;
    }
    memcpy(s->host, h, hl);
    s->host[hl] = 0;
    snprintf(s->port, sizeof s->port, "80");
    if (*p == ':') {
        p++;
        size_t pl = strspn(p, "0123456789");
        long port = pl && pl < 6 ? strtol(p, NULL, 10) : 0;
        if (port <= 0 || port > 65535) {
            snprintf(err, errlen, "bad port in the JWKS URL");
            return -EINVAL;
        }
        snprintf(s->port, sizeof s->port, "%ld", port);
        p += pl;
    }
    if (*p != '/') {
        snprintf(err, errlen, "the JWKS URL needs a path (http://host/keys.json)");
        return -EINVAL;
    }
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '#') {
            snprintf(err, errlen, "the JWKS URL's path holds a space, control character or #");
            return -EINVAL;
        }
    s->path = strdup(p);
    return s->path ? 0 : -ENOMEM;
}

int gw_jwks_src_get(const char *url, struct gw_jwks_src **out, char *err, size_t errlen)
{
    if (strlen(url) > GW_JWKS_MAX_URL) {
        snprintf(err, errlen, "the JWKS URL is longer than %d bytes", GW_JWKS_MAX_URL);
        return -EINVAL;
    }
    int rc = 0;
    pthread_mutex_lock(&srcs_lock);
    for (size_t i = 0; i < nsrcs; i++)
        if (strcmp(srcs[i]->url, url) == 0) {
            *out = srcs[i];
            goto out;
        }
    if (nsrcs == GW_JWKS_MAX_SOURCES) {
        snprintf(err, errlen, "more than %d JWKS URLs since the gateway started",
                 GW_JWKS_MAX_SOURCES);
        rc = -ENOSPC;
        goto out;
    }
    struct gw_jwks_src *s = calloc(1, sizeof *s);
    if (!s || !(s->url = strdup(url))) {
        free(s);
        rc = -ENOMEM;
        goto out;
    }
    rc = parse_url(s, url, err, errlen);
    if (rc < 0) {
        free(s->url);
        free(s->path);
        free(s);
        goto out;
    }
    unsigned char h[32];
    gw_tls_sha256(url, strlen(url), h);
    int n = snprintf(s->name, sizeof s->name, "jwks:");
    for (int i = 0; i < 12; i++)
        n += snprintf(s->name + n, sizeof s->name - (size_t)n, "%02x", h[i]);
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->fetches, 0);
    atomic_init(&s->refresh_queued, 0);
    srcs[nsrcs++] = s;
    *out = s;
out:
    pthread_mutex_unlock(&srcs_lock);
    return rc;
}

const char *gw_jwks_src_url(const struct gw_jwks_src *s)
{
    return s->url;
}

struct gw_jwks *gw_jwks_src_keys(struct gw_jwks_src *s, uint64_t *age_ms)
{
    pthread_mutex_lock(&s->lock);
    struct gw_jwks *k = gw_jwks_ref(s->keys);
    uint64_t at = s->fetched_ms;
    pthread_mutex_unlock(&s->lock);
    if (age_ms)
        *age_ms = k ? rt_now_ms() - at : UINT64_MAX;
    return k;
}

uint64_t gw_jwks_src_fetches(const struct gw_jwks_src *s)
{
    /* Relaxed: a statistic. */
    return atomic_load_explicit(&s->fetches, memory_order_relaxed);
}

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

struct resolve {
    const struct gw_jwks_src *s;
    struct sockaddr_storage sa;
    socklen_t salen;
};

static intptr_t resolve_blocking(void *arg)
{
    struct resolve *r = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(r->s->host, r->s->port, &hints, &res) != 0 || !res)
        return -EHOSTUNREACH;
    memcpy(&r->sa, res->ai_addr, res->ai_addrlen);
    r->salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int64_t left_ms(uint64_t deadline)
{
    uint64_t now = rt_now_ms();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

/* GETs the source's URL: 0 with a malloc'ed body, or a negative errno
 * with *why. Process context (the fetcher); parks. */
static int http_get(const struct gw_jwks_src *s, char **body, size_t *len, const char **why)
{
    uint64_t deadline = rt_now_ms() + GW_JWKS_FETCH_TIMEOUT_MS;
    struct resolve r = {.s = s};
    struct fetch f = {0};
    char *buf = NULL;
    int fd = -1;
    intptr_t res = 0;
    int rc = rt_blocking(resolve_blocking, &r, &res);
    if (rc < 0 || res < 0) {
        *why = "cannot resolve the host";
        return rc < 0 ? rc : (int)res;
    }
    fd = socket(r.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *why = "no socket";
        return -errno;
    }
    f.body = malloc(GW_JWKS_MAX_BYTES);
    buf = malloc(16384);
    if (!f.body || !buf) {
        rc = -ENOMEM;
        *why = "out of memory";
        goto out;
    }
    rc = rt_connect(fd, (struct sockaddr *)&r.sa, r.salen, left_ms(deadline));
    if (rc < 0) {
        *why = "cannot connect";
        goto out;
    }
    int n = snprintf(buf, 16384,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s\r\nAccept: application/json\r\n"
                     "User-Agent: tandem\r\nConnection: close\r\n\r\n",
                     s->path, s->host, strcmp(s->port, "80") ? ":" : "",
                     strcmp(s->port, "80") ? s->port : "");
    if (n < 0 || n >= 16384) {
        rc = -E2BIG;
        *why = "URL too long";
        goto out;
    }
    ssize_t w = rt_write(fd, buf, (size_t)n, left_ms(deadline));
    if (w < 0) {
        rc = (int)w;
        *why = "cannot send the request";
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
        ssize_t got = rt_read(fd, buf, 16384, left_ms(deadline));
        if (got < 0) {
            rc = (int)got;
            *why = rc == -ETIMEDOUT ? "timed out" : "read failed";
            goto out;
        }
        llhttp_errno_t e = got == 0 ? llhttp_finish(&p) : llhttp_execute(&p, buf, (size_t)got);
        if (f.too_big) {
            rc = -EFBIG;
            *why = "key set too large";
            goto out;
        }
        if (e != HPE_OK && e != HPE_PAUSED) {
            rc = -EPROTO;
            *why = "bad HTTP response";
            goto out;
        }
        if (got == 0 && !f.done) {
            rc = -EPROTO;
            *why = "response cut short";
            goto out;
        }
    }
    if (llhttp_get_status_code(&p) != 200) {
        rc = -EPROTO;
        *why = "status other than 200";
        goto out;
    }
    *body = f.body;
    *len = f.len;
    f.body = NULL;
    rc = 0;
out:
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
    const char *why = NULL;
    char err[200] = "";
    s->attempt_ms = rt_now_ms();
    s->attempted = true;
    /* Relaxed: a statistic. */
    atomic_fetch_add_explicit(&s->fetches, 1, memory_order_relaxed);
    int rc = http_get(s, &body, &len, &why);
    struct gw_jwks *keys = NULL;
    if (rc == 0) {
        rc = gw_jwks_parse(body, len, &keys, err, sizeof err);
        why = err;
    }
    free(body);
    if (rc < 0) {
        rt_log(RT_LOG_WARNING, "jwks %s: fetch failed (%s); keeping the last good key set", s->url,
               why ? why : strerror(-rc));
        return;
    }
    pthread_mutex_lock(&s->lock);
    struct gw_jwks *old = s->keys;
    s->keys = keys;
    s->fetched_ms = rt_now_ms();
    pthread_mutex_unlock(&s->lock);
    gw_jwks_unref(old);
}

/* ---- the fetcher process ---------------------------------------------------- */

enum { JWKS_REFRESH = 1 };

struct refresh_req {
    uint64_t min_interval_ms;
};

static void maybe_fetch(struct gw_jwks_src *s, const struct rt_msg *m)
{
    struct refresh_req q = {0};
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
    if (req->type == JWKS_REFRESH)
        maybe_fetch(state, req);
    rt_gs_reply(r, NULL);
}

static void fetcher_cast(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    struct gw_jwks_src *s = state;
    if (msg->type == JWKS_REFRESH) {
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
    struct rt_start_opts o = {.name = JWKS_SUP, .initial_call = "gw_jwks_sup"};
    return rt_sup_start_link(jwks_sup_init, NULL, &o, out, reason);
}

/* The source's fetcher, started under jwks_sup when it is not running. */
static int fetcher_pid(struct gw_jwks_src *s, rt_pid *out)
{
    rt_pid pid = rt_whereis(s->name);
    if (pid) {
        *out = pid;
        return 0;
    }
    rt_pid sup = rt_whereis(JWKS_SUP);
    if (!sup)
        return -ESRCH;
    rt_atom reason;
    int rc = rt_sup_start_child_extra_timeout(sup, &s, sizeof s, GW_JWKS_FETCH_TIMEOUT_MS, &pid,
                                              &reason);
    if (rc == 0 || rc == -EEXIST) {
        *out = pid; /* -EEXIST: another request started it first */
        return 0;
    }
    return rc;
}

static struct rt_msg *refresh_msg(uint64_t min_interval_ms)
{
    struct refresh_req q = {.min_interval_ms = min_interval_ms};
    return rt_msg_copy(JWKS_REFRESH, &q, sizeof q);
}

int gw_jwks_src_refresh(struct gw_jwks_src *s, uint64_t min_interval_ms, int64_t timeout_ms)
{
    rt_pid pid = 0; /* 0: none; gcc 14 cannot see that fetcher_pid sets it */
    int rc = fetcher_pid(s, &pid);
    if (rc < 0)
        return rc;
    struct rt_msg *m = refresh_msg(min_interval_ms);
    if (!m)
        return -ENOMEM;
    struct rt_msg *reply = NULL;
    rc = rt_gen_server_call(pid, m, timeout_ms, &reply, NULL);
    rt_msg_free(reply);
    return rc;
}

void gw_jwks_src_refresh_async(struct gw_jwks_src *s, uint64_t min_interval_ms)
{
    rt_pid pid = 0;
    uint64_t now = rt_now_ms();
    uint64_t queued = atomic_load_explicit(&s->refresh_queued, memory_order_relaxed);
    /* Acquire pairs with the fetcher's release; one refresh queued at a
     * time. */
    if ((queued && now - queued < 2 * GW_JWKS_FETCH_TIMEOUT_MS) ||
        !atomic_compare_exchange_strong_explicit(&s->refresh_queued, &queued, now,
                                                 memory_order_acquire, memory_order_relaxed))
        return;
    struct rt_msg *m = refresh_msg(min_interval_ms);
    if (fetcher_pid(s, &pid) < 0 || !m) {
        rt_msg_free(m);
        atomic_store_explicit(&s->refresh_queued, 0, memory_order_relaxed);
        return;
    }
    rt_gen_server_cast(pid, m);
}
