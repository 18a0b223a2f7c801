/* test_gen_server.c: gen_server and the proc_lib start protocol (OTP-SEMANTICS
 * §1.2, §1.4). Tandem has no global/via names or distribution: only local
 * names are tested; call failures are return codes, not exits. */
#include <errno.h>

#include "otp_test.h"
#include "rt/gen_server.h"
#include "rt/sys.h"

enum { T_ECHO = 1, T_SLEEP_REPLY, T_CRASH, T_DEFER, T_REPLY_DEFERRED, T_STOP_REPLY, T_STOP, T_LOG };

enum init_mode {
    I_OK = 0,
    I_IGNORE,
    I_STOP,
    I_ERROR,
    I_SLEEP,
    I_CONTINUE,
    I_TIMEOUT,
    I_TRAP,
    I_HIBERNATE,
    I_CRASH,
};

struct init_args {
    enum init_mode mode;
    int64_t ms;
};

/* Event log shared with the test process (one server per test). */
static atomic_int ev_log[64];
static atomic_int ev_n;
static atomic_int terminated_with = -1;

static atomic_ullong middle_child;

static void t_reset(void)
{
    atomic_store(&ev_n, 0);
    for (int i = 0; i < 64; i++)
        atomic_store(&ev_log[i], 0);
    atomic_store(&terminated_with, -1);
    atomic_store(&middle_child, 0);
}

static void ev(int e)
{
    int i = atomic_fetch_add(&ev_n, 1);
    if (i < 64)
        atomic_store(&ev_log[i], e);
}

enum { E_INIT = 100, E_CONTINUE, E_INFO, E_CAST, E_CALL, E_TIMEOUT, E_TERMINATE, E_EXIT_INFO };

struct srv {
    struct rt_gs_from pending;
    int counter;
};

static void s_init(void *arg, struct rt_gs_result *r)
{
    const struct init_args *a = arg;
    struct srv *s = rt_calloc(1, sizeof *s);
    r->state = s;
    ev(E_INIT);
    switch (a->mode) {
    case I_OK:
        break;
    case I_IGNORE:
        rt_gs_ignore(r);
        break;
    case I_STOP:
        rt_gs_stop(r, rt_atom_intern("init_failed"));
        break;
    case I_ERROR:
        rt_gs_error(r, rt_atom_intern("init_error"));
        break;
    case I_SLEEP:
        rt_sleep((uint64_t)a->ms);
        break;
    case I_CONTINUE:
        /* A message already queued must wait for handle_continue. */
        rt_send(rt_self(), rt_msg_new(5, 0));
        rt_gs_continue(r, t_int_msg(7, 7));
        break;
    case I_TIMEOUT:
        rt_gs_timeout(r, a->ms);
        break;
    case I_TRAP:
        rt_trap_exit(true);
        break;
    case I_HIBERNATE:
        rt_gs_hibernate(r);
        break;
    case I_CRASH:
        rt_exit(rt_atom_intern("init_crashed"));
    }
}

static void s_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                   struct rt_gs_result *r)
{
    struct srv *s = state;
    ev(E_CALL);
    switch (req->type) {
    case T_ECHO:
        rt_gs_reply(r, rt_gs_take(r));
        break;
    case T_SLEEP_REPLY:
        rt_sleep((uint64_t)t_int(req));
        rt_gs_reply(r, t_int_msg(T_SLEEP_REPLY, 1));
        break;
    case T_CRASH:
        rt_exit(rt_atom_intern("crashed_in_call"));
    case T_DEFER:
        s->pending = *from;
        rt_gs_noreply(r);
        break;
    case T_REPLY_DEFERRED: {
        /* Replies to the stashed caller from another process. */
        struct rt_gs_from *f = rt_alloc(sizeof *f);
        *f = s->pending;
        rt_gs_reply(r, t_int_msg(0, 0));
        break;
    }
    case T_STOP_REPLY:
        rt_gs_stop_reply(r, RT_NORMAL, t_int_msg(T_STOP_REPLY, 0));
        break;
    case T_STOP:
        rt_gs_stop(r, rt_atom_intern("asked_to_stop"));
        break;
    case T_LOG:
        rt_gs_reply(r, t_int_msg(T_LOG, atomic_load(&ev_n)));
        break;
    default:
        rt_gs_reply(r, NULL);
    }
}

static void s_cast(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    struct srv *s = state;
    ev(E_CAST);
    s->counter += t_int(msg);
}

static void s_info(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    if (msg->type == RT_MSG_GS_TIMEOUT) {
        ev(E_TIMEOUT);
        return;
    }
    if (msg->type == RT_MSG_EXIT) {
        ev(E_EXIT_INFO);
        return;
    }
    ev(E_INFO);
    if (msg->type == 9)
        rt_gs_hibernate(r);
}

static void s_continue(struct rt_msg *c, void *state, struct rt_gs_result *r)
{
    ev(E_CONTINUE);
}

static void s_terminate(rt_atom reason, void *state)
{
    /* Slow, so that a reply sent before terminate finished would be seen
     * before terminated_with is set. */
    rt_sleep(30);
    ev(E_TERMINATE);
    atomic_store(&terminated_with, (int)reason);
}

static const struct rt_gen_server_ops ops = {
    .name = "test_server",
    .init = s_init,
    .handle_call = s_call,
    .handle_cast = s_cast,
    .handle_info = s_info,
    .handle_continue = s_continue,
    .terminate = s_terminate,
};

static rt_pid start_ok(enum init_mode mode, int64_t ms)
{
    struct init_args a = {mode, ms};
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start_link(&ops, &a, NULL, &pid, NULL), 0);
    T_ASSERT(pid != 0);
    return pid;
}

static void stop(rt_pid pid)
{
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5000, NULL), 0);
}

static int call_int(rt_pid pid, uint32_t type, int v, int64_t timeout, rt_atom *why)
{
    struct rt_msg *rep = NULL;
    int rc = rt_gen_server_call(pid, t_int_msg(type, v), timeout, &rep, why);
    if (rc == 0) {
        rc = t_int(rep);
        rt_msg_free(rep);
    }
    return rc;
}

/* ---- start protocol ------------------------------------------------------------ */

static void b_start_returns_after_init(void)
{
    uint64_t t0 = rt_now_ms();
    rt_pid pid = start_ok(I_SLEEP, 50);
    T_ASSERT(rt_now_ms() - t0 >= 45);
    T_EQ(atomic_load(&ev_n), 1);
    stop(pid);
}
START_TEST(gen_server_start_link_returns_only_after_init_has_finished)
{
    t_run(b_start_returns_after_init, true);
}
END_TEST

static void b_ignore(void)
{
    struct init_args a = {I_IGNORE, 0};
    rt_pid pid = 0;
    rt_trap_exit(true);
    struct rt_start_opts o = {.name = "ignored"};
    T_EQ(rt_gen_server_start_link(&ops, &a, &o, &pid, NULL), RT_IGNORE);
    T_EQ(pid, 0);
    T_EQ(rt_whereis("ignored"), 0);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_init_ignore_returns_ignore_and_the_process_exits_normal)
{
    t_run(b_ignore, true);
}
END_TEST

static void b_stop(void)
{
    struct init_args a = {I_STOP, 0};
    rt_atom why = 0;
    rt_trap_exit(true);
    T_EQ(rt_gen_server_start_link(&ops, &a, NULL, NULL, &why), -ECHILD);
    T_EQ(why, rt_atom_intern("init_failed"));
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_init_stop_returns_error_with_the_reason)
{
    t_run(b_stop, true);
}
END_TEST

static void b_stop_kills_linked_starter_child(void *arg)
{
    struct init_args a = {I_STOP, 0};
    rt_gen_server_start_link(&ops, &a, NULL, NULL, NULL);
    ev(999); /* not reached: the failing child's exit kills its linked starter */
}
static void b_stop_kills(void)
{
    rt_pid p = 0;
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(b_stop_kills_linked_starter_child, NULL, &so, &p), 0);
    struct rt_msg *down = rt_receive_ref(mref, 5000);
    T_ASSERT(down);
    T_EQ(down->u64, rt_atom_intern("init_failed"));
    rt_msg_free(down);
    T_EQ(atomic_load(&ev_n), 1);
}
START_TEST(gen_server_init_stop_exits_with_the_reason_and_kills_a_non_trapping_starter)
{
    t_run(b_stop_kills, true);
}
END_TEST

static void b_error(void)
{
    struct init_args a = {I_ERROR, 0};
    rt_atom why = 0;
    /* Not trapping: {error,R} exits normal, so the starter survives. */
    T_EQ(rt_gen_server_start_link(&ops, &a, NULL, NULL, &why), -ECHILD);
    T_EQ(why, rt_atom_intern("init_error"));
}
START_TEST(gen_server_init_error_returns_error_and_exits_normal)
{
    t_run(b_error, true);
}
END_TEST

static void b_clash(void)
{
    struct init_args a = {I_OK, 0};
    rt_pid first = 0, other = 0;
    struct rt_start_opts o = {.name = "srv"};
    T_EQ(rt_gen_server_start_link(&ops, &a, &o, &first, NULL), 0);
    T_EQ(rt_whereis("srv"), first);
    T_EQ(rt_gen_server_start_link(&ops, &a, &o, &other, NULL), -EEXIST);
    T_EQ(other, first);
    stop(first);
    T_EQ(rt_whereis("srv"), 0);
}
START_TEST(gen_server_name_clash_returns_already_started_with_the_holder)
{
    t_run(b_clash, true);
}
END_TEST

/* An orphan that keeps its name: trapping, it ignores its spawner's exit. */
static _Atomic rt_pid stuck_pid;

static void stuck_holder(void *arg)
{
    (void)arg;
    rt_trap_exit(true);
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        bool stop = m->type == T_STOP;
        rt_msg_free(m);
        if (stop)
            return;
    }
}

static void stuck_spawner(void *arg)
{
    (void)arg;
    struct rt_spawn_opts so = {.link = true, .name = "stuck"};
    rt_pid h = 0;
    if (rt_spawn(stuck_holder, NULL, &so, &h) == 0)
        atomic_store(&stuck_pid, h);
}

static void b_orphan_stuck(void)
{
    atomic_store(&stuck_pid, 0);
    rt_pid sp = 0;
    rt_ref sref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &sref};
    T_EQ(rt_spawn(stuck_spawner, NULL, &so, &sp), 0);
    struct rt_msg *down = rt_receive_ref(sref, 5000);
    T_ASSERT(down);
    rt_msg_free(down);
    rt_pid h = atomic_load(&stuck_pid);
    T_ASSERT(h && rt_is_alive(h));
    struct init_args a = {I_OK, 0};
    struct rt_start_opts o = {.name = "stuck", .timeout_ms = 300};
    rt_pid other = 0;
    /* Its spawner is gone: waited for, within the start's timeout. */
    uint64_t t0 = rt_now_ms();
    T_EQ(rt_gen_server_start(&ops, &a, &o, &other, NULL), -EEXIST);
    uint64_t waited = rt_now_ms() - t0;
    T_ASSERT_F(waited >= 250 && waited < 2000, "waited %llu ms", (unsigned long long)waited);
    T_EQ(other, h);
    /* Waited for in vain once: the next start reports it at once. */
    t0 = rt_now_ms();
    T_EQ(rt_gen_server_start(&ops, &a, &o, &other, NULL), -EEXIST);
    waited = rt_now_ms() - t0;
    T_ASSERT_F(waited < 150, "waited %llu ms", (unsigned long long)waited);
    T_EQ(rt_mailbox_len(), 0);
    rt_ref href = rt_monitor(h);
    T_EQ(rt_send(h, t_int_msg(T_STOP, 0)), 0);
    down = rt_receive_ref(href, 5000);
    T_ASSERT(down);
    rt_msg_free(down);
}
START_TEST(gen_server_start_waits_once_within_its_timeout_for_an_orphan_holding_its_name)
{
    t_run(b_orphan_stuck, true);
}
END_TEST

static void b_start_timeout(void)
{
    struct init_args a = {I_SLEEP, 10000};
    struct rt_start_opts o = {.timeout_ms = 50, .name = "slow"};
    rt_pid pid = 0;
    uint64_t t0 = rt_now_ms();
    T_EQ(rt_gen_server_start_link(&ops, &a, &o, &pid, NULL), -ETIMEDOUT);
    T_ASSERT(rt_now_ms() - t0 < 2000);
    T_EQ(rt_whereis("slow"), 0);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_start_timeout_kills_the_child_and_returns_timeout)
{
    t_run(b_start_timeout, true);
}
END_TEST

/* ---- call / cast / info ------------------------------------------------------------ */

static void b_call(void)
{
    rt_pid pid = start_ok(I_OK, 0);
    T_EQ(call_int(pid, T_ECHO, 42, 1000, NULL), 42);
    struct rt_msg *rep = (struct rt_msg *)1;
    T_EQ(rt_gen_server_call(pid, rt_msg_new(99, 0), 1000, &rep, NULL), 0);
    T_ASSERT(rep == NULL);
    stop(pid);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_call_returns_the_reply)
{
    t_run(b_call, true);
}
END_TEST

static void b_call_dead(void)
{
    rt_pid pid = start_ok(I_OK, 0);
    stop(pid);
    rt_atom why = 0;
    T_EQ(call_int(pid, T_ECHO, 1, 1000, &why), -ESRCH);
    T_EQ(why, RT_NOPROC);
    T_EQ(rt_gen_server_call_name("nobody", t_int_msg(T_ECHO, 1), 1000, NULL, &why), -ESRCH);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_call_to_a_dead_server_fails_with_noproc)
{
    t_run(b_call_dead, true);
}
END_TEST

static void b_mid_call(void)
{
    struct init_args a = {I_OK, 0};
    rt_pid pid = 0;
    /* Not linked, so the server's crash does not take the caller along. */
    T_EQ(rt_gen_server_start(&ops, &a, NULL, &pid, NULL), 0);
    rt_atom why = 0;
    T_EQ(call_int(pid, T_CRASH, 0, 5000, &why), -ECONNRESET);
    T_EQ(why, rt_atom_intern("crashed_in_call"));
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_call_fails_with_the_reason_of_a_server_dying_mid_call)
{
    t_run(b_mid_call, true);
}
END_TEST

static void b_late(void)
{
    rt_pid pid = start_ok(I_OK, 0);
    T_EQ(call_int(pid, T_SLEEP_REPLY, 100, 20, NULL), -ETIMEDOUT);
    /* The reply is sent ~80 ms later; it must never show up. */
    rt_sleep(200);
    T_EQ(rt_mailbox_len(), 0);
    T_EQ(call_int(pid, T_ECHO, 5, 1000, NULL), 5);
    stop(pid);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_call_timeout_drops_the_late_reply)
{
    t_run(b_late, true);
}
END_TEST

static void self_call_srv(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                          struct rt_gs_result *r)
{
    rt_atom why = 0;
    int rc = rt_gen_server_call(rt_self(), rt_msg_new(1, 0), 1000, NULL, &why);
    rt_gs_reply(r, t_int_msg(0, rc == -EDEADLK && why == RT_CALLING_SELF));
}
static void self_call_init(void *arg, struct rt_gs_result *r) {}
static const struct rt_gen_server_ops self_ops = {
    .init = self_call_init,
    .handle_call = self_call_srv,
};
static void b_self(void)
{
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start_link(&self_ops, NULL, NULL, &pid, NULL), 0);
    T_EQ(call_int(pid, 1, 0, 1000, NULL), 1);
    stop(pid);
}
START_TEST(gen_server_call_to_self_fails_with_calling_self)
{
    t_run(b_self, true);
}
END_TEST

static void b_cast(void)
{
    rt_pid pid = start_ok(I_OK, 0);
    T_EQ(rt_gen_server_cast(pid, t_int_msg(1, 3)), 0);
    T_EQ(rt_gen_server_cast_name("nobody", t_int_msg(1, 3)), 0);
    T_EQ(rt_gen_server_cast(pid, t_int_msg(1, 4)), 0);
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_EQ(((struct srv *)st.state)->counter, 7);
    stop(pid);
    T_EQ(rt_gen_server_cast(pid, t_int_msg(1, 3)), 0);
}
START_TEST(gen_server_cast_returns_ok_even_when_the_target_does_not_exist)
{
    t_run(b_cast, true);
}
END_TEST

static void b_info(void)
{
    rt_pid pid = start_ok(I_OK, 0);
    rt_send(pid, rt_msg_new(5, 0));
    T_EQ(call_int(pid, T_LOG, 0, 1000, NULL), 3); /* init, info, call */
    T_EQ(atomic_load(&ev_log[1]), E_INFO);
    stop(pid);
}
START_TEST(gen_server_other_messages_go_to_handle_info)
{
    t_run(b_info, true);
}
END_TEST

static void replier(void *arg)
{
    struct rt_gs_from f;
    memcpy(&f, arg, sizeof f);
    rt_gen_server_reply(&f, t_int_msg(0, 77));
}
static void defer_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                       struct rt_gs_result *r)
{
    /* noreply now; a separate process replies later. */
    struct rt_gs_from *f = rt_alloc(sizeof *f);
    *f = *from;
    rt_spawn(replier, f, NULL, NULL);
    rt_sleep(20);
    rt_gs_noreply(r);
}
static const struct rt_gen_server_ops defer_ops = {
    .init = self_call_init,
    .handle_call = defer_call,
};
static void b_defer(void)
{
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start_link(&defer_ops, NULL, NULL, &pid, NULL), 0);
    T_EQ(call_int(pid, 1, 0, 2000, NULL), 77);
    stop(pid);
}
START_TEST(gen_server_noreply_then_reply_from_any_process)
{
    t_run(b_defer, true);
}
END_TEST

static void b_stop_reply(void)
{
    rt_pid pid = start_ok(I_OK, 0);
    rt_ref mref = rt_monitor(pid);
    T_EQ(call_int(pid, T_STOP_REPLY, 0, 1000, NULL), 0);
    /* terminate ran before the reply was sent. */
    T_EQ(atomic_load(&terminated_with), RT_NORMAL);
    rt_atom why = 0;
    struct rt_msg *d = rt_receive_ref(mref, 1000);
    T_ASSERT(d);
    why = (rt_atom)d->u64;
    rt_msg_free(d);
    T_EQ(why, RT_NORMAL);
}
START_TEST(gen_server_stop_with_reply_runs_terminate_before_replying)
{
    t_run(b_stop_reply, true);
}
END_TEST

static void b_stop_noreply(void)
{
    struct init_args a = {I_OK, 0};
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start(&ops, &a, NULL, &pid, NULL), 0);
    rt_atom why = 0;
    T_EQ(call_int(pid, T_STOP, 0, 1000, &why), -ECONNRESET);
    T_EQ(why, rt_atom_intern("asked_to_stop"));
    T_EQ(atomic_load(&terminated_with), rt_atom_intern("asked_to_stop"));
}
START_TEST(gen_server_stop_from_a_call_gives_the_caller_the_exit_reason)
{
    t_run(b_stop_noreply, true);
}
END_TEST

/* ---- continue, timeout, hibernate -------------------------------------------------------- */

static void b_continue(void)
{
    rt_pid pid = start_ok(I_CONTINUE, 0);
    T_EQ(call_int(pid, T_LOG, 0, 1000, NULL), 4);
    T_EQ(atomic_load(&ev_log[0]), E_INIT);
    T_EQ(atomic_load(&ev_log[1]), E_CONTINUE);
    T_EQ(atomic_load(&ev_log[2]), E_INFO);
    T_EQ(atomic_load(&ev_log[3]), E_CALL);
    stop(pid);
}
START_TEST(gen_server_continue_runs_before_any_new_message)
{
    t_run(b_continue, true);
}
END_TEST

static void b_timeout(void)
{
    rt_pid pid = start_ok(I_TIMEOUT, 30);
    rt_sleep(100);
    T_EQ(call_int(pid, T_LOG, 0, 1000, NULL), 3); /* init, timeout, call */
    T_EQ(atomic_load(&ev_log[1]), E_TIMEOUT);
    stop(pid);
}
START_TEST(gen_server_timeout_calls_handle_info_timeout_when_idle)
{
    t_run(b_timeout, true);
}
END_TEST

static void b_timeout_cancel(void)
{
    rt_pid pid = start_ok(I_TIMEOUT, 60);
    rt_send(pid, rt_msg_new(5, 0));
    rt_sleep(150);
    T_EQ(call_int(pid, T_LOG, 0, 1000, NULL), 3); /* init, info, call: no timeout */
    T_EQ(atomic_load(&ev_log[1]), E_INFO);
    stop(pid);
}
START_TEST(gen_server_timeout_is_cancelled_by_any_message)
{
    t_run(b_timeout_cancel, true);
}
END_TEST

static void b_hibernate(void)
{
    rt_pid pid = start_ok(I_OK, 0);
    rt_gen_server_cast(pid, t_int_msg(1, 5));
    rt_send(pid, rt_msg_new(9, 0)); /* handle_info asks to hibernate */
    rt_sleep(50);
    struct rt_proc_info info;
    T_EQ(rt_proc_info(pid, &info), 0);
    T_EQ(info.status, RT_STATUS_HIBERNATING);
    /* sys messages are answered from hibernation; the state survived. */
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_EQ(((struct srv *)st.state)->counter, 5);
    T_EQ(call_int(pid, T_ECHO, 11, 1000, NULL), 11);
    stop(pid);
}
START_TEST(gen_server_hibernate_wakes_on_the_next_message_with_its_state)
{
    t_run(b_hibernate, true);
}
END_TEST

/* ---- termination ----------------------------------------------------------------------- */

static void middle(void *arg)
{
    struct init_args a = {(enum init_mode)(intptr_t)arg, 0};
    rt_pid pid = 0;
    rt_gen_server_start_link(&ops, &a, NULL, &pid, NULL);
    atomic_store(&middle_child, pid);
    rt_receive(RT_INFINITY);
}

static rt_atom parent_dies(enum init_mode mode, rt_atom reason)
{
    rt_pid mid = 0;
    T_EQ(rt_spawn(middle, (void *)(intptr_t)mode, NULL, &mid), 0);
    while (!atomic_load(&middle_child))
        rt_sleep(1);
    rt_pid child = (rt_pid)atomic_load(&middle_child);
    rt_ref mref = rt_monitor(child);
    rt_exit_signal(mid, reason);
    struct rt_msg *d = rt_receive_ref(mref, 5000);
    T_ASSERT(d);
    rt_atom why = (rt_atom)d->u64;
    rt_msg_free(d);
    return why;
}

static void b_parent_trap(void)
{
    T_EQ(parent_dies(I_TRAP, RT_SHUTDOWN), RT_SHUTDOWN);
    T_EQ(atomic_load(&terminated_with), RT_SHUTDOWN);
}
START_TEST(gen_server_terminate_runs_when_the_parent_exits_and_the_server_traps_exits)
{
    t_run(b_parent_trap, true);
}
END_TEST

static void b_parent_notrap(void)
{
    T_EQ(parent_dies(I_OK, RT_SHUTDOWN), RT_SHUTDOWN);
    T_EQ(atomic_load(&terminated_with), -1);
}
START_TEST(gen_server_terminate_is_not_called_on_shutdown_without_trapping_exits)
{
    t_run(b_parent_notrap, true);
}
END_TEST

static void linked_dies(void *arg)
{
    rt_link(*(rt_pid *)arg);
    rt_exit(rt_atom_intern("boom"));
}
static void b_nonparent_exit(void)
{
    rt_pid pid = start_ok(I_TRAP, 0);
    rt_pid *p = rt_alloc(sizeof *p);
    *p = pid;
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    rt_spawn(linked_dies, p, &so, NULL);
    rt_msg_free(rt_receive_ref(mref, 1000));
    T_EQ(call_int(pid, T_LOG, 0, 1000, NULL), 3);
    T_EQ(atomic_load(&ev_log[1]), E_EXIT_INFO);
    stop(pid);
}
START_TEST(gen_server_exit_from_a_non_parent_goes_to_handle_info_when_trapping)
{
    t_run(b_nonparent_exit, true);
}
END_TEST

static void b_stop_sync(void)
{
    struct init_args a = {I_OK, 0};
    rt_pid pid = 0;
    /* Unlinked: a linked non-trapping caller would die with shutdown:bye. */
    T_EQ(rt_gen_server_start(&ops, &a, NULL, &pid, NULL), 0);
    T_EQ(rt_gen_server_stop(pid, rt_atom_intern("shutdown:bye"), 1000, NULL), 0);
    T_ASSERT(!rt_is_alive(pid));
    T_EQ(atomic_load(&terminated_with), rt_atom_intern("shutdown:bye"));
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 1000, NULL), -ESRCH);
}
START_TEST(gen_server_stop_is_synchronous_runs_terminate_and_reports_noproc)
{
    t_run(b_stop_sync, true);
}
END_TEST

static void b_init_crash(void)
{
    struct init_args a = {I_CRASH, 0};
    rt_atom why = 0;
    rt_trap_exit(true);
    T_EQ(rt_gen_server_start_link(&ops, &a, NULL, NULL, &why), -ECHILD);
    T_EQ(why, rt_atom_intern("init_crashed"));
    T_EQ(rt_mailbox_len(), 0); /* the child's EXIT was consumed */
}
START_TEST(gen_server_child_dying_before_the_ack_makes_start_fail_with_its_reason)
{
    t_run(b_init_crash, true);
}
END_TEST

static void b_proc_info(void)
{
    rt_ref mref = 0;
    struct rt_start_opts o = {.monitor = true, .monitor_ref = &mref};
    rt_pid pid = 0;
    struct init_args a = {I_OK, 0};
    T_EQ(rt_gen_server_start(&ops, &a, &o, &pid, NULL), 0);
    T_ASSERT(mref != 0);
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(pid, &pi), 0);
    T_EQ(pi.parent, rt_self());
    T_ASSERT(strcmp(pi.initial_call, "test_server") == 0);
    T_EQ(pi.kind, RT_KIND_SERVER);
    T_EQ(rt_gen_server_stop(pid, rt_atom_intern("bye"), 1000, NULL), 0);
    struct rt_msg *d = rt_receive_ref(mref, 1000); /* start_monitor's monitor */
    T_ASSERT(d);
    T_EQ(d->u64, rt_atom_intern("bye"));
    rt_msg_free(d);
}
START_TEST(gen_server_start_records_parent_and_initial_call_and_can_monitor)
{
    t_run(b_proc_info, true);
}
END_TEST

static void no_info_init(void *arg, struct rt_gs_result *r) {}
static void no_info_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                         struct rt_gs_result *r)
{
    rt_gs_reply(r, t_int_msg(0, 1));
}
static const struct rt_gen_server_ops no_info_ops = {
    .init = no_info_init,
    .handle_call = no_info_call,
};
static void b_no_info(void)
{
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start_link(&no_info_ops, NULL, NULL, &pid, NULL), 0);
    rt_send(pid, rt_msg_new(5, 0));
    T_EQ(call_int(pid, 1, 0, 1000, NULL), 1); /* still alive, message dropped */
    rt_sleep(20); /* mailbox_len also counts the call's demonitor signal until drained */
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(pid, &pi), 0);
    T_EQ(pi.mailbox_len, 0);
    stop(pid);
}
START_TEST(gen_server_without_handle_info_drops_other_messages)
{
    t_run(b_no_info, true);
}
END_TEST

static void b_hibernate_after(void)
{
    struct init_args a = {I_OK, 0};
    struct rt_start_opts o = {.hibernate_after = 30};
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start_link(&ops, &a, &o, &pid, NULL), 0);
    rt_sleep(100);
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(pid, &pi), 0);
    T_EQ(pi.status, RT_STATUS_HIBERNATING);
    T_EQ(call_int(pid, T_ECHO, 3, 1000, NULL), 3);
    stop(pid);
}
START_TEST(gen_server_hibernate_after_hibernates_an_idle_server)
{
    t_run(b_hibernate_after, true);
}
END_TEST

static void b_stop_timeout(void)
{
    struct init_args a = {I_OK, 0};
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start(&ops, &a, NULL, &pid, NULL), 0);
    rt_ref mref = rt_monitor(pid);
    /* terminate takes 30 ms: a 5 ms stop times out, the server still ends. */
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5, NULL), -ETIMEDOUT);
    struct rt_msg *d = rt_receive_ref(mref, 1000);
    T_ASSERT(d);
    T_EQ(d->u64, RT_NORMAL);
    rt_msg_free(d);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_stop_times_out_when_terminate_takes_longer)
{
    t_run(b_stop_timeout, true);
}
END_TEST

/* ---- missing callbacks ------------------------------------------------------------------ */

/* A server that has only init and terminate: OTP's callback module that
 * does not export handle_call, handle_cast or handle_continue. */
static void bare_init(void *arg, struct rt_gs_result *r)
{
    if (arg)
        rt_gs_continue(r, NULL);
}
static const struct rt_gen_server_ops bare_ops = {
    .name = "bare",
    .init = bare_init,
    .terminate = s_terminate,
};

/* Starts a bare server, unlinked and monitored. */
static rt_pid start_bare(bool with_continue, rt_ref *mref)
{
    struct rt_start_opts o = {.monitor = true, .monitor_ref = mref};
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start(&bare_ops, with_continue ? (void *)1 : NULL, &o, &pid, NULL), 0);
    return pid;
}

static rt_atom down_reason(rt_ref mref)
{
    struct rt_msg *d = rt_receive_ref(mref, 5000);
    T_ASSERT(d);
    rt_atom why = (rt_atom)d->u64;
    rt_msg_free(d);
    return why;
}

static void b_undef_call(void)
{
    rt_ref mref = 0;
    rt_pid pid = start_bare(false, &mref);
    rt_atom why = 0;
    T_EQ(call_int(pid, T_ECHO, 1, 1000, &why), -ECONNRESET);
    T_EQ(why, rt_atom_intern("undef"));
    T_EQ(down_reason(mref), rt_atom_intern("undef"));
    T_EQ(atomic_load(&terminated_with), rt_atom_intern("undef"));
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_call_without_handle_call_exits_the_server_with_undef)
{
    t_run(b_undef_call, true);
}
END_TEST

static void b_undef_cast(void)
{
    rt_ref mref = 0;
    rt_pid pid = start_bare(false, &mref);
    T_EQ(rt_gen_server_cast(pid, t_int_msg(1, 1)), 0);
    T_EQ(down_reason(mref), rt_atom_intern("undef"));
    T_EQ(atomic_load(&terminated_with), rt_atom_intern("undef"));
}
START_TEST(gen_server_cast_without_handle_cast_exits_the_server_with_undef)
{
    t_run(b_undef_cast, true);
}
END_TEST

static void b_undef_continue(void)
{
    rt_ref mref = 0;
    start_bare(true, &mref);
    T_EQ(down_reason(mref), rt_atom_intern("undef"));
    T_EQ(atomic_load(&terminated_with), rt_atom_intern("undef"));
}
START_TEST(gen_server_continue_without_handle_continue_exits_the_server_with_undef)
{
    t_run(b_undef_continue, true);
}
END_TEST

/* ---- hibernation and sys ---------------------------------------------------------------- */

static bool becomes_hibernating(rt_pid pid, int64_t ms)
{
    uint64_t end = rt_now_ms() + (uint64_t)ms;
    struct rt_proc_info pi;
    do {
        if (rt_proc_info(pid, &pi) == 0 && pi.status == RT_STATUS_HIBERNATING)
            return true;
        rt_sleep(2);
    } while (rt_now_ms() < end);
    return false;
}

static void b_hibernate_sys(void)
{
    rt_pid pid = start_ok(I_HIBERNATE, 0);
    T_ASSERT(becomes_hibernating(pid, 1000));
    /* Suspended with nothing queued, it sleeps hibernated too. */
    T_EQ(rt_sys_suspend(pid, 1000), 0);
    T_ASSERT(becomes_hibernating(pid, 1000));
    T_EQ(rt_sys_resume(pid, 1000), 0);
    T_ASSERT(becomes_hibernating(pid, 1000));
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_ASSERT(becomes_hibernating(pid, 1000));
    /* A callback's result decides again: s_call does not hibernate. */
    T_EQ(call_int(pid, T_ECHO, 4, 1000, NULL), 4);
    T_ASSERT(!becomes_hibernating(pid, 100));
    stop(pid);
}
START_TEST(gen_server_hibernated_server_hibernates_again_after_a_system_message)
{
    t_run(b_hibernate_sys, true);
}
END_TEST

/* ---- calls against a deep mailbox ------------------------------------------------------- */

static void op_call(void *ctx)
{
    T_EQ(call_int(*(rt_pid *)ctx, T_ECHO, 3, 5000, NULL), 3);
}
static void b_deep_call(void)
{
    rt_pid pid = start_ok(I_OK, 0);
    t_assert_cost_independent_of_queue(op_call, &pid);
    stop(pid);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_call_costs_the_same_whatever_the_caller_has_queued)
{
    t_run(b_deep_call, true);
}
END_TEST

static void op_start_stop(void *ctx)
{
    struct init_args a = {I_OK, 0};
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start_link(&self_ops, &a, NULL, &pid, NULL), 0);
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5000, NULL), 0);
}
static void b_deep_start(void)
{
    t_assert_cost_independent_of_queue(op_start_stop, NULL);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_start_and_stop_cost_the_same_whatever_the_caller_has_queued)
{
    t_run(b_deep_start, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gen_server");
    TCase *tc = tcase_create("gen_server");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, gen_server_start_link_returns_only_after_init_has_finished);
    tcase_add_test(tc, gen_server_init_ignore_returns_ignore_and_the_process_exits_normal);
    tcase_add_test(tc, gen_server_init_stop_returns_error_with_the_reason);
    tcase_add_test(tc, gen_server_init_stop_exits_with_the_reason_and_kills_a_non_trapping_starter);
    tcase_add_test(tc, gen_server_init_error_returns_error_and_exits_normal);
    tcase_add_test(tc, gen_server_name_clash_returns_already_started_with_the_holder);
    tcase_add_test(tc,
                   gen_server_start_waits_once_within_its_timeout_for_an_orphan_holding_its_name);
    tcase_add_test(tc, gen_server_start_timeout_kills_the_child_and_returns_timeout);
    tcase_add_test(tc, gen_server_call_returns_the_reply);
    tcase_add_test(tc, gen_server_call_to_a_dead_server_fails_with_noproc);
    tcase_add_test(tc, gen_server_call_fails_with_the_reason_of_a_server_dying_mid_call);
    tcase_add_test(tc, gen_server_call_timeout_drops_the_late_reply);
    tcase_add_test(tc, gen_server_call_to_self_fails_with_calling_self);
    tcase_add_test(tc, gen_server_cast_returns_ok_even_when_the_target_does_not_exist);
    tcase_add_test(tc, gen_server_other_messages_go_to_handle_info);
    tcase_add_test(tc, gen_server_noreply_then_reply_from_any_process);
    tcase_add_test(tc, gen_server_stop_with_reply_runs_terminate_before_replying);
    tcase_add_test(tc, gen_server_stop_from_a_call_gives_the_caller_the_exit_reason);
    tcase_add_test(tc, gen_server_continue_runs_before_any_new_message);
    tcase_add_test(tc, gen_server_timeout_calls_handle_info_timeout_when_idle);
    tcase_add_test(tc, gen_server_timeout_is_cancelled_by_any_message);
    tcase_add_test(tc, gen_server_hibernate_wakes_on_the_next_message_with_its_state);
    tcase_add_test(tc, gen_server_terminate_runs_when_the_parent_exits_and_the_server_traps_exits);
    tcase_add_test(tc, gen_server_terminate_is_not_called_on_shutdown_without_trapping_exits);
    tcase_add_test(tc, gen_server_exit_from_a_non_parent_goes_to_handle_info_when_trapping);
    tcase_add_test(tc, gen_server_stop_is_synchronous_runs_terminate_and_reports_noproc);
    tcase_add_test(tc, gen_server_child_dying_before_the_ack_makes_start_fail_with_its_reason);
    tcase_add_test(tc, gen_server_start_records_parent_and_initial_call_and_can_monitor);
    tcase_add_test(tc, gen_server_without_handle_info_drops_other_messages);
    tcase_add_test(tc, gen_server_hibernate_after_hibernates_an_idle_server);
    tcase_add_test(tc, gen_server_stop_times_out_when_terminate_takes_longer);
    tcase_add_test(tc, gen_server_call_without_handle_call_exits_the_server_with_undef);
    tcase_add_test(tc, gen_server_cast_without_handle_cast_exits_the_server_with_undef);
    tcase_add_test(tc, gen_server_continue_without_handle_continue_exits_the_server_with_undef);
    tcase_add_test(tc, gen_server_hibernated_server_hibernates_again_after_a_system_message);
    tcase_add_test(tc, gen_server_call_costs_the_same_whatever_the_caller_has_queued);
    tcase_add_test(tc, gen_server_start_and_stop_cost_the_same_whatever_the_caller_has_queued);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
