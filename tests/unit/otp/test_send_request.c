/*
 * test_send_request.c: asynchronous calls (OTP 23+ gen_server:send_request,
 * wait_response, receive_response, check_response; OTP 25 request id
 * collections). Failures are return codes: {error, {Reason, ServerRef}} is
 * -ESRCH (noproc) or -ECONNRESET with the reason; `timeout` is -ETIMEDOUT;
 * check_response's no_reply is -ENOMSG.
 */
#include <errno.h>

#include "otp_test.h"
#include "rt/gen_server.h"

enum { T_DOUBLE = 1, T_SLEEP_REPLY, T_CRASH, T_NULL, T_OTHER };

static void t_reset(void) {}

static void s_init(void *arg, struct rt_gs_result *r) {}

static void s_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                   struct rt_gs_result *r)
{
    switch (req->type) {
    case T_DOUBLE:
        rt_gs_reply(r, t_int_msg(T_DOUBLE, 2 * t_int(req)));
        break;
    case T_SLEEP_REPLY:
        rt_sleep((uint64_t)t_int(req));
        rt_gs_reply(r, t_int_msg(T_SLEEP_REPLY, 1));
        break;
    case T_CRASH:
        rt_gs_stop(r, rt_atom_intern("crashed_in_call"));
        break;
    default:
        rt_gs_reply(r, NULL);
    }
}

static const struct rt_gen_server_ops ops = {
    .name = "async_server",
    .init = s_init,
    .handle_call = s_call,
};

static rt_pid start_server(const char *name)
{
    rt_pid pid = 0;
    struct rt_start_opts o = {.name = name};
    /* Not linked: a server that crashes does not take the test along. */
    T_EQ(rt_gen_server_start(&ops, NULL, &o, &pid, NULL), 0);
    return pid;
}

static void stop_server(rt_pid pid)
{
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5000, NULL), 0);
}

static struct rt_gs_request send_int(rt_pid pid, uint32_t type, int v)
{
    struct rt_gs_request req;
    T_EQ(rt_gen_server_send_request(pid, t_int_msg(type, v), &req), 0);
    return req;
}

/* ---- fan out ------------------------------------------------------------------------ */

#define FAN 100

static void b_fan_out(void)
{
    static rt_pid servers[FAN];
    static struct rt_gs_request reqs[FAN];
    for (int i = 0; i < FAN; i++)
        servers[i] = start_server(NULL);
    /* Every request goes out before any reply is collected. */
    for (int i = 0; i < FAN; i++)
        reqs[i] = send_int(servers[i], T_DOUBLE, i);
    /* Collected in reverse order: each finds its own reply. */
    for (int i = FAN - 1; i >= 0; i--) {
        struct rt_msg *rep = NULL;
        T_EQ(rt_gen_server_wait_response(&reqs[i], 5000, &rep, NULL), 0);
        T_EQ(t_int(rep), 2 * i);
        rt_msg_free(rep);
        T_ASSERT(reqs[i].done);
    }
    T_EQ(rt_mailbox_len(), 0);

    /* The same through a collection: each label once, in any order. */
    struct rt_gs_reqids c;
    rt_gs_reqids_init(&c);
    for (int i = 0; i < FAN; i++) {
        struct rt_gs_request r = send_int(servers[i], T_DOUBLE, i);
        T_EQ(rt_gs_reqids_add(&c, &r, (uint64_t)i), 0);
    }
    T_EQ(rt_gs_reqids_size(&c), FAN);
    static bool seen[FAN];
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < FAN; k++) {
        struct rt_msg *rep = NULL;
        uint64_t label = FAN;
        T_EQ(rt_gen_server_receive_response_any(&c, 5000, true, &rep, NULL, &label), 0);
        T_ASSERT(label < FAN && !seen[label]);
        seen[label] = true;
        T_EQ(t_int(rep), 2 * (int)label);
        rt_msg_free(rep);
    }
    T_EQ(rt_gs_reqids_size(&c), 0);
    T_EQ(rt_gen_server_wait_response_any(&c, 0, true, NULL, NULL, NULL), -ENOENT);
    rt_gs_reqids_done(&c);
    for (int i = 0; i < FAN; i++)
        stop_server(servers[i]);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_send_request_fans_out_to_many_servers_and_collects_every_reply)
{
    t_run(b_fan_out, true);
}
END_TEST

/* ---- a dead server ----------------------------------------------------------------------- */

static void b_dead(void)
{
    /* Dies while handling the request: its reason. */
    rt_pid pid = start_server(NULL);
    struct rt_gs_request req = send_int(pid, T_CRASH, 0);
    rt_atom why = 0;
    T_EQ(rt_gen_server_wait_response(&req, 5000, NULL, &why), -ECONNRESET);
    T_EQ(why, rt_atom_intern("crashed_in_call"));
    T_ASSERT(req.done);
    /* Already dead: noproc, through a request that was sent all the same. */
    why = 0;
    req = send_int(pid, T_DOUBLE, 1);
    T_EQ(rt_gen_server_receive_response(&req, 5000, NULL, &why), -ESRCH);
    T_EQ(why, RT_NOPROC);
    /* A name nobody holds: the same. */
    why = 0;
    T_EQ(rt_gen_server_send_request_name("nobody", t_int_msg(T_DOUBLE, 1), &req), 0);
    T_EQ(rt_gen_server_wait_response(&req, 5000, NULL, &why), -ESRCH);
    T_EQ(why, RT_NOPROC);
    /* A done request is not waited on again. */
    T_EQ(rt_gen_server_wait_response(&req, 0, NULL, NULL), -EINVAL);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_response_of_a_dead_server_is_an_error_with_its_reason)
{
    t_run(b_dead, true);
}
END_TEST

/* ---- wait_response keeps the request, receive_response abandons it -------------------------- */

static void b_wait_keeps(void)
{
    rt_pid pid = start_server("slow");
    struct rt_gs_request req;
    T_EQ(rt_gen_server_send_request_name("slow", t_int_msg(T_SLEEP_REPLY, 100), &req), 0);
    T_EQ(rt_gen_server_wait_response(&req, 10, NULL, NULL), -ETIMEDOUT);
    T_ASSERT(!req.done);
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_server_wait_response(&req, 5000, &rep, NULL), 0);
    T_EQ(rep->type, T_SLEEP_REPLY);
    rt_msg_free(rep);
    /* A NULL reply reads as NULL. */
    req = send_int(pid, T_NULL, 0);
    rep = (struct rt_msg *)1;
    T_EQ(rt_gen_server_wait_response(&req, 5000, &rep, NULL), 0);
    T_ASSERT(rep == NULL);
    stop_server(pid);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_wait_response_timeout_keeps_the_request_valid)
{
    t_run(b_wait_keeps, true);
}
END_TEST

static void b_abandon(void)
{
    rt_pid pid = start_server(NULL);
    struct rt_gs_request req = send_int(pid, T_SLEEP_REPLY, 80);
    T_EQ(rt_gen_server_receive_response(&req, 10, NULL, NULL), -ETIMEDOUT);
    T_ASSERT(req.done);
    /* The reply is sent ~70 ms later, to a deactivated alias: dropped. */
    rt_sleep(200);
    T_EQ(rt_mailbox_len(), 0);
    /* Nor does the monitor stay: the server's exit brings no DOWN. */
    stop_server(pid);
    rt_sleep(20);
    T_EQ(rt_mailbox_len(), 0);

    /* A collection abandons every request it holds. */
    pid = start_server(NULL);
    struct rt_gs_reqids c;
    rt_gs_reqids_init(&c);
    for (int i = 0; i < 3; i++) {
        struct rt_gs_request r = send_int(pid, T_SLEEP_REPLY, 30);
        T_EQ(rt_gs_reqids_add(&c, &r, (uint64_t)i), 0);
    }
    T_EQ(rt_gen_server_receive_response_any(&c, 10, false, NULL, NULL, NULL), -ETIMEDOUT);
    T_EQ(rt_gen_server_wait_response_any(&c, 0, false, NULL, NULL, NULL), -ENOENT);
    rt_sleep(200);
    T_EQ(rt_mailbox_len(), 0);
    rt_gs_reqids_done(&c);
    stop_server(pid);
    rt_sleep(20);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_receive_response_timeout_abandons_the_request_and_drops_the_late_reply)
{
    t_run(b_abandon, true);
}
END_TEST

/* ---- check_response ---------------------------------------------------------------------------
 */

static void b_check(void)
{
    rt_pid pid = start_server(NULL);
    struct rt_gs_request req = send_int(pid, T_DOUBLE, 21);
    rt_send(rt_self(), t_int_msg(T_OTHER, 0));
    int replies = 0, others = 0;
    while (replies == 0) {
        struct rt_msg *m = rt_receive(5000);
        T_ASSERT(m);
        struct rt_msg *rep = NULL;
        int rc = rt_gen_server_check_response(m, &req, &rep, NULL);
        if (rc == -ENOMSG) {
            /* Not the reply: still ours. */
            T_EQ(m->type, T_OTHER);
            rt_msg_free(m);
            others++;
            continue;
        }
        T_EQ(rc, 0);
        T_EQ(t_int(rep), 42);
        rt_msg_free(rep);
        replies++;
    }
    if (others == 0) {
        struct rt_msg *m = rt_receive(5000);
        T_ASSERT(m && m->type == T_OTHER);
        rt_msg_free(m);
    }
    T_EQ(rt_gen_server_check_response(NULL, &req, NULL, NULL), -EINVAL); /* done */

    /* The DOWN of a server that died is its error response. */
    req = send_int(pid, T_CRASH, 0);
    struct rt_msg *m = rt_receive(5000);
    T_ASSERT(m && m->type == RT_MSG_DOWN);
    rt_atom why = 0;
    T_EQ(rt_gen_server_check_response(m, &req, NULL, &why), -ECONNRESET);
    T_EQ(why, rt_atom_intern("crashed_in_call"));

    /* In a collection: a message of none of its requests. */
    pid = start_server(NULL);
    struct rt_gs_reqids c;
    rt_gs_reqids_init(&c);
    req = send_int(pid, T_DOUBLE, 2);
    T_EQ(rt_gs_reqids_add(&c, &req, 77), 0);
    T_EQ(rt_gs_reqids_add(&c, &req, 78), -EEXIST);
    struct rt_msg *other = t_int_msg(T_OTHER, 0);
    T_EQ(rt_gen_server_check_response_any(other, &c, true, NULL, NULL, NULL), -ENOMSG);
    rt_msg_free(other);
    m = rt_receive(5000);
    uint64_t label = 0;
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_server_check_response_any(m, &c, false, &rep, NULL, &label), 0);
    T_EQ(label, 77);
    T_EQ(t_int(rep), 4);
    rt_msg_free(rep);
    T_EQ(rt_gs_reqids_size(&c), 1); /* kept, done */
    T_EQ(rt_gen_server_check_response_any(NULL, &c, false, NULL, NULL, NULL), -ENOENT);
    rt_gs_reqids_done(&c);
    stop_server(pid);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_check_response_tells_the_response_from_other_messages)
{
    t_run(b_check, true);
}
END_TEST

/* ---- cost against a deep mailbox ------------------------------------------------------------- */

static void op_request(void *ctx)
{
    struct rt_gs_request req = send_int(*(rt_pid *)ctx, T_DOUBLE, 3);
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_server_wait_response(&req, 5000, &rep, NULL), 0);
    T_EQ(t_int(rep), 6);
    rt_msg_free(rep);
}
static void b_deep(void)
{
    rt_pid pid = start_server(NULL);
    t_assert_cost_independent_of_queue(op_request, &pid);
    stop_server(pid);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(gen_server_send_request_costs_the_same_whatever_the_caller_has_queued)
{
    t_run(b_deep, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("send_request");
    TCase *tc = tcase_create("send_request");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, gen_server_send_request_fans_out_to_many_servers_and_collects_every_reply);
    tcase_add_test(tc, gen_server_response_of_a_dead_server_is_an_error_with_its_reason);
    tcase_add_test(tc, gen_server_wait_response_timeout_keeps_the_request_valid);
    tcase_add_test(
        tc, gen_server_receive_response_timeout_abandons_the_request_and_drops_the_late_reply);
    tcase_add_test(tc, gen_server_check_response_tells_the_response_from_other_messages);
    tcase_add_test(tc, gen_server_send_request_costs_the_same_whatever_the_caller_has_queued);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
