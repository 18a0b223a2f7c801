/*
 * metrics.c: request counters, latency histograms and upstream error
 * counters, and their Prometheus text exposition (GET /metrics).
 *
 * Storage is static and fixed: GW_METRICS_MAX_ROUTES route slots and
 * GW_METRICS_MAX_UPSTREAM_KEYS upstream/target slots in open-addressed
 * tables keyed by name. A slot is claimed once, by CAS on its state
 * (EMPTY -> CLAIMING), its name copied in, then published (READY); it is
 * never freed or renamed while the gateway runs, so recording is a hash, a
 * probe and relaxed atomic adds: no lock, no allocation, no system call.
 * When a table is full, or a name is too long, the figures go to the
 * overflow slot ("_other"), which keeps cardinality bounded whatever routes
 * and targets a configuration or a peer produces.
 *
 * Render runs in process context and reads the counters with relaxed loads:
 * each figure is exact, the set of them is not one instant (as Prometheus
 * expects from a scrape).
 */
#include "gw/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "gw/events.h"
#include "gw/gateway.h"
#include "gw/router.h"
#include "gw/upstream.h"
#include "rt/rt.h"

/* Upper bounds of the latency buckets, microseconds (+Inf implied). */
static const uint64_t bucket_us[GW_METRICS_BUCKETS] = {
    1000,   2500,   5000,    10000,   25000,   50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[GW_METRICS_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",  "0.5",    "1",     "2.5",  "5",     "10",
};

enum { SLOT_EMPTY = 0, SLOT_CLAIMING, SLOT_READY };

#define NAME_CAP 136 /* ROUTE_MAX_NAME_BYTES (128) and a NUL, rounded */
#define KEY_CAP 320  /* upstream name, NUL, target address */

struct route_slot {
    _Atomic int state;
    char name[NAME_CAP];
    _Atomic uint64_t by_class[6]; /* [0]: other statuses, [1..5]: 1xx..5xx */
    _Atomic uint64_t buckets[GW_METRICS_BUCKETS + 1];
    _Atomic uint64_t sum_us;
};

struct upstream_slot {
    _Atomic int state;
    char key[KEY_CAP]; /* "upstream\0target" */
    size_t upstream_len;
    _Atomic uint64_t errors;
};

/* Twice the slots that may be claimed (short probes), plus the overflow
 * slot at the end. */
#define ROUTE_SLOTS (2 * GW_METRICS_MAX_ROUTES)
#define UPSTREAM_SLOTS (2 * GW_METRICS_MAX_UPSTREAM_KEYS)
static struct route_slot routes[ROUTE_SLOTS + 1];
static struct upstream_slot upstreams[UPSTREAM_SLOTS + 1];
static _Atomic size_t routes_claimed, upstreams_claimed;
static _Atomic uint64_t route_overflows;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Finds or claims the slot for `key` (klen bytes, may hold NULs) in a
 * table of `cap` slots of `size` bytes whose state is at offset 0 and key
 * at `key_off`. At most `max_claims` slots are ever claimed (counted in
 * *claimed); the table has twice as many, so probes stay short. Returns
 * NULL when the key is new and no claim is left. */
static void *slot_find(void *table, size_t cap, size_t size, size_t key_off, size_t key_cap,
                       _Atomic size_t *claimed, size_t max_claims, const char *key, size_t klen)
{
    if (klen + 1 > key_cap)
        return NULL;
    size_t start = (size_t)(hash_bytes(key, klen) % cap);
    for (size_t probe = 0; probe < cap; probe++) {
        char *slot = (char *)table + ((start + probe) % cap) * size;
        _Atomic int *state = (_Atomic int *)slot;
        char *k = slot + key_off;
        /* acquire: a READY slot's key was written before its state. */
        int st = atomic_load_explicit(state, memory_order_acquire);
        if (st == SLOT_EMPTY) {
            /* relaxed: the count only bounds how many slots are claimed. */
            if (atomic_fetch_add_explicit(claimed, 1, memory_order_relaxed) >= max_claims) {
                atomic_fetch_sub_explicit(claimed, 1, memory_order_relaxed);
                return NULL;
            }
            int expected = SLOT_EMPTY;
            /* acquire on failure: the other claimant's key may be read
             * next (C11 forbids a weaker order on success, and the claim
             * publishes nothing: the release store of READY below does). */
            if (atomic_compare_exchange_strong_explicit(
                    state, &expected, SLOT_CLAIMING, memory_order_acquire, memory_order_acquire)) {
                memcpy(k, key, klen);
                k[klen] = 0;
                /* release: the key is visible to whoever sees READY. */
                atomic_store_explicit(state, SLOT_READY, memory_order_release);
                return slot;
            }
            atomic_fetch_sub_explicit(claimed, 1, memory_order_relaxed);
            st = expected;
        }
        /* Another thread is copying a key in: a few stores; wait them out. */
        while (st == SLOT_CLAIMING)
            st = atomic_load_explicit(state, memory_order_acquire);
        if (memcmp(k, key, klen) == 0 && k[klen] == 0)
            return slot;
    }
    return NULL;
}

int gw_metrics_init(void)
{
    gw_metrics_done();
    return 0;
}

void gw_metrics_done(void)
{
    /* Main thread, nothing recording: plain resets are enough. */
    memset(routes, 0, sizeof routes);
    memset(upstreams, 0, sizeof upstreams);
    atomic_store(&routes_claimed, 0);
    atomic_store(&upstreams_claimed, 0);
    atomic_store(&route_overflows, 0);
}

void gw_metrics_request(const char *route, int status, uint64_t duration_us)
{
    if (!route)
        route = GW_METRICS_NO_ROUTE;
    struct route_slot *s =
        slot_find(routes, ROUTE_SLOTS, sizeof routes[0], offsetof(struct route_slot, name),
                  NAME_CAP, &routes_claimed, GW_METRICS_MAX_ROUTES, route, strlen(route));
    if (!s) {
        s = &routes[ROUTE_SLOTS];
        /* relaxed: counters only, no ordering with other data. */
        atomic_fetch_add_explicit(&route_overflows, 1, memory_order_relaxed);
    }
    int cls = status >= 100 && status < 600 ? status / 100 : 0;
    size_t b = 0;
    while (b < GW_METRICS_BUCKETS && duration_us > bucket_us[b])
        b++;
    /* relaxed: independent counters; a scrape reads each one exactly. */
    atomic_fetch_add_explicit(&s->by_class[cls], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, duration_us, memory_order_relaxed);
}

void gw_metrics_upstream_error(const char *upstream, const char *target)
{
    char key[KEY_CAP];
    if (!upstream)
        upstream = "";
    if (!target)
        target = "";
    size_t ul = strlen(upstream), tl = strlen(target);
    struct upstream_slot *s = NULL;
    if (ul + 1 + tl + 1 <= sizeof key) {
        memcpy(key, upstream, ul);
        key[ul] = 0;
        memcpy(key + ul + 1, target, tl);
        s = slot_find(upstreams, UPSTREAM_SLOTS, sizeof upstreams[0],
                      offsetof(struct upstream_slot, key), KEY_CAP, &upstreams_claimed,
                      GW_METRICS_MAX_UPSTREAM_KEYS, key, ul + 1 + tl);
    }
    if (!s)
        s = &upstreams[UPSTREAM_SLOTS];
    /* relaxed: a counter. */
    atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
}

/* ---- exposition ---------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value with \, " and newline escaped (Prometheus text format). */
static void put_label(struct buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            put(b, "\\\\");
        else if (*v == '"')
            put(b, "\\\"");
        else if (*v == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *v);
    }
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *route_label(const struct route_slot *s)
{
    return s == &routes[ROUTE_SLOTS] ? GW_METRICS_OVERFLOW : s->name;
}

static bool route_used(const struct route_slot *s)
{
    if (s == &routes[ROUTE_SLOTS]) {
        /* relaxed: a hint whether to show the overflow series. */
        return atomic_load_explicit(&route_overflows, memory_order_relaxed) != 0;
    }
    /* acquire: pairs with the release of READY so the name is complete. */
    return atomic_load_explicit(&s->state, memory_order_acquire) == SLOT_READY;
}

static void render_requests(struct buf *b)
{
    static const char *const classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    family(b, "tandem_requests_total", "counter", "Requests answered, by route and status class.");
    for (size_t i = 0; i <= ROUTE_SLOTS; i++) {
        const struct route_slot *s = &routes[i];
        if (!route_used(s))
            continue;
        for (int c = 0; c < 6; c++) {
            uint64_t v = atomic_load_explicit(&s->by_class[c], memory_order_relaxed);
            if (!v)
                continue;
            put(b, "tandem_requests_total{route=\"");
            put_label(b, route_label(s));
            put(b, "\",class=\"%s\"} %llu\n", classes[c], (unsigned long long)v);
        }
    }
    family(b, "tandem_request_duration_seconds", "histogram",
           "Request duration as the gateway measured it, by route.");
    for (size_t i = 0; i <= ROUTE_SLOTS; i++) {
        const struct route_slot *s = &routes[i];
        if (!route_used(s))
            continue;
        uint64_t cum = 0;
        for (size_t k = 0; k <= GW_METRICS_BUCKETS; k++) {
            cum += atomic_load_explicit(&s->buckets[k], memory_order_relaxed);
            put(b, "tandem_request_duration_seconds_bucket{route=\"");
            put_label(b, route_label(s));
            put(b, "\",le=\"%s\"} %llu\n", k < GW_METRICS_BUCKETS ? bucket_le[k] : "+Inf",
                (unsigned long long)cum);
        }
        uint64_t sum = atomic_load_explicit(&s->sum_us, memory_order_relaxed);
        put(b, "tandem_request_duration_seconds_sum{route=\"");
        put_label(b, route_label(s));
        put(b, "\"} %llu.%06llu\n", (unsigned long long)(sum / 1000000),
            (unsigned long long)(sum % 1000000));
        put(b, "tandem_request_duration_seconds_count{route=\"");
        put_label(b, route_label(s));
        put(b, "\"} %llu\n", (unsigned long long)cum);
    }
}

static void render_upstreams(struct buf *b)
{
    family(b, "tandem_upstream_connect_errors_total", "counter",
           "Upstream connect failures and timeouts, by upstream and target.");
    for (size_t i = 0; i <= UPSTREAM_SLOTS; i++) {
        const struct upstream_slot *s = &upstreams[i];
        uint64_t v = atomic_load_explicit(&s->errors, memory_order_relaxed);
        if (!v)
            continue;
        bool overflow = i == UPSTREAM_SLOTS;
        /* acquire: the key is complete once READY is seen. */
        if (!overflow && atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_READY)
            continue;
        const char *up = overflow ? GW_METRICS_OVERFLOW : s->key;
        const char *tg = overflow ? GW_METRICS_OVERFLOW : s->key + strlen(s->key) + 1;
        put(b, "tandem_upstream_connect_errors_total{upstream=\"");
        put_label(b, up);
        put(b, "\",target=\"");
        put_label(b, tg);
        put(b, "\"} %llu\n", (unsigned long long)v);
    }

    /* Health per target, from the upstream pools' own description. */
    struct gw_upstreams_desc *d = NULL;
    if (gw_upstreams_describe(&d) < 0)
        return;
    family(b, "tandem_upstream_target_healthy", "gauge",
           "1 when the target is taking traffic, 0 when it is ejected or failing checks.");
    for (size_t i = 0; i < d->n; i++) {
        const struct gw_upstream_desc *u = &d->ups[i];
        for (size_t j = 0; j < u->ntargets; j++) {
            put(b, "tandem_upstream_target_healthy{upstream=\"");
            put_label(b, u->name);
            put(b, "\",target=\"");
            put_label(b, u->targets[j].address);
            put(b, "\"} %d\n", u->targets[j].healthy ? 1 : 0);
        }
    }
    family(b, "tandem_upstream_connections", "gauge",
           "Pooled upstream connections by state (active: checked out; idle: kept alive).");
    for (size_t i = 0; i < d->n; i++) {
        const struct gw_upstream_desc *u = &d->ups[i];
        for (size_t j = 0; j < u->ntargets; j++) {
            const struct gw_target_desc *t = &u->targets[j];
            const unsigned long long n[2] = {t->active, t->idle};
            static const char *const states[2] = {"active", "idle"};
            for (int k = 0; k < 2; k++) {
                put(b, "tandem_upstream_connections{upstream=\"");
                put_label(b, u->name);
                put(b, "\",target=\"");
                put_label(b, t->address);
                put(b, "\",state=\"%s\"} %llu\n", states[k], n[k]);
            }
        }
    }
    gw_upstreams_desc_free(d);
}

static void render_runtime(struct buf *b)
{
    struct rt_system_info si;
    if (rt_system_info(&si) < 0)
        return;
    family(b, "tandem_processes", "gauge", "Live runtime processes.");
    put(b, "tandem_processes %zu\n", si.process_count);
    family(b, "tandem_process_limit", "gauge", "Most processes the runtime can hold.");
    put(b, "tandem_process_limit %zu\n", si.process_limit);
    family(b, "tandem_processes_spawned_total", "counter", "Processes started.");
    put(b, "tandem_processes_spawned_total %llu\n", (unsigned long long)si.spawned);
    family(b, "tandem_processes_exited_total", "counter", "Processes that exited.");
    put(b, "tandem_processes_exited_total %llu\n", (unsigned long long)si.exited);
    family(b, "tandem_scheduler_run_queue", "gauge", "Runnable processes queued per scheduler.");
    for (unsigned i = 0; i < si.schedulers && i < RT_MAX_SCHEDULERS; i++)
        put(b, "tandem_scheduler_run_queue{scheduler=\"%u\"} %zu\n", i, si.sched[i].run_queue);
    family(b, "tandem_scheduler_utilisation", "gauge",
           "Busy fraction of each scheduler over the last second (0..1).");
    for (unsigned i = 0; i < si.schedulers && i < RT_MAX_SCHEDULERS; i++)
        put(b, "tandem_scheduler_utilisation{scheduler=\"%u\"} %.4f\n", i, si.sched[i].utilisation);
    family(b, "tandem_memory_bytes", "gauge",
           "Memory: resident set of the gateway, and what the runtime accounts to processes.");
    put(b, "tandem_memory_bytes{kind=\"rss\"} %zu\n", si.memory_rss);
    put(b, "tandem_memory_bytes{kind=\"processes\"} %zu\n", si.memory_procs);
    family(b, "tandem_messages_live", "gauge", "Messages allocated and not yet freed.");
    put(b, "tandem_messages_live %llu\n", (unsigned long long)si.messages_live);
    family(b, "tandem_uptime_seconds", "gauge", "Seconds since the runtime started.");
    put(b, "tandem_uptime_seconds %.3f\n", (double)si.uptime_ms / 1000.0);
}

static void render_gateway(struct buf *b)
{
    struct gw_router_counts rc = {0};
    gw_router_counts(&rc);
    family(b, "tandem_route_reloads_total", "counter",
           "Route table reloads, by outcome (failed: refused, the old table kept serving).");
    put(b, "tandem_route_reloads_total{outcome=\"ok\"} %llu\n", (unsigned long long)rc.reloads_ok);
    put(b, "tandem_route_reloads_total{outcome=\"failed\"} %llu\n",
        (unsigned long long)rc.reloads_failed);
    uint64_t ev[GW_EVENT_TYPES];
    gw_events_counts(ev);
    family(b, "tandem_events_total", "counter",
           "Events of the gateway's event stream (gw_events), by type.");
    for (int t = GW_EVENT_ROUTES_RELOADED; t < GW_EVENT_TYPES; t++)
        put(b, "tandem_events_total{type=\"%s\"} %llu\n", gw_event_name((enum gw_event_type)t),
            (unsigned long long)ev[t]);
    family(b, "tandem_route_table_version", "gauge", "Version of the route table serving now.");
    put(b, "tandem_route_table_version %llu\n", (unsigned long long)gw__admin_route_version());
    family(b, "tandem_requests_in_flight", "gauge", "Requests being handled now.");
    /* relaxed: a gauge read on its own. */
    put(b, "tandem_requests_in_flight %llu\n",
        (unsigned long long)atomic_load_explicit(&gw.requests_in_flight, memory_order_relaxed));
    family(b, "tandem_connections", "gauge", "Open client connections, by listener.");
    for (size_t i = 0; gw.cfg && gw.listener_stats && i < gw.cfg->nlisteners; i++) {
        put(b, "tandem_connections{listener=\"");
        put_label(b, gw.cfg->listeners[i].name ? gw.cfg->listeners[i].name : "");
        put(b, "\"} %llu\n",
            (unsigned long long)atomic_load_explicit(&gw.listener_stats[i].connections,
                                                     memory_order_relaxed));
    }
    put(b, "tandem_connections{listener=\"admin\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&gw.admin_stats.connections,
                                                 memory_order_relaxed));
    family(b, "tandem_connections_accepted_total", "counter",
           "Client connections accepted, by listener.");
    for (size_t i = 0; gw.cfg && gw.listener_stats && i < gw.cfg->nlisteners; i++) {
        put(b, "tandem_connections_accepted_total{listener=\"");
        put_label(b, gw.cfg->listeners[i].name ? gw.cfg->listeners[i].name : "");
        put(b, "\"} %llu\n",
            (unsigned long long)atomic_load_explicit(&gw.listener_stats[i].accepted,
                                                     memory_order_relaxed));
    }
    put(b, "tandem_connections_accepted_total{listener=\"admin\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&gw.admin_stats.accepted, memory_order_relaxed));
    family(b, "tandem_connections_refused_total", "counter",
           "Client connections refused (503) over max_connections or the file descriptor "
           "reserve, by listener.");
    for (size_t i = 0; gw.cfg && gw.listener_stats && i < gw.cfg->nlisteners; i++) {
        put(b, "tandem_connections_refused_total{listener=\"");
        put_label(b, gw.cfg->listeners[i].name ? gw.cfg->listeners[i].name : "");
        put(b, "\"} %llu\n",
            (unsigned long long)atomic_load_explicit(&gw.listener_stats[i].refused,
                                                     memory_order_relaxed));
    }
    family(b, "tandem_ready", "gauge", "1 when routes are loaded and listeners accept.");
    put(b, "tandem_ready %d\n", atomic_load_explicit(&gw.ready, memory_order_relaxed) ? 1 : 0);
}

int gw_metrics_render(char **out, size_t *len)
{
    struct buf b = {.cap = 16384};
    b.p = malloc(b.cap);
    if (!b.p)
        return -ENOMEM;
    b.p[0] = 0;
    render_requests(&b);
    render_upstreams(&b);
    render_gateway(&b);
    render_runtime(&b);
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
