/*
 * table.c: the sets a route table carries (table.h). The attachment is
 * built once per table and freed with it; the sets inside are reference
 * counted, as a table replaced through the admin API shares the sets of the
 * one it replaces.
 */
#include <errno.h>
#include <stdlib.h>

#include "../workflow/def.h"
#include "route/route.h"
#include "table.h"

struct table_sets {
    struct wf_set *wf;
    struct gw_pol_set *pol;
    /* chains[route index]: npolicies entries of `defs`, or NULL */
    const struct gw_pol_def *const **chains;
    const struct gw_pol_def **defs;
};

static void sets_drop(void *p)
{
    struct table_sets *ts = p;
    wf_set_unref(ts->wf);
    gw_pol_set_unref(ts->pol);
    free(ts->chains);
    free(ts->defs);
    free(ts);
}

int gw__table_attach_sets(struct route_table *t, struct wf_set *wfs, struct gw_pol_set *pols)
{
    int r = -ENOMEM;
    struct table_sets *ts = calloc(1, sizeof(*ts));
    if (!ts)
        goto fail;
    ts->wf = wfs;
    ts->pol = pols;
    wfs = NULL;
    pols = NULL;
    size_t n = route_table_count(t), total = 0;
    for (size_t i = 0; i < n; i++)
        total += route_table_route(t, i)->npolicies;
    if (total) {
        ts->chains = calloc(n, sizeof(*ts->chains));
        ts->defs = calloc(total, sizeof(*ts->defs));
        if (!ts->chains || !ts->defs)
            goto fail;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            const struct route *rt = route_table_route(t, i);
            if (!rt->npolicies)
                continue;
            ts->chains[rt->index] = &ts->defs[k];
            for (size_t j = 0; j < rt->npolicies; j++) {
                const struct gw_pol_def *def = gw_pol_set_find(ts->pol, rt->policies[j]);
                if (!def || !def->kind) {
                    r = -EINVAL;
                    goto fail;
                }
                ts->defs[k++] = def;
            }
        }
    }
    route_table_attach(t, ts, sets_drop);
    return 0;
fail:
    if (ts)
        sets_drop(ts);
    wf_set_unref(wfs);
    gw_pol_set_unref(pols);
    return r;
}

struct wf_set *gw__table_wf_set(const struct route_table *t)
{
    const struct table_sets *ts = route_table_attachment(t);
    return ts ? ts->wf : NULL;
}

const struct gw_pol_set *gw_pol_table_set(const struct route_table *t)
{
    const struct table_sets *ts = route_table_attachment(t);
    return ts ? ts->pol : NULL;
}

const struct gw_pol_def *const *gw__pol_table_chain(const struct route_table *t,
                                                    const struct route *r)
{
    const struct table_sets *ts = route_table_attachment(t);
    return ts && ts->chains ? ts->chains[r->index] : NULL;
}

bool gw__pol_table_answers_preflight(const struct route_table *t, const struct route *r)
{
    const struct gw_pol_def *const *chain = gw__pol_table_chain(t, r);
    for (size_t i = 0; chain && i < r->npolicies; i++)
        if (chain[i]->kind->answers_preflight)
            return true;
    return false;
}
