/*
 * route_int.h: the routes layer's private structures.
 *
 * A route set goes through three shapes:
 *   1. route files -> `struct route__entry` (parse.c): one per route, the
 *      public `struct route` plus what the matcher needs (the parsed path
 *      segments, the rank, the compiled rewrite), allocated in the builder's
 *      arena;
 *   2. entries -> `struct route_table` (compile.c): the table copies the
 *      valid entries into one array of its own (compile writes per-table
 *      fields: index, match_methods), keeps a reference to each file the
 *      strings they point at live in, and indexes the entries with a segment
 *      trie per host group;
 *   3. the table is matched (match.c) and published (holder.c).
 *
 * Files. Each route file's entries, and everything they point at, live in
 * the arena of its `struct route__file`, which never changes once parsed.
 * A file is shared by reference between the builder, the parse cache
 * (cache.c: a file whose bytes and validation context are unchanged is not
 * parsed again) and every table compiled from it, so a table in the router's
 * history and the table serving share what did not change, and rebuilding
 * after a change to one file parses that file only.
 *
 * The trie. Each host group (one exact host, one `*.suffix`, or "any host")
 * has a root node. A node at depth d stands for a sequence of d path
 * segments, each either a literal or "a parameter"; a node's literal
 * children are found through one hash table shared by the whole table, keyed
 * by (parent node, segment text), and it has at most one parameter child
 * (parameter names do not matter for the shape: `/users/:id` and
 * `/users/:uid` end at the same node). Routes hang off the node where their
 * pattern ends, in one of three lists: full (the path ends here), wildcard
 * (the rest of the path, after a '/'), prefix (the path ends here or goes on
 * after a '/'). Each list is sorted best first.
 *
 * Ownership: everything a table points to is in the arenas of the files it
 * holds a reference to or in arrays it frees itself; nothing in a table
 * changes after compile.
 */
#ifndef ROUTE_INT_H
#define ROUTE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/holder.h"
#include "jpos/json.h"
#include "jpos/keys.h"
#include "route/route.h"

/* ---- arena ----------------------------------------------------------------- */
struct route__chunk;
struct route__arena {
    struct route__chunk *head;
    size_t bytes; /* total allocated, for stats */
};
void *route__arena_alloc(struct route__arena *a, size_t n); /* zeroed, 16-aligned */
char *route__arena_strndup(struct route__arena *a, const char *s, size_t n);
char *route__arena_strdup(struct route__arena *a, const char *s);
void route__arena_free(struct route__arena *a);

/* ---- entries ---------------------------------------------------------------- */
enum route__seg_type { ROUTE_SEG_LITERAL = 0, ROUTE_SEG_PARAM, ROUTE_SEG_WILDCARD };

struct route__seg {
    const char *text; /* literal text, or the parameter name */
    uint16_t len;
    uint8_t type;
};

struct route__tpl_part {
    const char *text; /* literal text; NULL for a parameter */
    uint16_t len;
    int8_t param; /* index into the route's params, or -1 */
};

enum route__kind { ROUTE_KIND_FULL = 0, ROUTE_KIND_WILDCARD = 1, ROUTE_KIND_PREFIX = 2 };

struct route__entry {
    struct route r; /* first: entries are handed out as `struct route *` */

    /* the pattern, without a wildcard segment (that is `has_wildcard`) */
    struct route__seg *segs;
    uint8_t nsegs; /* also the depth of the node the route ends at */
    bool has_wildcard;
    uint8_t kind;        /* enum route__kind */
    uint32_t param_mask; /* bit i: segment i is a parameter */
    /* segment index of each parameter; nsegs for the wildcard */
    uint8_t param_seg[ROUTE_MAX_PARAMS];

    struct route__tpl_part *tpl; /* compiled rewrite */
    uint8_t ntpl;

    /* for diagnostics */
    unsigned file_index; /* position in its file's "routes" array */
    unsigned name_line, name_col;
    unsigned match_line, match_col;
    bool invalid; /* had errors: kept only for the duplicate-name check */
};

static inline const struct route__entry *route__entry_of(const struct route *r)
{
    return (const struct route__entry *)r;
}

/* Precedence between two routes that end at the same or different nodes of
 * one host group: < 0 when a wins. Total: falls back to definition order. */
int route__rank_cmp(const struct route__entry *a, const struct route__entry *b);

/* ---- files (cache.c) ---------------------------------------------------------
 * One route file's parse result. Immutable once its builder call returns;
 * any thread may hold a reference. */
struct route__file {
    atomic_long refs;
    struct route__arena arena;     /* the entries and every string they hold */
    struct route__entry **entries; /* file order, invalid ones included */
    size_t n;
};

int route__file_new(struct route__file **out);
struct route__file *route__file_ref(struct route__file *f);
void route__file_unref(struct route__file *f); /* NULL-safe */

/* SHA-512 of `len` bytes at `text` into `out`. 0 or -EIO. Any thread. */
#define ROUTE__DIGEST_LEN 64
int route__digest(const char *text, size_t len, unsigned char out[ROUTE__DIGEST_LEN]);

/* The cache a builder reads route files through (route_builder_set_cache).
 * A lookup hits only when the file's bytes (their SHA-512 digest and
 * length) equal those cached and the
 * names routes are checked against (`ctx`, see route__cache_begin) are
 * those the cached result was checked against. */
struct route__cache_hit {
    struct route__file *file; /* a new reference */
};
/* Starts a directory read: `ctx` (ctx_len bytes) is the serialised
 * validation context; a different one empties the cache. Marks every
 * entry unseen. 0 or -ENOMEM. */
int route__cache_begin(struct route_cache *c, const char *ctx, size_t ctx_len);
/* The cached file for `path` when its bytes have `digest` (route__digest)
 * and `len` and it has at most `room` routes, else NULL (the caller parses
 * the file then, so that a file past the table's limit is reported where;
 * counted as a parse). Marks the entry seen either way. */
/* What stat(2) says of a file, to know it unchanged without reading it:
 * ctime moves on every write and every change of mtime, and no caller can
 * set it. `trusted`: the ctime was at least ROUTE__RACY_NS older than the
 * clock when the stamp was taken, so a later write cannot share it (a
 * write within one tick of the filesystem's clock could; git's "racily
 * clean" entries are the same case). */
struct route__stamp {
    uint64_t dev, ino, size;
    int64_t mtime_ns, ctime_ns;
    bool trusted;
};
#define ROUTE__RACY_NS 1000000000LL
/* The stamp of `path` now; false when it cannot be taken. */
bool route__stamp_of(const char *path, struct route__stamp *st);
/* The cached file of `path` when its stamp was trusted and equals `st`
 * (a reference; the file is not read at all then), and its routes fit in
 * `room`; else NULL and nothing is counted (the caller goes on to
 * route__cache_get). */
struct route__file *route__cache_get_stamped(struct route_cache *c, const char *path,
                                             const struct route__stamp *st, size_t room);
/* Whether `path` is cached with the digest of its bytes. */
bool route__cache_has_digest(struct route_cache *c, const char *path);
/* Counts a parse of a file not looked up by digest; NULL. */
struct route__file *route__cache_miss(struct route_cache *c);
/* Records the stamp taken before the bytes of `path` were read, after a
 * hit by digest or a put. */
void route__cache_stamp(struct route_cache *c, const char *path, const struct route__stamp *st);
struct route__file *route__cache_get(struct route_cache *c, const char *path,
                                     const unsigned char digest[ROUTE__DIGEST_LEN], size_t len,
                                     size_t room);
/* Stores `file` (a new reference is taken) for `path` with the digest and
 * length of its bytes (digest NULL: none; only a stamp will find it). 0 or -ENOMEM (then nothing is
 * stored for a path not cached before, and a cached one is unchanged). */
int route__cache_put(struct route_cache *c, const char *path,
                     const unsigned char digest[ROUTE__DIGEST_LEN], size_t len,
                     struct route__file *file);
/* Ends a directory read that listed every file: entries not seen since
 * route__cache_begin (removed files) are dropped. */
void route__cache_end(struct route_cache *c);

/* ---- parsing ---------------------------------------------------------------- */
struct route__parse_ctx {
    struct route__arena *arena;
    const char *const *upstreams;
    size_t nupstreams;
    const char *const *workflows; /* names a route's "workflow" may take */
    size_t nworkflows;
    bool any_workflow;           /* every name is taken (the definitions had errors) */
    const char *const *policies; /* names a route's "policies" may list */
    size_t npolicies;
    bool any_policy;  /* every name is taken (the policy files had errors) */
    const char *file; /* arena copy, shared by the file's routes */
};

/* Parses the route at cursor `v` (element `index` of a file's "routes"); on
 * success or on errors returns the entry (invalid set when errors were
 * reported), NULL on out of memory. */
struct route__entry *route__parse_route(struct route__parse_ctx *ctx, const struct jpos_val *v,
                                        unsigned index, struct jpos_diags *d);

/* ---- key tables (keys.c) ----------------------------------------------------- */

/* The ids parse.c and compile.c know the key-table rows by. */
enum route__key {
    ROUTE__K_NONE = 0,
    ROUTE__K_ROUTES,
    ROUTE__K_SCHEMA,
    ROUTE__K_NAME,
    ROUTE__K_DESCRIPTION,
    ROUTE__K_MATCH,
    ROUTE__K_UPSTREAM,
    ROUTE__K_RESPOND,
    ROUTE__K_STRIP_PREFIX,
    ROUTE__K_PRESERVE_HOST,
    ROUTE__K_REWRITE,
    ROUTE__K_REQUEST_HEADERS,
    ROUTE__K_RESPONSE_HEADERS,
    ROUTE__K_TIMEOUTS,
    ROUTE__K_RETRIES,
    ROUTE__K_MAX_BODY_BYTES,
    ROUTE__K_PRIORITY,
    ROUTE__K_PATH_POLICY,
    ROUTE__K_HOST,
    ROUTE__K_PATH,
    ROUTE__K_PATH_PREFIX,
    ROUTE__K_METHODS,
    ROUTE__K_MATCH_HEADERS,
    ROUTE__K_STATUS,
    ROUTE__K_BODY,
    ROUTE__K_RESPOND_HEADERS,
    ROUTE__K_SET,
    ROUTE__K_ADD,
    ROUTE__K_REMOVE,
    ROUTE__K_CONNECT_MS,
    ROUTE__K_RESPONSE_MS,
    ROUTE__K_TUNNEL_IDLE_MS,
    ROUTE__K_ESCAPED_SLASHES,
    ROUTE__K_PARAMS,
    ROUTE__K_WORKFLOW,
    ROUTE__K_REDIRECT_HTTPS,
    ROUTE__K_POLICIES,
    ROUTE__K_LIMITS,
    ROUTE__K_MAX_MEMORY_BYTES,
    ROUTE__K_MAX_TIME_MS,
};

extern const struct jpos_section *const route__match_keys;
extern const struct jpos_section *const route__respond_keys;
extern const struct jpos_section *const route__edit_keys;
extern const struct jpos_section *const route__timeout_keys;
extern const struct jpos_section *const route__limits_keys;
extern const struct jpos_section *const route__path_policy_keys;
extern const struct jpos_section *const route__route_keys;

/* The row's id for member key `key` of section `s`; ROUTE__K_NONE when the
 * key is not in the table. */
static inline int route__key_id(const struct jpos_section *s, const char *key)
{
    const struct jpos_key *k = jpos_key_find(s, key);
    return k ? k->id : ROUTE__K_NONE;
}

/* The row of `id` in section `s` (which holds it): values are read with the
 * row's range, so that a limit is written once, for `tandem check` and the
 * schema alike. */
static inline const struct jpos_key *route__key_row(const struct jpos_section *s, int id)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (s->keys[i].id == id)
            return &s->keys[i];
    return NULL;
}

/* ---- tables ----------------------------------------------------------------- */
struct route__node {
    uint32_t param_child; /* 0: none */
    uint32_t nliteral;    /* literal children */
    uint32_t full_off, full_n;
    uint32_t wild_off, wild_n;
    uint32_t prefix_off, prefix_n;
    uint32_t depth;
};

struct route__edge {
    uint64_t hash;
    const char *seg;
    uint32_t len;
    uint32_t parent;
    uint32_t child; /* 0: empty slot */
};

struct route__host {
    uint64_t hash;
    const char *name; /* lower case; suffixes start with '.' */
    uint32_t len;
    uint32_t root; /* 0: empty slot */
};

/* One reader counter per cache line (holder.c). */
struct route__rslot {
    _Alignas(64) atomic_long n;
};

struct route_table {
    struct route__rslot readers[ROUTE_HOLDER_SLOTS];
    atomic_long owners;
    uint64_t version; /* written by the holder's writer before publication */

    struct route__entry *entries; /* this table's copies, definition order */
    struct route__entry **routes; /* &entries[i] */
    size_t nroutes;
    size_t nfiles;
    struct route__file **held; /* references to the files entries point into */
    size_t nheld;

    struct route__node *nodes; /* nodes[0] unused so that 0 means none */
    uint32_t nnodes;
    const struct route__entry **lists;
    struct route__edge *edges;
    uint32_t edge_mask;
    struct route__host *hosts; /* exact host roots */
    uint32_t host_mask, nhosts;
    struct route__host *suffixes; /* `*.suffix` roots, key ".suffix" */
    uint32_t suffix_mask, nsuffixes;
    uint32_t any_root; /* 0: no route without a host */

    /* route_table_attach: dropped when the table is freed */
    void *attachment;
    void (*attachment_drop)(void *);
};

uint64_t route__hash(const char *p, size_t n, uint64_t seed);
void route__table_free(struct route_table *t);

#endif
