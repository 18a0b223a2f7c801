/*
 * workflows.c: the admin API's workflow endpoints:
 *   GET  /admin/workflows               instances, filtered and paginated
 *   GET  /admin/workflows/{id}          one instance with every transition
 *   POST /admin/workflows/{id}/retry    retry a failed instance's compensation
 *   POST /admin/workflows/{id}/resolve  mark a failed instance resolved
 * Reads go to the journal (wf_journal_list, wf_journal_get), operator
 * actions to the service (gw_workflow_retry, gw_workflow_resolve). Each of
 * those calls parks on another process (the journal process, the
 * instance) and takes no deadline, so the admin API makes it from a
 * helper process of its own and waits at most GW_ADMIN_CALL_TIMEOUT_MS
 * for it: past that the answer is 504 "timeout", as for every call the
 * admin API makes into a process, and the helper finishes the call alone
 * (its result is freed by whichever of the two lets go of it last). A call
 * that itself gives -ETIMEDOUT answers the same.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
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

/* ---- calls with a deadline ------------------------------------------------------- */

enum call_kind { CALL_LIST, CALL_GET, CALL_RETRY, CALL_RESOLVE };

#define CALL_DONE 0x77660001u /* the helper's message: the call returned */

/* One call, shared by the admin request process and its helper: malloc'd
 * (it may outlive the request process), every string copied in. */
struct call {
    _Atomic int refs; /* the requester and the helper */
    enum call_kind kind;
    char id[WF_ID_LEN + 1];
    char def[WF_MAX_NAME_BYTES + 1], state[WF_STATE_MAX + 1], after[WF_ID_LEN + 1];
    struct wf_list_filter filter; /* its strings point into the fields above */
    char *note;
    int rc;
    struct wf_record *rec;
    struct wf_record **list;
    size_t n;
};

static void call_unref(struct call *c)
{
    /* acq_rel: the last one out sees every write of the other before it
     * frees the results. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    wf_record_free(c->rec);
    for (size_t i = 0; i < c->n; i++)
        wf_record_free(c->list[i]);
    free(c->list);
    free(c->note);
    free(c);
}

static void call_run(void *arg)
{
    struct call *c = arg;
    switch (c->kind) {
    case CALL_LIST:
        c->rc = wf_journal_list(&c->filter, &c->list, &c->n);
        break;
    case CALL_GET:
        c->rc = wf_journal_get(c->id, true, &c->rec);
        break;
    case CALL_RETRY:
        c->rc = gw_workflow_retry(c->id);
        break;
    case CALL_RESOLVE:
        c->rc = gw_workflow_resolve(c->id, c->note);
        break;
    }
    if (c->rc < 0) {
        c->list = NULL;
        c->n = 0;
        c->rec = NULL;
    }
    struct rt_msg *m = rt_msg_new(CALL_DONE, 0);
    if (m)
        rt_send(rt_parent(), m);
    call_unref(c);
}

static void call_arg_free(void *arg)
{
    call_unref(arg);
}

struct call_wait {
    rt_pid helper;
    rt_ref mref;
};

static bool call_ended(const struct rt_msg *m, void *ctx)
{
    const struct call_wait *w = ctx;
    return (m->type == CALL_DONE && m->from == w->helper) ||
           (m->type == RT_MSG_DOWN && m->ref == w->mref);
}

/* Makes call `c` (one reference, the caller's) from a helper process and
 * waits at most GW_ADMIN_CALL_TIMEOUT_MS: its rc, -ETIMEDOUT past the
 * deadline, -ECONNRESET when the helper died without answering. The
 * caller reads the results only when it returns 0, then unrefs c. */
static int call_make(struct call *c)
{
    atomic_store_explicit(&c->refs, 2, memory_order_relaxed);
    struct call_wait w = {0};
    struct rt_spawn_opts so = {.monitor = true,
                               .monitor_ref = &w.mref,
                               .initial_call = "admin:workflow_call",
                               .arg_free = call_arg_free};
    if (rt_spawn(call_run, c, &so, &w.helper) < 0) {
        atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
        return -EAGAIN;
    }
    struct rt_msg *m = rt_receive_match(call_ended, &w, GW_ADMIN_CALL_TIMEOUT_MS);
    if (!m)
        return -ETIMEDOUT;
    int rc = m->type == CALL_DONE ? c->rc : -ECONNRESET;
    rt_msg_free(m);
    return rc;
}

static struct call *call_new(enum call_kind kind, const char *id)
{
    struct call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->kind = kind;
    atomic_init(&c->refs, 1);
    if (id)
        snprintf(c->id, sizeof c->id, "%s", id);
    return c;
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
    struct call *c = call_new(CALL_LIST, NULL);
    if (!c) {
        gw__admin_json(resp, 503, NULL);
        return;
    }
    struct wf_list_filter *f = &c->filter;
    f->limit = GW_ADMIN_WORKFLOWS_DEFAULT_LIMIT;
    int rc = gw__admin_query(req->query, "definition", c->def, sizeof c->def);
    if (rc == -EINVAL)
        goto bad;
    f->def_name = rc == 0 ? c->def : NULL;
    rc = gw__admin_query(req->query, "state", c->state, sizeof c->state);
    if (rc == -EINVAL)
        goto bad;
    f->state = rc == 0 ? c->state : NULL;
    rc = gw__admin_query(req->query, "after", c->after, sizeof c->after);
    if (rc == -EINVAL || (rc == 0 && !gw_wf_id_valid(c->after, strlen(c->after))))
        goto bad;
    f->after_id = rc == 0 ? c->after : NULL;
    uint64_t v = 0;
    rc = query_u64(req->query, "limit", UINT32_MAX, &v);
    if (rc == -EINVAL || (rc == 0 && v == 0))
        goto bad;
    if (rc == 0)
        f->limit = v > GW_ADMIN_WORKFLOWS_MAX_LIMIT ? GW_ADMIN_WORKFLOWS_MAX_LIMIT : (size_t)v;
    rc = query_u64(req->query, "older_than", (uint64_t)INT64_MAX / 2, &v);
    if (rc == -EINVAL)
        goto bad;
    if (rc == 0)
        f->older_than_ms = wall_ms() - (int64_t)v;
    size_t limit = f->limit;

    rc = call_make(c);
    if (rc < 0) {
        call_failed(resp, rc == -ENOENT ? -EIO : rc, JOURNAL_NAME, "list", NULL);
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < c->n && i < limit; i++)
        json_array_append_new(arr, summary_json(c->list[i]));
    /* A full page may have more after it: the next page starts after its
     * last id. */
    json_t *next = c->n >= limit ? json_string(c->list[limit - 1]->id) : json_null();
    gw__admin_json(resp, 200,
                   json_pack("{s:o, s:I, s:I, s:o}", "workflows", arr ? arr : json_array(), "count",
                             (json_int_t)(c->n < limit ? c->n : limit), "limit", (json_int_t)limit,
                             "next", next));
    goto out;
bad:
    gw__admin_errorf(resp, 400, "bad_request",
                     "query parameters: definition=NAME, state=STATE, older_than=MS, after=ID "
                     "(32 lower-case hex digits), limit=1..%d",
                     GW_ADMIN_WORKFLOWS_MAX_LIMIT);
out:
    call_unref(c);
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
    struct call *c = call_new(CALL_GET, id);
    int rc = c ? call_make(c) : -ENOMEM;
    if (rc < 0)
        call_failed(resp, rc, JOURNAL_NAME, "get", id);
    else
        gw__admin_json(resp, 200, detail_json(c->rec));
    if (c)
        call_unref(c);
}

/* ---- POST /admin/workflows/{id}/retry and /resolve ----------------------------------- */

/* -EINVAL from the service: the instance is not in `failed`. */
static void not_failed(struct gw_admin_response *resp, const char *id, const char *action)
{
    gw__admin_error(resp, 409, "not_failed",
                    json_pack("{s:s, s:s, s:s}", "id", id, "action", action, "message",
                              "only an instance in state failed can be retried or resolved"));
}

/* The answer to retry or resolve once the call returned rc; a timeout's
 * answer names the instance's registered name ("wf:<id>"). */
static void answer_call(struct gw_admin_response *resp, int rc, const char *id, const char *action,
                        const char *outcome)
{
    char name[WF_ID_LEN + 4];
    snprintf(name, sizeof name, "wf:%s", id);
    if (rc == -EINVAL)
        not_failed(resp, id, action);
    else if (rc < 0)
        call_failed(resp, rc, name, action, id);
    else
        gw__admin_json(resp, 200, json_pack("{s:s, s:s}", "id", id, "outcome", outcome));
}

void gw__admin_workflow_retry(const struct gw_admin_request *req, struct gw_admin_response *resp,
                              const char *id)
{
    (void)req;
    struct call *c = call_new(CALL_RETRY, id);
    int rc = c ? call_make(c) : -ENOMEM;
    if (c)
        call_unref(c);
    answer_call(resp, rc, id, "retry", "retrying");
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
    struct call *c = call_new(CALL_RESOLVE, id);
    if (c && note && !(c->note = strdup(note))) {
        call_unref(c);
        c = NULL;
    }
    int rc = c ? call_make(c) : -ENOMEM;
    if (c)
        call_unref(c);
    answer_call(resp, rc, id, "resolve", "resolved");
    json_decref(body);
}
