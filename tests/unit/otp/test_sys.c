/* test_sys.c: system messages answered by every behaviour (OTP-SEMANTICS
 * §1.6). Tandem's get_state returns the state pointer (no term copy);
 * log_to_file and install/remove of debug funs are not provided. */
#include <errno.h>

#include "otp_test.h"
#include "rt/gen_server.h"
#include "rt/gen_statem.h"
#include "rt/supervisor.h"
#include "rt/sys.h"

struct counter {
    int n;
    int vsn;
};

static atomic_int terminated;
static atomic_int code_changed;

static atomic_int traced;
static atomic_int fun_calls;

static void t_reset(void)
{
    atomic_store(&terminated, 0);
    atomic_store(&code_changed, 0);
    atomic_store(&traced, 0);
    atomic_store(&fun_calls, 0);
}

static void c_init(void *arg, struct rt_gs_result *r)
{
    struct counter *c = rt_calloc(1, sizeof *c);
    r->state = c;
    if (arg)
        rt_trap_exit(true);
}

static void c_cast(struct rt_msg *m, void *state, struct rt_gs_result *r)
{
    ((struct counter *)state)->n += t_int(m);
    if (t_int(m) < 0)
        rt_gs_hibernate(r);
}

static void c_call(struct rt_msg *m, const struct rt_gs_from *from, void *state,
                   struct rt_gs_result *r)
{
    rt_gs_reply(r, t_int_msg(0, ((struct counter *)state)->n));
}

static void c_terminate(rt_atom reason, void *state)
{
    atomic_store(&terminated, (int)reason);
}

static int c_code_change(const char *old_vsn, void *state, const void *extra, void **new_state)
{
    struct counter *c = state;
    c->vsn = 2;
    atomic_store(&code_changed, 1);
    *new_state = c;
    return 0;
}

static size_t c_format(const void *state, char *buf, size_t len)
{
    return (size_t)snprintf(buf, len, "count=%d", ((const struct counter *)state)->n);
}

static const struct rt_gen_server_ops c_ops = {
    .name = "counter",
    .init = c_init,
    .handle_call = c_call,
    .handle_cast = c_cast,
    .terminate = c_terminate,
    .code_change = c_code_change,
    .format_status = c_format,
};

static rt_pid start_counter(const struct rt_start_opts *o)
{
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start_link(&c_ops, NULL, o, &pid, NULL), 0);
    return pid;
}

static int value(rt_pid pid)
{
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_server_call(pid, rt_msg_new(1, 0), 1000, &rep, NULL), 0);
    int v = t_int(rep);
    rt_msg_free(rep);
    return v;
}

static void stop(rt_pid pid)
{
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5000, NULL), 0);
}

static void b_get_state(void)
{
    rt_pid pid = start_counter(NULL);
    rt_gen_server_cast(pid, t_int_msg(1, 4));
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_EQ(((struct counter *)st.state)->n, 4);
    stop(pid);
}
START_TEST(sys_get_state_returns_the_gen_server_state)
{
    t_run(b_get_state, true);
}
END_TEST

static int add_ten(void *state, int *statem_state, void *arg, void **new_state)
{
    struct counter *c = state;
    c->n += *(int *)arg;
    *new_state = c;
    return 0;
}

static int failing_clean(void *state, int *statem_state, void *arg, void **new_state)
{
    *new_state = NULL;
    return -EINVAL;
}

static void b_replace(void)
{
    rt_pid pid = start_counter(NULL);
    rt_gen_server_cast(pid, t_int_msg(1, 1));
    int ten = 10;
    struct rt_sys_state st;
    T_EQ(rt_sys_replace_state(pid, add_ten, &ten, sizeof ten, 1000, &st), 0);
    T_EQ(((struct counter *)st.state)->n, 11);
    T_EQ(value(pid), 11);
    T_EQ(rt_sys_replace_state(pid, failing_clean, NULL, 0, 1000, &st), -ECANCELED);
    T_EQ(value(pid), 11); /* state pointer unchanged */
    stop(pid);
}
START_TEST(sys_replace_state_returns_the_new_state_and_a_failing_one_changes_nothing)
{
    t_run(b_replace, true);
}
END_TEST

static void b_suspend(void)
{
    rt_pid pid = start_counter(NULL);
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    rt_gen_server_cast(pid, t_int_msg(1, 1));
    rt_gen_server_cast(pid, t_int_msg(1, 2));
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0); /* answered while suspended */
    T_EQ(((struct counter *)st.state)->n, 0);  /* the casts stay queued */
    struct rt_sys_status ss;
    T_EQ(rt_sys_get_status(pid, 1000, &ss), 0);
    T_EQ(ss.status, RT_SYS_SUSPENDED);
    /* Let the server drain the demonitor signal of the last sys call: the
     * snapshot's mailbox_len counts signals still in its inbox. */
    rt_sleep(20);
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(pid, &pi), 0);
    T_EQ(pi.mailbox_len, 2);
    T_EQ(rt_sys_resume(pid, 1000), 0);
    T_EQ(value(pid), 3);
    stop(pid);
}
START_TEST(sys_suspend_queues_other_messages_until_resume)
{
    t_run(b_suspend, true);
}
END_TEST

static void mid(void *arg)
{
    rt_pid pid = 0;
    rt_gen_server_start_link(&c_ops, (void *)1, NULL, &pid, NULL);
    *(rt_pid *)arg = pid;
    rt_receive(RT_INFINITY);
}
static void b_suspend_parent_exit(void)
{
    rt_pid *slot = rt_calloc(1, sizeof *slot);
    rt_pid m = 0;
    T_EQ(rt_spawn(mid, slot, NULL, &m), 0);
    while (!*(volatile rt_pid *)slot)
        rt_sleep(1);
    rt_pid pid = *slot;
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    rt_ref mref = rt_monitor(pid);
    rt_exit_signal(m, RT_SHUTDOWN);
    struct rt_msg *d = rt_receive_ref(mref, 2000);
    T_ASSERT(d);
    T_EQ(d->u64, RT_SHUTDOWN);
    rt_msg_free(d);
    T_EQ(atomic_load(&terminated), RT_SHUTDOWN);
}
START_TEST(sys_suspended_server_still_terminates_on_its_parents_exit)
{
    t_run(b_suspend_parent_exit, true);
}
END_TEST

static void b_hibernated(void)
{
    rt_pid pid = start_counter(NULL);
    rt_gen_server_cast(pid, t_int_msg(1, -1)); /* hibernates */
    rt_sleep(30);
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(pid, &pi), 0);
    T_EQ(pi.status, RT_STATUS_HIBERNATING);
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_EQ(((struct counter *)st.state)->n, -1);
    T_EQ(rt_sys_resume(pid, 1000), 0);
    stop(pid);
}
START_TEST(sys_messages_are_answered_by_a_hibernated_server)
{
    t_run(b_hibernated, true);
}
END_TEST

static void b_status(void)
{
    rt_pid pid = start_counter(NULL);
    rt_gen_server_cast(pid, t_int_msg(1, 7));
    struct rt_sys_status ss;
    T_EQ(rt_sys_get_status(pid, 1000, &ss), 0);
    T_EQ(ss.pid, pid);
    T_EQ(ss.parent, rt_self());
    T_EQ(ss.status, RT_SYS_RUNNING);
    T_ASSERT(strcmp(ss.module, "counter") == 0);
    T_ASSERT(strcmp(ss.behaviour, "gen_server") == 0);
    T_ASSERT(strcmp(ss.formatted, "count=7") == 0); /* format_status applied */
    stop(pid);
}
START_TEST(sys_get_status_reports_module_parent_status_and_formatted_state)
{
    t_run(b_status, true);
}
END_TEST

static void b_statistics(void)
{
    rt_pid pid = start_counter(NULL);
    struct rt_sys_statistics s;
    T_EQ(rt_sys_statistics(pid, RT_SYS_GET, 1000, &s), -ENODATA); /* no_statistics */
    T_EQ(rt_sys_statistics(pid, RT_SYS_ON, 1000, NULL), 0);
    rt_gen_server_cast(pid, t_int_msg(1, 1));
    rt_gen_server_cast(pid, t_int_msg(1, 1));
    T_EQ(value(pid), 2);
    T_EQ(rt_sys_statistics(pid, RT_SYS_GET, 1000, &s), 0);
    T_EQ(s.messages_in, 3);
    T_EQ(s.messages_out, 1);
    T_ASSERT(s.current_time_ms >= s.start_time_ms && s.start_time_ms > 0);
    T_EQ(rt_sys_statistics(pid, RT_SYS_OFF, 1000, NULL), 0);
    T_EQ(rt_sys_statistics(pid, RT_SYS_GET, 1000, &s), -ENODATA);
    stop(pid);
}
START_TEST(sys_statistics_count_messages_in_and_out_while_enabled)
{
    t_run(b_statistics, true);
}
END_TEST

static void b_log(void)
{
    rt_pid pid = start_counter(NULL);
    T_EQ(rt_sys_log(pid, true, 3, 1000), 0);
    for (int i = 0; i < 5; i++)
        rt_gen_server_cast(pid, t_int_msg(10 + i, 1));
    T_EQ(value(pid), 5);
    struct rt_sys_event evs[8];
    size_t n = 0;
    T_EQ(rt_sys_log_get(pid, evs, 8, &n, 1000), 0);
    T_EQ(n, 3); /* ring of the last 3: {noreply} of cast 5, {in} call, {out} reply */
    T_EQ(evs[0].kind, RT_SYS_EV_NOREPLY);
    T_EQ(evs[1].kind, RT_SYS_EV_IN);
    T_EQ(evs[1].msg_type, 1);
    T_EQ(evs[1].peer, rt_self());
    T_EQ(evs[2].kind, RT_SYS_EV_OUT);
    T_EQ(rt_sys_log(pid, false, 0, 1000), 0);
    T_EQ(rt_sys_log_get(pid, evs, 8, &n, 1000), 0);
    T_EQ(n, 0);
    stop(pid);
    /* Debug options at start: log with the default size of 10. */
    struct rt_start_opts o = {.debug = RT_DEBUG_LOG};
    pid = start_counter(&o);
    for (int i = 0; i < 20; i++)
        rt_gen_server_cast(pid, t_int_msg(1, 1));
    T_EQ(value(pid), 20);
    T_EQ(rt_sys_log_get(pid, evs, 8, &n, 1000), 0);
    T_EQ(n, RT_SYS_LOG_DEFAULT);
    T_EQ(rt_sys_no_debug(pid, 1000), 0);
    T_EQ(rt_sys_log_get(pid, evs, 8, &n, 1000), 0);
    T_EQ(n, 0);
    stop(pid);
}
START_TEST(sys_log_keeps_a_ring_of_the_last_n_events)
{
    t_run(b_log, true);
}
END_TEST

static void count_trace(enum rt_log_level level, const char *msg, void *ctx)
{
    if (strstr(msg, "sys trace"))
        atomic_fetch_add(&traced, 1);
}
static void b_trace(void)
{
    rt_set_log_handler(count_trace, NULL);
    rt_pid pid = start_counter(NULL);
    rt_gen_server_cast(pid, t_int_msg(1, 1));
    T_EQ(value(pid), 1);
    T_EQ(atomic_load(&traced), 0);
    T_EQ(rt_sys_trace(pid, true, 1000), 0);
    rt_gen_server_cast(pid, t_int_msg(1, 1));
    T_EQ(value(pid), 2);
    T_EQ(atomic_load(&traced), 4); /* in+noreply for the cast, in+out for the call */
    T_EQ(rt_sys_trace(pid, false, 1000), 0);
    T_EQ(value(pid), 2);
    T_EQ(atomic_load(&traced), 4);
    stop(pid);
    rt_set_log_handler(NULL, NULL);
}
START_TEST(sys_trace_reports_every_event_while_on)
{
    t_run(b_trace, true);
}
END_TEST

static void b_terminate(void)
{
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start(&c_ops, NULL, NULL, &pid, NULL), 0);
    T_EQ(rt_sys_terminate(pid, rt_atom_intern("shutdown:sys"), 1000), 0);
    T_ASSERT(!rt_is_alive(pid));
    T_EQ(atomic_load(&terminated), rt_atom_intern("shutdown:sys"));
}
START_TEST(sys_terminate_runs_the_behaviours_terminate)
{
    t_run(b_terminate, true);
}
END_TEST

static void b_change_code(void)
{
    rt_pid pid = start_counter(NULL);
    T_EQ(rt_sys_change_code(pid, "1", NULL, 0, 1000), -EBUSY);
    T_EQ(atomic_load(&code_changed), 0);
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    T_EQ(rt_sys_change_code(pid, "1", NULL, 0, 1000), 0);
    T_EQ(atomic_load(&code_changed), 1);
    T_EQ(rt_sys_resume(pid, 1000), 0);
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_EQ(((struct counter *)st.state)->vsn, 2);
    stop(pid);
}
START_TEST(sys_change_code_is_only_honoured_while_suspended)
{
    t_run(b_change_code, true);
}
END_TEST

static const struct rt_gen_server_ops no_cc_ops = {
    .name = "counter_without_code_change",
    .init = c_init,
    .handle_call = c_call,
    .handle_cast = c_cast,
};
static void b_change_code_undef(void)
{
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start_link(&no_cc_ops, NULL, NULL, &pid, NULL), 0);
    rt_gen_server_cast(pid, t_int_msg(1, 5));
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    /* OTP: {error, {'EXIT', {undef, ...}}}; the server runs on unchanged. */
    T_EQ(rt_sys_change_code(pid, "1", NULL, 0, 1000), -ENOSYS);
    T_EQ(rt_sys_resume(pid, 1000), 0);
    T_EQ(value(pid), 5);
    stop(pid);
}
START_TEST(sys_change_code_without_code_change_fails_with_undef)
{
    t_run(b_change_code_undef, true);
}
END_TEST

static void op_get_state(void *ctx)
{
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(*(rt_pid *)ctx, 5000, &st), 0);
}
static void b_deep_sys(void)
{
    rt_pid pid = start_counter(NULL);
    t_assert_cost_independent_of_queue(op_get_state, &pid);
    stop(pid);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(sys_call_costs_the_same_whatever_the_caller_has_queued)
{
    t_run(b_deep_sys, true);
}
END_TEST

static void plain(void *arg)
{
    rt_msg_free(rt_receive(RT_INFINITY));
}
static void b_plain(void)
{
    rt_pid p = 0;
    T_EQ(rt_spawn(plain, NULL, NULL, &p), 0);
    struct rt_sys_state st;
    /* A process that is not a behaviour... here it takes the first message
     * and exits, so the caller sees it die; a fully ignoring one times out. */
    int rc = rt_sys_get_state(p, 100, &st);
    T_ASSERT(rc == -ETIMEDOUT || rc == -ECONNRESET);
    T_EQ(rt_sys_get_state(p, 100, &st), -ESRCH);
}
START_TEST(sys_call_to_a_process_that_does_not_answer_fails)
{
    t_run(b_plain, true);
}
END_TEST

static bool count_until(const struct rt_sys_event *ev, void *arg)
{
    /* Runs in the server; arg is its own copy of the installer's int. */
    int limit = *(int *)arg;
    return atomic_fetch_add(&fun_calls, 1) + 1 >= limit;
}
static void b_install(void)
{
    rt_pid pid = start_counter(NULL);
    int limit = 3;
    T_EQ(rt_sys_install(pid, count_until, &limit, sizeof limit, 1000), 0);
    limit = 1000; /* the target has a copy */
    for (int i = 0; i < 5; i++)
        rt_gen_server_cast(pid, t_int_msg(1, 1));
    T_EQ(value(pid), 5);
    T_EQ(atomic_load(&fun_calls), 3); /* returned done on its third event */
    T_EQ(rt_sys_remove(pid, count_until, 1000), -ENOENT);
    T_EQ(rt_sys_install(pid, count_until, &limit, sizeof limit, 1000), 0);
    rt_gen_server_cast(pid, t_int_msg(1, 1));
    T_EQ(value(pid), 6);
    T_EQ(atomic_load(&fun_calls), 7); /* in+noreply of the cast, in+out of the call */
    T_EQ(rt_sys_remove(pid, count_until, 1000), 0);
    T_EQ(value(pid), 6);
    T_EQ(atomic_load(&fun_calls), 7);
    stop(pid);
}
START_TEST(sys_install_runs_a_debug_function_until_it_returns_done_or_is_removed)
{
    t_run(b_install, true);
}
END_TEST

/* gen_statem: get_state gives {State, Data}. */
static void sm_init(void *arg, struct rt_statem_result *r)
{
    static int data = 5;
    rt_sm_init_ok(r, 1, &data);
}
static void sm_handle(struct rt_statem_event *ev, int state, void *data, struct rt_statem_result *r)
{
}
static const char *const sm_names[] = {"idle", "busy"};
static const struct rt_gen_statem_ops sm_ops = {
    .name = "machine",
    .mode = RT_HANDLE_EVENT_FUNCTION,
    .init = sm_init,
    .handle_event = sm_handle,
    .n_states = 2,
    .state_names = sm_names,
};
static int to_idle(void *state, int *statem_state, void *arg, void **new_state)
{
    *statem_state = 0;
    *new_state = state;
    return 0;
}
static void b_statem(void)
{
    rt_pid pid = 0;
    T_EQ(rt_gen_statem_start_link(&sm_ops, NULL, NULL, &pid, NULL), 0);
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_EQ(st.statem_state, 1);
    T_ASSERT(strcmp(st.state_name, "busy") == 0);
    T_EQ(*(int *)st.state, 5);
    struct rt_sys_status ss;
    T_EQ(rt_sys_get_status(pid, 1000, &ss), 0);
    T_ASSERT(strcmp(ss.behaviour, "gen_statem") == 0);
    T_ASSERT(strcmp(ss.state_name, "busy") == 0);
    T_EQ(rt_sys_replace_state(pid, to_idle, NULL, 0, 1000, &st), 0);
    T_EQ(st.statem_state, 0);
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(pid, &pi), 0);
    T_ASSERT(strcmp(pi.state, "idle") == 0);
    T_EQ(pi.kind, RT_KIND_STATEM);
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_EQ(rt_sys_resume(pid, 1000), 0);
    T_EQ(rt_gen_statem_stop(pid, RT_NORMAL, 1000, NULL), 0);
}
START_TEST(sys_get_state_of_a_gen_statem_gives_state_and_data)
{
    t_run(b_statem, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sys");
    TCase *tc = tcase_create("sys");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, sys_get_state_returns_the_gen_server_state);
    tcase_add_test(tc, sys_replace_state_returns_the_new_state_and_a_failing_one_changes_nothing);
    tcase_add_test(tc, sys_suspend_queues_other_messages_until_resume);
    tcase_add_test(tc, sys_suspended_server_still_terminates_on_its_parents_exit);
    tcase_add_test(tc, sys_messages_are_answered_by_a_hibernated_server);
    tcase_add_test(tc, sys_get_status_reports_module_parent_status_and_formatted_state);
    tcase_add_test(tc, sys_statistics_count_messages_in_and_out_while_enabled);
    tcase_add_test(tc, sys_log_keeps_a_ring_of_the_last_n_events);
    tcase_add_test(tc, sys_trace_reports_every_event_while_on);
    tcase_add_test(tc, sys_terminate_runs_the_behaviours_terminate);
    tcase_add_test(tc, sys_change_code_is_only_honoured_while_suspended);
    tcase_add_test(tc, sys_change_code_without_code_change_fails_with_undef);
    tcase_add_test(tc, sys_call_costs_the_same_whatever_the_caller_has_queued);
    tcase_add_test(tc, sys_call_to_a_process_that_does_not_answer_fails);
    tcase_add_test(tc, sys_get_state_of_a_gen_statem_gives_state_and_data);
    tcase_add_test(tc, sys_install_runs_a_debug_function_until_it_returns_done_or_is_removed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
