/*
 * kind.c: the table of process kinds — the runtime's own, then those an
 * application registers by name — that introspection reports.
 *
 * Invariants: ids below `count` are registered; names[i] is an atom's text,
 * so it is never freed or moved and a name read by any thread stays valid
 * after the table is reset. Registration takes `lock`; rt_kind_name and
 * rt_kind_find read the published prefix lock-free. rt_stop drops what was
 * registered (rt__kinds_reset), when no process is left to carry an id.
 */
#include "rt_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static const char *const runtime_names[RT_KIND_RUNTIME_COUNT] = {
    [RT_KIND_PROCESS] = "process", [RT_KIND_SERVER] = "server", [RT_KIND_SUPERVISOR] = "supervisor",
    [RT_KIND_STATEM] = "statem",   [RT_KIND_TASK] = "task",
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *_Atomic names[RT_KIND_MAX];
static _Atomic unsigned count;

/* The number of kinds, the runtime's own included. */
static unsigned kinds_count(void)
{
    /* Acquire pairs with the release in rt_kind_register: names[i] was
     * written before the count that makes id i valid. */
    unsigned n = atomic_load_explicit(&count, memory_order_acquire);
    return n > RT_KIND_RUNTIME_COUNT ? n : RT_KIND_RUNTIME_COUNT;
}

static const char *name_of(unsigned i)
{
    if (i < RT_KIND_RUNTIME_COUNT)
        return runtime_names[i];
    /* Relaxed: ordered by the acquire of count in kinds_count. */
    return atomic_load_explicit(&names[i], memory_order_relaxed);
}

static bool name_ok(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (n >= RT_KIND_NAME_MAX || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return n > 0;
}

int rt_kind_find(const char *name, size_t len, rt_kind *out)
{
    unsigned n = kinds_count();
    for (unsigned i = 0; i < n; i++) {
        const char *k = name_of(i);
        if (strlen(k) == len && memcmp(k, name, len) == 0) {
            *out = (rt_kind)i;
            return 0;
        }
    }
    return -ENOENT;
}

int rt_kind_register(const char *name, rt_kind *out)
{
    if (!name || !name_ok(name))
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&lock);
    rt_kind k = 0;
    if (rt_kind_find(name, strlen(name), &k) == 0)
        goto out;
    unsigned n = kinds_count();
    if (n >= RT_KIND_MAX) {
        rc = -ENOSPC;
        goto out;
    }
    /* A full atom table answers system_limit, whose text is not the name. */
    const char *text = rt_atom_name(rt_atom_intern(name));
    if (strcmp(text, name) != 0) {
        rc = -ENOSPC;
        goto out;
    }
    atomic_store_explicit(&names[n], text, memory_order_relaxed);
    /* Release: a reader that sees the new count sees the name. */
    atomic_store_explicit(&count, n + 1, memory_order_release);
    k = (rt_kind)n;
out:
    pthread_mutex_unlock(&lock);
    if (rc == 0)
        *out = k;
    return rc;
}

const char *rt_kind_name(rt_kind kind)
{
    return kind < kinds_count() ? name_of(kind) : "process";
}

bool rt__kind_valid(rt_kind kind)
{
    return kind < kinds_count();
}

void rt__kinds_reset(void)
{
    pthread_mutex_lock(&lock);
    /* Release, as in rt_kind_register; names stay readable (atoms). */
    atomic_store_explicit(&count, RT_KIND_RUNTIME_COUNT, memory_order_release);
    pthread_mutex_unlock(&lock);
}
