/*
 * keys.c: the key tables of tandem.json, one per object (see jpos/keys.h).
 *
 * Every key, its range, its default and a line on what it means is written
 * here and nowhere else: config.c dispatches on these rows and takes its
 * defaults from them, the admin listener takes its fixed values from
 * gw_admin_listener_keys, `tandem check --print-keys` lists them (a test
 * compares that list with README.md's table) and `tandem schema config`
 * turns them into config/schema/tandem.schema.json.
 */
#include <limits.h>
#include <stddef.h>

#include "config_int.h"

#define FIELD(type, member) .offset = offsetof(type, member), .size = sizeof(((type *)0)->member)
#define NOFIELD .offset = JPOS_NO_FIELD, .size = 0
#define MS_DAY 86400000
#define MS_HOUR 3600000

/* In enum gw_http_slashes order (OPAQUE is internal). */
static const char *const slashes_names[] = {"refuse", "keep", "redirect", "decode", NULL};
/* In enum gw_http_params order. */
static const char *const params_names[] = {"refuse", "keep", NULL};
/* The index is refuse_controls. */
static const char *const controls_names[] = {"forward", "refuse", NULL};
/* The index is keep_trailing_dots. */
static const char *const trailing_dots_names[] = {"refuse", "keep", NULL};
/* The index is encode_raw_utf8. */
static const char *const raw_utf8_names[] = {"refuse", "encode", NULL};
/* In enum gw_balance order. */
static const char *const balance_names[] = {"round_robin", "least_conn", "weighted", NULL};

#define PP struct gw_http_path_policy
static const struct jpos_key path_policy_rows[] = {
    {"escaped_slashes", JPOS_T_CHOICE, 0, FIELD(PP, slashes), .choices = slashes_names,
     .why = "%2F in a path: refuse (400), keep (an opaque byte of its segment), redirect (308 to "
            "the decoded path) or decode (a '/'); a route's path_policy may override it"},
    {"params", JPOS_T_CHOICE, 0, FIELD(PP, params), .choices = params_names,
     .why = "';' or %3B in a path: refuse (400) or keep (routed and forwarded as part of its "
            "segment); a route may override it"},
    {"escaped_controls", JPOS_T_CHOICE, 0, FIELD(PP, refuse_controls), .choices = controls_names,
     .why = "%01-%1F, %7F inside a segment: forward (escaped, never decoded) or refuse (400)"},
    {"trailing_dots", JPOS_T_CHOICE, 0, FIELD(PP, keep_trailing_dots),
     .choices = trailing_dots_names,
     .why = "a segment ending with '.' (which Windows and IIS strip): refuse (400) or keep"},
    {"raw_utf8", JPOS_T_CHOICE, 0, FIELD(PP, encode_raw_utf8), .choices = raw_utf8_names,
     .why = "raw bytes above 0x7F in the request-target (not HTTP): refuse (400) or encode "
            "(valid UTF-8 percent-encoded, for legacy clients; anything else still 400)"},
};
#undef PP
static const struct jpos_section path_policy_keys = JPOS_SECTION(
    "path_policy", path_policy_rows,
    "how the request path may be written (gateway/src/http/README.md, \"Path policies\")");

#define RL struct gw_request_limits
/* The bounds are the routes' (routes/src/keys.c): a route may say what its
 * listener may. */
static const struct jpos_key limits_rows[] = {
    {"max_memory_bytes", JPOS_T_INT, 0, FIELD(RL, max_memory_bytes), 0, 1LL << 40, 0,
     .why = "memory one request process may hold (bodies and buffers included); beyond it the "
            "request ends with 503 and reason memory_limit; 0 = no cap"},
    {"max_time_ms", JPOS_T_INT, 0, FIELD(RL, max_time_ms), 0, MS_DAY, 0,
     .why = "time one request may take, from its head to its response's end; beyond it the "
            "request ends with 504 and reason time_limit; 0 = no cap"},
};
#undef RL
static const struct jpos_section limits_keys = JPOS_SECTION(
    "limits", limits_rows, "caps on each request process; a route's limits override them");

/* In enum gw_tls_unknown_name order. */
static const char *const unknown_name_names[] = {"default", "refuse", NULL};
/* In enum gw_tls_version order. */
static const char *const tls_version_names[] = {"1.2", "1.3", NULL};
/* In enum gw_tls_client_auth order. */
static const char *const client_auth_names[] = {"off", "optional", "required", NULL};
#define HEADER_SCHEMA "{\"pattern\": \"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$\"}"

static const struct jpos_key tls_cert_rows[] = {
    {"cert", JPOS_T_STRING, JPOS_KEY_REQUIRED | JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX,
     .schema = "{\"minLength\": 1}", .id = GW__K_TLS_CERT,
     .why = "PEM certificate chain, the leaf first, relative to the configuration file"},
    {"key", JPOS_T_STRING, JPOS_KEY_REQUIRED | JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX,
     .schema = "{\"minLength\": 1}", .id = GW__K_TLS_KEY,
     .why = "PEM private key (RSA of 2048 bits or more, or EC) matching the leaf"},
    {"names", JPOS_T_ARRAY, JPOS_KEY_CUSTOM | JPOS_KEY_DEF_TEXT, NOFIELD, 0, GW_TLS_MAX_NAMES,
     .def_str = "the certificate's DNS names",
     .schema = "{\"items\": {\"type\": \"string\", \"maxLength\": 253}}", .id = GW__K_TLS_NAMES,
     .why = "server names (SNI) it is chosen for, exact or \"*.example.com\" (one label); each "
            "must be covered by the certificate"},
};
static const struct jpos_section tls_cert_keys =
    JPOS_SECTION("certificate", tls_cert_rows, "a certificate chain and its key");

#define T struct gw_tls_listener_config
static const struct jpos_key tls_client_auth_rows[] = {
    {"mode", JPOS_T_CHOICE, 0, FIELD(T, client_auth), .choices = client_auth_names,
     .why = "off, optional (a certificate given must verify) or required (no certificate: "
            "the handshake fails)"},
    {"ca", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX, .schema = "{\"minLength\": 1}",
     .id = GW__K_TLS_CLIENT_CA,
     .why = "PEM bundle of the CAs client certificates must chain to; required unless mode is "
            "off"},
    {"subject_header", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 128, .schema = HEADER_SCHEMA,
     .id = GW__K_TLS_SUBJECT_HEADER,
     .why = "forwarded upstream with the verified subject; a client's own copy is always "
            "dropped"},
    {"fingerprint_header", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 128,
     .schema = HEADER_SCHEMA, .id = GW__K_TLS_FINGERPRINT_HEADER,
     .why = "forwarded upstream with the certificate's SHA-256 (hex); a client's own copy is "
            "always dropped"},
};
static const struct jpos_section tls_client_auth_keys =
    JPOS_SECTION("client_auth", tls_client_auth_rows, "client certificates (mTLS)");

static const struct jpos_key tls_rows[] = {
    {"certificates", JPOS_T_ARRAY, JPOS_KEY_REQUIRED | JPOS_KEY_CUSTOM, NOFIELD, 1,
     GW_TLS_MAX_CERTS, .sub = &tls_cert_keys, .id = GW__K_TLS_CERTIFICATES,
     .why = "chosen per handshake by server name; the first (and any other with the same names, "
            "e.g. RSA beside ECDSA) is the default"},
    {"unknown_name", JPOS_T_CHOICE, 0, FIELD(T, unknown_name), .choices = unknown_name_names,
     .why = "a server name no certificate has, or none: default (the first certificate) or "
            "refuse (the handshake fails)"},
    {"min_version", JPOS_T_CHOICE, 0, FIELD(T, min_version), .choices = tls_version_names,
     .why = "1.2 or 1.3; never lower than 1.2"},
    {"max_version", JPOS_T_CHOICE, 0, FIELD(T, max_version), .def = GW_TLS_1_3,
     .choices = tls_version_names,
     .why = "1.2 or 1.3, lowered to what the build has (mbedtls 2.28: 1.2)"},
    {"ciphersuites", JPOS_T_ARRAY, JPOS_KEY_CUSTOM | JPOS_KEY_DEF_TEXT, NOFIELD, 1, 256,
     .def_str = "ECDHE with AES-GCM or ChaCha20-Poly1305",
     .schema = "{\"items\": {\"type\": \"string\", \"maxLength\": 100}}",
     .id = GW__K_TLS_CIPHERSUITES,
     .why = "suites in order of preference, by name (TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256 "
            "or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)"},
    {"session_tickets", JPOS_T_BOOL, 0, FIELD(T, session_tickets), .def = 1,
     .why = "returning clients resume without a full handshake"},
    {"ticket_lifetime_s", JPOS_T_INT, 0, FIELD(T, ticket_lifetime_s), 60, 86400, 3600,
     .why = "a ticket is good this long; the ticket key rotates on the same period"},
    {"client_auth", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, NOFIELD, .sub = &tls_client_auth_keys,
     .def_str = "off", .id = GW__K_TLS_CLIENT_AUTH, .why = "client certificates (mTLS)"},
};
#undef T
static const struct jpos_section tls_keys =
    JPOS_SECTION("tls", tls_rows, "TLS on a listener (gateway/src/tls/README.md)");

#define L struct gw_listener_config
static const struct jpos_key listener_rows[] = {
    {"name", JPOS_T_STRING, JPOS_KEY_CUSTOM | JPOS_KEY_DEF_TEXT, NOFIELD, .max = 128,
     .def_str = "the address", .why = "names the listener in logs, metrics and the admin API",
     .id = GW__K_LISTENER_NAME},
    {"address", JPOS_T_STRING, JPOS_KEY_REQUIRED | JPOS_KEY_CUSTOM, NOFIELD, .max = 300,
     .why = "host:port to listen on ([::]:8080 for IPv6 and IPv4); port 0 picks a free one",
     .id = GW__K_LISTENER_ADDRESS},
    {"acceptors", JPOS_T_INT, 0, FIELD(L, acceptors), 0, 1024, 0,
     .why = "acceptor processes; 0 = one per scheduler"},
    {"backlog", JPOS_T_INT, 0, FIELD(L, backlog), 1, 65535, 1024,
     .why = "the listen(2) queue of connections not yet accepted"},
    {"max_connections", JPOS_T_INT, 0, FIELD(L, max_connections), 1, 10000000, 10000,
     .why = "beyond it a client gets 503 and is closed; also bounded by the file descriptor "
            "limit"},
    {"max_header_bytes", JPOS_T_INT, 0, FIELD(L, max_header_bytes), 1024, 1048576, 32768,
     .why = "the request head, request line included (431 beyond)"},
    {"max_headers", JPOS_T_INT, 0, FIELD(L, max_headers), 1, 10000, 100,
     .why = "header fields in a request (431 beyond)"},
    {"max_uri_bytes", JPOS_T_INT, 0, FIELD(L, max_uri_bytes), 64, 1048576, 8192,
     .why = "the request target (414 beyond)"},
    {"max_body_bytes", JPOS_T_INT, 0, FIELD(L, max_body_bytes), 0, 1LL << 50, 100LL << 20,
     .why = "request body bytes (413 beyond); 0 = no body; routes may set their own"},
    {"header_timeout_ms", JPOS_T_INT, 0, FIELD(L, header_timeout_ms), 1, MS_HOUR, 10000,
     .why = "a request head must arrive within it (408; slow-loris)"},
    {"idle_timeout_ms", JPOS_T_INT, 0, FIELD(L, idle_timeout_ms), 1, MS_DAY, 60000,
     .why = "idle keep-alive connections are closed after it"},
    {"request_timeout_ms", JPOS_T_INT, 0, FIELD(L, request_timeout_ms), 1, MS_DAY, 60000,
     .why = "each read of a request body (408 beyond)"},
    {"path_policy", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, FIELD(L, path_policy), .sub = &path_policy_keys,
     .def_str = "{}", .why = "how the request path may be written", .id = GW__K_PATH_POLICY},
    /* Long enough for a 100 MiB body (the default limit) at about 350 KiB/s,
     * short enough that a body trickled within the per-read timeout frees
     * its upstream connection within minutes. */
    {"body_timeout_ms", JPOS_T_INT, 0, FIELD(L, body_timeout_ms), 1, MS_DAY, 300000,
     .why = "the whole request body must arrive within it (408 and close beyond)"},
    /* nginx (proxy_read_timeout) and the common cloud load balancers close a
     * silent WebSocket after 60 s, so clients in the wild already keep
     * theirs alive within it; the keep-alive idle timeout is the same. */
    {"tunnel_idle_timeout_ms", JPOS_T_INT, 0, FIELD(L, tunnel_idle_timeout_ms), 1, MS_DAY, 60000,
     .why = "an Upgrade tunnel with no byte either way for this long is closed; a route's "
            "timeouts.tunnel_idle_ms overrides it"},
    {"limits", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, FIELD(L, limits), .sub = &limits_keys,
     .def_str = "{}", .why = "caps on each request process (memory, time)", .id = GW__K_LIMITS},
    {"tls", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, FIELD(L, tls), .sub = &tls_keys, .def_str = "none",
     .why = "serve TLS on this listener (plaintext HTTP without it)", .id = GW__K_TLS},
    {"trusted_proxies", JPOS_T_ARRAY, JPOS_KEY_CUSTOM, NOFIELD, 0, GW_MAX_TRUSTED_PROXIES,
     .def_str = "[]", .schema = "{\"items\": {\"type\": \"string\", \"maxLength\": 50}}",
     .id = GW__K_TRUSTED_PROXIES,
     .why = "CIDR blocks (\"10.0.0.0/8\", \"2001:db8::/32\") of peers whose X-Forwarded-For is "
            "believed: the client is then its right-most hop not in them, for logs, IP rules and "
            "rate limits"},
};
const struct jpos_section gw__listener_keys =
    JPOS_SECTION("listener", listener_rows, "a listening socket and the limits of its clients");

/* The admin listener is not configured beyond its address: it takes the
 * listener defaults above, except for these. */
static const struct jpos_key admin_listener_rows[] = {
    {"acceptors", JPOS_T_INT, JPOS_KEY_INTERNAL, FIELD(L, acceptors), 1, 1, 1,
     .why = "one acceptor: the admin API is not a hot path"},
    {"backlog", JPOS_T_INT, JPOS_KEY_INTERNAL, FIELD(L, backlog), 128, 128, 128,
     .why = "a few operators and scrapers at a time"},
    {"max_connections", JPOS_T_INT, JPOS_KEY_INTERNAL, FIELD(L, max_connections), 256, 256, 256,
     .why = "enough for dashboards and scrapers; never competes with the public listeners"},
    {"max_body_bytes", JPOS_T_INT, JPOS_KEY_INTERNAL, FIELD(L, max_body_bytes), 4LL << 20,
     4LL << 20, 4LL << 20, .why = "the largest body is a route set (PUT /admin/routes)"},
    {"body_timeout_ms", JPOS_T_INT, JPOS_KEY_INTERNAL, FIELD(L, body_timeout_ms), 60000, 60000,
     60000, .why = "an admin body is small: a minute is plenty"},
};
#undef L
const struct jpos_section gw_admin_listener_keys =
    JPOS_SECTION("admin listener", admin_listener_rows,
                 "the admin API's listener: the listener defaults, except for these fixed values");

static const struct jpos_key admin_rows[] = {
    {"address", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 300, .def_str = "127.0.0.1:9901",
     .why = "the admin API's host:port; a token is needed unless every address the host resolves "
            "to is loopback",
     .id = GW__K_ADMIN_ADDRESS},
    {"token_env", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 128,
     .schema = "{\"pattern\": \"^[A-Za-z_][A-Za-z0-9_]*$\"}",
     .why = "the environment variable holding the bearer token; required when the address is not "
            "loopback, and then it must be set and not empty",
     .id = GW__K_TOKEN_ENV},
    {"allowed_hosts", JPOS_T_ARRAY, JPOS_KEY_CUSTOM, NOFIELD, 0, GW_ADMIN_MAX_ALLOWED_HOSTS,
     .def_str = "`[]`", .schema = "{\"items\": {\"type\": \"string\", \"maxLength\": 300}}",
     .why = "more Host values the admin API answers to: \"name\" (any port) or \"name:port\"",
     .id = GW__K_ALLOWED_HOSTS},
};
const struct jpos_key *const gw__admin_address_key = &admin_rows[0];
static const struct jpos_section admin_keys =
    JPOS_SECTION("admin", admin_rows, "the admin API; false turns it off");

static const struct jpos_key runtime_rows[] = {
    {"schedulers", JPOS_T_INT, 0, FIELD(struct gw_config, schedulers), 0, 1024, 0,
     .why = "scheduler threads; 0 = one per core"},
};
static const struct jpos_section runtime_keys =
    JPOS_SECTION("runtime", runtime_rows, "the process runtime");

#define U struct gw_upstream_config
static const struct jpos_key target_rows[] = {
    {"address", JPOS_T_STRING, JPOS_KEY_REQUIRED | JPOS_KEY_CUSTOM, NOFIELD, .max = 300,
     .why = "host:port of the backend (port 1..65535)", .id = GW__K_TARGET_ADDRESS},
    {"weight", JPOS_T_INT, 0, FIELD(struct gw_target_config, weight), 1, 1000, 1,
     .why = "share of requests under the weighted balance"},
};
static const struct jpos_section target_keys =
    JPOS_SECTION("target", target_rows, "one backend of an upstream");

static const struct jpos_key passive_rows[] = {
    {"failures", JPOS_T_INT, 0, FIELD(U, passive_failures), 0, 1000, 5,
     .why = "consecutive failures that eject a target; 0 = passive checks off"},
    {"eject_ms", JPOS_T_INT, 0, FIELD(U, passive_eject_ms), 1, MS_DAY, 30000,
     .why = "how long an ejected target stays out"},
};
static const struct jpos_section passive_keys =
    JPOS_SECTION("passive health", passive_rows, "ejection after failed requests");

static const struct jpos_key active_rows[] = {
    {"path", JPOS_T_STRING, JPOS_KEY_REQUIRED | JPOS_KEY_CUSTOM, NOFIELD, .max = GW_HEALTH_PATH_MAX,
     .schema = "{\"pattern\": \"^/[^\\\\x00-\\\\x20\\\\x7f]*$\"}",
     .why = "the path checked; starts with '/', no spaces or control characters",
     .id = GW__K_ACTIVE_PATH},
    {"interval_ms", JPOS_T_INT, 0, FIELD(U, active_interval_ms), 100, MS_DAY, 5000,
     .why = "time between checks of a target"},
    {"timeout_ms", JPOS_T_INT, 0, FIELD(U, active_timeout_ms), 1, MS_HOUR, 2000,
     .why = "a check that takes longer fails"},
};
static const struct jpos_section active_keys =
    JPOS_SECTION("active health", active_rows, "periodic GET requests to each target");

static const struct jpos_key health_rows[] = {
    /* On unless "failures": 0: the upstream's defaults hold its keys'. */
    {"passive", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, NOFIELD, .sub = &passive_keys, .def_str = "on",
     .why = "eject a target after consecutive failures", .id = GW__K_PASSIVE},
    {"active", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, NOFIELD, .sub = &active_keys, .def_str = "off",
     .why = "check each target periodically; no active checks unless given", .id = GW__K_ACTIVE},
};
static const struct jpos_section health_keys =
    JPOS_SECTION("health", health_rows, "how targets are judged healthy");

#define UT struct gw_tls_upstream_config
static const struct jpos_key upstream_tls_rows[] = {
    {"verify", JPOS_T_BOOL, 0, FIELD(UT, verify), .def = 1,
     .why = "check the backend's certificate: its chain to `ca` and its name; a failure answers "
            "502"},
    {"ca", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX, .schema = "{\"minLength\": 1}",
     .def_str = GW_TLS_SYSTEM_CA, .id = GW__K_UTLS_CA,
     .why = "PEM bundle the backend's certificate must chain to, relative to the configuration "
            "file"},
    {"server_name", JPOS_T_STRING, JPOS_KEY_CUSTOM | JPOS_KEY_DEF_TEXT, NOFIELD, .max = 253,
     .def_str = "each target's host", .schema = "{\"minLength\": 1}", .id = GW__K_UTLS_SERVER_NAME,
     .why = "the name sent (SNI) and checked against the backend's certificate"},
    {"cert", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX,
     .schema = "{\"minLength\": 1}", .id = GW__K_UTLS_CERT,
     .why = "PEM client certificate chain for mTLS to the backend; needs `key`"},
    {"key", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX,
     .schema = "{\"minLength\": 1}", .id = GW__K_UTLS_KEY, .why = "PEM private key of `cert`"},
    {"min_version", JPOS_T_CHOICE, 0, FIELD(UT, min_version), .choices = tls_version_names,
     .why = "1.2 or 1.3; never lower than 1.2"},
};
#undef UT
static const struct jpos_section upstream_tls_keys =
    JPOS_SECTION("upstream tls", upstream_tls_rows, "TLS to an upstream's targets");

static const struct jpos_key upstream_rows[] = {
    {"targets", JPOS_T_ARRAY, JPOS_KEY_REQUIRED | JPOS_KEY_CUSTOM, NOFIELD, 1, 256,
     .sub = &target_keys, .why = "the backends", .id = GW__K_TARGETS},
    {"balance", JPOS_T_CHOICE, 0, FIELD(U, balance), .choices = balance_names,
     .listed = "round_robin, least_conn or weighted",
     .why = "round_robin, least_conn or weighted (smooth weighted round robin)"},
    {"connect_timeout_ms", JPOS_T_INT, 0, FIELD(U, connect_timeout_ms), 1, MS_HOUR, 5000,
     .why = "504 beyond"},
    {"response_timeout_ms", JPOS_T_INT, 0, FIELD(U, response_timeout_ms), 1, MS_DAY, 30000,
     .why = "504 beyond"},
    {"max_idle", JPOS_T_INT, 0, FIELD(U, max_idle), 0, 100000, 64,
     .why = "idle pooled connections per target"},
    {"max_connections", JPOS_T_INT, 0, FIELD(U, max_connections), 1, 1000000, 1024,
     .why = "connections per target"},
    {"retries", JPOS_T_INT, 0, FIELD(U, retries), 0, 10, 1,
     .why = "other targets tried when a connection cannot be made"},
    {"retry_idempotent", JPOS_T_BOOL, 0, FIELD(U, retry_idempotent), .def = 0,
     .why = "also retry idempotent requests that failed after sending"},
    {"health", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, NOFIELD, .sub = &health_keys, .def_str = "{}",
     .why = "passive and active health checks", .id = GW__K_HEALTH},
    {"tls", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, FIELD(U, tls), .sub = &upstream_tls_keys,
     .def_str = "none", .id = GW__K_UPSTREAM_TLS,
     .why = "connect to the targets over TLS (plaintext HTTP without it); {} for the defaults"},
};
#undef U
static const struct jpos_section upstream_keys =
    JPOS_SECTION("upstream", upstream_rows, "a pool of backends routes forward to");

/* In enum gw_wf_backend_kind order. */
static const char *const backend_names[] = {"sqlite", "postgres", NULL};

#define W struct gw_workflows_config
#define ENV_SCHEMA "{\"pattern\": \"^[A-Za-z_][A-Za-z0-9_]*$\"}"
static const struct jpos_key wf_pg_rows[] = {
    {"conninfo_env", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 128, .schema = ENV_SCHEMA,
     .id = GW__K_WF_CONNINFO_ENV,
     .why = "the environment variable holding the libpq conninfo (never the password in the "
            "file); required with the postgres backend, and then it must be set"},
    {"lease_ms", JPOS_T_INT, 0, FIELD(W, lease_ms), 1000, 600000, 15000,
     .why = "a replica owns its running instances this long past its last renewal; another "
            "replica takes them over once it expires"},
};
static const struct jpos_section wf_pg_keys =
    JPOS_SECTION("postgres", wf_pg_rows, "the PostgreSQL journal shared by several replicas");

static const struct jpos_key wf_journal_rows[] = {
    {"backend", JPOS_T_CHOICE, 0, FIELD(W, backend), .choices = backend_names,
     .why = "sqlite: one file on this host; postgres: shared by several gateway replicas"},
    {"data_dir", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX, .def_str = "data",
     .schema = "{\"minLength\": 1}", .id = GW__K_WF_DATA_DIR,
     .why = "directory of the SQLite journal, relative to the configuration file (the container "
            "image's configuration sets /var/lib/tandem, a volume)"},
    {"sqlite_path", JPOS_T_STRING, JPOS_KEY_CUSTOM | JPOS_KEY_DEF_TEXT, NOFIELD, .max = PATH_MAX,
     .def_str = "`<data_dir>/workflows.db`", .schema = "{\"minLength\": 1}",
     .id = GW__K_WF_SQLITE_PATH, .why = "the SQLite journal file, relative to data_dir"},
    {"durable", JPOS_T_BOOL, 0, FIELD(W, durable), .def = 1,
     .why = "fsync each commit (synchronous=FULL); false only to measure the ceiling: a crash "
            "may then lose acknowledged transitions"},
    {"postgres", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, NOFIELD, .sub = &wf_pg_keys, .def_str = "{}",
     .id = GW__K_WF_POSTGRES, .why = "the PostgreSQL backend's settings"},
    {"replica_id", JPOS_T_STRING, JPOS_KEY_CUSTOM | JPOS_KEY_DEF_TEXT, NOFIELD, .max = 128,
     .def_str = "the host name", .schema = "{\"pattern\": \"^[A-Za-z0-9._-]+$\"}",
     .id = GW__K_WF_REPLICA_ID,
     .why = "names this replica as the owner of its instances; must stay the same across "
            "restarts so that a restarted replica takes its own instances back at once"},
};
static const struct jpos_section wf_journal_keys =
    JPOS_SECTION("journal", wf_journal_rows, "where workflow transitions are journalled");

static const struct jpos_key wf_rows[] = {
    {"dir", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX, .def_str = "workflows",
     .schema = "{\"minLength\": 1}", .id = GW__K_WF_DIR,
     .why = "directory of *.json workflow files, relative to the configuration file; reloaded "
            "with the routes; missing: no workflows"},
    {"status_path", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 256, .def_str = "/workflows/",
     .schema = "{\"pattern\": \"^/([^\\\\x00-\\\\x20\\\\x7f?#]*/)?$\"}", .id = GW__K_WF_STATUS_PATH,
     .why = "GET {status_path}{id} on the public listeners answers an instance's state; 202 "
            "answers point there"},
    {"max_running", JPOS_T_INT, 0, FIELD(W, max_running), 1, 1000000, 10000,
     .why = "live instances at most; a request that would start one more gets 503 with "
            "Retry-After"},
    {"journal", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, NOFIELD, .sub = &wf_journal_keys, .def_str = "{}",
     .id = GW__K_WF_JOURNAL, .why = "where transitions are journalled"},
};
#undef W
static const struct jpos_section wf_keys =
    JPOS_SECTION("workflows", wf_rows, "transactional workflows (gateway/src/workflow/README.md)");

#define R struct gw_redis_config
static const struct jpos_key redis_rows[] = {
    {"address", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 300, .def_str = "127.0.0.1:6379",
     .id = GW__K_REDIS_ADDRESS,
     .why = "host:port of the Redis server; a name is resolved at each connection"},
    {"password_env", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 128, .schema = ENV_SCHEMA,
     .id = GW__K_REDIS_PASSWORD_ENV,
     .why = "the environment variable holding the password sent with AUTH (never in the file); "
            "when given it must be set"},
    {"database", JPOS_T_INT, 0, FIELD(R, database), 0, 65535, 0,
     .why = "the database SELECTed after connecting"},
    {"timeout_ms", JPOS_T_INT, 0, FIELD(R, timeout_ms), 1, 60000, 100,
     .why = "how long a request waits for Redis's answer; beyond it the policy's on_redis_error "
            "applies"},
    {"connect_timeout_ms", JPOS_T_INT, 0, FIELD(R, connect_timeout_ms), 1, 600000, 1000,
     .why = "a connection must be made and set up (AUTH, SELECT, the script's load) within it; "
            "failed attempts are retried with backoff"},
};
#undef R
static const struct jpos_section redis_keys = JPOS_SECTION(
    "redis", redis_rows,
    "the Redis server rate limits in redis mode share (gateway/src/policy/README.md, \"Redis\")");

static const struct jpos_key pol_rows[] = {
    {"dir", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX, .def_str = "policies",
     .schema = "{\"minLength\": 1}", .id = GW__K_POL_DIR,
     .why = "directory of *.json policy files (policies and consumers), relative to the "
            "configuration file; reloaded with the routes; missing: no policies"},
    {"consumer_header", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 128,
     .def_str = "x-consumer", .schema = "{\"pattern\": \"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$\"}",
     .id = GW__K_POL_CONSUMER_HEADER,
     .why = "the upstream field naming the authenticated consumer; what a client sends under "
            "this name is dropped on every route"},
    {"redis", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, FIELD(struct gw_policies_config, redis),
     .sub = &redis_keys, .def_str = "none", .id = GW__K_POL_REDIS,
     .why = "the Redis server of rate limits in redis mode, shared by replicas; without it no "
            "client runs and such a limit applies its on_redis_error"},
};
static const struct jpos_section pol_keys =
    JPOS_SECTION("policies", pol_rows, "route policies (gateway/src/policy/README.md)");

static const struct jpos_key top_rows[] = {
    {"$schema", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = 4096,
     .why = "the JSON Schema this file follows, for editors; the gateway reads nothing from it",
     .id = GW__K_SCHEMA},
    {"runtime", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, NOFIELD, .sub = &runtime_keys, .def_str = "{}",
     .why = "the process runtime", .id = GW__K_RUNTIME},
    {"listeners", JPOS_T_ARRAY, JPOS_KEY_REQUIRED | JPOS_KEY_CUSTOM, NOFIELD, 1, 64,
     .sub = &gw__listener_keys, .why = "the sockets the gateway serves on", .id = GW__K_LISTENERS},
    {"admin", JPOS_T_OBJECT, JPOS_KEY_CUSTOM | JPOS_KEY_OR_FALSE, NOFIELD, .sub = &admin_keys,
     .def_str = "{}", .why = "the admin API; false turns it off", .id = GW__K_ADMIN},
    {"upstreams", JPOS_T_MAP, JPOS_KEY_CUSTOM, NOFIELD, 0, 10000, .sub = &upstream_keys,
     .def_str = "{}", .schema = "{\"propertyNames\": {\"pattern\": \"^[A-Za-z0-9._-]{1,128}$\"}}",
     .why = "backends by name (letters, digits, '.', '_' and '-')", .id = GW__K_UPSTREAMS},
    {"routes", JPOS_T_STRING, JPOS_KEY_CUSTOM, NOFIELD, .max = PATH_MAX, .def_str = "routes",
     .schema = "{\"minLength\": 1}",
     .why = "directory of *.json route files, relative to the configuration file",
     .id = GW__K_ROUTES},
    {"access_log", JPOS_T_BOOL, 0, FIELD(struct gw_config, access_log), .def = 1,
     .why = "one JSON line per request on stdout"},
    {"drain_timeout_ms", JPOS_T_INT, 0, FIELD(struct gw_config, drain_timeout_ms), 0, MS_HOUR,
     30000, .why = "how long SIGTERM waits for requests in flight"},
    {"upgrade_timeout_ms", JPOS_T_INT, 0, FIELD(struct gw_config, upgrade_timeout_ms), 100, MS_HOUR,
     30000,
     .why = "how long a binary upgrade waits for the new gateway to be ready before it gives up "
            "and the running one keeps serving"},
    {"workflows", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, FIELD(struct gw_config, workflows),
     .sub = &wf_keys, .def_str = "{}", .why = "transactional workflows", .id = GW__K_WORKFLOWS},
    {"policies", JPOS_T_OBJECT, JPOS_KEY_CUSTOM, FIELD(struct gw_config, policies),
     .sub = &pol_keys, .def_str = "{}", .why = "route policies: authentication, limits, CORS",
     .id = GW__K_POLICIES},
    {"body_buffer_bytes", JPOS_T_INT, 0, FIELD(struct gw_config, body_buffer_bytes), 128 << 10,
     1LL << 40, 64LL << 20,
     .why = "request body bytes held in memory at once across all connections (the start of "
            "each body, read before it goes upstream); a body that finds it spent gets 503 with "
            "Retry-After"},
};
const struct jpos_key *const gw__routes_key = &top_rows[5];
const struct jpos_section gw_config_keys =
    JPOS_SECTION("the configuration", top_rows, "the gateway's configuration (tandem.json)");
