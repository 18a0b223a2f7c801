/*
 * gw_int.h: the gateway's private structures.
 *
 * Processes and what they own:
 *  - an acceptor owns nothing but its turn on the listening socket;
 *  - a connection process owns an exchange (struct gw__exchange, exchange.h):
 *    the client transport, the request parser and the input buffer. For each
 *    request it
 *    lends the exchange to a request process and waits for that process to
 *    end (monitor), so only one process uses the exchange at a time. The
 *    exchange is reference-counted so that whichever of the two ends last
 *    closes the socket: a request process killed or crashed never leaves a
 *    socket number that could be reused under the other's feet.
 *  - a request process owns its request head, its route-table reference and
 *    any upstream connection it checked out (returned to the pool only after
 *    a complete, well-formed exchange).
 */
#ifndef GW_INT_H
#define GW_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "gw/config.h"
#include "gw/gateway.h"
#include "gw/http1.h"
#include "gw/upstream.h"
#include "route/route.h"
#include "rt/rt.h"

#include "exchange.h"

#define GW__HEAD_BUF (64 * 1024)
/* The buffer a forwarded head is written to first: most heads are a few
 * hundred bytes, and a GW__HEAD_BUF block per head and request costs
 * malloc a split of its top chunk and a consolidation on free; 1000 bytes
 * (with rt_alloc's header) stay within glibc's per-thread cache. A head that
 * does not fit is written again into GW__HEAD_BUF bytes. */
#define GW__HEAD_FIRST 1000
/* A request process's arena (rt_spawn_opts.arena): a proxied request's
 * small blocks and cleanups (its heads, paths, guards), not its buffers.
 * Small, because a request waiting for a slow client's body holds it all
 * the while. */
#define GW__REQUEST_ARENA (2 * 1024)

/* Message types of the gateway's processes. */
enum {
    GW__MSG_DRAIN = 0x4757, /* to connections: finish the current request, then close;
                             * u64 GW__DRAIN_LINGER: when idle, wait for one more */
    GW__MSG_LOG,            /* to the logger: one access-log line (payload, no NUL) */
};
/* A drain message's u64 for a binary upgrade: an idle keep-alive connection
 * is not closed at once (its client may be sending a request that very
 * moment, which would then fail) but answers one more request with
 * Connection: close, or closes at its idle timeout or the drain's end. */
#define GW__DRAIN_LINGER 1

struct gw__listener;
struct gw_tls_listener;
struct gw_pol_set;

/* The kinds of the gateway's own processes, as the admin API names them
 * (`kind`). gw__kinds_register fills them in once the runtime runs; until
 * then they are RT_KIND_PROCESS. */
struct gw__kinds {
    rt_kind acceptor, connection, request;
};
extern struct gw__kinds gw__kinds;
int gw__kinds_register(void);

/* What a request's handler reports for the access log and the metrics. */
struct gw__req_log {
    const char *route_name; /* NULL: none matched */
    char target[80];        /* the upstream target tried last, or "" */
    uint64_t version;       /* the route table's version, or 0 */
    uint64_t bytes;         /* response body bytes sent */
    const char *consumer;   /* the authenticated consumer (or subject), or NULL */
};

/* A listener's request handler: in the request process, after the target
 * was canonicalised into `t` (which it may settle further: the path the
 * access log shows); answers through the exchange (exchange.h) and fills
 * `log`. The routes for a public listener (request.c), the admin API
 * for the admin listener (admin/serve.c). */
typedef void gw__handler_fn(struct gw__exchange *ex, struct gw_http_target *t,
                            struct gw__req_log *log);
gw__handler_fn gw__routes_handle;
gw__handler_fn gw__admin_serve;

/* Any process. True when `reason` is one the admin API's kill has used
 * (killed_by_admin, or a reason given in a kill's body): a process that
 * exited with it was stopped from outside, not crashed (admin/procs.c). */
bool gw__admin_kill_reason(rt_atom reason);

/* Acceptors per listener, at most (listeners[].acceptors, or one per
 * scheduler). */
#define GW__MAX_ACCEPTORS 64

/* One acceptor's place in its listener: its own descriptor of the listening
 * socket, because one descriptor has one waiter (rt.h). Duplicated once when
 * the listener opens and closed with it, so that an acceptor (re)starting at
 * the descriptor limit needs no descriptor. */
struct gw__acceptor {
    struct gw__acceptor *self; /* the child spec's argument (as gw__listener.self) */
    struct gw__listener *lis;
    int fd;
};

/* Log lines a listener writes when something keeps failing: at most one per
 * GW__LOG_EVERY_MS per kind, counting those left out in between. */
#define GW__LOG_EVERY_MS 10000
enum { GW__LOG_LIMIT, GW__LOG_ACCEPT, GW__LOG_FULL, GW__LOG_START, GW__LOG_KINDS };
struct gw__log_limit {
    _Atomic uint64_t next_ms;  /* no line of this kind before then */
    _Atomic uint64_t left_out; /* lines not written since the last one */
};

struct gw__listener {
    /* Points at this listener: child specs take its address as their
     * argument, which must outlive the supervisor's init. */
    struct gw__listener *self;
    int index; /* into gw.cfg->listeners; -1 for the admin listener */
    const char *name;
    int fd;
    uint16_t port;                  /* bound (an address with port 0 gets one at bind) */
    struct gw__acceptor *acceptors; /* nacceptors; their descriptors are closed with fd */
    unsigned nacceptors;
    struct gw__log_limit logs[GW__LOG_KINDS];
    bool admin;
    uint32_t max_connections;
    uint32_t header_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t request_timeout_ms;     /* each read of a request body */
    uint32_t body_timeout_ms;        /* the whole request body */
    uint32_t tunnel_idle_timeout_ms; /* no byte either way; a route may override */
    uint64_t max_body_bytes;
    struct gw_request_limits caps; /* each request process's; a route may override */
    struct gw_http_limits limits;
    struct gw_http_path_policy path_policy; /* the admin listener's is the strict default */
    struct gw_listener_stats *stats;
    gw__handler_fn *handler;     /* what its requests are answered by */
    struct gw_tls_listener *tls; /* NULL: plaintext (tls/tls.h) */
    rt_pid conns_sup;
    /* Peers whose X-Forwarded-For is believed (the configuration's, which
     * lives as long as the listener); none on the admin listener. */
    const struct gw_cidr *trusted;
    size_t ntrusted;
};

extern struct gw__listener *gw__listeners; /* public ones, then admin (if enabled) */
extern size_t gw__nlisteners;

/* What the acceptor hands the connection supervisor for a new client (the
 * child's start argument, copied). */
struct gw__conn_arg {
    int fd;
    struct gw__listener *lis;
};

/* Process entry points. */
int gw__conn_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason);
void gw__request_main(void *arg);

/* Proxying (proxy.c): forwards the request in `ex` along route `r` to
 * `upath` (with `prefix`, what the route stripped from the path, NULL when
 * nothing) and streams the response back; returns the status answered (or a
 * negative errno when the client connection must be closed without an
 * answer). The names `pols` owns are never forwarded from the client; the
 * request's policy chain (ex->pol, if any) adds its fields both ways. */
int gw__proxy(struct gw__exchange *ex, const struct route *r, const struct gw_pol_set *pols,
              const char *upath, size_t upath_len, const char *prefix, size_t prefix_len,
              struct gw_upstream *up, char *target_out, size_t target_cap, uint64_t *bytes);

/* The client-certificate fields (listeners' client_auth subject_header and
 * fingerprint_header) for ex's request, into out (gw_http_fwd.owned): every
 * name any listener configures, each once, as no client of any listener
 * may send them; the value is the verified certificate's for ex's own
 * listener's names, NULL otherwise. Route matching (request.c) and the
 * upstream request (proxy.c) both see exactly these. Returns how many. */
size_t gw__client_cert_fields(const struct gw__exchange *ex,
                              struct gw_http_kv out[GW_HTTP_MAX_CERT_FIELDS]);

/* An Upgrade tunnel (tunnel.c) between the client of `ex` and upstream
 * connection `up` (the caller's; the pump uses a split of it), after the
 * 101 head was written; `pending`/`plen`: upstream bytes already read past
 * that head. Returns once both directions ended or the tunnel was idle for
 * idle_ms; the connection closes after it. Exit signals that came meanwhile
 * are obeyed (the process exits). */
void gw__tunnel(struct gw__exchange *ex, struct gw__transport *up, const char *pending, size_t plen,
                uint32_t idle_ms);

/* Upstream pools (upstream.c). */
int gw__upstreams_init(void);
void gw__upstreams_done(void);
const char *gw__upstream_name(const struct gw_upstream *up);
const struct gw_upstream_config *gw__upstream_config(const struct gw_upstream *up);
/* Picks a target, skipping `avoid` (a target already tried) when possible.
 * NULL with *all_ejected set when every target is ejected. */
struct gw_target *gw__target_pick(struct gw_upstream *up, const struct gw_target *avoid,
                                  bool *all_ejected);
const char *gw__target_addr(const struct gw_target *t);
/* Each target's connection pool (pool.c). */
/* A checked-out upstream connection: the transport to read and write it
 * through (a plain socket or a TLS session; callers do not know which). */
struct gw__upconn {
    struct gw__transport *tp; /* NULL when none is checked out */
    bool reused;              /* a pooled connection, which may turn out closed */
    uint64_t guard;           /* the deferred cleanup that closes it if the process dies */
};
/* Checks out a connection into *c: an idle pooled one (c->reused) or a new
 * one connected (and for a TLS upstream handshaken) within the timeout.
 * With `probe`, a pooled one is first checked to be still open (one read
 * that waits for nothing): for requests that could not be sent again on a
 * stale connection. 0 or -errno (-EBUSY: the target's max_connections are
 * all busy; -ETIMEDOUT; -EPROTO: the TLS handshake failed); *c is written
 * only on success, and on a failure to connect a one-line reason goes to
 * why (when not NULL: "connect failed", "certificate verify failed: name
 * mismatch"). Request process. */
int gw__conn_checkout(struct gw_target *t, uint32_t connect_timeout_ms, bool probe,
                      struct gw__upconn *c, char *why, size_t whylen);
/* Returns c's connection to the pool when `reusable` and the pool has room,
 * else closes it; c->tp is NULL afterwards (nothing happens when it already
 * was). Until checkin, the deferred cleanup closes the connection and gives
 * back its count if the process is killed or crashes. */
void gw__conn_checkin(struct gw_target *t, struct gw__upconn *c, bool reusable);
void gw__target_result(struct gw_target *t, bool ok, const char *error);
int gw__upstreams_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                            rt_atom *reason);

/* Access log (logger.c). */
/* How long the supervisor gives the logger to stop (its child spec's
 * shutdown): the logger stops on its own well within it, stdout stuck or
 * not. */
#define GW__LOGGER_SHUTDOWN_MS 5000
int gw__logger_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason);
/* `killed`: the cap that ended the request (memory_limit, time_limit), or
 * NULL; the line then carries it as "killed". */
void gw__access_log(const struct gw__exchange *ex, const char *method, const char *path,
                    const char *route, const char *consumer, const char *target, int status,
                    uint64_t bytes, uint64_t duration_us, uint64_t version, const char *killed);
/* Any thread. Lines and bytes (message headers included) sent to the
 * logger and not yet written or dropped. */
void gw__access_log_backlog(uint64_t *lines, uint64_t *bytes);
/* The runtime's report handlers (rt_set_log_handler, rt_set_crash_handler):
 * one JSON line on stderr per report, any bytes escaped to valid UTF-8
 * JSON. Any thread; never waits for stderr's reader: a line stderr cannot
 * take at once is dropped and counted (logger.c, report_lock). */
void gw__report(enum rt_log_level level, const char *msg, void *ctx);
void gw__crash_report(const struct rt_crash_report *r, void *ctx);
/* The runtime's fatal handler: one JSON line on stderr, as every report
 * is. Async-signal-safe (rt_set_fatal_handler). */
void gw__fatal_report(const struct rt_fatal_report *r, void *ctx);
/* Main thread, before the handlers are installed / after the runtime has
 * stopped: opens (closes) stderr's own non-blocking description for the
 * handlers (logfd.h). Without it they poll stderr before each write. */
void gw__reports_open(void);
void gw__reports_close(void);

/* Listeners (listener.c). */
int gw__listeners_open(void);
void gw__listeners_close(void);
int gw__listeners_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                            rt_atom *reason);
void gw__listeners_drain(void);
/* After a binary upgrade's new gateway is ready: every acceptor (the admin
 * listener's too) stops, leaving the sockets to the new gateway, and every
 * connection closes after its next request (GW__DRAIN_LINGER). */
void gw__listeners_handover(void);
uint64_t gw__connections_open(void);
/* The same, the admin listener's connections included. */
uint64_t gw__connections_open_all(void);

/* File descriptors (fdlimit.c, where the budget, the reserve and the spare
 * are explained). Written by gw__fds_init on the main thread before the
 * runtime starts; read-only afterwards. */
struct gw__fds {
    uint64_t found;   /* the soft RLIMIT_NOFILE at start */
    uint64_t hard;    /* what it was raised towards (gw_fd_limit_target) */
    uint64_t limit;   /* the soft limit the gateway runs with */
    uint64_t reserve; /* gw_fd_reserve(limit): admin connections, 503 answers */
    uint64_t own;     /* the gateway's own (gw_fd_budget's estimate) and inherited ones */
    uint64_t budget;  /* limit - reserve - own: client and upstream connections */
    uint64_t slots;   /* upstream connections that can be busy at once */
    uint64_t line;    /* limit - reserve: a public client numbered at or above it leaves
                       * less than the reserve free */
    int raise_error;  /* errno when raising failed, else 0 */
};
extern struct gw__fds gw__fds;

/* Main thread, after gw.cfg is set and before any listener or upstream
 * socket is opened: raises the soft limit to the hard one, sets the budget
 * and the reserve, and opens the spare descriptor. Returns 0 or -errno. */
int gw__fds_init(void);
/* Logs the limit and, when the configuration may need more descriptors than
 * it leaves, a warning. Any thread, once the runtime runs. */
void gw__fds_report(const struct gw_config *cfg);
/* Main thread, after the runtime stopped. Closes the spare descriptor. */
void gw__fds_done(void);
/* Scheduler threads the runtime starts for `cfg` (as rt_start decides). */
unsigned gw__schedulers(const struct gw_config *cfg);

/* The count (any thread, never blocks). A public client connection is
 * admitted (true) when it and the upstream connection it may hold fit in
 * the budget; whoever admitted it calls gw__fds_client_leave once it is
 * closed. An idle upstream connection may join a pool when
 * gw__fds_idle_admit says it fits; gw__fds_idle_leave when it leaves the
 * pool (reused: its client counts it from then on; or closed). */
bool gw__fds_client_admit(void);
void gw__fds_client_leave(void);
bool gw__fds_idle_admit(void);
void gw__fds_idle_leave(void);
/* Descriptors counted now for client and upstream connections. */
uint64_t gw__fds_counted(void);

/* The spare descriptor (any thread, never blocks).
 * gw__fds_spare_take closes it so that one accept can succeed at the limit
 * (-EAGAIN when another thread has it out); the caller then owns it and
 * must call gw__fds_spare_put: with the descriptor it accepted and is done
 * with, whose number becomes the spare at once (no other thread can take
 * it in between), or with -1 to reopen it.
 * gw__fds_spare_check, after a successful accept: 0 when the spare is held
 * (reopened now if it was lost); -EBUSY while another thread has it out
 * (the accepted descriptor may be the one it freed); -EMFILE when it is
 * lost and no number is free: the caller now owns it and must answer its
 * client and hand its descriptor to gw__fds_spare_put.
 * gw__fds_spare_retry reopens a lost spare if a number is free: after a
 * connection closed. */
int gw__fds_spare_take(void);
void gw__fds_spare_put(int fd);
int gw__fds_spare_check(void);
void gw__fds_spare_retry(void);

/* Formats a socket address as text ("1.2.3.4", "::1"); loopback flag. */
void gw__addr_text(const struct sockaddr *sa, char *buf, size_t cap, bool *loopback);
/* A fresh request id (16 hex digits). */
void gw__request_id(char out[17]);

#endif
