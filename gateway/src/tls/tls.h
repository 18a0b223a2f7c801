/*
 * tls.h: TLS on both sides of the gateway, over mbedtls (tls/README.md).
 *
 * What it owns. Everything that knows mbedtls is in gateway/src/tls/:
 *   compat.h/.c   the differences between mbedtls 2.28 (Debian 12: TLS 1.2)
 *                 and 3.6 (Debian 13: TLS 1.3), kept in one place;
 *   certs.c       a listener's certificate set: loaded and validated whole,
 *                 matched by server name, described for the admin API;
 *   server.c      a listener's server configuration (versions, suites, ALPN,
 *                 tickets, client certificates) built over a certificate set,
 *                 and its publication: reload swaps it, handshakes take a
 *                 reference;
 *   peer.c        what a handshake established (version, suite, the verified
 *                 client certificate), for routes, headers and the log;
 *   client.c      an upstream's client configuration and connections;
 *   transport.c   a struct gw__transport (exchange.h) over a TLS session: no
 *                 caller above the transport knows the connection is
 *                 encrypted;
 *   reload.c      watching certificate files, SIGHUP and the admin API's
 *                 reload.
 *
 * Threads. Configurations and certificate sets are immutable once built
 * and shared by every scheduler thread; a session (inside a transport)
 * belongs to one process at a time. Random numbers come from a per-thread
 * generator (gw_tls_rng).
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/config.h"

struct gw__transport;
struct gw__listener;
struct gw_target;

/* ---- the library ------------------------------------------------------------ */

/* Readies the library once per process (any number of calls, any thread):
 * 0 or -EIO. gw_tls_listener_init and gw_tls_server_new call it. */
int gw_tls_init(void);

/* Whether this build knows ciphersuite `name`, as mbedtls writes it
 * ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256") or as IANA does (with '_';
 * "TLS_AES_128_GCM_SHA256" for TLS 1.3). Plain data; any thread. */
bool gw_tls_suite_known(const char *name);

/* ---- random numbers ------------------------------------------------------- */

/* An mbedtls f_rng: fills buf from this thread's CTR-DRBG, seeded from the
 * system on first use. p_rng is ignored (pass NULL). 0 or an mbedtls error. */
int gw_tls_rng(void *p_rng, unsigned char *buf, size_t len);

/* ---- certificate sets (certs.c) ------------------------------------------ */

/* What the admin API shows of one certificate. */
struct gw_tls_cert_info {
    char subject[256];
    char issuer[256];
    char names[GW_TLS_MAX_NAMES][254]; /* the names it is chosen for */
    size_t nnames;
    char fingerprint[65]; /* SHA-256 of the leaf's DER, lower-case hex */
    int64_t not_before;   /* Unix seconds */
    int64_t not_after;
    char key_type[16]; /* "RSA 2048", "EC P-256" */
    char cert_path[4096];
    char key_path[4096];
};

struct gw_tls_cert; /* one leaf with its chain and key */
struct gw_tls_certset;

/* Loads and validates every certificate of `cfg` (paths already resolved):
 * each chain parses, each key parses and matches its leaf, no leaf is
 * expired or not yet valid, every configured name is covered by its leaf.
 * On failure returns -EINVAL (or -ENOMEM) and writes "FILE: reason" to err;
 * nothing is kept. */
int gw_tls_certset_load(const struct gw_tls_listener_config *cfg, struct gw_tls_certset **out,
                        char *err, size_t errlen);
struct gw_tls_certset *gw_tls_certset_ref(struct gw_tls_certset *s);
void gw_tls_certset_unref(struct gw_tls_certset *s); /* NULL-safe */
/* The certificates chosen for server name `name` (len bytes, any case; NULL
 * when the client sent none): every certificate with an exact name match,
 * else every one matching a wildcard (one label), else, unless the set
 * refuses unknown names, the default ones (the first certificate and any
 * other with the same names). Up to max into out; returns how many. A
 * listener with an RSA and an ECDSA certificate for one name gets both, and
 * the library picks by what the client supports. */
size_t gw_tls_certset_match(const struct gw_tls_certset *s, const char *name, size_t len,
                            const struct gw_tls_cert **out, size_t max);
size_t gw_tls_certset_count(const struct gw_tls_certset *s);
const struct gw_tls_cert_info *gw_tls_certset_info(const struct gw_tls_certset *s, size_t i);
/* The mbedtls objects: mbedtls_x509_crt * and mbedtls_pk_context *. */
void *gw_tls_cert_chain(const struct gw_tls_cert *c);
void *gw_tls_cert_key(const struct gw_tls_cert *c);

/* ---- a listener's server side (server.c) ---------------------------------- */

struct gw_tls_server; /* an mbedtls_ssl_config and the certificate set it serves */

/* Builds the server configuration of listener config `cfg` over `certs`
 * (one reference taken). The ticket keys are the listener's and outlive
 * reloads. -EINVAL with err for a bad setting (unknown suite, CA bundle
 * that does not parse). */
int gw_tls_server_new(const struct gw_tls_listener_config *cfg, struct gw_tls_certset *certs,
                      struct gw_tls_server **out, char *err, size_t errlen);
void gw_tls_server_unref(struct gw_tls_server *s); /* NULL-safe */
/* The certificate set `s` serves (valid while s is held), for the admin
 * API and the expiry gauge. Any thread. */
const struct gw_tls_certset *gw_tls_server_certs(const struct gw_tls_server *s);

/* A listener's published server configuration. One per TLS listener,
 * created at start (gw_tls_listener_init, which loads the certificates and
 * refuses to start on any error), replaced whole by a reload. */
struct gw_tls_listener;
int gw_tls_listener_init(const struct gw_listener_config *cfg, struct gw_tls_listener **out,
                         char *err, size_t errlen);
void gw_tls_listener_free(struct gw_tls_listener *tl);
/* The current configuration, one reference taken (a handshake holds it). */
struct gw_tls_server *gw_tls_listener_acquire(struct gw_tls_listener *tl);
/* Loads the listener's files again; publishes the new set when all of it is
 * valid, else keeps serving the old one and returns -EINVAL with err. */
int gw_tls_listener_reload(struct gw_tls_listener *tl, char *err, size_t errlen);

/* ---- what a handshake established (peer.c) -------------------------------- */

struct gw_tls_peer {
    char version[8];   /* "1.2", "1.3" */
    char suite[64];    /* IANA name */
    char sni[254];     /* the server name the client asked for; "" for none */
    bool resumed;      /* a ticket or cached session, no full handshake */
    bool client_cert;  /* a client certificate was presented and verified */
    char subject[256]; /* its subject, RFC 4514-ish as mbedtls prints it */
    char fingerprint[65];
};

/* ---- transports (transport.c) --------------------------------------------- */

/* Why a handshake failed, for the counters (`reason` label) and the debug
 * log. */
enum gw_tls_fail {
    GW_TLS_FAIL_TIMEOUT = 0,  /* not done within the header timeout */
    GW_TLS_FAIL_CLOSED,       /* the peer went away mid-handshake */
    GW_TLS_FAIL_PLAINTEXT,    /* an HTTP request on a TLS port */
    GW_TLS_FAIL_VERSION,      /* no common protocol version */
    GW_TLS_FAIL_CIPHER,       /* no common suite */
    GW_TLS_FAIL_UNKNOWN_NAME, /* SNI matched nothing and the listener refuses */
    GW_TLS_FAIL_CLIENT_CERT,  /* client certificate missing or not verified */
    GW_TLS_FAIL_VERIFY,       /* (upstream) the server's certificate did not verify */
    GW_TLS_FAIL_PROTOCOL,     /* anything else the library refused */
    GW_TLS_FAIL_KINDS
};
const char *gw_tls_fail_name(enum gw_tls_fail f);

/* Server side: a transport over the accepted socket `fd` (owned from now on,
 * also on failure) for listener `tl`. Runs the handshake in the calling
 * (connection) process, at most timeout_ms (the header timeout). A client
 * whose first bytes are an HTTP request, not a TLS record, is answered 400
 * over plaintext and closed. 0 with *out (and *peer filled) or -errno with
 * *why set. */
int gw_tls_accept(struct gw_tls_listener *tl, int fd, int64_t timeout_ms,
                  struct gw__transport **out, struct gw_tls_peer *peer, enum gw_tls_fail *why);

/* Client side (client.c): an upstream's TLS client configuration. */
struct gw_tls_client;
int gw_tls_client_new(const struct gw_tls_upstream_config *cfg, struct gw_tls_client **out,
                      char *err, size_t errlen);
void gw_tls_client_free(struct gw_tls_client *c);
/* A transport over the connected socket `fd` (owned from now on, also on
 * failure) to a server called `host` (SNI and verification, unless the
 * upstream names its own server_name). Handshakes at most timeout_ms. 0, or
 * -errno with *why and a one-line reason in err ("certificate verify
 * failed: not trusted"). */
int gw_tls_connect(struct gw_tls_client *c, int fd, const char *host, int64_t timeout_ms,
                   struct gw__transport **out, enum gw_tls_fail *why, char *err, size_t errlen);

/* Whether TLS transport t (from gw_tls_accept or gw_tls_connect) holds
 * plaintext already decrypted, or record bytes already read, that a read
 * returns without the socket becoming readable: a process must not sleep
 * on t->fd then (exchange.c's hibernation). Process context (the owner). */
bool gw_tls_transport_pending(struct gw__transport *t);

/* ---- counters (metrics.c renders them) ------------------------------------ */

/* A failed handshake on a listener (server) or to an upstream (client). */
void gw_tls_count_failure(bool server, enum gw_tls_fail why);
uint64_t gw_tls_failures(bool server, enum gw_tls_fail why);
uint64_t gw_tls_handshakes(bool server, bool resumed);
void gw_tls_count_handshake(bool server, bool resumed);

#endif
