/* test_holder.c: publishing tables to many reader threads. Run it under
 * -Db_sanitize=thread and address as well: a table freed under a reader
 * shows up there. */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "route/holder.h"

static const char *const table_json =
    "{\"routes\":[{\"name\":\"hello\",\"match\":{\"path\":\"/hello\"},\"respond\":{}},"
    "{\"name\":\"api\",\"match\":{\"path_prefix\":\"/api\"},\"upstream\":\"demo\"}]}";

START_TEST(empty_holder_gives_no_table)
{
    struct route_holder *h;
    ck_assert_int_eq(route_holder_new(&h), 0);
    ck_assert_ptr_null(route_holder_acquire(h));
    ck_assert_uint_eq(route_holder_version(h), 0);
    route_holder_free(h);
}
END_TEST

START_TEST(publish_numbers_versions_and_rollback_keeps_them)
{
    struct route_holder *h;
    ck_assert_int_eq(route_holder_new(&h), 0);
    struct route_table *t1 = build_ok(table_json), *t2 = build_ok(table_json);
    ck_assert_uint_eq(route_table_version(t1), 0);
    route_table_ref(t1); /* kept as history */
    ck_assert_uint_eq(route_holder_publish(h, t1), 1);
    ck_assert_uint_eq(route_holder_publish(h, t2), 2);
    ck_assert_uint_eq(route_holder_version(h), 2);
    route_table_ref(t1);
    ck_assert_uint_eq(route_holder_publish(h, t1), 1); /* rollback */
    const struct route_table *cur = route_holder_acquire(h);
    ck_assert_ptr_eq(cur, t1);
    route_table_release(cur);
    struct route_table *t3 = build_ok(table_json);
    ck_assert_uint_eq(route_holder_publish(h, t3), 3);
    route_table_unref(t1);
    route_holder_free(h);
}
END_TEST

START_TEST(reader_keeps_its_table_across_publishes)
{
    struct route_holder *h;
    ck_assert_int_eq(route_holder_new(&h), 0);
    route_holder_publish(h, build_ok(table_json));
    const struct route_table *old = route_holder_acquire(h);
    ck_assert_ptr_nonnull(old);
    route_holder_publish(h, build_ok(table_json));
    route_holder_publish(h, build_ok(table_json));
    /* the first is held; the second is not and is gone already */
    ck_assert_uint_eq(route_holder_retired(h), 1);
    ck_assert_uint_eq(route_holder_reclaim(h), 1);
    ck_assert_str_eq(winner(old, "GET", NULL, "/hello"), "hello");
    ck_assert_uint_eq(route_table_version(old), 1);
    route_table_release(old);
    ck_assert_uint_eq(route_holder_reclaim(h), 0);
    route_holder_free(h);
}
END_TEST

#define READERS 4
#define PUBLISHES 400

struct shared {
    struct route_holder *h;
    atomic_bool stop;
    atomic_int started;
    atomic_long lookups; /* counted as they happen, so the writer can wait */
    atomic_int errors;
};

static void *reader(void *p)
{
    struct shared *s = p;
    uint64_t last = 0;
    const struct route_table *held = NULL;
    long n = 0;
    atomic_fetch_add(&s->started, 1);
    while (!atomic_load(&s->stop)) {
        const struct route_table *t = route_holder_acquire(s->h);
        if (!t)
            continue;
        uint64_t v = route_table_version(t);
        struct route_request req;
        struct route_match m;
        make_req(&req, "GET", NULL, "/api/x", NULL);
        if (v < last || route_table_match(t, &req, &m) != ROUTE_MATCHED ||
            strcmp(m.route->name, "api") != 0)
            atomic_fetch_add(&s->errors, 1);
        last = v;
        /* Hold every 64th table across later publishes, as a slow request
         * would, and release it on the next round. */
        if (n % 64 == 0) {
            route_table_release(held);
            held = t;
        } else {
            route_table_release(t);
        }
        n++;
        atomic_fetch_add_explicit(&s->lookups, 1, memory_order_relaxed);
    }
    route_table_release(held);
    return NULL;
}

START_TEST(readers_on_many_threads_never_see_a_freed_table)
{
    struct shared s = {0};
    ck_assert_int_eq(route_holder_new(&s.h), 0);
    route_holder_publish(s.h, build_ok(table_json));
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &s), 0);
    while (atomic_load(&s.started) < READERS)
        sched_yield();
    /* Publish at least PUBLISHES times, and on until the readers have done
     * real work meanwhile (the machine may be busy with other builds). */
    uint64_t published = 1;
    while (published < PUBLISHES + 1 || atomic_load(&s.lookups) < 100000) {
        route_holder_publish(s.h, build_ok(table_json));
        published++;
    }
    atomic_store(&s.stop, true);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&s.errors), 0);
    ck_assert_int_ge(atomic_load(&s.lookups), 100000);
    ck_assert_uint_eq(route_holder_version(s.h), published);
    /* every replaced table is freed once its readers are gone */
    ck_assert_uint_eq(route_holder_reclaim(s.h), 0);
    route_holder_free(s.h);
}
END_TEST

static void *release_elsewhere(void *p)
{
    route_table_release(p);
    return NULL;
}

START_TEST(release_on_another_thread_balances_the_count)
{
    struct route_holder *h;
    ck_assert_int_eq(route_holder_new(&h), 0);
    route_holder_publish(h, build_ok(table_json));
    const struct route_table *t = route_holder_acquire(h);
    route_holder_publish(h, build_ok(table_json));
    ck_assert_uint_eq(route_holder_reclaim(h), 1);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, release_elsewhere, (void *)t), 0);
    pthread_join(th, NULL);
    ck_assert_uint_eq(route_holder_reclaim(h), 0);
    route_holder_free(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("route_holder");
    TCase *tc = tcase_create("holder");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, empty_holder_gives_no_table);
    tcase_add_test(tc, publish_numbers_versions_and_rollback_keeps_them);
    tcase_add_test(tc, reader_keeps_its_table_across_publishes);
    tcase_add_test(tc, readers_on_many_threads_never_see_a_freed_table);
    tcase_add_test(tc, release_on_another_thread_balances_the_count);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
