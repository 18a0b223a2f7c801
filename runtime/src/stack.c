/*
 * stack.c: process stacks, pooled per scheduler and carved from shared
 * regions.
 *
 * vm.max_map_count (65530 by default, not raisable in a container) limits
 * how many separate mappings a process may have. A guard page splits a
 * mapping, costing two map entries per stack, so guard-paged stacks alone
 * would stop near 32k. Tandem therefore:
 *  - carves stacks of the default size from regions of
 *    RT__STACKS_PER_REGION stacks (one mapping each, with MAP_NORESERVE so
 *    untouched pages cost nothing);
 *  - gives the first `guarded_stacks` stacks (default 8192: 16k map entries)
 *    a PROT_NONE guard page at their low end, so that an overflow faults
 *    instead of writing over the next stack;
 *  - puts a canary at the low end of every stack, checked each time a
 *    process switches out; a smashed canary on an unguarded stack is a
 *    fatal error naming the process (memory next to it may be corrupt);
 *  - maps a stack of any other size (rt_spawn_opts.stack_size, for the few
 *    processes that do deep work such as parsing nested input) on its own,
 *    always guarded, and unmaps it when the process exits or hibernates;
 *  - lets idle processes hibernate without any stack, so a million idle
 *    processes need no stacks at all.
 * Stacks are recycled through a per-scheduler pool (no locking) backed by a
 * global pool; pooled stacks are unmapped only at rt_stop. Their pages go
 * back to the OS earlier: a stack parked in the global pool gives them back
 * as it is parked, and a scheduler about to sleep for want of work gives
 * back those of its pooled stacks beyond the RT__STACK_POOL_HOT most recently
 * used (rt__stack_pool_trim). A burst of thousands of processes (a
 * slow-client attack) therefore leaves at most RT__STACK_POOL_HOT stacks' pages
 * resident per scheduler once it has passed, while a busy scheduler, which
 * does not sleep, reuses its pooled stacks warm.
 *
 * Every stack is registered with valgrind from the moment it is carved or
 * mapped until it is unmapped, pooled or not (a pooled stack runs nothing,
 * so it costs nothing there). valgrind tells a switch between stacks from a
 * frame being pushed or popped only by the stacks it knows of: to it, the
 * stack pointer moving from a scheduler thread's stack to a process stack
 * less than --max-stackframe away looks like one stack growing or shrinking
 * over everything in between, which it then marks undefined or freed, and
 * every later read there (a thread's TLS, another process's frames) is a
 * false "invalid read". Registered, such a move is a switch and marks
 * nothing. The context switch (switch.S) needs nothing more: it only moves
 * the stack pointer between registered stacks.
 *
 * What an overflow costs, and why
 *
 * A process can be ended alone (reason stack_overflow, the rest of the
 * runtime carrying on) only where abandoning its frames is known to be
 * safe. Its frames may hold locks: the C library's (malloc's arena lock
 * while the fault lands inside malloc, a stdio stream's lock inside
 * printf, the dynamic linker's), the runtime's own (a run-queue or slot
 * lock), or the program's. A lock held by abandoned frames is never
 * released, and the next malloc on that scheduler thread, or any thread's
 * use of that stream, waits forever. Nothing in a fault says whether such
 * a lock is held: the faulting address is the guard page, the faulting
 * instruction may be the prologue of any function, and the frames above it
 * cannot be walked reliably from a signal handler (the C library keeps no
 * frame pointers; its callbacks run our code under its locks).
 *
 * The one place where the runtime does know is a runtime call that may
 * switch the process out: a process must hold no lock there (another
 * process on the same thread would deadlock on it, rt.h), and exit signals
 * already end processes there by abandoning their stacks. So:
 *  - runtime calls that count reductions (sends, receives, I/O, spawn,
 *    rt_reductions, rt_yield) check the stack; when less than the reserve
 *    (RT__STACK_RESERVE, at most a quarter of the stack) is left, the
 *    process ends with stack_overflow there. Deep recursion that makes
 *    runtime calls on its way down ends this way, cleanly;
 *  - a fault on a guard page (the overflow happened between runtime calls,
 *    in code that may hold a lock) is fatal: the SIGSEGV handler (sched.c)
 *    writes one report naming the process, its stack size and the faulting
 *    instruction to stderr with async-signal-safe calls only, then aborts.
 *    A loud crash that a supervisor of the whole program restarts is
 *    better than a scheduler thread that silently deadlocks.
 * Code that recurses on input a peer controls must bound the depth itself
 * and, when the bound needs more room, run in a process spawned with a
 * larger stack_size.
 */
#include "rt_fault.h"
#include "rt_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif
#if defined(RT_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
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
static size_t page; /* set by rt__stacks_init before any scheduler runs */
/* rt__test_stack_fail_nth: allocations left until the one that fails
 * (0: none is to fail). */
static _Atomic unsigned fail_countdown;

void rt__test_stack_fail_nth(unsigned nth)
{
    /* Relaxed: a test sets it before the spawns it is about. */
    atomic_store_explicit(&fail_countdown, nth, memory_order_relaxed);
}

/* A no-op (a few instructions) when not running under valgrind. */
static void vg_register(struct rt__stack *st)
{
#if defined(RT_HAVE_VALGRIND)
    /* valgrind takes the lowest and the highest byte of the stack. */
    st->vg_id = VALGRIND_STACK_REGISTER(st->base, st->base + st->size - 1);
#else
    (void)st;
#endif
}

/* Before the stack's memory is unmapped: a stale registration would make a
 * later mapping at the same address pass for this stack. */
static void vg_deregister(struct rt__stack *st)
{
#if defined(RT_HAVE_VALGRIND)
    VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
    st->vg_id = 0;
}

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
        vg_register(st); /* the canary is written when the stack is taken */
        st->next = global_pool;
        global_pool = st;
        global_pool_n++;
    }
    atomic_fetch_add_explicit(&pooled, n, memory_order_relaxed);
    return 0;
}

/* A stack of a size other than the default: its own mapping, always
 * guarded, never pooled. */
static int get_dedicated(size_t size, struct rt__stack **out)
{
    size_t len = size + page;
    struct rt__stack *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED || mprotect(mem, page, PROT_NONE) != 0) {
        if (mem != MAP_FAILED)
            munmap(mem, len);
        free(st);
        return -ENOMEM;
    }
    st->base = mem + page;
    st->size = size;
    st->guarded = true;
    st->dedicated = true;
    *(uint64_t *)st->base = CANARY;
    vg_register(st);
    *out = st;
    return 0;
}

int rt__stack_get(struct rt__sched *s, size_t size, struct rt__stack **out)
{
    struct rt__stack *st = NULL;
    if (rt__fault_hit(&fail_countdown))
        return -ENOMEM;
    if (size != rt__rt.cfg.stack_size) {
        int r = get_dedicated(size, &st);
        if (r < 0)
            return r;
    } else if (s && s->stack_pool) {
        st = s->stack_pool;
        s->stack_pool = st->next;
        s->stack_pool_n--;
        if (!st->released)
            s->stack_pool_warm--;
    } else {
        pthread_mutex_lock(&lock);
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
    st->released = false;
#if defined(__SANITIZE_ADDRESS__)
    /* A recycled stack keeps the shadow poison of frames its last owner
     * abandoned (exit and hibernation never unwind): clear it. */
    __asan_unpoison_memory_region(st->base, st->size);
#endif
    /* Here, not when pooled: a pooled stack may have given all its pages
     * back, the canary's too. */
    *(uint64_t *)st->base = CANARY;
    /* Relaxed: statistics only. */
    atomic_fetch_add_explicit(&in_use, 1, memory_order_relaxed);
    if (!st->dedicated)
        atomic_fetch_sub_explicit(&pooled, 1, memory_order_relaxed);
    *out = st;
    return 0;
}

void rt__stack_put(struct rt__sched *s, struct rt__stack *st)
{
    atomic_fetch_sub_explicit(&in_use, 1, memory_order_relaxed);
    if (st->dedicated) {
#if defined(__SANITIZE_ADDRESS__)
        /* The shadow of abandoned frames would outlive the mapping and
         * poison whatever is mapped here next. */
        __asan_unpoison_memory_region(st->base, st->size);
#endif
        vg_deregister(st);
        munmap(st->base - page, st->size + page);
        free(st);
        return;
    }
    atomic_fetch_add_explicit(&pooled, 1, memory_order_relaxed);
    if (s && s->stack_pool_n < POOL_LOCAL_MAX) {
        /* First out, warm: the pool keeps its warm stacks before its
         * released ones (rt__stack_pool_trim). */
        st->next = s->stack_pool;
        s->stack_pool = st;
        s->stack_pool_n++;
        s->stack_pool_warm++;
        return;
    }
    /* Give the pages back before parking the stack in the global pool, so
     * that a burst of processes does not pin its peak stack memory. */
    madvise(st->base, st->size, MADV_DONTNEED);
    pthread_mutex_lock(&lock);
    st->next = global_pool;
    global_pool = st;
    global_pool_n++;
    pthread_mutex_unlock(&lock);
}

void rt__stack_pool_trim(struct rt__sched *s)
{
    if (s->stack_pool_warm <= RT__STACK_POOL_HOT)
        return;
    /* The warm stacks come first, the most recently pooled at the head:
     * keep the first RT__STACK_POOL_HOT, release the warm ones after them. */
    struct rt__stack *st = s->stack_pool;
    for (size_t i = 0; i < RT__STACK_POOL_HOT; i++)
        st = st->next;
    for (; st && !st->released; st = st->next) {
        madvise(st->base, st->size, MADV_DONTNEED);
        st->released = true;
        s->stack_pool_warm--;
    }
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

void rt__stacks_init(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
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
        for (size_t i = 0; i < RT__STACKS_PER_REGION; i++)
            vg_deregister(&r->descs[i]);
        munmap(r->mem, r->len);
        free(r->descs);
        free(r);
    }
    global_pool = NULL;
    global_pool_n = 0;
    guarded_count = 0;
    atomic_store(&fail_countdown, 0);
    atomic_store(&in_use, 0);
    atomic_store(&pooled, 0);
    pthread_mutex_unlock(&lock);
}
