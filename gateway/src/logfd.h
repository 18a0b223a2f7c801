/*
 * logfd.h: a log stream (stdout, stderr) written without waiting for its
 * reader.
 *
 * A log collector that stops reading (a paused pipe, a stuck journal
 * socket) must never hold the thread that writes to it for longer than the
 * writer chose. A plain write(2) on a full pipe waits for the reader, and
 * setting O_NONBLOCK on the descriptor would change it for every process
 * sharing the open file (the shell's terminal, stdout when stderr is
 * `2>&1`). So each stream is written through a description of its own:
 *  - a pipe or FIFO, or a terminal: reopened through /proc/self/fd with
 *    O_NONBLOCK. A write of at most PIPE_BUF bytes to a pipe then either
 *    goes in whole, or fails with -EAGAIN and writes nothing;
 *  - a socket (systemd's journal): send(2) with MSG_DONTWAIT, which may
 *    write part of the bytes;
 *  - a regular file or a block device: write(2), which does not wait for
 *    a reader;
 *  - anything else, or when the reopening fails (no /proc): poll(2) first,
 *    then write(2). The write may still wait if another writer takes the
 *    room between the two; that is the only case where it can.
 *
 * Plain data; any thread. A struct gw__logfd is not locked: callers that
 * share one serialise their writes.
 */
#ifndef GW_LOGFD_H
#define GW_LOGFD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum gw__logfd_kind {
    GW__LOGFD_NONBLOCK, /* fd is a non-blocking description of our own */
    GW__LOGFD_SOCKET,   /* send(MSG_DONTWAIT) */
    GW__LOGFD_FILE,     /* never waits for a reader */
    GW__LOGFD_POLL,     /* poll, then write */
};

struct gw__logfd {
    int fd;     /* what is written: the stream's descriptor or our reopening of it */
    bool owned; /* fd was opened by gw__logfd_open and is closed by gw__logfd_close */
    enum gw__logfd_kind kind;
};

/* Sets up writing to `fd` as described above. Never fails: when nothing
 * better is possible the stream is written with poll and write. */
void gw__logfd_open(struct gw__logfd *o, int fd);
/* Closes what gw__logfd_open opened; leaves `o` writing `fd` with poll and
 * write. */
void gw__logfd_close(struct gw__logfd *o);

/* One attempt that does not wait: the bytes written (possibly fewer than
 * n, except on a pipe for n <= PIPE_BUF), -EAGAIN when there is no room,
 * or another -errno. */
ssize_t gw__logfd_try(const struct gw__logfd *o, const void *buf, size_t n);

/* Waits at most timeout_ms (0: not at all) until the stream may take
 * bytes: 1 when it may (or has an error that a write will return), 0 when
 * the time is up, -errno. A signal cuts the wait short (0). */
int gw__logfd_wait(const struct gw__logfd *o, int timeout_ms);

#endif
