/*
 * config.h: the gateway's configuration (tandem.json) and its loader.
 *
 * gw_config_load reads tandem.json, validates it (unknown keys are errors,
 * with a did-you-mean hint; every problem is reported at FILE:LINE:COLUMN with
 * its JSON path), then loads and compiles the routes directory against the
 * upstream names. The result is immutable plain data; the gateway copies what
 * it needs into its processes.
 *
 * Shape and defaults (every field is optional unless marked required):
 *
 *   "$schema":           ignored
 *   "runtime":           { "schedulers": 0 }            0 = one per CPU; at most 1024
 *   "listeners":         required, 1..64 of:
 *     { "name":               the address                 unique
 *       "address":            required "host:port"        host an IPv4/IPv6 ("[::]") literal
 *                                                          or a name; port 0..65535 (0: any)
 *       "acceptors":          0 (one per scheduler)        0..1024
 *       "backlog":            1024                         1..65535
 *       "max_connections":    10000                        1..10000000
 *       "max_header_bytes":   32768  (431 beyond)          1024..1048576, request line included
 *       "max_headers":        100    (431 beyond)          1..10000
 *       "max_uri_bytes":      8192   (414 beyond)          64..1048576
 *       "max_body_bytes":     104857600 (100 MiB; 413)     0..2^50; 0 = no body; routes may
 *                                                          set their own
 *       "header_timeout_ms":  10000  (408; slowloris)      1..3600000
 *       "idle_timeout_ms":    60000  (keep-alive idle)     1..86400000
 *       "request_timeout_ms": 60000  (408; each read of    1..86400000
 *                                     a request body)
 *       "body_timeout_ms":    300000 (408; the whole       1..86400000
 *                                     request body, counted from the end of its head)
 *       "tunnel_idle_timeout_ms": 60000 (an Upgrade tunnel 1..86400000; a route's
 *                                     with no byte either  timeouts.tunnel_idle_ms
 *                                     way is closed)       overrides it
 *       "path_policy": {       how the request path may be written
 *                              (gateway/src/http/README.md, "Path policies")
 *         "escaped_slashes":  "refuse"   | "keep" | "redirect" | "decode"   ("%2F")
 *         "params":           "refuse"   | "keep"                           (";")
 *         "escaped_controls": "forward"  | "refuse"   (%01-%1F, %7F inside a segment) } }
 *   "admin":             { "address": "127.0.0.1:9901", "token_env": none }
 *                        token_env names the environment variable holding the
 *                        bearer token; required when the address is not
 *                        loopback. "admin": false disables the admin API.
 *   "upstreams":         { NAME: {                       NAME: letters, digits, . _ -
 *       "targets":             required, 1..256 of { "address": "host:port" (port 1..65535),
 *                                                    "weight": 1 (1..1000) }
 *       "balance":             "round_robin" | "least_conn" | "weighted"  (round_robin)
 *       "connect_timeout_ms":  5000      (504 beyond)     1..3600000
 *       "response_timeout_ms": 30000     (504 beyond)     1..86400000
 *       "max_idle":            64        idle pooled connections per target, 0..100000
 *       "max_connections":     1024      per target, 1..1000000
 *       "retries":             1         other targets tried on connect failure, 0..10
 *       "retry_idempotent":    false     also retry idempotent requests that failed
 *                                        after sending
 *       "health": { "passive": { "failures": 5 (0 = off, ..1000), "eject_ms": 30000 },
 *                   "active":  { "path": required "/...", "interval_ms": 5000,
 *                                "timeout_ms": 2000 } }       (no active checks unless given)
 *                                path: 1..GW_HEALTH_PATH_MAX bytes, no spaces or controls
 *     } }
 *   "routes":            "routes"   directory of route files, relative to the config file
 *   "access_log":        true
 *   "drain_timeout_ms":  30000      graceful shutdown budget, 0..3600000
 *
 * Ownership: everything in a `struct gw_config` belongs to it and is freed by
 * gw_config_free (the route table through one reference: take another with
 * route_table_ref to keep it longer).
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/http1.h"
#include "route/diag.h"
#include "route/route.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GW_CONFIG_DEFAULT_PATH "config/tandem.json"

struct gw_address {
    char *text; /* as written: "0.0.0.0:8080" */
    char *host; /* "0.0.0.0", "::" (brackets removed), "localhost" */
    uint16_t port;
};

struct gw_listener_config {
    char *name;
    struct gw_address address;
    uint32_t acceptors; /* 0: one per scheduler */
    uint32_t backlog;
    uint32_t max_connections;
    uint32_t max_header_bytes;
    uint32_t max_headers;
    uint32_t max_uri_bytes;
    uint64_t max_body_bytes;
    uint32_t header_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t request_timeout_ms;
    struct gw_http_path_policy path_policy; /* routes may override slashes and params */
    uint32_t body_timeout_ms;
    uint32_t tunnel_idle_timeout_ms;
};

struct gw_target_config {
    struct gw_address address;
    uint32_t weight;
};

enum gw_balance {
    GW_BALANCE_ROUND_ROBIN = 0,
    GW_BALANCE_LEAST_CONN,
    GW_BALANCE_WEIGHTED,
};

/* Longest health.active.path: the check's request is built in a buffer
 * sized from it. */
#define GW_HEALTH_PATH_MAX 1024

struct gw_upstream_config {
    char *name;
    struct gw_target_config *targets;
    size_t ntargets;
    enum gw_balance balance;
    uint32_t connect_timeout_ms;
    uint32_t response_timeout_ms;
    uint32_t max_idle;
    uint32_t max_connections;
    uint32_t retries;
    bool retry_idempotent;
    uint32_t passive_failures; /* 0: passive health off */
    uint32_t passive_eject_ms;
    bool active_health;
    char *active_path; /* NULL unless active_health */
    uint32_t active_interval_ms;
    uint32_t active_timeout_ms;
};

struct gw_admin_config {
    bool enabled;
    struct gw_address address;
    char *token_env; /* NULL: none (loopback only) */
    bool loopback;
};

struct gw_config {
    char *path; /* the config file, as given */
    uint32_t schedulers;
    struct gw_listener_config *listeners;
    size_t nlisteners;
    struct gw_admin_config admin;
    struct gw_upstream_config *upstreams; /* in file order */
    size_t nupstreams;
    const char **upstream_names; /* nupstreams names, for route loading */
    char *routes_dir;            /* resolved against the config file's directory */
    struct route_table *routes;  /* compiled; route->upstream_index indexes upstreams */
    bool access_log;
    uint32_t drain_timeout_ms;
};

/* Loads and validates `path` and its routes directory. Every problem goes
 * to `d` (initialised by the caller); route files report their own paths.
 * Returns 0 and writes *out when there is no error (warnings may be in `d`),
 * -EINVAL when there were errors, -ENOMEM. Reads files: call where blocking
 * is allowed (the main thread, or a blocking-pool thread). */
int gw_config_load(const char *path, struct gw_config **out, struct route_diags *d);

/* The same for a configuration held in memory; `path` labels diagnostics and
 * anchors the routes directory. With load_routes false the routes are not
 * read (routes is NULL, routes_dir still set). */
int gw_config_parse(const char *path, const char *text, size_t len, bool load_routes,
                    struct gw_config **out, struct route_diags *d);

/* Frees everything, including the configuration's route-table reference.
 * NULL-safe. */
void gw_config_free(struct gw_config *cfg);

/* Parses "host:port" / "[v6]:port" into *out (allocated strings). Returns 0
 * or -EINVAL; `msg` (if non-NULL) gets a static description of the problem. */
int gw_address_parse(const char *text, bool port_zero_ok, struct gw_address *out, const char **msg);
void gw_address_done(struct gw_address *a);

#ifdef __cplusplus
}
#endif

#endif
