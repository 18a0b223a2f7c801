/*
 * admin.c: the admin API's front door — bearer-token check, dispatch by
 * method and path, the JSON error shape — and the endpoints that only read
 * gateway state and render what other modules report as structs: /healthz,
 * /readyz, /metrics (its text: exposition.c), /admin/system,
 * /admin/upstreams. The route endpoints are in routes.c, the process and
 * supervision-tree endpoints in procs.c, the workflow endpoints in
 * workflows.c, the TLS endpoints in tls.c, the policy and consumer
 * endpoints in policies.c; the dashboard's files under /ui (no token, the
 * checks before it all the same) in ../ui/serve.c. GET /admin/events is
 * admitted and authorised here like every path, then served by events.c,
 * which writes a stream.
 *
 * Nothing here keeps state between requests except the kill-reason set in
 * procs.c. Before the token, every request (probes too) passes the checks
 * that keep browsers out, described in gw/admin.h: a loopback admin API
 * without a token is otherwise open to any web page through DNS rebinding
 * or a cross-site form. The token is compared in constant time and never
 * logged or echoed; /healthz and /readyz answer without it (they reveal
 * nothing and probes rarely carry credentials), everything else needs it
 * when the gateway has one.
 */
#include "gw/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin_int.h"
#include "gw/gateway.h"
#include "gw/metrics.h"
#include "gw/router.h"
#include "gw/upstream.h"
#include "gw_version.h"
#include "route/holder.h"
#include "jpos/json.h"
#include "policy/policy.h"
#include "ui/ui.h"
#include "workflow/status.h"

#define CT_JSON "application/json"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

/* ---- helpers --------------------------------------------------------------- */

bool gw_admin_token_equal(const char *given, size_t given_len, const char *expected,
                          size_t expected_len)
{
    /* Every byte of `given` is compared against a byte of `expected` (cycled),
     * so the loop runs given_len times whatever either holds; the length
     * difference is folded in without a branch. volatile keeps the compiler
     * from ending the loop at the first difference. */
    volatile unsigned char diff = 0;
    size_t d = given_len ^ expected_len;
    for (size_t i = 0; i < sizeof d; i++)
        diff |= (unsigned char)(d >> (8 * i));
    if (expected_len == 0)
        return given_len == 0 && diff == 0; /* never configured as empty */
    for (size_t i = 0; i < given_len; i++)
        diff |= (unsigned char)given[i] ^ (unsigned char)expected[i % expected_len];
    return diff == 0;
}

void gw_admin_pid_format(rt_pid pid, char buf[GW_ADMIN_PID_BUF])
{
    snprintf(buf, GW_ADMIN_PID_BUF, "<0.%" PRIu32 ".%" PRIu32 ">", (uint32_t)(pid & 0xffffffffu),
             (uint32_t)(pid >> 32));
}

static int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned dgt = (unsigned)(s[i] - '0');
        if (v > (max - dgt) / 10)
            return -EINVAL;
        v = v * 10 + dgt;
    }
    *out = v;
    return 0;
}

int gw_admin_pid_parse(const char *s, size_t len, rt_pid *out)
{
    if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
        s++;
        len -= 2;
    } else if (len >= 6 && strncasecmp(s, "%3C", 3) == 0 &&
               strncasecmp(s + len - 3, "%3E", 3) == 0) {
        s += 3;
        len -= 6;
    }
    const char *dot = memchr(s, '.', len);
    uint64_t v = 0;
    if (!dot) {
        if (parse_u64(s, len, UINT64_MAX, &v) < 0 || v == 0)
            return -EINVAL;
        *out = v;
        return 0;
    }
    /* "0.SLOT.GEN" */
    if (dot != s + 1 || s[0] != '0')
        return -EINVAL;
    const char *rest = dot + 1;
    size_t rlen = len - 2;
    const char *dot2 = memchr(rest, '.', rlen);
    if (!dot2)
        return -EINVAL;
    uint64_t slot = 0, gen = 0;
    if (parse_u64(rest, (size_t)(dot2 - rest), UINT32_MAX, &slot) < 0 ||
        parse_u64(dot2 + 1, rlen - (size_t)(dot2 - rest) - 1, UINT32_MAX, &gen) < 0)
        return -EINVAL;
    v = gen << 32 | slot;
    if (v == 0)
        return -EINVAL;
    *out = v;
    return 0;
}

json_t *gw__admin_pid_json(rt_pid pid)
{
    if (!pid)
        return json_null();
    char buf[GW_ADMIN_PID_BUF];
    gw_admin_pid_format(pid, buf);
    return json_string(buf);
}

static void set_body(struct gw_admin_response *resp, int status, const char *ct, char *body,
                     size_t len)
{
    resp->status = status;
    resp->content_type = ct;
    resp->body = body;
    resp->body_len = len;
}

/* Last resort when even the error cannot be allocated. */
static void out_of_memory(struct gw_admin_response *resp)
{
    static const char text[] = "{\"error\":\"out_of_memory\",\"detail\":null}\n";
    char *b = malloc(sizeof text);
    if (b)
        memcpy(b, text, sizeof text);
    set_body(resp, 503, CT_JSON, b, b ? sizeof text - 1 : 0);
}

void gw__admin_json(struct gw_admin_response *resp, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!text) {
        out_of_memory(resp);
        return;
    }
    size_t n = strlen(text);
    char *b = realloc(text, n + 2);
    if (!b) {
        free(text);
        out_of_memory(resp);
        return;
    }
    b[n] = '\n';
    b[n + 1] = 0;
    set_body(resp, status, CT_JSON, b, n + 1);
}

void gw__admin_error(struct gw_admin_response *resp, int status, const char *code, json_t *detail)
{
    json_t *o = json_object();
    if (o) {
        json_object_set_new(o, "error", json_string(code));
        json_object_set_new(o, "detail", detail ? detail : json_null());
    } else {
        json_decref(detail);
    }
    gw__admin_json(resp, status, o);
}

void gw__admin_errorf(struct gw_admin_response *resp, int status, const char *code, const char *fmt,
                      ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    gw__admin_error(resp, status, code, json_string(buf));
}

void gw__admin_timeout(struct gw_admin_response *resp, rt_pid pid, const char *name,
                       const char *call, int64_t timeout_ms)
{
    if (!pid && name)
        pid = rt_whereis(name);
    struct rt_proc_info info;
    if (!name && pid && rt_proc_info(pid, &info) == 0 && info.name[0])
        name = info.name;
    gw__admin_error(resp, 504, "timeout",
                    json_pack("{s:o,s:s?,s:s,s:I}", "process", gw__admin_pid_json(pid), "name",
                              name && *name ? name : NULL, "call", call, "timeout_ms",
                              (json_int_t)timeout_ms));
}

int gw__admin_query(const char *query, const char *key, char *buf, size_t cap)
{
    if (!query)
        return -ENOENT;
    size_t klen = strlen(key);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == klen && memcmp(p, key, klen) == 0) {
            const char *v = eq ? eq + 1 : end;
            size_t n = 0;
            while (v < end) {
                char c = *v++;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    if (end - v < 2 || gw_http_hexval(v[0]) < 0 || gw_http_hexval(v[1]) < 0)
                        return -EINVAL;
                    c = (char)(gw_http_hexval(v[0]) * 16 + gw_http_hexval(v[1]));
                    v += 2;
                }
                if (c == 0 || n + 1 >= cap)
                    return -EINVAL;
                buf[n++] = c;
            }
            buf[n] = 0;
            return 0;
        }
        p = *end ? end + 1 : end;
    }
    return -ENOENT;
}

uint64_t gw__admin_route_version(void)
{
    if (gw.routes)
        return route_holder_version(gw.routes);
    struct gw_router_counts c = {0};
    gw_router_counts(&c);
    return c.version;
}

/* ---- who may call ------------------------------------------------------------ */

static bool same_host(const struct gw_hostport *a, const struct gw_hostport *b)
{
    if (a->ipv6 != b->ipv6)
        return false;
    if (a->ipv6) {
        struct in6_addr x, y;
        return inet_pton(AF_INET6, a->name, &x) == 1 && inet_pton(AF_INET6, b->name, &y) == 1 &&
               memcmp(&x, &y, sizeof x) == 0;
    }
    return strcmp(a->name, b->name) == 0;
}

/* Fills *ss and returns true when `h` is an IP literal. */
static bool literal_addr(const struct gw_hostport *h, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (h->ipv6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        return inet_pton(AF_INET6, h->name, &s6->sin6_addr) == 1;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    return inet_pton(AF_INET, h->name, &s4->sin_addr) == 1;
}

/* Which rule of gw_admin_host_allowed a Host value passes. */
enum host_rule { HOST_REFUSED, HOST_ALLOWED_HOSTS, HOST_OWN };

static enum host_rule host_rule(const struct gw_admin_site *site, const char *host, size_t len)
{
    struct gw_hostport h;
    if (site->port == 0 || gw_hostport_parse(host, len, &h) < 0)
        return HOST_REFUSED;
    uint16_t port = h.port ? h.port : 80;
    for (size_t i = 0; i < site->nallowed_hosts; i++) {
        const struct gw_hostport *e = &site->allowed_hosts[i];
        if (same_host(e, &h) && (e->port == 0 || e->port == port))
            return HOST_ALLOWED_HOSTS;
    }
    struct sockaddr_storage ss;
    if (literal_addr(&h, &ss)) {
        if (!site->loopback)
            return HOST_OWN;
        return port == site->port && gw_sockaddr_is_loopback((const struct sockaddr *)&ss)
                   ? HOST_OWN
                   : HOST_REFUSED;
    }
    if (port != site->port)
        return HOST_REFUSED;
    return strcmp(h.name, "localhost") == 0 || (site->host && strcasecmp(h.name, site->host) == 0)
               ? HOST_OWN
               : HOST_REFUSED;
}

bool gw_admin_host_allowed(const struct gw_admin_site *site, const char *host, size_t len)
{
    return host_rule(site, host, len) != HOST_REFUSED;
}

static bool value_is(const char *v, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(v, want, len) == 0;
}

/* True when `origin` is the origin of a page served for the authority the
 * request addressed: "http://" + that authority (a missing port being 80 on
 * both sides), or, when `https` is allowed, "https://" + it (443). */
static bool origin_is_own(const char *origin, size_t olen, const char *host, size_t hlen,
                          bool https)
{
    size_t skip;
    uint16_t dflt;
    if (olen >= 7 && strncasecmp(origin, "http://", 7) == 0) {
        skip = 7;
        dflt = 80;
    } else if (https && olen >= 8 && strncasecmp(origin, "https://", 8) == 0) {
        skip = 8;
        dflt = 443;
    } else {
        return false;
    }
    struct gw_hostport o, h;
    if (gw_hostport_parse(origin + skip, olen - skip, &o) < 0 ||
        gw_hostport_parse(host, hlen, &h) < 0)
        return false;
    return same_host(&o, &h) && (o.port ? o.port : dflt) == (h.port ? h.port : dflt);
}

/* Content-Type: application/json, with parameters or not. */
static bool is_json_body(const struct gw_http_head *head)
{
    size_t len = 0;
    const char *v = gw_http_head_get(head, "content-type", &len);
    if (!v || gw_http_head_count(head, "content-type") != 1)
        return false;
    const char *semi = memchr(v, ';', len);
    size_t n = semi ? (size_t)(semi - v) : len;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return value_is(v, n, "application/json");
}

static void refuse_media_type(struct gw_admin_response *resp)
{
    gw__admin_errorf(resp, 415, "unsupported_media_type",
                     "a request body must be JSON, sent with Content-Type: application/json");
}

/* True when the request carries the gateway's token (or none is needed). */
static bool authorised(const struct gw_admin_request *req)
{
    const char *token = gw.admin_token;
    if (!token)
        return true;
    if (!req->head || gw_http_head_count(req->head, "authorization") != 1)
        return false;
    size_t len = 0;
    const char *v = gw_http_head_get(req->head, "authorization", &len);
    if (!v || len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    v += 7;
    len -= 7;
    while (len && *v == ' ') {
        v++;
        len--;
    }
    return gw_admin_token_equal(v, len, token, strlen(token));
}

bool gw_admin_admit_head(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    const struct gw_http_head *head = req->head;
    size_t flen = 0;
    const char *field = head ? gw_http_head_get(head, "host", &flen) : NULL;
    /* The Host rule keeps out pages that reach the listener under a name of
     * their own (DNS rebinding). Such a page cannot know the token, so a
     * request carrying the valid token skips the rule: a client that
     * reaches the admin API by a name not listed (Prometheus through a
     * service name) is served. The Host must still be there, once. */
    bool token_ok = gw.admin_token && authorised(req);
    if (!field || gw_http_head_count(head, "host") != 1 ||
        (!token_ok && (!gw_admin_host_allowed(&gw.admin_site, field, flen) ||
                       (req->authority && !gw_admin_host_allowed(&gw.admin_site, req->authority,
                                                                 req->authority_len))))) {
        gw__admin_errorf(resp, 421, "misdirected_request",
                         "the admin API answers only requests addressed to it: Host must be its "
                         "address, localhost, an IP address it listens on, or a name in "
                         "admin.allowed_hosts%s",
                         gw.admin_token ? " (any name with the bearer token)" : "");
        return false;
    }
    /* The authority the request addressed, which its page's origin names. */
    const char *host = req->authority ? req->authority : field;
    size_t hlen = req->authority ? req->authority_len : flen;
    size_t len = 0;
    const char *site = gw_http_head_get(head, "sec-fetch-site", &len);
    if (site && !value_is(site, len, "same-origin") && !value_is(site, len, "none")) {
        gw__admin_errorf(resp, 403, "cross_origin",
                         "the admin API does not answer requests made on behalf of another site");
        return false;
    }
    /* A page served by a TLS proxy in front of the admin API has an https
     * origin; that proxy's name is one of allowed_hosts. */
    bool https = host_rule(&gw.admin_site, host, hlen) == HOST_ALLOWED_HOSTS;
    const char *origin = gw_http_head_get(head, "origin", &len);
    if (origin && (gw_http_head_count(head, "origin") != 1 ||
                   !origin_is_own(origin, len, host, hlen, https))) {
        gw__admin_errorf(resp, 403, "cross_origin",
                         "the admin API answers only its own origin (http://%.*s%s%.*s), not "
                         "another site's page",
                         (int)hlen, host, https ? " or https://" : "", https ? (int)hlen : 0, host);
        return false;
    }
    bool body_follows = head->framing == GW_HTTP_BODY_CHUNKED ||
                        (head->framing == GW_HTTP_BODY_LENGTH && head->content_length > 0);
    if (body_follows && !is_json_body(head)) {
        refuse_media_type(resp);
        return false;
    }
    return true;
}

/* Applies the checks of gw/admin.h that come before the token: those on
 * the head, then those on the body. Returns false after filling *resp with
 * the refusal. */
static bool admitted(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    if (!gw_admin_admit_head(req, resp))
        return false;
    if (req->body_len == 0)
        return true;
    if (!is_json_body(req->head)) {
        refuse_media_type(resp);
        return false;
    }
    unsigned line = 0, col = 0;
    if (jpos_depth_check(req->body, req->body_len, GW_ADMIN_MAX_JSON_DEPTH, &line, &col) < 0) {
        gw__admin_error(resp, 400, "json_too_deep",
                        json_pack("{s:s,s:i,s:i,s:i}", "message",
                                  "the JSON body nests arrays and objects too deeply", "limit",
                                  GW_ADMIN_MAX_JSON_DEPTH, "line", (int)line, "column", (int)col));
        return false;
    }
    return true;
}

/* ---- endpoints ----------------------------------------------------------- */

static void h_healthz(struct gw_admin_response *resp)
{
    gw__admin_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(struct gw_admin_response *resp)
{
    /* relaxed: flags read on their own, no data published through them. */
    bool ready = atomic_load_explicit(&gw.ready, memory_order_relaxed) != 0;
    bool draining = atomic_load_explicit(&gw.draining, memory_order_relaxed) != 0;
    if (ready && !draining) {
        gw__admin_json(resp, 200, json_pack("{s:s}", "status", "ready"));
        return;
    }
    gw__admin_error(resp, 503, "not_ready",
                    json_pack("{s:b,s:b,s:I}", "ready", ready, "draining", draining,
                              "routes_version", (json_int_t)gw__admin_route_version()));
}

static void h_metrics(struct gw_admin_response *resp)
{
    char *text = NULL;
    size_t len = 0;
    if (gw_metrics_render(&text, &len) < 0) {
        out_of_memory(resp);
        return;
    }
    set_body(resp, 200, CT_METRICS, text, len);
}

static json_t *listener_json(const char *name, const char *address,
                             const struct gw_listener_stats *s)
{
    /* relaxed: independent counters. */
    return json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:I}", "name", name ? name : "", "address", address ? address : "",
        "connections", (json_int_t)atomic_load_explicit(&s->connections, memory_order_relaxed),
        "accepted", (json_int_t)atomic_load_explicit(&s->accepted, memory_order_relaxed), "refused",
        (json_int_t)atomic_load_explicit(&s->refused, memory_order_relaxed), "requests",
        (json_int_t)atomic_load_explicit(&s->requests, memory_order_relaxed));
}

/* The policies' Redis client: null when tandem.json configures none. */
static json_t *redis_json(void)
{
    struct gw_metrics_redis r;
    gw_metrics_redis_read(&r);
    if (!r.configured)
        return json_null();
    json_t *errors = json_object();
    uint64_t total = 0;
    for (int i = 0; errors && i < GW_METRICS_REDIS_ERRORS; i++) {
        json_object_set_new(errors, gw_metrics_redis_error_names[i],
                            json_integer((json_int_t)r.errors[i]));
        total += r.errors[i];
    }
    /* last_error_ms: wall clock, ms since the epoch; 0 before any error. */
    return json_pack("{s:s,s:b,s:I,s:I,s:I,s:o*,s:s?,s:I}", "address", r.address, "connected", r.up,
                     "round_trips", (json_int_t)r.round_trips, "failures", (json_int_t)total,
                     "connects", (json_int_t)r.connects, "errors", errors, "last_error",
                     r.last_error[0] ? r.last_error : NULL, "last_error_ms",
                     (json_int_t)r.last_error_ms);
}

static void h_system(struct gw_admin_response *resp)
{
    struct rt_system_info si;
    if (rt_system_info(&si) < 0) {
        gw__admin_errorf(resp, 503, "unavailable", "the runtime is not running");
        return;
    }
    json_t *o = json_object();
    json_t *scheds = json_array();
    json_t *listeners = json_array();
    if (!o || !scheds || !listeners) {
        json_decref(o);
        json_decref(scheds);
        json_decref(listeners);
        out_of_memory(resp);
        return;
    }
    uint64_t now = rt_now_ms();
    uint64_t uptime = gw.start_ms && now >= gw.start_ms ? now - gw.start_ms : si.uptime_ms;
    json_object_set_new(o, "version", json_string(TANDEM_VERSION));
    json_object_set_new(o, "uptime_ms", json_integer((json_int_t)uptime));
    /* relaxed: flags and counters read on their own. */
    json_object_set_new(o, "ready",
                        json_boolean(atomic_load_explicit(&gw.ready, memory_order_relaxed)));
    json_object_set_new(o, "draining",
                        json_boolean(atomic_load_explicit(&gw.draining, memory_order_relaxed)));
    for (unsigned i = 0; i < si.schedulers && i < RT_MAX_SCHEDULERS; i++)
        json_array_append_new(scheds, json_pack("{s:i,s:f,s:I,s:I,s:I}", "id", (int)i,
                                                "utilisation", si.sched[i].utilisation, "run_queue",
                                                (json_int_t)si.sched[i].run_queue, "switches",
                                                (json_int_t)si.sched[i].switches, "steals",
                                                (json_int_t)si.sched[i].steals));
    json_object_set_new(o, "schedulers", scheds);
    json_object_set_new(o, "processes",
                        json_pack("{s:I,s:I,s:I,s:I}", "count", (json_int_t)si.process_count,
                                  "limit", (json_int_t)si.process_limit, "spawned",
                                  (json_int_t)si.spawned, "exited", (json_int_t)si.exited));
    json_object_set_new(o, "memory",
                        json_pack("{s:I,s:I,s:I,s:I,s:I}", "rss_bytes", (json_int_t)si.memory_rss,
                                  "processes_bytes", (json_int_t)si.memory_procs, "stacks_in_use",
                                  (json_int_t)si.stacks_in_use, "stacks_pooled",
                                  (json_int_t)si.stacks_pooled, "messages_live",
                                  (json_int_t)si.messages_live));
    for (size_t i = 0; gw.cfg && gw.listener_stats && i < gw.cfg->nlisteners; i++)
        json_array_append_new(listeners, listener_json(gw.cfg->listeners[i].name,
                                                       gw.cfg->listeners[i].address.text,
                                                       &gw.listener_stats[i]));
    json_object_set_new(o, "listeners", listeners);
    json_object_set_new(
        o, "admin",
        listener_json("admin", gw.cfg && gw.cfg->admin.enabled ? gw.cfg->admin.address.text : NULL,
                      &gw.admin_stats));
    json_object_set_new(
        o, "requests",
        json_pack("{s:I,s:I}", "in_flight",
                  (json_int_t)atomic_load_explicit(&gw.requests_in_flight, memory_order_relaxed),
                  "total",
                  (json_int_t)atomic_load_explicit(&gw.requests_total, memory_order_relaxed)));
    struct gw_router_counts rc = {0};
    gw_router_counts(&rc);
    json_object_set_new(o, "routes",
                        json_pack("{s:I,s:I,s:I}", "version", (json_int_t)gw__admin_route_version(),
                                  "reloads_ok", (json_int_t)rc.reloads_ok, "reloads_failed",
                                  (json_int_t)rc.reloads_failed));
    json_object_set_new(o, "redis", redis_json());
    gw__admin_json(resp, 200, o);
}

static const char *balance_name(enum gw_balance b)
{
    switch (b) {
    case GW_BALANCE_LEAST_CONN:
        return "least_conn";
    case GW_BALANCE_WEIGHTED:
        return "weighted";
    default:
        return "round_robin";
    }
}

static json_t *target_json(const struct gw_target_desc *t)
{
    return json_pack("{s:s, s:i, s:b, s:I, s:i, s:i, s:i, s:I, s:I, s:I, s:s?}", "address",
                     t->address, "weight", (int)t->weight, "healthy", t->healthy,
                     "ejected_until_ms", (json_int_t)t->ejected_until_ms, "consecutive_failures",
                     (int)t->consecutive_failures, "active", (int)t->active, "idle", (int)t->idle,
                     "requests", (json_int_t)t->requests, "failures", (json_int_t)t->failures,
                     "ejections", (json_int_t)t->ejections, "last_error",
                     t->last_error[0] ? t->last_error : NULL);
}

static json_t *upstreams_json(const struct gw_upstreams_desc *d)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < d->n; i++) {
        const struct gw_upstream_desc *u = &d->ups[i];
        json_t *targets = json_array();
        for (size_t j = 0; targets && j < u->ntargets; j++)
            json_array_append_new(targets, target_json(&u->targets[j]));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:o}", "name", u->name, "balance",
                                             balance_name(u->balance), "active_health",
                                             u->active_health, "targets", targets));
    }
    return arr;
}

static void h_upstreams(struct gw_admin_response *resp)
{
    struct gw_upstreams_desc *d = NULL;
    int rc = gw_upstreams_describe(&d);
    if (rc < 0) {
        gw__admin_errorf(resp, rc == -ENOMEM ? 503 : 500, "internal", "%s", strerror(-rc));
        return;
    }
    json_t *arr = upstreams_json(d);
    gw_upstreams_desc_free(d);
    gw__admin_json(resp, 200, json_pack("{s:o}", "upstreams", arr));
}

/* ---- dispatch -------------------------------------------------------------- */

enum method { M_GET = 1, M_POST = 2, M_PUT = 4, M_OTHER = 8 };

static enum method method_of(const struct gw_admin_request *req)
{
    const char *m = req->head && req->head->method ? req->head->method : "";
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        return M_GET;
    if (strcmp(m, "POST") == 0)
        return M_POST;
    if (strcmp(m, "PUT") == 0)
        return M_PUT;
    return M_OTHER;
}

static bool allowed(struct gw_admin_response *resp, enum method m, unsigned allow)
{
    if (m & allow)
        return true;
    json_t *a = json_array();
    if (allow & M_GET) {
        json_array_append_new(a, json_string("GET"));
        json_array_append_new(a, json_string("HEAD"));
    }
    if (allow & M_POST)
        json_array_append_new(a, json_string("POST"));
    if (allow & M_PUT)
        json_array_append_new(a, json_string("PUT"));
    gw__admin_error(resp, 405, "method_not_allowed", json_pack("{s:o}", "allow", a));
    /* The same list as an Allow header (RFC 9110 §15.5.6). */
    static const char *const allow_values[8] = {
        [0] = "",
        [M_GET] = "GET, HEAD",
        [M_POST] = "POST",
        [M_GET | M_POST] = "GET, HEAD, POST",
        [M_PUT] = "PUT",
        [M_GET | M_PUT] = "GET, HEAD, PUT",
        [M_POST | M_PUT] = "POST, PUT",
        [M_GET | M_POST | M_PUT] = "GET, HEAD, POST, PUT",
    };
    resp->allow = allow_values[allow & (M_GET | M_POST | M_PUT)];
    return false;
}

static void not_found(struct gw_admin_response *resp, const char *path)
{
    gw__admin_error(resp, 404, "not_found", json_pack("{s:s}", "path", path));
}

/* /admin/processes/{pid}[/kill|/restart] */
static void dispatch_process(const struct gw_admin_request *req, struct gw_admin_response *resp,
                             enum method m, const char *rest)
{
    const char *slash = strchr(rest, '/');
    size_t plen = slash ? (size_t)(slash - rest) : strlen(rest);
    rt_pid pid = 0;
    if (gw_admin_pid_parse(rest, plen, &pid) < 0) {
        gw__admin_error(resp, 400, "bad_pid",
                        json_pack("{s:s#,s:s}", "pid", rest, (int)plen, "expected",
                                  "<0.SLOT.GEN>, 0.SLOT.GEN or a decimal pid"));
        return;
    }
    if (!slash) {
        if (allowed(resp, m, M_GET))
            gw__admin_process(req, resp, pid);
    } else if (strcmp(slash, "/kill") == 0) {
        if (allowed(resp, m, M_POST))
            gw__admin_kill(req, resp, pid);
    } else if (strcmp(slash, "/restart") == 0) {
        if (allowed(resp, m, M_POST))
            gw__admin_restart(req, resp, pid);
    } else {
        not_found(resp, req->path);
    }
}

/* /admin/workflows/{id}[/retry|/resolve] */
static void dispatch_workflow(const struct gw_admin_request *req, struct gw_admin_response *resp,
                              enum method m, const char *rest)
{
    const char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!gw_wf_id_valid(rest, len)) {
        gw__admin_error(resp, 400, "bad_id",
                        json_pack("{s:s#,s:s}", "id", rest, (int)(len > 64 ? 64 : len), "expected",
                                  "32 lower-case hex digits"));
        return;
    }
    char id[WF_ID_LEN + 1];
    memcpy(id, rest, WF_ID_LEN);
    id[WF_ID_LEN] = 0;
    if (!slash) {
        if (allowed(resp, m, M_GET))
            gw__admin_workflow(req, resp, id);
    } else if (strcmp(slash, "/retry") == 0) {
        if (allowed(resp, m, M_POST))
            gw__admin_workflow_retry(req, resp, id);
    } else if (strcmp(slash, "/resolve") == 0) {
        if (allowed(resp, m, M_POST))
            gw__admin_workflow_resolve(req, resp, id);
    } else {
        not_found(resp, req->path);
    }
}

/* /admin/policies/{name}[/state]. Policy names may hold '/' (the route-name
 * alphabet), so a trailing "/state" is the state's, and the name may also
 * be percent-encoded: "a%2Fstate" is the definition named "a/state". */
static void dispatch_policy(const struct gw_admin_request *req, struct gw_admin_response *resp,
                            enum method m, const char *rest)
{
    size_t len = strlen(rest);
    bool state = len > 6 && strcmp(rest + len - 6, "/state") == 0;
    if (state)
        len -= 6;
    char name[GW_POL_NAME_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = rest[i];
        if (c == '%' && i + 2 < len && gw_http_hexval(rest[i + 1]) >= 0 &&
            gw_http_hexval(rest[i + 2]) >= 0) {
            c = (char)(gw_http_hexval(rest[i + 1]) * 16 + gw_http_hexval(rest[i + 2]));
            i += 2;
        }
        if (c == 0 || n >= GW_POL_NAME_MAX) {
            gw__admin_error(resp, 400, "bad_name",
                            json_pack("{s:s,s:i}", "expected", "a policy's name", "max_bytes",
                                      GW_POL_NAME_MAX));
            return;
        }
        name[n++] = c;
    }
    name[n] = 0;
    if (!allowed(resp, m, M_GET))
        return;
    if (state)
        gw__admin_policy_state(req, resp, name);
    else
        gw__admin_policy(req, resp, name);
}

int (*gw_admin_upgrade_fn)(const char *binary, int *new_pid, char *why, size_t cap);

/* POST /admin/upgrade, body empty or {"binary": "/ABSOLUTE/PATH"}: answers
 * once the new gateway is ready (200) or the upgrade failed and this
 * gateway keeps serving (the reason as detail). */
static void h_upgrade(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    /* Copied out of the body, which is freed before the wait: a drain may
     * end this process while it waits, and nothing of it on the heap must
     * be left then. */
    char binary[PATH_MAX] = "";
    if (req->body_len > 0) {
        json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
        json_t *b = json_object_get(body, "binary");
        if (!json_is_object(body) || (b && !json_is_string(b)) || json_object_size(body) > 1 ||
            (json_object_size(body) == 1 && !b)) {
            json_decref(body);
            gw__admin_errorf(resp, 400, "bad_request",
                             "expected no body, or {\"binary\": \"/absolute/path\"}");
            return;
        }
        int n = snprintf(binary, sizeof binary, "%s", b ? json_string_value(b) : "");
        json_decref(body);
        if (n < 0 || (size_t)n >= sizeof binary) {
            gw__admin_errorf(resp, 400, "bad_binary",
                             "\"binary\" takes an absolute path (at most %d bytes)", PATH_MAX - 1);
            return;
        }
    }
    /* Without a token, anyone on the host may call the admin API: naming
     * a program for the gateway to run is then refused, as it would run
     * anyone's program as the gateway's user. The binary it was started
     * from (no body) stays open to them, as SIGUSR2 is to its user. */
    if (binary[0] && !gw.admin_token) {
        gw__admin_errorf(resp, 403, "binary_needs_token",
                         "naming a binary needs an admin token (admin.token_env): without one any "
                         "local user could make the gateway run a program of their choice; send no "
                         "body to upgrade to the binary the gateway was started from");
        return;
    }
    if (!gw_admin_upgrade_fn) {
        gw__admin_errorf(resp, 501, "not_available", "this admin API runs without a gateway");
        return;
    }
    int new_pid = 0;
    char why[1024] = "";
    int rc = gw_admin_upgrade_fn(binary, &new_pid, why, sizeof why);
    if (rc == 0) {
        gw__admin_json(resp, 200,
                       json_pack("{s:s,s:I,s:I}", "outcome", "ok", "old_pid", (json_int_t)getpid(),
                                 "new_pid", (json_int_t)new_pid));
        return;
    }
    int status = rc == -EINVAL ? 400 : rc == -EBUSY ? 409 : 500;
    const char *code = rc == -EINVAL  ? "bad_binary"
                       : rc == -EBUSY ? "upgrade_in_progress"
                                      : "upgrade_failed";
    gw__admin_json(
        resp, status,
        json_pack("{s:s,s:s,s:I}", "error", code, "detail", why, "pid", (json_int_t)getpid()));
}

void gw_admin_handle(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    memset(resp, 0, sizeof *resp);
    const char *path = req->path ? req->path : "";
    enum method m = method_of(req);

    bool ok = admitted(req, resp);
    if (gw_ui_owns(path)) {
        /* The dashboard's files hold no data: served without the token, but
         * only to requests that pass the checks above. */
        if (ok)
            gw_ui_serve(req, resp);
        else
            gw_ui_fields(resp);
        return;
    }
    if (!ok)
        return;
    if (strcmp(path, "/healthz") == 0) {
        if (allowed(resp, m, M_GET))
            h_healthz(resp);
        return;
    }
    if (strcmp(path, "/readyz") == 0) {
        if (allowed(resp, m, M_GET))
            h_readyz(resp);
        return;
    }
    if (!authorised(req)) {
        gw__admin_errorf(resp, 401, "unauthorized",
                         "a valid \"Authorization: Bearer <token>\" header is required");
        resp->www_authenticate = "Bearer realm=\"tandem-admin\"";
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        if (allowed(resp, m, M_GET))
            h_metrics(resp);
    } else if (strcmp(path, "/admin") == 0 || strcmp(path, "/admin/") == 0) {
        gw__admin_error(resp, 404, "not_found",
                        json_pack("{s:s,s:s}", "path", path, "note",
                                  "the dashboard is at /ui/; the JSON API is under "
                                  "/admin/system, /admin/processes, /admin/supervisors, "
                                  "/admin/routes, /admin/upstreams, /admin/tls, /admin/workflows, "
                                  "/admin/policies, /admin/consumers and /metrics"));
    } else if (strcmp(path, "/admin/events") == 0) {
        if (allowed(resp, m, M_GET)) {
            resp->status = 200;
            resp->stream = true;
        }
    } else if (strcmp(path, "/admin/system") == 0) {
        if (allowed(resp, m, M_GET))
            h_system(resp);
    } else if (strcmp(path, "/admin/processes") == 0) {
        if (allowed(resp, m, M_GET))
            gw__admin_processes(req, resp);
    } else if (strncmp(path, "/admin/processes/", 17) == 0 && path[17]) {
        dispatch_process(req, resp, m, path + 17);
    } else if (strcmp(path, "/admin/supervisors") == 0) {
        if (allowed(resp, m, M_GET))
            gw__admin_supervisors(req, resp);
    } else if (strcmp(path, "/admin/routes") == 0) {
        if (!allowed(resp, m, M_GET | M_PUT))
            return;
        if (m == M_GET)
            gw__admin_routes_get(resp);
        else
            gw__admin_routes_replace(req, resp);
    } else if (strcmp(path, "/admin/routes/reload") == 0) {
        if (allowed(resp, m, M_POST))
            gw__admin_routes_reload(resp);
    } else if (strcmp(path, "/admin/routes/validate") == 0) {
        if (allowed(resp, m, M_POST))
            gw__admin_routes_validate(req, resp);
    } else if (strcmp(path, "/admin/routes/rollback") == 0) {
        if (allowed(resp, m, M_POST))
            gw__admin_routes_rollback(req, resp);
    } else if (strncmp(path, "/admin/routes/versions/", 23) == 0 && path[23]) {
        if (allowed(resp, m, M_GET))
            gw__admin_routes_version(resp, path + 23);
    } else if (strcmp(path, "/admin/upgrade") == 0) {
        if (allowed(resp, m, M_POST))
            h_upgrade(req, resp);
    } else if (strcmp(path, "/admin/upstreams") == 0) {
        if (allowed(resp, m, M_GET))
            h_upstreams(resp);
    } else if (strcmp(path, "/admin/tls") == 0) {
        if (allowed(resp, m, M_GET))
            gw__admin_tls_get(resp);
    } else if (strcmp(path, "/admin/tls/reload") == 0) {
        if (allowed(resp, m, M_POST))
            gw__admin_tls_reload(req, resp);
    } else if (strcmp(path, "/admin/workflows") == 0) {
        if (allowed(resp, m, M_GET))
            gw__admin_workflows(req, resp);
    } else if (strncmp(path, "/admin/workflows/", 17) == 0 && path[17]) {
        dispatch_workflow(req, resp, m, path + 17);
    } else if (strcmp(path, "/admin/policies") == 0) {
        if (allowed(resp, m, M_GET))
            gw__admin_policies(req, resp);
    } else if (strncmp(path, "/admin/policies/", 16) == 0 && path[16]) {
        dispatch_policy(req, resp, m, path + 16);
    } else if (strcmp(path, "/admin/consumers") == 0) {
        if (allowed(resp, m, M_GET))
            gw__admin_consumers(req, resp);
    } else {
        not_found(resp, path);
    }
}
