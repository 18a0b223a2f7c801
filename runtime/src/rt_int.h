/*
 * rt_int.h: the runtime's private structures and the invariants that hold
 * them together. Read this before any file in runtime/src.
 *
 * Ownership and threads
 *  - A process control block (struct rt_proc) is type-stable: blocks live in
 *    chunks that are never freed while the runtime runs, and block i is
 *    always slot i of the process table. A pid is (generation << 32 | slot);
 *    the generation is bumped each time a slot is freed, so a stale pid never
 *    matches a new process (it would take 2^32 reuses of one slot).
 *  - Free slots wait in a bounded cache of the scheduler that reaped them,
 *    then in one global list (proc.c): a slot enters either only after its
 *    reaper cleared the pid and bumped the generation, and it crosses
 *    threads only through the global list's lock.
 *  - Everything in a block except the fields marked "atomic" or "info_lock"
 *    is touched only by the thread running the process (or, before it is
 *    published and after it is closed, by its spawner/reaper).
 *  - Messages and signals from any thread go through one lock-free MPSC
 *    queue per process (the inbox, Vyukov's intrusive queue), so per sender
 *    FIFO holds for messages and signals alike. The owner moves them into
 *    its private queue (a doubly linked list it alone touches), handling
 *    signals on the way.
 *  - A sender announces itself in `senders` before pushing and checks
 *    `closed`; the reaper sets `closed` then waits for `senders` to reach
 *    zero, so no push can land after the final drain.
 *  - Scheduling state is one atomic (`state`). Only the scheduler that ran a
 *    process moves it to WAITING, after switching off its stack; any waker
 *    moves WAITING -> RUNNABLE by CAS and enqueues it. Wake sources set
 *    `wake_pending` (or bump `inbox_n`) before trying, and the parking
 *    scheduler re-checks both after publishing WAITING (seq_cst on both
 *    sides), so no wake-up is lost. Spurious wake-ups are allowed: every
 *    wait re-checks its condition.
 *  - Publishing WAITING hands the block over: a waker may run the process
 *    elsewhere at once, and it may exit, be reaped and its slot be reused
 *    by a new spawn. The parking scheduler therefore reads every owner
 *    field it needs before that store and touches only atomics after it.
 */
#ifndef RT_INT_H
#define RT_INT_H

#include "rt/rt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- context switch (switch.S) ---- */
struct rt__ctx {
    void *sp;
};
/* Saves callee-saved registers on the current stack, stores the stack
 * pointer in from->sp, loads to->sp and returns into that context. */
void rt__switch(struct rt__ctx *from, struct rt__ctx *to);
/* First code a new process runs (switch.S); calls rt__proc_main(). */
void rt__trampoline(void);
_Noreturn void rt__proc_main(void);

/* ---- spinning ---- */
static inline void rt__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

/* ---- spinlock ---- */
typedef struct {
    atomic_flag f;
} rt__spin;
#define RT__SPIN_INIT                                                                              \
    {                                                                                              \
        ATOMIC_FLAG_INIT                                                                           \
    }
static inline void rt__spin_lock(rt__spin *l)
{
    /* Acquire: the critical section's reads see the previous holder's writes. */
    while (atomic_flag_test_and_set_explicit(&l->f, memory_order_acquire))
        rt__cpu_relax();
}
/* Takes the lock only if it is free; safe in a signal handler, where the
 * interrupted code may be the holder. */
static inline bool rt__spin_trylock(rt__spin *l)
{
    /* Acquire: as rt__spin_lock. */
    return !atomic_flag_test_and_set_explicit(&l->f, memory_order_acquire);
}
static inline void rt__spin_unlock(rt__spin *l)
{
    /* Release: publishes the critical section's writes to the next holder. */
    atomic_flag_clear_explicit(&l->f, memory_order_release);
}

/* Zeroed memory for a block made and freed on a hot path (a message, a
 * timer, a link table). glibc's calloc (2.36) never takes a block from the
 * thread's cache and always runs the full allocator; malloc does take one
 * (blocks up to about 1 KiB, the cache's largest). The empty asm hides where
 * `m` came from, or the compiler would fuse the malloc and the memset back
 * into calloc. A larger block gains nothing from it: calloc, which may
 * skip the memset for fresh pages. */
static inline void *rt__zalloc(size_t size)
{
    if (size > 1024)
        return calloc(1, size);
    void *m = malloc(size);
    if (m) {
        __asm__("" : "+r"(m));
        memset(m, 0, size);
    }
    return m;
}

/* A process's detail line (rt_set_detail), its NUL included; rt_proc_info's
 * copy is as large. */
#define RT__DETAIL_SIZE 128

/* A detail line, in a block as large as the longest line set in its slot
 * (rt_set_detail_text): most are far shorter than RT__DETAIL_SIZE, and a
 * block per idle connection adds up. */
struct rt__detail {
    uint8_t cap; /* bytes of text, its NUL included: at most RT__DETAIL_SIZE */
    char text[];
};
_Static_assert(RT__DETAIL_SIZE <= UINT8_MAX, "a detail's capacity is a byte");

/* ---- internal signal types (travel in the inbox, never seen by users) ---- */
#define RT__SIG_LINK (RT_MSG_SYSTEM + 0x100)
#define RT__SIG_UNLINK (RT_MSG_SYSTEM + 0x101)
#define RT__SIG_EXIT (RT_MSG_SYSTEM + 0x102)      /* u64 reason; ref 1 = via link */
#define RT__SIG_MONITOR (RT_MSG_SYSTEM + 0x103)   /* ref */
#define RT__SIG_DEMONITOR (RT_MSG_SYSTEM + 0x104) /* ref */
#define RT__SIG_LIMIT (RT_MSG_SYSTEM + 0x105)     /* u64 reason: an untrappable cap */
#define RT__SIG_LAST RT__SIG_LIMIT
#define RT__F_ALIASED 0x1u /* rt_msg.flags: dropped unless the alias is active */

enum {
    RT__RUNNABLE = 0,
    RT__RUNNING,
    RT__WAITING,
    RT__EXITING,
    RT__FREE,
};

/* What a process asks of its scheduler when it switches away. */
enum rt__req {
    RT__REQ_YIELD = 0,
    RT__REQ_PARK,
    RT__REQ_EXIT,
    RT__REQ_HIBERNATE,
};

struct rt__mon {
    rt_ref ref;
    rt_pid pid;
};

struct rt__alloc_hdr {
    struct rt__alloc_hdr *prev, *next;
    size_t size;
    size_t pad; /* keeps user memory 16-byte aligned */
};

struct rt__defer {
    struct rt__defer *next;
    void (*fn)(void *);
    void *arg;
    uint64_t handle;
};

struct rt__stack;
struct rt__sched;
struct rt__timer;

/* Rarely used, owner-mutated lists, kept out of the control block so that an
 * idle process without links or monitors costs only the block. Guarded by
 * info_lock against readers on other threads. */
struct rt__rel {
    rt_pid *links; /* &link_one after a hibernation found one link and monitors (rt__rel_trim) */
    uint32_t nlinks, caplinks;
    struct rt__mon *mons; /* monitors this process holds */
    uint32_t nmons, capmons;
    struct rt__mon *watchers; /* monitors held on this process */
    uint32_t nwatch, capwatch;
    /* The one link most processes have (to their supervisor), kept here
     * rather than in an array block of its own by a hibernating process
     * that also has monitors (without, the link goes to solo_link and this
     * block is freed), and where rt__rel() puts a solo link back. */
    rt_pid link_one;
};

struct rt_proc {
    /* ---- identity (atomic) ---- */
    _Atomic uint64_t pid; /* 0 while the slot is free */
    uint32_t slot;
    uint32_t gen;

    /* ---- inbox: MPSC (producers: any thread) ---- */
    _Atomic(struct rt_msg *) in_tail;
    struct rt_msg *in_head; /* owner */
    /* The queue's stub node. Only a node's `next` (its first field) is ever
     * touched through the stub, so it needs no room for a whole message;
     * it is accessed as a struct rt_msg, so it has that struct's alignment
     * (which also keeps every block of a chunk aligned). */
    _Alignas(struct rt_msg) struct rt_msg *stub_next;
    _Atomic int senders;
    _Atomic int closed;
    _Atomic int64_t inbox_n;    /* pushed and not yet drained */
    _Atomic int64_t inbox_sigs; /* of which internal signals (not messages) */

    /* ---- scheduling ---- */
    _Atomic int state;
    _Atomic int wake_pending;
    struct rt_proc *rq_next; /* run-queue link, under the queue's lock */
    struct rt__ctx ctx;
    struct rt__stack *stack; /* NULL while hibernating or before first run */
    size_t stack_size;
    rt_entry entry;
    void *arg;
    void (*arg_free)(void *arg); /* rt_spawn_opts.arg_free: for a process that never ran */
    int reds;
    uint8_t req;            /* enum rt__req */
    _Atomic bool trap_exit; /* owner writes; introspection reads (relaxed) */
    bool hibernated;
    bool hib_any_wake; /* rt_hibernate_poll: resume on any wake-up */
    int hib_error;     /* rt_hibernate_poll: why fd was not waited on, or 0 */
    int wait_fd;       /* fd this process is the waiter of (io.c), or -1 */
    bool started;
    /* enum rt_priority: the run queue it joins. The owner writes it
     * (relaxed); whoever enqueues it reads it (relaxed): a waker enqueues
     * only after its CAS read the state published after the write. */
    _Atomic uint8_t prio;
    _Atomic uint8_t kind;        /* rt_kind; relaxed, read by introspection */
    _Atomic uint8_t status_hint; /* enum rt_status; relaxed, read by introspection */
    /* The last scheduler that ran it, as its id + 1 (0: none yet); one
     * byte, in what was padding. Written by that scheduler, read by a
     * waker that queues it from outside the schedulers (relaxed: any
     * scheduler will do). */
    _Atomic uint8_t home;
    /* Introspection's lock (below), here where the struct had room. */
    rt__spin info_lock;
    _Atomic size_t stack_bytes; /* stack held (0 hibernating); relaxed */

    /* ---- private queue (owner) ---- */
    struct rt_msg *q_head, *q_tail;
    /* Messages received and not yet freed, sent on or detached, newest
     * first, linked through next/prev (each one's holder is this block);
     * owner only. Freed by rt__held_release_all when the process exits.
     * Next to the queue: a receive touches both. */
    struct rt_msg *held;
    /* Numbers what the inbox yields, in order; 64-bit so that a receive
     * mark (rt_receive_mark) never wraps; messages keep the low 32 bits. */
    uint64_t seq_next;
    _Atomic size_t q_len; /* owner writes; introspection reads (relaxed) */
    rt_ref mark_ref;
    uint32_t mark_seq;

    /* ---- exit ---- */
    rt_atom exit_reason;
    uint32_t last_msg_type;
    rt_atom limit_hit; /* the cap it went over, its exit reason; 0 none (owner) */

    /* ---- owner resources ---- */
    struct rt__alloc_hdr *allocs;
    _Atomic size_t alloc_bytes; /* owner writes; introspection reads (relaxed) */
    size_t max_memory;          /* rt_set_max_memory; 0 none (owner) */
    rt_ref limit_timer;         /* rt_set_max_time's timer, or 0 (owner) */
    struct rt__defer *defers;
    struct rt__rel *rel;
    /* Active aliases in increasing order (a process makes its refs in
     * order, so appending keeps them sorted): binary-searched for each
     * aliased message drained. Allocated on first use; alias_cap is
     * meaningful only while `aliases` is non-NULL. */
    rt_ref *aliases;
    uint32_t naliases, alias_cap;
    /* Monitors by name (rt_monitor_name): for each, the DOWN it will
     * deliver, made in advance with the name as payload and linked
     * through `next`; the DOWN of the monitor is exchanged for it at
     * drain. Freed by rt__drain_dead. */
    struct rt_msg *name_mons;
    char *crash_state;            /* rt_set_crash_state's rt_alloc'd text, or NULL */
    struct rt__timer *wait_timer; /* under wait_wheel's lock */
    struct rt__wheel *wait_wheel; /* owner */
#if defined(__SANITIZE_THREAD__)
    void *san_fiber; /* thread-sanitizer fiber (sched.c): only in such a build */
#endif
    void *user;
    void *lib; /* rt_set_lib_data */

    /* ---- introspection (info_lock, above) ---- */
    char *name; /* registry-owned copy, or NULL */
    rt_pid parent;
    const char *initial_call;  /* interned atom text: static storage */
    const char *state_name;    /* interned (static storage), NULL for none */
    struct rt__detail *detail; /* malloc'd lazily, kept for the slot's next process */
    _Atomic uint64_t reductions;
    uint64_t started_ms;
    /* While rel is NULL: the process's one link, or 0. A hibernation that
     * finds a single link and no monitors (rt__rel_trim) keeps it here and
     * gives the lists' block back: an idle connection is linked to its
     * supervisor and nothing else. rt__rel() moves it back into the lists.
     * Written by the owner under info_lock (introspection reads it). Fills
     * what was the struct's tail padding. */
    rt_pid solo_link;
};

/* ---- process table (proc.c) ---- */
struct rt_proc *rt__lookup(rt_pid pid); /* block for the slot, or NULL; check pid */
struct rt_proc *rt__self(void);         /* current process on this thread, or NULL */
_Noreturn void rt__die(struct rt_proc *p, rt_atom reason);
/* Owner: p went over a cap; it exits with `reason` at its next drain. */
void rt__limit_hit(struct rt_proc *p, rt_atom reason);
void rt__finish(struct rt_proc *p); /* scheduler context: reap an exited process */
void rt__proc_foreach_slot(void (*fn)(struct rt_proc *p, void *ctx), void *ctx);
/* Scheduler thread, as it ends: gives its cached free slots back. */
void rt__proc_sched_done(struct rt__sched *s);
size_t rt__proc_count(void);

/* ---- messages (msg.c) ---- */
/* Pushes m (owned) into p's inbox if p is still `pid`; wakes p.
 * -ESRCH (m not consumed) if p is gone. */
int rt__push(rt_pid pid, struct rt_msg *m);
/* Frees a message the runtime could not deliver: runs its dtor. */
void rt__msg_discard(struct rt_msg *m);
/* Owner: moves the inbox to the private queue, handling signals. */
void rt__drain(struct rt_proc *p);
/* Reaper: empties the inbox and private queue after close, answering link
 * and monitor requests with the exit reason. */
void rt__drain_dead(struct rt_proc *p);
void rt__inbox_init(struct rt_proc *p);
/* Reaper: frees the messages p still holds (received, not yet freed). */
void rt__held_release_all(struct rt_proc *p);
extern _Atomic int64_t rt__msgs_live;

/* ---- scheduler (sched.c) ---- */
struct rt__sched {
    unsigned id;
    pthread_t thread;
    int epfd;
    int evfd; /* wakes this scheduler from epoll_wait */
    pthread_mutex_t rq_lock;
    /* One FIFO per enum rt_priority, under rq_lock; rq_len counts them all
     * (any thread reads it, relaxed, to decide whether to take the lock). */
    struct rt__rq {
        struct rt_proc *head, *tail;
    } rq[RT_PRIORITY_COUNT];
    _Atomic size_t rq_len;
    /* Under rq_lock: high-priority picks in a row while normal or low
     * processes waited, and normal picks in a row while low ones waited
     * (the starvation bounds of rt.h's enum rt_priority). */
    unsigned high_streak, normal_streak;
    _Atomic int sleeping;
    struct rt__ctx ctx; /* the scheduler's own context */
    struct rt_proc *_Atomic current;
    _Atomic uint64_t slice_start_ns;
    uint64_t run_end_ns; /* the scheduler thread's own: its last run's end, 0 after it idled */
    _Atomic uint64_t watchdog_reported; /* pid reported for this slice */
    struct rt__wheel *wheel;
    struct rt__stack *stack_pool; /* the warm stacks first, then the released ones */
    size_t stack_pool_n;
    size_t stack_pool_warm; /* pooled stacks that still have their pages */
    void *altstack;
    /* statistics */
    _Atomic uint64_t switches, steals;
    _Atomic uint64_t busy_ns_total;
    uint64_t util_last_busy, util_last_t;
    _Atomic uint32_t util_ppm; /* utilisation over the last window, parts per million */
};

struct rt__runtime {
    struct rt_config cfg;
    unsigned nsched;
    struct rt__sched *sched;
    _Atomic int stopping;
    _Atomic uint64_t spawned, exited;
    _Atomic int64_t live;
    _Atomic uint64_t next_ref;
    uint64_t start_ms;
    pthread_mutex_t idle_lock;
    pthread_cond_t idle_cond;
    _Atomic int idle_waiters;
    pthread_t watchdog;
    _Atomic int running;
};
extern struct rt__runtime rt__rt;

extern __thread struct rt__sched *rt__cur_sched;

void rt__enqueue(struct rt_proc *p);
/* Makes p runnable if it is waiting (any thread). */
void rt__wake(struct rt_proc *p);
/* Process context: switch to the scheduler with a request. */
void rt__switch_out(struct rt_proc *p, enum rt__req req);
/* Process context: park until woken (spurious wake-ups possible). Handles
 * pending signals after waking. */
void rt__park(struct rt_proc *p);
void rt__charge(struct rt_proc *p, int n);
void rt__notify_exit(rt_pid pid, rt_atom reason);

/* ---- reports (log.c) ---- */
/* Copies s into out[0, cap) as text for a report line: '\\' doubled, bytes
 * below 0x20 and DEL as \xNN, others as they are; stops before an escape
 * that would not fit, and NUL-terminates (cap > 0). Returns the length.
 * Async-signal-safe. */
size_t rt__text_escape(char *out, size_t cap, const char *s);
/* From the overflow signal handler: hands r to the application's fatal
 * handler; false when none is installed (the caller writes the default). */
bool rt__fatal_handled(const struct rt_fatal_report *r);

/* ---- kinds (kind.c) ---- */
/* Any thread: is `kind` registered? */
bool rt__kind_valid(rt_kind kind);
/* rt_stop: forgets the kinds applications registered. */
void rt__kinds_reset(void);

/* ---- timers (timer.c) ---- */
/* A wheel whose clock reads now_ms (a scheduler's: rt_now_ms()). */
struct rt__wheel *rt__wheel_new(uint64_t now_ms);
void rt__wheel_free(struct rt__wheel *w);
/* Sets w's clock to now_ms (never back) and fires what is due by then;
 * returns ms until the next timer may be due (-1 if w holds none, capped
 * at 1000). Costs the timers it fires and, when the clock enters a new
 * block of 1024 ms, those waiting in that block's slot: never the timers
 * merely present. */
int rt__wheel_advance(struct rt__wheel *w, uint64_t now_ms);
/* Arms a wake-up for p at `deadline` on the current scheduler's wheel. */
void rt__wait_timer_arm(struct rt_proc *p, uint64_t deadline_ms);
/* The same on wheel w, due at deadline_ms on w's clock (at the earliest 1
 * ms after it reads now). p has no wake-up armed. */
void rt__wheel_arm_wait(struct rt__wheel *w, struct rt_proc *p, uint64_t deadline_ms);
/* Tests: how many timers rt__wheel_advance has looked at on w (fired,
 * moved between levels, or passed over) since w was made. */
uint64_t rt__wheel_visits(struct rt__wheel *w);
void rt__wait_timer_cancel(struct rt_proc *p);
void rt__timers_reset(void);
void rt__timers_done(void);

/* ---- stacks (stack.c) ---- */
struct rt__stack {
    struct rt__stack *next; /* pool link */
    char *base;             /* lowest usable address */
    size_t size;
    bool guarded;
    bool dedicated; /* its own mapping (a non-default size): unmapped on put */
    bool released;  /* pooled with its pages given back (stack.c) */
    unsigned vg_id; /* valgrind's id while registered as a stack (stack.c) */
};
/* Stack kept free for runtime calls: a process that reaches a runtime call
 * with less than this left ends with stack_overflow there (stack.c). */
#define RT__STACK_RESERVE ((size_t)8192)
static inline bool rt__stack_exhausted(const struct rt__stack *st, const void *sp)
{
    size_t reserve = st->size / 4 < RT__STACK_RESERVE ? st->size / 4 : RT__STACK_RESERVE;
    const char *a = sp;
    /* Only an address on this stack counts: cleanups of an exiting process
     * run on its scheduler's stack. */
    return a >= st->base && a < st->base + reserve;
}
int rt__stack_get(struct rt__sched *s, size_t size, struct rt__stack **out);
void rt__stack_put(struct rt__sched *s, struct rt__stack *st);
/* Of a scheduler's pooled stacks, how many keep their pages when it idles. */
#define RT__STACK_POOL_HOT 32
/* Scheduler thread of `s`, idle: gives back the pages of its pooled stacks
 * beyond the RT__STACK_POOL_HOT most recently used. */
void rt__stack_pool_trim(struct rt__sched *s);
bool rt__stack_canary_ok(const struct rt__stack *st);
/* Is addr within the guard page just below st? */
bool rt__stack_is_guard(const struct rt__stack *st, const void *addr);
void rt__stacks_init(void);
void rt__stacks_done(void);
size_t rt__stacks_in_use(void);
size_t rt__stacks_pooled(void);

/* ---- registry (registry.c) ---- */
int rt__register(struct rt_proc *p, rt_pid pid, const char *name);
void rt__unregister_proc(struct rt_proc *p);
void rt__registry_done(void);

/* ---- I/O (io.c) ---- */
int rt__io_init(void);
void rt__io_done(void);
void rt__io_poll(struct rt__sched *s, int timeout_ms);
/* A descriptor number closed or handed out anew: forgets its registrations,
 * its readiness and its waiter. */
void rt__io_forget(int fd);
/* Owner, before it hibernates on fd once an operation for `events` saw
 * EAGAIN: makes p the waiter of fd and registers fd (edge-triggered,
 * once, with the current scheduler's epoll set). When an edge came meanwhile, p waits
 * on nothing and its wake_pending is set: it resumes at once. -EBUSY if
 * another process waits on fd (on any scheduler); other epoll errors as
 * -errno, p then waits on nothing. */
int rt__io_arm(struct rt_proc *p, int fd, unsigned events);
/* Owner or reaper: p no longer waits on its fd (no-op if none). The owner
 * then tries the operation it waited for (its readiness bits are cleared). */
void rt__io_release(struct rt_proc *p);

/* ---- blocking pool (blocking.c) ---- */
int rt__blocking_start(unsigned n);
void rt__blocking_stop(void);

/* ---- per-process memory (alloc.c) ---- */
void rt__alloc_release_all(struct rt_proc *p);
/* Gives p (not yet running) an arena of `bytes` (rt_spawn_opts.arena) at
 * the head of its allocation list. 0 or -ENOMEM. */
int rt__arena_make(struct rt_proc *p, size_t bytes);
void rt__defers_run(struct rt_proc *p);

/* ---- rel lists (proc.c) ---- */
struct rt__rel *rt__rel(struct rt_proc *p);
bool rt__links_has(struct rt_proc *p, rt_pid pid);
int rt__links_add(struct rt_proc *p, rt_pid pid);
bool rt__links_del(struct rt_proc *p, rt_pid pid);
int rt__mon_add(struct rt_proc *p, bool watcher, rt_ref ref, rt_pid pid);
/* Owner, as it hibernates: gives back the room its lists keep beyond what
 * they hold (a monitor taken and removed leaves an array of four), and the
 * lists' block when all are empty; a hibernating process keeps only what it
 * needs, as the BEAM's hibernation compacts a process's heap. */
void rt__rel_trim(struct rt_proc *p);
bool rt__mon_del(struct rt_proc *p, bool watcher, rt_ref ref, rt_pid *pid);

/* ---- log (log.c) ---- */
void rt__crash_report(struct rt_proc *p, rt_atom reason);
/* Hands `r` to the supervisor report handler, if one is set (otp_int.h). */
void rt__supervisor_report(const struct rt_supervisor_report *r);
/* Is a supervisor report handler set? Supervisors build no report
 * otherwise. */
bool rt__supervisor_report_wanted(void);
/* rt_log of a line already made (at most 1,023 bytes, as rt_log's). */
void rt__log_text(enum rt_log_level level, const char *text);

/* ---- introspection (info.c) ---- */
/* Process context: the caller's registered name into out (cap > 0 bytes,
 * NUL-terminated, "" for none); returns its length. */
size_t rt__self_name(char *out, size_t cap);

/* ---- monitors by name (msg.c) ---- */
/* Owner: forgets the name record of monitor `ref`, if any (rt_demonitor). */
void rt__name_mon_drop(struct rt_proc *p, rt_ref ref);

/* Owner-only counters that other threads may read: a relaxed load and store
 * (no locked instruction), since only the owner ever writes them. */
#define RT__RELAXED_ADD(obj, delta)                                                                \
    atomic_store_explicit((obj), atomic_load_explicit((obj), memory_order_relaxed) + (delta),      \
                          memory_order_relaxed)
#define RT__GET(obj) atomic_load_explicit((obj), memory_order_relaxed)
#define RT__SET(obj, v) atomic_store_explicit((obj), (v), memory_order_relaxed)

static inline uint64_t rt__pid_make(uint32_t gen, uint32_t slot)
{
    return ((uint64_t)gen << 32) | slot;
}

#endif
