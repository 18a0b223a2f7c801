/*
 * keys.h: key tables for configuration objects.
 *
 * A `struct jpos_section` lists the keys one JSON object may hold, one
 * `struct jpos_key` row each: its name, type, where its value goes in the
 * caller's struct (offset and size), its range, its default and a line on
 * what it means. The row is the only place the key is spelled: the loader
 * dispatches on it, unknown keys are reported against it (with a did-you-mean
 * hint), defaults are written from it, `tandem check --print-keys` lists it,
 * and JSON Schemas for editors are generated from it.
 *
 * Keys whose value the table cannot read alone (addresses, names checked
 * against others, nested sections) carry JPOS_KEY_CUSTOM: jpos_keys_parse
 * hands them to the caller's callback. Tables are static const data; every
 * function here is pure apart from the diagnostics it adds and the fields it
 * writes, and may run on any thread.
 */
#ifndef JPOS_KEYS_H
#define JPOS_KEYS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jpos/diag.h"
#include "jpos/json.h"

#ifdef __cplusplus
extern "C" {
#endif

enum jpos_type {
    JPOS_T_INT,    /* an integer in [min, max]; field of `size` 4 (uint32_t) or 8 (int64_t) */
    JPOS_T_BOOL,   /* true or false; field: bool */
    JPOS_T_STRING, /* at most `max` bytes; default `def_str`, NULL: none */
    JPOS_T_CHOICE, /* one of `choices`; field: an enum (size 4) or a bool (size 1), the index */
    JPOS_T_OBJECT, /* the nested section `sub`; field: its struct, or none (`sub` writes `base`) */
    JPOS_T_ARRAY,  /* min..max elements: `sub` objects, or values described by `schema` */
    JPOS_T_MAP,    /* an object of NAME: `sub`, at most `max` members */
    JPOS_T_OTHER,  /* shape given by `schema` only */
};

#define JPOS_KEY_REQUIRED 1u  /* must be present (the caller reports its absence) */
#define JPOS_KEY_CUSTOM 2u    /* read by the caller's callback, not by jpos_keys_parse */
#define JPOS_KEY_OR_FALSE 4u  /* OBJECT: `false` is accepted too (the section turned off) */
#define JPOS_KEY_INTERNAL 8u  /* not a key of the file: a fixed value listed for documentation */
#define JPOS_KEY_DEF_TEXT 16u /* def_str says what the default is ("the upstream's"); no value */

#define JPOS_NO_FIELD SIZE_MAX

struct jpos_section;

struct jpos_key {
    const char *name;
    enum jpos_type type;
    unsigned flags;
    size_t offset; /* into the section's struct; JPOS_NO_FIELD when none */
    unsigned size; /* bytes of the field */
    long long min, max;
    long long def;       /* INT, BOOL (0/1), CHOICE (index) */
    const char *def_str; /* STRING default; for OBJECT/ARRAY/MAP/OTHER how the docs show it */
    const char *const *choices;     /* CHOICE: NULL-terminated */
    const char *listed;             /* CHOICE: the names as the unknown-name message lists them */
    const struct jpos_section *sub; /* OBJECT, MAP, ARRAY of objects */
    const char *schema; /* JSON Schema merged into the generated one (OTHER: all of it) */
    const char *why;    /* one line: what it means, why the default */
    int id;             /* the loader's own name for the row, for its callback */
};

struct jpos_section {
    const char *where; /* names the object in messages: "unknown key ... in listener" */
    const struct jpos_key *keys;
    size_t nkeys;
    const char *why;
};

#define JPOS_SECTION(where_, keys_, why_)                                                          \
    {                                                                                              \
        .where = (where_), .keys = (keys_), .nkeys = sizeof(keys_) / sizeof((keys_)[0]),           \
        .why = (why_)                                                                              \
    }

/* The row named `name` (internal rows excluded), or NULL. */
const struct jpos_key *jpos_key_find(const struct jpos_section *s, const char *name);

/* Writes every INT, BOOL and CHOICE row's default into `base`, and those of
 * nested OBJECT rows' sections: into the row's field (a struct) when it has
 * one, else into `base` itself. A default left out would be one the
 * documentation states and the gateway does not use. */
void jpos_keys_defaults(const struct jpos_section *s, void *base);

/* Writes `value` into the field of row `k` in `base` (INT, BOOL, CHOICE). */
void jpos_key_store(const struct jpos_key *k, void *base, long long value);

/* Reports member `m` as unknown in section `s`, suggesting the closest key
 * (jpos_unknown's message, listing the section's keys in table order). */
void jpos_keys_unknown(struct jpos_diags *d, const struct jpos_val *m,
                       const struct jpos_section *s);

/* One of `names` (NULL-terminated): its index, or -1 after an error that
 * suggests the closest name: `unknown WHAT "x"; did you mean "y"?`, else
 * `unknown WHAT "x" (LISTED)` where LISTED is `listed` when non-NULL and
 * `one of "a", "b"` otherwise. */
int jpos_choice(struct jpos_diags *d, const struct jpos_val *v, const char *what,
                const char *const *names, const char *listed);

/* Reads member `m` of row `k` (INT, BOOL or CHOICE) into `base`, or reports
 * why it cannot. True when stored. */
bool jpos_key_read(struct jpos_diags *d, const struct jpos_key *k, const struct jpos_val *m,
                   void *base);

/* Called for JPOS_KEY_CUSTOM rows and rows without a field. Returns 0 or
 * -ENOMEM (which stops the parse). */
typedef int (*jpos_key_fn)(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                           struct jpos_diags *d);

/* Visits the members of object `v`: unknown keys are reported, table-read
 * rows are stored into `base`, the others go to `fn`. *seen (when non-NULL)
 * gets bit i set for row i found (sections hold at most 64 rows). The
 * caller has checked that `v` is an object. Returns 0 or -ENOMEM. */
int jpos_keys_parse(struct jpos_diags *d, const struct jpos_val *v, const struct jpos_section *s,
                    void *base, jpos_key_fn fn, void *ctx, uint64_t *seen);

/* The bit of row `name` in jpos_keys_parse's *seen (0 when absent). */
uint64_t jpos_key_bit(const struct jpos_section *s, const char *name);

/* The default as the documentation shows it: "required", "32768",
 * "100 MiB" (a whole number of MiB from 1 MiB), "true", "`refuse`",
 * "`127.0.0.1:9901`", "none", or the row's def_str. Writes at most cap bytes. */
void jpos_key_default_text(const struct jpos_key *k, char *buf, size_t cap);

/* Lists every row under `prefix`, one line each: PATH TAB TYPE TAB DEFAULT TAB
 * RANGE TAB WHY; nested sections follow their row (arrays as `name[]`, maps
 * as `name.NAME`). Internal rows are listed with type "internal". */
void jpos_keys_print(FILE *out, const struct jpos_section *s, const char *prefix);

/* A JSON Schema (draft 2020-12) for an object of section `s`, with
 * descriptions and defaults from the rows, identified by `id` and named
 * `title`. NULL when out of memory. The caller owns it. */
json_t *jpos_keys_schema(const struct jpos_section *s, const char *id, const char *title);

#ifdef __cplusplus
}
#endif

#endif
