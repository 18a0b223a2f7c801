/*
 * json.h: JSON documents with positions, for loaders that must say where a
 * problem is.
 *
 * jansson parses the text and reports syntax errors with their line and
 * column, but keeps no position for the values it builds. A
 * `struct jpos_doc` therefore also scans the same text once and records,
 * for every value (and every object member's key), the line and column where
 * it starts. Values are visited through `struct jpos_val` cursors that
 * pair a jansson value with its position node and know their JSON path
 * (`routes[3].match.path`), so a validator can report any value it dislikes
 * as FILE:LINE:COLUMN plus path without building strings unless it reports.
 *
 * Positions count lines from 1 and columns from 1 in characters (UTF-8 code
 * points), the way jansson counts them in its own errors. Documents nest at
 * most JPOS_MAX_DEPTH levels: deeper input is refused before jansson
 * (whose parser recurses) sees it, so parsing is safe on small coroutine
 * stacks. Object members are visited in document order; duplicate keys are a
 * syntax error.
 *
 * A document and its cursors are immutable once parsed; cursors point into
 * the document and into their parent cursor, so they live on the caller's
 * stack while the document lives. One thread at a time per document.
 */
#ifndef JPOS_JSON_H
#define JPOS_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jpos/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

#define JPOS_MAX_DEPTH 64
/* Largest text jpos_doc_parse accepts (bytes). */
#define JPOS_MAX_BYTES (64u << 20)

struct jpos_node; /* private: one per value in document order */

struct jpos_doc {
    char *file;              /* label used in diagnostics (owned copy) */
    json_t *root;            /* NULL when the nodes hold the values (jpos_doc_parse_compact) */
    struct jpos_node *nodes; /* NULL if positions are unavailable */
    uint32_t nnodes;
    char *text; /* private copy of the text, for checking member keys */
    size_t text_len;
    char *strs; /* compact: decoded strings and keys, each NUL-terminated */
};

struct jpos_val {
    const struct jpos_doc *doc;
    json_t *v;                     /* NULL when the document is compact */
    uint32_t node;                 /* index into doc->nodes; UINT32_MAX: unknown */
    const struct jpos_val *parent; /* NULL for the root */
    const char *key;               /* member key when the parent is an object */
    size_t index;                  /* element index when the parent is an array */
};

/* Parses `len` bytes of `text` (need not be NUL-terminated). On a syntax
 * error (or nesting deeper than JPOS_MAX_DEPTH as
 * jpos_depth_check counts it, or text over
 * JPOS_MAX_BYTES) adds one error to `d` at jansson's position and
 * returns -EINVAL; -ENOMEM when out of memory. On success the document holds
 * its own copy of everything (the text may be freed). Call jpos_doc_done
 * afterwards whatever the result. Any thread; does not block. Uses at most a
 * few KiB of stack beyond jansson's own recursion (one frame per level). */
int jpos_doc_parse(struct jpos_doc *doc, const char *file, const char *text, size_t len,
                   struct jpos_diags *d);

/* Parses like jpos_doc_parse, with the same result, diagnostics and
 * positions, but the document may hold its values in its own nodes instead
 * of jansson values: cursors then have `v` NULL, and the values must be read
 * through the jpos_ functions only (jpos_typeof, jpos_size,
 * jpos_integer_value, the typed readers, iteration). It is much cheaper for
 * large documents: the common case (ASCII text, integers, no \u escapes) is
 * parsed in one pass into a few arrays; any other text, and every syntax
 * error, goes through jansson exactly as jpos_doc_parse does. Any thread;
 * does not block. The one-pass parse does not recurse; a text handed to
 * jansson is first bounded in depth, as by jpos_doc_parse. */
int jpos_doc_parse_compact(struct jpos_doc *doc, const char *file, const char *text, size_t len,
                           struct jpos_diags *d);

/* Checks that `len` bytes of `text` nest arrays and objects at most
 * `max_depth` levels. Brackets are counted outside strings only (inside
 * one, a backslash escapes the next byte), whether or not the text is valid
 * JSON: up to the first syntax error a JSON parser sees the same strings,
 * so the count bounds the recursion of any parser that stops there, as
 * jansson does. Returns 0, or -E2BIG with *line and *column (from 1, in
 * characters as jansson counts them) at the first bracket too deep. Any
 * thread; does not block or allocate; linear in len. */
int jpos_depth_check(const char *text, size_t len, unsigned max_depth, unsigned *line,
                     unsigned *column);

/* Releases the document. NULL-safe; safe on a document whose parse failed. */
void jpos_doc_done(struct jpos_doc *doc);

/* A cursor for the document's root value. */
void jpos_val_root(const struct jpos_doc *doc, struct jpos_val *out);

/* Iteration over an object's members or an array's elements, in document
 * order. `it` lives while the container cursor does. */
struct jpos_iter {
    const struct jpos_val *parent;
    void *oit;      /* jansson object iterator */
    size_t i;       /* members or elements visited */
    uint32_t child; /* next position node */
};
void jpos_iter_init(struct jpos_iter *it, const struct jpos_val *container);
/* Writes the next member or element into `out`; false at the end (or when
 * the container is neither an object nor an array). */
bool jpos_iter_next(struct jpos_iter *it, struct jpos_val *out);

/* The member `key` of an object cursor, or false when absent. Linear in the
 * object's size: meant for small objects. */
bool jpos_obj_get(const struct jpos_val *obj, const char *key, struct jpos_val *out);

/* Position of the value (or, for jpos_val_key_pos, of the member's key;
 * falls back to the value). Zero when unknown. */
void jpos_val_pos(const struct jpos_val *v, unsigned *line, unsigned *column);
void jpos_val_key_pos(const struct jpos_val *v, unsigned *line, unsigned *column);

/* Writes the JSON path of `v` into buf (always NUL-terminated when cap > 0;
 * keys that are not identifiers are written as ["key"]). Returns the length
 * it needed, like snprintf. */
size_t jpos_val_path(const struct jpos_val *v, char *buf, size_t cap);

/* "an object", "an array", "a string", "an integer", "a number", "true"... */
const char *jpos_type_name(const json_t *v);
/* The same for a cursor, of either kind of document. */
const char *jpos_val_type_name(const struct jpos_val *v);

/* Readers that work on cursors of either kind of document, as jansson's
 * json_typeof, json_array_size / json_object_size (0 for other types) and
 * json_integer_value (0 for other types) do on its values. */
json_type jpos_typeof(const struct jpos_val *v);
size_t jpos_size(const struct jpos_val *v);
json_int_t jpos_integer_value(const struct jpos_val *v);

/* Report at a value (jpos_err, jpos_warn) or at a member's key
 * (jpos_err_key), adding file, position and path. */
void jpos_err(struct jpos_diags *d, const struct jpos_val *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void jpos_warn(struct jpos_diags *d, const struct jpos_val *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void jpos_err_key(struct jpos_diags *d, const struct jpos_val *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports member `m` as an unknown key, suggesting the closest of the
 * NULL-terminated `known` list: `unknown key "pth" in match; did you mean
 * "path"? (known keys: ...)`. `where` names the containing object for the
 * message (e.g. "route", "match"). */
void jpos_unknown(struct jpos_diags *d, const struct jpos_val *m, const char *where,
                  const char *const *known);

/* Typed readers: true and *out written when `v` has the expected type (and
 * range); otherwise report an error at `v` naming what was expected and
 * return false. Strings must be valid UTF-8 without NUL (jansson guarantees
 * it) and at most `maxlen` bytes; *len gets the length when non-NULL. */
bool jpos_string(struct jpos_diags *d, const struct jpos_val *v, size_t maxlen, const char **out,
                 size_t *len);
bool jpos_int(struct jpos_diags *d, const struct jpos_val *v, long long min, long long max,
              long long *out);
bool jpos_bool(struct jpos_diags *d, const struct jpos_val *v, bool *out);
bool jpos_object(struct jpos_diags *d, const struct jpos_val *v);
bool jpos_array(struct jpos_diags *d, const struct jpos_val *v);

#ifdef __cplusplus
}
#endif

#endif
