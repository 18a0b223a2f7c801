/*
 * test_wf_admin.c: the admin API's workflow endpoints (admin/workflows.c)
 * and the workflow series of /metrics, called through gw_admin_handle
 * inside a runtime process with synthetic requests, against the in-memory
 * service and journal double (service_double.c). Every status code each
 * endpoint can answer is asserted.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gw/admin.h"
#include "gw/ctl.h"
#include "gw/gateway.h"
#include "gw/http1.h"
#include "gw/metrics.h"
#include "service_double.h"

struct gw_gateway gw;

/* ---- harness (as tests/unit/admin) -------------------------------------------- */

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
    (void)arg;
    t_body();
    atomic_store(&t_done, 1);
}

static void t_run(void (*body)(void))
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    atomic_store(&t_failed, 0);
    atomic_store(&t_done, 0);
    t_wf_reset();
    gw_metrics_init();
    ck_assert_int_eq(rt_start(&cfg), 0);
    t_body = body;
    rt_pid pid = 0;
    struct rt_spawn_opts so = {.initial_call = "test_wf_admin"};
    ck_assert_int_eq(rt_spawn(t_runner, NULL, &so, &pid), 0);
    rt_atom reason = 0;
    int jr = rt_join(pid, 60000, &reason);
    if (jr == 0)
        rt_wait_idle(5000);
    int left = rt_stop();
    t_wf_reset();
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_int_eq(jr, 0);
    ck_assert_msg(atomic_load(&t_done), "test process exited: %s", rt_atom_name(reason));
    ck_assert_int_eq(left, 0);
}

struct answer {
    int status;
    char *raw;
    json_t *json;
    const char *allow;
};

static void answer_done(struct answer *a)
{
    free(a->raw);
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

static struct answer call(const char *method, const char *target, const char *body)
{
    char text[4096];
    snprintf(text, sizeof text,
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1:9901\r\n%sContent-Length: %zu\r\n\r\n", method,
             target, body ? "Content-Type: application/json\r\n" : "", body ? strlen(body) : 0);
    struct gw_http_parser *p = NULL;
    T_EQ(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
    struct gw_http_event ev;
    size_t used = 0;
    T_EQ(gw_http_parser_feed(p, text, strlen(text), &used, &ev), 0);
    T_EQ(ev.type, GW_HTTP_EV_HEAD);
    struct gw_http_head *head = ev.head;
    gw_http_parser_free(p);
    char path[1024];
    snprintf(path, sizeof path, "%s", target);
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
    gw_admin_handle(&req, &resp);
    gw_http_head_free(head);
    struct answer a = {.status = resp.status, .raw = resp.body, .allow = resp.allow};
    T_ASSERT(resp.body != NULL);
    if (resp.content_type && strcmp(resp.content_type, "application/json") == 0) {
        json_error_t err;
        a.json = json_loadb(resp.body, resp.body_len, 0, &err);
        T_ASSERT(a.json != NULL);
    }
    return a;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void expect_error(struct answer *a, int status, const char *code)
{
    T_EQ(a->status, status);
    T_ASSERT(a->json != NULL);
    T_STREQ(jstr(a->json, "error"), code);
    T_ASSERT(json_object_get(a->json, "detail") != NULL);
}

#define ID1 "00000000000000000000000000000001"
#define ID2 "00000000000000000000000000000002"
#define ID3 "00000000000000000000000000000003"
#define IDX "0000000000000000000000000000ffff"

static void three_instances(void)
{
    t_wf_add(ID3, "refund", "completed", true, 3000);
    t_wf_add(ID1, "transfer", "step:debit", false, 1000);
    t_wf_add(ID2, "transfer", "failed", false, 2000);
}

/* ---- GET /admin/workflows --------------------------------------------------------- */

static void list_pages_in_id_order_body(void)
{
    three_instances();
    struct answer a = call("GET", "/admin/workflows?limit=2", NULL);
    T_EQ(a.status, 200);
    json_t *ws = json_object_get(a.json, "workflows");
    T_EQ(json_array_size(ws), 2);
    T_STREQ(jstr(json_array_get(ws, 0), "id"), ID1);
    T_STREQ(jstr(json_array_get(ws, 0), "workflow"), "transfer");
    T_STREQ(jstr(json_array_get(ws, 0), "state"), "step:debit");
    T_STREQ(jstr(json_array_get(ws, 0), "created"), "1970-01-01T00:00:01.000Z");
    T_STREQ(jstr(json_array_get(ws, 1), "id"), ID2);
    T_EQ(jint(a.json, "count"), 2);
    T_EQ(jint(a.json, "limit"), 2);
    T_STREQ(jstr(a.json, "next"), ID2);
    answer_done(&a);
    a = call("GET", "/admin/workflows?limit=2&after=" ID2, NULL);
    T_EQ(a.status, 200);
    ws = json_object_get(a.json, "workflows");
    T_EQ(json_array_size(ws), 1);
    T_STREQ(jstr(json_array_get(ws, 0), "id"), ID3);
    T_ASSERT(json_is_true(json_object_get(json_array_get(ws, 0), "terminal")));
    T_ASSERT(json_is_null(json_object_get(a.json, "next")));
    answer_done(&a);
}

START_TEST(list_pages_in_id_order)
{
    t_run(list_pages_in_id_order_body);
}
END_TEST

static void list_passes_filters_body(void)
{
    struct answer a =
        call("GET", "/admin/workflows?definition=transfer&state=step%3A&older_than=60000", NULL);
    T_EQ(a.status, 200);
    T_STREQ(t_wf_last_filter.def_name, "transfer");
    T_STREQ(t_wf_last_filter.state, "step:");
    T_ASSERT(t_wf_last_filter.older_than_ms > 1700000000000LL);
    T_EQ(t_wf_last_filter.limit, 100);
    T_ASSERT(t_wf_last_filter.after_id == NULL);
    answer_done(&a);
}

START_TEST(list_passes_definition_state_and_age_filters)
{
    t_run(list_passes_filters_body);
}
END_TEST

static void list_filters_apply_body(void)
{
    three_instances();
    struct answer a = call("GET", "/admin/workflows?state=failed", NULL);
    T_EQ(a.status, 200);
    T_EQ(json_array_size(json_object_get(a.json, "workflows")), 1);
    T_STREQ(jstr(json_array_get(json_object_get(a.json, "workflows"), 0), "id"), ID2);
    answer_done(&a);
    a = call("GET", "/admin/workflows?definition=refund", NULL);
    T_EQ(json_array_size(json_object_get(a.json, "workflows")), 1);
    answer_done(&a);
}

START_TEST(list_filters_by_state_and_definition)
{
    t_run(list_filters_apply_body);
}
END_TEST

static void list_limit_capped_body(void)
{
    struct answer a = call("GET", "/admin/workflows?limit=5000", NULL);
    T_EQ(a.status, 200);
    T_EQ(t_wf_last_filter.limit, 1000);
    T_EQ(jint(a.json, "limit"), 1000);
    answer_done(&a);
}

START_TEST(list_limit_is_capped_at_1000)
{
    t_run(list_limit_capped_body);
}
END_TEST

static void list_bad_query_body(void)
{
    static const char *const bad[] = {
        "/admin/workflows?limit=0",        "/admin/workflows?limit=abc",
        "/admin/workflows?limit=-1",       "/admin/workflows?after=xyz",
        "/admin/workflows?older_than=1h",  "/admin/workflows?after=" ID1 "0",
        "/admin/workflows?definition=%zz",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct answer a = call("GET", bad[i], NULL);
        expect_error(&a, 400, "bad_request");
        answer_done(&a);
    }
}

START_TEST(list_bad_query_is_400)
{
    t_run(list_bad_query_body);
}
END_TEST

static void list_journal_fails_body(void)
{
    t_wf_next_rc = -ETIMEDOUT;
    struct answer a = call("GET", "/admin/workflows", NULL);
    expect_error(&a, 504, "timeout");
    T_STREQ(jstr(json_object_get(a.json, "detail"), "call"), "list");
    answer_done(&a);
    t_wf_next_rc = -EIO;
    a = call("GET", "/admin/workflows", NULL);
    expect_error(&a, 503, "workflows_unavailable");
    answer_done(&a);
    t_wf_next_rc = -ENOSYS; /* no service running */
    a = call("GET", "/admin/workflows", NULL);
    expect_error(&a, 503, "workflows_unavailable");
    answer_done(&a);
    a = call("POST", "/admin/workflows", "{}");
    expect_error(&a, 405, "method_not_allowed");
    T_STREQ(a.allow, "GET, HEAD");
    answer_done(&a);
}

START_TEST(list_journal_timeout_is_504_and_failure_503)
{
    t_run(list_journal_fails_body);
}
END_TEST

/* The journal answering after the deadline: 504 at the deadline, and the
 * call's result is freed when it comes (no process or memory left). */
static void list_slow_body(void)
{
    three_instances();
    t_wf_delay_ms = 2600;
    uint64_t t0 = rt_now_ms();
    struct answer a = call("GET", "/admin/workflows", NULL);
    uint64_t took = rt_now_ms() - t0;
    expect_error(&a, 504, "timeout");
    T_STREQ(jstr(json_object_get(a.json, "detail"), "name"), "wf_journal");
    T_EQ(jint(json_object_get(a.json, "detail"), "timeout_ms"), 2000);
    T_ASSERT(took >= 1900 && took < 2500);
    answer_done(&a);
    t_wf_delay_ms = 100;
    a = call("POST", "/admin/workflows/" ID2 "/retry", NULL); /* within it: answered */
    T_EQ(a.status, 200);
    answer_done(&a);
}

START_TEST(list_journal_slower_than_the_deadline_is_504)
{
    t_run(list_slow_body);
}
END_TEST

/* ---- GET /admin/workflows/{id} ------------------------------------------------------- */

static void get_one_body(void)
{
    struct wf_record *r = t_wf_add(ID1, "transfer", "compensating:debit", false, 1000);
    free(r->input);
    r->input = strdup("{\"amount\":5}");
    r->input_len = strlen(r->input);
    r->scope = strdup("route:transfer");
    r->key = strdup("k1");
    r->key_expires_ms = 86401000;
    t_wf_add_transition(r, "step:debit", "intent", "{\"attempt\":1}", 1001);
    t_wf_add_transition(r, "step:debit", "outcome", "{\"status\":200}", 1002);
    t_wf_add_transition(r, "step:credit", "intent", "{\"attempt\":1}", 1003);
    t_wf_add_transition(r, "step:credit", "outcome", "{\"status\":409,\"error\":\"overdraft\"}",
                        1004);
    t_wf_add_transition(r, "compensating:debit", "intent", "{\"attempt\":1}", 1005);
    t_wf_add_transition(r, "compensating:debit", "retry", "{\"error\":\"timeout\"}", 1006);
    t_wf_add_transition(r, "compensating:debit", "intent", "{\"attempt\":2}", 1007);

    struct answer a = call("GET", "/admin/workflows/" ID1, NULL);
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "id"), ID1);
    T_STREQ(jstr(a.json, "state"), "compensating:debit");
    T_STREQ(jstr(a.json, "step"), "debit");
    json_t *def = json_object_get(a.json, "definition");
    T_STREQ(jstr(def, "name"), "transfer");
    /* FNV-1a 64 of {"name":"x"} */
    T_STREQ(jstr(def, "version"), "ae9266a65895c8d6");
    T_EQ(jint(json_object_get(a.json, "input"), "amount"), 5);
    json_t *ts = json_object_get(a.json, "transitions");
    T_EQ(json_array_size(ts), 7);
    T_EQ(jint(json_array_get(ts, 0), "seq"), 1);
    T_STREQ(jstr(json_array_get(ts, 0), "event"), "intent");
    T_STREQ(jstr(json_array_get(ts, 0), "at"), "1970-01-01T00:00:01.001Z");
    T_EQ(jint(json_object_get(json_array_get(ts, 3), "detail"), "status"), 409);
    T_EQ(jint(a.json, "attempts"), 2);
    T_STREQ(jstr(a.json, "last_error"), "timeout");
    T_STREQ(jstr(json_object_get(a.json, "key"), "key"), "k1");
    T_STREQ(jstr(json_object_get(a.json, "key"), "expires"), "1970-01-02T00:00:01.000Z");
    T_ASSERT(json_object_get(a.json, "result") == NULL);
    answer_done(&a);
}

START_TEST(get_one_shows_definition_input_transitions_attempts_last_error)
{
    t_run(get_one_body);
}
END_TEST

static void get_terminal_body(void)
{
    struct wf_record *r = t_wf_add(ID1, "transfer", "completed", true, 1000);
    r->answer_status = 201;
    r->answer_headers = strdup("{\"Content-Type\":\"application/json\"}");
    r->answer_body = strdup("{\"ok\":true}");
    r->answer_body_len = strlen(r->answer_body);
    struct answer a = call("GET", "/admin/workflows/" ID1, NULL);
    T_EQ(a.status, 200);
    json_t *res = json_object_get(a.json, "result");
    T_EQ(jint(res, "status"), 201);
    T_ASSERT(json_is_true(json_object_get(json_object_get(res, "body"), "ok")));
    T_STREQ(jstr(json_object_get(res, "headers"), "Content-Type"), "application/json");
    T_ASSERT(json_is_null(json_object_get(a.json, "step")));
    answer_done(&a);
}

START_TEST(get_terminal_shows_its_result)
{
    t_run(get_terminal_body);
}
END_TEST

static void get_errors_body(void)
{
    struct answer a = call("GET", "/admin/workflows/" IDX, NULL);
    expect_error(&a, 404, "workflow_not_found");
    answer_done(&a);
    a = call("GET", "/admin/workflows/ABCDEF00000000000000000000000000", NULL);
    expect_error(&a, 400, "bad_id");
    answer_done(&a);
    a = call("GET", "/admin/workflows/123", NULL);
    expect_error(&a, 400, "bad_id");
    answer_done(&a);
    t_wf_next_rc = -ETIMEDOUT;
    a = call("GET", "/admin/workflows/" ID1, NULL);
    expect_error(&a, 504, "timeout");
    T_STREQ(jstr(json_object_get(a.json, "detail"), "call"), "get");
    answer_done(&a);
    t_wf_next_rc = -EIO;
    a = call("GET", "/admin/workflows/" ID1, NULL);
    expect_error(&a, 503, "workflows_unavailable");
    answer_done(&a);
    a = call("POST", "/admin/workflows/" ID1, "{}");
    expect_error(&a, 405, "method_not_allowed");
    answer_done(&a);
    a = call("GET", "/admin/workflows/" ID1 "/other", NULL);
    expect_error(&a, 404, "not_found");
    answer_done(&a);
}

START_TEST(get_one_unknown_404_bad_id_400_timeout_504_failure_503)
{
    t_run(get_errors_body);
}
END_TEST

/* ---- retry and resolve -------------------------------------------------------------- */

static void retry_body(void)
{
    three_instances();
    struct answer a = call("POST", "/admin/workflows/" ID2 "/retry", NULL);
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "outcome"), "retrying");
    answer_done(&a);
    a = call("POST", "/admin/workflows/" ID2 "/retry", NULL); /* no longer failed */
    expect_error(&a, 409, "not_failed");
    answer_done(&a);
    a = call("POST", "/admin/workflows/" ID1 "/retry", NULL);
    expect_error(&a, 409, "not_failed");
    answer_done(&a);
    a = call("POST", "/admin/workflows/" IDX "/retry", NULL);
    expect_error(&a, 404, "workflow_not_found");
    answer_done(&a);
    t_wf_next_rc = -ETIMEDOUT;
    a = call("POST", "/admin/workflows/" ID1 "/retry", NULL);
    expect_error(&a, 504, "timeout");
    T_STREQ(jstr(json_object_get(a.json, "detail"), "name"), "wf:" ID1);
    answer_done(&a);
    t_wf_next_rc = -ENOSYS;
    a = call("POST", "/admin/workflows/" ID1 "/retry", NULL);
    expect_error(&a, 503, "workflows_unavailable");
    answer_done(&a);
    a = call("GET", "/admin/workflows/" ID1 "/retry", NULL);
    expect_error(&a, 405, "method_not_allowed");
    T_STREQ(a.allow, "POST");
    answer_done(&a);
}

START_TEST(retry_failed_200_not_failed_409_unknown_404_timeout_504)
{
    t_run(retry_body);
}
END_TEST

static void resolve_body(void)
{
    three_instances();
    struct answer a = call("POST", "/admin/workflows/" ID2 "/resolve", "{\"note\":\"refunded\"}");
    T_EQ(a.status, 200);
    T_STREQ(jstr(a.json, "outcome"), "resolved");
    T_ASSERT(strcmp(t_wf_last_note, "refunded") == 0);
    answer_done(&a);
    a = call("POST", "/admin/workflows/" ID2 "/resolve", NULL);
    expect_error(&a, 409, "not_failed");
    T_ASSERT(t_wf_last_note_null);
    answer_done(&a);
    a = call("POST", "/admin/workflows/" ID1 "/resolve", "{\"note\":5}");
    expect_error(&a, 400, "bad_request");
    answer_done(&a);
    a = call("POST", "/admin/workflows/" ID1 "/resolve", "[]");
    expect_error(&a, 400, "bad_request");
    answer_done(&a);
    a = call("POST", "/admin/workflows/" IDX "/resolve", NULL);
    expect_error(&a, 404, "workflow_not_found");
    answer_done(&a);
    t_wf_next_rc = -ETIMEDOUT;
    a = call("POST", "/admin/workflows/" ID1 "/resolve", NULL);
    expect_error(&a, 504, "timeout");
    answer_done(&a);
}

START_TEST(resolve_failed_200_not_failed_409_bad_body_400_unknown_404)
{
    t_run(resolve_body);
}
END_TEST

/* ---- /metrics ------------------------------------------------------------------------- */

static void metrics_body(void)
{
    gw_metrics_workflow("transfer", GW_METRICS_WF_STARTED);
    gw_metrics_workflow("transfer", GW_METRICS_WF_STARTED);
    gw_metrics_workflow("transfer", GW_METRICS_WF_COMPENSATED);
    gw_metrics_workflow("refund", GW_METRICS_WF_FAILED);
    gw_metrics_workflow_step("transfer", 3000);
    gw_metrics_workflow_step("transfer", 20000000);
    t_wf_stats.running = 7;
    t_wf_stats.recovered = 3;
    t_wf_journal_stats = (struct wf_journal_stats){
        .commits = 4, .writes = 40, .bytes = 999, .commit_us_sum = 1500000, .max_batch = 17};
    struct answer a = call("GET", "/metrics", NULL);
    T_EQ(a.status, 200);
    static const char *const want[] = {
        "tandem_workflows_total{workflow=\"transfer\",outcome=\"started\"} 2\n",
        "tandem_workflows_total{workflow=\"transfer\",outcome=\"compensated\"} 1\n",
        "tandem_workflows_total{workflow=\"transfer\",outcome=\"completed\"} 0\n",
        "tandem_workflows_total{workflow=\"refund\",outcome=\"failed\"} 1\n",
        "tandem_workflow_step_duration_seconds_bucket{workflow=\"transfer\",le=\"0.001\"} 0\n",
        "tandem_workflow_step_duration_seconds_bucket{workflow=\"transfer\",le=\"0.005\"} 1\n",
        "tandem_workflow_step_duration_seconds_bucket{workflow=\"transfer\",le=\"10\"} 1\n",
        "tandem_workflow_step_duration_seconds_bucket{workflow=\"transfer\",le=\"+Inf\"} 2\n",
        "tandem_workflow_step_duration_seconds_sum{workflow=\"transfer\"} 20.003000\n",
        "tandem_workflow_step_duration_seconds_count{workflow=\"transfer\"} 2\n",
        "tandem_workflows_running 7\n",
        "tandem_workflows_recovered_total 3\n",
        "tandem_workflow_journal_commit_duration_seconds_sum 1.500000\n",
        "tandem_workflow_journal_commit_duration_seconds_count 4\n",
        "tandem_workflow_journal_batch_size_sum 40\n",
        "tandem_workflow_journal_batch_size_count 4\n",
        "tandem_workflow_journal_batch_size_max 17\n",
        "tandem_workflow_journal_bytes_total 999\n",
        "# TYPE tandem_workflow_step_duration_seconds histogram\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(a.raw, want[i]))
            fprintf(stderr, "missing: %s", want[i]);
        T_ASSERT(strstr(a.raw, want[i]) != NULL);
    }
    answer_done(&a);
}

START_TEST(metrics_count_instances_steps_and_journal_commits)
{
    t_run(metrics_body);
}
END_TEST

static void metrics_bounded_body(void)
{
    char name[32];
    for (int i = 0; i < GW_METRICS_MAX_WORKFLOWS + 10; i++) {
        snprintf(name, sizeof name, "wf%d", i);
        gw_metrics_workflow(name, GW_METRICS_WF_STARTED);
    }
    size_t series = 0;
    bool other = false;
    struct gw_metrics_workflow w;
    for (size_t pos = 0; gw_metrics_workflow_next(&pos, &w);) {
        series++;
        if (strcmp(w.name, GW_METRICS_OVERFLOW) == 0) {
            other = true;
            T_EQ(w.events[GW_METRICS_WF_STARTED], 10);
        }
    }
    T_EQ(series, GW_METRICS_MAX_WORKFLOWS + 1);
    T_ASSERT(other);
}

START_TEST(metrics_workflow_series_are_bounded)
{
    t_run(metrics_bounded_body);
}
END_TEST

/* ---- tandem ctl workflows ------------------------------------------------------------------ */

/* A one-shot HTTP server on loopback: keeps what it was sent, answers
 * `response`. */
struct fake {
    int lfd;
    const char *response;
    char got[4096];
};

static void *fake_serve(void *arg)
{
    struct fake *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t used = 0;
    /* The head, then a body of Content-Length bytes. */
    for (;;) {
        ssize_t n = read(fd, f->got + used, sizeof f->got - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        f->got[used] = 0;
        const char *end = strstr(f->got, "\r\n\r\n");
        const char *cl = strcasestr(f->got, "content-length:");
        if (end && (!cl || used >= (size_t)(end + 4 - f->got) + (size_t)atoi(cl + 15)))
            break;
    }
    ssize_t w = write(fd, f->response, strlen(f->response));
    (void)w;
    close(fd);
    return NULL;
}

/* Runs `tandem ctl --admin ADDR args...` against a fake answering
 * `response`; the request it sent goes to got. Returns the exit code. */
static int ctl_against(const char *response, char *got, size_t cap, int argc, char **args)
{
    static struct fake f;
    memset(&f, 0, sizeof f);
    f.response = response;
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
    char *argv[16] = {"ctl", "--admin", addr};
    for (int i = 0; i < argc; i++)
        argv[3 + i] = args[i];
    int rc = gw_ctl_main(3 + argc, argv);
    shutdown(f.lfd, SHUT_RDWR);
    close(f.lfd);
    pthread_join(th, NULL);
    snprintf(got, cap, "%s", f.got);
    return rc;
}

#define OK_LIST                                                                                    \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 49\r\n\r\n"              \
    "{\"workflows\":[],\"count\":0,\"limit\":5,\"next\":null}\n"
#define CONFLICT                                                                                   \
    "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n"        \
    "{\"error\":\"not_failed\",\"detail\":null}"

START_TEST(ctl_workflows_lists_with_filters)
{
    char got[4096];
    char *args[] = {"workflows", "--state", "failed", "--definition", "transfer", "--limit", "5"};
    ck_assert_int_eq(ctl_against(OK_LIST, got, sizeof got, 7, args), 0);
    ck_assert_msg(
        strncmp(got, "GET /admin/workflows?state=failed&definition=transfer&limit=5 ", 62) == 0,
        "%s", got);
}
END_TEST

START_TEST(ctl_workflows_id_retry_resolve)
{
    char got[4096];
    char *one[] = {"workflows", ID1};
    ck_assert_int_eq(ctl_against(OK_LIST, got, sizeof got, 2, one), 0);
    ck_assert(strncmp(got, "GET /admin/workflows/" ID1 " ", 54) == 0);
    char *retry[] = {"workflows", "retry", ID1};
    ck_assert_int_eq(ctl_against(CONFLICT, got, sizeof got, 3, retry), 1);
    ck_assert(strncmp(got, "POST /admin/workflows/" ID1 "/retry ", 61) == 0);
    char *resolve[] = {"workflows", "resolve", ID1, "--note", "refunded by hand"};
    ck_assert_int_eq(ctl_against(OK_LIST, got, sizeof got, 5, resolve), 0);
    ck_assert(strncmp(got, "POST /admin/workflows/" ID1 "/resolve ", 63) == 0);
    ck_assert_ptr_nonnull(strstr(got, "{\"note\":\"refunded by hand\"}"));
}
END_TEST

START_TEST(ctl_workflows_refuses_bad_arguments)
{
    char *bad_id[] = {"ctl", "--admin", "127.0.0.1:1", "workflows", "nope"};
    ck_assert_int_eq(gw_ctl_main(5, bad_id), 2);
    char *bad_action[] = {"ctl", "--admin", "127.0.0.1:1", "workflows", "kill", ID1};
    ck_assert_int_eq(gw_ctl_main(6, bad_action), 2);
    char *no_id[] = {"ctl", "--admin", "127.0.0.1:1", "workflows", "retry"};
    ck_assert_int_eq(gw_ctl_main(5, no_id), 2);
    char *bad_state[] = {"ctl", "--admin", "127.0.0.1:1", "workflows", "--state", "a&b"};
    ck_assert_int_eq(gw_ctl_main(6, bad_state), 2);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("workflow_admin");
    TCase *tc = tcase_create("admin");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, list_pages_in_id_order);
    tcase_add_test(tc, list_passes_definition_state_and_age_filters);
    tcase_add_test(tc, list_filters_by_state_and_definition);
    tcase_add_test(tc, list_limit_is_capped_at_1000);
    tcase_add_test(tc, list_bad_query_is_400);
    tcase_add_test(tc, list_journal_timeout_is_504_and_failure_503);
    tcase_add_test(tc, list_journal_slower_than_the_deadline_is_504);
    tcase_add_test(tc, get_one_shows_definition_input_transitions_attempts_last_error);
    tcase_add_test(tc, get_terminal_shows_its_result);
    tcase_add_test(tc, get_one_unknown_404_bad_id_400_timeout_504_failure_503);
    tcase_add_test(tc, retry_failed_200_not_failed_409_unknown_404_timeout_504);
    tcase_add_test(tc, resolve_failed_200_not_failed_409_bad_body_400_unknown_404);
    tcase_add_test(tc, metrics_count_instances_steps_and_journal_commits);
    tcase_add_test(tc, metrics_workflow_series_are_bounded);
    tcase_add_test(tc, ctl_workflows_lists_with_filters);
    tcase_add_test(tc, ctl_workflows_id_retry_resolve);
    tcase_add_test(tc, ctl_workflows_refuses_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    gw.admin_site = (struct gw_admin_site){.host = "127.0.0.1", .port = 9901, .loopback = true};
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
