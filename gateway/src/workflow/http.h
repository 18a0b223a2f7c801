/*
 * http.h: the workflows' entry on the request path (http.c): a request to
 * a route whose action is a workflow, and GET {status_path}{id}. Both run
 * in the request process and answer through the exchange.
 */
#ifndef GW_WORKFLOW_HTTP_H
#define GW_WORKFLOW_HTTP_H

#include <stdbool.h>

#include "gw_int.h"
#include "route/route.h"

/* Bytes of a workflow request's body, at most (a route's max_body_bytes
 * may lower it): the body is the instance's input, kept in the journal. */
#define GW_WF_MAX_INPUT_BYTES (1u << 20)
/* Nesting of the input document, at most. */
#define GW_WF_MAX_INPUT_DEPTH 32

struct wf_set;
/* The workflow definitions published with route table `t` (table.c), NULL
 * when it carries none. Valid while the table is held. */
const struct wf_set *gw__wf_table_set(const struct route_table *t);

/* Answers a request matched to route `r` (r->workflow set) of `table`:
 * checks it, starts (or finds, by its key) an instance and answers its
 * result, a 202 or a refusal. */
void gw__workflow_route(struct gw__exchange *ex, const struct route_table *table,
                        const struct route *r, const struct gw_http_target *t,
                        struct gw__req_log *log);

/* When workflows are configured and `t` is under the status path: answers
 * it (GET or HEAD of an instance's status) and returns true. */
bool gw__workflow_status(struct gw__exchange *ex, const struct route_table *table,
                         const struct gw_http_target *t, struct gw__req_log *log);

#endif
