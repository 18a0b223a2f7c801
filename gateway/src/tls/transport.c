/*
 * transport.c: a struct gw__transport (exchange.h) over a TLS session, and
 * the server side's handshake (gw_tls_accept).
 *
 * The session reads and writes its socket without blocking (the BIO below
 * answers WANT_READ/WANT_WRITE), and the transport waits the runtime's way
 * (rt_poll on the socket), so a handshake or a slow client parks only its
 * own process. mbedtls asks its BIO for a record's 5-byte header, then for
 * the rest: the BIO reads what the socket has (up to a record and more)
 * in one read() and keeps what mbedtls did not ask for yet (`ra`, see
 * bio_recv), so a record costs one system call, not two. Bytes taken off
 * the socket but not yet read by the caller are therefore hidden in three
 * places: the read-ahead, a record not processed yet, and the plaintext of
 * a record a read did not take whole. `wait` and gw_tls_transport_pending
 * report all three, so no process sleeps on the socket while its next
 * bytes are already here.
 *
 * One session, two processes (split, for a tunnel): the connection process
 * reads and the tunnel's pump writes. Both handles share the session and a
 * mutex around it: every call into mbedtls is made under the mutex and
 * none waits while holding it (calls are non-blocking; a handle waits on
 * its own descriptor, from dup(), after letting go). The session and its
 * socket go when the last handle closes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../exchange.h"
#include "gw/http1.h"
#include "tls_int.h"

struct tls_sess {
    _Atomic int refs;
    pthread_mutex_t lock;
    int sock;    /* the connection's socket; the session's BIO reads and writes it */
    bool client; /* the gateway's side is the client (an upstream connection) */
    mbedtls_ssl_context ssl;
    struct gw__tls_idle idle; /* the record buffers while idle (idle.c) */
    /* The read-ahead: bytes the BIO took off the socket that mbedtls has
     * not asked for yet (ra[ra_off..ra_len)). Allocated to the size of
     * that rest when a read brings more than asked, freed as soon as it is
     * served whole, so a connection between requests holds none. Under
     * `lock`, like the session. */
    unsigned char *ra;
    size_t ra_off, ra_len;
    /* What keeps the session's configuration alive (a server's: the one
     * it was accepted with), released with the session. */
    void *owner;
    void (*release)(void *owner);
};

struct tls_tp {
    struct gw__transport base; /* base.fd: sock, or a dup() of it for a split handle */
    struct tls_sess *s;
};

/* ---- the BIO ---------------------------------------------------------------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tls_sess *s = ctx;
    for (;;) {
        ssize_t n = send(s->sock, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

/* What one read() of the socket may take: a whole record of the largest
 * size (16 KiB of content, its header and up to 2 KiB of expansion) and
 * whatever follows it in the socket up to that size. */
#define READ_AHEAD (16384 + 5 + 2048)

/* Where a read lands before the session takes its part: per thread, as a
 * BIO call never yields, and touched only inside one. */
static _Thread_local unsigned char scratch[READ_AHEAD];

static int sock_read(struct tls_sess *s, unsigned char *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(s->sock, buf, len);
        if (n >= 0)
            return (int)n; /* 0: the peer closed (MBEDTLS_ERR_SSL_CONN_EOF to the caller) */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MBEDTLS_ERR_SSL_WANT_READ;
        if (errno == ECONNRESET)
            return MBEDTLS_ERR_NET_CONN_RESET;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

/* mbedtls asks for exactly what it lacks of the record at hand: first the
 * header, then the rest. Reading only that costs two read()s a record, so
 * the socket is read for all it holds (up to READ_AHEAD) and what was not
 * asked for is kept for the next calls. The rest is kept in an allocation
 * of its own size, freed once served: nothing is held while no bytes are. */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tls_sess *s = ctx;
    if (s->ra) {
        size_t n = s->ra_len - s->ra_off;
        if (n > len)
            n = len;
        memcpy(buf, s->ra + s->ra_off, n);
        s->ra_off += n;
        if (s->ra_off == s->ra_len) {
            free(s->ra);
            s->ra = NULL;
            s->ra_off = s->ra_len = 0;
        }
        return (int)n;
    }
    if (len >= READ_AHEAD)
        return sock_read(s, buf, len);
    int n = sock_read(s, scratch, READ_AHEAD);
    if (n <= 0)
        return n;
    size_t give = (size_t)n < len ? (size_t)n : len;
    memcpy(buf, scratch, give);
    size_t rest = (size_t)n - give;
    if (rest > 0) {
        /* Without memory for the rest, the bytes would be lost: the
         * connection cannot go on. */
        if (!(s->ra = malloc(rest)))
            return MBEDTLS_ERR_NET_RECV_FAILED;
        memcpy(s->ra, scratch + give, rest);
        s->ra_off = 0;
        s->ra_len = rest;
    }
    return (int)give;
}

/* ---- sessions ---------------------------------------------------------------- */

static void sess_unref(struct tls_sess *s)
{
    /* acq_rel: the last handle sees the other's use of the session */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    gw__tls_idle_done(&s->ssl, &s->idle);
    mbedtls_ssl_free(&s->ssl);
    free(s->ra);
    if (s->release)
        s->release(s->owner);
    pthread_mutex_destroy(&s->lock);
    rt_close(s->sock);
    free(s);
}

static uint64_t deadline_of(int64_t timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : rt_now_ms() + (uint64_t)timeout_ms;
}

/* Waits on t's descriptor for what mbedtls asked for (rc: WANT_READ or
 * WANT_WRITE) until the deadline: 0 to try again, -ETIMEDOUT, -errno. */
static int wait_for(struct tls_tp *t, int rc, uint64_t deadline)
{
    uint64_t now = rt_now_ms();
    if (now >= deadline)
        return -ETIMEDOUT;
    int r = rt_poll(t->base.fd, rc == MBEDTLS_ERR_SSL_WANT_WRITE ? RT_POLL_OUT : RT_POLL_IN,
                    deadline == UINT64_MAX ? RT_INFINITY : (int64_t)(deadline - now));
    return r < 0 ? r : 0;
}

static bool want(int rc)
{
    return rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE;
}

/* ---- the transport ------------------------------------------------------------ */

static ssize_t tls_read(struct gw__transport *base, void *buf, size_t cap, int64_t timeout_ms)
{
    struct tls_tp *t = (struct tls_tp *)base;
    struct tls_sess *s = t->s;
    uint64_t deadline = deadline_of(timeout_ms);
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        gw__tls_idle_wake(&s->ssl, &s->idle);
        int n = mbedtls_ssl_read(&s->ssl, buf, cap);
        pthread_mutex_unlock(&s->lock);
        if (n > 0)
            return n;
        if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
            return 0;
        if (n == 0 || n == MBEDTLS_ERR_SSL_CONN_EOF) {
            /* The socket closed without close_notify. A client doing so
             * just goes away; a server doing so may be an attacker cutting
             * short a response whose end only the close marks (read until
             * close), which must not pass for a complete one. */
            return s->client ? -ECONNRESET : 0;
        }
        if (GW_TLS_READ_AGAIN(n))
            continue;
        if (!want(n))
            return -ECONNRESET;
        if (timeout_ms == 0)
            return -EAGAIN;
        int r = wait_for(t, n, deadline);
        if (r < 0)
            return r;
    }
}

/* One call into the session to write: bytes taken (> 0) or the library's
 * code (WANT_WRITE/WANT_READ: wait, then offer the same bytes again). At
 * most one record's plaintext is taken per call; a call that could not
 * send all of its record returns WANT_WRITE and must be repeated with the
 * same bytes. */
static int write_once(struct tls_sess *s, const void *buf, size_t len)
{
    pthread_mutex_lock(&s->lock);
    gw__tls_idle_wake(&s->ssl, &s->idle);
    int n = mbedtls_ssl_write(&s->ssl, buf, len);
    pthread_mutex_unlock(&s->lock);
    return n;
}

static ssize_t tls_write(struct gw__transport *base, const void *buf, size_t len,
                         int64_t timeout_ms)
{
    struct tls_tp *t = (struct tls_tp *)base;
    uint64_t deadline = deadline_of(timeout_ms);
    if (len > INT32_MAX)
        len = INT32_MAX;
    for (;;) {
        int n = write_once(t->s, buf, len);
        if (n > 0)
            return n;
        if (!want(n))
            return -EPIPE;
        int r = wait_for(t, n, deadline);
        if (r < 0)
            return r;
    }
}

static int write_all(struct gw__transport *base, const char *p, size_t len, uint64_t deadline)
{
    while (len > 0) {
        uint64_t now = rt_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        ssize_t n = tls_write(base, p, len,
                              deadline == UINT64_MAX ? RT_INFINITY : (int64_t)(deadline - now));
        if (n < 0)
            return (int)n;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The pieces are gathered into records of up to GATHER bytes, so that a
 * response head and a short body go out as one record, not one each. */
#define GATHER 16384

/* Where writev gathers: per thread, as the session copies the bytes into
 * its record at once and no call into it yields. Only while nothing waits:
 * what is left when the socket is full moves to the process's own memory
 * first (write_gathered). */
static _Thread_local char gather[GATHER];

/* This thread's gather area, asked again after anything that may wait: a
 * process can resume on another thread, and a compiler may keep a
 * thread-local's address across calls within one function. Out of line,
 * and with an opaque step the optimizer cannot see through, so that it
 * cannot take the function for a constant one and reuse an earlier call's
 * result either. */
__attribute__((noinline)) static char *gather_area(void)
{
    char *g = gather;
    __asm__ volatile("" : "+r"(g));
    return g;
}

/* Writes g[0..len), gathered in this thread's area: without waiting while
 * the socket takes it (the usual case: no allocation, no copy but the
 * session's); once it must wait, the rest is copied to an allocation of
 * the process's (another process of this thread may gather meanwhile) and
 * offered again from there, the same bytes as mbedtls requires. */
static int write_gathered(struct gw__transport *base, const char *g, size_t len, uint64_t deadline)
{
    struct tls_tp *t = (struct tls_tp *)base;
    while (len > 0) {
        int n = write_once(t->s, g, len);
        if (n > 0) {
            g += n;
            len -= (size_t)n;
            continue;
        }
        if (!want(n))
            return -EPIPE;
        break;
    }
    if (len == 0)
        return 0;
    /* rt_alloc: freed with the process if it is killed while it waits. */
    char *rest = rt_alloc(len);
    if (!rest)
        return -ENOMEM;
    memcpy(rest, g, len);
    int rc = write_all(base, rest, len, deadline);
    rt_free(rest);
    return rc;
}

static int tls_writev(struct gw__transport *base, const struct iovec *iov, int iovcnt,
                      int64_t timeout_ms)
{
    uint64_t deadline = deadline_of(timeout_ms);
    if (iovcnt == 1)
        return write_all(base, iov[0].iov_base, iov[0].iov_len, deadline);
    int rc = 0;
    char *g = gather_area();
    size_t used = 0;
    for (int i = 0; i < iovcnt && rc == 0; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        if (len >= GATHER) { /* a large piece goes as it is, after what was gathered */
            rc = write_gathered(base, g, used, deadline);
            used = 0;
            if (rc == 0)
                rc = write_all(base, p, len, deadline);
            g = gather_area(); /* the writes may have waited */
            continue;
        }
        if (used + len > GATHER) {
            rc = write_gathered(base, g, used, deadline);
            used = 0;
            if (rc < 0)
                break;
            g = gather_area();
        }
        memcpy(g + used, p, len);
        used += len;
    }
    if (rc == 0 && used)
        rc = write_gathered(base, g, used, deadline);
    return rc;
}

static bool pending(struct tls_sess *s)
{
    pthread_mutex_lock(&s->lock);
    bool p =
        s->ra || mbedtls_ssl_get_bytes_avail(&s->ssl) > 0 || mbedtls_ssl_check_pending(&s->ssl);
    pthread_mutex_unlock(&s->lock);
    return p;
}

bool gw_tls_transport_pending(struct gw__transport *base)
{
    return pending(((struct tls_tp *)base)->s);
}

static int tls_wait(struct gw__transport *base, unsigned events, int64_t timeout_ms)
{
    struct tls_tp *t = (struct tls_tp *)base;
    if ((events & RT_POLL_IN) && pending(t->s))
        return RT_POLL_IN;
    return rt_poll(t->base.fd, events, timeout_ms);
}

static void tls_shutdown(struct gw__transport *base)
{
    struct tls_tp *t = (struct tls_tp *)base;
    /* close_notify if the socket takes it now; a client that reads the
     * last response does not need it (the response is framed). */
    pthread_mutex_lock(&t->s->lock);
    gw__tls_idle_wake(&t->s->ssl, &t->s->idle);
    mbedtls_ssl_close_notify(&t->s->ssl);
    pthread_mutex_unlock(&t->s->lock);
    shutdown(t->s->sock, SHUT_WR);
}

/* The exchange trims while the connection idles: the record buffers' pages
 * go back to the system when nothing is in flight (idle.c), and the next
 * read or write wakes the session first. The pending checks above read
 * the context's fields only, never the buffers, so they need no wake. */
static void tls_trim(struct gw__transport *base)
{
    struct tls_sess *s = ((struct tls_tp *)base)->s;
    pthread_mutex_lock(&s->lock);
    gw__tls_idle_trim(&s->ssl, &s->idle);
    pthread_mutex_unlock(&s->lock);
}

static const struct gw__transport_ops tls_ops;

static int tls_split(struct gw__transport *base, struct gw__transport **out)
{
    struct tls_tp *t = (struct tls_tp *)base;
    struct tls_tp *o = malloc(sizeof *o);
    if (!o)
        return -ENOMEM;
    int fd = fcntl(t->s->sock, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        free(o);
        return -e;
    }
    o->base.ops = &tls_ops;
    o->base.fd = fd;
    o->s = t->s;
    /* relaxed: the new handle is handed over by a message, which orders it */
    atomic_fetch_add_explicit(&t->s->refs, 1, memory_order_relaxed);
    *out = &o->base;
    return 0;
}

static void tls_close(struct gw__transport *base)
{
    struct tls_tp *t = (struct tls_tp *)base;
    if (t->base.fd != t->s->sock)
        rt_close(t->base.fd);
    sess_unref(t->s);
    free(t);
}

static const struct gw__transport_ops tls_ops = {
    .read = tls_read,
    .write = tls_write,
    .writev = tls_writev,
    .wait = tls_wait,
    .pending = gw_tls_transport_pending,
    .shutdown = tls_shutdown,
    .split = tls_split,
    .close = tls_close,
    .trim = tls_trim,
};

/* ---- the server's handshake ---------------------------------------------------- */

/* A plaintext HTTP request on a TLS port: the first byte of a method
 * (tokens are letters in practice) where a TLS record starts with 0x16. */
static bool looks_like_http(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}

/* Answers 400 over plaintext, stops sending, and reads what the client
 * sent until it closes or linger_ms pass, so the close does not reset the
 * connection before the client read the answer. */
static void answer_plaintext(int fd, int64_t linger_ms)
{
    char buf[512];
    size_t len = 0;
    if (gw_http_error_write(400, "this port speaks TLS: use https://", NULL, true, buf, sizeof buf,
                            &len) < 0)
        return;
    if (rt_write(fd, buf, len, linger_ms) < 0)
        return;
    shutdown(fd, SHUT_WR);
    uint64_t end = rt_now_ms() + (uint64_t)linger_ms;
    char sink[1024];
    while (rt_now_ms() < end && rt_read(fd, sink, sizeof sink, (int64_t)(end - rt_now_ms())) > 0)
        ;
}

/* A failed handshake: *why set and counted, as soon as the reason is known;
 * gives rc back. */
static int refuse(enum gw_tls_fail *why, enum gw_tls_fail reason, int rc)
{
    *why = reason;
    gw_tls_count_failure(true, reason);
    return rc;
}

/* Waits for the first byte and looks at it without taking it: 0x16 (a
 * handshake record) gives 0; else -EPROTO with *why set, after answering
 * a plaintext request. */
static int first_byte(int fd, uint64_t deadline, enum gw_tls_fail *why)
{
    for (;;) {
        unsigned char c;
        ssize_t n = recv(fd, &c, 1, MSG_PEEK);
        if (n == 1) {
            if (c == 0x16)
                return 0;
            if (!looks_like_http(c))
                return refuse(why, GW_TLS_FAIL_PROTOCOL, -EPROTO);
            /* Counted before the answer goes out: the answer's linger
             * lasts until the client closes (up to a second), and a client
             * that has read the answer must find the failure counted (in
             * /metrics) already. */
            int rc = refuse(why, GW_TLS_FAIL_PLAINTEXT, -EPROTO);
            uint64_t now = rt_now_ms();
            int64_t left = now < deadline ? (int64_t)(deadline - now) : 0;
            answer_plaintext(fd, left < 1000 ? left : 1000);
            return rc;
        }
        if (n == 0)
            return refuse(why, GW_TLS_FAIL_CLOSED, -ECONNRESET);
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return refuse(why, GW_TLS_FAIL_CLOSED, -errno);
        uint64_t now = rt_now_ms();
        if (now >= deadline)
            return refuse(why, GW_TLS_FAIL_TIMEOUT, -ETIMEDOUT);
        int r = rt_poll(fd, RT_POLL_IN, (int64_t)(deadline - now));
        if (r == -ETIMEDOUT)
            return refuse(why, GW_TLS_FAIL_TIMEOUT, r);
        if (r < 0)
            return refuse(why, GW_TLS_FAIL_CLOSED, r);
    }
}

/* ---- sessions for both sides ------------------------------------------------------- */

int gw__tls_transport_new(int fd, const mbedtls_ssl_config *conf, void *owner,
                          void (*release)(void *), struct gw__transport **out)
{
    struct tls_sess *s = calloc(1, sizeof *s);
    struct tls_tp *t = malloc(sizeof *t);
    if (!s || !t) {
        free(s);
        free(t);
        if (release)
            release(owner);
        rt_close(fd);
        return -ENOMEM;
    }
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->lock, NULL);
    s->sock = fd;
    s->client = gw_tls_conf_is_client(conf);
    s->owner = owner;
    s->release = release;
    mbedtls_ssl_init(&s->ssl);
    t->base.ops = &tls_ops;
    t->base.fd = fd;
    t->s = s;
    if (mbedtls_ssl_setup(&s->ssl, conf) != 0) {
        tls_close(&t->base);
        return -ENOMEM;
    }
    gw__tls_idle_setup(&s->ssl, &s->idle);
    mbedtls_ssl_set_bio(&s->ssl, s, bio_send, bio_recv, NULL);
    *out = &t->base;
    return 0;
}

mbedtls_ssl_context *gw__tls_transport_ssl(struct gw__transport *t)
{
    return &((struct tls_tp *)t)->s->ssl;
}

size_t gw__tls_transport_read_ahead(struct gw__transport *base)
{
    struct tls_sess *s = ((struct tls_tp *)base)->s;
    pthread_mutex_lock(&s->lock);
    size_t n = s->ra ? s->ra_len - s->ra_off : 0;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int gw__tls_handshake(struct gw__transport *base, uint64_t deadline, struct gw__tls_hs *hs,
                      int *mrc)
{
    struct tls_tp *t = (struct tls_tp *)base;
    for (;;) {
        if (hs)
            gw__tls_hs_begin(hs);
        int rc = mbedtls_ssl_handshake(&t->s->ssl);
        if (hs)
            gw__tls_hs_end();
        if (rc == 0)
            return 0;
        if (!want(rc)) {
            *mrc = rc;
            return -EPROTO;
        }
        int r = wait_for(t, rc, deadline);
        if (r < 0)
            return r;
    }
}

static void release_server(void *srv)
{
    gw_tls_server_unref(srv);
}

static void close_fd(void *fd)
{
    rt_close((int)(intptr_t)fd);
}

static void close_transport(void *t)
{
    struct gw__transport *tp = t;
    tp->ops->close(tp);
}

int gw_tls_accept(struct gw_tls_listener *tl, int fd, int64_t timeout_ms,
                  struct gw__transport **out, struct gw_tls_peer *peer, enum gw_tls_fail *why)
{
    uint64_t deadline = deadline_of(timeout_ms);
    int rc = rt_fd_nonblock(fd);
    if (rc < 0) {
        close(fd);
        return refuse(why, GW_TLS_FAIL_CLOSED, rc);
    }
    /* Until it returns, the socket and then the session are this
     * process's to give back, also when it is killed mid-handshake. */
    uint64_t guard = rt_defer(close_fd, (void *)(intptr_t)fd);
    if (!guard) {
        rt_close(fd);
        return refuse(why, GW_TLS_FAIL_CLOSED, -ENOMEM);
    }
    if ((rc = first_byte(fd, deadline, why)) < 0) {
        rt_undefer(guard, true);
        return rc;
    }
    rt_undefer(guard, false);
    struct gw_tls_server *srv = gw_tls_listener_acquire(tl);
    struct gw__transport *t;
    /* The session holds the configuration it was accepted with: a reload
     * does not change what an open connection negotiated. */
    if ((rc = gw__tls_transport_new(fd, &srv->conf, srv, release_server, &t)) < 0)
        return refuse(why, GW_TLS_FAIL_PROTOCOL, rc);
    if (!(guard = rt_defer(close_transport, t))) {
        t->ops->close(t);
        return refuse(why, GW_TLS_FAIL_CLOSED, -ENOMEM);
    }
    mbedtls_ssl_context *ssl = gw__tls_transport_ssl(t);
    struct gw__tls_hs hs = {.srv = srv};
    int mrc = 0;
    rc = gw__tls_handshake(t, deadline, &hs, &mrc);
    if (rc == -EPROTO) {
        /* The name is the reason when the listener refused it, or gave a
         * client that named none no certificate at all. */
        if (hs.sni_unknown || (srv->refuse_unknown && !hs.sni_given))
            *why = GW_TLS_FAIL_UNKNOWN_NAME;
        else
            *why = gw__tls_fail_of(mrc);
        goto out;
    }
    if (rc < 0) {
        *why = rc == -ETIMEDOUT ? GW_TLS_FAIL_TIMEOUT : GW_TLS_FAIL_CLOSED;
        goto out;
    }
    /* Optional client certificates: one that was given must verify (the
     * library lets the handshake finish without it). */
    if (srv->client_auth == GW_TLS_CLIENT_AUTH_OPTIONAL && mbedtls_ssl_get_peer_cert(ssl) &&
        mbedtls_ssl_get_verify_result(ssl) != 0) {
        *why = GW_TLS_FAIL_CLIENT_CERT;
        rc = -EPROTO;
        goto out;
    }
    gw__tls_peer_fill(ssl, &hs, peer);
    gw_tls_count_handshake(true, hs.resumed);
    rt_undefer(guard, false);
    *out = t;
    return 0;
out:
    gw_tls_count_failure(true, *why);
    rt_undefer(guard, true); /* closes t */
    return rc;
}
