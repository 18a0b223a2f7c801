/*
 * config.h: the gateway's configuration (tandem.json) and its loader.
 *
 * gw_config_load reads tandem.json, validates it (unknown keys are errors,
 * with a did-you-mean hint; every problem is reported at FILE:LINE:COLUMN with
 * its JSON path), then loads and compiles the routes directory against the
 * upstream names. The result is immutable plain data; the gateway copies what
 * it needs into its processes.
 *
 * Every key, its type, range, default and meaning is a row of the key tables
 * in gateway/src/config/keys.c (gw_config_keys below): the loader, `tandem
 * check --print-keys`, the JSON Schema (config/schema/tandem.schema.json,
 * `tandem schema config`) and README.md's table all follow them. A
 * top-level "$schema" string is accepted and ignored, for editors.
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

#include "gw/cidr.h"
#include "gw/http1.h"
#include "jpos/diag.h"
#include "jpos/keys.h"
#include "route/route.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GW_CONFIG_DEFAULT_PATH "config/tandem.json"
/* The "$id"s of the schemas in config/schema/ (`tandem schema config|routes`). */
#define GW_CONFIG_SCHEMA_ID "https://tandem.invalid/schema/tandem.schema.json"
#define GW_ROUTES_SCHEMA_ID "https://tandem.invalid/schema/routes.schema.json"
#define GW_WORKFLOWS_SCHEMA_ID "https://tandem.invalid/schema/workflows.schema.json"
/* Largest tandem.json read (bytes). */
#define GW_CONFIG_MAX_BYTES (4u << 20)

/* The key table of tandem.json's top-level object; nested objects hang from
 * its rows (`sub`). Static data, any thread. */
extern const struct jpos_section gw_config_keys;
/* The admin API's listener is not configured beyond its address: it has the
 * listener defaults except for these rows (JPOS_KEY_INTERNAL). */
extern const struct jpos_section gw_admin_listener_keys;

struct gw_address {
    char *text; /* as written: "0.0.0.0:8080" */
    char *host; /* "0.0.0.0", "::" (brackets removed), "localhost" */
    uint16_t port;
};

/* A listener's `tls` (gateway/src/tls/README.md). Certificate and key
 * paths are resolved against the config file's directory. */
#define GW_TLS_MAX_CERTS 64
#define GW_TLS_MAX_NAMES 64

enum gw_tls_version { GW_TLS_1_2 = 0, GW_TLS_1_3 };
enum gw_tls_unknown_name { GW_TLS_UNKNOWN_DEFAULT = 0, GW_TLS_UNKNOWN_REFUSE };
enum gw_tls_client_auth {
    GW_TLS_CLIENT_AUTH_OFF = 0,
    GW_TLS_CLIENT_AUTH_OPTIONAL,
    GW_TLS_CLIENT_AUTH_REQUIRED
};

struct gw_tls_cert_config {
    char *cert;   /* PEM chain: the leaf first */
    char *key;    /* PEM private key (RSA or EC) */
    char **names; /* server names it answers ("api.example.com", "*.example.com");
                   * none: the names in the certificate (subjectAltName DNS, else CN) */
    size_t nnames;
};

struct gw_tls_listener_config {
    bool enabled;                     /* the listener has a `tls` object */
    struct gw_tls_cert_config *certs; /* in file order; the first is the default */
    size_t ncerts;
    enum gw_tls_unknown_name unknown_name; /* no SNI match: the default certificate or refuse */
    enum gw_tls_version min_version;       /* never below 1.2 */
    enum gw_tls_version max_version;       /* 1.3 only where the library has it */
    char **ciphersuites;                   /* IANA names; NULL: ECDHE with AEAD only */
    size_t nciphersuites;
    bool session_tickets;
    uint32_t ticket_lifetime_s; /* a ticket key signs for this long, then rotates */
    enum gw_tls_client_auth client_auth;
    char *client_ca;                 /* PEM bundle; required unless client_auth is off */
    char *client_subject_header;     /* forwarded with the verified subject; NULL: none */
    char *client_fingerprint_header; /* forwarded with the SHA-256 fingerprint; NULL: none */
};

/* An upstream's `tls`. */
struct gw_tls_upstream_config {
    bool enabled;
    bool verify;       /* default true */
    char *ca;          /* PEM bundle; NULL: the system store (GW_TLS_SYSTEM_CA) */
    char *server_name; /* SNI and the name verified; NULL: each target's host */
    char *cert, *key;  /* a client certificate for mTLS to the backend; both or neither */
    enum gw_tls_version min_version;
};
#define GW_TLS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

/* What one request process may take (gateway/src/request.c): exceeding a
 * cap ends it with reason memory_limit or time_limit. 0: no cap. */
struct gw_request_limits {
    uint64_t max_memory_bytes; /* held through the runtime's allocator */
    uint32_t max_time_ms;      /* from the request head to the response's end */
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
    struct gw_request_limits limits; /* routes may set their own */
    struct gw_tls_listener_config tls;
    /* Peers whose X-Forwarded-For is believed (client_addr.c); NULL: none. */
    struct gw_cidr *trusted_proxies;
    size_t ntrusted_proxies;
};

/* Most blocks in a listener's trusted_proxies. */
#define GW_MAX_TRUSTED_PROXIES 256

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
    struct gw_tls_upstream_config tls;
};

/* Most admin.allowed_hosts entries. */
#define GW_ADMIN_MAX_ALLOWED_HOSTS 64

/* A Host field value ("host", "host:port", "[v6]:port") split in two. */
struct gw_hostport {
    char name[254]; /* lower-cased; an IPv6 literal without its brackets */
    bool ipv6;      /* written in brackets */
    uint16_t port;  /* 0 when absent */
};

/* `workflows`: transactional workflows (gateway/src/workflow/README.md). */
enum gw_wf_backend_kind { GW_WF_SQLITE = 0, GW_WF_POSTGRES };

struct gw_workflows_config {
    /* The workflows service runs (and opens its journal): the file has a
     * workflows section, or the workflows directory held definitions when
     * the configuration was loaded. */
    bool enabled;
    char *dir;         /* definitions, resolved against the config file's directory */
    char *status_path; /* GET {status_path}{id} answers an instance's state */
    char *data_dir;    /* where the SQLite journal lives */
    char *sqlite_path; /* the journal file */
    enum gw_wf_backend_kind backend;
    bool durable;          /* synchronous=FULL (off only for benchmarks) */
    char *pg_conninfo_env; /* the environment variable holding the libpq conninfo */
    uint32_t lease_ms;
    char *replica_id;
    uint32_t max_running;
};

/* `policies.redis`: the Redis server rate limits in "redis" mode share
 * (gateway/src/policy/README.md, "Redis"). */
struct gw_redis_config {
    bool enabled;                /* the section is present: the client runs */
    struct gw_address address;   /* host:port */
    char *password_env;          /* the environment variable holding AUTH's password; NULL: none */
    uint32_t database;           /* SELECT'd after connecting */
    uint32_t timeout_ms;         /* a call's wait for its answer */
    uint32_t connect_timeout_ms; /* TCP connect, AUTH, SELECT and the script's load */
};

/* `policies`: route policies (gateway/src/policy/README.md). */
struct gw_policies_config {
    char *dir;             /* policy files, resolved against the config file's directory */
    char *consumer_header; /* lower case: the upstream field naming the consumer */
    struct gw_redis_config redis;
};

struct gw_admin_config {
    bool enabled;
    struct gw_address address;
    struct gw_listener_config listener; /* limits and timeouts (gw_admin_listener_keys) */
    char *token_env;                    /* NULL: none (loopback only) */
    bool loopback;                      /* every address the host resolves to is loopback */
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
    /* The parse cache `routes` was read through, for the router's first
     * reload to parse only what changed since (route.h); NULL: none. The
     * first router takes this reference over and sets the pointer to NULL
     * (router.c), so that a router restart frees it. */
    struct route_cache *routes_cache;
    bool access_log;
    uint32_t drain_timeout_ms;
    uint32_t upgrade_timeout_ms;
    uint64_t body_buffer_bytes; /* the pre-read buffers of all requests together */
    struct gw_workflows_config workflows;
    struct gw_policies_config policies;
};

/* What gw_config_parse does besides checking the text. */
#define GW_CONFIG_ROUTES 1u /* load and compile the routes directory */
#define GW_CONFIG_ENV 2u    /* check the environment: admin.token_env is set */

/* Loads and validates `path` and its routes directory. Every problem goes
 * to `d` (initialised by the caller); route files report their own paths.
 * Returns 0 and writes *out when there is no error (warnings may be in `d`),
 * -EINVAL when there were errors, -ENOMEM. Reads files: call where blocking
 * is allowed (the main thread, or a blocking-pool thread). */
int gw_config_load(const char *path, struct gw_config **out, struct jpos_diags *d);

/* The same for a configuration held in memory; `path` labels diagnostics and
 * anchors the routes directory. gw_config_load passes GW_CONFIG_ROUTES |
 * GW_CONFIG_ENV; without GW_CONFIG_ROUTES the routes are not read (routes is
 * NULL, routes_dir still set), without GW_CONFIG_ENV the environment is not
 * looked at (for `tandem ctl`, which may run where the token is not set). */
int gw_config_parse(const char *path, const char *text, size_t len, unsigned flags,
                    struct gw_config **out, struct jpos_diags *d);

/* Where gw_config_load_routes reads a route set from: the routes directory
 * `dir`, or else `text` (`len` bytes, labelled `label`); and the workflow
 * definitions the routes may name: the directory `workflows_dir`, or else
 * those attached to `keep` (a route set replaced through the admin API
 * keeps the definitions it runs with), or else none. */
struct gw_routes_source {
    const char *dir;
    const char *label;
    const char *text;
    size_t len;
    const char *workflows_dir;
    /* The policy files the routes may name: the directory `policies_dir`,
     * or else the set attached to `keep`, or else none; a set read here is
     * given `consumer_header` (policy/set_int.h). */
    const char *policies_dir;
    const char *consumer_header;
    const struct route_table *keep;
    /* The workflow service is not running (it starts only with the
     * gateway, gw_workflows_enabled): definitions would be published that
     * no request could run, so any definition fails the load. */
    bool workflows_off;
    /* With `dir`: the parse cache the route files are read through
     * (route.h; the router keeps one across reloads), NULL: none. */
    struct route_cache *cache;
};

/* Loads the workflow definitions, the policy files and the routes together
 * and compiles the route table, the definitions' `struct wf_set` and the
 * `struct gw_pol_set` attached to it with each route's policy chain
 * (gateway/src/policy/table.h), so that they are published and retired as
 * one. Problems of all go to `d`; a definition
 * or policy file with errors fails the whole load. 0 and *out, -EINVAL, -ENOMEM. Reads
 * files: call where blocking is allowed. */
int gw_config_load_routes(const struct gw_routes_source *src, const char *const *upstreams,
                          size_t n, struct route_table **out, struct jpos_diags *d);

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
