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
 *                                     request body: time spent waiting for its bytes)
 *       "tunnel_idle_timeout_ms": 60000 (an Upgrade tunnel 1..86400000; a route's
 *                                     with no byte either  timeouts.tunnel_idle_ms
 *                                     way is closed)       overrides it
 *       "path_policy": {       how the request path may be written
 *                              (gateway/src/http/README.md, "Path policies")
 *         "escaped_slashes":  "refuse"   | "keep" | "redirect" | "decode"   ("%2F")
 *         "params":           "refuse"   | "keep"                    (";", "%3B")
 *         "escaped_controls": "forward"  | "refuse"   (%01-%1F, %7F inside a segment)
 *         "trailing_dots":    "refuse"   | "keep"     ("." ending a segment) } }
 *   "admin":             { "address": "127.0.0.1:9901", "token_env": none,
 *                          "allowed_hosts": [] }
 *                        token_env names the environment variable holding the
 *                        bearer token; required when the address is not
 *                        loopback (decided from the addresses the host
 *                        resolves to), and the variable it names must be set
 *                        and not empty. allowed_hosts: up to 64 more Host
 *                        values the admin API answers to, "name" (any port)
 *                        or "name:port" (gw/admin.h has the Host rule).
 *                        "admin": false disables the admin API.
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
#include <sys/socket.h>

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

/* Most admin.allowed_hosts entries. */
#define GW_ADMIN_MAX_ALLOWED_HOSTS 64

/* A Host field value ("host", "host:port", "[v6]:port") split in two. */
struct gw_hostport {
    char name[254]; /* lower-cased; an IPv6 literal without its brackets */
    bool ipv6;      /* written in brackets */
    uint16_t port;  /* 0 when absent */
};

struct gw_admin_config {
    bool enabled;
    struct gw_address address;
    char *token_env; /* NULL: none (loopback only) */
    bool loopback;   /* every address the host resolves to is loopback */
    struct gw_hostport *allowed_hosts;
    size_t nallowed_hosts;
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

/* What gw_config_parse does besides checking the text. */
#define GW_CONFIG_ROUTES 1u /* load and compile the routes directory */
#define GW_CONFIG_ENV 2u    /* check the environment: admin.token_env is set */

/* Loads and validates `path` and its routes directory. Every problem goes
 * to `d` (initialised by the caller); route files report their own paths.
 * Returns 0 and writes *out when there is no error (warnings may be in `d`),
 * -EINVAL when there were errors, -ENOMEM. Reads files: call where blocking
 * is allowed (the main thread, or a blocking-pool thread). */
int gw_config_load(const char *path, struct gw_config **out, struct route_diags *d);

/* The same for a configuration held in memory; `path` labels diagnostics and
 * anchors the routes directory. gw_config_load passes GW_CONFIG_ROUTES |
 * GW_CONFIG_ENV; without GW_CONFIG_ROUTES the routes are not read (routes is
 * NULL, routes_dir still set), without GW_CONFIG_ENV the environment is not
 * looked at (for `tandem ctl`, which may run where the token is not set). */
int gw_config_parse(const char *path, const char *text, size_t len, unsigned flags,
                    struct gw_config **out, struct route_diags *d);

/* Frees everything, including the configuration's route-table reference.
 * NULL-safe. */
void gw_config_free(struct gw_config *cfg);

/* Parses "host:port" / "[v6]:port" into *out (allocated strings). Returns 0
 * or -EINVAL; `msg` (if non-NULL) gets a static description of the problem. */
int gw_address_parse(const char *text, bool port_zero_ok, struct gw_address *out, const char **msg);
void gw_address_done(struct gw_address *a);

/* Any thread. True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool gw_sockaddr_is_loopback(const struct sockaddr *sa);

/* Resolves a's host the way a listener binds it and sets *loopback when
 * every address it gives is loopback ("localhost" usually is; "127.x.example"
 * is not unless it resolves there). Returns 0, or -EADDRNOTAVAIL when the
 * host does not resolve (*why, when non-NULL, gets the resolver's static
 * message). May block on name resolution. */
int gw_address_loopback(const struct gw_address *a, bool *loopback, const char **why);

/* Any thread. Splits a Host field value or an admin.allowed_hosts entry:
 * a name of letters, digits, '-', '.', '_' and '~', an IPv4 literal or an
 * IPv6 literal in brackets, then an optional ":port" (1..65535). Returns 0
 * or -EINVAL. */
int gw_hostport_parse(const char *v, size_t n, struct gw_hostport *out);

#ifdef __cplusplus
}
#endif

#endif
