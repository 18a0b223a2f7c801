/*
 * alloc.c: memory and cleanups that belong to a process. Every block from
 * rt_alloc is on its process's list and freed when the process exits,
 * however it exits; deferred cleanups run (last registered first) before
 * that, on the scheduler's stack, so they must not block.
 *
 * The arena (rt_spawn_opts.arena). A process spawned with one has a block
 * of that many bytes at the head of its list, marked by RT__ARENA in its
 * header's `pad` (which holds the bytes used beside it). Blocks and
 * deferred cleanups are cut from it one after the other while they fit,
 * each block behind a header like any other (prev and next NULL: it is on
 * no list), and the system allocator is asked only for what does not fit.
 * What is freed from the arena is not reused: it all goes with the arena
 * when the process exits, in one free. A short-lived process that makes
 * a dozen small blocks and cleanups (a request) so costs one malloc and
 * one free instead of a dozen of each. Under AddressSanitizer the arena's
 * unused bytes, every block's header and every freed block are poisoned,
 * so that an overrun or a use after free is still reported.
 */
#include "rt_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(a, n) ASAN_POISON_MEMORY_REGION((a), (n))
#define UNPOISON(a, n) ASAN_UNPOISON_MEMORY_REGION((a), (n))
#else
#define POISON(a, n) ((void)(a), (void)(n))
#define UNPOISON(a, n) ((void)(a), (void)(n))
#endif

#define RT__ARENA ((size_t)1 << 63)
#define ALIGN_UP(n) (((n) + 15) & ~(size_t)15)

static struct rt__alloc_hdr *hdr_of(void *p)
{
    return (struct rt__alloc_hdr *)p - 1;
}

/* p's arena, or NULL. */
static struct rt__alloc_hdr *arena_of(const struct rt_proc *p)
{
    struct rt__alloc_hdr *a = p->allocs;
    return a && (a->pad & RT__ARENA) ? a : NULL;
}

/* Whether `m` lies in arena `a` (may be NULL). */
static bool in_arena(const struct rt__alloc_hdr *a, const void *m)
{
    if (!a)
        return false;
    const char *base = (const char *)(a + 1);
    return (const char *)m >= base && (const char *)m < base + a->size;
}

/* An arena block's header `pad` once the block is freed: a second free or
 * a realloc of it is a programmer error, reported as glibc reports a
 * double free (the arena would otherwise uncount it twice). */
#define ARENA_FREED ((size_t)0xf7eef7ee)

static void arena_check_live(const struct rt__alloc_hdr *h, const char *what)
{
    if (h->pad == ARENA_FREED) {
        fprintf(stderr, "%s: arena block %p already freed\n", what, (const void *)(h + 1));
        abort();
    }
}

/* `bytes` (a multiple of 16) cut from p's arena, or NULL when they do not
 * fit (or there is no arena). */
static void *arena_take(struct rt_proc *p, size_t bytes)
{
    struct rt__alloc_hdr *a = arena_of(p);
    if (!a)
        return NULL;
    size_t used = a->pad & ~RT__ARENA;
    if (bytes > a->size - used)
        return NULL;
    a->pad = (used + bytes) | RT__ARENA;
    char *m = (char *)(a + 1) + used;
    UNPOISON(m, bytes);
    return m;
}

/* Puts h on p's list: at its head, or behind the arena, which stays first. */
static void link_hdr(struct rt_proc *p, struct rt__alloc_hdr *h)
{
    struct rt__alloc_hdr *a = arena_of(p);
    struct rt__alloc_hdr **head = a ? &a->next : &p->allocs;
    h->prev = a;
    h->next = *head;
    if (*head)
        (*head)->prev = h;
    *head = h;
}

int rt__arena_make(struct rt_proc *p, size_t bytes)
{
    bytes = ALIGN_UP(bytes);
    struct rt__alloc_hdr *a = malloc(sizeof(*a) + bytes);
    if (!a)
        return -ENOMEM;
    a->prev = a->next = NULL;
    a->size = bytes;
    a->pad = RT__ARENA;
    POISON(a + 1, bytes);
    p->allocs = a;
    return 0;
}

/* Whether growing p's memory by `more` bytes stays within its cap: the
 * only cost on the allocation path is the load and compare of max_memory. */
static bool within_cap(struct rt_proc *p, size_t more)
{
    if (__builtin_expect(!p->max_memory, 1))
        return true;
    size_t held = RT__GET(&p->alloc_bytes);
    if (held <= p->max_memory && more <= p->max_memory - held)
        return true;
    rt__limit_hit(p, RT_MEMORY_LIMIT);
    return false;
}

/* A block of `size` bytes for p, its cap already checked. */
static void *alloc_in(struct rt_proc *p, size_t size)
{
    struct rt__alloc_hdr *h = arena_take(p, sizeof(*h) + ALIGN_UP(size));
    if (h) {
        h->prev = h->next = NULL;
        h->size = size;
        h->pad = 0;
        POISON(h, sizeof(*h));
        POISON((char *)(h + 1) + size, ALIGN_UP(size) - size);
    } else {
        h = malloc(sizeof(*h) + size);
        if (!h)
            return NULL;
        h->size = size;
        h->pad = 0;
        link_hdr(p, h);
    }
    RT__RELAXED_ADD(&p->alloc_bytes, size);
    return h + 1;
}

void *rt_alloc(size_t size)
{
    struct rt_proc *p = rt__self();
    if (!p || size > SIZE_MAX - sizeof(struct rt__alloc_hdr) - 15)
        return NULL;
    if (!within_cap(p, size))
        return NULL;
    return alloc_in(p, size);
}

void *rt_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *m = rt_alloc(n * size);
    if (m)
        memset(m, 0, n * size);
    return m;
}

static void unlink_hdr(struct rt_proc *p, struct rt__alloc_hdr *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        p->allocs = h->next;
    if (h->next)
        h->next->prev = h->prev;
    RT__RELAXED_ADD(&p->alloc_bytes, -h->size);
}

/* An arena block given back: counted no more, its bytes poisoned until
 * the arena goes. */
static void arena_free(struct rt_proc *p, struct rt__alloc_hdr *h)
{
    UNPOISON(h, sizeof(*h));
    arena_check_live(h, "rt_free");
    size_t size = h->size;
    RT__RELAXED_ADD(&p->alloc_bytes, -size);
    h->pad = ARENA_FREED;
#ifndef NDEBUG
    /* As MALLOC_PERTURB_ does for the C library's blocks: a use after
     * free reads garbage, not the old bytes. */
    memset(h + 1, 0xa5, size);
#endif
    POISON(h, sizeof(*h) + ALIGN_UP(size));
}

void rt_free(void *m)
{
    if (!m)
        return;
    struct rt_proc *p = rt__self();
    struct rt__alloc_hdr *h = hdr_of(m);
    if (p && in_arena(arena_of(p), m)) {
        arena_free(p, h);
        return;
    }
    if (p)
        unlink_hdr(p, h);
    free(h);
}

/* rt_realloc of a block in the arena: shrunk in place, or moved to a new
 * block (from what is left of the arena, else the system allocator). */
static void *arena_realloc(struct rt_proc *p, struct rt__alloc_hdr *h, size_t size)
{
    UNPOISON(h, sizeof(*h));
    arena_check_live(h, "rt_realloc");
    size_t old = h->size;
    if (size <= old) {
        RT__RELAXED_ADD(&p->alloc_bytes, -(old - size));
        h->size = size;
        POISON(h, sizeof(*h));
        POISON((char *)(h + 1) + size, ALIGN_UP(old) - size);
        return h + 1;
    }
    POISON(h, sizeof(*h));
    if (!within_cap(p, size - old))
        return NULL; /* the old block stays valid and owned */
    void *n = alloc_in(p, size);
    if (!n)
        return NULL;
    memcpy(n, h + 1, old);
    arena_free(p, h);
    /* alloc_in counted the new block whole: the cap saw only the growth. */
    return n;
}

void *rt_realloc(void *m, size_t size)
{
    if (!m)
        return rt_alloc(size);
    struct rt_proc *p = rt__self();
    if (!p)
        return NULL;
    struct rt__alloc_hdr *h = hdr_of(m);
    if (size > SIZE_MAX - sizeof(*h) - 15)
        return NULL;
    if (in_arena(arena_of(p), m))
        return arena_realloc(p, h, size);
    if (size > h->size && !within_cap(p, size - h->size))
        return NULL; /* the old block stays valid and owned */
    unlink_hdr(p, h);
    struct rt__alloc_hdr *n = realloc(h, sizeof(*h) + size);
    bool failed = !n;
    if (failed)
        n = h; /* the old block stays valid and owned */
    else
        n->size = size;
    link_hdr(p, n);
    RT__RELAXED_ADD(&p->alloc_bytes, n->size);
    return failed ? NULL : n + 1;
}

char *rt_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = rt_alloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void rt__alloc_release_all(struct rt_proc *p)
{
    struct rt__alloc_hdr *a = arena_of(p);
    if (a)
        UNPOISON(a + 1, a->size);
    struct rt__alloc_hdr *h = p->allocs;
    while (h) {
        struct rt__alloc_hdr *n = h->next;
        free(h);
        h = n;
    }
    p->allocs = NULL;
    RT__SET(&p->alloc_bytes, 0);
    p->crash_state = NULL; /* it lived in that memory */
}

static void defer_free(struct rt_proc *p, struct rt__defer *d)
{
    if (in_arena(arena_of(p), d))
        POISON(d, ALIGN_UP(sizeof(*d)));
    else
        free(d);
}

uint64_t rt_defer(void (*fn)(void *), void *arg)
{
    struct rt_proc *p = rt__self();
    if (!p || !fn)
        return 0;
    struct rt__defer *d = arena_take(p, ALIGN_UP(sizeof(*d)));
    if (!d && !(d = malloc(sizeof(*d))))
        return 0;
    d->fn = fn;
    d->arg = arg;
    d->handle = rt_make_ref();
    d->next = p->defers;
    p->defers = d;
    return d->handle;
}

void rt_undefer(uint64_t handle, bool run)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return;
    for (struct rt__defer **pp = &p->defers; *pp; pp = &(*pp)->next) {
        if ((*pp)->handle == handle) {
            struct rt__defer *d = *pp;
            *pp = d->next;
            if (run)
                d->fn(d->arg);
            defer_free(p, d);
            return;
        }
    }
}

void rt__defers_run(struct rt_proc *p)
{
    while (p->defers) {
        struct rt__defer *d = p->defers;
        p->defers = d->next;
        d->fn(d->arg);
        defer_free(p, d);
    }
}
