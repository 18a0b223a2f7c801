/*
 * upstream.c: upstream pools — targets, balancing, passive and active
 * health, and their description for the admin API. Each target's
 * keep-alive connection pool is in pool.c.
 *
 * The hot path never goes through a process: a request process picks a
 * target (an atomic counter, or for weighted balancing a short mutex-held
 * computation), and checks a connection out of the target's pool (pool.c;
 * no I/O under any lock). Health counters are
 * atomics. One gen_server per upstream with active checks, under
 * upstreams_sup, probes the targets on an interval and re-admits ejected
 * ones that answer.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw/events.h"
#include "gw_int.h"
#include "tls/tls.h"
#include "upstream_int.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"

static struct gw_upstream *ups;
static size_t nups;

struct gw_upstream *gw_upstream_get(int index)
{
    if (index < 0 || (size_t)index >= nups)
        return NULL;
    return &ups[index];
}

const char *gw__upstream_name(const struct gw_upstream *up)
{
    return up ? up->cfg->name : "";
}

const struct gw_upstream_config *gw__upstream_config(const struct gw_upstream *up)
{
    return up->cfg;
}

const char *gw__target_addr(const struct gw_target *t)
{
    return t->addr;
}

static int resolve(struct gw_target *t, const struct gw_address *a)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", a->port);
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "tandem: upstream target %s: %s\n", a->text, gai_strerror(rc));
        return -EINVAL;
    }
    memcpy(&t->sa, res->ai_addr, res->ai_addrlen);
    t->salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int gw__upstreams_init(void)
{
    const struct gw_config *cfg = gw.cfg;
    nups = cfg->nupstreams;
    ups = calloc(nups ? nups : 1, sizeof(*ups));
    if (!ups)
        return -ENOMEM;
    for (size_t i = 0; i < nups; i++) {
        struct gw_upstream *u = &ups[i];
        u->cfg = &cfg->upstreams[i];
        u->ntargets = u->cfg->ntargets;
        u->targets = calloc(u->ntargets, sizeof(*u->targets));
        pthread_mutex_init(&u->lock, NULL);
        if (!u->targets)
            return -ENOMEM;
        if (u->cfg->tls.enabled) {
            char err[256] = "";
            int rc = gw_tls_client_new(&u->cfg->tls, &u->tls, err, sizeof err);
            if (rc < 0) {
                fprintf(stderr, "tandem: upstream %s: tls: %s\n", u->cfg->name,
                        err[0] ? err : strerror(-rc));
                return rc;
            }
        }
        for (size_t j = 0; j < u->ntargets; j++) {
            struct gw_target *t = &u->targets[j];
            t->up = u;
            t->weight = u->cfg->targets[j].weight;
            snprintf(t->addr, sizeof t->addr, "%s", u->cfg->targets[j].address.text);
            t->host = u->cfg->targets[j].address.host;
            pthread_mutex_init(&t->lock, NULL);
            int rc = gw__pool_init(&t->pool, u->cfg->max_idle, u->cfg->max_connections);
            if (rc < 0)
                return rc;
            rc = resolve(t, &u->cfg->targets[j].address);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

void gw__upstreams_done(void)
{
    for (size_t i = 0; i < nups; i++) {
        for (size_t j = 0; j < ups[i].ntargets; j++) {
            struct gw_target *t = &ups[i].targets[j];
            gw__pool_done(&t->pool);
            pthread_mutex_destroy(&t->lock);
        }
        free(ups[i].targets);
        /* After the pools: their idle sessions use its configuration. */
        gw_tls_client_free(ups[i].tls);
        pthread_mutex_destroy(&ups[i].lock);
    }
    free(ups);
    ups = NULL;
    nups = 0;
}

static bool ejected(const struct gw_target *t, uint64_t now)
{
    return atomic_load_explicit(&t->ejected_until_ms, memory_order_relaxed) > now;
}

struct gw_target *gw__target_pick(struct gw_upstream *up, const struct gw_target *avoid,
                                  bool *all_ejected)
{
    uint64_t now = rt_now_ms();
    size_t n = up->ntargets;
    struct gw_target *best = NULL, *fallback = NULL;
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        if (!ejected(&up->targets[i], now))
            live++;
    *all_ejected = live == 0;
    if (live == 0)
        return NULL;
    switch (up->cfg->balance) {
    case GW_BALANCE_LEAST_CONN: {
        uint64_t start = atomic_fetch_add_explicit(&up->rr, 1, memory_order_relaxed);
        uint32_t min = UINT32_MAX;
        for (size_t k = 0; k < n; k++) {
            struct gw_target *t = &up->targets[(start + k) % n];
            if (ejected(t, now))
                continue;
            if (t == avoid) {
                fallback = t;
                continue;
            }
            uint32_t a = atomic_load_explicit(&t->pool.active, memory_order_relaxed);
            if (a < min) {
                min = a;
                best = t;
            }
        }
        break;
    }
    case GW_BALANCE_WEIGHTED: {
        /* Smooth weighted round robin (as nginx): even spread by weight. */
        pthread_mutex_lock(&up->lock);
        int total = 0;
        for (size_t k = 0; k < n; k++) {
            struct gw_target *t = &up->targets[k];
            if (ejected(t, now) || t == avoid)
                continue;
            t->cur_weight += (int)t->weight;
            total += (int)t->weight;
            if (!best || t->cur_weight > best->cur_weight)
                best = t;
        }
        if (best)
            best->cur_weight -= total;
        pthread_mutex_unlock(&up->lock);
        if (!best && avoid && !ejected(avoid, now))
            fallback = (struct gw_target *)avoid;
        break;
    }
    default: {
        /* Relaxed: only the spread matters. */
        uint64_t start = atomic_fetch_add_explicit(&up->rr, 1, memory_order_relaxed);
        for (size_t k = 0; k < n && !best; k++) {
            struct gw_target *t = &up->targets[(start + k) % n];
            if (ejected(t, now))
                continue;
            if (t == avoid)
                fallback = t;
            else
                best = t;
        }
        break;
    }
    }
    return best ? best : fallback;
}

/* Tells the event manager (gw/events.h) that t left or rejoined the
 * rotation. */
static void notify_target(const struct gw_target *t, enum gw_event_type type, uint64_t ejected_ms,
                          const char *reason)
{
    struct gw_event_target e = {.ejected_ms = ejected_ms};
    snprintf(e.upstream, sizeof e.upstream, "%s", t->up->cfg->name);
    snprintf(e.target, sizeof e.target, "%s", t->addr);
    snprintf(e.reason, sizeof e.reason, "%s", reason ? reason : "");
    gw_events_notify(type, &e, sizeof e);
}

void gw__target_result(struct gw_target *t, bool ok, const char *error)
{
    if (ok) {
        atomic_store_explicit(&t->consecutive_failures, 0, memory_order_relaxed);
        return;
    }
    /* A request process that went over its memory cap failed of its own
     * doing, not the target's: it exits here, before the target is blamed. */
    rt_exit_if_over_cap();
    atomic_fetch_add_explicit(&t->failures, 1, memory_order_relaxed);
    uint32_t f = atomic_fetch_add_explicit(&t->consecutive_failures, 1, memory_order_relaxed) + 1;
    pthread_mutex_lock(&t->lock);
    snprintf(t->last_error, sizeof t->last_error, "%s", error ? error : "failed");
    pthread_mutex_unlock(&t->lock);
    const struct gw_upstream_config *c = t->up->cfg;
    if (c->passive_failures && f >= c->passive_failures) {
        uint64_t until = rt_now_ms() + c->passive_eject_ms;
        atomic_store_explicit(&t->ejected_until_ms, until, memory_order_relaxed);
        atomic_store_explicit(&t->consecutive_failures, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&t->ejections, 1, memory_order_relaxed);
        rt_log(RT_LOG_WARNING, "upstream %s: target %s ejected for %u ms after %u failures (%s)",
               c->name, t->addr, c->passive_eject_ms, f, error ? error : "failed");
        notify_target(t, GW_EVENT_TARGET_EJECTED, c->passive_eject_ms, error ? error : "failed");
    }
}

/* ---- active health checks: a gen_server per upstream ------------------------- */

enum { HC_TICK = 1 };

/* The health check's request, around the path and the target's address. */
#define HC_REQUEST                                                                                 \
    "GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: tandem-health\r\nconnection: close\r\n\r\n"

/* Closes a check's connection when its process ends mid-check. */
static void probe_abandoned(void *arg)
{
    struct gw__transport *tp = arg;
    tp->ops->close(tp);
}

/* One active check of target t: connects (through TLS when the upstream
 * has it), sends the check's request and reads the start of the answer,
 * through a transport like every other upstream exchange. On failure a
 * reason goes to why. The connection is closed however the check ends:
 * the checker can be killed while it waits for the answer (the admin
 * API, the supervisor stopping it), and a TLS connection holds a session
 * besides its socket. */
static bool probe(struct gw_target *t, const struct gw_upstream_config *c, char *why, size_t whylen)
{
    struct gw__transport *tp = NULL;
    bool ok = false;
    /* Room for the longest path the configuration accepts and the longest
     * address a target has. */
    char req[sizeof HC_REQUEST + GW_HEALTH_PATH_MAX + sizeof t->addr], buf[64];
    if (gw__target_connect(t, c->active_timeout_ms, &tp, why, whylen) < 0)
        return false;
    uint64_t guard = rt_defer(probe_abandoned, tp);
    if (!guard) {
        tp->ops->close(tp);
        snprintf(why, whylen, "out of memory");
        return false;
    }
    snprintf(why, whylen, "no 2xx or 3xx answer");
    int n = snprintf(req, sizeof req, HC_REQUEST, c->active_path, t->addr);
    /* Never send more than was formatted: a request cut short is a failed
     * check, not bytes of the stack. */
    if (n < 0 || (size_t)n >= sizeof req)
        goto out;
    if (gw__transport_write_all(tp, req, (size_t)n, c->active_timeout_ms) < 0)
        goto out;
    ssize_t got = tp->ops->read(tp, buf, sizeof buf - 1, c->active_timeout_ms);
    if (got < 12)
        goto out;
    buf[got] = 0;
    ok = strncmp(buf, "HTTP/1.", 7) == 0 && (buf[9] == '2' || buf[9] == '3');
out:
    rt_undefer(guard, true); /* closes tp */
    return ok;
}

static void hc_init(void *arg, struct rt_gs_result *r)
{
    r->state = arg;
    rt_send_after(rt_self(), 10, rt_msg_new(HC_TICK, 0), NULL);
    rt_gs_ok(r);
}

static void hc_info(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    struct gw_upstream *u = state;
    if (msg->type == HC_TICK) {
        uint64_t now = rt_now_ms();
        for (size_t i = 0; i < u->ntargets; i++) {
            struct gw_target *t = &u->targets[i];
            char why[80];
            if (probe(t, u->cfg, why, sizeof why)) {
                if (ejected(t, now)) {
                    rt_log(RT_LOG_INFO, "upstream %s: target %s healthy again", u->cfg->name,
                           t->addr);
                    notify_target(t, GW_EVENT_TARGET_READMITTED, 0, NULL);
                }
                atomic_store_explicit(&t->ejected_until_ms, 0, memory_order_relaxed);
                atomic_store_explicit(&t->consecutive_failures, 0, memory_order_relaxed);
            } else {
                if (!ejected(t, now)) {
                    atomic_fetch_add_explicit(&t->ejections, 1, memory_order_relaxed);
                    rt_log(RT_LOG_WARNING, "upstream %s: target %s failed its health check",
                           u->cfg->name, t->addr);
                    notify_target(t, GW_EVENT_TARGET_EJECTED, 0, "health check failed");
                }
                pthread_mutex_lock(&t->lock);
                snprintf(t->last_error, sizeof t->last_error, "health check failed: %.74s", why);
                pthread_mutex_unlock(&t->lock);
                /* Ejected until a later check passes. */
                atomic_store_explicit(&t->ejected_until_ms, UINT64_MAX / 2, memory_order_relaxed);
            }
        }
        rt_send_after(rt_self(), u->cfg->active_interval_ms, rt_msg_new(HC_TICK, 0), NULL);
    }
    rt_gs_noreply(r);
}

static size_t hc_format(const void *state, char *buf, size_t len)
{
    const struct gw_upstream *u = state;
    return (size_t)snprintf(buf, len, "upstream %s: %zu targets", u->cfg->name, u->ntargets);
}

static const struct rt_gen_server_ops hc_ops = {
    .name = "gw_upstream",
    .init = hc_init,
    .handle_info = hc_info,
    .format_status = hc_format,
};

static int hc_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    struct gw_upstream *u = *(struct gw_upstream **)arg;
    char name[80];
    snprintf(name, sizeof name, "upstream:%s", u->cfg->name);
    struct rt_start_opts o = {.name = name, .initial_call = "gw_upstream:health"};
    return rt_gen_server_start_link(&hc_ops, u, &o, out, reason);
}

static int upstreams_sup_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    (void)arg;
    int rc = 0;
    size_t k = 0;
    for (size_t i = 0; i < nups && k < 256 && rc == 0; i++) {
        if (!ups[i].cfg->active_health)
            continue;
        struct gw_upstream *u = &ups[i]; /* the arg's bytes are copied */
        struct rt_child_spec spec = {
            .id = u->cfg->name,
            .start = hc_start,
            .arg = &u,
            .arg_size = sizeof u,
            .restart = RT_PERMANENT,
            .shutdown = 2000,
            .type = RT_WORKER,
        };
        rc = rt_sup_init_child(init, &spec);
        k++;
    }
    flags->strategy = RT_ONE_FOR_ONE;
    flags->intensity = 10;
    flags->period_s = 10;
    return rc;
}

int gw__upstreams_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                            rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_start_opts o = {.initial_call = "gw_upstreams_sup"};
    return rt_sup_start_link(upstreams_sup_init, NULL, &o, out, reason);
}

/* ---- description for the admin API ------------------------------------------- */

int gw_upstreams_describe(struct gw_upstreams_desc **out)
{
    size_t ntargets = 0;
    for (size_t i = 0; i < nups; i++)
        ntargets += ups[i].ntargets;
    /* One allocation: the header, the upstreams, then every target. */
    struct gw_upstreams_desc *d =
        calloc(1, sizeof(*d) + nups * sizeof(d->ups[0]) + ntargets * sizeof(struct gw_target_desc));
    if (!d)
        return -ENOMEM;
    d->ups = (struct gw_upstream_desc *)(d + 1);
    d->n = nups;
    struct gw_target_desc *td = (struct gw_target_desc *)(d->ups + nups);
    uint64_t now = rt_now_ms();
    for (size_t i = 0; i < nups; i++) {
        const struct gw_upstream *u = &ups[i];
        struct gw_upstream_desc *ud = &d->ups[i];
        ud->name = u->cfg->name;
        ud->balance = u->cfg->balance;
        ud->active_health = u->cfg->active_health;
        ud->targets = td;
        ud->ntargets = u->ntargets;
        for (size_t j = 0; j < u->ntargets; j++, td++) {
            struct gw_target *t = &u->targets[j];
            gw__pool_counts(&t->pool, &td->active, &td->idle);
            pthread_mutex_lock(&t->lock);
            snprintf(td->last_error, sizeof td->last_error, "%s", t->last_error);
            pthread_mutex_unlock(&t->lock);
            snprintf(td->address, sizeof td->address, "%s", t->addr);
            td->weight = t->weight;
            /* Relaxed: figures shown each on its own. */
            uint64_t until = atomic_load_explicit(&t->ejected_until_ms, memory_order_relaxed);
            td->healthy = until <= now;
            /* A target failing its active check stays out until one
             * passes: no time to give (-1). */
            td->ejected_until_ms = until <= now ? 0 : until >= UINT64_MAX / 4 ? -1 : (int64_t)until;
            td->consecutive_failures =
                atomic_load_explicit(&t->consecutive_failures, memory_order_relaxed);
            td->requests = atomic_load_explicit(&t->requests, memory_order_relaxed);
            td->failures = atomic_load_explicit(&t->failures, memory_order_relaxed);
            td->ejections = atomic_load_explicit(&t->ejections, memory_order_relaxed);
        }
    }
    *out = d;
    return 0;
}

void gw_upstreams_desc_free(struct gw_upstreams_desc *d)
{
    free(d);
}
