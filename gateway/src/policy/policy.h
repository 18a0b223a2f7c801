/*
 * policy.h: route policies, the interface every policy kind implements and
 * the set of definitions published with a route table.
 *
 * A policies directory (tandem.json "policies": {"dir": ...}, default
 * "policies" beside the routes directory) holds `*.json` files, each
 * {"policies": [...], "consumers": [...]} (both optional). They are read
 * with the routes and the workflow definitions, validated together
 * (FILE:LINE:COLUMN), and the resulting `struct gw_pol_set` is published
 * with the route table and retired with it: a request sees the policies of
 * the table it holds. A route names its chain in order:
 * "policies": ["cors-web", "keys", "per-consumer"].
 *
 * A policy definition: {"name": "keys", "type": "key_auth", ...}; its
 * other keys belong to its type (struct gw_pol_kind). A consumer:
 * {"name": "alice", "api_keys": ["sha256:<64 hex>"],
 *  "basic": {"username": "alice",
 *            "password": "pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>"},
 *  "headers": {"x-consumer-tier": "gold"}}.
 *
 * The chain runs in the request process after the route matched (and after
 * a redirect_https answer), before the route's action (proxy, respond,
 * workflow). Each policy either lets the request go on, possibly having
 * set the consumer or added fields, or answers it (401, 403, 429, 503, a
 * CORS preflight's 204) and ends the chain.
 */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/http1.h"
#include "jpos/diag.h"
#include "jpos/json.h"

struct gw__exchange;
struct route;
struct route_table;

/* Limits (each a validation error when exceeded). */
#define GW_POL_MAX_POLICIES 10000 /* per set */
#define GW_POL_MAX_CONSUMERS 100000
#define GW_POL_MAX_CHAIN 16           /* policies per route */
#define GW_POL_MAX_API_KEYS 16        /* per consumer */
#define GW_POL_MAX_FIELDS 16          /* fields a chain adds, each direction */
#define GW_POL_NAME_MAX 128           /* policy and consumer names, as route names */
#define GW_POL_MAX_CONSUMER_HEADERS 8 /* a consumer's "headers" */
#define GW_POL_VALUE_MAX 1024         /* a consumer header's value */
/* Distinct upstream field names a set owns (consumer headers, the names
 * kinds give through `owned`, the configured consumer_header). */
#define GW_POL_MAX_OWNED 32

/* ---- consumers ------------------------------------------------------------ */

/* PBKDF2-HMAC-SHA256 record of a basic-auth password:
 * "pbkdf2-sha256$<iterations>$<salt, standard base64>$<hash, standard
 * base64>" with 10,000 <= iterations <= 10,000,000, salt 16..64 bytes,
 * hash 32 bytes (`tandem hash password` writes one). */
struct gw_pol_pbkdf2 {
    uint32_t iterations;
    unsigned char salt[64];
    size_t salt_len;
    unsigned char hash[32];
};

struct gw_pol_consumer {
    const char *name;
    const char *file;
    unsigned line, column;
    /* SHA-256 of each API key ("sha256:<64 hex>" in the file; `tandem hash
     * key` writes one). Never logged, never shown. */
    const unsigned char (*api_keys)[32];
    size_t napi_keys;
    const char *basic_user; /* NULL: no basic-auth credential */
    struct gw_pol_pbkdf2 basic;
    /* Forwarded to the upstream when this consumer is authenticated; the
     * names are owned (a client's copy is always dropped). */
    const struct gw_http_kv *headers;
    size_t nheaders;
};

/* ---- what a chain works on ------------------------------------------------ */

/* A policy's answer (gw_pol_refuse), held until the policy returns and
 * then written by the chain: a kind never writes to the client itself, so
 * a kind's run can be tested on a gw_pol_req alone. Copies of what the
 * policy gave (a longer message is cut; fields that do not fit in `store`
 * are left out). */
#define GW_POL_MAX_ANSWER_FIELDS 4
struct gw_pol_answer {
    int status; /* 0: none yet */
    char message[256];
    struct gw_http_kv fields[GW_POL_MAX_ANSWER_FIELDS];
    size_t nfields;
    char store[1024]; /* the fields' names and values */
};

/* One request's chain state, on the request process's stack. Strings a
 * policy puts here must outlive the request: the set's own (static while
 * the table is held), rq's own text (gw_pol_req_text) or rt_alloc'd by the
 * request process. The gateway
 * sets it member by member (request.c's run_policies, which leaves the
 * arrays and the texts unwritten): a member added here is set
 * there too. */
struct gw_pol_req {
    struct gw__exchange *ex;
    const struct gw_http_head *head;
    const struct route *route;
    const struct route_table *table;
    /* The client's address as the gateway believes it: the peer's, or,
     * from a trusted proxy, the right-most untrusted X-Forwarded-For hop. */
    const char *client;
    /* The query sent upstream (the bytes after '?', without it; NULL:
     * none), the client's at first. A policy may point it at a string of
     * its own (rt_alloc'd): key_auth drops its query parameter, so that an
     * API key never reaches the upstream. */
    const char *query;
    size_t query_len;
    /* The authenticated consumer; NULL before (or without) one. An
     * authentication policy that verifies a token naming no configured
     * consumer may set `subject` alone. */
    const struct gw_pol_consumer *consumer;
    const char *subject;
    /* Fields for the upstream; their names are owned (gw_pol_set_owned). */
    struct gw_http_kv up[GW_POL_MAX_FIELDS];
    size_t nup;
    /* Fields added to every answer of this request, proxied or the
     * gateway's own (CORS, RateLimit). */
    struct gw_http_kv resp[GW_POL_MAX_FIELDS];
    size_t nresp;
    /* What a policy answered; the chain writes it (gw__policy_chain). */
    struct gw_pol_answer answer;
    /* Room for the text of fields a policy makes on each request (the
     * RateLimit value), given out by gw_pol_req_text: text[0..ntext) is
     * taken. */
    char text[256];
    size_t ntext;
};

/* Adds a field for the upstream / for the answer; false when full (the
 * chain then answers 500). A field for the answer is written on a relayed
 * response as it is (gw_http_edits.checked): its name must be a token that
 * is neither hop-by-hop, nor framing, nor one of the fields the gateway
 * writes itself (X-Forwarded-*, X-Request-Id...), and its value must hold
 * no CR or LF: made of a definition's checked strings, numbers, or values
 * of the request's head (whose parser refuses CR and LF in them). */
bool gw_pol_up_add(struct gw_pol_req *rq, const char *name, const char *value);
bool gw_pol_resp_add(struct gw_pol_req *rq, const char *name, const char *value);

/* n bytes of rq's own room for a field's text, which lives as long as rq
 * (the request): no allocation on each request. NULL when the room is
 * taken (several policies made text): then rt_alloc it. */
char *gw_pol_req_text(struct gw_pol_req *rq, size_t n);

/* Answers the request from a policy: `status` with a short JSON error body
 * `message`, the chain's response fields (rq->resp) and `extra` fields
 * (WWW-Authenticate, Retry-After; at most GW_POL_MAX_ANSWER_FIELDS). The
 * message and fields are copied into rq->answer (the caller's may be on its
 * stack); the chain writes the answer once the policy's run returns.
 * Returns GW_POL_ANSWERED. Plain data: any thread, no runtime. */
int gw_pol_refuse(struct gw_pol_req *rq, int status, const char *message,
                  const struct gw_http_kv *extra, size_t nextra);

enum { GW_POL_NEXT = 0, GW_POL_ANSWERED = 1 };

/* Counts one refusal by policy `policy` (its definition's name) for
 * `reason`, a label of tandem_policy_denials_total (stats.c). Any thread;
 * never blocks. */
void gw_pol_count_denial(const char *policy, const char *reason);

/* ---- policy kinds --------------------------------------------------------- */

/* What a kind's compile sees besides its object. */
struct gw_pol_env {
    const struct gw_pol_consumer *consumers; /* every consumer of the set */
    size_t nconsumers;
    const char *dir; /* the policies directory, for relative paths (a JWKS file) */
};

struct gw_pol_kind {
    const char *type; /* the "type" value: "key_auth", "jwt", ... */
    /* Reads and checks `obj` (its "name" and "type" are the set's: skip
     * them; report every other key the kind does not know, with a
     * did-you-mean, through jpos). Builds *state. 0, -EINVAL (reported in
     * d), -ENOMEM. Any thread; may read files; never on a scheduler. */
    int (*compile)(struct jpos_diags *d, const struct jpos_val *obj, const struct gw_pol_env *env,
                   void **state);
    void (*free)(void *state);
    /* In the request process: GW_POL_NEXT or GW_POL_ANSWERED. May park
     * (a Redis round trip, a JWKS refresh, a blocking-pool hash). */
    int (*run)(void *state, struct gw_pol_req *rq);
    /* Optional: what /admin/policies shows of it (never a secret). */
    json_t *(*describe)(const void *state);
    /* Optional: the upstream field names it may set (owned by the gateway:
     * a client's copies are dropped on every route). Up to cap names. */
    size_t (*owned)(const void *state, const char **names, size_t cap);
    /* Whether it answers a CORS preflight (cors). A preflight on a path
     * whose routes do not serve OPTIONS reaches the route of the method it
     * asks about only when that route's chain holds such a kind: any other
     * chain would judge (count, refuse) an OPTIONS the route does not serve,
     * which stays a 405 (request.c). */
    bool answers_preflight;
};

/* Every kind, by type (kinds.c). */
const struct gw_pol_kind *gw_pol_kind_find(const char *type);
extern const struct gw_pol_kind *const gw_pol_kinds[];
extern const size_t gw_pol_nkinds;

/* ---- the set -------------------------------------------------------------- */

struct gw_pol_def {
    const char *name;
    const struct gw_pol_kind *kind;
    void *state;
    const char *file;
    unsigned line, column;
};

struct gw_pol_set; /* reference counted, immutable once loaded */

/* Loads every `*.json` of `dir` in byte order of names ('.'-names skipped;
 * a missing directory is an empty set). 0 with *out, -EINVAL (errors in d),
 * -ENOMEM. Reads files. */
int gw_pol_set_load_dir(const char *dir, struct gw_pol_set **out, struct jpos_diags *d);
int gw_pol_set_load_text(const char *label, const char *text, size_t len, const char *dir,
                         struct gw_pol_set **out, struct jpos_diags *d);
struct gw_pol_set *gw_pol_set_ref(struct gw_pol_set *s);
void gw_pol_set_unref(struct gw_pol_set *s); /* NULL-safe */

size_t gw_pol_set_count(const struct gw_pol_set *s);
const struct gw_pol_def *gw_pol_set_def(const struct gw_pol_set *s, size_t i);
const struct gw_pol_def *gw_pol_set_find(const struct gw_pol_set *s, const char *name);
const char *const *gw_pol_set_names(const struct gw_pol_set *s); /* count entries */
size_t gw_pol_set_nconsumers(const struct gw_pol_set *s);
const struct gw_pol_consumer *gw_pol_set_consumer(const struct gw_pol_set *s, size_t i);
const struct gw_pol_consumer *gw_pol_set_consumer_find(const struct gw_pol_set *s,
                                                       const char *name);
/* Field names only the gateway writes: every consumer header and every
 * name a policy's `owned` gives. */
const char *const *gw_pol_set_owned(const struct gw_pol_set *s, size_t *n);

/* The set published with table t (NULL: none). */
const struct gw_pol_set *gw_pol_table_set(const struct route_table *t);

/* ---- the request path ----------------------------------------------------- */

/* Runs route r's chain over rq (rq->ex, head, route, table and client
 * filled in): GW_POL_NEXT when the route's action should run, then with
 * rq's consumer and fields set; GW_POL_ANSWERED when a policy answered. */
int gw__policy_chain(struct gw_pol_req *rq);

#endif
