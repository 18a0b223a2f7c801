/* test_arena.c: a process's arena (rt_spawn_opts.arena): where rt_alloc
 * and rt_defer take memory from, what is counted, and what goes at exit. */
#include "rt_test.h"

#include <stdatomic.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#define HDR 32 /* the runtime's block header */

static _Atomic int ran;        /* how far a process body got */
static int order[8];           /* deferred cleanups with a number, as they ran */
static _Atomic int norder;     /* ... how many */
static _Atomic int unnumbered; /* deferred cleanups without one that ran */

/* The memory a process holds through rt_alloc: its memory figure less what
 * it held at `base`. */
static size_t held_since(size_t base)
{
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(rt_self(), &info), 0);
    return info.memory - base;
}

/* Bytes the C library's allocator has handed out and not had back. Under
 * AddressSanitizer or ThreadSanitizer, whose allocator it is not, nothing
 * is checked. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HEAP_CHECK(cond) ((void)(cond))
static size_t heap_in_use(void)
{
    return 0;
}
#else
#include <malloc.h>
#define HEAP_CHECK(cond) ck_assert(cond)
static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}
#endif

static size_t memory_now(void)
{
    return held_since(0);
}

static rt_atom run_with_arena(rt_entry fn, size_t arena)
{
    struct rt_spawn_opts o = {.arena = arena};
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(fn, NULL, &o, &pid), 0);
    rt_atom reason = RT_UNDEFINED;
    ck_assert_int_eq(rt_join(pid, 20000, &reason), 0);
    return reason;
}

/* Blocks follow one another in the arena while they fit, then come from
 * the system allocator; every one is counted at its size either way. */
static void fills_then_overflows(void *arg)
{
    (void)arg;
    size_t base = memory_now();
    char *b[40];
    /* 100 bytes take 112 in the arena, behind a header: 4096 / 144 = 28
     * blocks fit. The C library's count of bytes it has handed out does
     * not move for them, and grows for the 12 that follow. */
    size_t heap0 = heap_in_use();
    for (int i = 0; i < 40; i++) {
        b[i] = rt_alloc(100);
        ck_assert_ptr_nonnull(b[i]);
        memset(b[i], i, 100);
        if (i == 27) {
            HEAP_CHECK(heap_in_use() - heap0 < 28 * 100);
            heap0 = heap_in_use();
        }
    }
    HEAP_CHECK(heap_in_use() - heap0 >= 12 * (100 + HDR));
    for (int i = 1; i < 28; i++)
        ck_assert_ptr_eq(b[i], b[i - 1] + HDR + 112);
    ck_assert_uint_eq(held_since(base), 40 * 100);
    for (int i = 0; i < 40; i++)
        for (int j = 0; j < 100; j++)
            ck_assert_int_eq(b[i][j], i);
    for (int i = 0; i < 40; i++)
        rt_free(b[i]);
    ck_assert_uint_eq(held_since(base), 0);
    atomic_store(&ran, 1);
}

START_TEST(blocks_come_from_the_arena_while_they_fit_and_are_all_counted)
{
    rt_test_start(1);
    atomic_store(&ran, 0);
    ck_assert_int_eq(run_with_arena(fills_then_overflows, 4096), RT_NORMAL);
    ck_assert_int_eq(atomic_load(&ran), 1);
    rt_test_stop();
}
END_TEST

/* rt_realloc of an arena block: shrinking keeps it in place, growing moves
 * it (into the arena while there is room, else out) with its bytes. */
static void reallocs(void *arg)
{
    (void)arg;
    size_t base = memory_now();
    char *a = rt_alloc(200);
    ck_assert_ptr_nonnull(a);
    for (int i = 0; i < 200; i++)
        a[i] = (char)i;
    char *s = rt_realloc(a, 50);
    ck_assert_ptr_eq(s, a);
    ck_assert_uint_eq(held_since(base), 50);
    char *g = rt_realloc(s, 1000); /* still fits the 2 KiB arena */
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_ne(g, s);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(g[i], (char)i);
    ck_assert_uint_eq(held_since(base), 1000);
    char *big = rt_realloc(g, 100000); /* does not: the system allocator's */
    ck_assert_ptr_nonnull(big);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(big[i], (char)i);
    ck_assert_uint_eq(held_since(base), 100000);
    char *bigger = rt_realloc(big, 200000); /* a block off the arena grows as ever */
    ck_assert_ptr_nonnull(bigger);
    ck_assert_int_eq(bigger[49], 49);
    ck_assert_uint_eq(held_since(base), 200000);
    char *x = rt_alloc(10); /* the arena still serves */
    ck_assert_ptr_nonnull(x);
    rt_free(bigger);
    ck_assert_uint_eq(held_since(base), 10);
    rt_free(x);
    ck_assert_uint_eq(held_since(base), 0);
    atomic_store(&ran, 1);
}

START_TEST(realloc_of_an_arena_block_shrinks_in_place_and_moves_to_grow)
{
    rt_test_start(1);
    atomic_store(&ran, 0);
    ck_assert_int_eq(run_with_arena(reallocs, 2048), RT_NORMAL);
    ck_assert_int_eq(atomic_load(&ran), 1);
    rt_test_stop();
}
END_TEST

/* The memory cap counts blocks, not the arena: as many 4 KiB blocks fit
 * under 64 KiB with an arena as without one. */
static void capped(void *arg)
{
    (void)arg;
    rt_set_max_memory(64 * 1024);
    int n = 0;
    while (n < 100 && rt_alloc(4096))
        n++;
    atomic_store(&ran, n);
    rt_receive(0); /* ends it: memory_limit */
}

START_TEST(the_memory_cap_counts_arena_blocks_as_any_other)
{
    rt_test_start(1);
    atomic_store(&ran, 0);
    ck_assert_int_eq(run_with_arena(capped, 32 * 1024), RT_MEMORY_LIMIT);
    ck_assert_int_eq(atomic_load(&ran), 16);
    rt_test_stop();
}
END_TEST

static void note(void *arg)
{
    int d = (int)(intptr_t)arg;
    if (d == 0)
        atomic_fetch_add(&unnumbered, 1);
    else if (atomic_load(&norder) < 8)
        order[atomic_fetch_add(&norder, 1)] = d;
}

/* Deferred cleanups cut from the arena run as any others: last first, a
 * cancelled one never, one run early once. */
static void defers(void *arg)
{
    (void)arg;
    rt_defer(note, (void *)1);
    uint64_t two = rt_defer(note, (void *)2);
    rt_defer(note, (void *)3);
    uint64_t four = rt_defer(note, (void *)4);
    rt_undefer(two, false);
    rt_undefer(four, true);
    for (int i = 0; i < 100; i++) /* the arena's rest, then malloc's */
        ck_assert_uint_ne(rt_defer(note, (void *)0), 0);
    rt_msg_free(rt_receive(RT_INFINITY)); /* killed while waiting */
}

START_TEST(cleanups_from_the_arena_run_last_first_when_the_process_is_killed)
{
    rt_test_start(1);
    atomic_store(&norder, 0);
    atomic_store(&unnumbered, 0);
    struct rt_spawn_opts o = {.arena = 1024};
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(defers, NULL, &o, &pid), 0);
    usleep(20000);
    ck_assert_int_eq(rt_exit_signal(pid, RT_KILL), 0);
    ck_assert_int_eq(rt_join(pid, 5000, NULL), 0);
    /* 4 early; at exit the 100 (the later ones from malloc), then 3 and 1. */
    ck_assert_int_eq(atomic_load(&norder), 3);
    ck_assert_int_eq(order[0], 4);
    ck_assert_int_eq(order[1], 3);
    ck_assert_int_eq(order[2], 1);
    ck_assert_int_eq(atomic_load(&unnumbered), 100);
    rt_test_stop();
}
END_TEST

/* Freeing an arena block twice is reported and stops the program, as the
 * C library does for its blocks: counted off twice, it would leave the
 * process's memory figure wrapped around. */
static void frees_twice(void *arg)
{
    (void)arg;
    char *b = rt_alloc(100);
    ck_assert_ptr_nonnull(b);
    rt_free(b);
    rt_free(b);
    atomic_store(&ran, 1); /* never reached */
}

START_TEST(an_arena_block_freed_twice_aborts)
{
    rt_test_start(1);
    run_with_arena(frees_twice, 1024);
}
END_TEST

START_TEST(an_arena_over_the_largest_is_refused)
{
    rt_test_start(1);
    struct rt_spawn_opts o = {.arena = RT_ARENA_MAX + 1};
    ck_assert_int_eq(rt_spawn(fills_then_overflows, NULL, &o, NULL), -EINVAL);
    rt_test_stop();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rt_arena");
    TCase *tc = tcase_create("arena");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, blocks_come_from_the_arena_while_they_fit_and_are_all_counted);
    tcase_add_test(tc, realloc_of_an_arena_block_shrinks_in_place_and_moves_to_grow);
    tcase_add_test(tc, the_memory_cap_counts_arena_blocks_as_any_other);
    tcase_add_test(tc, cleanups_from_the_arena_run_last_first_when_the_process_is_killed);
    tcase_add_test(tc, an_arena_over_the_largest_is_refused);
    tcase_add_test_raise_signal(tc, an_arena_block_freed_twice_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
