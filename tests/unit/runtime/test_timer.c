/*
 * test_timer.c: the timing wheels (timer.c). A wheel is driven here on a
 * clock of the test's own, with processes that exist only as blocks (a
 * fired wake-up sets wake_pending; rt__wake leaves a block that is not
 * waiting alone), so that minutes of timers run in no time and every
 * firing is checked to the ms. Then on a running runtime: timers waiting
 * far ahead cost a scheduler nothing while it goes idle again and again.
 */
#include "rt_int.h"
#include "rt_test.h"

#include <stdint.h>

enum { T_READY = 1, T_STOP };

/* ---- a wheel on the test's clock ---- */

struct fake {
    struct rt_proc *p;
    uint64_t expires; /* 0: not armed */
};

static struct rt_proc *fake_proc(void)
{
    struct rt_proc *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    atomic_store(&p->state, RT__RUNNING); /* rt__wake leaves it alone */
    return p;
}

static void arm(struct rt__wheel *w, struct fake *f, uint64_t expires)
{
    rt__wait_timer_cancel(f->p); /* forgets the wheel of a wake-up that fired */
    atomic_store(&f->p->wake_pending, 0);
    rt__wheel_arm_wait(w, f->p, expires);
    ck_assert_ptr_nonnull(f->p->wait_timer);
    f->expires = expires;
}

static bool fired(const struct fake *f)
{
    return atomic_load(&f->p->wake_pending) != 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A distance from now: within the block, a few blocks, many, or beyond the
 * far level's reach (several rounds), and block edges exactly. */
static uint64_t distance(void)
{
    switch (rng() % 6) {
    case 0:
        return 1 + rng() % 50;
    case 1:
        return 1 + rng() % 3000;
    case 2:
        return 1 + rng() % 200000;
    case 3:
        return 1 + rng() % 3000000; /* up to about 3 far rounds */
    case 4:
        return 1024 * (1 + rng() % 2100) + (rng() % 3) - 1;
    default:
        return 1024u * 1024u + (rng() % 5) - 2; /* one far round, give or take */
    }
}

START_TEST(every_timer_fires_at_the_first_advance_that_reaches_its_ms_and_no_sooner)
{
    enum { N = 2000, STEPS = 4000 };
    rng_state = 0x9e3779b97f4a7c15ull;
    uint64_t now = 7 * 1024 * 1024 + 517; /* not at a block's start */
    struct rt__wheel *w = rt__wheel_new(now);
    ck_assert_ptr_nonnull(w);
    struct fake *f = calloc(N, sizeof *f);
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < N; i++) {
        f[i].p = fake_proc();
        arm(w, &f[i], now + distance());
    }
    int next = rt__wheel_advance(w, now);
    uint64_t fires = 0;
    for (int step = 0; step < STEPS; step++) {
        /* As a scheduler does (to the ms it was told), or later, by a
         * little or by a long way (a scheduler held up, or asleep). */
        uint64_t r = rng() % 100, by;
        if (r < 40 && next > 0)
            by = (uint64_t)next;
        else if (r < 70)
            by = 1 + rng() % 8;
        else if (r < 95)
            by = 1 + rng() % 3000;
        else
            by = 1 + rng() % 1500000;
        now += by;
        next = rt__wheel_advance(w, now);
        uint64_t first = UINT64_MAX;
        for (size_t i = 0; i < N; i++) {
            if (!f[i].expires)
                continue;
            /* Checked with `if` first: every ck_assert is a write to the
             * test runner's pipe, and these loops make millions. */
            if (f[i].expires <= now) {
                if (!fired(&f[i]) || f[i].p->wait_timer)
                    ck_abort_msg("timer due at %llu not fired at %llu",
                                 (unsigned long long)f[i].expires, (unsigned long long)now);
                f[i].expires = 0;
                fires++;
            } else {
                if (fired(&f[i]))
                    ck_abort_msg("timer due at %llu fired at %llu",
                                 (unsigned long long)f[i].expires, (unsigned long long)now);
                if (f[i].expires < first)
                    first = f[i].expires;
            }
        }
        /* The wait it returns never passes a due timer, and within the
         * block it is the timer's ms exactly. */
        if (first == UINT64_MAX) {
            ck_assert_int_eq(next, -1);
        } else {
            ck_assert_int_ge(next, 1);
            ck_assert_int_le(next, 1000);
            ck_assert_uint_le(now + (uint64_t)next, first);
            if (first >> 10 == now >> 10 && first - now <= 1000)
                ck_assert_uint_eq(now + (uint64_t)next, first);
        }
        /* Now and then a timer is cancelled, or one that fired is armed
         * again, from wherever the clock is. */
        size_t i = (size_t)(rng() % N);
        if (f[i].expires && rng() % 4 == 0) {
            rt__wait_timer_cancel(f[i].p);
            ck_assert_ptr_null(f[i].p->wait_timer);
            f[i].expires = 0;
        } else if (!f[i].expires) {
            arm(w, &f[i], now + distance());
            next = rt__wheel_advance(w, now);
        }
    }
    ck_assert_uint_gt(fires, N / 2);
    rt__wheel_free(w); /* frees the timers still armed */
    for (size_t i = 0; i < N; i++)
        free(f[i].p);
    free(f);
}
END_TEST

START_TEST(timers_far_ahead_are_not_looked_at_until_their_block_comes)
{
    enum { IDLE = 20000, STEPS = 5000 };
    uint64_t now = 3 * 1024 * 1024 + 100;
    struct rt__wheel *w = rt__wheel_new(now);
    struct fake *idle = calloc(IDLE, sizeof *idle);
    ck_assert_ptr_nonnull(idle);
    /* Idle connections: a 10-minute timeout each, armed over 1.5 s. */
    for (size_t i = 0; i < IDLE; i++) {
        idle[i].p = fake_proc();
        arm(w, &idle[i], now + 600000 + i % 1500);
    }
    /* A busy one: a timer armed and fired every ms, the scheduler asking
     * for the next due ms each time, across several blocks. */
    struct fake busy = {.p = fake_proc()};
    for (int step = 0; step < STEPS; step++) {
        arm(w, &busy, now + 1);
        ck_assert_int_eq(rt__wheel_advance(w, now), 1);
        now++;
        ck_assert_int_eq(rt__wheel_advance(w, now), 1000);
        ck_assert(fired(&busy));
    }
    /* Only the busy timers were looked at, once each. */
    ck_assert_uint_eq(rt__wheel_visits(w), STEPS);
    /* Then the idle ones fire on time, each looked at twice at most: when
     * its block comes near, and when it fires. */
    now = idle[0].expires - 2000;
    ck_assert_int_eq(rt__wheel_advance(w, now), 1000);
    uint64_t end = idle[0].expires + 1500;
    while (now < end) {
        now += 1 + rng() % 7;
        rt__wheel_advance(w, now);
        for (size_t i = 0; i < IDLE; i++)
            if (fired(&idle[i]) != (idle[i].expires <= now))
                ck_abort_msg("timer due at %llu %s at %llu", (unsigned long long)idle[i].expires,
                             fired(&idle[i]) ? "fired" : "not fired", (unsigned long long)now);
    }
    ck_assert_int_eq(rt__wheel_advance(w, now), -1);
    ck_assert_uint_le(rt__wheel_visits(w), STEPS + 2 * IDLE);
    rt__wheel_free(w);
    for (size_t i = 0; i < IDLE; i++)
        free(idle[i].p);
    free(idle);
    free(busy.p);
}
END_TEST

START_TEST(a_timer_beyond_the_far_level_is_looked_at_once_a_round)
{
    uint64_t now = 1024 * 1024 * 5;
    struct rt__wheel *w = rt__wheel_new(now);
    struct fake f = {.p = fake_proc()};
    uint64_t rounds = 3;
    arm(w, &f, now + rounds * 1024 * 1024 + 5);
    /* As a scheduler with nothing else to do: to each ms it is told. */
    for (int next = rt__wheel_advance(w, now); next > 0; next = rt__wheel_advance(w, now)) {
        ck_assert(!fired(&f));
        now += (uint64_t)next;
    }
    ck_assert(fired(&f));
    ck_assert_uint_eq(now, f.expires);
    ck_assert_uint_le(rt__wheel_visits(w), rounds + 2);
    rt__wheel_free(w);
    free(f.p);
}
END_TEST

/* ---- on a running runtime ---- */

/* Resumed by the message that ends it, never by its timeout. */
static void idler_resume(void *arg)
{
    (void)arg;
    struct rt_msg *m = rt_receive(0);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->type, T_STOP);
    rt_msg_free(m);
}

/* An idle connection's shape: hibernates with no stack and a long timeout. */
static void idler(void *arg)
{
    rt_pid parent = *(rt_pid *)arg;
    free(arg);
    rt_send(parent, rt_msg_new(T_READY, 0));
    rt_hibernate_poll(-1, 0, 600000, idler_resume, NULL);
}

static void idle_then_sleep_body(void *arg)
{
    (void)arg;
    enum { SLEEPS = 300 };
    /* Fewer on a slow (sanitizer, valgrind) run: still far more than the
     * bound below, which a walk over them all would pass on its first
     * sleep. */
    const size_t IDLE = rt_test_scaled(1) > 1 ? 1000 : 5000;
    rt_pid *pids = calloc(IDLE, sizeof *pids);
    ck_assert_ptr_nonnull(pids);
    for (size_t i = 0; i < IDLE; i++) {
        rt_pid *me = malloc(sizeof *me);
        *me = rt_self();
        ck_assert_int_eq(rt_spawn(idler, me, NULL, &pids[i]), 0);
    }
    for (size_t i = 0; i < IDLE; i++)
        rt_msg_free(recv_type(T_READY, rt_test_scaled(10000)));
    rt_sleep(20); /* the last of them hibernated */
    struct rt__wheel *w = rt__rt.sched[0].wheel;
    uint64_t before = rt__wheel_visits(w);
    /* Each sleep leaves the scheduler idle: it advances its wheel and asks
     * for the next due ms, with the idlers' timers on it. */
    for (int i = 0; i < SLEEPS; i++)
        rt_sleep(1);
    uint64_t visits = rt__wheel_visits(w) - before;
    ck_assert_msg(visits < 4 * SLEEPS, "%llu timers looked at for %d sleeps",
                  (unsigned long long)visits, SLEEPS);
    for (size_t i = 0; i < IDLE; i++)
        rt_send(pids[i], rt_msg_new(T_STOP, 0));
    free(pids);
}

START_TEST(a_scheduler_going_idle_does_not_look_at_timers_waiting_far_ahead)
{
    rt_test_start(1);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(idle_then_sleep_body, NULL, NULL, &pid), 0);
    rt_atom reason = RT_UNDEFINED;
    ck_assert_int_eq(rt_join(pid, rt_test_scaled(20000), &reason), 0);
    ck_assert_uint_eq(reason, RT_NORMAL);
    rt_test_stop();
}
END_TEST

/* A delay meant as "never" does not wrap to a time already passed: the
 * message does not come, the timer can be cancelled, and the wheel goes on
 * serving the timers around it. */
enum { T_NEVER = 0x7101, T_SOON };

static void never_body(void *arg)
{
    (void)arg;
    rt_ref never, soon;
    ck_assert_int_eq(rt_send_after(rt_self(), UINT64_MAX, rt_msg_new(T_NEVER, 0), &never), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rt_send_after(rt_self(), 400, rt_msg_new(T_SOON, 0), &soon), 0);
        struct rt_msg *m = rt_receive(rt_test_scaled(5000));
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_eq(m->type, T_SOON); /* never the "never" one */
        rt_msg_free(m);
    }
    ck_assert_int_eq(rt_cancel_timer(never), 0);
    ck_assert_int_eq(rt_send_after(rt_self(), 20, rt_msg_new(T_SOON, 0), &soon), 0);
    struct rt_msg *m = rt_receive(rt_test_scaled(5000));
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->type, T_SOON);
    rt_msg_free(m);
    ck_assert_ptr_null(rt_receive(200));
}

START_TEST(a_timer_for_never_neither_fires_nor_breaks_the_wheel)
{
    rt_test_start(1);
    ck_assert_uint_eq(rt_test_run(never_body, NULL), RT_NORMAL);
    rt_test_stop();
}
END_TEST

RT_TEST_MAIN("rt_timer", every_timer_fires_at_the_first_advance_that_reaches_its_ms_and_no_sooner,
             timers_far_ahead_are_not_looked_at_until_their_block_comes,
             a_timer_beyond_the_far_level_is_looked_at_once_a_round,
             a_scheduler_going_idle_does_not_look_at_timers_waiting_far_ahead,
             a_timer_for_never_neither_fires_nor_breaks_the_wheel)
