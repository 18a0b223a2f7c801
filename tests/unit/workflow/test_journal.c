/* test_journal.c: the workflow journal (journal.c) over its backends.
 *
 * Every case runs once per backend: SQLite always (a fresh database file
 * per case), PostgreSQL too when TANDEM_TEST_PG_CONNINFO names a server
 * (the test runs under tests/lib/pgserver.py, which starts one). On
 * PostgreSQL the tables are shared between runs, so each case uses its own
 * owner, definition name and keys, and asserts on what it made.
 *
 * A case runs in a driver process (the journal is linked to it); an
 * assertion inside a process records the first failure and exits the
 * process, and the main thread reports it. SQLite's mutex methods are
 * wrapped (before SQLite initialises) to count every entry into a
 * connection on a scheduler thread: each case ends by asserting there was
 * none. */
#include <check.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt/gen_server.h"
#include "rt/rt.h"
#include "workflow/journal_int.h"

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
#define T_EQ(a, b) T_ASSERT((long long)(a) == (long long)(b))

/* ---- SQLite on scheduler threads -------------------------------------------------- */

static sqlite3_mutex_methods real_mutex;
static _Atomic uint64_t sq_enters, sq_enters_on_scheduler;

static void note_enter(void)
{
    atomic_fetch_add(&sq_enters, 1);
    if (rt_on_scheduler())
        atomic_fetch_add(&sq_enters_on_scheduler, 1);
}

static void w_enter(sqlite3_mutex *m)
{
    note_enter();
    real_mutex.xMutexEnter(m);
}

static int w_try(sqlite3_mutex *m)
{
    note_enter();
    return real_mutex.xMutexTry(m);
}

/* Every call on a connection opened FULLMUTEX enters its mutex first. */
static bool wrap_sqlite_mutex(void)
{
    /* The methods are only filled in by the first initialisation; they
     * stay after a shutdown, when sqlite3_config is allowed again. */
    if (sqlite3_initialize() != SQLITE_OK || sqlite3_shutdown() != SQLITE_OK)
        return false;
    if (sqlite3_config(SQLITE_CONFIG_GETMUTEX, &real_mutex) != SQLITE_OK)
        return false;
    static sqlite3_mutex_methods w;
    w = real_mutex;
    w.xMutexEnter = w_enter;
    w.xMutexTry = w_try;
    return w.xMutexAlloc && sqlite3_config(SQLITE_CONFIG_MUTEX, &w) == SQLITE_OK;
}

/* ---- backends ------------------------------------------------------------------------ */

static const char *pg_conninfo(void)
{
    const char *s = getenv("TANDEM_TEST_PG_CONNINFO");
    return s && *s ? s : NULL;
}

/* Loop index -> backend: 0 SQLite, 1 PostgreSQL. */
static int nbackends(void)
{
    return pg_conninfo() ? 2 : 1;
}

static char t_dir[256];
static char t_path[300];
static char t_tag[17];       /* this case's random tag: owners, names, keys */
static uint32_t t_max_batch; /* the journals' max_batch; 0: the default */

static void hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    ck_assert_int_eq(getrandom(b, nbytes, 0), (ssize_t)nbytes);
    for (size_t i = 0; i < nbytes; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void new_id(char id[WF_ID_LEN + 1])
{
    unsigned char b[16];
    T_EQ(getrandom(b, sizeof b, 0), sizeof b);
    for (size_t i = 0; i < sizeof b; i++)
        sprintf(id + 2 * i, "%02x", b[i]);
}

static void config_for(int backend, struct wf_journal_config *cfg, const char *owner)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->backend = backend == 0 ? WF_BACKEND_SQLITE : WF_BACKEND_POSTGRES;
    cfg->sqlite_path = t_path;
    cfg->durable = true;
    cfg->pg_conninfo = pg_conninfo();
    cfg->owner = owner;
    cfg->lease_ms = 15000;
}

static void case_setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(t_dir, sizeof t_dir, "%s/wfjournalXXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(t_dir));
    snprintf(t_path, sizeof t_path, "%s/workflows.db", t_dir);
    hex(t_tag, 8);
    atomic_store(&t_failed, 0);
    t_failure[0] = '\0';
    atomic_store(&sq_enters_on_scheduler, 0);
    t_max_batch = 0;
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    ck_assert_int_eq(rt_start(&cfg), 0);
}

static void case_teardown(void)
{
    ck_assert_int_eq(rt_wait_idle(10000), 0);
    ck_assert_int_eq(rt_stop(), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_uint_eq(atomic_load(&sq_enters_on_scheduler), 0);
}

struct drive {
    int backend;
    void (*fn)(int backend);
};

static void driver(void *arg)
{
    struct drive *d = arg;
    d->fn(d->backend);
}

static void run_case(int backend, void (*fn)(int backend))
{
    struct drive d = {.backend = backend, .fn = fn};
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &pid), 0);
    rt_atom reason = RT_UNDEFINED;
    ck_assert_int_eq(rt_join(pid, 120000, &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_str_eq(rt_atom_name(reason), "normal");
}

/* ---- helpers in the driver ---------------------------------------------------------- */

static rt_pid journal_up(int backend, const char *owner)
{
    struct wf_journal_config cfg;
    config_for(backend, &cfg, owner);
    cfg.max_batch = t_max_batch;
    rt_pid pid = 0;
    T_EQ(wf_journal_start_link(&cfg, &pid), 0);
    return pid;
}

static void journal_down(rt_pid pid)
{
    /* normal: the driver it is linked to lives on. */
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 20000, NULL), 0);
}

static char owner_a[40], owner_b[40], def1[40], def2[40];

static void names(void)
{
    snprintf(owner_a, sizeof owner_a, "a-%s", t_tag);
    snprintf(owner_b, sizeof owner_b, "b-%s", t_tag);
    snprintf(def1, sizeof def1, "transfer-%s", t_tag);
    snprintf(def2, sizeof def2, "refund-%s", t_tag);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char DEF_TEXT[] = "{\"name\":\"transfer\",\"steps\":[]}";
static const char INPUT[] = "{\"amount\":10}";

static void create_args(struct wf_create *c, const char *def, const char *scope, const char *key,
                        int64_t key_ttl_ms, const char *state)
{
    memset(c, 0, sizeof(*c));
    new_id(c->id);
    c->def_name = def;
    c->def_text = DEF_TEXT;
    c->def_text_len = strlen(DEF_TEXT);
    c->input = INPUT;
    c->input_len = strlen(INPUT);
    c->scope = scope;
    c->key = key;
    for (int i = 0; i < WF_FINGERPRINT_LEN; i++)
        c->fingerprint[i] = (unsigned char)(i * 7 + 1);
    c->created_ms = now_ms();
    c->key_expires_ms = c->created_ms + key_ttl_ms;
    c->state = state;
}

static int append(const char *id, uint32_t seq, const char *state, bool terminal)
{
    char detail[64];
    snprintf(detail, sizeof detail, "{\"seq\":%u}", seq);
    struct wf_transition t = {
        .id = id,
        .seq = seq,
        .state = state,
        .event = terminal ? "end" : "intent",
        .detail = detail,
        .detail_len = strlen(detail),
        .at_ms = now_ms(),
        .terminal = terminal,
        .answer_status = terminal ? 201 : 0,
        .answer_headers = terminal ? "{\"Content-Type\":\"application/json\"}" : NULL,
        .answer_body = terminal ? "{\"ok\":true}\0tail" : NULL,
        .answer_body_len = terminal ? 16 : 0,
    };
    return wf_journal_append(&t);
}

static void make(const char *def, const char *state, bool terminal, int64_t key_ttl_ms,
                 char id[WF_ID_LEN + 1])
{
    struct wf_create c;
    create_args(&c, def, NULL, NULL, key_ttl_ms, "step:debit");
    T_EQ(wf_journal_create(&c, NULL), 0);
    memcpy(id, c.id, WF_ID_LEN + 1);
    if (strcmp(state, "step:debit") != 0 || terminal)
        T_EQ(append(id, 1, state, terminal), 0);
}

/* ---- durability ------------------------------------------------------------------------ */

static char dur_id[WF_ID_LEN + 1];

/* Writes an instance and three transitions, then ends the whole program the
 * moment the last is acknowledged: no close, no checkpoint, nothing after. */
static void crash_after_ack(int backend)
{
    names();
    journal_up(backend, owner_a);
    struct wf_create c;
    create_args(&c, def1, "route:transfer", "key-1", 3600000, "step:debit");
    memcpy(c.id, dur_id, sizeof dur_id);
    T_EQ(wf_journal_create(&c, NULL), 0);
    T_EQ(append(c.id, 1, "step:debit", false), 0);
    T_EQ(append(c.id, 2, "step:credit", false), 0);
    T_EQ(append(c.id, 3, "completed", true), 0);
    _exit(0);
}

static void read_back(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    struct wf_record *r = NULL;
    T_EQ(wf_journal_get(dur_id, true, &r), 0);
    T_ASSERT(strcmp(r->id, dur_id) == 0);
    T_ASSERT(strcmp(r->def_name, def1) == 0);
    T_EQ(r->def_text_len, strlen(DEF_TEXT));
    T_ASSERT(memcmp(r->def_text, DEF_TEXT, r->def_text_len) == 0);
    T_EQ(r->input_len, strlen(INPUT));
    T_ASSERT(strcmp(r->scope, "route:transfer") == 0 && strcmp(r->key, "key-1") == 0);
    T_EQ(r->fingerprint[1], 8);
    T_ASSERT(strcmp(r->owner, owner_a) == 0);
    T_ASSERT(strcmp(r->state, "completed") == 0);
    T_ASSERT(r->terminal);
    T_EQ(r->answer_status, 201);
    T_ASSERT(strcmp(r->answer_headers, "{\"Content-Type\":\"application/json\"}") == 0);
    T_EQ(r->answer_body_len, 16);
    T_ASSERT(memcmp(r->answer_body, "{\"ok\":true}\0tail", 16) == 0);
    T_EQ(r->ntransitions, 3);
    const char *states[] = {"step:debit", "step:credit", "completed"};
    for (uint32_t i = 0; i < 3; i++) {
        T_EQ(r->transitions[i].seq, i + 1);
        T_ASSERT(strcmp(r->transitions[i].state, states[i]) == 0);
        char detail[32];
        snprintf(detail, sizeof detail, "{\"seq\":%u}", i + 1);
        T_ASSERT(strcmp(r->transitions[i].detail, detail) == 0);
    }
    wf_record_free(r);
    struct wf_record *k = NULL;
    T_EQ(wf_journal_find_key("route:transfer", "key-1", &k), 0);
    T_ASSERT(strcmp(k->id, dur_id) == 0);
    wf_record_free(k);
    journal_down(j);
}

START_TEST(acknowledged_transition_is_durable_after_the_process_dies)
{
    char id[WF_ID_LEN + 1];
    hex(id, 16);
    memcpy(dur_id, id, sizeof id);
    /* The writer is a child process that dies at the acknowledgement; the
     * runtime is stopped around the fork (the child starts its own). */
    ck_assert_int_eq(rt_stop(), 0);
    fflush(NULL);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        struct rt_config cfg;
        rt_config_default(&cfg);
        cfg.schedulers = 2;
        if (rt_start(&cfg) != 0)
            _exit(3);
        rt_pid pid;
        struct drive d = {.backend = _i, .fn = crash_after_ack};
        if (rt_spawn(driver, &d, NULL, &pid) != 0)
            _exit(3);
        rt_join(pid, 60000, NULL);
        fprintf(stderr, "%s\n", t_failure);
        _exit(2); /* the driver failed before the last acknowledgement */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    ck_assert_int_eq(rt_start(&cfg), 0);
    /* A new journal on the same database reads everything back. */
    run_case(_i, read_back);
    if (_i != 0)
        return;
    /* And so does SQLite itself, on this (non-scheduler) thread. */
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(t_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM transitions WHERE id = ?1),"
                                        " (SELECT state FROM instances WHERE id = ?1),"
                                        " (SELECT id FROM keys WHERE key = 'key-1')",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, dur_id, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(s, 0), 3);
    ck_assert_str_eq((const char *)sqlite3_column_text(s, 1), "completed");
    ck_assert_str_eq((const char *)sqlite3_column_text(s, 2), dur_id);
    sqlite3_finalize(s);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}
END_TEST

/* ---- keys ------------------------------------------------------------------------------ */

static void taken_key(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char key[40];
    snprintf(key, sizeof key, "k-%s", t_tag);
    struct wf_create c1, c2;
    create_args(&c1, def1, "consumer:alice", key, 3600000, "step:debit");
    T_EQ(wf_journal_create(&c1, NULL), 0);
    create_args(&c2, def1, "consumer:alice", key, 3600000, "step:debit");
    struct wf_record *holder = NULL;
    T_EQ(wf_journal_create(&c2, &holder), -EEXIST);
    T_ASSERT(holder != NULL);
    T_ASSERT(strcmp(holder->id, c1.id) == 0);
    T_ASSERT(memcmp(holder->fingerprint, c1.fingerprint, WF_FINGERPRINT_LEN) == 0);
    T_ASSERT(strcmp(holder->state, "step:debit") == 0 && !holder->terminal);
    T_EQ(holder->ntransitions, 0);
    wf_record_free(holder);
    /* The loser left nothing: its id is unknown. */
    struct wf_record *r = NULL;
    T_EQ(wf_journal_get(c2.id, false, &r), -ENOENT);
    /* Another scope may use the same key. */
    struct wf_create c3;
    create_args(&c3, def1, "consumer:bob", key, 3600000, "step:debit");
    T_EQ(wf_journal_create(&c3, NULL), 0);
    /* NULL `existing` is allowed. */
    create_args(&c2, def1, "consumer:alice", key, 3600000, "step:debit");
    T_EQ(wf_journal_create(&c2, NULL), -EEXIST);
    journal_down(j);
}

START_TEST(create_with_taken_key_gives_eexist_and_the_holder)
{
    run_case(_i, taken_key);
}
END_TEST

static void expired_key(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char key[40];
    snprintf(key, sizeof key, "k-%s", t_tag);
    struct wf_create c1, c2;
    create_args(&c1, def1, "route:transfer", key, -1, "step:debit"); /* expired */
    T_EQ(wf_journal_create(&c1, NULL), 0);
    struct wf_record *r = NULL;
    T_EQ(wf_journal_find_key("route:transfer", key, &r), -ENOENT);
    /* Its instance still runs: the key stays taken, by it. */
    create_args(&c2, def1, "route:transfer", key, 3600000, "step:debit");
    T_EQ(wf_journal_create(&c2, &r), -EEXIST);
    T_ASSERT(r != NULL && strcmp(r->id, c1.id) == 0);
    wf_record_free(r);
    r = NULL;
    /* Once it is over, the expired key is free. */
    T_EQ(append(c1.id, 1, "completed", true), 0);
    create_args(&c2, def1, "route:transfer", key, 3600000, "step:debit");
    T_EQ(wf_journal_create(&c2, NULL), 0);
    T_EQ(wf_journal_find_key("route:transfer", key, &r), 0);
    T_ASSERT(strcmp(r->id, c2.id) == 0);
    wf_record_free(r);
    journal_down(j);
}

START_TEST(expired_key_is_free_to_reuse_once_its_instance_is_over)
{
    run_case(_i, expired_key);
}
END_TEST

/* ---- transitions and ownership ------------------------------------------------------------ */

static void dup_seq(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char id[WF_ID_LEN + 1];
    make(def1, "step:debit", false, 3600000, id);
    T_EQ(append(id, 1, "step:debit", false), 0);
    T_EQ(append(id, 1, "step:credit", false), -EEXIST);
    T_EQ(append(id, 2, "step:credit", false), 0);
    char unknown[WF_ID_LEN + 1];
    new_id(unknown);
    T_EQ(append(unknown, 1, "step:debit", false), -ENOENT);
    struct wf_record *r = NULL;
    T_EQ(wf_journal_get(id, true, &r), 0);
    T_EQ(r->ntransitions, 2);
    T_ASSERT(strcmp(r->transitions[0].state, "step:debit") == 0);
    T_ASSERT(strcmp(r->state, "step:credit") == 0);
    wf_record_free(r);
    journal_down(j);
}

START_TEST(duplicate_seq_gives_eexist_and_keeps_the_first)
{
    run_case(_i, dup_seq);
}
END_TEST

static void ownership(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char id[WF_ID_LEN + 1];
    make(def1, "step:debit", false, 3600000, id);
    journal_down(j);
    /* Another replica: its write for a's instance is refused... */
    j = journal_up(backend, owner_b);
    T_EQ(append(id, 1, "step:debit", false), -ESTALE);
    struct wf_record *r = NULL;
    T_EQ(wf_journal_get(id, true, &r), 0);
    T_EQ(r->ntransitions, 0);
    wf_record_free(r);
    /* ...until it claims it (SQLite: every unfinished instance; PostgreSQL:
     * a's lease must lapse first, so that case renews nothing and waits). */
    if (backend != 0) {
        journal_down(j);
        struct wf_journal_config cfg;
        config_for(backend, &cfg, owner_b);
        cfg.lease_ms = 300;
        T_EQ(wf_journal_start_link(&cfg, &j), 0);
        rt_sleep(16000); /* owner a's lease (15 s) runs out */
    }
    char(*ids)[WF_ID_LEN + 1] = NULL;
    size_t n = 0;
    T_EQ(wf_journal_claim(1000, &ids, &n), 0);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found = found || strcmp(ids[i], id) == 0;
    free(ids);
    T_ASSERT(found);
    T_EQ(append(id, 1, "step:debit", false), 0);
    journal_down(j);
    /* Now a is the stale one. */
    j = journal_up(backend, owner_a);
    T_EQ(append(id, 2, "step:credit", false), -ESTALE);
    journal_down(j);
}

START_TEST(write_for_an_instance_owned_by_another_gives_estale)
{
    run_case(_i, ownership);
}
END_TEST

/* ---- list, claim, purge ------------------------------------------------------------------ */

static void list_case(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char ids[6][WF_ID_LEN + 1];
    make(def1, "step:debit", false, 3600000, ids[0]);
    make(def1, "step:credit", false, 3600000, ids[1]);
    make(def1, "completed", true, 3600000, ids[2]);
    make(def2, "compensating:debit", false, 3600000, ids[3]);
    make(def2, "failed", true, 3600000, ids[4]);
    rt_sleep(20);
    int64_t cut = now_ms();
    rt_sleep(20);
    make(def1, "step:debit", false, 3600000, ids[5]);

    struct {
        const char *def, *state;
        int64_t older;
        int expect[6];
    } cases[] = {
        {def1, NULL, 0, {1, 1, 1, 0, 0, 1}},         {def2, NULL, 0, {0, 0, 0, 1, 1, 0}},
        {def1, "active", 0, {1, 1, 0, 0, 0, 1}},     {def1, "step:", 0, {1, 1, 0, 0, 0, 1}},
        {def1, "step:debit", 0, {1, 0, 0, 0, 0, 1}}, {def2, "failed", 0, {0, 0, 0, 0, 1, 0}},
        {def1, "active", cut, {1, 1, 0, 0, 0, 0}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct wf_list_filter f = {
            .def_name = cases[k].def, .state = cases[k].state, .older_than_ms = cases[k].older};
        struct wf_record **recs = NULL;
        size_t n = 0;
        T_EQ(wf_journal_list(&f, &recs, &n), 0);
        int want = 0;
        for (int i = 0; i < 6; i++)
            want += cases[k].expect[i];
        T_EQ(n, want);
        for (size_t i = 0; i < n; i++) {
            if (i)
                T_ASSERT(strcmp(recs[i - 1]->id, recs[i]->id) < 0); /* id order */
            T_EQ(recs[i]->ntransitions, 0);
            int which = -1;
            for (int x = 0; x < 6; x++)
                if (strcmp(recs[i]->id, ids[x]) == 0)
                    which = x;
            T_ASSERT(which >= 0 && cases[k].expect[which]);
        }
        for (size_t i = 0; i < n; i++)
            wf_record_free(recs[i]);
        free(recs);
    }
    /* Pages of two, each after the last id of the one before. */
    char after[WF_ID_LEN + 1] = "";
    size_t total = 0, pages = 0;
    for (;;) {
        struct wf_list_filter f = {.def_name = def1, .after_id = *after ? after : NULL, .limit = 2};
        struct wf_record **recs = NULL;
        size_t n = 0;
        T_EQ(wf_journal_list(&f, &recs, &n), 0);
        T_ASSERT(n <= 2);
        for (size_t i = 0; i < n; i++) {
            T_ASSERT(strcmp(recs[i]->id, after) > 0);
            memcpy(after, recs[i]->id, sizeof after);
            wf_record_free(recs[i]);
        }
        free(recs);
        total += n;
        pages++;
        if (n < 2)
            break;
    }
    T_EQ(total, 4);
    T_EQ(pages, 3);
    journal_down(j);
}

START_TEST(list_filters_by_definition_state_age_and_pages_by_id)
{
    run_case(_i, list_case);
}
END_TEST

static void claim_case(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char ids[4][WF_ID_LEN + 1];
    make(def1, "step:debit", false, 3600000, ids[0]);
    make(def1, "compensating:debit", false, 3600000, ids[1]);
    make(def1, "completed", true, 3600000, ids[2]);
    make(def1, "step:credit", false, 3600000, ids[3]);
    char(*got)[WF_ID_LEN + 1] = NULL;
    size_t n = 0;
    T_EQ(wf_journal_claim(1, &got, &n), 0);
    T_EQ(n, 1);
    free(got);
    T_EQ(wf_journal_claim(1000, &got, &n), 0);
    int seen[4] = {0};
    for (size_t i = 0; i < n; i++)
        for (int x = 0; x < 4; x++)
            seen[x] += strcmp(got[i], ids[x]) == 0;
    free(got);
    T_ASSERT(seen[0] == 1 && seen[1] == 1 && seen[3] == 1);
    T_EQ(seen[2], 0); /* terminal: nothing to recover */
    T_EQ(wf_journal_renew(), 0);
    journal_down(j);
}

START_TEST(claim_takes_unfinished_instances_up_to_the_limit)
{
    run_case(_i, claim_case);
}
END_TEST

static void purge_case(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char key_old[40], key_new[40], key_run[40];
    snprintf(key_old, sizeof key_old, "old-%s", t_tag);
    snprintf(key_new, sizeof key_new, "new-%s", t_tag);
    snprintf(key_run, sizeof key_run, "run-%s", t_tag);
    struct wf_create old, fresh, running;
    create_args(&old, def1, "route:p", key_old, 1000, "step:debit");
    create_args(&fresh, def1, "route:p", key_new, 3600000, "step:debit");
    create_args(&running, def1, "route:p", key_run, 1000, "step:debit");
    T_EQ(wf_journal_create(&old, NULL), 0);
    T_EQ(wf_journal_create(&fresh, NULL), 0);
    T_EQ(wf_journal_create(&running, NULL), 0);
    T_EQ(append(old.id, 1, "completed", true), 0);
    T_EQ(append(fresh.id, 1, "completed", true), 0);
    size_t purged = 0;
    T_EQ(wf_journal_purge(now_ms() + 60000, &purged), 0);
    T_ASSERT(backend == 0 ? purged == 1 : purged >= 1);
    struct wf_record *r = NULL;
    T_EQ(wf_journal_get(old.id, true, &r), -ENOENT);
    T_EQ(wf_journal_find_key("route:p", key_old, &r), -ENOENT);
    T_EQ(wf_journal_get(fresh.id, true, &r), 0);
    T_EQ(r->ntransitions, 1);
    wf_record_free(r);
    /* Unfinished: kept, with its transitions and its key. */
    T_EQ(wf_journal_get(running.id, false, &r), 0);
    wf_record_free(r);
    /* The purged key is free again. */
    struct wf_create again;
    create_args(&again, def1, "route:p", key_old, 3600000, "step:debit");
    T_EQ(wf_journal_create(&again, NULL), 0);
    journal_down(j);
}

START_TEST(purge_deletes_finished_instances_whose_key_expired)
{
    run_case(_i, purge_case);
}
END_TEST

/* `failed` is journalled as terminal (with the answer the client gets),
 * yet it waits for an operator: purge keeps it whatever its key's age. */
static void purge_failed_case(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char key[40];
    snprintf(key, sizeof key, "failed-%s", t_tag);
    struct wf_create c;
    create_args(&c, def1, "route:p", key, 1000, "step:debit");
    T_EQ(wf_journal_create(&c, NULL), 0);
    T_EQ(append(c.id, 1, "compensating:debit", false), 0);
    T_EQ(append(c.id, 2, "failed", true), 0);
    size_t purged = 0;
    T_EQ(wf_journal_purge(now_ms() + 60000, &purged), 0);
    struct wf_record *r = NULL;
    T_EQ(wf_journal_get(c.id, true, &r), 0);
    T_ASSERT(strcmp(r->state, "failed") == 0);
    T_EQ(r->ntransitions, 2);
    wf_record_free(r);
    /* Resolved by the operator, it ends and goes with the next purge. */
    T_EQ(append(c.id, 3, "resolved", true), 0);
    T_EQ(wf_journal_purge(now_ms() + 60000, &purged), 0);
    T_EQ(wf_journal_get(c.id, false, &r), -ENOENT);
    journal_down(j);
}

START_TEST(purge_keeps_failed_instances_waiting_for_an_operator)
{
    run_case(_i, purge_failed_case);
}
END_TEST

/* An operator's retry of a failed instance appends non-terminal
 * transitions after `failed`: the instance is unfinished again (claimed at
 * recovery, listed as active, no stored answer) until it ends again. */
static void retry_after_failed_case(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char id[WF_ID_LEN + 1];
    make(def1, "failed", true, 3600000, id);
    struct wf_record *r = NULL;
    T_EQ(wf_journal_get(id, false, &r), 0);
    T_ASSERT(r->terminal && r->answer_status == 201);
    wf_record_free(r);
    T_EQ(append(id, 2, "compensating:debit", false), 0);
    T_EQ(wf_journal_get(id, false, &r), 0);
    T_ASSERT(strcmp(r->state, "compensating:debit") == 0);
    T_ASSERT(!r->terminal);
    T_EQ(r->answer_status, 0);
    T_ASSERT(r->answer_body == NULL);
    wf_record_free(r);
    char(*got)[WF_ID_LEN + 1] = NULL;
    size_t n = 0;
    T_EQ(wf_journal_claim(100000, &got, &n), 0);
    int seen = 0;
    for (size_t i = 0; i < n; i++)
        seen += strcmp(got[i], id) == 0;
    free(got);
    T_EQ(seen, 1);
    struct wf_list_filter f = {.def_name = def1, .state = "active"};
    struct wf_record **recs = NULL;
    T_EQ(wf_journal_list(&f, &recs, &n), 0);
    T_EQ(n, 1);
    T_ASSERT(strcmp(recs[0]->id, id) == 0);
    wf_record_free(recs[0]);
    free(recs);
    /* Ending again stores the new answer. */
    T_EQ(append(id, 3, "compensated", true), 0);
    T_EQ(wf_journal_get(id, false, &r), 0);
    T_ASSERT(r->terminal && r->answer_status == 201 && r->answer_body_len == 16);
    wf_record_free(r);
    journal_down(j);
}

START_TEST(an_operator_retry_after_failed_makes_the_instance_unfinished_again)
{
    run_case(_i, retry_after_failed_case);
}
END_TEST

/* ---- group commit ------------------------------------------------------------------------ */

#define GC_WRITERS 200

static char gc_ids[GC_WRITERS][WF_ID_LEN + 1];

static void gc_writer(void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    struct rt_msg *go = rt_receive(60000); /* start together */
    T_ASSERT(go != NULL);
    rt_msg_free(go);
    struct wf_create c;
    create_args(&c, def1, NULL, NULL, 3600000, "step:debit");
    memcpy(gc_ids[i], c.id, sizeof c.id);
    T_EQ(wf_journal_create(&c, NULL), 0);
    T_EQ(append(c.id, 1, "step:debit", false), 0);
    T_EQ(append(c.id, 2, "step:credit", false), 0);
}

static struct wf_journal_stats gc_before, gc_after;

static void group_commit(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    wf_journal_stats(&gc_before);
    rt_pid w[GC_WRITERS];
    rt_ref mons[GC_WRITERS];
    for (size_t i = 0; i < GC_WRITERS; i++) {
        T_EQ(rt_spawn(gc_writer, (void *)(uintptr_t)i, NULL, &w[i]), 0);
        mons[i] = rt_monitor(w[i]);
    }
    for (size_t i = 0; i < GC_WRITERS; i++)
        T_EQ(rt_send(w[i], rt_msg_new(1, 0)), 0);
    for (size_t i = 0; i < GC_WRITERS; i++) {
        struct rt_msg *down = rt_receive_ref(mons[i], 60000);
        T_ASSERT(down != NULL);
        T_EQ(down->u64, RT_NORMAL);
        rt_msg_free(down);
    }
    wf_journal_stats(&gc_after);
    /* Every write acknowledged is there. */
    for (size_t i = 0; i < GC_WRITERS; i++) {
        struct wf_record *r = NULL;
        T_EQ(wf_journal_get(gc_ids[i], true, &r), 0);
        T_EQ(r->ntransitions, 2);
        T_ASSERT(strcmp(r->state, "step:credit") == 0);
        wf_record_free(r);
    }
    journal_down(j);
}

START_TEST(concurrent_writes_share_commits)
{
    run_case(_i, group_commit);
    uint64_t writes = gc_after.writes - gc_before.writes;
    uint64_t commits = gc_after.commits - gc_before.commits;
    ck_assert_uint_eq(writes, 3 * GC_WRITERS);
    /* 200 writers, each with one write outstanding at a time: whatever
     * arrives while a commit is in flight joins the next one, so each
     * commit after the first takes many writes. A journal committing each
     * write alone makes 600 commits; a bound of writes / 4 (150) leaves a
     * wide margin for a loaded machine while failing that. */
    ck_assert_uint_le(commits, writes / 4);
    ck_assert_uint_gt(gc_after.max_batch, 4);
    ck_assert_uint_gt(gc_after.bytes, gc_before.bytes);
    ck_assert_uint_gt(gc_after.commit_us_sum, gc_before.commit_us_sum);
    if (_i != 0)
        return;
    /* The file holds them all, read by SQLite itself. */
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(t_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM instances),"
                                        " (SELECT count(*) FROM transitions)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(s, 0), GC_WRITERS);
    ck_assert_int_eq(sqlite3_column_int(s, 1), 2 * GC_WRITERS);
    sqlite3_finalize(s);
    sqlite3_close(db);
}
END_TEST

START_TEST(a_commit_takes_at_most_max_batch_writes)
{
    t_max_batch = 8;
    run_case(_i, group_commit);
    uint64_t writes = gc_after.writes - gc_before.writes;
    uint64_t commits = gc_after.commits - gc_before.commits;
    ck_assert_uint_eq(writes, 3 * GC_WRITERS);
    ck_assert_uint_le(gc_after.max_batch, 8);
    ck_assert_uint_ge(commits, writes / 8);
}
END_TEST

/* Writes whose records are large: a commit stops taking them at
 * WF_JOURNAL_BATCH_BYTES, so what one batch holds stays bounded. */
#define BIG_WRITERS 12
#define BIG_DETAIL (6u << 20)

static char big_ids[BIG_WRITERS][WF_ID_LEN + 1];
static char *big_detail;

static void big_writer(void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    struct rt_msg *go = rt_receive(60000);
    T_ASSERT(go != NULL);
    rt_msg_free(go);
    struct wf_transition t = {
        .id = big_ids[i],
        .seq = 1,
        .state = "step:credit",
        .event = "outcome",
        .detail = big_detail,
        .detail_len = BIG_DETAIL,
        .at_ms = now_ms(),
    };
    T_EQ(wf_journal_append(&t), 0);
}

static struct wf_journal_stats big_stats;

static void big_batches(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    /* One at a time: these commits are batches of one. */
    for (size_t i = 0; i < BIG_WRITERS; i++) {
        struct wf_create c;
        create_args(&c, def1, NULL, NULL, 3600000, "step:debit");
        T_EQ(wf_journal_create(&c, NULL), 0);
        memcpy(big_ids[i], c.id, sizeof c.id);
    }
    rt_pid w[BIG_WRITERS];
    rt_ref mons[BIG_WRITERS];
    for (size_t i = 0; i < BIG_WRITERS; i++) {
        T_EQ(rt_spawn(big_writer, (void *)(uintptr_t)i, NULL, &w[i]), 0);
        mons[i] = rt_monitor(w[i]);
    }
    for (size_t i = 0; i < BIG_WRITERS; i++)
        T_EQ(rt_send(w[i], rt_msg_new(1, 0)), 0);
    for (size_t i = 0; i < BIG_WRITERS; i++) {
        struct rt_msg *down = rt_receive_ref(mons[i], 60000);
        T_ASSERT(down != NULL);
        T_EQ(down->u64, RT_NORMAL);
        rt_msg_free(down);
    }
    wf_journal_stats(&big_stats);
    for (size_t i = 0; i < BIG_WRITERS; i++) {
        struct wf_record *r = NULL;
        T_EQ(wf_journal_get(big_ids[i], true, &r), 0);
        T_EQ(r->ntransitions, 1);
        T_EQ(strlen(r->transitions[0].detail), BIG_DETAIL);
        wf_record_free(r);
    }
    journal_down(j);
}

START_TEST(a_commit_takes_at_most_batch_bytes_of_records)
{
    big_detail = malloc(BIG_DETAIL + 1);
    ck_assert_ptr_nonnull(big_detail);
    memset(big_detail, 'x', BIG_DETAIL);
    big_detail[BIG_DETAIL] = '\0';
    run_case(_i, big_batches);
    free(big_detail);
    /* Writes are taken until the bytes reach the bound: the last one
     * taken may cross it. */
    ck_assert_uint_le(big_stats.max_batch, WF_JOURNAL_BATCH_BYTES / BIG_DETAIL + 1);
}
END_TEST

/* ---- a journal killed mid-commit --------------------------------------------------------- */

#define KILL_WRITERS 64
#define KILL_STEPS 20

static char kill_ids[KILL_WRITERS][WF_ID_LEN + 1];
static int kill_created[KILL_WRITERS], kill_acked[KILL_WRITERS], kill_err[KILL_WRITERS];

/* Creates an instance and appends to it until a write fails, counting what
 * was acknowledged. */
static void kill_writer(void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    struct rt_msg *go = rt_receive(60000);
    T_ASSERT(go != NULL);
    rt_msg_free(go);
    struct wf_create c;
    create_args(&c, def1, NULL, NULL, 3600000, "step:debit");
    memcpy(kill_ids[i], c.id, sizeof c.id);
    int e = wf_journal_create(&c, NULL);
    kill_created[i] = e == 0;
    for (uint32_t seq = 1; !e && seq <= KILL_STEPS; seq++) {
        if (!(e = append(c.id, seq, "step:debit", false)))
            kill_acked[i]++;
    }
    kill_err[i] = e;
}

static void killed_journal(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    rt_unlink(j); /* the driver outlives the kill */
    rt_ref jmon = rt_monitor(j);
    rt_pid w[KILL_WRITERS];
    rt_ref mons[KILL_WRITERS];
    for (size_t i = 0; i < KILL_WRITERS; i++) {
        kill_created[i] = kill_acked[i] = kill_err[i] = 0;
        T_EQ(rt_spawn(kill_writer, (void *)(uintptr_t)i, NULL, &w[i]), 0);
        mons[i] = rt_monitor(w[i]);
    }
    struct wf_journal_stats st0, st;
    wf_journal_stats(&st0);
    for (size_t i = 0; i < KILL_WRITERS; i++)
        T_EQ(rt_send(w[i], rt_msg_new(1, 0)), 0);
    /* Killed once some writes are in, with more on the way: no terminate,
     * no close; a commit in flight finishes on its thread, on its own
     * copies. */
    do {
        rt_sleep(1);
        wf_journal_stats(&st);
    } while (st.writes - st0.writes < KILL_WRITERS);
    T_EQ(rt_exit_signal(j, RT_KILL), 0);
    struct rt_msg *down = rt_receive_ref(jmon, 20000);
    T_ASSERT(down != NULL);
    rt_msg_free(down);
    size_t acked = 0, failed = 0;
    for (size_t i = 0; i < KILL_WRITERS; i++) {
        down = rt_receive_ref(mons[i], 60000);
        T_ASSERT(down != NULL);
        T_EQ(down->u64, RT_NORMAL);
        rt_msg_free(down);
        T_ASSERT(kill_err[i] == 0 || kill_err[i] == -EIO);
        acked += (size_t)kill_created[i] + (size_t)kill_acked[i];
        failed += kill_err[i] != 0;
    }
    T_ASSERT(acked >= KILL_WRITERS / 2); /* the kill came after these */
    T_ASSERT(failed > 0);                /* and before the end */
    /* A new journal opens the same database (waiting out the old
     * connection's transaction if it is still on) and holds every write
     * that was acknowledged: a write that failed may be there or not. */
    j = journal_up(backend, owner_a);
    for (size_t i = 0; i < KILL_WRITERS; i++) {
        if (!kill_created[i])
            continue;
        struct wf_record *r = NULL;
        T_EQ(wf_journal_get(kill_ids[i], true, &r), 0);
        T_ASSERT(r->ntransitions >= (size_t)kill_acked[i]);
        T_ASSERT(r->ntransitions <= (size_t)kill_acked[i] + 1);
        wf_record_free(r);
    }
    /* And it takes writes. */
    char id[WF_ID_LEN + 1];
    make(def1, "completed", true, 3600000, id);
    journal_down(j);
}

START_TEST(journal_killed_mid_commit_loses_no_acknowledged_write)
{
    run_case(_i, killed_journal);
}
END_TEST

/* ---- lease renewal ----------------------------------------------------------------------- */

static char lease_id[WF_ID_LEN + 1];
static int64_t lease_created, lease_stopped;

static void lease_case(int backend)
{
    names();
    struct wf_journal_config cfg;
    config_for(backend, &cfg, owner_a);
    cfg.lease_ms = 300;
    rt_pid j = 0;
    T_EQ(wf_journal_start_link(&cfg, &j), 0);
    lease_created = now_ms();
    make(def1, "step:debit", false, 3600000, lease_id);
    rt_sleep(1000); /* about ten renewals, one every 100 ms */
    lease_stopped = now_ms();
    journal_down(j);
}

START_TEST(leases_are_renewed_every_third_of_lease_ms)
{
    run_case(0, lease_case);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(t_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(
        sqlite3_prepare_v2(db, "SELECT lease_until FROM instances WHERE id = ?1", -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_text(s, 1, lease_id, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    int64_t until = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    /* Written at the create, the lease would end near lease_created + 300;
     * renewed, it ends at most one renewal period (plus scheduling slack)
     * before the stop's time + 300. */
    ck_assert_int_gt(until, lease_created + 300 + 500);
    ck_assert_int_le(until, lease_stopped + 300);
}
END_TEST

/* ---- off the schedulers ------------------------------------------------------------------- */

static void everything(int backend)
{
    names();
    rt_pid j = journal_up(backend, owner_a);
    char id[WF_ID_LEN + 1];
    make(def1, "completed", true, 1, id);
    struct wf_record *r = NULL;
    T_EQ(wf_journal_get(id, true, &r), 0);
    wf_record_free(r);
    T_EQ(wf_journal_find_key("route:none", "none", &r), -ENOENT);
    struct wf_list_filter f = {.def_name = def1};
    struct wf_record **recs = NULL;
    size_t n = 0;
    T_EQ(wf_journal_list(&f, &recs, &n), 0);
    for (size_t i = 0; i < n; i++)
        wf_record_free(recs[i]);
    free(recs);
    char(*ids)[WF_ID_LEN + 1] = NULL;
    T_EQ(wf_journal_claim(10, &ids, &n), 0);
    free(ids);
    T_EQ(wf_journal_renew(), 0);
    size_t purged;
    T_EQ(wf_journal_purge(now_ms() + 1000, &purged), 0);
    journal_down(j);
}

START_TEST(sqlite_never_runs_on_a_scheduler_thread)
{
    uint64_t before = atomic_load(&sq_enters);
    run_case(0, everything);
    /* The hook saw the journal's SQLite calls, and none on a scheduler. */
    ck_assert_uint_gt(atomic_load(&sq_enters) - before, 20);
    ck_assert_uint_eq(atomic_load(&sq_enters_on_scheduler), 0);
}
END_TEST

int main(void)
{
    if (!wrap_sqlite_mutex()) {
        fprintf(stderr, "cannot wrap SQLite's mutex methods\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("wf_journal");
    TCase *tc = tcase_create("journal");
    tcase_add_checked_fixture(tc, case_setup, case_teardown);
    tcase_set_timeout(tc, 120);
    int nb = nbackends();
    tcase_add_loop_test(tc, acknowledged_transition_is_durable_after_the_process_dies, 0, nb);
    tcase_add_loop_test(tc, create_with_taken_key_gives_eexist_and_the_holder, 0, nb);
    tcase_add_loop_test(tc, expired_key_is_free_to_reuse_once_its_instance_is_over, 0, nb);
    tcase_add_loop_test(tc, duplicate_seq_gives_eexist_and_keeps_the_first, 0, nb);
    tcase_add_loop_test(tc, write_for_an_instance_owned_by_another_gives_estale, 0, nb);
    tcase_add_loop_test(tc, list_filters_by_definition_state_age_and_pages_by_id, 0, nb);
    tcase_add_loop_test(tc, claim_takes_unfinished_instances_up_to_the_limit, 0, nb);
    tcase_add_loop_test(tc, purge_deletes_finished_instances_whose_key_expired, 0, nb);
    tcase_add_loop_test(tc, purge_keeps_failed_instances_waiting_for_an_operator, 0, nb);
    tcase_add_loop_test(tc, an_operator_retry_after_failed_makes_the_instance_unfinished_again, 0,
                        nb);
    tcase_add_loop_test(tc, concurrent_writes_share_commits, 0, nb);
    tcase_add_loop_test(tc, a_commit_takes_at_most_max_batch_writes, 0, nb);
    tcase_add_loop_test(tc, a_commit_takes_at_most_batch_bytes_of_records, 0, nb);
    tcase_add_loop_test(tc, journal_killed_mid_commit_loses_no_acknowledged_write, 0, nb);
    tcase_add_test(tc, leases_are_renewed_every_third_of_lease_ms);
    tcase_add_test(tc, sqlite_never_runs_on_a_scheduler_thread);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
