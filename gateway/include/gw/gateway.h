/*
 * gateway.h: the running gateway's shared state and its entry point.
 *
 * One `struct gw_gateway` exists while the gateway runs (the global `gw`).
 * It holds what every process of the gateway reads: the configuration, the
 * published route table (through the holder), live counters. Fields are
 * written once at start-up before any process reads them, except the
 * counters (atomics) and `draining`.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/admin.h"
#include "gw/config.h"
#include "route/holder.h"
#include "rt/rt.h"

struct gw_listener_stats {
    _Atomic uint64_t connections; /* open now */
    _Atomic uint64_t accepted;    /* since start */
    _Atomic uint64_t refused;     /* answered 503: over max_connections or the fd reserve */
    _Atomic uint64_t requests;    /* since start */
};

struct gw_gateway {
    struct gw_config *cfg;
    struct route_holder *routes;              /* the published route table */
    struct gw_listener_stats *listener_stats; /* cfg->nlisteners entries */
    struct gw_listener_stats admin_stats;
    _Atomic uint64_t requests_in_flight;
    _Atomic uint64_t requests_total;
    _Atomic int draining; /* SIGTERM seen: stop accepting, finish what is in flight */
    _Atomic int ready;    /* routes loaded and listeners accepting */
    _Atomic int handover; /* a binary upgrade's new gateway accepts now: stop accepting */
    uint64_t start_ms;
    const char *admin_token;         /* from the environment; NULL when none */
    struct gw_admin_site admin_site; /* set when the admin listener is bound */
    rt_pid sup;                      /* tandem_sup */
};

extern struct gw_gateway gw;

/* File descriptors a configuration may hold at once at its limits (a
 * conservative estimate; README.md, "File descriptors"). */
struct gw_fd_budget {
    uint64_t limit;    /* the limit it was compared with */
    uint64_t reserve;  /* gw_fd_reserve(limit) */
    uint64_t clients;  /* public listeners' max_connections, summed */
    uint64_t upstream; /* upstream connections: one per client at most, plus idle pools */
    uint64_t own;      /* the gateway's own: streams, schedulers, sockets, health probes */
    uint64_t need;     /* own + clients + upstream */
};

/* Fills *b for `cfg` under `limit` descriptors. Returns true when `need`
 * does not fit beside the reserve, and then writes a message saying so and
 * what to do into msg (cap bytes, NUL-terminated). Any thread. */
bool gw_fd_budget(const struct gw_config *cfg, uint64_t limit, struct gw_fd_budget *b, char *msg,
                  size_t cap);
/* Descriptors client and upstream connections leave for the admin API and
 * 503 answers under a limit of `limit`: a sixteenth, at least 16 and at
 * most 1,024. */
uint64_t gw_fd_reserve(uint64_t limit);
/* The soft RLIMIT_NOFILE the gateway would run with in this process: the
 * hard limit (the kernel's nr_open when that is unlimited); 0 when unknown. */
uint64_t gw_fd_limit_target(void);

/* Main thread. Runs the gateway on `cfg` (the caller frees it after) until SIGTERM
 * or SIGINT, then drains and stops. Returns the process exit code. */
int gw_run(struct gw_config *cfg);

#endif
