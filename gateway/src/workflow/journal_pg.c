/*
 * journal_pg.c: the workflows journal on PostgreSQL, shared by replicas.
 *
 * libpq is driven through its non-blocking interface on the runtime's I/O,
 * as the BEAM's epgsql does: a call sends its statements, flushes what the
 * socket takes and parks the calling process on the socket (rt_poll) until
 * the server answers, so a scheduler thread is never held by a query. Only
 * PQconnectStart runs on the blocking pool, because it may resolve a host
 * name (getaddrinfo); the rest of the connection runs on PQconnectPoll.
 * (With several hosts in the conninfo, libpq resolves the second and later
 * ones inside PQconnectPoll: give those as addresses, hostaddr=.)
 * Every wait has a deadline; a connection that fails or times out is
 * dropped, the call returns -EIO, and the next call connects anew.
 *
 * Tables (created when missing, under an advisory lock so that replicas
 * starting together do not race on the DDL):
 *   wf_instances   one row per instance: owner and lease_until (ms since
 *                  the epoch), the client's key (scope, key) unique;
 *   wf_transitions (id, seq) primary key, deleted with their instance.
 * Payloads (definition text, input, details, answers) and the client's key
 * are bytea: the journal stores them byte for byte, whatever their
 * encoding, so one odd op can never fail a whole group commit.
 *
 * A commit is one transaction sent as one pipeline (BEGIN, one statement
 * per op, COMMIT, one round trip). Each op is a call of a PL/pgSQL function
 * (wf_create, wf_append) that decides its own result and never raises for
 * an expected outcome: a taken key or an existing seq is ON CONFLICT DO
 * NOTHING, another owner is a check under the row lock. Thus one op's
 * refusal does not abort the transaction the others ride in.
 *
 * Fencing: an append takes the instance's row lock (FOR UPDATE) and writes
 * only when the owner is still this replica; a claim by another replica
 * takes the same lock, so the two are ordered and the loser of the race
 * sees the winner's owner (-ESTALE).
 *
 * Claims: FOR UPDATE SKIP LOCKED rather than advisory locks. The row lock
 * is the same lock the writes take, it lasts exactly as long as the claiming
 * transaction, and SKIP LOCKED lets replicas claiming at once each take
 * different instances without waiting on one another. Advisory locks would
 * be a second lock namespace to keep in step with the rows, held per
 * session (lost with the connection, leaked with a stuck one).
 */
#include "workflow/journal_int.h"
#include "workflow/journal_pg.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* Time to set up a connection (TCP, TLS, authentication, schema). */
#define PG_CONNECT_TIMEOUT_MS 10000
/* Time a call may take in all: a server that stalls longer (a lock held by
 * a stuck replica, a network cut) costs the connection, not the process. */
#define PG_CALL_TIMEOUT_MS 30000
/* list(): rows when the filter asks for 0, and the most per call
 * (journal.h); as the SQLite backend. */
#define PG_LIST_DEFAULT 100
#define PG_LIST_MAX 1000

/* Type oids (pg_type.h is not part of libpq's interface). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT4 23
#define OID_TEXT 25

/* The results of wf_create and wf_append. */
enum { RES_OK = 0, RES_NOENT = 1, RES_STALE = 2, RES_EXISTS = 3 };

struct pgb {
    char *conninfo;
    PGconn *conn;    /* NULL: connect at the next call */
    PGconn *setup;   /* a connection being set up (open_conn) */
    uint64_t orphan; /* the journal process's deferred pg_orphan */
    /* What a call holds while it parks on a further query, for pg_orphan
     * to free if the process is killed meanwhile: the record get_one
     * read, the ops whose holders pg_commit has read. */
    struct wf_record *held;
    struct wf_op *filling;
    size_t nfilling;
};

static const char schema_sql[] =
    /* A write is acknowledged once the server has it on disk, whatever
     * the server's default (write-ahead: the instance acts on it next). */
    "SET synchronous_commit = on;"
    "BEGIN;"
    /* Replicas starting together: one creates, the others then find. */
    "SELECT pg_advisory_xact_lock(7361720011);"
    "CREATE TABLE IF NOT EXISTS wf_instances ("
    " id text PRIMARY KEY,"
    " def_name text NOT NULL,"
    " def_text bytea NOT NULL,"
    " input bytea NOT NULL,"
    " scope text,"
    " key bytea,"
    " fingerprint bytea,"
    " owner text NOT NULL,"
    " lease_until bigint NOT NULL,"
    " created_ms bigint NOT NULL,"
    " updated_ms bigint NOT NULL,"
    " key_expires_ms bigint NOT NULL,"
    " state text NOT NULL,"
    " terminal boolean NOT NULL DEFAULT false,"
    " answer_status integer NOT NULL DEFAULT 0,"
    " answer_headers bytea,"
    " answer_body bytea,"
    " UNIQUE (scope, key));"
    "CREATE TABLE IF NOT EXISTS wf_transitions ("
    " id text NOT NULL REFERENCES wf_instances (id) ON DELETE CASCADE,"
    " seq integer NOT NULL,"
    " state text NOT NULL,"
    " event text NOT NULL,"
    " detail bytea NOT NULL,"
    " at_ms bigint NOT NULL,"
    " PRIMARY KEY (id, seq));"
    "CREATE INDEX IF NOT EXISTS wf_instances_lease ON wf_instances (lease_until)"
    " WHERE NOT terminal;"
    "CREATE INDEX IF NOT EXISTS wf_instances_owner ON wf_instances (owner) WHERE NOT terminal;"
    "CREATE INDEX IF NOT EXISTS wf_instances_expiry ON wf_instances (key_expires_ms)"
    " WHERE terminal;"
    /* A key that expired is given up by its old instance (which stays,
     * until purged, without it) so that a new request may take it; an
     * instance still running keeps it, or a retry would start a second
     * instance of the same request. */
    "CREATE OR REPLACE FUNCTION wf_create(p_id text, p_def_name text, p_def_text bytea,"
    " p_input bytea, p_scope text, p_key bytea, p_fp bytea, p_owner text,"
    " p_lease_until bigint, p_created bigint, p_key_expires bigint, p_state text,"
    " p_now bigint) RETURNS integer LANGUAGE plpgsql AS $f$\n"
    "BEGIN\n"
    " IF p_scope IS NOT NULL THEN\n"
    "  UPDATE wf_instances SET scope = NULL, key = NULL\n"
    "   WHERE scope = p_scope AND key = p_key AND key_expires_ms <= p_now AND terminal;\n"
    " END IF;\n"
    " INSERT INTO wf_instances (id, def_name, def_text, input, scope, key, fingerprint, owner,\n"
    "   lease_until, created_ms, updated_ms, key_expires_ms, state)\n"
    "  VALUES (p_id, p_def_name, p_def_text, p_input, p_scope,\n"
    "   CASE WHEN p_scope IS NULL THEN NULL ELSE p_key END, p_fp, p_owner,\n"
    "   p_lease_until, p_created, p_created, p_key_expires, p_state)\n"
    "  ON CONFLICT DO NOTHING;\n"
    " IF FOUND THEN RETURN 0; END IF;\n"
    " RETURN 3;\n"
    "END $f$;"
    "CREATE OR REPLACE FUNCTION wf_append(p_id text, p_seq integer, p_state text,"
    " p_event text, p_detail bytea, p_at bigint, p_terminal boolean, p_status integer,"
    " p_headers bytea, p_body bytea, p_owner text, p_lease_until bigint) RETURNS integer"
    " LANGUAGE plpgsql AS $f$\n"
    "DECLARE cur text;\n"
    "BEGIN\n"
    /* The row lock orders this write with a claim by another replica. */
    " SELECT owner INTO cur FROM wf_instances WHERE id = p_id FOR UPDATE;\n"
    " IF NOT FOUND THEN RETURN 1; END IF;\n"
    " IF cur IS DISTINCT FROM p_owner THEN RETURN 2; END IF;\n"
    " INSERT INTO wf_transitions (id, seq, state, event, detail, at_ms)\n"
    "  VALUES (p_id, p_seq, p_state, p_event, p_detail, p_at) ON CONFLICT DO NOTHING;\n"
    " IF NOT FOUND THEN RETURN 3; END IF;\n"
    " UPDATE wf_instances SET state = p_state, updated_ms = p_at,\n"
    /* The latest transition decides: `failed` is terminal, and an
     * operator's retry appends non-terminal ones after it, which make the
     * instance unfinished again (claimed at recovery) with no answer
     * until it ends again. */
    "   terminal = p_terminal, lease_until = p_lease_until,\n"
    "   answer_status = CASE WHEN p_terminal THEN p_status ELSE 0 END,\n"
    "   answer_headers = CASE WHEN p_terminal THEN p_headers END,\n"
    "   answer_body = CASE WHEN p_terminal THEN p_body END\n"
    "  WHERE id = p_id;\n"
    " RETURN 0;\n"
    "END $f$;"
    "COMMIT;";

#define RECORD_COLS                                                                                \
    "id, def_name, def_text, input, scope, key, fingerprint, owner, created_ms, updated_ms,"       \
    " key_expires_ms, state, terminal, answer_status, answer_headers, answer_body"

/* ---- parameters (all sent in binary form) --------------------------------- */

#define PARAMS_MAX 16

struct params {
    int n;
    Oid types[PARAMS_MAX];
    const char *vals[PARAMS_MAX];
    int lens[PARAMS_MAX];
    int fmts[PARAMS_MAX];
    unsigned char ints[PARAMS_MAX][8];
    bool too_long; /* a value over INT_MAX bytes */
};

static void p_bytes(struct params *p, const void *v, size_t len, Oid type)
{
    int i = p->n++;
    p->types[i] = type;
    p->fmts[i] = 1;
    if (len > INT_MAX) {
        p->too_long = true;
        len = 0;
    }
    /* A NULL value is SQL NULL; an empty non-NULL one needs a non-NULL
     * pointer, which "" is. */
    p->vals[i] = v ? (len ? v : "") : NULL;
    p->lens[i] = (int)len;
}

static void p_text(struct params *p, const char *s)
{
    p_bytes(p, s, s ? strlen(s) : 0, OID_TEXT);
}

static void p_int(struct params *p, uint64_t v, int size, Oid type)
{
    int i = p->n++;
    for (int k = 0; k < size; k++)
        p->ints[i][k] = (unsigned char)(v >> (8 * (size - 1 - k)));
    p->types[i] = type;
    p->fmts[i] = 1;
    p->vals[i] = (const char *)p->ints[i];
    p->lens[i] = size;
}

static void p_i64(struct params *p, int64_t v)
{
    p_int(p, (uint64_t)v, 8, OID_INT8);
}

static void p_i32(struct params *p, int32_t v)
{
    p_int(p, (uint32_t)v, 4, OID_INT4);
}

static void p_bool(struct params *p, bool v)
{
    p_int(p, v, 1, OID_BOOL);
}

/* ---- results (binary form) ------------------------------------------------ */

static int64_t g_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
        return 0;
    const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
    uint64_t x = 0;
    for (int k = 0; k < 8; k++)
        x = x << 8 | v[k];
    return (int64_t)x;
}

static int32_t g_i32(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 4)
        return 0;
    const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
    return (int32_t)((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3]);
}

static bool g_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetlength(r, row, col) == 1 &&
           PQgetvalue(r, row, col)[0] != 0;
}

/* A NUL-terminated copy of a text or bytea value: 0, with *out NULL for SQL
 * NULL; -ENOMEM. */
static int g_str(const PGresult *r, int row, int col, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    if (PQgetisnull(r, row, col))
        return 0;
    size_t n = (size_t)PQgetlength(r, row, col);
    char *s = malloc(n + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, PQgetvalue(r, row, col), n);
    s[n] = '\0';
    *out = s;
    if (len)
        *len = n;
    return 0;
}

/* ---- the connection ---------------------------------------------------------- */

/* Logs libpq's message on one line (its messages span several). */
static void log_pg(const char *what, const PGconn *c, const PGresult *r)
{
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !*msg)
        msg = c ? PQerrorMessage(c) : "out of memory";
    char line[512];
    size_t n = 0;
    for (const char *p = msg; *p && n < sizeof line - 1; p++) {
        char ch = *p == '\n' || *p == '\t' ? ' ' : *p;
        if (ch == ' ' && (n == 0 || line[n - 1] == ' '))
            continue;
        line[n++] = ch;
    }
    while (n && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
    rt_log(RT_LOG_WARNING, "workflows journal (postgres): %s: %s", what, line);
}

static void drop(struct pgb *b)
{
    if (b->conn)
        PQfinish(b->conn);
    b->conn = NULL;
}

static int64_t deadline_in(int64_t ms)
{
    return (int64_t)rt_now_ms() + ms;
}

/* Parks the caller until the socket is ready for `events` or the deadline
 * passes (-ETIMEDOUT). */
static int wait_sock(PGconn *c, unsigned events, int64_t deadline)
{
    int fd = PQsocket(c);
    if (fd < 0)
        return -EIO;
    int64_t left = deadline - (int64_t)rt_now_ms();
    if (left <= 0)
        return -ETIMEDOUT;
    return rt_poll(fd, events, left);
}

static void notice_drop(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "relation already exists, skipping" and the like */
}

/* PQconnectStart on a blocking thread, shared with the calling process
 * through a reference count: a journal process killed while it runs lets
 * go of its reference (a deferred cleanup), and the thread, last, closes
 * the connection it made and frees the job. */
struct connect_job {
    _Atomic int refs;
    PGconn *conn;
    char conninfo[];
};

static void connect_job_unref(void *arg)
{
    struct connect_job *cj = arg;
    /* acq_rel: the last owner sees what the other wrote. */
    if (atomic_fetch_sub_explicit(&cj->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (cj->conn)
        PQfinish(cj->conn);
    free(cj);
}

static intptr_t connect_start(void *arg)
{
    struct connect_job *cj = arg;
    cj->conn = PQconnectStart(cj->conninfo);
    connect_job_unref(cj);
    return 0;
}

/* PQconnectStart run on the blocking pool: 0 with *out (NULL when libpq
 * is out of memory), or a negative errno. */
static int connect_begin(const char *conninfo, PGconn **out)
{
    size_t len = strlen(conninfo);
    struct connect_job *cj = malloc(sizeof(*cj) + len + 1);
    if (!cj)
        return -ENOMEM;
    atomic_init(&cj->refs, 2); /* the caller's and the thread's */
    cj->conn = NULL;
    memcpy(cj->conninfo, conninfo, len + 1);
    uint64_t d = rt_defer(connect_job_unref, cj);
    if (!d) {
        free(cj);
        return -ENOMEM;
    }
    intptr_t res = 0;
    int rc = rt_blocking(connect_start, cj, &res);
    if (rc < 0) {
        connect_job_unref(cj); /* the thread's: it never ran */
        rt_undefer(d, true);
        return rc;
    }
    *out = cj->conn;
    cj->conn = NULL;
    rt_undefer(d, true);
    return 0;
}

/* Sends everything libpq holds, reading what the server sends meanwhile so
 * that neither side waits on a full buffer. */
static int flush_all(PGconn *c, int64_t deadline)
{
    for (;;) {
        int f = PQflush(c);
        if (f == 0)
            return 0;
        if (f < 0)
            return -EIO;
        int rc = wait_sock(c, RT_POLL_IN | RT_POLL_OUT, deadline);
        if (rc < 0)
            return rc;
        if ((rc & RT_POLL_IN) && !PQconsumeInput(c))
            return -EIO;
    }
}

/* The next result (NULL at the end of a statement's results), parking while
 * libpq would block. */
static int next_result(PGconn *c, int64_t deadline, PGresult **out)
{
    while (PQisBusy(c)) {
        int rc = wait_sock(c, RT_POLL_IN, deadline);
        if (rc < 0)
            return rc;
        if (!PQconsumeInput(c))
            return -EIO;
    }
    *out = PQgetResult(c);
    return 0;
}

/* Runs a statement sent with PQsendQuery*: *out gets its last result, which
 * the caller checks and clears. */
static int finish_query(PGconn *c, int64_t deadline, PGresult **out)
{
    int rc = flush_all(c, deadline);
    if (rc < 0)
        return rc;
    PGresult *last = NULL;
    for (;;) {
        PGresult *r;
        rc = next_result(c, deadline, &r);
        if (rc < 0) {
            PQclear(last);
            return rc;
        }
        if (!r)
            break;
        PQclear(last);
        last = r;
    }
    if (!last)
        return -EIO;
    *out = last;
    return 0;
}

static int open_conn(struct pgb *b)
{
    int64_t deadline = deadline_in(PG_CONNECT_TIMEOUT_MS);
    PGresult *r = NULL;
    PGconn *c = NULL;
    int rc = connect_begin(b->conninfo, &c);
    if (rc < 0)
        return rc;
    if (!c)
        return -ENOMEM;
    b->setup = c; /* closed by pg_orphan if the process is killed meanwhile */
    if (PQstatus(c) == CONNECTION_BAD) {
        rc = -EIO;
        log_pg("connect", c, NULL);
        goto out;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            rc = -EIO;
            log_pg("connect", c, NULL);
            goto out;
        }
        rc = wait_sock(c, st == PGRES_POLLING_READING ? RT_POLL_IN : RT_POLL_OUT, deadline);
        if (rc < 0) {
            rt_log(RT_LOG_WARNING, "workflows journal (postgres): connect: %s",
                   rc == -ETIMEDOUT ? "timed out" : "socket wait failed");
            rc = -EIO;
            goto out;
        }
        st = PQconnectPoll(c);
    }
    PQsetNoticeProcessor(c, notice_drop, NULL);
    if (PQsetnonblocking(c, 1) != 0) {
        rc = -EIO;
        log_pg("set non-blocking", c, NULL);
        goto out;
    }
    if (!PQsendQuery(c, schema_sql)) {
        rc = -EIO;
        log_pg("schema", c, NULL);
        goto out;
    }
    rc = finish_query(c, deadline, &r);
    if (rc < 0 || PQresultStatus(r) != PGRES_COMMAND_OK) {
        log_pg("schema", c, r);
        rc = -EIO;
        goto out;
    }
    b->conn = c;
    c = NULL;
    rc = 0;
out:
    PQclear(r);
    b->setup = NULL;
    if (c)
        PQfinish(c);
    return rc;
}

/* The connection for a call: the open one unless the server has closed it
 * meanwhile, else a new one. A server that ends a session sends its reason
 * and then closes: the reason is one read and the close the next, so this
 * reads (without waiting) while there is something to read. */
static int conn_ready(struct pgb *b)
{
    for (int i = 0; b->conn && i < 4; i++) {
        struct pollfd pfd = {.fd = PQsocket(b->conn), .events = POLLIN};
        if (PQstatus(b->conn) == CONNECTION_BAD || pfd.fd < 0 || !PQconsumeInput(b->conn) ||
            PQstatus(b->conn) == CONNECTION_BAD)
            drop(b);
        else if (poll(&pfd, 1, 0) <= 0)
            break;
    }
    if (b->conn)
        return 0;
    return open_conn(b);
}

/* One statement with parameters; *out gets its result when its status is
 * `want`. Any failure drops the connection (it is in an unknown state). */
static int query(struct pgb *b, const char *sql, const struct params *p, ExecStatusType want,
                 PGresult **out)
{
    if (p && p->too_long)
        return -EINVAL;
    int rc = conn_ready(b);
    if (rc < 0)
        return rc;
    int64_t deadline = deadline_in(PG_CALL_TIMEOUT_MS);
    PGresult *r = NULL;
    if (!PQsendQueryParams(b->conn, sql, p ? p->n : 0, p ? p->types : NULL, p ? p->vals : NULL,
                           p ? p->lens : NULL, p ? p->fmts : NULL, 1)) {
        log_pg("send", b->conn, NULL);
        rc = -EIO;
        goto out;
    }
    rc = finish_query(b->conn, deadline, &r);
    if (rc < 0) {
        log_pg(rc == -ETIMEDOUT ? "query timed out" : "query", b->conn, NULL);
        rc = -EIO;
        goto out;
    }
    if (PQresultStatus(r) != want) {
        log_pg("query", b->conn, r);
        rc = -EIO;
        goto out;
    }
    *out = r;
    r = NULL;
out:
    PQclear(r);
    if (rc < 0)
        drop(b);
    return rc;
}

/* ---- the vtable ----------------------------------------------------------------- */

static void pgb_free(struct pgb *b)
{
    wf_record_free(b->held);
    for (size_t i = 0; i < b->nfilling; i++) {
        wf_record_free(b->filling[i].existing);
        b->filling[i].existing = NULL;
    }
    drop(b);
    if (b->setup)
        PQfinish(b->setup);
    free(b->conninfo);
    free(b);
}

/* The journal process ended without closing (killed, or crashed), maybe
 * parked on a query: its connection goes with it. Left open, the session
 * would live on at the server, in the middle of a batch perhaps, holding
 * row locks that fence every later write to those instances. PQfinish
 * does not block: the connection is non-blocking. */
static void pg_orphan(void *arg)
{
    pgb_free(arg);
}

static void pg_close(void *vb)
{
    struct pgb *b = vb;
    if (!b)
        return;
    if (b->orphan)
        rt_undefer(b->orphan, false);
    b->orphan = 0;
    pgb_free(b);
}

static int pg_open(const struct wf_journal_config *cfg, void **out)
{
    if (!cfg->pg_conninfo)
        return -EINVAL;
    struct pgb *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    int rc = -ENOMEM;
    b->conninfo = strdup(cfg->pg_conninfo);
    if (!b->conninfo || !(b->orphan = rt_defer(pg_orphan, b)))
        goto out;
    rc = open_conn(b);
    if (rc < 0)
        goto out;
    *out = b;
    b = NULL;
out:
    pg_close(b);
    return rc;
}

/* A record from row `row` of a RECORD_COLS result. */
static int record_of(const PGresult *res, int row, struct wf_record **out)
{
    struct wf_record *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    int rc = -ENOMEM;
    char *id = NULL;
    size_t n;
    if (g_str(res, row, 0, &id, &n) < 0)
        goto out;
    if (id)
        memcpy(r->id, id, n < WF_ID_LEN ? n : WF_ID_LEN);
    free(id);
    if (g_str(res, row, 1, &r->def_name, NULL) < 0 ||
        g_str(res, row, 2, &r->def_text, &r->def_text_len) < 0 ||
        g_str(res, row, 3, &r->input, &r->input_len) < 0 ||
        g_str(res, row, 4, &r->scope, NULL) < 0 || g_str(res, row, 5, &r->key, NULL) < 0 ||
        g_str(res, row, 7, &r->owner, NULL) < 0 || g_str(res, row, 11, &r->state, NULL) < 0 ||
        g_str(res, row, 14, &r->answer_headers, NULL) < 0 ||
        g_str(res, row, 15, &r->answer_body, &r->answer_body_len) < 0)
        goto out;
    if (!PQgetisnull(res, row, 6)) {
        n = (size_t)PQgetlength(res, row, 6);
        memcpy(r->fingerprint, PQgetvalue(res, row, 6),
               n < WF_FINGERPRINT_LEN ? n : WF_FINGERPRINT_LEN);
    }
    r->created_ms = g_i64(res, row, 8);
    r->updated_ms = g_i64(res, row, 9);
    r->key_expires_ms = g_i64(res, row, 10);
    r->terminal = g_bool(res, row, 12);
    r->answer_status = g_i32(res, row, 13);
    *out = r;
    r = NULL;
    rc = 0;
out:
    wf_record_free(r);
    return rc;
}

static int load_transitions(struct pgb *b, struct wf_record *rec)
{
    struct params p = {0};
    PGresult *res = NULL;
    p_text(&p, rec->id);
    int rc = query(b,
                   "SELECT seq, state, event, detail, at_ms FROM wf_transitions"
                   " WHERE id = $1 ORDER BY seq",
                   &p, PGRES_TUPLES_OK, &res);
    if (rc < 0)
        return rc;
    int rows = PQntuples(res);
    rc = 0;
    if (rows == 0)
        goto out;
    rec->transitions = calloc((size_t)rows, sizeof(*rec->transitions));
    rc = -ENOMEM;
    if (!rec->transitions)
        goto out;
    for (int i = 0; i < rows; i++) {
        struct wf_record_transition *t = &rec->transitions[i];
        rec->ntransitions++;
        t->seq = (uint32_t)g_i32(res, i, 0);
        t->at_ms = g_i64(res, i, 4);
        if (g_str(res, i, 1, &t->state, NULL) < 0 || g_str(res, i, 2, &t->event, NULL) < 0 ||
            g_str(res, i, 3, &t->detail, NULL) < 0)
            goto out;
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}

/* The first row of a RECORD_COLS query, with transitions when asked:
 * -ENOENT when there is none. */
static int get_one(struct pgb *b, const char *sql, const struct params *p, bool with_transitions,
                   struct wf_record **out)
{
    PGresult *res = NULL;
    struct wf_record *rec = NULL;
    int rc = query(b, sql, p, PGRES_TUPLES_OK, &res);
    if (rc < 0)
        return rc;
    rc = -ENOENT;
    if (PQntuples(res) < 1)
        goto out;
    rc = record_of(res, 0, &rec);
    if (rc < 0)
        goto out;
    if (with_transitions) {
        PQclear(res); /* the record has copies */
        res = NULL;
        b->held = rec;
        rc = load_transitions(b, rec);
        b->held = NULL;
        if (rc < 0)
            goto out;
    }
    *out = rec;
    rec = NULL;
    rc = 0;
out:
    wf_record_free(rec);
    PQclear(res);
    return rc;
}

static int pg_get(void *vb, const char *id, bool with_transitions, struct wf_record **out)
{
    struct params p = {0};
    p_text(&p, id);
    return get_one(vb, "SELECT " RECORD_COLS " FROM wf_instances WHERE id = $1", &p,
                   with_transitions, out);
}

static int pg_find_key(void *vb, const char *scope, const char *key, int64_t now_ms,
                       struct wf_record **out)
{
    struct params p = {0};
    p_text(&p, scope);
    p_bytes(&p, key, strlen(key), OID_BYTEA);
    p_i64(&p, now_ms);
    return get_one(vb,
                   "SELECT " RECORD_COLS " FROM wf_instances"
                   " WHERE scope = $1 AND key = $2 AND key_expires_ms > $3",
                   &p, false, out);
}

/* The instance a refused create met: the holder of its key, else the
 * instance with its id. */
static void fill_existing(struct pgb *b, struct wf_op *op)
{
    const struct wf_create *c = op->create;
    struct params p = {0};
    p_text(&p, c->id);
    p_text(&p, c->scope);
    p_bytes(&p, c->scope ? c->key : NULL, c->scope && c->key ? strlen(c->key) : 0, OID_BYTEA);
    if (get_one(b,
                "SELECT " RECORD_COLS " FROM wf_instances"
                " WHERE ($2::text IS NOT NULL AND scope = $2 AND key = $3) OR id = $1"
                " ORDER BY (id = $1)",
                &p, false, &op->existing) < 0)
        op->existing = NULL;
}

static void params_create(struct params *p, const struct wf_create *c, const char *owner,
                          int64_t now_ms, uint32_t lease_ms)
{
    p_text(p, c->id);
    p_text(p, c->def_name);
    p_bytes(p, c->def_text ? c->def_text : "", c->def_text_len, OID_BYTEA);
    p_bytes(p, c->input ? c->input : "", c->input_len, OID_BYTEA);
    p_text(p, c->scope);
    p_bytes(p, c->scope ? c->key : NULL, c->scope && c->key ? strlen(c->key) : 0, OID_BYTEA);
    p_bytes(p, c->fingerprint, WF_FINGERPRINT_LEN, OID_BYTEA);
    p_text(p, owner);
    p_i64(p, now_ms + (int64_t)lease_ms);
    p_i64(p, c->created_ms);
    p_i64(p, c->key_expires_ms);
    p_text(p, c->state);
    p_i64(p, now_ms);
}

static void params_append(struct params *p, const struct wf_transition *t, const char *owner,
                          int64_t now_ms, uint32_t lease_ms)
{
    p_text(p, t->id);
    p_i32(p, (int32_t)t->seq);
    p_text(p, t->state);
    p_text(p, t->event);
    p_bytes(p, t->detail ? t->detail : "", t->detail_len, OID_BYTEA);
    p_i64(p, t->at_ms);
    p_bool(p, t->terminal);
    p_i32(p, t->answer_status);
    p_bytes(p, t->answer_headers, t->answer_headers ? strlen(t->answer_headers) : 0, OID_BYTEA);
    p_bytes(p, t->terminal ? (t->answer_body ? t->answer_body : "") : NULL, t->answer_body_len,
            OID_BYTEA);
    p_text(p, owner);
    p_i64(p, now_ms + (int64_t)lease_ms);
}

static int op_result(int code)
{
    switch (code) {
    case RES_OK:
        return 0;
    case RES_NOENT:
        return -ENOENT;
    case RES_STALE:
        return -ESTALE;
    case RES_EXISTS:
        return -EEXIST;
    default:
        return -EIO;
    }
}

/* Reads the batch's results in the order sent. sent[i] says whether op i
 * was sent (an op refused before sending has its result already). */
static int read_batch(PGconn *c, struct wf_op *ops, size_t n, const bool *sent, int64_t deadline)
{
    int rc = 0;
    /* BEGIN, the ops that were sent, COMMIT: one result and a NULL each. */
    for (size_t i = 0; i < n + 2; i++) {
        size_t k = i - 1;
        if (i > 0 && i <= n && !sent[k])
            continue;
        PGresult *r = NULL, *end = NULL;
        int e = next_result(c, deadline, &r);
        if (e == 0 && r)
            e = next_result(c, deadline, &end);
        if (e < 0) {
            PQclear(r);
            return e;
        }
        PQclear(end);
        if (!r)
            return -EIO;
        ExecStatusType st = PQresultStatus(r);
        if (i == 0 || i == n + 1) {
            /* A COMMIT of a failed transaction answers ROLLBACK. */
            if (st != PGRES_COMMAND_OK || (i == n + 1 && strcmp(PQcmdStatus(r), "COMMIT") != 0)) {
                if (rc == 0) {
                    log_pg("commit", c, r);
                    rc = -EIO;
                }
            }
        } else if (st == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            ops[k].result = op_result(g_i32(r, 0, 0));
        } else if (rc == 0) {
            log_pg("commit", c, r);
            rc = -EIO;
        }
        PQclear(r);
    }
    PGresult *r = NULL;
    int e = next_result(c, deadline, &r);
    if (e < 0)
        return e;
    if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC)
        rc = -EIO;
    PQclear(r);
    return rc;
}

static int pg_commit(void *vb, struct wf_op *ops, size_t n, const char *owner, int64_t now_ms,
                     uint32_t lease_ms)
{
    struct pgb *b = vb;
    for (size_t i = 0; i < n; i++) {
        ops[i].result = 0;
        ops[i].existing = NULL;
    }
    /* Process memory: freed also when the process is killed mid-commit. */
    bool *sent = rt_calloc(n ? n : 1, sizeof(*sent));
    if (!sent)
        return -ENOMEM;
    int rc = conn_ready(b);
    if (rc < 0)
        goto out;
    PGconn *c = b->conn;
    int64_t deadline = deadline_in(PG_CALL_TIMEOUT_MS);
    rc = -EIO;
    if (!PQenterPipelineMode(c)) {
        log_pg("pipeline", c, NULL);
        goto out;
    }
    if (!PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 1))
        goto send_failed;
    for (size_t i = 0; i < n; i++) {
        struct params p = {0};
        const char *sql;
        if (ops[i].kind == WF_OP_CREATE) {
            params_create(&p, ops[i].create, owner, now_ms, lease_ms);
            sql = "SELECT wf_create($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
        } else {
            params_append(&p, ops[i].append, owner, now_ms, lease_ms);
            sql = "SELECT wf_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        }
        if (p.too_long) {
            ops[i].result = -EINVAL;
            continue;
        }
        if (!PQsendQueryParams(c, sql, p.n, p.types, p.vals, p.lens, p.fmts, 1))
            goto send_failed;
        sent[i] = true;
    }
    if (!PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 1) || !PQpipelineSync(c))
        goto send_failed;
    rc = flush_all(c, deadline);
    if (rc == 0)
        rc = read_batch(c, ops, n, sent, deadline);
    if (rc < 0) {
        if (rc != -EIO || PQstatus(c) == CONNECTION_BAD)
            log_pg(rc == -ETIMEDOUT ? "commit timed out" : "commit", c, NULL);
        rc = -EIO;
        goto out;
    }
    if (!PQexitPipelineMode(c)) {
        log_pg("pipeline", c, NULL);
        rc = -EIO;
        goto out;
    }
    b->filling = ops;
    b->nfilling = n;
    for (size_t i = 0; i < n; i++)
        if (ops[i].kind == WF_OP_CREATE && ops[i].result == -EEXIST)
            fill_existing(b, &ops[i]);
    b->filling = NULL;
    b->nfilling = 0;
    rc = 0;
    goto out;
send_failed:
    log_pg("send", c, NULL);
    rc = -EIO;
out:
    /* A failed batch leaves the connection mid-pipeline or mid-transaction:
     * a new one is simpler and surer than unwinding it. */
    if (rc < 0) {
        drop(b);
        for (size_t i = 0; i < n; i++) {
            wf_record_free(ops[i].existing);
            ops[i].existing = NULL;
        }
    }
    rt_free(sent);
    return rc;
}

static int pg_list(void *vb, const struct wf_list_filter *f, struct wf_record ***out, size_t *n)
{
    struct params p = {0};
    PGresult *res = NULL;
    struct wf_record **recs = NULL;
    size_t count = 0;
    size_t limit = f->limit == 0            ? PG_LIST_DEFAULT
                   : f->limit > PG_LIST_MAX ? PG_LIST_MAX
                                            : f->limit;
    const char *state = f->state;
    bool active = state && strcmp(state, "active") == 0;
    /* "step:" (ends with ':') is a prefix; anything else is exact. */
    bool prefix = state && !active && *state && state[strlen(state) - 1] == ':';
    p_text(&p, f->def_name);
    p_text(&p, active ? NULL : state);
    p_bool(&p, active);
    p_bool(&p, prefix);
    p_i64(&p, f->older_than_ms);
    p_text(&p, f->after_id);
    p_i64(&p, (int64_t)limit);
    int rc = query(vb,
                   "SELECT " RECORD_COLS " FROM wf_instances"
                   " WHERE ($1::text IS NULL OR def_name = $1)"
                   " AND ($3 = false OR NOT terminal)"
                   " AND ($2::text IS NULL OR (CASE WHEN $4 THEN starts_with(state, $2)"
                   "      ELSE state = $2 END))"
                   " AND ($5 = 0 OR created_ms < $5)"
                   " AND ($6::text IS NULL OR id > $6)"
                   " ORDER BY id LIMIT $7",
                   &p, PGRES_TUPLES_OK, &res);
    if (rc < 0)
        return rc;
    int rows = PQntuples(res);
    rc = -ENOMEM;
    recs = calloc(rows ? (size_t)rows : 1, sizeof(*recs));
    if (!recs)
        goto out;
    for (int i = 0; i < rows; i++) {
        rc = record_of(res, i, &recs[count]);
        if (rc < 0)
            goto out;
        count++;
    }
    *out = recs;
    *n = count;
    recs = NULL;
    rc = 0;
out:
    if (recs) {
        for (size_t i = 0; i < count; i++)
            wf_record_free(recs[i]);
        free(recs);
    }
    PQclear(res);
    return rc;
}

static int pg_claim(void *vb, const char *owner, const char *from, int64_t now_ms,
                    uint32_t lease_ms, size_t limit, char (**ids)[WF_ID_LEN + 1], size_t *n)
{
    struct params p = {0};
    PGresult *res = NULL;
    p_text(&p, owner);
    p_i64(&p, now_ms);
    p_i64(&p, now_ms + (int64_t)lease_ms);
    p_i64(&p, (int64_t)(limit > INT_MAX ? INT_MAX : limit));
    p_text(&p, from ? from : owner);
    /* Oldest leases first: what this replica claimed or renewed a moment
     * ago sorts last, so its own live instances do not crowd a limited
     * claim out of the lapsed ones of a replica that is gone.
     * SKIP LOCKED: an instance another replica is claiming (or writing) at
     * this moment is not waited for; it is that replica's. Rows claimed by a
     * transaction that committed after this statement's snapshot are
     * re-checked under the lock and dropped when no longer claimable. */
    int rc = query(vb,
                   "WITH c AS (SELECT id FROM wf_instances"
                   "   WHERE NOT terminal AND (owner = $1 OR owner = $5 OR lease_until <= $2)"
                   "   ORDER BY lease_until, id LIMIT $4 FOR UPDATE SKIP LOCKED)"
                   " UPDATE wf_instances w SET owner = $1, lease_until = $3"
                   " FROM c WHERE w.id = c.id RETURNING w.id",
                   &p, PGRES_TUPLES_OK, &res);
    if (rc < 0)
        return rc;
    int rows = PQntuples(res);
    char(*out)[WF_ID_LEN + 1] = calloc(rows ? (size_t)rows : 1, sizeof(*out));
    rc = -ENOMEM;
    if (!out)
        goto out;
    for (int i = 0; i < rows; i++) {
        size_t len = (size_t)PQgetlength(res, i, 0);
        memcpy(out[i], PQgetvalue(res, i, 0), len < WF_ID_LEN ? len : WF_ID_LEN);
    }
    *ids = out;
    *n = (size_t)rows;
    rc = 0;
out:
    PQclear(res);
    return rc;
}

static int pg_renew(void *vb, const char *owner, int64_t now_ms, uint32_t lease_ms)
{
    struct params p = {0};
    PGresult *res = NULL;
    p_text(&p, owner);
    p_i64(&p, now_ms + (int64_t)lease_ms);
    int rc = query(vb, "UPDATE wf_instances SET lease_until = $2 WHERE owner = $1 AND NOT terminal",
                   &p, PGRES_COMMAND_OK, &res);
    PQclear(res);
    return rc;
}

static int pg_purge(void *vb, int64_t now_ms, size_t *purged)
{
    struct params p = {0};
    PGresult *res = NULL;
    p_i64(&p, now_ms);
    /* Transitions go with their instance (ON DELETE CASCADE). `failed` is
     * terminal but waits for an operator: it stays. */
    int rc = query(vb,
                   "DELETE FROM wf_instances WHERE terminal AND state <> 'failed'"
                   " AND key_expires_ms < $1",
                   &p, PGRES_COMMAND_OK, &res);
    if (rc < 0)
        return rc;
    *purged = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

int wf__pg_exec(void *vb, const char *sql)
{
    PGresult *res = NULL;
    int rc = query(vb, sql, NULL, PGRES_TUPLES_OK, &res);
    PQclear(res);
    return rc;
}

const struct wf_backend_ops wf_backend_postgres = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .commit = pg_commit,
    .get = pg_get,
    .find_key = pg_find_key,
    .list = pg_list,
    .claim = pg_claim,
    .renew = pg_renew,
    .purge = pg_purge,
};
