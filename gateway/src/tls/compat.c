/*
 * compat.c: the wrappers of compat.h, and the per-thread random generator
 * (gw_tls_rng) every mbedtls call that wants one is given.
 */
#include "compat.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tls_int.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>
#endif

int gw_tls_compat_init(void)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    if (psa_crypto_init() != PSA_SUCCESS)
        return -EIO;
#endif
    return 0;
}

/* ---- random numbers ------------------------------------------------------- */

/* One generator per thread: CTR-DRBG is not cheap to lock on every
 * handshake from every scheduler, and a thread's generator is only ever
 * used by the process running on that thread at the time (no call into
 * mbedtls yields). The threads are the runtime's, alive as long as the
 * gateway, so the state is never torn down. */
static _Thread_local struct {
    bool seeded;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} rng;

int gw_tls_rng(void *p_rng, unsigned char *buf, size_t len)
{
    (void)p_rng;
    if (!rng.seeded) {
        static const unsigned char pers[] = "tandem-tls";
        mbedtls_entropy_init(&rng.entropy);
        mbedtls_ctr_drbg_init(&rng.drbg);
        int rc = mbedtls_ctr_drbg_seed(&rng.drbg, mbedtls_entropy_func, &rng.entropy, pers,
                                       sizeof pers - 1);
        if (rc != 0) {
            mbedtls_ctr_drbg_free(&rng.drbg);
            mbedtls_entropy_free(&rng.entropy);
            return rc;
        }
        rng.seeded = true;
    }
    return mbedtls_ctr_drbg_random(&rng.drbg, buf, len);
}

/* ---- keys ------------------------------------------------------------------- */

int gw_tls_pk_parse_keyfile(mbedtls_pk_context *pk, const char *path)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_pk_parse_keyfile(pk, path, NULL, gw_tls_rng, NULL);
#else
    return mbedtls_pk_parse_keyfile(pk, path, NULL);
#endif
}

int gw_tls_pk_check_pair(const mbedtls_pk_context *pub, const mbedtls_pk_context *prv)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_pk_check_pair(pub, prv, gw_tls_rng, NULL);
#else
    return mbedtls_pk_check_pair(pub, prv);
#endif
}

int gw_tls_x509write_crt_set_serial(mbedtls_x509write_cert *crt, const unsigned char *serial,
                                    size_t len)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_x509write_crt_set_serial_raw(crt, (unsigned char *)serial, len);
#else
    mbedtls_mpi n;
    mbedtls_mpi_init(&n);
    int rc = mbedtls_mpi_read_binary(&n, serial, len);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_serial(crt, &n);
    mbedtls_mpi_free(&n);
    return rc;
#endif
}

/* ---- versions and suites ---------------------------------------------------- */

int gw_tls_max_version(void)
{
    return GW_TLS_HAVE_1_3 ? GW_TLS_1_3 : GW_TLS_1_2;
}

void gw_tls_conf_versions(mbedtls_ssl_config *conf, int min, int max)
{
    if (max > gw_tls_max_version())
        max = gw_tls_max_version();
    if (min > max)
        min = max;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_ssl_conf_min_tls_version(conf, min == GW_TLS_1_3 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                             : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(conf, max == GW_TLS_1_3 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                             : MBEDTLS_SSL_VERSION_TLS1_2);
#else
    /* 2.28 still compiles in 1.0 and 1.1: the minor version 3 (TLS 1.2) is
     * the floor whatever the library's default. */
    (void)min;
    (void)max;
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
}

/* The groups for ECDHE (and TLS 1.3's key share), fastest first: X25519,
 * then P-256 and P-384; P-521 last, for a client that offers nothing else.
 * 2.28's own default lists the largest curve first, so a client offering
 * P-521 (as OpenSSL's do) had every full handshake pay for it, several
 * times the cost of P-256. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
static const uint16_t groups_pref[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519, MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_SECP521R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE};
#else
static const mbedtls_ecp_group_id groups_pref[] = {
#if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED)
    MBEDTLS_ECP_DP_CURVE25519,
#endif
    MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_SECP521R1,
    MBEDTLS_ECP_DP_NONE};
#endif

void gw_tls_conf_groups(mbedtls_ssl_config *conf)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_ssl_conf_groups(conf, groups_pref);
#else
    mbedtls_ssl_conf_curves(conf, groups_pref);
#endif
}

const char *gw_tls_version_of(const mbedtls_ssl_context *ssl)
{
    const char *v = mbedtls_ssl_get_version(ssl);
    if (strcmp(v, "TLSv1.2") == 0)
        return "1.2";
    if (strcmp(v, "TLSv1.3") == 0)
        return "1.3";
    return "?";
}

static bool has(const char *s, const char *part)
{
    return strstr(s, part) != NULL;
}

bool gw_tls_suite_default(int id)
{
    /* By name: the suite description's fields are private in 3.x, and the
     * names say all that matters here. */
    const char *n = mbedtls_ssl_get_ciphersuite_name(id);
    if (!n)
        return false;
    bool aead = (has(n, "-AES-") && has(n, "-GCM-")) || has(n, "-CHACHA20-POLY1305-");
    if (strncmp(n, "TLS1-3-", 7) == 0)
        return aead;
    return strncmp(n, "TLS-ECDHE-", 10) == 0 && !has(n, "-PSK-") && aead;
}

/* ---- failure reasons -------------------------------------------------------- */

enum gw_tls_fail gw__tls_fail_of(int rc)
{
    switch (rc) {
    case MBEDTLS_ERR_SSL_CONN_EOF:
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
    case MBEDTLS_ERR_NET_CONN_RESET:
    case MBEDTLS_ERR_NET_RECV_FAILED:
    case MBEDTLS_ERR_NET_SEND_FAILED:
        return GW_TLS_FAIL_CLOSED;
#if defined(MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION)
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
#endif
#if defined(MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION)
    case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
#endif
        return GW_TLS_FAIL_VERSION;
#if defined(MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN)
    case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    /* 3.x reports no common suite as a plain handshake failure. */
    case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
#endif
        return GW_TLS_FAIL_CIPHER;
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
#if defined(MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE)
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
#endif
#if defined(MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE)
    case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE:
#endif
#if defined(MBEDTLS_ERR_SSL_BAD_CERTIFICATE)
    case MBEDTLS_ERR_SSL_BAD_CERTIFICATE:
#endif
        return GW_TLS_FAIL_CLIENT_CERT;
    }
    return GW_TLS_FAIL_PROTOCOL;
}

/* ---- what this build is ------------------------------------------------------ */

void gw_tls_build_info(char *buf, size_t len)
{
    /* The library loaded, not the headers compiled against: the two differ
     * when the shared library is upgraded under the binary. */
#if defined(MBEDTLS_VERSION_C)
    char v[18];
    mbedtls_version_get_string(v);
#else
    const char *v = MBEDTLS_VERSION_STRING;
#endif
    snprintf(buf, len, "mbedtls %s, TLS %s", v,
             gw_tls_max_version() == GW_TLS_1_3 ? "1.2 and 1.3" : "1.2");
}

/* ---- record buffers ---------------------------------------------------------- */

/* A field of the context: 3.x marks them private (reached here, and only
 * here, through MBEDTLS_PRIVATE). */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define F(m) MBEDTLS_PRIVATE(m)
#else
#define F(m) m
#endif

void gw_tls_bufs_get(const mbedtls_ssl_context *ssl, unsigned char **in, unsigned char **out)
{
    *in = ssl->F(in_buf);
    *out = ssl->F(out_buf);
}

/* *p moved from [from, from + len) to the same offset from `to`; a pointer
 * elsewhere (NULL) stays. */
static void rebase(unsigned char **p, const unsigned char *from, size_t len, unsigned char *to)
{
    if (*p && *p >= from && *p <= from + len)
        *p = to ? to + (*p - from) : NULL;
}

void gw_tls_bufs_set(mbedtls_ssl_context *ssl, unsigned char *in, size_t in_len, unsigned char *out,
                     size_t out_len)
{
    const unsigned char *oi = ssl->F(in_buf), *oo = ssl->F(out_buf);
    rebase(&ssl->F(in_ctr), oi, in_len, in);
    rebase(&ssl->F(in_hdr), oi, in_len, in);
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
    rebase(&ssl->F(in_cid), oi, in_len, in);
#endif
    rebase(&ssl->F(in_len), oi, in_len, in);
    rebase(&ssl->F(in_iv), oi, in_len, in);
    rebase(&ssl->F(in_msg), oi, in_len, in);
    rebase(&ssl->F(in_offt), oi, in_len, in);
    rebase(&ssl->F(out_ctr), oo, out_len, out);
    rebase(&ssl->F(out_hdr), oo, out_len, out);
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
    rebase(&ssl->F(out_cid), oo, out_len, out);
#endif
    rebase(&ssl->F(out_len), oo, out_len, out);
    rebase(&ssl->F(out_iv), oo, out_len, out);
    rebase(&ssl->F(out_msg), oo, out_len, out);
    ssl->F(in_buf) = in;
    ssl->F(out_buf) = out;
}

bool gw_tls_quiet(const mbedtls_ssl_context *ssl)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    if (!mbedtls_ssl_is_handshake_over((mbedtls_ssl_context *)ssl))
        return false;
#else
    if (ssl->state != MBEDTLS_SSL_HANDSHAKE_OVER)
        return false;
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03060400
    /* For a stream: the bytes of a handshake message being reassembled
     * from several records, kept in the input buffer (3.6.4 on). */
    if (ssl->F(badmac_seen_or_in_hsfraglen) != 0)
        return false;
#endif
    /* Not ssl->handshake == NULL: a 3.6 TLS 1.3 server keeps its handshake
     * parameters (for the session tickets) past the end of the handshake;
     * they are an allocation of their own, nothing in the buffers. */
    return ssl->F(in_buf) && ssl->F(out_buf) && ssl->F(in_left) == 0 && ssl->F(in_msglen) == 0 &&
           ssl->F(in_hslen) == 0 && ssl->F(in_offt) == NULL && ssl->F(keep_current_message) == 0 &&
           ssl->F(out_left) == 0;
}

unsigned char *gw_tls_in_ctr(mbedtls_ssl_context *ssl)
{
    return ssl->F(in_ctr);
}
