/*
 * request.c: the request process, one per request.
 *
 * It canonicalises the request target (the same path is used to route and
 * is sent upstream), holds the route table it started with until it ends,
 * and hands the request to its listener's handler (gw__listener.handler):
 * for a public listener the routes below, which match, run the route's
 * policies (policy/chain.c: they may answer, or let the request go on with
 * a consumer and fields for the upstream and the answer) and either answer
 * from the route (`respond`), run the route's workflow (workflow/http.c,
 * which also answers the workflows' status path before any route is
 * matched) or proxy to the route's upstream; for the
 * admin listener the admin API (admin/serve.c). A path
 * holding "%2F", ";" or "%3B" is routed first with them kept opaque, then
 * settled under the matched route's path_policy (path_settle.c). Every
 * answer is logged (access log) and counted (metrics). The request body is
 * always consumed to its end before the connection is reused; when that is
 * not possible the connection is closed after the answer. Every answer
 * leaves through the exchange (exchange.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client_addr.h"
#include "gw/metrics.h"
#include "gw_int.h"
#include "request_detail.h"
#include "path_settle.h"
#include "policy/policy.h"
#include "policy/table.h"
#include "route/holder.h"
#include "workflow/http.h"

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

/* Caps the calling request process at `mem` bytes and `ms` milliseconds
 * from its start (0: no cap); `route` is named in the connection's record
 * should a cap end it. */
static void caps_apply(struct gw__exchange *ex, uint64_t mem, uint64_t ms, const char *route)
{
    rt_set_max_memory((size_t)mem);
    uint64_t spent = rt_now_ms() - ex->started_ms;
    /* Out of memory for the timer, the request runs without its time cap
     * rather than fail: the cap guards against a runaway, it is no deadline
     * the client was promised. */
    (void)rt_set_max_time(!ms ? 0 : ms > spent ? ms - spent : 1);
    if (route && (mem || ms))
        snprintf(ex->capped_route, ROUTE_MAX_NAME_BYTES + 1, "%s", route);
}

/* The matched route's caps, or its listener's where the route sets none. */
static void route_caps(struct gw__exchange *ex, const struct route *r)
{
    const struct gw_request_limits *lc = &ex->lis->caps;
    if (r->max_memory_bytes < 0 && r->max_time_ms < 0) {
        if (lc->max_memory_bytes || lc->max_time_ms)
            snprintf(ex->capped_route, ROUTE_MAX_NAME_BYTES + 1, "%s", r->name);
        return; /* the listener's, applied at the start */
    }
    uint64_t mem = r->max_memory_bytes >= 0 ? (uint64_t)r->max_memory_bytes : lc->max_memory_bytes;
    uint64_t ms = r->max_time_ms >= 0 ? (uint64_t)r->max_time_ms : lc->max_time_ms;
    caps_apply(ex, mem, ms, r->name);
}

/* Error answers: when a body may be left unread the connection is closed. */
static void answer_error(struct gw__exchange *ex, int status, const char *message)
{
    bool keep = ex->keep_alive && ex->head->framing == GW_HTTP_BODY_NONE;
    gw__ex_error(ex, status, message, keep);
}

static void respond_route(struct gw__exchange *ex, const struct route *r, struct gw__req_log *log)
{
    int st = gw__ex_discard_body(ex);
    if (st) {
        gw__ex_error(ex, st, "could not read the request body", false);
        return;
    }
    const struct route_respond *rs = r->respond;
    struct gw_http_kv *fields = rs->nheaders ? rt_alloc(rs->nheaders * sizeof(*fields)) : NULL;
    if (rs->nheaders && !fields) {
        gw__ex_error(ex, 500, "out of memory", false);
        return;
    }
    bool have_ct = false;
    for (size_t i = 0; i < rs->nheaders; i++) {
        if (strcmp(rs->headers[i].name, "content-type") == 0)
            have_ct = true;
        fields[i] = (struct gw_http_kv){rs->headers[i].name, rs->headers[i].value};
    }
    struct gw_http_answer a = {
        .status = rs->status,
        .fields = fields,
        .nfields = rs->nheaders,
        .content_type = !have_ct && rs->body_len ? "text/plain" : NULL,
    };
    if (!gw__ex_head_request(ex) && gw_http_status_has_body(rs->status))
        log->bytes = rs->body_len;
    gw__ex_answer(ex, &a, rs->body, rs->body_len);
    rt_free(fields);
}

/* What match.headers conditions look at: the request's head, the
 * client-certificate fields that stand in for the client's copies, and the
 * names the policy set owns (no value yet: the chain runs after the match). */
struct header_view {
    const struct gw_http_head *h;
    struct gw_http_kv owned[GW_HTTP_MAX_CERT_FIELDS];
    size_t nowned;
    const struct gw_pol_set *pols;
};

/* route_request.header: every line of a repeated field in turn, so that
 * match.headers conditions see all of them (the proxy forwards all). A
 * client-certificate field is the gateway's, as the upstream gets it: the
 * verified value once, or none, never what the client sent under its
 * name; a field a policy set owns (the consumer's) is none: it has no value
 * before the route's chain runs. */
static const char *header_lookup(void *ctx, const char *name, size_t name_len, size_t *pos,
                                 size_t *len)
{
    const struct header_view *hv = ctx;
    const struct gw_http_head *h = hv->h;
    for (size_t i = 0; i < hv->nowned; i++) {
        const struct gw_http_kv *o = &hv->owned[i];
        if (strlen(o->name) != name_len || strncasecmp(o->name, name, name_len) != 0)
            continue;
        if (*pos > 0 || !o->value)
            return NULL;
        *pos = 1;
        *len = strnlen(o->value, GW_HTTP_OWNED_VALUE_MAX);
        return o->value;
    }
    size_t npol;
    const char *const *pol = gw_pol_set_owned(hv->pols, &npol);
    for (size_t i = 0; i < npol; i++)
        if (strlen(pol[i]) == name_len && strncasecmp(pol[i], name, name_len) == 0)
            return NULL;
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
    bool keep = ex->keep_alive && ex->head->framing == GW_HTTP_BODY_NONE;
    gw__ex_error_allow(ex, 405, "method not allowed for this route", keep, allow);
}

/* 308 to the decoded path (RFC 9110 15.4.9: method and body kept). The
 * body, if any, is read and dropped first, as for a direct answer. */
static void redirect_to(struct gw__exchange *ex, const struct gw_http_target *t)
{
    int st = gw__ex_discard_body(ex);
    if (st) {
        gw__ex_error(ex, st, "could not read the request body", false);
        return;
    }
    struct gw_http_answer a = {.status = 308, .location = t->path, .location_query = t->query};
    gw__ex_answer(ex, &a, NULL, 0);
}

/* A route's redirect_https on a plaintext listener: 308 to the same path
 * and query over https (RFC 9110 15.4.9: method and body kept, so the client
 * sends them again there). The host is the one the client addressed, its
 * port replaced by the route's; without a valid one there is nowhere to
 * send the client: 400. The body, if any, is read and dropped first. */
static void redirect_https(struct gw__exchange *ex, const struct route *r,
                           const struct gw_http_target *t, const char *host, size_t hlen)
{
    int st = gw__ex_discard_body(ex);
    if (st) {
        gw__ex_error(ex, st, "could not read the request body", false);
        return;
    }
    /* "https://" + host + ":65535" + path + NUL */
    size_t cap = hlen + t->path_len + 16;
    char *loc = rt_alloc(cap);
    int n =
        loc ? gw_http_https_location(host, hlen, r->redirect_https, t->path, loc, cap) : -ENOMEM;
    if (n < 0) {
        if (n == -EINVAL)
            answer_error(ex, 400, "this route redirects to https and needs a valid Host");
        else
            gw__ex_error(ex, 500, "out of memory", false);
        rt_free(loc);
        return;
    }
    struct gw_http_answer a = {.status = 308, .location = loc, .location_query = t->query};
    gw__ex_answer(ex, &a, NULL, 0);
    rt_free(loc);
}

/* OPTIONS * asks about the server, not a resource (RFC 9110 §9.3.7), and no
 * route can match "*": the gateway answers it, 200 with an Allow naming the
 * methods some route of the table serves (a route without `methods` serves
 * them all; CONNECT never, as it is refused), and OPTIONS itself. Extension
 * methods a route lists are not named. */
static void options_asterisk(struct gw__exchange *ex, const struct route_table *table)
{
    const unsigned standard = ROUTE_M_GET | ROUTE_M_HEAD | ROUTE_M_POST | ROUTE_M_PUT |
                              ROUTE_M_DELETE | ROUTE_M_OPTIONS | ROUTE_M_TRACE | ROUTE_M_PATCH;
    int st = gw__ex_discard_body(ex);
    if (st) {
        gw__ex_error(ex, st, "could not read the request body", false);
        return;
    }
    unsigned served = ROUTE_M_OPTIONS;
    for (size_t i = 0; i < route_table_count(table); i++) {
        const struct route *r = route_table_route(table, i);
        served |= r->match_methods ? r->match_methods : standard;
    }
    char allow[128];
    route_methods_format(served & standard, allow, sizeof allow);
    struct gw_http_answer a = {.status = 200, .allow = allow};
    gw__ex_answer(ex, &a, NULL, 0);
}

/* An OPTIONS request with Origin and Access-Control-Request-Method (a CORS
 * preflight) matched as the method it asks about, to a route whose chain
 * answers preflights (a cors policy): true with that route in *m. Any other
 * chain is not run for it (it would count or refuse an OPTIONS the route
 * does not serve): the answer stays a 405. */
static bool preflight_match(const struct route_table *table, const struct route_request *rr,
                            const struct gw_http_head *h, struct route_match *m)
{
    size_t n = 0;
    const char *asked = gw_http_head_get(h, "access-control-request-method", &n);
    if (h->method_len != 7 || memcmp(h->method, "OPTIONS", 7) != 0 || !asked || !n ||
        !gw_http_head_get(h, "origin", NULL))
        return false;
    struct route_request as = *rr;
    as.method = asked;
    as.method_len = n;
    return route_table_match(table, &as, m) == ROUTE_MATCHED &&
           gw__pol_table_answers_preflight(table, m->route);
}

/* Route r's policies (it has some): true when one of them answered. The
 * chain state stays in *pq for the route's action (the consumer, fields
 * both ways: ex->pol points at it until the request ends). */
static bool run_policies(struct gw__exchange *ex, const struct route_table *table,
                         const struct route *r, const struct gw_http_target *t,
                         struct gw_pol_req *pq, struct gw__req_log *log)
{
    /* Member by member, not as a compound literal, which would clear the
     * field arrays and the texts too (2 KiB, more than a policy's own
     * work): nup, nresp, answer.status and ntext say what of them is
     * written, and nothing reads past that. */
    pq->ex = ex;
    pq->head = ex->head;
    pq->route = r;
    pq->table = table;
    pq->client = ex->client;
    pq->query = t->query;
    pq->query_len = t->query ? t->query_len : 0;
    pq->consumer = NULL;
    pq->subject = NULL;
    pq->nup = 0;
    pq->nresp = 0;
    pq->answer.status = 0;
    pq->answer.nfields = 0;
    pq->ntext = 0;
    int st = gw__policy_chain(pq);
    log->consumer = pq->consumer ? pq->consumer->name : pq->subject;
    return st == GW_POL_ANSWERED;
}

/* The routes: a public listener's handler. A path settled under the route's
 * policy replaces *tp (for the access log). */
void gw__routes_handle(struct gw__exchange *ex, struct gw_http_target *tp, struct gw__req_log *log)
{
    const struct gw_http_head *h = ex->head;
    const struct route_table *table = route_holder_acquire(gw.routes);
    if (!table) {
        answer_error(ex, 503, "no routes are loaded");
        return;
    }
    rt_defer(release_table, (void *)table);
    log->version = route_table_version(table);
    if (tp->form == GW_HTTP_ASTERISK_FORM) { /* only ever with OPTIONS (target.c) */
        options_asterisk(ex, table);
        return;
    }

    if (gw__workflow_status(ex, table, tp, log))
        return;

    struct gw_http_target t = *tp;
    size_t hlen = 0;
    const char *host = t.authority;
    if (host)
        hlen = t.authority_len;
    else
        host = gw_http_head_get(h, "host", &hlen);
    struct header_view hv = {.h = h, .pols = gw_pol_table_set(table)};
    hv.nowned = gw__client_cert_fields(ex, hv.owned);
    struct route_request rr = {
        .method = h->method,
        .method_len = h->method_len,
        .host = host,
        .host_len = hlen,
        .path = t.path,
        .path_len = t.path_len,
        .header = header_lookup,
        .header_ctx = &hv,
    };
    struct route_match m;
    enum route_match_result res = route_table_match(table, &rr, &m);
    if (t.escaped_slash || t.params) {
        size_t tcap = 3 * h->target_len + 2;
        char *sbuf = rt_alloc(tcap);
        int sr = sbuf ? gw__path_settle(&ex->lis->path_policy, table, &rr, h->method, h->target,
                                        h->target_len, sbuf, tcap, &t, &res, &m)
                      : -ENOMEM;
        *tp = t;
        if (sr == 1) {
            log->route_name = res == ROUTE_MATCHED ? m.route->name : NULL;
            redirect_to(ex, &t);
            return;
        }
        if (sr < 0) {
            gw__ex_error(ex, sr == -ENOMEM ? 500 : 400,
                         sr == -ENOMEM ? "out of memory" : "invalid request target", false);
            return;
        }
    }
    if (res == ROUTE_NOT_FOUND) {
        answer_error(ex, 404, "no route matches this request");
        return;
    }
    /* A CORS preflight on a path whose routes do not serve OPTIONS asks
     * about another method: the route serving that one answers it through
     * its policies (a cors policy), or it stays a 405. */
    unsigned allowed = res == ROUTE_NO_METHOD ? m.allowed : 0;
    bool preflight = res == ROUTE_NO_METHOD && preflight_match(table, &rr, h, &m);
    if (res == ROUTE_NO_METHOD && !preflight) {
        method_not_allowed(ex, allowed);
        return;
    }
    const struct route *r = m.route;
    log->route_name = r->name;
    route_caps(ex, r);
    if (r->max_body_bytes >= 0 &&
        gw_http_parser_set_body_limit(ex->parser, (uint64_t)r->max_body_bytes) == -EMSGSIZE) {
        gw__ex_error(ex, 413, "request body larger than this route allows", false);
        return;
    }
    if (r->redirect_https && !ex->tls) {
        redirect_https(ex, r, &t, host, hlen);
        return;
    }
    struct gw_pol_req pq;
    if (r->npolicies) {
        if (run_policies(ex, table, r, &t, &pq, log))
            return;
        /* The query the action forwards is the chain's: key_auth drops
         * its parameter from it. */
        t.query = pq.query;
        t.query_len = pq.query_len;
    }
    if (preflight) {
        method_not_allowed(ex, allowed);
        return;
    }
    if (r->respond) {
        gw__request_detail_set(h->method, t.path, t.path_len, r->name, NULL);
        respond_route(ex, r, log);
        return;
    }
    if (r->workflow) {
        gw__request_detail_set(h->method, t.path, t.path_len, r->name, NULL);
        gw__workflow_route(ex, table, r, &t, log);
        return;
    }
    struct gw_upstream *up = gw_upstream_get(r->upstream_index);
    if (!up) {
        answer_error(ex, 502, "the route's upstream is not configured");
        return;
    }
    /* Room for the path as it is and a little more, which nearly every
     * rewrite fits; a longer one is made again with room for the longest
     * a template can give. */
    const size_t rooms[] = {256, 2 * ROUTE_MAX_PATH_BYTES + 16};
    char *upath = NULL;
    int plen = -ENOSPC;
    for (size_t i = 0; i < sizeof rooms / sizeof rooms[0] && plen == -ENOSPC; i++) {
        rt_free(upath);
        size_t pcap = t.path_len + t.query_len + rooms[i];
        upath = rt_alloc(pcap);
        plen = upath ? route_upstream_path(&m, &rr, t.query, t.query ? t.query_len : 0, upath, pcap)
                     : -ENOMEM;
    }
    if (plen < 0) {
        answer_error(ex, 500, "cannot build the upstream path");
        return;
    }
    /* What strip_prefix took off the path, for X-Forwarded-Prefix: the path
     * up to the remainder the route forwards, without a trailing '/'. */
    size_t prefix_len = 0;
    if (r->strip_prefix && m.rest) {
        prefix_len = (size_t)(m.rest - t.path);
        while (prefix_len && t.path[prefix_len - 1] == '/')
            prefix_len--;
    }
    int st =
        gw__proxy(ex, r, gw_pol_table_set(table), upath, (size_t)plen, prefix_len ? t.path : NULL,
                  prefix_len, up, log->target, sizeof log->target, &log->bytes);
    if (st < 0)
        gw__ex_close_after(ex);
}

void gw__request_main(void *arg)
{
    struct gw__exchange *ex = arg;
    rt_defer(gw__exchange_unref, ex);
    uint64_t t0 = rt_now_ns();
    ex->started_ms = t0 / 1000000u;
    /* The listener's caps from the start; the route's replace them once
     * it is known (route_caps). */
    if (ex->lis->caps.max_memory_bytes || ex->lis->caps.max_time_ms)
        caps_apply(ex, ex->lis->caps.max_memory_bytes, ex->lis->caps.max_time_ms, NULL);
    atomic_fetch_add_explicit(&gw.requests_in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&gw.requests_total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ex->lis->stats->requests, 1, memory_order_relaxed);
    rt_defer(in_flight_done, NULL);
    const struct gw_http_head *h = ex->head;
    struct gw__req_log log = {0};

    char gen[17];
    gw__request_id(gen);
    size_t idlen = 0;
    const char *id = gw_http_request_id(h, gen, &idlen);
    if (idlen >= GW__REQUEST_ID_SIZE)
        idlen = GW__REQUEST_ID_SIZE - 1;
    memcpy(ex->request_id, id, idlen);
    ex->request_id[idlen] = 0;
    gw__client_resolve(ex->lis->trusted, ex->lis->ntrusted, ex->client_addr, h, ex->client,
                       GW__ADDR_TEXT_SIZE, &ex->peer_trusted);

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
        gw__ex_error(ex, 400, "invalid request target", false);
        /* Logged as received, up to its query: a query may carry a
         * credential (key_auth's parameter), which no log holds. */
        size_t plen = strcspn(h->target, "?");
        if (h->target[plen] && tbuf) {
            memcpy(tbuf, h->target, plen);
            tbuf[plen] = '\0';
            path = tbuf;
        } else if (h->target[plen]) {
            path = NULL;
        }
        goto out;
    }
    gw__request_detail_set(h->method, t.path, t.path_len, NULL, NULL);
    ex->lis->handler(ex, &t, &log);
    ex->pol = NULL; /* on the handler's stack, gone now */
    path = t.path;
out:
    /* Over its cap after its answer: the connection records the request
     * (conn.c), once; this process must not log it as served too. */
    rt_exit_if_over_cap();
    uint64_t dur = (rt_now_ns() - t0) / 1000;
    gw_metrics_request(log.route_name, ex->status, dur);
    if (gw.cfg->access_log)
        gw__access_log(ex, h->method, path, log.route_name, log.consumer,
                       log.target[0] ? log.target : NULL, ex->status, log.bytes, dur, log.version,
                       NULL);
}
