/*
 * jws.c: compact JSON Web Signatures (RFC 7515) and JWT claims (RFC 7519),
 * verified with mbedtls: HS256/384/512, RS256/384/512, PS256, ES256/384
 * (RFC 7518). Plain data; nothing here touches the runtime.
 *
 * What a peer controls is bounded before it is decoded: the token's
 * length (GW_JWT_MAX_TOKEN), base64url decoded strictly (no padding, no
 * stray bits, nothing outside the alphabet), the nesting of the header and
 * the claims (GW_JWT_MAX_DEPTH) before jansson parses them. An algorithm
 * is only ever taken from the policy's allow-list, and a key only verifies
 * the algorithms its type fits (an HMAC secret never checks an RSA or EC
 * token and the other way round), so "none" and algorithm confusion have
 * no way in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/md.h>

#include "jpos/json.h"
#include "jwt_int.h"

static signed char b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (signed char)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (signed char)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (signed char)(c - '0' + 52);
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long gw_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    if (len % 4 == 1)
        return -EINVAL;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        signed char v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The bits left over must be zero: one text per byte string. */
    if (acc != 0)
        return -EINVAL;
    return (long)n;
}

/* Decodes one part and parses it as a JSON object. */
static int part_json(const char *p, size_t len, json_t **out)
{
    unsigned char *buf = malloc(len * 3 / 4 + 1);
    json_t *v = NULL;
    int rc = -EINVAL;
    if (!buf)
        return -ENOMEM;
    long n = gw_b64url_decode(p, len, buf);
    unsigned line, col;
    if (n <= 0 || jpos_depth_check((const char *)buf, (size_t)n, GW_JWT_MAX_DEPTH, &line, &col) < 0)
        goto out;
    json_error_t je;
    v = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(v)) {
        json_decref(v);
        goto out;
    }
    *out = v;
    rc = 0;
out:
    free(buf);
    return rc;
}

int gw_jwt_parse(struct gw_jwt *t, const char *token, size_t len, unsigned allowed,
                 const char **why)
{
    memset(t, 0, sizeof *t);
    *why = "malformed token";
    if (len == 0 || len > GW_JWT_MAX_TOKEN)
        return -EINVAL;
    const char *d1 = memchr(token, '.', len);
    if (!d1)
        return -EINVAL;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2)
        return -EINVAL;
    const char *end = token + len;
    if (memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return -EINVAL; /* five parts: an encrypted token (JWE) */
    size_t hlen = (size_t)(d1 - token), plen = (size_t)(d2 - d1 - 1), slen = (size_t)(end - d2 - 1);
    if (hlen == 0 || plen == 0)
        return -EINVAL;
    int rc = part_json(token, hlen, &t->header);
    if (rc < 0)
        return rc;
    json_t *alg = json_object_get(t->header, "alg");
    if (!json_is_string(alg))
        return -EINVAL;
    int a = gw_jwt_alg_from_name(json_string_value(alg), json_string_length(alg));
    if (a < 0 || !(allowed & GW_JWT_ALG_BIT(a))) {
        *why = "algorithm not allowed";
        return -EPERM;
    }
    t->alg = (enum gw_jwt_alg)a;
    /* Extensions that must be understood: the gateway understands none. */
    if (json_object_get(t->header, "crit")) {
        *why = "unsupported critical header";
        return -EINVAL;
    }
    json_t *kid = json_object_get(t->header, "kid");
    if (kid) {
        if (!json_is_string(kid) || json_string_length(kid) > GW_JWKS_MAX_KID)
            return -EINVAL;
        t->kid = json_string_value(kid);
    }
    rc = part_json(d1 + 1, plen, &t->claims);
    if (rc < 0)
        return rc;
    /* The longest text of sizeof t->sig bytes (1366 characters for an
     * RSA-8192 signature's 1024): the decoder writes at most that many. */
    if (slen == 0 || slen > (sizeof t->sig * 4 + 2) / 3) {
        *why = "bad signature";
        return -EINVAL;
    }
    long n = gw_b64url_decode(d2 + 1, slen, t->sig);
    if (n <= 0)
        return -EINVAL;
    t->sig_len = (size_t)n;
    t->input = token;
    t->input_len = (size_t)(d2 - token);
    *why = NULL;
    return 0;
}

void gw_jwt_done(struct gw_jwt *t)
{
    json_decref(t->header);
    json_decref(t->claims);
    t->header = t->claims = NULL;
}

static mbedtls_md_type_t alg_md(enum gw_jwt_alg a)
{
    switch (a) {
    case GW_JWT_HS256:
    case GW_JWT_RS256:
    case GW_JWT_PS256:
    case GW_JWT_ES256:
        return MBEDTLS_MD_SHA256;
    case GW_JWT_HS384:
    case GW_JWT_RS384:
    case GW_JWT_ES384:
        return MBEDTLS_MD_SHA384;
    default:
        return MBEDTLS_MD_SHA512;
    }
}

/* Whether key k may verify a token of algorithm a. */
static bool key_fits(const struct gw_jwk *k, enum gw_jwt_alg a, size_t hash_len)
{
    if (k->alg >= 0 && k->alg != (int)a)
        return false;
    switch (a) {
    case GW_JWT_HS256:
    case GW_JWT_HS384:
    case GW_JWT_HS512:
        /* RFC 7518 section 3.2: a key at least as long as the hash. */
        return k->type == GW_JWK_OCT && k->secret_len >= hash_len;
    case GW_JWT_RS256:
    case GW_JWT_RS384:
    case GW_JWT_RS512:
    case GW_JWT_PS256:
        return k->type == GW_JWK_RSA;
    case GW_JWT_ES256:
        return k->type == GW_JWK_EC256;
    case GW_JWT_ES384:
        return k->type == GW_JWK_EC384;
    default:
        return false;
    }
}

/* An ASN.1 INTEGER of the unsigned big-endian `v` (len <= 66) at p. */
static size_t der_int(unsigned char *p, const unsigned char *v, size_t len)
{
    while (len > 1 && v[0] == 0) {
        v++;
        len--;
    }
    bool pad = v[0] & 0x80;
    p[0] = 0x02;
    p[1] = (unsigned char)(len + pad);
    p[2] = 0;
    memcpy(p + 2 + pad, v, len);
    return 2 + pad + len;
}

/* JWS carries ECDSA's r||s; mbedtls verifies the DER form. */
static size_t ecdsa_raw_to_der(const unsigned char *sig, size_t clen, unsigned char *der)
{
    unsigned char body[2 * (3 + 48)];
    size_t n = der_int(body, sig, clen);
    n += der_int(body + n, sig + clen, clen);
    der[0] = 0x30;
    der[1] = (unsigned char)n; /* at most 102 bytes: short form */
    memcpy(der + 2, body, n);
    return n + 2;
}

static bool verify_with(const struct gw_jwt *t, struct gw_jwk *k, const unsigned char *hash,
                        size_t hash_len, mbedtls_md_type_t md)
{
    switch (t->alg) {
    case GW_JWT_HS256:
    case GW_JWT_HS384:
    case GW_JWT_HS512: {
        unsigned char mac[64];
        if (t->sig_len != hash_len ||
            mbedtls_md_hmac(mbedtls_md_info_from_type(md), k->secret, k->secret_len,
                            (const unsigned char *)t->input, t->input_len, mac) != 0)
            return false;
        unsigned char diff = 0;
        for (size_t i = 0; i < hash_len; i++)
            diff |= (unsigned char)(mac[i] ^ t->sig[i]);
        return diff == 0;
    }
    case GW_JWT_RS256:
    case GW_JWT_RS384:
    case GW_JWT_RS512:
        return mbedtls_pk_verify(&k->pk, md, hash, hash_len, t->sig, t->sig_len) == 0;
    case GW_JWT_PS256: {
        /* RFC 7518 section 3.5 asks for a salt as long as the hash; any
         * length the signature's encoding proves is accepted, as the
         * common libraries do. */
        mbedtls_pk_rsassa_pss_options o = {.mgf1_hash_id = md,
                                           .expected_salt_len = MBEDTLS_RSA_SALT_LEN_ANY};
        return mbedtls_pk_verify_ext(MBEDTLS_PK_RSASSA_PSS, &o, &k->pk, md, hash, hash_len, t->sig,
                                     t->sig_len) == 0;
    }
    case GW_JWT_ES256:
    case GW_JWT_ES384: {
        size_t clen = t->alg == GW_JWT_ES256 ? 32 : 48;
        unsigned char der[2 + 2 * (3 + 48)];
        if (t->sig_len != 2 * clen)
            return false;
        size_t dlen = ecdsa_raw_to_der(t->sig, clen, der);
        pthread_mutex_lock(&k->lock);
        int rc = mbedtls_pk_verify(&k->pk, md, hash, hash_len, der, dlen);
        pthread_mutex_unlock(&k->lock);
        return rc == 0;
    }
    default:
        return false;
    }
}

int gw_jwt_check_sig(const struct gw_jwt *t, const struct gw_jwks *keys)
{
    mbedtls_md_type_t md = alg_md(t->alg);
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(md);
    size_t hash_len = mbedtls_md_get_size(info);
    unsigned char hash[64];
    bool hashed = false, fitted = false;
    for (size_t i = 0; keys && i < keys->nkeys; i++) {
        /* The set is shared and immutable; only the EC lock and mbedtls's
         * own RSA lock are written during a verification. */
        struct gw_jwk *k = (struct gw_jwk *)&keys->keys[i];
        if (!key_fits(k, t->alg, hash_len))
            continue;
        /* A token's kid names its key; a key without one may be any. */
        if (t->kid && k->kid && strcmp(t->kid, k->kid) != 0)
            continue;
        fitted = true;
        if (!hashed && k->type != GW_JWK_OCT) {
            if (mbedtls_md(info, (const unsigned char *)t->input, t->input_len, hash) != 0)
                return -EBADMSG;
            hashed = true;
        }
        if (verify_with(t, k, hash, hash_len, md))
            return 0;
    }
    return fitted ? -EBADMSG : -ENOKEY;
}

/* A NumericDate: a JSON number of seconds. */
static bool numeric_date(json_t *v, double *out)
{
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

int gw_jwt_check_claims(const struct gw_jwt *t, const struct gw_jwt_rules *r, int64_t now,
                        const char **why)
{
    double when;
    json_t *v = json_object_get(t->claims, "exp");
    if (v) {
        if (!numeric_date(v, &when)) {
            *why = "exp is not a number";
            return -EACCES;
        }
        if ((double)now >= when + (double)r->leeway_s) {
            *why = "token expired";
            return -EACCES;
        }
    }
    v = json_object_get(t->claims, "nbf");
    if (v) {
        if (!numeric_date(v, &when)) {
            *why = "nbf is not a number";
            return -EACCES;
        }
        if ((double)now + (double)r->leeway_s < when) {
            *why = "token not yet valid";
            return -EACCES;
        }
    }
    if (r->issuer) {
        v = json_object_get(t->claims, "iss");
        if (!json_is_string(v) || strcmp(json_string_value(v), r->issuer) != 0) {
            *why = "issuer not accepted";
            return -EACCES;
        }
    }
    if (r->naudiences > 0) {
        bool ok = false;
        v = json_object_get(t->claims, "aud");
        for (size_t i = 0; i < r->naudiences && !ok; i++) {
            if (json_is_string(v)) {
                ok = strcmp(json_string_value(v), r->audiences[i]) == 0;
            } else if (json_is_array(v)) {
                size_t j;
                json_t *a;
                json_array_foreach(v, j, a)
                {
                    if (json_is_string(a) && strcmp(json_string_value(a), r->audiences[i]) == 0)
                        ok = true;
                }
            }
        }
        if (!ok) {
            *why = "audience not accepted";
            return -EACCES;
        }
    }
    for (size_t i = 0; i < r->nrequired; i++)
        if (!json_object_get(t->claims, r->required[i])) {
            *why = "a required claim is missing";
            return -EACCES;
        }
    *why = NULL;
    return 0;
}
