/*
 * upstream_int.h: the upstream pools' structures, shared by upstream.c
 * (targets, balancing, health, the description) and pool.c (each target's
 * keep-alive connection pool). Everything here is created by
 * gw__upstreams_init on the main thread before the runtime starts and
 * freed by gw__upstreams_done after it stopped; in between the arrays never
 * move, so request processes keep plain pointers to targets.
 */
#ifndef GW_UPSTREAM_INT_H
#define GW_UPSTREAM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gw/config.h"

struct gw__transport;
struct gw_tls_client;

/* A target's pool of idle keep-alive connections and its count of busy
 * ones. The idle stack is guarded by `lock` (held for a push or a pop, no
 * I/O under it); `active` is an atomic count, relaxed: it bounds and is
 * shown, it publishes nothing. */
struct gw__pool {
    pthread_mutex_t lock;
    struct gw__transport **idle; /* max_idle slots (at least one allocated) */
    size_t nidle;
    uint32_t max_idle;   /* upstreams.*.max_idle */
    uint32_t max_active; /* upstreams.*.max_connections */
    _Atomic uint32_t active;
};

struct gw_target {
    struct gw_upstream *up;
    char addr[80];
    const char *host; /* as configured: the TLS server name unless the upstream sets one */
    struct sockaddr_storage sa;
    socklen_t salen;
    uint32_t weight;
    int cur_weight; /* smooth weighted round robin, under up->lock */
    struct gw__pool pool;
    pthread_mutex_t lock; /* last_error */
    _Atomic uint32_t consecutive_failures;
    _Atomic uint64_t ejected_until_ms;
    _Atomic uint64_t requests, failures, ejections;
    char last_error[96];            /* under lock */
    _Atomic uint64_t tls_logged_ms; /* when a failed handshake was last logged */
};

struct gw_upstream {
    const struct gw_upstream_config *cfg;
    struct gw_tls_client *tls; /* NULL: plaintext; shared read-only by every thread */
    struct gw_target *targets;
    size_t ntargets;
    _Atomic uint64_t rr;
    pthread_mutex_t lock; /* weighted balancing */
};

/* pool.c. Main thread: an empty pool for up to max_idle idle and
 * max_active busy connections; 0 or -ENOMEM. */
int gw__pool_init(struct gw__pool *p, uint32_t max_idle, uint32_t max_active);
/* Main thread, nothing checked out: closes the idle connections. Safe on a
 * pool whose init failed or never ran (zeroed). */
void gw__pool_done(struct gw__pool *p);
/* Any thread, never blocks for long: busy and idle connections now. */
void gw__pool_counts(struct gw__pool *p, uint32_t *active, size_t *idle);
/* A new connection to t, through TLS when its upstream has it, all within
 * timeout_ms: 0 with *out, or -ETIMEDOUT, -EPROTO (the TLS handshake
 * failed: the server's certificate did not verify, no common version...;
 * logged, at most once a second per target), -errno; on failure a one-line
 * reason in why (when not NULL) for the target's last_error. Process
 * context; counts nothing against the pool (gw__conn_checkout does). */
int gw__target_connect(struct gw_target *t, uint32_t timeout_ms, struct gw__transport **out,
                       char *why, size_t whylen);

#endif
