/*
 * registry.c: registered process names. One hash table under a rwlock
 * (lookups are far more common than changes). The process's `name` points
 * at the registry's copy of the string; both change under the table's
 * write lock and the process's info_lock.
 */
#include "rt_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 1024

struct entry {
    struct entry *next;
    rt_pid pid;
    char name[];
};

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct entry *buckets[NBUCKETS];

static unsigned hash(const char *s)
{
    unsigned h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h & (NBUCKETS - 1);
}

static struct entry **find(const char *name)
{
    struct entry **pp = &buckets[hash(name)];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

int rt__register(struct rt_proc *p, rt_pid pid, const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= 64)
        return -EINVAL;
    struct entry *e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return -ENOMEM;
    memcpy(e->name, name, len + 1);
    e->pid = pid;
    int rc = 0;
    pthread_rwlock_wrlock(&lock);
    struct entry **pp = find(name);
    if (*pp) {
        rc = -EEXIST;
    } else if (p->name) {
        rc = -EBUSY;
    } else if (atomic_load_explicit(&p->pid, memory_order_acquire) != pid ||
               atomic_load_explicit(&p->closed, memory_order_acquire)) {
        rc = -ESRCH;
    } else {
        e->next = NULL;
        *pp = e;
        rt__spin_lock(&p->info_lock);
        p->name = e->name;
        rt__spin_unlock(&p->info_lock);
        e = NULL;
    }
    pthread_rwlock_unlock(&lock);
    free(e);
    return rc;
}

int rt_register(const char *name, rt_pid pid)
{
    if (!name)
        return -EINVAL;
    struct rt_proc *p = rt__lookup(pid);
    if (!p)
        return -ESRCH;
    return rt__register(p, pid, name);
}

int rt_unregister(const char *name)
{
    if (!name)
        return -EINVAL;
    pthread_rwlock_wrlock(&lock);
    struct entry **pp = find(name);
    struct entry *e = *pp;
    if (e) {
        *pp = e->next;
        struct rt_proc *p = rt__lookup(e->pid);
        if (p) {
            rt__spin_lock(&p->info_lock);
            if (p->name == e->name)
                p->name = NULL;
            rt__spin_unlock(&p->info_lock);
        }
    }
    pthread_rwlock_unlock(&lock);
    free(e);
    return e ? 0 : -ENOENT;
}

rt_pid rt_whereis(const char *name)
{
    if (!name)
        return 0;
    pthread_rwlock_rdlock(&lock);
    struct entry *e = *find(name);
    rt_pid pid = e ? e->pid : 0;
    pthread_rwlock_unlock(&lock);
    return pid;
}

void rt__unregister_proc(struct rt_proc *p)
{
    if (!p->name)
        return;
    pthread_rwlock_wrlock(&lock);
    struct entry *e = NULL;
    if (p->name) {
        struct entry **pp = find(p->name);
        e = *pp;
        if (e)
            *pp = e->next;
        rt__spin_lock(&p->info_lock);
        p->name = NULL;
        rt__spin_unlock(&p->info_lock);
    }
    pthread_rwlock_unlock(&lock);
    free(e);
}

void rt__registry_done(void)
{
    pthread_rwlock_wrlock(&lock);
    for (int i = 0; i < NBUCKETS; i++) {
        while (buckets[i]) {
            struct entry *e = buckets[i];
            buckets[i] = e->next;
            free(e);
        }
    }
    pthread_rwlock_unlock(&lock);
}
