/*
 * test_redis.c: the policies' Redis client (gateway/src/policy/redis.c).
 *
 * Pure: the script's answer read back, and the reconnection backoff. Live,
 * against the redis-server tests/lib/redisserver.py starts for the run
 * (TANDEM_TEST_REDIS_*): windows counted exactly and ending on time, the
 * script sent whole after the server forgot it, a stopped server answered
 * at once and a restarted one found again, AUTH and SELECT, a wrong
 * password reported, a client stopped while its server's name resolves. Each live body runs in a
 * runtime process that starts and stops the client's supervisor; the runtime ends with no process
 * left.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "gw/metrics.h"
#include "policy/redis.h"
#include "rt/proc_lib.h"
#include "rt/supervisor.h"

static char failure[512];
static atomic_int failed;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c) && atomic_exchange(&failed, 1) == 0)                                              \
            snprintf(failure, sizeof failure, "%s:%d: %s", __FILE__, __LINE__, #c);                \
    } while (0)
#define T_ASSERT_MSG(c, ...)                                                                       \
    do {                                                                                           \
        if (!(c) && atomic_exchange(&failed, 1) == 0) {                                            \
            int n_ = snprintf(failure, sizeof failure, "%s:%d: %s: ", __FILE__, __LINE__, #c);     \
            snprintf(failure + n_, sizeof failure - (size_t)n_, __VA_ARGS__);                      \
        }                                                                                          \
    } while (0)

/* ---- the script's answer ------------------------------------------------------- */

static redisReply integer(long long v)
{
    return (redisReply){.type = REDIS_REPLY_INTEGER, .integer = v};
}

static redisReply array(redisReply **el, size_t n)
{
    return (redisReply){.type = REDIS_REPLY_ARRAY, .elements = n, .element = el};
}

START_TEST(script_answer_gives_count_and_reset)
{
    redisReply c = integer(7), t = integer(830);
    redisReply *el[2] = {&c, &t};
    redisReply r = array(el, 2);
    uint32_t count = 0, reset = 0;
    ck_assert_int_eq(gw__redis_parse_window(&r, &count, &reset), 0);
    ck_assert_uint_eq(count, 7);
    ck_assert_uint_eq(reset, 830);
}
END_TEST

START_TEST(script_answer_saturates_and_clamps)
{
    redisReply c = integer(1LL << 40), t = integer(-2);
    redisReply *el[2] = {&c, &t};
    redisReply r = array(el, 2);
    uint32_t count = 0, reset = 99;
    ck_assert_int_eq(gw__redis_parse_window(&r, &count, &reset), 0);
    ck_assert_uint_eq(count, UINT32_MAX);
    ck_assert_uint_eq(reset, 0);
}
END_TEST

START_TEST(script_answer_noscript_asks_for_the_whole_script)
{
    char msg[] = "NOSCRIPT No matching script. Please use EVAL.";
    redisReply r = {.type = REDIS_REPLY_ERROR, .str = msg, .len = strlen(msg)};
    uint32_t count = 5, reset = 5;
    ck_assert_int_eq(gw__redis_parse_window(&r, &count, &reset), -ENOENT);
    ck_assert_uint_eq(count, 5); /* untouched on failure */
    ck_assert_uint_eq(reset, 5);
}
END_TEST

START_TEST(script_answer_refuses_errors_and_odd_shapes)
{
    uint32_t count = 0, reset = 0;
    char oom[] = "OOM command not allowed";
    redisReply err = {.type = REDIS_REPLY_ERROR, .str = oom, .len = strlen(oom)};
    ck_assert_int_eq(gw__redis_parse_window(&err, &count, &reset), -EPROTO);
    ck_assert_int_eq(gw__redis_parse_window(NULL, &count, &reset), -EPROTO);
    redisReply one = integer(1);
    ck_assert_int_eq(gw__redis_parse_window(&one, &count, &reset), -EPROTO);
    redisReply c = integer(3), t = integer(10), x = integer(1);
    redisReply *three[3] = {&c, &t, &x};
    redisReply r3 = array(three, 3);
    ck_assert_int_eq(gw__redis_parse_window(&r3, &count, &reset), -EPROTO);
    char s[] = "3";
    redisReply str = {.type = REDIS_REPLY_STRING, .str = s, .len = 1};
    redisReply *mixed[2] = {&str, &t};
    redisReply rm = array(mixed, 2);
    ck_assert_int_eq(gw__redis_parse_window(&rm, &count, &reset), -EPROTO);
    redisReply zero = integer(0);
    redisReply *z[2] = {&zero, &t};
    redisReply rz = array(z, 2);
    ck_assert_int_eq(gw__redis_parse_window(&rz, &count, &reset), -EPROTO);
    redisReply *nul[2] = {NULL, &t};
    redisReply rn = array(nul, 2);
    ck_assert_int_eq(gw__redis_parse_window(&rn, &count, &reset), -EPROTO);
}
END_TEST

/* ---- the backoff ------------------------------------------------------------------ */

START_TEST(backoff_doubles_within_jitter_up_to_the_cap)
{
    for (unsigned f = 1; f <= 40; f++) {
        uint64_t full = (uint64_t)GW_REDIS_BACKOFF_MIN_MS << (f - 1 < 20 ? f - 1 : 20);
        if (full > GW_REDIS_BACKOFF_MAX_MS)
            full = GW_REDIS_BACKOFF_MAX_MS;
        uint32_t lo = UINT32_MAX, hi = 0;
        for (uint32_t rnd = 0; rnd < 5000; rnd++) {
            uint32_t w = gw__redis_backoff_ms(f, rnd * 2654435761u);
            lo = w < lo ? w : lo;
            hi = w > hi ? w : hi;
        }
        /* Equal jitter: within [full/2, full], and spread over it. */
        ck_assert_uint_ge(lo, full / 2);
        ck_assert_uint_le(hi, full);
        ck_assert_uint_lt(lo, full / 2 + full / 8 + 1);
        ck_assert_uint_gt(hi, full - full / 8 - 1);
    }
    ck_assert_uint_le(gw__redis_backoff_ms(1, 0), GW_REDIS_BACKOFF_MIN_MS);
    ck_assert_uint_le(gw__redis_backoff_ms(UINT32_MAX, UINT32_MAX), GW_REDIS_BACKOFF_MAX_MS);
    ck_assert_uint_ge(gw__redis_backoff_ms(UINT32_MAX, 0), GW_REDIS_BACKOFF_MAX_MS / 2);
}
END_TEST

/* ---- live, against redis-server ------------------------------------------------------- */

static struct gw_redis_config cfg;
static char address[64];
static const char *ctl; /* TANDEM_TEST_REDIS_CTL */

static int ctl_run(const char *what)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", ctl, what);
    return system(cmd);
}

static void live_setup(void)
{
    const char *port = getenv("TANDEM_TEST_REDIS_PORT");
    ctl = getenv("TANDEM_TEST_REDIS_CTL");
    ck_assert_msg(port && ctl,
                  "run under tests/lib/redisserver.py (TANDEM_TEST_REDIS_PORT is not set)");
    snprintf(address, sizeof address, "127.0.0.1:%s", port);
    memset(&cfg, 0, sizeof cfg);
    cfg.enabled = true;
    cfg.address.text = address;
    cfg.address.host = "127.0.0.1";
    cfg.address.port = (uint16_t)atoi(port);
    cfg.password_env = "TANDEM_TEST_REDIS_PASSWORD";
    /* Generous: a loaded test machine must not turn an answer into a
     * timeout (the cases that want failures make them). */
    cfg.timeout_ms = 1000;
    cfg.connect_timeout_ms = 1000;
    atomic_store(&failed, 0);
    gw_metrics_init();
    /* A server stopped by an earlier case comes back. */
    ctl_run("start");
}

static bool wait_up(bool up, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += 10) {
        struct gw_metrics_redis m;
        gw_metrics_redis_read(&m);
        if (m.up == up)
            return true;
        rt_sleep(10);
    }
    return false;
}

static void run_live(void (*body)(void *))
{
    struct rt_config rc;
    rt_config_default(&rc);
    rc.schedulers = 2;
    ck_assert_int_eq(rt_start(&rc), 0);
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(body, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 60000, NULL), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
}

/* Starts the client under its supervisor, linked to the caller (which
 * traps exits, so that stopping it is not the caller's end). */
static rt_pid start_client(void)
{
    rt_trap_exit(true);
    rt_pid sup = 0;
    rt_atom reason;
    int rc = gw_redis_sup_start(&cfg, NULL, 0, &sup, &reason);
    T_ASSERT(rc == 0);
    return sup;
}

static void stop_client(rt_pid sup)
{
    T_ASSERT(rt_proc_stop(sup, RT_SHUTDOWN, 10000, NULL) == 0);
}

static char key[64];

static void unique_key(const char *what)
{
    snprintf(key, sizeof key, "%s-%llu", what, (unsigned long long)rt_now_ns());
}

static void counts_body(void *arg)
{
    (void)arg;
    rt_pid sup = start_client();
    T_ASSERT(wait_up(true, 5000));
    unique_key("counts");
    uint32_t count = 0, reset = 0;
    for (uint32_t i = 1; i <= 50; i++) {
        int rc = gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset);
        T_ASSERT_MSG(rc == 0 && count == i, "rc %d count %u i %u", rc, count, i);
        T_ASSERT(reset > 59000 && reset <= 60000);
    }
    /* Another key has its own window. */
    char other[80];
    snprintf(other, sizeof other, "%s-other", key);
    T_ASSERT(gw_redis_ratelimit(other, strlen(other), 10, 60000, &count, &reset) == 0);
    T_ASSERT(count == 1);
    /* A short window ends on time and starts again from 1. */
    unique_key("short");
    uint64_t t0 = rt_now_ms();
    T_ASSERT(gw_redis_ratelimit(key, strlen(key), 10, 1000, &count, &reset) == 0 && count == 1);
    T_ASSERT(reset <= 1000 && reset > 1000 - (rt_now_ms() - t0) - 5);
    uint32_t first_reset = reset;
    T_ASSERT(gw_redis_ratelimit(key, strlen(key), 10, 1000, &count, &reset) == 0 && count == 2);
    T_ASSERT(reset <= first_reset); /* the same window, ending no later */
    rt_sleep(1100);
    T_ASSERT(gw_redis_ratelimit(key, strlen(key), 10, 1000, &count, &reset) == 0 && count == 1);
    /* A key found without an expiry (written by something else) gets the
     * window's: no window lasts for ever (Redis then shows a time to live,
     * -1 without one; the check runs a process or two later, hence only
     * its bounds). */
    unique_key("noexpiry");
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cli SET %s%s 5", GW_REDIS_KEY_PREFIX, key);
    T_ASSERT(ctl_run(cmd) == 0);
    T_ASSERT(gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset) == 0 && count == 6);
    T_ASSERT(reset > 59000 && reset <= 60000);
    snprintf(cmd, sizeof cmd, "cli PTTL %s%s | awk '$1 > 0 && $1 <= 60000 {ok=1} END {exit !ok}'",
             GW_REDIS_KEY_PREFIX, key);
    T_ASSERT(ctl_run(cmd) == 0);
    /* Bad arguments are refused before anything is sent. */
    T_ASSERT(gw_redis_ratelimit(key, 0, 10, 300, &count, &reset) == -EINVAL);
    T_ASSERT(gw_redis_ratelimit(key, strlen(key), 10, 0, &count, &reset) == -EINVAL);
    /* Keys longer than GW_REDIS_KEY_MAX are counted under their hash: each
     * its own window, stored under the hash prefix. */
    static char longer[2][GW_REDIS_KEY_MAX + 100];
    for (int i = 0; i < 2; i++) {
        memset(longer[i], 'x', sizeof longer[i]);
        memcpy(longer[i], key, strlen(key));
        longer[i][sizeof longer[i] - 1] = (char)('a' + i);
    }
    for (uint32_t n = 1; n <= 3; n++)
        for (int i = 0; i < 2; i++) {
            int rc = gw_redis_ratelimit(longer[i], sizeof longer[i], 10, 60000, &count, &reset);
            T_ASSERT_MSG(rc == 0 && count == n, "rc %d count %u n %u", rc, count, n);
        }
    T_ASSERT(ctl_run("cli --scan --pattern 'tandem:rl#*' | grep -c . | grep -qx 2") == 0);
    struct gw_metrics_redis m;
    gw_metrics_redis_read(&m);
    T_ASSERT(m.configured && m.up && m.round_trips == 61 && m.connects == 1);
    stop_client(sup);
}

START_TEST(live_windows_count_exactly_and_end_on_time)
{
    run_live(counts_body);
}
END_TEST

/* Many processes at once on one key: every hit counted once, the answers
 * a permutation of 1..N (pipelined on the one connection). */
#define CONC_PROCS 64
#define CONC_EACH 40
static _Atomic uint32_t seen[CONC_PROCS * CONC_EACH + 1];
static _Atomic int conc_left;

static void conc_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < CONC_EACH; i++) {
        uint32_t count = 0, reset = 0;
        int rc = gw_redis_ratelimit(key, strlen(key), 100, 60000, &count, &reset);
        T_ASSERT_MSG(rc == 0, "rc %d", rc);
        if (rc == 0 && count >= 1 && count <= CONC_PROCS * CONC_EACH)
            atomic_fetch_add(&seen[count], 1);
    }
    atomic_fetch_sub(&conc_left, 1);
}

static void concurrent_body(void *arg)
{
    (void)arg;
    rt_pid sup = start_client();
    T_ASSERT(wait_up(true, 5000));
    unique_key("concurrent");
    for (size_t i = 0; i <= CONC_PROCS * CONC_EACH; i++)
        atomic_store(&seen[i], 0);
    atomic_store(&conc_left, CONC_PROCS);
    rt_ref refs[CONC_PROCS];
    for (int i = 0; i < CONC_PROCS; i++) {
        struct rt_spawn_opts o = {.monitor = true, .monitor_ref = &refs[i]};
        T_ASSERT(rt_spawn(conc_worker, NULL, &o, NULL) == 0);
    }
    /* Each worker's DOWN: none is left when the runtime stops. */
    for (int i = 0; i < CONC_PROCS; i++) {
        struct rt_msg *down = rt_receive_ref(refs[i], 30000);
        T_ASSERT(down && down->type == RT_MSG_DOWN && down->u64 == RT_NORMAL);
        rt_msg_free(down);
    }
    T_ASSERT(atomic_load(&conc_left) == 0);
    for (size_t i = 1; i <= CONC_PROCS * CONC_EACH; i++)
        T_ASSERT_MSG(atomic_load(&seen[i]) == 1, "count %zu seen %u times", i,
                     (unsigned)atomic_load(&seen[i]));
    stop_client(sup);
}

START_TEST(live_concurrent_callers_each_hit_counted_once)
{
    run_live(concurrent_body);
}
END_TEST

static void noscript_body(void *arg)
{
    (void)arg;
    rt_pid sup = start_client();
    T_ASSERT(wait_up(true, 5000));
    unique_key("noscript");
    uint32_t count = 0, reset = 0;
    T_ASSERT(gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset) == 0 && count == 1);
    /* The server forgets every script (as after a restart that kept the
     * connection's address, or SCRIPT FLUSH): the call still counts. */
    T_ASSERT(ctl_run("cli SCRIPT FLUSH") == 0);
    int rc = gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset);
    T_ASSERT_MSG(rc == 0 && count == 2, "rc %d count %u", rc, count);
    rc = gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset);
    T_ASSERT_MSG(rc == 0 && count == 3, "rc %d count %u", rc, count);
    stop_client(sup);
}

START_TEST(live_flushed_script_is_sent_whole)
{
    run_live(noscript_body);
}
END_TEST

static void restart_body(void *arg)
{
    (void)arg;
    rt_pid sup = start_client();
    T_ASSERT(wait_up(true, 5000));
    unique_key("restart");
    uint32_t count = 0, reset = 0;
    T_ASSERT(gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset) == 0);
    T_ASSERT(ctl_run("stop") == 0);
    T_ASSERT(wait_up(false, 3000));
    /* Down: refused at once, not after the timeout. */
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = rt_now_ms();
        int rc = gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset);
        T_ASSERT_MSG(rc == -ENOTCONN, "rc %d", rc);
        T_ASSERT(rt_now_ms() - t0 < 50);
    }
    struct gw_metrics_redis m;
    gw_metrics_redis_read(&m);
    T_ASSERT(!m.up && m.errors[GW_METRICS_REDIS_UNAVAILABLE] >= 20);
    T_ASSERT(m.errors[GW_METRICS_REDIS_CONNECTION] >= 1 && m.last_error[0]);
    /* Let a few reconnection attempts fail, then bring the server back on
     * the same port: the client finds it within the backoff's cap. */
    rt_sleep(700);
    T_ASSERT(ctl_run("start") == 0);
    uint64_t t0 = rt_now_ms();
    T_ASSERT(wait_up(true, GW_REDIS_BACKOFF_MAX_MS + 2000));
    T_ASSERT(rt_now_ms() - t0 <= GW_REDIS_BACKOFF_MAX_MS + 1000);
    int rc = gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset);
    T_ASSERT_MSG(rc == 0 && count == 1, "rc %d count %u", rc, count); /* a new server: empty */
    gw_metrics_redis_read(&m);
    T_ASSERT(m.connects == 2);
    stop_client(sup);
}

START_TEST(live_stopped_server_refused_at_once_and_found_again)
{
    run_live(restart_body);
}
END_TEST

static void database_body(void *arg)
{
    (void)arg;
    cfg.database = 3;
    rt_pid sup = start_client();
    T_ASSERT(wait_up(true, 5000));
    unique_key("db");
    uint32_t count = 0, reset = 0;
    T_ASSERT(gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset) == 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cli -n 3 EXISTS %s%s | grep -qx 1", GW_REDIS_KEY_PREFIX, key);
    T_ASSERT(ctl_run(cmd) == 0);
    snprintf(cmd, sizeof cmd, "cli -n 0 EXISTS %s%s | grep -qx 0", GW_REDIS_KEY_PREFIX, key);
    T_ASSERT(ctl_run(cmd) == 0);
    stop_client(sup);
}

START_TEST(live_database_is_selected)
{
    run_live(database_body);
}
END_TEST

static void wrong_password_body(void *arg)
{
    (void)arg;
    setenv("TANDEM_TEST_REDIS_WRONG", "not-the-password", 1);
    cfg.password_env = "TANDEM_TEST_REDIS_WRONG";
    rt_pid sup = start_client();
    rt_sleep(600);
    struct gw_metrics_redis m;
    gw_metrics_redis_read(&m);
    T_ASSERT(m.configured && !m.up);
    T_ASSERT_MSG(strstr(m.last_error, "WRONGPASS") || strstr(m.last_error, "invalid"), "%s",
                 m.last_error);
    T_ASSERT(!strstr(m.last_error, "not-the-password"));
    uint32_t count = 0, reset = 0;
    T_ASSERT(gw_redis_ratelimit("k", 1, 10, 60000, &count, &reset) == -ENOTCONN);
    stop_client(sup);
}

START_TEST(live_wrong_password_is_reported_never_ready)
{
    run_live(wrong_password_body);
}
END_TEST

static void no_password_body(void *arg)
{
    (void)arg;
    cfg.password_env = NULL;
    rt_pid sup = start_client();
    rt_sleep(600);
    struct gw_metrics_redis m;
    gw_metrics_redis_read(&m);
    T_ASSERT(!m.up);
    T_ASSERT_MSG(strstr(m.last_error, "NOAUTH"), "%s", m.last_error);
    stop_client(sup);
}

START_TEST(live_missing_password_is_reported_never_ready)
{
    run_live(no_password_body);
}
END_TEST

/* getaddrinfo, held on request: the blocking-pool thread resolving the
 * server's name waits in it until the test lets it go. */
static pthread_mutex_t gai_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gai_cv = PTHREAD_COND_INITIALIZER;
static bool gai_hold, gai_held;

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))dlsym(
            RTLD_NEXT, "getaddrinfo");
    pthread_mutex_lock(&gai_mu);
    if (gai_hold) {
        gai_held = true;
        pthread_cond_broadcast(&gai_cv);
        while (gai_hold)
            pthread_cond_wait(&gai_cv, &gai_mu);
    }
    pthread_mutex_unlock(&gai_mu);
    return real(node, service, hints, res);
}

static void resolve_killed_body(void *arg)
{
    (void)arg;
    cfg.address.host = "localhost";
    pthread_mutex_lock(&gai_mu);
    gai_hold = true;
    gai_held = false;
    pthread_mutex_unlock(&gai_mu);
    rt_pid sup = start_client();
    bool held = false;
    for (int i = 0; i < 500 && !held; i++) {
        pthread_mutex_lock(&gai_mu);
        held = gai_held;
        pthread_mutex_unlock(&gai_mu);
        if (!held)
            rt_sleep(10);
    }
    T_ASSERT(held);
    /* The client goes while its resolution runs; the resolution then
     * ends and must write nothing of the client's (its memory is gone). */
    stop_client(sup);
    pthread_mutex_lock(&gai_mu);
    gai_hold = false;
    pthread_cond_broadcast(&gai_cv);
    pthread_mutex_unlock(&gai_mu);
    rt_sleep(300);
    /* A client started again resolves the name and connects. */
    sup = start_client();
    T_ASSERT(wait_up(true, 5000));
    uint32_t count = 0, reset = 0;
    unique_key("resolved");
    T_ASSERT(gw_redis_ratelimit(key, strlen(key), 10, 60000, &count, &reset) == 0 && count == 1);
    stop_client(sup);
}

START_TEST(live_client_stopped_while_resolving_leaves_the_resolution_nothing_to_write)
{
    run_live(resolve_killed_body);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("redis");
    TCase *p = tcase_create("pure");
    tcase_add_test(p, script_answer_gives_count_and_reset);
    tcase_add_test(p, script_answer_saturates_and_clamps);
    tcase_add_test(p, script_answer_noscript_asks_for_the_whole_script);
    tcase_add_test(p, script_answer_refuses_errors_and_odd_shapes);
    tcase_add_test(p, backoff_doubles_within_jitter_up_to_the_cap);
    suite_add_tcase(s, p);
    TCase *l = tcase_create("live");
    tcase_add_checked_fixture(l, live_setup, NULL);
    tcase_set_timeout(l, 90);
    tcase_add_test(l, live_windows_count_exactly_and_end_on_time);
    tcase_add_test(l, live_concurrent_callers_each_hit_counted_once);
    tcase_add_test(l, live_flushed_script_is_sent_whole);
    tcase_add_test(l, live_stopped_server_refused_at_once_and_found_again);
    tcase_add_test(l, live_database_is_selected);
    tcase_add_test(l, live_wrong_password_is_reported_never_ready);
    tcase_add_test(l, live_missing_password_is_reported_never_ready);
    tcase_add_test(l, live_client_stopped_while_resolving_leaves_the_resolution_nothing_to_write);
    suite_add_tcase(s, l);
    return s;
}

int main(void)
{
    /* As the gateway does (gateway.c): a write to a connection Redis has
     * closed must fail with EPIPE, not kill the program. */
    signal(SIGPIPE, SIG_IGN);
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed_n = srunner_ntests_failed(r);
    srunner_free(r);
    return failed_n ? EXIT_FAILURE : EXIT_SUCCESS;
}
