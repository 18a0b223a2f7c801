/*
 * ratelimit.h: the counters of the rate_limit and concurrency kinds, apart
 * from the request path so that unit tests drive them with their own clock
 * and threads.
 *
 * Rate limits count in "spaces": one per (policy name, counting identity),
 * found again by a reload that compiles the same definition, so counts
 * survive reloads (ratelimit_table.c). A space holds one sliding window per
 * key in a bounded table of GW_RL_STRIPES stripes, each a lock, a hash and a
 * least-recently-used list; a check locks only its key's stripe, for the
 * few arithmetic operations below, and never goes through a process.
 *
 * The window (gw__rl_window_take): a sliding-window approximation over
 * fixed windows anchored at the key's first request. The count a request
 * sees is prev * (W - e) / W + cur, with cur the requests allowed in the
 * current window, prev those of the one before, e the time elapsed in the
 * current window; the request is allowed when that count is below the
 * limit. Integer arithmetic only: prev * (W - e) + cur * W < limit * W.
 */
#ifndef GW_POLICY_RATELIMIT_H
#define GW_POLICY_RATELIMIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

#define GW_RL_LIMIT_MAX 1000000u       /* requests per window */
#define GW_RL_WINDOW_S_MAX 86400u      /* a day */
#define GW_RL_MAX_KEYS_MAX 10000000u   /* keys per policy */
#define GW_RL_MAX_KEYS_DEFAULT 100000u /* keys per policy */
#define GW_RL_KEY_MAX 256              /* key bytes stored as they are; longer: a digest */
#define GW_RL_STRIPES 64

/* One key's windows. */
struct gw__rl_window {
    uint64_t anchor_ms; /* the first request's time: windows start at anchor + k * W */
    uint64_t seq;       /* the window `cur` counts */
    uint32_t prev, cur;
};

/* What a check decided and what the answer's fields say. */
struct gw__rl_result {
    bool allowed;
    bool table_full;    /* refused because the key table was full */
    uint32_t remaining; /* requests still allowed now (RateLimit r) */
    uint32_t reset_s;   /* seconds until the current window ends (RateLimit t) */
    uint32_t retry_ms;  /* refused: the earliest a request would pass */
    uint32_t prev, cur; /* the window counts after the check */
};

/* Pure. Starts `w` at now (anchor). */
void gw__rl_window_init(struct gw__rl_window *w, uint64_t now_ms);
/* Pure. Counts a request at now_ms against `limit` per `window_ms`: moves
 * the window forward, allows (and counts) the request or refuses it (and
 * does not count it), fills *r. A time earlier than the window the counts
 * are in (another thread read the clock first) counts at that window's
 * start. */
bool gw__rl_window_take(struct gw__rl_window *w, uint32_t limit, uint32_t window_ms,
                        uint64_t now_ms, struct gw__rl_result *r);
/* Pure. What a request at now_ms would see, without counting it. */
void gw__rl_window_peek(const struct gw__rl_window *w, uint32_t limit, uint32_t window_ms,
                        uint64_t now_ms, struct gw__rl_result *r);
/* Pure. True when nothing counted in `w` still weighs at now_ms (both its
 * windows are over): the entry can go without changing any answer. */
bool gw__rl_window_expired(const struct gw__rl_window *w, uint32_t window_ms, uint64_t now_ms);

/* What a rate_limit policy counts by. */
enum gw__rl_by { GW_RL_BY_ROUTE, GW_RL_BY_CONSUMER, GW_RL_BY_CLIENT, GW_RL_BY_HEADER };

/* Pure (ratelimit_key.c). The key request `rq` counts under for a policy
 * counting `by` (`header`: the field name for GW_RL_BY_HEADER): returns its
 * bytes (valid while rq's head, route and consumer are) with their length
 * in *len, and in *prefix the byte that keeps kinds of keys apart in one
 * table: 'r' a route name, 'c' a consumer (or a token's subject), 'a' a
 * client address, 'h' a header value. `by` consumer without one counts by
 * client address; `by` header without the field counts under the empty
 * value (one count for all such requests). */
const char *gw__rl_request_key(enum gw__rl_by by, const char *header, const struct gw_pol_req *rq,
                               char *prefix, size_t *len);

struct gw__rl_space;

/* Any thread, not the hot path (a registry lock). The space of policy
 * `name` with counting identity `identity` (the definition's window, key
 * choice and bound, as a string): the existing one, with a new reference,
 * or a new one. 0 or -ENOMEM. */
int gw__rl_space_get(const char *name, const char *identity, uint32_t window_ms, uint32_t max_keys,
                     struct gw__rl_space **out);
/* Any thread. Drops a reference; the last one frees the space. NULL-safe. */
void gw__rl_space_put(struct gw__rl_space *s);

/* Any thread, never parks: counts a request of key (`prefix`, then `len`
 * bytes at `key`, any bytes) at now_ms. 0 with *r filled; -ENOMEM when a new key could not be
 * stored (*r then says refused). A new key when the table holds max_keys
 * keys and none has expired is refused: r->table_full. */
int gw__rl_check(struct gw__rl_space *s, char prefix, const char *key, size_t len, uint32_t limit,
                 uint64_t now_ms, struct gw__rl_result *r);
/* Any thread. What `key` would see now, without counting; false when the
 * table has no entry for it (a key never seen, or evicted). */
bool gw__rl_peek(struct gw__rl_space *s, char prefix, const char *key, size_t len, uint32_t limit,
                 uint64_t now_ms, struct gw__rl_result *r);

struct gw__rl_stats {
    uint64_t keys;    /* entries held now */
    uint64_t evicted; /* entries dropped because their windows were over */
    uint64_t full;    /* new keys refused because the table was full */
};
void gw__rl_space_stats(struct gw__rl_space *s, struct gw__rl_stats *out);

/* The kinds (kinds.c lists them). */
extern const struct gw_pol_kind gw__pol_kind_rate_limit;
extern const struct gw_pol_kind gw__pol_kind_concurrency;

/* Request process or admin API (any process): a rate_limit policy's state
 * for `key` (as the policy's `by` names it: a route name, a consumer name,
 * a client address, a header value): {"policy", "key", "limit",
 * "window_s", "mode", "present", "count", "previous", "remaining",
 * "reset_s"} plus the policy's table figures. NULL when `def` is not a
 * rate_limit policy, or out of memory. The caller owns the result. */
json_t *gw_pol_rate_state(const struct gw_pol_def *def, const char *key);

#endif
