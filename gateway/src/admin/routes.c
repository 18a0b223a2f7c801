/*
 * routes.c: the admin API's route endpoints: GET and PUT /admin/routes,
 * GET /admin/routes/versions/{N}, POST /admin/routes/reload, /validate and
 * /rollback. The router answers
 * with structs (gw/router.h) and the table is read from gw.routes; the
 * JSON is written here, in the member order the API has always had.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "gw/gateway.h"
#include "gw/router.h"
#include "route/holder.h"
#include "route/route.h"

/* {file, line, column, path, message} for each diagnostic of `level`. */
static json_t *diags_json(const struct jpos_diags *d, enum jpos_diag_level level)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < d->n; i++) {
        const struct jpos_diag *g = &d->items[i];
        if (g->level != level)
            continue;
        json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:s, s:s}", "file", g->file, "line",
                                           (json_int_t)g->line, "column", (json_int_t)g->column,
                                           "path", g->path, "message", g->message));
    }
    return a;
}

/* {"error"?: CODE, "outcome", "version", "routes", "errors", "warnings",
 * "detail"?: null}: with an error code the answer keeps the admin API's
 * error shape around the outcome. */
static json_t *outcome_json(const struct gw_router_outcome *o, const char *error_code)
{
    json_t *v = json_object();
    if (!v)
        return NULL;
    if (error_code)
        json_object_set_new(v, "error", json_string(error_code));
    json_object_set_new(v, "outcome", json_string(o->ok ? "ok" : "error"));
    json_object_set_new(v, "version", json_integer((json_int_t)o->version));
    json_object_set_new(v, "routes", json_integer((json_int_t)o->routes));
    json_object_set_new(v, "errors", diags_json(&o->diags, JPOS_DIAG_ERROR));
    json_object_set_new(v, "warnings", diags_json(&o->diags, JPOS_DIAG_WARNING));
    if (error_code)
        json_object_set_new(v, "detail", json_null());
    return v;
}

static const char *path_kind_key(enum route_path_kind k)
{
    return k == ROUTE_PATH_PREFIX ? "path_prefix" : "path";
}

/* {"name": "value", ...} of n header fields. */
static json_t *kv_json(const struct route_kv *kv, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++)
        json_object_set_new(o, kv[i].name, json_string(kv[i].value));
    return o;
}

/* A header edit as the routes language writes it; NULL when it edits
 * nothing. */
static json_t *edit_json(const struct route_header_edit *e)
{
    if (!e->nset && !e->nadd && !e->nremove)
        return NULL;
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (e->nset)
        json_object_set_new(o, "set", kv_json(e->set, e->nset));
    if (e->nadd)
        json_object_set_new(o, "add", kv_json(e->add, e->nadd));
    if (e->nremove) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < e->nremove; i++)
            json_array_append_new(a, json_string(e->remove[i]));
        json_object_set_new(o, "remove", a);
    }
    return o;
}

static json_t *match_json(const struct route *rt)
{
    json_t *match = json_object();
    if (!match)
        return NULL;
    if (rt->host)
        json_object_set_new(match, "host", json_string(rt->host));
    if (rt->path)
        json_object_set_new(match, path_kind_key(rt->path_kind), json_string(rt->path));
    if (rt->methods || rt->next_methods) {
        json_t *ms = json_array();
        char buf[160];
        route_methods_format(rt->methods & ~(unsigned)ROUTE_M_EXTENSION, buf, sizeof buf);
        for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok;
             tok = strtok_r(NULL, ", ", &save))
            json_array_append_new(ms, json_string(tok));
        for (size_t i = 0; i < rt->next_methods; i++)
            json_array_append_new(ms, json_string(rt->ext_methods[i]));
        json_object_set_new(match, "methods", ms);
    }
    if (rt->nheaders) {
        json_t *hs = json_object();
        for (size_t i = 0; i < rt->nheaders; i++) {
            const struct route_header_cond *c = &rt->headers[i];
            json_t *v = c->test == ROUTE_HDR_EQUALS    ? json_stringn(c->value, c->value_len)
                        : c->test == ROUTE_HDR_PRESENT ? json_true()
                                                       : json_false();
            json_object_set_new(hs, c->name, v);
        }
        json_object_set_new(match, "headers", hs);
    }
    return match;
}

static const char *slashes_name(enum route_slashes s)
{
    switch (s) {
    case ROUTE_SLASHES_REFUSE:
        return "refuse";
    case ROUTE_SLASHES_KEEP:
        return "keep";
    case ROUTE_SLASHES_REDIRECT:
        return "redirect";
    case ROUTE_SLASHES_DECODE:
        return "decode";
    default:
        return NULL;
    }
}

static const char *params_name(enum route_params p)
{
    return p == ROUTE_PARAMS_REFUSE ? "refuse" : p == ROUTE_PARAMS_KEEP ? "keep" : NULL;
}

/* A route as a definition of the routes language (routes/README.md): every
 * key it was compiled from, with its value, so that the routes of an answer
 * PUT back (without "file", "line" and "column", which say where it was
 * defined and which the loader refuses) compile to the same table. A key
 * left at its default is left out, as the loader refuses some defaults on
 * some routes (preserve_host on a respond route). The loader takes only
 * JSON strings, which are UTF-8 without NUL, so a respond body is always
 * given back as the string it was read from. */
static json_t *route_json(const struct route *rt)
{
    json_t *o =
        json_pack("{s:s?, s:o, s:s?, s:I, s:I}", "name", rt->name, "match", match_json(rt), "file",
                  rt->file, "line", (json_int_t)rt->line, "column", (json_int_t)rt->column);
    if (!o)
        return NULL;
    if (rt->description)
        json_object_set_new(o, "description", json_string(rt->description));
    if (rt->upstream) {
        json_object_set_new(o, "upstream", json_string(rt->upstream));
    } else if (rt->respond) {
        const struct route_respond *r = rt->respond;
        json_t *ro = json_pack("{s:i}", "status", r->status);
        if (ro && r->body_len)
            json_object_set_new(ro, "body", json_stringn(r->body, r->body_len));
        if (ro && r->nheaders)
            json_object_set_new(ro, "headers", kv_json(r->headers, r->nheaders));
        json_object_set_new(o, "respond", ro);
    } else if (rt->workflow) {
        json_object_set_new(o, "workflow", json_string(rt->workflow));
    }
    if (rt->npolicies) {
        json_t *p = json_array();
        for (size_t i = 0; p && i < rt->npolicies; i++)
            json_array_append_new(p, json_string(rt->policies[i]));
        json_object_set_new(o, "policies", p);
    }
    if (rt->strip_prefix)
        json_object_set_new(o, "strip_prefix", json_true());
    if (rt->rewrite)
        json_object_set_new(o, "rewrite", json_string(rt->rewrite));
    if (!rt->preserve_host)
        json_object_set_new(o, "preserve_host", json_false());
    json_t *e = edit_json(&rt->request_headers);
    if (e)
        json_object_set_new(o, "request_headers", e);
    if ((e = edit_json(&rt->response_headers)))
        json_object_set_new(o, "response_headers", e);
    if (rt->connect_timeout_ms || rt->response_timeout_ms || rt->tunnel_idle_ms) {
        json_t *t = json_object();
        if (t && rt->connect_timeout_ms)
            json_object_set_new(t, "connect_ms", json_integer(rt->connect_timeout_ms));
        if (t && rt->response_timeout_ms)
            json_object_set_new(t, "response_ms", json_integer(rt->response_timeout_ms));
        if (t && rt->tunnel_idle_ms)
            json_object_set_new(t, "tunnel_idle_ms", json_integer(rt->tunnel_idle_ms));
        json_object_set_new(o, "timeouts", t);
    }
    if (rt->retries >= 0)
        json_object_set_new(o, "retries", json_integer(rt->retries));
    if (rt->max_body_bytes >= 0)
        json_object_set_new(o, "max_body_bytes", json_integer(rt->max_body_bytes));
    if (rt->max_memory_bytes >= 0 || rt->max_time_ms >= 0) {
        json_t *l = json_object();
        if (l && rt->max_memory_bytes >= 0)
            json_object_set_new(l, "max_memory_bytes", json_integer(rt->max_memory_bytes));
        if (l && rt->max_time_ms >= 0)
            json_object_set_new(l, "max_time_ms", json_integer(rt->max_time_ms));
        json_object_set_new(o, "limits", l);
    }
    if (rt->priority)
        json_object_set_new(o, "priority", json_integer(rt->priority));
    const char *sl = slashes_name(rt->escaped_slashes), *pa = params_name(rt->path_params);
    if (sl || pa) {
        json_t *pp = json_object();
        if (pp && sl)
            json_object_set_new(pp, "escaped_slashes", json_string(sl));
        if (pp && pa)
            json_object_set_new(pp, "params", json_string(pa));
        json_object_set_new(o, "path_policy", pp);
    }
    if (rt->redirect_https)
        json_object_set_new(o, "redirect_https",
                            rt->redirect_https == 443 ? json_true()
                                                      : json_integer(rt->redirect_https));
    return o;
}

/* The routes of `t` as GET /admin/routes lists them. */
static json_t *routes_json(const struct route_table *t)
{
    json_t *routes = json_array();
    for (size_t i = 0; routes && t && i < route_table_count(t); i++)
        json_array_append_new(routes, route_json(route_table_route(t, i)));
    return routes;
}

/* GET /admin/routes: the table serving now, then the router's state. */
static json_t *status_json(const struct gw_router_status *st)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    const struct route_table *t = gw.routes ? route_holder_acquire(gw.routes) : NULL;
    json_t *routes = routes_json(t);
    json_object_set_new(o, "version", json_integer((json_int_t)(t ? route_table_version(t) : 0)));
    json_object_set_new(o, "count", json_integer((json_int_t)(t ? route_table_count(t) : 0)));
    json_object_set_new(o, "files", json_integer((json_int_t)(t ? route_table_files(t) : 0)));
    json_object_set_new(o, "routes_dir",
                        gw.cfg && gw.cfg->routes_dir ? json_string(gw.cfg->routes_dir)
                                                     : json_null());
    json_object_set_new(o, "routes", routes);
    route_table_release(t);
    json_t *versions = json_array();
    for (size_t i = 0; versions && i < st->nversions && i < GW_ROUTER_HISTORY; i++) {
        const struct gw_router_version *e = &st->versions[i];
        json_array_append_new(
            versions, json_pack("{s:I, s:I, s:s, s:s, s:b}", "version", (json_int_t)e->version,
                                "routes", (json_int_t)e->routes, "source", e->source,
                                "published_at", e->published_at, "current", i == 0));
    }
    json_object_set_new(o, "versions", versions);
    json_t *last = json_null();
    if (st->has_last_reload) {
        const struct gw_router_reload *l = &st->last_reload;
        last = outcome_json(&l->outcome, NULL);
        if (last) {
            json_object_set_new(last, "time", json_string(l->time));
            json_object_set_new(last, "source", json_string(l->source));
            json_object_set_new(last, "duration_ms", json_real(l->duration_ms));
        }
    }
    json_object_set_new(o, "last_reload", last);
    json_object_set_new(o, "reloads_ok", json_integer((json_int_t)st->reloads_ok));
    json_object_set_new(o, "reloads_failed", json_integer((json_int_t)st->reloads_failed));
    json_object_set_new(o, "retired", json_integer((json_int_t)st->retired));
    return o;
}

/* Maps the result of router call `call` to the answer; frees the outcome.
 * The router's calls have their own deadline (router.h): past it the
 * answer is 504 "timeout", as for every call the admin API makes. */
static void router_result(struct gw_admin_response *resp, const char *call, int rc,
                          struct gw_router_outcome *o)
{
    if (rc == 0 && o) {
        gw__admin_json(resp, 200, outcome_json(o, NULL));
    } else if (rc == -EINVAL && o) {
        gw__admin_json(resp, 422, outcome_json(o, "routes_refused"));
    } else if (rc == -ENOENT) {
        if (o)
            gw__admin_json(resp, 404, outcome_json(o, "version_not_found"));
        else
            gw__admin_errorf(resp, 404, "version_not_found",
                             "that version is not in the router's history");
    } else if (rc == -ETIMEDOUT) {
        gw__admin_timeout(resp, 0, GW_ROUTER_NAME, call, GW_ROUTER_CALL_TIMEOUT_MS);
    } else if (rc == -ESRCH || rc == -ECONNRESET) {
        gw__admin_errorf(resp, 503, "router_unavailable", "the router did not answer: %s",
                         strerror(-rc));
    } else if (rc == -ENOMEM) {
        gw__admin_json(resp, 503, NULL); /* the out-of-memory answer */
    } else {
        gw__admin_errorf(resp, 500, "internal", "%s", strerror(rc < 0 ? -rc : rc));
    }
    gw_router_outcome_free(o);
}

void gw__admin_routes_get(struct gw_admin_response *resp)
{
    struct gw_router_status *st = NULL;
    int rc = gw_router_status(&st);
    if (rc < 0) {
        router_result(resp, "status", rc, NULL);
        return;
    }
    gw__admin_json(resp, 200, status_json(st));
    gw_router_status_free(st);
}

void gw__admin_routes_reload(struct gw_admin_response *resp)
{
    struct gw_router_outcome *o = NULL;
    int rc = gw_router_reload("admin", &o);
    router_result(resp, "reload", rc, o);
}

void gw__admin_routes_replace(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    struct gw_router_outcome *o = NULL;
    int rc = gw_router_replace(req->body ? req->body : "", req->body_len, &o);
    router_result(resp, "replace", rc, o);
}

void gw__admin_routes_validate(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    struct gw_router_outcome *o = NULL;
    int rc = gw_router_validate(req->body ? req->body : "", req->body_len, &o);
    router_result(resp, "validate", rc, o);
}

void gw__admin_routes_rollback(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    json_error_t err;
    json_t *body = json_loadb(req->body ? req->body : "", req->body_len, 0, &err);
    json_t *v = json_object_get(body, "version");
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        json_decref(body);
        gw__admin_errorf(resp, 400, "bad_request",
                         "expected a JSON body {\"version\": N} with N a positive integer");
        return;
    }
    uint64_t version = (uint64_t)json_integer_value(v);
    json_decref(body);
    struct gw_router_outcome *o = NULL;
    int rc = gw_router_rollback(version, &o);
    router_result(resp, "rollback", rc, o);
}

void gw__admin_routes_version(struct gw_admin_response *resp, const char *arg)
{
    /* Digits only: a version is a positive decimal number, at most 20
     * digits (a uint64_t), without sign, spaces or leading zeros. */
    size_t n = strlen(arg);
    bool digits = n > 0 && n <= 20 && arg[0] != '0';
    for (size_t i = 0; digits && i < n; i++)
        digits = arg[i] >= '0' && arg[i] <= '9';
    errno = 0;
    unsigned long long version = digits ? strtoull(arg, NULL, 10) : 0;
    if (!digits || errno == ERANGE) {
        gw__admin_error(resp, 400, "bad_version",
                        json_pack("{s:s#,s:s}", "version", arg, (int)(n > 32 ? 32 : n), "expected",
                                  "a positive decimal version number"));
        return;
    }
    struct gw_router_kept *k = NULL;
    int rc = gw_router_kept_get((uint64_t)version, &k);
    if (rc < 0) {
        if (rc == -ENOENT)
            gw__admin_error(
                resp, 404, "version_not_found",
                json_pack("{s:I,s:i}", "version", (json_int_t)version, "kept", GW_ROUTER_HISTORY));
        else
            router_result(resp, "kept", rc, NULL);
        return;
    }
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:b, s:I, s:o}", "version", (json_int_t)k->meta.version,
                  "source", k->meta.source, "published_at", k->meta.published_at, "current",
                  k->current, "count", (json_int_t)k->meta.routes, "routes", routes_json(k->table));
    gw_router_kept_free(k);
    gw__admin_json(resp, 200, o);
}
