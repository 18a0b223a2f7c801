/*
 * service_double.c: the in-memory workflow service and journal reads of
 * service_double.h.
 */
#include "service_double.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wf_record *t_wf_records[T_WF_MAX];
size_t t_wf_n;
int t_wf_next_rc;
uint64_t t_wf_delay_ms;
struct wf_list_filter t_wf_last_filter;
char t_wf_last_note[256];
bool t_wf_last_note_null;
struct gw_wf_stats t_wf_stats;
struct wf_journal_stats t_wf_journal_stats;
struct t_wf_await t_wf_await_end;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *dupn(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *p = malloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void wf_record_free(struct wf_record *r)
{
    if (!r)
        return;
    free(r->def_name);
    free(r->def_text);
    free(r->input);
    free(r->scope);
    free(r->key);
    free(r->owner);
    free(r->state);
    free(r->answer_headers);
    free(r->answer_body);
    for (size_t i = 0; i < r->ntransitions; i++) {
        free(r->transitions[i].state);
        free(r->transitions[i].event);
        free(r->transitions[i].detail);
    }
    free(r->transitions);
    free(r);
}

void t_wf_reset(void)
{
    for (size_t i = 0; i < t_wf_n; i++)
        wf_record_free(t_wf_records[i]);
    t_wf_n = 0;
    t_wf_next_rc = 0;
    t_wf_delay_ms = 0;
    memset(&t_wf_last_filter, 0, sizeof t_wf_last_filter);
    t_wf_last_note[0] = 0;
    t_wf_last_note_null = false;
    memset(&t_wf_stats, 0, sizeof t_wf_stats);
    memset(&t_wf_journal_stats, 0, sizeof t_wf_journal_stats);
    memset(&t_wf_await_end, 0, sizeof t_wf_await_end);
}

struct wf_record *t_wf_add(const char *id, const char *def, const char *state, bool terminal,
                           int64_t created_ms)
{
    struct wf_record *r = calloc(1, sizeof *r);
    strncpy(r->id, id, WF_ID_LEN);
    r->def_name = strdup(def);
    r->def_text = strdup("{\"name\":\"x\"}");
    r->def_text_len = strlen(r->def_text);
    r->input = strdup("{}");
    r->input_len = 2;
    r->owner = strdup("replica-1");
    r->state = strdup(state);
    r->terminal = terminal;
    r->created_ms = created_ms;
    r->updated_ms = created_ms;
    t_wf_records[t_wf_n++] = r;
    return r;
}

void t_wf_add_transition(struct wf_record *r, const char *state, const char *event,
                         const char *detail, int64_t at_ms)
{
    r->transitions = realloc(r->transitions, (r->ntransitions + 1) * sizeof *r->transitions);
    struct wf_record_transition *t = &r->transitions[r->ntransitions];
    t->seq = (uint32_t)++r->ntransitions;
    t->state = strdup(state);
    t->event = strdup(event);
    t->detail = dup_or_null(detail);
    t->at_ms = at_ms;
}

static struct wf_record *copy(const struct wf_record *s, bool with_transitions)
{
    struct wf_record *r = calloc(1, sizeof *r);
    *r = *s;
    r->def_name = dup_or_null(s->def_name);
    r->def_text = dupn(s->def_text, s->def_text_len);
    r->input = dupn(s->input, s->input_len);
    r->scope = dup_or_null(s->scope);
    r->key = dup_or_null(s->key);
    r->owner = dup_or_null(s->owner);
    r->state = dup_or_null(s->state);
    r->answer_headers = dup_or_null(s->answer_headers);
    r->answer_body = dupn(s->answer_body, s->answer_body_len);
    r->transitions = NULL;
    r->ntransitions = 0;
    if (with_transitions && s->ntransitions) {
        r->transitions = calloc(s->ntransitions, sizeof *r->transitions);
        for (size_t i = 0; i < s->ntransitions; i++) {
            r->transitions[i] = s->transitions[i];
            r->transitions[i].state = dup_or_null(s->transitions[i].state);
            r->transitions[i].event = dup_or_null(s->transitions[i].event);
            r->transitions[i].detail = dup_or_null(s->transitions[i].detail);
        }
        r->ntransitions = s->ntransitions;
    }
    return r;
}

static int take_rc(void)
{
    if (t_wf_delay_ms)
        rt_sleep(t_wf_delay_ms);
    int rc = t_wf_next_rc;
    t_wf_next_rc = 0;
    return rc;
}

static struct wf_record *find(const char *id)
{
    for (size_t i = 0; i < t_wf_n; i++)
        if (strcmp(t_wf_records[i]->id, id) == 0)
            return t_wf_records[i];
    return NULL;
}

int wf_journal_get(const char *id, bool with_transitions, struct wf_record **out)
{
    int rc = take_rc();
    if (rc)
        return rc;
    const struct wf_record *r = find(id);
    if (!r)
        return -ENOENT;
    *out = copy(r, with_transitions);
    return 0;
}

int wf_journal_find_key(const char *scope, const char *key, struct wf_record **out)
{
    int rc = take_rc();
    if (rc)
        return rc;
    for (size_t i = 0; i < t_wf_n; i++) {
        const struct wf_record *r = t_wf_records[i];
        if (r->scope && r->key && strcmp(r->scope, scope) == 0 && strcmp(r->key, key) == 0) {
            *out = copy(r, false);
            return 0;
        }
    }
    return -ENOENT;
}

static bool state_matches(const char *want, const struct wf_record *r)
{
    if (!want)
        return true;
    if (strcmp(want, "active") == 0)
        return !r->terminal;
    size_t n = strlen(want);
    if (n && want[n - 1] == ':')
        return strncmp(r->state, want, n) == 0;
    return strcmp(r->state, want) == 0;
}

/* The last filter's strings, kept past the call. */
static char last_def[128], last_state[128], last_after[WF_ID_LEN + 1];

static const char *keep(char *buf, size_t cap, const char *s)
{
    if (!s)
        return NULL;
    snprintf(buf, cap, "%s", s);
    return buf;
}

int wf_journal_list(const struct wf_list_filter *f, struct wf_record ***out, size_t *n)
{
    t_wf_last_filter = *f;
    t_wf_last_filter.def_name = keep(last_def, sizeof last_def, f->def_name);
    t_wf_last_filter.state = keep(last_state, sizeof last_state, f->state);
    t_wf_last_filter.after_id = keep(last_after, sizeof last_after, f->after_id);
    int rc = take_rc();
    if (rc)
        return rc;
    /* The table in id order, as the journal lists. */
    const struct wf_record *sorted[T_WF_MAX];
    size_t m = 0;
    for (size_t i = 0; i < t_wf_n; i++) {
        size_t j = m++;
        while (j > 0 && strcmp(sorted[j - 1]->id, t_wf_records[i]->id) > 0) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = t_wf_records[i];
    }
    size_t limit = f->limit > 1000 ? 1000 : f->limit;
    struct wf_record **a = calloc(T_WF_MAX, sizeof *a);
    size_t k = 0;
    for (size_t i = 0; i < m && k < limit; i++) {
        const struct wf_record *r = sorted[i];
        if ((f->def_name && strcmp(f->def_name, r->def_name) != 0) || !state_matches(f->state, r) ||
            (f->older_than_ms && r->created_ms >= f->older_than_ms) ||
            (f->after_id && strcmp(r->id, f->after_id) <= 0))
            continue;
        a[k++] = copy(r, false);
    }
    *out = a;
    *n = k;
    return 0;
}

void wf_journal_stats(struct wf_journal_stats *out)
{
    *out = t_wf_journal_stats;
}

int gw_workflow_start(const struct wf_def *def, const json_t *input, const char *scope,
                      const char *key, const unsigned char fingerprint[WF_FINGERPRINT_LEN],
                      enum gw_wf_start *how, struct wf_record **out)
{
    (void)input;
    int rc = take_rc();
    if (rc)
        return rc;
    if (scope) {
        for (size_t i = 0; i < t_wf_n; i++) {
            const struct wf_record *r = t_wf_records[i];
            if (r->scope && strcmp(r->scope, scope) == 0 && strcmp(r->key, key) == 0) {
                *how = GW_WF_EXISTING;
                *out = copy(r, false);
                return 0;
            }
        }
    }
    char id[WF_ID_LEN + 1];
    snprintf(id, sizeof id, "%032zx", t_wf_n + 1);
    struct wf_record *r = t_wf_add(id, def->name, "step:first", false, 1);
    r->scope = dup_or_null(scope);
    r->key = dup_or_null(key);
    memcpy(r->fingerprint, fingerprint, WF_FINGERPRINT_LEN);
    *how = GW_WF_STARTED;
    *out = copy(r, false);
    return 0;
}

int gw_workflow_await(const char *id, uint32_t ms, struct wf_record **out)
{
    (void)ms;
    struct wf_record *r = find(id);
    if (r && t_wf_await_end.answer_status) {
        free(r->state);
        r->state = strdup("completed");
        r->terminal = true;
        r->answer_status = t_wf_await_end.answer_status;
        r->answer_headers = dup_or_null(t_wf_await_end.answer_headers);
        r->answer_body = dup_or_null(t_wf_await_end.answer_body);
        r->answer_body_len = r->answer_body ? strlen(r->answer_body) : 0;
    }
    return wf_journal_get(id, false, out);
}

static int operator_action(const char *id, const char *state)
{
    int rc = take_rc();
    if (rc)
        return rc;
    struct wf_record *r = find(id);
    if (!r)
        return -ENOENT;
    if (strcmp(r->state, "failed") != 0)
        return -EINVAL;
    free(r->state);
    r->state = strdup(state);
    r->terminal = strcmp(state, "resolved") == 0;
    return 0;
}

int gw_workflow_retry(const char *id)
{
    return operator_action(id, "compensating:retry");
}

int gw_workflow_resolve(const char *id, const char *note)
{
    t_wf_last_note_null = note == NULL;
    strncpy(t_wf_last_note, note ? note : "", sizeof t_wf_last_note - 1);
    return operator_action(id, "resolved");
}

void gw_workflow_stats(struct gw_wf_stats *out)
{
    *out = t_wf_stats;
}
