/*
 * call.h: one HTTP/1.1 request from a workflow step to its upstream.
 *
 * A call picks a target of the upstream (the gateway's balancing and
 * keep-alive pools, upstream.c and pool.c), writes the request and reads
 * the answer with the gateway's response parser, all within one deadline.
 * What it learns is one of three things, which the instance journals:
 *   - an answer (status and body, the body parsed as JSON when it is JSON);
 *   - nothing was sent (no target, connection refused or timed out before
 *     the first byte was written): the upstream cannot have acted, so the
 *     send may be counted as a failed attempt;
 *   - the outcome is unknown (timeout, reset or unreadable answer after
 *     bytes were sent): the upstream may have acted; the instance resends
 *     with the same Idempotency-Key until it learns the outcome.
 * An answer bigger than WF_CALL_MAX_BODY or a head bigger than the
 * parser's own limit is unreadable, hence unknown.
 */
#ifndef GW_WORKFLOW_CALL_H
#define GW_WORKFLOW_CALL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Largest answer body a step reads (an upstream controls it). */
#define WF_CALL_MAX_BODY (1u << 20)

enum wf_call_kind {
    WF_CALL_ANSWERED = 0,
    WF_CALL_NOT_SENT,
    WF_CALL_UNKNOWN,
};

struct wf_call_header {
    const char *name;
    const char *value;
};

struct wf_call_req {
    int upstream_index; /* into the gateway's upstreams */
    const char *method;
    const char *path; /* origin form, query included */
    const struct wf_call_header *headers;
    size_t nheaders;
    const char *body; /* NULL: none */
    size_t body_len;
    const char *idempotency_key; /* "<id>.<step>" or "<id>.<step>.undo" */
    const char *workflow_id;
    uint32_t timeout_ms; /* the whole call: connect, write, read */
};

struct wf_call_res {
    enum wf_call_kind kind;
    int status;   /* ANSWERED */
    json_t *json; /* ANSWERED with a JSON body, else NULL; the caller's reference */
    char *body;   /* ANSWERED: the raw body (NUL-terminated), malloc'd */
    size_t body_len;
    char error[96]; /* NOT_SENT, UNKNOWN: why */
    char target[80];
};

/* Process context; parks on the upstream socket. Fills *res (release it
 * with wf_call_res_done) and returns 0; -ENOMEM (nothing sent). */
int wf_call(const struct wf_call_req *req, struct wf_call_res *res);
void wf_call_res_done(struct wf_call_res *res);
/* Whether req's request line and header fields fit the head wf_call
 * writes (16 KiB) whichever target is chosen: 0, or -E2BIG, and then no
 * send ever will (the same request is built on every retry); -ENOMEM. */
int wf_call_head_check(const struct wf_call_req *req);

#endif
