/*
 * serve.c: the admin listener's request handler (gw__handler_fn), between
 * the exchange and the admin API. It checks the head with
 * gw_admin_admit_head before anything of the body is read (a refused
 * request gets no 100 Continue, and its connection closes when a body
 * follows), reads the body whole (at most GW_ADMIN_MAX_BODY bytes), calls
 * gw_admin_handle and writes its answer through the exchange. It knows no
 * endpoint: those are admin.c's and procs.c's; an answer that is the event
 * stream (resp.stream) is handed to events.c, which writes it itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "gw/admin.h"
#include "gw_int.h"
#include "ui/ui.h"

void gw__admin_serve(struct gw__exchange *ex, struct gw_http_target *t, struct gw__req_log *log)
{
    log->route_name = "admin";
    struct gw_admin_request areq = {
        .head = ex->head,
        .path = t->path,
        .query = t->query,
        .authority = t->authority,
        .authority_len = t->authority_len,
        .body = "",
        .body_len = 0,
        .client_addr = ex->client_addr,
        .client_loopback = ex->client_loopback,
    };
    struct gw_admin_response aresp = {.status = 500, .content_type = "application/json"};
    if (gw_admin_admit_head(&areq, &aresp)) {
        char *body = NULL;
        size_t len = 0;
        int rc = gw__ex_collect_body(ex, GW_ADMIN_MAX_BODY, &body, &len);
        if (rc == -EMSGSIZE) {
            gw__ex_error(ex, 413, "admin request body too large", false);
            return;
        }
        if (rc == -ENOMEM) {
            gw__ex_error(ex, 500, "out of memory", false);
            return;
        }
        if (rc > 0) {
            gw__ex_error(ex, rc, "could not read the request body", false);
            return;
        }
        areq.body = body;
        areq.body_len = len;
        gw_admin_handle(&areq, &aresp);
        rt_free(body);
        if (aresp.stream && gw__admin_events_serve(ex, &aresp, log))
            return;
    } else if (ex->head->framing == GW_HTTP_BODY_CHUNKED ||
               (ex->head->framing == GW_HTTP_BODY_LENGTH && ex->head->content_length > 0)) {
        /* Refused on its head: the body is never read. */
        gw__ex_close_after(ex);
    }
    if (!aresp.nfields && gw_ui_owns(t->path))
        gw_ui_fields(&aresp); /* a refusal of a /ui path */
    struct gw_http_kv fields[GW_ADMIN_MAX_FIELDS + 2];
    size_t nfields = 0;
    if (aresp.www_authenticate)
        fields[nfields++] = (struct gw_http_kv){"WWW-Authenticate", aresp.www_authenticate};
    if (aresp.cache_control)
        fields[nfields++] = (struct gw_http_kv){"Cache-Control", aresp.cache_control};
    for (size_t i = 0; i < aresp.nfields && i < GW_ADMIN_MAX_FIELDS; i++)
        fields[nfields++] = aresp.fields[i];
    /* A 304 has no body, and so no type. */
    const char *ct = aresp.content_type    ? aresp.content_type
                     : aresp.status == 304 ? NULL
                                           : "application/json";
    struct gw_http_answer a = {
        .status = aresp.status,
        .content_type = ct,
        .no_store = !aresp.cache_control,
        .allow = aresp.allow,
        .fields = fields,
        .nfields = nfields,
    };
    gw__ex_answer(ex, &a, aresp.body, aresp.body_len);
    log->bytes = gw__ex_head_request(ex) ? 0 : aresp.body_len;
    free(aresp.body);
}
