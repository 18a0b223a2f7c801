/*
 * test_cache.c: building from a routes directory through the parse cache
 * (route.h, "the parse cache"): only changed files are parsed, a cached
 * file never serves stale routes, removed files vanish, errors and their
 * positions are those of a build without the cache, and a table keeps what
 * it compiled while later tables share its files.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static char dir[64];

/* The routes and json layers' allocations, wrapped at link time
 * (meson.build: --wrap): `live` follows the bytes they hold, and when
 * `fail_in` counts down to 0 that allocation fails (`alloc_failed` is set). */
void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *q, size_t n);
void __wrap_free(void *p);
static long long live;
static size_t biggest; /* the largest block asked for since it was set to 0 */
static long fail_in;
static bool alloc_failed;

static bool inject(void)
{
    if (fail_in > 0 && --fail_in == 0) {
        alloc_failed = true;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    if (n > biggest)
        biggest = n;
    void *p = inject() ? NULL : __real_malloc(n);
    if (p)
        live += (long long)malloc_usable_size(p);
    return p;
}

void *__wrap_calloc(size_t k, size_t n)
{
    void *p = inject() ? NULL : __real_calloc(k, n);
    if (p)
        live += (long long)malloc_usable_size(p);
    return p;
}

void *__wrap_realloc(void *q, size_t n)
{
    if (n > biggest)
        biggest = n;
    long long was = q ? (long long)malloc_usable_size(q) : 0;
    void *p = inject() ? NULL : __real_realloc(q, n);
    if (p)
        live += (long long)malloc_usable_size(p) - was;
    return p;
}

void __wrap_free(void *p)
{
    if (p)
        live -= (long long)malloc_usable_size(p);
    __real_free(p);
}

static void dir_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/tandem-route-cache-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void dir_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void put(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void drop(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ck_assert_int_eq(unlink(path), 0);
}

/* Builds the directory through `c` (NULL: no cache); the table or NULL,
 * diagnostics in d. */
static struct route_table *build_dir(struct route_cache *c, struct jpos_diags *d)
{
    struct route_builder *b;
    ck_assert_int_eq(route_builder_new(&b, test_upstreams, 3), 0);
    ck_assert_int_eq(route_builder_set_cache(b, c), 0);
    struct route_table *t = NULL;
    int r = route_builder_add_dir(b, dir, d);
    if (r != -ENOMEM)
        r = route_builder_compile(b, &t, d);
    route_builder_free(b);
    return r == 0 ? t : NULL;
}

static struct route_table *build_dir_ok(struct route_cache *c)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct route_table *t = build_dir(c, &d);
    if (!t)
        jpos_diags_print(&d, stderr);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(d.nerrors, 0);
    jpos_diags_done(&d);
    return t;
}

/* A file of `n` routes named PREFIX0.., answering /PREFIX/i with `body`. */
static void put_routes(const char *name, const char *prefix, int n, const char *body)
{
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof text, "{\"routes\": [");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "%s{\"name\": \"%s%d\", \"match\": {\"path\": \"/%s/%d\"}, "
                                "\"respond\": {\"body\": \"%s\"}}",
                                i ? ", " : "", prefix, i, prefix, i, body);
    snprintf(text + len, sizeof text - len, "]}\n");
    put(name, text);
}

static const char *body_of(const struct route_table *t, const char *name)
{
    const struct route *r = route_table_find(t, name);
    return r && r->respond ? r->respond->body : NULL;
}

static void counts(struct route_cache *c, uint64_t *parsed, uint64_t *reused)
{
    route_cache_counts(c, parsed, reused);
}

START_TEST(a_rebuild_parses_only_the_files_that_changed)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    char name[32], prefix[8];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "f%d.json", i);
        snprintf(prefix, sizeof prefix, "p%d_", i);
        put_routes(name, prefix, 5, "old");
    }
    struct route_table *t1 = build_dir_ok(c);
    uint64_t parsed, reused;
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 10);
    ck_assert_uint_eq(reused, 0);
    ck_assert_uint_eq(route_cache_files(c), 10);

    put_routes("f3.json", "p3_", 5, "new");
    struct route_table *t2 = build_dir_ok(c);
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 11);
    ck_assert_uint_eq(reused, 9);
    ck_assert_uint_eq(route_table_count(t2), 50);
    ck_assert_uint_eq(route_table_files(t2), 10);
    ck_assert_str_eq(body_of(t2, "p3_2"), "new");
    ck_assert_str_eq(body_of(t2, "p4_2"), "old");
    ck_assert_str_eq(winner(t2, "GET", NULL, "/p3_/4"), "p3_4");
    ck_assert_str_eq(winner(t2, "GET", NULL, "/p9_/0"), "p9_0");
    /* the first table still serves what it was built from */
    ck_assert_str_eq(body_of(t1, "p3_2"), "old");

    /* nothing changed: nothing parsed */
    struct route_table *t3 = build_dir_ok(c);
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 11);
    ck_assert_uint_eq(reused, 19);
    ck_assert_uint_eq(route_table_count(t3), 50);

    route_table_unref(t1);
    route_cache_unref(c); /* the tables keep the files they share alive */
    ck_assert_str_eq(body_of(t3, "p3_2"), "new");
    ck_assert_str_eq(winner(t3, "GET", NULL, "/p0_/1"), "p0_1");
    route_table_unref(t2);
    route_table_unref(t3);
}
END_TEST

START_TEST(a_rewrite_with_the_same_size_and_mtime_is_not_served_stale)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    put_routes("a.json", "a", 3, "AAAA");
    put_routes("b.json", "b", 3, "bbbb");
    char path[128];
    snprintf(path, sizeof path, "%s/a.json", dir);
    struct stat before;
    ck_assert_int_eq(stat(path, &before), 0);
    struct route_table *t1 = build_dir_ok(c);
    ck_assert_str_eq(body_of(t1, "a1"), "AAAA");

    /* Same length, same modification time (set back), other bytes. */
    put_routes("a.json", "a", 3, "ZZZZ");
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    ck_assert_int_eq(utimensat(AT_FDCWD, path, times, 0), 0);
    struct stat after;
    ck_assert_int_eq(stat(path, &after), 0);
    ck_assert_int_eq(after.st_size, before.st_size);
    ck_assert_int_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    ck_assert_int_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);

    struct route_table *t2 = build_dir_ok(c);
    ck_assert_str_eq(body_of(t2, "a1"), "ZZZZ");
    ck_assert_str_eq(body_of(t2, "b1"), "bbbb");
    route_table_unref(t1);
    route_table_unref(t2);
    route_cache_unref(c);
}
END_TEST

START_TEST(a_removed_files_routes_vanish)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    put_routes("a.json", "a", 2, "a");
    put_routes("b.json", "b", 2, "b");
    struct route_table *t1 = build_dir_ok(c);
    ck_assert_uint_eq(route_table_count(t1), 4);
    ck_assert_str_eq(winner(t1, "GET", NULL, "/b/1"), "b1");

    drop("b.json");
    struct route_table *t2 = build_dir_ok(c);
    ck_assert_uint_eq(route_table_count(t2), 2);
    ck_assert_uint_eq(route_table_files(t2), 1);
    ck_assert_ptr_null(route_table_find(t2, "b1"));
    ck_assert_str_eq(winner(t2, "GET", NULL, "/b/1"), "404");
    ck_assert_str_eq(winner(t2, "GET", NULL, "/a/1"), "a1");
    ck_assert_uint_eq(route_cache_files(c), 1);
    /* the older table is untouched */
    ck_assert_str_eq(winner(t1, "GET", NULL, "/b/1"), "b1");

    /* back again with the same bytes: parsed again, served again */
    uint64_t parsed, reused;
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 2);
    ck_assert_uint_eq(reused, 1);
    put_routes("b.json", "b", 2, "b");
    struct route_table *t3 = build_dir_ok(c);
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 3); /* b.json: its entry went with the file */
    ck_assert_uint_eq(reused, 2); /* a.json */
    ck_assert_uint_eq(route_table_count(t3), 4);
    ck_assert_str_eq(winner(t3, "GET", NULL, "/b/0"), "b0");
    route_table_unref(t1);
    route_table_unref(t2);
    route_table_unref(t3);
    route_cache_unref(c);
}
END_TEST

/* The diagnostics of a build, one line each. */
static void diag_text(const struct jpos_diags *d, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < d->n && len < cap; i++) {
        const struct jpos_diag *g = &d->items[i];
        len += (size_t)snprintf(buf + len, cap - len, "%s:%u:%u: %s: %s\n", g->file, g->line,
                                g->column, g->path, g->message);
    }
}

START_TEST(an_error_in_one_file_fails_the_build_as_without_the_cache)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    put_routes("a.json", "a", 3, "a");
    put_routes("b.json", "b", 3, "b");
    struct route_table *t1 = build_dir_ok(c);

    /* b.json names an unknown upstream and repeats a name of a.json. */
    put("b.json",
        "{\"routes\": [\n"
        "  {\"name\": \"b0\", \"match\": {\"path\": \"/b/0\"}, \"upstream\": \"usres\"},\n"
        "  {\"name\": \"a1\", \"match\": {\"path\": \"/b/1\"}, \"respond\": {}}\n"
        "]}\n");
    struct jpos_diags with, without;
    jpos_diags_init(&with);
    jpos_diags_init(&without);
    ck_assert_ptr_null(build_dir(c, &with));
    ck_assert_ptr_null(build_dir(NULL, &without));
    ck_assert_uint_eq(with.nerrors, 2);
    char a[2048], b[2048];
    diag_text(&with, a, sizeof a);
    diag_text(&without, b, sizeof b);
    ck_assert_str_eq(a, b);
    ck_assert_ptr_nonnull(strstr(a, "b.json:2:57: routes[0].upstream: unknown upstream \"usres\""));
    ck_assert_ptr_nonnull(strstr(a, "b.json:3:12: routes[1].name: duplicate route name \"a1\""));

    /* Again: the file with errors is not cached, its errors come again. */
    jpos_diags_done(&with);
    jpos_diags_init(&with);
    ck_assert_ptr_null(build_dir(c, &with));
    diag_text(&with, a, sizeof a);
    ck_assert_str_eq(a, b);
    jpos_diags_done(&with);
    jpos_diags_done(&without);
    /* the previous table is whole */
    ck_assert_uint_eq(route_table_count(t1), 6);
    ck_assert_str_eq(winner(t1, "GET", NULL, "/b/2"), "b2");

    put_routes("b.json", "b", 3, "b");
    struct route_table *t2 = build_dir_ok(c);
    ck_assert_uint_eq(route_table_count(t2), 6);
    route_table_unref(t1);
    route_table_unref(t2);
    route_cache_unref(c);
}
END_TEST

START_TEST(cached_routes_are_checked_against_the_names_of_this_build)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    put("w.json", "{\"routes\": [{\"name\": \"w\", \"match\": {\"path\": \"/w\"}, "
                  "\"workflow\": \"pay\"}]}");
    const char *with_pay[] = {"pay"};
    const char *other[] = {"refund"};
    for (int round = 0; round < 2; round++) {
        struct route_builder *b;
        struct jpos_diags d;
        jpos_diags_init(&d);
        ck_assert_int_eq(route_builder_new(&b, test_upstreams, 3), 0);
        ck_assert_int_eq(route_builder_set_cache(b, c), 0);
        ck_assert_int_eq(route_builder_set_workflows(b, round ? other : with_pay, 1), 0);
        struct route_table *t = NULL;
        int r = route_builder_add_dir(b, dir, &d);
        if (r != -ENOMEM)
            r = route_builder_compile(b, &t, &d);
        route_builder_free(b);
        if (round == 0) {
            ck_assert_int_eq(r, 0);
            route_table_unref(t);
        } else {
            /* the same bytes, but "pay" is no longer defined */
            ck_assert_int_eq(r, -EINVAL);
            ck_assert_uint_eq(d.nerrors, 1);
            ck_assert_ptr_nonnull(strstr(d.items[0].message, "unknown workflow \"pay\""));
        }
        jpos_diags_done(&d);
    }
    route_cache_unref(c);
}
END_TEST

/* Builds the directory through `c` with the given upstream and policy
 * names; the build's result, its first diagnostic in `msg`. */
static int build_names(struct route_cache *c, const char *const *ups, size_t nups,
                       const char *const *pols, size_t npols, char *msg, size_t cap)
{
    struct route_builder *b;
    struct jpos_diags d;
    jpos_diags_init(&d);
    ck_assert_int_eq(route_builder_new(&b, ups, nups), 0);
    ck_assert_int_eq(route_builder_set_cache(b, c), 0);
    ck_assert_int_eq(route_builder_set_policies(b, pols, npols), 0);
    struct route_table *t = NULL;
    int r = route_builder_add_dir(b, dir, &d);
    if (r != -ENOMEM)
        r = route_builder_compile(b, &t, &d);
    route_builder_free(b);
    snprintf(msg, cap, "%s", d.n ? d.items[0].message : "");
    jpos_diags_done(&d);
    route_table_unref(t);
    return r;
}

START_TEST(cached_routes_are_checked_against_the_upstream_names_of_this_build)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    put("u.json", "{\"routes\": [{\"name\": \"u\", \"match\": {\"path\": \"/u\"}, "
                  "\"upstream\": \"payments\"}]}");
    const char *with[] = {"demo", "payments"};
    const char *renamed[] = {"demo", "billing"};
    char msg[512];
    ck_assert_int_eq(build_names(c, with, 2, NULL, 0, msg, sizeof msg), 0);
    /* the same bytes, but "payments" is no longer defined */
    ck_assert_int_eq(build_names(c, renamed, 2, NULL, 0, msg, sizeof msg), -EINVAL);
    ck_assert_ptr_nonnull(strstr(msg, "unknown upstream \"payments\""));
    route_cache_unref(c);
}
END_TEST

START_TEST(cached_routes_are_checked_against_the_policy_names_of_this_build)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    put("p.json", "{\"routes\": [{\"name\": \"p\", \"match\": {\"path\": \"/p\"}, "
                  "\"policies\": [\"auth\"], \"respond\": {}}]}");
    const char *with[] = {"auth"};
    const char *renamed[] = {"login"};
    char msg[512];
    ck_assert_int_eq(build_names(c, test_upstreams, 3, with, 1, msg, sizeof msg), 0);
    /* the same bytes, but "auth" is no longer defined */
    ck_assert_int_eq(build_names(c, test_upstreams, 3, renamed, 1, msg, sizeof msg), -EINVAL);
    ck_assert_ptr_nonnull(strstr(msg, "unknown policy \"auth\""));
    route_cache_unref(c);
}
END_TEST

/* Writes `name` with `n` routes named PREFIX0.., each at /PREFIX/i. */
static void put_many(const char *name, const char *prefix, int n)
{
    size_t cap = (size_t)n * 128 + 64, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    len += (size_t)snprintf(text, cap, "{\"routes\": [");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "%s{\"name\": \"%s%d\", \"match\": {\"path\": \"/%s/%d\"}, "
                                "\"respond\": {}}",
                                i ? ",\n" : "", prefix, i, prefix, i);
    snprintf(text + len, cap - len, "]}\n");
    put(name, text);
    free(text);
}

START_TEST(a_table_of_exactly_the_route_limit_is_rebuilt_from_the_cache)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    char name[32], prefix[8];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "f%d.json", i);
        snprintf(prefix, sizeof prefix, "r%d_", i);
        put_many(name, prefix, ROUTE_MAX_ROUTES / 10);
    }
    struct route_table *t1 = build_dir_ok(c);
    ck_assert_uint_eq(route_table_count(t1), ROUTE_MAX_ROUTES);
    struct route_table *t2 = build_dir_ok(c);
    ck_assert_uint_eq(route_table_count(t2), ROUTE_MAX_ROUTES);
    uint64_t parsed, reused;
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 10);
    ck_assert_uint_eq(reused, 10); /* the last file too: it ends at the limit */
    ck_assert_str_eq(winner(t2, "GET", NULL, "/r9_/9999"), "r9_9999");
    route_table_unref(t1);
    route_table_unref(t2);
    route_cache_unref(c);
}
END_TEST

/* File `name`: one route (a, GET /a) followed by `pad` spaces. */
static void put_padded(const char *name, size_t pad)
{
    char *text = malloc(pad + 256);
    ck_assert_ptr_nonnull(text);
    int head = snprintf(text, 256,
                        "{\"routes\": [{\"name\": \"a\", \"match\": {\"path\": "
                        "\"/a\"}, \"respond\": {}}]}");
    memset(text + head, ' ', pad);
    text[head + pad] = '\0';
    put(name, text);
    free(text);
}

START_TEST(the_cache_keeps_a_digest_not_the_files_bytes)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    /* One route, padded to 4 MiB. */
    put_padded("a.json", 4u << 20);
    long long before = live;
    struct route_table *t = build_dir_ok(c);
    route_table_unref(t);
    ck_assert_uint_eq(route_cache_files(c), 1);
    /* What stays is the cache's entry and the one parsed route. */
    ck_assert_int_lt(live - before, 64 << 10);
    struct route_table *t2 = build_dir_ok(c);
    uint64_t parsed, reused;
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(reused, 1);
    route_table_unref(t2);
    route_cache_unref(c);
}
END_TEST

/* A file whose stat stamp was taken over a second after its last change
 * (so no later write can share its ctime) and has not moved is not even
 * read; a write, even of the same bytes, makes it read again. Seen through the read's buffer: the
 * file is 1 MiB. */
START_TEST(a_file_unchanged_since_a_trusted_stamp_is_not_read_again)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    size_t pad = 1u << 20;
    put_padded("a.json", pad);
    usleep(1100 * 1000); /* past ROUTE__RACY_NS */
    biggest = 0;
    struct route_table *t1 = build_dir_ok(c);
    ck_assert_uint_ge(biggest, pad);
    biggest = 0;
    struct route_table *t2 = build_dir_ok(c);
    ck_assert_uint_lt(biggest, pad / 2);
    uint64_t parsed, reused;
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 1);
    ck_assert_uint_eq(reused, 1);
    /* The same bytes written again: a trusted stamp kept no digest, so
     * the file is read and parsed; changed within the second, it is kept
     * with its digest, and the next build reads it and reuses it by that. */
    put_padded("a.json", pad);
    biggest = 0;
    struct route_table *t3 = build_dir_ok(c);
    ck_assert_uint_ge(biggest, pad);
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 2);
    ck_assert_uint_eq(reused, 1);
    biggest = 0;
    struct route_table *t4 = build_dir_ok(c);
    ck_assert_uint_ge(biggest, pad);
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 2);
    ck_assert_uint_eq(reused, 2);
    route_table_unref(t1);
    route_table_unref(t2);
    route_table_unref(t4);
    route_table_unref(t3);
    route_cache_unref(c);
}
END_TEST

/* A file cached by its digest (read within a second of its last change)
 * is still reused once its stamp has become trusted, and from then on
 * known by that stamp alone. */
START_TEST(a_file_cached_by_digest_is_reused_once_its_stamp_is_trusted)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    size_t pad = 1u << 20;
    put_padded("a.json", pad);
    struct route_table *t1 = build_dir_ok(c); /* at once: by digest */
    usleep(1100 * 1000);                      /* past ROUTE__RACY_NS */
    struct route_table *t2 = build_dir_ok(c);
    uint64_t parsed, reused;
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 1);
    ck_assert_uint_eq(reused, 1);
    biggest = 0;
    struct route_table *t3 = build_dir_ok(c);
    ck_assert_uint_lt(biggest, pad / 2); /* not read: its stamp is trusted now */
    counts(c, &parsed, &reused);
    ck_assert_uint_eq(parsed, 1);
    ck_assert_uint_eq(reused, 2);
    route_table_unref(t1);
    route_table_unref(t2);
    route_table_unref(t3);
    route_cache_unref(c);
}
END_TEST

/* Builds the directory through `c` (NULL: none) with the n-th allocation
 * failing; the build's result, *hit whether that allocation was reached. */
static int build_failing(struct route_cache *c, long n, bool *hit, size_t *routes)
{
    struct route_builder *b;
    struct jpos_diags d;
    jpos_diags_init(&d);
    ck_assert_int_eq(route_builder_new(&b, test_upstreams, 3), 0);
    ck_assert_int_eq(route_builder_set_cache(b, c), 0);
    struct route_table *t = NULL;
    alloc_failed = false;
    fail_in = n;
    int r = route_builder_add_dir(b, dir, &d);
    if (r != -ENOMEM)
        r = route_builder_compile(b, &t, &d);
    fail_in = 0;
    *hit = alloc_failed;
    route_builder_free(b);
    jpos_diags_done(&d);
    *routes = t ? route_table_count(t) : 0;
    route_table_unref(t);
    return r;
}

START_TEST(a_cache_out_of_memory_never_fails_a_build)
{
    put_routes("a.json", "a", 3, "a");
    put_routes("b.json", "b", 3, "b");
    /* Every single allocation failure, with a fresh cache and without one:
     * the cache's own allocations (its key, its table) add failure points,
     * but never a failed build. */
    long fails[2] = {0, 0}, points[2] = {0, 0};
    for (int with = 0; with < 2; with++) {
        for (long n = 1;; n++) {
            struct route_cache *c = NULL;
            if (with)
                ck_assert_int_eq(route_cache_new(&c), 0);
            bool hit;
            size_t routes;
            int r = build_failing(c, n, &hit, &routes);
            route_cache_unref(c);
            if (!hit) {
                ck_assert_int_eq(r, 0);
                break;
            }
            points[with]++;
            if (r != 0)
                fails[with]++;
            else
                ck_assert_uint_eq(routes, 6);
        }
    }
    ck_assert_int_gt(points[1], points[0]); /* the cache's allocations were failed too */
    ck_assert_int_eq(fails[1], fails[0]);
}
END_TEST

START_TEST(a_table_keeps_what_it_compiled_when_a_later_table_shares_its_file)
{
    struct route_cache *c;
    ck_assert_int_eq(route_cache_new(&c), 0);
    /* a.json's GET route answers HEAD too while no route of its path lists
     * HEAD itself. */
    put("a.json", "{\"routes\": [{\"name\": \"get\", \"match\": {\"path\": \"/x\", "
                  "\"methods\": [\"GET\"]}, \"respond\": {}}]}");
    struct route_table *t1 = build_dir_ok(c);
    ck_assert_str_eq(winner(t1, "HEAD", NULL, "/x"), "get");
    ck_assert_uint_eq(route_table_route(t1, 0)->index, 0);

    /* b.json (read first) lists HEAD for the same path: in the new table
     * HEAD is b's, and a's route moves to index 1; the first table, which
     * shares a.json's parsed routes, keeps its own answers. */
    put("0b.json", "{\"routes\": [{\"name\": \"head\", \"match\": {\"path\": \"/x\", "
                   "\"methods\": [\"HEAD\"]}, \"respond\": {}}]}");
    struct route_table *t2 = build_dir_ok(c);
    uint64_t parsed, reused;
    route_cache_counts(c, &parsed, &reused);
    ck_assert_uint_eq(reused, 1);
    ck_assert_str_eq(winner(t2, "HEAD", NULL, "/x"), "head");
    ck_assert_str_eq(winner(t2, "GET", NULL, "/x"), "get");
    ck_assert_uint_eq(route_table_find(t2, "get")->index, 1);
    ck_assert_str_eq(winner(t1, "HEAD", NULL, "/x"), "get");
    ck_assert_uint_eq(route_table_find(t1, "get")->index, 0);
    ck_assert_uint_eq(route_table_find(t1, "get")->match_methods, ROUTE_M_GET | ROUTE_M_HEAD);
    route_table_unref(t1);
    route_table_unref(t2);
    route_cache_unref(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("route_cache");
    TCase *tc = tcase_create("cache");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, a_rebuild_parses_only_the_files_that_changed);
    tcase_add_test(tc, a_rewrite_with_the_same_size_and_mtime_is_not_served_stale);
    tcase_add_test(tc, a_removed_files_routes_vanish);
    tcase_add_test(tc, an_error_in_one_file_fails_the_build_as_without_the_cache);
    tcase_add_test(tc, cached_routes_are_checked_against_the_names_of_this_build);
    tcase_add_test(tc, a_table_keeps_what_it_compiled_when_a_later_table_shares_its_file);
    tcase_add_test(tc, cached_routes_are_checked_against_the_upstream_names_of_this_build);
    tcase_add_test(tc, cached_routes_are_checked_against_the_policy_names_of_this_build);
    tcase_add_test(tc, a_table_of_exactly_the_route_limit_is_rebuilt_from_the_cache);
    tcase_add_test(tc, the_cache_keeps_a_digest_not_the_files_bytes);
    tcase_add_test(tc, a_cache_out_of_memory_never_fails_a_build);
    tcase_add_test(tc, a_file_unchanged_since_a_trusted_stamp_is_not_read_again);
    tcase_add_test(tc, a_file_cached_by_digest_is_reused_once_its_stamp_is_trusted);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
