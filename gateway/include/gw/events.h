/*
 * events.h: the gateway's own event stream, a gen_event manager registered
 * as "gw_events" (GW_EVENTS_NAME), first child of tandem_sup.
 *
 * The gateway notifies it of what changes in its running state: route
 * table reloads, upstream targets ejected and readmitted, listeners
 * started, processes that crashed and what supervisors did about it; and,
 * while anyone watches (gw_events_sample_watch), a sample of the system
 * once a second. Notifying is asynchronous and never blocks or fails the
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
    GW_EVENT_PROCESS_CRASHED,     /* struct gw_event_crash */
    GW_EVENT_SUPERVISOR,          /* struct gw_event_supervisor */
    GW_EVENT_SAMPLE,              /* struct gw_event_sample */
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

/* A process ended with a reason other than normal or shutdown: the
 * runtime's crash report (gw__crash_report), one event per crash. */
struct gw_event_crash {
    rt_pid pid;
    char name[64];         /* registered name, or "" */
    char initial_call[64]; /* or "" */
    char reason[128];
};

/* A supervisor's report (rt_set_supervisor_report_handler): `event` is
 * "child_terminated", "child_restarted", "start_error", "shutdown_error"
 * or "reached_max_restart_intensity"; pids are 0 and texts "" where they
 * do not apply (rt.h says which). */
struct gw_event_supervisor {
    rt_pid supervisor;
    char supervisor_name[64]; /* or "" */
    char event[32];
    char child[64]; /* the child's id */
    rt_pid pid;
    rt_pid new_pid;
    char reason[128]; /* "" for a restart the strategy made (no exit of its own) */
};

/* How often the sampler samples while a stream watches. */
#define GW_EVENTS_SAMPLE_INTERVAL_MS 1000

/* The system at one instant, sent by the sampler every
 * GW_EVENTS_SAMPLE_INTERVAL_MS while gw_events_sample_watch has watchers.
 * Rates are over the time since the previous sample (the first after the
 * sampler woke: since it woke). */
struct gw_event_sample {
    uint64_t t_ms;      /* wall clock, ms since the epoch */
    uint64_t uptime_ms; /* since the gateway started */
    bool ready;
    uint32_t schedulers; /* entries of sched used */
    struct {
        double utilisation; /* busy fraction over the last second, 0..1 */
        uint32_t run_queue;
    } sched[RT_MAX_SCHEDULERS];
    uint64_t processes, process_limit;
    uint64_t rss_bytes, processes_bytes;
    uint64_t requests_total; /* requests begun, every listener (gw.requests_total) */
    double requests_per_s;
    uint64_t errors_total; /* requests answered with a 5xx */
    double errors_per_s;
    uint64_t in_flight;
    uint64_t routes_version;
};

/* Any thread; never blocks. Sends an event of `type` with a copy of
 * `size` bytes at `payload` to the manager; dropped when it is not
 * running or out of memory. */
void gw_events_notify(enum gw_event_type type, const void *payload, size_t size);

/* Supervisor child start function (rt_child_start_fn shape): starts the
 * manager linked to the caller, registered as GW_EVENTS_NAME, with the
 * counting handler. */
int gw_events_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason);

/* Any thread; never blocks. The runtime's reports as events: the crash
 * handler (gw__crash_report) and the supervisor report handler call these. */
void gw_events_crash(const struct rt_crash_report *r);
void gw_events_supervisor_report(const struct rt_supervisor_report *r, void *ctx);

/* The sampler: a process registered as GW_SAMPLER_NAME (a child of
 * tandem_sup) that samples the system and notifies GW_EVENT_SAMPLE every
 * GW_EVENTS_SAMPLE_INTERVAL_MS while there are watchers, and otherwise
 * hibernates (no stack, no timer: it costs nothing while nobody looks).
 * Any thread; never blocks: a watcher calls gw_events_sample_watch(+1)
 * when it starts and (-1) when it stops. */
#define GW_SAMPLER_NAME "gw_sampler"
void gw_events_sample_watch(int delta);
/* Supervisor child start function (rt_child_start_fn shape). */
int gw_sampler_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason);

/* Any thread. Events seen by the counting handler since the gateway
 * started (they survive manager restarts), by type: out[type]. */
void gw_events_counts(uint64_t out[GW_EVENT_TYPES]);
/* "routes_reloaded", "target_ejected", "target_readmitted",
 * "listener_started", "process_crashed", "supervisor", "sample"; "unknown"
 * otherwise. */
const char *gw_event_name(enum gw_event_type type);

#endif
