/*
 * http.c: the workflows' entry on the request path.
 *
 * A request to a workflow route is refused before its body is read when
 * its idempotency key is missing where required or malformed (400; the
 * connection closes when a body follows, as for every early refusal), or
 * its body is not JSON (415). Then the body is read (bounded), parsed as a
 * JSON object (400) and checked against the definition's input (422). The
 * instance is started with the key reserved in the same durable write
 * (gw_workflow_start); when the key already names an instance, the rules of
 * idem.h decide: the stored answer, 409 or 422. A started instance is
 * awaited up to the definition's wait_ms: its terminal answer, else 202
 * with Location {status_path}{id}; wait_ms 0 answers 202 at once. Over
 * max_running live instances the service refuses (-EAGAIN): 503 with
 * Retry-After.
 *
 * The terminal answer a client gets is built from the journal's record
 * (status, stored headers, body) both the first time and on every replay,
 * so a replay is byte-identical to the first answer (but for the request
 * id, which is each request's own).
 *
 * GET/HEAD {status_path}{id} is answered here before route matching, only
 * when the route table carries workflow definitions.
 *
 * Every answer leaves through the exchange's response writer.
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "def.h"
#include "gw/gateway.h"
#include "gw/metrics.h"
#include "idem.h"
#include "policy/policy.h"
#include "tls/compat.h"
#include "jpos/json.h"
#include "status.h"
#include "workflow.h"

#define CT_JSON "application/json"
#define DEFAULT_STATUS_PATH "/workflows/"

/* Who the route's chain authenticated (the consumer's name, or the subject
 * a token named without a consumer), NULL when nobody: keys are then scoped
 * by route. Scoping by identity keeps one client's key from replaying
 * another's stored answer. A name too long for the scope (a subject of up
 * to 1 KiB) is replaced by its SHA-256, written into buf. */
static const char *request_consumer(const struct gw__exchange *ex, char *buf, size_t cap)
{
    const struct gw_pol_req *pq = ex->pol;
    const char *who = pq ? (pq->consumer ? pq->consumer->name : pq->subject) : NULL;
    if (!who || strlen(who) <= GW_POL_NAME_MAX)
        return who;
    unsigned char h[32];
    if (cap < 8 + 2 * sizeof h + 1 || gw_tls_sha256(who, strlen(who), h) != 0)
        return NULL;
    size_t n = (size_t)snprintf(buf, cap, "sha256#");
    for (size_t i = 0; i < sizeof h; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%02x", h[i]);
    return buf;
}

static const char *status_path(void)
{
    const char *p = gw.cfg ? gw.cfg->workflows.status_path : NULL;
    return p && *p ? p : DEFAULT_STATUS_PATH;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Refusals before the body is read: the connection closes when one
 * follows. */
static void refuse(struct gw__exchange *ex, int status, const char *message)
{
    bool keep = ex->keep_alive && ex->head->framing == GW_HTTP_BODY_NONE;
    gw__ex_error(ex, status, message, keep);
}

/* A JSON error in the shape of gw_http_error_answer's, with Retry-After:
 * gw__ex_error has no further fields. */
static void error_retry_after(struct gw__exchange *ex, int status, const char *message,
                              struct gw__req_log *log)
{
    json_t *o = json_pack("{s:s, s:s}", "error", message, "request_id", ex->request_id);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        gw__ex_error(ex, 500, "out of memory", ex->keep_alive);
        return;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* json_dumps's NUL becomes the line's end */
    const struct gw_http_kv ra = {"Retry-After", GW_IDEM_RETRY_AFTER};
    struct gw_http_answer a = {
        .status = status, .content_type = CT_JSON, .no_store = true, .fields = &ra, .nfields = 1};
    gw__ex_answer(ex, &a, text, n + 1);
    log->bytes = gw__ex_head_request(ex) ? 0 : n + 1;
    free(text);
}

/* The stored terminal answer of `rec`: the same bytes every time. */
static void answer_stored(struct gw__exchange *ex, const struct wf_record *rec,
                          struct gw__req_log *log)
{
    struct gw_idem_fields f;
    if (gw_idem_stored_fields(rec->answer_headers, &f) < 0)
        memset(&f, 0, sizeof f); /* unreadable stored headers: the body still goes */
    struct gw_http_answer a = {
        .status = rec->answer_status >= 100 && rec->answer_status <= 599 ? rec->answer_status : 500,
        .content_type = f.content_type ? f.content_type : (rec->answer_body_len ? CT_JSON : NULL),
        .location = f.location,
        .fields = f.kv,
        .nfields = f.n,
    };
    gw__ex_answer(ex, &a, rec->answer_body, rec->answer_body_len);
    log->bytes = gw__ex_head_request(ex) ? 0 : rec->answer_body_len;
    gw_idem_fields_done(&f);
}

/* The instance's status document with `status`; a 202 also names where to
 * poll (Location). */
static void answer_status(struct gw__exchange *ex, int status, const struct wf_record *rec,
                          struct gw__req_log *log)
{
    json_t *o = gw_wf_status_json(rec);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        gw__ex_error(ex, 500, "out of memory", ex->keep_alive);
        return;
    }
    size_t n = strlen(text);
    text[n] = '\n';
    /* The configuration takes a status path of up to 256 bytes: room for
     * it and the id, so that Location is never cut short. */
    char loc[256 + WF_ID_LEN + 1];
    snprintf(loc, sizeof loc, "%.256s%s", status_path(), rec->id);
    struct gw_http_answer a = {
        .status = status,
        .content_type = CT_JSON,
        .no_store = true,
        .location = status == 202 ? loc : NULL,
    };
    gw__ex_answer(ex, &a, text, n + 1);
    log->bytes = gw__ex_head_request(ex) ? 0 : n + 1;
    free(text);
}

/* application/json, or a type with the +json suffix, parameters allowed. */
static bool json_content_type(const struct gw_http_head *h)
{
    size_t len = 0;
    const char *v = gw_http_head_get(h, "content-type", &len);
    if (!v || gw_http_head_count(h, "content-type") != 1)
        return false;
    const char *semi = memchr(v, ';', len);
    size_t n = semi ? (size_t)(semi - v) : len;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(v, "application/json", 16) == 0)
        return true;
    return n > 17 && strncasecmp(v, "application/", 12) == 0 &&
           strncasecmp(v + n - 5, "+json", 5) == 0;
}

/* Reads and parses the input: a JSON object. 0 with *input (and the raw
 * body in *body, *len for the fingerprint), or a status answered already. */
static int read_input(struct gw__exchange *ex, const struct route *r, char **body, size_t *len,
                      json_t **input)
{
    size_t max = GW_WF_MAX_INPUT_BYTES;
    if (r->max_body_bytes >= 0 && (uint64_t)r->max_body_bytes < max)
        max = (size_t)r->max_body_bytes;
    int rc = gw__ex_collect_body(ex, max + 1, body, len);
    if (rc == -EMSGSIZE) {
        gw__ex_error(ex, 413, "request body larger than a workflow's input may be", false);
        return 413;
    }
    if (rc == -ENOMEM) {
        gw__ex_error(ex, 500, "out of memory", false);
        return 500;
    }
    if (rc > 0) {
        gw__ex_error(ex, rc, "could not read the request body", false);
        return rc;
    }
    unsigned line = 0, col = 0;
    char msg[256];
    if (jpos_depth_check(*body, *len, GW_WF_MAX_INPUT_DEPTH, &line, &col) < 0) {
        snprintf(msg, sizeof msg, "the JSON body nests deeper than %d levels (line %u, column %u)",
                 GW_WF_MAX_INPUT_DEPTH, line, col);
        goto bad;
    }
    json_error_t err;
    json_t *v = json_loadb(*body, *len, JSON_REJECT_DUPLICATES, &err);
    if (!v) {
        snprintf(msg, sizeof msg, "the body is not valid JSON: %.160s (line %d, column %d)",
                 err.text, err.line, err.column);
        goto bad;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        snprintf(msg, sizeof msg, "the body must be a JSON object");
        goto bad;
    }
    *input = v;
    return 0;
bad:
    rt_free(*body);
    *body = NULL;
    gw__ex_error(ex, 400, msg, ex->keep_alive);
    return 400;
}

void gw__workflow_route(struct gw__exchange *ex, const struct route_table *table,
                        const struct route *r, const struct gw_http_target *t,
                        struct gw__req_log *log)
{
    const struct gw_http_head *h = ex->head;
    char *body = NULL;
    size_t body_len = 0;
    json_t *input = NULL;
    struct wf_record *rec = NULL;
    char keybuf[WF_KEY_MAX + 1];
    char scope[WF_SCOPE_MAX + 1];
    char msg[WF_MAX_NAME_BYTES + 160];

    const struct wf_set *set = gw__wf_table_set(table);
    const struct wf_def *def = set ? wf_set_find(set, r->workflow) : NULL;
    if (!def) {
        refuse(ex, 503, "the route's workflow is not loaded");
        goto out;
    }
    const char *key = NULL;
    size_t key_len = 0;
    int kr = gw_idem_key(h, def->key_header, &key, &key_len);
    if (kr == -E2BIG || kr == -EINVAL) {
        snprintf(msg, sizeof msg,
                 kr == -E2BIG ? "the %s field appears more than once"
                              : "the %s field must be 1 to 255 visible ASCII characters",
                 def->key_header);
        refuse(ex, 400, msg);
        goto out;
    }
    bool have_key = kr == 0;
    if (gw_idem_decide(def->idempotency == WF_IDEM_REQUIRED, have_key, NULL, NULL, 0) ==
        GW_IDEM_MISSING) {
        snprintf(msg, sizeof msg, "this workflow requires an %s field", def->key_header);
        refuse(ex, 400, msg);
        goto out;
    }
    if (!json_content_type(h)) {
        refuse(ex, 415,
               "a workflow's input must be JSON, sent with Content-Type: "
               "application/json");
        goto out;
    }
    if (read_input(ex, r, &body, &body_len, &input))
        goto out;
    if (wf_input_check(def, input, msg, sizeof msg) < 0) {
        gw__ex_error(ex, 422, msg, ex->keep_alive);
        goto out;
    }
    unsigned char fp[WF_FINGERPRINT_LEN];
    gw_idem_fingerprint(h->method, t->path, t->path_len, t->query, t->query ? t->query_len : 0,
                        body, body_len, fp);
    if (have_key) {
        memcpy(keybuf, key, key_len);
        keybuf[key_len] = 0;
        char who[80];
        if (gw_idem_scope(request_consumer(ex, who, sizeof who), r->name, scope, sizeof scope) <
            0) {
            gw__ex_error(ex, 500, "the key's scope is too long", ex->keep_alive);
            goto out;
        }
    }
    enum gw_wf_start how = GW_WF_STARTED;
    int rc = gw_workflow_start(def, input, have_key ? scope : NULL, have_key ? keybuf : NULL, fp,
                               &how, &rec);
    if (rc == -EAGAIN) {
        error_retry_after(ex, 503, "too many workflows are running", log);
        goto out;
    }
    if (rc < 0) {
        gw__ex_error(ex, 503, "the workflow could not be started", ex->keep_alive);
        goto out;
    }
    if (how == GW_WF_EXISTING) {
        switch (gw_idem_decide(true, true, rec, fp, wall_ms())) {
        case GW_IDEM_REPLAY:
            answer_stored(ex, rec, log);
            break;
        case GW_IDEM_MISMATCH:
            gw__ex_error(ex, 422, "this idempotency key was used for a different request",
                         ex->keep_alive);
            break;
        default: /* in progress (an expired key the journal still holds counts as taken) */
            error_retry_after(ex, 409, "a request with this idempotency key is in progress", log);
            break;
        }
        goto out;
    }
    gw_metrics_workflow(def->name, GW_METRICS_WF_STARTED);
    if (def->wait_ms && !rec->terminal) {
        struct wf_record *done = NULL;
        if (gw_workflow_await(rec->id, def->wait_ms, &done) == 0) {
            wf_record_free(rec);
            rec = done;
        }
    }
    if (rec->terminal)
        answer_stored(ex, rec, log);
    else
        answer_status(ex, 202, rec, log);
out:
    wf_record_free(rec);
    json_decref(input);
    rt_free(body);
}

bool gw__workflow_status(struct gw__exchange *ex, const struct route_table *table,
                         const struct gw_http_target *t, struct gw__req_log *log)
{
    const struct wf_set *set = gw__wf_table_set(table);
    const char *id = NULL;
    size_t id_len = 0;
    if (!set || wf_set_count(set) == 0 ||
        !gw_wf_status_path_match(status_path(), t->path, t->path_len, &id, &id_len))
        return false;
    log->route_name = "_workflows";
    const char *m = ex->head->method;
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        bool keep = ex->keep_alive && ex->head->framing == GW_HTTP_BODY_NONE;
        gw__ex_error_allow(ex, 405, "the workflow status path answers GET and HEAD", keep,
                           "GET, HEAD");
        return true;
    }
    int st = gw__ex_discard_body(ex);
    if (st) {
        gw__ex_error(ex, st, "could not read the request body", false);
        return true;
    }
    if (!gw_wf_id_valid(id, id_len)) {
        gw__ex_error(ex, 404, "no workflow instance has this id (32 lower-case hex digits)",
                     ex->keep_alive);
        return true;
    }
    char idz[WF_ID_LEN + 1];
    memcpy(idz, id, WF_ID_LEN);
    idz[WF_ID_LEN] = 0;
    struct wf_record *rec = NULL;
    int rc = wf_journal_get(idz, false, &rec);
    if (rc == -ENOENT)
        gw__ex_error(ex, 404, "no workflow instance has this id", ex->keep_alive);
    else if (rc < 0)
        gw__ex_error(ex, 503, "the workflow journal is unavailable", ex->keep_alive);
    else
        answer_status(ex, 200, rec, log);
    wf_record_free(rec);
    return true;
}
