/*
 * upstream.h: upstream pools. One struct per configured upstream holds its
 * targets with their health and a pool of idle keep-alive connections;
 * request processes pick a target and check connections out and in without
 * going through any process (short lock per upstream, no I/O under it).
 * A gen_server per upstream (under upstreams_sup) runs the active health
 * checks and re-admits ejected targets.
 */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/config.h"

struct gw_upstream;
struct gw_target;

/* Looks an upstream up by its index in gw.cfg->upstreams. */
struct gw_upstream *gw_upstream_get(int index);

/* One target as gw_upstreams_describe found it. */
struct gw_target_desc {
    char address[80];
    uint32_t weight;
    bool healthy;             /* taking traffic now */
    int64_t ejected_until_ms; /* 0 when healthy; -1: until an active check passes */
    uint32_t consecutive_failures;
    uint32_t active; /* connections checked out */
    size_t idle;     /* connections kept alive in the pool */
    uint64_t requests, failures, ejections;
    char last_error[96]; /* "" when none */
};

struct gw_upstream_desc {
    const char *name; /* the configuration's: valid while the gateway runs */
    enum gw_balance balance;
    bool active_health;
    const struct gw_target_desc *targets; /* ntargets, inside the same description */
    size_t ntargets;
};

/* Every upstream, in configuration order. One allocation, freed whole by
 * gw_upstreams_desc_free; its size is set by the configuration (upstreams
 * and targets), not by traffic. */
struct gw_upstreams_desc {
    struct gw_upstream_desc *ups;
    size_t n;
};

/* Any thread (reads atomics and takes each target's locks briefly; never
 * blocks on I/O). Describes every upstream and target: *out is the
 * caller's, freed with gw_upstreams_desc_free. 0 or -ENOMEM. Rendering it
 * (JSON, Prometheus text) is the admin API's. */
int gw_upstreams_describe(struct gw_upstreams_desc **out);
/* Accepts NULL. */
void gw_upstreams_desc_free(struct gw_upstreams_desc *d);

#endif
