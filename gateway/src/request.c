/*
 * request.c: the request process, one per request.
 *
 * It canonicalises the request target (the same path is used to route and
 * is sent upstream), holds the route table it started with until it ends,
 * matches, and either answers from the route (`respond`), proxies to the
 * route's upstream, or, on the admin listener, calls the admin API. A path
 * holding "%2F", ";" or "%3B" is routed first with them kept opaque, then
 * settled under the matched route's path_policy (path_settle.c). Every
 * answer is logged (access log) and counted (metrics). The request body is
 * always consumed to its end before the connection is reused; when that is
 * not possible the connection is closed after the answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gw/admin.h"
#include "gw/metrics.h"
#include "gw_int.h"
#include "request_detail.h"
#include "path_settle.h"
#include "route/holder.h"

struct req_ctx {
    struct gw__exchange *ex;
    const char *route_name;
    char target[80];
    uint64_t version;
    uint64_t bytes;
};

void gw__request_id(char out[17])
{
    static __thread uint64_t state;
    if (!state)
        state = rt_now_ns() ^ ((uint64_t)(uintptr_t)&state << 16) ^ 0x9e3779b97f4a7c15ull;
    /* xorshift64*: ids need to be unique in practice, not secret */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    uint64_t v = state * 0x2545f4914f6cdd1dull;
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[v & 15];
        v >>= 4;
    }
    out[16] = 0;
}

static void in_flight_done(void *arg)
{
    (void)arg;
    atomic_fetch_sub_explicit(&gw.requests_in_flight, 1, memory_order_relaxed);
}

static void release_table(void *arg)
{
    route_table_release(arg);
}

/* Error answers: when a body may be left unread the connection is closed. */
static void answer_error(struct gw__exchange *ex, int status, const char *message)
{
    bool keep = ex->keep_alive && ex->head->framing == GW_HTTP_BODY_NONE;
    gw__client_error(ex, status, message, keep);
}

static int body_error_status(struct gw__exchange *ex, int rc)
{
    if (rc == -EPROTO)
        return gw_http_parser_status(ex->parser);
    if (rc == -ETIMEDOUT)
        return 408;
    return 400;
}

static int send_continue(struct gw__exchange *ex)
{
    if (!ex->head->expect_continue || ex->head->framing == GW_HTTP_BODY_NONE)
        return 0;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t n = rt_write(ex->fd, cont, sizeof cont - 1, GW__WRITE_TIMEOUT_MS);
    return n < 0 ? (int)n : 0;
}

/* Reads and drops the request body. 0, or the status to answer. */
static int discard_body(struct gw__exchange *ex)
{
    if (send_continue(ex) < 0)
        return 400;
    const char *d;
    size_t n;
    int rc;
    while ((rc = gw__body_next(ex, &d, &n, ex->lis->request_timeout_ms)) == 1)
        ;
    return rc == 0 ? 0 : body_error_status(ex, rc);
}

static void respond_route(struct gw__exchange *ex, const struct route *r, struct req_ctx *rc)
{
    int st = discard_body(ex);
    if (st) {
        ex->keep_alive = false;
        gw__client_error(ex, st, "could not read the request body", false);
        return;
    }
    const struct route_respond *rs = r->respond;
    bool head_only = strcmp(ex->head->method, "HEAD") == 0;
    size_t cap = 1024 + rs->body_len;
    for (size_t i = 0; i < rs->nheaders; i++)
        cap += strlen(rs->headers[i].name) + strlen(rs->headers[i].value) + 4;
    char *buf = rt_alloc(cap);
    if (!buf) {
        gw__client_error(ex, 500, "out of memory", false);
        return;
    }
    int n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\n", rs->status, gw_http_status_text(rs->status));
    bool have_ct = false;
    for (size_t i = 0; i < rs->nheaders; i++) {
        if (strcmp(rs->headers[i].name, "content-type") == 0)
            have_ct = true;
        n += snprintf(buf + n, cap - (size_t)n, "%s: %s\r\n", rs->headers[i].name,
                      rs->headers[i].value);
    }
    if (!have_ct && rs->body_len)
        n += snprintf(buf + n, cap - (size_t)n, "content-type: text/plain\r\n");
    bool no_body = rs->status == 204 || rs->status == 304 || rs->status < 200;
    if (!no_body)
        n += snprintf(buf + n, cap - (size_t)n, "content-length: %zu\r\n", rs->body_len);
    n += snprintf(buf + n, cap - (size_t)n, "x-request-id: %s\r\n%s\r\n", ex->request_id,
                  ex->keep_alive ? "" : "connection: close\r\n");
    if (!head_only && !no_body) {
        memcpy(buf + n, rs->body, rs->body_len);
        n += (int)rs->body_len;
        rc->bytes = rs->body_len;
    }
    ex->status = rs->status;
    gw__client_write(ex, buf, (size_t)n);
    rt_free(buf);
}

static void admin_request(struct gw__exchange *ex, const struct gw_http_target *t,
                          struct req_ctx *rc)
{
    struct gw_admin_request areq = {
        .head = ex->head,
        .path = t->path,
        .query = t->query,
        .authority = t->authority,
        .authority_len = t->authority_len,
        .body = "",
        .body_len = 0,
        .client_addr = ex->client_addr,
        .client_loopback = ex->client_loopback,
    };
    struct gw_admin_response aresp = {.status = 500, .content_type = "application/json"};
    /* Refused on its head: no 100 Continue, the body is never read, and the
     * connection is closed after the answer when a body follows. */
    if (!gw_admin_admit_head(&areq, &aresp)) {
        if (ex->head->framing == GW_HTTP_BODY_CHUNKED ||
            (ex->head->framing == GW_HTTP_BODY_LENGTH && ex->head->content_length > 0))
            ex->keep_alive = false;
        goto answer;
    }
    if (send_continue(ex) < 0)
        return;
    size_t cap = 4096, len = 0;
    char *body = rt_alloc(cap);
    const char *d;
    size_t n;
    int r;
    while (body && (r = gw__body_next(ex, &d, &n, ex->lis->request_timeout_ms)) == 1) {
        if (len + n + 1 > GW_ADMIN_MAX_BODY) {
            gw__client_error(ex, 413, "admin request body too large", false);
            rt_free(body);
            return;
        }
        if (len + n + 1 > cap) {
            while (len + n + 1 > cap)
                cap *= 2;
            body = rt_realloc(body, cap);
        }
        if (body) {
            memcpy(body + len, d, n);
            len += n;
        }
    }
    if (!body) {
        gw__client_error(ex, 500, "out of memory", false);
        return;
    }
    if (r < 0) {
        gw__client_error(ex, body_error_status(ex, r), "could not read the request body", false);
        rt_free(body);
        return;
    }
    body[len] = 0;
    areq.body = body;
    areq.body_len = len;
    gw_admin_handle(&areq, &aresp);
    rt_free(body);
answer:;
    bool head_only = strcmp(ex->head->method, "HEAD") == 0;
    char hdr[512];
    int hn = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
                      "cache-control: no-store\r\nx-request-id: %s\r\n%s%s\r\n",
                      aresp.status, gw_http_status_text(aresp.status),
                      aresp.content_type ? aresp.content_type : "application/json", aresp.body_len,
                      ex->request_id, aresp.headers ? aresp.headers : "",
                      ex->keep_alive ? "" : "connection: close\r\n");
    ex->status = aresp.status;
    struct iovec iov[2] = {{hdr, (size_t)hn}, {aresp.body, head_only ? 0 : aresp.body_len}};
    ex->response_started = true;
    rt_writev(ex->fd, iov, 2, GW__WRITE_TIMEOUT_MS);
    rc->bytes = head_only ? 0 : aresp.body_len;
    free(aresp.body);
}

/* route_request.header: every line of a repeated field in turn, so that
 * match.headers conditions see all of them (the proxy forwards all). */
static const char *header_lookup(void *ctx, const char *name, size_t name_len, size_t *pos,
                                 size_t *len)
{
    const struct gw_http_head *h = ctx;
    for (size_t i = *pos; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (f->name_len == name_len && strncasecmp(f->name, name, name_len) == 0) {
            *pos = i + 1;
            *len = f->value_len;
            return f->value;
        }
    }
    return NULL;
}

static void method_not_allowed(struct gw__exchange *ex, unsigned allowed)
{
    char allow[256];
    route_methods_format(allowed, allow, sizeof allow);
    char buf[1024];
    size_t n = 0;
    bool keep = ex->keep_alive && ex->head->framing == GW_HTTP_BODY_NONE;
    if (gw_http_error_write(405, "method not allowed for this route", ex->request_id, !keep, buf,
                            sizeof buf, &n) < 0)
        return;
    /* Insert Allow after the status line. */
    char out[1300];
    char *eol = memchr(buf, '\n', n);
    size_t first = eol ? (size_t)(eol - buf) + 1 : 0;
    int m = snprintf(out, sizeof out, "%.*sallow: %s\r\n%.*s", (int)first, buf, allow,
                     (int)(n - first), buf + first);
    if (!keep)
        ex->keep_alive = false;
    ex->status = 405;
    gw__client_write(ex, out, (size_t)m);
}

/* 308 to the decoded path (RFC 9110 15.4.9: method and body kept). The
 * body, if any, is read and dropped first, as for a direct answer. */
static void redirect_to(struct gw__exchange *ex, const struct gw_http_target *t)
{
    int st = discard_body(ex);
    if (st) {
        ex->keep_alive = false;
        gw__client_error(ex, st, "could not read the request body", false);
        return;
    }
    size_t cap = 256 + t->path_len + t->query_len;
    char *buf = rt_alloc(cap);
    if (!buf) {
        gw__client_error(ex, 500, "out of memory", false);
        return;
    }
    int n =
        snprintf(buf, cap,
                 "HTTP/1.1 308 %s\r\nlocation: %s%s%s\r\ncontent-length: 0\r\n"
                 "x-request-id: %s\r\n%s\r\n",
                 gw_http_status_text(308), t->path, t->query ? "?" : "", t->query ? t->query : "",
                 ex->request_id, ex->keep_alive ? "" : "connection: close\r\n");
    ex->status = 308;
    gw__client_write(ex, buf, (size_t)n);
}

void gw__request_main(void *arg)
{
    struct gw__exchange *ex = arg;
    rt_defer(gw__exchange_unref, ex);
    uint64_t t0 = rt_now_ns();
    atomic_fetch_add_explicit(&gw.requests_in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&gw.requests_total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ex->lis->stats->requests, 1, memory_order_relaxed);
    rt_defer(in_flight_done, NULL);
    const struct gw_http_head *h = ex->head;
    struct req_ctx rc = {.ex = ex};

    char gen[17];
    gw__request_id(gen);
    size_t idlen = 0;
    const char *id = gw_http_request_id(h, gen, &idlen);
    if (idlen >= sizeof ex->request_id)
        idlen = sizeof ex->request_id - 1;
    memcpy(ex->request_id, id, idlen);
    ex->request_id[idlen] = 0;

    size_t tcap = 3 * h->target_len + 2;
    char *tbuf = rt_alloc(tcap);
    struct gw_http_target t;
    const char *path = h->target;
    /* First pass: "%2F" and ";" opaque, for the route to decide. The admin
     * listener keeps the strict default. */
    struct gw_http_path_policy first =
        ex->lis->admin ? ex->lis->path_policy : gw__path_first_policy(&ex->lis->path_policy);
    if (!tbuf || gw_http_target_canon_policy(&first, h->method, h->target, h->target_len, tbuf,
                                             tcap, &t) < 0) {
        ex->keep_alive = false;
        gw__client_error(ex, 400, "invalid request target", false);
        goto out;
    }
    path = t.path;
    gw__request_detail_set(h->method, t.path, t.path_len, NULL, NULL);

    if (ex->lis->admin) {
        rc.route_name = "admin";
        admin_request(ex, &t, &rc);
        goto out;
    }

    const struct route_table *table = route_holder_acquire(gw.routes);
    if (!table) {
        answer_error(ex, 503, "no routes are loaded");
        goto out;
    }
    rt_defer(release_table, (void *)table);
    rc.version = route_table_version(table);

    size_t hlen = 0;
    const char *host = t.authority;
    if (host)
        hlen = t.authority_len;
    else
        host = gw_http_head_get(h, "host", &hlen);
    struct route_request rr = {
        .method = h->method,
        .method_len = h->method_len,
        .host = host,
        .host_len = hlen,
        .path = t.path,
        .path_len = t.path_len,
        .header = header_lookup,
        .header_ctx = (void *)h,
    };
    struct route_match m;
    enum route_match_result res = route_table_match(table, &rr, &m);
    if (t.escaped_slash || t.params) {
        char *sbuf = rt_alloc(tcap);
        int sr = sbuf ? gw__path_settle(&ex->lis->path_policy, table, &rr, h->method, h->target,
                                        h->target_len, sbuf, tcap, &t, &res, &m)
                      : -ENOMEM;
        path = t.path;
        if (sr == 1) {
            rc.route_name = res == ROUTE_MATCHED ? m.route->name : NULL;
            redirect_to(ex, &t);
            goto out;
        }
        if (sr < 0) {
            ex->keep_alive = false;
            gw__client_error(ex, sr == -ENOMEM ? 500 : 400,
                             sr == -ENOMEM ? "out of memory" : "invalid request target", false);
            goto out;
        }
    }
    if (res == ROUTE_NOT_FOUND) {
        answer_error(ex, 404, "no route matches this request");
        goto out;
    }
    if (res == ROUTE_NO_METHOD) {
        method_not_allowed(ex, m.allowed);
        goto out;
    }
    const struct route *r = m.route;
    rc.route_name = r->name;
    if (r->max_body_bytes >= 0 &&
        gw_http_parser_set_body_limit(ex->parser, (uint64_t)r->max_body_bytes) == -EMSGSIZE) {
        ex->keep_alive = false;
        gw__client_error(ex, 413, "request body larger than this route allows", false);
        goto out;
    }
    if (r->respond) {
        gw__request_detail_set(h->method, t.path, t.path_len, r->name, NULL);
        respond_route(ex, r, &rc);
        goto out;
    }
    struct gw_upstream *up = gw_upstream_get(r->upstream_index);
    if (!up) {
        answer_error(ex, 502, "the route's upstream is not configured");
        goto out;
    }
    size_t pcap = t.path_len + t.query_len + 2 * ROUTE_MAX_PATH_BYTES + 16;
    char *upath = rt_alloc(pcap);
    int plen = upath ? route_upstream_path(&m, &rr, t.query, t.query ? t.query_len : 0, upath, pcap)
                     : -ENOMEM;
    if (plen < 0) {
        answer_error(ex, 500, "cannot build the upstream path");
        goto out;
    }
    /* What strip_prefix took off the path, for X-Forwarded-Prefix: the path
     * up to the remainder the route forwards, without a trailing '/'. */
    size_t prefix_len = 0;
    if (r->strip_prefix && m.rest) {
        prefix_len = (size_t)(m.rest - t.path);
        while (prefix_len && t.path[prefix_len - 1] == '/')
            prefix_len--;
    }
    int st = gw__proxy(ex, r, upath, (size_t)plen, prefix_len ? t.path : NULL, prefix_len, up,
                       rc.target, sizeof rc.target, &rc.bytes);
    if (st < 0)
        ex->keep_alive = false;
out:;
    uint64_t dur = (rt_now_ns() - t0) / 1000;
    gw_metrics_request(rc.route_name, ex->status, dur);
    if (gw.cfg->access_log)
        gw__access_log(ex, h->method, path, rc.route_name, rc.target[0] ? rc.target : NULL,
                       ex->status, rc.bytes, dur, rc.version);
}
