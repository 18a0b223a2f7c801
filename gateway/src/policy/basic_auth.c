/*
 * basic_auth.c: the `basic_auth` policy kind (RFC 7617). A client sends
 * `Authorization: Basic base64(user-id ":" password)`; the request goes
 * on as the consumer whose "basic" credential has that user-id and whose
 * PBKDF2-HMAC-SHA256 record the password matches, or is answered 401 with
 * `WWW-Authenticate: Basic realm="...", charset="UTF-8"`.
 *
 * PBKDF2 is slow on purpose (tens to hundreds of milliseconds): it runs on
 * the runtime's blocking pool (rt_blocking) while the request process is
 * parked, never on a scheduler thread. At most GW_POL_BASIC_MAX_PENDING
 * verifications are in the pool at once, gateway-wide (others are answered
 * 503), so that a flood of attempts cannot queue the log writer and the
 * route loader behind it.
 *
 * An unknown user-id costs the same as a wrong password: it is verified
 * against a dummy record (random salt and hash, the iteration count most
 * consumers' records use), so the answer's timing does not say whether a
 * user-id exists.
 *
 * A success is remembered for cache_ttl_s in a bounded cache, so that a
 * keep-alive client sending the same credentials on each request does not
 * pay PBKDF2 each time. An entry is keyed by HMAC-SHA256 of "user:password"
 * under a random key made when the policy is compiled: the cache holds no
 * password and nothing that can be checked against a guess without that
 * key. Only successes are cached; a failure always costs a full
 * verification. The cache belongs to the compiled policy: a reload starts
 * an empty one (so a changed password takes effect at once).
 *
 * The state is immutable after compile except the cache, which a mutex
 * guards (held for a lookup or an insert in one 4-way set, never across a
 * hash computation or a park).
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/base64.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "policy/auth.h"
#include "rt/rt.h"
#include "tls/compat.h"

#define DEFAULT_REALM "tandem"
#define WAYS 4

struct user {
    const char *id;
    const struct gw_pol_consumer *c;
};

struct entry {
    unsigned char tag[32];
    const struct gw_pol_consumer *c; /* NULL: empty */
    uint64_t expires_ms;
};

struct basic_auth {
    char name[GW_POL_NAME_MAX + 1];
    char realm[GW_POL_REALM_MAX + 1];
    char challenge[48 + GW_POL_REALM_MAX];
    struct user *users; /* sorted by id */
    size_t nusers;
    struct gw_pol_pbkdf2 dummy;
    uint32_t ttl_s;
    uint32_t cache_size;
    /* The cache: cache_size entries in sets of WAYS (none when ttl_s or
     * cache_size is 0). */
    pthread_mutex_t lock;
    bool lock_init;
    struct entry *cache;
    size_t nsets; /* a power of two */
    unsigned char cache_key[32];
};

static _Atomic uint64_t n_hashes, n_on_scheduler, n_cache_hits;
/* Jobs in the blocking pool; each job takes itself off when it ends. */
static _Atomic int pending;

void gw__pol_basic_counts(struct gw__pol_basic_counts *out)
{
    /* Relaxed: counters for tests, read after the work they count. */
    out->hashes = atomic_load_explicit(&n_hashes, memory_order_relaxed);
    out->on_scheduler = atomic_load_explicit(&n_on_scheduler, memory_order_relaxed);
    out->cache_hits = atomic_load_explicit(&n_cache_hits, memory_order_relaxed);
}

static const char *const known_keys[] = {"name",        "type",       "realm",
                                         "cache_ttl_s", "cache_size", NULL};

static void basic_free(void *state)
{
    struct basic_auth *b = state;
    if (!b)
        return;
    if (b->lock_init)
        pthread_mutex_destroy(&b->lock);
    free(b->cache);
    free(b->users);
    mbedtls_platform_zeroize(b->cache_key, sizeof b->cache_key);
    free(b);
}

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const struct user *)a)->id, ((const struct user *)b)->id);
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The dummy record's iteration count: the one most consumers' records use
 * (the larger on a tie), so that an unknown user-id costs what most known
 * ones do; the default with no consumer. 0 or -ENOMEM. */
static int common_iterations(const struct user *u, size_t n, uint32_t *out)
{
    *out = GW_POL_PBKDF2_DEFAULT_ITERATIONS;
    if (!n)
        return 0;
    uint32_t *it = malloc(n * sizeof *it);
    if (!it)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        it[i] = u[i].c->basic.iterations;
    qsort(it, n, sizeof *it, u32_cmp);
    size_t best_n = 0;
    for (size_t i = 0, run = 1; i < n; i++, run++) {
        if (i + 1 < n && it[i + 1] == it[i])
            continue;
        if (run >= best_n) { /* ascending: ">=" keeps the larger on a tie */
            best_n = run;
            *out = it[i];
        }
        run = 0;
    }
    free(it);
    return 0;
}

static int basic_compile(struct jpos_diags *d, const struct jpos_val *obj,
                         const struct gw_pol_env *env, void **state)
{
    int rc = -EINVAL;
    size_t errors = d->nerrors;
    struct basic_auth *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    strcpy(b->realm, DEFAULT_REALM);
    b->ttl_s = GW_POL_BASIC_CACHE_TTL_S;
    b->cache_size = GW_POL_BASIC_CACHE_SIZE;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, obj);
    while (jpos_iter_next(&it, &m)) {
        long long v;
        if (strcmp(m.key, "name") == 0) {
            if (json_is_string(m.v))
                snprintf(b->name, sizeof b->name, "%s", json_string_value(m.v));
        } else if (strcmp(m.key, "type") == 0) {
            continue;
        } else if (strcmp(m.key, "realm") == 0) {
            gw__pol_read_realm(d, &m, b->realm);
        } else if (strcmp(m.key, "cache_ttl_s") == 0) {
            if (jpos_int(d, &m, 0, GW_POL_BASIC_CACHE_TTL_MAX_S, &v))
                b->ttl_s = (uint32_t)v;
        } else if (strcmp(m.key, "cache_size") == 0) {
            if (jpos_int(d, &m, 0, GW_POL_BASIC_CACHE_SIZE_MAX, &v))
                b->cache_size = (uint32_t)v;
        } else {
            jpos_unknown(d, &m, "basic_auth policy", known_keys);
        }
    }
    if (d->nerrors != errors)
        goto out;
    snprintf(b->challenge, sizeof b->challenge, "Basic realm=\"%s\", charset=\"UTF-8\"", b->realm);

    for (size_t i = 0; i < env->nconsumers; i++)
        b->nusers += env->consumers[i].basic_user != NULL;
    b->users = calloc(b->nusers ? b->nusers : 1, sizeof *b->users);
    if (!b->users) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0, n = 0; i < env->nconsumers; i++)
        if (env->consumers[i].basic_user)
            b->users[n++] = (struct user){env->consumers[i].basic_user, &env->consumers[i]};
    qsort(b->users, b->nusers, sizeof *b->users, user_cmp);
    for (size_t i = 1; i < b->nusers; i++)
        if (strcmp(b->users[i].id, b->users[i - 1].id) == 0) {
            const struct gw_pol_consumer *c = b->users[i].c;
            jpos_diag_add(d, JPOS_DIAG_ERROR, c->file, c->line, c->column, NULL,
                          "consumers \"%s\" and \"%s\" have the same basic-auth user-id \"%s\"",
                          b->users[i - 1].c->name, c->name, c->basic_user);
        }
    if (d->nerrors != errors)
        goto out;

    if (common_iterations(b->users, b->nusers, &b->dummy.iterations) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    b->dummy.salt_len = GW_POL_PBKDF2_SALT_BYTES;
    if (getrandom(b->dummy.salt, b->dummy.salt_len, 0) != (ssize_t)b->dummy.salt_len ||
        getrandom(b->dummy.hash, sizeof b->dummy.hash, 0) != (ssize_t)sizeof b->dummy.hash ||
        getrandom(b->cache_key, sizeof b->cache_key, 0) != (ssize_t)sizeof b->cache_key) {
        jpos_err(d, obj, "no random bytes for the policy's keys");
        goto out;
    }
    if (b->ttl_s && b->cache_size) {
        b->nsets = 1;
        while (b->nsets * WAYS < b->cache_size)
            b->nsets *= 2;
        b->cache = calloc(b->nsets * WAYS, sizeof *b->cache);
        if (!b->cache || pthread_mutex_init(&b->lock, NULL) != 0) {
            rc = -ENOMEM;
            goto out;
        }
        b->lock_init = true;
    }
    *state = b;
    b = NULL;
    rc = 0;
out:
    basic_free(b);
    return rc;
}

/* ---- the verification, on the blocking pool ------------------------------- */

/* Shared by the request process and a blocking thread: a request process
 * killed while it is parked drops its reference, and the thread its own,
 * so the job never points into the process's memory. */
struct job {
    _Atomic int refs;
    bool ok;
    struct gw_pol_pbkdf2 rec;
    size_t pw_len;
    unsigned char pw[GW_POL_PASSWORD_MAX];
};

static void job_unref(void *arg)
{
    struct job *j = arg;
    /* acq_rel: the last owner sees everything the other one wrote. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    mbedtls_platform_zeroize(j, sizeof *j);
    free(j);
}

static intptr_t job_run(void *arg)
{
    struct job *j = arg;
    unsigned char got[32];
    /* Relaxed: counters only. */
    atomic_fetch_add_explicit(&n_hashes, 1, memory_order_relaxed);
    if (rt_on_scheduler())
        atomic_fetch_add_explicit(&n_on_scheduler, 1, memory_order_relaxed);
    int rc = gw_tls_pbkdf2_sha256(j->pw, j->pw_len, j->rec.salt, j->rec.salt_len, j->rec.iterations,
                                  got, sizeof got);
    j->ok = rc == 0 && mbedtls_ct_memcmp(got, j->rec.hash, sizeof got) == 0;
    mbedtls_platform_zeroize(got, sizeof got);
    mbedtls_platform_zeroize(j->pw, j->pw_len);
    intptr_t ok = j->ok;
    /* Relaxed: a count of jobs, no data travels with it. */
    atomic_fetch_sub_explicit(&pending, 1, memory_order_relaxed);
    job_unref(j);
    return ok;
}

/* Whether `pw` matches `rec`, computed on the blocking pool. 1 or 0;
 * -EBUSY when GW_POL_BASIC_MAX_PENDING are in the pool; -ENOMEM. Process
 * context; parks. */
static int verify(const struct gw_pol_pbkdf2 *rec, const char *pw, size_t pw_len)
{
    /* Relaxed: a bound on work, not a lock. */
    if (atomic_fetch_add_explicit(&pending, 1, memory_order_relaxed) >= GW_POL_BASIC_MAX_PENDING) {
        atomic_fetch_sub_explicit(&pending, 1, memory_order_relaxed);
        return -EBUSY;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        atomic_fetch_sub_explicit(&pending, 1, memory_order_relaxed);
        return -ENOMEM;
    }
    atomic_init(&j->refs, 2);
    j->rec = *rec;
    j->pw_len = pw_len;
    memcpy(j->pw, pw, pw_len);
    uint64_t d = rt_defer(job_unref, j);
    if (!d) {
        atomic_fetch_sub_explicit(&pending, 1, memory_order_relaxed);
        mbedtls_platform_zeroize(j, sizeof *j);
        free(j);
        return -ENOMEM;
    }
    intptr_t res = 0;
    int r = rt_blocking(job_run, j, &res);
    if (r) {
        atomic_fetch_sub_explicit(&pending, 1, memory_order_relaxed);
        job_unref(j); /* the blocking thread's reference: it never ran */
        rt_undefer(d, true);
        return r;
    }
    rt_undefer(d, true);
    return res ? 1 : 0;
}

/* ---- the cache ------------------------------------------------------------- */

static struct entry *cache_set(struct basic_auth *b, const unsigned char tag[32])
{
    size_t x;
    memcpy(&x, tag, sizeof x); /* an HMAC output: uniform bytes */
    return &b->cache[(x & (b->nsets - 1)) * WAYS];
}

static const struct gw_pol_consumer *cache_find(struct basic_auth *b, const unsigned char tag[32],
                                                uint64_t now)
{
    const struct gw_pol_consumer *c = NULL;
    pthread_mutex_lock(&b->lock);
    struct entry *set = cache_set(b, tag);
    for (int i = 0; i < WAYS; i++)
        if (set[i].c && set[i].expires_ms > now && mbedtls_ct_memcmp(set[i].tag, tag, 32) == 0)
            c = set[i].c;
    pthread_mutex_unlock(&b->lock);
    return c;
}

static void cache_put(struct basic_auth *b, const unsigned char tag[32],
                      const struct gw_pol_consumer *c, uint64_t now)
{
    pthread_mutex_lock(&b->lock);
    struct entry *set = cache_set(b, tag), *e = NULL;
    /* The same tag, else an empty or expired way, else the one that
     * expires first. */
    for (int i = 0; i < WAYS && !e; i++)
        if (set[i].c && memcmp(set[i].tag, tag, 32) == 0)
            e = &set[i];
    for (int i = 0; i < WAYS && !e; i++)
        if (!set[i].c || set[i].expires_ms <= now)
            e = &set[i];
    if (!e) {
        e = &set[0];
        for (int i = 1; i < WAYS; i++)
            if (set[i].expires_ms < e->expires_ms)
                e = &set[i];
    }
    memcpy(e->tag, tag, 32);
    e->c = c;
    e->expires_ms = now + (uint64_t)b->ttl_s * 1000;
    pthread_mutex_unlock(&b->lock);
}

/* ---- a request --------------------------------------------------------------- */

static int deny(const struct basic_auth *b, struct gw_pol_req *rq, const char *reason,
                const char *message)
{
    gw_pol_count_denial(b->name, reason);
    struct gw_http_kv extra = {"WWW-Authenticate", b->challenge};
    return gw_pol_refuse(rq, 401, message, &extra, 1);
}

static bool is_b64(unsigned char c)
{
    return isalnum(c) || c == '+' || c == '/';
}

/* Decodes the credentials of an Authorization value into out (capacity
 * GW_POL_USER_MAX + 1 + GW_POL_PASSWORD_MAX): 0 with *user_len and the
 * password after the colon; -ENOENT when the value is not of the Basic
 * scheme; -EINVAL when it is, but broken (bad base64, no colon, a control
 * character, too long). */
static int parse_basic(const char *v, size_t len, unsigned char *out, size_t cap, size_t *out_len,
                       size_t *user_len)
{
    if (len < 5 || strncasecmp(v, "basic", 5) != 0 || (len > 5 && v[5] != ' '))
        return -ENOENT;
    size_t i = 5;
    while (i < len && v[i] == ' ')
        i++;
    size_t end = len;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    size_t n = end - i;
    if (n == 0 || n > GW_POL_BASIC_B64_MAX)
        return -EINVAL;
    /* Strict base64 (RFC 4648 section 4): its alphabet, then at most two
     * '=' that complete the last quantum; unpadded input is padded here. */
    char b64[GW_POL_BASIC_B64_MAX + 4];
    size_t data = 0;
    while (data < n && is_b64((unsigned char)v[i + data]))
        data++;
    size_t pad = n - data;
    if (pad > 2 || data % 4 == 1)
        return -EINVAL;
    for (size_t k = data; k < n; k++)
        if (v[i + k] != '=')
            return -EINVAL;
    if (pad && (data + pad) % 4 != 0)
        return -EINVAL;
    memcpy(b64, v + i, data);
    size_t blen = data;
    while (blen % 4)
        b64[blen++] = '=';
    size_t dlen = 0;
    if (mbedtls_base64_decode(out, cap, &dlen, (const unsigned char *)b64, blen) != 0)
        return -EINVAL;
    unsigned char *colon = memchr(out, ':', dlen);
    if (!colon)
        return -EINVAL;
    size_t ulen = (size_t)(colon - out);
    if (ulen == 0 || ulen > GW_POL_USER_MAX || dlen - ulen - 1 > GW_POL_PASSWORD_MAX)
        return -EINVAL;
    /* RFC 7617: neither part holds a control character. */
    for (size_t k = 0; k < dlen; k++)
        if (out[k] < 0x20 || out[k] == 0x7f)
            return -EINVAL;
    *out_len = dlen;
    *user_len = ulen;
    return 0;
}

static const struct gw_pol_consumer *user_find(const struct basic_auth *b, const char *id)
{
    struct user key = {.id = id};
    struct user *u = bsearch(&key, b->users, b->nusers, sizeof *b->users, user_cmp);
    return u ? u->c : NULL;
}

static int basic_run(void *state, struct gw_pol_req *rq)
{
    struct basic_auth *b = state;
    size_t n, vlen = 0;
    const char *v = gw_http_head_get_only(rq->head, "authorization", &vlen, &n);
    if (n == 0)
        return deny(b, rq, "missing_credentials", "credentials are needed");
    if (n > 1)
        return deny(b, rq, "invalid_credentials", "invalid credentials");
    /* user-id ':' password, and a NUL after the user-id for the lookup. */
    enum { CAP = GW_POL_USER_MAX + 1 + GW_POL_PASSWORD_MAX + 2 };
    unsigned char *cred = rt_alloc(CAP);
    if (!cred) {
        gw_pol_count_denial(b->name, "internal");
        return gw_pol_refuse(rq, 500, "out of memory", NULL, 0);
    }
    size_t clen = 0, ulen = 0;
    int rc = GW_POL_ANSWERED;
    unsigned char tag[32] = {0};
    int pr = parse_basic(v, vlen, cred, CAP - 1, &clen, &ulen);
    if (pr == -ENOENT) {
        rc = deny(b, rq, "missing_credentials", "Basic credentials are needed");
        goto out;
    }
    if (pr < 0) {
        rc = deny(b, rq, "invalid_credentials", "invalid credentials");
        goto out;
    }
    uint64_t now = rt_now_ms();
    const struct gw_pol_consumer *c = NULL;
    /* Without a tag (no cache, or the HMAC failed) nothing is looked up
     * or remembered. */
    bool tagged =
        b->cache && mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), b->cache_key,
                                    sizeof b->cache_key, cred, clen, tag) == 0;
    if (tagged && (c = cache_find(b, tag, now))) {
        /* Relaxed: a counter. */
        atomic_fetch_add_explicit(&n_cache_hits, 1, memory_order_relaxed);
        goto ok;
    }
    cred[ulen] = '\0';
    c = user_find(b, (const char *)cred);
    int vr = verify(c ? &c->basic : &b->dummy, (const char *)cred + ulen + 1, clen - ulen - 1);
    cred[ulen] = ':';
    if (vr == -EBUSY) {
        gw_pol_count_denial(b->name, "other");
        struct gw_http_kv extra = {"Retry-After", "1"};
        rc = gw_pol_refuse(rq, 503, "too many password verifications at once", &extra, 1);
        goto out;
    }
    if (vr < 0) {
        gw_pol_count_denial(b->name, "internal");
        rc = gw_pol_refuse(rq, 500, "the password could not be verified", NULL, 0);
        goto out;
    }
    if (vr == 0 || !c) {
        rc = deny(b, rq, "invalid_credentials", "invalid credentials");
        goto out;
    }
    if (tagged)
        cache_put(b, tag, c, now);
ok:
    rq->consumer = c;
    rc = GW_POL_NEXT;
out:
    mbedtls_platform_zeroize(cred, CAP);
    mbedtls_platform_zeroize(tag, sizeof tag);
    rt_free(cred);
    return rc;
}

static json_t *basic_describe(const void *state)
{
    const struct basic_auth *b = state;
    return json_pack("{s:s, s:I, s:I, s:I}", "realm", b->realm, "users", (json_int_t)b->nusers,
                     "cache_ttl_s", (json_int_t)b->ttl_s, "cache_size",
                     (json_int_t)(b->cache ? b->nsets * WAYS : 0));
}

const struct gw_pol_kind gw__pol_kind_basic_auth = {
    .type = "basic_auth",
    .compile = basic_compile,
    .free = basic_free,
    .run = basic_run,
    .describe = basic_describe,
};
