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

#include "rt/rt.h"

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

/* Process context (calls the router). Each returns 0 when the new table was
 * published, -EINVAL when it was refused (then *json describes the errors),
 * another -errno on failure. *json (malloc'd, caller frees; may be NULL on
 * -ENOMEM) is the JSON body the admin API answers with:
 *   {"outcome": "ok"|"error", "version": N, "routes": N,
 *    "errors": [{"file","line","column","path","message"}...]} */
int gw_router_reload(const char *source, char **json);
int gw_router_replace(const char *text, size_t len,
                      char **json); /* a whole route set as one file */
int gw_router_validate(const char *text, size_t len, char **json); /* checks, applies nothing */
int gw_router_rollback(uint64_t version, char **json);             /* -ENOENT: not in history */

/* Process context. GET /admin/routes: the current table (version, routes
 * with name, match, action, file:line), the versions kept, and the last
 * reload (time, source, outcome, errors), as a malloc'd JSON text. */
int gw_router_status(char **json);

/* Details of the calls above:
 *  - On -ENOENT (rollback) *json is an "error" outcome naming the version;
 *    on other failures (-ESRCH: no router, -ETIMEDOUT, -ENOMEM) *json is
 *    NULL.
 *  - In the outcome, "version" is the version serving after the call and
 *    "routes" the number of routes in the table published or validated (on a
 *    refusal: in the table still serving); "warnings" lists warnings in the
 *    shape of "errors". Texts given to replace/validate are labelled
 *    "<admin>" in diagnostics.
 *  - A table from replace serves until the next reload from the directory
 *    (a file change, SIGHUP, POST /admin/routes/reload) replaces it.
 *  - A rollback to the version already serving changes nothing; otherwise
 *    the kept table is published again under its own number and becomes
 *    the newest entry of the history.
 *  - gw_router_status answers
 *      {"version": N, "count": N, "files": N, "routes_dir": "...",
 *       "routes": [{"name", "match": {"host"?, "path"|"path_prefix",
 *                   "methods"?, "headers"?, "priority"?},
 *                   "upstream"|"respond": {"status"}, "strip_prefix"?,
 *                   "rewrite"?, "file", "line", "column"}...],
 *       "versions": [{"version", "routes", "source", "published_at",
 *                     "current"}...]                       newest first,
 *       "last_reload": null | {"time", "source", "outcome", "version",
 *                     "routes", "duration_ms", "errors", "warnings"},
 *       "reloads_ok": N, "reloads_failed": N,
 *       "retired": N}     replaced tables still held by requests in flight
 * Times are UTC, ISO 8601 with milliseconds. */

/* Reload counters for metrics (any thread). */
struct gw_router_counts {
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    uint64_t version;
};
void gw_router_counts(struct gw_router_counts *out);

#endif
