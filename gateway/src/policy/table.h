/*
 * table.h: what a route table carries besides its routes (its one
 * attachment, route_table_attach): the workflow definitions and the policy
 * set its routes name, and each route's policy chain resolved to the set's
 * definitions, so that a request finds its chain by the route's index and
 * never looks a name up. Built where tables are loaded (config.c), read by
 * requests (the chain, workflow/http.c) and by `tandem check`.
 */
#ifndef GW_POLICY_TABLE_H
#define GW_POLICY_TABLE_H

#include "policy.h"

struct wf_set;

/* Attaches `wfs` and `pols` (the caller's references, taken over even on
 * failure; either may be NULL) to table t, before it is published, with
 * every route's chain resolved against `pols`. 0, -EINVAL (a route names a
 * policy `pols` lacks: the route loader checks names, so only a caller's
 * mistake), -ENOMEM. */
int gw__table_attach_sets(struct route_table *t, struct wf_set *wfs, struct gw_pol_set *pols);

/* The workflow definitions of table t (NULL: none). Any thread holding t. */
struct wf_set *gw__table_wf_set(const struct route_table *t);

/* Route r's chain in table t: r->npolicies definitions. Any thread
 * holding t. */
const struct gw_pol_def *const *gw__pol_table_chain(const struct route_table *t,
                                                    const struct route *r);

/* Whether route r's chain in table t holds a kind that answers CORS
 * preflights (gw_pol_kind.answers_preflight). Any thread holding t. */
bool gw__pol_table_answers_preflight(const struct route_table *t, const struct route *r);

#endif
