/*
 * json.h: JSON documents with positions, for loaders that must say where a
 * problem is.
 *
 * jansson parses the text and reports syntax errors with their line and
 * column, but keeps no position for the values it builds. A
 * `struct route_jdoc` therefore also scans the same text once and records,
 * for every value (and every object member's key), the line and column where
 * it starts. Values are visited through `struct route_jval` cursors that
 * pair a jansson value with its position node and know their JSON path
 * (`routes[3].match.path`), so a validator can report any value it dislikes
 * as FILE:LINE:COLUMN plus path without building strings unless it reports.
 *
 * Positions count lines from 1 and columns from 1 in characters (UTF-8 code
 * points), the way jansson counts them in its own errors. Documents nest at
 * most ROUTE_JSON_MAX_DEPTH levels: deeper input is refused before jansson
 * (whose parser recurses) sees it, so parsing is safe on small coroutine
 * stacks. Object members are visited in document order; duplicate keys are a
 * syntax error.
 *
 * A document and its cursors are immutable once parsed; cursors point into
 * the document and into their parent cursor, so they live on the caller's
 * stack while the document lives. One thread at a time per document.
 */
#ifndef ROUTE_JSON_H
#define ROUTE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ROUTE_JSON_MAX_DEPTH 64
/* Largest text route_jdoc_parse accepts (bytes). */
#define ROUTE_JSON_MAX_BYTES (64u << 20)

struct route_jnode; /* private: one per value in document order */

struct route_jdoc {
    char *file; /* label used in diagnostics (owned copy) */
    json_t *root;
    struct route_jnode *nodes; /* NULL if positions are unavailable */
    uint32_t nnodes;
    char *text; /* private copy of the text, for checking member keys */
    size_t text_len;
};

struct route_jval {
    const struct route_jdoc *doc;
    json_t *v;
    uint32_t node;                   /* index into doc->nodes; UINT32_MAX: unknown */
    const struct route_jval *parent; /* NULL for the root */
    const char *key;                 /* member key when the parent is an object */
    size_t index;                    /* element index when the parent is an array */
};

/* Parses `len` bytes of `text` (need not be NUL-terminated). On a syntax
 * error (or nesting deeper than ROUTE_JSON_MAX_DEPTH as
 * route_json_depth_check counts it, or text over
 * ROUTE_JSON_MAX_BYTES) adds one error to `d` at jansson's position and
 * returns -EINVAL; -ENOMEM when out of memory. On success the document holds
 * its own copy of everything (the text may be freed). Call route_jdoc_done
 * afterwards whatever the result. Any thread; does not block. Uses at most a
 * few KiB of stack beyond jansson's own recursion (one frame per level). */
int route_jdoc_parse(struct route_jdoc *doc, const char *file, const char *text, size_t len,
                     struct route_diags *d);

/* Checks that `len` bytes of `text` nest arrays and objects at most
 * `max_depth` levels. Brackets are counted outside strings only (inside
 * one, a backslash escapes the next byte), whether or not the text is valid
 * JSON: up to the first syntax error a JSON parser sees the same strings,
 * so the count bounds the recursion of any parser that stops there, as
 * jansson does. Returns 0, or -E2BIG with *line and *column (from 1, in
 * characters as jansson counts them) at the first bracket too deep. Any
 * thread; does not block or allocate; linear in len. */
int route_json_depth_check(const char *text, size_t len, unsigned max_depth, unsigned *line,
                           unsigned *column);

/* Releases the document. NULL-safe; safe on a document whose parse failed. */
void route_jdoc_done(struct route_jdoc *doc);

/* A cursor for the document's root value. */
void route_jval_root(const struct route_jdoc *doc, struct route_jval *out);

/* Iteration over an object's members or an array's elements, in document
 * order. `it` lives while the container cursor does. */
struct route_jiter {
    const struct route_jval *parent;
    void *oit;      /* jansson object iterator */
    size_t i;       /* members or elements visited */
    uint32_t child; /* next position node */
};
void route_jiter_init(struct route_jiter *it, const struct route_jval *container);
/* Writes the next member or element into `out`; false at the end (or when
 * the container is neither an object nor an array). */
bool route_jiter_next(struct route_jiter *it, struct route_jval *out);

/* The member `key` of an object cursor, or false when absent. Linear in the
 * object's size: meant for small objects. */
bool route_jobj_get(const struct route_jval *obj, const char *key, struct route_jval *out);

/* Position of the value (or, for route_jval_key_pos, of the member's key;
 * falls back to the value). Zero when unknown. */
void route_jval_pos(const struct route_jval *v, unsigned *line, unsigned *column);
void route_jval_key_pos(const struct route_jval *v, unsigned *line, unsigned *column);

/* Writes the JSON path of `v` into buf (always NUL-terminated when cap > 0;
 * keys that are not identifiers are written as ["key"]). Returns the length
 * it needed, like snprintf. */
size_t route_jval_path(const struct route_jval *v, char *buf, size_t cap);

/* "an object", "an array", "a string", "an integer", "a number", "true"... */
const char *route_jtype_name(const json_t *v);

/* Report at a value (route_jerr, route_jwarn) or at a member's key
 * (route_jerr_key), adding file, position and path. */
void route_jerr(struct route_diags *d, const struct route_jval *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void route_jwarn(struct route_diags *d, const struct route_jval *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void route_jerr_key(struct route_diags *d, const struct route_jval *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports member `m` as an unknown key, suggesting the closest of the
 * NULL-terminated `known` list: `unknown key "pth" in match; did you mean
 * "path"? (known keys: ...)`. `where` names the containing object for the
 * message (e.g. "route", "match"). */
void route_junknown(struct route_diags *d, const struct route_jval *m, const char *where,
                    const char *const *known);

/* Typed readers: true and *out written when `v` has the expected type (and
 * range); otherwise report an error at `v` naming what was expected and
 * return false. Strings must be valid UTF-8 without NUL (jansson guarantees
 * it) and at most `maxlen` bytes; *len gets the length when non-NULL. */
bool route_jstring(struct route_diags *d, const struct route_jval *v, size_t maxlen,
                   const char **out, size_t *len);
bool route_jint(struct route_diags *d, const struct route_jval *v, long long min, long long max,
                long long *out);
bool route_jbool(struct route_diags *d, const struct route_jval *v, bool *out);
bool route_jobject(struct route_diags *d, const struct route_jval *v);
bool route_jarray(struct route_diags *d, const struct route_jval *v);

#ifdef __cplusplus
}
#endif

#endif
