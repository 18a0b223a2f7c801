/*
 * idem.h: client idempotency (the IETF httpapi Idempotency-Key draft) as
 * pure functions, for the request path (http.c).
 *
 * A request to a workflow route may carry a key (one field, 1..255 visible
 * ASCII bytes). The key is scoped by who sent it: the authenticated consumer
 * when there is one, otherwise the route ("route:NAME"), so two clients of
 * one route share keys only when the gateway cannot tell them apart. The
 * request's fingerprint is SHA-256 over method, NUL, path (with its query),
 * NUL, body: a repeat of the key with another fingerprint is a different
 * request reusing a key, never a retry.
 *
 * Given what the journal holds for (scope, key), gw_idem_decide says what
 * the client gets:
 *   - no instance holds the key (or it expired and its instance is
 *     over; a running instance keeps its key past its time): start one;
 *   - an instance holds it with another fingerprint: 422;
 *   - it holds it and is not terminal: 409 with Retry-After;
 *   - it holds it and is terminal: its stored answer, byte-identical
 *     (status, body, the stored headers: gw_idem_stored_fields);
 *   - no key where the definition requires one: 400.
 *
 * Everything here is plain data: any thread, no blocking; only
 * gw_idem_stored_fields allocates.
 */
#ifndef GW_WORKFLOW_IDEM_H
#define GW_WORKFLOW_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/http1.h"
#include "journal.h"

/* Seconds a client is told to wait (Retry-After) before repeating a
 * request whose instance is still running, or that found max_running
 * instances live. */
#define GW_IDEM_RETRY_AFTER "1"

/* Headers a stored answer may carry (Content-Type, Location, ...), at most. */
#define GW_IDEM_MAX_FIELDS 16
/* Bytes of a stored header's name and of its value, at most. */
#define GW_IDEM_MAX_FIELD_NAME 64
#define GW_IDEM_MAX_FIELD_VALUE 1024

/* The key field `name` (lower case) of request head `h`: 0 with *key and
 * *len (pointing into h); -ENOENT when absent; -EINVAL when empty, longer
 * than WF_KEY_MAX or holding a byte outside visible ASCII (0x21..0x7e);
 * -E2BIG when the field appears more than once. */
int gw_idem_key(const struct gw_http_head *h, const char *name, const char **key, size_t *len);

/* The scope of a key: "consumer:NAME" when `consumer` is non-NULL, else
 * "route:ROUTE". 0, or -ENAMETOOLONG when it would not fit in cap bytes or
 * exceed WF_SCOPE_MAX. */
int gw_idem_scope(const char *consumer, const char *route, char *out, size_t cap);

/* SHA-256 over method, NUL, path, ("?" query when query is non-NULL), NUL,
 * body. */
void gw_idem_fingerprint(const char *method, const char *path, size_t path_len, const char *query,
                         size_t query_len, const void *body, size_t body_len,
                         unsigned char out[WF_FINGERPRINT_LEN]);

enum gw_idem_verdict {
    GW_IDEM_START = 0,   /* start an instance */
    GW_IDEM_REPLAY,      /* answer the stored answer of `existing` */
    GW_IDEM_IN_PROGRESS, /* 409, Retry-After */
    GW_IDEM_MISMATCH,    /* 422: the key was used for another request */
    GW_IDEM_MISSING,     /* 400: the definition requires a key */
};

/* What a request gets. `have_key`: it carried a valid key; `required`: the
 * definition requires one; `existing`: the instance the journal has for the
 * key (NULL: none); `fp`: the request's fingerprint; `now_ms`: wall clock
 * (a key past its key_expires_ms is as if absent once its instance is
 * terminal). */
enum gw_idem_verdict gw_idem_decide(bool required, bool have_key, const struct wf_record *existing,
                                    const unsigned char fp[WF_FINGERPRINT_LEN], int64_t now_ms);

/* The status the client gets for a verdict other than START and REPLAY. */
int gw_idem_status(enum gw_idem_verdict v);

/* The stored headers of an answer (`json`: a JSON object text of string
 * values, or NULL), as fields for the response writer: Content-Type goes
 * to *content_type, Location to *location; the rest fill kv (at most
 * GW_IDEM_MAX_FIELDS; *n of them). Fields the response writer owns
 * (framing, Connection, X-Request-Id, Date) are left out, and so is a name
 * that is not a token or a value holding CR, LF or NUL. Pointers point into
 * `doc`, a parsed copy the caller frees with gw_idem_fields_done. 0,
 * -EINVAL (not an object), -ENOMEM. */
struct gw_idem_fields {
    void *doc; /* json_t *, owned */
    const char *content_type;
    const char *location;
    struct gw_http_kv kv[GW_IDEM_MAX_FIELDS];
    size_t n;
};
int gw_idem_stored_fields(const char *json, struct gw_idem_fields *out);
void gw_idem_fields_done(struct gw_idem_fields *f);

#endif
