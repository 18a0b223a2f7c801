/*
 * admin.h: the admin API. The admin listener is served by the same acceptor
 * and connection processes as public listeners; for each request its
 * connection process starts a request process that calls gw_admin_handle
 * with the whole request (bodies are read in full, up to
 * GW_ADMIN_MAX_BODY bytes, before the call).
 */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "gw/http1.h"

#define GW_ADMIN_MAX_BODY (4u << 20)

struct gw_admin_request {
    const struct gw_http_head *head; /* method, target, headers */
    const char *path;                /* canonical path */
    const char *query;               /* after '?', or NULL */
    const char *body;                /* the whole body (NUL-terminated), may be empty */
    size_t body_len;
    const char *client_addr;
    bool client_loopback; /* the connection comes from a loopback address */
};

struct gw_admin_response {
    int status;
    const char *content_type; /* static string */
    char *body;               /* malloc'd; the caller frees */
    size_t body_len;
};

/* Process context (a request process of the admin listener); may call
 * gen_servers and block on them. Checks the bearer token (when the admin
 * listener requires one), dispatches, and fills *resp (always, also on
 * errors: JSON {"error": "...", "detail": ...}). */
void gw_admin_handle(const struct gw_admin_request *req, struct gw_admin_response *resp);

#endif
