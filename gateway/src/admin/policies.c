/*
 * policies.c: the admin API's policy endpoints:
 *   GET /admin/policies                      every definition of the set serving now
 *   GET /admin/policies/{name}               one definition
 *   GET /admin/policies/{name}/state?key=K   a rate_limit policy's counts for key K
 *   GET /admin/consumers                     every consumer, credential kinds only
 * The set is the one published with the route table serving now (read from
 * gw.routes, held for the length of the answer), so what is shown is what
 * requests see. A definition shows its kind's describe() (which never
 * holds a secret), the routes naming it (by name: every route has one) and
 * its denials (policy/stats.h).
 * A consumer shows which kinds of credential it has and how many keys,
 * never a key hash, a basic-auth user or password record, or the value of
 * a header it sends upstream (a value may be a secret the upstream
 * checks): only the names.
 *
 * Lists are paged (?offset=N&limit=M) so that an answer stays bounded
 * whatever the set holds; the set is immutable, so an offset names the
 * same entry for as long as the same version serves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "gw/gateway.h"
#include "policy/policy.h"
#include "policy/ratelimit.h"
#include "policy/stats.h"
#include "route/holder.h"
#include "route/route.h"

/* {policy name: [route, ...]} over every route of t, each list capped at
 * GW_ADMIN_POLICY_MAX_ROUTES, with the full count in `counts`. */
static int routes_by_policy(const struct route_table *t, json_t **lists, json_t **counts)
{
    json_t *l = json_object(), *c = json_object();
    if (!l || !c)
        goto fail;
    for (size_t i = 0; t && i < route_table_count(t); i++) {
        const struct route *r = route_table_route(t, i);
        for (size_t k = 0; k < r->npolicies; k++) {
            const char *name = r->policies[k];
            json_t *n = json_object_get(c, name);
            json_int_t seen = n ? json_integer_value(n) : 0;
            if (json_object_set_new(c, name, json_integer(seen + 1)) < 0)
                goto fail;
            if (seen >= GW_ADMIN_POLICY_MAX_ROUTES)
                continue;
            json_t *a = json_object_get(l, name);
            if (!a) {
                a = json_array();
                if (!a || json_object_set_new(l, name, a) < 0)
                    goto fail;
            }
            if (json_array_append_new(a, json_string(r->name)) < 0)
                goto fail;
        }
    }
    *lists = l;
    *counts = c;
    return 0;
fail:
    json_decref(l);
    json_decref(c);
    return -ENOMEM;
}

/* {policy name: {reason: count}} of every policy with denials counted. */
static json_t *denials_by_policy(void)
{
    json_t *o = json_object();
    struct gw_pol_denials d;
    for (size_t pos = 0; o && gw_pol_denials_next(&pos, &d);) {
        json_t *r = json_object();
        for (int k = 0; r && k < GW_POL_DENIAL_REASONS; k++)
            if (d.n[k])
                json_object_set_new(r, gw_pol_denial_name((enum gw_pol_denial)k),
                                    json_integer((json_int_t)d.n[k]));
        if (!r || json_object_set_new(o, d.name, r) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *def_json(const struct gw_pol_def *def, json_t *lists, json_t *counts,
                        json_t *denials)
{
    json_t *desc = def->kind->describe ? def->kind->describe(def->state) : NULL;
    /* New references, each taken over by json_pack ("o"). */
    json_t *routes = json_incref(json_object_get(lists, def->name));
    json_t *denied = json_incref(json_object_get(denials, def->name));
    return json_pack("{s:s, s:s, s:s?, s:I, s:I, s:o, s:o, s:I, s:o}", "name", def->name, "type",
                     def->kind->type, "file", def->file, "line", (json_int_t)def->line, "column",
                     (json_int_t)def->column, "config", desc ? desc : json_object(), "routes",
                     routes ? routes : json_array(), "route_count",
                     (json_int_t)json_integer_value(json_object_get(counts, def->name)), "denials",
                     denied ? denied : json_object());
}

/* ?offset=N&limit=M (limit 1..GW_ADMIN_POLICIES_MAX_LIMIT, default
 * GW_ADMIN_POLICIES_DEFAULT_LIMIT). false after answering 400. */
static bool page_args(const struct gw_admin_request *req, struct gw_admin_response *resp,
                      size_t *offset, size_t *limit)
{
    *offset = 0;
    *limit = GW_ADMIN_POLICIES_DEFAULT_LIMIT;
    char buf[24];
    int rc = gw__admin_query(req->query, "offset", buf, sizeof buf);
    if (rc != -ENOENT) {
        char *end = NULL;
        unsigned long long v =
            rc == 0 && buf[0] >= '0' && buf[0] <= '9' ? strtoull(buf, &end, 10) : 0;
        if (!end || *end || v > SIZE_MAX) {
            gw__admin_errorf(resp, 400, "bad_request", "offset takes a non-negative integer");
            return false;
        }
        *offset = (size_t)v;
    }
    rc = gw__admin_query(req->query, "limit", buf, sizeof buf);
    if (rc != -ENOENT) {
        char *end = NULL;
        unsigned long long v =
            rc == 0 && buf[0] >= '0' && buf[0] <= '9' ? strtoull(buf, &end, 10) : 0;
        if (!end || *end || v < 1 || v > GW_ADMIN_POLICIES_MAX_LIMIT) {
            gw__admin_errorf(resp, 400, "bad_request", "limit takes an integer from 1 to %d",
                             GW_ADMIN_POLICIES_MAX_LIMIT);
            return false;
        }
        *limit = (size_t)v;
    }
    return true;
}

/* The table serving now and its set (either may be NULL); release with
 * route_table_release. */
static const struct route_table *serving(const struct gw_pol_set **set)
{
    const struct route_table *t = gw.routes ? route_holder_acquire(gw.routes) : NULL;
    *set = t ? gw_pol_table_set(t) : NULL;
    return t;
}

void gw__admin_policies(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    size_t offset, limit;
    if (!page_args(req, resp, &offset, &limit))
        return;
    const struct gw_pol_set *set = NULL;
    const struct route_table *t = serving(&set);
    json_t *lists = NULL, *counts = NULL, *denials = denials_by_policy();
    json_t *arr = json_array();
    size_t total = set ? gw_pol_set_count(set) : 0;
    if (!denials || !arr || routes_by_policy(t, &lists, &counts) < 0)
        goto oom;
    for (size_t i = offset; i < total && i - offset < limit; i++)
        if (json_array_append_new(arr, def_json(gw_pol_set_def(set, i), lists, counts, denials)) <
            0)
            goto oom;
    json_t *o =
        json_pack("{s:I, s:I, s:I, s:I, s:o}", "version",
                  (json_int_t)(t ? route_table_version(t) : 0), "count", (json_int_t)total,
                  "offset", (json_int_t)offset, "limit", (json_int_t)limit, "policies", arr);
    arr = NULL;
    route_table_release(t);
    json_decref(lists);
    json_decref(counts);
    json_decref(denials);
    gw__admin_json(resp, 200, o);
    return;
oom:
    route_table_release(t);
    json_decref(arr);
    json_decref(lists);
    json_decref(counts);
    json_decref(denials);
    gw__admin_json(resp, 503, NULL); /* the out-of-memory answer */
}

static void policy_not_found(struct gw_admin_response *resp, const char *name)
{
    gw__admin_error(resp, 404, "policy_not_found", json_pack("{s:s}", "name", name));
}

void gw__admin_policy(const struct gw_admin_request *req, struct gw_admin_response *resp,
                      const char *name)
{
    const struct gw_pol_set *set = NULL;
    const struct route_table *t = serving(&set);
    const struct gw_pol_def *def = set ? gw_pol_set_find(set, name) : NULL;
    if (!def) {
        route_table_release(t);
        policy_not_found(resp, name);
        return;
    }
    json_t *lists = NULL, *counts = NULL, *denials = denials_by_policy();
    json_t *o = NULL;
    if (denials && routes_by_policy(t, &lists, &counts) == 0)
        o = def_json(def, lists, counts, denials);
    route_table_release(t);
    json_decref(lists);
    json_decref(counts);
    json_decref(denials);
    gw__admin_json(resp, 200, o);
}

void gw__admin_policy_state(const struct gw_admin_request *req, struct gw_admin_response *resp,
                            const char *name)
{
    /* A key is a route or consumer name, an address or a header value: a
     * header value's bound is the longest. */
    char key[GW_ADMIN_POLICY_MAX_KEY + 1];
    int rc = gw__admin_query(req->query, "key", key, sizeof key);
    if (rc < 0) {
        gw__admin_errorf(resp, 400, "bad_request",
                         rc == -ENOENT ? "the key to show is required: ?key=K"
                                       : "key is malformed or longer than %d bytes",
                         GW_ADMIN_POLICY_MAX_KEY);
        return;
    }
    const struct gw_pol_set *set = NULL;
    const struct route_table *t = serving(&set);
    const struct gw_pol_def *def = set ? gw_pol_set_find(set, name) : NULL;
    if (!def) {
        route_table_release(t);
        policy_not_found(resp, name);
        return;
    }
    if (strcmp(def->kind->type, "rate_limit") != 0) {
        gw__admin_error(resp, 409, "not_a_rate_limit",
                        json_pack("{s:s, s:s, s:s}", "name", name, "type", def->kind->type,
                                  "message", "only a rate_limit policy has per-key state"));
        route_table_release(t);
        return;
    }
    json_t *state = gw_pol_rate_state(def, key);
    route_table_release(t);
    gw__admin_json(resp, 200, state);
}

static json_t *consumer_json(const struct gw_pol_consumer *c)
{
    json_t *kinds = json_array(), *headers = json_array();
    if (c->napi_keys)
        json_array_append_new(kinds, json_string("api_key"));
    if (c->basic_user)
        json_array_append_new(kinds, json_string("basic"));
    for (size_t i = 0; headers && i < c->nheaders; i++)
        json_array_append_new(headers, json_string(c->headers[i].name));
    return json_pack("{s:s, s:s?, s:I, s:I, s:o, s:I, s:o}", "name", c->name, "file", c->file,
                     "line", (json_int_t)c->line, "column", (json_int_t)c->column, "credentials",
                     kinds, "api_keys", (json_int_t)c->napi_keys, "headers", headers);
}

void gw__admin_consumers(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    size_t offset, limit;
    if (!page_args(req, resp, &offset, &limit))
        return;
    const struct gw_pol_set *set = NULL;
    const struct route_table *t = serving(&set);
    size_t total = set ? gw_pol_set_nconsumers(set) : 0;
    json_t *arr = json_array();
    for (size_t i = offset; arr && i < total && i - offset < limit; i++)
        if (json_array_append_new(arr, consumer_json(gw_pol_set_consumer(set, i))) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    json_t *o =
        arr ? json_pack("{s:I, s:I, s:I, s:I, s:o}", "version",
                        (json_int_t)(t ? route_table_version(t) : 0), "count", (json_int_t)total,
                        "offset", (json_int_t)offset, "limit", (json_int_t)limit, "consumers", arr)
            : NULL;
    route_table_release(t);
    gw__admin_json(resp, 200, o);
}
