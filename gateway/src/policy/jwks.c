/*
 * jwks.c: JSON Web Key Sets (RFC 7517) read into keys mbedtls verifies
 * with: "oct" secrets, "RSA" public keys (2048 to 8192 bits) and "EC"
 * public keys on P-256 and P-384. A set is immutable once built and
 * reference counted, so the fetcher can publish a new one while requests
 * still verify with the old.
 *
 * Keys are built through calls 2.28 and 3.6 share: an RSA key is imported
 * from its raw modulus and exponent, an EC key is parsed from the
 * SubjectPublicKeyInfo its coordinates make (which also checks that the
 * point is on the curve).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/rsa.h>

#include "jpos/json.h"
#include "jwt_int.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *const alg_names[GW_JWT_NALGS] = {
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384",
};

int gw_jwt_alg_from_name(const char *name, size_t len)
{
    for (int i = 0; i < GW_JWT_NALGS; i++)
        if (strlen(alg_names[i]) == len && memcmp(alg_names[i], name, len) == 0)
            return i;
    return -1;
}

const char *gw_jwt_alg_name(enum gw_jwt_alg a)
{
    return (unsigned)a < GW_JWT_NALGS ? alg_names[a] : "?";
}

/* A base64url member of `key` decoded into a malloc'ed buffer. */
static int member_b64(json_t *key, const char *name, unsigned char **out, size_t *len, char *err,
                      size_t errlen)
{
    json_t *v = json_object_get(key, name);
    if (!json_is_string(v)) {
        set_err(err, errlen, "\"%s\" is missing or not a string", name);
        return -EINVAL;
    }
    size_t n = json_string_length(v);
    unsigned char *buf = malloc(n * 3 / 4 + 1);
    if (!buf)
        return -ENOMEM;
    long got = gw_b64url_decode(json_string_value(v), n, buf);
    if (got <= 0) {
        free(buf);
        set_err(err, errlen, "\"%s\" is not base64url", name);
        return -EINVAL;
    }
    *out = buf;
    *len = (size_t)got;
    return 0;
}

static int build_rsa(struct gw_jwk *k, json_t *key, char *err, size_t errlen)
{
    unsigned char *n = NULL, *e = NULL;
    size_t nlen = 0, elen = 0;
    int rc = member_b64(key, "n", &n, &nlen, err, errlen);
    if (rc == 0)
        rc = member_b64(key, "e", &e, &elen, err, errlen);
    if (rc < 0)
        goto out;
    /* Leading zero bytes do not count towards the size. */
    size_t nz = 0;
    while (nz < nlen && n[nz] == 0)
        nz++;
    size_t bits = (nlen - nz) * 8;
    if (bits < GW_JWKS_RSA_MIN_BITS || bits > GW_JWKS_RSA_MAX_BITS || elen > 8) {
        set_err(err, errlen, "RSA key size out of range (%d..%d bits)", GW_JWKS_RSA_MIN_BITS,
                GW_JWKS_RSA_MAX_BITS);
        rc = -EINVAL;
        goto out;
    }
    rc = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
    if (rc != 0) {
        rc = -ENOMEM;
        goto out;
    }
    mbedtls_rsa_context *rsa = mbedtls_pk_rsa(k->pk);
    if (mbedtls_rsa_import_raw(rsa, n + nz, nlen - nz, NULL, 0, NULL, 0, NULL, 0, e, elen) != 0 ||
        mbedtls_rsa_complete(rsa) != 0 || mbedtls_rsa_check_pubkey(rsa) != 0) {
        set_err(err, errlen, "not a valid RSA public key");
        rc = -EINVAL;
        goto out;
    }
    k->type = GW_JWK_RSA;
    rc = 0;
out:
    free(n);
    free(e);
    return rc;
}

/* SubjectPublicKeyInfo of an uncompressed point, up to the point's bytes. */
static const unsigned char spki_p256[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                          0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                          0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
static const unsigned char spki_p384[] = {0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86,
                                          0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
                                          0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00, 0x04};

static int build_ec(struct gw_jwk *k, json_t *key, const char *crv, char *err, size_t errlen)
{
    unsigned char *x = NULL, *y = NULL;
    size_t xlen = 0, ylen = 0;
    bool p256 = strcmp(crv, "P-256") == 0;
    size_t clen = p256 ? 32 : 48;
    const unsigned char *pre = p256 ? spki_p256 : spki_p384;
    size_t prelen = p256 ? sizeof spki_p256 : sizeof spki_p384;
    unsigned char der[sizeof spki_p384 + 2 * 48];
    int rc = member_b64(key, "x", &x, &xlen, err, errlen);
    if (rc == 0)
        rc = member_b64(key, "y", &y, &ylen, err, errlen);
    if (rc < 0)
        goto out;
    if (xlen != clen || ylen != clen) {
        set_err(err, errlen, "EC coordinates of %s must be %zu bytes", crv, clen);
        rc = -EINVAL;
        goto out;
    }
    memcpy(der, pre, prelen);
    memcpy(der + prelen, x, clen);
    memcpy(der + prelen + clen, y, clen);
    if (mbedtls_pk_parse_public_key(&k->pk, der, prelen + 2 * clen) != 0) {
        set_err(err, errlen, "not a valid %s public key", crv);
        rc = -EINVAL;
        goto out;
    }
    k->type = p256 ? GW_JWK_EC256 : GW_JWK_EC384;
    rc = 0;
out:
    free(x);
    free(y);
    return rc;
}

static void jwk_done(struct gw_jwk *k)
{
    free(k->kid);
    if (k->secret) {
        memset(k->secret, 0, k->secret_len);
        free(k->secret);
    }
    mbedtls_pk_free(&k->pk);
    pthread_mutex_destroy(&k->lock);
}

static struct gw_jwks *set_new(size_t n)
{
    struct gw_jwks *s = calloc(1, sizeof *s + n * sizeof s->keys[0]);
    if (s)
        atomic_init(&s->refs, 1);
    return s;
}

static void jwk_init(struct gw_jwk *k)
{
    memset(k, 0, sizeof *k);
    k->alg = -1;
    mbedtls_pk_init(&k->pk);
    pthread_mutex_init(&k->lock, NULL);
}

/* Reads key i of a set into k: 1 when built, 0 when skipped (a key the
 * gateway does not verify with), or a negative errno. */
static int read_key(struct gw_jwk *k, json_t *key, char *err, size_t errlen)
{
    if (!json_is_object(key)) {
        set_err(err, errlen, "not an object");
        return -EINVAL;
    }
    json_t *kty = json_object_get(key, "kty");
    json_t *use = json_object_get(key, "use");
    json_t *alg = json_object_get(key, "alg");
    json_t *kid = json_object_get(key, "kid");
    if (!json_is_string(kty)) {
        set_err(err, errlen, "\"kty\" is missing or not a string");
        return -EINVAL;
    }
    if (use && !json_is_string(use)) {
        set_err(err, errlen, "\"use\" is not a string");
        return -EINVAL;
    }
    if (use && strcmp(json_string_value(use), "sig") != 0)
        return 0; /* an encryption key: not for verifying */
    if (kid && (!json_is_string(kid) || json_string_length(kid) > GW_JWKS_MAX_KID)) {
        set_err(err, errlen, "\"kid\" is not a string of at most %d bytes", GW_JWKS_MAX_KID);
        return -EINVAL;
    }
    if (alg && !json_is_string(alg)) {
        set_err(err, errlen, "\"alg\" is not a string");
        return -EINVAL;
    }
    if (alg) {
        k->alg = gw_jwt_alg_from_name(json_string_value(alg), json_string_length(alg));
        if (k->alg < 0)
            return 0; /* an algorithm the gateway does not verify ("none" among them) */
    }
    const char *t = json_string_value(kty);
    int rc;
    if (strcmp(t, "RSA") == 0) {
        rc = build_rsa(k, key, err, errlen);
    } else if (strcmp(t, "EC") == 0) {
        json_t *crv = json_object_get(key, "crv");
        if (!json_is_string(crv)) {
            set_err(err, errlen, "\"crv\" is missing or not a string");
            return -EINVAL;
        }
        const char *c = json_string_value(crv);
        if (strcmp(c, "P-256") != 0 && strcmp(c, "P-384") != 0)
            return 0;
        rc = build_ec(k, key, c, err, errlen);
    } else if (strcmp(t, "oct") == 0) {
        rc = member_b64(key, "k", &k->secret, &k->secret_len, err, errlen);
        if (rc == 0 && k->secret_len > GW_JWT_MAX_SECRET) {
            set_err(err, errlen, "\"k\" is longer than %d bytes", GW_JWT_MAX_SECRET);
            rc = -EINVAL;
        }
        if (rc == 0)
            k->type = GW_JWK_OCT;
    } else {
        return 0;
    }
    if (rc < 0)
        return rc;
    if (kid && !(k->kid = strdup(json_string_value(kid))))
        return -ENOMEM;
    return 1;
}

int gw_jwks_parse(const char *text, size_t len, struct gw_jwks **out, char *err, size_t errlen)
{
    json_t *root = NULL;
    struct gw_jwks *s = NULL;
    unsigned line, col;
    int rc = -EINVAL;
    if (len > GW_JWKS_MAX_BYTES) {
        set_err(err, errlen, "key set larger than %u bytes", GW_JWKS_MAX_BYTES);
        goto out;
    }
    if (jpos_depth_check(text, len, 8, &line, &col) < 0) {
        set_err(err, errlen, "key set nested too deeply");
        goto out;
    }
    json_error_t je;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        set_err(err, errlen, "not JSON: %s (line %d)", je.text, je.line);
        goto out;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        set_err(err, errlen, "no \"keys\" array");
        goto out;
    }
    size_t n = json_array_size(keys);
    if (n > GW_JWKS_MAX_KEYS) {
        set_err(err, errlen, "more than %d keys", GW_JWKS_MAX_KEYS);
        goto out;
    }
    s = set_new(n);
    if (!s) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct gw_jwk *k = &s->keys[s->nkeys];
        jwk_init(k);
        char why[160] = "";
        int r = read_key(k, json_array_get(keys, i), why, sizeof why);
        if (r <= 0)
            jwk_done(k);
        if (r < 0) {
            set_err(err, errlen, "keys[%zu]: %s", i, why);
            rc = r;
            goto out;
        }
        if (r > 0)
            s->nkeys++;
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    gw_jwks_unref(s);
    json_decref(root);
    return rc;
}

int gw_jwks_from_secret(const void *secret, size_t len, struct gw_jwks **out)
{
    struct gw_jwks *s = set_new(1);
    if (!s)
        return -ENOMEM;
    jwk_init(&s->keys[0]);
    s->nkeys = 1;
    s->keys[0].type = GW_JWK_OCT;
    s->keys[0].secret = malloc(len ? len : 1);
    if (!s->keys[0].secret) {
        gw_jwks_unref(s);
        return -ENOMEM;
    }
    memcpy(s->keys[0].secret, secret, len);
    s->keys[0].secret_len = len;
    *out = s;
    return 0;
}

struct gw_jwks *gw_jwks_ref(struct gw_jwks *s)
{
    /* Relaxed: taking a reference orders nothing; the holder already sees
     * the set through the reference it copies. */
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void gw_jwks_unref(struct gw_jwks *s)
{
    /* acq_rel: every use of the keys by other holders happens before the
     * last one frees them. */
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->nkeys; i++)
        jwk_done(&s->keys[i]);
    free(s);
}

bool gw_jwks_has_kid(const struct gw_jwks *s, const char *kid)
{
    for (size_t i = 0; s && i < s->nkeys; i++)
        if (s->keys[i].kid && strcmp(s->keys[i].kid, kid) == 0)
            return true;
    return false;
}
