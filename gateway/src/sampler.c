/*
 * sampler.c: the sampler (gw/events.h), a process registered as
 * GW_SAMPLER_NAME under tandem_sup that notifies gw_events of a
 * GW_EVENT_SAMPLE every GW_EVENTS_SAMPLE_INTERVAL_MS while something
 * watches (an open /admin/events stream).
 *
 * Watchers are one atomic count. The first watcher wakes the sampler with a
 * message; the sampler looks at the count before each sample and
 * hibernates (no stack, no timer) when it is 0, so a gateway nobody watches
 * pays nothing for it. A wake-up that finds the sampler awake is just
 * dropped; a watcher that comes while the sampler is away (restarting) is
 * seen by the new one, which looks at the count when it starts. The figures
 * between two samples (for the rates) live in the process's own memory,
 * which hibernation keeps.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "gw/events.h"
#include "gw/metrics.h"
#include "gw_int.h"

enum { SAMPLER_WAKE = 1 };

/* Watchers now. Relaxed: a count, published with no data; the wake-up
 * message orders what matters (the sampler reads the count after it). */
static _Atomic long watchers;

void gw_events_sample_watch(int delta)
{
    long before = atomic_fetch_add_explicit(&watchers, delta, memory_order_relaxed);
    if (delta > 0 && before == 0) {
        struct rt_msg *m = rt_msg_new(SAMPLER_WAKE, 0);
        if (m)
            rt_send_name(GW_SAMPLER_NAME, m); /* not running: the next one looks */
    }
}

/* What the rates are computed from: the previous sample's figures. */
struct sampler {
    uint64_t at_ms; /* monotonic */
    uint64_t requests, errors;
};

static uint64_t errors_total(void)
{
    struct gw_metrics_route r;
    uint64_t sum = 0;
    for (size_t pos = 0; gw_metrics_route_next(&pos, &r);)
        sum += r.by_class[5];
    return sum;
}

static void take(struct sampler *st, struct gw_event_sample *e)
{
    struct rt_system_info si;
    memset(e, 0, sizeof *e);
    if (rt_system_info(&si) == 0) {
        e->schedulers = si.schedulers < RT_MAX_SCHEDULERS ? si.schedulers : RT_MAX_SCHEDULERS;
        for (uint32_t i = 0; i < e->schedulers; i++) {
            e->sched[i].utilisation = si.sched[i].utilisation;
            e->sched[i].run_queue = (uint32_t)si.sched[i].run_queue;
        }
        e->processes = si.process_count;
        e->process_limit = si.process_limit;
        e->rss_bytes = si.memory_rss;
        e->processes_bytes = si.memory_procs;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->t_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t now = rt_now_ms();
    e->uptime_ms = gw.start_ms && now >= gw.start_ms ? now - gw.start_ms : si.uptime_ms;
    /* relaxed: flags and counters read on their own, as /admin/system does. */
    e->ready = atomic_load_explicit(&gw.ready, memory_order_relaxed) != 0;
    e->in_flight = atomic_load_explicit(&gw.requests_in_flight, memory_order_relaxed);
    e->requests_total = atomic_load_explicit(&gw.requests_total, memory_order_relaxed);
    e->errors_total = errors_total();
    e->routes_version = gw.routes ? route_holder_version(gw.routes) : 0;
    double secs = now > st->at_ms ? (double)(now - st->at_ms) / 1000.0 : 0;
    if (secs > 0) {
        e->requests_per_s = (double)(e->requests_total - st->requests) / secs;
        e->errors_per_s = (double)(e->errors_total - st->errors) / secs;
    }
    st->at_ms = now;
    st->requests = e->requests_total;
    st->errors = e->errors_total;
}

/* The figures the first rates after a wake-up are counted from. */
static void baseline(struct sampler *st)
{
    st->at_ms = rt_now_ms();
    st->requests = atomic_load_explicit(&gw.requests_total, memory_order_relaxed);
    st->errors = errors_total();
}

static void sampler_resume(void *arg);

/* Drops what came (wake-ups) until `deadline` (monotonic ms). */
static void wait_until(uint64_t deadline)
{
    for (;;) {
        uint64_t now = rt_now_ms();
        if (now >= deadline)
            return;
        rt_msg_free(rt_receive((int64_t)(deadline - now)));
    }
}

static void sampler_resume(void *arg)
{
    struct sampler *st = arg;
    struct rt_msg *m;
    while ((m = rt_receive(0)))
        rt_msg_free(m);
    baseline(st);
    uint64_t next = st->at_ms + GW_EVENTS_SAMPLE_INTERVAL_MS;
    for (;;) {
        wait_until(next);
        if (atomic_load_explicit(&watchers, memory_order_relaxed) <= 0)
            rt_hibernate(sampler_resume, st);
        struct gw_event_sample e;
        take(st, &e);
        gw_events_notify(GW_EVENT_SAMPLE, &e, sizeof e);
        /* A sampler held up (a busy scheduler) skips the samples it
         * missed rather than sending them in a burst. */
        next += GW_EVENTS_SAMPLE_INTERVAL_MS;
        if (next <= st->at_ms)
            next = st->at_ms + GW_EVENTS_SAMPLE_INTERVAL_MS;
    }
}

static void sampler_main(void *arg)
{
    (void)arg;
    struct sampler *st = rt_calloc(1, sizeof *st);
    if (!st)
        rt_exit(RT_SYSTEM_LIMIT);
    if (atomic_load_explicit(&watchers, memory_order_relaxed) <= 0)
        rt_hibernate(sampler_resume, st);
    sampler_resume(st);
}

int gw_sampler_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_spawn_opts o = {.link = true, .name = GW_SAMPLER_NAME, .initial_call = "gw_sampler"};
    int rc = rt_spawn(sampler_main, NULL, &o, out);
    if (rc < 0)
        *reason = rc == -EEXIST ? rt_atom_intern("already_started") : RT_SYSTEM_LIMIT;
    return rc < 0 ? -ECHILD : 0;
}
