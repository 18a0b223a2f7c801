/*
 * proc.c: the process table, spawn, exit, links and monitors.
 *
 * The table is an array of chunk pointers; a chunk holds RT__CHUNK control
 * blocks that are never freed while the runtime runs (type-stable memory,
 * see rt_int.h), so a stale pointer to a block is always safe to read and a
 * stale pid never matches it.
 *
 * Free slots: each scheduler keeps a bounded cache of free slot indices
 * (RT__SLOT_CACHE), touched only by its own thread, so a spawn or an exit
 * on a scheduler takes no lock. Behind the caches is one global stack of
 * free slots and the fresh-slot mark under `slot_lock`: an empty cache takes
 * RT__SLOT_BATCH slots from it at once, a full one gives RT__SLOT_BATCH back,
 * so a scheduler that spawns more than it reaps (or the reverse, when work
 * stealing moves processes) locks the global list once per batch. A slot
 * goes to the cache of the scheduler that reaps it, whichever one spawned
 * it. Threads that are not schedulers (the main thread, blocking threads)
 * use the global list directly.
 *
 * A cached slot is free but cannot be had by another scheduler, so the table
 * holds max_processes slots plus room for every cache to be full: the
 * process limit (rt__rt.live) is still what refuses a spawn, never a slot
 * parked in another scheduler's cache. A scheduler gives its cache back
 * when its thread ends (rt_stop), and rt__proc_init empties every cache, so
 * no index outlives the table it was taken from.
 *
 * The pid rules do not change with the caches: a slot is cached only after
 * the reaper has cleared its pid and bumped its generation, and a slot moves
 * between threads only through `slot_lock`.
 *
 * Exit: a process that exits switches to its scheduler, which reaps it in
 * rt__finish: deferred cleanups, memory, messages it held, name, inbox
 * (closed then drained), then exit signals to links and DOWN messages to
 * monitors, in that order, so that whoever receives the signal finds the name already gone.
 */
#include "rt_fault.h"
#include "rt_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RT__CHUNK_BITS 12
#define RT__CHUNK (1u << RT__CHUNK_BITS)
/* Bound of a scheduler's slot cache, and how many slots move at once between
 * a cache and the global list: a batch of 32 makes the global lock 1/32 of
 * what it was for a scheduler that only spawns or only reaps, and keeping
 * half the cache after a drain leaves room for both spawns and exits. */
#define RT__SLOT_CACHE 64u
#define RT__SLOT_BATCH 32u

/* One scheduler's free slots, top of the stack last. Only its thread
 * touches it, except the test hook that reads `n` (relaxed). On a cache
 * line of its own: two schedulers' caches never share one. */
struct slot_cache {
    _Alignas(64) _Atomic uint32_t n;
    uint32_t slot[RT__SLOT_CACHE];
};
static struct slot_cache caches[RT_MAX_SCHEDULERS];

static struct rt_proc *_Atomic *chunks; /* nslots / RT__CHUNK entries */
static size_t nchunks;
static size_t nslots; /* max_processes + room for full caches */
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t *free_slots; /* stack of free slot indices */
static size_t free_n;
static uint32_t next_fresh; /* slots below this have been used */
/* Acquisitions of slot_lock since rt_start (rt__test_slot_lock_count).
 * Written only under the lock; read by tests (relaxed). */
static _Atomic uint64_t slot_lock_count;

int rt__proc_init(void);
void rt__proc_done(void);

int rt__proc_init(void)
{
    size_t max = rt__rt.cfg.max_processes;
    nslots = max + (size_t)rt__rt.nsched * RT__SLOT_CACHE;
    nchunks = (nslots + RT__CHUNK - 1) / RT__CHUNK;
    chunks = calloc(nchunks, sizeof(*chunks));
    /* The free stack can hold every slot; NORESERVE keeps it cheap until a
     * million processes have actually exited. */
    free_slots = mmap(NULL, nslots * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!chunks || free_slots == MAP_FAILED) {
        free(chunks);
        chunks = NULL;
        if (free_slots != MAP_FAILED)
            munmap(free_slots, nslots * sizeof(uint32_t));
        free_slots = NULL;
        return -ENOMEM;
    }
    free_n = 0;
    next_fresh = 1; /* slot 0 unused: pid 0 is never valid */
    /* A cache left from an earlier run would name slots of a table that is
     * gone (schedulers give theirs back as they end; this also covers a
     * start that failed half-way). No scheduler thread runs yet. */
    for (size_t i = 0; i < RT_MAX_SCHEDULERS; i++)
        atomic_store_explicit(&caches[i].n, 0, memory_order_relaxed);
    atomic_store_explicit(&slot_lock_count, 0, memory_order_relaxed);
    return 0;
}

void rt__proc_done(void)
{
    for (size_t i = 0; i < nchunks; i++) {
        struct rt_proc *c = atomic_load_explicit(&chunks[i], memory_order_relaxed);
        if (c) {
            for (size_t j = 0; j < RT__CHUNK; j++)
                free(c[j].detail);
            munmap(c, RT__CHUNK * sizeof(struct rt_proc));
        }
    }
    free(chunks);
    chunks = NULL;
    if (free_slots)
        munmap(free_slots, nslots * sizeof(uint32_t));
    free_slots = NULL;
}

struct rt_proc *rt__lookup(rt_pid pid)
{
    uint32_t slot = (uint32_t)pid;
    if (!chunks || slot == 0 || slot >= nslots)
        return NULL;
    /* Acquire pairs with the release in global_take: the chunk's
     * initialised blocks are visible. */
    struct rt_proc *c = atomic_load_explicit(&chunks[slot >> RT__CHUNK_BITS], memory_order_acquire);
    return c ? &c[slot & (RT__CHUNK - 1)] : NULL;
}

struct rt_proc *rt__self(void)
{
    struct rt__sched *s = rt__cur_sched;
    return s ? atomic_load_explicit(&s->current, memory_order_relaxed) : NULL;
}

static void slot_lock_take(void)
{
    pthread_mutex_lock(&slot_lock);
    RT__RELAXED_ADD(&slot_lock_count, 1);
}

/* Makes sure the chunk holding `slot` exists and initialises that slot's
 * block, the next fresh one; under slot_lock. A block is initialised when
 * its slot is first handed out, not with its chunk: the chunk's pages are
 * then touched (and count in the resident set) only as far as slots are
 * used, not 4,096 blocks at once. Nobody reads a block beyond next_fresh:
 * no pid names it yet, and rt__proc_foreach_slot stops there. */
static int fresh_slot_init(uint32_t slot)
{
    size_t ci = slot >> RT__CHUNK_BITS;
    struct rt_proc *c = atomic_load_explicit(&chunks[ci], memory_order_relaxed);
    if (!c) {
        c = mmap(NULL, RT__CHUNK * sizeof(struct rt_proc), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c == MAP_FAILED)
            return -ENOMEM;
        /* Release: readers that find the chunk see its (zeroed) pages. */
        atomic_store_explicit(&chunks[ci], c, memory_order_release);
    }
    struct rt_proc *p = &c[slot & (RT__CHUNK - 1)];
    p->slot = slot;
    p->gen = 1;
    atomic_store_explicit(&p->state, RT__FREE, memory_order_relaxed);
    atomic_store_explicit(&p->closed, 1, memory_order_relaxed);
    return 0;
}

/* Takes up to `want` free slots from the global list, then fresh ones;
 * returns how many it wrote to out (0: the table is full or out of
 * memory). */
static uint32_t global_take(uint32_t *out, uint32_t want)
{
    uint32_t got = 0;
    slot_lock_take();
    while (got < want && free_n > 0)
        out[got++] = free_slots[--free_n];
    while (got < want && next_fresh < nslots) {
        if (fresh_slot_init(next_fresh) < 0)
            break;
        out[got++] = next_fresh++;
    }
    pthread_mutex_unlock(&slot_lock);
    return got;
}

static void global_put(const uint32_t *slots, uint32_t n)
{
    slot_lock_take();
    memcpy(&free_slots[free_n], slots, n * sizeof(*slots));
    free_n += n;
    pthread_mutex_unlock(&slot_lock);
}

/* The calling scheduler's cache, or NULL on a thread that is no scheduler. */
static struct slot_cache *own_cache(void)
{
    struct rt__sched *s = rt__cur_sched;
    return s ? &caches[s->id] : NULL;
}

/* The refill and the drain are kept out of line (noinline), so that the
 * common case of a spawn or an exit, a cache that is neither empty nor
 * full, sets up no call frame for them. */

/* An empty cache takes a batch; returns how many it now holds. */
__attribute__((noinline)) static uint32_t cache_refill(struct slot_cache *c)
{
    return global_take(c->slot, RT__SLOT_BATCH);
}

/* A full cache gives a batch back; returns how many it keeps. The oldest
 * go: the newest are the likeliest to be in the CPU's cache when the next
 * spawn here reuses them. */
__attribute__((noinline)) static uint32_t cache_drain(struct slot_cache *c)
{
    global_put(c->slot, RT__SLOT_BATCH);
    memmove(c->slot, c->slot + RT__SLOT_BATCH,
            (RT__SLOT_CACHE - RT__SLOT_BATCH) * sizeof(c->slot[0]));
    return RT__SLOT_CACHE - RT__SLOT_BATCH;
}

static struct rt_proc *slot_alloc(void)
{
    struct slot_cache *c = own_cache();
    uint32_t slot;
    if (!c)
        return global_take(&slot, 1) ? rt__lookup(slot) : NULL;
    /* Relaxed: only this thread writes n; the store is for the test hook. */
    uint32_t n = RT__GET(&c->n);
    if (n == 0 && (n = cache_refill(c)) == 0)
        return NULL;
    slot = c->slot[--n];
    RT__SET(&c->n, n);
    return rt__lookup(slot);
}

static void slot_free(struct rt_proc *p)
{
    struct slot_cache *c = own_cache();
    if (!c) {
        global_put(&p->slot, 1);
        return;
    }
    uint32_t n = RT__GET(&c->n);
    if (n == RT__SLOT_CACHE)
        n = cache_drain(c);
    c->slot[n++] = p->slot;
    RT__SET(&c->n, n);
}

/* Reaper (or a spawn that failed after publishing the pid): the pid stops
 * matching the block, whose slot is free from here on. */
static void slot_release(struct rt_proc *p)
{
    /* Release: the reset block is visible before the slot can be reused. */
    atomic_store_explicit(&p->pid, 0, memory_order_release);
    p->gen++;
    if (p->gen == 0)
        p->gen = 1;
    atomic_store_explicit(&p->state, RT__FREE, memory_order_relaxed);
    slot_free(p);
}

/* Scheduler thread, as it ends: its cached slots go back to the global
 * list, where threads that are no scheduler can still have them. */
void rt__proc_sched_done(struct rt__sched *s)
{
    struct slot_cache *c = &caches[s->id];
    uint32_t n = RT__GET(&c->n);
    if (n && free_slots)
        global_put(c->slot, n);
    RT__SET(&c->n, 0);
}

uint64_t rt__test_slot_lock_count(void)
{
    return atomic_load_explicit(&slot_lock_count, memory_order_relaxed);
}

unsigned rt__test_slots_cached(unsigned sched)
{
    return sched < RT_MAX_SCHEDULERS ? RT__GET(&caches[sched].n) : 0;
}

int rt__test_sched_id(void)
{
    struct rt__sched *s = rt__cur_sched;
    return s ? (int)s->id : -1;
}

size_t rt__proc_count(void)
{
    int64_t n = atomic_load_explicit(&rt__rt.live, memory_order_relaxed);
    return n > 0 ? (size_t)n : 0;
}

void rt__proc_foreach_slot(void (*fn)(struct rt_proc *p, void *ctx), void *ctx)
{
    slot_lock_take();
    uint32_t limit = next_fresh;
    pthread_mutex_unlock(&slot_lock);
    for (uint32_t s = 1; s < limit; s++) {
        struct rt_proc *p = rt__lookup(s);
        if (p && atomic_load_explicit(&p->pid, memory_order_acquire) != 0)
            fn(p, ctx);
    }
}

/* ---- relations: links and monitors --------------------------------------- */

/* Frees r and its lists (NULL-safe). */
static void rel_free(struct rt__rel *r)
{
    if (!r)
        return;
    if (r->links != &r->link_one)
        free(r->links);
    free(r->mons);
    free(r->watchers);
    free(r);
}

struct rt__rel *rt__rel(struct rt_proc *p)
{
    if (!p->rel) {
        struct rt__rel *r = rt__zalloc(sizeof(*r));
        if (!r)
            return NULL; /* a solo link stays where it is */
        if (p->solo_link) {
            r->link_one = p->solo_link;
            r->links = &r->link_one;
            r->nlinks = r->caplinks = 1;
        }
        /* Published under info_lock: introspection reads p->rel under it. */
        rt__spin_lock(&p->info_lock);
        p->rel = r;
        p->solo_link = 0;
        rt__spin_unlock(&p->info_lock);
    }
    return p->rel;
}

bool rt__links_has(struct rt_proc *p, rt_pid pid)
{
    if (!p->rel)
        return p->solo_link && p->solo_link == pid;
    for (uint32_t i = 0; i < p->rel->nlinks; i++)
        if (p->rel->links[i] == pid)
            return true;
    return false;
}

int rt__links_add(struct rt_proc *p, rt_pid pid)
{
    if (rt__links_has(p, pid))
        return 0;
    struct rt__rel *r = rt__rel(p);
    if (!r)
        return -ENOMEM;
    rt__spin_lock(&p->info_lock);
    int rc = 0;
    if (r->nlinks == r->caplinks) {
        uint32_t cap = r->caplinks ? r->caplinks * 2 : 4;
        bool inline_one = r->links == &r->link_one;
        rt_pid *n = inline_one ? malloc(cap * sizeof(*n)) : realloc(r->links, cap * sizeof(*n));
        if (!n) {
            rc = -ENOMEM;
            goto out;
        }
        if (inline_one)
            n[0] = r->link_one;
        r->links = n;
        r->caplinks = cap;
    }
    r->links[r->nlinks++] = pid;
out:
    rt__spin_unlock(&p->info_lock);
    return rc;
}

bool rt__links_del(struct rt_proc *p, rt_pid pid)
{
    if (!p->rel) {
        if (!p->solo_link || p->solo_link != pid)
            return false;
        rt__spin_lock(&p->info_lock);
        p->solo_link = 0;
        rt__spin_unlock(&p->info_lock);
        return true;
    }
    struct rt__rel *r = p->rel;
    bool found = false;
    rt__spin_lock(&p->info_lock);
    for (uint32_t i = 0; i < r->nlinks; i++) {
        if (r->links[i] == pid) {
            r->links[i] = r->links[--r->nlinks];
            found = true;
            break;
        }
    }
    rt__spin_unlock(&p->info_lock);
    return found;
}

void rt__rel_trim(struct rt_proc *p)
{
    struct rt__rel *r = p->rel;
    if (!r)
        return;
    /* One link goes into the lists' block; more into a fresh array of
     * their number, not realloc: shrinking in place keeps the old block
     * when what it would give back is small (glibc does). */
    rt_pid *links = NULL, *old = NULL;
    if (r->nlinks == 1 && r->links != &r->link_one)
        links = &r->link_one;
    else if (r->nlinks > 1 && r->nlinks < r->caplinks &&
             (links = malloc(r->nlinks * sizeof(*links))))
        memcpy(links, r->links, r->nlinks * sizeof(*links));
    rt__spin_lock(&p->info_lock);
    if (links) {
        if (links == &r->link_one)
            r->link_one = r->links[0];
        old = r->links;
        r->links = links;
        r->caplinks = r->nlinks;
    }
    if (!r->nmons) {
        free(r->mons);
        r->mons = NULL;
        r->capmons = 0;
    }
    if (!r->nwatch) {
        free(r->watchers);
        r->watchers = NULL;
        r->capwatch = 0;
    }
    /* One link and nothing else: the link moves into the control block
     * and the lists' block goes (see solo_link). */
    bool solo = r->nlinks == 1 && !r->nmons && !r->nwatch;
    bool empty = !r->nlinks && !r->nmons && !r->nwatch;
    if (solo)
        p->solo_link = r->links[0];
    if (empty || solo)
        p->rel = NULL;
    rt__spin_unlock(&p->info_lock);
    free(old);
    if (empty || solo)
        rel_free(r);
}

/* rt__test_mon_fail_nth: monitor records left until the one that fails
 * (0: none is to fail). */
static _Atomic unsigned mon_fail_countdown;

void rt__test_mon_fail_nth(unsigned nth)
{
    /* Relaxed: a test sets it before the spawns it is about. */
    atomic_store_explicit(&mon_fail_countdown, nth, memory_order_relaxed);
}

int rt__mon_add(struct rt_proc *p, bool watcher, rt_ref ref, rt_pid pid)
{
    if (rt__fault_hit(&mon_fail_countdown))
        return -ENOMEM;
    struct rt__rel *r = rt__rel(p);
    if (!r)
        return -ENOMEM;
    struct rt__mon **arr = watcher ? &r->watchers : &r->mons;
    uint32_t *n = watcher ? &r->nwatch : &r->nmons;
    uint32_t *cap = watcher ? &r->capwatch : &r->capmons;
    int rc = 0;
    rt__spin_lock(&p->info_lock);
    if (*n == *cap) {
        uint32_t c = *cap ? *cap * 2 : 4;
        struct rt__mon *a = realloc(*arr, c * sizeof(*a));
        if (!a) {
            rc = -ENOMEM;
            goto out;
        }
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = (struct rt__mon){ref, pid};
out:
    rt__spin_unlock(&p->info_lock);
    return rc;
}

bool rt__mon_del(struct rt_proc *p, bool watcher, rt_ref ref, rt_pid *pid)
{
    if (!p->rel)
        return false;
    struct rt__rel *r = p->rel;
    struct rt__mon *arr = watcher ? r->watchers : r->mons;
    uint32_t *n = watcher ? &r->nwatch : &r->nmons;
    bool found = false;
    rt__spin_lock(&p->info_lock);
    for (uint32_t i = 0; i < *n; i++) {
        if (arr[i].ref == ref) {
            if (pid)
                *pid = arr[i].pid;
            arr[i] = arr[--(*n)];
            found = true;
            break;
        }
    }
    rt__spin_unlock(&p->info_lock);
    return found;
}

/* Sends an internal signal from `from` (which may be a dying process) to `to`. */
static int signal_send(rt_pid from, rt_pid to, uint32_t type, rt_ref ref, uint64_t u64)
{
    struct rt_msg *m = rt_msg_new(type, 0);
    if (!m)
        return -ENOMEM;
    m->from = from;
    m->ref = ref;
    m->u64 = u64;
    int rc = rt__push(to, m);
    if (rc < 0)
        rt_msg_free(m);
    return rc;
}

/* ---- spawn ------------------------------------------------------------------ */

/* A process's start time (rt_proc_info.started_ms). Spawned by a process:
 * the start of its spawner's time slice, which its scheduler read as the
 * slice began. A slice ends at the latest when its reductions are spent
 * (2,000 spawns) or at the next wait, so this is within a fraction of a
 * millisecond of the spawn, and a spawn reads no clock: a clock read costs
 * as much as a fifth of a spawn and exit (more in a virtual machine). */
static uint64_t spawn_time_ms(void)
{
    struct rt__sched *s = rt__cur_sched;
    /* Relaxed: this thread wrote both when it began the slice. */
    if (s && atomic_load_explicit(&s->current, memory_order_relaxed))
        return atomic_load_explicit(&s->slice_start_ns, memory_order_relaxed) / 1000000u;
    return rt_now_ms();
}

int rt_spawn(rt_entry fn, void *arg, const struct rt_spawn_opts *opts, rt_pid *out)
{
    static const struct rt_spawn_opts none;
    if (!opts)
        opts = &none;
    if (!fn || !atomic_load_explicit(&rt__rt.running, memory_order_acquire))
        return -EINVAL;
    struct rt_proc *self = rt__self();
    if ((opts->link || opts->monitor) && !self)
        return -EPERM;
    if (opts->name && (!opts->name[0] || strlen(opts->name) >= 64))
        return -EINVAL;
    if (!rt__kind_valid(opts->kind) || (unsigned)opts->priority >= RT_PRIORITY_COUNT ||
        opts->arena > RT_ARENA_MAX)
        return -EINVAL;
    size_t stack_size = rt__rt.cfg.stack_size;
    if (opts->stack_size) {
        if (opts->stack_size > RT_STACK_SIZE_MAX)
            return -EINVAL;
        /* Whole pages, and no less than the smallest default (rt_start). */
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        stack_size = (opts->stack_size + page - 1) & ~(page - 1);
        if (stack_size < page * 4)
            stack_size = page * 4;
    }
    if (opts->name && rt_whereis(opts->name))
        return -EEXIST;
    /* Relaxed: the limit is advisory under races of a few spawns. */
    if (atomic_load_explicit(&rt__rt.live, memory_order_relaxed) >=
        (int64_t)rt__rt.cfg.max_processes - 1)
        return -EAGAIN;
    struct rt_proc *p = slot_alloc();
    if (!p)
        return -EAGAIN;

    atomic_store_explicit(&p->home, 0, memory_order_relaxed);
    p->stack = NULL;
    p->stack_size = stack_size;
    p->entry = fn;
    p->arg = arg;
    p->arg_free = opts->arg_free;
    p->reds = 0;
    p->req = RT__REQ_YIELD;
    RT__SET(&p->trap_exit, false);
    p->hibernated = false;
    p->hib_any_wake = false;
    p->hib_error = 0;
    p->wait_fd = -1;
    p->started = false;
    RT__SET(&p->kind, opts->kind);
    RT__SET(&p->prio, (uint8_t)opts->priority);
    RT__SET(&p->status_hint, RT_STATUS_RUNNABLE);
    RT__SET(&p->stack_bytes, 0);
    p->q_head = p->q_tail = NULL;
    p->seq_next = 1;
    RT__SET(&p->q_len, 0);
    p->mark_ref = 0;
    p->mark_seq = 0;
    p->exit_reason = RT_NORMAL;
    p->last_msg_type = 0;
    p->held = NULL;
    p->allocs = NULL;
    if (opts->arena && rt__arena_make(p, opts->arena) < 0) {
        slot_release(p);
        return -ENOMEM;
    }
    RT__SET(&p->alloc_bytes, 0);
    p->max_memory = 0;
    p->limit_timer = 0;
    p->limit_hit = 0;
    p->defers = NULL;
    p->rel = NULL;
    p->solo_link = 0;
    p->naliases = 0;
    p->aliases = NULL;
    p->wait_timer = NULL;
    p->user = NULL;
    p->lib = NULL;
    p->name = NULL;
    p->parent = self ? atomic_load_explicit(&self->pid, memory_order_relaxed) : 0;
    p->initial_call = opts->initial_call ? rt_atom_name(rt_atom_intern(opts->initial_call)) : NULL;
    p->state_name = NULL;
    if (p->detail)
        p->detail->text[0] = 0;
    atomic_store_explicit(&p->reductions, 0, memory_order_relaxed);
    p->started_ms = spawn_time_ms();
    atomic_store_explicit(&p->wake_pending, 0, memory_order_relaxed);
    rt__inbox_init(p);

    rt_pid pid = rt__pid_make(p->gen, p->slot);
    rt_pid me = p->parent;
    rt_ref ref = 0; /* the spawner's monitor of the child, once recorded */
    if (opts->link) {
        if (rt__links_add(self, pid) < 0 || rt__links_add(p, me) < 0)
            goto fail_nomem;
    }
    if (opts->monitor) {
        rt_ref r = rt_make_ref();
        if (rt__mon_add(self, false, r, pid) < 0)
            goto fail_nomem;
        ref = r;
        if (rt__mon_add(p, true, ref, me) < 0)
            goto fail_nomem;
        self->mark_ref = ref;
        self->mark_seq = self->seq_next - 1;
        if (opts->monitor_ref)
            *opts->monitor_ref = ref;
    }
    atomic_store_explicit(&p->state, RT__RUNNABLE, memory_order_relaxed);
    /* Release: a sender that reads this pid sees the initialised block; and
     * the open inbox is published after the pid (senders check both). */
    atomic_store_explicit(&p->pid, pid, memory_order_release);
    atomic_store_explicit(&p->closed, 0, memory_order_seq_cst);
    if (opts->name) {
        int rc = rt__register(p, pid, opts->name);
        if (rc < 0) {
            atomic_store_explicit(&p->closed, 1, memory_order_seq_cst);
            while (atomic_load_explicit(&p->senders, memory_order_seq_cst))
                ;
            rt__drain_dead(p);
            if (opts->link)
                rt__links_del(self, pid);
            if (opts->monitor && opts->monitor_ref)
                rt__mon_del(self, false, *opts->monitor_ref, NULL);
            /* The pid was published: introspection may be reading p->rel
             * under info_lock right now. */
            rt__spin_lock(&p->info_lock);
            struct rt__rel *r = p->rel;
            p->rel = NULL;
            rt__spin_unlock(&p->info_lock);
            rel_free(r);
            rt__alloc_release_all(p);
            slot_release(p);
            return rc;
        }
    }
    /* Relaxed: counters for statistics and the process limit. */
    atomic_fetch_add_explicit(&rt__rt.live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rt__rt.spawned, 1, memory_order_relaxed);
    /* Queued before the spawner is charged: charging may yield and handle
     * an exit signal, and a child published but never queued would never run. */
    rt__enqueue(p);
    if (out)
        *out = pid;
    if (self)
        rt__charge(self, 1);
    return 0;

fail_nomem:
    if (opts->link && self)
        rt__links_del(self, pid);
    if (ref)
        rt__mon_del(self, false, ref, NULL);
    rel_free(p->rel);
    p->rel = NULL;
    rt__alloc_release_all(p);
    /* The pid was never published, but the spawner's tables held it for a
     * moment: its generation moves on like any other, so that no trace of
     * it can ever name the slot's next process. */
    slot_release(p);
    return -ENOMEM;
}

bool rt_on_scheduler(void)
{
    /* Set once by each scheduler thread as it starts, never elsewhere. */
    return rt__cur_sched != NULL;
}

rt_pid rt_self(void)
{
    struct rt_proc *p = rt__self();
    return p ? atomic_load_explicit(&p->pid, memory_order_relaxed) : 0;
}

rt_pid rt_parent(void)
{
    struct rt_proc *p = rt__self();
    return p ? p->parent : 0;
}

bool rt_is_alive(rt_pid pid)
{
    struct rt_proc *p = rt__lookup(pid);
    return p && atomic_load_explicit(&p->pid, memory_order_acquire) == pid &&
           !atomic_load_explicit(&p->closed, memory_order_acquire);
}

_Noreturn void rt__die(struct rt_proc *p, rt_atom reason)
{
    p->exit_reason = reason;
    rt__switch_out(p, RT__REQ_EXIT);
    abort(); /* unreachable: an exited process is never resumed */
}

_Noreturn void rt_exit(rt_atom reason)
{
    struct rt_proc *p = rt__self();
    if (!p) {
        rt_log(RT_LOG_ERROR, "rt_exit called outside a process");
        abort();
    }
    rt__die(p, reason);
}

void rt__limit_hit(struct rt_proc *p, rt_atom reason)
{
    if (p->limit_hit)
        return; /* its signal is on its way */
    p->limit_hit = reason;
    /* Without the signal (no memory for it) the process still exits with
     * `reason` whenever it exits: rt__finish reads limit_hit. */
    signal_send(atomic_load_explicit(&p->pid, memory_order_relaxed),
                atomic_load_explicit(&p->pid, memory_order_relaxed), RT__SIG_LIMIT, 0, reason);
}

void rt_exit_if_over_cap(void)
{
    struct rt_proc *p = rt__self();
    if (p && p->limit_hit)
        rt__die(p, p->limit_hit);
}

void rt_set_max_memory(size_t bytes)
{
    struct rt_proc *p = rt__self();
    if (p)
        p->max_memory = bytes;
}

int rt_set_max_time(uint64_t ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    if (p->limit_timer) {
        rt_cancel_timer(p->limit_timer);
        p->limit_timer = 0;
    }
    if (!ms)
        return 0;
    struct rt_msg *m = rt_msg_new(RT__SIG_LIMIT, 0);
    if (!m)
        return -ENOMEM;
    m->u64 = RT_TIME_LIMIT;
    rt_pid me = atomic_load_explicit(&p->pid, memory_order_relaxed);
    return rt_send_after(me, ms, m, &p->limit_timer);
}

int rt_exit_signal(rt_pid to, rt_atom reason)
{
    struct rt_proc *self = rt__self();
    rt_pid me = self ? atomic_load_explicit(&self->pid, memory_order_relaxed) : 0;
    int rc = signal_send(me, to, RT__SIG_EXIT, 0, reason);
    if (rc == 0 && self && to == me)
        rt__drain(self); /* exit(self(), R) takes effect before returning */
    return rc;
}

bool rt_trap_exit(bool on)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return false;
    bool old = RT__GET(&p->trap_exit);
    RT__SET(&p->trap_exit, on);
    return old;
}

int rt_link(rt_pid pid)
{
    struct rt_proc *self = rt__self();
    if (!self)
        return -EPERM;
    rt_pid me = atomic_load_explicit(&self->pid, memory_order_relaxed);
    if (pid == me)
        return 0;
    if (rt__links_has(self, pid))
        return 0;
    if (!rt_is_alive(pid))
        return -ESRCH;
    int rc = rt__links_add(self, pid);
    if (rc < 0)
        return rc;
    rc = signal_send(me, pid, RT__SIG_LINK, 0, 0);
    if (rc < 0) {
        rt__links_del(self, pid);
        return -ESRCH;
    }
    return 0;
}

int rt_unlink(rt_pid pid)
{
    struct rt_proc *self = rt__self();
    if (!self)
        return -EPERM;
    rt_pid me = atomic_load_explicit(&self->pid, memory_order_relaxed);
    if (rt__links_del(self, pid))
        signal_send(me, pid, RT__SIG_UNLINK, 0, 0);
    return 0;
}

rt_ref rt_make_ref(void)
{
    /* Relaxed: uniqueness needs only atomicity. */
    rt_ref ref = atomic_fetch_add_explicit(&rt__rt.next_ref, 1, memory_order_relaxed);
    struct rt_proc *self = rt__self();
    if (self) {
        self->mark_ref = ref;
        self->mark_seq = self->seq_next - 1;
    }
    return ref;
}

rt_ref rt_monitor(rt_pid pid)
{
    struct rt_proc *self = rt__self();
    if (!self)
        return 0;
    rt_pid me = atomic_load_explicit(&self->pid, memory_order_relaxed);
    rt_ref ref = rt_make_ref();
    if (rt__mon_add(self, false, ref, pid) < 0)
        return 0;
    if (signal_send(me, pid, RT__SIG_MONITOR, ref, 0) < 0) {
        /* Not alive: DOWN with noproc at once, through our own inbox so it
         * is ordered like any other arrival. */
        struct rt_msg *m = rt_msg_new(RT_MSG_DOWN, 0);
        if (m) {
            m->from = pid;
            m->ref = ref;
            m->u64 = RT_NOPROC;
            if (rt__push(me, m) < 0)
                rt_msg_free(m);
        }
    }
    return ref;
}

int rt_demonitor(rt_ref ref, bool flush)
{
    struct rt_proc *self = rt__self();
    if (!self)
        return -EPERM;
    rt_pid me = atomic_load_explicit(&self->pid, memory_order_relaxed);
    rt_pid target;
    /* A DOWN already drained into the private queue removed the monitor;
     * one still in the inbox is dropped at drain time (monitor unknown). */
    if (!rt__mon_del(self, false, ref, &target)) {
        if (flush) {
            struct rt_msg *m = rt_receive_ref(ref, 0);
            rt_msg_free(m);
        }
        return -ENOENT;
    }
    rt__name_mon_drop(self, ref);
    signal_send(me, target, RT__SIG_DEMONITOR, ref, 0);
    if (flush) {
        rt__drain(self);
        for (struct rt_msg *m = self->q_head; m; m = m->next) {
            if (m->type == RT_MSG_DOWN && m->ref == ref) {
                struct rt_msg *got = rt_receive_ref(ref, 0);
                rt_msg_free(got);
                break;
            }
        }
    }
    return 0;
}

/* ---- reaping ----------------------------------------------------------------- */

void rt__finish(struct rt_proc *p)
{
    rt_pid pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
    /* Over a cap, whatever it exited of after: the cap is why it ended. */
    if (p->limit_hit)
        p->exit_reason = p->limit_hit;
    rt_atom reason = p->exit_reason;
    if (p->limit_timer) {
        rt_cancel_timer(p->limit_timer);
        p->limit_timer = 0;
    }
    atomic_store_explicit(&p->state, RT__EXITING, memory_order_relaxed);
    rt__wait_timer_cancel(p);
    /* Ended while parked on a descriptor: another process may wait on it
     * now (before the cleanups, which may close it). */
    rt__io_release(p);

    /* The report names the process, so it is written before the name goes.
     * None for a cap (rt_set_max_memory): its owner records it. */
    if (!rt_reason_is_clean(reason) && !p->limit_hit)
        rt__crash_report(p, reason);
    rt__defers_run(p);
    rt__alloc_release_all(p);
    rt__held_release_all(p); /* after the cleanups, which may free some */
    rt__unregister_proc(p);

    /* Close the inbox: no push can land after senders drains to zero. */
    atomic_store_explicit(&p->closed, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&p->senders, memory_order_seq_cst))
        ;
    rt__drain_dead(p);

    if (p->rel) {
        struct rt__rel *r = p->rel;
        for (uint32_t i = 0; i < r->nlinks; i++)
            signal_send(pid, r->links[i], RT__SIG_EXIT, 1, reason);
        for (uint32_t i = 0; i < r->nwatch; i++) {
            struct rt_msg *m = rt_msg_new(RT_MSG_DOWN, 0);
            if (!m)
                continue;
            m->from = pid;
            m->ref = r->watchers[i].ref;
            m->u64 = reason;
            if (rt__push(r->watchers[i].pid, m) < 0)
                rt_msg_free(m);
        }
        for (uint32_t i = 0; i < r->nmons; i++)
            signal_send(pid, r->mons[i].pid, RT__SIG_DEMONITOR, r->mons[i].ref, 0);
    } else if (p->solo_link) {
        signal_send(pid, p->solo_link, RT__SIG_EXIT, 1, reason);
    }

    rt__spin_lock(&p->info_lock);
    struct rt__rel *r = p->rel;
    p->rel = NULL;
    p->solo_link = 0;
    rt__spin_unlock(&p->info_lock);
    rel_free(r);
    free(p->aliases);
    p->aliases = NULL;
    p->naliases = 0;
    if (p->stack) {
        rt__stack_put(rt__cur_sched, p->stack);
        p->stack = NULL;
    }
    /* The process is gone from here on: its scheduler stops naming it as
     * current (the watchdog would otherwise blame a released or reused
     * block for the time its scheduler spends here). Relaxed: ordered
     * before the release store of the pid in slot_release. */
    struct rt__sched *s = rt__cur_sched;
    if (s && atomic_load_explicit(&s->current, memory_order_relaxed) == p)
        atomic_store_explicit(&s->current, NULL, memory_order_relaxed);
    slot_release(p);
    atomic_fetch_sub_explicit(&rt__rt.live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rt__rt.exited, 1, memory_order_relaxed);
    rt__notify_exit(pid, reason);
}

/* ---- per-process user data and labels -------------------------------------------- */

void rt_set_user(void *u)
{
    struct rt_proc *p = rt__self();
    if (p)
        p->user = u;
}

void *rt_get_user(void)
{
    struct rt_proc *p = rt__self();
    return p ? p->user : NULL;
}

void rt_set_lib_data(void *lib)
{
    struct rt_proc *p = rt__self();
    if (p)
        p->lib = lib;
}

void *rt_get_lib_data(void)
{
    struct rt_proc *p = rt__self();
    return p ? p->lib : NULL;
}

void rt_set_state_name(const char *state)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return;
    /* State names come from code, a small fixed set: interned, they cost
     * the control block one pointer. */
    const char *name = state && *state ? rt_atom_name(rt_atom_intern(state)) : NULL;
    if (name == p->state_name)
        return;
    rt__spin_lock(&p->info_lock);
    p->state_name = name;
    rt__spin_unlock(&p->info_lock);
}

void rt_set_detail_text(const char *text, size_t len)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return;
    if (len > RT__DETAIL_SIZE - 1)
        len = RT__DETAIL_SIZE - 1;
    struct rt__detail *old = NULL;
    if (!p->detail || p->detail->cap < len + 1) {
        /* As long as this line, rounded up to what the allocator would
         * give anyway (glibc's blocks hold 24 + 16k bytes), and kept for
         * the slot's later processes: a slot whose processes set lines of
         * about the same length allocates once. */
        size_t size = offsetof(struct rt__detail, text) + len + 1;
        size = size <= 24 ? 24 : 24 + ((size - 24 + 15) & ~(size_t)15);
        if (size > offsetof(struct rt__detail, text) + RT__DETAIL_SIZE)
            size = offsetof(struct rt__detail, text) + RT__DETAIL_SIZE;
        struct rt__detail *d = malloc(size);
        if (!d)
            return;
        d->cap = (uint8_t)(size - offsetof(struct rt__detail, text));
        /* Written before it is published: introspection may read the line
         * as soon as the block is in place. */
        memcpy(d->text, text, len);
        d->text[len] = 0;
        rt__spin_lock(&p->info_lock);
        old = p->detail;
        p->detail = d;
        rt__spin_unlock(&p->info_lock);
        free(old);
        return;
    }
    rt__spin_lock(&p->info_lock);
    memcpy(p->detail->text, text, len);
    p->detail->text[len] = 0;
    rt__spin_unlock(&p->info_lock);
}

void rt_set_detail(const char *fmt, ...)
{
    char buf[RT__DETAIL_SIZE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    rt_set_detail_text(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

int rt_set_kind(rt_kind kind)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    if (!rt__kind_valid(kind))
        return -EINVAL;
    RT__SET(&p->kind, kind);
    return 0;
}
