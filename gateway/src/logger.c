/*
 * logger.c: the access log. A process registered as "logger" writes one
 * JSON line per request to stdout. Request processes format their line and
 * send it; they never wait on output. When the logger falls behind by more
 * than LOG_BACKLOG lines, further lines are dropped and counted rather than
 * let memory grow.
 *
 * A line is built by the bounded writer (linebuf.h) into LOG_LINE_MAX
 * bytes. Each string field has a cap of its own and the caps add up to less
 * than the line (static assert below), so every line is whole JSON with all
 * its fields: a long path is cut (and flagged with "path_truncated": true),
 * never the record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_int.h"
#include "linebuf.h"

#define LOG_BACKLOG 100000
#define LOG_LINE_MAX 4096

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
static _Atomic int64_t backlog;
static _Atomic uint64_t dropped;

static void logger_main(void *arg)
{
    (void)arg;
    atomic_store(&logger_pid, rt_self());
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        do {
            if (m->type == GW__MSG_LOG) {
                fwrite(m->data, 1, m->size, stdout);
                atomic_fetch_sub_explicit(&backlog, 1, memory_order_relaxed);
            }
            rt_msg_free(m);
        } while ((m = rt_receive(0)));
        fflush(stdout);
        uint64_t d = atomic_exchange(&dropped, 0);
        if (d)
            rt_log(RT_LOG_WARNING, "access log: %llu lines dropped (logger behind)",
                   (unsigned long long)d);
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
    if (atomic_load_explicit(&backlog, memory_order_relaxed) > LOG_BACKLOG) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    char line[LOG_LINE_MAX];
    size_t n = format_line(line, sizeof line, ex, method, path, route, target, status, bytes,
                           duration_us, version);
    if (!n) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    struct rt_msg *m = rt_msg_copy(GW__MSG_LOG, line, n);
    if (!m)
        return;
    atomic_fetch_add_explicit(&backlog, 1, memory_order_relaxed);
    if (rt_send(to, m) < 0)
        atomic_fetch_sub_explicit(&backlog, 1, memory_order_relaxed);
}
