/* test_gen_event.c: gen_event (OTP's gen_event reference and gen_event.erl).
 * Handlers are ops tables with an id (OTP's Module / {Module, Id}); a
 * handler that fails calls rt_ge_error (C has no exceptions); there are no
 * global/via names; change_code names no module. */
#include <errno.h>

#include "otp_test.h"
#include "rt/gen_event.h"
#include "rt/sys.h"

/* What the test handlers record, in order: (tag, what, value). */
enum { W_INIT = 1, W_SWAP_INIT, W_EVENT, W_CALL, W_INFO, W_TERM };
static atomic_int log_tag[256], log_what[256], log_val[256];
static atomic_int log_n;
static atomic_int term_reason[16]; /* last terminate reason per tag */

static void t_reset(void)
{
    atomic_store(&log_n, 0);
    for (int i = 0; i < 256; i++) {
        atomic_store(&log_tag[i], 0);
        atomic_store(&log_what[i], 0);
        atomic_store(&log_val[i], 0);
    }
    for (int i = 0; i < 16; i++)
        atomic_store(&term_reason[i], -1);
}

static void note(int tag, int what, int val)
{
    int i = atomic_fetch_add(&log_n, 1);
    if (i < 256) {
        atomic_store(&log_tag[i], tag);
        atomic_store(&log_what[i], what);
        atomic_store(&log_val[i], val);
    }
}

/* The n-th entry (counting from 0) with this tag and kind, its value or -1. */
static int logged(int tag, int what, int nth)
{
    int n = atomic_load(&log_n);
    for (int i = 0; i < n && i < 256; i++)
        if (atomic_load(&log_tag[i]) == tag && atomic_load(&log_what[i]) == what && nth-- == 0)
            return atomic_load(&log_val[i]);
    return -1;
}

static int count(int tag, int what)
{
    int c = 0;
    while (logged(tag, what, c) >= 0)
        c++;
    return c;
}

/* ---- the test handler ----------------------------------------------------------------- */

enum { A_OK = 0, A_REFUSE, A_HIBERNATE };
struct h_args {
    int tag;
    int mode;
};

struct h_state {
    int tag;
    int events;
    int vsn;
};

/* Events and calls carry a command for one tag (0: every handler). */
enum { C_NOTE = 0, C_FAIL, C_REMOVE, C_SWAP, C_HIBERNATE, C_SLEEP };
struct cmd {
    int cmd;
    int tag;
    int val;
};

static struct rt_msg *cmd_msg(int cmd, int tag, int val)
{
    struct cmd c = {cmd, tag, val};
    return rt_msg_copy(1, &c, sizeof c);
}

static struct cmd cmd_of(const struct rt_msg *m)
{
    struct cmd c = {0};
    if (m->size >= sizeof c)
        memcpy(&c, m->data, sizeof c);
    return c;
}

static const struct rt_ge_handler_ops rec_ops, rec2_ops;

static void h_init(const void *arg, size_t size, const struct rt_ge_swap *swap,
                   struct rt_ge_result *r)
{
    struct h_args a = {0};
    if (arg && size >= sizeof a)
        memcpy(&a, arg, sizeof a);
    if (a.mode == A_REFUSE) {
        rt_ge_error(r, rt_atom_intern("init_refused"));
        return;
    }
    struct h_state *s = rt_calloc(1, sizeof *s);
    s->tag = a.tag;
    r->state = s;
    if (swap)
        note(a.tag, W_SWAP_INIT, !swap->found ? 0 : swap->term ? t_int(swap->term) : 1);
    else
        note(a.tag, W_INIT, 0);
    if (a.mode == A_HIBERNATE)
        rt_ge_hibernate(r);
}

/* A command aimed at this handler: fail, remove, swap, hibernate, sleep. */
static void obey(struct h_state *s, struct cmd c, struct rt_ge_result *r)
{
    if (c.tag && c.tag != s->tag)
        return;
    switch (c.cmd) {
    case C_FAIL:
        rt_ge_error(r, rt_atom_intern("handler_failed"));
        break;
    case C_REMOVE:
        rt_ge_remove(r);
        break;
    case C_SWAP: {
        struct h_args a2 = {c.val, A_OK};
        rt_ge_swap(r, &s->tag, sizeof s->tag, (struct rt_ge_handler){&rec2_ops, 0}, &a2, sizeof a2);
        break;
    }
    case C_HIBERNATE:
        rt_ge_hibernate(r);
        break;
    case C_SLEEP:
        rt_sleep((uint64_t)c.val);
        break;
    }
}

static void h_event(const struct rt_msg *ev, void *state, struct rt_ge_result *r)
{
    struct h_state *s = state;
    struct cmd c = cmd_of(ev);
    s->events++;
    note(s->tag, W_EVENT, c.val);
    obey(s, c, r);
}

static void h_call(const struct rt_msg *req, void *state, struct rt_ge_result *r)
{
    struct h_state *s = state;
    struct cmd c = cmd_of(req);
    note(s->tag, W_CALL, c.val);
    rt_ge_reply(r, t_int_msg(0, s->tag * 100 + s->events));
    obey(s, c, r);
}

static void h_info(const struct rt_msg *m, void *state, struct rt_ge_result *r)
{
    struct h_state *s = state;
    note(s->tag, W_INFO, (int)(m->type == RT_MSG_EXIT ? 1000 + m->u64 : m->type));
}

/* Returns tag*10 (OTP's terminate return value); args, when given, are an
 * int that is noted with the kind. */
static struct rt_msg *h_terminate(const struct rt_ge_stop *st, void *state)
{
    struct h_state *s = state;
    int extra = 0;
    if (st->args && st->args_size >= sizeof extra)
        memcpy(&extra, st->args, sizeof extra);
    note(s->tag, W_TERM, (int)st->kind * 1000 + extra);
    if (s->tag >= 0 && s->tag < 16)
        atomic_store(&term_reason[s->tag], (int)st->reason);
    return t_int_msg(0, s->tag * 10);
}

static int h_code_change(const char *vsn, void *state, const void *extra, void **new_state)
{
    ((struct h_state *)state)->vsn = 2;
    *new_state = state;
    return 0;
}

static size_t h_format(const void *state, char *buf, size_t len)
{
    return (size_t)snprintf(buf, len, "events=%d", ((const struct h_state *)state)->events);
}

static const struct rt_ge_handler_ops rec_ops = {
    .name = "rec",
    .init = h_init,
    .handle_event = h_event,
    .handle_call = h_call,
    .handle_info = h_info,
    .terminate = h_terminate,
    .code_change = h_code_change,
    .format_status = h_format,
};
static const struct rt_ge_handler_ops rec2_ops = {
    .name = "rec2",
    .init = h_init,
    .handle_event = h_event,
    .handle_call = h_call,
    .handle_info = h_info,
    .terminate = h_terminate,
};
/* OTP's module that exports only init (and terminate). */
static const struct rt_ge_handler_ops bare_ops = {
    .name = "bare",
    .init = h_init,
    .terminate = h_terminate,
};

static struct rt_ge_handler H(int id) {
    return (struct rt_ge_handler){&rec_ops, (uint64_t)id};
}

static rt_pid
start_mgr(void)
{
    rt_pid mgr = 0;
    T_EQ(rt_gen_event_start_link(NULL, &mgr, NULL), 0);
    return mgr;
}

static void add(rt_pid mgr, struct rt_ge_handler h, int tag)
{
    struct h_args a = {tag, A_OK};
    T_EQ(rt_gen_event_add_handler(mgr, h, &a, sizeof a, NULL), 0);
}

static void add_sup(rt_pid mgr, struct rt_ge_handler h, int tag)
{
    struct h_args a = {tag, A_OK};
    T_EQ(rt_gen_event_add_sup_handler(mgr, h, &a, sizeof a, NULL), 0);
}

static void sync_event(rt_pid mgr, int cmd, int tag, int val)
{
    T_EQ(rt_gen_event_sync_notify(mgr, cmd_msg(cmd, tag, val)), 0);
}

static size_t handlers(rt_pid mgr, struct rt_ge_handler *out, size_t max)
{
    size_t n = 0;
    T_EQ(rt_gen_event_which_handlers(mgr, out, max, &n), 0);
    return n;
}

static void stop_mgr(rt_pid mgr)
{
    T_EQ(rt_gen_event_stop(mgr, RT_NORMAL, 5000, NULL), 0);
}

/* The next gen_event_EXIT for the caller. */
static struct rt_ge_exit next_exit(void)
{
    struct rt_ge_exit x = {0};
    struct rt_msg *m = t_recv(RT_MSG_GEN_EVENT_EXIT, 0, 2000);
    T_ASSERT(m);
    T_EQ(m->size, sizeof x);
    memcpy(&x, m->data, sizeof x);
    rt_msg_free(m);
    return x;
}

/* ---- start ------------------------------------------------------------------------- */

static void b_start(void)
{
    rt_pid mgr = 0, other = 0;
    struct rt_start_opts o = {.name = "events"};
    T_EQ(rt_gen_event_start_link(&o, &mgr, NULL), 0);
    T_EQ(rt_whereis("events"), mgr);
    struct rt_ge_handler hs[4];
    T_EQ(handlers(mgr, hs, 4), 0);
    T_EQ(rt_gen_event_start(&o, &other, NULL), -EEXIST);
    T_EQ(other, mgr);
    stop_mgr(mgr);
    T_EQ(rt_whereis("events"), 0);
    /* Unnamed, unlinked. */
    T_EQ(rt_gen_event_start(NULL, &mgr, NULL), 0);
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(mgr, &pi), 0);
    T_ASSERT(strcmp(pi.initial_call, "gen_event") == 0);
    T_ASSERT(pi.trap_exit);
    stop_mgr(mgr);
}
START_TEST(gen_event_start_makes_a_manager_with_no_handlers_named_or_not)
{
    t_run(b_start, true);
}
END_TEST

/* ---- add, notify, order --------------------------------------------------------------- */

static void b_add_notify(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(0), 1);
    T_EQ(logged(1, W_INIT, 0), 0);
    T_EQ(rt_gen_event_notify(mgr, cmd_msg(C_NOTE, 0, 7)), 0);
    add(mgr, H(2), 2); /* added at run time, after the first event */
    T_EQ(rt_gen_event_notify(mgr, cmd_msg(C_NOTE, 0, 8)), 0);
    sync_event(mgr, C_NOTE, 0, 9);
    T_EQ(count(1, W_EVENT), 3);
    T_EQ(logged(1, W_EVENT, 0), 7);
    T_EQ(count(2, W_EVENT), 2);
    T_EQ(logged(2, W_EVENT, 0), 8);
    /* Newest handler first, as OTP's list. */
    T_EQ(atomic_load(&log_tag[3]), 2);
    T_EQ(atomic_load(&log_tag[4]), 1);
    stop_mgr(mgr);
}
START_TEST(gen_event_notify_runs_every_installed_handler_newest_first)
{
    t_run(b_add_notify, true);
}
END_TEST

static void b_init_fails(void)
{
    rt_pid mgr = start_mgr();
    struct h_args a = {1, A_REFUSE};
    rt_atom why = 0;
    T_EQ(rt_gen_event_add_handler(mgr, H(0), &a, sizeof a, &why), -ECANCELED);
    T_EQ(why, rt_atom_intern("init_refused"));
    struct rt_ge_handler hs[4];
    T_EQ(handlers(mgr, hs, 4), 0);
    static const struct rt_ge_handler_ops no_init = {.name = "no_init"};
    T_EQ(rt_gen_event_add_handler(mgr, (struct rt_ge_handler){&no_init, 0}, NULL, 0, &why),
         -ECANCELED);
    T_EQ(why, rt_atom_intern("undef"));
    stop_mgr(mgr);
}
START_TEST(gen_event_add_handler_whose_init_fails_returns_the_error_and_adds_nothing)
{
    t_run(b_init_fails, true);
}
END_TEST

static void b_notify_absent(void)
{
    rt_pid mgr = start_mgr();
    stop_mgr(mgr);
    T_EQ(rt_gen_event_notify(mgr, cmd_msg(C_NOTE, 0, 1)), 0);
    T_EQ(rt_gen_event_notify_name("no_such_manager", cmd_msg(C_NOTE, 0, 1)), -ESRCH);
    T_EQ(rt_gen_event_sync_notify(mgr, cmd_msg(C_NOTE, 0, 1)), -ESRCH);
}
START_TEST(gen_event_notify_returns_ok_even_when_the_manager_does_not_exist_unless_named)
{
    t_run(b_notify_absent, true);
}
END_TEST

static void b_sync(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(0), 1);
    add(mgr, H(2), 2);
    uint64_t t0 = rt_now_ms();
    sync_event(mgr, C_SLEEP, 0, 40);
    T_ASSERT(rt_now_ms() - t0 >= 75);
    T_EQ(count(1, W_EVENT), 1);
    T_EQ(count(2, W_EVENT), 1);
    stop_mgr(mgr);
}
START_TEST(gen_event_sync_notify_returns_once_every_handler_has_handled_the_event)
{
    t_run(b_sync, true);
}
END_TEST

/* ---- call, which_handlers, delete ----------------------------------------------------- */

static void b_call(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(1), 1);
    add(mgr, H(2), 2);
    sync_event(mgr, C_NOTE, 2, 0);
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_event_call(mgr, H(2), cmd_msg(C_NOTE, 0, 5), 1000, &rep, NULL), 0);
    T_EQ(t_int(rep), 201);
    rt_msg_free(rep);
    T_EQ(count(1, W_CALL), 0);
    T_EQ(rt_gen_event_call(mgr, H(3), cmd_msg(C_NOTE, 0, 5), 1000, &rep, NULL), -ENOENT);
    stop_mgr(mgr);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_event_call_reaches_one_handler_and_returns_its_reply_or_bad_module)
{
    t_run(b_call, true);
}
END_TEST

static void b_which(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(0), 1);
    add(mgr, H(7), 2);
    add(mgr, (struct rt_ge_handler){&rec2_ops, 0}, 3);
    struct rt_ge_handler hs[2];
    T_EQ(handlers(mgr, hs, 2), 3); /* the count is the total, the list is cut */
    T_ASSERT(hs[0].ops == &rec2_ops && hs[0].id == 0);
    T_ASSERT(hs[1].ops == &rec_ops && hs[1].id == 7);
    stop_mgr(mgr);
}
START_TEST(gen_event_which_handlers_lists_every_handler_newest_first)
{
    t_run(b_which, true);
}
END_TEST

static void b_delete(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(0), 1);
    add(mgr, H(2), 2);
    int args = 42;
    struct rt_msg *res = NULL;
    T_EQ(rt_gen_event_delete_handler(mgr, H(0), &args, sizeof args, &res), 0);
    T_EQ(t_int(res), 10); /* what terminate returned */
    rt_msg_free(res);
    T_EQ(logged(1, W_TERM, 0), RT_GE_STOP_DELETE * 1000 + 42);
    T_EQ(rt_gen_event_delete_handler(mgr, H(0), NULL, 0, NULL), -ENOENT);
    sync_event(mgr, C_NOTE, 0, 1);
    T_EQ(count(1, W_EVENT), 0);
    T_EQ(count(2, W_EVENT), 1);
    stop_mgr(mgr);
}
START_TEST(gen_event_delete_handler_runs_terminate_and_returns_its_result)
{
    t_run(b_delete, true);
}
END_TEST

/* ---- swap ---------------------------------------------------------------------------- */

static void b_swap(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(0), 1);
    int a1 = 5;
    struct h_args a2 = {2, A_OK};
    T_EQ(rt_gen_event_swap_handler(mgr, H(0), &a1, sizeof a1, (struct rt_ge_handler){&rec2_ops, 0},
                                   &a2, sizeof a2, NULL),
         0);
    T_EQ(logged(1, W_TERM, 0), RT_GE_STOP_SWAP * 1000 + 5);
    T_EQ(logged(2, W_SWAP_INIT, 0), 10); /* the old terminate's result */
    struct rt_ge_handler hs[4];
    T_EQ(handlers(mgr, hs, 4), 1);
    T_ASSERT(hs[0].ops == &rec2_ops);
    /* Swapping a handler that is not installed still adds the new one. */
    struct h_args a3 = {3, A_OK};
    T_EQ(rt_gen_event_swap_handler(mgr, H(9), NULL, 0, H(3), &a3, sizeof a3, NULL), 0);
    T_EQ(logged(3, W_SWAP_INIT, 0), 0); /* found = false: OTP's `error` */
    /* A refused init: the old handler is gone anyway. */
    struct h_args a4 = {4, A_REFUSE};
    rt_atom why = 0;
    T_EQ(rt_gen_event_swap_handler(mgr, H(3), NULL, 0, H(4), &a4, sizeof a4, &why), -ECANCELED);
    T_EQ(why, rt_atom_intern("init_refused"));
    T_EQ(handlers(mgr, hs, 4), 1);
    T_ASSERT(hs[0].ops == &rec2_ops);
    stop_mgr(mgr);
}
START_TEST(gen_event_swap_handler_hands_the_old_terminate_result_to_the_new_init)
{
    t_run(b_swap, true);
}
END_TEST

static void b_swap_cb(void)
{
    rt_pid mgr = start_mgr();
    add_sup(mgr, H(1), 1);
    add(mgr, H(2), 2);
    /* Handler 1 swaps itself for rec2 (tag 3) while handling an event. */
    sync_event(mgr, C_SWAP, 1, 3);
    T_EQ(logged(1, W_TERM, 0), RT_GE_STOP_SWAP * 1000 + 1);
    T_EQ(logged(3, W_SWAP_INIT, 0), 10);
    struct rt_ge_handler hs[4];
    T_EQ(handlers(mgr, hs, 4), 2);
    T_ASSERT(hs[0].ops == &rec_ops && hs[0].id == 2);
    T_ASSERT(hs[1].ops == &rec2_ops); /* the place of the old one */
    struct rt_ge_exit x = next_exit();
    T_ASSERT(x.handler.ops == &rec_ops && x.handler.id == 1);
    T_EQ(x.reason, rt_atom_intern("swapped"));
    T_ASSERT(x.new_handler.ops == &rec2_ops);
    T_EQ(x.new_sup, rt_self());
    /* The new handler inherited the supervision: deleting it tells us. */
    T_EQ(rt_gen_event_delete_handler(mgr, (struct rt_ge_handler){&rec2_ops, 0}, NULL, 0, NULL), 0);
    x = next_exit();
    T_ASSERT(x.handler.ops == &rec2_ops);
    T_EQ(x.reason, RT_NORMAL);
    stop_mgr(mgr);
}
START_TEST(gen_event_swap_from_a_callback_keeps_the_handlers_place_and_supervisor)
{
    t_run(b_swap_cb, true);
}
END_TEST

/* ---- removal by the handler itself -------------------------------------------------- */

static void b_remove(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(1), 1);
    add(mgr, H(2), 2);
    sync_event(mgr, C_REMOVE, 1, 0);
    T_EQ(logged(1, W_TERM, 0), RT_GE_STOP_REMOVE * 1000);
    sync_event(mgr, C_NOTE, 0, 0);
    T_EQ(count(1, W_EVENT), 1);
    T_EQ(count(2, W_EVENT), 2);
    /* {remove_handler, Reply} from handle_call. */
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_event_call(mgr, H(2), cmd_msg(C_REMOVE, 2, 0), 1000, &rep, NULL), 0);
    T_EQ(t_int(rep), 202);
    rt_msg_free(rep);
    struct rt_ge_handler hs[4];
    T_EQ(handlers(mgr, hs, 4), 0);
    stop_mgr(mgr);
}
START_TEST(gen_event_handler_returning_remove_handler_is_removed_with_terminate)
{
    t_run(b_remove, true);
}
END_TEST

static void b_fail(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(1), 1);
    add(mgr, H(2), 2);
    add(mgr, H(3), 3);
    rt_gen_event_notify(mgr, cmd_msg(C_FAIL, 2, 0));
    sync_event(mgr, C_NOTE, 0, 0);
    T_EQ(logged(2, W_TERM, 0), RT_GE_STOP_ERROR * 1000);
    T_EQ(atomic_load(&term_reason[2]), rt_atom_intern("handler_failed"));
    T_EQ(count(1, W_EVENT), 2);
    T_EQ(count(2, W_EVENT), 1);
    T_EQ(count(3, W_EVENT), 2);
    /* A failing handle_call: {error, Reason} to the caller, handler gone. */
    rt_atom why = 0;
    T_EQ(rt_gen_event_call(mgr, H(3), cmd_msg(C_FAIL, 3, 0), 1000, NULL, &why), -ECANCELED);
    T_EQ(why, rt_atom_intern("handler_failed"));
    struct rt_ge_handler hs[4];
    T_EQ(handlers(mgr, hs, 4), 1);
    T_EQ(hs[0].id, 1);
    stop_mgr(mgr);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_event_handler_that_fails_is_removed_and_the_others_keep_running)
{
    t_run(b_fail, true);
}
END_TEST

static void b_undef(void)
{
    rt_pid mgr = start_mgr();
    struct h_args a = {1, A_OK};
    T_EQ(rt_gen_event_add_handler(mgr, (struct rt_ge_handler){&bare_ops, 0}, &a, sizeof a, NULL),
         0);
    add(mgr, H(2), 2);
    /* No handle_info: the message is dropped, the handler stays. */
    rt_send(mgr, rt_msg_new(77, 0));
    sync_event(mgr, C_NOTE, 0, 0);
    T_EQ(logged(1, W_TERM, 0), RT_GE_STOP_ERROR * 1000);
    T_EQ(atomic_load(&term_reason[1]), rt_atom_intern("undef"));
    T_EQ(logged(2, W_INFO, 0), 77);
    T_EQ(count(2, W_EVENT), 1);
    a.tag = 3;
    T_EQ(rt_gen_event_add_handler(mgr, (struct rt_ge_handler){&bare_ops, 0}, &a, sizeof a, NULL),
         0);
    rt_atom why = 0;
    T_EQ(rt_gen_event_call(mgr, (struct rt_ge_handler){&bare_ops, 0}, cmd_msg(C_NOTE, 0, 0), 1000,
                           NULL, &why),
         -ECANCELED);
    T_EQ(why, rt_atom_intern("undef"));
    T_EQ(atomic_load(&term_reason[3]), rt_atom_intern("undef"));
    stop_mgr(mgr);
}
START_TEST(gen_event_missing_handle_event_or_handle_call_fails_only_that_handler_with_undef)
{
    t_run(b_undef, true);
}
END_TEST

/* ---- supervised handlers ---------------------------------------------------------------- */

static void b_sup_exit(void)
{
    rt_pid mgr = 0;
    /* Unlinked: the only links are those of add_sup_handler. */
    T_EQ(rt_gen_event_start(NULL, &mgr, NULL), 0);
    add_sup(mgr, H(1), 1);
    add_sup(mgr, H(2), 2);
    add_sup(mgr, H(3), 3);
    T_EQ(rt_gen_event_delete_handler(mgr, H(1), NULL, 0, NULL), 0);
    struct rt_ge_exit x = next_exit();
    T_EQ(x.handler.id, 1);
    T_EQ(x.reason, RT_NORMAL);
    sync_event(mgr, C_REMOVE, 2, 0);
    x = next_exit();
    T_EQ(x.handler.id, 2);
    T_EQ(x.reason, RT_NORMAL);
    sync_event(mgr, C_FAIL, 3, 0);
    x = next_exit();
    T_EQ(x.handler.id, 3);
    T_EQ(x.reason, rt_atom_intern("handler_failed"));
    /* swap_sup_handler: the caller supervises the new handler. */
    add(mgr, H(4), 4);
    struct h_args a5 = {5, A_OK};
    T_EQ(rt_gen_event_swap_sup_handler(mgr, H(4), NULL, 0, H(5), &a5, sizeof a5, NULL), 0);
    add_sup(mgr, H(6), 6);
    rt_trap_exit(true); /* the manager's link must not matter: it unlinks */
    stop_mgr(mgr);
    for (int i = 0; i < 2; i++) {
        x = next_exit();
        T_ASSERT(x.handler.id == 5 || x.handler.id == 6);
        T_EQ(x.reason, RT_SHUTDOWN);
    }
    T_EQ(rt_mailbox_len(), 0); /* no EXIT from the manager */
    rt_trap_exit(false);
}
START_TEST(gen_event_sup_handler_owner_gets_gen_event_exit_when_its_handler_goes)
{
    t_run(b_sup_exit, true);
}
END_TEST

struct owner_args {
    rt_pid mgr;
    int tag;
};
static void owner(void *arg)
{
    struct owner_args *o = arg;
    struct h_args a = {o->tag, A_OK};
    rt_gen_event_add_sup_handler(o->mgr, H(o->tag), &a, sizeof a, NULL);
    rt_exit(rt_atom_intern("owner_quit"));
}
static void b_owner_dies(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(1), 1);
    struct owner_args *o = rt_alloc(sizeof *o);
    o->mgr = mgr;
    o->tag = 2;
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(owner, o, &so, NULL), 0);
    rt_msg_free(rt_receive_ref(mref, 2000));
    sync_event(mgr, C_NOTE, 0, 0);
    T_EQ(logged(2, W_TERM, 0), RT_GE_STOP_SUPERVISOR * 1000);
    T_EQ(atomic_load(&term_reason[2]), rt_atom_intern("owner_quit"));
    /* The other handlers see the EXIT, after the supervised one went. */
    T_EQ(logged(1, W_INFO, 0), 1000 + (int)rt_atom_intern("owner_quit"));
    T_EQ(count(2, W_INFO), 0);
    struct rt_ge_handler hs[4];
    T_EQ(handlers(mgr, hs, 4), 1);
    stop_mgr(mgr);
}
START_TEST(gen_event_sup_handler_goes_when_the_process_that_added_it_exits)
{
    t_run(b_owner_dies, true);
}
END_TEST

/* ---- termination and info ------------------------------------------------------------- */

static void b_stop(void)
{
    rt_pid mgr = 0;
    /* Unlinked, or the exit reason would take this process along. */
    T_EQ(rt_gen_event_start(NULL, &mgr, NULL), 0);
    add(mgr, H(1), 1);
    add(mgr, H(2), 2);
    T_EQ(rt_gen_event_stop(mgr, rt_atom_intern("shutdown:bye"), 1000, NULL), 0);
    T_EQ(logged(1, W_TERM, 0), RT_GE_STOP_MANAGER * 1000);
    T_EQ(logged(2, W_TERM, 0), RT_GE_STOP_MANAGER * 1000);
    T_ASSERT(!rt_is_alive(mgr));
}
START_TEST(gen_event_stop_terminates_every_handler_then_the_manager)
{
    t_run(b_stop, true);
}
END_TEST

static void middle(void *arg)
{
    rt_pid mgr = 0;
    rt_gen_event_start_link(NULL, &mgr, NULL);
    struct h_args a = {1, A_OK};
    rt_gen_event_add_handler(mgr, H(1), &a, sizeof a, NULL);
    rt_send(*(rt_pid *)arg, t_int_msg(5, 0));
    rt_receive(RT_INFINITY);
}
static void b_parent(void)
{
    rt_pid *me = rt_alloc(sizeof *me);
    *me = rt_self();
    rt_pid mid = 0;
    T_EQ(rt_spawn(middle, me, NULL, &mid), 0);
    rt_msg_free(t_recv(5, mid, 2000));
    rt_exit_signal(mid, RT_SHUTDOWN);
    for (int i = 0; i < 200 && logged(1, W_TERM, 0) < 0; i++)
        rt_sleep(5);
    T_EQ(logged(1, W_TERM, 0), RT_GE_STOP_MANAGER * 1000);
}
START_TEST(gen_event_parent_exit_terminates_every_handler)
{
    t_run(b_parent, true);
}
END_TEST

static void b_info(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(1), 1);
    add(mgr, H(2), 2);
    rt_send(mgr, rt_msg_new(33, 0));
    sync_event(mgr, C_NOTE, 0, 0);
    T_EQ(logged(1, W_INFO, 0), 33);
    T_EQ(logged(2, W_INFO, 0), 33);
    T_EQ(count(1, W_EVENT), 1);
    stop_mgr(mgr);
}
START_TEST(gen_event_other_messages_go_to_every_handlers_handle_info)
{
    t_run(b_info, true);
}
END_TEST

/* ---- sys ------------------------------------------------------------------------------ */

static void b_sys(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(1), 1);
    add(mgr, H(2), 2);
    T_EQ(rt_sys_statistics(mgr, RT_SYS_ON, 1000, NULL), 0);
    sync_event(mgr, C_NOTE, 1, 0);
    T_EQ(rt_sys_suspend(mgr, 1000), 0);
    rt_gen_event_notify(mgr, cmd_msg(C_NOTE, 0, 0));
    rt_sleep(20);
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(mgr, 1000, &st), 0);
    T_EQ(st.count, 2);
    const struct rt_ge_handler_state *hs = st.state;
    T_EQ(hs[0].handler.id, 2);
    T_EQ(((struct h_state *)hs[0].state)->events, 1); /* the queued event waits */
    T_EQ(((struct h_state *)hs[1].state)->tag, 1);
    T_EQ(rt_sys_change_code(mgr, "1", NULL, 0, 1000), 0);
    T_EQ(((struct h_state *)hs[0].state)->vsn, 2);
    struct rt_sys_status ss;
    T_EQ(rt_sys_get_status(mgr, 1000, &ss), 0);
    T_EQ(ss.status, RT_SYS_SUSPENDED);
    T_ASSERT(strcmp(ss.behaviour, "gen_event") == 0);
    T_ASSERT(strstr(ss.formatted, "2 handlers") != NULL);
    T_ASSERT(strstr(ss.formatted, "rec/1: events=1") != NULL);
    T_EQ(rt_sys_resume(mgr, 1000), 0);
    sync_event(mgr, C_NOTE, 0, 0);
    T_EQ(count(2, W_EVENT), 3);
    struct rt_sys_statistics stats;
    T_EQ(rt_sys_statistics(mgr, RT_SYS_GET, 1000, &stats), 0);
    T_EQ(stats.messages_in, 3);
    stop_mgr(mgr);
}
START_TEST(gen_event_sys_get_state_status_suspend_and_statistics_work_on_a_manager)
{
    t_run(b_sys, true);
}
END_TEST

static int replace_fn(void *state, int *statem_state, void *arg, void **new_state)
{
    const struct rt_ge_handler_state *e = state;
    struct h_state *s = e->state;
    if (e->handler.id == 1)
        return -EINVAL; /* fails for this handler only */
    s->tag += *(int *)arg;
    *new_state = s;
    return 0;
}
static void b_replace(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(1), 1);
    add(mgr, H(2), 2);
    int plus = 10;
    struct rt_sys_state st;
    T_EQ(rt_sys_replace_state(mgr, replace_fn, &plus, sizeof plus, 1000, &st), 0);
    sync_event(mgr, C_NOTE, 0, 0);
    T_EQ(count(12, W_EVENT), 1);
    T_EQ(count(1, W_EVENT), 1);
    stop_mgr(mgr);
}
START_TEST(gen_event_sys_replace_state_changes_each_handler_it_succeeds_for)
{
    t_run(b_replace, true);
}
END_TEST

static bool hibernating(rt_pid pid, int64_t ms)
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
static void b_hibernate(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(1), 1);
    T_ASSERT(!hibernating(mgr, 50));
    struct h_args a = {2, A_HIBERNATE};
    T_EQ(rt_gen_event_add_handler(mgr, H(2), &a, sizeof a, NULL), 0);
    T_ASSERT(hibernating(mgr, 1000));
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(mgr, 1000, &st), 0);
    T_ASSERT(hibernating(mgr, 1000));
    sync_event(mgr, C_NOTE, 0, 0); /* no handler asks: awake */
    T_ASSERT(!hibernating(mgr, 50));
    sync_event(mgr, C_HIBERNATE, 1, 0);
    T_ASSERT(hibernating(mgr, 1000));
    T_EQ(count(1, W_EVENT), 2);
    stop_mgr(mgr);
}
START_TEST(gen_event_handler_asking_to_hibernate_hibernates_the_manager)
{
    t_run(b_hibernate, true);
}
END_TEST

static void op_call(void *ctx)
{
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_event_call(*(rt_pid *)ctx, H(1), cmd_msg(C_NOTE, 0, 0), 5000, &rep, NULL), 0);
    rt_msg_free(rep);
}
static void b_deep(void)
{
    rt_pid mgr = start_mgr();
    add(mgr, H(1), 1);
    t_assert_cost_independent_of_queue(op_call, &mgr);
    stop_mgr(mgr);
}
START_TEST(gen_event_call_costs_the_same_whatever_the_caller_has_queued)
{
    t_run(b_deep, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gen_event");
    TCase *tc = tcase_create("gen_event");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, gen_event_start_makes_a_manager_with_no_handlers_named_or_not);
    tcase_add_test(tc, gen_event_notify_runs_every_installed_handler_newest_first);
    tcase_add_test(tc, gen_event_add_handler_whose_init_fails_returns_the_error_and_adds_nothing);
    tcase_add_test(tc,
                   gen_event_notify_returns_ok_even_when_the_manager_does_not_exist_unless_named);
    tcase_add_test(tc, gen_event_sync_notify_returns_once_every_handler_has_handled_the_event);
    tcase_add_test(tc, gen_event_call_reaches_one_handler_and_returns_its_reply_or_bad_module);
    tcase_add_test(tc, gen_event_which_handlers_lists_every_handler_newest_first);
    tcase_add_test(tc, gen_event_delete_handler_runs_terminate_and_returns_its_result);
    tcase_add_test(tc, gen_event_swap_handler_hands_the_old_terminate_result_to_the_new_init);
    tcase_add_test(tc, gen_event_swap_from_a_callback_keeps_the_handlers_place_and_supervisor);
    tcase_add_test(tc, gen_event_handler_returning_remove_handler_is_removed_with_terminate);
    tcase_add_test(tc, gen_event_handler_that_fails_is_removed_and_the_others_keep_running);
    tcase_add_test(
        tc, gen_event_missing_handle_event_or_handle_call_fails_only_that_handler_with_undef);
    tcase_add_test(tc, gen_event_sup_handler_owner_gets_gen_event_exit_when_its_handler_goes);
    tcase_add_test(tc, gen_event_sup_handler_goes_when_the_process_that_added_it_exits);
    tcase_add_test(tc, gen_event_stop_terminates_every_handler_then_the_manager);
    tcase_add_test(tc, gen_event_parent_exit_terminates_every_handler);
    tcase_add_test(tc, gen_event_other_messages_go_to_every_handlers_handle_info);
    tcase_add_test(tc, gen_event_sys_get_state_status_suspend_and_statistics_work_on_a_manager);
    tcase_add_test(tc, gen_event_sys_replace_state_changes_each_handler_it_succeeds_for);
    tcase_add_test(tc, gen_event_handler_asking_to_hibernate_hibernates_the_manager);
    tcase_add_test(tc, gen_event_call_costs_the_same_whatever_the_caller_has_queued);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
