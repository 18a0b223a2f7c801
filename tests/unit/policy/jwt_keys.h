/* jwt_keys.h: keys and tokens for the jwt tests, made at test time with the
 * openssl command (nothing is committed): RSA 2048, EC P-256 and P-384 key
 * pairs in a fresh directory, their public halves as JWKs, and compact
 * tokens signed by openssl (so the gateway's mbedtls verification is
 * checked against another implementation). */
#ifndef TEST_JWT_KEYS_H
#define TEST_JWT_KEYS_H

#include <stddef.h>

/* Makes the keys (once per process): rsa.pem, ec256.pem, ec384.pem (and
 * their .pub) in a temporary directory, whose path it returns. */
const char *tk_dir(void);
/* The public JWK of key `stem` ("rsa", "ec256", "ec384") with `kid` (NULL:
 * none) and `alg` (NULL: none), as JSON text (static buffer per call
 * slot: copy it before the next call). */
const char *tk_jwk(const char *stem, const char *kid, const char *alg);
/* base64url of n bytes, no padding, into out (NUL-terminated). */
void tk_b64url(const void *in, size_t n, char *out);
/* A token: header JSON and claims JSON, signed with algorithm `alg` by key
 * `stem` (a PEM stem, or for HS* the raw secret `secret` of secret_len
 * bytes). Malloc'ed. */
char *tk_token(const char *alg, const char *header, const char *claims, const char *stem,
               const void *secret, size_t secret_len);

#endif
