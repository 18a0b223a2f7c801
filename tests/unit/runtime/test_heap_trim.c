/*
 * test_heap_trim.c: once the schedulers are quiet, the heap's free pages
 * go back to the OS. In a program of its own: it measures the process's RSS, which
 * nothing else may move while it runs. Built without sanitizers only
 * (their allocators are not the C library's, which is what is trimmed).
 */
#include "rt_test.h"

#include <stdio.h>
#include <unistd.h>

enum { T_FREE = 1, BLOCKS = 4096, BLOCK = 16 * 1024 };

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static _Atomic int holes_made;
static void *keep[BLOCKS];

/* Leaves 64 MiB of freed blocks, each between two that stay: holes the C
 * library's free() keeps resident (it gives back only an arena's top). */
static void make_holes(void *arg)
{
    (void)arg;
    static char *big[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        big[i] = malloc(BLOCK);
        keep[i] = malloc(64);
        ck_assert(big[i] && keep[i]);
        memset(big[i], 1, BLOCK);
    }
    for (int i = 0; i < BLOCKS; i++)
        free(big[i]);
    atomic_store(&holes_made, 1);
    rt_msg_free(rt_receive(RT_INFINITY));
    for (int i = 0; i < BLOCKS; i++)
        free(keep[i]);
}

START_TEST(once_quiet_the_runtime_gives_back_the_pages_of_freed_heap_blocks)
{
    rt_test_start(1);
    long before = rss_kb();
    rt_pid p;
    ck_assert_int_eq(rt_spawn(make_holes, NULL, NULL, &p), 0);
    for (int i = 0; i < 10000 && !atomic_load(&holes_made); i++)
        usleep(1000);
    ck_assert(atomic_load(&holes_made));
    /* The blocks were 64 MiB; three of each block's four pages are whole
     * pages inside its hole, which a trim gives back. The watchdog trims
     * once the schedulers have been quiet for half a second. */
    long now = rss_kb();
    for (int i = 0; i < 300 && now - before > 24 * 1024; i++) {
        usleep(10000);
        now = rss_kb();
    }
    ck_assert_msg(now - before <= 24 * 1024, "RSS still %ld kB over the start", now - before);
    ck_assert_int_eq(rt_send(p, rt_msg_new(T_FREE, 0)), 0);
    ck_assert_int_eq(rt_join(p, 5000, NULL), 0);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_heap_trim", once_quiet_the_runtime_gives_back_the_pages_of_freed_heap_blocks)
