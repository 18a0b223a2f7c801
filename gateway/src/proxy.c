/*
 * proxy.c: forwarding one request to an upstream, in the request process:
 * the target, the retries, and the Upgrade tunnel. One attempt on one
 * connection, with the streaming both ways, is relay.c's.
 *
 * A target is retried (another one, when there is one) while nothing of the
 * request body was consumed: on connect failure, and when a reused
 * keep-alive connection turns out closed before any byte of a response. An
 * upstream connection goes back to the pool only when the attempt says it
 * is reusable (a complete, well-formed response that allows keep-alive);
 * anything malformed answers 502 and drops the connection.
 *
 * An Upgrade tunnel (tunnel.c) follows a 101.
 *
 * Answers when no upstream answers: 502 (connect failed everywhere, bad
 * response), 503 (every target ejected), 504 (connect or response timeout),
 * each a short JSON body with the request id.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/metrics.h"
#include "gw_int.h"
#include "policy/set_int.h"
#include "relay.h"
#include "request_detail.h"
#include "tls/tls.h"

static const struct gw_http_edits *edits_of(const struct route_header_edit *re,
                                            const struct gw_http_kv *pol, size_t npol,
                                            struct gw_http_edits *storage);

/* Writes a 101 head as the upstream sent it (Upgrade and Connection kept),
 * with the policy chain's answer fields, which go on every answer. */
static int write_switching(struct gw__exchange *ex, const struct gw_http_head *r)
{
    static const struct route_header_edit none;
    struct gw_http_edits storage;
    const struct gw_http_edits *pol =
        ex->pol ? edits_of(&none, ex->pol->resp, ex->pol->nresp, &storage) : NULL;
    size_t cap = 256;
    for (size_t i = 0; i < r->nheaders; i++)
        cap += r->headers[i].name_len + r->headers[i].value_len + 4;
    for (size_t i = 0; ex->pol && i < ex->pol->nresp; i++)
        cap += strlen(ex->pol->resp[i].name) + strlen(ex->pol->resp[i].value) + 4;
    char *buf = rt_alloc(cap);
    if (!buf)
        return -ENOMEM;
    size_t n = 0;
    int rc = gw_http_switching_head_write(r, ex->request_id, pol, buf, cap, &n);
    if (rc == 0)
        rc = gw__ex_write(ex, buf, n);
    rt_free(buf);
    return rc;
}

/* One request's attempts: the relay's part and the target's. */
struct attempt {
    struct gw__relay relay;
    struct gw_upstream *up;
    struct gw_target *target;
    struct gw__upconn conn; /* the checked-out connection, until gw__conn_checkin */
    uint32_t tunnel_idle_ms;
    char ws_accept[GW_HTTP_WS_ACCEPT_SIZE]; /* a WebSocket handshake's expected accept, or "" */
};

static void upstream_failed(struct attempt *a, const char *what)
{
    gw__target_result(a->target, false, what);
    gw_metrics_upstream_error(gw__upstream_name(a->up), gw__target_addr(a->target));
}

/* The relay's report: the target's health and the error counters. A
 * success comes once the upstream's response is read whole and before the
 * client can read its last byte: the connection goes back now, so that a
 * client's next request finds the target's count of active connections
 * (least_conn) and its health up to date. */
static void attempt_report(void *ctx, bool ok, const char *what)
{
    struct attempt *a = ctx;
    if (!ok) {
        upstream_failed(a, what);
        return;
    }
    gw__conn_checkin(a->target, &a->conn, a->relay.reusable);
    gw__target_result(a->target, true, NULL);
}

/* The relay's 101: the client gets it and the tunnel runs. */
static void attempt_upgrade(void *ctx, struct gw__transport *up, const struct gw_http_head *resp,
                            const char *pending, size_t plen)
{
    struct attempt *a = ctx;
    struct gw__exchange *ex = a->relay.ex;
    if (a->ws_accept[0] && !gw_http_websocket_response_ok(resp, a->ws_accept)) {
        /* The upstream did not take part in the client's handshake: no
         * tunnel (the relay closes its connection after an upgrade). */
        upstream_failed(a, "101 without the Sec-WebSocket-Accept the key calls for");
        gw__ex_error(ex, 502, "upstream answered the WebSocket handshake wrongly", false);
        return;
    }
    if (write_switching(ex, resp) < 0)
        return;
    gw__target_result(a->target, true, NULL);
    gw__ex_status(ex, 101);
    gw__tunnel(ex, up, pending, plen, a->tunnel_idle_ms);
}

static bool idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

/* The wire module's form of a route's field edits plus `pol` fields (a
 * policy chain's response fields, gw__pol_resp_split), in `storage`
 * (process memory, freed with the request process); NULL when there are
 * none. */
static const struct gw_http_edits *edits_of(const struct route_header_edit *re,
                                            const struct gw_http_kv *pol, size_t npol,
                                            struct gw_http_edits *storage)
{
    if (!re->nset && !re->nadd && !re->nremove && !npol)
        return NULL;
    size_t nvary = 0;
    for (size_t i = 0; i < npol; i++)
        nvary += gw__pol_is_vary(pol[i].name);
    if (!re->nset && !re->nadd && (nvary == 0 || nvary == npol)) {
        /* The chain's fields alone, all of one kind: used where they are
         * (rq->resp lives as long as the request), not copied, and not
         * checked again: policy.h's gw_pol_resp_add asks its callers for
         * what the wire module would check. */
        *storage = (struct gw_http_edits){.set = nvary ? NULL : pol,
                                          .nset = nvary ? 0 : npol,
                                          .add = nvary ? pol : NULL,
                                          .nadd = nvary ? npol : 0,
                                          .remove = re->remove,
                                          .nremove = re->nremove,
                                          .checked = true};
        return storage;
    }
    size_t nset = re->nset + npol, nadd = re->nadd + npol;
    struct gw_http_kv *set = nset ? rt_alloc(nset * sizeof(*set)) : NULL;
    struct gw_http_kv *add = nadd ? rt_alloc(nadd * sizeof(*add)) : NULL;
    if ((nset && !set) || (nadd && !add))
        return NULL;
    for (size_t i = 0; i < re->nset; i++)
        set[i] = (struct gw_http_kv){re->set[i].name, re->set[i].value};
    for (size_t i = 0; i < re->nadd; i++)
        add[i] = (struct gw_http_kv){re->add[i].name, re->add[i].value};
    nset = re->nset;
    nadd = re->nadd;
    gw__pol_resp_split(pol, npol, set, &nset, add, &nadd);
    *storage = (struct gw_http_edits){.set = set,
                                      .nset = nset,
                                      .add = add,
                                      .nadd = nadd,
                                      .remove = re->remove,
                                      .nremove = re->nremove};
    return storage;
}

/* A name is owned by every listener once any listener configures it: an
 * upstream that two listeners reach (one plaintext, one with client_auth)
 * reads the field as the gateway's word, so a client of the other listener
 * must not be able to send it either. Values come only from ex's own
 * listener and its verified certificate. */
static size_t owned_add(struct gw_http_kv *out, size_t n, const char *name, const char *value)
{
    if (!name)
        return n;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(out[i].name, name) == 0)
            return n;
    /* config.c refuses more distinct names than GW_HTTP_MAX_CERT_FIELDS */
    if (n < GW_HTTP_MAX_CERT_FIELDS)
        out[n++] = (struct gw_http_kv){name, value};
    return n;
}

size_t gw__client_cert_fields(const struct gw__exchange *ex,
                              struct gw_http_kv out[GW_HTTP_MAX_CERT_FIELDS])
{
    const struct gw_tls_peer *p = ex->tls && ex->tls->client_cert ? ex->tls : NULL;
    size_t own = ex->lis->index >= 0 ? (size_t)ex->lis->index : SIZE_MAX;
    size_t n = 0;
    if (own < gw.cfg->nlisteners) {
        const struct gw_tls_listener_config *tc = &gw.cfg->listeners[own].tls;
        n = owned_add(out, n, tc->client_subject_header, p ? p->subject : NULL);
        n = owned_add(out, n, tc->client_fingerprint_header, p ? p->fingerprint : NULL);
    }
    for (size_t i = 0; i < gw.cfg->nlisteners; i++) {
        const struct gw_tls_listener_config *tc = &gw.cfg->listeners[i].tls;
        n = owned_add(out, n, tc->client_subject_header, NULL);
        n = owned_add(out, n, tc->client_fingerprint_header, NULL);
    }
    return n;
}

/* Writes the upstream request head into *buf (*cap bytes), first
 * GW__HEAD_FIRST then, when it does not fit, GW__HEAD_BUF (*buf and *cap
 * replaced). 0, -ENOMEM, or the writer's error. */
static int head_write(const struct gw_http_head *h, const struct gw_http_fwd *fwd, char **buf,
                      size_t *cap, size_t *len)
{
    int r = gw_http_request_head_write(h, fwd, *buf, *cap, len);
    if (r != -ENOSPC || *cap >= GW__HEAD_BUF)
        return r;
    char *big = rt_alloc(GW__HEAD_BUF);
    if (!big)
        return -ENOMEM;
    rt_free(*buf);
    *buf = big;
    *cap = GW__HEAD_BUF;
    return gw_http_request_head_write(h, fwd, *buf, *cap, len);
}

int gw__proxy(struct gw__exchange *ex, const struct route *r, const struct gw_pol_set *pols,
              const char *upath, size_t upath_len, const char *prefix, size_t prefix_len,
              struct gw_upstream *up, char *target_out, size_t target_cap, uint64_t *bytes)
{
    struct gw_http_edits req_edits, resp_edits;
    const struct gw_upstream_config *uc = gw__upstream_config(up);
    uint32_t connect_ms = r->connect_timeout_ms ? r->connect_timeout_ms : uc->connect_timeout_ms;
    uint32_t response_ms =
        r->response_timeout_ms ? r->response_timeout_ms : uc->response_timeout_ms;
    int retries = r->retries >= 0 ? r->retries : (int)uc->retries;
    /* A WebSocket handshake is checked before anything is forwarded, and
     * its answer after (attempt_upgrade). */
    struct attempt a = {.up = up,
                        .tunnel_idle_ms = r->tunnel_idle_ms ? r->tunnel_idle_ms
                                                            : ex->lis->tunnel_idle_timeout_ms};
    const char *ws_why = NULL;
    if (gw_http_websocket_request_check(ex->head, a.ws_accept, &ws_why) < 0) {
        /* Closed after, as the parser reads nothing after an Upgrade
         * request that did not become a tunnel. */
        gw__ex_error(ex, 400, ws_why, false);
        return ex->status;
    }
    struct gw__relay *rl = &a.relay;
    *rl = (struct gw__relay){.ex = ex,
                             .response_timeout_ms = response_ms,
                             .read_timeout_ms = GW__WRITE_TIMEOUT_MS,
                             .resp_edits =
                                 edits_of(&r->response_headers, ex->pol ? ex->pol->resp : NULL,
                                          ex->pol ? ex->pol->nresp : 0, &resp_edits),
                             .ops = {attempt_report, attempt_upgrade, &a},
                             .fail_status = 502,
                             .fail_msg = "no upstream target answered"};
    /* The body's start first, and only then the buffers of the attempt: a
     * client trickling its body holds no more than what it has sent. */
    int pst = gw__relay_preread(rl);
    if (pst == -EBUSY) {
        /* The gateway-wide budget for held bodies is spent (many bodies
         * arriving slowly at once): a temporary condition, not this body's
         * fault (413 would tell the client never to send it again). The
         * body was not read to its end: the connection closes. */
        gw__ex_close_after(ex);
        gw__ex_error_retry(ex, 503, "too many request bodies arriving at once", 1);
        return ex->status;
    }
    if (pst) {
        gw__ex_close_after(ex);
        gw__ex_error(ex, pst, "could not read the request body", false);
        return ex->status;
    }
    size_t head_cap = GW__HEAD_FIRST;
    char *head = rt_alloc(head_cap);
    char *rbuf = rt_alloc(GW__RELAY_FIRST);
    if (!head || !rbuf) {
        gw__ex_error(ex, 500, "out of memory", false);
        return -ENOMEM;
    }
    struct gw_http_kv owned[GW_HTTP_MAX_OWNED];
    size_t nowned = gw__client_cert_fields(ex, owned);
    nowned = gw__pol_owned_fields(ex->pol, pols, owned, nowned, GW_HTTP_MAX_OWNED);
    struct gw_http_fwd fwd = {
        .client_addr = ex->client_addr,
        .client = ex->client,
        .peer_trusted = ex->peer_trusted,
        .keep_forwarded_for = true,
        .tls = ex->tls != NULL,
        .owned = owned,
        .nowned = nowned,
        .request_id = ex->request_id,
        .path = upath,
        .path_len = upath_len,
        .tunnel = ex->head->upgrade,
        .edits = edits_of(&r->request_headers, NULL, 0, &req_edits),
        .port = ex->lis->port,
        .prefix = prefix,
        .prefix_len = prefix_len,
    };
    size_t head_len = 0;
    int hr = head_write(ex->head, &fwd, &head, &head_cap, &head_len);
    if (hr < 0) {
        gw__ex_error(ex, hr == -ENOMEM ? 500 : 431,
                     hr == -ENOMEM ? "out of memory" : "request head too large to forward", false);
        return hr == -ENOMEM ? -ENOMEM : -EINVAL;
    }
    rl->head = head;
    rl->head_len = head_len;
    rl->rbuf = rbuf;
    rl->rbuf_cap = GW__RELAY_FIRST;
    bool addressed = gw_http_head_get(ex->head, "host", NULL) || ex->head->target[0] != '/';
    const struct gw_target *last = NULL;
    int budget = 1 + retries;
    int stale_retries = 2;
    bool timed_out = false;
    while (budget > 0) {
        bool all_ejected = false;
        struct gw_target *t = gw__target_pick(up, last, &all_ejected);
        if (!t) {
            if (all_ejected) {
                rl->fail_status = 503;
                rl->fail_msg = "every upstream target is ejected";
            }
            break;
        }
        a.target = t;
        /* Copied, not printed: snprintf's format machinery cost more
         * than the rest of the loop's bookkeeping per request. */
        const char *taddr = gw__target_addr(t);
        size_t tn = target_cap ? strnlen(taddr, target_cap - 1) : 0;
        if (target_cap) {
            memcpy(target_out, taddr, tn);
            target_out[tn] = 0;
        }
        if (!r->preserve_host || !addressed) {
            /* Host names the target: the head differs per target. An
             * HTTP/1.0 request without Host still gets one, as HTTP/1.1
             * upstream requires it (RFC 9112 §3.2). */
            fwd.host_override = gw__target_addr(t);
            hr = head_write(ex->head, &fwd, &head, &head_cap, &rl->head_len);
            rl->head = head;
            if (hr < 0) {
                gw__ex_error(ex, hr == -ENOMEM ? 500 : 431,
                             hr == -ENOMEM ? "out of memory" : "request head too large to forward",
                             false);
                return hr == -ENOMEM ? -ENOMEM : -EINVAL;
            }
        }
        gw__request_detail_set(ex->head->method, upath, upath_len, r->name, gw__target_addr(t));
        /* A request whose body is held whole is sent again on a fresh
         * connection if a pooled one turns out stale; only a streamed body
         * needs the pooled connection checked first. */
        char why[96];
        int rc = gw__conn_checkout(t, connect_ms, !rl->pre_complete, &a.conn, why, sizeof why);
        if (rc == -EBUSY) {
            /* Our own connection cap for the target: not the target's
             * failure, so it does not count towards ejecting it. */
            rl->fail_status = 503;
            rl->fail_msg = "upstream connection limit reached";
            last = t;
            budget--;
            continue;
        }
        if (rc < 0) {
            upstream_failed(&a, why);
            if (rc == -ETIMEDOUT)
                timed_out = true;
            if (rc == -EPROTO)
                rl->fail_msg = "upstream TLS handshake failed";
            last = t;
            budget--;
            continue;
        }
        rl->up = a.conn.tp;
        rl->reused = a.conn.reused;
        enum gw__relay_result res = gw__relay_attempt(rl);
        gw__conn_checkin(t, &a.conn, rl->reusable);
        rl->up = NULL;
        *bytes = rl->bytes_out;
        if (res == GW__RELAY_DONE)
            return ex->status;
        if (res == GW__RELAY_CLOSE)
            return -EPIPE;
        if (res == GW__RELAY_FAILED) {
            /* Sent, but no answer: only an idempotent request whose body we
             * still hold may go to another target, and only if configured. */
            if (!(uc->retry_idempotent && rl->pre_complete && idempotent(ex->head->method) &&
                  budget > 1)) {
                gw__ex_error(ex, rl->fail_status, rl->fail_msg, false);
                gw__ex_close_after(ex);
                return ex->status;
            }
            last = t;
            budget--;
            continue;
        }
        if (rl->reused && !rl->body_started && stale_retries-- > 0)
            continue; /* a stale pooled connection: same budget, fresh connection */
        last = t;
        budget--;
    }
    if (timed_out && rl->fail_status == 502) {
        rl->fail_status = 504;
        rl->fail_msg = "upstream connect timed out";
    }
    /* The connection stays usable when the whole body was read. */
    bool keep = ex->keep_alive && rl->pre_complete;
    gw__ex_error(ex, rl->fail_status, rl->fail_msg, keep);
    return ex->status;
}
