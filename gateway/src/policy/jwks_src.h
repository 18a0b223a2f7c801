/*
 * jwks_src.h: what jwks_fetch.c (the sources, with the configuration) and
 * jwks_fetcher.c (the fetcher process, with the gateway) share: a source's
 * fields and the fetcher's message.
 */
#ifndef GW_POLICY_JWKS_SRC_H
#define GW_POLICY_JWKS_SRC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "jwt_int.h"

#define GW_JWKS_FETCH_TIMEOUT_MS 3000
#define GW_JWKS_SUP "jwks_sup"

struct gw_jwks_src {
    char *url;
    bool https;
    char host[256]; /* an IPv6 address without its brackets */
    char port[8];
    char *path;
    char *ca;             /* https: the CA bundle; NULL: the system store */
    char *server_name;    /* https: the name verified; NULL: host */
    char name[48];        /* the fetcher's registered name */
    pthread_mutex_t lock; /* guards keys, fetched_ms, error: held for copies */
    struct gw_jwks *keys;
    uint64_t fetched_ms;
    char error[192]; /* why the last fetch failed; "" when it did not */
    atomic_uint_least64_t fetches;
    /* A refresh without a waiter is queued: further ones are not sent, so
     * a stale set under load costs the fetcher one message, not one per
     * request. The time it was queued, 0 when none: one queued longer than
     * two fetches ago was lost (the fetcher died with it) and is sent
     * again. */
    atomic_uint_least64_t refresh_queued;
    /* The fetcher's own (one process at a time). */
    uint64_t attempt_ms;
    bool attempted;
};

enum { GW_JWKS_REFRESH = 1 };

struct gw_jwks_refresh_req {
    uint64_t min_interval_ms;
};

#endif
