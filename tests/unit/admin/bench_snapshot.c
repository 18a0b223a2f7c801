/*
 * bench_snapshot.c: cost of GET /admin/processes with N live processes
 * (default 100,000), all hibernated (no stack held, as idle keep-alive
 * connections are). Times gw_admin_handle end to end (snapshot, sort,
 * JSON) from inside a process, several rounds, and prints one line per
 * query: min / median / max wall milliseconds, the body size and the
 * median CPU time of the whole program during the call.
 *
 *   admin_snapshot_bench [N] [ROUNDS]
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw/admin.h"
#include "gw/gateway.h"
#include "gw/http1.h"
#include "rt/rt.h"

struct gw_gateway gw;

static long nprocs = 100000;
static int rounds = 7;
static atomic_int result;

static void wake(void *arg)
{
    struct rt_msg *m = rt_receive(0);
    rt_msg_free(m);
}

static rt_kind connection_kind;

static void idle(void *arg)
{
    rt_set_kind(connection_kind);
    rt_hibernate(wake, NULL);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void run_query(const char *target)
{
    char text[512];
    snprintf(text, sizeof text, "GET %s HTTP/1.1\r\nHost: admin\r\n\r\n", target);
    struct gw_http_parser *p = NULL;
    gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL);
    struct gw_http_event ev;
    size_t used = 0;
    if (gw_http_parser_feed(p, text, strlen(text), &used, &ev) < 0 || ev.type != GW_HTTP_EV_HEAD) {
        fprintf(stderr, "bad request text\n");
        atomic_store(&result, 1);
        gw_http_parser_free(p);
        return;
    }
    gw_http_parser_free(p);
    char path[256];
    snprintf(path, sizeof path, "%s", target);
    char *q = strchr(path, '?');
    if (q)
        *q++ = 0;
    struct gw_admin_request req = {.head = ev.head, .path = path, .query = q, .body = ""};
    double ms[64], cpu[64];
    size_t bytes = 0;
    int n = rounds < 64 ? rounds : 64;
    for (int i = 0; i < n; i++) {
        struct gw_admin_response resp;
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        uint64_t t0 = rt_now_ns();
        gw_admin_handle(&req, &resp);
        ms[i] = (double)(rt_now_ns() - t0) / 1e6;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        cpu[i] = (double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
        if (resp.status != 200) {
            fprintf(stderr, "%s: status %d: %s\n", target, resp.status, resp.body);
            atomic_store(&result, 1);
        }
        bytes = resp.body_len;
        free(resp.body);
    }
    gw_http_head_free(ev.head);
    qsort(ms, (size_t)n, sizeof ms[0], cmp_d);
    qsort(cpu, (size_t)n, sizeof cpu[0], cmp_d);
    /* cpu: the whole program's CPU time during the call (idle schedulers
     * sleep), a figure that depends less on other load than wall time. */
    printf("%-48s min %8.1f ms  median %8.1f ms  max %8.1f ms  body %zu bytes  cpu %.1f ms\n",
           target, ms[0], ms[n / 2], ms[n - 1], bytes, cpu[n / 2]);
}

static void bench(void *arg)
{
    struct rt_spawn_opts so = {.initial_call = "bench:idle"};
    rt_pid *pids = malloc((size_t)nprocs * sizeof *pids);
    uint64_t t0 = rt_now_ms();
    for (long i = 0; i < nprocs; i++) {
        if (rt_spawn(idle, NULL, &so, &pids[i]) < 0) {
            fprintf(stderr, "spawn %ld failed\n", i);
            atomic_store(&result, 1);
            nprocs = i;
            break;
        }
        if ((i & 1023) == 0)
            rt_yield();
    }
    rt_sleep(200);
    struct rt_system_info si;
    rt_system_info(&si);
    printf("%ld idle processes spawned in %llu ms; %zu live, %zu stacks in use, rss %zu MiB\n",
           nprocs, (unsigned long long)(rt_now_ms() - t0), si.process_count, si.stacks_in_use,
           si.memory_rss >> 20);
    run_query("/admin/processes");
    run_query("/admin/processes?sort=memory");
    run_query("/admin/processes?sort=mailbox&limit=20");
    run_query("/admin/processes?kind=request");
    for (long i = 0; i < nprocs; i++)
        rt_send(pids[i], rt_msg_new(1, 0));
    free(pids);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nprocs = atol(argv[1]);
    if (argc > 2)
        rounds = atoi(argv[2]);
    /* The requests say "Host: admin": the admin listener's name here. */
    gw.admin_site = (struct gw_admin_site){.host = "admin", .port = 80, .loopback = true};
    struct rt_config cfg;
    rt_config_default(&cfg);
    if (rt_start(&cfg) < 0 || rt_kind_register("connection", &connection_kind) < 0)
        return 1;
    rt_pid pid = 0;
    struct rt_spawn_opts so = {.initial_call = "bench:main"};
    rt_spawn(bench, NULL, &so, &pid);
    rt_join(pid, 600000, NULL);
    rt_wait_idle(60000);
    rt_stop();
    return atomic_load(&result);
}
