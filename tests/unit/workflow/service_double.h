/*
 * service_double.h: an in-memory stand-in for the workflow service
 * (workflow.h) and the journal reads (journal.h) that the request path
 * and the admin API call, for their unit tests. Records live in a table
 * the test fills; every call copies out of it as the real journal would.
 */
#ifndef WF_SERVICE_DOUBLE_H
#define WF_SERVICE_DOUBLE_H

#include <stdbool.h>

#include "workflow/journal.h"
#include "workflow/workflow.h"

#define T_WF_MAX 64

/* The table: records owned by the double. */
extern struct wf_record *t_wf_records[T_WF_MAX];
extern size_t t_wf_n;
/* When non-zero, the next service or journal call returns it (then 0). */
extern int t_wf_next_rc;
/* When non-zero, every service or journal call first sleeps this long
 * (process context: the caller parks). */
extern uint64_t t_wf_delay_ms;
/* What the last calls were given. */
extern struct wf_list_filter t_wf_last_filter;
extern char t_wf_last_note[256];
extern bool t_wf_last_note_null;
/* Figures the stats calls report. */
extern struct gw_wf_stats t_wf_stats;
extern struct wf_journal_stats t_wf_journal_stats;

/* When answer_status is non-zero, gw_workflow_await ends the instance
 * with this answer (state "completed") before it returns. */
extern struct t_wf_await {
    int answer_status;
    const char *answer_headers, *answer_body;
} t_wf_await_end;

/* Empties the table and resets everything above. */
void t_wf_reset(void);
/* Adds a record (owned by the table) and returns it for more fields. */
struct wf_record *t_wf_add(const char *id, const char *def, const char *state, bool terminal,
                           int64_t created_ms);
/* Adds a transition to r. */
void t_wf_add_transition(struct wf_record *r, const char *state, const char *event,
                         const char *detail, int64_t at_ms);

#endif
