/*
 * logfd.c: log streams written without waiting for their reader (see
 * logfd.h for the rule per kind of descriptor).
 */
#include "logfd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

void gw__logfd_open(struct gw__logfd *o, int fd)
{
    *o = (struct gw__logfd){.fd = fd, .owned = false, .kind = GW__LOGFD_POLL};
    struct stat st;
    if (fstat(fd, &st) < 0)
        return; /* writes return the error */
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
        o->kind = GW__LOGFD_FILE;
        return;
    }
    if (S_ISSOCK(st.st_mode)) {
        o->kind = GW__LOGFD_SOCKET;
        return;
    }
    /* Only pipes and terminals are reopened: opening another kind of
     * device may have effects of its own. O_NOCTTY: a terminal reopened
     * must not become the controlling one. */
    if (!S_ISFIFO(st.st_mode) && !isatty(fd))
        return;
    char path[40];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int nfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (nfd < 0)
        return;
    o->fd = nfd;
    o->owned = true;
    o->kind = GW__LOGFD_NONBLOCK;
}

void gw__logfd_close(struct gw__logfd *o)
{
    if (o->owned)
        close(o->fd);
    o->owned = false;
    o->kind = GW__LOGFD_POLL;
}

ssize_t gw__logfd_try(const struct gw__logfd *o, const void *buf, size_t n)
{
    if (o->kind == GW__LOGFD_POLL && gw__logfd_wait(o, 0) == 0)
        return -EAGAIN;
    for (;;) {
        ssize_t w;
        if (o->kind == GW__LOGFD_SOCKET)
            w = send(o->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        else
            w = write(o->fd, buf, n);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int gw__logfd_wait(const struct gw__logfd *o, int timeout_ms)
{
    struct pollfd p = {.fd = o->fd, .events = POLLOUT};
    int r = poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    return r > 0;
}
