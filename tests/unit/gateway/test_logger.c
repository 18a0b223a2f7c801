/* test_logger.c: the access-log process with a stdout that stops draining.
 *
 * Each test points fd 1 at a pipe filled to the brim (so a write to it
 * waits for a reader), starts the runtime, starts the logger from a driver
 * process (gw__logger_start links it to its caller), sends lines through
 * gw__access_log, and only then reads the pipe. Assertions inside processes
 * record the first failure and exit the process; the main thread reports
 * it. Each test ends by stopping the logger and asserting that rt_stop()
 * had nothing left to kill. The report handlers (plain functions) are
 * tested with stderr pointed at a pipe. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int pipe_rd = -1, saved_stdout = -1;

/* Points fd 1 at a new pipe that is full (its write end blocking). */
static void stdout_to_full_pipe(void)
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
    fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    ck_assert_int_ge(saved_stdout, 0);
    ck_assert_int_eq(dup2(p[1], STDOUT_FILENO), STDOUT_FILENO);
    close(p[1]);
    pipe_rd = p[0];
    ck_assert_int_eq(fcntl(pipe_rd, F_SETFL, fcntl(pipe_rd, F_GETFL) | O_NONBLOCK), 0);
}

static void stdout_restore(void)
{
    dup2(saved_stdout, STDOUT_FILENO);
    close(saved_stdout);
    close(pipe_rd);
}

/* Bytes of the last access-log line read, newline included. */
static size_t line_bytes;

/* Reads what the pipe holds now; returns the access-log lines in it (the
 * filler is empty lines). */
static size_t read_lines(void)
{
    static char carry[8192];
    static size_t ncarry;
    char buf[65536];
    size_t lines = 0;
    ssize_t n;
    while ((n = read(pipe_rd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (ncarry < sizeof carry)
                    carry[ncarry++] = buf[i];
                continue;
            }
            if (ncarry) {
                ck_assert_msg(carry[0] == '{' && carry[ncarry - 1] == '}', "bad line %.*s",
                              (int)(ncarry < 200 ? ncarry : 200), carry);
                lines++;
                line_bytes = ncarry + 1;
            }
            ncarry = 0;
        }
    }
    return lines;
}

/* ---- the driver ---------------------------------------------------------------- */

static struct gw__listener lis = {.name = "public"};
static struct gw__exchange ex = {.lis = &lis, .client_addr = "127.0.0.1", .request_id = "r1"};
static char path[3001];

struct drive {
    int lines;             /* to send */
    _Atomic int sent;      /* set when sent */
    _Atomic int stop;      /* set by the main thread: stop the logger */
    _Atomic size_t queued; /* lines in the logger's mailbox just after sending */
    _Atomic rt_pid logger;
};

static void driver(void *arg)
{
    struct drive *d = arg;
    rt_pid lg;
    rt_atom reason;
    T_ASSERT(gw__logger_start(NULL, NULL, 0, &lg, &reason) == 0);
    atomic_store(&d->logger, lg);
    for (int i = 0; i < d->lines; i++)
        gw__access_log(&ex, "GET", path, "any", NULL, 200, 3, 1500, 1);
    struct rt_proc_info info;
    T_ASSERT(rt_proc_info(lg, &info) == 0);
    atomic_store(&d->queued, info.mailbox_len);
    atomic_store(&d->sent, 1);
    while (!atomic_load(&d->stop))
        rt_sleep(5);
    /* As the supervisor stops it. */
    rt_trap_exit(true);
    rt_ref mon = rt_monitor(lg);
    rt_exit_signal(lg, RT_SHUTDOWN);
    struct rt_msg *m = rt_receive_ref(mon, scaled(5000));
    T_ASSERT(m != NULL);
    rt_msg_free(m);
}

static void start(unsigned schedulers)
{
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    stdout_to_full_pipe();
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

/* ---- tests ------------------------------------------------------------------------ */

static _Atomic int probe_ran;

static void probe(void *arg)
{
    (void)arg;
    atomic_store(&probe_ran, 1);
}

START_TEST(stdout_that_does_not_drain_leaves_the_scheduler_free)
{
    start(1);
    struct drive d = {.lines = 20};
    rt_pid drv;
    ck_assert_int_eq(rt_spawn(driver, &d, NULL, &drv), 0);
    ck_assert(wait_flag(&d.sent, 2000));
    /* Give the logger its turn: it now waits on the full pipe. */
    usleep(200 * 1000);
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
    atomic_store(&d.stop, 1);
    rt_atom reason;
    ck_assert_int_eq(rt_join(drv, scaled(5000), &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_int_eq(rt_stop(), 0);
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
    start(2);
    rt_set_log_handler(count_drops, NULL);
    struct drive d = {.lines = lines};
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
    atomic_store(&d.stop, 1);
    rt_atom reason;
    ck_assert_int_eq(rt_join(drv, scaled(5000), &reason), 0);
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_int_eq(rt_stop(), 0);
    rt_set_log_handler(NULL, NULL);
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
    ck_assert(json_is_number(json_object_get(v, "time")));
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

int main(void)
{
    Suite *s = suite_create("logger");
    TCase *tc = tcase_create("logger");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, stdout_that_does_not_drain_leaves_the_scheduler_free);
    tcase_add_test(tc, backlog_is_capped_by_bytes_and_every_line_is_written_or_counted);
    tcase_add_test(tc, reports_are_json_lines_whatever_bytes_they_carry);
    tcase_add_test(tc, crash_reports_carry_the_formatted_state_within_one_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
