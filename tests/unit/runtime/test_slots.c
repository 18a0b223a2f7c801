/*
 * test_slots.c: the process table's free slots (proc.c): per-scheduler
 * caches in front of one global list, and the pid rules they must keep
 * (slot index plus generation; a pid never names two processes).
 */
#include "rt_fault.h"
#include "rt_test.h"

#include <unistd.h>

enum { T_GO = 1, T_STOP };

/* ---- helpers ---- */

static void returns_at_once(void *arg)
{
    (void)arg;
}

static void waits_for_a_message(void *arg)
{
    (void)arg;
    rt_msg_free(rt_receive(RT_INFINITY));
}

/* Process context: spawns returns_at_once with a monitor and waits for its
 * DOWN; returns the child's pid. */
static rt_pid spawn_and_await(void)
{
    rt_pid pid;
    rt_ref ref;
    struct rt_spawn_opts o = {.monitor = true, .monitor_ref = &ref};
    ck_assert_int_eq(rt_spawn(returns_at_once, NULL, &o, &pid), 0);
    struct rt_msg *down = rt_receive_ref(ref, rt_test_scaled(5000));
    ck_assert_ptr_nonnull(down);
    rt_msg_free(down);
    return pid;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- the global list is locked once per batch, not once per spawn ---- */

struct churn {
    int cycles;
    uint64_t locks; /* global-list acquisitions during the cycles */
};

static void churn_body(void *arg)
{
    struct churn *c = arg;
    spawn_and_await(); /* the first spawn here may fill an empty cache */
    uint64_t before = rt__test_slot_lock_count();
    for (int i = 0; i < c->cycles; i++)
        spawn_and_await();
    c->locks = rt__test_slot_lock_count() - before;
}

static void check_churn_locks(unsigned schedulers)
{
    rt_test_start(schedulers);
    struct churn c = {.cycles = rt_test_under_valgrind() ? 400 : 4000};
    ck_assert_uint_eq(rt_test_run(churn_body, &c), RT_NORMAL);
    /* One lock per spawn and one per exit without caches (2 per cycle);
     * with them, at worst one per batch of 32 on each side even when
     * every child is reaped on the other scheduler (1 per 16 cycles). */
    ck_assert_msg(c.locks <= (uint64_t)c.cycles / 8,
                  "%llu global slot-list locks for %d spawns and exits on %u scheduler(s)",
                  (unsigned long long)c.locks, c.cycles, schedulers);
    rt_test_stop();
}

START_TEST(spawns_and_exits_on_one_scheduler_lock_the_global_slot_list_once_per_batch)
{
    check_churn_locks(1);
}
END_TEST

START_TEST(spawns_and_exits_on_two_schedulers_lock_the_global_slot_list_once_per_batch)
{
    check_churn_locks(2);
}
END_TEST

/* ---- a slot freed on scheduler B is reused by B's spawns, lock-free ----
 *
 * A spawner on scheduler A spawns C, which waits; a process Y on scheduler
 * B wakes C, so that C runs, exits and is reaped on B, then Y spawns D.
 * Work stealing may place the processes otherwise; an attempt whose
 * placement came out differently is not counted, and the scenario is
 * tried again. */

struct cross {
    _Atomic int s_sched, y_sched; /* where each first ran */
    _Atomic rt_pid c;             /* set by the spawner */
    _Atomic int c_spawn_sched;    /* where the spawner was when it spawned C */
    _Atomic int c_exit_sched;     /* where C ran last (and was reaped) */
    _Atomic int y_spawn_sched;    /* where Y was when it spawned D */
    _Atomic rt_pid d;
    _Atomic uint64_t d_locks; /* global-list acquisitions around D's spawn */
    _Atomic unsigned b_cached_before;
    _Atomic int done;
};

static void c_body(void *arg)
{
    struct cross *x = arg;
    rt_msg_free(rt_receive(RT_INFINITY));
    atomic_store(&x->c_exit_sched, rt__test_sched_id());
}

static void s_body(void *arg)
{
    struct cross *x = arg;
    atomic_store(&x->s_sched, rt__test_sched_id());
    rt_msg_free(rt_receive(RT_INFINITY)); /* T_GO from the test */
    rt_pid c;
    atomic_store(&x->c_spawn_sched, rt__test_sched_id());
    ck_assert_int_eq(rt_spawn(c_body, x, NULL, &c), 0);
    atomic_store(&x->c, c);
}

static void y_body(void *arg)
{
    struct cross *x = arg;
    atomic_store(&x->y_sched, rt__test_sched_id());
    rt_msg_free(rt_receive(RT_INFINITY)); /* T_GO from the test */
    rt_pid c = atomic_load(&x->c);
    rt_ref ref = rt_monitor(c);
    /* Woken by this process, C is queued on this scheduler. */
    ck_assert_int_eq(rt_send(c, rt_msg_new(T_GO, 0)), 0);
    rt_msg_free(rt_receive_ref(ref, rt_test_scaled(5000)));
    int here = rt__test_sched_id();
    atomic_store(&x->y_spawn_sched, here);
    atomic_store(&x->b_cached_before, rt__test_slots_cached((unsigned)here));
    uint64_t before = rt__test_slot_lock_count();
    rt_pid d;
    ck_assert_int_eq(rt_spawn(returns_at_once, NULL, NULL, &d), 0);
    atomic_store(&x->d_locks, rt__test_slot_lock_count() - before);
    atomic_store(&x->d, d);
    atomic_store(&x->done, 1);
}

static void await_flag(_Atomic int *f, int not_value)
{
    for (int i = 0; i < 20000 && atomic_load(f) == not_value; i++)
        usleep(100);
    ck_assert_int_ne(atomic_load(f), not_value);
}

START_TEST(a_slot_freed_on_another_scheduler_is_reused_by_its_spawns_without_the_global_lock)
{
    rt_test_start(2);
    bool seen = false;
    for (int attempt = 0; attempt < 200 && !seen; attempt++) {
        static struct cross x;
        memset(&x, 0, sizeof x);
        atomic_store(&x.s_sched, -1);
        atomic_store(&x.y_sched, -1);
        /* From this thread, new processes are queued round-robin: the two
         * usually start on different schedulers. */
        rt_pid s, y;
        ck_assert_int_eq(rt_spawn(s_body, &x, NULL, &s), 0);
        ck_assert_int_eq(rt_spawn(y_body, &x, NULL, &y), 0);
        await_flag(&x.s_sched, -1);
        await_flag(&x.y_sched, -1);
        ck_assert_int_eq(rt_send(s, rt_msg_new(T_GO, 0)), 0);
        ck_assert_int_eq(rt_join(s, rt_test_scaled(5000), NULL), 0);
        ck_assert_int_eq(rt_send(y, rt_msg_new(T_GO, 0)), 0);
        ck_assert_int_eq(rt_join(y, rt_test_scaled(5000), NULL), 0);
        ck_assert_int_eq(atomic_load(&x.done), 1);
        ck_assert_int_eq(rt_wait_idle(rt_test_scaled(5000)), 0);
        int a = atomic_load(&x.c_spawn_sched), b = atomic_load(&x.c_exit_sched);
        if (a == b || atomic_load(&x.y_spawn_sched) != b)
            continue; /* C was not spawned on one scheduler and reaped on the other */
        seen = true;
        rt_pid c = atomic_load(&x.c), d = atomic_load(&x.d);
        uint64_t locks = atomic_load(&x.d_locks);
        unsigned cached = atomic_load(&x.b_cached_before);
        /* B's spawn took a slot without locking the global list: from B's
         * cache, where C's slot went when B reaped it. */
        ck_assert_uint_eq(locks, 0);
        ck_assert_uint_ge(cached, 1);
        ck_assert_uint_eq((uint32_t)d, (uint32_t)c);
        ck_assert_uint_ne(d, c);
    }
    ck_assert_msg(seen, "C was never spawned on one scheduler and reaped on the other");
    rt_test_stop();
}
END_TEST

/* ---- many spawns on two schedulers: no pid names two processes ---- */

#define SPAWNERS 2

struct storm {
    int per_spawner;
    int keep_every; /* every keep_every-th child stays alive until told */
    rt_pid *pids[SPAWNERS];
    _Atomic int ready;
};

struct storm_arg {
    struct storm *st;
    int index;
};

static void storm_spawner(void *arg)
{
    struct storm_arg *sa = arg;
    struct storm *st = sa->st;
    rt_pid *out = st->pids[sa->index];
    for (int i = 0; i < st->per_spawner; i++) {
        rt_entry fn = i % st->keep_every == 0 ? waits_for_a_message : returns_at_once;
        int rc;
        while ((rc = rt_spawn(fn, NULL, NULL, &out[i])) == -EAGAIN)
            rt_yield();
        ck_assert_int_eq(rc, 0);
    }
    atomic_fetch_add(&st->ready, 1);
}

START_TEST(many_spawns_across_two_schedulers_never_give_two_live_processes_one_pid)
{
    rt_test_start(2);
    static struct storm st;
    memset(&st, 0, sizeof st);
    /* Slow (sanitizer, valgrind) runs do a tenth of the work. */
    st.per_spawner = rt_test_under_valgrind() || rt_test_scaled(1) > 1 ? 2000 : 20000;
    st.keep_every = 16;
    struct storm_arg args[SPAWNERS];
    for (int k = 0; k < SPAWNERS; k++) {
        st.pids[k] = calloc((size_t)st.per_spawner, sizeof(rt_pid));
        ck_assert_ptr_nonnull(st.pids[k]);
        args[k] = (struct storm_arg){&st, k};
        ck_assert_int_eq(rt_spawn(storm_spawner, &args[k], NULL, NULL), 0);
    }
    while (atomic_load(&st.ready) < SPAWNERS)
        usleep(1000);

    size_t total = (size_t)SPAWNERS * (size_t)st.per_spawner;
    uint64_t *all = calloc(total, sizeof(uint64_t));
    uint32_t *kept_slots = calloc(total, sizeof(uint32_t));
    ck_assert_ptr_nonnull(all);
    ck_assert_ptr_nonnull(kept_slots);
    size_t nall = 0, nkept = 0;
    for (int k = 0; k < SPAWNERS; k++) {
        for (int i = 0; i < st.per_spawner; i++) {
            rt_pid pid = st.pids[k][i];
            all[nall++] = pid;
            if (i % st.keep_every == 0) {
                /* Alive all along: its pid still names it. */
                ck_assert_msg(rt_is_alive(pid), "kept process %llx is not alive",
                              (unsigned long long)pid);
                kept_slots[nkept++] = (uint32_t)pid;
            }
        }
    }
    /* No pid was handed out twice over the whole run (a slot's generation
     * moves on at each reuse)... */
    qsort(all, nall, sizeof *all, cmp_u64);
    for (size_t i = 1; i < nall; i++)
        ck_assert_msg(all[i] != all[i - 1], "pid %llx handed out twice",
                      (unsigned long long)all[i]);
    /* ...and no slot holds two live processes. */
    qsort(kept_slots, nkept, sizeof *kept_slots, cmp_u32);
    for (size_t i = 1; i < nkept; i++)
        ck_assert_msg(kept_slots[i] != kept_slots[i - 1], "slot %u holds two live processes",
                      kept_slots[i]);
    /* Once the others have ended (only the kept ones are left), a pid whose
     * process is gone names nothing, its slot reused or not. */
    struct rt_system_info si;
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(rt_system_info(&si), 0);
        if (si.process_count == nkept)
            break;
        usleep(1000);
    }
    ck_assert_uint_eq(si.process_count, nkept);
    for (int k = 0; k < SPAWNERS; k++)
        for (int i = 1; i < st.per_spawner; i += st.keep_every)
            ck_assert(!rt_is_alive(st.pids[k][i]));
    ck_assert_int_eq(rt_send(st.pids[0][1], rt_msg_new(T_GO, 0)), -ESRCH);
    for (int k = 0; k < SPAWNERS; k++)
        for (int i = 0; i < st.per_spawner; i += st.keep_every)
            ck_assert_int_eq(rt_send(st.pids[k][i], rt_msg_new(T_STOP, 0)), 0);
    ck_assert_int_eq(rt_wait_idle(rt_test_scaled(10000)), 0);
    for (int k = 0; k < SPAWNERS; k++)
        free(st.pids[k]);
    free(all);
    free(kept_slots);
    rt_test_stop();
}
END_TEST

/* ---- the process limit does not shrink by the slots caches hold ---- */

#define LIMIT 64

static void limit_churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        spawn_and_await();
}

static void fill_to_the_limit(void *arg)
{
    int *n = arg;
    rt_pid kids[LIMIT];
    int rc = 0;
    while (*n < LIMIT && (rc = rt_spawn(waits_for_a_message, NULL, NULL, &kids[*n])) == 0)
        (*n)++;
    ck_assert_int_eq(rc, -EAGAIN);
    for (int i = 0; i < *n; i++)
        rt_send(kids[i], rt_msg_new(T_STOP, 0));
}

START_TEST(the_process_limit_is_reached_while_other_schedulers_cache_free_slots)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    cfg.schedulers = 2;
    cfg.max_processes = LIMIT;
    ck_assert_int_eq(rt_start(&cfg), 0);
    /* Two churners, queued round-robin from here: both schedulers cache
     * free slots afterwards. */
    rt_pid a, b;
    ck_assert_int_eq(rt_spawn(limit_churn, NULL, NULL, &a), 0);
    ck_assert_int_eq(rt_spawn(limit_churn, NULL, NULL, &b), 0);
    ck_assert_int_eq(rt_join(a, rt_test_scaled(10000), NULL), 0);
    ck_assert_int_eq(rt_join(b, rt_test_scaled(10000), NULL), 0);
    ck_assert_int_eq(rt_wait_idle(rt_test_scaled(5000)), 0);
    ck_assert_uint_gt(rt__test_slots_cached(0) + rt__test_slots_cached(1), 0);
    /* rt_spawn refuses once max_processes - 1 live processes exist; the
     * spawner is one of them. */
    int n = 0;
    ck_assert_uint_eq(rt_test_run(fill_to_the_limit, &n), RT_NORMAL);
    ck_assert_int_eq(n, LIMIT - 2);
    rt_test_stop();
}
END_TEST

/* ---- rt_stop and a new start: no cached slot outlives its table ---- */

struct unique_arg {
    int n;
    uint32_t slots[600];
};

static void spawn_kept(void *arg)
{
    struct unique_arg *u = arg;
    rt_pid kids[600];
    for (int i = 0; i < u->n; i++) {
        ck_assert_int_eq(rt_spawn(waits_for_a_message, NULL, NULL, &kids[i]), 0);
        u->slots[i] = (uint32_t)kids[i];
    }
    for (int i = 0; i < u->n; i++)
        rt_send(kids[i], rt_msg_new(T_STOP, 0));
}

START_TEST(rt_stop_gives_back_cached_slots_and_a_new_start_reuses_none_twice)
{
    rt_test_start(2);
    rt_pid a, b;
    ck_assert_int_eq(rt_spawn(limit_churn, NULL, NULL, &a), 0);
    ck_assert_int_eq(rt_spawn(limit_churn, NULL, NULL, &b), 0);
    ck_assert_int_eq(rt_join(a, rt_test_scaled(10000), NULL), 0);
    ck_assert_int_eq(rt_join(b, rt_test_scaled(10000), NULL), 0);
    ck_assert_int_eq(rt_wait_idle(rt_test_scaled(5000)), 0);
    ck_assert_uint_gt(rt__test_slots_cached(0) + rt__test_slots_cached(1), 0);
    rt_test_stop();
    ck_assert_uint_eq(rt__test_slots_cached(0), 0);
    ck_assert_uint_eq(rt__test_slots_cached(1), 0);

    /* A new table: every slot a spawn gets is one of its own, once. */
    rt_test_start(2);
    static struct unique_arg u;
    u.n = 600;
    ck_assert_uint_eq(rt_test_run(spawn_kept, &u), RT_NORMAL);
    qsort(u.slots, (size_t)u.n, sizeof u.slots[0], cmp_u32);
    for (int i = 1; i < u.n; i++)
        ck_assert_msg(u.slots[i] != u.slots[i - 1], "slot %u handed out twice", u.slots[i]);
    rt_test_stop();
}
END_TEST

/* ---- a spawn that fails half-way leaves no trace of its pid ---- */

static void failed_monitored_spawn_body(void *arg)
{
    (void)arg;
    /* A child that ran and ended: its slot is on top of this scheduler's
     * cache, where the next spawn here takes it. */
    rt_pid a = spawn_and_await();
    /* The spawner's monitor is recorded, the child's side of it is not. */
    rt__test_mon_fail_nth(2);
    rt_ref ref = 0;
    rt_pid failed = 0;
    struct rt_spawn_opts o = {.monitor = true, .monitor_ref = &ref};
    ck_assert_int_eq(rt_spawn(waits_for_a_message, NULL, &o, &failed), -ENOMEM);
    ck_assert_uint_eq(ref, 0);
    ck_assert_uint_eq(failed, 0);
    /* The spawner monitors nothing... */
    struct rt_proc_info pi;
    ck_assert_int_eq(rt_proc_info(rt_self(), &pi), 0);
    ck_assert_uint_eq(pi.monitors, 0);
    /* ...and the slot the failed spawn had (a's, one generation on) comes
     * back a generation further: the pid the spawner's tables held for a
     * moment names no later process. */
    rt_pid b = spawn_and_await();
    ck_assert_uint_eq((uint32_t)b, (uint32_t)a);
    ck_assert_uint_ne(b >> 32, (a >> 32) + 1);
    ck_assert_uint_ne(b, a);
}

START_TEST(a_monitored_spawn_failing_half_way_leaves_no_monitor_and_retires_its_pid)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(failed_monitored_spawn_body, NULL), RT_NORMAL);
    rt__test_mon_fail_nth(0);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_slots", spawns_and_exits_on_one_scheduler_lock_the_global_slot_list_once_per_batch,
             spawns_and_exits_on_two_schedulers_lock_the_global_slot_list_once_per_batch,
             a_slot_freed_on_another_scheduler_is_reused_by_its_spawns_without_the_global_lock,
             many_spawns_across_two_schedulers_never_give_two_live_processes_one_pid,
             the_process_limit_is_reached_while_other_schedulers_cache_free_slots,
             rt_stop_gives_back_cached_slots_and_a_new_start_reuses_none_twice,
             a_monitored_spawn_failing_half_way_leaves_no_monitor_and_retires_its_pid)
