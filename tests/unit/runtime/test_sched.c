/*
 * test_sched.c: schedulers, reductions, watchdog, timers, hibernation,
 * stack overflow, blocking pool, per-process memory, introspection, and a
 * stress of many senders on all schedulers.
 */
#include "rt_fault.h"
#include "rt_test.h"
#ifndef RT_STACK_SIZE_MAX
#define RT_STACK_SIZE_MAX ((size_t)64 << 20)
#endif

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { T_DATA = 1, T_TICK, T_STOP };

static _Atomic int flag;
static _Atomic uint64_t result;

/* ---- reductions: a busy process cannot starve others on its scheduler ---- */

static void busy_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&flag))
        rt_reductions(1); /* a runtime call per iteration, as real code makes */
}

static void set_flag(void *arg)
{
    (void)arg;
    atomic_store(&flag, 1);
}

START_TEST(reduction_budget_lets_others_run_on_one_scheduler)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    rt_pid busy, other;
    ck_assert_int_eq(rt_spawn(busy_loop, NULL, NULL, &busy), 0);
    ck_assert_int_eq(rt_spawn(set_flag, NULL, NULL, &other), 0);
    /* If the busy loop never yielded, set_flag could never run and this
     * join would time out. */
    ck_assert_int_eq(rt_join(busy, 5000, NULL), 0);
    ck_assert_int_eq(rt_join(other, 5000, NULL), 0);
    rt_test_stop();
}
END_TEST

/* ---- watchdog ---- */

static char wd_log[512];
static _Atomic int wd_hits;

static void capture_log(enum rt_log_level level, const char *msg, void *ctx)
{
    (void)ctx;
    if (level == RT_LOG_WARNING && strstr(msg, "held scheduler")) {
        snprintf(wd_log, sizeof wd_log, "%s", msg);
        atomic_fetch_add(&wd_hits, 1);
    }
}

static void hog(void *arg)
{
    (void)arg;
    uint64_t end = rt_now_ms() + 400;
    while (rt_now_ms() < end)
        ; /* no runtime call: holds the scheduler */
}

START_TEST(watchdog_reports_a_process_holding_its_scheduler_by_name)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    cfg.watchdog_ms = 100;
    ck_assert_int_eq(rt_start(&cfg), 0);
    rt_set_log_handler(capture_log, NULL);
    atomic_store(&wd_hits, 0);
    rt_pid pid;
    struct rt_spawn_opts o = {.name = "cpu_hog"};
    ck_assert_int_eq(rt_spawn(hog, NULL, &o, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 5000, NULL), 0);
    rt_set_log_handler(NULL, NULL);
    ck_assert_int_eq(atomic_load(&wd_hits), 1); /* once per offence */
    ck_assert_ptr_nonnull(strstr(wd_log, "cpu_hog"));
    rt_test_stop();
}
END_TEST

/* ---- timers ---- */

static void timer_body(void *arg)
{
    (void)arg;
    rt_pid me = rt_self();
    uint64_t t0 = rt_now_ms();
    ck_assert_int_eq(rt_send_after(me, 50, msg_u64(T_TICK, 1), NULL), 0);
    rt_ref cancelled;
    ck_assert_int_eq(rt_send_after(me, 30, msg_u64(T_TICK, 2), &cancelled), 0);
    ck_assert_int_eq(rt_cancel_timer(cancelled), 0);
    ck_assert_int_eq(rt_cancel_timer(cancelled), -ENOENT);
    ck_assert_uint_eq(recv_u64(2000), 1);
    uint64_t dt = rt_now_ms() - t0;
    ck_assert_uint_ge(dt, 50);
    ck_assert_uint_lt(dt, 1000);
    ck_assert_ptr_null(rt_receive(80)); /* the cancelled one never comes */
    /* Long timers wait for their round of the wheel. */
    t0 = rt_now_ms();
    ck_assert_int_eq(rt_send_after(me, 1100, msg_u64(T_TICK, 3), NULL), 0);
    ck_assert_uint_eq(recv_u64(3000), 3);
    ck_assert_uint_ge(rt_now_ms() - t0, 1100);
}

START_TEST(send_after_delivers_on_time_and_cancel_prevents_delivery)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(timer_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void dtor_flag(struct rt_msg *m)
{
    (void)m;
    atomic_fetch_add(&flag, 1);
}

START_TEST(timer_for_a_dead_process_is_dropped)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(set_flag, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 5000, NULL), 0);
    atomic_store(&flag, 0);
    struct rt_msg *m = rt_msg_new(T_TICK, 0);
    m->dtor = dtor_flag;
    ck_assert_int_eq(rt_send_after(pid, 10, m, NULL), 0);
    usleep(100000);
    ck_assert_int_eq(atomic_load(&flag), 1);
    rt_test_stop();
}
END_TEST

static void sleeper(void *arg)
{
    (void)arg;
    uint64_t t0 = rt_now_ms();
    rt_sleep(80);
    atomic_store(&result, rt_now_ms() - t0);
}

START_TEST(sleep_parks_without_holding_the_scheduler)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    rt_pid a, b;
    ck_assert_int_eq(rt_spawn(sleeper, NULL, NULL, &a), 0);
    ck_assert_int_eq(rt_spawn(set_flag, NULL, NULL, &b), 0);
    ck_assert_int_eq(rt_join(b, 1000, NULL), 0); /* ran while a slept */
    ck_assert_int_eq(rt_join(a, 2000, NULL), 0);
    ck_assert_uint_ge(atomic_load(&result), 80);
    ck_assert_uint_lt(atomic_load(&result), 1000);
    rt_test_stop();
}
END_TEST

/* ---- hibernation ---- */

static void after_wake(void *arg)
{
    struct rt_msg *m = rt_receive(0); /* the message that woke us is there */
    ck_assert_ptr_nonnull(m);
    atomic_store(&result, m->u64 + (uint64_t)(uintptr_t)arg);
    rt_msg_free(m);
}

static void hibernator(void *arg)
{
    (void)arg;
    atomic_store(&flag, 1);
    rt_hibernate(after_wake, (void *)(uintptr_t)1000);
}

START_TEST(hibernate_drops_the_stack_and_resumes_on_next_message)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(hibernator, NULL, NULL, &pid), 0);
    while (!atomic_load(&flag))
        usleep(1000);
    struct rt_proc_info info;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(rt_proc_info(pid, &info), 0);
        if (info.status == RT_STATUS_HIBERNATING)
            break;
        usleep(1000);
    }
    ck_assert_int_eq(info.status, RT_STATUS_HIBERNATING);
    struct rt_system_info si;
    ck_assert_int_eq(rt_system_info(&si), 0);
    ck_assert_uint_eq(si.stacks_in_use, 0);
    ck_assert_int_eq(rt_send(pid, msg_u64(T_DATA, 7)), 0);
    ck_assert_int_eq(rt_join(pid, 5000, NULL), 0);
    ck_assert_uint_eq(atomic_load(&result), 1007);
    rt_test_stop();
}
END_TEST

static void idle_resume(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(0));
}

/* Monitors the process `arg` names and takes the monitor back, as a
 * connection does with each request process, then hibernates. */
static void monitor_then_hibernate(void *arg)
{
    rt_ref ref = rt_monitor((rt_pid)(uintptr_t)arg);
    ck_assert_uint_ne(ref, 0);
    ck_assert_int_eq(rt_demonitor(ref, true), 0);
    rt_hibernate(idle_resume, NULL);
}

static void just_hibernate(void *arg)
{
    (void)arg;
    rt_hibernate(idle_resume, NULL);
}

static size_t hibernated_memory(rt_pid pid)
{
    struct rt_proc_info info;
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(rt_proc_info(pid, &info), 0);
        if (info.status == RT_STATUS_HIBERNATING)
            return info.memory;
        usleep(1000);
    }
    ck_abort_msg("the process did not hibernate");
    return 0;
}

START_TEST(a_hibernating_process_keeps_no_room_for_monitors_it_took_back)
{
    rt_test_start(1);
    rt_pid plain, mon;
    ck_assert_int_eq(rt_spawn(just_hibernate, NULL, NULL, &plain), 0);
    size_t m0 = hibernated_memory(plain);
    ck_assert_int_eq(rt_spawn(monitor_then_hibernate, (void *)(uintptr_t)plain, NULL, &mon), 0);
    size_t m1 = hibernated_memory(mon);
    /* Not the list block and an array of four monitor records. */
    ck_assert_uint_eq(m1, m0);
    ck_assert_int_eq(rt_send(plain, msg_u64(T_DATA, 1)), 0);
    ck_assert_int_eq(rt_send(mon, msg_u64(T_DATA, 1)), 0);
    ck_assert_int_eq(rt_join(plain, 5000, NULL), 0);
    ck_assert_int_eq(rt_join(mon, 5000, NULL), 0);
    rt_test_stop();
}
END_TEST

/* One link and no monitors: kept in the control block while hibernating,
 * and still a link both ways. */
static _Atomic rt_pid solo_kids[2];

static void crash_on_wake(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(0));
    rt_exit(rt_atom_intern("crash1"));
}

static void hibernate_then_crash(void *arg)
{
    (void)arg;
    rt_hibernate(crash_on_wake, NULL);
}

static void solo_parent(void *arg)
{
    (void)arg;
    struct rt_spawn_opts o = {.link = true};
    rt_pid a, b;
    ck_assert_int_eq(rt_spawn(hibernate_then_crash, NULL, &o, &a), 0);
    ck_assert_int_eq(rt_spawn(just_hibernate, NULL, &o, &b), 0);
    atomic_store(&solo_kids[0], a);
    atomic_store(&solo_kids[1], b);
    rt_msg_free(rt_receive(RT_INFINITY)); /* ends by its links */
}

START_TEST(a_hibernating_process_with_one_link_keeps_it_without_the_lists_block)
{
    rt_test_start(1);
    atomic_store(&solo_kids[0], 0);
    atomic_store(&solo_kids[1], 0);
    rt_pid plain, parent;
    ck_assert_int_eq(rt_spawn(just_hibernate, NULL, NULL, &plain), 0);
    size_t m0 = hibernated_memory(plain);
    ck_assert_int_eq(rt_spawn(solo_parent, NULL, NULL, &parent), 0);
    for (int i = 0; i < 5000 && !atomic_load(&solo_kids[1]); i++)
        usleep(1000);
    rt_pid a = atomic_load(&solo_kids[0]), b = atomic_load(&solo_kids[1]);
    ck_assert_uint_ne(b, 0);
    /* No lists block: as much as a process without links. */
    ck_assert_uint_eq(hibernated_memory(a), m0);
    ck_assert_uint_eq(hibernated_memory(b), m0);
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(b, &info), 0);
    ck_assert_int_eq(info.links, 1);
    rt_pid out[4] = {0};
    ck_assert_int_eq(rt_proc_links(b, out, 4), 1);
    ck_assert_uint_eq(out[0], parent);
    /* a's exit goes up its link to the parent, whose exit comes down b's. */
    ck_assert_int_eq(rt_send(a, msg_u64(T_DATA, 1)), 0);
    rt_atom why = 0;
    ck_assert_int_eq(rt_join(a, 5000, &why), 0);
    ck_assert_uint_eq(why, rt_atom_intern("crash1"));
    ck_assert_int_eq(rt_join(parent, 5000, &why), 0);
    ck_assert_uint_eq(why, rt_atom_intern("crash1"));
    ck_assert_int_eq(rt_join(b, 5000, &why), 0);
    ck_assert_uint_eq(why, rt_atom_intern("crash1"));
    ck_assert_int_eq(rt_send(plain, msg_u64(T_DATA, 1)), 0);
    ck_assert_int_eq(rt_join(plain, 5000, NULL), 0);
    rt_test_stop();
}
END_TEST

/* A solo link taken off (rt_unlink) and another made (rt_link, which
 * moves the lists back) by a process woken from hibernation. */
static _Atomic rt_pid relink_kids[1];

static void relink_resume(void *arg)
{
    (void)arg;
    struct rt_msg *m = rt_receive(0);
    rt_pid x = (rt_pid)m->u64;
    rt_msg_free(m);
    ck_assert_int_eq(rt_unlink(rt_parent()), 0);
    ck_assert_int_eq(rt_link(x), 0);
    rt_hibernate(idle_resume, NULL);
}

static void hibernate_to_relink(void *arg)
{
    (void)arg;
    rt_hibernate(relink_resume, NULL);
}

static void relink_parent(void *arg)
{
    (void)arg;
    struct rt_spawn_opts o = {.link = true};
    rt_pid c;
    ck_assert_int_eq(rt_spawn(hibernate_to_relink, NULL, &o, &c), 0);
    atomic_store(&relink_kids[0], c);
    rt_msg_free(rt_receive(RT_INFINITY)); /* killed */
}

static void exit_on_message(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(RT_INFINITY));
    rt_exit(rt_atom_intern("boomx"));
}

START_TEST(a_solo_link_can_be_taken_off_and_another_made_after_hibernation)
{
    rt_test_start(1);
    atomic_store(&relink_kids[0], 0);
    rt_pid parent, x;
    ck_assert_int_eq(rt_spawn(relink_parent, NULL, NULL, &parent), 0);
    ck_assert_int_eq(rt_spawn(exit_on_message, NULL, NULL, &x), 0);
    for (int i = 0; i < 5000 && !atomic_load(&relink_kids[0]); i++)
        usleep(1000);
    rt_pid c = atomic_load(&relink_kids[0]);
    ck_assert_uint_ne(c, 0);
    hibernated_memory(c);
    rt_pid out[4] = {0};
    ck_assert_int_eq(rt_proc_links(c, out, 4), 1);
    ck_assert_uint_eq(out[0], parent);
    ck_assert_int_eq(rt_send(c, msg_u64(T_DATA, x)), 0);
    /* Hibernating again, linked to x alone. */
    for (int i = 0; i < 5000; i++) {
        if (rt_proc_links(c, out, 4) == 1 && out[0] == x)
            break;
        usleep(1000);
    }
    hibernated_memory(c);
    ck_assert_int_eq(rt_proc_links(c, out, 4), 1);
    ck_assert_uint_eq(out[0], x);
    /* The parent's end does not reach it any more; x's does. */
    ck_assert_int_eq(rt_exit_signal(parent, RT_KILL), 0);
    ck_assert_int_eq(rt_join(parent, 5000, NULL), 0);
    ck_assert_int_eq(rt_send(x, msg_u64(T_DATA, 1)), 0);
    rt_atom why = 0;
    ck_assert_int_eq(rt_join(c, 5000, &why), 0);
    ck_assert_uint_eq(why, rt_atom_intern("boomx"));
    ck_assert_int_eq(rt_join(x, 5000, NULL), 0);
    rt_test_stop();
}
END_TEST

struct hpoll {
    int fd;
    uint64_t t0;
    _Atomic int stage;
    char got[16];
};

static void hpoll_resume(void *arg)
{
    struct hpoll *h = arg;
    ssize_t n = rt_read(h->fd, h->got, sizeof h->got - 1, 0);
    if (n > 0) {
        h->got[n] = 0;
        atomic_store(&h->stage, 2);
        return;
    }
    /* Not readable: this was the timeout. */
    atomic_store(&result, rt_now_ms() - h->t0);
    atomic_store(&h->stage, 3);
}

static void hpoll_body(void *arg)
{
    struct hpoll *h = arg;
    h->t0 = rt_now_ms();
    atomic_store(&h->stage, 1);
    rt_hibernate_poll(h->fd, RT_POLL_IN, atomic_load(&flag) ? 60 : RT_INFINITY, hpoll_resume, h);
}

START_TEST(hibernate_poll_resumes_without_a_stack_on_readiness_or_timeout)
{
    rt_test_start(1);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    rt_fd_nonblock(sv[0]);
    static struct hpoll h;
    memset(&h, 0, sizeof h);
    h.fd = sv[0];
    atomic_store(&flag, 0); /* no timeout: woken by data */
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(hpoll_body, &h, NULL, &pid), 0);
    struct rt_proc_info info;
    for (int i = 0; i < 200; i++) {
        if (rt_proc_info(pid, &info) == 0 && info.status == RT_STATUS_HIBERNATING)
            break;
        usleep(1000);
    }
    ck_assert_int_eq(info.status, RT_STATUS_HIBERNATING);
    struct rt_system_info si;
    ck_assert_int_eq(rt_system_info(&si), 0);
    ck_assert_uint_eq(si.stacks_in_use, 0);
    ck_assert_int_eq(write(sv[1], "wake", 4), 4);
    ck_assert_int_eq(rt_join(pid, 5000, NULL), 0);
    ck_assert_int_eq(atomic_load(&h.stage), 2);
    ck_assert_str_eq(h.got, "wake");
    /* With a timeout and no data, it resumes after the timeout. */
    memset(&h, 0, sizeof h);
    h.fd = sv[0];
    atomic_store(&flag, 1);
    ck_assert_int_eq(rt_spawn(hpoll_body, &h, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 5000, NULL), 0);
    ck_assert_int_eq(atomic_load(&h.stage), 3);
    ck_assert_uint_ge(atomic_load(&result), 60);
    close(sv[0]);
    close(sv[1]);
    rt_test_stop();
}
END_TEST

/* ---- stack overflow ---- */

static _Atomic int recurse_limit = 1 << 30; /* unbounded in practice */

static int recurse(volatile char *prev, int depth)
{
    volatile char buf[512];
    buf[0] = (char)depth;
    buf[511] = prev ? prev[0] : 0;
    if (depth >= atomic_load(&recurse_limit))
        return 0;
    return recurse(buf, depth + 1) + buf[511];
}

/* The same, with a runtime call on every level. */
static int recurse_calling(volatile char *prev, int depth)
{
    volatile char buf[512];
    buf[0] = (char)depth;
    buf[511] = prev ? prev[0] : 0;
    rt_reductions(1);
    if (depth >= atomic_load(&recurse_limit))
        return 0;
    return recurse_calling(buf, depth + 1) + buf[511];
}

static void overflow_calling(void *arg)
{
    (void)arg;
    recurse_calling(NULL, 0);
}

/* The same, taking one queued message on every level: the level that runs
 * out ends inside rt_receive, with a message in hand. */
static int recurse_receiving(volatile char *prev, int depth)
{
    volatile char buf[512];
    buf[0] = (char)depth;
    buf[511] = prev ? prev[0] : 0;
    rt_msg_free(rt_receive(0));
    if (depth >= atomic_load(&recurse_limit))
        return 0;
    return recurse_receiving(buf, depth + 1) + buf[511];
}

static void overflow_receiving(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        rt_send(rt_self(), rt_msg_new(T_DATA, 0));
    recurse_receiving(NULL, 0);
}

START_TEST(stack_overflow_at_a_runtime_call_ends_only_that_process)
{
    /* No signal is involved: this holds in sanitizer builds too. */
    rt_test_start(2);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(overflow_calling, NULL, NULL, &pid), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, 5000, &reason), 0);
    ck_assert_str_eq(rt_atom_name(reason), "stack_overflow");
    /* Ending inside a receive loses no message: rt_test_stop checks that
     * none is left. */
    ck_assert_int_eq(rt_spawn(overflow_receiving, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 5000, &reason), 0);
    ck_assert_str_eq(rt_atom_name(reason), "stack_overflow");
    /* The runtime carries on. */
    atomic_store(&flag, 0);
    rt_test_run(set_flag, NULL);
    ck_assert_int_eq(atomic_load(&flag), 1);
    rt_test_stop();
}
END_TEST

/* Each level allocates more than malloc's per-thread cache holds, so every
 * call takes its arena lock, and the frames malloc adds under that lock are
 * deeper than one level of this function: the level that reaches the
 * guard page reaches it inside malloc, with the lock held. */
__attribute__((noinline)) static int deep_malloc(int depth)
{
    char *volatile blk = malloc(4096);
    if (!blk || depth >= atomic_load(&recurse_limit))
        return depth;
    int r = deep_malloc(depth + 1);
    free(blk); /* used after the call: no tail call */
    return r;
}

static void deep_malloc_main(void *arg)
{
    (void)arg;
    deep_malloc(0);
}

static void malloc_once(void *arg)
{
    (void)arg;
    char *volatile blk = malloc(4096); /* volatile: the pair is not optimised away */
    free(blk);
}

/* Exit codes of the child below, other than its death by a signal. */
enum { CHILD_OK = 0, CHILD_SETUP = 3, CHILD_DEADLOCK = 4 };

static void overflow_in_malloc_child(void)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 1; /* the next allocation runs on the same thread */
    if (rt_start(&cfg) < 0)
        _exit(CHILD_SETUP);
    struct rt_spawn_opts o = {.name = "deep_malloc", .initial_call = "test:deep_malloc"};
    rt_pid pid;
    if (rt_spawn(deep_malloc_main, NULL, &o, &pid) < 0)
        _exit(CHILD_SETUP);
    rt_join(pid, 5000, NULL);
    /* Had the process been ended alone, malloc's arena lock would still be
     * held by its abandoned frames, and this would wait forever. */
    if (rt_spawn(malloc_once, NULL, NULL, &pid) < 0)
        _exit(CHILD_SETUP);
    _exit(rt_join(pid, 5000, NULL) == 0 ? CHILD_OK : CHILD_DEADLOCK);
}

/* Runs fn in a child process (no core file) with its stderr captured in
 * err; returns its wait status, or -1 if it had not ended after timeout_ms
 * (it is then killed). */
static int run_in_child(void (*fn)(void), uint64_t timeout_ms, char *err, size_t cap)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        fn();
        _exit(CHILD_OK);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    size_t n = 0;
    int status = -1;
    uint64_t end = rt_now_ms() + timeout_ms;
    for (;;) {
        ssize_t r = read(fds[0], err + n, cap - 1 - n);
        if (r > 0) {
            n += (size_t)r;
            if (n < cap - 1)
                continue;
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (rt_now_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            status = -1;
            break;
        }
        usleep(10000);
    }
    ssize_t r;
    while (n < cap - 1 && (r = read(fds[0], err + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = 0;
    close(fds[0]);
    return status;
}

START_TEST(stack_overflow_between_runtime_calls_aborts_with_a_report_naming_the_process)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* The sanitizers own SIGSEGV; the guard-page path is tested in plain builds. */
    return;
#endif
    static char err[8192];
    int status = run_in_child(overflow_in_malloc_child, 30000, err, sizeof err);
    ck_assert_msg(status != -1, "the child hung after the overflow; stderr: %s", err);
    ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_DEADLOCK,
                  "the process was ended alone and the next malloc on its scheduler hung; "
                  "stderr: %s",
                  err);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "the child did not abort (status %#x); stderr: %s", (unsigned)status, err);
    ck_assert_ptr_nonnull(strstr(err, "fatal: stack_overflow pid="));
    ck_assert_ptr_nonnull(strstr(err, " name=deep_malloc initial_call=test:deep_malloc "));
}
END_TEST

/* ---- stack size per process ---- */

static void deep_then_hibernate(void *arg);

/* Over 500 KiB of frames, then sleep without a stack, then again on the fresh
 * stack hibernation gives. */
static void deep_work(void *arg)
{
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(rt_self(), &info), 0);
    ck_assert_uint_ge(info.memory, (size_t)1 << 20);
    recurse(NULL, 0);
    if (arg)
        rt_hibernate(deep_then_hibernate, NULL);
}

static void deep_then_hibernate(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(0));
    deep_work(NULL);
}

START_TEST(spawn_stack_size_gives_the_process_that_much_stack)
{
    rt_test_start(2);
    atomic_store(&recurse_limit, 1000);
    struct rt_spawn_opts o = {.stack_size = (size_t)1 << 20};
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(deep_work, (void *)1, &o, &pid), 0);
    ck_assert_int_eq(rt_send(pid, rt_msg_new(T_DATA, 0)), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, 10000, &reason), 0);
    ck_assert_str_eq(rt_atom_name(reason), "normal");
    atomic_store(&recurse_limit, 1 << 30);
    /* A size beyond the documented bound is refused. */
    o.stack_size = RT_STACK_SIZE_MAX + 1;
    ck_assert_int_eq(rt_spawn(deep_work, NULL, &o, &pid), -EINVAL);
    rt_test_stop();
}
END_TEST

/* ---- blocking pool ---- */

static _Atomic int blocking_on_scheduler = -1;

static intptr_t slow_square(void *arg)
{
    atomic_store(&blocking_on_scheduler, rt_on_scheduler());
    usleep(50000);
    intptr_t v = (intptr_t)arg;
    atomic_store(&flag, 1);
    return v * v;
}

static void blocking_body(void *arg)
{
    (void)arg;
    intptr_t r = 0;
    ck_assert_int_eq(rt_blocking(slow_square, (void *)(intptr_t)12, &r), 0);
    ck_assert_int_eq(r, 144);
}

static _Atomic uint64_t ticks;
static void ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&flag)) {
        atomic_fetch_add(&ticks, 1);
        rt_sleep(1);
    }
}

START_TEST(blocking_call_runs_off_scheduler_while_others_keep_running)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    atomic_store(&ticks, 0);
    rt_pid t;
    ck_assert_int_eq(rt_spawn(ticker, NULL, NULL, &t), 0);
    ck_assert_uint_eq(rt_test_run(blocking_body, NULL), RT_NORMAL);
    ck_assert_int_eq(rt_join(t, 5000, NULL), 0);
    /* One scheduler: the ticker only advanced because the caller parked. */
    ck_assert_uint_ge(atomic_load(&ticks), 5);
    rt_test_stop();
}
END_TEST

static _Atomic int process_on_scheduler = -1;

static void on_scheduler_body(void *arg)
{
    (void)arg;
    atomic_store(&process_on_scheduler, rt_on_scheduler());
    intptr_t r = 0;
    ck_assert_int_eq(rt_blocking(slow_square, (void *)(intptr_t)3, &r), 0);
}

START_TEST(on_scheduler_true_in_processes_false_on_blocking_pool_and_main)
{
    rt_test_start(2);
    atomic_store(&blocking_on_scheduler, -1);
    atomic_store(&process_on_scheduler, -1);
    ck_assert(!rt_on_scheduler());
    ck_assert_uint_eq(rt_test_run(on_scheduler_body, NULL), RT_NORMAL);
    ck_assert_int_eq(atomic_load(&process_on_scheduler), 1);
    ck_assert_int_eq(atomic_load(&blocking_on_scheduler), 0);
    ck_assert(!rt_on_scheduler());
    rt_test_stop();
}
END_TEST

/* ---- per-process memory and cleanups ---- */

static void cleanup_flag(void *arg)
{
    atomic_fetch_add(&flag, (int)(intptr_t)arg);
}

static void allocator(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        ck_assert_ptr_nonnull(rt_alloc(1000));
    char *s = rt_strdup("kept until exit");
    ck_assert_ptr_nonnull(s);
    rt_defer(cleanup_flag, (void *)1);
    uint64_t h = rt_defer(cleanup_flag, (void *)100);
    rt_undefer(h, false);
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(rt_self(), &info), 0);
    ck_assert_uint_ge(info.memory, 100000);
    rt_msg_free(rt_receive(RT_INFINITY)); /* killed while waiting */
}

START_TEST(memory_and_cleanups_of_a_killed_process_are_released)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(allocator, NULL, NULL, &pid), 0);
    usleep(20000);
    ck_assert_int_eq(rt_exit_signal(pid, RT_KILL), 0);
    ck_assert_int_eq(rt_join(pid, 5000, NULL), 0);
    /* The remaining cleanup ran once; the cancelled one did not. The memory
     * is checked by the sanitizer and valgrind runs of this test. */
    ck_assert_int_eq(atomic_load(&flag), 1);
    rt_test_stop();
}
END_TEST

/* ---- introspection ---- */

static _Atomic int labelled; /* idle_named processes that have set their labels */

static void idle_named(void *arg)
{
    (void)arg;
    rt_set_state_name("idle");
    rt_set_detail("waiting for %s", "work");
    atomic_fetch_add(&labelled, 1);
    rt_msg_free(rt_receive(RT_INFINITY));
}

struct census {
    int named;
    size_t mailbox;
    char detail[512];
};

static int count_named(const struct rt_proc_info *i, void *ctx)
{
    struct census *c = ctx;
    if (strncmp(i->name, "worker_", 7) == 0) {
        c->named++;
        c->mailbox += i->mailbox_len;
        snprintf(c->detail, sizeof c->detail, "%s|%s|%s|%s", i->initial_call, i->state, i->detail,
                 rt_kind_name(i->kind));
    }
    return 0;
}

START_TEST(snapshot_lists_every_process_with_its_figures)
{
    rt_test_start(2);
    atomic_store(&labelled, 0);
    rt_pid pids[50];
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker_%d", i);
        struct rt_spawn_opts o = {
            .name = name, .initial_call = "test:idle_named", .kind = RT_KIND_SERVER};
        ck_assert_int_eq(rt_spawn(idle_named, NULL, &o, &pids[i]), 0);
    }
    /* The labels are set by each process's first slice, which may come late
     * on a slow or loaded machine: wait for all of them, not for a time. */
    for (int i = 0; i < 10000 && atomic_load(&labelled) < 50; i++)
        usleep(1000);
    ck_assert_int_eq(atomic_load(&labelled), 50);
    struct census c = {0};
    ck_assert_int_eq(rt_processes_foreach(count_named, &c), 0);
    ck_assert_int_eq(c.named, 50);
    ck_assert_uint_eq(c.mailbox, 0);
    ck_assert_str_eq(c.detail, "test:idle_named|idle|waiting for work|server");
    struct rt_system_info si;
    ck_assert_int_eq(rt_system_info(&si), 0);
    ck_assert_uint_eq(si.process_count, 50);
    ck_assert_uint_eq(si.schedulers, 2);
    ck_assert_uint_ge(si.spawned, 50);
    for (int i = 0; i < 50; i++)
        rt_send(pids[i], rt_msg_new(T_STOP, 0));
    rt_test_stop();
}
END_TEST

/* Sets its detail from bytes that are not a C string: a long line, cut at
 * 127, then a short one, which replaces it whole. */
static _Atomic int detail_step;

static void detail_text_setter(void *arg)
{
    (void)arg;
    char text[200];
    memset(text, 'x', sizeof text);
    text[0] = 'A';
    rt_set_detail_text(text, sizeof text);
    atomic_store(&detail_step, 1);
    rt_msg_free(rt_receive(RT_INFINITY));
    rt_set_detail_text("GET\t/a\tpath-that-is-cut", 10); /* "GET\t/a\tpat" */
    atomic_store(&detail_step, 2);
    rt_msg_free(rt_receive(RT_INFINITY));
}

START_TEST(detail_text_is_cut_at_127_bytes_and_replaced_whole)
{
    rt_test_start(1);
    atomic_store(&detail_step, 0);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(detail_text_setter, NULL, NULL, &pid), 0);
    for (int i = 0; i < 10000 && atomic_load(&detail_step) < 1; i++)
        usleep(1000);
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(pid, &info), 0);
    ck_assert_uint_eq(strlen(info.detail), 127);
    ck_assert_int_eq(info.detail[0], 'A');
    ck_assert_int_eq(info.detail[126], 'x');
    rt_send(pid, rt_msg_new(T_STOP, 0));
    for (int i = 0; i < 10000 && atomic_load(&detail_step) < 2; i++)
        usleep(1000);
    ck_assert_int_eq(rt_proc_info(pid, &info), 0);
    ck_assert_str_eq(info.detail, "GET\t/a\tpat");
    rt_send(pid, rt_msg_new(T_STOP, 0));
    rt_test_stop();
}
END_TEST

/* Sets its own kind (the one its argument names), reports, then waits. */
static void idle_of_kind(void *arg)
{
    rt_kind k = (rt_kind)(uintptr_t)arg;
    ck_assert_int_eq(rt_set_kind(k), 0);
    ck_assert_int_eq(rt_set_kind(RT_KIND_MAX - 1), -EINVAL); /* not registered yet */
    atomic_fetch_add(&labelled, 1);
    rt_msg_free(rt_receive(RT_INFINITY));
}

struct kind_census {
    rt_kind gate, door;
    int gates, doors;
};

static int count_kinds(const struct rt_proc_info *i, void *ctx)
{
    struct kind_census *c = ctx;
    if (i->kind == c->gate) {
        ck_assert_str_eq(rt_kind_name(i->kind), "gate");
        c->gates++;
    } else if (i->kind == c->door) {
        ck_assert_str_eq(rt_kind_name(i->kind), "door");
        c->doors++;
    }
    return 0;
}

START_TEST(application_kinds_are_registered_by_name_and_reported_up_to_the_bound)
{
    rt_test_start(2);
    atomic_store(&labelled, 0);
    struct kind_census c = {0};
    ck_assert_int_eq(rt_kind_register("gate", &c.gate), 0);
    ck_assert_int_eq(rt_kind_register("door", &c.door), 0);
    ck_assert_uint_ge(c.gate, RT_KIND_RUNTIME_COUNT);
    ck_assert_uint_ne(c.gate, c.door);
    rt_kind k = 0;
    ck_assert_int_eq(rt_kind_register("gate", &k), 0); /* a name keeps its id */
    ck_assert_uint_eq(k, c.gate);
    ck_assert_int_eq(rt_kind_register("supervisor", &k), 0);
    ck_assert_uint_eq(k, RT_KIND_SUPERVISOR);
    ck_assert_int_eq(rt_kind_find("door,gate", 4, &k), 0);
    ck_assert_uint_eq(k, c.door);
    ck_assert_int_eq(rt_kind_find("doo", 3, &k), -ENOENT);
    static const char *const bad[] = {"", "two words", "a,b", "x\n",
                                      "0123456789012345678901234567890x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(rt_kind_register(bad[i], &k), -EINVAL);
    ck_assert_int_eq(rt_set_kind(c.gate), -EPERM); /* not a process */

    /* At spawn, or set by the process itself; an unregistered id is refused. */
    rt_pid pids[6];
    for (int i = 0; i < 3; i++) {
        struct rt_spawn_opts o = {.initial_call = "test:gate", .kind = c.gate};
        ck_assert_int_eq(rt_spawn(idle_named, NULL, &o, &pids[i]), 0);
    }
    for (int i = 3; i < 6; i++)
        ck_assert_int_eq(rt_spawn(idle_of_kind, (void *)(uintptr_t)c.door, NULL, &pids[i]), 0);
    struct rt_spawn_opts unknown = {.kind = RT_KIND_MAX - 1};
    ck_assert_int_eq(rt_spawn(idle_named, NULL, &unknown, NULL), -EINVAL);
    for (int i = 0; i < 10000 && atomic_load(&labelled) < 6; i++)
        usleep(1000);
    ck_assert_int_eq(atomic_load(&labelled), 6);
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(pids[0], &info), 0);
    ck_assert_uint_eq(info.kind, c.gate);
    ck_assert_int_eq(rt_proc_info(pids[5], &info), 0);
    ck_assert_uint_eq(info.kind, c.door);
    ck_assert_int_eq(rt_processes_foreach(count_kinds, &c), 0);
    ck_assert_int_eq(c.gates, 3);
    ck_assert_int_eq(c.doors, 3);

    /* The bound: RT_KIND_MAX kinds in all, then -ENOSPC for a new name while
     * the names already there keep answering. */
    unsigned added = 0;
    int rc = 0;
    for (unsigned i = 0; i < 2 * RT_KIND_MAX && rc == 0; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%u", i);
        rc = rt_kind_register(name, &k);
        if (rc == 0) {
            ck_assert_str_eq(rt_kind_name(k), name);
            added++;
        }
    }
    ck_assert_int_eq(rc, -ENOSPC);
    ck_assert_uint_eq(RT_KIND_RUNTIME_COUNT + 2 + added, RT_KIND_MAX);
    char last[16];
    snprintf(last, sizeof last, "k%u", added - 1);
    ck_assert_str_eq(rt_kind_name(RT_KIND_MAX - 1), last);
    ck_assert_int_eq(rt_kind_register("gate", &k), 0);
    ck_assert_uint_eq(k, c.gate);
    ck_assert_str_eq(rt_kind_name(c.door), "door");
    for (int i = 0; i < 6; i++)
        rt_send(pids[i], rt_msg_new(T_STOP, 0));
    rt_test_stop();

    /* Registered kinds last one runtime run. */
    rt_test_start(1);
    ck_assert_int_eq(rt_kind_find("gate", 4, &k), -ENOENT);
    ck_assert_str_eq(rt_kind_name(c.gate), "process");
    ck_assert_int_eq(rt_kind_register("door", &k), 0);
    ck_assert_uint_eq(k, RT_KIND_RUNTIME_COUNT);
    rt_test_stop();
}
END_TEST

/* ---- I/O ---- */

static void io_echo(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[256];
    for (;;) {
        ssize_t n = rt_read(fd, buf, sizeof buf, 5000);
        if (n <= 0)
            break;
        ck_assert_int_eq(rt_write(fd, buf, (size_t)n, 5000), n);
    }
    rt_close(fd);
}

static void io_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    /* Nothing to read yet: a timed read parks and times out. */
    uint64_t t0 = rt_now_ms();
    ck_assert_int_eq(rt_read(fd, buf, sizeof buf, 50), -ETIMEDOUT);
    ck_assert_uint_ge(rt_now_ms() - t0, 50);
    for (int i = 0; i < 100; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "hello %d", i);
        ck_assert_int_eq(rt_write(fd, msg, (size_t)len, 1000), len);
        ssize_t got = 0;
        while (got < len) {
            ssize_t n = rt_read(fd, buf + got, sizeof buf - (size_t)got, 1000);
            ck_assert_int_gt(n, 0);
            got += n;
        }
        ck_assert_int_eq(memcmp(buf, msg, (size_t)len), 0);
    }
    rt_close(fd);
}

START_TEST(read_and_write_park_until_ready_and_time_out)
{
    rt_test_start(2);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    rt_fd_nonblock(sv[0]);
    rt_fd_nonblock(sv[1]);
    rt_pid a, b;
    ck_assert_int_eq(rt_spawn(io_echo, (void *)(intptr_t)sv[0], NULL, &a), 0);
    ck_assert_int_eq(rt_spawn(io_client, (void *)(intptr_t)sv[1], NULL, &b), 0);
    ck_assert_int_eq(rt_join(b, 10000, NULL), 0);
    ck_assert_int_eq(rt_join(a, 10000, NULL), 0);
    rt_test_stop();
}
END_TEST

#include <netinet/in.h>

static void tcp_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (int i = 0; i < 20; i++) {
        int fd = rt_accept(lfd, NULL, NULL, 5000);
        ck_assert_int_ge(fd, 0);
        rt_pid h;
        ck_assert_int_eq(rt_spawn(io_echo, (void *)(intptr_t)fd, NULL, &h), 0);
    }
    rt_close(lfd);
}

static void tcp_client(void *arg)
{
    struct sockaddr_in *sa = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(rt_connect(fd, (struct sockaddr *)sa, sizeof *sa, 2000), 0);
    ck_assert_int_eq(rt_write(fd, "ping", 4, 1000), 4);
    char buf[8];
    ssize_t n = rt_read(fd, buf, sizeof buf, 2000);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    rt_close(fd);
}

START_TEST(accept_and_connect_over_loopback_tcp)
{
    rt_test_start(2);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    ck_assert_int_eq(listen(lfd, 64), 0);
    rt_fd_nonblock(lfd);
    rt_pid srv;
    ck_assert_int_eq(rt_spawn(tcp_server, (void *)(intptr_t)lfd, NULL, &srv), 0);
    rt_pid cl[20];
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(rt_spawn(tcp_client, &sa, NULL, &cl[i]), 0);
    for (int i = 0; i < 20; i++) {
        rt_atom r;
        ck_assert_int_eq(rt_join(cl[i], 10000, &r), 0);
        ck_assert_uint_eq(r, RT_NORMAL);
    }
    ck_assert_int_eq(rt_join(srv, 10000, NULL), 0);
    rt_test_stop();
}
END_TEST

static void poll_msg_body(void *arg)
{
    int fd = (int)(intptr_t)arg;
    rt_pid me = rt_self();
    rt_send_after(me, 20, msg_u64(T_DATA, 1), NULL);
    /* Waiting for a silent fd, woken by the message instead. */
    ck_assert_int_eq(rt_poll(fd, RT_POLL_IN | RT_POLL_MSG, 2000), (int)RT_POLL_MSG);
    ck_assert_uint_eq(recv_u64(0), 1);
    ck_assert_int_eq(rt_poll(fd, RT_POLL_IN, 30), -ETIMEDOUT);
}

START_TEST(poll_wakes_on_message_when_asked)
{
    rt_test_start(1);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    rt_fd_nonblock(sv[0]);
    ck_assert_uint_eq(rt_test_run(poll_msg_body, (void *)(intptr_t)sv[0]), RT_NORMAL);
    close(sv[0]);
    close(sv[1]);
    rt_test_stop();
}
END_TEST

static void io_reader_forever(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b;
    atomic_store(&flag, 1);
    rt_read(fd, &b, 1, RT_INFINITY);
}

START_TEST(process_parked_on_io_is_killed_by_an_exit_signal)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    rt_fd_nonblock(sv[0]);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(io_reader_forever, (void *)(intptr_t)sv[0], NULL, &pid), 0);
    while (!atomic_load(&flag))
        usleep(1000);
    usleep(10000);
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(pid, &info), 0);
    ck_assert_int_eq(info.status, RT_STATUS_WAITING);
    rt_exit_signal(pid, rt_atom_intern("cancelled"));
    rt_atom r;
    ck_assert_int_eq(rt_join(pid, 2000, &r), 0);
    ck_assert_str_eq(rt_atom_name(r), "cancelled");
    close(sv[0]);
    close(sv[1]);
    rt_test_stop();
}
END_TEST

static _Atomic int woken;

static void wait_readable(void *arg)
{
    int fd = (int)(intptr_t)arg;
    if (rt_poll(fd, RT_POLL_IN, 3000) > 0)
        atomic_fetch_add(&woken, 1);
}

START_TEST(two_waiters_on_their_own_descriptors_of_one_socket_both_wake)
{
    rt_test_start(1); /* both on one scheduler's epoll set */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    rt_fd_nonblock(sv[0]);
    int dup0 = dup(sv[0]);
    atomic_store(&woken, 0);
    rt_pid a, b;
    ck_assert_int_eq(rt_spawn(wait_readable, (void *)(intptr_t)sv[0], NULL, &a), 0);
    ck_assert_int_eq(rt_spawn(wait_readable, (void *)(intptr_t)dup0, NULL, &b), 0);
    usleep(50000); /* both parked */
    uint64_t t0 = rt_now_ms();
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(rt_join(a, 5000, NULL), 0);
    ck_assert_int_eq(rt_join(b, 5000, NULL), 0);
    ck_assert_int_eq(atomic_load(&woken), 2);
    ck_assert_uint_lt(rt_now_ms() - t0, 1000); /* neither waited for its timeout */
    close(dup0);
    close(sv[0]);
    close(sv[1]);
    rt_test_stop();
}
END_TEST

/* ---- stress: many senders on all schedulers ---- */

/* 64 senders of 5000 messages each; 500 each under valgrind, which runs one
 * thread at a time and would take minutes over the full count. The checks
 * are the same. Failures inside processes are recorded, not asserted: a
 * Check assertion must not jump out of a scheduler thread. */
#define SENDERS 64
static uint64_t per_sender;
static _Atomic uint64_t stress_misordered, stress_send_failed;
static _Atomic int stress_timed_out;

static void stress_receiver(void *arg)
{
    (void)arg;
    uint64_t next[SENDERS] = {0};
    uint64_t total = 0;
    while (total < SENDERS * per_sender) {
        struct rt_msg *m = rt_receive(rt_test_scaled(10000));
        if (!m) {
            atomic_store(&stress_timed_out, 1);
            break;
        }
        uint64_t s = m->u64 >> 32, seq = m->u64 & 0xffffffff;
        if (s >= SENDERS || seq != next[s]) /* per-sender order */
            atomic_fetch_add(&stress_misordered, 1);
        else
            next[s]++;
        total++;
        rt_msg_free(m);
    }
    atomic_store(&result, total);
}

struct sender_arg {
    rt_pid to;
    uint64_t id;
};

static void stress_sender(void *arg)
{
    struct sender_arg *a = arg;
    for (uint64_t i = 0; i < per_sender; i++)
        if (rt_send(a->to, msg_u64(T_DATA, (a->id << 32) | i)) != 0)
            atomic_fetch_add(&stress_send_failed, 1);
}

START_TEST(many_senders_on_all_schedulers_keep_per_sender_order)
{
    per_sender = rt_test_under_valgrind() ? 500 : 5000;
    atomic_store(&stress_misordered, 0);
    atomic_store(&stress_send_failed, 0);
    atomic_store(&stress_timed_out, 0);
    atomic_store(&result, 0);
    rt_test_start(0); /* one scheduler per core */
    rt_pid rx;
    ck_assert_int_eq(rt_spawn(stress_receiver, NULL, NULL, &rx), 0);
    static struct sender_arg args[SENDERS];
    for (uint64_t i = 0; i < SENDERS; i++) {
        args[i] = (struct sender_arg){rx, i};
        ck_assert_int_eq(rt_spawn(stress_sender, &args[i], NULL, NULL), 0);
    }
    rt_atom r;
    ck_assert_int_eq(rt_join(rx, rt_test_scaled(30000), &r), 0);
    ck_assert_uint_eq(r, RT_NORMAL);
    ck_assert_int_eq(atomic_load(&stress_timed_out), 0);
    ck_assert_uint_eq(atomic_load(&stress_send_failed), 0);
    ck_assert_uint_eq(atomic_load(&stress_misordered), 0);
    ck_assert_uint_eq(atomic_load(&result), SENDERS * per_sender);
    rt_test_stop();
}
END_TEST

static void spawn_storm_child(void *arg)
{
    rt_pid parent = *(rt_pid *)arg;
    rt_send(parent, rt_msg_new(T_DATA, 0));
}

static void spawn_storm(void *arg)
{
    (void)arg;
    rt_pid me = rt_self();
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 1000; i++)
            ck_assert_int_eq(rt_spawn(spawn_storm_child, &me, NULL, NULL), 0);
        for (int i = 0; i < 1000; i++)
            rt_msg_free(rt_receive(10000));
    }
}

START_TEST(spawn_and_exit_storm_leaves_nothing_behind)
{
    rt_test_start(0);
    ck_assert_uint_eq(rt_test_run(spawn_storm, NULL), RT_NORMAL);
    /* The last children may still be exiting after they sent. */
    ck_assert_int_eq(rt_wait_idle(5000), 0);
    struct rt_system_info si;
    ck_assert_int_eq(rt_system_info(&si), 0);
    ck_assert_uint_eq(si.spawned, si.exited);
    rt_test_stop();
}
END_TEST

/* ---- a parked process's block after the park is published ---- */

/* The scheduler that parks a process publishes it WAITING; from then on a
 * waker on another scheduler may run it, reap it and hand its slot to a new
 * process. Here the parker lives on one scheduler and everything after the
 * park (wake, exit, reap, reuse of the slot by a new spawn) happens on the
 * other, which learns of the parker only through relaxed atomics, so the
 * only ordering between the two is the runtime's own. Under the thread
 * sanitizer any read of the block by the parking scheduler after it
 * published WAITING is reported against the new spawn's writes. */
enum { REUSE_ROUNDS = 200 };
static _Atomic uint64_t reuse_pid; /* parker's pid for this round (relaxed) */
static _Atomic int reuse_round;    /* rounds finished by the reaper side (relaxed) */

static void reuse_parker(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(RT_INFINITY));
}

static void reuse_nothing(void *arg)
{
    (void)arg;
}

/* Spawns one parker per round on its own scheduler and stays runnable
 * (yielding) so that this scheduler never idles, steals or sleeps. */
static void reuse_spawner(void *arg)
{
    (void)arg;
    for (int round = 0; round < REUSE_ROUNDS; round++) {
        rt_pid pid;
        ck_assert_int_eq(rt_spawn(reuse_parker, NULL, NULL, &pid), 0);
        atomic_store_explicit(&reuse_pid, pid, memory_order_relaxed);
        while (atomic_load_explicit(&reuse_round, memory_order_relaxed) == round)
            rt_yield();
    }
}

/* On the other scheduler: waits until the parker is parked, wakes it (so it
 * runs, exits and is reaped here), then spawns into its freed slot. */
static void reuse_reaper(void *arg)
{
    (void)arg;
    rt_pid last = 0;
    for (int round = 0; round < REUSE_ROUNDS; round++) {
        rt_pid pid;
        while ((pid = atomic_load_explicit(&reuse_pid, memory_order_relaxed)) == last)
            rt_yield();
        last = pid;
        struct rt_proc_info info;
        while (rt_proc_info(pid, &info) == 0 && info.status != RT_STATUS_WAITING)
            rt_yield();
        ck_assert_int_eq(rt_send(pid, rt_msg_new(T_DATA, 0)), 0);
        while (rt_is_alive(pid))
            rt_yield();
        rt_yield(); /* let its scheduler finish reaping it */
        ck_assert_int_eq(rt_spawn(reuse_nothing, NULL, NULL, NULL), 0);
        atomic_store_explicit(&reuse_round, round + 1, memory_order_relaxed);
    }
}

START_TEST(parking_scheduler_reads_nothing_of_a_process_once_published_waiting)
{
    rt_test_start(2);
    atomic_store(&reuse_pid, 0);
    atomic_store(&reuse_round, 0);
    rt_pid spawner, reaper;
    ck_assert_int_eq(rt_spawn(reuse_spawner, NULL, NULL, &spawner), 0);
    ck_assert_int_eq(rt_spawn(reuse_reaper, NULL, NULL, &reaper), 0);
    ck_assert_int_eq(rt_join(spawner, 60000, NULL), 0);
    ck_assert_int_eq(rt_join(reaper, 60000, NULL), 0);
    ck_assert_int_eq(atomic_load(&reuse_round), REUSE_ROUNDS);
    rt_test_stop();
}
END_TEST

START_TEST(runtime_restarts_cleanly_after_stop)
{
    for (int i = 0; i < 3; i++) {
        rt_test_start(2);
        atomic_store(&flag, 0);
        rt_test_run(set_flag, NULL);
        ck_assert_int_eq(atomic_load(&flag), 1);
        rt_test_stop();
    }
}
END_TEST

/* ---- the test harness ---- */

/* Fails on purpose with the runtime running (in a child only, below). */
START_TEST(inner_test_fails_with_the_runtime_running)
{
    rt_test_start(1);
    ck_abort_msg("failing on purpose");
}
END_TEST

START_TEST(inner_test_starts_the_runtime)
{
    rt_test_start(1);
    rt_test_stop();
}
END_TEST

/* Runs the two tests above the way valgrind runs tests, one after the other
 * in one process (CK_FORK=no), in a child so that the failure stays there:
 * the second must pass. */
START_TEST(a_failed_test_leaves_no_runtime_running_for_the_next)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        TTest const *tests[] = {inner_test_fails_with_the_runtime_running,
                                inner_test_starts_the_runtime};
        Suite *s = suite_create("inner");
        suite_add_tcase(s, rt_test_tcase("inner", tests, 2));
        SRunner *sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_NOFORK);
        srunner_run_all(sr, CK_SILENT);
        TestResult **res = srunner_results(sr);
        bool ok = srunner_ntests_run(sr) == 2 && tr_rtype(res[0]) == CK_FAILURE &&
                  tr_rtype(res[1]) == CK_PASS;
        free(res);
        srunner_free(sr);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

/* ---- exits wake only the threads waiting for them ---- */

static void exits_quietly(void *arg)
{
    (void)arg;
}

/* Spawns and awaits `*arg` children one after the other, then tells the
 * process the test joins to stop. */
static void churn_then_release(void *arg)
{
    rt_pid *pids = arg; /* [0]: cycles, [1]: the joined process */
    rt_sleep(20);       /* the test thread is in rt_join by then, mostly */
    for (rt_pid i = 0; i < pids[0]; i++) {
        rt_ref ref;
        struct rt_spawn_opts o = {.monitor = true, .monitor_ref = &ref};
        ck_assert_int_eq(rt_spawn(exits_quietly, NULL, &o, NULL), 0);
        rt_msg_free(rt_receive_ref(ref, rt_test_scaled(5000)));
    }
    rt_send(pids[1], rt_msg_new(T_STOP, 0));
}

static void waits_for_stop(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(RT_INFINITY));
}

START_TEST(exits_of_other_processes_do_not_wake_a_thread_in_rt_join)
{
    rt_test_start(1);
    static rt_pid args[2];
    args[0] = 2000;
    ck_assert_int_eq(rt_spawn(waits_for_stop, NULL, NULL, &args[1]), 0);
    ck_assert_int_eq(rt_spawn(churn_then_release, args, NULL, NULL), 0);
    uint64_t before = rt__test_exit_wakeups();
    ck_assert_int_eq(rt_join(args[1], rt_test_scaled(20000), NULL), 0);
    uint64_t wakeups = rt__test_exit_wakeups() - before;
    /* The joined process's own exit wakes the test thread (and, were it
     * the last one, any rt_wait_idle); the 2,000 other exits must not. */
    ck_assert_msg(wakeups <= 3, "%llu wake-ups of the joining thread for 2,000 other exits",
                  (unsigned long long)wakeups);
    rt_test_stop();
}
END_TEST

/* Spawns `*arg` children that exit at once, without waiting for them. */
static void spawns_many(void *arg)
{
    const long *n = arg;
    rt_sleep(20); /* the test thread is in rt_wait_idle by then, mostly */
    for (long i = 0; i < *n; i++)
        ck_assert_int_eq(rt_spawn(exits_quietly, NULL, NULL, NULL), 0);
}

START_TEST(exits_while_only_rt_wait_idle_waits_take_no_lock_until_the_last)
{
    static long n = 2000;
    rt_test_start(2);
    uint64_t before = rt__test_exit_locks();
    ck_assert_int_eq(rt_spawn(spawns_many, &n, NULL, NULL), 0);
    ck_assert_int_eq(rt_wait_idle(rt_test_scaled(20000)), 0);
    uint64_t locks = rt__test_exit_locks() - before;
    /* Only an exit that finds no process left has a waiter to wake: the
     * last one, and one on the other scheduler that read `live` after it. */
    ck_assert_msg(locks <= 2, "%llu exits of 2,001 took the waiters' lock",
                  (unsigned long long)locks);
    rt_test_stop();
}
END_TEST

/* ---- a join without a timeout of a pid with no exit to wait for ---- */

struct join_arg {
    rt_pid pid;
    _Atomic int rc;
    _Atomic int done;
};

static void *join_thread(void *arg)
{
    struct join_arg *ja = arg;
    atomic_store(&ja->rc, rt_join(ja->pid, RT_INFINITY, NULL));
    atomic_store(&ja->done, 1);
    return NULL;
}

/* Not alive and no exit on record: its exit is either being reported this
 * instant or will never be. rt_join waits a short while for the report
 * and then says the pid names nothing, timeout or not; it never sleeps on
 * a wake-up that may already have passed or never come. */
START_TEST(rt_join_without_timeout_of_a_pid_with_no_exit_to_wait_for_returns_esrch)
{
    rt_test_start(1);
    static struct join_arg ja;
    ja.pid = ((rt_pid)7 << 32) | 4321; /* a slot never used, a later generation */
    atomic_store(&ja.rc, 1);
    atomic_store(&ja.done, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, join_thread, &ja), 0);
    for (int i = 0; i < rt_test_scaled(5000) && !atomic_load(&ja.done); i++)
        usleep(1000);
    ck_assert_msg(atomic_load(&ja.done),
                  "rt_join(RT_INFINITY) of a pid that never ran still waits");
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&ja.rc), -ESRCH);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_sched", reduction_budget_lets_others_run_on_one_scheduler,
             watchdog_reports_a_process_holding_its_scheduler_by_name,
             send_after_delivers_on_time_and_cancel_prevents_delivery,
             timer_for_a_dead_process_is_dropped, sleep_parks_without_holding_the_scheduler,
             hibernate_drops_the_stack_and_resumes_on_next_message,
             a_hibernating_process_keeps_no_room_for_monitors_it_took_back,
             a_hibernating_process_with_one_link_keeps_it_without_the_lists_block,
             a_solo_link_can_be_taken_off_and_another_made_after_hibernation,
             hibernate_poll_resumes_without_a_stack_on_readiness_or_timeout,
             stack_overflow_at_a_runtime_call_ends_only_that_process,
             stack_overflow_between_runtime_calls_aborts_with_a_report_naming_the_process,
             spawn_stack_size_gives_the_process_that_much_stack,
             blocking_call_runs_off_scheduler_while_others_keep_running,
             on_scheduler_true_in_processes_false_on_blocking_pool_and_main,
             memory_and_cleanups_of_a_killed_process_are_released,
             snapshot_lists_every_process_with_its_figures,
             detail_text_is_cut_at_127_bytes_and_replaced_whole,
             application_kinds_are_registered_by_name_and_reported_up_to_the_bound,
             read_and_write_park_until_ready_and_time_out, accept_and_connect_over_loopback_tcp,
             poll_wakes_on_message_when_asked, process_parked_on_io_is_killed_by_an_exit_signal,
             two_waiters_on_their_own_descriptors_of_one_socket_both_wake,
             many_senders_on_all_schedulers_keep_per_sender_order,
             spawn_and_exit_storm_leaves_nothing_behind,
             parking_scheduler_reads_nothing_of_a_process_once_published_waiting,
             runtime_restarts_cleanly_after_stop,
             a_failed_test_leaves_no_runtime_running_for_the_next,
             exits_of_other_processes_do_not_wake_a_thread_in_rt_join,
             exits_while_only_rt_wait_idle_waits_take_no_lock_until_the_last,
             rt_join_without_timeout_of_a_pid_with_no_exit_to_wait_for_returns_esrch)
