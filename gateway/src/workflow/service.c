/*
 * service.c: the workflows service (workflow.h) and its supervision tree.
 *
 *   workflows_sup (rest_for_one)
 *     wf_journal     the journal process (journal.c)
 *     wf_instances   simple_one_for_one, transient: one gen_statem per
 *                    running instance (instance.c), registered `wf:<id>`
 *     wf_recovery    runs once while workflows_sup starts: claims this
 *                    replica's unfinished instances and starts each, then
 *                    ignores itself (nothing stays running); in a gateway
 *                    started by an upgrade, a process that waits for the
 *                    old gateway to exit first (below)
 *     wf_takeover    PostgreSQL only: every half lease, claims the
 *                    unfinished instances whose owner's lease lapsed (a
 *                    replica that died and has not come back) and starts
 *                    them here
 *
 * rest_for_one: a journal process that restarts takes the instances with
 * it (they restart from the journal, through wf_recovery again); an
 * instance supervisor that gives up is restarted with its recovery.
 * Recovery runs inside workflows_sup's start, and workflows_sup starts
 * before the listeners, so every unfinished instance runs again (and its
 * key is in the journal) before the first client is accepted.
 *
 * Upgrade (upgrade.h): the old and the new gateway share the journal while
 * both run. The new one has an owner of its own (the old one's id with
 * "/upgrade-PID" appended, which no configured replica id can be), so
 * neither claims nor writes what the other runs; it creates and runs new
 * instances at once, but its recovery waits until the old process has
 * exited (a pidfd; at most the drain timeout plus HANDOVER_MARGIN_MS),
 * then claims every unfinished instance of the old owner
 * (wf_journal_claim_from; with SQLite every unfinished one) and starts
 * each. An instance the old one was running thus runs again only once the
 * old one can no longer act on it; and should the wait run out while the
 * old one lingers, its next write for an instance taken from it fails
 * (-ESTALE: another owner) and its process stops without acting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gw/gateway.h"
#include "instance.h"
#include "rt/gen_server.h"
#include "rt/gen_statem.h"
#include "rt/supervisor.h"
#include "workflow.h"

/* Defaults of the `workflows` section's numbers (a zero value). */
#define DEFAULT_MAX_RUNNING 10000
#define DEFAULT_KEY_TTL_MS (24ull * 3600 * 1000)
#define DEFAULT_LEASE_MS 15000
/* At most this many unfinished instances are recovered at start. */
#define RECOVER_MAX 1000000
/* Restarts of instance processes tolerated (per 10 s) before their
 * supervisor gives up: one instance crashing in a loop must not take the
 * others down with it quickly. */
#define INSTANCE_RESTARTS 1000
/* After an upgrade: how often the new gateway looks whether the old one
 * has exited, and how long past the drain timeout it waits for that (the
 * old one's tree stops after its drain: its instances within 5 s, its
 * journal within 10 s). */
#define HANDOVER_POLL_MS 50
#define HANDOVER_MARGIN_MS 20000

struct wf__counters wf__counters;

/* The instance supervisor: set by its start function, read by callers on
 * any scheduler. Relaxed would not do: the pid is published for processes
 * that then call it; acquire/release orders nothing else, but documents
 * the hand-over (and costs nothing on x86). */
static _Atomic rt_pid instances_sup;

/* The journal's configuration: its strings outlive every restart of the
 * journal process (the child spec points here). */
static struct wf_journal_config jcfg;
static char jpath[4096];
static char jowner[WF_OWNER_MAX + 1];
/* The gateway that started this one by an upgrade: its pid (0: none), a
 * pidfd on it (-1 when the kernel has none), its journal owner ("": it had
 * no workflows). Written once before the runtime starts. */
static pid_t old_pid;
static int old_pidfd = -1;
static char old_owner[WF_OWNER_MAX + 1];
/* Set once the old gateway of an upgrade has exited and its instances are
 * claimed: a recovery that runs again afterwards (its journal restarted)
 * claims at once. Relaxed: a flag on its own, read by wf_recovery's later
 * processes. */
static _Atomic bool handed_over;

const char *gw_workflows_owner(void)
{
    return jowner;
}

void gw_workflows_upgraded_from(int pid, const char *owner)
{
    old_pid = (pid_t)pid;
    /* The old gateway waits for this one's readiness, so the pid is still
     * its own here; the pidfd keeps it so (a recycled pid is never taken
     * for it). */
#ifdef SYS_pidfd_open
    old_pidfd = (int)syscall(SYS_pidfd_open, old_pid, 0);
    if (old_pidfd >= 0)
        fcntl(old_pidfd, F_SETFD, FD_CLOEXEC);
#endif
    snprintf(old_owner, sizeof old_owner, "%s", owner ? owner : "");
}

/* Whether the old gateway of an upgrade has exited (true when there was
 * none). Never blocks. */
static bool old_gone(void)
{
    if (!old_pid)
        return true;
    if (old_pidfd >= 0) {
        /* Readable once the process has exited (a zombie not yet reaped
         * included). */
        struct pollfd p = {.fd = old_pidfd, .events = POLLIN};
        return poll(&p, 1, 0) > 0;
    }
    return kill(old_pid, 0) < 0 && errno == ESRCH;
}

void wf__upstream_names(const char *const **names, size_t *n)
{
    *names = gw.cfg ? (const char *const *)gw.cfg->upstream_names : NULL;
    *n = gw.cfg ? gw.cfg->nupstreams : 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool gw_workflows_enabled(const struct gw_config *cfg)
{
    return cfg && cfg->workflows.enabled;
}

static uint32_t max_running(void)
{
    uint32_t m = gw.cfg ? gw.cfg->workflows.max_running : 0;
    return m ? m : DEFAULT_MAX_RUNNING;
}

/* ---- the service's calls ------------------------------------------------------ */

static int id_new(char out[WF_ID_LEN + 1])
{
    unsigned char b[WF_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof b; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[WF_ID_LEN] = 0;
    return 0;
}

/* Starts the process of instance `id`: 0 when started, 1 when it already
 * runs (*out is then the running one, or 0 if it just ended), or a
 * negative errno. */
static int instance_run(const char *id, rt_pid *out)
{
    rt_pid sup = atomic_load_explicit(&instances_sup, memory_order_acquire);
    char buf[WF_ID_LEN + 1];
    rt_pid pid = 0;
    rt_atom why = RT_UNDEFINED;
    if (!sup)
        return -ESRCH;
    memset(buf, 0, sizeof buf);
    memcpy(buf, id, strnlen(id, WF_ID_LEN));
    int rc = rt_sup_start_child_extra(sup, buf, sizeof buf, &pid, &why);
    if (rc == -EEXIST) {
        /* Already running (its name is taken by it). */
        if (out) {
            char name[WF__NAME_MAX];
            wf__instance_name(buf, name);
            *out = rt_whereis(name);
        }
        return 1;
    }
    if (rc < 0) {
        rt_log(RT_LOG_ERROR, "workflow %s: cannot start its process: %s (%s)", buf, strerror(-rc),
               rt_atom_name(why));
        return rc;
    }
    if (out)
        *out = pid;
    return 0;
}

/* The record of a new instance, built from what the caller gave (the
 * journal is not read again). Freed with wf_record_free. */
static struct wf_record *record_new(const struct wf_create *c)
{
    struct wf_record *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    memcpy(r->id, c->id, sizeof r->id);
    r->def_name = strdup(c->def_name);
    r->state = strdup(c->state);
    r->scope = c->scope ? strdup(c->scope) : NULL;
    r->key = c->key ? strdup(c->key) : NULL;
    memcpy(r->fingerprint, c->fingerprint, sizeof r->fingerprint);
    r->created_ms = r->updated_ms = c->created_ms;
    r->key_expires_ms = c->key_expires_ms;
    if (!r->def_name || !r->state || (c->scope && !r->scope) || (c->key && !r->key)) {
        wf_record_free(r);
        return NULL;
    }
    return r;
}

int gw_workflow_start(const struct wf_def *def, const json_t *input, const char *scope,
                      const char *key, const unsigned char fingerprint[WF_FINGERPRINT_LEN],
                      enum gw_wf_start *how, struct wf_record **out)
{
    char state[WF_STATE_MAX];
    struct wf_create c = {0};
    struct wf_record *existing = NULL, *rec = NULL;
    char *in = NULL;
    int rc;
    if (!def->nsteps)
        return -EINVAL;
    /* A place among max_running is taken before the journal write (which
     * parks): starts racing each other cannot all pass the bound. It is
     * given back at the end, once the instance process counts itself (its
     * init, which instance_run waits for). Relaxed: a bound, not a
     * synchronisation. */
    uint64_t cur = atomic_load_explicit(&wf__counters.running, memory_order_relaxed);
    do {
        if (cur >= max_running())
            return -EAGAIN;
    } while (!atomic_compare_exchange_weak_explicit(&wf__counters.running, &cur, cur + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    rc = id_new(c.id);
    if (rc < 0)
        goto out;
    in = json_dumps(input, JSON_COMPACT | JSON_SORT_KEYS);
    rc = -ENOMEM;
    if (!in)
        goto out;
    snprintf(state, sizeof state, "step:%s", def->steps[0].name);
    c.def_name = def->name;
    c.def_text = def->text;
    c.def_text_len = def->text_len;
    c.input = in;
    c.input_len = strlen(in);
    c.scope = scope;
    c.key = scope ? key : NULL;
    if (scope && fingerprint)
        memcpy(c.fingerprint, fingerprint, sizeof c.fingerprint);
    c.created_ms = wall_ms();
    c.key_expires_ms =
        c.created_ms + (int64_t)(def->key_ttl_ms ? def->key_ttl_ms : DEFAULT_KEY_TTL_MS);
    c.state = state;
    rc = wf_journal_create(&c, &existing);
    if (rc == -EEXIST && existing) {
        *how = GW_WF_EXISTING;
        *out = existing;
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    rec = record_new(&c);
    if (!rec) {
        rc = -ENOMEM;
        goto out;
    }
    atomic_fetch_add_explicit(&wf__counters.started, 1, memory_order_relaxed);
    /* Journalled: if the process cannot start now, recovery starts it at
     * the next start; the caller still gets the instance. */
    (void)instance_run(c.id, NULL);
    *how = GW_WF_STARTED;
    *out = rec;
    rc = 0;
out:
    atomic_fetch_sub_explicit(&wf__counters.running, 1, memory_order_relaxed);
    free(in);
    return rc;
}

static rt_pid instance_pid(const char *id)
{
    char name[WF__NAME_MAX];
    wf__instance_name(id, name);
    return rt_whereis(name);
}

int gw_workflow_await(const char *id, uint32_t ms, struct wf_record **out)
{
    rt_pid pid = instance_pid(id);
    if (pid && ms) {
        struct rt_msg *req = rt_msg_new(WF__CALL_AWAIT, 0);
        struct rt_msg *reply = NULL;
        /* Whatever the call gives (answered, timed out, the process gone),
         * the journal says where the instance is. */
        if (req && rt_gen_statem_call(pid, req, ms, &reply, NULL) == 0)
            rt_msg_free(reply);
    }
    return wf_journal_get(id, false, out);
}

/* An operator's call to the instance; a failed instance has no process
 * after a restart of the gateway (it is terminal in the journal), so one
 * is started for it: it reads its journal and waits in `failed`. */
static int operator(const char *id, uint32_t type, const char *note)
{
    struct wf_record *rec = NULL;
    rt_pid pid = instance_pid(id);
    if (!pid) {
        int rc = wf_journal_get(id, false, &rec);
        if (rc < 0)
            return rc;
        bool failed = rec->state && strcmp(rec->state, "failed") == 0;
        wf_record_free(rec);
        if (!failed)
            return -EINVAL;
        rc = instance_run(id, &pid);
        if (rc < 0)
            return rc;
    }
    size_t nlen = note ? strnlen(note, 1024) : 0;
    struct rt_msg *req = rt_msg_new(type, nlen + 1);
    struct rt_msg *reply = NULL;
    if (!req)
        return -ENOMEM;
    if (nlen)
        memcpy(req->data, note, nlen);
    int rc = rt_gen_statem_call(pid, req, 30000, &reply, NULL);
    if (rc == -ESRCH || rc == -ECONNRESET)
        return -EINVAL; /* it ended meanwhile: not failed any more */
    if (rc < 0)
        return rc;
    rc = reply ? (int)(int64_t)reply->u64 : -EIO;
    rt_msg_free(reply);
    return rc;
}

int gw_workflow_retry(const char *id)
{
    return operator(id, WF__CALL_RETRY, NULL);
}

int gw_workflow_resolve(const char *id, const char *note)
{
    return operator(id, WF__CALL_RESOLVE, note ? note : "");
}

void gw_workflow_stats(struct gw_wf_stats *out)
{
    struct wf__counters *k = &wf__counters;
    /* Relaxed: counters shown on their own. */
    out->started = atomic_load_explicit(&k->started, memory_order_relaxed);
    out->completed = atomic_load_explicit(&k->completed, memory_order_relaxed);
    out->compensated = atomic_load_explicit(&k->compensated, memory_order_relaxed);
    out->failed = atomic_load_explicit(&k->failed, memory_order_relaxed);
    out->recovered = atomic_load_explicit(&k->recovered, memory_order_relaxed);
    out->running = atomic_load_explicit(&k->running, memory_order_relaxed);
}

/* ---- the tree ------------------------------------------------------------------ */

static int instances_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    (void)arg;
    struct rt_child_spec spec = {.id = "wf_instance",
                                 .start = wf__instance_start,
                                 .restart = RT_TRANSIENT,
                                 .shutdown = 5000};
    flags->strategy = RT_SIMPLE_ONE_FOR_ONE;
    flags->intensity = INSTANCE_RESTARTS;
    flags->period_s = 10;
    return rt_sup_init_child(init, &spec);
}

static int instances_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                           rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_start_opts o = {.name = "wf_instances", .initial_call = "wf_instances"};
    int rc = rt_sup_start_link(instances_init, NULL, &o, out, reason);
    if (rc == 0)
        atomic_store_explicit(&instances_sup, *out, memory_order_release);
    return rc;
}

/* Claims this replica's unfinished instances (and those of `from`, when
 * not NULL) and starts each. */
static int recover(const char *from)
{
    char(*ids)[WF_ID_LEN + 1] = NULL;
    size_t n = 0;
    int rc = wf_journal_claim_from(from, RECOVER_MAX, &ids, &n);
    if (rc < 0)
        return rc;
    uint64_t t0 = rt_now_ms();
    size_t started = 0;
    for (size_t i = 0; i < n; i++)
        if (instance_run(ids[i], NULL) == 0)
            started++;
    free(ids);
    atomic_fetch_add_explicit(&wf__counters.recovered, started, memory_order_relaxed);
    if (n)
        rt_log(RT_LOG_INFO, "workflows: %zu unfinished instances restarted in %llu ms", started,
               (unsigned long long)(rt_now_ms() - t0));
    return 0;
}

/* ---- handover: the instances the old gateway of an upgrade left ---------- */

enum { HANDOVER_TICK = 1 };

struct handover {
    uint64_t deadline; /* rt_now_ms() past which it no longer waits */
};

/* The wait's end, set by the first wf_recovery process: one that restarts
 * (its journal restarted) waits no longer than the first would have.
 * Relaxed: wf_recovery's processes follow one another. */
static _Atomic uint64_t handover_deadline;

static void handover_tick(void)
{
    struct rt_msg *m = rt_msg_new(HANDOVER_TICK, 0);
    if (m)
        rt_send_after(rt_self(), HANDOVER_POLL_MS, m, NULL);
}

static void handover_init(void *arg, struct rt_gs_result *r)
{
    (void)arg;
    struct handover *h = calloc(1, sizeof *h);
    /* Freed however the process ends, killed included. */
    if (!h || !rt_defer(free, h)) {
        free(h);
        rt_gs_error(r, rt_atom_intern("out_of_memory"));
        return;
    }
    uint32_t drain = gw.cfg ? gw.cfg->drain_timeout_ms : 0;
    uint64_t first = 0;
    atomic_compare_exchange_strong_explicit(&handover_deadline, &first,
                                            rt_now_ms() + drain + HANDOVER_MARGIN_MS,
                                            memory_order_relaxed, memory_order_relaxed);
    h->deadline = atomic_load_explicit(&handover_deadline, memory_order_relaxed);
    r->state = h;
    handover_tick();
    rt_gs_ok(r);
}

static void handover_info(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    struct handover *h = state;
    if (msg->type != HANDOVER_TICK) {
        rt_gs_noreply(r);
        return;
    }
    bool gone = old_gone();
    if (!gone && rt_now_ms() < h->deadline) {
        handover_tick();
        rt_gs_noreply(r);
        return;
    }
    if (!gone)
        rt_log(RT_LOG_WARNING,
               "workflows: the old gateway (pid %d) has not exited within the drain timeout "
               "plus %d ms; its unfinished instances are taken over now, and its own writes "
               "for them will be refused",
               (int)old_pid, HANDOVER_MARGIN_MS);
    /* Whatever the claim gives, the wait is over: a restarted recovery
     * claims at once. */
    atomic_store_explicit(&handed_over, true, memory_order_relaxed);
    if (recover(*old_owner ? old_owner : NULL) < 0) {
        rt_gs_stop(r, rt_atom_intern("journal_claim_failed"));
        return;
    }
    rt_gs_stop(r, RT_NORMAL);
}

static const struct rt_gen_server_ops handover_ops = {
    .name = "wf_recovery",
    .init = handover_init,
    .handle_info = handover_info,
};

/* Runs inside workflows_sup's start: every unfinished instance this
 * replica may own is started before the start returns, and nothing stays
 * running (RT_IGNORE). In a gateway started by an upgrade whose old
 * gateway may still run, a process stays instead: it claims the old one's
 * instances once that one has exited (handover_info), then stops. */
static int recovery_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    if (old_pid && !atomic_load_explicit(&handed_over, memory_order_relaxed)) {
        struct rt_start_opts o = {.name = "wf_recovery", .initial_call = "wf_recovery"};
        return rt_gen_server_start_link(&handover_ops, NULL, &o, out, reason);
    }
    /* After a handover the old gateway's owner is claimed from again: the
     * handover's own claim may have failed (and this start is its
     * restart), and a claim that finds nothing of it costs nothing. */
    int rc = recover(old_pid && *old_owner ? old_owner : NULL);
    if (rc < 0) {
        *reason = rt_atom_intern("journal_claim_failed");
        return rc;
    }
    return RT_IGNORE;
}

/* ---- takeover (PostgreSQL): a replica's instances outlive the replica -------- */

enum { TAKEOVER_TICK = 1 };

/* The claimed instances wf_takeover started here, sorted. One of them
 * that is unfinished and has no process any more stopped without ending
 * (its definition no longer compiles, its transitions do not fit it): it
 * is not started again every tick, which would log its error and count it
 * recovered each time; the next start of the gateway tries it again, as
 * with SQLite. Bounded by the claim: ids no longer claimed are dropped. */
struct takeover {
    char (*started)[WF_ID_LEN + 1];
    size_t n;
};

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, WF_ID_LEN);
}

static void takeover_free(void *p)
{
    struct takeover *t = p;
    free(t->started);
    free(t);
}

static void takeover_tick(void)
{
    /* Half a lease, give or take a tenth, so replicas started together do
     * not claim in step. */
    uint32_t half = jcfg.lease_ms / 2, jitter = 0;
    if (getrandom(&jitter, sizeof jitter, GRND_NONBLOCK) != sizeof jitter)
        jitter = 0;
    struct rt_msg *m = rt_msg_new(TAKEOVER_TICK, 0);
    if (m)
        rt_send_after(rt_self(), half - half / 10 + jitter % (half / 5 + 1), m, NULL);
}

static void takeover_init(void *arg, struct rt_gs_result *r)
{
    (void)arg;
    struct takeover *t = calloc(1, sizeof *t);
    /* Freed however the process ends, killed included. */
    if (!t || !rt_defer(takeover_free, t)) {
        free(t);
        rt_gs_error(r, rt_atom_intern("out_of_memory"));
        return;
    }
    r->state = t;
    takeover_tick();
    rt_gs_ok(r);
}

static void takeover_info(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    struct takeover *t = state;
    if (msg->type == TAKEOVER_TICK) {
        char(*ids)[WF_ID_LEN + 1] = NULL;
        size_t n = 0;
        /* Claims this replica's own unfinished instances too (their leases
         * renewed): those run here already, and instance_run leaves them. */
        if (wf_journal_claim(RECOVER_MAX, &ids, &n) == 0) {
            size_t started = 0, nkeep = 0;
            char(*keep)[WF_ID_LEN + 1] = calloc(n ? n : 1, sizeof *keep);
            if (!keep)
                n = 0; /* this tick claims without starting; the next starts */
            if (n)
                qsort(ids, n, sizeof *ids, id_cmp);
            for (size_t i = 0; i < n; i++) {
                char name[WF__NAME_MAX];
                bool before = t->n && bsearch(ids[i], t->started, t->n, sizeof *t->started, id_cmp);
                wf__instance_name(ids[i], name);
                if (before) {
                    memcpy(keep[nkeep++], ids[i], sizeof *keep);
                    continue;
                }
                if (rt_whereis(name))
                    continue;
                /* 1: it started meanwhile here (a new instance, a restart
                 * by its supervisor); not taken over. */
                if (instance_run(ids[i], NULL) == 0) {
                    started++;
                    memcpy(keep[nkeep++], ids[i], sizeof *keep);
                }
            }
            free(ids);
            if (keep) {
                free(t->started);
                t->started = keep;
                t->n = nkeep;
            }
            if (started) {
                atomic_fetch_add_explicit(&wf__counters.recovered, started, memory_order_relaxed);
                rt_log(RT_LOG_INFO,
                       "workflows: took over %zu unfinished instances whose owner's lease lapsed",
                       started);
            }
        }
        takeover_tick();
    }
    rt_gs_noreply(r);
}

static const struct rt_gen_server_ops takeover_ops = {
    .name = "wf_takeover",
    .init = takeover_init,
    .handle_info = takeover_info,
};

static int takeover_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_start_opts o = {.name = "wf_takeover", .initial_call = "wf_takeover"};
    return rt_gen_server_start_link(&takeover_ops, NULL, &o, out, reason);
}

static int journal_config(const struct gw_config *cfg)
{
    const struct gw_workflows_config *w = &cfg->workflows;
    memset(&jcfg, 0, sizeof jcfg);
    jcfg.backend = w->backend == GW_WF_POSTGRES ? WF_BACKEND_POSTGRES : WF_BACKEND_SQLITE;
    jcfg.durable = w->durable;
    jcfg.lease_ms = w->lease_ms ? w->lease_ms : DEFAULT_LEASE_MS;
    if (w->sqlite_path)
        snprintf(jpath, sizeof jpath, "%s", w->sqlite_path);
    else
        snprintf(jpath, sizeof jpath, "%s/workflows.db", w->data_dir ? w->data_dir : "data");
    jcfg.sqlite_path = jpath;
    char base[200] = "localhost";
    if (w->replica_id) {
        snprintf(base, sizeof base, "%s", w->replica_id);
    } else {
        /* Stable across restarts of the same host's gateway (an SQLite
         * journal has one owner anyway). */
        gethostname(base, sizeof base - 1);
    }
    /* Started by an upgrade: an owner of its own while the old gateway
     * still runs under its own (see the file's comment). A later plain
     * restart takes the base owner again, and with it this one's
     * instances: all of them with SQLite, once their leases lapse with
     * PostgreSQL (wf_takeover). */
    if (old_pid)
        snprintf(jowner, sizeof jowner, "%s/upgrade-%ld", base, (long)getpid());
    else
        snprintf(jowner, sizeof jowner, "%s", base);
    jcfg.owner = jowner;
    if (jcfg.backend == WF_BACKEND_POSTGRES) {
        const char *ci = w->pg_conninfo_env ? getenv(w->pg_conninfo_env) : NULL;
        if (!ci || !*ci) {
            rt_log(RT_LOG_ERROR, "workflows: the PostgreSQL conninfo variable %s is not set",
                   w->pg_conninfo_env ? w->pg_conninfo_env
                                      : "(workflows.journal.postgres.conninfo_env)");
            return -EINVAL;
        }
        jcfg.pg_conninfo = ci;
    }
    return 0;
}

/* What the journal is given to finish its writes and close its file. */
#define JOURNAL_SHUTDOWN_MS 10000

static int workflows_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    (void)arg;
    struct rt_child_spec specs[] = {
        {.id = "wf_journal",
         .start = wf_journal_child_start,
         .arg = &jcfg,
         .restart = RT_PERMANENT,
         .shutdown = JOURNAL_SHUTDOWN_MS},
        {.id = "wf_instances",
         .start = instances_start,
         .restart = RT_PERMANENT,
         .shutdown = RT_SHUTDOWN_INFINITY,
         .type = RT_SUPERVISOR},
        {.id = "wf_recovery", .start = recovery_start, .restart = RT_TRANSIENT},
        {.id = "wf_takeover", .start = takeover_start, .restart = RT_PERMANENT, .shutdown = 5000},
    };
    flags->strategy = RT_REST_FOR_ONE;
    flags->intensity = 5;
    flags->period_s = 10;
    /* One owner with SQLite: nothing to take over. */
    size_t n = sizeof specs / sizeof *specs;
    if (jcfg.backend != WF_BACKEND_POSTGRES)
        n--;
    return rt_sup_init_children(init, specs, n);
}

int gw_workflows_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                           rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    const struct gw_config *cfg = arg ? arg : gw.cfg;
    int rc = journal_config(cfg);
    if (rc < 0) {
        *reason = rt_atom_intern("bad_journal_config");
        return rc;
    }
    /* A workflows_sup killed outright leaves its journal to exit on the
     * EXIT of its link, after it closes the journal's file: starting the
     * next one before would find the name taken (already_started, a
     * restart spent at once) or the file still open. Wait for it, as long
     * as its supervisor would. */
    rt_ref gone = rt_monitor_name("wf_journal");
    if (gone) {
        struct rt_msg *d = rt_receive_ref(gone, JOURNAL_SHUTDOWN_MS);
        if (d)
            rt_msg_free(d);
        else
            rt_demonitor(gone, true);
    }
    struct rt_start_opts o = {.name = "workflows_sup", .initial_call = "workflows_sup"};
    return rt_sup_start_link(workflows_init, NULL, &o, out, reason);
}
