/*
 * msg.c: messages, the inbox, signal handling and receive.
 *
 * The inbox is Vyukov's intrusive MPSC queue: a producer swaps itself in as
 * the tail and then links the previous tail to it; the owner pops from the
 * head. The stub node lives in the control block. Producers announce
 * themselves in `senders` so that the reaper, after setting `closed`, can
 * wait for in-flight pushes before its final drain.
 *
 * The owner drains the inbox into its private queue, handling signals
 * (link, unlink, exit, monitor, demonitor) in arrival order, dropping DOWNs
 * of monitors it removed and aliased replies whose alias is inactive.
 * A monitor by name is a monitor of the pid the name had, plus a record on
 * the monitoring side (the DOWN it will deliver, carrying the name): the
 * monitored process never learns of names, and the monitor follows it
 * whatever becomes of the name.
 * Draining numbers what it yields (seq_next), so a receive mark is just
 * the last number handed out: a selective receive from a mark starts at
 * the first message numbered after it.
 *
 * A received message leaves the private queue for the receiver's `held`
 * list (the same next/prev links, its holder set to the receiver), so that
 * a process ended between a receive and the free loses no message: the
 * reaper frees what is held. Freeing, sending or detaching a message takes
 * it off that list first; all of these run in the holder's own process, so
 * the list needs no lock.
 */
#include "rt_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Atomic int64_t rt__msgs_live;

/* The stub is only ever used through its `next` field, which is the first
 * member of struct rt_msg, so a pointer-sized slot stands in for it. */
_Static_assert(offsetof(struct rt_msg, next) == 0, "the inbox stub relies on next coming first");
static struct rt_msg *stub_of(struct rt_proc *p)
{
    return (struct rt_msg *)(void *)&p->stub_next;
}

void rt__inbox_init(struct rt_proc *p)
{
    struct rt_msg *stub = stub_of(p);
    stub->next = NULL;
    p->in_head = stub;
    atomic_store_explicit(&p->in_tail, stub, memory_order_relaxed);
    atomic_store_explicit(&p->inbox_n, 0, memory_order_relaxed);
    atomic_store_explicit(&p->inbox_sigs, 0, memory_order_relaxed);
}

static void inbox_push(struct rt_proc *p, struct rt_msg *m)
{
    __atomic_store_n(&m->next, NULL, __ATOMIC_RELAXED);
    /* acq_rel: orders our message's contents before the link below is seen,
     * and serialises producers on the tail. */
    struct rt_msg *prev = atomic_exchange_explicit(&p->in_tail, m, memory_order_acq_rel);
    /* Release: the consumer that reads prev->next sees m's contents. */
    __atomic_store_n(&prev->next, m, __ATOMIC_RELEASE);
}

static struct rt_msg *inbox_pop(struct rt_proc *p)
{
    struct rt_msg *stub = stub_of(p);
    struct rt_msg *head = p->in_head;
    /* Acquire pairs with the producer's release store of ->next. */
    struct rt_msg *next = __atomic_load_n(&head->next, __ATOMIC_ACQUIRE);
    if (head == stub) {
        if (!next)
            return NULL;
        p->in_head = next;
        head = next;
        next = __atomic_load_n(&head->next, __ATOMIC_ACQUIRE);
    }
    if (next) {
        p->in_head = next;
        return head;
    }
    if (head != atomic_load_explicit(&p->in_tail, memory_order_acquire))
        return NULL; /* a producer is between its swap and its link */
    inbox_push(p, stub);
    next = __atomic_load_n(&head->next, __ATOMIC_ACQUIRE);
    if (next) {
        p->in_head = next;
        return head;
    }
    return NULL;
}

struct rt_msg *rt_msg_new(uint32_t type, size_t size)
{
    if (size > UINT32_MAX)
        return NULL;
    struct rt_msg *m = rt__zalloc(sizeof(*m) + size);
    if (!m)
        return NULL;
    m->type = type;
    m->size = (uint32_t)size;
    /* Relaxed: a statistic (leak checks read it after all threads joined). */
    atomic_fetch_add_explicit(&rt__msgs_live, 1, memory_order_relaxed);
    return m;
}

struct rt_msg *rt_msg_copy(uint32_t type, const void *data, size_t size)
{
    struct rt_msg *m = rt_msg_new(type, size);
    if (m && size)
        memcpy(m->data, data, size);
    return m;
}

/* Owner: keeps a message just taken from the private queue. */
static void hold(struct rt_proc *p, struct rt_msg *m)
{
    m->holder = p;
    m->prev = NULL;
    m->next = p->held;
    if (p->held)
        p->held->prev = m;
    p->held = m;
}

/* Holder: takes m (held) off the holder's list. */
static void unhold(struct rt_msg *m)
{
    struct rt_proc *p = m->holder;
    /* Another process freeing or sending a message this one holds would
     * race with this list: a programmer error (rt_msg_detach first). */
    assert(p == rt__self());
    if (m->prev)
        m->prev->next = m->next;
    else
        p->held = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->next = m->prev = NULL;
    m->holder = NULL;
}

void rt_msg_detach(struct rt_msg *m)
{
    if (m && m->holder)
        unhold(m);
}

void rt__held_release_all(struct rt_proc *p)
{
    struct rt_msg *m;
    while ((m = p->held)) {
        p->held = m->next;
        m->holder = NULL;
        rt_msg_free(m);
    }
}

void rt_msg_free(struct rt_msg *m)
{
    if (!m)
        return;
    if (m->holder)
        unhold(m);
    atomic_fetch_sub_explicit(&rt__msgs_live, 1, memory_order_relaxed);
    free(m);
}

void rt__msg_discard(struct rt_msg *m)
{
    if (!m)
        return;
    if (m->dtor)
        m->dtor(m);
    rt_msg_free(m);
}

int rt__push(rt_pid pid, struct rt_msg *m)
{
    struct rt_proc *p = rt__lookup(pid);
    if (!p)
        return -ESRCH;
    /* seq_cst: the announcement must be visible to a reaper before we read
     * `closed` (Dekker-style with the reaper's store of closed / load of
     * senders). */
    atomic_fetch_add_explicit(&p->senders, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->pid, memory_order_seq_cst) != pid ||
        atomic_load_explicit(&p->closed, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&p->senders, 1, memory_order_seq_cst);
        return -ESRCH;
    }
    bool sig = m->type >= RT__SIG_LINK && m->type <= RT__SIG_LAST;
    if (sig) /* Relaxed: an introspection figure. */
        atomic_fetch_add_explicit(&p->inbox_sigs, 1, memory_order_relaxed);
    inbox_push(p, m);
    /* seq_cst: pairs with the parking scheduler's store of WAITING / load of
     * inbox_n, so either it sees the message or we see WAITING. */
    atomic_fetch_add_explicit(&p->inbox_n, 1, memory_order_seq_cst);
    rt__wake(p);
    atomic_fetch_sub_explicit(&p->senders, 1, memory_order_seq_cst);
    return 0;
}

int rt_send(rt_pid to, struct rt_msg *m)
{
    if (!m)
        return -EINVAL;
    if (m->holder) /* forwarded as received: now the receiver's */
        unhold(m);
    struct rt_proc *self = rt__self();
    m->from = self ? atomic_load_explicit(&self->pid, memory_order_relaxed) : 0;
    m->flags = 0;
    int rc = rt__push(to, m);
    if (rc < 0)
        rt__msg_discard(m);
    if (self)
        rt__charge(self, 1);
    return rc;
}

int rt_send_name(const char *name, struct rt_msg *m)
{
    rt_pid pid = name ? rt_whereis(name) : 0;
    if (!pid) {
        rt__msg_discard(m);
        return -ESRCH;
    }
    return rt_send(pid, m);
}

int rt_send_alias(rt_pid to, rt_ref alias, struct rt_msg *m)
{
    if (!m)
        return -EINVAL;
    if (m->holder)
        unhold(m);
    struct rt_proc *self = rt__self();
    m->from = self ? atomic_load_explicit(&self->pid, memory_order_relaxed) : 0;
    m->ref = alias;
    m->flags = RT__F_ALIASED;
    int rc = rt__push(to, m);
    if (rc < 0)
        rt__msg_discard(m);
    if (self)
        rt__charge(self, 1);
    return rc;
}

/* Index of the first active alias ≥ ref (binary search: kept sorted). */
static uint32_t alias_lower(const struct rt_proc *p, rt_ref ref)
{
    uint32_t lo = 0, hi = p->naliases;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->aliases[mid] < ref)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

rt_ref rt_alias(void)
{
    struct rt_proc *p = rt__self();
    if (!p || p->naliases >= RT_MAX_ALIASES)
        return 0;
    if (!p->aliases || p->naliases == p->alias_cap) {
        uint32_t cap = p->aliases ? p->alias_cap * 2 : 16;
        rt_ref *n = realloc(p->aliases, cap * sizeof(rt_ref));
        if (!n)
            return 0;
        p->aliases = n;
        p->alias_cap = cap;
    }
    /* Newer than every alias this process made before: appending keeps the
     * array sorted. */
    rt_ref ref = rt_make_ref();
    p->aliases[p->naliases++] = ref;
    return ref;
}

void rt_unalias(rt_ref alias)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return;
    /* Replies already sent stay: move them into the private queue while the
     * alias is still active. */
    rt__drain(p);
    if (!p->aliases)
        return;
    uint32_t i = alias_lower(p, alias);
    if (i < p->naliases && p->aliases[i] == alias) {
        memmove(&p->aliases[i], &p->aliases[i + 1], (p->naliases - i - 1) * sizeof(rt_ref));
        p->naliases--;
    }
}

static bool alias_active(struct rt_proc *p, rt_ref ref)
{
    if (!p->aliases)
        return false;
    uint32_t i = alias_lower(p, ref);
    return i < p->naliases && p->aliases[i] == ref;
}

/* ---- monitors by name ----------------------------------------------------------- */

rt_ref rt_monitor_name(const char *name)
{
    struct rt_proc *p = rt__self();
    size_t len = name ? strlen(name) : 0;
    if (!p || len == 0 || len >= 64)
        return 0;
    /* The DOWN is made now so that delivering it later cannot fail. */
    struct rt_msg *down = rt_msg_copy(RT_MSG_DOWN, name, len + 1);
    if (!down)
        return 0;
    /* The process holding the name now: rt_monitor of pid 0 (unregistered)
     * queues a noproc DOWN at once, as for a dead process. Nothing drains
     * this process's inbox before the record is in place below, so the
     * DOWN cannot be handled without it. */
    rt_pid pid = rt_whereis(name);
    rt_ref ref = rt_monitor(pid);
    if (!ref) {
        rt_msg_free(down);
        return 0;
    }
    down->ref = ref;
    down->next = p->name_mons;
    p->name_mons = down;
    return ref;
}

/* Unlinks and returns the name record of monitor `ref`, or NULL. */
static struct rt_msg *name_mon_take(struct rt_proc *p, rt_ref ref)
{
    for (struct rt_msg **pp = &p->name_mons; *pp; pp = &(*pp)->next) {
        if ((*pp)->ref == ref) {
            struct rt_msg *m = *pp;
            *pp = m->next;
            m->next = NULL;
            return m;
        }
    }
    return NULL;
}

void rt__name_mon_drop(struct rt_proc *p, rt_ref ref)
{
    if (p->name_mons)
        rt_msg_free(name_mon_take(p, ref));
}

const char *rt_down_name(const struct rt_msg *down)
{
    if (!down || down->type != RT_MSG_DOWN || down->size == 0 || down->data[down->size - 1] != 0)
        return NULL;
    return (const char *)down->data;
}

static void enqueue_private(struct rt_proc *p, struct rt_msg *m)
{
    m->seq = (uint32_t)p->seq_next++;
    m->next = NULL;
    m->prev = p->q_tail;
    if (p->q_tail)
        p->q_tail->next = m;
    else
        p->q_head = m;
    p->q_tail = m;
    RT__RELAXED_ADD(&p->q_len, 1);
}

static void unlink_private(struct rt_proc *p, struct rt_msg *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        p->q_head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        p->q_tail = m->prev;
    m->next = m->prev = NULL;
    RT__RELAXED_ADD(&p->q_len, -1);
}

/* An exit signal reached a live process: the rules of Erlang's exit signals. */
static void handle_exit_signal(struct rt_proc *p, struct rt_msg *m)
{
    rt_pid me = atomic_load_explicit(&p->pid, memory_order_relaxed);
    rt_pid from = m->from;
    rt_atom reason = (rt_atom)m->u64;
    bool via_link = m->ref == 1;
    if (via_link) {
        /* An exit from a link we already removed is dropped. */
        if (!rt__links_del(p, from)) {
            rt_msg_free(m);
            return;
        }
    }
    if (!via_link && reason == RT_KILL) {
        rt_msg_free(m);
        rt__die(p, RT_KILLED); /* untrappable */
    }
    if (reason == RT_NORMAL && from != me && !RT__GET(&p->trap_exit)) {
        rt_msg_free(m);
        return;
    }
    if (RT__GET(&p->trap_exit)) {
        m->type = RT_MSG_EXIT;
        m->ref = 0;
        enqueue_private(p, m);
        return;
    }
    rt_msg_free(m);
    rt__die(p, reason);
}

static void handle(struct rt_proc *p, struct rt_msg *m)
{
    switch (m->type) {
    case RT__SIG_LINK:
        rt__links_add(p, m->from);
        rt_msg_free(m);
        return;
    case RT__SIG_UNLINK:
        rt__links_del(p, m->from);
        rt_msg_free(m);
        return;
    case RT__SIG_EXIT:
        handle_exit_signal(p, m);
        return;
    case RT__SIG_LIMIT: {
        rt_atom reason = (rt_atom)m->u64;
        rt_msg_free(m);
        if (!p->limit_hit) /* the first cap it went over is its reason */
            p->limit_hit = reason;
        rt__die(p, p->limit_hit); /* untrappable, as a kill */
    }
    case RT__SIG_MONITOR:
        rt__mon_add(p, true, m->ref, m->from);
        rt_msg_free(m);
        return;
    case RT__SIG_DEMONITOR:
        rt__mon_del(p, true, m->ref, NULL);
        rt_msg_free(m);
        return;
    case RT_MSG_DOWN:
        /* Only a monitor we still hold delivers its DOWN, once. */
        if (!rt__mon_del(p, false, m->ref, NULL)) {
            rt_msg_free(m);
            return;
        }
        if (p->name_mons) {
            /* A monitor by name: the DOWN made for it carries the name. */
            struct rt_msg *named = name_mon_take(p, m->ref);
            if (named) {
                named->from = m->from;
                named->u64 = m->u64;
                rt_msg_free(m);
                m = named;
            }
        }
        break;
    default:
        if ((m->flags & RT__F_ALIASED) && !alias_active(p, m->ref)) {
            rt__msg_discard(m);
            return;
        }
        break;
    }
    enqueue_private(p, m);
}

void rt__drain(struct rt_proc *p)
{
    struct rt_msg *m;
    while (atomic_load_explicit(&p->inbox_n, memory_order_acquire) > 0 && (m = inbox_pop(p))) {
        /* Relaxed: the count is only a hint for the wake-up check, which
         * re-reads it with seq_cst. */
        atomic_fetch_sub_explicit(&p->inbox_n, 1, memory_order_relaxed);
        if (m->type >= RT__SIG_LINK && m->type <= RT__SIG_LAST)
            atomic_fetch_sub_explicit(&p->inbox_sigs, 1, memory_order_relaxed);
        handle(p, m);
    }
}

void rt__drain_dead(struct rt_proc *p)
{
    rt_pid me = atomic_load_explicit(&p->pid, memory_order_relaxed);
    rt_atom reason = p->exit_reason;
    struct rt_msg *m;
    for (;;) {
        m = inbox_pop(p);
        if (!m) {
            if (atomic_load_explicit(&p->inbox_n, memory_order_acquire) > 0)
                continue; /* a push is completing its link */
            break;
        }
        atomic_fetch_sub_explicit(&p->inbox_n, 1, memory_order_relaxed);
        switch (m->type) {
        case RT__SIG_LINK:
            /* Linked while dying: the linker gets our exit reason. */
            rt__links_add(p, m->from);
            rt_msg_free(m);
            break;
        case RT__SIG_UNLINK:
            rt__links_del(p, m->from);
            rt_msg_free(m);
            break;
        case RT__SIG_MONITOR: {
            rt_pid watcher = m->from;
            m->type = RT_MSG_DOWN;
            m->from = me;
            m->u64 = reason;
            m->flags = 0;
            if (rt__push(watcher, m) < 0)
                rt_msg_free(m);
            break;
        }
        case RT__SIG_DEMONITOR:
            rt__mon_del(p, true, m->ref, NULL);
            rt_msg_free(m);
            break;
        default:
            rt__msg_discard(m);
            break;
        }
    }
    while ((m = p->q_head)) {
        unlink_private(p, m);
        rt__msg_discard(m);
    }
    while ((m = p->name_mons)) {
        p->name_mons = m->next;
        rt_msg_free(m);
    }
}

size_t rt_mailbox_len(void)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return 0;
    rt__drain(p);
    return RT__GET(&p->q_len);
}

/* ---- receive ------------------------------------------------------------------ */

static int64_t deadline_of(int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    return (int64_t)rt_now_ms() + timeout_ms;
}

/* Waits for something new in the inbox or the deadline. Returns false once
 * the deadline has passed. */
static bool wait_more(struct rt_proc *p, int64_t deadline)
{
    if (deadline >= 0 && (int64_t)rt_now_ms() >= deadline)
        return false;
    if (atomic_load_explicit(&p->inbox_n, memory_order_acquire) > 0)
        return true;
    if (deadline >= 0)
        rt__wait_timer_arm(p, (uint64_t)deadline);
    RT__SET(&p->status_hint, RT_STATUS_WAITING);
    rt__park(p);
    if (deadline >= 0)
        rt__wait_timer_cancel(p);
    return true;
}

static struct rt_msg *take(struct rt_proc *p, struct rt_msg *m)
{
    /* Charged while m is still queued: the charge may end the process (an
     * exit signal handled after a yield, or its stack running out), and
     * the reaper frees a queued message, where an unlinked one would be
     * lost. A yield only appends to the queue, so m stays where it is. */
    rt__charge(p, 1);
    unlink_private(p, m);
    hold(p, m);
    p->last_msg_type = m->type;
    return m;
}

struct rt_msg *rt_receive(int64_t timeout_ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return NULL;
    int64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
        rt__drain(p);
        if (p->q_head)
            return take(p, p->q_head);
        if (timeout_ms == 0 || !wait_more(p, deadline))
            return NULL;
    }
}

struct rt_msg *rt_receive_match(rt_match_fn match, void *ctx, int64_t timeout_ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return NULL;
    int64_t deadline = deadline_of(timeout_ms);
    struct rt_msg *scanned = NULL; /* last message already rejected */
    for (;;) {
        atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
        rt__drain(p);
        struct rt_msg *m = scanned ? scanned->next : p->q_head;
        for (; m; m = m->next) {
            if (match(m, ctx))
                return take(p, m);
            scanned = m;
        }
        if (timeout_ms == 0 || !wait_more(p, deadline))
            return NULL;
    }
}

rt_mark rt_receive_mark(void)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return 0;
    /* A message still in the inbox arrived before the mark but would be
     * numbered after it: drain first, so that the mark leaves it behind. */
    rt__drain(p);
    return p->seq_next - 1;
}

/* The first queued message that arrived after `mark`, or NULL. */
static struct rt_msg *first_after(struct rt_proc *p, rt_mark mark)
{
    uint64_t last = p->seq_next - 1;
    /* Messages carry 32-bit numbers: past 2^31 messages since the mark (or
     * for a mark that is not ours) they cannot be compared with it. */
    if (mark == 0 || mark > last || last - mark >= ((uint64_t)1 << 31))
        return p->q_head;
    uint32_t m32 = (uint32_t)mark;
    struct rt_msg *first = NULL;
    for (struct rt_msg *m = p->q_tail; m && (int32_t)(m->seq - m32) > 0; m = m->prev)
        first = m;
    return first;
}

struct rt_msg *rt_receive_match_since(rt_mark mark, rt_match_fn match, void *ctx,
                                      int64_t timeout_ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return NULL;
    int64_t deadline = deadline_of(timeout_ms);
    struct rt_msg *scanned = NULL; /* last message already rejected */
    for (;;) {
        atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
        rt__drain(p);
        struct rt_msg *m = scanned ? scanned->next : first_after(p, mark);
        for (; m; m = m->next) {
            if (match(m, ctx))
                return take(p, m);
            scanned = m;
        }
        if (timeout_ms == 0 || !wait_more(p, deadline))
            return NULL;
    }
}

struct rt_msg *rt_receive_ref(rt_ref ref, int64_t timeout_ms)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return NULL;
    int64_t deadline = deadline_of(timeout_ms);
    bool marked = ref == p->mark_ref;
    uint32_t mark = p->mark_seq;
    for (;;) {
        atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
        rt__drain(p);
        struct rt_msg *found = NULL;
        if (marked) {
            /* Only what arrived after the ref was made can carry it: walk
             * back from the newest message to the mark. */
            for (struct rt_msg *m = p->q_tail; m && (int32_t)(m->seq - mark) > 0; m = m->prev)
                if (m->ref == ref)
                    found = m;
        } else {
            for (struct rt_msg *m = p->q_head; m && !found; m = m->next)
                if (m->ref == ref)
                    found = m;
        }
        if (found)
            return take(p, found);
        if (timeout_ms == 0 || !wait_more(p, deadline))
            return NULL;
    }
}
