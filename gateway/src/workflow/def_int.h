/*
 * def_int.h: what def.c, tmpl.c and keys.c share.
 *
 * A compiled definition lives in one arena of its own (struct wf__def):
 * every string, array and template of it, and the jansson values its
 * templates hold (dropped with the arena). A set owns its definitions; a
 * definition compiled from journalled text (wf_def_from_text) stands alone.
 * Nothing here changes after compile.
 */
#ifndef GW_WORKFLOW_DEF_INT_H
#define GW_WORKFLOW_DEF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jpos/json.h"
#include "jpos/keys.h"
#include "def.h"

/* ---- arena ------------------------------------------------------------------ */
struct wf__anode;
struct wf__arena {
    struct wf__anode *head;
};
void *wf__alloc(struct wf__arena *a, size_t n); /* zeroed */
char *wf__strndup(struct wf__arena *a, const char *s, size_t n);
/* Takes the reference `v` (NULL-safe): decref'ed when the arena is freed. */
int wf__arena_json(struct wf__arena *a, json_t *v);
void wf__arena_free(struct wf__arena *a);

struct wf__def {
    struct wf_def d; /* first: handed out as `struct wf_def *` */
    struct wf__arena arena;
};

/* ---- templates (tmpl.c) ----------------------------------------------------- */

/* How a string template writes a placeholder's value. */
enum wf__enc {
    WF__ENC_TEXT = 0, /* as it is (JSON strings in a body) */
    WF__ENC_PATH,     /* percent-encoded but for unreserved characters (RFC 3986) */
    WF__ENC_HEADER,   /* refused when it holds control characters */
};

/* What a template being compiled may refer to. */
struct wf__scope {
    struct wf__arena *arena;
    const struct wf_input_key *input;
    size_t ninput;
    const char *const *steps; /* every step name of the definition, in order */
    size_t nsteps;
    int cur;           /* the step the template belongs to; -1: the response (any step) */
    bool self_ok;      /* a compensation: its own step too */
    const char *where; /* "step \"debit\"", for messages */
};

/* Compile a string (at `v`, a JSON string) or a JSON value. Problems are
 * reported at `v`. 0, -EINVAL (reported), -ENOMEM. */
int wf__tmpl_string(const struct wf__scope *sc, const struct jpos_val *v, enum wf__enc enc,
                    const struct wf_tmpl **out, struct jpos_diags *d);
int wf__tmpl_json(const struct wf__scope *sc, const struct jpos_val *v, const struct wf_tmpl **out,
                  struct jpos_diags *d);

/* ---- key tables (keys.c) ---------------------------------------------------- */
enum wf__key {
    WF__K_NONE = 0,
    WF__K_WORKFLOWS,
    WF__K_SCHEMA,
    WF__K_NAME,
    WF__K_DESCRIPTION,
    WF__K_INPUT,
    WF__K_IDEMPOTENCY,
    WF__K_MODE,
    WF__K_STEPS,
    WF__K_RESPONSE,
    WF__K_IDEM_HEADER,
    WF__K_STEP_NAME,
    WF__K_UPSTREAM,
    WF__K_REQUEST,
    WF__K_COMPENSATE,
    WF__K_RETRY,
    WF__K_COMPENSATE_RETRY,
    WF__K_SUCCESS,
    WF__K_FAILURE,
    WF__K_METHOD,
    WF__K_PATH,
    WF__K_HEADERS,
    WF__K_BODY,
    WF__K_COMPLETED,
    WF__K_COMPENSATED,
    WF__K_FAILED,
    WF__K_STATUS,
    WF__K_INPUT_TYPE,
    WF__K_INPUT_REQUIRED,
};

extern const struct jpos_section wf__def_keys;
extern const struct jpos_section wf__idem_keys;
extern const struct jpos_section wf__step_keys;
extern const struct jpos_section wf__request_keys;
extern const struct jpos_section wf__retry_keys;
extern const struct jpos_section wf__compensate_retry_keys;
extern const struct jpos_section wf__response_keys;
extern const struct jpos_section wf__answer_keys;
extern const struct jpos_section wf__input_key_keys;
/* In enum wf_json_type order, NULL-terminated. */
extern const char *const wf__type_names[];

#endif
