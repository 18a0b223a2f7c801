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
 *                 reload;
 *   selfsigned.c  `tandem tls self-signed`: a key and a self-signed
 *                 certificate for a demo or the container's first run.
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
#include "rt/rt.h"

struct gw__transport;
struct gw__listener;
struct gw_target;
struct jpos_diags;

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
 * *why set; the failure is counted (gw_tls_count_failure) as soon as its
 * reason is known, a plaintext request's before its answer is written. */
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

/* ---- the build (compat.c) --------------------------------------------------- */

/* "mbedtls 3.6.6, TLS 1.2 and 1.3": the mbedtls loaded and the protocol
 * versions this build negotiates (`tandem --version` prints it). */
void gw_tls_build_info(char *buf, size_t len);

/* ---- a self-signed certificate (selfsigned.c) ------------------------------ */

/* The files `tandem tls self-signed --out DIR` writes in DIR. */
#define GW_TLS_SELF_SIGNED_CERT "cert.pem"
#define GW_TLS_SELF_SIGNED_KEY "key.pem"

enum gw_tls_key_type { GW_TLS_KEY_ECDSA_P256 = 0, GW_TLS_KEY_RSA };

struct gw_tls_self_signed {
    const char *const *names; /* DNS names ("*.example.com" too) or IP addresses; */
    size_t nnames;            /* 1..GW_TLS_MAX_NAMES, the first is the subject's CN */
    enum gw_tls_key_type key;
    unsigned rsa_bits; /* 2048, 3072 or 4096 (RSA only) */
    unsigned days;     /* validity, 1..3650 */
    bool force;        /* replace existing files */
};

/* Generates a key and a self-signed certificate for o->names (selfsigned.c
 * says what is in it) and writes them as PEM to DIR/GW_TLS_SELF_SIGNED_CERT
 * and DIR/GW_TLS_SELF_SIGNED_KEY (mode 0600), creating DIR when its parent
 * exists. Refuses (-EEXIST) to replace either file unless o->force. 0, or
 * -errno with err ("DIR/key.pem: Permission denied"). Blocks (RSA
 * generation takes a second or more): the command line only. */
int gw_tls_self_signed_write(const struct gw_tls_self_signed *o, const char *dir, char *err,
                             size_t errlen);
/* `tandem tls ...` (argv[0] is "tls"): returns the exit code, 0, 1 on
 * failure, 2 on a usage error. */
int gw_tls_cli_main(int argc, char **argv);

/* ---- counters (metrics.c renders them) ------------------------------------ */

/* A failed handshake on a listener (server) or to an upstream (client). */
void gw_tls_count_failure(bool server, enum gw_tls_fail why);
uint64_t gw_tls_failures(bool server, enum gw_tls_fail why);
uint64_t gw_tls_handshakes(bool server, bool resumed);
void gw_tls_count_handshake(bool server, bool resumed);

/* ---- reloads and what the admin API shows (reload.c) ---------------------- */

/* The reloader: a gen_server registered as GW_TLS_RELOADER_NAME, a child of
 * tandem_sup when a listener speaks TLS, that runs every reload of the listeners' certificates (one
 * at a time, each on the blocking pool) and keeps their record. It starts a linked watcher of the
 * directories holding each TLS listener's files (certificates, keys, client CA), which asks for a
 * reload of the listeners whose files changed once a burst of changes has settled. */
#define GW_TLS_RELOADER_NAME "gw_tls_reloader"
/* How long gw_tls_reload waits for the reloader's answer. */
#define GW_TLS_RELOAD_CALL_TIMEOUT_MS 30000
int gw_tls_reloader_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason);

/* The result of one listener's reload. `file` is the file the error names
 * ("" when it names none of the listener's files), `reason` what is wrong
 * with it. */
struct gw_tls_reload_result {
    const char *listener; /* its name, gw.cfg's: lives as long as the gateway */
    bool ok;
    char file[4096];
    char reason[512];
};
struct gw_tls_reload_outcome {
    size_t n;
    struct gw_tls_reload_result results[];
};
void gw_tls_reload_outcome_free(struct gw_tls_reload_outcome *o); /* NULL-safe */

/* Process context (blocks the caller until the reloader answers). Reloads
 * every TLS listener (`listener` NULL) or the one named; `source` ("admin",
 * "signal", ...) is recorded. 0 when every reload published its set,
 * -EINVAL when one was refused (the old set keeps serving), -ENOENT for an
 * unknown or plaintext listener, -ETIMEDOUT, -ESRCH (no reloader), -ENOMEM.
 * *out (the caller frees it) is written for 0 and -EINVAL. */
int gw_tls_reload(const char *source, const char *listener, struct gw_tls_reload_outcome **out);
/* Any thread (the signal loop): the same for every listener, without
 * waiting for the outcome. */
void gw_tls_reload_async(const char *source);
/* Main thread, before the listeners load their certificates: notes what
 * each TLS listener's files are (inode, size, change time). The watcher,
 * once its watches are in place, reloads a listener whose files differ
 * from that note: a change made between the listener's load and the
 * watcher's start would otherwise go unseen. */
void gw_tls_reload_snapshot(const struct gw_config *cfg);

/* What GET /admin/tls and /metrics show: per TLS listener the certificates
 * serving now and the reload record, and the handshake counters. */
struct gw_tls_listener_desc {
    const char *name;    /* gw.cfg's */
    const char *address; /* gw.cfg's */
    char loaded_at[40];  /* when the set serving now was loaded, RFC 3339 UTC */
    char loaded_by[32];  /* "start", "admin", "signal", "inotify" */
    uint64_t reloads_ok, reloads_failed;
    bool has_last; /* a reload has run since start */
    struct gw_tls_reload_result last;
    char last_time[40];
    char last_source[32];
    struct gw_tls_cert_info *certs;
    size_t ncerts;
};
struct gw_tls_desc {
    struct gw_tls_listener_desc *listeners;
    size_t n;
    uint64_t handshakes[2][2];               /* [server][resumed] */
    uint64_t failures[2][GW_TLS_FAIL_KINDS]; /* [server][reason] */
};
/* Any thread. 0 with *out (free it with gw_tls_desc_free), or -ENOMEM. */
int gw_tls_describe(struct gw_tls_desc **out);
void gw_tls_desc_free(struct gw_tls_desc *d); /* NULL-safe */

/* ---- `tandem check` (check.c) --------------------------------------------- */

/* Loads every TLS listener's files as a listener's start would and reports
 * each problem to `d` at the JSON position, in the configuration file
 * cfg->path, of the `cert` or `key` member it concerns (client_auth's `ca`,
 * else the listener's `tls`), with the file and its reason. Each
 * certificate is checked on its own, so every bad file is reported. 0, or
 * -EINVAL when something is wrong, -ENOMEM. Blocks (reads files). */
int gw_tls_check(const struct gw_config *cfg, struct jpos_diags *d);

#endif
