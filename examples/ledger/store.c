/*
 * store.c: the ledger's SQLite database.
 *
 * Tables: accounts (id, balance), entries (the log: a global sequence,
 * account, signed amount, balance after, ref, idempotency key, time) and
 * idempotency (key, fingerprint, the answer's status and body). A change,
 * its entry and the answer stored under its key are one transaction, so
 * after a crash either all of them are there or none is: a key that was
 * answered always replays, and a change is never applied twice.
 *
 * Durability: WAL with synchronous=FULL, so COMMIT returns only once the
 * log is fsync'd. Every function here blocks and runs on the runtime's
 * blocking pool; one mutex serialises them over the one connection (SQLite
 * allows one writer at a time anyway). The mutex is never held across a
 * runtime call.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger.h"

struct ledger_store {
    pthread_mutex_t lock; /* held for one whole call, on a blocking thread */
    sqlite3 *db;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS accounts ("
    "  id TEXT PRIMARY KEY, balance INTEGER NOT NULL, created TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS entries ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL,"
    "  amount INTEGER NOT NULL, balance INTEGER NOT NULL, ref TEXT NOT NULL,"
    "  key TEXT, time TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS entries_by_account ON entries (account, seq);"
    "CREATE TABLE IF NOT EXISTS idempotency ("
    "  key TEXT PRIMARY KEY, fingerprint BLOB NOT NULL, status INTEGER NOT NULL,"
    "  body BLOB NOT NULL, time TEXT NOT NULL);";

int ledger_store_open(const char *path, struct ledger_store **out)
{
    int rc = -ENOMEM;
    struct ledger_store *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "tandem-ledger: %s: %s\n", path, sqlite3_errmsg(s->db));
        rc = -EIO;
        goto out;
    }
    sqlite3_busy_timeout(s->db, 5000);
    char *err = NULL;
    if (sqlite3_exec(s->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "tandem-ledger: %s: %s\n", path, err ? err : "cannot set up");
        sqlite3_free(err);
        rc = -EIO;
        goto out;
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    ledger_store_close(s);
    return rc;
}

void ledger_store_close(struct ledger_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* RFC 3339 UTC to the millisecond: the entries' wall-clock time. */
static void now_text(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", day, (int)(ts.tv_nsec / 1000000) % 1000);
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK ? 0 : -EIO;
}

/* With the lock held. */
static int load_locked(sqlite3 *db, const char *id, bool *exists, int64_t *balance)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(db, "SELECT balance FROM accounts WHERE id = ?", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *exists = true;
        *balance = sqlite3_column_int64(st, 0);
    } else if (step == SQLITE_DONE) {
        *exists = false;
        *balance = 0;
    } else {
        rc = -EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

int ledger_store_load(struct ledger_store *s, const char *id, bool *exists, int64_t *balance)
{
    pthread_mutex_lock(&s->lock);
    int rc = load_locked(s->db, id, exists, balance);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Sets ans->body to `doc` dumped compactly (and steals the reference). */
static int answer(struct ledger_answer *ans, int status, json_t *doc)
{
    if (!doc)
        return -ENOMEM;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text)
        return -ENOMEM;
    ans->status = status;
    ans->body = text;
    ans->body_len = strlen(text);
    return 0;
}

static json_t *error_doc(const char *code, const char *id)
{
    return id ? json_pack("{s:s, s:s}", "error", code, "id", id)
              : json_pack("{s:s}", "error", code);
}

/* Looks the key up: 1 with the stored answer or a 422 in *ans, 0 if the key
 * is new, -EIO. */
static int key_lookup(sqlite3 *db, const struct ledger_op *op, struct ledger_answer *ans)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(db, "SELECT fingerprint, status, body FROM idempotency WHERE key = ?", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, op->key, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = 0;
        goto out;
    }
    if (step != SQLITE_ROW) {
        rc = -EIO;
        goto out;
    }
    const void *fp = sqlite3_column_blob(st, 0);
    size_t fp_len = (size_t)sqlite3_column_bytes(st, 0);
    if (fp_len != op->fingerprint_len || (fp_len && memcmp(fp, op->fingerprint, fp_len) != 0)) {
        rc = answer(ans, 422, error_doc("idempotency_key_reused", NULL));
        rc = rc < 0 ? rc : 1;
        goto out;
    }
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    const void *body = sqlite3_column_blob(st, 2);
    char *copy = malloc(len + 1);
    if (!copy) {
        rc = -ENOMEM;
        goto out;
    }
    if (len)
        memcpy(copy, body, len);
    copy[len] = 0;
    ans->status = sqlite3_column_int(st, 1);
    ans->body = copy;
    ans->body_len = len;
    ans->replayed = true;
    rc = 1;
out:
    sqlite3_finalize(st);
    return rc;
}

static int key_store(sqlite3 *db, const struct ledger_op *op, const struct ledger_answer *ans,
                     const char *now)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(db,
                     "INSERT INTO idempotency (key, fingerprint, status, body, time)"
                     " VALUES (?, ?, ?, ?, ?)",
                     &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, op->key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, op->fingerprint, (int)op->fingerprint_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, ans->status);
    sqlite3_bind_blob(st, 4, ans->body, (int)ans->body_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(st);
    return rc;
}

/* Writes the account's new balance (creating the row for CREATE) and its
 * entry; *seq gets the entry's number. */
static int write_change(sqlite3 *db, const struct ledger_op *op, int64_t delta, int64_t balance,
                        const char *now, int64_t *seq)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(db,
                     op->kind == LEDGER_OP_CREATE
                         ? "INSERT INTO accounts (balance, id, created) VALUES (?, ?, ?)"
                         : "UPDATE accounts SET balance = ? WHERE id = ?",
                     &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, balance);
    sqlite3_bind_text(st, 2, op->account, -1, SQLITE_STATIC);
    if (op->kind == LEDGER_OP_CREATE)
        sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db) == 1 ? 0 : -EIO;
    sqlite3_finalize(st);
    st = NULL;
    if (rc < 0)
        return rc;
    rc = prepare(db,
                 "INSERT INTO entries (account, amount, balance, ref, key, time)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
                 &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, op->account, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, delta);
    sqlite3_bind_int64(st, 3, balance);
    sqlite3_bind_text(st, 4, op->ref, -1, SQLITE_STATIC);
    if (op->key[0])
        sqlite3_bind_text(st, 5, op->key, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(st);
    if (rc == 0)
        *seq = sqlite3_last_insert_rowid(db);
    return rc;
}

static json_t *entry_doc(int64_t seq, const char *account, int64_t amount, int64_t balance,
                         const char *ref, const char *key, const char *time)
{
    return json_pack("{s:I, s:s, s:I, s:I, s:s, s:s?, s:s}", "seq", (json_int_t)seq, "account",
                     account, "amount", (json_int_t)amount, "balance", (json_int_t)balance, "ref",
                     ref, "idempotency_key", key, "time", time);
}

/* Decides the change and its answer, and writes it: inside the
 * transaction. */
static int decide(sqlite3 *db, const struct ledger_op *op, struct ledger_answer *ans,
                  const char *now)
{
    ans->exists = op->exists;
    ans->balance = op->balance;
    int64_t delta = 0;
    switch (op->kind) {
    case LEDGER_OP_CREATE:
        if (op->exists)
            return answer(ans, 409, error_doc("account_exists", op->account));
        delta = op->amount;
        break;
    case LEDGER_OP_DEBIT:
        if (!op->exists)
            return answer(ans, 404, error_doc("no_such_account", op->account));
        if (op->amount > op->balance)
            return answer(ans, 402,
                          json_pack("{s:s, s:s, s:I, s:I}", "error", "insufficient_funds", "id",
                                    op->account, "balance", (json_int_t)op->balance, "amount",
                                    (json_int_t)op->amount));
        delta = -op->amount;
        break;
    case LEDGER_OP_CREDIT:
        if (!op->exists)
            return answer(ans, 404, error_doc("no_such_account", op->account));
        if (op->amount > LEDGER_BALANCE_MAX - op->balance)
            return answer(ans, 409, error_doc("balance_limit", op->account));
        delta = op->amount;
        break;
    default:
        return -EINVAL;
    }
    int64_t balance = op->kind == LEDGER_OP_CREATE ? op->amount : op->balance + delta;
    int64_t seq = 0;
    int rc = write_change(db, op, delta, balance, now, &seq);
    if (rc < 0)
        return rc;
    ans->applied = true;
    ans->exists = true;
    ans->balance = balance;
    return answer(ans, op->kind == LEDGER_OP_CREATE ? 201 : 200,
                  json_pack("{s:s, s:I, s:o}", "id", op->account, "balance", (json_int_t)balance,
                            "entry",
                            entry_doc(seq, op->account, delta, balance, op->ref,
                                      op->key[0] ? op->key : NULL, now)));
}

int ledger_store_apply(struct ledger_store *s, const struct ledger_op *op,
                       struct ledger_answer *ans)
{
    struct ledger_answer a = {0};
    char now[64];
    now_text(now, sizeof now);
    /* The change is decided against the row as this transaction reads it,
     * not against what the account's process holds: a process killed while
     * its change waited here is restarted and may load the row before that
     * change commits, and its copy of the balance is then behind. */
    struct ledger_op cur = *op;
    pthread_mutex_lock(&s->lock);
    int rc = exec(s->db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    rc = load_locked(s->db, op->account, &cur.exists, &cur.balance);
    if (rc < 0) {
        exec(s->db, "ROLLBACK");
        goto out;
    }
    if (op->key[0]) {
        rc = key_lookup(s->db, op, &a);
        if (rc != 0) { /* an answer from the key, or an error: nothing to write */
            a.exists = cur.exists;
            a.balance = cur.balance;
            exec(s->db, "ROLLBACK");
            rc = rc < 0 ? rc : 0;
            goto out;
        }
    }
    rc = decide(s->db, &cur, &a, now);
    /* 404 is not stored: the request reached no account, and one created
     * later may take the key. */
    if (rc == 0 && op->key[0] && a.status != 404)
        rc = key_store(s->db, op, &a, now);
    if (rc == 0)
        rc = exec(s->db, "COMMIT");
    if (rc < 0)
        exec(s->db, "ROLLBACK");
out:
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        free(a.body);
        return rc;
    }
    *ans = a;
    return 0;
}

/* Runs a query and collects its rows with `row` into an array, at most
 * LEDGER_LIST_MAX of them. */
static int collect(sqlite3_stmt *st, json_t *arr, json_t *(*row)(sqlite3_stmt *), bool *truncated)
{
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (json_array_size(arr) == LEDGER_LIST_MAX) {
            *truncated = true;
            return 0;
        }
        if (json_array_append_new(arr, row(st)) < 0)
            return -ENOMEM;
    }
    return step == SQLITE_DONE ? 0 : -EIO;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : NULL;
}

static json_t *entry_row(sqlite3_stmt *st)
{
    return entry_doc(sqlite3_column_int64(st, 0), col_text(st, 1), sqlite3_column_int64(st, 2),
                     sqlite3_column_int64(st, 3), col_text(st, 4), col_text(st, 5),
                     col_text(st, 6));
}

static json_t *account_row(sqlite3_stmt *st)
{
    return json_pack("{s:s, s:I}", "id", col_text(st, 0), "balance",
                     (json_int_t)sqlite3_column_int64(st, 1));
}

static int dump(json_t *doc, char **json, size_t *len)
{
    if (!doc)
        return -ENOMEM;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text)
        return -ENOMEM;
    *json = text;
    *len = strlen(text);
    return 0;
}

int ledger_store_entries(struct ledger_store *s, const char *id, char **json, size_t *len)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    bool truncated = false, exists = false;
    int64_t balance = 0;
    if (!arr)
        return -ENOMEM;
    /* The lock keeps out changes between the two reads. */
    pthread_mutex_lock(&s->lock);
    int rc = load_locked(s->db, id, &exists, &balance);
    if (rc == 0 && !exists)
        rc = -ENOENT;
    if (rc == 0)
        rc = prepare(s->db,
                     "SELECT seq, account, amount, balance, ref, key, time FROM entries"
                     " WHERE account = ? ORDER BY seq",
                     &st);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = collect(st, arr, entry_row, &truncated);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0)
        goto out;
    rc = dump(json_pack("{s:s, s:I, s:O, s:b}", "id", id, "balance", (json_int_t)balance, "entries",
                        arr, "truncated", truncated),
              json, len);
out:
    json_decref(arr);
    return rc;
}

int ledger_store_list(struct ledger_store *s, char **json, size_t *len)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    bool truncated = false;
    int rc = arr ? 0 : -ENOMEM;
    if (rc < 0)
        goto out;
    pthread_mutex_lock(&s->lock);
    rc = prepare(s->db, "SELECT id, balance FROM accounts ORDER BY id", &st);
    if (rc == 0)
        rc = collect(st, arr, account_row, &truncated);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0)
        goto out;
    rc = dump(json_pack("{s:O, s:b}", "accounts", arr, "truncated", truncated), json, len);
out:
    json_decref(arr);
    return rc;
}

int ledger_store_total(struct ledger_store *s, char **json, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int64_t total = 0, count = 0, entries = 0;
    pthread_mutex_lock(&s->lock);
    /* One statement, so the three figures are one snapshot. */
    int rc = prepare(s->db,
                     "SELECT (SELECT COALESCE(SUM(balance), 0) FROM accounts),"
                     " (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM entries)",
                     &st);
    if (rc == 0) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            total = sqlite3_column_int64(st, 0);
            count = sqlite3_column_int64(st, 1);
            entries = sqlite3_column_int64(st, 2);
        } else {
            rc = -EIO;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0)
        return rc;
    return dump(json_pack("{s:I, s:I, s:I}", "total", (json_int_t)total, "accounts",
                          (json_int_t)count, "entries", (json_int_t)entries),
                json, len);
}
