/*
 * io.c: non-blocking I/O for processes.
 *
 * A call that would block registers the fd, one-shot, with the epoll set of
 * the scheduler the process runs on, with the pid as the event's data, and
 * parks. The scheduler that sees the event wakes the pid (a stale pid finds
 * no process and is ignored). An fd may sit in several schedulers' sets
 * after its process migrated; `mask` remembers where, so re-arming is a
 * MOD rather than an ADD, and rt_close forgets it.
 *
 * One waiter per descriptor (rt.h). A set holds one registration per fd
 * number, so a second process parking on the same number on the same
 * scheduler would replace the first one's pid and the first would never
 * wake. `waiter` therefore names the process parked on each fd number, on
 * any scheduler, and a second one gets -EBUSY before epoll is touched. It
 * is claimed when the registration is armed and given back when the wait
 * ends: when the process resumes from the park (woken, timed out, or by a
 * message), when a hibernated process resumes, and in rt__finish for a
 * process that ends while parked. A descriptor number that is closed or
 * handed out anew (rt_close, rt_accept, rt_connect) drops its waiter: that
 * registration went with the old file.
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

/* Per fd number. Relaxed throughout for `mask`: it only picks ADD or MOD,
 * and a wrong guess is corrected by epoll_ctl's ENOENT/EEXIST. */
struct fdslot {
    _Atomic uint64_t mask;   /* schedulers whose epoll set may hold the fd */
    _Atomic uint64_t waiter; /* pid of the process parked on it, or 0 */
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
    atomic_store_explicit(&fds[fd].mask, 0, memory_order_relaxed);
    /* Release: pairs with the acquire of a later claim (as rt__io_release). */
    atomic_store_explicit(&fds[fd].waiter, 0, memory_order_release);
}

/* Makes p the waiter of fd: 0, or -EBUSY while another process is. */
static int claim(struct rt_proc *p, int fd)
{
    if ((size_t)fd >= fdmax)
        return 0; /* beyond RLIMIT_NOFILE's hard limit: cannot be open */
    uint64_t me = atomic_load_explicit(&p->pid, memory_order_relaxed);
    uint64_t cur = 0;
    /* Acquire on success: the previous waiter's release happened before. */
    if (!atomic_compare_exchange_strong_explicit(&fds[fd].waiter, &cur, me, memory_order_acquire,
                                                 memory_order_relaxed) &&
        cur != me)
        return -EBUSY;
    p->wait_fd = fd;
    return 0;
}

void rt__io_release(struct rt_proc *p)
{
    int fd = p->wait_fd;
    if (fd < 0)
        return;
    p->wait_fd = -1;
    if ((size_t)fd >= fdmax)
        return;
    uint64_t me = atomic_load_explicit(&p->pid, memory_order_relaxed);
    /* Only its own claim: the number may have been closed and claimed anew
     * by another process since (rt__io_forget). Release: what this process
     * did with the fd happens before the next waiter's claim. */
    atomic_compare_exchange_strong_explicit(&fds[fd].waiter, &me, 0, memory_order_release,
                                            memory_order_relaxed);
}

void rt__io_poll(struct rt__sched *s, int timeout_ms)
{
    struct epoll_event evs[128];
    int n = epoll_wait(s->epfd, evs, 128, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint64_t pid = evs[i].data.u64;
        if (pid == 0) {
            uint64_t v;
            ssize_t r = read(s->evfd, &v, sizeof v);
            (void)r;
            continue;
        }
        struct rt_proc *p = rt__lookup(pid);
        if (p && atomic_load_explicit(&p->pid, memory_order_acquire) == pid) {
            /* seq_cst: wake-up protocol (rt_int.h). */
            atomic_store_explicit(&p->wake_pending, 1, memory_order_seq_cst);
            rt__wake(p);
        }
    }
}

int rt__io_arm(struct rt_proc *p, int fd, unsigned events)
{
    if (fd < 0)
        return -EBADF;
    int rc = claim(p, fd);
    if (rc < 0)
        return rc;
    struct rt__sched *s = rt__cur_sched;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLONESHOT | EPOLLRDHUP;
    if (events & RT_POLL_IN)
        ev.events |= EPOLLIN;
    if (events & RT_POLL_OUT)
        ev.events |= EPOLLOUT;
    ev.data.u64 = atomic_load_explicit(&p->pid, memory_order_relaxed);
    uint64_t bit = 1ull << s->id;
    bool known =
        (size_t)fd < fdmax && (atomic_load_explicit(&fds[fd].mask, memory_order_relaxed) & bit);
    int op = known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(s->epfd, op, fd, &ev) < 0) {
        if (errno == ENOENT) {
            op = EPOLL_CTL_ADD;
        } else if (errno == EEXIST) {
            op = EPOLL_CTL_MOD;
        } else {
            rc = -errno;
            goto out;
        }
        if (epoll_ctl(s->epfd, op, fd, &ev) < 0) {
            rc = -errno;
            goto out;
        }
    }
    if ((size_t)fd < fdmax)
        atomic_fetch_or_explicit(&fds[fd].mask, bit, memory_order_relaxed);
out:
    if (rc < 0)
        rt__io_release(p); /* not registered: nobody waits */
    return rc;
}

static int64_t deadline_of(int64_t timeout_ms)
{
    return timeout_ms < 0 ? -1 : (int64_t)rt_now_ms() + timeout_ms;
}

/* Parks until fd may be ready (or a spurious wake-up), or the deadline. */
static int wait_fd(struct rt_proc *p, int fd, unsigned events, int64_t deadline)
{
    if (deadline >= 0 && (int64_t)rt_now_ms() >= deadline)
        return -ETIMEDOUT;
    atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
    int rc = rt__io_arm(p, fd, events);
    if (rc < 0)
        return rc;
    if (deadline >= 0)
        rt__wait_timer_arm(p, (uint64_t)deadline);
    RT__SET(&p->status_hint, RT_STATUS_WAITING);
    rt__park(p); /* ending here (an exit signal), rt__finish releases the fd */
    rt__io_release(p);
    if (deadline >= 0)
        rt__wait_timer_cancel(p);
    return 0;
}

int rt_fd_nonblock(int fd)
{
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
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = wait_fd(p, fd, RT_POLL_IN, deadline);
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
        ssize_t n = writev(fd, v, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            int rc = wait_fd(p, fd, RT_POLL_OUT, deadline);
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
        int fd = accept4(lfd, addr, alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            rt__io_forget(fd);
            return fd;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = wait_fd(p, lfd, RT_POLL_IN, deadline);
        if (rc < 0)
            return rc;
    }
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
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 0) > 0) {
            int err = 0;
            socklen_t el = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                return -errno;
            return err ? -err : 0;
        }
        rc = wait_fd(p, fd, RT_POLL_OUT, deadline);
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
            int rc = wait_fd(p, fd, events & (RT_POLL_IN | RT_POLL_OUT), deadline);
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
