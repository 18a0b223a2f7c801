/*
 * tls.c: the admin API's TLS endpoints: GET /admin/tls (every TLS
 * listener, every certificate serving now, the reload record, the
 * handshake counters) and POST /admin/tls/reload (optionally
 * ?listener=NAME). The TLS module reports plain structs (tls/tls.h); the
 * JSON is written here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_int.h"
#include "tls/tls.h"

/* Unix seconds as RFC 3339 UTC ("2027-01-31T12:00:00Z"). */
static json_t *time_json(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[40];
    if (!gmtime_r(&tt, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return json_null();
    return json_string(buf);
}

static json_t *cert_json(const struct gw_tls_cert_info *c, int64_t now)
{
    json_t *names = json_array();
    for (size_t i = 0; names && i < c->nnames && i < GW_TLS_MAX_NAMES; i++)
        json_array_append_new(names, json_string(c->names[i]));
    return json_pack("{s:s, s:o, s:s, s:s, s:o, s:o, s:I, s:s, s:s, s:s}", "subject", c->subject,
                     "names", names ? names : json_array(), "issuer", c->issuer, "fingerprint",
                     c->fingerprint, "not_before", time_json(c->not_before), "not_after",
                     time_json(c->not_after), "expires_in_s", (json_int_t)(c->not_after - now),
                     "key_type", c->key_type, "cert_file", c->cert_path, "key_file", c->key_path);
}

/* {"listener", "outcome", "file"?, "reason"?} */
static json_t *result_json(const struct gw_tls_reload_result *r)
{
    json_t *o = json_pack("{s:s, s:s}", "listener", r->listener ? r->listener : "", "outcome",
                          r->ok ? "ok" : "error");
    if (o && !r->ok) {
        json_object_set_new(o, "file", r->file[0] ? json_string(r->file) : json_null());
        json_object_set_new(o, "reason", json_string(r->reason));
    }
    return o;
}

static json_t *listener_json(const struct gw_tls_listener_desc *l, int64_t now)
{
    json_t *certs = json_array();
    for (size_t i = 0; certs && i < l->ncerts; i++)
        json_array_append_new(certs, cert_json(&l->certs[i], now));
    json_t *last = json_null();
    if (l->has_last) {
        last = result_json(&l->last);
        if (last) {
            json_object_del(last, "listener");
            json_object_set_new(last, "time", json_string(l->last_time));
            json_object_set_new(last, "source", json_string(l->last_source));
        }
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o}", "name", l->name ? l->name : "",
                     "address", l->address ? l->address : "", "loaded_at", l->loaded_at,
                     "loaded_by", l->loaded_by, "reloads_ok", (json_int_t)l->reloads_ok,
                     "reloads_failed", (json_int_t)l->reloads_failed, "last_reload",
                     last ? last : json_null(), "certificates", certs ? certs : json_array());
}

static json_t *counters_json(const struct gw_tls_desc *d)
{
    json_t *o = json_object();
    static const char *const sides[2] = {"client", "server"};
    for (int side = 1; o && side >= 0; side--) {
        json_t *fails = json_object();
        for (int f = 0; fails && f < GW_TLS_FAIL_KINDS; f++)
            json_object_set_new(fails, gw_tls_fail_name((enum gw_tls_fail)f),
                                json_integer((json_int_t)d->failures[side][f]));
        json_object_set_new(o, sides[side],
                            json_pack("{s:I, s:I, s:o}", "handshakes_full",
                                      (json_int_t)d->handshakes[side][0], "handshakes_resumed",
                                      (json_int_t)d->handshakes[side][1], "failures",
                                      fails ? fails : json_object()));
    }
    return o;
}

void gw__admin_tls_get(struct gw_admin_response *resp)
{
    struct gw_tls_desc *d = NULL;
    int rc = gw_tls_describe(&d);
    if (rc < 0) {
        gw__admin_errorf(resp, rc == -ENOMEM ? 503 : 500, "internal", "%s", strerror(-rc));
        return;
    }
    int64_t now = (int64_t)time(NULL);
    json_t *ls = json_array();
    for (size_t i = 0; ls && i < d->n; i++)
        json_array_append_new(ls, listener_json(&d->listeners[i], now));
    json_t *o = json_pack("{s:o, s:o}", "listeners", ls ? ls : json_array(), "handshakes",
                          counters_json(d));
    gw_tls_desc_free(d);
    gw__admin_json(resp, 200, o);
}

void gw__admin_tls_reload(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    char name[256];
    int q = gw__admin_query(req->query, "listener", name, sizeof name);
    if (q == -EINVAL) {
        gw__admin_errorf(resp, 400, "bad_request", "listener= takes a listener's name");
        return;
    }
    struct gw_tls_reload_outcome *o = NULL;
    int rc = gw_tls_reload("admin", q == 0 ? name : NULL, &o);
    if ((rc == 0 || rc == -EINVAL) && o) {
        json_t *ls = json_array();
        for (size_t i = 0; ls && i < o->n; i++)
            json_array_append_new(ls, result_json(&o->results[i]));
        gw_tls_reload_outcome_free(o);
        json_t *v = json_object();
        if (v && rc)
            json_object_set_new(v, "error", json_string("tls_reload_refused"));
        json_object_set_new(v, "outcome", json_string(rc ? "error" : "ok"));
        json_object_set_new(v, "listeners", ls);
        if (v && rc)
            json_object_set_new(v, "detail",
                                json_string("the certificates loaded before keep serving"));
        gw__admin_json(resp, rc ? 422 : 200, v);
        return;
    }
    gw_tls_reload_outcome_free(o);
    if (rc == -ENOENT)
        gw__admin_errorf(resp, 404, "no_tls_listener",
                         q == 0 ? "no TLS listener is called \"%s\"" : "no listener speaks TLS%s",
                         q == 0 ? name : "");
    else if (rc == -ETIMEDOUT)
        gw__admin_timeout(resp, 0, GW_TLS_RELOADER_NAME, "reload", GW_TLS_RELOAD_CALL_TIMEOUT_MS);
    else if (rc == -ESRCH || rc == -ECONNRESET)
        gw__admin_errorf(resp, 503, "reloader_unavailable", "the TLS reloader did not answer: %s",
                         strerror(-rc));
    else if (rc == -ENOMEM)
        gw__admin_json(resp, 503, NULL); /* the out-of-memory answer */
    else
        gw__admin_errorf(resp, 500, "internal", "%s", strerror(rc < 0 ? -rc : rc));
}
