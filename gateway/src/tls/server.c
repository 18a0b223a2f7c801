/*
 * server.c: a listener's server side: the mbedtls configuration built over
 * a certificate set (versions, suites, ALPN, tickets, client
 * certificates), and its publication per listener.
 *
 * A server configuration is immutable once built and shared by every
 * scheduler thread; each handshake takes a reference and its session keeps
 * it for the connection's life, so a reload (gw_tls_listener_reload) swaps
 * in a new one while open connections keep what they were accepted with.
 * The swap and the taking of a reference are under the listener's mutex,
 * held for a pointer copy and an increment only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_int.h"

/* ---- the library ------------------------------------------------------------ */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_lib(void)
{
    init_rc = gw_tls_compat_init();
}

int gw_tls_init(void)
{
    pthread_once(&init_once, init_lib);
    return init_rc;
}

/* ---- handshake state through the thread -------------------------------------- */

static _Thread_local struct gw__tls_hs *cur_hs;

void gw__tls_hs_begin(struct gw__tls_hs *hs)
{
    cur_hs = hs;
}

void gw__tls_hs_end(void)
{
    cur_hs = NULL;
}

/* The server name callback: the certificates for the name the client
 * asked for, all of them (an RSA and an ECDSA one for one name: mbedtls
 * picks by the suites the client offers). */
static int on_sni(void *p, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len)
{
    const struct gw_tls_server *srv = p;
    struct gw__tls_hs *hs = cur_hs;
    if (hs) {
        hs->sni_given = true;
        size_t n = len < sizeof hs->sni - 1 ? len : sizeof hs->sni - 1;
        memcpy(hs->sni, name, n);
        hs->sni[n] = 0;
    }
    const struct gw_tls_cert *certs[GW_TLS_MAX_CERTS];
    size_t n = gw_tls_certset_match(srv->certs, (const char *)name, len, certs, GW_TLS_MAX_CERTS);
    if (n == 0) {
        if (hs)
            hs->sni_unknown = true;
        return -1; /* mbedtls answers unrecognized_name */
    }
    for (size_t i = 0; i < n; i++)
        if (mbedtls_ssl_set_hs_own_cert(ssl, gw_tls_cert_chain(certs[i]),
                                        gw_tls_cert_key(certs[i])) != 0)
            return -1;
    return 0;
}

/* Whether the certificates the handshake would be served (those for its
 * server name, else the default ones) can carry `suite`: a TLS 1.2 suite
 * names the key its certificate must have (ECDSA or RSA); a TLS 1.3 one
 * names none. */
static bool suite_servable(const struct gw__tls_hs *hs, int suite)
{
    const char *name = mbedtls_ssl_get_ciphersuite_name(suite);
    mbedtls_pk_type_t need = strstr(name, "-ECDSA-") ? MBEDTLS_PK_ECKEY
                             : strstr(name, "-RSA-") ? MBEDTLS_PK_RSA
                                                     : MBEDTLS_PK_NONE;
    if (need == MBEDTLS_PK_NONE || !hs->srv)
        return true;
    const struct gw_tls_cert *certs[GW_TLS_MAX_CERTS];
    size_t n = gw_tls_certset_match(hs->srv->certs, hs->sni_given ? hs->sni : NULL,
                                    hs->sni_given ? strlen(hs->sni) : 0, certs, GW_TLS_MAX_CERTS);
    for (size_t i = 0; i < n; i++)
        if (mbedtls_pk_can_do(gw_tls_cert_key(certs[i]), need))
            return true;
    return false;
}

/* Whether a resumed session's client certificate, verified when the
 * ticket was issued, still chains to the client CAs of the configuration
 * serving now and is still valid: a reload that drops a CA from the bundle
 * must not leave its clients authenticated for as long as their tickets
 * live. A session without a certificate passes where none is needed
 * (optional), and fails where one is (required): its certificate cannot be
 * checked, so a full handshake asks for it. */
static bool client_cert_current(const struct gw_tls_server *srv, const mbedtls_ssl_session *s)
{
    if (srv->client_auth == GW_TLS_CLIENT_AUTH_OFF)
        return true;
    const mbedtls_x509_crt *crt = gw_tls_session_peer_cert(s);
    if (!crt)
        return srv->client_auth != GW_TLS_CLIENT_AUTH_REQUIRED;
    uint32_t flags = 0;
    return mbedtls_x509_crt_verify((mbedtls_x509_crt *)crt, (mbedtls_x509_crt *)&srv->client_ca,
                                   NULL, NULL, &flags, NULL, NULL) == 0;
}

/* Ticket parsing that also records that the handshake resumes (mbedtls
 * has no public way to ask a session whether it was resumed), and refuses
 * a ticket whose suite the certificates serving now cannot carry: after a
 * reload that replaced an ECDSA certificate by an RSA one (or the
 * reverse), mbedtls 2.28 would resume the session under a newly chosen
 * suite, which clients refuse ("old session cipher not returned"), failing
 * the first handshake of every client holding a ticket from before. A
 * refused ticket costs a full handshake instead. */
static int on_ticket_parse(void *p, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
    int rc = mbedtls_ssl_ticket_parse(p, session, buf, len);
    if (rc == 0 && cur_hs && !suite_servable(cur_hs, gw_tls_session_suite(session)))
        rc = MBEDTLS_ERR_SSL_INVALID_MAC; /* mbedtls ignores the ticket */
    if (rc == 0 && cur_hs && cur_hs->srv && !client_cert_current(cur_hs->srv, session))
        rc = MBEDTLS_ERR_SSL_INVALID_MAC; /* a full handshake verifies the client again */
    if (rc == 0 && cur_hs)
        cur_hs->resumed = true;
    return rc;
}

/* ---- tickets ---------------------------------------------------------------- */

static int tickets_new(uint32_t lifetime_s, struct gw__tls_tickets **out)
{
    struct gw__tls_tickets *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    atomic_init(&t->refs, 1);
    mbedtls_ssl_ticket_init(&t->ctx);
    if (mbedtls_ssl_ticket_setup(&t->ctx, gw_tls_rng, NULL, MBEDTLS_CIPHER_AES_256_GCM,
                                 lifetime_s) != 0) {
        mbedtls_ssl_ticket_free(&t->ctx);
        free(t);
        return -EIO;
    }
    *out = t;
    return 0;
}

static struct gw__tls_tickets *tickets_ref(struct gw__tls_tickets *t)
{
    if (t) /* relaxed: a reference publishes nothing */
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

static void tickets_unref(struct gw__tls_tickets *t)
{
    /* acq_rel: the last holder sees every use before freeing */
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    mbedtls_ssl_ticket_free(&t->ctx);
    free(t);
}

/* ---- a server configuration -------------------------------------------------- */

static const char *alpn_protocols[] = {"http/1.1", NULL};

static int suites_build(const struct gw_tls_listener_config *cfg, int **out, char *err,
                        size_t errlen)
{
    const int *all = mbedtls_ssl_list_ciphersuites();
    size_t nall = 0;
    while (all[nall])
        nall++;
    size_t cap = cfg->nciphersuites ? cfg->nciphersuites : nall;
    int *l = calloc(cap + 1, sizeof *l);
    if (!l)
        return -ENOMEM;
    size_t n = 0;
    if (cfg->nciphersuites) {
        for (size_t i = 0; i < cfg->nciphersuites; i++) {
            int id = gw__tls_suite_id(cfg->ciphersuites[i]);
            if (!id) {
                snprintf(err, errlen, "unknown ciphersuite \"%s\"", cfg->ciphersuites[i]);
                free(l);
                return -EINVAL;
            }
            l[n++] = id;
        }
    } else {
        /* mbedtls lists its suites strongest first; keep that order. */
        for (size_t i = 0; i < nall; i++)
            if (gw_tls_suite_default(all[i]))
                l[n++] = all[i];
    }
    *out = l;
    return 0;
}

static void server_free(struct gw_tls_server *s)
{
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_x509_crt_free(&s->client_ca);
    gw_tls_certset_unref(s->certs);
    tickets_unref(s->tickets);
    free(s->suites);
    free(s);
}

static int server_build(const struct gw_tls_listener_config *cfg, struct gw_tls_certset *certs,
                        struct gw__tls_tickets *tickets, struct gw_tls_server **out, char *err,
                        size_t errlen)
{
    int rc = gw_tls_init();
    if (rc < 0) {
        snprintf(err, errlen, "the TLS library did not start");
        return rc;
    }
    struct gw_tls_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    atomic_init(&s->refs, 1);
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_x509_crt_init(&s->client_ca);
    s->certs = gw_tls_certset_ref(certs);
    s->tickets = tickets_ref(tickets);
    s->client_auth = cfg->client_auth;
    s->refuse_unknown = cfg->unknown_name == GW_TLS_UNKNOWN_REFUSE;
    mbedtls_ssl_config *c = &s->conf;
    if (mbedtls_ssl_config_defaults(c, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
        snprintf(err, errlen, "TLS configuration defaults refused");
        rc = -EIO;
        goto out;
    }
    mbedtls_ssl_conf_rng(c, gw_tls_rng, NULL);
    gw_tls_conf_versions(c, cfg->min_version, cfg->max_version);
    gw_tls_conf_groups(c);
    if ((rc = suites_build(cfg, &s->suites, err, errlen)) < 0)
        goto out;
    mbedtls_ssl_conf_ciphersuites(c, s->suites);
    if (mbedtls_ssl_conf_alpn_protocols(c, alpn_protocols) != 0) {
        rc = -EIO;
        goto out;
    }
#if defined(MBEDTLS_SSL_RENEGOTIATION)
    mbedtls_ssl_conf_renegotiation(c, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
    mbedtls_ssl_conf_sni(c, on_sni, s);
    /* A client that names no server gets the default certificates, unless
     * the listener refuses unknown names: then it gets none, and the
     * handshake fails. */
    if (!s->refuse_unknown) {
        const struct gw_tls_cert *def[GW_TLS_MAX_CERTS];
        size_t n = gw_tls_certset_match(certs, NULL, 0, def, GW_TLS_MAX_CERTS);
        for (size_t i = 0; i < n; i++)
            if (mbedtls_ssl_conf_own_cert(c, gw_tls_cert_chain(def[i]), gw_tls_cert_key(def[i])) !=
                0) {
                rc = -ENOMEM;
                goto out;
            }
    }
    /* Without the callbacks a server issues no tickets. */
    if (tickets)
        mbedtls_ssl_conf_session_tickets_cb(c, mbedtls_ssl_ticket_write, on_ticket_parse,
                                            &tickets->ctx);
    if (cfg->client_auth != GW_TLS_CLIENT_AUTH_OFF) {
        int mrc = mbedtls_x509_crt_parse_file(&s->client_ca, cfg->client_ca);
        if (mrc != 0) {
            snprintf(err, errlen, "%s: client CA bundle does not parse", cfg->client_ca);
            rc = -EINVAL;
            goto out;
        }
        mbedtls_ssl_conf_ca_chain(c, &s->client_ca, NULL);
        mbedtls_ssl_conf_authmode(c, cfg->client_auth == GW_TLS_CLIENT_AUTH_REQUIRED
                                         ? MBEDTLS_SSL_VERIFY_REQUIRED
                                         : MBEDTLS_SSL_VERIFY_OPTIONAL);
    } else {
        mbedtls_ssl_conf_authmode(c, MBEDTLS_SSL_VERIFY_NONE);
    }
    rc = 0;
out:
    if (rc < 0) {
        server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int gw_tls_server_new(const struct gw_tls_listener_config *cfg, struct gw_tls_certset *certs,
                      struct gw_tls_server **out, char *err, size_t errlen)
{
    struct gw__tls_tickets *t = NULL;
    int rc = gw_tls_init();
    if (rc == 0 && cfg->session_tickets)
        rc = tickets_new(cfg->ticket_lifetime_s, &t);
    if (rc < 0) {
        snprintf(err, errlen, "session ticket keys could not be made");
        return rc;
    }
    rc = server_build(cfg, certs, t, out, err, errlen);
    tickets_unref(t);
    return rc;
}

struct gw_tls_server *gw__tls_server_ref(struct gw_tls_server *s)
{
    /* relaxed: a reference publishes nothing */
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void gw_tls_server_unref(struct gw_tls_server *s)
{
    /* acq_rel: the last holder sees every session's use before freeing */
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    server_free(s);
}

const struct gw_tls_certset *gw_tls_server_certs(const struct gw_tls_server *s)
{
    return s->certs;
}

/* ---- a listener's published configuration ------------------------------------ */

struct gw_tls_listener {
    pthread_mutex_t lock;
    struct gw_tls_server *cur;            /* under lock */
    const struct gw_listener_config *cfg; /* the gateway's configuration: outlives it */
    struct gw__tls_tickets *tickets;      /* the listener's, across reloads; NULL: off */
};

int gw_tls_listener_init(const struct gw_listener_config *cfg, struct gw_tls_listener **out,
                         char *err, size_t errlen)
{
    int rc = gw_tls_init();
    if (rc < 0) {
        snprintf(err, errlen, "the TLS library did not start");
        return rc;
    }
    struct gw_tls_listener *tl = calloc(1, sizeof *tl);
    if (!tl)
        return -ENOMEM;
    pthread_mutex_init(&tl->lock, NULL);
    tl->cfg = cfg;
    struct gw_tls_certset *certs = NULL;
    if (cfg->tls.session_tickets &&
        (rc = tickets_new(cfg->tls.ticket_lifetime_s, &tl->tickets)) < 0) {
        snprintf(err, errlen, "session ticket keys could not be made");
        goto out;
    }
    if ((rc = gw_tls_certset_load(&cfg->tls, &certs, err, errlen)) < 0)
        goto out;
    rc = server_build(&cfg->tls, certs, tl->tickets, &tl->cur, err, errlen);
out:
    gw_tls_certset_unref(certs);
    if (rc < 0) {
        gw_tls_listener_free(tl);
        return rc;
    }
    *out = tl;
    return 0;
}

void gw_tls_listener_free(struct gw_tls_listener *tl)
{
    if (!tl)
        return;
    gw_tls_server_unref(tl->cur);
    tickets_unref(tl->tickets);
    pthread_mutex_destroy(&tl->lock);
    free(tl);
}

struct gw_tls_server *gw_tls_listener_acquire(struct gw_tls_listener *tl)
{
    pthread_mutex_lock(&tl->lock);
    struct gw_tls_server *s = gw__tls_server_ref(tl->cur);
    pthread_mutex_unlock(&tl->lock);
    return s;
}

int gw_tls_listener_reload(struct gw_tls_listener *tl, char *err, size_t errlen)
{
    struct gw_tls_certset *certs = NULL;
    struct gw_tls_server *s = NULL;
    int rc = gw_tls_certset_load(&tl->cfg->tls, &certs, err, errlen);
    if (rc == 0)
        rc = server_build(&tl->cfg->tls, certs, tl->tickets, &s, err, errlen);
    gw_tls_certset_unref(certs);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&tl->lock);
    struct gw_tls_server *old = tl->cur;
    tl->cur = s;
    pthread_mutex_unlock(&tl->lock);
    gw_tls_server_unref(old); /* sessions accepted with it hold their own references */
    return 0;
}
