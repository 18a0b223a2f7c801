/* forward.c: the upstream request head a proxy writes, and the field rules
 * and field copying that the client response head (response.c) shares.
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

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw__http_field(struct gw__http_out *o, const char *name, const char *v, size_t vn)
{
    gw__http_puts(o, name);
    gw__http_put(o, ": ", 2);
    gw__http_put(o, v, vn);
    gw__http_put(o, "\r\n", 2);
}

struct field_rule {
    const char *name;
    unsigned flags;
    size_t len; /* strlen(name): most fields differ in length from all */
};

#define RULE(lit, fl)                                                                              \
    {                                                                                              \
        lit, fl, sizeof(lit) - 1                                                                   \
    }

static const struct field_rule field_rules[] = {
    RULE("connection", GW__HTTP_F_HOP),
    RULE("keep-alive", GW__HTTP_F_HOP),
    RULE("proxy-connection", GW__HTTP_F_HOP),
    RULE("te", GW__HTTP_F_HOP),
    RULE("trailer", GW__HTTP_F_HOP),
    RULE("transfer-encoding", GW__HTTP_F_HOP | GW__HTTP_F_OWNED),
    RULE("upgrade", GW__HTTP_F_HOP),
    RULE("host", GW__HTTP_F_OWNED),
    RULE("content-length", GW__HTTP_F_OWNED),
    RULE("x-forwarded-for", GW__HTTP_F_OWNED),
    RULE("x-forwarded-proto", GW__HTTP_F_OWNED),
    RULE("x-forwarded-host", GW__HTTP_F_OWNED),
    RULE("x-forwarded-port", GW__HTTP_F_OWNED),
    RULE("x-forwarded-prefix", GW__HTTP_F_OWNED),
    RULE("x-real-ip", GW__HTTP_F_OWNED),
    RULE("forwarded", GW__HTTP_F_OWNED),
    RULE("x-request-id", GW__HTTP_F_OWNED),
    /* the scheme: Rack, Django and Spring read these for https */
    RULE("x-forwarded-ssl", GW__HTTP_F_DROPPED),
    RULE("x-forwarded-scheme", GW__HTTP_F_DROPPED),
    RULE("x-forwarded-protocol", GW__HTTP_F_DROPPED),
    RULE("x-url-scheme", GW__HTTP_F_DROPPED),
    RULE("front-end-https", GW__HTTP_F_DROPPED),
    /* the host */
    RULE("x-forwarded-server", GW__HTTP_F_DROPPED),
    RULE("x-host", GW__HTTP_F_DROPPED),
    RULE("x-original-host", GW__HTTP_F_DROPPED),
    /* the path: IIS URL Rewrite, Symfony and Zend route on these */
    RULE("x-original-url", GW__HTTP_F_DROPPED),
    RULE("x-rewrite-url", GW__HTTP_F_DROPPED),
    RULE("x-original-uri", GW__HTTP_F_DROPPED),
    RULE("x-forwarded-uri", GW__HTTP_F_DROPPED),
    /* the client's address: CDNs' and load balancers' fields, which
     * client-IP libraries try in turn */
    RULE("x-forwarded", GW__HTTP_F_DROPPED),
    RULE("forwarded-for", GW__HTTP_F_DROPPED),
    RULE("true-client-ip", GW__HTTP_F_DROPPED),
    RULE("x-client-ip", GW__HTTP_F_DROPPED),
    RULE("client-ip", GW__HTTP_F_DROPPED),
    RULE("x-cluster-client-ip", GW__HTTP_F_DROPPED),
    RULE("cf-connecting-ip", GW__HTTP_F_DROPPED),
    RULE("fastly-client-ip", GW__HTTP_F_DROPPED),
    RULE("x-proxyuser-ip", GW__HTTP_F_DROPPED),
    RULE("x-originating-ip", GW__HTTP_F_DROPPED),
    RULE("x-remote-ip", GW__HTTP_F_DROPPED),
    RULE("x-remote-addr", GW__HTTP_F_DROPPED),
};

#define NRULES (sizeof field_rules / sizeof field_rules[0])
/* Longer than every rule's name: such a field is ordinary. */
#define RULE_LEN_MAX 32
_Static_assert(NRULES <= 64, "a length's rules are a 64-bit set");

/* The rules of each name length, as bits of field_rules' indices: a field
 * is compared with the few rules of its length only. Built once. */
static uint64_t rules_of_len[RULE_LEN_MAX + 1];
static pthread_once_t rules_once = PTHREAD_ONCE_INIT;

static void rules_index(void)
{
    for (size_t i = 0; i < NRULES; i++) {
        if (field_rules[i].len > RULE_LEN_MAX)
            abort(); /* a rule no field could match: RULE_LEN_MAX is wrong */
        rules_of_len[field_rules[i].len] |= (uint64_t)1 << i;
    }
}

/* The flags of field `name` (n bytes, any case); 0 for an ordinary field. */
static unsigned field_flags(const char *name, size_t n)
{
    if (n >= 6 && gw__http_ieq(name, 6, "proxy-"))
        return GW__HTTP_F_HOP;
    if (n > RULE_LEN_MAX)
        return 0;
    pthread_once(&rules_once, rules_index);
    for (uint64_t m = rules_of_len[n]; m; m &= m - 1) {
        const struct field_rule *r = &field_rules[__builtin_ctzll(m)];
        if (gw__http_ieq(name, n, r->name))
            return r->flags;
    }
    return 0;
}

/* Where named_in_connection starts: h's first Connection field that lists
 * a name other than "close" and the hop-by-hop fields (which every copy
 * drops whatever Connection says), or h->nheaders when none does: then no
 * field is looked for there. Most messages have none, or "keep-alive". */
size_t gw__http_first_connection(const struct gw_http_head *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (!GW__HTTP_IEQ_LIT(f->name, f->name_len, "connection"))
            continue;
        size_t pos = 0, tl;
        const char *t;
        while (gw__http_list_next(f->value, f->value_len, &pos, &t, &tl))
            if (!GW__HTTP_IEQ_LIT(t, tl, "keep-alive") && !GW__HTTP_IEQ_LIT(t, tl, "close") &&
                !(field_flags(t, tl) & GW__HTTP_F_HOP))
                return i;
    }
    return h->nheaders;
}

/* gw__http_first_connection(h), as the parser stored it when it did. */
static size_t first_connection(const struct gw_http_head *h)
{
    return h->connection_at ? h->connection_at - 1 : gw__http_first_connection(h);
}

/* Named in a Connection field of h (and removable that way); `from` is
 * first_connection(h). */
static bool named_in_connection(const struct gw_http_head *h, size_t from, const char *name,
                                size_t n)
{
    for (size_t i = from; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (!GW__HTTP_IEQ_LIT(f->name, f->name_len, "connection"))
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

/* gw__http_ieq(a, n, b), the first bytes compared before the call: the
 * names a field is compared with in turn (the listener's own, a route's
 * or a policy's edits) mostly differ there. */
static inline bool name_ieq(const char *a, size_t n, const char *b)
{
    return n ? gw__http_lower(a[0]) == gw__http_lower(b[0]) && gw__http_ieq(a, n, b) : !b[0];
}

/* Out of a route edit's reach. */
static bool protected_name(const char *name, size_t n)
{
    return field_flags(name, n) & (GW__HTTP_F_HOP | GW__HTTP_F_OWNED);
}

/* One of the listener's own fields (gw_http_fwd.owned). */
static bool owned_name(const struct gw_http_kv *owned, size_t nowned, const char *name, size_t n)
{
    for (size_t i = 0; i < nowned && i < GW_HTTP_MAX_OWNED; i++)
        if (owned[i].name && name_ieq(name, n, owned[i].name))
            return true;
    return false;
}

/* Dropped from the copy by a route edit: named in `remove` or `set`. */
static bool edited_away(const struct gw_http_edits *e, const char *name, size_t n)
{
    if (!e)
        return false;
    /* The edit's names first: most fields match none, and then the
     * protected names need no look-up. */
    bool named = false;
    for (size_t i = 0; i < e->nremove && !named; i++)
        named = name_ieq(name, n, e->remove[i]);
    for (size_t i = 0; i < e->nset && !named; i++)
        named = name_ieq(name, n, e->set[i].name);
    return named && !protected_name(name, n);
}

/* Field kv (name nl bytes, value vl) may be written by an edit: its name
 * a token, not protected; its value without CR or LF. */
static bool edit_field_ok(const struct gw_http_kv *kv, size_t nl, size_t vl)
{
    bool ok = nl > 0 && !protected_name(kv->name, nl);
    for (size_t k = 0; ok && k < nl; k++)
        ok = gw__http_is_tchar((unsigned char)kv->name[k]);
    for (size_t k = 0; ok && k < vl; k++)
        ok = kv->value[k] != '\r' && kv->value[k] != '\n';
    return ok;
}

static void put_edit_fields(struct gw__http_out *o, const struct gw_http_kv *kv, size_t n,
                            bool checked, const struct gw_http_kv *owned, size_t nowned)
{
    for (size_t i = 0; i < n; i++) {
        size_t vl = strlen(kv[i].value);
        if (checked) {
            /* Checked when they were made (gw_http_edits.checked): a debug
             * build says so if that ever stops being true. */
            assert(edit_field_ok(&kv[i], strlen(kv[i].name), vl));
        } else if (!edit_field_ok(&kv[i], strlen(kv[i].name), vl)) {
            continue;
        }
        if (nowned && owned_name(owned, nowned, kv[i].name, strlen(kv[i].name)))
            continue;
        gw__http_field(o, kv[i].name, kv[i].value, vl);
    }
}

/* A route's `set` and `add` fields, but none of the listener's own. */
static void put_edits_owned(struct gw__http_out *o, const struct gw_http_edits *e,
                            const struct gw_http_kv *owned, size_t nowned)
{
    if (!e)
        return;
    put_edit_fields(o, e->set, e->nset, e->checked, owned, nowned);
    put_edit_fields(o, e->add, e->nadd, e->checked, owned, nowned);
}

/* Writes a route's `set` and `add` fields. */
void gw__http_put_edits(struct gw__http_out *o, const struct gw_http_edits *e)
{
    put_edits_owned(o, e, NULL, 0);
}

/* Copies the end-to-end fields of h but the listener's own (`owned`),
 * skipping those with a flag in `skip`, Connection-named ones and those a
 * route edit drops; `keep_upgrade` keeps Upgrade for a tunnel. */
static void copy_fields_owned(struct gw__http_out *o, const struct gw_http_head *h,
                              bool keep_upgrade, const struct gw_http_edits *e, unsigned skip,
                              const struct gw_http_kv *owned, size_t nowned)
{
    size_t conn = first_connection(h);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (keep_upgrade && GW__HTTP_IEQ_LIT(f->name, f->name_len, "upgrade")) {
            gw__http_field(o, "Upgrade", f->value, f->value_len);
            continue;
        }
        if (field_flags(f->name, f->name_len) & skip)
            continue;
        if (owned_name(owned, nowned, f->name, f->name_len))
            continue;
        if (edited_away(e, f->name, f->name_len))
            continue;
        if (named_in_connection(h, conn, f->name, f->name_len))
            continue;
        gw__http_put(o, f->name, f->name_len);
        gw__http_put(o, ": ", 2);
        gw__http_put(o, f->value, f->value_len);
        gw__http_put(o, "\r\n", 2);
    }
}

void gw__http_copy_fields(struct gw__http_out *o, const struct gw_http_head *h, bool keep_upgrade,
                          const struct gw_http_edits *e, unsigned skip)
{
    copy_fields_owned(o, h, keep_upgrade, e, skip, NULL, 0);
}

/* The listener's own fields with their values (gw_http_fwd.owned): a value
 * comes from a certificate, not from this request, but is written so that
 * no byte of it can end the field or the head. */
static void put_owned(struct gw__http_out *o, const struct gw_http_kv *owned, size_t nowned)
{
    for (size_t i = 0; i < nowned && i < GW_HTTP_MAX_OWNED; i++) {
        const char *name = owned[i].name, *v = owned[i].value;
        if (!name || !v)
            continue;
        size_t nl = strlen(name);
        bool ok = nl > 0 && !(field_flags(name, nl) &
                              (GW__HTTP_F_HOP | GW__HTTP_F_OWNED | GW__HTTP_F_DROPPED));
        for (size_t k = 0; ok && k < nl; k++)
            ok = gw__http_is_tchar((unsigned char)name[k]);
        if (!ok)
            continue;
        gw__http_put(o, name, nl);
        gw__http_put(o, ": ", 2);
        size_t vl = strnlen(v, GW_HTTP_OWNED_VALUE_MAX);
        /* Runs of printable bytes at once; each other byte becomes '?'. */
        for (size_t k = 0; k < vl;) {
            size_t e = k;
            while (e < vl && (unsigned char)v[e] >= 0x20 && (unsigned char)v[e] < 0x7f)
                e++;
            gw__http_put(o, v + k, e - k);
            if (e < vl) {
                gw__http_put(o, "?", 1);
                e++;
            }
            k = e;
        }
        gw__http_put(o, "\r\n", 2);
    }
}

void gw__http_put_date(struct gw__http_out *o)
{
    gw__http_field(o, "Date", gw_http_date_now(), GW_HTTP_DATE_LEN);
}

void gw__http_put_date_unless_copied(struct gw__http_out *o, const struct gw_http_head *h,
                                     const struct gw_http_edits *e)
{
    size_t conn = first_connection(h);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (GW__HTTP_IEQ_LIT(f->name, f->name_len, "date") &&
            !edited_away(e, f->name, f->name_len) &&
            !named_in_connection(h, conn, f->name, f->name_len))
            return;
    }
    for (size_t i = 0; e && i < e->nset + e->nadd; i++) {
        const struct gw_http_kv *kv = i < e->nset ? &e->set[i] : &e->add[i - e->nset];
        if (gw__http_ieq("date", 4, kv->name))
            return;
    }
    gw__http_put_date(o);
}

/* Appends all values of field `name` in h, comma-joined; false if none. */
static bool join_values(struct gw__http_out *o, const struct gw_http_head *h, const char *name)
{
    bool any = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (!gw__http_ieq(f->name, f->name_len, name) || !f->value_len)
            continue;
        if (any)
            gw__http_put(o, ", ", 2);
        gw__http_put(o, f->value, f->value_len);
        any = true;
    }
    return any;
}

/* Writes Transfer-Encoding: <codings of h other than chunked>, chunked. */
void gw__http_put_te_chunked(struct gw__http_out *o, const struct gw_http_head *h)
{
    gw__http_puts(o, "Transfer-Encoding: ");
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (!GW__HTTP_IEQ_LIT(f->name, f->name_len, "transfer-encoding"))
            continue;
        size_t pos = 0, tl;
        const char *t;
        while (gw__http_list_next(f->value, f->value_len, &pos, &t, &tl)) {
            if (gw__http_ieq(t, tl, "chunked") || gw__http_ieq(t, tl, "identity") ||
                !gw__http_coding_known(t, tl))
                continue;
            for (size_t k = 0; k < tl; k++) {
                char c = gw__http_lower(t[k]);
                gw__http_put(o, &c, 1);
            }
            gw__http_put(o, ", ", 2);
        }
    }
    gw__http_puts(o, "chunked\r\n");
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

void gw__http_put_u64(struct gw__http_out *o, uint64_t v)
{
    /* By hand: a Content-Length goes out with nearly every head. */
    char num[20]; /* UINT64_MAX has 20 digits */
    size_t i = sizeof num;
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    gw__http_put(o, num + i, sizeof num - i);
}

/* A Forwarded (RFC 7239) parameter value: a token as is, anything else as
 * a quoted-string ("a.example:8080" holds a ':'). */
static void put_forwarded_value(struct gw__http_out *o, const char *v, size_t n)
{
    bool token = n > 0;
    for (size_t i = 0; token && i < n; i++)
        token = gw__http_is_tchar((unsigned char)v[i]);
    if (token) {
        gw__http_put(o, v, n);
        return;
    }
    gw__http_put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '"' || v[i] == '\\')
            gw__http_put(o, "\\", 1);
        gw__http_put(o, &v[i], 1);
    }
    gw__http_put(o, "\"", 1);
}

/* A Forwarded node for the peer's address: IPv4 as is, IPv6 bracketed and
 * quoted, anything else (a Unix socket, no address) "unknown". */
static void put_forwarded_node(struct gw__http_out *o, const char *addr)
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
        gw__http_put(o, addr, n);
    } else if (v6) {
        gw__http_puts(o, "\"[");
        gw__http_put(o, addr, n);
        gw__http_puts(o, "]\"");
    } else {
        gw__http_puts(o, "unknown");
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
    struct gw__http_out o = {.buf = buf, .cap = cap};
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

    gw__http_put(&o, h->method, h->method_len);
    gw__http_put(&o, " ", 1);
    gw__http_put(&o, path, path_len);
    gw__http_puts(&o, " HTTP/1.1\r\n");

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
        gw__http_field(&o, "Host", host, hn);

    bool tunnel = f->tunnel && h->upgrade && gw_http_head_get(h, "upgrade", NULL);
    copy_fields_owned(&o, h, tunnel, f->edits,
                      GW__HTTP_F_HOP | GW__HTTP_F_OWNED | GW__HTTP_F_DROPPED, f->owned, f->nowned);
    put_edits_owned(&o, f->edits, f->owned, f->nowned);
    put_owned(&o, f->owned, f->nowned);

    /* Framing, from what the parser decided; the body is re-framed. */
    if (h->framing == GW_HTTP_BODY_LENGTH) {
        gw__http_puts(&o, "Content-Length: ");
        gw__http_put_u64(&o, h->content_length);
        gw__http_put(&o, "\r\n", 2);
    } else if (h->framing == GW_HTTP_BODY_CHUNKED) {
        gw__http_put_te_chunked(&o, h);
    }
    if (tunnel)
        gw__http_puts(&o, "Connection: upgrade\r\n");

    /* X-Forwarded-For: the client's chain, appended to; the other fields
     * about the client: a client's values are kept only from a trusted hop,
     * else the gateway writes its own (or none). */
    gw__http_puts(&o, "X-Forwarded-For: ");
    if ((f->peer_trusted ||
         (f->keep_forwarded_for &&
          !named_in_connection(h, first_connection(h), "x-forwarded-for", 15))) &&
        join_values(&o, h, "x-forwarded-for"))
        gw__http_put(&o, ", ", 2);
    gw__http_puts(&o, f->client_addr);
    gw__http_put(&o, "\r\n", 2);
    size_t vn;
    const char *v = f->peer_trusted ? gw_http_head_get(h, "x-forwarded-proto", &vn) : NULL;
    if (v && vn)
        gw__http_field(&o, "X-Forwarded-Proto", v, vn);
    else
        gw__http_puts(&o, f->tls ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
    v = f->peer_trusted ? gw_http_head_get(h, "x-forwarded-host", &vn) : NULL;
    if (v && vn)
        gw__http_field(&o, "X-Forwarded-Host", v, vn);
    else if (addressed)
        gw__http_field(&o, "X-Forwarded-Host", addressed, an);
    /* X-Forwarded-Port: the port of the host the client addressed, as
     * X-Forwarded-Host and Forwarded's host= carry it, so that a backend
     * builds URLs the client can reach: behind a port mapping (80 to 8080)
     * the port the gateway is bound to is not one. */
    size_t pn = 0;
    const char *port = addressed ? host_port(addressed, an, &pn) : NULL;
    if ((v = trusted_value(f, h, "x-forwarded-port", &vn)))
        gw__http_field(&o, "X-Forwarded-Port", v, vn);
    else if (port)
        gw__http_field(&o, "X-Forwarded-Port", port, pn);
    else if (addressed)
        gw__http_puts(&o, f->tls ? "X-Forwarded-Port: 443\r\n" : "X-Forwarded-Port: 80\r\n");
    else if (f->port) {
        gw__http_puts(&o, "X-Forwarded-Port: ");
        gw__http_put_u64(&o, f->port);
        gw__http_put(&o, "\r\n", 2);
    }
    /* X-Forwarded-Prefix: what the route stripped from the path, after a
     * trusted hop's own prefix. */
    v = trusted_value(f, h, "x-forwarded-prefix", &vn);
    if (v || (f->prefix && f->prefix_len)) {
        gw__http_puts(&o, "X-Forwarded-Prefix: ");
        if (v)
            gw__http_put(&o, v, f->prefix_len && v[vn - 1] == '/' ? vn - 1 : vn);
        if (f->prefix)
            gw__http_put(&o, f->prefix, f->prefix_len);
        gw__http_put(&o, "\r\n", 2);
    }
    /* X-Real-IP: the client the gateway judged the request by (its logs,
     * IP rules and limits), not a trusted hop's own X-Real-IP, which may
     * name another hop of the chain. */
    const char *real = f->client && f->client[0] ? f->client : f->client_addr;
    if (real[0])
        gw__http_field(&o, "X-Real-IP", real, strnlen(real, GW_HTTP_OWNED_VALUE_MAX));
    /* Forwarded carries, per hop, what X-Forwarded-For, -Proto and -Host
     * carry, and frameworks build URLs from its first element's proto and
     * host. So it follows X-Forwarded-Proto and -Host, not X-Forwarded-For:
     * a client's elements are kept only from a trusted hop, and the
     * gateway's own element comes last. */
    gw__http_puts(&o, "Forwarded: ");
    if (f->peer_trusted && join_values(&o, h, "forwarded"))
        gw__http_put(&o, ", ", 2);
    gw__http_puts(&o, "for=");
    put_forwarded_node(&o, f->client_addr);
    if (addressed) {
        gw__http_puts(&o, ";host=");
        put_forwarded_value(&o, addressed, an);
    }
    gw__http_puts(&o, f->tls ? ";proto=https\r\n" : ";proto=http\r\n");
    gw__http_puts(&o, "X-Request-Id: ");
    gw__http_puts(&o, f->request_id);
    gw__http_puts(&o, "\r\n\r\n");

    if (o.overflow)
        return -ENOSPC;
    *out_len = o.len;
    return 0;
}
