/*
 * ratelimit_bench.c: the cost of one local rate-limit check
 * (gw__rl_check: hash, stripe lock, window arithmetic), in ns, from 1 and 2
 * threads (the gateway's schedulers on a 2-core machine), on one shared key
 * (every check on one stripe: the worst case) and on distinct keys (one
 * per client address, as by "client" sees them). Not a test.
 *
 *   ninja -C build tests/bench/ratelimit/ratelimit_bench
 *   build/tests/bench/ratelimit/ratelimit_bench [checks per thread]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "policy/ratelimit.h"

struct arg {
    struct gw__rl_space *s;
    unsigned id;
    unsigned long n;
    unsigned keys; /* 1: one shared key */
    unsigned long allowed;
    uint64_t ns;
};

static pthread_barrier_t start;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *run(void *p)
{
    struct arg *a = p;
    /* Keys are made before the clock starts: only checks are timed. */
    char(*keys)[32] = malloc((size_t)a->keys * 32);
    int *lens = malloc((size_t)a->keys * sizeof *lens);
    if (!keys || !lens)
        exit(1);
    for (unsigned k = 0; k < a->keys; k++)
        lens[k] = a->keys == 1
                      ? snprintf(keys[k], 32, "shared")
                      : snprintf(keys[k], 32, "10.%u.%u.%u", a->id, (k >> 8) & 255, k & 255);
    struct gw__rl_result r;
    pthread_barrier_wait(&start);
    uint64_t t0 = now_ns();
    for (unsigned long i = 0; i < a->n; i++) {
        unsigned k = (unsigned)(i % a->keys);
        /* The clock as a check reads it (the gateway's rt_now_ms). */
        gw__rl_check(a->s, 'a', keys[k], (size_t)lens[k], 1000000, now_ns() / 1000000, &r);
        a->allowed += r.allowed;
    }
    a->ns = now_ns() - t0;
    free(keys);
    free(lens);
    return NULL;
}

static double measure(unsigned threads, unsigned keys, unsigned long n)
{
    struct gw__rl_space *s;
    static unsigned gen;
    char name[32];
    snprintf(name, sizeof name, "bench-%u", gen++);
    if (gw__rl_space_get(name, "w=1000", 1000, 1000000, &s) < 0)
        exit(1);
    pthread_t t[2];
    struct arg a[2];
    pthread_barrier_init(&start, NULL, threads);
    for (unsigned i = 0; i < threads; i++) {
        a[i] = (struct arg){.s = s, .id = i, .n = n, .keys = keys};
        pthread_create(&t[i], NULL, run, &a[i]);
    }
    uint64_t worst = 0;
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        if (a[i].ns > worst)
            worst = a[i].ns;
    }
    pthread_barrier_destroy(&start);
    gw__rl_space_put(s);
    /* Wall time per check of the slower thread: what one request waits. */
    return (double)worst / (double)n;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
    printf("local rate-limit check, ns per check (wall time / checks of one thread),\n"
           "the figures a median of none: run it a few times on an idle machine\n");
    printf("%-28s %10s %10s\n", "", "1 thread", "2 threads");
    static const unsigned keys[] = {1, 1000, 65536};
    for (size_t i = 0; i < 3; i++) {
        double one = measure(1, keys[i], n), two = measure(2, keys[i], n);
        char label[64];
        if (keys[i] == 1)
            snprintf(label, sizeof label, "one key (one stripe)");
        else
            snprintf(label, sizeof label, "%u keys per thread", keys[i]);
        printf("%-28s %10.1f %10.1f\n", label, one, two);
    }
    return 0;
}
