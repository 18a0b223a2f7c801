/*
 * alloc.c: memory and cleanups that belong to a process. Every block from
 * rt_alloc is on its process's list and freed when the process exits,
 * however it exits; deferred cleanups run (last registered first) before
 * that, on the scheduler's stack, so they must not block.
 */
#include "rt_int.h"

#include <stdlib.h>
#include <string.h>

static struct rt__alloc_hdr *hdr_of(void *p)
{
    return (struct rt__alloc_hdr *)p - 1;
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

void *rt_alloc(size_t size)
{
    struct rt_proc *p = rt__self();
    if (!p || size > SIZE_MAX - sizeof(struct rt__alloc_hdr))
        return NULL;
    if (!within_cap(p, size))
        return NULL;
    struct rt__alloc_hdr *h = malloc(sizeof(*h) + size);
    if (!h)
        return NULL;
    h->size = size;
    h->prev = NULL;
    h->next = p->allocs;
    if (p->allocs)
        p->allocs->prev = h;
    p->allocs = h;
    RT__RELAXED_ADD(&p->alloc_bytes, size);
    return h + 1;
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

void rt_free(void *m)
{
    if (!m)
        return;
    struct rt_proc *p = rt__self();
    struct rt__alloc_hdr *h = hdr_of(m);
    if (p)
        unlink_hdr(p, h);
    free(h);
}

void *rt_realloc(void *m, size_t size)
{
    if (!m)
        return rt_alloc(size);
    struct rt_proc *p = rt__self();
    if (!p)
        return NULL;
    struct rt__alloc_hdr *h = hdr_of(m);
    if (size > SIZE_MAX - sizeof(*h))
        return NULL;
    if (size > h->size && !within_cap(p, size - h->size))
        return NULL; /* the old block stays valid and owned */
    unlink_hdr(p, h);
    struct rt__alloc_hdr *n = realloc(h, sizeof(*h) + size);
    bool failed = !n;
    if (failed)
        n = h; /* the old block stays valid and owned */
    else
        n->size = size;
    n->prev = NULL;
    n->next = p->allocs;
    if (p->allocs)
        p->allocs->prev = n;
    p->allocs = n;
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

uint64_t rt_defer(void (*fn)(void *), void *arg)
{
    struct rt_proc *p = rt__self();
    if (!p || !fn)
        return 0;
    struct rt__defer *d = malloc(sizeof(*d));
    if (!d)
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
            free(d);
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
        free(d);
    }
}
