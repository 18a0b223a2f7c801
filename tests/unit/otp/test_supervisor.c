/* test_supervisor.c: the supervisor (OTP-SEMANTICS §1.3). Child start
 * functions are C functions instead of {M,F,A}; there are no global/via
 * names; `modules` has no equivalent (no code loading). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "otp_test.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"
#include "rt/sys.h"

/* Start/stop log: "+a" when a starts, "-a" when a terminates. */
static char order[256];
static atomic_int order_n;
static atomic_int start_failures; /* how many starts of 'f' should fail */

static atomic_int fail_attempts; /* start attempts of W_FAIL workers */

static atomic_ullong helper_sup, helper_pid, test_pid;
static atomic_int helper_status = -1, helper_restart = 1, helper_delete = 1, helper_rc = 1;
static atomic_int gate_entered, b_init_done;

static void t_reset(void)
{
    memset(order, 0, sizeof order);
    atomic_store(&order_n, 0);
    atomic_store(&start_failures, 0);
    atomic_store(&fail_attempts, 0);
    atomic_store(&helper_sup, 0);
    atomic_store(&helper_pid, 0);
    atomic_store(&test_pid, 0);
    atomic_store(&helper_status, -1);
    atomic_store(&helper_restart, 1);
    atomic_store(&helper_delete, 1);
    atomic_store(&helper_rc, 1);
    atomic_store(&gate_entered, 0);
    atomic_store(&b_init_done, 0);
}

static void logc(char sign, char name)
{
    int i = atomic_fetch_add(&order_n, 2);
    if (i + 1 < (int)sizeof order - 1) {
        order[i] = sign;
        order[i + 1] = name;
    }
}

enum w_mode { W_TRAP = 0, W_NOTRAP, W_SLOW_SHUTDOWN, W_IGNORE, W_FAIL };

struct warg {
    char name;
    enum w_mode mode;
};

static void w_init(void *arg, struct rt_gs_result *r)
{
    const struct warg *a = arg;
    if (a->mode == W_IGNORE) {
        rt_gs_ignore(r);
        return;
    }
    if (a->mode == W_FAIL)
        atomic_fetch_add(&fail_attempts, 1);
    if (a->mode == W_FAIL && atomic_load(&start_failures) > 0) {
        atomic_fetch_sub(&start_failures, 1);
        rt_gs_stop(r, rt_atom_intern("cannot_start"));
        return;
    }
    struct warg *st = rt_alloc(sizeof *st);
    *st = *a;
    r->state = st;
    if (a->mode != W_NOTRAP)
        rt_trap_exit(true);
    logc('+', a->name);
}

static void w_info(struct rt_msg *m, void *state, struct rt_gs_result *r)
{
    if (m->type != RT_MSG_EXIT)
        return;
    rt_gs_stop(r, (rt_atom)m->u64);
}

static void w_terminate(rt_atom reason, void *state)
{
    struct warg *w = state;
    if (w->mode == W_SLOW_SHUTDOWN)
        rt_sleep(200);
    logc('-', w->name);
}

static void w_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                   struct rt_gs_result *r)
{
    rt_gs_reply(r, t_int_msg(0, ((struct warg *)state)->name));
}

static const struct rt_gen_server_ops w_ops = {
    .name = "worker",
    .init = w_init,
    .handle_call = w_call,
    .handle_info = w_info,
    .terminate = w_terminate,
};

static int w_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    struct warg a = *(const struct warg *)arg;
    if (extra_size >= 1)
        a.name = *(const char *)extra;
    return rt_gen_server_start_link(&w_ops, &a, NULL, out, reason);
}

/* The parent's EXIT is trapped by the worker but handled by the gen_server
 * loop (terminate runs), as OTP does. Worker parents are supervisors. */

#define W(id_, mode_, restart_, shutdown_)                                                         \
    {                                                                                              \
        .id = id_, .start = w_start, .arg = &(struct warg){id_[0], mode_},                         \
        .arg_size = sizeof(struct warg), .restart = restart_, .shutdown = shutdown_                \
    }

struct sup_cfg {
    struct rt_sup_flags flags;
    const struct rt_child_spec *specs;
    size_t n;
    int rc;
};

static int cfg_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    const struct sup_cfg *c = arg;
    if (c->rc)
        return c->rc;
    *flags = c->flags;
    return rt_sup_init_children(init, c->specs, c->n);
}

static rt_pid sup_start(struct sup_cfg *cfg)
{
    rt_pid pid = 0;
    rt_atom why = 0;
    int rc = rt_sup_start_link(cfg_init, cfg, NULL, &pid, &why);
    T_EQ(rc, 0);
    return pid;
}

/* Stops a supervisor linked to the caller (which must trap exits). */
static void sup_stop(rt_pid sup)
{
    rt_ref mref = rt_monitor(sup);
    rt_exit_signal(sup, RT_SHUTDOWN);
    struct rt_msg *d = rt_receive_ref(mref, 10000);
    T_ASSERT(d);
    T_EQ(d->u64, RT_SHUTDOWN);
    rt_msg_free(d);
    struct rt_msg *e = t_recv(RT_MSG_EXIT, sup, 1000);
    rt_msg_free(e);
}

static rt_pid child_pid(rt_pid sup, const char *id)
{
    struct rt_child_info info[16];
    size_t n = 0;
    T_EQ(rt_sup_which_children(sup, info, 16, &n), 0);
    for (size_t i = 0; i < n && i < 16; i++)
        if (strcmp(info[i].id, id) == 0)
            return info[i].pid;
    return 0;
}

static void crash(rt_pid pid)
{
    rt_ref mref = rt_monitor(pid);
    rt_exit_signal(pid, RT_KILL);
    rt_msg_free(rt_receive_ref(mref, 5000));
}

/* Waits until `id`'s pid differs from `old` (and is non-zero). */
static rt_pid await_restart(rt_pid sup, const char *id, rt_pid old)
{
    for (int i = 0; i < 500; i++) {
        rt_pid p = child_pid(sup, id);
        if (p && p != old)
            return p;
        rt_sleep(2);
    }
    return 0;
}

static void reset_order(void)
{
    memset(order, 0, sizeof order);
    atomic_store(&order_n, 0);
}

/* ---- start and stop order ----------------------------------------------------------- */

static void b_order(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    W("b", W_TRAP, RT_PERMANENT, 0),
                                    W("c", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 3, 0};
    rt_pid sup = sup_start(&cfg);
    T_ASSERT(strcmp(order, "+a+b+c") == 0); /* all started before start_link returned */
    sup_stop(sup);
    T_ASSERT(strcmp(order, "+a+b+c-c-b-a") == 0);
}
START_TEST(supervisor_starts_children_in_order_and_stops_them_in_reverse)
{
    t_run(b_order, true);
}
END_TEST

static void b_ignore(void)
{
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, NULL, 0, RT_IGNORE};
    rt_pid pid = 0;
    T_EQ(rt_sup_start_link(cfg_init, &cfg, NULL, &pid, NULL), RT_IGNORE);
}
START_TEST(supervisor_init_ignore_returns_ignore)
{
    t_run(b_ignore, true);
}
END_TEST

static void b_failed_start(void)
{
    rt_trap_exit(true);
    atomic_store(&start_failures, 1000);
    struct rt_child_spec specs[] = {
        W("a", W_TRAP, RT_PERMANENT, 0), W("b", W_TRAP, RT_PERMANENT, 0),
        W("f", W_FAIL, RT_PERMANENT, 0), W("d", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 4, 0};
    rt_atom why = 0;
    T_EQ(rt_sup_start_link(cfg_init, &cfg, NULL, NULL, &why), -ECHILD);
    T_EQ(why, rt_atom_intern("shutdown:failed_to_start_child:f"));
    T_ASSERT(strcmp(order, "+a+b-b-a") == 0);
    T_EQ(rt_mailbox_len(), 0);
}
START_TEST(supervisor_failing_child_start_unwinds_started_children_in_reverse)
{
    t_run(b_failed_start, true);
}
END_TEST

static void b_invalid(void)
{
    struct rt_sup_flags f = RT_SUP_FLAGS_DEFAULT;
    struct rt_child_spec dup[] = {W("a", W_TRAP, RT_PERMANENT, 0), W("a", W_TRAP, RT_PERMANENT, 0)};
    rt_atom why = 0;
    T_EQ(rt_sup_check_childspecs(&f, dup, 2, &why), -EINVAL);
    T_EQ(why, rt_atom_intern("duplicate_child_name"));
    struct rt_child_spec sig[] = {W("a", W_TRAP, RT_PERMANENT, 0)};
    sig[0].significant = true;
    f.auto_shutdown = RT_AUTO_ANY_SIGNIFICANT;
    T_EQ(rt_sup_check_childspecs(&f, sig, 1, &why), -EINVAL);
    sig[0].restart = RT_TRANSIENT;
    T_EQ(rt_sup_check_childspecs(&f, sig, 1, NULL), 0);
    f.auto_shutdown = RT_AUTO_NEVER;
    T_EQ(rt_sup_check_childspecs(&f, sig, 1, NULL), -EINVAL);
    f.intensity = -1;
    T_EQ(rt_sup_check_childspecs(&f, NULL, 0, &why), -EINVAL);
    T_EQ(why, rt_atom_intern("invalid_intensity"));
    f.intensity = 1;
    f.period_s = 0;
    T_EQ(rt_sup_check_childspecs(&f, NULL, 0, &why), -EINVAL);
    T_EQ(why, rt_atom_intern("invalid_period"));
    /* The supervisor itself refuses them at start. */
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, dup, 2, 0};
    rt_trap_exit(true);
    T_EQ(rt_sup_start_link(cfg_init, &cfg, NULL, NULL, &why), -ECHILD);
    T_EQ(why, rt_atom_intern("duplicate_child_name"));
    rt_msg_free(t_recv(RT_MSG_EXIT, 0, 1000));
}
START_TEST(supervisor_rejects_invalid_flags_and_child_specs)
{
    t_run(b_invalid, true);
}
END_TEST

/* ---- strategies ---------------------------------------------------------------------- */

static void b_one_for_one(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    W("b", W_TRAP, RT_PERMANENT, 0),
                                    W("c", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 5, 10, RT_AUTO_NEVER}, specs, 3, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid a = child_pid(sup, "a"), b = child_pid(sup, "b"), c = child_pid(sup, "c");
    reset_order();
    crash(b);
    rt_pid b2 = await_restart(sup, "b", b);
    T_ASSERT(b2 != 0);
    T_EQ(child_pid(sup, "a"), a);
    T_EQ(child_pid(sup, "c"), c);
    T_ASSERT(strcmp(order, "+b") == 0);
    sup_stop(sup);
}
START_TEST(supervisor_one_for_one_restarts_only_the_dead_child)
{
    t_run(b_one_for_one, true);
}
END_TEST

static void b_one_for_all(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {
        W("a", W_TRAP, RT_PERMANENT, 0), W("b", W_TRAP, RT_PERMANENT, 0),
        W("t", W_TRAP, RT_TEMPORARY, 0), W("c", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ALL, 5, 10, RT_AUTO_NEVER}, specs, 4, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid a = child_pid(sup, "a"), b = child_pid(sup, "b");
    reset_order();
    crash(b);
    T_ASSERT(await_restart(sup, "c", 0));
    rt_sleep(20);
    T_ASSERT(child_pid(sup, "a") != a);
    /* Others stopped in reverse order, then all restarted in order; the
     * temporary child is dropped. */
    T_ASSERT(strcmp(order, "-c-t-a+a+b+c") == 0);
    size_t n = 0;
    T_EQ(rt_sup_which_children(sup, NULL, 0, &n), 0);
    T_EQ(n, 3);
    sup_stop(sup);
}
START_TEST(supervisor_one_for_all_restarts_all_children_in_order_and_drops_temporary)
{
    t_run(b_one_for_all, true);
}
END_TEST

static void b_rest_for_one(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {
        W("a", W_TRAP, RT_PERMANENT, 0), W("b", W_TRAP, RT_PERMANENT, 0),
        W("c", W_TRAP, RT_PERMANENT, 0), W("d", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_REST_FOR_ONE, 5, 10, RT_AUTO_NEVER}, specs, 4, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid a = child_pid(sup, "a"), b = child_pid(sup, "b");
    reset_order();
    crash(b);
    T_ASSERT(await_restart(sup, "d", 0));
    rt_sleep(20);
    T_EQ(child_pid(sup, "a"), a);
    T_ASSERT(strcmp(order, "-d-c+b+c+d") == 0);
    sup_stop(sup);
}
START_TEST(supervisor_rest_for_one_restarts_later_siblings_in_order)
{
    t_run(b_rest_for_one, true);
}
END_TEST

static int sofo_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    struct warg proto = {'?', W_TRAP};
    struct rt_child_spec spec = {.id = "conn",
                                 .start = w_start,
                                 .arg = &proto,
                                 .arg_size = sizeof proto,
                                 .restart = RT_TRANSIENT};
    flags->strategy = RT_SIMPLE_ONE_FOR_ONE;
    flags->intensity = 5;
    flags->period_s = 10;
    return rt_sup_init_child(init, &spec);
}

static void b_sofo(void)
{
    rt_trap_exit(true);
    rt_pid sup = 0;
    T_EQ(rt_sup_start_link(sofo_init, NULL, NULL, &sup, NULL), 0);
    size_t n = 9;
    T_EQ(rt_sup_which_children(sup, NULL, 0, &n), 0);
    T_EQ(n, 0);
    rt_pid x = 0, y = 0;
    T_EQ(rt_sup_start_child_extra(sup, "x", 1, &x, NULL), 0);
    T_EQ(rt_sup_start_child_extra(sup, "y", 1, &y, NULL), 0);
    struct rt_msg *rep = NULL;
    T_EQ(rt_gen_server_call(x, rt_msg_new(1, 0), 1000, &rep, NULL), 0);
    T_EQ(t_int(rep), 'x'); /* the extra arguments reached the start function */
    rt_msg_free(rep);
    struct rt_child_info info[4];
    T_EQ(rt_sup_which_children(sup, info, 4, &n), 0);
    T_EQ(n, 2);
    T_ASSERT(info[0].id[0] == 0); /* ids are undefined */
    T_EQ(rt_sup_terminate_child(sup, "conn"), -EOPNOTSUPP);
    T_EQ(rt_sup_restart_child(sup, "conn", NULL, NULL), -EOPNOTSUPP);
    T_EQ(rt_sup_delete_child(sup, "conn"), -EOPNOTSUPP);
    T_EQ(rt_sup_terminate_child_pid(sup, x), 0);
    T_ASSERT(!rt_is_alive(x));
    T_EQ(rt_sup_which_children(sup, NULL, 0, &n), 0);
    T_EQ(n, 1);
    struct rt_sup_counts c;
    T_EQ(rt_sup_count_children(sup, &c), 0);
    T_EQ(c.specs, 1);
    T_EQ(c.active, 1);
    T_EQ(c.workers, 1);
    struct rt_child_spec other = W("z", W_TRAP, RT_PERMANENT, 0);
    T_EQ(rt_sup_start_child(sup, &other, NULL, NULL), -EOPNOTSUPP);
    /* A crashed transient dynamic child is restarted with the same extra. */
    crash(y);
    rt_pid y2 = 0;
    for (int i = 0; i < 500 && !y2; i++) {
        T_EQ(rt_sup_which_children(sup, info, 4, &n), 0);
        if (n == 1 && info[0].pid && info[0].pid != y)
            y2 = info[0].pid;
        else
            rt_sleep(2);
    }
    T_ASSERT(y2);
    T_EQ(rt_gen_server_call(y2, rt_msg_new(1, 0), 1000, &rep, NULL), 0);
    T_EQ(t_int(rep), 'y');
    rt_msg_free(rep);
    sup_stop(sup);
}
START_TEST(supervisor_simple_one_for_one_starts_dynamic_children_with_extra_arguments)
{
    t_run(b_sofo, true);
}
END_TEST

static int sofo_ignore_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    static struct warg proto = {'i', W_IGNORE};
    struct rt_child_spec spec = {
        .id = "i", .start = w_start, .arg = &proto, .restart = RT_TEMPORARY};
    flags->strategy = RT_SIMPLE_ONE_FOR_ONE;
    flags->intensity = 1;
    flags->period_s = 5;
    return rt_sup_init_child(init, &spec);
}

static void b_sofo_ignore(void)
{
    rt_trap_exit(true);
    rt_pid sup = 0, c = 1;
    T_EQ(rt_sup_start_link(sofo_ignore_init, NULL, NULL, &sup, NULL), 0);
    T_EQ(rt_sup_start_child_extra(sup, NULL, 0, &c, NULL), 0);
    T_EQ(c, 0);
    size_t n = 9;
    T_EQ(rt_sup_which_children(sup, NULL, 0, &n), 0);
    T_EQ(n, 0);
    sup_stop(sup);
}
START_TEST(supervisor_simple_one_for_one_ignore_returns_undefined_and_stores_nothing)
{
    t_run(b_sofo_ignore, true);
}
END_TEST

static void b_sofo_parallel(void)
{
    rt_trap_exit(true);
    rt_pid sup = 0;
    static struct warg proto = {'s', W_SLOW_SHUTDOWN};
    static struct rt_child_spec spec = {
        .id = "s", .start = w_start, .arg = &proto, .restart = RT_TEMPORARY, .shutdown = 2000};
    struct sup_cfg cfg = {{RT_SIMPLE_ONE_FOR_ONE, 1, 5, RT_AUTO_NEVER}, &spec, 1, 0};
    T_EQ(rt_sup_start_link(cfg_init, &cfg, NULL, &sup, NULL), 0);
    for (int i = 0; i < 5; i++)
        T_EQ(rt_sup_start_child_extra(sup, NULL, 0, NULL, NULL), 0);
    uint64_t t0 = rt_now_ms();
    sup_stop(sup);
    /* Five children needing 200 ms each stop together, not one by one. */
    T_ASSERT(rt_now_ms() - t0 < 700);
    T_EQ(atomic_load(&order_n), 20);
}
START_TEST(supervisor_simple_one_for_one_stops_children_in_parallel)
{
    t_run(b_sofo_parallel, true);
}
END_TEST

/* A child that holds no stack until it is told to stop (a message, or its
 * supervisor's exit signal). */
static void idle_woken(void *arg)
{
    (void)arg; /* any message ends it */
}

static void idle_child(void *arg)
{
    rt_hibernate(idle_woken, arg);
}

static int idle_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    (void)arg, (void)extra, (void)extra_size, (void)reason;
    struct rt_spawn_opts so = {.link = true, .initial_call = "idle_child"};
    return rt_spawn(idle_child, NULL, &so, out);
}

static size_t sup_memory(rt_pid sup)
{
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(sup, &pi), 0);
    return pi.memory;
}

/* Under the thread sanitizer each process is a fiber it tracks as a thread,
 * up to 8,128, and slowly: fewer children there, still enough that the
 * supervisor's fixed costs vanish from the figure per child. */
#if defined(__SANITIZE_THREAD__)
enum { MANY_CHILDREN = 2000 };
#else
enum { MANY_CHILDREN = 10000 };
#endif

static void b_sofo_small_records(void)
{
    rt_trap_exit(true);
    static struct rt_child_spec spec = {
        .id = "conn", .start = idle_start, .restart = RT_TEMPORARY, .shutdown = 5000};
    struct sup_cfg cfg = {{RT_SIMPLE_ONE_FOR_ONE, 1, 5, RT_AUTO_NEVER}, &spec, 1, 0};
    rt_pid sup = sup_start(&cfg);
    size_t before = sup_memory(sup);
    for (int i = 0; i < MANY_CHILDREN; i++)
        T_EQ(rt_sup_start_child_extra(sup, &i, sizeof i, NULL, NULL), 0);
    size_t after = sup_memory(sup);
    struct rt_sup_counts c;
    T_EQ(rt_sup_count_children(sup, &c), 0);
    T_EQ(c.active, MANY_CHILDREN);
    /* OTP keeps such children as a set of pids sharing one spec: here a
     * pid and a pointer (16 bytes) plus the link in the supervisor's link
     * set (8), each array at most twice what it holds while it grows. A
     * copied spec per child (id, start, arg, shutdown, ...) is 160 bytes. */
    size_t per_child = (after - before) / MANY_CHILDREN;
    T_ASSERT(per_child <= (16 + 8) * 2);
    sup_stop(sup);
}
START_TEST(supervisor_simple_one_for_one_keeps_little_more_than_a_pid_per_child)
{
    t_run(b_sofo_small_records, true);
}
END_TEST

/* ---- restart types and intensity ------------------------------------------------------ */

static void b_temporary(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("t", W_TRAP, RT_TEMPORARY, 0),
                                    W("p", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 5, 10, RT_AUTO_NEVER}, specs, 2, 0};
    rt_pid sup = sup_start(&cfg);
    crash(child_pid(sup, "t"));
    rt_sleep(30);
    size_t n = 0;
    T_EQ(rt_sup_which_children(sup, NULL, 0, &n), 0);
    T_EQ(n, 1); /* never restarted; its spec is removed */
    sup_stop(sup);
}
START_TEST(supervisor_temporary_child_is_never_restarted_and_its_spec_removed)
{
    t_run(b_temporary, true);
}
END_TEST

static void b_transient(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("n", W_TRAP, RT_TRANSIENT, 0),
                                    W("s", W_TRAP, RT_TRANSIENT, 0),
                                    W("k", W_TRAP, RT_TRANSIENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 5, 10, RT_AUTO_NEVER}, specs, 3, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid k = child_pid(sup, "k");
    /* Workers trap exits: these EXITs from a non-parent make them stop
     * with that reason. */
    rt_exit_signal(child_pid(sup, "n"), RT_NORMAL);
    rt_exit_signal(child_pid(sup, "s"), rt_atom_intern("shutdown:done"));
    rt_exit_signal(k, rt_atom_intern("boom"));
    T_ASSERT(await_restart(sup, "k", k));
    rt_sleep(20);
    T_EQ(child_pid(sup, "n"), 0);
    T_EQ(child_pid(sup, "s"), 0);
    struct rt_child_info info;
    T_EQ(rt_sup_get_childspec(sup, "n", &info), 0); /* spec kept, pid undefined */
    T_EQ(info.status, RT_CHILD_UNDEFINED);
    sup_stop(sup);
}
START_TEST(supervisor_transient_child_is_restarted_only_after_an_abnormal_exit)
{
    t_run(b_transient, true);
}
END_TEST

static void b_intensity(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    W("b", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 2, 5, RT_AUTO_NEVER}, specs, 2, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid b = child_pid(sup, "b");
    crash(b);
    b = await_restart(sup, "b", b);
    crash(b);
    b = await_restart(sup, "b", b);
    T_ASSERT(b);
    reset_order();
    crash(b); /* third restart within 5 s: more than intensity 2 */
    struct rt_msg *e = t_recv(RT_MSG_EXIT, sup, 5000);
    T_ASSERT(e);
    T_EQ(e->u64, RT_SHUTDOWN); /* the parent sees the supervisor exit with shutdown */
    rt_msg_free(e);
    T_ASSERT(strcmp(order, "-a") == 0); /* remaining children terminated */
}
START_TEST(supervisor_exceeding_restart_intensity_terminates_children_and_exits_shutdown)
{
    t_run(b_intensity, true);
}
END_TEST

static void b_intensity_zero(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 0, 5, RT_AUTO_NEVER}, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    crash(child_pid(sup, "a"));
    struct rt_msg *e = t_recv(RT_MSG_EXIT, sup, 5000);
    T_ASSERT(e);
    T_EQ(e->u64, RT_SHUTDOWN);
    rt_msg_free(e);
}
START_TEST(supervisor_intensity_zero_exits_on_the_first_restart)
{
    t_run(b_intensity_zero, true);
}
END_TEST

static void b_restarting(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("f", W_FAIL, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 10, 10, RT_AUTO_NEVER}, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid f = child_pid(sup, "f");
    atomic_store(&start_failures, 3);
    crash(f);
    /* The failed restarts are retried (each counts) until one succeeds. */
    rt_pid f2 = await_restart(sup, "f", f);
    T_ASSERT(f2);
    struct rt_sup_description d;
    T_EQ(rt_sup_describe(sup, &d, NULL, 0), 0);
    T_EQ(d.restarts_in_period, 4);
    sup_stop(sup);
}
START_TEST(supervisor_failed_restart_is_retried_and_counts_toward_intensity)
{
    t_run(b_restarting, true);
}
END_TEST

/* ---- shutdown protocol -------------------------------------------------------------- */

static void b_brutal(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, RT_SHUTDOWN_BRUTAL_KILL)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid a = child_pid(sup, "a");
    rt_ref mref = rt_monitor(a);
    T_EQ(rt_sup_terminate_child(sup, "a"), 0);
    struct rt_msg *d = rt_receive_ref(mref, 1000);
    T_ASSERT(d);
    T_EQ(d->u64, RT_KILLED);
    rt_msg_free(d);
    T_ASSERT(strcmp(order, "+a") == 0); /* no terminate: it was killed */
    sup_stop(sup);
}
START_TEST(supervisor_brutal_kill_shutdown_kills_the_child)
{
    t_run(b_brutal, true);
}
END_TEST

/* An immortal child: traps exits and ignores every message, its parent's
 * shutdown included. */
static void immortal(void *arg)
{
    rt_trap_exit(true);
    for (;;)
        rt_msg_free(rt_receive(RT_INFINITY));
}
static int immortal_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason)
{
    struct rt_spawn_opts so = {.link = true};
    return rt_spawn(immortal, NULL, &so, out);
}

static void b_timeout_kill(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {{.id = "i", .start = immortal_start, .shutdown = 100}};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid i = child_pid(sup, "i");
    rt_ref mref = rt_monitor(i);
    uint64_t t0 = rt_now_ms();
    T_EQ(rt_sup_terminate_child(sup, "i"), 0);
    uint64_t dt = rt_now_ms() - t0;
    T_ASSERT(dt >= 90 && dt < 2000);
    struct rt_msg *d = rt_receive_ref(mref, 1000);
    T_ASSERT(d);
    T_EQ(d->u64, RT_KILLED);
    rt_msg_free(d);
    sup_stop(sup);
}
START_TEST(supervisor_child_ignoring_shutdown_is_killed_after_its_timeout)
{
    t_run(b_timeout_kill, true);
}
END_TEST

static void b_infinity(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("s", W_SLOW_SHUTDOWN, RT_PERMANENT, RT_SHUTDOWN_INFINITY)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid s = child_pid(sup, "s");
    rt_ref mref = rt_monitor(s);
    uint64_t t0 = rt_now_ms();
    T_EQ(rt_sup_terminate_child(sup, "s"), 0);
    T_ASSERT(rt_now_ms() - t0 >= 190);
    struct rt_msg *d = rt_receive_ref(mref, 1000);
    T_ASSERT(d);
    T_EQ(d->u64, RT_SHUTDOWN); /* waited for, not killed */
    rt_msg_free(d);
    T_ASSERT(strcmp(order, "+s-s") == 0);
    sup_stop(sup);
}
START_TEST(supervisor_child_with_infinity_shutdown_is_waited_for)
{
    t_run(b_infinity, true);
}
END_TEST

/* A child that traps exits and ignores its parent's shutdown until
 * stubborn_go is set; stubborn_asked counts the exit signals it ignored. */
static atomic_int stubborn_asked, stubborn_go;
static void stubborn(void *arg)
{
    rt_trap_exit(true);
    while (!atomic_load(&stubborn_go)) {
        struct rt_msg *m = rt_receive(10);
        if (m && m->type == RT_MSG_EXIT)
            atomic_fetch_add(&stubborn_asked, 1);
        rt_msg_free(m);
    }
}
static int stubborn_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason)
{
    struct rt_spawn_opts so = {.link = true};
    return rt_spawn(stubborn, NULL, &so, out);
}
static void terminate_stubborn(void *arg)
{
    rt_sup_terminate_child(*(const rt_pid *)arg, "s");
}

/* Every call has a _timeout variant: while the supervisor waits for a
 * child that ignores its (infinity) shutdown, they give up with -ETIMEDOUT
 * after their timeout, and no late answer is left in the caller's mailbox
 * once the supervisor is free again. */
static void b_call_timeouts(void)
{
    rt_trap_exit(true);
    atomic_store(&stubborn_asked, 0);
    atomic_store(&stubborn_go, 0);
    struct rt_child_spec specs[] = {{.id = "s",
                                     .start = stubborn_start,
                                     .restart = RT_TRANSIENT,
                                     .shutdown = RT_SHUTDOWN_INFINITY}};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid term = 0;
    T_EQ(rt_spawn(terminate_stubborn, &sup, NULL, &term), 0);
    for (int i = 0; i < 10000 && !atomic_load(&stubborn_asked); i++)
        rt_sleep(1);
    T_ASSERT(atomic_load(&stubborn_asked) > 0); /* the supervisor is now busy */

    struct rt_child_info info[4];
    size_t n = 0;
    struct rt_sup_counts counts;
    struct rt_sup_description desc;
    rt_pid out = 0;
    rt_atom why = 0;
    uint64_t t0 = rt_now_ms();
    T_EQ(rt_sup_which_children_timeout(sup, 100, info, 4, &n), -ETIMEDOUT);
    uint64_t dt = rt_now_ms() - t0;
    T_ASSERT(dt >= 90 && dt < 2000);
    T_EQ(rt_sup_describe_timeout(sup, 50, &desc, info, 4), -ETIMEDOUT);
    T_EQ(rt_sup_count_children_timeout(sup, 50, &counts), -ETIMEDOUT);
    T_EQ(rt_sup_which_child_timeout(sup, "s", 50, info), -ETIMEDOUT);
    T_EQ(rt_sup_get_childspec_timeout(sup, "s", 50, info), -ETIMEDOUT);
    T_EQ(rt_sup_terminate_child_timeout(sup, "s", 0), -ETIMEDOUT);
    T_EQ(rt_sup_restart_child_timeout(sup, "s", 50, &out, &why), -ETIMEDOUT);
    T_EQ(rt_sup_delete_child_timeout(sup, "s", 50), -ETIMEDOUT);
    T_EQ(rt_sup_terminate_child_pid_timeout(sup, 1, 50), -ETIMEDOUT);
    T_EQ(rt_sup_start_child_extra_timeout(sup, NULL, 0, 50, &out, &why), -ETIMEDOUT);
    struct rt_child_spec more = {.id = "m", .start = stubborn_start, .restart = RT_TEMPORARY};
    T_EQ(rt_sup_start_child_timeout(sup, &more, 50, &out, &why), -ETIMEDOUT);

    /* Free: the queued requests are carried out (the restart, delete and
     * start above among them; their children exit normally at once and
     * are not restarted), their answers dropped. */
    atomic_store(&stubborn_go, 1);
    T_EQ(rt_sup_which_children_timeout(sup, RT_INFINITY, info, 4, &n), 0);
    for (int i = 0; i < 5000 && rt_is_alive(term); i++)
        rt_sleep(1);
    T_ASSERT(!rt_is_alive(term));
    rt_sleep(20);
    struct rt_msg *late = rt_receive(0);
    T_ASSERT(late == NULL);
    sup_stop(sup);
}
START_TEST(supervisor_calls_with_a_timeout_give_up_while_the_supervisor_is_busy)
{
    t_run(b_call_timeouts, true);
}
END_TEST

static struct warg wx = {'x', W_TRAP}, wy = {'y', W_TRAP};
static struct rt_child_spec inner_specs[] = {
    {.id = "x", .start = w_start, .arg = &wx, .arg_size = sizeof wx},
    {.id = "y", .start = w_start, .arg = &wy, .arg_size = sizeof wy}};
static struct sup_cfg inner_cfg = {RT_SUP_FLAGS_DEFAULT, inner_specs, 2, 0};

static int inner_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                       rt_atom *reason)
{
    return rt_sup_start_link(cfg_init, &inner_cfg, NULL, out, reason);
}

static void b_nested(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    {.id = "sub", .start = inner_start, .type = RT_SUPERVISOR},
                                    W("b", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 3, 0};
    rt_pid sup = sup_start(&cfg);
    T_ASSERT(strcmp(order, "+a+x+y+b") == 0);
    struct rt_child_info info;
    T_EQ(rt_sup_get_childspec(sup, "sub", &info), 0);
    T_EQ(info.shutdown, RT_SHUTDOWN_INFINITY); /* default for a supervisor child */
    T_EQ(info.type, RT_SUPERVISOR);
    T_EQ(rt_sup_get_childspec(sup, "a", &info), 0);
    T_EQ(info.shutdown, 5000); /* default for a worker */
    sup_stop(sup);
    T_ASSERT(strcmp(order, "+a+x+y+b-b-y-x-a") == 0);
}
START_TEST(supervisor_nested_tree_starts_depth_first_and_stops_in_reverse)
{
    t_run(b_nested, true);
}
END_TEST

static void unlinker(void *arg)
{
    rt_unlink(rt_parent());
    rt_receive(RT_INFINITY); /* not trapping: shutdown kills it */
}
static int unlinker_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason)
{
    struct rt_spawn_opts so = {.link = true};
    return rt_spawn(unlinker, NULL, &so, out);
}
static void b_unlinked(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {{.id = "u", .start = unlinker_start, .shutdown = 100}};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_sleep(20);
    rt_pid u = child_pid(sup, "u");
    T_EQ(rt_sup_terminate_child(sup, "u"), 0);
    T_ASSERT(!rt_is_alive(u));
    sup_stop(sup);
}
START_TEST(supervisor_shutdown_uses_a_monitor_so_an_unlinked_child_cannot_hang_it)
{
    t_run(b_unlinked, true);
}
END_TEST

static void b_parent_exit(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    W("b", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 2, 0};
    rt_pid sup = sup_start(&cfg);
    rt_ref mref = rt_monitor(sup);
    rt_atom r = rt_atom_intern("parent_went_away");
    rt_exit_signal(sup, r);
    struct rt_msg *d = rt_receive_ref(mref, 5000);
    T_ASSERT(d);
    T_EQ(d->u64, r);
    rt_msg_free(d);
    T_ASSERT(strcmp(order, "+a+b-b-a") == 0);
    rt_msg_free(t_recv(RT_MSG_EXIT, sup, 1000));
}
START_TEST(supervisor_parent_exit_terminates_children_then_exits_with_the_same_reason)
{
    t_run(b_parent_exit, true);
}
END_TEST

static void link_and_die(void *arg)
{
    rt_link(*(rt_pid *)arg);
    rt_exit(rt_atom_intern("boom"));
}
static void b_unknown_exit(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid a = child_pid(sup, "a");
    rt_pid *p = rt_alloc(sizeof *p);
    *p = sup;
    /* A linked process that is not a child dies: its EXIT is ignored. */
    rt_ref mref = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(link_and_die, p, &so, NULL), 0);
    rt_msg_free(rt_receive_ref(mref, 1000));
    rt_sleep(20);
    T_ASSERT(rt_is_alive(sup));
    T_EQ(child_pid(sup, "a"), a);
    sup_stop(sup);
}
START_TEST(supervisor_ignores_an_exit_from_an_unknown_pid)
{
    t_run(b_unknown_exit, true);
}
END_TEST

/* ---- child management API ------------------------------------------------------------- */

static void b_api(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    struct rt_child_spec b = W("b", W_TRAP, RT_PERMANENT, 0);
    struct rt_child_spec sb = {
        .id = "sb", .start = inner_start, .type = RT_SUPERVISOR, .restart = RT_PERMANENT};
    rt_pid pb = 0, again = 0;
    T_EQ(rt_sup_start_child(sup, &b, &pb, NULL), 0);
    T_ASSERT(pb && rt_is_alive(pb));
    T_EQ(rt_sup_start_child(sup, &b, &again, NULL), -EEXIST); /* already_started */
    T_EQ(again, pb);
    T_EQ(rt_sup_start_child(sup, &sb, NULL, NULL), 0);
    struct rt_sup_counts c;
    T_EQ(rt_sup_count_children(sup, &c), 0);
    T_EQ(c.specs, 3);
    T_EQ(c.active, 3);
    T_EQ(c.supervisors, 1);
    T_EQ(c.workers, 2);
    struct rt_child_info info[4];
    size_t n = 0;
    T_EQ(rt_sup_which_children(sup, info, 4, &n), 0);
    T_EQ(n, 3);
    T_ASSERT(strcmp(info[0].id, "a") == 0 && strcmp(info[1].id, "b") == 0 &&
             strcmp(info[2].id, "sb") == 0);
    T_EQ(info[2].type, RT_SUPERVISOR);
    T_EQ(rt_sup_delete_child(sup, "b"), -EBUSY); /* running */
    T_EQ(rt_sup_restart_child(sup, "b", NULL, NULL), -EBUSY);
    T_EQ(rt_sup_terminate_child(sup, "b"), 0);
    T_ASSERT(!rt_is_alive(pb));
    T_EQ(rt_sup_get_childspec(sup, "b", &info[0]), 0); /* spec kept */
    T_EQ(info[0].status, RT_CHILD_UNDEFINED);
    T_EQ(rt_sup_start_child(sup, &b, NULL, NULL), -EALREADY); /* already_present */
    T_EQ(rt_sup_restart_child(sup, "b", &pb, NULL), 0);
    T_ASSERT(rt_is_alive(pb));
    T_EQ(rt_sup_terminate_child(sup, "b"), 0);
    T_EQ(rt_sup_delete_child(sup, "b"), 0);
    T_EQ(rt_sup_get_childspec(sup, "b", &info[0]), -ENOENT);
    T_EQ(rt_sup_terminate_child(sup, "nope"), -ENOENT);
    T_EQ(rt_sup_restart_child(sup, "nope", NULL, NULL), -ENOENT);
    T_EQ(rt_sup_delete_child(sup, "nope"), -ENOENT);
    /* A temporary child's spec goes away with terminate_child. */
    struct rt_child_spec t = W("t", W_TRAP, RT_TEMPORARY, 0);
    T_EQ(rt_sup_start_child(sup, &t, NULL, NULL), 0);
    T_EQ(rt_sup_terminate_child(sup, "t"), 0);
    T_EQ(rt_sup_get_childspec(sup, "t", &info[0]), -ENOENT);
    /* A failing start reports the reason and stores nothing. */
    atomic_store(&start_failures, 1);
    struct rt_child_spec f = W("f", W_FAIL, RT_PERMANENT, 0);
    rt_atom why = 0;
    T_EQ(rt_sup_start_child(sup, &f, NULL, &why), -ECHILD);
    T_EQ(why, rt_atom_intern("cannot_start"));
    T_EQ(rt_sup_get_childspec(sup, "f", &info[0]), -ENOENT);
    sup_stop(sup);
}
START_TEST(supervisor_start_terminate_restart_delete_child_follow_otp_results)
{
    t_run(b_api, true);
}
END_TEST

static void b_describe(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    {.id = "sub", .start = inner_start, .type = RT_SUPERVISOR}};
    struct sup_cfg cfg = {{RT_REST_FOR_ONE, 3, 7, RT_AUTO_NEVER}, specs, 2, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid a = child_pid(sup, "a");
    crash(a);
    T_ASSERT(await_restart(sup, "a", a));
    struct rt_sup_description d;
    struct rt_child_info ch[4];
    T_EQ(rt_sup_describe(sup, &d, ch, 4), 0);
    T_EQ(d.flags.strategy, RT_REST_FOR_ONE);
    T_EQ(d.flags.intensity, 3);
    T_EQ(d.flags.period_s, 7);
    T_EQ(d.restarts, 1);
    T_EQ(d.children, 2);
    T_EQ(ch[0].restarts, 1);
    /* Walk into the child supervisor. */
    T_EQ(ch[1].type, RT_SUPERVISOR);
    struct rt_child_info gch[4];
    T_EQ(rt_sup_describe(ch[1].pid, &d, gch, 4), 0);
    T_EQ(d.children, 2);
    T_ASSERT(strcmp(gch[1].id, "y") == 0);
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(sup, &pi), 0);
    T_EQ(pi.kind, RT_KIND_SUPERVISOR);
    sup_stop(sup);
}
START_TEST(supervisor_describe_walks_the_tree_with_strategy_and_restart_counts)
{
    t_run(b_describe, true);
}
END_TEST

static void b_auto_shutdown(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    W("s", W_TRAP, RT_TRANSIENT, 0)};
    specs[1].significant = true;
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 3, 5, RT_AUTO_ANY_SIGNIFICANT}, specs, 2, 0};
    rt_pid sup = sup_start(&cfg);
    /* terminate_child from the API does not trigger auto shutdown. */
    T_EQ(rt_sup_terminate_child(sup, "s"), 0);
    T_EQ(rt_sup_restart_child(sup, "s", NULL, NULL), 0);
    rt_sleep(10);
    T_ASSERT(rt_is_alive(sup));
    rt_exit_signal(child_pid(sup, "s"), RT_NORMAL); /* exits normally by itself */
    struct rt_msg *e = t_recv(RT_MSG_EXIT, sup, 5000);
    T_ASSERT(e);
    T_EQ(e->u64, RT_SHUTDOWN);
    rt_msg_free(e);
}
START_TEST(supervisor_any_significant_child_exiting_shuts_the_supervisor_down)
{
    t_run(b_auto_shutdown, true);
}
END_TEST

static void b_sys(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    struct rt_sys_status st;
    T_EQ(rt_sys_get_status(sup, 1000, &st), 0);
    T_ASSERT(strcmp(st.module, "supervisor") == 0);
    T_ASSERT(strstr(st.formatted, "one_for_one") != NULL);
    sup_stop(sup);
}
START_TEST(supervisor_answers_sys_get_status)
{
    t_run(b_sys, true);
}
END_TEST

static void b_bad_init(void)
{
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, NULL, 0, -EINVAL};
    rt_atom why = 0;
    rt_trap_exit(true);
    T_EQ(rt_sup_start_link(cfg_init, &cfg, NULL, NULL, &why), -ECHILD);
    T_EQ(why, rt_atom_intern("bad_init"));
    rt_msg_free(t_recv(RT_MSG_EXIT, 0, 1000));
}
START_TEST(supervisor_init_failure_returns_an_error_and_the_supervisor_exits)
{
    t_run(b_bad_init, true);
}
END_TEST

static void b_init_ignore_child(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("p", W_IGNORE, RT_PERMANENT, 0),
                                    W("t", W_IGNORE, RT_TEMPORARY, 0),
                                    W("a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 3, 0};
    rt_pid sup = sup_start(&cfg);
    struct rt_child_info info[4];
    size_t n = 0;
    T_EQ(rt_sup_which_children(sup, info, 4, &n), 0);
    T_EQ(n, 2); /* the ignoring temporary child's spec is dropped */
    T_ASSERT(strcmp(info[0].id, "p") == 0);
    T_EQ(info[0].pid, 0); /* kept with pid undefined */
    T_EQ(info[0].status, RT_CHILD_UNDEFINED);
    sup_stop(sup);
}
START_TEST(supervisor_child_ignoring_at_start_is_kept_undefined_unless_temporary)
{
    t_run(b_init_ignore_child, true);
}
END_TEST

static void b_all_significant(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    W("s", W_TRAP, RT_TEMPORARY, 0),
                                    W("t", W_TRAP, RT_TEMPORARY, 0)};
    specs[1].significant = specs[2].significant = true;
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 3, 5, RT_AUTO_ALL_SIGNIFICANT}, specs, 3, 0};
    rt_pid sup = sup_start(&cfg);
    rt_exit_signal(child_pid(sup, "s"), rt_atom_intern("boom"));
    rt_sleep(30);
    T_ASSERT(rt_is_alive(sup)); /* one significant child is still running */
    rt_exit_signal(child_pid(sup, "t"), RT_NORMAL);
    struct rt_msg *e = t_recv(RT_MSG_EXIT, sup, 5000);
    T_ASSERT(e);
    T_EQ(e->u64, RT_SHUTDOWN);
    rt_msg_free(e);
}
START_TEST(supervisor_all_significant_shuts_down_when_the_last_significant_child_exits)
{
    t_run(b_all_significant, true);
}
END_TEST

static void ask_which(void *arg)
{
    struct rt_child_info info[2];
    size_t n = 0;
    if (rt_sup_which_children((rt_pid)atomic_load(&helper_sup), info, 2, &n) == 0 && n == 1)
        atomic_store(&helper_status, (int)info[0].status);
}
static void ask_restart(void *arg)
{
    atomic_store(&helper_restart,
                 rt_sup_restart_child((rt_pid)atomic_load(&helper_sup), "f", NULL, NULL));
}
static void ask_delete(void *arg)
{
    atomic_store(&helper_delete, rt_sup_delete_child((rt_pid)atomic_load(&helper_sup), "f"));
}
static void b_restarting_status(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("f", W_FAIL, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 10, 10, RT_AUTO_NEVER}, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    atomic_store(&helper_sup, sup);
    rt_pid f = child_pid(sup, "f");
    atomic_store(&start_failures, 1);
    /* Suspended, the supervisor queues the child's EXIT and then the three
     * requests; on resume the failed restart's retry comes after them. */
    T_EQ(rt_sys_suspend(sup, 1000), 0);
    crash(f);
    rt_spawn(ask_which, NULL, NULL, NULL);
    rt_sleep(10);
    rt_spawn(ask_restart, NULL, NULL, NULL);
    rt_sleep(10);
    rt_spawn(ask_delete, NULL, NULL, NULL);
    rt_sleep(10);
    T_EQ(rt_sys_resume(sup, 1000), 0);
    T_ASSERT(await_restart(sup, "f", f));
    T_EQ(atomic_load(&helper_status), RT_CHILD_RESTARTING);
    T_EQ(atomic_load(&helper_restart), -EINPROGRESS);
    T_EQ(atomic_load(&helper_delete), -EINPROGRESS);
    sup_stop(sup);
}
START_TEST(supervisor_child_whose_restart_failed_shows_restarting_until_the_retry)
{
    t_run(b_restarting_status, true);
}
END_TEST

/* ---- terminate_child: restarting, by pid ----------------------------------------------- */

static void ask_terminate_id(void *arg)
{
    atomic_store(&helper_rc, rt_sup_terminate_child((rt_pid)atomic_load(&helper_sup), "f"));
}
static void ask_terminate_pid(void *arg)
{
    atomic_store(&helper_rc, rt_sup_terminate_child_pid((rt_pid)atomic_load(&helper_sup),
                                                        (rt_pid)atomic_load(&helper_pid)));
}
static int await_helper_rc(void)
{
    for (int i = 0; i < 2000 && atomic_load(&helper_rc) == 1; i++)
        rt_sleep(1);
    return atomic_load(&helper_rc);
}

/* Suspended, the supervisor queues the child's EXIT, then the
 * terminate_child call; on resume the restart fails and its retry is
 * queued after the call. */
static void crash_then_terminate_while_restarting(rt_pid sup, rt_pid child, rt_entry ask)
{
    atomic_store(&helper_sup, sup);
    atomic_store(&helper_pid, child);
    atomic_store(&start_failures, 1);
    T_EQ(rt_sys_suspend(sup, 1000), 0);
    crash(child);
    rt_spawn(ask, NULL, NULL, NULL);
    rt_sleep(20);
    T_EQ(rt_sys_resume(sup, 1000), 0);
    T_EQ(await_helper_rc(), 0);
    rt_sleep(50); /* the retry, had it not been dropped, would have run */
}

static void b_terminate_restarting(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("f", W_FAIL, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 10, 10, RT_AUTO_NEVER}, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid f = child_pid(sup, "f");
    T_EQ(atomic_load(&fail_attempts), 1);
    crash_then_terminate_while_restarting(sup, f, ask_terminate_id);
    T_EQ(atomic_load(&fail_attempts), 2); /* the failed restart, and no retry after it */
    struct rt_child_info info;
    T_EQ(rt_sup_get_childspec(sup, "f", &info), 0);
    T_EQ(info.status, RT_CHILD_UNDEFINED);
    T_EQ(info.pid, 0);
    T_EQ(rt_sup_restart_child(sup, "f", NULL, NULL), 0); /* a plain stopped child now */
    sup_stop(sup);
}
START_TEST(supervisor_terminate_child_of_a_restarting_child_stops_its_retries)
{
    t_run(b_terminate_restarting, true);
}
END_TEST

static void b_terminate_restarting_dynamic(void)
{
    rt_trap_exit(true);
    struct rt_child_spec spec = W("f", W_FAIL, RT_PERMANENT, 0);
    struct sup_cfg cfg = {{RT_SIMPLE_ONE_FOR_ONE, 10, 10, RT_AUTO_NEVER}, &spec, 1, 0};
    rt_pid sup = sup_start(&cfg), f = 0;
    T_EQ(rt_sup_start_child_extra(sup, "f", 1, &f, NULL), 0);
    crash_then_terminate_while_restarting(sup, f, ask_terminate_pid);
    T_EQ(atomic_load(&fail_attempts), 2);
    size_t n = 9;
    T_EQ(rt_sup_which_children(sup, NULL, 0, &n), 0);
    T_EQ(n, 0); /* found by its old pid and forgotten */
    sup_stop(sup);
}
START_TEST(supervisor_terminate_child_finds_a_restarting_dynamic_child_by_its_old_pid)
{
    t_run(b_terminate_restarting_dynamic, true);
}
END_TEST

static void b_terminate_pid_static(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid a = child_pid(sup, "a");
    T_EQ(rt_sup_terminate_child_pid(sup, a), -ENOENT); /* not_found: ids name static children */
    rt_sleep(10);
    T_ASSERT(rt_is_alive(a));
    T_EQ(child_pid(sup, "a"), a);
    T_ASSERT(strcmp(order, "+a") == 0);
    sup_stop(sup);
}
START_TEST(supervisor_terminate_child_by_pid_on_a_static_supervisor_answers_not_found)
{
    t_run(b_terminate_pid_static, true);
}
END_TEST

static void b_terminate_dead_pid(void)
{
    rt_trap_exit(true);
    struct rt_child_spec spec = W("t", W_TRAP, RT_TEMPORARY, 0);
    struct sup_cfg cfg = {{RT_SIMPLE_ONE_FOR_ONE, 1, 5, RT_AUTO_NEVER}, &spec, 1, 0};
    rt_pid sup = sup_start(&cfg), t = 0;
    T_EQ(rt_sup_start_child_extra(sup, "t", 1, &t, NULL), 0);
    crash(t);
    size_t n = 1;
    for (int i = 0; i < 500 && n; i++) {
        T_EQ(rt_sup_which_children(sup, NULL, 0, &n), 0);
        if (n)
            rt_sleep(2);
    }
    T_EQ(n, 0);
    T_EQ(rt_sup_terminate_child_pid(sup, t), 0);               /* gone already: ok */
    T_EQ(rt_sup_terminate_child_pid(sup, rt_self()), -ENOENT); /* alive, not a child */
    sup_stop(sup);
}
START_TEST(supervisor_terminate_child_by_pid_of_an_already_dead_dynamic_child_answers_ok)
{
    t_run(b_terminate_dead_pid, true);
}
END_TEST

/* ---- simple_one_for_one specifics ------------------------------------------------------ */

static void b_sofo_auto_shutdown(void)
{
    rt_trap_exit(true);
    struct rt_child_spec spec = W("s", W_TRAP, RT_TRANSIENT, 0);
    spec.significant = true;
    enum rt_auto_shutdown modes[] = {RT_AUTO_ANY_SIGNIFICANT, RT_AUTO_ALL_SIGNIFICANT};
    for (int k = 0; k < 2; k++) {
        struct sup_cfg cfg = {{RT_SIMPLE_ONE_FOR_ONE, 1, 5, modes[k]}, &spec, 1, 0};
        rt_atom why = 0;
        T_EQ(rt_sup_check_childspecs(&cfg.flags, &spec, 1, &why), -EINVAL);
        T_EQ(why, rt_atom_intern("bad_combination"));
        why = 0;
        T_EQ(rt_sup_start_link(cfg_init, &cfg, NULL, NULL, &why), -ECHILD);
        T_EQ(why, rt_atom_intern("bad_combination"));
        rt_msg_free(t_recv(RT_MSG_EXIT, 0, 1000));
    }
}
START_TEST(supervisor_simple_one_for_one_with_auto_shutdown_is_refused_as_bad_combination)
{
    t_run(b_sofo_auto_shutdown, true);
}
END_TEST

static void parked(void *arg)
{
    rt_msg_free(rt_receive(RT_INFINITY)); /* not trapping: a shutdown ends it */
}
static int parked_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                        rt_atom *reason)
{
    struct rt_spawn_opts so = {.link = true};
    return rt_spawn(parked, NULL, &so, out);
}
static size_t proc_memory(rt_pid pid)
{
    struct rt_proc_info pi;
    T_EQ(rt_proc_info(pid, &pi), 0);
    return pi.memory;
}
/* The supervisor's memory growth for 100 children with 8 KiB of extra
 * arguments each. */
static size_t growth_for_100_children(enum rt_restart restart)
{
    struct rt_child_spec spec = {
        .id = "p", .start = parked_start, .restart = restart, .shutdown = RT_SHUTDOWN_BRUTAL_KILL};
    struct sup_cfg cfg = {{RT_SIMPLE_ONE_FOR_ONE, 1, 5, RT_AUTO_NEVER}, &spec, 1, 0};
    rt_pid sup = sup_start(&cfg);
    char *args = rt_calloc(1, 8192);
    size_t before = proc_memory(sup);
    for (int i = 0; i < 100; i++)
        T_EQ(rt_sup_start_child_extra(sup, args, 8192, NULL, NULL), 0);
    size_t after = proc_memory(sup);
    rt_free(args);
    sup_stop(sup);
    return after > before ? after - before : 0;
}
static void b_sofo_temporary_args(void)
{
    rt_trap_exit(true);
    /* A transient child may be restarted: its arguments are kept. */
    T_ASSERT(growth_for_100_children(RT_TRANSIENT) >= 100 * 8192);
    /* A temporary one never is: they are dropped. */
    T_ASSERT(growth_for_100_children(RT_TEMPORARY) < 100 * 1024);
}
START_TEST(supervisor_simple_one_for_one_temporary_children_do_not_keep_their_start_arguments)
{
    t_run(b_sofo_temporary_args, true);
}
END_TEST

static void b_which_order(void)
{
    rt_trap_exit(true);
    rt_pid sup = 0, p[3];
    T_EQ(rt_sup_start_link(sofo_init, NULL, NULL, &sup, NULL), 0);
    for (int i = 0; i < 3; i++)
        T_EQ(rt_sup_start_child_extra(sup, &"xyz"[i], 1, &p[i], NULL), 0);
    struct rt_child_info info[4];
    size_t n = 0;
    T_EQ(rt_sup_which_children(sup, info, 4, &n), 0);
    T_EQ(n, 3);
    for (int i = 0; i < 3; i++)
        T_EQ(info[i].pid, p[i]); /* oldest first */
    sup_stop(sup);
    struct rt_child_spec specs[] = {W("b", W_TRAP, RT_PERMANENT, 0),
                                    W("a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 2, 0};
    sup = sup_start(&cfg);
    struct rt_child_spec c = W("c", W_TRAP, RT_PERMANENT, 0);
    T_EQ(rt_sup_start_child(sup, &c, NULL, NULL), 0);
    T_EQ(rt_sup_which_children(sup, info, 4, &n), 0);
    T_EQ(n, 3);
    T_ASSERT(strcmp(info[0].id, "b") == 0 && strcmp(info[1].id, "a") == 0 &&
             strcmp(info[2].id, "c") == 0);
    sup_stop(sup);
}
START_TEST(supervisor_which_children_lists_static_and_dynamic_children_in_start_order)
{
    t_run(b_which_order, true);
}
END_TEST

/* ---- start_child passes already_started through ---------------------------------------- */

static int named_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                       rt_atom *reason)
{
    struct warg a = {'n', W_TRAP};
    struct rt_start_opts o = {.name = "sup_test_named"};
    return rt_gen_server_start_link(&w_ops, &a, &o, out, reason);
}
static void b_already_started(void)
{
    rt_trap_exit(true);
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, NULL, 0, 0};
    rt_pid sup = sup_start(&cfg), n1 = 0, other = 0;
    struct rt_child_spec s1 = {.id = "n1", .start = named_start};
    struct rt_child_spec s2 = {.id = "n2", .start = named_start};
    T_EQ(rt_sup_start_child(sup, &s1, &n1, NULL), 0);
    rt_atom why = 0;
    T_EQ(rt_sup_start_child(sup, &s2, &other, &why), -EEXIST); /* {already_started, Pid} */
    T_EQ(other, n1);
    T_EQ(rt_sup_get_childspec(sup, "n2", &(struct rt_child_info){0}), -ENOENT);
    /* The same from a simple_one_for_one supervisor's start_child. */
    struct rt_child_spec tmpl = {.id = "n", .start = named_start};
    struct sup_cfg dcfg = {{RT_SIMPLE_ONE_FOR_ONE, 1, 5, RT_AUTO_NEVER}, &tmpl, 1, 0};
    rt_pid dsup = sup_start(&dcfg);
    other = 0;
    T_EQ(rt_sup_start_child_extra(dsup, NULL, 0, &other, NULL), -EEXIST);
    T_EQ(other, n1);
    sup_stop(dsup);
    sup_stop(sup);
}
START_TEST(supervisor_start_child_passes_already_started_from_the_start_function_through)
{
    t_run(b_already_started, true);
}
END_TEST

/* ---- hibernation ----------------------------------------------------------------------- */

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
static void b_hibernate(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    T_EQ(await_status(sup, RT_STATUS_HIBERNATING), RT_STATUS_HIBERNATING);
    /* Woken by a request, it goes back to sleep afterwards. */
    T_ASSERT(child_pid(sup, "a") != 0);
    T_EQ(await_status(sup, RT_STATUS_HIBERNATING), RT_STATUS_HIBERNATING);
    sup_stop(sup);
}
START_TEST(supervisor_with_static_children_hibernates_after_start)
{
    t_run(b_hibernate, true);
}
END_TEST

/* ---- child specs are copied during init ------------------------------------------------- */

/* Scratch shared by every init on the thread, as the gateway's inits once
 * had: the supervisor copies each spec when it is added, so a second init
 * rewriting it while the first supervisor is still starting children
 * cannot change that supervisor's children. */
static __thread struct rt_child_spec il_specs[2];
static __thread char il_ids[2][8];
static __thread struct warg il_args[2];

static int gated_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                       rt_atom *reason)
{
    atomic_store(&gate_entered, 1);
    for (int i = 0; i < 3000 && !atomic_load(&b_init_done); i++)
        rt_sleep(1);
    return w_start(arg, extra, extra_size, out, reason);
}
static int il_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    char tag = *(const char *)arg;
    for (int i = 0; i < 2; i++) {
        snprintf(il_ids[i], sizeof il_ids[i], "%c%d", tag, i + 1);
        il_args[i] = (struct warg){tag == 'A' ? "ab"[i] : "xy"[i], W_TRAP};
        il_specs[i] = (struct rt_child_spec){.id = il_ids[i],
                                             .start = tag == 'A' && i == 0 ? gated_start : w_start,
                                             .arg = &il_args[i],
                                             .arg_size = sizeof il_args[i]};
    }
    int rc = rt_sup_init_children(init, il_specs, 2);
    if (tag == 'B')
        atomic_store(&b_init_done, 1);
    return rc;
}
static void il_b_starter(void *arg)
{
    rt_trap_exit(true);
    for (int i = 0; i < 3000 && !atomic_load(&gate_entered); i++)
        rt_sleep(1);
    char tag = 'B';
    rt_pid b = 0;
    int rc = rt_sup_start_link(il_init, &tag, NULL, &b, NULL);
    struct rt_msg *m = rt_msg_copy(1, &b, sizeof b);
    m->u64 = (uint64_t)rc;
    rt_send((rt_pid)atomic_load(&test_pid), m);
    rt_msg_free(t_recv(2, 0, 10000));
    if (b)
        sup_stop(b);
}
static void expect_ids(rt_pid sup, const char *first, const char *second)
{
    struct rt_child_info info[4];
    size_t n = 0;
    T_EQ(rt_sup_which_children(sup, info, 4, &n), 0);
    T_EQ(n, 2);
    T_ASSERT(strcmp(info[0].id, first) == 0);
    T_ASSERT(strcmp(info[1].id, second) == 0);
}
static void b_interleave(void)
{
    rt_trap_exit(true);
    atomic_store(&test_pid, rt_self());
    rt_ref mref = 0;
    rt_pid starter = 0;
    struct rt_spawn_opts so = {.monitor = true, .monitor_ref = &mref};
    T_EQ(rt_spawn(il_b_starter, NULL, &so, &starter), 0);
    char tag = 'A';
    rt_pid a = 0;
    T_EQ(rt_sup_start_link(il_init, &tag, NULL, &a, NULL), 0);
    struct rt_msg *m = t_recv(1, 0, 5000);
    T_ASSERT(m);
    rt_pid b = 0;
    memcpy(&b, m->data, sizeof b);
    T_EQ(m->u64, 0);
    rt_msg_free(m);
    T_ASSERT(atomic_load(&b_init_done)); /* B's init ran while A was starting A1 */
    expect_ids(a, "A1", "A2");
    expect_ids(b, "B1", "B2");
    T_ASSERT(strstr(order, "+b") != NULL); /* A2 started with its own arg */
    sup_stop(a);
    rt_send(starter, rt_msg_new(2, 0));
    rt_msg_free(rt_receive_ref(mref, 10000));
}
START_TEST(supervisor_inits_interleaving_on_one_scheduler_each_get_their_own_children)
{
    t_run_on(b_interleave, true, 1);
}
END_TEST

/* ---- which_child --------------------------------------------------------------------- */

static void b_which_child(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    W("b", W_TRAP, RT_TRANSIENT, 1000)};
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 2, 0};
    rt_pid sup = sup_start(&cfg);
    struct rt_child_info c;
    T_EQ(rt_sup_which_child(sup, "b", &c), 0);
    T_ASSERT(strcmp(c.id, "b") == 0);
    T_EQ(c.pid, child_pid(sup, "b"));
    T_ASSERT(c.pid != 0);
    T_EQ(c.status, RT_CHILD_RUNNING);
    T_EQ(c.type, RT_WORKER);
    T_EQ(c.restart, RT_TRANSIENT);
    T_EQ(c.shutdown, 1000);
    T_EQ(rt_sup_terminate_child(sup, "b"), 0);
    T_EQ(rt_sup_which_child(sup, "b", &c), 0);
    T_EQ(c.pid, 0);
    T_EQ(c.status, RT_CHILD_UNDEFINED);
    T_EQ(rt_sup_which_child(sup, "nope", &c), -ENOENT);
    sup_stop(sup);
    rt_pid dsup = 0;
    T_EQ(rt_sup_start_link(sofo_init, NULL, NULL, &dsup, NULL), 0);
    T_EQ(rt_sup_which_child(dsup, "conn", &c), -EOPNOTSUPP);
    sup_stop(dsup);
}
START_TEST(supervisor_which_child_looks_up_one_child_by_id)
{
    t_run(b_which_child, true);
}
END_TEST

/* ---- shutdown 0 ms ---------------------------------------------------------------------- */

/* Terminates `id` (a slow-shutdown worker); returns the time it took and
 * writes the child's exit reason. */
static uint64_t timed_terminate(rt_pid sup, const char *id, rt_atom *reason)
{
    rt_pid p = child_pid(sup, id);
    rt_ref mref = rt_monitor(p);
    uint64_t t0 = rt_now_ms();
    T_EQ(rt_sup_terminate_child(sup, id), 0);
    uint64_t dt = rt_now_ms() - t0;
    struct rt_msg *d = rt_receive_ref(mref, 5000);
    T_ASSERT(d);
    *reason = (rt_atom)d->u64;
    rt_msg_free(d);
    return dt;
}
static void b_shutdown_zero(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {
        W("z", W_SLOW_SHUTDOWN, RT_PERMANENT, RT_SHUTDOWN_ZERO),
        W("d", W_SLOW_SHUTDOWN, RT_PERMANENT, RT_SHUTDOWN_DEFAULT),
        W("i", W_SLOW_SHUTDOWN, RT_PERMANENT, RT_SHUTDOWN_INFINITY),
        W("k", W_SLOW_SHUTDOWN, RT_PERMANENT, RT_SHUTDOWN_BRUTAL_KILL),
    };
    struct sup_cfg cfg = {RT_SUP_FLAGS_DEFAULT, specs, 4, 0};
    rt_pid sup = sup_start(&cfg);
    struct rt_child_info z, c;
    T_EQ(rt_sup_get_childspec(sup, "z", &z), 0);
    T_EQ(z.shutdown, RT_SHUTDOWN_ZERO);
    T_EQ(rt_sup_get_childspec(sup, "d", &c), 0);
    T_EQ(c.shutdown, 5000);
    rt_atom why = 0;
    /* 0 ms: told to shut down, not waited for, killed. */
    T_ASSERT(timed_terminate(sup, "z", &why) < 150);
    T_EQ(why, RT_KILLED);
    /* The default (5000 ms) and infinity wait for its 200 ms terminate. */
    T_ASSERT(timed_terminate(sup, "d", &why) >= 150);
    T_EQ(why, RT_SHUTDOWN);
    T_ASSERT(timed_terminate(sup, "i", &why) >= 150);
    T_EQ(why, RT_SHUTDOWN);
    T_ASSERT(timed_terminate(sup, "k", &why) < 150);
    T_EQ(why, RT_KILLED);
    T_ASSERT(strcmp(order, "+z+d+i+k-d-i") == 0); /* only d and i ran terminate */
    /* A spec given back with the effective value keeps its meaning. */
    T_EQ(rt_sup_delete_child(sup, "z"), 0);
    struct rt_child_spec again = W("z", W_SLOW_SHUTDOWN, RT_PERMANENT, z.shutdown);
    T_EQ(rt_sup_start_child(sup, &again, NULL, NULL), 0);
    T_EQ(rt_sup_get_childspec(sup, "z", &c), 0);
    T_EQ(c.shutdown, RT_SHUTDOWN_ZERO);
    sup_stop(sup);
}
START_TEST(supervisor_zero_ms_shutdown_is_a_timeout_distinct_from_the_default)
{
    t_run(b_shutdown_zero, true);
}
END_TEST

/* ---- structured reports ------------------------------------------------------------ */

/* What the report handler saw, in order: copies, since the strings are
 * valid during the call only. */
struct seen_report {
    rt_pid supervisor;
    char supervisor_name[64];
    char event[40];
    char child[64];
    rt_pid pid, new_pid;
    rt_atom reason;
};
static struct seen_report seen[16];
/* Reports are written one at a time under the lock, and nseen counts only
 * those written whole: a test that reads nseen > i reads seen[i] after its
 * writer's store (supervisors report from any scheduler thread). */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static int nslots;
static atomic_int nseen;

static void seen_reset(void)
{
    pthread_mutex_lock(&seen_lock);
    nslots = 0;
    atomic_store(&nseen, 0);
    pthread_mutex_unlock(&seen_lock);
}

static void on_report(const struct rt_supervisor_report *r, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&seen_lock);
    int i = nslots++;
    if (i >= (int)(sizeof seen / sizeof seen[0])) {
        atomic_store(&nseen, nslots);
        pthread_mutex_unlock(&seen_lock);
        return;
    }
    struct seen_report *o = &seen[i];
    o->supervisor = r->supervisor;
    snprintf(o->supervisor_name, sizeof o->supervisor_name, "%s",
             r->supervisor_name ? r->supervisor_name : "(null)");
    snprintf(o->event, sizeof o->event, "%s", r->event);
    snprintf(o->child, sizeof o->child, "%s", r->child);
    o->pid = r->pid;
    o->new_pid = r->new_pid;
    o->reason = r->reason;
    atomic_store(&nseen, nslots);
    pthread_mutex_unlock(&seen_lock);
}

static const struct seen_report *await_report(int i)
{
    for (int k = 0; k < 1000 && atomic_load(&nseen) <= i; k++)
        rt_sleep(2);
    return atomic_load(&nseen) > i ? &seen[i] : NULL;
}

static void b_reports(void)
{
    rt_trap_exit(true);
    seen_reset();
    rt_set_supervisor_report_handler(on_report, NULL);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    W("b", W_NOTRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 1, 10, RT_AUTO_NEVER}, specs, 2, 0};
    rt_pid sup = 0;
    struct rt_start_opts o = {.name = "sup_reports"};
    T_EQ(rt_sup_start_link(cfg_init, &cfg, &o, &sup, NULL), 0);
    T_EQ(atomic_load(&nseen), 0); /* a clean start reports nothing */
    rt_pid b = child_pid(sup, "b");
    rt_exit_signal(b, rt_atom_intern("boom"));
    const struct seen_report *r = await_report(0);
    T_ASSERT(r);
    T_ASSERT_F(strcmp(r->event, "child_terminated") == 0, "%s", r->event);
    T_EQ(r->supervisor, sup);
    T_ASSERT(strcmp(r->supervisor_name, "sup_reports") == 0);
    T_ASSERT(strcmp(r->child, "b") == 0);
    T_EQ(r->pid, b);
    T_EQ(r->new_pid, 0);
    T_EQ(r->reason, rt_atom_intern("boom"));
    r = await_report(1);
    T_ASSERT(r);
    T_ASSERT_F(strcmp(r->event, "child_restarted") == 0, "%s", r->event);
    T_ASSERT(strcmp(r->child, "b") == 0);
    T_EQ(r->pid, b);
    rt_pid b2 = child_pid(sup, "b");
    T_ASSERT(b2 && b2 != b);
    T_EQ(r->new_pid, b2);
    T_EQ(r->reason, rt_atom_intern("boom"));
    /* The second restart within the period exceeds intensity 1. */
    rt_ref mref = rt_monitor(sup);
    crash(b2);
    r = await_report(3);
    T_ASSERT(r);
    T_ASSERT(strcmp(seen[2].event, "child_terminated") == 0);
    T_EQ(seen[2].reason, RT_KILLED);
    T_ASSERT_F(strcmp(r->event, "reached_max_restart_intensity") == 0, "%s", r->event);
    T_ASSERT(strcmp(r->child, "b") == 0);
    T_EQ(r->pid, b2);
    T_EQ(r->new_pid, 0);
    T_EQ(r->reason, RT_KILLED);
    rt_msg_free(rt_receive_ref(mref, 5000));
    rt_msg_free(t_recv(RT_MSG_EXIT, sup, 1000));
    rt_set_supervisor_report_handler(NULL, NULL);
    T_EQ(atomic_load(&nseen), 4);
}
START_TEST(supervisor_reports_terminations_restarts_and_intensity_to_the_report_handler)
{
    t_run(b_reports, true);
}
END_TEST

static void b_reports_one_for_all(void)
{
    rt_trap_exit(true);
    seen_reset();
    rt_set_supervisor_report_handler(on_report, NULL);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0),
                                    W("b", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ALL, 5, 10, RT_AUTO_NEVER}, specs, 2, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid a = child_pid(sup, "a"), b = child_pid(sup, "b");
    crash(b);
    T_ASSERT(await_report(2));
    rt_sleep(20);
    T_EQ(atomic_load(&nseen), 3);
    T_ASSERT(strcmp(seen[0].event, "child_terminated") == 0);
    T_EQ(seen[0].pid, b);
    /* Both start again in order: a, stopped by the strategy, has no old
     * pid nor reason; b carries its own. */
    T_ASSERT(strcmp(seen[1].event, "child_restarted") == 0);
    T_ASSERT(strcmp(seen[1].child, "a") == 0);
    T_EQ(seen[1].pid, 0);
    T_ASSERT(seen[1].new_pid && seen[1].new_pid != a);
    T_EQ(seen[1].reason, RT_NORMAL);
    T_ASSERT(strcmp(seen[1].supervisor_name, "(null)") == 0);
    T_ASSERT(strcmp(seen[2].event, "child_restarted") == 0);
    T_ASSERT(strcmp(seen[2].child, "b") == 0);
    T_EQ(seen[2].pid, b);
    T_EQ(seen[2].new_pid, child_pid(sup, "b"));
    T_EQ(seen[2].reason, RT_KILLED);
    sup_stop(sup);
    rt_set_supervisor_report_handler(NULL, NULL);
}
START_TEST(supervisor_reports_each_child_a_one_for_all_restart_starts_again)
{
    t_run(b_reports_one_for_all, true);
}
END_TEST

/* The child_terminated log line, as the supervisor wrote it. */
static pthread_mutex_t line_lock = PTHREAD_MUTEX_INITIALIZER;
static char terminated_line[1024];

static void capture_line(enum rt_log_level level, const char *msg, void *ctx)
{
    (void)ctx;
    if (level != RT_LOG_ERROR || !strstr(msg, ": child_terminated "))
        return;
    pthread_mutex_lock(&line_lock);
    snprintf(terminated_line, sizeof terminated_line, "%s", msg);
    pthread_mutex_unlock(&line_lock);
}

static void b_terminated_line(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {W("worker_a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 10, 10, RT_AUTO_NEVER}, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    rt_pid a = child_pid(sup, "worker_a");
    rt_set_log_handler(capture_line, NULL);
    rt_ref mref = rt_monitor(a);
    rt_exit_signal(a, rt_atom_intern("a_reason_of_its_own"));
    rt_msg_free(rt_receive_ref(mref, 5000));
    T_ASSERT(await_restart(sup, "worker_a", a));
    rt_set_log_handler(NULL, NULL);
    char want[1024], got[1024];
    snprintf(
        want, sizeof want,
        "supervisor %#llx: child_terminated child=worker_a pid=%#llx reason=a_reason_of_its_own",
        (unsigned long long)sup, (unsigned long long)a);
    pthread_mutex_lock(&line_lock);
    snprintf(got, sizeof got, "%s", terminated_line);
    pthread_mutex_unlock(&line_lock);
    T_ASSERT_F(strcmp(got, want) == 0, "\"%.200s\" is not \"%.200s\"", got, want);
    sup_stop(sup);
}
START_TEST(supervisor_logs_a_child_termination_as_one_line_naming_supervisor_child_pid_and_reason)
{
    t_run(b_terminated_line, true);
}
END_TEST

/* Supervisor reports built since the program started (supervisor.c). */
uint64_t rt__test_sup_reports_built(void);

/* A report nobody takes is not built (OTP's logger drops a report below its
 * level before formatting it): restarts without a handler build none, and
 * the same restarts with one build one per event. */
static void b_reports_unbuilt_without_handler(void)
{
    rt_trap_exit(true);
    rt_set_supervisor_report_handler(NULL, NULL);
    struct rt_child_spec specs[] = {W("a", W_TRAP, RT_PERMANENT, 0)};
    struct sup_cfg cfg = {{RT_ONE_FOR_ONE, 100, 10, RT_AUTO_NEVER}, specs, 1, 0};
    rt_pid sup = sup_start(&cfg);
    uint64_t before = rt__test_sup_reports_built();
    for (int i = 0; i < 5; i++) {
        rt_pid a = child_pid(sup, "a");
        crash(a);
        T_ASSERT(await_restart(sup, "a", a));
    }
    T_EQ(rt__test_sup_reports_built() - before, 0);
    seen_reset();
    rt_set_supervisor_report_handler(on_report, NULL);
    before = rt__test_sup_reports_built();
    rt_pid a = child_pid(sup, "a");
    crash(a);
    T_ASSERT(await_report(1));
    T_EQ(rt__test_sup_reports_built() - before, 2); /* terminated, restarted */
    T_ASSERT(strcmp(seen[1].event, "child_restarted") == 0);
    rt_set_supervisor_report_handler(NULL, NULL);
    sup_stop(sup);
}
START_TEST(supervisor_builds_no_report_while_no_handler_takes_them)
{
    t_run(b_reports_unbuilt_without_handler, true);
}
END_TEST

/* ---- a supervisor killed outright, restarted while its named child leaves ---- */

static int named_slow_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                            rt_atom *reason)
{
    struct warg a = {'n', W_SLOW_SHUTDOWN}; /* traps; its terminate takes 200 ms */
    struct rt_start_opts o = {.name = "slow_named"};
    return rt_gen_server_start_link(&w_ops, &a, &o, out, reason);
}

static struct rt_child_spec mid_specs[] = {
    {.id = "n", .start = named_slow_start, .restart = RT_PERMANENT, .shutdown = 1000}};
static struct sup_cfg mid_cfg = {RT_SUP_FLAGS_DEFAULT, mid_specs, 1, 0};

static int mid_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    return rt_sup_start_link(cfg_init, &mid_cfg, NULL, out, reason);
}

static void b_orphan_name(void)
{
    rt_trap_exit(true);
    struct rt_child_spec specs[] = {
        {.id = "m", .start = mid_start, .restart = RT_PERMANENT, .type = RT_SUPERVISOR}};
    /* One restart allowed: a second try would stop the top supervisor. */
    struct sup_cfg cfg = {
        {.strategy = RT_ONE_FOR_ONE, .intensity = 1, .period_s = 10}, specs, 1, 0};
    rt_pid top = sup_start(&cfg);
    rt_pid mid = child_pid(top, "m");
    rt_pid old = rt_whereis("slow_named");
    T_ASSERT(mid && old);
    /* Killed outright: the named worker gets its parent's exit as a
     * message and takes 200 ms to stop, holding its name meanwhile. */
    crash(mid);
    rt_pid mid2 = await_restart(top, "m", mid);
    T_ASSERT_F(mid2, "the top supervisor gave up: %s", order);
    T_ASSERT(rt_is_alive(top));
    rt_pid now = rt_whereis("slow_named");
    T_ASSERT(now && now != old && !rt_is_alive(old));
    T_ASSERT_F(strcmp(order, "+n-n+n") == 0, "%s", order);
    sup_stop(top);
}
START_TEST(supervisor_restarting_a_killed_supervisor_waits_for_its_orphans_names)
{
    t_run(b_orphan_name, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("supervisor");
    TCase *tc = tcase_create("supervisor");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, supervisor_starts_children_in_order_and_stops_them_in_reverse);
    tcase_add_test(tc, supervisor_init_ignore_returns_ignore);
    tcase_add_test(tc, supervisor_failing_child_start_unwinds_started_children_in_reverse);
    tcase_add_test(tc, supervisor_rejects_invalid_flags_and_child_specs);
    tcase_add_test(tc, supervisor_one_for_one_restarts_only_the_dead_child);
    tcase_add_test(tc, supervisor_one_for_all_restarts_all_children_in_order_and_drops_temporary);
    tcase_add_test(tc, supervisor_rest_for_one_restarts_later_siblings_in_order);
    tcase_add_test(tc, supervisor_simple_one_for_one_starts_dynamic_children_with_extra_arguments);
    tcase_add_test(tc, supervisor_simple_one_for_one_ignore_returns_undefined_and_stores_nothing);
    tcase_add_test(tc, supervisor_simple_one_for_one_stops_children_in_parallel);
    tcase_add_test(tc, supervisor_simple_one_for_one_keeps_little_more_than_a_pid_per_child);
    tcase_add_test(tc, supervisor_temporary_child_is_never_restarted_and_its_spec_removed);
    tcase_add_test(tc, supervisor_transient_child_is_restarted_only_after_an_abnormal_exit);
    tcase_add_test(tc,
                   supervisor_exceeding_restart_intensity_terminates_children_and_exits_shutdown);
    tcase_add_test(tc, supervisor_intensity_zero_exits_on_the_first_restart);
    tcase_add_test(tc, supervisor_failed_restart_is_retried_and_counts_toward_intensity);
    tcase_add_test(tc, supervisor_brutal_kill_shutdown_kills_the_child);
    tcase_add_test(tc, supervisor_child_ignoring_shutdown_is_killed_after_its_timeout);
    tcase_add_test(tc, supervisor_child_with_infinity_shutdown_is_waited_for);
    tcase_add_test(tc, supervisor_nested_tree_starts_depth_first_and_stops_in_reverse);
    tcase_add_test(tc, supervisor_shutdown_uses_a_monitor_so_an_unlinked_child_cannot_hang_it);
    tcase_add_test(tc, supervisor_parent_exit_terminates_children_then_exits_with_the_same_reason);
    tcase_add_test(tc, supervisor_ignores_an_exit_from_an_unknown_pid);
    tcase_add_test(tc, supervisor_start_terminate_restart_delete_child_follow_otp_results);
    tcase_add_test(tc, supervisor_describe_walks_the_tree_with_strategy_and_restart_counts);
    tcase_add_test(tc, supervisor_any_significant_child_exiting_shuts_the_supervisor_down);
    tcase_add_test(tc, supervisor_answers_sys_get_status);
    tcase_add_test(tc, supervisor_init_failure_returns_an_error_and_the_supervisor_exits);
    tcase_add_test(tc, supervisor_child_ignoring_at_start_is_kept_undefined_unless_temporary);
    tcase_add_test(tc, supervisor_all_significant_shuts_down_when_the_last_significant_child_exits);
    tcase_add_test(tc, supervisor_child_whose_restart_failed_shows_restarting_until_the_retry);
    tcase_add_test(tc, supervisor_terminate_child_of_a_restarting_child_stops_its_retries);
    tcase_add_test(tc, supervisor_terminate_child_finds_a_restarting_dynamic_child_by_its_old_pid);
    tcase_add_test(tc, supervisor_terminate_child_by_pid_on_a_static_supervisor_answers_not_found);
    tcase_add_test(tc,
                   supervisor_terminate_child_by_pid_of_an_already_dead_dynamic_child_answers_ok);
    tcase_add_test(tc,
                   supervisor_simple_one_for_one_with_auto_shutdown_is_refused_as_bad_combination);
    tcase_add_test(
        tc, supervisor_simple_one_for_one_temporary_children_do_not_keep_their_start_arguments);
    tcase_add_test(tc, supervisor_which_children_lists_static_and_dynamic_children_in_start_order);
    tcase_add_test(tc,
                   supervisor_start_child_passes_already_started_from_the_start_function_through);
    tcase_add_test(tc, supervisor_with_static_children_hibernates_after_start);
    tcase_add_test(tc, supervisor_inits_interleaving_on_one_scheduler_each_get_their_own_children);
    tcase_add_test(tc, supervisor_which_child_looks_up_one_child_by_id);
    tcase_add_test(tc, supervisor_zero_ms_shutdown_is_a_timeout_distinct_from_the_default);
    tcase_add_test(tc, supervisor_calls_with_a_timeout_give_up_while_the_supervisor_is_busy);
    tcase_add_test(tc,
                   supervisor_reports_terminations_restarts_and_intensity_to_the_report_handler);
    tcase_add_test(tc, supervisor_reports_each_child_a_one_for_all_restart_starts_again);
    tcase_add_test(tc, supervisor_builds_no_report_while_no_handler_takes_them);
    tcase_add_test(
        tc, supervisor_logs_a_child_termination_as_one_line_naming_supervisor_child_pid_and_reason);
    tcase_add_test(tc, supervisor_restarting_a_killed_supervisor_waits_for_its_orphans_names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
