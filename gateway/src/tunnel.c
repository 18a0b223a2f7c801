/*
 * tunnel.c: an Upgrade tunnel, after the upstream answered 101: bytes copied
 * both ways between the client (through the exchange) and the upstream
 * connection, in the request process (client to upstream) and a pump
 * process (upstream to client).
 *
 * A tunnel lasts until either side closes or no byte crosses it either way
 * for the tunnel idle timeout (the route's, else the listener's), so an
 * abandoned tunnel gives its upstream connection back. The connection
 * closes after it.
 */
#include <errno.h>
#include <stdlib.h>

#include "gw_int.h"

#define TUNNEL_BUF 65536

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
    /* The pump's own handles (rt.h: one waiter per descriptor): a split of
     * the upstream's transport, and the exchange's half for writing to the
     * client. It closes them. */
    struct gw__transport *from, *to;
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
    t->from->ops->close(t->from);
    t->to->ops->close(t->to);
    tunnel_state_unref(t);
}

/* Writes buf[0..n) to `to` (all of it, or fail; at most
 * GW__WRITE_TIMEOUT_MS in all), stamping t->last_ms each time the peer
 * takes a piece: a slow reader that keeps taking bytes keeps the tunnel
 * busy while one write of 64 KiB lasts, one that takes none for the idle
 * timeout does not. */
static int tunnel_write(struct tunnel_state *t, struct gw__transport *to, const char *buf, size_t n)
{
    uint64_t deadline = rt_now_ms() + GW__WRITE_TIMEOUT_MS;
    while (n > 0) {
        uint64_t now = rt_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        ssize_t w = to->ops->write(to, buf, n, (int64_t)(deadline - now));
        if (w < 0)
            return (int)w;
        atomic_store_explicit(&t->last_ms, rt_now_ms(), memory_order_relaxed);
        buf += w;
        n -= (size_t)w;
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
    char *buf = rt_alloc(TUNNEL_BUF);
    if (!buf)
        return;
    for (;;) {
        /* No timeout here: the request process judges idleness for both
         * directions and stops the pump. */
        ssize_t n = t->from->ops->read(t->from, buf, TUNNEL_BUF, RT_INFINITY);
        if (n <= 0)
            break;
        atomic_store_explicit(&t->last_ms, rt_now_ms(), memory_order_relaxed);
        if (tunnel_write(t, t->to, buf, (size_t)n) < 0)
            break;
    }
    t->to->ops->shutdown(t->to);
}

/* A tunnel's state with two references and the pump's handles: a split of
 * upstream `up` and the exchange's writing half, or NULL. */
static struct tunnel_state *tunnel_state_new(struct gw__exchange *ex, struct gw__transport *up)
{
    struct tunnel_state *t = malloc(sizeof(*t));
    if (!t)
        return NULL;
    atomic_init(&t->refs, 2);
    atomic_init(&t->last_ms, rt_now_ms());
    atomic_init(&t->pump_owns, false);
    t->from = t->to = NULL;
    if (up->ops->split(up, &t->from) < 0 || gw__ex_tunnel_open(ex, &t->to) < 0) {
        if (t->from)
            t->from->ops->close(t->from);
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
void gw__tunnel(struct gw__exchange *ex, struct gw__transport *up, const char *pending, size_t plen,
                uint32_t idle_ms)
{
    gw__ex_close_after(ex); /* nothing follows a tunnel on this connection */
    if (plen && gw__ex_write(ex, pending, plen) < 0)
        return;
    const char *early;
    size_t elen;
    gw__ex_take_buffered(ex, &early, &elen);
    if (elen && gw__transport_write_all(up, early, elen, GW__WRITE_TIMEOUT_MS) < 0)
        return;
    struct tunnel_state *t = tunnel_state_new(ex, up);
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
        const char *d;
        size_t n;
        int r = gw__ex_tunnel_read(ex, (int64_t)(end - now), &d, &n);
        if (r == -ETIMEDOUT || r == -EAGAIN)
            continue; /* the pump may have moved bytes meanwhile: look again */
        if (r == 0) {
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
        if (r < 0) {
            /* The client is done sending: let the other side finish, unless
             * told to stop meanwhile. */
            up->ops->shutdown(up);
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
        if (tunnel_write(t, up, d, n) < 0)
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
    if (exit_reason != RT_NORMAL)
        rt_exit(exit_reason);
}
