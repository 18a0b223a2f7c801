/*
 * instance.h: between the workflow service (service.c) and the instance
 * state machines (instance.c). Not for the rest of the gateway: it uses
 * workflow.h.
 */
#ifndef GW_WORKFLOW_INSTANCE_H
#define GW_WORKFLOW_INSTANCE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "rt/rt.h"
#include "workflow.h"

/* Requests to an instance (gen_statem calls; types below RT_GS_TYPE_LIMIT). */
enum {
    WF__CALL_AWAIT = 0x5746, /* answered (empty) once the instance ended */
    WF__CALL_RETRY,          /* operator: compensate again; answers an int */
    WF__CALL_RESOLVE,        /* operator: mark resolved; payload the note; answers an int */
    WF__MSG_CALL_DONE,       /* from a call worker: its result (info) */
};

/* The registered name of instance `id` ("wf:<id>"). */
#define WF__NAME_MAX (3 + WF_ID_LEN + 1)
void wf__instance_name(const char *id, char out[WF__NAME_MAX]);

/* The child start function of the instance supervisor: `extra` is the
 * instance id (WF_ID_LEN + 1 bytes, NUL-terminated). The process reads the
 * instance from the journal and carries on from its last transition. */
int wf__instance_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                       rt_atom *reason);

/* The service's counters, updated by the instances (relaxed atomics:
 * figures shown on their own, they publish nothing). */
struct wf__counters {
    _Atomic uint64_t started, completed, compensated, failed, recovered, running;
};
extern struct wf__counters wf__counters;

/* The upstream names definitions are compiled against (the gateway's
 * configuration). */
void wf__upstream_names(const char *const **names, size_t *n);

#endif
