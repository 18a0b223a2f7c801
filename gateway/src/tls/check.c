/*
 * check.c: `tandem check` for the TLS listeners' files (tls.h).
 *
 * The configuration loader checks the `tls` object's shape; what the files
 * hold is known only by loading them, as the listener's start does. Each
 * certificate is loaded on its own (a one-certificate set), so that every
 * bad pair is reported, not only the first, at the position of the member
 * naming the file: the `cert` or `key` of that certificate. The whole set
 * and the server configuration over it are then built as the start builds
 * them, for what only they check (the client CA bundle, the suites).
 * Positions come from parsing the configuration text again with positions
 * kept (jpos): the listeners' array is in file order, as cfg->listeners.
 * An upstream's `tls` files (its CA bundle, client certificate and key) are
 * checked by building its client configuration, at the member naming the
 * file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jpos/file.h"
#include "jpos/json.h"
#include "tls.h"

/* The file gw_tls_certset_load's "FILE: reason" names, when it is `path`. */
static bool names_file(const char *err, const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n && strncmp(err, path, n) == 0 && err[n] == ':';
}

/* Reports `err` at member `key` of `obj` (at `obj` itself when absent, at
 * the document's root when `obj` is NULL). */
static void report(struct jpos_diags *d, const struct gw_config *cfg, const struct jpos_val *obj,
                   const char *key, const char *err)
{
    struct jpos_val m;
    if (obj && key && jpos_obj_get(obj, key, &m))
        jpos_err_key(d, &m, "%s", err);
    else if (obj)
        jpos_err(d, obj, "%s", err);
    else
        jpos_diag_add(d, JPOS_DIAG_ERROR, cfg->path, 0, 0, "", "%s", err);
}

/* Checks listener `lc`, whose `tls` member is `tls` (NULL when the text no
 * longer has it where expected). True when all is well. */
static bool check_listener(const struct gw_config *cfg, const struct gw_listener_config *lc,
                           const struct jpos_val *tls, struct jpos_diags *d)
{
    char err[4608];
    bool ok = true;
    struct jpos_val certs, item;
    bool have_certs = tls && jpos_obj_get(tls, "certificates", &certs);
    struct jpos_iter it;
    if (have_certs)
        jpos_iter_init(&it, &certs);
    for (size_t k = 0; k < lc->tls.ncerts; k++) {
        bool have_item = have_certs && jpos_iter_next(&it, &item);
        struct gw_tls_listener_config one = lc->tls;
        one.certs = &lc->tls.certs[k];
        one.ncerts = 1;
        struct gw_tls_certset *set = NULL;
        err[0] = '\0';
        int r = gw_tls_certset_load(&one, &set, err, sizeof err);
        gw_tls_certset_unref(set);
        if (r == -ENOMEM)
            return false;
        if (r == 0)
            continue;
        ok = false;
        const char *key = names_file(err, one.certs->key)    ? "key"
                          : names_file(err, one.certs->cert) ? "cert"
                                                             : NULL;
        report(d, cfg, have_item ? &item : tls, have_item ? key : "certificates",
               err[0] ? err : "the certificate cannot be loaded");
    }
    if (!ok)
        return false;
    struct gw_tls_certset *set = NULL;
    struct gw_tls_server *srv = NULL;
    err[0] = '\0';
    int r = gw_tls_certset_load(&lc->tls, &set, err, sizeof err);
    if (r == 0)
        r = gw_tls_server_new(&lc->tls, set, &srv, err, sizeof err);
    gw_tls_server_unref(srv);
    gw_tls_certset_unref(set);
    if (r == 0)
        return true;
    if (r == -ENOMEM)
        return false;
    struct jpos_val ca;
    if (tls && names_file(err, lc->tls.client_ca) && jpos_obj_get(tls, "client_auth", &ca))
        report(d, cfg, &ca, "ca", err);
    else
        report(d, cfg, tls, NULL, err[0] ? err : "the TLS configuration is refused");
    return false;
}

/* Checks upstream `uc`, whose `tls` member is `tls` (NULL when the text no
 * longer has it where expected), by building its client configuration as
 * the start does: the CA bundle, the client certificate and its key. */
static bool check_upstream(const struct gw_config *cfg, const struct gw_upstream_config *uc,
                           const struct jpos_val *tls, struct jpos_diags *d)
{
    char err[4608];
    err[0] = '\0';
    struct gw_tls_client *c = NULL;
    int r = gw_tls_client_new(&uc->tls, &c, err, sizeof err);
    gw_tls_client_free(c);
    if (r == 0)
        return true;
    if (r == -ENOMEM)
        return false;
    const char *key = names_file(err, uc->tls.key)    ? "key"
                      : names_file(err, uc->tls.cert) ? "cert"
                      : names_file(err, uc->tls.ca)   ? "ca"
                                                      : NULL;
    report(d, cfg, tls, key, err[0] ? err : "the upstream's TLS configuration is refused");
    return false;
}

int gw_tls_check(const struct gw_config *cfg, struct jpos_diags *d)
{
    bool any = false;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        any = any || cfg->listeners[i].tls.enabled;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        any = any || cfg->upstreams[i].tls.enabled;
    if (!any)
        return 0;
    char *text = NULL;
    size_t len = 0;
    struct jpos_doc doc;
    memset(&doc, 0, sizeof doc);
    int rc = jpos_file_load(cfg->path, GW_CONFIG_MAX_BYTES, &text, &len, d);
    if (rc < 0)
        goto out;
    rc = jpos_doc_parse(&doc, cfg->path, text, len, d);
    if (rc < 0)
        goto out;
    struct jpos_val root, ls, l;
    jpos_val_root(&doc, &root);
    bool have_ls = jpos_obj_get(&root, "listeners", &ls);
    struct jpos_iter it;
    if (have_ls)
        jpos_iter_init(&it, &ls);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        bool have_l = have_ls && jpos_iter_next(&it, &l);
        struct jpos_val tls;
        bool have_tls = have_l && jpos_obj_get(&l, "tls", &tls);
        if (!cfg->listeners[i].tls.enabled)
            continue;
        if (!check_listener(cfg, &cfg->listeners[i], have_tls ? &tls : NULL, d) && rc == 0)
            rc = -EINVAL;
    }
    /* "upstreams" is an object: its members are in file order, as
     * cfg->upstreams. */
    struct jpos_val ups, u;
    bool have_ups = jpos_obj_get(&root, "upstreams", &ups);
    if (have_ups)
        jpos_iter_init(&it, &ups);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        bool have_u = have_ups && jpos_iter_next(&it, &u);
        struct jpos_val tls;
        bool have_tls = have_u && jpos_obj_get(&u, "tls", &tls);
        if (!cfg->upstreams[i].tls.enabled)
            continue;
        if (!check_upstream(cfg, &cfg->upstreams[i], have_tls ? &tls : NULL, d) && rc == 0)
            rc = -EINVAL;
    }
out:
    jpos_doc_done(&doc);
    free(text);
    return rc;
}
