/*
 * compile.c: route builder (collect, cross-check) and compilation into a
 * route table (route_int.h describes the trie).
 *
 * Cross-route checks: duplicate names, and conflicts — two routes that end
 * at the same trie node with the same kind (so the same host group and the
 * same path pattern up to parameter names) and that rank equal for some
 * request: same priority, as many header conditions, both or neither
 * listing methods, methods that overlap and header conditions that some
 * request can satisfy at once. Anything else is ordered by route__rank_cmp,
 * which is what the matcher uses.
 *
 * Compile time is O(total segments + routes log routes); reading and parsing
 * the files dominates (see tests/bench/routes), so a builder reading a
 * directory through a parse cache (cache.c) parses only the files whose
 * bytes changed and shares the others' parsed routes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jpos/file.h"
#include "route_int.h"

struct route_builder {
    char **upstreams;
    size_t nupstreams;
    char **workflows;
    size_t nworkflows;
    bool any_workflow; /* route_builder_set_workflows(b, NULL, 0) */
    char **policies;
    size_t npolicies;
    bool any_policy;               /* route_builder_set_policies(b, NULL, 0) */
    struct route__entry **entries; /* into the arenas of `files` */
    size_t n, cap;
    struct route__file **files; /* references, in the order added */
    size_t nheld, cap_held;
    size_t nfiles;             /* route files read (those that were JSON) */
    size_t errors;             /* errors reported through this builder */
    bool too_many;             /* ROUTE_MAX_ROUTES was reported */
    struct route_cache *cache; /* route_builder_set_cache; NULL: none */
};

int route_builder_new(struct route_builder **out, const char *const *upstreams, size_t n)
{
    struct route_builder *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    if (n) {
        b->upstreams = calloc(n, sizeof(*b->upstreams));
        if (!b->upstreams)
            goto nomem;
        for (size_t i = 0; i < n; i++) {
            if (!(b->upstreams[i] = strdup(upstreams[i] ? upstreams[i] : "")))
                goto nomem;
            b->nupstreams = i + 1;
        }
    }
    *out = b;
    return 0;
nomem:
    route_builder_free(b);
    return -ENOMEM;
}

void route_builder_free(struct route_builder *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nupstreams; i++)
        free(b->upstreams[i]);
    free(b->upstreams);
    for (size_t i = 0; i < b->nworkflows; i++)
        free(b->workflows[i]);
    free(b->workflows);
    for (size_t i = 0; i < b->npolicies; i++)
        free(b->policies[i]);
    free(b->policies);
    free(b->entries);
    for (size_t i = 0; i < b->nheld; i++)
        route__file_unref(b->files[i]);
    free(b->files);
    route_cache_unref(b->cache);
    free(b);
}

int route_builder_set_cache(struct route_builder *b, struct route_cache *c)
{
    route_cache_unref(b->cache);
    b->cache = c ? route_cache_ref(c) : NULL;
    return 0;
}

/* Keeps a reference to `f` and appends its entries. 0 or -ENOMEM (then
 * nothing changed). */
static int hold_file(struct route_builder *b, struct route__file *f)
{
    if (b->nheld == b->cap_held) {
        size_t cap = b->cap_held ? b->cap_held * 2 : 16;
        struct route__file **v = realloc(b->files, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        b->files = v;
        b->cap_held = cap;
    }
    if (b->n + f->n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + f->n)
            cap *= 2;
        struct route__entry **v = realloc(b->entries, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        b->entries = v;
        b->cap = cap;
    }
    if (f->n) /* a file without routes has no array (memcpy wants one) */
        memcpy(b->entries + b->n, f->entries, f->n * sizeof(*f->entries));
    b->n += f->n;
    b->files[b->nheld++] = route__file_ref(f);
    return 0;
}

/* Replaces the name list *v (*nv names) by a copy of `names`. */
static int names_set(char ***v, size_t *nv, const char *const *names, size_t n)
{
    if (!names)
        n = 0;
    char **c = calloc(n ? n : 1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(c[i] = strdup(names[i] ? names[i] : ""))) {
            while (i--)
                free(c[i]);
            free(c);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < *nv; i++)
        free((*v)[i]);
    free(*v);
    *v = c;
    *nv = n;
    return 0;
}

int route_builder_set_workflows(struct route_builder *b, const char *const *names, size_t n)
{
    int r = names_set(&b->workflows, &b->nworkflows, names, n);
    if (r == 0)
        b->any_workflow = names == NULL;
    return r;
}

int route_builder_set_policies(struct route_builder *b, const char *const *names, size_t n)
{
    int r = names_set(&b->policies, &b->npolicies, names, n);
    if (r == 0)
        b->any_policy = names == NULL;
    return r;
}

/* Parses one file's text into a new file object (*out, also when the text
 * had errors; NULL when it was not JSON). Entries are not yet the
 * builder's. Returns 0, -EINVAL (errors in d) or -ENOMEM. */
static int parse_text(struct route_builder *b, const char *file, const char *text, size_t len,
                      struct jpos_diags *d, struct route__file **out)
{
    size_t before = d->nerrors;
    struct route__file *f = NULL;
    size_t cap = 0;
    int r;
    struct jpos_doc doc;
    *out = NULL;
    r = jpos_doc_parse_compact(&doc, file, text, len, d);
    if (r < 0)
        goto out;
    if ((r = route__file_new(&f)) < 0)
        goto out;
    struct route__parse_ctx ctx = {
        .arena = &f->arena,
        .upstreams = (const char *const *)b->upstreams,
        .nupstreams = b->nupstreams,
        .workflows = (const char *const *)b->workflows,
        .nworkflows = b->nworkflows,
        .any_workflow = b->any_workflow,
        .policies = (const char *const *)b->policies,
        .npolicies = b->npolicies,
        .any_policy = b->any_policy,
        .file = route__arena_strdup(&f->arena, doc.file),
    };
    if (!ctx.file) {
        r = -ENOMEM;
        goto out;
    }
    struct jpos_val root, m, routes;
    bool has_routes = false;
    jpos_val_root(&doc, &root);
    if (jpos_typeof(&root) != JSON_OBJECT) {
        jpos_err(d, &root, "a route file holds an object {\"routes\": [...]}, got %s",
                 jpos_val_type_name(&root));
        goto out;
    }
    struct jpos_iter it;
    jpos_iter_init(&it, &root);
    while (jpos_iter_next(&it, &m)) {
        const struct jpos_key *k = jpos_key_find(&route_file_keys, m.key);
        const char *s;
        if (k && k->id == ROUTE__K_ROUTES) {
            routes = m;
            has_routes = true;
        } else if (k && k->id == ROUTE__K_SCHEMA) {
            jpos_string(d, &m, (size_t)k->max, &s, NULL);
        } else {
            jpos_keys_unknown(d, &m, &route_file_keys);
        }
    }
    if (!has_routes) {
        jpos_err(d, &root, "route file has no \"routes\" array");
        goto out;
    }
    if (!jpos_array(d, &routes))
        goto out;
    struct jpos_val rv;
    jpos_iter_init(&it, &routes);
    while (jpos_iter_next(&it, &rv)) {
        if (b->n + f->n >= ROUTE_MAX_ROUTES) {
            if (!b->too_many)
                jpos_err(d, &rv, "too many routes: a table holds at most %d", ROUTE_MAX_ROUTES);
            b->too_many = true;
            break;
        }
        struct route__entry *e = route__parse_route(&ctx, &rv, (unsigned)it.i - 1, d);
        if (!e) {
            r = -ENOMEM;
            goto out;
        }
        if (f->n == cap) {
            cap = cap ? cap * 2 : 64;
            struct route__entry **v = realloc(f->entries, cap * sizeof(*v));
            if (!v) {
                r = -ENOMEM;
                goto out;
            }
            f->entries = v;
        }
        f->entries[f->n++] = e;
    }
out:
    jpos_doc_done(&doc);
    if (r == -ENOMEM) {
        route__file_unref(f);
        return r;
    }
    *out = f;
    return d->nerrors != before ? -EINVAL : 0;
}

/* Adds a parsed file's entries (the builder takes its own reference). */
static int add_parsed(struct route_builder *b, struct route__file *f)
{
    if (!f)
        return 0;
    b->nfiles++;
    return hold_file(b, f);
}

int route_builder_add_text(struct route_builder *b, const char *file, const char *text, size_t len,
                           struct jpos_diags *d)
{
    size_t before = d->nerrors;
    struct route__file *f;
    int r = parse_text(b, file, text, len, d, &f);
    if (r != -ENOMEM) {
        int q = add_parsed(b, f);
        if (q < 0)
            r = q;
    }
    route__file_unref(f);
    b->errors += d->nerrors - before;
    if (r == -ENOMEM)
        return r;
    return d->nerrors != before ? -EINVAL : 0;
}

/* Reads one file of a directory through `cache`: a file with the cached
 * bytes adds the cached routes; another is parsed and, when its parse
 * reported nothing at all, cached with its bytes' digest. The cache only
 * ever saves a parse: when it cannot hash or store a file, the file is
 * used uncached and the build goes on. */
static int add_file_cached(struct route_builder *b, struct route_cache *cache, const char *path,
                           struct jpos_diags *d)
{
    char *text;
    size_t len;
    size_t before = d->nerrors;
    /* Past the table's limit a parse reports where: no hit then. */
    size_t room = b->n < ROUTE_MAX_ROUTES ? ROUTE_MAX_ROUTES - b->n : 0;
    /* A file whose stamp is trusted and unchanged is not even read (most
     * files of a reload); the stamp is taken before the bytes are, so a
     * write in between shows in the next stamp. */
    struct route__stamp st;
    bool stamped = route__stamp_of(path, &st);
    struct route__file *f = stamped ? route__cache_get_stamped(cache, path, &st, room) : NULL;
    if (f) {
        int q = add_parsed(b, f);
        route__file_unref(f);
        return q;
    }
    int r = jpos_file_load(path, ROUTE_MAX_FILE_BYTES, &text, &len, d);
    if (r < 0) {
        b->errors += d->nerrors - before;
        return r;
    }
    /* A trusted stamp is all a later read needs to know the file: no
     * digest then (a change of stamp means a parse). A file changed within
     * the last second is known by its digest, and so is one cached by its
     * digest whose stamp has only now become trusted. */
    bool trusted = stamped && st.trusted;
    unsigned char digest[ROUTE__DIGEST_LEN];
    bool hashed =
        (!trusted || route__cache_has_digest(cache, path)) && route__digest(text, len, digest) == 0;
    f = hashed ? route__cache_get(cache, path, digest, len, room) : route__cache_miss(cache);
    if (f) {
        /* The same bytes checked against the same names: the same routes,
         * and no diagnostics (only clean files are cached). */
        free(text);
        if (stamped)
            route__cache_stamp(cache, path, &st);
        r = add_parsed(b, f);
        route__file_unref(f);
        return r;
    }
    size_t nd = d->n + d->dropped + d->nerrors + d->nwarnings;
    r = parse_text(b, path, text, len, d, &f);
    free(text);
    if (r != -ENOMEM) {
        int q = add_parsed(b, f);
        if (q < 0)
            r = q;
    }
    /* A failed put leaves the file uncached: the next read parses it. */
    if (r == 0 && f && (hashed || trusted) && nd == d->n + d->dropped + d->nerrors + d->nwarnings &&
        route__cache_put(cache, path, hashed ? digest : NULL, len, f) == 0 && stamped)
        route__cache_stamp(cache, path, &st);
    route__file_unref(f);
    b->errors += d->nerrors - before;
    if (r == -ENOMEM)
        return r;
    return d->nerrors != before ? -EINVAL : 0;
}

int route_builder_add_file(struct route_builder *b, const char *path, struct jpos_diags *d)
{
    char *text;
    size_t len;
    size_t before = d->nerrors;
    int r = jpos_file_load(path, ROUTE_MAX_FILE_BYTES, &text, &len, d);
    if (r < 0) {
        b->errors += d->nerrors - before;
        return r;
    }
    r = route_builder_add_text(b, path, text, len, d);
    free(text);
    return r;
}

/* The names routes are checked against, serialised: a cached parse is only
 * valid for the same ones. NUL-separated lists, each after a tag. */
static int context_key(const struct route_builder *b, char **out, size_t *len)
{
    const struct {
        char tag;
        char **v;
        size_t n;
    } lists[] = {{'u', b->upstreams, b->nupstreams},
                 {b->any_workflow ? 'W' : 'w', b->workflows, b->nworkflows},
                 {b->any_policy ? 'P' : 'p', b->policies, b->npolicies}};
    size_t total = 0;
    for (size_t i = 0; i < 3; i++) {
        total += 2;
        for (size_t j = 0; j < lists[i].n; j++)
            total += strlen(lists[i].v[j]) + 1;
    }
    char *s = malloc(total), *p = s;
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < 3; i++) {
        *p++ = lists[i].tag;
        for (size_t j = 0; j < lists[i].n; j++) {
            size_t l = strlen(lists[i].v[j]);
            memcpy(p, lists[i].v[j], l + 1);
            p += l + 1;
        }
        *p++ = '\0';
    }
    *out = s;
    *len = total;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int route_builder_add_dir(struct route_builder *b, const char *dir, struct jpos_diags *d)
{
    size_t before = d->nerrors;
    int r = 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    DIR *dp = opendir(dir);
    if (!dp) {
        jpos_diag_add(d, JPOS_DIAG_ERROR, dir, 0, 0, NULL, "cannot open routes directory: %s",
                      strerror(errno));
        b->errors++;
        r = -EINVAL;
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (n == ROUTE_MAX_FILES) {
            jpos_diag_add(d, JPOS_DIAG_ERROR, dir, 0, 0, NULL,
                          "more than %d route files in the directory", ROUTE_MAX_FILES);
            b->errors++;
            r = -EINVAL;
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = realloc(names, cap * sizeof(*v));
            if (!v) {
                r = -ENOMEM;
                goto out;
            }
            names = v;
        }
        if (!(names[n] = strdup(de->d_name))) {
            r = -ENOMEM;
            goto out;
        }
        n++;
    }
    qsort(names, n, sizeof(*names), cmp_str);
    /* Without memory for the context's key the directory is read without
     * the cache (whose entries were checked against some other names). */
    struct route_cache *cache = b->cache;
    if (cache) {
        char *key;
        size_t klen;
        if (context_key(b, &key, &klen) < 0) {
            cache = NULL;
        } else {
            if (route__cache_begin(cache, key, klen) < 0)
                cache = NULL;
            free(key);
        }
    }
    size_t files = 0;
    for (size_t i = 0; i < n; i++) {
        char *path;
        if (asprintf(&path, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/",
                     names[i]) < 0) {
            r = -ENOMEM;
            goto out;
        }
        struct stat st;
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
            free(path);
            continue; /* a directory called x.json, a socket... */
        }
        files++;
        int q = cache ? add_file_cached(b, cache, path, d) : route_builder_add_file(b, path, d);
        free(path);
        if (q == -ENOMEM) {
            r = q;
            goto out;
        }
    }
    if (cache)
        route__cache_end(cache); /* every file was listed: drop removed ones */
    if (files == 0)
        jpos_diag_add(d, JPOS_DIAG_WARNING, dir, 0, 0, NULL,
                      "no route files (*.json) in the routes directory: every request will get "
                      "404");
out:
    if (dp)
        closedir(dp);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (r == -ENOMEM)
        return r;
    return d->nerrors != before ? -EINVAL : 0;
}

/* ---- ranking ---------------------------------------------------------------- */

int route__rank_cmp(const struct route__entry *a, const struct route__entry *b)
{
    if (a->r.priority != b->r.priority)
        return a->r.priority > b->r.priority ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->nsegs != b->nsegs)
        return a->nsegs > b->nsegs ? -1 : 1;
    uint32_t x = a->param_mask ^ b->param_mask;
    if (x) {
        /* The leftmost segment where one has a literal and the other a
         * parameter decides: the literal wins. */
        uint32_t low = x & (~x + 1);
        return (a->param_mask & low) ? 1 : -1;
    }
    if (a->r.nheaders != b->r.nheaders)
        return a->r.nheaders > b->r.nheaders ? -1 : 1;
    bool ae = a->r.methods != 0, be = b->r.methods != 0;
    if (ae != be)
        return ae ? -1 : 1;
    return a->r.index < b->r.index ? -1 : a->r.index > b->r.index;
}

/* ---- hash tables used while compiling -------------------------------------- */

struct cbuild {
    struct route_table *t;
    uint32_t cap_nodes;
    uint32_t nedges, cap_edges; /* cap is mask + 1 */
};

static int node_new(struct cbuild *cb, uint32_t depth, uint32_t *out)
{
    struct route_table *t = cb->t;
    if (t->nnodes == cb->cap_nodes) {
        uint32_t cap = cb->cap_nodes ? cb->cap_nodes * 2 : 64;
        struct route__node *v = realloc(t->nodes, (size_t)cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        t->nodes = v;
        cb->cap_nodes = cap;
    }
    uint32_t id = t->nnodes++;
    memset(&t->nodes[id], 0, sizeof(t->nodes[id]));
    t->nodes[id].depth = depth;
    *out = id;
    return 0;
}

static uint64_t edge_hash(uint32_t parent, const char *seg, size_t len)
{
    return route__hash(seg, len, (uint64_t)parent * 0x9E3779B97F4A7C15ull);
}

static int edges_grow(struct cbuild *cb)
{
    struct route_table *t = cb->t;
    uint32_t cap = cb->cap_edges ? cb->cap_edges * 2 : 256;
    struct route__edge *v = calloc(cap, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (uint32_t i = 0; i < cb->cap_edges; i++) {
        struct route__edge *e = &t->edges[i];
        if (!e->child)
            continue;
        uint32_t j = (uint32_t)e->hash & (cap - 1);
        while (v[j].child)
            j = (j + 1) & (cap - 1);
        v[j] = *e;
    }
    free(t->edges);
    t->edges = v;
    cb->cap_edges = cap;
    t->edge_mask = cap - 1;
    return 0;
}

static int literal_child(struct cbuild *cb, uint32_t parent, const struct route__seg *s,
                         uint32_t *out)
{
    struct route_table *t = cb->t;
    uint64_t h = edge_hash(parent, s->text, s->len);
    if (cb->cap_edges) {
        for (uint32_t j = (uint32_t)h & t->edge_mask; t->edges[j].child;
             j = (j + 1) & t->edge_mask) {
            struct route__edge *e = &t->edges[j];
            if (e->hash == h && e->parent == parent && e->len == s->len &&
                memcmp(e->seg, s->text, s->len) == 0) {
                *out = e->child;
                return 0;
            }
        }
    }
    if ((cb->nedges + 1) * 2 > cb->cap_edges && edges_grow(cb) < 0)
        return -ENOMEM;
    uint32_t child;
    if (node_new(cb, t->nodes[parent].depth + 1, &child) < 0)
        return -ENOMEM;
    uint32_t j = (uint32_t)h & t->edge_mask;
    while (t->edges[j].child)
        j = (j + 1) & t->edge_mask;
    t->edges[j] = (struct route__edge){
        .hash = h, .seg = s->text, .len = s->len, .parent = parent, .child = child};
    cb->nedges++;
    t->nodes[parent].nliteral++;
    *out = child;
    return 0;
}

struct hbuild {
    struct route__host *v;
    uint32_t n, cap;
};

static int host_root(struct cbuild *cb, struct hbuild *hb, const char *name, size_t len,
                     uint32_t *out)
{
    uint64_t h = route__hash(name, len, 0);
    if (hb->cap) {
        for (uint32_t j = (uint32_t)h & (hb->cap - 1); hb->v[j].root; j = (j + 1) & (hb->cap - 1))
            if (hb->v[j].hash == h && hb->v[j].len == len &&
                memcmp(hb->v[j].name, name, len) == 0) {
                *out = hb->v[j].root;
                return 0;
            }
    }
    if ((hb->n + 1) * 2 > hb->cap) {
        uint32_t cap = hb->cap ? hb->cap * 2 : 16;
        struct route__host *v = calloc(cap, sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < hb->cap; i++) {
            if (!hb->v[i].root)
                continue;
            uint32_t j = (uint32_t)hb->v[i].hash & (cap - 1);
            while (v[j].root)
                j = (j + 1) & (cap - 1);
            v[j] = hb->v[i];
        }
        free(hb->v);
        hb->v = v;
        hb->cap = cap;
    }
    uint32_t root;
    if (node_new(cb, 0, &root) < 0)
        return -ENOMEM;
    uint32_t j = (uint32_t)h & (hb->cap - 1);
    while (hb->v[j].root)
        j = (j + 1) & (hb->cap - 1);
    hb->v[j] = (struct route__host){.hash = h, .name = name, .len = (uint32_t)len, .root = root};
    hb->n++;
    *out = root;
    return 0;
}

/* ---- conflicts -------------------------------------------------------------- */

static bool methods_overlap(const struct route__entry *a, const struct route__entry *b)
{
    if (!a->r.methods || !b->r.methods)
        return !a->r.methods && !b->r.methods;
    if (a->r.match_methods & b->r.match_methods & ~(unsigned)ROUTE_M_EXTENSION)
        return true;
    for (size_t i = 0; i < a->r.next_methods; i++)
        for (size_t j = 0; j < b->r.next_methods; j++)
            if (strcmp(a->r.ext_methods[i], b->r.ext_methods[j]) == 0)
                return true;
    return false;
}

static bool headers_compatible(const struct route__entry *a, const struct route__entry *b)
{
    for (size_t i = 0; i < a->r.nheaders; i++) {
        const struct route_header_cond *x = &a->r.headers[i];
        for (size_t j = 0; j < b->r.nheaders; j++) {
            const struct route_header_cond *y = &b->r.headers[j];
            if (strcmp(x->name, y->name) != 0)
                continue;
            bool xa = x->test == ROUTE_HDR_ABSENT, ya = y->test == ROUTE_HDR_ABSENT;
            if (xa != ya)
                return false;
            if (x->test == ROUTE_HDR_EQUALS && y->test == ROUTE_HDR_EQUALS &&
                (x->value_len != y->value_len || memcmp(x->value, y->value, x->value_len) != 0))
                return false;
        }
    }
    return true;
}

static void describe_methods(const struct route__entry *a, const struct route__entry *b, char *buf,
                             size_t cap)
{
    if (!a->r.methods) {
        snprintf(buf, cap, "any method");
        return;
    }
    unsigned common = a->r.match_methods & b->r.match_methods & ~(unsigned)ROUTE_M_EXTENSION;
    size_t len = route_methods_format(common, buf, cap);
    for (size_t i = 0; i < a->r.next_methods; i++)
        for (size_t j = 0; j < b->r.next_methods; j++)
            if (strcmp(a->r.ext_methods[i], b->r.ext_methods[j]) == 0 && len < cap) {
                int w =
                    snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", a->r.ext_methods[i]);
                if (w > 0)
                    len += (size_t)w;
            }
}

static void report_conflict(const struct route__entry *a, const struct route__entry *b,
                            struct jpos_diags *d)
{
    char methods[128], path[64];
    describe_methods(a, b, methods, sizeof(methods));
    snprintf(path, sizeof(path), "routes[%u].match", b->file_index);
    jpos_diag_add(d, JPOS_DIAG_ERROR, b->r.file, b->match_line ? b->match_line : b->r.line,
                  b->match_line ? b->match_col : b->r.column, path,
                  "route \"%s\" conflicts with route \"%s\" (%s:%u:%u): both match %s %s%s%s%s "
                  "with equal precedence; give one a higher \"priority\", or make their "
                  "methods or headers differ",
                  b->r.name ? b->r.name : "?", a->r.name ? a->r.name : "?", a->r.file,
                  a->match_line ? a->match_line : a->r.line,
                  a->match_line ? a->match_col : a->r.column, methods,
                  b->r.path_kind == ROUTE_PATH_PREFIX ? "prefix " : "", b->r.path,
                  b->r.host ? " on host " : " on any host", b->r.host ? b->r.host : "");
}

/* ---- compile ---------------------------------------------------------------- */

struct place {
    uint32_t node;
    uint32_t kind;
    struct route__entry *e;
};

static int cmp_place(const void *pa, const void *pb)
{
    const struct place *a = pa, *b = pb;
    if (a->node != b->node)
        return a->node < b->node ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return route__rank_cmp(a->e, b->e);
}

/* Resolves implied HEAD and reports conflicts within one list (one node,
 * one kind), sorted best first. */
static void check_list(struct place *p, size_t n, struct jpos_diags *d)
{
    bool explicit_head = false;
    for (size_t i = 0; i < n; i++)
        explicit_head = explicit_head || (p[i].e->r.methods & ROUTE_M_HEAD);
    for (size_t i = 0; i < n; i++) {
        struct route *r = &p[i].e->r;
        r->match_methods = r->methods;
        if ((r->methods & ROUTE_M_GET) && !explicit_head)
            r->match_methods |= ROUTE_M_HEAD;
    }
    for (size_t j = 1; j < n; j++) {
        const struct route__entry *b = p[j].e;
        for (size_t i = j; i-- > 0;) {
            const struct route__entry *a = p[i].e;
            if (a->r.priority != b->r.priority || a->r.nheaders != b->r.nheaders ||
                (a->r.methods != 0) != (b->r.methods != 0))
                break; /* sorted: nothing further back ranks equal */
            if (methods_overlap(a, b) && headers_compatible(a, b)) {
                report_conflict(a, b, d);
                break;
            }
        }
    }
}

static void check_names(struct route_builder *b, struct jpos_diags *d, int *r)
{
    size_t cap = 16;
    while (cap < b->n * 2)
        cap *= 2;
    const struct route__entry **tab = calloc(cap, sizeof(*tab));
    if (!tab) {
        *r = -ENOMEM;
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct route__entry *e = b->entries[i];
        if (!e->r.name)
            continue;
        size_t len = strlen(e->r.name);
        uint64_t h = route__hash(e->r.name, len, 0);
        size_t j = (size_t)h & (cap - 1);
        for (; tab[j]; j = (j + 1) & (cap - 1)) {
            if (strcmp(tab[j]->r.name, e->r.name) == 0) {
                char path[64];
                snprintf(path, sizeof(path), "routes[%u].name", e->file_index);
                jpos_diag_add(d, JPOS_DIAG_ERROR, e->r.file, e->name_line, e->name_col, path,
                              "duplicate route name \"%s\"; it is first defined at %s:%u:%u",
                              e->r.name, tab[j]->r.file, tab[j]->name_line, tab[j]->name_col);
                break;
            }
        }
        if (!tab[j])
            tab[j] = e;
    }
    free(tab);
}

int route_builder_compile(struct route_builder *b, struct route_table **out, struct jpos_diags *d)
{
    size_t before = d->nerrors;
    int r = 0;
    struct place *places = NULL;
    struct hbuild hosts = {0}, suffixes = {0};
    struct cbuild cb = {0};
    struct route_table *t = NULL;

    check_names(b, d, &r);
    if (r < 0)
        goto out;

    if (posix_memalign((void **)&t, 64, sizeof(*t)) != 0) {
        t = NULL;
        r = -ENOMEM;
        goto out;
    }
    memset(t, 0, sizeof(*t));
    cb.t = t;

    /* Room for the trie up front, so that it is not grown and rehashed as
     * it fills: at most one node per segment plus a root per route, at most
     * one edge per literal segment. */
    size_t nvalid = 0, nsegs = 0, nlit = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct route__entry *e = b->entries[i];
        if (e->invalid)
            continue;
        nvalid++;
        nsegs += e->nsegs;
        for (unsigned k = 0; k < e->nsegs; k++)
            nlit += e->segs[k].type == ROUTE_SEG_LITERAL;
    }
    size_t nodes_cap = 1 + nvalid + nsegs;
    if (nodes_cap <= UINT32_MAX / 2) {
        if (!(t->nodes = malloc(nodes_cap * sizeof(*t->nodes)))) {
            r = -ENOMEM;
            goto out;
        }
        cb.cap_nodes = (uint32_t)nodes_cap;
    }
    /* edges_grow's rule: at most half full */
    uint32_t edges_cap = 256;
    while (edges_cap < UINT32_MAX / 4 && (nlit + 1) * 2 > edges_cap)
        edges_cap *= 2;
    if (!(t->edges = calloc(edges_cap, sizeof(*t->edges)))) {
        r = -ENOMEM;
        goto out;
    }
    cb.cap_edges = edges_cap;
    t->edge_mask = edges_cap - 1;
    uint32_t dummy;
    if ((r = node_new(&cb, 0, &dummy)) < 0) /* node 0: "none" */
        goto out;
    /* The table's own copies: compiling writes index and match_methods,
     * which depend on the whole set, while the parsed entries are shared
     * with the cache and older tables. What the copies point at stays in
     * the files' arenas, which the table holds (below). */
    t->entries = malloc((nvalid ? nvalid : 1) * sizeof(*t->entries));
    t->routes = malloc((nvalid ? nvalid : 1) * sizeof(*t->routes));
    places = malloc((nvalid ? nvalid : 1) * sizeof(*places));
    if (!t->entries || !t->routes || !places) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (b->entries[i]->invalid)
            continue;
        struct route__entry *e = &t->entries[t->nroutes];
        *e = *b->entries[i];
        e->r.index = (unsigned)t->nroutes;
        t->routes[t->nroutes++] = e;

        uint32_t n;
        if (e->r.host_kind == ROUTE_HOST_EXACT) {
            r = host_root(&cb, &hosts, e->r.host, strlen(e->r.host), &n);
        } else if (e->r.host_kind == ROUTE_HOST_SUFFIX) {
            r = host_root(&cb, &suffixes, e->r.host + 1, strlen(e->r.host + 1), &n);
        } else {
            if (!t->any_root)
                r = node_new(&cb, 0, &t->any_root);
            n = t->any_root;
        }
        if (r < 0)
            goto out;
        for (unsigned s = 0; s < e->nsegs; s++) {
            const struct route__seg *sg = &e->segs[s];
            if (sg->type == ROUTE_SEG_PARAM) {
                if (!t->nodes[n].param_child) {
                    uint32_t c;
                    if ((r = node_new(&cb, t->nodes[n].depth + 1, &c)) < 0)
                        goto out;
                    t->nodes[n].param_child = c;
                }
                n = t->nodes[n].param_child;
            } else if ((r = literal_child(&cb, n, sg, &n)) < 0) {
                goto out;
            }
        }
        places[t->nroutes - 1] = (struct place){.node = n, .kind = e->kind, .e = e};
    }
    qsort(places, t->nroutes, sizeof(*places), cmp_place);
    t->lists = malloc((t->nroutes ? t->nroutes : 1) * sizeof(*t->lists));
    if (!t->lists) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < t->nroutes;) {
        size_t j = i;
        while (j < t->nroutes && places[j].node == places[i].node &&
               places[j].kind == places[i].kind)
            j++;
        check_list(places + i, j - i, d);
        struct route__node *nd = &t->nodes[places[i].node];
        uint32_t off = (uint32_t)i, cnt = (uint32_t)(j - i);
        switch (places[i].kind) {
        case ROUTE_KIND_FULL:
            nd->full_off = off;
            nd->full_n = cnt;
            break;
        case ROUTE_KIND_WILDCARD:
            nd->wild_off = off;
            nd->wild_n = cnt;
            break;
        default:
            nd->prefix_off = off;
            nd->prefix_n = cnt;
            break;
        }
        for (size_t k = i; k < j; k++)
            t->lists[k] = places[k].e;
        i = j;
    }
    t->hosts = hosts.v;
    t->host_mask = hosts.cap ? hosts.cap - 1 : 0;
    t->nhosts = hosts.n;
    hosts.v = NULL;
    t->suffixes = suffixes.v;
    t->suffix_mask = suffixes.cap ? suffixes.cap - 1 : 0;
    t->nsuffixes = suffixes.n;
    suffixes.v = NULL;

    if (b->errors || d->nerrors != before) {
        r = -EINVAL;
        goto out;
    }
    /* The table takes the builder's file references (and with them every
     * string its entries point at). */
    t->held = b->files;
    t->nheld = b->nheld;
    b->files = NULL;
    b->nheld = b->cap_held = 0;
    t->nfiles = b->nfiles;
    b->n = 0;
    b->nfiles = 0;
    atomic_init(&t->owners, 1);
    for (int i = 0; i < ROUTE_HOLDER_SLOTS; i++)
        atomic_init(&t->readers[i].n, 0);
    *out = t;
    t = NULL;
    r = 0;
out:
    free(places);
    free(hosts.v);
    free(suffixes.v);
    route__table_free(t);
    return r;
}

int route_table_load_dir(const char *dir, const char *const *upstreams, size_t n,
                         struct route_table **out, struct jpos_diags *d)
{
    struct route_builder *b;
    int r = route_builder_new(&b, upstreams, n);
    if (r < 0)
        return r;
    r = route_builder_add_dir(b, dir, d);
    if (r != -ENOMEM)
        r = route_builder_compile(b, out, d); /* fails if add_dir reported errors */
    route_builder_free(b);
    return r;
}

/* ---- tables ----------------------------------------------------------------- */

void route__table_free(struct route_table *t)
{
    if (!t)
        return;
    if (t->attachment_drop)
        t->attachment_drop(t->attachment);
    for (size_t i = 0; i < t->nheld; i++)
        route__file_unref(t->held[i]);
    free(t->held);
    free(t->entries);
    free(t->routes);
    free(t->nodes);
    free(t->lists);
    free(t->edges);
    free(t->hosts);
    free(t->suffixes);
    free(t);
}

struct route_table *route_table_ref(struct route_table *t)
{
    /* Relaxed: taking a reference needs one already held, which orders it. */
    atomic_fetch_add_explicit(&t->owners, 1, memory_order_relaxed);
    return t;
}

void route_table_unref(struct route_table *t)
{
    if (!t)
        return;
    /* acq_rel: every owner's use of the table happens before the free. */
    if (atomic_fetch_sub_explicit(&t->owners, 1, memory_order_acq_rel) == 1)
        route__table_free(t);
}

uint64_t route_table_version(const struct route_table *t)
{
    return t->version;
}

size_t route_table_count(const struct route_table *t)
{
    return t->nroutes;
}

const struct route *route_table_route(const struct route_table *t, size_t i)
{
    return i < t->nroutes ? &t->routes[i]->r : NULL;
}

const struct route *route_table_find(const struct route_table *t, const char *name)
{
    for (size_t i = 0; i < t->nroutes; i++)
        if (strcmp(t->routes[i]->r.name, name) == 0)
            return &t->routes[i]->r;
    return NULL;
}

void route_table_attach(struct route_table *t, void *p, void (*drop)(void *))
{
    if (t->attachment_drop)
        t->attachment_drop(t->attachment);
    t->attachment = p;
    t->attachment_drop = drop;
}

void *route_table_attachment(const struct route_table *t)
{
    return t->attachment;
}

size_t route_table_files(const struct route_table *t)
{
    return t->nfiles;
}
