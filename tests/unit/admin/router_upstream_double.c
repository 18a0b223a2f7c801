/*
 * router_upstream_double.c: TEST DOUBLE of the router (gw/router.h) and of
 * the upstream pools' description (gw/upstream.h) for the admin API's unit
 * tests. Not the real modules: every function answers fixed structs, so
 * the tests can assert the JSON the admin handlers render from them, and
 * records its arguments.
 *
 *   gw_router_reload      -EINVAL with one positioned error and one warning
 *   gw_router_replace     0, records the text it was given
 *   gw_router_validate    -EINVAL when the text is "bad", -ETIMEDOUT (the router
 *                         did not answer within its deadline) for "slow", else 0
 *   gw_router_rollback    0 for versions 1..10 (recorded), else -ENOENT
 *   gw_router_status      two versions kept, the last reload, counters
 *   gw_router_kept_get    version 3 with t_double_kept_table (when set),
 *                         -ETIMEDOUT for 9, else -ENOENT
 *   gw_upstreams_describe one upstream "demo" with two targets (as structs)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_double.h"
#include "gw/router.h"
#include "gw/upstream.h"
#include "route/route.h"

char t_double_replaced[256];
uint64_t t_double_rollback;
struct route_table *t_double_kept_table;

/* An outcome on the heap, as the router hands it over. */
static struct gw_router_outcome *outcome(bool ok, uint64_t version, size_t routes)
{
    struct gw_router_outcome *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->ok = ok;
    o->version = version;
    o->routes = routes;
    jpos_diags_init(&o->diags);
    return o;
}

int gw_router_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    return -ENOSYS;
}

void gw_router_reload_async(const char *source) {}

int gw_router_reload(const char *source, struct gw_router_outcome **out)
{
    struct gw_router_outcome *o = outcome(false, 4, 2);
    if (!o)
        return -ENOMEM;
    jpos_diag_add(&o->diags, JPOS_DIAG_ERROR, "routes/a.json", 3, 7, "$.routes[0]",
                  "unknown upstream \"nope\"");
    jpos_diag_add(&o->diags, JPOS_DIAG_WARNING, "routes/a.json", 9, 1, "$.routes[1]",
                  "shadowed by \"users\"");
    *out = o;
    return -EINVAL;
}

int gw_router_replace(const char *text, size_t len, struct gw_router_outcome **out)
{
    snprintf(t_double_replaced, sizeof t_double_replaced, "%.*s", (int)len, text);
    *out = outcome(true, 5, 1);
    return *out ? 0 : -ENOMEM;
}

int gw_router_validate(const char *text, size_t len, struct gw_router_outcome **out)
{
    if (len == 3 && memcmp(text, "bad", 3) == 0) {
        struct gw_router_outcome *o = outcome(false, 4, 0);
        if (!o)
            return -ENOMEM;
        jpos_diag_add(&o->diags, JPOS_DIAG_ERROR, "<body>", 1, 1, "$", "not JSON");
        *out = o;
        return -EINVAL;
    }
    if (len == 4 && memcmp(text, "slow", 4) == 0) {
        *out = NULL;
        return -ETIMEDOUT;
    }
    *out = outcome(true, 4, 1);
    return *out ? 0 : -ENOMEM;
}

int gw_router_rollback(uint64_t version, struct gw_router_outcome **out)
{
    *out = NULL;
    if (version < 1 || version > 10)
        return -ENOENT;
    t_double_rollback = version;
    *out = outcome(true, version, 2);
    return *out ? 0 : -ENOMEM;
}

void gw_router_outcome_free(struct gw_router_outcome *o)
{
    if (!o)
        return;
    jpos_diags_done(&o->diags);
    free(o);
}

int gw_router_status(struct gw_router_status **out)
{
    struct gw_router_status *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->versions[0] = (struct gw_router_version){
        .version = 4, .routes = 2, .source = "inotify", .published_at = "2026-01-02T03:04:05.678Z"};
    s->versions[1] = (struct gw_router_version){
        .version = 3, .routes = 1, .source = "config", .published_at = "2026-01-02T03:00:00.000Z"};
    s->nversions = 2;
    s->has_last_reload = true;
    s->last_reload = (struct gw_router_reload){.outcome = {.ok = true, .version = 4, .routes = 2},
                                               .time = "2026-01-02T03:04:05.600Z",
                                               .source = "inotify",
                                               .duration_ms = 1.5};
    jpos_diags_init(&s->last_reload.outcome.diags);
    s->reloads_ok = 7;
    s->reloads_failed = 2;
    s->retired = 1;
    *out = s;
    return 0;
}

void gw_router_status_free(struct gw_router_status *s)
{
    if (!s)
        return;
    jpos_diags_done(&s->last_reload.outcome.diags);
    free(s);
}

int gw_router_kept_get(uint64_t version, struct gw_router_kept **out)
{
    if (version == 9)
        return -ETIMEDOUT;
    if (version != 3 || !t_double_kept_table)
        return -ENOENT;
    struct gw_router_kept *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->meta = (struct gw_router_version){
        .version = 3, .routes = 1, .source = "config", .published_at = "2026-01-02T03:00:00.000Z"};
    k->table = route_table_ref(t_double_kept_table);
    *out = k;
    return 0;
}

void gw_router_kept_free(struct gw_router_kept *k)
{
    if (!k)
        return;
    route_table_unref(k->table);
    free(k);
}

void gw_router_counts(struct gw_router_counts *out)
{
    out->reloads_ok = 7;
    out->reloads_failed = 2;
    out->version = 4;
}

static const struct gw_target_desc demo_targets[2] = {
    {.address = "127.0.0.1:9000",
     .weight = 1,
     .healthy = true,
     .active = 2,
     .idle = 3,
     .requests = 10},
    {.address = "127.0.0.1:9001",
     .weight = 1,
     .healthy = false,
     .ejected_until_ms = 123,
     .consecutive_failures = 5,
     .requests = 4,
     .failures = 5,
     .ejections = 1,
     .last_error = "connect: \"refused\""},
};

int gw_upstreams_describe(struct gw_upstreams_desc **out)
{
    struct gw_upstreams_desc *d = calloc(1, sizeof(*d) + sizeof(d->ups[0]));
    if (!d)
        return -ENOMEM;
    d->ups = (struct gw_upstream_desc *)(d + 1);
    d->n = 1;
    d->ups[0] = (struct gw_upstream_desc){
        .name = "demo", .balance = GW_BALANCE_LEAST_CONN, .targets = demo_targets, .ntargets = 2};
    *out = d;
    return 0;
}

void gw_upstreams_desc_free(struct gw_upstreams_desc *d)
{
    free(d);
}
