/*
 * io.c: non-blocking I/O for processes.
 *
 * Registration. Each fd is registered once, edge-triggered and for every
 * event (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET), with the epoll set of the
 * scheduler a process first parks on it from, with the fd number (plus
 * one: 0 is the scheduler's eventfd) as the event's data. A park therefore
 * costs no epoll_ctl once the fd is registered; `mask` records where. A
 * process that moved to another scheduler is woken by the poller of that
 * set, which enqueues it there (rt__wake): one set, so each edge is
 * handled once, and no epoll_ctl when processes move. The number is
 * forgotten (mask, readiness, waiter) by rt_close, and when it comes back
 * from rt_accept or rt_connect or goes through rt_fd_nonblock; closing the
 * file removes its registration, so no EPOLL_CTL_DEL is made. A number
 * closed with close(2) and reused without one of those keeps a stale mask;
 * rt_poll, the call for descriptors that libraries open and close
 * themselves, therefore asks the kernel on each wait (EPOLL_CTL_ADD;
 * EEXIST means the registration holds).
 *
 * Readiness. Edges come once, whether or not someone waits, so each fd has
 * readiness bits (`ready`, RT_POLL_IN/RT_POLL_OUT): the poller of any set
 * sets them for the levels an event reports and then wakes the fd's waiter
 * if it waits for one of them. A process clears the bits of a direction
 * only just before it tries an operation in that direction (take()), or
 * when its wait ends (rt__io_release), after which it tries one: whatever
 * the edges announced, that operation sees. When the operation would block
 * it claims the fd, then looks at the bits again (seq_cst on both sides,
 * Dekker-style: either the poller sees the waiter or the waiter sees the
 * bit), and parks only when they are clear; otherwise it tries again. So an
 * edge between EAGAIN and the park, handled meanwhile by the poller of the
 * set that holds the fd (another scheduler's), is not lost, and a stale bit
 * costs one more try at most.
 *
 * The wait is edge-triggered: it ends on readiness that comes after an
 * operation saw EAGAIN. rt_read and friends try the operation themselves;
 * rt_poll tries poll(2); rt_hibernate_poll trusts its caller to have seen
 * EAGAIN (rt.h), and its continuation to try the operation.
 *
 * One waiter per descriptor (rt.h). `waiter` names the process parked on
 * each fd number, on any scheduler; a second one gets -EBUSY. It is claimed
 * before the park and given back when the wait ends: when the process
 * resumes from the park (woken, timed out, or by a message), when a
 * hibernated process resumes, and in rt__finish for a process that ends
 * while parked. A number closed or handed out anew drops its waiter.
 *
 * A registration of a dup()ed file whose number was closed and reused only
 * sets bits and wakes the number's new waiter spuriously; every wait
 * tolerates that.
 */
#include "rt_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#define RDY_MASK (RT_POLL_IN | RT_POLL_OUT)

/* Per fd number. */
struct fdslot {
    /* Pid of the process parked on it, or 0. seq_cst where it pairs with
     * `ready` (claim, and the poller's load); see each use. */
    _Atomic uint64_t waiter;
    /* The scheduler whose epoll set holds the fd, as a bit (0: none yet).
     * Set after the registration (epoll_ctl), with release, and read with
     * acquire: a set bit means the kernel holds it. Only the fd's waiter
     * registers it, so two never race. */
    _Atomic uint64_t mask;
    /* RT_POLL_IN/RT_POLL_OUT: edges the pollers saw since the bits were
     * last cleared (a process about to try an operation clears them). */
    _Atomic uint32_t ready;
    /* RT_POLL_IN/RT_POLL_OUT: the directions registered (valid while mask
     * is set). Written with mask, by the waiter only; relaxed, as mask's
     * acquire/release orders it. */
    _Atomic uint32_t events;
    /* What the waiter waits for (RT_POLL_IN/RT_POLL_OUT); written by the
     * waiter only, after its claim (see claim). */
    _Atomic uint32_t want;
};

static struct fdslot *fds;
static size_t fdmax;

int rt__io_init(void)
{
    struct rlimit rl;
    size_t n = 1 << 20;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
        n = rl.rlim_max;
    fds = mmap(NULL, n * sizeof(*fds), PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (fds == MAP_FAILED) {
        fds = NULL;
        return -ENOMEM;
    }
    fdmax = n;
    return 0;
}

void rt__io_done(void)
{
    if (fds)
        munmap(fds, fdmax * sizeof(*fds));
    fds = NULL;
    fdmax = 0;
}

void rt__io_forget(int fd)
{
    if (fd < 0 || (size_t)fd >= fdmax)
        return;
    /* Relaxed for mask and ready: the number is the caller's alone now (a
     * fresh file, or one about to be closed). A poller still handling an
     * event of the old file may set a bit afterwards: a spurious try. */
    atomic_store_explicit(&fds[fd].mask, 0, memory_order_relaxed);
    atomic_store_explicit(&fds[fd].events, 0, memory_order_relaxed);
    atomic_store_explicit(&fds[fd].ready, 0, memory_order_relaxed);
    /* Release: pairs with the acquire of a later claim (as rt__io_release). */
    atomic_store_explicit(&fds[fd].waiter, 0, memory_order_release);
}

/* Owner, just before it tries an operation for `bits` on fd: clears those
 * readiness bits, since the operation sees whatever their edges announced.
 * Acquire on the clear: it reads the poller's release (its fetch_or), so
 * the kernel's readiness the poller saw happens before the operation. The
 * first load only saves the locked instruction when nothing is set; a bit
 * it misses is seen by the check after the claim (a spurious try). */
static void take(int fd, uint32_t bits)
{
    if ((size_t)fd >= fdmax)
        return;
    if (atomic_load_explicit(&fds[fd].ready, memory_order_acquire) & bits)
        atomic_fetch_and_explicit(&fds[fd].ready, ~bits, memory_order_acquire);
}

/* Makes p the waiter of fd for `bits`: 0, or -EBUSY while another process
 * is. */
static int claim(struct rt_proc *p, int fd, uint32_t bits)
{
    uint64_t me = atomic_load_explicit(&p->pid, memory_order_relaxed);
    uint64_t cur = 0;
    /* seq_cst on success: the store half of the waiter's Dekker pair with
     * the poller (this store, then the load of `ready` in arm(); the poller
     * stores `ready`, then loads `waiter`). It also acquires the previous
     * waiter's release. */
    if (!atomic_compare_exchange_strong_explicit(&fds[fd].waiter, &cur, me, memory_order_seq_cst,
                                                 memory_order_relaxed) &&
        cur != me)
        return -EBUSY; /* `want` is the waiter's: left as it is */
    /* seq_cst, after the claim: a poller that saw this waiter but reads an
     * older `want` made that load, and so its store of `ready` before it,
     * earlier in the total order than this store; arm()'s load of `ready`
     * then sees its bits. */
    atomic_store_explicit(&fds[fd].want, bits, memory_order_seq_cst);
    p->wait_fd = fd;
    return 0;
}

/* Gives fd back; with `clear`, also the bits of the directions waited for
 * (see below). */
static void release(struct rt_proc *p, bool clear)
{
    int fd = p->wait_fd;
    if (fd < 0)
        return;
    p->wait_fd = -1;
    if ((size_t)fd >= fdmax)
        return;
    /* A wait that ends hands what its edges announced to the operation the
     * process tries next (rt.h: a continuation tries it), so their bits
     * are cleared here, or a hibernation right after would resume at once
     * for an edge already acted on. Not for a process that ended while
     * parked: it tries nothing, and the fd may be another's to use now.
     * Acquire: as in take(). */
    uint64_t me = atomic_load_explicit(&p->pid, memory_order_relaxed);
    if (clear && atomic_load_explicit(&p->state, memory_order_relaxed) != RT__EXITING &&
        atomic_load_explicit(&fds[fd].waiter, memory_order_relaxed) == me) {
        uint32_t bits = atomic_load_explicit(&fds[fd].want, memory_order_relaxed);
        atomic_fetch_and_explicit(&fds[fd].ready, ~bits, memory_order_acquire);
    }
    /* Only its own claim: the number may have been closed and claimed anew
     * by another process since (rt__io_forget). Release: what this process
     * did with the fd happens before the next waiter's claim. */
    atomic_compare_exchange_strong_explicit(&fds[fd].waiter, &me, 0, memory_order_release,
                                            memory_order_relaxed);
}

void rt__io_release(struct rt_proc *p)
{
    release(p, true);
}

/* Readiness bits for the levels an event reports: a hang-up or an error
 * ends a wait in either direction (the operation then fails or sees EOF). */
static uint32_t bits_of(uint32_t events)
{
    uint32_t b = 0;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        b |= RT_POLL_IN;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        b |= RT_POLL_OUT;
    return b;
}

void rt__io_poll(struct rt__sched *s, int timeout_ms)
{
    struct epoll_event evs[128];
    int n = epoll_wait(s->epfd, evs, 128, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint64_t data = evs[i].data.u64;
        if (data == 0) {
            uint64_t v;
            ssize_t r = read(s->evfd, &v, sizeof v);
            (void)r;
            continue;
        }
        size_t fd = (size_t)(data - 1);
        uint32_t bits = bits_of(evs[i].events);
        if (fd >= fdmax || !bits)
            continue;
        struct fdslot *f = &fds[fd];
        /* seq_cst: the poller's half of the Dekker pair (see claim). Also
         * a release for take()'s acquire. */
        atomic_fetch_or_explicit(&f->ready, bits, memory_order_seq_cst);
        uint64_t pid = atomic_load_explicit(&f->waiter, memory_order_seq_cst);
        /* seq_cst: if this reads an older `want` than the waiter's, this
         * load comes before the claimer's store in the total order, so the
         * claimer's later load of `ready` sees our bits (see claim). */
        if (!pid || !(atomic_load_explicit(&f->want, memory_order_seq_cst) & bits))
            continue;
        struct rt_proc *p = rt__lookup(pid);
        if (p && atomic_load_explicit(&p->pid, memory_order_acquire) == pid) {
            /* seq_cst: wake-up protocol (rt_int.h). */
            atomic_store_explicit(&p->wake_pending, 1, memory_order_seq_cst);
            rt__wake(p);
        }
    }
}

static uint32_t epoll_events(uint32_t bits)
{
    uint32_t e = EPOLLET;
    if (bits & RT_POLL_IN)
        e |= EPOLLIN | EPOLLRDHUP;
    if (bits & RT_POLL_OUT)
        e |= EPOLLOUT;
    return e;
}

/* Makes an epoll set hold fd for the directions `bits` at least, unless
 * `mask` and `events` say one does: the current scheduler's set, the first
 * time (EPOLL_CTL_ADD); a direction waited for later is added to it
 * (EPOLL_CTL_MOD). With `verify` the kernel is asked each time (EEXIST: it
 * holds), in the set `mask` names if any. Only the directions waited for
 * are registered: a socket writable all along, registered for EPOLLOUT,
 * would report an edge after each write was acknowledged, waking a
 * sleeping scheduler for nothing. */
static int enroll(int fd, uint32_t bits, bool verify)
{
    struct fdslot *f = &fds[fd];
    uint64_t m = atomic_load_explicit(&f->mask, memory_order_acquire);
    uint32_t have = m ? atomic_load_explicit(&f->events, memory_order_relaxed) : 0;
    uint64_t here = 1ull << rt__cur_sched->id;
    if (m && !verify && (have & bits) == bits && (m & here))
        return 0;
    /* The registration follows its waiter to the scheduler it parks on, so
     * that the readiness wakes it where it lives: a set that kept the fd
     * would pull every process waiting on it back to that set's scheduler,
     * and wake that scheduler for it. Moved only when a waiter migrated. */
    if (m && !verify && !(m & here)) {
        epoll_ctl(rt__rt.sched[__builtin_ctzll(m)].epfd, EPOLL_CTL_DEL, fd, NULL);
        atomic_fetch_and_explicit(&f->mask, ~m, memory_order_relaxed);
        m = 0;
        have = 0;
    }
    struct rt__sched *s = m ? &rt__rt.sched[__builtin_ctzll(m)] : rt__cur_sched;
    uint32_t need = have | bits;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = epoll_events(need);
    ev.data.u64 = (uint64_t)fd + 1;
    bool add = !m || verify;
    if (add && epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        if (errno != EEXIST)
            return -errno;
        add = false; /* held already; for `need`, unless mask says so */
        if (m && (have & bits) == bits)
            return 0;
    }
    /* ENOENT: the number was closed with close(2) and reused; the file
     * `mask` spoke of is gone (or lives on under another number). */
    if (!add && epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 &&
        (errno != ENOENT || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0))
        return -errno;
    atomic_store_explicit(&f->events, need, memory_order_relaxed);
    /* Release: a waiter that sees the bit sees `events` and the kernel's
     * registration made before it. */
    atomic_fetch_or_explicit(&f->mask, 1ull << s->id, memory_order_release);
    return 0;
}

/* Owner, after an operation for `events` on fd would block: claims fd and
 * makes sure an epoll set holds it. 0: p is the waiter and
 * may park; 1: an edge came meanwhile, p is not the waiter and tries the
 * operation again; -EBUSY or an epoll_ctl error: p waits on nothing. */
static int arm(struct rt_proc *p, int fd, unsigned events, bool verify)
{
    if (fd < 0 || (size_t)fd >= fdmax)
        return -EBADF; /* beyond RLIMIT_NOFILE's hard limit: cannot be open */
    uint32_t bits = events & RDY_MASK;
    int rc = claim(p, fd, bits);
    if (rc < 0)
        return rc;
    rc = enroll(fd, bits, verify);
    if (rc < 0)
        goto out;
    /* seq_cst: the load half of the Dekker pair (see claim). */
    if (atomic_load_explicit(&fds[fd].ready, memory_order_seq_cst) & bits)
        rc = 1;
out:
    if (rc != 0) {
        /* Not parking: nobody waits. Release by hand, leaving the bits for
         * the operation tried next (take() clears them). */
        uint64_t me = atomic_load_explicit(&p->pid, memory_order_relaxed);
        p->wait_fd = -1;
        atomic_compare_exchange_strong_explicit(&fds[fd].waiter, &me, 0, memory_order_release,
                                                memory_order_relaxed);
    }
    return rc;
}

int rt__io_arm(struct rt_proc *p, int fd, unsigned events)
{
    int rc = arm(p, fd, events, false);
    if (rc <= 0)
        return rc;
    /* Ready already: resume at once; the continuation tries the operation,
     * which sees what the bits announced. */
    take(fd, events & RDY_MASK);
    /* seq_cst: as every wake source (rt_int.h). */
    atomic_store_explicit(&p->wake_pending, 1, memory_order_seq_cst);
    return 0;
}

static int64_t deadline_of(int64_t timeout_ms)
{
    return timeout_ms < 0 ? -1 : (int64_t)rt_now_ms() + timeout_ms;
}

/* After an operation for `events` on fd would block: parks until fd may be
 * ready (or a spurious wake-up), or the deadline. 0: try the operation
 * again (also at once, when an edge came meanwhile). `verify`: see enroll. */
static int wait_fd(struct rt_proc *p, int fd, unsigned events, int64_t deadline, bool verify)
{
    if (deadline >= 0 && (int64_t)rt_now_ms() >= deadline)
        return -ETIMEDOUT;
    atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
    int rc = arm(p, fd, events, verify);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if (deadline >= 0)
        rt__wait_timer_arm(p, (uint64_t)deadline);
    RT__SET(&p->status_hint, RT_STATUS_WAITING);
    rt__park(p); /* ending here (an exit signal), rt__finish releases the fd */
    /* rt_poll (verify) may return RT_POLL_MSG without trying the fd, and
     * asks poll(2) on each look anyway: its edges stay announced for the
     * process's next wait (a hibernation after a message would otherwise
     * sleep through bytes already there). */
    release(p, !verify);
    if (deadline >= 0)
        rt__wait_timer_cancel(p);
    return 0;
}

int rt_fd_nonblock(int fd)
{
    /* A descriptor put in non-blocking mode is about to be waited on; its
     * number may have been closed with close(2) and reused, so the sets it
     * seems to be in are asked again (EEXIST) on its next waits. */
    if (fd >= 0 && (size_t)fd < fdmax)
        atomic_store_explicit(&fds[fd].mask, 0, memory_order_relaxed);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

ssize_t rt_read(int fd, void *buf, size_t len, int64_t timeout_ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    int64_t deadline = deadline_of(timeout_ms);
    rt__charge(p, 1);
    for (;;) {
        take(fd, RT_POLL_IN);
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = wait_fd(p, fd, RT_POLL_IN, deadline, false);
        if (rc < 0)
            return rc;
    }
}

ssize_t rt_writev(int fd, const struct iovec *iov_in, int iovcnt, int64_t timeout_ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    if (iovcnt < 0 || iovcnt > 64)
        return -EINVAL;
    struct iovec iov[64];
    memcpy(iov, iov_in, sizeof(*iov) * (size_t)iovcnt);
    struct iovec *v = iov;
    int cnt = iovcnt;
    ssize_t total = 0;
    int64_t deadline = deadline_of(timeout_ms);
    rt__charge(p, 1);
    while (cnt > 0) {
        if (v->iov_len == 0) {
            v++;
            cnt--;
            continue;
        }
        take(fd, RT_POLL_OUT);
        ssize_t n = writev(fd, v, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            int rc = wait_fd(p, fd, RT_POLL_OUT, deadline, false);
            if (rc < 0)
                return rc;
            continue;
        }
        total += n;
        while (cnt > 0 && (size_t)n >= v->iov_len) {
            n -= (ssize_t)v->iov_len;
            v++;
            cnt--;
        }
        if (cnt > 0) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= (size_t)n;
        }
    }
    return total;
}

ssize_t rt_write(int fd, const void *buf, size_t len, int64_t timeout_ms)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return rt_writev(fd, &iov, 1, timeout_ms);
}

int rt_accept(int lfd, struct sockaddr *addr, socklen_t *alen, int64_t timeout_ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    int64_t deadline = deadline_of(timeout_ms);
    rt__charge(p, 1);
    for (;;) {
        take(lfd, RT_POLL_IN);
        int fd = accept4(lfd, addr, alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            rt__io_forget(fd);
            return fd;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = wait_fd(p, lfd, RT_POLL_IN, deadline, false);
        if (rc < 0)
            return rc;
    }
}

/* A connection made after a wait for EPOLLOUT: what follows are reads
 * (a response) and writes that seldom block, so the registration changes
 * from EPOLLOUT to EPOLLIN (see enroll), once per connection. */
static void connected(int fd)
{
    if ((size_t)fd >= fdmax)
        return;
    uint64_t m = atomic_load_explicit(&fds[fd].mask, memory_order_acquire);
    if (!m || !(atomic_load_explicit(&fds[fd].events, memory_order_relaxed) & RT_POLL_OUT))
        return;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = epoll_events(RT_POLL_IN);
    ev.data.u64 = (uint64_t)fd + 1;
    if (epoll_ctl(rt__rt.sched[__builtin_ctzll(m)].epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        atomic_store_explicit(&fds[fd].events, RT_POLL_IN, memory_order_relaxed);
}

int rt_connect(int fd, const struct sockaddr *addr, socklen_t alen, int64_t timeout_ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    rt__io_forget(fd);
    int rc = rt_fd_nonblock(fd);
    if (rc < 0)
        return rc;
    int64_t deadline = deadline_of(timeout_ms);
    rt__charge(p, 1);
    if (connect(fd, addr, alen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -errno;
    for (;;) {
        take(fd, RT_POLL_OUT);
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 0) > 0) {
            int err = 0;
            socklen_t el = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                return -errno;
            if (!err)
                connected(fd);
            return err ? -err : 0;
        }
        rc = wait_fd(p, fd, RT_POLL_OUT, deadline, false);
        if (rc < 0)
            return rc;
    }
}

int rt_poll(int fd, unsigned events, int64_t timeout_ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    int64_t deadline = deadline_of(timeout_ms);
    rt__charge(p, 1);
    for (;;) {
        if (events & RT_POLL_MSG) {
            rt__drain(p);
            if (p->q_head)
                return RT_POLL_MSG;
        }
        if (fd >= 0) {
            take(fd, events & RDY_MASK);
            struct pollfd pfd = {.fd = fd, .events = 0};
            if (events & RT_POLL_IN)
                pfd.events |= POLLIN;
            if (events & RT_POLL_OUT)
                pfd.events |= POLLOUT;
            if (poll(&pfd, 1, 0) > 0) {
                int r = 0;
                if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
                    r |= (int)(events & RT_POLL_IN);
                if (pfd.revents & (POLLOUT | POLLHUP | POLLERR))
                    r |= (int)(events & RT_POLL_OUT);
                if (r)
                    return r;
            }
            /* Verified: rt_poll waits on descriptors that libraries close
             * with close(2) and open anew under the same number. */
            int rc = wait_fd(p, fd, events & RDY_MASK, deadline, true);
            if (rc < 0)
                return rc;
        } else {
            if (deadline >= 0 && (int64_t)rt_now_ms() >= deadline)
                return -ETIMEDOUT;
            atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
            if (atomic_load_explicit(&p->inbox_n, memory_order_seq_cst) > 0)
                continue;
            if (deadline >= 0)
                rt__wait_timer_arm(p, (uint64_t)deadline);
            rt__park(p);
            if (deadline >= 0)
                rt__wait_timer_cancel(p);
        }
    }
}

int rt_close(int fd)
{
    rt__io_forget(fd);
    return close(fd) < 0 ? -errno : 0;
}
