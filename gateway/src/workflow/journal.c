/*
 * journal.c: the journal process (`wf_journal`, a gen_server) and the
 * wf_journal_* API over it (journal.h).
 *
 * The process owns the backend connection; nothing else touches it. A
 * writer sends its create or append as a call (a deep copy of the record in
 * the message) and parks until the reply, which comes once the write is
 * durable. Group commit: the process does not commit a write as it
 * arrives; it queues it and commits when its mailbox is empty (nothing
 * more to add) or the queue holds max_batch writes or
 * WF_JOURNAL_BATCH_BYTES of records. While a commit is in
 * flight the process is parked on the backend, so every write sent
 * meanwhile waits in the mailbox and goes into the next commit: the more
 * writers, the more writes per commit (per fsync), with no timer adding
 * latency when there is only one.
 *
 * Reads (get, find_key, list) and upkeep (claim, renew, purge) go through
 * the same process: the connection is single-threaded by design (SQLite's
 * one writer; one libpq connection), a read queued behind a commit waits
 * one commit at most, and a read made after a write was acknowledged sees
 * it. The process renews its leases every lease_ms / 3 and purges expired
 * keys hourly, on timers of its own.
 *
 * Statistics are relaxed atomics: each counter is read on its own by any
 * thread, and no reader relies on one counter's value to read another's.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "journal_int.h"
#include "rt/gen_server.h"

#define JOURNAL_NAME "wf_journal"
/* How long a caller waits for the journal's reply. A commit waits for the
 * disk (or PostgreSQL); past this the caller gets -ETIMEDOUT and does not
 * know whether the write landed, like a lost reply. */
#define JOURNAL_CALL_MS 30000
#define JOURNAL_PURGE_EVERY_MS (3600 * 1000)
#define JOURNAL_LEASE_DEFAULT_MS 15000
#define JOURNAL_BATCH_DEFAULT 512
/* One write's record (definition, input, detail, answer) is copied into a
 * message: a bound on what one write may carry (-E2BIG above it). */
#define JOURNAL_RECORD_MAX (16u << 20)

enum {
    M_CREATE = 1,
    M_APPEND,
    M_GET,
    M_FIND_KEY,
    M_LIST,
    M_CLAIM,
    M_RENEW,
    M_PURGE,
    M_TICK_RENEW, /* info, from the process's own timer */
    M_TICK_PURGE,
};

/* ---- statistics ------------------------------------------------------------------- */

/* Relaxed everywhere: independent counters (see the file comment). */
static _Atomic uint64_t st_commits, st_writes, st_bytes, st_commit_us, st_max_batch;

void wf_journal_stats(struct wf_journal_stats *out)
{
    out->commits = atomic_load_explicit(&st_commits, memory_order_relaxed);
    out->writes = atomic_load_explicit(&st_writes, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&st_bytes, memory_order_relaxed);
    out->commit_us_sum = atomic_load_explicit(&st_commit_us, memory_order_relaxed);
    out->max_batch = atomic_load_explicit(&st_max_batch, memory_order_relaxed);
}

static void stats_commit(size_t batch, size_t writes, size_t bytes, uint64_t us)
{
    atomic_fetch_add_explicit(&st_commits, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st_writes, writes, memory_order_relaxed);
    atomic_fetch_add_explicit(&st_bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&st_commit_us, us, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&st_max_batch, memory_order_relaxed);
    while (batch > m && !atomic_compare_exchange_weak_explicit(
                            &st_max_batch, &m, batch, memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---- records and copies ------------------------------------------------------------- */

void wf_record_free(struct wf_record *r)
{
    if (!r)
        return;
    free(r->def_name);
    free(r->def_text);
    free(r->input);
    free(r->scope);
    free(r->key);
    free(r->owner);
    free(r->state);
    free(r->answer_headers);
    free(r->answer_body);
    for (size_t i = 0; i < r->ntransitions; i++) {
        free(r->transitions[i].state);
        free(r->transitions[i].event);
        free(r->transitions[i].detail);
    }
    free(r->transitions);
    free(r);
}

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Copies len bytes and a NUL at *pos; returns the copy (NULL for NULL). */
static char *put(char **pos, const char *s, size_t len)
{
    if (!s)
        return NULL;
    char *d = *pos;
    memcpy(d, s, len);
    d[len] = '\0';
    *pos += len + 1;
    return d;
}

static char *put_str(char **pos, const char *s)
{
    return put(pos, s, s ? strlen(s) : 0);
}

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

size_t wf__create_size(const struct wf_create *c)
{
    return ALIGN16(sizeof(*c)) + str_size(c->def_name) + (c->def_text ? c->def_text_len + 1 : 0) +
           (c->input ? c->input_len + 1 : 0) + str_size(c->scope) + str_size(c->key) +
           str_size(c->state);
}

struct wf_create *wf__create_pack(const struct wf_create *c, void *buf)
{
    struct wf_create *d = buf;
    *d = *c;
    char *pos = (char *)buf + ALIGN16(sizeof(*c));
    d->def_name = put_str(&pos, c->def_name);
    d->def_text = put(&pos, c->def_text, c->def_text_len);
    d->input = put(&pos, c->input, c->input_len);
    d->scope = put_str(&pos, c->scope);
    d->key = put_str(&pos, c->key);
    d->state = put_str(&pos, c->state);
    return d;
}

size_t wf__transition_size(const struct wf_transition *t)
{
    return ALIGN16(sizeof(*t)) + str_size(t->id) + str_size(t->state) + str_size(t->event) +
           (t->detail ? t->detail_len + 1 : 0) + str_size(t->answer_headers) +
           (t->answer_body ? t->answer_body_len + 1 : 0);
}

struct wf_transition *wf__transition_pack(const struct wf_transition *t, void *buf)
{
    struct wf_transition *d = buf;
    *d = *t;
    char *pos = (char *)buf + ALIGN16(sizeof(*t));
    d->id = put_str(&pos, t->id);
    d->state = put_str(&pos, t->state);
    d->event = put_str(&pos, t->event);
    d->detail = put(&pos, t->detail, t->detail_len);
    d->answer_headers = put_str(&pos, t->answer_headers);
    d->answer_body = put(&pos, t->answer_body, t->answer_body_len);
    return d;
}

size_t wf__op_bytes(const struct wf_op *op)
{
    return op->kind == WF_OP_CREATE
               ? wf__create_size(op->create) - ALIGN16(sizeof(*op->create))
               : wf__transition_size(op->append) - ALIGN16(sizeof(*op->append));
}

/* ---- replies ------------------------------------------------------------------------ */

/* A reply's payload. What it points to belongs to the message until the
 * caller takes it; a reply dropped (the caller gave up) frees it in its
 * dtor. */
struct reply {
    int rc;
    struct wf_record *rec;
    struct wf_record **recs;
    size_t nrecs;
    char (*ids)[WF_ID_LEN + 1];
    size_t nids;
    size_t purged;
};

static void reply_dtor(struct rt_msg *m)
{
    struct reply *p = (struct reply *)m->data;
    wf_record_free(p->rec);
    for (size_t i = 0; i < p->nrecs; i++)
        wf_record_free(p->recs[i]);
    free(p->recs);
    free(p->ids);
}

static struct rt_msg *reply_new(int rc)
{
    struct rt_msg *m = rt_msg_new(0, sizeof(struct reply));
    if (!m)
        return NULL;
    m->dtor = reply_dtor;
    ((struct reply *)m->data)->rc = rc;
    return m;
}

/* ---- the process ---------------------------------------------------------------------- */

struct pending {
    struct rt_msg *req; /* held by the journal process */
    struct rt_gs_from from;
};

/* The journal process's state (rt_alloc'd: its memory, freed with it). */
struct journal {
    const struct wf_backend_ops *be;
    void *b;
    char *owner;
    uint32_t lease_ms, max_batch;
    struct pending *pend; /* max_batch slots */
    struct wf_op *ops;    /* max_batch slots, for the commit */
    size_t npend;
    size_t pend_bytes; /* the queued writes' payloads (WF_JOURNAL_BATCH_BYTES) */
};

struct start_arg {
    const struct wf_journal_config *cfg;
    int err; /* the reason init failed, for the starter */
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct wf_backend_ops *backend_for(enum wf_backend which)
{
    switch (which) {
    case WF_BACKEND_SQLITE:
        return &wf_backend_sqlite;
    case WF_BACKEND_POSTGRES:
        return &wf_backend_postgres;
    }
    return NULL;
}

static void tick_after(uint32_t type, uint64_t ms)
{
    struct rt_msg *m = rt_msg_new(type, 0);
    if (m)
        rt_send_after(rt_self(), ms, m, NULL);
}

static uint32_t renew_every(const struct journal *j)
{
    return j->lease_ms / 3 ? j->lease_ms / 3 : 1;
}

static void j_init(void *arg, struct rt_gs_result *r)
{
    struct start_arg *sa = arg;
    const struct wf_journal_config *cfg = sa->cfg;
    struct journal *j = rt_calloc(1, sizeof(*j));
    int e = -ENOMEM;
    if (!j)
        goto fail;
    j->be = backend_for(cfg->backend);
    if (!j->be) {
        rt_log(RT_LOG_ERROR, "workflow journal: backend %d is not built in", (int)cfg->backend);
        e = -ENOTSUP;
        goto fail;
    }
    if (!cfg->owner || !*cfg->owner) {
        e = -EINVAL;
        goto fail;
    }
    j->lease_ms = cfg->lease_ms ? cfg->lease_ms : JOURNAL_LEASE_DEFAULT_MS;
    j->max_batch = cfg->max_batch ? cfg->max_batch : JOURNAL_BATCH_DEFAULT;
    if (!(j->owner = rt_strdup(cfg->owner)) ||
        !(j->pend = rt_calloc(j->max_batch, sizeof(*j->pend))) ||
        !(j->ops = rt_calloc(j->max_batch, sizeof(*j->ops))))
        goto fail;
    if ((e = j->be->open(cfg, &j->b)))
        goto fail;
    /* Trapping exits: the supervisor's shutdown runs terminate, which
     * commits what is queued and closes the backend. */
    rt_trap_exit(true);
    rt_set_state_name("idle");
    tick_after(M_TICK_RENEW, renew_every(j));
    tick_after(M_TICK_PURGE, JOURNAL_PURGE_EVERY_MS);
    r->state = j;
    rt_gs_ok(r);
    return;
fail:
    sa->err = e;
    rt_gs_error(r, rt_atom_intern("journal_open_failed"));
}

/* Commits every queued write in one backend commit and answers each. */
static void flush(struct journal *j)
{
    size_t n = j->npend;
    if (!n)
        return;
    for (size_t i = 0; i < n; i++) {
        struct rt_msg *m = j->pend[i].req;
        struct wf_op *op = &j->ops[i];
        memset(op, 0, sizeof(*op));
        if (m->type == M_CREATE) {
            op->kind = WF_OP_CREATE;
            op->create = (const struct wf_create *)m->data;
        } else {
            op->kind = WF_OP_APPEND;
            op->append = (const struct wf_transition *)m->data;
        }
    }
    rt_set_state_name("committing");
    uint64_t t0 = rt_now_ns();
    int e = j->be->commit(j->b, j->ops, n, j->owner, wall_ms(), j->lease_ms);
    uint64_t us = (rt_now_ns() - t0) / 1000;
    rt_set_state_name("idle");
    size_t writes = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        struct wf_op *op = &j->ops[i];
        if (e) {
            /* The transaction failed as a whole: nothing of it is written. */
            wf_record_free(op->existing);
            op->existing = NULL;
            op->result = -EIO;
        } else if (op->result == 0) {
            writes++;
            bytes += wf__op_bytes(op);
        }
    }
    /* Counted before any writer hears of its write: one that has its
     * answer finds it in the statistics. */
    if (!e)
        stats_commit(n, writes, bytes, us);
    for (size_t i = 0; i < n; i++) {
        struct wf_op *op = &j->ops[i];
        struct rt_msg *rep = reply_new(op->result);
        if (rep) {
            ((struct reply *)rep->data)->rec = op->existing;
            rt_gen_server_reply(&j->pend[i].from, rep);
        } else {
            /* The caller times out: it cannot be told, as with a lost reply. */
            wf_record_free(op->existing);
        }
        op->existing = NULL;
        rt_msg_free(j->pend[i].req);
        j->pend[i].req = NULL;
    }
    j->npend = 0;
    j->pend_bytes = 0;
}

/* After every message: commit when nothing more is waiting to join the
 * batch; else come back (timeout 0) once the mailbox is empty, also when
 * what is left are sys messages the loop answers itself. */
static void settle(struct journal *j, struct rt_gs_result *r)
{
    if (!j->npend)
        return;
    if (j->npend >= j->max_batch || j->pend_bytes >= WF_JOURNAL_BATCH_BYTES ||
        rt_mailbox_len() == 0)
        flush(j);
    else
        rt_gs_timeout(r, 0);
}

static void reply_now(struct rt_gs_result *r, struct rt_msg *rep, int fallback)
{
    if (!rep)
        rep = reply_new(fallback);
    rt_gs_reply(r, rep); /* NULL when out of memory: the caller sees -ENOMEM */
}

static void j_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                   struct rt_gs_result *r)
{
    struct journal *j = state;
    struct rt_msg *rep = NULL;
    int e = 0;
    switch (req->type) {
    case M_CREATE:
    case M_APPEND:
        j->pend[j->npend].req = rt_gs_take(r);
        j->pend[j->npend].from = *from;
        j->pend_bytes += j->pend[j->npend].req->size;
        j->npend++;
        rt_gs_noreply(r);
        settle(j, r);
        return;
    case M_GET: {
        bool with = req->u64 != 0;
        struct wf_record *rec = NULL;
        e = j->be->get(j->b, (const char *)req->data, with, &rec);
        if ((rep = reply_new(e)))
            ((struct reply *)rep->data)->rec = rec;
        else
            wf_record_free(rec);
        break;
    }
    case M_FIND_KEY: {
        const char *scope = (const char *)req->data;
        const char *key = scope + strlen(scope) + 1;
        struct wf_record *rec = NULL;
        e = j->be->find_key(j->b, scope, key, wall_ms(), &rec);
        if ((rep = reply_new(e)))
            ((struct reply *)rep->data)->rec = rec;
        else
            wf_record_free(rec);
        break;
    }
    case M_LIST: {
        struct wf_list_filter *f = (struct wf_list_filter *)req->data;
        struct wf_record **recs = NULL;
        size_t n = 0;
        e = j->be->list(j->b, f, &recs, &n);
        if ((rep = reply_new(e))) {
            ((struct reply *)rep->data)->recs = recs;
            ((struct reply *)rep->data)->nrecs = n;
        } else {
            for (size_t i = 0; i < n; i++)
                wf_record_free(recs[i]);
            free(recs);
        }
        break;
    }
    case M_CLAIM: {
        char(*ids)[WF_ID_LEN + 1] = NULL;
        size_t n = 0;
        const char *other = req->size > 1 ? (const char *)req->data : NULL;
        e = j->be->claim(j->b, j->owner, other, wall_ms(), j->lease_ms, (size_t)req->u64, &ids, &n);
        if ((rep = reply_new(e))) {
            ((struct reply *)rep->data)->ids = ids;
            ((struct reply *)rep->data)->nids = n;
        } else {
            free(ids);
        }
        break;
    }
    case M_RENEW:
        rep = reply_new(j->be->renew(j->b, j->owner, wall_ms(), j->lease_ms));
        break;
    case M_PURGE: {
        size_t purged = 0;
        e = j->be->purge(j->b, (int64_t)req->u64, &purged);
        if ((rep = reply_new(e)))
            ((struct reply *)rep->data)->purged = purged;
        break;
    }
    default:
        rep = reply_new(-EINVAL);
        break;
    }
    reply_now(r, rep, -ENOMEM);
    settle(j, r);
}

static void j_info(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    struct journal *j = state;
    switch (msg->type) {
    case M_TICK_RENEW: {
        int e = j->be->renew(j->b, j->owner, wall_ms(), j->lease_ms);
        if (e)
            rt_log(RT_LOG_WARNING, "workflow journal: lease renewal failed: %s", strerror(-e));
        tick_after(M_TICK_RENEW, renew_every(j));
        break;
    }
    case M_TICK_PURGE: {
        size_t purged = 0;
        int e = j->be->purge(j->b, wall_ms(), &purged);
        if (e)
            rt_log(RT_LOG_WARNING, "workflow journal: purge failed: %s", strerror(-e));
        else if (purged)
            rt_log(RT_LOG_INFO, "workflow journal: purged %zu expired instances", purged);
        tick_after(M_TICK_PURGE, JOURNAL_PURGE_EVERY_MS);
        break;
    }
    default:
        break; /* the timeout that asked for a flush; EXITs of other links */
    }
    settle(j, r);
}

static void j_terminate(rt_atom reason, void *state)
{
    (void)reason;
    struct journal *j = state;
    /* What is queued was sent by callers that still wait: commit it. */
    flush(j);
    j->be->close(j->b);
    j->b = NULL;
}

static size_t j_format(const void *state, char *buf, size_t cap)
{
    const struct journal *j = state;
    int n = snprintf(buf, cap, "wf_journal backend=%s owner=%s queued=%zu", j->be->name, j->owner,
                     j->npend);
    return n < 0 ? 0 : (size_t)n;
}

static const struct rt_gen_server_ops journal_ops = {
    .name = "wf_journal",
    .init = j_init,
    .handle_call = j_call,
    .handle_info = j_info,
    .terminate = j_terminate,
    .format_status = j_format,
};

static int start(const struct wf_journal_config *cfg, rt_pid *out, rt_atom *reason)
{
    struct start_arg sa = {.cfg = cfg, .err = 0};
    struct rt_start_opts opts = {.name = JOURNAL_NAME, .initial_call = "wf_journal:init/1"};
    rt_atom why = RT_UNDEFINED;
    int e = rt_gen_server_start_link(&journal_ops, &sa, &opts, out, &why);
    if (reason)
        *reason = why;
    if (e == -ECHILD && sa.err)
        e = sa.err;
    return e;
}

int wf_journal_start_link(const struct wf_journal_config *cfg, rt_pid *out)
{
    return start(cfg, out, NULL);
}

int wf_journal_child_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                           rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    return start(arg, out, reason);
}

/* ---- the callers' side -------------------------------------------------------------------- */

/* Calls the journal; 0 with the reply's payload copied to *out (which
 * then owns what it points to), or a negative errno. */
static int call(struct rt_msg *req, struct reply *out)
{
    if (!req)
        return -ENOMEM;
    struct rt_msg *rep = NULL;
    int e = rt_gen_server_call_name(JOURNAL_NAME, req, JOURNAL_CALL_MS, &rep, NULL);
    if (e == -ETIMEDOUT)
        return e;
    if (e)
        return -EIO; /* not running, or it stopped before answering */
    if (!rep)
        return -ENOMEM;
    *out = *(struct reply *)rep->data;
    rt_msg_free(rep); /* no dtor: *out owns the pointers */
    return out->rc;
}

static bool valid_id(const char *id)
{
    if (!id || strlen(id) != WF_ID_LEN)
        return false;
    for (const char *p = id; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

static bool valid_state(const char *s)
{
    return s && *s && strlen(s) <= WF_STATE_MAX;
}

int wf_journal_create(const struct wf_create *c, struct wf_record **existing)
{
    if (!valid_id(c->id) || !c->def_name || !c->def_text || !c->input || !valid_state(c->state))
        return -EINVAL;
    if (c->scope && (!c->key || !*c->scope || !*c->key || strlen(c->scope) > WF_SCOPE_MAX ||
                     strlen(c->key) > WF_KEY_MAX))
        return -EINVAL;
    size_t size = wf__create_size(c);
    if (size > JOURNAL_RECORD_MAX)
        return -E2BIG;
    struct rt_msg *m = rt_msg_new(M_CREATE, size);
    if (!m)
        return -ENOMEM;
    wf__create_pack(c, m->data);
    struct reply rep = {0};
    int e = call(m, &rep);
    if (e == -EEXIST && existing) {
        *existing = rep.rec;
        rep.rec = NULL;
    }
    wf_record_free(rep.rec);
    return e;
}

int wf_journal_append(const struct wf_transition *t)
{
    if (!valid_id(t->id) || t->seq == 0 || !valid_state(t->state) || !t->event)
        return -EINVAL;
    size_t size = wf__transition_size(t);
    if (size > JOURNAL_RECORD_MAX)
        return -E2BIG;
    struct rt_msg *m = rt_msg_new(M_APPEND, size);
    if (!m)
        return -ENOMEM;
    wf__transition_pack(t, m->data);
    struct reply rep = {0};
    return call(m, &rep);
}

int wf_journal_get(const char *id, bool with_transitions, struct wf_record **out)
{
    if (!valid_id(id))
        return -ENOENT;
    struct rt_msg *m = rt_msg_copy(M_GET, id, WF_ID_LEN + 1);
    if (m)
        m->u64 = with_transitions;
    struct reply rep = {0};
    int e = call(m, &rep);
    if (!e)
        *out = rep.rec;
    else
        wf_record_free(rep.rec);
    return e;
}

int wf_journal_find_key(const char *scope, const char *key, struct wf_record **out)
{
    if (!scope || !key)
        return -EINVAL;
    size_t ls = strlen(scope), lk = strlen(key);
    if (ls > WF_SCOPE_MAX || lk > WF_KEY_MAX)
        return -ENOENT; /* no such key can have been stored */
    struct rt_msg *m = rt_msg_new(M_FIND_KEY, ls + lk + 2);
    if (m) {
        memcpy(m->data, scope, ls + 1);
        memcpy(m->data + ls + 1, key, lk + 1);
    }
    struct reply rep = {0};
    int e = call(m, &rep);
    if (!e)
        *out = rep.rec;
    else
        wf_record_free(rep.rec);
    return e;
}

int wf_journal_list(const struct wf_list_filter *f, struct wf_record ***out, size_t *n)
{
    const char *strs[3] = {f->def_name, f->state, f->after_id};
    size_t size = ALIGN16(sizeof(*f));
    for (int i = 0; i < 3; i++) {
        if (strs[i] && strlen(strs[i]) > WF_SCOPE_MAX)
            return -EINVAL;
        size += str_size(strs[i]);
    }
    struct rt_msg *m = rt_msg_new(M_LIST, size);
    if (m) {
        struct wf_list_filter *d = (struct wf_list_filter *)m->data;
        *d = *f;
        char *pos = (char *)m->data + ALIGN16(sizeof(*f));
        d->def_name = put_str(&pos, f->def_name);
        d->state = put_str(&pos, f->state);
        d->after_id = put_str(&pos, f->after_id);
    }
    struct reply rep = {0};
    int e = call(m, &rep);
    if (!e) {
        *out = rep.recs;
        *n = rep.nrecs;
    }
    return e;
}

int wf_journal_claim(size_t limit, char (**ids)[WF_ID_LEN + 1], size_t *n)
{
    return wf_journal_claim_from(NULL, limit, ids, n);
}

int wf_journal_claim_from(const char *from, size_t limit, char (**ids)[WF_ID_LEN + 1], size_t *n)
{
    size_t lf = from ? strlen(from) : 0;
    if (lf > WF_OWNER_MAX)
        return -EINVAL;
    struct rt_msg *m = rt_msg_new(M_CLAIM, lf ? lf + 1 : 0);
    if (m) {
        m->u64 = limit;
        if (lf)
            memcpy(m->data, from, lf + 1);
    }
    struct reply rep = {0};
    int e = call(m, &rep);
    if (!e) {
        *ids = rep.ids;
        *n = rep.nids;
    }
    return e;
}

int wf_journal_renew(void)
{
    struct reply rep = {0};
    return call(rt_msg_new(M_RENEW, 0), &rep);
}

int wf_journal_purge(int64_t now_ms, size_t *purged)
{
    struct rt_msg *m = rt_msg_new(M_PURGE, 0);
    if (m)
        m->u64 = (uint64_t)now_ms;
    struct reply rep = {0};
    int e = call(m, &rep);
    if (!e)
        *purged = rep.purged;
    return e;
}
