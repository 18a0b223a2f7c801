/*
 * router.h: the router, a gen_server registered as "router" that owns the
 * route table: it loads the routes directory, publishes each new table to
 * gw.routes with one atomic swap (route_holder_publish), keeps the last 10
 * published versions for rollback, and records the outcome of every reload.
 * A reload that fails validation changes nothing: the previous table keeps
 * serving; the errors are kept for GET /admin/routes and logged.
 *
 * Reload triggers: a change in the routes directory (a watcher process on
 * inotify, coalescing bursts, following editors' write-temp-then-rename),
 * SIGHUP (gw_router_reload_async from the main thread), and the admin API.
 */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jpos/diag.h"
#include "rt/rt.h"

struct route_table;

#define GW_ROUTER_NAME "router"
#define GW_ROUTER_HISTORY 10

/* Supervisor child start function (rt_child_start_fn shape): starts the
 * router linked to the caller, loads gw.cfg->routes_dir (the table already
 * compiled in gw.cfg->routes is published as version 1 if present), and
 * starts the directory watcher. */
int gw_router_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason);

/* Any thread, never blocks: asks the router to reload from its directory
 * (the outcome is logged and kept). `source` is static text: "signal",
 * "inotify", ... */
void gw_router_reload_async(const char *source);

/* Longest reload source label kept ("inotify", "signal", "admin", ...). */
#define GW_ROUTER_SOURCE_MAX 32

/* What a reload, replace, validate or rollback did. Rendering it (the
 * admin API's JSON) is the admin API's. */
struct gw_router_outcome {
    bool ok;
    uint64_t version; /* serving after the call */
    size_t routes;    /* in the table published or validated; on a refusal, in the one serving */
    /* Errors and warnings in the order found, at most JPOS_DIAGS_MAX
     * kept. Texts given to replace/validate are labelled "<admin>"; a
     * failure with no position is one error with file "" and line 0. */
    struct jpos_diags diags;
};

/* A reload as the router recorded it. */
struct gw_router_reload {
    struct gw_router_outcome outcome;
    char time[40]; /* when it started: UTC, RFC 3339 with milliseconds */
    char source[GW_ROUTER_SOURCE_MAX];
    double duration_ms;
};

/* One table kept for rollback. */
struct gw_router_version {
    uint64_t version;
    size_t routes;
    char source[GW_ROUTER_SOURCE_MAX];
    char published_at[40]; /* UTC, RFC 3339 with milliseconds */
};

/* The router's own state for GET /admin/routes. The table itself is read
 * from gw.routes (route_holder_acquire) by whoever shows it. */
struct gw_router_status {
    struct gw_router_version versions[GW_ROUTER_HISTORY]; /* newest first; [0] serves */
    size_t nversions;
    bool has_last_reload; /* false before the first */
    struct gw_router_reload last_reload;
    uint64_t reloads_ok, reloads_failed;
    size_t retired; /* replaced tables still held by requests in flight */
};

/* The deadline of every call to the router: calls that compile a table may
 * take long on a very large route set. Past it they return -ETIMEDOUT (the
 * router still carries the call out). */
#define GW_ROUTER_CALL_TIMEOUT_MS 60000

/* Process context (calls the router; waits up to GW_ROUTER_CALL_TIMEOUT_MS
 * for a large route set to compile). Each returns 0 when the new table was published
 * (validate: is valid), -EINVAL when it was refused, -ENOENT (rollback)
 * when the version is not kept, another -errno on failure. *out is the
 * caller's (free with gw_router_outcome_free); it is NULL when the router
 * could not be asked or did not answer (-ESRCH, -ETIMEDOUT, -ENOMEM).
 *  - A table from replace serves until the next reload from the directory
 *    (a file change, SIGHUP, POST /admin/routes/reload) replaces it.
 *  - A rollback to the version already serving changes nothing; otherwise
 *    the kept table is published again under its own number and becomes
 *    the newest entry of the history. */
int gw_router_reload(const char *source, struct gw_router_outcome **out);
int gw_router_replace(const char *text, size_t len,
                      struct gw_router_outcome **out); /* a whole route set as one file */
int gw_router_validate(const char *text, size_t len,
                       struct gw_router_outcome **out); /* checks, applies nothing */
int gw_router_rollback(uint64_t version, struct gw_router_outcome **out);
/* Accepts NULL. */
void gw_router_outcome_free(struct gw_router_outcome *o);

/* Process context. The router's history, last reload and counters; *out is
 * the caller's (gw_router_status_free). 0 or -errno (no answer). */
int gw_router_status(struct gw_router_status **out);
/* Accepts NULL. */
void gw_router_status_free(struct gw_router_status *s);

/* One version of the history with its table, for GET
 * /admin/routes/versions/{N}. */
struct gw_router_kept {
    struct gw_router_version meta;
    bool current;              /* the version serving now */
    struct route_table *table; /* an owner reference, dropped by gw_router_kept_free */
};

/* Process context (calls the router). The kept version `version` with its
 * table: 0 and *out (the caller's: gw_router_kept_free), -ENOENT when the
 * history does not hold it, another -errno when the router did not answer.
 * The table stays valid while *out is held, even once the version has left
 * the history. */
int gw_router_kept_get(uint64_t version, struct gw_router_kept **out);
/* Accepts NULL. */
void gw_router_kept_free(struct gw_router_kept *k);

/* Reload counters for metrics (any thread). */
struct gw_router_counts {
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    uint64_t version;
};
void gw_router_counts(struct gw_router_counts *out);

#endif
