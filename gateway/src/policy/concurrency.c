/*
 * concurrency.c: the concurrency policy kind: at most `max` requests in
 * flight per route (or per upstream, or for every route naming the policy),
 * the rest answered 503 with Retry-After or queued, up to `queue` of them,
 * for at most queue_timeout_ms.
 *
 * A slot is held from the policy's run to the end of the request process,
 * however it ends (rt_defer: an answer, an error, a kill). Counts live in a
 * space per policy name, found again by a reload, so requests in flight on
 * the old table and those on the new count together. A space's fields are
 * its lock's; the lock is held for list and counter updates only, never
 * across a runtime call that may switch the process out.
 *
 * Queueing hands a slot over: the request ending gives its slot to the
 * oldest waiter (marking it under the lock, then waking it with a message),
 * so a slot freed while requests wait is never taken by a newcomer first.
 * The mark, not the message, is what counts: a waiter that times out
 * checks it under the lock, and a waiter killed after the hand-over gives
 * the slot on from its own deferred cleanup.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/ratelimit.h"
#include "policy/stats.h"
#include "route/route.h"
#include "rt/rt.h"

#define CC_MAX_MAX 1000000u
#define CC_QUEUE_MAX 100000u
#define CC_TIMEOUT_MAX_MS 600000u
#define CC_WAKE_MSG 0x636f6e63u /* "conc" */

enum scope { SCOPE_ROUTE, SCOPE_UPSTREAM, SCOPE_POLICY };

enum hold_state { HOLD_NONE, HOLD_WAITING, HOLD_HELD };

struct cc_slot;

/* A request's hold on a slot, in the request process's memory. While
 * WAITING it is on its slot's waiter list. */
struct cc_hold {
    struct cc_space *space;
    struct cc_slot *slot;
    enum hold_state state;
    struct cc_hold *next; /* waiter list */
    rt_pid pid;
    rt_ref ref;
};

/* What one key (a route, an upstream, the policy) has in flight. Exists
 * while it has requests holding or waiting. */
struct cc_slot {
    struct cc_slot *next;
    uint32_t inflight, nwaiting;
    struct cc_hold *first, *last; /* waiters, oldest first */
    char key[];
};

struct cc_space {
    struct cc_space *next; /* registry list: the registry's lock */
    pthread_mutex_t lock;
    /* The lock's: */
    size_t holds; /* compiled definitions + requests holding or waiting */
    struct cc_slot *slots;
    char name[];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cc_space *registry;

static struct cc_space *space_get(const char *name)
{
    pthread_mutex_lock(&registry_lock);
    struct cc_space *s;
    for (s = registry; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            break;
    if (!s) {
        size_t n = strlen(name);
        s = calloc(1, sizeof *s + n + 1);
        if (s) {
            memcpy(s->name, name, n + 1);
            pthread_mutex_init(&s->lock, NULL);
            s->next = registry;
            registry = s;
        }
    }
    if (s) {
        pthread_mutex_lock(&s->lock);
        s->holds++;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&registry_lock);
    return s;
}

/* Frees `s` if it is still registered and nothing holds it. Whoever saw
 * the holds reach 0 calls it; another may have taken a hold since, or
 * freed it already: looking the pointer up under the registry lock
 * settles both without touching freed memory. */
static void space_reap(struct cc_space *s)
{
    pthread_mutex_lock(&registry_lock);
    struct cc_space **p;
    for (p = &registry; *p && *p != s; p = &(*p)->next)
        ;
    bool dead = false;
    if (*p) {
        pthread_mutex_lock(&s->lock);
        dead = s->holds == 0;
        pthread_mutex_unlock(&s->lock);
        if (dead)
            *p = s->next;
    }
    pthread_mutex_unlock(&registry_lock);
    if (dead) {
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
}

/* Drops one hold; true when it was the last (the caller then reaps after
 * unlocking). Space locked. */
static bool unhold(struct cc_space *s)
{
    return --s->holds == 0;
}

static void slot_drop_if_idle(struct cc_space *s, struct cc_slot *sl)
{
    if (sl->inflight || sl->nwaiting)
        return;
    for (struct cc_slot **p = &s->slots; *p; p = &(*p)->next)
        if (*p == sl) {
            *p = sl->next;
            free(sl);
            return;
        }
}

static void waiter_remove(struct cc_slot *sl, struct cc_hold *h)
{
    struct cc_hold *prev = NULL;
    for (struct cc_hold *w = sl->first; w; prev = w, w = w->next)
        if (w == h) {
            if (prev)
                prev->next = w->next;
            else
                sl->first = w->next;
            if (sl->last == w)
                sl->last = prev;
            sl->nwaiting--;
            return;
        }
}

/* The request's end (rt_defer), or a waiter giving up. */
static void hold_release(void *arg)
{
    struct cc_hold *h = arg;
    struct cc_space *s = h->space;
    rt_pid wake_pid = 0;
    rt_ref wake_ref = 0;
    bool last = false;
    pthread_mutex_lock(&s->lock);
    struct cc_slot *sl = h->slot;
    if (h->state == HOLD_HELD) {
        struct cc_hold *w = sl->first;
        if (w) {
            /* The slot passes to the oldest waiter: inflight unchanged. */
            sl->first = w->next;
            if (!sl->first)
                sl->last = NULL;
            sl->nwaiting--;
            w->state = HOLD_HELD;
            wake_pid = w->pid;
            wake_ref = w->ref;
        } else
            sl->inflight--;
    } else if (h->state == HOLD_WAITING)
        waiter_remove(sl, h);
    if (h->state != HOLD_NONE) {
        h->state = HOLD_NONE;
        slot_drop_if_idle(s, sl);
        last = unhold(s);
    }
    pthread_mutex_unlock(&s->lock);
    if (wake_pid) {
        struct rt_msg *m = rt_msg_new(CC_WAKE_MSG, 0);
        if (m) {
            m->ref = wake_ref;
            /* A dead waiter's own cleanup passes the slot on: the send
             * failing needs nothing here. */
            rt_send(wake_pid, m);
        }
    }
    if (last)
        space_reap(s);
}

struct cc_state {
    char *name;
    uint32_t max, queue, timeout_ms;
    enum scope scope;
    struct cc_space *space;
};

static const char *const known_keys[] = {"name",  "type", "max", "queue", "queue_timeout_ms",
                                         "scope", NULL};

static const char *scope_name(enum scope sc)
{
    return sc == SCOPE_ROUTE ? "route" : sc == SCOPE_UPSTREAM ? "upstream" : "policy";
}

static void cc_free(void *p)
{
    struct cc_state *s = p;
    if (!s)
        return;
    if (s->space) {
        pthread_mutex_lock(&s->space->lock);
        bool last = unhold(s->space);
        pthread_mutex_unlock(&s->space->lock);
        if (last)
            space_reap(s->space);
    }
    free(s->name);
    free(s);
}

static int cc_compile(struct jpos_diags *d, const struct jpos_val *obj,
                      const struct gw_pol_env *env, void **state)
{
    (void)env;
    size_t errors = d->nerrors;
    struct cc_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->timeout_ms = 1000;
    bool have_max = false;
    const char *name = NULL;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, obj);
    while (jpos_iter_next(&it, &m)) {
        long long n;
        const char *str;
        if (strcmp(m.key, "name") == 0) {
            if (json_is_string(m.v))
                name = json_string_value(m.v);
        } else if (strcmp(m.key, "type") == 0) {
        } else if (strcmp(m.key, "max") == 0) {
            if (jpos_int(d, &m, 1, CC_MAX_MAX, &n)) {
                s->max = (uint32_t)n;
                have_max = true;
            }
        } else if (strcmp(m.key, "queue") == 0) {
            if (jpos_int(d, &m, 0, CC_QUEUE_MAX, &n))
                s->queue = (uint32_t)n;
        } else if (strcmp(m.key, "queue_timeout_ms") == 0) {
            if (jpos_int(d, &m, 1, CC_TIMEOUT_MAX_MS, &n))
                s->timeout_ms = (uint32_t)n;
        } else if (strcmp(m.key, "scope") == 0) {
            if (!jpos_string(d, &m, 16, &str, NULL))
                continue;
            if (strcmp(str, "route") == 0)
                s->scope = SCOPE_ROUTE;
            else if (strcmp(str, "upstream") == 0)
                s->scope = SCOPE_UPSTREAM;
            else if (strcmp(str, "policy") == 0)
                s->scope = SCOPE_POLICY;
            else
                jpos_err(d, &m, "\"scope\" is \"route\", \"upstream\" or \"policy\"");
        } else
            jpos_unknown(d, &m, "concurrency policy", known_keys);
    }
    if (!have_max)
        jpos_err(d, obj, "a concurrency policy needs \"max\" (requests in flight)");
    if (!name)
        jpos_err(d, obj, "a policy needs a \"name\"");
    if (d->nerrors != errors) {
        cc_free(s);
        return -EINVAL;
    }
    if (!(s->name = strdup(name)) || !(s->space = space_get(name))) {
        cc_free(s);
        return -ENOMEM;
    }
    *state = s;
    return 0;
}

static struct cc_slot *slot_find(struct cc_space *sp, const char *key)
{
    for (struct cc_slot *sl = sp->slots; sl; sl = sl->next)
        if (strcmp(sl->key, key) == 0)
            return sl;
    size_t n = strlen(key);
    struct cc_slot *sl = calloc(1, sizeof *sl + n + 1);
    if (!sl)
        return NULL;
    memcpy(sl->key, key, n + 1);
    sl->next = sp->slots;
    sp->slots = sl;
    return sl;
}

static int refuse(const struct cc_state *s, struct gw_pol_req *rq, const char *message,
                  const char *reason)
{
    gw_pol_count_denial(s->name, reason);
    struct gw_http_kv extra[] = {{"Retry-After", "1"}};
    return gw_pol_refuse(rq, 503, message, extra, 1);
}

static int cc_run(void *state, struct gw_pol_req *rq)
{
    const struct cc_state *s = state;
    struct cc_space *sp = s->space;
    const char *key = "";
    if (s->scope == SCOPE_ROUTE && rq->route)
        key = rq->route->name;
    else if (s->scope == SCOPE_UPSTREAM && rq->route)
        key = rq->route->upstream ? rq->route->upstream : rq->route->name;
    struct cc_hold *h = rt_calloc(1, sizeof *h);
    /* The cleanup is in place before the hold exists, so no way out of
     * the process (a kill included) leaves a slot taken. */
    if (!h || !rt_defer(hold_release, h)) {
        gw_pol_count_denial(s->name, "internal");
        return gw_pol_refuse(rq, 500, "internal error in a concurrency limit", NULL, 0);
    }
    h->space = sp;
    h->pid = rt_self();
    h->ref = rt_make_ref();
    bool internal = false;
    pthread_mutex_lock(&sp->lock);
    struct cc_slot *sl = slot_find(sp, key);
    if (!sl)
        internal = true;
    else if (sl->inflight < s->max && !sl->first) {
        sl->inflight++;
        h->slot = sl;
        h->state = HOLD_HELD;
        sp->holds++;
    } else if (sl->nwaiting < s->queue) {
        h->slot = sl;
        h->state = HOLD_WAITING;
        if (sl->last)
            sl->last->next = h;
        else
            sl->first = h;
        sl->last = h;
        sl->nwaiting++;
        sp->holds++;
    } else
        slot_drop_if_idle(sp, sl);
    enum hold_state st = h->state;
    pthread_mutex_unlock(&sp->lock);
    if (internal) {
        gw_pol_count_denial(s->name, "internal");
        return gw_pol_refuse(rq, 500, "internal error in a concurrency limit", NULL, 0);
    }
    if (st == HOLD_HELD)
        return GW_POL_NEXT;
    if (st == HOLD_NONE)
        return refuse(s, rq, "too many requests in flight", "concurrency");
    struct rt_msg *m = rt_receive_ref(h->ref, s->timeout_ms);
    rt_msg_free(m);
    /* The hand-over mark decides, under the lock: a waiter still on the
     * list timed out and leaves it now, not at the end of the request. */
    bool last = false;
    pthread_mutex_lock(&sp->lock);
    st = h->state;
    if (st == HOLD_WAITING) {
        waiter_remove(h->slot, h);
        h->state = HOLD_NONE;
        slot_drop_if_idle(sp, h->slot);
        last = unhold(sp);
    }
    pthread_mutex_unlock(&sp->lock);
    if (last)
        space_reap(sp);
    if (st == HOLD_HELD) {
        /* A wake-up that raced with the timeout may still be queued. */
        if (!m)
            rt_msg_free(rt_receive_ref(h->ref, 0));
        return GW_POL_NEXT;
    }
    return refuse(s, rq, "timed out waiting for a request slot", "queue_timeout");
}

static json_t *cc_describe(const void *state)
{
    const struct cc_state *s = state;
    json_t *o =
        json_pack("{s:I, s:I, s:I, s:s}", "max", (json_int_t)s->max, "queue", (json_int_t)s->queue,
                  "queue_timeout_ms", (json_int_t)s->timeout_ms, "scope", scope_name(s->scope));
    if (!o)
        return NULL;
    json_t *in = json_object();
    pthread_mutex_lock(&s->space->lock);
    for (struct cc_slot *sl = s->space->slots; sl && in; sl = sl->next)
        json_object_set_new(in, sl->key,
                            json_pack("{s:I, s:I}", "in_flight", (json_int_t)sl->inflight, "queued",
                                      (json_int_t)sl->nwaiting));
    pthread_mutex_unlock(&s->space->lock);
    if (in)
        json_object_set_new(o, "slots", in);
    return o;
}

const struct gw_pol_kind gw__pol_kind_concurrency = {
    .type = "concurrency",
    .compile = cc_compile,
    .free = cc_free,
    .run = cc_run,
    .describe = cc_describe,
};
