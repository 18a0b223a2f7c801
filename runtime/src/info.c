/*
 * info.c: introspection — a description of one process, a walk over all of
 * them, and the system's figures. Each process is described under its
 * info_lock and re-checked against its pid, so a description is never a mix
 * of two incarnations of a slot. Cheap enough to call while serving.
 */
#include "rt_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *rt_status_name(enum rt_status s)
{
    static const char *const names[] = {"runnable", "running", "waiting", "hibernating", "exiting"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static int describe(struct rt_proc *p, rt_pid pid, struct rt_proc_info *o)
{
    memset(o, 0, sizeof(*o));
    rt__spin_lock(&p->info_lock);
    if (atomic_load_explicit(&p->pid, memory_order_acquire) != pid) {
        rt__spin_unlock(&p->info_lock);
        return -ESRCH;
    }
    o->pid = pid;
    o->parent = p->parent;
    if (p->name)
        snprintf(o->name, sizeof o->name, "%s", p->name);
    if (p->initial_call)
        snprintf(o->initial_call, sizeof o->initial_call, "%s", p->initial_call);
    if (p->state_name)
        snprintf(o->state, sizeof o->state, "%s", p->state_name);
    if (p->detail)
        snprintf(o->detail, sizeof o->detail, "%s", p->detail->text);
    else
        o->detail[0] = 0;
    o->kind = RT__GET(&p->kind);
    int st = atomic_load_explicit(&p->state, memory_order_relaxed);
    switch (st) {
    case RT__RUNNING:
        o->status = RT_STATUS_RUNNING;
        break;
    case RT__RUNNABLE:
        o->status = RT_STATUS_RUNNABLE;
        break;
    case RT__WAITING:
        o->status = RT__GET(&p->status_hint) == RT_STATUS_HIBERNATING ? RT_STATUS_HIBERNATING
                                                                      : RT_STATUS_WAITING;
        break;
    default:
        o->status = RT_STATUS_EXITING;
        break;
    }
    /* Messages only: link and monitor signals on their way are not mail. */
    int64_t in = atomic_load_explicit(&p->inbox_n, memory_order_relaxed) -
                 atomic_load_explicit(&p->inbox_sigs, memory_order_relaxed);
    o->mailbox_len = RT__GET(&p->q_len) + (in > 0 ? (size_t)in : 0);
    o->reductions = atomic_load_explicit(&p->reductions, memory_order_relaxed);
    o->memory = sizeof(*p) + RT__GET(&p->alloc_bytes) + RT__GET(&p->stack_bytes);
    if (p->rel) {
        o->links = p->rel->nlinks;
        o->monitors = p->rel->nmons;
        o->monitored = p->rel->nwatch;
        /* A link kept in the lists' block is counted with it. */
        size_t caplinks = p->rel->links == &p->rel->link_one ? 0 : p->rel->caplinks;
        o->memory += sizeof(*p->rel) + caplinks * sizeof(rt_pid) +
                     (p->rel->capmons + p->rel->capwatch) * sizeof(struct rt__mon);
    } else if (p->solo_link) {
        o->links = 1;
    }
    o->started_ms = p->started_ms;
    o->trap_exit = RT__GET(&p->trap_exit);
    rt__spin_unlock(&p->info_lock);
    return 0;
}

size_t rt__self_name(char *out, size_t cap)
{
    struct rt_proc *p = rt__self();
    size_t n = 0;
    if (p) {
        /* Under info_lock: another process may unregister the name. */
        rt__spin_lock(&p->info_lock);
        if (p->name) {
            n = strnlen(p->name, cap - 1);
            memcpy(out, p->name, n);
        }
        rt__spin_unlock(&p->info_lock);
    }
    out[n] = 0;
    return n;
}

int rt_proc_info(rt_pid pid, struct rt_proc_info *out)
{
    struct rt_proc *p = rt__lookup(pid);
    if (!p)
        return -ESRCH;
    struct rt_proc_info tmp;
    int rc = describe(p, pid, &tmp);
    if (rc == 0)
        *out = tmp;
    return rc;
}

int rt_proc_links(rt_pid pid, rt_pid *out, size_t max)
{
    struct rt_proc *p = rt__lookup(pid);
    if (!p)
        return -ESRCH;
    rt__spin_lock(&p->info_lock);
    if (atomic_load_explicit(&p->pid, memory_order_acquire) != pid) {
        rt__spin_unlock(&p->info_lock);
        return -ESRCH;
    }
    int n = 0;
    if (p->rel) {
        n = (int)p->rel->nlinks;
        for (size_t i = 0; i < p->rel->nlinks && i < max; i++)
            out[i] = p->rel->links[i];
    } else if (p->solo_link) {
        n = 1;
        if (max > 0)
            out[0] = p->solo_link;
    }
    rt__spin_unlock(&p->info_lock);
    return n;
}

struct walk {
    rt_proc_visit_fn fn;
    void *ctx;
    int stop;
};

static void visit(struct rt_proc *p, void *arg)
{
    struct walk *w = arg;
    if (w->stop)
        return;
    rt_pid pid = atomic_load_explicit(&p->pid, memory_order_acquire);
    struct rt_proc_info info;
    if (pid && describe(p, pid, &info) == 0)
        w->stop = w->fn(&info, w->ctx);
}

int rt_processes_foreach(rt_proc_visit_fn fn, void *ctx)
{
    if (!atomic_load(&rt__rt.running))
        return 0;
    struct walk w = {fn, ctx, 0};
    rt__proc_foreach_slot(visit, &w);
    return w.stop;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long size = 0, res = 0;
    int n = fscanf(f, "%lu %lu", &size, &res);
    fclose(f);
    return n == 2 ? res * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

int rt_system_info(struct rt_system_info *o)
{
    memset(o, 0, sizeof(*o));
    if (!atomic_load(&rt__rt.running))
        return -ESRCH;
    o->schedulers = rt__rt.nsched;
    for (unsigned i = 0; i < rt__rt.nsched && i < RT_MAX_SCHEDULERS; i++) {
        struct rt__sched *s = &rt__rt.sched[i];
        o->sched[i].utilisation = atomic_load(&s->util_ppm) / 1e6;
        o->sched[i].run_queue = atomic_load(&s->rq_len);
        o->sched[i].switches = atomic_load(&s->switches);
        o->sched[i].steals = atomic_load(&s->steals);
    }
    o->process_count = rt__proc_count();
    o->process_limit = rt__rt.cfg.max_processes - 1;
    o->spawned = atomic_load(&rt__rt.spawned);
    o->exited = atomic_load(&rt__rt.exited);
    int64_t ml = atomic_load(&rt__msgs_live);
    o->messages_live = ml > 0 ? (uint64_t)ml : 0;
    o->memory_rss = rss_bytes();
    o->stacks_in_use = rt__stacks_in_use();
    o->stacks_pooled = rt__stacks_pooled();
    o->memory_procs =
        o->process_count * sizeof(struct rt_proc) + o->stacks_in_use * rt__rt.cfg.stack_size;
    o->uptime_ms = rt_now_ms() - rt__rt.start_ms;
    return 0;
}
