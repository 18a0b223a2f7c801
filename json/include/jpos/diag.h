/*
 * diag.h: validation diagnostics shared by the route loader and the gateway's
 * configuration loader.
 *
 * A diagnostic names a file, a 1-based line and column (0 when the problem
 * has no position, e.g. a file that cannot be opened), the JSON path of the
 * value concerned (`routes[3].match.path`, empty for the document itself)
 * and a message a person can act on. Loaders report every problem they find,
 * not just the first; a list keeps at most `max` entries (default
 * JPOS_DIAGS_MAX) and counts the rest, so a hostile or generated file
 * cannot make it grow without bound.
 *
 * A `struct jpos_diags` is plain caller-owned data: one thread at a time.
 */
#ifndef JPOS_DIAG_H
#define JPOS_DIAG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JPOS_DIAGS_MAX 1000

enum jpos_diag_level {
    JPOS_DIAG_ERROR = 0,
    JPOS_DIAG_WARNING,
};

struct jpos_diag {
    enum jpos_diag_level level;
    char *file;      /* as given by the loader; never NULL */
    unsigned line;   /* 1-based; 0: no position */
    unsigned column; /* 1-based, in characters (as jansson counts); 0: none */
    char *path;      /* JSON path, "" for the whole document; never NULL */
    char *message;   /* never NULL, no trailing newline */
};

struct jpos_diags {
    struct jpos_diag *items; /* in the order found */
    size_t n, cap;
    size_t max;       /* entries kept; further ones are only counted */
    size_t nerrors;   /* every error, kept or not */
    size_t nwarnings; /* every warning, kept or not */
    size_t dropped;   /* diagnostics not kept because of `max` */
};

/* Initialises an empty list in caller storage. */
void jpos_diags_init(struct jpos_diags *d);

/* Frees every entry; the list is empty and reusable afterwards. NULL-safe. */
void jpos_diags_done(struct jpos_diags *d);

/* Adds a diagnostic. `file` and `path` may be NULL (stored as ""). The
 * message is formatted with printf rules. Returns 0, or -ENOMEM (the
 * diagnostic is then counted but not kept). Never fails for `max`. */
int jpos_diag_add(struct jpos_diags *d, enum jpos_diag_level level, const char *file, unsigned line,
                  unsigned column, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
int jpos_diag_addv(struct jpos_diags *d, enum jpos_diag_level level, const char *file,
                   unsigned line, unsigned column, const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));

/* Writes one diagnostic as `FILE:LINE:COLUMN: [warning: ]PATH: message`
 * (the path part is left out when empty, `:LINE:COLUMN` when there is no
 * position) followed by a newline. */
void jpos_diag_print(const struct jpos_diag *g, FILE *out);

/* Prints every kept diagnostic, then a line saying how many were dropped,
 * if any. */
void jpos_diags_print(const struct jpos_diags *d, FILE *out);

/* The candidate closest to `word` by edit distance (optimal string
 * alignment: insert, delete, substitute, swap two neighbours; a difference
 * in case alone counts as the closest), or NULL when none is close enough
 * to be a plausible typo (at most 1 + len/4 edits, never more than 3).
 * `candidates` holds `n` strings; NULL entries are skipped. Pure. */
const char *jpos_suggest(const char *word, const char *const *candidates, size_t n);

/* Edit distance as above between two strings; exposed for tests. Strings
 * longer than 64 bytes give a large number instead of an exact distance. */
unsigned jpos_edit_distance(const char *a, const char *b);

#ifdef __cplusplus
}
#endif

#endif
