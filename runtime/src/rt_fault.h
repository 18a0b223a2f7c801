/*
 * rt_fault.h: fault injection for the runtime's tests. Compiled into every
 * build (a test links the same library as the program); off until a test
 * turns it on, and then it costs the runtime one relaxed load where it
 * looks.
 */
#ifndef RT_FAULT_H
#define RT_FAULT_H

/* Any thread. Makes the nth stack allocation from now (1 = the next) fail
 * as if out of memory, once; 0 turns a pending failure off. A process whose
 * first stack cannot be had is reaped without running (reason
 * system_limit). rt_stop turns it off. */
void rt__test_stack_fail_nth(unsigned nth);

#endif
