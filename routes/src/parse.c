/*
 * parse.c: one route object of a route file -> `struct route__entry`.
 *
 * Validation is per route here (shape, types, ranges, patterns, references to
 * upstreams and path parameters); what needs the whole set (duplicate names,
 * conflicts) is in compile.c. Every problem is reported, each at the value
 * (or key) concerned; parsing goes on after an error so that one run shows
 * everything, and an entry with errors is marked `invalid`.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route_int.h"

/* In enum route_slashes / route_params order, after LISTENER. */
static const char *const slashes_names[] = {"refuse", "keep", "redirect", "decode", NULL};
static const char *const params_names[] = {"refuse", "keep", NULL};

static const char *const method_names[] = {"GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                           "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL};

/* Headers the gateway frames and forwards itself (RFC 9110 7.6.1, 9112 6). */
static const char *const managed_headers[] = {
    "content-length", "transfer-encoding", "connection",       "keep-alive", "te",
    "trailer",        "upgrade",           "proxy-connection", NULL};

static bool is_tchar(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]) || s[i] == '\0')
            return false;
    return true;
}

static bool is_ident(const char *s, size_t len)
{
    if (len == 0 || len > 64 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* A field value may hold visible characters, spaces and tabs (RFC 9110 5.5). */
static bool is_field_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(s, *list) == 0)
            return true;
    return false;
}

unsigned route_method_bit(const char *m, size_t len)
{
    for (unsigned i = 0; method_names[i]; i++)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], m, len) == 0)
            return 1u << i;
    return 0;
}

size_t route_methods_format(unsigned bits, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    for (unsigned i = 0; method_names[i]; i++) {
        if (!(bits & (1u << i)))
            continue;
        int w = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, "%s%s",
                         len ? ", " : "", method_names[i]);
        if (w > 0)
            len += (size_t)w;
    }
    return len;
}

static char *lower_dup(struct route__arena *a, const char *s, size_t len)
{
    char *p = route__arena_strndup(a, s, len);
    if (p)
        for (size_t i = 0; i < len; i++)
            p[i] = (char)tolower((unsigned char)p[i]);
    return p;
}

/* Lists up to 8 names for a message: "a, b, c". */
static void name_list(char *buf, size_t cap, const char *const *names, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && i < 8 && len < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s\"%s\"", i ? ", " : "", names[i]);
        if (w > 0)
            len += (size_t)w;
    }
    if (n > 8 && len < cap)
        snprintf(buf + len, cap - len, ", ... (%zu in all)", n);
}

/* ---- match.path / match.path_prefix --------------------------------------- */

static int parse_path(struct route__parse_ctx *ctx, struct route__entry *e,
                      const struct jpos_val *pv, bool prefix, struct jpos_diags *d)
{
    const char *s;
    size_t len;
    const char *what = prefix ? "path_prefix" : "path";
    if (!jpos_string(d, pv, ROUTE_MAX_PATH_BYTES, &s, &len))
        return -EINVAL;
    if (len == 0 || s[0] != '/') {
        jpos_err(d, pv, "%s must start with '/', got \"%s\"", what, s);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f) {
            jpos_err(d, pv, "%s must not contain spaces or control characters (at byte %zu)", what,
                     i);
            return -EINVAL;
        }
        if (c == '?' || c == '#') {
            jpos_err(d, pv, "%s must not contain '%c': routes match the path only, not the %s",
                     what, c, c == '?' ? "query string" : "fragment");
            return -EINVAL;
        }
    }

    /* The segments after the leading '/'. A path_prefix ignores one trailing
     * '/' ("/api/" is "/api": it matches "/api", "/api/" and "/api/x"); a path
     * keeps it as a last, empty segment ("/users/" is not "/users"). */
    size_t end = len;
    if (prefix && end > 1 && s[end - 1] == '/')
        end--;
    struct route__seg segs[ROUTE_MAX_SEGMENTS + 1];
    unsigned nseg = 0, nparams = 0;
    bool wildcard = false;
    uint32_t mask = 0;
    const char *names[ROUTE_MAX_PARAMS];
    uint8_t param_seg[ROUTE_MAX_PARAMS];
    size_t pos = 1;
    bool done = prefix && end == 1; /* "/" as a prefix: no segment at all */
    while (!done) {
        const char *q = memchr(s + pos, '/', end - pos);
        size_t seg_end = q ? (size_t)(q - s) : end;
        const char *seg = s + pos;
        size_t slen = seg_end - pos;
        bool last = q == NULL;
        if (slen == 0 && (!last || prefix)) {
            jpos_err(d, pv, "%s has an empty segment (\"//\") at byte %zu", what, pos);
            return -EINVAL;
        }
        if (nseg == ROUTE_MAX_SEGMENTS) {
            jpos_err(d, pv, "%s has more than %d segments", what, ROUTE_MAX_SEGMENTS);
            return -EINVAL;
        }
        if (wildcard) {
            jpos_err(d, pv, "a wildcard (\"*%s\") must be the last segment of the path",
                     names[nparams - 1]);
            return -EINVAL;
        }
        uint8_t type = ROUTE_SEG_LITERAL;
        if (slen > 0 && (seg[0] == ':' || seg[0] == '*')) {
            bool star = seg[0] == '*';
            const char *pn = seg + 1;
            size_t pl = slen - 1;
            if (star && prefix) {
                jpos_err(d, pv,
                         "path_prefix cannot hold a wildcard: use \"path\": \"%.*s\" to "
                         "capture the rest, or drop \"%.*s\"",
                         (int)end, s, (int)slen, seg);
                return -EINVAL;
            }
            if (!is_ident(pn, pl)) {
                if (pl == 0)
                    jpos_err(d, pv,
                             "%s names no parameter after '%c' (write \"%c%s\" and use it "
                             "in rewrite as \"%c%s\")",
                             what, seg[0], seg[0], star ? "rest" : "id", seg[0],
                             star ? "rest" : "id");
                else
                    jpos_err(d, pv,
                             "parameter \"%.*s\" must be a whole segment named with letters, "
                             "digits and '_'",
                             (int)slen, seg);
                return -EINVAL;
            }
            for (unsigned i = 0; i < nparams; i++) {
                if (strlen(names[i]) == pl && memcmp(names[i], pn, pl) == 0) {
                    jpos_err(d, pv, "parameter \"%.*s\" appears twice in %s", (int)pl, pn, what);
                    return -EINVAL;
                }
            }
            if (nparams == ROUTE_MAX_PARAMS) {
                jpos_err(d, pv, "%s has more than %d parameters", what, ROUTE_MAX_PARAMS);
                return -EINVAL;
            }
            const char *name = route__arena_strndup(ctx->arena, pn, pl);
            if (!name)
                return -ENOMEM;
            names[nparams] = name;
            param_seg[nparams] = (uint8_t)nseg;
            nparams++;
            if (star) {
                wildcard = true;
                type = ROUTE_SEG_WILDCARD;
            } else {
                mask |= 1u << nseg;
                type = ROUTE_SEG_PARAM;
                seg = name;
                slen = pl;
            }
        }
        if (type != ROUTE_SEG_WILDCARD) {
            segs[nseg].type = type;
            segs[nseg].len = (uint16_t)slen;
            segs[nseg].text = route__arena_strndup(ctx->arena, seg, slen);
            if (!segs[nseg].text)
                return -ENOMEM;
            nseg++;
        }
        if (last)
            break;
        pos = seg_end + 1;
    }

    e->segs = route__arena_alloc(ctx->arena, (nseg ? nseg : 1) * sizeof(*e->segs));
    e->r.path = route__arena_strndup(ctx->arena, s, len);
    if (!e->segs || !e->r.path)
        return -ENOMEM;
    memcpy(e->segs, segs, nseg * sizeof(*segs));
    e->nsegs = (uint8_t)nseg;
    e->has_wildcard = wildcard;
    e->param_mask = mask;
    e->r.nparams = nparams;
    for (unsigned i = 0; i < nparams; i++) {
        e->r.param_names[i] = names[i];
        e->param_seg[i] = param_seg[i];
    }
    if (prefix) {
        e->r.path_kind = ROUTE_PATH_PREFIX;
        e->kind = ROUTE_KIND_PREFIX;
    } else if (wildcard) {
        e->r.path_kind = ROUTE_PATH_WILDCARD;
        e->kind = ROUTE_KIND_WILDCARD;
    } else {
        e->r.path_kind = nparams ? ROUTE_PATH_PARAM : ROUTE_PATH_EXACT;
        e->kind = ROUTE_KIND_FULL;
    }
    return 0;
}

/* ---- match.host ----------------------------------------------------------- */

static int parse_host(struct route__parse_ctx *ctx, struct route__entry *e,
                      const struct jpos_val *hv, struct jpos_diags *d)
{
    const char *s;
    size_t len;
    /* The row's limit: a name of up to 253 bytes, with "*." before it or a
     * final '.' after it. */
    if (!jpos_string(d, hv, (size_t)route__key_row(route__match_keys, ROUTE__K_HOST)->max, &s,
                     &len))
        return -EINVAL;
    char *h = lower_dup(ctx->arena, s, len);
    if (!h)
        return -ENOMEM;
    if (len > 1 && h[len - 1] == '.' && h[len - 2] != '.')
        h[--len] = '\0'; /* "example.com." is "example.com" */
    if (len == 0 || strcmp(h, "*") == 0) {
        jpos_err(d, hv, "to match any host, leave \"host\" out");
        return -EINVAL;
    }
    bool suffix = len > 2 && h[0] == '*' && h[1] == '.';
    const char *name = suffix ? h + 2 : h;
    size_t nlen = suffix ? len - 2 : len;
    if (strchr(name, '*')) {
        jpos_err(d, hv,
                 "a wildcard host is written \"*.example.com\": '*' can only be the whole "
                 "first label");
        return -EINVAL;
    }
    if (name[0] == '[') {
        bool ok = !suffix && nlen > 2 && name[nlen - 1] == ']';
        for (size_t i = 1; ok && i + 1 < nlen; i++)
            ok = isxdigit((unsigned char)name[i]) || name[i] == ':' || name[i] == '.';
        if (!ok) {
            jpos_err(d, hv, "\"%s\" is not a valid IPv6 host (write it as \"[::1]\")", s);
            return -EINVAL;
        }
    } else {
        if (strchr(name, ':')) {
            jpos_err(d, hv,
                     "host must not include a port (\"%s\"); routes match the host name only", s);
            return -EINVAL;
        }
        bool label_start = true;
        for (size_t i = 0; i < nlen; i++) {
            char c = name[i];
            if (c == '.') {
                if (label_start)
                    break;
                label_start = true;
                continue;
            }
            label_start = false;
            if (!(isalnum((unsigned char)c) || c == '-' || c == '_')) {
                jpos_err(d, hv,
                         "host \"%s\" may hold only letters, digits, '-', '_' and '.' "
                         "(found '%c')",
                         s, c);
                return -EINVAL;
            }
        }
        if (label_start) {
            jpos_err(d, hv, "host \"%s\" has an empty label", s);
            return -EINVAL;
        }
    }
    e->r.host = h;
    e->r.host_kind = suffix ? ROUTE_HOST_SUFFIX : ROUTE_HOST_EXACT;
    return 0;
}

/* ---- match.methods -------------------------------------------------------- */

static int parse_methods(struct route__parse_ctx *ctx, struct route__entry *e,
                         const struct jpos_val *mv, struct jpos_diags *d)
{
    if (!jpos_array(d, mv))
        return -EINVAL;
    size_t n = jpos_size(mv);
    if (n == 0) {
        jpos_err(d, mv, "methods is empty; leave it out to match any method");
        return -EINVAL;
    }
    if (n > ROUTE_MAX_METHODS) {
        jpos_err(d, mv, "lists %zu methods; at most %d", n, ROUTE_MAX_METHODS);
        return -EINVAL;
    }
    const char **ext = route__arena_alloc(ctx->arena, n * sizeof(*ext));
    if (!ext)
        return -ENOMEM;
    size_t next = 0;
    unsigned bits = 0;
    int r = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, mv);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, 32, &s, &len)) {
            r = -EINVAL;
            continue;
        }
        unsigned bit = route_method_bit(s, len);
        if (bit) {
            if (bits & bit) {
                jpos_err(d, &m, "method \"%s\" is listed twice", s);
                r = -EINVAL;
            }
            bits |= bit;
            continue;
        }
        const char *hint = jpos_suggest(s, method_names, 9);
        if (hint && strcasecmp(hint, s) == 0) {
            jpos_err(d, &m,
                     "unknown method \"%s\"; methods are case-sensitive: did you mean "
                     "\"%s\"?",
                     s, hint);
            r = -EINVAL;
            continue;
        }
        if (!is_token(s, len)) {
            jpos_err(d, &m, "\"%s\" is not a valid method name (RFC 9110 token)", s);
            r = -EINVAL;
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < next; i++)
            dup = dup || strcmp(ext[i], s) == 0;
        if (dup) {
            jpos_err(d, &m, "method \"%s\" is listed twice", s);
            r = -EINVAL;
            continue;
        }
        if (!(ext[next++] = route__arena_strndup(ctx->arena, s, len)))
            return -ENOMEM;
        bits |= ROUTE_M_EXTENSION;
    }
    if (r == 0) {
        e->r.methods = bits;
        e->r.ext_methods = ext;
        e->r.next_methods = next;
    }
    return r;
}

/* ---- header-name objects ({"name": value, ...}) ---------------------------- */

/* Checks that `ov` is an object of at most `max` members (`what` names them
 * in the message) and allocates room for one `size`-byte entry per member.
 * Returns 0 with *mem and *n, or -EINVAL (reported) or -ENOMEM. */
static int header_object(struct route__parse_ctx *ctx, const struct jpos_val *ov, size_t max,
                         const char *what, size_t size, void **mem, size_t *n, struct jpos_diags *d)
{
    if (!jpos_object(d, ov))
        return -EINVAL;
    size_t count = jpos_size(ov);
    if (count > max) {
        jpos_err(d, ov, "has %zu %s; at most %zu", count, what, max);
        return -EINVAL;
    }
    void *m = route__arena_alloc(ctx->arena, (count ? count : 1) * size);
    if (!m)
        return -ENOMEM;
    *mem = m;
    *n = count;
    return 0;
}

/* A member's key must be a header name (a token of at most 256 bytes). */
static bool header_key_ok(const struct jpos_val *m, struct jpos_diags *d)
{
    size_t klen = strlen(m->key);
    if (is_token(m->key, klen) && klen <= 256)
        return true;
    jpos_err_key(d, m, "\"%s\" is not a valid header name", m->key);
    return false;
}

/* ---- match.headers -------------------------------------------------------- */

static int parse_header_conds(struct route__parse_ctx *ctx, struct route__entry *e,
                              const struct jpos_val *hv, struct jpos_diags *d)
{
    struct route_header_cond *conds;
    size_t n;
    int r = header_object(ctx, hv, ROUTE_MAX_HEADER_CONDS, "header conditions", sizeof(*conds),
                          (void **)&conds, &n, d);
    if (r < 0)
        return r;
    size_t k = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, hv);
    while (jpos_iter_next(&it, &m)) {
        if (!header_key_ok(&m, d)) {
            r = -EINVAL;
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < k; i++)
            dup = dup || strcasecmp(conds[i].name, m.key) == 0;
        if (dup) {
            jpos_err_key(d, &m, "header \"%s\" is listed twice (names are case-insensitive)",
                         m.key);
            r = -EINVAL;
            continue;
        }
        struct route_header_cond c = {0};
        if (jpos_typeof(&m) == JSON_TRUE) {
            c.test = ROUTE_HDR_PRESENT;
        } else if (jpos_typeof(&m) == JSON_FALSE) {
            c.test = ROUTE_HDR_ABSENT;
        } else if (jpos_typeof(&m) == JSON_STRING) {
            const char *s;
            size_t len;
            if (!jpos_string(d, &m, ROUTE_MAX_VALUE_BYTES, &s, &len)) {
                r = -EINVAL;
                continue;
            }
            if (!is_field_value(s, len)) {
                jpos_err(d, &m, "header value must not contain control characters");
                r = -EINVAL;
                continue;
            }
            c.test = ROUTE_HDR_EQUALS;
            c.value = route__arena_strndup(ctx->arena, s, len);
            c.value_len = len;
            if (!c.value)
                return -ENOMEM;
        } else {
            jpos_err(d, &m,
                     "expected a string (the exact value), true (present) or false (absent), "
                     "got %s",
                     jpos_val_type_name(&m));
            r = -EINVAL;
            continue;
        }
        if (!(c.name = lower_dup(ctx->arena, m.key, strlen(m.key))))
            return -ENOMEM;
        conds[k++] = c;
    }
    if (r == 0) {
        e->r.headers = conds;
        e->r.nheaders = k;
    }
    return r;
}

static int parse_match(struct route__parse_ctx *ctx, struct route__entry *e,
                       const struct jpos_val *mv, struct jpos_diags *d, bool *path_ok)
{
    *path_ok = false;
    if (!jpos_object(d, mv))
        return -EINVAL;
    jpos_val_pos(mv, &e->match_line, &e->match_col);
    struct jpos_val m, path, prefix, host, methods, headers;
    bool has_path = false, has_prefix = false, has_host = false, has_methods = false,
         has_headers = false;
    struct jpos_iter it;
    jpos_iter_init(&it, mv);
    int r = 0;
    while (jpos_iter_next(&it, &m)) {
        switch (route__key_id(route__match_keys, m.key)) {
        case ROUTE__K_PATH:
            path = m;
            has_path = true;
            break;
        case ROUTE__K_PATH_PREFIX:
            prefix = m;
            has_prefix = true;
            break;
        case ROUTE__K_HOST:
            host = m;
            has_host = true;
            break;
        case ROUTE__K_METHODS:
            methods = m;
            has_methods = true;
            break;
        case ROUTE__K_MATCH_HEADERS:
            headers = m;
            has_headers = true;
            break;
        default:
            jpos_keys_unknown(d, &m, route__match_keys);
            r = -EINVAL;
        }
    }
    int q;
    if (has_path && has_prefix) {
        jpos_err_key(d, &prefix, "use either \"path\" or \"path_prefix\", not both");
        r = -EINVAL;
    } else if (!has_path && !has_prefix) {
        jpos_err(d, mv,
                 "match needs \"path\" (\"/users\", \"/users/:id\", \"/static/*rest\") or "
                 "\"path_prefix\" (\"/api\")");
        r = -EINVAL;
    } else {
        q = parse_path(ctx, e, has_path ? &path : &prefix, has_prefix, d);
        if (q == -ENOMEM)
            return q;
        if (q == 0)
            *path_ok = true;
        else
            r = q;
    }
    if (has_host && (q = parse_host(ctx, e, &host, d)) < 0) {
        if (q == -ENOMEM)
            return q;
        r = q;
    }
    if (has_methods && (q = parse_methods(ctx, e, &methods, d)) < 0) {
        if (q == -ENOMEM)
            return q;
        r = q;
    }
    if (has_headers && (q = parse_header_conds(ctx, e, &headers, d)) < 0) {
        if (q == -ENOMEM)
            return q;
        r = q;
    }
    return r;
}

/* ---- header edits and respond.headers ------------------------------------- */

static int parse_kv(struct route__parse_ctx *ctx, const struct jpos_val *ov, bool managed_ok,
                    const struct route_kv **out, size_t *nout, struct jpos_diags *d)
{
    struct route_kv *kv;
    size_t n;
    int r =
        header_object(ctx, ov, ROUTE_MAX_HEADER_EDITS, "headers", sizeof(*kv), (void **)&kv, &n, d);
    if (r < 0)
        return r;
    size_t k = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, ov);
    while (jpos_iter_next(&it, &m)) {
        if (!header_key_ok(&m, d)) {
            r = -EINVAL;
            continue;
        }
        if (!managed_ok && in_list(m.key, managed_headers)) {
            jpos_err_key(d, &m,
                         "\"%s\" is managed by the gateway (message framing and hop-by-hop "
                         "headers) and cannot be set",
                         m.key);
            r = -EINVAL;
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < k; i++)
            dup = dup || strcasecmp(kv[i].name, m.key) == 0;
        if (dup) {
            jpos_err_key(d, &m, "header \"%s\" is listed twice (names are case-insensitive)",
                         m.key);
            r = -EINVAL;
            continue;
        }
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, ROUTE_MAX_VALUE_BYTES, &s, &len)) {
            r = -EINVAL;
            continue;
        }
        if (!is_field_value(s, len)) {
            jpos_err(d, &m, "header value must not contain control characters (CR, LF, ...)");
            r = -EINVAL;
            continue;
        }
        kv[k].name = lower_dup(ctx->arena, m.key, strlen(m.key));
        kv[k].value = route__arena_strndup(ctx->arena, s, len);
        if (!kv[k].name || !kv[k].value)
            return -ENOMEM;
        k++;
    }
    if (r == 0) {
        *out = kv;
        *nout = k;
    }
    return r;
}

static int parse_edit(struct route__parse_ctx *ctx, const struct jpos_val *ev,
                      struct route_header_edit *out, struct jpos_diags *d)
{
    if (!jpos_object(d, ev))
        return -EINVAL;
    int r = 0, q;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, ev);
    while (jpos_iter_next(&it, &m)) {
        int id = route__key_id(route__edit_keys, m.key);
        if (id == ROUTE__K_SET) {
            q = parse_kv(ctx, &m, false, &out->set, &out->nset, d);
        } else if (id == ROUTE__K_ADD) {
            q = parse_kv(ctx, &m, false, &out->add, &out->nadd, d);
        } else if (id == ROUTE__K_REMOVE) {
            if (!jpos_array(d, &m)) {
                r = -EINVAL;
                continue;
            }
            size_t n = jpos_size(&m);
            if (n > ROUTE_MAX_HEADER_EDITS) {
                jpos_err(d, &m, "lists %zu headers; at most %d", n, ROUTE_MAX_HEADER_EDITS);
                r = -EINVAL;
                continue;
            }
            const char **names = route__arena_alloc(ctx->arena, (n ? n : 1) * sizeof(*names));
            if (!names)
                return -ENOMEM;
            size_t k = 0;
            q = 0;
            struct jpos_iter it2;
            struct jpos_val x;
            jpos_iter_init(&it2, &m);
            while (jpos_iter_next(&it2, &x)) {
                const char *s;
                size_t len;
                if (!jpos_string(d, &x, 256, &s, &len)) {
                    q = -EINVAL;
                } else if (!is_token(s, len)) {
                    jpos_err(d, &x, "\"%s\" is not a valid header name", s);
                    q = -EINVAL;
                } else if (!(names[k++] = lower_dup(ctx->arena, s, len))) {
                    return -ENOMEM;
                }
            }
            if (q == 0) {
                out->remove = names;
                out->nremove = k;
            }
        } else {
            jpos_keys_unknown(d, &m, route__edit_keys);
            q = -EINVAL;
        }
        if (q == -ENOMEM)
            return q;
        if (q < 0)
            r = q;
    }
    return r;
}

static int parse_respond(struct route__parse_ctx *ctx, struct route__entry *e,
                         const struct jpos_val *rv, struct jpos_diags *d)
{
    if (!jpos_object(d, rv))
        return -EINVAL;
    struct route_respond *resp = route__arena_alloc(ctx->arena, sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    resp->status = 200;
    resp->body = "";
    int r = 0, q;
    struct jpos_val m, status_v;
    bool has_status = false;
    struct jpos_iter it;
    jpos_iter_init(&it, rv);
    while (jpos_iter_next(&it, &m)) {
        int id = route__key_id(route__respond_keys, m.key);
        if (id == ROUTE__K_STATUS) {
            long long st;
            status_v = m;
            has_status = true;
            if (jpos_typeof(&m) != JSON_INTEGER) {
                jpos_err(d, &m, "expected an integer, got %s", jpos_val_type_name(&m));
                r = -EINVAL;
            } else if ((st = jpos_integer_value(&m)) < 200 || st > 599) {
                jpos_err(d, &m,
                         "bad status %lld: a direct response's status must be between "
                         "200 and 599",
                         st);
                r = -EINVAL;
            } else {
                resp->status = (int)st;
            }
        } else if (id == ROUTE__K_BODY) {
            const char *s;
            size_t len;
            if (!jpos_string(d, &m, ROUTE_MAX_BODY_BYTES, &s, &len)) {
                r = -EINVAL;
                continue;
            }
            char *b = route__arena_alloc(ctx->arena, len + 1);
            if (!b)
                return -ENOMEM;
            memcpy(b, s, len);
            resp->body = b;
            resp->body_len = len;
        } else if (id == ROUTE__K_RESPOND_HEADERS) {
            if ((q = parse_kv(ctx, &m, false, &resp->headers, &resp->nheaders, d)) < 0) {
                if (q == -ENOMEM)
                    return q;
                r = q;
            }
        } else {
            jpos_keys_unknown(d, &m, route__respond_keys);
            r = -EINVAL;
        }
    }
    if (has_status && (resp->status == 204 || resp->status == 304) && resp->body_len) {
        jpos_err(d, &status_v, "a %d response has no body; remove \"body\" or change the status",
                 resp->status);
        r = -EINVAL;
    }
    e->r.respond = resp;
    return r;
}

static int parse_timeouts(struct route__entry *e, const struct jpos_val *tv, struct jpos_diags *d)
{
    if (!jpos_object(d, tv))
        return -EINVAL;
    int r = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, tv);
    while (jpos_iter_next(&it, &m)) {
        const struct jpos_key *k = jpos_key_find(route__timeout_keys, m.key);
        int id = k ? k->id : ROUTE__K_NONE;
        long long x;
        if (id == ROUTE__K_CONNECT_MS) {
            if (jpos_int(d, &m, k->min, k->max, &x))
                e->r.connect_timeout_ms = (uint32_t)x;
            else
                r = -EINVAL;
        } else if (id == ROUTE__K_RESPONSE_MS) {
            if (jpos_int(d, &m, k->min, k->max, &x))
                e->r.response_timeout_ms = (uint32_t)x;
            else
                r = -EINVAL;
        } else if (id == ROUTE__K_TUNNEL_IDLE_MS) {
            if (jpos_int(d, &m, k->min, k->max, &x))
                e->r.tunnel_idle_ms = (uint32_t)x;
            else
                r = -EINVAL;
        } else {
            jpos_keys_unknown(d, &m, route__timeout_keys);
            r = -EINVAL;
        }
    }
    return r;
}

static void parse_limits(struct route__entry *e, const struct jpos_val *lv, struct jpos_diags *d)
{
    if (!jpos_object(d, lv))
        return;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, lv);
    while (jpos_iter_next(&it, &m)) {
        const struct jpos_key *k = jpos_key_find(route__limits_keys, m.key);
        int id = k ? k->id : ROUTE__K_NONE;
        long long x;
        if (id == ROUTE__K_MAX_MEMORY_BYTES) {
            if (jpos_int(d, &m, k->min, k->max, &x))
                e->r.max_memory_bytes = x;
        } else if (id == ROUTE__K_MAX_TIME_MS) {
            if (jpos_int(d, &m, k->min, k->max, &x))
                e->r.max_time_ms = x;
        } else {
            jpos_keys_unknown(d, &m, route__limits_keys);
        }
    }
}

/* ---- path_policy -------------------------------------------------------------- */

/* One of `names` (NULL-terminated): 1 + its index (0 is LISTENER), or 0
 * with an error. */
static int parse_choice(const struct jpos_val *v, const char *what, const char *const *names,
                        struct jpos_diags *d)
{
    return jpos_choice(d, v, what, names, NULL) + 1;
}

static void parse_path_policy(struct route__entry *e, const struct jpos_val *pv,
                              struct jpos_diags *d)
{
    if (!jpos_object(d, pv))
        return;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, pv);
    while (jpos_iter_next(&it, &m)) {
        int id = route__key_id(route__path_policy_keys, m.key);
        if (id == ROUTE__K_ESCAPED_SLASHES)
            e->r.escaped_slashes =
                (enum route_slashes)parse_choice(&m, "escaped_slashes", slashes_names, d);
        else if (id == ROUTE__K_PARAMS)
            e->r.path_params = (enum route_params)parse_choice(&m, "params", params_names, d);
        else
            jpos_keys_unknown(d, &m, route__path_policy_keys);
    }
}

/* ---- rewrite ---------------------------------------------------------------- */

/* A rewrite template being compiled. The parts live on the stack until the
 * template is known to be valid; `ntpl` in an entry is a uint8_t. */
_Static_assert(ROUTE_MAX_REWRITE_PARTS <= UINT8_MAX, "ntpl is a uint8_t");
struct tpl {
    struct route__tpl_part parts[ROUTE_MAX_REWRITE_PARTS];
    unsigned n;
};

/* Appends the part at bytes [at, at + n) of the rewrite `s`: literal text
 * when `param` is -1, else a reference to that parameter. Every write into
 * `t->parts` goes through this check, so no shape of template (references
 * with or without literal text between them, a trailing literal) can run
 * past the array. Reports at `rv` and returns false when it is full. */
static bool tpl_add(struct tpl *t, const char *s, size_t at, size_t n, int8_t param,
                    const struct jpos_val *rv, struct jpos_diags *d)
{
    if (t->n == sizeof(t->parts) / sizeof(t->parts[0])) {
        jpos_err(d, rv,
                 "rewrite has more than %d parts (runs of literal text and :param or "
                 "*wildcard references); part %u starts at byte %zu of the decoded value",
                 ROUTE_MAX_REWRITE_PARTS, t->n + 1, at);
        return false;
    }
    t->parts[t->n++] =
        param < 0 ? (struct route__tpl_part){.text = s + at, .len = (uint16_t)n, .param = -1}
                  : (struct route__tpl_part){.param = param};
    return true;
}

static int parse_rewrite(struct route__parse_ctx *ctx, struct route__entry *e,
                         const struct jpos_val *rv, struct jpos_diags *d)
{
    const char *s;
    size_t len;
    if (!jpos_string(d, rv, ROUTE_MAX_PATH_BYTES, &s, &len))
        return -EINVAL;
    if (len == 0 || s[0] != '/') {
        jpos_err(d, rv, "rewrite must start with '/', got \"%s\"", s);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '#') {
            jpos_err(d, rv, "rewrite must not contain spaces, control characters or '#'");
            return -EINVAL;
        }
    }
    /* Parts: literal runs and :name / *name at the start of a segment. */
    struct tpl t = {.n = 0};
    size_t lit = 0, i = 0;
    int r = 0;
    while (i < len) {
        bool at_seg = i > 0 && s[i - 1] == '/';
        if (at_seg && (s[i] == ':' || s[i] == '*')) {
            size_t j = i + 1;
            while (j < len && (isalnum((unsigned char)s[j]) || s[j] == '_'))
                j++;
            if (j > i + 1) {
                const char *pn = s + i + 1;
                size_t pl = j - i - 1;
                int found = -1;
                for (unsigned k = 0; k < e->r.nparams; k++)
                    if (strlen(e->r.param_names[k]) == pl &&
                        memcmp(e->r.param_names[k], pn, pl) == 0)
                        found = (int)k;
                bool is_wild = found >= 0 && e->has_wildcard && (unsigned)found == e->r.nparams - 1;
                if (found < 0 || is_wild != (s[i] == '*')) {
                    char want[80];
                    snprintf(want, sizeof(want), "%.*s", (int)pl, pn);
                    const char *hint = jpos_suggest(want, e->r.param_names, e->r.nparams);
                    if (found >= 0)
                        jpos_err(d, rv, "rewrite writes \"%c%s\" but the path has \"%c%s\"", s[i],
                                 want, is_wild ? '*' : ':', want);
                    else if (hint)
                        jpos_err(d, rv,
                                 "rewrite uses \"%c%s\" but the path has no such parameter; "
                                 "did you mean \"%s\"?",
                                 s[i], want, hint);
                    else
                        jpos_err(d, rv,
                                 "rewrite uses \"%c%s\" but the path \"%s\" has no such "
                                 "parameter",
                                 s[i], want, e->r.path ? e->r.path : "");
                    r = -EINVAL;
                } else {
                    if (i > lit && !tpl_add(&t, s, lit, i - lit, -1, rv, d))
                        return -EINVAL;
                    if (!tpl_add(&t, s, i, j - i, (int8_t)found, rv, d))
                        return -EINVAL;
                }
                i = j;
                lit = j;
                continue;
            }
        }
        i++;
    }
    if (r < 0)
        return r;
    if (len > lit && !tpl_add(&t, s, lit, len - lit, -1, rv, d))
        return -EINVAL;
    char *copy = route__arena_strndup(ctx->arena, s, len);
    struct route__tpl_part *tp = route__arena_alloc(ctx->arena, t.n * sizeof(*tp));
    if (!copy || !tp)
        return -ENOMEM;
    for (unsigned k = 0; k < t.n; k++) {
        tp[k] = t.parts[k];
        if (tp[k].text)
            tp[k].text = copy + (tp[k].text - s);
    }
    e->r.rewrite = copy;
    e->tpl = tp;
    e->ntpl = (uint8_t)t.n;
    return 0;
}

static bool valid_name(const char *s)
{
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("._-:/@", *s)))
            return false;
    return true;
}

/* redirect_https: true (port 443) or a port number; false is the default. */
static void parse_redirect_https(struct route__entry *e, const struct jpos_val *v,
                                 struct jpos_diags *d)
{
    long long port;
    bool b;
    if (jpos_typeof(v) == JSON_TRUE || jpos_typeof(v) == JSON_FALSE) {
        if (jpos_bool(d, v, &b))
            e->r.redirect_https = b ? 443 : 0;
    } else if (jpos_typeof(v) == JSON_INTEGER) {
        if (jpos_int(d, v, 1, 65535, &port))
            e->r.redirect_https = (uint16_t)port;
    } else {
        jpos_err(d, v, "redirect_https must be true, false or a port number (1-65535), got %s",
                 jpos_val_type_name(v));
    }
}

/* "policies": names of the policy set's definitions, in the order a
 * request passes them, each at most once. Resolved to definitions by the
 * gateway when it loads the table. */
static int parse_policies(struct route__parse_ctx *ctx, struct route__entry *e,
                          const struct jpos_val *pv, struct jpos_diags *d)
{
    const struct jpos_key *k = route__key_row(route__route_keys, ROUTE__K_POLICIES);
    if (!jpos_array(d, pv))
        return 0;
    size_t n = jpos_size(pv);
    if (n > (size_t)k->max) {
        jpos_err(d, pv, "a route names at most %lld policies, got %zu", k->max, n);
        return 0;
    }
    const char **names = route__arena_alloc(ctx->arena, (n ? n : 1) * sizeof(*names));
    if (!names)
        return -ENOMEM;
    size_t got = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, pv);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, ROUTE_MAX_NAME_BYTES, &s, &len))
            continue;
        bool found = ctx->any_policy;
        for (size_t i = 0; i < ctx->npolicies && !found; i++)
            found = strcmp(ctx->policies[i], s) == 0;
        if (!found) {
            const char *hint = jpos_suggest(s, ctx->policies, ctx->npolicies);
            char list[512];
            if (hint) {
                jpos_err(d, &m, "unknown policy \"%s\"; did you mean \"%s\"?", s, hint);
            } else if (ctx->npolicies == 0) {
                jpos_err(d, &m, "unknown policy \"%s\": the policies directory defines none", s);
            } else {
                name_list(list, sizeof(list), ctx->policies, ctx->npolicies);
                jpos_err(d, &m, "unknown policy \"%s\" (defined: %s)", s, list);
            }
            continue;
        }
        bool twice = false;
        for (size_t i = 0; i < got && !twice; i++)
            twice = strcmp(names[i], s) == 0;
        if (twice) {
            jpos_err(d, &m, "policy \"%s\" is listed twice", s);
            continue;
        }
        if (!(names[got++] = route__arena_strndup(ctx->arena, s, len)))
            return -ENOMEM;
    }
    e->r.policies = names;
    e->r.npolicies = got;
    return 0;
}

/* ---- a route ---------------------------------------------------------------- */

struct route__entry *route__parse_route(struct route__parse_ctx *ctx, const struct jpos_val *v,
                                        unsigned index, struct jpos_diags *d)
{
    size_t errors = d->nerrors;
    struct route__entry *e = route__arena_alloc(ctx->arena, sizeof(*e));
    if (!e)
        return NULL;
    e->r.file = ctx->file;
    jpos_val_pos(v, &e->r.line, &e->r.column);
    e->file_index = index;
    e->r.preserve_host = true;
    e->r.retries = -1;
    e->r.max_body_bytes = -1;
    e->r.max_memory_bytes = -1;
    e->r.max_time_ms = -1;
    e->r.upstream_index = -1;
    if (jpos_typeof(v) != JSON_OBJECT) {
        jpos_err(d, v, "each route must be an object, got %s", jpos_val_type_name(v));
        e->invalid = true;
        return e;
    }

    enum {
        K_NAME,
        K_MATCH,
        K_UPSTREAM,
        K_RESPOND,
        K_STRIP,
        K_REWRITE,
        K_PRESERVE,
        K_REQH,
        K_RESPH,
        K_TIMEOUTS,
        K_RETRIES,
        K_WORKFLOW,
        K_POLICIES,
        K_NKEYS
    };
    struct jpos_val kv[K_NKEYS];
    bool has[K_NKEYS] = {0};
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const struct jpos_key *k = jpos_key_find(route__route_keys, m.key);
        int id = k ? k->id : ROUTE__K_NONE;
        long long x;
        const char *s;
        int slot = -1;
        if (id == ROUTE__K_NAME)
            slot = K_NAME;
        else if (id == ROUTE__K_MATCH)
            slot = K_MATCH;
        else if (id == ROUTE__K_UPSTREAM)
            slot = K_UPSTREAM;
        else if (id == ROUTE__K_RESPOND)
            slot = K_RESPOND;
        else if (id == ROUTE__K_STRIP_PREFIX)
            slot = K_STRIP;
        else if (id == ROUTE__K_REWRITE)
            slot = K_REWRITE;
        else if (id == ROUTE__K_PRESERVE_HOST)
            slot = K_PRESERVE;
        else if (id == ROUTE__K_REQUEST_HEADERS)
            slot = K_REQH;
        else if (id == ROUTE__K_RESPONSE_HEADERS)
            slot = K_RESPH;
        else if (id == ROUTE__K_TIMEOUTS)
            slot = K_TIMEOUTS;
        else if (id == ROUTE__K_RETRIES)
            slot = K_RETRIES;
        else if (id == ROUTE__K_WORKFLOW)
            slot = K_WORKFLOW;
        else if (id == ROUTE__K_POLICIES)
            slot = K_POLICIES;
        else if (id == ROUTE__K_DESCRIPTION) {
            /* Kept so the admin API gives the route back as written. */
            size_t len;
            if (jpos_string(d, &m, (size_t)k->max, &s, &len) &&
                !(e->r.description = route__arena_strndup(ctx->arena, s, len)))
                return NULL;
        } else if (id == ROUTE__K_MAX_BODY_BYTES) {
            if (jpos_int(d, &m, k->min, k->max, &x))
                e->r.max_body_bytes = x;
        } else if (id == ROUTE__K_PRIORITY) {
            if (jpos_int(d, &m, k->min, k->max, &x))
                e->r.priority = (int)x;
        } else if (id == ROUTE__K_PATH_POLICY) {
            parse_path_policy(e, &m, d);
        } else if (id == ROUTE__K_LIMITS) {
            parse_limits(e, &m, d);
        } else if (id == ROUTE__K_REDIRECT_HTTPS) {
            parse_redirect_https(e, &m, d);
        } else
            jpos_keys_unknown(d, &m, route__route_keys);
        if (slot >= 0) {
            kv[slot] = m;
            has[slot] = true;
        }
    }

    int q;
#define CHECK_NOMEM(expr)                                                                          \
    do {                                                                                           \
        if ((q = (expr)) == -ENOMEM)                                                               \
            return NULL;                                                                           \
    } while (0)

    /* name */
    if (has[K_NAME]) {
        const char *s;
        size_t len;
        jpos_val_pos(&kv[K_NAME], &e->name_line, &e->name_col);
        if (jpos_string(d, &kv[K_NAME], ROUTE_MAX_NAME_BYTES, &s, &len)) {
            if (len == 0)
                jpos_err(d, &kv[K_NAME], "route name is empty");
            else if (!valid_name(s))
                jpos_err(d, &kv[K_NAME],
                         "route name \"%s\" may hold only letters, digits and . _ - : / @", s);
            if (!(e->r.name = route__arena_strndup(ctx->arena, s, len)))
                return NULL;
        }
    } else {
        jpos_err(d, v,
                 "route has no \"name\"; every route needs a unique name (it appears in "
                 "logs and the admin API)");
    }

    /* match */
    bool path_ok = false;
    if (has[K_MATCH])
        CHECK_NOMEM(parse_match(ctx, e, &kv[K_MATCH], d, &path_ok));
    else
        jpos_err(d, v, "route has no \"match\"; add e.g. \"match\": {\"path_prefix\": \"/\"}");

    /* action: exactly one of upstream, respond and workflow */
    int nactions = has[K_UPSTREAM] + has[K_RESPOND] + has[K_WORKFLOW];
    if (nactions > 1) {
        jpos_err_key(d, has[K_WORKFLOW] ? &kv[K_WORKFLOW] : &kv[K_RESPOND],
                     "a route has one of \"upstream\", \"respond\" and \"workflow\", not "
                     "several");
    } else if (nactions == 0) {
        jpos_err(d, v,
                 "route needs \"upstream\" (forward to a backend), \"respond\" (answer "
                 "directly) or \"workflow\" (run a workflow)");
    }
    if (has[K_WORKFLOW]) {
        const char *s;
        size_t len;
        if (jpos_string(d, &kv[K_WORKFLOW],
                        (size_t)route__key_row(route__route_keys, ROUTE__K_WORKFLOW)->max, &s,
                        &len)) {
            bool found = ctx->any_workflow;
            for (size_t i = 0; i < ctx->nworkflows && !found; i++)
                found = strcmp(ctx->workflows[i], s) == 0;
            if (!found) {
                const char *hint = jpos_suggest(s, ctx->workflows, ctx->nworkflows);
                char list[512];
                if (hint) {
                    jpos_err(d, &kv[K_WORKFLOW], "unknown workflow \"%s\"; did you mean \"%s\"?", s,
                             hint);
                } else if (ctx->nworkflows == 0) {
                    jpos_err(d, &kv[K_WORKFLOW],
                             "unknown workflow \"%s\": the workflows directory defines none", s);
                } else {
                    name_list(list, sizeof(list), ctx->workflows, ctx->nworkflows);
                    jpos_err(d, &kv[K_WORKFLOW], "unknown workflow \"%s\" (defined: %s)", s, list);
                }
            }
            if (!(e->r.workflow = route__arena_strndup(ctx->arena, s, len)))
                return NULL;
        }
    }
    if (has[K_POLICIES])
        CHECK_NOMEM(parse_policies(ctx, e, &kv[K_POLICIES], d));
    if (has[K_UPSTREAM]) {
        const char *s;
        size_t len;
        if (jpos_string(d, &kv[K_UPSTREAM],
                        (size_t)route__key_row(route__route_keys, ROUTE__K_UPSTREAM)->max, &s,
                        &len)) {
            int found = -1;
            for (size_t i = 0; i < ctx->nupstreams && found < 0; i++)
                if (strcmp(ctx->upstreams[i], s) == 0)
                    found = (int)i;
            if (found < 0) {
                const char *hint = jpos_suggest(s, ctx->upstreams, ctx->nupstreams);
                char list[512];
                if (hint) {
                    jpos_err(d, &kv[K_UPSTREAM], "unknown upstream \"%s\"; did you mean \"%s\"?", s,
                             hint);
                } else if (ctx->nupstreams == 0) {
                    jpos_err(d, &kv[K_UPSTREAM],
                             "unknown upstream \"%s\": the configuration defines no upstreams", s);
                } else {
                    name_list(list, sizeof(list), ctx->upstreams, ctx->nupstreams);
                    jpos_err(d, &kv[K_UPSTREAM], "unknown upstream \"%s\" (defined: %s)", s, list);
                }
            }
            e->r.upstream_index = found;
            if (!(e->r.upstream = route__arena_strndup(ctx->arena, s, len)))
                return NULL;
        }
    }
    if (has[K_RESPOND])
        CHECK_NOMEM(parse_respond(ctx, e, &kv[K_RESPOND], d));
    bool responds = has[K_RESPOND] && !has[K_UPSTREAM];
    bool runs = has[K_WORKFLOW] && !has[K_UPSTREAM] && !has[K_RESPOND];

    /* what only makes sense when forwarding; a workflow sends its own
     * requests (and answers with its own response) */
    static const int fwd_only[] = {K_STRIP,    K_REWRITE, K_PRESERVE, K_REQH,
                                   K_TIMEOUTS, K_RETRIES, K_RESPH};
    for (size_t i = 0; i < sizeof(fwd_only) / sizeof(fwd_only[0]); i++) {
        int k = fwd_only[i];
        if (has[k] && responds && k != K_RESPH) {
            jpos_err_key(d, &kv[k],
                         "\"%s\" has no effect on a route that responds directly; remove it or "
                         "use \"upstream\"",
                         kv[k].key);
            has[k] = false;
        } else if (has[k] && runs) {
            jpos_err_key(d, &kv[k],
                         "\"%s\" has no effect on a route that runs a workflow: its steps send "
                         "their own requests; remove it",
                         kv[k].key);
            has[k] = false;
        }
    }
    if (has[K_STRIP]) {
        bool b;
        if (jpos_bool(d, &kv[K_STRIP], &b)) {
            e->r.strip_prefix = b;
            if (b && path_ok && e->kind == ROUTE_KIND_FULL)
                jpos_err_key(d, &kv[K_STRIP],
                             "strip_prefix needs \"path_prefix\" or a wildcard path "
                             "(\"/static/*rest\"); this route matches the whole path \"%s\"",
                             e->r.path);
            if (b && has[K_REWRITE])
                jpos_err_key(d, &kv[K_STRIP],
                             "use either strip_prefix or rewrite, not both (rewrite already "
                             "replaces what the route matched)");
        }
    }
    if (has[K_REWRITE] && path_ok)
        CHECK_NOMEM(parse_rewrite(ctx, e, &kv[K_REWRITE], d));
    else if (has[K_REWRITE])
        jpos_string(d, &kv[K_REWRITE], ROUTE_MAX_PATH_BYTES, &(const char *){0}, NULL);
    if (has[K_PRESERVE]) {
        bool b;
        if (jpos_bool(d, &kv[K_PRESERVE], &b))
            e->r.preserve_host = b;
    }
    if (has[K_REQH])
        CHECK_NOMEM(parse_edit(ctx, &kv[K_REQH], &e->r.request_headers, d));
    if (has[K_RESPH])
        CHECK_NOMEM(parse_edit(ctx, &kv[K_RESPH], &e->r.response_headers, d));
    if (has[K_TIMEOUTS])
        CHECK_NOMEM(parse_timeouts(e, &kv[K_TIMEOUTS], d));
    if (has[K_RETRIES]) {
        long long x;
        const struct jpos_key *k = route__key_row(route__route_keys, ROUTE__K_RETRIES);
        if (jpos_int(d, &kv[K_RETRIES], k->min, k->max, &x))
            e->r.retries = (int)x;
    }
#undef CHECK_NOMEM
    (void)q;
    e->invalid = d->nerrors != errors;
    return e;
}
