/*
 * stats.c: the denial counters of tandem_policy_denials_total, recorded by
 * every policy kind when it refuses a request, from any thread.
 *
 * Storage: an open-addressed table of 2 * GW_POL_STATS_MAX_POLICIES
 * pointers (short probes), each NULL or a record {name, counts per reason}
 * published once by CAS and never freed or renamed while the gateway runs;
 * at most GW_POL_STATS_MAX_POLICIES are ever claimed, then names count
 * under "_other" (a static record). The table holds pointers rather than
 * the records so that its pages cost nothing until policies refuse
 * requests. Recording is a hash, a probe, a name compare and a relaxed
 * atomic add; only a name's first denial allocates.
 */
#include "policy/stats.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

static const char *const reason_names[GW_POL_DENIAL_REASONS] = {
    [GW_POL_DENY_MISSING_CREDENTIALS] = "missing_credentials",
    [GW_POL_DENY_INVALID_CREDENTIALS] = "invalid_credentials",
    [GW_POL_DENY_FORBIDDEN] = "forbidden",
    [GW_POL_DENY_UNAUTHENTICATED] = "unauthenticated",
    [GW_POL_DENY_RATE_LIMITED] = "rate_limited",
    [GW_POL_DENY_CONCURRENCY] = "concurrency",
    [GW_POL_DENY_QUEUE_TIMEOUT] = "queue_timeout",
    [GW_POL_DENY_IP_DENIED] = "ip_denied",
    [GW_POL_DENY_CORS_REFUSED] = "cors_refused",
    [GW_POL_DENY_INVALID_TOKEN] = "invalid_token",
    [GW_POL_DENY_EXPIRED_TOKEN] = "expired_token",
    [GW_POL_DENY_NOT_YET_VALID] = "not_yet_valid",
    [GW_POL_DENY_UNKNOWN_KID] = "unknown_kid",
    [GW_POL_DENY_KEYS_UNAVAILABLE] = "keys_unavailable",
    [GW_POL_DENY_REDIS_UNAVAILABLE] = "redis_unavailable",
    [GW_POL_DENY_INTERNAL] = "internal",
    [GW_POL_DENY_OTHER] = "other",
};

struct record {
    char name[GW_POL_NAME_MAX + 1];
    _Atomic uint64_t n[GW_POL_DENIAL_REASONS];
};

#define SLOTS (2 * GW_POL_STATS_MAX_POLICIES)
static _Atomic(struct record *) slots[SLOTS];
static _Atomic size_t claimed;
static struct record overflow = {.name = GW_POL_STATS_OVERFLOW};
static _Atomic uint64_t overflow_used;

const char *gw_pol_denial_name(enum gw_pol_denial r)
{
    return (unsigned)r < GW_POL_DENIAL_REASONS ? reason_names[r] : reason_names[GW_POL_DENY_OTHER];
}

enum gw_pol_denial gw_pol_denial_find(const char *reason)
{
    if (reason)
        for (int r = 0; r < GW_POL_DENY_OTHER; r++)
            if (strcmp(reason, reason_names[r]) == 0)
                return (enum gw_pol_denial)r;
    return GW_POL_DENY_OTHER;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The record of `name` (len bytes), claimed if new; NULL when no claim is
 * left or memory is short. */
static struct record *record_find(const char *name, size_t len)
{
    size_t start = (size_t)(hash_bytes(name, len) % SLOTS);
    struct record *fresh = NULL;
    for (size_t probe = 0; probe < SLOTS; probe++) {
        _Atomic(struct record *) *slot = &slots[(start + probe) % SLOTS];
        /* acquire: a published record's name was written before it. */
        struct record *r = atomic_load_explicit(slot, memory_order_acquire);
        if (!r) {
            if (!fresh) {
                /* relaxed: the count only bounds how many records exist. */
                if (atomic_fetch_add_explicit(&claimed, 1, memory_order_relaxed) >=
                    GW_POL_STATS_MAX_POLICIES) {
                    atomic_fetch_sub_explicit(&claimed, 1, memory_order_relaxed);
                    return NULL;
                }
                fresh = calloc(1, sizeof *fresh);
                if (!fresh) {
                    atomic_fetch_sub_explicit(&claimed, 1, memory_order_relaxed);
                    return NULL;
                }
                memcpy(fresh->name, name, len);
            }
            /* release: the name is visible to whoever loads the pointer;
             * acquire on failure: the winner's name is read next. */
            if (atomic_compare_exchange_strong_explicit(slot, &r, fresh, memory_order_acq_rel,
                                                        memory_order_acquire))
                return fresh;
        }
        if (memcmp(r->name, name, len) == 0 && r->name[len] == 0) {
            if (fresh) {
                /* Another thread published the same name first. */
                free(fresh);
                atomic_fetch_sub_explicit(&claimed, 1, memory_order_relaxed);
            }
            return r;
        }
    }
    if (fresh) {
        free(fresh);
        atomic_fetch_sub_explicit(&claimed, 1, memory_order_relaxed);
    }
    return NULL;
}

void gw_pol_count_denial(const char *policy, const char *reason)
{
    enum gw_pol_denial why = gw_pol_denial_find(reason);
    struct record *r = NULL;
    if (policy) {
        size_t len = strnlen(policy, GW_POL_NAME_MAX + 1);
        if (len <= GW_POL_NAME_MAX)
            r = record_find(policy, len);
    }
    if (!r) {
        r = &overflow;
        /* relaxed: only whether to show the overflow series. */
        atomic_store_explicit(&overflow_used, 1, memory_order_relaxed);
    }
    /* relaxed: independent counters; a scrape reads each one exactly. */
    atomic_fetch_add_explicit(&r->n[why], 1, memory_order_relaxed);
}

bool gw_pol_denials_next(size_t *pos, struct gw_pol_denials *out)
{
    for (size_t i = *pos; i <= SLOTS; i++) {
        const struct record *r;
        if (i == SLOTS) {
            /* relaxed: a hint whether to show the overflow series. */
            if (!atomic_load_explicit(&overflow_used, memory_order_relaxed))
                continue;
            r = &overflow;
        } else {
            /* acquire: pairs with the publishing CAS; the name is complete. */
            r = atomic_load_explicit(&slots[i], memory_order_acquire);
            if (!r)
                continue;
        }
        out->name = r->name;
        for (int k = 0; k < GW_POL_DENIAL_REASONS; k++)
            /* relaxed: each counter read on its own. */
            out->n[k] = atomic_load_explicit(&r->n[k], memory_order_relaxed);
        *pos = i + 1;
        return true;
    }
    *pos = SLOTS + 1;
    return false;
}

void gw_pol_stats_reset(void)
{
    /* Nothing records: plain stores are enough. */
    for (size_t i = 0; i < SLOTS; i++) {
        free(atomic_load_explicit(&slots[i], memory_order_relaxed));
        atomic_store_explicit(&slots[i], NULL, memory_order_relaxed);
    }
    for (int k = 0; k < GW_POL_DENIAL_REASONS; k++)
        atomic_store_explicit(&overflow.n[k], 0, memory_order_relaxed);
    atomic_store_explicit(&overflow_used, 0, memory_order_relaxed);
    atomic_store_explicit(&claimed, 0, memory_order_relaxed);
}
