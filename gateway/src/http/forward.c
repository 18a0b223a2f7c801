/* forward.c: the heads a proxy writes — the upstream request, the client
 * response, chunked framing and JSON error responses.
 *
 * Hop-by-hop fields (RFC 9110 §7.6.1) never cross the gateway. A peer's
 * Connection field may name more fields to drop, but never Host, framing
 * fields or the fields the gateway adds: those are written after the
 * Connection list is applied, from the gateway's own knowledge, so a client
 * cannot strip X-Forwarded-For (CVE-2022-31813, CVE-2024-45410). The fields
 * that tell an upstream who the client is and what it addressed (Forwarded,
 * X-Forwarded-*, X-Real-IP) are the gateway's own: what a client sends under
 * those names is never copied as sent, and neither is what it sends under
 * the other names frameworks trust for the scheme, host, client address or
 * path (field_rules). Writers fill a caller's buffer and
 * fail with -ENOSPC rather than truncate.
 */
#include "gw/http1.h"
#include "http_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct out {
    char *buf;
    size_t cap, len;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void field(struct out *o, const char *name, const char *v, size_t vn)
{
    puts_(o, name);
    put(o, ": ", 2);
    put(o, v, vn);
    put(o, "\r\n", 2);
}

/* Fields the head writers treat apart, by name (lower case): one row per
 * field, its flags saying what becomes of it. */
enum {
    F_HOP = 1u,     /* hop-by-hop (RFC 9110 §7.6.1): never crosses the gateway */
    F_OWNED = 2u,   /* written by the gateway from its own knowledge: never copied, never
                     * removable by a Connection field or set by a route edit */
    F_DROPPED = 4u, /* about the client or what it addressed (scheme, host, address,
                     * path), which frameworks trust: a client's copy is never passed on;
                     * the gateway does not write it, a route edit may */
};

struct field_rule {
    const char *name;
    unsigned flags;
};

static const struct field_rule field_rules[] = {
    {"connection", F_HOP},
    {"keep-alive", F_HOP},
    {"proxy-connection", F_HOP},
    {"te", F_HOP},
    {"trailer", F_HOP},
    {"transfer-encoding", F_HOP | F_OWNED},
    {"upgrade", F_HOP},
    {"host", F_OWNED},
    {"content-length", F_OWNED},
    {"x-forwarded-for", F_OWNED},
    {"x-forwarded-proto", F_OWNED},
    {"x-forwarded-host", F_OWNED},
    {"x-forwarded-port", F_OWNED},
    {"x-forwarded-prefix", F_OWNED},
    {"x-real-ip", F_OWNED},
    {"forwarded", F_OWNED},
    {"x-request-id", F_OWNED},
    /* the scheme: Rack, Django and Spring read these for https */
    {"x-forwarded-ssl", F_DROPPED},
    {"x-forwarded-scheme", F_DROPPED},
    {"x-forwarded-protocol", F_DROPPED},
    {"x-url-scheme", F_DROPPED},
    {"front-end-https", F_DROPPED},
    /* the host */
    {"x-forwarded-server", F_DROPPED},
    {"x-host", F_DROPPED},
    {"x-original-host", F_DROPPED},
    /* the path: IIS URL Rewrite, Symfony and Zend route on these */
    {"x-original-url", F_DROPPED},
    {"x-rewrite-url", F_DROPPED},
    {"x-original-uri", F_DROPPED},
    {"x-forwarded-uri", F_DROPPED},
    /* the client's address: CDNs' and load balancers' fields, which
     * client-IP libraries try in turn */
    {"x-forwarded", F_DROPPED},
    {"forwarded-for", F_DROPPED},
    {"true-client-ip", F_DROPPED},
    {"x-client-ip", F_DROPPED},
    {"client-ip", F_DROPPED},
    {"x-cluster-client-ip", F_DROPPED},
    {"cf-connecting-ip", F_DROPPED},
    {"fastly-client-ip", F_DROPPED},
    {"x-proxyuser-ip", F_DROPPED},
    {"x-originating-ip", F_DROPPED},
    {"x-remote-ip", F_DROPPED},
    {"x-remote-addr", F_DROPPED},
};

/* The flags of field `name` (n bytes, any case); 0 for an ordinary field. */
static unsigned field_flags(const char *name, size_t n)
{
    if (n >= 6 && gw__http_ieq(name, 6, "proxy-"))
        return F_HOP;
    for (size_t i = 0; i < sizeof field_rules / sizeof field_rules[0]; i++)
        if (gw__http_ieq(name, n, field_rules[i].name))
            return field_rules[i].flags;
    return 0;
}

/* Named in a Connection field of h (and removable that way). */
static bool named_in_connection(const struct gw_http_head *h, const char *name, size_t n)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (!gw__http_ieq(f->name, f->name_len, "connection"))
            continue;
        size_t pos = 0, tl;
        const char *t;
        while (gw__http_list_next(f->value, f->value_len, &pos, &t, &tl)) {
            bool eq = tl == n;
            for (size_t k = 0; eq && k < n; k++)
                eq = gw__http_lower(t[k]) == gw__http_lower(name[k]);
            if (eq)
                return true;
        }
    }
    return false;
}

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

const char *gw_http_request_id(const struct gw_http_head *h, const char *generated, size_t *len)
{
    size_t n = 0;
    const char *v = h ? gw_http_head_get(h, "x-request-id", &n) : NULL;
    bool ok = v && n >= 1 && n <= 128 && (h ? gw_http_head_count(h, "x-request-id") == 1 : false);
    for (size_t i = 0; ok && i < n; i++)
        ok = id_char(v[i]);
    if (!ok) {
        v = generated;
        n = generated ? strlen(generated) : 0;
    }
    if (len)
        *len = n;
    return v;
}

/* Out of a route edit's reach. */
static bool protected_name(const char *name, size_t n)
{
    return field_flags(name, n) & (F_HOP | F_OWNED);
}

/* Dropped from the copy by a route edit: named in `remove` or `set`. */
static bool edited_away(const struct gw_http_edits *e, const char *name, size_t n)
{
    if (!e || protected_name(name, n))
        return false;
    for (size_t i = 0; i < e->nremove; i++)
        if (gw__http_ieq(name, n, e->remove[i]))
            return true;
    for (size_t i = 0; i < e->nset; i++)
        if (gw__http_ieq(name, n, e->set[i].name))
            return true;
    return false;
}

static void put_edit_fields(struct out *o, const struct gw_http_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(kv[i].name), vl = strlen(kv[i].value);
        bool ok = nl > 0 && !protected_name(kv[i].name, nl);
        for (size_t k = 0; ok && k < nl; k++)
            ok = gw__http_is_tchar((unsigned char)kv[i].name[k]);
        for (size_t k = 0; ok && k < vl; k++)
            ok = kv[i].value[k] != '\r' && kv[i].value[k] != '\n';
        if (ok)
            field(o, kv[i].name, kv[i].value, vl);
    }
}

/* Writes a route's `set` and `add` fields. */
static void put_edits(struct out *o, const struct gw_http_edits *e)
{
    if (!e)
        return;
    put_edit_fields(o, e->set, e->nset);
    put_edit_fields(o, e->add, e->nadd);
}

/* Copies the end-to-end fields of h, skipping those with a flag in `skip`,
 * Connection-named ones and those a route edit drops; `keep_upgrade` keeps
 * Upgrade for a tunnel. */
static void copy_fields(struct out *o, const struct gw_http_head *h, bool keep_upgrade,
                        const struct gw_http_edits *e, unsigned skip)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (keep_upgrade && gw__http_ieq(f->name, f->name_len, "upgrade")) {
            field(o, "Upgrade", f->value, f->value_len);
            continue;
        }
        if (field_flags(f->name, f->name_len) & skip)
            continue;
        if (edited_away(e, f->name, f->name_len))
            continue;
        if (named_in_connection(h, f->name, f->name_len))
            continue;
        put(o, f->name, f->name_len);
        put(o, ": ", 2);
        put(o, f->value, f->value_len);
        put(o, "\r\n", 2);
    }
}

/* Appends all values of field `name` in h, comma-joined; false if none. */
static bool join_values(struct out *o, const struct gw_http_head *h, const char *name)
{
    bool any = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (!gw__http_ieq(f->name, f->name_len, name) || !f->value_len)
            continue;
        if (any)
            put(o, ", ", 2);
        put(o, f->value, f->value_len);
        any = true;
    }
    return any;
}

/* Writes Transfer-Encoding: <codings of h other than chunked>, chunked. */
static void put_te_chunked(struct out *o, const struct gw_http_head *h)
{
    puts_(o, "Transfer-Encoding: ");
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (!gw__http_ieq(f->name, f->name_len, "transfer-encoding"))
            continue;
        size_t pos = 0, tl;
        const char *t;
        while (gw__http_list_next(f->value, f->value_len, &pos, &t, &tl)) {
            if (gw__http_ieq(t, tl, "chunked") || gw__http_ieq(t, tl, "identity") ||
                !gw__http_coding_known(t, tl))
                continue;
            for (size_t k = 0; k < tl; k++) {
                char c = gw__http_lower(t[k]);
                put(o, &c, 1);
            }
            put(o, ", ", 2);
        }
    }
    puts_(o, "chunked\r\n");
}

/* The authority of an absolute-form request-target, or NULL. */
static const char *target_authority(const struct gw_http_head *h, size_t *len)
{
    const char *t = h->target;
    if (!t || t[0] == '/')
        return NULL;
    const char *s = strstr(t, "://");
    if (!s)
        return NULL;
    s += 3;
    size_t n = strcspn(s, "/?#");
    if (!n)
        return NULL;
    *len = n;
    return s;
}

/* The port of host[:port] h[0..n) ("[v6]:port" too), or NULL when it names
 * none. */
static const char *host_port(const char *h, size_t n, size_t *len)
{
    size_t i = n;
    while (i > 0 && h[i - 1] >= '0' && h[i - 1] <= '9')
        i--;
    if (i == 0 || i == n || h[i - 1] != ':' || (h[0] != '[' && memchr(h, ':', i - 1)))
        return NULL;
    *len = n - i;
    return h + i;
}

static void put_u64(struct out *o, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, v);
    put(o, num, (size_t)n);
}

/* A Forwarded (RFC 7239) parameter value: a token as is, anything else as
 * a quoted-string ("a.example:8080" holds a ':'). */
static void put_forwarded_value(struct out *o, const char *v, size_t n)
{
    bool token = n > 0;
    for (size_t i = 0; token && i < n; i++)
        token = gw__http_is_tchar((unsigned char)v[i]);
    if (token) {
        put(o, v, n);
        return;
    }
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '"' || v[i] == '\\')
            put(o, "\\", 1);
        put(o, &v[i], 1);
    }
    put(o, "\"", 1);
}

/* A Forwarded node for the peer's address: IPv4 as is, IPv6 bracketed and
 * quoted, anything else (a Unix socket, no address) "unknown". */
static void put_forwarded_node(struct out *o, const char *addr)
{
    size_t n = strlen(addr);
    bool v4 = n > 0, v6 = n > 0 && strchr(addr, ':');
    for (size_t i = 0; i < n; i++) {
        char c = addr[i];
        bool digit = c >= '0' && c <= '9';
        bool hex = gw_http_hexval((unsigned char)c) >= 0;
        v4 = v4 && (digit || c == '.');
        v6 = v6 && (hex || c == ':' || c == '.');
    }
    if (v4) {
        put(o, addr, n);
    } else if (v6) {
        puts_(o, "\"[");
        put(o, addr, n);
        puts_(o, "]\"");
    } else {
        puts_(o, "unknown");
    }
}

/* The value of field `name` from a trusted hop, or NULL. */
static const char *trusted_value(const struct gw_http_fwd *f, const struct gw_http_head *h,
                                 const char *name, size_t *n)
{
    const char *v = f->peer_trusted ? gw_http_head_get(h, name, n) : NULL;
    return v && *n ? v : NULL;
}

int gw_http_request_head_write(const struct gw_http_head *h, const struct gw_http_fwd *f, char *buf,
                               size_t cap, size_t *out_len)
{
    struct out o = {.buf = buf, .cap = cap};
    if (h->is_response || !f->client_addr || !f->request_id)
        return -EINVAL;
    const char *path = f->path ? f->path : h->target;
    size_t path_len = f->path ? f->path_len : h->target_len;
    for (size_t i = 0; i < path_len; i++)
        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f)
            return -EINVAL;
    for (size_t i = 0; f->prefix && i < f->prefix_len; i++)
        if ((unsigned char)f->prefix[i] <= 0x20 || (unsigned char)f->prefix[i] >= 0x7f)
            return -EINVAL;

    put(&o, h->method, h->method_len);
    put(&o, " ", 1);
    put(&o, path, path_len);
    puts_(&o, " HTTP/1.1\r\n");

    /* The host the client addressed: an absolute-form target's authority
     * overrides its Host field (RFC 9112 §3.2.2). */
    size_t an = 0;
    const char *addressed = target_authority(h, &an);
    if (!addressed)
        addressed = gw_http_head_get(h, "host", &an);

    size_t hn = an;
    const char *host = addressed;
    if (f->host_override) {
        host = f->host_override;
        hn = strlen(host);
    }
    if (host)
        field(&o, "Host", host, hn);

    bool tunnel = f->tunnel && h->upgrade && gw_http_head_get(h, "upgrade", NULL);
    copy_fields(&o, h, tunnel, f->edits, F_HOP | F_OWNED | F_DROPPED);
    put_edits(&o, f->edits);

    /* Framing, from what the parser decided; the body is re-framed. */
    if (h->framing == GW_HTTP_BODY_LENGTH) {
        puts_(&o, "Content-Length: ");
        put_u64(&o, h->content_length);
        put(&o, "\r\n", 2);
    } else if (h->framing == GW_HTTP_BODY_CHUNKED) {
        put_te_chunked(&o, h);
    }
    if (tunnel)
        puts_(&o, "Connection: upgrade\r\n");

    /* X-Forwarded-For: the client's chain, appended to; the other fields
     * about the client: a client's values are kept only from a trusted hop,
     * else the gateway writes its own (or none). */
    puts_(&o, "X-Forwarded-For: ");
    if ((f->peer_trusted ||
         (f->keep_forwarded_for && !named_in_connection(h, "x-forwarded-for", 15))) &&
        join_values(&o, h, "x-forwarded-for"))
        put(&o, ", ", 2);
    puts_(&o, f->client_addr);
    put(&o, "\r\n", 2);
    size_t vn;
    const char *v = f->peer_trusted ? gw_http_head_get(h, "x-forwarded-proto", &vn) : NULL;
    if (v && vn)
        field(&o, "X-Forwarded-Proto", v, vn);
    else
        puts_(&o, f->tls ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
    v = f->peer_trusted ? gw_http_head_get(h, "x-forwarded-host", &vn) : NULL;
    if (v && vn)
        field(&o, "X-Forwarded-Host", v, vn);
    else if (addressed)
        field(&o, "X-Forwarded-Host", addressed, an);
    /* X-Forwarded-Port: the port of the host the client addressed, as
     * X-Forwarded-Host and Forwarded's host= carry it, so that a backend
     * builds URLs the client can reach: behind a port mapping (80 to 8080)
     * the port the gateway is bound to is not one. */
    size_t pn = 0;
    const char *port = addressed ? host_port(addressed, an, &pn) : NULL;
    if ((v = trusted_value(f, h, "x-forwarded-port", &vn)))
        field(&o, "X-Forwarded-Port", v, vn);
    else if (port)
        field(&o, "X-Forwarded-Port", port, pn);
    else if (addressed)
        puts_(&o, f->tls ? "X-Forwarded-Port: 443\r\n" : "X-Forwarded-Port: 80\r\n");
    else if (f->port) {
        puts_(&o, "X-Forwarded-Port: ");
        put_u64(&o, f->port);
        put(&o, "\r\n", 2);
    }
    /* X-Forwarded-Prefix: what the route stripped from the path, after a
     * trusted hop's own prefix. */
    v = trusted_value(f, h, "x-forwarded-prefix", &vn);
    if (v || (f->prefix && f->prefix_len)) {
        puts_(&o, "X-Forwarded-Prefix: ");
        if (v)
            put(&o, v, f->prefix_len && v[vn - 1] == '/' ? vn - 1 : vn);
        if (f->prefix)
            put(&o, f->prefix, f->prefix_len);
        put(&o, "\r\n", 2);
    }
    if ((v = trusted_value(f, h, "x-real-ip", &vn)))
        field(&o, "X-Real-IP", v, vn);
    else if (f->client_addr[0])
        field(&o, "X-Real-IP", f->client_addr, strlen(f->client_addr));
    /* Forwarded carries, per hop, what X-Forwarded-For, -Proto and -Host
     * carry, and frameworks build URLs from its first element's proto and
     * host. So it follows X-Forwarded-Proto and -Host, not X-Forwarded-For:
     * a client's elements are kept only from a trusted hop, and the
     * gateway's own element comes last. */
    puts_(&o, "Forwarded: ");
    if (f->peer_trusted && join_values(&o, h, "forwarded"))
        put(&o, ", ", 2);
    puts_(&o, "for=");
    put_forwarded_node(&o, f->client_addr);
    if (addressed) {
        puts_(&o, ";host=");
        put_forwarded_value(&o, addressed, an);
    }
    puts_(&o, f->tls ? ";proto=https\r\n" : ";proto=http\r\n");
    puts_(&o, "X-Request-Id: ");
    puts_(&o, f->request_id);
    puts_(&o, "\r\n\r\n");

    if (o.overflow)
        return -ENOSPC;
    *out_len = o.len;
    return 0;
}

int gw_http_response_head_write(const struct gw_http_head *r, const struct gw_http_head *req,
                                const char *request_id, bool keep_alive, char *buf, size_t cap,
                                size_t *out_len, enum gw_http_out_framing *framing,
                                bool *keep_alive_out)
{
    return gw_http_response_head_write_edited(r, req, request_id, keep_alive, NULL, buf, cap,
                                              out_len, framing, keep_alive_out);
}

int gw_http_response_head_write_edited(const struct gw_http_head *r, const struct gw_http_head *req,
                                       const char *request_id, bool keep_alive,
                                       const struct gw_http_edits *edits, char *buf, size_t cap,
                                       size_t *out_len, enum gw_http_out_framing *framing,
                                       bool *keep_alive_out)
{
    struct out o = {.buf = buf, .cap = cap};
    if (!r->is_response || (req && req->is_response))
        return -EINVAL;
    bool client10 = req && req->version_minor == 0;
    bool head_req = req && gw__http_ieq(req->method, req->method_len, "HEAD");
    bool ka = keep_alive && (!req || req->keep_alive);
    bool upgrade = r->status == 101 && r->upgrade;
    enum gw_http_out_framing fr;

    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %03d ", r->status);
    put(&o, line, (size_t)n);
    put(&o, r->reason, r->reason_len);
    put(&o, "\r\n", 2);

    copy_fields(&o, r, upgrade, edits, F_HOP | F_OWNED);
    put_edits(&o, edits);

    if (head_req || r->status == 204 || r->status == 304 || r->status < 200) {
        fr = GW_HTTP_OUT_NONE;
        /* A HEAD or 304 answer may state the length the body would have. */
        if (r->status != 204 && r->status >= 200) {
            size_t vn;
            const char *v = gw_http_head_get(r, "content-length", &vn);
            if (v)
                field(&o, "Content-Length", v, vn);
        }
    } else if (r->framing == GW_HTTP_BODY_LENGTH) {
        fr = GW_HTTP_OUT_LENGTH;
        puts_(&o, "Content-Length: ");
        put_u64(&o, r->content_length);
        put(&o, "\r\n", 2);
    } else if ((r->framing == GW_HTTP_BODY_CHUNKED || r->framing == GW_HTTP_BODY_CLOSE) &&
               !client10) {
        fr = GW_HTTP_OUT_CHUNKED;
        put_te_chunked(&o, r);
    } else if (r->framing == GW_HTTP_BODY_NONE) {
        fr = GW_HTTP_OUT_NONE;
        puts_(&o, "Content-Length: 0\r\n");
    } else {
        fr = GW_HTTP_OUT_CLOSE;
        ka = false;
    }
    if (upgrade) {
        puts_(&o, "Connection: upgrade\r\n");
        ka = false;
    } else if (!ka) {
        puts_(&o, "Connection: close\r\n");
    } else if (client10) {
        puts_(&o, "Connection: keep-alive\r\n");
    }
    if (request_id) {
        puts_(&o, "X-Request-Id: ");
        puts_(&o, request_id);
        put(&o, "\r\n", 2);
    }
    put(&o, "\r\n", 2);
    if (o.overflow)
        return -ENOSPC;
    *out_len = o.len;
    *framing = fr;
    *keep_alive_out = ka;
    return 0;
}

int gw_http_chunk_start(uint64_t len, char *buf, size_t cap)
{
    char tmp[24];
    if (len == 0)
        return -EINVAL;
    int n = snprintf(tmp, sizeof(tmp), "%" PRIx64 "\r\n", len);
    if ((size_t)n > cap)
        return -ENOSPC;
    memcpy(buf, tmp, (size_t)n);
    return n;
}

int gw_http_chunk_end(char *buf, size_t cap)
{
    if (cap < 2)
        return -ENOSPC;
    memcpy(buf, "\r\n", 2);
    return 2;
}

int gw_http_chunk_last(char *buf, size_t cap)
{
    if (cap < 5)
        return -ENOSPC;
    memcpy(buf, "0\r\n\r\n", 5);
    return 5;
}

const char *gw_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

static void json_string(struct out *o, const char *s)
{
    put(o, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(o, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            int n = snprintf(e, sizeof(e), "\\u%04x", c);
            put(o, e, (size_t)n);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
    put(o, "\"", 1);
}

int gw_http_error_write(int status, const char *message, const char *request_id, bool close,
                        char *buf, size_t cap, size_t *out_len)
{
    char body[512];
    struct out b = {.buf = body, .cap = sizeof(body)};
    puts_(&b, "{\"error\": ");
    json_string(&b, message ? message : gw_http_status_text(status));
    puts_(&b, ", \"request_id\": ");
    if (request_id)
        json_string(&b, request_id);
    else
        puts_(&b, "null");
    puts_(&b, "}\n");
    if (b.overflow)
        return -ENOSPC;

    struct out o = {.buf = buf, .cap = cap};
    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %03d ", status);
    put(&o, line, (size_t)n);
    puts_(&o, gw_http_status_text(status));
    puts_(&o, "\r\nContent-Type: application/json\r\nContent-Length: ");
    put_u64(&o, b.len);
    put(&o, "\r\n", 2);
    if (request_id) {
        bool ok = true;
        for (const char *s = request_id; *s; s++)
            if ((unsigned char)*s < 0x21 || (unsigned char)*s >= 0x7f)
                ok = false;
        if (ok) {
            puts_(&o, "X-Request-Id: ");
            puts_(&o, request_id);
            put(&o, "\r\n", 2);
        }
    }
    if (close)
        puts_(&o, "Connection: close\r\n");
    put(&o, "\r\n", 2);
    put(&o, body, b.len);
    if (o.overflow)
        return -ENOSPC;
    *out_len = o.len;
    return 0;
}
