/*
 * gateway.c: gw_run — start-up, the supervision tree, signals, graceful
 * shutdown.
 *
 *   tandem_sup (one_for_one, at most 5 restarts in 10 s)
 *   ├── gw_events       the gateway's event manager (gw/events.h)
 *   ├── logger          access log
 *   ├── router          owns the route table, reloads it
 *   ├── upstreams_sup   one_for_one: active health checks per upstream
 *   ├── workflows_sup   with workflows: one process per instance
 *   ├── jwks_sup        simple_one_for_one: a fetcher per JWKS URL
 *   │                   (policy/jwks_fetch.c)
 *   ├── listeners_sup   one_for_one: per listener (rest_for_one)
 *   │                   conns_sup (simple_one_for_one) + acceptors
 *   ├── admin           the admin listener, built the same way
 *   ├── redis_sup       with a Redis rate limit (policy/redis.c)
 *   ├── tls_reloader    with a TLS listener: reloads its certificates
 *   │                   (tls/reload.c)
 *   └── gw_sampler      samples the system for the event stream while a
 *                       stream is open (admin/events.c)
 *
 * The children of tandem_sup depend on one another only through state that
 * outlives each of them, never through a pid one holds: gw_events, the
 * router, jwks_sup, redis_sup and the TLS reloader are reached by their
 * registered names, the logger and the Redis client through a pid each
 * publishes when it starts; requests read the published route table
 * (gw.routes) and the upstreams' state, which belong to the gateway, not
 * to the router or upstreams_sup, and a restarted router takes the table
 * that is published; the listening sockets are opened here and outlive
 * listeners_sup. So a crash restarts only the child that crashed
 * (one_for_one): killing the logger drops no connection. The order is the
 * start order: gw_events first so that every start is announced,
 * workflows_sup before the listeners so that unfinished instances hold
 * their keys before a request may ask for them.
 *
 * A supervisor whose children crash more often than its intensity allows
 * stops them all and exits; an inner one (upstreams_sup, listeners_sup,
 * ...) is then restarted by tandem_sup, which counts it against its own
 * intensity. When tandem_sup itself gives up (or is killed), nothing is
 * left serving: the gateway logs one line saying so and exits 1 at once,
 * so that its own supervisor (systemd's Restart=, the container runtime's
 * restart policy) starts it again from scratch.
 *
 * The main thread owns the signals (blocked everywhere else): SIGHUP asks
 * the router to reload and the TLS listeners to load their certificates
 * again; SIGTERM/SIGINT drain: listeners stop accepting,
 * connections finish the request in progress and close, then the tree is
 * shut down in reverse order and the process exits 0. Whatever is still
 * open after drain_timeout_ms is cut. SIGUSR2 (or POST /admin/upgrade)
 * upgrades the binary (upgrade.c): once the new gateway is ready on the
 * same sockets, this one stops accepting without shutting them down,
 * every connection closes after its next request, and it exits 0 as
 * after SIGTERM.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw/admin.h"
#include "gw/events.h"
#include "gw/metrics.h"
#include "gw/router.h"
#include "gw_int.h"
#include "workflow/workflow.h"
#include "gw_version.h"
#include "policy/redis.h"
#include "policy/jwt_int.h"
#include "relay.h"
#include "tls/tls.h"
#include "rt/supervisor.h"
#include "upgrade.h"

/* tandem_sup's intensity: more restarts than this within the period and the
 * gateway exits 1 (see the top of the file). */
#define TOP_INTENSITY 5
#define TOP_PERIOD_S 10
#define TEXT_(x) #x
#define TEXT(x) TEXT_(x)

struct gw_gateway gw;
struct gw__kinds gw__kinds;

int gw__kinds_register(void)
{
    struct gw__kinds k;
    int rc = rt_kind_register("acceptor", &k.acceptor);
    if (rc == 0)
        rc = rt_kind_register("connection", &k.connection);
    if (rc == 0)
        rc = rt_kind_register("request", &k.request);
    if (rc == 0)
        gw__kinds = k;
    return rc;
}

/* One listener_started event per listener a (re)started listeners_sup or
 * admin supervisor serves: `admin` NULL for the public ones. */
static void notify_listeners(const struct gw__listener *admin)
{
    for (size_t i = 0; i < gw__nlisteners; i++) {
        const struct gw__listener *l = &gw__listeners[i];
        if (admin ? l != admin : l->admin)
            continue;
        struct gw_event_listener e = {.port = l->port, .admin = l->admin};
        snprintf(e.name, sizeof e.name, "%s", l->name ? l->name : "");
        const char *addr =
            l->admin ? gw.cfg->admin.address.text : gw.cfg->listeners[l->index].address.text;
        snprintf(e.address, sizeof e.address, "%s", addr ? addr : "");
        gw_events_notify(GW_EVENT_LISTENER_STARTED, &e, sizeof e);
    }
}

/* listeners_sup and the admin listener's supervisor, announced once up. */
static int listeners_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                           rt_atom *reason)
{
    int rc = gw__listeners_sup_start(arg, extra, extra_size, out, reason);
    if (rc == 0)
        notify_listeners(arg ? *(struct gw__listener **)arg : NULL);
    return rc;
}

static int tandem_sup_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    (void)arg;
    /* Known before any child starts: the admin listener serves (and may be
     * asked for the tree) before rt_sup_start_link has returned. */
    gw.sup = rt_self();
    struct rt_child_spec specs[11];
    struct gw__listener *admin = NULL; /* the admin child's arg: its bytes are copied */
    size_t k = 0;
    /* First: the others notify it, from their start on. It only dies of
     * its own fault (a failing handler is removed alone). */
    specs[k++] = (struct rt_child_spec){
        .id = "gw_events", .start = gw_events_start, .restart = RT_PERMANENT, .shutdown = 2000};
    specs[k++] = (struct rt_child_spec){.id = "logger",
                                        .start = gw__logger_start,
                                        .restart = RT_PERMANENT,
                                        .shutdown = GW__LOGGER_SHUTDOWN_MS};
    specs[k++] = (struct rt_child_spec){
        .id = "router", .start = gw_router_start, .restart = RT_PERMANENT, .shutdown = 5000};
    specs[k++] = (struct rt_child_spec){.id = "upstreams_sup",
                                        .start = gw__upstreams_sup_start,
                                        .restart = RT_PERMANENT,
                                        .shutdown = RT_SHUTDOWN_INFINITY,
                                        .type = RT_SUPERVISOR};
    /* Before the listeners: its start restarts every unfinished workflow
     * instance, whose keys then answer 409 rather than start another. */
    if (gw_workflows_enabled(gw.cfg))
        specs[k++] = (struct rt_child_spec){.id = "workflows_sup",
                                            .start = gw_workflows_sup_start,
                                            .arg = gw.cfg,
                                            .restart = RT_PERMANENT,
                                            .shutdown = RT_SHUTDOWN_INFINITY,
                                            .type = RT_SUPERVISOR};
    /* The jwt policies' fetchers of key sets by URL, started on a
     * request's first need: up before the listeners, whose first request
     * may need one. Its fetchers are transient and restart alone. */
    specs[k++] = (struct rt_child_spec){.id = "jwks_sup",
                                        .start = gw_jwks_sup_start,
                                        .restart = RT_PERMANENT,
                                        .shutdown = RT_SHUTDOWN_INFINITY,
                                        .type = RT_SUPERVISOR};
    specs[k++] = (struct rt_child_spec){.id = "listeners_sup",
                                        .start = listeners_start,
                                        .restart = RT_PERMANENT,
                                        .shutdown = RT_SHUTDOWN_INFINITY,
                                        .type = RT_SUPERVISOR};
    for (size_t i = 0; i < gw__nlisteners; i++)
        if (gw__listeners[i].admin)
            admin = &gw__listeners[i];
    if (admin)
        specs[k++] = (struct rt_child_spec){.id = "admin",
                                            .start = listeners_start,
                                            .arg = &admin,
                                            .arg_size = sizeof admin,
                                            .restart = RT_PERMANENT,
                                            .shutdown = RT_SHUTDOWN_INFINITY,
                                            .type = RT_SUPERVISOR};
    /* After the listeners, so that its failures (beyond its own restarts)
     * never take them down: while it is away a redis-mode rate limit finds
     * no client and applies its on_redis_error, as when Redis is down. */
    if (gw.cfg->policies.redis.enabled)
        specs[k++] = (struct rt_child_spec){.id = "redis_sup",
                                            .start = gw_redis_sup_start,
                                            .arg = &gw.cfg->policies.redis,
                                            .restart = RT_PERMANENT,
                                            .shutdown = RT_SHUTDOWN_INFINITY,
                                            .type = RT_SUPERVISOR};
    /* After the listeners, and only with a TLS listener: it only reads the listeners'
     * files and swaps their certificate sets, and its restart (which keeps
     * its records) must not take the listeners down with it. */
    bool tls = false;
    for (size_t i = 0; i < gw.cfg->nlisteners; i++)
        tls = tls || gw.cfg->listeners[i].tls.enabled;
    if (tls)
        specs[k++] = (struct rt_child_spec){.id = "tls_reloader",
                                            .start = gw_tls_reloader_start,
                                            .restart = RT_PERMANENT,
                                            .shutdown = 5000};
    /* After everything it reads: it only reads counters, and its own
     * restarts take nothing down. */
    specs[k++] = (struct rt_child_spec){
        .id = "gw_sampler", .start = gw_sampler_start, .restart = RT_PERMANENT, .shutdown = 1000};
    flags->strategy = RT_ONE_FOR_ONE; /* independent children: see the top of the file */
    flags->intensity = TOP_INTENSITY;
    flags->period_s = TOP_PERIOD_S;
    return rt_sup_init_children(init, specs, k);
}

/* The root process: starts tandem_sup, reports to the main thread, then
 * waits to be told to stop it. */
enum { ROOT_STOP = 1 };
static pthread_mutex_t root_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t root_cond = PTHREAD_COND_INITIALIZER;
static int root_state; /* 0 starting, 1 up, -1 failed */
static rt_atom root_reason;
/* Set by the root before it raises SIGTERM when tandem_sup has exited on
 * its own: the main thread then exits 1 instead of draining. Seq_cst: read
 * after sigtimedwait returns, written before kill(); the signal orders
 * nothing by itself. */
static _Atomic int root_lost;

static void root_report(int state, rt_atom reason)
{
    pthread_mutex_lock(&root_lock);
    root_state = state;
    root_reason = reason;
    pthread_cond_broadcast(&root_cond);
    pthread_mutex_unlock(&root_lock);
}

static void root_main(void *arg)
{
    (void)arg;
    rt_trap_exit(true);
    rt_pid sup;
    rt_atom reason = RT_UNDEFINED;
    struct rt_start_opts o = {.name = "tandem_sup", .initial_call = "tandem_sup"};
    int rc = rt_sup_start_link(tandem_sup_init, NULL, &o, &sup, &reason);
    if (rc != 0) {
        gw.sup = 0; /* its children, the admin listener among them, are gone */
        root_report(-1, reason);
        return;
    }
    rt_ref mon = rt_monitor(sup);
    root_report(1, RT_NORMAL);
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        if (m->type == ROOT_STOP) {
            rt_msg_free(m);
            rt_exit_signal(sup, RT_SHUTDOWN); /* from the parent: ordered shutdown */
            struct rt_msg *d = rt_receive_ref(mon, 60000);
            rt_msg_free(d);
            return;
        }
        if (m->type == RT_MSG_DOWN && m->ref == mon) {
            rt_atom why = (rt_atom)m->u64; /* read before the message is freed */
            rt_msg_free(m);
            /* The one line that says why the gateway stops. `shutdown` is
             * the reason a supervisor gives when its intensity is
             * exceeded; anything else is a kill from outside. */
            rt_log(
                RT_LOG_ERROR,
                "tandem_sup exited: %s%s; nothing is left serving, exiting with status 1 so "
                "that the service manager restarts the gateway",
                rt_atom_name(why),
                why == RT_SHUTDOWN
                    ? " (more than " TEXT(TOP_INTENSITY) " restarts of its children within " TEXT(
                          TOP_PERIOD_S) " s)"
                    : "");
            /* The start state stays "up": the tree did start, and the main
             * thread may not have seen that yet (it would then report a
             * failed start). */
            atomic_store(&root_lost, 1);
            kill(getpid(), SIGTERM);
            return;
        }
        rt_msg_free(m);
    }
}

static int refuse_without_token(const struct gw_config *cfg)
{
    fprintf(stderr,
            "tandem: refusing to start: the admin API would listen on %s, which is not a "
            "loopback address, and no bearer token is set: put one in the environment "
            "variable %s (admin.token_env)\n",
            cfg->admin.address.text,
            cfg->admin.token_env ? cfg->admin.token_env : "named by admin.token_env");
    return -EPERM;
}

/* A token_env naming an unset or empty variable is refused even on
 * loopback: running without the token the configuration asks for would
 * leave the admin API open while the operator believes it closed. */
static int admin_token_check(const struct gw_config *cfg)
{
    if (!cfg->admin.enabled)
        return 0;
    const char *tok = cfg->admin.token_env ? getenv(cfg->admin.token_env) : NULL;
    if (cfg->admin.token_env && (!tok || !*tok)) {
        fprintf(stderr,
                "tandem: refusing to start: environment variable %s (admin.token_env) is %s; "
                "set it to the admin API's bearer token, or remove token_env to run the admin "
                "API on loopback without a token\n",
                cfg->admin.token_env, tok ? "empty" : "not set");
        return -EPERM;
    }
    if (!cfg->admin.loopback && !tok)
        return refuse_without_token(cfg);
    gw.admin_token = tok;
    return 0;
}
/* Connections open at the peak of a burst worth giving memory back after
 * (a few MiB of buffers and stacks). */
#define GIVE_BACK_MIN_PEAK 64

/* Gives the memory of a burst of connections back to the system once it has
 * passed: when the connections open have fallen to half their peak since
 * the last time (a peak of at least GIVE_BACK_MIN_PEAK). Blocks freed by
 * their processes stay in the allocator's arenas (one per scheduler thread,
 * each fragmented by the connections it served), resident and unused, until
 * malloc_trim returns their free pages. The main thread calls it: it runs
 * no process, so the walk through the arenas holds up a scheduler only for
 * as long as it holds that scheduler's arena. Under steady load nothing is
 * trimmed: the memory would be taken again at once. */
static void give_back(size_t *peak)
{
    size_t now = (size_t)gw__connections_open();
    if (now >= *peak) {
        *peak = now;
        return;
    }
    if (*peak < GIVE_BACK_MIN_PEAK || now > *peak / 2)
        return;
    malloc_trim(0);
    *peak = now;
}

/* Fixes glibc malloc's mmap and trim thresholds at their initial values
 * (128 KiB each), unless the environment sets them (MALLOC_MMAP_THRESHOLD_,
 * MALLOC_TRIM_THRESHOLD_, or the same in GLIBC_TUNABLES). Left dynamic,
 * each free of a mapped block larger than the mmap threshold (up to
 * 32 MiB: a route table, an admin answer, a buffered body) raises that
 * threshold to the block's size and the trim threshold to twice it, for
 * the life of the process. Blocks that size then come from the arenas,
 * zeroed there by calloc, and up to twice it of freed memory can stay
 * resident at the top of each scheduler thread's arena: malloc_trim trims
 * the top of the main arena only, and another arena's top is trimmed when
 * a free there coalesces at least 64 KiB and the top is past the trim
 * threshold. Fixed, large blocks are mapped and unmapped whole. On a
 * request's path only a buffered body takes a block that large. */
static bool tunable_set(const char *name)
{
    const char *t = getenv("GLIBC_TUNABLES");
    return t && strstr(t, name);
}

static void malloc_thresholds_fix(void)
{
    if (!getenv("MALLOC_MMAP_THRESHOLD_") && !tunable_set("glibc.malloc.mmap_threshold"))
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    if (!getenv("MALLOC_TRIM_THRESHOLD_") && !tunable_set("glibc.malloc.trim_threshold"))
        mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

int gw_run(struct gw_config *cfg)
{
    memset(&gw, 0, sizeof gw);
    malloc_thresholds_fix();
    gw.cfg = cfg;
    gw.start_ms = rt_now_ms();
    int code = 1;
    if (admin_token_check(cfg) < 0)
        return 1;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread started later inherits it */
    signal(SIGPIPE, SIG_IGN);

    /* Before any socket: the limit decides the reserve, and the spare
     * descriptor should take a low number. */
    int fr = gw__fds_init();
    if (fr < 0) {
        fprintf(stderr, "tandem: file descriptors: %s\n", strerror(-fr));
        goto out_listeners;
    }
    /* Before the listeners load their certificates (tls/reload.c). */
    gw_tls_reload_snapshot(cfg);
    int lo = gw__listeners_open();
    gw__upgrade_close_unclaimed();
    if (lo < 0)
        goto out_listeners;
    /* The configuration decided loopback from name resolution; the bound
     * socket has the last word. */
    if (cfg->admin.enabled && !gw.admin_site.loopback && !gw.admin_token) {
        refuse_without_token(cfg);
        goto out_listeners;
    }
    if (gw__upstreams_init() < 0)
        goto out_listeners;
    if (route_holder_new(&gw.routes) < 0 || gw_metrics_init() < 0)
        goto out_listeners;
    /* Redis is reported as configured (not yet connected) from the start:
     * its client starts after the listeners, which may serve meanwhile. */
    if (cfg->policies.redis.enabled)
        gw_metrics_redis_configured(cfg->policies.redis.address.text);

    gw_admin_upgrade_fn = gw__upgrade_request;
    gw__preread_budget_set(cfg->body_buffer_bytes);
    gw__reports_open();
    rt_set_log_handler(gw__report, NULL);
    rt_set_crash_handler(gw__crash_report, NULL);
    rt_set_supervisor_report_handler(gw_events_supervisor_report, NULL);
    rt_set_fatal_handler(gw__fatal_report, NULL);
    struct rt_config rc;
    rt_config_default(&rc);
    rc.schedulers = cfg->schedulers;
    if (rt_start(&rc) < 0) {
        fprintf(stderr, "tandem: cannot start the runtime\n");
        goto out_listeners;
    }
    if (gw__kinds_register() < 0) {
        fprintf(stderr, "tandem: cannot register the process kinds\n");
        goto out_runtime;
    }
    rt_pid root;
    struct rt_spawn_opts ro = {.initial_call = "tandem:root"};
    if (rt_spawn(root_main, NULL, &ro, &root) < 0)
        goto out_runtime;
    pthread_mutex_lock(&root_lock);
    while (root_state == 0)
        pthread_cond_wait(&root_cond, &root_lock);
    int state = root_state;
    pthread_mutex_unlock(&root_lock);
    if (state < 0) {
        fprintf(stderr, "tandem: the supervision tree did not start: %s\n",
                rt_atom_name(root_reason));
        goto out_runtime;
    }
    atomic_store(&gw.ready, 1);
    /* Accepting on every listener: the gateway that started this one (a
     * binary upgrade) may stop. */
    gw__upgrade_notify("READY=1");
    gw__upgrade_report(NULL);
    gw__fds_report(cfg);
    for (size_t i = 0; i < cfg->nlisteners; i++)
        rt_log(RT_LOG_INFO, "tandem %s: listener %s on %s", TANDEM_VERSION, cfg->listeners[i].name,
               cfg->listeners[i].address.text);
    if (cfg->admin.enabled)
        rt_log(RT_LOG_INFO, "admin API on %s%s", cfg->admin.address.text,
               gw.admin_token ? " (bearer token required)" : "");

    size_t peak = 0;
    bool handover = false;
    for (;;) {
        /* Between signals, each second: memory back after a burst. */
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig < 0) {
            give_back(&peak);
            continue;
        }
        if (sig == SIGHUP) {
            gw_router_reload_async("signal");
            gw_tls_reload_async("signal");
            continue;
        }
        /* SIGUSR2: a binary upgrade (upgrade.c). Refused or failed, this
         * gateway keeps serving. */
        if (sig == SIGUSR2) {
            handover = gw__upgrade_run();
            if (!handover)
                continue;
        }
        break;
    }
    if (atomic_load(&root_lost)) {
        /* No listener, no connection left: nothing to drain. */
        rt_join(root, 65000, NULL);
        goto out_runtime;
    }

    atomic_store(&gw.ready, 0);
    uint64_t (*open_now)(void) = gw__connections_open;
    if (handover) {
        /* The new gateway accepts on the same sockets: stop taking from
         * them, and let every connection, the admin API's too (the one
         * that asked for this upgrade is waiting for its answer), finish
         * its next request. */
        rt_log(RT_LOG_INFO, "draining after the upgrade: every connection closes after its "
                            "next request");
        atomic_store(&gw.draining, 1);
        gw__listeners_handover();
        open_now = gw__connections_open_all;
    } else {
        rt_log(RT_LOG_INFO, "draining: no new connections; finishing requests in flight");
        gw__upgrade_notify("STOPPING=1");
        atomic_store(&gw.draining, 1);
        gw__listeners_drain();
    }
    uint64_t end = rt_now_ms() + cfg->drain_timeout_ms;
    while (open_now() > 0 && rt_now_ms() < end) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (open_now() > 0)
        rt_log(RT_LOG_WARNING, "drain timeout: closing %llu connections still open",
               (unsigned long long)open_now());
    rt_send(root, rt_msg_new(ROOT_STOP, 0));
    rt_join(root, 65000, NULL);
    code = 0;
out_runtime:
    rt_stop();
out_listeners:
    gw__reports_close();
    gw__listeners_close();
    gw__fds_done();
    gw__upstreams_done();
    gw_metrics_done();
    route_holder_free(gw.routes);
    free(gw.listener_stats);
    gw.routes = NULL;
    return code;
}
