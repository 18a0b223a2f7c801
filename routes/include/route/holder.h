/*
 * holder.h: publication of route tables to the hot path.
 *
 * A holder has one current table. One writer (the router) publishes a new
 * table with a single atomic exchange; request handlers on any thread
 * acquire the current table, match against it for as long as the request
 * lives (seconds, or hours for a tunnelled WebSocket), and release it. A
 * request keeps the table it started with across any number of publishes;
 * an old table is freed only once no handler holds it.
 *
 * How (details in routes/src/holder.c): acquiring announces the table in a
 * per-thread hazard slot for the few instructions between reading the
 * current pointer and counting the reader in, so the writer can see a reader
 * that is about to count itself in; the reader count of a table is
 * distributed over ROUTE_HOLDER_SLOTS cache lines indexed by thread, so
 * handlers on different threads do not write the same cache line. Replaced
 * tables wait on the writer's retired list until their reader count is zero
 * and no hazard slot names them; the writer frees them in
 * route_holder_reclaim, which route_holder_publish also runs.
 *
 * Costs on the hot path: acquire is two loads, two stores to the thread's own
 * cache line (one of them sequentially consistent, i.e. a full barrier) and
 * one atomic add on the thread's own counter line; release is one atomic
 * subtract. Neither blocks nor allocates. A thread's first acquire claims a
 * hazard record from a static array of 1024 (given back when the thread
 * exits); more than 1024 threads using tables at once aborts.
 */
#ifndef ROUTE_HOLDER_H
#define ROUTE_HOLDER_H

#include <stddef.h>
#include <stdint.h>

#include "route/route.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ROUTE_HOLDER_SLOTS 16

struct route_holder;

/* A holder with no table (acquire returns NULL until the first publish).
 * Returns 0 or -ENOMEM. */
int route_holder_new(struct route_holder **out);

/* Frees the holder, its current table and every retired one. The caller
 * guarantees that no handler can acquire from it any more and that every
 * table acquired from it has been released. NULL-safe. */
void route_holder_free(struct route_holder *h);

/* Makes `t` current and takes over the caller's reference to it. If `t` has
 * version 0 it is given the next version number (1, 2, ...); a table
 * published again (a rollback) keeps its version. The replaced table is
 * retired, then route_holder_reclaim runs. Returns the new table's version.
 * Writer only: one thread (or process) at a time. Never blocks. */
uint64_t route_holder_publish(struct route_holder *h, struct route_table *t);

/* Frees retired tables that nothing holds any more. Returns how many retired
 * tables are still held by readers; the writer should call again later
 * (e.g. on a timer) while that is not zero. Writer only. Never blocks. */
size_t route_holder_reclaim(struct route_holder *h);

/* The current table, held for the caller until route_table_release, or NULL
 * when nothing was published. Any thread, including process context; does
 * not block or yield. A handler may hold several tables (from several
 * holders or acquires) at once. */
const struct route_table *route_holder_acquire(struct route_holder *h);

/* Releases a table returned by route_holder_acquire. Any thread (not
 * necessarily the one that acquired it). NULL-safe. */
void route_table_release(const struct route_table *t);

/* Version of the current table (0 when none). Any thread; a hint only: the
 * table may be replaced right after. */
uint64_t route_holder_version(const struct route_holder *h);

/* Retired tables not yet freed. Writer only. */
size_t route_holder_retired(const struct route_holder *h);

#ifdef __cplusplus
}
#endif

#endif
