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
#include "rt/rt.h"

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
    /* Extra header lines, each ending in CRLF ("allow: GET, HEAD\r\n"),
     * or NULL; static storage. */
    const char *headers;
};

/* Process context (a request process of the admin listener); may call
 * gen_servers and block on them. Checks the bearer token (when the admin
 * listener requires one), dispatches, and fills *resp (always, also on
 * errors: JSON {"error": "...", "detail": ...}). */
void gw_admin_handle(const struct gw_admin_request *req, struct gw_admin_response *resp);

/* Any thread. True when `given` equals `expected`. The time taken depends
 * on given_len only, never on the bytes of either token nor on where they
 * first differ, nor on expected_len. */
bool gw_admin_token_equal(const char *given, size_t given_len, const char *expected,
                          size_t expected_len);

/* Any thread. Pids as the admin API shows them: "<0.SLOT.GENERATION>"
 * (a pid is GENERATION << 32 | SLOT). gw_admin_pid_parse also accepts
 * "0.SLOT.GENERATION", the same with %3C/%3E around it (as it appears in a
 * canonical path) and the pid as one decimal number; returns 0 or -EINVAL. */
#define GW_ADMIN_PID_BUF 32
void gw_admin_pid_format(rt_pid pid, char buf[GW_ADMIN_PID_BUF]);
int gw_admin_pid_parse(const char *s, size_t len, rt_pid *out);

/* Kill reasons a client may give: [a-z_]{1,32}. At most this many distinct
 * ones are interned as atoms (the first being "killed_by_admin"); further
 * new ones are refused (400) so that clients cannot fill the atom table. */
#define GW_ADMIN_MAX_KILL_REASONS 64

#endif
