/*
 * gen_event.h: OTP's gen_event on Tandem's processes.
 *
 * An event manager is a process holding a list of event handlers; each
 * handler is a table of callbacks (struct rt_ge_handler_ops, OTP's callback
 * module) with its own state, identified by the table and an id
 * (struct rt_ge_handler, OTP's Module or {Module, Id}). Handlers are added
 * and removed at run time; every event the manager is notified of runs
 * through every handler, in the manager's process, newest handler first.
 *
 * Messages:
 *  - an event (rt_gen_event_notify) is the notifier's message with
 *    RT_GS_CAST_BIT set on the wire; handlers see the plain type, which
 *    must be below RT_GS_TYPE_LIMIT;
 *  - requests (add, delete, swap, call, sync_notify, which_handlers) are
 *    calls on RT_MSG_GEN_EVENT messages, with gen_server's call protocol;
 *  - RT_MSG_SYS messages (sys.h) are answered by the manager itself;
 *  - anything else (EXIT and DOWN included) goes to every handler's
 *    handle_info.
 *
 * The manager traps exits. Its parent's exit terminates it; the exit of a
 * process that added a handler with rt_gen_event_add_sup_handler removes
 * that handler. A callback that calls rt_exit ends the whole manager (C has
 * no exceptions to catch): a handler that fails on its own uses
 * rt_ge_error, which removes only that handler, as OTP does for a handler
 * that crashes or returns a bad value.
 *
 * Memory: handler states belong to the manager process (rt_alloc them in
 * init); event, request and reply messages follow the usual rule (they
 * belong to the receiver from the send on).
 */
#ifndef RT_GEN_EVENT_H
#define RT_GEN_EVENT_H

#include "rt/gen_server.h"
#include "rt/proc_lib.h"
#include "rt/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Message types, in the range proc_lib.h reserves for the behaviours. */
#define RT_MSG_GEN_EVENT (RT_MSG_SYSTEM + 0x30)      /* requests and replies */
#define RT_MSG_GEN_EVENT_EXIT (RT_MSG_SYSTEM + 0x31) /* struct rt_ge_exit */

/* Handlers one manager holds at most (-ENOSPC beyond): each event costs a
 * callback per handler, so the list is kept to what a process can run
 * through per event. */
#define RT_GE_MAX_HANDLERS 4096

struct rt_ge_handler_ops;

/* OTP's Handler: Module (id 0) or {Module, Id}. */
struct rt_ge_handler {
    const struct rt_ge_handler_ops *ops;
    uint64_t id;
};

enum rt_ge_kind {
    RT_GE_OK = 0, /* {ok, State}, {ok, Reply, State} (the default) */
    RT_GE_REMOVE, /* remove_handler, {remove_handler, Reply} */
    RT_GE_SWAP,   /* {swap_handler, [Reply,] Args1, State, Handler2, Args2} */
    RT_GE_ERROR,  /* init: {error, Reason}; elsewhere: the handler fails */
};

/* Filled by a callback through the rt_ge_* helpers. r->state starts as the
 * handler's current state (NULL in init) and may be replaced. */
struct rt_ge_result {
    enum rt_ge_kind kind;
    void *state;
    bool hibernate;
    struct rt_msg *reply; /* handle_call's reply (NULL allowed) */
    rt_atom reason;       /* RT_GE_ERROR */
    /* RT_GE_SWAP: the new handler and the two argument copies. */
    struct rt_ge_handler swap_to;
    void *swap_args1, *swap_args2;
    size_t swap_size1, swap_size2;
};

/* Why a handler's terminate runs: OTP's Arg. */
enum rt_ge_stop_kind {
    RT_GE_STOP_DELETE = 0, /* delete_handler; args: its arguments */
    RT_GE_STOP_SWAP,       /* swapped out; args: Args1 */
    RT_GE_STOP_REMOVE,     /* remove_handler returned by a callback */
    RT_GE_STOP_ERROR,      /* {error, Reason}: the handler failed (reason) */
    RT_GE_STOP_SUPERVISOR, /* {stop, Reason}: the process that added it with
                              add_sup_handler exited with reason */
    RT_GE_STOP_MANAGER,    /* stop: the manager is terminating */
};

struct rt_ge_stop {
    enum rt_ge_stop_kind kind;
    rt_atom reason;
    const void *args; /* valid during the call */
    size_t args_size;
};

/* What a handler swapped in learns of the one it replaces (OTP's init
 * argument {Args2, Term}). */
struct rt_ge_swap {
    bool found;          /* false: the old handler was not installed (Term = error) */
    struct rt_msg *term; /* the old terminate's result; the loop's, may be NULL */
};

/* The callbacks; all run in the manager process. Only init and
 * handle_event are needed in practice: a missing handle_event or
 * handle_call fails the handler with reason `undef` when used; a missing
 * handle_info drops the message with a warning, the handler stays; a
 * missing terminate counts as returning NULL. */
struct rt_ge_handler_ops {
    const char *name; /* for which_handlers listings, logs and get_status */
    /* add_handler: `arg` is the manager's copy of the caller's bytes (valid
     * during the call; NULL when arg_size is 0); swap is NULL except for a
     * swap. Set r->state; rt_ge_error(r, R) refuses (add_handler fails). */
    void (*init)(const void *arg, size_t arg_size, const struct rt_ge_swap *swap,
                 struct rt_ge_result *r);
    /* An event, shared by every handler: read it, do not keep it. */
    void (*handle_event)(const struct rt_msg *event, void *state, struct rt_ge_result *r);
    /* rt_gen_event_call: reply with rt_ge_reply (default: a NULL reply). */
    void (*handle_call)(const struct rt_msg *req, void *state, struct rt_ge_result *r);
    void (*handle_info)(const struct rt_msg *msg, void *state, struct rt_ge_result *r);
    /* The handler is going (see rt_ge_stop). The message returned (or
     * NULL) is what delete_handler returns to its caller, or what the new
     * handler of a swap gets; otherwise it is freed. */
    struct rt_msg *(*terminate)(const struct rt_ge_stop *stop, void *state);
    /* sys change_code: 0 with *new_state, or -errno (nothing changes). */
    int (*code_change)(const char *old_vsn, void *state, const void *extra, void **new_state);
    /* The state's text (rt_format_status_fn, sys.h) in the manager's
     * get_status and in its crash report; default "<name> state=%p". */
    rt_format_status_fn format_status;
};

/* Result helpers, for use inside callbacks. */
void rt_ge_ok(struct rt_ge_result *r);
/* handle_call: {ok, Reply, State}; `reply` passes to the loop. */
void rt_ge_reply(struct rt_ge_result *r, struct rt_msg *reply);
void rt_ge_hibernate(struct rt_ge_result *r);
/* remove_handler (handle_call: {remove_handler, Reply} with rt_ge_reply). */
void rt_ge_remove(struct rt_ge_result *r);
/* init: {error, Reason}; other callbacks: the handler failed with reason
 * and is removed (terminate gets RT_GE_STOP_ERROR). */
void rt_ge_error(struct rt_ge_result *r, rt_atom reason);
/* swap_handler: terminate runs with args1, then `to`'s init with args2 and
 * what terminate returned; the new handler takes this one's place (and its
 * supervising process). The bytes are copied. 0 or -ENOMEM. */
int rt_ge_swap(struct rt_ge_result *r, const void *args1, size_t size1, struct rt_ge_handler to,
               const void *args2, size_t size2);

/* One installed handler, as sys get_state shows it (see sys.h). */
struct rt_ge_handler_state {
    struct rt_ge_handler handler;
    void *state;
    rt_pid sup; /* the process that added it with add_sup_handler, or 0 */
};

/* What a process that added a handler with rt_gen_event_add_sup_handler
 * receives (type RT_MSG_GEN_EVENT_EXIT) when that handler goes while the
 * process lives: OTP's {gen_event_EXIT, Handler, Reason}. reason is
 * RT_NORMAL (deleted or remove_handler), RT_SHUTDOWN (the manager is
 * terminating), "swapped" (see new_handler and new_sup) or the failure. */
struct rt_ge_exit {
    struct rt_ge_handler handler;
    rt_atom reason;
    struct rt_ge_handler new_handler; /* swapped: the handler that replaced it */
    rt_pid new_sup;                   /* swapped: who supervises that one (0: nobody) */
};

/* Process context; blocks until the manager runs (0 + *out, -EEXIST +
 * *out = holder of opts->name, -ETIMEDOUT, -EAGAIN/-ENOMEM). opts may be
 * NULL; name, timeout, monitor, hibernate_after and debug apply. */
int rt_gen_event_start_link(const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason);
int rt_gen_event_start(const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason);

/* Process context; block until the manager answers (OTP waits forever; so
 * do these, unless the manager dies: -ESRCH noproc, -ECONNRESET + *reason).
 * `arg` bytes are copied. reason may be NULL.
 * add_handler: 0, -ECANCELED + *reason (init failed; `undef` without
 * init), -ENOSPC (RT_GE_MAX_HANDLERS reached). The same handler may be
 * added twice, as in OTP; requests then address the newest. */
int rt_gen_event_add_handler(rt_pid mgr, struct rt_ge_handler h, const void *arg, size_t arg_size,
                             rt_atom *reason);
/* As add_handler, and the manager links to the caller: when the caller
 * exits, the handler is removed (terminate gets RT_GE_STOP_SUPERVISOR);
 * when the handler goes first, the caller gets an RT_MSG_GEN_EVENT_EXIT. */
int rt_gen_event_add_sup_handler(rt_pid mgr, struct rt_ge_handler h, const void *arg,
                                 size_t arg_size, rt_atom *reason);
/* 0 and *result = what terminate returned (the caller frees it; result may
 * be NULL to drop it); -ENOENT if not installed (module_not_found). */
int rt_gen_event_delete_handler(rt_pid mgr, struct rt_ge_handler h, const void *arg,
                                size_t arg_size, struct rt_msg **result);
/* Replaces `old` (terminate with args1) by `to` (init with args2 and what
 * terminate returned, even when `old` was not installed: swap->found is
 * then false). 0, or -ECANCELED + *reason if the new init failed (the old
 * handler is gone anyway). swap_sup_handler also links the caller to the
 * new handler, as add_sup_handler. */
int rt_gen_event_swap_handler(rt_pid mgr, struct rt_ge_handler old, const void *args1, size_t size1,
                              struct rt_ge_handler to, const void *args2, size_t size2,
                              rt_atom *reason);
int rt_gen_event_swap_sup_handler(rt_pid mgr, struct rt_ge_handler old, const void *args1,
                                  size_t size1, struct rt_ge_handler to, const void *args2,
                                  size_t size2, rt_atom *reason);
/* Writes up to max handlers, newest first, and their number to *count. */
int rt_gen_event_which_handlers(rt_pid mgr, struct rt_ge_handler *out, size_t max, size_t *count);

/* Any thread; never blocks. `event` passes to the manager. 0, even if the
 * manager does not exist (OTP's notify to a pid); -EINVAL (event freed) for
 * a type at or above RT_GS_TYPE_LIMIT. The _name form fails with -ESRCH
 * when the name is not registered, as OTP's. */
int rt_gen_event_notify(rt_pid mgr, struct rt_msg *event);
int rt_gen_event_notify_name(const char *name, struct rt_msg *event);
/* Process context; returns once every handler has handled `event`. */
int rt_gen_event_sync_notify(rt_pid mgr, struct rt_msg *event);

/* Process context; blocks up to timeout_ms (RT_GS_DEFAULT_TIMEOUT is OTP's
 * default). handle_call of handler h: 0 and *reply (the caller frees it;
 * may be NULL); -ENOENT (bad_module); -ECANCELED + *reason if the handler
 * failed (it is removed); the call errors of rt_gen_server_call. */
int rt_gen_event_call(rt_pid mgr, struct rt_ge_handler h, struct rt_msg *req, int64_t timeout_ms,
                      struct rt_msg **reply, rt_atom *reason);

/* Process context; blocks. gen_event:stop: every handler's terminate runs
 * (RT_GE_STOP_MANAGER) and the manager exits with `reason`. See
 * rt_proc_stop for the return codes. */
int rt_gen_event_stop(rt_pid mgr, rt_atom reason, int64_t timeout_ms, rt_atom *exit_reason);

#ifdef __cplusplus
}
#endif
#endif
