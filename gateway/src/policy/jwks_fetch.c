/*
 * jwks_fetch.c: key sets fetched by URL. One source per URL, CA bundle and
 * server name (struct gw_jwks_src, jwks_src.h), kept for the gateway's
 * life so that its keys and the time of its last fetch survive route
 * reloads; one fetcher process per source (jwks_fetcher.c, built with the
 * gateway: it holds the TLS client) registered as "jwks:<hash>".
 *
 * Requests never go through the fetcher to read keys: the source publishes
 * its last good set (reference counted) and a request takes a reference
 * under a lock held for a pointer copy. A request asks the fetcher only
 * when the source has no keys yet or a token names a kid the set lacks
 * (it then parks in a gen_server call with a timeout), or, without
 * waiting, when the set is older than the policy's refresh interval. The
 * fetcher fetches at most once per refresh_min_interval_s whoever asks, so
 * made-up kids cannot make it hammer the issuer; calls that queue up while
 * it fetches are answered from the fresh set without another fetch.
 *
 * This file is built with the configuration (the jwt kind compiles
 * against it): it names the fetcher's supervisor and starts children
 * under it, but links nothing of the fetch.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwks_src.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"
#include "tls/compat.h"

static pthread_mutex_t srcs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_jwks_src *srcs[GW_JWKS_MAX_SOURCES];
static size_t nsrcs;

/* "http[s]://host[:port]/path": host a name, an IPv4 address or [IPv6]. */
static int parse_url(struct gw_jwks_src *s, const char *url, char *err, size_t errlen)
{
    const char *p;
    if (strncmp(url, "https://", 8) == 0) {
        s->https = true;
        p = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        snprintf(err, errlen, "a JWKS URL must be https://host[:port]/path (or http://)");
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
    snprintf(s->port, sizeof s->port, "%s", s->https ? "443" : "80");
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
        snprintf(err, errlen, "the JWKS URL needs a path (https://host/keys.json)");
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

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void src_free(struct gw_jwks_src *s)
{
    free(s->url);
    free(s->path);
    free(s->ca);
    free(s->server_name);
    free(s);
}

int gw_jwks_src_get(const char *url, const char *ca, const char *server_name,
                    struct gw_jwks_src **out, char *err, size_t errlen)
{
    if (strlen(url) > GW_JWKS_MAX_URL) {
        snprintf(err, errlen, "the JWKS URL is longer than %d bytes", GW_JWKS_MAX_URL);
        return -EINVAL;
    }
    int rc = 0;
    pthread_mutex_lock(&srcs_lock);
    for (size_t i = 0; i < nsrcs; i++)
        if (strcmp(srcs[i]->url, url) == 0 && same(srcs[i]->ca, ca) &&
            same(srcs[i]->server_name, server_name)) {
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
    if (!s || !(s->url = strdup(url)) || (ca && !(s->ca = strdup(ca))) ||
        (server_name && !(s->server_name = strdup(server_name)))) {
        if (s)
            src_free(s);
        rc = -ENOMEM;
        goto out;
    }
    rc = parse_url(s, url, err, errlen);
    if (rc == 0 && !s->https && (ca || server_name)) {
        snprintf(err, errlen, "jwks_ca and jwks_server_name apply to https URLs only");
        rc = -EINVAL;
    }
    if (rc < 0) {
        src_free(s);
        goto out;
    }
    /* The name tells sources apart by all three. */
    unsigned char h[32];
    size_t ul = strlen(url), cl = ca ? strlen(ca) : 0, nl = server_name ? strlen(server_name) : 0;
    char *key = malloc(ul + cl + nl + 3);
    if (!key) {
        src_free(s);
        rc = -ENOMEM;
        goto out;
    }
    snprintf(key, ul + cl + nl + 3, "%s\n%s\n%s", url, ca ? ca : "",
             server_name ? server_name : "");
    gw_tls_sha256(key, ca || server_name ? ul + cl + nl + 2 : ul, h);
    free(key);
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

bool gw_jwks_src_last_error(struct gw_jwks_src *s, char *buf, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    bool failed = s->error[0] != 0;
    if (failed)
        snprintf(buf, cap, "%s", s->error);
    pthread_mutex_unlock(&s->lock);
    return failed;
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

/* The source's fetcher, started under jwks_sup when it is not running. */
static int fetcher_pid(struct gw_jwks_src *s, rt_pid *out)
{
    rt_pid pid = rt_whereis(s->name);
    if (pid) {
        *out = pid;
        return 0;
    }
    rt_pid sup = rt_whereis(GW_JWKS_SUP);
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
    struct gw_jwks_refresh_req q = {.min_interval_ms = min_interval_ms};
    return rt_msg_copy(GW_JWKS_REFRESH, &q, sizeof q);
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
