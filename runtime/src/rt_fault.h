/*
 * rt_fault.h: fault injection for the runtime's tests. Compiled into every
 * build (a test links the same library as the program); off until a test
 * turns it on, and then it costs the runtime one relaxed load where it
 * looks.
 */
#ifndef RT_FAULT_H
#define RT_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Counts one event down on `countdown` (events left until the one that is
 * to fail; 0: none is to fail); true for the one that is to fail. A CAS, so
 * that events on several schedulers neither skip the failure nor count
 * below zero. The relaxed load first is the whole cost when no test asks. */
static inline bool rt__fault_hit(_Atomic unsigned *countdown)
{
    /* Relaxed: the counter orders nothing else. */
    unsigned n = atomic_load_explicit(countdown, memory_order_relaxed);
    if (__builtin_expect(n == 0, 1))
        return false;
    while (n) {
        if (atomic_compare_exchange_weak_explicit(countdown, &n, n - 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return n == 1;
    }
    return false;
}

/* Any thread. Makes the nth stack allocation from now (1 = the next) fail
 * as if out of memory, once; 0 turns a pending failure off. A process whose
 * first stack cannot be had is reaped without running (reason
 * system_limit). rt_stop turns it off. */
void rt__test_stack_fail_nth(unsigned nth);

/* Any thread. Makes the nth monitor record from now (1 = the next; a spawn
 * with `monitor` records two: the spawner's, then the child's) fail as if
 * out of memory, once; 0 turns a pending failure off. */
void rt__test_mon_fail_nth(unsigned nth);

/* Any thread. How many times the process table's global free list
 * (`slot_lock`, proc.c) has been locked since rt_start: spawns and exits
 * on a scheduler lock it only to refill or drain their slot cache. */
uint64_t rt__test_slot_lock_count(void);

/* Any thread. How many free slots scheduler `sched` holds in its cache (0
 * for a scheduler that does not exist). Exact only while that scheduler
 * neither spawns nor reaps. */
unsigned rt__test_slots_cached(unsigned sched);

/* Any thread. The id of the scheduler the caller runs on, or -1 on a thread
 * that is no scheduler. */
int rt__test_sched_id(void);

/* Any thread. How many times, since rt_start, an exit has woken the threads
 * waiting in rt_join or rt_wait_idle (sched.c): only for a joiner of the
 * pid that exited, or when no process is left. */
uint64_t rt__test_exit_wakeups(void);

/* Any thread. How many exits, since the program started, took the lock the
 * threads in rt_join and rt_wait_idle wait under (sched.c): with only
 * rt_wait_idle waiting, only an exit that leaves no process does. */
uint64_t rt__test_exit_locks(void);

/* Any thread. How many times rt_atom_intern has taken the atom table's lock
 * since the program started: only to add a name (or to look one up that a
 * lock-free probe did not find). */
uint64_t rt__test_atom_lock_count(void);

#endif
