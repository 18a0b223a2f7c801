/*
 * test_format_status.c: a behaviour's state in its crash report and in sys
 * get_status goes through its format_status callback, which can redact
 * secrets (OTP's format_status/1, OTP-SEMANTICS §1.4 "An error report is
 * logged unless the reason is normal/shutdown/{shutdown,_}", §1.6
 * "get_status ... format_status applies"). The report is captured through
 * the runtime's crash handler hook.
 */
#include <errno.h>
#include <pthread.h>

#include "otp_test.h"
#include "rt/gen_event.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"
#include "rt/sys.h"

enum { T_STOP = 1, T_FREE_AND_STOP };

#define SECRET "hunter2"

/* ---- captured crash reports --------------------------------------------------------- */

#define MAX_REPORTS 8
static pthread_mutex_t rep_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    rt_pid pid;
    rt_atom reason;
    char state[RT_CRASH_STATE_MAX + 8];
} reports[MAX_REPORTS];
static int nreports;

static void capture(const struct rt_crash_report *r, void *ctx)
{
    pthread_mutex_lock(&rep_lock);
    if (nreports < MAX_REPORTS) {
        reports[nreports].pid = r->pid;
        reports[nreports].reason = r->reason;
        snprintf(reports[nreports].state, sizeof reports[nreports].state, "%s",
                 r->state ? r->state : "(null)");
        nreports++;
    }
    pthread_mutex_unlock(&rep_lock);
}

static void t_reset(void)
{
    pthread_mutex_lock(&rep_lock);
    nreports = 0;
    memset(reports, 0, sizeof reports);
    pthread_mutex_unlock(&rep_lock);
}

/* The state text of pid's crash report, copied to out; false if none. */
static bool report_of(rt_pid pid, rt_atom *reason, char *out, size_t cap)
{
    bool found = false;
    pthread_mutex_lock(&rep_lock);
    for (int i = 0; i < nreports; i++) {
        if (reports[i].pid == pid) {
            if (reason)
                *reason = reports[i].reason;
            snprintf(out, cap, "%s", reports[i].state);
            found = true;
        }
    }
    pthread_mutex_unlock(&rep_lock);
    return found;
}

/* ---- servers ---------------------------------------------------------------------------- */

struct account {
    char user[16];
    char password[16];
};

static void a_init(void *arg, struct rt_gs_result *r)
{
    struct account *a = malloc(sizeof *a);
    snprintf(a->user, sizeof a->user, "alice");
    snprintf(a->password, sizeof a->password, SECRET);
    r->state = a;
}

static void a_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                   struct rt_gs_result *r)
{
    rt_gs_stop(r, rt_atom_intern("boom"));
}

static void a_cast(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    rt_gs_stop(r, msg->type == T_STOP ? rt_atom_intern("shutdown:leaving") : RT_NORMAL);
}

/* Frees the state, as a C server does: the report was formatted before. */
static void a_terminate(rt_atom reason, void *state)
{
    struct account *a = state;
    memset(a, 0, sizeof *a);
    free(a);
}

static size_t a_format(const void *state, char *buf, size_t cap)
{
    const struct account *a = state;
    return (size_t)snprintf(buf, cap, "user=%s password=***", a->user);
}

static const struct rt_gen_server_ops redacting_ops = {
    .name = "account",
    .init = a_init,
    .handle_call = a_call,
    .handle_cast = a_cast,
    .terminate = a_terminate,
    .format_status = a_format,
};

static const struct rt_gen_server_ops plain_ops = {
    .name = "account_plain",
    .init = a_init,
    .handle_call = a_call,
    .handle_cast = a_cast,
    .terminate = a_terminate,
};

/* Writes far more than it is given room for, as snprintf reports it. */
static size_t long_format(const void *state, char *buf, size_t cap)
{
    size_t want = 4 * RT_CRASH_STATE_MAX;
    memset(buf, 'x', cap);
    return want;
}

static const struct rt_gen_server_ops long_ops = {
    .name = "account_long",
    .init = a_init,
    .handle_call = a_call,
    .terminate = a_terminate,
    .format_status = long_format,
};

static rt_pid start(const struct rt_gen_server_ops *ops)
{
    rt_pid pid = 0;
    T_EQ(rt_gen_server_start(ops, NULL, NULL, &pid, NULL), 0);
    return pid;
}

/* Makes the server stop with `boom` from a call and waits for its exit:
 * the crash report is written before the exit is signalled. */
static void crash(rt_pid pid)
{
    rt_atom why = 0;
    T_EQ(rt_gen_server_call(pid, rt_msg_new(1, 0), 5000, NULL, &why), -ECONNRESET);
    T_EQ(why, rt_atom_intern("boom"));
}

/* ---- tests --------------------------------------------------------------------------------- */

static void b_redacted(void)
{
    rt_pid pid = start(&redacting_ops);
    crash(pid);
    char state[RT_CRASH_STATE_MAX + 8];
    rt_atom reason = 0;
    T_ASSERT(report_of(pid, &reason, state, sizeof state));
    T_EQ(reason, rt_atom_intern("boom"));
    T_ASSERT_F(strcmp(state, "user=alice password=***") == 0, "state \"%.200s\"", state);
    T_ASSERT(strstr(state, SECRET) == NULL);
}
START_TEST(gen_server_crash_report_carries_the_state_as_format_status_writes_it)
{
    rt_set_crash_handler(capture, NULL);
    t_run(b_redacted, true);
    rt_set_crash_handler(NULL, NULL);
}
END_TEST

static void b_default(void)
{
    rt_pid pid = start(&plain_ops);
    struct rt_sys_state st;
    T_EQ(rt_sys_get_state(pid, 5000, &st), 0);
    crash(pid);
    char state[RT_CRASH_STATE_MAX + 8], want[128];
    T_ASSERT(report_of(pid, NULL, state, sizeof state));
    /* No callback: the module and where the state is (as %p writes it),
     * never its bytes. */
    snprintf(want, sizeof want, "account_plain state=%p", st.state);
    T_ASSERT_F(strcmp(state, want) == 0, "state \"%.200s\", not \"%s\"", state, want);
    T_ASSERT(strstr(state, SECRET) == NULL);
    /* A text longer than the report's room is cut, and terminated. */
    pid = start(&long_ops);
    crash(pid);
    T_ASSERT(report_of(pid, NULL, state, sizeof state));
    T_EQ(strlen(state), RT_CRASH_STATE_MAX - 1);
}
START_TEST(gen_server_crash_report_without_format_status_shows_the_module_and_an_address)
{
    rt_set_crash_handler(capture, NULL);
    t_run(b_default, true);
    rt_set_crash_handler(NULL, NULL);
}
END_TEST

static void b_clean(void)
{
    rt_pid pid = start(&redacting_ops);
    rt_ref mref = rt_monitor(pid);
    rt_gen_server_cast(pid, rt_msg_new(T_STOP, 0));
    struct rt_msg *d = rt_receive_ref(mref, 5000);
    T_ASSERT(d && d->u64 == rt_atom_intern("shutdown:leaving"));
    rt_msg_free(d);
    char state[64];
    T_ASSERT(!report_of(pid, NULL, state, sizeof state));
}
START_TEST(gen_server_clean_exit_writes_no_crash_report)
{
    rt_set_crash_handler(capture, NULL);
    t_run(b_clean, true);
    rt_set_crash_handler(NULL, NULL);
}
END_TEST

static void b_status(void)
{
    rt_pid pid = start(&redacting_ops);
    struct rt_sys_status ss;
    T_EQ(rt_sys_get_status(pid, 1000, &ss), 0);
    T_ASSERT_F(strcmp(ss.formatted, "user=alice password=***") == 0, "\"%s\"", ss.formatted);
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5000, NULL), 0);
    pid = start(&long_ops);
    T_EQ(rt_sys_get_status(pid, 1000, &ss), 0);
    T_EQ(strlen(ss.formatted), sizeof ss.formatted - 1);
    T_EQ(rt_gen_server_stop(pid, RT_NORMAL, 5000, NULL), 0);
}
START_TEST(gen_server_get_status_shows_the_state_as_format_status_writes_it)
{
    t_run(b_status, true);
}
END_TEST

/* A supervisor is a gen_server: its abnormal exit reports its flags. */
static int sup_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    flags->strategy = RT_ONE_FOR_ALL;
    return 0;
}

static void b_supervisor(void)
{
    rt_pid sup = 0;
    T_EQ(rt_sup_start_link(sup_init, NULL, NULL, &sup, NULL), 0);
    rt_unlink(sup);
    rt_ref mref = rt_monitor(sup);
    T_EQ(rt_exit_signal(sup, rt_atom_intern("gone_wrong")), 0);
    struct rt_msg *d = rt_receive_ref(mref, 5000);
    T_ASSERT(d);
    rt_msg_free(d);
    char state[RT_CRASH_STATE_MAX + 8];
    T_ASSERT(report_of(sup, NULL, state, sizeof state));
    T_ASSERT_F(strncmp(state, "supervisor strategy=one_for_all", 31) == 0, "\"%.200s\"", state);
}
START_TEST(supervisor_crash_report_carries_its_formatted_state)
{
    rt_set_crash_handler(capture, NULL);
    t_run(b_supervisor, true);
    rt_set_crash_handler(NULL, NULL);
}
END_TEST

/* A gen_event manager's state is its handlers: its abnormal exit reports
 * each as its format_status writes it, before their terminate frees it. */
static void h_init(const void *arg, size_t size, const struct rt_ge_swap *swap,
                   struct rt_ge_result *r)
{
    struct rt_gs_result gr = {0};
    a_init(NULL, &gr);
    r->state = gr.state;
}

static struct rt_msg *h_terminate(const struct rt_ge_stop *stop, void *state)
{
    a_terminate(RT_SHUTDOWN, state);
    return NULL;
}

static const struct rt_ge_handler_ops handler_ops = {
    .name = "account_h",
    .init = h_init,
    .terminate = h_terminate,
    .format_status = a_format,
};

static void b_gen_event(void)
{
    rt_pid mgr = 0;
    T_EQ(rt_gen_event_start(NULL, &mgr, NULL), 0);
    struct rt_ge_handler h = {.ops = &handler_ops, .id = 7};
    T_EQ(rt_gen_event_add_handler(mgr, h, NULL, 0, NULL), 0);
    struct rt_sys_status ss;
    T_EQ(rt_sys_get_status(mgr, 1000, &ss), 0);
    const char *want = "1 handlers: account_h/7: user=alice password=***";
    T_ASSERT_F(strcmp(ss.formatted, want) == 0, "\"%s\"", ss.formatted);
    T_EQ(rt_gen_event_stop(mgr, rt_atom_intern("boom"), 5000, NULL), 0);
    char state[RT_CRASH_STATE_MAX + 8];
    T_ASSERT(report_of(mgr, NULL, state, sizeof state));
    T_ASSERT_F(strcmp(state, want) == 0, "state \"%.200s\"", state);
    T_ASSERT(strstr(state, SECRET) == NULL);
}
START_TEST(gen_event_crash_report_carries_its_handlers_as_format_status_writes_them)
{
    rt_set_crash_handler(capture, NULL);
    t_run(b_gen_event, true);
    rt_set_crash_handler(NULL, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("format_status");
    TCase *tc = tcase_create("format_status");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, gen_server_crash_report_carries_the_state_as_format_status_writes_it);
    tcase_add_test(tc,
                   gen_server_crash_report_without_format_status_shows_the_module_and_an_address);
    tcase_add_test(tc, gen_server_clean_exit_writes_no_crash_report);
    tcase_add_test(tc, gen_server_get_status_shows_the_state_as_format_status_writes_it);
    tcase_add_test(tc, supervisor_crash_report_carries_its_formatted_state);
    tcase_add_test(tc, gen_event_crash_report_carries_its_handlers_as_format_status_writes_them);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
