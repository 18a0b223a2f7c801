/*
 * sample.c: a sample event (gw/events.h) as the one line of JSON that the
 * event stream (events.c) sends as its `data`, written straight into a
 * buffer: every open stream writes one a second, and building the value
 * with jansson and dumping it cost about ten times as much.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "admin_int.h"
#include "gw/events.h"

/* Appends to out[*at..cap) what fmt makes; false when it does not fit. */
static bool put(char *out, size_t cap, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool put(char *out, size_t cap, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *at, cap - *at, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *at)
        return false;
    *at += (size_t)n;
    return true;
}

/* A real as jansson writes it with JSON_REAL_PRECISION(6): "%.6g", with
 * ".0" added when that reads as an integer, and the exponent without its
 * '+' and leading zeros (1e-07 is 1e-7, 7e+22 is 7e22). */
static bool put_real(char *out, size_t cap, size_t *at, double v)
{
    if (!isfinite(v))
        v = 0;
    size_t start = *at;
    if (!put(out, cap, at, "%.6g", v))
        return false;
    char *t = out + start, *e = memchr(t, 'e', *at - start);
    if (!e)
        return memchr(t, '.', *at - start) ? true : put(out, cap, at, ".0");
    char *d = e + 1, *from = d;
    if (*from == '+')
        from++;
    else if (*from == '-')
        d = ++from;
    while (*from == '0' && from[1] >= '0' && from[1] <= '9')
        from++;
    size_t keep = (size_t)(out + *at - from);
    memmove(d, from, keep);
    *at = (size_t)(d + keep - out);
    out[*at] = '\0';
    return true;
}

int gw__admin_sample_text(const struct gw_event_sample *e, char *out, size_t cap)
{
    size_t at = 0;
    if (cap == 0)
        return -1;
    bool ok = put(out, cap, &at,
                  "{\"t_ms\":%" PRIu64 ",\"uptime_ms\":%" PRIu64 ",\"ready\":%s,\"schedulers\":[",
                  e->t_ms, e->uptime_ms, e->ready ? "true" : "false");
    for (uint32_t i = 0; ok && i < e->schedulers && i < RT_MAX_SCHEDULERS; i++) {
        ok = put(out, cap, &at, "%s{\"id\":%u,\"utilisation\":", i ? "," : "", (unsigned)i) &&
             put_real(out, cap, &at, e->sched[i].utilisation) &&
             put(out, cap, &at, ",\"run_queue\":%" PRIu32 "}", e->sched[i].run_queue);
    }
    ok = ok &&
         put(out, cap, &at,
             "],\"processes\":%" PRIu64 ",\"process_limit\":%" PRIu64
             ",\"memory\":{\"rss_bytes\":%" PRIu64 ",\"processes_bytes\":%" PRIu64
             "},\"requests_total\":%" PRIu64 ",\"requests_per_s\":",
             e->processes, e->process_limit, e->rss_bytes, e->processes_bytes, e->requests_total) &&
         put_real(out, cap, &at, e->requests_per_s) &&
         put(out, cap, &at, ",\"errors_total\":%" PRIu64 ",\"errors_per_s\":", e->errors_total) &&
         put_real(out, cap, &at, e->errors_per_s) &&
         put(out, cap, &at, ",\"in_flight\":%" PRIu64 ",\"routes_version\":%" PRIu64 "}",
             e->in_flight, e->routes_version);
    return ok && at <= INT32_MAX ? (int)at : -1;
}
