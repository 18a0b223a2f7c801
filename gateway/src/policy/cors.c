/*
 * cors.c: the `cors` policy kind: cross-origin requests from browsers
 * (the Fetch standard's CORS protocol), answered at the gateway.
 *
 *   {"name": "web", "type": "cors",
 *    "origins": ["https://app.example.com", "http://localhost:8080"],
 *    "methods": ["GET", "PUT"], "headers": ["content-type", "x-trace"],
 *    "expose_headers": ["x-request-id"], "credentials": true, "max_age_s": 600}
 *
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 * answered here and never reaches the upstream: 204 with the allow fields
 * when the origin, the method and every requested header are allowed, else
 * 403 without any of them (the browser then fails the request, and the
 * refusal is counted and logged as one). Any other request goes on; from
 * an allowed origin its answer, the upstream's or the gateway's own (a 401
 * of a later policy too, so that the page can read it), carries
 * Access-Control-Allow-Origin and the credentials and exposed-headers
 * fields, replacing the upstream's own. Every answer carries Vary: Origin,
 * since it depends on the Origin. The answer never says "*" with
 * credentials: a policy allowing every origin cannot allow credentials
 * (a load error), and an allowed origin is otherwise echoed.
 *
 * Origins are compared as serialized origins (scheme://host[:port], ASCII
 * case-insensitively). A pattern has "*" as its host's whole first label,
 * then a domain of two labels or more: it allows every origin of that
 * scheme and port whose host is one label or more in front of that domain,
 * never the domain itself (README.md shows one written out; a C comment
 * cannot hold it). The "null" origin (sandboxed frames,
 * file: pages, redirects across origins) is shared by unrelated documents
 * and is never allowed.
 */
#include "cors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route/route.h"
#include "set_int.h"
#include "stats.h"

/* Most entries in each list; more is a configuration mistake. */
#define CORS_MAX_ENTRIES 256
#define CORS_MAX_AGE_S 86400 /* Firefox's own cap; Chromium caps at 7200 */

struct origin {
    char *text;   /* lower case; for a pattern, what follows "*": ".example.com[:port]" */
    char *scheme; /* patterns only: "https://" */
    bool pattern;
};

struct cors {
    char *name;
    struct origin *origins;
    size_t norigins;
    bool any_origin; /* "*" */
    char **methods;  /* NULL: the route's methods */
    size_t nmethods;
    char **headers;
    size_t nheaders;
    bool any_header; /* "*": whatever the preflight asks for */
    char **expose;
    size_t nexpose;
    bool any_expose;
    bool credentials;
    long long max_age_s;
    /* Field values, joined once at load. */
    char *allow_methods; /* NULL: echo the requested method */
    char *allow_headers; /* NULL: echo (any_header) or none */
    char *expose_value;  /* NULL: none */
    char max_age[24];
};

static void cors_free(void *p)
{
    struct cors *c = p;
    if (!c)
        return;
    for (size_t i = 0; i < c->norigins; i++) {
        free(c->origins[i].text);
        free(c->origins[i].scheme);
    }
    free(c->origins);
    gw__pol_strv_free(c->methods, c->nmethods);
    gw__pol_strv_free(c->headers, c->nheaders);
    gw__pol_strv_free(c->expose, c->nexpose);
    free(c->allow_methods);
    free(c->allow_headers);
    free(c->expose_value);
    free(c->name);
    free(c);
}

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool token(const char *s, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !tchar((unsigned char)s[i]))
            return false;
    return true;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* Checks a lower-cased serialized origin s[0..n): scheme "://" host
 * [":" port], the host a DNS name, an IPv4 address or a bracketed IPv6
 * address. With `pattern`, the host is "*." and a name of two labels or
 * more. Returns NULL or what is wrong. */
static const char *origin_problem(const char *s, size_t n, bool pattern)
{
    const char *sep = strstr(s, "://");
    if (!sep || sep == s)
        return "an origin is scheme://host[:port] (\"https://app.example.com\")";
    for (const char *p = s; p < sep; p++)
        if (!((*p >= 'a' && *p <= 'z') ||
              (p > s && ((*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))))
            return "the scheme is letters, digits, '+', '-' and '.' (\"https\")";
    const char *h = sep + 3, *end = s + n;
    if (pattern) {
        if (strncmp(h, "*.", 2) != 0)
            return "a pattern is scheme://*.domain[:port]: '*' alone in the host's first label";
        h += 2;
    } else if (strchr(h, '*')) {
        return "'*' only as the host's whole first label (\"https://*.example.com\"), or alone";
    }
    const char *hend = end;
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (pattern || !close)
            return "an IPv6 host is in brackets, and in no pattern";
        hend = close + 1;
    } else {
        const char *colon = memchr(h, ':', (size_t)(end - h));
        if (colon)
            hend = colon;
        if (hend == h)
            return "the host is empty";
        for (const char *p = h; p < hend; p++) {
            if (*p == '/' || *p == '?' || *p == '#')
                return "an origin has no path, query or fragment (no trailing '/')";
            if (!host_char(*p))
                return "the host is a DNS name or an address";
        }
        if (pattern && !memchr(h, '.', (size_t)(hend - h)))
            return "a pattern's domain has two labels or more (\"*.example.com\", not \"*.com\")";
    }
    if (hend < end) {
        if (*hend != ':' || hend + 1 == end || end - hend > 6)
            return hend < end && (*hend == '/' || *hend == '?' || *hend == '#')
                       ? "an origin has no path, query or fragment (no trailing '/')"
                       : "the port is 1 to 5 digits after ':'";
        for (const char *p = hend + 1; p < end; p++)
            if (*p < '0' || *p > '9')
                return *p == '/' ? "an origin has no path, query or fragment (no trailing '/')"
                                 : "the port is 1 to 5 digits after ':'";
    }
    return NULL;
}

/* The policy's name, from the object: its refusals are counted under it. */
static int read_name(const struct jpos_val *obj, char **out)
{
    struct jpos_val v;
    const char *s = "cors";
    if (jpos_obj_get(obj, "name", &v) && json_is_string(v.v))
        s = json_string_value(v.v);
    return (*out = strdup(s)) ? 0 : -ENOMEM;
}

static int read_origins(struct jpos_diags *d, const struct jpos_val *v, struct cors *c)
{
    if (!jpos_array(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (!n || n > CORS_MAX_ENTRIES) {
        jpos_err(d, v, "needs 1 to %d origins, got %zu", CORS_MAX_ENTRIES, n);
        return 0;
    }
    if (!(c->origins = calloc(n, sizeof *c->origins)))
        return -ENOMEM;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, GW_CORS_ORIGIN_MAX, &s, &len))
            continue;
        if (strcmp(s, "*") == 0) {
            c->any_origin = true;
            continue;
        }
        if (strcasecmp(s, "null") == 0) {
            jpos_err(d, &m,
                     "the \"null\" origin is shared by every sandboxed frame and file: "
                     "page, so allowing it allows them all; it cannot be listed");
            continue;
        }
        char *low = strdup(s);
        if (!low)
            return -ENOMEM;
        for (size_t i = 0; i < len; i++)
            low[i] = lower(low[i]);
        bool pattern = strstr(low, "://*") != NULL;
        const char *why = origin_problem(low, len, pattern);
        if (why) {
            jpos_err(d, &m, "\"%s\": %s", s, why);
            free(low);
            continue;
        }
        struct origin *o = &c->origins[c->norigins++];
        o->pattern = pattern;
        if (pattern) {
            /* "https://" and ".example.com[:port]" */
            const char *star = strstr(low, "://*") + 3;
            o->scheme = strndup(low, (size_t)(star - low));
            o->text = strdup(star + 1);
            free(low);
            if (!o->scheme || !o->text)
                return -ENOMEM;
        } else {
            o->text = low;
        }
    }
    return 0;
}

/* A list of tokens (methods, field names) into *out; "*" sets *any when
 * any is given, else it is an error. Field names are lower-cased
 * (`fold`). */
static int read_tokens(struct jpos_diags *d, const struct jpos_val *v, const char *what, bool fold,
                       bool *any, char ***out, size_t *nout)
{
    int r = gw__pol_strv_start(d, v, CORS_MAX_ENTRIES, what, out, nout);
    if (r <= 0)
        return r;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, 128, &s, &len))
            continue;
        if (any && strcmp(s, "*") == 0) {
            *any = true;
            continue;
        }
        if (!token(s, len)) {
            jpos_err(d, &m, "\"%s\" is not a %s (a token: letters, digits and !#$%%&'*+-.^_`|~)", s,
                     what);
            continue;
        }
        char *t = strdup(s);
        if (!t)
            return -ENOMEM;
        for (size_t i = 0; fold && i < len; i++)
            t[i] = lower(t[i]);
        (*out)[(*nout)++] = t;
    }
    return 0;
}

/* "a, b, c", or NULL for none. */
static int join(char *const *v, size_t n, const char *also, char **out)
{
    *out = NULL;
    size_t len = also ? strlen(also) + 2 : 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 2;
    if (!len)
        return 0;
    char *s = malloc(len + 1);
    if (!s)
        return -ENOMEM;
    s[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(s, ", ");
        strcat(s, v[i]);
    }
    if (also) {
        if (n)
            strcat(s, ", ");
        strcat(s, also);
    }
    *out = s;
    return 0;
}

static int cors_compile(struct jpos_diags *d, const struct jpos_val *obj,
                        const struct gw_pol_env *env, void **state)
{
    (void)env;
    static const char *const keys[] = {"name",        "type",      "origins",
                                       "methods",     "headers",   "expose_headers",
                                       "credentials", "max_age_s", NULL};
    size_t before = d->nerrors;
    struct cors *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->max_age_s = 600;
    int r = read_name(obj, &c->name);
    bool has_origins = false;
    struct jpos_val cred_v, expose_v;
    bool has_cred_v = false, has_expose_v = false;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, obj);
    while (r == 0 && jpos_iter_next(&it, &m)) {
        if (strcmp(m.key, "name") == 0 || strcmp(m.key, "type") == 0)
            continue;
        if (strcmp(m.key, "origins") == 0) {
            has_origins = true;
            r = read_origins(d, &m, c);
        } else if (strcmp(m.key, "methods") == 0) {
            r = read_tokens(d, &m, "method", false, NULL, &c->methods, &c->nmethods);
        } else if (strcmp(m.key, "headers") == 0) {
            r = read_tokens(d, &m, "field name", true, &c->any_header, &c->headers, &c->nheaders);
        } else if (strcmp(m.key, "expose_headers") == 0) {
            expose_v = m;
            has_expose_v = true;
            r = read_tokens(d, &m, "field name", true, &c->any_expose, &c->expose, &c->nexpose);
        } else if (strcmp(m.key, "credentials") == 0) {
            cred_v = m;
            has_cred_v = true;
            jpos_bool(d, &m, &c->credentials);
        } else if (strcmp(m.key, "max_age_s") == 0) {
            jpos_int(d, &m, 0, CORS_MAX_AGE_S, &c->max_age_s);
        } else {
            jpos_unknown(d, &m, "cors policy", keys);
        }
    }
    if (r == 0 && !has_origins)
        jpos_err(d, obj, "a cors policy needs \"origins\": [\"https://app.example.com\", ...]");
    /* With credentials a "*" would let every site act as the user. */
    if (r == 0 && c->credentials && c->any_origin)
        jpos_err(d, has_cred_v ? &cred_v : obj,
                 "\"credentials\": true cannot go with the origin \"*\": list the origins");
    if (r == 0 && c->credentials && c->any_expose)
        jpos_err(d, has_expose_v ? &expose_v : obj,
                 "\"credentials\": true cannot go with \"expose_headers\": [\"*\"] (browsers "
                 "read it as a field named \"*\"): list the fields");
    if (r == 0) {
        /* Listed methods are answered as listed; the route's own are
         * answered by echoing the one asked for. */
        r = c->methods ? join(c->methods, c->nmethods, NULL, &c->allow_methods) : 0;
        if (r == 0 && !c->any_header)
            r = join(c->headers, c->nheaders, NULL, &c->allow_headers);
        if (r == 0)
            r = join(c->expose, c->nexpose, c->any_expose ? "*" : NULL, &c->expose_value);
        snprintf(c->max_age, sizeof c->max_age, "%lld", c->max_age_s);
    }
    if (r == 0 && d->nerrors != before)
        r = -EINVAL;
    if (r < 0) {
        cors_free(c);
        return r;
    }
    *state = c;
    return 0;
}

/* ---- the request ----------------------------------------------------------- */

static bool origin_allowed(const struct cors *c, const char *o, size_t n)
{
    if (c->any_origin)
        return true;
    for (size_t i = 0; i < c->norigins; i++) {
        const struct origin *r = &c->origins[i];
        size_t tl = strlen(r->text);
        if (!r->pattern) {
            if (tl == n && strncasecmp(r->text, o, n) == 0)
                return true;
            continue;
        }
        /* scheme "://" labels r->text: the part the '*' stands for is a
         * non-empty run of host characters, so no ':' or '/' of a port or
         * path hides in it */
        size_t sl = strlen(r->scheme);
        if (n <= sl + tl || strncasecmp(o, r->scheme, sl) != 0 ||
            strncasecmp(o + n - tl, r->text, tl) != 0)
            continue;
        bool ok = o[sl] != '.' && o[n - tl - 1] != '.';
        for (size_t k = sl; k < n - tl && ok; k++)
            ok = host_char(lower(o[k]));
        if (ok)
            return true;
    }
    return false;
}

/* The request's one Origin field: NULL when there is none, more than one,
 * or it cannot be an origin (empty, "null", too long, not visible ASCII). */
static const char *request_origin(const struct gw_http_head *h, size_t *n)
{
    const char *o = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (f->name_len != 6 || strncasecmp(f->name, "origin", 6) != 0)
            continue;
        if (o)
            return NULL;
        o = f->value;
        *n = f->value_len;
    }
    if (!o || !*n || *n > GW_CORS_ORIGIN_MAX || (*n == 4 && strncasecmp(o, "null", 4) == 0))
        return NULL;
    for (size_t i = 0; i < *n; i++)
        if ((unsigned char)o[i] <= 0x20 || (unsigned char)o[i] >= 0x7f)
            return NULL;
    return o;
}

static bool method_allowed(const struct cors *c, const struct route *r, const char *m, size_t n)
{
    if (c->methods) {
        for (size_t i = 0; i < c->nmethods; i++)
            if (strlen(c->methods[i]) == n && memcmp(c->methods[i], m, n) == 0)
                return true;
        return false;
    }
    /* Not listed: what the route serves. */
    if (!r || !r->methods)
        return true;
    unsigned bit = route_method_bit(m, n);
    if (bit)
        return (r->match_methods & bit) != 0;
    for (size_t i = 0; i < r->next_methods; i++)
        if (strlen(r->ext_methods[i]) == n && memcmp(r->ext_methods[i], m, n) == 0)
            return true;
    return false;
}

/* Every name of Access-Control-Request-Headers is allowed (any case). */
static bool headers_allowed(const struct cors *c, const struct gw_http_head *h)
{
    size_t names = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (f->name_len != 30 || strncasecmp(f->name, "access-control-request-headers", 30) != 0)
            continue;
        const char *v = f->value, *end = f->value + f->value_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *s = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            size_t n = (size_t)(v - s);
            if (!n)
                continue;
            if (!token(s, n) || ++names > GW_CORS_MAX_REQUEST_HEADERS)
                return false;
            if (c->any_header)
                continue;
            bool found = false;
            for (size_t k = 0; k < c->nheaders && !found; k++)
                found = strlen(c->headers[k]) == n && strncasecmp(c->headers[k], s, n) == 0;
            if (!found)
                return false;
        }
    }
    return true;
}

#define ADD(name, value)                                                                           \
    do {                                                                                           \
        if (!gw_pol_resp_add(rq, (name), (value)))                                                 \
            return GW_CORS_FULL;                                                                   \
    } while (0)

enum gw_cors_verdict gw__cors_eval(const void *state, struct gw_pol_req *rq)
{
    const struct cors *c = state;
    const struct gw_http_head *h = rq->head;
    size_t on = 0, mn = 0;
    const char *origin = request_origin(h, &on);
    const char *method = h->method_len == 7 && memcmp(h->method, "OPTIONS", 7) == 0 &&
                                 gw_http_head_count(h, "origin")
                             ? gw_http_head_get(h, "access-control-request-method", &mn)
                             : NULL;
    bool allowed = origin && origin_allowed(c, origin, on);
    if (method) {
        /* A preflight: the answer is the gateway's, and a cache in front
         * must key it on what it was asked. */
        ADD("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
        if (!allowed || !token(method, mn) || !method_allowed(c, rq->route, method, mn) ||
            !headers_allowed(c, h))
            return GW_CORS_REFUSED;
        ADD("Access-Control-Allow-Origin", c->any_origin && !c->credentials ? "*" : origin);
        if (c->credentials)
            ADD("Access-Control-Allow-Credentials", "true");
        ADD("Access-Control-Allow-Methods", c->allow_methods ? c->allow_methods : method);
        const char *ah = c->allow_headers;
        if (c->any_header)
            ah = gw_http_head_get(h, "access-control-request-headers", NULL);
        if (ah && *ah)
            ADD("Access-Control-Allow-Headers", ah);
        ADD("Access-Control-Max-Age", c->max_age);
        return GW_CORS_PREFLIGHT_OK;
    }
    ADD("Vary", "Origin");
    if (!allowed)
        return GW_CORS_PASS;
    ADD("Access-Control-Allow-Origin", c->any_origin && !c->credentials ? "*" : origin);
    if (c->credentials)
        ADD("Access-Control-Allow-Credentials", "true");
    if (c->expose_value)
        ADD("Access-Control-Expose-Headers", c->expose_value);
    return GW_CORS_PASS;
}

#undef ADD

static int cors_run(void *state, struct gw_pol_req *rq)
{
    const struct cors *c = state;
    switch (gw__cors_eval(state, rq)) {
    case GW_CORS_PASS:
        return GW_POL_NEXT;
    case GW_CORS_PREFLIGHT_OK:
        /* No body; rq->resp carries the allow fields. */
        return gw_pol_refuse(rq, 204, NULL, NULL, 0);
    case GW_CORS_REFUSED:
        gw_pol_count_denial(c->name, "cors_refused");
        return gw_pol_refuse(rq, 403, "cross-origin request not allowed", NULL, 0);
    case GW_CORS_FULL:
        break;
    }
    return gw_pol_refuse(rq, 500, "too many response fields", NULL, 0);
}

static json_t *strv_json(char *const *v, size_t n, bool star)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    if (a && star)
        json_array_append_new(a, json_string("*"));
    return a;
}

static json_t *cors_describe(const void *state)
{
    const struct cors *c = state;
    json_t *o = json_object(), *origins = json_array();
    if (!o || !origins) {
        json_decref(o);
        json_decref(origins);
        return NULL;
    }
    if (c->any_origin)
        json_array_append_new(origins, json_string("*"));
    for (size_t i = 0; i < c->norigins; i++) {
        const struct origin *r = &c->origins[i];
        char buf[GW_CORS_ORIGIN_MAX + 8];
        snprintf(buf, sizeof buf, "%s%s%s", r->pattern ? r->scheme : "", r->pattern ? "*" : "",
                 r->text);
        json_array_append_new(origins, json_string(buf));
    }
    json_object_set_new(o, "origins", origins);
    if (c->methods)
        json_object_set_new(o, "methods", strv_json(c->methods, c->nmethods, false));
    json_object_set_new(o, "headers", strv_json(c->headers, c->nheaders, c->any_header));
    json_object_set_new(o, "expose_headers", strv_json(c->expose, c->nexpose, c->any_expose));
    json_object_set_new(o, "credentials", json_boolean(c->credentials));
    json_object_set_new(o, "max_age_s", json_integer(c->max_age_s));
    return o;
}

const struct gw_pol_kind gw__pol_kind_cors = {
    .type = "cors",
    .compile = cors_compile,
    .free = cors_free,
    .run = cors_run,
    .describe = cors_describe,
    .answers_preflight = true,
};
