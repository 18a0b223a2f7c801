/*
 * status.h: what a client is shown of an instance: the status document of
 * GET {status_path}{id} and of a 202, the status path's matching and id
 * check, and the terminal answer a record stores. Pure functions over
 * journal records (any thread, no blocking); the JSON is the caller's.
 */
#ifndef GW_WORKFLOW_STATUS_H
#define GW_WORKFLOW_STATUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"

/* True when id (len bytes) is an instance id: WF_ID_LEN lower-case hex. */
bool gw_wf_id_valid(const char *id, size_t len);

/* Whether `path` (len bytes) is under `status_path` (a path ending in '/'):
 * 1 with the rest in *rest and *rest_len (maybe empty), 0 otherwise. */
int gw_wf_status_path_match(const char *status_path, const char *path, size_t len,
                            const char **rest, size_t *rest_len);

/* A wall-clock time in ms as RFC 3339 UTC with milliseconds
 * ("2026-12-06T12:26:47.123Z"). */
void gw_wf_time_format(int64_t ms, char out[32]);

/* {"id", "workflow", "state", "terminal", "created", "updated", "result"?}:
 * result {"status", "body"} once terminal, the body as JSON when it parses
 * as JSON, else as a string. A new reference, NULL when out of memory. */
json_t *gw_wf_status_json(const struct wf_record *r);

#endif
