/*
 * journal.h: the workflows' durable journal, one interface over two
 * backends (SQLite, the embedded default; PostgreSQL, shared by replicas).
 *
 * What it holds:
 *   - instances: id, definition name and canonical text, input, the client's
 *     idempotency key (scope, key, request fingerprint), owner and lease,
 *     the current state, and once terminal the stored answer;
 *   - transitions: per instance, numbered from 1, each durable before the
 *     instance acts on it (write-ahead);
 *   - idempotency keys: (scope, key) unique, so a second request with the
 *     same key finds the first instance instead of making another.
 *
 * Process model: one journal process (`wf_journal`, a gen_server under
 * workflows_sup) owns the backend connection. Writers call wf_journal_*
 * from their own process; the call parks until the write is durable. The
 * journal process batches: while one commit is in flight, requests queue;
 * the next commit takes all of them in one transaction (one fsync for
 * SQLite), so commits per second stay at the disk's rate while transitions
 * per second grow with concurrency (group commit). SQLite calls run on the
 * runtime's blocking pool; libpq runs non-blocking on the runtime's I/O,
 * the journal process parking on its socket.
 *
 * Ownership (several replicas on one PostgreSQL): every instance has an
 * owner (the replica's id) and a lease deadline. A replica renews the leases
 * of what it runs; one whose leases lapsed loses its instances to whoever
 * claims them (wf_journal_claim). Every write names the owner, and a write
 * for an instance owned by someone else fails with -ESTALE: the instance
 * process then stops without acting (the new owner carries on). With SQLite
 * there is one owner and claims at start take every unfinished instance.
 *
 * Errors are negative errno values: -EEXIST (key taken, see the create
 * result), -ENOENT, -ESTALE, -EIO (the backend failed; message in the log),
 * -ENOMEM. Also, from the calls: -EINVAL (an id that is not 32 lower-case
 * hex digits, a state over WF_STATE_MAX, a scope or key over its bound or
 * empty, seq 0), -E2BIG (one write's record over 16 MiB), -ETIMEDOUT (no
 * answer from the journal within 30 s). After -EIO or -ETIMEDOUT from a
 * write the caller cannot know whether it landed (the journal may have
 * stopped after committing, or committed after the caller gave up), as
 * with a lost reply: it reads the instance back before acting again.
 */
#ifndef GW_WORKFLOW_JOURNAL_H
#define GW_WORKFLOW_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt/rt.h"

#define WF_ID_LEN 32          /* 128 random bits in lower-case hex */
#define WF_KEY_MAX 255        /* client idempotency key bytes */
#define WF_SCOPE_MAX 200      /* "route:NAME" or "consumer:NAME" */
#define WF_STATE_MAX 96       /* "step:debit", "compensating:debit", "completed", ... */
#define WF_FINGERPRINT_LEN 32 /* SHA-256 of method, path and body */
#define WF_OWNER_MAX 255      /* an owner's (replica id's) bytes */
/* A commit takes writes until their records reach this many bytes (or
 * max_batch writes): what a batch holds in memory (the journal's queue,
 * the backend's copy or its send buffer) stays bounded however large each
 * write may be (up to 16 MiB, see below). */
#define WF_JOURNAL_BATCH_BYTES (32u << 20)

enum wf_backend {
    WF_BACKEND_SQLITE = 0,
    WF_BACKEND_POSTGRES,
};

struct wf_journal_config {
    enum wf_backend backend;
    const char *sqlite_path; /* SQLITE: the database file (created if missing) */
    bool durable;            /* SQLITE: synchronous=FULL (false only for benchmarks) */
    const char *pg_conninfo; /* POSTGRES: libpq connection string */
    const char *owner;       /* this replica's id (unique among replicas) */
    uint32_t lease_ms;       /* POSTGRES: an owner that has not renewed for this long is gone */
    uint32_t max_batch;      /* writes per commit at most (default 512) */
};

/* An instance as created (first write). Strings are copied. */
struct wf_create {
    char id[WF_ID_LEN + 1];
    const char *def_name;
    const char *def_text; /* canonical definition text */
    size_t def_text_len;
    const char *input; /* JSON text */
    size_t input_len;
    const char *scope; /* NULL: no idempotency key */
    const char *key;
    unsigned char fingerprint[WF_FINGERPRINT_LEN];
    int64_t created_ms;     /* wall clock, ms since the epoch */
    int64_t key_expires_ms; /* when the key (and the stored answer) may be purged */
    const char *state;      /* the first state, e.g. "step:debit" */
};

/* One transition. `detail` is JSON text (attempt, request sent, answer
 * status and body, error...). A terminal transition carries the answer
 * the client gets, then and on every replay of its key. */
struct wf_transition {
    const char *id;
    uint32_t seq; /* 1, 2, ... per instance; a seq already written is -EEXIST */
    const char *state;
    const char *event; /* "intent", "outcome", "retry", "compensate", "operator:retry", ... */
    const char *detail;
    size_t detail_len;
    int64_t at_ms;
    bool terminal;
    int answer_status;
    const char *answer_headers; /* JSON object text of the headers that matter, or NULL */
    const char *answer_body;
    size_t answer_body_len;
};

/* What a reader gets back (wf_journal_get, the key lookup). Owned by the
 * caller: wf_record_free. */
struct wf_record_transition {
    uint32_t seq;
    char *state, *event, *detail;
    int64_t at_ms;
};

struct wf_record {
    char id[WF_ID_LEN + 1];
    char *def_name, *def_text, *input;
    size_t def_text_len, input_len;
    char *scope, *key; /* NULL when created without a key */
    unsigned char fingerprint[WF_FINGERPRINT_LEN];
    char *owner;
    int64_t created_ms, updated_ms, key_expires_ms;
    char *state;
    bool terminal;
    int answer_status;
    char *answer_headers, *answer_body;
    size_t answer_body_len;
    struct wf_record_transition *transitions; /* in seq order; NULL unless asked for */
    size_t ntransitions;
};
void wf_record_free(struct wf_record *r); /* NULL-safe */

/* Starts the journal process (linked to the caller, normally a child of
 * workflows_sup) and opens the backend, creating its tables if missing.
 * Process context. 0, or a negative errno with the reason logged. */
int wf_journal_start_link(const struct wf_journal_config *cfg, rt_pid *out);
/* The child spec start function form of the above: arg is the config. */
int wf_journal_child_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                           rt_atom *reason);

/* ---- writes (process context; each parks until durable) ------------------ */

/* Creates an instance owned by this replica, with its key reserved in the
 * same transaction. When (scope, key) is already taken, and not expired
 * or held by an instance not yet terminal: -EEXIST, and *existing (when
 * non-NULL) gets that instance (without transitions). */
int wf_journal_create(const struct wf_create *c, struct wf_record **existing);
/* -ENOENT when the instance does not exist; -EEXIST when t->seq is written
 * already (the first write stays); -ESTALE when another owner holds it. */
int wf_journal_append(const struct wf_transition *t);

/* ---- reads (process context) --------------------------------------------- */

/* The instance `id`, with its transitions when `with_transitions`. */
int wf_journal_get(const char *id, bool with_transitions, struct wf_record **out);
/* The instance holding (scope, key), unexpired. -ENOENT when none. */
int wf_journal_find_key(const char *scope, const char *key, struct wf_record **out);

struct wf_list_filter {
    const char *def_name;  /* NULL: any */
    const char *state;     /* NULL: any; "active" = not terminal; else exact or prefix "step:" */
    int64_t older_than_ms; /* created before this wall time; 0: any */
    const char *after_id;  /* pagination: ids greater than this; NULL: from the start */
    size_t limit;          /* at most this many (capped at 1000) */
};
/* Instances in id order, without transitions. *out is an array of *n
 * pointers, each freed with wf_record_free, the array with free(). A
 * limit of 0 asks for 100. */
int wf_journal_list(const struct wf_list_filter *f, struct wf_record ***out, size_t *n);

/* ---- ownership and upkeep ------------------------------------------------- */

/* Claims up to `limit` unfinished instances that are this replica's own or
 * whose owner's lease has lapsed, making this replica their owner with a
 * fresh lease; their ids go to *ids (an array of *n ids of WF_ID_LEN + 1
 * bytes; free()). At start this is how recovery finds its work. */
int wf_journal_claim(size_t limit, char (**ids)[WF_ID_LEN + 1], size_t *n);
/* The same, and also every unfinished instance of owner `from` whatever
 * its lease (NULL: none; -EINVAL over WF_OWNER_MAX bytes): a gateway
 * upgraded in place takes over what the one it replaced left unfinished
 * once that one has exited, without waiting for its leases to lapse. With
 * SQLite a claim takes every unfinished instance anyway. */
int wf_journal_claim_from(const char *from, size_t limit, char (**ids)[WF_ID_LEN + 1], size_t *n);
/* Renews this replica's lease on everything it owns (the journal process
 * does this itself every lease_ms / 3; exposed for tests). */
int wf_journal_renew(void);
/* Deletes terminal instances whose key expired before `now_ms`, and their
 * transitions, except those in state `failed` (terminal, with an answer,
 * but waiting for an operator); *purged gets how many. The journal process
 * runs it hourly. */
int wf_journal_purge(int64_t now_ms, size_t *purged);

/* ---- statistics (any thread) ---------------------------------------------- */
struct wf_journal_stats {
    uint64_t commits;       /* transactions committed */
    uint64_t writes;        /* creates and appends committed */
    uint64_t bytes;         /* bytes of records written */
    uint64_t commit_us_sum; /* total commit latency */
    uint64_t max_batch;     /* largest batch so far */
};
void wf_journal_stats(struct wf_journal_stats *out);

#endif
