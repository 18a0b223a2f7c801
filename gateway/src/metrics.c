/*
 * metrics.c: request counters, latency histograms and upstream error
 * counters, recorded on the hot path from any thread. Reading them back
 * (gw_metrics_route_next, gw_metrics_upstream_next) gives plain structs;
 * their Prometheus text (GET /metrics) is rendered by the admin API
 * (admin/exposition.c), which renders every answer it gives.
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
 * Reading uses relaxed loads: each figure is exact, the set of them is not
 * one instant (as Prometheus expects from a scrape).
 */
#include "gw/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Upper bounds of the latency buckets, microseconds (+Inf implied). */
static const uint64_t bucket_us[GW_METRICS_BUCKETS] = {
    1000,   2500,   5000,    10000,   25000,   50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000,
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

struct workflow_slot {
    _Atomic int state;
    char name[NAME_CAP];
    _Atomic uint64_t events[GW_METRICS_WF_EVENTS];
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
#define WORKFLOW_SLOTS (2 * GW_METRICS_MAX_WORKFLOWS)
static struct workflow_slot workflows[WORKFLOW_SLOTS + 1];
static _Atomic size_t routes_claimed, upstreams_claimed, workflows_claimed;
static _Atomic uint64_t route_overflows, workflow_overflows;

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

/* The Redis client's state: flags and counters are relaxed atomics (each
 * read on its own); the texts change seldom (a configuration, a
 * connection's failure) and are copied under `redis_mu`. */
static struct {
    _Atomic bool configured, up;
    _Atomic uint64_t round_trips, connects, last_error_ms;
    _Atomic uint64_t errors[GW_METRICS_REDIS_ERRORS];
    pthread_mutex_t mu;
    char last_error[GW_METRICS_REDIS_ERROR_TEXT];
    char address[320];
} redis = {.mu = PTHREAD_MUTEX_INITIALIZER};

const char *const gw_metrics_redis_error_names[GW_METRICS_REDIS_ERRORS] = {"unavailable", "timeout",
                                                                           "reply", "connection"};

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
    memset(workflows, 0, sizeof workflows);
    atomic_store(&routes_claimed, 0);
    atomic_store(&upstreams_claimed, 0);
    atomic_store(&workflows_claimed, 0);
    atomic_store(&route_overflows, 0);
    atomic_store(&workflow_overflows, 0);
    atomic_store(&redis.configured, false);
    atomic_store(&redis.up, false);
    atomic_store(&redis.round_trips, 0);
    atomic_store(&redis.connects, 0);
    atomic_store(&redis.last_error_ms, 0);
    for (int i = 0; i < GW_METRICS_REDIS_ERRORS; i++)
        atomic_store(&redis.errors[i], 0);
    pthread_mutex_lock(&redis.mu);
    redis.last_error[0] = redis.address[0] = '\0';
    pthread_mutex_unlock(&redis.mu);
}

void gw_metrics_redis_configured(const char *address)
{
    pthread_mutex_lock(&redis.mu);
    snprintf(redis.address, sizeof redis.address, "%s", address ? address : "");
    pthread_mutex_unlock(&redis.mu);
    /* relaxed: a flag read on its own (the address is under the mutex). */
    atomic_store_explicit(&redis.configured, address != NULL, memory_order_relaxed);
}

void gw_metrics_redis_up(bool up)
{
    /* relaxed: flags and counters each read on their own. */
    atomic_store_explicit(&redis.up, up, memory_order_relaxed);
    if (up)
        atomic_fetch_add_explicit(&redis.connects, 1, memory_order_relaxed);
}

static _Atomic uint64_t access_log_dropped;

void gw_metrics_access_log_dropped(uint64_t n)
{
    /* relaxed: a counter. */
    atomic_fetch_add_explicit(&access_log_dropped, n, memory_order_relaxed);
}

uint64_t gw_metrics_access_log_dropped_total(void)
{
    return atomic_load_explicit(&access_log_dropped, memory_order_relaxed);
}

void gw_metrics_redis_round_trip(void)
{
    /* relaxed: a counter. */
    atomic_fetch_add_explicit(&redis.round_trips, 1, memory_order_relaxed);
}

void gw_metrics_redis_error(enum gw_metrics_redis_error kind, const char *text)
{
    if ((unsigned)kind >= GW_METRICS_REDIS_ERRORS)
        return;
    /* relaxed: counters. */
    atomic_fetch_add_explicit(&redis.errors[kind], 1, memory_order_relaxed);
    if (!text)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&redis.mu);
    snprintf(redis.last_error, sizeof redis.last_error, "%s", text);
    pthread_mutex_unlock(&redis.mu);
    atomic_store_explicit(&redis.last_error_ms,
                          (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u,
                          memory_order_relaxed);
}

void gw_metrics_redis_read(struct gw_metrics_redis *out)
{
    memset(out, 0, sizeof(*out));
    /* relaxed: each figure read on its own, as a scrape expects. */
    out->configured = atomic_load_explicit(&redis.configured, memory_order_relaxed);
    out->up = atomic_load_explicit(&redis.up, memory_order_relaxed);
    out->round_trips = atomic_load_explicit(&redis.round_trips, memory_order_relaxed);
    out->connects = atomic_load_explicit(&redis.connects, memory_order_relaxed);
    out->last_error_ms = atomic_load_explicit(&redis.last_error_ms, memory_order_relaxed);
    for (int i = 0; i < GW_METRICS_REDIS_ERRORS; i++)
        out->errors[i] = atomic_load_explicit(&redis.errors[i], memory_order_relaxed);
    pthread_mutex_lock(&redis.mu);
    memcpy(out->last_error, redis.last_error, sizeof out->last_error);
    memcpy(out->address, redis.address, sizeof out->address);
    pthread_mutex_unlock(&redis.mu);
}

const char *const gw_metrics_killed_names[GW_METRICS_KILLS] = {
    [GW_METRICS_KILL_MEMORY] = "memory_limit",
    [GW_METRICS_KILL_TIME] = "time_limit",
};
static _Atomic uint64_t killed[GW_METRICS_KILLS];

void gw_metrics_request_killed(enum gw_metrics_kill why)
{
    /* relaxed: counters only, no ordering with other data. */
    if ((unsigned)why < GW_METRICS_KILLS)
        atomic_fetch_add_explicit(&killed[why], 1, memory_order_relaxed);
}

void gw_metrics_killed_read(uint64_t out[GW_METRICS_KILLS])
{
    for (int i = 0; i < GW_METRICS_KILLS; i++)
        out[i] = atomic_load_explicit(&killed[i], memory_order_relaxed);
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

static struct workflow_slot *workflow_slot(const char *def)
{
    if (!def)
        def = "";
    struct workflow_slot *s = slot_find(
        workflows, WORKFLOW_SLOTS, sizeof workflows[0], offsetof(struct workflow_slot, name),
        NAME_CAP, &workflows_claimed, GW_METRICS_MAX_WORKFLOWS, def, strlen(def));
    if (s)
        return s;
    /* relaxed: a counter, read only to decide whether to show the series. */
    atomic_fetch_add_explicit(&workflow_overflows, 1, memory_order_relaxed);
    return &workflows[WORKFLOW_SLOTS];
}

void gw_metrics_workflow(const char *def, enum gw_metrics_wf_event ev)
{
    if ((unsigned)ev >= GW_METRICS_WF_EVENTS)
        return;
    /* relaxed: a counter. */
    atomic_fetch_add_explicit(&workflow_slot(def)->events[ev], 1, memory_order_relaxed);
}

void gw_metrics_workflow_step(const char *def, uint64_t duration_us)
{
    struct workflow_slot *s = workflow_slot(def);
    size_t b = 0;
    while (b < GW_METRICS_BUCKETS && duration_us > bucket_us[b])
        b++;
    /* relaxed: independent counters. */
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, duration_us, memory_order_relaxed);
}

/* ---- reading --------------------------------------------------------------- */

bool gw_metrics_route_next(size_t *pos, struct gw_metrics_route *out)
{
    for (size_t i = *pos; i <= ROUTE_SLOTS; i++) {
        const struct route_slot *s = &routes[i];
        bool overflow = i == ROUTE_SLOTS;
        /* relaxed: a hint whether to show the overflow series. acquire:
         * pairs with the release of READY so that the name is complete. */
        if (overflow ? atomic_load_explicit(&route_overflows, memory_order_relaxed) == 0
                     : atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_READY)
            continue;
        out->name = overflow ? GW_METRICS_OVERFLOW : s->name;
        /* relaxed: independent counters, each read exactly. */
        for (int c = 0; c < 6; c++)
            out->by_class[c] = atomic_load_explicit(&s->by_class[c], memory_order_relaxed);
        for (size_t k = 0; k <= GW_METRICS_BUCKETS; k++)
            out->buckets[k] = atomic_load_explicit(&s->buckets[k], memory_order_relaxed);
        out->sum_us = atomic_load_explicit(&s->sum_us, memory_order_relaxed);
        *pos = i + 1;
        return true;
    }
    *pos = ROUTE_SLOTS + 1;
    return false;
}

bool gw_metrics_upstream_next(size_t *pos, struct gw_metrics_upstream *out)
{
    for (size_t i = *pos; i <= UPSTREAM_SLOTS; i++) {
        const struct upstream_slot *s = &upstreams[i];
        /* relaxed: a counter. */
        uint64_t v = atomic_load_explicit(&s->errors, memory_order_relaxed);
        if (!v)
            continue;
        bool overflow = i == UPSTREAM_SLOTS;
        /* acquire: the key is complete once READY is seen. */
        if (!overflow && atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_READY)
            continue;
        out->upstream = overflow ? GW_METRICS_OVERFLOW : s->key;
        out->target = overflow ? GW_METRICS_OVERFLOW : s->key + strlen(s->key) + 1;
        out->errors = v;
        *pos = i + 1;
        return true;
    }
    *pos = UPSTREAM_SLOTS + 1;
    return false;
}

bool gw_metrics_workflow_next(size_t *pos, struct gw_metrics_workflow *out)
{
    for (size_t i = *pos; i <= WORKFLOW_SLOTS; i++) {
        const struct workflow_slot *s = &workflows[i];
        bool overflow = i == WORKFLOW_SLOTS;
        /* relaxed: whether to show the overflow series. acquire: pairs with
         * the release of READY so that the name is complete. */
        if (overflow ? atomic_load_explicit(&workflow_overflows, memory_order_relaxed) == 0
                     : atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_READY)
            continue;
        out->name = overflow ? GW_METRICS_OVERFLOW : s->name;
        /* relaxed: independent counters, each read exactly. */
        for (int e = 0; e < GW_METRICS_WF_EVENTS; e++)
            out->events[e] = atomic_load_explicit(&s->events[e], memory_order_relaxed);
        for (size_t k = 0; k <= GW_METRICS_BUCKETS; k++)
            out->buckets[k] = atomic_load_explicit(&s->buckets[k], memory_order_relaxed);
        out->sum_us = atomic_load_explicit(&s->sum_us, memory_order_relaxed);
        *pos = i + 1;
        return true;
    }
    *pos = WORKFLOW_SLOTS + 1;
    return false;
}
