/*
 * proc_lib.c: the synchronous start protocol and the call primitive that
 * every behaviour uses.
 *
 * Start: the starter makes an alias, spawns the child monitored (and linked
 * for start_link) and waits for either the ack on the alias or the DOWN of
 * its monitor. The start block is heap memory handed to the child, which
 * copies and frees it before anything else. A failing or ignored start
 * returns only once the child has exited (its DOWN was seen), so a name it
 * held is free again.
 *
 * Call: monitor + alias, send, selective receive on either ref. On timeout
 * the alias is deactivated first, so a reply that comes later is dropped by
 * the runtime; one that raced in before is flushed.
 *
 * Every wait here is for something that can only arrive after a request
 * was sent or a child spawned (a reply, an ack, a DOWN, an EXIT), so each
 * takes a receive mark first and looks only at what came after it (OTP's
 * receive marker): a call costs the same whatever the caller has queued.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "otp_int.h"
#include "rt/proc_lib.h"
#include "rt/sys.h"

struct start_block {
    rt_proc_entry entry;
    void *arg;
    rt_pid starter;
    rt_ref ack;
    struct rt_start_opts opts;
    char name[64];
};

struct ack {
    int rc;
    rt_atom reason;
};

bool rt__trapping(void)
{
    bool t = rt_trap_exit(true);
    rt_trap_exit(t);
    return t;
}

struct two_refs {
    rt_ref a, b;
};

static bool match_two_refs(const struct rt_msg *m, void *ctx)
{
    const struct two_refs *r = ctx;
    return m->ref == r->a || (m->type == RT_MSG_DOWN && m->ref == r->b);
}

static bool match_exit_from(const struct rt_msg *m, void *ctx)
{
    return m->type == RT_MSG_EXIT && m->from == *(const rt_pid *)ctx;
}

static bool match_ref(const struct rt_msg *m, void *ctx)
{
    return m->ref == *(const rt_ref *)ctx;
}

static bool match_down(const struct rt_msg *m, void *ctx)
{
    return m->type == RT_MSG_DOWN && m->ref == *(const rt_ref *)ctx;
}

void rt__flush_exit(rt_pid pid, int64_t timeout_ms)
{
    rt__flush_exit_since(0, pid, timeout_ms);
}

void rt__flush_exit_since(rt_mark mark, rt_pid pid, int64_t timeout_ms)
{
    struct rt_msg *m = rt_receive_match_since(mark, match_exit_from, &pid, timeout_ms);
    rt_msg_free(m);
}

int rt__wait_down_since(rt_mark mark, rt_ref mref, int64_t timeout_ms, rt_atom *reason)
{
    struct rt_msg *m = rt_receive_match_since(mark, match_down, &mref, timeout_ms);
    if (!m)
        return -ETIMEDOUT;
    if (reason)
        *reason = (rt_atom)m->u64;
    rt_msg_free(m);
    return 0;
}

void rt__demonitor_flush(rt_mark mark, rt_ref mref)
{
    /* A monitor still held has no DOWN in the queue (draining one removes
     * the monitor) and one still in the inbox is dropped once it is gone:
     * only an already drained DOWN needs looking for, after the mark. */
    if (rt_demonitor(mref, false) == -ENOENT)
        rt_msg_free(rt_receive_match_since(mark, match_down, &mref, 0));
}

int rt__wait_down(rt_ref mref, int64_t timeout_ms, rt_atom *reason)
{
    struct rt_msg *m = rt_receive_ref(mref, timeout_ms);
    if (!m)
        return -ETIMEDOUT;
    if (reason)
        *reason = (rt_atom)m->u64;
    rt_msg_free(m);
    return 0;
}

/* What the processes proc_lib starts carry as their library data: its
 * address, never its contents, is the mark. */
static char started_by_proc_lib;

bool rt__proc_lib_started(void)
{
    return rt_get_lib_data() == &started_by_proc_lib;
}

static void trampoline(void *p)
{
    struct start_block b = *(struct start_block *)p;
    free(p);
    rt_set_lib_data(&started_by_proc_lib);
    if (b.opts.name)
        b.opts.name = b.name;
    struct rt_proc_starter st = {.pid = b.starter, .ack = b.ack, .opts = &b.opts};
    b.entry(b.arg, &st);
}

static void send_ack(const struct rt_proc_starter *st, int rc, rt_atom reason)
{
    struct ack a = {.rc = rc, .reason = reason};
    struct rt_msg *m = rt_msg_copy(RT_MSG_ACK, &a, sizeof a);
    if (m)
        rt_send_alias(st->pid, st->ack, m);
}

void rt_proc_init_ack(const struct rt_proc_starter *st)
{
    send_ack(st, 0, RT_NORMAL);
}

void rt_proc_init_ignore(const struct rt_proc_starter *st)
{
    /* OTP unregisters the name before the ack so the starter can reuse it. */
    if (st->opts && st->opts->name)
        rt_unregister(st->opts->name);
    send_ack(st, RT_IGNORE, RT_NORMAL);
}

_Noreturn void rt_proc_init_fail(const struct rt_proc_starter *st, rt_atom reason,
                                 rt_atom exit_reason)
{
    if (st->opts && st->opts->name)
        rt_unregister(st->opts->name);
    send_ack(st, -ECHILD, reason);
    rt_exit(exit_reason);
}

/* After a failed start: the child is gone; a trapping starter also drops
 * the child's EXIT so it does not see a stray message. */
static void reap(rt_mark mark, rt_pid pid, rt_ref mref, bool link, rt_atom *down_reason)
{
    rt_atom r = RT_NORMAL;
    rt__wait_down_since(mark, mref, RT_INFINITY, &r);
    if (link && rt__trapping())
        rt__flush_exit_since(mark, pid, 1000);
    if (down_reason)
        *down_reason = r;
}

/* How long a start waits for an orphan to give up the name it needs. */
#define ORPHAN_WAIT_MS 5000
/* How far up its spawners a holder is looked at for one that is gone. */
#define ORPHAN_DEPTH 8

/* The last holder a start waited for in vain: found again, it is reported
 * at once, so that a stuck orphan costs one wait, not one per restart (a
 * restart that took a wait each time would fall out of the supervisor's
 * intensity period, and the tree would retry for ever instead of giving
 * up). Relaxed: a hint; a stale read costs at most one more wait. */
static _Atomic rt_pid orphan_stuck;

/* Whether `pid` descends from a process that is gone: one of its first
 * ORPHAN_DEPTH spawners has exited. */
static bool orphaned(rt_pid pid)
{
    for (int i = 0; i < ORPHAN_DEPTH; i++) {
        struct rt_proc_info info;
        if (rt_proc_info(pid, &info) < 0 || !info.parent)
            return false;
        if (!rt_is_alive(info.parent))
            return true;
        pid = info.parent;
    }
    return false;
}

/* When the name a start needs is held by an orphan, a live process one of
 * whose spawners is gone, waits (until deadline) for it to exit; true
 * when it did, so the spawn is tried again. An orphan holding a name is,
 * in a supervision tree, the descendant of a supervisor killed outright
 * that has not yet handled its parent's exit signal (or, trapping exits,
 * is still stopping its own children). The supervisor above restarts the
 * killed one at once, and without the wait the new incarnation's
 * children would find their names taken: each try would fail with
 * already_started and spend the restart intensity of the tree (OTP has
 * this race). A holder that is no orphan, the caller itself, the holder
 * a wait was already spent on in vain, or an orphan that outlives the
 * deadline is reported as already_started as before. */
static bool orphan_gone(rt_pid holder, uint64_t deadline)
{
    if (holder == rt_self() || holder == atomic_load_explicit(&orphan_stuck, memory_order_relaxed))
        return false;
    if (!rt_is_alive(holder))
        return true; /* gone already */
    if (!orphaned(holder))
        return false;
    uint64_t now = rt_now_ms();
    if (now >= deadline)
        return false;
    rt_mark mark = rt_receive_mark();
    rt_ref mref = rt_monitor(holder);
    if (!mref)
        return false;
    if (rt__wait_down_since(mark, mref, (int64_t)(deadline - now), NULL) == 0)
        return true;
    rt__demonitor_flush(mark, mref);
    atomic_store_explicit(&orphan_stuck, holder, memory_order_relaxed);
    return false;
}

static int do_start(rt_proc_entry entry, void *arg, const struct rt_start_opts *opts, bool link,
                    rt_pid *out, rt_atom *reason)
{
    static const struct rt_start_opts none;
    int rc;
    rt_pid pid = 0;
    rt_ref mref = 0;
    struct rt_msg *m = NULL;
    if (!opts)
        opts = &none;
    if (opts->name && strlen(opts->name) >= 64)
        return -EINVAL;
    struct start_block *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    rt_mark mark = rt_receive_mark();
    rt_ref alias = rt_alias();
    if (!alias) {
        free(b);
        return -EAGAIN;
    }
    b->entry = entry;
    b->arg = arg;
    b->starter = rt_self();
    b->ack = alias;
    b->opts = *opts;
    b->opts.monitor_ref = NULL;
    if (opts->name)
        strcpy(b->name, opts->name);
    struct rt_spawn_opts so = {
        .link = link,
        .monitor = true,
        .monitor_ref = &mref,
        .name = opts->name,
        .stack_size = opts->stack_size,
        .initial_call = opts->initial_call,
        .arg_free = free, /* the trampoline frees it; one that never runs cannot */
    };
    uint64_t orphan_deadline = 0, orphan_since = 0;
    while ((rc = rt_spawn(trampoline, b, &so, &pid)) == -EEXIST) {
        rt_pid holder = rt_whereis(opts->name);
        if (!orphan_deadline) {
            /* Within the start's own timeout, which the wait counts against. */
            int64_t wait = ORPHAN_WAIT_MS;
            if (opts->timeout_ms > 0 && opts->timeout_ms < wait)
                wait = opts->timeout_ms;
            orphan_since = rt_now_ms();
            orphan_deadline = orphan_since + (uint64_t)wait;
        }
        if (holder && orphan_gone(holder, orphan_deadline))
            continue;
        if (!holder && rt_now_ms() < orphan_deadline)
            continue; /* released in between: try again */
        free(b);
        if (out)
            *out = holder;
        if (reason)
            *reason = RT_UNDEFINED;
        goto out;
    }
    if (rc < 0) {
        free(b);
        goto out;
    }
    struct two_refs refs = {alias, mref};
    int64_t t = opts->timeout_ms > 0 ? opts->timeout_ms : RT_INFINITY;
    if (orphan_since && t > 0) { /* what waiting for an orphan took counts */
        uint64_t spent = rt_now_ms() - orphan_since;
        t = spent < (uint64_t)t ? t - (int64_t)spent : 0;
    }
    m = rt_receive_match_since(mark, match_two_refs, &refs, t);
    if (!m) {
        rt_unalias(alias);
        rt_exit_signal(pid, RT_KILL);
        if (link)
            rt_unlink(pid);
        rt__wait_down_since(mark, mref, RT_INFINITY, NULL);
        if (link)
            rt__flush_exit_since(mark, pid, 0);
        /* An ack that raced in before the alias went away. */
        rt_msg_free(rt_receive_match_since(mark, match_ref, &alias, 0));
        rc = -ETIMEDOUT;
        goto out;
    }
    if (m->type == RT_MSG_DOWN) {
        rt_atom r = (rt_atom)m->u64;
        if (link && rt__trapping())
            rt__flush_exit_since(mark, pid, 1000);
        if (reason)
            *reason = r;
        rc = -ECHILD;
        goto out;
    }
    struct ack a;
    memcpy(&a, m->data, sizeof a);
    /* Freed at once: reaping a failed child may end this process (a
     * non-trapping starter dies with it), and a message held in a local
     * would be lost with the stack. */
    rt_msg_free(m);
    m = NULL;
    if (a.rc == 0) {
        if (opts->monitor) {
            if (opts->monitor_ref)
                *opts->monitor_ref = mref;
        } else {
            rt__demonitor_flush(mark, mref);
        }
        if (out)
            *out = pid;
        rc = 0;
        goto out;
    }
    reap(mark, pid, mref, link, NULL);
    if (a.rc == RT_IGNORE) {
        rc = RT_IGNORE;
        goto out;
    }
    if (reason)
        *reason = a.reason;
    rc = -ECHILD;
out:
    rt_unalias(alias); /* harmless when already deactivated */
    rt_msg_free(m);
    return rc;
}

int rt_proc_start_link(rt_proc_entry entry, void *arg, const struct rt_start_opts *opts,
                       rt_pid *out, rt_atom *reason)
{
    return do_start(entry, arg, opts, true, out, reason);
}

int rt_proc_start(rt_proc_entry entry, void *arg, const struct rt_start_opts *opts, rt_pid *out,
                  rt_atom *reason)
{
    return do_start(entry, arg, opts, false, out, reason);
}

int rt__reply(rt_pid to, rt_ref alias, struct rt_msg *reply)
{
    if (!reply)
        reply = rt_msg_new(RT__MSG_NULL_REPLY, 0);
    if (!reply)
        return -ENOMEM;
    return rt_send_alias(to, alias, reply);
}

int rt__call(rt_pid to, struct rt_msg *m, int64_t timeout_ms, struct rt_msg **reply,
             rt_atom *reason)
{
    int rc;
    if (to == rt_self()) {
        rt_msg_free(m);
        if (reason)
            *reason = RT_CALLING_SELF;
        return -EDEADLK;
    }
    rt_mark mark = rt_receive_mark();
    rt_ref mref = rt_monitor(to);
    rt_ref alias = rt_alias();
    if (!alias) {
        rt__demonitor_flush(mark, mref);
        rt_msg_free(m);
        return -EAGAIN;
    }
    m->ref = alias;
    /* A dead target is reported by the monitor's DOWN (noproc). */
    rt_send(to, m);
    struct two_refs refs = {alias, mref};
    struct rt_msg *r = rt_receive_match_since(mark, match_two_refs, &refs, timeout_ms);
    rt_unalias(alias);
    if (!r) {
        rt__demonitor_flush(mark, mref);
        /* A reply that arrived between the timeout and the unalias. */
        rt_msg_free(rt_receive_match_since(mark, match_ref, &alias, 0));
        return -ETIMEDOUT;
    }
    if (r->type == RT_MSG_DOWN && r->ref == mref) {
        rt_atom why = (rt_atom)r->u64;
        rt_msg_free(r);
        if (reason)
            *reason = why;
        return why == RT_NOPROC ? -ESRCH : -ECONNRESET;
    }
    rt__demonitor_flush(mark, mref);
    if (r->type == RT__MSG_NULL_REPLY || !reply) {
        rt_msg_free(r);
        r = NULL;
    }
    if (reply)
        *reply = r;
    rc = 0;
    return rc;
}

int rt_proc_stop(rt_pid pid, rt_atom reason, int64_t timeout_ms, rt_atom *exit_reason)
{
    struct rt_msg *m = rt_msg_new(RT_MSG_SYS, sizeof(struct rt__sys_req));
    if (!m)
        return -ENOMEM;
    struct rt__sys_req *q = (struct rt__sys_req *)m->data;
    q->op = RT__SYS_TERMINATE;
    q->reason = reason;
    rt_mark mark = rt_receive_mark();
    rt_ref mref = rt_monitor(pid);
    rt_send(pid, m);
    rt_atom why = RT_NORMAL;
    if (rt__wait_down_since(mark, mref, timeout_ms, &why) < 0) {
        rt__demonitor_flush(mark, mref);
        return -ETIMEDOUT;
    }
    if (why == RT_NOPROC)
        return -ESRCH;
    if (why != reason) {
        if (exit_reason)
            *exit_reason = why;
        return -ECONNRESET;
    }
    return 0;
}
