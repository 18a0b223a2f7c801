/*
 * admin.h: the admin API. The admin listener is served by the same acceptor
 * and connection processes as public listeners; for each request its
 * connection process starts a request process that checks the head with
 * gw_admin_admit_head, then reads the body (in full, up to
 * GW_ADMIN_MAX_BODY bytes; 100 Continue only now) and calls
 * gw_admin_handle with the whole request.
 *
 * Browsers are kept out before anything else (DNS rebinding and cross-site
 * requests to a loopback admin API that has no token):
 *   - the Host (and an absolute-form target's authority) must name the
 *     admin listener, by gw_admin_host_allowed, unless the request carries
 *     the valid token (a rebinding page cannot); otherwise 421
 *     misdirected_request. A Host is required, once, in any case;
 *   - Sec-Fetch-Site, when sent, must be same-origin or none, and Origin,
 *     when sent, must be the listener's own: "http://" + the authority
 *     addressed, or "https://" + it when that authority is one of
 *     allowed_hosts (a TLS proxy in front); otherwise 403 cross_origin;
 *   - a request with a body must say Content-Type: application/json (a
 *     browser cannot send that cross-site without asking first); otherwise
 *     415 unsupported_media_type;
 *   - a body must nest at most GW_ADMIN_MAX_JSON_DEPTH levels; otherwise
 *     400 json_too_deep.
 * All but the last are decided on the head alone, before any byte of the
 * body is read. Then the token, then the endpoint.
 */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "gw/config.h"
#include "gw/http1.h"
#include "rt/rt.h"

#define GW_ADMIN_MAX_BODY (4u << 20)

/* Deepest nesting of arrays and objects in an admin request body, checked
 * before jansson (whose parser recurses once per level) runs on the request
 * process's small stack. A route table nests 6 levels; the routes loader
 * allows the same 64 (JPOS_MAX_DEPTH). */
#define GW_ADMIN_MAX_JSON_DEPTH 64

/* Fields an admin answer may add to its head (gw_admin_response.fields). */
#define GW_ADMIN_MAX_FIELDS 8

/* The admin listener as clients address it: gw.admin_site, written once when
 * the listener is bound. */
struct gw_admin_site {
    const char *host; /* admin.address's host as configured ("127.0.0.1", "::", a name) */
    uint16_t port;    /* the bound port; 0 (not bound) refuses every Host */
    bool loopback;    /* bound to a loopback address (decided from the socket) */
    const struct gw_hostport *allowed_hosts; /* admin.allowed_hosts */
    size_t nallowed_hosts;
};

/* Any thread. True when `host` (a Host field value, `len` bytes) names the
 * admin listener `site`. A missing port means 80, http's default. Accepted:
 *   1. an allowed_hosts entry: its name with any port, or name:port exactly;
 *   2. `localhost` or the configured host, with the listener's port;
 *   3. on a loopback listener, a loopback IP literal (127.x.y.z, [::1]) with
 *      the listener's port;
 *   4. on any other listener (which always has a token), any IP literal with
 *      any port: a DNS-rebinding page can only ever send a name, and port
 *      publishing (docker -p 19901:9901) changes the port clients write.
 * Names are compared without case, IPv6 literals as addresses. */
bool gw_admin_host_allowed(const struct gw_admin_site *site, const char *host, size_t len);

struct gw_admin_request {
    const struct gw_http_head *head; /* method, target, headers */
    const char *path;                /* canonical path */
    const char *query;               /* after '?', or NULL */
    const char *authority;           /* an absolute-form target's host[:port], or NULL */
    size_t authority_len;
    const char *body; /* the whole body (NUL-terminated), may be empty */
    size_t body_len;
    const char *client_addr;
    bool client_loopback; /* the connection comes from a loopback address */
};

struct gw_admin_response {
    int status;
    const char *content_type; /* static string */
    char *body;               /* malloc'd; the caller frees */
    size_t body_len;
    /* Fields of the answer's head, or NULL (static storage): a 405's
     * Allow ("GET, HEAD"), a 401's WWW-Authenticate. */
    const char *allow;
    const char *www_authenticate;
    /* Further fields of the head, static storage (the dashboard's
     * Content-Security-Policy, ETag, Location). */
    struct gw_http_kv fields[GW_ADMIN_MAX_FIELDS];
    size_t nfields;
    /* Cache-Control's value (static storage); NULL: "no-store", as every
     * answer that holds data. */
    const char *cache_control;
    /* GET /admin/events admitted: the answer is the event stream, which the
     * admin listener's handler serves itself (admin/events.c); status and
     * body are not set. */
    bool stream;
};

/* Any thread. The checks above that need only the head (Host, origin,
 * and the content type when the head announces a body: Content-Length
 * above 0, or chunked); `req->body` is not looked at. Returns true, or
 * false after filling *resp with the refusal (status, content type and
 * body; the caller frees resp->body). Call it before sending 100 Continue
 * or reading the body: a refused request's body is never read.
 * gw_admin_handle applies it again. */
bool gw_admin_admit_head(const struct gw_admin_request *req, struct gw_admin_response *resp);

/* Process context (a request process of the admin listener); may call
 * gen_servers and block on them. Checks the bearer token (when the admin
 * listener requires one), dispatches, and fills *resp (always, also on
 * errors: JSON {"error": "...", "detail": ...}). */
void gw_admin_handle(const struct gw_admin_request *req, struct gw_admin_response *resp);

/* POST /admin/upgrade runs a binary upgrade through this function, set by
 * the gateway before its admin listener starts (gateway/src/upgrade.h,
 * gw__upgrade_request): 0 with *new_pid, or a negative errno with the
 * reason in why. NULL (the admin API without a gateway): 501. */
extern int (*gw_admin_upgrade_fn)(const char *binary, int *new_pid, char *why, size_t cap);

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
