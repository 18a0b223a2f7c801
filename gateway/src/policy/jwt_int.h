/*
 * jwt_int.h: the jwt policy's parts (jwt.c the kind, jws.c tokens and
 * signatures, jwks.c key sets, jwks_fetch.c the fetcher of key sets by URL).
 *
 * Verification is plain data and mbedtls: a token is split and decoded
 * (gw_jwt_parse), its signature checked against a key set
 * (gw_jwt_check_sig) and its claims against the policy's rules
 * (gw_jwt_check_claims). None of these touches the runtime, so the unit
 * tests drive them with a clock of their own.
 *
 * A key set (struct gw_jwks) is immutable once parsed and reference
 * counted: a policy's file keys live as long as its compiled state, a URL's
 * keys as long as the fetcher publishes them and requests hold them.
 */
#ifndef GW_POLICY_JWT_INT_H
#define GW_POLICY_JWT_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>

#include "policy.h"
#include "rt/rt.h"

/* Bytes of a token (the header's value after "Bearer "), at most. */
#define GW_JWT_MAX_TOKEN 8192
/* Nesting of a token's header or claims, at most (checked before jansson,
 * whose parser recurses, sees the text). */
#define GW_JWT_MAX_DEPTH 8
/* A JWKS document: bytes, keys, and a key's id. */
#define GW_JWKS_MAX_BYTES (256u << 10)
#define GW_JWKS_MAX_KEYS 64
#define GW_JWKS_MAX_KID 256
/* RSA moduli accepted, in bits. */
#define GW_JWKS_RSA_MIN_BITS 2048
#define GW_JWKS_RSA_MAX_BITS 8192
/* An HMAC secret, bytes (at least the hash's length is asked of HS keys). */
#define GW_JWT_MAX_SECRET 1024

enum gw_jwt_alg {
    GW_JWT_HS256 = 0,
    GW_JWT_HS384,
    GW_JWT_HS512,
    GW_JWT_RS256,
    GW_JWT_RS384,
    GW_JWT_RS512,
    GW_JWT_PS256,
    GW_JWT_ES256,
    GW_JWT_ES384,
    GW_JWT_NALGS
};
#define GW_JWT_ALG_BIT(a) (1u << (a))

/* -1 for a name that is not one of the above ("none" among them). */
int gw_jwt_alg_from_name(const char *name, size_t len);
const char *gw_jwt_alg_name(enum gw_jwt_alg a);

/* ---- key sets (jwks.c) ----------------------------------------------------- */

enum gw_jwk_type { GW_JWK_OCT, GW_JWK_RSA, GW_JWK_EC256, GW_JWK_EC384 };

struct gw_jwk {
    enum gw_jwk_type type;
    char *kid;             /* NULL: none */
    int alg;               /* the key's "alg", or -1 when it names none */
    unsigned char *secret; /* GW_JWK_OCT */
    size_t secret_len;
    mbedtls_pk_context pk; /* RSA and EC */
    /* mbedtls's ECP arithmetic may cache tables in the key's group on
     * first use: verifications with one EC key are serialised. RSA
     * contexts carry their own lock (MBEDTLS_THREADING_C). */
    pthread_mutex_t lock;
};

struct gw_jwks {
    atomic_uint refs;
    size_t nkeys;
    struct gw_jwk keys[];
};

/* Parses a JWKS document ({"keys": [...]}). Keys of a kty, crv or use
 * the gateway does not verify with ("enc", OKP...) are skipped, as RFC
 * 7517 section 5 asks; a key that claims to be usable but is malformed
 * fails the whole set. 0 with *out (one reference), -EINVAL with a reason
 * in err, -ENOMEM. Any thread; does not block. */
int gw_jwks_parse(const char *text, size_t len, struct gw_jwks **out, char *err, size_t errlen);
/* A set of one HMAC secret, without a kid (secret_env). */
int gw_jwks_from_secret(const void *secret, size_t len, struct gw_jwks **out);
struct gw_jwks *gw_jwks_ref(struct gw_jwks *s);
void gw_jwks_unref(struct gw_jwks *s); /* NULL-safe; any thread */
/* Whether the set holds a key with this id. */
bool gw_jwks_has_kid(const struct gw_jwks *s, const char *kid);

/* ---- tokens (jws.c) -------------------------------------------------------- */

/* Strict base64url (RFC 4648 section 5, no padding, unused bits zero):
 * the decoded length, or -EINVAL. `out` holds at least len * 3 / 4 + 1. */
long gw_b64url_decode(const char *in, size_t len, unsigned char *out);

struct gw_jwt {
    enum gw_jwt_alg alg;
    const char *kid; /* in header; NULL when absent */
    json_t *header;
    json_t *claims;
    const char *input; /* the signing input: header "." payload */
    size_t input_len;
    unsigned char sig[1024]; /* raw signature (large enough for RSA-8192) */
    size_t sig_len;
};

/* Splits and decodes a compact JWS (`token` must outlive *t). 0, or a
 * negative errno with *why (a short description for the client). The
 * header must be a JSON object naming an algorithm of `allowed` (a
 * GW_JWT_ALG_BIT mask: "none" is never one), without "crit". Call
 * gw_jwt_done afterwards whatever the result. */
int gw_jwt_parse(struct gw_jwt *t, const char *token, size_t len, unsigned allowed,
                 const char **why);
void gw_jwt_done(struct gw_jwt *t);

/* Checks the signature with the keys of `keys` that fit the token's
 * algorithm (kty and curve, the key's own alg when it has one) and, when
 * the token names a kid, carry that kid. 0 when one verifies;
 * -ENOKEY when no key fits (with a kid: none with that kid);
 * -EBADMSG when keys fit and none verifies. */
int gw_jwt_check_sig(const struct gw_jwt *t, const struct gw_jwks *keys);

struct gw_jwt_rules {
    const char *issuer;           /* NULL: any */
    const char *const *audiences; /* the token's aud must name one of them */
    size_t naudiences;            /* 0: aud not checked */
    const char *const *required;  /* claims that must be present */
    size_t nrequired;
    int64_t leeway_s;
};

/* Checks exp, nbf (when present: numbers), iss, aud and the required
 * claims at time `now` (seconds since the epoch). 0 or -EACCES with *why. */
int gw_jwt_check_claims(const struct gw_jwt *t, const struct gw_jwt_rules *r, int64_t now,
                        const char **why);

/* ---- key sets by URL (jwks_fetch.c, jwks_fetcher.c) ----------------------- */

/* One JWKS URL's state (with the CA bundle and server name its https is
 * verified with), shared by every policy naming the same three and kept for
 * the gateway's life (bounded by GW_JWKS_MAX_SOURCES), so that a reload
 * keeps its keys and its fetch history. jwks_fetch.c (built with the
 * configuration) keeps the sources and asks for fetches; jwks_fetcher.c
 * (built with the gateway only: it connects, over TLS for https) fetches. */
struct gw_jwks_src;

#define GW_JWKS_MAX_SOURCES 256
#define GW_JWKS_MAX_URL 1024
/* A jwks_ca bundle's bytes, at most (Debian's whole system store is about
 * 220 KiB). */
#define GW_JWKS_MAX_CA_BYTES (1u << 20)

/* The source for `url` ("http[s]://host[:port]/path"), made on first use.
 * https only: `ca`, a PEM bundle's path (NULL: the system store) and
 * `server_name`, the name verified and sent as SNI (NULL: the URL's host);
 * both must be NULL for http. 0 with *out, -EINVAL (err says why), -ENOSPC
 * (too many sources), -ENOMEM. Any thread (compile); does not block. */
int gw_jwks_src_get(const char *url, const char *ca, const char *server_name,
                    struct gw_jwks_src **out, char *err, size_t errlen);
const char *gw_jwks_src_url(const struct gw_jwks_src *s);
/* The keys last fetched, with a reference (NULL: none yet). `age_ms` gets
 * how long ago they were fetched. Any thread. */
struct gw_jwks *gw_jwks_src_keys(struct gw_jwks_src *s, uint64_t *age_ms);
/* Fetches made so far (successful or not). */
uint64_t gw_jwks_src_fetches(const struct gw_jwks_src *s);
/* Why the last fetch failed, copied into buf: false when it succeeded or
 * none was made. Any thread. */
bool gw_jwks_src_last_error(struct gw_jwks_src *s, char *buf, size_t cap);

/* Request process: asks the source's fetcher to fetch the set again unless
 * it tried less than min_interval_ms ago, and waits for it up to
 * timeout_ms (the process parks). 0 when the fetcher answered (whether or
 * not it fetched; read the keys again), or a negative errno. */
int gw_jwks_src_refresh(struct gw_jwks_src *s, uint64_t min_interval_ms, int64_t timeout_ms);
/* Request process: the same without waiting (a periodic refresh). */
void gw_jwks_src_refresh_async(struct gw_jwks_src *s, uint64_t min_interval_ms);

/* The supervisor of the fetchers (registered as "jwks_sup"), a child of
 * tandem_sup; an rt_child_start_fn (jwks_fetcher.c: the gateway's). */
int gw_jwks_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                      rt_atom *reason);

/* ---- the kind (jwt.c) ------------------------------------------------------ */

/* Why a request is refused: the denial reason (a stats.h label), the
 * description (fixed text) and the status. */
struct gw_jwt_refusal {
    const char *reason;
    const char *why;
    int status;
};

/* Verifies `tok` under the compiled policy `state` at time `now` (seconds
 * since the epoch): 0 with *t parsed, or -EACCES with *f; the caller calls
 * gw_jwt_done either way. Request process: a URL's keys may be fetched
 * (the process parks). */
int gw__jwt_authenticate(const void *state, const char *tok, size_t len, int64_t now,
                         struct gw_jwt *t, struct gw_jwt_refusal *f);

#endif
