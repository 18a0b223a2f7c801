/* test_logger.c: the access-log process with a stdout that stops draining,
 * and the report handlers with a stderr that does.
 *
 * Most tests point fd 1 (and fd 2 when stdout and stderr are one pipe, as
 * with `2>&1`) at a pipe filled to the brim (so a write to it waits for a
 * reader), start the runtime, start the logger from a driver process
 * (gw__logger_start links it to its caller), send lines through
 * gw__access_log, and only then read the pipe. Assertions inside processes
 * record the first failure and exit the process; the main thread reports
 * it. Each test ends by stopping the logger as its supervisor does and
 * asserting that it stopped on its own and that rt_stop() had nothing left
 * to kill. The report handlers (plain functions) are tested with stderr
 * pointed at a pipe. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gw_int.h"

static char t_failure[512];
static atomic_int t_failed;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (atomic_exchange(&t_failed, 1) == 0)                                                \
                snprintf(t_failure, sizeof t_failure, "%s:%d: %s", __FILE__, __LINE__, #c);        \
            rt_exit(rt_atom_intern("test_failed"));                                                \
        }                                                                                          \
    } while (0)

static int64_t scaled(int64_t ms)
{
    const char *s = getenv("TANDEM_TEST_TIME_SCALE");
    int k = s ? atoi(s) : 1;
    return ms * (k > 0 ? k : 1);
}

/* ---- stdout as a pipe nobody reads yet ------------------------------------- */

static int pipe_rd = -1, saved_stdout = -1, saved_stderr = -1;

/* A new pipe filled to the brim; returns its write end (blocking) and puts
 * its read end (non-blocking) in *rd. */
static int full_pipe(int *rd)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int fl = fcntl(p[1], F_GETFL);
    ck_assert_int_eq(fcntl(p[1], F_SETFL, fl | O_NONBLOCK), 0);
    char nl[4096];
    memset(nl, '\n', sizeof nl);
    while (write(p[1], nl, sizeof nl) > 0)
        ;
    while (write(p[1], nl, 1) > 0)
        ;
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(fcntl(p[1], F_SETFL, fl), 0);
    ck_assert_int_eq(fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK), 0);
    *rd = p[0];
    return p[1];
}

/* Points fd 1 (and fd 2 too when `and_stderr`, as `2>&1` does) at a new
 * pipe that is full. */
static void stdout_to_full_pipe(bool and_stderr)
{
    int w = full_pipe(&pipe_rd);
    fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    ck_assert_int_ge(saved_stdout, 0);
    ck_assert_int_eq(dup2(w, STDOUT_FILENO), STDOUT_FILENO);
    if (and_stderr) {
        saved_stderr = dup(STDERR_FILENO);
        ck_assert_int_ge(saved_stderr, 0);
        ck_assert_int_eq(dup2(w, STDERR_FILENO), STDERR_FILENO);
    }
    close(w);
}

static void stdout_restore(void)
{
    dup2(saved_stdout, STDOUT_FILENO);
    close(saved_stdout);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
    close(pipe_rd);
}

/* What was read from the pipe so far: access-log lines, reports, and lines
 * that are neither (a line cut or mixed with another). */
struct tally {
    size_t access, reports, bad;
    uint64_t lines_dropped;   /* sum of "access log: N lines dropped" reports */
    uint64_t reports_dropped; /* sum of "stderr: N reports dropped" notes */
    char first_bad[200];
};

/* Whether s is an RFC 3339 UTC time with milliseconds,
 * "2026-12-06T09:18:46.123Z", as every line's `time` is. */
static bool rfc3339_ms(const char *s)
{
    static const char form[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!s || strlen(s) != sizeof form - 1)
        return false;
    for (size_t i = 0; i < sizeof form - 1; i++)
        if (form[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != form[i])
            return false;
    return true;
}

/* Bytes of the last access-log line read, newline included. */
static size_t line_bytes;

static void tally_line(struct tally *t, const char *line, size_t n)
{
    json_error_t err;
    json_t *v = json_loadb(line, n, 0, &err);
    const char *msg = json_string_value(json_object_get(v, "msg"));
    unsigned long long k;
    /* Every line, the dropped-reports note too, opens with its time. */
    bool timed = rfc3339_ms(json_string_value(json_object_get(v, "time")));
    if (timed && json_object_get(v, "request_id")) {
        t->access++;
        line_bytes = n + 1;
    } else if (timed && json_object_get(v, "level")) {
        t->reports++;
        if (msg && sscanf(msg, "access log: %llu lines dropped", &k) == 1)
            t->lines_dropped += k;
        if (msg && sscanf(msg, "stderr: %llu reports dropped", &k) == 1)
            t->reports_dropped += k;
    } else if (t->bad++ == 0) {
        snprintf(t->first_bad, sizeof t->first_bad, "%.*s", (int)(n < 150 ? n : 150), line);
    }
    json_decref(v);
}

/* Reads what the pipe holds now into *t (the filler is empty lines). */
static void tally_read(int fd, struct tally *t)
{
    static char carry[16384];
    static size_t ncarry;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (ncarry < sizeof carry)
                    carry[ncarry++] = buf[i];
                continue;
            }
            if (ncarry)
                tally_line(t, carry, ncarry);
            ncarry = 0;
        }
    }
}

/* Access-log lines in what the pipe holds now; every line must be whole. */
static size_t read_lines(void)
{
    struct tally t = {0};
    tally_read(pipe_rd, &t);
    ck_assert_msg(t.bad == 0, "bad line %s", t.first_bad);
    return t.access;
}

/* ---- the driver ---------------------------------------------------------------- */

static struct gw__listener lis = {.name = "public"};
static char client[1], request_id[] = "r1", capped_route[1];
static struct gw__exchange ex = {.lis = &lis,
                                 .client_addr = "127.0.0.1",
                                 .client = client,
                                 .request_id = request_id,
                                 .capped_route = capped_route};
static char path[3001];
static const char *consumer; /* the access lines' consumer (NULL: none) */

struct drive {
    int lines;             /* to send in each wave */
    _Atomic int waves;     /* set by the main thread: waves to have sent */
    _Atomic int sent;      /* waves sent */
    _Atomic int stop;      /* set by the main thread: stop the logger */
    _Atomic size_t queued; /* lines in the logger's mailbox just after the first wave */
    _Atomic rt_pid logger;
    _Atomic uint64_t stop_ms; /* how long the logger took to stop */
    _Atomic rt_atom down;     /* its exit reason */
};

static void driver(void *arg)
{
    struct drive *d = arg;
    rt_pid lg;
    rt_atom reason;
    T_ASSERT(gw__logger_start(NULL, NULL, 0, &lg, &reason) == 0);
    atomic_store(&d->logger, lg);
    int done = 0;
    while (!atomic_load(&d->stop) || done < atomic_load(&d->waves)) {
        if (done == atomic_load(&d->waves)) {
            rt_sleep(5);
            continue;
        }
        for (int i = 0; i < d->lines; i++)
            gw__access_log(&ex, "GET", path, "any", consumer, NULL, 200, 3, 1500, 1, NULL);
        if (done++ == 0) {
            struct rt_proc_info info;
            T_ASSERT(rt_proc_info(lg, &info) == 0);
            atomic_store(&d->queued, info.mailbox_len);
        }
        atomic_store(&d->sent, done);
    }
    /* As the supervisor stops it: the shutdown signal, then a kill if it is
     * not gone within the child spec's shutdown time. */
    rt_trap_exit(true);
    rt_ref mon = rt_monitor(lg);
    uint64_t t0 = rt_now_ms();
    rt_exit_signal(lg, RT_SHUTDOWN);
    struct rt_msg *m = rt_receive_ref(mon, scaled(GW__LOGGER_SHUTDOWN_MS));
    if (!m) {
        rt_exit_signal(lg, RT_KILL);
        m = rt_receive_ref(mon, RT_INFINITY);
    }
    atomic_store(&d->stop_ms, rt_now_ms() - t0);
    atomic_store(&d->down, (rt_atom)m->u64);
    rt_msg_free(m);
}

static void start(unsigned schedulers, bool and_stderr)
{
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    stdout_to_full_pipe(and_stderr);
    struct rt_config c;
    rt_config_default(&c);
    c.schedulers = schedulers;
    ck_assert_int_eq(rt_start(&c), 0);
}

static bool wait_flag(_Atomic int *flag, int64_t ms)
{
    uint64_t end = rt_now_ms() + (uint64_t)scaled(ms);
    while (!atomic_load(flag) && rt_now_ms() < end)
        usleep(1000);
    return atomic_load(flag);
}

/* Stops the logger as its supervisor would, then the runtime; the logger
 * must have stopped on its own (not killed). */
static void finish(rt_pid drv, struct drive *d)
{
    atomic_store(&d->stop, 1);
    rt_atom reason;
    ck_assert_int_eq(rt_join(drv, scaled(3 * GW__LOGGER_SHUTDOWN_MS), &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_msg(atomic_load(&d->down) == RT_SHUTDOWN, "the logger stopped with %s after %llu ms",
                  rt_atom_name(atomic_load(&d->down)),
                  (unsigned long long)atomic_load(&d->stop_ms));
    ck_assert_int_eq(rt_stop(), 0);
}

/* ---- tests ------------------------------------------------------------------------ */

static _Atomic int probe_ran;

static void probe(void *arg)
{
    (void)arg;
    atomic_store(&probe_ran, 1);
}

START_TEST(stdout_that_does_not_drain_leaves_the_scheduler_free)
{
    start(1, false);
    struct drive d = {.lines = 20, .waves = 1};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    ck_assert(wait_flag(&d.sent, 2000));
    /* Give the logger its turn: it now waits on the full pipe. */
    usleep(200 * 1000);
    atomic_store(&probe_ran, 0);
    ck_assert_int_eq(rt_spawn(probe, NULL, NULL, NULL), 0);
    ck_assert_msg(wait_flag(&probe_ran, 2000),
                  "a process could not run while the logger's output was blocked");
    /* Drain: every line admitted is written, then the logger stops. */
    size_t got = 0;
    uint64_t end = rt_now_ms() + (uint64_t)scaled(5000);
    while (got < 20 && rt_now_ms() < end) {
        got += read_lines();
        usleep(1000);
    }
    ck_assert_uint_eq(got, 20);
    finish(drv, &d);
    stdout_restore();
}
END_TEST

static _Atomic uint64_t reported_drops;

static void count_drops(enum rt_log_level level, const char *msg, void *ctx)
{
    (void)level;
    (void)ctx;
    unsigned long long n;
    if (sscanf(msg, "access log: %llu lines dropped", &n) == 1)
        atomic_fetch_add(&reported_drops, n);
}

START_TEST(backlog_is_capped_by_bytes_and_every_line_is_written_or_counted)
{
    /* 10,000 lines of about 2.4 KB (the path is cut at 2 KiB): 24 MB, more
     * than the 16 MiB byte cap and far fewer than the 100,000-line cap. */
    const int lines = 10000;
    start(2, false);
    atomic_store(&reported_drops, 0);
    rt_set_log_handler(count_drops, NULL);
    struct drive d = {.lines = lines, .waves = 1};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    ck_assert(wait_flag(&d.sent, 10000));
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    size_t got = 0;
    uint64_t end = rt_now_ms() + (uint64_t)scaled(10000);
    while (got + atomic_load(&reported_drops) < (size_t)lines && rt_now_ms() < end) {
        got += read_lines();
        usleep(1000);
    }
    /* What was queued while output was stuck stayed within the cap (the
     * batch being written holds at most 256 KiB more). */
    size_t queued = atomic_load(&d.queued) * line_bytes;
    ck_assert_msg(queued <= (16u << 20), "%zu lines of %zu bytes were queued",
                  atomic_load(&d.queued), line_bytes);
    ck_assert_uint_gt(atomic_load(&reported_drops), 0);
    ck_assert_uint_eq(got + atomic_load(&reported_drops), (size_t)lines);
    finish(drv, &d);
    rt_set_log_handler(NULL, NULL);
    stdout_restore();
}
END_TEST

/* Waits until the backlog is empty; false if it is not within `ms`. */
static bool backlog_empty_within(int64_t ms)
{
    uint64_t end = rt_now_ms() + (uint64_t)scaled(ms);
    uint64_t lines, bytes;
    for (;;) {
        gw__access_log_backlog(&lines, &bytes);
        if ((!lines && !bytes) || rt_now_ms() >= end)
            return !lines && !bytes;
        usleep(1000);
    }
}

START_TEST(backlog_returns_to_zero_once_written_and_a_second_wave_is_not_dropped)
{
    /* Each wave is 6,000 lines of about 2.4 KB: 14.5 MB with their message
     * headers, under the 16 MiB cap alone, over it if the first wave were
     * still counted when the second comes. */
    const int lines = 6000;
    start(2, false);
    atomic_store(&reported_drops, 0);
    rt_set_log_handler(count_drops, NULL);
    struct drive d = {.lines = lines, .waves = 1};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    size_t got = 0;
    for (int wave = 1; wave <= 2; wave++) {
        atomic_store(&d.waves, wave);
        uint64_t end = rt_now_ms() + (uint64_t)scaled(20000);
        while (got < (size_t)(wave * lines) && rt_now_ms() < end) {
            got += read_lines();
            usleep(1000);
        }
        ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
        ck_assert_uint_eq(got, (size_t)(wave * lines));
        ck_assert_msg(backlog_empty_within(2000), "lines written are still counted as queued");
    }
    ck_assert_uint_eq(atomic_load(&reported_drops), 0);
    finish(drv, &d);
    rt_set_log_handler(NULL, NULL);
    stdout_restore();
}
END_TEST

START_TEST(stop_with_a_backlog_and_stuck_stdout_exits_cleanly_and_counts_every_line)
{
    /* 3,000 lines of 2.4 KB: far more than one 256 KiB batch, so the
     * supervisor's shutdown is queued behind lines stdout never takes. */
    const int lines = 3000;
    start(2, false);
    atomic_store(&reported_drops, 0);
    rt_set_log_handler(count_drops, NULL);
    struct drive d = {.lines = lines, .waves = 1};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    ck_assert(wait_flag(&d.sent, 10000));
    ck_assert_uint_gt(atomic_load(&d.queued), 1000);
    usleep(100 * 1000); /* the logger is now waiting on stdout */
    finish(drv, &d);
    /* Every line was written or reported dropped, and nothing is left. */
    struct tally t = {0};
    tally_read(pipe_rd, &t);
    ck_assert_msg(t.bad == 0, "bad line %s", t.first_bad);
    ck_assert_uint_eq(t.access + atomic_load(&reported_drops), (size_t)lines);
    uint64_t bl, bb;
    gw__access_log_backlog(&bl, &bb);
    ck_assert_uint_eq(bl, 0);
    ck_assert_uint_eq(bb, 0);
    rt_set_log_handler(NULL, NULL);
    stdout_restore();
}
END_TEST

START_TEST(drop_report_on_a_stderr_stuck_with_stdout_leaves_the_scheduler_free)
{
    /* stdout and stderr are one full pipe (`2>&1 | collector`); enough lines
     * to be dropped, so the logger reports the drop on that pipe from its
     * scheduler thread, the only one. */
    const int lines = 10000;
    start(1, true);
    gw__reports_open();
    rt_set_log_handler(gw__report, NULL);
    struct drive d = {.lines = lines, .waves = 1};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    ck_assert(wait_flag(&d.sent, 10000));
    /* The drop is reported within a report interval and a write slice. */
    usleep(2500 * 1000);
    atomic_store(&probe_ran, 0);
    ck_assert_int_eq(rt_spawn(probe, NULL, NULL, NULL), 0);
    ck_assert_msg(wait_flag(&probe_ran, 2000),
                  "a process could not run while a report waited for stderr");
    /* Drained, the pipe gets the lines admitted; the next report is
     * preceded by the count of those stderr could not take. */
    struct tally t = {0};
    uint64_t end = rt_now_ms() + (uint64_t)scaled(10000);
    uint64_t bl = 1, bb = 1;
    while ((bl || bb) && rt_now_ms() < end) {
        tally_read(pipe_rd, &t);
        gw__access_log_backlog(&bl, &bb);
        usleep(1000);
    }
    finish(drv, &d);
    tally_read(pipe_rd, &t);
    gw__report(RT_LOG_INFO, "drained", NULL);
    tally_read(pipe_rd, &t);
    ck_assert_msg(t.bad == 0, "bad line %s", t.first_bad);
    ck_assert_uint_gt(t.access, 0);
    ck_assert_uint_lt(t.access, (size_t)lines);
    ck_assert_uint_gt(t.reports_dropped, 0);
    rt_set_log_handler(NULL, NULL);
    gw__reports_close();
    stdout_restore();
}
END_TEST

/* Calls fn with stderr pointed at a pipe; returns what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    close(p[1]);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char out[65536];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof out - 1 && (r = read(p[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    return out;
}

/* The next line of *text, parsed (it must be one JSON object). */
static json_t *next_json_line(char **text)
{
    char *nl = strchr(*text, '\n');
    ck_assert_ptr_nonnull(nl);
    json_error_t err;
    json_t *v = json_loadb(*text, (size_t)(nl - *text), 0, &err);
    ck_assert_msg(v && json_is_object(v), "not a JSON line: %s: %.*s", err.text,
                  (int)(nl - *text < 200 ? nl - *text : 200), *text);
    *text = nl + 1;
    return v;
}

static char long_msg[1024];

static void report_some(void)
{
    gw__report(RT_LOG_WARNING, "bad \xff\xc3( \"q\" \\ \x01 ok \xc3\xa9", NULL);
    memset(long_msg, '\x01', sizeof long_msg - 1);
    gw__report(RT_LOG_ERROR, long_msg, NULL);
    struct rt_crash_report r = {
        .pid = 42, .name = "n\"\xfe", .initial_call = "m:f", .reason = RT_KILLED};
    gw__crash_report(&r, NULL);
}

START_TEST(reports_are_json_lines_whatever_bytes_they_carry)
{
    char *text = capture_stderr(report_some);
    json_t *v = next_json_line(&text);
    ck_assert_str_eq(json_string_value(json_object_get(v, "level")), "warning");
    ck_assert_str_eq(json_string_value(json_object_get(v, "msg")),
                     "bad \xef\xbf\xbd\xef\xbf\xbd( \"q\" \\ \x01 ok \xc3\xa9");
    ck_assert(json_is_string(json_object_get(v, "time")));
    ck_assert_ptr_null(json_object_get(v, "msg_truncated"));
    json_decref(v);
    /* 1023 control characters escape to 6 KB: cut, flagged, still JSON. */
    v = next_json_line(&text);
    ck_assert_str_eq(json_string_value(json_object_get(v, "level")), "error");
    ck_assert(json_is_true(json_object_get(v, "msg_truncated")));
    size_t n = json_string_length(json_object_get(v, "msg"));
    ck_assert(n > 300 && n < 1023);
    json_decref(v);
    v = next_json_line(&text);
    ck_assert_str_eq(json_string_value(json_object_get(v, "event")), "crash");
    ck_assert_int_eq(json_integer_value(json_object_get(v, "pid")), 42);
    ck_assert_str_eq(json_string_value(json_object_get(v, "name")), "n\"\xef\xbf\xbd");
    ck_assert_str_eq(json_string_value(json_object_get(v, "reason")), "killed");
    json_decref(v);
    ck_assert_str_eq(text, "");
}
END_TEST

/* Runs gw__report on a thread of its own; true if it returned within ms. */
static void *report_thread(void *arg)
{
    gw__report(RT_LOG_WARNING, "stuck?", NULL);
    atomic_store((_Atomic int *)arg, 1);
    return NULL;
}

START_TEST(report_on_a_full_stderr_returns_at_once_and_is_counted)
{
    int rd;
    int w = full_pipe(&rd);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_eq(dup2(w, STDERR_FILENO), STDERR_FILENO);
    close(w);
    gw__reports_open();
    for (int i = 0; i < 3; i++) {
        _Atomic int returned = 0;
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, report_thread, (void *)&returned), 0);
        uint64_t end = rt_now_ms() + (uint64_t)scaled(2000);
        while (!atomic_load(&returned) && rt_now_ms() < end)
            usleep(1000);
        ck_assert_msg(atomic_load(&returned), "a report waited for stderr's reader");
        pthread_join(th, NULL);
    }
    /* Read, the pipe takes the next report, after the count of the three. */
    struct tally t = {0};
    tally_read(rd, &t);
    gw__report(RT_LOG_INFO, "reader back", NULL);
    tally_read(rd, &t);
    gw__reports_close();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(rd);
    ck_assert_msg(t.bad == 0, "bad line %s", t.first_bad);
    ck_assert_uint_eq(t.reports, 2);
    ck_assert_uint_eq(t.reports_dropped, 3);
}
END_TEST

/* A regular file as stdout, with a file size limit: a write that crosses it
 * is cut short (mid-line), and the next fails (EFBIG), as on a full disk. */
START_TEST(write_error_after_a_short_write_ends_the_cut_line_and_counts_only_lines_not_written)
{
    char name[] = "/tmp/tandem-logger-XXXXXX";
    int fd = mkstemp(name);
    ck_assert_int_ge(fd, 0);
    unlink(name);
    fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    ck_assert_int_eq(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    struct rlimit small = {.rlim_cur = 10000, .rlim_max = old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);

    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    struct rt_config c;
    rt_config_default(&c);
    c.schedulers = 2;
    ck_assert_int_eq(rt_start(&c), 0);
    atomic_store(&reported_drops, 0);
    rt_set_log_handler(count_drops, NULL);
    const int lines = 20;
    struct drive d = {.lines = lines, .waves = 1};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    ck_assert(wait_flag(&d.sent, 2000));
    ck_assert(backlog_empty_within(5000));
    /* Room again: the next lines start on a line of their own. */
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    atomic_store(&d.waves, 2);
    ck_assert(wait_flag(&d.sent, 2000));
    ck_assert(backlog_empty_within(5000));
    finish(drv, &d);
    rt_set_log_handler(NULL, NULL);
    dup2(saved_stdout, STDOUT_FILENO);
    close(saved_stdout);

    static char text[1 << 20];
    ssize_t n = pread(fd, text, sizeof text, 0);
    close(fd);
    ck_assert_int_gt(n, 10000);
    ck_assert_int_eq(text[n - 1], '\n');
    /* One line was cut at the limit and ended there; every other line is
     * whole, and whole lines written plus lines reported dropped are the
     * lines sent. */
    size_t whole = 0, cut = 0;
    for (char *p = text, *nl; p < text + n; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + n - p));
        json_t *v = json_loadb(p, (size_t)(nl - p), 0, NULL);
        if (v && json_object_get(v, "request_id"))
            whole++;
        else
            cut++;
        ck_assert_msg(v || nl - text == 10000, "a line is broken at %zd", p - text);
        json_decref(v);
    }
    uint64_t dropped = atomic_load(&reported_drops);
    ck_assert_uint_eq(cut, 1);
    ck_assert_msg(whole + dropped == 2 * (size_t)lines, "%zu lines written whole, %llu dropped",
                  whole, (unsigned long long)dropped);
}
END_TEST

/* Reports in a tight loop on stderr, the same pipe as stdout. */
static _Atomic int reporting;

static void *report_loop(void *arg)
{
    (void)arg;
    while (atomic_load(&reporting)) {
        gw__report(RT_LOG_INFO, "interleave", NULL);
        usleep(50);
    }
    return NULL;
}

START_TEST(stdout_writes_end_at_line_ends_so_reports_on_the_same_pipe_never_split_a_line)
{
    const int lines = 400;
    start(2, true);
    gw__reports_open();
    atomic_store(&reporting, 1);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, report_loop, NULL), 0);
    struct drive d = {.lines = lines, .waves = 1};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    /* A slow reader: the logger's writes and the reports take turns for
     * the room each read makes. */
    struct tally t = {0};
    uint64_t end = rt_now_ms() + (uint64_t)scaled(20000);
    char buf[4096];
    char carry[16384];
    size_t ncarry = 0;
    while (t.access < (size_t)lines && rt_now_ms() < end) {
        ssize_t n = read(pipe_rd, buf, sizeof buf);
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (ncarry < sizeof carry)
                    carry[ncarry++] = buf[i];
                continue;
            }
            if (ncarry)
                tally_line(&t, carry, ncarry);
            ncarry = 0;
        }
        usleep(200);
    }
    atomic_store(&reporting, 0);
    pthread_join(th, NULL);
    finish(drv, &d);
    gw__reports_close();
    stdout_restore();
    ck_assert_msg(t.bad == 0, "%zu lines broken, the first: %s", t.bad, t.first_bad);
    ck_assert_uint_eq(t.access, (size_t)lines);
    ck_assert_uint_gt(t.reports, 0);
}
END_TEST

static char long_name[400], long_state[RT_CRASH_STATE_MAX];

static void report_states(void)
{
    struct rt_crash_report r = {.pid = 7,
                                .name = "router",
                                .initial_call = "gw_router:init",
                                .reason = RT_KILLED,
                                .state = "user=alice password=***"};
    gw__crash_report(&r, NULL);
    /* Every field at its longest, all of it escaping six-fold. */
    memset(long_name, '\x01', sizeof long_name - 1);
    memset(long_state, '\x02', sizeof long_state - 1);
    r = (struct rt_crash_report){.pid = 8,
                                 .name = long_name,
                                 .initial_call = long_name,
                                 .reason = rt_atom_intern(long_name),
                                 .state = long_state};
    gw__crash_report(&r, NULL);
    r = (struct rt_crash_report){.pid = 9, .name = "", .initial_call = "", .reason = RT_KILLED};
    gw__crash_report(&r, NULL);
}

START_TEST(crash_reports_carry_the_formatted_state_within_one_line)
{
    char *text = capture_stderr(report_states);
    json_t *v = next_json_line(&text);
    ck_assert_str_eq(json_string_value(json_object_get(v, "state")), "user=alice password=***");
    json_decref(v);
    char *line = text;
    v = next_json_line(&text);
    ck_assert_int_le(text - line, 2048);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "pid")), 8);
    size_t n = json_string_length(json_object_get(v, "state"));
    ck_assert(n > 50 && n < RT_CRASH_STATE_MAX);
    json_decref(v);
    /* No state (a process that is not a behaviour): no field. */
    v = next_json_line(&text);
    ck_assert_ptr_null(json_object_get(v, "state"));
    json_decref(v);
    ck_assert_str_eq(text, "");
}
END_TEST

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asserts that the line (n bytes, no newline) opens with its time as RFC
 * 3339 UTC with milliseconds, {"time":"2026-12-06T09:18:46.123Z", that the
 * time is a real date, and that it reads back to within a second of the
 * window [from_ms, to_ms] in which the line was written. */
static void assert_time_is_rfc3339_now(const char *line, size_t n, int64_t from_ms, int64_t to_ms)
{
    static const char *const re = "^\\{\"time\":\"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):"
                                  "([0-9]{2}):([0-9]{2})\\.([0-9]{3})Z\",\"";
    regex_t rx;
    ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED), 0);
    char text[4096];
    ck_assert_uint_lt(n, sizeof text);
    memcpy(text, line, n);
    text[n] = 0;
    regmatch_t m[8];
    int rc = regexec(&rx, text, 8, m, 0);
    regfree(&rx);
    ck_assert_msg(rc == 0, "no RFC 3339 UTC millisecond time first: %.80s", text);
    int f[7];
    for (int i = 0; i < 7; i++)
        f[i] = atoi(text + m[i + 1].rm_so);
    struct tm tm = {.tm_year = f[0] - 1900,
                    .tm_mon = f[1] - 1,
                    .tm_mday = f[2],
                    .tm_hour = f[3],
                    .tm_min = f[4],
                    .tm_sec = f[5]};
    time_t sec = timegm(&tm);
    /* timegm normalises: a 31st of April would come back as May 1st. */
    struct tm back;
    gmtime_r(&sec, &back);
    ck_assert_msg(back.tm_year == f[0] - 1900 && back.tm_mon == f[1] - 1 && back.tm_mday == f[2] &&
                      back.tm_hour == f[3] && back.tm_min == f[4] && back.tm_sec == f[5],
                  "not a real UTC time: %.40s", text);
    int64_t ms = (int64_t)sec * 1000 + f[6];
    ck_assert_msg(ms >= from_ms - 1000 && ms <= to_ms + 1000,
                  "time %.40s is %lld ms from the moment it was written", text,
                  (long long)(ms < from_ms ? from_ms - ms : ms - to_ms));
}

static void report_each_kind(void)
{
    gw__report(RT_LOG_INFO, "tandem: listener public on 127.0.0.1:8080", NULL);
    struct rt_crash_report r = {.pid = 7, .name = "n", .initial_call = "m:f", .reason = RT_KILLED};
    gw__crash_report(&r, NULL);
}

START_TEST(every_log_line_carries_its_time_as_rfc3339_utc_with_milliseconds)
{
    /* Reports: rt_log lines (start-up lines among them) and crash reports. */
    int64_t from = now_ms();
    char *text = capture_stderr(report_each_kind);
    int64_t to = now_ms();
    for (int i = 0; i < 2; i++) {
        char *nl = strchr(text, '\n');
        ck_assert_ptr_nonnull(nl);
        assert_time_is_rfc3339_now(text, (size_t)(nl - text), from, to);
        text = nl + 1;
    }
    ck_assert_str_eq(text, "");

    /* An access-log line, through the logger process. */
    start(1, false);
    from = now_ms();
    struct drive d = {.lines = 1, .waves = 1};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    ck_assert(wait_flag(&d.sent, 2000));
    char line[4096];
    size_t n = 0;
    bool whole = false;
    uint64_t end = rt_now_ms() + (uint64_t)scaled(5000);
    while (!whole && rt_now_ms() < end) {
        char c;
        ssize_t r = read(pipe_rd, &c, 1);
        if (r <= 0) {
            usleep(1000);
            continue;
        }
        if (c != '\n') {
            ck_assert_uint_lt(n, sizeof line); /* a line is at most LOG_LINE_MAX bytes */
            line[n++] = c;
        } else if (n) {
            whole = true; /* the filler before it is empty lines */
        }
    }
    to = now_ms();
    ck_assert_msg(whole, "no access-log line");
    assert_time_is_rfc3339_now(line, n, from, to);
    finish(drv, &d);
    stdout_restore();
}
END_TEST

/* The first access-log line the driver writes, once whole. */
static void first_access_line(char *line, size_t cap)
{
    struct drive d = {.lines = 1, .waves = 1};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    ck_assert(wait_flag(&d.sent, 2000));
    size_t n = 0;
    bool whole = false;
    uint64_t end = rt_now_ms() + (uint64_t)scaled(5000);
    while (!whole && rt_now_ms() < end) {
        char c;
        ssize_t r = read(pipe_rd, &c, 1);
        if (r <= 0) {
            usleep(1000);
            continue;
        }
        if (c != '\n') {
            ck_assert_uint_lt(n, cap - 1);
            line[n++] = c;
        } else if (n) {
            whole = true;
        }
    }
    ck_assert_msg(whole, "no access-log line");
    line[n] = 0;
    finish(drv, &d);
}

START_TEST(access_line_names_the_consumer_a_policy_authenticated)
{
    static char line[4096];
    start(1, false);
    consumer = "alice\"x";
    first_access_line(line, sizeof line);
    consumer = NULL;
    stdout_restore();
    ck_assert_ptr_nonnull(
        strstr(line, ",\"route\":\"any\",\"consumer\":\"alice\\\"x\",\"upstream\":"));
    /* without one, no field */
    start(1, false);
    first_access_line(line, sizeof line);
    stdout_restore();
    ck_assert_ptr_null(strstr(line, "consumer"));
    ck_assert_ptr_nonnull(strstr(line, ",\"route\":\"any\",\"upstream\":"));
}
END_TEST

/* Recurses with no runtime call, past any stack (the limit only keeps the
 * compiler from calling it endless): the guard page is hit between calls. */
static _Atomic int overflow_limit = 1 << 30;

static int overflow_deep(volatile char *prev, int depth)
{
    volatile char buf[512];
    buf[0] = (char)depth;
    buf[511] = prev ? prev[0] : 0;
    if (depth >= atomic_load(&overflow_limit))
        return 0;
    return overflow_deep(buf, depth + 1) + buf[511];
}

static void overflow_main(void *arg)
{
    (void)arg;
    overflow_deep(NULL, 0);
}

START_TEST(a_stack_overflow_between_runtime_calls_is_reported_as_a_json_line)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* The sanitizers own SIGSEGV: the fatal path runs in plain builds. */
    return;
#endif
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int64_t from = now_ms();
    fflush(NULL);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        close(p[1]);
        /* As the gateway installs its handlers. */
        rt_set_log_handler(gw__report, NULL);
        rt_set_crash_handler(gw__crash_report, NULL);
        rt_set_fatal_handler(gw__fatal_report, NULL);
        struct rt_config cfg;
        rt_config_default(&cfg);
        cfg.schedulers = 1;
        struct rt_spawn_opts o = {.name = "deep \"one\"", .initial_call = "test:overflow"};
        rt_pid pid;
        if (rt_start(&cfg) < 0 || rt_spawn(overflow_main, NULL, &o, &pid) < 0)
            _exit(3);
        rt_join(pid, 10000, NULL);
        _exit(4);
    }
    close(p[1]);
    static char err[8192];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof err - 1 && (r = read(p[0], err + n, sizeof err - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = 0;
    close(p[0]);
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    int64_t to = now_ms();
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "the child did not abort (status %#x); stderr: %s", (unsigned)status, err);
    /* Every line on stderr is JSON, the fatal report among them. */
    char *text = err;
    json_t *fatal = NULL;
    while (*text) {
        char *line = text;
        json_t *v = next_json_line(&text);
        if (json_object_get(v, "event") &&
            strcmp(json_string_value(json_object_get(v, "event")), "stack_overflow") == 0) {
            assert_time_is_rfc3339_now(line, (size_t)(text - 1 - line), from, to);
            fatal = v;
        } else {
            json_decref(v);
        }
    }
    ck_assert_msg(fatal, "no fatal report; stderr: %s", err);
    ck_assert_str_eq(json_string_value(json_object_get(fatal, "level")), "fatal");
    ck_assert_str_eq(json_string_value(json_object_get(fatal, "name")), "deep \"one\"");
    ck_assert_str_eq(json_string_value(json_object_get(fatal, "initial_call")), "test:overflow");
    ck_assert_int_gt(json_integer_value(json_object_get(fatal, "pid")), 0);
    ck_assert_int_gt(json_integer_value(json_object_get(fatal, "stack_bytes")), 0);
    ck_assert_int_eq(strncmp(json_string_value(json_object_get(fatal, "fault_address")), "0x", 2),
                     0);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(fatal, "msg")), "aborting"));
    json_decref(fatal);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("logger");
    TCase *tc = tcase_create("logger");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, stdout_that_does_not_drain_leaves_the_scheduler_free);
    tcase_add_test(tc, backlog_is_capped_by_bytes_and_every_line_is_written_or_counted);
    tcase_add_test(tc, reports_are_json_lines_whatever_bytes_they_carry);
    tcase_add_test(tc, backlog_returns_to_zero_once_written_and_a_second_wave_is_not_dropped);
    tcase_add_test(tc, stop_with_a_backlog_and_stuck_stdout_exits_cleanly_and_counts_every_line);
    tcase_add_test(tc, drop_report_on_a_stderr_stuck_with_stdout_leaves_the_scheduler_free);
    tcase_add_test(tc, report_on_a_full_stderr_returns_at_once_and_is_counted);
    tcase_add_test(
        tc, write_error_after_a_short_write_ends_the_cut_line_and_counts_only_lines_not_written);
    tcase_add_test(tc,
                   stdout_writes_end_at_line_ends_so_reports_on_the_same_pipe_never_split_a_line);
    tcase_add_test(tc, crash_reports_carry_the_formatted_state_within_one_line);
    tcase_add_test(tc, every_log_line_carries_its_time_as_rfc3339_utc_with_milliseconds);
    tcase_add_test(tc, access_line_names_the_consumer_a_policy_authenticated);
    tcase_add_test(tc, a_stack_overflow_between_runtime_calls_is_reported_as_a_json_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
