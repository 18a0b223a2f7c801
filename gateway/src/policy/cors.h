/*
 * cors.h: the `cors` kind's decision, apart from answering, for its tests
 * (cors.c says what the kind owns).
 */
#ifndef GW_POLICY_CORS_H
#define GW_POLICY_CORS_H

#include "policy.h"

/* Longest Origin value looked at: scheme, host and port fit well within
 * it; a longer one is no origin any policy lists. */
#define GW_CORS_ORIGIN_MAX 512
/* Names in an Access-Control-Request-Headers value. */
#define GW_CORS_MAX_REQUEST_HEADERS 64

enum gw_cors_verdict {
    GW_CORS_PASS,         /* not a preflight: the chain goes on (fields added) */
    GW_CORS_PREFLIGHT_OK, /* a preflight allowed: answer 204 with rq->resp */
    GW_CORS_REFUSED,      /* a preflight from an origin, or asking for a method or
                           * headers, the policy does not allow: 403 */
    GW_CORS_FULL,         /* rq->resp had no room */
};

/* Decides request rq->head under the compiled policy `state` and adds the
 * response fields of the verdict to rq->resp. Pure but for rq. */
enum gw_cors_verdict gw__cors_eval(const void *state, struct gw_pol_req *rq);

#endif
