/*
 * holder.c: publishing route tables to request handlers (see holder.h).
 *
 * Two mechanisms, each for what it is good at:
 *
 *  - Reader counts, for the long hold. A table has ROUTE_HOLDER_SLOTS
 *    counters, one per cache line. A handler adds 1 to the counter of the
 *    thread it acquires on and subtracts 1 from the counter of the thread it
 *    releases on (a process may have moved between schedulers meanwhile), so
 *    a single counter may go negative, but the sum is the number of holders.
 *
 *  - Hazard pointers, for the acquire window: between reading `current` and
 *    adding 1, the table could be retired and freed. The reader first
 *    announces the table in its thread's hazard record, then reads `current`
 *    again; the writer, after its exchange, looks at every hazard record
 *    before it trusts the counters. Both sides use sequentially consistent
 *    operations (the reader's announce and re-read, the writer's exchange and
 *    hazard loads): either the writer sees the announcement, or the reader's
 *    re-read sees the new table and retries. A writer that sees no hazard
 *    naming a retired table therefore knows that no reader can start holding
 *    it any more; from then on its counters only go down, and a sum of zero
 *    read once means no holder is left.
 *
 * Hazard records live in a static array and are claimed by a thread on its
 * first acquire or release (a CAS on `active`), and given back when the
 * thread exits (a pthread key destructor). Each record sits on its own cache
 * line; its index modulo ROUTE_HOLDER_SLOTS picks the thread's counter.
 *
 * Writer state (version counter, retired list) belongs to the single writer
 * and is not synchronised.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>

#include "route_int.h"

#define HP_MAX 1024

struct hp_rec {
    _Alignas(64) _Atomic(const struct route_table *) hp;
    atomic_bool active;
};

static struct hp_rec hp_recs[HP_MAX];
static atomic_uint hp_used; /* records ever claimed: a high-water mark */
static pthread_key_t hp_key;
static pthread_once_t hp_once = PTHREAD_ONCE_INIT;
static _Thread_local struct hp_rec *hp_mine;

static void hp_thread_exit(void *p)
{
    struct hp_rec *rec = p;
    atomic_store_explicit(&rec->hp, NULL, memory_order_release);
    /* Release: a later owner of the record (who claims it with an acquire
     * CAS) is ordered after everything this thread did. */
    atomic_store_explicit(&rec->active, false, memory_order_release);
}

static void hp_key_init(void)
{
    if (pthread_key_create(&hp_key, hp_thread_exit) != 0) {
        fprintf(stderr, "route holder: pthread_key_create failed\n");
        abort();
    }
}

static bool hp_claim(struct hp_rec *rec)
{
    bool expected = false;
    /* Acquire: pairs with the release in hp_thread_exit of the last owner. */
    return atomic_compare_exchange_strong_explicit(&rec->active, &expected, true,
                                                   memory_order_acquire, memory_order_relaxed);
}

static struct hp_rec *hp_get(void)
{
    struct hp_rec *rec = hp_mine;
    if (rec)
        return rec;
    pthread_once(&hp_once, hp_key_init);
    for (;;) {
        unsigned used = atomic_load_explicit(&hp_used, memory_order_acquire);
        for (unsigned i = 0; i < used; i++) {
            if (!atomic_load_explicit(&hp_recs[i].active, memory_order_relaxed) &&
                hp_claim(&hp_recs[i])) {
                rec = &hp_recs[i];
                goto got;
            }
        }
        /* seq_cst: a writer that loads hp_used after its exchange sees this
         * record, or this thread's acquire sees the new table (holder.h). */
        unsigned i = atomic_fetch_add_explicit(&hp_used, 1, memory_order_seq_cst);
        if (i >= HP_MAX) {
            fprintf(stderr, "route holder: more than %d threads use route tables at once\n",
                    HP_MAX);
            abort();
        }
        if (hp_claim(&hp_recs[i])) {
            rec = &hp_recs[i];
            goto got;
        }
        /* another thread took the fresh record from the scan: go again */
    }
got:
    pthread_setspecific(hp_key, rec);
    hp_mine = rec;
    return rec;
}

static unsigned hp_slot(const struct hp_rec *rec)
{
    return (unsigned)(rec - hp_recs) % ROUTE_HOLDER_SLOTS;
}

struct retired {
    struct route_table *t;
    struct retired *next;
};

struct route_holder {
    _Atomic(struct route_table *) current;
    atomic_uint_least64_t version; /* of `current`, for route_holder_version */
    /* writer only */
    uint64_t last_version;
    struct retired *retired;
    size_t nretired;
};

int route_holder_new(struct route_holder **out)
{
    struct route_holder *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    atomic_init(&h->current, NULL);
    atomic_init(&h->version, 0);
    *out = h;
    return 0;
}

void route_holder_free(struct route_holder *h)
{
    if (!h)
        return;
    route_table_unref(atomic_load_explicit(&h->current, memory_order_acquire));
    struct retired *r = h->retired;
    while (r) {
        struct retired *next = r->next;
        route_table_unref(r->t);
        free(r);
        r = next;
    }
    free(h);
}

uint64_t route_holder_publish(struct route_holder *h, struct route_table *t)
{
    if (t->version == 0)
        t->version = ++h->last_version; /* not yet visible to any reader */
    else if (t->version > h->last_version)
        h->last_version = t->version;
    /* seq_cst: the exchange must be ordered against readers' hazard
     * announcements (see the top of this file); release also publishes the
     * table's contents to readers that load `current` with acquire. */
    struct route_table *old = atomic_exchange_explicit(&h->current, t, memory_order_seq_cst);
    /* Relaxed: a hint for observers, ordered by nothing. */
    atomic_store_explicit(&h->version, t->version, memory_order_relaxed);
    if (old) {
        struct retired *r = malloc(sizeof(*r));
        if (r) {
            r->t = old;
            r->next = h->retired;
            h->retired = r;
            h->nretired++;
        }
        /* Without memory for the list entry the old table is leaked rather
         * than freed under a reader's feet. */
    }
    route_holder_reclaim(h);
    return t->version;
}

static bool hazard_on(const struct route_table *t)
{
    /* seq_cst: after the writer's exchange (see the top of this file). */
    unsigned used = atomic_load_explicit(&hp_used, memory_order_seq_cst);
    if (used > HP_MAX)
        used = HP_MAX;
    for (unsigned i = 0; i < used; i++)
        if (atomic_load_explicit(&hp_recs[i].hp, memory_order_seq_cst) == t)
            return true;
    return false;
}

static long readers(const struct route_table *t)
{
    long sum = 0;
    for (int i = 0; i < ROUTE_HOLDER_SLOTS; i++)
        /* Acquire: pairs with the release decrement in route_table_release,
         * so a holder's last use of the table happens before the free. */
        sum += atomic_load_explicit(&t->readers[i].n, memory_order_acquire);
    return sum;
}

size_t route_holder_reclaim(struct route_holder *h)
{
    struct retired **pp = &h->retired;
    while (*pp) {
        struct retired *r = *pp;
        if (!hazard_on(r->t) && readers(r->t) == 0) {
            *pp = r->next;
            h->nretired--;
            route_table_unref(r->t);
            free(r);
        } else {
            pp = &r->next;
        }
    }
    return h->nretired;
}

const struct route_table *route_holder_acquire(struct route_holder *h)
{
    struct hp_rec *rec = hp_get();
    /* Acquire: the table's contents were written before its publication. */
    struct route_table *t = atomic_load_explicit(&h->current, memory_order_acquire);
    for (;;) {
        if (!t)
            return NULL;
        /* seq_cst announce and re-read: the reader half of the handshake
         * with the writer's exchange and hazard scan. */
        atomic_store_explicit(&rec->hp, t, memory_order_seq_cst);
        struct route_table *again = atomic_load_explicit(&h->current, memory_order_seq_cst);
        if (again == t)
            break;
        t = again;
    }
    /* Relaxed: the writer sees this count through the release store of the
     * hazard below (its hazard loads acquire). */
    atomic_fetch_add_explicit(&t->readers[hp_slot(rec)].n, 1, memory_order_relaxed);
    /* Release: orders the count before the hazard is withdrawn. */
    atomic_store_explicit(&rec->hp, NULL, memory_order_release);
    return t;
}

void route_table_release(const struct route_table *ct)
{
    if (!ct)
        return;
    struct route_table *t = (struct route_table *)ct;
    /* Release: every read of the table by this holder happens before the
     * writer's acquire load that finds the count at zero, hence the free. */
    atomic_fetch_sub_explicit(&t->readers[hp_slot(hp_get())].n, 1, memory_order_release);
}

uint64_t route_holder_version(const struct route_holder *h)
{
    return atomic_load_explicit(&h->version, memory_order_relaxed);
}

size_t route_holder_retired(const struct route_holder *h)
{
    return h->nretired;
}
