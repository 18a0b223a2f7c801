/*
 * log.c: where runtime reports go. By default one plain text line per
 * report on stderr ("<RFC 3339 UTC time> <level>: <text>", control bytes
 * shown as \xNN): the runtime writes no JSON, an application that wants a
 * format of its own installs its handlers. Handlers run on the reporting
 * thread and must not block for long.
 */
#include "rt_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic(rt_log_fn) log_fn;
static _Atomic(void *) log_ctx;
static _Atomic(rt_crash_fn) crash_fn;
static _Atomic(void *) crash_ctx;
static _Atomic(rt_supervisor_report_fn) sup_fn;
static _Atomic(void *) sup_ctx;
static _Atomic(rt_fatal_fn) fatal_fn;
static _Atomic(void *) fatal_ctx;

const char *rt_log_level_name(enum rt_log_level l)
{
    switch (l) {
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

size_t rt__text_escape(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    if (cap)
        out[o] = 0;
    return o;
}

/* "2024-05-01T12:00:00.123Z": the time now, RFC 3339 UTC to the ms. */
static void time_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void default_log(enum rt_log_level level, const char *msg, void *ctx)
{
    (void)ctx;
    char esc[4 * 1024 + 1], now[32];
    rt__text_escape(esc, sizeof esc, msg);
    time_now(now);
    fprintf(stderr, "%s %s: %s\n", now, rt_log_level_name(level), esc);
}

void rt_set_log_handler(rt_log_fn fn, void *ctx)
{
    atomic_store(&log_ctx, ctx);
    atomic_store(&log_fn, fn);
}

void rt_set_crash_handler(rt_crash_fn fn, void *ctx)
{
    atomic_store(&crash_ctx, ctx);
    atomic_store(&crash_fn, fn);
}

void rt_set_supervisor_report_handler(rt_supervisor_report_fn fn, void *ctx)
{
    atomic_store(&sup_ctx, ctx);
    atomic_store(&sup_fn, fn);
}

bool rt__supervisor_report_wanted(void)
{
    return atomic_load(&sup_fn) != NULL;
}

void rt__supervisor_report(const struct rt_supervisor_report *r)
{
    rt_supervisor_report_fn fn = atomic_load(&sup_fn);
    if (fn)
        fn(r, atomic_load(&sup_ctx));
}

void rt_set_fatal_handler(rt_fatal_fn fn, void *ctx)
{
    atomic_store(&fatal_ctx, ctx);
    atomic_store(&fatal_fn, fn);
}

bool rt__fatal_handled(const struct rt_fatal_report *r)
{
    /* Lock-free pointer loads: async-signal-safe, as the caller needs. */
    rt_fatal_fn fn = atomic_load(&fatal_fn);
    if (!fn)
        return false;
    fn(r, atomic_load(&fatal_ctx));
    return true;
}

void rt__log_text(enum rt_log_level level, const char *text)
{
    rt_log_fn fn = atomic_load(&log_fn);
    if (fn)
        fn(level, text, atomic_load(&log_ctx));
    else
        default_log(level, text, NULL);
}

void rt_log(enum rt_log_level level, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rt__log_text(level, buf);
}

int rt_set_crash_state(const char *text)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    rt_free(p->crash_state);
    p->crash_state = NULL;
    if (!text || !*text)
        return 0;
    size_t len = strnlen(text, RT_CRASH_STATE_MAX - 1);
    char *copy = rt_alloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, text, len);
    copy[len] = 0;
    p->crash_state = copy;
    return 0;
}

/* s (NULL: "") cut to cap - 1 bytes into out, NUL-terminated. */
static void copy_text(char *out, size_t cap, const char *s)
{
    size_t n = s ? strnlen(s, cap - 1) : 0;
    memcpy(out, s ? s : "", n);
    out[n] = 0;
}

void rt__crash_report(struct rt_proc *p, rt_atom reason)
{
    char name[64], ic[64];
    /* Plain bounded copies, not snprintf: a crash report is written for
     * every abnormal exit, and a supervisor restart waits for it. */
    rt__spin_lock(&p->info_lock);
    copy_text(name, sizeof name, p->name);
    copy_text(ic, sizeof ic, p->initial_call);
    rt__spin_unlock(&p->info_lock);
    struct rt_crash_report r = {
        .pid = atomic_load_explicit(&p->pid, memory_order_relaxed),
        .name = name,
        .initial_call = ic,
        .reason = reason,
        .last_msg_type = p->last_msg_type,
        /* Process memory, still held: the report is written before the
         * process's memory is released. */
        .state = p->crash_state ? p->crash_state : "",
    };
    rt_crash_fn fn = atomic_load(&crash_fn);
    if (fn) {
        fn(&r, atomic_load(&crash_ctx));
        return;
    }
    char esc_name[4 * 64], esc_ic[4 * 64], esc_reason[4 * 64], now[32];
    char esc_state[4 * RT_CRASH_STATE_MAX];
    rt__text_escape(esc_name, sizeof esc_name, name);
    rt__text_escape(esc_ic, sizeof esc_ic, ic);
    /* A long reason is cut: the report stays one line of bounded size. */
    rt__text_escape(esc_reason, sizeof esc_reason, rt_atom_name(reason));
    rt__text_escape(esc_state, sizeof esc_state, r.state);
    time_now(now);
    fprintf(stderr,
            "%s error: crash pid=%llu name=%s initial_call=%s reason=%s last_message_type=%u "
            "state=%s\n",
            now, (unsigned long long)r.pid, esc_name, esc_ic, esc_reason, r.last_msg_type,
            esc_state);
}
