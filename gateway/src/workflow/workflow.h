/*
 * workflow.h: the workflows service as the rest of the gateway sees it.
 *
 * `workflows_sup` (a child of the gateway's top supervisor, started before
 * the listeners) holds the journal process and, under a simple_one_for_one
 * supervisor, one gen_statem process per running instance (instance.c),
 * registered by name `wf:<id>`. An instance process restarts (transient)
 * from its journal when it crashes, and at start every unfinished instance
 * this replica claims is restarted before the listeners accept traffic.
 *
 * The request process (http.c) uses gw_workflow_start / gw_workflow_await;
 * the admin API the rest. All calls are process context.
 */
#ifndef GW_WORKFLOW_WORKFLOW_H
#define GW_WORKFLOW_WORKFLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "def.h"
#include "gw/config.h"
#include "journal.h"
#include "rt/rt.h"

enum gw_wf_start {
    GW_WF_STARTED = 0, /* a new instance: rec->id names it */
    GW_WF_EXISTING,    /* the key names an instance already: rec is it */
};

/* Starts an instance of `def` with `input` (validated by the caller), its
 * key (scope, key, fingerprint; scope NULL for none) reserved in the same
 * durable write. *out gets the instance's record (the new one, or the one
 * the key already names); free with wf_record_free. */
int gw_workflow_start(const struct wf_def *def, const json_t *input, const char *scope,
                      const char *key, const unsigned char fingerprint[WF_FINGERPRINT_LEN],
                      enum gw_wf_start *how, struct wf_record **out);

/* Waits up to `ms` for instance `id` to reach a terminal state; *out gets
 * its record either way (terminal or not). 0, -ENOENT. */
int gw_workflow_await(const char *id, uint32_t ms, struct wf_record **out);

/* Operator actions on a `failed` instance: retry its compensation from the
 * step it stopped at, or mark it resolved (terminal, answer unchanged).
 * 0 once the action is journalled; -ENOENT, -EINVAL when the instance is
 * not in `failed`; the journal's error (-EIO, -ESTALE, ...) when it
 * refused the action, which then did not happen. */
int gw_workflow_retry(const char *id);
int gw_workflow_resolve(const char *id, const char *note);

/* Counters for /metrics and /admin/workflows (any thread). */
struct gw_wf_stats {
    uint64_t started, completed, compensated, failed, recovered;
    uint64_t running;
};
void gw_workflow_stats(struct gw_wf_stats *out);

/* Whether the gateway runs the workflows service (workflows_sup is a child
 * of its top supervisor only then): the configuration has a `workflows`
 * section, or the workflows directory held definitions at start. A
 * gateway without either opens no journal. Any thread. */
bool gw_workflows_enabled(const struct gw_config *cfg);

/* This gateway's owner in the workflow journal (journal.h), "" before
 * workflows_sup first started. Any thread, once it started. */
const char *gw_workflows_owner(void);

/* Main thread, before the runtime starts, in a gateway started by an
 * upgrade: the old gateway's pid and its journal owner (NULL when it had
 * no workflows). Its unfinished instances are taken over once it has
 * exited (service.c); until then this gateway's journal owner is its own. */
void gw_workflows_upgraded_from(int old_pid, const char *old_owner);

/* The child spec of workflows_sup for the top supervisor; arg is the
 * gateway's configuration (NULL: gw.cfg). Builds the journal's
 * configuration from its `workflows` section (zero numbers are defaults),
 * starts the journal process, the instance supervisor, then every
 * unfinished instance this replica claims, all before it returns. */
int gw_workflows_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                           rt_atom *reason);

#endif
