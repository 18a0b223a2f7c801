/*
 * test_wf_http.c: the workflows' entry on the request path
 * (workflow/http.c) over a socketpair: a request process runs
 * gw__workflow_route or gw__workflow_status on an exchange, against the
 * in-memory service double (service_double.c) and a definition given here;
 * the main thread sends the request and reads the answer. Every status the
 * entry can answer is asserted, and a replay is compared byte for byte
 * with the first answer.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "gw/gateway.h"
#include "gw/metrics.h"
#include "gw_int.h"
#include "service_double.h"
#include "workflow/def.h"
#include "workflow/http.h"

struct gw_gateway gw;

/* ---- a definition and its set (def.h doubles) ---------------------------------------- */

static struct wf_def t_def = {
    .name = "transfer",
    .idempotency = WF_IDEM_REQUIRED,
    .key_header = "idempotency-key",
    .wait_ms = 1000,
};
static int t_set_token;
static bool t_no_set;

const struct wf_set *gw__wf_table_set(const struct route_table *t)
{
    (void)t;
    return t_no_set ? NULL : (const struct wf_set *)&t_set_token;
}

size_t wf_set_count(const struct wf_set *s)
{
    return s ? 1 : 0;
}

const struct wf_def *wf_set_find(const struct wf_set *s, const char *name)
{
    return s && strcmp(name, t_def.name) == 0 ? &t_def : NULL;
}

/* The input needs an integer "amount". */
int wf_input_check(const struct wf_def *def, const json_t *input, char *err, size_t errcap)
{
    (void)def;
    if (json_is_integer(json_object_get(input, "amount")))
        return 0;
    snprintf(err, errcap, "input.amount: expected integer");
    return -EINVAL;
}

/* ---- harness ------------------------------------------------------------------------- */

static char t_failure[512];
static atomic_int t_failed;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (atomic_exchange(&t_failed, 1) == 0)                                                \
                snprintf(t_failure, sizeof t_failure, "%s:%d: %s", __FILE__, __LINE__, #c);        \
            rt_exit(rt_atom_intern("test_failed"));                                                \
        }                                                                                          \
    } while (0)

static struct gw__listener lis;
static struct gw_listener_stats lis_stats;
static int peer = -1, side = -1;
static struct route t_route;

static void setup(void)
{
    memset(&lis, 0, sizeof lis);
    lis.name = "test";
    lis.stats = &lis_stats;
    gw_http_limits_default(&lis.limits);
    lis.request_timeout_ms = 5000;
    lis.body_timeout_ms = 5000;
    atomic_store(&t_failed, 0);
    t_wf_reset();
    t_no_set = false;
    t_def.wait_ms = 1000;
    t_def.idempotency = WF_IDEM_REQUIRED;
    t_route = (struct route){.name = "transfer", .workflow = "transfer", .max_body_bytes = -1};
    gw_metrics_init();
    struct rt_config c;
    rt_config_default(&c);
    c.schedulers = 1;
    ck_assert_int_eq(rt_start(&c), 0);
}

static void teardown(void)
{
    ck_assert_int_eq(rt_stop(), 0);
    t_wf_reset();
}

static void open_pair(void)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer = sv[0];
    side = sv[1];
}

/* Reads one request head from the exchange (as the connection does). */
static struct gw__exchange *open_request(void)
{
    struct gw__transport *tp;
    T_ASSERT(gw__transport_socket_new(side, &tp) == 0);
    struct gw__exchange *ex;
    T_ASSERT(gw__ex_new(&ex, tp, &lis, "") == 0);
    rt_defer(gw__exchange_unref, ex);
    for (;;) {
        if (ex->len == 0) {
            int r = gw__ex_fill(ex, 5000);
            T_ASSERT(r == 1 || r == -EAGAIN);
            continue;
        }
        struct gw_http_event ev;
        T_ASSERT(gw__ex_feed(ex, &ev) == 0);
        if (ev.type == GW_HTTP_EV_HEAD) {
            gw__ex_begin(ex, ev.head);
            memcpy(ex->request_id, "rid-7", 6);
            return ex;
        }
        T_ASSERT(ev.type == GW_HTTP_EV_NEED_MORE);
    }
}

static bool t_status_handled;

static void route_proc(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    char buf[1024];
    struct gw_http_target t;
    T_ASSERT(gw_http_target_canon(ex->head->method, ex->head->target, ex->head->target_len, buf,
                                  sizeof buf, &t) == 0);
    struct gw__req_log log = {0};
    t_status_handled = gw__workflow_status(ex, NULL, &t, &log);
    if (!t_status_handled)
        gw__workflow_route(ex, NULL, &t_route, &t, &log);
}

/* Sends `request`, runs the entry, and returns the whole answer (the
 * exchange's end closes when the process ends) with its Date line cut. */
static char got[1 << 16];

static const char *exchange(const char *request)
{
    open_pair();
    size_t n = strlen(request);
    ck_assert_int_eq(write(peer, request, n), (ssize_t)n);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(route_proc, NULL, NULL, &pid), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, 20000, &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_msg(reason == RT_NORMAL, "the request process ended with %s", rt_atom_name(reason));
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = peer, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            break;
        ssize_t r = read(peer, got + len, sizeof got - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    got[len] = 0;
    close(peer);
    peer = -1;
    char *d = strstr(got, "\r\nDate: ");
    if (d) {
        char *e = strstr(d + 2, "\r\n");
        memmove(d, e, strlen(e) + 1);
    }
    return got;
}

static int status_of(const char *a)
{
    int st = 0;
    sscanf(a, "HTTP/1.1 %d", &st);
    return st;
}

static const char *body_of(const char *a)
{
    const char *b = strstr(a, "\r\n\r\n");
    return b ? b + 4 : "";
}

static char *post(char *out, size_t cap, const char *fields, const char *body)
{
    snprintf(out, cap, "POST /transfers HTTP/1.1\r\nHost: gw\r\n%sContent-Length: %zu\r\n\r\n%s",
             fields, strlen(body), body);
    return out;
}

#define JSON "Content-Type: application/json\r\n"
#define KEY_A "Idempotency-Key: key-a\r\n"

/* ---- refusals -------------------------------------------------------------------------- */

START_TEST(missing_key_where_required_is_400_before_the_body)
{
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 400);
    ck_assert_ptr_nonnull(strstr(a, "requires an idempotency-key field"));
    ck_assert_ptr_nonnull(strstr(a, "\r\nConnection: close\r\n"));
    ck_assert_uint_eq(t_wf_n, 0);
}
END_TEST

START_TEST(missing_key_where_optional_starts_an_instance)
{
    t_def.idempotency = WF_IDEM_OPTIONAL;
    t_def.wait_ms = 0;
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 202);
    ck_assert_uint_eq(t_wf_n, 1);
    ck_assert_ptr_null(t_wf_records[0]->scope);
}
END_TEST

START_TEST(key_in_two_fields_or_malformed_is_400)
{
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 400);
    ck_assert_ptr_nonnull(strstr(a, "appears more than once"));
    a = exchange(post(req, sizeof req, JSON "Idempotency-Key: a b\r\n", "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 400);
    ck_assert_ptr_nonnull(strstr(a, "visible ASCII"));
    ck_assert_uint_eq(t_wf_n, 0);
}
END_TEST

START_TEST(non_json_content_type_is_415)
{
    char req[1024];
    const char *a = exchange(post(req, sizeof req, KEY_A "Content-Type: text/plain\r\n", "x"));
    ck_assert_int_eq(status_of(a), 415);
    a = exchange(post(req, sizeof req, KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 415);
    a = exchange(
        post(req, sizeof req, KEY_A "Content-Type: application/vnd.x+json\r\n", "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 202);
}
END_TEST

START_TEST(body_not_a_json_object_is_400)
{
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":"));
    ck_assert_int_eq(status_of(a), 400);
    ck_assert_ptr_nonnull(strstr(a, "not valid JSON"));
    a = exchange(post(req, sizeof req, JSON KEY_A, "[1]"));
    ck_assert_int_eq(status_of(a), 400);
    ck_assert_ptr_nonnull(strstr(a, "must be a JSON object"));
    a = exchange(post(req, sizeof req, JSON KEY_A, ""));
    ck_assert_int_eq(status_of(a), 400);
    ck_assert_uint_eq(t_wf_n, 0);
}
END_TEST

START_TEST(body_over_the_bound_is_413)
{
    t_route.max_body_bytes = 16; /* lower than GW_WF_MAX_INPUT_BYTES: it bounds */
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5,\"memo\":\"xx\"}"));
    ck_assert_int_eq(status_of(a), 413);
    ck_assert_uint_eq(t_wf_n, 0);
    a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 202);
}
END_TEST

START_TEST(input_check_failure_is_422_with_the_message)
{
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":\"5\"}"));
    ck_assert_int_eq(status_of(a), 422);
    ck_assert_ptr_nonnull(strstr(a, "input.amount: expected integer"));
    ck_assert_uint_eq(t_wf_n, 0);
}
END_TEST

START_TEST(workflow_not_loaded_is_503)
{
    t_no_set = true;
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 503);
}
END_TEST

START_TEST(over_max_running_is_503_with_retry_after)
{
    t_wf_next_rc = -EAGAIN;
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 503);
    ck_assert_ptr_nonnull(strstr(a, "\r\nRetry-After: 1\r\n"));
    ck_assert_ptr_nonnull(strstr(body_of(a), "\"request_id\":\"rid-7\""));
}
END_TEST

/* ---- starting, waiting, replaying ----------------------------------------------------------- */

START_TEST(sync_answers_the_result_and_a_replay_is_byte_identical)
{
    t_wf_await_end = (struct t_wf_await){
        201, "{\"Content-Type\":\"application/json\",\"Location\":\"/accounts/9\"}",
        "{\"transfer\":\"done\"}"};
    char req[1024], first[4096];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 201);
    ck_assert_ptr_nonnull(strstr(a, "\r\nContent-Type: application/json\r\n"));
    ck_assert_ptr_nonnull(strstr(a, "\r\nLocation: /accounts/9\r\n"));
    ck_assert_str_eq(body_of(a), "{\"transfer\":\"done\"}");
    ck_assert_uint_eq(t_wf_n, 1);
    ck_assert_str_eq(t_wf_records[0]->scope, "route:transfer");
    ck_assert_str_eq(t_wf_records[0]->key, "key-a");
    snprintf(first, sizeof first, "%s", a);
    t_wf_await_end.answer_status = 0; /* the replay must not wait */
    a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    ck_assert_str_eq(a, first);
    ck_assert_uint_eq(t_wf_n, 1);
}
END_TEST

START_TEST(sync_not_done_in_time_is_202_with_location)
{
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 202);
    char loc[128];
    snprintf(loc, sizeof loc, "\r\nLocation: /workflows/%s\r\n", t_wf_records[0]->id);
    ck_assert_ptr_nonnull(strstr(a, loc));
    json_error_t err;
    json_t *o = json_loads(body_of(a), 0, &err);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "step:first");
    ck_assert_str_eq(json_string_value(json_object_get(o, "workflow")), "transfer");
    json_decref(o);
}
END_TEST

START_TEST(a_202_names_the_whole_status_path_however_long)
{
    /* The longest status path the configuration takes (256 bytes). */
    char sp[257];
    sp[0] = '/';
    memset(sp + 1, 'a', 254);
    sp[255] = '/';
    sp[256] = 0;
    struct gw_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workflows.status_path = sp;
    gw.cfg = &cfg;
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    gw.cfg = NULL;
    ck_assert_int_eq(status_of(a), 202);
    char loc[512];
    snprintf(loc, sizeof loc, "\r\nLocation: %s%s\r\n", sp, t_wf_records[0]->id);
    ck_assert_ptr_nonnull(strstr(a, loc));
}
END_TEST

START_TEST(async_answers_202_at_once)
{
    t_def.wait_ms = 0;
    t_wf_await_end.answer_status = 200; /* would end it, were it awaited */
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 202);
    ck_assert(!t_wf_records[0]->terminal);
}
END_TEST

START_TEST(repeat_while_running_is_409_with_retry_after)
{
    t_def.wait_ms = 0;
    char req[1024];
    exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 409);
    ck_assert_ptr_nonnull(strstr(a, "\r\nRetry-After: 1\r\n"));
    ck_assert_uint_eq(t_wf_n, 1);
}
END_TEST

START_TEST(repeat_with_another_payload_is_422)
{
    t_def.wait_ms = 0;
    char req[1024];
    exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":6}"));
    ck_assert_int_eq(status_of(a), 422);
    ck_assert_ptr_nonnull(strstr(a, "used for a different request"));
    ck_assert_uint_eq(t_wf_n, 1);
}
END_TEST

START_TEST(journal_failure_on_start_is_503)
{
    t_wf_next_rc = -EIO;
    char req[1024];
    const char *a = exchange(post(req, sizeof req, JSON KEY_A, "{\"amount\":5}"));
    ck_assert_int_eq(status_of(a), 503);
    ck_assert_ptr_null(strstr(a, "Retry-After"));
}
END_TEST

/* ---- the status path ------------------------------------------------------------------------- */

#define ID1 "00000000000000000000000000000001"

START_TEST(status_path_answers_an_instance)
{
    struct wf_record *r = t_wf_add(ID1, "transfer", "completed", true, 1000);
    r->answer_status = 200;
    r->answer_body = strdup("{\"ok\":true}");
    r->answer_body_len = strlen(r->answer_body);
    const char *a = exchange("GET /workflows/" ID1 " HTTP/1.1\r\nHost: gw\r\n\r\n");
    ck_assert(t_status_handled);
    ck_assert_int_eq(status_of(a), 200);
    json_error_t err;
    json_t *o = json_loads(body_of(a), 0, &err);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "id")), ID1);
    ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "completed");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "result"), "status")),
                     200);
    json_decref(o);
    a = exchange("HEAD /workflows/" ID1 " HTTP/1.1\r\nHost: gw\r\n\r\n");
    ck_assert_int_eq(status_of(a), 200);
    ck_assert_str_eq(body_of(a), "");
}
END_TEST

START_TEST(status_path_unknown_or_malformed_id_is_404)
{
    const char *a = exchange("GET /workflows/" ID1 " HTTP/1.1\r\nHost: gw\r\n\r\n");
    ck_assert_int_eq(status_of(a), 404);
    a = exchange("GET /workflows/nope HTTP/1.1\r\nHost: gw\r\n\r\n");
    ck_assert_int_eq(status_of(a), 404);
    a = exchange("GET /workflows/ HTTP/1.1\r\nHost: gw\r\n\r\n");
    ck_assert_int_eq(status_of(a), 404);
}
END_TEST

START_TEST(status_path_other_method_is_405)
{
    const char *a = exchange("DELETE /workflows/" ID1 " HTTP/1.1\r\nHost: gw\r\n\r\n");
    ck_assert_int_eq(status_of(a), 405);
    ck_assert_ptr_nonnull(strstr(a, "\r\nAllow: GET, HEAD\r\n"));
}
END_TEST

START_TEST(status_path_journal_failure_is_503)
{
    t_wf_next_rc = -EIO;
    const char *a = exchange("GET /workflows/" ID1 " HTTP/1.1\r\nHost: gw\r\n\r\n");
    ck_assert_int_eq(status_of(a), 503);
}
END_TEST

START_TEST(status_path_is_left_to_routes_without_workflows)
{
    t_no_set = true;
    t_def.wait_ms = 0;
    /* Not handled: the route runs instead (and answers 503: no set). */
    const char *a = exchange("GET /workflows/" ID1 " HTTP/1.1\r\nHost: gw\r\n\r\n");
    ck_assert(!t_status_handled);
    ck_assert_int_eq(status_of(a), 503);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("workflow_http");
    TCase *tc = tcase_create("http");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, missing_key_where_required_is_400_before_the_body);
    tcase_add_test(tc, missing_key_where_optional_starts_an_instance);
    tcase_add_test(tc, key_in_two_fields_or_malformed_is_400);
    tcase_add_test(tc, non_json_content_type_is_415);
    tcase_add_test(tc, body_not_a_json_object_is_400);
    tcase_add_test(tc, body_over_the_bound_is_413);
    tcase_add_test(tc, input_check_failure_is_422_with_the_message);
    tcase_add_test(tc, workflow_not_loaded_is_503);
    tcase_add_test(tc, over_max_running_is_503_with_retry_after);
    tcase_add_test(tc, sync_answers_the_result_and_a_replay_is_byte_identical);
    tcase_add_test(tc, sync_not_done_in_time_is_202_with_location);
    tcase_add_test(tc, a_202_names_the_whole_status_path_however_long);
    tcase_add_test(tc, async_answers_202_at_once);
    tcase_add_test(tc, repeat_while_running_is_409_with_retry_after);
    tcase_add_test(tc, repeat_with_another_payload_is_422);
    tcase_add_test(tc, journal_failure_on_start_is_503);
    tcase_add_test(tc, status_path_answers_an_instance);
    tcase_add_test(tc, status_path_unknown_or_malformed_id_is_404);
    tcase_add_test(tc, status_path_other_method_is_405);
    tcase_add_test(tc, status_path_journal_failure_is_503);
    tcase_add_test(tc, status_path_is_left_to_routes_without_workflows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
