/*
 * test_admin.c: the admin API's handlers called directly, inside runtime
 * processes, with synthetic requests; metrics recording and exposition;
 * `tandem ctl health` against a scripted HTTP server.
 *
 * The router and upstream pools are replaced by a test double
 * (router_upstream_double.c) answering fixed structs; `gw` is defined here.
 * Each runtime test runs its body in a process, records the first failed
 * assertion there, and ends with every process gone and rt_stop() == 0.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "admin_double.h"
#include "admin_int.h"
#include "gw/admin.h"
#include "gw/ctl.h"
#include "gw/events.h"
#include "gw/gateway.h"
#include "gw/http1.h"
#include "gw/metrics.h"
#include "gw/router.h"
#include "gw_version.h"
#include "policy/policy.h"
#include "policy/stats.h"
#include "policy/table.h"
#include "request_detail.h"
#include "route/holder.h"
#include "route/route.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"
#include "rt/sys.h"

struct gw_gateway gw;

/* ---- harness ---------------------------------------------------------------- */

static char t_failure[512];
static atomic_int t_failed;
static atomic_int t_done;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (atomic_exchange(&t_failed, 1) == 0)                                                \
                snprintf(t_failure, sizeof t_failure, "%s:%d: %s", __FILE__, __LINE__, #c);        \
            rt_exit(rt_atom_intern("test_failed"));                                                \
        }                                                                                          \
    } while (0)
#define T_EQ(a, b) T_ASSERT((long long)(a) == (long long)(b))
#define T_STREQ(a, b) T_ASSERT((a) && strcmp((a), (b)) == 0)

static void (*t_body)(void);

static void t_runner(void *arg)
{
    t_body();
    atomic_store(&t_done, 1);
}

static void t_run(void (*body)(void))
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    ck_assert_int_eq(rt_start(&cfg), 0);
    rt_kind k;
    static const char *const gateway_kinds[] = {"acceptor", "connection", "request"};
    for (size_t i = 0; i < sizeof gateway_kinds / sizeof gateway_kinds[0]; i++)
        ck_assert_int_eq(rt_kind_register(gateway_kinds[i], &k), 0);
    t_body = body;
    rt_pid pid = 0;
    struct rt_spawn_opts so = {.initial_call = "test_admin"};
    ck_assert_int_eq(rt_spawn(t_runner, NULL, &so, &pid), 0);
    rt_atom reason = 0;
    int jr = rt_join(pid, 60000, &reason);
    if (jr == 0)
        rt_wait_idle(5000);
    int left = rt_stop();
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_int_eq(jr, 0);
    ck_assert_msg(atomic_load(&t_done), "test process exited: %s", rt_atom_name(reason));
    ck_assert_int_eq(left, 0);
}

/* ---- synthetic requests ------------------------------------------------------ */

struct answer {
    int status;
    const char *content_type;
    char *raw;
    json_t *json; /* NULL when the body is not JSON */
};

static void answer_done(struct answer *a)
{
    free(a->raw);
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

/* The admin listener the synthetic requests address (set in main). */
#define T_ADMIN_HOST "127.0.0.1:9901"

/* Calls gw_admin_handle with `method target` (origin form, canonical), the
 * header lines `fields` (each ending in CRLF; Host among them) and `body`. */
static struct answer call_fields(const char *method, const char *target, const char *fields,
                                 const char *body)
{
    /* Sized for the target: a test may send a long query. */
    size_t cap = strlen(method) + 2 * strlen(target) + strlen(fields) + 128;
    char *text = malloc(cap);
    T_ASSERT(text != NULL);
    snprintf(text, cap, "%s %s HTTP/1.1\r\n%sContent-Length: %zu\r\n\r\n", method, target, fields,
             body ? strlen(body) : 0);
    struct gw_http_parser *p = NULL;
    T_EQ(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
    struct gw_http_event ev;
    size_t used = 0;
    T_EQ(gw_http_parser_feed(p, text, strlen(text), &used, &ev), 0);
    T_EQ(ev.type, GW_HTTP_EV_HEAD);
    struct gw_http_head *head = ev.head;
    gw_http_parser_free(p);

    char *path = text + strlen(text) + 1;
    snprintf(path, cap - strlen(text) - 1, "%s", target);
    char *q = strchr(path, '?');
    if (q)
        *q++ = 0;
    struct gw_admin_request req = {
        .head = head,
        .path = path,
        .query = q,
        .body = body ? body : "",
        .body_len = body ? strlen(body) : 0,
        .client_addr = "127.0.0.1",
        .client_loopback = true,
    };
    struct gw_admin_response resp;
    memset(&resp, 0x5a, sizeof resp);
    gw_admin_handle(&req, &resp);
    gw_http_head_free(head);
    free(text);
    struct answer a = {.status = resp.status, .content_type = resp.content_type, .raw = resp.body};
    T_ASSERT(resp.body != NULL);
    T_EQ(strlen(resp.body), resp.body_len);
    if (strcmp(resp.content_type, "application/json") == 0) {
        json_error_t err;
        a.json = json_loadb(resp.body, resp.body_len, 0, &err);
        T_ASSERT(a.json != NULL);
    }
    return a;
}

/* The same as a well-behaved client sends it: Host the admin listener,
 * Content-Type application/json with a body, and Authorization when `auth`
 * is given. */
static struct answer call(const char *method, const char *target, const char *auth,
                          const char *body)
{
    char fields[1024];
    snprintf(fields, sizeof fields, "Host: " T_ADMIN_HOST "\r\n%s%s%s%s",
             auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "",
             body ? "Content-Type: application/json\r\n" : "");
    return call_fields(method, target, fields, body);
}

static struct answer get(const char *target)
{
    return call("GET", target, NULL, NULL);
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* An error answer: status, {"error": code, "detail": ...}. */
static void expect_error(struct answer *a, int status, const char *code)
{
    T_EQ(a->status, status);
    T_ASSERT(a->json != NULL);
    T_STREQ(jstr(a->json, "error"), code);
    T_ASSERT(json_object_get(a->json, "detail") != NULL);
}

/* ---- helpers: processes --------------------------------------------------------- */

enum { MSG_STOP = 1, MSG_PING = 2 };

/* Waits until a MSG_STOP arrives (other messages stay queued). */
static bool is_stop(const struct rt_msg *m, void *ctx)
{
    return m->type == MSG_STOP;
}

static void waiter(void *arg)
{
    if (arg)
        rt_set_detail("%s", (const char *)arg);
    struct rt_msg *m = rt_receive_match(is_stop, NULL, RT_INFINITY);
    rt_msg_free(m);
}

/* A kind the gateway registers at start (gw__kinds_register); the admin API
 * knows it by its name alone. */
static rt_kind gw_kind(const char *name)
{
    rt_kind k = RT_KIND_PROCESS;
    T_EQ(rt_kind_register(name, &k), 0);
    return k;
}

/* What a request process publishes (request_detail.h). */
struct request_doing {
    const char *method, *path, *route, *target;
};

static void request_waiter(void *arg)
{
    const struct request_doing *d = arg;
    gw__request_detail_set(d->method, d->path, strlen(d->path), d->route, d->target);
    struct rt_msg *m = rt_receive_match(is_stop, NULL, RT_INFINITY);
    rt_msg_free(m);
}

/* `d` must live until the process has parked (await_waiting). */
static rt_pid spawn_request(const struct request_doing *d)
{
    rt_pid pid = 0;
    struct rt_spawn_opts so = {.kind = gw_kind("request"), .initial_call = "test:request"};
    T_EQ(rt_spawn(request_waiter, (void *)d, &so, &pid), 0);
    return pid;
}

static rt_pid spawn_waiter(const char *name, rt_kind kind, const char *detail)
{
    rt_pid pid = 0;
    struct rt_spawn_opts so = {.name = name, .kind = kind, .initial_call = "test:waiter"};
    T_EQ(rt_spawn(waiter, (void *)detail, &so, &pid), 0);
    return pid;
}

/* Waits (up to 10 s) until each process is parked: a new process runs its
 * first slice late on a slow or loaded machine (sanitizer builds), so no
 * fixed sleep is enough for its labels and status to be set. */
static void await_waiting(const rt_pid *pids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct rt_proc_info info;
        for (int k = 0; k < 10000; k++) {
            if (rt_proc_info(pids[i], &info) < 0 || info.status == RT_STATUS_WAITING)
                break;
            rt_sleep(1);
        }
        T_ASSERT(rt_proc_info(pids[i], &info) == 0 && info.status == RT_STATUS_WAITING);
    }
}

static void stop_waiter(rt_pid pid)
{
    rt_ref ref = rt_monitor(pid);
    rt_send(pid, rt_msg_new(MSG_STOP, 0));
    struct rt_msg *down = rt_receive_ref(ref, 5000);
    T_ASSERT(down != NULL);
    rt_msg_free(down);
}

static json_t *find_pid(json_t *procs, rt_pid pid)
{
    char buf[GW_ADMIN_PID_BUF];
    gw_admin_pid_format(pid, buf);
    size_t i;
    json_t *p;
    json_array_foreach(procs, i, p)
    {
        if (strcmp(jstr(p, "pid"), buf) == 0)
            return p;
    }
    return NULL;
}

/* A gen_server with a state that format_status describes. */
struct counter {
    int n;
};

static void c_init(void *arg, struct rt_gs_result *r)
{
    struct counter *c = rt_calloc(1, sizeof *c);
    c->n = 42;
    r->state = c;
}

static size_t c_format(const void *state, char *buf, size_t len)
{
    return (size_t)snprintf(buf, len, "count=%d", ((const struct counter *)state)->n);
}

static const struct rt_gen_server_ops counter_ops = {
    .name = "counter",
    .init = c_init,
    .format_status = c_format,
};

static int start_counter(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                         rt_atom *reason)
{
    return rt_gen_server_start_link(&counter_ops, NULL, NULL, out, reason);
}

/* ---- token ------------------------------------------------------------------------ */

START_TEST(token_compare_equal_only_for_the_same_bytes)
{
    const char *t = "s3cret-token";
    size_t n = strlen(t);
    ck_assert(gw_admin_token_equal(t, n, t, n));
    ck_assert(gw_admin_token_equal("s3cret-token", n, t, n));
    ck_assert(!gw_admin_token_equal("x3cret-token", n, t, n)); /* first byte */
    ck_assert(!gw_admin_token_equal("s3cret-tokeN", n, t, n)); /* last byte */
    ck_assert(!gw_admin_token_equal("s3cret", 6, t, n));       /* prefix */
    ck_assert(!gw_admin_token_equal("s3cret-token-and-more", 21, t, n));
    /* A presented token that repeats the expected one must not pass. */
    ck_assert(!gw_admin_token_equal("s3cret-tokens3cret-token", 24, t, n));
    ck_assert(!gw_admin_token_equal("", 0, t, n));
    ck_assert(!gw_admin_token_equal("a", 1, "", 0));
}
END_TEST

/* Whether `t` repeated out to given_len bytes is taken for `t`: every byte
 * of such a token matches the cycled comparison, so only the length
 * difference can tell the two apart. */
static bool equal_when_cycled(const char *t, size_t n, size_t given_len)
{
    char *given = malloc(given_len + 1);
    ck_assert_ptr_nonnull(given);
    for (size_t i = 0; i < given_len; i++)
        given[i] = t[i % n];
    bool eq = gw_admin_token_equal(given, given_len, t, n);
    free(given);
    return eq;
}

START_TEST(token_compare_refuses_lengths_that_differ_by_a_multiple_of_256)
{
    const char *t = "s3cret-token";
    size_t n = strlen(t);
    ck_assert(equal_when_cycled(t, n, n));
    /* Differences whose low byte is zero, in each byte of a size_t the
     * tests can afford to allocate. */
    static const size_t extra[] = {256, 512, 768, 0xff00, 0x10000, 0x30000, 0x1000000};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        if (equal_when_cycled(t, n, n + extra[i]))
            ck_abort_msg("a token %zu bytes longer than the expected one passed", extra[i]);
    }
    /* The expected token longer than the given one by a multiple of 256. */
    char longer[12 + 256 + 1];
    for (size_t i = 0; i < sizeof longer - 1; i++)
        longer[i] = t[i % n];
    longer[sizeof longer - 1] = 0;
    ck_assert(!gw_admin_token_equal(t, n, longer, sizeof longer - 1));
}
END_TEST

static void body_token_refusal(void)
{
    gw.admin_token = "s3cret-token";
    struct answer a = get("/admin/system");
    expect_error(&a, 401, "unauthorized");
    T_ASSERT(strstr(a.raw, "s3cret") == NULL);
    answer_done(&a);
    a = call("GET", "/admin/system", "Bearer wrong-token", NULL);
    expect_error(&a, 401, "unauthorized");
    answer_done(&a);
    a = call("GET", "/admin/system", "Basic s3cret-token", NULL);
    expect_error(&a, 401, "unauthorized");
    answer_done(&a);
    a = call("GET", "/admin/nothing-here", NULL, NULL); /* 401 before 404 */
    expect_error(&a, 401, "unauthorized");
    answer_done(&a);
    a = call("GET", "/metrics", "Bearer wrong", NULL);
    T_EQ(a.status, 401);
    answer_done(&a);
    a = call("GET", "/admin/system", "Bearer s3cret-token", NULL);
    T_EQ(a.status, 200);
    answer_done(&a);
    a = call("GET", "/admin/system", "bearer s3cret-token", NULL);
    T_EQ(a.status, 200);
    answer_done(&a);
    /* Two Authorization fields are refused whichever of them is valid: a
     * front proxy and the gateway could each read a different one. */
    static const char *const twice[] = {
        "Authorization: Bearer s3cret-token\r\nAuthorization: Bearer wrong\r\n",
        "Authorization: Bearer wrong\r\nAuthorization: Bearer s3cret-token\r\n",
        "Authorization: Bearer s3cret-token\r\nAuthorization: Bearer s3cret-token\r\n",
    };
    for (size_t i = 0; i < sizeof twice / sizeof twice[0]; i++) {
        char fields[512];
        snprintf(fields, sizeof fields, "Host: " T_ADMIN_HOST "\r\n%s", twice[i]);
        a = call_fields("GET", "/admin/system", fields, NULL);
        expect_error(&a, 401, "unauthorized");
        answer_done(&a);
    }
    /* Probes answer without the token. */
    a = get("/healthz");
    T_EQ(a.status, 200);
    answer_done(&a);
    gw.admin_token = NULL;
    a = get("/admin/system");
    T_EQ(a.status, 200);
    answer_done(&a);
}

START_TEST(token_missing_or_wrong_gets_401_right_gets_through)
{
    t_run(body_token_refusal);
}
END_TEST

/* The dashboard's files need no token (they hold no data), but pass every
 * check before it: a rebinding page or another site gets nothing, not even
 * the page. Only /ui and what is under it is the dashboard's. */
static void body_ui_dispatch(void)
{
    gw.admin_token = "s3cret-token";
    struct answer a = get("/ui/");
    T_EQ(a.status, 200);
    T_STREQ(a.content_type, "text/html; charset=utf-8");
    T_ASSERT(strstr(a.raw, "<script type=\"module\" src=\"app.js\"></script>") != NULL);
    answer_done(&a);
    a = get("/ui/app.js");
    T_EQ(a.status, 200);
    answer_done(&a);
    a = get("/ui");
    T_EQ(a.status, 308);
    answer_done(&a);
    a = get("/ui/missing.js");
    expect_error(&a, 404, "not_found");
    answer_done(&a);
    a = call("POST", "/ui/", NULL, "{}");
    expect_error(&a, 405, "method_not_allowed");
    answer_done(&a);
    /* The data the page shows still needs the token. */
    a = get("/admin/system");
    expect_error(&a, 401, "unauthorized");
    answer_done(&a);
    a = get("/uix");
    expect_error(&a, 401, "unauthorized");
    answer_done(&a);
    /* Before the token: Host, Origin, Sec-Fetch-Site. */
    a = call_fields("GET", "/ui/", "Host: attacker.example:9901\r\n", NULL);
    expect_error(&a, 421, "misdirected_request");
    answer_done(&a);
    a = call_fields("GET", "/ui/app.js",
                    "Host: " T_ADMIN_HOST "\r\nOrigin: http://evil.example\r\n", NULL);
    expect_error(&a, 403, "cross_origin");
    answer_done(&a);
    a = call_fields("GET", "/ui/", "Host: " T_ADMIN_HOST "\r\nSec-Fetch-Site: cross-site\r\n",
                    NULL);
    expect_error(&a, 403, "cross_origin");
    answer_done(&a);
    /* The page's own module loads: same origin. */
    a = call_fields("GET", "/ui/views/overview.js",
                    "Host: " T_ADMIN_HOST "\r\nOrigin: http://" T_ADMIN_HOST
                    "\r\nSec-Fetch-Site: same-origin\r\n",
                    NULL);
    T_EQ(a.status, 200);
    T_STREQ(a.content_type, "text/javascript; charset=utf-8");
    answer_done(&a);
    gw.admin_token = NULL;
}

START_TEST(ui_files_are_served_without_the_token_after_the_host_and_origin_checks)
{
    t_run(body_ui_dispatch);
}
END_TEST

/* ---- pids ---------------------------------------------------------------------------- */

START_TEST(pid_format_parses_back_in_every_accepted_form)
{
    rt_pid pid = (7ull << 32) | 1234;
    char buf[GW_ADMIN_PID_BUF];
    gw_admin_pid_format(pid, buf);
    ck_assert_str_eq(buf, "<0.1234.7>");
    rt_pid out = 0;
    ck_assert_int_eq(gw_admin_pid_parse(buf, strlen(buf), &out), 0);
    ck_assert_uint_eq(out, pid);
    out = 0;
    ck_assert_int_eq(gw_admin_pid_parse("0.1234.7", 8, &out), 0);
    ck_assert_uint_eq(out, pid);
    out = 0;
    ck_assert_int_eq(gw_admin_pid_parse("%3C0.1234.7%3E", 14, &out), 0);
    ck_assert_uint_eq(out, pid);
    char dec[32];
    snprintf(dec, sizeof dec, "%llu", (unsigned long long)pid);
    out = 0;
    ck_assert_int_eq(gw_admin_pid_parse(dec, strlen(dec), &out), 0);
    ck_assert_uint_eq(out, pid);
    ck_assert_int_eq(gw_admin_pid_parse("1.2.3", 5, &out), -EINVAL);
    ck_assert_int_eq(gw_admin_pid_parse("0.1", 3, &out), -EINVAL);
    ck_assert_int_eq(gw_admin_pid_parse("0.x.1", 5, &out), -EINVAL);
    ck_assert_int_eq(gw_admin_pid_parse("0.99999999999.1", 15, &out), -EINVAL);
    ck_assert_int_eq(gw_admin_pid_parse("", 0, &out), -EINVAL);
    ck_assert_int_eq(gw_admin_pid_parse("0", 1, &out), -EINVAL);
}
END_TEST

/* ---- process list ------------------------------------------------------------------ */

static void body_process_list(void)
{
    enum { N = 100 };
    rt_pid pids[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "adm_w%03d", i);
        pids[i] = spawn_waiter(name, RT_KIND_PROCESS, NULL);
    }
    rt_pid conns[3];
    for (int i = 0; i < 3; i++)
        conns[i] = spawn_waiter(NULL, gw_kind("connection"), NULL);
    /* Mailboxes: pids[17] holds 5 queued messages, pids[3] holds 2. */
    for (int i = 0; i < 5; i++)
        rt_send(pids[17], rt_msg_new(MSG_PING, 0));
    for (int i = 0; i < 2; i++)
        rt_send(pids[3], rt_msg_new(MSG_PING, 0));
    await_waiting(pids, N);
    await_waiting(conns, 3);

    struct answer a = get("/admin/processes?name=adm_w");
    T_EQ(a.status, 200);
    T_EQ(jint(a.json, "matched"), N);
    T_EQ(jint(a.json, "returned"), N);
    T_ASSERT(jint(a.json, "total") >= N + 4);
    json_t *procs = json_object_get(a.json, "processes");
    T_EQ(json_array_size(procs), N);
    for (int i = 0; i < N; i++) {
        json_t *p = find_pid(procs, pids[i]);
        T_ASSERT(p != NULL);
        snprintf(name, sizeof name, "adm_w%03d", i);
        T_STREQ(jstr(p, "name"), name);
        T_STREQ(jstr(p, "kind"), "process");
        T_STREQ(jstr(p, "initial_call"), "test:waiter");
        T_STREQ(jstr(p, "status"), "waiting");
        T_ASSERT(json_is_integer(json_object_get(p, "reductions")));
        T_ASSERT(jint(p, "memory") > 0);
        T_ASSERT(json_is_integer(json_object_get(p, "links")));
        T_ASSERT(json_is_integer(json_object_get(p, "monitors")));
        T_ASSERT(json_is_integer(json_object_get(p, "age_ms")));
        char parent[GW_ADMIN_PID_BUF];
        gw_admin_pid_format(rt_self(), parent);
        T_STREQ(jstr(p, "parent"), parent);
        T_EQ(jint(p, "mailbox_len"), i == 17 ? 5 : i == 3 ? 2 : 0);
    }
    answer_done(&a);

    /* sort=mailbox, limit=2: the two fullest mailboxes, fullest first. */
    a = get("/admin/processes?name=adm_w&sort=mailbox&limit=2");
    T_EQ(a.status, 200);
    T_EQ(jint(a.json, "matched"), N);
    T_EQ(jint(a.json, "returned"), 2);
    procs = json_object_get(a.json, "processes");
    T_EQ(json_array_size(procs), 2);
    T_STREQ(jstr(json_array_get(procs, 0), "name"), "adm_w017");
    T_STREQ(jstr(json_array_get(procs, 1), "name"), "adm_w003");
    answer_done(&a);

    /* sort=age: oldest first; offset pages on. */
    a = get("/admin/processes?name=adm_w&sort=age&limit=10&offset=0");
    procs = json_object_get(a.json, "processes");
    T_EQ(json_array_size(procs), 10);
    long long prev = -1;
    size_t i;
    json_t *p;
    json_array_foreach(procs, i, p)
    {
        T_ASSERT(prev < 0 || jint(p, "age_ms") <= prev);
        prev = jint(p, "age_ms");
    }
    answer_done(&a);
    a = get("/admin/processes?name=adm_w&limit=10&offset=95");
    T_EQ(jint(a.json, "returned"), 5);
    answer_done(&a);

    /* sort=reductions and memory: non-increasing. */
    static const char *const keys[2][2] = {{"reductions", "reductions"}, {"memory", "memory"}};
    for (int k = 0; k < 2; k++) {
        char target[128];
        snprintf(target, sizeof target, "/admin/processes?sort=%s", keys[k][0]);
        a = get(target);
        T_EQ(a.status, 200);
        prev = -1;
        json_array_foreach(json_object_get(a.json, "processes"), i, p)
        {
            T_ASSERT(prev < 0 || jint(p, keys[k][1]) <= prev);
            prev = jint(p, keys[k][1]);
        }
        answer_done(&a);
    }

    /* kind filter. */
    a = get("/admin/processes?kind=connection");
    T_EQ(a.status, 200);
    T_EQ(jint(a.json, "matched"), 3);
    for (int k = 0; k < 3; k++)
        T_ASSERT(find_pid(json_object_get(a.json, "processes"), conns[k]) != NULL);
    answer_done(&a);
    a = get("/admin/processes?kind=connection,process&name=adm_w");
    T_EQ(jint(a.json, "matched"), N);
    answer_done(&a);

    /* Bad parameters: 400 with the error shape. */
    static const char *const bad[] = {"/admin/processes?sort=cpu", "/admin/processes?limit=0",
                                      "/admin/processes?limit=-1", "/admin/processes?limit=x",
                                      "/admin/processes?kind=thread"};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        a = get(bad[b]);
        expect_error(&a, 400, "bad_request");
        answer_done(&a);
    }

    for (int k = 0; k < N; k++)
        stop_waiter(pids[k]);
    for (int k = 0; k < 3; k++)
        stop_waiter(conns[k]);
    a = get("/admin/processes?name=adm_w");
    T_EQ(jint(a.json, "matched"), 0);
    answer_done(&a);
}

START_TEST(processes_list_filters_sorts_and_limits)
{
    t_run(body_process_list);
}
END_TEST

static void body_request_detail(void)
{
    static const struct request_doing full = {"GET", "/users/7", "users", "127.0.0.1:9000"};
    static const struct request_doing started = {"POST", "/orders", NULL, NULL};
    /* A path longer than the runtime's whole detail line: the route and the
     * target still show, and only the path is cut. */
    char longpath[301] = "/";
    memset(longpath + 1, 'p', sizeof longpath - 2);
    const struct request_doing big = {"GET", longpath, "users", "127.0.0.1:9000"};
    rt_pid r = spawn_request(&full);
    rt_pid half = spawn_request(&started);
    rt_pid lng = spawn_request(&big);
    rt_sleep(20);
    await_waiting((rt_pid[]){r, half, lng}, 3);
    struct answer a = get("/admin/processes?kind=request");
    T_EQ(jint(a.json, "matched"), 3);
    json_t *lp = find_pid(json_object_get(a.json, "processes"), lng);
    T_STREQ(jstr(lp, "method"), "GET");
    T_STREQ(jstr(lp, "route"), "users");
    T_STREQ(jstr(lp, "upstream_target"), "127.0.0.1:9000");
    const char *cut = jstr(lp, "path");
    T_ASSERT(cut && strlen(cut) >= 64 && strncmp(cut, longpath, strlen(cut)) == 0);
    json_t *p = find_pid(json_object_get(a.json, "processes"), r);
    T_ASSERT(p != NULL);
    T_STREQ(jstr(p, "method"), "GET");
    T_STREQ(jstr(p, "path"), "/users/7");
    T_STREQ(jstr(p, "route"), "users");
    T_STREQ(jstr(p, "upstream_target"), "127.0.0.1:9000");
    T_ASSERT(jint(p, "elapsed_ms") >= 20);
    T_EQ(jint(p, "elapsed_ms"), jint(p, "age_ms"));
    p = find_pid(json_object_get(a.json, "processes"), half);
    T_STREQ(jstr(p, "method"), "POST");
    T_STREQ(jstr(p, "path"), "/orders");
    T_ASSERT(json_is_null(json_object_get(p, "route")));
    T_ASSERT(json_is_null(json_object_get(p, "upstream_target")));
    answer_done(&a);
    stop_waiter(r);
    stop_waiter(half);
    stop_waiter(lng);
}

START_TEST(request_processes_show_method_path_route_target_elapsed)
{
    t_run(body_request_detail);
}
END_TEST

/* The list and the one-process answer share one record writer; its
 * members around the record come from jansson: both answers must show the
 * same fields with the same values, whatever bytes a
 * detail line holds (quotes, backslashes, controls, UTF-8, invalid bytes). */
static void body_list_detail_agree(void)
{
    rt_pid odd = spawn_waiter(NULL, RT_KIND_PROCESS,
                              "q\"b\\c\x01"
                              "d \xc3\xa9 \xff end\x7f");
    static const struct request_doing odd_req = {"GET", "/caf\xc3\xa9", "\"r\"", "\xfe"};
    rt_pid req = spawn_request(&odd_req);
    rt_pid gs = 0;
    T_EQ(rt_gen_server_start_link(&counter_ops, NULL, NULL, &gs, NULL), 0);
    rt_pid pids[3] = {odd, req, gs};
    await_waiting(pids, 3);
    struct answer list = get("/admin/processes");
    T_EQ(list.status, 200);
    for (int i = 0; i < 3; i++) {
        json_t *l = find_pid(json_object_get(list.json, "processes"), pids[i]);
        T_ASSERT(l != NULL);
        char target[96];
        snprintf(target, sizeof target, "/admin/processes/%llu", (unsigned long long)pids[i]);
        struct answer d = get(target);
        T_EQ(d.status, 200);
        const char *key;
        json_t *v;
        json_object_foreach(l, key, v)
        {
            json_t *dv = json_object_get(d.json, key);
            T_ASSERT(dv != NULL);
            if (strcmp(key, "age_ms") == 0 || strcmp(key, "elapsed_ms") == 0 ||
                strcmp(key, "reductions") == 0 || strcmp(key, "memory") == 0)
                T_ASSERT(json_is_integer(dv));
            else
                T_ASSERT(json_equal(v, dv));
        }
        json_object_foreach(d.json, key, v)
        {
            T_ASSERT(json_object_get(l, key) != NULL || strcmp(key, "linked") == 0 ||
                     strcmp(key, "registered") == 0 || strcmp(key, "sys") == 0);
        }
        answer_done(&d);
    }
    json_t *l = find_pid(json_object_get(list.json, "processes"), odd);
    T_STREQ(jstr(l, "detail"), "q\"b\\c\x01"
                               "d \xc3\xa9 \xef\xbf\xbd end\x7f");
    /* Both answers escape by the gateway's one rule (linebuf.h): controls
     * and DEL as \u00XX, invalid bytes as \ufffd. */
    static const char escaped[] = "\"q\\\"b\\\\c\\u0001d \xc3\xa9 \\ufffd end\\u007f\"";
    T_ASSERT(strstr(list.raw, escaped) != NULL);
    char one[96];
    snprintf(one, sizeof one, "/admin/processes/%llu", (unsigned long long)odd);
    struct answer od = get(one);
    T_ASSERT(strstr(od.raw, escaped) != NULL);
    answer_done(&od);
    l = find_pid(json_object_get(list.json, "processes"), req);
    T_STREQ(jstr(l, "path"), "/caf\xc3\xa9");
    T_STREQ(jstr(l, "route"), "\"r\"");
    T_STREQ(jstr(l, "upstream_target"), "\xef\xbf\xbd");
    answer_done(&list);
    stop_waiter(odd);
    stop_waiter(req);
    T_EQ(rt_proc_stop(gs, RT_NORMAL, 5000, NULL), 0);
}

START_TEST(process_list_and_detail_show_the_same_fields_and_valid_json)
{
    t_run(body_list_detail_agree);
}
END_TEST

/* ---- one process --------------------------------------------------------------------- */

static void body_process_detail(void)
{
    rt_pid gs = 0;
    struct rt_start_opts so = {.name = "adm_counter", .debug = RT_DEBUG_STATISTICS | RT_DEBUG_LOG};
    T_EQ(rt_gen_server_start_link(&counter_ops, NULL, &so, &gs, NULL), 0);
    char target[128], pidtext[GW_ADMIN_PID_BUF];
    gw_admin_pid_format(gs, pidtext);
    /* the pid as it appears in a canonical path */
    snprintf(target, sizeof target, "/admin/processes/%%3C0.%u.%u%%3E",
             (unsigned)(gs & 0xffffffffu), (unsigned)(gs >> 32));
    struct answer a = get(target);
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "pid"), pidtext);
    T_STREQ(jstr(a.json, "name"), "adm_counter");
    T_STREQ(jstr(a.json, "kind"), "server");
    T_EQ(jint(a.json, "links"), 1);
    json_t *linked = json_object_get(a.json, "linked");
    T_EQ(json_array_size(linked), 1);
    char self[GW_ADMIN_PID_BUF];
    gw_admin_pid_format(rt_self(), self);
    T_STREQ(json_string_value(json_array_get(linked, 0)), self);
    json_t *sys = json_object_get(a.json, "sys");
    T_ASSERT(json_is_object(sys));
    T_STREQ(jstr(sys, "behaviour"), "gen_server");
    T_STREQ(jstr(sys, "module"), "counter");
    T_STREQ(jstr(sys, "status"), "running");
    T_ASSERT(json_is_false(json_object_get(sys, "suspended")));
    T_STREQ(jstr(sys, "state"), "count=42");
    T_ASSERT(json_is_object(json_object_get(sys, "statistics")));
    T_ASSERT(json_is_array(json_object_get(sys, "log")));
    answer_done(&a);

    /* Suspended shows as such. */
    T_EQ(rt_sys_suspend(gs, 1000), 0);
    snprintf(target, sizeof target, "/admin/processes/0.%u.%u", (unsigned)(gs & 0xffffffffu),
             (unsigned)(gs >> 32));
    a = get(target);
    T_STREQ(jstr(json_object_get(a.json, "sys"), "status"), "suspended");
    answer_done(&a);
    T_EQ(rt_sys_resume(gs, 1000), 0);

    /* A plain process: no sys section, and no waiting on it. */
    rt_pid w = spawn_waiter(NULL, RT_KIND_PROCESS, NULL);
    snprintf(target, sizeof target, "/admin/processes/%llu", (unsigned long long)w);
    uint64_t t0 = rt_now_ms();
    a = get(target);
    T_EQ(a.status, 200);
    T_ASSERT(json_is_null(json_object_get(a.json, "sys")));
    T_ASSERT(rt_now_ms() - t0 < 400);
    answer_done(&a);
    stop_waiter(w);

    /* Gone, malformed, unknown sub-resource. */
    a = get(target);
    expect_error(&a, 404, "no_such_process");
    answer_done(&a);
    a = get("/admin/processes/0.abc.1");
    expect_error(&a, 400, "bad_pid");
    answer_done(&a);
    snprintf(target, sizeof target, "/admin/processes/0.%u.%u/frobnicate",
             (unsigned)(gs & 0xffffffffu), (unsigned)(gs >> 32));
    a = call("POST", target, NULL, NULL);
    expect_error(&a, 404, "not_found");
    answer_done(&a);
    T_EQ(rt_proc_stop(gs, RT_NORMAL, 5000, NULL), 0);
}

START_TEST(process_detail_shows_gen_server_sys_status)
{
    t_run(body_process_detail);
}
END_TEST

/* A server busy in a callback cannot answer sys messages: the detail still
 * answers, within the sys timeout, without the behaviour's status. */
static void busy_cast(struct rt_msg *m, void *state, struct rt_gs_result *r)
{
    rt_sleep(1500);
}

static const struct rt_gen_server_ops busy_ops = {
    .name = "busy",
    .init = c_init,
    .handle_cast = busy_cast,
};

static void body_busy_server(void)
{
    rt_pid gs = 0;
    T_EQ(rt_gen_server_start_link(&busy_ops, NULL, NULL, &gs, NULL), 0);
    rt_gen_server_cast(gs, rt_msg_new(1, 0));
    rt_sleep(50);
    char target[96];
    snprintf(target, sizeof target, "/admin/processes/%llu", (unsigned long long)gs);
    uint64_t t0 = rt_now_ms();
    struct answer a = get(target);
    uint64_t took = rt_now_ms() - t0;
    T_EQ(a.status, 200);
    T_STREQ(jstr(json_object_get(a.json, "sys"), "error"), "timeout");
    T_ASSERT(took < 1200);
    answer_done(&a);
    /* Once free it answers again. */
    rt_sleep(1600);
    a = get(target);
    T_STREQ(jstr(json_object_get(a.json, "sys"), "behaviour"), "gen_server");
    answer_done(&a);
    T_EQ(rt_proc_stop(gs, RT_NORMAL, 5000, NULL), 0);
}

START_TEST(process_detail_of_a_busy_server_answers_within_the_sys_timeout)
{
    t_run(body_busy_server);
}
END_TEST

/* ---- kill ------------------------------------------------------------------------------- */

static void body_kill(void)
{
    char target[128];
    rt_pid w = spawn_waiter(NULL, RT_KIND_PROCESS, NULL);
    rt_ref mref = rt_monitor(w);
    snprintf(target, sizeof target, "/admin/processes/0.%u.%u/kill", (unsigned)(w & 0xffffffffu),
             (unsigned)(w >> 32));
    struct answer a = call("POST", target, NULL, "{\"reason\": \"fault_drill\"}");
    T_EQ(a.status, 200);
    T_ASSERT(json_is_true(json_object_get(a.json, "exited")));
    T_STREQ(jstr(a.json, "reason"), "fault_drill");
    T_STREQ(jstr(a.json, "exit_reason"), "fault_drill");
    answer_done(&a);
    struct rt_msg *down = rt_receive_ref(mref, 1000);
    T_ASSERT(down != NULL);
    T_STREQ(rt_atom_name((rt_atom)down->u64), "fault_drill");
    rt_msg_free(down);
    T_ASSERT(!rt_is_alive(w));

    /* No body: the default reason. */
    w = spawn_waiter(NULL, RT_KIND_PROCESS, NULL);
    mref = rt_monitor(w);
    snprintf(target, sizeof target, "/admin/processes/0.%u.%u/kill", (unsigned)(w & 0xffffffffu),
             (unsigned)(w >> 32));
    a = call("POST", target, NULL, NULL);
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "exit_reason"), "killed_by_admin");
    answer_done(&a);
    down = rt_receive_ref(mref, 1000);
    T_ASSERT(down != NULL);
    T_EQ(down->u64, rt_atom_intern("killed_by_admin"));
    rt_msg_free(down);

    /* Refused reasons; the process stays alive. */
    w = spawn_waiter(NULL, RT_KIND_PROCESS, NULL);
    snprintf(target, sizeof target, "/admin/processes/0.%u.%u/kill", (unsigned)(w & 0xffffffffu),
             (unsigned)(w >> 32));
    static const char *const bad[] = {
        "{\"reason\": \"Bad\"}",    "{\"reason\": \"\"}",
        "{\"reason\": \"normal\"}", "{\"reason\": \"abcdefghijklmnopqrstuvwxyzabcdefg\"}",
        "{\"reason\": 3}",          "not json"};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        a = call("POST", target, NULL, bad[b]);
        T_EQ(a.status, 400);
        answer_done(&a);
    }
    T_ASSERT(rt_is_alive(w));
    /* GET is the wrong method. */
    a = get(target);
    expect_error(&a, 405, "method_not_allowed");
    answer_done(&a);

    /* Distinct reasons are capped: the atom table cannot be filled. */
    int accepted = 0, refused = 0;
    for (int i = 0; i < GW_ADMIN_MAX_KILL_REASONS + 10; i++) {
        char body[64], r[16];
        int k = i;
        for (int j = 0; j < 3; j++, k /= 26)
            r[j] = (char)('a' + k % 26);
        r[3] = 0;
        snprintf(body, sizeof body, "{\"reason\": \"cap_%s\"}", r);
        rt_pid v = spawn_waiter(NULL, RT_KIND_PROCESS, NULL);
        snprintf(target, sizeof target, "/admin/processes/0.%u.%u/kill",
                 (unsigned)(v & 0xffffffffu), (unsigned)(v >> 32));
        a = call("POST", target, NULL, body);
        if (a.status == 200) {
            accepted++;
        } else {
            expect_error(&a, 400, "bad_reason");
            refused++;
            stop_waiter(v);
        }
        answer_done(&a);
    }
    /* "killed_by_admin" and "fault_drill" hold two of the slots. */
    T_EQ(accepted, GW_ADMIN_MAX_KILL_REASONS - 2);
    T_EQ(refused, 12);
    /* A reason already in use is still accepted. */
    snprintf(target, sizeof target, "/admin/processes/0.%u.%u/kill", (unsigned)(w & 0xffffffffu),
             (unsigned)(w >> 32));
    a = call("POST", target, NULL, "{\"reason\": \"fault_drill\"}");
    T_EQ(a.status, 200);
    answer_done(&a);
    a = call("POST", target, NULL, NULL);
    expect_error(&a, 404, "no_such_process");
    answer_done(&a);
    /* The process answering cannot kill itself mid-answer. */
    snprintf(target, sizeof target, "/admin/processes/%llu/kill", (unsigned long long)rt_self());
    a = call("POST", target, NULL, NULL);
    expect_error(&a, 409, "conflict");
    answer_done(&a);
}

START_TEST(kill_answers_and_the_process_dies_with_the_reason)
{
    t_run(body_kill);
}
END_TEST

/* ---- supervisors: restart and tree -------------------------------------------------------- */

static const struct rt_child_spec sub_children[] = {
    {.id = "b", .start = start_counter, .restart = RT_TRANSIENT, .shutdown = 1000},
};

static int sub_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    flags->strategy = RT_ONE_FOR_ONE;
    flags->intensity = 5;
    flags->period_s = 7;
    return rt_sup_init_children(init, sub_children, 1);
}

static int start_sub(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    return rt_sup_start_link(sub_init, NULL, NULL, out, reason);
}

static const struct rt_child_spec top_children[] = {
    {.id = "a", .start = start_counter, .restart = RT_PERMANENT, .shutdown = 2000},
    {.id = "sub",
     .start = start_sub,
     .restart = RT_PERMANENT,
     .shutdown = RT_SHUTDOWN_INFINITY,
     .type = RT_SUPERVISOR},
    {.id = "t",
     .start = start_counter,
     .restart = RT_TEMPORARY,
     .shutdown = RT_SHUTDOWN_BRUTAL_KILL},
};

static int top_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    flags->strategy = RT_ONE_FOR_ALL;
    flags->intensity = 3;
    flags->period_s = 10;
    return rt_sup_init_children(init, top_children, 3);
}

static rt_pid child_pid(rt_pid sup, const char *id)
{
    struct rt_child_info c;
    T_EQ(rt_sup_get_childspec(sup, id, &c), 0);
    return c.pid;
}

static void body_tree(void)
{
    rt_pid top = 0;
    struct rt_start_opts so = {.name = "adm_top_sup"};
    T_EQ(rt_sup_start_link(top_init, NULL, &so, &top, NULL), 0);
    gw.sup = top;
    struct answer a = get("/admin/supervisors");
    T_EQ(a.status, 200);
    json_t *t = json_object_get(a.json, "tree");
    char buf[GW_ADMIN_PID_BUF];
    gw_admin_pid_format(top, buf);
    T_STREQ(jstr(t, "pid"), buf);
    T_STREQ(jstr(t, "name"), "adm_top_sup");
    json_t *s = json_object_get(t, "supervisor");
    T_STREQ(jstr(s, "strategy"), "one_for_all");
    T_EQ(jint(s, "intensity"), 3);
    T_EQ(jint(s, "period_s"), 10);
    T_EQ(jint(s, "restarts"), 0);
    T_EQ(jint(s, "children_total"), 3);
    json_t *ch = json_object_get(t, "children");
    T_EQ(json_array_size(ch), 3);
    json_t *c0 = json_array_get(ch, 0), *c1 = json_array_get(ch, 1), *c2 = json_array_get(ch, 2);
    T_STREQ(jstr(c0, "id"), "a");
    T_STREQ(jstr(c0, "type"), "worker");
    T_STREQ(jstr(c0, "restart"), "permanent");
    T_STREQ(jstr(c0, "status"), "running");
    T_EQ(jint(c0, "shutdown"), 2000);
    gw_admin_pid_format(child_pid(top, "a"), buf);
    T_STREQ(jstr(c0, "pid"), buf);
    T_STREQ(jstr(c1, "id"), "sub");
    T_STREQ(jstr(c1, "type"), "supervisor");
    T_STREQ(jstr(c1, "shutdown"), "infinity");
    T_STREQ(jstr(json_object_get(c1, "supervisor"), "strategy"), "one_for_one");
    T_EQ(jint(json_object_get(c1, "supervisor"), "intensity"), 5);
    T_EQ(jint(json_object_get(c1, "supervisor"), "period_s"), 7);
    json_t *b = json_array_get(json_object_get(c1, "children"), 0);
    T_STREQ(jstr(b, "id"), "b");
    T_STREQ(jstr(b, "restart"), "transient");
    T_STREQ(jstr(c2, "restart"), "temporary");
    T_STREQ(jstr(c2, "shutdown"), "brutal_kill");
    answer_done(&a);

    /* Restart a supervised child: a new pid, the supervisor's books agree. */
    rt_pid old = child_pid(rt_whereis("adm_top_sup"), "a");
    char target[128];
    snprintf(target, sizeof target, "/admin/processes/0.%u.%u/restart",
             (unsigned)(old & 0xffffffffu), (unsigned)(old >> 32));
    a = call("POST", target, NULL, NULL);
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "id"), "a");
    rt_pid now = child_pid(top, "a");
    T_ASSERT(now != 0 && now != old);
    T_ASSERT(!rt_is_alive(old));
    gw_admin_pid_format(now, buf);
    T_STREQ(jstr(a.json, "new_pid"), buf);
    answer_done(&a);

    /* A child of the nested supervisor too. */
    rt_pid sub = child_pid(top, "sub");
    old = child_pid(sub, "b");
    snprintf(target, sizeof target, "/admin/processes/%llu/restart", (unsigned long long)old);
    a = call("POST", target, NULL, NULL);
    T_EQ(a.status, 200);
    T_ASSERT(child_pid(sub, "b") != old);
    answer_done(&a);

    /* Temporary child, unsupervised process: 409. */
    rt_pid tmp = child_pid(top, "t");
    snprintf(target, sizeof target, "/admin/processes/%llu/restart", (unsigned long long)tmp);
    a = call("POST", target, NULL, NULL);
    expect_error(&a, 409, "not_restartable");
    answer_done(&a);
    rt_pid w = spawn_waiter(NULL, RT_KIND_PROCESS, NULL);
    snprintf(target, sizeof target, "/admin/processes/%llu/restart", (unsigned long long)w);
    a = call("POST", target, NULL, NULL);
    expect_error(&a, 409, "not_supervised");
    answer_done(&a);
    stop_waiter(w);

    T_EQ(rt_proc_stop(top, RT_NORMAL, 5000, NULL), 0);
    gw.sup = 0;
    a = get("/admin/supervisors");
    expect_error(&a, 503, "not_started");
    answer_done(&a);
}

START_TEST(supervisors_tree_and_restart_of_a_supervised_child)
{
    t_run(body_tree);
}
END_TEST

/* The tree says in which order it lists children, and lists them so: in
 * start order, oldest first, a child added later coming last. */
static void body_tree_order(void)
{
    rt_pid top = 0;
    T_EQ(rt_sup_start_link(top_init, NULL, NULL, &top, NULL), 0);
    struct rt_child_spec late = {.id = "late", .start = start_counter, .shutdown = 1000};
    T_EQ(rt_sup_start_child(top, &late, NULL, NULL), 0);
    gw.sup = top;
    struct answer a = get("/admin/supervisors");
    T_EQ(a.status, 200);
    json_t *t = json_object_get(a.json, "tree");
    T_STREQ(jstr(json_object_get(t, "supervisor"), "children_order"), "start");
    json_t *ch = json_object_get(t, "children");
    T_EQ(json_array_size(ch), 4);
    const char *ids[] = {"a", "sub", "t", "late"};
    for (size_t i = 0; i < 4; i++)
        T_STREQ(jstr(json_array_get(ch, i), "id"), ids[i]);
    answer_done(&a);
    gw.sup = 0;
    T_EQ(rt_proc_stop(top, RT_NORMAL, 5000, NULL), 0);
}

START_TEST(supervisors_tree_states_that_children_are_listed_in_start_order)
{
    t_run(body_tree_order);
}
END_TEST

/* A supervisor with more children than the tree's first read has room for
 * lists them all, in order; one with more than GW_ADMIN_TREE_MAX_CHILDREN
 * lists that many and says it cut the rest. Supervisors' children are read
 * into blocks sized to them (procs.c, sup_children). */
static void tree_expect_many(size_t total)
{
    struct answer a = get("/admin/supervisors");
    T_EQ(a.status, 200);
    json_t *t = json_object_get(a.json, "tree");
    json_t *s = json_object_get(t, "supervisor");
    size_t shown = total < GW_ADMIN_TREE_MAX_CHILDREN ? total : GW_ADMIN_TREE_MAX_CHILDREN;
    T_EQ(jint(s, "children_total"), (json_int_t)total);
    T_EQ(json_is_true(json_object_get(s, "children_truncated")), total > shown);
    json_t *ch = json_object_get(t, "children");
    T_EQ(json_array_size(ch), shown);
    /* a, sub and t first, then m0, m1, ... */
    char id[24];
    for (size_t i = 3; i < shown; i++) {
        snprintf(id, sizeof id, "m%zu", i - 3);
        T_STREQ(jstr(json_array_get(ch, i), "id"), id);
    }
    answer_done(&a);
}

static void body_tree_many(void)
{
    rt_pid top = 0;
    T_EQ(rt_sup_start_link(top_init, NULL, NULL, &top, NULL), 0);
    gw.sup = top;
    size_t added = 0;
    char id[24];
    /* 40 fit the first read; 100 need a second with room for twice as
     * many; 1,005 a second with room for the most, which cuts them. */
    const size_t steps[] = {37, 97, GW_ADMIN_TREE_MAX_CHILDREN + 2};
    for (size_t k = 0; k < 3; k++) {
        for (; added < steps[k]; added++) {
            snprintf(id, sizeof id, "m%zu", added);
            struct rt_child_spec c = {.id = id, .start = start_counter, .shutdown = 1000};
            T_EQ(rt_sup_start_child(top, &c, NULL, NULL), 0);
        }
        tree_expect_many(3 + added);
    }
    gw.sup = 0;
    T_EQ(rt_proc_stop(top, RT_NORMAL, 30000, NULL), 0);
}

START_TEST(supervisors_tree_lists_many_children_and_cuts_past_the_most)
{
    t_run(body_tree_many);
}
END_TEST

/* A child that traps exits and ignores its supervisor's shutdown until a
 * MSG_STOP arrives; it tells `arg` (the test's pid) each exit signal it
 * ignores, so the test knows when its supervisor is busy waiting for it. */
static void stubborn(void *arg)
{
    rt_pid tell = *(const rt_pid *)arg;
    rt_trap_exit(true);
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        bool stop = m->type == MSG_STOP;
        if (m->type == RT_MSG_EXIT)
            rt_send(tell, rt_msg_new(MSG_PING, 0));
        rt_msg_free(m);
        if (stop)
            return;
    }
}

static int start_stubborn(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason)
{
    struct rt_spawn_opts so = {.link = true, .initial_call = "test:stubborn"};
    return rt_spawn(stubborn, arg, &so, out);
}

static rt_pid stubborn_tell;

static int slow_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    const struct rt_child_spec specs[] = {
        {.id = "a", .start = start_counter, .shutdown = 1000},
        {.id = "stubborn",
         .start = start_stubborn,
         .arg = &stubborn_tell,
         .arg_size = sizeof stubborn_tell,
         .shutdown = RT_SHUTDOWN_INFINITY},
    };
    return rt_sup_init_children(init, specs, 2);
}

static void terminator(void *arg)
{
    rt_sup_terminate_child(*(const rt_pid *)arg, "stubborn");
}

/* What an admin request answered, from the process that asked. */
struct far_answer {
    int status;
    uint64_t took_ms;
    char body[1024];
};
enum { MSG_ANSWER = 3 };
struct far_request {
    rt_pid reply_to;
    const char *method;
    char target[128];
};

static void far_asker(void *arg)
{
    struct far_request q = *(const struct far_request *)arg;
    free(arg);
    uint64_t t0 = rt_now_ms();
    struct answer a = call(q.method, q.target, NULL, NULL);
    struct far_answer fa = {.status = a.status, .took_ms = rt_now_ms() - t0};
    snprintf(fa.body, sizeof fa.body, "%s", a.raw ? a.raw : "");
    answer_done(&a);
    rt_send(q.reply_to, rt_msg_copy(MSG_ANSWER, &fa, sizeof fa));
}

static bool is_answer(const struct rt_msg *m, void *ctx)
{
    return m->type == MSG_ANSWER;
}

/* Asks from another process and waits at most `wait_ms` for the answer:
 * a handler that hangs fails the test instead of hanging it. NULL when
 * nothing came in time (the asker is then left to finish on its own). */
static struct rt_msg *ask_from_afar(const char *method, const char *target, int64_t wait_ms)
{
    struct far_request *q = calloc(1, sizeof *q);
    T_ASSERT(q != NULL);
    q->reply_to = rt_self();
    q->method = method;
    snprintf(q->target, sizeof q->target, "%s", target);
    rt_pid asker = 0;
    T_EQ(rt_spawn(far_asker, q, NULL, &asker), 0);
    return rt_receive_match(is_answer, NULL, wait_ms);
}

static bool is_ping(const struct rt_msg *m, void *ctx)
{
    return m->type == MSG_PING;
}

/* A supervisor stopping a child that ignores its shutdown (infinity)
 * answers no call until the child goes: the tree and restart answer 504
 * "timeout" naming it within GW_ADMIN_CALL_TIMEOUT_MS, and the tree
 * answers again once it is free. */
static void body_busy_supervisor(void)
{
    stubborn_tell = rt_self();
    rt_pid top = 0;
    struct rt_start_opts so = {.name = "adm_slow_sup"};
    T_EQ(rt_sup_start_link(slow_init, NULL, &so, &top, NULL), 0);
    gw.sup = top;
    rt_pid stub = child_pid(top, "stubborn"), a = child_pid(top, "a");
    await_waiting(&stub, 1);
    rt_pid term = 0;
    T_EQ(rt_spawn(terminator, &top, NULL, &term), 0);
    struct rt_msg *ping = rt_receive_match(is_ping, NULL, 10000);
    T_ASSERT(ping != NULL); /* the supervisor now waits for the stubborn child */
    rt_msg_free(ping);

    char pidbuf[GW_ADMIN_PID_BUF];
    gw_admin_pid_format(top, pidbuf);
    const int64_t wait_ms = GW_ADMIN_CALL_TIMEOUT_MS + 3000;
    struct rt_msg *tree = ask_from_afar("GET", "/admin/supervisors", wait_ms);
    char target[128];
    snprintf(target, sizeof target, "/admin/processes/%llu/restart", (unsigned long long)a);
    struct rt_msg *restart = ask_from_afar("POST", target, wait_ms);
    /* Free the supervisor before judging, so that a failure leaves nothing hanging. */
    rt_send(stub, rt_msg_new(MSG_STOP, 0));
    T_ASSERT(tree != NULL && restart != NULL);

    const struct far_answer *fa = (const struct far_answer *)tree->data;
    T_EQ(fa->status, 504);
    T_ASSERT(fa->took_ms >= GW_ADMIN_CALL_TIMEOUT_MS - 50);
    T_ASSERT(fa->took_ms < GW_ADMIN_CALL_TIMEOUT_MS + 1500);
    json_error_t err;
    json_t *j = json_loads(fa->body, 0, &err);
    T_STREQ(jstr(j, "error"), "timeout");
    json_t *d = json_object_get(j, "detail");
    T_STREQ(jstr(d, "process"), pidbuf);
    T_STREQ(jstr(d, "name"), "adm_slow_sup");
    T_STREQ(jstr(d, "call"), "describe");
    T_EQ(jint(d, "timeout_ms"), GW_ADMIN_CALL_TIMEOUT_MS);
    json_decref(j);

    fa = (const struct far_answer *)restart->data;
    T_EQ(fa->status, 504);
    T_ASSERT(fa->took_ms < GW_ADMIN_CALL_TIMEOUT_MS + 1500);
    j = json_loads(fa->body, 0, &err);
    T_STREQ(jstr(j, "error"), "timeout");
    d = json_object_get(j, "detail");
    T_STREQ(jstr(d, "process"), pidbuf);
    T_STREQ(jstr(d, "call"), "which_children");
    json_decref(j);
    rt_msg_free(tree);
    rt_msg_free(restart);

    /* Once the child is gone the supervisor answers again: the child that
     * was being stopped is stored, not running; "a" was never touched. */
    for (int k = 0; k < 10000 && rt_is_alive(term); k++)
        rt_sleep(1);
    T_ASSERT(!rt_is_alive(term));
    struct answer an = get("/admin/supervisors");
    T_EQ(an.status, 200);
    json_t *ch = json_object_get(json_object_get(an.json, "tree"), "children");
    T_STREQ(jstr(json_array_get(ch, 1), "status"), "undefined");
    T_EQ(child_pid(top, "a"), a);
    answer_done(&an);
    gw.sup = 0;
    T_EQ(rt_proc_stop(top, RT_NORMAL, 5000, NULL), 0);
}

START_TEST(supervisors_tree_and_restart_answer_timeout_while_a_supervisor_is_busy)
{
    t_run(body_busy_supervisor);
}
END_TEST

/* ---- shapes ----------------------------------------------------------------------------- */

static void body_shapes(void)
{
    struct answer a = get("/admin/nope");
    expect_error(&a, 404, "not_found");
    T_STREQ(jstr(json_object_get(a.json, "detail"), "path"), "/admin/nope");
    answer_done(&a);
    a = get("/admin/");
    expect_error(&a, 404, "not_found");
    T_ASSERT(jstr(json_object_get(a.json, "detail"), "note") != NULL);
    answer_done(&a);
    a = call("POST", "/admin/system", NULL, NULL);
    expect_error(&a, 405, "method_not_allowed");
    json_t *allow = json_object_get(json_object_get(a.json, "detail"), "allow");
    T_STREQ(json_string_value(json_array_get(allow, 0)), "GET");
    answer_done(&a);
    a = call("DELETE", "/admin/routes", NULL, NULL);
    expect_error(&a, 405, "method_not_allowed");
    answer_done(&a);
    a = call("GET", "/admin/routes/reload", NULL, NULL);
    expect_error(&a, 405, "method_not_allowed");
    answer_done(&a);
    a = call("HEAD", "/healthz", NULL, NULL);
    T_EQ(a.status, 200);
    answer_done(&a);
}

START_TEST(unknown_paths_404_and_wrong_methods_405_with_the_error_shape)
{
    t_run(body_shapes);
}
END_TEST

static void body_health_system(void)
{
    static struct gw_listener_config lc[1] = {
        {.name = "public", .address = {.text = "0.0.0.0:8080"}}};
    static struct gw_config cfg = {.listeners = lc, .nlisteners = 1};
    static struct gw_listener_stats stats[1];
    atomic_store(&stats[0].connections, 7);
    atomic_store(&stats[0].accepted, 9);
    atomic_store(&gw.requests_in_flight, 3);
    gw.cfg = &cfg;
    gw.listener_stats = stats;

    atomic_store(&gw.ready, 0);
    struct answer a = get("/readyz");
    expect_error(&a, 503, "not_ready");
    answer_done(&a);
    atomic_store(&gw.ready, 1);
    a = get("/readyz");
    T_EQ(a.status, 200);
    answer_done(&a);
    atomic_store(&gw.draining, 1);
    a = get("/readyz");
    T_EQ(a.status, 503);
    answer_done(&a);
    atomic_store(&gw.draining, 0);
    a = get("/healthz");
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "status"), "ok");
    answer_done(&a);

    a = get("/admin/system");
    T_EQ(a.status, 200);
    json_t *v = a.json;
    T_STREQ(jstr(v, "version"), TANDEM_VERSION);
    T_ASSERT(json_is_integer(json_object_get(v, "uptime_ms")));
    T_EQ(json_array_size(json_object_get(v, "schedulers")), 2);
    json_t *s0 = json_array_get(json_object_get(v, "schedulers"), 0);
    T_ASSERT(json_is_number(json_object_get(s0, "utilisation")));
    T_ASSERT(json_is_integer(json_object_get(s0, "run_queue")));
    json_t *pr = json_object_get(v, "processes");
    T_ASSERT(jint(pr, "count") >= 1);
    T_ASSERT(jint(pr, "limit") > jint(pr, "count"));
    T_ASSERT(jint(pr, "spawned") >= jint(pr, "count"));
    T_ASSERT(json_is_integer(json_object_get(pr, "exited")));
    T_ASSERT(jint(json_object_get(v, "memory"), "rss_bytes") > 0);
    json_t *l0 = json_array_get(json_object_get(v, "listeners"), 0);
    T_STREQ(jstr(l0, "name"), "public");
    T_STREQ(jstr(l0, "address"), "0.0.0.0:8080");
    T_EQ(jint(l0, "connections"), 7);
    T_EQ(jint(l0, "accepted"), 9);
    T_EQ(jint(json_object_get(v, "requests"), "in_flight"), 3);
    T_EQ(jint(json_object_get(v, "routes"), "version"), 4); /* the double's */
    T_EQ(jint(json_object_get(v, "routes"), "reloads_failed"), 2);
    answer_done(&a);
    gw.cfg = NULL;
    gw.listener_stats = NULL;
}

START_TEST(health_readiness_and_system_report_gateway_state)
{
    t_run(body_health_system);
}
END_TEST

/* ---- routes and upstreams: rendered from the modules' structs ---------------------------- */

/* A table serving, as the router would have published it. */
static struct route_holder *t_serving(void)
{
    static const char set[] = "{\"routes\": [{\"name\": \"users\", \"match\": "
                              "{\"path_prefix\": \"/users\", \"methods\": [\"GET\"]}, "
                              "\"upstream\": \"demo\"}]}";
    const char *const ups[] = {"demo"};
    struct route_builder *b = NULL;
    struct route_table *t = NULL;
    struct route_holder *h = NULL;
    struct jpos_diags d;
    jpos_diags_init(&d);
    T_EQ(route_builder_new(&b, ups, 1), 0);
    T_EQ(route_builder_add_text(b, "routes/a.json", set, strlen(set), &d), 0);
    T_EQ(route_builder_compile(b, &t, &d), 0);
    route_builder_free(b);
    jpos_diags_done(&d);
    T_EQ(route_holder_new(&h), 0);
    route_holder_publish(h, t);
    return h;
}

static void body_routes(void)
{
    /* The router's state comes as structs, the table from gw.routes; the
     * answer is rendered by the admin API, members in the order clients
     * have always seen. */
    static const char want_status[] =
        "{\"version\":1,\"count\":1,\"files\":1,\"routes_dir\":null,\"routes\":[{\"name\":"
        "\"users\",\"match\":{\"path_prefix\":\"/users\",\"methods\":[\"GET\"]},\"file\":"
        "\"routes/a.json\",\"line\":1,\"column\":13,\"upstream\":\"demo\"}],\"versions\":[{"
        "\"version\":4,\"routes\":2,\"source\":\"inotify\",\"published_at\":"
        "\"2026-01-02T03:04:05.678Z\",\"current\":true},{\"version\":3,\"routes\":1,"
        "\"source\":\"config\",\"published_at\":\"2026-01-02T03:00:00.000Z\",\"current\":"
        "false}],\"last_reload\":{\"outcome\":\"ok\",\"version\":4,\"routes\":2,\"errors\":"
        "[],\"warnings\":[],\"time\":\"2026-01-02T03:04:05.600Z\",\"source\":\"inotify\","
        "\"duration_ms\":1.5},\"reloads_ok\":7,\"reloads_failed\":2,\"retired\":1}\n";
    gw.routes = t_serving();
    struct answer a = get("/admin/routes");
    T_EQ(a.status, 200);
    T_STREQ(a.raw, want_status);
    answer_done(&a);
    route_holder_free(gw.routes);
    gw.routes = NULL;

    static const char want_refused[] =
        "{\"error\":\"routes_refused\",\"outcome\":\"error\",\"version\":4,\"routes\":2,"
        "\"errors\":[{\"file\":\"routes/a.json\",\"line\":3,\"column\":7,\"path\":"
        "\"$.routes[0]\",\"message\":\"unknown upstream \\\"nope\\\"\"}],\"warnings\":[{"
        "\"file\":\"routes/a.json\",\"line\":9,\"column\":1,\"path\":\"$.routes[1]\","
        "\"message\":\"shadowed by \\\"users\\\"\"}],\"detail\":null}\n";
    a = call("POST", "/admin/routes/reload", NULL, NULL);
    T_EQ(a.status, 422);
    T_STREQ(a.raw, want_refused);
    answer_done(&a);

    a = call("PUT", "/admin/routes", NULL, "{\"routes\": []}");
    T_EQ(a.status, 200);
    T_EQ(jint(a.json, "version"), 5);
    T_ASSERT(strcmp(t_double_replaced, "{\"routes\": []}") == 0);
    answer_done(&a);

    a = call("POST", "/admin/routes/validate", NULL, "bad");
    T_EQ(a.status, 422);
    T_STREQ(jstr(json_array_get(json_object_get(a.json, "errors"), 0), "message"), "not JSON");
    answer_done(&a);
    /* A router call past its deadline: 504 "timeout" naming the router. */
    a = call("POST", "/admin/routes/validate", NULL, "slow");
    expect_error(&a, 504, "timeout");
    T_STREQ(jstr(json_object_get(a.json, "detail"), "name"), "router");
    T_STREQ(jstr(json_object_get(a.json, "detail"), "call"), "validate");
    T_EQ(jint(json_object_get(a.json, "detail"), "timeout_ms"), GW_ROUTER_CALL_TIMEOUT_MS);
    answer_done(&a);
    a = call("POST", "/admin/routes/validate", NULL, "{}");
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "outcome"), "ok");
    answer_done(&a);

    a = call("POST", "/admin/routes/rollback", NULL, "{\"version\": 3}");
    T_EQ(a.status, 200);
    T_EQ(t_double_rollback, 3);
    T_EQ(jint(a.json, "version"), 3);
    answer_done(&a);
    a = call("POST", "/admin/routes/rollback", NULL, "{\"version\": 99}");
    expect_error(&a, 404, "version_not_found");
    answer_done(&a);
    static const char *const bad[] = {"", "{}", "{\"version\": \"3\"}", "{\"version\": 0}", "[3]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a = call("POST", "/admin/routes/rollback", NULL, bad[i]);
        expect_error(&a, 400, "bad_request");
        answer_done(&a);
    }

    /* The pools' description comes as structs; the answer is rendered
     * here, field for field in the order clients have always seen. */
    static const char want[] =
        "{\"upstreams\":[{\"name\":\"demo\",\"balance\":\"least_conn\","
        "\"active_health\":false,\"targets\":[{\"address\":\"127.0.0.1:9000\","
        "\"weight\":1,\"healthy\":true,\"ejected_until_ms\":0,"
        "\"consecutive_failures\":0,\"active\":2,\"idle\":3,\"requests\":10,"
        "\"failures\":0,\"ejections\":0,\"last_error\":null},"
        "{\"address\":\"127.0.0.1:9001\",\"weight\":1,\"healthy\":false,"
        "\"ejected_until_ms\":123,\"consecutive_failures\":5,\"active\":0,"
        "\"idle\":0,\"requests\":4,\"failures\":5,\"ejections\":1,"
        "\"last_error\":\"connect: \\\"refused\\\"\"}]}]}\n";
    a = get("/admin/upstreams");
    T_EQ(a.status, 200);
    T_STREQ(a.raw, want);
    answer_done(&a);
}

START_TEST(routes_and_upstreams_answers_render_the_modules_structs)
{
    t_run(body_routes);
}
END_TEST

static void body_route_version(void)
{
    /* A kept version is rendered with its own table's routes, in the shape
     * of GET /admin/routes' routes, whatever table serves now. */
    static const char want[] =
        "{\"version\":3,\"source\":\"config\",\"published_at\":\"2026-01-02T03:00:00.000Z\","
        "\"current\":false,\"count\":1,\"routes\":[{\"name\":\"users\",\"match\":{"
        "\"path_prefix\":\"/users\",\"methods\":[\"GET\"]},\"file\":\"routes/a.json\","
        "\"line\":1,\"column\":13,\"upstream\":\"demo\"}]}\n";
    struct route_holder *h = t_serving();
    t_double_kept_table = (struct route_table *)route_holder_acquire(h);
    struct answer a = get("/admin/routes/versions/3");
    T_EQ(a.status, 200);
    T_STREQ(a.raw, want);
    answer_done(&a);
    a = get("/admin/routes/versions/4");
    expect_error(&a, 404, "version_not_found");
    T_EQ(jint(json_object_get(a.json, "detail"), "version"), 4);
    answer_done(&a);
    a = get("/admin/routes/versions/9");
    expect_error(&a, 504, "timeout");
    T_STREQ(jstr(json_object_get(a.json, "detail"), "name"), "router");
    answer_done(&a);
    static const char *const bad[] = {
        "0", "03", "-3", "+3", "3x", "x", "3.0", "%33", "99999999999999999999", "3/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char target[128];
        snprintf(target, sizeof target, "/admin/routes/versions/%s", bad[i]);
        a = get(target);
        expect_error(&a, 400, "bad_version");
        answer_done(&a);
    }
    a = call("POST", "/admin/routes/versions/3", NULL, "");
    T_EQ(a.status, 405);
    answer_done(&a);
    a = get("/admin/routes/versions/");
    expect_error(&a, 404, "not_found");
    answer_done(&a);
    route_table_release(t_double_kept_table);
    t_double_kept_table = NULL;
    route_holder_free(h);
}

START_TEST(a_kept_route_version_is_served_with_its_routes)
{
    t_run(body_route_version);
}
END_TEST

/* ---- TLS: rendered from the module's structs ------------------------------------------------ */

static void body_tls(void)
{
    /* Every certificate with where it came from, the reload record with
     * the file and the reason, and the handshake counters. */
    struct answer a = get("/admin/tls");
    T_EQ(a.status, 200);
    json_t *l = json_array_get(json_object_get(a.json, "listeners"), 0);
    T_STREQ(jstr(l, "name"), "secure");
    T_STREQ(jstr(l, "address"), "127.0.0.1:8443");
    T_STREQ(jstr(l, "loaded_at"), "2026-01-02T03:00:00.000Z");
    T_STREQ(jstr(l, "loaded_by"), "start");
    T_EQ(jint(l, "reloads_ok"), 0);
    T_EQ(jint(l, "reloads_failed"), 1);
    json_t *last = json_object_get(l, "last_reload");
    T_STREQ(jstr(last, "outcome"), "error");
    T_STREQ(jstr(last, "file"), "/etc/tandem/api.pem");
    T_STREQ(jstr(last, "reason"), "the certificate has expired");
    T_STREQ(jstr(last, "source"), "inotify");
    T_STREQ(jstr(last, "time"), "2026-01-02T03:04:05.678Z");
    json_t *c = json_array_get(json_object_get(l, "certificates"), 0);
    T_STREQ(jstr(c, "subject"), "CN=api.example.com");
    T_STREQ(jstr(c, "issuer"), "CN=Test CA");
    T_EQ(json_array_size(json_object_get(c, "names")), 2);
    T_STREQ(json_string_value(json_array_get(json_object_get(c, "names"), 1)), "*.example.com");
    T_EQ(strlen(jstr(c, "fingerprint")), 64);
    T_STREQ(jstr(c, "not_before"), "2026-01-01T00:00:00Z");
    T_ASSERT(jint(c, "expires_in_s") > T_TLS_LEFT_S - 60 &&
             jint(c, "expires_in_s") <= T_TLS_LEFT_S);
    T_STREQ(jstr(c, "key_type"), "EC P-256");
    T_STREQ(jstr(c, "cert_file"), "/etc/tandem/api.pem");
    T_STREQ(jstr(c, "key_file"), "/etc/tandem/api.key");
    json_t *srv = json_object_get(json_object_get(a.json, "handshakes"), "server");
    T_EQ(jint(srv, "handshakes_full"), 5);
    T_EQ(jint(srv, "handshakes_resumed"), 2);
    T_EQ(jint(json_object_get(srv, "failures"), "plaintext"), 3);
    answer_done(&a);

    /* A refused reload: 422 with the listener, the file and the reason. */
    a = call("POST", "/admin/tls/reload", NULL, NULL);
    expect_error(&a, 422, "tls_reload_refused");
    T_STREQ(jstr(a.json, "outcome"), "error");
    l = json_array_get(json_object_get(a.json, "listeners"), 0);
    T_STREQ(jstr(l, "listener"), "secure");
    T_STREQ(jstr(l, "outcome"), "error");
    T_STREQ(jstr(l, "file"), "/etc/tandem/api.key");
    T_STREQ(jstr(l, "reason"), "the key does not match the certificate");
    answer_done(&a);
    a = call("POST", "/admin/tls/reload?listener=nope", NULL, NULL);
    expect_error(&a, 404, "no_tls_listener");
    answer_done(&a);
    a = get("/admin/tls/reload");
    expect_error(&a, 405, "method_not_allowed");
    answer_done(&a);
    a = call("POST", "/admin/tls", NULL, NULL);
    expect_error(&a, 405, "method_not_allowed");
    answer_done(&a);
    /* Like every endpoint but the probes: the token first. */
    gw.admin_token = "s3cret";
    a = call("GET", "/admin/tls", "Bearer wrong", NULL);
    expect_error(&a, 401, "unauthorized");
    answer_done(&a);
    a = call("POST", "/admin/tls/reload", NULL, NULL);
    expect_error(&a, 401, "unauthorized");
    answer_done(&a);
    gw.admin_token = NULL;
}

START_TEST(tls_answers_list_certificates_reload_record_and_counters)
{
    t_run(body_tls);
}
END_TEST

/* ---- browsers are kept out ------------------------------------------------------------------ */

static bool host_ok(const struct gw_admin_site *site, const char *host)
{
    return gw_admin_host_allowed(site, host, strlen(host));
}

START_TEST(host_rule_accepts_the_listener_own_names_and_nothing_else)
{
    /* Loopback, no token: its address, localhost, loopback literals, with
     * its port. */
    struct gw_admin_site lo = {.host = "127.0.0.1", .port = 9901, .loopback = true};
    static const char *const lo_ok[] = {
        "127.0.0.1:9901", "localhost:9901", "LocalHost:9901",         "[::1]:9901",
        "127.0.0.2:9901", "[0:0::1]:9901",  "[::ffff:127.0.0.1]:9901"};
    for (size_t i = 0; i < sizeof lo_ok / sizeof lo_ok[0]; i++)
        ck_assert_msg(host_ok(&lo, lo_ok[i]), "%s refused", lo_ok[i]);
    static const char *const lo_bad[] = {"attacker.example:9901",
                                         "evil.test",
                                         "evil.test:9901",
                                         "localhost:9902",
                                         "localhost",
                                         "127.0.0.1",
                                         "127.0.0.1:80",
                                         "10.0.0.1:9901",
                                         "[::2]:9901",
                                         "0x7f.1:9901",
                                         "127.0.0.1.nip.io:9901",
                                         "localhost.:9901",
                                         "",
                                         ":9901",
                                         "localhost:9901:1",
                                         "localhost:0",
                                         "localhost:99010",
                                         "local host:9901",
                                         "[::1:9901",
                                         "user@localhost:9901"};
    for (size_t i = 0; i < sizeof lo_bad / sizeof lo_bad[0]; i++)
        ck_assert_msg(!host_ok(&lo, lo_bad[i]), "%s accepted", lo_bad[i]);

    /* Configured by name, plus allowed_hosts (any port, or one port). */
    struct gw_hostport allowed[2];
    ck_assert_int_eq(gw_hostport_parse("Admin.Example.com", 17, &allowed[0]), 0);
    ck_assert_int_eq(gw_hostport_parse("tunnel.test:19901", 17, &allowed[1]), 0);
    struct gw_admin_site named = {.host = "localhost",
                                  .port = 9901,
                                  .loopback = true,
                                  .allowed_hosts = allowed,
                                  .nallowed_hosts = 2};
    ck_assert(host_ok(&named, "admin.example.com"));
    ck_assert(host_ok(&named, "ADMIN.EXAMPLE.COM:443"));
    ck_assert(host_ok(&named, "tunnel.test:19901"));
    ck_assert(host_ok(&named, "localhost:9901"));
    ck_assert(!host_ok(&named, "tunnel.test:19902"));
    ck_assert(!host_ok(&named, "tunnel.test"));
    ck_assert(!host_ok(&named, "example.com:9901"));
    ck_assert(!host_ok(&named, "xadmin.example.com"));

    /* All addresses, with a token (the container): any IP literal on any
     * port (docker -p publishes 9901 elsewhere), names only by the rules. */
    struct gw_admin_site any = {.host = "0.0.0.0", .port = 9901, .loopback = false};
    ck_assert(host_ok(&any, "127.0.0.1:19901"));
    ck_assert(host_ok(&any, "10.1.2.3"));
    ck_assert(host_ok(&any, "[::1]:1"));
    ck_assert(host_ok(&any, "localhost:9901"));
    ck_assert(!host_ok(&any, "localhost:19901"));
    ck_assert(!host_ok(&any, "attacker.example:9901"));
    ck_assert(!host_ok(&any, "evil.test"));

    /* Not bound yet: nothing. */
    struct gw_admin_site none = {.host = "127.0.0.1", .port = 0, .loopback = true};
    ck_assert(!host_ok(&none, "127.0.0.1:9901"));
    ck_assert(!host_ok(&none, "127.0.0.1"));
}
END_TEST

/* Exactly `depth` nested arrays. */
static char *nested(size_t depth)
{
    char *b = malloc(2 * depth + 1);
    memset(b, '[', depth);
    memset(b + depth, ']', depth);
    b[2 * depth] = 0;
    return b;
}

static void body_browser_guards(void)
{
    static const char *const paths[] = {"/healthz", "/admin/system", "/admin/routes"};
    /* DNS rebinding: the page's own name arrives as Host. */
    for (size_t i = 0; i < 3; i++) {
        struct answer a = call_fields("GET", paths[i], "Host: attacker.example:9901\r\n", NULL);
        expect_error(&a, 421, "misdirected_request");
        answer_done(&a);
    }
    memset(t_double_replaced, 0, sizeof t_double_replaced);
    struct answer a =
        call_fields("PUT", "/admin/routes", "Host: evil.test\r\nContent-Type: application/json\r\n",
                    "{\"routes\": []}");
    expect_error(&a, 421, "misdirected_request");
    T_EQ(t_double_replaced[0], 0); /* the router never saw it */
    answer_done(&a);
    /* Before the token: a foreign page learns nothing from a 401. */
    gw.admin_token = "s3cret-token";
    a = call_fields("GET", "/admin/system", "Host: evil.test:9901\r\n", NULL);
    expect_error(&a, 421, "misdirected_request");
    answer_done(&a);
    gw.admin_token = NULL;

    /* Cross-site: a foreign Origin or Sec-Fetch-Site, on GET as on POST. */
    static const char *const cross[] = {
        "Origin: http://evil.example\r\n",
        "Origin: null\r\n",
        "Origin: http://127.0.0.1:9902\r\n",
        "Origin: https://127.0.0.1:9901\r\n",
        "Origin: http://localhost:9901\r\n", /* not the origin of 127.0.0.1:9901 */
        "Origin: http://127.0.0.1:9901\r\nOrigin: http://127.0.0.1:9901\r\n",
        "Sec-Fetch-Site: cross-site\r\n",
        "Sec-Fetch-Site: same-site\r\n",
    };
    for (size_t i = 0; i < sizeof cross / sizeof cross[0]; i++) {
        char fields[256];
        snprintf(fields, sizeof fields, "Host: " T_ADMIN_HOST "\r\n%s", cross[i]);
        a = call_fields("GET", "/admin/system", fields, NULL);
        expect_error(&a, 403, "cross_origin");
        answer_done(&a);
        a = call_fields("POST", "/admin/routes/reload", fields, NULL);
        expect_error(&a, 403, "cross_origin");
        answer_done(&a);
    }
    /* The listener's own page and direct navigation pass. */
    static const char *const own[] = {
        "Origin: http://127.0.0.1:9901\r\n",
        "Origin: HTTP://127.0.0.1:9901\r\nSec-Fetch-Site: same-origin\r\n",
        "Sec-Fetch-Site: none\r\n",
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        char fields[256];
        snprintf(fields, sizeof fields, "Host: " T_ADMIN_HOST "\r\n%s", own[i]);
        a = call_fields("GET", "/admin/system", fields, NULL);
        T_EQ(a.status, 200);
        answer_done(&a);
    }

    /* A body is JSON said so: a form's text/plain is what a page can send
     * without asking first. */
    static const char *const types[] = {
        "", "Content-Type: text/plain\r\n", "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: application/jsonx\r\n", "Content-Type: multipart/form-data; boundary=x\r\n"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char fields[256];
        snprintf(fields, sizeof fields, "Host: " T_ADMIN_HOST "\r\n%s", types[i]);
        a = call_fields("POST", "/admin/routes/rollback", fields, "{\"version\": 3}");
        expect_error(&a, 415, "unsupported_media_type");
        answer_done(&a);
    }
    t_double_rollback = 0;
    a = call_fields("POST", "/admin/routes/rollback",
                    "Host: " T_ADMIN_HOST "\r\nContent-Type: Application/JSON; charset=utf-8\r\n",
                    "{\"version\": 3}");
    T_EQ(a.status, 200);
    T_EQ(t_double_rollback, 3);
    answer_done(&a);

    /* Nesting: refused before any parser, wherever a body goes. */
    char *deep = nested(3000);
    static const char *const bodies[][2] = {{"POST", "/admin/routes/rollback"},
                                            {"POST", "/admin/processes/<0.1.1>/kill"},
                                            {"PUT", "/admin/routes"},
                                            {"POST", "/admin/routes/validate"}};
    for (size_t i = 0; i < 4; i++) {
        a = call(bodies[i][0], bodies[i][1], NULL, deep);
        expect_error(&a, 400, "json_too_deep");
        json_t *d = json_object_get(a.json, "detail");
        T_EQ(jint(d, "limit"), GW_ADMIN_MAX_JSON_DEPTH);
        T_EQ(jint(d, "line"), 1);
        T_EQ(jint(d, "column"), GW_ADMIN_MAX_JSON_DEPTH + 1);
        answer_done(&a);
    }
    free(deep);
    deep = nested(GW_ADMIN_MAX_JSON_DEPTH); /* the limit itself parses */
    a = call("POST", "/admin/routes/rollback", NULL, deep);
    expect_error(&a, 400, "bad_request");
    answer_done(&a);
    free(deep);
    a = call("POST", "/admin/routes/rollback", NULL,
             "{\"version\": 3, \"x\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
             "[[[[[[[[[[[[[[[[[[[[\"}");
    T_EQ(a.status, 200); /* brackets in a string are text */
    answer_done(&a);
}

START_TEST(foreign_host_origin_content_type_and_deep_json_are_refused)
{
    t_run(body_browser_guards);
}
END_TEST

/* Behind a TLS proxy named in allowed_hosts, a browser's page is https. */
static void body_https_origin(void)
{
    struct gw_hostport allowed[1];
    T_EQ(gw_hostport_parse("admin.example.com", 17, &allowed[0]), 0);
    struct gw_admin_site saved = gw.admin_site;
    gw.admin_site.allowed_hosts = allowed;
    gw.admin_site.nallowed_hosts = 1;
    static const char *const own[] = {
        "Host: admin.example.com\r\nOrigin: https://admin.example.com\r\n",
        "Host: admin.example.com\r\nOrigin: HTTPS://Admin.Example.com:443\r\n",
        "Host: admin.example.com:8443\r\nOrigin: https://admin.example.com:8443\r\n",
        "Host: admin.example.com\r\nOrigin: http://admin.example.com\r\n",
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        struct answer a = call_fields("GET", "/admin/system", own[i], NULL);
        T_EQ(a.status, 200);
        answer_done(&a);
        char fields[256];
        snprintf(fields, sizeof fields, "%sContent-Type: application/json\r\n", own[i]);
        a = call_fields("POST", "/admin/routes/rollback", fields, "{\"version\": 3}");
        T_EQ(a.status, 200);
        answer_done(&a);
    }
    static const char *const foreign[] = {
        /* https only for a name of allowed_hosts, and only its own */
        "Host: " T_ADMIN_HOST "\r\nOrigin: https://" T_ADMIN_HOST "\r\n",
        "Host: localhost:9901\r\nOrigin: https://localhost:9901\r\n",
        "Host: admin.example.com\r\nOrigin: https://admin.example.com:8443\r\n",
        "Host: admin.example.com\r\nOrigin: https://evil.example\r\n",
        "Host: admin.example.com\r\nOrigin: https://admin.example.com.evil.example\r\n",
        "Host: admin.example.com\r\nOrigin: ftp://admin.example.com\r\n",
        "Host: admin.example.com\r\nOrigin: https:/admin.example.com\r\n",
    };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        struct answer a = call_fields("POST", "/admin/routes/reload", foreign[i], NULL);
        expect_error(&a, 403, "cross_origin");
        answer_done(&a);
    }
    gw.admin_site = saved;
}

START_TEST(https_origin_is_accepted_for_a_host_named_in_allowed_hosts)
{
    t_run(body_https_origin);
}
END_TEST

/* A page that rebinds a name cannot know the token: with the valid token
 * the Host may be any name; every other check still applies. */
static void body_token_and_host(void)
{
    gw.admin_token = "s3cret-token";
    static const char *const hosts[] = {"prometheus-svc:9901", "tandem.monitoring.svc",
                                        "evil.test"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        char fields[512];
        snprintf(fields, sizeof fields, "Host: %s\r\nAuthorization: Bearer s3cret-token\r\n",
                 hosts[i]);
        struct answer a = call_fields("GET", "/metrics", fields, NULL);
        T_EQ(a.status, 200);
        answer_done(&a);
        /* Without it, or with another, the Host rule decides first. */
        snprintf(fields, sizeof fields, "Host: %s\r\n", hosts[i]);
        a = call_fields("GET", "/admin/system", fields, NULL);
        expect_error(&a, 421, "misdirected_request");
        answer_done(&a);
        snprintf(fields, sizeof fields, "Host: %s\r\nAuthorization: Bearer s3cret-tokeN\r\n",
                 hosts[i]);
        a = call_fields("GET", "/admin/system", fields, NULL);
        expect_error(&a, 421, "misdirected_request");
        answer_done(&a);
        /* Origin, Sec-Fetch-Site and Content-Type still apply. */
        snprintf(
            fields, sizeof fields,
            "Host: %s\r\nAuthorization: Bearer s3cret-token\r\nOrigin: http://evil.example\r\n",
            hosts[i]);
        a = call_fields("GET", "/admin/system", fields, NULL);
        expect_error(&a, 403, "cross_origin");
        answer_done(&a);
        snprintf(fields, sizeof fields,
                 "Host: %s\r\nAuthorization: Bearer s3cret-token\r\nSec-Fetch-Site: cross-site\r\n",
                 hosts[i]);
        a = call_fields("GET", "/admin/system", fields, NULL);
        expect_error(&a, 403, "cross_origin");
        answer_done(&a);
        snprintf(fields, sizeof fields,
                 "Host: %s\r\nAuthorization: Bearer s3cret-token\r\nContent-Type: text/plain\r\n",
                 hosts[i]);
        a = call_fields("POST", "/admin/routes/rollback", fields, "{\"version\": 3}");
        expect_error(&a, 415, "unsupported_media_type");
        answer_done(&a);
    }
    /* Without a token configured, no Authorization field lifts the rule. */
    gw.admin_token = NULL;
    struct answer a =
        call_fields("GET", "/admin/system", "Host: evil.test\r\nAuthorization: Bearer x\r\n", NULL);
    expect_error(&a, 421, "misdirected_request");
    answer_done(&a);
}

START_TEST(valid_token_lifts_the_host_rule_and_nothing_else)
{
    t_run(body_token_and_host);
}
END_TEST

/* The head alone decides, before any byte of the body: a head announcing a
 * body it says is not JSON is refused; one announcing none is not asked. */
static void body_admit_head(void)
{
    static const struct {
        const char *fields;
        int status;
    } cases[] = {
        {"Host: evil.test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n", 421},
        {"Host: " T_ADMIN_HOST "\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\n", 403},
        {"Host: " T_ADMIN_HOST "\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n", 415},
        {"Host: " T_ADMIN_HOST "\r\nTransfer-Encoding: chunked\r\n", 415},
        {"Host: " T_ADMIN_HOST "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n", 0},
        {"Host: " T_ADMIN_HOST "\r\nContent-Length: 0\r\n", 0},
        {"Host: " T_ADMIN_HOST "\r\n", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "POST /admin/routes/validate HTTP/1.1\r\n%s\r\n",
                 cases[i].fields);
        struct gw_http_parser *p = NULL;
        T_EQ(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
        struct gw_http_event ev;
        size_t used = 0;
        T_EQ(gw_http_parser_feed(p, text, strlen(text), &used, &ev), 0);
        T_EQ(ev.type, GW_HTTP_EV_HEAD);
        struct gw_admin_request req = {.head = ev.head, .path = "/admin/routes/validate"};
        struct gw_admin_response resp = {0};
        bool ok = gw_admin_admit_head(&req, &resp);
        gw_http_head_free(ev.head);
        gw_http_parser_free(p);
        T_EQ(ok, cases[i].status == 0);
        T_EQ(resp.status, cases[i].status);
        free(resp.body);
    }
}

START_TEST(head_checks_decide_before_the_body)
{
    t_run(body_admit_head);
}
END_TEST

/* ---- policies and consumers --------------------------------------------------------------- */

/* sha256 of "foo", and a PBKDF2 record of "secret" (10000 iterations, salt
 * of 16 zero bytes): neither, nor any part, may appear in an answer. */
#define T_KEY_HEX "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
#define T_PBKDF2                                                                                   \
    "pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$"                                                \
    "yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MDE5vM="
#define T_HEADER_VALUE "gold-value-not-to-show"

static const char t_policies[] =
    "{\"policies\": [\n"
    "  {\"name\": \"only-alice\", \"type\": \"acl\", \"allow\": [\"alice\"]},\n"
    "  {\"name\": \"team/a\", \"type\": \"acl\", \"deny\": [\"bob\"]},\n"
    "  {\"name\": \"x/state\", \"type\": \"acl\", \"allow\": [\"bob\"]},\n"
    "  {\"name\": \"unused\", \"type\": \"acl\", \"allow\": [\"bob\"]},\n"
    "  {\"name\": \"per-route\", \"type\": \"rate_limit\", \"limit\": 5, \"window_s\": 60,"
    " \"by\": \"route\"}\n"
    "],\n"
    "\"consumers\": [\n"
    "  {\"name\": \"alice\", \"api_keys\": [\"sha256:" T_KEY_HEX "\"],\n"
    "   \"basic\": {\"username\": \"alice-user\", \"password\": \"" T_PBKDF2 "\"},\n"
    "   \"headers\": {\"x-tier\": \"" T_HEADER_VALUE "\"}},\n"
    "  {\"name\": \"bob\", \"api_keys\": "
    "[\"sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9\",\n"
    "   \"sha256:baa5a0964d3320fbc0c6a922140453c8513ea24ab8fd0577034804a967248096\"]},\n"
    "  {\"name\": \"carol\"}\n"
    "]}\n";

/* Three routes, two naming policies, published with the
 * set of t_policies as the router publishes a table. */
static struct route_holder *t_policy_serving(void)
{
    static const char routes[] =
        "{\"routes\": [\n"
        "{\"name\": \"a\", \"match\": {\"path\": \"/a\"}, \"upstream\": \"demo\", "
        "\"policies\": [\"only-alice\", \"team/a\"]},\n"
        "{\"name\": \"b\", \"match\": {\"path\": \"/b\"}, \"upstream\": \"demo\", \"policies\": "
        "[\"only-alice\"]},\n"
        "{\"name\": \"c\", \"match\": {\"path\": \"/c\"}, \"upstream\": \"demo\"}\n"
        "]}";
    const char *const ups[] = {"demo"};
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_pol_set *set = NULL;
    int r = gw_pol_set_load_text("policies/p.json", t_policies, strlen(t_policies), ".", &set, &d);
    if (r)
        jpos_diags_print(&d, stderr);
    ck_assert_int_eq(r, 0);
    struct route_builder *b = NULL;
    struct route_table *t = NULL;
    struct route_holder *h = NULL;
    ck_assert_int_eq(route_builder_new(&b, ups, 1), 0);
    ck_assert_int_eq(route_builder_set_policies(b, gw_pol_set_names(set), gw_pol_set_count(set)),
                     0);
    r = route_builder_add_text(b, "routes/a.json", routes, strlen(routes), &d);
    if (r == 0)
        r = route_builder_compile(b, &t, &d);
    if (r)
        jpos_diags_print(&d, stderr);
    ck_assert_int_eq(r, 0);
    route_builder_free(b);
    jpos_diags_done(&d);
    ck_assert_int_eq(gw__table_attach_sets(t, NULL, set), 0);
    ck_assert_int_eq(route_holder_new(&h), 0);
    route_holder_publish(h, t);
    return h;
}

/* The members of a JSON array of strings, joined by ",". */
static void joined(json_t *a, char *buf, size_t cap)
{
    size_t i, n = 0;
    json_t *x;
    buf[0] = 0;
    json_array_foreach(a, i, x)
    {
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", json_string_value(x));
        if (n >= cap)
            break;
    }
}

static void assert_no_credential(const char *raw)
{
    static const char *const secrets[] = {
        T_KEY_HEX,
        "2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE",
        "LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=", /* the same 32 bytes in base64 */
        T_PBKDF2,
        "yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MDE5vM=",
        "AAAAAAAAAAAAAAAAAAAAAA==",
        "pbkdf2",
        T_HEADER_VALUE,
        "alice-user"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        T_ASSERT(strstr(raw, secrets[i]) == NULL);
}

static void body_policies(void)
{
    gw_pol_stats_reset();
    gw_pol_count_denial("only-alice", "forbidden");
    gw_pol_count_denial("only-alice", "forbidden");
    gw_pol_count_denial("only-alice", "unauthenticated");
    gw_pol_count_denial("gone-from-the-set", "forbidden");
    struct answer a = get("/admin/policies");
    T_EQ(a.status, 200);
    assert_no_credential(a.raw);
    T_EQ(jint(a.json, "version"), 1);
    T_EQ(jint(a.json, "count"), 5);
    json_t *ps = json_object_get(a.json, "policies");
    T_EQ(json_array_size(ps), 5);
    json_t *p = json_array_get(ps, 0);
    T_STREQ(jstr(p, "name"), "only-alice");
    T_STREQ(jstr(p, "type"), "acl");
    T_STREQ(jstr(p, "file"), "policies/p.json");
    T_EQ(jint(p, "line"), 2);
    T_EQ(jint(p, "column"), 3);
    /* The kind's own description. */
    char buf[256];
    joined(json_object_get(json_object_get(p, "config"), "allow"), buf, sizeof buf);
    T_ASSERT(strcmp(buf, "alice") == 0);
    /* Routes by name, in table order. */
    joined(json_object_get(p, "routes"), buf, sizeof buf);
    T_ASSERT(strcmp(buf, "a,b") == 0);
    T_EQ(jint(p, "route_count"), 2);
    json_t *den = json_object_get(p, "denials");
    T_EQ(json_object_size(den), 2);
    T_EQ(jint(den, "forbidden"), 2);
    T_EQ(jint(den, "unauthenticated"), 1);
    p = json_array_get(ps, 1);
    T_STREQ(jstr(p, "name"), "team/a");
    joined(json_object_get(p, "routes"), buf, sizeof buf);
    T_ASSERT(strcmp(buf, "a") == 0);
    T_EQ(json_object_size(json_object_get(p, "denials")), 0);
    p = json_array_get(ps, 3);
    T_STREQ(jstr(p, "name"), "unused");
    T_EQ(json_array_size(json_object_get(p, "routes")), 0);
    T_EQ(jint(p, "route_count"), 0);
    answer_done(&a);

    /* Pages. */
    a = get("/admin/policies?offset=1&limit=2");
    T_EQ(a.status, 200);
    T_EQ(jint(a.json, "count"), 5);
    T_EQ(jint(a.json, "offset"), 1);
    T_EQ(jint(a.json, "limit"), 2);
    ps = json_object_get(a.json, "policies");
    T_EQ(json_array_size(ps), 2);
    T_STREQ(jstr(json_array_get(ps, 0), "name"), "team/a");
    T_STREQ(jstr(json_array_get(ps, 1), "name"), "x/state");
    answer_done(&a);
    a = get("/admin/policies?offset=99");
    T_EQ(a.status, 200);
    T_EQ(json_array_size(json_object_get(a.json, "policies")), 0);
    answer_done(&a);
    static const char *const bad_pages[] = {"?limit=0",   "?limit=10001", "?limit=x",
                                            "?offset=-1", "?offset=1x",   "?limit=%zz"};
    for (size_t i = 0; i < sizeof bad_pages / sizeof bad_pages[0]; i++) {
        char target[64];
        snprintf(target, sizeof target, "/admin/policies%s", bad_pages[i]);
        a = get(target);
        expect_error(&a, 400, "bad_request");
        answer_done(&a);
        snprintf(target, sizeof target, "/admin/consumers%s", bad_pages[i]);
        a = get(target);
        expect_error(&a, 400, "bad_request");
        answer_done(&a);
    }

    /* One definition; names holding '/' as written or percent-encoded. */
    a = get("/admin/policies/only-alice");
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "name"), "only-alice");
    T_EQ(jint(a.json, "route_count"), 2);
    answer_done(&a);
    a = get("/admin/policies/team/a");
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "name"), "team/a");
    answer_done(&a);
    a = get("/admin/policies/team%2Fa");
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "name"), "team/a");
    answer_done(&a);
    a = get("/admin/policies/x%2Fstate");
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "name"), "x/state");
    answer_done(&a);
    a = get("/admin/policies/nope");
    expect_error(&a, 404, "policy_not_found");
    T_STREQ(jstr(json_object_get(a.json, "detail"), "name"), "nope");
    answer_done(&a);
    a = get("/admin/policies/a%00b");
    expect_error(&a, 400, "bad_name");
    answer_done(&a);
    char longname[200];
    snprintf(longname, sizeof longname, "/admin/policies/%0130d", 0);
    a = get(longname);
    expect_error(&a, 400, "bad_name");
    answer_done(&a);
    a = call("POST", "/admin/policies/only-alice", NULL, NULL);
    expect_error(&a, 405, "method_not_allowed");
    answer_done(&a);
    a = call("DELETE", "/admin/policies", NULL, NULL);
    expect_error(&a, 405, "method_not_allowed");
    answer_done(&a);

    /* A state is a rate limit's: other kinds 409; a key is required. */
    a = get("/admin/policies/only-alice/state?key=alice");
    expect_error(&a, 409, "not_a_rate_limit");
    answer_done(&a);
    a = get("/admin/policies/only-alice/state");
    expect_error(&a, 400, "bad_request");
    answer_done(&a);
    a = get("/admin/policies/nope/state?key=k");
    expect_error(&a, 404, "policy_not_found");
    answer_done(&a);
    gw_pol_stats_reset();
}

/* GET /admin/policies/{name}/state: a rate limit's counts for a key, as
 * requests through the policy made them, read without counting. */
static void body_policy_state(void)
{
    const struct route_table *t = route_holder_acquire(gw.routes);
    const struct gw_pol_def *def = gw_pol_set_find(gw_pol_table_set(t), "per-route");
    T_ASSERT(def != NULL);
    struct answer a = get("/admin/policies/per-route/state?key=a");
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "policy"), "per-route");
    T_STREQ(jstr(a.json, "key"), "a");
    T_ASSERT(json_is_false(json_object_get(a.json, "present")));
    T_EQ(jint(a.json, "count"), 0);
    T_EQ(jint(a.json, "remaining"), 5);
    answer_done(&a);
    for (int i = 0; i < 3; i++) {
        struct gw_pol_req rq;
        memset(&rq, 0, sizeof rq);
        rq.route = route_table_route(t, 0); /* "a" */
        rq.table = t;
        rq.client = "127.0.0.1";
        T_EQ(def->kind->run(def->state, &rq), GW_POL_NEXT);
    }
    route_table_release(t);
    for (int i = 0; i < 2; i++) { /* reading twice counts nothing */
        a = get("/admin/policies/per-route/state?key=a");
        T_EQ(a.status, 200);
        T_ASSERT(json_is_true(json_object_get(a.json, "present")));
        T_EQ(jint(a.json, "count"), 3);
        T_EQ(jint(a.json, "remaining"), 2);
        T_EQ(jint(a.json, "limit"), 5);
        answer_done(&a);
    }
    a = get("/admin/policies/per-route/state?key=b");
    T_EQ(a.status, 200);
    T_ASSERT(json_is_false(json_object_get(a.json, "present")));
    answer_done(&a);
    /* A key is percent-decoded, and bounded. */
    a = get("/admin/policies/per-route/state?key=%61");
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "key"), "a");
    T_EQ(jint(a.json, "count"), 3);
    answer_done(&a);
    char *target = malloc(GW_ADMIN_POLICY_MAX_KEY + 64);
    T_ASSERT(target != NULL);
    int n = snprintf(target, 64, "/admin/policies/per-route/state?key=");
    memset(target + n, 'k', GW_ADMIN_POLICY_MAX_KEY + 1);
    target[n + GW_ADMIN_POLICY_MAX_KEY + 1] = 0;
    a = call_fields("GET", target, "Host: " T_ADMIN_HOST "\r\n", NULL);
    expect_error(&a, 400, "bad_request");
    answer_done(&a);
    free(target);
    a = get("/admin/policies/per-route/state?other=a");
    expect_error(&a, 400, "bad_request");
    answer_done(&a);
}

static void body_consumers(void)
{
    struct answer a = get("/admin/consumers");
    T_EQ(a.status, 200);
    assert_no_credential(a.raw);
    T_EQ(jint(a.json, "count"), 3);
    json_t *cs = json_object_get(a.json, "consumers");
    T_EQ(json_array_size(cs), 3);
    char buf[256];
    json_t *c = json_array_get(cs, 0);
    T_STREQ(jstr(c, "name"), "alice");
    T_STREQ(jstr(c, "file"), "policies/p.json");
    T_EQ(jint(c, "line"), 9);
    joined(json_object_get(c, "credentials"), buf, sizeof buf);
    T_ASSERT(strcmp(buf, "api_key,basic") == 0);
    T_EQ(jint(c, "api_keys"), 1);
    joined(json_object_get(c, "headers"), buf, sizeof buf);
    T_ASSERT(strcmp(buf, "x-tier") == 0);
    c = json_array_get(cs, 1);
    joined(json_object_get(c, "credentials"), buf, sizeof buf);
    T_ASSERT(strcmp(buf, "api_key") == 0);
    T_EQ(jint(c, "api_keys"), 2);
    c = json_array_get(cs, 2);
    T_STREQ(jstr(c, "name"), "carol");
    T_EQ(json_array_size(json_object_get(c, "credentials")), 0);
    answer_done(&a);
    a = get("/admin/consumers?offset=2&limit=5");
    T_EQ(a.status, 200);
    T_EQ(json_array_size(json_object_get(a.json, "consumers")), 1);
    answer_done(&a);
    /* Nothing else the admin API shows holds a credential either. */
    static const char *const others[] = {"/admin/policies", "/admin/policies/only-alice",
                                         "/admin/routes", "/metrics"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        a = get(others[i]);
        T_EQ(a.status, 200);
        assert_no_credential(a.raw);
        answer_done(&a);
    }
}

static void body_policies_token(void)
{
    gw.admin_token = "s3cret-token";
    static const char *const paths[] = {"/admin/policies", "/admin/policies/only-alice",
                                        "/admin/policies/only-alice/state?key=k",
                                        "/admin/consumers"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct answer a = get(paths[i]);
        expect_error(&a, 401, "unauthorized");
        answer_done(&a);
        a = call("GET", paths[i], "Bearer wrong", NULL);
        expect_error(&a, 401, "unauthorized");
        answer_done(&a);
        a = call("GET", paths[i], "Bearer s3cret-token", NULL);
        T_EQ(a.status, i == 2 ? 409 : 200); /* an acl has no state */
        answer_done(&a);
    }
    gw.admin_token = NULL;
}

static void body_no_policies(void)
{
    /* A table without a set, and no table at all: empty lists, 404s. */
    struct answer a = get("/admin/policies");
    T_EQ(a.status, 200);
    T_EQ(jint(a.json, "count"), 0);
    T_EQ(json_array_size(json_object_get(a.json, "policies")), 0);
    answer_done(&a);
    a = get("/admin/consumers");
    T_EQ(a.status, 200);
    T_EQ(jint(a.json, "count"), 0);
    answer_done(&a);
    a = get("/admin/policies/only-alice");
    expect_error(&a, 404, "policy_not_found");
    answer_done(&a);
}

START_TEST(policies_list_definitions_with_position_config_routes_and_denials)
{
    gw.routes = t_policy_serving();
    t_run(body_policies);
    route_holder_free(gw.routes);
    gw.routes = NULL;
}
END_TEST

START_TEST(consumers_show_credential_kinds_and_never_a_credential)
{
    gw.routes = t_policy_serving();
    t_run(body_consumers);
    route_holder_free(gw.routes);
    gw.routes = NULL;
}
END_TEST

START_TEST(policy_state_shows_a_rate_limit_key_without_counting)
{
    gw.routes = t_policy_serving();
    t_run(body_policy_state);
    route_holder_free(gw.routes);
    gw.routes = NULL;
}
END_TEST

START_TEST(policy_endpoints_need_the_token)
{
    gw.routes = t_policy_serving();
    t_run(body_policies_token);
    route_holder_free(gw.routes);
    gw.routes = NULL;
}
END_TEST

START_TEST(policy_endpoints_without_a_set_answer_empty_lists)
{
    t_run(body_no_policies);
    gw.routes = t_serving();
    t_run(body_no_policies);
    route_holder_free(gw.routes);
    gw.routes = NULL;
}
END_TEST

/* ---- metrics ------------------------------------------------------------------------------ */

/* The value of the sample `series` (name{labels} exactly as rendered), or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

/* Every line is a comment (# HELP / # TYPE) or `name{labels} value`. */
static bool well_formed(const char *text)
{
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            return false;
        if (*p == '#') {
            if (strncmp(p, "# HELP ", 7) != 0 && strncmp(p, "# TYPE ", 7) != 0)
                return false;
        } else {
            const char *q = p;
            while (q < nl && ((*q >= 'a' && *q <= 'z') || *q == '_'))
                q++;
            if (q == p)
                return false;
            if (*q == '{') {
                const char *close = q;
                while (close < nl && *close != '}') {
                    if (*close == '\\')
                        close++;
                    close++;
                }
                if (close >= nl)
                    return false;
                q = close + 1;
            }
            if (*q != ' ')
                return false;
            char *end = NULL;
            strtod(q + 1, &end);
            if (end != nl)
                return false;
        }
        p = nl + 1;
    }
    return true;
}

static void body_metrics(void)
{
    T_EQ(gw_metrics_init(), 0);
    gw_metrics_request("users", 200, 1500);     /* le 0.0025 */
    gw_metrics_request("users", 204, 700);      /* le 0.001 */
    gw_metrics_request("users", 503, 20000000); /* +Inf */
    gw_metrics_request("we\"ird\\name", 404, 10);
    gw_metrics_request(NULL, 404, 50);
    gw_metrics_upstream_error("demo", "127.0.0.1:9001");
    gw_metrics_upstream_error("demo", "127.0.0.1:9001");
    struct answer a = get("/metrics");
    T_EQ(a.status, 200);
    T_STREQ(a.content_type, "text/plain; version=0.0.4; charset=utf-8");
    const char *m = a.raw;
    T_ASSERT(well_formed(m));
    T_ASSERT(sample(m, "tandem_requests_total{route=\"users\",class=\"2xx\"}") == 2);
    T_ASSERT(sample(m, "tandem_requests_total{route=\"users\",class=\"5xx\"}") == 1);
    T_ASSERT(sample(m, "tandem_requests_total{route=\"_none\",class=\"4xx\"}") == 1);
    T_ASSERT(sample(m, "tandem_requests_total{route=\"we\\\"ird\\\\name\",class=\"4xx\"}") == 1);
    T_ASSERT(sample(m, "tandem_request_duration_seconds_bucket{route=\"users\",le=\"0.001\"}") ==
             1);
    T_ASSERT(sample(m, "tandem_request_duration_seconds_bucket{route=\"users\",le=\"0.0025\"}") ==
             2);
    T_ASSERT(sample(m, "tandem_request_duration_seconds_bucket{route=\"users\",le=\"10\"}") == 2);
    T_ASSERT(sample(m, "tandem_request_duration_seconds_bucket{route=\"users\",le=\"+Inf\"}") == 3);
    T_ASSERT(sample(m, "tandem_request_duration_seconds_count{route=\"users\"}") == 3);
    double sum = sample(m, "tandem_request_duration_seconds_sum{route=\"users\"}");
    T_ASSERT(sum > 20.0021 && sum < 20.0023);
    T_ASSERT(sample(m, "tandem_upstream_connect_errors_total{upstream=\"demo\",target=\"127.0.0.1:"
                       "9001\"}") == 2);
    T_ASSERT(sample(m, "tandem_upstream_target_healthy{upstream=\"demo\",target=\"127.0.0.1:"
                       "9000\"}") == 1);
    T_ASSERT(sample(m, "tandem_upstream_target_healthy{upstream=\"demo\",target=\"127.0.0.1:"
                       "9001\"}") == 0);
    T_ASSERT(sample(m, "tandem_route_reloads_total{outcome=\"ok\"}") == 7);
    T_ASSERT(sample(m, "tandem_route_reloads_total{outcome=\"failed\"}") == 2);
    T_ASSERT(sample(m, "tandem_processes") >= 1);
    T_ASSERT(sample(m, "tandem_scheduler_run_queue{scheduler=\"1\"}") >= 0);
    T_ASSERT(sample(m, "tandem_scheduler_utilisation{scheduler=\"0\"}") >= 0);
    T_ASSERT(sample(m, "tandem_memory_bytes{kind=\"rss\"}") > 0);
    T_ASSERT(strstr(m, "# TYPE tandem_request_duration_seconds histogram\n") != NULL);
    T_ASSERT(sample(m, "tandem_tls_handshakes_total{side=\"server\",resumed=\"false\"}") == 5);
    T_ASSERT(sample(m, "tandem_tls_handshakes_total{side=\"server\",resumed=\"true\"}") == 2);
    T_ASSERT(
        sample(m, "tandem_tls_handshake_failures_total{side=\"server\",reason=\"plaintext\"}") ==
        3);
    T_ASSERT(sample(m, "tandem_tls_handshake_failures_total{side=\"client\",reason=\"verify\"}") ==
             0);
    double left =
        sample(m, "tandem_tls_certificate_expiry_seconds{listener=\"secure\",name=\"api."
                  "example.com\",fingerprint=\"000000000000000000000000000000000000000000000"
                  "0000000000000000007\"}");
    T_ASSERT(left > T_TLS_LEFT_S - 60 && left <= T_TLS_LEFT_S);
    T_ASSERT(sample(m, "tandem_tls_reloads_total{listener=\"secure\",outcome=\"failed\"}") == 1);
    answer_done(&a);
    gw_metrics_done();
}

/* tandem_policy_denials_total: one series per (policy, reason) counted, a
 * reason outside the list under "other", label values escaped. */
static void body_policy_denials(void)
{
    gw_pol_stats_reset();
    gw_pol_count_denial("keys", "missing_credentials");
    gw_pol_count_denial("keys", "missing_credentials");
    gw_pol_count_denial("keys", "invalid_credentials");
    gw_pol_count_denial("per-consumer", "rate_limited");
    gw_pol_count_denial("per-consumer", "no such reason\n");
    gw_pol_count_denial("we\"ird\\name", "forbidden");
    struct answer a = get("/metrics");
    T_EQ(a.status, 200);
    const char *m = a.raw;
    T_ASSERT(well_formed(m));
    T_ASSERT(strstr(m, "# TYPE tandem_policy_denials_total counter\n") != NULL);
    T_ASSERT(sample(m, "tandem_policy_denials_total{policy=\"keys\",reason=\"missing_"
                       "credentials\"}") == 2);
    T_ASSERT(sample(m, "tandem_policy_denials_total{policy=\"keys\",reason=\"invalid_"
                       "credentials\"}") == 1);
    T_ASSERT(sample(m, "tandem_policy_denials_total{policy=\"per-consumer\",reason=\"rate_"
                       "limited\"}") == 1);
    T_ASSERT(sample(m, "tandem_policy_denials_total{policy=\"per-consumer\",reason=\"other\"}") ==
             1);
    T_ASSERT(sample(m, "tandem_policy_denials_total{policy=\"we\\\"ird\\\\name\",reason="
                       "\"forbidden\"}") == 1);
    /* Reasons never counted for a policy give no series. */
    T_ASSERT(sample(m, "tandem_policy_denials_total{policy=\"keys\",reason=\"rate_limited\"}") ==
             -1);
    T_ASSERT(strstr(m, "no such reason") == NULL);
    answer_done(&a);
    gw_pol_stats_reset();
}

START_TEST(metrics_exposition_counts_policy_denials_by_policy_and_reason)
{
    t_run(body_policy_denials);
}
END_TEST

START_TEST(metrics_exposition_parses_back_with_the_recorded_values)
{
    t_run(body_metrics);
}
END_TEST

/* The counters read back as structs, each series once, the overflow last;
 * the pool gauges come from the upstream description's structs. */
START_TEST(metrics_counters_read_back_as_structs)
{
    ck_assert_int_eq(gw_metrics_init(), 0);
    gw_metrics_request("users", 200, 1500);
    gw_metrics_request("users", 503, 20000000);
    gw_metrics_upstream_error("demo", "127.0.0.1:9001");
    struct gw_metrics_route r;
    size_t pos = 0, seen = 0;
    while (gw_metrics_route_next(&pos, &r)) {
        seen++;
        ck_assert_str_eq(r.name, "users");
        ck_assert_uint_eq(r.by_class[2], 1);
        ck_assert_uint_eq(r.by_class[5], 1);
        ck_assert_uint_eq(r.buckets[1], 1);                  /* le 0.0025 */
        ck_assert_uint_eq(r.buckets[GW_METRICS_BUCKETS], 1); /* +Inf */
        ck_assert_uint_eq(r.sum_us, 20001500);
    }
    ck_assert_uint_eq(seen, 1);
    ck_assert(!gw_metrics_route_next(&pos, &r)); /* stays at the end */
    struct gw_metrics_upstream e;
    pos = 0;
    ck_assert(gw_metrics_upstream_next(&pos, &e));
    ck_assert_str_eq(e.upstream, "demo");
    ck_assert_str_eq(e.target, "127.0.0.1:9001");
    ck_assert_uint_eq(e.errors, 1);
    ck_assert(!gw_metrics_upstream_next(&pos, &e));
    gw_metrics_done();
    pos = 0;
    ck_assert(!gw_metrics_route_next(&pos, &r));
}
END_TEST

START_TEST(metrics_route_cardinality_is_bounded)
{
    ck_assert_int_eq(gw_metrics_init(), 0);
    char name[32];
    for (int i = 0; i < GW_METRICS_MAX_ROUTES + 76; i++) {
        snprintf(name, sizeof name, "r%d", i);
        gw_metrics_request(name, 200, 100);
        gw_metrics_request(name, 200, 100);
    }
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    gw_metrics_request(long_name, 500, 1);
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(gw_metrics_render(&text, &len), 0);
    ck_assert_uint_eq(strlen(text), len);
    size_t series = 0;
    for (const char *p = text; (p = strstr(p, "\ntandem_requests_total{")); p++)
        series++;
    /* every route slot (2xx) plus _other's 2xx and 5xx */
    ck_assert_uint_eq(series, GW_METRICS_MAX_ROUTES + 2);
    ck_assert(sample(text, "tandem_requests_total{route=\"_other\",class=\"2xx\"}") == 152);
    ck_assert(sample(text, "tandem_requests_total{route=\"_other\",class=\"5xx\"}") == 1);
    ck_assert(sample(text, "tandem_requests_total{route=\"r0\",class=\"2xx\"}") == 2);
    free(text);
    gw_metrics_done();
}
END_TEST

static void *record_many(void *arg)
{
    char name[16];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "race%d", i % 50);
        gw_metrics_request(name, 200, 10);
    }
    return NULL;
}

START_TEST(metrics_recording_from_many_threads_loses_nothing)
{
    ck_assert_int_eq(gw_metrics_init(), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, record_many, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(gw_metrics_render(&text, &len), 0);
    for (int r = 0; r < 50; r++) {
        char series[96];
        snprintf(series, sizeof series, "tandem_requests_total{route=\"race%d\",class=\"2xx\"}", r);
        ck_assert_msg(sample(text, series) == 4 * 20000 / 50, "%s", series);
    }
    ck_assert(strstr(text, "_other") == NULL);
    free(text);
    gw_metrics_done();
}
END_TEST

/* ---- tandem ctl health ------------------------------------------------------------------ */

struct fake {
    int lfd;
    int port;
    const char *response;
    int delay_ms;
};

static void *fake_serve(void *arg)
{
    struct fake *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    (void)n;
    if (f->delay_ms)
        usleep((useconds_t)f->delay_ms * 1000);
    ssize_t w = write(fd, f->response, strlen(f->response));
    (void)w;
    close(fd);
    return NULL;
}

static int ctl_health_against(const char *response, int delay_ms)
{
    struct fake f = {.response = response, .delay_ms = delay_ms};
    f.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(f.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(f.lfd, (struct sockaddr *)&sa, &sl);
    ck_assert_int_eq(listen(f.lfd, 4), 0);
    pthread_t th;
    pthread_create(&th, NULL, fake_serve, &f);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    char *argv[] = {"ctl", "--admin", addr, "health", NULL};
    int rc = gw_ctl_main(4, argv);
    shutdown(f.lfd, SHUT_RDWR);
    close(f.lfd);
    pthread_join(th, NULL);
    return rc;
}

START_TEST(ctl_health_exits_0_only_on_a_200_within_2s)
{
    ck_assert_int_eq(ctl_health_against("HTTP/1.1 200 OK\r\nContent-Length: 16\r\nConnection: "
                                        "close\r\n\r\n{\"status\":\"ok\"}\n",
                                        0),
                     0);
    ck_assert_int_eq(ctl_health_against("HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
                                        "2\r\n\r\n{}",
                                        0),
                     1);
    ck_assert_int_eq(ctl_health_against("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 2500), 1);
    /* nothing listening */
    char *argv[] = {"ctl", "--admin", "127.0.0.1:1", "health", NULL};
    ck_assert_int_eq(gw_ctl_main(4, argv), 1);
    char *bad[] = {"ctl", "frobnicate", NULL};
    ck_assert_int_eq(gw_ctl_main(2, bad), 2);
    char *bad2[] = {"ctl", "kill", NULL};
    ck_assert_int_eq(gw_ctl_main(2, bad2), 2);
}
END_TEST

/* The sample as jansson wrote it before the text was written directly:
 * loaded back, the expected value of gw__admin_sample_text's text. */
static json_t *sample_by_jansson(const struct gw_event_sample *e)
{
    json_t *scheds = json_array();
    for (uint32_t i = 0; i < e->schedulers; i++) {
        double u = isfinite(e->sched[i].utilisation) ? e->sched[i].utilisation : 0;
        json_array_append_new(scheds, json_pack("{s:i,s:f,s:I}", "id", (int)i, "utilisation", u,
                                                "run_queue", (json_int_t)e->sched[i].run_queue));
    }
    double rps = isfinite(e->requests_per_s) ? e->requests_per_s : 0;
    double eps = isfinite(e->errors_per_s) ? e->errors_per_s : 0;
    json_t *v =
        json_pack("{s:I,s:I,s:b,s:o,s:I,s:I,s:{s:I,s:I},s:I,s:f,s:I,s:f,s:I,s:I}", "t_ms",
                  (json_int_t)e->t_ms, "uptime_ms", (json_int_t)e->uptime_ms, "ready", e->ready,
                  "schedulers", scheds, "processes", (json_int_t)e->processes, "process_limit",
                  (json_int_t)e->process_limit, "memory", "rss_bytes", (json_int_t)e->rss_bytes,
                  "processes_bytes", (json_int_t)e->processes_bytes, "requests_total",
                  (json_int_t)e->requests_total, "requests_per_s", rps, "errors_total",
                  (json_int_t)e->errors_total, "errors_per_s", eps, "in_flight",
                  (json_int_t)e->in_flight, "routes_version", (json_int_t)e->routes_version);
    ck_assert_ptr_nonnull(v);
    char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(v);
    ck_assert_ptr_nonnull(text);
    json_t *back = json_loads(text, 0, NULL);
    free(text);
    return back;
}

START_TEST(sample_text_is_what_jansson_writes_and_refuses_a_short_buffer)
{
    static const double reals[] = {0,        1,    0.5, 1.0 / 3,  123456789.25, 1e-7, -2.5e300, 42,
                                   0.999999, 7e22, NAN, INFINITY, -0.0,         1e6,  999999.5};
    const size_t nreals = sizeof reals / sizeof reals[0];
    static struct gw_event_sample e;
    char text[GW__ADMIN_SAMPLE_TEXT_MAX];
    for (size_t k = 0; k < 40; k++) {
        memset(&e, 0, sizeof e);
        e.t_ms = 1796000000000u + k;
        e.uptime_ms = k * 977;
        e.ready = k % 2;
        e.schedulers = (uint32_t)(k % 5);
        for (uint32_t i = 0; i < e.schedulers; i++) {
            e.sched[i].utilisation = reals[(k + i) % nreals];
            e.sched[i].run_queue = (uint32_t)(k * 31 + i);
        }
        e.processes = 10 + k;
        e.process_limit = 1048575;
        e.rss_bytes = (uint64_t)1 << (k % 40);
        e.processes_bytes = k * 4096;
        e.requests_total = k * 1000003;
        e.requests_per_s = reals[k % nreals];
        e.errors_total = k;
        e.errors_per_s = reals[(k * 7 + 3) % nreals];
        e.in_flight = k % 3;
        e.routes_version = k + 1;
        int n = gw__admin_sample_text(&e, text, sizeof text);
        ck_assert_int_gt(n, 0);
        ck_assert_uint_eq(strlen(text), (size_t)n);
        ck_assert_ptr_null(strchr(text, '\n'));
        json_error_t err;
        json_t *got = json_loads(text, 0, &err);
        ck_assert_msg(got != NULL, "%s: %s", text, err.text);
        json_t *want = sample_by_jansson(&e);
        char *w = json_dumps(want, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        ck_assert_msg(json_equal(got, want), "got  %s\nwant %s", text, w);
        /* Byte for byte, too: the same keys in the same order, the reals
         * written alike. */
        ck_assert_str_eq(text, w);
        free(w);
        json_decref(got);
        json_decref(want);
        /* One byte short of the text and its NUL: refused, never cut. */
        ck_assert_int_eq(gw__admin_sample_text(&e, text, (size_t)n), -1);
        ck_assert_int_eq(gw__admin_sample_text(&e, text, 0), -1);
    }
    /* Every number at its longest, every scheduler used: it fits. */
    memset(&e, 0xff, sizeof e);
    e.ready = true;
    e.schedulers = RT_MAX_SCHEDULERS;
    for (uint32_t i = 0; i < RT_MAX_SCHEDULERS; i++)
        e.sched[i].utilisation = -1.23456e-300;
    e.requests_per_s = e.errors_per_s = -1.23456e-300;
    int n = gw__admin_sample_text(&e, text, sizeof text);
    ck_assert_int_gt(n, 0);
    /* (Integers past INT64_MAX load in jansson only as reals.) */
    json_t *v = json_loads(text, JSON_DECODE_INT_AS_REAL, NULL);
    ck_assert_ptr_nonnull(v);
    json_decref(v);
}
END_TEST

static Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("admin");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, token_compare_equal_only_for_the_same_bytes);
    tcase_add_test(tc, token_compare_refuses_lengths_that_differ_by_a_multiple_of_256);
    tcase_add_test(tc, token_missing_or_wrong_gets_401_right_gets_through);
    tcase_add_test(tc, ui_files_are_served_without_the_token_after_the_host_and_origin_checks);
    tcase_add_test(tc, pid_format_parses_back_in_every_accepted_form);
    tcase_add_test(tc, processes_list_filters_sorts_and_limits);
    tcase_add_test(tc, request_processes_show_method_path_route_target_elapsed);
    tcase_add_test(tc, process_detail_shows_gen_server_sys_status);
    tcase_add_test(tc, process_list_and_detail_show_the_same_fields_and_valid_json);
    tcase_add_test(tc, process_detail_of_a_busy_server_answers_within_the_sys_timeout);
    tcase_add_test(tc, kill_answers_and_the_process_dies_with_the_reason);
    tcase_add_test(tc, supervisors_tree_and_restart_of_a_supervised_child);
    tcase_add_test(tc, supervisors_tree_states_that_children_are_listed_in_start_order);
    tcase_add_test(tc, supervisors_tree_lists_many_children_and_cuts_past_the_most);
    tcase_add_test(tc, supervisors_tree_and_restart_answer_timeout_while_a_supervisor_is_busy);
    tcase_add_test(tc, unknown_paths_404_and_wrong_methods_405_with_the_error_shape);
    tcase_add_test(tc, health_readiness_and_system_report_gateway_state);
    tcase_add_test(tc, routes_and_upstreams_answers_render_the_modules_structs);
    tcase_add_test(tc, a_kept_route_version_is_served_with_its_routes);
    tcase_add_test(tc, tls_answers_list_certificates_reload_record_and_counters);
    tcase_add_test(tc, policies_list_definitions_with_position_config_routes_and_denials);
    tcase_add_test(tc, consumers_show_credential_kinds_and_never_a_credential);
    tcase_add_test(tc, policy_state_shows_a_rate_limit_key_without_counting);
    tcase_add_test(tc, policy_endpoints_need_the_token);
    tcase_add_test(tc, policy_endpoints_without_a_set_answer_empty_lists);
    tcase_add_test(tc, metrics_exposition_parses_back_with_the_recorded_values);
    tcase_add_test(tc, metrics_exposition_counts_policy_denials_by_policy_and_reason);
    tcase_add_test(tc, metrics_route_cardinality_is_bounded);
    tcase_add_test(tc, metrics_counters_read_back_as_structs);
    tcase_add_test(tc, metrics_recording_from_many_threads_loses_nothing);
    tcase_add_test(tc, ctl_health_exits_0_only_on_a_200_within_2s);
    tcase_add_test(tc, host_rule_accepts_the_listener_own_names_and_nothing_else);
    tcase_add_test(tc, foreign_host_origin_content_type_and_deep_json_are_refused);
    tcase_add_test(tc, https_origin_is_accepted_for_a_host_named_in_allowed_hosts);
    tcase_add_test(tc, valid_token_lifts_the_host_rule_and_nothing_else);
    tcase_add_test(tc, head_checks_decide_before_the_body);
    tcase_add_test(tc, sample_text_is_what_jansson_writes_and_refuses_a_short_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Every test addresses the admin listener as a loopback one on 9901. */
    gw.admin_site = (struct gw_admin_site){.host = "127.0.0.1", .port = 9901, .loopback = true};
    SRunner *sr = srunner_create(admin_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
