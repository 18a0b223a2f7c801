/*
 * req.c: what a policy does to its request's chain state (policy.h): fields
 * for the upstream and for the answer, and its own answer, recorded for the
 * chain to write. Plain data, so that kinds link (and are tested) without
 * the exchange.
 */
#include <stdio.h>
#include <string.h>

#include "policy.h"

bool gw_pol_up_add(struct gw_pol_req *rq, const char *name, const char *value)
{
    if (rq->nup == GW_POL_MAX_FIELDS)
        return false;
    rq->up[rq->nup++] = (struct gw_http_kv){name, value};
    return true;
}

bool gw_pol_resp_add(struct gw_pol_req *rq, const char *name, const char *value)
{
    if (rq->nresp == GW_POL_MAX_FIELDS)
        return false;
    rq->resp[rq->nresp++] = (struct gw_http_kv){name, value};
    return true;
}

/* Copies s into a's store; NULL when it does not fit. */
static const char *keep(struct gw_pol_answer *a, size_t *used, const char *s)
{
    size_t n = strlen(s) + 1;
    if (n > sizeof a->store - *used)
        return NULL;
    char *c = a->store + *used;
    memcpy(c, s, n);
    *used += n;
    return c;
}

int gw_pol_refuse(struct gw_pol_req *rq, int status, const char *message,
                  const struct gw_http_kv *extra, size_t nextra)
{
    struct gw_pol_answer *a = &rq->answer;
    a->status = status;
    snprintf(a->message, sizeof a->message, "%s", message ? message : "");
    a->nfields = 0;
    size_t used = 0;
    for (size_t i = 0; i < nextra && a->nfields < GW_POL_MAX_ANSWER_FIELDS; i++) {
        const char *n = keep(a, &used, extra[i].name);
        const char *v = n ? keep(a, &used, extra[i].value) : NULL;
        if (v)
            a->fields[a->nfields++] = (struct gw_http_kv){n, v};
    }
    return GW_POL_ANSWERED;
}
