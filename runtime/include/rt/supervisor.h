/*
 * supervisor.h: OTP's supervisor on Tandem's processes.
 *
 * A supervisor is a gen_server (so it answers sys messages) that traps
 * exits, starts its children in spec order, restarts them according to its
 * strategy and restart intensity, and stops them in reverse order, each
 * under its own shutdown policy, watching them with monitors.
 *
 * Child specs are copied by the supervisor while its init runs (see
 * rt_sup_init_child): an init may build them in local variables. A child's
 * start function runs inside the supervisor process and must start the
 * child linked to its caller (rt_gen_server_start_link, rt_sup_start_link,
 * rt_proc_start_link, or rt_spawn with .link).
 *
 * A supervisor with static children (any strategy but simple_one_for_one)
 * hibernates after its start and after every message it handles, so an
 * idle one holds no stack.
 *
 * All rt_sup_* calls except rt_sup_check_childspecs and rt_sup_init_child(ren)
 * are gen_server calls: process context, blocking. They also return -ESRCH
 * / -ECONNRESET when the supervisor is not alive / dies during the call.
 * The plain ones wait however long the supervisor takes (OTP's infinity): a
 * supervisor answers nothing while it stops or starts a child, which takes
 * up to that child's shutdown time, forever for RT_SHUTDOWN_INFINITY. Each
 * has a _timeout variant that gives up after timeout_ms (RT_INFINITY
 * allowed) with -ETIMEDOUT, as rt_gen_server_call: the request still
 * reaches the supervisor and is carried out, its late answer is dropped.
 * Whoever must answer in bounded time (an admin API) uses those.
 */
#ifndef RT_SUPERVISOR_H
#define RT_SUPERVISOR_H

#include "rt/proc_lib.h"
#include "rt/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rt_sup_strategy {
    RT_ONE_FOR_ONE = 0,
    RT_ONE_FOR_ALL,
    RT_REST_FOR_ONE,
    RT_SIMPLE_ONE_FOR_ONE,
};
enum rt_restart { RT_PERMANENT = 0, RT_TRANSIENT, RT_TEMPORARY };
enum rt_child_type { RT_WORKER = 0, RT_SUPERVISOR };
enum rt_auto_shutdown { RT_AUTO_NEVER = 0, RT_AUTO_ANY_SIGNIFICANT, RT_AUTO_ALL_SIGNIFICANT };

/* Shutdown policy of a child (OTP's shutdown): four distinct kinds.
 *  - RT_SHUTDOWN_DEFAULT (0, what a spec that leaves the field out gets):
 *    5000 ms for a worker, infinity for a supervisor, as OTP's default;
 *  - a timeout: exit(Child, shutdown), wait that long for it to go, then
 *    exit(Child, kill). A positive number of ms, or RT_SHUTDOWN_ZERO for a
 *    timeout of 0 ms (killed at once unless it is already gone: 0 itself
 *    means the default, so that a spec's zero value is OTP's default);
 *  - RT_SHUTDOWN_INFINITY: exit(Child, shutdown) and wait however long;
 *  - RT_SHUTDOWN_BRUTAL_KILL: exit(Child, kill).
 * rt_child_info.shutdown shows the effective policy: never the default,
 * and RT_SHUTDOWN_ZERO for 0 ms, so it can be given back in a spec. */
#define RT_SHUTDOWN_DEFAULT 0
#define RT_SHUTDOWN_INFINITY RT_INFINITY /* -1 */
#define RT_SHUTDOWN_BRUTAL_KILL (-2)
#define RT_SHUTDOWN_ZERO (-3)

const char *rt_sup_strategy_name(enum rt_sup_strategy s);
const char *rt_restart_name(enum rt_restart r);
const char *rt_child_type_name(enum rt_child_type t);

struct rt_sup_flags {
    enum rt_sup_strategy strategy;
    int intensity; /* restarts allowed within period (>= 0) */
    int period_s;  /* seconds (> 0) */
    enum rt_auto_shutdown auto_shutdown;
};
/* OTP's defaults: one_for_one, intensity 1, period 5, auto_shutdown never. */
#define RT_SUP_FLAGS_DEFAULT                                                                       \
    {                                                                                              \
        RT_ONE_FOR_ONE, 1, 5, RT_AUTO_NEVER                                                        \
    }

/* Starts one child, in the supervisor process. `arg` is the spec's arg (the
 * supervisor's copy), `extra` the extra bytes of rt_sup_start_child_extra
 * (simple_one_for_one; NULL otherwise), valid during the call only.
 * Returns 0 with *out (the new, linked child), RT_IGNORE, -EEXIST with
 * *out = the process holding the child's name (OTP's already_started: what
 * the behaviours' start functions return), or another negative code with
 * *reason written. */
typedef int (*rt_child_start_fn)(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                                 rt_atom *reason);

struct rt_child_spec {
    const char *id;          /* mandatory, unique, < 64 bytes; copied */
    rt_child_start_fn start; /* mandatory */
    /* Passed to start. With arg_size > 0 the supervisor copies arg_size
     * bytes and passes its copy; with 0 it passes the pointer itself,
     * which must then stay valid as long as the supervisor may (re)start
     * the child. A temporary child's copy is dropped once it has started
     * (it is never restarted), as OTP drops a temporary child's arguments. */
    void *arg;
    size_t arg_size;
    enum rt_restart restart;
    int64_t shutdown; /* see RT_SHUTDOWN_* above */
    enum rt_child_type type;
    bool significant;
};

/* The child list an init builds; valid during the init call only. */
struct rt_sup_init;

/* The supervisor's init (OTP's Module:init/1), run in the supervisor
 * process. Fill *flags and add the children, in start order, with
 * rt_sup_init_child(ren). Return 0, RT_IGNORE (start returns RT_IGNORE,
 * the supervisor exits normal) or -errno (start fails with -ECHILD,
 * reason bad_init). No child starts before init has returned. */
typedef int (*rt_sup_init_fn)(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init);

/* Inside an init only. Copies `spec` (its id, and its arg bytes when
 * arg_size > 0) into the supervisor at once, so the spec, its id and its
 * arg need only live until this call returns. Returns 0; -EINVAL for a
 * spec that is wrong on its own (no id, an id of 64 bytes or more, no
 * start function, an unknown restart, type or shutdown); -ENOMEM. After any failure the supervisor
 * refuses to start (invalid_child_spec or system_limit) even if init returns 0. Specs are checked
 * against the flags and each other (duplicate ids) once init has returned. */
int rt_sup_init_child(struct rt_sup_init *init, const struct rt_child_spec *spec);
/* Adds n specs in order, as rt_sup_init_child each; stops at the first
 * failure and returns it. */
int rt_sup_init_children(struct rt_sup_init *init, const struct rt_child_spec *specs, size_t n);

/* Process context; blocks until all children have started, in order.
 * Returns as rt_proc_start_link. Failure reasons written to *reason:
 * invalid_strategy, invalid_intensity, invalid_period,
 * invalid_auto_shutdown, invalid_child_spec, duplicate_child_name,
 * bad_start_spec (simple_one_for_one without exactly one spec),
 * bad_combination (simple_one_for_one with an auto_shutdown other than
 * never), bad_init (init returned -errno), and
 * "shutdown:failed_to_start_child:<id>" when a child failed to start (the
 * children already started were stopped, in reverse order). */
int rt_sup_start_link(rt_sup_init_fn init, void *arg, const struct rt_start_opts *opts, rt_pid *out,
                      rt_atom *reason);

/* Validates specs against flags without a supervisor (check_childspecs):
 * 0, or -EINVAL with *reason. */
int rt_sup_check_childspecs(const struct rt_sup_flags *flags, const struct rt_child_spec *specs,
                            size_t n, rt_atom *reason);

/* start_child(Sup, Spec). 0 + *out (*out = 0 when the child ignored: the
 * spec is kept unless temporary); -EEXIST + *out: already_started, either
 * a child with this id runs as *out or the start function found the
 * child's name taken by *out (nothing is stored then); -EALREADY:
 * already_present (stored, not running); -EINVAL + *reason: invalid spec;
 * -ECHILD + *reason: the start function failed; -EOPNOTSUPP on a
 * simple_one_for_one supervisor. */
int rt_sup_start_child(rt_pid sup, const struct rt_child_spec *spec, rt_pid *out, rt_atom *reason);
int rt_sup_start_child_timeout(rt_pid sup, const struct rt_child_spec *spec, int64_t timeout_ms,
                               rt_pid *out, rt_atom *reason);
/* simple_one_for_one: start(arg, extra) with a copy of extra's bytes,
 * kept for restarts unless the child is temporary. 0 + *out (0 when
 * ignored, nothing stored), -EEXIST + *out (already_started),
 * -ECHILD + *reason, -EOPNOTSUPP on other strategies. */
int rt_sup_start_child_extra(rt_pid sup, const void *extra, size_t extra_size, rt_pid *out,
                             rt_atom *reason);
int rt_sup_start_child_extra_timeout(rt_pid sup, const void *extra, size_t extra_size,
                                     int64_t timeout_ms, rt_pid *out, rt_atom *reason);
/* terminate_child by id: 0 (spec kept with pid undefined, except
 * temporary), -ENOENT, -EOPNOTSUPP for simple_one_for_one. A child whose
 * restart failed and is being retried (restarting) is not retried any
 * more. */
int rt_sup_terminate_child(rt_pid sup, const char *id);
int rt_sup_terminate_child_timeout(rt_pid sup, const char *id, int64_t timeout_ms);
/* terminate_child by pid, simple_one_for_one only (OTP: other
 * supervisors identify children by id, so a pid is not_found there):
 * 0 (the child is stopped and forgotten; also for a child being
 * restarted under that pid, whose retries stop, and for a pid that is no
 * longer alive), -ENOENT (-ENOENT always on other strategies). */
int rt_sup_terminate_child_pid(rt_pid sup, rt_pid child);
int rt_sup_terminate_child_pid_timeout(rt_pid sup, rt_pid child, int64_t timeout_ms);
/* restart_child: 0 + *out (0 if ignored), -EBUSY (running), -EINPROGRESS
 * (restarting), -ENOENT, -EEXIST + *out (already_started), -ECHILD +
 * *reason, -EOPNOTSUPP. */
int rt_sup_restart_child(rt_pid sup, const char *id, rt_pid *out, rt_atom *reason);
int rt_sup_restart_child_timeout(rt_pid sup, const char *id, int64_t timeout_ms, rt_pid *out,
                                 rt_atom *reason);
/* delete_child: 0, -EBUSY (running), -EINPROGRESS (restarting), -ENOENT,
 * -EOPNOTSUPP. */
int rt_sup_delete_child(rt_pid sup, const char *id);
int rt_sup_delete_child_timeout(rt_pid sup, const char *id, int64_t timeout_ms);

enum rt_child_status {
    RT_CHILD_RUNNING = 0,
    RT_CHILD_UNDEFINED,  /* stored spec, not running (pid undefined) */
    RT_CHILD_RESTARTING, /* a restart failed; retried */
};
const char *rt_child_status_name(enum rt_child_status s);

struct rt_child_info {
    char id[64]; /* "" for simple_one_for_one children (id undefined) */
    rt_pid pid;  /* 0 unless running */
    enum rt_child_status status;
    enum rt_restart restart;
    enum rt_child_type type;
    int64_t shutdown; /* effective, ms or RT_SHUTDOWN_* */
    bool significant;
    uint64_t restarts; /* times this child was restarted */
};

/* which_children: writes up to max entries and the total count to
 * *count. Children come in start order, oldest first, static and
 * simple_one_for_one children alike (OTP gives static children newest
 * first and dynamic ones in no defined order). */
int rt_sup_which_children(rt_pid sup, struct rt_child_info *out, size_t max, size_t *count);
int rt_sup_which_children_timeout(rt_pid sup, int64_t timeout_ms, struct rt_child_info *out,
                                  size_t max, size_t *count);
/* which_child: the entry of which_children for child `id`;
 * -ENOENT, -EOPNOTSUPP for simple_one_for_one (its children have no id). */
int rt_sup_which_child(rt_pid sup, const char *id, struct rt_child_info *out);
int rt_sup_which_child_timeout(rt_pid sup, const char *id, int64_t timeout_ms,
                               struct rt_child_info *out);

struct rt_sup_counts {
    size_t specs, active, supervisors, workers;
};
int rt_sup_count_children(rt_pid sup, struct rt_sup_counts *out);
int rt_sup_count_children_timeout(rt_pid sup, int64_t timeout_ms, struct rt_sup_counts *out);
/* get_childspec: the stored spec's info (-ENOENT). */
int rt_sup_get_childspec(rt_pid sup, const char *id, struct rt_child_info *out);
int rt_sup_get_childspec_timeout(rt_pid sup, const char *id, int64_t timeout_ms,
                                 struct rt_child_info *out);

/* For the admin API: the supervisor's configuration and children. */
struct rt_sup_description {
    struct rt_sup_flags flags;
    uint64_t restarts;         /* total restarts since start */
    size_t restarts_in_period; /* those counted against intensity now */
    size_t children;           /* total child count (may exceed max) */
};
/* Writes *desc and up to max children (in start order) to `children`
 * (may be NULL with max 0). Walk a tree by recursing into children whose
 * type is RT_SUPERVISOR. */
int rt_sup_describe(rt_pid sup, struct rt_sup_description *desc, struct rt_child_info *children,
                    size_t max);
int rt_sup_describe_timeout(rt_pid sup, int64_t timeout_ms, struct rt_sup_description *desc,
                            struct rt_child_info *children, size_t max);

#ifdef __cplusplus
}
#endif
#endif
