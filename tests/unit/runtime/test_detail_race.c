/* test_detail_race.c: a process's detail line is readable by introspection
 * at every moment, also while the process replaces it with a longer one
 * (a new block is written before it is published). The line read is
 * always one the process set: only 'x's. A block published before its
 * text is written shows whatever malloc left in it (MALLOC_PERTURB_, set
 * by meson test, fills it; ASan reports the read past its end). */
#include "rt_test.h"
#include <pthread.h>
#include <stdint.h>

#define ROUNDS 300

static _Atomic uint64_t target; /* the process to read; 1: stop */
static _Atomic int go;
static _Atomic int bad_reads;

static void child(void *arg)
{
    (void)arg;
    while (!atomic_load(&go))
        rt_yield();
    char buf[128];
    memset(buf, 'x', sizeof buf);
    for (size_t len = 1; len < 128; len += 8)
        rt_set_detail_text(buf, len);
    rt_msg_free(rt_receive(RT_INFINITY));
}

static bool only_xs(const char *s)
{
    for (; *s; s++)
        if (*s != 'x')
            return false;
    return true;
}

static void *prober(void *arg)
{
    (void)arg;
    struct rt_proc_info info;
    uint64_t t;
    while ((t = atomic_load(&target)) != 1) {
        if (t <= 1)
            continue;
        atomic_store(&go, 1);
        for (int i = 0; i < 2000; i++)
            if (rt_proc_info(t, &info) == 0 && !only_xs(info.detail))
                atomic_fetch_add(&bad_reads, 1);
    }
    return NULL;
}

START_TEST(detail_line_read_while_it_grows_is_always_a_whole_string)
{
    rt_test_start(2);
    pthread_t th;
    pthread_create(&th, NULL, prober, NULL);
    static rt_pid pids[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        atomic_store(&go, 0);
        ck_assert_int_eq(rt_spawn(child, NULL, NULL, &pids[r]), 0);
        atomic_store(&target, pids[r]);
        struct rt_proc_info info;
        do {
            ck_assert_int_eq(rt_proc_info(pids[r], &info), 0);
        } while (info.status != RT_STATUS_WAITING || !atomic_load(&go));
    }
    atomic_store(&target, 1);
    pthread_join(th, NULL);
    for (int r = 0; r < ROUNDS; r++)
        rt_send(pids[r], msg_u64(1, 0));
    int bad = atomic_load(&bad_reads);
    ck_assert_msg(bad == 0, "%d reads saw a line the process never set", bad);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("detail_race", detail_line_read_while_it_grows_is_always_a_whole_string)
