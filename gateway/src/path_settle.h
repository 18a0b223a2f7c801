/*
 * path_settle.h: the route a request path goes to, and the path forwarded,
 * when the path holds "%2F", ";" or "%3B" (path_settle.c). Plain data over
 * the wire module and a route table: no process runtime, so the fuzz
 * targets and unit tests run it as the request process does.
 */
#ifndef GW_PATH_SETTLE_H
#define GW_PATH_SETTLE_H

#include <stddef.h>

#include "gw/http1.h"
#include "route/route.h"

/* The policy of the first pass a listener's requests are canonicalised
 * under: the listener's, with "%2F" and ";" opaque for the route to decide.
 * Any thread. */
struct gw_http_path_policy gw__path_first_policy(const struct gw_http_path_policy *lis);

/* A route's path_policy over the listener's; r may be NULL (no route). */
struct gw_http_path_policy gw__path_route_policy(const struct gw_http_path_policy *lis,
                                                 const struct route *r);

/* Settles a path whose first pass (gw__path_first_policy) held "%2F", ";"
 * or "%3B" (t->escaped_slash, t->params) and was matched into *res and *m
 * with rr->path = t->path. `target` is the request-target as received, `buf`
 * (cap at least 3 * target_len + 2 bytes) the caller's storage for a decoded
 * path. Returns:
 *   0        route on *res and *m, forward t->path (which is rr->path):
 *            the path matched is the path forwarded;
 *   1        answer a redirect to *t (the decoded target, in buf);
 *   -EINVAL  answer 400;
 *   -ENOMEM.
 * May repoint t, rr->path and m into buf. Any thread; does not block; its
 * temporaries are freed before it returns. */
int gw__path_settle(const struct gw_http_path_policy *lis, const struct route_table *table,
                    struct route_request *rr, const char *method, const char *target,
                    size_t target_len, char *buf, size_t cap, struct gw_http_target *t,
                    enum route_match_result *res, struct route_match *m);

#endif
