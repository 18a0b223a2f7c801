/*
 * journal_int.h: between the journal process (journal.c: the wf_journal_*
 * API, batching, group commit, lease renewal, purge) and its backends
 * (journal_sqlite.c, journal_pg.c).
 *
 * A backend is a set of functions over its own connection, called only
 * from the journal process, one call at a time. Its state belongs to the
 * process that opened it: when that process ends without close() (killed
 * mid-commit, say), a deferred cleanup of that process releases the
 * connection, at once or, for work still running on a blocking thread,
 * when that work ends. Each runs in process
 * context and may park: the SQLite backend does its work on the blocking
 * pool (rt_blocking), the PostgreSQL backend drives libpq non-blocking and
 * parks on its socket (rt_wait_fd-style waits with timeouts). None may
 * block a scheduler thread.
 *
 * commit() is the group commit: it writes a batch of operations in ONE
 * transaction and sets each op's own result (0, -EEXIST for a taken key,
 * an existing seq or an existing id, -ESTALE for an instance another owner
 * holds, -ENOENT for an append to an unknown instance); a refused op
 * leaves nothing written, the others commit; a failure
 * of the transaction as a whole returns a negative errno and leaves no op
 * written (the journal process then fails every op of the batch with -EIO).
 */
#ifndef GW_WORKFLOW_JOURNAL_INT_H
#define GW_WORKFLOW_JOURNAL_INT_H

#include "journal.h"

enum wf_op_kind {
    WF_OP_CREATE = 0,
    WF_OP_APPEND,
};

struct wf_op {
    enum wf_op_kind kind;
    const struct wf_create *create;     /* WF_OP_CREATE */
    const struct wf_transition *append; /* WF_OP_APPEND */
    int result;                         /* set by commit */
    struct wf_record *existing;         /* CREATE with -EEXIST: the holder (backend allocates) */
};

struct wf_backend_ops {
    const char *name; /* "sqlite", "postgres" */
    /* Opens and creates the schema if missing. *out is the backend's state. */
    int (*open)(const struct wf_journal_config *cfg, void **out);
    void (*close)(void *b);
    int (*commit)(void *b, struct wf_op *ops, size_t n, const char *owner, int64_t now_ms,
                  uint32_t lease_ms);
    int (*get)(void *b, const char *id, bool with_transitions, struct wf_record **out);
    int (*find_key)(void *b, const char *scope, const char *key, int64_t now_ms,
                    struct wf_record **out);
    int (*list)(void *b, const struct wf_list_filter *f, struct wf_record ***out, size_t *n);
    /* from: another owner whose unfinished instances are taken whatever
     * their lease (NULL: none). */
    int (*claim)(void *b, const char *owner, const char *from, int64_t now_ms, uint32_t lease_ms,
                 size_t limit, char (**ids)[WF_ID_LEN + 1], size_t *n);
    int (*renew)(void *b, const char *owner, int64_t now_ms, uint32_t lease_ms);
    int (*purge)(void *b, int64_t now_ms, size_t *purged);
};

extern const struct wf_backend_ops wf_backend_sqlite;
extern const struct wf_backend_ops wf_backend_postgres;

/* ---- helpers for journal.c and the backends (journal.c) ------------------- */

/* Deep copies in one allocation: wf__create_size(c) bytes at `buf` (16-byte
 * aligned) receive a struct wf_create whose strings point into `buf`
 * itself, so the copy moves as one block (a message payload, a backend's
 * job) and is freed as one. NULL strings stay NULL. */
size_t wf__create_size(const struct wf_create *c);
struct wf_create *wf__create_pack(const struct wf_create *c, void *buf);
size_t wf__transition_size(const struct wf_transition *t);
struct wf_transition *wf__transition_pack(const struct wf_transition *t, void *buf);
/* The bytes a write puts in the journal (for the statistics). */
size_t wf__op_bytes(const struct wf_op *op);

#endif
