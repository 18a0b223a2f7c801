/*
 * test_journal_pg.c: the PostgreSQL backend of the workflows journal
 * (gateway/src/workflow/journal_pg.c), called through its vtable from
 * runtime processes, against a real server that tests/lib/pgserver.py
 * starts for the run (TANDEM_TEST_PG_CONNINFO). Two backends with two
 * owners stand for two replicas. Clocks are the tests' own (now_ms is an
 * argument), so leases lapse without waiting.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workflow/journal_int.h"
#include "workflow/journal_pg.h"

static char failure[512];
static atomic_int failed;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c) && atomic_exchange(&failed, 1) == 0)                                              \
            snprintf(failure, sizeof failure, "%s:%d: %s", __FILE__, __LINE__, #c);                \
    } while (0)

static const struct wf_backend_ops *ops = &wf_backend_postgres;

/* A wall clock of the tests' own, far from 0 like a real one. */
#define T0 ((int64_t)1700000000000)

static void *open_as(const char *owner)
{
    struct wf_journal_config cfg = {
        .backend = WF_BACKEND_POSTGRES,
        .pg_conninfo = getenv("TANDEM_TEST_PG_CONNINFO"),
        .owner = owner,
        .lease_ms = 1000,
        .max_batch = 512,
    };
    void *b = NULL;
    int rc = ops->open(&cfg, &b);
    T_ASSERT(rc == 0);
    return rc == 0 ? b : NULL;
}

/* Each test starts from empty tables. */
static void *open_clean(const char *owner)
{
    void *b = open_as(owner);
    if (b)
        T_ASSERT(wf__pg_exec(b, "WITH d AS (DELETE FROM wf_instances RETURNING 1)"
                                " SELECT count(*) FROM d") == 0);
    return b;
}

static void make_id(char id[WF_ID_LEN + 1], unsigned n)
{
    snprintf(id, WF_ID_LEN + 1, "%032x", n);
}

static struct wf_create creation(const char *id, const char *scope, const char *key)
{
    struct wf_create c = {
        .def_name = "transfer",
        .def_text = "{\"name\":\"transfer\"}",
        .def_text_len = strlen("{\"name\":\"transfer\"}"),
        .input = "{\"amount\":5}",
        .input_len = strlen("{\"amount\":5}"),
        .scope = scope,
        .key = key,
        .created_ms = T0,
        .key_expires_ms = T0 + 60000,
        .state = "step:debit",
    };
    memcpy(c.id, id, WF_ID_LEN + 1);
    memset(c.fingerprint, 0xab, sizeof c.fingerprint);
    return c;
}

static struct wf_transition transition(const char *id, uint32_t seq, const char *state)
{
    struct wf_transition t = {
        .id = id,
        .seq = seq,
        .state = state,
        .event = "intent",
        .detail = "{\"attempt\":1}",
        .detail_len = strlen("{\"attempt\":1}"),
        .at_ms = T0 + seq,
    };
    return t;
}

/* Commits one create at `now` as `owner`: the op's result, or the batch's
 * error. */
static int create1(void *b, const struct wf_create *c, const char *owner, int64_t now,
                   uint32_t lease_ms, struct wf_record **existing)
{
    struct wf_op op = {.kind = WF_OP_CREATE, .create = c};
    int rc = ops->commit(b, &op, 1, owner, now, lease_ms);
    if (existing)
        *existing = op.existing;
    else
        wf_record_free(op.existing);
    return rc < 0 ? rc : op.result;
}

static int append1(void *b, const struct wf_transition *t, const char *owner)
{
    struct wf_op op = {.kind = WF_OP_APPEND, .append = t};
    int rc = ops->commit(b, &op, 1, owner, T0, 1000);
    return rc < 0 ? rc : op.result;
}

static void run_on(void (*body)(void *), unsigned schedulers)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = schedulers;
    atomic_store(&failed, 0);
    ck_assert_int_eq(rt_start(&cfg), 0);
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(body, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 60000, NULL), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
}

static bool has(char (*ids)[WF_ID_LEN + 1], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

/* ---- a batch, read back ---------------------------------------------------- */

static void batch_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r1");
    if (!b)
        return;
    char id[WF_ID_LEN + 1];
    make_id(id, 1);
    struct wf_create c = creation(id, "route:transfer", "k-1");
    struct wf_transition t1 = transition(id, 1, "step:debit");
    struct wf_transition t2 = transition(id, 2, "completed");
    t2.event = "outcome";
    t2.terminal = true;
    t2.answer_status = 201;
    t2.answer_headers = "{\"content-type\":\"application/json\"}";
    /* A body with a NUL: answers are kept byte for byte. */
    t2.answer_body = "{\"ok\":1}\0x";
    t2.answer_body_len = 10;
    struct wf_op batch[3] = {
        {.kind = WF_OP_CREATE, .create = &c},
        {.kind = WF_OP_APPEND, .append = &t1},
        {.kind = WF_OP_APPEND, .append = &t2},
    };
    T_ASSERT(ops->commit(b, batch, 3, "r1", T0, 1000) == 0);
    T_ASSERT(batch[0].result == 0 && batch[1].result == 0 && batch[2].result == 0);

    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b, id, true, &r) == 0);
    if (r) {
        T_ASSERT(strcmp(r->id, id) == 0);
        T_ASSERT(strcmp(r->def_name, "transfer") == 0);
        T_ASSERT(r->def_text_len == c.def_text_len &&
                 memcmp(r->def_text, c.def_text, c.def_text_len) == 0);
        T_ASSERT(r->input_len == c.input_len && strcmp(r->input, c.input) == 0);
        T_ASSERT(strcmp(r->scope, "route:transfer") == 0 && strcmp(r->key, "k-1") == 0);
        T_ASSERT(memcmp(r->fingerprint, c.fingerprint, WF_FINGERPRINT_LEN) == 0);
        T_ASSERT(strcmp(r->owner, "r1") == 0);
        T_ASSERT(r->created_ms == T0 && r->updated_ms == T0 + 2);
        T_ASSERT(r->key_expires_ms == T0 + 60000);
        T_ASSERT(strcmp(r->state, "completed") == 0 && r->terminal);
        T_ASSERT(r->answer_status == 201);
        T_ASSERT(strcmp(r->answer_headers, t2.answer_headers) == 0);
        T_ASSERT(r->answer_body_len == 10 && memcmp(r->answer_body, t2.answer_body, 10) == 0);
        T_ASSERT(r->ntransitions == 2);
        if (r->ntransitions == 2) {
            T_ASSERT(r->transitions[0].seq == 1 && r->transitions[1].seq == 2);
            T_ASSERT(strcmp(r->transitions[0].state, "step:debit") == 0);
            T_ASSERT(strcmp(r->transitions[1].event, "outcome") == 0);
            T_ASSERT(strcmp(r->transitions[0].detail, "{\"attempt\":1}") == 0);
            T_ASSERT(r->transitions[1].at_ms == T0 + 2);
        }
    }
    wf_record_free(r);
    r = NULL;
    T_ASSERT(ops->find_key(b, "route:transfer", "k-1", T0 + 1, &r) == 0);
    T_ASSERT(r && strcmp(r->id, id) == 0 && r->ntransitions == 0);
    wf_record_free(r);
    r = NULL;
    /* An expired key finds nothing; an unknown id neither. */
    T_ASSERT(ops->find_key(b, "route:transfer", "k-1", T0 + 60000, &r) == -ENOENT);
    char other[WF_ID_LEN + 1];
    make_id(other, 99);
    T_ASSERT(ops->get(b, other, false, &r) == -ENOENT);

    struct wf_record **list = NULL;
    size_t n = 0;
    struct wf_list_filter f = {.state = "completed", .limit = 10};
    T_ASSERT(ops->list(b, &f, &list, &n) == 0 && n == 1);
    if (n == 1)
        T_ASSERT(strcmp(list[0]->id, id) == 0);
    for (size_t i = 0; i < n; i++)
        wf_record_free(list[i]);
    free(list);
    f.state = "active";
    T_ASSERT(ops->list(b, &f, &list, &n) == 0 && n == 0);
    free(list);
    ops->close(b);
}

START_TEST(a_committed_batch_reads_back_with_its_transitions)
{
    run_on(batch_body, 1);
}
END_TEST

/* ---- durable across connections --------------------------------------------- */

static void durable_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r1");
    if (!b)
        return;
    char id[WF_ID_LEN + 1];
    make_id(id, 2);
    struct wf_create c = creation(id, NULL, NULL);
    struct wf_transition t1 = transition(id, 1, "step:debit");
    T_ASSERT(create1(b, &c, "r1", T0, 1000, NULL) == 0);
    T_ASSERT(append1(b, &t1, "r1") == 0);
    ops->close(b);

    void *b2 = open_as("r1");
    if (!b2)
        return;
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b2, id, true, &r) == 0);
    T_ASSERT(r && r->ntransitions == 1 && r->scope == NULL && r->key == NULL);
    T_ASSERT(r && strcmp(r->state, "step:debit") == 0 && !r->terminal);
    wf_record_free(r);
    ops->close(b2);
}

START_TEST(an_acknowledged_write_is_read_back_by_a_new_connection)
{
    run_on(durable_body, 1);
}
END_TEST

/* ---- keys and seqs ------------------------------------------------------------ */

static void key_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r1");
    if (!b)
        return;
    char a[WF_ID_LEN + 1], x[WF_ID_LEN + 1], y[WF_ID_LEN + 1], z[WF_ID_LEN + 1];
    make_id(a, 10);
    make_id(x, 11);
    make_id(y, 12);
    make_id(z, 13);
    struct wf_create ca = creation(a, "route:t", "key");
    T_ASSERT(create1(b, &ca, "r1", T0, 1000, NULL) == 0);

    /* Taken and unexpired: -EEXIST with the holder. */
    struct wf_create cx = creation(x, "route:t", "key");
    struct wf_record *holder = NULL;
    T_ASSERT(create1(b, &cx, "r1", T0 + 1, 1000, &holder) == -EEXIST);
    T_ASSERT(holder && strcmp(holder->id, a) == 0);
    wf_record_free(holder);
    holder = NULL;
    /* The same key in another scope is another key. */
    struct wf_create cs = creation(x, "consumer:alice", "key");
    T_ASSERT(create1(b, &cs, "r1", T0 + 1, 1000, NULL) == 0);

    /* Two creates with one key in one batch: the first wins, the second
     * gets it as holder, and the batch commits. */
    struct wf_create c1 = creation(y, "route:t", "batch");
    struct wf_create c2 = creation(z, "route:t", "batch");
    struct wf_op batch[2] = {{.kind = WF_OP_CREATE, .create = &c1},
                             {.kind = WF_OP_CREATE, .create = &c2}};
    T_ASSERT(ops->commit(b, batch, 2, "r1", T0, 1000) == 0);
    T_ASSERT(batch[0].result == 0 && batch[1].result == -EEXIST);
    T_ASSERT(batch[0].existing == NULL);
    T_ASSERT(batch[1].existing && strcmp(batch[1].existing->id, y) == 0);
    wf_record_free(batch[1].existing);

    /* Expired, but its instance still runs: the key stays with it. */
    struct wf_create later = creation(z, "route:t", "key");
    later.created_ms = T0 + 60000;
    later.key_expires_ms = T0 + 120000;
    T_ASSERT(create1(b, &later, "r1", T0 + 60000, 1000, &holder) == -EEXIST);
    T_ASSERT(holder && strcmp(holder->id, a) == 0);
    wf_record_free(holder);
    holder = NULL;
    /* Once expired and its instance over, the key may be taken again. */
    struct wf_transition end = transition(a, 1, "completed");
    end.event = "end";
    end.terminal = true;
    end.answer_status = 200;
    end.answer_body = "{}";
    end.answer_body_len = 2;
    T_ASSERT(append1(b, &end, "r1") == 0);
    T_ASSERT(create1(b, &later, "r1", T0 + 60000, 1000, NULL) == 0);
    struct wf_record *r = NULL;
    T_ASSERT(ops->find_key(b, "route:t", "key", T0 + 60001, &r) == 0);
    T_ASSERT(r && strcmp(r->id, z) == 0);
    wf_record_free(r);
    ops->close(b);
}

START_TEST(a_taken_unexpired_key_is_eexist_with_its_holder)
{
    run_on(key_body, 1);
}
END_TEST

static void seq_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r1");
    if (!b)
        return;
    char id[WF_ID_LEN + 1], none[WF_ID_LEN + 1];
    make_id(id, 20);
    make_id(none, 21);
    struct wf_create c = creation(id, NULL, NULL);
    T_ASSERT(create1(b, &c, "r1", T0, 1000, NULL) == 0);
    struct wf_transition t1 = transition(id, 1, "step:debit");
    T_ASSERT(append1(b, &t1, "r1") == 0);
    /* seq 1 again (with another state), seq 2 and an unknown instance in
     * one batch: only the refused ops fail. */
    struct wf_transition again = transition(id, 1, "step:credit");
    struct wf_transition t2 = transition(id, 2, "step:credit");
    struct wf_transition lost = transition(none, 1, "step:debit");
    struct wf_op batch[3] = {{.kind = WF_OP_APPEND, .append = &again},
                             {.kind = WF_OP_APPEND, .append = &t2},
                             {.kind = WF_OP_APPEND, .append = &lost}};
    T_ASSERT(ops->commit(b, batch, 3, "r1", T0, 1000) == 0);
    T_ASSERT(batch[0].result == -EEXIST);
    T_ASSERT(batch[1].result == 0);
    T_ASSERT(batch[2].result == -ENOENT);
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b, id, true, &r) == 0);
    T_ASSERT(r && r->ntransitions == 2 && strcmp(r->state, "step:credit") == 0);
    if (r && r->ntransitions == 2)
        T_ASSERT(strcmp(r->transitions[0].state, "step:debit") == 0);
    wf_record_free(r);
    ops->close(b);
}

START_TEST(a_seq_already_written_is_eexist_and_the_rest_of_the_batch_commits)
{
    run_on(seq_body, 1);
}
END_TEST

/* A statement error (text that is not UTF-8) fails the transaction: the
 * batch is -EIO with none of its ops written, and the next one commits. */
static void failed_batch_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r1");
    if (!b)
        return;
    char ok[WF_ID_LEN + 1], bad[WF_ID_LEN + 1], next[WF_ID_LEN + 1];
    make_id(ok, 110);
    make_id(bad, 111);
    make_id(next, 112);
    struct wf_create c1 = creation(ok, NULL, NULL);
    struct wf_create c2 = creation(bad, NULL, NULL);
    struct wf_create c3 = creation(ok, NULL, NULL);
    c2.state = "step:\xff";
    struct wf_op batch[3] = {{.kind = WF_OP_CREATE, .create = &c1},
                             {.kind = WF_OP_CREATE, .create = &c2},
                             {.kind = WF_OP_CREATE, .create = &c3}};
    T_ASSERT(ops->commit(b, batch, 3, "r1", T0, 1000) == -EIO);
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b, ok, false, &r) == -ENOENT);
    T_ASSERT(ops->get(b, bad, false, &r) == -ENOENT);
    struct wf_create c4 = creation(next, NULL, NULL);
    T_ASSERT(create1(b, &c4, "r1", T0, 1000, NULL) == 0);
    T_ASSERT(create1(b, &c1, "r1", T0, 1000, NULL) == 0);
    ops->close(b);
}

START_TEST(a_batch_whose_transaction_fails_is_eio_and_writes_nothing)
{
    run_on(failed_batch_body, 1);
}
END_TEST

/* ---- owners, leases, claims ---------------------------------------------------- */

static void stale_body(void *arg)
{
    (void)arg;
    void *b1 = open_clean("r1");
    void *b2 = open_as("r2");
    if (!b1 || !b2)
        goto out;
    char id[WF_ID_LEN + 1];
    make_id(id, 30);
    struct wf_create c = creation(id, NULL, NULL);
    T_ASSERT(create1(b1, &c, "r1", T0, 1000, NULL) == 0);
    struct wf_transition t1 = transition(id, 1, "step:debit");
    /* r2 does not own it. */
    T_ASSERT(append1(b2, &t1, "r2") == -ESTALE);
    /* r1's lease lapses and r2 takes over: now r1 is the stale one. */
    char(*ids)[WF_ID_LEN + 1] = NULL;
    size_t n = 0;
    T_ASSERT(ops->claim(b2, "r2", NULL, T0 + 1000, 1000, 10, &ids, &n) == 0);
    T_ASSERT(n == 1 && ids && strcmp(ids[0], id) == 0);
    free(ids);
    T_ASSERT(append1(b1, &t1, "r1") == -ESTALE);
    T_ASSERT(append1(b2, &t1, "r2") == 0);
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b1, id, true, &r) == 0);
    T_ASSERT(r && strcmp(r->owner, "r2") == 0 && r->ntransitions == 1);
    wf_record_free(r);
out:
    ops->close(b1);
    ops->close(b2);
}

START_TEST(a_write_for_an_instance_another_owner_holds_is_estale)
{
    run_on(stale_body, 1);
}
END_TEST

static void claim_body(void *arg)
{
    (void)arg;
    void *b1 = open_clean("r1");
    void *b2 = open_as("r2");
    if (!b1 || !b2)
        goto out;
    char lapsed[WF_ID_LEN + 1], live[WF_ID_LEN + 1], done[WF_ID_LEN + 1];
    make_id(lapsed, 40);
    make_id(live, 41);
    make_id(done, 42);
    struct wf_create c1 = creation(lapsed, NULL, NULL);
    struct wf_create c2 = creation(live, NULL, NULL);
    struct wf_create c3 = creation(done, NULL, NULL);
    /* lapsed: lease to T0+1000; live: lease to T0+6000; done: terminal. */
    T_ASSERT(create1(b1, &c1, "r1", T0, 1000, NULL) == 0);
    T_ASSERT(create1(b1, &c2, "r1", T0 + 5000, 1000, NULL) == 0);
    T_ASSERT(create1(b1, &c3, "r1", T0, 1000, NULL) == 0);
    struct wf_transition end = transition(done, 1, "completed");
    end.terminal = true;
    end.answer_status = 200;
    T_ASSERT(append1(b1, &end, "r1") == 0);

    char(*ids)[WF_ID_LEN + 1] = NULL;
    size_t n = 0;
    T_ASSERT(ops->claim(b2, "r2", NULL, T0 + 5500, 1000, 10, &ids, &n) == 0);
    T_ASSERT(n == 1 && has(ids, n, lapsed));
    free(ids);
    ids = NULL;
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b2, lapsed, false, &r) == 0);
    T_ASSERT(r && strcmp(r->owner, "r2") == 0);
    wf_record_free(r);
    /* r1 restarted: it takes back its own at once, live lease or not, and
     * not what r2 now holds. */
    T_ASSERT(ops->claim(b1, "r1", NULL, T0 + 5500, 1000, 10, &ids, &n) == 0);
    T_ASSERT(n == 1 && has(ids, n, live));
    free(ids);
    ids = NULL;
    /* r2 keeps its lease by renewing it; r1 finds nothing to take. */
    T_ASSERT(ops->renew(b2, "r2", T0 + 6000, 1000) == 0);
    T_ASSERT(ops->claim(b1, "r1", NULL, T0 + 6600, 1000, 10, &ids, &n) == 0);
    T_ASSERT(n == 1 && has(ids, n, live));
    free(ids);
    ids = NULL;
    /* Without the renewal r2's lease would have lapsed at T0+6500. */
    T_ASSERT(ops->claim(b1, "r1", NULL, T0 + 7100, 1000, 10, &ids, &n) == 0);
    T_ASSERT(n == 2 && has(ids, n, lapsed) && has(ids, n, live));
    free(ids);
out:
    ops->close(b1);
    ops->close(b2);
}

/* An upgraded gateway takes over the owner it replaced by name, live
 * leases included, and nothing of a third owner whose lease is live. */
static void claim_from_body(void *arg)
{
    (void)arg;
    void *b1 = open_clean("r1");
    void *b2 = open_as("r1/upgrade-2");
    if (!b1 || !b2)
        goto out;
    char old[WF_ID_LEN + 1], other[WF_ID_LEN + 1], mine[WF_ID_LEN + 1];
    make_id(old, 50);
    make_id(other, 51);
    make_id(mine, 52);
    struct wf_create c1 = creation(old, NULL, NULL);
    struct wf_create c2 = creation(other, NULL, NULL);
    struct wf_create c3 = creation(mine, NULL, NULL);
    /* Every lease live at T0+500. */
    T_ASSERT(create1(b1, &c1, "r1", T0, 60000, NULL) == 0);
    T_ASSERT(create1(b1, &c2, "r3", T0, 60000, NULL) == 0);
    T_ASSERT(create1(b2, &c3, "r1/upgrade-2", T0, 60000, NULL) == 0);

    char(*ids)[WF_ID_LEN + 1] = NULL;
    size_t n = 0;
    /* Without `from`, the old owner's live instance is not taken. */
    T_ASSERT(ops->claim(b2, "r1/upgrade-2", NULL, T0 + 500, 1000, 10, &ids, &n) == 0);
    T_ASSERT(n == 1 && has(ids, n, mine));
    free(ids);
    ids = NULL;
    T_ASSERT(ops->claim(b2, "r1/upgrade-2", "r1", T0 + 500, 1000, 10, &ids, &n) == 0);
    T_ASSERT(n == 2 && has(ids, n, old) && has(ids, n, mine));
    free(ids);
    ids = NULL;
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b2, old, false, &r) == 0);
    T_ASSERT(r && strcmp(r->owner, "r1/upgrade-2") == 0);
    wf_record_free(r);
    r = NULL;
    T_ASSERT(ops->get(b2, other, false, &r) == 0);
    T_ASSERT(r && strcmp(r->owner, "r3") == 0);
    wf_record_free(r);
    /* The old owner's writes for what was taken from it are refused. */
    struct wf_transition t1 = transition(old, 1, "step:credit");
    T_ASSERT(append1(b1, &t1, "r1") == -ESTALE);
out:
    ops->close(b1);
    ops->close(b2);
}

/* A write by the owner shows it alive: it extends the lease as a renewal
 * does. */
static void append_lease_body(void *arg)
{
    (void)arg;
    void *b1 = open_clean("r1");
    void *b2 = open_as("r2");
    if (!b1 || !b2)
        goto out;
    char id[WF_ID_LEN + 1];
    make_id(id, 45);
    struct wf_create c = creation(id, NULL, NULL);
    T_ASSERT(create1(b1, &c, "r1", T0, 1000, NULL) == 0); /* lease to T0+1000 */
    struct wf_transition t = transition(id, 1, "step:debit");
    struct wf_op op = {.kind = WF_OP_APPEND, .append = &t};
    T_ASSERT(ops->commit(b1, &op, 1, "r1", T0 + 900, 1000) == 0 && op.result == 0);
    char(*ids)[WF_ID_LEN + 1] = NULL;
    size_t n = 9;
    T_ASSERT(ops->claim(b2, "r2", NULL, T0 + 1500, 1000, 10, &ids, &n) == 0);
    T_ASSERT(n == 0);
    free(ids);
    ids = NULL;
    T_ASSERT(ops->claim(b2, "r2", NULL, T0 + 1900, 1000, 10, &ids, &n) == 0);
    T_ASSERT(n == 1);
    free(ids);
out:
    ops->close(b1);
    ops->close(b2);
}

START_TEST(an_append_by_the_owner_extends_its_lease)
{
    run_on(append_lease_body, 1);
}
END_TEST

START_TEST(a_claim_takes_lapsed_leases_and_its_own_but_not_live_ones)
{
    run_on(claim_body, 1);
}
END_TEST

#define MANY 200

struct claimer {
    const char *owner;
    char (*got)[WF_ID_LEN + 1];
    size_t n;
    atomic_int done;
};

static void claimer_proc(void *arg)
{
    struct claimer *c = arg;
    void *b = open_as(c->owner);
    c->got = calloc(MANY, sizeof(*c->got));
    for (int round = 0; b && c->got && round < 1000; round++) {
        char(*ids)[WF_ID_LEN + 1] = NULL;
        size_t n = 0;
        int rc = ops->claim(b, c->owner, NULL, T0 + 10000, 60000, 7, &ids, &n);
        T_ASSERT(rc == 0);
        if (rc < 0)
            break;
        /* A claim also returns what the claimer holds already: a round
         * that brings nothing new means nothing is left to take. */
        size_t fresh = 0;
        for (size_t i = 0; i < n && c->n < MANY; i++)
            if (!has(c->got, c->n, ids[i])) {
                memcpy(c->got[c->n++], ids[i], WF_ID_LEN + 1);
                fresh++;
            }
        free(ids);
        if (fresh == 0)
            break;
    }
    ops->close(b);
    atomic_store(&c->done, 1);
}

static void concurrent_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r0");
    if (!b)
        return;
    /* MANY instances of a replica that is gone (leases long lapsed). */
    static char idv[MANY][WF_ID_LEN + 1];
    static struct wf_create cv[MANY];
    static struct wf_op batch[MANY];
    for (unsigned i = 0; i < MANY; i++) {
        make_id(idv[i], 1000 + i);
        cv[i] = creation(idv[i], NULL, NULL);
        batch[i] = (struct wf_op){.kind = WF_OP_CREATE, .create = &cv[i]};
    }
    T_ASSERT(ops->commit(b, batch, MANY, "r0", T0, 1000) == 0);
    ops->close(b);
    struct claimer c1 = {.owner = "r1"}, c2 = {.owner = "r2"};
    T_ASSERT(rt_spawn(claimer_proc, &c1, NULL, NULL) == 0);
    T_ASSERT(rt_spawn(claimer_proc, &c2, NULL, NULL) == 0);
    while (!atomic_load(&c1.done) || !atomic_load(&c2.done))
        rt_sleep(5);
    /* Every instance taken, none twice. */
    T_ASSERT(c1.n + c2.n == MANY);
    for (size_t i = 0; i < c1.n; i++)
        T_ASSERT(!has(c2.got, c2.n, c1.got[i]));
    for (unsigned i = 0; i < MANY; i++)
        T_ASSERT(has(c1.got, c1.n, idv[i]) || has(c2.got, c2.n, idv[i]));
    free(c1.got);
    free(c2.got);
}

START_TEST(a_claim_from_an_owner_takes_its_live_instances_and_no_one_elses)
{
    run_on(claim_from_body, 1);
}
END_TEST

START_TEST(concurrent_claims_by_two_owners_never_take_the_same_instance)
{
    run_on(concurrent_body, 2);
}
END_TEST

/* SKIP LOCKED: an instance whose row another transaction holds (a replica
 * claiming or writing it right now) is passed over, not waited for. */
struct locker {
    const char *sql;
    atomic_int done;
    int rc;
};

static void locker_proc(void *arg)
{
    struct locker *l = arg;
    void *b = open_as("r9");
    l->rc = b ? wf__pg_exec(b, l->sql) : -EIO;
    ops->close(b);
    atomic_store(&l->done, 1);
}

static void skip_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r0");
    void *b2 = open_as("r2");
    if (!b || !b2)
        goto out;
    char held[WF_ID_LEN + 1], free_[WF_ID_LEN + 1];
    make_id(held, 50);
    make_id(free_, 51);
    struct wf_create c1 = creation(held, NULL, NULL);
    struct wf_create c2 = creation(free_, NULL, NULL);
    T_ASSERT(create1(b, &c1, "r0", T0, 1000, NULL) == 0);
    T_ASSERT(create1(b, &c2, "r0", T0, 1000, NULL) == 0);
    /* Holds `held`'s row lock for 3 s. */
    struct locker l = {
        .sql =
            "WITH l AS (SELECT id FROM wf_instances WHERE id = '00000000000000000000000000000032'"
            " FOR UPDATE) SELECT pg_sleep(3) FROM l"};
    T_ASSERT(rt_spawn(locker_proc, &l, NULL, NULL) == 0);
    /* Until the locker sleeps, holding the lock (the probe divides by
     * zero, an error, while it does not). */
    int seen = -EIO;
    for (int i = 0; i < 300 && seen != 0; i++) {
        rt_sleep(10);
        seen = wf__pg_exec(b2, "SELECT 1 / count(*)::int FROM pg_stat_activity"
                               " WHERE wait_event = 'PgSleep'");
    }
    T_ASSERT(seen == 0);
    char(*ids)[WF_ID_LEN + 1] = NULL;
    size_t n = 0;
    T_ASSERT(ops->claim(b2, "r2", NULL, T0 + 5000, 1000, 10, &ids, &n) == 0);
    /* Answered while the lock is still held, without the locked one. */
    T_ASSERT(!atomic_load(&l.done));
    T_ASSERT(n == 1 && has(ids, n, free_));
    free(ids);
    while (!atomic_load(&l.done))
        rt_sleep(20);
    T_ASSERT(l.rc == 0);
out:
    ops->close(b);
    ops->close(b2);
}

START_TEST(a_claim_passes_over_an_instance_whose_row_is_locked)
{
    run_on(skip_body, 2);
}
END_TEST

/* ---- list ---------------------------------------------------------------------------- */

static size_t list_ids(void *b, const struct wf_list_filter *f, char ids[][WF_ID_LEN + 1],
                       size_t max)
{
    struct wf_record **list = NULL;
    size_t n = 0;
    T_ASSERT(ops->list(b, f, &list, &n) == 0);
    for (size_t i = 0; i < n; i++) {
        if (i < max)
            memcpy(ids[i], list[i]->id, WF_ID_LEN + 1);
        wf_record_free(list[i]);
    }
    free(list);
    return n;
}

static void list_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r1");
    if (!b)
        return;
    char id[5][WF_ID_LEN + 1];
    struct wf_create c[5];
    for (unsigned i = 0; i < 5; i++) {
        make_id(id[i], 90 + i);
        c[i] = creation(id[i], NULL, NULL);
        c[i].created_ms = T0 + i;
    }
    c[3].def_name = "refund";
    c[1].state = "compensating:debit";
    for (unsigned i = 0; i < 5; i++)
        T_ASSERT(create1(b, &c[i], "r1", T0, 1000, NULL) == 0);
    struct wf_transition end = transition(id[4], 1, "completed");
    end.terminal = true;
    T_ASSERT(append1(b, &end, "r1") == 0);

    char got[8][WF_ID_LEN + 1];
    struct wf_list_filter f = {.limit = 2};
    /* Pages in id order. */
    T_ASSERT(list_ids(b, &f, got, 8) == 2);
    T_ASSERT(strcmp(got[0], id[0]) == 0 && strcmp(got[1], id[1]) == 0);
    f.after_id = got[1];
    f.limit = 10;
    char page2[8][WF_ID_LEN + 1];
    T_ASSERT(list_ids(b, &f, page2, 8) == 3);
    T_ASSERT(strcmp(page2[0], id[2]) == 0);
    /* Filters. */
    struct wf_list_filter byname = {.def_name = "refund", .limit = 10};
    T_ASSERT(list_ids(b, &byname, got, 8) == 1 && strcmp(got[0], id[3]) == 0);
    struct wf_list_filter prefix = {.state = "step:", .limit = 10};
    T_ASSERT(list_ids(b, &prefix, got, 8) == 3);
    struct wf_list_filter exact = {.state = "compensating:debit", .limit = 10};
    T_ASSERT(list_ids(b, &exact, got, 8) == 1 && strcmp(got[0], id[1]) == 0);
    struct wf_list_filter active = {.state = "active", .limit = 10};
    T_ASSERT(list_ids(b, &active, got, 8) == 4);
    struct wf_list_filter old = {.older_than_ms = T0 + 2, .limit = 10};
    T_ASSERT(list_ids(b, &old, got, 8) == 2);
    ops->close(b);
}

START_TEST(list_filters_and_pages_in_id_order)
{
    run_on(list_body, 1);
}
END_TEST

/* ---- a batch bigger than the socket buffers -------------------------------------- */

#define BIG_OPS 512
#define BIG_DETAIL 16384

static void big_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r1");
    if (!b)
        return;
    char id[WF_ID_LEN + 1];
    make_id(id, 100);
    struct wf_create c = creation(id, NULL, NULL);
    T_ASSERT(create1(b, &c, "r1", T0, 1000, NULL) == 0);
    char *detail = malloc(BIG_DETAIL);
    static struct wf_transition t[BIG_OPS];
    static struct wf_op batch[BIG_OPS];
    if (!detail)
        goto out;
    memset(detail, 'x', BIG_DETAIL);
    for (unsigned i = 0; i < BIG_OPS; i++) {
        t[i] = transition(id, i + 1, "step:debit");
        t[i].detail = detail;
        t[i].detail_len = BIG_DETAIL;
        batch[i] = (struct wf_op){.kind = WF_OP_APPEND, .append = &t[i]};
    }
    /* 8 MiB in one pipeline: far more than a socket takes at once, so
     * the commit parks on the socket until all of it is written. */
    T_ASSERT(ops->commit(b, batch, BIG_OPS, "r1", T0, 1000) == 0);
    for (unsigned i = 0; i < BIG_OPS; i++)
        T_ASSERT(batch[i].result == 0);
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b, id, true, &r) == 0);
    T_ASSERT(r && r->ntransitions == BIG_OPS);
    if (r && r->ntransitions == BIG_OPS)
        T_ASSERT(strlen(r->transitions[BIG_OPS - 1].detail) == BIG_DETAIL);
    wf_record_free(r);
out:
    free(detail);
    ops->close(b);
}

START_TEST(a_batch_bigger_than_the_socket_buffers_commits)
{
    run_on(big_body, 1);
}
END_TEST

/* ---- purge ------------------------------------------------------------------------- */

static void purge_body(void *arg)
{
    (void)arg;
    void *b = open_clean("r1");
    if (!b)
        return;
    char gone[WF_ID_LEN + 1], kept[WF_ID_LEN + 1], running[WF_ID_LEN + 1];
    make_id(gone, 60);
    make_id(kept, 61);
    make_id(running, 62);
    struct wf_create c1 = creation(gone, "route:t", "a");
    struct wf_create c2 = creation(kept, "route:t", "b");
    struct wf_create c3 = creation(running, "route:t", "c");
    c1.key_expires_ms = T0 + 100;
    c2.key_expires_ms = T0 + 100000;
    c3.key_expires_ms = T0 + 100;
    T_ASSERT(create1(b, &c1, "r1", T0, 1000, NULL) == 0);
    T_ASSERT(create1(b, &c2, "r1", T0, 1000, NULL) == 0);
    T_ASSERT(create1(b, &c3, "r1", T0, 1000, NULL) == 0);
    struct wf_transition s1 = transition(gone, 1, "step:debit");
    struct wf_transition e1 = transition(gone, 2, "completed");
    struct wf_transition e2 = transition(kept, 1, "completed");
    e1.terminal = e2.terminal = true;
    T_ASSERT(append1(b, &s1, "r1") == 0);
    T_ASSERT(append1(b, &e1, "r1") == 0);
    T_ASSERT(append1(b, &e2, "r1") == 0);
    size_t purged = 99;
    T_ASSERT(ops->purge(b, T0 + 1000, &purged) == 0);
    T_ASSERT(purged == 1);
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b, gone, true, &r) == -ENOENT);
    T_ASSERT(ops->get(b, kept, false, &r) == 0);
    wf_record_free(r);
    r = NULL;
    T_ASSERT(ops->get(b, running, false, &r) == 0);
    wf_record_free(r);
    /* Its transitions went with it. */
    T_ASSERT(wf__pg_exec(b, "SELECT 1/(1 - count(*))::int FROM wf_transitions"
                            " WHERE id = '0000000000000000000000000000003c'") == 0);
    ops->close(b);
}

START_TEST(purge_deletes_terminal_instances_whose_key_expired_and_their_transitions)
{
    run_on(purge_body, 1);
}
END_TEST

/* ---- never blocks a scheduler --------------------------------------------------- */

struct ticker {
    atomic_int stop;
    atomic_int ticks;
};

static void ticker_proc(void *arg)
{
    struct ticker *t = arg;
    while (!atomic_load(&t->stop)) {
        rt_sleep(10);
        atomic_fetch_add(&t->ticks, 1);
    }
}

static void nonblocking_body(void *arg)
{
    (void)arg;
    void *b = open_as("r1");
    if (!b)
        return;
    struct ticker t = {0};
    T_ASSERT(rt_spawn(ticker_proc, &t, NULL, NULL) == 0);
    rt_sleep(30);
    int before = atomic_load(&t.ticks);
    uint64_t t0 = rt_now_ms();
    T_ASSERT(wf__pg_exec(b, "SELECT pg_sleep(0.5)") == 0);
    uint64_t took = rt_now_ms() - t0;
    int during = atomic_load(&t.ticks) - before;
    T_ASSERT(took >= 500);
    /* One scheduler: the ticker ran only if the query left it free. At
     * 10 ms a tick, 0.5 s gives ~50; a blocked scheduler gives 0 or 1. */
    T_ASSERT(during >= 10);
    atomic_store(&t.stop, 1);
    rt_sleep(30);
    ops->close(b);
}

START_TEST(a_query_in_flight_leaves_its_scheduler_to_other_processes)
{
    run_on(nonblocking_body, 1);
}
END_TEST

/* ---- a server restart ------------------------------------------------------------ */

struct restart_ctx {
    void *b;
    atomic_int phase; /* 1: slow query sent; 2: server restarted */
    int slow_rc;
};

static void restart_proc(void *arg)
{
    struct restart_ctx *x = arg;
    x->b = open_clean("r1");
    if (!x->b) {
        atomic_store(&x->phase, 1);
        return;
    }
    atomic_store(&x->phase, 1);
    /* The server goes away under this query. */
    x->slow_rc = wf__pg_exec(x->b, "SELECT pg_sleep(20)");
    while (atomic_load(&x->phase) < 2)
        rt_sleep(20);
    char id[WF_ID_LEN + 1];
    make_id(id, 70);
    struct wf_create c = creation(id, NULL, NULL);
    /* The next call connects anew. */
    T_ASSERT(create1(x->b, &c, "r1", T0, 1000, NULL) == 0);
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(x->b, id, false, &r) == 0);
    wf_record_free(r);
    ops->close(x->b);
}

/* Main thread. Waits (up to 20 s) until the server shows a session in the
 * wait `event` (pg_stat_activity.wait_event_type or wait_event): the call
 * under test has reached it. */
static void wait_server_shows(const char *event)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "psql \"$TANDEM_TEST_PG_CONNINFO\" -qAtc \"SELECT 1 / count(*) FROM"
             " pg_stat_activity WHERE wait_event = '%s' OR wait_event_type = '%s'\""
             " >/dev/null 2>&1",
             event, event);
    for (int i = 0; i < 200; i++) {
        if (system(cmd) == 0)
            return;
        usleep(100000);
    }
    ck_abort_msg("the server never showed a session waiting on %s", event);
}

static void restart_server(void)
{
    const char *cmd = getenv("TANDEM_TEST_PG_RESTART");
    ck_assert_msg(cmd != NULL, "TANDEM_TEST_PG_RESTART not set");
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- the journal process killed ------------------------------------------------ */

/* Descriptors this test process has open. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static atomic_int killed_phase; /* 1: connected, the query about to be sent */

static void killed_proc(void *arg)
{
    (void)arg;
    void *b = open_as("r1");
    atomic_store(&killed_phase, 1);
    if (b)
        wf__pg_exec(b, "SELECT pg_sleep(20)"); /* killed in here */
}

/* A journal process killed while its query is in flight (as a commit would
 * be) lets its connection go: a session left open could hold a batch's row
 * locks and fence every later write to those instances. */
START_TEST(a_journal_process_killed_mid_query_closes_its_connection)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 1;
    atomic_store(&failed, 0);
    atomic_store(&killed_phase, 0);
    ck_assert_int_eq(rt_start(&cfg), 0);
    int before = open_fds();
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(killed_proc, NULL, NULL, &pid), 0);
    while (atomic_load(&killed_phase) < 1)
        usleep(10000);
    wait_server_shows("PgSleep");
    ck_assert_int_eq(rt_exit_signal(pid, RT_KILL), 0);
    ck_assert_int_eq(rt_join(pid, 60000, NULL), 0);
    int after = open_fds(); /* before rt_stop, which closes the runtime's own */
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
    ck_assert_int_eq(after, before);
}
END_TEST

START_TEST(a_server_restart_fails_the_call_in_flight_and_the_next_one_reconnects)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 1;
    atomic_store(&failed, 0);
    ck_assert_int_eq(rt_start(&cfg), 0);
    struct restart_ctx x = {0};
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(restart_proc, &x, NULL, &pid), 0);
    while (atomic_load(&x.phase) < 1)
        usleep(10000);
    wait_server_shows("PgSleep");
    restart_server();
    atomic_store(&x.phase, 2);
    ck_assert_int_eq(rt_join(pid, 60000, NULL), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
    ck_assert_int_eq(x.slow_rc, -EIO);
}
END_TEST

/* A commit cut off by the server's restart: -EIO, none of its ops written,
 * and the next commit works on a new connection. The batch waits on a row
 * lock another session holds, so it is surely in flight at the restart. */
struct cut_ctx {
    atomic_int phase; /* 1: commit about to be sent; 2: server restarted */
    int commit_rc;
};

static void cut_proc(void *arg)
{
    struct cut_ctx *x = arg;
    void *b = open_clean("r1");
    struct locker l = {
        .sql =
            "WITH l AS (SELECT id FROM wf_instances WHERE id = '00000000000000000000000000000050'"
            " FOR UPDATE) SELECT pg_sleep(20) FROM l"};
    char held[WF_ID_LEN + 1], fresh[WF_ID_LEN + 1], after[WF_ID_LEN + 1];
    make_id(held, 80);
    make_id(fresh, 81);
    make_id(after, 82);
    if (!b)
        goto out;
    struct wf_create c1 = creation(held, NULL, NULL);
    T_ASSERT(create1(b, &c1, "r1", T0, 1000, NULL) == 0);
    T_ASSERT(rt_spawn(locker_proc, &l, NULL, NULL) == 0);
    int seen = -EIO;
    for (int i = 0; i < 300 && seen != 0; i++) {
        rt_sleep(10);
        seen = wf__pg_exec(b, "SELECT 1 / count(*)::int FROM pg_stat_activity"
                              " WHERE wait_event = 'PgSleep'");
    }
    T_ASSERT(seen == 0);
    struct wf_create c2 = creation(fresh, NULL, NULL);
    struct wf_transition t = transition(held, 1, "step:debit");
    struct wf_op batch[2] = {{.kind = WF_OP_CREATE, .create = &c2},
                             {.kind = WF_OP_APPEND, .append = &t}};
    atomic_store(&x->phase, 1);
    x->commit_rc = ops->commit(b, batch, 2, "r1", T0, 1000);
    T_ASSERT(batch[0].existing == NULL && batch[1].existing == NULL);
    while (atomic_load(&x->phase) < 2 || !atomic_load(&l.done))
        rt_sleep(20);
    struct wf_record *r = NULL;
    T_ASSERT(ops->get(b, fresh, false, &r) == -ENOENT);
    T_ASSERT(ops->get(b, held, true, &r) == 0);
    T_ASSERT(r && r->ntransitions == 0);
    wf_record_free(r);
    struct wf_create c3 = creation(after, NULL, NULL);
    T_ASSERT(create1(b, &c3, "r1", T0, 1000, NULL) == 0);
out:
    ops->close(b);
}

START_TEST(a_commit_cut_off_by_a_server_restart_is_eio_and_writes_nothing)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    atomic_store(&failed, 0);
    ck_assert_int_eq(rt_start(&cfg), 0);
    struct cut_ctx x = {0};
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(cut_proc, &x, NULL, &pid), 0);
    for (int i = 0; i < 3000 && atomic_load(&x.phase) < 1; i++)
        usleep(10000);
    wait_server_shows("Lock"); /* the batch waits on the row lock */
    restart_server();
    atomic_store(&x.phase, 2);
    ck_assert_int_eq(rt_join(pid, 60000, NULL), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
    ck_assert_int_eq(x.commit_rc, -EIO);
}
END_TEST

/* A restart between calls is found before the next call sends: it
 * reconnects and succeeds. One process holds the backend throughout (it
 * belongs to the process that opened it). */
static atomic_int between_phase; /* 1: connected, idle; 2: server restarted */

static void between_proc(void *arg)
{
    (void)arg;
    void *b = open_clean("r1");
    atomic_store(&between_phase, 1);
    if (!b)
        return;
    while (atomic_load(&between_phase) < 2)
        rt_sleep(20);
    char id[WF_ID_LEN + 1];
    make_id(id, 71);
    struct wf_create c = creation(id, NULL, NULL);
    T_ASSERT(create1(b, &c, "r1", T0, 1000, NULL) == 0);
    ops->close(b);
}

START_TEST(a_server_restart_between_calls_is_reconnected_before_the_next_call)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 1;
    atomic_store(&failed, 0);
    atomic_store(&between_phase, 0);
    ck_assert_int_eq(rt_start(&cfg), 0);
    rt_pid pid = 0;
    ck_assert_int_eq(rt_spawn(between_proc, NULL, NULL, &pid), 0);
    while (atomic_load(&between_phase) < 1)
        usleep(10000);
    restart_server();
    usleep(200000); /* the terminated connection's goodbye arrives */
    atomic_store(&between_phase, 2);
    ck_assert_int_eq(rt_join(pid, 30000, NULL), 0);
    ck_assert_int_eq(rt_stop(), 0);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
}
END_TEST

int main(void)
{
    if (!getenv("TANDEM_TEST_PG_CONNINFO")) {
        fprintf(stderr,
                "TANDEM_TEST_PG_CONNINFO is not set: run through"
                " tests/lib/pgserver.py run -- %s\n",
                "test_wf_journal_pg");
        return 1;
    }
    Suite *s = suite_create("journal_pg");
    TCase *tc = tcase_create("journal_pg");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, a_committed_batch_reads_back_with_its_transitions);
    tcase_add_test(tc, an_acknowledged_write_is_read_back_by_a_new_connection);
    tcase_add_test(tc, a_taken_unexpired_key_is_eexist_with_its_holder);
    tcase_add_test(tc, a_seq_already_written_is_eexist_and_the_rest_of_the_batch_commits);
    tcase_add_test(tc, a_batch_whose_transaction_fails_is_eio_and_writes_nothing);
    tcase_add_test(tc, a_write_for_an_instance_another_owner_holds_is_estale);
    tcase_add_test(tc, an_append_by_the_owner_extends_its_lease);
    tcase_add_test(tc, a_claim_takes_lapsed_leases_and_its_own_but_not_live_ones);
    tcase_add_test(tc, a_claim_from_an_owner_takes_its_live_instances_and_no_one_elses);
    tcase_add_test(tc, concurrent_claims_by_two_owners_never_take_the_same_instance);
    tcase_add_test(tc, a_claim_passes_over_an_instance_whose_row_is_locked);
    tcase_add_test(tc, list_filters_and_pages_in_id_order);
    tcase_add_test(tc, a_batch_bigger_than_the_socket_buffers_commits);
    tcase_add_test(tc, purge_deletes_terminal_instances_whose_key_expired_and_their_transitions);
    tcase_add_test(tc, a_query_in_flight_leaves_its_scheduler_to_other_processes);
    tcase_add_test(tc, a_server_restart_fails_the_call_in_flight_and_the_next_one_reconnects);
    tcase_add_test(tc, a_server_restart_between_calls_is_reconnected_before_the_next_call);
    tcase_add_test(tc, a_commit_cut_off_by_a_server_restart_is_eio_and_writes_nothing);
    tcase_add_test(tc, a_journal_process_killed_mid_query_closes_its_connection);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nfailed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nfailed ? 1 : 0;
}
