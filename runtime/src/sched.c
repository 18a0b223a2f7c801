/*
 * sched.c: scheduler threads, run queues, work stealing, parking and
 * waking, the watchdog, and the runtime's start and stop.
 *
 * Each scheduler thread owns a run queue (a mutex-guarded FIFO per
 * priority, served high first within the starvation bounds of rt.h's enum
 * rt_priority: the lock is held for a few instructions and contended only
 * by stealers and remote wakers), an epoll set and a timing wheel. A process runs until it parks,
 * yields, exits or spends its reduction budget at a runtime call. An idle
 * scheduler steals from the others, spins briefly, then sleeps in
 * epoll_wait until I/O, its next timer or an eventfd kick.
 *
 * Only the scheduler that ran a process publishes it as WAITING, after it
 * has switched off the process's stack (rt_int.h explains the wake-up
 * protocol), so a process is never resumed on two threads at once.
 */
#include "rt_fault.h"
#include "rt_int.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define RT__ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define RT__TSAN 1
#endif

struct rt__runtime rt__rt;
__thread struct rt__sched *rt__cur_sched;

int rt__proc_init(void);
void rt__proc_done(void);

#define STEAL_AFTER_NS 50000 /* a victim's slice older than this lets us take its one waiter */

/* ---- clocks ------------------------------------------------------------------ */

uint64_t rt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t rt_now_ms(void)
{
    return rt_now_ns() / 1000000u;
}

/* ---- sanitizer-aware switching ------------------------------------------------- */

#ifdef RT__TSAN
static __thread void *sched_fiber;
#endif
#ifdef RT__ASAN
static __thread const void *sched_stack_bottom;
static __thread size_t sched_stack_size;
#endif

static void switch_to_proc(struct rt__sched *s, struct rt_proc *p)
{
#ifdef RT__ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, p->stack->base, p->stack->size);
#endif
#ifdef RT__TSAN
    __tsan_switch_to_fiber(p->san_fiber, 0);
#endif
    rt__switch(&s->ctx, &p->ctx);
#ifdef RT__ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

static void switch_to_sched(struct rt_proc *p, struct rt__sched *s)
{
#ifdef RT__ASAN
    void *fake = NULL;
    bool dying = p->req == RT__REQ_EXIT || p->req == RT__REQ_HIBERNATE;
    __sanitizer_start_switch_fiber(dying ? NULL : &fake, sched_stack_bottom, sched_stack_size);
#endif
#ifdef RT__TSAN
    __tsan_switch_to_fiber(sched_fiber, 0);
#endif
    rt__switch(&p->ctx, &s->ctx);
#ifdef RT__ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

static void init_ctx(struct rt_proc *p)
{
    uintptr_t top = ((uintptr_t)p->stack->base + p->stack->size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    uint64_t *sp = (uint64_t *)top;
    *--sp = 0;
    *--sp = (uint64_t)(uintptr_t)rt__trampoline;
    for (int i = 0; i < 6; i++)
        *--sp = 0;
    *--sp = ((uint64_t)0x037f << 32) | 0x1f80; /* default x87 control word, MXCSR */
    p->ctx.sp = sp;
#elif defined(__aarch64__)
    uint64_t *sp = (uint64_t *)(top - 160);
    memset(sp, 0, 160);
    sp[11] = (uint64_t)(uintptr_t)rt__trampoline; /* x30 */
    p->ctx.sp = sp;
#endif
#ifdef RT__TSAN
    if (!p->san_fiber)
        p->san_fiber = __tsan_create_fiber(0);
#endif
}

_Noreturn void rt__proc_main(void)
{
#ifdef RT__ASAN
    __sanitizer_finish_switch_fiber(NULL, &sched_stack_bottom, &sched_stack_size);
#endif
    struct rt_proc *p = rt__self();
    if (p->hibernated && p->hib_any_wake) {
        /* rt_hibernate_poll: the continuation sorts out why it woke. */
        p->hibernated = false;
        p->hib_any_wake = false;
        rt__wait_timer_cancel(p);
        rt__io_release(p);
        if (atomic_load_explicit(&p->inbox_n, memory_order_acquire) > 0)
            rt__drain(p);
    } else if (p->hibernated) {
        /* Woken from hibernation: run the continuation once a message is
         * really there (wake-ups may be spurious). */
        p->hibernated = false;
        for (;;) {
            atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
            rt__drain(p);
            if (p->q_head)
                break;
            rt__park(p);
        }
    }
    RT__SET(&p->status_hint, RT_STATUS_RUNNING);
    p->entry(p->arg);
    rt_exit(RT_NORMAL);
}

/* ---- run queues ------------------------------------------------------------------ */

static void wake_sched(struct rt__sched *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->evfd, &one, sizeof one);
    (void)n;
}

static void wake_a_sleeper(struct rt__sched *except)
{
    for (unsigned i = 0; i < rt__rt.nsched; i++) {
        struct rt__sched *o = &rt__rt.sched[i];
        /* seq_cst: pairs with the sleeper's store of `sleeping` before its
         * final run-queue check. */
        if (o != except && atomic_load_explicit(&o->sleeping, memory_order_seq_cst)) {
            wake_sched(o);
            return;
        }
    }
}

void rt__enqueue(struct rt_proc *p)
{
    static _Atomic unsigned rr;
    struct rt__sched *s = rt__cur_sched;
    if (!s || s->id >= rt__rt.nsched || &rt__rt.sched[s->id] != s) {
        unsigned home = atomic_load_explicit(&p->home, memory_order_relaxed);
        s = home ? &rt__rt.sched[home - 1] : NULL;
    }
    if (!s)
        s = &rt__rt.sched[atomic_fetch_add_explicit(&rr, 1, memory_order_relaxed) % rt__rt.nsched];
    /* Relaxed: see the field. */
    unsigned prio = atomic_load_explicit(&p->prio, memory_order_relaxed);
    struct rt__rq *q = &s->rq[prio < RT_PRIORITY_COUNT ? prio : RT_PRIORITY_NORMAL];
    pthread_mutex_lock(&s->rq_lock);
    p->rq_next = NULL;
    if (q->tail)
        q->tail->rq_next = p;
    else
        q->head = p;
    q->tail = p;
    size_t len = atomic_fetch_add_explicit(&s->rq_len, 1, memory_order_seq_cst) + 1;
    pthread_mutex_unlock(&s->rq_lock);
    if (s != rt__cur_sched) {
        if (atomic_load_explicit(&s->sleeping, memory_order_seq_cst))
            wake_sched(s);
    } else if (len >= 2) {
        wake_a_sleeper(s);
    }
}

/* Under rq_lock: takes the head of q, or NULL. */
static struct rt_proc *rq_take(struct rt__sched *s, struct rt__rq *q)
{
    struct rt_proc *p = q->head;
    if (p) {
        q->head = p->rq_next;
        if (!q->head)
            q->tail = NULL;
        atomic_fetch_sub_explicit(&s->rq_len, 1, memory_order_relaxed);
    }
    return p;
}

/* Under rq_lock: the next process by priority (rt.h, enum rt_priority):
 * high first, but never more than RT_PRIORITY_HIGH_STREAK of them in a row
 * while others wait; then normal, but a waiting low one after every
 * RT_PRIORITY_LOW_EVERY normal ones. */
static struct rt_proc *rq_pick(struct rt__sched *s)
{
    struct rt__rq *hi = &s->rq[RT_PRIORITY_HIGH];
    struct rt__rq *no = &s->rq[RT_PRIORITY_NORMAL];
    struct rt__rq *lo = &s->rq[RT_PRIORITY_LOW];
    bool others = no->head || lo->head;
    if (hi->head && (!others || s->high_streak < RT_PRIORITY_HIGH_STREAK)) {
        s->high_streak = others ? s->high_streak + 1 : 0;
        return rq_take(s, hi);
    }
    s->high_streak = 0;
    if (lo->head && (!no->head || s->normal_streak >= RT_PRIORITY_LOW_EVERY)) {
        s->normal_streak = 0;
        return rq_take(s, lo);
    }
    s->normal_streak = lo->head ? s->normal_streak + 1 : 0;
    return rq_take(s, no);
}

static struct rt_proc *rq_pop(struct rt__sched *s)
{
    if (atomic_load_explicit(&s->rq_len, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&s->rq_lock);
    struct rt_proc *p = rq_pick(s);
    pthread_mutex_unlock(&s->rq_lock);
    return p;
}

/* *now: the clock, read here on first need (0 until then): most looks
 * decide on the queue's length alone, and an idle scheduler looks often. */
static bool worth_stealing(struct rt__sched *v, uint64_t *now)
{
    size_t len = atomic_load_explicit(&v->rq_len, memory_order_relaxed);
    if (len >= 2)
        return true;
    if (len == 0)
        return false;
    if (atomic_load_explicit(&v->sleeping, memory_order_relaxed))
        return true;
    if (!atomic_load_explicit(&v->current, memory_order_relaxed))
        return false;
    if (!*now)
        *now = rt_now_ns();
    return *now - atomic_load_explicit(&v->slice_start_ns, memory_order_relaxed) > STEAL_AFTER_NS;
}

static struct rt_proc *steal(struct rt__sched *s)
{
    unsigned n = rt__rt.nsched;
    if (n < 2)
        return NULL;
    uint64_t now = 0;
    for (unsigned k = 1; k < n; k++) {
        struct rt__sched *v = &rt__rt.sched[(s->id + k) % n];
        if (!worth_stealing(v, &now))
            continue;
        if (pthread_mutex_trylock(&v->rq_lock) != 0)
            continue;
        /* In the victim's own order, so that its bounds hold for what it
         * keeps and a stolen process is the one it would have run next. */
        struct rt_proc *p = rq_pick(v);
        pthread_mutex_unlock(&v->rq_lock);
        if (p) {
            atomic_fetch_add_explicit(&s->steals, 1, memory_order_relaxed);
            return p;
        }
    }
    return NULL;
}

static bool anything_to_steal(struct rt__sched *s)
{
    uint64_t now = 0;
    for (unsigned k = 1; k < rt__rt.nsched; k++)
        if (worth_stealing(&rt__rt.sched[(s->id + k) % rt__rt.nsched], &now))
            return true;
    return false;
}

/* ---- parking and waking ------------------------------------------------------------ */

void rt__wake(struct rt_proc *p)
{
    int st = atomic_load_explicit(&p->state, memory_order_seq_cst);
    if (st != RT__WAITING)
        return;
    if (atomic_compare_exchange_strong_explicit(&p->state, &st, RT__RUNNABLE, memory_order_seq_cst,
                                                memory_order_relaxed))
        rt__enqueue(p);
}

static void park_commit(struct rt_proc *p)
{
    /* Owner fields are read before WAITING is published: from that store
     * on, a waker on another thread may run the process, reap it and hand
     * the block to a new spawn, so the block is no longer ours to read. The
     * waker's CAS reads our store, which orders these reads before all it
     * does next. */
    bool queued = p->hibernated && p->q_head;
    /* seq_cst store then loads: either we see the waker's flag or it sees
     * WAITING (rt_int.h). Only atomics are touched from here on, unless the
     * CAS below wins: then nobody else can have made the block runnable and
     * the enqueue is ours (if the block was reaped and reused meanwhile,
     * that is a spurious wake-up of its new process, which is allowed). */
    atomic_store_explicit(&p->state, RT__WAITING, memory_order_seq_cst);
    bool ready = queued || atomic_load_explicit(&p->wake_pending, memory_order_seq_cst) ||
                 atomic_load_explicit(&p->inbox_n, memory_order_seq_cst) > 0;
    if (ready) {
        int st = RT__WAITING;
        if (atomic_compare_exchange_strong_explicit(&p->state, &st, RT__RUNNABLE,
                                                    memory_order_seq_cst, memory_order_relaxed))
            rt__enqueue(p);
    }
}

void rt__switch_out(struct rt_proc *p, enum rt__req req)
{
    p->req = (uint8_t)req;
    switch_to_sched(p, rt__cur_sched);
}

void rt__park(struct rt_proc *p)
{
    if (RT__GET(&p->status_hint) == RT_STATUS_RUNNING)
        RT__SET(&p->status_hint, RT_STATUS_WAITING);
    rt__switch_out(p, RT__REQ_PARK);
    RT__SET(&p->status_hint, RT_STATUS_RUNNING);
    if (atomic_load_explicit(&p->inbox_n, memory_order_acquire) > 0)
        rt__drain(p); /* exit signals take effect here */
}

/* Called only from runtime calls that may switch the process out, where it
 * holds no lock (rt.h) and where exit signals already end it: ending it
 * here is as safe, while a process that runs on into its guard page can no
 * longer be ended alone (stack.c). */
static void stack_check(struct rt_proc *p)
{
    if (p->stack && rt__stack_exhausted(p->stack, __builtin_frame_address(0)))
        rt__die(p, RT_STACK_OVERFLOW);
}

void rt__charge(struct rt_proc *p, int n)
{
    if (p->req == RT__REQ_EXIT)
        return; /* being reaped: deferred cleanups run on the scheduler */
    stack_check(p);
    p->reds -= n;
    if (p->reds > 0)
        return;
    rt__switch_out(p, RT__REQ_YIELD);
    if (atomic_load_explicit(&p->inbox_n, memory_order_acquire) > 0)
        rt__drain(p);
}

int rt_set_priority(enum rt_priority prio)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    if ((unsigned)prio >= RT_PRIORITY_COUNT)
        return -EINVAL;
    int old = RT__GET(&p->prio); /* relaxed: see the field */
    RT__SET(&p->prio, (uint8_t)prio);
    return old;
}

void rt_yield(void)
{
    struct rt_proc *p = rt__self();
    if (!p || p->req == RT__REQ_EXIT)
        return;
    stack_check(p);
    rt__switch_out(p, RT__REQ_YIELD);
    if (atomic_load_explicit(&p->inbox_n, memory_order_acquire) > 0)
        rt__drain(p);
}

void rt_reductions(unsigned n)
{
    struct rt_proc *p = rt__self();
    if (p)
        rt__charge(p, (int)n);
}

_Noreturn void rt_hibernate(rt_entry fn, void *arg)
{
    struct rt_proc *p = rt__self();
    if (!p)
        abort();
    p->entry = fn;
    p->arg = arg;
    p->hibernated = true;
    rt__rel_trim(p);
    RT__SET(&p->status_hint, RT_STATUS_HIBERNATING);
    rt__switch_out(p, RT__REQ_HIBERNATE);
    abort(); /* unreachable: the stack is gone; fn runs on a new one */
}

_Noreturn void rt_hibernate_poll(int fd, unsigned events, int64_t timeout_ms, rt_entry fn,
                                 void *arg)
{
    struct rt_proc *p = rt__self();
    if (!p)
        abort();
    atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
    p->hib_error = fd >= 0 ? rt__io_arm(p, fd, events) : 0;
    if (p->hib_error < 0) /* fn runs at once; rt_hibernate_poll_error tells it why */
        atomic_store_explicit(&p->wake_pending, 1, memory_order_seq_cst);
    if (timeout_ms >= 0)
        rt__wait_timer_arm(p, rt_now_ms() + (uint64_t)timeout_ms);
    p->entry = fn;
    p->arg = arg;
    p->hibernated = true;
    p->hib_any_wake = true;
    rt__rel_trim(p);
    RT__SET(&p->status_hint, RT_STATUS_HIBERNATING);
    rt__switch_out(p, RT__REQ_HIBERNATE);
    abort();
}

int rt_hibernate_poll_error(void)
{
    struct rt_proc *p = rt__self();
    return p ? p->hib_error : -EPERM;
}

void rt_sleep(uint64_t ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return;
    uint64_t deadline = rt_now_ms() + ms;
    for (;;) {
        atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
        if (rt_now_ms() >= deadline)
            return;
        rt__wait_timer_arm(p, deadline);
        rt__park(p);
        rt__wait_timer_cancel(p);
    }
}

/* ---- running a process ------------------------------------------------------------- */

static void run(struct rt__sched *s, struct rt_proc *p)
{
    unsigned budget = rt__rt.cfg.reductions;
    atomic_store_explicit(&p->state, RT__RUNNING, memory_order_relaxed);
    atomic_store_explicit(&p->home, (uint8_t)(s->id + 1), memory_order_relaxed);
    p->reds = (int)budget;
    /* Straight after another run, that run's end is this one's start (the
     * queue pop between them counts as busy): one clock read per run. */
    uint64_t t0 = s->run_end_ns ? s->run_end_ns : rt_now_ns();
    atomic_store_explicit(&s->slice_start_ns, t0, memory_order_relaxed);
    /* Release: the watchdog and introspection that acquire `current` see
     * the block as initialised. */
    atomic_store_explicit(&s->current, p, memory_order_release);
    if (!p->stack) {
        if (rt__stack_get(s, p->stack_size, &p->stack) < 0) {
            rt_log(RT_LOG_ERROR, "out of memory for a stack: process %llu not started",
                   (unsigned long long)atomic_load(&p->pid));
            p->exit_reason = RT_SYSTEM_LIMIT;
            p->req = RT__REQ_EXIT;
            /* Never ran: what its spawner handed it is released here, as
             * its entry would have (a hibernated process's continuation
             * data is its own, released by its deferred cleanups). */
            if (!p->started && p->arg_free)
                p->arg_free(p->arg);
            rt__finish(p);
            atomic_store_explicit(&s->current, NULL, memory_order_relaxed);
            s->run_end_ns = 0;
            return;
        }
        init_ctx(p);
        p->started = true;
        RT__SET(&p->stack_bytes, p->stack_size);
    }
    switch_to_proc(s, p);
    atomic_fetch_add_explicit(&s->switches, 1, memory_order_relaxed);
    int used = (int)budget - p->reds;
    atomic_fetch_add_explicit(&p->reductions, used > 0 ? (uint64_t)used : 1, memory_order_relaxed);
    if (p->stack && !rt__stack_canary_ok(p->stack)) {
        char name[64];
        rt__spin_lock(&p->info_lock);
        snprintf(name, sizeof name, "%s", p->name ? p->name : "");
        rt__spin_unlock(&p->info_lock);
        rt_log(RT_LOG_ERROR,
               "fatal: process %llu (%s) overflowed its unguarded %zu-byte stack; "
               "memory next to it may be corrupt",
               (unsigned long long)atomic_load(&p->pid), name, p->stack->size);
        abort();
    }
    switch ((enum rt__req)p->req) {
    case RT__REQ_YIELD:
        atomic_store_explicit(&s->current, NULL, memory_order_relaxed);
        atomic_store_explicit(&p->state, RT__RUNNABLE, memory_order_relaxed);
        rt__enqueue(p);
        break;
    case RT__REQ_PARK:
        atomic_store_explicit(&s->current, NULL, memory_order_relaxed);
        park_commit(p);
        break;
    case RT__REQ_HIBERNATE:
        atomic_store_explicit(&s->current, NULL, memory_order_relaxed);
        rt__stack_put(s, p->stack);
        p->stack = NULL;
        RT__SET(&p->stack_bytes, 0);
        park_commit(p);
        break;
    case RT__REQ_EXIT:
        /* current stays p while its cleanups run, so rt_self() works in
         * them; rt__finish clears it before the pid is released. */
        rt__finish(p);
        atomic_store_explicit(&s->current, NULL, memory_order_relaxed);
        break;
    }
    /* After what the run asked for (an exit's cleanups, signals and
     * reports above): charged to this run, not to the next one's slice. */
    uint64_t t1 = rt_now_ns();
    s->run_end_ns = t1;
    atomic_fetch_add_explicit(&s->busy_ns_total, t1 - t0, memory_order_relaxed);
}

/* ---- stack overflow -------------------------------------------------------------------- */

/* The fatal report of an overflow, built with async-signal-safe means only:
 * the faulting code may hold malloc's or stdio's lock, or this process's
 * info_lock. */
struct fatal_buf {
    char b[1024];
    size_t n;
};

static void fb_str(struct fatal_buf *f, const char *s)
{
    for (; *s && f->n < sizeof f->b - 1; s++)
        f->b[f->n++] = *s;
}

/* Text a peer may have chosen (a process name), escaped as every runtime
 * report line is (rt__text_escape). */
static void fb_text(struct fatal_buf *f, const char *s)
{
    f->n += rt__text_escape(f->b + f->n, sizeof f->b - f->n, s);
}

static void fb_num(struct fatal_buf *f, uint64_t v, unsigned base)
{
    char d[24];
    size_t k = 0;
    do {
        d[k++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (base == 16)
        fb_str(f, "0x");
    while (k && f->n < sizeof f->b - 1)
        f->b[f->n++] = d[--k];
}

static uint64_t fault_pc(const void *uc)
{
    const ucontext_t *u = uc;
#if defined(__x86_64__)
    return (uint64_t)u->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uint64_t)u->uc_mcontext.pc;
#else
    (void)u;
    return 0;
#endif
}

/* The process ran into its guard page between runtime calls: its frames
 * may hold a lock that would never be released (stack.c), so the program
 * stops here, saying which process and why, rather than deadlock later. */
_Noreturn static void overflow_fatal(struct rt_proc *p, const void *addr, const void *uc)
{
    char name[64] = "";
    /* Try only: the faulting code may be the holder. The initial call is
     * interned static text, set before the process was published. */
    if (rt__spin_trylock(&p->info_lock)) {
        if (p->name) {
            size_t i = 0;
            for (; p->name[i] && i < sizeof name - 1; i++)
                name[i] = p->name[i];
            name[i] = 0;
        }
        rt__spin_unlock(&p->info_lock);
    }
    struct rt_fatal_report r = {
        .event = "stack_overflow",
        .pid = atomic_load_explicit(&p->pid, memory_order_relaxed),
        .name = name,
        .initial_call = p->initial_call ? p->initial_call : "",
        .stack_bytes = p->stack->size,
        .fault_address = (uintptr_t)addr,
        .pc = (uintptr_t)fault_pc(uc),
        .msg = "the process overflowed its stack between runtime calls, where its frames may "
               "hold a C library or runtime lock; it cannot be ended alone: aborting",
    };
    if (rt__fatal_handled(&r))
        abort();
    struct fatal_buf f = {.n = 0};
    fb_str(&f, "fatal: ");
    fb_str(&f, r.event);
    fb_str(&f, " pid=");
    fb_num(&f, r.pid, 10);
    fb_str(&f, " name=");
    fb_text(&f, r.name);
    fb_str(&f, " initial_call=");
    fb_text(&f, r.initial_call);
    fb_str(&f, " stack_bytes=");
    fb_num(&f, r.stack_bytes, 10);
    fb_str(&f, " fault_address=");
    fb_num(&f, r.fault_address, 16);
    fb_str(&f, " pc=");
    fb_num(&f, r.pc, 16);
    fb_str(&f, ": ");
    fb_str(&f, r.msg);
    fb_str(&f, "\n");
    for (size_t off = 0; off < f.n;) {
        ssize_t w = write(2, f.b + off, f.n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    abort();
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    struct rt__sched *s = rt__cur_sched;
    struct rt_proc *p = s ? atomic_load_explicit(&s->current, memory_order_relaxed) : NULL;
    if (p && p->stack && p->req != RT__REQ_EXIT && rt__stack_is_guard(p->stack, si->si_addr))
        overflow_fatal(p, si->si_addr, uc);
    static const char msg[] = "tandem: fatal signal outside a process stack guard\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_segv_handler(void)
{
#if !defined(RT__ASAN) && !defined(RT__TSAN)
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    /* On the scheduler's alternate stack: the process's stack is full. */
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
#else
    (void)on_segv;
#endif
}

/* ---- scheduler threads ----------------------------------------------------------------- */

static void *sched_main(void *arg)
{
    struct rt__sched *s = arg;
    rt__cur_sched = s;
#ifdef RT__TSAN
    sched_fiber = __tsan_get_current_fiber();
#endif
    stack_t ss = {.ss_sp = s->altstack, .ss_size = 64 * 1024, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    unsigned n = 0;
    while (!atomic_load_explicit(&rt__rt.stopping, memory_order_acquire)) {
        struct rt_proc *p = rq_pop(s);
        if (!p)
            p = steal(s);
        if (p) {
            run(s, p);
            if ((++n & 31) == 0) {
                rt__io_poll(s, 0);
                rt__wheel_advance(s->wheel, s->run_end_ns / 1000000u);
            }
            continue;
        }
        s->run_end_ns = 0; /* out of work: the next run reads the clock */
        int tmo = rt__wheel_advance(s->wheel, rt_now_ms());
        rt__io_poll(s, 0);
        if (atomic_load_explicit(&s->rq_len, memory_order_relaxed))
            continue;
        bool found = false;
        for (int i = 0; i < 200 && !found; i++) {
            if (atomic_load_explicit(&s->rq_len, memory_order_relaxed) || anything_to_steal(s))
                found = true;
            else
                rt__cpu_relax();
        }
        if (found)
            continue;
        /* Idle: what a burst left in the stack pool goes back to the OS
         * (the heap's holes: heap_trim_when_quiet). */
        rt__stack_pool_trim(s);
        /* seq_cst: pairs with rt__enqueue's load of `sleeping` after it
         * queued work: either it kicks us or we see the work here. */
        atomic_store_explicit(&s->sleeping, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&s->rq_len, memory_order_seq_cst) || anything_to_steal(s) ||
            atomic_load_explicit(&rt__rt.stopping, memory_order_seq_cst)) {
            atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
            continue;
        }
        rt__io_poll(s, tmo);
        atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
    }
    rt__proc_sched_done(s);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    rt__cur_sched = NULL;
    return NULL;
}

/* ---- watchdog and utilisation ------------------------------------------------------------ */

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;

/* The heap's free pages go back to the OS once the schedulers have been
 * quiet (together busy under 1% of the time) for HEAP_TRIM_QUIET_TICKS
 * watchdog ticks in a row after at least HEAP_TRIM_AFTER_BUSY_MS of work
 * since the last trim. */
#define HEAP_TRIM_QUIET_TICKS 5
#define HEAP_TRIM_AFTER_BUSY_MS 10

/* Watchdog thread, each tick (tick_ns since the last): gives the pages of
 * the memory freed since the last trim back to the OS, the free pages
 * between blocks in use included, in every arena (malloc_trim; free()
 * gives back only the top of an arena). A burst of requests leaves its
 * buffers and parsers as holes between what stays, such as the records
 * of the idle connections it opened: freed, but resident, and counted in
 * RSS for as long as the process runs. Only once things are quiet: a
 * trim walks the arenas under their locks, and what it gives back a busy
 * gateway would take again at once (a page fault each). Here, off the
 * schedulers, it delays no process. */
struct heap_trim {
    uint64_t busy_seen, busy_at_trim; /* the schedulers' busy ns, summed */
    unsigned quiet;                   /* quiet ticks in a row */
};

static void heap_trim_when_quiet(struct heap_trim *h, uint64_t tick_ns)
{
    uint64_t busy = 0;
    for (unsigned i = 0; i < rt__rt.nsched; i++)
        busy += atomic_load_explicit(&rt__rt.sched[i].busy_ns_total, memory_order_relaxed);
    uint64_t db = busy - h->busy_seen;
    h->busy_seen = busy;
    h->quiet = db * 100 < tick_ns ? h->quiet + 1 : 0;
    if (h->quiet < HEAP_TRIM_QUIET_TICKS ||
        busy - h->busy_at_trim < HEAP_TRIM_AFTER_BUSY_MS * 1000000u)
        return;
    malloc_trim(0);
    h->busy_at_trim = busy;
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    uint64_t limit_ns = (uint64_t)rt__rt.cfg.watchdog_ms * 1000000u;
    uint64_t last_util = rt_now_ns(), last_tick = last_util;
    struct heap_trim trim = {0};
    pthread_mutex_lock(&wd_lock);
    while (!atomic_load_explicit(&rt__rt.stopping, memory_order_acquire)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&wd_cond, &wd_lock, &ts);
        uint64_t now = rt_now_ns();
        heap_trim_when_quiet(&trim, now - last_tick);
        last_tick = now;
        for (unsigned i = 0; i < rt__rt.nsched; i++) {
            struct rt__sched *s = &rt__rt.sched[i];
            struct rt_proc *p = atomic_load_explicit(&s->current, memory_order_acquire);
            uint64_t t0 = atomic_load_explicit(&s->slice_start_ns, memory_order_relaxed);
            /* A slice that began after `now` was read is not overdue. */
            if (!p || t0 >= now || now - t0 < limit_ns)
                continue;
            rt_pid pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
            /* The reaper clears `current` before it releases the pid, but a
             * stale `current` may still be read here with the pid already 0:
             * no process is left to blame (the offence, if any, was reported
             * under its own pid). */
            if (pid == 0)
                continue;
            if (atomic_load_explicit(&s->watchdog_reported, memory_order_relaxed) == pid)
                continue;
            atomic_store_explicit(&s->watchdog_reported, pid, memory_order_relaxed);
            char name[64], ic[64];
            rt__spin_lock(&p->info_lock);
            snprintf(name, sizeof name, "%s", p->name ? p->name : "");
            snprintf(ic, sizeof ic, "%s", p->initial_call ? p->initial_call : "");
            rt__spin_unlock(&p->info_lock);
            rt_log(RT_LOG_WARNING,
                   "process %llu (name \"%s\", initial call \"%s\") has held scheduler %u "
                   "for %llu ms without yielding",
                   (unsigned long long)pid, name, ic, i,
                   (unsigned long long)((now - t0) / 1000000u));
        }
        if (now - last_util >= 1000000000u) {
            for (unsigned i = 0; i < rt__rt.nsched; i++) {
                struct rt__sched *s = &rt__rt.sched[i];
                uint64_t busy = atomic_load_explicit(&s->busy_ns_total, memory_order_relaxed);
                uint64_t db = busy - s->util_last_busy;
                uint64_t dt = now - last_util;
                s->util_last_busy = busy;
                uint64_t ppm = dt ? db * 1000000u / dt : 0;
                atomic_store_explicit(&s->util_ppm, (uint32_t)(ppm > 1000000 ? 1000000 : ppm),
                                      memory_order_relaxed);
            }
            last_util = now;
        }
    }
    pthread_mutex_unlock(&wd_lock);
    return NULL;
}

/* ---- joiners -------------------------------------------------------------------------- */

struct joiner {
    struct joiner *next;
    rt_pid pid;
    bool done;
    rt_atom reason;
};
static struct joiner *joiners;

/* Recent exits, so that a join that starts after its process already ended
 * still learns the reason. Lock-free: the reason is stored before the pid
 * (release) and read after it (acquire); an entry is overwritten only after
 * RECENT later exits. */
#define RECENT 65536
static struct {
    _Atomic uint64_t pid;
    _Atomic uint32_t reason;
} recent[RECENT];
static _Atomic uint64_t recent_next;

static bool recent_find(rt_pid pid, rt_atom *reason)
{
    for (size_t i = 0; i < RECENT; i++) {
        if (atomic_load_explicit(&recent[i].pid, memory_order_acquire) == pid) {
            *reason = atomic_load_explicit(&recent[i].reason, memory_order_relaxed);
            return true;
        }
    }
    return false;
}

/* Broadcasts of idle_cond by exits (rt__test_exit_wakeups). Written only
 * under idle_lock; read by tests (relaxed). */
static _Atomic uint64_t exit_wakeups;

uint64_t rt__test_exit_wakeups(void)
{
    return atomic_load_explicit(&exit_wakeups, memory_order_relaxed);
}

/* Threads in rt_join (a subset of idle_waiters, counted the same way). */
static _Atomic int joiners_n;

/* Exits that took idle_lock (rt__test_exit_locks). Written only under
 * idle_lock; read by tests (relaxed). */
static _Atomic uint64_t exit_locks;

uint64_t rt__test_exit_locks(void)
{
    return atomic_load_explicit(&exit_locks, memory_order_relaxed);
}

void rt__notify_exit(rt_pid pid, rt_atom reason)
{
    /* Relaxed: only the index must be unique. */
    size_t i = atomic_fetch_add_explicit(&recent_next, 1, memory_order_relaxed) % RECENT;
    atomic_store_explicit(&recent[i].reason, reason, memory_order_relaxed);
    /* Release: publishes the reason stored just before. */
    atomic_store_explicit(&recent[i].pid, pid, memory_order_release);
    /* seq_cst: pairs with the joiner's increment before its liveness check. */
    if (atomic_load_explicit(&rt__rt.idle_waiters, memory_order_seq_cst) == 0)
        return;
    /* Only rt_wait_idle waits (no joiner): it has anything to wake for only
     * once no process is left, so the other exits take no lock (a thread
     * waiting for a storm of spawns to end would otherwise make every exit
     * lock idle_lock, contended between schedulers). The exit that takes
     * `live` to 0 reads it after its own decrement and goes on. seq_cst:
     * as the loads below and rt_join's increments. */
    if (atomic_load_explicit(&joiners_n, memory_order_seq_cst) == 0 &&
        atomic_load_explicit(&rt__rt.live, memory_order_seq_cst) > 0)
        return;
    pthread_mutex_lock(&rt__rt.idle_lock);
    RT__RELAXED_ADD(&exit_locks, 1);
    bool wake = false;
    for (struct joiner *j = joiners; j; j = j->next) {
        if (j->pid == pid) {
            j->done = true;
            j->reason = reason;
            wake = true;
        }
    }
    /* Only a joiner of this pid, or rt_wait_idle once no process is left,
     * has anything to wake for. A thread that waits for the whole run (a
     * program's main thread joining its top process, rt_wait_idle during a
     * storm of spawns) would otherwise be woken, a futex call, by every
     * exit. The exit that takes `live` to 0 reads 0 here after its own
     * decrement, so the last one always wakes rt_wait_idle (which also
     * re-checks every 10 ms). seq_cst: as rt_wait_idle's load. */
    if (!wake && atomic_load_explicit(&rt__rt.live, memory_order_seq_cst) <= 0)
        wake = true;
    if (wake) {
        RT__RELAXED_ADD(&exit_wakeups, 1);
        pthread_cond_broadcast(&rt__rt.idle_cond);
    }
    pthread_mutex_unlock(&rt__rt.idle_lock);
}

static void deadline_ts(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

int rt_join(rt_pid pid, int64_t timeout_ms, rt_atom *reason)
{
    if (rt__self())
        return -EPERM;
    struct joiner j = {.pid = pid};
    pthread_mutex_lock(&rt__rt.idle_lock);
    j.next = joiners;
    joiners = &j;
    atomic_fetch_add_explicit(&joiners_n, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&rt__rt.idle_waiters, 1, memory_order_seq_cst);
    int rc = 0;
    rt_atom past;
    if (!j.done && !rt_is_alive(pid) && recent_find(pid, &past)) {
        if (reason)
            *reason = past;
    } else {
        /* Not alive and not yet in `recent`: either it is being reaped right
         * now (its notification should reach us) or it never existed (or
         * ended more than RECENT exits ago). Either way the wait is short
         * and `recent` is read again after it, even without a timeout: with
         * none, a pid with no exit to come, or a notification that passed
         * between the checks above and this wait, would block for ever. */
        if (!j.done && !rt_is_alive(pid) && (timeout_ms < 0 || timeout_ms > 200))
            timeout_ms = 200;
        struct timespec ts;
        if (timeout_ms >= 0)
            deadline_ts(&ts, timeout_ms);
        while (!j.done) {
            if (timeout_ms < 0) {
                pthread_cond_wait(&rt__rt.idle_cond, &rt__rt.idle_lock);
            } else if (pthread_cond_timedwait(&rt__rt.idle_cond, &rt__rt.idle_lock, &ts) ==
                       ETIMEDOUT) {
                break;
            }
        }
        if (j.done) {
            if (reason)
                *reason = j.reason;
        } else if (!rt_is_alive(pid)) {
            rc = recent_find(pid, &past) ? 0 : -ESRCH;
            if (rc == 0 && reason)
                *reason = past;
        } else {
            rc = -ETIMEDOUT;
        }
    }
    for (struct joiner **pp = &joiners; *pp; pp = &(*pp)->next) {
        if (*pp == &j) {
            *pp = j.next;
            break;
        }
    }
    atomic_fetch_sub_explicit(&rt__rt.idle_waiters, 1, memory_order_seq_cst);
    atomic_fetch_sub_explicit(&joiners_n, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&rt__rt.idle_lock);
    return rc;
}

int rt_wait_idle(int64_t timeout_ms)
{
    if (rt__self())
        return -EPERM;
    uint64_t end = rt_now_ms() + (uint64_t)(timeout_ms < 0 ? INT64_MAX / 2 : timeout_ms);
    pthread_mutex_lock(&rt__rt.idle_lock);
    atomic_fetch_add_explicit(&rt__rt.idle_waiters, 1, memory_order_seq_cst);
    int rc = 0;
    while (atomic_load_explicit(&rt__rt.live, memory_order_seq_cst) > 0) {
        if (rt_now_ms() >= end) {
            rc = -ETIMEDOUT;
            break;
        }
        struct timespec ts;
        deadline_ts(&ts, 10); /* the count can drop without a broadcast */
        pthread_cond_timedwait(&rt__rt.idle_cond, &rt__rt.idle_lock, &ts);
    }
    atomic_fetch_sub_explicit(&rt__rt.idle_waiters, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&rt__rt.idle_lock);
    return rc;
}

/* ---- start and stop ---------------------------------------------------------------------- */

void rt_config_default(struct rt_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

static void fill_defaults(struct rt_config *c)
{
    if (!c->schedulers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->schedulers = n > 0 ? (unsigned)n : 1;
    }
    if (c->schedulers > RT_MAX_SCHEDULERS)
        c->schedulers = RT_MAX_SCHEDULERS;
    if (!c->max_processes)
        c->max_processes = (size_t)1 << 21;
    if (c->max_processes > ((size_t)1 << 31))
        c->max_processes = (size_t)1 << 31;
    if (!c->stack_size)
        c->stack_size = 64 * 1024;
    long page = sysconf(_SC_PAGESIZE);
    if (c->stack_size < (size_t)page * 4)
        c->stack_size = (size_t)page * 4;
    c->stack_size = (c->stack_size + (size_t)page - 1) & ~((size_t)page - 1);
    if (!c->guarded_stacks)
        c->guarded_stacks = 8192;
    if (!c->blocking_threads)
        c->blocking_threads = 4;
    if (!c->watchdog_ms)
        c->watchdog_ms = 500;
    if (!c->reductions)
        c->reductions = 2000;
}

int rt_start(const struct rt_config *cfg)
{
    if (atomic_load(&rt__rt.running))
        return -EALREADY;
    struct rt_config c = cfg ? *cfg : (struct rt_config){0};
    fill_defaults(&c);
    memset(&rt__rt, 0, sizeof rt__rt);
    rt__rt.cfg = c;
    rt__rt.nsched = c.schedulers;
    atomic_store(&rt__rt.next_ref, 1);
    rt__rt.start_ms = rt_now_ms();
    pthread_mutex_init(&rt__rt.idle_lock, NULL);
    pthread_cond_init(&rt__rt.idle_cond, NULL);
    atomic_store(&rt__msgs_live, 0);
    joiners = NULL;
    memset(recent, 0, sizeof recent);
    atomic_store_explicit(&exit_wakeups, 0, memory_order_relaxed);
    rt__stacks_init();
    int rc = rt__proc_init();
    if (rc < 0)
        return rc;
    rc = rt__io_init();
    if (rc < 0)
        return rc;
    rt__timers_reset();
    rt__rt.sched = calloc(c.schedulers, sizeof(struct rt__sched));
    if (!rt__rt.sched)
        return -ENOMEM;
    for (unsigned i = 0; i < c.schedulers; i++) {
        struct rt__sched *s = &rt__rt.sched[i];
        s->id = i;
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        s->wheel = rt__wheel_new(rt_now_ms());
        s->altstack = malloc(64 * 1024);
        pthread_mutex_init(&s->rq_lock, NULL);
        if (s->epfd < 0 || s->evfd < 0 || !s->wheel || !s->altstack)
            return -ENOMEM;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev);
    }
    atomic_store(&rt__rt.running, 1);
    install_segv_handler();
    rc = rt__blocking_start(c.blocking_threads);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < c.schedulers; i++)
        pthread_create(&rt__rt.sched[i].thread, NULL, sched_main, &rt__rt.sched[i]);
    pthread_create(&rt__rt.watchdog, NULL, watchdog_main, NULL);
    return 0;
}

static void kill_one(struct rt_proc *p, void *ctx)
{
    (void)ctx;
    rt_pid pid = atomic_load_explicit(&p->pid, memory_order_acquire);
    if (pid)
        rt_exit_signal(pid, RT_KILL);
}

/* Counts the processes rt_stop has to end: not one already in its exit
 * path, which has sent its DOWNs and EXITs (so whoever waited for it has
 * moved on) and ends by itself; its slot is given back last. */
static void count_running(struct rt_proc *p, void *ctx)
{
    /* Relaxed: whether it ends by itself or is killed, it ends. */
    if (atomic_load_explicit(&p->state, memory_order_relaxed) != RT__EXITING)
        (*(int *)ctx)++;
}

int rt_stop(void)
{
    if (!atomic_load(&rt__rt.running))
        return 0;
    int left = 0;
    if (rt__proc_count() > 0) {
        rt__proc_foreach_slot(count_running, &left);
        rt__proc_foreach_slot(kill_one, NULL);
        if (rt_wait_idle(10000) < 0)
            rt_log(RT_LOG_ERROR, "rt_stop: %zu processes did not exit within 10 s",
                   rt__proc_count());
    }
    atomic_store_explicit(&rt__rt.stopping, 1, memory_order_seq_cst);
    for (unsigned i = 0; i < rt__rt.nsched; i++)
        wake_sched(&rt__rt.sched[i]);
    for (unsigned i = 0; i < rt__rt.nsched; i++)
        pthread_join(rt__rt.sched[i].thread, NULL);
    pthread_mutex_lock(&wd_lock);
    pthread_cond_broadcast(&wd_cond);
    pthread_mutex_unlock(&wd_lock);
    pthread_join(rt__rt.watchdog, NULL);
    rt__blocking_stop();
    rt__timers_done();
    for (unsigned i = 0; i < rt__rt.nsched; i++) {
        struct rt__sched *s = &rt__rt.sched[i];
        close(s->epfd);
        close(s->evfd);
        rt__wheel_free(s->wheel);
        free(s->altstack);
        pthread_mutex_destroy(&s->rq_lock);
    }
    free(rt__rt.sched);
    rt__rt.sched = NULL;
    rt__registry_done();
    rt__io_done();
    rt__proc_done();
    rt__stacks_done();
    rt__kinds_reset();
    atomic_store(&rt__rt.running, 0);
    return left;
}
