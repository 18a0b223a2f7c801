/*
 * logger.c: the access log. A process registered as "logger" writes one
 * JSON line per request to stdout. Request processes format their line and
 * send it; they never wait on output. When the logger falls behind by more
 * than LOG_BACKLOG lines, further lines are dropped and counted rather than
 * let memory grow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_int.h"

#define LOG_BACKLOG 100000

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

/* Appends s as a JSON string (with quotes), or null. */
static size_t jstr(char *buf, size_t cap, size_t n, const char *s)
{
    if (n >= cap)
        return n;
    if (!s)
        return n + (size_t)snprintf(buf + n, cap - n, "null");
    buf[n++] = '"';
    for (; *s && n + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    if (n < cap)
        buf[n++] = '"';
    return n;
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
    char line[4096];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = (size_t)snprintf(
        line, sizeof line,
        "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"request_id\":", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    n = jstr(line, sizeof line, n, ex->request_id);
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"listener\":");
    n = jstr(line, sizeof line, n, ex->lis->name);
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"client\":");
    n = jstr(line, sizeof line, n, ex->client_addr);
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"method\":");
    n = jstr(line, sizeof line, n, method);
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"path\":");
    n = jstr(line, sizeof line, n, path);
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"route\":");
    n = jstr(line, sizeof line, n, route);
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"upstream\":");
    n = jstr(line, sizeof line, n, target);
    if (n < sizeof line)
        n += (size_t)snprintf(line + n, sizeof line - n,
                              ",\"status\":%d,\"bytes\":%llu,\"duration_ms\":%.3f,"
                              "\"route_version\":%llu}\n",
                              status, (unsigned long long)bytes, (double)duration_us / 1000.0,
                              (unsigned long long)version);
    if (n >= sizeof line) {
        n = sizeof line - 2;
        line[n++] = '\n';
    }
    struct rt_msg *m = rt_msg_copy(GW__MSG_LOG, line, n);
    if (!m)
        return;
    atomic_fetch_add_explicit(&backlog, 1, memory_order_relaxed);
    if (rt_send(to, m) < 0)
        atomic_fetch_sub_explicit(&backlog, 1, memory_order_relaxed);
}
