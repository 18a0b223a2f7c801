/*
 * test_instance.c: workflow instances (instance.c), their upstream calls
 * (call.c) and the service (service.c) against an in-memory journal and
 * hand-built definitions (fakes.h), with a scripted upstream: a runtime
 * process on loopback answering each path per script (statuses, delays,
 * dropped connections, killing the instance mid-call) and recording the
 * Idempotency-Key of every request. Each body runs in a runtime process
 * under workflows_sup; the runtime ends with no process left.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fakes.h"
#include "gw/gateway.h"
#include "gw_int.h"
#include "rt/gen_statem.h"
#include "rt/supervisor.h"
#include "upstream_int.h"
#include "workflow/call.h"
#include "workflow/instance.h"

/* ---- failures from processes ---------------------------------------------------- */

static char failure[4096];
static atomic_int failed;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c) && atomic_exchange(&failed, 1) == 0)                                              \
            snprintf(failure, sizeof failure, "%s:%d: %s", __FILE__, __LINE__, #c);                \
    } while (0)
#define T_STREQ(a, b)                                                                              \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (strcmp(a_ ? a_ : "(null)", b_) != 0 && atomic_exchange(&failed, 1) == 0)               \
            snprintf(failure, sizeof failure, "%s:%d: \"%s\" != \"%s\"", __FILE__, __LINE__,       \
                     a_ ? a_ : "(null)", b_);                                                      \
    } while (0)

/* ---- the scripted upstream ------------------------------------------------------- */

enum act_kind { A_ANSWER = 0, A_DROP, A_KILL, A_BIG, A_EOF, A_EARLY, A_HTTP10 };
struct act {
    enum act_kind kind;
    int status;
    uint32_t delay_ms;
};

#define MAX_PATHS 8
#define MAX_ACTS 8
#define MAX_SEEN 64
static struct {
    pthread_mutex_t lock;
    struct {
        char path[64];
        struct act acts[MAX_ACTS];
        size_t nacts, next;
    } paths[MAX_PATHS];
    size_t npaths;
    struct {
        char path[64];
        char key[96];
        char wfid[40];
    } seen[MAX_SEEN];
    size_t nseen;
} up = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int lfd = -1;
static uint16_t lport, dead_port;

/* What `path` answers, in order; the last act repeats. */
static void script(const char *path, size_t n, const struct act *acts)
{
    pthread_mutex_lock(&up.lock);
    size_t i = up.npaths++;
    snprintf(up.paths[i].path, sizeof up.paths[i].path, "%s", path);
    memcpy(up.paths[i].acts, acts, n * sizeof *acts);
    up.paths[i].nacts = n;
    up.paths[i].next = 0;
    pthread_mutex_unlock(&up.lock);
}

static struct act next_act(const char *path)
{
    struct act a = {.kind = A_ANSWER, .status = 200};
    pthread_mutex_lock(&up.lock);
    for (size_t i = 0; i < up.npaths; i++)
        if (strcmp(up.paths[i].path, path) == 0) {
            size_t k = up.paths[i].next;
            a = up.paths[i].acts[k];
            if (k + 1 < up.paths[i].nacts)
                up.paths[i].next++;
        }
    pthread_mutex_unlock(&up.lock);
    return a;
}

/* "path=key path=key ..." of every request seen, in order. */
static void seen_text(char *buf, size_t cap, const char *id)
{
    size_t w = 0;
    buf[0] = 0;
    pthread_mutex_lock(&up.lock);
    for (size_t i = 0; i < up.nseen; i++) {
        const char *k = up.seen[i].key;
        /* The id is long: shown as "ID" so expectations read plainly. */
        char kk[96];
        if (id && strncmp(k, id, strlen(id)) == 0)
            snprintf(kk, sizeof kk, "ID%s", k + strlen(id));
        else
            snprintf(kk, sizeof kk, "%s", k);
        int n = snprintf(buf + w, cap - w, "%s%s=%s", i ? " " : "", up.seen[i].path, kk);
        if (n < 0 || (size_t)n >= cap - w)
            break;
        w += (size_t)n;
    }
    pthread_mutex_unlock(&up.lock);
}

static void field(const char *head, const char *name, char *out, size_t cap)
{
    out[0] = 0;
    const char *p = strcasestr(head, name);
    if (!p)
        return;
    p += strlen(name);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r\n");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

static void conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        ssize_t n = rt_read(fd, buf + len, sizeof buf - 1 - len, 5000);
        if (n <= 0)
            goto out;
        len += (size_t)n;
        buf[len] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    char cl[16], key[96], wfid[40], path[64];
    field(buf, "\r\ncontent-length:", cl, sizeof cl);
    field(buf, "\r\nidempotency-key:", key, sizeof key);
    field(buf, "\r\nx-workflow-id:", wfid, sizeof wfid);
    size_t want = (size_t)(end + 4 - buf) + (size_t)atoi(cl);
    while (len < want) {
        ssize_t n = rt_read(fd, buf + len, sizeof buf - 1 - len, 5000);
        if (n <= 0)
            goto out;
        len += (size_t)n;
    }
    const char *sp = strchr(buf, ' ');
    size_t pl = sp ? strcspn(sp + 1, " ") : 0;
    snprintf(path, sizeof path, "%.*s", (int)pl, sp ? sp + 1 : "");
    pthread_mutex_lock(&up.lock);
    if (up.nseen < MAX_SEEN) {
        snprintf(up.seen[up.nseen].path, sizeof up.seen[0].path, "%s", path);
        snprintf(up.seen[up.nseen].key, sizeof up.seen[0].key, "%s", key);
        snprintf(up.seen[up.nseen].wfid, sizeof up.seen[0].wfid, "%s", wfid);
        up.nseen++;
    }
    pthread_mutex_unlock(&up.lock);
    struct act a = next_act(path);
    if (a.delay_ms)
        rt_sleep(a.delay_ms);
    if (a.kind == A_KILL) {
        /* The instance dies after its intent was journalled and its
         * request sent, before it could learn the outcome. */
        char name[64];
        snprintf(name, sizeof name, "wf:%s", wfid);
        rt_pid pid = rt_whereis(name);
        if (pid)
            rt_exit_signal(pid, RT_KILL);
        goto out;
    }
    if (a.kind == A_DROP)
        goto out;
    if (a.kind == A_BIG) {
        /* 2 MiB of JSON string: over the 1 MiB a step reads. */
        static char chunk[65536];
        memset(chunk, 'x', sizeof chunk);
        char head[160];
        size_t total = 2u << 20;
        int hn = snprintf(head, sizeof head,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n\"",
                          total + 2);
        if (rt_write(fd, head, (size_t)hn, 5000) < 0)
            goto out;
        for (size_t sent = 0; sent < total; sent += sizeof chunk)
            if (rt_write(fd, chunk, sizeof chunk, 5000) < 0)
                goto out;
        rt_write(fd, "\"", 1, 5000);
        goto out;
    }
    if (a.kind == A_EOF) {
        /* A body delimited by the end of the connection (no length, no
         * `Connection: close`): the answer ends when the socket does. */
        char resp[128];
        int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\n\r\n{\"eof\":true}", a.status);
        rt_write(fd, resp, (size_t)n, 5000);
        goto out;
    }
    if (a.kind == A_HTTP10) {
        /* HTTP/1.0 without keep-alive: the connection ends with the answer. */
        static const char r10[] = "HTTP/1.0 200 X\r\nContent-Length: 2\r\n\r\n{}";
        rt_write(fd, r10, sizeof r10 - 1, 5000);
        goto out;
    }
    if (a.kind == A_EARLY) {
        /* An interim answer before the final one, in a write of its own. */
        static const char early[] = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n";
        if (rt_write(fd, early, sizeof early - 1, 5000) < 0)
            goto out;
        rt_sleep(20);
    }
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n{\"p\":\"%s\"}",
                     a.status, strlen(path) + 8, path);
    rt_write(fd, resp, (size_t)n, 5000);
out:
    rt_close(fd);
}

static void server_main(void *arg)
{
    (void)arg;
    rt_fd_nonblock(lfd);
    for (;;) {
        int fd = rt_accept(lfd, NULL, NULL, RT_INFINITY);
        if (fd < 0) {
            T_ASSERT(fd == -EINTR);
            rt_sleep(10);
            continue;
        }
        rt_spawn(conn_main, (void *)(intptr_t)fd, NULL, NULL);
    }
}

/* ---- the gateway's pieces ----------------------------------------------------------- */

/* The gateway's global, here rather than from gateway.c: linking that
 * would bring the whole gateway (configuration, routes, the real journal
 * and definitions) in beside the fakes. */
struct gw_gateway gw;

static struct gw_config cfg;
static struct gw_upstream_config ups[2];
static struct gw_target_config tgts[2];
static const char *up_names[2] = {"bank", "dead"};
static char addr_text[2][32];

static void target_at(int i, uint16_t port)
{
    snprintf(addr_text[i], sizeof addr_text[i], "127.0.0.1:%u", port);
    tgts[i].address.host = "127.0.0.1";
    tgts[i].address.port = port;
    tgts[i].address.text = addr_text[i];
    tgts[i].weight = 1;
    ups[i].name = (char *)up_names[i];
    ups[i].targets = &tgts[i];
    ups[i].ntargets = 1;
    ups[i].connect_timeout_ms = 1000;
    ups[i].max_idle = 4;
    ups[i].max_connections = 64;
}

static uint16_t listen_on(int *out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *out = fd;
    return ntohs(a.sin_port);
}

static void setup(void)
{
    int dfd;
    lport = listen_on(&lfd);
    ck_assert_int_eq(listen(lfd, 64), 0);
    /* Bound, never listening: connecting is refused. */
    dead_port = listen_on(&dfd);
    close(dfd);
    memset(&cfg, 0, sizeof cfg);
    memset(ups, 0, sizeof ups);
    memset(tgts, 0, sizeof tgts);
    target_at(0, lport);
    target_at(1, dead_port);
    cfg.upstreams = ups;
    cfg.nupstreams = 2;
    cfg.upstream_names = up_names;
    cfg.workflows.enabled = true;
    gw.cfg = &cfg;
    ck_assert_int_eq(gw__upstreams_init(), 0);
    gw__fds.budget = 64;
    pthread_mutex_lock(&up.lock);
    up.npaths = 0;
    up.nseen = 0;
    pthread_mutex_unlock(&up.lock);
    fj_reset();
    fd_reset();
    memset(&wf__counters, 0, sizeof wf__counters);
    atomic_store(&failed, 0);
}

static void teardown(void)
{
    gw__upstreams_done();
    close(lfd);
    gw.cfg = NULL;
    fj_reset();
}

/* Runs body in a process with the scripted upstream and workflows_sup up;
 * stops them after, and asserts no process is left. */
static void (*body_fn)(void);

static void harness(void *arg)
{
    (void)arg;
    rt_pid srv, sup;
    rt_atom why;
    rt_trap_exit(true);
    T_ASSERT(rt_spawn(server_main, NULL, NULL, &srv) == 0);
    T_ASSERT(gw_workflows_sup_start(&cfg, NULL, 0, &sup, &why) == 0);
    body_fn();
    rt_exit_signal(sup, RT_SHUTDOWN);
    struct rt_msg *m;
    while ((m = rt_receive(5000)) && !(m->type == RT_MSG_EXIT && m->from == sup))
        rt_msg_free(m);
    T_ASSERT(m != NULL);
    rt_msg_free(m);
    rt_exit_signal(srv, RT_SHUTDOWN);
}

static void run(void (*body)(void))
{
    struct rt_config c;
    rt_config_default(&c);
    c.schedulers = 2;
    ck_assert_int_eq(rt_start(&c), 0);
    body_fn = body;
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(harness, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 60000, NULL), 0);
    /* Connections the upstream still holds (a delayed answer) end within
     * their delay; then nothing is left. */
    ck_assert_int_eq(rt_wait_idle(10000), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
}

/* ---- helpers inside the body -------------------------------------------------------- */

static struct wf_def *def_of(const struct fd_def *d)
{
    return fd_define(d);
}

/* Starts an instance of def, returns its id in id. */
static void start(const struct wf_def *def, char id[WF_ID_LEN + 1])
{
    json_t *in = json_pack("{s:i}", "amount", 10);
    enum gw_wf_start how;
    struct wf_record *r = NULL;
    int rc = gw_workflow_start(def, in, NULL, NULL, NULL, &how, &r);
    json_decref(in);
    T_ASSERT(rc == 0);
    if (rc != 0) {
        id[0] = 0;
        return;
    }
    T_ASSERT(how == GW_WF_STARTED);
    T_ASSERT(strlen(r->id) == WF_ID_LEN);
    memcpy(id, r->id, WF_ID_LEN + 1);
    wf_record_free(r);
}

/* Awaits the end; returns the record (caller frees). */
static struct wf_record *await_end(const char *id, uint32_t ms)
{
    struct wf_record *r = NULL;
    T_ASSERT(gw_workflow_await(id, ms, &r) == 0);
    return r;
}

/* Awaits the end across restarts of the instance's process: an await cut
 * short by a crash is made again until `ms` have passed. */
static struct wf_record *await_terminal(const char *id, uint32_t ms)
{
    uint64_t deadline = rt_now_ms() + ms;
    struct wf_record *r = await_end(id, 200);
    while (r && !r->terminal && rt_now_ms() < deadline) {
        wf_record_free(r);
        rt_sleep(10); /* the process may be between its crash and its restart */
        r = await_end(id, 200);
    }
    return r;
}

static void events_are(const char *id, const char *want)
{
    char buf[2048];
    fj_events(id, buf, sizeof buf);
    T_STREQ(buf, want);
}

static void seen_are(const char *id, const char *want)
{
    char buf[2048];
    seen_text(buf, sizeof buf, id);
    T_STREQ(buf, want);
}

static void wait_gone(const char *id)
{
    char name[64];
    snprintf(name, sizeof name, "wf:%s", id);
    for (int i = 0; i < 500 && rt_whereis(name); i++)
        rt_sleep(10);
    T_ASSERT(!rt_whereis(name));
}

static const struct act OK = {A_ANSWER, 200, 0};
static const struct act CONFLICT = {A_ANSWER, 409, 0};
static const struct act UNAVAILABLE = {A_ANSWER, 503, 0};
static const struct act DROP = {A_DROP, 0, 0};

/* ---- the tests ------------------------------------------------------------------------- */

static void b_completes(void)
{
    struct fd_def d = {.name = "three",
                       .nsteps = 3,
                       .steps = {{.name = "a", .path = "/a", .undo_path = "/a-undo"},
                                 {.name = "b", .path = "/b/${workflow.id}"},
                                 {.name = "c", .path = "/c", .body = "{\"x\":1}"}}};
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "completed");
    T_ASSERT(r->terminal);
    T_ASSERT(r->answer_status == 200);
    /* The default answer: id, workflow, state and every step's result. */
    json_t *a = json_loads(r->answer_body, 0, NULL);
    T_STREQ(json_string_value(json_object_get(a, "id")), id);
    T_STREQ(json_string_value(json_object_get(a, "state")), "completed");
    T_STREQ(json_string_value(json_object_get(a, "workflow")), "three");
    T_STREQ(json_string_value(json_object_get(
                json_object_get(json_object_get(json_object_get(a, "steps"), "c"), "body"), "p")),
            "/c");
    json_decref(a);
    wf_record_free(r);
    events_are(id, "intent@step:a outcome@step:b intent@step:b outcome@step:c intent@step:c "
                   "outcome@completed");
    char b_path[64];
    snprintf(b_path, sizeof b_path, "/b/%s", id);
    char want[256];
    snprintf(want, sizeof want, "/a=ID.a %s=ID.b /c=ID.c", b_path);
    seen_are(id, want);
    wait_gone(id);
    struct gw_wf_stats st;
    gw_workflow_stats(&st);
    T_ASSERT(st.started == 1 && st.completed == 1 && st.running == 0);
    wf_def_free(def);
}

START_TEST(step_success_runs_every_step_then_completes)
{
    run(b_completes);
}
END_TEST

static void b_compensates(void)
{
    struct fd_def d = {.name = "four",
                       .nsteps = 4,
                       .steps = {{.name = "a", .path = "/a", .undo_path = "/a-undo"},
                                 {.name = "b", .path = "/b"},
                                 {.name = "c", .path = "/c", .undo_path = "/c-undo"},
                                 {.name = "d", .path = "/d", .undo_path = "/d-undo"}}};
    script("/d", 1, &CONFLICT);
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "compensated");
    T_ASSERT(r->answer_status == 409);
    wf_record_free(r);
    /* c is undone before a; b has nothing to undo; d failed, never done. */
    seen_are(id, "/a=ID.a /b=ID.b /c=ID.c /d=ID.d /c-undo=ID.c.undo /a-undo=ID.a.undo");
    events_are(id, "intent@step:a outcome@step:b intent@step:b outcome@step:c intent@step:c "
                   "outcome@step:d intent@step:d outcome@compensating:c "
                   "intent@compensating:c outcome@compensating:a intent@compensating:a "
                   "outcome@compensated");
    wf_def_free(def);
}

START_TEST(definite_failure_compensates_completed_steps_in_reverse)
{
    run(b_compensates);
}
END_TEST

static void b_unknown(void)
{
    struct fd_def d = {.name = "unk",
                       .nsteps = 2,
                       .steps = {{.name = "a", .path = "/a", .attempts = 1, .backoff_ms = 10},
                                 {.name = "b", .path = "/b"}}};
    /* 503 and a dropped connection say nothing of what the upstream did:
     * the step is sent again with its key, even past its attempts. */
    const struct act acts[] = {UNAVAILABLE, DROP, UNAVAILABLE, OK};
    script("/a", 4, acts);
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "completed");
    wf_record_free(r);
    seen_are(id, "/a=ID.a /a=ID.a /a=ID.a /a=ID.a /b=ID.b");
    events_are(id, "intent@step:a outcome@step:a intent@step:a outcome@step:a intent@step:a "
                   "outcome@step:a intent@step:a outcome@step:b intent@step:b outcome@completed");
    wf_def_free(def);
}

START_TEST(unknown_outcome_is_retried_with_the_same_key_until_known)
{
    run(b_unknown);
}
END_TEST

static void b_big(void)
{
    struct fd_def d = {
        .name = "big", .nsteps = 1, .steps = {{.name = "a", .path = "/a", .backoff_ms = 5}}};
    const struct act acts[] = {{A_BIG, 200, 0}, OK};
    script("/a", 2, acts);
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "completed");
    wf_record_free(r);
    /* The 2 MiB answer could not be read: its outcome is unknown (a 200
     * though it was), and the step is sent again with its key. */
    seen_are(id, "/a=ID.a /a=ID.a");
    events_are(id, "intent@step:a outcome@step:a intent@step:a outcome@completed");
    struct wf_record *full = NULL;
    T_ASSERT(wf_journal_get(id, true, &full) == 0);
    T_ASSERT(full->ntransitions == 4);
    json_t *det = json_loads(full->transitions[1].detail, 0, NULL);
    T_STREQ(json_string_value(json_object_get(det, "outcome")), "unknown");
    json_decref(det);
    wf_record_free(full);
    wf_def_free(def);
}

START_TEST(an_answer_over_the_body_limit_is_an_unknown_outcome)
{
    run(b_big);
}
END_TEST

static void b_timeout(void)
{
    struct fd_def d = {.name = "slow",
                       .nsteps = 1,
                       .steps = {{.name = "a", .path = "/a", .timeout_ms = 150, .backoff_ms = 10}}};
    const struct act acts[] = {{A_ANSWER, 200, 1000}, OK};
    script("/a", 2, acts);
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    uint64_t t0 = rt_now_ms();
    start(def, id);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "completed");
    wf_record_free(r);
    /* Given up on after its timeout, not after the upstream's 1 s. */
    T_ASSERT(rt_now_ms() - t0 < 900);
    seen_are(id, "/a=ID.a /a=ID.a");
    events_are(id, "intent@step:a outcome@step:a intent@step:a outcome@completed");
    wf_def_free(def);
}

START_TEST(step_timeout_is_an_unknown_outcome_resent_with_the_same_key)
{
    run(b_timeout);
}
END_TEST

static void b_not_sent(void)
{
    struct fd_def d = {
        .name = "refused",
        .nsteps = 2,
        .steps = {{.name = "a", .path = "/a", .undo_path = "/a-undo"},
                  {.name = "b", .upstream = 1, .path = "/b", .attempts = 3, .backoff_ms = 5}}};
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "compensated");
    wf_record_free(r);
    /* Three refused sends of b (never sent: safe to give up), then a is
     * undone. */
    seen_are(id, "/a=ID.a /a-undo=ID.a.undo");
    events_are(id, "intent@step:a outcome@step:b intent@step:b outcome@step:b intent@step:b "
                   "outcome@step:b intent@step:b outcome@compensating:a intent@compensating:a "
                   "outcome@compensated");
    wf_def_free(def);
}

START_TEST(retries_exhausted_without_sending_compensate)
{
    run(b_not_sent);
}
END_TEST

static struct wf_def *failing_undo(char id[WF_ID_LEN + 1])
{
    struct fd_def d = {
        .name = "stuck",
        .nsteps = 2,
        .compensate_limit_ms = 150,
        .steps = {{.name = "a", .path = "/a", .undo_path = "/a-undo", .backoff_ms = 20},
                  {.name = "b", .path = "/b"}}};
    script("/b", 1, &CONFLICT);
    const struct act undo[] = {UNAVAILABLE, CONFLICT, UNAVAILABLE};
    script("/a-undo", 3, undo);
    struct wf_def *def = def_of(&d);
    start(def, id);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "failed");
    T_ASSERT(r->terminal);
    T_ASSERT(r->answer_status == 500);
    wf_record_free(r);
    /* It waits for an operator: still there, showing `failed`. */
    char name[64];
    struct rt_proc_info info;
    snprintf(name, sizeof name, "wf:%s", id);
    T_ASSERT(rt_proc_info(rt_whereis(name), &info) == 0);
    T_STREQ(info.state, "failed");
    return def;
}

static void b_failed_hibernates(void)
{
    char id[WF_ID_LEN + 1];
    struct wf_def *def = failing_undo(id);
    /* Waiting for an operator holds no stack. */
    char name[64];
    struct rt_proc_info info;
    snprintf(name, sizeof name, "wf:%s", id);
    rt_sleep(1300);
    T_ASSERT(rt_proc_info(rt_whereis(name), &info) == 0);
    T_ASSERT(info.status == RT_STATUS_HIBERNATING);
    T_STREQ(info.state, "failed");
    /* And wakes for the operator. */
    T_ASSERT(gw_workflow_resolve(id, "") == 0);
    struct wf_record *r = await_terminal(id, 5000);
    T_STREQ(r->state, "resolved");
    wf_record_free(r);
    wf_def_free(def);
}

START_TEST(an_instance_waiting_for_an_operator_hibernates)
{
    run(b_failed_hibernates);
}
END_TEST

static void b_limit_then_retry(void)
{
    char id[WF_ID_LEN + 1];
    struct wf_def *def = failing_undo(id);
    /* Not failed: refused. */
    T_ASSERT(gw_workflow_retry("00000000000000000000000000000000") == -ENOENT);
    pthread_mutex_lock(&up.lock);
    up.paths[1].acts[2] = OK; /* the undo now succeeds */
    pthread_mutex_unlock(&up.lock);
    T_ASSERT(gw_workflow_retry(id) == 0);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "compensated");
    T_ASSERT(r->answer_status == 409);
    wf_record_free(r);
    char ev[4096];
    fj_events(id, ev, sizeof ev);
    T_ASSERT(strstr(ev, "outcome@failed operator:retry@compensating:a intent@compensating:a "
                        "outcome@compensated") != NULL);
    /* Every undo carried the same key. */
    char s[2048];
    seen_text(s, sizeof s, id);
    T_ASSERT(strstr(s, "/a-undo=ID.a.undo /a-undo=ID.a.undo") != NULL);
    T_ASSERT(strstr(s, "undo=ID.a ") == NULL);
    T_ASSERT(gw_workflow_retry(id) == -EINVAL); /* compensated: nothing to retry */
    wf_def_free(def);
}

START_TEST(compensation_past_its_limit_fails_and_an_operator_retry_compensates)
{
    run(b_limit_then_retry);
}
END_TEST

static void b_retry_without_process(void)
{
    char id[WF_ID_LEN + 1];
    struct wf_def *def = failing_undo(id);
    /* As after a restart of the gateway: a failed instance is terminal in
     * the journal, so nothing runs it. */
    char name[64];
    snprintf(name, sizeof name, "wf:%s", id);
    T_ASSERT(rt_sup_terminate_child_pid(rt_whereis("wf_instances"), rt_whereis(name)) == 0);
    T_ASSERT(rt_whereis(name) == 0);
    pthread_mutex_lock(&up.lock);
    up.paths[1].acts[2] = OK;
    pthread_mutex_unlock(&up.lock);
    /* The operator's retry starts a process, which reads the journal,
     * finds `failed`, and compensates again. */
    T_ASSERT(gw_workflow_retry(id) == 0);
    struct wf_record *r = await_terminal(id, 10000);
    T_STREQ(r->state, "compensated");
    wf_record_free(r);
    wf_def_free(def);
}

START_TEST(operator_retry_of_a_failed_instance_without_a_process_starts_one_from_the_journal)
{
    run(b_retry_without_process);
}
END_TEST

static void b_unexpandable(void)
{
    struct fd_def d = {.name = "tmpl",
                       .nsteps = 2,
                       .steps = {{.name = "a", .path = "/a", .undo_path = "/a-undo"},
                                 {.name = "b", .path = "/b/${missing}"}}};
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "compensated");
    wf_record_free(r);
    /* b could not be built: never sent, a definite failure; a is undone. */
    seen_are(id, "/a=ID.a /a-undo=ID.a.undo");
    events_are(id, "intent@step:a outcome@step:b outcome@compensating:a intent@compensating:a "
                   "outcome@compensated");
    struct wf_record *full = NULL;
    T_ASSERT(wf_journal_get(id, true, &full) == 0);
    json_t *det = json_loads(full->transitions[2].detail, 0, NULL);
    T_STREQ(json_string_value(json_object_get(det, "error")), "${missing}");
    json_decref(det);
    wf_record_free(full);
    wf_def_free(def);
}

START_TEST(a_step_whose_request_cannot_be_built_fails_without_being_sent)
{
    run(b_unexpandable);
}
END_TEST

static void b_resolve(void)
{
    char id[WF_ID_LEN + 1];
    struct wf_def *def = failing_undo(id);
    struct wf_record *before = await_end(id, 0);
    T_ASSERT(gw_workflow_resolve(id, "refunded by hand") == 0);
    struct wf_record *r = await_end(id, 10000);
    T_STREQ(r->state, "resolved");
    T_ASSERT(r->terminal);
    /* The client's answer is the one it had. */
    T_ASSERT(r->answer_status == before->answer_status);
    T_STREQ(r->answer_body, before->answer_body);
    wf_record_free(r);
    wf_record_free(before);
    wait_gone(id);
    char ev[4096];
    fj_events(id, ev, sizeof ev);
    T_ASSERT(strstr(ev, "outcome@failed operator:resolve@resolved") != NULL);
    T_ASSERT(gw_workflow_resolve(id, "again") == -EINVAL);
    wf_def_free(def);
}

START_TEST(operator_resolve_ends_a_failed_instance_with_its_answer)
{
    run(b_resolve);
}
END_TEST

static void b_crash(void)
{
    struct fd_def d = {.name = "crash",
                       .nsteps = 2,
                       .steps = {{.name = "debit", .path = "/debit", .undo_path = "/credit"},
                                 {.name = "credit", .path = "/credit2"}}};
    /* The first send of debit: the instance is killed once its request
     * is at the upstream. The restarted process resends it. */
    const struct act acts[] = {{A_KILL, 0, 0}, OK};
    script("/debit", 2, acts);
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    char name[64];
    snprintf(name, sizeof name, "wf:%s", id);
    rt_pid first = 0;
    for (int i = 0; i < 100 && !first; i++, rt_sleep(1))
        first = rt_whereis(name);
    /* An await is cut short by the kill: wait on the restarted one. */
    struct wf_record *r = await_terminal(id, 10000);
    T_STREQ(r->state, "completed");
    wf_record_free(r);
    seen_are(id, "/debit=ID.debit /debit=ID.debit /credit2=ID.credit");
    /* Two intents for debit, one outcome: the write-ahead log shows the
     * send whose outcome was lost. */
    events_are(id, "intent@step:debit intent@step:debit outcome@step:credit "
                   "intent@step:credit outcome@completed");
    wf_def_free(def);
}

START_TEST(killed_between_intent_and_outcome_restarts_from_journal_and_resends_same_key)
{
    run(b_crash);
}
END_TEST

/* Recovery at start: an instance journalled by a previous run (its intent
 * for b sent, no outcome) runs again as soon as workflows_sup has started. */
static struct wf_def *recover_def;
static char recover_id[WF_ID_LEN + 1];

static void b_recovered(void)
{
    char name[64];
    snprintf(name, sizeof name, "wf:%s", recover_id);
    /* Started before workflows_sup's start returned (b answers after
     * 200 ms: it is still running). */
    T_ASSERT(rt_whereis(name) != 0);
    struct wf_record *r = await_end(recover_id, 10000);
    T_STREQ(r->state, "completed");
    wf_record_free(r);
    /* a is not sent again; b is, with its key. */
    seen_are(recover_id, "/b=ID.b");
    events_are(recover_id, "intent@step:a outcome@step:b intent@step:b intent@step:b "
                           "outcome@completed");
    struct gw_wf_stats st;
    gw_workflow_stats(&st);
    T_ASSERT(st.recovered == 1);
}

START_TEST(unfinished_instances_restart_at_start_from_their_last_transition)
{
    struct fd_def d = {.name = "rec",
                       .nsteps = 2,
                       .steps = {{.name = "a", .path = "/a"}, {.name = "b", .path = "/b"}}};
    recover_def = def_of(&d);
    const struct act slow = {A_ANSWER, 200, 200};
    script("/b", 1, &slow);
    struct wf_create c = {.def_name = "rec",
                          .def_text = recover_def->text,
                          .def_text_len = recover_def->text_len,
                          .input = "{}",
                          .input_len = 2,
                          .state = "step:a"};
    memcpy(c.id, "0123456789abcdef0123456789abcdef", WF_ID_LEN + 1);
    memcpy(recover_id, c.id, sizeof recover_id);
    ck_assert_int_eq(wf_journal_create(&c, NULL), 0);
    ck_assert_int_eq(fj_add_transition(c.id, "step:a", "intent",
                                       "{\"action\":\"step\",\"step\":\"a\",\"attempt\":1}"),
                     0);
    ck_assert_int_eq(
        fj_add_transition(c.id, "step:b", "outcome",
                          "{\"action\":\"step\",\"step\":\"a\",\"attempt\":1,\"outcome\":"
                          "\"success\",\"status\":200,\"body\":{\"p\":\"/a\"}}"),
        0);
    ck_assert_int_eq(fj_add_transition(c.id, "step:b", "intent",
                                       "{\"action\":\"step\",\"step\":\"b\",\"attempt\":1}"),
                     0);
    run(b_recovered);
    wf_def_free(recover_def);
}
END_TEST

static void b_await(void)
{
    struct fd_def d = {.name = "wait", .nsteps = 1, .steps = {{.name = "a", .path = "/a"}}};
    const struct act acts[] = {{A_ANSWER, 200, 300}};
    script("/a", 1, acts);
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    /* Not done within 50 ms: the record as it stands. */
    struct wf_record *r = await_end(id, 50);
    T_ASSERT(!r->terminal);
    T_STREQ(r->state, "step:a");
    wf_record_free(r);
    /* The process shows where the instance is. */
    char name[64];
    struct rt_proc_info info;
    snprintf(name, sizeof name, "wf:%s", id);
    T_ASSERT(rt_proc_info(rt_whereis(name), &info) == 0);
    T_STREQ(info.state, "step:a");
    T_ASSERT(strstr(info.detail, "wait step:a") == info.detail);
    T_STREQ(rt_kind_name(info.kind), "workflow");
    /* Two waiters at once, both answered when it ends. */
    r = await_end(id, 5000);
    T_ASSERT(r->terminal && r->answer_status == 200);
    wf_record_free(r);
    wait_gone(id);
    /* Once gone, answered from the journal at once. */
    uint64_t t0 = rt_now_ms();
    r = await_end(id, 5000);
    T_ASSERT(r->terminal && rt_now_ms() - t0 < 1000);
    wf_record_free(r);
    T_ASSERT(gw_workflow_await("ffffffffffffffffffffffffffffffff", 10, &r) == -ENOENT);
    wf_def_free(def);
}

START_TEST(await_answers_when_the_instance_ends_or_with_its_state_on_timeout)
{
    run(b_await);
}
END_TEST

static void b_bounded(void)
{
    cfg.workflows.max_running = 1;
    struct fd_def d = {.name = "one", .nsteps = 1, .steps = {{.name = "a", .path = "/a"}}};
    const struct act acts[] = {{A_ANSWER, 200, 300}};
    script("/a", 1, acts);
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    for (int i = 0; i < 100; i++) {
        struct gw_wf_stats st;
        gw_workflow_stats(&st);
        if (st.running == 1)
            break;
        rt_sleep(2);
    }
    json_t *in = json_object();
    enum gw_wf_start how;
    struct wf_record *r = NULL;
    T_ASSERT(gw_workflow_start(def, in, NULL, NULL, NULL, &how, &r) == -EAGAIN);
    /* A key already taken names its instance (no second one). */
    unsigned char fp[WF_FINGERPRINT_LEN] = {1};
    cfg.workflows.max_running = 0;
    T_ASSERT(gw_workflow_start(def, in, "route:t", "k1", fp, &how, &r) == 0);
    T_ASSERT(how == GW_WF_STARTED);
    char first[WF_ID_LEN + 1];
    memcpy(first, r->id, sizeof first);
    wf_record_free(r);
    T_ASSERT(gw_workflow_start(def, in, "route:t", "k1", fp, &how, &r) == 0);
    T_ASSERT(how == GW_WF_EXISTING);
    T_STREQ(r->id, first);
    wf_record_free(r);
    json_decref(in);
    wf_record_free(await_end(id, 5000));
    wf_record_free(await_end(first, 5000));
    wf_def_free(def);
}

START_TEST(max_running_bounds_live_instances_and_a_taken_key_names_its_instance)
{
    run(b_bounded);
}
END_TEST

/* Starts racing each other: max_running holds at once, not only after the
 * instances started have read their journal. */
static struct wf_def *burst_def;
static atomic_int burst_ok, burst_again;
static char burst_ids[16][WF_ID_LEN + 1];

static void burst_one(void *arg)
{
    (void)arg;
    json_t *in = json_object();
    enum gw_wf_start how;
    struct wf_record *r = NULL;
    int rc = gw_workflow_start(burst_def, in, NULL, NULL, NULL, &how, &r);
    json_decref(in);
    if (rc == 0) {
        int i = atomic_fetch_add(&burst_ok, 1);
        if (i < 16)
            memcpy(burst_ids[i], r->id, WF_ID_LEN + 1);
        wf_record_free(r);
    } else {
        T_ASSERT(rc == -EAGAIN);
        atomic_fetch_add(&burst_again, 1);
    }
}

static void b_burst(void)
{
    cfg.workflows.max_running = 3;
    struct fd_def d = {.name = "burst", .nsteps = 1, .steps = {{.name = "a", .path = "/a"}}};
    const struct act acts[] = {{A_ANSWER, 200, 300}};
    script("/a", 1, acts);
    burst_def = def_of(&d);
    /* As a durable create does: every start parks in the journal before
     * its instance runs. */
    fj_create_parks(20);
    for (int i = 0; i < 16; i++) {
        rt_pid pid;
        T_ASSERT(rt_spawn(burst_one, NULL, NULL, &pid) == 0);
    }
    for (int i = 0; i < 5000 && atomic_load(&burst_ok) + atomic_load(&burst_again) < 16; i++)
        rt_sleep(2);
    T_ASSERT(atomic_load(&burst_ok) == 3);
    T_ASSERT(atomic_load(&burst_again) == 13);
    struct gw_wf_stats st;
    gw_workflow_stats(&st);
    T_ASSERT(st.running <= 3);
    for (int i = 0; i < atomic_load(&burst_ok) && i < 16; i++)
        wf_record_free(await_end(burst_ids[i], 5000));
    cfg.workflows.max_running = 0;
    fj_create_parks(0);
    wf_def_free(burst_def);
}

START_TEST(max_running_holds_for_starts_that_race_each_other)
{
    run(b_burst);
}
END_TEST

static void b_journal_fails(void)
{
    struct fd_def d = {.name = "jf",
                       .nsteps = 2,
                       .steps = {{.name = "a", .path = "/a"}, {.name = "b", .path = "/b"}}};
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    /* The intent of a is written, its outcome is not: nothing after it may
     * be sent (b never is) while the journal fails. */
    fj_fail_appends_from(2);
    start(def, id);
    rt_sleep(500);
    seen_are(id, "/a=ID.a");
    char ev[1024];
    fj_events(id, ev, sizeof ev);
    T_STREQ(ev, "intent@step:a");
    /* Once the journal takes writes again, the instance reads it and
     * carries on from the intent: a again, with its key. */
    fj_fail_appends_from(0);
    struct wf_record *r = await_terminal(id, 10000);
    T_STREQ(r->state, "completed");
    wf_record_free(r);
    seen_are(id, "/a=ID.a /a=ID.a /b=ID.b");
    events_are(id, "intent@step:a intent@step:a outcome@step:b intent@step:b outcome@completed");
    wf_def_free(def);
}

START_TEST(no_send_follows_an_outcome_that_could_not_be_journalled_and_the_journal_is_read_again)
{
    run(b_journal_fails);
}
END_TEST

/* The journal cannot be read: the instance waits and reads it again a
 * second later, as after a failed write, rather than crashing into an
 * immediate restart that reads it again at once (a loop that would wear out
 * its supervisor's restart intensity while the journal is down). */
static void b_journal_unreadable(void)
{
    struct fd_def d = {.name = "ur", .nsteps = 1, .steps = {{.name = "a", .path = "/a"}}};
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    rt_pid sup = rt_whereis("wf_instances");
    fj_fail_gets(true);
    unsigned g0 = fj_gets();
    start(def, id);
    rt_sleep(500);
    unsigned tried = fj_gets() - g0;
    T_ASSERT(tried >= 1 && tried <= 2);
    fj_fail_gets(false);
    struct wf_record *r = await_terminal(id, 10000);
    T_STREQ(r->state, "completed");
    wf_record_free(r);
    seen_are(id, "/a=ID.a");
    T_ASSERT(rt_whereis("wf_instances") == sup);
    wf_def_free(def);
}

START_TEST(an_unreadable_journal_is_read_again_later_without_a_restart_loop)
{
    run(b_journal_unreadable);
}
END_TEST

/* PostgreSQL with replicas: an unfinished instance this replica did not
 * start (another replica's, whose lease lapsed after it died) is claimed
 * and run while this replica runs, not only at its next start. */
static void b_takeover(void)
{
    struct fd_def d = {.name = "to", .nsteps = 1, .steps = {{.name = "a", .path = "/a"}}};
    struct wf_def *def = def_of(&d);
    /* Journalled by the other replica, which died before running it. */
    struct wf_create c = {0};
    snprintf(c.id, sizeof c.id, "%s", "0123456789abcdef0123456789abcdef");
    c.def_name = def->name;
    c.def_text = def->text;
    c.def_text_len = def->text_len;
    c.input = "{}";
    c.input_len = 2;
    c.state = "step:a";
    c.created_ms = 1;
    c.key_expires_ms = INT64_MAX;
    T_ASSERT(wf_journal_create(&c, NULL) == 0);
    struct wf_record *r = await_terminal(c.id, 3000);
    T_ASSERT(r && r->terminal);
    T_STREQ(r ? r->state : NULL, "completed");
    wf_record_free(r);
    seen_are(c.id, "/a=ID.a");
    wf_def_free(def);
}

START_TEST(a_lapsed_instance_of_another_replica_is_taken_over_while_running)
{
    setenv("WF_TEST_PG_CONNINFO", "host=unused", 1);
    cfg.workflows.backend = GW_WF_POSTGRES;
    cfg.workflows.pg_conninfo_env = "WF_TEST_PG_CONNINFO";
    cfg.workflows.lease_ms = 200;
    run(b_takeover);
}
END_TEST

/* `attempts` bounds sends that certainly did not reach the upstream; an
 * unknown outcome is resent past it, never guessed (README.md). */
static void b_unknown_past_attempts(void)
{
    struct fd_def d = {.name = "upa",
                       .nsteps = 1,
                       .steps = {{.name = "a", .path = "/a", .attempts = 2, .backoff_ms = 5}}};
    const struct act acts[] = {UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, OK};
    script("/a", 4, acts);
    struct wf_def *def = def_of(&d);
    char id[WF_ID_LEN + 1];
    start(def, id);
    struct wf_record *r = await_terminal(id, 10000);
    T_STREQ(r->state, "completed");
    wf_record_free(r);
    seen_are(id, "/a=ID.a /a=ID.a /a=ID.a /a=ID.a");
    wf_def_free(def);
}

START_TEST(an_unknown_outcome_is_resent_past_the_steps_attempts)
{
    run(b_unknown_past_attempts);
}
END_TEST

/* An operator's action the journal refuses did not happen: the operator
 * is told so, not 0; the instance reads its journal again and still waits
 * in `failed` for the next action. */
static void b_operator_refused(void)
{
    char id[WF_ID_LEN + 1];
    struct wf_def *def = failing_undo(id);
    fj_fail_appends_from(1);
    T_ASSERT(gw_workflow_retry(id) == -EIO);
    T_ASSERT(gw_workflow_resolve(id, "x") != 0);
    fj_fail_appends_from(0);
    struct wf_record *r = NULL;
    int rc = -1;
    for (int i = 0; i < 300 && rc != 0; i++) {
        rt_sleep(10);
        rc = gw_workflow_resolve(id, "later");
    }
    T_ASSERT(rc == 0);
    r = await_terminal(id, 5000);
    T_STREQ(r->state, "resolved");
    wf_record_free(r);
    wf_def_free(def);
}

START_TEST(an_operator_action_the_journal_refuses_is_reported_as_not_done)
{
    run(b_operator_refused);
}
END_TEST

/* An answer that ended with its connection leaves nothing to reuse: the
 * connection is closed, not put back in the upstream's pool. */
static void b_eof_answer(void)
{
    const struct act acts[] = {{A_EOF, 200, 0}};
    script("/eof", 1, acts);
    struct wf_call_req q = {.upstream_index = 0,
                            .method = "GET",
                            .path = "/eof",
                            .idempotency_key = "k.eof",
                            .workflow_id = "k",
                            .timeout_ms = 5000};
    struct wf_call_res res;
    T_ASSERT(wf_call(&q, &res) == 0);
    T_ASSERT(res.kind == WF_CALL_ANSWERED && res.status == 200);
    T_STREQ(res.body, "{\"eof\":true}");
    wf_call_res_done(&res);
    bool all_ejected = false;
    struct gw__upconn c = {.reused = true};
    struct gw_target *t = gw__target_pick(gw_upstream_get(0), NULL, &all_ejected);
    T_ASSERT(t != NULL);
    int rc = t ? gw__conn_checkout(t, 1000, false, &c, NULL, 0) : -1;
    T_ASSERT(rc == 0);
    T_ASSERT(!c.reused);
    if (rc == 0)
        gw__conn_checkin(t, &c, false);
}

START_TEST(an_answer_ended_by_its_connection_does_not_pool_the_connection)
{
    run(b_eof_answer);
}
END_TEST

/* An interim answer (103) is not the step's answer: the final one that
 * follows on the same connection is. */
static void b_early_hints(void)
{
    const struct act acts[] = {{A_EARLY, 201, 0}};
    script("/early", 1, acts);
    struct wf_call_req q = {.upstream_index = 0,
                            .method = "POST",
                            .path = "/early",
                            .idempotency_key = "k.early",
                            .workflow_id = "k",
                            .timeout_ms = 5000};
    struct wf_call_res res;
    T_ASSERT(wf_call(&q, &res) == 0);
    T_ASSERT(res.kind == WF_CALL_ANSWERED);
    T_ASSERT(res.status == 201);
    T_ASSERT(res.body != NULL);
    if (res.body)
        T_STREQ(res.body, "{\"p\":\"/early\"}");
    wf_call_res_done(&res);
}

START_TEST(an_interim_answer_is_skipped_for_the_final_one)
{
    run(b_early_hints);
}
END_TEST

/* An HTTP/1.0 answer without keep-alive leaves its connection unpooled. */
static void b_http10_answer(void)
{
    const struct act acts[] = {{A_HTTP10, 200, 0}};
    script("/old", 1, acts);
    struct wf_call_req q = {.upstream_index = 0,
                            .method = "GET",
                            .path = "/old",
                            .idempotency_key = "k.old",
                            .workflow_id = "k",
                            .timeout_ms = 5000};
    struct wf_call_res res;
    T_ASSERT(wf_call(&q, &res) == 0);
    T_ASSERT(res.kind == WF_CALL_ANSWERED && res.status == 200);
    wf_call_res_done(&res);
    bool all_ejected = false;
    struct gw__upconn c = {.reused = true};
    struct gw_target *t = gw__target_pick(gw_upstream_get(0), NULL, &all_ejected);
    T_ASSERT(t != NULL);
    int rc = t ? gw__conn_checkout(t, 1000, false, &c, NULL, 0) : -1;
    T_ASSERT(rc == 0);
    T_ASSERT(!c.reused);
    if (rc == 0)
        gw__conn_checkin(t, &c, false);
}

START_TEST(an_http10_answer_without_keep_alive_does_not_pool_the_connection)
{
    run(b_http10_answer);
}
END_TEST

/* The gateway's own connection cap for a target refuses the send, but is
 * not the target's failure: it does not count towards ejecting it. */
static void b_conn_cap(void)
{
    bool all_ejected = false;
    struct gw_target *t = gw__target_pick(gw_upstream_get(0), NULL, &all_ejected);
    T_ASSERT(t != NULL);
    if (!t)
        return;
    uint32_t cap = t->pool.max_active;
    t->pool.max_active = 0;
    struct wf_call_req q = {.upstream_index = 0,
                            .method = "GET",
                            .path = "/cap",
                            .idempotency_key = "k.cap",
                            .workflow_id = "k",
                            .timeout_ms = 5000};
    struct wf_call_res res;
    T_ASSERT(wf_call(&q, &res) == 0);
    t->pool.max_active = cap;
    T_ASSERT(res.kind == WF_CALL_NOT_SENT);
    T_ASSERT(atomic_load(&t->consecutive_failures) == 0);
    wf_call_res_done(&res);
}

START_TEST(the_gateways_connection_cap_is_not_a_failure_of_the_target)
{
    run(b_conn_cap);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("workflow_instance");
    TCase *tc = tcase_create("instance");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, step_success_runs_every_step_then_completes);
    tcase_add_test(tc, definite_failure_compensates_completed_steps_in_reverse);
    tcase_add_test(tc, unknown_outcome_is_retried_with_the_same_key_until_known);
    tcase_add_test(tc, step_timeout_is_an_unknown_outcome_resent_with_the_same_key);
    tcase_add_test(tc, an_answer_over_the_body_limit_is_an_unknown_outcome);
    tcase_add_test(tc, retries_exhausted_without_sending_compensate);
    tcase_add_test(tc, compensation_past_its_limit_fails_and_an_operator_retry_compensates);
    tcase_add_test(tc, operator_resolve_ends_a_failed_instance_with_its_answer);
    tcase_add_test(
        tc, operator_retry_of_a_failed_instance_without_a_process_starts_one_from_the_journal);
    tcase_add_test(tc, a_step_whose_request_cannot_be_built_fails_without_being_sent);
    tcase_add_test(tc, an_instance_waiting_for_an_operator_hibernates);
    tcase_add_test(tc,
                   killed_between_intent_and_outcome_restarts_from_journal_and_resends_same_key);
    tcase_add_test(tc, unfinished_instances_restart_at_start_from_their_last_transition);
    tcase_add_test(tc, await_answers_when_the_instance_ends_or_with_its_state_on_timeout);
    tcase_add_test(tc, max_running_bounds_live_instances_and_a_taken_key_names_its_instance);
    tcase_add_test(tc, max_running_holds_for_starts_that_race_each_other);
    tcase_add_test(tc, an_unreadable_journal_is_read_again_later_without_a_restart_loop);
    tcase_add_test(tc, a_lapsed_instance_of_another_replica_is_taken_over_while_running);
    tcase_add_test(tc, an_unknown_outcome_is_resent_past_the_steps_attempts);
    tcase_add_test(tc, an_operator_action_the_journal_refuses_is_reported_as_not_done);
    tcase_add_test(tc, an_answer_ended_by_its_connection_does_not_pool_the_connection);
    tcase_add_test(tc, an_interim_answer_is_skipped_for_the_final_one);
    tcase_add_test(tc, an_http10_answer_without_keep_alive_does_not_pool_the_connection);
    tcase_add_test(tc, the_gateways_connection_cap_is_not_a_failure_of_the_target);
    tcase_add_test(
        tc, no_send_follows_an_outcome_that_could_not_be_journalled_and_the_journal_is_read_again);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
