/*
 * blocking.c: a small pool of OS threads for calls that cannot be made
 * non-blocking (fsync, getaddrinfo). The calling process parks meanwhile.
 * A job is shared by the caller and a worker with a reference count, and
 * the caller's reference is dropped by a deferred cleanup, so a caller
 * killed while its job runs leaks nothing and is never written to.
 */
#include "rt_int.h"

#include <errno.h>
#include <stdlib.h>

struct job {
    struct job *next;
    intptr_t (*fn)(void *);
    void *arg;
    intptr_t result;
    _Atomic int done;
    _Atomic int refs;
    rt_pid pid;
    struct rt_proc *proc;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct job *head, *tail;
static bool stopping;
static pthread_t *threads;
static unsigned nthreads;

static void job_unref(void *arg)
{
    struct job *j = arg;
    /* acq_rel: the last owner sees everything the other wrote. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1)
        free(j);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!head && !stopping)
            pthread_cond_wait(&cond, &lock);
        if (!head)
            break;
        struct job *j = head;
        head = j->next;
        if (!head)
            tail = NULL;
        pthread_mutex_unlock(&lock);
        j->result = j->fn(j->arg);
        /* Release: the result is visible to the caller that sees done. */
        atomic_store_explicit(&j->done, 1, memory_order_release);
        struct rt_proc *p = j->proc;
        if (atomic_load_explicit(&p->pid, memory_order_acquire) == j->pid) {
            atomic_store_explicit(&p->wake_pending, 1, memory_order_seq_cst);
            rt__wake(p);
        }
        job_unref(j);
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int rt__blocking_start(unsigned n)
{
    stopping = false;
    head = tail = NULL;
    threads = calloc(n, sizeof(*threads));
    if (!threads)
        return -ENOMEM;
    nthreads = n;
    for (unsigned i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    return 0;
}

void rt__blocking_stop(void)
{
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    threads = NULL;
    nthreads = 0;
}

int rt_blocking(intptr_t (*fn)(void *), void *arg, intptr_t *result)
{
    struct rt_proc *p = rt__self();
    if (!p)
        return -EPERM;
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->fn = fn;
    j->arg = arg;
    j->proc = p;
    j->pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
    atomic_store_explicit(&j->refs, 2, memory_order_relaxed);
    uint64_t d = rt_defer(job_unref, j);
    if (!d) {
        free(j);
        return -ENOMEM;
    }
    pthread_mutex_lock(&lock);
    if (tail)
        tail->next = j;
    else
        head = j;
    tail = j;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    for (;;) {
        atomic_store_explicit(&p->wake_pending, 0, memory_order_seq_cst);
        if (atomic_load_explicit(&j->done, memory_order_acquire))
            break;
        rt__park(p);
    }
    if (result)
        *result = j->result;
    rt_undefer(d, true);
    return 0;
}
