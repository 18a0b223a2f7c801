/*
 * call.c: one request of a workflow step to its upstream (call.h).
 *
 * The call owns the upstream connection it checks out for its whole life
 * and returns it to the pool only after a complete answer that leaves the
 * connection reusable; a call killed half-way (the instance gave up on
 * it) leaves the pool's deferred cleanup to close it (pool.c). Everything
 * the upstream sends is bounded: the head by the parser's own limit, the
 * body by WF_CALL_MAX_BODY.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "gw_int.h"
#include "rt/rt.h"

#define CALL_HEAD_MAX 16384

void wf_call_res_done(struct wf_call_res *res)
{
    if (!res)
        return;
    json_decref(res->json);
    free(res->body);
    res->json = NULL;
    res->body = NULL;
}

/* A header value or path with a byte that would end the line or the field
 * is refused: values come from templates filled with client input. */
static bool clean(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

static bool token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *s))
            return false;
    return true;
}

static int head_build(const struct wf_call_req *q, const char *host, char *buf, size_t cap,
                      size_t *len)
{
    size_t n = 0;
    int w =
        snprintf(buf, cap,
                 "%s %s HTTP/1.1\r\nHost: %s\r\nIdempotency-Key: %s\r\nX-Request-Id: %s\r\n"
                 "X-Workflow-Id: %s\r\nContent-Length: %zu\r\n%s",
                 q->method, q->path, host, q->idempotency_key, q->idempotency_key, q->workflow_id,
                 q->body ? q->body_len : 0, q->body ? "Content-Type: application/json\r\n" : "");
    if (w < 0 || (size_t)w >= cap)
        return -E2BIG;
    n = (size_t)w;
    for (size_t i = 0; i < q->nheaders; i++) {
        w = snprintf(buf + n, cap - n, "%s: %s\r\n", q->headers[i].name, q->headers[i].value);
        if (w < 0 || (size_t)w >= cap - n)
            return -E2BIG;
        n += (size_t)w;
    }
    if (cap - n < 3)
        return -E2BIG;
    memcpy(buf + n, "\r\n", 3);
    *len = n + 2;
    return 0;
}

int wf_call_head_check(const struct wf_call_req *req)
{
    /* The longest Host a target writes: its address (upstream_int.h). */
    char host[80];
    memset(host, 'h', sizeof host - 1);
    host[sizeof host - 1] = '\0';
    char *buf = malloc(CALL_HEAD_MAX);
    if (!buf)
        return -ENOMEM;
    size_t len;
    int r = head_build(req, host, buf, CALL_HEAD_MAX, &len);
    free(buf);
    return r;
}

static void seterr(struct wf_call_res *res, enum wf_call_kind kind, const char *what, int err)
{
    res->kind = kind;
    if (err)
        snprintf(res->error, sizeof res->error, "%s: %s", what, strerror(-err));
    else
        snprintf(res->error, sizeof res->error, "%s", what);
}

static int64_t left(uint64_t deadline)
{
    uint64_t now = rt_now_ms();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

/* What a call allocates, released however the process ends: the instance
 * kills a worker that overran its deadline, and its own exit takes its
 * worker along. In rt_alloc memory (freed with the process) so the
 * deferred cleanup can reach it. */
struct call_mem {
    char *head;
    struct gw_http_parser *p;
    char *body;
};

static void call_mem_free(void *arg)
{
    struct call_mem *m = arg;
    free(m->head);
    gw_http_parser_free(m->p);
    free(m->body);
    m->head = m->body = NULL;
    m->p = NULL;
}

/* Reads the answer into res; true when the connection may be reused. */
static bool read_answer(struct gw__transport *tp, const char *method, uint64_t deadline,
                        struct call_mem *mem, struct wf_call_res *res)
{
    struct gw_http_limits lim;
    size_t blen = 0;
    int status = 0;
    bool done = false, reuse = false, interim = false;
    char buf[16384];
    gw_http_limits_default(&lim);
    lim.max_header_bytes = CALL_HEAD_MAX;
    lim.max_body_bytes = WF_CALL_MAX_BODY;
    if (gw_http_parser_new(&mem->p, GW_HTTP_RESPONSE, &lim) < 0) {
        seterr(res, WF_CALL_UNKNOWN, "out of memory", 0);
        goto out;
    }
    struct gw_http_parser *p = mem->p;
    gw_http_parser_expect(p, strcmp(method, "HEAD") == 0, false);
    mem->body = malloc(1);
    if (!mem->body) {
        seterr(res, WF_CALL_UNKNOWN, "out of memory", 0);
        goto out;
    }
    while (!done) {
        int64_t ms = left(deadline);
        if (ms == 0) {
            seterr(res, WF_CALL_UNKNOWN, "timeout waiting for the answer", 0);
            goto out;
        }
        ssize_t n = tp->ops->read(tp, buf, sizeof buf, ms);
        if (n == -ETIMEDOUT) {
            seterr(res, WF_CALL_UNKNOWN, "timeout waiting for the answer", 0);
            goto out;
        }
        if (n < 0) {
            seterr(res, WF_CALL_UNKNOWN, "read", (int)n);
            goto out;
        }
        struct gw_http_event ev;
        if (n == 0) {
            if (gw_http_parser_finish(p, &ev) < 0 || ev.type != GW_HTTP_EV_DONE) {
                seterr(res, WF_CALL_UNKNOWN, "connection closed before a whole answer", 0);
                goto out;
            }
            /* An answer that ended with its connection: nothing to reuse. */
            done = true;
            reuse = false;
            break;
        }
        const char *at = buf;
        size_t rest = (size_t)n;
        while (!done) {
            size_t used = 0;
            if (gw_http_parser_feed(p, at, rest, &used, &ev) < 0) {
                seterr(res, WF_CALL_UNKNOWN, gw_http_parser_reason(p), 0);
                goto out;
            }
            at += used;
            rest -= used;
            if (ev.type == GW_HTTP_EV_HEAD) {
                if (ev.head->status >= 100 && ev.head->status < 200 && ev.head->status != 101) {
                    /* An interim answer (103 Early Hints): the final one
                     * follows on the same connection, as relay.c reads it. */
                    interim = true;
                    gw_http_head_free(ev.head);
                    continue;
                }
                status = ev.head->status;
                /* The parser's verdict: HTTP/1.0 closes unless it says
                 * keep-alive; a switched protocol is no longer HTTP. */
                reuse = ev.head->keep_alive && !ev.head->upgrade;
                gw_http_head_free(ev.head);
            } else if (ev.type == GW_HTTP_EV_BODY) {
                /* The parser enforces max_body_bytes; this only grows. */
                char *nb = realloc(mem->body, blen + ev.len + 1);
                if (!nb) {
                    seterr(res, WF_CALL_UNKNOWN, "out of memory", 0);
                    goto out;
                }
                mem->body = nb;
                memcpy(mem->body + blen, ev.data, ev.len);
                blen += ev.len;
            } else if (ev.type == GW_HTTP_EV_DONE) {
                if (interim) {
                    interim = false; /* the end of the interim answer */
                    continue;
                }
                done = true;
                /* Bytes past the answer: the connection is not clean. */
                if (rest)
                    reuse = false;
            } else {
                break;
            }
        }
    }
    mem->body[blen] = 0;
    res->kind = WF_CALL_ANSWERED;
    res->status = status;
    res->body = mem->body;
    res->body_len = blen;
    res->json = blen ? json_loadb(mem->body, blen, JSON_DECODE_ANY, NULL) : NULL;
    mem->body = NULL;
out:
    return done && reuse && res->kind == WF_CALL_ANSWERED;
}

int wf_call(const struct wf_call_req *q, struct wf_call_res *res)
{
    memset(res, 0, sizeof *res);
    uint64_t deadline = rt_now_ms() + q->timeout_ms;
    struct gw_upstream *up = gw_upstream_get(q->upstream_index);
    size_t hlen = 0;
    struct call_mem *mem = rt_calloc(1, sizeof *mem);
    uint64_t cleanup = mem ? rt_defer(call_mem_free, mem) : 0;
    struct gw__upconn conn = {0};
    bool reusable = false;
    struct gw_target *t = NULL;
    int rc = 0;
    if (!cleanup) {
        rt_free(mem);
        return -ENOMEM;
    }
    if (!up) {
        seterr(res, WF_CALL_NOT_SENT, "no such upstream", 0);
        goto out;
    }
    if (!token(q->method) || !clean(q->path) || q->path[0] != '/' || strchr(q->path, ' ')) {
        seterr(res, WF_CALL_NOT_SENT, "request line holds a forbidden byte", 0);
        goto out;
    }
    for (size_t i = 0; i < q->nheaders; i++)
        if (!token(q->headers[i].name) || !clean(q->headers[i].value)) {
            seterr(res, WF_CALL_NOT_SENT, "a header holds a forbidden byte", 0);
            goto out;
        }
    bool all_ejected = false;
    t = gw__target_pick(up, NULL, &all_ejected);
    if (!t) {
        seterr(res, WF_CALL_NOT_SENT, "every target is ejected", 0);
        goto out;
    }
    snprintf(res->target, sizeof res->target, "%s", gw__target_addr(t));
    mem->head = malloc(CALL_HEAD_MAX);
    if (!mem->head) {
        rc = -ENOMEM;
        goto out;
    }
    rc = head_build(q, gw__target_addr(t), mem->head, CALL_HEAD_MAX, &hlen);
    if (rc < 0) {
        seterr(res, WF_CALL_NOT_SENT, "request head too big", 0);
        rc = 0;
        goto out;
    }
    uint32_t cto = gw__upstream_config(up)->connect_timeout_ms;
    int64_t ms = left(deadline);
    if (cto == 0 || cto > ms)
        cto = (uint32_t)ms;
    /* probe: a pooled connection the upstream closed meanwhile is not
     * used, so that a send on it is rarely an unknown outcome. */
    char why[96];
    int crc = gw__conn_checkout(t, cto, true, &conn, why, sizeof why);
    if (crc < 0) {
        /* A failed TLS handshake says why (a certificate that does not
         * verify); anything else as before. */
        if (crc == -EPROTO)
            seterr(res, WF_CALL_NOT_SENT, why, 0);
        else
            seterr(res, WF_CALL_NOT_SENT, "connect", crc);
        /* -EBUSY is the gateway's own connection cap for the target, not
         * the target's failure: it does not count towards ejecting it
         * (as in proxy.c). */
        if (crc != -EBUSY)
            gw__target_result(t, false, res->error);
        goto out;
    }
    struct iovec iov[2] = {{mem->head, hlen}, {(void *)q->body, q->body ? q->body_len : 0}};
    ms = left(deadline);
    int w =
        ms ? conn.tp->ops->writev(conn.tp, iov, q->body && q->body_len ? 2 : 1, ms) : -ETIMEDOUT;
    if (w < 0) {
        /* Some bytes may have left: the upstream may have acted. */
        seterr(res, WF_CALL_UNKNOWN, "write", (int)w);
        goto out;
    }
    reusable = read_answer(conn.tp, q->method, deadline, mem, res);
    gw__target_result(t, res->kind == WF_CALL_ANSWERED && res->status < 500,
                      res->kind == WF_CALL_ANSWERED ? "status 5xx" : res->error);
out:
    if (t)
        gw__conn_checkin(t, &conn, reusable);
    rt_undefer(cleanup, true);
    rt_free(mem);
    return rc;
}
