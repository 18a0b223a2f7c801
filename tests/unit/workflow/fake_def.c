/*
 * fake_def.c: definitions for the instance tests, built from struct fd_def
 * rather than parsed, with def.h's compile-from-text and expansion.
 * Templates are literal, except that "${workflow.id}" in a string is
 * replaced (enough to see the context reach the expansion).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fakes.h"

struct wf_tmpl {
    char *s;
    json_t *j;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fd_def known[16];
static size_t nknown;

void fd_reset(void)
{
    pthread_mutex_lock(&lock);
    nknown = 0;
    pthread_mutex_unlock(&lock);
}

static struct wf_tmpl *ts(const char *s)
{
    struct wf_tmpl *t = calloc(1, sizeof *t);
    t->s = strdup(s);
    return t;
}

static struct wf_tmpl *tj(const char *text)
{
    struct wf_tmpl *t = calloc(1, sizeof *t);
    t->j = json_loads(text, JSON_DECODE_ANY, NULL);
    return t;
}

static void tfree(const struct wf_tmpl *t)
{
    if (!t)
        return;
    free(t->s);
    json_decref(t->j);
    free((void *)t);
}

static struct wf_def *build(const struct fd_def *d)
{
    struct wf_def *def = calloc(1, sizeof *def);
    struct wf_step *steps = calloc(d->nsteps, sizeof *steps);
    char text[128];
    snprintf(text, sizeof text, "test:%s", d->name);
    def->name = strdup(d->name);
    def->text = strdup(text);
    def->text_len = strlen(text);
    def->compensate_limit_ms = d->compensate_limit_ms;
    def->completed.status = 200;
    def->compensated.status = 409;
    def->failed.status = 500;
    if (d->completed_body)
        def->completed.body = tj(d->completed_body);
    for (size_t i = 0; i < d->nsteps; i++) {
        const struct fd_step *f = &d->steps[i];
        struct wf_step *s = &steps[i];
        s->name = strdup(f->name);
        s->upstream_index = f->upstream;
        s->request.method = "POST";
        s->request.path = ts(f->path);
        s->request.body = f->body ? tj(f->body) : NULL;
        if (f->undo_path) {
            struct wf_request *u = calloc(1, sizeof *u);
            u->method = "POST";
            u->path = ts(f->undo_path);
            s->compensate = u;
        }
        s->timeout_ms = f->timeout_ms ? f->timeout_ms : 2000;
        s->retry.attempts = f->attempts;
        s->retry.backoff_ms = f->backoff_ms;
        s->retry.backoff_max_ms = 200;
        s->compensate_retry.backoff_ms = f->backoff_ms;
        s->compensate_retry.backoff_max_ms = 200;
        for (int st = 100; st < 600; st++)
            s->outcome[st - 100] = st >= 200 && st < 300   ? WF_OUT_SUCCESS
                                   : st >= 400 && st < 500 ? WF_OUT_FAILURE
                                                           : WF_OUT_UNKNOWN;
    }
    def->steps = steps;
    def->nsteps = d->nsteps;
    return def;
}

struct wf_def *fd_define(const struct fd_def *d)
{
    pthread_mutex_lock(&lock);
    known[nknown++] = *d;
    pthread_mutex_unlock(&lock);
    return build(d);
}

int wf_def_from_text(const char *text, size_t len, const char *const *upstreams, size_t n,
                     struct wf_def **out, struct jpos_diags *d)
{
    (void)upstreams;
    (void)n;
    (void)d;
    struct fd_def f;
    bool found = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nknown; i++) {
        char t[128];
        snprintf(t, sizeof t, "test:%s", known[i].name);
        if (strlen(t) == len && memcmp(t, text, len) == 0) {
            f = known[i];
            found = true;
        }
    }
    pthread_mutex_unlock(&lock);
    if (!found)
        return -ENOENT;
    *out = build(&f);
    return 0;
}

void wf_def_free(struct wf_def *def)
{
    if (!def)
        return;
    for (size_t i = 0; i < def->nsteps; i++) {
        struct wf_step *s = (struct wf_step *)&def->steps[i];
        free((char *)s->name);
        tfree(s->request.path);
        tfree(s->request.body);
        if (s->compensate) {
            tfree(s->compensate->path);
            free((void *)s->compensate);
        }
    }
    tfree(def->completed.body);
    free((void *)def->steps);
    free((char *)def->name);
    free((char *)def->text);
    free(def);
}

int wf_expand_string(const struct wf_tmpl *t, const struct wf_ctx *c, char **out, size_t *len,
                     char *err, size_t errcap)
{
    const char *ph = "${workflow.id}";
    const char *at = strstr(t->s, ph);
    char *s;
    if (strstr(t->s, "${missing}")) {
        snprintf(err, errcap, "${missing}");
        return -ENOENT;
    }
    if (at) {
        size_t pre = (size_t)(at - t->s);
        if (asprintf(&s, "%.*s%s%s", (int)pre, t->s, c->id, at + strlen(ph)) < 0)
            return -ENOMEM;
    } else {
        s = strdup(t->s);
    }
    if (!s)
        return -ENOMEM;
    *out = s;
    *len = strlen(s);
    return 0;
}

int wf_expand_json(const struct wf_tmpl *t, const struct wf_ctx *c, json_t **out, char *err,
                   size_t errcap)
{
    (void)c;
    (void)err;
    (void)errcap;
    *out = json_deep_copy(t->j);
    return *out ? 0 : -ENOMEM;
}
