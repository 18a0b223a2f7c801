/*
 * gen_server.h: OTP's gen_server on Tandem's processes.
 *
 * A server is a process running a generic loop around a table of callbacks
 * (struct rt_gen_server_ops) and an opaque state pointer owned by the
 * server process. Requests and replies are rt_msg messages:
 *  - a call's request carries the caller's user type with RT_GS_CALL_BIT set
 *    on the wire and its alias as ref; the callback sees the plain type;
 *  - a cast carries RT_GS_CAST_BIT; anything else is an info message;
 *  - RT_MSG_SYS messages (sys.h) are answered by the loop itself, also while
 *    suspended and after hibernation.
 * User message types for calls and casts must be below RT_GS_TYPE_LIMIT.
 *
 * Message ownership in callbacks: the message passed to a callback belongs
 * to the loop and is freed when the callback returns, unless the callback
 * takes it with rt_gs_take(r) (for instance to reuse it as the reply).
 *
 * The behaviour owns its process's user pointer (rt_set_user/rt_get_user):
 * callbacks must not change it.
 *
 * Callbacks run in the server process. They fill a struct rt_gs_result
 * through the rt_gs_* helpers below; r->state starts as the current state
 * and a callback may replace it (OTP's NewState).
 *
 * Only init is required. A request for a callback the table lacks
 * (handle_call, handle_cast, handle_continue) exits the server with reason
 * `undef` after terminate, as OTP's call to an unexported function; a
 * missing code_change makes sys change_code fail with -ENOSYS.
 */
#ifndef RT_GEN_SERVER_H
#define RT_GEN_SERVER_H

#include "rt/proc_lib.h"
#include "rt/rt.h"
#include "rt/sys.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RT_GS_TYPE_LIMIT 0x40000000u
#define RT_GS_CAST_BIT 0x40000000u
#define RT_GS_CALL_BIT 0x80000000u
#define RT_GS_DEFAULT_TIMEOUT 5000

/* Opaque identity of a caller (OTP's From): reply to it from any process,
 * any time; a reply after the caller gave up is dropped. */
struct rt_gs_from {
    rt_pid pid;
    rt_ref alias;
};

enum rt_gs_kind {
    RT_GS_OK = 0, /* init: {ok,S}; cast/info/continue: {noreply,S} */
    RT_GS_REPLY,  /* call: {reply,R,S} */
    RT_GS_NOREPLY,
    RT_GS_STOP,   /* {stop,Reason,S} or, with a reply, {stop,Reason,Reply,S} */
    RT_GS_IGNORE, /* init only */
    RT_GS_ERROR,  /* init only: {error,Reason} (exit normal, no report) */
};

struct rt_gs_result {
    enum rt_gs_kind kind;
    void *state;          /* the new state; preset to the current one */
    struct rt_msg *reply; /* RT_GS_REPLY, or RT_GS_STOP with a reply */
    rt_atom reason;       /* RT_GS_STOP, RT_GS_ERROR */
    int64_t timeout;      /* RT_INFINITY (default) or ms until handle_info(timeout) */
    bool hibernate;
    struct rt_msg *cont; /* {continue,C}: handled by handle_continue next */
    struct rt_msg *msg;  /* the message being handled (see rt_gs_take) */
};

struct rt_gen_server_ops {
    const char *name; /* module name for get_status and the initial call */
    /* Required. r->state is NULL on entry; set r->state and use rt_gs_ok /
     * rt_gs_ignore / rt_gs_stop / rt_gs_error (default: ok). */
    void (*init)(void *arg, struct rt_gs_result *r);
    /* The request `req` has the caller's type; default result noreply. */
    void (*handle_call)(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                        struct rt_gs_result *r);
    void (*handle_cast)(struct rt_msg *msg, void *state, struct rt_gs_result *r);
    /* Any other message, including RT_MSG_EXIT/RT_MSG_DOWN and the timeout
     * (type RT_MSG_GS_TIMEOUT). If NULL, the message is logged and dropped. */
    void (*handle_info)(struct rt_msg *msg, void *state, struct rt_gs_result *r);
    void (*handle_continue)(struct rt_msg *cont, void *state, struct rt_gs_result *r);
    /* Called when a callback stops the server, when the parent's exit
     * arrives while trapping exits, and on rt_proc_stop/rt_sys_terminate. */
    void (*terminate)(rt_atom reason, void *state);
    /* sys change_code: 0 with *new_state, or -errno (state unchanged). */
    int (*code_change)(const char *old_vsn, void *state, const void *extra, void **new_state);
    /* A one-line text form of the state (sys.h): for get_status (and the
     * admin API) and for the crash report when the server terminates with
     * a reason other than normal/shutdown/shutdown:* (formatted just before
     * terminate runs). Leave secrets out here. Default "<name> state=%p". */
    rt_format_status_fn format_status;
};

/* A result with nothing chosen yet: {ok, State} with no timeout. */
#define RT_GS_RESULT_INIT                                                                          \
    {                                                                                              \
        .kind = RT_GS_OK, .timeout = RT_INFINITY                                                   \
    }

/* Result helpers, for use inside callbacks. A reply message passes to the
 * loop. */
void rt_gs_ok(struct rt_gs_result *r);
void rt_gs_noreply(struct rt_gs_result *r);
void rt_gs_reply(struct rt_gs_result *r, struct rt_msg *reply);
void rt_gs_stop(struct rt_gs_result *r, rt_atom reason);
void rt_gs_stop_reply(struct rt_gs_result *r, rt_atom reason, struct rt_msg *reply);
void rt_gs_ignore(struct rt_gs_result *r);
void rt_gs_error(struct rt_gs_result *r, rt_atom reason);
void rt_gs_timeout(struct rt_gs_result *r, int64_t ms);
void rt_gs_hibernate(struct rt_gs_result *r);
/* {continue, C}: `cont` passes to the loop (NULL allowed: an empty message). */
void rt_gs_continue(struct rt_gs_result *r, struct rt_msg *cont);
/* Takes the message being handled out of the loop's hands: the callback now
 * owns it. */
struct rt_msg *rt_gs_take(struct rt_gs_result *r);

/* Process context; blocks until init has returned (see rt_proc_start_link
 * for the return codes: 0 + *out, RT_IGNORE, -ECHILD + *reason for
 * {stop,R}/{error,R}, -EEXIST + *out = existing pid, -ETIMEDOUT).
 * `arg` is passed to init as is. opts may be NULL. */
int rt_gen_server_start_link(const struct rt_gen_server_ops *ops, void *arg,
                             const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason);
int rt_gen_server_start(const struct rt_gen_server_ops *ops, void *arg,
                        const struct rt_start_opts *opts, rt_pid *out, rt_atom *reason);

/* Process context; blocks up to timeout_ms (RT_INFINITY allowed).
 * `req` (type < RT_GS_TYPE_LIMIT) passes to the server whatever happens.
 * Returns 0 with *reply (the caller frees it; NULL if the server replied
 * with NULL; `reply` may be NULL to drop the reply);
 *   -ETIMEDOUT   no reply in time; a later reply is dropped, never queued;
 *   -ESRCH       the server is not alive (*reason = noproc);
 *   -ECONNRESET  the server exited before replying, *reason = its reason;
 *   -EDEADLK     the caller is the server (*reason = calling_self).
 * reason may be NULL. Unlike OTP these are returned, not raised. */
int rt_gen_server_call(rt_pid server, struct rt_msg *req, int64_t timeout_ms, struct rt_msg **reply,
                       rt_atom *reason);
/* As above, to a registered name (-ESRCH when the name is not registered). */
int rt_gen_server_call_name(const char *name, struct rt_msg *req, int64_t timeout_ms,
                            struct rt_msg **reply, rt_atom *reason);

/* Any thread; never blocks. Always 0, even when the target does not exist
 * (OTP's cast returns ok). `msg` passes to the server. */
int rt_gen_server_cast(rt_pid server, struct rt_msg *msg);
int rt_gen_server_cast_name(const char *name, struct rt_msg *msg);

/* Any thread. Replies to a caller (gen_server:reply); `reply` passes to the
 * caller, or is freed if the caller no longer waits. */
int rt_gen_server_reply(const struct rt_gs_from *from, struct rt_msg *reply);

/* Process context; does not return. gen_server:enter_loop: the caller, a
 * process started with rt_proc_start[_link] that has done its own
 * initialisation (and acked its starter), becomes a gen_server running
 * `ops` on `state`; ops->init is not used. `opts` may be NULL; of it apply
 * `name` (OTP's ServerName: the caller must already be registered under
 * it), hibernate_after, debug and log_size. `how` is NULL, or a result
 * from RT_GS_RESULT_INIT whose timeout, hibernate and continue (set with
 * rt_gs_timeout / rt_gs_hibernate / rt_gs_continue) are the loop's first,
 * as init's would be (OTP's Timeout | hibernate | {continue, C}); its
 * continue message passes to the loop. The parent is the process that
 * started the caller. The behaviour takes the caller's user pointer
 * (rt_set_user). The caller exits instead, as OTP's:
 *   process_not_registered               opts->name is not the caller's name;
 *   process_was_not_started_by_proc_lib  spawned some other way. */
_Noreturn void rt_gen_server_enter_loop(const struct rt_gen_server_ops *ops,
                                        const struct rt_start_opts *opts, void *state,
                                        const struct rt_gs_result *how);

/* ---- asynchronous calls (OTP 23+ send_request) ----------------------------------
 * A request is a call whose reply the caller collects later, so that one
 * process can have calls to many servers in flight at once. The request
 * id holds a monitor on the server and an alias for the reply, as a call
 * does, until the response has been collected (wait, receive or check) or
 * the request abandoned (receive_response timing out). Request ids belong
 * to the process that made them: only it may use them. The waits look only
 * at what arrived after the request was sent (a receive mark), so they
 * cost the same whatever the caller has queued. */

/* OTP's request_id(): a plain value the caller keeps (copy it freely
 * until it is done). */
struct rt_gs_request {
    rt_pid server;
    rt_ref mref;  /* monitor on the server: its DOWN is the error response */
    rt_ref alias; /* where the reply comes */
    rt_mark mark; /* taken before sending */
    bool done;    /* the response was collected, or the request abandoned */
};

/* Process context; never blocks. Sends `req` (type < RT_GS_TYPE_LIMIT; it
 * passes to the server whatever happens) as a call. A server that is not
 * alive is not an error here: its response is the error -ESRCH (noproc).
 * 0 and *out; -EINVAL (bad type or NULL), -EAGAIN (the caller already has
 * RT_MAX_ALIASES aliases active), -ENOMEM. The _name form sends to the
 * process registered under `name` now; an unregistered name gives a
 * request whose response is -ESRCH (as OTP's send_request fakes a DOWN). */
int rt_gen_server_send_request(rt_pid server, struct rt_msg *req, struct rt_gs_request *out);
int rt_gen_server_send_request_name(const char *name, struct rt_msg *req,
                                    struct rt_gs_request *out);

/* Process context; blocks up to timeout_ms (0 polls; RT_INFINITY).
 * gen_server:wait_response. The response:
 *   0            the reply: *reply (caller frees; NULL for a NULL reply;
 *                `reply` may be NULL to drop it) ({reply, Reply});
 *   -ESRCH       the server was not alive (*reason = noproc);
 *   -ECONNRESET  the server exited first, *reason = its reason
 *                ({error, {Reason, ServerRef}}).
 * After a response the request is done. On -ETIMEDOUT it stays valid, its
 * monitor and alias kept, as OTP's: wait again, or abandon it with
 * rt_gen_server_receive_response(req, 0, ...). -EINVAL: already done. */
int rt_gen_server_wait_response(struct rt_gs_request *req, int64_t timeout_ms,
                                struct rt_msg **reply, rt_atom *reason);
/* As wait_response, but a timeout abandons the request (OTP's
 * receive_response): the alias is deactivated and the monitor removed, so a
 * reply sent later never reaches the mailbox; one that raced in before is
 * returned (0). */
int rt_gen_server_receive_response(struct rt_gs_request *req, int64_t timeout_ms,
                                   struct rt_msg **reply, rt_atom *reason);
/* Process context; never blocks. gen_server:check_response: is `m`, a
 * message the caller received, the response to `req`? -ENOMSG (OTP's
 * no_reply): no, and `m` is still the caller's; otherwise `m` is consumed
 * and the result is wait_response's. */
int rt_gen_server_check_response(struct rt_msg *m, struct rt_gs_request *req, struct rt_msg **reply,
                                 rt_atom *reason);

/* Request id collections (OTP 25's reqids_*): wait for whichever of many
 * requests answers first. Memory is the caller process's (rt_alloc).
 * Labels are the caller's (OTP's Label term). */
struct rt_gs_reqids {
    struct rt_gs_reqid *v; /* sorted by request (refs grow with time) */
    size_t n, cap;
};
struct rt_gs_reqid {
    struct rt_gs_request req;
    uint64_t label;
};
/* Process context. reqids_new / reqids_size. */
void rt_gs_reqids_init(struct rt_gs_reqids *c);
size_t rt_gs_reqids_size(const struct rt_gs_reqids *c);
/* Process context. reqids_add: -EEXIST if `req` is in already (OTP's
 * badarg), -EINVAL if it is done, -ENOMEM. The collection keeps its own
 * copy: from then on, collect the response through the collection only. */
int rt_gs_reqids_add(struct rt_gs_reqids *c, const struct rt_gs_request *req, uint64_t label);
/* Process context. Abandons every request still in `c` (as
 * receive_response's timeout does) and frees the collection. */
void rt_gs_reqids_done(struct rt_gs_reqids *c);
/* wait/receive/check_response on a collection: the response of whichever
 * request answers first, with its label in *label; with `remove` the
 * request leaves the collection (OTP's Delete = true), else it stays,
 * done. -ENOENT when the collection holds no request waiting (OTP's
 * no_request); otherwise the results of the single-request calls
 * (receive_any's timeout abandons every request in the collection;
 * check_any gives -ENOMSG for a message of none of them). */
int rt_gen_server_wait_response_any(struct rt_gs_reqids *c, int64_t timeout_ms, bool remove,
                                    struct rt_msg **reply, rt_atom *reason, uint64_t *label);
int rt_gen_server_receive_response_any(struct rt_gs_reqids *c, int64_t timeout_ms, bool remove,
                                       struct rt_msg **reply, rt_atom *reason, uint64_t *label);
int rt_gen_server_check_response_any(struct rt_msg *m, struct rt_gs_reqids *c, bool remove,
                                     struct rt_msg **reply, rt_atom *reason, uint64_t *label);

/* Process context; blocks. gen_server:stop: terminate runs with `reason`
 * (use RT_NORMAL for the default). See rt_proc_stop for return codes. */
int rt_gen_server_stop(rt_pid server, rt_atom reason, int64_t timeout_ms, rt_atom *exit_reason);

#ifdef __cplusplus
}
#endif
#endif
