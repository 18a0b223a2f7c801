/*
 * compat.h: the differences between the two mbedtls versions Tandem builds
 * against, kept in one place (tls.h says what the module owns).
 *
 *   mbedtls 2.28 (Debian 12, the host build): TLS 1.2 at most. The hash
 *   functions that can fail are the _ret forms (mbedtls_sha256_starts_ret);
 *   the plain names are deprecated void wrappers.
 *   mbedtls 3.6 (Debian 13, the container image): TLS 1.3. The _ret forms
 *   are gone and the plain names return int; struct fields are private.
 *
 * Code outside gateway/src/tls/ that needs a hash includes this header, not
 * mbedtls' own, so that no other file tests MBEDTLS_VERSION_NUMBER.
 * Everything here is static inline: the callers (the workflow idempotency
 * rules, their unit tests) link only mbedcrypto, not the TLS module.
 */
#ifndef GW_TLS_COMPAT_H
#define GW_TLS_COMPAT_H

#include <stddef.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define GW_TLS_MBEDTLS3 1
#else
#define GW_TLS_MBEDTLS3 0
#endif

#define GW_TLS_SHA256_LEN 32

/* SHA-256 in steps, over the caller's context (mbedtls_sha256_init before,
 * mbedtls_sha256_free after). 0 or an mbedtls error, which the software
 * implementation never returns: only a hardware accelerator's can fail. */
static inline int gw_tls_sha256_starts(mbedtls_sha256_context *c)
{
#if GW_TLS_MBEDTLS3
    return mbedtls_sha256_starts(c, 0);
#else
    return mbedtls_sha256_starts_ret(c, 0);
#endif
}

static inline int gw_tls_sha256_update(mbedtls_sha256_context *c, const void *p, size_t n)
{
#if GW_TLS_MBEDTLS3
    return mbedtls_sha256_update(c, p, n);
#else
    return mbedtls_sha256_update_ret(c, p, n);
#endif
}

static inline int gw_tls_sha256_finish(mbedtls_sha256_context *c,
                                       unsigned char out[GW_TLS_SHA256_LEN])
{
#if GW_TLS_MBEDTLS3
    return mbedtls_sha256_finish(c, out);
#else
    return mbedtls_sha256_finish_ret(c, out);
#endif
}

/* SHA-256 of one buffer (a certificate's DER for its fingerprint). */
static inline int gw_tls_sha256(const void *p, size_t n, unsigned char out[GW_TLS_SHA256_LEN])
{
#if GW_TLS_MBEDTLS3
    return mbedtls_sha256(p, n, out, 0);
#else
    return mbedtls_sha256_ret(p, n, out, 0);
#endif
}

#endif
