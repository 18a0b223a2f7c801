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
/* Runs the handshake until it is done or `deadline` (rt_now_ms; UINT64_MAX:
 * none) passes, waiting the runtime's way; hs (NULL for none) collects
 * what the callbacks learn. 0, -ETIMEDOUT, -errno from the wait, or
 * -EPROTO with the library's error in *mrc. Process context. */
int gw__tls_handshake(struct gw__transport *t, uint64_t deadline, struct gw__tls_hs *hs, int *mrc);

struct gw_tls_server *gw__tls_server_ref(struct gw_tls_server *s);

#endif
