/*
 * supervisor.h: OTP's supervisor on Tandem's processes.
 *
 * A supervisor is a gen_server (so it answers sys messages) that traps
 * exits, starts its children in spec order, restarts them according to its
 * strategy and restart intensity, and stops them in reverse order, each
 * under its own shutdown policy, watching them with monitors.
 *
 * Child specs are copied by the supervisor (id, and `arg` when arg_size is
 * non-zero); a child's start function runs inside the supervisor process and
 * must start the child linked to its caller (rt_gen_server_start_link,
 * rt_sup_start_link, rt_proc_start_link, or rt_spawn with .link).
 *
 * All rt_sup_* calls except rt_sup_check_childspecs are gen_server calls with
 * an infinite timeout: process context, blocking. They also return -ESRCH /
 * -ECONNRESET when the supervisor is not alive / dies during the call.
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

/* Shutdown policy of a child: a positive timeout in ms, or one of these. */
#define RT_SHUTDOWN_DEFAULT 0            /* 5000 for a worker, infinity for a supervisor */
#define RT_SHUTDOWN_INFINITY RT_INFINITY /* wait for the child however long */
#define RT_SHUTDOWN_BRUTAL_KILL (-2)     /* exit(Child, kill) */

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
 * Returns 0 with *out (the new, linked child), RT_IGNORE, or a negative
 * code with *reason written. */
typedef int (*rt_child_start_fn)(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                                 rt_atom *reason);

struct rt_child_spec {
    const char *id;          /* mandatory, unique, < 64 bytes */
    rt_child_start_fn start; /* mandatory */
    void *arg;               /* passed to start; copied when arg_size > 0 */
    size_t arg_size;
    enum rt_restart restart;
    int64_t shutdown; /* ms, or RT_SHUTDOWN_* */
    enum rt_child_type type;
    bool significant;
};

/* The supervisor's init (OTP's Module:init/1). Fill *flags and point
 * *children at `*n` specs (valid until init returns; the supervisor copies
 * them). Return 0, RT_IGNORE (start returns RT_IGNORE, supervisor exits
 * normal) or -errno (start fails with -ECHILD). */
typedef int (*rt_sup_init_fn)(void *arg, struct rt_sup_flags *flags,
                              const struct rt_child_spec **children, size_t *n);

/* Process context; blocks until all children have started, in order.
 * Returns as rt_proc_start_link. Failure reasons written to *reason:
 * invalid_strategy, invalid_intensity, invalid_period, invalid_child_spec,
 * duplicate_child_name, bad_init (init returned -errno), and
 * "shutdown:failed_to_start_child:<id>" when a child failed to start (the
 * children already started were stopped, in reverse order). */
int rt_sup_start_link(rt_sup_init_fn init, void *arg, const struct rt_start_opts *opts, rt_pid *out,
                      rt_atom *reason);

/* Validates specs against flags without a supervisor (check_childspecs):
 * 0, or -EINVAL with *reason. */
int rt_sup_check_childspecs(const struct rt_sup_flags *flags, const struct rt_child_spec *specs,
                            size_t n, rt_atom *reason);

/* start_child(Sup, Spec). 0 + *out (*out = 0 when the child ignored: the
 * spec is kept unless temporary); -EEXIST + *out: already_started;
 * -EALREADY: already_present (stored, not running); -EINVAL + *reason:
 * invalid spec; -ECHILD + *reason: the start function failed;
 * -EOPNOTSUPP on a simple_one_for_one supervisor. */
int rt_sup_start_child(rt_pid sup, const struct rt_child_spec *spec, rt_pid *out, rt_atom *reason);
/* simple_one_for_one: start(arg, extra) with a copy of extra's bytes.
 * 0 + *out (0 when ignored, nothing stored), -ECHILD + *reason,
 * -EOPNOTSUPP on other strategies. */
int rt_sup_start_child_extra(rt_pid sup, const void *extra, size_t extra_size, rt_pid *out,
                             rt_atom *reason);
/* terminate_child by id: 0 (spec kept, except temporary), -ENOENT,
 * -EOPNOTSUPP for simple_one_for_one. */
int rt_sup_terminate_child(rt_pid sup, const char *id);
/* terminate_child by pid (simple_one_for_one, or any child): 0, -ENOENT. */
int rt_sup_terminate_child_pid(rt_pid sup, rt_pid child);
/* restart_child: 0 + *out (0 if ignored), -EBUSY (running), -EINPROGRESS
 * (restarting), -ENOENT, -ECHILD + *reason, -EOPNOTSUPP. */
int rt_sup_restart_child(rt_pid sup, const char *id, rt_pid *out, rt_atom *reason);
/* delete_child: 0, -EBUSY (running), -EINPROGRESS (restarting), -ENOENT,
 * -EOPNOTSUPP. */
int rt_sup_delete_child(rt_pid sup, const char *id);

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

/* which_children, in start order: writes up to max entries and the total
 * count to *count. */
int rt_sup_which_children(rt_pid sup, struct rt_child_info *out, size_t max, size_t *count);

struct rt_sup_counts {
    size_t specs, active, supervisors, workers;
};
int rt_sup_count_children(rt_pid sup, struct rt_sup_counts *out);
/* get_childspec: the stored spec's info (-ENOENT). */
int rt_sup_get_childspec(rt_pid sup, const char *id, struct rt_child_info *out);

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

#ifdef __cplusplus
}
#endif
#endif
