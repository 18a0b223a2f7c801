/*
 * client.c: an upstream's TLS client side: its configuration, built once
 * at start (versions, suites, ALPN, the CA bundle the backends must chain
 * to, an optional client certificate), and its connections.
 *
 * A client configuration is immutable once built and shared by every
 * scheduler thread, as a listener's is; it lives as long as its upstream
 * (upstream.c frees it after the pools closed their connections). A
 * connection's session is a transport like any other (transport.c): the
 * pool keeps it, the relay, the tunnel, health checks and workflow calls
 * read and write it without knowing it is encrypted.
 *
 * Verification is on unless the upstream turns it off: the chain must lead
 * to `ca` (or the system store) and the certificate must name the server
 * name (the upstream's server_name, else the target's host). A name that
 * is an IP address is matched against the certificate's iPAddress entries
 * only (RFC 9525 6.3), here rather than by the library: mbedtls 2.28 does
 * not read them, and compares the text with DNS names instead; and it is
 * not sent as SNI, which RFC 6066 keeps for host names. A failure
 * gives a one-line reason for the log and the target's last_error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>

#include "../exchange.h"
#include "tls_int.h"

struct gw_tls_client {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    int *suites; /* 0-terminated; the configuration points into it */
    char *server_name;
};

static const char *alpn_protocols[] = {"http/1.1", NULL};

void gw_tls_client_free(struct gw_tls_client *c)
{
    if (!c)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_pk_free(&c->key);
    free(c->suites);
    free(c->server_name);
    free(c);
}

/* The default suites, as a listener's: ECDHE key exchange with an AEAD
 * cipher (and TLS 1.3's suites), strongest first as mbedtls lists them. */
static int suites_default(int **out)
{
    const int *all = mbedtls_ssl_list_ciphersuites();
    size_t nall = 0;
    while (all[nall])
        nall++;
    int *l = calloc(nall + 1, sizeof *l);
    if (!l)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < nall; i++)
        if (gw_tls_suite_default(all[i]))
            l[n++] = all[i];
    *out = l;
    return 0;
}

int gw_tls_client_new(const struct gw_tls_upstream_config *cfg, struct gw_tls_client **out,
                      char *err, size_t errlen)
{
    int rc = gw_tls_init();
    if (rc < 0) {
        snprintf(err, errlen, "the TLS library did not start");
        return rc;
    }
    struct gw_tls_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_pk_init(&c->key);
    mbedtls_ssl_config *conf = &c->conf;
    if (cfg->server_name && !(c->server_name = strdup(cfg->server_name))) {
        rc = -ENOMEM;
        goto out;
    }
    if (mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
        snprintf(err, errlen, "TLS configuration defaults refused");
        rc = -EIO;
        goto out;
    }
    mbedtls_ssl_conf_rng(conf, gw_tls_rng, NULL);
    gw_tls_conf_versions(conf, cfg->min_version, GW_TLS_1_3);
    gw_tls_conf_groups(conf);
    if ((rc = suites_default(&c->suites)) < 0)
        goto out;
    mbedtls_ssl_conf_ciphersuites(conf, c->suites);
    if (mbedtls_ssl_conf_alpn_protocols(conf, alpn_protocols) != 0) {
        rc = -EIO;
        goto out;
    }
#if defined(MBEDTLS_SSL_RENEGOTIATION)
    mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
    /* A pooled connection is reused for many requests: resuming a session
     * across connections would save little, and tickets are not asked for. */
    mbedtls_ssl_conf_session_tickets(conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
    if (cfg->verify || cfg->ca) {
        const char *ca = cfg->ca ? cfg->ca : GW_TLS_SYSTEM_CA;
        /* A positive count is of certificates that did not parse, which a
         * system store may hold; none at all that parse is an error. */
        int mrc = mbedtls_x509_crt_parse_file(&c->ca, ca);
        if (mrc < 0 || (mrc > 0 && c->ca.version == 0)) {
            snprintf(err, errlen, "%s: CA bundle does not parse", ca);
            rc = -EINVAL;
            goto out;
        }
        mbedtls_ssl_conf_ca_chain(conf, &c->ca, NULL);
    }
    mbedtls_ssl_conf_authmode(conf,
                              cfg->verify ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
    if (cfg->cert && cfg->key) {
        if (mbedtls_x509_crt_parse_file(&c->cert, cfg->cert) != 0) {
            snprintf(err, errlen, "%s: certificate chain does not parse", cfg->cert);
            rc = -EINVAL;
            goto out;
        }
        if (gw_tls_pk_parse_keyfile(&c->key, cfg->key) != 0) {
            snprintf(err, errlen, "%s: private key does not parse", cfg->key);
            rc = -EINVAL;
            goto out;
        }
        if (gw_tls_pk_check_pair(&c->cert.pk, &c->key) != 0) {
            snprintf(err, errlen, "%s: key does not match the certificate %s", cfg->key, cfg->cert);
            rc = -EINVAL;
            goto out;
        }
        if (mbedtls_ssl_conf_own_cert(conf, &c->cert, &c->key) != 0) {
            rc = -ENOMEM;
            goto out;
        }
    }
    rc = 0;
out:
    if (rc < 0) {
        gw_tls_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Why the server's certificate did not verify, in a few words: the flags
 * of mbedtls_ssl_get_verify_result, the commonest first. */
static void verify_reason(uint32_t flags, char *err, size_t errlen)
{
    static const struct {
        uint32_t flag;
        const char *what;
    } reasons[] = {
        {MBEDTLS_X509_BADCERT_NOT_TRUSTED, "not trusted (no chain to the CA bundle)"},
        {MBEDTLS_X509_BADCERT_CN_MISMATCH, "name mismatch"},
        {MBEDTLS_X509_BADCERT_EXPIRED, "expired"},
        {MBEDTLS_X509_BADCERT_FUTURE, "not yet valid"},
        {MBEDTLS_X509_BADCERT_REVOKED, "revoked"},
        {MBEDTLS_X509_BADCERT_KEY_USAGE, "key usage"},
        {MBEDTLS_X509_BADCERT_EXT_KEY_USAGE, "extended key usage"},
        {MBEDTLS_X509_BADCERT_BAD_KEY, "key too weak"},
        {MBEDTLS_X509_BADCERT_BAD_MD, "weak signature hash"},
        {MBEDTLS_X509_BADCERT_MISSING, "none sent"},
    };
    size_t n = (size_t)snprintf(err, errlen, "certificate verify failed:");
    bool any = false;
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0] && n < errlen; i++)
        if (flags & reasons[i].flag) {
            n += (size_t)snprintf(err + n, errlen - n, "%s %s", any ? "," : "", reasons[i].what);
            any = true;
        }
    if (!any && n < errlen)
        snprintf(err + n, errlen - n, " flags 0x%x", (unsigned)flags);
}

/* The address `name` spells, in out (4 or 16 bytes); 0 when it is not an
 * IP address literal. */
static size_t ip_of(const char *name, unsigned char out[16])
{
    if (inet_pton(AF_INET, name, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, name, out) == 1)
        return 16;
    return 0;
}

/* Whether the subjectAltName of crt has an iPAddress entry for ip[0..len),
 * read from the certificate's DER. Anything that does not parse is no
 * match. */
static bool san_has_ip(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t iplen)
{
    const mbedtls_x509_buf *ext = gw_tls_crt_v3_ext(crt);
    unsigned char *p = ext->p;
    if (!p)
        return false;
    const unsigned char *end = p + ext->len;
    size_t len;
    /* Extensions ::= SEQUENCE OF Extension */
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
        return false;
    end = p + len;
    while (p < end) {
        /* Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE,
         * extnValue OCTET STRING } */
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
            0)
            return false;
        const unsigned char *ext_end = p + len;
        size_t oid_len;
        if (mbedtls_asn1_get_tag(&p, ext_end, &oid_len, MBEDTLS_ASN1_OID) != 0)
            return false;
        bool san = oid_len == MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME) &&
                   memcmp(p, MBEDTLS_OID_SUBJECT_ALT_NAME, oid_len) == 0;
        p += oid_len;
        if (!san) {
            p = (unsigned char *)ext_end;
            continue;
        }
        int critical; /* absent (no tag moved past) when false */
        int r = mbedtls_asn1_get_bool(&p, ext_end, &critical);
        if (r != 0 && r != MBEDTLS_ERR_ASN1_UNEXPECTED_TAG)
            return false;
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
            return false;
        /* GeneralNames ::= SEQUENCE OF GeneralName; iPAddress [7] IMPLICIT
         * OCTET STRING */
        if (mbedtls_asn1_get_tag(&p, ext_end, &len,
                                 MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
            return false;
        const unsigned char *names_end = p + len;
        while (p < names_end) {
            unsigned char tag = *p++;
            if (mbedtls_asn1_get_len(&p, names_end, &len) != 0)
                return false;
            if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && len == iplen &&
                memcmp(p, ip, iplen) == 0)
                return true;
            p += len;
        }
        return false; /* one subjectAltName per certificate */
    }
    return false;
}

/* The verification callback of a session to an address: the leaf's name
 * check is decided by its iPAddress entries alone. */
static int verify_address(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    const char *name = ctx;
    unsigned char ip[16];
    size_t iplen = ip_of(name, ip);
    if (depth != 0 || !iplen)
        return 0;
    if (san_has_ip(crt, ip, iplen))
        *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
    else
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

/* Closes a session still handshaking when its process ends. */
static void transport_abandoned(void *arg)
{
    struct gw__transport *t = arg;
    t->ops->close(t);
}

int gw_tls_connect(struct gw_tls_client *c, int fd, const char *host, int64_t timeout_ms,
                   struct gw__transport **out, enum gw_tls_fail *why, char *err, size_t errlen)
{
    int lib_err = 0;
    uint32_t verify = 0;
    const char *name = c->server_name ? c->server_name : host;
    uint64_t deadline = rt_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    struct gw__transport *t = NULL;
    /* The configuration outlives the session (upstream.c frees it after
     * the pools closed theirs): nothing to release. */
    int rc = gw__tls_transport_new(fd, &c->conf, NULL, NULL, &t);
    /* The handshake waits on the peer: a process killed there (a workflow
     * call past its deadline) still closes the socket and frees the
     * session. */
    uint64_t guard = rc == 0 ? rt_defer(transport_abandoned, t) : 0;
    if (rc == 0 && !guard)
        rc = -ENOMEM;
    /* An address is not sent as SNI (RFC 6066 3: servers may refuse it)
     * and the library checks no name for it: a NULL host name says so to
     * 3.6 as to 2.28, and verify_address checks the leaf's iPAddress
     * entries instead. */
    unsigned char ip[16];
    bool by_address = ip_of(name, ip) != 0;
    if (rc == 0 &&
        mbedtls_ssl_set_hostname(gw__tls_transport_ssl(t), by_address ? NULL : name) != 0)
        rc = -ENOMEM;
    if (rc == 0 && by_address)
        mbedtls_ssl_set_verify(gw__tls_transport_ssl(t), verify_address, (void *)name);
    if (rc == 0)
        rc = gw__tls_handshake(t, deadline, NULL, &lib_err);
    if (guard)
        rt_undefer(guard, false);
    if (rc == 0) {
        gw_tls_count_handshake(false, false);
        *out = t;
        return 0;
    }
    if (t) {
        verify = mbedtls_ssl_get_verify_result(gw__tls_transport_ssl(t));
        t->ops->close(t);
    }
    if (rc == -ETIMEDOUT) {
        *why = GW_TLS_FAIL_TIMEOUT;
        snprintf(err, errlen, "TLS handshake timed out");
    } else if (rc == -EPROTO &&
               (lib_err == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ||
                (verify != UINT32_MAX && (verify & ~(uint32_t)MBEDTLS_X509_BADCERT_SKIP_VERIFY)))) {
        *why = GW_TLS_FAIL_VERIFY;
        verify_reason(verify, err, errlen);
    } else if (rc == -EPROTO) {
        *why = gw__tls_fail_of(lib_err);
        char lib[96];
        mbedtls_strerror(lib_err, lib, sizeof lib);
        snprintf(err, errlen, "TLS handshake failed: %s", lib);
    } else {
        *why = rc == -ENOMEM ? GW_TLS_FAIL_PROTOCOL : GW_TLS_FAIL_CLOSED;
        snprintf(err, errlen, "TLS handshake failed: %s", strerror(-rc));
    }
    gw_tls_count_failure(false, *why);
    return rc;
}
