/*
 * events.h: the gateway's own event stream, a gen_event manager registered
 * as "gw_events" (GW_EVENTS_NAME), first child of tandem_sup.
 *
 * The gateway notifies it of what changes in its running state: route
 * table reloads, upstream targets ejected and readmitted, listeners
 * started. Notifying is asynchronous and never blocks or fails the
 * notifier (an event sent while the manager is not running is dropped).
 * Handlers run in the manager process, one event at a time; the only one
 * attached by default counts events by type for /metrics
 * (tandem_events_total). Attach more with rt_gen_event_add_handler or
 * rt_gen_event_add_sup_handler on rt_whereis(GW_EVENTS_NAME).
 *
 * An event is an rt_msg whose type is an enum gw_event_type and whose
 * payload is the struct named there, copied (handlers read it during
 * handle_event and must not keep it). Texts are NUL-terminated, cut to
 * their field.
 */
#ifndef GW_EVENTS_H
#define GW_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt/rt.h"

#define GW_EVENTS_NAME "gw_events"

enum gw_event_type {
    GW_EVENT_ROUTES_RELOADED = 1, /* struct gw_event_routes */
    GW_EVENT_TARGET_EJECTED,      /* struct gw_event_target */
    GW_EVENT_TARGET_READMITTED,   /* struct gw_event_target */
    GW_EVENT_LISTENER_STARTED,    /* struct gw_event_listener */
    GW_EVENT_TYPES                /* one past the last */
};

/* A reload of the route table (from the directory, SIGHUP, the admin API,
 * a rollback, or the configuration's table at start). */
struct gw_event_routes {
    bool ok;          /* published; false: refused or failed, the old table serves on */
    uint64_t version; /* the version serving after it */
    uint64_t routes;  /* routes in the table published (refused: in the one serving) */
    char source[32];  /* "startup", "config", "signal", "inotify", "admin", "rollback", ... */
};

/* A target ejected from its upstream's rotation, or readmitted to it. */
struct gw_event_target {
    char upstream[129];
    char target[80];     /* the target's address */
    uint64_t ejected_ms; /* ejected: for how long; 0 until a health check passes */
    char reason[128];    /* ejected: the last error; readmitted: "" */
};

/* A listener started: one event per public listener when listeners_sup
 * starts, one for the admin listener when its supervisor starts, at
 * start-up and whenever tandem_sup restarts them. (A single listener
 * restarted inside listeners_sup is not announced.) */
struct gw_event_listener {
    char name[129];
    char address[136]; /* as configured */
    uint16_t port;     /* bound */
    bool admin;        /* the admin API's listener */
};

/* Any thread; never blocks. Sends an event of `type` with a copy of
 * `size` bytes at `payload` to the manager; dropped when it is not
 * running or out of memory. */
void gw_events_notify(enum gw_event_type type, const void *payload, size_t size);

/* Supervisor child start function (rt_child_start_fn shape): starts the
 * manager linked to the caller, registered as GW_EVENTS_NAME, with the
 * counting handler. */
int gw_events_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason);

/* Any thread. Events seen by the counting handler since the gateway
 * started (they survive manager restarts), by type: out[type]. */
void gw_events_counts(uint64_t out[GW_EVENT_TYPES]);
/* "routes_reloaded", "target_ejected", "target_readmitted",
 * "listener_started"; "unknown" otherwise. */
const char *gw_event_name(enum gw_event_type type);

#endif
