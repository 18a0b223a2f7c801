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
 *    count. Every line admitted is released exactly once: when written,
 *    when dropped on a write error, or by the message destructor / the
 *    logger's deferred cleanup when the logger dies with it queued.
 *  - stdout is written on the runtime's blocking pool, never on a
 *    scheduler thread, and in slices of at most LOG_WRITE_SLICE_MS: a stdout
 *    that stops draining parks the logger (lines then pile up to the caps
 *    and are dropped), holds one blocking thread for a slice at a time, and
 *    never stops the runtime from shutting down.
 *
 * Runtime and gateway reports (rt_log, crash reports) are JSON lines on
 * stderr, built by the same writer: gw__report and gw__crash_report, which
 * the gateway installs as the runtime's handlers.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gw_int.h"
#include "linebuf.h"

#define LOG_LINE_MAX 4096
#define LOG_BACKLOG_LINES 100000
#define LOG_BACKLOG_BYTES (16u << 20) /* message headers included */
#define LOG_BATCH_BYTES (256u << 10)  /* gathered for one write */
#define LOG_WRITE_SLICE_MS 1000
#define LOG_REPORT_INTERVAL_MS 1000

/* Caps on each string field as written (escaped, quotes included). The
 * values the gateway itself produces fit whole: request ids are at most 39
 * id characters, names at most 128 bytes, addresses at most 79. */
#define LOG_PATH_MAX 2048
#define LOG_NAME_MAX 280 /* request id, listener, route */
#define LOG_ADDR_MAX 168 /* client, upstream target */
#define LOG_METHOD_MAX 64
/* Everything else: keys, punctuation, the time and the numbers. */
#define LOG_FIXED_MAX 400
_Static_assert(LOG_PATH_MAX + 3 * LOG_NAME_MAX + 2 * LOG_ADDR_MAX + LOG_METHOD_MAX +
                       LOG_FIXED_MAX <=
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

/* A line freed undelivered (the logger died with it queued, or was gone). */
static void line_dtor(struct rt_msg *m)
{
    backlog_release(1, line_cost(m->size));
    atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
}

/* ---- writing: a batch of lines, on the blocking pool ----------------------- */

struct batch {
    /* The logger's reference, and a blocking thread's while it writes. */
    _Atomic int refs;
    int fd;
    bool regular; /* a regular file: writes never wait for a reader */
    size_t len, off;
    uint64_t lines, cost; /* backlog held by buf[0, len) */
    int err;              /* of the last write, -errno */
    char buf[LOG_BATCH_BYTES];
};

static void batch_unref(struct batch *b)
{
    /* acq_rel: the last owner sees everything the other wrote. */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

/* Forgets the lines in the batch (written or not) and their backlog. */
static void batch_reset(struct batch *b)
{
    backlog_release(b->lines, b->cost);
    b->len = b->off = 0;
    b->lines = b->cost = 0;
}

/* Counts the lines the batch holds as dropped and gives their backlog back.
 * Touches only what a blocking thread writing the batch does not. */
static void batch_forget(struct batch *b)
{
    atomic_fetch_add_explicit(&dropped, b->lines, memory_order_relaxed);
    backlog_release(b->lines, b->cost);
    b->lines = b->cost = 0;
}

/* The logger's deferred cleanup. */
static void batch_drop(void *arg)
{
    struct batch *b = arg;
    batch_forget(b);
    batch_unref(b);
}

/* On a blocking thread: writes buf[off, len) until done, an error, or the
 * slice is over. Waits with poll and, on anything but a regular file, writes
 * at most PIPE_BUF bytes once poll says there is room, so that the write
 * itself does not wait. */
static intptr_t batch_write(void *arg)
{
    struct batch *b = arg;
    uint64_t end = rt_now_ms() + LOG_WRITE_SLICE_MS;
    b->err = 0;
    while (b->off < b->len) {
        uint64_t now = rt_now_ms();
        if (now >= end)
            break;
        struct pollfd p = {.fd = b->fd, .events = POLLOUT};
        int r = poll(&p, 1, (int)(end - now));
        if (r < 0 && errno != EINTR) {
            b->err = -errno;
            break;
        }
        if (r <= 0)
            continue;
        size_t n = b->len - b->off;
        if (!b->regular && n > PIPE_BUF)
            n = PIPE_BUF;
        ssize_t w = write(b->fd, b->buf + b->off, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            b->err = -errno;
            break;
        }
        b->off += (size_t)w;
    }
    batch_unref(b);
    return 0;
}

/* Writes the batch for one slice. Returns true when it made progress or is
 * empty; on a write error the batch's lines are dropped and counted. */
static bool batch_flush(struct batch *b, int *last_err)
{
    if (!b->len)
        return true;
    size_t before = b->off;
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    int r = rt_blocking(batch_write, b, NULL);
    if (r < 0) {
        atomic_fetch_sub_explicit(&b->refs, 1, memory_order_relaxed); /* it never ran */
        b->err = r;
    }
    if (b->err) {
        *last_err = b->err;
        batch_forget(b);
        batch_reset(b);
        return false;
    }
    bool progress = b->off > before;
    if (b->off == b->len)
        batch_reset(b);
    return progress;
}

/* ---- the logger process ------------------------------------------------------ */

/* Reports lines dropped since the last report, at most once per
 * LOG_REPORT_INTERVAL_MS unless `now_anyway`. */
static void report_dropped(uint64_t *next_ms, int *last_err, bool now_anyway)
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
        rt_log(RT_LOG_WARNING, "access log: %llu lines dropped (logger behind)",
               (unsigned long long)d);
    *last_err = 0;
    *next_ms = now + LOG_REPORT_INTERVAL_MS;
}

/* Takes one message: a line into the batch, or the exit signal that stops
 * the logger (its reason in *stop). */
static void take(struct batch *b, struct rt_msg *m, rt_atom *stop, bool *stopping)
{
    if (m->type == GW__MSG_LOG) {
        if (m->size > sizeof b->buf - b->len) {
            line_dtor(m); /* not made by gw__access_log: no line is longer */
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

static void logger_main(void *arg)
{
    (void)arg;
    /* malloc, not rt_alloc: a blocking thread may still be writing the
     * batch when the logger is killed; the last reference frees it. */
    struct batch *b = malloc(sizeof *b);
    if (!b)
        rt_exit(RT_SYSTEM_LIMIT);
    atomic_init(&b->refs, 1);
    b->fd = STDOUT_FILENO;
    struct stat st;
    b->regular = fstat(b->fd, &st) == 0 && S_ISREG(st.st_mode);
    b->len = b->off = 0;
    b->lines = b->cost = 0;
    b->err = 0;
    if (!rt_defer(batch_drop, b)) {
        free(b);
        rt_exit(RT_SYSTEM_LIMIT);
    }
    atomic_store(&logger_pid, rt_self());
    /* The supervisor's shutdown arrives as a message: lines already queued
     * are written before the logger exits. */
    rt_trap_exit(true);
    rt_atom stop = RT_NORMAL;
    bool stopping = false;
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
        bool progress = batch_flush(b, &last_err);
        report_dropped(&next_report, &last_err, false);
        /* Stopping: done when everything queued is written, or when output
         * is stuck (the supervisor's shutdown timeout would end it anyway). */
        if (stopping && ((!b->len && !rt_mailbox_len()) || !progress)) {
            batch_forget(b);
            report_dropped(&next_report, &last_err, true);
            rt_exit(stop);
        }
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

/* The line for one request into line[0, cap); its length, or 0 when it did
 * not fit (which the caps above rule out). */
static size_t format_line(char *line, size_t cap, const struct gw__exchange *ex, const char *method,
                          const char *path, const char *route, const char *target, int status,
                          uint64_t bytes, uint64_t duration_us, uint64_t version)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    struct gw__linebuf l;
    gw__linebuf_init(&l, line, cap);
    key(&l, "{\"time\":\"");
    gw__linebuf_i64(&l, (int64_t)tm.tm_year + 1900);
    key(&l, "-");
    gw__linebuf_u64_pad(&l, (uint64_t)tm.tm_mon + 1, 2);
    key(&l, "-");
    gw__linebuf_u64_pad(&l, (uint64_t)tm.tm_mday, 2);
    key(&l, "T");
    gw__linebuf_u64_pad(&l, (uint64_t)tm.tm_hour, 2);
    key(&l, ":");
    gw__linebuf_u64_pad(&l, (uint64_t)tm.tm_min, 2);
    key(&l, ":");
    gw__linebuf_u64_pad(&l, (uint64_t)tm.tm_sec, 2);
    key(&l, ".");
    gw__linebuf_u64_pad(&l, (uint64_t)ts.tv_nsec / 1000000, 3);
    key(&l, "Z\",\"request_id\":");
    text(&l, ex->request_id, LOG_NAME_MAX, NULL);
    key(&l, ",\"listener\":");
    text(&l, ex->lis->name, LOG_NAME_MAX, NULL);
    key(&l, ",\"client\":");
    text(&l, ex->client_addr, LOG_ADDR_MAX, NULL);
    key(&l, ",\"method\":");
    text(&l, method, LOG_METHOD_MAX, NULL);
    key(&l, ",\"path\":");
    bool cut = false;
    text(&l, path, LOG_PATH_MAX, &cut);
    if (cut)
        key(&l, ",\"path_truncated\":true");
    key(&l, ",\"route\":");
    text(&l, route, LOG_NAME_MAX, NULL);
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
    key(&l, "}\n");
    return gw__linebuf_full(&l) ? 0 : l.len;
}

void gw__access_log(const struct gw__exchange *ex, const char *method, const char *path,
                    const char *route, const char *target, int status, uint64_t bytes,
                    uint64_t duration_us, uint64_t version)
{
    rt_pid to = atomic_load(&logger_pid);
    if (!to)
        return;
    char line[LOG_LINE_MAX];
    size_t n = format_line(line, sizeof line, ex, method, path, route, target, status, bytes,
                           duration_us, version);
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

static void report_write(const struct gw__linebuf *l)
{
    if (gw__linebuf_full(l))
        return;
    size_t off = 0;
    while (off < l->len) {
        ssize_t w = write(STDERR_FILENO, l->buf + off, l->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

static const char *level_name(enum rt_log_level level)
{
    switch (level) {
    case RT_LOG_DEBUG:
        return "debug";
    case RT_LOG_INFO:
        return "info";
    case RT_LOG_WARNING:
        return "warning";
    default:
        return "error";
    }
}

void gw__report(enum rt_log_level level, const char *msg, void *ctx)
{
    (void)ctx;
    char line[REPORT_LINE_MAX];
    struct gw__linebuf l;
    gw__linebuf_init(&l, line, sizeof line);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    key(&l, "{\"time\":");
    gw__linebuf_i64(&l, (int64_t)ts.tv_sec);
    key(&l, ".");
    gw__linebuf_u64_pad(&l, (uint64_t)ts.tv_nsec / 1000000, 3);
    key(&l, ",\"level\":\"");
    key(&l, level_name(level));
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
    key(&l, "{\"level\":\"error\",\"event\":\"crash\",\"pid\":");
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
}
