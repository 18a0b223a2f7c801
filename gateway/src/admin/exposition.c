/*
 * exposition.c: the Prometheus text of GET /metrics, rendered from what
 * the counters (metrics.c), the upstream pools, the router, the event
 * manager, the TLS module, the policies' denial counters (policy/stats.c)
 * and the runtime report as plain structs and numbers. Runs in
 * the admin request process; the only allocation is the answer's buffer,
 * which grows as needed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_int.h"
#include "gw/events.h"
#include "gw/gateway.h"
#include "gw/metrics.h"
#include "gw/router.h"
#include "gw/upstream.h"
#include "policy/stats.h"
#include "rt/rt.h"
#include "tls/tls.h"
#include "workflow/journal.h"
#include "workflow/workflow.h"

/* The le labels of the latency buckets (gw/metrics.h lists their bounds). */
static const char *const bucket_le[GW_METRICS_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",  "0.5",    "1",     "2.5",  "5",     "10",
};

struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value with \, " and newline escaped (Prometheus text format). */
static void put_label(struct buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            put(b, "\\\\");
        else if (*v == '"')
            put(b, "\\\"");
        else if (*v == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *v);
    }
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_seconds(struct buf *b, uint64_t us)
{
    put(b, "%llu.%06llu", (unsigned long long)(us / 1000000), (unsigned long long)(us % 1000000));
}

/* One histogram series, {label="name"}: the cumulative buckets (buckets[] are
 * per bucket, the last +Inf), _sum in seconds and _count. */
static void put_histogram(struct buf *b, const char *metric, const char *label, const char *name,
                          const uint64_t *buckets, uint64_t sum_us)
{
    uint64_t cum = 0;
    for (size_t k = 0; k <= GW_METRICS_BUCKETS; k++) {
        cum += buckets[k];
        put(b, "%s_bucket{%s=\"", metric, label);
        put_label(b, name);
        put(b, "\",le=\"%s\"} %llu\n", k < GW_METRICS_BUCKETS ? bucket_le[k] : "+Inf",
            (unsigned long long)cum);
    }
    put(b, "%s_sum{%s=\"", metric, label);
    put_label(b, name);
    put(b, "\"} ");
    put_seconds(b, sum_us);
    put(b, "\n%s_count{%s=\"", metric, label);
    put_label(b, name);
    put(b, "\"} %llu\n", (unsigned long long)cum);
}

static void render_requests(struct buf *b)
{
    static const char *const classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    struct gw_metrics_route s;
    family(b, "tandem_requests_total", "counter", "Requests answered, by route and status class.");
    for (size_t pos = 0; gw_metrics_route_next(&pos, &s);) {
        for (int c = 0; c < 6; c++) {
            if (!s.by_class[c])
                continue;
            put(b, "tandem_requests_total{route=\"");
            put_label(b, s.name);
            put(b, "\",class=\"%s\"} %llu\n", classes[c], (unsigned long long)s.by_class[c]);
        }
    }
    uint64_t k[GW_METRICS_KILLS];
    gw_metrics_killed_read(k);
    family(b, "tandem_requests_killed_total", "counter",
           "Request processes ended by one of their caps (a route's or listener's limits).");
    for (int i = 0; i < GW_METRICS_KILLS; i++)
        put(b, "tandem_requests_killed_total{reason=\"%s\"} %llu\n", gw_metrics_killed_names[i],
            (unsigned long long)k[i]);
    family(b, "tandem_request_duration_seconds", "histogram",
           "Request duration as the gateway measured it, by route.");
    for (size_t pos = 0; gw_metrics_route_next(&pos, &s);)
        put_histogram(b, "tandem_request_duration_seconds", "route", s.name, s.buckets, s.sum_us);
}

static void render_upstreams(struct buf *b)
{
    family(b, "tandem_upstream_connect_errors_total", "counter",
           "Upstream connect failures and timeouts, by upstream and target.");
    struct gw_metrics_upstream e;
    for (size_t pos = 0; gw_metrics_upstream_next(&pos, &e);) {
        put(b, "tandem_upstream_connect_errors_total{upstream=\"");
        put_label(b, e.upstream);
        put(b, "\",target=\"");
        put_label(b, e.target);
        put(b, "\"} %llu\n", (unsigned long long)e.errors);
    }

    /* Health per target, from the upstream pools' own description. */
    struct gw_upstreams_desc *d = NULL;
    if (gw_upstreams_describe(&d) < 0)
        return;
    family(b, "tandem_upstream_target_healthy", "gauge",
           "1 when the target is taking traffic, 0 when it is ejected or failing checks.");
    for (size_t i = 0; i < d->n; i++) {
        const struct gw_upstream_desc *u = &d->ups[i];
        for (size_t j = 0; j < u->ntargets; j++) {
            put(b, "tandem_upstream_target_healthy{upstream=\"");
            put_label(b, u->name);
            put(b, "\",target=\"");
            put_label(b, u->targets[j].address);
            put(b, "\"} %d\n", u->targets[j].healthy ? 1 : 0);
        }
    }
    family(b, "tandem_upstream_connections", "gauge",
           "Pooled upstream connections by state (active: checked out; idle: kept alive).");
    for (size_t i = 0; i < d->n; i++) {
        const struct gw_upstream_desc *u = &d->ups[i];
        for (size_t j = 0; j < u->ntargets; j++) {
            const struct gw_target_desc *t = &u->targets[j];
            const unsigned long long n[2] = {t->active, t->idle};
            static const char *const states[2] = {"active", "idle"};
            for (int k = 0; k < 2; k++) {
                put(b, "tandem_upstream_connections{upstream=\"");
                put_label(b, u->name);
                put(b, "\",target=\"");
                put_label(b, t->address);
                put(b, "\",state=\"%s\"} %llu\n", states[k], n[k]);
            }
        }
    }
    gw_upstreams_desc_free(d);
}

/* Instances per definition and outcome, step latency per definition (both
 * recorded in metrics.c), the service's gauges and the journal's commits. */
static void render_workflows(struct buf *b)
{
    static const char *const events[GW_METRICS_WF_EVENTS] = {"started", "completed", "compensated",
                                                             "failed"};
    struct gw_metrics_workflow w;
    family(b, "tandem_workflows_total", "counter",
           "Workflow instances started, and ended completed, compensated or failed, by "
           "definition.");
    for (size_t pos = 0; gw_metrics_workflow_next(&pos, &w);) {
        for (int e = 0; e < GW_METRICS_WF_EVENTS; e++) {
            put(b, "tandem_workflows_total{workflow=\"");
            put_label(b, w.name);
            put(b, "\",outcome=\"%s\"} %llu\n", events[e], (unsigned long long)w.events[e]);
        }
    }
    family(b, "tandem_workflow_step_duration_seconds", "histogram",
           "Workflow step (and compensation) request latency, by definition.");
    for (size_t pos = 0; gw_metrics_workflow_next(&pos, &w);)
        put_histogram(b, "tandem_workflow_step_duration_seconds", "workflow", w.name, w.buckets,
                      w.sum_us);
    struct gw_wf_stats ws = {0};
    gw_workflow_stats(&ws);
    family(b, "tandem_workflows_running", "gauge", "Workflow instances live now.");
    put(b, "tandem_workflows_running %llu\n", (unsigned long long)ws.running);
    family(b, "tandem_workflows_recovered_total", "counter",
           "Unfinished workflow instances restarted from the journal.");
    put(b, "tandem_workflows_recovered_total %llu\n", (unsigned long long)ws.recovered);
    struct wf_journal_stats js = {0};
    wf_journal_stats(&js);
    family(b, "tandem_workflow_journal_commit_duration_seconds", "summary",
           "Journal commits (one transaction, one fsync) and their total latency.");
    put(b, "tandem_workflow_journal_commit_duration_seconds_sum ");
    put_seconds(b, js.commit_us_sum);
    put(b, "\ntandem_workflow_journal_commit_duration_seconds_count %llu\n",
        (unsigned long long)js.commits);
    family(b, "tandem_workflow_journal_batch_size", "summary",
           "Journal writes per commit (group commit): writes committed over commits.");
    put(b, "tandem_workflow_journal_batch_size_sum %llu\n", (unsigned long long)js.writes);
    put(b, "tandem_workflow_journal_batch_size_count %llu\n", (unsigned long long)js.commits);
    family(b, "tandem_workflow_journal_batch_size_max", "gauge",
           "The most writes one journal commit has carried.");
    put(b, "tandem_workflow_journal_batch_size_max %llu\n", (unsigned long long)js.max_batch);
    family(b, "tandem_workflow_journal_bytes_total", "counter",
           "Bytes of journal records written.");
    put(b, "tandem_workflow_journal_bytes_total %llu\n", (unsigned long long)js.bytes);
}

/* Denials per policy and reason (policy/stats.c): only the pairs counted
 * at least once, so a scrape grows with what was refused, never with the
 * size of the policy set; both labels are bounded there. */
static void render_policies(struct buf *b)
{
    family(b, "tandem_policy_denials_total", "counter",
           "Requests a policy refused, by policy and reason.");
    struct gw_pol_denials d;
    for (size_t pos = 0; gw_pol_denials_next(&pos, &d);) {
        for (int r = 0; r < GW_POL_DENIAL_REASONS; r++) {
            if (!d.n[r])
                continue;
            put(b, "tandem_policy_denials_total{policy=\"");
            put_label(b, d.name);
            put(b, "\",reason=\"%s\"} %llu\n", gw_pol_denial_name((enum gw_pol_denial)r),
                (unsigned long long)d.n[r]);
        }
    }
}

static void render_runtime(struct buf *b)
{
    struct rt_system_info si;
    if (rt_system_info(&si) < 0)
        return;
    family(b, "tandem_processes", "gauge", "Live runtime processes.");
    put(b, "tandem_processes %zu\n", si.process_count);
    family(b, "tandem_process_limit", "gauge", "Most processes the runtime can hold.");
    put(b, "tandem_process_limit %zu\n", si.process_limit);
    family(b, "tandem_processes_spawned_total", "counter", "Processes started.");
    put(b, "tandem_processes_spawned_total %llu\n", (unsigned long long)si.spawned);
    family(b, "tandem_processes_exited_total", "counter", "Processes that exited.");
    put(b, "tandem_processes_exited_total %llu\n", (unsigned long long)si.exited);
    family(b, "tandem_scheduler_run_queue", "gauge", "Runnable processes queued per scheduler.");
    for (unsigned i = 0; i < si.schedulers && i < RT_MAX_SCHEDULERS; i++)
        put(b, "tandem_scheduler_run_queue{scheduler=\"%u\"} %zu\n", i, si.sched[i].run_queue);
    family(b, "tandem_scheduler_utilisation", "gauge",
           "Busy fraction of each scheduler over the last second (0..1).");
    for (unsigned i = 0; i < si.schedulers && i < RT_MAX_SCHEDULERS; i++)
        put(b, "tandem_scheduler_utilisation{scheduler=\"%u\"} %.4f\n", i, si.sched[i].utilisation);
    family(b, "tandem_memory_bytes", "gauge",
           "Memory: resident set of the gateway, and what the runtime accounts to processes.");
    put(b, "tandem_memory_bytes{kind=\"rss\"} %zu\n", si.memory_rss);
    put(b, "tandem_memory_bytes{kind=\"processes\"} %zu\n", si.memory_procs);
    family(b, "tandem_messages_live", "gauge", "Messages allocated and not yet freed.");
    put(b, "tandem_messages_live %llu\n", (unsigned long long)si.messages_live);
    family(b, "tandem_uptime_seconds", "gauge", "Seconds since the runtime started.");
    put(b, "tandem_uptime_seconds %.3f\n", (double)si.uptime_ms / 1000.0);
}

static void render_gateway(struct buf *b)
{
    struct gw_router_counts rc = {0};
    gw_router_counts(&rc);
    family(b, "tandem_route_reloads_total", "counter",
           "Route table reloads, by outcome (failed: refused, the old table kept serving).");
    put(b, "tandem_route_reloads_total{outcome=\"ok\"} %llu\n", (unsigned long long)rc.reloads_ok);
    put(b, "tandem_route_reloads_total{outcome=\"failed\"} %llu\n",
        (unsigned long long)rc.reloads_failed);
    uint64_t ev[GW_EVENT_TYPES];
    gw_events_counts(ev);
    family(b, "tandem_events_total", "counter",
           "Events of the gateway's event stream (gw_events), by type.");
    for (int t = GW_EVENT_ROUTES_RELOADED; t < GW_EVENT_TYPES; t++)
        put(b, "tandem_events_total{type=\"%s\"} %llu\n", gw_event_name((enum gw_event_type)t),
            (unsigned long long)ev[t]);
    family(b, "tandem_route_table_version", "gauge", "Version of the route table serving now.");
    put(b, "tandem_route_table_version %llu\n", (unsigned long long)gw__admin_route_version());
    family(b, "tandem_access_log_lines_dropped_total", "counter",
           "Access-log lines dropped: stdout not taking them, or failing.");
    put(b, "tandem_access_log_lines_dropped_total %llu\n",
        (unsigned long long)gw_metrics_access_log_dropped_total());
    family(b, "tandem_requests_in_flight", "gauge", "Requests being handled now.");
    /* relaxed: a gauge read on its own. */
    put(b, "tandem_requests_in_flight %llu\n",
        (unsigned long long)atomic_load_explicit(&gw.requests_in_flight, memory_order_relaxed));
    family(b, "tandem_connections", "gauge", "Open client connections, by listener.");
    for (size_t i = 0; gw.cfg && gw.listener_stats && i < gw.cfg->nlisteners; i++) {
        put(b, "tandem_connections{listener=\"");
        put_label(b, gw.cfg->listeners[i].name ? gw.cfg->listeners[i].name : "");
        put(b, "\"} %llu\n",
            (unsigned long long)atomic_load_explicit(&gw.listener_stats[i].connections,
                                                     memory_order_relaxed));
    }
    put(b, "tandem_connections{listener=\"admin\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&gw.admin_stats.connections,
                                                 memory_order_relaxed));
    family(b, "tandem_connections_accepted_total", "counter",
           "Client connections accepted, by listener.");
    for (size_t i = 0; gw.cfg && gw.listener_stats && i < gw.cfg->nlisteners; i++) {
        put(b, "tandem_connections_accepted_total{listener=\"");
        put_label(b, gw.cfg->listeners[i].name ? gw.cfg->listeners[i].name : "");
        put(b, "\"} %llu\n",
            (unsigned long long)atomic_load_explicit(&gw.listener_stats[i].accepted,
                                                     memory_order_relaxed));
    }
    put(b, "tandem_connections_accepted_total{listener=\"admin\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&gw.admin_stats.accepted, memory_order_relaxed));
    family(b, "tandem_connections_refused_total", "counter",
           "Client connections refused (503) over max_connections or the file descriptor "
           "reserve, by listener.");
    for (size_t i = 0; gw.cfg && gw.listener_stats && i < gw.cfg->nlisteners; i++) {
        put(b, "tandem_connections_refused_total{listener=\"");
        put_label(b, gw.cfg->listeners[i].name ? gw.cfg->listeners[i].name : "");
        put(b, "\"} %llu\n",
            (unsigned long long)atomic_load_explicit(&gw.listener_stats[i].refused,
                                                     memory_order_relaxed));
    }
    family(b, "tandem_ready", "gauge", "1 when routes are loaded and listeners accept.");
    put(b, "tandem_ready %d\n", atomic_load_explicit(&gw.ready, memory_order_relaxed) ? 1 : 0);
}

/* Handshakes and their failures (tls/stats.c), the certificates serving
 * now with the seconds left before each expires, and the reloads. */
static void render_tls(struct buf *b)
{
    struct gw_tls_desc *d = NULL;
    if (gw_tls_describe(&d) < 0) {
        b->oom = true;
        return;
    }
    static const char *const sides[2] = {"client", "server"};
    family(b, "tandem_tls_handshakes_total", "counter",
           "TLS handshakes completed, by side (server: on a listener; client: to an upstream) "
           "and whether a session was resumed.");
    for (int side = 1; side >= 0; side--)
        for (int res = 0; res < 2; res++)
            put(b, "tandem_tls_handshakes_total{side=\"%s\",resumed=\"%s\"} %llu\n", sides[side],
                res ? "true" : "false", (unsigned long long)d->handshakes[side][res]);
    family(b, "tandem_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by side and reason.");
    for (int side = 1; side >= 0; side--)
        for (int f = 0; f < GW_TLS_FAIL_KINDS; f++)
            put(b, "tandem_tls_handshake_failures_total{side=\"%s\",reason=\"%s\"} %llu\n",
                sides[side], gw_tls_fail_name((enum gw_tls_fail)f),
                (unsigned long long)d->failures[side][f]);
    /* Seconds left, not the expiry's timestamp: an alert is then a plain
     * threshold (< 14 days), and an expired certificate shows below 0. The
     * name is the first one the certificate is chosen for. */
    family(b, "tandem_tls_certificate_expiry_seconds", "gauge",
           "Seconds until each certificate a TLS listener serves expires (negative: expired), "
           "by listener, first name and SHA-256 fingerprint.");
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < d->n; i++) {
        const struct gw_tls_listener_desc *l = &d->listeners[i];
        for (size_t k = 0; k < l->ncerts; k++) {
            const struct gw_tls_cert_info *c = &l->certs[k];
            put(b, "tandem_tls_certificate_expiry_seconds{listener=\"");
            put_label(b, l->name ? l->name : "");
            put(b, "\",name=\"");
            put_label(b, c->nnames ? c->names[0] : c->subject);
            put(b, "\",fingerprint=\"%s\"} %lld\n", c->fingerprint,
                (long long)(c->not_after - now));
        }
    }
    family(b, "tandem_tls_reloads_total", "counter",
           "Certificate reloads of a TLS listener, by outcome (failed: refused, the certificates "
           "loaded before kept serving).");
    for (size_t i = 0; i < d->n; i++) {
        const struct gw_tls_listener_desc *l = &d->listeners[i];
        const unsigned long long n[2] = {l->reloads_ok, l->reloads_failed};
        static const char *const outcomes[2] = {"ok", "failed"};
        for (int k = 0; k < 2; k++) {
            put(b, "tandem_tls_reloads_total{listener=\"");
            put_label(b, l->name ? l->name : "");
            put(b, "\",outcome=\"%s\"} %llu\n", outcomes[k], n[k]);
        }
    }
    gw_tls_desc_free(d);
}

/* The policies' Redis client, when tandem.json configures one. */
static void render_redis(struct buf *b)
{
    struct gw_metrics_redis r;
    gw_metrics_redis_read(&r);
    if (!r.configured)
        return;
    family(b, "tandem_redis_up", "gauge",
           "1 when the connection to Redis (policies.redis) is up and ready.");
    put(b, "tandem_redis_up %d\n", r.up ? 1 : 0);
    family(b, "tandem_redis_round_trips_total", "counter", "Rate-limit calls Redis answered.");
    put(b, "tandem_redis_round_trips_total %llu\n", (unsigned long long)r.round_trips);
    family(b, "tandem_redis_errors_total", "counter",
           "Redis failures, by reason (unavailable, timeout, reply: calls that applied "
           "on_redis_error; connection: attempts that failed and connections lost).");
    for (int i = 0; i < GW_METRICS_REDIS_ERRORS; i++)
        put(b, "tandem_redis_errors_total{reason=\"%s\"} %llu\n", gw_metrics_redis_error_names[i],
            (unsigned long long)r.errors[i]);
}

int gw_metrics_render(char **out, size_t *len)
{
    struct buf b = {.cap = 16384};
    b.p = malloc(b.cap);
    if (!b.p)
        return -ENOMEM;
    b.p[0] = 0;
    render_requests(&b);
    render_upstreams(&b);
    render_gateway(&b);
    render_tls(&b);
    render_policies(&b);
    render_workflows(&b);
    render_redis(&b);
    render_runtime(&b);
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
