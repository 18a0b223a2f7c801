/*
 * admin_int.h: internals shared by the admin API's files (admin.c: token,
 * dispatch, system, upstreams, metrics; routes.c: the route endpoints;
 * exposition.c: the /metrics text; procs.c: processes, kill/restart,
 * supervision tree; workflows.c: workflow instances; tls.c: the TLS
 * listeners' certificates and their reload; policies.c: the policies and
 * consumers of the set serving now; events.c: the event stream, built with
 * the admin listener's handler as it writes to the client). Every handler runs in the admin request
 * process that called gw_admin_handle and fills the response it is given,
 * always: on error with {"error": CODE, "detail": ...}.
 */
#ifndef GW_ADMIN_INT_H
#define GW_ADMIN_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "gw/admin.h"
#include "rt/rt.h"

/* How long a sys call to a behaviour may take before the admin API answers
 * without its status: a busy process must not hang the admin API. */
#define GW_ADMIN_SYS_TIMEOUT_MS 500
/* The deadline of one admin request's supervisor calls (the tree walk as a
 * whole, restart's which_children): a supervisor answers nothing while it
 * stops a child, which may take that child's whole shutdown time (forever
 * for an infinity shutdown), and the admin API must not hang with it. */
#define GW_ADMIN_CALL_TIMEOUT_MS 2000
/* The deadline of restart's terminate_child and restart_child together:
 * long enough for the gateway's own children, whose shutdown times are at
 * most 5 s, to stop and start again. */
#define GW_ADMIN_RESTART_TIMEOUT_MS 15000
/* How long a kill waits for the process to be gone before answering. */
#define GW_ADMIN_KILL_WAIT_MS 1000
/* Children shown per supervisor (the count is always given). */
#define GW_ADMIN_TREE_MAX_CHILDREN 1000
#define GW_ADMIN_TREE_MAX_DEPTH 16

/* Serialises `body` (stolen) as the response with `status`. */
void gw__admin_json(struct gw_admin_response *resp, int status, json_t *body);
/* {"error": code, "detail": detail} (detail stolen; NULL gives null). */
void gw__admin_error(struct gw_admin_response *resp, int status, const char *code, json_t *detail);
/* The same with a formatted string as detail. */
void gw__admin_errorf(struct gw_admin_response *resp, int status, const char *code, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/* 504 {"error": "timeout", "detail": {"process": PID or null, "name": NAME
 * or null, "call": CALL, "timeout_ms": MS}}: a call into `pid` (or the
 * process registered as `name`) did not answer within its deadline. The
 * call itself may still be carried out: only its answer is given up. */
void gw__admin_timeout(struct gw_admin_response *resp, rt_pid pid, const char *name,
                       const char *call, int64_t timeout_ms);

/* Copies the percent-decoded value of `key` in `query` (may be NULL) into
 * buf. Returns 0, -ENOENT when absent, -EINVAL when malformed or longer
 * than cap - 1. */
int gw__admin_query(const char *query, const char *key, char *buf, size_t cap);

/* The published route table's version (0 when none). */
uint64_t gw__admin_route_version(void);

/* A pid as a JSON string ("<0.SLOT.GEN>"), or null for 0. */
json_t *gw__admin_pid_json(rt_pid pid);

/* routes.c */
void gw__admin_routes_get(struct gw_admin_response *resp);
void gw__admin_routes_reload(struct gw_admin_response *resp);
void gw__admin_routes_replace(const struct gw_admin_request *req, struct gw_admin_response *resp);
void gw__admin_routes_validate(const struct gw_admin_request *req, struct gw_admin_response *resp);
void gw__admin_routes_rollback(const struct gw_admin_request *req, struct gw_admin_response *resp);
/* `arg` is what follows /admin/routes/versions/ (NUL-terminated). */
void gw__admin_routes_version(struct gw_admin_response *resp, const char *arg);

/* procs.c */
void gw__admin_processes(const struct gw_admin_request *req, struct gw_admin_response *resp);
void gw__admin_process(const struct gw_admin_request *req, struct gw_admin_response *resp,
                       rt_pid pid);
void gw__admin_kill(const struct gw_admin_request *req, struct gw_admin_response *resp, rt_pid pid);
void gw__admin_restart(const struct gw_admin_request *req, struct gw_admin_response *resp,
                       rt_pid pid);
void gw__admin_supervisors(const struct gw_admin_request *req, struct gw_admin_response *resp);

/* events.c: GET /admin/events. Streams open at once, at most (503
 * too_many_streams beyond); events waiting for one stream's process to
 * write them, at most, in number and in bytes (beyond, the stream gets a
 * `lagged` frame and is closed); the interval of its `: keepalive`
 * comments. */
#define GW_ADMIN_EVENTS_MAX_STREAMS 64
#define GW_ADMIN_EVENTS_MAX_QUEUED 256
#define GW_ADMIN_EVENTS_MAX_QUEUED_BYTES (1u << 20)
#define GW_ADMIN_EVENTS_HEARTBEAT_MS 15000
/* The kernel's send buffer of a stream's connection (SO_SNDBUF): without a
 * cap, autotuning lets a client that stops reading hold megabytes there
 * before the bound above is even reached. A stream carries a few hundred
 * bytes a second. */
#define GW_ADMIN_EVENTS_SNDBUF (64 * 1024)
struct gw__exchange;
struct gw__req_log;
/* The admin listener's request process, after gw_admin_handle admitted the
 * request with resp->stream: serves the stream until the client goes, the
 * stream lags, the event manager goes or the gateway drains, and returns
 * true; or returns false with *resp filled with the refusal (503) for the
 * caller to answer. */
bool gw__admin_events_serve(struct gw__exchange *ex, struct gw_admin_response *resp,
                            struct gw__req_log *log);

struct gw_event_sample;
/* Room for a sample's text: its fixed part with every number at its
 * longest (under 600 bytes), and each scheduler's entry likewise (under 70). */
#define GW__ADMIN_SAMPLE_TEXT_MAX (768 + RT_MAX_SCHEDULERS * 80)
/* The `data` of a sample frame: the sample as one line of JSON, written into
 * out[cap] without building a value (the same text as jansson's compact
 * dump with 6 significant digits for the reals; a non-finite real is 0.0).
 * Returns its length, or -1 when cap is too small. Every stream writes one
 * a second. */
int gw__admin_sample_text(const struct gw_event_sample *e, char *out, size_t cap);

/* tls.c */
void gw__admin_tls_get(struct gw_admin_response *resp);
void gw__admin_tls_reload(const struct gw_admin_request *req, struct gw_admin_response *resp);

/* workflows.c. Instances per page of GET /admin/workflows by default, and
 * at most (the journal caps a list at 1000 too). */
#define GW_ADMIN_WORKFLOWS_DEFAULT_LIMIT 100
#define GW_ADMIN_WORKFLOWS_MAX_LIMIT 1000
/* Bytes of a resolve's note, at most. */
#define GW_ADMIN_WORKFLOWS_MAX_NOTE 1024
void gw__admin_workflows(const struct gw_admin_request *req, struct gw_admin_response *resp);
/* `id` is a valid instance id (NUL-terminated). */
void gw__admin_workflow(const struct gw_admin_request *req, struct gw_admin_response *resp,
                        const char *id);
void gw__admin_workflow_retry(const struct gw_admin_request *req, struct gw_admin_response *resp,
                              const char *id);
void gw__admin_workflow_resolve(const struct gw_admin_request *req, struct gw_admin_response *resp,
                                const char *id);

/* policies.c. Entries per page of GET /admin/policies and
 * /admin/consumers by default, and at most; the routes listed per policy
 * (the count is always given); the bytes of a ?key= of a state. */
#define GW_ADMIN_POLICIES_DEFAULT_LIMIT 1000
#define GW_ADMIN_POLICIES_MAX_LIMIT 10000
#define GW_ADMIN_POLICY_MAX_ROUTES 100
#define GW_ADMIN_POLICY_MAX_KEY 4096
void gw__admin_policies(const struct gw_admin_request *req, struct gw_admin_response *resp);
/* `name` is NUL-terminated, percent-decoded. */
void gw__admin_policy(const struct gw_admin_request *req, struct gw_admin_response *resp,
                      const char *name);
void gw__admin_policy_state(const struct gw_admin_request *req, struct gw_admin_response *resp,
                            const char *name);
void gw__admin_consumers(const struct gw_admin_request *req, struct gw_admin_response *resp);

#endif
