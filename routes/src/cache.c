/*
 * cache.c: parsed route files and the cache that keeps them between builds
 * (route.h, "the parse cache"; route_int.h, "Files").
 *
 * A `struct route__file` is one file's entries in an arena of its own,
 * shared by reference; it never changes once its builder call returns.
 *
 * The cache maps a file's path to the SHA-512 digest and length of its
 * bytes as last read, and its parsed file. The digest, not the bytes: the
 * cache would otherwise hold a copy of every file (up to ROUTE_MAX_FILES x
 * ROUTE_MAX_FILE_BYTES); a strong hash because a collision would serve
 * stale routes. A file is hashed only when its stat stamp (route__stamp:
 * device, inode, size, mtime, ctime) moved or was taken within a second of
 * its last change; otherwise it is not even read. An open-addressing table keyed by the path's
 * hash; entries carry a `seen` mark so that a directory read can drop the files it did not list.
 * The validation context (the names routes were checked against) is kept
 * serialised; a read with another context empties the cache, since a cached
 * result may say "unknown upstream" where the new names would not, or the
 * other way round.
 *
 * Bounds: the cache holds at most the files of one directory read
 * (ROUTE_MAX_FILES), since unseen files are dropped at the end of each
 * read; its memory is a path and a digest per file plus their parsed
 * routes, which the tables built from them share.
 *
 * The cache never makes a build fail: when one of its allocations fails,
 * the build goes on without it (compile.c).
 *
 * One builder at a time uses a cache; the reference count is atomic because
 * the last reference may be dropped by another thread (a load finishing on
 * a blocking thread after its router exited).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mbedtls/sha512.h>
#include <mbedtls/version.h>

#include "route_int.h"

int route__digest(const char *text, size_t len, unsigned char out[ROUTE__DIGEST_LEN])
{
    /* SHA-512 rather than SHA-256: in software on 64-bit machines it takes
     * about 36 instructions a byte against 64, and a full reload hashes
     * every file just written. The *_ret name of mbedtls 2.x is the plain
     * name of 3.x; the last argument 0 selects SHA-512, not SHA-384. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    int r = mbedtls_sha512((const unsigned char *)text, len, out, 0);
#else
    int r = mbedtls_sha512_ret((const unsigned char *)text, len, out, 0);
#endif
    return r ? -EIO : 0;
}

/* ---- files ------------------------------------------------------------------ */

int route__file_new(struct route__file **out)
{
    struct route__file *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    atomic_init(&f->refs, 1);
    *out = f;
    return 0;
}

struct route__file *route__file_ref(struct route__file *f)
{
    /* Relaxed: taking a reference needs one already held, which orders it. */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void route__file_unref(struct route__file *f)
{
    if (!f)
        return;
    /* acq_rel: every holder's reads of the file happen before the free. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(f->entries);
    route__arena_free(&f->arena);
    free(f);
}

/* ---- the cache ---------------------------------------------------------------- */

struct slot {
    uint64_t hash;
    char *path;                              /* NULL: empty */
    unsigned char digest[ROUTE__DIGEST_LEN]; /* SHA-512 of the bytes, if has_digest */
    bool has_digest;
    struct route__stamp stamp; /* taken before they were read */
    size_t len;
    struct route__file *file;
    bool seen;
};

struct route_cache {
    atomic_long refs;
    struct slot *slots;
    size_t cap, n; /* cap: 0 or a power of two, at most half full */
    char *ctx;
    size_t ctx_len;
    uint64_t parsed, reused;
};

int route_cache_new(struct route_cache **out)
{
    struct route_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    atomic_init(&c->refs, 1);
    *out = c;
    return 0;
}

struct route_cache *route_cache_ref(struct route_cache *c)
{
    /* Relaxed: as route__file_ref. */
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

static void slot_clear(struct slot *s)
{
    free(s->path);
    route__file_unref(s->file);
    memset(s, 0, sizeof(*s));
}

static void clear_all(struct route_cache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].path)
            slot_clear(&c->slots[i]);
    c->n = 0;
}

void route_cache_unref(struct route_cache *c)
{
    if (!c)
        return;
    /* acq_rel: the last builder's use of the cache happens before the free. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    clear_all(c);
    free(c->slots);
    free(c->ctx);
    free(c);
}

size_t route_cache_files(const struct route_cache *c)
{
    return c->n;
}

void route_cache_counts(const struct route_cache *c, uint64_t *parsed, uint64_t *reused)
{
    *parsed = c->parsed;
    *reused = c->reused;
}

static struct slot *find(const struct route_cache *c, const char *path, uint64_t h)
{
    if (!c->cap)
        return NULL;
    for (size_t j = (size_t)h & (c->cap - 1); c->slots[j].path; j = (j + 1) & (c->cap - 1))
        if (c->slots[j].hash == h && strcmp(c->slots[j].path, path) == 0)
            return &c->slots[j];
    return NULL;
}

/* Moves the occupied slots into a table of `cap` slots (a power of two
 * greater than twice the count). */
static int rehash(struct route_cache *c, size_t cap)
{
    struct slot *v = calloc(cap, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->slots[i].path)
            continue;
        size_t j = (size_t)c->slots[i].hash & (cap - 1);
        while (v[j].path)
            j = (j + 1) & (cap - 1);
        v[j] = c->slots[i];
    }
    free(c->slots);
    c->slots = v;
    c->cap = cap;
    return 0;
}

int route__cache_begin(struct route_cache *c, const char *ctx, size_t ctx_len)
{
    if (!c->ctx || c->ctx_len != ctx_len || memcmp(c->ctx, ctx, ctx_len) != 0) {
        char *copy = malloc(ctx_len ? ctx_len : 1);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, ctx, ctx_len);
        clear_all(c);
        free(c->ctx);
        c->ctx = copy;
        c->ctx_len = ctx_len;
    }
    for (size_t i = 0; i < c->cap; i++)
        c->slots[i].seen = false;
    return 0;
}

bool route__stamp_of(const char *path, struct route__stamp *st)
{
    struct stat sb;
    struct timespec now;
    if (stat(path, &sb) < 0 || clock_gettime(CLOCK_REALTIME, &now) < 0)
        return false;
    st->dev = (uint64_t)sb.st_dev;
    st->ino = (uint64_t)sb.st_ino;
    st->size = (uint64_t)sb.st_size;
    st->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    st->ctime_ns = (int64_t)sb.st_ctim.tv_sec * 1000000000LL + sb.st_ctim.tv_nsec;
    int64_t now_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
    st->trusted = now_ns - st->ctime_ns >= ROUTE__RACY_NS;
    return true;
}

static bool same_stamp(const struct route__stamp *a, const struct route__stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

struct route__file *route__cache_get_stamped(struct route_cache *c, const char *path,
                                             const struct route__stamp *st, size_t room)
{
    struct slot *s = find(c, path, route__hash(path, strlen(path), 0));
    if (!s || !s->stamp.trusted || !same_stamp(&s->stamp, st) || s->file->n > room)
        return NULL;
    s->seen = true;
    c->reused++;
    return route__file_ref(s->file);
}

bool route__cache_has_digest(struct route_cache *c, const char *path)
{
    struct slot *s = find(c, path, route__hash(path, strlen(path), 0));
    return s && s->has_digest;
}

struct route__file *route__cache_miss(struct route_cache *c)
{
    c->parsed++;
    return NULL;
}

void route__cache_stamp(struct route_cache *c, const char *path, const struct route__stamp *st)
{
    struct slot *s = find(c, path, route__hash(path, strlen(path), 0));
    if (s)
        s->stamp = *st;
}

struct route__file *route__cache_get(struct route_cache *c, const char *path,
                                     const unsigned char digest[ROUTE__DIGEST_LEN], size_t len,
                                     size_t room)
{
    struct slot *s = find(c, path, route__hash(path, strlen(path), 0));
    if (s)
        s->seen = true;
    /* The bytes, by their digest: a file rewritten within one mtime tick
     * with the same size is still noticed. */
    if (!s || !s->has_digest || s->len != len ||
        memcmp(s->digest, digest, ROUTE__DIGEST_LEN) != 0 || s->file->n > room) {
        c->parsed++;
        return NULL;
    }
    c->reused++;
    return route__file_ref(s->file);
}

int route__cache_put(struct route_cache *c, const char *path,
                     const unsigned char digest[ROUTE__DIGEST_LEN], size_t len,
                     struct route__file *file)
{
    uint64_t h = route__hash(path, strlen(path), 0);
    struct slot *s = find(c, path, h);
    if (!s) {
        if ((c->n + 1) * 2 > c->cap && rehash(c, c->cap ? c->cap * 2 : 64) < 0)
            return -ENOMEM;
        char *p = strdup(path);
        if (!p)
            return -ENOMEM;
        size_t j = (size_t)h & (c->cap - 1);
        while (c->slots[j].path)
            j = (j + 1) & (c->cap - 1);
        s = &c->slots[j];
        s->hash = h;
        s->path = p;
        c->n++;
    } else {
        route__file_unref(s->file);
    }
    s->has_digest = digest != NULL;
    if (digest)
        memcpy(s->digest, digest, ROUTE__DIGEST_LEN);
    memset(&s->stamp, 0, sizeof s->stamp); /* the caller's, if it has one (route__cache_stamp) */
    s->len = len;
    s->file = route__file_ref(file);
    s->seen = true;
    return 0;
}

void route__cache_end(struct route_cache *c)
{
    size_t dropped = 0;
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].path && !c->slots[i].seen) {
            slot_clear(&c->slots[i]);
            dropped++;
        }
    if (!dropped)
        return;
    c->n -= dropped;
    /* Emptied slots would break the probe chains of the ones after them:
     * move the survivors into a fresh table of the same size. */
    struct slot *v = calloc(c->cap, sizeof(*v));
    if (!v) {
        /* Without memory to rebuild, forget everything: a cache miss costs
         * a parse, never a wrong answer. */
        clear_all(c);
        return;
    }
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->slots[i].path)
            continue;
        size_t j = (size_t)c->slots[i].hash & (c->cap - 1);
        while (v[j].path)
            j = (j + 1) & (c->cap - 1);
        v[j] = c->slots[i];
    }
    free(c->slots);
    c->slots = v;
}
