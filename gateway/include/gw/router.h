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
int gw_router_replace(const char *text, size_t len, char **json); /* a whole route set as one file */
int gw_router_validate(const char *text, size_t len, char **json); /* checks, applies nothing */
int gw_router_rollback(uint64_t version, char **json);             /* -ENOENT: not in history */

/* Process context. GET /admin/routes: the current table (version, routes
 * with name, match, action, file:line), the versions kept, and the last
 * reload (time, source, outcome, errors), as a malloc'd JSON text. */
int gw_router_status(char **json);

/* Reload counters for metrics (any thread). */
struct gw_router_counts {
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    uint64_t version;
};
void gw_router_counts(struct gw_router_counts *out);

#endif
