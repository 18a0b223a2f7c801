/*
 * key_auth.c: the `key_auth` policy kind. A client presents an API key in a
 * header (default x-api-key) or a query parameter; the request goes on as
 * the consumer holding that key, or is answered 401.
 *
 * Keys are stored as their SHA-256 (consumers' "api_keys"). At compile the
 * policy puts every consumer's key hashes in an open-addressed table
 * indexed by the hash's first bytes; a request hashes the key it presents,
 * probes, and compares the 32 bytes in constant time. The time a lookup
 * takes depends on the hash of what the client sent, never on how much of
 * a real key it guessed. A key is never logged, never described, and the
 * query parameter is dropped from the query the upstream receives.
 *
 * A key found is remembered by its tag: two SipHash-2-4 passes under keys
 * drawn at compile (128 bits), a tenth of a SHA-256's cost, in a bounded
 * direct-mapped table. A client presenting that key again is known by the
 * tag alone; any other key misses and costs the full look-up, so that a
 * key is admitted only through the stored hashes, and a tag, which no one
 * without the compile's secret can aim, is never taken for another key's.
 * The table holds tags and consumers, no key and no stored hash; it
 * belongs to the compiled policy, so a reload (a key revoked) starts empty.
 *
 * The state is immutable after compile but for that table, whose entries
 * are sequence-locked atomics: requests on every scheduler read and fill it
 * without locks, and a writer that finds an entry busy skips remembering.
 */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>

#include "policy/auth.h"
#include "policy/siphash.h"
#include "rt/rt.h"
#include "tls/compat.h"

#define DEFAULT_HEADER "x-api-key"
#define DEFAULT_REALM "tandem"

struct slot {
    unsigned char hash[32];
    const struct gw_pol_consumer *c; /* NULL: empty */
};

/* A key already found: its tag and consumer. `seq` is odd while the entry
 * is written; a reader that sees it change (or odd) treats it as a miss. */
struct seen {
    _Atomic uint32_t seq;
    _Atomic uint64_t tag[2];
    _Atomic(const struct gw_pol_consumer *) c;
};

/* Entries of the table of keys found: a power of two at least twice the
 * keys, within these bounds (32 bytes each). */
#define SEEN_MIN 64
#define SEEN_MAX 4096

struct key_auth {
    char name[GW_POL_NAME_MAX + 1];
    char header[GW_POL_AUTH_NAME_MAX + 1]; /* lower case; "" when the header is not read */
    char query[GW_POL_AUTH_NAME_MAX + 1];  /* "" when no query parameter is read */
    char realm[GW_POL_REALM_MAX + 1];
    /* WWW-Authenticate: ApiKey realm="...", header="...", query="..." */
    char challenge[32 + GW_POL_REALM_MAX + 2 * GW_POL_AUTH_NAME_MAX];
    struct slot *slots;
    size_t mask; /* slots - 1; a power of two at least twice the keys */
    size_t nkeys;
    struct seen *seen; /* NULL: nothing is remembered (no entropy at compile) */
    size_t seen_mask;
    uint64_t sip[4]; /* the tags' two keys */
};

static _Atomic uint64_t n_hashed, n_remembered;

void gw__pol_key_counts(struct gw__pol_key_counts *out)
{
    /* Relaxed: counters. */
    out->hashed = atomic_load_explicit(&n_hashed, memory_order_relaxed);
    out->remembered = atomic_load_explicit(&n_remembered, memory_order_relaxed);
}

static const char *const known_keys[] = {"name", "type", "header", "query", "realm", NULL};

static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* A realm is written inside a quoted-string: visible ASCII and spaces, no
 * quote or backslash (so that no escaping is needed). */
static bool realm_ok(const char *s, size_t len)
{
    if (len == 0 || len > GW_POL_REALM_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

void gw__pol_read_realm(struct jpos_diags *d, const struct jpos_val *m,
                        char realm[GW_POL_REALM_MAX + 1])
{
    const char *s;
    size_t len;
    if (!jpos_string(d, m, GW_POL_REALM_MAX, &s, &len))
        return;
    if (!realm_ok(s, len)) {
        jpos_err(d, m,
                 "a realm is 1..%d characters of visible ASCII and spaces, "
                 "without '\"' or '\\'",
                 GW_POL_REALM_MAX);
        return;
    }
    memcpy(realm, s, len + 1);
}

static size_t hash_index(const unsigned char h[32])
{
    size_t x = 0;
    memcpy(&x, h, sizeof x); /* SHA-256 output: its bytes are already uniform */
    return x;
}

static void key_free(void *state)
{
    struct key_auth *k = state;
    if (!k)
        return;
    free(k->slots);
    free(k->seen);
    mbedtls_platform_zeroize(k->sip, sizeof k->sip);
    free(k);
}

/* Reads "header" or "query": a name of 1..GW_POL_AUTH_NAME_MAX bytes of the
 * alphabet given; `false` turns the source off. */
static bool read_source(struct jpos_diags *d, const struct jpos_val *m, bool (*ok)(unsigned char),
                        const char *what, char *out)
{
    if (json_is_false(m->v)) {
        out[0] = '\0';
        return true;
    }
    const char *s;
    size_t len;
    if (!json_is_string(m->v)) {
        jpos_err(d, m, "expected a %s name (a string) or false, not %s", what,
                 jpos_type_name(m->v));
        return false;
    }
    if (!jpos_string(d, m, GW_POL_AUTH_NAME_MAX, &s, &len))
        return false;
    if (len == 0) {
        jpos_err(d, m, "the %s name is empty", what);
        return false;
    }
    for (size_t i = 0; i < len; i++)
        if (!ok((unsigned char)s[i])) {
            jpos_err(d, m, "\"%s\" is not a valid %s name", s, what);
            return false;
        }
    for (size_t i = 0; i <= len; i++)
        out[i] = (char)(ok == is_tchar ? tolower((unsigned char)s[i]) : s[i]);
    return true;
}

static int key_compile(struct jpos_diags *d, const struct jpos_val *obj,
                       const struct gw_pol_env *env, void **state)
{
    int rc = -EINVAL;
    size_t errors = d->nerrors;
    struct key_auth *k = calloc(1, sizeof *k);
    if (!k)
        return -ENOMEM;
    strcpy(k->header, DEFAULT_HEADER);
    strcpy(k->realm, DEFAULT_REALM);
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, obj);
    while (jpos_iter_next(&it, &m)) {
        if (strcmp(m.key, "name") == 0) {
            if (json_is_string(m.v))
                snprintf(k->name, sizeof k->name, "%s", json_string_value(m.v));
        } else if (strcmp(m.key, "type") == 0) {
            continue;
        } else if (strcmp(m.key, "header") == 0) {
            read_source(d, &m, is_tchar, "header", k->header);
        } else if (strcmp(m.key, "query") == 0) {
            read_source(d, &m, is_unreserved, "query parameter", k->query);
        } else if (strcmp(m.key, "realm") == 0) {
            gw__pol_read_realm(d, &m, k->realm);
        } else {
            jpos_unknown(d, &m, "key_auth policy", known_keys);
        }
    }
    if (!k->header[0] && !k->query[0])
        jpos_err(d, obj, "key_auth reads the key from nowhere: give \"header\" or \"query\"");
    if (d->nerrors != errors)
        goto out;

    int n = snprintf(k->challenge, sizeof k->challenge, "ApiKey realm=\"%s\"", k->realm);
    if (k->header[0])
        n += snprintf(k->challenge + n, sizeof k->challenge - (size_t)n, ", header=\"%s\"",
                      k->header);
    if (k->query[0])
        snprintf(k->challenge + n, sizeof k->challenge - (size_t)n, ", query=\"%s\"", k->query);

    for (size_t i = 0; i < env->nconsumers; i++)
        k->nkeys += env->consumers[i].napi_keys;
    size_t cap = 8;
    while (cap < 2 * k->nkeys)
        cap *= 2;
    k->slots = calloc(cap, sizeof *k->slots);
    if (!k->slots) {
        rc = -ENOMEM;
        goto out;
    }
    k->mask = cap - 1;
    for (size_t i = 0; i < env->nconsumers; i++) {
        const struct gw_pol_consumer *c = &env->consumers[i];
        for (size_t j = 0; j < c->napi_keys; j++) {
            size_t at = hash_index(c->api_keys[j]) & k->mask;
            while (k->slots[at].c && memcmp(k->slots[at].hash, c->api_keys[j], 32) != 0)
                at = (at + 1) & k->mask;
            if (k->slots[at].c) {
                /* One key, two consumers: a request could not tell who it
                 * is. Said without the key's hash. */
                if (k->slots[at].c != c)
                    jpos_diag_add(d, JPOS_DIAG_ERROR, c->file, c->line, c->column, NULL,
                                  "consumer \"%s\" holds an API key consumer \"%s\" holds too",
                                  c->name, k->slots[at].c->name);
                continue;
            }
            memcpy(k->slots[at].hash, c->api_keys[j], 32);
            k->slots[at].c = c;
        }
    }
    if (d->nerrors != errors)
        goto out;
    /* Without entropy the tags could be aimed: then nothing is remembered
     * and every request costs the full look-up. */
    if (getrandom(k->sip, sizeof k->sip, 0) == (ssize_t)sizeof k->sip) {
        size_t ns = SEEN_MIN;
        while (ns < 2 * k->nkeys && ns < SEEN_MAX)
            ns *= 2;
        k->seen = calloc(ns, sizeof *k->seen);
        if (!k->seen) {
            rc = -ENOMEM;
            goto out;
        }
        k->seen_mask = ns - 1;
    }
    *state = k;
    k = NULL;
    rc = 0;
out:
    key_free(k);
    return rc;
}

/* The consumer holding the key whose SHA-256 is h, or NULL. Every slot of
 * the probe is compared in constant time. */
static const struct gw_pol_consumer *key_find(const struct key_auth *k, const unsigned char h[32])
{
    for (size_t at = hash_index(h) & k->mask;; at = (at + 1) & k->mask) {
        const struct slot *s = &k->slots[at];
        if (!s->c)
            return NULL;
        if (mbedtls_ct_memcmp(s->hash, h, 32) == 0)
            return s->c;
    }
}

static void tag_of(const struct key_auth *k, const char *key, size_t len, uint64_t t[2])
{
    t[0] = gw__pol_siphash(k->sip[0], k->sip[1], key, len);
    t[1] = gw__pol_siphash(k->sip[2], k->sip[3], key, len);
}

/* The consumer remembered under tag t, or NULL. The sequence-lock read:
 * the fields count only when seq was even before them and unchanged after.
 * The fields are loaded with acquire and stored with release, so a reader
 * that sees any field of a write in progress sees its odd seq afterwards
 * (no fences: the orderings say it all, and ThreadSanitizer reads them). */
static const struct gw_pol_consumer *seen_find(const struct key_auth *k, const uint64_t t[2])
{
    struct seen *e = &k->seen[t[0] & k->seen_mask];
    uint32_t s = atomic_load_explicit(&e->seq, memory_order_acquire);
    if (s & 1)
        return NULL;
    uint64_t a = atomic_load_explicit(&e->tag[0], memory_order_acquire);
    uint64_t b = atomic_load_explicit(&e->tag[1], memory_order_acquire);
    const struct gw_pol_consumer *c = atomic_load_explicit(&e->c, memory_order_acquire);
    if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s)
        return NULL;
    return ((a ^ t[0]) | (b ^ t[1])) == 0 ? c : NULL;
}

/* Remembers c under tag t, replacing the entry's key; skipped when another
 * request writes the entry now. */
static void seen_put(const struct key_auth *k, const uint64_t t[2], const struct gw_pol_consumer *c)
{
    struct seen *e = &k->seen[t[0] & k->seen_mask];
    uint32_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);
    if ((s & 1) || !atomic_compare_exchange_strong_explicit(
                       &e->seq, &s, s + 1, memory_order_relaxed, memory_order_relaxed))
        return;
    atomic_store_explicit(&e->tag[0], t[0], memory_order_release);
    atomic_store_explicit(&e->tag[1], t[1], memory_order_release);
    atomic_store_explicit(&e->c, c, memory_order_release);
    atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..len) into out[0..cap); its length, or -1 for a
 * broken escape or an overflow. */
static long pct_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
            if (a < 0 || b < 0)
                return -1;
            c = (char)(a << 4 | b);
            i += 2;
        }
        if (n == cap)
            return -1;
        out[n++] = c;
    }
    return (long)n;
}

int gw__pol_query_take(const char *query, size_t qlen, const char *name, char *val, size_t valcap,
                       size_t *vlen, size_t *nfound, char *rest, size_t *rest_len)
{
    size_t found = 0, out = 0, nlen = strlen(name);
    *vlen = 0;
    for (size_t i = 0; i <= qlen;) {
        size_t end = i;
        while (end < qlen && query[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && query[eq] != '=')
            eq++;
        /* The pair's name, decoded (a name longer than ours cannot be it,
         * whatever its escapes: decoding never lengthens). */
        char pname[GW_POL_AUTH_NAME_MAX];
        long pn = eq - i <= 3 * GW_POL_AUTH_NAME_MAX
                      ? pct_decode(query + i, eq - i, pname, sizeof pname)
                      : -1;
        bool ours = pn == (long)nlen && memcmp(pname, name, nlen) == 0;
        if (ours) {
            if (found++ == 0) {
                size_t vs = eq < end ? eq + 1 : end;
                long vn = pct_decode(query + vs, end - vs, val, valcap);
                if (vn < 0)
                    return -EINVAL;
                *vlen = (size_t)vn;
            }
        } else if (end > i) {
            if (out)
                rest[out++] = '&';
            memcpy(rest + out, query + i, end - i);
            out += end - i;
        }
        i = end + 1;
    }
    *nfound = found;
    *rest_len = out;
    return 0;
}

/* Wipes and frees a copy of a key taken from the query (NULL-safe). */
static void forget(char *qval)
{
    if (!qval)
        return;
    mbedtls_platform_zeroize(qval, GW_POL_KEY_MAX);
    rt_free(qval);
}

static int deny(const struct key_auth *k, struct gw_pol_req *rq, const char *reason,
                const char *message)
{
    gw_pol_count_denial(k->name, reason);
    struct gw_http_kv extra = {"WWW-Authenticate", k->challenge};
    return gw_pol_refuse(rq, 401, message, &extra, 1);
}

static int key_run(void *state, struct gw_pol_req *rq)
{
    const struct key_auth *k = state;
    const char *key = NULL;
    size_t klen = 0;
    bool bad = false;
    if (k->header[0]) {
        size_t n;
        key = gw_http_head_get_only(rq->head, k->header, &klen, &n);
        if (n > 1)
            bad = true; /* which one would the upstream believe? */
        if (key && klen == 0)
            key = NULL;
    }
    /* The query parameter is taken out whether or not the key came from
     * it: an upstream never sees one. */
    char *qval = NULL, *rest = NULL;
    size_t rest_len = 0;
    bool rewrite = false;
    if (k->query[0] && rq->query && rq->query_len) {
        qval = rt_alloc(GW_POL_KEY_MAX);
        rest = rt_alloc(rq->query_len + 1);
        if (!qval || !rest) {
            gw_pol_count_denial(k->name, "internal");
            return gw_pol_refuse(rq, 500, "out of memory", NULL, 0);
        }
        size_t vlen = 0, nfound = 0;
        if (gw__pol_query_take(rq->query, rq->query_len, k->query, qval, GW_POL_KEY_MAX, &vlen,
                               &nfound, rest, &rest_len) < 0 ||
            nfound > 1)
            bad = true;
        else if (nfound == 1) {
            rewrite = true;
            if (!key && vlen) {
                key = qval;
                klen = vlen;
            }
        }
    }
    if (bad || (key && klen > GW_POL_KEY_MAX)) {
        forget(qval);
        return deny(k, rq, "invalid_credentials", "invalid API key");
    }
    if (!key) {
        forget(qval);
        return deny(k, rq, "missing_credentials", "an API key is needed");
    }
    uint64_t t[2] = {0, 0};
    const struct gw_pol_consumer *c = NULL;
    if (k->seen) {
        tag_of(k, key, klen, t);
        c = seen_find(k, t);
    }
    if (c) {
        atomic_fetch_add_explicit(&n_remembered, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&n_hashed, 1, memory_order_relaxed);
        unsigned char h[32];
        int hr = gw_tls_sha256(key, klen, h);
        c = hr == 0 ? key_find(k, h) : NULL;
        mbedtls_platform_zeroize(h, sizeof h);
        if (c && k->seen)
            seen_put(k, t, c);
    }
    forget(qval);
    if (!c)
        return deny(k, rq, "invalid_credentials", "invalid API key");
    rq->consumer = c;
    if (rewrite) {
        rest[rest_len] = '\0';
        rq->query = rest_len ? rest : NULL;
        rq->query_len = rest_len;
    }
    return GW_POL_NEXT;
}

static json_t *key_describe(const void *state)
{
    const struct key_auth *k = state;
    return json_pack("{s:s?, s:s?, s:s, s:I}", "header", k->header[0] ? k->header : NULL, "query",
                     k->query[0] ? k->query : NULL, "realm", k->realm, "keys",
                     (json_int_t)k->nkeys);
}

const struct gw_pol_kind gw__pol_kind_key_auth = {
    .type = "key_auth",
    .compile = key_compile,
    .free = key_free,
    .run = key_run,
    .describe = key_describe,
};
