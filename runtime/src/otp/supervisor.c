/*
 * supervisor.c: OTP's supervisor as a gen_server.
 *
 * The supervisor process owns struct sup (rt_alloc'd): its flags, its
 * children in start order (for simple_one_for_one: the dynamic children,
 * with the single template spec apart), and the timestamps of recent
 * restarts for the intensity check. It traps exits; a child's EXIT drives
 * restarts; the parent's EXIT (handled by the gen_server loop) ends in
 * terminate, which stops every child in reverse start order (in parallel
 * for simple_one_for_one).
 *
 * Child specs are copied while init runs (rt_sup_init_child), all of them
 * before the first child starts: a start function parks the supervisor,
 * and nothing the init pointed at may be read after that. A child owns its
 * copy of the spec's arg (own_arg). A temporary child is never restarted, so
 * its arg copy and extra bytes are dropped once it has started.
 *
 * simple_one_for_one's dynamic children share the template spec and keep
 * little more than their pid (OTP keeps them as a set of pids): struct dyn,
 * 16 bytes, whose `more` holds what only a restartable child needs (its
 * extra bytes, restart count, the pid it had while its restart is retried).
 * A temporary child, the usual dynamic one, has none. They go through the
 * code shared with static children as a view (dyn_view): the template with
 * the child's own fields filled in.
 *
 * A child whose restart failed keeps status restarting (and, for
 * simple_one_for_one, the pid it had, by which terminate_child finds it)
 * until a retry, sent to self, succeeds; terminate_child ends the retries.
 *
 * Stopping a child follows OTP's protocol: monitor, unlink, then (unless its
 * EXIT is already queued, meaning it died by itself) exit(shutdown) and wait
 * for the DOWN up to the child's shutdown time, then exit(kill). The
 * monitor, not the link, is waited on, so a child that unlinked cannot hang
 * the supervisor.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "otp_int.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"

enum {
    SUP_START_CHILD = 1,
    SUP_START_EXTRA,
    SUP_TERMINATE_ID,
    SUP_TERMINATE_PID,
    SUP_RESTART,
    SUP_DELETE,
    SUP_WHICH,
    SUP_COUNT,
    SUP_GET_SPEC,
    SUP_DESCRIBE,
    SUP_WHICH_CHILD,
};

/* The narrow fields last, together: a supervisor of many children (a
 * listener's connections) holds one of these per child. */
struct child {
    char id[64];
    rt_pid pid;
    rt_pid last_pid; /* the pid it had, while status is restarting */
    uint64_t key;    /* unique within the supervisor, for retries */
    rt_child_start_fn start;
    void *arg;
    size_t arg_size;
    void *extra;
    size_t extra_size;
    int64_t shutdown;
    uint64_t restarts;
    enum rt_restart restart;
    enum rt_child_type type;
    enum rt_child_status status;
    bool own_arg; /* arg is this child's rt_alloc'd copy */
    bool significant;
};

/* What a dynamic child needs beyond its pid when it can be restarted
 * (permanent, transient) or, until it has started, its extra bytes. */
struct dyn_more {
    rt_pid last_pid; /* the pid it had, while restarting */
    uint64_t key;    /* unique within the supervisor, for retries */
    uint64_t restarts;
    size_t extra_size;
    bool restarting;
    _Alignas(16) unsigned char extra[];
};

/* A simple_one_for_one child, in start order. */
struct dyn {
    rt_pid pid;            /* 0 while its restart is being retried */
    struct dyn_more *more; /* NULL for a started temporary child */
};

struct sup {
    struct rt_sup_flags flags;
    struct child *ch;  /* static children; unused for simple_one_for_one */
    struct dyn *dy;    /* simple_one_for_one's children */
    size_t n, cap;     /* of whichever of the two is in use */
    struct child tmpl; /* simple_one_for_one */
    uint64_t *times;   /* restart timestamps (ms) within the period */
    size_t ntimes;
    uint64_t total_restarts;
    uint64_t next_key;
};

struct start_child_req {
    struct rt_child_spec spec;
    char id[64];
    _Alignas(16) unsigned char arg[];
};

struct sup_rep {
    int rc;
    rt_pid pid;
    rt_atom reason;
    size_t count;
    struct rt_sup_description desc;
    struct rt_sup_counts counts;
    struct rt_child_info info;
    _Alignas(16) unsigned char data[];
};

struct retry {
    uint64_t key;
};

static const char *const strategy_names[] = {"one_for_one", "one_for_all", "rest_for_one",
                                             "simple_one_for_one"};
static const char *const restart_names[] = {"permanent", "transient", "temporary"};
static const char *const type_names[] = {"worker", "supervisor"};
static const char *const status_names[] = {"running", "undefined", "restarting"};

const char *rt_sup_strategy_name(enum rt_sup_strategy s)
{
    return (unsigned)s < 4 ? strategy_names[s] : "?";
}

const char *rt_restart_name(enum rt_restart r)
{
    return (unsigned)r < 3 ? restart_names[r] : "?";
}

const char *rt_child_type_name(enum rt_child_type t)
{
    return (unsigned)t < 2 ? type_names[t] : "?";
}

const char *rt_child_status_name(enum rt_child_status s)
{
    return (unsigned)s < 3 ? status_names[s] : "?";
}

/* ---- validation ---------------------------------------------------------------- */

static int check_flags(const struct rt_sup_flags *f, rt_atom *reason)
{
    const char *bad = NULL;
    if ((unsigned)f->strategy > RT_SIMPLE_ONE_FOR_ONE)
        bad = "invalid_strategy";
    else if (f->intensity < 0)
        bad = "invalid_intensity";
    else if (f->period_s <= 0)
        bad = "invalid_period";
    else if ((unsigned)f->auto_shutdown > RT_AUTO_ALL_SIGNIFICANT)
        bad = "invalid_auto_shutdown";
    /* Dynamic children come and go at any time, so "all significant
     * children have gone" has no meaning there, and "any" would end the
     * supervisor on the first one. */
    else if (f->strategy == RT_SIMPLE_ONE_FOR_ONE && f->auto_shutdown != RT_AUTO_NEVER)
        bad = "bad_combination";
    if (!bad)
        return 0;
    if (reason)
        *reason = rt_atom_intern(bad);
    return -EINVAL;
}

static bool shutdown_valid(int64_t t)
{
    return t >= 0 || t == RT_SHUTDOWN_INFINITY || t == RT_SHUTDOWN_BRUTAL_KILL ||
           t == RT_SHUTDOWN_ZERO;
}

/* What a spec needs on its own, before any flags are known. */
static int check_shape(const struct rt_child_spec *c)
{
    if (!c->id || !c->id[0] || strlen(c->id) >= 64 || !c->start)
        return -EINVAL;
    if ((unsigned)c->restart > RT_TEMPORARY || (unsigned)c->type > RT_SUPERVISOR)
        return -EINVAL;
    if (!shutdown_valid(c->shutdown))
        return -EINVAL;
    return 0;
}

static bool significant_ok(const struct rt_sup_flags *f, enum rt_restart restart, bool significant)
{
    return !significant || (restart != RT_PERMANENT && f->auto_shutdown != RT_AUTO_NEVER);
}

static int check_spec(const struct rt_sup_flags *f, const struct rt_child_spec *c)
{
    if (check_shape(c) < 0 || !significant_ok(f, c->restart, c->significant))
        return -EINVAL;
    return 0;
}

int rt_sup_check_childspecs(const struct rt_sup_flags *flags, const struct rt_child_spec *specs,
                            size_t n, rt_atom *reason)
{
    if (check_flags(flags, reason) < 0)
        return -EINVAL;
    if (flags->strategy == RT_SIMPLE_ONE_FOR_ONE && n != 1) {
        if (reason)
            *reason = rt_atom_intern("bad_start_spec");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (check_spec(flags, &specs[i]) < 0) {
            if (reason)
                *reason = rt_atom_intern("invalid_child_spec");
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(specs[i].id, specs[j].id) == 0) {
                if (reason)
                    *reason = rt_atom_intern("duplicate_child_name");
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* ---- children ------------------------------------------------------------------- */

static int64_t effective_shutdown(const struct rt_child_spec *c)
{
    if (c->shutdown != RT_SHUTDOWN_DEFAULT)
        return c->shutdown;
    return c->type == RT_SUPERVISOR ? RT_SHUTDOWN_INFINITY : 5000;
}

/* How long to wait for a child told to shut down: ms (0 included) or
 * RT_INFINITY. Not used for brutal_kill. */
static int64_t shutdown_wait(int64_t shutdown)
{
    return shutdown == RT_SHUTDOWN_ZERO ? 0 : shutdown;
}

static int fill_child(struct child *c, const struct rt_child_spec *spec)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", spec->id ? spec->id : "");
    c->start = spec->start;
    c->arg = spec->arg;
    c->arg_size = spec->arg_size;
    if (spec->arg_size) {
        c->arg = rt_alloc(spec->arg_size);
        if (!c->arg)
            return -ENOMEM;
        memcpy(c->arg, spec->arg, spec->arg_size);
        c->own_arg = true;
    }
    c->restart = spec->restart;
    c->shutdown = effective_shutdown(spec);
    c->type = spec->type;
    c->significant = spec->significant;
    c->status = RT_CHILD_UNDEFINED;
    return 0;
}

/* Drops what the child was started with: its arg copy and extra bytes. */
static void drop_args(struct child *c)
{
    if (c->own_arg)
        rt_free(c->arg);
    rt_free(c->extra);
    c->arg = c->extra = NULL;
    c->arg_size = c->extra_size = 0;
    c->own_arg = false;
}

static void free_child(struct child *c)
{
    drop_args(c);
}

static int push_child(struct sup *s, const struct child *c)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct child *n = rt_realloc(s->ch, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->ch = n;
        s->cap = cap;
    }
    s->ch[s->n] = *c;
    s->ch[s->n].key = ++s->next_key;
    s->n++;
    return 0;
}

static void remove_child(struct sup *s, size_t i)
{
    free_child(&s->ch[i]);
    memmove(&s->ch[i], &s->ch[i + 1], (s->n - i - 1) * sizeof *s->ch);
    s->n--;
}

#define NONE ((size_t)-1)

static size_t find_id(const struct sup *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->ch[i].id, id) == 0)
            return i;
    return NONE;
}

static size_t find_pid(const struct sup *s, rt_pid pid)
{
    if (!pid)
        return NONE;
    for (size_t i = 0; i < s->n; i++)
        if (s->ch[i].pid == pid)
            return i;
    return NONE;
}

static size_t find_key(const struct sup *s, uint64_t key)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->ch[i].key == key)
            return i;
    return NONE;
}

/* ---- simple_one_for_one's dynamic children ------------------------------------- */

/* Dynamic child d as a struct child: the template with d's own fields. */
static void dyn_view(const struct sup *s, const struct dyn *d, struct child *c)
{
    *c = s->tmpl;
    c->id[0] = 0;       /* dynamic children have no id (undefined) */
    c->own_arg = false; /* the template's arg copy serves them all */
    c->pid = d->pid;
    c->status = d->pid ? RT_CHILD_RUNNING : RT_CHILD_UNDEFINED;
    c->last_pid = 0;
    c->key = 0;
    c->restarts = 0;
    c->extra = NULL;
    c->extra_size = 0;
    if (d->more) {
        c->last_pid = d->more->last_pid;
        c->key = d->more->key;
        c->restarts = d->more->restarts;
        if (d->more->restarting)
            c->status = RT_CHILD_RESTARTING;
        c->extra = d->more->extra_size ? d->more->extra : NULL;
        c->extra_size = d->more->extra_size;
    }
}

/* Room for one more dynamic child, so that a child that has started is
 * always stored. */
static int dyn_reserve(struct sup *s)
{
    if (s->n < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : 8;
    struct dyn *n = rt_realloc(s->dy, cap * sizeof *n);
    if (!n)
        return -ENOMEM;
    s->dy = n;
    s->cap = cap;
    return 0;
}

static void dyn_remove(struct sup *s, size_t i)
{
    rt_free(s->dy[i].more);
    memmove(&s->dy[i], &s->dy[i + 1], (s->n - i - 1) * sizeof *s->dy);
    s->n--;
}

static size_t dyn_find_pid(const struct sup *s, rt_pid pid)
{
    if (!pid)
        return NONE;
    for (size_t i = 0; i < s->n; i++)
        if (s->dy[i].pid == pid)
            return i;
    return NONE;
}

/* By its pid, or by the pid it had while its restart is being retried. */
static size_t dyn_find(const struct sup *s, rt_pid pid)
{
    size_t i = dyn_find_pid(s, pid);
    if (i != NONE || !pid)
        return i;
    for (i = 0; i < s->n; i++) {
        const struct dyn_more *m = s->dy[i].more;
        if (m && m->restarting && m->last_pid == pid)
            return i;
    }
    return NONE;
}

static size_t dyn_find_key(const struct sup *s, uint64_t key)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->dy[i].more && s->dy[i].more->key == key)
            return i;
    return NONE;
}

/* Reports built since the program started (rt__test_sup_reports_built). */
static _Atomic uint64_t reports_built;

uint64_t rt__test_sup_reports_built(void)
{
    /* Relaxed: as the increment. */
    return atomic_load_explicit(&reports_built, memory_order_relaxed);
}

/* The structured twin of the log lines (rt_set_supervisor_report_handler):
 * reported from the supervisor's own process, as the lines are. Nothing is
 * built while no handler takes reports (OTP's logger drops a report below
 * its level before formatting it too); with one, the supervisor's name is
 * the only thing looked up, not a whole process description. */
static void report(const char *event, const struct child *c, rt_pid pid, rt_pid new_pid,
                   rt_atom reason)
{
    if (!rt__supervisor_report_wanted())
        return;
    /* Relaxed: a count for tests, ordering nothing. */
    atomic_fetch_add_explicit(&reports_built, 1, memory_order_relaxed);
    char name[64];
    bool named = rt__self_name(name, sizeof name) > 0;
    struct rt_supervisor_report r = {
        .supervisor = rt_self(),
        .supervisor_name = named ? name : NULL,
        .event = event,
        .child = c->id,
        .pid = pid,
        .new_pid = new_pid,
        .reason = reason,
    };
    rt__supervisor_report(&r);
}

/* Starts child i: 0 (running), RT_IGNORE (pid undefined), -EEXIST with
 * *holder (the start function found the child's name taken: OTP's
 * already_started, passed through as such) or -ECHILD with *reason. */
static int start_child(struct child *c, rt_atom *reason, rt_pid *holder)
{
    rt_pid pid = 0;
    rt_atom why = RT_UNDEFINED;
    int rc = c->start(c->arg, c->extra, c->extra_size, &pid, &why);
    if (rc == 0 && pid) {
        c->pid = pid;
        c->last_pid = 0;
        c->status = RT_CHILD_RUNNING;
        return 0;
    }
    c->pid = 0;
    if (rc == 0 || rc == RT_IGNORE) {
        c->status = RT_CHILD_UNDEFINED;
        return RT_IGNORE;
    }
    if (rc == -EEXIST) {
        if (holder)
            *holder = pid;
        if (reason)
            *reason = rt_atom_intern("already_started");
        return -EEXIST;
    }
    if (reason)
        *reason = why;
    return -ECHILD;
}

/* start_child for static child i, dropping a temporary child's arguments
 * once it runs. */
static int start_one(struct sup *s, size_t i, rt_atom *reason, rt_pid *holder)
{
    struct child *c = &s->ch[i];
    int rc = start_child(c, reason, holder);
    if (rc == 0 && c->restart == RT_TEMPORARY)
        drop_args(c);
    return rc;
}

static bool match_exit_from(const struct rt_msg *m, void *ctx)
{
    return m->type == RT_MSG_EXIT && m->from == *(const rt_pid *)ctx;
}

static void check_shutdown_reason(const struct child *c, rt_atom got, rt_atom expected)
{
    /* noproc: the child had ended on its own when the monitor was set, its
     * EXIT still on its way (a process closes its mailbox before it signals
     * its links); an abnormal end was reported by its own crash report. */
    if (got == expected || got == RT_NOPROC || (expected == RT_SHUTDOWN && rt_reason_is_clean(got)))
        return;
    rt_log(RT_LOG_WARNING, "supervisor %#llx: shutdown_error child=%s pid=%#llx reason=%s",
           (unsigned long long)rt_self(), c->id, (unsigned long long)c->pid, rt_atom_name(got));
    report("shutdown_error", c, c->pid, 0, got);
}

/* Begins stopping child c: monitor, unlink, signal. Returns the monitor ref
 * and sets *dead when the child had already exited by itself. */
static rt_ref begin_shutdown(struct child *c, bool *dead)
{
    rt_pid pid = c->pid;
    rt_ref mref = rt_monitor(pid);
    rt_unlink(pid);
    struct rt_msg *e = rt_receive_match(match_exit_from, &pid, 0);
    *dead = e != NULL;
    if (e) {
        check_shutdown_reason(c, (rt_atom)e->u64, RT_SHUTDOWN);
        rt_msg_free(e);
        return mref;
    }
    rt_exit_signal(pid, c->shutdown == RT_SHUTDOWN_BRUTAL_KILL ? RT_KILL : RT_SHUTDOWN);
    return mref;
}

static void finish_shutdown(struct child *c, rt_ref mref, bool dead, int64_t wait_ms)
{
    rt_atom why = RT_NORMAL;
    if (dead) {
        rt__wait_down(mref, RT_INFINITY, NULL);
    } else if (c->shutdown == RT_SHUTDOWN_BRUTAL_KILL) {
        rt__wait_down(mref, RT_INFINITY, &why);
        check_shutdown_reason(c, why, RT_KILLED);
    } else if (rt__wait_down(mref, wait_ms, &why) == 0) {
        check_shutdown_reason(c, why, RT_SHUTDOWN);
    } else {
        rt_exit_signal(c->pid, RT_KILL);
        rt__wait_down(mref, RT_INFINITY, &why);
        check_shutdown_reason(c, why, RT_SHUTDOWN);
    }
    c->pid = 0;
    c->status = RT_CHILD_UNDEFINED;
}

static void shutdown_child(struct child *c)
{
    bool dead;
    if (!c->pid)
        return;
    rt_ref mref = begin_shutdown(c, &dead);
    finish_shutdown(c, mref, dead, shutdown_wait(c->shutdown));
}

/* Stops children [from, n) in reverse order (all children, in parallel
 * with one shared timer, for simple_one_for_one). Drops temporary ones
 * when `drop_temporary`. */
static void terminate_children(struct sup *s, size_t from, bool drop_temporary)
{
    if (s->flags.strategy == RT_SIMPLE_ONE_FOR_ONE) {
        size_t n = s->n;
        struct child c;
        rt_ref *mrefs = rt_calloc(n ? n : 1, sizeof *mrefs);
        bool *dead = rt_calloc(n ? n : 1, sizeof *dead);
        if (!mrefs || !dead) {
            rt_free(mrefs);
            rt_free(dead);
            for (size_t i = n; i-- > 0;) {
                dyn_view(s, &s->dy[i], &c);
                shutdown_child(&c);
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                if (!s->dy[i].pid)
                    continue;
                dyn_view(s, &s->dy[i], &c);
                mrefs[i] = begin_shutdown(&c, &dead[i]);
            }
            int64_t t = shutdown_wait(s->tmpl.shutdown);
            uint64_t deadline = t >= 0 ? rt_now_ms() + (uint64_t)t : 0;
            for (size_t i = 0; i < n; i++) {
                if (!s->dy[i].pid)
                    continue;
                int64_t left = t;
                if (t >= 0) {
                    uint64_t now = rt_now_ms();
                    left = now >= deadline ? 0 : (int64_t)(deadline - now);
                }
                dyn_view(s, &s->dy[i], &c);
                finish_shutdown(&c, mrefs[i], dead[i], left);
            }
            rt_free(mrefs);
            rt_free(dead);
        }
        while (s->n)
            dyn_remove(s, s->n - 1);
        return;
    }
    for (size_t i = s->n; i-- > from;) {
        shutdown_child(&s->ch[i]);
        if (drop_temporary && s->ch[i].restart == RT_TEMPORARY)
            remove_child(s, i);
    }
}

/* Records a restart; -1 when it exceeds the intensity within the period. */
static int add_restart(struct sup *s)
{
    uint64_t now = rt_now_ms();
    uint64_t period = (uint64_t)s->flags.period_s * 1000u;
    size_t k = 0;
    for (size_t i = 0; i < s->ntimes; i++)
        if (now - s->times[i] <= period)
            s->times[k++] = s->times[i];
    s->ntimes = k;
    if (s->ntimes >= (size_t)s->flags.intensity)
        return -1;
    s->times[s->ntimes++] = now;
    return 0;
}

static void send_retry(uint64_t key)
{
    struct retry rt = {.key = key};
    struct rt_msg *m = rt_msg_copy(RT_MSG_SUP, &rt, sizeof rt);
    if (m)
        rt_send(rt_self(), m);
}

static void schedule_retry(struct sup *s, size_t i)
{
    s->ch[i].status = RT_CHILD_RESTARTING;
    send_retry(s->ch[i].key);
}

/* Starts children [i, n) that are not running, in order (the restart part
 * of rest_for_one/one_for_all); on failure marks that child restarting.
 * `dead` is the child whose exit (with `reason`) caused it, or NONE. */
static void start_from(struct sup *s, size_t i, size_t dead, rt_atom reason)
{
    for (; i < s->n; i++) {
        if (s->ch[i].pid)
            continue;
        rt_atom why = RT_UNDEFINED;
        rt_pid old = s->ch[i].last_pid;
        bool cause = i == dead;
        int rc = start_one(s, i, &why, NULL);
        if (rc == RT_IGNORE && s->ch[i].restart == RT_TEMPORARY) {
            remove_child(s, i);
            if (dead != NONE && dead > i)
                dead--;
            i--;
            continue;
        }
        if (rc < 0) {
            rt_log(RT_LOG_ERROR, "supervisor %#llx: start_error child=%s reason=%s",
                   (unsigned long long)rt_self(), s->ch[i].id, rt_atom_name(why));
            report("start_error", &s->ch[i], old, 0, why);
            schedule_retry(s, i);
            return;
        }
        if (rc == 0)
            report("child_restarted", &s->ch[i], cause ? old : 0, s->ch[i].pid,
                   cause ? reason : RT_NORMAL);
    }
}

/* Restarts child i (just died with `reason`, or a retry: RT_NORMAL) under
 * the strategy. Returns -1 when the intensity is exceeded: the caller stops
 * the supervisor. */
static int restart(struct sup *s, size_t i, rt_atom reason)
{
    if (add_restart(s) < 0) {
        rt_log(RT_LOG_ERROR, "supervisor %#llx: reached_max_restart_intensity child=%s",
               (unsigned long long)rt_self(), s->ch[i].id);
        report("reached_max_restart_intensity", &s->ch[i], s->ch[i].last_pid, 0, reason);
        return -1;
    }
    s->ch[i].restarts++;
    s->total_restarts++;
    uint64_t key = s->ch[i].key;
    switch (s->flags.strategy) {
    case RT_ONE_FOR_ONE:
    case RT_SIMPLE_ONE_FOR_ONE: /* dyn_restart */ {
        rt_atom why = RT_UNDEFINED;
        rt_pid old = s->ch[i].last_pid;
        int rc = start_one(s, i, &why, NULL);
        if (rc == RT_IGNORE && s->ch[i].restart == RT_TEMPORARY)
            remove_child(s, i);
        else if (rc < 0)
            schedule_retry(s, i);
        else if (rc == 0)
            report("child_restarted", &s->ch[i], old, s->ch[i].pid, reason);
        break;
    }
    case RT_REST_FOR_ONE:
        terminate_children(s, i + 1, true);
        i = find_key(s, key);
        start_from(s, i, i, reason);
        break;
    case RT_ONE_FOR_ALL:
        terminate_children(s, 0, true);
        start_from(s, 0, find_key(s, key), reason);
        break;
    }
    return 0;
}

/* A log line built piece by piece, cut at its size. */
struct line {
    char b[1024]; /* as rt_log's */
    size_t n;
};

static void line_str(struct line *l, const char *s)
{
    size_t len = strnlen(s, sizeof l->b - 1 - l->n);
    memcpy(l->b + l->n, s, len);
    l->n += len;
    l->b[l->n] = 0;
}

/* As printf's %#llx: "0x" and lower-case digits, "0" for zero. */
static void line_hex(struct line *l, uint64_t v)
{
    char d[2 + 16 + 1], *p = d + sizeof d;
    *--p = 0;
    do {
        *--p = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    if (p[0] != '0' || p[1]) {
        *--p = 'x';
        *--p = '0';
    }
    line_str(l, p);
}

/* "supervisor 0x..: child_terminated child=.. pid=0x.. reason=..", made
 * without vsnprintf: it is written for every crash a supervisor restarts,
 * and formatting it cost a tenth of the restart. */
static void log_child_terminated(const struct child *c, rt_pid pid, rt_atom reason)
{
    struct line l; /* not zeroed: 1,024 bytes; line_str terminates it */
    l.n = 0;
    line_str(&l, "supervisor ");
    line_hex(&l, rt_self());
    line_str(&l, ": child_terminated child=");
    line_str(&l, c->id);
    line_str(&l, " pid=");
    line_hex(&l, pid);
    line_str(&l, " reason=");
    line_str(&l, rt_atom_name(reason));
    rt__log_text(RT_LOG_ERROR, l.b);
}

/* restart() for dynamic child i, which has a `more` (it is not temporary):
 * started again, dropped if its start ignores, or retried. */
static int dyn_restart(struct sup *s, size_t i, rt_atom reason)
{
    struct dyn *d = &s->dy[i];
    struct child c;
    if (add_restart(s) < 0) {
        dyn_view(s, d, &c);
        rt_log(RT_LOG_ERROR, "supervisor %#llx: reached_max_restart_intensity child=%s",
               (unsigned long long)rt_self(), c.id);
        report("reached_max_restart_intensity", &c, d->more->last_pid, 0, reason);
        return -1;
    }
    d->more->restarts++;
    s->total_restarts++;
    dyn_view(s, d, &c);
    rt_pid old = d->more->last_pid;
    rt_atom why = RT_UNDEFINED;
    int rc = start_child(&c, &why, NULL);
    if (rc == RT_IGNORE) {
        dyn_remove(s, i);
    } else if (rc < 0) {
        d->more->restarting = true;
        send_retry(d->more->key);
    } else {
        d->pid = c.pid;
        d->more->last_pid = 0;
        report("child_restarted", &c, old, c.pid, reason);
    }
    return 0;
}

static void dyn_exit(struct sup *s, rt_pid pid, rt_atom reason, struct rt_gs_result *r)
{
    size_t i = dyn_find_pid(s, pid);
    if (i == NONE)
        return; /* an EXIT from an unknown pid is ignored */
    struct child c;
    dyn_view(s, &s->dy[i], &c);
    if (!rt_reason_is_clean(reason)) {
        log_child_terminated(&c, pid, reason);
        report("child_terminated", &c, pid, 0, reason);
    }
    bool again =
        c.restart == RT_PERMANENT || (c.restart == RT_TRANSIENT && !rt_reason_is_clean(reason));
    /* Auto-shutdown is never set here (check_flags): no significant child. */
    if (!again) {
        dyn_remove(s, i);
        return;
    }
    s->dy[i].pid = 0;
    s->dy[i].more->last_pid = pid;
    if (dyn_restart(s, i, reason) < 0) {
        terminate_children(s, 0, false);
        rt_gs_stop(r, RT_SHUTDOWN);
    }
}

static void on_child_exit(struct sup *s, rt_pid pid, rt_atom reason, struct rt_gs_result *r)
{
    if (s->flags.strategy == RT_SIMPLE_ONE_FOR_ONE) {
        dyn_exit(s, pid, reason, r);
        return;
    }
    size_t i = find_pid(s, pid);
    if (i == NONE)
        return; /* an EXIT from an unknown pid is ignored */
    struct child *c = &s->ch[i];
    if (!rt_reason_is_clean(reason)) {
        log_child_terminated(c, pid, reason);
        report("child_terminated", c, pid, 0, reason);
    }
    c->pid = 0;
    c->last_pid = pid;
    c->status = RT_CHILD_UNDEFINED;
    bool again =
        c->restart == RT_PERMANENT || (c->restart == RT_TRANSIENT && !rt_reason_is_clean(reason));
    if (!again) {
        bool sig = c->significant && s->flags.auto_shutdown != RT_AUTO_NEVER;
        if (c->restart == RT_TEMPORARY)
            remove_child(s, i);
        if (sig) {
            bool others = false;
            for (size_t j = 0; j < s->n; j++)
                if (s->ch[j].significant && s->ch[j].pid)
                    others = true;
            if (s->flags.auto_shutdown == RT_AUTO_ANY_SIGNIFICANT || !others) {
                terminate_children(s, 0, false);
                rt_gs_stop(r, RT_SHUTDOWN);
            }
        }
        return;
    }
    if (restart(s, i, reason) < 0) {
        terminate_children(s, 0, false);
        rt_gs_stop(r, RT_SHUTDOWN);
    }
}

/* ---- gen_server callbacks ------------------------------------------------------- */

struct sup_start {
    rt_sup_init_fn init;
    void *arg;
};

struct rt_sup_init {
    struct sup *s;
    int err; /* the first failure of rt_sup_init_child, 0 if none */
};

int rt_sup_init_child(struct rt_sup_init *init, const struct rt_child_spec *spec)
{
    struct child c;
    int rc = -EINVAL;
    if (!init)
        return -EINVAL;
    if (!spec || check_shape(spec) < 0)
        goto out;
    rc = fill_child(&c, spec);
    if (rc < 0)
        goto out;
    rc = push_child(init->s, &c);
    if (rc < 0)
        free_child(&c);
out:
    if (rc < 0 && !init->err)
        init->err = rc;
    return rc;
}

int rt_sup_init_children(struct rt_sup_init *init, const struct rt_child_spec *specs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = rt_sup_init_child(init, &specs[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The checks that need the flags or the other children, on the copies. */
static int check_children(const struct sup *s, rt_atom *reason)
{
    const char *bad = NULL;
    if (s->flags.strategy == RT_SIMPLE_ONE_FOR_ONE && s->n != 1)
        bad = "bad_start_spec";
    for (size_t i = 0; i < s->n && !bad; i++) {
        if (!significant_ok(&s->flags, s->ch[i].restart, s->ch[i].significant))
            bad = "invalid_child_spec";
        for (size_t j = 0; j < i && !bad; j++)
            if (strcmp(s->ch[i].id, s->ch[j].id) == 0)
                bad = "duplicate_child_name";
    }
    if (!bad)
        return 0;
    *reason = rt_atom_intern(bad);
    return -EINVAL;
}

static void sup_init(void *arg, struct rt_gs_result *r)
{
    const struct sup_start *ss = arg;
    struct rt_sup_flags flags = RT_SUP_FLAGS_DEFAULT;
    rt_atom why = RT_UNDEFINED;
    rt_set_kind(RT_KIND_SUPERVISOR);
    rt_trap_exit(true);
    struct sup *s = rt_calloc(1, sizeof *s);
    if (!s) {
        rt_gs_stop(r, RT_SYSTEM_LIMIT);
        return;
    }
    r->state = s;
    struct rt_sup_init in = {.s = s};
    int rc = ss->init(ss->arg, &flags, &in);
    if (rc == RT_IGNORE) {
        rt_gs_ignore(r);
        return;
    }
    if (rc < 0) {
        rt_gs_stop(r, rt_atom_intern("bad_init"));
        return;
    }
    if (in.err) {
        rt_gs_stop(r, in.err == -ENOMEM ? RT_SYSTEM_LIMIT : rt_atom_intern("invalid_child_spec"));
        return;
    }
    if (check_flags(&flags, &why) < 0) {
        rt_gs_stop(r, why);
        return;
    }
    s->flags = flags;
    if (check_children(s, &why) < 0) {
        rt_gs_stop(r, why);
        return;
    }
    s->times = rt_calloc((size_t)flags.intensity + 1, sizeof *s->times);
    if (!s->times) {
        rt_gs_stop(r, RT_SYSTEM_LIMIT);
        return;
    }
    rt_set_state_name(rt_sup_strategy_name(flags.strategy));
    if (flags.strategy == RT_SIMPLE_ONE_FOR_ONE) {
        /* The single spec becomes the template; it is not a child. OTP
         * does not hibernate these: children come and go all the time. */
        s->tmpl = s->ch[0];
        rt_free(s->ch);
        s->ch = NULL;
        s->n = s->cap = 0;
        return;
    }
    for (size_t i = 0; i < s->n;) {
        rc = start_one(s, i, &why, NULL);
        if (rc == RT_IGNORE && s->ch[i].restart == RT_TEMPORARY) {
            remove_child(s, i);
            continue;
        }
        if (rc < 0) {
            char buf[128];
            snprintf(buf, sizeof buf, "shutdown:failed_to_start_child:%s", s->ch[i].id);
            rt_log(RT_LOG_ERROR, "supervisor %#llx: start_error child=%s reason=%s",
                   (unsigned long long)rt_self(), s->ch[i].id, rt_atom_name(why));
            report("start_error", &s->ch[i], 0, 0, why);
            /* The children not started yet have no pid: only the started
             * ones are stopped, in reverse order. */
            terminate_children(s, 0, false);
            rt_gs_stop(r, rt_atom_intern(buf));
            return;
        }
        i++;
    }
    /* Static supervisors have little to do; as OTP, hibernate. */
    rt_gs_hibernate(r);
}

static void sup_terminate(rt_atom reason, void *state)
{
    struct sup *s = state;
    if (s)
        terminate_children(s, 0, false);
}

/* After each message: a static supervisor goes back to hibernation, so an
 * idle one holds no stack (OTP hibernates it after init only). */
static void rest(const struct sup *s, struct rt_gs_result *r)
{
    if (s->flags.strategy != RT_SIMPLE_ONE_FOR_ONE)
        rt_gs_hibernate(r);
}

static void sup_info(struct rt_msg *m, void *state, struct rt_gs_result *r)
{
    struct sup *s = state;
    rest(s, r);
    if (m->type == RT_MSG_EXIT) {
        on_child_exit(s, m->from, (rt_atom)m->u64, r);
        return;
    }
    if (m->type == RT_MSG_SUP && m->from == rt_self() && m->size >= sizeof(struct retry)) {
        const struct retry *rt = (const struct retry *)m->data;
        if (s->flags.strategy == RT_SIMPLE_ONE_FOR_ONE) {
            size_t i = dyn_find_key(s, rt->key);
            /* Gone, or no longer restarting (terminate_child): no retry. */
            if (i == NONE || !s->dy[i].more->restarting)
                return;
            s->dy[i].more->restarting = false;
            if (dyn_restart(s, i, RT_NORMAL) < 0) {
                terminate_children(s, 0, false);
                rt_gs_stop(r, RT_SHUTDOWN);
            }
            return;
        }
        size_t i = find_key(s, rt->key);
        /* Gone, or no longer restarting (terminate_child): no retry. */
        if (i == NONE || s->ch[i].status != RT_CHILD_RESTARTING)
            return;
        s->ch[i].status = RT_CHILD_UNDEFINED;
        if (restart(s, i, RT_NORMAL) < 0) {
            terminate_children(s, 0, false);
            rt_gs_stop(r, RT_SHUTDOWN);
        }
        return;
    }
    if (m->type == RT_MSG_DOWN)
        return;
    rt_log(RT_LOG_WARNING, "supervisor %#llx: unexpected message type %#x",
           (unsigned long long)rt_self(), m->type);
}

static void child_info(const struct child *c, struct rt_child_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", c->id);
    out->pid = c->pid;
    out->status = c->status;
    out->restart = c->restart;
    out->type = c->type;
    out->shutdown = c->shutdown;
    out->significant = c->significant;
    out->restarts = c->restarts;
}

static struct rt_msg *new_rep(size_t extra)
{
    return rt_msg_new(0, sizeof(struct sup_rep) + extra);
}

static struct rt_msg *list_rep(const struct sup *s, int kind)
{
    struct rt_msg *m = new_rep(s->n * sizeof(struct rt_child_info));
    if (!m)
        return NULL;
    struct sup_rep *p = (struct sup_rep *)m->data;
    struct rt_child_info *arr = (struct rt_child_info *)p->data;
    p->count = s->n;
    for (size_t i = 0; i < s->n; i++) {
        struct child c;
        if (s->flags.strategy == RT_SIMPLE_ONE_FOR_ONE) {
            dyn_view(s, &s->dy[i], &c);
            child_info(&c, &arr[i]);
        } else {
            child_info(&s->ch[i], &arr[i]);
        }
    }
    if (kind == SUP_DESCRIBE) {
        p->desc.flags = s->flags;
        p->desc.restarts = s->total_restarts;
        uint64_t now = rt_now_ms(), period = (uint64_t)s->flags.period_s * 1000u;
        size_t k = 0;
        for (size_t i = 0; i < s->ntimes; i++)
            if (now - s->times[i] <= period)
                k++;
        p->desc.restarts_in_period = k;
        p->desc.children = s->n;
    }
    return m;
}

static void call_start_child(struct sup *s, struct rt_msg *m, struct sup_rep *p)
{
    struct start_child_req *q = (struct start_child_req *)m->data;
    struct rt_child_spec spec = q->spec;
    spec.id = q->id;
    if (spec.arg_size)
        spec.arg = q->arg;
    if (s->flags.strategy == RT_SIMPLE_ONE_FOR_ONE) {
        p->rc = -EOPNOTSUPP;
        return;
    }
    if (check_spec(&s->flags, &spec) < 0) {
        p->rc = -EINVAL;
        p->reason = rt_atom_intern("invalid_child_spec");
        return;
    }
    size_t i = find_id(s, spec.id);
    if (i != NONE) {
        p->rc = s->ch[i].pid ? -EEXIST : -EALREADY;
        p->pid = s->ch[i].pid;
        return;
    }
    struct child c;
    if (fill_child(&c, &spec) < 0) {
        p->rc = -ENOMEM;
        return;
    }
    if (push_child(s, &c) < 0) {
        free_child(&c);
        p->rc = -ENOMEM;
        return;
    }
    i = s->n - 1;
    p->rc = start_one(s, i, &p->reason, &p->pid);
    if (p->rc == RT_IGNORE) {
        p->rc = 0;
        if (s->ch[i].restart == RT_TEMPORARY)
            remove_child(s, i);
    } else if (p->rc < 0) {
        remove_child(s, i); /* nothing is stored for a failed start */
    } else {
        p->pid = s->ch[i].pid;
    }
}

static void call_start_extra(struct sup *s, struct rt_msg *m, struct sup_rep *p)
{
    if (s->flags.strategy != RT_SIMPLE_ONE_FOR_ONE) {
        p->rc = -EOPNOTSUPP;
        return;
    }
    /* A temporary child is never restarted: once started it keeps only
     * its pid; the others keep their extra bytes for restarts. */
    bool keep = s->tmpl.restart != RT_TEMPORARY;
    struct dyn d = {0};
    if (dyn_reserve(s) < 0) {
        p->rc = -ENOMEM;
        return;
    }
    if (keep || m->size) {
        d.more = rt_calloc(1, sizeof *d.more + m->size);
        if (!d.more) {
            p->rc = -ENOMEM;
            return;
        }
        d.more->key = ++s->next_key;
        d.more->extra_size = m->size;
        if (m->size)
            memcpy(d.more->extra, m->data, m->size);
    }
    struct child c;
    dyn_view(s, &d, &c);
    p->rc = start_child(&c, &p->reason, &p->pid);
    if (p->rc == 0) {
        d.pid = p->pid = c.pid;
        if (!keep) {
            rt_free(d.more);
            d.more = NULL;
        }
        s->dy[s->n++] = d;
        return;
    }
    rt_free(d.more);
    if (p->rc == RT_IGNORE)
        p->rc = 0; /* {ok, undefined}, nothing stored */
}

static void sup_call(struct rt_msg *m, const struct rt_gs_from *from, void *state,
                     struct rt_gs_result *r)
{
    struct sup *s = state;
    struct rt_msg *rep = new_rep(0);
    if (!rep) {
        rt_gs_stop(r, RT_SYSTEM_LIMIT);
        return;
    }
    rest(s, r);
    struct sup_rep *p = (struct sup_rep *)rep->data;
    bool simple = s->flags.strategy == RT_SIMPLE_ONE_FOR_ONE;
    size_t i;
    char id[64] = "";
    if ((m->type == SUP_TERMINATE_ID || m->type == SUP_RESTART || m->type == SUP_DELETE ||
         m->type == SUP_GET_SPEC || m->type == SUP_WHICH_CHILD) &&
        m->size >= 1)
        snprintf(id, sizeof id, "%.*s", (int)(m->size < 63 ? m->size : 63), (char *)m->data);
    switch (m->type) {
    case SUP_START_CHILD:
        call_start_child(s, m, p);
        break;
    case SUP_START_EXTRA:
        call_start_extra(s, m, p);
        break;
    case SUP_TERMINATE_ID:
        if (simple) {
            p->rc = -EOPNOTSUPP;
            break;
        }
        i = find_id(s, id);
        if (i == NONE) {
            p->rc = -ENOENT;
            break;
        }
        shutdown_child(&s->ch[i]);
        /* Also ends a pending restart: the retry finds it undefined. */
        s->ch[i].status = RT_CHILD_UNDEFINED;
        s->ch[i].last_pid = 0;
        if (s->ch[i].restart == RT_TEMPORARY)
            remove_child(s, i);
        break;
    case SUP_TERMINATE_PID: {
        rt_pid pid = 0;
        if (m->size >= sizeof pid)
            memcpy(&pid, m->data, sizeof pid);
        if (!simple) {
            p->rc = -ENOENT; /* other supervisors know their children by id */
            break;
        }
        i = dyn_find(s, pid);
        if (i == NONE) {
            /* A child that has already gone is as good as terminated. */
            p->rc = pid && !rt_is_alive(pid) ? 0 : -ENOENT;
            break;
        }
        struct child c;
        dyn_view(s, &s->dy[i], &c);
        shutdown_child(&c);
        dyn_remove(s, i);
        break;
    }
    case SUP_RESTART:
    case SUP_DELETE:
        if (simple) {
            p->rc = -EOPNOTSUPP;
            break;
        }
        i = find_id(s, id);
        if (i == NONE) {
            p->rc = -ENOENT;
            break;
        }
        if (s->ch[i].status == RT_CHILD_RESTARTING) {
            p->rc = -EINPROGRESS;
            break;
        }
        if (s->ch[i].pid) {
            p->rc = -EBUSY;
            break;
        }
        if (m->type == SUP_DELETE) {
            remove_child(s, i);
            break;
        }
        p->rc = start_one(s, i, &p->reason, &p->pid);
        if (p->rc == RT_IGNORE)
            p->rc = 0;
        if (p->rc == 0)
            p->pid = s->ch[i].pid;
        break;
    case SUP_WHICH:
    case SUP_DESCRIBE:
        rt_msg_free(rep);
        rep = list_rep(s, m->type);
        if (!rep) {
            rt_gs_stop(r, RT_SYSTEM_LIMIT);
            return;
        }
        break;
    case SUP_COUNT:
        p->counts.specs = simple ? 1 : s->n;
        for (i = 0; simple && i < s->n; i++) {
            p->counts.active += s->dy[i].pid != 0;
            if (s->tmpl.type == RT_SUPERVISOR)
                p->counts.supervisors++;
            else
                p->counts.workers++;
        }
        for (i = 0; !simple && i < s->n; i++) {
            if (s->ch[i].pid)
                p->counts.active++;
            if (s->ch[i].type == RT_SUPERVISOR)
                p->counts.supervisors++;
            else
                p->counts.workers++;
        }
        break;
    case SUP_WHICH_CHILD:
        if (simple) {
            p->rc = -EOPNOTSUPP;
            break;
        }
        __attribute__((fallthrough));
    case SUP_GET_SPEC:
        i = simple ? NONE : find_id(s, id);
        if (i == NONE)
            p->rc = -ENOENT;
        else
            child_info(&s->ch[i], &p->info);
        break;
    default:
        p->rc = -EINVAL;
        break;
    }
    rt_gs_reply(r, rep);
}

static size_t sup_format(const void *state, char *buf, size_t len)
{
    const struct sup *s = state;
    return (size_t)snprintf(
        buf, len, "supervisor strategy=%s intensity=%d period=%d children=%zu restarts=%llu",
        rt_sup_strategy_name(s->flags.strategy), s->flags.intensity, s->flags.period_s, s->n,
        (unsigned long long)s->total_restarts);
}

static const struct rt_gen_server_ops sup_ops = {
    .name = "supervisor",
    .init = sup_init,
    .handle_call = sup_call,
    .handle_info = sup_info,
    .terminate = sup_terminate,
    .format_status = sup_format,
};

int rt_sup_start_link(rt_sup_init_fn init, void *arg, const struct rt_start_opts *opts, rt_pid *out,
                      rt_atom *reason)
{
    struct sup_start ss = {.init = init, .arg = arg};
    struct rt_start_opts o = {0};
    if (!init)
        return -EINVAL;
    if (opts)
        o = *opts;
    if (!o.initial_call)
        o.initial_call = "supervisor";
    return rt_gen_server_start_link(&sup_ops, &ss, &o, out, reason);
}

/* ---- client API ------------------------------------------------------------------ */

static int sup_request(rt_pid sup, uint32_t type, const void *data, size_t size, int64_t timeout_ms,
                       struct rt_msg **rep)
{
    struct rt_msg *m = rt_msg_copy(type, data, size);
    rt_atom why = RT_NORMAL;
    if (!m)
        return -ENOMEM;
    int rc = rt_gen_server_call(sup, m, timeout_ms, rep, &why);
    if (rc == 0 && (!*rep || (*rep)->size < sizeof(struct sup_rep))) {
        rt_msg_free(*rep);
        return -EPROTO;
    }
    return rc;
}

static int id_request(rt_pid sup, uint32_t type, const char *id, int64_t timeout_ms,
                      struct rt_msg **rep)
{
    if (!id)
        return -EINVAL;
    return sup_request(sup, type, id, strlen(id) + 1, timeout_ms, rep);
}

#define REP(m) ((struct sup_rep *)(m)->data)

int rt_sup_start_child(rt_pid sup, const struct rt_child_spec *spec, rt_pid *out, rt_atom *reason)
{
    return rt_sup_start_child_timeout(sup, spec, RT_INFINITY, out, reason);
}

int rt_sup_start_child_timeout(rt_pid sup, const struct rt_child_spec *spec, int64_t timeout_ms,
                               rt_pid *out, rt_atom *reason)
{
    struct rt_msg *rep = NULL;
    if (!spec || !spec->id || strlen(spec->id) >= 64)
        return -EINVAL;
    size_t size = sizeof(struct start_child_req) + spec->arg_size;
    struct rt_msg *m = rt_msg_new(SUP_START_CHILD, size);
    if (!m)
        return -ENOMEM;
    struct start_child_req *q = (struct start_child_req *)m->data;
    q->spec = *spec;
    q->spec.id = NULL;
    snprintf(q->id, sizeof q->id, "%s", spec->id);
    if (spec->arg_size)
        memcpy(q->arg, spec->arg, spec->arg_size);
    rt_atom why = RT_NORMAL;
    int rc = rt_gen_server_call(sup, m, timeout_ms, &rep, &why);
    if (rc < 0)
        return rc;
    if (!rep)
        return -EPROTO;
    rc = REP(rep)->rc;
    if ((rc == 0 || rc == -EEXIST) && out)
        *out = REP(rep)->pid;
    if (rc < 0 && reason)
        *reason = REP(rep)->reason;
    rt_msg_free(rep);
    return rc;
}

int rt_sup_start_child_extra(rt_pid sup, const void *extra, size_t extra_size, rt_pid *out,
                             rt_atom *reason)
{
    return rt_sup_start_child_extra_timeout(sup, extra, extra_size, RT_INFINITY, out, reason);
}

int rt_sup_start_child_extra_timeout(rt_pid sup, const void *extra, size_t extra_size,
                                     int64_t timeout_ms, rt_pid *out, rt_atom *reason)
{
    struct rt_msg *rep = NULL;
    int rc = sup_request(sup, SUP_START_EXTRA, extra, extra_size, timeout_ms, &rep);
    if (rc < 0)
        return rc;
    rc = REP(rep)->rc;
    if ((rc == 0 || rc == -EEXIST) && out)
        *out = REP(rep)->pid;
    if (rc < 0 && reason)
        *reason = REP(rep)->reason;
    rt_msg_free(rep);
    return rc;
}

static int rc_only(rt_pid sup, uint32_t type, const char *id, int64_t timeout_ms)
{
    struct rt_msg *rep = NULL;
    int rc = id_request(sup, type, id, timeout_ms, &rep);
    if (rc < 0)
        return rc;
    rc = REP(rep)->rc;
    rt_msg_free(rep);
    return rc;
}

int rt_sup_terminate_child(rt_pid sup, const char *id)
{
    return rc_only(sup, SUP_TERMINATE_ID, id, RT_INFINITY);
}

int rt_sup_terminate_child_timeout(rt_pid sup, const char *id, int64_t timeout_ms)
{
    return rc_only(sup, SUP_TERMINATE_ID, id, timeout_ms);
}

int rt_sup_terminate_child_pid(rt_pid sup, rt_pid child)
{
    return rt_sup_terminate_child_pid_timeout(sup, child, RT_INFINITY);
}

int rt_sup_terminate_child_pid_timeout(rt_pid sup, rt_pid child, int64_t timeout_ms)
{
    struct rt_msg *rep = NULL;
    int rc = sup_request(sup, SUP_TERMINATE_PID, &child, sizeof child, timeout_ms, &rep);
    if (rc < 0)
        return rc;
    rc = REP(rep)->rc;
    rt_msg_free(rep);
    return rc;
}

int rt_sup_restart_child(rt_pid sup, const char *id, rt_pid *out, rt_atom *reason)
{
    return rt_sup_restart_child_timeout(sup, id, RT_INFINITY, out, reason);
}

int rt_sup_restart_child_timeout(rt_pid sup, const char *id, int64_t timeout_ms, rt_pid *out,
                                 rt_atom *reason)
{
    struct rt_msg *rep = NULL;
    int rc = id_request(sup, SUP_RESTART, id, timeout_ms, &rep);
    if (rc < 0)
        return rc;
    rc = REP(rep)->rc;
    if ((rc == 0 || rc == -EEXIST) && out)
        *out = REP(rep)->pid;
    if (rc < 0 && reason)
        *reason = REP(rep)->reason;
    rt_msg_free(rep);
    return rc;
}

int rt_sup_delete_child(rt_pid sup, const char *id)
{
    return rc_only(sup, SUP_DELETE, id, RT_INFINITY);
}

int rt_sup_delete_child_timeout(rt_pid sup, const char *id, int64_t timeout_ms)
{
    return rc_only(sup, SUP_DELETE, id, timeout_ms);
}

int rt_sup_which_children(rt_pid sup, struct rt_child_info *out, size_t max, size_t *count)
{
    return rt_sup_which_children_timeout(sup, RT_INFINITY, out, max, count);
}

int rt_sup_which_children_timeout(rt_pid sup, int64_t timeout_ms, struct rt_child_info *out,
                                  size_t max, size_t *count)
{
    struct rt_msg *rep = NULL;
    int rc = sup_request(sup, SUP_WHICH, NULL, 0, timeout_ms, &rep);
    if (rc < 0)
        return rc;
    size_t n = REP(rep)->count;
    if (n > max)
        n = max;
    if (n)
        memcpy(out, REP(rep)->data, n * sizeof *out);
    if (count)
        *count = REP(rep)->count;
    rt_msg_free(rep);
    return 0;
}

int rt_sup_count_children(rt_pid sup, struct rt_sup_counts *out)
{
    return rt_sup_count_children_timeout(sup, RT_INFINITY, out);
}

int rt_sup_count_children_timeout(rt_pid sup, int64_t timeout_ms, struct rt_sup_counts *out)
{
    struct rt_msg *rep = NULL;
    int rc = sup_request(sup, SUP_COUNT, NULL, 0, timeout_ms, &rep);
    if (rc < 0)
        return rc;
    *out = REP(rep)->counts;
    rt_msg_free(rep);
    return 0;
}

static int info_request(rt_pid sup, uint32_t type, const char *id, int64_t timeout_ms,
                        struct rt_child_info *out)
{
    struct rt_msg *rep = NULL;
    int rc = id_request(sup, type, id, timeout_ms, &rep);
    if (rc < 0)
        return rc;
    rc = REP(rep)->rc;
    if (rc == 0)
        *out = REP(rep)->info;
    rt_msg_free(rep);
    return rc;
}

int rt_sup_get_childspec(rt_pid sup, const char *id, struct rt_child_info *out)
{
    return info_request(sup, SUP_GET_SPEC, id, RT_INFINITY, out);
}

int rt_sup_get_childspec_timeout(rt_pid sup, const char *id, int64_t timeout_ms,
                                 struct rt_child_info *out)
{
    return info_request(sup, SUP_GET_SPEC, id, timeout_ms, out);
}

int rt_sup_which_child(rt_pid sup, const char *id, struct rt_child_info *out)
{
    return info_request(sup, SUP_WHICH_CHILD, id, RT_INFINITY, out);
}

int rt_sup_which_child_timeout(rt_pid sup, const char *id, int64_t timeout_ms,
                               struct rt_child_info *out)
{
    return info_request(sup, SUP_WHICH_CHILD, id, timeout_ms, out);
}

int rt_sup_describe(rt_pid sup, struct rt_sup_description *desc, struct rt_child_info *children,
                    size_t max)
{
    return rt_sup_describe_timeout(sup, RT_INFINITY, desc, children, max);
}

int rt_sup_describe_timeout(rt_pid sup, int64_t timeout_ms, struct rt_sup_description *desc,
                            struct rt_child_info *children, size_t max)
{
    struct rt_msg *rep = NULL;
    int rc = sup_request(sup, SUP_DESCRIBE, NULL, 0, timeout_ms, &rep);
    if (rc < 0)
        return rc;
    size_t n = REP(rep)->count;
    if (n > max)
        n = max;
    if (n && children)
        memcpy(children, REP(rep)->data, n * sizeof *children);
    if (desc)
        *desc = REP(rep)->desc;
    rt_msg_free(rep);
    return 0;
}
