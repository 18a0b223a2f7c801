/* test_policy_chain.c: a route's chain in the request process
 * (gateway/src/policy/chain.c) over an exchange on a socketpair — order,
 * the first answer ending it, the policy's answer with the chain's
 * response fields, the consumer's fields for the upstream once it passed —
 * and, as plain data, the acl kind's decisions, the fields a forwarded
 * request carries for the policies and the response fields merged into a
 * relayed response.
 *
 * The test brings its own kinds table (gw_pol_kinds: the library's kinds.c
 * is then not linked): "mark" records its name and adds a response field,
 * "stop" answers 429 with Retry-After, "as" authenticates the consumer its
 * "consumer" key names, and the real acl. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw/config.h"
#include "gw_int.h"
#include "policy/set_int.h"
#include "policy/table.h"

/* ---- the test's kinds ------------------------------------------------------------ */

static char trace[256];

static int mark_compile(struct jpos_diags *d, const struct jpos_val *obj,
                        const struct gw_pol_env *env, void **state)
{
    (void)d;
    (void)env;
    struct jpos_val v;
    ck_assert(jpos_obj_get(obj, "name", &v));
    *state = strdup(json_string_value(v.v));
    return *state ? 0 : -ENOMEM;
}

static int mark_run(void *state, struct gw_pol_req *rq)
{
    strcat(trace, state);
    strcat(trace, ",");
    gw_pol_resp_add(rq, "x-mark", state);
    return GW_POL_NEXT;
}

static int stop_run(void *state, struct gw_pol_req *rq)
{
    strcat(trace, state);
    strcat(trace, ",");
    /* on the policy's stack: the answer keeps copies */
    char secs[8];
    snprintf(secs, sizeof secs, "%d", 7);
    struct gw_http_kv f = {"Retry-After", secs};
    return gw_pol_refuse(rq, 429, "slow down", &f, 1);
}

static int as_compile(struct jpos_diags *d, const struct jpos_val *obj,
                      const struct gw_pol_env *env, void **state)
{
    (void)d;
    struct jpos_val v;
    ck_assert(jpos_obj_get(obj, "consumer", &v));
    for (size_t i = 0; i < env->nconsumers; i++)
        if (strcmp(env->consumers[i].name, json_string_value(v.v)) == 0)
            *state = (void *)&env->consumers[i];
    return *state ? 0 : -EINVAL;
}

static int as_run(void *state, struct gw_pol_req *rq)
{
    rq->consumer = state;
    return GW_POL_NEXT;
}

static void nothing(void *state)
{
    (void)state;
}

extern const struct gw_pol_kind gw__pol_kind_acl;
static const struct gw_pol_kind mark = {"mark", mark_compile, free, mark_run, NULL, NULL, false};
static const struct gw_pol_kind stop = {"stop", mark_compile, free, stop_run, NULL, NULL, false};
static const struct gw_pol_kind as = {"as", as_compile, nothing, as_run, NULL, NULL, false};

const struct gw_pol_kind *const gw_pol_kinds[] = {&mark, &stop, &as, &gw__pol_kind_acl};
const size_t gw_pol_nkinds = 4;

const struct gw_pol_kind *gw_pol_kind_find(const char *type)
{
    for (size_t i = 0; i < gw_pol_nkinds; i++)
        if (strcmp(gw_pol_kinds[i]->type, type) == 0)
            return gw_pol_kinds[i];
    return NULL;
}

/* ---- a table ------------------------------------------------------------------- */

static const char policies[] =
    "{\"consumers\": [{\"name\": \"alice\"},\n"
    "   {\"name\": \"bob\", \"headers\": {\"x-tier\": \"gold\"}}],\n"
    " \"policies\": [{\"name\": \"m1\", \"type\": \"mark\"}, {\"name\": \"m2\", \"type\": "
    "\"mark\"},\n"
    "  {\"name\": \"s\", \"type\": \"stop\"},\n"
    "  {\"name\": \"as-alice\", \"type\": \"as\", \"consumer\": \"alice\"},\n"
    "  {\"name\": \"as-bob\", \"type\": \"as\", \"consumer\": \"bob\"},\n"
    "  {\"name\": \"bob-only\", \"type\": \"acl\", \"allow\": [\"bob\"]},\n"
    "  {\"name\": \"not-alice\", \"type\": \"acl\", \"deny\": [\"alice\"]}]}";

static const char routes[] =
    "{\"routes\": [\n"
    " {\"name\": \"stopped\", \"match\": {\"path\": \"/stopped\"},\n"
    "  \"policies\": [\"m1\", \"s\", \"m2\"], \"respond\": {}},\n"
    " {\"name\": \"passed\", \"match\": {\"path\": \"/passed\"},\n"
    "  \"policies\": [\"m2\", \"as-bob\", \"m1\", \"bob-only\"], \"respond\": {}},\n"
    " {\"name\": \"anonymous\", \"match\": {\"path\": \"/anonymous\"},\n"
    "  \"policies\": [\"m1\", \"bob-only\"], \"respond\": {}},\n"
    " {\"name\": \"alice-allow\", \"match\": {\"path\": \"/alice-allow\"},\n"
    "  \"policies\": [\"as-alice\", \"bob-only\"], \"respond\": {}},\n"
    " {\"name\": \"alice-deny\", \"match\": {\"path\": \"/alice-deny\"},\n"
    "  \"policies\": [\"as-alice\", \"not-alice\"], \"respond\": {}}]}";

static struct route_table *table;

static void load_table(void)
{
    char dir[] = "/tmp/tandem-chain-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/p.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(policies, f);
    fclose(f);
    struct gw_routes_source src = {.label = "r.json",
                                   .text = routes,
                                   .len = strlen(routes),
                                   .policies_dir = dir,
                                   .consumer_header = "x-consumer"};
    struct jpos_diags d;
    jpos_diags_init(&d);
    int r = gw_config_load_routes(&src, NULL, 0, &table, &d);
    jpos_diags_print(&d, stderr);
    jpos_diags_done(&d);
    unlink(path);
    rmdir(dir);
    ck_assert_int_eq(r, 0);
}

/* ---- the exchange --------------------------------------------------------------- */

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
static int peer = -1, side = -1;

static void setup(void)
{
    memset(&lis, 0, sizeof lis);
    lis.name = "test";
    gw_http_limits_default(&lis.limits);
    lis.request_timeout_ms = 5000;
    lis.body_timeout_ms = 5000;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer = sv[0];
    side = sv[1];
    atomic_store(&t_failed, 0);
    trace[0] = 0;
    load_table();
    struct rt_config c;
    rt_config_default(&c);
    c.schedulers = 1;
    ck_assert_int_eq(rt_start(&c), 0);
}

static void teardown(void)
{
    ck_assert_int_eq(rt_stop(), 0);
    close(peer);
    route_table_unref(table);
    table = NULL;
}

static void run(rt_entry fn)
{
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(fn, NULL, NULL, &pid), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, 20000, &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_msg(reason == RT_NORMAL, "the process ended with %s", rt_atom_name(reason));
}

static char got[1 << 16];

static const char *received(void)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = peer, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            break;
        ssize_t n = read(peer, got + len, sizeof got - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    got[len] = 0;
    return got;
}

static struct gw__exchange *open_request(void)
{
    struct gw__transport *tp;
    T_ASSERT(gw__transport_socket_new(side, &tp) == 0);
    struct gw__exchange *ex;
    T_ASSERT(gw__ex_new(&ex, tp, &lis, "192.0.2.9") == 0);
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
            memcpy(ex->request_id, "rid-9", 6);
            return ex;
        }
        T_ASSERT(ev.type == GW_HTTP_EV_NEED_MORE);
    }
}

/* What the chain left for the route's action. */
static int chain_st;
static struct gw_pol_req last;
static char last_up[512];

static const char *route;

static void p_chain(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    struct gw_pol_req rq = {.ex = ex,
                            .head = ex->head,
                            .route = route_table_find(table, route),
                            .table = table,
                            .client = ex->client_addr};
    T_ASSERT(rq.route && rq.route->npolicies);
    chain_st = gw__policy_chain(&rq);
    last = rq;
    last_up[0] = 0;
    for (size_t i = 0; i < rq.nup; i++) {
        strcat(last_up, rq.up[i].name);
        strcat(last_up, "=");
        strcat(last_up, rq.up[i].value);
        strcat(last_up, ";");
    }
    T_ASSERT(ex->pol == &rq); /* every answer of the request gets rq.resp */
    ex->pol = NULL;
}

static void chain(const char *name)
{
    char req[128];
    snprintf(req, sizeof req, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", name);
    route = name;
    ck_assert_int_eq(write(peer, req, strlen(req)), (ssize_t)strlen(req));
    run(p_chain);
}

START_TEST(chain_runs_in_order_and_stops_at_the_first_answer)
{
    chain("stopped");
    ck_assert_int_eq(chain_st, GW_POL_ANSWERED);
    ck_assert_str_eq(trace, "m1,s,");
    const char *out = received();
    ck_assert_msg(strncmp(out, "HTTP/1.1 429 ", 13) == 0, "%s", out);
    /* the policy's own field, copied off its stack, and the chain's
     * response fields so far */
    ck_assert_ptr_nonnull(strstr(out, "\r\nRetry-After: 7\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "\r\nx-mark: m1\r\n"));
    ck_assert_ptr_null(strstr(out, "x-mark: m2"));
    ck_assert_ptr_nonnull(strstr(out, "{\"error\": \"slow down\", \"request_id\": \"rid-9\"}"));
    /* a bodiless request keeps its connection */
    ck_assert_ptr_null(strstr(out, "Connection: close"));
}
END_TEST

START_TEST(chain_that_passes_leaves_the_consumer_and_its_fields)
{
    chain("passed");
    ck_assert_int_eq(chain_st, GW_POL_NEXT);
    ck_assert_str_eq(trace, "m2,m1,");
    ck_assert_str_eq(received(), ""); /* nothing answered */
    ck_assert_ptr_nonnull(last.consumer);
    ck_assert_str_eq(last.consumer->name, "bob");
    ck_assert_str_eq(last_up, "x-consumer=bob;x-tier=gold;");
    ck_assert_uint_eq(last.nresp, 2);
    ck_assert_str_eq(last.resp[0].value, "m2");
    ck_assert_str_eq(last.resp[1].value, "m1");
}
END_TEST

START_TEST(acl_without_an_identity_answers_401)
{
    chain("anonymous");
    ck_assert_int_eq(chain_st, GW_POL_ANSWERED);
    const char *out = received();
    ck_assert_msg(strncmp(out, "HTTP/1.1 401 ", 13) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "\r\nx-mark: m1\r\n"));
}
END_TEST

START_TEST(acl_with_a_consumer_outside_allow_answers_403)
{
    chain("alice-allow");
    ck_assert_int_eq(chain_st, GW_POL_ANSWERED);
    const char *out = received();
    ck_assert_msg(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
    ck_assert_str_eq(last_up, ""); /* the consumer's fields are only for a request that passed */
}
END_TEST

START_TEST(acl_with_a_denied_consumer_answers_403)
{
    chain("alice-deny");
    ck_assert_int_eq(chain_st, GW_POL_ANSWERED);
    const char *out = received();
    ck_assert_msg(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
}
END_TEST

static void p_answers(void *arg)
{
    (void)arg;
    struct gw__exchange *ex = open_request();
    struct gw_pol_req rq = {.ex = ex};
    gw_pol_resp_add(&rq, "x-ratelimit", "9");
    gw_pol_resp_add(&rq, "vary", "Origin");
    ex->pol = &rq;
    /* a direct answer with fields of its own (a respond route) */
    struct gw_http_kv f = {"x-own", "1"};
    struct gw_http_answer a = {.status = 200, .fields = &f, .nfields = 1};
    T_ASSERT(gw__ex_answer(ex, &a, "ok", 2) == 0);
    /* an error answer without fields (a 502 from the proxy) */
    T_ASSERT(gw__ex_error(ex, 502, "no upstream target answered", true) == 0);
    /* the next request starts without them */
    gw__ex_begin(ex, ex->head);
    T_ASSERT(ex->pol == NULL);
}

START_TEST(every_answer_of_the_request_carries_the_chains_response_fields)
{
    const char req[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    ck_assert_int_eq(write(peer, req, sizeof req - 1), (ssize_t)sizeof req - 1);
    run(p_answers);
    const char *out = received();
    const char *second = strstr(out, "HTTP/1.1 502 ");
    ck_assert_ptr_nonnull(second);
    ck_assert_ptr_nonnull(strstr(out, "\r\nx-own: 1\r\nx-ratelimit: 9\r\nvary: Origin\r\n"));
    ck_assert_ptr_nonnull(strstr(second, "\r\nx-ratelimit: 9\r\nvary: Origin\r\n"));
}
END_TEST

/* ---- plain data ----------------------------------------------------------------- */

START_TEST(acl_decides_on_the_consumer_or_the_subject)
{
    load_table();
    const struct gw_pol_set *s = gw_pol_table_set(table);
    const struct gw_pol_def *bob_only = gw_pol_set_find(s, "bob-only");
    const struct gw_pol_def *not_alice = gw_pol_set_find(s, "not-alice");
    struct gw_pol_req rq = {0};
    ck_assert_int_eq(bob_only->kind->run(bob_only->state, &rq), GW_POL_ANSWERED);
    ck_assert_int_eq(rq.answer.status, 401);
    memset(&rq, 0, sizeof rq);
    rq.consumer = gw_pol_set_consumer_find(s, "bob");
    ck_assert_int_eq(bob_only->kind->run(bob_only->state, &rq), GW_POL_NEXT);
    ck_assert_int_eq(rq.answer.status, 0);
    ck_assert_int_eq(not_alice->kind->run(not_alice->state, &rq), GW_POL_NEXT);
    memset(&rq, 0, sizeof rq);
    rq.subject = "alice"; /* a token's subject without a consumer counts the same */
    ck_assert_int_eq(not_alice->kind->run(not_alice->state, &rq), GW_POL_ANSWERED);
    ck_assert_int_eq(rq.answer.status, 403);
    memset(&rq, 0, sizeof rq);
    rq.subject = "carol";
    ck_assert_int_eq(not_alice->kind->run(not_alice->state, &rq), GW_POL_NEXT);
    ck_assert_int_eq(bob_only->kind->run(bob_only->state, &rq), GW_POL_ANSWERED);
    ck_assert_int_eq(rq.answer.status, 403);
    json_t *j = bob_only->kind->describe(bob_only->state);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "allow"), 0)), "bob");
    json_decref(j);
    route_table_unref(table);
    table = NULL;
}
END_TEST

START_TEST(field_lists_are_bounded)
{
    struct gw_pol_req rq = {0};
    for (int i = 0; i < GW_POL_MAX_FIELDS; i++) {
        ck_assert(gw_pol_up_add(&rq, "x-a", "v"));
        ck_assert(gw_pol_resp_add(&rq, "x-b", "v"));
    }
    ck_assert(!gw_pol_up_add(&rq, "x-a", "v"));
    ck_assert(!gw_pol_resp_add(&rq, "x-b", "v"));
    /* An answer's fields beyond its store or count are left out. */
    char big[700];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = 0;
    struct gw_http_kv f[6] = {{"a", big}, {"b", big}, {"c", "1"},
                              {"d", "2"}, {"e", "3"}, {"f", "4"}};
    ck_assert_int_eq(gw_pol_refuse(&rq, 503, "m", f, 6), GW_POL_ANSWERED);
    ck_assert_uint_eq(rq.answer.nfields, GW_POL_MAX_ANSWER_FIELDS);
    ck_assert_str_eq(rq.answer.fields[0].name, "a");
    ck_assert_str_eq(rq.answer.fields[1].name, "c");
    ck_assert_str_eq(rq.answer.fields[3].name, "e");
}
END_TEST

static struct gw_http_head *parse(enum gw_http_kind kind, const char *text)
{
    struct gw_http_parser *p;
    ck_assert_int_eq(gw_http_parser_new(&p, kind, NULL), 0);
    size_t used;
    struct gw_http_event ev;
    ck_assert_int_eq(gw_http_parser_feed(p, text, strlen(text), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_parser_free(p);
    return ev.head;
}

START_TEST(owned_fields_drop_the_clients_copies_and_carry_the_chains)
{
    load_table();
    const struct gw_pol_set *s = gw_pol_table_set(table);
    struct gw_http_head *h = parse(GW_HTTP_REQUEST, "GET /x HTTP/1.1\r\nHost: a\r\n"
                                                    "X-Consumer: forged\r\nx-tier: platinum\r\n"
                                                    "X-TIER: again\r\nAccept: */*\r\n\r\n");
    char buf[2048];
    size_t n = 0;
    /* A route without policies: the set's names are dropped all the same. */
    struct gw_http_kv owned[GW_HTTP_MAX_OWNED];
    size_t nowned = gw__pol_owned_fields(NULL, s, owned, 0, GW_HTTP_MAX_OWNED);
    ck_assert_uint_eq(nowned, 2);
    struct gw_http_fwd fwd = {
        .client_addr = "192.0.2.9", .request_id = "rid", .owned = owned, .nowned = nowned};
    ck_assert_int_eq(gw_http_request_head_write(h, &fwd, buf, sizeof buf - 1, &n), 0);
    buf[n] = 0;
    ck_assert_ptr_null(strcasestr(buf, "x-consumer"));
    ck_assert_ptr_null(strcasestr(buf, "x-tier"));
    ck_assert_ptr_nonnull(strstr(buf, "Accept: */*\r\n"));
    /* With a chain: its fields, with their values, once each. */
    struct gw_pol_req rq = {0};
    gw_pol_up_add(&rq, "x-consumer", "bob");
    gw_pol_up_add(&rq, "x-tier", "gold");
    nowned = gw__pol_owned_fields(&rq, s, owned, 0, GW_HTTP_MAX_OWNED);
    ck_assert_uint_eq(nowned, 2);
    fwd.nowned = nowned;
    ck_assert_int_eq(gw_http_request_head_write(h, &fwd, buf, sizeof buf - 1, &n), 0);
    buf[n] = 0;
    ck_assert_ptr_nonnull(strstr(buf, "\r\nx-consumer: bob\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "\r\nx-tier: gold\r\n"));
    ck_assert_ptr_null(strstr(buf, "forged"));
    ck_assert_ptr_null(strstr(buf, "platinum"));
    ck_assert_ptr_null(strstr(buf, "again"));
    gw_http_head_free(h);
    route_table_unref(table);
    table = NULL;
}
END_TEST

START_TEST(response_fields_replace_the_upstreams_and_add_to_vary)
{
    struct gw_http_head *req = parse(GW_HTTP_REQUEST, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct gw_http_head *resp =
        parse(GW_HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nRateLimit: up\r\n"
                                "Vary: Accept-Encoding\r\nX-Other: kept\r\n\r\n");
    struct gw_http_kv f[] = {{"RateLimit", "limit=10, remaining=9"}, {"Vary", "Origin"}};
    struct gw_http_kv set[2], add[2];
    size_t nset = 0, nadd = 0;
    gw__pol_resp_split(f, 2, set, &nset, add, &nadd);
    ck_assert_uint_eq(nset, 1);
    ck_assert_uint_eq(nadd, 1);
    struct gw_http_edits e = {.set = set, .nset = nset, .add = add, .nadd = nadd};
    char buf[2048];
    size_t n = 0;
    enum gw_http_out_framing fr;
    bool keep;
    ck_assert_int_eq(gw_http_response_head_write_edited(resp, req, "rid", true, &e, buf,
                                                        sizeof buf - 1, &n, &fr, &keep),
                     0);
    buf[n] = 0;
    ck_assert_ptr_null(strstr(buf, "RateLimit: up"));
    ck_assert_ptr_nonnull(strstr(buf, "RateLimit: limit=10, remaining=9\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Vary: Accept-Encoding\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Vary: Origin\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "X-Other: kept\r\n"));
    gw_http_head_free(req);
    gw_http_head_free(resp);
}
END_TEST

START_TEST(vary_in_any_case_is_added_to_and_only_vary)
{
    struct gw_http_kv f[] = {{"VARY", "a"},   {"vary", "b"}, {"Varying", "c"},
                             {"X-Vary", "d"}, {"V", "e"},    {"RateLimit", "f"}};
    struct gw_http_kv set[6], add[6];
    size_t nset = 0, nadd = 0;
    gw__pol_resp_split(f, 6, set, &nset, add, &nadd);
    ck_assert_uint_eq(nadd, 2);
    ck_assert_str_eq(add[0].value, "a");
    ck_assert_str_eq(add[1].value, "b");
    ck_assert_uint_eq(nset, 4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy_chain");
    TCase *tc = tcase_create("exchange");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, chain_runs_in_order_and_stops_at_the_first_answer);
    tcase_add_test(tc, chain_that_passes_leaves_the_consumer_and_its_fields);
    tcase_add_test(tc, acl_without_an_identity_answers_401);
    tcase_add_test(tc, acl_with_a_consumer_outside_allow_answers_403);
    tcase_add_test(tc, acl_with_a_denied_consumer_answers_403);
    tcase_add_test(tc, every_answer_of_the_request_carries_the_chains_response_fields);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("data");
    tcase_add_test(td, acl_decides_on_the_consumer_or_the_subject);
    tcase_add_test(td, field_lists_are_bounded);
    tcase_add_test(td, owned_fields_drop_the_clients_copies_and_carry_the_chains);
    tcase_add_test(td, response_fields_replace_the_upstreams_and_add_to_vary);
    tcase_add_test(td, vary_in_any_case_is_added_to_and_only_vary);
    suite_add_tcase(s, td);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
