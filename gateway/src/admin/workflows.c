/*
 * workflows.c: the admin API's workflow endpoints:
 *   GET  /admin/workflows               instances, filtered and paginated
 *   GET  /admin/workflows/{id}          one instance with every transition
 *   POST /admin/workflows/{id}/retry    retry a failed instance's compensation
 *   POST /admin/workflows/{id}/resolve  mark a failed instance resolved
 * Reads go to the journal (wf_journal_list, wf_journal_get), operator
 * actions to the service (gw_workflow_retry, gw_workflow_resolve). Each of
 * those calls parks on another process (the journal process, the
 * instance) and carries its own deadline there (GW_ADMIN_CALL_TIMEOUT_MS
 * at most): past it the call gives -ETIMEDOUT and the answer is 504
 * "timeout", as for every call the admin API makes into a process.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_int.h"
#include "workflow/journal.h"
#include "workflow/status.h"
#include "workflow/workflow.h"

/* The journal process's registered name, for a timeout's answer. */
#define JOURNAL_NAME "wf_journal"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *time_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[32];
    gw_wf_time_format(ms, buf);
    return json_string(buf);
}

/* A JSON text as a value: parsed when it is JSON, else the string. */
static json_t *text_json(const char *text, size_t len)
{
    if (!text || !len)
        return json_null();
    json_error_t err;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &err);
    return v ? v : json_stringn(text, len);
}

/* FNV-1a 64 of the definition's canonical text: its version (def.h). */
static uint64_t def_version(const char *text, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; text && i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 1099511628211ull;
    }
    return h;
}

static json_t *summary_json(const struct wf_record *r)
{
    json_t *o =
        json_pack("{s:s, s:s?, s:s?, s:b, s:o, s:o, s:s?}", "id", r->id, "workflow", r->def_name,
                  "state", r->state, "terminal", r->terminal, "created", time_json(r->created_ms),
                  "updated", time_json(r->updated_ms), "owner", r->owner);
    if (o && r->key)
        json_object_set_new(o, "key", json_pack("{s:s?, s:s}", "scope", r->scope, "key", r->key));
    return o;
}

/* Maps a failed call to the answer. */
static void call_failed(struct gw_admin_response *resp, int rc, const char *name, const char *call,
                        const char *id)
{
    if (rc == -ENOENT)
        gw__admin_error(resp, 404, "workflow_not_found", json_pack("{s:s?}", "id", id));
    else if (rc == -ETIMEDOUT)
        gw__admin_timeout(resp, 0, name, call, GW_ADMIN_CALL_TIMEOUT_MS);
    else if (rc == -ENOMEM)
        gw__admin_json(resp, 503, NULL);
    else
        gw__admin_errorf(resp, 503, "workflows_unavailable", "%s: %s", call, strerror(-rc));
}

/* ---- GET /admin/workflows ------------------------------------------------------ */

static int query_u64(const char *query, const char *key, uint64_t max, uint64_t *out)
{
    char buf[24];
    int rc = gw__admin_query(query, key, buf, sizeof buf);
    if (rc < 0)
        return rc;
    char *end = NULL;
    if (buf[0] < '0' || buf[0] > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

void gw__admin_workflows(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    char def[WF_MAX_NAME_BYTES + 1], state[WF_STATE_MAX + 1], after[WF_ID_LEN + 1];
    struct wf_list_filter f = {.limit = GW_ADMIN_WORKFLOWS_DEFAULT_LIMIT};
    int rc = gw__admin_query(req->query, "definition", def, sizeof def);
    if (rc == -EINVAL)
        goto bad;
    f.def_name = rc == 0 ? def : NULL;
    rc = gw__admin_query(req->query, "state", state, sizeof state);
    if (rc == -EINVAL)
        goto bad;
    f.state = rc == 0 ? state : NULL;
    rc = gw__admin_query(req->query, "after", after, sizeof after);
    if (rc == -EINVAL || (rc == 0 && !gw_wf_id_valid(after, strlen(after))))
        goto bad;
    f.after_id = rc == 0 ? after : NULL;
    uint64_t v = 0;
    rc = query_u64(req->query, "limit", UINT32_MAX, &v);
    if (rc == -EINVAL || (rc == 0 && v == 0))
        goto bad;
    if (rc == 0)
        f.limit = v > GW_ADMIN_WORKFLOWS_MAX_LIMIT ? GW_ADMIN_WORKFLOWS_MAX_LIMIT : (size_t)v;
    rc = query_u64(req->query, "older_than", (uint64_t)INT64_MAX / 2, &v);
    if (rc == -EINVAL)
        goto bad;
    if (rc == 0)
        f.older_than_ms = wall_ms() - (int64_t)v;

    struct wf_record **list = NULL;
    size_t n = 0;
    rc = wf_journal_list(&f, &list, &n);
    if (rc < 0) {
        call_failed(resp, rc == -ENOENT ? -EIO : rc, JOURNAL_NAME, "list", NULL);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (arr && i < f.limit)
            json_array_append_new(arr, summary_json(list[i]));
    }
    /* A full page may have more after it: the next page starts after its
     * last id. */
    json_t *next = n >= f.limit && n ? json_string(list[f.limit - 1]->id) : json_null();
    for (size_t i = 0; i < n; i++)
        wf_record_free(list[i]);
    free(list);
    gw__admin_json(resp, 200,
                   json_pack("{s:o, s:I, s:I, s:o}", "workflows", arr ? arr : json_array(), "count",
                             (json_int_t)(n < f.limit ? n : f.limit), "limit", (json_int_t)f.limit,
                             "next", next));
    return;
bad:
    gw__admin_errorf(resp, 400, "bad_request",
                     "query parameters: definition=NAME, state=STATE, older_than=MS, after=ID "
                     "(32 lower-case hex digits), limit=1..%d",
                     GW_ADMIN_WORKFLOWS_MAX_LIMIT);
}

/* ---- GET /admin/workflows/{id} --------------------------------------------------- */

static json_t *detail_json(const struct wf_record *r)
{
    json_t *o = summary_json(r);
    if (!o)
        return NULL;
    char version[17];
    snprintf(version, sizeof version, "%016" PRIx64, def_version(r->def_text, r->def_text_len));
    json_object_set_new(o, "definition",
                        json_pack("{s:s?, s:s, s:o}", "name", r->def_name, "version", version,
                                  "text", text_json(r->def_text, r->def_text_len)));
    json_object_set_new(o, "input", text_json(r->input, r->input_len));
    const char *step = NULL;
    if (r->state && strncmp(r->state, "step:", 5) == 0)
        step = r->state + 5;
    else if (r->state && strncmp(r->state, "compensating:", 13) == 0)
        step = r->state + 13;
    json_object_set_new(o, "step", step ? json_string(step) : json_null());
    json_t *ts = json_array();
    json_int_t attempts = 0;
    json_t *last_error = json_null();
    for (size_t i = 0; ts && i < r->ntransitions; i++) {
        const struct wf_record_transition *t = &r->transitions[i];
        json_t *detail = text_json(t->detail, t->detail ? strlen(t->detail) : 0);
        /* Attempts: the sends journalled (their intents) in the current
         * state; the last error: the latest a transition reported. */
        if (t->event && strcmp(t->event, "intent") == 0 && t->state && r->state &&
            strcmp(t->state, r->state) == 0)
            attempts++;
        json_t *err = json_object_get(detail, "error");
        if (err && !json_is_null(err)) {
            json_decref(last_error);
            last_error = json_deep_copy(err);
        }
        json_array_append_new(ts, json_pack("{s:I, s:s?, s:s?, s:o, s:o}", "seq",
                                            (json_int_t)t->seq, "state", t->state, "event",
                                            t->event, "at", time_json(t->at_ms), "detail", detail));
    }
    json_object_set_new(o, "attempts", json_integer(attempts));
    json_object_set_new(o, "last_error", last_error ? last_error : json_null());
    json_object_set_new(o, "transitions", ts ? ts : json_array());
    if (r->key)
        json_object_set_new(json_object_get(o, "key"), "expires", time_json(r->key_expires_ms));
    if (r->terminal)
        json_object_set_new(o, "result",
                            json_pack("{s:i, s:o, s:o}", "status", r->answer_status, "headers",
                                      text_json(r->answer_headers,
                                                r->answer_headers ? strlen(r->answer_headers) : 0),
                                      "body", text_json(r->answer_body, r->answer_body_len)));
    return o;
}

void gw__admin_workflow(const struct gw_admin_request *req, struct gw_admin_response *resp,
                        const char *id)
{
    (void)req;
    struct wf_record *r = NULL;
    int rc = wf_journal_get(id, true, &r);
    if (rc < 0) {
        call_failed(resp, rc, JOURNAL_NAME, "get", id);
        return;
    }
    gw__admin_json(resp, 200, detail_json(r));
    wf_record_free(r);
}

/* ---- POST /admin/workflows/{id}/retry and /resolve ----------------------------------- */

/* -EINVAL from the service: the instance is not in `failed`. */
static void not_failed(struct gw_admin_response *resp, const char *id, const char *action)
{
    gw__admin_error(resp, 409, "not_failed",
                    json_pack("{s:s, s:s, s:s}", "id", id, "action", action, "message",
                              "only an instance in state failed can be retried or resolved"));
}

/* The instance's registered name ("wf:<id>"), for a timeout's answer. */
static void instance_name(const char *id, char out[WF_ID_LEN + 4])
{
    snprintf(out, WF_ID_LEN + 4, "wf:%s", id);
}

void gw__admin_workflow_retry(const struct gw_admin_request *req, struct gw_admin_response *resp,
                              const char *id)
{
    (void)req;
    int rc = gw_workflow_retry(id);
    char name[WF_ID_LEN + 4];
    instance_name(id, name);
    if (rc == -EINVAL)
        not_failed(resp, id, "retry");
    else if (rc < 0)
        call_failed(resp, rc, name, "retry", id);
    else
        gw__admin_json(resp, 200, json_pack("{s:s, s:s}", "id", id, "outcome", "retrying"));
}

void gw__admin_workflow_resolve(const struct gw_admin_request *req, struct gw_admin_response *resp,
                                const char *id)
{
    json_t *body = NULL;
    const char *note = NULL;
    if (req->body_len) {
        json_error_t err;
        body = json_loadb(req->body, req->body_len, 0, &err);
        json_t *n = json_object_get(body, "note");
        if (!json_is_object(body) || (n && !json_is_string(n)) ||
            (n && json_string_length(n) > GW_ADMIN_WORKFLOWS_MAX_NOTE)) {
            json_decref(body);
            gw__admin_errorf(resp, 400, "bad_request",
                             "expected no body or {\"note\": TEXT} (at most %d bytes)",
                             GW_ADMIN_WORKFLOWS_MAX_NOTE);
            return;
        }
        note = json_string_value(n);
    }
    int rc = gw_workflow_resolve(id, note);
    char name[WF_ID_LEN + 4];
    instance_name(id, name);
    if (rc == -EINVAL)
        not_failed(resp, id, "resolve");
    else if (rc < 0)
        call_failed(resp, rc, name, "resolve", id);
    else
        gw__admin_json(resp, 200, json_pack("{s:s, s:s}", "id", id, "outcome", "resolved"));
    json_decref(body);
}
