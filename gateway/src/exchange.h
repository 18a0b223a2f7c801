/*
 * exchange.h: the exchange, the one doorway to a client connection.
 *
 * What it owns. A connection process owns an exchange: the client's
 * transport, the request parser and the input buffer. For each request it
 * lends the exchange to a request process and waits for that process to
 * end, so one process uses it at a time (the tunnel's pump, which writes to
 * the client from another process, gets its own half: gw__ex_tunnel_open).
 * exchange.c is the only code that reads from or writes to the client (a
 * client refused before it has an exchange too: gw__ex_refuse), and the
 * only writer of the response state below (status, keep_alive,
 * response_started); anyone may read it. Every answer the gateway makes
 * itself leaves through gw__ex_answer or gw__ex_error, its head built by
 * http/response.c.
 *
 * The transport. Beneath the exchange sits a small byte-stream interface
 * (struct gw__transport): read, write (as much as the peer takes now),
 * writev (all or fail), wait (readiness, or a message), shutdown (stop
 * sending), split (a second handle for another process) and close. The
 * plain socket is one implementation (gw__transport_socket_new). TLS will be
 * another: it provides the same operations over a TLS session (read returns
 * buffered plaintext before it waits; `fd` is the socket to hibernate on,
 * readable when the session may make progress), and no caller changes.
 *
 * Process context for everything that reads, writes or waits; plain data
 * otherwise.
 */
#ifndef GW_EXCHANGE_H
#define GW_EXCHANGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "gw/http1.h"
#include "route/route.h"
#include "rt/rt.h"

#define GW__BUF_SIZE (64 * 1024)
#define GW__WRITE_TIMEOUT_MS 30000
/* How long a connection idles before it gives back its input buffer, its
 * parser and what its transport holds (a TLS session's record buffers): a
 * keep-alive client that comes back sooner finds them in place, one that
 * stays away costs less. Freeing a 64 KiB buffer and taking it again costs
 * the allocator about a thousand instructions (it consolidates its free
 * lists for a block that large), and giving pages back and faulting them
 * in again a few microseconds, so neither is done between the requests of
 * a busy connection. */
#define GW__TRIM_AFTER_MS 250

struct gw__listener;
struct gw__transport;
struct gw_pol_req;
struct gw_tls_peer;

/* A transport's operations. timeout_ms: RT_INFINITY waits forever; 0 does
 * not wait (-EAGAIN when nothing can be done now). Errors are -errno. */
struct gw__transport_ops {
    /* Up to cap bytes: > 0 read, 0 at the peer's end of stream,
     * -ETIMEDOUT, -EAGAIN (timeout 0), -errno. */
    ssize_t (*read)(struct gw__transport *t, void *buf, size_t cap, int64_t timeout_ms);
    /* Writes what the peer takes, waiting at most timeout_ms for it to take
     * anything: > 0 bytes written (maybe fewer than len), -ETIMEDOUT,
     * -errno. For writers that want to see each piece go (the tunnel). */
    ssize_t (*write)(struct gw__transport *t, const void *buf, size_t len, int64_t timeout_ms);
    /* Writes all bytes, at most timeout_ms in all; 0 or -errno. */
    int (*writev)(struct gw__transport *t, const struct iovec *iov, int iovcnt, int64_t timeout_ms);
    /* Waits until read may make progress (RT_POLL_IN) or, with
     * RT_POLL_MSG in events, a message is in the caller's mailbox; the
     * ready mask or -ETIMEDOUT (rt_poll). */
    int (*wait)(struct gw__transport *t, unsigned events, int64_t timeout_ms);
    /* Optional (NULL: never). Whether bytes already taken off the socket
     * are held inside the transport (a TLS session's), so that read makes
     * progress while fd is not readable: nobody may sleep on fd then. Asks
     * no system call. */
    bool (*pending)(struct gw__transport *t);
    /* Stops sending; reading goes on (a lingering close). */
    void (*shutdown)(struct gw__transport *t);
    /* A second handle on the same connection, for another process to use
     * at the same time as this one (one waiter per descriptor, rt.h). */
    int (*split)(struct gw__transport *t, struct gw__transport **out);
    /* Closes the connection (this handle) and frees t. */
    void (*close)(struct gw__transport *t);
    /* Optional (NULL: nothing to give back). Gives back memory the
     * transport holds for the connection while nothing is in flight, when
     * the connection has been idle a while (gw__ex_idle_trim); the next
     * read or write takes it again. A TLS session gives back its record
     * buffers' pages. */
    void (*trim)(struct gw__transport *t);
};

struct gw__transport {
    const struct gw__transport_ops *ops;
    int fd; /* to hibernate on (rt_hibernate_poll): readable when read may progress */
};

/* A plain-socket transport over `fd` (made non-blocking), which it owns from
 * now on, also on failure (closed then). malloc'd: it may outlive the
 * process that made it. 0 or -errno. */
int gw__transport_socket_new(int fd, struct gw__transport **out);
/* The same over a descriptor already non-blocking (socket() or accept4()
 * with SOCK_NONBLOCK): no fcntl. */
int gw__transport_socket_wrap(int fd, struct gw__transport **out);

/* A plain-socket transport over `fd`, which the caller keeps owning (and
 * waits on only from the calling process): never ->close it or ->split it.
 * For a descriptor that is not a client's but is handed to code written
 * against transports (the tunnel's upstream side). */
void gw__transport_socket_borrow(struct gw__transport *t, int fd);

/* Writes all of buf through t, at most timeout_ms in all (a loop over
 * t->ops->writev). 0 or -errno. */
int gw__transport_write_all(struct gw__transport *t, const void *buf, size_t len,
                            int64_t timeout_ms);

/* A peer address as text (gw__addr_text), its NUL included: an IPv6
 * address is at most 45 characters. */
#define GW__ADDR_TEXT_SIZE 64
/* A request id as the exchange keeps it (a client's X-Request-Id is cut to
 * this, its NUL included). */
#define GW__REQUEST_ID_SIZE 40

/* What only a request in progress needs: allocated with the input buffer
 * (the head being read is in it) and given back with it once idle
 * (gw__ex_idle_trim), so that an idle connection does not carry it. */
struct gw__ex_req {
    char client[GW__ADDR_TEXT_SIZE];
    char request_id[GW__REQUEST_ID_SIZE];
    char capped_route[ROUTE_MAX_NAME_BYTES + 1];
};

struct gw__exchange {
    _Atomic int refs;
    bool eof;
    bool draining;        /* a drain message came: close after this request */
    bool drain_linger;    /* ... and when idle, wait for one more (GW__DRAIN_LINGER) */
    bool client_loopback; /* the peer's address is a loopback one */
    bool peer_trusted;    /* the peer is a trusted proxy (this request's; see client) */
    /* Response state, written only by exchange.c. */
    bool response_started;    /* a byte of the response reached the transport */
    bool keep_alive;          /* the connection may carry another request */
    bool continued;           /* 100 Continue went out for this request */
    int status;               /* status answered, for the access log and the connection's record */
    struct gw__transport *tp; /* the client; only exchange.c touches it */
    struct gw__listener *lis;
    struct gw_http_parser *parser; /* NULL once idle (gw__ex_idle_trim) */
    /* The input buffer, GW__BUF_SIZE bytes, in one block with the request
     * part (exchange.c); NULL once idle. Unconsumed input is
     * buf[off, off + len) (32 bits: the buffer is 64 KiB). */
    char *buf;
    uint32_t off, len;
    uint64_t idle_since;       /* ms; 0 while a request is in progress */
    struct gw_http_head *head; /* the current request (the request process frees it) */
    /* ms spent waiting for the client's body bytes, this request: at most
     * lis->body_timeout_ms (time the upstream takes is not the client's). */
    uint32_t body_wait_ms;
    /* Each write to the client, all of it: GW__WRITE_TIMEOUT_MS. */
    int32_t write_timeout_ms;
    /* This request's client as the gateway believes it: client_addr, or
     * behind a trusted proxy the address X-Forwarded-For gives
     * (client_addr.c), GW__ADDR_TEXT_SIZE bytes. Set by the request process
     * before its handler runs. This and the two below point into the
     * request part (struct gw__ex_req) while there is input; at an empty
     * string, never written, while idle. */
    char *client;
    char *request_id; /* GW__REQUEST_ID_SIZE bytes */
    /* Only while caps apply to the current request: its route's name, for
     * the connection's record of a request a cap ended (the route table
     * may be gone by then); ROUTE_MAX_NAME_BYTES + 1 bytes. Empty
     * otherwise; reset by gw__ex_begin. */
    char *capped_route;
    struct gw_tls_peer *tls; /* what the TLS handshake established; NULL over plaintext */
    /* The current request's policy chain state (policy.h), while its
     * request process runs one: its response fields go on every answer.
     * It lives in that process (its stack, its heap): NULL otherwise,
     * reset by gw__ex_begin and by the connection as soon as the request
     * process has ended, however it ended (conn.c serve). */
    const struct gw_pol_req *pol;
    uint64_t started_ms;     /* the request process's start: its time cap counts from it */
    const char *client_addr; /* the peer's address, as long as it is: after the exchange, in
                              * its block */
};

/* ---- the connection process's side ---------------------------------------- */

/* A new exchange over `tp` (owned by the exchange from now on, also on
 * failure) for listener `lis` and the peer whose address is `client_addr`
 * (copied), one reference held. 0 or -errno. */
int gw__ex_new(struct gw__exchange **out, struct gw__transport *tp, struct gw__listener *lis,
               const char *client_addr);
/* Drops a reference; the last one closes the transport and frees all. */
void gw__exchange_unref(void *ex);

/* Reads what the client sent without waiting: 1 with bytes buffered, 0 when
 * none are there yet, -ECONNRESET when the client closed (or failed). */
int gw__ex_try_read(struct gw__exchange *ex);
/* Waits at most timeout_ms for the client's bytes or a message: 1 with
 * bytes buffered, 0 woken by a message (not taken), -EAGAIN woken for
 * nothing after all (call again), -ETIMEDOUT, -ECONNRESET (closed or
 * failed: nothing to answer). */
int gw__ex_fill(struct gw__exchange *ex, int64_t timeout_ms);
/* Feeds what is buffered to the parser and consumes what it took: the
 * parser's return (gw_http_parser_feed) and its event in *ev. A request
 * refused here (-EPROTO) has no request id yet. */
int gw__ex_feed(struct gw__exchange *ex, struct gw_http_event *ev);
/* Whether a request message has begun and not ended (its head or body is
 * being read): gw_http_parser_in_message; false while idle. */
bool gw__ex_in_message(const struct gw__exchange *ex);
/* Takes the end of a bodiless request still pending in the parser, so the
 * wait for the next request is an idle wait. 0 or -errno. */
int gw__ex_take_end(struct gw__exchange *ex);
/* Between requests (nothing may be buffered, no message begun), once the
 * connection has been idle GW__TRIM_AFTER_MS (ex->idle_since): gives back
 * the input buffer, the parser and what the transport holds (its `trim`).
 * Sooner, it keeps them all for the client's next request. */
void gw__ex_idle_trim(struct gw__exchange *ex);
/* Hibernates until the client's transport is readable, a message comes or
 * timeout_ms pass; fn(arg) then runs on a fresh stack. With something to
 * give back and not yet idle GW__TRIM_AFTER_MS, wakes then at the latest,
 * so that the caller trims and hibernates again. */
_Noreturn void gw__ex_hibernate(struct gw__exchange *ex, int64_t timeout_ms, rt_entry fn,
                                void *arg);
/* A new request head `head` (the exchange holds it until the request
 * process frees it): resets the response state for it. */
void gw__ex_begin(struct gw__exchange *ex, struct gw_http_head *head);
/* Lingering close: stops sending, so the client reads the last response
 * rather than a reset caused by unread request bytes. */
void gw__ex_shutdown(struct gw__exchange *ex);

/* ---- the request process's side ------------------------------------------- */

/* Writes all bytes to the client; marks the response started. 0 or -errno. */
int gw__ex_write(struct gw__exchange *ex, const void *buf, size_t len);
int gw__ex_writev(struct gw__exchange *ex, const struct iovec *iov, int iovcnt);
/* The connection closes after this response (no keep-alive). */
void gw__ex_close_after(struct gw__exchange *ex);
/* Caps what the kernel holds of this connection's unsent bytes at about
 * `bytes` (SO_SNDBUF, which also ends its autotuning, up to megabytes): for
 * a long response to a client that may stop reading (an event stream).
 * 0 or -errno. */
int gw__ex_send_buffer(struct gw__exchange *ex, int bytes);
/* Records the status answered, for the access log and the connection's
 * record. */
void gw__ex_status(struct gw__exchange *ex, int status);

/* Whether the request being answered is a HEAD: its head's method, or,
 * before a head was handed out (a request refused while its head was read,
 * a 408), the method token the parser saw. Every answer below is framed by
 * it: no body for HEAD, its length stated all the same. */
bool gw__ex_head_request(const struct gw__exchange *ex);

/* A short JSON error answer (gw_http_error_answer), Connection: close
 * unless `keep` and the connection may stay; no body after the head when
 * answering HEAD. Records the status. */
int gw__ex_error(struct gw__exchange *ex, int status, const char *message, bool keep);
/* The same with an Allow field (a 405). */
int gw__ex_error_allow(struct gw__exchange *ex, int status, const char *message, bool keep,
                       const char *allow);
/* The same with further fields (a policy's refusal: WWW-Authenticate,
 * Retry-After); `extra` is the caller's and nextra bounded by it. */
int gw__ex_error_fields(struct gw__exchange *ex, int status, const char *message, bool keep,
                        const struct gw_http_kv *extra, size_t nextra);
/* The same with Retry-After: `retry_after_s` (a 503 for a passing
 * overload); the connection closes after it. */
int gw__ex_error_retry(struct gw__exchange *ex, int status, const char *message,
                       unsigned retry_after_s);
/* Writes answer `a` (its request id and Connection are the exchange's:
 * close unless keep_alive) and `body` (left out when answering HEAD, or for
 * a status without body; its length stated all the same). Records the
 * status. 0 or -errno. With a->until_close no length is stated and the
 * connection closes after the answer: the caller writes the rest of the
 * body with gw__ex_write (an event stream). */
int gw__ex_answer(struct gw__exchange *ex, const struct gw_http_answer *a, const void *body,
                  size_t body_len);

/* The next piece of the request body, waiting at most `timeout_ms` for
 * each read, and at most the listener's body_timeout_ms for all reads of
 * this body together. Returns 1 with a piece (valid until the next call), 0
 * at the end of the body, -EPROTO (parser refused: status in ex->parser),
 * -ETIMEDOUT (either timeout: answer 408), -ECONNRESET (client closed),
 * -errno. */
int gw__ex_body_next(struct gw__exchange *ex, const char **data, size_t *len, int64_t timeout_ms);
/* The status to answer for a body read that failed with rc (-EPROTO: the
 * parser's status, -ETIMEDOUT: 408, else 400): the one errno->status
 * mapping. */
int gw__ex_body_status(const struct gw__exchange *ex, int rc);
/* Writes "100 Continue" once when the request expects it and has a body;
 * 0 or -errno. */
int gw__ex_continue(struct gw__exchange *ex);
/* Reads the body to its end and drops it (100 Continue first when
 * expected). 0, or the status to answer (gw__ex_body_status). */
int gw__ex_discard_body(struct gw__exchange *ex);
/* Reads the whole body (100 Continue first when expected) into a
 * NUL-terminated rt_alloc'd block of at most `max` bytes: 0 with *out and
 * *len, -EMSGSIZE when longer, -ENOMEM, or the status to answer as a
 * positive number. */
int gw__ex_collect_body(struct gw__exchange *ex, size_t max, char **out, size_t *len);

/* ---- a tunnel (tunnel.c) ---------------------------------------------------- */

/* The client's bytes already read past the request head, taken: they are
 * the tunnel's first bytes to the upstream. */
void gw__ex_take_buffered(struct gw__exchange *ex, const char **data, size_t *len);
/* A second handle on the client for the process that writes to it (the
 * pump), which closes it with ->close. The connection closes after the
 * tunnel. 0 or -errno. */
int gw__ex_tunnel_open(struct gw__exchange *ex, struct gw__transport **writer);
/* Waits at most timeout_ms for the client's bytes or a message and reads
 * what came into the exchange's buffer: 1 with the bytes in *data and *len (valid until the
 * next call), 0 woken by a message (not taken), -EAGAIN woken for nothing
 * after all, -ETIMEDOUT, -ECONNRESET when the client is done sending (or
 * failed). */
int gw__ex_tunnel_read(struct gw__exchange *ex, int64_t timeout_ms, const char **data, size_t *len);

/* ---- a refusal (listener.c) ------------------------------------------------- */

/* Answers 503 (gw_http_busy_write) to a client refused before any exchange
 * exists (over the connection limit or the descriptor budget), on its bare
 * accepted descriptor `fd`, which stays the caller's: it closes it or turns
 * it into the spare descriptor (fdlimit.c). Takes no descriptor and
 * allocates nothing, so it works when neither can be had.
 *
 * A client of a TLS listener (`tls`) gets no answer (it cannot read a
 * plaintext one): what it sent is read and dropped without waiting and the
 * caller closes it; linger_ms is not used.
 *
 * With linger_ms > 0 (a process of its own): waits at most linger_ms for
 * the answer to go, stops sending, then reads and drops what the client
 * sends for at most linger_ms more, so that the close does not reset the
 * connection before the client read the answer. With linger_ms 0 nothing
 * waits (the acceptor itself, under a flood or at the descriptor limit): a
 * fresh socket's send buffer takes the answer at once, and what the client
 * already sent is read and dropped. Process context for linger_ms > 0. */
void gw__ex_refuse(int fd, bool tls, int64_t linger_ms);

#endif
