/*
 * tls_double.c: TEST DOUBLE of the TLS module's reload and description
 * (tls/tls.h) for the admin API's unit tests. Not the real module: every
 * function answers fixed structs, so the tests can assert the JSON and the
 * metrics the admin API renders from them.
 *
 *   gw_tls_describe   one listener "secure" with one certificate expiring
 *                     T_TLS_LEFT_S seconds from now, counters 5/2 (server
 *                     full/resumed), 3 plaintext failures, one refused reload
 *   gw_tls_reload     "secure" or every listener: -EINVAL, the key file
 *                     named with its reason; another name: -ENOENT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_double.h"
#include "tls/tls.h"

const char *gw_tls_fail_name(enum gw_tls_fail f)
{
    static const char *const names[GW_TLS_FAIL_KINDS] = {"timeout",     "closed", "plaintext",
                                                         "version",     "cipher", "unknown_name",
                                                         "client_cert", "verify", "protocol"};
    return (unsigned)f < GW_TLS_FAIL_KINDS ? names[f] : "unknown";
}

void gw_tls_reload_outcome_free(struct gw_tls_reload_outcome *o)
{
    free(o);
}

int gw_tls_reload(const char *source, const char *listener, struct gw_tls_reload_outcome **out)
{
    (void)source;
    if (listener && strcmp(listener, "secure") != 0)
        return -ENOENT;
    struct gw_tls_reload_outcome *o = calloc(1, sizeof(*o) + sizeof(o->results[0]));
    if (!o)
        return -ENOMEM;
    o->n = 1;
    o->results[0].listener = "secure";
    snprintf(o->results[0].file, sizeof o->results[0].file, "/etc/tandem/api.key");
    snprintf(o->results[0].reason, sizeof o->results[0].reason,
             "the key does not match the certificate");
    *out = o;
    return -EINVAL;
}

void gw_tls_desc_free(struct gw_tls_desc *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->listeners[i].certs);
    free(d->listeners);
    free(d);
}

int gw_tls_describe(struct gw_tls_desc **out)
{
    struct gw_tls_desc *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->listeners = calloc(1, sizeof(*d->listeners));
    struct gw_tls_cert_info *c = calloc(1, sizeof(*c));
    if (!d->listeners || !c) {
        free(c);
        gw_tls_desc_free(d);
        return -ENOMEM;
    }
    d->n = 1;
    d->handshakes[1][0] = 5;
    d->handshakes[1][1] = 2;
    d->failures[1][GW_TLS_FAIL_PLAINTEXT] = 3;
    struct gw_tls_listener_desc *l = &d->listeners[0];
    l->name = "secure";
    l->address = "127.0.0.1:8443";
    snprintf(l->loaded_at, sizeof l->loaded_at, "2026-01-02T03:00:00.000Z");
    snprintf(l->loaded_by, sizeof l->loaded_by, "start");
    l->reloads_failed = 1;
    l->has_last = true;
    l->last.listener = "secure";
    snprintf(l->last.file, sizeof l->last.file, "/etc/tandem/api.pem");
    snprintf(l->last.reason, sizeof l->last.reason, "the certificate has expired");
    snprintf(l->last_time, sizeof l->last_time, "2026-01-02T03:04:05.678Z");
    snprintf(l->last_source, sizeof l->last_source, "inotify");
    snprintf(c->subject, sizeof c->subject, "CN=api.example.com");
    snprintf(c->issuer, sizeof c->issuer, "CN=Test CA");
    snprintf(c->names[0], sizeof c->names[0], "api.example.com");
    snprintf(c->names[1], sizeof c->names[1], "*.example.com");
    c->nnames = 2;
    snprintf(c->fingerprint, sizeof c->fingerprint, "%064d", 7);
    c->not_before = 1767225600; /* 2026-01-01T00:00:00Z */
    c->not_after = (int64_t)time(NULL) + T_TLS_LEFT_S;
    snprintf(c->key_type, sizeof c->key_type, "EC P-256");
    snprintf(c->cert_path, sizeof c->cert_path, "/etc/tandem/api.pem");
    snprintf(c->key_path, sizeof c->key_path, "/etc/tandem/api.key");
    l->certs = c;
    l->ncerts = 1;
    *out = d;
    return 0;
}
