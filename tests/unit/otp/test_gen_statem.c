/* test_gen_statem.c: gen_statem (OTP-SEMANTICS §1.5). States are C ints;
 * callback_mode is fixed in the ops table (no code loading, so no
 * change_callback_module). */
#include <errno.h>
#include <pthread.h>

#include "otp_test.h"
#include "rt/gen_statem.h"
#include "rt/sys.h"

enum { S_A = 0, S_B = 1, S_C = 2 };

enum {
    C_GOTO = 1,
    C_KEEP,
    C_REPEAT,
    C_VAL,
    C_INSERT,
    C_STATE_TIMEOUT,
    C_EVENT_TIMEOUT,
    C_GENERIC,
    C_CANCEL_GENERIC,
    C_HIBERNATE,
    C_STATE_TIMEOUT_ZERO,
    C_UPDATE_STATE_TIMEOUT,
    C_GOTO_EVZERO,
    C_GOTO_INSERT,
    C_TWO_TIMEOUTS,
    C_ABS_TIMEOUT,
    C_ZERO_THEN_INSERT,
    C_INSERT_GEN_TO,
    Q_GET,
    Q_STOP,
    Q_DEFER,
    Q_FWD,
    Q_FWD2,
};

enum { L_ENTER = 1, L_VAL, L_STATE_TO, L_EV_TO, L_GEN_TO, L_INTERNAL, L_TERMINATE };

static atomic_int log_v[128];
static atomic_int log_n;
static void t_reset(void)
{
    atomic_store(&log_n, 0);
    for (int i = 0; i < 128; i++)
        atomic_store(&log_v[i], 0);
}

static void lg(int kind, int v)
{
    int i = atomic_fetch_add(&log_n, 1);
    if (i < 128)
        atomic_store(&log_v[i], kind * 1000 + v);
}
static int count(int kind)
{
    int n = 0;
    for (int i = 0; i < atomic_load(&log_n) && i < 128; i++)
        if (atomic_load(&log_v[i]) / 1000 == kind)
            n++;
    return n;
}
/* Index of the first entry kind*1000+v, or -1. */
static int find(int kind, int v)
{
    for (int i = 0; i < atomic_load(&log_n) && i < 128; i++)
        if (atomic_load(&log_v[i]) == kind * 1000 + v)
            return i;
    return -1;
}

struct data {
    struct rt_gs_from deferred;
    bool has_deferred;
    /* Entering S_A (1) sets a 50 ms state_timeout. Entering S_B: (2)
     * postpones (bad); (3) repeats once, each call setting a zero
     * state_timeout whose content is the call's number; (4) sets a zero
     * state_timeout and a zero event timeout. */
    int enter_mode;
    int enters;
};

struct init_arg {
    int mode; /* 0 ok, 1 ignore, 2 error, 3 stop */
    int enter_mode;
    int64_t event_timeout;
};

static rt_atom name_of(int i)
{
    return rt_atom_intern(i == 0 ? "t0" : "t1");
}

static void m_init(void *arg, struct rt_statem_result *r)
{
    const struct init_arg *a = arg;
    struct data *d = rt_calloc(1, sizeof *d);
    d->enter_mode = a->enter_mode;
    switch (a->mode) {
    case 1:
        rt_sm_ignore(r);
        return;
    case 2:
        rt_sm_error(r, rt_atom_intern("statem_error"));
        return;
    case 3:
        rt_sm_stop(r, rt_atom_intern("statem_stop"));
        return;
    }
    rt_sm_init_ok(r, S_A, d);
    if (a->event_timeout)
        rt_sm_event_timeout(r, a->event_timeout, NULL);
}

static void handle(struct rt_statem_event *ev, int state, void *data, struct rt_statem_result *r)
{
    struct data *d = data;
    int v = t_int(ev->msg);
    switch (ev->type) {
    case RT_EV_ENTER:
        lg(L_ENTER, ev->old_state * 10 + state);
        if (d->enter_mode == 1 && state == S_A)
            rt_sm_state_timeout(r, 50, NULL);
        if (d->enter_mode == 2 && state == S_B)
            rt_sm_postpone(r);
        if (d->enter_mode == 3 && state == S_B) {
            d->enters++;
            rt_sm_state_timeout(r, 0, t_int_msg(0, d->enters));
            if (d->enters == 1)
                rt_sm_repeat_state(r);
        }
        if (d->enter_mode == 4 && state == S_B) {
            rt_sm_state_timeout(r, 0, t_int_msg(0, 3));
            rt_sm_event_timeout(r, 0, NULL);
        }
        if (state == S_B && d->has_deferred) {
            d->has_deferred = false;
            rt_sm_reply(r, &d->deferred, t_int_msg(0, 500 + state));
        }
        return;
    case RT_EV_STATE_TIMEOUT:
        lg(L_STATE_TO, state * 10 + v);
        return;
    case RT_EV_TIMEOUT:
        lg(L_EV_TO, state);
        return;
    case RT_EV_GENERIC_TIMEOUT:
        lg(L_GEN_TO, ev->timeout_name == name_of(0) ? 0 : ev->timeout_name == name_of(1) ? 1 : 9);
        return;
    case RT_EV_INTERNAL:
        lg(L_INTERNAL, v);
        if (v == 60)
            rt_sm_state_timeout(r, 0, t_int_msg(0, 2)); /* restarts the queued zero one */
        return;
    case RT_EV_CALL:
        switch (ev->msg->type) {
        case Q_GET:
            rt_sm_reply(r, &ev->from, t_int_msg(0, state));
            return;
        case Q_STOP:
            rt_sm_stop_reply(r, RT_NORMAL, &ev->from, t_int_msg(0, 99));
            return;
        case Q_DEFER:
            d->deferred = ev->from;
            d->has_deferred = true;
            return;
        case Q_FWD: /* handled as another call, inserted with the same From */
            rt_sm_next_call(r, &ev->from, t_int_msg(Q_FWD2, v + 1));
            return;
        case Q_FWD2:
            rt_sm_reply(r, &ev->from, t_int_msg(0, 4000 + v));
            return;
        }
        return;
    case RT_EV_INFO:
        return;
    case RT_EV_CAST:
        break;
    }
    switch (ev->msg->type) {
    case C_GOTO:
        rt_sm_next_state(r, v);
        break;
    case C_KEEP:
        rt_sm_keep_state(r);
        break;
    case C_TWO_TIMEOUTS:
        /* Same timer type twice in one action list: the last one wins. */
        rt_sm_state_timeout(r, 1000, t_int_msg(0, 1));
        rt_sm_state_timeout(r, 30, t_int_msg(0, 3));
        break;
    case C_ABS_TIMEOUT:
        rt_sm_timer(r, RT_EV_STATE_TIMEOUT, 0, (int64_t)rt_now_ms() + 30, true, t_int_msg(0, 4));
        break;
    case C_GOTO_INSERT:
        rt_sm_next_state(r, v);
        rt_sm_next_event(r, RT_EV_INTERNAL, t_int_msg(0, 50));
        break;
    case C_ZERO_THEN_INSERT:
        rt_sm_state_timeout(r, 0, t_int_msg(0, 1));
        rt_sm_next_event(r, RT_EV_INTERNAL, t_int_msg(0, 60));
        break;
    case C_INSERT_GEN_TO:
        rt_sm_next_generic_timeout(r, name_of(v), NULL);
        break;
    case C_GOTO_EVZERO:
        rt_sm_next_state(r, v);
        rt_sm_event_timeout(r, 0, NULL);
        break;
    case C_REPEAT:
        rt_sm_repeat_state(r);
        break;
    case C_VAL:
        if (state == S_A)
            rt_sm_postpone(r);
        else
            lg(L_VAL, v);
        break;
    case C_INSERT:
        lg(L_VAL, v);
        rt_sm_next_event(r, RT_EV_INTERNAL, t_int_msg(0, v + 1));
        rt_sm_next_event(r, RT_EV_INTERNAL, t_int_msg(0, v + 2));
        break;
    case C_STATE_TIMEOUT:
        rt_sm_state_timeout(r, v, t_int_msg(0, 1));
        break;
    case C_STATE_TIMEOUT_ZERO:
        rt_sm_state_timeout(r, 0, t_int_msg(0, 2));
        break;
    case C_UPDATE_STATE_TIMEOUT:
        rt_sm_update_timer(r, RT_EV_STATE_TIMEOUT, 0, t_int_msg(0, 7));
        break;
    case C_EVENT_TIMEOUT:
        rt_sm_event_timeout(r, v, NULL);
        break;
    case C_GENERIC:
        rt_sm_generic_timeout(r, name_of(v / 1000), v % 1000, NULL);
        break;
    case C_CANCEL_GENERIC:
        rt_sm_cancel_timer(r, RT_EV_GENERIC_TIMEOUT, name_of(v));
        break;
    case C_HIBERNATE:
        rt_sm_hibernate(r);
        break;
    }
}

static void m_terminate(rt_atom reason, int state, void *data)
{
    lg(L_TERMINATE, state);
}

static const char *const names[] = {"a", "b", "c"};

static const struct rt_gen_statem_ops hops = {
    .name = "test_statem",
    .mode = RT_HANDLE_EVENT_FUNCTION,
    .state_enter = true,
    .init = m_init,
    .handle_event = handle,
    .n_states = 3,
    .state_names = names,
    .terminate = m_terminate,
};

static rt_pid start_m(int enter_mode, int64_t event_timeout)
{
    struct init_arg a = {0, enter_mode, event_timeout};
    rt_pid pid = 0;
    T_EQ(rt_gen_statem_start_link(&hops, &a, NULL, &pid, NULL), 0);
    return pid;
}

static void cast(rt_pid pid, uint32_t type, int v)
{
    rt_gen_statem_cast(pid, t_int_msg(type, v));
}

static int get_state(rt_pid pid)
{
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_statem_call(pid, rt_msg_new(Q_GET, 0), 1000, &rep, NULL), 0);
    int s = t_int(rep);
    rt_msg_free(rep);
    return s;
}

static void stop_m(rt_pid pid)
{
    T_EQ(rt_gen_statem_stop(pid, RT_NORMAL, 5000, NULL), 0);
}

/* ---- tests ------------------------------------------------------------------------- */

static void b_postpone(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_VAL, 1);
    cast(pid, C_VAL, 2);
    cast(pid, C_KEEP, 0);   /* keep_state: no retry */
    cast(pid, C_REPEAT, 0); /* repeat_state: no retry either */
    T_EQ(get_state(pid), S_A);
    T_EQ(count(L_VAL), 0);
    cast(pid, C_GOTO, S_B);
    cast(pid, C_VAL, 3);
    T_EQ(get_state(pid), S_B);
    /* Retried after the state change, in order, before the newer event. */
    T_EQ(count(L_VAL), 3);
    T_ASSERT(find(L_VAL, 1) < find(L_VAL, 2));
    T_ASSERT(find(L_VAL, 2) < find(L_VAL, 3));
    stop_m(pid);
}
START_TEST(gen_statem_postponed_events_are_retried_in_order_after_a_state_change_only)
{
    t_run(b_postpone, true);
}
END_TEST

static void b_enter(void)
{
    rt_pid pid = start_m(0, 0);
    T_EQ(get_state(pid), S_A);
    T_EQ(find(L_ENTER, S_A * 10 + S_A), 0); /* initial: old state = initial state */
    cast(pid, C_KEEP, 0);
    cast(pid, C_GOTO, S_A); /* next_state to the same state: no enter */
    T_EQ(get_state(pid), S_A);
    T_EQ(count(L_ENTER), 1);
    cast(pid, C_REPEAT, 0);
    T_EQ(get_state(pid), S_A);
    T_EQ(count(L_ENTER), 2);
    cast(pid, C_GOTO, S_B);
    T_EQ(get_state(pid), S_B);
    T_EQ(count(L_ENTER), 3);
    T_ASSERT(find(L_ENTER, S_A * 10 + S_B) >= 0);
    stop_m(pid);
}
START_TEST(gen_statem_state_enter_runs_on_initial_state_on_change_and_on_repeat_state)
{
    t_run(b_enter, true);
}
END_TEST

static void b_bad_enter(void)
{
    struct init_arg a = {0, 2, 0};
    rt_pid pid = 0;
    T_EQ(rt_gen_statem_start(&hops, &a, NULL, &pid, NULL), 0);
    rt_ref mref = rt_monitor(pid);
    cast(pid, C_GOTO, S_B);
    struct rt_msg *d = rt_receive_ref(mref, 1000);
    T_ASSERT(d);
    T_EQ(d->u64, rt_atom_intern("bad_state_enter_action_from_state_function"));
    rt_msg_free(d);
}
START_TEST(gen_statem_postpone_in_a_state_enter_call_is_an_error)
{
    t_run(b_bad_enter, true);
}
END_TEST

static void b_insert(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_GOTO, S_B);
    T_EQ(get_state(pid), S_B);
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    cast(pid, C_INSERT, 10);
    cast(pid, C_VAL, 20); /* already queued when the next_events are inserted */
    T_EQ(rt_sys_resume(pid, 1000), 0);
    T_EQ(get_state(pid), S_B);
    int i10 = find(L_VAL, 10), i11 = find(L_INTERNAL, 11), i12 = find(L_INTERNAL, 12),
        i20 = find(L_VAL, 20);
    T_ASSERT(i10 >= 0 && i10 < i11 && i11 < i12 && i12 < i20);
    stop_m(pid);
}
START_TEST(gen_statem_next_events_run_in_order_before_queued_external_events)
{
    t_run(b_insert, true);
}
END_TEST

static void b_state_timeout_cancel(void)
{
    rt_pid pid = start_m(1, 0); /* entering S_A starts a 50 ms state timeout */
    cast(pid, C_GOTO, S_B);
    T_EQ(get_state(pid), S_B);
    rt_sleep(120);
    T_EQ(get_state(pid), S_B);
    T_EQ(count(L_STATE_TO), 0);
    stop_m(pid);
}
START_TEST(gen_statem_state_timeout_is_cancelled_by_a_state_change)
{
    t_run(b_state_timeout_cancel, true);
}
END_TEST

static void b_state_timeout_keep(void)
{
    rt_pid pid = start_m(1, 0);
    rt_sleep(10);
    cast(pid, C_KEEP, 0);
    cast(pid, C_VAL, 1); /* postponed: an event, but no state change */
    rt_sleep(120);
    T_EQ(get_state(pid), S_A);
    T_EQ(count(L_STATE_TO), 1); /* survived keep_state and other events */
    stop_m(pid);
}
START_TEST(gen_statem_state_timeout_survives_keep_state_and_fires)
{
    t_run(b_state_timeout_keep, true);
}
END_TEST

static void b_event_timeout_cancel(void)
{
    rt_pid pid = start_m(0, 60); /* init starts a 60 ms event timeout */
    rt_sleep(20);
    cast(pid, C_KEEP, 0); /* any event cancels it */
    rt_sleep(120);
    T_EQ(get_state(pid), S_A);
    T_EQ(count(L_EV_TO), 0);
    cast(pid, C_EVENT_TIMEOUT, 30);
    rt_sleep(100);
    T_EQ(count(L_EV_TO), 1); /* fires when no event comes */
    stop_m(pid);
}
START_TEST(gen_statem_event_timeout_is_cancelled_by_any_event)
{
    t_run(b_event_timeout_cancel, true);
}
END_TEST

static void b_event_timeout_postponed(void)
{
    rt_pid pid = start_m(0, 0);
    /* Without queued events, an event time-out 0 fires at once. */
    cast(pid, C_GOTO_EVZERO, S_A);
    T_EQ(get_state(pid), S_A);
    T_EQ(count(L_EV_TO), 1);
    /* With a postponed event retried by the state change, that event
     * cancels it: no time-out event appears. */
    cast(pid, C_VAL, 1);
    cast(pid, C_GOTO_EVZERO, S_B);
    T_EQ(get_state(pid), S_B);
    T_EQ(find(L_VAL, 1) >= 0, 1);
    T_EQ(count(L_EV_TO), 1);
    stop_m(pid);
}
START_TEST(gen_statem_event_timeout_zero_is_cancelled_by_a_retried_postponed_event)
{
    t_run(b_event_timeout_postponed, true);
}
END_TEST

static void b_generic(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_GENERIC, 0 * 1000 + 60);
    cast(pid, C_GENERIC, 1 * 1000 + 60);
    cast(pid, C_GOTO, S_B); /* generic timeouts survive state changes */
    cast(pid, C_CANCEL_GENERIC, 1);
    rt_sleep(150);
    T_EQ(get_state(pid), S_B);
    T_EQ(count(L_GEN_TO), 1);
    T_ASSERT(find(L_GEN_TO, 0) >= 0);
    stop_m(pid);
}
START_TEST(gen_statem_named_generic_timeouts_survive_state_changes_and_can_be_cancelled)
{
    t_run(b_generic, true);
}
END_TEST

static void b_timeout_zero(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_GOTO, S_B);
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    cast(pid, C_STATE_TIMEOUT_ZERO, 0);
    cast(pid, C_VAL, 5);
    T_EQ(rt_sys_resume(pid, 1000), 0);
    T_EQ(get_state(pid), S_B);
    /* No timer: the time-out event comes before the not-yet-received cast. */
    T_ASSERT(find(L_STATE_TO, S_B * 10 + 2) >= 0);
    T_ASSERT(find(L_STATE_TO, S_B * 10 + 2) < find(L_VAL, 5));
    stop_m(pid);
}
START_TEST(gen_statem_timeout_zero_is_delivered_before_unreceived_external_events)
{
    t_run(b_timeout_zero, true);
}
END_TEST

static void b_update(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_GOTO, S_B);
    cast(pid, C_STATE_TIMEOUT, 50);
    cast(pid, C_UPDATE_STATE_TIMEOUT, 0); /* new content, same expiry */
    T_EQ(get_state(pid), S_B);
    T_EQ(count(L_STATE_TO), 0);
    rt_sleep(120);
    T_EQ(find(L_STATE_TO, S_B * 10 + 7) >= 0, 1);
    /* Not running: update delivers at once. */
    cast(pid, C_UPDATE_STATE_TIMEOUT, 0);
    T_EQ(get_state(pid), S_B);
    T_EQ(count(L_STATE_TO), 2);
    stop_m(pid);
}
START_TEST(gen_statem_timeout_update_keeps_the_expiry_or_fires_at_once_when_not_running)
{
    t_run(b_update, true);
}
END_TEST

static void deferred_caller(void *arg)
{
    rt_pid pid = *(rt_pid *)arg;
    struct rt_msg *rep = NULL;
    if (rt_gen_statem_call(pid, rt_msg_new(Q_DEFER, 0), 2000, &rep, NULL) == 0 &&
        t_int(rep) == 500 + S_B)
        lg(L_VAL, 77);
    rt_msg_free(rep);
}
static void b_reply_later(void)
{
    rt_pid pid = start_m(0, 0);
    rt_pid *p = rt_alloc(sizeof *p);
    *p = pid;
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(deferred_caller, p, &so, NULL), 0);
    rt_sleep(30);
    cast(pid, C_GOTO, S_B); /* the enter call of S_B replies */
    rt_msg_free(rt_receive_ref(mref, 3000));
    T_ASSERT(find(L_VAL, 77) >= 0);
    stop_m(pid);
}
START_TEST(gen_statem_reply_action_can_answer_from_a_later_state)
{
    t_run(b_reply_later, true);
}
END_TEST

static void b_stop_reply(void)
{
    rt_pid pid = start_m(0, 0);
    rt_ref mref = rt_monitor(pid);
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_statem_call(pid, rt_msg_new(Q_STOP, 0), 1000, &rep, NULL), 0);
    T_EQ(t_int(rep), 99);
    rt_msg_free(rep);
    struct rt_msg *d = rt_receive_ref(mref, 1000);
    T_ASSERT(d);
    T_EQ(d->u64, RT_NORMAL);
    rt_msg_free(d);
    T_EQ(count(L_TERMINATE), 1);
}
START_TEST(gen_statem_stop_and_reply_replies_and_terminates)
{
    t_run(b_stop_reply, true);
}
END_TEST

static void b_init_results(void)
{
    rt_trap_exit(true);
    rt_atom why = 0;
    struct init_arg a = {1, 0, 0};
    T_EQ(rt_gen_statem_start_link(&hops, &a, NULL, NULL, NULL), RT_IGNORE);
    a.mode = 2;
    T_EQ(rt_gen_statem_start_link(&hops, &a, NULL, NULL, &why), -ECHILD);
    T_EQ(why, rt_atom_intern("statem_error"));
    a.mode = 3;
    T_EQ(rt_gen_statem_start_link(&hops, &a, NULL, NULL, &why), -ECHILD);
    T_EQ(why, rt_atom_intern("statem_stop"));
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_statem_init_ignore_error_and_stop_are_reported_to_the_starter)
{
    t_run(b_init_results, true);
}
END_TEST

static void b_hibernate(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_GOTO, S_C);
    cast(pid, C_HIBERNATE, 0);
    rt_sleep(50);
    struct rt_proc_info info;
    T_EQ(rt_proc_info(pid, &info), 0);
    T_EQ(info.status, RT_STATUS_HIBERNATING);
    T_ASSERT(strcmp(info.state, "c") == 0); /* state name in the snapshot */
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_EQ(st.statem_state, S_C);
    T_ASSERT(strcmp(st.state_name, "c") == 0);
    T_EQ(get_state(pid), S_C);
    stop_m(pid);
}
START_TEST(gen_statem_hibernate_action_wakes_with_state_and_data)
{
    t_run(b_hibernate, true);
}
END_TEST

/* state_functions mode: one function per state. */
static void sf_locked(struct rt_statem_event *ev, int state, void *data, struct rt_statem_result *r)
{
    if (ev->type == RT_EV_CALL) {
        rt_sm_postpone(r);
        return;
    }
    if (ev->type == RT_EV_CAST)
        rt_sm_next_state(r, 1);
}
static void sf_open(struct rt_statem_event *ev, int state, void *data, struct rt_statem_result *r)
{
    if (ev->type == RT_EV_CALL)
        rt_sm_reply(r, &ev->from, t_int_msg(0, 1234));
}
static void sf_init(void *arg, struct rt_statem_result *r)
{
    rt_sm_init_ok(r, 0, NULL);
}
static const rt_sm_state_fn sf_states[] = {sf_locked, sf_open};
static const struct rt_gen_statem_ops sf_ops = {
    .mode = RT_STATE_FUNCTIONS,
    .init = sf_init,
    .state_functions = sf_states,
    .n_states = 2,
};
static void sf_caller(void *arg)
{
    rt_pid pid = *(rt_pid *)arg;
    struct rt_msg *rep = NULL;
    if (rt_gen_statem_call(pid, rt_msg_new(1, 0), 2000, &rep, NULL) == 0 && t_int(rep) == 1234)
        lg(L_VAL, 1234);
    rt_msg_free(rep);
}
static void b_state_functions(void)
{
    rt_pid pid = 0;
    T_EQ(rt_gen_statem_start_link(&sf_ops, NULL, NULL, &pid, NULL), 0);
    rt_pid *p = rt_alloc(sizeof *p);
    *p = pid;
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(sf_caller, p, &so, NULL), 0);
    rt_sleep(30);
    T_EQ(count(L_VAL), 0); /* the call is postponed while locked */
    rt_gen_statem_cast(pid, rt_msg_new(1, 0));
    rt_msg_free(rt_receive_ref(mref, 3000));
    T_ASSERT(find(L_VAL, 1234) >= 0);
    stop_m(pid);
}
START_TEST(gen_statem_state_functions_mode_calls_the_function_of_the_current_state)
{
    t_run(b_state_functions, true);
}
END_TEST

static void b_last_wins(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_GOTO, S_B);
    cast(pid, C_TWO_TIMEOUTS, 0);
    rt_sleep(120);
    T_EQ(get_state(pid), S_B);
    T_EQ(count(L_STATE_TO), 1);
    T_ASSERT(find(L_STATE_TO, S_B * 10 + 3) >= 0);
    cast(pid, C_ABS_TIMEOUT, 0);
    rt_sleep(15);
    T_EQ(count(L_STATE_TO), 1);
    rt_sleep(100);
    T_ASSERT(find(L_STATE_TO, S_B * 10 + 4) >= 0); /* absolute deadline */
    stop_m(pid);
}
START_TEST(gen_statem_actions_run_in_order_and_the_last_timeout_of_a_type_wins)
{
    t_run(b_last_wins, true);
}
END_TEST

static void b_insert_before_postponed(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_VAL, 1); /* postponed in S_A */
    cast(pid, C_GOTO_INSERT, S_B);
    T_EQ(get_state(pid), S_B);
    /* The inserted event goes before the retried postponed one. */
    T_ASSERT(find(L_INTERNAL, 50) >= 0 && find(L_VAL, 1) >= 0);
    T_ASSERT(find(L_INTERNAL, 50) < find(L_VAL, 1));
    stop_m(pid);
}
START_TEST(gen_statem_next_events_run_before_retried_postponed_events)
{
    t_run(b_insert_before_postponed, true);
}
END_TEST

/* ---- state enter and time-out zero ------------------------------------------------------ */

static void b_repeat_enter_old(void)
{
    rt_pid pid = start_m(3, 0);
    cast(pid, C_GOTO, S_B);
    T_EQ(get_state(pid), S_B);
    /* The initial enter (a->a), then b's enter twice, both from a. */
    T_EQ(count(L_ENTER), 3);
    T_EQ(atomic_load(&log_v[1]), L_ENTER * 1000 + S_A * 10 + S_B);
    T_EQ(atomic_load(&log_v[2]), L_ENTER * 1000 + S_A * 10 + S_B);
    stop_m(pid);
}
START_TEST(gen_statem_repeat_state_from_an_enter_call_keeps_the_original_old_state)
{
    t_run(b_repeat_enter_old, true);
}
END_TEST

static void b_repeat_enter_zero(void)
{
    rt_pid pid = start_m(3, 0);
    cast(pid, C_GOTO, S_B);
    T_EQ(get_state(pid), S_B);
    rt_sleep(20);
    T_EQ(get_state(pid), S_B);
    /* Each enter call restarted the state timeout: only the last fires. */
    T_EQ(count(L_STATE_TO), 1);
    T_ASSERT(find(L_STATE_TO, S_B * 10 + 2) >= 0);
    stop_m(pid);
}
START_TEST(gen_statem_zero_state_timeouts_from_repeated_enter_calls_deliver_only_the_last)
{
    t_run(b_repeat_enter_zero, true);
}
END_TEST

static void b_enter_event_zero(void)
{
    rt_pid pid = start_m(4, 0);
    cast(pid, C_GOTO, S_B);
    T_EQ(get_state(pid), S_B);
    rt_sleep(20);
    T_EQ(get_state(pid), S_B);
    /* Both zero time-outs fire; the event time-out first, as OTP orders
     * them (the state time-out event would otherwise cancel it). */
    T_EQ(count(L_EV_TO), 1);
    T_EQ(count(L_STATE_TO), 1);
    T_ASSERT(find(L_EV_TO, S_B) < find(L_STATE_TO, S_B * 10 + 3));
    stop_m(pid);
}
START_TEST(gen_statem_zero_event_timeout_set_with_a_zero_state_timeout_is_not_lost)
{
    t_run(b_enter_event_zero, true);
}
END_TEST

static void b_zero_restart(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_GOTO, S_B);
    /* A zero state timeout (content 1) queued behind an inserted event,
     * which restarts it with content 2 before it is delivered. */
    cast(pid, C_ZERO_THEN_INSERT, 0);
    T_EQ(get_state(pid), S_B);
    rt_sleep(20);
    T_EQ(get_state(pid), S_B);
    T_ASSERT(find(L_INTERNAL, 60) >= 0);
    T_EQ(count(L_STATE_TO), 1);
    T_ASSERT(find(L_STATE_TO, S_B * 10 + 2) >= 0);
    stop_m(pid);
}
START_TEST(gen_statem_restarted_zero_state_timeout_replaces_the_one_already_queued)
{
    t_run(b_zero_restart, true);
}
END_TEST

/* ---- next_event with From and Name ------------------------------------------------------- */

static void b_next_event_name(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_INSERT_GEN_TO, 1);
    T_EQ(get_state(pid), S_A);
    T_EQ(count(L_GEN_TO), 1);
    T_ASSERT(find(L_GEN_TO, 1) >= 0); /* {timeout, t1}, not a nameless one */
    stop_m(pid);
}
START_TEST(gen_statem_next_event_generic_timeout_keeps_its_name)
{
    t_run(b_next_event_name, true);
}
END_TEST

static void b_next_event_call(void)
{
    rt_pid pid = start_m(0, 0);
    struct rt_msg *rep = NULL;
    /* Q_FWD inserts {call, From} with the caller's From; that event replies. */
    T_EQ(rt_gen_statem_call(pid, t_int_msg(Q_FWD, 5), 1000, &rep, NULL), 0);
    T_EQ(t_int(rep), 4006);
    rt_msg_free(rep);
    T_EQ(rt_mailbox_len(), 0);
    stop_m(pid);
}
START_TEST(gen_statem_next_event_call_can_be_answered_to_the_original_caller)
{
    t_run(b_next_event_call, true);
}
END_TEST

/* ---- hibernation ------------------------------------------------------------------------- */

static enum rt_status await_status(rt_pid pid, enum rt_status want)
{
    struct rt_proc_info pi = {0};
    for (int i = 0; i < 200; i++) {
        T_EQ(rt_proc_info(pid, &pi), 0);
        if (pi.status == want)
            break;
        rt_sleep(2);
    }
    return pi.status;
}
static void b_hibernate_sys(void)
{
    rt_pid pid = start_m(0, 0);
    cast(pid, C_HIBERNATE, 0);
    T_EQ(await_status(pid, RT_STATUS_HIBERNATING), RT_STATUS_HIBERNATING);
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0); /* wakes it */
    T_EQ(await_status(pid, RT_STATUS_HIBERNATING), RT_STATUS_HIBERNATING);
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    T_EQ(rt_sys_resume(pid, 1000), 0);
    T_EQ(await_status(pid, RT_STATUS_HIBERNATING), RT_STATUS_HIBERNATING);
    /* An event ends it. */
    T_EQ(get_state(pid), S_A);
    rt_sleep(20);
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(pid, &pi), 0);
    T_ASSERT(pi.status != RT_STATUS_HIBERNATING);
    stop_m(pid);
}
START_TEST(gen_statem_hibernated_machine_woken_by_a_sys_message_hibernates_again)
{
    t_run(b_hibernate_sys, true);
}
END_TEST

/* ---- enter_loop -------------------------------------------------------------------------- */

static void el_entry(void *arg, const struct rt_proc_starter *st)
{
    struct data *d = rt_calloc(1, sizeof *d);
    rt_proc_init_ack(st);
    struct rt_statem_result acts = {0};
    rt_sm_state_timeout(&acts, 30, t_int_msg(0, 5));
    rt_gen_statem_enter_loop(&hops, NULL, S_B, d, &acts);
}
static void el_unregistered(void *arg)
{
    struct rt_start_opts o = {.name = "el_not_registered"};
    rt_gen_statem_enter_loop(&hops, &o, S_A, NULL, NULL);
}
static void b_enter_loop(void)
{
    rt_trap_exit(true);
    rt_pid pid = 0;
    T_EQ(rt_proc_start_link(el_entry, NULL, NULL, &pid, NULL), 0);
    T_EQ(get_state(pid), S_B);
    T_EQ(atomic_load(&log_v[0]), L_ENTER * 1000 + S_B * 10 + S_B); /* initial enter */
    rt_sleep(80);
    T_ASSERT(find(L_STATE_TO, S_B * 10 + 5) >= 0); /* its initial actions ran */
    struct rt_sys_status ss;
    T_EQ(rt_sys_get_status(pid, 1000, &ss), 0);
    T_ASSERT(strcmp(ss.behaviour, "gen_statem") == 0);
    T_ASSERT(strcmp(ss.module, "test_statem") == 0);
    T_EQ(ss.parent, rt_self());
    cast(pid, C_GOTO, S_C);
    T_EQ(get_state(pid), S_C);
    stop_m(pid);
    T_EQ(count(L_TERMINATE), 1);
    rt_msg_free(t_recv(RT_MSG_EXIT, pid, 1000));
    /* With a name the process does not hold, it does not become one. */
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(el_unregistered, NULL, &so, NULL), 0);
    struct rt_msg *d = rt_receive_ref(mref, 1000);
    T_ASSERT(d);
    T_EQ(d->u64, rt_atom_intern("process_not_registered"));
    rt_msg_free(d);
}
START_TEST(gen_statem_enter_loop_turns_a_running_process_into_a_state_machine)
{
    t_run(b_enter_loop, true);
}
END_TEST

/* ---- termination report ------------------------------------------------------------------ */

/* The last crash report's pid and state, through the runtime's crash
 * handler hook: the one report an abnormal exit writes. */
static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static rt_pid cap_pid;
static char cap_state[RT_CRASH_STATE_MAX + 8];

static void capture(const struct rt_crash_report *r, void *ctx)
{
    pthread_mutex_lock(&cap_lock);
    cap_pid = r->pid;
    snprintf(cap_state, sizeof cap_state, "%s", r->state ? r->state : "(null)");
    pthread_mutex_unlock(&cap_lock);
}
/* pid's crash report state, copied to out; false if it wrote none. */
static bool captured(rt_pid pid, char *out, size_t size)
{
    pthread_mutex_lock(&cap_lock);
    bool found = cap_pid == pid;
    if (found)
        snprintf(out, size, "%s", cap_state);
    pthread_mutex_unlock(&cap_lock);
    return found;
}

struct account {
    char user[16];
    char token[16];
};
static void acct_init(void *arg, struct rt_statem_result *r)
{
    struct account *a = rt_calloc(1, sizeof *a);
    snprintf(a->user, sizeof a->user, "alice");
    snprintf(a->token, sizeof a->token, "s3cr3t");
    rt_sm_init_ok(r, S_A, a);
}
static void acct_event(struct rt_statem_event *ev, int state, void *data,
                       struct rt_statem_result *r)
{
    if (ev->type == RT_EV_CAST)
        rt_sm_next_state(r, t_int(ev->msg));
}
/* Leaves the token out: both get_status and the crash report leave the
 * process. */
static size_t acct_format(int state, const void *data, char *buf, size_t cap)
{
    const struct account *a = data;
    return (size_t)snprintf(buf, cap, "user=%s token_len=%zu in %d", a->user, strlen(a->token),
                            state);
}
static void acct_terminate(rt_atom reason, int state, void *data)
{
    memset(data, 0, sizeof(struct account)); /* a terminate may destroy the data */
}
static const struct rt_gen_statem_ops acct_ops = {
    .name = "account",
    .mode = RT_HANDLE_EVENT_FUNCTION,
    .init = acct_init,
    .handle_event = acct_event,
    .n_states = 3,
    .state_names = names,
    .terminate = acct_terminate,
    .format_status = acct_format,
};
static void b_report(void)
{
    cap_pid = 0;
    rt_set_crash_handler(capture, NULL);
    rt_pid pid = 0;
    T_EQ(rt_gen_statem_start(&acct_ops, NULL, NULL, &pid, NULL), 0);
    struct rt_sys_status ss;
    T_EQ(rt_sys_get_status(pid, 1000, &ss), 0);
    T_ASSERT_F(strcmp(ss.formatted, "user=alice token_len=6 in 0") == 0, "\"%s\"", ss.formatted);
    /* A clean stop writes no report. */
    T_EQ(rt_gen_statem_stop(pid, RT_NORMAL, 5000, NULL), 0);
    char state[RT_CRASH_STATE_MAX + 8];
    T_ASSERT(!captured(pid, state, sizeof state));
    T_EQ(rt_gen_statem_start(&acct_ops, NULL, NULL, &pid, NULL), 0);
    rt_gen_statem_cast(pid, t_int_msg(1, S_B));
    rt_atom boom = rt_atom_intern("boom");
    T_EQ(rt_gen_statem_stop(pid, boom, 5000, NULL), 0);
    rt_set_crash_handler(NULL, NULL);
    T_ASSERT(captured(pid, state, sizeof state));
    T_ASSERT_F(strcmp(state, "state=b last_event=cast queued=0 postponed=0 "
                             "user=alice token_len=6 in 1") == 0,
               "state \"%.200s\"", state);
    T_ASSERT(strstr(state, "s3cr3t") == NULL);
}
START_TEST(gen_statem_crash_report_carries_the_state_as_format_status_redacts_it)
{
    t_run(b_report, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gen_statem");
    TCase *tc = tcase_create("gen_statem");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, gen_statem_postponed_events_are_retried_in_order_after_a_state_change_only);
    tcase_add_test(tc, gen_statem_state_enter_runs_on_initial_state_on_change_and_on_repeat_state);
    tcase_add_test(tc, gen_statem_postpone_in_a_state_enter_call_is_an_error);
    tcase_add_test(tc, gen_statem_next_events_run_in_order_before_queued_external_events);
    tcase_add_test(tc, gen_statem_state_timeout_is_cancelled_by_a_state_change);
    tcase_add_test(tc, gen_statem_state_timeout_survives_keep_state_and_fires);
    tcase_add_test(tc, gen_statem_event_timeout_is_cancelled_by_any_event);
    tcase_add_test(tc, gen_statem_event_timeout_zero_is_cancelled_by_a_retried_postponed_event);
    tcase_add_test(tc,
                   gen_statem_named_generic_timeouts_survive_state_changes_and_can_be_cancelled);
    tcase_add_test(tc, gen_statem_timeout_zero_is_delivered_before_unreceived_external_events);
    tcase_add_test(tc,
                   gen_statem_timeout_update_keeps_the_expiry_or_fires_at_once_when_not_running);
    tcase_add_test(tc, gen_statem_reply_action_can_answer_from_a_later_state);
    tcase_add_test(tc, gen_statem_stop_and_reply_replies_and_terminates);
    tcase_add_test(tc, gen_statem_init_ignore_error_and_stop_are_reported_to_the_starter);
    tcase_add_test(tc, gen_statem_hibernate_action_wakes_with_state_and_data);
    tcase_add_test(tc, gen_statem_state_functions_mode_calls_the_function_of_the_current_state);
    tcase_add_test(tc, gen_statem_actions_run_in_order_and_the_last_timeout_of_a_type_wins);
    tcase_add_test(tc, gen_statem_next_events_run_before_retried_postponed_events);
    tcase_add_test(tc, gen_statem_repeat_state_from_an_enter_call_keeps_the_original_old_state);
    tcase_add_test(tc,
                   gen_statem_zero_state_timeouts_from_repeated_enter_calls_deliver_only_the_last);
    tcase_add_test(tc, gen_statem_zero_event_timeout_set_with_a_zero_state_timeout_is_not_lost);
    tcase_add_test(tc, gen_statem_restarted_zero_state_timeout_replaces_the_one_already_queued);
    tcase_add_test(tc, gen_statem_next_event_generic_timeout_keeps_its_name);
    tcase_add_test(tc, gen_statem_next_event_call_can_be_answered_to_the_original_caller);
    tcase_add_test(tc, gen_statem_hibernated_machine_woken_by_a_sys_message_hibernates_again);
    tcase_add_test(tc, gen_statem_enter_loop_turns_a_running_process_into_a_state_machine);
    tcase_add_test(tc, gen_statem_crash_report_carries_the_state_as_format_status_redacts_it);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
