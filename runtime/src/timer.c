/*
 * timer.c: per-scheduler timing wheels (1 ms tick, 1024 slots, entries
 * further out wait for their round) for receive timeouts, sleeps and
 * send_after.
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

#define SLOTS 1024
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

struct rt__wheel {
    pthread_mutex_t lock;
    struct rt__timer *slots[SLOTS];
    uint64_t last_ms;
    size_t count;
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

struct rt__wheel *rt__wheel_new(void)
{
    struct rt__wheel *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    w->last_ms = rt_now_ms();
    return w;
}

void rt__wheel_free(struct rt__wheel *w)
{
    if (!w)
        return;
    for (int i = 0; i < SLOTS; i++) {
        struct rt__timer *t = w->slots[i];
        while (t) {
            struct rt__timer *n = t->next;
            if (!t->proc) /* a send_after timer */
                rt__msg_discard(((struct msg_timer *)t)->msg);
            free(t);
            t = n;
        }
    }
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* Called with w locked. */
static void wheel_link(struct rt__wheel *w, struct rt__timer *t)
{
    struct rt__timer **slot = &w->slots[t->expires & (SLOTS - 1)];
    t->prev = NULL;
    t->next = *slot;
    if (*slot)
        (*slot)->prev = t;
    *slot = t;
    t->wheel = w;
    w->count++;
}

/* Called with w locked. */
static void wheel_unlink(struct rt__wheel *w, struct rt__timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        w->slots[t->expires & (SLOTS - 1)] = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
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

int rt__wheel_advance(struct rt__wheel *w, uint64_t now)
{
    pthread_mutex_lock(&w->lock);
    if (w->count && now > w->last_ms) {
        uint64_t from = w->last_ms + 1;
        uint64_t span = now - w->last_ms;
        if (span > SLOTS)
            span = SLOTS;
        for (uint64_t k = 0; k < span; k++) {
            struct rt__timer *t = w->slots[(from + k) & (SLOTS - 1)];
            while (t) {
                struct rt__timer *n = t->next;
                if (t->expires <= now) {
                    wheel_unlink(w, t);
                    fire(t);
                }
                t = n;
            }
        }
    }
    if (now > w->last_ms)
        w->last_ms = now;
    int next = -1;
    if (w->count) {
        next = 1000;
        for (uint64_t k = 1; k <= 1000; k++) {
            for (struct rt__timer *t = w->slots[(now + k) & (SLOTS - 1)]; t; t = t->next) {
                if (t->expires <= now + k) {
                    next = (int)k;
                    goto found;
                }
            }
        }
    }
found:
    pthread_mutex_unlock(&w->lock);
    return next;
}

static struct rt__wheel *local_wheel(bool *remote)
{
    struct rt__sched *s = rt__cur_sched;
    *remote = !s;
    return s ? s->wheel : rt__rt.sched[0].wheel;
}

void rt__wait_timer_arm(struct rt_proc *p, uint64_t deadline_ms)
{
    struct rt__timer *t = rt__zalloc(sizeof(*t));
    if (!t)
        return; /* the wait becomes untimed; the caller re-checks its deadline */
    bool remote;
    struct rt__wheel *w = local_wheel(&remote);
    t->proc = p;
    uint64_t now = rt_now_ms();
    t->expires = deadline_ms > now ? deadline_ms : now + 1;
    pthread_mutex_lock(&w->lock);
    if (t->expires <= w->last_ms)
        t->expires = w->last_ms + 1;
    wheel_link(w, t);
    p->wait_timer = t;
    p->wait_wheel = w;
    pthread_mutex_unlock(&w->lock);
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
    t->t.expires = (rt_now_ms() > w->last_ms ? rt_now_ms() : w->last_ms) + (ms ? ms : 1);
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
