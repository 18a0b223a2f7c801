/*
 * tls_int.h: what the files of gateway/src/tls/ share beyond tls.h.
 */
#ifndef GW_TLS_INT_H
#define GW_TLS_INT_H

#include <stdatomic.h>

#include "compat.h"
#include "tls.h"

/* The session ticket keys of a listener: made once, kept across reloads,
 * rotated by mbedtls every ticket lifetime (it keeps the previous key too,
 * so a ticket stays good for its whole lifetime). The context locks itself
 * (MBEDTLS_THREADING_C), so every scheduler's handshakes share it. */
struct gw__tls_tickets {
    _Atomic int refs;
    mbedtls_ssl_ticket_context ctx;
};

struct gw_tls_server {
    _Atomic int refs;
    mbedtls_ssl_config conf;
    struct gw_tls_certset *certs;
    struct gw__tls_tickets *tickets; /* NULL: no session tickets */
    int *suites;                     /* 0-terminated, in preference order */
    mbedtls_x509_crt client_ca;
    enum gw_tls_client_auth client_auth;
    bool refuse_unknown;
};

/* What one handshake in progress learns through the library's callbacks
 * (server name, resumption). The callbacks get only the configuration's
 * pointer, so the handshake's state is found through the calling thread:
 * gw__tls_hs_begin before each call into the handshake, gw__tls_hs_end
 * after. No call into mbedtls yields, so the process stays on the thread
 * in between. */
struct gw__tls_hs {
    const struct gw_tls_server *srv;
    bool sni_given;
    bool sni_unknown; /* refused: no certificate for the name */
    bool resumed;
    char sni[254];
};
void gw__tls_hs_begin(struct gw__tls_hs *hs);
void gw__tls_hs_end(void);

/* The handshake's failure reason for mbedtls error `rc`. */
enum gw_tls_fail gw__tls_fail_of(int rc);

/* Fills *peer from a finished handshake (peer.c). */
void gw__tls_peer_fill(const mbedtls_ssl_context *ssl, const struct gw__tls_hs *hs,
                       struct gw_tls_peer *peer);

/* mbedtls' id of suite `name` in either spelling (gw_tls_suite_known), or
 * 0. */
int gw__tls_suite_id(const char *name);

/* A session transport over connected socket `fd` (non-blocking; owned from
 * now on, also on failure) with a session set up from `conf`. `owner`
 * keeps conf alive: release(owner) runs when the session goes (also on
 * failure). The handshake is next (gw__tls_handshake). 0 or -errno. */
int gw__tls_transport_new(int fd, const mbedtls_ssl_config *conf, void *owner,
                          void (*release)(void *), struct gw__transport **out);
/* The session of a transport from gw__tls_transport_new, for the
 * handshake's set-up (a client's server name) and its results. */
mbedtls_ssl_context *gw__tls_transport_ssl(struct gw__transport *t);
/* Bytes the transport's read-ahead holds: taken off the socket, not yet
 * handed to the session. 0 means it holds no memory either. */
size_t gw__tls_transport_read_ahead(struct gw__transport *t);
/* Runs the handshake until it is done or `deadline` (rt_now_ms; UINT64_MAX:
 * none) passes, waiting the runtime's way; hs (NULL for none) collects
 * what the callbacks learn. 0, -ETIMEDOUT, -errno from the wait, or
 * -EPROTO with the library's error in *mrc. Process context. */
int gw__tls_handshake(struct gw__transport *t, uint64_t deadline, struct gw__tls_hs *hs, int *mrc);

struct gw_tls_server *gw__tls_server_ref(struct gw_tls_server *s);

/* A session's record buffers while idle (idle.c). Every call is made with
 * the session's lock held. */
struct gw__tls_idle {
    size_t in_len, out_len; /* the buffers' lengths (0: not set up, nothing to give back) */
    bool trimmed;           /* given back: wake before the next call into the session */
    unsigned char in_ctr[GW_TLS_IN_CTR_LEN];
};
/* Right after mbedtls_ssl_setup: moves the session onto page-aligned
 * buffers of its own (keeps the library's when memory is short). */
void gw__tls_idle_setup(mbedtls_ssl_context *ssl, struct gw__tls_idle *idle);
/* Gives back every page of both buffers when the session is quiet
 * (gw_tls_quiet); the bytes given back, 0 when nothing was (not quiet,
 * already given back, a build that cannot: GW_TLS_TRIM). */
size_t gw__tls_idle_trim(mbedtls_ssl_context *ssl, struct gw__tls_idle *idle);
/* Before any other call into the session: puts back the state the buffers
 * held. Nothing to do unless trimmed. */
void gw__tls_idle_wake(mbedtls_ssl_context *ssl, struct gw__tls_idle *idle);
/* Before mbedtls_ssl_free: frees buffers that were given back. */
void gw__tls_idle_done(mbedtls_ssl_context *ssl, struct gw__tls_idle *idle);

#endif
