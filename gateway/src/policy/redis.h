/*
 * redis.h: the policies' Redis client, for counters shared by gateway
 * replicas (rate_limit's "mode": "redis"). The client itself is redis.c's;
 * this declares what the rate_limit kind calls.
 */
#ifndef GW_POLICY_REDIS_H
#define GW_POLICY_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Counts one hit of the fixed window `key` (key_len bytes) of window_ms
 * milliseconds in one atomic round trip and writes the hits counted in this
 * window, this one included, to *count and the milliseconds until the
 * window ends to *reset_ms. Process context; parks. 0, or -errno when Redis
 * is unreachable or slow (the caller applies on_redis_error). */
int gw_redis_ratelimit(const char *key, size_t key_len, uint32_t limit, uint32_t window_ms,
                       uint32_t *count, uint32_t *reset_ms);

#endif
