/*
 * front_stub.c: placeholders for the workflow service, journal and
 * definitions that the request path and the admin API call, so that the
 * gateway links before those parts exist: no workflow is ever loaded,
 * every call answers -ENOSYS and every figure is zero. Removed (with its
 * line in meson.build) when def.c, journal.c and the service are built.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "def.h"
#include "journal.h"
#include "workflow.h"

size_t wf_set_count(const struct wf_set *s)
{
    (void)s;
    return 0;
}

const struct wf_def *wf_set_find(const struct wf_set *s, const char *name)
{
    (void)s;
    (void)name;
    return NULL;
}

int wf_input_check(const struct wf_def *def, const json_t *input, char *err, size_t errcap)
{
    (void)def;
    (void)input;
    if (errcap)
        err[0] = 0;
    return -ENOSYS;
}

void wf_record_free(struct wf_record *r)
{
    (void)r;
}

int wf_journal_get(const char *id, bool with_transitions, struct wf_record **out)
{
    (void)id;
    (void)with_transitions;
    (void)out;
    return -ENOSYS;
}

int wf_journal_list(const struct wf_list_filter *f, struct wf_record ***out, size_t *n)
{
    (void)f;
    (void)out;
    (void)n;
    return -ENOSYS;
}

void wf_journal_stats(struct wf_journal_stats *out)
{
    memset(out, 0, sizeof *out);
}

int gw_workflow_start(const struct wf_def *def, const json_t *input, const char *scope,
                      const char *key, const unsigned char fingerprint[WF_FINGERPRINT_LEN],
                      enum gw_wf_start *how, struct wf_record **out)
{
    (void)def;
    (void)input;
    (void)scope;
    (void)key;
    (void)fingerprint;
    (void)how;
    (void)out;
    return -ENOSYS;
}

int gw_workflow_await(const char *id, uint32_t ms, struct wf_record **out)
{
    (void)id;
    (void)ms;
    (void)out;
    return -ENOSYS;
}

int gw_workflow_retry(const char *id)
{
    (void)id;
    return -ENOSYS;
}

int gw_workflow_resolve(const char *id, const char *note)
{
    (void)id;
    (void)note;
    return -ENOSYS;
}

void gw_workflow_stats(struct gw_wf_stats *out)
{
    memset(out, 0, sizeof *out);
}
