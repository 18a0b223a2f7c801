/*
 * test_concurrency.c: the concurrency policy kind (concurrency.c) in real
 * runtime processes: the 503 over max, a slot given back by a process that
 * is killed while holding it or while queued, the queue's first-in
 * first-out hand-over and its timeout. Each body runs in a runtime process;
 * the runtime ends with no process left and the policy with no slot. Also
 * the rate_limit kind's run (ratelimit.c) on a request: its answer fields,
 * its 429 and gw_pol_rate_state.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "jpos/json.h"
#include "policy/ratelimit.h"
#include "resp_wire.h"
#include "route/route.h"
#include "rt/rt.h"

static char failure[256];
static atomic_int failed;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c) && atomic_exchange(&failed, 1) == 0)                                              \
            snprintf(failure, sizeof failure, "%s:%d: %s", __FILE__, __LINE__, #c);                \
    } while (0)

static void *compile(const char *text)
{
    struct jpos_doc doc;
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *state = NULL;
    int rc = jpos_doc_parse(&doc, "t.json", text, strlen(text), &d);
    if (rc == 0) {
        struct jpos_val root;
        jpos_val_root(&doc, &root);
        struct gw_pol_env env = {0};
        rc = gw__pol_kind_concurrency.compile(&d, &root, &env, &state);
    }
    if (rc < 0)
        jpos_diags_print(&d, stderr);
    jpos_doc_done(&doc);
    jpos_diags_done(&d);
    return rc == 0 ? state : NULL;
}

static struct route route = {.name = "r1"};
static void *policy;

enum { MSG_RESULT = 1, MSG_RELEASE };

/* Runs the policy and tells its parent the outcome (0: let through, or
 * the answer's status, with Retry-After checked); a holder then waits to
 * be told to end, or to be killed. */
static void holder(void *arg)
{
    rt_pid parent = (rt_pid)(uintptr_t)arg;
    struct gw_pol_req rq = {.route = &route};
    int r = gw__pol_kind_concurrency.run(policy, &rq);
    struct rt_msg *m = rt_msg_new(MSG_RESULT, 0);
    m->u64 = r == GW_POL_NEXT ? 0 : (uint64_t)rq.answer.status;
    if (r != GW_POL_NEXT) {
        T_ASSERT(rq.answer.nfields == 1);
        T_ASSERT(strcmp(rq.answer.fields[0].name, "Retry-After") == 0);
        T_ASSERT(strcmp(rq.answer.fields[0].value, "1") == 0);
    }
    rt_send(parent, m);
    if (r == GW_POL_NEXT)
        rt_msg_free(rt_receive(RT_INFINITY));
}

static rt_pid spawn_holder(void)
{
    rt_pid pid = 0;
    T_ASSERT(rt_spawn(holder, (void *)(uintptr_t)rt_self(), NULL, &pid) == 0);
    return pid;
}

static bool from(const struct rt_msg *m, void *ctx)
{
    return m->type == MSG_RESULT && m->from == *(rt_pid *)ctx;
}

/* The outcome `pid` reports, or -1 when none comes within timeout_ms. */
static int64_t result_of(rt_pid pid, int64_t timeout_ms)
{
    struct rt_msg *m = rt_receive_match(from, &pid, timeout_ms);
    if (!m)
        return -1;
    int64_t r = (int64_t)m->u64;
    rt_msg_free(m);
    return r;
}

static void end(rt_pid pid, bool kill)
{
    rt_ref ref = rt_monitor(pid);
    if (kill)
        rt_exit_signal(pid, RT_KILL);
    else
        rt_send(pid, rt_msg_new(MSG_RELEASE, 0));
    rt_msg_free(rt_receive_ref(ref, 5000));
}

static json_t *slot_of(const char *key)
{
    json_t *d = gw__pol_kind_concurrency.describe(policy);
    json_t *s = json_incref(json_object_get(json_object_get(d, "slots"), key));
    json_decref(d);
    return s;
}

static int queued(void)
{
    json_t *s = slot_of("r1");
    int n = s ? (int)json_integer_value(json_object_get(s, "queued")) : 0;
    json_decref(s);
    return n;
}

static void run_body(void (*body)(void *), const char *def)
{
    policy = compile(def);
    ck_assert_ptr_nonnull(policy);
    atomic_store(&failed, 0);
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    ck_assert_int_eq(rt_start(&cfg), 0);
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(body, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 20000, NULL), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
    /* Every slot is back: the key has nothing in flight or queued. */
    json_t *s = slot_of("r1");
    ck_assert_msg(s == NULL, "slot r1 still there");
    gw__pol_kind_concurrency.free(policy);
}

static void over_max_body(void *arg)
{
    (void)arg;
    rt_pid a = spawn_holder(), b = spawn_holder();
    T_ASSERT(result_of(a, 5000) == 0);
    T_ASSERT(result_of(b, 5000) == 0);
    rt_pid c = spawn_holder();
    T_ASSERT(result_of(c, 5000) == 503);
    /* A killed holder's slot is free again. */
    end(a, true);
    rt_pid d = spawn_holder();
    T_ASSERT(result_of(d, 5000) == 0);
    rt_pid e = spawn_holder();
    T_ASSERT(result_of(e, 5000) == 503);
    end(b, false);
    end(d, false);
}

START_TEST(over_max_is_503_and_a_killed_holder_gives_its_slot_back)
{
    run_body(over_max_body, "{\"name\": \"c\", \"type\": \"concurrency\", \"max\": 2}");
}
END_TEST

static void queue_body(void *arg)
{
    (void)arg;
    rt_pid a = spawn_holder();
    T_ASSERT(result_of(a, 5000) == 0);
    rt_pid b = spawn_holder();
    for (int i = 0; i < 500 && queued() < 1; i++)
        rt_sleep(2);
    rt_pid c = spawn_holder();
    for (int i = 0; i < 500 && queued() < 2; i++)
        rt_sleep(2);
    T_ASSERT(queued() == 2);
    /* The queue is full: refused at once. */
    rt_pid d = spawn_holder();
    T_ASSERT(result_of(d, 5000) == 503);
    /* Nothing passes while the slot is held. */
    T_ASSERT(result_of(b, 100) == -1);
    /* The freed slot goes to the oldest waiter, then the next. */
    end(a, false);
    T_ASSERT(result_of(b, 5000) == 0);
    T_ASSERT(result_of(c, 100) == -1);
    end(b, true);
    T_ASSERT(result_of(c, 5000) == 0);
    end(c, false);
}

START_TEST(queued_requests_get_freed_slots_oldest_first)
{
    run_body(queue_body, "{\"name\": \"q\", \"type\": \"concurrency\", \"max\": 1, \"queue\": 2, "
                         "\"queue_timeout_ms\": 10000}");
}
END_TEST

static void timeout_body(void *arg)
{
    (void)arg;
    rt_pid a = spawn_holder();
    T_ASSERT(result_of(a, 5000) == 0);
    uint64_t t0 = rt_now_ms();
    rt_pid b = spawn_holder();
    T_ASSERT(result_of(b, 5000) == 503);
    uint64_t waited = rt_now_ms() - t0;
    T_ASSERT(waited >= 100 && waited < 2000);
    T_ASSERT(queued() == 0);
    /* A waiter killed in the queue leaves it. */
    rt_pid c = spawn_holder();
    for (int i = 0; i < 500 && queued() < 1; i++)
        rt_sleep(2);
    T_ASSERT(queued() == 1);
    end(c, true);
    T_ASSERT(queued() == 0);
    end(a, false);
    rt_pid d = spawn_holder();
    T_ASSERT(result_of(d, 5000) == 0);
    end(d, false);
}

START_TEST(a_queued_request_times_out_and_a_killed_waiter_leaves_the_queue)
{
    run_body(timeout_body, "{\"name\": \"t\", \"type\": \"concurrency\", \"max\": 1, \"queue\": 1, "
                           "\"queue_timeout_ms\": 100}");
}
END_TEST

/* ---- the rate_limit kind ------------------------------------------------------ */

static void *compile_kind(const struct gw_pol_kind *k, const char *text)
{
    struct jpos_doc doc;
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *state = NULL;
    int rc = jpos_doc_parse(&doc, "t.json", text, strlen(text), &d);
    if (rc == 0) {
        struct jpos_val root;
        jpos_val_root(&doc, &root);
        struct gw_pol_env env = {0};
        rc = k->compile(&d, &root, &env, &state);
    }
    if (rc < 0)
        jpos_diags_print(&d, stderr);
    jpos_doc_done(&doc);
    jpos_diags_done(&d);
    return rc == 0 ? state : NULL;
}

static struct gw_pol_def rate_def = {.name = "per", .kind = &gw__pol_kind_rate_limit};

static const char *resp_field(const struct gw_pol_req *rq, const char *name)
{
    for (size_t i = 0; i < rq->nresp; i++)
        if (strcmp(rq->resp[i].name, name) == 0)
            return rq->resp[i].value;
    return NULL;
}

static void rate_body(void *arg)
{
    (void)arg;
    struct route r = {.name = "orders"};
    const char *fields[] = {"\"per\";r=1;t=10", "\"per\";r=0;t=10"};
    for (int i = 0; i < 2; i++) {
        struct gw_pol_req rq = {.route = &r, .client = "192.0.2.1"};
        T_ASSERT(gw__pol_kind_rate_limit.run(rate_def.state, &rq) == GW_POL_NEXT);
        T_ASSERT(rq.nresp == 2);
        const char *p = resp_field(&rq, "RateLimit-Policy"), *v = resp_field(&rq, "RateLimit");
        T_ASSERT(p && strcmp(p, "\"per\";q=2;w=10") == 0);
        T_ASSERT(v && strcmp(v, fields[i]) == 0);
        T_ASSERT(resp_fields_need_no_check(&rq));
    }
    struct gw_pol_req rq = {.route = &r, .client = "192.0.2.1"};
    T_ASSERT(gw__pol_kind_rate_limit.run(rate_def.state, &rq) == GW_POL_ANSWERED);
    T_ASSERT(rq.answer.status == 429);
    T_ASSERT(rq.answer.nfields == 1 && strcmp(rq.answer.fields[0].name, "Retry-After") == 0);
    /* The window ends 10 s after the first request; prev = 2 then weighs
     * 2 until a millisecond later: 10 or 11 s, rounded up, by when the
     * third request came. */
    const char *ra = rq.answer.fields[0].value;
    T_ASSERT(strcmp(ra, "10") == 0 || strcmp(ra, "11") == 0);
    T_ASSERT(resp_fields_need_no_check(&rq));
    const char *v = resp_field(&rq, "RateLimit");
    T_ASSERT(v && (strcmp(v, "\"per\";r=0;t=10") == 0 || strcmp(v, "\"per\";r=0;t=11") == 0));
    /* Another client has its own count. Its RateLimit is written in the
     * request's own room, or allocated when another policy took it. */
    struct gw_pol_req other = {.route = &r, .client = "192.0.2.2"};
    T_ASSERT(gw__pol_kind_rate_limit.run(rate_def.state, &other) == GW_POL_NEXT);
    v = resp_field(&other, "RateLimit");
    T_ASSERT(v && strcmp(v, "\"per\";r=1;t=10") == 0);
    T_ASSERT(v >= other.text && v < other.text + sizeof other.text);
    struct gw_pol_req full = {.route = &r, .client = "192.0.2.3"};
    T_ASSERT(gw_pol_req_text(&full, sizeof full.text - 1) == full.text);
    T_ASSERT(!gw_pol_req_text(&full, 2));
    T_ASSERT(gw__pol_kind_rate_limit.run(rate_def.state, &full) == GW_POL_NEXT);
    v = resp_field(&full, "RateLimit");
    T_ASSERT(v && strcmp(v, "\"per\";r=1;t=10") == 0);
    T_ASSERT(v < full.text || v >= full.text + sizeof full.text);
}

START_TEST(rate_limit_answers_carry_ratelimit_fields_and_refusals_are_429)
{
    rate_def.state = compile_kind(&gw__pol_kind_rate_limit,
                                  "{\"name\": \"per\", \"type\": \"rate_limit\", \"limit\": 2, "
                                  "\"window_s\": 10, \"by\": \"client\"}");
    ck_assert_ptr_nonnull(rate_def.state);
    atomic_store(&failed, 0);
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    ck_assert_int_eq(rt_start(&cfg), 0);
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(rate_body, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 20000, NULL), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
    /* The admin API's view of a key, without counting. */
    json_t *st = gw_pol_rate_state(&rate_def, "192.0.2.1");
    ck_assert_ptr_nonnull(st);
    ck_assert(json_is_true(json_object_get(st, "present")));
    ck_assert_int_eq(json_integer_value(json_object_get(st, "count")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "remaining")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "limit")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(st, "by")), "client");
    json_decref(st);
    st = gw_pol_rate_state(&rate_def, "192.0.2.1");
    ck_assert_int_eq(json_integer_value(json_object_get(st, "count")), 2);
    json_decref(st);
    st = gw_pol_rate_state(&rate_def, "198.51.100.9");
    ck_assert(json_is_false(json_object_get(st, "present")));
    ck_assert_int_eq(json_integer_value(json_object_get(st, "remaining")), 2);
    json_decref(st);
    /* Not a rate_limit policy. */
    struct gw_pol_def cc = {.name = "c", .kind = &gw__pol_kind_concurrency};
    ck_assert_ptr_null(gw_pol_rate_state(&cc, "x"));
    gw__pol_kind_rate_limit.free(rate_def.state);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("slots");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, over_max_is_503_and_a_killed_holder_gives_its_slot_back);
    tcase_add_test(tc, queued_requests_get_freed_slots_oldest_first);
    tcase_add_test(tc, a_queued_request_times_out_and_a_killed_waiter_leaves_the_queue);
    suite_add_tcase(s, tc);
    tc = tcase_create("rate_limit");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rate_limit_answers_carry_ratelimit_fields_and_refusals_are_429);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed_n = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed_n ? 1 : 0;
}
