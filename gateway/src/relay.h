/*
 * relay.h: one attempt at an upstream (relay.c), in the request process:
 * the request head and body go up one connection, the response streams
 * back to the client. Choosing the connection and retrying belong to the
 * caller (proxy.c); the attempt knows no route, pool or target, only a
 * connected transport (exchange.h: a plain socket or a TLS session), so
 * that it can be driven over a socketpair.
 */
#ifndef GW_RELAY_H
#define GW_RELAY_H

#include "gw_int.h"

/* Bytes of the upstream read buffer (gw__relay.rbuf): GW__RELAY_FIRST at
 * first, GW__RELAY_BUF once a read has filled it (a large response). Most
 * responses fit the first, and a block of 64 KiB would cost every request
 * the allocator's consolidation of its free lists when given back. */
#define GW__RELAY_FIRST 16384
#define GW__RELAY_BUF 65536
/* The request body is read up to this many bytes before anything goes
 * upstream. Its buffer holds that plus one whole body piece (a piece is at
 * most one client read), so a piece is never split. */
#define GW__PREREAD 65536
#define GW__PREREAD_CAP (GW__PREREAD + GW__BUF_SIZE)
/* The pre-read buffer's first size; it doubles as bytes arrive. */
#define GW__PREREAD_MIN 4096
/* body_buffer_bytes when the configuration does not set it: 512 full
 * pre-read buffers, or some 16000 of the few KiB a trickled body holds. */
#define GW__BODY_BUFFER_DEFAULT (64ull << 20)

struct gw__preread;

enum gw__relay_result {
    GW__RELAY_DONE,   /* answered (status recorded in the exchange) */
    GW__RELAY_RETRY,  /* nothing consumed: try again */
    GW__RELAY_CLOSE,  /* answered partly or not at all: close the client */
    GW__RELAY_FAILED, /* the attempt failed before any response byte reached the client
                       * (the upstream, or the client's streamed body): fail_status/
                       * fail_msg say what to answer, once the connection is given
                       * back; the request may be retried when idempotent and its body
                       * is held whole (pre_complete) */
};

/* What the caller does for the attempt. Called in the request process. */
struct gw__relay_ops {
    /* The upstream's health as the attempt learns it: `ok`, or `what`
     * failed ("response timeout", the parser's reason...). */
    void (*report)(void *ctx, bool ok, const char *what);
    /* The upstream answered 101 to an Upgrade request: write the 101 head
     * and carry the tunnel over `up` until it ends. `pending`/`plen`: the
     * upstream's bytes already read past the head. `resp` and `pending` are
     * the attempt's, valid for the call. */
    void (*upgrade)(void *ctx, struct gw__transport *up, const struct gw_http_head *resp,
                    const char *pending, size_t plen);
    void *ctx;
};

/* One request's attempts. The caller fills the first part once, `up` and
 * `reused` per attempt; the attempt fills the results. */
struct gw__relay {
    struct gw__exchange *ex;
    const char *head; /* the request head as it goes upstream */
    size_t head_len;
    uint32_t response_timeout_ms;           /* for the response head */
    uint32_t read_timeout_ms;               /* for each read once the head is in */
    const struct gw_http_edits *resp_edits; /* the route's response_headers, or NULL */
    char *rbuf;                             /* rbuf_cap bytes (rt_alloc'd) */
    size_t rbuf_cap;                        /* GW__RELAY_FIRST or GW__RELAY_BUF */
    struct gw__relay_ops ops;
    /* The start of the request body (gw__relay_preread), in `hold`. */
    struct gw__preread *hold;
    const char *pre;
    size_t pre_len;
    bool pre_complete; /* the whole body: the request can be sent again */

    struct gw__transport *up; /* a connected upstream; stays the caller's */
    bool reused;              /* a pooled connection, which may turn out closed */

    bool reusable;     /* this attempt: `up` may carry another request */
    bool body_started; /* the body streams from the client: it cannot be sent again */
    uint64_t bytes_out;
    int fail_status; /* what to answer when attempts run out */
    const char *fail_msg;
};

/* The gateway-wide budget of pre-read bytes (body_buffer_bytes), set once
 * at start, and what all requests hold now. */
void gw__preread_budget_set(uint64_t bytes);
uint64_t gw__preread_held(void);

/* Reads the request body up to GW__PREREAD bytes (at most GW__PREREAD_CAP)
 * into a buffer of its own before anything goes upstream, after "100
 * Continue" when the client asks for it: a body refused by the parser (bad
 * chunk, over the limit) is then answered with nothing forwarded, and a
 * small body can be sent again on a retry. The buffer grows with the bytes
 * read, each growth charged to the gateway-wide budget. Sets r->pre,
 * pre_len, pre_complete. Returns 0, the status to answer, or -EBUSY when
 * the budget cannot hold more (answer 503: the body may be sent again
 * later). Request process; waits for the client. The buffer is the
 * process's until gw__relay_preread_release (gw__relay_attempt calls it
 * once the body streams on or the client has the answer's head) or its
 * end, which give the charge back. */
int gw__relay_preread(struct gw__relay *r);
/* Frees the pre-read buffer and gives its charge back; r->pre is gone. */
void gw__relay_preread_release(struct gw__relay *r);

/* One attempt on r->up: sends the head and the body (r->pre, then the
 * rest from the client), reads the response and relays it, or fails.
 * Writes to the client only through the exchange; answers the client
 * itself when the result is GW__RELAY_DONE, and leaves the answer to the
 * caller when it is GW__RELAY_FAILED. Never closes or pools r->up: the
 * caller does, as r->reusable says. Request process; waits for both peers,
 * each wait bounded (response_timeout_ms, read_timeout_ms,
 * GW__WRITE_TIMEOUT_MS, the listener's body timeouts). */
enum gw__relay_result gw__relay_attempt(struct gw__relay *r);

#endif
