/*
 * events.c: the gateway's event manager (see gw/events.h).
 *
 * The manager is a plain gen_event; this file owns only its start, the
 * notification helper and the counting handler. The counters are static
 * atomics rather than handler state so that they survive a restarted
 * manager, as the metrics they feed are counters since start.
 */
#include "gw/events.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "rt/gen_event.h"

static _Atomic uint64_t counts[GW_EVENT_TYPES];

static const char *const names[GW_EVENT_TYPES] = {
    [GW_EVENT_ROUTES_RELOADED] = "routes_reloaded",
    [GW_EVENT_TARGET_EJECTED] = "target_ejected",
    [GW_EVENT_TARGET_READMITTED] = "target_readmitted",
    [GW_EVENT_LISTENER_STARTED] = "listener_started",
    [GW_EVENT_PROCESS_CRASHED] = "process_crashed",
    [GW_EVENT_SUPERVISOR] = "supervisor",
    [GW_EVENT_SAMPLE] = "sample",
};

const char *gw_event_name(enum gw_event_type type)
{
    if ((unsigned)type >= GW_EVENT_TYPES || !names[type])
        return "unknown";
    return names[type];
}

void gw_events_notify(enum gw_event_type type, const void *payload, size_t size)
{
    struct rt_msg *m = rt_msg_copy((uint32_t)type, payload, size);
    if (m)
        rt_gen_event_notify_name(GW_EVENTS_NAME, m);
}

/* Copies a report's text into a field, cut to it. */
static void put(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

void gw_events_crash(const struct rt_crash_report *r)
{
    struct gw_event_crash e = {.pid = r->pid};
    put(e.name, sizeof e.name, r->name);
    put(e.initial_call, sizeof e.initial_call, r->initial_call);
    put(e.reason, sizeof e.reason, rt_atom_name(r->reason));
    gw_events_notify(GW_EVENT_PROCESS_CRASHED, &e, sizeof e);
}

void gw_events_supervisor_report(const struct rt_supervisor_report *r, void *ctx)
{
    (void)ctx;
    struct gw_event_supervisor e = {
        .supervisor = r->supervisor, .pid = r->pid, .new_pid = r->new_pid};
    put(e.supervisor_name, sizeof e.supervisor_name, r->supervisor_name);
    put(e.event, sizeof e.event, r->event);
    put(e.child, sizeof e.child, r->child);
    /* A restart the strategy made has no exit of its own to name. */
    bool reason = strcmp(r->event, "child_restarted") != 0 || r->pid;
    put(e.reason, sizeof e.reason, reason ? rt_atom_name(r->reason) : "");
    gw_events_notify(GW_EVENT_SUPERVISOR, &e, sizeof e);
}

void gw_events_counts(uint64_t out[GW_EVENT_TYPES])
{
    /* Relaxed: independent counters, read without ordering. */
    for (int i = 0; i < GW_EVENT_TYPES; i++)
        out[i] = atomic_load_explicit(&counts[i], memory_order_relaxed);
}

/* ---- the counting handler ----------------------------------------------------- */

static void count_init(const void *arg, size_t arg_size, const struct rt_ge_swap *swap,
                       struct rt_ge_result *r)
{
    (void)arg;
    (void)arg_size;
    (void)swap;
    (void)r;
}

static void count_event(const struct rt_msg *event, void *state, struct rt_ge_result *r)
{
    (void)state;
    (void)r;
    if (event->type < GW_EVENT_TYPES)
        atomic_fetch_add_explicit(&counts[event->type], 1, memory_order_relaxed);
}

/* The EXITs of processes that added handlers of their own (an event
 * stream's) reach every handler: none of this one's business. */
static void count_info(const struct rt_msg *msg, void *state, struct rt_ge_result *r)
{
    (void)msg;
    (void)state;
    (void)r;
}

static const struct rt_ge_handler_ops count_ops = {
    .name = "gw_event_counter",
    .init = count_init,
    .handle_event = count_event,
    .handle_info = count_info,
};

int gw_events_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_start_opts o = {.name = GW_EVENTS_NAME, .initial_call = "gw_events"};
    rt_pid pid = 0;
    int rc = rt_gen_event_start_link(&o, &pid, reason);
    if (rc != 0)
        return rc;
    struct rt_ge_handler h = {.ops = &count_ops};
    rc = rt_gen_event_add_handler(pid, h, NULL, 0, reason);
    if (rc < 0) {
        rt_gen_event_stop(pid, RT_SHUTDOWN, 5000, NULL);
        return -ECHILD;
    }
    *out = pid;
    return 0;
}
