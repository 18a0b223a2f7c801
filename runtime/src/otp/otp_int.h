/*
 * otp_int.h: internals shared by the OTP behaviours (private header).
 *
 * struct rt__sys is the sys-module state every behaviour process embeds:
 * its parent, whether it is suspended, its debug options (trace, log ring,
 * statistics). It lives in the behaviour's rt_alloc'd state, so it survives
 * hibernation, and is touched only by its own process.
 */
#ifndef RT_OTP_INT_H
#define RT_OTP_INT_H

#include "rt/proc_lib.h"
#include "rt/rt.h"
#include "rt/sys.h"

/* Hands `r` to the supervisor report handler, if one is set (log.c). */
void rt__supervisor_report(const struct rt_supervisor_report *r);
/* Any thread: is a supervisor report handler set (log.c)? A report nobody
 * takes is not built. */
bool rt__supervisor_report_wanted(void);
/* Process context: copies the caller's registered name into out (cap > 0
 * bytes, NUL-terminated; "" when it has none) and returns its length
 * (info.c). */
size_t rt__self_name(char *out, size_t cap);
/* rt_log of a line already made, at most 1,023 bytes (log.c). */
void rt__log_text(enum rt_log_level level, const char *text);
/* Tests: supervisor reports built since the program started
 * (supervisor.c). */
uint64_t rt__test_sup_reports_built(void);

/* A reply that stands for NULL (rt_gen_server_reply(from, NULL)). */
#define RT__MSG_NULL_REPLY (RT_MSG_SYSTEM + 0x2f)

enum rt__sys_op {
    RT__SYS_GET_STATE = 1,
    RT__SYS_REPLACE_STATE,
    RT__SYS_SUSPEND,
    RT__SYS_RESUME,
    RT__SYS_GET_STATUS,
    RT__SYS_STATISTICS,
    RT__SYS_TRACE,
    RT__SYS_LOG,
    RT__SYS_LOG_GET,
    RT__SYS_NO_DEBUG,
    RT__SYS_TERMINATE,
    RT__SYS_CHANGE_CODE,
    RT__SYS_INSTALL,
    RT__SYS_REMOVE,
};

/* Internal debug bit: installed debug functions are present. */
#define RT__DEBUG_FUNS 0x100u

struct rt__sys_req {
    int op;
    int flag;
    unsigned size;
    rt_atom reason;
    rt_sys_replace_fn fn;
    rt_sys_debug_fn dfn;
    char vsn[32];
    size_t arg_size;
    _Alignas(16) unsigned char arg[];
};

struct rt__sys_rep {
    int rc;
    size_t count;
    union {
        struct rt_sys_state state;
        struct rt_sys_status status;
        struct rt_sys_statistics stats;
    } u;
    _Alignas(16) unsigned char data[];
};

struct rt__sys {
    rt_pid parent;
    const char *behaviour;
    bool suspended;
    unsigned debug;
    uint64_t st_start_ms, st_reds0, st_in, st_out;
    struct rt_sys_event *log;
    unsigned log_cap, log_head, log_len;
    struct {
        rt_sys_debug_fn fn;
        void *arg; /* rt_alloc'd copy */
    } funs[RT_SYS_MAX_FUNS];
};

/* What a behaviour gives the sys handler. `self` is the behaviour's state. */
struct rt__sys_hooks {
    void (*get_state)(void *self, struct rt_sys_state *out);
    /* 0, or -errno with the state unchanged. */
    int (*replace_state)(void *self, rt_sys_replace_fn fn, void *arg);
    void (*status)(void *self, struct rt_sys_status *out);
    /* Does not return: runs terminate and exits with reason. */
    void (*terminate)(void *self, rt_atom reason);
    int (*change_code)(void *self, const char *vsn, const void *extra);
};

void rt__sys_init(struct rt__sys *sys, const char *behaviour, const struct rt_start_opts *opts);
/* Handles one RT_MSG_SYS message (takes it). May not return (terminate). */
void rt__sys_handle(struct rt__sys *sys, const struct rt__sys_hooks *h, void *self,
                    struct rt_msg *m);
/* Records a debug event (trace, log, statistics). Cheap when debug is 0. */
void rt__sys_event(struct rt__sys *sys, enum rt_sys_event_kind kind, uint32_t type, rt_pid peer,
                   int state);
/* Matches system messages and the parent's EXIT: what a suspended loop
 * receives. ctx is the struct rt__sys. */
bool rt__sys_match_suspended(const struct rt_msg *m, void *ctx);

/* The generic call: sends m (type preset) with a fresh alias as ref to `to`
 * while monitoring it; see rt_gen_server_call for the return codes. */
int rt__call(rt_pid to, struct rt_msg *m, int64_t timeout_ms, struct rt_msg **reply,
             rt_atom *reason);
/* Sends `reply` (NULL allowed) to a caller's alias. */
int rt__reply(rt_pid to, rt_ref alias, struct rt_msg *reply);
/* Waits (up to timeout) for the DOWN of monitor mref on pid; NULL-safe
 * reason out. Returns 0 or -ETIMEDOUT. */
int rt__wait_down(rt_ref mref, int64_t timeout_ms, rt_atom *reason);
/* Drops an EXIT from `pid` already queued (after an unlink). */
void rt__flush_exit(rt_pid pid, int64_t timeout_ms);
/* rt__wait_down, rt__flush_exit and rt_demonitor(mref, true), looking only
 * at what arrived after `mark` (rt_receive_mark, taken before the monitor,
 * link or spawn they are about), so that their cost does not depend on what
 * the caller has queued. */
int rt__wait_down_since(rt_mark mark, rt_ref mref, int64_t timeout_ms, rt_atom *reason);
void rt__flush_exit_since(rt_mark mark, rt_pid pid, int64_t timeout_ms);
void rt__demonitor_flush(rt_mark mark, rt_ref mref);
/* Is the caller trapping exits? */
bool rt__trapping(void);
/* Was the caller started by rt_proc_start[_link] (OTP's '$ancestors'
 * check)? */
bool rt__proc_lib_started(void);

/* A behaviour's format_status with its defaults applied: writes the text
 * form of the behaviour's state (`self` is the behaviour's own struct)
 * into buf (size bytes, NUL-terminated) and returns its length. Both sys
 * get_status and the crash report take the text from here. */
typedef size_t (*rt__state_text_fn)(const void *self, char *buf, size_t size);
/* Ends what a format_status callback wrote into buf (size > 0 bytes), n
 * being what it returned: cut to size - 1, NUL-terminated. Returns the
 * length. */
size_t rt__format_end(char *buf, size_t size, size_t n);
/* rt__state_text_fn for an rt_format_status_fn: fn's text form of
 * `state`, or "<module> state=<address>" when fn is NULL. */
size_t rt__format_state(rt_format_status_fn fn, const void *state, const char *module, char *buf,
                        size_t size);
/* Before an abnormal terminate (which may free the state): text(self)
 * goes into the crash report (rt_set_crash_state), the one report a
 * behaviour's abnormal exit writes. Nothing for normal/shutdown reasons. */
void rt__crash_state(rt_atom reason, rt__state_text_fn text, const void *self);

#endif
