/*
 * router.c: the router gen_server (see gw/router.h).
 *
 * The router process is the only writer of gw.routes. It owns:
 *  - the history: owner references (route_table_ref) to the last
 *    GW_ROUTER_HISTORY published tables, newest first; the current table is
 *    normally history[0] (a rollback moves the table it republishes there);
 *  - the record of the last reload (wall time, source, outcome, diagnostics);
 *  - the reclaim timer, armed while replaced tables are still held by
 *    requests (route_holder_reclaim frees them once released).
 *
 * A load reads the routes and the workflow definitions and policy files
 * they may name together (gw_config_load_routes): the definitions and the
 * policy set are attached to the table, so all are published, kept in the
 * history, rolled back and retired as one, and an error in any refuses the
 * whole load. A route set given as text (PUT /admin/routes) keeps the
 * current definitions and policies.
 *
 * Route files are read through the router's parse cache (route.h): a reload
 * parses only the files whose bytes changed and shares the others' parsed
 * routes with the tables in the history; what a reload reports and
 * publishes is what a load without the cache would.
 *
 * Reading route files and compiling run on the blocking pool (rt_blocking)
 * while the router is parked, so a reload never occupies a scheduler and
 * never touches the hot path: requests keep reading the published table
 * until the single atomic swap in route_holder_publish. A reload that fails
 * publishes nothing.
 *
 * Callers get plain structs (gw/router.h), handed over in the reply
 * message; the admin API renders them.
 *
 * Reload requests that queue up while a reload runs are folded into the next
 * one: a reload from the directory drops every reload cast already waiting,
 * since it reads the directory after they were sent.
 */
#include "gw/router.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw/events.h"
#include "gw/gateway.h"
#include "linebuf.h"
#include "route/holder.h"
#include "route/route.h"
#include "router_int.h"
#include "rt/gen_server.h"
#include "../workflow/workflow.h"

#define RECLAIM_MS 100
#define REWATCH_AFTER_MS 1000
#define ADMIN_LABEL "<admin>"

/* Counters for metrics, any thread. Relaxed: independent statistics, read
 * without ordering against anything else. They survive router restarts. */
static _Atomic uint64_t n_reloads_ok;
static _Atomic uint64_t n_reloads_failed;
static _Atomic uint64_t cur_version;

struct hist {
    struct route_table *t; /* owner reference */
    uint64_t version;
    size_t routes;
    char source[GW__ROUTER_SOURCE_MAX];
    char time[40]; /* published at, UTC */
};

/* Owned by the router process; freed by its exit cleanup however it exits. */
struct router {
    struct hist hist[GW_ROUTER_HISTORY]; /* newest first */
    size_t nhist;
    bool has_last;
    struct gw_router_reload last; /* the last reload record; owns its diagnostics */
    rt_pid watcher;               /* of the routes directory */
    rt_pid wf_watcher;            /* of the workflows directory, read with the routes */
    rt_pid pol_watcher;           /* of the policies directory, read with the routes */
    bool reclaim_armed;
    /* The routes directory's files as last parsed: a reload parses only the
     * files whose bytes changed (route.h, "the parse cache"). A load job
     * holds a reference while it runs. */
    struct route_cache *cache;
};

/* ---- a load on the blocking pool --------------------------------------------
 * Shared by the router and a blocking thread, each with a reference: a
 * router killed while the job runs leaves the job to the thread, which frees
 * it (and whatever it compiled) when done. */
struct job {
    _Atomic int refs;
    char *dir;  /* load this directory, or */
    char *text; /* this text, labelled `label` */
    size_t len;
    const char *label;
    const char *const *upstreams; /* gw.cfg's, immutable while the gateway runs */
    size_t nupstreams;
    char *workflows_dir;         /* with `dir`: the definitions are read again too */
    char *policies_dir;          /* with `dir`: the policy files are read again too */
    const char *consumer_header; /* gw.cfg's, immutable while the gateway runs */
    struct route_table *keep;    /* with `text`: its definitions are kept (a reference) */
    bool workflows_off;          /* no workflow service: definitions are refused */
    struct route_cache *cache;   /* with `dir`: the router's parse cache (a reference) */
    /* results */
    int rc;
    struct route_table *table;
    struct jpos_diags diags;
    uint64_t ns;
};

static void job_unref(void *arg)
{
    struct job *j = arg;
    /* acq_rel: the last owner sees everything the other one wrote. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    route_table_unref(j->table);
    route_table_unref(j->keep);
    route_cache_unref(j->cache);
    jpos_diags_done(&j->diags);
    free(j->workflows_dir);
    free(j->policies_dir);
    free(j->dir);
    free(j->text);
    free(j);
}

static intptr_t job_run(void *arg)
{
    struct job *j = arg;
    uint64_t t0 = rt_now_ns();
    /* The workflow definitions are read with the routes and attached to
     * the table, so that both are published (and a bad file of either
     * refused) as one. Compiling goes on after errors: it adds the
     * cross-file checks (duplicate names, conflicts) to the report. */
    struct gw_routes_source src = {.dir = j->dir,
                                   .label = j->label,
                                   .text = j->text,
                                   .len = j->len,
                                   .workflows_dir = j->dir ? j->workflows_dir : NULL,
                                   .policies_dir = j->dir ? j->policies_dir : NULL,
                                   .consumer_header = j->consumer_header,
                                   .keep = j->keep,
                                   .workflows_off = j->workflows_off,
                                   .cache = j->dir ? j->cache : NULL};
    int r = gw_config_load_routes(&src, j->upstreams, j->nupstreams, &j->table, &j->diags);
    j->rc = r;
    j->ns = rt_now_ns() - t0;
    job_unref(j);
    return r;
}

/* Runs a load off the scheduler. On return *out is the job (the caller owns
 * one reference, dropped by rt_undefer(*handle, true)). */
static int job_start(const char *dir, const char *text, size_t len, struct route_table *keep,
                     struct route_cache *cache, struct job **out, uint64_t *handle)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    jpos_diags_init(&j->diags);
    atomic_init(&j->refs, 2);
    j->label = ADMIN_LABEL;
    j->upstreams = (const char *const *)gw.cfg->upstream_names;
    j->nupstreams = gw.cfg->nupstreams;
    j->workflows_off = !gw_workflows_enabled(gw.cfg);
    if (dir && !(j->dir = strdup(dir)))
        goto nomem;
    if (dir && gw.cfg->workflows.dir && !(j->workflows_dir = strdup(gw.cfg->workflows.dir)))
        goto nomem;
    if (dir && gw.cfg->policies.dir && !(j->policies_dir = strdup(gw.cfg->policies.dir)))
        goto nomem;
    j->consumer_header = gw.cfg->policies.consumer_header;
    if (!dir && keep)
        j->keep = route_table_ref(keep);
    if (dir && cache)
        j->cache = route_cache_ref(cache);
    if (text) {
        if (!(j->text = malloc(len + 1)))
            goto nomem;
        memcpy(j->text, text, len);
        j->text[len] = '\0';
        j->len = len;
    }
    uint64_t d = rt_defer(job_unref, j);
    if (!d)
        goto nomem;
    intptr_t res;
    int r = rt_blocking(job_run, j, &res);
    if (r) {
        job_unref(j); /* the blocking thread's reference: it never ran */
        rt_undefer(d, true);
        return r;
    }
    *out = j;
    *handle = d;
    return 0;
nomem:
    route_table_unref(j->keep);
    route_cache_unref(j->cache);
    free(j->workflows_dir);
    free(j->policies_dir);
    free(j->dir);
    free(j->text);
    free(j);
    return -ENOMEM;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Now as RFC 3339 UTC with milliseconds, NUL-terminated: the log lines'
 * formatter, so a reload's time reads like the log line that reports it. */
static void wall_time(char *buf, size_t cap)
{
    struct timespec ts;
    struct gw__linebuf b;
    clock_gettime(CLOCK_REALTIME, &ts);
    gw__linebuf_init(&b, buf, cap - 1);
    gw__linebuf_time(&b, (int64_t)ts.tv_sec, (uint32_t)ts.tv_nsec);
    buf[b.len] = '\0';
}

static void outcome_init(struct gw_router_outcome *o, bool ok, uint64_t version, size_t routes)
{
    o->ok = ok;
    o->version = version;
    o->routes = routes;
    jpos_diags_init(&o->diags);
}

/* A failure with no position: one error with file "" and line 0. */
static void outcome_message(struct gw_router_outcome *o, const char *msg)
{
    jpos_diag_add(&o->diags, JPOS_DIAG_ERROR, "", 0, 0, "", "%s", msg);
}

/* Copies o into *out (caller storage); the copy owns its diagnostics. A
 * diagnostic that cannot be allocated is counted as dropped, not kept. */
static void outcome_copy(struct gw_router_outcome *out, const struct gw_router_outcome *o)
{
    outcome_init(out, o->ok, o->version, o->routes);
    for (size_t i = 0; i < o->diags.n; i++) {
        const struct jpos_diag *g = &o->diags.items[i];
        jpos_diag_add(&out->diags, g->level, g->file, g->line, g->column, g->path, "%s",
                      g->message);
    }
    out->diags.dropped += o->diags.dropped;
}

void gw_router_outcome_free(struct gw_router_outcome *o)
{
    if (!o)
        return;
    jpos_diags_done(&o->diags);
    free(o);
}

void gw_router_status_free(struct gw_router_status *s)
{
    if (!s)
        return;
    jpos_diags_done(&s->last_reload.outcome.diags);
    free(s);
}

void gw_router_kept_free(struct gw_router_kept *k)
{
    if (!k)
        return;
    route_table_unref(k->table);
    free(k);
}

static void reply_free(struct rt_msg *m)
{
    struct gw__router_reply h;
    memcpy(&h, m->data, sizeof h);
    gw_router_outcome_free(h.outcome);
    gw_router_status_free(h.status);
    gw_router_kept_free(h.kept);
}

/* A reply message: rc and what it points at (all consumed; NULL: none). */
static struct rt_msg *reply_msg(int rc, struct gw_router_outcome *o, struct gw_router_status *st,
                                struct gw_router_kept *k)
{
    struct rt_msg *m = rt_msg_new(GW__ROUTER_REPLY, sizeof(struct gw__router_reply));
    if (!m) {
        gw_router_outcome_free(o);
        gw_router_status_free(st);
        gw_router_kept_free(k);
        return NULL;
    }
    struct gw__router_reply h = {.rc = rc, .outcome = o, .status = st, .kept = k};
    memcpy(m->data, &h, sizeof h);
    m->dtor = reply_free;
    return m;
}

/* ---- history and publication ------------------------------------------------ */

static struct route_table *current_table(const struct router *s)
{
    return s->nhist ? s->hist[0].t : NULL;
}

static void arm_reclaim(struct router *s)
{
    if (s->reclaim_armed || route_holder_reclaim(gw.routes) == 0)
        return;
    struct rt_msg *m = rt_msg_new(GW__ROUTER_RECLAIM, 0);
    if (m && rt_send_after(rt_self(), RECLAIM_MS, m, NULL) == 0)
        s->reclaim_armed = true;
}

/* Puts `e` first; the oldest entry beyond the limit is dropped. */
static void hist_push(struct router *s, const struct hist *e)
{
    if (s->nhist == GW_ROUTER_HISTORY) {
        route_table_unref(s->hist[GW_ROUTER_HISTORY - 1].t);
        s->nhist--;
    }
    memmove(&s->hist[1], &s->hist[0], s->nhist * sizeof(s->hist[0]));
    s->hist[0] = *e;
    s->nhist++;
}

/* Publishes `t` (takes the caller's reference) and records it. */
static uint64_t publish(struct router *s, struct route_table *t, const char *source)
{
    struct hist e = {.t = route_table_ref(t), .routes = route_table_count(t)};
    snprintf(e.source, sizeof e.source, "%s", source);
    wall_time(e.time, sizeof e.time);
    e.version = route_holder_publish(gw.routes, t);
    hist_push(s, &e);
    atomic_store_explicit(&cur_version, e.version, memory_order_relaxed);
    arm_reclaim(s);
    return e.version;
}

static void log_diags(const struct jpos_diags *d, const char *source)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct jpos_diag *g = &d->items[i];
        const char *sep = g->path[0] ? ": " : "";
        if (g->line)
            rt_log(g->level == JPOS_DIAG_ERROR ? RT_LOG_ERROR : RT_LOG_WARNING,
                   "routes (%s): %s:%u:%u: %s%s%s%s", source, g->file, g->line, g->column,
                   g->level == JPOS_DIAG_WARNING ? "warning: " : "", g->path, sep, g->message);
        else
            rt_log(g->level == JPOS_DIAG_ERROR ? RT_LOG_ERROR : RT_LOG_WARNING,
                   "routes (%s): %s: %s%s%s%s", source, g->file,
                   g->level == JPOS_DIAG_WARNING ? "warning: " : "", g->path, sep, g->message);
    }
    if (d->dropped)
        rt_log(RT_LOG_ERROR, "routes (%s): %zu more diagnostics not kept", source, d->dropped);
}

/* Drops reload casts already queued: the reload about to run reads the
 * directory after they were sent. */
static bool is_reload_cast(const struct rt_msg *m, void *ctx)
{
    (void)ctx;
    return m->type == (RT_GS_CAST_BIT | GW__ROUTER_RELOAD);
}

static void drop_queued_reloads(void)
{
    struct rt_msg *m;
    while ((m = rt_receive_match(is_reload_cast, NULL, 0)))
        rt_msg_free(m);
}

/* Tells the event manager (gw/events.h) how a reload went. */
static void notify_reload(bool ok, uint64_t version, size_t routes, const char *source)
{
    struct gw_event_routes e = {.ok = ok, .version = version, .routes = routes};
    snprintf(e.source, sizeof e.source, "%s", source);
    gw_events_notify(GW_EVENT_ROUTES_RELOADED, &e, sizeof e);
}

/* Keeps a copy of `outcome` as the last reload record. */
static void set_last(struct router *s, const struct gw_router_outcome *outcome, const char *when,
                     const char *source, double ms)
{
    if (s->has_last)
        jpos_diags_done(&s->last.outcome.diags);
    outcome_copy(&s->last.outcome, outcome);
    snprintf(s->last.time, sizeof s->last.time, "%s", when);
    snprintf(s->last.source, sizeof s->last.source, "%s", source);
    s->last.duration_ms = ms;
    s->has_last = true;
}

enum load_mode { LOAD_APPLY, LOAD_VALIDATE };

/* Loads the directory (text == NULL) or a text, then publishes (LOAD_APPLY)
 * or only reports. Returns 0 (published / valid), -EINVAL (refused), or
 * another -errno; *reply (caller storage) gets the outcome, which owns its
 * diagnostics. */
static int load(struct router *s, const char *source, const char *text, size_t len,
                enum load_mode mode, struct gw_router_outcome *reply)
{
    struct job *j = NULL;
    uint64_t handle = 0;
    uint64_t version = route_holder_version(gw.routes);
    struct route_table *cur = current_table(s);
    size_t routes = cur ? route_table_count(cur) : 0;
    char when[40];
    wall_time(when, sizeof when);
    if (!text && mode == LOAD_APPLY)
        drop_queued_reloads();
    int r = job_start(text ? NULL : gw.cfg->routes_dir, text, len, cur, s->cache, &j, &handle);
    if (r) {
        rt_log(RT_LOG_ERROR, "routes (%s): reload failed: %s", source, strerror(-r));
        outcome_init(reply, false, version, routes);
        outcome_message(reply, strerror(-r));
        goto record;
    }
    r = j->rc;
    if (r == 0) {
        routes = route_table_count(j->table);
        if (mode == LOAD_APPLY) {
            struct route_table *t = j->table;
            j->table = NULL;
            version = publish(s, t, source);
            rt_log(RT_LOG_INFO, "routes (%s): version %llu published: %zu routes, %.1f ms", source,
                   (unsigned long long)version, routes, (double)j->ns / 1e6);
        }
        if (j->diags.nwarnings)
            log_diags(&j->diags, source);
    } else if (r == -EINVAL && mode == LOAD_APPLY) {
        rt_log(RT_LOG_ERROR, "routes (%s): reload refused, %zu errors; version %llu keeps serving",
               source, j->diags.nerrors, (unsigned long long)version);
        log_diags(&j->diags, source);
    } else if (r != -EINVAL) {
        rt_log(RT_LOG_ERROR, "routes (%s): reload failed: %s", source, strerror(-r));
    }
    outcome_init(reply, r == 0, version, routes);
    /* The job's diagnostics move to the outcome. */
    reply->diags = j->diags;
    jpos_diags_init(&j->diags);
    if (r != 0 && r != -EINVAL && reply->diags.nerrors == 0) {
        /* Only the failure itself is an error then (warnings stay). */
        outcome_message(reply, strerror(-r));
    }
record:
    if (mode == LOAD_APPLY) {
        atomic_fetch_add_explicit(r == 0 ? &n_reloads_ok : &n_reloads_failed, 1,
                                  memory_order_relaxed);
        set_last(s, reply, when, source, j ? (double)j->ns / 1e6 : 0.0);
        notify_reload(r == 0, version, routes, source);
    }
    if (j)
        rt_undefer(handle, true);
    return r;
}

static int rollback(struct router *s, uint64_t version, struct gw_router_outcome *reply)
{
    size_t i = 0;
    while (i < s->nhist && s->hist[i].version != version)
        i++;
    if (i == s->nhist) {
        char msg[160];
        snprintf(msg, sizeof msg, "version %llu is not kept (the last %d published are)",
                 (unsigned long long)version, GW_ROUTER_HISTORY);
        struct route_table *cur = current_table(s);
        outcome_init(reply, false, route_holder_version(gw.routes),
                     cur ? route_table_count(cur) : 0);
        outcome_message(reply, msg);
        return -ENOENT;
    }
    if (i > 0) {
        struct hist e = s->hist[i];
        memmove(&s->hist[1], &s->hist[0], i * sizeof(s->hist[0]));
        s->hist[0] = e;
        route_holder_publish(gw.routes, route_table_ref(e.t));
        atomic_store_explicit(&cur_version, e.version, memory_order_relaxed);
        arm_reclaim(s);
        rt_log(RT_LOG_INFO, "routes (rollback): version %llu published again",
               (unsigned long long)version);
        notify_reload(true, version, e.routes, "rollback");
    }
    outcome_init(reply, true, version, s->hist[0].routes);
    return 0;
}

static struct gw_router_status *status_new(const struct router *s)
{
    struct gw_router_status *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    for (size_t i = 0; i < s->nhist; i++) {
        const struct hist *e = &s->hist[i];
        struct gw_router_version *v = &st->versions[i];
        v->version = e->version;
        v->routes = e->routes;
        snprintf(v->source, sizeof v->source, "%s", e->source);
        snprintf(v->published_at, sizeof v->published_at, "%s", e->time);
    }
    st->nversions = s->nhist;
    jpos_diags_init(&st->last_reload.outcome.diags);
    if (s->has_last) {
        st->has_last_reload = true;
        st->last_reload = s->last;
        outcome_copy(&st->last_reload.outcome, &s->last.outcome);
    }
    st->reloads_ok = atomic_load_explicit(&n_reloads_ok, memory_order_relaxed);
    st->reloads_failed = atomic_load_explicit(&n_reloads_failed, memory_order_relaxed);
    st->retired = route_holder_retired(gw.routes);
    return st;
}

/* The history's entry for `version` with a reference to its table, or
 * NULL (*rc: -ENOENT when not kept, -ENOMEM). */
static struct gw_router_kept *kept_new(const struct router *s, uint64_t version, int *rc)
{
    size_t i = 0;
    while (i < s->nhist && s->hist[i].version != version)
        i++;
    if (i == s->nhist) {
        *rc = -ENOENT;
        return NULL;
    }
    struct gw_router_kept *k = calloc(1, sizeof(*k));
    if (!k) {
        *rc = -ENOMEM;
        return NULL;
    }
    const struct hist *e = &s->hist[i];
    k->meta.version = e->version;
    k->meta.routes = e->routes;
    snprintf(k->meta.source, sizeof k->meta.source, "%s", e->source);
    snprintf(k->meta.published_at, sizeof k->meta.published_at, "%s", e->time);
    k->current = i == 0;
    k->table = route_table_ref(e->t);
    *rc = 0;
    return k;
}

/* ---- the gen_server ---------------------------------------------------------- */

static void router_free(void *arg)
{
    struct router *s = arg;
    if (s->watcher)
        rt_exit_signal(s->watcher, RT_SHUTDOWN);
    if (s->wf_watcher)
        rt_exit_signal(s->wf_watcher, RT_SHUTDOWN);
    if (s->pol_watcher)
        rt_exit_signal(s->pol_watcher, RT_SHUTDOWN);
    for (size_t i = 0; i < s->nhist; i++)
        route_table_unref(s->hist[i].t);
    route_cache_unref(s->cache);
    if (s->has_last)
        jpos_diags_done(&s->last.outcome.diags);
    free(s);
}

/* Starts the watchers not running: the routes directory's and, when
 * configured, the workflows and policies directories' (a change in any
 * reloads all). True when one was started. */
static bool start_watcher(struct router *s)
{
    bool started = false, failed = false;
    rt_pid *pids[3] = {&s->watcher, &s->wf_watcher, &s->pol_watcher};
    const char *dirs[3] = {gw.cfg->routes_dir, gw.cfg->workflows.dir, gw.cfg->policies.dir};
    for (int i = 0; i < 3; i++) {
        if (*pids[i] || !dirs[i])
            continue;
        rt_pid pid = 0;
        /* The workflows and policies directories may be missing. */
        int r = gw__router_watcher_spawn(dirs[i], i > 0, &pid);
        if (r == 0) {
            *pids[i] = pid;
            started = true;
            continue;
        }
        rt_log(RT_LOG_ERROR, "routes: cannot start the watcher of %s: %s", dirs[i], strerror(-r));
        failed = true;
    }
    if (failed) {
        struct rt_msg *m = rt_msg_new(GW__ROUTER_REWATCH, 0);
        if (m)
            rt_send_after(rt_self(), REWATCH_AFTER_MS, m, NULL);
    }
    return started;
}

static void router_init(void *arg, struct rt_gs_result *r)
{
    (void)arg;
    struct router *s = calloc(1, sizeof(*s));
    if (!s || !rt_defer(router_free, s)) {
        free(s);
        rt_gs_stop(r, rt_atom_intern("enomem"));
        return;
    }
    r->state = s;
    /* The first router goes on with the cache the configuration loader
     * read the routes through, so its first reload parses only what changed
     * since start-up. The configuration hands its reference over rather
     * than keeping one, so that the cache dies with the router that uses
     * it: a router restart does not leave a copy of every route file's
     * routes behind for the life of the process. A restarted router finds
     * the pointer gone and starts a cache of its own (a load of the router
     * it replaces may still be using the old one on the blocking pool, and a
     * cache serves one load at a time). Plain accesses: routers start one
     * after another under their supervisor, and nothing else reads the
     * pointer once the configuration is loaded. Without memory for a cache
     * every reload parses every file: slower, never wrong. */
    if (gw.cfg->routes_cache) {
        s->cache = gw.cfg->routes_cache;
        gw.cfg->routes_cache = NULL;
    } else if (route_cache_new(&s->cache) < 0) {
        s->cache = NULL;
    }
    /* The watcher's exit comes as a message, so that a watcher crash costs a
     * restarted watcher, not the history. */
    rt_trap_exit(true);
    const struct route_table *held = route_holder_acquire(gw.routes);
    if (held) {
        /* A restarted router: what is published keeps serving. */
        struct hist e = {.t = route_table_ref((struct route_table *)held),
                         .version = route_table_version(held),
                         .routes = route_table_count(held)};
        snprintf(e.source, sizeof e.source, "running");
        wall_time(e.time, sizeof e.time);
        route_table_release(held);
        hist_push(s, &e);
        atomic_store_explicit(&cur_version, e.version, memory_order_relaxed);
    } else if (gw.cfg->routes) {
        /* Compiled by the configuration loader: published as it is. */
        char when[40];
        wall_time(when, sizeof when);
        size_t n = route_table_count(gw.cfg->routes);
        uint64_t v = publish(s, route_table_ref(gw.cfg->routes), "config");
        rt_log(RT_LOG_INFO, "routes (config): version %llu published: %zu routes",
               (unsigned long long)v, n);
        struct gw_router_outcome o;
        outcome_init(&o, true, v, n);
        set_last(s, &o, when, "config", 0.0);
        notify_reload(true, v, n, "config");
    } else {
        struct gw_router_outcome o;
        load(s, "startup", NULL, 0, LOAD_APPLY, &o);
        jpos_diags_done(&o.diags);
    }
    start_watcher(s);
}

static void router_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                        struct rt_gs_result *r)
{
    (void)from;
    struct router *s = state;
    struct gw_router_outcome *reply = NULL;
    struct gw_router_status *st = NULL;
    struct gw_router_kept *kept = NULL;
    int rc = -ENOMEM;
    if (req->type != GW__ROUTER_STATUS && req->type != GW__ROUTER_KEPT &&
        !(reply = calloc(1, sizeof(*reply)))) {
        rt_gs_reply(r, reply_msg(rc, NULL, NULL, NULL));
        return;
    }
    switch (req->type) {
    case GW__ROUTER_RELOAD: {
        char source[GW__ROUTER_SOURCE_MAX];
        snprintf(source, sizeof source, "%.*s", (int)req->size, (const char *)req->data);
        rc = load(s, source[0] ? source : "admin", NULL, 0, LOAD_APPLY, reply);
        break;
    }
    case GW__ROUTER_REPLACE:
        rc = load(s, ADMIN_LABEL, (const char *)req->data, req->size, LOAD_APPLY, reply);
        break;
    case GW__ROUTER_VALIDATE:
        rc = load(s, ADMIN_LABEL, (const char *)req->data, req->size, LOAD_VALIDATE, reply);
        break;
    case GW__ROUTER_ROLLBACK:
        rc = rollback(s, req->u64, reply);
        break;
    case GW__ROUTER_STATUS:
        st = status_new(s);
        rc = st ? 0 : -ENOMEM;
        break;
    case GW__ROUTER_KEPT:
        kept = kept_new(s, req->u64, &rc);
        break;
    default:
        free(reply);
        reply = NULL;
        rc = -EOPNOTSUPP;
        break;
    }
    rt_gs_reply(r, reply_msg(rc, reply, st, kept));
}

static void router_cast(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    (void)r;
    struct router *s = state;
    if (msg->type != GW__ROUTER_RELOAD)
        return;
    char source[GW__ROUTER_SOURCE_MAX];
    snprintf(source, sizeof source, "%.*s", (int)msg->size, (const char *)msg->data);
    struct gw_router_outcome o;
    load(s, source[0] ? source : "reload", NULL, 0, LOAD_APPLY, &o);
    jpos_diags_done(&o.diags);
}

static void router_info(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    (void)r;
    struct router *s = state;
    switch (msg->type) {
    case GW__ROUTER_RECLAIM:
        s->reclaim_armed = false;
        arm_reclaim(s);
        break;
    case GW__ROUTER_REWATCH:
        if (start_watcher(s)) {
            /* Files changed while no watcher ran gave no event: read the
             * directories now that the new watcher's watches are in place. */
            struct gw_router_outcome o;
            load(s, "inotify", NULL, 0, LOAD_APPLY, &o);
            jpos_diags_done(&o.diags);
        }
        break;
    case RT_MSG_EXIT:
        if (msg->from && (msg->from == s->watcher || msg->from == s->wf_watcher ||
                          msg->from == s->pol_watcher)) {
            rt_log(RT_LOG_ERROR, "routes: the directory watcher exited (%s); restarting it",
                   rt_atom_name((rt_atom)msg->u64));
            *(msg->from == s->watcher      ? &s->watcher
              : msg->from == s->wf_watcher ? &s->wf_watcher
                                           : &s->pol_watcher) = 0;
            struct rt_msg *m = rt_msg_new(GW__ROUTER_REWATCH, 0);
            if (m)
                rt_send_after(rt_self(), REWATCH_AFTER_MS, m, NULL);
        }
        break;
    default:
        break;
    }
}

static size_t router_format(const void *state, char *buf, size_t len)
{
    const struct router *s = state;
    return (size_t)snprintf(buf, len, "router version=%llu kept=%zu",
                            (unsigned long long)(s->nhist ? s->hist[0].version : 0), s->nhist);
}

static const struct rt_gen_server_ops router_ops = {
    .name = "gw_router",
    .init = router_init,
    .handle_call = router_call,
    .handle_cast = router_cast,
    .handle_info = router_info,
    .format_status = router_format,
};

/* ---- API ----------------------------------------------------------------------- */

int gw_router_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_start_opts o = {.name = GW_ROUTER_NAME, .initial_call = "gw_router:init"};
    return rt_gen_server_start_link(&router_ops, NULL, &o, out, reason);
}

static struct rt_msg *source_msg(const char *source)
{
    const char *src = source ? source : "";
    size_t n = strnlen(src, GW__ROUTER_SOURCE_MAX - 1);
    return rt_msg_copy(GW__ROUTER_RELOAD, src, n);
}

void gw_router_reload_async(const char *source)
{
    struct rt_msg *m = source_msg(source);
    if (m)
        rt_gen_server_cast_name(GW_ROUTER_NAME, m);
}

/* Calls the router; on return *h is the reply (the caller owns what it
 * points at), zeroed when there was none. */
static int call(struct rt_msg *req, struct gw__router_reply *h)
{
    struct rt_msg *rep = NULL;
    memset(h, 0, sizeof *h);
    if (!req)
        return -ENOMEM;
    int r = rt_gen_server_call_name(GW_ROUTER_NAME, req, GW_ROUTER_CALL_TIMEOUT_MS, &rep, NULL);
    if (r)
        return r;
    if (!rep || rep->size < sizeof *h) {
        rt_msg_free(rep);
        return -EPROTO;
    }
    /* Taken: rt_msg_free leaves the payload's pointers alone. */
    memcpy(h, rep->data, sizeof *h);
    rt_msg_free(rep);
    return h->rc;
}

static int outcome_call(struct rt_msg *req, struct gw_router_outcome **out)
{
    struct gw__router_reply h;
    int rc = call(req, &h);
    gw_router_status_free(h.status);
    gw_router_kept_free(h.kept);
    *out = h.outcome;
    return rc;
}

int gw_router_reload(const char *source, struct gw_router_outcome **out)
{
    return outcome_call(source_msg(source), out);
}

static int text_call(uint32_t type, const char *text, size_t len, struct gw_router_outcome **out)
{
    if (len > ROUTE_MAX_FILE_BYTES) {
        struct gw_router_outcome *o = calloc(1, sizeof(*o));
        if (o) {
            outcome_init(o, false, route_holder_version(gw.routes), 0);
            outcome_message(o, "the route set is larger than 16 MiB");
        }
        *out = o;
        return -EINVAL;
    }
    return outcome_call(rt_msg_copy(type, text, len), out);
}

int gw_router_replace(const char *text, size_t len, struct gw_router_outcome **out)
{
    return text_call(GW__ROUTER_REPLACE, text, len, out);
}

int gw_router_validate(const char *text, size_t len, struct gw_router_outcome **out)
{
    return text_call(GW__ROUTER_VALIDATE, text, len, out);
}

int gw_router_rollback(uint64_t version, struct gw_router_outcome **out)
{
    struct rt_msg *m = rt_msg_new(GW__ROUTER_ROLLBACK, 0);
    if (m)
        m->u64 = version;
    return outcome_call(m, out);
}

int gw_router_status(struct gw_router_status **out)
{
    struct gw__router_reply h;
    int rc = call(rt_msg_new(GW__ROUTER_STATUS, 0), &h);
    gw_router_outcome_free(h.outcome);
    gw_router_kept_free(h.kept);
    if (rc == 0 && !h.status)
        rc = -EPROTO;
    if (rc < 0) {
        gw_router_status_free(h.status);
        return rc;
    }
    *out = h.status;
    return 0;
}

int gw_router_kept_get(uint64_t version, struct gw_router_kept **out)
{
    struct gw__router_reply h;
    struct rt_msg *m = rt_msg_new(GW__ROUTER_KEPT, 0);
    if (m)
        m->u64 = version;
    int rc = call(m, &h);
    gw_router_outcome_free(h.outcome);
    gw_router_status_free(h.status);
    if (rc == 0 && !h.kept)
        rc = -EPROTO;
    if (rc < 0) {
        gw_router_kept_free(h.kept);
        return rc;
    }
    *out = h.kept;
    return 0;
}

void gw_router_counts(struct gw_router_counts *out)
{
    out->reloads_ok = atomic_load_explicit(&n_reloads_ok, memory_order_relaxed);
    out->reloads_failed = atomic_load_explicit(&n_reloads_failed, memory_order_relaxed);
    out->version = atomic_load_explicit(&cur_version, memory_order_relaxed);
}
