/* test_router.c: the router gen_server and its directory watcher, on a real
 * routes directory in a temporary folder.
 *
 * Each test starts the runtime, fills the parts of `gw` the router reads
 * (gw.cfg from a tandem.json parsed in memory, gw.routes), runs its body in
 * a process that starts the router linked to it, stops the router, and
 * asserts that rt_stop() had nothing left to kill. Assertions inside
 * processes record the first failure and exit the process; the main thread
 * reports it. */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gw/config.h"
#include "gw/events.h"
#include "gw/gateway.h"
#include "gw/router.h"
#include "route/holder.h"
#include "rt/gen_event.h"
#include "rt/gen_server.h"
#include "rt/rt.h"
#include "rt/sys.h"

/* The gateway library defines `gw` with the gateway's entry point; weak so
 * that this test links with or without it. */
__attribute__((weak)) struct gw_gateway gw;

static char t_failure[512];
static atomic_int t_failed;
static atomic_int t_body_done;
static char tmp[256];
static char routes_dir[300];

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (atomic_exchange(&t_failed, 1) == 0)                                                \
                snprintf(t_failure, sizeof t_failure, "%s:%d: %s", __FILE__, __LINE__, #c);        \
            rt_exit(rt_atom_intern("test_failed"));                                                \
        }                                                                                          \
    } while (0)
#define T_EQ(a, b) T_ASSERT((long long)(a) == (long long)(b))

/* Routes of the temporary directory at the start of every test. */
static const char *const a_json = "{\"routes\": [{\"name\": \"a\", \"match\": {\"path\": \"/a\"}, "
                                  "\"upstream\": \"backend\"}]}\n";

static char *route_set(const char *name, const char *path)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"routes\": [{\"name\": \"%s\", \"match\": {\"path\": \"%s\"}, "
             "\"upstream\": \"backend\"}]}\n",
             name, path);
    return buf;
}

static void write_file(const char *name, const char *text)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", routes_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    T_ASSERT(fd >= 0);
    size_t len = strlen(text);
    T_EQ(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void rename_file(const char *from, const char *to)
{
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/%s", routes_dir, from);
    snprintf(b, sizeof b, "%s/%s", routes_dir, to);
    T_EQ(rename(a, b), 0);
}

static uint64_t version(void)
{
    return route_holder_version(gw.routes);
}

/* Waits until the published version is at least v; returns the ms waited,
 * or -1 after timeout_ms. */
/* Bounds on waits for something that should happen, stretched on slow
 * (sanitizer, valgrind) builds. */
static int64_t scaled(int64_t ms)
{
    const char *s = getenv("TANDEM_TEST_TIME_SCALE");
    int k = s ? atoi(s) : 1;
    return ms * (k > 0 ? k : 1);
}

static int64_t wait_version(uint64_t v, int64_t timeout_ms)
{
    timeout_ms = scaled(timeout_ms);
    uint64_t t0 = rt_now_ms();
    while (version() < v) {
        if ((int64_t)(rt_now_ms() - t0) > timeout_ms)
            return -1;
        rt_sleep(1);
    }
    return (int64_t)(rt_now_ms() - t0);
}

static struct gw_router_counts counts(void)
{
    struct gw_router_counts c;
    gw_router_counts(&c);
    return c;
}

/* Waits until `n` successful (`ok`) or failed reloads were counted: the
 * router counts a reload just after publishing it. */
static bool wait_counted(bool ok, uint64_t n, int64_t timeout_ms)
{
    timeout_ms = scaled(timeout_ms);
    uint64_t t0 = rt_now_ms();
    while ((ok ? counts().reloads_ok : counts().reloads_failed) < n) {
        if ((int64_t)(rt_now_ms() - t0) > timeout_ms)
            return false;
        rt_sleep(2);
    }
    return true;
}

static bool has_route(const char *name)
{
    const struct route_table *t = route_holder_acquire(gw.routes);
    bool found = t && route_table_find(t, name) != NULL;
    route_table_release(t);
    return found;
}

static struct gw_router_status *status(void)
{
    struct gw_router_status *s = NULL;
    T_EQ(gw_router_status(&s), 0);
    T_ASSERT(s);
    return s;
}

/* The first diagnostic of `level`, or NULL. */
static const struct jpos_diag *first_diag(const struct gw_router_outcome *o,
                                          enum jpos_diag_level level)
{
    for (size_t i = 0; i < o->diags.n; i++)
        if (o->diags.items[i].level == level)
            return &o->diags.items[i];
    return NULL;
}

/* ---- harness ------------------------------------------------------------------ */

static void (*t_body)(void);
static rt_pid router_pid;

static void t_runner(void *arg)
{
    (void)arg;
    rt_trap_exit(true); /* the router's exit must not take the test down */
    rt_atom reason = 0;
    int r = gw_router_start(NULL, NULL, 0, &router_pid, &reason);
    T_EQ(r, 0);
    T_EQ(rt_whereis(GW_ROUTER_NAME), router_pid);
    t_body();
    rt_atom why = 0;
    T_EQ(rt_gen_server_stop(router_pid, RT_SHUTDOWN, 5000, &why), 0);
    atomic_store(&t_body_done, 1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void write_plain(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Called by run() once the temporary folder holds routes/a.json, before the
 * configuration is read; NULL for the plain layout. */
static void (*t_layout)(void);

static void run(void (*body)(void))
{
    snprintf(tmp, sizeof tmp, "/tmp/tandem-router-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(routes_dir, sizeof routes_dir, "%s/routes", tmp);
    ck_assert_int_eq(mkdir(routes_dir, 0755), 0);
    char path[400];
    snprintf(path, sizeof path, "%s/a.json", routes_dir);
    write_plain(path, a_json);
    if (t_layout)
        t_layout();
    static const char conf[] =
        "{\"listeners\": [{\"address\": \"127.0.0.1:0\"}],"
        " \"upstreams\": {\"backend\": {\"targets\": [{\"address\": \"127.0.0.1:9\"}]},"
        "                 \"other\": {\"targets\": [{\"address\": \"127.0.0.1:10\"}]}},"
        " \"routes\": \"routes\"}";
    snprintf(path, sizeof path, "%s/tandem.json", tmp);
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_config *cfg = NULL;
    int r = gw_config_parse(path, conf, strlen(conf), true, &cfg, &d);
    if (r)
        jpos_diags_print(&d, stderr);
    jpos_diags_done(&d);
    ck_assert_int_eq(r, 0);
    ck_assert_ptr_nonnull(cfg->routes);
    memset(&gw, 0, sizeof gw);
    gw.cfg = cfg;
    ck_assert_int_eq(route_holder_new(&gw.routes), 0);

    struct rt_config rc;
    rt_config_default(&rc);
    rc.schedulers = 2;
    ck_assert_int_eq(rt_start(&rc), 0);
    t_body = body;
    rt_pid pid = 0;
    struct rt_spawn_opts so = {.initial_call = "test"};
    ck_assert_int_eq(rt_spawn(t_runner, NULL, &so, &pid), 0);
    rt_atom reason = 0;
    int jr = rt_join(pid, 60000, &reason);
    if (jr == 0)
        rt_wait_idle(5000);
    int left = rt_stop();
    route_holder_free(gw.routes);
    gw_config_free(cfg);
    memset(&gw, 0, sizeof gw);
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_int_eq(jr, 0);
    ck_assert_msg(atomic_load(&t_body_done), "test process exited: %s", rt_atom_name(reason));
    ck_assert_int_eq(left, 0);
}

static void run_in(void (*layout)(void), void (*body)(void))
{
    t_layout = layout;
    run(body);
    t_layout = NULL;
}

/* ---- tests ---------------------------------------------------------------------- */

/* True when t is "YYYY-MM-DDTHH:MM:SS.mmmZ" (RFC 3339 UTC, milliseconds,
 * as the log lines write it) and within a minute of now. */
static bool is_rfc3339_now(const char *t)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (strlen(t) != strlen(shape))
        return false;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)t[i]) : t[i] != shape[i])
            return false;
    struct tm tm = {0};
    if (!strptime(t, "%Y-%m-%dT%H:%M:%S", &tm))
        return false;
    time_t when = timegm(&tm), now = time(NULL);
    return when <= now + 1 && now - when < 60;
}

static void initial_publish_body(void)
{
    T_EQ(version(), 1);
    T_EQ(counts().version, 1);
    T_ASSERT(has_route("a"));
    const struct route_table *t = route_holder_acquire(gw.routes);
    T_ASSERT(t == gw.cfg->routes); /* the configuration's table, not a copy */
    route_table_release(t);
    struct gw_router_status *s = status();
    T_EQ(s->nversions, 1);
    T_EQ(s->versions[0].version, 1);
    T_EQ(s->versions[0].routes, 1);
    T_ASSERT(strcmp(s->versions[0].source, "config") == 0);
    T_ASSERT(s->has_last_reload);
    const struct gw_router_reload *last = &s->last_reload;
    T_ASSERT(strcmp(last->source, "config") == 0);
    T_ASSERT(last->outcome.ok);
    T_EQ(last->outcome.version, 1);
    T_ASSERT(is_rfc3339_now(s->versions[0].published_at));
    T_ASSERT(is_rfc3339_now(last->time));
    gw_router_status_free(s);
}

START_TEST(initial_table_is_published_as_version_1)
{
    run(initial_publish_body);
}
END_TEST

static void edit_body(void)
{
    uint64_t ok0 = counts().reloads_ok;
    write_file("a.json", route_set("a2", "/a2"));
    int64_t ms = wait_version(2, 2000);
    fprintf(stderr, "router: file edit to new version: %lld ms\n", (long long)ms);
    T_ASSERT(ms >= 0);
    T_ASSERT(has_route("a2"));
    T_ASSERT(!has_route("a"));
    T_ASSERT(wait_counted(true, ok0 + 1, 2000));
    T_EQ(counts().reloads_ok, ok0 + 1);
    /* a new file adds its routes, removing it takes them away */
    write_file("b.json", route_set("b", "/b"));
    T_ASSERT(wait_version(3, 2000) >= 0);
    T_ASSERT(has_route("b") && has_route("a2"));
    char path[400];
    snprintf(path, sizeof path, "%s/b.json", routes_dir);
    T_EQ(unlink(path), 0);
    T_ASSERT(wait_version(4, 2000) >= 0);
    T_ASSERT(!has_route("b") && has_route("a2"));
}

START_TEST(editing_a_route_file_publishes_a_new_version)
{
    run(edit_body);
}
END_TEST

static void burst_body(void)
{
    uint64_t ok0 = counts().reloads_ok;
    /* 20 files (the kernel merges repeated identical events, distinct files
     * it does not), 1 ms apart: like a checkout or a generator */
    char name[32], file[32], path[32];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "r%d", i);
        snprintf(path, sizeof path, "/r%d", i);
        snprintf(file, sizeof file, "r%d.json", i);
        write_file(file, route_set(name, path));
        rt_sleep(1);
    }
    T_ASSERT(wait_version(2, 2000) >= 0);
    rt_sleep(3 * 200); /* longer than any burst */
    uint64_t reloads = counts().reloads_ok - ok0;
    fprintf(stderr, "router: 20 writes gave %llu reloads\n", (unsigned long long)reloads);
    T_ASSERT(reloads >= 1 && reloads <= 3);
    const struct route_table *t = route_holder_acquire(gw.routes);
    T_EQ(route_table_count(t), 21); /* every file of the burst is in */
    route_table_release(t);
}

START_TEST(a_burst_of_writes_is_coalesced_into_few_reloads)
{
    run(burst_body);
}
END_TEST

static void rename_body(void)
{
    /* temporary and hidden files are ignored */
    write_file(".a.json", route_set("swap", "/swap"));
    write_file(".a.json.swp", route_set("swap", "/swap"));
    write_file("a.json.tmp", route_set("a3", "/a3"));
    rt_sleep(300);
    T_EQ(version(), 1);
    rename_file("a.json.tmp", "a.json");
    T_ASSERT(wait_version(2, 2000) >= 0);
    T_ASSERT(has_route("a3") && !has_route("a") && !has_route("swap"));
}

START_TEST(write_then_rename_reloads_and_temporary_files_are_ignored)
{
    run(rename_body);
}
END_TEST

static void broken_body(void)
{
    uint64_t failed0 = counts().reloads_failed;
    const struct route_table *before = route_holder_acquire(gw.routes);
    /* line 3, column 26: unknown upstream */
    write_file("b.json", "{\"routes\": [\n"
                         "  {\"name\": \"b\", \"match\": {\"path\": \"/b\"},\n"
                         "   \"upstream\": \"bakend\"}]}\n");
    T_ASSERT(wait_counted(false, failed0 + 1, 2000));
    T_EQ(version(), 1);
    const struct route_table *now = route_holder_acquire(gw.routes);
    T_ASSERT(now == before);
    T_ASSERT(route_table_find(now, "a") != NULL);
    route_table_release(now);
    route_table_release(before);
    struct gw_router_status *s = status();
    const struct gw_router_reload *last = &s->last_reload;
    T_ASSERT(s->has_last_reload && !last->outcome.ok);
    T_ASSERT(strcmp(last->source, "inotify") == 0);
    T_ASSERT(last->time[0] != '\0');
    T_EQ(last->outcome.version, 1);
    const struct jpos_diag *e = first_diag(&last->outcome, JPOS_DIAG_ERROR);
    T_ASSERT(e);
    size_t fl = strlen(e->file);
    T_ASSERT(fl >= 7 && strcmp(e->file + fl - 7, "/b.json") == 0);
    T_EQ(e->line, 3);
    T_EQ(e->column, 16);
    T_ASSERT(strcmp(e->path, "routes[0].upstream") == 0);
    T_ASSERT(strstr(e->message, "bakend") != NULL);
    T_EQ(s->reloads_failed, failed0 + 1);
    gw_router_status_free(s);
    /* fixing the file publishes */
    write_file("b.json", route_set("b", "/b"));
    T_ASSERT(wait_version(2, 2000) >= 0);
    T_ASSERT(has_route("b"));
}

START_TEST(a_broken_file_keeps_the_old_table_and_reports_its_position)
{
    run(broken_body);
}
END_TEST

static void replace_body(void)
{
    struct gw_router_outcome *o = NULL;
    const char *good = route_set("x", "/x");
    T_EQ(gw_router_validate(good, strlen(good), &o), 0);
    T_ASSERT(o && o->ok);
    T_EQ(o->routes, 1);
    gw_router_outcome_free(o);
    T_EQ(version(), 1); /* validate applies nothing */
    T_ASSERT(!has_route("x"));

    static const char bad[] = "{\"routes\": [{\"name\": \"x\", \"match\": {\"path\": \"/x\"},\n"
                              "  \"upstream\": \"nope\", \"colour\": 1}]}";
    T_EQ(gw_router_validate(bad, strlen(bad), &o), -EINVAL);
    T_ASSERT(o && !o->ok);
    T_ASSERT(o->diags.nerrors >= 2); /* every problem */
    const struct jpos_diag *e = first_diag(o, JPOS_DIAG_ERROR);
    T_ASSERT(e && strcmp(e->file, "<admin>") == 0);
    T_EQ(e->line, 2);
    T_ASSERT(e->column > 0);
    gw_router_outcome_free(o);

    uint64_t ok0 = counts().reloads_ok, failed0 = counts().reloads_failed;
    T_EQ(gw_router_replace(good, strlen(good), &o), 0);
    T_EQ(o->version, 2);
    gw_router_outcome_free(o);
    T_EQ(version(), 2);
    T_ASSERT(has_route("x") && !has_route("a"));
    T_EQ(counts().reloads_ok, ok0 + 1);

    T_EQ(gw_router_replace(bad, strlen(bad), &o), -EINVAL);
    T_EQ(o->version, 2);
    gw_router_outcome_free(o);
    T_EQ(version(), 2);
    T_ASSERT(has_route("x"));
    T_EQ(counts().reloads_failed, failed0 + 1);

    /* reload on request, and the asynchronous one (SIGHUP) */
    T_EQ(gw_router_reload("admin", &o), 0);
    T_EQ(o->version, 3);
    gw_router_outcome_free(o);
    T_ASSERT(has_route("a") && !has_route("x"));
    gw_router_reload_async("signal");
    T_ASSERT(wait_version(4, 2000) >= 0);
    struct gw_router_status *s = status();
    T_ASSERT(strcmp(s->last_reload.source, "signal") == 0);
    gw_router_status_free(s);
}

START_TEST(replace_publishes_a_valid_set_and_validate_applies_nothing)
{
    run(replace_body);
}
END_TEST

static void rollback_body(void)
{
    struct gw_router_outcome *o = NULL;
    for (int i = 2; i <= 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", i);
        const char *set = route_set(name, "/v");
        T_EQ(gw_router_replace(set, strlen(set), &o), 0);
        gw_router_outcome_free(o);
    }
    T_EQ(version(), 3);
    T_EQ(gw_router_rollback(1, &o), 0);
    T_ASSERT(o && o->ok);
    T_EQ(o->version, 1);
    gw_router_outcome_free(o);
    T_EQ(version(), 1); /* the version number stays */
    T_EQ(counts().version, 1);
    T_ASSERT(has_route("a") && !has_route("v3"));

    T_EQ(gw_router_rollback(99, &o), -ENOENT);
    T_ASSERT(o && !o->ok);
    gw_router_outcome_free(o);
    T_EQ(version(), 1);

    T_EQ(gw_router_rollback(3, &o), 0);
    gw_router_outcome_free(o);
    T_ASSERT(has_route("v3"));
    /* a new table after a rollback gets a fresh number */
    const char *set = route_set("v4", "/v");
    T_EQ(gw_router_replace(set, strlen(set), &o), 0);
    gw_router_outcome_free(o);
    T_EQ(version(), 4);
}

START_TEST(rollback_republishes_a_kept_version_and_refuses_others)
{
    run(rollback_body);
}
END_TEST

/* A caller that calls validate with a broken set (an answer carrying
 * diagnostics on the heap) and is killed before the router answers. */
static void doomed_caller(void *arg)
{
    (void)arg;
    static const char broken[] = "{\"routes\": [{\"name\": 7}]}";
    struct gw_router_outcome *o = NULL;
    gw_router_validate(broken, sizeof broken - 1, &o);
    gw_router_outcome_free(o); /* not reached: killed while waiting */
}

static void dead_caller_body(void)
{
    /* The router holds the call until the caller is gone. */
    T_EQ(rt_sys_suspend(router_pid, 5000), 0);
    rt_pid caller = 0;
    T_EQ(rt_spawn(doomed_caller, NULL, NULL, &caller), 0);
    rt_ref mon = rt_monitor(caller);
    uint64_t t0 = rt_now_ms();
    struct rt_proc_info info;
    while (rt_proc_info(caller, &info) == 0 && info.status != RT_STATUS_WAITING &&
           rt_now_ms() - t0 < 5000)
        rt_sleep(1);
    rt_sleep(20); /* its call is in the router's mailbox */
    T_EQ(rt_exit_signal(caller, RT_KILL), 0);
    struct rt_msg *down = rt_receive_ref(mon, 5000);
    T_ASSERT(down != NULL);
    rt_msg_free(down);
    /* The router answers a caller that is gone: the answer, outcome and
     * diagnostics, is freed with the message (under ASan, a leak fails). */
    T_EQ(rt_sys_resume(router_pid, 5000), 0);
    struct gw_router_status *st = status();
    gw_router_status_free(st);
    T_EQ(version(), 1);
}

START_TEST(an_answer_to_a_caller_that_died_waiting_is_freed)
{
    run(dead_caller_body);
}
END_TEST

static void history_body(void)
{
    struct gw_router_outcome *o = NULL;
    for (int i = 2; i <= 12; i++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", i);
        const char *set = route_set(name, "/v");
        T_EQ(gw_router_replace(set, strlen(set), &o), 0);
        gw_router_outcome_free(o);
    }
    T_EQ(version(), 12);
    struct gw_router_status *s = status();
    T_EQ(s->nversions, GW_ROUTER_HISTORY);
    T_EQ(s->versions[0].version, 12); /* the first serves */
    T_EQ(s->versions[GW_ROUTER_HISTORY - 1].version, 3);
    gw_router_status_free(s);
    T_EQ(gw_router_rollback(2, &o), -ENOENT);
    gw_router_outcome_free(o);
    T_EQ(gw_router_rollback(1, &o), -ENOENT);
    gw_router_outcome_free(o);
    T_EQ(gw_router_rollback(3, &o), 0);
    gw_router_outcome_free(o);
    T_EQ(version(), 3);
}

START_TEST(history_keeps_only_the_last_10_versions)
{
    run(history_body);
}
END_TEST

/* Every kept version is served with its own table, the current one
 * marked; versions outside the history are not; a table handed out stays
 * valid after its version left the history. */
static void kept_body(void)
{
    struct gw_router_outcome *o = NULL;
    const char *set = route_set("two", "/two");
    T_EQ(gw_router_replace(set, strlen(set), &o), 0);
    gw_router_outcome_free(o);
    T_EQ(version(), 2);
    struct gw_router_kept *k = NULL;
    T_EQ(gw_router_kept_get(1, &k), 0);
    T_EQ(k->meta.version, 1);
    T_EQ(k->meta.routes, 1);
    T_ASSERT(!k->current);
    T_ASSERT(k->table && route_table_version(k->table) == 1);
    T_ASSERT(route_table_find(k->table, "a") && !route_table_find(k->table, "two"));
    struct gw_router_kept *k2 = NULL;
    T_EQ(gw_router_kept_get(2, &k2), 0);
    T_ASSERT(k2->current && strcmp(k2->meta.source, "<admin>") == 0);
    T_ASSERT(route_table_find(k2->table, "two") && !route_table_find(k2->table, "a"));
    gw_router_kept_free(k2);
    k2 = NULL;
    T_EQ(gw_router_kept_get(3, &k2), -ENOENT);
    T_ASSERT(k2 == NULL);
    T_EQ(gw_router_kept_get(0, &k2), -ENOENT);
    for (int i = 3; i <= 12; i++) { /* version 1 leaves the history */
        T_EQ(gw_router_replace(set, strlen(set), &o), 0);
        gw_router_outcome_free(o);
    }
    T_EQ(gw_router_kept_get(1, &k2), -ENOENT);
    /* the table handed out before is still whole */
    const struct route *r = route_table_find(k->table, "a");
    T_ASSERT(r && strcmp(r->path, "/a") == 0);
    gw_router_kept_free(k);
    gw_router_kept_free(NULL);
}

START_TEST(each_kept_version_is_served_with_its_own_table)
{
    run(kept_body);
}
END_TEST

static void held_body(void)
{
    const struct route_table *old = route_holder_acquire(gw.routes);
    T_ASSERT(old && route_table_version(old) == 1);
    struct gw_router_outcome *o = NULL;
    for (int i = 2; i <= 12; i++) { /* more than the history keeps */
        const char *set = route_set("new", "/new");
        T_EQ(gw_router_replace(set, strlen(set), &o), 0);
        gw_router_outcome_free(o);
    }
    T_EQ(version(), 12);
    /* the request's table is intact */
    T_EQ(route_table_version(old), 1);
    T_EQ(route_table_count(old), 1);
    const struct route *r = route_table_find(old, "a");
    T_ASSERT(r && strcmp(r->path, "/a") == 0);
    struct gw_router_status *s = status();
    T_EQ(s->retired, 1);
    gw_router_status_free(s);
    route_table_release(old);
    uint64_t t0 = rt_now_ms();
    long long retired = 1;
    while (retired && rt_now_ms() - t0 < 2000) {
        rt_sleep(10);
        s = status();
        retired = s->retired;
        gw_router_status_free(s);
    }
    T_EQ(retired, 0);
}

START_TEST(a_held_table_stays_valid_across_reloads_and_is_reclaimed_when_released)
{
    run(held_body);
}
END_TEST

static void dir_replaced_body(void)
{
    char old[400], fresh[400], path[500];
    snprintf(old, sizeof old, "%s.old", routes_dir);
    snprintf(fresh, sizeof fresh, "%s.new", routes_dir);
    T_EQ(mkdir(fresh, 0755), 0);
    snprintf(path, sizeof path, "%s/c.json", fresh);
    FILE *f = fopen(path, "w");
    T_ASSERT(f);
    fputs(route_set("c", "/c"), f);
    fclose(f);
    T_EQ(rename(routes_dir, old), 0);
    T_EQ(rename(fresh, routes_dir), 0);
    uint64_t t0 = rt_now_ms();
    while (!has_route("c") && (int64_t)(rt_now_ms() - t0) < scaled(3000))
        rt_sleep(5);
    T_ASSERT(has_route("c") && !has_route("a"));
    /* and the new directory is the one watched */
    uint64_t v = version();
    write_file("d.json", route_set("d", "/d"));
    T_ASSERT(wait_version(v + 1, 2000) >= 0);
    T_ASSERT(has_route("d") && has_route("c"));
}

START_TEST(a_replaced_directory_is_watched_again)
{
    run(dir_replaced_body);
}
END_TEST

static void symlink_body(void)
{
    /* routes -> routes-v1, then the link is swapped to routes-v2 the way
     * deployment tools do it: a new link renamed over the old one. */
    char v1[400], v2[400], link_tmp[400], path[500];
    snprintf(v1, sizeof v1, "%s-v1", routes_dir);
    snprintf(v2, sizeof v2, "%s-v2", routes_dir);
    snprintf(link_tmp, sizeof link_tmp, "%s.link", routes_dir);
    T_EQ(rename(routes_dir, v1), 0);
    T_EQ(symlink(v1, routes_dir), 0);
    T_ASSERT(wait_version(2, 3000) >= 0);
    T_EQ(mkdir(v2, 0755), 0);
    snprintf(path, sizeof path, "%s/e.json", v2);
    FILE *f = fopen(path, "w");
    T_ASSERT(f);
    fputs(route_set("e", "/e"), f);
    fclose(f);
    rt_sleep(300); /* nothing in the watched tree changed yet */
    uint64_t v = version();
    T_ASSERT(!has_route("e"));
    T_EQ(symlink(v2, link_tmp), 0);
    T_EQ(rename(link_tmp, routes_dir), 0);
    T_ASSERT(wait_version(v + 1, 2000) >= 0);
    T_ASSERT(has_route("e") && !has_route("a"));
}

START_TEST(a_swapped_directory_symlink_is_followed)
{
    run(symlink_body);
}
END_TEST

/* ---- Kubernetes ConfigMap volumes ---------------------------------------------------- */

/* A ConfigMap volume as kubelet's AtomicWriter keeps it: the mounted folder
 * holds the data in a hidden timestamped folder, `..data` pointing at it, and
 * one user-visible symlink per top-level entry of the data (`a.json ->
 * ..data/a.json`; with an item path `routes/a.json`, `routes ->
 * ..data/routes`). An update writes a new timestamped folder, points a new
 * `..data_tmp` at it, renames that over `..data`, adds missing user-visible
 * links and removes the old folder. */
static char cm_mount[300];
static bool cm_nested;  /* the routes directory is `routes -> ..data/routes` */
static char cm_old[64]; /* the timestamped folder `..data` left, "" if none */

static int cm_path(char *buf, size_t cap, const char *a, const char *b)
{
    return snprintf(buf, cap, "%s/%s%s%s", cm_mount, a, b ? "/" : "", b ? b : "");
}

/* Updates the volume to generation g (route "g<g>" at /g), up to and with
 * the user-visible links; the old folder is left for cm_remove_old(). Plain
 * C, usable outside processes: returns false on the first failing call. */
static bool cm_update(int g)
{
    char ts[64], path[512], tmp_link[512], data[512];
    snprintf(ts, sizeof ts, "..2026_12_06_10_00_00.%09d", g);
    cm_path(data, sizeof data, "..data", NULL);
    ssize_t n = readlink(data, cm_old, sizeof cm_old - 1);
    cm_old[n > 0 ? n : 0] = '\0';
    cm_path(path, sizeof path, ts, NULL);
    if (mkdir(path, 0755) != 0)
        return false;
    if (cm_nested) {
        cm_path(path, sizeof path, ts, "routes");
        if (mkdir(path, 0755) != 0)
            return false;
    }
    cm_path(path, sizeof path, ts, cm_nested ? "routes/a.json" : "a.json");
    char name[32];
    snprintf(name, sizeof name, "g%d", g);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fputs(route_set(name, "/g"), f);
    if (fclose(f) != 0)
        return false;
    cm_path(tmp_link, sizeof tmp_link, "..data_tmp", NULL);
    if (symlink(ts, tmp_link) != 0 || rename(tmp_link, data) != 0)
        return false;
    const char *visible = cm_nested ? "routes" : "a.json";
    char target[64];
    snprintf(target, sizeof target, "..data/%s", visible);
    cm_path(path, sizeof path, visible, NULL);
    if (symlink(target, path) != 0 && errno != EEXIST)
        return false;
    return true;
}

static bool cm_remove_old(void)
{
    if (!cm_old[0])
        return true;
    char path[512];
    cm_path(path, sizeof path, cm_old, NULL);
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0;
}

/* Turns run()'s routes/a.json into a volume at generation 0: mounted on the
 * routes directory itself, or on its parent with routes -> ..data/routes. */
static void cm_layout(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/a.json", routes_dir);
    ck_assert_int_eq(unlink(path), 0);
    if (cm_nested)
        ck_assert_int_eq(rmdir(routes_dir), 0);
    snprintf(cm_mount, sizeof cm_mount, "%s", cm_nested ? tmp : routes_dir);
    ck_assert(cm_update(0));
}

/* Request traffic while the volume is updated: processes matching GET /g on
 * whatever table is published, each time finding exactly one route, one of
 * the generations written. */
static atomic_bool cm_stop;
static atomic_long cm_requests;

static void cm_client(void *arg)
{
    (void)arg;
    struct route_request req = {.method = "GET", .method_len = 3, .path = "/g", .path_len = 2};
    while (!atomic_load(&cm_stop)) {
        const struct route_table *t = route_holder_acquire(gw.routes);
        struct route_match m;
        bool ok = t && route_table_count(t) == 1 &&
                  route_table_match(t, &req, &m) == ROUTE_MATCHED && m.route->name[0] == 'g';
        route_table_release(t);
        T_ASSERT(ok);
        atomic_fetch_add(&cm_requests, 1);
        rt_yield();
    }
}

#define CM_SWAPS 100
#define CM_CLIENTS 4

static void cm_body(void)
{
    T_ASSERT(has_route("g0"));
    atomic_store(&cm_stop, false);
    atomic_store(&cm_requests, 0);
    rt_pid clients[CM_CLIENTS];
    rt_ref mons[CM_CLIENTS];
    for (int i = 0; i < CM_CLIENTS; i++) {
        T_EQ(rt_spawn(cm_client, NULL, NULL, &clients[i]), 0);
        mons[i] = rt_monitor(clients[i]);
    }
    for (int g = 1; g <= CM_SWAPS; g++) {
        uint64_t v = version();
        char name[32];
        snprintf(name, sizeof name, "g%d", g);
        T_ASSERT(cm_update(g));
        /* Live from the swap of ..data on: before the old folder goes (kubelet
         * removes it next, and leaves it when the removal fails). */
        uint64_t t0 = rt_now_ms();
        while (!(version() > v && has_route(name))) {
            if ((int64_t)(rt_now_ms() - t0) > scaled(3000)) {
                fprintf(stderr, "configmap: swap %d not live (version %llu, was %llu)\n", g,
                        (unsigned long long)version(), (unsigned long long)v);
                T_ASSERT(!"swap served");
            }
            rt_sleep(1);
        }
        T_ASSERT(cm_remove_old());
    }
    atomic_store(&cm_stop, true);
    for (int i = 0; i < CM_CLIENTS; i++) {
        struct rt_msg *down = rt_receive_ref(mons[i], scaled(5000));
        T_ASSERT(down != NULL);
        T_ASSERT(down->u64 == RT_NORMAL);
        rt_msg_free(down);
    }
    fprintf(stderr, "configmap: %d swaps live, %ld table lookups meanwhile\n", CM_SWAPS,
            atomic_load(&cm_requests));
    T_ASSERT(atomic_load(&cm_requests) > CM_SWAPS);
}

START_TEST(a_configmap_mounted_on_the_routes_directory_serves_each_of_100_swaps)
{
    cm_nested = false;
    run_in(cm_layout, cm_body);
}
END_TEST

START_TEST(a_routes_directory_linked_into_a_configmap_serves_each_of_100_swaps)
{
    cm_nested = true;
    run_in(cm_layout, cm_body);
}
END_TEST

static int find_watcher(const struct rt_proc_info *info, void *ctx)
{
    if (strcmp(info->initial_call, "gw_router:watcher") != 0)
        return 0;
    *(rt_pid *)ctx = info->pid;
    return 1;
}

static rt_pid watcher_pid(void)
{
    rt_pid pid = 0;
    rt_processes_foreach(find_watcher, &pid);
    return pid;
}

static int find_other_watcher(const struct rt_proc_info *info, void *ctx)
{
    rt_pid *p = ctx;
    if (strcmp(info->initial_call, "gw_router:watcher") != 0 || info->pid == *p)
        return 0;
    *p = info->pid;
    return 1;
}

/* A watcher other than `old` (a dead process may be listed a little longer). */
static rt_pid watcher_pid_other_than(rt_pid old)
{
    rt_pid pid = old;
    return rt_processes_foreach(find_other_watcher, &pid) > 0 ? pid : 0;
}

static void watcher_crash_body(void)
{
    rt_pid w = watcher_pid();
    T_ASSERT(w != 0);
    rt_ref mon = rt_monitor(w);
    T_EQ(rt_exit_signal(w, RT_KILL), 0);
    struct rt_msg *down = rt_receive_ref(mon, scaled(5000));
    T_ASSERT(down != NULL);
    rt_msg_free(down);
    /* Written while no watcher runs: no event will ever tell of it. */
    write_file("b.json", route_set("b", "/b"));
    T_ASSERT(wait_version(2, 5000) >= 0);
    T_ASSERT(has_route("b"));
    T_ASSERT(rt_is_alive(router_pid)); /* the router and its history survive */
    T_ASSERT(watcher_pid_other_than(w) != 0);
    /* The new watcher is watching: the reload above ran once its watches
     * were in place. */
    uint64_t v = version();
    write_file("c.json", route_set("c", "/c"));
    T_ASSERT(wait_version(v + 1, 2000) >= 0);
    T_ASSERT(has_route("b") && has_route("c"));
}

START_TEST(a_crashed_watcher_is_restarted_without_losing_the_router)
{
    run(watcher_crash_body);
}
END_TEST

static void restart_body(void)
{
    struct gw_router_outcome *o = NULL;
    const char *set = route_set("x", "/x");
    T_EQ(gw_router_replace(set, strlen(set), &o), 0);
    gw_router_outcome_free(o);
    T_EQ(version(), 2);
    rt_atom why = 0;
    T_EQ(rt_gen_server_stop(router_pid, RT_SHUTDOWN, 5000, &why), 0);
    T_ASSERT(has_route("x")); /* the published table outlives the router */
    rt_atom reason = 0;
    T_EQ(gw_router_start(NULL, NULL, 0, &router_pid, &reason), 0);
    /* what serves is adopted, not replaced by the configuration's table */
    T_EQ(version(), 2);
    T_ASSERT(has_route("x"));
    struct gw_router_status *s = status();
    T_EQ(s->nversions, 1);
    T_EQ(s->versions[0].version, 2);
    gw_router_status_free(s);
    write_file("b.json", route_set("b", "/b"));
    T_ASSERT(wait_version(3, 2000) >= 0);
    T_ASSERT(has_route("a") && has_route("b") && !has_route("x"));
}

START_TEST(a_restarted_router_keeps_the_published_table)
{
    run(restart_body);
}
END_TEST

/* The configuration's parse cache belongs to the first router alone: the
 * configuration keeps no reference, so the cache goes when that router goes
 * (a restart) instead of staying for the life of the process. */
static void cache_handover_body(void)
{
    T_ASSERT(gw.cfg->routes_cache == NULL); /* handed over, not shared */
    rt_atom why = 0;
    T_EQ(rt_gen_server_stop(router_pid, RT_SHUTDOWN, 5000, &why), 0);
    rt_atom reason = 0;
    T_EQ(gw_router_start(NULL, NULL, 0, &router_pid, &reason), 0);
    T_ASSERT(gw.cfg->routes_cache == NULL);
    /* the restarted router reloads through a cache of its own */
    write_file("b.json", route_set("b", "/b"));
    T_ASSERT(wait_version(2, 2000) >= 0);
    T_ASSERT(has_route("a") && has_route("b"));
}

START_TEST(the_configuration_hands_its_parse_cache_to_the_first_router)
{
    run(cache_handover_body);
}
END_TEST

/* ---- the event stream ------------------------------------------------------------- */

/* A handler that sends every event on to the process whose pid it is given. */
static void fwd_init(const void *arg, size_t arg_size, const struct rt_ge_swap *swap,
                     struct rt_ge_result *r)
{
    (void)swap;
    rt_pid *to = rt_alloc(sizeof *to);
    if (!to || arg_size != sizeof *to) {
        rt_ge_error(r, RT_BADARG);
        return;
    }
    memcpy(to, arg, sizeof *to);
    r->state = to;
}

static void fwd_event(const struct rt_msg *event, void *state, struct rt_ge_result *r)
{
    (void)r;
    rt_send(*(rt_pid *)state, rt_msg_copy(event->type, event->data, event->size));
}

static const struct rt_ge_handler_ops fwd_ops = {
    .name = "test_forward",
    .init = fwd_init,
    .handle_event = fwd_event,
};

static bool is_reload_event(const struct rt_msg *m, void *ctx)
{
    (void)ctx;
    return m->type == GW_EVENT_ROUTES_RELOADED && m->size == sizeof(struct gw_event_routes);
}

/* The next reload event, copied into *e. */
static void next_reload_event(struct gw_event_routes *e)
{
    struct rt_msg *m = rt_receive_match(is_reload_event, NULL, scaled(2000));
    T_ASSERT(m);
    memcpy(e, m->data, sizeof *e);
    rt_msg_free(m);
}

static void events_body(void)
{
    rt_pid mgr = 0;
    rt_atom why = 0;
    T_EQ(gw_events_start(NULL, NULL, 0, &mgr, &why), 0);
    T_EQ(rt_whereis(GW_EVENTS_NAME), mgr);
    uint64_t before[GW_EVENT_TYPES];
    gw_events_counts(before);
    rt_pid me = rt_self();
    struct rt_ge_handler h = {.ops = &fwd_ops};
    T_EQ(rt_gen_event_add_handler(mgr, h, &me, sizeof me, &why), 0);

    /* Published. */
    struct gw_router_outcome *o = NULL;
    const char *set = route_set("e2", "/e2");
    T_EQ(gw_router_replace(set, strlen(set), &o), 0);
    gw_router_outcome_free(o);
    struct gw_event_routes e;
    next_reload_event(&e);
    T_ASSERT(e.ok);
    T_EQ(e.version, 2);
    T_EQ(e.routes, 1);
    T_ASSERT(strcmp(e.source, "<admin>") == 0);

    /* Refused: the version serving stays. */
    T_EQ(gw_router_replace("{\"routes\": [", 12, &o), -EINVAL);
    gw_router_outcome_free(o);
    next_reload_event(&e);
    T_ASSERT(!e.ok);
    T_EQ(e.version, 2);

    /* From the directory, on request. */
    T_EQ(gw_router_reload("admin", &o), 0);
    gw_router_outcome_free(o);
    next_reload_event(&e);
    T_ASSERT(e.ok);
    T_EQ(e.version, 3);
    T_ASSERT(strcmp(e.source, "admin") == 0);

    /* A rollback republishes. */
    T_EQ(gw_router_rollback(2, &o), 0);
    gw_router_outcome_free(o);
    next_reload_event(&e);
    T_ASSERT(e.ok);
    T_EQ(e.version, 2);
    T_ASSERT(strcmp(e.source, "rollback") == 0);

    /* The default handler counted them (the manager handled them in order,
     * so by a synchronous notify they are all counted). */
    T_EQ(rt_gen_event_sync_notify(mgr, rt_msg_new(GW_EVENT_TYPES + 1, 0)), 0);
    uint64_t after[GW_EVENT_TYPES];
    gw_events_counts(after);
    T_ASSERT(after[GW_EVENT_ROUTES_RELOADED] - before[GW_EVENT_ROUTES_RELOADED] >= 4);
    T_EQ(rt_gen_event_stop(mgr, RT_SHUTDOWN, 5000, NULL), 0);
}

START_TEST(reloads_are_announced_on_the_gateway_event_stream)
{
    run(events_body);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("router");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, initial_table_is_published_as_version_1);
    tcase_add_test(tc, editing_a_route_file_publishes_a_new_version);
    tcase_add_test(tc, a_burst_of_writes_is_coalesced_into_few_reloads);
    tcase_add_test(tc, write_then_rename_reloads_and_temporary_files_are_ignored);
    tcase_add_test(tc, a_broken_file_keeps_the_old_table_and_reports_its_position);
    tcase_add_test(tc, replace_publishes_a_valid_set_and_validate_applies_nothing);
    tcase_add_test(tc, rollback_republishes_a_kept_version_and_refuses_others);
    tcase_add_test(tc, an_answer_to_a_caller_that_died_waiting_is_freed);
    tcase_add_test(tc, history_keeps_only_the_last_10_versions);
    tcase_add_test(tc, each_kept_version_is_served_with_its_own_table);
    tcase_add_test(tc, a_held_table_stays_valid_across_reloads_and_is_reclaimed_when_released);
    tcase_add_test(tc, a_replaced_directory_is_watched_again);
    tcase_add_test(tc, a_swapped_directory_symlink_is_followed);
    tcase_add_test(tc, a_configmap_mounted_on_the_routes_directory_serves_each_of_100_swaps);
    tcase_add_test(tc, a_routes_directory_linked_into_a_configmap_serves_each_of_100_swaps);
    tcase_add_test(tc, a_crashed_watcher_is_restarted_without_losing_the_router);
    tcase_add_test(tc, a_restarted_router_keeps_the_published_table);
    tcase_add_test(tc, the_configuration_hands_its_parse_cache_to_the_first_router);
    tcase_add_test(tc, reloads_are_announced_on_the_gateway_event_stream);
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
