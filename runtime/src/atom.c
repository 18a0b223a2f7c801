/*
 * atom.c: the atom table — interned strings used as exit reasons and other
 * symbolic values.
 *
 * Invariants: an atom, once made, lives until the program ends (its text is
 * never freed or moved), so rt_atom_name's result is valid forever. The
 * table is a fixed-capacity open-addressing hash with no deletions: an
 * entry, once set, never changes. Insertion takes one mutex; a lookup of a
 * name already interned takes none (rt_spawn interns each process's
 * initial call, on every scheduler): it probes the published hash and, on
 * an empty entry, tries again under the mutex, where the name is added if
 * it is still missing. rt_atom_name reads a published array lock-free.
 */
#include "rt_fault.h"

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
/* Atom index + 1, 0 = empty; written under lock, read by anyone once
 * published (the table itself is published with release in ensure_table). */
static _Atomic uint32_t *hash;
static _Atomic(_Atomic uint32_t *) hash_pub;
/* Acquisitions of lock by rt_atom_intern (rt__test_atom_lock_count):
 * written under the lock, read by tests (relaxed). */
static _Atomic uint64_t lock_count;

uint64_t rt__test_atom_lock_count(void)
{
    return atomic_load_explicit(&lock_count, memory_order_relaxed);
}

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
    /* Release: publishes the entry written above to name_of(), before the
     * hash entry that leads a lock-free lookup to it. */
    atomic_store_explicit(&count, n + 1, memory_order_release);
    uint32_t h = hash_str(name) & (HASH_SIZE - 1);
    /* Relaxed: entries change only under the lock, which we hold. */
    while (atomic_load_explicit(&hash[h], memory_order_relaxed))
        h = (h + 1) & (HASH_SIZE - 1);
    /* Release: a lookup that acquires this entry sees the count above. */
    atomic_store_explicit(&hash[h], n + 1, memory_order_release);
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
    /* Release: a lookup that acquires the table sees its entries so far. */
    atomic_store_explicit(&hash_pub, hash, memory_order_release);
    return 0;
}

/* Without the lock: the atom for `name` if the published table has it. An
 * empty entry ends the probe, and the caller asks again under the lock (an
 * entry set meanwhile is found there). */
static bool lookup(const char *name, uint32_t h, rt_atom *out)
{
    /* Acquire: pairs with the release in ensure_table. */
    _Atomic uint32_t *t = atomic_load_explicit(&hash_pub, memory_order_acquire);
    if (!t)
        return false;
    for (;; h = (h + 1) & (HASH_SIZE - 1)) {
        /* Acquire: pairs with add()'s release, so name_of sees the atom. */
        uint32_t e = atomic_load_explicit(&t[h], memory_order_acquire);
        if (!e)
            return false;
        const char *s = name_of(e - 1);
        if (s && strcmp(s, name) == 0) {
            *out = e - 1;
            return true;
        }
    }
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
    uint32_t h0 = hash_str(name) & (HASH_SIZE - 1);
    if (lookup(name, h0, &result))
        return result;
    pthread_mutex_lock(&lock);
    /* Relaxed: a count for tests, written only under the lock. */
    atomic_store_explicit(&lock_count, atomic_load_explicit(&lock_count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (ensure_table() == 0) {
        uint32_t h = h0;
        for (;;) {
            /* Relaxed: entries change only under the lock, which we hold. */
            uint32_t e = atomic_load_explicit(&hash[h], memory_order_relaxed);
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
