/*
 * set.c: the policy set, loaded from the policies directory.
 *
 * It owns the reading of policy files (`*.json` of the directory, in byte
 * order of names), the checks that span them (names unique across files,
 * the limits of policy.h), the consumers and their credentials (parsed
 * here, once: an API key's SHA-256, a basic-auth PBKDF2 record), each
 * definition's compiled state (its kind's compile, which sees every
 * consumer of the set, so consumers are read from every file before any
 * policy is compiled) and the names only the gateway writes upstream.
 *
 * A set is immutable once loaded and reference counted: the route tables
 * that publish it hold references (policy/table.c). Everything it points to
 * is its own (malloc'd blocks in one list, freed together).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>
#include <mbedtls/version.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>
#endif

#include "jpos/file.h"
#include "policy.h"
#include "set_int.h"

/* Most bytes of one policy file, as of a route file. */
#define MAX_FILE_BYTES (16u << 20)
/* Most files in the directory (each holds at least something to count). */
#define MAX_FILES 10000

struct blk {
    struct blk *next;
    max_align_t data[];
};

struct gw_pol_set {
    _Atomic int refs;
    struct blk *blocks; /* everything below */
    struct gw_pol_def *defs;
    size_t ndefs, capdefs;
    const char **names; /* ndefs names, for the routes' checks */
    struct gw_pol_consumer *consumers;
    size_t nconsumers, capconsumers;
    const char **owned;
    size_t nowned;
    const char *dir;
    const char *consumer_header; /* lower case; NULL: none configured */
};

static void *set_alloc(struct gw_pol_set *s, size_t n)
{
    struct blk *b = calloc(1, sizeof(*b) + n);
    if (!b)
        return NULL;
    b->next = s->blocks;
    s->blocks = b;
    return b->data;
}

static char *set_strndup(struct gw_pol_set *s, const char *p, size_t n)
{
    char *c = set_alloc(s, n + 1);
    if (c)
        memcpy(c, p, n);
    return c;
}

static void set_free(struct gw_pol_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ndefs; i++)
        if (s->defs[i].kind && s->defs[i].kind->free)
            s->defs[i].kind->free(s->defs[i].state);
    free(s->defs);
    free(s->consumers);
    free(s->names);
    free(s->owned);
    for (struct blk *b = s->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(s);
}

struct gw_pol_set *gw_pol_set_ref(struct gw_pol_set *s)
{
    /* relaxed: a new reference is taken from one already held */
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void gw_pol_set_unref(struct gw_pol_set *s)
{
    /* acq_rel: the last owner sees every other owner's use finished */
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        set_free(s);
}

size_t gw_pol_set_count(const struct gw_pol_set *s)
{
    return s ? s->ndefs : 0;
}

const struct gw_pol_def *gw_pol_set_def(const struct gw_pol_set *s, size_t i)
{
    return s && i < s->ndefs ? &s->defs[i] : NULL;
}

const struct gw_pol_def *gw_pol_set_find(const struct gw_pol_set *s, const char *name)
{
    for (size_t i = 0; s && i < s->ndefs; i++)
        if (strcmp(s->defs[i].name, name) == 0)
            return &s->defs[i];
    return NULL;
}

const char *const *gw_pol_set_names(const struct gw_pol_set *s)
{
    return s ? s->names : NULL;
}

size_t gw_pol_set_nconsumers(const struct gw_pol_set *s)
{
    return s ? s->nconsumers : 0;
}

const struct gw_pol_consumer *gw_pol_set_consumer(const struct gw_pol_set *s, size_t i)
{
    return s && i < s->nconsumers ? &s->consumers[i] : NULL;
}

const struct gw_pol_consumer *gw_pol_set_consumer_find(const struct gw_pol_set *s, const char *name)
{
    for (size_t i = 0; s && i < s->nconsumers; i++)
        if (strcmp(s->consumers[i].name, name) == 0)
            return &s->consumers[i];
    return NULL;
}

const char *const *gw_pol_set_owned(const struct gw_pol_set *s, size_t *n)
{
    *n = s ? s->nowned : 0;
    return s ? s->owned : NULL;
}

void gw__pol_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int gw__pol_strv_start(struct jpos_diags *d, const struct jpos_val *v, int max, const char *what,
                       char ***out, size_t *n)
{
    if (!jpos_array(d, v))
        return 0;
    size_t cap = json_array_size(v->v);
    if (cap > (size_t)max) {
        jpos_err(d, v, "at most %d %s, got %zu", max, what, cap);
        return 0;
    }
    gw__pol_strv_free(*out, *n);
    *n = 0;
    if (!(*out = calloc(cap ? cap : 1, sizeof **out)))
        return -ENOMEM;
    return 1;
}

/* ---- names and field names -------------------------------------------------- */

/* The route-name alphabet: letters, digits and . _ - : / @. */
bool gw__pol_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > GW_POL_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || strchr("._-:/@", s[i])))
            return false;
    return true;
}

/* Field names the gateway writes itself or that frame the message: never a
 * consumer's or a policy's to set. */
static const char *const reserved_fields[] = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "forwarded",
    "x-real-ip",
    "x-request-id",
    "expect",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
};

bool gw__pol_field_name_ok(const char *s, size_t len, const char **why)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    if (len == 0 || len > 128) {
        *why = "a field name is 1 to 128 bytes";
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)s[i]) && !strchr(tchar, s[i])) {
            *why = "a field name holds letters, digits and !#$%&'*+-.^_`|~ only";
            return false;
        }
    }
    for (size_t i = 0; i < sizeof reserved_fields / sizeof *reserved_fields; i++) {
        if (strlen(reserved_fields[i]) == len && strncasecmp(reserved_fields[i], s, len) == 0) {
            *why = "the gateway writes this field itself";
            return false;
        }
    }
    if (len >= 12 && strncasecmp(s, "x-forwarded-", 12) == 0) {
        *why = "the gateway writes the X-Forwarded-* fields itself";
        return false;
    }
    return true;
}

/* Adds a field name (lower-cased copy) to the owned names, once. */
static int owned_add(struct gw_pol_set *s, const char *name, const struct jpos_val *at,
                     const char *file, struct jpos_diags *d)
{
    for (size_t i = 0; i < s->nowned; i++)
        if (strcasecmp(s->owned[i], name) == 0)
            return 0;
    if (s->nowned == GW_POL_MAX_OWNED) {
        if (at)
            jpos_err(d, at,
                     "more than %d distinct upstream field names are set by consumers and "
                     "policies",
                     GW_POL_MAX_OWNED);
        else
            jpos_diag_add(d, JPOS_DIAG_ERROR, file, 0, 0, NULL,
                          "more than %d distinct upstream field names are set by consumers and "
                          "policies",
                          GW_POL_MAX_OWNED);
        return -EINVAL;
    }
    if (s->nowned % 8 == 0) {
        const char **v = realloc(s->owned, (s->nowned + 8) * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->owned = v;
    }
    size_t len = strlen(name);
    char *c = set_strndup(s, name, len);
    if (!c)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++)
        c[i] = (char)tolower((unsigned char)c[i]);
    s->owned[s->nowned++] = c;
    return 0;
}

int gw__pol_set_consumer_header(struct gw_pol_set *s, const char *name, struct jpos_diags *d)
{
    /* The field naming the consumer is the gateway's alone: a consumer's
     * header or a policy's field of the same name would send it twice. */
    for (size_t i = 0; i < s->nconsumers; i++) {
        const struct gw_pol_consumer *c = &s->consumers[i];
        for (size_t k = 0; k < c->nheaders; k++) {
            if (strcasecmp(c->headers[k].name, name) == 0) {
                jpos_diag_add(d, JPOS_DIAG_ERROR, c->file, c->line, c->column, NULL,
                              "consumer \"%s\" sets header \"%s\", the field "
                              "policies.consumer_header names the consumer with",
                              c->name, c->headers[k].name);
                return -EINVAL;
            }
        }
    }
    for (size_t i = 0; i < s->nowned; i++) {
        if (strcasecmp(s->owned[i], name) == 0) {
            jpos_diag_add(d, JPOS_DIAG_ERROR, s->dir, 0, 0, NULL,
                          "a policy sets \"%s\", the field policies.consumer_header names the "
                          "consumer with",
                          name);
            return -EINVAL;
        }
    }
    int r = owned_add(s, name, NULL, s->dir, d);
    if (r < 0)
        return r;
    s->consumer_header = s->owned[s->nowned - 1];
    return 0;
}

const char *gw__pol_set_consumer_field(const struct gw_pol_set *s)
{
    return s ? s->consumer_header : NULL;
}

/* ---- credentials ---------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int gw__pol_parse_key_hash(const char *s, size_t len, unsigned char out[32])
{
    if (len != 7 + 64 || memcmp(s, "sha256:", 7) != 0)
        return -EINVAL;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(s[7 + 2 * i]), lo = hexval(s[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* Standard base64 with its padding: at most cap bytes decoded. */
static int b64(const char *s, size_t len, unsigned char *out, size_t cap, size_t *n)
{
    if (len == 0 || len % 4)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool pad_ok = c == '=' && i >= len - 2 && (i == len - 1 || s[len - 1] == '=');
        if (!isalnum((unsigned char)c) && c != '+' && c != '/' && !pad_ok)
            return -EINVAL;
    }
    unsigned char tmp[96];
    size_t got = 0;
    if (len / 4 * 3 > sizeof tmp ||
        mbedtls_base64_decode(tmp, sizeof tmp, &got, (const unsigned char *)s, len) != 0 ||
        got > cap)
        return -EINVAL;
    memcpy(out, tmp, got);
    *n = got;
    return 0;
}

int gw__pol_parse_pbkdf2(const char *s, size_t len, struct gw_pol_pbkdf2 *out, const char **why)
{
    static const char pre[] = "pbkdf2-sha256$";
    struct gw_pol_pbkdf2 p = {0};
    if (len < sizeof pre - 1 || memcmp(s, pre, sizeof pre - 1) != 0) {
        *why = "a password is a record \"pbkdf2-sha256$<iterations>$<salt base64>$<hash "
               "base64>\" (`tandem hash password` writes one), never the password itself";
        return -EINVAL;
    }
    const char *p1 = s + sizeof pre - 1, *end = s + len;
    const char *d1 = memchr(p1, '$', (size_t)(end - p1));
    const char *d2 = d1 ? memchr(d1 + 1, '$', (size_t)(end - d1 - 1)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '$', (size_t)(end - d2 - 1))) {
        *why = "a pbkdf2-sha256 record has four parts separated by '$'";
        return -EINVAL;
    }
    uint64_t it = 0;
    if (d1 == p1 || d1 - p1 > 8) {
        *why = "iterations must be a number from 10000 to 10000000";
        return -EINVAL;
    }
    for (const char *q = p1; q < d1; q++) {
        if (*q < '0' || *q > '9') {
            *why = "iterations must be a number from 10000 to 10000000";
            return -EINVAL;
        }
        it = it * 10 + (uint64_t)(*q - '0');
    }
    if (it < 10000 || it > 10000000) {
        *why = "iterations must be a number from 10000 to 10000000";
        return -EINVAL;
    }
    p.iterations = (uint32_t)it;
    if (b64(d1 + 1, (size_t)(d2 - d1 - 1), p.salt, sizeof p.salt, &p.salt_len) < 0 ||
        p.salt_len < 16) {
        *why = "the salt must be 16 to 64 bytes in standard base64";
        return -EINVAL;
    }
    size_t hn = 0;
    if (b64(d2 + 1, (size_t)(end - d2 - 1), p.hash, sizeof p.hash, &hn) < 0 || hn != 32) {
        *why = "the hash must be 32 bytes (PBKDF2-HMAC-SHA256) in standard base64";
        return -EINVAL;
    }
    *out = p;
    return 0;
}

/* ---- loading -------------------------------------------------------------------- */

struct loader {
    struct gw_pol_set *s;
    struct jpos_doc *docs;
    const char **labels; /* each document's file name, the set's copy */
    size_t ndocs;
    bool too_many_defs, too_many_consumers;
};

static const char *const file_keys[] = {"policies", "consumers", "$schema", NULL};
static const char *const consumer_keys[] = {"name",    "api_keys",    "basic",
                                            "headers", "description", NULL};
static const char *const basic_keys[] = {"username", "password", NULL};

/* A "name" member: the route-name alphabet. NULL (reported) when bad. */
static const char *read_name(struct jpos_diags *d, const struct jpos_val *v, const char *what)
{
    const char *s;
    size_t len;
    if (!jpos_string(d, v, GW_POL_NAME_MAX, &s, &len))
        return NULL;
    if (!gw__pol_name_ok(s, len)) {
        jpos_err(d, v, "%s name \"%s\" must be 1 to %d letters, digits and . _ - : / @", what, s,
                 GW_POL_NAME_MAX);
        return NULL;
    }
    return s;
}

static int consumer_headers(struct loader *L, struct gw_pol_consumer *c, const struct jpos_val *v,
                            struct jpos_diags *d)
{
    if (!jpos_object(d, v))
        return 0;
    size_t n = json_object_size(v->v);
    if (n > GW_POL_MAX_CONSUMER_HEADERS) {
        jpos_err(d, v, "a consumer has at most %d headers, got %zu", GW_POL_MAX_CONSUMER_HEADERS,
                 n);
        return 0;
    }
    struct gw_http_kv *kv = set_alloc(L->s, (n ? n : 1) * sizeof(*kv));
    if (!kv)
        return -ENOMEM;
    size_t k = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *why, *val;
        size_t vlen;
        if (!gw__pol_field_name_ok(m.key, strlen(m.key), &why)) {
            jpos_err_key(d, &m, "header \"%s\": %s", m.key, why);
            continue;
        }
        if (!jpos_string(d, &m, GW_POL_VALUE_MAX, &val, &vlen))
            continue;
        bool visible = true;
        for (size_t i = 0; i < vlen && visible; i++)
            visible = (unsigned char)val[i] >= 0x20 && (unsigned char)val[i] < 0x7f;
        if (!visible) {
            jpos_err(d, &m, "a header value holds visible ASCII characters and spaces only");
            continue;
        }
        int r = owned_add(L->s, m.key, &m, NULL, d);
        if (r == -ENOMEM)
            return r;
        char *name = set_strndup(L->s, m.key, strlen(m.key));
        char *value = set_strndup(L->s, val, vlen);
        if (!name || !value)
            return -ENOMEM;
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        kv[k++] = (struct gw_http_kv){name, value};
    }
    c->headers = kv;
    c->nheaders = k;
    return 0;
}

static int consumer_keys_read(struct loader *L, struct gw_pol_consumer *c, const struct jpos_val *v,
                              struct jpos_diags *d)
{
    if (!jpos_array(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (n > GW_POL_MAX_API_KEYS) {
        jpos_err(d, v, "a consumer has at most %d api_keys, got %zu", GW_POL_MAX_API_KEYS, n);
        return 0;
    }
    unsigned char(*keys)[32] = set_alloc(L->s, (n ? n : 1) * 32);
    if (!keys)
        return -ENOMEM;
    size_t k = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, 256, &s, &len))
            continue;
        if (gw__pol_parse_key_hash(s, len, keys[k]) < 0) {
            jpos_err(d, &m,
                     "an API key is stored as \"sha256:<64 hex digits>\" (`tandem hash key` "
                     "writes one), never the key itself");
            continue;
        }
        k++;
    }
    c->api_keys = (const unsigned char(*)[32])keys;
    c->napi_keys = k;
    return 0;
}

static int consumer_basic(struct loader *L, struct gw_pol_consumer *c, const struct jpos_val *v,
                          struct jpos_diags *d)
{
    if (!jpos_object(d, v))
        return 0;
    struct jpos_val u, p;
    bool has_u = jpos_obj_get(v, "username", &u), has_p = jpos_obj_get(v, "password", &p);
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m))
        if (strcmp(m.key, "username") != 0 && strcmp(m.key, "password") != 0)
            jpos_unknown(d, &m, "basic", basic_keys);
    if (!has_u || !has_p) {
        jpos_err(d, v, "basic needs \"username\" and \"password\"");
        return 0;
    }
    const char *us, *ps, *why;
    size_t ul, pl;
    if (jpos_string(d, &u, GW_POL_NAME_MAX, &us, &ul)) {
        bool ok = ul > 0;
        for (size_t i = 0; i < ul && ok; i++)
            ok = us[i] != ':' && (unsigned char)us[i] >= 0x20 && us[i] != 0x7f;
        if (!ok)
            jpos_err(d, &u, "a username is 1 to %d characters, without ':' or controls",
                     GW_POL_NAME_MAX);
        else if (!(c->basic_user = set_strndup(L->s, us, ul)))
            return -ENOMEM;
    }
    if (jpos_string(d, &p, 512, &ps, &pl) && gw__pol_parse_pbkdf2(ps, pl, &c->basic, &why) < 0) {
        jpos_err(d, &p, "%s", why);
        c->basic_user = NULL;
    }
    return 0;
}

/* A consumer object; appended to the set when its name is good. */
static int read_consumer(struct loader *L, const struct jpos_val *v, const char *file,
                         struct jpos_diags *d)
{
    struct gw_pol_set *s = L->s;
    if (!json_is_object(v->v)) {
        jpos_err(d, v, "a consumer is an object {\"name\": ..., ...}, got %s",
                 jpos_type_name(v->v));
        return 0;
    }
    if (s->nconsumers == GW_POL_MAX_CONSUMERS) {
        if (!L->too_many_consumers)
            jpos_err(d, v, "more than %d consumers", GW_POL_MAX_CONSUMERS);
        L->too_many_consumers = true;
        return 0;
    }
    struct gw_pol_consumer c = {.file = file};
    jpos_val_pos(v, &c.line, &c.column);
    struct jpos_val m;
    const char *name = NULL;
    int r = 0;
    if (!jpos_obj_get(v, "name", &m))
        jpos_err(d, v, "a consumer needs a \"name\"");
    else if ((name = read_name(d, &m, "consumer"))) {
        const struct gw_pol_consumer *prev = gw_pol_set_consumer_find(s, name);
        if (prev) {
            jpos_err(d, &m, "consumer \"%s\" is already defined at %s:%u:%u", name, prev->file,
                     prev->line, prev->column);
            name = NULL;
        }
    }
    struct jpos_iter it;
    jpos_iter_init(&it, v);
    while (r == 0 && jpos_iter_next(&it, &m)) {
        const char *str;
        if (strcmp(m.key, "name") == 0)
            continue;
        else if (strcmp(m.key, "api_keys") == 0)
            r = consumer_keys_read(L, &c, &m, d);
        else if (strcmp(m.key, "basic") == 0)
            r = consumer_basic(L, &c, &m, d);
        else if (strcmp(m.key, "headers") == 0)
            r = consumer_headers(L, &c, &m, d);
        else if (strcmp(m.key, "description") == 0)
            jpos_string(d, &m, 4096, &str, NULL);
        else
            jpos_unknown(d, &m, "consumer", consumer_keys);
    }
    if (r < 0 || !name)
        return r;
    /* One identity per credential: a key or a username naming two
     * consumers could not say which one authenticated. */
    for (size_t i = 0; i < s->nconsumers; i++) {
        const struct gw_pol_consumer *o = &s->consumers[i];
        for (size_t a = 0; a < c.napi_keys; a++)
            for (size_t b = 0; b < o->napi_keys; b++)
                if (memcmp(c.api_keys[a], o->api_keys[b], 32) == 0)
                    jpos_err(d, v, "consumer \"%s\" has an API key of consumer \"%s\" (%s:%u:%u)",
                             name, o->name, o->file, o->line, o->column);
        if (c.basic_user && o->basic_user && strcmp(c.basic_user, o->basic_user) == 0)
            jpos_err(d, v, "consumer \"%s\" has the basic username of consumer \"%s\" (%s:%u:%u)",
                     name, o->name, o->file, o->line, o->column);
    }
    if (!(c.name = set_strndup(s, name, strlen(name))))
        return -ENOMEM;
    if (s->nconsumers == s->capconsumers) {
        size_t cap = s->capconsumers ? 2 * s->capconsumers : 16;
        struct gw_pol_consumer *nv = realloc(s->consumers, cap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        s->consumers = nv;
        s->capconsumers = cap;
    }
    s->consumers[s->nconsumers++] = c;
    return 0;
}

/* A policy object: its name and type here, the rest by its kind. */
static int read_policy(struct loader *L, const struct jpos_val *v, const char *file,
                       struct jpos_diags *d)
{
    struct gw_pol_set *s = L->s;
    if (!json_is_object(v->v)) {
        jpos_err(d, v, "a policy is an object {\"name\": ..., \"type\": ..., ...}, got %s",
                 jpos_type_name(v->v));
        return 0;
    }
    if (s->ndefs == GW_POL_MAX_POLICIES) {
        if (!L->too_many_defs)
            jpos_err(d, v, "more than %d policies", GW_POL_MAX_POLICIES);
        L->too_many_defs = true;
        return 0;
    }
    struct gw_pol_def def = {.file = file};
    jpos_val_pos(v, &def.line, &def.column);
    struct jpos_val m;
    const char *name = NULL;
    if (!jpos_obj_get(v, "name", &m)) {
        jpos_err(d, v, "a policy needs a \"name\" (routes list it in \"policies\")");
    } else if ((name = read_name(d, &m, "policy"))) {
        const struct gw_pol_def *prev = gw_pol_set_find(s, name);
        if (prev) {
            jpos_err(d, &m, "policy \"%s\" is already defined at %s:%u:%u", name, prev->file,
                     prev->line, prev->column);
            name = NULL;
        }
    }
    const char *type;
    if (!jpos_obj_get(v, "type", &m)) {
        char list[256] = "";
        for (size_t i = 0, len = 0; i < gw_pol_nkinds && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s\"%s\"", i ? ", " : "",
                                    gw_pol_kinds[i]->type);
        jpos_err(d, v, "a policy needs a \"type\" (one of %s)", list);
    } else if (jpos_string(d, &m, 64, &type, NULL)) {
        def.kind = gw_pol_kind_find(type);
        if (!def.kind) {
            const char *types[64];
            size_t n = 0;
            for (; n < gw_pol_nkinds && n < 64; n++)
                types[n] = gw_pol_kinds[n]->type;
            const char *hint = jpos_suggest(type, types, n);
            if (hint)
                jpos_err(d, &m, "unknown policy type \"%s\"; did you mean \"%s\"?", type, hint);
            else
                jpos_err(d, &m, "unknown policy type \"%s\"", type);
        }
    }
    /* The name is taken even when the rest has errors: routes naming it are
     * not blamed for the definition's own mistakes. */
    char *copy = name ? set_strndup(s, name, strlen(name)) : NULL;
    if (name && !copy)
        return -ENOMEM;
    def.name = copy;
    if (def.kind) {
        struct gw_pol_env env = {
            .consumers = s->consumers, .nconsumers = s->nconsumers, .dir = s->dir};
        int r = def.kind->compile(d, v, &env, &def.state);
        if (r == -ENOMEM)
            return r;
        if (r < 0)
            def.kind = NULL;
    }
    if (!def.name) {
        if (def.kind && def.kind->free)
            def.kind->free(def.state);
        return 0;
    }
    if (s->ndefs == s->capdefs) {
        size_t cap = s->capdefs ? 2 * s->capdefs : 16;
        struct gw_pol_def *nv = realloc(s->defs, cap * sizeof(*nv));
        if (!nv) {
            if (def.kind && def.kind->free)
                def.kind->free(def.state);
            return -ENOMEM;
        }
        s->defs = nv;
        s->capdefs = cap;
    }
    s->defs[s->ndefs++] = def;
    return 0;
}

/* The members of one file's array `key`, each through fn. */
static int each(struct loader *L, const struct jpos_doc *doc, const char *file, const char *key,
                int (*fn)(struct loader *, const struct jpos_val *, const char *,
                          struct jpos_diags *),
                struct jpos_diags *d)
{
    struct jpos_val root, arr, m;
    jpos_val_root(doc, &root);
    if (!json_is_object(root.v) || !jpos_obj_get(&root, key, &arr) || !json_is_array(arr.v))
        return 0;
    struct jpos_iter it;
    jpos_iter_init(&it, &arr);
    int r = 0;
    while (r == 0 && jpos_iter_next(&it, &m))
        r = fn(L, &m, file, d);
    return r;
}

/* The top level of a file: an object of "policies" and "consumers". */
static void check_top(const struct jpos_doc *doc, struct jpos_diags *d)
{
    struct jpos_val root, m;
    jpos_val_root(doc, &root);
    if (!json_is_object(root.v)) {
        jpos_err(d, &root,
                 "a policy file holds an object {\"policies\": [...], \"consumers\": "
                 "[...]}, got %s",
                 jpos_type_name(root.v));
        return;
    }
    struct jpos_iter it;
    jpos_iter_init(&it, &root);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        if (strcmp(m.key, "policies") == 0 || strcmp(m.key, "consumers") == 0)
            jpos_array(d, &m);
        else if (strcmp(m.key, "$schema") == 0)
            jpos_string(d, &m, 4096, &s, NULL);
        else
            jpos_unknown(d, &m, "policy file", file_keys);
    }
}

static int kind_owned(struct gw_pol_set *s, struct jpos_diags *d)
{
    for (size_t i = 0; i < s->ndefs; i++) {
        const struct gw_pol_def *def = &s->defs[i];
        if (!def->kind || !def->kind->owned)
            continue;
        const char *names[GW_POL_MAX_OWNED];
        size_t n = def->kind->owned(def->state, names, GW_POL_MAX_OWNED);
        for (size_t k = 0; k < n && k < GW_POL_MAX_OWNED; k++) {
            const char *why;
            if (!gw__pol_field_name_ok(names[k], strlen(names[k]), &why)) {
                jpos_diag_add(d, JPOS_DIAG_ERROR, def->file, def->line, def->column, NULL,
                              "policy \"%s\" sets field \"%s\": %s", def->name, names[k], why);
                continue;
            }
            int r = owned_add(s, names[k], NULL, def->file, d);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static int load(const char *dir, char **files, size_t nfiles, const char *const *texts,
                const size_t *lens, struct gw_pol_set **out, struct jpos_diags *d)
{
    size_t before = d->nerrors;
    struct loader L = {0};
    /* mbedtls 3.x parses and verifies keys (a JWKS's, a JWT's signature)
     * through PSA, which must be initialised first, with or without TLS
     * listeners; 2.28 has nothing to do. Idempotent. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    if (psa_crypto_init() != PSA_SUCCESS) {
        jpos_diag_add(d, JPOS_DIAG_ERROR, dir, 0, 0, NULL, "cannot initialise the crypto library");
        return -EINVAL;
    }
#endif
    int r = -ENOMEM;
    if (!(L.s = calloc(1, sizeof(*L.s))))
        return -ENOMEM;
    atomic_init(&L.s->refs, 1);
    if (!(L.s->dir = set_strndup(L.s, dir, strlen(dir))))
        goto out;
    if (!(L.docs = calloc(nfiles ? nfiles : 1, sizeof(*L.docs))) ||
        !(L.labels = calloc(nfiles ? nfiles : 1, sizeof(*L.labels))))
        goto out;
    r = 0;
    for (size_t i = 0; i < nfiles; i++) {
        char *text = NULL;
        size_t len = 0;
        if (texts) {
            text = (char *)texts[i];
            len = lens[i];
        } else if ((r = jpos_file_load(files[i], MAX_FILE_BYTES, &text, &len, d)) < 0) {
            if (r == -ENOMEM)
                goto out;
            r = 0;
            continue;
        }
        r = jpos_doc_parse(&L.docs[L.ndocs], files[i], text, len, d);
        if (!texts)
            free(text);
        if (r == -ENOMEM)
            goto out;
        L.ndocs++;
        if (r < 0) {
            r = 0;
            continue;
        }
        /* Definitions name their file after the document is gone. */
        struct jpos_doc *doc = &L.docs[L.ndocs - 1];
        char *label = set_strndup(L.s, doc->file, strlen(doc->file));
        if (!label) {
            r = -ENOMEM;
            goto out;
        }
        free(doc->file);
        if (!(doc->file = strdup(label))) {
            r = -ENOMEM;
            goto out;
        }
        L.labels[L.ndocs - 1] = label;
        check_top(doc, d);
    }
    /* Consumers of every file first: a policy's compile sees them all. */
    for (size_t i = 0; i < L.ndocs && r == 0; i++)
        if (L.docs[i].root)
            r = each(&L, &L.docs[i], L.labels[i], "consumers", read_consumer, d);
    for (size_t i = 0; i < L.ndocs && r == 0; i++)
        if (L.docs[i].root)
            r = each(&L, &L.docs[i], L.labels[i], "policies", read_policy, d);
    if (r == 0)
        r = kind_owned(L.s, d);
    if (r == -EINVAL)
        r = 0;
    if (r < 0)
        goto out;
    if (!(L.s->names = calloc(L.s->ndefs ? L.s->ndefs : 1, sizeof(*L.s->names)))) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < L.s->ndefs; i++)
        L.s->names[i] = L.s->defs[i].name;
    if (d->nerrors != before)
        r = -EINVAL;
out:
    for (size_t i = 0; i < L.ndocs; i++)
        jpos_doc_done(&L.docs[i]);
    free(L.docs);
    free(L.labels);
    if (r < 0) {
        set_free(L.s);
        return r;
    }
    *out = L.s;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int gw_pol_set_load_dir(const char *dir, struct gw_pol_set **out, struct jpos_diags *d)
{
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int r = 0;
    DIR *dp = opendir(dir);
    if (!dp) {
        if (errno != ENOENT) {
            jpos_diag_add(d, JPOS_DIAG_ERROR, dir, 0, 0, NULL,
                          "cannot open the policies directory: %s", strerror(errno));
            return -EINVAL;
        }
        goto load;
    }
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (nn == MAX_FILES) {
            jpos_diag_add(d, JPOS_DIAG_ERROR, dir, 0, 0, NULL,
                          "more than %d files in the policies directory", MAX_FILES);
            r = -EINVAL;
            goto out;
        }
        if (nn == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = realloc(names, cap * sizeof(*v));
            if (!v) {
                r = -ENOMEM;
                goto out;
            }
            names = v;
        }
        if (asprintf(&names[nn], "%s/%s", dir, de->d_name) < 0) {
            r = -ENOMEM;
            goto out;
        }
        nn++;
    }
    qsort(names, nn, sizeof(*names), cmp_str);
load:
    r = load(dir, names, nn, NULL, NULL, out, d);
out:
    if (dp)
        closedir(dp);
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    return r;
}

int gw_pol_set_load_text(const char *label, const char *text, size_t len, const char *dir,
                         struct gw_pol_set **out, struct jpos_diags *d)
{
    char *files[1] = {(char *)label};
    const char *texts[1] = {text};
    size_t lens[1] = {len};
    return load(dir ? dir : ".", files, 1, texts, lens, out, d);
}
