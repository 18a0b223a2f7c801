/*
 * peer.c: what a finished handshake established (struct gw_tls_peer), for
 * routes, forwarded headers and the access log.
 */
#include <stdio.h>
#include <string.h>

#include "tls_int.h"

/* mbedtls' suite name in IANA's spelling: '-' becomes '_', and TLS 1.3's
 * "TLS1-3-" prefix is IANA's "TLS_". */
static void iana_name(const char *m, char *out, size_t cap)
{
    if (strncmp(m, "TLS1-3-", 7) == 0)
        m += 7, snprintf(out, cap, "TLS_%s", m);
    else
        snprintf(out, cap, "%s", m);
    for (char *p = out; *p; p++)
        if (*p == '-')
            *p = '_';
}

void gw__tls_peer_fill(const mbedtls_ssl_context *ssl, const struct gw__tls_hs *hs,
                       struct gw_tls_peer *peer)
{
    memset(peer, 0, sizeof *peer);
    snprintf(peer->version, sizeof peer->version, "%s", gw_tls_version_of(ssl));
    iana_name(mbedtls_ssl_get_ciphersuite(ssl), peer->suite, sizeof peer->suite);
    snprintf(peer->sni, sizeof peer->sni, "%s", hs->sni);
    peer->resumed = hs->resumed;
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(ssl);
    if (!crt || mbedtls_ssl_get_verify_result(ssl) != 0)
        return;
    peer->client_cert = true;
    if (mbedtls_x509_dn_gets(peer->subject, sizeof peer->subject, &crt->subject) < 0)
        peer->subject[0] = 0;
    unsigned char fp[32];
    gw_tls_sha256(crt->raw.p, crt->raw.len, fp);
    for (size_t i = 0; i < sizeof fp; i++)
        snprintf(peer->fingerprint + 2 * i, 3, "%02x", fp[i]);
}
