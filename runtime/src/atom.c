/*
 * atom.c: the atom table — interned strings used as exit reasons and other
 * symbolic values.
 *
 * Invariants: an atom, once made, lives until the program ends (its text is
 * never freed or moved), so rt_atom_name's result is valid forever. The
 * table is a fixed-capacity open-addressing hash guarded by one mutex for
 * insertion; lookups of names go through the same mutex (held for one hash
 * probe: rt_spawn interns each process's initial call), while
 * rt_atom_name reads a published array lock-free.
 */
#include "rt/rt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const predefined[RT_ATOM_PREDEFINED_COUNT] = {
    [RT_NORMAL] = "normal",
    [RT_KILL] = "kill",
    [RT_KILLED] = "killed",
    [RT_SHUTDOWN] = "shutdown",
    [RT_NOPROC] = "noproc",
    [RT_TIMEOUT] = "timeout",
    [RT_STACK_OVERFLOW] = "stack_overflow",
    [RT_UNDEFINED] = "undefined",
    [RT_CALLING_SELF] = "calling_self",
    [RT_SYSTEM_LIMIT] = "system_limit",
    [RT_ERROR] = "error",
    [RT_BADARG] = "badarg",
    [RT_MEMORY_LIMIT] = "memory_limit",
    [RT_TIME_LIMIT] = "time_limit",
};

#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS (RT_ATOM_MAX / CHUNK_SIZE)
#define HASH_SIZE (RT_ATOM_MAX * 2)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* names[i >> CHUNK_BITS][i & mask]: chunks are allocated once and never
 * freed; a chunk pointer is published with release so that readers that
 * acquire it see the entries written before. */
static _Atomic(const char **) chunks[NCHUNKS];
static _Atomic uint32_t count;
static uint32_t *hash; /* atom index + 1, 0 = empty; under lock */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static const char *name_of(uint32_t i)
{
    /* Acquire pairs with the release store in add(): the entry was written
     * before the count that made index i valid. */
    if (i >= atomic_load_explicit(&count, memory_order_acquire))
        return NULL;
    const char **c = atomic_load_explicit(&chunks[i >> CHUNK_BITS], memory_order_acquire);
    return c ? c[i & (CHUNK_SIZE - 1)] : NULL;
}

static int add(const char *name, uint32_t *out)
{
    uint32_t n = atomic_load_explicit(&count, memory_order_relaxed);
    if (n >= RT_ATOM_MAX)
        return -1;
    const char **c = atomic_load_explicit(&chunks[n >> CHUNK_BITS], memory_order_relaxed);
    if (!c) {
        c = calloc(CHUNK_SIZE, sizeof(*c));
        if (!c)
            return -1;
        atomic_store_explicit(&chunks[n >> CHUNK_BITS], c, memory_order_release);
    }
    char *copy = strdup(name);
    if (!copy)
        return -1;
    c[n & (CHUNK_SIZE - 1)] = copy;
    uint32_t h = hash_str(name) & (HASH_SIZE - 1);
    while (hash[h])
        h = (h + 1) & (HASH_SIZE - 1);
    hash[h] = n + 1;
    /* Release: publishes the entry written above to name_of(). */
    atomic_store_explicit(&count, n + 1, memory_order_release);
    *out = n;
    return 0;
}

/* Called with lock held. */
static int ensure_table(void)
{
    if (hash)
        return 0;
    hash = calloc(HASH_SIZE, sizeof(*hash));
    if (!hash)
        return -1;
    for (uint32_t i = 0; i < RT_ATOM_PREDEFINED_COUNT; i++) {
        uint32_t a;
        if (add(predefined[i], &a) < 0)
            return -1;
    }
    return 0;
}

rt_atom rt_atom_intern(const char *name)
{
    if (!name)
        return RT_UNDEFINED;
    /* The predefined atoms are in the table too, at their own indices
     * (ensure_table adds them first): no scan of them before it, which
     * would cost every name a dozen comparisons (rt_spawn interns each
     * process's initial call). */
    rt_atom result = RT_SYSTEM_LIMIT;
    pthread_mutex_lock(&lock);
    if (ensure_table() == 0) {
        uint32_t h = hash_str(name) & (HASH_SIZE - 1);
        for (;;) {
            uint32_t e = hash[h];
            if (!e) {
                uint32_t a;
                if (add(name, &a) == 0)
                    result = a;
                break;
            }
            if (strcmp(name_of(e - 1), name) == 0) {
                result = e - 1;
                break;
            }
            h = (h + 1) & (HASH_SIZE - 1);
        }
    }
    pthread_mutex_unlock(&lock);
    return result;
}

const char *rt_atom_name(rt_atom a)
{
    if (a < RT_ATOM_PREDEFINED_COUNT)
        return predefined[a];
    const char *s = name_of(a);
    return s ? s : "?";
}

bool rt_reason_is_shutdown(rt_atom reason)
{
    if (reason == RT_SHUTDOWN)
        return true;
    if (reason < RT_ATOM_PREDEFINED_COUNT)
        return false;
    return strncmp(rt_atom_name(reason), "shutdown:", 9) == 0;
}

bool rt_reason_is_clean(rt_atom reason)
{
    return reason == RT_NORMAL || rt_reason_is_shutdown(reason);
}
