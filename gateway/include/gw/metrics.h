/*
 * metrics.h: counters and histograms for GET /metrics (Prometheus text).
 * Recording and reading are metrics.c's; the text is the admin API's.
 * Recording is lock-free and never blocks or allocates on the hot path;
 * cardinality is bounded (routes beyond GW_METRICS_MAX_ROUTES are counted
 * under route="_other").
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_METRICS_MAX_ROUTES 1024
/* Distinct (upstream, target) pairs counted apart; the rest under "_other". */
#define GW_METRICS_MAX_UPSTREAM_KEYS 1024
/* Latency buckets of tandem_request_duration_seconds (upper bounds, seconds):
 * 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10, then +Inf. */
#define GW_METRICS_BUCKETS 13
/* Route label of requests no route matched, and of the overflow series. */
#define GW_METRICS_NO_ROUTE "_none"
#define GW_METRICS_OVERFLOW "_other"

/* Main thread, before any recording. */
int gw_metrics_init(void);
void gw_metrics_done(void);

/* Any thread. One finished request: route name (NULL: no route matched),
 * status, duration in microseconds. */
void gw_metrics_request(const char *route, int status, uint64_t duration_us);
/* Caps that end a request process (request.c), in the order of the label
 * values gw_metrics_killed_names gives. */
enum gw_metrics_kill { GW_METRICS_KILL_MEMORY, GW_METRICS_KILL_TIME, GW_METRICS_KILLS };
extern const char *const gw_metrics_killed_names[GW_METRICS_KILLS];
/* Any thread. A request ended by one of its caps. */
void gw_metrics_request_killed(enum gw_metrics_kill why);
/* Any thread. The counts since start, by cap. */
void gw_metrics_killed_read(uint64_t out[GW_METRICS_KILLS]);
/* Any thread. An upstream connect failure or timeout. */
void gw_metrics_upstream_error(const char *upstream, const char *target);

/* Workflow definitions counted apart; the rest under "_other". */
#define GW_METRICS_MAX_WORKFLOWS 256

/* What happens to a workflow instance, counted per definition. */
enum gw_metrics_wf_event {
    GW_METRICS_WF_STARTED = 0, /* http.c, when a request starts one */
    GW_METRICS_WF_COMPLETED,   /* the instance, on entering each terminal state */
    GW_METRICS_WF_COMPENSATED,
    GW_METRICS_WF_FAILED,
    GW_METRICS_WF_EVENTS,
};

/* Any thread. One event of an instance of definition `def`. */
void gw_metrics_workflow(const char *def, enum gw_metrics_wf_event ev);
/* Any thread. One step's send and answer (or compensation), in
 * microseconds, for definition `def` (the latency buckets above). */
void gw_metrics_workflow_step(const char *def, uint64_t duration_us);

/* One definition's series as gw_metrics_workflow_next reads it. */
struct gw_metrics_workflow {
    const char *name; /* static storage, as for routes */
    uint64_t events[GW_METRICS_WF_EVENTS];
    uint64_t buckets[GW_METRICS_BUCKETS + 1]; /* step latency, per bucket; last: +Inf */
    uint64_t sum_us;
};

/* One route's series as gw_metrics_route_next reads it. */
struct gw_metrics_route {
    const char *name;     /* static storage, never renamed: valid while the gateway runs */
    uint64_t by_class[6]; /* [0]: other statuses, [1..5]: 1xx..5xx */
    uint64_t buckets[GW_METRICS_BUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
    uint64_t sum_us;
};
/* One (upstream, target) pair's connect errors. */
struct gw_metrics_upstream {
    const char *upstream, *target; /* static storage, as above */
    uint64_t errors;
};

/* Any thread, never blocks. The next series in use from *pos on (start with
 * *pos = 0; the overflow series come last): true with *out filled and *pos
 * advanced, false when there is none left. Each figure is read on its own
 * (relaxed), as a scrape expects. */
bool gw_metrics_route_next(size_t *pos, struct gw_metrics_route *out);
bool gw_metrics_upstream_next(size_t *pos, struct gw_metrics_upstream *out);
bool gw_metrics_workflow_next(size_t *pos, struct gw_metrics_workflow *out);

/* The policies' Redis client (gateway/src/policy/redis.c records; the
 * admin API shows it in /admin/system and /metrics). Failed calls by why
 * they failed (a fixed list: bounded labels). */
enum gw_metrics_redis_error {
    GW_METRICS_REDIS_UNAVAILABLE = 0, /* not connected (or too many in flight) */
    GW_METRICS_REDIS_TIMEOUT,         /* no answer within timeout_ms */
    GW_METRICS_REDIS_REPLY,           /* Redis answered with an error */
    GW_METRICS_REDIS_CONNECTION,      /* a connection attempt failed, or one was lost */
    GW_METRICS_REDIS_ERRORS,
};
/* The reason labels, in enum order. */
extern const char *const gw_metrics_redis_error_names[GW_METRICS_REDIS_ERRORS];
#define GW_METRICS_REDIS_ERROR_TEXT 160

struct gw_metrics_redis {
    bool configured;      /* the client runs (tandem.json "policies": {"redis": ...}) */
    bool up;              /* connected and ready */
    uint64_t round_trips; /* calls answered by Redis */
    uint64_t errors[GW_METRICS_REDIS_ERRORS];
    uint64_t connects;      /* connections made ready */
    uint64_t last_error_ms; /* wall clock (ms since the epoch) of the last error; 0: none */
    char last_error[GW_METRICS_REDIS_ERROR_TEXT];
    char address[320];
};

/* Any thread, never blocks for long (the error text takes a mutex no one
 * holds across a runtime call). */
void gw_metrics_redis_configured(const char *address); /* NULL: not configured */
void gw_metrics_redis_up(bool up);
void gw_metrics_redis_round_trip(void);
/* Counts one error of `kind`; a non-NULL `text` becomes the last error. */
void gw_metrics_redis_error(enum gw_metrics_redis_error kind, const char *text);
void gw_metrics_redis_read(struct gw_metrics_redis *out);

/* Access-log lines dropped (logger.c): beyond the logger's backlog (stdout
 * not draining), a write that failed, or left unwritten at shutdown with
 * stdout stuck. Any thread. */
void gw_metrics_access_log_dropped(uint64_t n);
uint64_t gw_metrics_access_log_dropped_total(void);

/* Process context (reads gw, calls gw_upstreams_describe and
 * gw_router_counts). The whole exposition (runtime figures included) as a
 * malloc'd text: admin/exposition.c. Returns 0 or -ENOMEM. */
int gw_metrics_render(char **out, size_t *len);

#endif
