/*
 * test_stack.c: process stacks as valgrind sees them. In a program of its
 * own, so that where its mappings land depends on nothing run before it.
 */
#include "rt_int.h"
#include "rt_test.h"

#include <sys/mman.h>
#include <unistd.h>

#if defined(RT_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#else
#define VALGRIND_COUNT_ERRORS 0u
#endif

enum { T_RING = 1, T_TOKEN };

/* valgrind takes a move of the stack pointer by less than --max-stackframe
 * (2 MiB) into a stack it does not know of for a frame pushed or popped,
 * and marks everything in between undefined or freed: a process stack
 * mapped just above a scheduler thread's stack then yields false invalid
 * reads of that thread's own memory and of other processes' frames. Where
 * the mappings land depends on the holes the last runtime left and on
 * which thread stacks glibc kept for reuse, so this starts runtime after
 * runtime with varying counts of scheduler and blocking threads (in a fresh
 * program under valgrind, the fourth one puts a region of pooled stacks
 * right above a scheduler thread's stack). Each runs a ring of more
 * processes than a region holds, so that the region's lowest stacks (the
 * last a pool hands out) are used too; some members have dedicated stacks
 * of varying sizes. The members pass a token from frames of varying depth,
 * across the schedulers and through hibernation. */
enum { VG_ROUNDS = 12, VG_RING = 96, VG_LAPS = 4 };

static _Atomic uint64_t vg_hops;

/* Receives the token `depth` frames down, so that a process switches out
 * and back in with its stack pointer at many places. */
static struct rt_msg *vg_receive_at(volatile char *prev, int depth)
{
    volatile char buf[256];
    buf[0] = prev ? prev[0] : (char)depth;
    struct rt_msg *m = depth > 0 ? vg_receive_at(buf, depth - 1) : rt_receive(RT_INFINITY);
    /* A read after the call: no tail call, the frames really nest. */
    (void)buf[0];
    return m;
}

static void vg_ring_member(void *arg);

static void vg_ring_lap(rt_pid next, int lap)
{
    struct rt_msg *m = vg_receive_at(NULL, (lap * 7) % 24);
    uint64_t hop = m->u64;
    rt_msg_free(m);
    atomic_fetch_add(&vg_hops, 1);
    if (hop + 1 < (uint64_t)VG_RING * VG_LAPS)
        rt_send(next, msg_u64(T_TOKEN, hop + 1));
}

static void vg_ring_resume(void *arg)
{
    /* The token that woke it is there; the stack is a fresh one. */
    vg_ring_lap((rt_pid)(uintptr_t)arg, VG_LAPS / 2);
    for (int lap = VG_LAPS / 2 + 1; lap < VG_LAPS; lap++)
        vg_ring_lap((rt_pid)(uintptr_t)arg, lap);
}

static void vg_ring_member(void *arg)
{
    bool hibernates = arg != NULL;
    struct rt_msg *m = rt_receive(RT_INFINITY); /* the next member's pid */
    rt_pid next = m->u64;
    rt_msg_free(m);
    for (int lap = 0; lap < VG_LAPS; lap++) {
        if (hibernates && lap == VG_LAPS / 2)
            rt_hibernate(vg_ring_resume, (void *)(uintptr_t)next);
        vg_ring_lap(next, lap);
    }
}

START_TEST(switches_between_process_stacks_are_no_errors_to_valgrind)
{
    unsigned errors = VALGRIND_COUNT_ERRORS;
    for (int round = 0; round < VG_ROUNDS; round++) {
        /* Thread stacks move too as the counts of threads vary: glibc
         * keeps a few stacks of threads that ended for the next threads. */
        struct rt_config cfg;
        rt_config_default(&cfg);
        cfg.schedulers = 1 + round % 2;
        cfg.blocking_threads = 1 + round % 3 + round / 6;
        ck_assert_int_eq(rt_start(&cfg), 0);
        atomic_store(&vg_hops, 0);
        rt_pid ring[VG_RING];
        for (int i = 0; i < VG_RING; i++) {
            /* One member in eight has a dedicated mapping, its size varying
             * from member to member and round to round. */
            size_t kib = i % 8 == 1 ? (size_t)16 * (5 + (round + i) % 11) : 0;
            struct rt_spawn_opts o = {.stack_size = kib << 10};
            ck_assert_int_eq(rt_spawn(vg_ring_member, i % 3 ? NULL : (void *)1, &o, &ring[i]), 0);
        }
        for (int i = 0; i < VG_RING; i++)
            ck_assert_int_eq(rt_send(ring[i], msg_u64(T_RING, ring[(i + 1) % VG_RING])), 0);
        ck_assert_int_eq(rt_send(ring[0], msg_u64(T_TOKEN, 0)), 0);
        for (int i = 0; i < VG_RING; i++) {
            rt_atom reason;
            ck_assert_int_eq(rt_join(ring[i], rt_test_scaled(20000), &reason), 0);
            ck_assert_uint_eq(reason, RT_NORMAL);
        }
        ck_assert_uint_eq(atomic_load(&vg_hops), (uint64_t)VG_RING * VG_LAPS);
        rt_test_stop();
    }
    /* Always zero when not under valgrind. */
    unsigned after = VALGRIND_COUNT_ERRORS;
    ck_assert_msg(after == errors, "valgrind reported %u errors", after - errors);
}
END_TEST

/* Pages of a stack that are resident. */
static size_t resident_pages(const struct rt__stack *st)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = st->size / page;
    unsigned char *vec = malloc(n);
    ck_assert_ptr_nonnull(vec);
    ck_assert_int_eq(mincore(st->base, n * page, vec), 0);
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += vec[i] & 1;
    free(vec);
    return r;
}

/* A burst of processes fills a scheduler's pool with stacks whose pages
 * they touched. When the scheduler idles, the most recently pooled
 * RT__STACK_POOL_HOT keep their pages (the next processes reuse them warm)
 * and the rest give theirs back; each is still pooled and is handed out
 * again, hot ones first. */
START_TEST(an_idle_scheduler_gives_back_the_pages_of_stacks_pooled_beyond_the_hot_ones)
{
    rt_test_start(1);
    enum { N = 100 };
    struct rt__sched s;
    memset(&s, 0, sizeof s);
    struct rt__stack *st[N];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(rt__stack_get(&s, rt__rt.cfg.stack_size, &st[i]), 0);
        memset(st[i]->base, 0x5a, st[i]->size);
    }
    size_t full = resident_pages(st[0]);
    ck_assert_uint_gt(full, 1);
    for (int i = 0; i < N; i++)
        rt__stack_put(&s, st[i]);
    ck_assert_uint_eq(s.stack_pool_n, N);
    rt__stack_pool_trim(&s);
    /* The pool hands out the last pooled first: st[N-1] down to st[0]. */
    for (int i = 0; i < N; i++) {
        if (i >= N - RT__STACK_POOL_HOT)
            ck_assert_uint_eq(resident_pages(st[i]), full);
        else
            ck_assert_uint_eq(resident_pages(st[i]), 0);
    }
    rt__stack_pool_trim(&s); /* nothing more to give back: a no-op */
    for (int i = N - 1; i >= 0; i--) {
        struct rt__stack *got;
        ck_assert_int_eq(rt__stack_get(&s, rt__rt.cfg.stack_size, &got), 0);
        ck_assert_ptr_eq(got, st[i]);
        ck_assert_uint_ge(resident_pages(got), 1); /* its canary's page, written again */
    }
    ck_assert_uint_eq(s.stack_pool_n, 0);
    for (int i = 0; i < N; i++)
        rt__stack_put(NULL, st[i]);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_stack", switches_between_process_stacks_are_no_errors_to_valgrind,
             an_idle_scheduler_gives_back_the_pages_of_stacks_pooled_beyond_the_hot_ones)
