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
#include <stdint.h>

#include "gw/config.h"

struct gw_upstream;
struct gw_target;

/* Looks an upstream up by its index in gw.cfg->upstreams. */
struct gw_upstream *gw_upstream_get(int index);

/* Process context. Describes every upstream as a malloc'd JSON array:
 * [{"name", "balance", "targets": [{"address", "weight", "healthy",
 *   "ejected_until_ms", "consecutive_failures", "active", "idle",
 *   "requests", "failures", "last_error"}...]}...] */
int gw_upstreams_describe(char **json);

#endif
