/*
 * timer.c: per-scheduler timing wheels (1 ms tick) for receive timeouts,
 * sleeps and send_after.
 *
 * A wheel has two levels. The near level holds the timers due in the
 * current block of NEAR ms of the wheel's clock, a slot per ms, so that
 * every timer in a slot is due at that ms. The far level holds the later
 * ones, a slot per block, for FAR blocks ahead (about 17 minutes); a timer
 * further out waits in its block's slot for its round. When the clock
 * enters a block, that block's far slot moves into the near level (timers
 * of a later round stay). A bit per slot says which slots hold timers, so
 * that the next due ms is found without looking at a timer: an idle
 * scheduler asks for it every time it is about to sleep, while thousands
 * of idle connections wait minutes for their timeouts. A timer is looked
 * at when it fires or is cancelled, when its block comes near, and once a
 * round beyond the far level: never for being merely present.
 *
 * Each wheel has a mutex: its scheduler advances it; other threads only
 * arm (from a non-scheduler thread, on scheduler 0's wheel) or cancel.
 * Wake-up timers belong to one process (p->wait_timer) and are armed and
 * cancelled only by it; they fire under the wheel lock, so a cancel either
 * unlinks the timer or finds it already gone. send_after timers are also
 * in a global map from ref to timer, so any thread can cancel them; the
 * lock order is wheel, then map shard.
 */
#include "rt_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NEAR_SHIFT 10
#define NEAR (1u << NEAR_SHIFT) /* ms in a block: slots of the near level */
#define FAR 1024u               /* slots of the far level: blocks ahead */
#define SHARDS 64
#define BUCKETS 1024

/* A wake-up timer is only this (40 bytes, a 48-byte block with malloc's
 * header): every process waiting with a timeout holds one, an idle
 * connection's among them. */
struct rt__timer {
    struct rt__timer *prev, *next; /* wheel slot list */
    uint64_t expires;
    struct rt__wheel *wheel;
    /* The process a wake-up timer wakes; NULL for a send_after timer
     * (struct msg_timer), which is how the two are told apart. */
    struct rt_proc *proc;
};

/* A send_after timer: the wheel's part first, so that a send_after timer on a
 * wheel's list is one of these. */
struct msg_timer {
    struct rt__timer t;
    struct msg_timer *map_next; /* map bucket chain */
    rt_pid pid;                 /* target */
    struct rt_msg *msg;
    rt_ref ref;
};

/* Every timer due by last_ms has fired; those due in last_ms's block are
 * in `near`, the later ones in `far`. Which list a timer is on follows
 * from its `expires` and last_ms (list_of). All under `lock`. */
struct rt__wheel {
    pthread_mutex_t lock;
    struct rt__timer *near[NEAR];
    struct rt__timer *far[FAR];
    uint64_t near_map[NEAR / 64], far_map[FAR / 64]; /* a bit per non-empty slot */
    uint64_t last_ms;
    size_t count;
    uint64_t visits; /* timers looked at by rt__wheel_advance */
};

struct shard {
    pthread_mutex_t lock;
    struct msg_timer *buckets[BUCKETS];
};
static struct shard shards[SHARDS];

static struct shard *shard_of(rt_ref ref)
{
    return &shards[(ref * 0x9e3779b97f4a7c15ull) >> 58];
}

static struct msg_timer **bucket_of(struct shard *sh, rt_ref ref)
{
    return &sh->buckets[(ref ^ (ref >> 17)) & (BUCKETS - 1)];
}

/* Called with the shard locked. */
static struct msg_timer *map_take(struct shard *sh, rt_ref ref)
{
    for (struct msg_timer **pp = bucket_of(sh, ref); *pp; pp = &(*pp)->map_next) {
        if ((*pp)->ref == ref) {
            struct msg_timer *t = *pp;
            *pp = t->map_next;
            return t;
        }
    }
    return NULL;
}

void rt__timers_reset(void)
{
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&shards[i].lock, NULL);
        memset(shards[i].buckets, 0, sizeof shards[i].buckets);
    }
}

void rt__timers_done(void)
{
    /* Nodes are owned by their wheels and freed with them. */
    for (int i = 0; i < SHARDS; i++)
        memset(shards[i].buckets, 0, sizeof shards[i].buckets);
}

struct rt__wheel *rt__wheel_new(uint64_t now_ms)
{
    struct rt__wheel *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    w->last_ms = now_ms;
    return w;
}

static void free_list(struct rt__timer *t)
{
    while (t) {
        struct rt__timer *n = t->next;
        if (!t->proc) /* a send_after timer */
            rt__msg_discard(((struct msg_timer *)t)->msg);
        free(t);
        t = n;
    }
}

void rt__wheel_free(struct rt__wheel *w)
{
    if (!w)
        return;
    for (unsigned i = 0; i < NEAR; i++)
        free_list(w->near[i]);
    for (unsigned i = 0; i < FAR; i++)
        free_list(w->far[i]);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static uint64_t block_of(uint64_t ms)
{
    return ms >> NEAR_SHIFT;
}

static void bit_set(uint64_t *map, unsigned i)
{
    map[i / 64] |= 1ull << (i % 64);
}

static void bit_clear(uint64_t *map, unsigned i)
{
    map[i / 64] &= ~(1ull << (i % 64));
}

/* The first set bit at `from` or after in a map of `n` bits, or -1. */
static int bit_next(const uint64_t *map, unsigned n, unsigned from)
{
    if (from >= n)
        return -1;
    unsigned k = from / 64;
    uint64_t word = map[k] & (~0ull << (from % 64));
    for (;;) {
        if (word)
            return (int)(k * 64 + (unsigned)__builtin_ctzll(word));
        if (++k == n / 64)
            return -1;
        word = map[k];
    }
}

static void list_push(struct rt__timer **slot, struct rt__timer *t)
{
    t->prev = NULL;
    t->next = *slot;
    if (*slot)
        (*slot)->prev = t;
    *slot = t;
}

static void list_remove(struct rt__timer **slot, struct rt__timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        *slot = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

/* Called with w locked: the slot a timer due at `expires` (after last_ms)
 * is on, and its map and bit. */
static struct rt__timer **list_of(struct rt__wheel *w, uint64_t expires, uint64_t **map,
                                  unsigned *bit)
{
    if (block_of(expires) == block_of(w->last_ms)) {
        *map = w->near_map;
        *bit = (unsigned)(expires & (NEAR - 1));
        return &w->near[*bit];
    }
    *map = w->far_map;
    *bit = (unsigned)(block_of(expires) & (FAR - 1));
    return &w->far[*bit];
}

/* Called with w locked; t->expires > w->last_ms. */
static void wheel_link(struct rt__wheel *w, struct rt__timer *t)
{
    uint64_t *map;
    unsigned bit;
    list_push(list_of(w, t->expires, &map, &bit), t);
    bit_set(map, bit);
    t->wheel = w;
    w->count++;
}

/* Called with w locked. */
static void wheel_unlink(struct rt__wheel *w, struct rt__timer *t)
{
    uint64_t *map;
    unsigned bit;
    struct rt__timer **slot = list_of(w, t->expires, &map, &bit);
    list_remove(slot, t);
    if (!*slot)
        bit_clear(map, bit);
    w->count--;
}

/* Called with w locked: the timer is unlinked and is ours to fire. */
static void fire(struct rt__timer *t)
{
    if (t->proc) { /* a wake-up timer */
        struct rt_proc *p = t->proc;
        if (p->wait_timer == t)
            p->wait_timer = NULL;
        /* seq_cst: wake-up protocol (rt_int.h). */
        atomic_store_explicit(&p->wake_pending, 1, memory_order_seq_cst);
        rt__wake(p);
        free(t);
        return;
    }
    struct msg_timer *mt = (struct msg_timer *)t;
    struct shard *sh = shard_of(mt->ref);
    pthread_mutex_lock(&sh->lock);
    map_take(sh, mt->ref);
    pthread_mutex_unlock(&sh->lock);
    if (rt__push(mt->pid, mt->msg) < 0)
        rt__msg_discard(mt->msg);
    free(mt);
}

/* Called with w locked: fires the near slots from..to (inclusive), all due. */
static void fire_near(struct rt__wheel *w, unsigned from, unsigned to)
{
    for (int i = bit_next(w->near_map, NEAR, from); i >= 0 && (unsigned)i <= to;
         i = bit_next(w->near_map, NEAR, (unsigned)i + 1)) {
        struct rt__timer *t = w->near[i];
        w->near[i] = NULL;
        bit_clear(w->near_map, (unsigned)i);
        while (t) {
            struct rt__timer *n = t->next;
            t->prev = t->next = NULL;
            w->visits++;
            w->count--;
            fire(t);
            t = n;
        }
    }
}

/* Called with w locked, the clock entering block `nb` (at `now`), the near
 * level empty: of far slot i, fires what is due by now, moves the rest of
 * block nb to the near level and leaves later rounds. */
static void far_visit(struct rt__wheel *w, unsigned i, uint64_t nb, uint64_t now)
{
    struct rt__timer *t = w->far[i];
    while (t) {
        struct rt__timer *n = t->next;
        w->visits++;
        if (block_of(t->expires) <= nb) {
            list_remove(&w->far[i], t);
            if (t->expires <= now) {
                w->count--;
                fire(t);
            } else {
                unsigned j = (unsigned)(t->expires & (NEAR - 1));
                list_push(&w->near[j], t);
                bit_set(w->near_map, j);
            }
        }
        t = n;
    }
    if (!w->far[i])
        bit_clear(w->far_map, i);
}

/* Called with w locked, after last_ms: ms from last_ms to the first slot
 * that may hold a due timer (the next due timer, or the start of the next
 * block with far timers, which may be of a later round). */
static uint64_t next_due(struct rt__wheel *w)
{
    uint64_t now = w->last_ms, cur = block_of(now);
    int i = bit_next(w->near_map, NEAR, (unsigned)(now & (NEAR - 1)) + 1);
    if (i >= 0)
        return (cur << NEAR_SHIFT) + (unsigned)i - now;
    unsigned from = (unsigned)((cur + 1) & (FAR - 1));
    int j = bit_next(w->far_map, FAR, from);
    if (j < 0)
        j = bit_next(w->far_map, FAR, 0);
    if (j < 0)
        return UINT64_MAX;                             /* not reached: count > 0 */
    uint64_t ahead = ((unsigned)j - from) & (FAR - 1); /* blocks after cur + 1 */
    return ((cur + 1 + ahead) << NEAR_SHIFT) - now;
}

int rt__wheel_advance(struct rt__wheel *w, uint64_t now)
{
    pthread_mutex_lock(&w->lock);
    if (w->count && now > w->last_ms) {
        uint64_t cur = block_of(w->last_ms), nb = block_of(now);
        if (nb == cur) {
            fire_near(w, (unsigned)(w->last_ms & (NEAR - 1)) + 1, (unsigned)(now & (NEAR - 1)));
        } else {
            fire_near(w, (unsigned)(w->last_ms & (NEAR - 1)) + 1, NEAR - 1);
            /* The far slots of the blocks entered, each once however long
             * the wheel was not advanced. */
            uint64_t blocks = nb - cur < FAR ? nb - cur : FAR;
            for (uint64_t k = 1; k <= blocks; k++) {
                unsigned i = (unsigned)((cur + k) & (FAR - 1));
                if (w->far_map[i / 64] & (1ull << (i % 64)))
                    far_visit(w, i, nb, now);
            }
        }
    }
    if (now > w->last_ms)
        w->last_ms = now;
    int next = -1;
    if (w->count) {
        uint64_t due = next_due(w);
        next = due < 1000 ? (int)due : 1000;
    }
    pthread_mutex_unlock(&w->lock);
    return next;
}

uint64_t rt__wheel_visits(struct rt__wheel *w)
{
    pthread_mutex_lock(&w->lock);
    uint64_t v = w->visits;
    pthread_mutex_unlock(&w->lock);
    return v;
}

static struct rt__wheel *local_wheel(bool *remote)
{
    struct rt__sched *s = rt__cur_sched;
    *remote = !s;
    return s ? s->wheel : rt__rt.sched[0].wheel;
}

void rt__wheel_arm_wait(struct rt__wheel *w, struct rt_proc *p, uint64_t deadline_ms)
{
    struct rt__timer *t = rt__zalloc(sizeof(*t));
    if (!t)
        return; /* the wait becomes untimed; the caller re-checks its deadline */
    t->proc = p;
    t->expires = deadline_ms;
    pthread_mutex_lock(&w->lock);
    if (t->expires <= w->last_ms)
        t->expires = w->last_ms + 1;
    wheel_link(w, t);
    p->wait_timer = t;
    p->wait_wheel = w;
    pthread_mutex_unlock(&w->lock);
}

void rt__wait_timer_arm(struct rt_proc *p, uint64_t deadline_ms)
{
    bool remote;
    struct rt__wheel *w = local_wheel(&remote);
    uint64_t now = rt_now_ms();
    rt__wheel_arm_wait(w, p, deadline_ms > now ? deadline_ms : now + 1);
}

void rt__wait_timer_cancel(struct rt_proc *p)
{
    struct rt__wheel *w = p->wait_wheel;
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    struct rt__timer *t = p->wait_timer;
    if (t) {
        wheel_unlink(w, t);
        p->wait_timer = NULL;
        free(t);
    }
    p->wait_wheel = NULL;
    pthread_mutex_unlock(&w->lock);
}

int rt_send_after(rt_pid to, uint64_t ms, struct rt_msg *m, rt_ref *tref)
{
    if (!m)
        return -EINVAL;
    rt_msg_detach(m); /* the timer holds it now, whatever becomes of the sender */
    if (!atomic_load_explicit(&rt__rt.running, memory_order_acquire)) {
        rt__msg_discard(m);
        return -EINVAL;
    }
    struct msg_timer *t = rt__zalloc(sizeof(*t));
    if (!t) {
        rt__msg_discard(m);
        return -ENOMEM;
    }
    struct rt_proc *self = rt__self();
    m->from = self ? atomic_load_explicit(&self->pid, memory_order_relaxed) : 0;
    m->flags = 0;
    t->pid = to;
    t->msg = m;
    t->ref = rt_make_ref();
    bool remote;
    struct rt__wheel *w = local_wheel(&remote);
    pthread_mutex_lock(&w->lock);
    uint64_t now = rt_now_ms();
    uint64_t base = now > w->last_ms ? now : w->last_ms;
    if (!ms)
        ms = 1;
    /* Saturated: a delay meant as "never" (UINT64_MAX) must not wrap to a
     * time already passed, which the wheel cannot hold. */
    t->t.expires = ms > UINT64_MAX - base ? UINT64_MAX : base + ms;
    wheel_link(w, &t->t);
    struct shard *sh = shard_of(t->ref);
    pthread_mutex_lock(&sh->lock);
    struct msg_timer **b = bucket_of(sh, t->ref);
    t->map_next = *b;
    *b = t;
    pthread_mutex_unlock(&sh->lock);
    rt_ref ref = t->ref;
    pthread_mutex_unlock(&w->lock);
    if (remote) {
        /* Scheduler 0 may be asleep with a longer timeout: kick it. */
        uint64_t one = 1;
        ssize_t n = write(rt__rt.sched[0].evfd, &one, sizeof one);
        (void)n;
    }
    if (tref)
        *tref = ref;
    return 0;
}

int rt_cancel_timer(rt_ref ref)
{
    struct shard *sh = shard_of(ref);
    pthread_mutex_lock(&sh->lock);
    struct msg_timer *t = NULL;
    for (t = *bucket_of(sh, ref); t && t->ref != ref; t = t->map_next)
        ;
    struct rt__wheel *w = t ? t->t.wheel : NULL;
    pthread_mutex_unlock(&sh->lock);
    if (!w)
        return -ENOENT;
    /* Re-find under both locks, in order: it may have fired meanwhile. */
    pthread_mutex_lock(&w->lock);
    pthread_mutex_lock(&sh->lock);
    t = map_take(sh, ref);
    pthread_mutex_unlock(&sh->lock);
    if (t)
        wheel_unlink(w, &t->t);
    pthread_mutex_unlock(&w->lock);
    if (!t)
        return -ENOENT;
    rt__msg_discard(t->msg);
    free(t);
    return 0;
}
