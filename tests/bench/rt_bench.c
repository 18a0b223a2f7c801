/*
 * rt_bench: the Tandem side of tests/bench/runtime-vs-beam.
 *
 *   rt_bench WORKLOAD COUNT SCHEDULERS
 *
 * runs one workload once on a fresh runtime with SCHEDULERS scheduler
 * threads and prints `RESULT <value>`, or `ERROR <what>` (exit status 1).
 * Each workload mirrors the one of the same name in beam/rt_bench.erl,
 * process for process and message for message; the units are those of the
 * comparison script (µs per spawn, bytes per idle process, ns per hop, ns
 * per call, messages or events per second). Built with RT_BENCH_OTP (the rt_bench_otp
 * target) it also runs the workloads that need the OTP behaviours; without,
 * they print `ERROR n/a`.
 *
 * Not a test: nothing here asserts; a failure is reported, not fatal to a
 * build.
 */
#include "rt/rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(RT_BENCH_OTP) && defined(__has_include)
#if __has_include("rt/gen_server.h")
#include "rt/gen_server.h"
#define HAVE_GEN_SERVER 1
#endif
#if __has_include("rt/supervisor.h")
#include "rt/supervisor.h"
#define HAVE_SUPERVISOR 1
#endif
#if __has_include("rt/gen_event.h")
#include "rt/gen_event.h"
#include "rt/sys.h"
#define HAVE_GEN_EVENT 1
#endif
#endif

#define JOIN_TIMEOUT_MS (600 * 1000)

enum { MSG_TOKEN = 1, MSG_DONE, MSG_GO, MSG_CALL, MSG_DATA };

/* What a controller process hands back to the main thread. Written by the
 * controller before it exits; read by main after rt_join returns. */
struct bench {
    long count;
    double result;
    const char *error;
    void *scratch; /* freed by main after rt_stop */
};

static double now_ns(void)
{
    return (double)rt_now_ns();
}

static void fail(struct bench *b, const char *what)
{
    b->error = what;
    rt_exit(RT_ERROR);
}

/* Spawns with retries while the process limit is reached (-EAGAIN). */
static int spawn_retry(rt_entry fn, void *arg, rt_pid *out)
{
    struct rt_spawn_opts opts = {0};
    for (int tries = 0;; tries++) {
        int rc = rt_spawn(fn, arg, &opts, out);
        if (rc != -EAGAIN || tries > 100000)
            return rc;
        if (rt_self() != 0)
            rt_yield();
        else
            usleep(100);
    }
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void send_type(rt_pid to, uint32_t type, uint64_t u64)
{
    struct rt_msg *m = rt_msg_new(type, 0);
    if (m == NULL)
        return;
    m->u64 = u64;
    rt_send(to, m);
}

/* ---- spawn: µs per spawn + exit ------------------------------------------ */

static void empty_entry(void *arg)
{
    (void)arg;
}

static void spawner_entry(void *arg)
{
    struct bench *b = arg;
    for (long i = 0; i < b->count; i++)
        if (spawn_retry(empty_entry, NULL, NULL) != 0)
            fail(b, "spawn failed");
}

/* Timed from the main thread: from the spawner's start until no process is
 * left (the BEAM side waits for its process count to drop back). */
static int run_spawn(struct bench *b)
{
    double t0 = now_ns();
    struct rt_spawn_opts opts = {0};
    if (rt_spawn(spawner_entry, b, &opts, NULL) != 0)
        return b->error = "spawn of the spawner failed", -1;
    if (rt_wait_idle(JOIN_TIMEOUT_MS) != 0)
        return b->error = "processes still alive", -1;
    if (b->error != NULL)
        return -1;
    b->result = (now_ns() - t0) / 1000.0 / (double)b->count;
    return 0;
}

/* ---- idle_memory: RSS bytes per hibernated idle process -------------------- */

static void idle_wake(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(RT_INFINITY));
}

static void idle_entry(void *arg)
{
    rt_hibernate(idle_wake, arg);
}

static int run_idle_memory(struct bench *b)
{
    struct rt_system_info si;
    usleep(200 * 1000);
    size_t rss0 = rss_bytes();
    for (long i = 0; i < b->count; i++)
        if (spawn_retry(idle_entry, NULL, NULL) != 0)
            return b->error = "spawn failed", -1;
    /* Until every process is parked in hibernation (no stack in use), at
     * most 60 s. */
    for (int i = 0; i < 6000; i++) {
        if (rt_system_info(&si) != 0)
            return b->error = "rt_system_info failed", -1;
        if (si.process_count >= (size_t)b->count && si.stacks_in_use == 0)
            break;
        usleep(10 * 1000);
    }
    usleep(500 * 1000);
    size_t rss1 = rss_bytes();
    if (rt_system_info(&si) != 0 || si.process_count < (size_t)b->count)
        return b->error = "not all processes alive", -1;
    b->result = ((double)rss1 - (double)rss0) / (double)b->count;
    return 0;
}

/* ---- ring: ns per hop ------------------------------------------------------ */

struct ring_node {
    rt_pid next;
    rt_pid starter;
};

/* The token's u64 is the number of hops left; the process holding it when
 * it reaches 0 tells the starter. The token message is forwarded as is:
 * once received it belongs to the receiver. */
static void ring_node_entry(void *arg)
{
    const struct ring_node *node = arg;
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        if (m == NULL)
            continue;
        if (m->u64 == 0) {
            rt_msg_free(m);
            send_type(node->starter, MSG_DONE, 0);
            continue;
        }
        m->u64--;
        rt_send(node->next, m);
    }
}

static long ring_hops(void)
{
    const char *text = getenv("RT_BENCH_RING_HOPS");
    return text != NULL ? atol(text) : 10000000L;
}

static void ring_entry(void *arg)
{
    struct bench *b = arg;
    long n = b->count - 1, hops = ring_hops();
    struct ring_node *nodes = calloc((size_t)n, sizeof(*nodes));
    if (nodes == NULL)
        fail(b, "out of memory");
    b->scratch = nodes;
    rt_pid next = rt_self();
    for (long i = 0; i < n; i++) {
        nodes[i].next = next;
        nodes[i].starter = rt_self();
        if (spawn_retry(ring_node_entry, &nodes[i], &next) != 0)
            fail(b, "spawn failed");
    }
    rt_pid first = next;
    double t0 = now_ns();
    send_type(first, MSG_TOKEN, (uint64_t)hops - 1);
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        if (m == NULL)
            continue;
        if (m->type == MSG_DONE || m->u64 == 0) {
            rt_msg_free(m);
            break;
        }
        m->u64--;
        rt_send(first, m);
    }
    b->result = (now_ns() - t0) / (double)hops;
    /* The ring's nodes stay parked in receive; rt_stop kills them, then
     * main frees the array they point to. */
}

/* ---- call: ns per request/reply round trip, as gen:call does it ----------- */

/* Replies with the request message itself, which it now owns. */
static void server_entry(void *arg)
{
    (void)arg;
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        if (m == NULL)
            continue;
        rt_send(m->from, m);
    }
}

/* The steps of OTP's gen:do_call: monitor the server, send the request
 * tagged with the monitor's ref, receive on that ref (the reply or the
 * DOWN), demonitor with flush. */
static int do_call(rt_pid server, uint64_t value)
{
    rt_ref mref = rt_monitor(server);
    struct rt_msg *m = rt_msg_new(MSG_CALL, 0);
    if (m == NULL)
        return -ENOMEM;
    m->ref = mref;
    m->u64 = value;
    rt_send(server, m);
    struct rt_msg *r = rt_receive_ref(mref, RT_INFINITY);
    if (r == NULL || r->type == RT_MSG_DOWN) {
        rt_msg_free(r);
        return -ECONNRESET;
    }
    rt_demonitor(mref, true);
    int rc = r->u64 == value ? 0 : -EPROTO;
    rt_msg_free(r);
    return rc;
}

static void call_entry(void *arg)
{
    struct bench *b = arg;
    rt_pid server;
    if (spawn_retry(server_entry, NULL, &server) != 0)
        fail(b, "spawn failed");
    for (long i = 0; i < 1000; i++)
        if (do_call(server, (uint64_t)i) != 0)
            fail(b, "call failed");
    double t0 = now_ns();
    for (long i = 0; i < b->count; i++)
        if (do_call(server, (uint64_t)i) != 0)
            fail(b, "call failed");
    b->result = (now_ns() - t0) / (double)b->count;
    rt_exit_signal(server, RT_KILL);
}

/* ---- fan_in: messages per second into one receiver --------------------------- */

#define FAN_SENDERS 1000

struct fan {
    rt_pid receiver;
    rt_pid controller;
    long per_sender;
};

static void fan_receiver_entry(void *arg)
{
    const struct fan *f = arg;
    long total = f->per_sender * FAN_SENDERS;
    for (long i = 0; i < total; i++)
        rt_msg_free(rt_receive(RT_INFINITY));
    send_type(f->controller, MSG_DONE, 0);
}

static void fan_sender_entry(void *arg)
{
    const struct fan *f = arg;
    rt_msg_free(rt_receive(RT_INFINITY)); /* go */
    for (long i = 0; i < f->per_sender; i++)
        send_type(f->receiver, MSG_DATA, (uint64_t)i);
}

static void fan_in_entry(void *arg)
{
    struct bench *b = arg;
    struct fan f = {.controller = rt_self(), .per_sender = b->count / FAN_SENDERS};
    rt_pid senders[FAN_SENDERS];
    if (spawn_retry(fan_receiver_entry, &f, &f.receiver) != 0)
        fail(b, "spawn failed");
    for (int i = 0; i < FAN_SENDERS; i++)
        if (spawn_retry(fan_sender_entry, &f, &senders[i]) != 0)
            fail(b, "spawn failed");
    double t0 = now_ns();
    for (int i = 0; i < FAN_SENDERS; i++)
        send_type(senders[i], MSG_GO, 0);
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        bool done = m != NULL && m->type == MSG_DONE;
        rt_msg_free(m);
        if (done)
            break;
    }
    b->result = (double)(f.per_sender * FAN_SENDERS) / ((now_ns() - t0) / 1e9);
}

/* ---- gen_server_call and restart (OTP behaviours) ---------------------------- */

#ifdef HAVE_GEN_SERVER
static void echo_init(void *arg, struct rt_gs_result *r)
{
    (void)arg;
    rt_gs_ok(r);
}

/* Replies with the request itself, as the BEAM's bench_server returns X. */
static void echo_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                      struct rt_gs_result *r)
{
    (void)req;
    (void)from;
    (void)state;
    rt_gs_reply(r, rt_gs_take(r));
}

static void echo_cast(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    (void)msg;
    (void)state;
    rt_gs_stop(r, rt_atom_intern("crash"));
}

static const struct rt_gen_server_ops echo_ops = {
    .name = "bench_server",
    .init = echo_init,
    .handle_call = echo_call,
    .handle_cast = echo_cast,
};

static int gs_call(rt_pid server, uint64_t value)
{
    struct rt_msg *req = rt_msg_new(MSG_CALL, 0), *reply = NULL;
    if (req == NULL)
        return -ENOMEM;
    req->u64 = value;
    int rc = rt_gen_server_call(server, req, RT_INFINITY, &reply, NULL);
    if (rc == 0 && (reply == NULL || reply->u64 != value))
        rc = -EPROTO;
    rt_msg_free(reply);
    return rc;
}

static void gen_server_call_entry(void *arg)
{
    struct bench *b = arg;
    rt_pid server;
    if (rt_gen_server_start_link(&echo_ops, NULL, NULL, &server, NULL) != 0)
        fail(b, "gen_server start failed");
    for (long i = 0; i < 1000; i++)
        if (gs_call(server, (uint64_t)i) != 0)
            fail(b, "gen_server call failed");
    double t0 = now_ns();
    for (long i = 0; i < b->count; i++)
        if (gs_call(server, (uint64_t)i) != 0)
            fail(b, "gen_server call failed");
    b->result = (now_ns() - t0) / (double)b->count;
    rt_trap_exit(true);
    rt_gen_server_stop(server, RT_NORMAL, RT_INFINITY, NULL);
}

/* gen_server_call with DEEP_QUEUE unrelated messages waiting in the
 * caller's mailbox the whole time (OTP's gen_server_SUITE checks that a
 * call then costs what it costs with none). */
#define DEEP_QUEUE 100000

static void call_deep_mailbox_entry(void *arg)
{
    struct bench *b = arg;
    rt_pid server;
    if (rt_gen_server_start_link(&echo_ops, NULL, NULL, &server, NULL) != 0)
        fail(b, "gen_server start failed");
    for (long i = 0; i < DEEP_QUEUE; i++)
        send_type(rt_self(), MSG_DATA, (uint64_t)i);
    for (long i = 0; i < 1000; i++)
        if (gs_call(server, (uint64_t)i) != 0)
            fail(b, "gen_server call failed");
    double t0 = now_ns();
    for (long i = 0; i < b->count; i++)
        if (gs_call(server, (uint64_t)i) != 0)
            fail(b, "gen_server call failed");
    b->result = (now_ns() - t0) / (double)b->count;
    if (rt_mailbox_len() != DEEP_QUEUE)
        fail(b, "the queued messages were touched");
    rt_trap_exit(true);
    rt_gen_server_stop(server, RT_NORMAL, RT_INFINITY, NULL);
    for (struct rt_msg *m; (m = rt_receive(0));)
        rt_msg_free(m);
}
#endif

/* ---- gen_event_notify: events per second through 100 handlers ------------- */

#ifdef HAVE_GEN_EVENT
#define NOTIFY_HANDLERS 100

/* Counts the events it sees, as beam/bench_handler.erl. */
static void counter_init(const void *arg, size_t size, const struct rt_ge_swap *swap,
                         struct rt_ge_result *r)
{
    (void)arg;
    (void)size;
    (void)swap;
    r->state = rt_calloc(1, sizeof(uint64_t));
    if (r->state == NULL)
        rt_ge_error(r, RT_SYSTEM_LIMIT);
}

static void counter_event(const struct rt_msg *ev, void *state, struct rt_ge_result *r)
{
    (void)ev;
    (void)r;
    (*(uint64_t *)state)++;
}

static const struct rt_ge_handler_ops counter_ops = {
    .name = "bench_handler",
    .init = counter_init,
    .handle_event = counter_event,
};

/* One manager, NOTIFY_HANDLERS handlers; the clock runs from the first
 * notify until a sync_notify sent after the last has come back. */
static void gen_event_notify_entry(void *arg)
{
    struct bench *b = arg;
    rt_pid mgr;
    if (rt_gen_event_start_link(NULL, &mgr, NULL) != 0)
        fail(b, "gen_event start failed");
    for (uint64_t i = 0; i < NOTIFY_HANDLERS; i++)
        if (rt_gen_event_add_handler(mgr, (struct rt_ge_handler){&counter_ops, i + 1}, NULL, 0,
                                     NULL) != 0)
            fail(b, "add_handler failed");
    double t0 = now_ns();
    for (long i = 0; i < b->count; i++) {
        struct rt_msg *ev = rt_msg_new(MSG_DATA, 0);
        if (ev == NULL)
            fail(b, "out of memory");
        ev->u64 = (uint64_t)i;
        rt_gen_event_notify(mgr, ev);
    }
    if (rt_gen_event_sync_notify(mgr, rt_msg_new(MSG_DONE, 0)) != 0)
        fail(b, "sync_notify failed");
    b->result = (double)b->count / ((now_ns() - t0) / 1e9);
    /* Every handler saw every event (the state is immutable now). */
    struct rt_sys_state st;
    if (rt_sys_get_state(mgr, RT_INFINITY, &st) != 0 || st.count != NOTIFY_HANDLERS)
        fail(b, "sys get_state failed");
    const struct rt_ge_handler_state *hs = st.state;
    for (size_t i = 0; i < st.count; i++)
        if (*(const uint64_t *)hs[i].state != (uint64_t)b->count + 1)
            fail(b, "a handler missed events");
    rt_trap_exit(true);
    rt_gen_event_stop(mgr, RT_NORMAL, RT_INFINITY, NULL);
}
#endif

#if defined(HAVE_GEN_SERVER) && defined(HAVE_SUPERVISOR)
static int child_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                       rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_start_opts opts = {.name = "bench_child"};
    return rt_gen_server_start_link(&echo_ops, NULL, &opts, out, reason);
}

/* one_for_one, one permanent registered worker, an intensity that one block
 * of restarts never exhausts (as beam/bench_sup.erl). */
static int sup_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    const struct rt_child_spec spec = {
        .id = "bench_child",
        .start = child_start,
        .restart = RT_PERMANENT,
        .shutdown = 5000,
        .type = RT_WORKER,
    };
    (void)arg;
    flags->strategy = RT_ONE_FOR_ONE;
    flags->intensity = 1000;
    flags->period_s = 1;
    return rt_sup_init_child(init, &spec);
}

/* The registered child, once it is a pid other than `old`. */
static rt_pid wait_child(rt_pid old)
{
    for (;;) {
        rt_pid pid = rt_whereis("bench_child");
        if (pid != 0 && pid != old)
            return pid;
        rt_yield();
    }
}

/* Time from telling the child to crash (it stops with reason `crash`) to
 * its replacement answering a call. A fresh supervisor (not timed) every
 * RESTART_BLOCK restarts keeps the restart history as short as a real
 * supervisor's, as on the BEAM side. */
#define RESTART_BLOCK 100

static void restart_entry(void *arg)
{
    struct bench *b = arg;
    double total = 0;
    rt_trap_exit(true);
    for (long done = 0; done < b->count;) {
        rt_pid sup;
        if (rt_sup_start_link(sup_init, NULL, NULL, &sup, NULL) != 0)
            fail(b, "supervisor start failed");
        for (long k = 0; k < RESTART_BLOCK && done < b->count; k++, done++) {
            rt_pid old = wait_child(0);
            double t0 = now_ns();
            rt_gen_server_cast(old, rt_msg_new(MSG_DATA, 0));
            rt_pid fresh = wait_child(old);
            if (gs_call(fresh, (uint64_t)done) != 0)
                fail(b, "call to the restarted child failed");
            total += now_ns() - t0;
        }
        rt_exit_signal(sup, RT_SHUTDOWN);
        for (;;) {
            struct rt_msg *m = rt_receive(RT_INFINITY);
            bool down = m != NULL && m->type == RT_MSG_EXIT && m->from == sup;
            rt_msg_free(m);
            if (down)
                break;
        }
    }
    b->result = total / 1000.0 / (double)b->count;
}
#endif

/* ---- main ------------------------------------------------------------------- */

/* Crash and supervisor reports are off on both sides (the BEAM side sets
 * logger level none): the workloads measure the runtime, not the logger. */
static void quiet_crash(const struct rt_crash_report *report, void *ctx)
{
    (void)report;
    (void)ctx;
}

static void quiet_log(enum rt_log_level level, const char *msg, void *ctx)
{
    (void)level;
    (void)msg;
    (void)ctx;
}

static int run_in_process(rt_entry fn, struct bench *b)
{
    rt_pid pid;
    rt_atom reason = RT_NORMAL;
    struct rt_spawn_opts opts = {0};
    if (rt_spawn(fn, b, &opts, &pid) != 0)
        return b->error = "spawn of the controller failed", -1;
    int rc = rt_join(pid, JOIN_TIMEOUT_MS, &reason);
    if (rc != 0)
        return b->error = "timed out", -1;
    if (reason != RT_NORMAL) {
        if (b->error == NULL)
            b->error = rt_atom_name(reason);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s WORKLOAD COUNT SCHEDULERS\n", argv[0]);
        return 2;
    }
    const char *workload = argv[1];
    struct bench b = {.count = atol(argv[2])};
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = (unsigned)atoi(argv[3]);
    if (b.count < 1 || cfg.schedulers < 1) {
        fprintf(stderr, "bad COUNT or SCHEDULERS\n");
        return 2;
    }
    size_t limit = cfg.max_processes != 0 ? cfg.max_processes : (size_t)1 << 21;
    if ((size_t)b.count * 2 + 16 > limit)
        cfg.max_processes = (size_t)b.count * 2 + 16;
    rt_set_crash_handler(quiet_crash, NULL);
    rt_set_log_handler(quiet_log, NULL);

    int rc = rt_start(&cfg);
    if (rc != 0) {
        printf("ERROR rt_start: %s\n", strerror(-rc));
        return 1;
    }
    if (strcmp(workload, "spawn") == 0)
        rc = run_spawn(&b);
    else if (strcmp(workload, "idle_memory") == 0)
        rc = run_idle_memory(&b);
    else if (strcmp(workload, "ring") == 0)
        rc = run_in_process(ring_entry, &b);
    else if (strcmp(workload, "call") == 0)
        rc = run_in_process(call_entry, &b);
    else if (strcmp(workload, "fan_in") == 0)
        rc = run_in_process(fan_in_entry, &b);
#ifdef HAVE_GEN_SERVER
    else if (strcmp(workload, "gen_server_call") == 0)
        rc = run_in_process(gen_server_call_entry, &b);
    else if (strcmp(workload, "call_deep_mailbox") == 0)
        rc = run_in_process(call_deep_mailbox_entry, &b);
#endif
#ifdef HAVE_GEN_EVENT
    else if (strcmp(workload, "gen_event_notify") == 0)
        rc = run_in_process(gen_event_notify_entry, &b);
#endif
#if defined(HAVE_GEN_SERVER) && defined(HAVE_SUPERVISOR)
    else if (strcmp(workload, "restart") == 0)
        rc = run_in_process(restart_entry, &b);
#endif
    else if (strcmp(workload, "gen_server_call") == 0 || strcmp(workload, "restart") == 0 ||
             strcmp(workload, "call_deep_mailbox") == 0 ||
             strcmp(workload, "gen_event_notify") == 0)
        b.error = "n/a", rc = -1; /* not built in, or not written yet */
    else
        b.error = "unknown workload", rc = -1;
    if (rc == 0)
        printf("RESULT %.3f\n", b.result);
    else
        printf("ERROR %s\n", b.error != NULL ? b.error : "failed");
    fflush(stdout);
    /* A workload that timed out may leave processes that never exit: do not
     * wait for them. */
    if (b.error != NULL && strcmp(b.error, "timed out") == 0)
        _exit(1);
    rt_stop();
    free(b.scratch);
    return rc == 0 ? 0 : 1;
}
