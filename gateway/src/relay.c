/*
 * relay.c: one upstream attempt and its streaming, in the request process.
 *
 * Memory is bounded whatever the body sizes: the request body streams from
 * the client buffer to the upstream piece by piece (after the pre-read
 * start, at most GW__PREREAD_CAP bytes), the response from a read buffer
 * (GW__RELAY_FIRST bytes, GW__RELAY_BUF once a read fills it) to the
 * client. The pre-read buffers of all requests together are bounded too
 * (body_buffer_bytes): each grows with the bytes it holds, is charged to
 * one gateway-wide budget, and is given back as soon as the body streams
 * on, or the client has the answer's head (or the process ends). Without
 * it, many clients trickling bodies would each pin a full buffer.
 *
 * A response goes through explicit states (enum relay_state): nothing
 * read, a head awaited (interim 1xx heads are skipped: the gateway answered
 * 100-continue itself), the client's head decided but held back (it leaves
 * with the first body piece or the end, one write for a small response),
 * streaming, then done or failed. Whether a failure can still be answered
 * with an error, or costs the client connection, follows from the state:
 * an answer is possible while the client has seen no byte.
 *
 * Body pieces are framed in one place (frame_piece, frame_last) whichever
 * way they go: the request body to the upstream and the response body to
 * the client. A message ends in one place (write_end).
 *
 * An upstream connection is reusable only after a complete, well-formed
 * response that allows keep-alive and nothing read past it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "relay.h"

/* The framing bytes around one body piece: the chunk-size line before and
 * the CRLF after (or the last chunk). */
struct chunk_frame {
    char pre[24];
    char post[8];
};

/* Appends the iovecs of one piece of `n` bytes (n > 0) at `iov`: the bytes
 * as they are, or as one chunk. Returns how many (1 or 3). */
static int frame_piece(bool chunked, const char *d, size_t n, struct chunk_frame *f,
                       struct iovec *iov)
{
    if (!chunked) {
        iov[0] = (struct iovec){(void *)d, n};
        return 1;
    }
    int a = gw_http_chunk_start(n, f->pre, sizeof f->pre);
    int b = gw_http_chunk_end(f->post, sizeof f->post);
    iov[0] = (struct iovec){f->pre, (size_t)a};
    iov[1] = (struct iovec){(void *)d, n};
    iov[2] = (struct iovec){f->post, (size_t)b};
    return 3;
}

/* Appends the end of a body at `iov`: the last chunk when chunked, nothing
 * otherwise. Returns how many iovecs (0 or 1). */
static int frame_last(bool chunked, struct chunk_frame *f, struct iovec *iov)
{
    if (!chunked)
        return 0;
    int a = gw_http_chunk_last(f->post, sizeof f->post);
    iov[0] = (struct iovec){f->post, (size_t)a};
    return 1;
}

static void report(struct gw__relay *r, bool ok, const char *what)
{
    r->ops.report(r->ops.ctx, ok, what);
}

/* The pre-read buffers of all requests together, against body_buffer_bytes:
 * what is held now and the most allowed. Relaxed: a counter and a limit,
 * ordering nothing else. */
static _Atomic uint64_t preread_held;
static _Atomic uint64_t preread_limit = GW__BODY_BUFFER_DEFAULT;

void gw__preread_budget_set(uint64_t bytes)
{
    atomic_store_explicit(&preread_limit, bytes, memory_order_relaxed);
}

uint64_t gw__preread_held(void)
{
    return atomic_load_explicit(&preread_held, memory_order_relaxed);
}

static bool budget_take(uint64_t n)
{
    uint64_t limit = atomic_load_explicit(&preread_limit, memory_order_relaxed);
    uint64_t cur = atomic_load_explicit(&preread_held, memory_order_relaxed);
    do {
        if (n > limit || cur > limit - n)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&preread_held, &cur, cur + n,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

/* A request's pre-read buffer and what it is charged. rt_alloc'd, so that
 * the deferred uncharge can still read it when the process is killed. */
struct gw__preread {
    char *buf;
    size_t cap;     /* bytes of buf, all charged to the budget */
    uint64_t guard; /* gives the charge back however the process ends */
};

static void preread_uncharge(void *arg)
{
    struct gw__preread *p = arg;
    atomic_fetch_sub_explicit(&preread_held, p->cap, memory_order_relaxed);
    p->cap = 0;
}

/* Room for `need` bytes in the pre-read buffer: it grows by doubling from
 * GW__PREREAD_MIN up to GW__PREREAD_CAP, so a body trickled a few bytes at
 * a time holds a few KiB, not the whole cap. 0, -EBUSY (the budget is
 * spent) or -ENOMEM. */
static int preread_room(struct gw__relay *r, size_t need)
{
    struct gw__preread *p = r->hold;
    if (!p) {
        p = rt_calloc(1, sizeof(*p));
        if (!p)
            return -ENOMEM;
        p->guard = rt_defer(preread_uncharge, p);
        if (!p->guard) {
            rt_free(p);
            return -ENOMEM;
        }
        r->hold = p;
    }
    if (need <= p->cap)
        return 0;
    size_t cap = p->cap ? p->cap : GW__PREREAD_MIN;
    while (cap < need)
        cap *= 2;
    if (cap > GW__PREREAD_CAP)
        cap = GW__PREREAD_CAP; /* need never exceeds it: see the pre-read loop */
    if (!budget_take(cap - p->cap))
        return -EBUSY;
    char *nb = rt_realloc(p->buf, cap);
    if (!nb) {
        atomic_fetch_sub_explicit(&preread_held, cap - p->cap, memory_order_relaxed);
        return -ENOMEM;
    }
    p->buf = nb;
    p->cap = cap;
    return 0;
}

void gw__relay_preread_release(struct gw__relay *r)
{
    struct gw__preread *p = r->hold;
    if (!p)
        return;
    rt_undefer(p->guard, true);
    rt_free(p->buf);
    rt_free(p);
    r->hold = NULL;
    r->pre = NULL;
    r->pre_len = 0;
}

int gw__relay_preread(struct gw__relay *r)
{
    struct gw__exchange *ex = r->ex;
    r->pre = NULL;
    r->pre_len = 0;
    r->pre_complete = false;
    if (ex->head->framing == GW_HTTP_BODY_NONE) {
        r->pre_complete = true;
        return 0;
    }
    if (gw__ex_continue(ex) < 0)
        return 400;
    size_t len = 0;
    while (len < GW__PREREAD) { /* stops past GW__PREREAD, within GW__PREREAD_CAP */
        const char *d;
        size_t n;
        int rc = gw__ex_body_next(ex, &d, &n, ex->lis->request_timeout_ms);
        if (rc == 0) {
            r->pre_complete = true;
            break;
        }
        if (rc < 0)
            return gw__ex_body_status(ex, rc);
        if (n == 0)
            continue;
        rc = preread_room(r, len + n);
        if (rc == -EBUSY)
            return rc;
        if (rc < 0)
            return 500;
        memcpy(r->hold->buf + len, d, n);
        len += n;
    }
    r->pre = r->hold ? r->hold->buf : NULL;
    r->pre_len = len;
    return 0;
}

/* Streams the rest of the request body from the client upstream. 0, or a
 * negative code: -EPIPE for an upstream write failure, or the client-side
 * error from gw__ex_body_next. */
static int send_body(struct gw__relay *r, bool chunked)
{
    struct gw__exchange *ex = r->ex;
    struct chunk_frame f;
    struct iovec iov[3];
    const char *d;
    size_t n;
    int rc;
    while ((rc = gw__ex_body_next(ex, &d, &n, ex->lis->request_timeout_ms)) == 1) {
        if (n == 0)
            continue;
        int k = frame_piece(chunked, d, n, &f, iov);
        if (r->up->ops->writev(r->up, iov, k, GW__WRITE_TIMEOUT_MS) < 0)
            return -EPIPE;
    }
    if (rc < 0)
        return rc;
    int k = frame_last(chunked, &f, iov);
    if (k && r->up->ops->writev(r->up, iov, k, GW__WRITE_TIMEOUT_MS) < 0)
        return -EPIPE;
    return 0;
}

/* Where a response stands. The order matters: every state from
 * RS_HEAD_HELD on has a decided client head. */
enum relay_state {
    RS_IDLE,       /* nothing read from the upstream yet */
    RS_AWAIT_HEAD, /* bytes read, no final response head yet */
    RS_HEAD_HELD,  /* the client's head is decided, held in obuf, unwritten */
    RS_STREAMING,  /* the client has the head: only closing can end it early */
};

/* A response being relayed. */
struct relay_run {
    struct gw__relay *r;
    enum relay_state st;
    enum gw_http_out_framing framing;
    char *obuf;  /* the client's head: GW__HEAD_FIRST bytes, or GW__HEAD_BUF */
    size_t held; /* head bytes in obuf not yet written */
    /* The last body piece parsed, not yet written: it waits in rbuf for the
     * next event, so that the end of the message, when that is what comes,
     * is recorded as the target's success before the client can see the
     * response's last byte (a client's next request never finds the
     * target's health one answer behind). Written before the next read. */
    const char *pend;
    size_t pend_len;
};

/* The upstream failed: answerable while the client has seen nothing (the
 * caller answers `status`, or retries), else the client is closed. */
static enum gw__relay_result upstream_failed(struct relay_run *s, const char *what, int status,
                                             const char *msg)
{
    report(s->r, false, what);
    if (s->st == RS_STREAMING)
        return GW__RELAY_CLOSE;
    s->r->fail_status = status;
    s->r->fail_msg = msg;
    return GW__RELAY_FAILED;
}

/* Writes one response body piece, after the held head. 0 or -errno. */
static int write_piece(struct relay_run *s, const char *d, size_t n)
{
    struct chunk_frame f;
    struct iovec iov[4];
    int k = 0;
    if (s->held)
        iov[k++] = (struct iovec){s->obuf, s->held};
    k += frame_piece(s->framing == GW_HTTP_OUT_CHUNKED, d, n, &f, iov + k);
    s->r->bytes_out += n;
    int rc = gw__ex_writev(s->r->ex, iov, k);
    if (rc < 0)
        return rc;
    s->held = 0;
    if (s->st != RS_STREAMING) {
        /* The client has the head: the request cannot be sent again, so
         * its body's start goes back to the budget now, not when the
         * process ends (a client reading a long answer slowly would hold
         * it all that time). */
        s->st = RS_STREAMING;
        gw__relay_preread_release(s->r);
    }
    return 0;
}

/* Writes the pending body piece, if any. 0 or -errno. */
static int write_pending(struct relay_run *s)
{
    if (!s->pend_len)
        return 0;
    size_t n = s->pend_len;
    s->pend_len = 0;
    return write_piece(s, s->pend, n);
}

/* The end of the response: the upstream answered whole, which is recorded
 * first; then the held head, the pending body piece and the last chunk
 * when it was re-chunked, in one write. A failed write costs the client. */
static enum gw__relay_result write_end(struct relay_run *s)
{
    report(s->r, true, NULL);
    bool chunked = s->framing == GW_HTTP_OUT_CHUNKED;
    struct chunk_frame f, fl;
    struct iovec iov[5];
    int k = 0;
    if (s->held)
        iov[k++] = (struct iovec){s->obuf, s->held};
    if (s->pend_len) {
        k += frame_piece(chunked, s->pend, s->pend_len, &f, iov + k);
        s->r->bytes_out += s->pend_len;
        s->pend_len = 0;
    }
    k += frame_last(chunked, &fl, iov + k);
    if (k && gw__ex_writev(s->r->ex, iov, k) < 0)
        return GW__RELAY_CLOSE;
    s->held = 0;
    gw__relay_preread_release(s->r); /* answered: never sent again */
    return GW__RELAY_DONE;
}

/* A final response head: decides the client's head and holds it. Returns
 * 0, or 1 when the gateway answered itself (res set). */
static int take_head(struct relay_run *s, const struct gw_http_head *resp,
                     enum gw__relay_result *res)
{
    struct gw__exchange *ex = s->r->ex;
    size_t olen = 0;
    bool keep = false;
    int wr = -ENOMEM;
    /* A small buffer first (GW__HEAD_FIRST), the whole GW__HEAD_BUF only
     * for a head that does not fit in it. */
    for (size_t cap = GW__HEAD_FIRST; cap <= GW__HEAD_BUF; cap = GW__HEAD_BUF) {
        rt_free(s->obuf);
        s->obuf = rt_alloc(cap);
        wr = s->obuf ? gw_http_response_head_write_edited(resp, ex->head, ex->request_id,
                                                          ex->keep_alive, s->r->resp_edits, s->obuf,
                                                          cap, &olen, &s->framing, &keep)
                     : -ENOMEM;
        if (wr != -ENOSPC || cap == GW__HEAD_BUF)
            break;
    }
    if (wr < 0) {
        report(s->r, false, "response head too large");
        gw__ex_error(ex, 502, "upstream response head too large", false);
        gw__ex_close_after(ex);
        *res = GW__RELAY_DONE;
        return 1;
    }
    if (!keep)
        gw__ex_close_after(ex);
    gw__ex_status(ex, resp->status);
    s->held = olen;
    s->st = RS_HEAD_HELD;
    return 0;
}

/* The response parser and head of relay_response, malloc'd by the wire
 * module: a deferred cleanup frees them when the request process is killed
 * mid-response (an admin kill, an exit signal during a tunnel), which
 * abandons the stack before relay_response's own cleanup. */
struct relay_owned {
    struct gw_http_parser *rp;
    struct gw_http_head *resp;
};

static void relay_owned_free(void *arg)
{
    struct relay_owned *o = arg;
    gw_http_head_free(o->resp);
    gw_http_parser_free(o->rp);
    o->resp = NULL;
    o->rp = NULL;
}

/* Reads the response and relays it. */
static enum gw__relay_result relay_response(struct gw__relay *r)
{
    struct gw__exchange *ex = r->ex;
    struct relay_run s = {.r = r, .st = RS_IDLE, .framing = GW_HTTP_OUT_NONE};
    enum gw__relay_result res = GW__RELAY_CLOSE;
    struct gw_http_parser *rp = NULL;
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    lim.max_body_bytes = 0; /* responses stream through: no size limit */
    lim.require_host = false;
    struct relay_owned *own = rt_calloc(1, sizeof(*own));
    uint64_t own_guard = own ? rt_defer(relay_owned_free, own) : 0;
    if (!own_guard || gw_http_parser_new(&rp, GW_HTTP_RESPONSE, &lim) < 0)
        goto out;
    own->rp = rp;
    gw_http_parser_expect(rp, strcmp(ex->head->method, "HEAD") == 0, false);
    uint64_t deadline = rt_now_ms() + r->response_timeout_ms;
    size_t off = 0, len = 0;
    bool need_read = true, filled = false;
    for (;;) {
        /* The parser is fed first, even with nothing new: it may hold a
         * pending end of message. Only when it needs more is the socket read. */
        if (len == 0 && need_read) {
            if (write_pending(&s) < 0)
                goto out; /* the client is gone */
            int64_t tmo = s.st >= RS_HEAD_HELD ? (int64_t)r->read_timeout_ms
                                               : (int64_t)(deadline - rt_now_ms());
            /* Nothing waits in rbuf now (the pending piece is written):
             * a read that filled it was a large response's, which goes on
             * with the larger buffer. */
            if (filled && r->rbuf_cap < GW__RELAY_BUF) {
                /* rt_realloc: a memory cap sees the growth, not both
                 * buffers at once. On failure the first one serves on. */
                char *nb = rt_realloc(r->rbuf, GW__RELAY_BUF);
                if (nb) {
                    r->rbuf = nb;
                    r->rbuf_cap = GW__RELAY_BUF;
                }
            }
            ssize_t n = tmo > 0 ? r->up->ops->read(r->up, r->rbuf, r->rbuf_cap, tmo) : -ETIMEDOUT;
            filled = n == (ssize_t)r->rbuf_cap;
            if (n == -ETIMEDOUT) {
                res = upstream_failed(&s, "response timeout", 504, "upstream response timed out");
                goto out;
            }
            struct gw_http_event fe;
            if (n == 0 && s.st >= RS_HEAD_HELD && gw_http_parser_finish(rp, &fe) == 0 &&
                fe.type == GW_HTTP_EV_DONE) {
                /* A read-until-close body is complete. */
                gw__ex_close_after(ex);
                res = write_end(&s);
                goto out;
            }
            if (n <= 0) {
                if (s.st == RS_IDLE && r->reused && !r->body_started) {
                    res = GW__RELAY_RETRY; /* a stale keep-alive connection */
                    goto out;
                }
                res = upstream_failed(&s, n == 0 ? "closed the connection early" : "read error",
                                      502, "upstream closed the connection");
                goto out;
            }
            if (s.st == RS_IDLE)
                s.st = RS_AWAIT_HEAD;
            off = 0;
            len = (size_t)n;
        }
        size_t used = 0;
        struct gw_http_event ev;
        if (gw_http_parser_feed(rp, r->rbuf + off, len, &used, &ev) < 0) {
            res = upstream_failed(&s, gw_http_parser_reason(rp), 502,
                                  "upstream sent a malformed response");
            goto out;
        }
        off += used;
        len -= used;
        need_read = ev.type == GW_HTTP_EV_NEED_MORE;
        switch (ev.type) {
        case GW_HTTP_EV_NEED_MORE:
            break;
        case GW_HTTP_EV_HEAD:
            own->resp = ev.head;
            if (ev.head->status == 101 && ex->head->upgrade) {
                /* A tunnel may last hours: the body's start is not held
                 * for it. */
                gw__relay_preread_release(r);
                r->ops.upgrade(r->ops.ctx, r->up, ev.head, r->rbuf + off, len);
                gw__ex_close_after(ex);
                res = GW__RELAY_DONE;
                goto out;
            }
            if (ev.head->status >= 100 && ev.head->status < 200) {
                /* interim responses: the gateway answered 100-continue itself */
                gw_http_head_free(ev.head);
                own->resp = NULL;
                break;
            }
            if (take_head(&s, ev.head, &res))
                goto out;
            break;
        case GW_HTTP_EV_BODY:
            if (s.st < RS_HEAD_HELD || ev.len == 0 || s.framing == GW_HTTP_OUT_NONE)
                break;
            if (write_pending(&s) < 0)
                goto out;     /* the client is gone */
            s.pend = ev.data; /* in rbuf until the next read */
            s.pend_len = ev.len;
            break;
        case GW_HTTP_EV_DONE:
            if (s.st < RS_HEAD_HELD)
                break; /* the end of an interim response */
            if (s.framing == GW_HTTP_OUT_CLOSE)
                gw__ex_close_after(ex);
            /* Decided before the success is reported: the report may give
             * the connection back (the upstream's part is over, whatever
             * becomes of the client's). */
            r->reusable = own->resp->keep_alive && len == 0 && s.framing != GW_HTTP_OUT_CLOSE;
            res = write_end(&s);
            goto out;
        }
    }
out:
    if (own_guard)
        rt_undefer(own_guard, true); /* frees rp and the response head */
    else
        gw_http_parser_free(rp);
    rt_free(own);
    rt_free(s.obuf);
    return res;
}

enum gw__relay_result gw__relay_attempt(struct gw__relay *r)
{
    struct gw__exchange *ex = r->ex;
    r->reusable = false;
    if (gw__transport_write_all(r->up, r->head, r->head_len, GW__WRITE_TIMEOUT_MS) < 0) {
        if (r->reused)
            return GW__RELAY_RETRY;
        report(r, false, "write error");
        r->fail_status = 502;
        r->fail_msg = "could not send the request upstream";
        return GW__RELAY_RETRY;
    }
    if (ex->head->framing == GW_HTTP_BODY_NONE)
        return relay_response(r);
    bool chunked = ex->head->framing == GW_HTTP_BODY_CHUNKED;
    struct chunk_frame f;
    struct iovec iov[3];
    if (r->pre_len) {
        int k = frame_piece(chunked, r->pre, r->pre_len, &f, iov);
        if (r->up->ops->writev(r->up, iov, k, GW__WRITE_TIMEOUT_MS) < 0) {
            report(r, false, "write error");
            return GW__RELAY_RETRY;
        }
    }
    if (r->pre_complete) {
        int k = frame_last(chunked, &f, iov);
        if (k && r->up->ops->writev(r->up, iov, k, GW__WRITE_TIMEOUT_MS) < 0)
            return GW__RELAY_RETRY;
        return relay_response(r);
    }
    /* The rest streams from the client: from here on the request cannot be
     * sent again, so its start need not be held any longer. */
    r->body_started = true;
    gw__relay_preread_release(r);
    int rc = send_body(r, chunked);
    if (rc < 0) {
        /* The caller answers once it has let go of the upstream connection
         * (which a body cut short leaves useless): not held while a slow
         * client takes the answer. The body was not read to its end, so the
         * client connection cannot carry another request. */
        if (rc == -EPIPE) {
            report(r, false, "write error");
            r->fail_status = 502;
            r->fail_msg = "upstream stopped reading the request";
        } else {
            r->fail_status = gw__ex_body_status(ex, rc);
            r->fail_msg = "could not read the request body";
        }
        gw__ex_close_after(ex);
        return GW__RELAY_FAILED;
    }
    return relay_response(r);
}
