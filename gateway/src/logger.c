/*
 * logger.c: the access log. A process registered as "logger" writes one
 * JSON line per request to stdout. Request processes format their line and
 * send it; they never wait on output.
 *
 * Invariants:
 *  - A line is built by the bounded writer (linebuf.h) into LOG_LINE_MAX
 *    bytes. Each string field has a cap of its own and the caps add up to
 *    less than the line (static assert below), so every line is whole JSON
 *    with all its fields: a long path is cut (and flagged with
 *    "path_truncated": true), never the record.
 *  - The backlog (lines sent and not yet written, in the logger's mailbox
 *    or in the batch being written) is capped by lines and by bytes; a line
 *    beyond either cap is dropped and counted, and the logger reports the
 *    count. Every line admitted is released exactly once: when written
 *    whole, when dropped (a write error, the logger stopping with stdout
 *    stuck), or by the message destructor / the batch's last reference
 *    when the logger dies with it queued.
 *  - stdout is written on the runtime's blocking pool, never on a
 *    scheduler thread, in slices of at most LOG_WRITE_SLICE_MS, and through
 *    writes that do not wait (logfd.h): a stdout that stops draining parks
 *    the logger (lines then pile up to the caps and are dropped), holds one
 *    blocking thread for a slice at a time, and never stops the runtime from
 *    shutting down. The supervisor's shutdown is looked for behind the
 *    queued lines, so a stuck stdout ends the logger cleanly with what it
 *    could not write counted.
 *  - Lines reach stdout whole: a write to a pipe ends at a line's end
 *    within PIPE_BUF (one atomic write), a line cut by a short write is
 *    finished before anything else, or ended with "\n" when it cannot be,
 *    and one writer at a time (stdout_lock), across logger restarts.
 *
 * Runtime and gateway reports (rt_log, crash reports) are JSON lines on
 * stderr, built by the same writer: gw__report and gw__crash_report, which
 * the gateway installs as the runtime's handlers. They never wait for
 * stderr either (see report_lock). The fatal report (gw__fatal_report) is
 * one more such line, written from a signal handler just before the
 * program aborts.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw/events.h"
#include "gw_int.h"
#include "linebuf.h"
#include "logfd.h"
#include "tls/tls.h"

#define LOG_LINE_MAX 4096
#define LOG_BACKLOG_LINES 100000
#define LOG_BACKLOG_BYTES (16u << 20) /* message headers included */
#define LOG_BATCH_BYTES (256u << 10)  /* gathered for one write */
#define LOG_WRITE_SLICE_MS 1000
#define LOG_REPORT_INTERVAL_MS 1000
/* After the supervisor's shutdown arrives, stdout is written for at most
 * this long; then what is left is dropped and counted. The supervisor waits
 * GW__LOGGER_SHUTDOWN_MS: the slice in progress when the shutdown arrives,
 * this, and room to spare. */
#define LOG_STOP_MS 1000
_Static_assert(LOG_WRITE_SLICE_MS + LOG_STOP_MS + 2000 <= GW__LOGGER_SHUTDOWN_MS,
               "the logger stops before its supervisor kills it");
_Static_assert(LOG_LINE_MAX <= PIPE_BUF, "a line is one write to a pipe");

/* Caps on each string field as written (escaped, quotes included). The
 * values the gateway itself produces fit whole: request ids are at most 39
 * id characters, names at most 128 bytes, addresses at most 79. */
#define LOG_PATH_MAX 2048
#define LOG_NAME_MAX 280 /* request id, listener, route */
#define LOG_ADDR_MAX 168 /* client, upstream target */
#define LOG_METHOD_MAX 64
/* A verified client certificate's subject (struct gw_tls_peer holds at most
 * 255 bytes; escaped it may be longer and is then cut). */
#define LOG_SUBJECT_MAX 300
/* Everything else: keys, punctuation, the time, the numbers and the TLS
 * version. */
#define LOG_FIXED_MAX 460
_Static_assert(LOG_PATH_MAX + 3 * LOG_NAME_MAX + 2 * LOG_ADDR_MAX + LOG_METHOD_MAX +
                       LOG_SUBJECT_MAX + LOG_FIXED_MAX <=
                   LOG_LINE_MAX,
               "an access-log line always has room for all its fields");

static _Atomic rt_pid logger_pid;
/* The backlog and the drop counters are statistics: no other data is
 * published through them, so relaxed order is enough everywhere. */
static _Atomic uint64_t backlog_lines;
static _Atomic uint64_t backlog_bytes;
static _Atomic uint64_t dropped;

/* What one queued line costs: its message, header included. */
static uint64_t line_cost(size_t len)
{
    return (uint64_t)len + sizeof(struct rt_msg);
}

static bool backlog_admit(size_t len)
{
    uint64_t cost = line_cost(len);
    /* Reserve first, then check: concurrent senders can only make each
     * other drop, never take the backlog past a cap. */
    uint64_t lines = atomic_fetch_add_explicit(&backlog_lines, 1, memory_order_relaxed) + 1;
    uint64_t bytes = atomic_fetch_add_explicit(&backlog_bytes, cost, memory_order_relaxed) + cost;
    if (lines <= LOG_BACKLOG_LINES && bytes <= LOG_BACKLOG_BYTES)
        return true;
    atomic_fetch_sub_explicit(&backlog_lines, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&backlog_bytes, cost, memory_order_relaxed);
    return false;
}

static void backlog_release(uint64_t lines, uint64_t bytes)
{
    atomic_fetch_sub_explicit(&backlog_lines, lines, memory_order_relaxed);
    atomic_fetch_sub_explicit(&backlog_bytes, bytes, memory_order_relaxed);
}

void gw__access_log_backlog(uint64_t *lines, uint64_t *bytes)
{
    *lines = atomic_load_explicit(&backlog_lines, memory_order_relaxed);
    *bytes = atomic_load_explicit(&backlog_bytes, memory_order_relaxed);
}

/* A line freed undelivered (the logger died with it queued, or was gone). */
static void line_dtor(struct rt_msg *m)
{
    backlog_release(1, line_cost(m->size));
    atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
}

/* ---- writing: a batch of lines, on the blocking pool ----------------------- */

/* Writers of stdout take turns: a logger killed while its blocking thread
 * writes is restarted at once, and the old thread may still be in its slice
 * when the new logger writes. Held by a blocking thread for at most one
 * slice, never by a scheduler thread. */
static pthread_mutex_t stdout_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under stdout_lock: the batch whose last write ended inside a line, or 0
 * when stdout ends at a line's end. A write from any other batch first ends
 * that line with "\n" so that its own lines start clean; the batch itself
 * finishes the line instead. */
static uint64_t stdout_torn_by;
static _Atomic uint64_t batch_ids; /* relaxed: only unique values are needed */

struct batch {
    /* The logger's reference, and a blocking thread's while it writes. */
    _Atomic int refs;
    /* The logger is gone: its thread writes nothing more. relaxed: a hint,
     * read before each write; the last reference settles the accounts. */
    _Atomic bool abandoned;
    struct gw__logfd out; /* stdout */
    uint64_t id;          /* names the lines in buf for stdout_torn_by */
    uint64_t slice_end;   /* ms: the blocking thread stops writing then */
    /* buf[0, len) to write, buf[0, off) written, buf[0, settled) whole
     * lines written and given back to the backlog. */
    size_t len, off, settled;
    uint64_t lines, cost; /* backlog held by buf[settled, len) */
    int err;              /* of the last slice, -errno */
    bool wrote;           /* the last slice wrote a byte */
    char buf[LOG_BATCH_BYTES];
};

/* Gives back the backlog of the whole lines written since the last call:
 * buf[settled, off) up to its last "\n" (each queued line is one message
 * ending in its only "\n", see take). */
static void batch_settle(struct batch *b)
{
    uint64_t lines = 0;
    size_t end = b->settled;
    for (size_t i = b->settled; i < b->off; i++) {
        if (b->buf[i] == '\n') {
            lines++;
            end = i + 1;
        }
    }
    uint64_t cost = (uint64_t)(end - b->settled) + lines * sizeof(struct rt_msg);
    backlog_release(lines, cost);
    b->lines -= lines;
    b->cost -= cost;
    b->settled = end;
    if (b->settled == b->len)
        b->len = b->off = b->settled = 0;
}

/* Counts the lines not written whole as dropped, gives their backlog back
 * and empties the batch. A line cut by the failed write is ended by the
 * next write (the batch takes a new id). */
static void batch_forget(struct batch *b)
{
    batch_settle(b);
    atomic_fetch_add_explicit(&dropped, b->lines, memory_order_relaxed);
    backlog_release(b->lines, b->cost);
    b->lines = b->cost = 0;
    b->len = b->off = b->settled = 0;
    b->id = atomic_fetch_add_explicit(&batch_ids, 1, memory_order_relaxed) + 1;
}

static void batch_unref(struct batch *b)
{
    /* acq_rel: the last owner sees everything the other wrote. A logger
     * killed while its thread writes leaves the accounts to the thread. */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        batch_forget(b);
        gw__logfd_close(&b->out);
        free(b);
    }
}

/* The logger's deferred cleanup. */
static void batch_drop(void *arg)
{
    struct batch *b = arg;
    atomic_store_explicit(&b->abandoned, true, memory_order_relaxed);
    batch_unref(b);
}

/* How much of buf[off, len) one write takes. A pipe takes at most PIPE_BUF
 * bytes in one piece (more may be split around another writer's bytes, such
 * as a report on stderr when both are one pipe), so a slice ends at the last
 * line end within PIPE_BUF: lines are at most LOG_LINE_MAX <= PIPE_BUF. */
static size_t slice_len(const struct batch *b)
{
    size_t n = b->len - b->off;
    if (b->out.kind == GW__LOGFD_FILE || n <= PIPE_BUF)
        return n;
    const char *nl = memrchr(b->buf + b->off, '\n', PIPE_BUF);
    return nl ? (size_t)(nl - (b->buf + b->off)) + 1 : PIPE_BUF;
}

/* On a blocking thread: writes buf[off, len) until done, an error, the
 * logger is gone, or the slice is over. */
static intptr_t batch_write(void *arg)
{
    struct batch *b = arg;
    b->err = 0;
    b->wrote = false;
    pthread_mutex_lock(&stdout_lock);
    while (!atomic_load_explicit(&b->abandoned, memory_order_relaxed)) {
        bool mend = stdout_torn_by != 0 && stdout_torn_by != b->id;
        if (!mend && b->off == b->len)
            break;
        uint64_t now = rt_now_ms();
        if (now >= b->slice_end)
            break;
        int r = gw__logfd_wait(&b->out, (int)(b->slice_end - now));
        if (r < 0) {
            b->err = r;
            break;
        }
        if (r == 0)
            continue;
        const char *p = mend ? "\n" : b->buf + b->off;
        size_t n = mend ? 1 : slice_len(b);
        ssize_t w = gw__logfd_try(&b->out, p, n);
        if (w == -EAGAIN)
            continue;
        if (w <= 0) {
            b->err = w < 0 ? (int)w : -EIO;
            break;
        }
        b->wrote = true;
        if (mend) {
            stdout_torn_by = 0;
            continue;
        }
        b->off += (size_t)w;
        stdout_torn_by = b->buf[b->off - 1] == '\n' ? 0 : b->id;
    }
    pthread_mutex_unlock(&stdout_lock);
    batch_unref(b);
    return 0;
}

/* In the logger process: writes what stdout takes at once, when that can
 * never wait (a pipe reopened non-blocking, a socket, a device polled
 * first; not a regular file, whose writes may wait on the disk). A batch
 * stdout takes whole needs no blocking thread, which would cost a handoff
 * and two wake-ups per batch. It runs no runtime call, so the logger cannot
 * be ended half way; the lock is only tried (an old logger's thread may
 * still hold it), and a line another batch left cut is left to the
 * blocking path to mend. Returns true when the batch is all written. */
static bool batch_write_now(struct batch *b)
{
    if (b->out.kind == GW__LOGFD_FILE || pthread_mutex_trylock(&stdout_lock) != 0)
        return false;
    if (stdout_torn_by == 0 || stdout_torn_by == b->id) {
        while (b->off < b->len) {
            ssize_t w = gw__logfd_try(&b->out, b->buf + b->off, slice_len(b));
            if (w <= 0)
                break; /* would wait, or an error the blocking path reports */
            b->wrote = true;
            b->off += (size_t)w;
            stdout_torn_by = b->buf[b->off - 1] == '\n' ? 0 : b->id;
        }
    }
    pthread_mutex_unlock(&stdout_lock);
    return b->off == b->len;
}

/* Writes the batch until `slice_end` (ms). Returns true when it wrote a
 * byte or had nothing to write; on a write error the lines not written are
 * dropped and counted. */
static bool batch_flush(struct batch *b, uint64_t slice_end, int *last_err)
{
    if (!b->len)
        return true;
    b->wrote = false;
    if (batch_write_now(b)) {
        batch_settle(b);
        return true;
    }
    bool wrote_now = b->wrote;
    b->slice_end = slice_end;
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    int r = rt_blocking(batch_write, b, NULL);
    if (r < 0) {
        atomic_fetch_sub_explicit(&b->refs, 1, memory_order_relaxed); /* it never ran */
        b->err = r;
        b->wrote = false;
    }
    batch_settle(b);
    if (b->err) {
        *last_err = b->err;
        batch_forget(b);
        return false;
    }
    return b->wrote || wrote_now;
}

/* ---- the logger process ------------------------------------------------------ */

/* Reports lines dropped since the last report, at most once per
 * LOG_REPORT_INTERVAL_MS unless `now_anyway` (`why`: the cause when no
 * write failed). */
static void report_dropped(uint64_t *next_ms, int *last_err, bool now_anyway, const char *why)
{
    uint64_t now = rt_now_ms();
    if (now < *next_ms && !now_anyway)
        return;
    uint64_t d = atomic_exchange_explicit(&dropped, 0, memory_order_relaxed);
    if (!d)
        return;
    if (*last_err)
        rt_log(RT_LOG_WARNING, "access log: %llu lines dropped (cannot write: %s)",
               (unsigned long long)d, strerror(-*last_err));
    else
        rt_log(RT_LOG_WARNING, "access log: %llu lines dropped (%s)", (unsigned long long)d, why);
    *last_err = 0;
    *next_ms = now + LOG_REPORT_INTERVAL_MS;
}

/* Whether a message is one line as gw__access_log makes it: ending in its
 * only "\n", at most LOG_LINE_MAX bytes. The batch's accounts count lines
 * by their "\n". */
static bool one_line(const struct rt_msg *m)
{
    return m->size > 0 && m->size <= LOG_LINE_MAX && m->data[m->size - 1] == '\n' &&
           !memchr(m->data, '\n', m->size - 1);
}

/* Takes one message: a line into the batch, or the exit signal that stops
 * the logger (its reason in *stop). */
static void take(struct batch *b, struct rt_msg *m, rt_atom *stop, bool *stopping)
{
    if (m->type == GW__MSG_LOG) {
        if (!one_line(m) || m->size > sizeof b->buf - b->len) {
            line_dtor(m); /* not made by gw__access_log */
        } else {
            memcpy(b->buf + b->len, m->data, m->size);
            b->len += m->size;
            b->lines++;
            b->cost += line_cost(m->size);
        }
    } else if (m->type == RT_MSG_EXIT) {
        *stop = (rt_atom)m->u64;
        *stopping = true;
    }
    rt_msg_free(m); /* runs no destructor: the line's backlog moved to the batch */
}

static bool is_exit(const struct rt_msg *m, void *ctx)
{
    (void)ctx;
    return m->type == RT_MSG_EXIT;
}

/* Stops the logger: the lines still queued and those of the batch not
 * written are dropped, counted and reported, then it exits with `stop`.
 * Lines sent later are freed with the logger's mailbox and counted by their
 * destructor. */
static _Noreturn void logger_finish(struct batch *b, rt_atom stop, uint64_t *next_report,
                                    int *last_err)
{
    struct rt_msg *m;
    for (size_t n = rt_mailbox_len(); n && (m = rt_receive(0)); n--) {
        if (m->type == GW__MSG_LOG)
            line_dtor(m);
        rt_msg_free(m);
    }
    batch_forget(b);
    report_dropped(next_report, last_err, true, "stdout did not take them before shutdown");
    rt_exit(stop);
}

static void logger_main(void *arg)
{
    (void)arg;
    /* malloc, not rt_alloc: a blocking thread may still be writing the
     * batch when the logger is killed; the last reference frees it. */
    struct batch *b = malloc(sizeof *b);
    if (!b)
        rt_exit(RT_SYSTEM_LIMIT);
    atomic_init(&b->refs, 1);
    atomic_init(&b->abandoned, false);
    gw__logfd_open(&b->out, STDOUT_FILENO);
    b->id = atomic_fetch_add_explicit(&batch_ids, 1, memory_order_relaxed) + 1;
    b->len = b->off = b->settled = 0;
    b->lines = b->cost = 0;
    b->err = 0;
    if (!rt_defer(batch_drop, b)) {
        gw__logfd_close(&b->out);
        free(b);
        rt_exit(RT_SYSTEM_LIMIT);
    }
    atomic_store(&logger_pid, rt_self());
    /* The supervisor's shutdown arrives as a message: lines already queued
     * are written before the logger exits, as far as stdout takes them
     * within LOG_STOP_MS. */
    rt_trap_exit(true);
    rt_atom stop = RT_NORMAL;
    bool stopping = false;
    uint64_t stop_by = 0;
    rt_mark seen = 0; /* the mailbox is searched for the exit signal after it */
    uint64_t next_report = 0;
    int last_err = 0;
    for (;;) {
        struct rt_msg *m;
        if (!b->len && !stopping) {
            /* Idle: wake in time to report drops not reported yet. */
            int64_t wait = RT_INFINITY;
            if (atomic_load_explicit(&dropped, memory_order_relaxed)) {
                uint64_t now = rt_now_ms();
                wait = next_report > now ? (int64_t)(next_report - now) : 0;
            }
            if ((m = rt_receive(wait)))
                take(b, m, &stop, &stopping);
        }
        /* Room for any line: LOG_LINE_MAX is the longest a sender makes. */
        while (b->len + LOG_LINE_MAX <= sizeof b->buf && (m = rt_receive(0)))
            take(b, m, &stop, &stopping);
        if (!stopping) {
            /* The exit signal may be queued behind more lines than a batch
             * holds, and stdout may not take them: look for it without
             * taking the lines. The mark keeps each search to what arrived
             * since the last one. */
            rt_mark now = rt_receive_mark();
            if ((m = rt_receive_match_since(seen, is_exit, NULL, 0)))
                take(b, m, &stop, &stopping);
            seen = now;
        }
        uint64_t end = rt_now_ms() + LOG_WRITE_SLICE_MS;
        if (stopping) {
            if (!stop_by)
                stop_by = rt_now_ms() + LOG_STOP_MS;
            if (end > stop_by)
                end = stop_by;
        }
        bool progress = batch_flush(b, end, &last_err);
        report_dropped(&next_report, &last_err, false, "logger behind");
        /* Stopping: done when everything queued is written, when stdout
         * takes nothing, or at the deadline. */
        if (stopping && ((!b->len && !rt_mailbox_len()) || !progress || rt_now_ms() >= stop_by))
            logger_finish(b, stop, &next_report, &last_err);
    }
}

int gw__logger_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_spawn_opts o = {
        .link = true, .name = "logger", .kind = RT_KIND_SERVER, .initial_call = "gw_logger:loop"};
    int rc = rt_spawn(logger_main, NULL, &o, out);
    if (rc < 0) {
        *reason = RT_SYSTEM_LIMIT;
        return rc;
    }
    atomic_store(&logger_pid, *out);
    return 0;
}

/* ---- formatting (request processes) ------------------------------------------ */

static void key(struct gw__linebuf *l, const char *k)
{
    gw__linebuf_puts(l, k);
}

static void text(struct gw__linebuf *l, const char *s, size_t max, bool *cut)
{
    gw__linebuf_json(l, s, s ? strlen(s) : 0, max, cut);
}

/* Opens a line with its time: `{"time":"2026-12-06T09:18:46.123Z"`, RFC 3339
 * UTC with milliseconds, the form log collectors read without being told.
 * Every line the gateway writes, access log and reports, starts so. */
static void line_time(struct gw__linebuf *l)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    key(l, "{\"time\":\"");
    gw__linebuf_time(l, (int64_t)ts.tv_sec, (uint32_t)ts.tv_nsec);
    key(l, "\"");
}

/* The line for one request into line[0, cap); its length, or 0 when it did
 * not fit (which the caps above rule out). */
static size_t format_line(char *line, size_t cap, const struct gw__exchange *ex, const char *method,
                          const char *path, const char *route, const char *consumer,
                          const char *target, int status, uint64_t bytes, uint64_t duration_us,
                          uint64_t version)
{
    struct gw__linebuf l;
    gw__linebuf_init(&l, line, cap);
    line_time(&l);
    key(&l, ",\"request_id\":");
    text(&l, ex->request_id, LOG_NAME_MAX, NULL);
    key(&l, ",\"listener\":");
    text(&l, ex->lis->name, LOG_NAME_MAX, NULL);
    key(&l, ",\"client\":");
    text(&l, ex->client, LOG_ADDR_MAX, NULL);
    /* Behind a trusted proxy the client comes from X-Forwarded-For: the
     * peer that said so is logged too. */
    if (strcmp(ex->client, ex->client_addr) != 0) {
        key(&l, ",\"peer\":");
        text(&l, ex->client_addr, LOG_ADDR_MAX, NULL);
    }
    key(&l, ",\"method\":");
    text(&l, method, LOG_METHOD_MAX, NULL);
    key(&l, ",\"path\":");
    bool cut = false;
    text(&l, path, LOG_PATH_MAX, &cut);
    if (cut)
        key(&l, ",\"path_truncated\":true");
    key(&l, ",\"route\":");
    text(&l, route, LOG_NAME_MAX, NULL);
    /* Only once a policy authenticated someone. */
    if (consumer) {
        key(&l, ",\"consumer\":");
        text(&l, consumer, LOG_NAME_MAX, NULL);
    }
    key(&l, ",\"upstream\":");
    text(&l, target, LOG_ADDR_MAX, NULL);
    key(&l, ",\"status\":");
    gw__linebuf_i64(&l, status);
    key(&l, ",\"bytes\":");
    gw__linebuf_u64(&l, bytes);
    key(&l, ",\"duration_ms\":");
    gw__linebuf_milli(&l, duration_us);
    key(&l, ",\"route_version\":");
    gw__linebuf_u64(&l, version);
    /* Over TLS only: the version negotiated, and the subject of a client
     * certificate the handshake verified. */
    if (ex->tls) {
        key(&l, ",\"tls_version\":");
        text(&l, ex->tls->version, 16, NULL);
        if (ex->tls->client_cert) {
            key(&l, ",\"tls_client_subject\":");
            text(&l, ex->tls->subject, LOG_SUBJECT_MAX, NULL);
        }
    }
    key(&l, "}\n");
    return gw__linebuf_full(&l) ? 0 : l.len;
}

void gw__access_log(const struct gw__exchange *ex, const char *method, const char *path,
                    const char *route, const char *consumer, const char *target, int status,
                    uint64_t bytes, uint64_t duration_us, uint64_t version)
{
    rt_pid to = atomic_load(&logger_pid);
    if (!to)
        return;
    char line[LOG_LINE_MAX];
    size_t n = format_line(line, sizeof line, ex, method, path, route, consumer, target, status,
                           bytes, duration_us, version);
    if (!n || !backlog_admit(n)) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    struct rt_msg *m = rt_msg_copy(GW__MSG_LOG, line, n);
    if (!m) {
        backlog_release(1, line_cost(n));
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    m->dtor = line_dtor;
    /* On failure the runtime frees m and its destructor gives the backlog
     * back. */
    rt_send(to, m);
}

/* ---- reports (any thread) ------------------------------------------------------ */

/* At most PIPE_BUF, so that one write(2) puts a whole line in a pipe even
 * when several threads report at once. rt_log's messages are at most 1023
 * bytes; escaped, they may be longer and are then cut. */
#define REPORT_LINE_MAX 2048
#define REPORT_MSG_MAX 1900
#define REPORT_NAME_MAX 400  /* crash report: name, initial call, reason */
#define REPORT_STATE_MAX 600 /* crash report: the formatted state (format_status) */
_Static_assert(REPORT_LINE_MAX <= PIPE_BUF, "a report is one atomic write");
_Static_assert(REPORT_MSG_MAX + 100 <= REPORT_LINE_MAX, "a report has room for its fields");
_Static_assert(3 * REPORT_NAME_MAX + REPORT_STATE_MAX + 220 <= REPORT_LINE_MAX,
               "a crash report has room");
_Static_assert(4 * REPORT_NAME_MAX + 300 <= REPORT_LINE_MAX,
               "a fatal report has room for its fields");

/* Reports are written from whichever thread reports: scheduler threads
 * (crash reports, the logger's own warnings) and the main thread (start,
 * drain). None of them may wait for stderr's reader, which may be stdout's
 * (`2>&1`, systemd's journal) and stuck with it: each line is one attempt
 * that does not wait (logfd.h); a line stderr cannot take is dropped and
 * counted, and the count goes out as a line of its own before the next
 * report that stderr takes. A line only partly taken (a socket) is
 * finished before anything else is written. All under report_lock, held
 * for a few system calls that never wait. */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw__logfd report_out = {.fd = STDERR_FILENO, .kind = GW__LOGFD_POLL};
static char report_rest[REPORT_LINE_MAX]; /* the end of a line partly written */
static size_t report_rest_len;
static uint64_t reports_dropped;

void gw__reports_open(void)
{
    pthread_mutex_lock(&report_lock);
    gw__logfd_close(&report_out);
    gw__logfd_open(&report_out, STDERR_FILENO);
    report_rest_len = 0;
    pthread_mutex_unlock(&report_lock);
}

void gw__reports_close(void)
{
    pthread_mutex_lock(&report_lock);
    gw__logfd_close(&report_out);
    report_out = (struct gw__logfd){.fd = STDERR_FILENO, .kind = GW__LOGFD_POLL};
    report_rest_len = 0;
    pthread_mutex_unlock(&report_lock);
}

/* Under report_lock: writes what is left of a line partly written; true
 * when nothing is left. */
static bool report_finish_rest(void)
{
    if (!report_rest_len)
        return true;
    ssize_t w = gw__logfd_try(&report_out, report_rest, report_rest_len);
    if (w <= 0)
        return false;
    report_rest_len -= (size_t)w;
    memmove(report_rest, report_rest + w, report_rest_len);
    return !report_rest_len;
}

/* Under report_lock, nothing left of an earlier line: one attempt at the
 * line. True when it is written or on its way (the rest kept). */
static bool report_put(const char *line, size_t len)
{
    ssize_t w = gw__logfd_try(&report_out, line, len);
    if (w <= 0)
        return false;
    report_rest_len = len - (size_t)w;
    memcpy(report_rest, line + w, report_rest_len);
    return true;
}

static void report_write(const struct gw__linebuf *l)
{
    if (gw__linebuf_full(l))
        return;
    pthread_mutex_lock(&report_lock);
    if (!report_finish_rest())
        goto drop;
    if (reports_dropped) {
        char note[REPORT_LINE_MAX];
        struct gw__linebuf n;
        gw__linebuf_init(&n, note, sizeof note);
        line_time(&n);
        key(&n, ",\"level\":\"warning\",\"msg\":\"stderr: ");
        gw__linebuf_u64(&n, reports_dropped);
        key(&n, " reports dropped (stderr not writable)\"}\n");
        if (!report_put(note, n.len))
            goto drop;
        reports_dropped = 0;
        if (report_rest_len)
            goto drop; /* the note is not written whole yet */
    }
    if (report_put(l->buf, l->len))
        goto out;
drop:
    reports_dropped++;
out:
    pthread_mutex_unlock(&report_lock);
}

void gw__report(enum rt_log_level level, const char *msg, void *ctx)
{
    (void)ctx;
    char line[REPORT_LINE_MAX];
    struct gw__linebuf l;
    gw__linebuf_init(&l, line, sizeof line);
    line_time(&l);
    key(&l, ",\"level\":\"");
    key(&l, rt_log_level_name(level));
    key(&l, "\",\"msg\":");
    bool cut = false;
    text(&l, msg, REPORT_MSG_MAX, &cut);
    if (cut)
        key(&l, ",\"msg_truncated\":true");
    key(&l, "}\n");
    report_write(&l);
}

void gw__crash_report(const struct rt_crash_report *r, void *ctx)
{
    (void)ctx;
    char line[REPORT_LINE_MAX];
    struct gw__linebuf l;
    gw__linebuf_init(&l, line, sizeof line);
    line_time(&l);
    key(&l, ",\"level\":\"error\",\"event\":\"crash\",\"pid\":");
    gw__linebuf_u64(&l, r->pid);
    key(&l, ",\"name\":");
    text(&l, r->name, REPORT_NAME_MAX, NULL);
    key(&l, ",\"initial_call\":");
    text(&l, r->initial_call, REPORT_NAME_MAX, NULL);
    key(&l, ",\"reason\":");
    text(&l, rt_atom_name(r->reason), REPORT_NAME_MAX, NULL);
    key(&l, ",\"last_message_type\":");
    gw__linebuf_u64(&l, r->last_msg_type);
    if (r->state && *r->state) {
        key(&l, ",\"state\":");
        text(&l, r->state, REPORT_STATE_MAX, NULL);
    }
    key(&l, "}\n");
    report_write(&l);
    gw_events_crash(r);
}

/* Appends v as a JSON string of hex digits, "0x7f12ab"; async-signal-safe. */
static void hex_string(struct gw__linebuf *l, uintptr_t v)
{
    char d[2 * sizeof v + 4], *e = d + sizeof d, *o = e;
    *--o = '"';
    do {
        *--o = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    *--o = 'x';
    *--o = '0';
    *--o = '"';
    gw__linebuf_put(l, o, (size_t)(e - o));
}

void gw__fatal_report(const struct rt_fatal_report *r, void *ctx)
{
    (void)ctx;
    /* Async-signal-safe throughout: clock_gettime, the line writer (plain
     * data) and write(2). No report_lock: the faulting code may hold it, so
     * a report cut by a short write could precede this line unfinished. */
    char line[REPORT_LINE_MAX];
    struct gw__linebuf l;
    gw__linebuf_init(&l, line, sizeof line);
    line_time(&l);
    key(&l, ",\"level\":\"fatal\",\"event\":");
    text(&l, r->event, REPORT_NAME_MAX, NULL);
    key(&l, ",\"pid\":");
    gw__linebuf_u64(&l, r->pid);
    key(&l, ",\"name\":");
    text(&l, r->name, REPORT_NAME_MAX, NULL);
    key(&l, ",\"initial_call\":");
    text(&l, r->initial_call, REPORT_NAME_MAX, NULL);
    key(&l, ",\"stack_bytes\":");
    gw__linebuf_u64(&l, r->stack_bytes);
    key(&l, ",\"fault_address\":");
    hex_string(&l, r->fault_address);
    key(&l, ",\"pc\":");
    hex_string(&l, r->pc);
    key(&l, ",\"msg\":");
    text(&l, r->msg, REPORT_NAME_MAX, NULL);
    key(&l, "}\n");
    if (gw__linebuf_full(&l))
        return;
    for (size_t off = 0; off < l.len;) {
        ssize_t w = write(STDERR_FILENO, l.buf + off, l.len - off);
        if (w <= 0 && errno != EINTR)
            return;
        off += w > 0 ? (size_t)w : 0;
    }
}
