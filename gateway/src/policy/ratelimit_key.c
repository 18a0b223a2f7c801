/*
 * ratelimit_key.c: which key a request counts under for a rate_limit
 * policy (ratelimit.h, gw__rl_request_key). Plain data, no runtime.
 */
#include <string.h>

#include "policy/ratelimit.h"
#include "route/route.h"

const char *gw__rl_request_key(enum gw__rl_by by, const char *header, const struct gw_pol_req *rq,
                               char *prefix, size_t *len)
{
    const char *k = "";
    switch (by) {
    case GW_RL_BY_ROUTE:
        k = rq->route ? rq->route->name : "";
        *prefix = 'r';
        break;
    case GW_RL_BY_CONSUMER:
        if (rq->consumer || rq->subject) {
            k = rq->consumer ? rq->consumer->name : rq->subject;
            *prefix = 'c';
            break;
        }
        /* No one authenticated: each client address has its own count, so
         * anonymous traffic neither shares one quota nor goes unlimited. */
        __attribute__((fallthrough));
    case GW_RL_BY_CLIENT:
        k = rq->client ? rq->client : "";
        *prefix = 'a';
        break;
    case GW_RL_BY_HEADER:
        *prefix = 'h';
        k = rq->head && header ? gw_http_head_get(rq->head, header, len) : NULL;
        if (!k) {
            /* Requests without the field share one count: leaving it out
             * is not a way around the limit. */
            *len = 0;
            return "";
        }
        return k;
    }
    *len = strlen(k);
    return k;
}
