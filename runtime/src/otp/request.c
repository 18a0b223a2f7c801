/*
 * request.c: asynchronous calls (OTP 23+ gen_server:send_request and its
 * wait/receive/check_response, OTP 25's request id collections).
 *
 * A request is rt__call cut in two: send_request takes a receive mark,
 * monitors the server, activates an alias and sends the call; collecting
 * the response is the second half. Until then the request holds the
 * monitor and the alias (so the caller may have RT_MAX_ALIASES requests in
 * flight). Every response is either a message to the alias (the reply) or
 * the monitor's DOWN (the error), and both can only arrive after the mark:
 * the waits scan from it, so their cost does not depend on what the caller
 * had queued before.
 *
 * Abandoning (receive_response's timeout) deactivates the alias before
 * anything else, so a reply sent later is dropped by the runtime on
 * arrival; one that was already queued is still taken, as OTP's
 * receive_response does.
 *
 * A collection keeps its requests sorted by alias. A process makes its
 * refs in increasing order and makes a request's monitor just before its
 * alias, so the same order sorts the monitor refs: both kinds of response
 * are found by binary search.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "otp_int.h"
#include "rt/gen_server.h"

int rt_gen_server_send_request(rt_pid server, struct rt_msg *req, struct rt_gs_request *out)
{
    if (!req || !out) {
        rt_msg_free(req);
        return -EINVAL;
    }
    if (req->type >= RT_GS_TYPE_LIMIT) {
        rt_msg_free(req);
        return -EINVAL;
    }
    struct rt_gs_request r = {.server = server, .mark = rt_receive_mark()};
    /* A dead server (or none: pid 0) answers with the monitor's noproc
     * DOWN, as OTP's send_request does not fail. */
    r.mref = rt_monitor(server);
    if (!r.mref) {
        rt_msg_free(req);
        return -ENOMEM;
    }
    r.alias = rt_alias();
    if (!r.alias) {
        rt__demonitor_flush(r.mark, r.mref);
        rt_msg_free(req);
        return -EAGAIN;
    }
    req->type |= RT_GS_CALL_BIT;
    req->ref = r.alias;
    rt_send(server, req);
    *out = r;
    return 0;
}

int rt_gen_server_send_request_name(const char *name, struct rt_msg *req, struct rt_gs_request *out)
{
    return rt_gen_server_send_request(rt_whereis(name), req, out);
}

/* ---- one request --------------------------------------------------------------- */

static bool is_reply(const struct rt_gs_request *r, const struct rt_msg *m)
{
    return m->ref == r->alias && m->type != RT_MSG_DOWN;
}

static bool is_down(const struct rt_gs_request *r, const struct rt_msg *m)
{
    return m->type == RT_MSG_DOWN && m->ref == r->mref;
}

static bool match_request(const struct rt_msg *m, void *ctx)
{
    const struct rt_gs_request *r = ctx;
    return is_reply(r, m) || is_down(r, m);
}

/* `m` is the response to `r` (its reply or its DOWN): ends the request and
 * returns the result. Takes m. */
static int complete(struct rt_gs_request *r, struct rt_msg *m, struct rt_msg **reply,
                    rt_atom *reason)
{
    r->done = true;
    if (is_down(r, m)) {
        /* The monitor fired and is gone; no reply can follow the DOWN. */
        rt_atom why = (rt_atom)m->u64;
        rt_msg_free(m);
        rt_unalias(r->alias);
        if (reason)
            *reason = why;
        return why == RT_NOPROC ? -ESRCH : -ECONNRESET;
    }
    rt_unalias(r->alias);
    rt__demonitor_flush(r->mark, r->mref);
    if (m->type == RT__MSG_NULL_REPLY || !reply) {
        rt_msg_free(m);
        m = NULL;
    }
    if (reply)
        *reply = m;
    return 0;
}

/* Gives up `r`: no reply can reach the mailbox afterwards. Returns a reply
 * that was already queued, or NULL. */
static struct rt_msg *abandon(struct rt_gs_request *r)
{
    r->done = true;
    /* Deactivated first, so that a reply sent from now on is dropped. */
    rt_unalias(r->alias);
    rt__demonitor_flush(r->mark, r->mref);
    struct rt_gs_request q = *r;
    q.mref = 0; /* the reply only: a DOWN that raced in was flushed above */
    return rt_receive_match_since(q.mark, match_request, &q, 0);
}

static int wait(struct rt_gs_request *r, int64_t timeout_ms, bool abandon_on_timeout,
                struct rt_msg **reply, rt_atom *reason)
{
    if (!r || r->done)
        return -EINVAL;
    struct rt_msg *m = rt_receive_match_since(r->mark, match_request, r, timeout_ms);
    if (m)
        return complete(r, m, reply, reason);
    if (!abandon_on_timeout)
        return -ETIMEDOUT;
    m = abandon(r);
    if (!m)
        return -ETIMEDOUT;
    r->done = false;
    return complete(r, m, reply, reason);
}

int rt_gen_server_wait_response(struct rt_gs_request *req, int64_t timeout_ms,
                                struct rt_msg **reply, rt_atom *reason)
{
    return wait(req, timeout_ms, false, reply, reason);
}

int rt_gen_server_receive_response(struct rt_gs_request *req, int64_t timeout_ms,
                                   struct rt_msg **reply, rt_atom *reason)
{
    return wait(req, timeout_ms, true, reply, reason);
}

int rt_gen_server_check_response(struct rt_msg *m, struct rt_gs_request *req, struct rt_msg **reply,
                                 rt_atom *reason)
{
    if (!req || req->done)
        return -EINVAL;
    if (!m || !match_request(m, req))
        return -ENOMSG;
    return complete(req, m, reply, reason);
}

/* ---- collections ----------------------------------------------------------------- */

void rt_gs_reqids_init(struct rt_gs_reqids *c)
{
    memset(c, 0, sizeof *c);
}

size_t rt_gs_reqids_size(const struct rt_gs_reqids *c)
{
    return c->n;
}

/* Index of the first entry whose ref (alias, or monitor with `by_mref`) is
 * ≥ ref. */
static size_t lower(const struct rt_gs_reqids *c, rt_ref ref, bool by_mref)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        rt_ref k = by_mref ? c->v[mid].req.mref : c->v[mid].req.alias;
        if (k < ref)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int rt_gs_reqids_add(struct rt_gs_reqids *c, const struct rt_gs_request *req, uint64_t label)
{
    if (!c || !req || req->done)
        return -EINVAL;
    size_t i = lower(c, req->alias, false);
    if (i < c->n && c->v[i].req.alias == req->alias)
        return -EEXIST;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct rt_gs_reqid *v = rt_realloc(c->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    memmove(&c->v[i + 1], &c->v[i], (c->n - i) * sizeof c->v[0]);
    c->v[i] = (struct rt_gs_reqid){.req = *req, .label = label};
    c->n++;
    return 0;
}

void rt_gs_reqids_done(struct rt_gs_reqids *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        if (!c->v[i].req.done)
            rt_msg_free(abandon(&c->v[i].req));
    rt_free(c->v);
    memset(c, 0, sizeof *c);
}

/* The waiting entry `m` answers, or NULL. */
static struct rt_gs_reqid *entry_of(const struct rt_gs_reqids *c, const struct rt_msg *m)
{
    bool down = m->type == RT_MSG_DOWN;
    size_t i = lower(c, m->ref, down);
    if (i == c->n)
        return NULL;
    struct rt_gs_reqid *e = &c->v[i];
    if (e->req.done || (down ? e->req.mref : e->req.alias) != m->ref)
        return NULL;
    return e;
}

static bool match_any(const struct rt_msg *m, void *ctx)
{
    return entry_of(ctx, m) != NULL;
}

/* The earliest mark of a waiting request: the responses of all of them
 * arrive after it. false when none waits. */
static bool first_mark(const struct rt_gs_reqids *c, rt_mark *mark)
{
    bool any = false;
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].req.done)
            continue;
        if (!any || c->v[i].req.mark < *mark)
            *mark = c->v[i].req.mark;
        any = true;
    }
    return any;
}

static int complete_any(struct rt_gs_reqids *c, struct rt_gs_reqid *e, struct rt_msg *m,
                        bool remove, struct rt_msg **reply, rt_atom *reason, uint64_t *label)
{
    int rc = complete(&e->req, m, reply, reason);
    if (label)
        *label = e->label;
    if (remove) {
        size_t i = (size_t)(e - c->v);
        memmove(&c->v[i], &c->v[i + 1], (c->n - i - 1) * sizeof c->v[0]);
        c->n--;
    }
    return rc;
}

static int wait_any(struct rt_gs_reqids *c, int64_t timeout_ms, bool abandon_on_timeout,
                    bool remove, struct rt_msg **reply, rt_atom *reason, uint64_t *label)
{
    rt_mark mark = 0;
    if (!c || !first_mark(c, &mark))
        return -ENOENT;
    struct rt_msg *m = rt_receive_match_since(mark, match_any, c, timeout_ms);
    if (m)
        return complete_any(c, entry_of(c, m), m, remove, reply, reason, label);
    if (!abandon_on_timeout)
        return -ETIMEDOUT;
    /* OTP abandons them all and flushes their replies: every request in
     * the collection is done. */
    for (size_t i = 0; i < c->n; i++)
        if (!c->v[i].req.done)
            rt_msg_free(abandon(&c->v[i].req));
    return -ETIMEDOUT;
}

int rt_gen_server_wait_response_any(struct rt_gs_reqids *c, int64_t timeout_ms, bool remove,
                                    struct rt_msg **reply, rt_atom *reason, uint64_t *label)
{
    return wait_any(c, timeout_ms, false, remove, reply, reason, label);
}

int rt_gen_server_receive_response_any(struct rt_gs_reqids *c, int64_t timeout_ms, bool remove,
                                       struct rt_msg **reply, rt_atom *reason, uint64_t *label)
{
    return wait_any(c, timeout_ms, true, remove, reply, reason, label);
}

int rt_gen_server_check_response_any(struct rt_msg *m, struct rt_gs_reqids *c, bool remove,
                                     struct rt_msg **reply, rt_atom *reason, uint64_t *label)
{
    rt_mark mark = 0;
    if (!c || !first_mark(c, &mark))
        return -ENOENT;
    struct rt_gs_reqid *e = m ? entry_of(c, m) : NULL;
    if (!e)
        return -ENOMSG;
    return complete_any(c, e, m, remove, reply, reason, label);
}
