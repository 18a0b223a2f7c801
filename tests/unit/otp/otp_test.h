/*
 * otp_test.h: harness shared by the OTP behaviour tests.
 *
 * Each test body runs inside a process (behaviour calls need process
 * context). Assertions inside processes record the first failure and exit
 * the process instead of calling Check from a scheduler thread; the main
 * thread then reports it, waits for every process to be gone and asserts
 * that rt_stop() had nothing left to kill.
 */
#ifndef OTP_TEST_H
#define OTP_TEST_H

#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt/rt.h"

#if defined(__SANITIZE_ADDRESS__)
/* Workaround for a runtime issue: a recycled process stack keeps the ASan
 * shadow of the frames its previous process abandoned (exit paths never
 * return), which shows up as "unknown-crash" on valid stack writes. With
 * fake stacks for frames (detect_stack_use_after_return) no frame lives on
 * the real stack. Remove once stacks are unpoisoned on reuse. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_stack_use_after_return=1";
}
#endif

static char t_failure[512];
static atomic_int t_failed;
static atomic_int t_body_done;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (atomic_exchange(&t_failed, 1) == 0)                                                \
                snprintf(t_failure, sizeof t_failure, "%s:%d: %s", __FILE__, __LINE__, #c);        \
            rt_exit(rt_atom_intern("test_failed"));                                                \
        }                                                                                          \
    } while (0)

#define T_EQ(a, b) T_ASSERT((long long)(a) == (long long)(b))

/* T_ASSERT with the figures that made it fail. */
#define T_ASSERT_F(c, ...)                                                                         \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (atomic_exchange(&t_failed, 1) == 0) {                                              \
                int n_ =                                                                           \
                    snprintf(t_failure, sizeof t_failure, "%s:%d: %s: ", __FILE__, __LINE__, #c);  \
                if (n_ > 0 && (size_t)n_ < sizeof t_failure)                                       \
                    snprintf(t_failure + n_, sizeof t_failure - (size_t)n_, __VA_ARGS__);          \
            }                                                                                      \
            rt_exit(rt_atom_intern("test_failed"));                                                \
        }                                                                                          \
    } while (0)

static void (*t_body)(void);

/* Each test file resets its own globals here: with CK_FORK=no (valgrind)
 * all tests run in one process. */
static void t_reset(void);

static void t_runner(void *arg)
{
    (void)arg;
    t_body();
    atomic_store(&t_body_done, 1);
}

/* Runs `body` in a process on `schedulers` scheduler threads; asserts it
 * finished, that nothing stays alive (wait_idle) and that rt_stop had
 * nothing to kill when `clean`. */
static inline void t_run_on(void (*body)(void), bool clean, unsigned schedulers)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = schedulers;
    atomic_store(&t_failed, 0);
    atomic_store(&t_body_done, 0);
    t_failure[0] = 0;
    t_reset();
    ck_assert_int_eq(rt_start(&cfg), 0);
    t_body = body;
    rt_pid pid = 0;
    struct rt_spawn_opts so = {.initial_call = "test"};
    ck_assert_int_eq(rt_spawn(t_runner, NULL, &so, &pid), 0);
    rt_atom reason = 0;
    int jr = rt_join(pid, 30000, &reason);
    if (clean && jr == 0)
        rt_wait_idle(5000);
    int left = rt_stop();
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_int_eq(jr, 0);
    ck_assert_msg(atomic_load(&t_body_done), "test process exited: %s", rt_atom_name(reason));
    if (clean)
        ck_assert_int_eq(left, 0);
}

static inline void t_run(void (*body)(void), bool clean)
{
    t_run_on(body, clean, 2);
}

/* Process context: receives the next message matching type (and from, if
 * non-zero), or NULL after timeout_ms. */
struct t_match {
    uint32_t type;
    rt_pid from;
};

static bool t_match_fn(const struct rt_msg *m, void *ctx)
{
    const struct t_match *t = ctx;
    return m->type == t->type && (!t->from || m->from == t->from);
}

static inline struct rt_msg *t_recv(uint32_t type, rt_pid from, int64_t timeout_ms)
{
    struct t_match t = {type, from};
    return rt_receive_match(t_match_fn, &t, timeout_ms);
}

/* A message carrying one int. */
static inline struct rt_msg *t_int_msg(uint32_t type, int v)
{
    return rt_msg_copy(type, &v, sizeof v);
}

static inline int t_int(const struct rt_msg *m)
{
    int v = 0;
    if (m && m->size >= sizeof v)
        memcpy(&v, m->data, sizeof v);
    return v;
}

/* ---- cost against a deep mailbox ----------------------------------------------
 * OTP's gen_server_SUITE allows a call 10x the time of an empty-mailbox
 * call while the caller holds many unrelated messages (the receive marker);
 * a call that scans the caller's whole mailbox is thousands of times
 * slower. */
#define T_DEEP_QUEUE 200000
#define T_DEEP_FACTOR 10
#define T_DEEP_ROUNDS 7
#define T_DEEP_REPS 100
#define T_JUNK 0x3ffffff0u  /* a type no test server or task answers with */
#define T_ROUND 0x3ffffff1u /* "time one round", and its answer (u64: ns per op) */

/* Queues n unrelated messages in the caller's mailbox. */
static inline void t_flood(size_t n)
{
    for (size_t i = 0; i < n; i++)
        rt_send(rt_self(), rt_msg_new(T_JUNK, 0));
}

/* Takes back the flooded messages; returns how many there were. */
static inline size_t t_unflood(void)
{
    size_t n = 0;
    struct rt_msg *m;
    while ((m = t_recv(T_JUNK, 0, 0))) {
        rt_msg_free(m);
        n++;
    }
    return n;
}

/* Mean ns per op(ctx) over T_DEEP_REPS ops. */
static inline uint64_t t_round_ns(void (*op)(void *), void *ctx)
{
    uint64_t t0 = rt_now_ns();
    for (int k = 0; k < T_DEEP_REPS; k++)
        op(ctx);
    return (rt_now_ns() - t0) / T_DEEP_REPS;
}

struct t_deep {
    void (*op)(void *);
    void *ctx;
    rt_pid boss;
};

/* The deep side: floods its own mailbox, then times rounds on demand. */
static void t_deep_runner(void *arg)
{
    struct t_deep d = *(struct t_deep *)arg;
    t_flood(T_DEEP_QUEUE);
    /* The flood's first receive moves it from the inbox into the queue,
     * once, as any receive would: one op before any timing. */
    d.op(d.ctx);
    /* Orders come after this mark (the boss waits for the first answer
     * before it orders anything): wait for them past the flood. */
    rt_mark mark = rt_receive_mark();
    rt_send(d.boss, rt_msg_new(T_ROUND, 0));
    struct t_match order = {T_ROUND, d.boss};
    for (;;) {
        struct rt_msg *m = rt_receive_match_since(mark, t_match_fn, &order, RT_INFINITY);
        bool last = m->u64 != 0;
        rt_msg_free(m);
        struct rt_msg *r = rt_msg_new(T_ROUND, 0);
        r->u64 = t_round_ns(d.op, d.ctx);
        rt_send(d.boss, r);
        if (last)
            break;
    }
    T_EQ(t_unflood(), T_DEEP_QUEUE);
}

struct t_round_or_down {
    rt_pid deep;
    rt_ref mref;
};

static bool t_round_or_down_fn(const struct rt_msg *m, void *ctx)
{
    const struct t_round_or_down *w = ctx;
    return (m->type == T_ROUND && m->from == w->deep) ||
           (m->type == RT_MSG_DOWN && m->ref == w->mref);
}

static int t_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* op's cost in a process holding T_DEEP_QUEUE unrelated messages against
 * its cost in this one, holding none: medians of T_DEEP_ROUNDS rounds,
 * taken in turns so that load on the machine hits both alike. op must work
 * from either process (it runs in both). */
static inline void t_assert_cost_independent_of_queue(void (*op)(void *), void *ctx)
{
    struct t_deep *d = rt_alloc(sizeof *d);
    T_ASSERT(d);
    *d = (struct t_deep){op, ctx, rt_self()};
    rt_pid deep = 0;
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(t_deep_runner, d, &so, &deep), 0);
    op(ctx);
    struct t_round_or_down w = {deep, mref};
    struct rt_msg *ready = rt_receive_match(t_round_or_down_fn, &w, 60000);
    T_ASSERT(ready && ready->type == T_ROUND);
    rt_msg_free(ready);
    uint64_t e[T_DEEP_ROUNDS], q[T_DEEP_ROUNDS];
    for (int i = 0; i < T_DEEP_ROUNDS; i++) {
        e[i] = t_round_ns(op, ctx);
        struct rt_msg *o = rt_msg_new(T_ROUND, 0);
        o->u64 = i == T_DEEP_ROUNDS - 1;
        rt_send(deep, o);
        struct rt_msg *r = rt_receive_match(t_round_or_down_fn, &w, 60000);
        /* A DOWN here: the deep side failed (its assertion is recorded). */
        T_ASSERT(r && r->type == T_ROUND);
        q[i] = r->u64;
        rt_msg_free(r);
    }
    struct rt_msg *down = rt_receive_ref(mref, 60000);
    T_ASSERT(down && down->u64 == RT_NORMAL);
    rt_msg_free(down);
    qsort(e, T_DEEP_ROUNDS, sizeof e[0], t_cmp_u64);
    qsort(q, T_DEEP_ROUNDS, sizeof q[0], t_cmp_u64);
    uint64_t empty = e[T_DEEP_ROUNDS / 2], full = q[T_DEEP_ROUNDS / 2];
    T_ASSERT_F(full < T_DEEP_FACTOR * empty, "%llu ns with %d queued, %llu ns with none",
               (unsigned long long)full, T_DEEP_QUEUE, (unsigned long long)empty);
}

#define T_CASE(s, tc, fn)                                                                          \
    do {                                                                                           \
        tcase_add_test(tc, fn);                                                                    \
    } while (0)

#endif
