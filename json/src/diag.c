/*
 * diag.c: the diagnostics list and did-you-mean suggestions.
 *
 * Invariants: every kept entry owns its three strings; n <= max; nerrors and
 * nwarnings count every diagnostic ever added, kept or not.
 */
#include "jpos/diag.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void jpos_diags_init(struct jpos_diags *d)
{
    memset(d, 0, sizeof(*d));
    d->max = JPOS_DIAGS_MAX;
}

void jpos_diags_done(struct jpos_diags *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].file);
        free(d->items[i].path);
        free(d->items[i].message);
    }
    free(d->items);
    size_t max = d->max;
    memset(d, 0, sizeof(*d));
    d->max = max;
}

int jpos_diag_addv(struct jpos_diags *d, enum jpos_diag_level level, const char *file,
                   unsigned line, unsigned column, const char *path, const char *fmt, va_list ap)
{
    if (level == JPOS_DIAG_ERROR)
        d->nerrors++;
    else
        d->nwarnings++;
    if (d->n >= d->max) {
        d->dropped++;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        if (cap > d->max)
            cap = d->max;
        struct jpos_diag *items = realloc(d->items, cap * sizeof(*items));
        if (!items)
            goto nomem;
        d->items = items;
        d->cap = cap;
    }
    struct jpos_diag g = {.level = level, .line = line, .column = column};
    g.file = strdup(file ? file : "");
    g.path = strdup(path ? path : "");
    if (vasprintf(&g.message, fmt, ap) < 0)
        g.message = NULL;
    if (!g.file || !g.path || !g.message) {
        free(g.file);
        free(g.path);
        free(g.message);
        goto nomem;
    }
    d->items[d->n++] = g;
    return 0;
nomem:
    d->dropped++;
    return -ENOMEM;
}

int jpos_diag_add(struct jpos_diags *d, enum jpos_diag_level level, const char *file, unsigned line,
                  unsigned column, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = jpos_diag_addv(d, level, file, line, column, path, fmt, ap);
    va_end(ap);
    return r;
}

void jpos_diag_print(const struct jpos_diag *g, FILE *out)
{
    if (g->line)
        fprintf(out, "%s:%u:%u: ", g->file, g->line, g->column ? g->column : 1);
    else
        fprintf(out, "%s: ", g->file);
    if (g->level == JPOS_DIAG_WARNING)
        fputs("warning: ", out);
    if (g->path[0])
        fprintf(out, "%s: ", g->path);
    fprintf(out, "%s\n", g->message);
}

void jpos_diags_print(const struct jpos_diags *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++)
        jpos_diag_print(&d->items[i], out);
    if (d->dropped)
        fprintf(out, "... and %zu more problem%s not shown\n", d->dropped,
                d->dropped == 1 ? "" : "s");
}

#define EDIT_MAX 64

unsigned jpos_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > EDIT_MAX || lb > EDIT_MAX)
        return 1000;
    /* Optimal string alignment over three rolling rows. */
    unsigned rows[3][EDIT_MAX + 1];
    unsigned *pp = rows[0], *p = rows[1], *c = rows[2];
    for (size_t j = 0; j <= lb; j++)
        p[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        c[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
            unsigned v = p[j] + 1;
            if (c[j - 1] + 1 < v)
                v = c[j - 1] + 1;
            if (p[j - 1] + cost < v)
                v = p[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            c[j] = v;
        }
        unsigned *t = pp;
        pp = p;
        p = c;
        c = t;
    }
    return p[lb];
}

const char *jpos_suggest(const char *word, const char *const *candidates, size_t n)
{
    size_t len = strlen(word);
    unsigned limit = 1 + (unsigned)(len / 4);
    if (limit > 3)
        limit = 3;
    const char *best = NULL;
    unsigned best_d = limit + 1;
    for (size_t i = 0; i < n; i++) {
        const char *c = candidates[i];
        if (!c)
            continue;
        if (strcasecmp(c, word) == 0)
            return c; /* a difference in case only: surely meant */
        unsigned dist = jpos_edit_distance(word, c);
        /* A one-letter word is one edit from every other one-letter word;
         * only suggest when at least half of the word survives. */
        if (dist < best_d && dist < (len > strlen(c) ? len : strlen(c))) {
            best = c;
            best_d = dist;
        }
    }
    return best;
}
