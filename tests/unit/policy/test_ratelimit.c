/* test_ratelimit.c: the rate limit counters (ratelimit_table.c) and key
 * choice (ratelimit_key.c): the sliding window at its edges, Retry-After
 * and RateLimit figures, the accuracy of a 10 s hammering, exact counts
 * from several threads, the bounded table and its eviction, and counts
 * found again by a reload; and SipHash, which the table and key_auth's
 * tags are keyed with, against the reference vectors. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gw/http1.h"
#include "policy/ratelimit.h"
#include "policy/siphash.h"
#include "route/route.h"

#define W 1000u

START_TEST(a_fresh_window_allows_the_limit_then_refuses)
{
    struct gw__rl_window w;
    struct gw__rl_result r;
    gw__rl_window_init(&w, 5000);
    ck_assert(gw__rl_window_take(&w, 3, W, 5000, &r));
    ck_assert_uint_eq(r.remaining, 2);
    ck_assert_uint_eq(r.reset_s, 1);
    ck_assert(gw__rl_window_take(&w, 3, W, 5000, &r));
    ck_assert(gw__rl_window_take(&w, 3, W, 5999, &r));
    ck_assert_uint_eq(r.remaining, 0);
    /* The 4th in the same window is refused and not counted. */
    ck_assert(!gw__rl_window_take(&w, 3, W, 5999, &r));
    ck_assert_uint_eq(r.cur, 3);
    ck_assert_uint_eq(r.remaining, 0);
    /* At 5999 the next window starts in 1 ms, and then prev = 3 weighs
     * 3 * (W - 0) / W = 3: the first request to pass is 1 ms into it. */
    ck_assert_uint_eq(r.retry_ms, 2);
    ck_assert(!gw__rl_window_take(&w, 3, W, 6000, &r));
    ck_assert_uint_eq(r.prev, 3);
    ck_assert_uint_eq(r.retry_ms, 1);
    ck_assert(gw__rl_window_take(&w, 3, W, 6001, &r));
}
END_TEST

START_TEST(the_previous_window_weighs_by_the_time_left_in_it)
{
    struct gw__rl_window w;
    struct gw__rl_result r;
    gw__rl_window_init(&w, 0);
    for (int i = 0; i < 10; i++)
        ck_assert(gw__rl_window_take(&w, 10, W, 0, &r));
    /* Half-way through the next window prev weighs 5: five more pass. */
    for (int i = 0; i < 5; i++)
        ck_assert(gw__rl_window_take(&w, 10, W, 1500, &r));
    ck_assert(!gw__rl_window_take(&w, 10, W, 1500, &r));
    /* 10 * (1000 - e) < (10 - 5) * 1000 from e = 501 on. */
    ck_assert_uint_eq(r.retry_ms, 1);
    ck_assert(!gw__rl_window_take(&w, 10, W, 1500, &r));
    ck_assert(gw__rl_window_take(&w, 10, W, 1501, &r));
    ck_assert(!gw__rl_window_take(&w, 10, W, 1501, &r));
    /* Two windows later nothing counted weighs any more. */
    ck_assert(!gw__rl_window_expired(&w, W, 2999));
    ck_assert(gw__rl_window_expired(&w, W, 3000));
    ck_assert(gw__rl_window_take(&w, 10, W, 3000, &r));
    ck_assert_uint_eq(r.prev, 0);
    ck_assert_uint_eq(r.cur, 1);
    ck_assert_uint_eq(r.remaining, 9);
}
END_TEST

START_TEST(a_clock_read_before_the_window_counts_at_its_start)
{
    struct gw__rl_window w;
    struct gw__rl_result r;
    gw__rl_window_init(&w, 1000);
    ck_assert(gw__rl_window_take(&w, 2, W, 1000, &r));
    /* Another thread read the clock at 999 and took the lock second. */
    ck_assert(gw__rl_window_take(&w, 2, W, 999, &r));
    ck_assert(!gw__rl_window_take(&w, 2, W, 998, &r));
    ck_assert_uint_eq(r.cur, 2);
    ck_assert_uint_eq(r.reset_s, 1);
}
END_TEST

START_TEST(peek_counts_nothing)
{
    struct gw__rl_window w;
    struct gw__rl_result r;
    gw__rl_window_init(&w, 0);
    gw__rl_window_take(&w, 2, W, 0, &r);
    gw__rl_window_peek(&w, 2, W, 10, &r);
    ck_assert_uint_eq(r.cur, 1);
    ck_assert_uint_eq(r.remaining, 1);
    ck_assert(r.allowed);
    gw__rl_window_peek(&w, 2, W, 10, &r);
    ck_assert_uint_eq(r.cur, 1);
}
END_TEST

/* Requests every 97 microseconds for `dur_ms` against 100 per second;
 * returns how many pass. */
static unsigned hammer(uint64_t start_us, uint64_t dur_ms)
{
    struct gw__rl_window w;
    struct gw__rl_result r;
    gw__rl_window_init(&w, start_us / 1000);
    unsigned n = 0;
    for (uint64_t t = start_us; t < start_us + dur_ms * 1000; t += 97)
        n += gw__rl_window_take(&w, 100, W, t / 1000, &r);
    return n;
}

START_TEST(ten_seconds_of_hammering_pass_the_limit_times_ten)
{
    /* The limit's rate over the whole run, whatever the run's phase
     * against the clock and however it ends: 1000 for 10 s, not the
     * 1100 a fixed window or a full token bucket would let through. */
    for (uint64_t phase = 0; phase < 1000000; phase += 123457) {
        unsigned n = hammer(1000000000 + phase, 10000);
        ck_assert_msg(n >= 999 && n <= 1001, "phase %llu: %u", (unsigned long long)phase, n);
        n = hammer(1000000000 + phase, 10050);
        ck_assert_msg(n >= 1000 && n <= 1006, "phase %llu, 10.05 s: %u", (unsigned long long)phase,
                      n);
    }
}
END_TEST

START_TEST(a_key_back_after_its_windows_are_over_is_anchored_anew)
{
    /* A 10 s run by a client that was here before, at any phase of its
     * old windows, gets the same 1000 as a new key. */
    for (uint64_t phase = 0; phase < 1000; phase += 137) {
        struct gw__rl_window w;
        struct gw__rl_result r;
        gw__rl_window_init(&w, 0);
        for (uint64_t t = 0; t < 3000; t += 5)
            gw__rl_window_take(&w, 100, W, t, &r);
        uint64_t start = 10000 + phase;
        unsigned n = 0;
        for (uint64_t t = start * 10; t < (start + 10000) * 10; t++)
            n += gw__rl_window_take(&w, 100, W, t / 10, &r);
        ck_assert_msg(n >= 999 && n <= 1001, "phase %llu: %u", (unsigned long long)phase, n);
    }
}
END_TEST

START_TEST(retry_after_is_when_the_next_request_passes)
{
    /* For every refusal, the request retry_ms later passes and the one a
     * millisecond earlier is refused. */
    struct gw__rl_window w;
    struct gw__rl_result r;
    gw__rl_window_init(&w, 0);
    unsigned checked = 0;
    for (uint64_t t = 0; t < 5000; t += 7) {
        if (gw__rl_window_take(&w, 7, W, t, &r))
            continue;
        struct gw__rl_window c = w;
        struct gw__rl_result q;
        ck_assert_uint_ge(r.retry_ms, 1);
        ck_assert(!gw__rl_window_take(&c, 7, W, t + r.retry_ms - 1, &q));
        c = w;
        ck_assert_msg(gw__rl_window_take(&c, 7, W, t + r.retry_ms, &q), "t %llu retry %u",
                      (unsigned long long)t, r.retry_ms);
        checked++;
    }
    ck_assert_uint_gt(checked, 100);
}
END_TEST

/* ---- key choice -------------------------------------------------------------- */

START_TEST(the_key_is_what_by_names)
{
    struct route route = {.name = "orders"};
    struct gw_http_header hs[] = {
        {.name = "X-Tenant", .name_len = 8, .value = "acme", .value_len = 4}};
    struct gw_http_head head = {.headers = hs, .nheaders = 1};
    struct gw_pol_consumer alice = {.name = "alice"};
    struct gw_pol_req rq = {.head = &head, .route = &route, .client = "192.0.2.7"};
    char p;
    size_t len;
    const char *k = gw__rl_request_key(GW_RL_BY_ROUTE, NULL, &rq, &p, &len);
    ck_assert_str_eq(k, "orders");
    ck_assert_int_eq(p, 'r');
    ck_assert_uint_eq(len, 6);
    k = gw__rl_request_key(GW_RL_BY_CLIENT, NULL, &rq, &p, &len);
    ck_assert_str_eq(k, "192.0.2.7");
    ck_assert_int_eq(p, 'a');
    /* No consumer yet: by address. */
    k = gw__rl_request_key(GW_RL_BY_CONSUMER, NULL, &rq, &p, &len);
    ck_assert_str_eq(k, "192.0.2.7");
    ck_assert_int_eq(p, 'a');
    rq.subject = "sub-42";
    k = gw__rl_request_key(GW_RL_BY_CONSUMER, NULL, &rq, &p, &len);
    ck_assert_str_eq(k, "sub-42");
    ck_assert_int_eq(p, 'c');
    rq.consumer = &alice;
    k = gw__rl_request_key(GW_RL_BY_CONSUMER, NULL, &rq, &p, &len);
    ck_assert_str_eq(k, "alice");
    ck_assert_int_eq(p, 'c');
    k = gw__rl_request_key(GW_RL_BY_HEADER, "x-tenant", &rq, &p, &len);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(k, "acme", 4) == 0);
    ck_assert_int_eq(p, 'h');
    k = gw__rl_request_key(GW_RL_BY_HEADER, "x-other", &rq, &p, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(p, 'h');
}
END_TEST

/* ---- the table --------------------------------------------------------------- */

START_TEST(keys_count_apart_and_kinds_of_keys_too)
{
    struct gw__rl_space *s;
    ck_assert_int_eq(gw__rl_space_get("t-apart", "w=1000", W, 1000, &s), 0);
    struct gw__rl_result r;
    ck_assert_int_eq(gw__rl_check(s, 'a', "x", 1, 1, 0, &r), 0);
    ck_assert(r.allowed);
    ck_assert_int_eq(gw__rl_check(s, 'a', "x", 1, 1, 0, &r), 0);
    ck_assert(!r.allowed);
    ck_assert_int_eq(gw__rl_check(s, 'a', "y", 1, 1, 0, &r), 0);
    ck_assert(r.allowed);
    /* A consumer named like the address is another key. */
    ck_assert_int_eq(gw__rl_check(s, 'c', "x", 1, 1, 0, &r), 0);
    ck_assert(r.allowed);
    /* Long keys (stored as a digest) are told apart too. */
    char a[1000], b[1000];
    memset(a, 'k', sizeof a);
    memcpy(b, a, sizeof b);
    b[999] = 'j';
    ck_assert_int_eq(gw__rl_check(s, 'h', a, sizeof a, 1, 0, &r), 0);
    ck_assert(r.allowed);
    ck_assert_int_eq(gw__rl_check(s, 'h', b, sizeof b, 1, 0, &r), 0);
    ck_assert(r.allowed);
    ck_assert_int_eq(gw__rl_check(s, 'h', a, sizeof a, 1, 0, &r), 0);
    ck_assert(!r.allowed);
    ck_assert(gw__rl_peek(s, 'h', b, sizeof b, 1, 10, &r));
    ck_assert_uint_eq(r.cur, 1);
    ck_assert(!gw__rl_peek(s, 'h', "nope", 4, 1, 10, &r));
    gw__rl_space_put(s);
}
END_TEST

START_TEST(a_reload_of_the_same_definition_keeps_its_counts)
{
    struct gw__rl_space *a, *b, *c;
    struct gw__rl_result r;
    ck_assert_int_eq(gw__rl_space_get("t-reload", "w=1000;by=client", W, 100, &a), 0);
    ck_assert_int_eq(gw__rl_check(a, 'a', "k", 1, 2, 0, &r), 0);
    ck_assert_int_eq(gw__rl_check(a, 'a', "k", 1, 2, 0, &r), 0);
    /* The new table's definition compiles before the old one is freed. */
    ck_assert_int_eq(gw__rl_space_get("t-reload", "w=1000;by=client", W, 100, &b), 0);
    ck_assert_ptr_eq(a, b);
    gw__rl_space_put(a);
    ck_assert_int_eq(gw__rl_check(b, 'a', "k", 1, 2, 0, &r), 0);
    ck_assert(!r.allowed);
    /* Another window length counts afresh. */
    ck_assert_int_eq(gw__rl_space_get("t-reload", "w=2000;by=client", 2 * W, 100, &c), 0);
    ck_assert_ptr_ne(b, c);
    ck_assert_int_eq(gw__rl_check(c, 'a', "k", 1, 2, 0, &r), 0);
    ck_assert(r.allowed);
    gw__rl_space_put(b);
    gw__rl_space_put(c);
}
END_TEST

START_TEST(a_full_table_refuses_new_keys_until_windows_are_over)
{
    struct gw__rl_space *s;
    struct gw__rl_result r;
    struct gw__rl_stats st;
    ck_assert_int_eq(gw__rl_space_get("t-full", "w=1000", W, 10, &s), 0);
    char k[16];
    for (int i = 0; i < 10; i++) {
        int n = snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(gw__rl_check(s, 'a', k, (size_t)n, 5, 100, &r), 0);
        ck_assert(r.allowed);
    }
    ck_assert_int_eq(gw__rl_check(s, 'a', "new", 3, 5, 1500, &r), 0);
    ck_assert(!r.allowed);
    ck_assert(r.table_full);
    ck_assert_uint_eq(r.retry_ms, W);
    /* Known keys still count. */
    ck_assert_int_eq(gw__rl_check(s, 'a', "k3", 2, 5, 1500, &r), 0);
    ck_assert(r.allowed);
    gw__rl_space_stats(s, &st);
    ck_assert_uint_eq(st.keys, 10);
    ck_assert_uint_eq(st.full, 1);
    ck_assert_uint_eq(st.evicted, 0);
    /* At 2100 the windows of every key but k3 are over. */
    ck_assert_int_eq(gw__rl_check(s, 'a', "new", 3, 5, 2100, &r), 0);
    ck_assert(r.allowed);
    gw__rl_space_stats(s, &st);
    ck_assert_uint_ge(st.evicted, 1);
    ck_assert_uint_le(st.keys, 10);
    /* k3 was still live (one request in each of its first two windows):
     * its count is kept. */
    ck_assert(gw__rl_peek(s, 'a', "k3", 2, 5, 2100, &r));
    ck_assert_uint_eq(r.prev, 1);
    gw__rl_space_put(s);
}
END_TEST

START_TEST(a_key_anchored_anew_does_not_keep_expired_keys_behind_it)
{
    /* A key back after its windows are over starts afresh in its entry;
     * the entries of its stripe that expired meanwhile must still go when
     * the table is full, or new keys are refused for the room they hold. */
    enum { N = 1000 };
    struct gw__rl_space *s;
    struct gw__rl_result r;
    struct gw__rl_stats st;
    ck_assert_int_eq(gw__rl_space_get("t-reanchor", "w=1000", W, N, &s), 0);
    char k[16];
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "old%d", i);
        ck_assert_int_eq(gw__rl_check(s, 'a', k, (size_t)n, 5, 0, &r), 0);
        ck_assert(r.allowed);
    }
    /* old0, the oldest of its stripe, comes back when every window is
     * over: one live key, N - 1 expired ones. */
    ck_assert_int_eq(gw__rl_check(s, 'a', "old0", 4, 5, 2500, &r), 0);
    ck_assert(r.allowed);
    /* Room for N - 1 new keys, whichever stripes they fall in. */
    unsigned refused = 0;
    for (int i = 0; i < N - 1; i++) {
        int n = snprintf(k, sizeof k, "new%d", i);
        ck_assert_int_eq(gw__rl_check(s, 'a', k, (size_t)n, 5, 2500, &r), 0);
        refused += !r.allowed;
    }
    gw__rl_space_stats(s, &st);
    ck_assert_msg(refused == 0, "%u new keys refused, %llu keys held", refused,
                  (unsigned long long)st.keys);
    ck_assert_uint_eq(st.keys, N);
    ck_assert_uint_eq(st.evicted, N - 1);
    gw__rl_space_put(s);
}
END_TEST

/* ---- exact from several threads ------------------------------------------------ */

#define THREADS 8
#define PER_THREAD 20000

struct worker {
    struct gw__rl_space *s;
    unsigned id;
    unsigned allowed_shared, allowed_own;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct gw__rl_result r;
    char own[16];
    int n = snprintf(own, sizeof own, "own-%u", w->id);
    for (unsigned i = 0; i < PER_THREAD; i++) {
        /* 1.5 windows: the first thread past two thirds of its tries
         * starts the second window; the others' clocks then count there. */
        uint64_t now = 1000 + (uint64_t)i * 1500 / PER_THREAD;
        gw__rl_check(w->s, 'a', "shared", 6, 5000, now, &r);
        w->allowed_shared += r.allowed;
        gw__rl_check(w->s, 'a', own, (size_t)n, 300, now, &r);
        w->allowed_own += r.allowed;
    }
    return NULL;
}

START_TEST(counts_are_exact_from_several_threads)
{
    struct gw__rl_space *s;
    ck_assert_int_eq(gw__rl_space_get("t-threads", "w=1000", W, 1000, &s), 0);
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.s = s, .id = i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    unsigned shared = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        shared += w[i].allowed_shared;
        /* Each own key, on one thread's clock: 300 in the first window,
         * then in the second, up to e = 499, 150 more (300 * (1000 - e) +
         * 149 * 1000 < 300 * 1000 from e = 497 on). */
        ck_assert_uint_eq(w[i].allowed_own, 450);
    }
    /* 160,000 tries on one key, 5000 per window: exactly 5000 pass in the
     * first window whatever the interleaving; the second window lets
     * through what its elapsed time allows, checked against a replay. */
    struct gw__rl_result r;
    ck_assert(gw__rl_peek(s, 'a', "shared", 6, 5000, 2499, &r));
    ck_assert_uint_eq(r.prev, 5000);
    ck_assert_uint_eq(shared, 5000 + r.cur);
    gw__rl_space_put(s);
}
END_TEST

/* The first window alone: every thread's tries at one instant, all
 * threads released at once so that they overlap. */
#define ONE_TRIES 300000
#define ONE_LIMIT 1000000

static pthread_barrier_t one_start;

static void *work_one_window(void *arg)
{
    struct worker *w = arg;
    struct gw__rl_result r;
    pthread_barrier_wait(&one_start);
    for (unsigned i = 0; i < ONE_TRIES; i++) {
        gw__rl_check(w->s, 'a', "one", 3, ONE_LIMIT, 77, &r);
        w->allowed_shared += r.allowed;
    }
    return NULL;
}

START_TEST(one_window_from_several_threads_allows_exactly_the_limit)
{
    /* Several rounds: on a busy machine the threads of one round may not
     * overlap much; a lost or doubled count in any round fails. */
    for (int round = 0; round < 5; round++) {
        char name[32];
        snprintf(name, sizeof name, "t-one-%d", round);
        struct gw__rl_space *s;
        ck_assert_int_eq(gw__rl_space_get(name, "w=1000", W, 1000, &s), 0);
        pthread_t t[THREADS];
        struct worker w[THREADS];
        pthread_barrier_init(&one_start, NULL, THREADS);
        for (unsigned i = 0; i < THREADS; i++) {
            w[i] = (struct worker){.s = s, .id = i};
            ck_assert_int_eq(pthread_create(&t[i], NULL, work_one_window, &w[i]), 0);
        }
        unsigned total = 0;
        for (unsigned i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            total += w[i].allowed_shared;
        }
        pthread_barrier_destroy(&one_start);
        /* 2.4 million tries: exactly the limit pass, and the count says so. */
        ck_assert_uint_eq(total, ONE_LIMIT);
        struct gw__rl_result r;
        ck_assert(gw__rl_peek(s, 'a', "one", 3, ONE_LIMIT, 77, &r));
        ck_assert_uint_eq(r.cur, ONE_LIMIT);
        gw__rl_space_put(s);
    }
}
END_TEST

/* The reference vectors (Aumasson and Bernstein's vectors.h): key bytes
 * 00..0f, message bytes 00..len-1, the 64-bit output as a little-endian
 * number. Lengths around the 8-byte blocks: an empty tail, a full one, and
 * a block then a tail. */
START_TEST(siphash_gives_the_reference_vectors)
{
    static const struct {
        size_t len;
        uint64_t out;
    } v[] = {{0, 0x726fdb47dd0e0e31ull}, {1, 0x74f839c593dc67fdull}, {7, 0xab0200f58b01d137ull},
             {8, 0x93f5f5799a932462ull}, {9, 0x9e0082df0ba9e4b0ull}, {12, 0x751e8fbc860ee5fbull},
             {15, 0xa129ca6149be45e5ull}};
    const uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
    unsigned char msg[64 + 1];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)i;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_msg(gw__pol_siphash(k0, k1, msg, v[i].len) == v[i].out, "length %zu", v[i].len);
    /* Input at any alignment hashes alike (words are read by bytes). */
    unsigned char odd[64 + 1];
    for (size_t len = 0; len < 64; len++) {
        memcpy(odd + 1, msg, len);
        ck_assert(gw__pol_siphash(k0, k1, odd + 1, len) == gw__pol_siphash(k0, k1, msg, len));
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("window");
    tcase_add_test(tc, a_fresh_window_allows_the_limit_then_refuses);
    tcase_add_test(tc, the_previous_window_weighs_by_the_time_left_in_it);
    tcase_add_test(tc, a_clock_read_before_the_window_counts_at_its_start);
    tcase_add_test(tc, peek_counts_nothing);
    tcase_add_test(tc, ten_seconds_of_hammering_pass_the_limit_times_ten);
    tcase_add_test(tc, a_key_back_after_its_windows_are_over_is_anchored_anew);
    tcase_add_test(tc, retry_after_is_when_the_next_request_passes);
    suite_add_tcase(s, tc);
    tc = tcase_create("keys");
    tcase_add_test(tc, the_key_is_what_by_names);
    tcase_add_test(tc, keys_count_apart_and_kinds_of_keys_too);
    tcase_add_test(tc, a_reload_of_the_same_definition_keeps_its_counts);
    tcase_add_test(tc, a_full_table_refuses_new_keys_until_windows_are_over);
    tcase_add_test(tc, a_key_anchored_anew_does_not_keep_expired_keys_behind_it);
    tcase_add_test(tc, siphash_gives_the_reference_vectors);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, counts_are_exact_from_several_threads);
    tcase_add_test(tc, one_window_from_several_threads_allows_exactly_the_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
