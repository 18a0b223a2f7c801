/*
 * instance.c: one gen_statem process per workflow instance.
 *
 * The instance's position is what its journal says: every process (a new
 * one, one restarted after a crash, one recovered at start) begins by
 * reading the instance's record and transitions and replaying them
 * (replay() applies each outcome with the same function the live path
 * uses), so there is one way to know where an instance is.
 *
 * Write-ahead: before each send an `intent` transition is journalled (the
 * call parks until it is durable), and the answer's `outcome` transition
 * is journalled before the instance acts on it. An intent without an
 * outcome (the process died in between) is sent again with the same
 * Idempotency-Key: the upstream, deduplicating by key, applies it once.
 *
 * The send itself runs in a linked worker process (call.c), so that the
 * machine stays responsive (awaits, sys messages, the process list) and a
 * step's timeout is a gen_statem state timeout. A late result of a worker
 * given up on is recognised by its ref and dropped.
 *
 * States of the machine: S_INIT (reading the journal), S_CALLING (a worker
 * runs), S_BACKOFF (waiting to resend), S_FAILED (compensation gave up:
 * waits for an operator), S_DONE (terminal: answers the waiters, then
 * stops normally, so its transient child spec is not restarted). The
 * instance's own state as users see it ("step:debit", "compensating:debit",
 * "completed", ...) is the journalled one, also shown as the process's
 * state and detail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "call.h"
#include "def.h"
#include "gw/metrics.h"
#include "instance.h"
#include "journal.h"
#include "rt/gen_statem.h"
#include "rt/rt.h"

/* Extra time a worker gets past its own deadline before the instance gives
 * up on it (the worker's call is itself bounded by the step's timeout). */
#define WORKER_GRACE_MS 1000
/* How long an instance waits before reading its journal again after a
 * write failed. */
#define JOURNAL_RETRY_MS 1000
/* An instance idle this long (waiting for an operator, a long backoff,
 * a slow upstream) drops its stack until its next event. */
#define HIBERNATE_AFTER_MS 1000
/* A step's timeout when the definition gives none. */
#define DEFAULT_TIMEOUT_MS 10000

enum { S_INIT = 0, S_CALLING, S_BACKOFF, S_FAILED, S_DONE, S_COUNT };
static const char *const state_names[S_COUNT] = {"init", "calling", "backoff", "failed", "done"};

enum phase { PH_STEP = 0, PH_COMP, PH_COMPLETED, PH_COMPENSATED, PH_FAILED, PH_RESOLVED };

enum outcome { O_SUCCESS = 0, O_FAILURE, O_UNKNOWN, O_NOT_SENT };
static const char *const outcome_names[] = {"success", "failure", "unknown", "not_sent"};

/* What to do after an outcome. */
enum next { NX_SEND = 0, NX_BACKOFF, NX_END };

struct inst {
    char id[WF_ID_LEN + 1];
    char name[WF__NAME_MAX];
    struct wf_def *def; /* compiled from the journalled text; owned */
    json_t *input;
    struct wf_step_result *res; /* def->nsteps */
    enum phase phase;
    size_t idx;         /* the step run or compensated (PH_FAILED: where it stopped) */
    uint32_t attempt;   /* sends of the current action so far */
    bool unsure;        /* a send of the current action may have been applied */
    bool pending;       /* replay: an intent without its outcome */
    int64_t comp_since; /* wall ms compensation (re)started */
    uint32_t seq;       /* last journalled transition */
    char state[WF_STATE_MAX];
    rt_pid worker;
    rt_ref call_ref;
    uint64_t sent_us;  /* monotonic time the worker started, for the step histogram */
    int answer_status; /* once ended: what the client is answered */
    char *answer_body;
    bool counted; /* running counter incremented (init; undone when freed) */
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wf__instance_name(const char *id, char out[WF__NAME_MAX])
{
    snprintf(out, WF__NAME_MAX, "wf:%s", id);
}

static const struct wf_request *action_req(const struct inst *d)
{
    const struct wf_step *s = &d->def->steps[d->idx];
    return d->phase == PH_COMP ? s->compensate : &s->request;
}

static void state_label(struct inst *d)
{
    const char *n = d->idx < d->def->nsteps ? d->def->steps[d->idx].name : "";
    switch (d->phase) {
    case PH_STEP:
        snprintf(d->state, sizeof d->state, "step:%s", n);
        break;
    case PH_COMP:
        snprintf(d->state, sizeof d->state, "compensating:%s", n);
        break;
    case PH_COMPLETED:
        snprintf(d->state, sizeof d->state, "completed");
        break;
    case PH_COMPENSATED:
        snprintf(d->state, sizeof d->state, "compensated");
        break;
    case PH_FAILED:
        snprintf(d->state, sizeof d->state, "failed");
        break;
    case PH_RESOLVED:
        snprintf(d->state, sizeof d->state, "resolved");
        break;
    }
    /* The runtime's state name holds 31 bytes: the detail line has room
     * for the whole state (names are at most WF_MAX_NAME_BYTES). */
    rt_set_state_name(d->state);
    rt_set_detail("%s %s attempt=%u", d->def->name, d->state, d->attempt);
}

/* ---- position: the one function live sends and replay both use --------- */

/* The highest step below `below` that has something to undo, or -1. */
static long undo_below(const struct inst *d, size_t below)
{
    for (size_t j = below; j-- > 0;)
        if (d->def->steps[j].compensate)
            return (long)j;
    return -1;
}

static void comp_begin(struct inst *d, size_t below, int64_t at)
{
    long j = undo_below(d, below);
    d->attempt = 0;
    d->unsure = false;
    d->comp_since = at;
    if (j < 0) {
        d->phase = PH_COMPENSATED;
        return;
    }
    d->phase = PH_COMP;
    d->idx = (size_t)j;
}

static void result_set(struct inst *d, int status, json_t *body)
{
    struct wf_step_result *r = &d->res[d->idx];
    json_decref(r->body);
    r->status = status;
    r->body = body ? json_incref(body) : NULL;
}

/* Applies the outcome of the current action (journalled at `at`). */
static enum next apply(struct inst *d, enum outcome o, int status, json_t *body, int64_t at)
{
    const struct wf_step *s = &d->def->steps[d->idx];
    if (d->phase == PH_STEP) {
        switch (o) {
        case O_SUCCESS:
            result_set(d, status, body);
            d->idx++;
            d->attempt = 0;
            d->unsure = false;
            if (d->idx == d->def->nsteps) {
                d->idx = d->def->nsteps - 1;
                d->phase = PH_COMPLETED;
                return NX_END;
            }
            return NX_SEND;
        case O_FAILURE:
            result_set(d, status, body);
            comp_begin(d, d->idx, at);
            return d->phase == PH_COMPENSATED ? NX_END : NX_SEND;
        case O_NOT_SENT:
            /* Nothing of this step can have been applied unless an earlier
             * send's outcome is unknown: only then may it give up. */
            if (!d->unsure && s->retry.attempts && d->attempt >= s->retry.attempts) {
                comp_begin(d, d->idx, at);
                return d->phase == PH_COMPENSATED ? NX_END : NX_SEND;
            }
            return NX_BACKOFF;
        case O_UNKNOWN:
            d->unsure = true;
            return NX_BACKOFF;
        }
    }
    /* PH_COMP: an undo is retried until it succeeds or the limit passes. */
    if (o == O_SUCCESS) {
        long j = undo_below(d, d->idx);
        d->attempt = 0;
        d->unsure = false;
        if (j < 0) {
            d->phase = PH_COMPENSATED;
            return NX_END;
        }
        d->idx = (size_t)j;
        return NX_SEND;
    }
    if (o == O_UNKNOWN)
        d->unsure = true;
    if (d->def->compensate_limit_ms && at - d->comp_since >= (int64_t)d->def->compensate_limit_ms) {
        d->phase = PH_FAILED;
        return NX_END;
    }
    return NX_BACKOFF;
}

static uint32_t backoff_ms(const struct inst *d)
{
    const struct wf_step *s = &d->def->steps[d->idx];
    const struct wf_retry *r = d->phase == PH_COMP ? &s->compensate_retry : &s->retry;
    uint64_t b = r->backoff_ms;
    for (uint32_t i = 1; i < d->attempt && b && b < UINT32_MAX; i++)
        b *= 2;
    if (r->backoff_max_ms && b > r->backoff_max_ms)
        b = r->backoff_max_ms;
    return b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
}

/* ---- the answer ------------------------------------------------------------ */

static void ctx_of(const struct inst *d, struct wf_ctx *c)
{
    c->id = d->id;
    c->name = d->def->name;
    c->input = d->input;
    c->steps = d->res;
}

static json_t *default_body(const struct inst *d)
{
    json_t *steps = json_object();
    for (size_t i = 0; steps && i < d->def->nsteps; i++) {
        if (!d->res[i].status)
            continue;
        json_t *b = d->res[i].body ? json_incref(d->res[i].body) : json_null();
        json_object_set_new(steps, d->def->steps[i].name,
                            json_pack("{s:i,s:o}", "status", d->res[i].status, "body", b));
    }
    return json_pack("{s:s,s:s,s:s,s:o}", "id", d->id, "workflow", d->def->name, "state", d->state,
                     "steps", steps ? steps : json_object());
}

/* Builds the answer of the terminal phase into d->answer_*. */
static void answer_build(struct inst *d)
{
    const struct wf_answer *a = d->phase == PH_COMPLETED     ? &d->def->completed
                                : d->phase == PH_COMPENSATED ? &d->def->compensated
                                                             : &d->def->failed;
    if (d->phase == PH_RESOLVED && d->answer_body)
        return; /* resolved: the failed answer, unchanged */
    json_t *body = NULL;
    if (a->body) {
        struct wf_ctx c;
        char err[200];
        ctx_of(d, &c);
        if (wf_expand_json(a->body, &c, &body, err, sizeof err) < 0) {
            rt_log(RT_LOG_WARNING, "workflow %s %s: answer template: %s", d->def->name, d->id, err);
            body = NULL;
        }
    }
    if (!body)
        body = default_body(d);
    free(d->answer_body);
    d->answer_body = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    d->answer_status = a->status;
}

/* ---- the journal ------------------------------------------------------------ */

/* `at`: the wall time the transition's decision was taken at, which
 * replay uses again (the compensation limit), so that it decides alike. */
static int journal(struct inst *d, const char *event, json_t *detail, bool terminal, int64_t at)
{
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    struct wf_transition t = {
        .id = d->id,
        .seq = d->seq + 1,
        .state = d->state,
        .event = event,
        .detail = text ? text : "{}",
        .detail_len = text ? strlen(text) : 2,
        .at_ms = at,
        .terminal = terminal,
    };
    if (terminal) {
        t.answer_status = d->answer_status;
        t.answer_body = d->answer_body ? d->answer_body : "";
        t.answer_body_len = d->answer_body ? strlen(d->answer_body) : 0;
    }
    int rc = wf_journal_append(&t);
    free(text);
    if (rc == 0)
        d->seq++;
    return rc;
}

/* A journal write that failed: -ESTALE means another replica owns the
 * instance now (a clean stop: it carries on there). Anything else leaves
 * the instance where its journal says it is, which this process may no
 * longer know (was the write applied?): it forgets its position and reads
 * the journal again after JOURNAL_RETRY_MS, as a restarted process would,
 * without a crash loop while the journal is down. */
static void position_reset(struct inst *d);
static void stop_journal(struct inst *d, struct rt_statem_result *r, int rc)
{
    if (rc == -ESTALE) {
        rt_sm_stop(r, rt_atom_intern("shutdown:stale"));
        return;
    }
    rt_log(RT_LOG_WARNING, "workflow %s: journal write failed (%s); reading it again in %d ms",
           d->id, strerror(-rc), JOURNAL_RETRY_MS);
    position_reset(d);
    rt_sm_next_state(r, S_INIT);
    rt_sm_state_timeout(r, JOURNAL_RETRY_MS, NULL);
}

/* ---- sending ---------------------------------------------------------------- */

struct job {
    rt_pid owner;
    rt_ref ref;
    struct wf_call_req req;
    struct wf_call_header *headers;
    char *method, *path, *body, *key;
    char id[WF_ID_LEN + 1];
};

static void job_free(void *arg)
{
    struct job *j = arg;
    if (!j)
        return;
    for (size_t i = 0; i < j->req.nheaders; i++)
        free((char *)j->headers[i].value);
    free(j->headers);
    free(j->method);
    free(j->path);
    free(j->body);
    free(j->key);
    free(j);
}

static void res_free(void *arg)
{
    struct wf_call_res *res = arg;
    wf_call_res_done(res);
    free(res);
}

/* A worker's result message owns its struct wf_call_res: taken (and the
 * payload cleared) by whoever handles the message; freed by the dtor when
 * the runtime drops it undelivered. */
static struct wf_call_res *res_take(struct rt_msg *m)
{
    struct wf_call_res *res = NULL;
    if (m->size == sizeof res) {
        memcpy(&res, m->data, sizeof res);
        memset(m->data, 0, sizeof res);
    }
    return res;
}

static void res_dtor(struct rt_msg *m)
{
    res_free(res_take(m));
}

static void worker_main(void *arg)
{
    struct job *j = arg;
    /* Freed however the worker ends (the instance may kill it). */
    rt_defer(job_free, j);
    struct wf_call_res *res = calloc(1, sizeof *res);
    if (!res)
        rt_exit(RT_NORMAL);
    uint64_t held = rt_defer(res_free, res);
    if (!held) {
        free(res);
        rt_exit(RT_NORMAL);
    }
    if (wf_call(&j->req, res) < 0) {
        res->kind = WF_CALL_NOT_SENT;
        snprintf(res->error, sizeof res->error, "out of memory");
    }
    struct rt_msg *m = rt_msg_new(WF__MSG_CALL_DONE, sizeof res);
    if (!m)
        return; /* res freed by its deferred cleanup; the instance times out */
    rt_undefer(held, false);
    memcpy(m->data, &res, sizeof res);
    m->ref = j->ref;
    m->dtor = res_dtor;
    rt_send(j->owner, m);
}

/* Expands the current action's request into a job. -ENOENT with err: a
 * placeholder has no value; -ENOMEM. */
static int job_build(const struct inst *d, struct job **out, char *err, size_t errcap)
{
    const struct wf_step *s = &d->def->steps[d->idx];
    const struct wf_request *q = action_req(d);
    struct wf_ctx c;
    ctx_of(d, &c);
    struct job *j = calloc(1, sizeof *j);
    json_t *body = NULL;
    size_t len = 0;
    int rc = -ENOMEM;
    if (!j)
        return -ENOMEM;
    memcpy(j->id, d->id, sizeof j->id);
    j->method = strdup(q->method);
    j->headers = calloc(q->nheaders ? q->nheaders : 1, sizeof *j->headers);
    if (asprintf(&j->key, "%s.%s%s", d->id, s->name, d->phase == PH_COMP ? ".undo" : "") < 0)
        j->key = NULL;
    if (!j->method || !j->headers || !j->key)
        goto out;
    rc = wf_expand_string(q->path, &c, &j->path, &len, err, errcap);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < q->nheaders; i++) {
        char *v = NULL;
        rc = wf_expand_string(q->headers[i].value, &c, &v, &len, err, errcap);
        if (rc < 0)
            goto out;
        j->headers[i].name = q->headers[i].name;
        j->headers[i].value = v;
        j->req.nheaders = i + 1;
    }
    if (q->body) {
        rc = wf_expand_json(q->body, &c, &body, err, errcap);
        if (rc < 0)
            goto out;
        j->body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        rc = -ENOMEM;
        if (!j->body)
            goto out;
    }
    j->req.upstream_index = s->upstream_index;
    j->req.method = j->method;
    j->req.path = j->path;
    j->req.headers = j->headers;
    j->req.body = j->body;
    j->req.body_len = j->body ? strlen(j->body) : 0;
    j->req.idempotency_key = j->key;
    j->req.workflow_id = j->id;
    j->req.timeout_ms = s->timeout_ms ? s->timeout_ms : DEFAULT_TIMEOUT_MS;
    /* A head too big for the call would be refused unsent on every retry:
     * it is refused here, like a template that cannot expand. */
    if ((rc = wf_call_head_check(&j->req)) < 0) {
        if (rc == -E2BIG)
            snprintf(err, errcap, "the request's path and headers are over 16 KiB");
        goto out;
    }
    *out = j;
    j = NULL;
    rc = 0;
out:
    json_decref(body);
    job_free(j);
    return rc;
}

static int end(struct inst *d, struct rt_statem_result *r, const char *event, json_t *detail,
               int64_t at);
static void outcome(struct inst *d, struct rt_statem_result *r, enum outcome o, int status,
                    json_t *body, const char *error, const char *target);

/* Journals the intent of the current action and starts its worker. */
static void action_send(struct inst *d, struct rt_statem_result *r)
{
    char err[200] = "";
    struct job *j = NULL;
    int rc = job_build(d, &j, err, sizeof err);
    if (rc == -ENOMEM) {
        rt_sm_stop(r, rt_atom_intern("out_of_memory"));
        return;
    }
    if (rc < 0) {
        /* The request cannot be built: nothing is sent. For a step this is
         * a definite failure (it never ran); an undo waits and tries again
         * until its limit (its inputs cannot change: an operator looks). */
        outcome(d, r, d->phase == PH_STEP ? O_FAILURE : O_NOT_SENT, 0, NULL, err, "");
        return;
    }
    d->attempt++;
    state_label(d);
    json_t *detail =
        json_pack("{s:s,s:s,s:i,s:s,s:s,s:s}", "action", d->phase == PH_COMP ? "undo" : "step",
                  "step", d->def->steps[d->idx].name, "attempt", (int)d->attempt, "key", j->key,
                  "method", j->method, "path", j->path);
    rc = journal(d, "intent", detail, false, wall_ms());
    json_decref(detail);
    if (rc < 0) {
        job_free(j);
        stop_journal(d, r, rc);
        return;
    }
    j->owner = rt_self();
    j->ref = rt_make_ref();
    uint32_t timeout = j->req.timeout_ms;
    struct rt_spawn_opts o = {.link = true, .initial_call = "wf_call", .arg_free = job_free};
    rt_ref ref = j->ref;
    d->sent_us = rt_now_ns() / 1000u;
    if (rt_spawn(worker_main, j, &o, &d->worker) < 0) {
        job_free(j);
        /* Nothing left: the intent stands without an outcome, as after a
         * crash; the restart resends it. */
        rt_sm_stop(r, rt_atom_intern("spawn_failed"));
        return;
    }
    d->call_ref = ref;
    rt_sm_next_state(r, S_CALLING);
    rt_sm_state_timeout(r, (int64_t)timeout + WORKER_GRACE_MS, NULL);
}

/* Journals an outcome of the current action and acts on it. */
static void outcome(struct inst *d, struct rt_statem_result *r, enum outcome o, int status,
                    json_t *body, const char *error, const char *target)
{
    const char *step = d->def->steps[d->idx].name;
    const char *action = d->phase == PH_COMP ? "undo" : "step";
    uint32_t attempt = d->attempt;
    int64_t at = wall_ms();
    enum next nx = apply(d, o, status, body, at);
    json_t *detail =
        json_pack("{s:s,s:s,s:i,s:s,s:i,s:O?,s:s,s:s}", "action", action, "step", step, "attempt",
                  (int)attempt, "outcome", outcome_names[o], "status", status, "body", body,
                  "error", error ? error : "", "target", target ? target : "");
    if (nx == NX_END) {
        end(d, r, "outcome", detail, at);
        json_decref(detail);
        return;
    }
    state_label(d);
    int rc = journal(d, "outcome", detail, false, at);
    json_decref(detail);
    if (rc < 0) {
        stop_journal(d, r, rc);
        return;
    }
    if (nx == NX_SEND) {
        action_send(d, r);
        return;
    }
    rt_sm_next_state(r, S_BACKOFF);
    rt_sm_state_timeout(r, backoff_ms(d), NULL);
}

/* Journals the terminal transition (or `failed`) with its answer; the
 * journal's error when it could not (the machine has been told what to
 * do then). */
static int end(struct inst *d, struct rt_statem_result *r, const char *event, json_t *detail,
               int64_t at)
{
    state_label(d);
    answer_build(d);
    int rc = journal(d, event, detail, true, at);
    if (rc < 0) {
        stop_journal(d, r, rc);
        return rc;
    }
    struct wf__counters *k = &wf__counters;
    /* Relaxed: counters shown on their own. */
    if (d->phase == PH_COMPLETED) {
        atomic_fetch_add_explicit(&k->completed, 1, memory_order_relaxed);
        gw_metrics_workflow(d->def->name, GW_METRICS_WF_COMPLETED);
    } else if (d->phase == PH_COMPENSATED) {
        atomic_fetch_add_explicit(&k->compensated, 1, memory_order_relaxed);
        gw_metrics_workflow(d->def->name, GW_METRICS_WF_COMPENSATED);
    } else if (d->phase == PH_FAILED) {
        atomic_fetch_add_explicit(&k->failed, 1, memory_order_relaxed);
        gw_metrics_workflow(d->def->name, GW_METRICS_WF_FAILED);
    }
    rt_sm_next_state(r, d->phase == PH_FAILED ? S_FAILED : S_DONE);
    return 0;
}

/* ---- replay ------------------------------------------------------------------ */

static enum outcome outcome_parse(const char *s)
{
    for (size_t i = 0; i < sizeof outcome_names / sizeof *outcome_names; i++)
        if (strcmp(s, outcome_names[i]) == 0)
            return (enum outcome)i;
    return O_UNKNOWN;
}

/* Rebuilds the position from the transitions. -EINVAL when they do not
 * fit the definition (the journal is not this instance's). */
static int replay(struct inst *d, const struct wf_record *rec)
{
    for (size_t i = 0; i < rec->ntransitions; i++) {
        const struct wf_record_transition *t = &rec->transitions[i];
        json_t *det = t->detail ? json_loads(t->detail, JSON_DECODE_ANY, NULL) : NULL;
        const char *ev = t->event ? t->event : "";
        d->seq = t->seq;
        if (strcmp(ev, "intent") == 0) {
            if (d->phase != PH_STEP && d->phase != PH_COMP) {
                json_decref(det);
                return -EINVAL;
            }
            d->attempt = (uint32_t)json_integer_value(json_object_get(det, "attempt"));
            d->pending = true;
        } else if (strcmp(ev, "outcome") == 0) {
            if (d->phase != PH_STEP && d->phase != PH_COMP) {
                json_decref(det);
                return -EINVAL;
            }
            const char *o = json_string_value(json_object_get(det, "outcome"));
            json_t *body = json_object_get(det, "body");
            apply(d, outcome_parse(o ? o : ""),
                  (int)json_integer_value(json_object_get(det, "status")),
                  json_is_null(body) ? NULL : body, t->at_ms);
            d->pending = false;
        } else if (strcmp(ev, "operator:retry") == 0) {
            d->phase = PH_COMP;
            d->attempt = 0;
            d->unsure = false;
            d->comp_since = t->at_ms;
        } else if (strcmp(ev, "operator:resolve") == 0) {
            d->phase = PH_RESOLVED;
        }
        json_decref(det);
    }
    if (d->pending)
        d->unsure = true; /* the unanswered send may have been applied */
    return 0;
}

/* ---- the machine --------------------------------------------------------------- */

/* Back to what init left: no definition, no position. */
static void position_reset(struct inst *d)
{
    if (d->res)
        for (size_t i = 0; i < d->def->nsteps; i++)
            json_decref(d->res[i].body);
    free(d->res);
    json_decref(d->input);
    wf_def_free(d->def);
    free(d->answer_body);
    d->res = NULL;
    d->input = NULL;
    d->def = NULL;
    d->answer_body = NULL;
    d->answer_status = 0;
    d->phase = PH_STEP;
    d->idx = 0;
    d->attempt = 0;
    d->unsure = d->pending = false;
    d->comp_since = 0;
    d->seq = 0;
}

static void inst_free(struct inst *d)
{
    if (!d)
        return;
    position_reset(d);
    if (d->counted)
        atomic_fetch_sub_explicit(&wf__counters.running, 1, memory_order_relaxed);
    free(d);
}

static void inst_free_deferred(void *arg)
{
    inst_free(arg);
}

static void init(void *arg, struct rt_statem_result *r)
{
    const char *id = arg;
    struct inst *d = calloc(1, sizeof *d);
    if (!d) {
        rt_sm_error(r, rt_atom_intern("out_of_memory"));
        return;
    }
    snprintf(d->id, sizeof d->id, "%s", id);
    wf__instance_name(d->id, d->name);
    /* The data is freed however the process ends, killed included
     * (terminate does not run then). */
    if (!rt_defer(inst_free_deferred, d)) {
        free(d);
        rt_sm_error(r, rt_atom_intern("out_of_memory"));
        return;
    }
    /* Counted from init on, which the starter waits for: a start counted
     * now is seen by the next start's bound (service.c). */
    atomic_fetch_add_explicit(&wf__counters.running, 1, memory_order_relaxed);
    d->counted = true;
    rt_kind k;
    if (rt_kind_register("workflow", &k) == 0)
        rt_set_kind(k);
    rt_set_state_name("init");
    /* The journal is read after init returns: the supervisor that starts
     * this process waits for init, and must not wait for the journal. */
    rt_sm_init_ok(r, S_INIT, d);
    rt_sm_next_event(r, RT_EV_INTERNAL, NULL);
}

static void load(struct inst *d, struct rt_statem_result *r)
{
    struct wf_record *rec = NULL;
    struct jpos_diags diags;
    const char *const *names;
    size_t nnames;
    int rc = wf_journal_get(d->id, true, &rec);
    if (rc == -ESTALE || rc == -ENOENT) {
        rt_log(RT_LOG_ERROR, "workflow %s: cannot read its journal: %s", d->id, strerror(-rc));
        rt_sm_stop(r, rt_atom_intern("shutdown:gone"));
        return;
    }
    if (rc < 0) {
        /* The journal is down: read it again later, in this process. A
         * crash would be restarted at once, read at once, and loop until
         * the supervisor's restart intensity gave up on every instance. */
        rt_log(RT_LOG_WARNING, "workflow %s: cannot read its journal (%s); again in %d ms", d->id,
               strerror(-rc), JOURNAL_RETRY_MS);
        rt_sm_state_timeout(r, JOURNAL_RETRY_MS, NULL);
        return;
    }
    wf__upstream_names(&names, &nnames);
    jpos_diags_init(&diags);
    rc = wf_def_from_text(rec->def_text, rec->def_text_len, names, nnames, &d->def, &diags);
    jpos_diags_done(&diags);
    if (rc < 0 || !d->def->nsteps) {
        rt_log(RT_LOG_ERROR, "workflow %s: its definition %s no longer compiles (%s)", d->id,
               rec->def_name, strerror(rc < 0 ? -rc : EINVAL));
        wf_record_free(rec);
        rt_sm_stop(r, rt_atom_intern("shutdown:bad_definition"));
        return;
    }
    d->input = json_loadb(rec->input ? rec->input : "{}", rec->input ? rec->input_len : 2, 0, NULL);
    d->res = calloc(d->def->nsteps, sizeof *d->res);
    if (!d->input || !d->res) {
        wf_record_free(rec);
        rt_sm_stop(r, rt_atom_intern("out_of_memory"));
        return;
    }
    if (rec->terminal && rec->answer_body) {
        d->answer_status = rec->answer_status;
        d->answer_body = strdup(rec->answer_body);
    }
    rc = replay(d, rec);
    wf_record_free(rec);
    if (rc < 0) {
        rt_log(RT_LOG_ERROR, "workflow %s: its transitions do not fit its definition", d->id);
        rt_sm_stop(r, rt_atom_intern("shutdown:bad_journal"));
        return;
    }
    state_label(d);
    switch (d->phase) {
    case PH_STEP:
    case PH_COMP:
        action_send(d, r);
        return;
    case PH_FAILED:
        rt_sm_next_state(r, S_FAILED);
        return;
    default:
        rt_sm_next_state(r, S_DONE);
        return;
    }
}

static void reply_int(struct rt_statem_result *r, const struct rt_gs_from *from, int v)
{
    struct rt_msg *m = rt_msg_new(0, 0);
    if (m)
        m->u64 = (uint64_t)(int64_t)v;
    rt_sm_reply(r, from, m);
}

static void worker_done(struct inst *d, struct wf_call_res *res, struct rt_statem_result *r)
{
    enum outcome o = O_UNKNOWN;
    if (res->kind == WF_CALL_NOT_SENT)
        o = O_NOT_SENT;
    else if (res->kind == WF_CALL_ANSWERED && res->status >= 100 && res->status <= 599)
        o = (enum outcome)d->def->steps[d->idx].outcome[res->status - 100];
    if (res->kind == WF_CALL_ANSWERED && o == O_UNKNOWN)
        snprintf(res->error, sizeof res->error, "status %d: outcome unknown", res->status);
    d->worker = 0;
    d->call_ref = 0;
    if (res->kind != WF_CALL_NOT_SENT)
        gw_metrics_workflow_step(d->def->name, rt_now_ns() / 1000u - d->sent_us);
    outcome(d, r, o, res->kind == WF_CALL_ANSWERED ? res->status : 0, res->json, res->error,
            res->target);
    res_free(res);
}

static void operator_call(struct inst *d, int state, struct rt_statem_event *ev,
                          struct rt_statem_result *r, uint32_t type)
{
    if (state != S_FAILED) {
        reply_int(r, &ev->from, -EINVAL);
        return;
    }
    /* The operator is answered once the action is journalled: an action
     * the journal refused did not happen (the instance reads its journal
     * again and waits in `failed`, or another replica owns it). */
    if (type == WF__CALL_RESOLVE) {
        const char *note = ev->msg->size ? (const char *)ev->msg->data : "";
        json_t *detail = json_pack("{s:s%}", "note", note, strnlen(note, ev->msg->size));
        d->phase = PH_RESOLVED;
        int rc = end(d, r, "operator:resolve", detail, wall_ms());
        json_decref(detail);
        reply_int(r, &ev->from, rc);
        return;
    }
    d->phase = PH_COMP;
    d->attempt = 0;
    d->unsure = false;
    d->comp_since = wall_ms();
    state_label(d);
    int rc = journal(d, "operator:retry", NULL, false, d->comp_since);
    reply_int(r, &ev->from, rc);
    if (rc < 0) {
        stop_journal(d, r, rc);
        return;
    }
    action_send(d, r);
}

static void handle(struct rt_statem_event *ev, int state, void *data, struct rt_statem_result *r)
{
    struct inst *d = data;
    uint32_t type = ev->msg ? ev->msg->type & ~(RT_GS_CALL_BIT | RT_GS_CAST_BIT) : 0;
    switch (ev->type) {
    case RT_EV_INTERNAL:
        if (state == S_INIT)
            load(d, r);
        return;
    case RT_EV_CALL:
        if (type == WF__CALL_AWAIT) {
            /* Answered once the instance ended (or stopped to wait for an
             * operator): postponed until the state changes. */
            if (state == S_DONE || state == S_FAILED)
                rt_sm_reply(r, &ev->from, NULL);
            else
                rt_sm_postpone(r);
            return;
        }
        if (type == WF__CALL_RETRY || type == WF__CALL_RESOLVE) {
            if (state == S_INIT) {
                rt_sm_postpone(r);
                return;
            }
            operator_call(d, state, ev, r, type);
            return;
        }
        reply_int(r, &ev->from, -EINVAL);
        return;
    case RT_EV_INFO:
        if (type == WF__MSG_CALL_DONE) {
            struct wf_call_res *res = res_take(ev->msg);
            if (res && state == S_CALLING && ev->msg->ref == d->call_ref)
                worker_done(d, res, r);
            else
                res_free(res); /* a worker given up on */
        }
        return;
    case RT_EV_STATE_TIMEOUT:
        if (state == S_BACKOFF) {
            action_send(d, r);
        } else if (state == S_CALLING) {
            /* The worker overran its own deadline: give up on it; what it
             * sent, if anything, is an unknown outcome. */
            rt_unlink(d->worker);
            rt_exit_signal(d->worker, RT_KILL);
            d->worker = 0;
            d->call_ref = 0;
            outcome(d, r, O_UNKNOWN, 0, NULL, "timeout", "");
        } else if (state == S_DONE) {
            rt_sm_stop(r, RT_NORMAL);
        } else if (state == S_INIT) {
            load(d, r);
        }
        return;
    case RT_EV_ENTER:
        /* The loop names the process after the machine's state as it
         * changes; the instance's own state is what users look for. */
        if (d->def)
            state_label(d);
        /* Ended: the waiters postponed meanwhile come first (time-out zero
         * is queued after them), then the process stops. */
        if (state == S_DONE)
            rt_sm_state_timeout(r, 0, NULL);
        return;
    default:
        return;
    }
}

static void terminate(rt_atom reason, int state, void *data)
{
    (void)reason;
    (void)state;
    struct inst *d = data;
    if (!d)
        return;
    if (d->worker) {
        rt_unlink(d->worker);
        rt_exit_signal(d->worker, RT_KILL);
        d->worker = 0;
    }
    /* The data itself goes with the process (init's deferred cleanup). */
}

static size_t format_status(int state, const void *data, char *buf, size_t cap)
{
    const struct inst *d = data;
    int n = snprintf(buf, cap, "wf_instance id=%s state=%s machine=%s seq=%u attempt=%u",
                     d ? d->id : "", d ? d->state : "", state_names[state], d ? d->seq : 0,
                     d ? d->attempt : 0);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static const struct rt_gen_statem_ops ops = {
    .name = "wf_instance",
    .mode = RT_HANDLE_EVENT_FUNCTION,
    .state_enter = true,
    .init = init,
    .n_states = S_COUNT,
    .state_names = state_names,
    .handle_event = handle,
    .terminate = terminate,
    .format_status = format_status,
};

int wf__instance_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                       rt_atom *reason)
{
    (void)arg;
    char id[WF_ID_LEN + 1];
    char name[WF__NAME_MAX];
    if (extra_size != sizeof id)
        return -EINVAL;
    memcpy(id, extra, sizeof id);
    id[WF_ID_LEN] = 0;
    wf__instance_name(id, name);
    /* An instance that waits (backoff, an operator) holds no stack. */
    struct rt_start_opts o = {
        .name = name, .initial_call = "wf_instance", .hibernate_after = HIBERNATE_AFTER_MS};
    return rt_gen_statem_start_link(&ops, id, &o, out, reason);
}
