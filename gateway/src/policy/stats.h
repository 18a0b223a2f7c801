/*
 * stats.h: counts of requests a policy refused, by policy and reason, for
 * GET /metrics (tandem_policy_denials_total{policy,reason}). Recording is
 * stats.c's; the text is the admin API's (admin/exposition.c).
 *
 * Both labels are bounded whatever a configuration or a peer does: reasons
 * are the fixed list below (any other string counts as "other"), and at
 * most GW_POL_STATS_MAX_POLICIES distinct policy names are counted apart
 * over the gateway's life (reloads included); further names, a NULL name
 * and names longer than GW_POL_NAME_MAX count under policy="_other".
 */
#ifndef GW_POLICY_STATS_H
#define GW_POLICY_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Distinct policy names counted apart (GW_POL_MAX_POLICIES of policy.h:
 * a whole set's worth); the rest under "_other". */
#define GW_POL_STATS_MAX_POLICIES 10000
#define GW_POL_STATS_OVERFLOW "_other"

/* Why a policy refused a request. The reason label is the string beside
 * each; a part of the gateway passes that string to gw_pol_count_denial. */
enum gw_pol_denial {
    GW_POL_DENY_MISSING_CREDENTIALS = 0, /* "missing_credentials": 401, none presented */
    GW_POL_DENY_INVALID_CREDENTIALS, /* "invalid_credentials": 401, unknown key, wrong password */
    GW_POL_DENY_FORBIDDEN,           /* "forbidden": 403, a known consumer not allowed (acl) */
    GW_POL_DENY_UNAUTHENTICATED,     /* "unauthenticated": 401, acl with no consumer */
    GW_POL_DENY_RATE_LIMITED,        /* "rate_limited": 429 */
    GW_POL_DENY_CONCURRENCY,         /* "concurrency": 503, over max with no queue room */
    GW_POL_DENY_QUEUE_TIMEOUT,       /* "queue_timeout": 503, queued past queue_timeout_ms */
    GW_POL_DENY_IP_DENIED,           /* "ip_denied": 403, ip_rules */
    GW_POL_DENY_CORS_REFUSED,        /* "cors_refused": an origin, method or header refused */
    GW_POL_DENY_INVALID_TOKEN, /* "invalid_token": JWT malformed, bad signature, iss, aud, claims */
    GW_POL_DENY_EXPIRED_TOKEN, /* "expired_token": JWT exp passed (leeway included) */
    GW_POL_DENY_NOT_YET_VALID, /* "not_yet_valid": JWT nbf ahead (leeway included) */
    GW_POL_DENY_UNKNOWN_KID,   /* "unknown_kid": no key of that id, even after a refresh */
    GW_POL_DENY_KEYS_UNAVAILABLE,  /* "keys_unavailable": no JWKS loaded yet */
    GW_POL_DENY_REDIS_UNAVAILABLE, /* "redis_unavailable": on_redis_error "deny" */
    GW_POL_DENY_INTERNAL,          /* "internal": 500, e.g. a field list full */
    GW_POL_DENY_OTHER,             /* "other": any reason not listed above */
    GW_POL_DENIAL_REASONS,
};

/* Any thread, never blocks. The label of reason r ("other" when out of
 * range). */
const char *gw_pol_denial_name(enum gw_pol_denial r);
/* Any thread, never blocks. The reason named `reason` (GW_POL_DENY_OTHER
 * for NULL or a string not in the list). */
enum gw_pol_denial gw_pol_denial_find(const char *reason);

/* Any thread (the request process that refuses), never blocks: one denial
 * by policy `policy` (the definition's name) for `reason` (a label above;
 * unknown strings count as "other"). Lock-free: a hash of the name, a short
 * probe and a relaxed atomic add; the first denial of a name allocates its
 * counters once (a failed allocation counts under "_other"). */
void gw_pol_count_denial(const char *policy, const char *reason);

/* One policy's counts as gw_pol_denials_next reads them. */
struct gw_pol_denials {
    const char *name; /* valid until gw_pol_stats_reset */
    uint64_t n[GW_POL_DENIAL_REASONS];
};

/* Any thread, never blocks. The next policy with counters from *pos on
 * (start with *pos = 0; the overflow series comes last): true with *out
 * filled and *pos advanced, false when none is left. Each figure is read
 * on its own (relaxed), as a scrape expects. */
bool gw_pol_denials_next(size_t *pos, struct gw_pol_denials *out);

/* Main thread (or a test), nothing recording: forgets every count and
 * frees the counters. */
void gw_pol_stats_reset(void);

#endif
