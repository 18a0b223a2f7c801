/*
 * test_auth.c: the key_auth and basic_auth policy kinds
 * (gateway/src/policy/key_auth.c, basic_auth.c) over doubles of the chain
 * (gw_pol_refuse records the answer) and of the denial counters: keys from
 * a header and a query parameter (dropped from the upstream's query),
 * Basic credentials verified on the blocking pool, a dummy verification
 * for unknown user-ids that costs what a wrong password does, the cache of
 * successes, malformed input, and every compile error. Each request runs
 * in a runtime process, as in the gateway.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>

#include "policy/auth.h"
#include "rt/rt.h"
#include "tls/compat.h"

/* ---- doubles of the chain and the counters ---------------------------------- */

static int last_status;
static char last_message[128];
static char last_www[512];
static char last_retry[16];
static char last_reason[64];
static char last_policy[GW_POL_NAME_MAX + 1];
static atomic_int n_refused, n_401, n_503, n_retry_1;
/* Several request processes refuse at once in the pool-bound test, on
 * different scheduler threads: the last answer's record is written under a
 * lock. */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;

int gw_pol_refuse(struct gw_pol_req *rq, int status, const char *message,
                  const struct gw_http_kv *extra, size_t nextra)
{
    (void)rq;
    pthread_mutex_lock(&last_lock);
    last_status = status;
    snprintf(last_message, sizeof last_message, "%s", message);
    last_www[0] = last_retry[0] = '\0';
    for (size_t i = 0; i < nextra; i++) {
        if (strcasecmp(extra[i].name, "WWW-Authenticate") == 0)
            snprintf(last_www, sizeof last_www, "%s", extra[i].value);
        if (strcasecmp(extra[i].name, "Retry-After") == 0) {
            snprintf(last_retry, sizeof last_retry, "%s", extra[i].value);
            atomic_fetch_add(&n_retry_1, strcmp(extra[i].value, "1") == 0);
        }
    }
    pthread_mutex_unlock(&last_lock);
    atomic_fetch_add(&n_refused, 1);
    if (status == 401)
        atomic_fetch_add(&n_401, 1);
    if (status == 503)
        atomic_fetch_add(&n_503, 1);
    return GW_POL_ANSWERED;
}

void gw_pol_count_denial(const char *policy, const char *reason)
{
    pthread_mutex_lock(&last_lock);
    snprintf(last_policy, sizeof last_policy, "%s", policy);
    snprintf(last_reason, sizeof last_reason, "%s", reason);
    pthread_mutex_unlock(&last_lock);
}

/* ---- the runtime ------------------------------------------------------------- */

static char failure[512];
static atomic_int failed;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c) && atomic_exchange(&failed, 1) == 0)                                              \
            snprintf(failure, sizeof failure, "%s:%d: %s", __FILE__, __LINE__, #c);                \
    } while (0)

static void run(void (*body)(void *))
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    atomic_store(&failed, 0);
    ck_assert_int_eq(rt_start(&cfg), 0);
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(body, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 150000, NULL), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
}

/* ---- consumers and policies -------------------------------------------------- */

#define ALICE_KEY "alice-0123456789abcdef"
#define BOB_KEY "bob-0123456789abcdef+/="
#define ITER 10000u

static unsigned char key_hashes[3][32];
static struct gw_pol_consumer consumers[3];

static void make_record(struct gw_pol_pbkdf2 *rec, const char *pw, uint32_t iterations)
{
    rec->iterations = iterations;
    rec->salt_len = 16;
    for (size_t i = 0; i < rec->salt_len; i++)
        rec->salt[i] = (unsigned char)(i * 7 + strlen(pw));
    ck_assert_int_eq(
        gw_tls_pbkdf2_sha256(pw, strlen(pw), rec->salt, rec->salt_len, iterations, rec->hash, 32),
        0);
}

/* alice: a key and basic alice/s3cret; bob: a key; carol: basic only. */
static void consumers_init(uint32_t iterations)
{
    ck_assert_int_eq(gw_tls_sha256(ALICE_KEY, strlen(ALICE_KEY), key_hashes[0]), 0);
    ck_assert_int_eq(gw_tls_sha256(BOB_KEY, strlen(BOB_KEY), key_hashes[1]), 0);
    memset(consumers, 0, sizeof consumers);
    consumers[0] = (struct gw_pol_consumer){.name = "alice",
                                            .file = "p.json",
                                            .line = 3,
                                            .column = 5,
                                            .api_keys = &key_hashes[0],
                                            .napi_keys = 1,
                                            .basic_user = "alice"};
    make_record(&consumers[0].basic, "s3cret", iterations);
    consumers[1] = (struct gw_pol_consumer){.name = "bob",
                                            .file = "p.json",
                                            .line = 9,
                                            .column = 5,
                                            .api_keys = &key_hashes[1],
                                            .napi_keys = 1};
    consumers[2] = (struct gw_pol_consumer){
        .name = "carol", .file = "p.json", .line = 12, .column = 5, .basic_user = "carol"};
    make_record(&consumers[2].basic, "pässwörd", iterations);
}

static int compile(const struct gw_pol_kind *k, const char *json, const struct gw_pol_consumer *cs,
                   size_t n, struct jpos_diags *d, void **state)
{
    struct jpos_doc doc;
    memset(&doc, 0, sizeof doc);
    int rc = jpos_doc_parse(&doc, "p.json", json, strlen(json), d);
    if (rc == 0) {
        struct jpos_val root;
        jpos_val_root(&doc, &root);
        struct gw_pol_env env = {.consumers = cs, .nconsumers = n, .dir = "."};
        rc = k->compile(d, &root, &env, state);
    }
    jpos_doc_done(&doc);
    return rc;
}

static void *must_compile(const struct gw_pol_kind *k, const char *json)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *state = NULL;
    int rc = compile(k, json, consumers, 3, &d, &state);
    if (rc)
        jpos_diags_print(&d, stderr);
    jpos_diags_done(&d);
    T_ASSERT(rc == 0 && state);
    return state;
}

/* The first error of compiling `json` (consumers cs), or "" when none. */
static char first_error[512];
static const char *compile_error(const struct gw_pol_kind *k, const char *json,
                                 const struct gw_pol_consumer *cs, size_t n)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *state = NULL;
    int rc = compile(k, json, cs, n, &d, &state);
    first_error[0] = '\0';
    if (rc == 0)
        k->free(state);
    else if (d.n)
        snprintf(first_error, sizeof first_error, "%s:%u:%u: %s", d.items[0].file, d.items[0].line,
                 d.items[0].column, d.items[0].message);
    jpos_diags_done(&d);
    return first_error;
}

/* ---- requests ---------------------------------------------------------------- */

struct req {
    struct gw_http_header hs[4];
    struct gw_http_head head;
    struct gw_pol_req rq;
};

static void req_init(struct req *r, const char *query)
{
    memset(r, 0, sizeof *r);
    r->head.method = "GET";
    r->head.target = "/x";
    r->head.headers = r->hs;
    r->rq.head = &r->head;
    r->rq.query = query;
    r->rq.query_len = query ? strlen(query) : 0;
    pthread_mutex_lock(&last_lock);
    last_status = 0;
    last_reason[0] = last_www[0] = '\0';
    pthread_mutex_unlock(&last_lock);
}

static void req_header(struct req *r, const char *name, const char *value)
{
    struct gw_http_header *h = &r->hs[r->head.nheaders++];
    *h = (struct gw_http_header){name, value, strlen(name), strlen(value)};
}

/* "Basic base64(user:pw)" into buf. */
static const char *basic(char *buf, size_t cap, const char *user, const char *pw)
{
    char plain[2048];
    size_t n = (size_t)snprintf(plain, sizeof plain, "%s:%s", user, pw), olen = 0;
    strcpy(buf, "Basic ");
    ck_assert_int_eq(mbedtls_base64_encode((unsigned char *)buf + 6, cap - 6, &olen,
                                           (const unsigned char *)plain, n),
                     0);
    return buf;
}

static const char *const KEY_POLICY = "{\"name\": \"keys\", \"type\": \"key_auth\"}";
static const char *const KEY_QUERY_POLICY =
    "{\"name\": \"keys\", \"type\": \"key_auth\", \"query\": \"api_key\"}";
static const char *const BASIC_POLICY = "{\"name\": \"login\", \"type\": \"basic_auth\"}";

/* ---- key_auth ------------------------------------------------------------------ */

static void body_key_header(void *arg)
{
    (void)arg;
    const struct gw_pol_kind *k = &gw__pol_kind_key_auth;
    void *st = must_compile(k, KEY_POLICY);
    struct req r;
    req_init(&r, NULL);
    req_header(&r, "X-Api-Key", ALICE_KEY);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT);
    T_ASSERT(r.rq.consumer == &consumers[0]);
    req_init(&r, NULL);
    req_header(&r, "x-api-key", BOB_KEY);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT);
    T_ASSERT(r.rq.consumer == &consumers[1]);
    /* Twice, even with one key: which one would the upstream believe? */
    req_init(&r, NULL);
    req_header(&r, "x-api-key", ALICE_KEY);
    req_header(&r, "X-API-KEY", ALICE_KEY);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    T_ASSERT(strcmp(last_reason, "invalid_credentials") == 0);
    T_ASSERT(!r.rq.consumer);
    /* Empty: as if there were none. */
    req_init(&r, NULL);
    req_header(&r, "x-api-key", "");
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    T_ASSERT(strcmp(last_reason, "missing_credentials") == 0);
    k->free(st);
}

START_TEST(test_key_from_header_admits_its_consumer)
{
    consumers_init(ITER);
    run(body_key_header);
}
END_TEST

static void body_key_refused(void *arg)
{
    (void)arg;
    const struct gw_pol_kind *k = &gw__pol_kind_key_auth;
    void *st = must_compile(k, KEY_POLICY);
    struct req r;
    /* A wrong key, a key one byte short of a real one, none, an empty one. */
    req_init(&r, NULL);
    req_header(&r, "x-api-key", "mallory-0123456789abcdef");
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED);
    T_ASSERT(last_status == 401 && !r.rq.consumer);
    T_ASSERT(strcmp(last_www, "ApiKey realm=\"tandem\", header=\"x-api-key\"") == 0);
    T_ASSERT(strcmp(last_reason, "invalid_credentials") == 0);
    T_ASSERT(strcmp(last_policy, "keys") == 0);
    req_init(&r, NULL);
    req_header(&r, "x-api-key", "alice-0123456789abcde");
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    req_init(&r, NULL);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    T_ASSERT(strcmp(last_reason, "missing_credentials") == 0);
    T_ASSERT(strcmp(last_www, "ApiKey realm=\"tandem\", header=\"x-api-key\"") == 0);
    req_init(&r, NULL);
    req_header(&r, "x-api-key", "");
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    T_ASSERT(strcmp(last_reason, "missing_credentials") == 0);
    /* Two copies, even of a good key: the upstream could read the other. */
    req_init(&r, NULL);
    req_header(&r, "x-api-key", ALICE_KEY);
    req_header(&r, "x-api-key", BOB_KEY);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    T_ASSERT(strcmp(last_reason, "invalid_credentials") == 0);
    /* Longer than GW_POL_KEY_MAX: refused unhashed, no crash. */
    static char big[64 * 1024];
    memset(big, 'k', sizeof big - 1);
    req_init(&r, NULL);
    req_header(&r, "x-api-key", big);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    /* A key in the query is not read unless "query" is configured. */
    req_init(&r, "api_key=" ALICE_KEY);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    k->free(st);
}

START_TEST(test_key_wrong_missing_or_malformed_is_401_with_challenge)
{
    consumers_init(ITER);
    run(body_key_refused);
}
END_TEST

static void body_key_query(void *arg)
{
    (void)arg;
    const struct gw_pol_kind *k = &gw__pol_kind_key_auth;
    void *st = must_compile(k, KEY_QUERY_POLICY);
    struct req r;
    req_init(&r, "a=1&api_key=" ALICE_KEY "&b=2");
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT);
    T_ASSERT(r.rq.consumer == &consumers[0]);
    T_ASSERT(r.rq.query && r.rq.query_len == 7 && strcmp(r.rq.query, "a=1&b=2") == 0);
    /* The only parameter: no query is left. */
    req_init(&r, "api_key=" ALICE_KEY);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT);
    T_ASSERT(!r.rq.query && r.rq.query_len == 0);
    /* Percent-encoded, name and value ('+' stays a plus). */
    req_init(&r, "api%5Fkey=bob-0123456789abcdef%2B%2F%3D&z");
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT);
    T_ASSERT(r.rq.consumer == &consumers[1]);
    T_ASSERT(r.rq.query && strcmp(r.rq.query, "z") == 0);
    req_init(&r, "api_key=bob-0123456789abcdef+/=");
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[1]);
    /* The header wins, and the parameter is still taken out. */
    req_init(&r, "api_key=whatever&q=1");
    req_header(&r, "x-api-key", ALICE_KEY);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[0]);
    T_ASSERT(r.rq.query && strcmp(r.rq.query, "q=1") == 0);
    /* Twice, a broken escape, a wrong key: 401, query untouched. */
    const char *bad[] = {"api_key=" ALICE_KEY "&api_key=" ALICE_KEY, "api_key=%zz", "api_key=%4",
                         "api_key=wrong-0123456789abcdef",           "api_key=",    "other=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        req_init(&r, bad[i]);
        T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
        T_ASSERT(r.rq.query == bad[i]);
    }
    T_ASSERT(strcmp(last_www, "ApiKey realm=\"tandem\", header=\"x-api-key\", query=\"api_key\"") ==
             0);
    k->free(st);
}

START_TEST(test_key_from_query_is_dropped_from_the_upstream_query)
{
    consumers_init(ITER);
    run(body_key_query);
}
END_TEST

START_TEST(test_query_take_keeps_other_parameters_in_order)
{
    char val[64], rest[128];
    size_t vlen, n, rlen;
    const char *q = "x=1&key=v%41&y&key=2&&z=%zz";
    ck_assert_int_eq(
        gw__pol_query_take(q, strlen(q), "key", val, sizeof val, &vlen, &n, rest, &rlen), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(vlen, 2);
    ck_assert(memcmp(val, "vA", 2) == 0);
    ck_assert_uint_eq(rlen, strlen("x=1&y&z=%zz"));
    ck_assert(memcmp(rest, "x=1&y&z=%zz", rlen) == 0);
    /* A value over the capacity is an error, not a cut key. */
    ck_assert_int_eq(gw__pol_query_take("key=abcdef", 10, "key", val, 4, &vlen, &n, rest, &rlen),
                     -EINVAL);
    /* A name that merely starts like it is another parameter. */
    ck_assert_int_eq(
        gw__pol_query_take("keys=1", 6, "key", val, sizeof val, &vlen, &n, rest, &rlen), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(rlen, 6);
}
END_TEST

START_TEST(test_key_compile_errors_are_reported_with_positions)
{
    consumers_init(ITER);
    const struct gw_pol_kind *k = &gw__pol_kind_key_auth;
    ck_assert_str_eq(compile_error(k, "{\"type\": \"key_auth\",\n \"heder\": \"x\"}", consumers, 3),
                     "p.json:2:2: unknown key \"heder\" in key_auth policy; did you mean "
                     "\"header\"?");
    ck_assert(strstr(compile_error(k, "{\"header\": \"x api key\"}", consumers, 3),
                     "is not a valid header name"));
    ck_assert(strstr(compile_error(k, "{\"query\": \"a&b\"}", consumers, 3),
                     "is not a valid query parameter name"));
    ck_assert(strstr(compile_error(k, "{\"header\": false}", consumers, 3), "from nowhere"));
    ck_assert(strstr(compile_error(k, "{\"realm\": \"a\\\"b\"}", consumers, 3), "a realm is"));
    ck_assert_str_eq(compile_error(k, "{\"header\": false, \"query\": \"k\"}", consumers, 3), "");
    /* One key held by two consumers: said at the second, without the key. */
    struct gw_pol_consumer two[2] = {consumers[0], consumers[1]};
    two[1].api_keys = &key_hashes[0];
    ck_assert_str_eq(compile_error(k, KEY_POLICY, two, 2),
                     "p.json:9:5: consumer \"bob\" holds an API key consumer \"alice\" holds too");
}
END_TEST

START_TEST(test_key_describe_shows_no_secret)
{
    consumers_init(ITER);
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *st = NULL;
    ck_assert_int_eq(compile(&gw__pol_kind_key_auth, KEY_QUERY_POLICY, consumers, 3, &d, &st), 0);
    json_t *j = gw__pol_kind_key_auth.describe(st);
    char *text = json_dumps(j, JSON_SORT_KEYS);
    ck_assert_str_eq(text, "{\"header\": \"x-api-key\", \"keys\": 2, \"query\": \"api_key\", "
                           "\"realm\": \"tandem\"}");
    free(text);
    json_decref(j);
    gw__pol_kind_key_auth.free(st);
    jpos_diags_done(&d);
}
END_TEST

static struct gw__pol_key_counts key_counts(void)
{
    struct gw__pol_key_counts c;
    gw__pol_key_counts(&c);
    return c;
}

static void body_key_remembered(void *arg)
{
    (void)arg;
    const struct gw_pol_kind *k = &gw__pol_kind_key_auth;
    void *st = must_compile(k, KEY_POLICY);
    struct req r;
    struct gw__pol_key_counts c0 = key_counts();
    req_init(&r, NULL);
    req_header(&r, "x-api-key", ALICE_KEY);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[0]);
    struct gw__pol_key_counts c1 = key_counts();
    T_ASSERT(c1.hashed == c0.hashed + 1 && c1.remembered == c0.remembered);
    /* Again: known by its tag, the same consumer, no SHA-256. */
    for (int i = 0; i < 3; i++) {
        req_init(&r, NULL);
        req_header(&r, "x-api-key", ALICE_KEY);
        T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[0]);
    }
    struct gw__pol_key_counts c2 = key_counts();
    T_ASSERT(c2.hashed == c1.hashed && c2.remembered == c1.remembered + 3);
    /* A key one byte off a remembered one, and one byte longer: never
     * taken for it, looked up in full and refused each time. */
    const char *near[] = {"alice-0123456789abcdeF", "alice-0123456789abcdef0"};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            req_init(&r, NULL);
            req_header(&r, "x-api-key", near[i]);
            T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401 && !r.rq.consumer);
        }
    struct gw__pol_key_counts c3 = key_counts();
    T_ASSERT(c3.hashed == c2.hashed + 4 && c3.remembered == c2.remembered);
    /* Another consumer's key is its own, remembered beside alice's. */
    for (int i = 0; i < 2; i++) {
        req_init(&r, NULL);
        req_header(&r, "x-api-key", BOB_KEY);
        T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[1]);
    }
    /* 256 other keys: many of them fall on the entries holding alice's
     * and bob's tags (the table has 64), and each is refused there. */
    for (int i = 0; i < 256; i++) {
        char wrong[64];
        snprintf(wrong, sizeof wrong, "mallory-%d-0123456789", i);
        req_init(&r, NULL);
        req_header(&r, "x-api-key", wrong);
        T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401 && !r.rq.consumer);
    }
    k->free(st);
    /* A policy compiled anew (a reload: a key may have been revoked)
     * remembers nothing of the old one's. */
    st = must_compile(k, KEY_POLICY);
    struct gw__pol_key_counts c4 = key_counts();
    req_init(&r, NULL);
    req_header(&r, "x-api-key", ALICE_KEY);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[0]);
    struct gw__pol_key_counts c5 = key_counts();
    T_ASSERT(c5.hashed == c4.hashed + 1 && c5.remembered == c4.remembered);
    k->free(st);
}

START_TEST(test_key_found_once_is_known_by_its_tag_and_no_other_key_is)
{
    consumers_init(ITER);
    run(body_key_remembered);
}
END_TEST

/* Request processes on both schedulers present both keys at once, each
 * filling and reading the table of keys found while others do: every one
 * gets its own consumer. */
enum { KEY_RACERS = 8, KEY_RACES = 4000 };
static void *key_shared;
static atomic_int key_racers_done;

static void key_racer(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (int i = 0; i < KEY_RACES; i++) {
        bool alice = ((uintptr_t)i + id) % 2 == 0;
        struct gw_http_header h = {"x-api-key", alice ? ALICE_KEY : BOB_KEY, 9,
                                   strlen(alice ? ALICE_KEY : BOB_KEY)};
        struct gw_http_head head = {.method = "GET", .target = "/x", .headers = &h, .nheaders = 1};
        struct gw_pol_req rq = {.head = &head};
        T_ASSERT(gw__pol_kind_key_auth.run(key_shared, &rq) == GW_POL_NEXT);
        T_ASSERT(rq.consumer == &consumers[alice ? 0 : 1]);
        if (i % 64 == 0)
            rt_yield();
    }
    atomic_fetch_add(&key_racers_done, 1);
}

static void body_key_racers(void *arg)
{
    (void)arg;
    key_shared = must_compile(&gw__pol_kind_key_auth, KEY_POLICY);
    atomic_store(&key_racers_done, 0);
    struct gw__pol_key_counts c0 = key_counts();
    for (uintptr_t i = 0; i < KEY_RACERS; i++)
        T_ASSERT(rt_spawn(key_racer, (void *)i, NULL, NULL) == 0);
    while (atomic_load(&key_racers_done) < KEY_RACERS)
        rt_sleep(5);
    struct gw__pol_key_counts c1 = key_counts();
    T_ASSERT(c1.remembered - c0.remembered > KEY_RACERS * KEY_RACES / 2);
    gw__pol_kind_key_auth.free(key_shared);
}

START_TEST(test_keys_found_on_both_schedulers_at_once_each_get_their_consumer)
{
    consumers_init(ITER);
    run(body_key_racers);
}
END_TEST

/* ---- basic_auth ---------------------------------------------------------------- */

static uint64_t hashes(void)
{
    struct gw__pol_basic_counts c;
    gw__pol_basic_counts(&c);
    return c.hashes;
}

static void body_basic_good_and_bad(void *arg)
{
    (void)arg;
    const struct gw_pol_kind *k = &gw__pol_kind_basic_auth;
    void *st =
        must_compile(k, "{\"name\": \"login\", \"type\": \"basic_auth\", \"cache_size\": 0}");
    char buf[256];
    struct req r;
    req_init(&r, NULL);
    req_header(&r, "Authorization", basic(buf, sizeof buf, "alice", "s3cret"));
    uint64_t h0 = hashes();
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT);
    T_ASSERT(r.rq.consumer == &consumers[0]);
    T_ASSERT(hashes() == h0 + 1);
    /* UTF-8 passwords are bytes as the client sent them. */
    req_init(&r, NULL);
    req_header(&r, "authorization", basic(buf, sizeof buf, "carol", "pässwörd"));
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[2]);
    /* The scheme is case-insensitive. */
    req_init(&r, NULL);
    basic(buf, sizeof buf, "alice", "s3cret");
    memcpy(buf, "bASIC", 5);
    req_header(&r, "authorization", buf);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[0]);
    /* A wrong password, and an unknown user: the same answer, and a hash
     * computed for each. */
    req_init(&r, NULL);
    req_header(&r, "authorization", basic(buf, sizeof buf, "alice", "s3creT"));
    h0 = hashes();
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401 && !r.rq.consumer);
    T_ASSERT(strcmp(last_www, "Basic realm=\"tandem\", charset=\"UTF-8\"") == 0);
    T_ASSERT(strcmp(last_reason, "invalid_credentials") == 0);
    char wrong_msg[128];
    snprintf(wrong_msg, sizeof wrong_msg, "%s", last_message);
    req_init(&r, NULL);
    req_header(&r, "authorization", basic(buf, sizeof buf, "mallory", "s3cret"));
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401 && !r.rq.consumer);
    T_ASSERT(strcmp(last_reason, "invalid_credentials") == 0);
    T_ASSERT(strcmp(last_message, wrong_msg) == 0);
    T_ASSERT(hashes() == h0 + 2);
    /* bob has no basic credential: unknown too. */
    req_init(&r, NULL);
    req_header(&r, "authorization", basic(buf, sizeof buf, "bob", ""));
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    req_init(&r, NULL);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    T_ASSERT(strcmp(last_reason, "missing_credentials") == 0);
    T_ASSERT(strcmp(last_www, "Basic realm=\"tandem\", charset=\"UTF-8\"") == 0);
    /* Every verification ran on the blocking pool. */
    struct gw__pol_basic_counts c;
    gw__pol_basic_counts(&c);
    T_ASSERT(c.hashes >= 6 && c.on_scheduler == 0);
    k->free(st);
}

START_TEST(test_basic_admits_the_right_password_on_the_blocking_pool_and_refuses_others)
{
    consumers_init(ITER);
    run(body_basic_good_and_bad);
}
END_TEST

static void body_basic_malformed(void *arg)
{
    (void)arg;
    const struct gw_pol_kind *k = &gw__pol_kind_basic_auth;
    void *st = must_compile(k, BASIC_POLICY);
    static char big[8192];
    memset(big, 'Q', sizeof big - 1);
    memcpy(big, "Basic ", 6);
    char nocolon[64], ctl[64], longpw[4096], pw[1100];
    basic(nocolon, sizeof nocolon, "alice", "x");
    /* "alice:x" -> no colon: encode "alicex" */
    size_t olen;
    strcpy(nocolon, "Basic ");
    mbedtls_base64_encode((unsigned char *)nocolon + 6, 50, &olen,
                          (const unsigned char *)"alices3cret", 11);
    basic(ctl, sizeof ctl, "alice", "s3\ncret");
    memset(pw, 'p', sizeof pw - 1);
    pw[sizeof pw - 1] = '\0';
    basic(longpw, sizeof longpw, "alice", pw);
    struct {
        const char *v;
        const char *reason;
    } cases[] = {
        {"Basic", "invalid_credentials"},
        {"Bearer abc", "missing_credentials"},
        {"Basicx YWxpY2U6czNjcmV0", "missing_credentials"},
        {"Basic ", "invalid_credentials"},
        {"Basic !!!!", "invalid_credentials"},
        {"Basic YWxpY2U6czNjcmV0=", "invalid_credentials"}, /* padding where none belongs */
        {"Basic YWxpY2U6czNjcmV0===", "invalid_credentials"},
        {"Basic YW=xpY2U6czNjcmV0", "invalid_credentials"},
        {"Basic Y", "invalid_credentials"},
        {"Basic Og==", "invalid_credentials"}, /* ":" : no user-id */
        {nocolon, "invalid_credentials"},
        {ctl, "invalid_credentials"},
        {longpw, "invalid_credentials"},
        {big, "invalid_credentials"},
    };
    uint64_t h0 = hashes();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct req r;
        req_init(&r, NULL);
        req_header(&r, "authorization", cases[i].v);
        T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED);
        T_ASSERT(last_status == 401 && !r.rq.consumer);
        if (strcmp(last_reason, cases[i].reason) != 0)
            fprintf(stderr, "case %zu \"%.40s\": %s\n", i, cases[i].v, last_reason);
        T_ASSERT(strcmp(last_reason, cases[i].reason) == 0);
        T_ASSERT(strcmp(last_www, "Basic realm=\"tandem\", charset=\"UTF-8\"") == 0);
    }
    /* Nothing malformed costs a hash. */
    T_ASSERT(hashes() == h0);
    /* Two Authorization fields, even if one is right. */
    char good[128];
    struct req r;
    req_init(&r, NULL);
    req_header(&r, "authorization", basic(good, sizeof good, "alice", "s3cret"));
    req_header(&r, "authorization", "Basic Og==");
    T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    /* Unpadded base64 of the right credentials is accepted. */
    size_t n = strlen(good);
    while (good[n - 1] == '=')
        good[--n] = '\0';
    req_init(&r, NULL);
    req_header(&r, "authorization", good);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[0]);
    k->free(st);
}

START_TEST(test_basic_malformed_authorization_is_401_without_a_hash)
{
    consumers_init(ITER);
    run(body_basic_malformed);
}
END_TEST

static void body_basic_cache(void *arg)
{
    (void)arg;
    const struct gw_pol_kind *k = &gw__pol_kind_basic_auth;
    void *st =
        must_compile(k, "{\"name\": \"login\", \"type\": \"basic_auth\", \"cache_ttl_s\": 1}");
    char good[128], bad[128];
    basic(good, sizeof good, "alice", "s3cret");
    basic(bad, sizeof bad, "alice", "wrong");
    struct req r;
    uint64_t h0 = hashes();
    for (int i = 0; i < 5; i++) {
        req_init(&r, NULL);
        req_header(&r, "authorization", good);
        T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &consumers[0]);
    }
    /* One hash for five requests. */
    T_ASSERT(hashes() == h0 + 1);
    /* A failure is never cached: each costs a hash. */
    for (int i = 0; i < 2; i++) {
        req_init(&r, NULL);
        req_header(&r, "authorization", bad);
        T_ASSERT(k->run(st, &r.rq) == GW_POL_ANSWERED && last_status == 401);
    }
    T_ASSERT(hashes() == h0 + 3);
    /* After the TTL the password is verified again. */
    rt_sleep(1100);
    req_init(&r, NULL);
    req_header(&r, "authorization", good);
    T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT);
    T_ASSERT(hashes() == h0 + 4);
    k->free(st);

    /* cache_ttl_s 0: no cache. */
    st = must_compile(k, "{\"type\": \"basic_auth\", \"cache_ttl_s\": 0}");
    h0 = hashes();
    for (int i = 0; i < 3; i++) {
        req_init(&r, NULL);
        req_header(&r, "authorization", good);
        T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT);
    }
    T_ASSERT(hashes() == h0 + 3);
    k->free(st);
}

START_TEST(test_basic_cache_spares_repeated_successes_and_expires)
{
    consumers_init(ITER);
    run(body_basic_cache);
}
END_TEST

/* Eight consumers with basic credentials u0..u7, password "pw<i>". */
static struct gw_pol_consumer many[8];
static char many_names[8][8];

static void body_basic_cache_bound(void *arg)
{
    (void)arg;
    const struct gw_pol_kind *k = &gw__pol_kind_basic_auth;
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *st = NULL;
    T_ASSERT(compile(k, "{\"type\": \"basic_auth\", \"cache_size\": 4}", many, 8, &d, &st) == 0);
    json_t *j = k->describe(st);
    T_ASSERT(json_integer_value(json_object_get(j, "cache_size")) == 4);
    json_decref(j);
    char buf[8][64];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 8; i++) {
            char pw[8];
            snprintf(pw, sizeof pw, "pw%d", i);
            struct req r;
            req_init(&r, NULL);
            req_header(&r, "authorization", basic(buf[i], sizeof buf[i], many_names[i], pw));
            T_ASSERT(k->run(st, &r.rq) == GW_POL_NEXT && r.rq.consumer == &many[i]);
        }
    /* 16 successes, 8 credentials, room for 4: at most 4 hits, so at
     * least 12 hashes. */
    struct gw__pol_basic_counts c;
    gw__pol_basic_counts(&c);
    T_ASSERT(c.cache_hits <= 4);
    T_ASSERT(c.hashes >= 12);
    k->free(st);
    jpos_diags_done(&d);
}

START_TEST(test_basic_cache_holds_at_most_cache_size_entries)
{
    for (int i = 0; i < 8; i++) {
        char pw[8];
        snprintf(many_names[i], sizeof many_names[i], "u%d", i);
        snprintf(pw, sizeof pw, "pw%d", i);
        many[i] = (struct gw_pol_consumer){.name = many_names[i], .basic_user = many_names[i]};
        make_record(&many[i].basic, pw, ITER);
    }
    run(body_basic_cache_bound);
}
END_TEST

/* One verification of `authz`, in microseconds. */
static uint64_t verify_us(void *st, const char *authz)
{
    struct req r;
    req_init(&r, NULL);
    req_header(&r, "authorization", authz);
    uint64_t t0 = rt_now_ns();
    T_ASSERT(gw__pol_kind_basic_auth.run(st, &r.rq) == GW_POL_ANSWERED);
    return (rt_now_ns() - t0) / 1000;
}

static void body_basic_timing(void *arg)
{
    (void)arg;
    void *st = must_compile(&gw__pol_kind_basic_auth, BASIC_POLICY);
    char wrong[128], unknown[128];
    basic(wrong, sizeof wrong, "alice", "not-it");
    basic(unknown, sizeof unknown, "nobody", "not-it");
    /* The fastest of many runs of each, the two interleaved one by one: a
     * shared machine's load only ever adds time, so the minimum is the work
     * itself, and a burst of load meets both alike. */
    uint64_t w = UINT64_MAX, u = UINT64_MAX;
    for (int i = 0; i < 15; i++) {
        uint64_t tw = verify_us(st, wrong), tu = verify_us(st, unknown);
        w = tw < w ? tw : w;
        u = tu < u ? tu : u;
    }
    fprintf(stderr, "basic_auth timing: wrong password %llu us, unknown user %llu us\n",
            (unsigned long long)w, (unsigned long long)u);
    /* A verification costs tens of milliseconds here; skipping it for an
     * unknown user-id would cost microseconds. Within a third of each
     * other is the same work. */
    T_ASSERT(w > 0 && u * 3 >= w * 2 && u * 2 <= w * 3);
    gw__pol_kind_basic_auth.free(st);
}

START_TEST(test_basic_unknown_user_costs_what_a_wrong_password_does)
{
    /* 20,000 iterations: each hash takes tens of milliseconds, long next
     * to the rest of a request. */
    consumers_init(20000);
    run(body_basic_timing);
}
END_TEST

/* Many verifications at once: at most GW_POL_BASIC_MAX_PENDING in the
 * pool, the rest answered 503 with Retry-After. */
static void *shared_state;
static atomic_int done;

static void one_attempt(void *arg)
{
    (void)arg;
    char wrong[128];
    basic(wrong, sizeof wrong, "alice", "not-it");
    struct req r;
    req_init(&r, NULL);
    req_header(&r, "authorization", wrong);
    T_ASSERT(gw__pol_kind_basic_auth.run(shared_state, &r.rq) == GW_POL_ANSWERED);
    atomic_fetch_add(&done, 1);
}

static void body_basic_pending(void *arg)
{
    (void)arg;
    shared_state = must_compile(&gw__pol_kind_basic_auth, BASIC_POLICY);
    int n = GW_POL_BASIC_MAX_PENDING + 8;
    for (int i = 0; i < n; i++)
        T_ASSERT(rt_spawn(one_attempt, NULL, NULL, NULL) == 0);
    while (atomic_load(&done) < n)
        rt_sleep(10);
    T_ASSERT(atomic_load(&n_503) >= 8);
    T_ASSERT(atomic_load(&n_401) + atomic_load(&n_503) == n);
    T_ASSERT(atomic_load(&n_401) >= GW_POL_BASIC_MAX_PENDING - 4);
    T_ASSERT(atomic_load(&n_retry_1) == atomic_load(&n_503));
    gw__pol_kind_basic_auth.free(shared_state);
}

START_TEST(test_basic_verifications_in_the_pool_are_bounded)
{
    /* Hashes of about half a second: every attempt is in the pool long
     * before the first one ends, also in the ThreadSanitizer build, where
     * spawning and the policy's own code run many times slower (the hash,
     * in mbedtls, does not). */
    consumers_init(400000);
    run(body_basic_pending);
}
END_TEST

START_TEST(test_basic_compile_errors_are_reported_with_positions)
{
    consumers_init(ITER);
    const struct gw_pol_kind *k = &gw__pol_kind_basic_auth;
    ck_assert_str_eq(compile_error(k, "{\"type\": \"basic_auth\", \"relm\": \"x\"}", consumers, 3),
                     "p.json:1:24: unknown key \"relm\" in basic_auth policy; did you mean "
                     "\"realm\"?");
    ck_assert(strstr(compile_error(k, "{\"realm\": \"\"}", consumers, 3), "a realm is"));
    ck_assert(strstr(compile_error(k, "{\"cache_ttl_s\": 3601}", consumers, 3), "3600"));
    ck_assert(strstr(compile_error(k, "{\"cache_size\": -1}", consumers, 3), "65536"));
    struct gw_pol_consumer two[2] = {consumers[0], consumers[2]};
    two[1].basic_user = "alice";
    ck_assert_str_eq(compile_error(k, BASIC_POLICY, two, 2),
                     "p.json:12:5: consumers \"alice\" and \"carol\" have the same basic-auth "
                     "user-id \"alice\"");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("policy_auth");
    TCase *tc = tcase_create("key_auth");
    tcase_add_test(tc, test_key_from_header_admits_its_consumer);
    tcase_add_test(tc, test_key_wrong_missing_or_malformed_is_401_with_challenge);
    tcase_add_test(tc, test_key_from_query_is_dropped_from_the_upstream_query);
    tcase_add_test(tc, test_query_take_keeps_other_parameters_in_order);
    tcase_add_test(tc, test_key_compile_errors_are_reported_with_positions);
    tcase_add_test(tc, test_key_describe_shows_no_secret);
    tcase_add_test(tc, test_key_found_once_is_known_by_its_tag_and_no_other_key_is);
    tcase_add_test(tc, test_keys_found_on_both_schedulers_at_once_each_get_their_consumer);
    suite_add_tcase(s, tc);
    tc = tcase_create("basic_auth");
    tcase_set_timeout(tc, 170);
    tcase_add_test(tc,
                   test_basic_admits_the_right_password_on_the_blocking_pool_and_refuses_others);
    tcase_add_test(tc, test_basic_malformed_authorization_is_401_without_a_hash);
    tcase_add_test(tc, test_basic_cache_spares_repeated_successes_and_expires);
    tcase_add_test(tc, test_basic_cache_holds_at_most_cache_size_entries);
    tcase_add_test(tc, test_basic_unknown_user_costs_what_a_wrong_password_does);
    tcase_add_test(tc, test_basic_verifications_in_the_pool_are_bounded);
    tcase_add_test(tc, test_basic_compile_errors_are_reported_with_positions);
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
