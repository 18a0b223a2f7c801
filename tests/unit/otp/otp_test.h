/*
 * otp_test.h: harness shared by the OTP behaviour tests.
 *
 * Each test body runs inside a process (behaviour calls need process
 * context). Assertions inside processes record the first failure and exit
 * the process instead of calling Check from a scheduler thread; the main
 * thread then reports it, waits for every process to be gone and asserts
 * that rt_stop() had nothing left to kill.
 */
#ifndef OTP_TEST_H
#define OTP_TEST_H

#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "rt/rt.h"

#if defined(__SANITIZE_ADDRESS__)
/* Workaround for a runtime issue: a recycled process stack keeps the ASan
 * shadow of the frames its previous process abandoned (exit paths never
 * return), which shows up as "unknown-crash" on valid stack writes. With
 * fake stacks for frames (detect_stack_use_after_return) no frame lives on
 * the real stack. Remove once stacks are unpoisoned on reuse. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_stack_use_after_return=1";
}
#endif

static char t_failure[512];
static atomic_int t_failed;
static atomic_int t_body_done;

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (atomic_exchange(&t_failed, 1) == 0)                                                \
                snprintf(t_failure, sizeof t_failure, "%s:%d: %s", __FILE__, __LINE__, #c);        \
            rt_exit(rt_atom_intern("test_failed"));                                                \
        }                                                                                          \
    } while (0)

#define T_EQ(a, b) T_ASSERT((long long)(a) == (long long)(b))

static void (*t_body)(void);

/* Each test file resets its own globals here: with CK_FORK=no (valgrind)
 * all tests run in one process. */
static void t_reset(void);

static void t_runner(void *arg)
{
    (void)arg;
    t_body();
    atomic_store(&t_body_done, 1);
}

/* Runs `body` in a process on `schedulers` scheduler threads; asserts it
 * finished, that nothing stays alive (wait_idle) and that rt_stop had
 * nothing to kill when `clean`. */
static inline void t_run_on(void (*body)(void), bool clean, unsigned schedulers)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = schedulers;
    atomic_store(&t_failed, 0);
    atomic_store(&t_body_done, 0);
    t_failure[0] = 0;
    t_reset();
    ck_assert_int_eq(rt_start(&cfg), 0);
    t_body = body;
    rt_pid pid = 0;
    struct rt_spawn_opts so = {.initial_call = "test"};
    ck_assert_int_eq(rt_spawn(t_runner, NULL, &so, &pid), 0);
    rt_atom reason = 0;
    int jr = rt_join(pid, 30000, &reason);
    if (clean && jr == 0)
        rt_wait_idle(5000);
    int left = rt_stop();
    ck_assert_msg(!atomic_load(&t_failed), "%s", t_failure);
    ck_assert_int_eq(jr, 0);
    ck_assert_msg(atomic_load(&t_body_done), "test process exited: %s", rt_atom_name(reason));
    if (clean)
        ck_assert_int_eq(left, 0);
}

static inline void t_run(void (*body)(void), bool clean)
{
    t_run_on(body, clean, 2);
}

/* Process context: receives the next message matching type (and from, if
 * non-zero), or NULL after timeout_ms. */
struct t_match {
    uint32_t type;
    rt_pid from;
};

static bool t_match_fn(const struct rt_msg *m, void *ctx)
{
    const struct t_match *t = ctx;
    return m->type == t->type && (!t->from || m->from == t->from);
}

static inline struct rt_msg *t_recv(uint32_t type, rt_pid from, int64_t timeout_ms)
{
    struct t_match t = {type, from};
    return rt_receive_match(t_match_fn, &t, timeout_ms);
}

/* A message carrying one int. */
static inline struct rt_msg *t_int_msg(uint32_t type, int v)
{
    return rt_msg_copy(type, &v, sizeof v);
}

static inline int t_int(const struct rt_msg *m)
{
    int v = 0;
    if (m && m->size >= sizeof v)
        memcpy(&v, m->data, sizeof v);
    return v;
}

#define T_CASE(s, tc, fn)                                                                          \
    do {                                                                                           \
        tcase_add_test(tc, fn);                                                                    \
    } while (0)

#endif
