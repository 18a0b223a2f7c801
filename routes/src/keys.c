/*
 * keys.c: the key tables of route files, one per object (see jpos/keys.h).
 *
 * Each key of a route file is spelled here only: parse.c and compile.c
 * dispatch on these rows (by id) and report unknown keys against them, and
 * `tandem schema routes` turns them into config/schema/routes.schema.json.
 * Route values are read by parse.c itself (JPOS_KEY_CUSTOM): most are
 * checked against each other once the whole route is seen.
 */
#include "route_int.h"

#define C JPOS_KEY_CUSTOM
#define NOFIELD .offset = JPOS_NO_FIELD, .size = 0

static const char *const slashes_names[] = {"refuse", "keep", "redirect", "decode", NULL};
static const char *const params_names[] = {"refuse", "keep", NULL};

static const struct jpos_key match_rows[] = {
    /* A DNS name is at most 253 bytes; "*." before it or a final '.' after
     * it adds up to two. */
    {"host", JPOS_T_STRING, C, NOFIELD, .max = 253 + 2, .id = ROUTE__K_HOST,
     .why = "\"api.example.com\" (exact) or \"*.example.com\" (any name below it); absent: any "
            "host"},
    {"path", JPOS_T_STRING, C, NOFIELD, .max = ROUTE_MAX_PATH_BYTES, .id = ROUTE__K_PATH,
     .schema = "{\"pattern\": \"^/\"}",
     .why = "exact path, with :param segments or a trailing *wildcard"},
    {"path_prefix", JPOS_T_STRING, C, NOFIELD, .max = ROUTE_MAX_PATH_BYTES,
     .id = ROUTE__K_PATH_PREFIX, .schema = "{\"pattern\": \"^/\"}",
     .why = "matches the prefix at a segment boundary; may hold :params"},
    {"methods", JPOS_T_ARRAY, C, NOFIELD, 1, ROUTE_MAX_METHODS, .id = ROUTE__K_METHODS,
     .schema = "{\"items\": {\"type\": \"string\", \"examples\": [\"GET\", \"HEAD\", \"POST\", "
               "\"PUT\", \"DELETE\", \"PATCH\", \"OPTIONS\"]}}",
     .why = "methods (case-sensitive); GET also answers HEAD; absent: any method"},
    {"headers", JPOS_T_OTHER, C, NOFIELD, .id = ROUTE__K_MATCH_HEADERS,
     .schema = "{\"type\": \"object\", \"maxProperties\": 8, \"additionalProperties\": "
               "{\"type\": [\"string\", \"boolean\"]}}",
     .why = "\"name\": \"value\" (present with this value), true (present), false (absent)"},
};
static const struct jpos_section match_keys =
    JPOS_SECTION("match", match_rows, "what requests the route takes");

static const struct jpos_key respond_rows[] = {
    {"status", JPOS_T_INT, C, NOFIELD, 200, 599, 200, .id = ROUTE__K_STATUS,
     .why = "the status answered; 204 and 304 take no body"},
    {"body", JPOS_T_STRING, C, NOFIELD, .max = ROUTE_MAX_BODY_BYTES, .def_str = "",
     .id = ROUTE__K_BODY, .why = "the body answered"},
    {"headers", JPOS_T_OTHER, C, NOFIELD, .id = ROUTE__K_RESPOND_HEADERS,
     .schema = "{\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}}",
     .why = "header fields of the answer"},
};
static const struct jpos_section respond_keys =
    JPOS_SECTION("respond", respond_rows, "answer directly instead of forwarding");

#define NAMES_SCHEMA "{\"items\": {\"type\": \"string\", \"maxLength\": 256}}"
static const struct jpos_key edit_rows[] = {
    {"set", JPOS_T_OTHER, C, NOFIELD, .id = ROUTE__K_SET,
     .schema = "{\"type\": \"object\", \"maxProperties\": 32, \"additionalProperties\": "
               "{\"type\": \"string\"}}",
     .why = "fields replaced"},
    {"add", JPOS_T_OTHER, C, NOFIELD, .id = ROUTE__K_ADD,
     .schema = "{\"type\": \"object\", \"maxProperties\": 32, \"additionalProperties\": "
               "{\"type\": \"string\"}}",
     .why = "fields appended"},
    {"remove", JPOS_T_ARRAY, C, NOFIELD, 0, ROUTE_MAX_HEADER_EDITS, .id = ROUTE__K_REMOVE,
     .schema = NAMES_SCHEMA, .why = "names of fields removed"},
};
static const struct jpos_section edit_keys =
    JPOS_SECTION("header changes", edit_rows, "header field edits");

static const struct jpos_key timeout_rows[] = {
    {"connect_ms", JPOS_T_INT, C | JPOS_KEY_DEF_TEXT, NOFIELD, 1, 3600000,
     .id = ROUTE__K_CONNECT_MS, .def_str = "the upstream's",
     .why = "504 beyond; absent: the upstream's connect_timeout_ms"},
    {"response_ms", JPOS_T_INT, C | JPOS_KEY_DEF_TEXT, NOFIELD, 1, 3600000,
     .def_str = "the upstream's", .id = ROUTE__K_RESPONSE_MS,
     .why = "504 beyond; absent: the upstream's response_timeout_ms"},
    {"tunnel_idle_ms", JPOS_T_INT, C | JPOS_KEY_DEF_TEXT, NOFIELD, 1, 86400000,
     .def_str = "the listener's", .id = ROUTE__K_TUNNEL_IDLE_MS,
     .why = "an Upgrade tunnel idle this long is closed; absent: the listener's "
            "tunnel_idle_timeout_ms"},
};
static const struct jpos_section timeout_keys =
    JPOS_SECTION("timeouts", timeout_rows, "this route's timeouts");

/* The listener's limits have the same bounds (gateway/src/config/keys.c). */
static const struct jpos_key limits_rows[] = {
    {"max_memory_bytes", JPOS_T_INT, C | JPOS_KEY_DEF_TEXT, NOFIELD, 0, 1LL << 40,
     .def_str = "the listener's", .id = ROUTE__K_MAX_MEMORY_BYTES,
     .why = "memory one request process may hold (bodies and buffers included); beyond it the "
            "request ends with 503, reason memory_limit; 0 = no cap; absent: the listener's"},
    {"max_time_ms", JPOS_T_INT, C | JPOS_KEY_DEF_TEXT, NOFIELD, 0, 86400000,
     .def_str = "the listener's", .id = ROUTE__K_MAX_TIME_MS,
     .why = "time one request may take, from its head to its response's end; beyond it the "
            "request ends with 504, reason time_limit; 0 = no cap; absent: the listener's"},
};
static const struct jpos_section limits_keys =
    JPOS_SECTION("limits", limits_rows, "caps on this route's request processes");

static const struct jpos_key path_policy_rows[] = {
    {"escaped_slashes", JPOS_T_CHOICE, C | JPOS_KEY_DEF_TEXT, NOFIELD, .choices = slashes_names,
     .def_str = "the listener's", .id = ROUTE__K_ESCAPED_SLASHES,
     .why = "%2F in a path; absent: the listener's"},
    {"params", JPOS_T_CHOICE, C | JPOS_KEY_DEF_TEXT, NOFIELD, .choices = params_names,
     .def_str = "the listener's", .id = ROUTE__K_PARAMS,
     .why = "';' or %3B in a path; absent: the listener's"},
};
static const struct jpos_section path_policy_keys =
    JPOS_SECTION("path_policy", path_policy_rows, "how a path landing on this route is treated");

static const struct jpos_key route_rows[] = {
    {"name", JPOS_T_STRING, C | JPOS_KEY_REQUIRED, NOFIELD, .max = ROUTE_MAX_NAME_BYTES,
     .id = ROUTE__K_NAME, .schema = "{\"pattern\": \"^[A-Za-z0-9._:/@-]+$\"}",
     .why = "unique; letters, digits and . _ - : / @"},
    {"description", JPOS_T_STRING, C, NOFIELD, .max = 4096, .id = ROUTE__K_DESCRIPTION,
     .why = "free text for people"},
    {"match", JPOS_T_OBJECT, C | JPOS_KEY_REQUIRED, NOFIELD, .sub = &match_keys,
     .id = ROUTE__K_MATCH, .why = "what requests the route takes"},
    {"upstream", JPOS_T_STRING, C, NOFIELD, .max = 256, .id = ROUTE__K_UPSTREAM,
     .why = "an upstream defined in tandem.json (one of upstream, respond and workflow)"},
    {"respond", JPOS_T_OBJECT, C, NOFIELD, .sub = &respond_keys, .id = ROUTE__K_RESPOND,
     .why = "answer directly (one of upstream, respond and workflow)"},
    {"workflow", JPOS_T_STRING, C, NOFIELD, .max = 64, .id = ROUTE__K_WORKFLOW,
     .why = "run a workflow of the workflows directory with the request body as its input "
            "(one of upstream, respond and workflow)"},
    {"policies", JPOS_T_ARRAY, C, NOFIELD, 0, ROUTE_MAX_POLICIES, .id = ROUTE__K_POLICIES,
     .schema = "{\"items\": {\"type\": \"string\", \"maxLength\": 128}}",
     .why = "names of policies of the policies directory a request passes through, in order, "
            "before the route's action (gateway/src/policy/README.md)"},
    {"strip_prefix", JPOS_T_BOOL, C, NOFIELD, .id = ROUTE__K_STRIP_PREFIX,
     .why = "forward the remainder after a path_prefix, or / + the wildcard"},
    {"preserve_host", JPOS_T_BOOL, C, NOFIELD, .def = 1, .id = ROUTE__K_PRESERVE_HOST,
     .why = "forward the client's Host; false: the target's address"},
    {"rewrite", JPOS_T_STRING, C, NOFIELD, .max = ROUTE_MAX_PATH_BYTES, .id = ROUTE__K_REWRITE,
     .why = "the upstream path, with :param and *wildcard substituted"},
    {"request_headers", JPOS_T_OBJECT, C, NOFIELD, .sub = &edit_keys,
     .id = ROUTE__K_REQUEST_HEADERS, .why = "edits of the request's header fields"},
    {"response_headers", JPOS_T_OBJECT, C, NOFIELD, .sub = &edit_keys,
     .id = ROUTE__K_RESPONSE_HEADERS, .why = "edits of the response's header fields"},
    {"timeouts", JPOS_T_OBJECT, C, NOFIELD, .sub = &timeout_keys, .id = ROUTE__K_TIMEOUTS,
     .why = "this route's timeouts"},
    {"retries", JPOS_T_INT, C | JPOS_KEY_DEF_TEXT, NOFIELD, 0, 10, .def_str = "the upstream's",
     .id = ROUTE__K_RETRIES, .why = "absent: the upstream's"},
    {"max_body_bytes", JPOS_T_INT, C | JPOS_KEY_DEF_TEXT, NOFIELD, 0, 1LL << 50,
     .def_str = "the listener's", .id = ROUTE__K_MAX_BODY_BYTES,
     .why = "request body limit (413 beyond); absent: the listener's"},
    {"limits", JPOS_T_OBJECT, C, NOFIELD, .sub = &limits_keys, .id = ROUTE__K_LIMITS,
     .why = "caps on each of this route's request processes (memory, time)"},
    {"priority", JPOS_T_INT, C, NOFIELD, -1000000, 1000000, 0, .id = ROUTE__K_PRIORITY,
     .why = "higher wins among routes that match"},
    {"path_policy", JPOS_T_OBJECT, C, NOFIELD, .sub = &path_policy_keys, .id = ROUTE__K_PATH_POLICY,
     .why = "how a path holding %2F or ';' is treated here"},
    {"redirect_https", JPOS_T_OTHER, C, NOFIELD, .id = ROUTE__K_REDIRECT_HTTPS, .def_str = "false",
     .schema = "{\"type\": [\"boolean\", \"integer\"], \"minimum\": 1, \"maximum\": 65535}",
     .why =
         "true or a port: a request on a plaintext listener gets 308 to https://HOST[:PORT] with "
         "the same path and query; on a TLS listener the route acts as usual"},
};
static const struct jpos_section route_keys =
    JPOS_SECTION("route", route_rows, "a route: what it matches and what it does");

static const struct jpos_key file_rows[] = {
    {"routes", JPOS_T_ARRAY, C | JPOS_KEY_REQUIRED, NOFIELD, 0, ROUTE_MAX_ROUTES,
     .sub = &route_keys, .id = ROUTE__K_ROUTES, .why = "the routes of this file"},
    {"$schema", JPOS_T_STRING, C, NOFIELD, .max = 4096, .id = ROUTE__K_SCHEMA,
     .why = "the JSON Schema this file follows, for editors; the gateway reads nothing from it"},
};
const struct jpos_section route_file_keys =
    JPOS_SECTION("route file", file_rows, "a route file of the routes directory");

const struct jpos_section *const route__match_keys = &match_keys;
const struct jpos_section *const route__respond_keys = &respond_keys;
const struct jpos_section *const route__edit_keys = &edit_keys;
const struct jpos_section *const route__timeout_keys = &timeout_keys;
const struct jpos_section *const route__limits_keys = &limits_keys;
const struct jpos_section *const route__path_policy_keys = &path_policy_keys;
const struct jpos_section *const route__route_keys = &route_keys;
