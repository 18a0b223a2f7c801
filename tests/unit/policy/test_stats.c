/* test_stats.c: the denial counters of tandem_policy_denials_total (stats.c):
 * counts per policy and reason, the bounded reason and policy labels, exact
 * counts from several threads at once; and the acl kind counting its
 * refusals under its definition's name. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/stats.h"

/* The count of (policy, reason) as gw_pol_denials_next reads it; -1 when the
 * policy has no series. */
static int64_t count_of(const char *policy, const char *reason)
{
    struct gw_pol_denials d;
    for (size_t pos = 0; gw_pol_denials_next(&pos, &d);)
        if (strcmp(d.name, policy) == 0)
            return (int64_t)d.n[gw_pol_denial_find(reason)];
    return -1;
}

static size_t series(void)
{
    struct gw_pol_denials d;
    size_t n = 0;
    for (size_t pos = 0; gw_pol_denials_next(&pos, &d);)
        n++;
    return n;
}

START_TEST(denials_are_counted_per_policy_and_reason)
{
    gw_pol_stats_reset();
    ck_assert_uint_eq(series(), 0);
    gw_pol_count_denial("keys", "missing_credentials");
    gw_pol_count_denial("keys", "missing_credentials");
    gw_pol_count_denial("keys", "invalid_credentials");
    gw_pol_count_denial("per-consumer", "rate_limited");
    ck_assert_int_eq(count_of("keys", "missing_credentials"), 2);
    ck_assert_int_eq(count_of("keys", "invalid_credentials"), 1);
    ck_assert_int_eq(count_of("keys", "rate_limited"), 0);
    ck_assert_int_eq(count_of("per-consumer", "rate_limited"), 1);
    ck_assert_int_eq(count_of("absent", "rate_limited"), -1);
    ck_assert_uint_eq(series(), 2);
    gw_pol_stats_reset();
    ck_assert_uint_eq(series(), 0);
}
END_TEST

START_TEST(every_listed_reason_has_its_own_label_and_others_count_as_other)
{
    gw_pol_stats_reset();
    for (int r = 0; r < GW_POL_DENIAL_REASONS; r++) {
        const char *name = gw_pol_denial_name((enum gw_pol_denial)r);
        ck_assert_int_eq(gw_pol_denial_find(name), r);
        for (int q = 0; q < r; q++)
            ck_assert_str_ne(name, gw_pol_denial_name((enum gw_pol_denial)q));
    }
    ck_assert_str_eq(gw_pol_denial_name(GW_POL_DENIAL_REASONS), "other");
    ck_assert_int_eq(gw_pol_denial_find("no such reason\n\"x"), GW_POL_DENY_OTHER);
    ck_assert_int_eq(gw_pol_denial_find(NULL), GW_POL_DENY_OTHER);
    gw_pol_count_denial("jwt", "made-up");
    gw_pol_count_denial("jwt", NULL);
    gw_pol_count_denial("jwt", "expired_token");
    ck_assert_int_eq(count_of("jwt", "other"), 2);
    ck_assert_int_eq(count_of("jwt", "expired_token"), 1);
    gw_pol_stats_reset();
}
END_TEST

START_TEST(policy_names_beyond_the_bound_count_under_other)
{
    gw_pol_stats_reset();
    char name[32];
    for (int i = 0; i < GW_POL_STATS_MAX_POLICIES; i++) {
        snprintf(name, sizeof name, "p%d", i);
        gw_pol_count_denial(name, "forbidden");
    }
    ck_assert_uint_eq(series(), GW_POL_STATS_MAX_POLICIES);
    ck_assert_int_eq(count_of(GW_POL_STATS_OVERFLOW, "forbidden"), -1);
    /* A name already counted keeps its series; a new one goes to "_other". */
    gw_pol_count_denial("p7", "forbidden");
    ck_assert_int_eq(count_of("p7", "forbidden"), 2);
    gw_pol_count_denial("one-too-many", "forbidden");
    gw_pol_count_denial("one-too-many", "ip_denied");
    ck_assert_int_eq(count_of("one-too-many", "forbidden"), -1);
    ck_assert_int_eq(count_of(GW_POL_STATS_OVERFLOW, "forbidden"), 1);
    ck_assert_int_eq(count_of(GW_POL_STATS_OVERFLOW, "ip_denied"), 1);
    ck_assert_uint_eq(series(), GW_POL_STATS_MAX_POLICIES + 1);
    gw_pol_stats_reset();
}
END_TEST

START_TEST(a_null_or_overlong_policy_name_counts_under_other)
{
    gw_pol_stats_reset();
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    gw_pol_count_denial(longname, "concurrency");
    gw_pol_count_denial(NULL, "concurrency");
    ck_assert_int_eq(count_of(GW_POL_STATS_OVERFLOW, "concurrency"), 2);
    ck_assert_uint_eq(series(), 1);
    /* The longest allowed name (128 bytes) is counted apart. */
    longname[128] = 0;
    gw_pol_count_denial(longname, "concurrency");
    ck_assert_int_eq(count_of(longname, "concurrency"), 1);
    gw_pol_stats_reset();
}
END_TEST

#define THREADS 4
#define PER_THREAD 100000

static void *hammer(void *arg)
{
    static const char *const names[3] = {"a", "b", "c"};
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++)
        gw_pol_count_denial(names[i % 3], i % 2 ? "rate_limited" : "forbidden");
    return NULL;
}

START_TEST(concurrent_denials_are_counted_exactly)
{
    gw_pol_stats_reset();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    int64_t total = 0;
    struct gw_pol_denials d;
    for (size_t pos = 0; gw_pol_denials_next(&pos, &d);)
        for (int r = 0; r < GW_POL_DENIAL_REASONS; r++)
            total += (int64_t)d.n[r];
    ck_assert_int_eq(total, (int64_t)THREADS * PER_THREAD);
    ck_assert_uint_eq(series(), 3);
    /* i % 6 == 0..5 over (name, reason): each pair gets a sixth. */
    int64_t sixth = (int64_t)THREADS * PER_THREAD / 6;
    ck_assert_int_ge(count_of("a", "forbidden"), sixth);
    ck_assert_int_le(count_of("a", "forbidden"), sixth + THREADS);
    gw_pol_stats_reset();
}
END_TEST

START_TEST(acl_refusals_count_under_the_definition_name)
{
    static const char text[] =
        "{\"policies\": [{\"name\": \"staff\", \"type\": \"acl\", \"allow\": [\"alice\"]}],"
        " \"consumers\": [{\"name\": \"alice\"}, {\"name\": \"bob\"}]}";
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_pol_set *set = NULL;
    ck_assert_int_eq(gw_pol_set_load_text("p.json", text, strlen(text), ".", &set, &d), 0);
    jpos_diags_done(&d);
    const struct gw_pol_def *def = gw_pol_set_find(set, "staff");
    ck_assert_ptr_nonnull(def);
    gw_pol_stats_reset();
    struct gw_pol_req rq;
    memset(&rq, 0, sizeof rq); /* no consumer: 401 */
    ck_assert_int_eq(def->kind->run(def->state, &rq), GW_POL_ANSWERED);
    ck_assert_int_eq(rq.answer.status, 401);
    memset(&rq, 0, sizeof rq);
    rq.consumer = gw_pol_set_consumer_find(set, "bob"); /* not allowed: 403 */
    ck_assert_int_eq(def->kind->run(def->state, &rq), GW_POL_ANSWERED);
    ck_assert_int_eq(rq.answer.status, 403);
    memset(&rq, 0, sizeof rq);
    rq.consumer = gw_pol_set_consumer_find(set, "alice"); /* allowed: not counted */
    ck_assert_int_eq(def->kind->run(def->state, &rq), GW_POL_NEXT);
    ck_assert_int_eq(count_of("staff", "unauthenticated"), 1);
    ck_assert_int_eq(count_of("staff", "forbidden"), 1);
    ck_assert_uint_eq(series(), 1);
    gw_pol_stats_reset();
    gw_pol_set_unref(set);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy_stats");
    TCase *tc = tcase_create("stats");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, denials_are_counted_per_policy_and_reason);
    tcase_add_test(tc, every_listed_reason_has_its_own_label_and_others_count_as_other);
    tcase_add_test(tc, policy_names_beyond_the_bound_count_under_other);
    tcase_add_test(tc, a_null_or_overlong_policy_name_counts_under_other);
    tcase_add_test(tc, concurrent_denials_are_counted_exactly);
    tcase_add_test(tc, acl_refusals_count_under_the_definition_name);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
