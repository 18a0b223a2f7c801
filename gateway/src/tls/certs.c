/*
 * certs.c: a listener's certificate set (tls.h), loaded and validated whole
 * and matched by server name.
 *
 * A set is immutable once loaded and shared read-only by every scheduler
 * thread (handshakes hand its chains and keys to mbedtls, which only reads
 * them); a reference count keeps it alive while a server configuration or a
 * handshake holds it, so a reload can publish a new set while connections
 * accepted with the old one go on.
 *
 * Names. Each certificate is chosen for its configured names, or, with
 * none configured, for the DNS names of its subjectAltName (its CN when it
 * has none). Names are compared without regard to case; "*.example.com"
 * matches exactly one label in front of example.com.
 */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compat.h"
#include "tls.h"

#define NAME_MAX_LEN 253

struct gw_tls_cert {
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
    struct gw_tls_cert_info info; /* info.names are the names it is chosen for, lower-case */
};

struct gw_tls_certset {
    _Atomic int refs;
    struct gw_tls_cert *certs;
    size_t n;
    bool refuse; /* unknown names are refused, not given the default */
};

/* ---- names ------------------------------------------------------------------ */

static void lower(char *dst, const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[len] = 0;
}

/* A server name as a configuration may give it: letters, digits, '-' and
 * '.', labels not empty, optionally "*." in front. */
static bool name_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    if (s[0] == '*') {
        if (s[1] != '.' || !s[2])
            return false;
        s += 2;
    }
    bool label_empty = true;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '.') {
            if (label_empty)
                return false;
            label_empty = true;
        } else if (isalnum(c) || c == '-' || c == '_') {
            label_empty = false;
        } else {
            return false;
        }
    }
    return !label_empty;
}

/* Whether `name` (lower-case) is matched by pattern `pat` (lower-case,
 * maybe "*.rest"): equal, or one non-empty label and then ".rest". */
static bool name_matches(const char *pat, const char *name)
{
    if (strcmp(pat, name) == 0)
        return true;
    if (pat[0] != '*' || pat[1] != '.')
        return false;
    const char *dot = strchr(name, '.');
    return dot && dot != name && strcmp(dot + 1, pat + 2) == 0;
}

/* ---- loading ---------------------------------------------------------------- */

static int64_t x509_unix(const mbedtls_x509_time *t)
{
    struct tm tm = {.tm_year = t->year - 1900,
                    .tm_mon = t->mon - 1,
                    .tm_mday = t->day,
                    .tm_hour = t->hour,
                    .tm_min = t->min,
                    .tm_sec = t->sec};
    return (int64_t)timegm(&tm);
}

/* The DNS names of the leaf's subjectAltName, else its CN, lower-case,
 * into info->names (at most GW_TLS_MAX_NAMES; more are left out). */
static void leaf_names(const mbedtls_x509_crt *crt, struct gw_tls_cert_info *info)
{
    info->nnames = 0;
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next) {
        if (s->buf.tag != (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME))
            continue;
        if (s->buf.len == 0 || s->buf.len > NAME_MAX_LEN || info->nnames == GW_TLS_MAX_NAMES)
            continue;
        lower(info->names[info->nnames++], (const char *)s->buf.p, s->buf.len);
    }
    if (info->nnames)
        return;
    for (const mbedtls_x509_name *n = &crt->subject; n; n = n->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0 && n->val.len > 0 &&
            n->val.len <= NAME_MAX_LEN) {
            lower(info->names[0], (const char *)n->val.p, n->val.len);
            info->nnames = 1;
            return;
        }
    }
}

static void cert_done(struct gw_tls_cert *c)
{
    mbedtls_x509_crt_free(&c->chain);
    mbedtls_pk_free(&c->key);
}

static void why(char *err, size_t errlen, const char *file, const char *what, int mrc)
{
    if (!err || !errlen)
        return;
    if (mrc) {
        char m[160];
        mbedtls_strerror(mrc, m, sizeof m);
        snprintf(err, errlen, "%s: %s (%s)", file, what, m);
    } else {
        snprintf(err, errlen, "%s: %s", file, what);
    }
}

static int cert_load(const struct gw_tls_cert_config *cc, struct gw_tls_cert *c, char *err,
                     size_t errlen)
{
    struct gw_tls_cert_info *info = &c->info;
    mbedtls_x509_crt_init(&c->chain);
    mbedtls_pk_init(&c->key);
    snprintf(info->cert_path, sizeof info->cert_path, "%s", cc->cert);
    snprintf(info->key_path, sizeof info->key_path, "%s", cc->key);
    int mrc = mbedtls_x509_crt_parse_file(&c->chain, cc->cert);
    if (mrc != 0) {
        /* A positive return counts certificates that did not parse among
         * others that did: the chain is not whole. */
        why(err, errlen, cc->cert,
            mrc > 0 ? "a certificate in the chain does not parse" : "certificate does not parse",
            mrc > 0 ? 0 : mrc);
        return -EINVAL;
    }
    mrc = gw_tls_pk_parse_keyfile(&c->key, cc->key);
    if (mrc != 0) {
        why(err, errlen, cc->key, "private key does not parse", mrc);
        return -EINVAL;
    }
    const mbedtls_x509_crt *leaf = &c->chain;
    mbedtls_pk_type_t kt = mbedtls_pk_get_type(&c->key);
    size_t bits = mbedtls_pk_get_bitlen(&c->key);
    if (kt == MBEDTLS_PK_RSA) {
        if (bits < 2048) {
            why(err, errlen, cc->key, "RSA key shorter than 2048 bits", 0);
            return -EINVAL;
        }
        snprintf(info->key_type, sizeof info->key_type, "RSA %u", (unsigned)bits);
    } else if (kt == MBEDTLS_PK_ECKEY || kt == MBEDTLS_PK_ECDSA) {
        snprintf(info->key_type, sizeof info->key_type, "EC P-%u", (unsigned)bits);
    } else {
        why(err, errlen, cc->key, "key is neither RSA nor EC", 0);
        return -EINVAL;
    }
    if (gw_tls_pk_check_pair(&leaf->pk, &c->key) != 0) {
        why(err, errlen, cc->key, "private key does not match the certificate's public key", 0);
        return -EINVAL;
    }
    info->not_before = x509_unix(&leaf->valid_from);
    info->not_after = x509_unix(&leaf->valid_to);
    int64_t now = (int64_t)time(NULL);
    if (now > info->not_after) {
        why(err, errlen, cc->cert, "certificate has expired", 0);
        return -EINVAL;
    }
    if (now < info->not_before) {
        why(err, errlen, cc->cert, "certificate is not valid yet", 0);
        return -EINVAL;
    }
    if (mbedtls_x509_dn_gets(info->subject, sizeof info->subject, &leaf->subject) < 0)
        info->subject[0] = 0;
    if (mbedtls_x509_dn_gets(info->issuer, sizeof info->issuer, &leaf->issuer) < 0)
        info->issuer[0] = 0;
    unsigned char fp[32];
    gw_tls_sha256(leaf->raw.p, leaf->raw.len, fp);
    for (size_t i = 0; i < sizeof fp; i++)
        snprintf(info->fingerprint + 2 * i, 3, "%02x", fp[i]);
    /* The names the leaf covers, then the ones it is chosen for: the
     * configured ones, each of which it must cover. */
    struct gw_tls_cert_info own;
    leaf_names(leaf, &own);
    if (cc->nnames == 0) {
        if (own.nnames == 0) {
            why(err, errlen, cc->cert, "certificate names no server (no DNS subjectAltName, no CN)",
                0);
            return -EINVAL;
        }
        memcpy(info->names, own.names, sizeof own.names[0] * own.nnames);
        info->nnames = own.nnames;
        return 0;
    }
    if (cc->nnames > GW_TLS_MAX_NAMES) {
        why(err, errlen, cc->cert, "too many names", 0);
        return -EINVAL;
    }
    for (size_t i = 0; i < cc->nnames; i++) {
        const char *name = cc->names[i];
        if (!name_ok(name)) {
            char m[320];
            snprintf(m, sizeof m, "\"%.260s\" is not a server name", name);
            why(err, errlen, cc->cert, m, 0);
            return -EINVAL;
        }
        char lc[NAME_MAX_LEN + 1];
        lower(lc, name, strlen(name));
        bool covered = false;
        for (size_t k = 0; k < own.nnames && !covered; k++)
            covered = name_matches(own.names[k], lc);
        if (!covered) {
            char m[320];
            snprintf(m, sizeof m, "certificate does not cover the name \"%.260s\"", name);
            why(err, errlen, cc->cert, m, 0);
            return -EINVAL;
        }
        memcpy(info->names[i], lc, strlen(lc) + 1);
    }
    info->nnames = cc->nnames;
    return 0;
}

int gw_tls_certset_load(const struct gw_tls_listener_config *cfg, struct gw_tls_certset **out,
                        char *err, size_t errlen)
{
    if (cfg->ncerts == 0 || cfg->ncerts > GW_TLS_MAX_CERTS) {
        if (err && errlen)
            snprintf(err, errlen, "tls: needs 1 to %d certificates", GW_TLS_MAX_CERTS);
        return -EINVAL;
    }
    int rc = gw_tls_init(); /* 3.x parses keys through PSA */
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "the TLS library did not start");
        return rc;
    }
    struct gw_tls_certset *s = calloc(1, sizeof *s);
    if (!s || !(s->certs = calloc(cfg->ncerts, sizeof *s->certs))) {
        free(s);
        return -ENOMEM;
    }
    atomic_init(&s->refs, 1);
    s->refuse = cfg->unknown_name == GW_TLS_UNKNOWN_REFUSE;
    for (size_t i = 0; i < cfg->ncerts; i++) {
        rc = cert_load(&cfg->certs[i], &s->certs[i], err, errlen);
        s->n = i + 1; /* loaded or not, its objects are freed with the set */
        if (rc < 0)
            goto out;
    }
out:
    if (rc < 0) {
        gw_tls_certset_unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

struct gw_tls_certset *gw_tls_certset_ref(struct gw_tls_certset *s)
{
    /* relaxed: taking a reference publishes nothing; the holder already
     * sees the set it was given. */
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void gw_tls_certset_unref(struct gw_tls_certset *s)
{
    /* acq_rel: the last holder sees every other holder's use before it
     * frees. */
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        cert_done(&s->certs[i]);
    free(s->certs);
    free(s);
}

/* ---- matching --------------------------------------------------------------- */

static bool same_names(const struct gw_tls_cert_info *a, const struct gw_tls_cert_info *b)
{
    if (a->nnames != b->nnames)
        return false;
    for (size_t i = 0; i < a->nnames; i++) {
        bool found = false;
        for (size_t k = 0; k < b->nnames && !found; k++)
            found = strcmp(a->names[i], b->names[k]) == 0;
        if (!found)
            return false;
    }
    return true;
}

size_t gw_tls_certset_match(const struct gw_tls_certset *s, const char *name, size_t len,
                            const struct gw_tls_cert **out, size_t max)
{
    size_t n = 0;
    /* A fully qualified name ("api.example.com.") is the same name, as the
     * routes take a Host written so; one dot only. */
    if (name && len > 1 && name[len - 1] == '.')
        len--;
    if (name && len > 0 && len <= NAME_MAX_LEN && !memchr(name, 0, len)) {
        char lc[NAME_MAX_LEN + 1];
        lower(lc, name, len);
        /* Exact names first: a certificate for api.example.com wins over
         * one for *.example.com. */
        for (int wild = 0; wild < 2 && n == 0; wild++)
            for (size_t i = 0; i < s->n; i++) {
                const struct gw_tls_cert_info *info = &s->certs[i].info;
                bool hit = false;
                for (size_t k = 0; k < info->nnames && !hit; k++) {
                    const char *pat = info->names[k];
                    hit = (pat[0] == '*') == (wild == 1) && name_matches(pat, lc);
                }
                if (hit && n < max)
                    out[n++] = &s->certs[i];
            }
        if (n)
            return n;
    }
    if (s->refuse || s->n == 0)
        return 0;
    for (size_t i = 0; i < s->n && n < max; i++)
        if (i == 0 || same_names(&s->certs[i].info, &s->certs[0].info))
            out[n++] = &s->certs[i];
    return n;
}

size_t gw_tls_certset_count(const struct gw_tls_certset *s)
{
    return s->n;
}

const struct gw_tls_cert_info *gw_tls_certset_info(const struct gw_tls_certset *s, size_t i)
{
    return i < s->n ? &s->certs[i].info : NULL;
}

void *gw_tls_cert_chain(const struct gw_tls_cert *c)
{
    return (void *)&c->chain;
}

void *gw_tls_cert_key(const struct gw_tls_cert *c)
{
    return (void *)&c->key;
}
