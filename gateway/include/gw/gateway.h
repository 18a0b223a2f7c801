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
#include <stdint.h>

#include "gw/admin.h"
#include "gw/config.h"
#include "route/holder.h"
#include "rt/rt.h"

struct gw_listener_stats {
    _Atomic uint64_t connections; /* open now */
    _Atomic uint64_t accepted;    /* since start */
    _Atomic uint64_t refused;     /* over max_connections */
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
    uint64_t start_ms;
    const char *admin_token;         /* from the environment; NULL when none */
    struct gw_admin_site admin_site; /* set when the admin listener is bound */
    rt_pid sup;                      /* tandem_sup */
};

extern struct gw_gateway gw;

/* Main thread. Runs the gateway on `cfg` (the caller frees it after) until SIGTERM
 * or SIGINT, then drains and stops. Returns the process exit code. */
int gw_run(struct gw_config *cfg);

#endif
