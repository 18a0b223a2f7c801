/*
 * fake_journal.c: an in-memory journal with journal.h's functions, for
 * the instance and service tests. One mutex guards everything (any
 * thread); writes yield once, as a real write parks. An instance's
 * `terminal` follows its latest transition (an operator's retry reopens a
 * failed one). Tests read it back through the fj_* helpers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fakes.h"

struct ftrans {
    uint32_t seq;
    char *state, *event, *detail;
    int64_t at_ms;
    bool terminal;
};

struct finst {
    struct wf_record rec; /* transitions unused here */
    struct ftrans *t;
    size_t nt;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct finst *insts;
static size_t ninsts;
static unsigned appends_fail_from; /* 0: never */
static unsigned appends;
static _Atomic unsigned create_park_ms;
static atomic_bool gets_fail;
static atomic_uint gets;

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static char *dup0(const char *s)
{
    return s ? strdup(s) : NULL;
}

void fj_reset(void)
{
    create_park_ms = 0;
    gets_fail = false;
    gets = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ninsts; i++) {
        struct finst *f = &insts[i];
        for (size_t j = 0; j < f->nt; j++) {
            free(f->t[j].state);
            free(f->t[j].event);
            free(f->t[j].detail);
        }
        free(f->t);
        free(f->rec.def_name);
        free(f->rec.def_text);
        free(f->rec.input);
        free(f->rec.scope);
        free(f->rec.key);
        free(f->rec.owner);
        free(f->rec.state);
        free(f->rec.answer_headers);
        free(f->rec.answer_body);
    }
    free(insts);
    insts = NULL;
    ninsts = 0;
    appends = 0;
    appends_fail_from = 0;
    pthread_mutex_unlock(&lock);
}

static struct finst *find(const char *id)
{
    for (size_t i = 0; i < ninsts; i++)
        if (strcmp(insts[i].rec.id, id) == 0)
            return &insts[i];
    return NULL;
}

static void rec_copy(const struct finst *f, bool with_t, struct wf_record **out)
{
    const struct wf_record *s = &f->rec;
    struct wf_record *r = calloc(1, sizeof *r);
    *r = *s;
    r->def_name = dup0(s->def_name);
    r->def_text = s->def_text ? dupn(s->def_text, s->def_text_len) : NULL;
    r->input = s->input ? dupn(s->input, s->input_len) : NULL;
    r->scope = dup0(s->scope);
    r->key = dup0(s->key);
    r->owner = dup0(s->owner);
    r->state = dup0(s->state);
    r->answer_headers = dup0(s->answer_headers);
    r->answer_body = s->answer_body ? dupn(s->answer_body, s->answer_body_len) : NULL;
    r->transitions = NULL;
    r->ntransitions = 0;
    if (with_t && f->nt) {
        r->transitions = calloc(f->nt, sizeof *r->transitions);
        for (size_t i = 0; i < f->nt; i++) {
            r->transitions[i].seq = f->t[i].seq;
            r->transitions[i].state = dup0(f->t[i].state);
            r->transitions[i].event = dup0(f->t[i].event);
            r->transitions[i].detail = dup0(f->t[i].detail);
            r->transitions[i].at_ms = f->t[i].at_ms;
        }
        r->ntransitions = f->nt;
    }
    *out = r;
}

void wf_record_free(struct wf_record *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->ntransitions; i++) {
        free(r->transitions[i].state);
        free(r->transitions[i].event);
        free(r->transitions[i].detail);
    }
    free(r->transitions);
    free(r->def_name);
    free(r->def_text);
    free(r->input);
    free(r->scope);
    free(r->key);
    free(r->owner);
    free(r->state);
    free(r->answer_headers);
    free(r->answer_body);
    free(r);
}

static void idle_main(void *arg)
{
    (void)arg;
    for (;;)
        rt_msg_free(rt_receive(RT_INFINITY));
}

int wf_journal_start_link(const struct wf_journal_config *cfg, rt_pid *out)
{
    (void)cfg;
    struct rt_spawn_opts o = {.link = true, .name = "wf_journal", .initial_call = "fake_journal"};
    return rt_spawn(idle_main, NULL, &o, out);
}

int wf_journal_child_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                           rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    (void)reason;
    return wf_journal_start_link(arg, out);
}

void fj_create_parks(unsigned ms)
{
    create_park_ms = ms;
}

int wf_journal_create(const struct wf_create *c, struct wf_record **existing)
{
    unsigned park = create_park_ms;
    if (rt_self() && park)
        rt_sleep(park);
    else if (rt_self())
        rt_yield();
    pthread_mutex_lock(&lock);
    if (c->scope)
        for (size_t i = 0; i < ninsts; i++) {
            const struct wf_record *r = &insts[i].rec;
            if (r->scope && strcmp(r->scope, c->scope) == 0 && strcmp(r->key, c->key) == 0) {
                if (existing)
                    rec_copy(&insts[i], false, existing);
                pthread_mutex_unlock(&lock);
                return -EEXIST;
            }
        }
    insts = realloc(insts, (ninsts + 1) * sizeof *insts);
    struct finst *f = &insts[ninsts++];
    memset(f, 0, sizeof *f);
    memcpy(f->rec.id, c->id, sizeof f->rec.id);
    f->rec.def_name = strdup(c->def_name);
    f->rec.def_text = dupn(c->def_text, c->def_text_len);
    f->rec.def_text_len = c->def_text_len;
    f->rec.input = dupn(c->input, c->input_len);
    f->rec.input_len = c->input_len;
    f->rec.scope = dup0(c->scope);
    f->rec.key = dup0(c->key);
    memcpy(f->rec.fingerprint, c->fingerprint, sizeof f->rec.fingerprint);
    f->rec.owner = strdup("test");
    f->rec.created_ms = f->rec.updated_ms = c->created_ms;
    f->rec.key_expires_ms = c->key_expires_ms;
    f->rec.state = strdup(c->state);
    pthread_mutex_unlock(&lock);
    return 0;
}

int wf_journal_append(const struct wf_transition *t)
{
    if (rt_self())
        rt_yield();
    pthread_mutex_lock(&lock);
    appends++;
    if (appends_fail_from && appends >= appends_fail_from) {
        pthread_mutex_unlock(&lock);
        return -EIO;
    }
    struct finst *f = find(t->id);
    if (!f) {
        pthread_mutex_unlock(&lock);
        return -ENOENT;
    }
    if (t->seq != f->nt + 1) {
        pthread_mutex_unlock(&lock);
        return -EEXIST;
    }
    f->t = realloc(f->t, (f->nt + 1) * sizeof *f->t);
    struct ftrans *n = &f->t[f->nt++];
    n->seq = t->seq;
    n->state = strdup(t->state);
    n->event = strdup(t->event);
    n->detail = dupn(t->detail, t->detail_len);
    n->at_ms = t->at_ms;
    n->terminal = t->terminal;
    free(f->rec.state);
    f->rec.state = strdup(t->state);
    f->rec.updated_ms = t->at_ms;
    f->rec.terminal = t->terminal;
    if (t->terminal) {
        free(f->rec.answer_body);
        f->rec.answer_status = t->answer_status;
        f->rec.answer_body = dupn(t->answer_body, t->answer_body_len);
        f->rec.answer_body_len = t->answer_body_len;
    }
    pthread_mutex_unlock(&lock);
    return 0;
}

void fj_fail_gets(bool fail)
{
    gets_fail = fail;
}

unsigned fj_gets(void)
{
    return gets;
}

int wf_journal_get(const char *id, bool with_transitions, struct wf_record **out)
{
    gets++;
    if (gets_fail)
        return -EIO;
    pthread_mutex_lock(&lock);
    struct finst *f = find(id);
    if (f)
        rec_copy(f, with_transitions, out);
    pthread_mutex_unlock(&lock);
    return f ? 0 : -ENOENT;
}

int wf_journal_find_key(const char *scope, const char *key, struct wf_record **out)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ninsts; i++) {
        const struct wf_record *r = &insts[i].rec;
        if (r->scope && strcmp(r->scope, scope) == 0 && strcmp(r->key, key) == 0) {
            rec_copy(&insts[i], false, out);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

int wf_journal_list(const struct wf_list_filter *f, struct wf_record ***out, size_t *n)
{
    (void)f;
    *out = NULL;
    *n = 0;
    return 0;
}

int wf_journal_claim(size_t limit, char (**ids)[WF_ID_LEN + 1], size_t *n)
{
    pthread_mutex_lock(&lock);
    char(*v)[WF_ID_LEN + 1] = calloc(ninsts ? ninsts : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < ninsts && k < limit; i++)
        if (!insts[i].rec.terminal)
            memcpy(v[k++], insts[i].rec.id, WF_ID_LEN + 1);
    pthread_mutex_unlock(&lock);
    *ids = v;
    *n = k;
    return 0;
}

int wf_journal_claim_from(const char *from, size_t limit, char (**ids)[WF_ID_LEN + 1], size_t *n)
{
    (void)from; /* one owner here: every unfinished instance is claimed */
    return wf_journal_claim(limit, ids, n);
}

int wf_journal_renew(void)
{
    return 0;
}

int wf_journal_purge(int64_t now_ms, size_t *purged)
{
    (void)now_ms;
    *purged = 0;
    return 0;
}

void wf_journal_stats(struct wf_journal_stats *out)
{
    memset(out, 0, sizeof *out);
}

/* ---- for the tests ------------------------------------------------------------ */

size_t fj_events(const char *id, char *buf, size_t cap)
{
    size_t w = 0;
    buf[0] = 0;
    pthread_mutex_lock(&lock);
    struct finst *f = find(id);
    for (size_t i = 0; f && i < f->nt; i++) {
        int n = snprintf(buf + w, cap - w, "%s%s@%s", i ? " " : "", f->t[i].event, f->t[i].state);
        if (n < 0 || (size_t)n >= cap - w)
            break;
        w += (size_t)n;
    }
    pthread_mutex_unlock(&lock);
    return w;
}

void fj_fail_appends_from(unsigned nth)
{
    pthread_mutex_lock(&lock);
    appends_fail_from = nth ? appends + nth : 0;
    pthread_mutex_unlock(&lock);
}

int fj_add_transition(const char *id, const char *state, const char *event, const char *detail)
{
    struct wf_record *r = NULL;
    if (wf_journal_get(id, false, &r) < 0)
        return -ENOENT;
    pthread_mutex_lock(&lock);
    uint32_t seq = (uint32_t)find(id)->nt + 1;
    pthread_mutex_unlock(&lock);
    wf_record_free(r);
    struct wf_transition t = {.id = id,
                              .seq = seq,
                              .state = state,
                              .event = event,
                              .detail = detail,
                              .detail_len = strlen(detail),
                              .at_ms = 1};
    return wf_journal_append(&t);
}
