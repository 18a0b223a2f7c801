/*
 * proxy.c: forwarding one request to an upstream and streaming the answer
 * back, in the request process.
 *
 * Memory is bounded whatever the body sizes: the request body streams from
 * the client buffer to the upstream piece by piece, the response from a
 * 64 KiB read buffer to the client. A target is retried (another one, when
 * there is one) while nothing of the request body was consumed: on connect
 * failure, and when a reused keep-alive connection turns out closed before
 * any byte of a response. An upstream connection goes back to the pool only
 * after a complete, well-formed response that allows keep-alive; anything
 * malformed answers 502 and drops the connection.
 *
 * An Upgrade tunnel lasts until either side closes or no byte crosses it
 * either way for the tunnel idle timeout (the route's, else the
 * listener's), so an abandoned tunnel gives its upstream connection back.
 *
 * Answers when no upstream answers: 502 (connect failed everywhere, bad
 * response), 503 (every target ejected), 504 (connect or response timeout),
 * each a short JSON body with the request id.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw/metrics.h"
#include "gw_int.h"
#include "request_detail.h"

#define RBUF 65536

/* A tunnel's state, shared by its two directions: the request process
 * copies client to upstream, the pump process upstream to client. It lives
 * on the heap (malloc, not rt_alloc: memory from rt_alloc dies with the
 * process that allocated it) with one reference per process, each dropped
 * by that process's deferred cleanup however it ends, so neither points
 * into the other: the request process may be killed before the pump first
 * runs, and the pump may outlive it by a moment. */
struct tunnel_state {
    _Atomic int refs;
    /* rt_now_ms() when a byte last crossed either way: read from one side,
     * or taken by the other (each piece a write hands over). Relaxed: the
     * value is all that is shared, no other memory is published through
     * it. A read may see a slightly older stamp than the other process's
     * latest (by the time a store takes to become visible, far below a
     * millisecond); it can then only judge the tunnel idle, and close it,
     * that much early. Stronger orders would not make the value fresher. */
    _Atomic uint64_t last_ms;
    /* Set by the pump once its cleanup owns its share (from, to and one
     * reference). A pump that the runtime finished without running it (no
     * stack could be had for it) never sets it, and the request process
     * then releases that share when the pump's DOWN comes. Release/acquire:
     * the DOWN is read after the pump ended, and the flag must be seen as
     * the pump left it. */
    atomic_bool pump_owns;
    int from, to; /* the pump's own descriptors (dups): it closes them */
};

static void tunnel_state_unref(void *arg)
{
    struct tunnel_state *t = arg;
    /* acq_rel: the last owner sees the other's writes before freeing. */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        free(t);
}

/* The pump's cleanup: its descriptors and its reference. */
static void pump_done(void *arg)
{
    struct tunnel_state *t = arg;
    close(t->from);
    close(t->to);
    tunnel_state_unref(t);
}

/* Writes buf[0..n) to fd as rt_write does (all of it, or fail; at most
 * GW__WRITE_TIMEOUT_MS in all), stamping t->last_ms each time the peer
 * takes a piece: a slow reader that keeps taking bytes keeps the tunnel
 * busy while one write of 64 KiB lasts, one that takes none for the idle
 * timeout does not. fd is non-blocking (rt_fd_nonblock, kept by dup). */
static int tunnel_write(struct tunnel_state *t, int fd, const char *buf, size_t n)
{
    uint64_t deadline = rt_now_ms() + GW__WRITE_TIMEOUT_MS;
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w > 0) {
            atomic_store_explicit(&t->last_ms, rt_now_ms(), memory_order_relaxed);
            buf += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            return -errno;
        uint64_t now = rt_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        int r = rt_poll(fd, RT_POLL_OUT, (int64_t)(deadline - now));
        if (r < 0)
            return r;
    }
    return 0;
}

static void pump_main(void *arg)
{
    struct tunnel_state *t = arg;
    /* Nothing here yields before the cleanup is registered, so the pump
     * cannot be stopped between taking its share and owning its cleanup. */
    atomic_store_explicit(&t->pump_owns, true, memory_order_release);
    if (!rt_defer(pump_done, t)) {
        pump_done(t);
        return;
    }
    char *buf = rt_alloc(RBUF);
    if (!buf)
        return;
    for (;;) {
        /* No timeout here: the request process judges idleness for both
         * directions and stops the pump. */
        ssize_t n = rt_read(t->from, buf, RBUF, RT_INFINITY);
        if (n <= 0)
            break;
        atomic_store_explicit(&t->last_ms, rt_now_ms(), memory_order_relaxed);
        if (tunnel_write(t, t->to, buf, (size_t)n) < 0)
            break;
    }
    shutdown(t->to, SHUT_WR);
}

/* A tunnel's state with two references and the pump's descriptors
 * (duplicates of `from` and `to`), or NULL. */
static struct tunnel_state *tunnel_state_new(int from, int to)
{
    struct tunnel_state *t = malloc(sizeof(*t));
    if (!t)
        return NULL;
    atomic_init(&t->refs, 2);
    atomic_init(&t->last_ms, rt_now_ms());
    atomic_init(&t->pump_owns, false);
    t->from = fcntl(from, F_DUPFD_CLOEXEC, 0);
    t->to = fcntl(to, F_DUPFD_CLOEXEC, 0);
    if (t->from < 0 || t->to < 0) {
        if (t->from >= 0)
            close(t->from);
        if (t->to >= 0)
            close(t->to);
        free(t);
        return NULL;
    }
    return t;
}

/* Who the tunnel's request process listens to while it traps exits. */
struct tunnel_watch {
    rt_pid pump;
    rt_ref ref; /* the pump's monitor */
};

static bool is_exit_from(const struct rt_msg *m, void *ctx)
{
    return m->type == RT_MSG_EXIT && m->from == ((struct tunnel_watch *)ctx)->pump;
}

/* An exit signal from anyone but the pump, which the process obeys as it
 * would untrapped (a `normal` one is ignored, as it would be). */
static bool is_foreign_exit(const struct rt_msg *m, void *ctx)
{
    return m->type == RT_MSG_EXIT && m->from != ((struct tunnel_watch *)ctx)->pump &&
           (rt_atom)m->u64 != RT_NORMAL;
}

/* The pump's DOWN, or an exit signal to obey. */
static bool is_down_or_foreign_exit(const struct rt_msg *m, void *ctx)
{
    const struct tunnel_watch *w = ctx;
    return (m->type == RT_MSG_DOWN && m->ref == w->ref) || is_foreign_exit(m, ctx);
}

/* Anything but the pump's DOWN: what the tunnel's loop takes to learn why
 * it was woken, never the DOWN it waits for at its end. */
static bool is_not_down(const struct rt_msg *m, void *ctx)
{
    const struct tunnel_watch *w = ctx;
    return !(m->type == RT_MSG_DOWN && m->ref == w->ref);
}

/* Copies both ways between client and upstream until either side is done,
 * or until no byte came in either way for `idle_ms`; `pending`/`plen`:
 * upstream bytes already read past the 101 head. The upstream-to-client
 * direction runs in a pump process with its own descriptors (one waiter
 * per descriptor, see rt.h), and the tunnel returns only once the pump has
 * exited. */
static void tunnel(struct gw__exchange *ex, int ufd, const char *pending, size_t plen,
                   uint32_t idle_ms)
{
    if (plen && rt_write(ex->fd, pending, plen, GW__WRITE_TIMEOUT_MS) < 0)
        return;
    if (ex->len && rt_write(ufd, ex->buf + ex->off, ex->len, GW__WRITE_TIMEOUT_MS) < 0)
        return;
    ex->len = 0;
    struct tunnel_state *t = tunnel_state_new(ufd, ex->fd);
    if (!t)
        return;
    uint64_t mine = rt_defer(tunnel_state_unref, t);
    if (!mine) {
        pump_done(t); /* the pump's share */
        tunnel_state_unref(t);
        return;
    }
    struct tunnel_watch w;
    struct rt_spawn_opts o = {.link = true,
                              .monitor = true,
                              .monitor_ref = &w.ref,
                              .kind = RT_KIND_PROCESS,
                              .initial_call = "gw_proxy:tunnel"};
    bool trapped = rt_trap_exit(true);
    if (rt_spawn(pump_main, t, &o, &w.pump) < 0) {
        pump_done(t); /* not started: its share is still ours */
        rt_undefer(mine, true);
        rt_trap_exit(trapped);
        return;
    }
    struct rt_msg *down = NULL;
    rt_atom exit_reason = RT_NORMAL;
    for (;;) {
        uint64_t now = rt_now_ms();
        uint64_t last = atomic_load_explicit(&t->last_ms, memory_order_relaxed);
        uint64_t end = last + idle_ms;
        if (now >= end)
            break; /* idle both ways: the pump is stopped below */
        int r = rt_poll(ex->fd, RT_POLL_IN | RT_POLL_MSG, (int64_t)(end - now));
        if (r == -ETIMEDOUT)
            continue; /* the pump may have moved bytes meanwhile: look again */
        if (r == (int)RT_POLL_MSG) {
            down = rt_receive_ref(w.ref, 0);
            if (down) /* the other direction ended */
                break;
            /* Selective: a DOWN that lands meanwhile stays queued for the
             * wait below. Whatever else woke us is taken, so that the poll
             * does not wake for it again. */
            struct rt_msg *m = rt_receive_match(is_not_down, &w, 0);
            if (m && is_foreign_exit(m, &w))
                exit_reason = (rt_atom)m->u64;
            rt_msg_free(m);
            if (exit_reason != RT_NORMAL)
                break;
            continue;
        }
        if (r < 0)
            break;
        ssize_t n = read(ex->fd, ex->buf, GW__BUF_SIZE);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            /* The client is done sending: let the other side finish, unless
             * told to stop meanwhile. */
            shutdown(ufd, SHUT_WR);
            struct rt_msg *m = rt_receive_match(is_down_or_foreign_exit, &w, 5000);
            if (m && m->type == RT_MSG_DOWN) {
                down = m;
            } else if (m) {
                exit_reason = (rt_atom)m->u64;
                rt_msg_free(m);
            }
            break;
        }
        atomic_store_explicit(&t->last_ms, rt_now_ms(), memory_order_relaxed);
        if (tunnel_write(t, ufd, ex->buf, (size_t)n) < 0)
            break;
    }
    if (!down) {
        rt_exit_signal(w.pump, RT_KILL);
        down = rt_receive_ref(w.ref, RT_INFINITY);
    }
    rt_msg_free(down);
    if (!atomic_load_explicit(&t->pump_owns, memory_order_acquire))
        pump_done(t); /* finished without running: its share is still ours */
    /* Its link's EXIT came before the DOWN: take it before trapping ends. */
    rt_msg_free(rt_receive_match(is_exit_from, &w, 0));
    rt_trap_exit(trapped);
    /* Exit signals that came while trapped are messages now: obey the
     * first that stops the process, as it would have untrapped. */
    struct rt_msg *m;
    while (exit_reason == RT_NORMAL && (m = rt_receive_match(is_foreign_exit, &w, 0))) {
        exit_reason = (rt_atom)m->u64;
        rt_msg_free(m);
    }
    rt_undefer(mine, true);
    ex->keep_alive = false;
    if (exit_reason != RT_NORMAL)
        rt_exit(exit_reason);
}

/* Streams the request body upstream. 0, or a negative code: -EPIPE for an
 * upstream write failure, or the client-side error from gw__body_next. */
static int send_body(struct gw__exchange *ex, int ufd, bool chunked, uint64_t *sent)
{
    const char *d;
    size_t n;
    int rc;
    char pre[32], post[8];
    while ((rc = gw__body_next(ex, &d, &n, ex->lis->request_timeout_ms)) == 1) {
        if (n == 0)
            continue;
        *sent += n;
        if (chunked) {
            int a = gw_http_chunk_start(n, pre, sizeof pre);
            int b = gw_http_chunk_end(post, sizeof post);
            struct iovec iov[3] = {{pre, (size_t)a}, {(void *)d, n}, {post, (size_t)b}};
            if (rt_writev(ufd, iov, 3, GW__WRITE_TIMEOUT_MS) < 0)
                return -EPIPE;
        } else if (rt_write(ufd, d, n, GW__WRITE_TIMEOUT_MS) < 0) {
            return -EPIPE;
        }
    }
    if (rc < 0)
        return rc;
    if (chunked) {
        int a = gw_http_chunk_last(pre, sizeof pre);
        if (rt_write(ufd, pre, (size_t)a, GW__WRITE_TIMEOUT_MS) < 0)
            return -EPIPE;
    }
    return 0;
}

/* Writes a 101 head as the upstream sent it (Upgrade and Connection kept). */
static int write_switching(struct gw__exchange *ex, const struct gw_http_head *r)
{
    size_t cap = 256;
    for (size_t i = 0; i < r->nheaders; i++)
        cap += r->headers[i].name_len + r->headers[i].value_len + 4;
    char *buf = rt_alloc(cap);
    if (!buf)
        return -ENOMEM;
    size_t n = (size_t)snprintf(buf, cap, "HTTP/1.1 101 Switching Protocols\r\n");
    for (size_t i = 0; i < r->nheaders; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s: %s\r\n", r->headers[i].name,
                              r->headers[i].value);
    n += (size_t)snprintf(buf + n, cap - n, "x-request-id: %s\r\n\r\n", ex->request_id);
    int rc = gw__client_write(ex, buf, n);
    rt_free(buf);
    return rc;
}

enum attempt_result {
    A_DONE,   /* answered (status in ex->status) */
    A_RETRY,  /* nothing consumed: try again */
    A_CLOSE,  /* answered partly or not at all: close the client */
    A_FAILED, /* the upstream failed before any response byte reached the
                 client: a->fail_status/fail_msg say what to answer; the
                 request may be retried when idempotent */
};

struct attempt {
    struct gw__exchange *ex;
    struct gw_upstream *up;
    uint64_t guard; /* cleanup of the checked-out connection (gw__conn_checkin) */
    struct gw_target *target;
    int ufd;
    bool reused;
    const char *head;
    size_t head_len;
    uint32_t response_timeout_ms;
    uint32_t tunnel_idle_ms;
    bool body_started;
    uint64_t bytes_out;
    int fail_status; /* when A_RETRY runs out */
    const char *fail_msg;
    const struct gw_http_edits *resp_edits; /* the route's response_headers, or NULL */
    /* The start of the request body, read before any upstream was chosen. */
    const char *pre;
    size_t pre_len;
    bool pre_complete; /* the whole body */
};

#define PREREAD 65536
/* A pre-read buffer holds PREREAD bytes plus one whole body piece (a piece
 * is at most one client read), so a piece is never split. */
#define PREREAD_CAP (PREREAD + GW__BUF_SIZE)

/* Reads the request body up to PREREAD bytes before anything goes upstream:
 * a body refused by the parser (bad chunk, over the limit) is then answered
 * with nothing forwarded, and a small body can be sent again on a retry.
 * Returns 0, or the status to answer. */
static int preread_body(struct gw__exchange *ex, struct attempt *a, char *buf)
{
    if (ex->head->framing == GW_HTTP_BODY_NONE) {
        a->pre_complete = true;
        return 0;
    }
    if (ex->head->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (rt_write(ex->fd, cont, sizeof cont - 1, GW__WRITE_TIMEOUT_MS) < 0)
            return 400;
    }
    size_t len = 0;
    while (len < PREREAD) { /* stops past PREREAD, within PREREAD_CAP */
        const char *d;
        size_t n;
        int rc = gw__body_next(ex, &d, &n, ex->lis->request_timeout_ms);
        if (rc == 0) {
            a->pre_complete = true;
            break;
        }
        if (rc < 0)
            return rc == -EPROTO ? gw_http_parser_status(ex->parser)
                                 : (rc == -ETIMEDOUT ? 408 : 400);
        memcpy(buf + len, d, n);
        len += n;
    }
    a->pre = buf;
    a->pre_len = len;
    return 0;
}

static void upstream_failed(struct attempt *a, const char *what)
{
    gw__target_result(a->target, false, what);
    gw_metrics_upstream_error(gw__upstream_name(a->up), gw__target_addr(a->target));
}

/* The response parser and head of relay_response, malloc'd by the wire
 * module: a deferred cleanup frees them when the request process is killed
 * mid-response (an admin kill, an exit signal during a tunnel), which
 * abandons the stack before relay_response's own cleanup. */
struct relay_owned {
    struct gw_http_parser *rp;
    struct gw_http_head *resp;
};

static void relay_owned_free(void *arg)
{
    struct relay_owned *o = arg;
    gw_http_head_free(o->resp);
    gw_http_parser_free(o->rp);
    o->resp = NULL;
    o->rp = NULL;
}

/* Reads and relays the response. */
static enum attempt_result relay_response(struct attempt *a, char *rbuf)
{
    struct gw__exchange *ex = a->ex;
    const struct gw_http_head *req = ex->head;
    struct gw_http_parser *rp = NULL;
    enum attempt_result res = A_CLOSE;
    bool reusable = false;
    bool head_sent = false;    /* the client response head is decided (in obuf) */
    bool head_written = false; /* ... and written: the client has seen it */
    size_t pending = 0;        /* head bytes in obuf not yet written */
    enum gw_http_out_framing framing = GW_HTTP_OUT_NONE;
    struct gw_http_head *resp = NULL;
    char *obuf = NULL;
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    lim.max_body_bytes = 0; /* responses stream through: no size limit */
    lim.require_host = false;
    struct relay_owned *own = rt_calloc(1, sizeof(*own));
    uint64_t own_guard = own ? rt_defer(relay_owned_free, own) : 0;
    if (!own_guard || gw_http_parser_new(&rp, GW_HTTP_RESPONSE, &lim) < 0)
        goto out;
    own->rp = rp;
    bool is_head = strcmp(req->method, "HEAD") == 0;
    gw_http_parser_expect(rp, is_head, false);
    uint64_t deadline = rt_now_ms() + a->response_timeout_ms;
    size_t off = 0, len = 0;
    bool got_any = false;
    bool need_read = true;
    for (;;) {
        /* The parser is fed first, even with nothing new: it may hold a
         * pending end of message. Only when it needs more is the socket read. */
        if (len == 0 && need_read) {
            int64_t tmo = head_sent ? GW__WRITE_TIMEOUT_MS : (int64_t)(deadline - rt_now_ms());
            ssize_t n = tmo > 0 ? rt_read(a->ufd, rbuf, RBUF, tmo) : -ETIMEDOUT;
            if (n == -ETIMEDOUT) {
                upstream_failed(a, "response timeout");
                if (!head_written) {
                    a->fail_status = 504;
                    a->fail_msg = "upstream response timed out";
                    res = A_FAILED;
                }
                goto out;
            }
            if (n <= 0) {
                struct gw_http_event fe;
                if (n == 0 && got_any && gw_http_parser_finish(rp, &fe) == 0 &&
                    fe.type == GW_HTTP_EV_DONE) {
                    /* read-until-close body complete: a body relayed
                     * chunked needs its last chunk */
                    ex->keep_alive = false;
                    char last[8];
                    struct iovec iov[2];
                    int k = 0;
                    if (pending) /* an empty body: the head is still to write */
                        iov[k++] = (struct iovec){obuf, pending};
                    if (head_sent && framing == GW_HTTP_OUT_CHUNKED) {
                        int x = gw_http_chunk_last(last, sizeof last);
                        iov[k++] = (struct iovec){last, (size_t)x};
                    }
                    if (k) {
                        ex->response_started = true;
                        if (rt_writev(ex->fd, iov, k, GW__WRITE_TIMEOUT_MS) < 0)
                            goto out;
                    }
                    pending = 0;
                    gw__target_result(a->target, true, NULL);
                    res = A_DONE;
                    goto out;
                }
                if (!got_any && a->reused && !a->body_started) {
                    res = A_RETRY; /* stale keep-alive connection */
                    goto out;
                }
                upstream_failed(a, n == 0 ? "closed the connection early" : "read error");
                if (!head_written) {
                    a->fail_status = 502;
                    a->fail_msg = "upstream closed the connection";
                    res = A_FAILED;
                }
                goto out;
            }
            got_any = true;
            off = 0;
            len = (size_t)n;
        }
        size_t used = 0;
        struct gw_http_event ev;
        int rc = gw_http_parser_feed(rp, rbuf + off, len, &used, &ev);
        if (rc < 0) {
            upstream_failed(a, gw_http_parser_reason(rp));
            if (!head_written) {
                a->fail_status = 502;
                a->fail_msg = "upstream sent a malformed response";
                res = A_FAILED;
            }
            goto out;
        }
        off += used;
        len -= used;
        need_read = ev.type == GW_HTTP_EV_NEED_MORE;
        switch (ev.type) {
        case GW_HTTP_EV_NEED_MORE:
            break;
        case GW_HTTP_EV_HEAD:
            resp = ev.head;
            own->resp = resp;
            if (resp->status == 101 && req->upgrade) {
                if (write_switching(ex, resp) == 0) {
                    gw__target_result(a->target, true, NULL);
                    ex->status = 101;
                    tunnel(ex, a->ufd, rbuf + off, len, a->tunnel_idle_ms);
                }
                res = A_DONE;
                ex->keep_alive = false;
                goto out;
            }
            if (resp->status >= 100 && resp->status < 200) {
                /* interim responses: the gateway answered 100-continue itself */
                gw_http_head_free(resp);
                resp = NULL;
                own->resp = NULL;
                break;
            }
            if (!obuf)
                obuf = rt_alloc(GW__HEAD_BUF);
            size_t olen = 0;
            bool keep_out = false;
            if (!obuf || gw_http_response_head_write_edited(
                             resp, req, ex->request_id, ex->keep_alive, a->resp_edits, obuf,
                             GW__HEAD_BUF, &olen, &framing, &keep_out) < 0) {
                upstream_failed(a, "response head too large");
                gw__client_error(ex, 502, "upstream response head too large", false);
                res = A_DONE;
                ex->keep_alive = false;
                goto out;
            }
            ex->keep_alive = keep_out;
            ex->status = resp->status;
            /* Written with the first body piece (or the end): one write
             * for a small response instead of two. */
            pending = olen;
            head_sent = true;
            break;
        case GW_HTTP_EV_BODY: {
            if (!head_sent || ev.len == 0 || framing == GW_HTTP_OUT_NONE)
                break;
            a->bytes_out += ev.len;
            char pre[32], post[8];
            struct iovec iov[4];
            int k = 0;
            if (pending)
                iov[k++] = (struct iovec){obuf, pending};
            if (framing == GW_HTTP_OUT_CHUNKED) {
                int x = gw_http_chunk_start(ev.len, pre, sizeof pre);
                iov[k++] = (struct iovec){pre, (size_t)x};
            }
            iov[k++] = (struct iovec){(void *)ev.data, ev.len};
            if (framing == GW_HTTP_OUT_CHUNKED) {
                int y = gw_http_chunk_end(post, sizeof post);
                iov[k++] = (struct iovec){post, (size_t)y};
            }
            ex->response_started = true;
            if (rt_writev(ex->fd, iov, k, GW__WRITE_TIMEOUT_MS) < 0)
                goto out;
            pending = 0;
            head_written = true;
            break;
        }
        case GW_HTTP_EV_DONE: {
            if (!head_sent)
                break; /* the end of an interim response */
            char last[8];
            struct iovec iov[2];
            int k = 0;
            if (pending)
                iov[k++] = (struct iovec){obuf, pending};
            if (framing == GW_HTTP_OUT_CHUNKED) {
                int x = gw_http_chunk_last(last, sizeof last);
                iov[k++] = (struct iovec){last, (size_t)x};
            }
            if (k) {
                ex->response_started = true;
                if (rt_writev(ex->fd, iov, k, GW__WRITE_TIMEOUT_MS) < 0)
                    goto out;
            }
            pending = 0;
            head_written = true;
            gw__target_result(a->target, true, NULL);
            reusable = resp && resp->keep_alive && len == 0 && framing != GW_HTTP_OUT_CLOSE;
            if (framing == GW_HTTP_OUT_CLOSE)
                ex->keep_alive = false;
            res = A_DONE;
            goto out;
        }
        }
    }
out:
    if (own_guard)
        rt_undefer(own_guard, true); /* frees rp and resp */
    else
        gw_http_parser_free(rp);
    rt_free(own);
    rt_free(obuf);
    gw__conn_checkin(a->target, a->ufd, reusable, a->guard);
    a->ufd = -1;
    return res;
}

static enum attempt_result attempt_once(struct attempt *a, char *rbuf)
{
    struct gw__exchange *ex = a->ex;
    if (rt_write(a->ufd, a->head, a->head_len, GW__WRITE_TIMEOUT_MS) < 0) {
        gw__conn_checkin(a->target, a->ufd, false, a->guard);
        a->ufd = -1;
        if (a->reused)
            return A_RETRY;
        upstream_failed(a, "write error");
        a->fail_status = 502;
        a->fail_msg = "could not send the request upstream";
        return A_RETRY;
    }
    if (ex->head->framing != GW_HTTP_BODY_NONE) {
        bool chunked = ex->head->framing == GW_HTTP_BODY_CHUNKED;
        if (a->pre_len) {
            char pre[32], post[8];
            int x = chunked ? gw_http_chunk_start(a->pre_len, pre, sizeof pre) : 0;
            int y = chunked ? gw_http_chunk_end(post, sizeof post) : 0;
            struct iovec iov[3] = {
                {pre, (size_t)x}, {(void *)a->pre, a->pre_len}, {post, (size_t)y}};
            if (rt_writev(a->ufd, iov, 3, GW__WRITE_TIMEOUT_MS) < 0) {
                gw__conn_checkin(a->target, a->ufd, false, a->guard);
                a->ufd = -1;
                upstream_failed(a, "write error");
                return A_RETRY;
            }
        }
        if (a->pre_complete) {
            if (chunked) {
                char last[8];
                int x = gw_http_chunk_last(last, sizeof last);
                if (rt_write(a->ufd, last, (size_t)x, GW__WRITE_TIMEOUT_MS) < 0) {
                    gw__conn_checkin(a->target, a->ufd, false, a->guard);
                    a->ufd = -1;
                    return A_RETRY;
                }
            }
        } else {
            /* The rest streams from the client: from here on the request
             * cannot be sent again. */
            a->body_started = true;
            uint64_t sent = 0;
            int rc = send_body(ex, a->ufd, chunked, &sent);
            if (rc < 0) {
                gw__conn_checkin(a->target, a->ufd, false, a->guard);
                a->ufd = -1;
                if (rc == -EPIPE) {
                    upstream_failed(a, "write error");
                    gw__client_error(ex, 502, "upstream stopped reading the request", false);
                } else {
                    int st = rc == -EPROTO ? gw_http_parser_status(ex->parser)
                                           : (rc == -ETIMEDOUT ? 408 : 400);
                    gw__client_error(ex, st, "could not read the request body", false);
                }
                ex->keep_alive = false;
                return A_DONE;
            }
        }
    }
    return relay_response(a, rbuf);
}

static bool idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

/* The wire module's form of a route's field edits, in `storage` (process
 * memory, freed with the request process); NULL when the route has none. */
static const struct gw_http_edits *edits_of(const struct route_header_edit *re,
                                            struct gw_http_edits *storage)
{
    if (!re->nset && !re->nadd && !re->nremove)
        return NULL;
    struct gw_http_kv *set = re->nset ? rt_alloc(re->nset * sizeof(*set)) : NULL;
    struct gw_http_kv *add = re->nadd ? rt_alloc(re->nadd * sizeof(*add)) : NULL;
    if ((re->nset && !set) || (re->nadd && !add))
        return NULL;
    for (size_t i = 0; i < re->nset; i++)
        set[i] = (struct gw_http_kv){re->set[i].name, re->set[i].value};
    for (size_t i = 0; i < re->nadd; i++)
        add[i] = (struct gw_http_kv){re->add[i].name, re->add[i].value};
    *storage = (struct gw_http_edits){.set = set,
                                      .nset = re->nset,
                                      .add = add,
                                      .nadd = re->nadd,
                                      .remove = re->remove,
                                      .nremove = re->nremove};
    return storage;
}

int gw__proxy(struct gw__exchange *ex, const struct route *r, const char *upath, size_t upath_len,
              const char *prefix, size_t prefix_len, struct gw_upstream *up, char *target_out,
              size_t target_cap, uint64_t *bytes)
{
    struct gw_http_edits req_edits, resp_edits;
    const struct gw_upstream_config *uc = gw__upstream_config(up);
    uint32_t connect_ms = r->connect_timeout_ms ? r->connect_timeout_ms : uc->connect_timeout_ms;
    uint32_t response_ms =
        r->response_timeout_ms ? r->response_timeout_ms : uc->response_timeout_ms;
    int retries = r->retries >= 0 ? r->retries : (int)uc->retries;
    char *head = rt_alloc(GW__HEAD_BUF);
    char *rbuf = rt_alloc(RBUF);
    if (!head || !rbuf) {
        gw__client_error(ex, 500, "out of memory", false);
        return -ENOMEM;
    }
    struct gw_http_fwd fwd = {
        .client_addr = ex->client_addr,
        .keep_forwarded_for = true,
        .request_id = ex->request_id,
        .path = upath,
        .path_len = upath_len,
        .tunnel = ex->head->upgrade,
        .edits = edits_of(&r->request_headers, &req_edits),
        .port = ex->lis->port,
        .prefix = prefix,
        .prefix_len = prefix_len,
    };
    size_t head_len = 0;
    if (gw_http_request_head_write(ex->head, &fwd, head, GW__HEAD_BUF, &head_len) < 0) {
        gw__client_error(ex, 431, "request head too large to forward", false);
        return -EINVAL;
    }
    bool addressed = gw_http_head_get(ex->head, "host", NULL) || ex->head->target[0] != '/';
    struct attempt a = {.ex = ex,
                        .up = up,
                        .ufd = -1,
                        .head = head,
                        .head_len = head_len,
                        .response_timeout_ms = response_ms,
                        .tunnel_idle_ms =
                            r->tunnel_idle_ms ? r->tunnel_idle_ms : ex->lis->tunnel_idle_timeout_ms,
                        .fail_status = 502,
                        .fail_msg = "no upstream target answered",
                        .resp_edits = edits_of(&r->response_headers, &resp_edits)};
    char *pre = ex->head->framing == GW_HTTP_BODY_NONE ? NULL : rt_alloc(PREREAD_CAP);
    if (ex->head->framing != GW_HTTP_BODY_NONE && !pre) {
        gw__client_error(ex, 500, "out of memory", false);
        return -ENOMEM;
    }
    int pst = preread_body(ex, &a, pre);
    if (pst) {
        ex->keep_alive = false;
        gw__client_error(ex, pst, "could not read the request body", false);
        return ex->status;
    }
    const struct gw_target *last = NULL;
    int budget = 1 + retries;
    int stale_retries = 2;
    bool timed_out = false;
    while (budget > 0) {
        bool all_ejected = false;
        struct gw_target *t = gw__target_pick(up, last, &all_ejected);
        if (!t) {
            if (all_ejected) {
                a.fail_status = 503;
                a.fail_msg = "every upstream target is ejected";
            }
            break;
        }
        a.target = t;
        snprintf(target_out, target_cap, "%s", gw__target_addr(t));
        if (!r->preserve_host || !addressed) {
            /* Host names the target: the head differs per target. An
             * HTTP/1.0 request without Host still gets one, as HTTP/1.1
             * upstream requires it (RFC 9112 §3.2). */
            fwd.host_override = gw__target_addr(t);
            if (gw_http_request_head_write(ex->head, &fwd, head, GW__HEAD_BUF, &a.head_len) < 0) {
                gw__client_error(ex, 431, "request head too large to forward", false);
                return -EINVAL;
            }
        }
        gw__request_detail_set(ex->head->method, upath, upath_len, r->name, gw__target_addr(t));
        /* A request whose body is held whole is sent again on a fresh
         * connection if a pooled one turns out stale; only a streamed body
         * needs the pooled connection checked first. */
        int fd = gw__conn_checkout(t, connect_ms, !a.pre_complete, &a.reused, &a.guard);
        if (fd == -EBUSY) {
            /* Our own connection cap for the target: not the target's
             * failure, so it does not count towards ejecting it. */
            a.fail_status = 503;
            a.fail_msg = "upstream connection limit reached";
            last = t;
            budget--;
            continue;
        }
        if (fd < 0) {
            upstream_failed(&a, fd == -ETIMEDOUT ? "connect timeout" : "connect failed");
            if (fd == -ETIMEDOUT)
                timed_out = true;
            last = t;
            budget--;
            continue;
        }
        a.ufd = fd;
        enum attempt_result res = attempt_once(&a, rbuf);
        *bytes = a.bytes_out;
        if (res == A_DONE)
            return ex->status;
        if (res == A_CLOSE)
            return -EPIPE;
        if (res == A_FAILED) {
            /* Sent, but no answer: only an idempotent request whose body we
             * still hold may go to another target, and only if configured. */
            if (!(uc->retry_idempotent && a.pre_complete && idempotent(ex->head->method) &&
                  budget > 1)) {
                gw__client_error(ex, a.fail_status, a.fail_msg, false);
                ex->keep_alive = false;
                return ex->status;
            }
            last = t;
            budget--;
            continue;
        }
        if (a.reused && !a.body_started && stale_retries-- > 0)
            continue; /* a stale pooled connection: same budget, fresh connection */
        last = t;
        budget--;
    }
    if (timed_out && a.fail_status == 502) {
        a.fail_status = 504;
        a.fail_msg = "upstream connect timed out";
    }
    /* The connection stays usable when the whole body was read. */
    bool keep = ex->keep_alive && a.pre_complete;
    gw__client_error(ex, a.fail_status, a.fail_msg, keep);
    return ex->status;
}
