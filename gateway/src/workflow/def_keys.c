/*
 * def_keys.c: the key tables of workflow files, one per object (see
 * jpos/keys.h).
 *
 * Each key of a workflow file is spelled here only: def.c dispatches on
 * these rows (by id, or reads them through jpos_keys_parse when the row has
 * a field), unknown keys are reported against them with a did-you-mean, and
 * `tandem schema workflows` / `tandem check --print-keys` are generated from
 * them. The language is described in README.md of this folder.
 */
#include <stddef.h>

#include "def_int.h"

#define C JPOS_KEY_CUSTOM
#define FIELD(type, member) .offset = offsetof(type, member), .size = sizeof(((type *)0)->member)
#define NOFIELD .offset = JPOS_NO_FIELD, .size = 0
#define MS_HOUR 3600000LL
#define MS_DAY (24 * MS_HOUR)

const char *const wf__type_names[] = {"string", "integer", "number", "boolean",
                                      "object", "array",   NULL};
static const char *const idem_names[] = {"required", "optional", NULL};
static const char *const mode_names[] = {"sync", "async", NULL};

#define TYPE_SCHEMA                                                                                \
    "{\"enum\": [\"string\", \"integer\", \"number\", \"boolean\", \"object\", \"array\"]}"

static const struct jpos_key input_key_rows[] = {
    {"type", JPOS_T_CHOICE, C | JPOS_KEY_REQUIRED, NOFIELD, .choices = wf__type_names,
     .id = WF__K_INPUT_TYPE, .why = "the JSON type the value must have"},
    {"required", JPOS_T_BOOL, C, NOFIELD, .def = 1, .id = WF__K_INPUT_REQUIRED,
     .why = "a request without it is refused (400)"},
};
const struct jpos_section wf__input_key_keys =
    JPOS_SECTION("input key", input_key_rows, "one key of the input: its type and whether needed");

#define D struct wf_def
static const struct jpos_key idem_rows[] = {
    {"key", JPOS_T_CHOICE, 0, FIELD(D, idempotency), .choices = idem_names,
     .why = "required: a request without the key gets 400; optional: such a request starts an "
            "instance each time"},
    {"header", JPOS_T_STRING, C, NOFIELD, .max = 256, .def_str = "Idempotency-Key",
     .id = WF__K_IDEM_HEADER, .why = "the request header carrying the client's key"},
    {"ttl_ms", JPOS_T_INT, 0, FIELD(D, key_ttl_ms), 1000, 30 * MS_DAY, MS_DAY,
     .why = "a key and its stored answer are kept this long after the instance ends, then purged"},
};
const struct jpos_section wf__idem_keys =
    JPOS_SECTION("idempotency", idem_rows, "how client retries are recognised (Idempotency-Key)");

#define R struct wf_retry
static const struct jpos_key retry_rows[] = {
    /* An unknown outcome may have been applied: guessing either way could
     * apply a transfer twice or create money, so by default the request is
     * resent (with the same key) until the upstream says. */
    {"attempts", JPOS_T_INT, 0, FIELD(R, attempts), 0, 1000, 0,
     .why = "sends in all, the first included; 0: until the outcome is known; when they run out "
            "without one the instance enters `failed` for an operator (never a guess)"},
    {"backoff_ms", JPOS_T_INT, 0, FIELD(R, backoff_ms), 1, MS_HOUR, 100,
     .why = "the wait before the second send; doubled after each send"},
    {"backoff_max_ms", JPOS_T_INT, 0, FIELD(R, backoff_max_ms), 1, MS_DAY, 10000,
     .why = "the longest wait between two sends"},
};
const struct jpos_section wf__retry_keys = JPOS_SECTION(
    "retry", retry_rows, "how a step's request is resent while its outcome is unknown");

/* A compensation is retried until it succeeds (or the definition's
 * compensate_limit_ms passes, and the instance waits for an operator). */
static const struct jpos_key compensate_retry_rows[] = {
    {"attempts", JPOS_T_INT, 0, FIELD(R, attempts), 0, 1000, 0,
     .why = "sends in all; 0: until it succeeds (bounded by compensate_limit_ms)"},
    {"backoff_ms", JPOS_T_INT, 0, FIELD(R, backoff_ms), 1, MS_HOUR, 200,
     .why = "the wait before the second send; doubled after each send"},
    {"backoff_max_ms", JPOS_T_INT, 0, FIELD(R, backoff_max_ms), 1, MS_DAY, 30000,
     .why = "the longest wait between two sends"},
};
#undef R
const struct jpos_section wf__compensate_retry_keys = JPOS_SECTION(
    "compensate_retry", compensate_retry_rows, "how a compensation is resent until it succeeds");

#define TMPL_NOTE "; may hold ${...} placeholders"
static const struct jpos_key request_rows[] = {
    {"method", JPOS_T_STRING, C, NOFIELD, .max = 32, .def_str = "POST", .id = WF__K_METHOD,
     .why = "the request method (case-sensitive)"},
    {"path", JPOS_T_STRING, C | JPOS_KEY_REQUIRED, NOFIELD, .max = WF_MAX_TEMPLATE_BYTES,
     .id = WF__K_PATH, .schema = "{\"pattern\": \"^/\"}",
     .why = "the upstream path, query included; placeholders are percent-encoded" TMPL_NOTE},
    {"headers", JPOS_T_OTHER, C, NOFIELD, .id = WF__K_HEADERS,
     .schema = "{\"type\": \"object\", \"maxProperties\": 16, \"additionalProperties\": "
               "{\"type\": \"string\"}}",
     .why = "header fields sent" TMPL_NOTE},
    {"body", JPOS_T_OTHER, C, NOFIELD, .id = WF__K_BODY, .def_str = "none",
     .why = "a JSON body; a string that is one placeholder becomes its value" TMPL_NOTE},
};
const struct jpos_section wf__request_keys =
    JPOS_SECTION("request", request_rows, "a request sent to the step's upstream");

#define STATUSES_SCHEMA                                                                            \
    "{\"items\": {\"anyOf\": [{\"type\": \"integer\", \"minimum\": 100, \"maximum\": 599}, "       \
    "{\"type\": \"string\", \"pattern\": \"^[1-5]xx$\"}]}}"
#define S struct wf_step
static const struct jpos_key step_rows[] = {
    {"name", JPOS_T_STRING, C | JPOS_KEY_REQUIRED, NOFIELD, .max = WF_MAX_NAME_BYTES,
     .id = WF__K_STEP_NAME, .schema = "{\"pattern\": \"^[A-Za-z_][A-Za-z0-9_-]*$\"}",
     .why = "unique in the workflow; letters, digits, '_' and '-'"},
    {"upstream", JPOS_T_STRING, C | JPOS_KEY_REQUIRED, NOFIELD, .max = 256, .id = WF__K_UPSTREAM,
     .why = "an upstream defined in tandem.json"},
    {"request", JPOS_T_OBJECT, C | JPOS_KEY_REQUIRED, NOFIELD, .sub = &wf__request_keys,
     .id = WF__K_REQUEST, .why = "what the step sends"},
    {"compensate", JPOS_T_OBJECT, C, NOFIELD, .sub = &wf__request_keys, .def_str = "none",
     .id = WF__K_COMPENSATE, .why = "what undoes the step; absent: nothing to undo"},
    {"timeout_ms", JPOS_T_INT, 0, FIELD(S, timeout_ms), 1, MS_HOUR, 10000,
     .why = "each send: connect, write and answer; beyond it the outcome is unknown"},
    {"retry", JPOS_T_OBJECT, C, FIELD(S, retry), .sub = &wf__retry_keys, .def_str = "{}",
     .id = WF__K_RETRY, .why = "resending the request while its outcome is unknown"},
    {"compensate_retry", JPOS_T_OBJECT, C, FIELD(S, compensate_retry),
     .sub = &wf__compensate_retry_keys, .def_str = "{}", .id = WF__K_COMPENSATE_RETRY,
     .why = "resending the compensation"},
    {"success", JPOS_T_ARRAY, C, NOFIELD, 1, 500, .def_str = "`[\"2xx\"]`", .id = WF__K_SUCCESS,
     .schema = STATUSES_SCHEMA, .why = "statuses that mean done: 201 or \"2xx\""},
    {"failure", JPOS_T_ARRAY, C, NOFIELD, 0, 500, .def_str = "`[\"4xx\"]` but 408, 425 and 429",
     .id = WF__K_FAILURE, .schema = STATUSES_SCHEMA,
     .why = "statuses that mean definitely not done (compensate); any other status is unknown "
            "and retried"},
};
#undef S
const struct jpos_section wf__step_keys =
    JPOS_SECTION("step", step_rows, "one call of the saga and its compensation");

static const struct jpos_key answer_rows[] = {
    {"status", JPOS_T_INT, C | JPOS_KEY_DEF_TEXT, NOFIELD, 200, 599, .id = WF__K_STATUS,
     .def_str = "200, 409, 500", .why = "completed: 200, compensated: 409, failed: 500"},
    {"body", JPOS_T_OTHER, C, NOFIELD, .id = WF__K_BODY, .def_str = "{\"id\", \"state\"}",
     .why = "a JSON body; may use every step's result" TMPL_NOTE},
};
const struct jpos_section wf__answer_keys =
    JPOS_SECTION("answer", answer_rows, "what the client is answered in one terminal state");

static const struct jpos_key response_rows[] = {
    {"completed", JPOS_T_OBJECT, C, NOFIELD, .sub = &wf__answer_keys, .def_str = "{}",
     .id = WF__K_COMPLETED, .why = "every step succeeded"},
    {"compensated", JPOS_T_OBJECT, C, NOFIELD, .sub = &wf__answer_keys, .def_str = "{}",
     .id = WF__K_COMPENSATED, .why = "a step failed and what was done is undone"},
    {"failed", JPOS_T_OBJECT, C, NOFIELD, .sub = &wf__answer_keys, .def_str = "{}",
     .id = WF__K_FAILED, .why = "compensation could not finish: an operator decides"},
};
const struct jpos_section wf__response_keys =
    JPOS_SECTION("response", response_rows, "the answers in each terminal state");

static const struct jpos_key def_rows[] = {
    {"name", JPOS_T_STRING, C | JPOS_KEY_REQUIRED, NOFIELD, .max = WF_MAX_NAME_BYTES,
     .id = WF__K_NAME, .schema = "{\"pattern\": \"^[A-Za-z0-9._-]+$\"}",
     .why = "unique; routes name it; letters, digits, '.', '_' and '-'"},
    {"description", JPOS_T_STRING, C, NOFIELD, .max = 4096, .id = WF__K_DESCRIPTION,
     .why = "free text for people"},
    {"input", JPOS_T_OTHER, C, NOFIELD, .id = WF__K_INPUT, .def_str = "{}",
     .schema = "{\"type\": \"object\", \"maxProperties\": 64, \"additionalProperties\": "
               "{\"anyOf\": [" TYPE_SCHEMA ", {\"type\": \"object\", \"properties\": "
               "{\"type\": " TYPE_SCHEMA ", \"required\": {\"type\": \"boolean\"}}, "
               "\"required\": [\"type\"], \"additionalProperties\": false}]}}",
     .why = "the request body's keys: KEY: \"integer\" (required) or {\"type\", \"required\"}"},
    {"idempotency", JPOS_T_OBJECT, C, NOFIELD, .sub = &wf__idem_keys, .def_str = "{}",
     .id = WF__K_IDEMPOTENCY, .why = "how client retries are recognised"},
    {"mode", JPOS_T_CHOICE, C, NOFIELD, .choices = mode_names, .id = WF__K_MODE,
     .why = "sync: answer the result when it comes within wait_ms, else 202; async: 202 at once"},
    {"wait_ms", JPOS_T_INT, 0, FIELD(D, wait_ms), 1, 600000, 10000,
     .why = "sync mode: how long the request waits for the end before 202"},
    {"compensate_limit_ms", JPOS_T_INT, 0, FIELD(D, compensate_limit_ms), 1000, 30 * MS_DAY,
     MS_HOUR, .why = "compensation still unfinished after this long enters `failed`"},
    {"steps", JPOS_T_ARRAY, C | JPOS_KEY_REQUIRED, NOFIELD, 1, WF_MAX_STEPS, .sub = &wf__step_keys,
     .id = WF__K_STEPS, .why = "the calls, run in order"},
    {"response", JPOS_T_OBJECT, C, NOFIELD, .sub = &wf__response_keys, .def_str = "{}",
     .id = WF__K_RESPONSE, .why = "the answers in each terminal state"},
};
#undef D
const struct jpos_section wf__def_keys =
    JPOS_SECTION("workflow", def_rows, "a workflow: a saga of steps");

static const struct jpos_key file_rows[] = {
    {"workflows", JPOS_T_ARRAY, C | JPOS_KEY_REQUIRED, NOFIELD, 0, WF_MAX_DEFS,
     .sub = &wf__def_keys, .id = WF__K_WORKFLOWS, .why = "the workflows of this file"},
    {"$schema", JPOS_T_STRING, C, NOFIELD, .max = 4096, .id = WF__K_SCHEMA,
     .why = "the JSON Schema this file follows, for editors; the gateway reads nothing from it"},
};
const struct jpos_section wf_file_keys =
    JPOS_SECTION("workflow file", file_rows, "a workflow file of the workflows directory");
