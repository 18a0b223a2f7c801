/*
 * router_int.h: what the router's files share: the message types the router
 * gen_server understands and the directory watcher it starts.
 *
 * The router process (router.c) owns the route-table history and is the only
 * writer of gw.routes. The watcher (watcher.c) is a plain process linked to
 * the router; it only reads inotify events and casts reloads to its parent.
 */
#ifndef GW_ROUTER_INT_H
#define GW_ROUTER_INT_H

#include <stdint.h>

#include "gw/router.h"
#include "rt/rt.h"

/* Calls and casts (below RT_GS_TYPE_LIMIT); info messages the router sends
 * itself. */
enum {
    GW__ROUTER_RELOAD = 1, /* cast or call; payload: source text, NUL-terminated */
    GW__ROUTER_REPLACE,    /* call; payload: the route set's JSON text */
    GW__ROUTER_VALIDATE,   /* call; payload: the route set's JSON text */
    GW__ROUTER_ROLLBACK,   /* call; u64: the version */
    GW__ROUTER_STATUS,     /* call */
    GW__ROUTER_KEPT,       /* call; u64: the version */
    GW__ROUTER_REPLY,      /* reply: struct gw__router_reply */
    GW__ROUTER_RECLAIM,    /* info: timer, free retired tables */
    GW__ROUTER_REWATCH,    /* info: timer, restart a watcher that died */
};

/* A reply owns what it points at until the caller takes it; a reply that
 * is never delivered (the caller gave up and exited) frees it through the
 * message's destructor. */
struct gw__router_reply {
    int32_t rc;
    struct gw_router_outcome *outcome; /* reload, replace, validate, rollback */
    struct gw_router_status *status;   /* status */
    struct gw_router_kept *kept;       /* kept */
};

#define GW__ROUTER_SOURCE_MAX GW_ROUTER_SOURCE_MAX

/* Watcher timing: a burst of directory events is answered by one reload once
 * the directory has been quiet for QUIET_MS (CREATE_MS after a file was only
 * created, so that a writer still filling it can finish), and at most
 * BURST_MS after the burst's first event. While the directory is missing the
 * watcher looks for it again every REWATCH_MS. */
#define GW__WATCH_QUIET_MS 20
#define GW__WATCH_CREATE_MS 100
#define GW__WATCH_BURST_MS 200
#define GW__WATCH_REWATCH_MS 200

/* Process context (the router). Spawns the watcher of `dir` linked to the
 * caller; it casts GW__ROUTER_RELOAD ("inotify") to the caller. `dir` is
 * copied. An `optional` directory (workflows) that is missing is watched
 * for without a warning. Returns 0 with *out, or -errno (nothing
 * started). */
int gw__router_watcher_spawn(const char *dir, bool optional, rt_pid *out);

#endif
