/*
 * route.h: route tables — parse, validate, compile, match.
 *
 * A route set is read from JSON route files (`{"routes": [...]}`; see
 * routes/README.md for the language), validated as a whole (every problem
 * reported with file, line, column and JSON path), and compiled into an
 * immutable `struct route_table`. A table never changes after compile; any
 * number of threads may match against it at once. Tables are published to
 * request handlers through a `struct route_holder` (route/holder.h).
 *
 * Which route wins (the full rules are in routes/README.md):
 *   1. host: routes for the exact host, then for `*.suffix` wildcards
 *      (longest suffix first), then routes with no host; a later group is
 *      tried only when no route of an earlier group matches the request;
 *   2. within a group, the highest `priority`;
 *   3. then the kind of path match: full (`path`, with or without
 *      parameters) over a trailing wildcard (`*rest`) over `path_prefix`;
 *   4. then longer (more segments) over shorter, and, segment by segment from
 *      the left, a literal segment over a parameter;
 *   5. then more header conditions over fewer, and a method list over none.
 * Two routes still tied for some request are a validation error (conflict).
 */
#ifndef ROUTE_ROUTE_H
#define ROUTE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jpos/diag.h"
#include "jpos/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds on what a route file may ask for. Exceeding one is a validation
 * error that names it. */
#define ROUTE_MAX_PARAMS 8               /* parameters (incl. wildcard) per path */
#define ROUTE_MAX_SEGMENTS 32            /* segments in a path pattern */
#define ROUTE_MAX_PATH_BYTES 1024        /* path pattern, rewrite template */
#define ROUTE_MAX_REWRITE_PARTS 64       /* literal runs and :param refs in a rewrite */
#define ROUTE_MAX_HEADER_CONDS 8         /* match.headers entries */
#define ROUTE_MAX_METHODS 16             /* match.methods entries */
#define ROUTE_MAX_HEADER_EDITS 32        /* entries in each of set/add/remove */
#define ROUTE_MAX_VALUE_BYTES 4096       /* header names and values */
#define ROUTE_MAX_BODY_BYTES (1u << 20)  /* respond.body */
#define ROUTE_MAX_NAME_BYTES 128         /* route names */
#define ROUTE_MAX_POLICIES 16            /* policies a route names */
#define ROUTE_MAX_ROUTES 100000          /* routes in one table */
#define ROUTE_MAX_FILES 10000            /* files in one routes directory */
#define ROUTE_MAX_FILE_BYTES (16u << 20) /* one route file */

/* Methods as bits. A route's `methods` of 0 means any method. */
enum {
    ROUTE_M_GET = 1u << 0,
    ROUTE_M_HEAD = 1u << 1,
    ROUTE_M_POST = 1u << 2,
    ROUTE_M_PUT = 1u << 3,
    ROUTE_M_DELETE = 1u << 4,
    ROUTE_M_CONNECT = 1u << 5,
    ROUTE_M_OPTIONS = 1u << 6,
    ROUTE_M_TRACE = 1u << 7,
    ROUTE_M_PATCH = 1u << 8,
    ROUTE_M_EXTENSION = 1u << 9, /* the route lists extension methods */
};

enum route_host_kind {
    ROUTE_HOST_ANY = 0, /* no match.host */
    ROUTE_HOST_EXACT,   /* "api.example.com" */
    ROUTE_HOST_SUFFIX,  /* "*.example.com": any name ending in ".example.com" */
};

enum route_path_kind {
    ROUTE_PATH_EXACT = 0, /* "path" with literal segments only */
    ROUTE_PATH_PARAM,     /* "path" with :name segments */
    ROUTE_PATH_WILDCARD,  /* "path" ending in *name: the rest of the path */
    ROUTE_PATH_PREFIX,    /* "path_prefix" (may hold :name segments) */
};

struct route_kv {
    const char *name; /* header names are stored lower case */
    const char *value;
};

enum route_header_test {
    ROUTE_HDR_EQUALS = 0, /* "x-env": "prod"  — present, every line exactly this value */
    ROUTE_HDR_PRESENT,    /* "x-env": true    — present (one line or more), any value */
    ROUTE_HDR_ABSENT,     /* "x-env": false   — not present (no line) */
};

struct route_header_cond {
    const char *name;  /* lower case */
    const char *value; /* ROUTE_HDR_EQUALS only */
    size_t value_len;
    enum route_header_test test;
};

struct route_header_edit {
    const struct route_kv *set; /* replace any existing header of that name */
    size_t nset;
    const struct route_kv *add; /* append, keeping existing ones */
    size_t nadd;
    const char *const *remove; /* lower-case names */
    size_t nremove;
};

/* A route's path_policy: how a request path holding "%2F" or ";" is
 * treated once it is known to land on this route (the gateway applies it;
 * see routes/README.md). LISTENER: the listener's setting. */
enum route_slashes {
    ROUTE_SLASHES_LISTENER = 0,
    ROUTE_SLASHES_REFUSE,
    ROUTE_SLASHES_KEEP,
    ROUTE_SLASHES_REDIRECT,
    ROUTE_SLASHES_DECODE,
};

enum route_params {
    ROUTE_PARAMS_LISTENER = 0,
    ROUTE_PARAMS_REFUSE,
    ROUTE_PARAMS_KEEP,
};

struct route_respond {
    int status;
    const char *body; /* never NULL; may hold NUL bytes */
    size_t body_len;
    const struct route_kv *headers;
    size_t nheaders;
};

/* A compiled route. Owned by its table; valid while the table is. */
struct route {
    const char *name;
    const char *description; /* free text as written; NULL when absent */
    unsigned index;          /* position in the table, in file-name then file order */

    /* match */
    enum route_host_kind host_kind;
    const char *host; /* lower case as written ("*.example.com"); NULL: any */
    enum route_path_kind path_kind;
    const char *path;               /* the pattern as written */
    unsigned methods;               /* ROUTE_M_* bits as listed; 0: any method */
    unsigned match_methods;         /* what is matched: `methods`, plus HEAD when GET
                                       is listed and no other route of the same path
                                       lists HEAD itself */
    const char *const *ext_methods; /* extension methods (ROUTE_M_EXTENSION) */
    size_t next_methods;
    const struct route_header_cond *headers;
    size_t nheaders;
    int priority;
    unsigned nparams; /* parameters in the path, wildcard included */
    const char *param_names[ROUTE_MAX_PARAMS];

    /* action: exactly one of upstream, respond and workflow */
    const char *upstream;
    int upstream_index; /* into the name list given to the loader; -1: respond, workflow */
    const struct route_respond *respond;
    const char *workflow; /* a workflow definition's name; NULL: none */
    /* The policies the route's requests pass through first, in order (the
     * gateway resolves the names once, when it loads the table: policy.h). */
    const char *const *policies;
    size_t npolicies;
    bool strip_prefix;
    bool preserve_host;  /* default true: forward the client's Host header */
    const char *rewrite; /* template as written, NULL when absent */
    struct route_header_edit request_headers;
    struct route_header_edit response_headers;
    uint32_t connect_timeout_ms;        /* 0: the upstream's */
    uint32_t response_timeout_ms;       /* 0: the upstream's */
    uint32_t tunnel_idle_ms;            /* 0: the listener's tunnel_idle_timeout_ms */
    int retries;                        /* -1: the upstream's */
    int64_t max_body_bytes;             /* -1: the listener's */
    int64_t max_memory_bytes;           /* limits: -1 the listener's; 0 no cap */
    int64_t max_time_ms;                /* limits: -1 the listener's; 0 no cap */
    enum route_slashes escaped_slashes; /* path_policy.escaped_slashes */
    enum route_params path_params;      /* path_policy.params */
    /* redirect_https: 0 none; else the port of the https:// URL a request
     * on a plaintext listener is sent to with a 308 (`true`: 443, which the
     * URL leaves out). The gateway applies it (gateway/src/request.c). */
    uint16_t redirect_https;

    /* where it was defined */
    const char *file;
    unsigned line, column;
};

struct route_table;

/* ---- building a table ------------------------------------------------------
 * A builder collects routes from any number of files or buffers, then
 * validates the whole set and compiles it. Every problem goes to the
 * `struct jpos_diags` passed in; route files report their own file name.
 * Building never touches the hot path and may run on any thread (it reads
 * files: run it where blocking is allowed). */
struct route_builder;

/* `upstreams` (n names, may be NULL when n is 0) are the upstream names routes
 * may refer to; the strings are copied. */
int route_builder_new(struct route_builder **out, const char *const *upstreams, size_t n);
void route_builder_free(struct route_builder *b); /* NULL-safe */

/* The workflow names a route's "workflow" may take (n names, may be NULL
 * when n is 0; copied, replacing any given before). Without this call no
 * workflow is known and a route naming one is an error; with `names` NULL
 * any name is taken (the definitions could not be read: their errors are
 * reported, and routes are not blamed for them). 0 or -ENOMEM. */
int route_builder_set_workflows(struct route_builder *b, const char *const *names, size_t n);
/* The same for the policy names a route's "policies" may list. */
int route_builder_set_policies(struct route_builder *b, const char *const *names, size_t n);

/* Adds the routes of one route file held in memory. `file` labels its
 * diagnostics and the routes' `file`. Returns 0 or -EINVAL when this text had
 * errors (they are in `d`; valid routes of the text are still kept so that
 * cross-file checks report as much as possible), -ENOMEM. */
int route_builder_add_text(struct route_builder *b, const char *file, const char *text, size_t len,
                           struct jpos_diags *d);
/* The key table of a route file's top-level object; the route's keys and
 * nested objects hang from its rows (jpos/keys.h). Static data. */
extern const struct jpos_section route_file_keys;

/* Reads and adds one file (at most ROUTE_MAX_FILE_BYTES). */
int route_builder_add_file(struct route_builder *b, const char *path, struct jpos_diags *d);
/* Adds every `*.json` regular file of `dir` in byte order of names. Names
 * starting with '.' are skipped (editor lock and temporary files). A missing
 * or unreadable directory is an error; an empty one a warning. */
int route_builder_add_dir(struct route_builder *b, const char *dir, struct jpos_diags *d);

/* ---- the parse cache -------------------------------------------------------
 * A cache of parsed route files, kept by a caller that reloads the same
 * directory again and again (the router), so that a reload parses only the
 * files that changed. route_builder_add_dir reads every file each time and
 * reuses a file's parsed routes only when its bytes are exactly those of the
 * cached read (by their SHA-512 digest and length, kept instead of a copy of
 * the bytes: a rewrite with the same size and mtime is noticed) and the
 * upstream, workflow and policy names routes are checked
 * against are the same; a file whose parse reported anything (an error or
 * a warning) is never cached, so its diagnostics come again every time.
 * Files gone from the directory are dropped from the cache after a read
 * that listed it. Cached results are immutable and shared with the tables
 * built from them. The cache never makes a build fail: when it runs out of
 * memory the build goes on without it (slower, never wrong).
 *
 * One builder at a time may use a cache (any thread); the cache is
 * reference-counted so that a load still running when its owner goes away
 * keeps it alive. */
struct route_cache;

int route_cache_new(struct route_cache **out); /* 0 or -ENOMEM */
struct route_cache *route_cache_ref(struct route_cache *c);
void route_cache_unref(struct route_cache *c); /* NULL-safe */
/* Files the cache holds (for tests and figures). */
size_t route_cache_files(const struct route_cache *c);
/* Parses done and cached files reused by the builders that used the cache
 * (for tests and figures). */
void route_cache_counts(const struct route_cache *c, uint64_t *parsed, uint64_t *reused);

/* Makes route_builder_add_dir read through `c` (a reference is taken;
 * NULL: no cache). Call before adding files. 0. */
int route_builder_set_cache(struct route_builder *b, struct route_cache *c);

/* Validates the whole set (duplicate names, conflicts) and compiles it. On
 * success writes a new table (one reference, version 0) and returns 0; the
 * builder is then empty. Returns -EINVAL if this builder recorded any error,
 * in any call; -ENOMEM. */
int route_builder_compile(struct route_builder *b, struct route_table **out, struct jpos_diags *d);

/* Shorthand: a builder, one directory, compile. */
int route_table_load_dir(const char *dir, const char *const *upstreams, size_t n,
                         struct route_table **out, struct jpos_diags *d);

/* ---- tables ----------------------------------------------------------------
 * route_table_ref/unref manage owner references (the router's history of
 * versions, a caller that holds a table it has not published). Request
 * handlers use route_holder_acquire/route_table_release instead (holder.h).
 * The last unref frees the table; never unref a table a holder still has. */
struct route_table *route_table_ref(struct route_table *t);
void route_table_unref(struct route_table *t); /* NULL-safe */

/* Version given when first published (0 before); see holder.h. */
uint64_t route_table_version(const struct route_table *t);
size_t route_table_count(const struct route_table *t);
/* Route number i, in definition order (files by name, then file order). */
const struct route *route_table_route(const struct route_table *t, size_t i);
/* The route called `name`, or NULL. Linear. */
const struct route *route_table_find(const struct route_table *t, const char *name);
/* Attaches `p` to the table, to be dropped with `drop(p)` (when non-NULL)
 * as the table is freed, so that what the routes refer to (the workflow
 * definitions they name) is published and retired with them. Call before
 * the table is published; replaces (and drops) an earlier attachment. */
void route_table_attach(struct route_table *t, void *p, void (*drop)(void *));
/* The attachment, or NULL. Any thread holding the table. */
void *route_table_attachment(const struct route_table *t);

/* Number of route files the table was built from. */
size_t route_table_files(const struct route_table *t);

/* ---- matching --------------------------------------------------------------
 * The request as the matcher sees it. Nothing is copied; the strings must
 * stay valid while the match result is used (parameter values point into
 * `path`). */
struct route_request {
    const char *method;
    size_t method_len;
    const char *host; /* Host header / authority; a :port and a trailing dot
                         are ignored, case is ignored; NULL: none */
    size_t host_len;
    const char *path; /* origin-form path, without the query; matched as raw
                         bytes (the caller normalises dot segments and
                         percent-encoding first if it wants to) */
    size_t path_len;
    /* Header lookup for match.headers: the value of the next field called
     * `name` (given in lower case; compare without case) at or after field
     * position *pos, its length in *len, and *pos moved past it; NULL when
     * no field of that name is left. The matcher starts at *pos = 0 and
     * calls again until NULL, so that it sees every line of a field that
     * arrived several times (routes/README.md says how conditions treat
     * them). NULL callback: no headers. Must not block. */
    const char *(*header)(void *ctx, const char *name, size_t name_len, size_t *pos, size_t *len);
    void *header_ctx;
};

struct route_param {
    const char *name;  /* the route's parameter name (wildcard name included) */
    const char *value; /* points into the request path */
    size_t len;
};

/* Result of a match. Filled by route_table_match in caller storage: the hot
 * path allocates nothing. */
struct route_match {
    const struct route *route;
    unsigned nparams;
    struct route_param params[ROUTE_MAX_PARAMS];
    /* The part of the path after what the route matched literally: for a
     * prefix route the remainder after the prefix ("" or "/..."), for a
     * wildcard route the wildcard's value (after its '/'), else "". Points
     * into the request path. */
    const char *rest;
    size_t rest_len;
    /* On ROUTE_NO_METHOD: the methods (ROUTE_M_* bits) routes for this path
     * accept, for an Allow header. */
    unsigned allowed;
};

enum route_match_result {
    ROUTE_MATCHED = 0,
    ROUTE_NOT_FOUND, /* 404 */
    ROUTE_NO_METHOD, /* 405: some route matches all but the method */
};

/* Finds the route for `req` (see the precedence at the top). Any thread, any
 * number at once; never blocks or allocates; time is proportional to the
 * number of path segments and candidate routes, not to the table size. */
enum route_match_result route_table_match(const struct route_table *t,
                                          const struct route_request *req, struct route_match *m);

/* The path to send upstream for a match, followed by `?query` when qlen > 0:
 * the rewrite template with parameters substituted (for prefix routes the
 * remainder is appended), else with strip_prefix the remainder ("/" when
 * empty), else the request path unchanged. Writes at most cap bytes plus a
 * NUL; returns the length, or -ENOSPC when it does not fit. Any thread. */
int route_upstream_path(const struct route_match *m, const struct route_request *req,
                        const char *query, size_t qlen, char *buf, size_t cap);

/* Method name to ROUTE_M_* bit; 0 for extension methods. */
unsigned route_method_bit(const char *method, size_t len);
/* Writes the methods in `bits` as "GET, HEAD" (an Allow header). Returns the
 * length needed, like snprintf. */
size_t route_methods_format(unsigned bits, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
