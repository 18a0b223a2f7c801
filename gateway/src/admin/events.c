/*
 * events.c: GET /admin/events, the gateway's events (gw/events.h) as a
 * Server-Sent Events stream, one frame per event:
 *
 *   id: N\nevent: TYPE\ndata: ONE-LINE-JSON\n\n
 *
 * N counts the stream's frames from 1 (hello); README.md, "Admin API",
 * lists the types and their data.
 *
 * The admin request process that answers the request is the stream: it
 * adds a handler to gw_events with rt_gen_event_add_sup_handler (so the
 * handler goes when the process does, however it ends), and the handler,
 * which runs in the manager, forwards each event to it as a message; the
 * process turns them into frames and writes them. The two share a `struct
 * feed` (malloc'd, one reference each) that bounds what waits in the
 * process's mailbox: at most GW_ADMIN_EVENTS_MAX_QUEUED events or
 * GW_ADMIN_EVENTS_MAX_QUEUED_BYTES bytes. A stream whose client does not
 * read fast enough reaches the bound; the handler then forwards nothing
 * more and counts what it drops, and the process writes what was queued,
 * one `lagged` frame with that count, and closes: the client reconnects
 * and fetches the state afresh, rather than the gateway holding an
 * unbounded backlog for it.
 *
 * The process waits on the client's socket and its mailbox at once, so a
 * client that closes ends the stream at once; it also ends when the event
 * manager goes (the client reconnects to the new one) and when the gateway
 * drains. Its connection is closed after it (the body ends at the close).
 * At most GW_ADMIN_EVENTS_MAX_STREAMS streams are open at once.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "gw/events.h"
#include "gw_int.h"
#include "gw_version.h"
#include "rt/gen_event.h"

/* Streams open now. Relaxed: a counter that admits or refuses, nothing
 * published through it. */
static _Atomic int streams;

/* A message the handler sends when the stream lags (beside the events,
 * whose types are gw_event_type values). */
enum { FEED_LAGGED = 0x4745 };

/* Shared by the stream's process and its handler in the manager. */
struct feed {
    _Atomic int refs;
    rt_pid stream;
    /* Forwarded and not yet taken by the stream: written by the handler
     * (adds) and the stream (subtracts). Relaxed: each side only needs a
     * count that is never too low by more than what is in flight. */
    _Atomic uint32_t queued;
    _Atomic uint64_t queued_bytes;
    /* Events not forwarded since the stream lagged (relaxed counter). */
    _Atomic uint64_t dropped;
    /* Set once by the handler; release, so that the stream that sees it
     * (acquire) sees the drops counted before. */
    _Atomic bool lagged;
};

static void feed_unref(void *arg)
{
    struct feed *f = arg;
    /* acq_rel: the last holder sees everything the other wrote. */
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

/* ---- the handler, in the manager process ------------------------------------ */

static void feed_init(const void *arg, size_t arg_size, const struct rt_ge_swap *swap,
                      struct rt_ge_result *r)
{
    (void)swap;
    struct feed *f = NULL;
    if (arg_size != sizeof f) {
        rt_ge_error(r, RT_BADARG);
        return;
    }
    memcpy(&f, arg, sizeof f);
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    r->state = f;
}

static void lag(struct feed *f)
{
    atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
    if (atomic_load_explicit(&f->lagged, memory_order_relaxed))
        return;
    atomic_store_explicit(&f->lagged, true, memory_order_release);
    struct rt_msg *m = rt_msg_new(FEED_LAGGED, 0);
    if (m)
        rt_send(f->stream, m);
}

static void feed_event(const struct rt_msg *event, void *state, struct rt_ge_result *r)
{
    struct feed *f = state;
    uint64_t cost = sizeof(struct rt_msg) + event->size;
    if (atomic_load_explicit(&f->lagged, memory_order_relaxed) ||
        atomic_load_explicit(&f->queued, memory_order_relaxed) >= GW_ADMIN_EVENTS_MAX_QUEUED ||
        atomic_load_explicit(&f->queued_bytes, memory_order_relaxed) + cost >
            GW_ADMIN_EVENTS_MAX_QUEUED_BYTES) {
        lag(f);
        return;
    }
    struct rt_msg *m = rt_msg_copy(event->type, event->data, event->size);
    if (!m) {
        lag(f); /* the stream would miss it: say so */
        return;
    }
    m->u64 = cost;
    atomic_fetch_add_explicit(&f->queued, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&f->queued_bytes, cost, memory_order_relaxed);
    if (rt_send(f->stream, m) < 0)
        rt_ge_remove(r); /* the stream is gone; its exit removes us anyway */
}

static void feed_info(const struct rt_msg *msg, void *state, struct rt_ge_result *r)
{
    /* EXIT and DOWN of others' processes: not this handler's. */
    (void)msg;
    (void)state;
    (void)r;
}

static struct rt_msg *feed_terminate(const struct rt_ge_stop *stop, void *state)
{
    (void)stop;
    feed_unref(state);
    return NULL;
}

static const struct rt_ge_handler_ops feed_ops = {
    .name = "gw_admin_events",
    .init = feed_init,
    .handle_event = feed_event,
    .handle_info = feed_info,
    .terminate = feed_terminate,
};

/* ---- frames ----------------------------------------------------------------- */

struct stream {
    struct gw__exchange *ex;
    struct feed *f;
    rt_pid mgr;
    struct rt_ge_handler h;
    uint64_t id; /* frames written */
    char *buf;   /* frames not yet written (rt_alloc'd) */
    size_t len, cap;
    uint64_t bytes; /* written, for the access log */
};

/* Frames wait in the buffer up to this many bytes before they are written. */
#define FLUSH_AT (64 * 1024)

static int append(struct stream *s, const char *p, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        char *b = rt_realloc(s->buf, cap);
        if (!b)
            return -ENOMEM;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

static int flush(struct stream *s)
{
    if (!s->len)
        return 0;
    int rc = gw__ex_write(s->ex, s->buf, s->len);
    s->bytes += s->len;
    s->len = 0;
    return rc;
}

/* Appends one frame of `type` with data `text` (one line, `len` bytes). */
static int frame_text(struct stream *s, const char *type, const char *text, size_t len)
{
    char head[96];
    int hn = snprintf(head, sizeof head, "id: %llu\nevent: %s\ndata: ", (unsigned long long)++s->id,
                      type);
    int rc = append(s, head, (size_t)hn);
    if (rc == 0)
        rc = append(s, text, len);
    if (rc == 0)
        rc = append(s, "\n\n", 2);
    if (rc == 0 && s->len >= FLUSH_AT)
        rc = flush(s);
    return rc;
}

/* Appends one frame with `data` (stolen; NULL: out of memory, no frame). */
static int frame(struct stream *s, const char *type, json_t *data)
{
    char *text =
        data ? json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(data);
    if (!text)
        return -ENOMEM;
    int rc = frame_text(s, type, text, strlen(text));
    free(text);
    return rc;
}

static json_t *text_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

/* The data of event `m` (a gw_event_type with its struct), or NULL when it
 * is not one this stream knows (a newer type, a short payload). */
static json_t *event_json(const struct rt_msg *m)
{
    switch (m->type) {
    case GW_EVENT_ROUTES_RELOADED: {
        const struct gw_event_routes *e = (const void *)m->data;
        if (m->size < sizeof *e)
            return NULL;
        return json_pack("{s:b,s:I,s:I,s:s}", "ok", e->ok, "version", (json_int_t)e->version,
                         "routes", (json_int_t)e->routes, "source", e->source);
    }
    case GW_EVENT_TARGET_EJECTED:
    case GW_EVENT_TARGET_READMITTED: {
        const struct gw_event_target *e = (const void *)m->data;
        if (m->size < sizeof *e)
            return NULL;
        return json_pack("{s:s,s:s,s:I,s:s}", "upstream", e->upstream, "target", e->target,
                         "ejected_ms", (json_int_t)e->ejected_ms, "reason", e->reason);
    }
    case GW_EVENT_LISTENER_STARTED: {
        const struct gw_event_listener *e = (const void *)m->data;
        if (m->size < sizeof *e)
            return NULL;
        return json_pack("{s:s,s:s,s:i,s:b}", "name", e->name, "address", e->address, "port",
                         (int)e->port, "admin", e->admin);
    }
    case GW_EVENT_PROCESS_CRASHED: {
        const struct gw_event_crash *e = (const void *)m->data;
        if (m->size < sizeof *e)
            return NULL;
        return json_pack("{s:o,s:o,s:o,s:s}", "pid", gw__admin_pid_json(e->pid), "name",
                         text_or_null(e->name), "initial_call", text_or_null(e->initial_call),
                         "reason", e->reason);
    }
    case GW_EVENT_SUPERVISOR: {
        const struct gw_event_supervisor *e = (const void *)m->data;
        if (m->size < sizeof *e)
            return NULL;
        return json_pack("{s:o,s:o,s:s,s:s,s:o,s:o,s:o}", "supervisor",
                         gw__admin_pid_json(e->supervisor), "supervisor_name",
                         text_or_null(e->supervisor_name), "event", e->event, "child", e->child,
                         "pid", gw__admin_pid_json(e->pid), "new_pid",
                         gw__admin_pid_json(e->new_pid), "reason", text_or_null(e->reason));
    }
    default:
        return NULL;
    }
}

/* ---- the stream ------------------------------------------------------------- */

enum end { GO_ON, END_CLIENT, END_LAGGED, END_MANAGER };

/* One message from the mailbox. */
static enum end take(struct stream *s, struct rt_msg *m)
{
    if (m->type == FEED_LAGGED)
        return GO_ON; /* seen through f->lagged once the queue is written */
    if (m->type == RT_MSG_GEN_EVENT_EXIT)
        return END_MANAGER; /* the handler went (the manager stops) */
    if (m->type == RT_MSG_EXIT) {
        if (m->from == s->mgr)
            return END_MANAGER;
        /* As if exits were not trapped: trapping is only for the manager's. */
        if ((rt_atom)m->u64 != RT_NORMAL)
            rt_exit((rt_atom)m->u64);
        return GO_ON;
    }
    if (m->from != s->mgr || m->type >= GW_EVENT_TYPES)
        return GO_ON;
    atomic_fetch_sub_explicit(&s->f->queued, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&s->f->queued_bytes, m->u64, memory_order_relaxed);
    if (m->type == GW_EVENT_SAMPLE) {
        /* One a second on every stream: written straight to text. */
        char text[GW__ADMIN_SAMPLE_TEXT_MAX];
        int n = m->size >= sizeof(struct gw_event_sample)
                    ? gw__admin_sample_text((const void *)m->data, text, sizeof text)
                    : -1;
        if (n >= 0 && frame_text(s, "sample", text, (size_t)n) < 0)
            return END_CLIENT;
        return GO_ON;
    }
    json_t *data = event_json(m);
    if (data && frame(s, gw_event_name((enum gw_event_type)m->type), data) < 0)
        return END_CLIENT;
    return GO_ON;
}

static bool draining(void)
{
    /* relaxed: a flag read on its own. */
    return atomic_load_explicit(&gw.draining, memory_order_relaxed) != 0;
}

static void run(struct stream *s)
{
    json_t *hello = json_pack("{s:s,s:I,s:i}", "version", TANDEM_VERSION, "routes_version",
                              (json_int_t)gw__admin_route_version(), "sample_interval_ms",
                              GW_EVENTS_SAMPLE_INTERVAL_MS);
    if (frame(s, "hello", hello) < 0 || flush(s) < 0)
        return;
    uint64_t beat = rt_now_ms() + GW_ADMIN_EVENTS_HEARTBEAT_MS;
    enum end end = GO_ON;
    while (end == GO_ON) {
        struct rt_msg *m;
        while (end == GO_ON && (m = rt_receive(0))) {
            end = take(s, m);
            rt_msg_free(m);
        }
        if (end == GO_ON && atomic_load_explicit(&s->f->lagged, memory_order_acquire))
            end = END_LAGGED;
        if (end == END_CLIENT || flush(s) < 0)
            return;
        if (end != GO_ON || draining())
            break;
        uint64_t now = rt_now_ms();
        if (now >= beat) {
            static const char keepalive[] = ": keepalive\n\n";
            if (append(s, keepalive, sizeof keepalive - 1) < 0 || flush(s) < 0)
                return;
            beat = now + GW_ADMIN_EVENTS_HEARTBEAT_MS;
        }
        /* At most a sample interval between looks at the drain flag. */
        uint64_t wait = beat - now;
        if (wait > GW_EVENTS_SAMPLE_INTERVAL_MS)
            wait = GW_EVENTS_SAMPLE_INTERVAL_MS;
        const char *data;
        size_t len;
        int r = gw__ex_tunnel_read(s->ex, (int64_t)wait, &data, &len);
        /* Bytes the client sends are not read as requests (the connection
         * closes after the stream): dropped. */
        if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN)
            return; /* the client closed or failed */
    }
    if (end == END_LAGGED) {
        /* Removed first, so that the count is final. */
        rt_gen_event_delete_handler(s->mgr, s->h, NULL, 0, NULL);
        s->h.ops = NULL;
        /* What the handler forwarded before it went is in the mailbox now:
         * sent ahead of the frame, which follows what was queued. */
        struct rt_msg *m;
        while ((m = rt_receive(0))) {
            enum end e = take(s, m);
            rt_msg_free(m);
            if (e == END_CLIENT)
                return;
        }
        uint64_t dropped = atomic_load_explicit(&s->f->dropped, memory_order_relaxed);
        if (frame(s, "lagged", json_pack("{s:I}", "dropped", (json_int_t)dropped)) == 0)
            flush(s);
    }
}

static void stream_closed(void *arg)
{
    (void)arg;
    atomic_fetch_sub_explicit(&streams, 1, memory_order_relaxed);
}

static void unwatch(void *arg)
{
    (void)arg;
    gw_events_sample_watch(-1);
}

bool gw__admin_events_serve(struct gw__exchange *ex, struct gw_admin_response *resp,
                            struct gw__req_log *log)
{
    struct gw_http_answer a = {
        .status = 200,
        .content_type = "text/event-stream",
        .no_store = true,
        .until_close = true,
    };
    if (gw__ex_head_request(ex)) {
        gw__ex_answer(ex, &a, NULL, 0);
        return true;
    }
    if (atomic_fetch_add_explicit(&streams, 1, memory_order_relaxed) >=
        GW_ADMIN_EVENTS_MAX_STREAMS) {
        atomic_fetch_sub_explicit(&streams, 1, memory_order_relaxed);
        gw__admin_errorf(resp, 503, "too_many_streams",
                         "at most %d event streams may be open at once",
                         GW_ADMIN_EVENTS_MAX_STREAMS);
        return false;
    }
    rt_defer(stream_closed, NULL);
    rt_pid mgr = rt_whereis(GW_EVENTS_NAME);
    struct feed *f = calloc(1, sizeof *f);
    if (!f || !mgr) {
        free(f);
        gw__admin_errorf(resp, 503, "unavailable", "the event manager is not running");
        return false;
    }
    atomic_init(&f->refs, 1);
    f->stream = rt_self();
    rt_defer(feed_unref, f);
    /* The manager links to this process: its exit must end the stream,
     * not the process. */
    rt_trap_exit(true);
    struct stream s = {.ex = ex, .f = f, .mgr = mgr, .h = {.ops = &feed_ops, .id = rt_self()}};
    if (rt_gen_event_add_sup_handler(mgr, s.h, &f, sizeof f, NULL) < 0) {
        gw__admin_errorf(resp, 503, "unavailable", "the event manager is not running");
        return false;
    }
    gw_events_sample_watch(1);
    rt_defer(unwatch, NULL);
    gw__ex_send_buffer(ex, GW_ADMIN_EVENTS_SNDBUF); /* without it the bound is just larger */
    if (gw__ex_answer(ex, &a, NULL, 0) == 0)
        run(&s);
    if (s.h.ops)
        rt_gen_event_delete_handler(mgr, s.h, NULL, 0, NULL);
    rt_free(s.buf);
    log->bytes = s.bytes;
    return true;
}
