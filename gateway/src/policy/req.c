/*
 * req.c: what a policy does to its request's chain state (policy.h): fields
 * for the upstream and for the answer, and its own answer, recorded for the
 * chain to write. Plain data, so that kinds link (and are tested) without
 * the exchange.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "set_int.h"

_Static_assert(GW_HTTP_MAX_CERT_FIELDS + GW_POL_MAX_FIELDS + GW_POL_MAX_OWNED <= GW_HTTP_MAX_OWNED,
               "a forwarded request has room for every owned field");

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

char *gw_pol_req_text(struct gw_pol_req *rq, size_t n)
{
    if (n > sizeof rq->text - rq->ntext)
        return NULL;
    char *p = rq->text + rq->ntext;
    rq->ntext += n;
    return p;
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

size_t gw__pol_owned_fields(const struct gw_pol_req *rq, const struct gw_pol_set *pols,
                            struct gw_http_kv *out, size_t n, size_t cap)
{
    for (size_t i = 0; rq && i < rq->nup && n < cap; i++)
        out[n++] = rq->up[i];
    size_t nown;
    const char *const *own = gw_pol_set_owned(pols, &nown);
    for (size_t i = 0; i < nown; i++) {
        bool have = false;
        /* The consumer's field is the set's own string: the same pointer. */
        for (size_t k = 0; k < n && !have; k++)
            have = out[k].name == own[i] || strcasecmp(out[k].name, own[i]) == 0;
        /* policy.h bounds the set's names and a chain's fields below the
         * wire module's GW_HTTP_MAX_OWNED */
        if (!have && n < cap)
            out[n++] = (struct gw_http_kv){own[i], NULL};
    }
    return n;
}

void gw__pol_resp_split(const struct gw_http_kv *f, size_t n, struct gw_http_kv *set, size_t *nset,
                        struct gw_http_kv *add, size_t *nadd)
{
    for (size_t i = 0; i < n; i++) {
        if (gw__pol_is_vary(f[i].name))
            add[(*nadd)++] = f[i];
        else
            set[(*nset)++] = f[i];
    }
}
