/*
 * test_enter_loop.c: gen_server:enter_loop (OTP-SEMANTICS §1.4): a process
 * started by proc_lib that did its own initialisation becomes a gen_server.
 * OTP's rules: it must have been started by proc_lib; given a name, it must
 * be registered under it; the call does not return. Tandem has no
 * global/via names: only local names are tested.
 */
#include <errno.h>

#include "otp_test.h"
#include "rt/gen_server.h"
#include "rt/sys.h"

enum { T_ECHO = 1, T_ADD, T_GET, T_NOTE };

static atomic_int terminated_with;
static atomic_int continued;
static atomic_int timeouts;
static atomic_int infos;

static void t_reset(void)
{
    atomic_store(&terminated_with, -1);
    atomic_store(&continued, 0);
    atomic_store(&timeouts, 0);
    atomic_store(&infos, 0);
}

struct counter {
    int n;
};

static void c_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                   struct rt_gs_result *r)
{
    struct counter *c = state;
    if (req->type == T_GET)
        rt_gs_reply(r, t_int_msg(T_GET, c->n));
    else
        rt_gs_reply(r, rt_gs_take(r));
}

static void c_cast(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    ((struct counter *)state)->n += t_int(msg);
}

static void c_info(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    if (msg->type == RT_MSG_GS_TIMEOUT)
        atomic_fetch_add(&timeouts, 1);
    else if (msg->type == T_NOTE)
        /* A message queued before the loop: handle_continue came first. */
        atomic_store(&infos, atomic_load(&continued) ? 2 : 1);
}

static void c_continue(struct rt_msg *cont, void *state, struct rt_gs_result *r)
{
    atomic_store(&continued, t_int(cont));
}

static void c_terminate(rt_atom reason, void *state)
{
    atomic_store(&terminated_with, (int)reason);
}

/* No init: enter_loop does not use it. */
static const struct rt_gen_server_ops c_ops = {
    .name = "entered",
    .handle_call = c_call,
    .handle_cast = c_cast,
    .handle_info = c_info,
    .handle_continue = c_continue,
    .terminate = c_terminate,
};

enum how_kind { HOW_NONE = 0, HOW_CONTINUE, HOW_TIMEOUT };

struct entry_args {
    const char *name;      /* passed to enter_loop as the server name */
    const char *register_; /* registered under this before enter_loop */
    enum how_kind how;
    int start_value;
};

/* A proc_lib child that initialises itself, acks, then enters the loop. */
static void entry(void *arg, const struct rt_proc_starter *st)
{
    struct entry_args a = *(struct entry_args *)arg;
    struct counter *c = rt_calloc(1, sizeof *c);
    c->n = a.start_value;
    if (a.register_)
        T_EQ(rt_register(a.register_, rt_self()), 0);
    struct rt_gs_result how = RT_GS_RESULT_INIT;
    if (a.how == HOW_CONTINUE) {
        /* Queued before the ack, so before any request of the starter. */
        rt_send(rt_self(), rt_msg_new(T_NOTE, 0));
        rt_gs_continue(&how, t_int_msg(0, 7));
    } else if (a.how == HOW_TIMEOUT) {
        rt_gs_timeout(&how, 10);
    }
    rt_proc_init_ack(st);
    struct rt_start_opts o = {.name = a.name};
    rt_gen_server_enter_loop(&c_ops, &o, c, a.how == HOW_NONE ? NULL : &how);
}

static int start_entry(struct entry_args *a, rt_pid *pid)
{
    return rt_proc_start(entry, a, NULL, pid, NULL);
}

/* Starts the entry monitored (it may exit before start returns) and waits
 * for its exit; returns its reason. */
static rt_atom start_and_exit_reason(struct entry_args *a)
{
    rt_ref mref = 0;
    struct rt_start_opts o = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_proc_start(entry, a, &o, NULL, NULL), 0);
    struct rt_msg *d = rt_receive_ref(mref, 5000);
    T_ASSERT(d);
    rt_atom why = (rt_atom)d->u64;
    rt_msg_free(d);
    return why;
}

static int call_int(rt_pid pid, uint32_t type, int v)
{
    struct rt_msg *rep = NULL;
    int rc = rt_gen_server_call(pid, t_int_msg(type, v), 1000, &rep, NULL);
    T_EQ(rc, 0);
    rc = t_int(rep);
    rt_msg_free(rep);
    return rc;
}

/* ---- the process becomes a server ------------------------------------------------- */

static void b_becomes_server(void)
{
    struct entry_args a = {.start_value = 40};
    rt_pid pid = 0;
    T_EQ(start_entry(&a, &pid), 0);
    T_EQ(call_int(pid, T_ECHO, 5), 5);
    rt_gen_server_cast(pid, t_int_msg(T_ADD, 2));
    T_EQ(call_int(pid, T_GET, 0), 42);
    /* sys works, with the state it was given, and the starter as parent. */
    struct rt_sys_status ss;
    T_EQ(rt_sys_get_status(pid, 1000, &ss), 0);
    T_ASSERT(strcmp(ss.behaviour, "gen_server") == 0);
    T_ASSERT(strcmp(ss.module, "entered") == 0);
    T_EQ(ss.parent, rt_self());
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 1000, &st), 0);
    T_ASSERT(st.state != NULL);
    /* It never returns: the process ends as the server, with the reason
     * stop gives, after terminate (a return would have exited normal). */
    rt_atom why = 0;
    T_EQ(rt_gen_server_stop(pid, rt_atom_intern("done_here"), 5000, &why), 0);
    T_EQ(atomic_load(&terminated_with), rt_atom_intern("done_here"));
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_enter_loop_makes_a_proc_lib_process_a_server_and_does_not_return)
{
    t_run(b_becomes_server, true);
}
END_TEST

/* ---- the server name ----------------------------------------------------------------- */

static void b_name(void)
{
    /* Registered under the name it gives: reachable by it. */
    struct entry_args ok = {.name = "entered", .register_ = "entered", .start_value = 1};
    rt_pid pid = 0;
    T_EQ(start_entry(&ok, &pid), 0);
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_server_call_name("entered", t_int_msg(T_GET, 0), 1000, &rep, NULL), 0);
    T_EQ(t_int(rep), 1);
    rt_msg_free(rep);
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5000, NULL), 0);
    atomic_store(&terminated_with, -1);

    /* Not registered at all. */
    struct entry_args none = {.name = "entered"};
    T_EQ(start_and_exit_reason(&none), rt_atom_intern("process_not_registered"));
    T_EQ(atomic_load(&terminated_with), -1); /* never a server */

    /* Registered under another name. */
    struct entry_args other = {.name = "entered", .register_ = "something_else"};
    T_EQ(start_and_exit_reason(&other), rt_atom_intern("process_not_registered"));
    T_EQ(rt_whereis("something_else"), 0);

    /* The name is someone else's. */
    struct entry_args holder = {.name = "entered", .register_ = "entered", .start_value = 9};
    rt_pid first = 0;
    T_EQ(start_entry(&holder, &first), 0);
    T_EQ(start_and_exit_reason(&none), rt_atom_intern("process_not_registered"));
    T_EQ(rt_whereis("entered"), first);
    T_EQ(rt_gen_server_stop(first, RT_NORMAL, 5000, NULL), 0);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_enter_loop_with_a_name_exits_unless_registered_under_it)
{
    t_run(b_name, true);
}
END_TEST

/* ---- started by proc_lib ----------------------------------------------------------------- */

static void plain_entry(void *arg)
{
    struct counter *c = rt_calloc(1, sizeof *c);
    rt_gen_server_enter_loop(&c_ops, NULL, c, NULL);
}

static void b_not_proc_lib(void)
{
    rt_pid pid = 0;
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(plain_entry, NULL, &so, &pid), 0);
    struct rt_msg *d = rt_receive_ref(mref, 5000);
    T_ASSERT(d);
    T_EQ(d->u64, rt_atom_intern("process_was_not_started_by_proc_lib"));
    rt_msg_free(d);
    T_EQ(atomic_load(&terminated_with), -1);
}
START_TEST(gen_server_enter_loop_exits_when_the_process_was_not_started_by_proc_lib)
{
    t_run(b_not_proc_lib, true);
}
END_TEST

/* ---- the first result ------------------------------------------------------------------ */

static void b_how(void)
{
    /* {continue, C}: runs before the message queued before the loop. */
    struct entry_args cont = {.how = HOW_CONTINUE};
    rt_pid pid = 0;
    T_EQ(start_entry(&cont, &pid), 0);
    T_EQ(call_int(pid, T_ECHO, 1), 1);
    T_EQ(atomic_load(&continued), 7);
    T_EQ(atomic_load(&infos), 2);
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5000, NULL), 0);

    /* A timeout: handle_info(timeout) when idle. */
    struct entry_args tmo = {.how = HOW_TIMEOUT};
    T_EQ(start_entry(&tmo, &pid), 0);
    for (int i = 0; i < 500 && atomic_load(&timeouts) == 0; i++)
        rt_sleep(2);
    T_EQ(atomic_load(&timeouts), 1);
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5000, NULL), 0);
}
START_TEST(gen_server_enter_loop_starts_with_the_timeout_or_continue_it_is_given)
{
    t_run(b_how, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("enter_loop");
    TCase *tc = tcase_create("enter_loop");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, gen_server_enter_loop_makes_a_proc_lib_process_a_server_and_does_not_return);
    tcase_add_test(tc, gen_server_enter_loop_with_a_name_exits_unless_registered_under_it);
    tcase_add_test(tc, gen_server_enter_loop_exits_when_the_process_was_not_started_by_proc_lib);
    tcase_add_test(tc, gen_server_enter_loop_starts_with_the_timeout_or_continue_it_is_given);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
