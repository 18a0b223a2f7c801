/*
 * redis.h: the policies' Redis client, for counters shared by gateway
 * replicas (rate_limit's "mode": "redis").
 *
 * One process, registered as GW_REDIS_NAME under the supervisor
 * "redis_sup" (a child of tandem_sup when tandem.json has
 * "policies": {"redis": {...}}), owns one connection to Redis, driven
 * through hiredis's asynchronous interface on the runtime's I/O: the
 * process parks on the socket (rt_poll) and on its mailbox at once. A
 * request process calls it and parks until the answer or its timeout; the
 * client pipelines every request that arrives while others are in flight.
 * See gateway/src/policy/README.md, "Redis".
 */
#ifndef GW_POLICY_REDIS_H
#define GW_POLICY_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/config.h"
#include "rt/rt.h"

/* The connection process's registered name. */
#define GW_REDIS_NAME "gw_redis"
/* A caller's key of up to GW_REDIS_KEY_MAX bytes is sent as it is, after
 * GW_REDIS_KEY_PREFIX; a longer one (a header's value, say) as the hex
 * SHA-256 of its bytes after GW_REDIS_HASH_PREFIX, so that Redis's memory
 * and each message stay small whatever a client sends. The two prefixes
 * differ: a short key never names a long one's window. */
#define GW_REDIS_KEY_MAX 256
#define GW_REDIS_KEY_PREFIX "tandem:rl:"
#define GW_REDIS_HASH_PREFIX "tandem:rl#"
/* Commands in flight on the connection at most; beyond, a call fails at
 * once (-EAGAIN) rather than queue behind a Redis that does not keep up. */
#define GW_REDIS_MAX_INFLIGHT 16384
/* Reconnection backoff: the first retry after about GW_REDIS_BACKOFF_MIN_MS,
 * doubling per failed attempt up to GW_REDIS_BACKOFF_MAX_MS. */
#define GW_REDIS_BACKOFF_MIN_MS 50
#define GW_REDIS_BACKOFF_MAX_MS 2000

/* Counts one hit of the fixed window `key` (key_len bytes, any bytes, at
 * least one) of window_ms milliseconds, in one round
 * trip (a Lua script: INCR, PEXPIRE on the window's first hit, PTTL), and
 * writes the hits counted in this window, this one included, to *count
 * and the milliseconds until the window ends to *reset_ms. Every hit
 * counts, refused ones too (the caller compares *count with its `limit`,
 * which must be at least 1 and is not sent).
 *
 * Process context (a request process); parks up to the configured
 * timeout_ms. Returns 0; -EINVAL for a bad key or window; -ENOTCONN when
 * Redis is not configured or not connected (at once, no wait); -ETIMEDOUT
 * when no answer came in time; -EAGAIN when too many calls are in flight;
 * -ECONNRESET when the connection was lost with the call in flight;
 * -EPROTO when Redis answered with an error. On every error the caller
 * applies its own policy (on_redis_error). */
int gw_redis_ratelimit(const char *key, size_t key_len, uint32_t limit, uint32_t window_ms,
                       uint32_t *count, uint32_t *reset_ms);

/* tandem_sup's child start function: starts the "redis_sup" supervisor
 * and its connection process for `arg`, a const struct gw_redis_config *
 * that must stay valid as long as the supervisor may restart it (the
 * gateway's configuration). Never waits for Redis: the connection is made
 * after the start, and remade, with backoff, whenever it is lost. */
int gw_redis_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                       rt_atom *reason);

/* ---- internals, for the unit tests ---------------------------------------- */

struct redisReply;

/* The script's answer, {count, pttl}: 0 with *count and *reset_ms (counts
 * above UINT32_MAX read as UINT32_MAX; a negative pttl as 0); -ENOENT for
 * a NOSCRIPT error (the script must be sent whole); -EPROTO for any other
 * error or shape. */
int gw__redis_parse_window(const struct redisReply *r, uint32_t *count, uint32_t *reset_ms);

/* The wait before reconnection attempt number `failures` (consecutive
 * failures so far, >= 1): "equal jitter", between half and all of
 * min(GW_REDIS_BACKOFF_MIN_MS << (failures - 1), GW_REDIS_BACKOFF_MAX_MS),
 * placed by `rnd` (any 32-bit value). */
uint32_t gw__redis_backoff_ms(unsigned failures, uint32_t rnd);

/* The rate-limit script (its SHA-1 is what SCRIPT LOAD answers). */
extern const char gw__redis_script[];

#endif
