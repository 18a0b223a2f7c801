/*
 * stats.c: handshake counters, server (listeners) and client (upstreams)
 * side; the admin API's /metrics renders them.
 *
 * Relaxed atomics throughout: each counter is read alone and publishes
 * nothing else.
 */
#include <stdatomic.h>

#include "tls.h"

static _Atomic uint64_t handshakes[2][2];               /* [server][resumed] */
static _Atomic uint64_t failures[2][GW_TLS_FAIL_KINDS]; /* [server][why] */

static const char *const fail_names[GW_TLS_FAIL_KINDS] = {
    [GW_TLS_FAIL_TIMEOUT] = "timeout",         [GW_TLS_FAIL_CLOSED] = "closed",
    [GW_TLS_FAIL_PLAINTEXT] = "plaintext",     [GW_TLS_FAIL_VERSION] = "version",
    [GW_TLS_FAIL_CIPHER] = "cipher",           [GW_TLS_FAIL_UNKNOWN_NAME] = "unknown_name",
    [GW_TLS_FAIL_CLIENT_CERT] = "client_cert", [GW_TLS_FAIL_VERIFY] = "verify",
    [GW_TLS_FAIL_PROTOCOL] = "protocol",
};

const char *gw_tls_fail_name(enum gw_tls_fail f)
{
    return (unsigned)f < GW_TLS_FAIL_KINDS ? fail_names[f] : "protocol";
}

void gw_tls_count_failure(bool server, enum gw_tls_fail why)
{
    if ((unsigned)why >= GW_TLS_FAIL_KINDS)
        why = GW_TLS_FAIL_PROTOCOL;
    atomic_fetch_add_explicit(&failures[server][why], 1, memory_order_relaxed);
}

uint64_t gw_tls_failures(bool server, enum gw_tls_fail why)
{
    if ((unsigned)why >= GW_TLS_FAIL_KINDS)
        return 0;
    return atomic_load_explicit(&failures[server][why], memory_order_relaxed);
}

void gw_tls_count_handshake(bool server, bool resumed)
{
    atomic_fetch_add_explicit(&handshakes[server][resumed], 1, memory_order_relaxed);
}

uint64_t gw_tls_handshakes(bool server, bool resumed)
{
    return atomic_load_explicit(&handshakes[server][resumed], memory_order_relaxed);
}
