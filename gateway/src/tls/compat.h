/*
 * compat.h: every difference between mbedtls 2.28 (Debian 12, TLS 1.2) and
 * 3.6 (Debian 13, TLS 1.2 and 1.3) that Tandem meets, in one place.
 *
 * The rest of gateway/src/tls/ calls these wrappers and never tests
 * MBEDTLS_VERSION_NUMBER itself; it touches no field the 3.x headers mark
 * private (their accessors are used, or the wrappers here reach the field
 * through MBEDTLS_PRIVATE). Code outside tls/ that hashes (the workflows'
 * idempotency keys, the policies' API keys and passwords) uses the SHA-256
 * and PBKDF2 wrappers below.
 */
#ifndef GW_TLS_COMPAT_H
#define GW_TLS_COMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#if MBEDTLS_VERSION_NUMBER < 0x021C0000
#error "mbedtls 2.28 or later is needed"
#endif

/* Whether the build can negotiate TLS 1.3 at all. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
#define GW_TLS_HAVE_1_3 1
#else
#define GW_TLS_HAVE_1_3 0
#endif

/* A read result that means "nothing for the caller, read again": a TLS 1.3
 * client is told of each session ticket the server sends (3.x). */
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
#define GW_TLS_READ_AGAIN(rc) ((rc) == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
#else
#define GW_TLS_READ_AGAIN(rc) ((void)(rc), 0)
#endif

/* The suite a session (a parsed ticket) was negotiated with. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
static inline int gw_tls_session_suite(const mbedtls_ssl_session *s)
{
    return mbedtls_ssl_session_get_ciphersuite_id(s);
}
#else
static inline int gw_tls_session_suite(const mbedtls_ssl_session *s)
{
    return s->ciphersuite;
}
#endif

/* The client certificate a session (a parsed ticket) carries, or NULL
 * (none given, or a build that does not keep it). */
#if !defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
static inline const mbedtls_x509_crt *gw_tls_session_peer_cert(const mbedtls_ssl_session *s)
{
    (void)s;
    return NULL;
}
#elif MBEDTLS_VERSION_NUMBER >= 0x03000000
static inline const mbedtls_x509_crt *gw_tls_session_peer_cert(const mbedtls_ssl_session *s)
{
    return s->MBEDTLS_PRIVATE(peer_cert);
}
#else
static inline const mbedtls_x509_crt *gw_tls_session_peer_cert(const mbedtls_ssl_session *s)
{
    return s->peer_cert;
}
#endif

/* Once per process before any other call (psa_crypto_init on 3.x, which TLS
 * 1.3 and the ticket keys need). 0 or -EIO. Any thread. */
int gw_tls_compat_init(void);

/* ---- hashes ----------------------------------------------------------------- */

/* The *_ret names of 2.x are the plain names of 3.x. 0 or an mbedtls error.
 * Inline, so that code outside tls/ that only hashes links libmbedcrypto
 * alone. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
static inline int gw_tls_sha256_starts(mbedtls_sha256_context *c)
{
    return mbedtls_sha256_starts(c, 0);
}
static inline int gw_tls_sha256_update(mbedtls_sha256_context *c, const void *buf, size_t len)
{
    return mbedtls_sha256_update(c, buf, len);
}
static inline int gw_tls_sha256_finish(mbedtls_sha256_context *c, unsigned char out[32])
{
    return mbedtls_sha256_finish(c, out);
}
/* One-shot SHA-256 of buf. */
static inline int gw_tls_sha256(const void *buf, size_t len, unsigned char out[32])
{
    return mbedtls_sha256(buf, len, out, 0);
}
#else
static inline int gw_tls_sha256_starts(mbedtls_sha256_context *c)
{
    return mbedtls_sha256_starts_ret(c, 0);
}
static inline int gw_tls_sha256_update(mbedtls_sha256_context *c, const void *buf, size_t len)
{
    return mbedtls_sha256_update_ret(c, buf, len);
}
static inline int gw_tls_sha256_finish(mbedtls_sha256_context *c, unsigned char out[32])
{
    return mbedtls_sha256_finish_ret(c, out);
}
/* One-shot SHA-256 of buf. */
static inline int gw_tls_sha256(const void *buf, size_t len, unsigned char out[32])
{
    return mbedtls_sha256_ret(buf, len, out, 0);
}
#endif

/* PBKDF2-HMAC-SHA256 of `pw` with `salt`, `iterations` rounds, into
 * out[0..out_len) (basic-auth password records). 3.x takes the hash by type
 * (mbedtls_pkcs5_pbkdf2_hmac_ext); 2.28 takes an HMAC context set up by the
 * caller, here on the stack. 0 or an mbedtls error. Any thread; CPU-bound
 * for as long as the iterations take (never on a scheduler). */
#if MBEDTLS_VERSION_NUMBER >= 0x03030000
static inline int gw_tls_pbkdf2_sha256(const void *pw, size_t pw_len, const unsigned char *salt,
                                       size_t salt_len, uint32_t iterations, unsigned char *out,
                                       uint32_t out_len)
{
    return mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA256, pw, pw_len, salt, salt_len, iterations,
                                         out_len, out);
}
#else
static inline int gw_tls_pbkdf2_sha256(const void *pw, size_t pw_len, const unsigned char *salt,
                                       size_t salt_len, uint32_t iterations, unsigned char *out,
                                       uint32_t out_len)
{
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    int rc = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    if (rc == 0)
        rc = mbedtls_pkcs5_pbkdf2_hmac(&md, pw, pw_len, salt, salt_len, iterations, out_len, out);
    mbedtls_md_free(&md);
    return rc;
}
#endif

/* ---- keys and certificates -------------------------------------------------- */

/* A parsed certificate's v3 extensions as its DER has them (the
 * Extensions SEQUENCE); a public field in 2.28 and 3.6 alike. */
static inline const mbedtls_x509_buf *gw_tls_crt_v3_ext(const mbedtls_x509_crt *c)
{
    return &c->v3_ext;
}

/* mbedtls_pk_parse_keyfile without a password; 3.x takes a generator for
 * its blinding. */
int gw_tls_pk_parse_keyfile(mbedtls_pk_context *pk, const char *path);
/* mbedtls_pk_check_pair(pub, prv): 0 when the key belongs to the
 * certificate's public key. */
int gw_tls_pk_check_pair(const mbedtls_pk_context *pub, const mbedtls_pk_context *prv);

/* mbedtls_x509write_crt_set_serial_raw on 3.x (the mbedtls_mpi form is
 * deprecated there), through an mbedtls_mpi on 2.28. */
int gw_tls_x509write_crt_set_serial(mbedtls_x509write_cert *crt, const unsigned char *serial,
                                    size_t len);

/* ---- a server configuration ------------------------------------------------- */

/* Protocol versions, as config.h's enum gw_tls_version (1.2 = 0, 1.3 = 1);
 * max above what the build has is clamped to it. */
/* Whether a configuration is a client's (an upstream connection's). */
static inline bool gw_tls_conf_is_client(const mbedtls_ssl_config *conf)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return conf->MBEDTLS_PRIVATE(endpoint) == MBEDTLS_SSL_IS_CLIENT;
#else
    return conf->endpoint == MBEDTLS_SSL_IS_CLIENT;
#endif
}
void gw_tls_conf_versions(mbedtls_ssl_config *conf, int min, int max);
/* The ECDHE groups a configuration prefers, fastest first (X25519, P-256,
 * P-384, P-521), on both sides. */
void gw_tls_conf_groups(mbedtls_ssl_config *conf);
/* The highest version this build negotiates (GW_TLS_1_2 or GW_TLS_1_3). */
int gw_tls_max_version(void);

/* The negotiated version as "1.2"/"1.3" ("?" otherwise). */
const char *gw_tls_version_of(const mbedtls_ssl_context *ssl);

/* Whether suite `id` is one of the defaults: ECDHE key exchange with an
 * AEAD cipher (AES-GCM, ChaCha20-Poly1305) for TLS 1.2, and every TLS 1.3
 * suite (all of them AEAD, key exchange apart). */
bool gw_tls_suite_default(int id);

/* ---- a session's record buffers (idle.c) ------------------------------------ */

/* Whether an idle session's record buffers can be given back: the buffers
 * must come from the C library's allocator (malloc_usable_size tells their
 * length, free() takes the ones idle.c puts in their place) and stay where
 * they are for the session's life. A build with MBEDTLS_PLATFORM_MEMORY
 * (allocator hooks) or MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH (the library
 * reallocates the buffers itself) keeps them as they are. Neither Debian
 * build (2.28, 3.6) defines either. */
#if defined(MBEDTLS_PLATFORM_MEMORY) || defined(MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH)
#define GW_TLS_TRIM 0
#else
#define GW_TLS_TRIM 1
#endif

/* The incoming record sequence number: the only state of a stream session
 * kept inside its record buffers (at the start of the input buffer; the
 * outgoing one is a field of the context, copied into each record). */
#define GW_TLS_IN_CTR_LEN 8

/* The session's input and output record buffers (NULL before setup). */
void gw_tls_bufs_get(const mbedtls_ssl_context *ssl, unsigned char **in, unsigned char **out);
/* Moves the session onto buffers `in` and `out`, each at least `in_len` and
 * `out_len` long (the old ones' lengths): every pointer the context keeps
 * into an old buffer moves by the same offset into the new one. The old
 * buffers stay the caller's. NULL for both forgets the buffers
 * (mbedtls_ssl_free then frees none). */
void gw_tls_bufs_set(mbedtls_ssl_context *ssl, unsigned char *in, size_t in_len, unsigned char *out,
                     size_t out_len);
/* Whether nothing is in flight in the session's record layer: the
 * handshake is over, no byte of a record is held (read or to send), no
 * plaintext waits to be read and no message is being processed. Then the
 * buffers hold nothing but the incoming sequence number. */
bool gw_tls_quiet(const mbedtls_ssl_context *ssl);
/* Where the incoming sequence number is (GW_TLS_IN_CTR_LEN bytes). */
unsigned char *gw_tls_in_ctr(mbedtls_ssl_context *ssl);

#endif
