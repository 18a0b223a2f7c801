/*
 * journal_sqlite.c: the journal's embedded backend, one SQLite database
 * file in WAL mode (synchronous=FULL when durable: a COMMIT returns once
 * the WAL is fsync'd).
 *
 * Every SQLite call runs on the runtime's blocking pool (rt_blocking),
 * never on a scheduler: the journal process packs each backend call into a
 * job and parks until a blocking thread has run it. A job is shared by the
 * journal process and the thread through a reference count, and it holds
 * copies of everything it reads, so a journal process killed while its job
 * runs leaves the thread nothing freed under it: the job ends on its own,
 * frees what it made and drops its hold on the connection. The connection
 * (struct sq) is counted the same way and closed by whoever lets it go
 * last, always on a blocking thread.
 *
 * Only one job runs on a connection at a time (the journal process makes
 * one call at a time); the connection is opened FULLMUTEX anyway, so a job
 * left running by a killed journal cannot meet another on it.
 *
 * Schema (created if missing):
 *   instances   one row per instance: what wf_record holds, plus owner,
 *               lease_until (ms) and last_seq;
 *   transitions (id, seq) primary key, so a seq written twice is refused;
 *   keys        (scope, key) primary key -> id and expires_ms; an expired
 *               row is replaced by the next create that names the key.
 * A batch is one BEGIN IMMEDIATE .. COMMIT; each op inside runs in its own
 * SAVEPOINT, so an op refused (-EEXIST, -ESTALE, -ENOENT) leaves no trace
 * while the others commit.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "journal_int.h"

/* A statement waits this long for a lock another connection holds (a job
 * left running by a journal that was killed and restarted). */
#define SQ_BUSY_TIMEOUT_MS 10000
/* wf_list_filter.limit: 0 asks for this many; more than SQ_LIST_MAX is cut. */
#define SQ_LIST_DEFAULT 100
#define SQ_LIST_MAX 1000

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS instances("
    " id TEXT PRIMARY KEY, def_name TEXT NOT NULL, def_text TEXT NOT NULL,"
    " input TEXT NOT NULL, scope TEXT, key TEXT, fingerprint BLOB,"
    " owner TEXT NOT NULL, lease_until INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " key_expires_ms INTEGER NOT NULL, state TEXT NOT NULL,"
    " terminal INTEGER NOT NULL DEFAULT 0, answer_status INTEGER NOT NULL DEFAULT 0,"
    " answer_headers TEXT, answer_body BLOB, last_seq INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS instances_unfinished ON instances(terminal, id);"
    "CREATE INDEX IF NOT EXISTS instances_expiry ON instances(terminal, key_expires_ms);"
    "CREATE TABLE IF NOT EXISTS transitions("
    " id TEXT NOT NULL, seq INTEGER NOT NULL, state TEXT NOT NULL, event TEXT NOT NULL,"
    " detail TEXT NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY(id, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS keys("
    " scope TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL,"
    " expires_ms INTEGER NOT NULL, PRIMARY KEY(scope, key)) WITHOUT ROWID;";

#define INST_COLS                                                                                  \
    "id, def_name, def_text, input, scope, key, fingerprint, owner, created_ms, updated_ms,"       \
    " key_expires_ms, state, terminal, answer_status, answer_headers, answer_body"

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SP,
    ST_SP_RELEASE,
    ST_SP_ROLLBACK,
    ST_KEY_GET,
    ST_KEY_DEL,
    ST_KEY_PUT,
    ST_INST_PUT,
    ST_INST_OWNER,
    ST_TR_PUT,
    ST_INST_STEP,
    ST_INST_GET,
    ST_TR_LIST,
    ST_KEY_FIND,
    ST_LIST,
    ST_CLAIM_SEL,
    ST_CLAIM_SET,
    ST_RENEW,
    ST_PURGE_KEYS,
    ST_PURGE_TR,
    ST_PURGE_INST,
    ST_COUNT
};

static const char *const STMT_SQL[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SP] = "SAVEPOINT op",
    [ST_SP_RELEASE] = "RELEASE op",
    [ST_SP_ROLLBACK] = "ROLLBACK TO op",
    [ST_KEY_GET] = "SELECT id, expires_ms FROM keys WHERE scope = ?1 AND key = ?2",
    [ST_KEY_DEL] = "DELETE FROM keys WHERE scope = ?1 AND key = ?2",
    [ST_KEY_PUT] = "INSERT INTO keys(scope, key, id, expires_ms) VALUES(?1, ?2, ?3, ?4)",
    [ST_INST_PUT] = "INSERT INTO instances(id, def_name, def_text, input, scope, key,"
                    " fingerprint, owner, lease_until, created_ms, updated_ms, key_expires_ms,"
                    " state) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12)",
    [ST_INST_OWNER] = "SELECT owner FROM instances WHERE id = ?1",
    [ST_TR_PUT] = "INSERT INTO transitions(id, seq, state, event, detail, at_ms)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_INST_STEP] = "UPDATE instances SET state = ?2, updated_ms = ?3,"
                     " last_seq = max(last_seq, ?4), lease_until = ?5, terminal = ?6,"
                     " answer_status = ?7, answer_headers = ?8, answer_body = ?9 WHERE id = ?1",
    [ST_INST_GET] = "SELECT " INST_COLS " FROM instances WHERE id = ?1",
    [ST_TR_LIST] = "SELECT seq, state, event, detail, at_ms FROM transitions WHERE id = ?1"
                   " ORDER BY seq",
    [ST_KEY_FIND] = "SELECT id FROM keys WHERE scope = ?1 AND key = ?2 AND expires_ms > ?3",
    /* ?2 is the state filter's kind: 0 any, 1 active (not terminal), 2 the
     * exact state ?6, 3 states starting with ?6. */
    [ST_LIST] = "SELECT " INST_COLS " FROM instances WHERE (?1 IS NULL OR def_name = ?1)"
                " AND (?2 = 0 OR (?2 = 1 AND terminal = 0) OR (?2 = 2 AND state = ?6)"
                " OR (?2 = 3 AND substr(state, 1, length(?6)) = ?6))"
                " AND (?3 = 0 OR created_ms < ?3) AND (?4 IS NULL OR id > ?4)"
                " ORDER BY id LIMIT ?5",
    /* One file has one gateway: a claim takes every unfinished instance,
     * whoever owned it before (journal.h). */
    [ST_CLAIM_SEL] = "SELECT id FROM instances WHERE terminal = 0 ORDER BY id LIMIT ?1",
    [ST_CLAIM_SET] = "UPDATE instances SET owner = ?2, lease_until = ?3 WHERE id = ?1",
    [ST_RENEW] = "UPDATE instances SET lease_until = ?2 WHERE owner = ?1 AND terminal = 0",
    /* A key goes with its instance, once both expired and the instance is
     * over; an unfinished instance keeps its key (a retry still gets 409). */
    [ST_PURGE_KEYS] = "DELETE FROM keys WHERE expires_ms < ?1 AND id NOT IN"
                      " (SELECT id FROM instances WHERE terminal = 0)",
    /* `failed` is terminal (it has the client's answer) but waits for an
     * operator: purge leaves it, however old its key. */
    [ST_PURGE_TR] = "DELETE FROM transitions WHERE id IN"
                    " (SELECT id FROM instances WHERE terminal = 1 AND state <> 'failed'"
                    " AND key_expires_ms < ?1)",
    [ST_PURGE_INST] = "DELETE FROM instances WHERE terminal = 1 AND state <> 'failed'"
                      " AND key_expires_ms < ?1",
};

/* The connection, shared by the journal process and the jobs it starts. */
struct sq {
    _Atomic int refs;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    uint64_t orphan; /* the journal process's deferred sq_orphan */
};

static void sq_free(struct sq *sq)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(sq->st[i]);
    sqlite3_close(sq->db);
    free(sq);
}

static void sq_unref(struct sq *sq)
{
    /* acq_rel: whoever closes sees every job's use of the connection. */
    if (sq && atomic_fetch_sub_explicit(&sq->refs, 1, memory_order_acq_rel) == 1)
        sq_free(sq);
}

static void *sq_free_thread(void *arg)
{
    sq_free(arg);
    return NULL;
}

/* The journal process ended without closing (killed, or crashed): its
 * reference goes here, as a deferred cleanup of that process. A job still
 * running closes when it ends, on its blocking thread; otherwise a thread
 * of its own closes, since this runs on a scheduler. */
static void sq_orphan(void *arg)
{
    struct sq *sq = arg;
    if (atomic_fetch_sub_explicit(&sq->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_t t;
    pthread_attr_t attr;
    bool started = false;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &attr, sq_free_thread, sq) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started)
        rt_log(RT_LOG_ERROR, "workflow journal (sqlite): cannot start a thread to close the "
                             "database of a journal that ended; left open");
}

static int sq_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    default:
        return -EIO;
    }
}

/* Logs a failure of the connection and returns it as a negative errno. */
static int sq_fail(struct sq *sq, int rc, const char *what)
{
    rt_log(RT_LOG_ERROR, "workflow journal (sqlite): %s: %s", what,
           sq->db ? sqlite3_errmsg(sq->db) : sqlite3_errstr(rc));
    return sq_errno(rc);
}

/* ---- jobs ------------------------------------------------------------------------ */

enum job_kind {
    JOB_OPEN,
    JOB_CLOSE,
    JOB_COMMIT,
    JOB_GET,
    JOB_FIND_KEY,
    JOB_LIST,
    JOB_CLAIM,
    JOB_RENEW,
    JOB_PURGE,
};

/* One backend call on a blocking thread. Inputs are the job's own copies;
 * outputs stay the job's until the caller takes them (then NULL here). */
struct job {
    _Atomic int refs;
    enum job_kind kind;
    struct sq *sq;      /* a reference */
    struct sq *closing; /* JOB_CLOSE: the reference the thread lets go */
    int rc;
    /* inputs */
    char *path;
    bool durable;
    struct wf_op *ops; /* their create/append point into `packed` */
    void **packed;
    size_t nops;
    char *owner, *scope, *key, *id;
    int64_t now_ms;
    uint32_t lease_ms;
    size_t limit;
    bool with_transitions;
    struct wf_list_filter filter; /* strings owned by the job */
    /* outputs */
    struct wf_record *rec;
    struct wf_record **recs;
    size_t nrecs;
    char (*ids)[WF_ID_LEN + 1];
    size_t nids;
    size_t purged;
};

static void job_unref(void *arg)
{
    struct job *j = arg;
    /* acq_rel: the last owner sees what the other wrote. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < j->nops; i++) {
        free(j->packed[i]);
        wf_record_free(j->ops[i].existing);
    }
    free(j->packed);
    free(j->ops);
    free(j->path);
    free(j->owner);
    free(j->scope);
    free(j->key);
    free(j->id);
    free((char *)j->filter.def_name);
    free((char *)j->filter.state);
    free((char *)j->filter.after_id);
    wf_record_free(j->rec);
    for (size_t i = 0; i < j->nrecs; i++)
        wf_record_free(j->recs[i]);
    free(j->recs);
    free(j->ids);
    sq_unref(j->sq);
    free(j);
}

static struct job *job_new(enum job_kind kind, struct sq *sq)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    atomic_init(&j->refs, 1);
    j->kind = kind;
    if (sq) {
        /* relaxed: the caller already holds a reference. */
        atomic_fetch_add_explicit(&sq->refs, 1, memory_order_relaxed);
        j->sq = sq;
    }
    return j;
}

static int dup_str(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    *out = strdup(s);
    return *out ? 0 : -ENOMEM;
}

static intptr_t job_main(void *arg);

/* Runs `j` on the blocking pool while the caller parks, and returns its
 * result: j->rc, or a negative errno when it could not run. Either way the
 * caller still holds its reference, takes the outputs (on 0) and drops it
 * with job_unref. Killed while parked, the caller's reference goes through
 * the deferred cleanup and the thread finishes the job alone. */
static int job_run(struct job *j)
{
    atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed); /* the thread's */
    uint64_t d = rt_defer(job_unref, j);
    if (!d) {
        atomic_fetch_sub_explicit(&j->refs, 1, memory_order_relaxed);
        return -ENOMEM;
    }
    intptr_t res = 0;
    int r = rt_blocking(job_main, j, &res);
    rt_undefer(d, false);
    if (r < 0) {
        job_unref(j); /* the thread's reference: it never ran */
        return r;
    }
    return j->rc;
}

/* ---- statements ------------------------------------------------------------------ */

static sqlite3_stmt *stmt(struct sq *sq, int which)
{
    sqlite3_stmt *s = sq->st[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static int step_done(struct sq *sq, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return -EEXIST;
    return sq_fail(sq, rc, what);
}

static int exec_one(struct sq *sq, int which)
{
    return step_done(sq, stmt(sq, which), STMT_SQL[which]);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v, size_t len)
{
    if (v)
        sqlite3_bind_text(s, i, v, (int)len, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static void bind_str(sqlite3_stmt *s, int i, const char *v)
{
    bind_text(s, i, v, v ? strlen(v) : 0);
}

/* A column's text as a new NUL-terminated string (NULL for SQL NULL);
 * *len (may be NULL) gets its length. -ENOMEM. */
static int col_dup(sqlite3_stmt *s, int i, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    if (sqlite3_column_type(s, i) == SQLITE_NULL)
        return 0;
    const void *v = sqlite3_column_blob(s, i);
    size_t n = (size_t)sqlite3_column_bytes(s, i);
    char *c = malloc(n + 1);
    if (!c)
        return -ENOMEM;
    if (n)
        memcpy(c, v, n);
    c[n] = '\0';
    *out = c;
    if (len)
        *len = n;
    return 0;
}

/* The instance at the current row of a statement selecting INST_COLS. */
static int row_record(sqlite3_stmt *s, struct wf_record **out)
{
    struct wf_record *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    const unsigned char *id = sqlite3_column_text(s, 0);
    snprintf(r->id, sizeof r->id, "%s", id ? (const char *)id : "");
    int e = col_dup(s, 1, &r->def_name, NULL);
    e = e ?: col_dup(s, 2, &r->def_text, &r->def_text_len);
    e = e ?: col_dup(s, 3, &r->input, &r->input_len);
    e = e ?: col_dup(s, 4, &r->scope, NULL);
    e = e ?: col_dup(s, 5, &r->key, NULL);
    if (!e && sqlite3_column_bytes(s, 6) == WF_FINGERPRINT_LEN)
        memcpy(r->fingerprint, sqlite3_column_blob(s, 6), WF_FINGERPRINT_LEN);
    e = e ?: col_dup(s, 7, &r->owner, NULL);
    r->created_ms = sqlite3_column_int64(s, 8);
    r->updated_ms = sqlite3_column_int64(s, 9);
    r->key_expires_ms = sqlite3_column_int64(s, 10);
    e = e ?: col_dup(s, 11, &r->state, NULL);
    r->terminal = sqlite3_column_int(s, 12) != 0;
    r->answer_status = sqlite3_column_int(s, 13);
    e = e ?: col_dup(s, 14, &r->answer_headers, NULL);
    e = e ?: col_dup(s, 15, &r->answer_body, &r->answer_body_len);
    if (e) {
        wf_record_free(r);
        return e;
    }
    *out = r;
    return 0;
}

static int load_transitions(struct sq *sq, struct wf_record *r)
{
    sqlite3_stmt *s = stmt(sq, ST_TR_LIST);
    bind_str(s, 1, r->id);
    size_t cap = 0;
    int rc, e = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (r->ntransitions == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            void *v = realloc(r->transitions, ncap * sizeof(*r->transitions));
            if (!v) {
                e = -ENOMEM;
                goto out;
            }
            r->transitions = v;
            cap = ncap;
        }
        struct wf_record_transition *t = &r->transitions[r->ntransitions];
        memset(t, 0, sizeof(*t));
        r->ntransitions++;
        t->seq = (uint32_t)sqlite3_column_int64(s, 0);
        t->at_ms = sqlite3_column_int64(s, 4);
        e = col_dup(s, 1, &t->state, NULL);
        e = e ?: col_dup(s, 2, &t->event, NULL);
        e = e ?: col_dup(s, 3, &t->detail, NULL);
        if (e)
            goto out;
    }
    if (rc != SQLITE_DONE)
        e = sq_fail(sq, rc, "read transitions");
out:
    sqlite3_reset(s);
    return e;
}

/* The instance `id` (-ENOENT), with its transitions when asked. */
static int load_instance(struct sq *sq, const char *id, bool with_transitions,
                         struct wf_record **out)
{
    sqlite3_stmt *s = stmt(sq, ST_INST_GET);
    bind_str(s, 1, id);
    struct wf_record *r = NULL;
    int rc = sqlite3_step(s);
    int e;
    if (rc == SQLITE_ROW)
        e = row_record(s, &r);
    else
        e = rc == SQLITE_DONE ? -ENOENT : sq_fail(sq, rc, "read instance");
    sqlite3_reset(s);
    if (!e && with_transitions)
        e = load_transitions(sq, r);
    if (e) {
        wf_record_free(r);
        return e;
    }
    *out = r;
    return 0;
}

/* ---- the batch -------------------------------------------------------------------- */

static int exec_key_del(struct sq *sq, const char *scope, const char *key)
{
    sqlite3_stmt *s = stmt(sq, ST_KEY_DEL);
    bind_str(s, 1, scope);
    bind_str(s, 2, key);
    return step_done(sq, s, "delete expired key");
}

static int op_create(struct sq *sq, struct wf_op *op, const char *owner, int64_t now,
                     uint32_t lease_ms)
{
    const struct wf_create *c = op->create;
    int e;
    if (c->scope) {
        sqlite3_stmt *s = stmt(sq, ST_KEY_GET);
        bind_str(s, 1, c->scope);
        bind_str(s, 2, c->key);
        int rc = sqlite3_step(s);
        char holder[WF_ID_LEN + 1] = "";
        bool taken = false, expired = false;
        if (rc == SQLITE_ROW) {
            const unsigned char *h = sqlite3_column_text(s, 0);
            snprintf(holder, sizeof holder, "%s", h ? (const char *)h : "");
            taken = true;
            expired = sqlite3_column_int64(s, 1) <= now;
        }
        sqlite3_reset(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return sq_fail(sq, rc, "read key");
        if (taken) {
            /* The holder without transitions; if it is gone (purged
             * under an unexpired key, which purge never does) the caller
             * still learns the key is taken. An expired key is given up
             * only by an instance that is over: one still running keeps
             * it, or a retry would start a second instance of the same
             * request. */
            e = load_instance(sq, holder, false, &op->existing);
            if (e && e != -ENOENT)
                return e;
            if (!expired || (op->existing && !op->existing->terminal))
                return -EEXIST;
            wf_record_free(op->existing);
            op->existing = NULL;
        }
        if (taken && (e = exec_key_del(sq, c->scope, c->key)))
            return e;
    }
    sqlite3_stmt *s = stmt(sq, ST_INST_PUT);
    bind_str(s, 1, c->id);
    bind_str(s, 2, c->def_name);
    bind_text(s, 3, c->def_text, c->def_text_len);
    bind_text(s, 4, c->input, c->input_len);
    bind_str(s, 5, c->scope);
    bind_str(s, 6, c->scope ? c->key : NULL);
    if (c->scope)
        sqlite3_bind_blob(s, 7, c->fingerprint, WF_FINGERPRINT_LEN, SQLITE_STATIC);
    bind_str(s, 8, owner);
    sqlite3_bind_int64(s, 9, now + lease_ms);
    sqlite3_bind_int64(s, 10, c->created_ms);
    sqlite3_bind_int64(s, 11, c->key_expires_ms);
    bind_str(s, 12, c->state);
    if ((e = step_done(sq, s, "insert instance")))
        return e; /* -EEXIST: the id is taken */
    if (!c->scope)
        return 0;
    s = stmt(sq, ST_KEY_PUT);
    bind_str(s, 1, c->scope);
    bind_str(s, 2, c->key);
    bind_str(s, 3, c->id);
    sqlite3_bind_int64(s, 4, c->key_expires_ms);
    return step_done(sq, s, "insert key");
}

static int op_append(struct sq *sq, struct wf_op *op, const char *owner, int64_t now,
                     uint32_t lease_ms)
{
    const struct wf_transition *t = op->append;
    sqlite3_stmt *s = stmt(sq, ST_INST_OWNER);
    bind_str(s, 1, t->id);
    int rc = sqlite3_step(s);
    bool mine = false;
    if (rc == SQLITE_ROW) {
        const unsigned char *o = sqlite3_column_text(s, 0);
        mine = o && strcmp((const char *)o, owner) == 0;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return sq_fail(sq, rc, "read owner");
    if (!mine)
        return -ESTALE;
    s = stmt(sq, ST_TR_PUT);
    bind_str(s, 1, t->id);
    sqlite3_bind_int64(s, 2, t->seq);
    bind_str(s, 3, t->state);
    bind_str(s, 4, t->event);
    bind_text(s, 5, t->detail ? t->detail : "", t->detail ? t->detail_len : 0);
    sqlite3_bind_int64(s, 6, t->at_ms);
    int e = step_done(sq, s, "insert transition");
    if (e)
        return e; /* -EEXIST: that seq is written */
    s = stmt(sq, ST_INST_STEP);
    bind_str(s, 1, t->id);
    bind_str(s, 2, t->state);
    sqlite3_bind_int64(s, 3, now);
    sqlite3_bind_int64(s, 4, t->seq);
    sqlite3_bind_int64(s, 5, now + lease_ms);
    sqlite3_bind_int(s, 6, t->terminal);
    /* The answer belongs to a terminal state: an instance taken up again
     * (an operator's retry) has none until it ends again. */
    sqlite3_bind_int(s, 7, t->terminal ? t->answer_status : 0);
    bind_str(s, 8, t->terminal ? t->answer_headers : NULL);
    if (t->terminal && t->answer_body)
        sqlite3_bind_blob(s, 9, t->answer_body, (int)t->answer_body_len, SQLITE_STATIC);
    return step_done(sq, s, "update instance");
}

/* One op in its own savepoint: an op refused leaves nothing behind. A
 * failure of the connection (not a refusal) is returned as such. */
static int op_apply(struct sq *sq, struct wf_op *op, const char *owner, int64_t now,
                    uint32_t lease_ms)
{
    int e = exec_one(sq, ST_SP);
    if (e)
        return e;
    op->result = op->kind == WF_OP_CREATE ? op_create(sq, op, owner, now, lease_ms)
                                          : op_append(sq, op, owner, now, lease_ms);
    if (op->result == -EEXIST || op->result == -ESTALE || op->result == -ENOENT) {
        if ((e = exec_one(sq, ST_SP_ROLLBACK)))
            return e;
    } else if (op->result) {
        return op->result;
    }
    return exec_one(sq, ST_SP_RELEASE);
}

static int do_commit(struct job *j)
{
    struct sq *sq = j->sq;
    int e = exec_one(sq, ST_BEGIN);
    if (e)
        return e;
    for (size_t i = 0; i < j->nops; i++) {
        if ((e = op_apply(sq, &j->ops[i], j->owner, j->now_ms, j->lease_ms)))
            goto fail;
    }
    if ((e = exec_one(sq, ST_COMMIT)))
        goto fail;
    return 0;
fail:
    if (!sqlite3_get_autocommit(sq->db))
        exec_one(sq, ST_ROLLBACK);
    for (size_t i = 0; i < j->nops; i++) {
        wf_record_free(j->ops[i].existing);
        j->ops[i].existing = NULL;
    }
    return e < 0 && e != -EEXIST ? e : -EIO;
}

/* ---- reads and upkeep ------------------------------------------------------------- */

static int do_find_key(struct job *j)
{
    struct sq *sq = j->sq;
    sqlite3_stmt *s = stmt(sq, ST_KEY_FIND);
    bind_str(s, 1, j->scope);
    bind_str(s, 2, j->key);
    sqlite3_bind_int64(s, 3, j->now_ms);
    char id[WF_ID_LEN + 1] = "";
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(s, 0);
        snprintf(id, sizeof id, "%s", h ? (const char *)h : "");
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return sq_fail(sq, rc, "read key");
    return load_instance(sq, id, false, &j->rec);
}

static int do_list(struct job *j)
{
    struct sq *sq = j->sq;
    const struct wf_list_filter *f = &j->filter;
    size_t limit = f->limit ? f->limit : SQ_LIST_DEFAULT;
    if (limit > SQ_LIST_MAX)
        limit = SQ_LIST_MAX;
    sqlite3_stmt *s = stmt(sq, ST_LIST);
    bind_str(s, 1, f->def_name);
    int kind = 0;
    if (f->state) {
        size_t n = strlen(f->state);
        if (strcmp(f->state, "active") == 0)
            kind = 1;
        else
            kind = n && f->state[n - 1] == ':' ? 3 : 2;
        bind_str(s, 6, f->state);
    }
    sqlite3_bind_int(s, 2, kind);
    sqlite3_bind_int64(s, 3, f->older_than_ms);
    bind_str(s, 4, f->after_id);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)limit);
    int rc, e = 0;
    if (!(j->recs = calloc(limit, sizeof(*j->recs)))) {
        e = -ENOMEM;
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && j->nrecs < limit) {
        if ((e = row_record(s, &j->recs[j->nrecs])))
            goto out;
        j->nrecs++;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        e = sq_fail(sq, rc, "list instances");
out:
    sqlite3_reset(s);
    return e;
}

static int do_claim(struct job *j)
{
    struct sq *sq = j->sq;
    int e = exec_one(sq, ST_BEGIN);
    if (e)
        return e;
    sqlite3_stmt *s = stmt(sq, ST_CLAIM_SEL);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)j->limit);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (j->nids == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            void *v = realloc(j->ids, ncap * sizeof(*j->ids));
            if (!v) {
                e = -ENOMEM;
                break;
            }
            j->ids = v;
            cap = ncap;
        }
        const unsigned char *id = sqlite3_column_text(s, 0);
        snprintf(j->ids[j->nids++], WF_ID_LEN + 1, "%s", id ? (const char *)id : "");
    }
    sqlite3_reset(s);
    if (!e && rc != SQLITE_DONE)
        e = sq_fail(sq, rc, "select unfinished instances");
    for (size_t i = 0; !e && i < j->nids; i++) {
        s = stmt(sq, ST_CLAIM_SET);
        bind_str(s, 1, j->ids[i]);
        bind_str(s, 2, j->owner);
        sqlite3_bind_int64(s, 3, j->now_ms + j->lease_ms);
        e = step_done(sq, s, "claim instance");
    }
    if (!e)
        e = exec_one(sq, ST_COMMIT);
    if (e && !sqlite3_get_autocommit(sq->db))
        exec_one(sq, ST_ROLLBACK);
    return e;
}

static int do_renew(struct job *j)
{
    sqlite3_stmt *s = stmt(j->sq, ST_RENEW);
    bind_str(s, 1, j->owner);
    sqlite3_bind_int64(s, 2, j->now_ms + j->lease_ms);
    return step_done(j->sq, s, "renew leases");
}

static int do_purge(struct job *j)
{
    struct sq *sq = j->sq;
    int e = exec_one(sq, ST_BEGIN);
    if (e)
        return e;
    static const int steps[] = {ST_PURGE_KEYS, ST_PURGE_TR, ST_PURGE_INST};
    for (size_t i = 0; !e && i < sizeof steps / sizeof steps[0]; i++) {
        sqlite3_stmt *s = stmt(sq, steps[i]);
        sqlite3_bind_int64(s, 1, j->now_ms);
        e = step_done(sq, s, STMT_SQL[steps[i]]);
    }
    if (!e)
        j->purged = (size_t)sqlite3_changes(sq->db); /* the instances' DELETE */
    if (!e)
        e = exec_one(sq, ST_COMMIT);
    if (e && !sqlite3_get_autocommit(sq->db))
        exec_one(sq, ST_ROLLBACK);
    return e;
}

/* ---- open and close --------------------------------------------------------------- */

/* Creates the directories leading to the database file (0750: the journal
 * holds clients' payloads), as `mkdir -p` would; one that cannot be made is
 * reported with its reason. Runs on the blocking pool. */
static int make_parents(const char *path)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof dir)
        return -ENAMETOOLONG;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
            int e = -errno;
            rt_log(RT_LOG_ERROR, "workflow journal (sqlite): cannot create directory %s: %s", dir,
                   strerror(-e));
            return e;
        }
        if (!(*p = c))
            return 0;
    }
}

static int do_open(struct job *j)
{
    int made = make_parents(j->path);
    if (made < 0)
        return made;
    struct sq *sq = calloc(1, sizeof(*sq));
    if (!sq)
        return -ENOMEM;
    atomic_init(&sq->refs, 1);
    int e;
    int rc = sqlite3_open_v2(
        j->path, &sq->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        e = sq_fail(sq, rc, j->path);
        goto fail;
    }
    sqlite3_extended_result_codes(sq->db, 1);
    sqlite3_busy_timeout(sq->db, SQ_BUSY_TIMEOUT_MS);
    /* WAL: a commit appends to one file and fsyncs it once; FULL makes
     * that fsync part of every COMMIT. OFF (benchmarks) leaves the data
     * to the OS: a power loss may lose what was acknowledged. */
    const char *pragmas = j->durable ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                     : "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;";
    char *msg = NULL;
    if ((rc = sqlite3_exec(sq->db, pragmas, NULL, NULL, &msg)) != SQLITE_OK ||
        (rc = sqlite3_exec(sq->db, SCHEMA, NULL, NULL, &msg)) != SQLITE_OK) {
        rt_log(RT_LOG_ERROR, "workflow journal (sqlite): %s: %s", j->path,
               msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        e = sq_errno(rc) == -EEXIST ? -EIO : sq_errno(rc);
        goto fail;
    }
    /* journal_mode answers the mode it got: a file system without shared
     * memory for the WAL index keeps another one, which we refuse. */
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(sq->db, "PRAGMA journal_mode", -1, &s, NULL);
    bool wal = rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW &&
               sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (!wal) {
        rt_log(RT_LOG_ERROR, "workflow journal (sqlite): %s: cannot use WAL mode", j->path);
        e = -EIO;
        goto fail;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(sq->db, STMT_SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &sq->st[i],
                                NULL);
        if (rc != SQLITE_OK) {
            e = sq_fail(sq, rc, STMT_SQL[i]);
            goto fail;
        }
    }
    j->sq = sq;
    return 0;
fail:
    sq_unref(sq);
    return e;
}

static intptr_t job_main(void *arg)
{
    struct job *j = arg;
    switch (j->kind) {
    case JOB_OPEN:
        j->rc = do_open(j);
        break;
    case JOB_CLOSE:
        sq_unref(j->closing); /* closes unless a killed journal's job still runs */
        j->closing = NULL;
        break;
    case JOB_COMMIT:
        j->rc = do_commit(j);
        break;
    case JOB_GET:
        j->rc = load_instance(j->sq, j->id, j->with_transitions, &j->rec);
        break;
    case JOB_FIND_KEY:
        j->rc = do_find_key(j);
        break;
    case JOB_LIST:
        j->rc = do_list(j);
        break;
    case JOB_CLAIM:
        j->rc = do_claim(j);
        break;
    case JOB_RENEW:
        j->rc = do_renew(j);
        break;
    case JOB_PURGE:
        j->rc = do_purge(j);
        break;
    }
    int rc = j->rc;
    job_unref(j);
    return rc;
}

static void sq_close(void *b);

/* ---- the vtable (the journal process) ----------------------------------------------- */

static int sq_open(const struct wf_journal_config *cfg, void **out)
{
    if (!cfg->sqlite_path || !*cfg->sqlite_path)
        return -EINVAL;
    struct job *j = job_new(JOB_OPEN, NULL);
    if (!j)
        return -ENOMEM;
    j->durable = cfg->durable;
    int e = dup_str(cfg->sqlite_path, &j->path);
    if (!e)
        e = job_run(j);
    if (!e) {
        struct sq *sq = j->sq;
        j->sq = NULL; /* the caller's now */
        if (!(sq->orphan = rt_defer(sq_orphan, sq))) {
            job_unref(j);
            sq_close(sq);
            return -ENOMEM;
        }
        *out = sq;
    }
    job_unref(j);
    return e;
}

static void sq_close(void *b)
{
    struct sq *sq = b;
    if (!sq)
        return;
    if (sq->orphan)
        rt_undefer(sq->orphan, false);
    sq->orphan = 0;
    /* The last reference goes on a blocking thread: sqlite3_close may
     * checkpoint the WAL into the database file. */
    struct job *j = job_new(JOB_CLOSE, NULL);
    if (!j) {
        rt_log(RT_LOG_ERROR, "workflow journal (sqlite): out of memory closing; left open");
        return;
    }
    j->closing = sq;
    if (job_run(j))
        rt_log(RT_LOG_ERROR, "workflow journal (sqlite): cannot close; left open");
    job_unref(j);
}

static int sq_commit(void *b, struct wf_op *ops, size_t n, const char *owner, int64_t now_ms,
                     uint32_t lease_ms)
{
    struct job *j = job_new(JOB_COMMIT, b);
    if (!j)
        return -ENOMEM;
    int e = -ENOMEM;
    j->now_ms = now_ms;
    j->lease_ms = lease_ms;
    if (dup_str(owner, &j->owner) || !(j->ops = calloc(n ? n : 1, sizeof(*j->ops))) ||
        !(j->packed = calloc(n ? n : 1, sizeof(*j->packed))))
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct wf_op *op = &j->ops[i];
        op->kind = ops[i].kind;
        size_t size = op->kind == WF_OP_CREATE ? wf__create_size(ops[i].create)
                                               : wf__transition_size(ops[i].append);
        if (!(j->packed[i] = aligned_alloc(16, (size + 15) & ~(size_t)15)))
            goto out;
        j->nops++;
        if (op->kind == WF_OP_CREATE)
            op->create = wf__create_pack(ops[i].create, j->packed[i]);
        else
            op->append = wf__transition_pack(ops[i].append, j->packed[i]);
    }
    if ((e = job_run(j)))
        goto out;
    for (size_t i = 0; i < n; i++) {
        ops[i].result = j->ops[i].result;
        ops[i].existing = j->ops[i].existing;
        j->ops[i].existing = NULL;
    }
out:
    job_unref(j);
    return e;
}

static int sq_get(void *b, const char *id, bool with_transitions, struct wf_record **out)
{
    struct job *j = job_new(JOB_GET, b);
    if (!j)
        return -ENOMEM;
    j->with_transitions = with_transitions;
    int e = dup_str(id, &j->id);
    if (!e)
        e = job_run(j);
    if (!e) {
        *out = j->rec;
        j->rec = NULL;
    }
    job_unref(j);
    return e;
}

static int sq_find_key(void *b, const char *scope, const char *key, int64_t now_ms,
                       struct wf_record **out)
{
    struct job *j = job_new(JOB_FIND_KEY, b);
    if (!j)
        return -ENOMEM;
    j->now_ms = now_ms;
    int e = dup_str(scope, &j->scope);
    if (!e)
        e = dup_str(key, &j->key);
    if (!e)
        e = job_run(j);
    if (!e) {
        *out = j->rec;
        j->rec = NULL;
    }
    job_unref(j);
    return e;
}

static int sq_list(void *b, const struct wf_list_filter *f, struct wf_record ***out, size_t *n)
{
    struct job *j = job_new(JOB_LIST, b);
    if (!j)
        return -ENOMEM;
    j->filter.older_than_ms = f->older_than_ms;
    j->filter.limit = f->limit;
    char *d = NULL, *st = NULL, *a = NULL;
    int e = dup_str(f->def_name, &d);
    if (!e)
        e = dup_str(f->state, &st);
    if (!e)
        e = dup_str(f->after_id, &a);
    /* The job owns them (job_unref frees them), made or not. */
    j->filter.def_name = d;
    j->filter.state = st;
    j->filter.after_id = a;
    if (!e)
        e = job_run(j);
    if (!e) {
        *out = j->recs;
        *n = j->nrecs;
        j->recs = NULL;
        j->nrecs = 0;
    }
    job_unref(j);
    return e;
}

static int sq_claim(void *b, const char *owner, const char *from, int64_t now_ms, uint32_t lease_ms,
                    size_t limit, char (**ids)[WF_ID_LEN + 1], size_t *n)
{
    (void)from; /* one file has one gateway at a time: every unfinished instance is taken */
    struct job *j = job_new(JOB_CLAIM, b);
    if (!j)
        return -ENOMEM;
    j->now_ms = now_ms;
    j->lease_ms = lease_ms;
    j->limit = limit;
    int e = dup_str(owner, &j->owner);
    if (!e)
        e = job_run(j);
    if (!e) {
        *ids = j->ids;
        *n = j->nids;
        j->ids = NULL;
    }
    job_unref(j);
    return e;
}

static int sq_renew(void *b, const char *owner, int64_t now_ms, uint32_t lease_ms)
{
    struct job *j = job_new(JOB_RENEW, b);
    if (!j)
        return -ENOMEM;
    j->now_ms = now_ms;
    j->lease_ms = lease_ms;
    int e = dup_str(owner, &j->owner);
    if (!e)
        e = job_run(j);
    job_unref(j);
    return e;
}

static int sq_purge(void *b, int64_t now_ms, size_t *purged)
{
    struct job *j = job_new(JOB_PURGE, b);
    if (!j)
        return -ENOMEM;
    j->now_ms = now_ms;
    int e = job_run(j);
    if (!e)
        *purged = j->purged;
    job_unref(j);
    return e;
}

const struct wf_backend_ops wf_backend_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .commit = sq_commit,
    .get = sq_get,
    .find_key = sq_find_key,
    .list = sq_list,
    .claim = sq_claim,
    .renew = sq_renew,
    .purge = sq_purge,
};
