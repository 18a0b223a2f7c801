/*
 * test_pool.c: a target's keep-alive connection pool (gateway/src/pool.c)
 * against a loopback listener: the busy cap, idle reuse and its cap, and a
 * process that ends with a connection checked out giving its slot back.
 * Each body runs in a runtime process; the runtime ends with no process
 * left.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_int.h"
#include "tls/tls.h"
#include "upstream_int.h"

static struct gw_target target;
static struct gw_upstream upstream; /* plaintext: no tls */
static int listener = -1;
static char failure[256];
static atomic_int failed;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c) && atomic_exchange(&failed, 1) == 0)                                              \
            snprintf(failure, sizeof failure, "%s:%d: %s", __FILE__, __LINE__, #c);                \
    } while (0)

static void setup(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    listener = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(listener, 0);
    ck_assert_int_eq(bind(listener, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(listener, 16), 0);
    ck_assert_int_eq(getsockname(listener, (struct sockaddr *)&a, &alen), 0);
    memset(&target, 0, sizeof target);
    target.up = &upstream;
    memcpy(&target.sa, &a, sizeof a);
    target.salen = sizeof a;
    pthread_mutex_init(&target.lock, NULL);
    /* At most 2 busy, 1 idle. */
    ck_assert_int_eq(gw__pool_init(&target.pool, 1, 2), 0);
    /* Room in the descriptor budget for the idle one (fdlimit.c). */
    gw__fds.budget = 16;
    atomic_store(&failed, 0);
}

static void teardown(void)
{
    gw__pool_done(&target.pool);
    pthread_mutex_destroy(&target.lock);
    close(listener);
}

static void run_on(void (*body)(void *), unsigned schedulers)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = schedulers;
    ck_assert_int_eq(rt_start(&cfg), 0);
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(body, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 10000, NULL), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
}

static void run(void (*body)(void *))
{
    run_on(body, 1);
}

static void counts(uint32_t *active, size_t *idle)
{
    gw__pool_counts(&target.pool, active, idle);
}

static void caps_body(void *arg)
{
    (void)arg;
    struct gw__upconn c1 = {0}, c2 = {0}, c3 = {0};
    T_ASSERT(gw__conn_checkout(&target, 1000, false, &c1, NULL, 0) == 0 && c1.tp && !c1.reused);
    T_ASSERT(gw__conn_checkout(&target, 1000, false, &c2, NULL, 0) == 0 && c2.tp && !c2.reused);
    /* max_connections: a third is refused before any connect. */
    T_ASSERT(gw__conn_checkout(&target, 1000, false, &c3, NULL, 0) == -EBUSY);
    T_ASSERT(!c3.tp);
    uint32_t active;
    size_t idle;
    counts(&active, &idle);
    T_ASSERT(active == 2 && idle == 0);
    struct gw__transport *first = c1.tp;
    gw__conn_checkin(&target, &c1, true);
    T_ASSERT(!c1.tp);
    gw__conn_checkin(&target, &c2, true); /* max_idle is 1: closed */
    counts(&active, &idle);
    T_ASSERT(active == 0 && idle == 1);
    /* The idle one comes back, checked for being open when asked to. */
    T_ASSERT(gw__conn_checkout(&target, 1000, true, &c1, NULL, 0) == 0);
    T_ASSERT(c1.tp == first && c1.reused);
    gw__conn_checkin(&target, &c1, false); /* not reusable: closed */
    counts(&active, &idle);
    T_ASSERT(active == 0 && idle == 0);
    T_ASSERT(atomic_load(&target.requests) == 4); /* every checkout counts, refused too */
}

START_TEST(pool_caps_busy_and_idle_connections_and_reuses_idle_ones)
{
    run(caps_body);
}
END_TEST

static void leaver(void *arg)
{
    struct gw__upconn c = {0};
    *(int *)arg = gw__conn_checkout(&target, 1000, false, &c, NULL, 0) == 0 ? c.tp->fd : -1;
    rt_exit(rt_atom_intern("crashed")); /* never checked in */
}

static void abandon_body(void *arg)
{
    (void)arg;
    int fd = -1;
    rt_pid pid = 0;
    T_ASSERT(rt_spawn(leaver, &fd, NULL, &pid) == 0);
    rt_ref ref = rt_monitor(pid);
    struct rt_msg *down = rt_receive_ref(ref, 5000);
    T_ASSERT(down != NULL);
    rt_msg_free(down);
    T_ASSERT(fd >= 0);
    uint32_t active;
    size_t idle;
    counts(&active, &idle);
    /* The process's cleanup gave the slot back and closed the connection. */
    T_ASSERT(active == 0 && idle == 0);
    T_ASSERT(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
}

START_TEST(a_process_ending_with_a_connection_out_gives_its_slot_back)
{
    run(abandon_body);
}
END_TEST

/* Descriptors the test process has open now. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static atomic_int handshaker_rc = 1;

/* Checks out a new connection to a TLS upstream whose target accepts TCP
 * (the listener's backlog) but never answers the ClientHello. */
static void handshaker(void *arg)
{
    (void)arg;
    struct gw__upconn c = {0};
    char why[96];
    atomic_store(&handshaker_rc, gw__conn_checkout(&target, 10000, false, &c, why, sizeof why));
    gw__conn_checkin(&target, &c, false);
}

static void killed_handshake_body(void *arg)
{
    (void)arg;
    int fds0 = open_fds();
    rt_pid pid = 0;
    T_ASSERT(rt_spawn(handshaker, NULL, NULL, &pid) == 0);
    rt_ref ref = rt_monitor(pid);
    rt_sleep(200); /* connected, the ClientHello sent: waiting for the answer */
    uint32_t active;
    size_t idle;
    counts(&active, &idle);
    T_ASSERT(active == 1);
    T_ASSERT(open_fds() == fds0 + 1);
    T_ASSERT(rt_exit_signal(pid, RT_KILL) == 0);
    struct rt_msg *down = rt_receive_ref(ref, 5000);
    T_ASSERT(down != NULL);
    rt_msg_free(down);
    T_ASSERT(atomic_load(&handshaker_rc) == 1); /* killed before the checkout returned */
    /* The slot is given back and the socket (and its session) closed. */
    counts(&active, &idle);
    T_ASSERT(active == 0 && idle == 0);
    T_ASSERT(open_fds() == fds0);
}

START_TEST(a_process_killed_mid_handshake_gives_its_slot_and_socket_back)
{
    struct gw_tls_upstream_config tc = {.enabled = true, .verify = false};
    char err[256] = "";
    ck_assert_msg(gw_tls_client_new(&tc, &upstream.tls, err, sizeof err) == 0, "%s", err);
    target.host = "127.0.0.1";
    run(killed_handshake_body);
    gw_tls_client_free(upstream.tls);
    upstream.tls = NULL;
    target.host = NULL;
}
END_TEST

/* Many processes on two schedulers check connections out and back in at
 * once: no slot or idle connection is lost or counted twice, and the
 * descriptor budget counts exactly the idle ones (a workload for TSan). */
enum { CHURNERS = 8, ROUNDS = 200 };
static atomic_int churn_left;

static void churner(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        struct gw__upconn c = {0};
        int rc = gw__conn_checkout(&target, 5000, i % 3 == 0, &c, NULL, 0);
        if (rc == -EBUSY) {
            rt_yield();
            continue;
        }
        T_ASSERT(rc == 0);
        if (rc < 0)
            break;
        uint32_t active;
        size_t idle;
        gw__pool_counts(&target.pool, &active, &idle);
        T_ASSERT(active >= 1 && active <= 2 && idle <= 1);
        gw__conn_checkin(&target, &c, i % 5 != 0);
    }
    atomic_fetch_sub(&churn_left, 1);
}

/* Accepts and closes, so that connects never wait on a full backlog. */
static void *drain_listener(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0 && errno != EINTR && errno != ECONNABORTED)
            return NULL;
        if (fd >= 0)
            close(fd);
    }
}

static void churn_body(void *arg)
{
    (void)arg;
    uint64_t counted0 = gw__fds_counted();
    atomic_store(&churn_left, CHURNERS);
    for (int i = 0; i < CHURNERS; i++)
        T_ASSERT(rt_spawn(churner, NULL, NULL, NULL) == 0);
    uint64_t t0 = rt_now_ms();
    while (atomic_load(&churn_left) > 0 && rt_now_ms() - t0 < 20000)
        rt_sleep(5);
    T_ASSERT(atomic_load(&churn_left) == 0);
    uint32_t active;
    size_t idle;
    counts(&active, &idle);
    T_ASSERT(active == 0 && idle <= 1);
    T_ASSERT(gw__fds_counted() == counted0 + idle);
}

START_TEST(concurrent_checkouts_lose_no_slot_and_count_each_idle_connection_once)
{
    pthread_t drainer;
    ck_assert_int_eq(listen(listener, 512), 0); /* a longer backlog: bursts of connects */
    ck_assert_int_eq(pthread_create(&drainer, NULL, drain_listener, NULL), 0);
    run_on(churn_body, 2);
    shutdown(listener, SHUT_RDWR); /* wakes accept */
    pthread_join(drainer, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, pool_caps_busy_and_idle_connections_and_reuses_idle_ones);
    tcase_add_test(tc, a_process_ending_with_a_connection_out_gives_its_slot_back);
    tcase_add_test(tc, a_process_killed_mid_handshake_gives_its_slot_and_socket_back);
    tcase_add_test(tc, concurrent_checkouts_lose_no_slot_and_count_each_idle_connection_once);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed_n = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed_n ? 1 : 0;
}
