/*
 * top.c: `tandem ctl top`, the running gateway in a terminal, refreshed in
 * place like top(1) and Erlang's observer_cli: schedulers, memory,
 * processes, requests and errors per second, then the busiest processes.
 *
 * One loop on the main thread polls three descriptors: the event stream
 * (GET /admin/events, held open), the terminal (keys) and a self-pipe the
 * signal handlers write to (SIGINT, SIGTERM, SIGHUP quit; SIGWINCH
 * redraws). Each `sample` frame redraws the screen, with the process list
 * fetched by one more request (/admin/processes?sort=KEY&limit=N, N the rows
 * left on screen); a key that changes the sort, the kind or the name filter
 * fetches and redraws at once. A stream that drops (the gateway restarted,
 * this client fell behind and got `lagged`, nothing within two heartbeats)
 * is shown on the status line and dialled again with backoff; a refusal
 * that retrying cannot mend (401, no event stream) ends the program. The
 * terminal is restored however the loop ends.
 *
 * Everything the gateway sends is bounded here: one frame's data at most
 * TOP_MAX_FRAME bytes (beyond, the stream is dropped and dialled again),
 * an error answer's body at most TOP_MAX_ERROR bytes, the process list as
 * any ctl answer (CTL_MAX_RESPONSE). Text from the gateway is shown as
 * printable ASCII only: a request's path is the client's, and a control
 * character in it must not reach the terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl_int.h"
#include "gw/admin.h"
#include "gw/http1.h"
#include "jpos/json.h"

/* One frame's data (a `sample` of a gateway with many schedulers is a few
 * KiB; the limit only keeps a wrong peer from growing memory). */
#define TOP_MAX_FRAME (1u << 20)
/* Bytes kept of a refusal's body (its JSON error). */
#define TOP_MAX_ERROR 4096
/* No byte for this long (the gateway sends a heartbeat every 15 s): the
 * stream is taken for dead and dialled again. */
#define TOP_SILENCE_MS 35000
/* Dialling again after a drop: first after BACKOFF_MIN, doubling to MAX. */
#define TOP_BACKOFF_MIN_MS 500
#define TOP_BACKOFF_MAX_MS 5000
/* The process list's deadline: the screen waits for it. */
#define TOP_LIST_TIMEOUT_MS 2000
/* Screen bounds: rows and columns drawn, and process rows fetched. */
#define TOP_MAX_ROWS 500
#define TOP_LINE 512
/* The longest name filter typed after `/`. */
#define TOP_NAME_MAX 64
/* `--once` without --limit: the processes printed. */
#define TOP_ONCE_ROWS 20

static const char *const sorts[] = {"reductions", "mailbox", "memory"};
#define NSORTS (int)(sizeof sorts / sizeof sorts[0])
/* NULL: every kind. The kinds of GET /admin/processes. */
static const char *const kinds[] = {NULL,     "request", "connection", "server",   "supervisor",
                                    "statem", "task",    "acceptor",   "workflow", "process"};
#define NKINDS (int)(sizeof kinds / sizeof kinds[0])

/* The event stream: one connection, its response parser, and the frame
 * being read. */
struct stream {
    int fd; /* -1: not connected */
    struct gw_http_parser *parser;
    int status; /* of the answer; 0 before its head */
    char *line; /* the line being read, up to TOP_MAX_FRAME */
    size_t llen, lcap;
    char event[32]; /* `event:` of the frame being read */
    char *data;     /* its `data:` lines, '\n' between */
    size_t dlen, dcap;
    char error[TOP_MAX_ERROR + 1]; /* a refusal's body */
    size_t elen;
    int64_t last_byte_ms;
};

struct top {
    const struct ctl *c;
    struct stream s;
    json_t *hello, *sample, *procs;        /* the last of each; NULL before */
    char procs_error[160];                 /* why the last list is missing */
    unsigned long long samples;            /* received since start */
    unsigned long long samples_at_connect; /* `samples` when the stream last connected */
    char last_event[200];                  /* the latest other event, one line */
    int sort, kind;                        /* into sorts[], kinds[] */
    char name[TOP_NAME_MAX + 1];           /* name filter; "" none */
    bool prompt;                           /* typing a name filter */
    char input[TOP_NAME_MAX + 1];
    char status[320]; /* the stream's state, shown */
    bool connected;
    unsigned drops;      /* streams lost since start */
    char last_drop[200]; /* why the last one was */
    int64_t retry_at;    /* dial again at (0: now) */
    int backoff_ms;
    int rows, cols;
    bool tty;   /* a full screen, not --once */
    bool dirty; /* a sample came: fetch and redraw */
    bool quit;
    int exit_code;
    char fatal[400]; /* printed on stderr once the terminal is restored */
};

/* ---- signals --------------------------------------------------------------------- */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    /* Full or failing: a signal already waits there, which is enough. */
    ssize_t n = write(sig_pipe[1], &b, 1);
    (void)n;
    errno = saved;
}

static int signals_install(bool on)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
    struct sigaction sa = {.sa_handler = on ? on_signal : SIG_DFL};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return -errno;
    return 0;
}

/* ---- text ------------------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long jint(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static double jnum(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* `s` as printable ASCII into buf (other bytes as '?'): text from the
 * gateway never sends the terminal a control sequence. */
static void safe(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++)
        buf[n++] = *s >= 0x20 && *s < 0x7f ? *s : '?';
    buf[n] = 0;
}

/* A JSON document from a body, nesting bounded as every ctl answer is. */
static json_t *parse_json(const char *text, size_t len)
{
    unsigned line, col;
    if (jpos_depth_check(text, len, GW_ADMIN_MAX_JSON_DEPTH, &line, &col) < 0)
        return NULL;
    return json_loadb(text, len, 0, NULL);
}

/* ---- the frame drawn ---------------------------------------------------------------- */

struct screen {
    char lines[TOP_MAX_ROWS][TOP_LINE];
    bool inverse[TOP_MAX_ROWS];
    int n, max;
};

static void add(struct screen *sc, bool inverse, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add(struct screen *sc, bool inverse, const char *fmt, ...)
{
    if (sc->n >= sc->max)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sc->lines[sc->n], TOP_LINE, fmt, ap);
    va_end(ap);
    /* Columns padded to their width leave blanks at a line's end. */
    for (n = n < TOP_LINE ? n : TOP_LINE - 1; n > 0 && sc->lines[sc->n][n - 1] == ' '; n--)
        sc->lines[sc->n][n - 1] = 0;
    sc->inverse[sc->n++] = inverse;
}

static void bar(double u, int width, char *buf)
{
    if (u < 0)
        u = 0;
    if (u > 1)
        u = 1;
    int full = (int)(u * width + 0.5);
    buf[0] = '[';
    for (int i = 0; i < width; i++)
        buf[1 + i] = i < full ? '|' : ' ';
    buf[1 + width] = ']';
    buf[2 + width] = 0;
}

/* The lines above the process table. */
static void draw_system(const struct top *t, struct screen *sc)
{
    json_t *s = t->sample;
    char version[40], up[48], clock[16];
    safe(jstr(t->hello, "version"), version, sizeof version);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    if (!s) {
        add(sc, false, "tandem %s  %s:%s  %s", *version ? version : "", t->c->host, t->c->port,
            clock);
        add(sc, false, "waiting for the first sample...");
        return;
    }
    gw__ctl_human_ms(jint(s, "uptime_ms"), up, sizeof up);
    add(sc, false, "tandem %s  %s:%s  up %s  %s  routes v%lld  sample #%llu  %s", version,
        t->c->host, t->c->port, up,
        json_is_true(json_object_get(s, "ready")) ? "ready" : "NOT READY",
        jint(s, "routes_version"), t->samples, clock);
    /* Schedulers side by side, as many as fit a line. */
    json_t *scheds = json_object_get(s, "schedulers");
    /* "sched NN [bar] UUU.U% rq N" and a gap: 42 columns a scheduler. */
    int cell = 42, per = t->cols / cell > 0 ? t->cols / cell : 1;
    char line[TOP_LINE];
    size_t n = 0;
    size_t i;
    json_t *x;
    line[0] = 0;
    json_array_foreach(scheds, i, x)
    {
        char b[32];
        double u = jnum(x, "utilisation");
        bar(u, 16, b);
        char one[64];
        snprintf(one, sizeof one, "sched %2lld %s %5.1f%% rq %lld", jint(x, "id"), b, 100.0 * u,
                 jint(x, "run_queue"));
        n += (size_t)snprintf(line + n, sizeof line - n, "%-*s", cell, one);
        if (n >= sizeof line)
            n = sizeof line - 1;
        if ((int)(i % (size_t)per) == per - 1 || i + 1 == json_array_size(scheds)) {
            add(sc, false, "%s", line);
            n = 0;
            line[0] = 0;
        }
    }
    json_t *mem = json_object_get(s, "memory");
    char rss[32], pm[32];
    gw__ctl_human_bytes(jint(mem, "rss_bytes"), rss, sizeof rss);
    gw__ctl_human_bytes(jint(mem, "processes_bytes"), pm, sizeof pm);
    add(sc, false, "memory    rss %s  process heaps %s      processes %lld of %lld", rss, pm,
        jint(s, "processes"), jint(s, "process_limit"));
    add(sc, false, "requests  %.1f/s  errors %.1f/s  in flight %lld  (total %lld, errors %lld)",
        jnum(s, "requests_per_s"), jnum(s, "errors_per_s"), jint(s, "in_flight"),
        jint(s, "requests_total"), jint(s, "errors_total"));
}

static void proc_name(json_t *p, char *buf, size_t cap)
{
    char raw[256];
    const char *kind = jstr(p, "kind");
    if (strcmp(kind, "request") == 0 && json_is_string(json_object_get(p, "path")))
        snprintf(raw, sizeof raw, "%s %s", jstr(p, "method"), jstr(p, "path"));
    else if (*jstr(p, "name"))
        snprintf(raw, sizeof raw, "%s", jstr(p, "name"));
    else
        snprintf(raw, sizeof raw, "%s", jstr(p, "initial_call"));
    safe(raw, buf, cap);
}

static void draw_processes(const struct top *t, struct screen *sc)
{
    char name[TOP_NAME_MAX + 1];
    safe(t->name, name, sizeof name);
    json_t *v = t->procs;
    char counts[96] = "";
    if (v)
        snprintf(counts, sizeof counts, "%lld processes, %lld matched", jint(v, "total"),
                 jint(v, "matched"));
    add(sc, false, "sort %s [r m M Tab]  kind %s [k]  name %s [/]  quit [q]   %s", sorts[t->sort],
        kinds[t->kind] ? kinds[t->kind] : "all", *name ? name : "-", counts);
    int nw = t->cols - 63;
    if (nw < 16)
        nw = 16;
    if (nw > 60)
        nw = 60;
    add(sc, t->tty, "%-18s %-*s %-10s %12s %8s %8s", "PID", nw, "NAME", "KIND", "REDUCTIONS",
        "MAILBOX", "MEMORY");
    if (!v) {
        add(sc, false, "%s", t->procs_error[0] ? t->procs_error : "");
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(v, "processes"), i, p)
    {
        char pid[32], nm[256], kind[16], mem[32];
        safe(jstr(p, "pid"), pid, sizeof pid);
        proc_name(p, nm, sizeof nm);
        safe(jstr(p, "kind"), kind, sizeof kind);
        gw__ctl_human_bytes(jint(p, "memory"), mem, sizeof mem);
        add(sc, false, "%-18s %-*.*s %-10s %12lld %8lld %8s", pid, nw, nw, nm, kind,
            jint(p, "reductions"), jint(p, "mailbox_len"), mem);
    }
}

/* Lines taken by everything but the process rows. */
static int fixed_rows(const struct top *t)
{
    struct screen *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return 8;
    sc->max = TOP_MAX_ROWS;
    draw_system(t, sc);
    int n = sc->n + 4; /* status, options, table head, prompt */
    free(sc);
    return n;
}

static void draw(const struct top *t, struct screen *sc)
{
    sc->n = 0;
    sc->max = t->tty ? (t->rows < TOP_MAX_ROWS ? t->rows : TOP_MAX_ROWS) : TOP_MAX_ROWS;
    draw_system(t, sc);
    char ev[sizeof t->last_event];
    safe(t->last_event, ev, sizeof ev);
    char drops[260] = "";
    if (t->connected && t->drops)
        snprintf(drops, sizeof drops, " (%u drops, the last: %s)", t->drops, t->last_drop);
    add(sc, false, "stream %s%s%s%s", t->status, drops, *ev ? "   last: " : "", ev);
    /* The prompt keeps the last row. */
    int keep = t->tty && t->prompt ? 1 : 0;
    int max = sc->max;
    sc->max -= keep;
    draw_processes(t, sc);
    sc->max = max;
    if (keep) {
        char in[TOP_NAME_MAX + 1];
        safe(t->input, in, sizeof in);
        while (sc->n < sc->max - 1)
            add(sc, false, "%s", "");
        add(sc, false, "name filter (Enter applies, Esc cancels): %s_", in);
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Draws the frame: in place on the alternate screen, every line cut at
 * the terminal's width and no newline after the last row (nothing
 * scrolls); or as plain text for --once. */
static int render(const struct top *t)
{
    struct screen *sc = calloc(1, sizeof(*sc));
    size_t cap = (size_t)TOP_MAX_ROWS * (TOP_LINE + 16) + 64;
    char *out = malloc(cap);
    int rc = -ENOMEM;
    if (!sc || !out)
        goto out;
    draw(t, sc);
    size_t n = 0;
    if (t->tty)
        n += (size_t)snprintf(out + n, cap - n, "\x1b[H");
    for (int i = 0; i < sc->n; i++) {
        size_t len = strlen(sc->lines[i]);
        if (t->tty && len > (size_t)t->cols)
            len = (size_t)t->cols;
        if (t->tty && sc->inverse[i])
            n += (size_t)snprintf(out + n, cap - n, "\x1b[7m%-*.*s\x1b[0m", t->cols, (int)len,
                                  sc->lines[i]);
        else
            n += (size_t)snprintf(out + n, cap - n, "%.*s%s", (int)len, sc->lines[i],
                                  t->tty ? "\x1b[K" : "");
        if (!t->tty || i + 1 < sc->n)
            n += (size_t)snprintf(out + n, cap - n, "%s", t->tty ? "\r\n" : "\n");
    }
    if (t->tty)
        n += (size_t)snprintf(out + n, cap - n, "\x1b[J");
    rc = write_all(STDOUT_FILENO, out, n);
out:
    free(out);
    free(sc);
    return rc;
}

/* ---- the process list ---------------------------------------------------------------- */

static void fetch_processes(struct top *t)
{
    int rows;
    if (t->tty)
        rows = t->rows - fixed_rows(t);
    else
        rows = t->c->limit ? atoi(t->c->limit) : TOP_ONCE_ROWS;
    if (rows < 1)
        rows = 1;
    if (rows > TOP_MAX_ROWS)
        rows = TOP_MAX_ROWS;
    char name[3 * TOP_NAME_MAX + 1] = "", target[512];
    gw__ctl_url_encode(t->name, name, sizeof name);
    snprintf(target, sizeof target, "/admin/processes?sort=%s&limit=%d%s%s%s%s", sorts[t->sort],
             rows, kinds[t->kind] ? "&kind=" : "", kinds[t->kind] ? kinds[t->kind] : "",
             *name ? "&name=" : "", name);
    struct reply r = {0};
    int rc = gw__ctl_request(t->c, "GET", target, NULL, TOP_LIST_TIMEOUT_MS, &r);
    json_decref(t->procs);
    t->procs = NULL;
    if (rc < 0) {
        snprintf(t->procs_error, sizeof t->procs_error, "the process list: %s", strerror(-rc));
        return;
    }
    json_t *v = parse_json(r.body, r.len);
    if (r.status != 200 || !json_is_array(json_object_get(v, "processes"))) {
        char err[64];
        safe(jstr(v, "error"), err, sizeof err);
        snprintf(t->procs_error, sizeof t->procs_error, "the process list: status %d %s", r.status,
                 err);
        json_decref(v);
    } else {
        t->procs = v;
        t->procs_error[0] = 0;
    }
    free(r.body);
}

static void refresh(struct top *t)
{
    fetch_processes(t);
    if (t->tty)
        render(t);
    t->dirty = false;
}

/* ---- the event stream ----------------------------------------------------------------- */

static void stream_close(struct stream *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->parser = gw_http_parser_free(s->parser);
    s->status = 0;
    s->llen = s->dlen = s->elen = 0;
    s->event[0] = 0;
}

static void stream_done(struct stream *s)
{
    stream_close(s);
    free(s->line);
    free(s->data);
    s->line = s->data = NULL;
    s->lcap = s->dcap = 0;
}

/* The stream dropped for `why`: dial again after the backoff. */
static void dropped(struct top *t, const char *why)
{
    stream_close(&t->s);
    t->connected = false;
    t->drops++;
    snprintf(t->last_drop, sizeof t->last_drop, "%s", why);
    t->retry_at = gw__ctl_now_ms() + t->backoff_ms;
    snprintf(t->status, sizeof t->status, "lost (%s); reconnecting in %.1fs", why,
             t->backoff_ms / 1000.0);
    t->backoff_ms = t->backoff_ms * 2 > TOP_BACKOFF_MAX_MS ? TOP_BACKOFF_MAX_MS : t->backoff_ms * 2;
    if (t->tty)
        render(t);
}

/* Ends the program with `msg` (after the terminal is restored). */
static void fatal(struct top *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fatal(struct top *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->fatal, sizeof t->fatal, fmt, ap);
    va_end(ap);
    t->quit = true;
    t->exit_code = 1;
}

static int stream_open(struct top *t)
{
    struct stream *s = &t->s;
    const struct ctl *c = t->c;
    int64_t deadline = gw__ctl_now_ms() + c->timeout_ms;
    struct gw_http_limits lim;
    char *head = NULL;
    int fd = -1;
    int rc = gw__ctl_dial(c, deadline, &fd);
    if (rc < 0)
        goto out;
    bool v6 = strchr(c->host, ':') != NULL;
    int hn = asprintf(&head,
                      "GET /admin/events HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: tandem-ctl\r\n"
                      "Accept: text/event-stream\r\nCache-Control: no-cache\r\n%s%s%s\r\n",
                      v6 ? "[" : "", c->host, v6 ? "]" : "", c->port,
                      c->token ? "Authorization: Bearer " : "", c->token ? c->token : "",
                      c->token ? "\r\n" : "");
    if (hn < 0) {
        head = NULL;
        rc = -ENOMEM;
        goto out;
    }
    rc = gw__ctl_send_all(fd, head, (size_t)hn, deadline);
    if (rc < 0)
        goto out;
    gw_http_limits_default(&lim);
    lim.max_body_bytes = 0; /* the stream has no end; each frame is bounded below */
    rc = gw_http_parser_new(&s->parser, GW_HTTP_RESPONSE, &lim);
    if (rc < 0)
        goto out;
    gw_http_parser_expect(s->parser, false, false);
    s->fd = fd;
    fd = -1;
    s->last_byte_ms = gw__ctl_now_ms();
    snprintf(t->status, sizeof t->status, "connecting to %s:%s", c->host, c->port);
out:
    free(head);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Appends to a growable buffer capped at TOP_MAX_FRAME. */
static int grow_add(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > TOP_MAX_FRAME)
        return -EFBIG;
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n + 1)
            nc *= 2;
        char *b = realloc(*buf, nc);
        if (!b)
            return -ENOMEM;
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

/* One line for an event other than a sample (the frame's data as it came
 * for a type not known here). */
static void describe(const char *type, json_t *v, const char *data, size_t len, char *buf,
                     size_t cap)
{
    const char *name = jstr(v, "name");
    if (strcmp(type, "process_crashed") == 0)
        snprintf(buf, cap, "crashed %s %s (%s)", jstr(v, "pid"),
                 *name ? name : jstr(v, "initial_call"), jstr(v, "reason"));
    else if (strcmp(type, "supervisor") == 0)
        snprintf(buf, cap, "%s: %s %s %s%s%s", jstr(v, "supervisor_name"), jstr(v, "event"),
                 jstr(v, "child"), jstr(v, "pid"), *jstr(v, "new_pid") ? " -> " : "",
                 jstr(v, "new_pid"));
    else if (strcmp(type, "routes_reloaded") == 0)
        snprintf(buf, cap, "routes %s: version %lld, %lld routes (%s)",
                 json_is_true(json_object_get(v, "ok")) ? "reloaded" : "refused",
                 jint(v, "version"), jint(v, "routes"), jstr(v, "source"));
    else if (strcmp(type, "target_ejected") == 0 || strcmp(type, "target_readmitted") == 0)
        snprintf(buf, cap, "%s %s %s%s%s", jstr(v, "upstream"), jstr(v, "target"),
                 type[7] == 'e' ? "ejected" : "readmitted", *jstr(v, "reason") ? ": " : "",
                 jstr(v, "reason"));
    else if (strcmp(type, "listener_started") == 0)
        snprintf(buf, cap, "listener %s started on %s", name, jstr(v, "address"));
    else
        snprintf(buf, cap, "%s %.*s", type, (int)(len > 120 ? 120 : len), data);
}

static void on_frame(struct top *t, const char *type, const char *data, size_t len)
{
    if (strcmp(type, "sample") == 0) {
        json_t *v = parse_json(data, len);
        if (!json_is_object(v)) {
            json_decref(v);
            return;
        }
        json_decref(t->sample);
        t->sample = v;
        t->samples++;
        t->dirty = true;
        t->backoff_ms = TOP_BACKOFF_MIN_MS; /* a stream that works: the back-off starts over */
    } else if (strcmp(type, "hello") == 0) {
        json_decref(t->hello);
        t->hello = parse_json(data, len);
    } else if (strcmp(type, "lagged") == 0) {
        json_t *v = parse_json(data, len);
        char why[96];
        snprintf(why, sizeof why, "this client fell behind: %lld events dropped",
                 jint(v, "dropped"));
        json_decref(v);
        /* A stream that carried samples fell behind once: dialled again at
         * once. One that lags before any sample (a gateway lagging every
         * stream at connect) keeps the doubling back-off. */
        bool carried = t->samples > t->samples_at_connect;
        if (carried)
            t->backoff_ms = 0;
        dropped(t, why);
        if (carried)
            t->backoff_ms = TOP_BACKOFF_MIN_MS;
    } else if (*type) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char clock[16], what[160];
        strftime(clock, sizeof clock, "%H:%M:%S", &tm);
        json_t *v = parse_json(data, len);
        describe(type, v, data, len, what, sizeof what);
        json_decref(v);
        snprintf(t->last_event, sizeof t->last_event, "%s %s", clock, what);
    }
}

/* One line of the stream (without its end of line). */
static int on_line(struct top *t, char *line, size_t len)
{
    struct stream *s = &t->s;
    if (len && line[len - 1] == '\r')
        line[--len] = 0;
    if (len == 0) {
        if (s->dlen || s->event[0]) {
            if (s->dlen && s->data[s->dlen - 1] == '\n')
                s->data[--s->dlen] = 0;
            on_frame(t, s->event[0] ? s->event : "message", s->data ? s->data : "", s->dlen);
        }
        s->dlen = 0;
        s->event[0] = 0;
        return 0;
    }
    if (line[0] == ':')
        return 0; /* a comment: the heartbeat */
    char *colon = memchr(line, ':', len);
    size_t flen = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : "";
    size_t vlen = colon ? len - flen - 1 : 0;
    if (vlen && *value == ' ') {
        value++;
        vlen--;
    }
    if (flen == 5 && memcmp(line, "event", 5) == 0) {
        snprintf(s->event, sizeof s->event, "%.*s", (int)vlen, value);
    } else if (flen == 4 && memcmp(line, "data", 4) == 0) {
        int rc = grow_add(&s->data, &s->dlen, &s->dcap, value, vlen);
        if (rc == 0)
            rc = grow_add(&s->data, &s->dlen, &s->dcap, "\n", 1);
        if (rc < 0)
            return rc;
    }
    return 0; /* id:, retry: and unknown fields change nothing here */
}

/* Decoded body bytes of the stream, split into lines. */
static int on_body(struct top *t, const char *p, size_t n)
{
    struct stream *s = &t->s;
    if (s->status != 200) {
        size_t room = TOP_MAX_ERROR - s->elen;
        size_t k = n < room ? n : room;
        memcpy(s->error + s->elen, p, k);
        s->elen += k;
        s->error[s->elen] = 0;
        return 0;
    }
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        int rc = grow_add(&s->line, &s->llen, &s->lcap, p, k);
        if (rc < 0)
            return rc;
        if (!nl)
            break;
        rc = on_line(t, s->line, s->llen);
        s->llen = 0;
        if (rc < 0)
            return rc;
        if (s->fd < 0)
            return 0; /* the frame closed the stream (lagged) */
        p += k + 1;
        n -= k + 1;
    }
    return 0;
}

/* The answer ended, or was refused: decide between retrying and quitting. */
static void on_end(struct top *t)
{
    struct stream *s = &t->s;
    if (s->status == 200) {
        dropped(t, "the gateway closed the stream");
        return;
    }
    json_t *v = parse_json(s->error, s->elen);
    char code[64], detail[160];
    safe(jstr(v, "error"), code, sizeof code);
    safe(json_is_string(json_object_get(v, "detail")) ? jstr(v, "detail") : "", detail,
         sizeof detail);
    json_decref(v);
    int status = s->status;
    if (status == 401 || status == 403)
        fatal(t, "tandem ctl top: %d %s%s%s", status, code, *detail ? ": " : "", detail);
    else if (status == 404 || status == 405)
        fatal(t, "tandem ctl top: this gateway has no event stream (GET /admin/events: %d)",
              status);
    else {
        char why[200];
        snprintf(why, sizeof why, "GET /admin/events: %d %s", status, code);
        dropped(t, why);
    }
}

static void stream_read(struct top *t)
{
    struct stream *s = &t->s;
    char buf[65536];
    /* At most four reads, then back to the poll: a gateway that sends
     * faster than this parses must not keep the keys and signals unread. */
    for (int reads = 0; reads < 4; reads++) {
        ssize_t n = recv(s->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            dropped(t, strerror(errno));
            return;
        }
        s->last_byte_ms = gw__ctl_now_ms();
        if (n == 0) {
            struct gw_http_event ev;
            (void)gw_http_parser_finish(s->parser, &ev);
            if (s->status)
                on_end(t);
            else
                dropped(t, "the gateway closed the connection");
            return;
        }
        const char *p = buf;
        size_t left = (size_t)n;
        while (s->fd >= 0) {
            struct gw_http_event ev;
            size_t used = 0;
            int rc = gw_http_parser_feed(s->parser, p, left, &used, &ev);
            if (rc < 0) {
                dropped(t, "not HTTP");
                return;
            }
            p += used;
            left -= used;
            if (ev.type == GW_HTTP_EV_HEAD) {
                s->status = ev.head->status;
                gw_http_head_free(ev.head);
                if (s->status == 200) {
                    t->connected = true;
                    t->samples_at_connect = t->samples;
                    snprintf(t->status, sizeof t->status, "connected");
                }
            } else if (ev.type == GW_HTTP_EV_BODY) {
                rc = on_body(t, ev.data, ev.len);
                if (rc < 0) {
                    dropped(t, rc == -EFBIG ? "a frame larger than 1 MiB" : strerror(-rc));
                    return;
                }
            } else if (ev.type == GW_HTTP_EV_DONE) {
                on_end(t);
                return;
            } else {
                break;
            }
        }
        if (s->fd < 0)
            return;
    }
}

/* ---- keys ------------------------------------------------------------------------------ */

static void on_keys(struct top *t, const unsigned char *k, size_t n)
{
    bool changed = false;
    for (size_t i = 0; i < n && !t->quit; i++) {
        unsigned char ch = k[i];
        if (ch == 0x1b) {
            /* Esc alone cancels the prompt; a sequence (an arrow key) is
             * read whole in the same chunk and ignored. */
            if (i + 1 == n && t->prompt) {
                t->prompt = false;
                changed = true;
            }
            break;
        }
        if (t->prompt) {
            size_t len = strlen(t->input);
            if (ch == '\r' || ch == '\n') {
                snprintf(t->name, sizeof t->name, "%s", t->input);
                t->prompt = false;
                changed = true;
            } else if ((ch == 0x7f || ch == 0x08) && len) {
                t->input[len - 1] = 0;
            } else if (ch == 0x15) {
                t->input[0] = 0;
            } else if (ch == 0x03) {
                t->quit = true;
            } else if (ch >= 0x20 && ch < 0x7f && len < TOP_NAME_MAX) {
                t->input[len] = (char)ch;
                t->input[len + 1] = 0;
            }
            continue;
        }
        switch (ch) {
        case 'q':
        case 'Q':
        case 0x03: /* ^C: the terminal sends it as a key in raw mode */
            t->quit = true;
            break;
        case 'r':
            changed |= t->sort != 0;
            t->sort = 0;
            break;
        case 'm':
            changed |= t->sort != 1;
            t->sort = 1;
            break;
        case 'M':
            changed |= t->sort != 2;
            t->sort = 2;
            break;
        case '\t':
            t->sort = (t->sort + 1) % NSORTS;
            changed = true;
            break;
        case 'k':
            t->kind = (t->kind + 1) % NKINDS;
            changed = true;
            break;
        case 'K':
            t->kind = (t->kind + NKINDS - 1) % NKINDS;
            changed = true;
            break;
        case '/':
            snprintf(t->input, sizeof t->input, "%s", t->name);
            t->prompt = true;
            break;
        default:
            break;
        }
    }
    if (t->quit)
        return;
    if (changed)
        refresh(t);
    else
        render(t);
}

/* ---- the terminal ---------------------------------------------------------------------- */

static void screen_size(struct top *t)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
        t->rows = ws.ws_row;
        t->cols = ws.ws_col;
    } else {
        t->rows = 24;
        t->cols = 80;
    }
    if (t->rows > TOP_MAX_ROWS)
        t->rows = TOP_MAX_ROWS;
    if (t->cols > TOP_LINE - 1)
        t->cols = TOP_LINE - 1;
}

/* Raw keys (no echo, no line editing, ^C as a key) on the alternate screen
 * with the cursor hidden. */
static int term_enter(struct termios *saved)
{
    if (tcgetattr(STDIN_FILENO, saved) < 0)
        return -errno;
    struct termios raw = *saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
    raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
    /* A read after poll said POLLIN returns what is there; 0 is the end
     * of the terminal, never "nothing yet". */
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
        return -errno;
    static const char enter[] = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
    return write_all(STDOUT_FILENO, enter, sizeof enter - 1);
}

static void term_leave(const struct termios *saved)
{
    static const char leave[] = "\x1b[0m\x1b[?25h\x1b[?1049l";
    write_all(STDOUT_FILENO, leave, sizeof leave - 1);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, saved);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static int options(struct top *t)
{
    const struct ctl *c = t->c;
    if (c->sort) {
        t->sort = -1;
        for (int i = 0; i < NSORTS; i++)
            if (strcmp(c->sort, sorts[i]) == 0)
                t->sort = i;
        if (t->sort < 0) {
            fprintf(stderr, "tandem ctl top: --sort takes reductions, mailbox or memory\n");
            return -EINVAL;
        }
    }
    if (c->kind) {
        t->kind = -1;
        for (int i = 1; i < NKINDS; i++)
            if (strcmp(c->kind, kinds[i]) == 0)
                t->kind = i;
        if (t->kind < 0) {
            fprintf(stderr, "tandem ctl top: --kind takes one of request, connection, server, "
                            "supervisor, statem, task, acceptor, workflow, process\n");
            return -EINVAL;
        }
    }
    if (c->name && strlen(c->name) > TOP_NAME_MAX) {
        fprintf(stderr, "tandem ctl top: --name takes at most %d bytes\n", TOP_NAME_MAX);
        return -EINVAL;
    }
    snprintf(t->name, sizeof t->name, "%s", c->name ? c->name : "");
    if (c->limit) {
        char *end = NULL;
        long n = strtol(c->limit, &end, 10);
        if (!*c->limit || *end || n < 1 || n > TOP_MAX_ROWS) {
            fprintf(stderr, "tandem ctl top: --limit takes 1..%d\n", TOP_MAX_ROWS);
            return -EINVAL;
        }
    }
    return 0;
}

/* --once: the first sample and the process list, printed as text. */
static int once(struct top *t)
{
    int64_t deadline = gw__ctl_now_ms() + t->c->timeout_ms;
    t->cols = 120; /* the layout's width; plain lines are not cut */
    int rc = stream_open(t);
    if (rc < 0) {
        fprintf(stderr, "tandem ctl top: GET /admin/events on %s:%s: %s\n", t->c->host, t->c->port,
                strerror(-rc));
        return 1;
    }
    while (!t->dirty && !t->quit && t->s.fd >= 0) {
        int64_t left = deadline - gw__ctl_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = t->s.fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0)
            stream_read(t);
    }
    if (t->quit)
        return t->exit_code; /* t->fatal says why */
    if (!t->dirty) {
        fprintf(stderr, "tandem ctl top: no sample from %s:%s within %d ms%s%s\n", t->c->host,
                t->c->port, t->c->timeout_ms, t->s.fd < 0 ? ": " : "",
                t->s.fd < 0 ? t->status : "");
        return 1;
    }
    snprintf(t->status, sizeof t->status, "connected");
    fetch_processes(t);
    return render(t) < 0 ? 1 : 0;
}

static void loop(struct top *t)
{
    unsigned char keys[64];
    refresh(t);
    while (!t->quit) {
        int64_t now = gw__ctl_now_ms();
        if (t->s.fd < 0 && now >= t->retry_at) {
            int rc = stream_open(t);
            if (rc < 0) {
                dropped(t, strerror(-rc));
                continue;
            }
            render(t);
        }
        if (t->s.fd >= 0 && now - t->s.last_byte_ms > TOP_SILENCE_MS) {
            dropped(t, "no heartbeat");
            continue;
        }
        int timeout = t->s.fd >= 0 ? (int)(t->s.last_byte_ms + TOP_SILENCE_MS - now)
                                   : (int)(t->retry_at - now);
        if (timeout < 0)
            timeout = 0;
        struct pollfd p[3] = {{.fd = sig_pipe[0], .events = POLLIN},
                              {.fd = STDIN_FILENO, .events = POLLIN},
                              {.fd = t->s.fd, .events = POLLIN}};
        int r = poll(p, t->s.fd >= 0 ? 3 : 2, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fatal(t, "tandem ctl top: poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents & POLLIN) {
            unsigned char sig[16];
            ssize_t n = read(sig_pipe[0], sig, sizeof sig);
            for (ssize_t i = 0; i < n; i++) {
                if (sig[i] == SIGWINCH) {
                    screen_size(t);
                    t->dirty = true;
                } else {
                    t->quit = true;
                }
            }
        }
        if (t->quit)
            break;
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
            ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
            if (n > 0)
                on_keys(t, keys, (size_t)n);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                t->quit = true; /* the terminal is gone */
        }
        if (!t->quit && t->s.fd >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR)))
            stream_read(t);
        if (!t->quit && t->dirty)
            refresh(t);
    }
}

int gw__ctl_top(const struct ctl *c)
{
    struct top t = {.c = c, .s = {.fd = -1}, .backoff_ms = TOP_BACKOFF_MIN_MS};
    struct termios saved;
    bool entered = false, piped = false;
    int code = 2;
    if (options(&t) < 0)
        goto out;
    if (c->once) {
        code = once(&t);
        goto out;
    }
    if (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
        fprintf(stderr, "tandem ctl top: needs a terminal (for one frame as plain text: "
                        "tandem ctl top --once)\n");
        goto out;
    }
    code = 1;
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "tandem ctl top: pipe: %s\n", strerror(errno));
        goto out;
    }
    piped = true;
    int rc = signals_install(true);
    if (rc == 0)
        rc = term_enter(&saved);
    if (rc < 0) {
        fprintf(stderr, "tandem ctl top: the terminal: %s\n", strerror(-rc));
        goto out;
    }
    entered = true;
    t.tty = true;
    screen_size(&t);
    snprintf(t.status, sizeof t.status, "connecting to %s:%s", c->host, c->port);
    loop(&t);
    code = t.exit_code;
out:
    if (entered)
        term_leave(&saved);
    if (piped) {
        signals_install(false);
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
    }
    if (t.fatal[0])
        fprintf(stderr, "%s\n", t.fatal);
    stream_done(&t.s);
    json_decref(t.hello);
    json_decref(t.sample);
    json_decref(t.procs);
    return code;
}
