/*
 * stack.c: process stacks, pooled per scheduler and carved from shared
 * regions.
 *
 * vm.max_map_count (65530 by default, not raisable in a container) limits
 * how many separate mappings a process may have. A guard page splits a
 * mapping, costing two map entries per stack, so guard-paged stacks alone
 * would stop near 32k. Tandem therefore:
 *  - carves stacks from regions of RT__STACKS_PER_REGION stacks (one mapping
 *    each, with MAP_NORESERVE so untouched pages cost nothing);
 *  - gives the first `guarded_stacks` stacks (default 8192: 16k map entries)
 *    a PROT_NONE guard page at their low end; an overflow into it faults,
 *    and the SIGSEGV handler (sched.c) ends only that process, with reason
 *    stack_overflow;
 *  - puts a canary at the low end of every stack, checked each time a
 *    process switches out; a smashed canary on an unguarded stack is a
 *    fatal error naming the process (memory next to it may be corrupt);
 *  - lets idle processes hibernate without any stack, so a million idle
 *    processes need no stacks at all.
 * Stacks are recycled through a per-scheduler pool (no locking) backed by a
 * global pool; they are returned to the OS only at rt_stop.
 */
#include "rt_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#define RT__STACKS_PER_REGION 64
#define POOL_LOCAL_MAX 256
#define CANARY 0x54414e44454d2121ull /* "TANDEM!!" */

struct region {
    struct region *next;
    char *mem;
    size_t len;
    struct rt__stack *descs;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct region *regions;
static struct rt__stack *global_pool; /* same-size stacks, under lock */
static size_t global_pool_n;
static size_t guarded_count;
static _Atomic size_t in_use, pooled;
static size_t page;

static int grow(size_t size)
{
    size_t n = RT__STACKS_PER_REGION;
    size_t len = n * size;
    char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED)
        return -ENOMEM;
    struct region *r = malloc(sizeof(*r));
    struct rt__stack *sts = calloc(n, sizeof(*sts));
    if (!r || !sts) {
        free(r);
        free(sts);
        munmap(mem, len);
        return -ENOMEM;
    }
    r->mem = mem;
    r->len = len;
    r->descs = sts;
    r->next = regions;
    regions = r;
    size_t limit = rt__rt.cfg.guarded_stacks;
    for (size_t i = 0; i < n; i++) {
        struct rt__stack *st = &sts[i];
        st->base = mem + i * size;
        st->size = size;
        st->guarded = false;
        if (guarded_count < limit && mprotect(st->base, page, PROT_NONE) == 0) {
            st->guarded = true;
            guarded_count++;
            st->base += page;
            st->size -= page;
        }
        *(uint64_t *)st->base = CANARY;
        st->next = global_pool;
        global_pool = st;
        global_pool_n++;
    }
    atomic_fetch_add_explicit(&pooled, n, memory_order_relaxed);
    return 0;
}

int rt__stack_get(struct rt__sched *s, size_t size, struct rt__stack **out)
{
    (void)size; /* one size per run: cfg.stack_size (see rt_spawn) */
    struct rt__stack *st = NULL;
    if (s && s->stack_pool) {
        st = s->stack_pool;
        s->stack_pool = st->next;
        s->stack_pool_n--;
    } else {
        pthread_mutex_lock(&lock);
        if (!page)
            page = (size_t)sysconf(_SC_PAGESIZE);
        if (!global_pool) {
            int r = grow(rt__rt.cfg.stack_size);
            if (r < 0) {
                pthread_mutex_unlock(&lock);
                return r;
            }
        }
        st = global_pool;
        global_pool = st->next;
        global_pool_n--;
        pthread_mutex_unlock(&lock);
    }
    st->next = NULL;
#if defined(__SANITIZE_ADDRESS__)
    /* A recycled stack keeps the shadow poison of frames its last owner
     * abandoned (exit and hibernation never unwind): clear it. */
    __asan_unpoison_memory_region(st->base, st->size);
#endif
    /* Relaxed: statistics only. */
    atomic_fetch_add_explicit(&in_use, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&pooled, 1, memory_order_relaxed);
    *out = st;
    return 0;
}

void rt__stack_put(struct rt__sched *s, struct rt__stack *st)
{
    *(uint64_t *)st->base = CANARY;
    atomic_fetch_sub_explicit(&in_use, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pooled, 1, memory_order_relaxed);
    if (s && s->stack_pool_n < POOL_LOCAL_MAX) {
        st->next = s->stack_pool;
        s->stack_pool = st;
        s->stack_pool_n++;
        return;
    }
    /* Give the pages back before parking the stack in the global pool, so
     * that a burst of processes does not pin its peak stack memory. */
    madvise(st->base + page, st->size - page, MADV_DONTNEED);
    pthread_mutex_lock(&lock);
    st->next = global_pool;
    global_pool = st;
    global_pool_n++;
    pthread_mutex_unlock(&lock);
}

bool rt__stack_canary_ok(const struct rt__stack *st)
{
    return *(const uint64_t *)st->base == CANARY;
}

bool rt__stack_is_guard(const struct rt__stack *st, const void *addr)
{
    const char *a = addr;
    return st->guarded && a >= st->base - page && a < st->base;
}

size_t rt__stacks_in_use(void)
{
    return atomic_load_explicit(&in_use, memory_order_relaxed);
}

size_t rt__stacks_pooled(void)
{
    return atomic_load_explicit(&pooled, memory_order_relaxed);
}

void rt__stacks_done(void)
{
    pthread_mutex_lock(&lock);
    while (regions) {
        struct region *r = regions;
        regions = r->next;
        munmap(r->mem, r->len);
        free(r->descs);
        free(r);
    }
    global_pool = NULL;
    global_pool_n = 0;
    guarded_count = 0;
    atomic_store(&in_use, 0);
    atomic_store(&pooled, 0);
    pthread_mutex_unlock(&lock);
}
