/*
 * ledger.h: a small bank on Tandem's runtime (examples/ledger).
 *
 * Three parts, each in its own file:
 *  - store.c: the SQLite database (accounts, the entry log, idempotency
 *    keys with the answers they got). Every function there blocks (disk
 *    I/O, fsync) and is called only on the runtime's blocking pool
 *    (rt_blocking), never on a scheduler thread. One connection, one
 *    mutex: each call is one transaction.
 *  - account.c: one gen_server per account, registered as "acct:<id>",
 *    started on demand under the simple_one_for_one supervisor "accounts".
 *    It holds the balance and serialises the account's changes: each is
 *    committed (WAL, synchronous=FULL) before it is answered.
 *  - http.c: the HTTP/1.1 API: an acceptor process and one process per
 *    connection (llhttp for parsing, jansson for JSON).
 */
#ifndef LEDGER_H
#define LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt/rt.h"

/* Account ids: 1..LEDGER_ID_MAX bytes of [A-Za-z0-9_.-] (the registered
 * name "acct:<id>" stays under the runtime's 64-byte limit). */
#define LEDGER_ID_MAX 48
/* Amounts and balances are integers in minor units. An amount is 1 ..
 * LEDGER_AMOUNT_MAX; a balance stays within 0 .. LEDGER_BALANCE_MAX. */
#define LEDGER_AMOUNT_MAX 1000000000000LL     /* 10^12 */
#define LEDGER_BALANCE_MAX 1000000000000000LL /* 10^15 */
/* An entry's `ref` and an Idempotency-Key: at most these many bytes of
 * printable ASCII. */
#define LEDGER_REF_MAX 128
#define LEDGER_KEY_MAX 255
/* Entries a GET .../entries and accounts a GET /accounts return at most
 * (the oldest first; "truncated": true says there are more). */
#define LEDGER_LIST_MAX 10000

struct ledger_store;

/* Any thread, before or outside processes: opens (creating if needed) the
 * database at `path` in WAL mode with synchronous=FULL. Blocks. */
int ledger_store_open(const char *path, struct ledger_store **out);
void ledger_store_close(struct ledger_store *s); /* NULL-safe */

enum ledger_op_kind { LEDGER_OP_CREATE = 1, LEDGER_OP_DEBIT, LEDGER_OP_CREDIT };

/* One change to an account, as its process hands it to the store. */
struct ledger_op {
    enum ledger_op_kind kind;
    char account[LEDGER_ID_MAX + 1];
    int64_t amount; /* CREATE: the opening balance (may be 0) */
    char ref[LEDGER_REF_MAX + 1];
    char key[LEDGER_KEY_MAX + 1]; /* "" = no Idempotency-Key */
    /* What a repeated key must match: "METHOD path\n" then the body. */
    const char *fingerprint;
    size_t fingerprint_len;
    /* The account as the store reads it inside the change's transaction
     * (set by ledger_store_apply; a caller's values are ignored). */
    bool exists;
    int64_t balance;
};

/* What a change was answered. body is malloc'd JSON (the caller frees). */
struct ledger_answer {
    int status;
    char *body;
    size_t body_len;
    bool applied;    /* a new entry was committed by this call */
    bool replayed;   /* the stored answer of an earlier request with this key */
    bool exists;     /* the account exists afterwards */
    int64_t balance; /* its balance afterwards */
};

/* Blocking; blocking pool only. Loads an account: 0 with *exists and
 * *balance, or -EIO. */
int ledger_store_load(struct ledger_store *s, const char *id, bool *exists, int64_t *balance);

/* Blocking; blocking pool only. Carries out `op` in one transaction:
 * checks the Idempotency-Key first (a key seen before answers its stored
 * answer if the fingerprint matches, 422 if not, and applies nothing),
 * then decides the change against the account's row as this transaction
 * reads it (never a caller's copy of the balance), applies it, writes its
 * entry, and stores the answer under
 * the key, all committed together before returning. Answers of requests
 * that did not reach an account (404) are not stored. 0 with *ans, or
 * -EIO / -ENOMEM (nothing applied). */
int ledger_store_apply(struct ledger_store *s, const struct ledger_op *op,
                       struct ledger_answer *ans);

/* Blocking; blocking pool only. JSON documents (malloc'd, NUL-terminated)
 * for GET /accounts/{id}/entries (-ENOENT if no such account), GET
 * /accounts and GET /total. */
int ledger_store_entries(struct ledger_store *s, const char *id, char **json, size_t *len);
int ledger_store_list(struct ledger_store *s, char **json, size_t *len);
int ledger_store_total(struct ledger_store *s, char **json, size_t *len);

/* ---- account processes (account.c) ------------------------------------- */

/* Process context. Starts the supervisor "accounts" (linked to the
 * caller, for a child spec of the application's supervisor). */
int ledger_accounts_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason);

/* Process context; blocks until the account's process has answered (its
 * commit included). Starts the account's process if it is not running.
 * The op is copied (its fingerprint too); its `exists` and `balance` are
 * ignored (the store reads the row). 0 with *ans (ans->body
 * is the caller's, malloc'd), or a negative errno: then the change may or
 * may not have been made (-ETIMEDOUT, -ECONNRESET). */
int ledger_account_apply(struct ledger_op *op, struct ledger_answer *ans);
/* Process context; blocks. The balance: 0, -ENOENT, or a negative errno. */
int ledger_account_balance(const char *id, int64_t *balance);

/* ---- the HTTP API (http.c) --------------------------------------------- */

struct ledger_faults {
    double fail_after_commit; /* 0..1: drop the connection after a commit, unanswered */
    unsigned delay_ms;        /* wait before answering each change */
};

/* Process context. Starts the acceptor on ledger_app.lfd (linked to the
 * caller, for a child spec). */
int ledger_http_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                      rt_atom *reason);

/* The application, set up by main before the runtime starts and read-only
 * afterwards. */
struct ledger_app {
    struct ledger_store *store;
    int lfd;
    struct ledger_faults faults;
    /* From the connection's start or the previous answer to the last
     * byte of the next request, the idle wait included (--request-timeout-ms). */
    unsigned request_timeout_ms;
};
extern struct ledger_app ledger_app;

/* A call on the blocking pool. Its inputs and outputs live in the job (one
 * malloc'd block that embeds this header first), never on the caller's
 * stack or in its messages: a process killed while parked on the pool (a
 * shutdown, an exit signal) has its stack and messages freed while the
 * worker still runs fn, which must then touch only the job. The caller and
 * the worker each hold a reference; the last one calls free_fn, which frees
 * the block and any output the caller did not take (set it to NULL to take
 * it). */
struct ledger_job {
    int (*fn)(struct ledger_job *j);
    void (*free_fn)(struct ledger_job *j);
    _Atomic int refs;
    uint64_t defer; /* drops the caller's reference if it dies */
};

/* Process context: runs j->fn(j) on the blocking pool and returns its
 * result (or the pool's error). Whatever it returns, the caller still holds
 * its reference and gives it up with ledger_job_put once it has read the
 * outputs. */
int ledger_blocking(struct ledger_job *j);
void ledger_job_put(struct ledger_job *j);

#endif
