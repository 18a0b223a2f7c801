/*
 * test_monitor_name.c: monitors on a registered name (erlang:monitor(process,
 * RegName), OTP-SEMANTICS §1.1 "A monitor by registered name is allowed").
 * Tandem has no nodes: the DOWN's name form is the name alone.
 */
#include "rt_test.h"

enum { T_GO = 1, T_UNREGISTER, T_DONE };

/* Waits for orders: T_UNREGISTER drops its name, T_GO exits with the
 * reason in the message. */
static void holder(void *arg)
{
    (void)arg;
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        uint32_t type = m->type;
        uint64_t v = m->u64;
        rt_msg_free(m);
        if (type == T_UNREGISTER) {
            struct rt_proc_info info;
            ck_assert_int_eq(rt_proc_info(rt_self(), &info), 0);
            ck_assert_int_eq(rt_unregister(info.name), 0);
            rt_send((rt_pid)v, rt_msg_new(T_DONE, 0));
        } else if (type == T_GO) {
            rt_exit((rt_atom)v);
        }
    }
}

static rt_pid spawn_holder(const char *name)
{
    rt_pid pid = 0;
    struct rt_spawn_opts so = {.name = name};
    ck_assert_int_eq(rt_spawn(holder, NULL, &so, &pid), 0);
    return pid;
}

static void stop_holder(rt_pid pid, const char *reason)
{
    rt_send(pid, msg_u64(T_GO, rt_atom_intern(reason)));
}

/* ---- the DOWN carries the name ---------------------------------------------------- */

static void down_name_body(void *arg)
{
    (void)arg;
    rt_pid a = spawn_holder("svc");
    rt_ref ref = rt_monitor_name("svc");
    ck_assert_uint_ne(ref, 0);
    stop_holder(a, "went_away");
    struct rt_msg *d = rt_receive_ref(ref, 5000);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(d->type, RT_MSG_DOWN);
    ck_assert_ptr_nonnull(rt_down_name(d));
    ck_assert_str_eq(rt_down_name(d), "svc");
    ck_assert_uint_eq(d->from, a);
    ck_assert_str_eq(rt_atom_name((rt_atom)d->u64), "went_away");
    rt_msg_free(d);
    ck_assert_ptr_null(rt_receive(50)); /* exactly one DOWN */
    /* A monitor by pid keeps the plain form. */
    rt_pid b = spawn_holder(NULL);
    rt_ref r2 = rt_monitor(b);
    stop_holder(b, "bye");
    d = rt_receive_ref(r2, 5000);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_null(rt_down_name(d));
    rt_msg_free(d);
}

START_TEST(monitor_by_name_delivers_a_down_carrying_the_name)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(down_name_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

/* ---- no such name -------------------------------------------------------------------- */

static void noproc_body(void *arg)
{
    (void)arg;
    rt_ref ref = rt_monitor_name("nobody_here");
    ck_assert_uint_ne(ref, 0);
    struct rt_msg *d = rt_receive_ref(ref, 0); /* already there: no wait */
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(d->type, RT_MSG_DOWN);
    ck_assert_uint_eq(d->u64, RT_NOPROC);
    ck_assert_uint_eq(d->from, 0);
    ck_assert_str_eq(rt_down_name(d), "nobody_here");
    rt_msg_free(d);
    ck_assert_ptr_null(rt_receive(20));
    /* Names the registry would refuse are refused here too. */
    ck_assert_uint_eq(rt_monitor_name(""), 0);
    ck_assert_uint_eq(rt_monitor_name(NULL), 0);
    char longname[80];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ck_assert_uint_eq(rt_monitor_name(longname), 0);
}

START_TEST(monitor_by_name_of_an_unregistered_name_delivers_noproc_at_once)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(noproc_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

/* ---- it follows the process, not the name ---------------------------------------------- */

static void follows_body(void *arg)
{
    (void)arg;
    rt_pid a = spawn_holder("svc");
    rt_ref ref = rt_monitor_name("svc");
    /* a gives the name up and b takes it: the monitor stays on a. */
    rt_send(a, msg_u64(T_UNREGISTER, rt_self()));
    rt_msg_free(recv_type(T_DONE, 5000));
    rt_pid b = spawn_holder("svc");
    ck_assert_uint_eq(rt_whereis("svc"), b);
    stop_holder(b, "b_exit");
    wait_until_dead(b);
    ck_assert_ptr_null(rt_receive_ref(ref, 50));
    stop_holder(a, "a_exit");
    struct rt_msg *d = rt_receive_ref(ref, 5000);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(d->from, a);
    ck_assert_str_eq(rt_atom_name((rt_atom)d->u64), "a_exit");
    ck_assert_str_eq(rt_down_name(d), "svc");
    rt_msg_free(d);

    /* Re-registered after the first holder died: the old monitor has fired
     * and a new holder's exit brings nothing. */
    rt_pid c = spawn_holder("svc");
    stop_holder(c, "c_exit");
    wait_until_dead(c);
    ck_assert_ptr_null(rt_receive(50));
}

START_TEST(monitor_by_name_follows_the_process_registered_at_the_call)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(follows_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

/* ---- demonitor and exit release the monitor --------------------------------------------- */

static void demonitor_body(void *arg)
{
    (void)arg;
    rt_pid a = spawn_holder("svc");
    /* Removed monitors leave nothing behind: 100 of them cost no message. */
    struct rt_system_info si;
    ck_assert_int_eq(rt_system_info(&si), 0);
    uint64_t live0 = si.messages_live;
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(rt_demonitor(rt_monitor_name("svc"), false), 0);
    rt_sleep(20); /* the holder has handled the monitor signals */
    ck_assert_int_eq(rt_system_info(&si), 0);
    ck_assert_uint_lt(si.messages_live, live0 + 50);
    rt_ref ref = rt_monitor_name("svc");
    ck_assert_int_eq(rt_demonitor(ref, false), 0);
    stop_holder(a, "bye");
    wait_until_dead(a);
    ck_assert_ptr_null(rt_receive(50));
    /* A noproc DOWN still queued goes with flush. */
    ref = rt_monitor_name("svc");
    ck_assert_int_eq(rt_demonitor(ref, true), 0);
    ck_assert_ptr_null(rt_receive(20));
    /* Left outstanding at exit: released with the process (rt_test_stop
     * checks that no message is left alive). */
    rt_pid b = spawn_holder("other");
    ck_assert_uint_ne(rt_monitor_name("other"), 0);
    stop_holder(b, "bye");
}

START_TEST(demonitor_of_a_name_monitor_removes_it_and_exit_releases_it)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(demonitor_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_monitor_name", monitor_by_name_delivers_a_down_carrying_the_name,
             monitor_by_name_of_an_unregistered_name_delivers_noproc_at_once,
             monitor_by_name_follows_the_process_registered_at_the_call,
             demonitor_of_a_name_monitor_removes_it_and_exit_releases_it)
