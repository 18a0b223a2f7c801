/*
 * ratelimit_table.c: the rate limit counters (ratelimit.h): the sliding
 * window arithmetic, the bounded per-policy key tables and the registry
 * that lets a reload find a policy's counters again.
 *
 * Exactness: a key's window is read and written under its stripe's lock
 * only, so two requests of one key are ordered and the N+1-th of a window
 * sees the N before it, whatever scheduler each runs on. Requests of other
 * keys take other stripes (GW_RL_STRIPES of them, chosen by a keyed hash)
 * and do not wait for each other. The lock is held for a hash lookup and a
 * few integer operations, never across a runtime call. No process is on
 * the path.
 *
 * Bounds: a space holds at most max_keys entries. An entry whose windows
 * are over (gw__rl_window_expired) answers as a missing one would, so it
 * is dropped whenever it is met at the head of its stripe's
 * least-recently-used list; when a new key finds the table full, the heads
 * of every stripe are tried (without waiting for a lock held elsewhere),
 * and if none has expired the request is refused (table_full, counted):
 * evicting a live key would hand its owner a fresh quota.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "policy/ratelimit.h"
#include "policy/siphash.h"

/* ---- the window ------------------------------------------------------------ */

void gw__rl_window_init(struct gw__rl_window *w, uint64_t now_ms)
{
    w->anchor_ms = now_ms;
    w->seq = 0;
    w->prev = 0;
    w->cur = 0;
}

/* Brings the window to now: returns the elapsed time in the current window
 * and rolls prev/cur. */
static uint64_t roll(struct gw__rl_window *w, uint32_t window_ms, uint64_t now_ms)
{
    uint64_t start = w->anchor_ms + w->seq * window_ms;
    if (now_ms < start)
        now_ms = start;
    uint64_t n = (now_ms - w->anchor_ms) / window_ms;
    if (n == w->seq + 1) {
        w->prev = w->cur;
        w->cur = 0;
    } else if (n > w->seq + 1) {
        /* Nothing counted weighs any more: the key starts afresh, its
         * windows anchored at this request, as a new key's are. Keeping
         * the old grid would let a client returning late in a window have
         * the limit there and the limit again in the next. */
        gw__rl_window_init(w, now_ms);
        return 0;
    }
    w->seq = n;
    return (now_ms - w->anchor_ms) % window_ms;
}

/* The answer fields for a window already rolled to elapsed time e. */
static void fill(const struct gw__rl_window *w, uint32_t limit, uint32_t window_ms, uint64_t e,
                 struct gw__rl_result *r)
{
    uint64_t W = window_ms, L = limit;
    uint64_t used = (uint64_t)w->prev * (W - e) + (uint64_t)w->cur * W;
    uint64_t cap = L * W;
    r->remaining = used >= cap ? 0 : (uint32_t)((cap - used + W - 1) / W);
    r->reset_s = (uint32_t)((W - e + 999) / 1000);
    r->prev = w->prev;
    r->cur = w->cur;
    r->retry_ms = 0;
    if (used < cap)
        return;
    /* The earliest time a request would pass. In this window, when cur is
     * below the limit, prev's weight falls until prev * y < (L - cur) * W
     * with y = W - e - d. Otherwise in the next window, where prev = cur:
     * cur * y < L * W with y = W - e'. */
    uint64_t d;
    if (w->cur < limit && w->prev > 0) {
        uint64_t ymax = ((L - w->cur) * W - 1) / w->prev;
        d = W - e - ymax;
    } else {
        uint64_t ymax = w->cur ? (L * W - 1) / w->cur : W;
        d = (W - e) + (ymax >= W ? 0 : W - ymax);
    }
    r->retry_ms = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

bool gw__rl_window_take(struct gw__rl_window *w, uint32_t limit, uint32_t window_ms,
                        uint64_t now_ms, struct gw__rl_result *r)
{
    uint64_t e = roll(w, window_ms, now_ms);
    uint64_t used = (uint64_t)w->prev * (window_ms - e) + (uint64_t)w->cur * window_ms;
    bool ok = used < (uint64_t)limit * window_ms;
    if (ok)
        w->cur++;
    fill(w, limit, window_ms, e, r);
    r->allowed = ok;
    r->table_full = false;
    return ok;
}

void gw__rl_window_peek(const struct gw__rl_window *w, uint32_t limit, uint32_t window_ms,
                        uint64_t now_ms, struct gw__rl_result *r)
{
    struct gw__rl_window c = *w;
    uint64_t e = roll(&c, window_ms, now_ms);
    fill(&c, limit, window_ms, e, r);
    r->allowed = r->retry_ms == 0;
    r->table_full = false;
}

bool gw__rl_window_expired(const struct gw__rl_window *w, uint32_t window_ms, uint64_t now_ms)
{
    return now_ms >= w->anchor_ms + (w->seq + 2) * (uint64_t)window_ms;
}

/* ---- keyed hash ---------------------------------------------------------------
 * SipHash-2-4 under a key drawn once per run: a peer choosing header values
 * cannot aim them all at one stripe or bucket. */

static uint64_t sip_k0, sip_k1;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_seed(void)
{
    uint64_t k[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        /* No entropy source: the fixed key keeps the hash working; only
         * its resistance to chosen keys is lost. */
        k[0] ^= (uint64_t)(uintptr_t)&k;
    }
    sip_k0 = k[0];
    sip_k1 = k[1];
}

/* ---- the table -------------------------------------------------------------- */

struct rl_entry {
    struct rl_entry *hnext;         /* bucket chain */
    struct rl_entry *lprev, *lnext; /* the stripe's LRU list, oldest first */
    uint64_t hash;
    struct gw__rl_window w;
    uint16_t klen;
    unsigned char key[]; /* stored_key's bytes */
};

/* A stripe's fields are its lock's. */
struct rl_stripe {
    _Alignas(64) pthread_mutex_t lock;
    struct rl_entry **buckets; /* a power of two of them, grown with count */
    size_t nbuckets, count;
    struct rl_entry *oldest, *newest;
};

struct gw__rl_space {
    struct gw__rl_space *next; /* registry list; the registry's lock */
    size_t refs;               /* the registry's lock */
    char *name, *identity;
    uint32_t window_ms, max_keys;
    /* Relaxed: a bound checked under a stripe lock against inserts under
     * other stripes' locks; it may be passed by the stripes racing for the
     * last slots, by at most GW_RL_STRIPES - 1 entries, which the README
     * states. Figures are relaxed too: read alone, for display. */
    _Atomic uint64_t nkeys, evicted, full;
    struct rl_stripe stripes[GW_RL_STRIPES];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw__rl_space *registry;

int gw__rl_space_get(const char *name, const char *identity, uint32_t window_ms, uint32_t max_keys,
                     struct gw__rl_space **out)
{
    pthread_once(&sip_once, sip_seed);
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    struct gw__rl_space *s;
    for (s = registry; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->identity, identity) == 0)
            break;
    if (s) {
        s->refs++;
        goto out;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name)) || !(s->identity = strdup(identity))) {
        if (s) {
            free(s->name);
            free(s);
        }
        s = NULL;
        rc = -ENOMEM;
        goto out;
    }
    s->refs = 1;
    s->window_ms = window_ms;
    s->max_keys = max_keys;
    for (size_t i = 0; i < GW_RL_STRIPES; i++)
        pthread_mutex_init(&s->stripes[i].lock, NULL);
    s->next = registry;
    registry = s;
out:
    pthread_mutex_unlock(&registry_lock);
    if (rc == 0)
        *out = s;
    return rc;
}

void gw__rl_space_put(struct gw__rl_space *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&registry_lock);
    bool last = --s->refs == 0;
    if (last)
        for (struct gw__rl_space **p = &registry; *p; p = &(*p)->next)
            if (*p == s) {
                *p = s->next;
                break;
            }
    pthread_mutex_unlock(&registry_lock);
    if (!last)
        return;
    for (size_t i = 0; i < GW_RL_STRIPES; i++) {
        struct rl_stripe *st = &s->stripes[i];
        for (struct rl_entry *e = st->oldest, *n; e; e = n) {
            n = e->lnext;
            free(e);
        }
        free(st->buckets);
        pthread_mutex_destroy(&st->lock);
    }
    free(s->name);
    free(s->identity);
    free(s);
}

/* The stored form of a key: the prefix byte and the key's bytes, up to
 * GW_RL_KEY_MAX in all, else a 128-bit digest of both (two keyed hashes: a
 * chosen collision would need the run's secret key). Returns the entry's
 * klen: the length, or LONG_KEY for a digest, a length no stored key has. */
#define LONG_KEY (GW_RL_KEY_MAX + 1)
#define DIGEST_BYTES 16

static size_t stored_key(char prefix, const char *key, size_t len, unsigned char *buf)
{
    if (len < GW_RL_KEY_MAX) {
        buf[0] = (unsigned char)prefix;
        memcpy(buf + 1, key, len);
        return len + 1;
    }
    uint64_t p = (unsigned char)prefix;
    uint64_t a = gw__pol_siphash(sip_k0 ^ 0x5a5a5a5a5a5a5a5aull ^ p, sip_k1, key, len);
    uint64_t b = gw__pol_siphash(sip_k0, sip_k1 ^ 0xa5a5a5a5a5a5a5a5ull ^ p, key, len);
    memcpy(buf, &a, 8);
    memcpy(buf + 8, &b, 8);
    return LONG_KEY;
}

static size_t stored_bytes(size_t klen)
{
    return klen == LONG_KEY ? DIGEST_BYTES : klen;
}

static struct rl_entry *find(struct rl_stripe *st, uint64_t h, const unsigned char *k, size_t klen)
{
    if (!st->buckets)
        return NULL;
    for (struct rl_entry *e = st->buckets[(h >> 6) & (st->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(e->key, k, stored_bytes(klen)) == 0)
            return e;
    return NULL;
}

static void lru_unlink(struct rl_stripe *st, struct rl_entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        st->oldest = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        st->newest = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_append(struct rl_stripe *st, struct rl_entry *e)
{
    e->lprev = st->newest;
    e->lnext = NULL;
    if (st->newest)
        st->newest->lnext = e;
    else
        st->oldest = e;
    st->newest = e;
}

static void unhash(struct rl_stripe *st, struct rl_entry *e)
{
    struct rl_entry **p = &st->buckets[(e->hash >> 6) & (st->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
}

/* Drops the stripe's expired entries from its oldest on. Stripe locked. */
static void sweep(struct gw__rl_space *s, struct rl_stripe *st, uint64_t now_ms)
{
    struct rl_entry *e;
    while ((e = st->oldest) && gw__rl_window_expired(&e->w, s->window_ms, now_ms)) {
        lru_unlink(st, e);
        unhash(st, e);
        st->count--;
        free(e);
        atomic_fetch_sub_explicit(&s->nkeys, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->evicted, 1, memory_order_relaxed);
    }
}

/* Grows the bucket array to keep chains short. Stripe locked. */
static int grow(struct rl_stripe *st)
{
    size_t n = st->nbuckets ? st->nbuckets * 2 : 16;
    struct rl_entry **b = calloc(n, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < st->nbuckets; i++)
        for (struct rl_entry *e = st->buckets[i], *nx; e; e = nx) {
            nx = e->hnext;
            size_t j = (e->hash >> 6) & (n - 1);
            e->hnext = b[j];
            b[j] = e;
        }
    free(st->buckets);
    st->buckets = b;
    st->nbuckets = n;
    return 0;
}

/* The table is full: drops expired entries of other stripes, skipping any
 * whose lock is held (no lock order to respect: never waits). Caller holds
 * stripe `mine`. */
static void sweep_others(struct gw__rl_space *s, size_t mine, uint64_t now_ms)
{
    for (size_t i = 1; i < GW_RL_STRIPES; i++) {
        struct rl_stripe *st = &s->stripes[(mine + i) % GW_RL_STRIPES];
        if (pthread_mutex_trylock(&st->lock) != 0)
            continue;
        sweep(s, st, now_ms);
        pthread_mutex_unlock(&st->lock);
    }
}

int gw__rl_check(struct gw__rl_space *s, char prefix, const char *key, size_t len, uint32_t limit,
                 uint64_t now_ms, struct gw__rl_result *r)
{
    unsigned char k[GW_RL_KEY_MAX];
    size_t klen = stored_key(prefix, key, len, k);
    size_t cmp = stored_bytes(klen);
    uint64_t h = gw__pol_siphash(sip_k0, sip_k1, k, cmp);
    size_t si = h % GW_RL_STRIPES;
    struct rl_stripe *st = &s->stripes[si];
    int rc = 0;
    pthread_mutex_lock(&st->lock);
    struct rl_entry *e = find(st, h, k, klen);
    if (e) {
        uint64_t seq = e->w.seq, anchor = e->w.anchor_ms;
        gw__rl_window_take(&e->w, limit, s->window_ms, now_ms, r);
        /* An entry's expiry moves only with its window: keeping the list
         * in window order needs a move once per window, not per check. A
         * key anchored anew may be back at seq 0: its anchor moved. */
        if ((e->w.seq != seq || e->w.anchor_ms != anchor) && st->newest != e) {
            lru_unlink(st, e);
            lru_append(st, e);
        }
        goto out;
    }
    sweep(s, st, now_ms);
    if (atomic_load_explicit(&s->nkeys, memory_order_relaxed) >= s->max_keys) {
        sweep_others(s, si, now_ms);
        if (atomic_load_explicit(&s->nkeys, memory_order_relaxed) >= s->max_keys) {
            atomic_fetch_add_explicit(&s->full, 1, memory_order_relaxed);
            memset(r, 0, sizeof *r);
            r->table_full = true;
            r->retry_ms = s->window_ms;
            r->reset_s = (s->window_ms + 999) / 1000;
            goto out;
        }
    }
    if (st->count >= st->nbuckets && grow(st) < 0 && !st->buckets) {
        rc = -ENOMEM;
        goto refuse;
    }
    e = malloc(sizeof *e + cmp);
    if (!e) {
        rc = -ENOMEM;
        goto refuse;
    }
    e->hash = h;
    e->klen = (uint16_t)klen;
    memcpy(e->key, k, cmp);
    gw__rl_window_init(&e->w, now_ms);
    size_t b = (h >> 6) & (st->nbuckets - 1);
    e->hnext = st->buckets[b];
    st->buckets[b] = e;
    lru_append(st, e);
    st->count++;
    atomic_fetch_add_explicit(&s->nkeys, 1, memory_order_relaxed);
    gw__rl_window_take(&e->w, limit, s->window_ms, now_ms, r);
    goto out;
refuse:
    memset(r, 0, sizeof *r);
    r->retry_ms = 1000;
    r->reset_s = 1;
out:
    pthread_mutex_unlock(&st->lock);
    return rc;
}

bool gw__rl_peek(struct gw__rl_space *s, char prefix, const char *key, size_t len, uint32_t limit,
                 uint64_t now_ms, struct gw__rl_result *r)
{
    unsigned char k[GW_RL_KEY_MAX];
    size_t klen = stored_key(prefix, key, len, k);
    uint64_t h = gw__pol_siphash(sip_k0, sip_k1, k, stored_bytes(klen));
    struct rl_stripe *st = &s->stripes[h % GW_RL_STRIPES];
    pthread_mutex_lock(&st->lock);
    struct rl_entry *e = find(st, h, k, klen);
    if (e)
        gw__rl_window_peek(&e->w, limit, s->window_ms, now_ms, r);
    pthread_mutex_unlock(&st->lock);
    return e != NULL;
}

void gw__rl_space_stats(struct gw__rl_space *s, struct gw__rl_stats *out)
{
    out->keys = atomic_load_explicit(&s->nkeys, memory_order_relaxed);
    out->evicted = atomic_load_explicit(&s->evicted, memory_order_relaxed);
    out->full = atomic_load_explicit(&s->full, memory_order_relaxed);
}
