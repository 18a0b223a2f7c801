/*
 * test_process.c: processes, exit signals, links, monitors, registry
 * (OTP-SEMANTICS.md §1.1). Tandem has no distribution: nodedown, global and
 * via names do not apply. link/1 to a dead pid returns -ESRCH (the C form of
 * Erlang's synchronous noproc error) instead of raising.
 */
#include "rt_test.h"

#include <stdio.h>
#include <unistd.h>

enum { T_PING = 1, T_PONG, T_DATA, T_GO, T_RESULT };

static _Atomic int flag;
static _Atomic uint64_t result;

/* ---- spawn, self, normal exit ---- */

static void record_self(void *arg)
{
    (void)arg;
    atomic_store(&result, rt_self());
}

START_TEST(process_runs_and_exits_normal_when_function_returns)
{
    rt_test_start(2);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(record_self, NULL, NULL, &pid), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, 5000, &reason), 0);
    ck_assert_uint_eq(reason, RT_NORMAL);
    ck_assert_uint_eq(atomic_load(&result), pid);
    ck_assert(!rt_is_alive(pid));
    rt_test_stop();
}
END_TEST

static void exit_with_reason(void *arg)
{
    rt_exit(rt_atom_intern((const char *)arg));
}

START_TEST(process_exit_reason_is_reported)
{
    rt_test_start(1);
    ck_assert_str_eq(rt_atom_name(rt_test_run(exit_with_reason, "boom")), "boom");
    rt_test_stop();
}
END_TEST

/* Spawns record_self with a monitor and waits for it to end; its pid. */
static rt_pid spawn_and_await(void)
{
    rt_pid pid;
    rt_ref ref;
    struct rt_spawn_opts o = {.monitor = true, .monitor_ref = &ref};
    ck_assert_int_eq(rt_spawn(record_self, NULL, &o, &pid), 0);
    struct rt_msg *down = rt_receive_ref(ref, 5000);
    ck_assert_ptr_nonnull(down);
    rt_msg_free(down);
    return pid;
}

/* From a process: the slot an exit frees goes to its scheduler's cache,
 * where that scheduler's next spawn finds it. */
static void reuse_body(void *arg)
{
    (void)arg;
    rt_pid a = spawn_and_await();
    rt_pid b = spawn_and_await();
    ck_assert_uint_ne(a, b);
    ck_assert_uint_eq((uint32_t)a, (uint32_t)b); /* same slot, new generation */
    ck_assert_int_eq(rt_send(a, rt_msg_new(T_DATA, 0)), -ESRCH);
    ck_assert(!rt_is_alive(a));
}

START_TEST(pids_are_not_reused_after_exit)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(reuse_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

/* ---- messages ---- */

static void counter(void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg, expect = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = recv_u64(5000);
        if (v != expect)
            rt_exit(rt_atom_intern("out_of_order"));
        expect++;
    }
    atomic_store(&result, expect);
}

static void ordered_sender(void *arg)
{
    rt_pid to = *(rt_pid *)arg;
    for (uint64_t i = 0; i < 20000; i++)
        ck_assert_int_eq(rt_send(to, msg_u64(T_DATA, i)), 0);
}

START_TEST(messages_from_one_sender_arrive_in_order)
{
    rt_test_start(2);
    rt_pid rx;
    ck_assert_int_eq(rt_spawn(counter, (void *)(uintptr_t)20000, NULL, &rx), 0);
    rt_test_run(ordered_sender, &rx);
    rt_atom reason;
    ck_assert_int_eq(rt_join(rx, 10000, &reason), 0);
    ck_assert_str_eq(rt_atom_name(reason), "normal");
    ck_assert_uint_eq(atomic_load(&result), 20000);
    rt_test_stop();
}
END_TEST

static void receive_timeout_body(void *arg)
{
    (void)arg;
    uint64_t t0 = rt_now_ms();
    ck_assert_ptr_null(rt_receive(0));
    ck_assert_uint_lt(rt_now_ms() - t0, 20);
    t0 = rt_now_ms();
    ck_assert_ptr_null(rt_receive(60));
    uint64_t dt = rt_now_ms() - t0;
    ck_assert_uint_ge(dt, 60);
    ck_assert_uint_lt(dt, 1000);
}

START_TEST(receive_times_out_and_zero_polls)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(receive_timeout_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static bool is_odd(const struct rt_msg *m, void *ctx)
{
    (void)ctx;
    return m->u64 & 1;
}

static void selective_body(void *arg)
{
    (void)arg;
    rt_pid me = rt_self();
    for (uint64_t i = 0; i < 6; i++)
        rt_send(me, msg_u64(T_DATA, i));
    struct rt_msg *m = rt_receive_match(is_odd, NULL, 1000);
    ck_assert_uint_eq(m->u64, 1);
    rt_msg_free(m);
    m = rt_receive_match(is_odd, NULL, 1000);
    ck_assert_uint_eq(m->u64, 3);
    rt_msg_free(m);
    /* The skipped messages stay, in arrival order. */
    ck_assert_uint_eq(recv_u64(0), 0);
    ck_assert_uint_eq(recv_u64(0), 2);
    ck_assert_uint_eq(recv_u64(0), 4);
    ck_assert_uint_eq(recv_u64(0), 5);
    ck_assert_ptr_null(rt_receive(0));
}

START_TEST(selective_receive_leaves_other_messages_in_order)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(selective_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void echo_server(void *arg)
{
    (void)arg;
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        if (m->type != T_PING) {
            rt_msg_free(m);
            return;
        }
        rt_pid from = m->from;
        m->type = T_PONG;
        rt_send(from, m);
    }
}

static void call_body(void *arg)
{
    (void)arg;
    rt_pid srv;
    ck_assert_int_eq(rt_spawn(echo_server, NULL, NULL, &srv), 0);
    /* A long mailbox must not be scanned for the reply. */
    rt_pid me = rt_self();
    for (int i = 0; i < 1000; i++)
        rt_send(me, msg_u64(T_DATA, (uint64_t)i));
    rt_ref ref = rt_make_ref();
    struct rt_msg *req = rt_msg_new(T_PING, 0);
    req->ref = ref;
    rt_send(srv, req);
    struct rt_msg *rep = rt_receive_ref(ref, 1000);
    ck_assert_ptr_nonnull(rep);
    ck_assert_uint_eq(rep->type, T_PONG);
    rt_msg_free(rep);
    ck_assert_uint_eq(rt_mailbox_len(), 1000);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_eq(recv_u64(0), (uint64_t)i);
    rt_send(srv, rt_msg_new(T_DATA, 0));
}

START_TEST(receive_ref_finds_reply_and_leaves_older_messages)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(call_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void dtor_count(struct rt_msg *m)
{
    (void)m;
    atomic_fetch_add(&flag, 1);
}

START_TEST(send_to_dead_pid_fails_and_runs_the_message_destructor)
{
    rt_test_start(1);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(record_self, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 5000, NULL), 0);
    atomic_store(&flag, 0);
    struct rt_msg *m = rt_msg_new(T_DATA, 16);
    m->dtor = dtor_count;
    ck_assert_int_eq(rt_send(pid, m), -ESRCH);
    ck_assert_int_eq(atomic_load(&flag), 1);
    rt_test_stop();
}
END_TEST

static void die_with_queued(void *arg)
{
    (void)arg;
    rt_pid me = rt_self();
    struct rt_msg *m = rt_msg_new(T_DATA, 0);
    m->dtor = dtor_count;
    rt_send(me, m);
    rt_exit(rt_atom_intern("shutdown:test"));
}

START_TEST(messages_left_in_a_dead_mailbox_are_destroyed)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    rt_test_run(die_with_queued, NULL);
    ck_assert_int_eq(atomic_load(&flag), 1);
    rt_test_stop();
}
END_TEST

/* ---- links and exit signals ---- */

struct link_case {
    const char *child_reason; /* child exits with this */
    bool trap;
    _Atomic uint64_t got_reason;
    _Atomic int got_exit_msg;
};

static void exiter(void *arg)
{
    struct link_case *c = arg;
    struct rt_msg *m = rt_receive(5000); /* wait for "go" */
    rt_msg_free(m);
    rt_exit(rt_atom_intern(c->child_reason));
}

static void linker(void *arg)
{
    struct link_case *c = arg;
    rt_trap_exit(c->trap);
    rt_pid child;
    struct rt_spawn_opts o = {.link = true};
    ck_assert_int_eq(rt_spawn(exiter, c, &o, &child), 0);
    rt_send(child, rt_msg_new(T_GO, 0));
    struct rt_msg *m = rt_receive(300);
    if (m) {
        ck_assert_uint_eq(m->type, RT_MSG_EXIT);
        ck_assert_uint_eq(m->from, child);
        atomic_store(&c->got_reason, m->u64);
        atomic_store(&c->got_exit_msg, 1);
        rt_msg_free(m);
    }
}

START_TEST(link_normal_exit_does_not_kill_linked_process)
{
    rt_test_start(2);
    struct link_case c = {.child_reason = "normal"};
    ck_assert_uint_eq(rt_test_run(linker, &c), RT_NORMAL);
    ck_assert_int_eq(atomic_load(&c.got_exit_msg), 0);
    rt_test_stop();
}
END_TEST

START_TEST(link_abnormal_exit_kills_non_trapping_linked_process_with_same_reason)
{
    rt_test_start(2);
    struct link_case c = {.child_reason = "crashed"};
    ck_assert_str_eq(rt_atom_name(rt_test_run(linker, &c)), "crashed");
    rt_test_stop();
}
END_TEST

START_TEST(trap_exit_turns_exit_signal_into_message)
{
    rt_test_start(2);
    struct link_case c = {.child_reason = "crashed", .trap = true};
    ck_assert_uint_eq(rt_test_run(linker, &c), RT_NORMAL);
    ck_assert_int_eq(atomic_load(&c.got_exit_msg), 1);
    ck_assert_str_eq(rt_atom_name((rt_atom)atomic_load(&c.got_reason)), "crashed");
    rt_test_stop();
}
END_TEST

START_TEST(trapping_process_gets_exit_message_for_normal_exit_of_link)
{
    rt_test_start(1);
    struct link_case c = {.child_reason = "normal", .trap = true};
    ck_assert_uint_eq(rt_test_run(linker, &c), RT_NORMAL);
    ck_assert_int_eq(atomic_load(&c.got_exit_msg), 1);
    ck_assert_uint_eq(atomic_load(&c.got_reason), RT_NORMAL);
    rt_test_stop();
}
END_TEST

START_TEST(link_propagated_kill_is_trappable_and_stays_kill)
{
    rt_test_start(1);
    /* A process that exits with reason `kill` (not killed by exit/2) sends
     * `kill` along its links, and that can be trapped. */
    struct link_case c = {.child_reason = "kill", .trap = true};
    ck_assert_uint_eq(rt_test_run(linker, &c), RT_NORMAL);
    ck_assert_uint_eq(atomic_load(&c.got_reason), RT_KILL);
    struct link_case d = {.child_reason = "kill", .trap = false};
    ck_assert_uint_eq(rt_test_run(linker, &d), RT_KILL);
    rt_test_stop();
}
END_TEST

static void trap_forever(void *arg)
{
    (void)arg;
    rt_trap_exit(true);
    atomic_store(&flag, 1);
    for (;;)
        rt_msg_free(rt_receive(RT_INFINITY));
}

static void linked_to_victim(void *arg)
{
    rt_pid victim = *(rt_pid *)arg;
    rt_trap_exit(true);
    ck_assert_int_eq(rt_link(victim), 0);
    atomic_store(&flag, 2);
    struct rt_msg *m = recv_type(RT_MSG_EXIT, 5000);
    ck_assert_ptr_nonnull(m);
    atomic_store(&result, m->u64);
    rt_msg_free(m);
}

START_TEST(exit_kill_is_untrappable_and_links_see_killed)
{
    rt_test_start(2);
    atomic_store(&flag, 0);
    rt_pid victim, watcher;
    ck_assert_int_eq(rt_spawn(trap_forever, NULL, NULL, &victim), 0);
    while (atomic_load(&flag) != 1)
        ;
    ck_assert_int_eq(rt_spawn(linked_to_victim, &victim, NULL, &watcher), 0);
    while (atomic_load(&flag) != 2)
        ;
    ck_assert_int_eq(rt_exit_signal(victim, RT_KILL), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(victim, 5000, &reason), 0);
    ck_assert_uint_eq(reason, RT_KILLED);
    ck_assert_int_eq(rt_join(watcher, 5000, NULL), 0);
    ck_assert_uint_eq(atomic_load(&result), RT_KILLED);
    rt_test_stop();
}
END_TEST

static void wait_then_report(void *arg)
{
    (void)arg;
    struct rt_msg *m = rt_receive(300);
    atomic_store(&flag, m ? 2 : 1);
    rt_msg_free(m);
}

START_TEST(exit_normal_to_another_non_trapping_process_does_nothing)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(wait_then_report, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_exit_signal(pid, RT_NORMAL), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, 5000, &reason), 0);
    ck_assert_uint_eq(reason, RT_NORMAL);
    ck_assert_int_eq(atomic_load(&flag), 1); /* it lived to time out */
    rt_test_stop();
}
END_TEST

static void exit_self_normal(void *arg)
{
    (void)arg;
    rt_exit_signal(rt_self(), RT_NORMAL);
    atomic_store(&flag, 99); /* never reached */
}

START_TEST(exit_normal_to_self_terminates_the_caller)
{
    rt_test_start(1);
    atomic_store(&flag, 0);
    ck_assert_uint_eq(rt_test_run(exit_self_normal, NULL), RT_NORMAL);
    ck_assert_int_eq(atomic_load(&flag), 0);
    rt_test_stop();
}
END_TEST

START_TEST(exit_signal_with_other_reason_kills_non_trapping_process)
{
    rt_test_start(1);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(wait_then_report, NULL, NULL, &pid), 0);
    ck_assert_int_eq(rt_exit_signal(pid, rt_atom_intern("stop_now")), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, 5000, &reason), 0);
    ck_assert_str_eq(rt_atom_name(reason), "stop_now");
    rt_test_stop();
}
END_TEST

static void link_dead_body(void *arg)
{
    (void)arg;
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(record_self, NULL, NULL, &pid), 0);
    wait_until_dead(pid);
    ck_assert_int_eq(rt_link(pid), -ESRCH);
}

START_TEST(link_to_dead_process_fails_with_esrch)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(link_dead_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void unlink_body(void *arg)
{
    (void)arg;
    struct link_case c = {.child_reason = "crashed"};
    rt_pid child;
    struct rt_spawn_opts o = {.link = true};
    ck_assert_int_eq(rt_spawn(exiter, &c, &o, &child), 0);
    ck_assert_int_eq(rt_unlink(child), 0);
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(rt_self(), &info), 0);
    ck_assert_uint_eq(info.links, 0);
    rt_send(child, rt_msg_new(T_GO, 0));
    wait_until_dead(child);
    ck_assert_ptr_null(rt_receive(50)); /* and we were not killed */
}

START_TEST(unlink_removes_the_link_on_both_sides)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(unlink_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void link_twice_body(void *arg)
{
    (void)arg;
    rt_pid child;
    ck_assert_int_eq(rt_spawn(wait_then_report, NULL, NULL, &child), 0);
    ck_assert_int_eq(rt_link(child), 0);
    ck_assert_int_eq(rt_link(child), 0);
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(rt_self(), &info), 0);
    ck_assert_uint_eq(info.links, 1);
    rt_exit_signal(child, RT_KILL);
    rt_trap_exit(true);
}

START_TEST(repeated_link_is_a_single_link)
{
    rt_test_start(1);
    /* The linker is killed by the child's `killed` unless it traps in time;
     * either way the count above was checked first. */
    rt_test_run(link_twice_body, NULL);
    rt_test_stop();
}
END_TEST

/* ---- monitors ---- */

static void monitor_body(void *arg)
{
    (void)arg;
    struct link_case c = {.child_reason = "went_away"};
    rt_pid child;
    ck_assert_int_eq(rt_spawn(exiter, &c, NULL, &child), 0);
    rt_ref r1 = rt_monitor(child);
    rt_ref r2 = rt_monitor(child);
    ck_assert_uint_ne(r1, r2);
    rt_send(child, rt_msg_new(T_GO, 0));
    struct rt_msg *d1 = rt_receive_ref(r1, 5000);
    struct rt_msg *d2 = rt_receive_ref(r2, 5000);
    ck_assert_ptr_nonnull(d1);
    ck_assert_ptr_nonnull(d2);
    ck_assert_uint_eq(d1->type, RT_MSG_DOWN);
    ck_assert_uint_eq(d1->from, child);
    ck_assert_str_eq(rt_atom_name((rt_atom)d1->u64), "went_away");
    rt_msg_free(d1);
    rt_msg_free(d2);
    ck_assert_ptr_null(rt_receive(50)); /* exactly one DOWN per monitor */
}

START_TEST(monitors_stack_and_each_delivers_one_down_with_the_reason)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(monitor_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void monitor_dead_body(void *arg)
{
    (void)arg;
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(record_self, NULL, NULL, &pid), 0);
    wait_until_dead(pid);
    rt_ref r = rt_monitor(pid);
    struct rt_msg *d = rt_receive_ref(r, 0);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(d->u64, RT_NOPROC);
    rt_msg_free(d);
}

START_TEST(monitor_of_dead_process_delivers_noproc_at_once)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(monitor_dead_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void demonitor_body(void *arg)
{
    (void)arg;
    struct link_case c = {.child_reason = "bye"};
    rt_pid child;
    ck_assert_int_eq(rt_spawn(exiter, &c, NULL, &child), 0);
    rt_ref r = rt_monitor(child);
    rt_send(child, rt_msg_new(T_GO, 0));
    wait_until_dead(child);
    rt_sleep(20); /* the DOWN is in our mailbox by now */
    ck_assert_int_eq(rt_demonitor(r, true), -ENOENT);
    ck_assert_ptr_null(rt_receive(50));
    /* Without flush, a demonitor before death means no DOWN ever. */
    rt_pid c2;
    ck_assert_int_eq(rt_spawn(exiter, &c, NULL, &c2), 0);
    rt_ref r2 = rt_monitor(c2);
    ck_assert_int_eq(rt_demonitor(r2, false), 0);
    rt_send(c2, rt_msg_new(T_GO, 0));
    wait_until_dead(c2);
    ck_assert_ptr_null(rt_receive(50));
}

START_TEST(demonitor_removes_the_monitor_and_flush_removes_a_queued_down)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(demonitor_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void send_then_die(void *arg)
{
    rt_pid to = *(rt_pid *)arg;
    rt_send(to, msg_u64(T_DATA, 7));
    rt_exit(rt_atom_intern("after_send"));
}

static void order_body(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        rt_pid me = rt_self(), child;
        rt_ref ref;
        struct rt_spawn_opts o = {.monitor = true, .monitor_ref = &ref};
        ck_assert_int_eq(rt_spawn(send_then_die, &me, &o, &child), 0);
        struct rt_msg *first = rt_receive(5000);
        ck_assert_ptr_nonnull(first);
        ck_assert_uint_eq(first->type, T_DATA); /* the message, never the DOWN first */
        rt_msg_free(first);
        struct rt_msg *down = rt_receive(5000);
        ck_assert_uint_eq(down->type, RT_MSG_DOWN);
        ck_assert_uint_eq(down->ref, ref);
        rt_msg_free(down);
    }
}

START_TEST(message_sent_before_death_arrives_before_the_down)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(order_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

/* ---- registry ---- */

static void named_waiter(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(5000));
}

static void registry_body(void *arg)
{
    (void)arg;
    rt_pid a, b;
    struct rt_spawn_opts o = {.name = "alpha"};
    ck_assert_int_eq(rt_spawn(named_waiter, NULL, &o, &a), 0);
    ck_assert_uint_eq(rt_whereis("alpha"), a);
    ck_assert_int_eq(rt_spawn(named_waiter, NULL, &o, &b), -EEXIST);
    ck_assert_int_eq(rt_register("alpha", rt_self()), -EEXIST);
    ck_assert_int_eq(rt_register("self_name", rt_self()), 0);
    ck_assert_int_eq(rt_register("other_name", rt_self()), -EBUSY);
    ck_assert_int_eq(rt_unregister("self_name"), 0);
    ck_assert_int_eq(rt_unregister("self_name"), -ENOENT);
    ck_assert_int_eq(rt_send_name("nobody", rt_msg_new(T_DATA, 0)), -ESRCH);
    rt_ref r = rt_monitor(a);
    ck_assert_int_eq(rt_send_name("alpha", rt_msg_new(T_DATA, 0)), 0);
    struct rt_msg *d = rt_receive_ref(r, 5000);
    ck_assert_ptr_nonnull(d);
    /* By the time the DOWN arrives the name is already free. */
    ck_assert_uint_eq(rt_whereis("alpha"), 0);
    rt_msg_free(d);
    ck_assert_int_eq(rt_spawn(named_waiter, NULL, &o, &b), 0);
    rt_send(b, rt_msg_new(T_DATA, 0));
}

START_TEST(registered_names_are_unique_and_freed_before_exit_signals)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(registry_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

/* ---- aliases ---- */

static void late_replier(void *arg)
{
    (void)arg;
    struct rt_msg *m = rt_receive(5000);
    rt_pid to = m->from;
    rt_ref alias = m->ref;
    rt_msg_free(m);
    rt_sleep(100);
    rt_send_alias(to, alias, rt_msg_new(T_PONG, 0));
}

static void alias_body(void *arg)
{
    (void)arg;
    rt_pid srv;
    ck_assert_int_eq(rt_spawn(late_replier, NULL, NULL, &srv), 0);
    rt_ref alias = rt_alias();
    struct rt_msg *req = rt_msg_new(T_PING, 0);
    req->ref = alias;
    rt_send(srv, req);
    ck_assert_ptr_null(rt_receive_ref(alias, 20)); /* timed out */
    rt_unalias(alias);
    wait_until_dead(srv);
    ck_assert_ptr_null(rt_receive(50)); /* the late reply never lands */
}

START_TEST(reply_to_a_deactivated_alias_is_dropped)
{
    rt_test_start(2);
    ck_assert_uint_eq(rt_test_run(alias_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

/* ---- crash reports ---- */

static _Atomic int crashes;
static char crash_text[256];

static void capture_crash(const struct rt_crash_report *r, void *ctx)
{
    (void)ctx;
    snprintf(crash_text, sizeof crash_text, "%llu|%s|%s|%s", (unsigned long long)r->pid, r->name,
             r->initial_call, rt_atom_name(r->reason));
    atomic_fetch_add(&crashes, 1);
}

START_TEST(abnormal_exit_writes_one_crash_report_and_clean_exits_none)
{
    rt_test_start(1);
    rt_set_crash_handler(capture_crash, NULL);
    atomic_store(&crashes, 0);
    rt_pid pid;
    struct rt_spawn_opts o = {.name = "crasher", .initial_call = "test:exit_with_reason"};
    ck_assert_int_eq(rt_spawn(exit_with_reason, "bad_thing", &o, &pid), 0);
    ck_assert_int_eq(rt_join(pid, 5000, NULL), 0);
    ck_assert_int_eq(atomic_load(&crashes), 1);
    char expect[256];
    snprintf(expect, sizeof expect, "%llu|crasher|test:exit_with_reason|bad_thing",
             (unsigned long long)pid);
    ck_assert_str_eq(crash_text, expect);
    rt_test_run(exit_with_reason, "shutdown:done");
    rt_test_run(exit_with_reason, "normal");
    rt_test_run(exit_with_reason, "shutdown");
    ck_assert_int_eq(atomic_load(&crashes), 1);
    rt_set_crash_handler(NULL, NULL);
    rt_test_stop();
}
END_TEST

/* The default report lines: "<time> <level>: <text>", the time RFC 3339 UTC
 * to the ms, control bytes and DEL as \xNN and '\' doubled so that a line
 * stays one line; no JSON (that is the application's handler's concern). */
static void expect_report_line(const char *line, const char *rest)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd')
            ck_assert_msg(line[i] >= '0' && line[i] <= '9', "no time at the start of: %s", line);
        else
            ck_assert_msg(line[i] == shape[i], "no time at the start of: %s", line);
    }
    ck_assert_str_eq(line + sizeof shape - 1, rest);
}

START_TEST(default_reports_are_text_lines_with_control_bytes_shown_as_hex)
{
    rt_test_start(1);
    rt_set_crash_handler(NULL, NULL);
    rt_set_log_handler(NULL, NULL);
    char out[2048];
    fflush(stderr);
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), 2), 0);
    rt_log(RT_LOG_WARNING, "a\"b\\c\nd\x01\x7f\xc3\xa9");
    rt_pid pid;
    struct rt_spawn_opts o = {.name = "crasher", .initial_call = "test:exit\twith"};
    int src = rt_spawn(exit_with_reason, "bad\nthing", &o, &pid);
    int jrc = src == 0 ? rt_join(pid, 5000, NULL) : src;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, sizeof out - 1, tmp);
    out[n] = 0;
    fclose(tmp);
    ck_assert_int_eq(jrc, 0);

    char *nl = strchr(out, '\n');
    ck_assert_ptr_nonnull(nl);
    *nl = 0;
    expect_report_line(out, "warning: a\"b\\\\c\\x0ad\\x01\\x7f\xc3\xa9");
    char *second = nl + 1;
    nl = strchr(second, '\n');
    ck_assert_ptr_nonnull(nl);
    *nl = 0;
    ck_assert_str_eq(nl + 1, ""); /* two lines, nothing else */
    char expect[256];
    snprintf(expect, sizeof expect,
             "error: crash pid=%llu name=crasher initial_call=test:exit\\x09with "
             "reason=bad\\x0athing last_message_type=0 state=",
             (unsigned long long)pid);
    expect_report_line(second, expect);
    rt_test_stop();
}
END_TEST

/* ---- process limit ---- */

static void limit_body(void *arg)
{
    (void)arg;
    rt_pid kids[64];
    int n = 0, rc = 0;
    while (n < 64 && (rc = rt_spawn(named_waiter, NULL, NULL, &kids[n])) == 0)
        n++;
    ck_assert_int_eq(rc, -EAGAIN);
    ck_assert_int_gt(n, 5);
    for (int i = 0; i < n; i++)
        rt_send(kids[i], rt_msg_new(T_DATA, 0));
}

START_TEST(spawn_beyond_the_process_limit_fails_cleanly)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 1;
    cfg.max_processes = 16;
    ck_assert_int_eq(rt_start(&cfg), 0);
    ck_assert_uint_eq(rt_test_run(limit_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static void spin_then_drain(void *arg)
{
    (void)arg;
    atomic_store(&flag, 1);
    uint64_t end = rt_now_ms() + 300;
    while (rt_now_ms() < end)
        ; /* no runtime call: nothing is drained meanwhile */
    rt_msg_free(rt_receive(1000));
}

static void mailbox_count_body(void *arg)
{
    rt_pid busy = *(rt_pid *)arg;
    rt_ref r = rt_monitor(busy); /* a monitor signal waits in its inbox */
    ck_assert_int_eq(rt_send(busy, rt_msg_new(T_DATA, 0)), 0);
    struct rt_proc_info info;
    ck_assert_int_eq(rt_proc_info(busy, &info), 0);
    ck_assert_uint_eq(info.mailbox_len, 1); /* the message, not the signal */
    rt_msg_free(rt_receive_ref(r, 5000));
}

START_TEST(mailbox_length_counts_messages_not_pending_signals)
{
    rt_test_start(2);
    atomic_store(&flag, 0);
    static rt_pid busy;
    ck_assert_int_eq(rt_spawn(spin_then_drain, NULL, NULL, &busy), 0);
    while (!atomic_load(&flag))
        ;
    ck_assert_uint_eq(rt_test_run(mailbox_count_body, &busy), RT_NORMAL);
    rt_test_stop();
}
END_TEST

static _Atomic int child_ran;

static void mark_child(void *arg)
{
    (void)arg;
    atomic_store(&child_ran, 1);
}

static void spawn_with_kill_pending(void *arg)
{
    (void)arg;
    atomic_store(&flag, 1);
    while (atomic_load(&flag) != 2)
        ;                                   /* no runtime call: the kill stays pending */
    rt_spawn(mark_child, NULL, NULL, NULL); /* charging here handles the kill */
    rt_sleep(1000);
}

START_TEST(a_child_spawned_by_a_dying_process_still_runs)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    cfg.reductions = 1; /* every runtime call ends the slice */
    ck_assert_int_eq(rt_start(&cfg), 0);
    atomic_store(&flag, 0);
    atomic_store(&child_ran, 0);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(spawn_with_kill_pending, NULL, NULL, &pid), 0);
    while (atomic_load(&flag) != 1)
        ;
    ck_assert_int_eq(rt_exit_signal(pid, RT_KILL), 0);
    atomic_store(&flag, 2);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, 5000, &reason), 0);
    ck_assert_uint_eq(reason, RT_KILLED);
    for (int i = 0; i < 500 && !atomic_load(&child_ran); i++)
        usleep(1000);
    ck_assert_int_eq(atomic_load(&child_ran), 1);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_process", process_runs_and_exits_normal_when_function_returns,
             process_exit_reason_is_reported, pids_are_not_reused_after_exit,
             messages_from_one_sender_arrive_in_order, receive_times_out_and_zero_polls,
             selective_receive_leaves_other_messages_in_order,
             receive_ref_finds_reply_and_leaves_older_messages,
             send_to_dead_pid_fails_and_runs_the_message_destructor,
             messages_left_in_a_dead_mailbox_are_destroyed,
             link_normal_exit_does_not_kill_linked_process,
             link_abnormal_exit_kills_non_trapping_linked_process_with_same_reason,
             trap_exit_turns_exit_signal_into_message,
             trapping_process_gets_exit_message_for_normal_exit_of_link,
             link_propagated_kill_is_trappable_and_stays_kill,
             exit_kill_is_untrappable_and_links_see_killed,
             exit_normal_to_another_non_trapping_process_does_nothing,
             exit_normal_to_self_terminates_the_caller,
             exit_signal_with_other_reason_kills_non_trapping_process,
             link_to_dead_process_fails_with_esrch, unlink_removes_the_link_on_both_sides,
             repeated_link_is_a_single_link,
             monitors_stack_and_each_delivers_one_down_with_the_reason,
             monitor_of_dead_process_delivers_noproc_at_once,
             demonitor_removes_the_monitor_and_flush_removes_a_queued_down,
             message_sent_before_death_arrives_before_the_down,
             registered_names_are_unique_and_freed_before_exit_signals,
             reply_to_a_deactivated_alias_is_dropped,
             abnormal_exit_writes_one_crash_report_and_clean_exits_none,
             default_reports_are_text_lines_with_control_bytes_shown_as_hex,
             spawn_beyond_the_process_limit_fails_cleanly,
             mailbox_length_counts_messages_not_pending_signals,
             a_child_spawned_by_a_dying_process_still_runs)
