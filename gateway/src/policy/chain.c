/*
 * chain.c: a route's policies, run in the request process (policy.h).
 *
 * The chain was resolved when the table was loaded (table.c): here it is
 * only walked, in order, until a policy answers; that answer (rq->answer,
 * req.c) is written here, through the exchange. Once every policy let the
 * request go on, the authenticated consumer is written for the upstream
 * (the configured consumer field and the consumer's own headers). What a
 * policy adds for the answer (rq->resp) goes on every answer of the
 * request, the gateway's own (exchange.c, through ex->pol) and the relayed
 * one (proxy.c).
 */
#include <errno.h>
#include <string.h>

#include "../exchange.h"
#include "route/route.h"
#include "set_int.h"
#include "table.h"

/* The consumer's fields for the upstream: the configured field naming it
 * (its name, or the subject an authentication policy set alone), then its
 * own headers. */
static bool consumer_fields(struct gw_pol_req *rq)
{
    const char *field = gw__pol_set_consumer_field(gw_pol_table_set(rq->table));
    const char *who = rq->consumer ? rq->consumer->name : rq->subject;
    if (field && who && !gw_pol_up_add(rq, field, who))
        return false;
    for (size_t i = 0; rq->consumer && i < rq->consumer->nheaders; i++)
        if (!gw_pol_up_add(rq, rq->consumer->headers[i].name, rq->consumer->headers[i].value))
            return false;
    return true;
}

/* Writes the answer a policy gave. A body left unread closes the
 * connection after the answer, as for every error answer before the body
 * is read. */
static int answer(struct gw_pol_req *rq)
{
    struct gw__exchange *ex = rq->ex;
    const struct gw_pol_answer *a = &rq->answer;
    bool keep = ex->keep_alive && ex->head->framing == GW_HTTP_BODY_NONE;
    if (!a->status)
        gw__ex_error(ex, 500, "a policy answered nothing", false);
    else
        gw__ex_error_fields(ex, a->status, a->message, keep, a->fields, a->nfields);
    return GW_POL_ANSWERED;
}

int gw__policy_chain(struct gw_pol_req *rq)
{
    const struct gw_pol_def *const *chain = gw__pol_table_chain(rq->table, rq->route);
    rq->ex->pol = rq;
    for (size_t i = 0; chain && i < rq->route->npolicies; i++)
        if (chain[i]->kind->run(chain[i]->state, rq) != GW_POL_NEXT)
            return answer(rq);
    if (!consumer_fields(rq)) {
        gw_pol_refuse(rq, 500, "too many fields for the upstream", NULL, 0);
        return answer(rq);
    }
    return GW_POL_NEXT;
}
