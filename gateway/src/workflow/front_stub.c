/*
 * front_stub.c: placeholders for the workflow service (workflow.h) that
 * the request path and the admin API call, so that the gateway links
 * before the service exists: every call answers -ENOSYS and every figure
 * is zero. Removed (with its line in meson.build) when the service is
 * built.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "def.h"
#include "journal.h"
#include "workflow.h"

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
