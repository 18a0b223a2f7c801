/*
 * def.h: workflow definitions — load, validate, compile, expand.
 *
 * A workflow definition is a saga: an ordered list of steps, each a request
 * to an upstream with an optional compensation request, run by one
 * gen_statem process per instance (instance.c). Definitions are read from
 * JSON files in the `workflows` directory beside `routes`
 * (`{"workflows": [ {...}, ... ]}`; the language is in README.md of this
 * folder), validated as a whole with every problem reported at FILE:LINE:
 * COLUMN (unknown upstreams and placeholders with a did-you-mean), and
 * compiled into an immutable `struct wf_set`, published with the route
 * table that names them.
 *
 * Every definition keeps its canonical text (`text`): the journal stores it
 * with each instance, and recovery compiles the instance's definition from
 * that text (wf_def_from_text), so an instance finishes under the definition
 * it started with whatever reloads happened since.
 *
 * Templates: a request's path, header values and JSON body may hold
 * placeholders `${input.KEY[.KEY...]}`, `${workflow.id}`, `${workflow.name}`,
 * `${steps.STEP.status}` and `${steps.STEP.body[.KEY...]}`. In a JSON body a
 * string that is exactly one placeholder becomes the value itself (a number
 * stays a number); elsewhere the value is written as text (strings as they
 * are, other values as compact JSON), percent-encoded in a path. `$${`
 * writes a literal `${`. A step may refer to the input and to steps before
 * it; a compensation also to its own step; a response to any step.
 *
 * Everything here is pure data and may run on any thread; loading reads
 * files (run it where blocking is allowed).
 */
#ifndef GW_WORKFLOW_DEF_H
#define GW_WORKFLOW_DEF_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jpos/diag.h"
#include "jpos/keys.h"

/* Bounds on what a workflow file may ask for; exceeding one is a
 * validation error that names it. */
#define WF_MAX_DEFS 1000
#define WF_MAX_STEPS 32
#define WF_MAX_INPUT_KEYS 64
#define WF_MAX_HEADERS 16
#define WF_MAX_NAME_BYTES 64
#define WF_MAX_FILE_BYTES (4u << 20)
#define WF_MAX_TEMPLATE_BYTES (64u << 10)

/* A JSON type an input key must have. */
enum wf_json_type {
    WF_JT_STRING = 0,
    WF_JT_INTEGER,
    WF_JT_NUMBER, /* integer or real */
    WF_JT_BOOLEAN,
    WF_JT_OBJECT,
    WF_JT_ARRAY,
};

/* How an upstream's answer to a step (or a compensation) is read. */
enum wf_outcome {
    WF_OUT_SUCCESS = 0, /* the step is done */
    WF_OUT_FAILURE,     /* definitely not done: compensate what was done */
    WF_OUT_UNKNOWN,     /* cannot tell: retry with the same key until known */
};

/* A compiled template (opaque): a string with placeholders, or a JSON value
 * whose strings may hold them. */
struct wf_tmpl;

struct wf_header {
    const char *name; /* lower case */
    const struct wf_tmpl *value;
};

/* A request a step sends: method, path (a string template, may carry a
 * query), headers, and a JSON body (NULL: none). */
struct wf_request {
    const char *method;
    const struct wf_tmpl *path;
    const struct wf_header *headers;
    size_t nheaders;
    const struct wf_tmpl *body;
};

struct wf_retry {
    uint32_t attempts;       /* sends in all, the first included; 0: until the outcome is
                                known (a step) or it succeeds (a compensation); run out:
                                the instance enters `failed` */
    uint32_t backoff_ms;     /* before the second send */
    uint32_t backoff_max_ms; /* doubling up to this */
};

struct wf_step {
    const char *name;
    const char *upstream;
    int upstream_index; /* into the upstream names given to the loader */
    struct wf_request request;
    const struct wf_request *compensate; /* NULL: nothing to undo */
    uint32_t timeout_ms;                 /* per send: connect, write, read */
    struct wf_retry retry;
    struct wf_retry compensate_retry;
    /* The outcome of each status 100..599 (index status - 100). A timeout,
     * a refused or reset connection and an unreadable answer are
     * WF_OUT_UNKNOWN, except that a connection refused before anything was
     * sent is retried as a failure to send. */
    unsigned char outcome[500];
    const char *file;
    unsigned line, column;
};

struct wf_input_key {
    const char *name;
    enum wf_json_type type;
    bool required;
};

enum wf_idem {
    WF_IDEM_REQUIRED = 0, /* a request without the key gets 400 */
    WF_IDEM_OPTIONAL,     /* without the key, every request starts an instance */
};

/* What the client is answered when the instance ends in one of its
 * terminal states: status and a JSON body template (which may use the same
 * placeholders as steps, every step's result included). */
struct wf_answer {
    int status;
    const struct wf_tmpl *body; /* NULL: a default body {"id","state",...} */
};

struct wf_def {
    const char *name;
    uint64_t version; /* FNV-1a 64 of `text` */
    const char *text; /* canonical JSON of this definition (sorted keys, compact) */
    size_t text_len;

    const struct wf_input_key *input;
    size_t ninput;

    enum wf_idem idempotency;
    const char *key_header;       /* lower case; default "idempotency-key" */
    uint64_t key_ttl_ms;          /* keys and results kept this long; default 24 h */
    uint32_t wait_ms;             /* sync: wait this long for the end, else 202; 0: async */
    uint64_t compensate_limit_ms; /* compensation that lasts longer enters `failed` */

    const struct wf_step *steps;
    size_t nsteps;

    struct wf_answer completed;   /* default 200 */
    struct wf_answer compensated; /* default 409 */
    struct wf_answer failed;      /* default 500 */

    const char *file;
    unsigned line, column;
};

/* A set of definitions, reference counted; immutable once built. */
struct wf_set;

/* Reads every `*.json` of `dir` (names starting with '.' skipped, byte
 * order) and compiles the set. Steps' upstreams are checked against
 * `upstreams` (n names). A missing directory is an empty set, not an error
 * (workflows are optional). 0 and *out, -EINVAL (errors in d), -ENOMEM. */
int wf_set_load_dir(const char *dir, const char *const *upstreams, size_t n, struct wf_set **out,
                    struct jpos_diags *d);
/* The same for one file held in memory (tests, the admin API). */
int wf_set_load_text(const char *label, const char *text, size_t len, const char *const *upstreams,
                     size_t n, struct wf_set **out, struct jpos_diags *d);
struct wf_set *wf_set_ref(struct wf_set *s);
void wf_set_unref(struct wf_set *s); /* NULL-safe */
size_t wf_set_count(const struct wf_set *s);
const struct wf_def *wf_set_def(const struct wf_set *s, size_t i);
const struct wf_def *wf_set_find(const struct wf_set *s, const char *name);
/* The names, for the route loader's checks and did-you-mean; valid while
 * the set is. */
const char *const *wf_set_names(const struct wf_set *s);

/* One definition from its canonical text (as journalled), standalone and
 * owned by the caller (wf_def_free). Upstream names are resolved against
 * `upstreams` again; a name gone since gives -ENOENT. */
int wf_def_from_text(const char *text, size_t len, const char *const *upstreams, size_t n,
                     struct wf_def **out, struct jpos_diags *d);
void wf_def_free(struct wf_def *def); /* NULL-safe; only for wf_def_from_text */

/* The key table of a workflow file, for `tandem schema workflows` and
 * `tandem check --print-keys`. */
extern const struct jpos_section wf_file_keys;

/* ---- expansion ------------------------------------------------------------ */

/* A finished step's result, as templates see it. */
struct wf_step_result {
    int status;   /* 0: not run (or not known) */
    json_t *body; /* the answer's JSON body, or NULL (empty or not JSON) */
};

struct wf_ctx {
    const char *id;   /* the instance id */
    const char *name; /* the definition name */
    const json_t *input;
    const struct wf_step_result *steps; /* def->nsteps entries */
};

/* Expands a string template into a new NUL-terminated string (*len its
 * length, when len is non-NULL). A placeholder with no value at run time (a
 * key missing from a step's body, an optional input key not given, a step
 * not answered) gives -ENOENT; a header value that would hold a control
 * character, or a path segment a value would make empty, "." or "..",
 * -EINVAL; a result over 1 MiB -E2BIG; each with a message naming the
 * placeholder in err. None of them can succeed on a resend: the instance
 * treats them as a definite failure of the step. -ENOMEM. */
int wf_expand_string(const struct wf_tmpl *t, const struct wf_ctx *c, char **out, size_t *len,
                     char *err, size_t errcap);
/* Expands a JSON template into a new value (the caller's reference); the
 * same errors, and -E2BIG for a value over 4 MiB as compact JSON. */
int wf_expand_json(const struct wf_tmpl *t, const struct wf_ctx *c, json_t **out, char *err,
                   size_t errcap);

/* Checks an input document against def->input: a JSON object with every
 * required key, each declared key of its type, and no undeclared key (a
 * misspelt optional key would vanish silently). NULL (no body) passes when
 * the definition declares no input. 0, or -EINVAL with a message for the
 * client in err ("input.amount: expected integer, got a string"). */
int wf_input_check(const struct wf_def *def, const json_t *input, char *err, size_t errcap);

#endif
