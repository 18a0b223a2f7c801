/*
 * def.c: workflow files -> `struct wf_set` of compiled `struct wf_def`.
 *
 * A definition is validated as a whole and every problem is reported at its
 * value (FILE:LINE:COLUMN plus JSON path), with a did-you-mean for unknown
 * keys, upstreams, steps and input keys; compiling goes on after an error so
 * that one `tandem check` shows everything. What needs the whole set
 * (duplicate names) is checked once every file is read.
 *
 * Each definition keeps its canonical text: the JSON object as written,
 * keys sorted, compact. Its version is the FNV-1a 64 of that text, so an
 * unchanged definition keeps its version across reloads and edits that
 * change only layout or key order do not make a new one.
 *
 * Each definition owns an arena (def_int.h); a set owns its definitions and
 * is reference counted, immutable once built, and may be read by any number
 * of threads.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "def_int.h"
#include "jpos/file.h"

/* ---- arena ------------------------------------------------------------------ */

struct wf__anode {
    struct wf__anode *next;
    json_t *json; /* a value to decref, or NULL */
    _Alignas(16) unsigned char data[];
};

void *wf__alloc(struct wf__arena *a, size_t n)
{
    struct wf__anode *x = calloc(1, sizeof(*x) + n);
    if (!x)
        return NULL;
    x->next = a->head;
    a->head = x;
    return x->data;
}

char *wf__strndup(struct wf__arena *a, const char *s, size_t n)
{
    char *p = wf__alloc(a, n + 1);
    if (p)
        memcpy(p, s, n);
    return p;
}

int wf__arena_json(struct wf__arena *a, json_t *v)
{
    struct wf__anode *x = calloc(1, sizeof(*x));
    if (!x) {
        json_decref(v);
        return -ENOMEM;
    }
    x->json = v;
    x->next = a->head;
    a->head = x;
    return 0;
}

void wf__arena_free(struct wf__arena *a)
{
    struct wf__anode *x = a->head;
    while (x) {
        struct wf__anode *next = x->next;
        json_decref(x->json);
        free(x);
        x = next;
    }
    a->head = NULL;
}

/* ---- helpers ---------------------------------------------------------------- */

/* Headers the gateway writes itself on a step's request (call.c): framing
 * and hop-by-hop fields (RFC 9110 7.6.1, 9112 6), Host (the upstream's),
 * the Idempotency-Key that makes a resend safe, X-Request-Id and
 * X-Workflow-Id, and Content-Type (the body is JSON). A second field of one
 * of them would be sent beside the gateway's, and a singleton such as
 * Content-Type twice is a request the upstream may refuse. */
static const char *const managed_headers[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive",   "te",
    "trailer",        "upgrade",           "host",       "content-type", "idempotency-key",
    "x-request-id",   "x-workflow-id",     NULL};

static const char *const method_names[] = {"GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                           "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL};

static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(s, *list) == 0)
            return true;
    return false;
}

static char *lower_dup(struct wf__arena *a, const char *s, size_t len)
{
    char *p = wf__strndup(a, s, len);
    if (p)
        for (size_t i = 0; i < len; i++)
            p[i] = (char)tolower((unsigned char)p[i]);
    return p;
}

static uint64_t fnv1a64(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static const struct jpos_key *row(const struct jpos_section *s, int id)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (s->keys[i].id == id)
            return &s->keys[i];
    return NULL;
}

/* Lists up to 8 names for a message: "a", "b", "c". */
static void name_list(char *buf, size_t cap, const char *const *names, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && i < 8 && len < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s\"%s\"", i ? ", " : "", names[i]);
        if (w > 0)
            len += (size_t)w;
    }
    if (n > 8 && len < cap)
        snprintf(buf + len, cap - len, ", ... (%zu in all)", n);
}

/* ---- compiling one definition ----------------------------------------------- */

struct cdef {
    struct wf__def *w;
    struct wf__arena *a;
    const char *const *upstreams;
    size_t nupstreams;
    const char *file; /* arena copy */
    size_t unknown_upstreams;
    /* the definition's members, found first and read in dependency order */
    struct jpos_val name, input, idem, mode, steps, response;
    bool has_name, has_input, has_idem, has_mode, has_steps, has_response;
    bool wait_seen;
};

static int def_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                   struct jpos_diags *d)
{
    struct cdef *c = ctx;
    const char *s;
    switch (k->id) {
    case WF__K_NAME:
        c->name = *m;
        c->has_name = true;
        break;
    case WF__K_DESCRIPTION:
        jpos_string(d, m, (size_t)k->max, &s, NULL);
        break;
    case WF__K_INPUT:
        c->input = *m;
        c->has_input = true;
        break;
    case WF__K_IDEMPOTENCY:
        c->idem = *m;
        c->has_idem = true;
        break;
    case WF__K_MODE:
        c->mode = *m;
        c->has_mode = true;
        break;
    case WF__K_STEPS:
        c->steps = *m;
        c->has_steps = true;
        break;
    case WF__K_RESPONSE:
        c->response = *m;
        c->has_response = true;
        break;
    }
    return 0;
}

static bool valid_def_name(const char *s)
{
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("._-", *s)))
            return false;
    return true;
}

static bool valid_ident(const char *s, size_t len)
{
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

static int parse_input(struct cdef *c, struct jpos_diags *d)
{
    const struct jpos_val *v = &c->input;
    if (!jpos_object(d, v))
        return 0;
    size_t n = json_object_size(v->v);
    if (n > WF_MAX_INPUT_KEYS) {
        jpos_err(d, v, "declares %zu input keys; at most %d", n, WF_MAX_INPUT_KEYS);
        return 0;
    }
    struct wf_input_key *keys = wf__alloc(c->a, (n ? n : 1) * sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    size_t k = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        size_t klen = strlen(m.key);
        if (!valid_ident(m.key, klen) || klen > WF_MAX_NAME_BYTES) {
            jpos_err_key(d, &m,
                         "input key \"%s\" must be a name of letters, digits, '_' and '-' "
                         "(at most %d bytes) so that ${input.%s} can name it",
                         m.key, WF_MAX_NAME_BYTES, m.key);
            continue;
        }
        struct wf_input_key ik = {.required = true};
        int t = -1;
        if (json_is_string(m.v)) {
            t = jpos_choice(d, &m, "input type", wf__type_names, NULL);
        } else if (json_is_object(m.v)) {
            struct jpos_iter it2;
            struct jpos_val x;
            bool has_type = false;
            jpos_iter_init(&it2, &m);
            while (jpos_iter_next(&it2, &x)) {
                const struct jpos_key *kr = jpos_key_find(&wf__input_key_keys, x.key);
                if (!kr) {
                    jpos_keys_unknown(d, &x, &wf__input_key_keys);
                } else if (kr->id == WF__K_INPUT_TYPE) {
                    has_type = true;
                    t = jpos_string(d, &x, 32, &(const char *){0}, NULL)
                            ? jpos_choice(d, &x, "input type", wf__type_names, NULL)
                            : -1;
                } else {
                    jpos_bool(d, &x, &ik.required);
                }
            }
            if (!has_type)
                jpos_err(d, &m, "input key \"%s\" has no \"type\" (\"string\", \"integer\", ...)",
                         m.key);
        } else {
            jpos_err(d, &m,
                     "expected a type (\"integer\") or {\"type\": \"integer\", \"required\": "
                     "false}, got %s",
                     jpos_type_name(m.v));
        }
        if (t < 0)
            continue;
        ik.type = (enum wf_json_type)t;
        if (!(ik.name = wf__strndup(c->a, m.key, klen)))
            return -ENOMEM;
        keys[k++] = ik;
    }
    c->w->d.input = keys;
    c->w->d.ninput = k;
    return 0;
}

static int parse_idem(struct cdef *c, struct jpos_diags *d)
{
    if (!jpos_object(d, &c->idem))
        return 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, &c->idem);
    while (jpos_iter_next(&it, &m)) {
        const struct jpos_key *k = jpos_key_find(&wf__idem_keys, m.key);
        if (!k) {
            jpos_keys_unknown(d, &m, &wf__idem_keys);
        } else if (k->id == WF__K_IDEM_HEADER) {
            const char *s;
            size_t len;
            if (!jpos_string(d, &m, (size_t)k->max, &s, &len))
                continue;
            if (!is_token(s, len)) {
                jpos_err(d, &m, "\"%s\" is not a valid header name", s);
                continue;
            }
            if (!(c->w->d.key_header = lower_dup(c->a, s, len)))
                return -ENOMEM;
        } else {
            jpos_key_read(d, k, &m, &c->w->d);
        }
    }
    return 0;
}

/* A status list: integers 100..599 and "Nxx" classes into `set`. */
static void parse_statuses(const struct jpos_val *v, const struct jpos_key *k, bool set[500],
                           struct jpos_diags *d)
{
    if (!jpos_array(d, v))
        return;
    size_t n = json_array_size(v->v);
    if (n < (size_t)k->min || n > (size_t)k->max) {
        jpos_err(d, v, "lists %zu statuses; %lld to %lld", n, k->min, k->max);
        return;
    }
    struct jpos_iter it;
    struct jpos_val x;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &x)) {
        if (json_is_integer(x.v)) {
            long long st = json_integer_value(x.v);
            if (st < 100 || st > 599) {
                jpos_err(d, &x, "status %lld is not between 100 and 599", st);
                continue;
            }
            set[st - 100] = true;
        } else if (json_is_string(x.v)) {
            const char *s = json_string_value(x.v);
            if (strlen(s) != 3 || s[0] < '1' || s[0] > '5' || strcmp(s + 1, "xx") != 0) {
                jpos_err(d, &x,
                         "\"%s\" is not a status class; write \"2xx\" ... \"5xx\" or a "
                         "status such as 402",
                         s);
                continue;
            }
            for (int i = 0; i < 100; i++)
                set[(s[0] - '1') * 100 + i] = true;
        } else {
            jpos_err(d, &x, "expected a status (402) or a class (\"4xx\"), got %s",
                     jpos_type_name(x.v));
        }
    }
}

static int parse_request(struct cdef *c, const struct wf__scope *sc, const struct jpos_val *v,
                         struct wf_request *rq, struct jpos_diags *d)
{
    rq->method = "POST";
    if (!jpos_object(d, v))
        return 0;
    bool has_path = false;
    int q;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const struct jpos_key *k = jpos_key_find(&wf__request_keys, m.key);
        const char *s;
        size_t len;
        switch (k ? k->id : WF__K_NONE) {
        case WF__K_METHOD: {
            if (!jpos_string(d, &m, (size_t)k->max, &s, &len))
                break;
            const char *hint = jpos_suggest(s, method_names, 9);
            bool known = in_list(s, method_names) && hint && strcmp(hint, s) == 0;
            if (!known && hint && strcasecmp(hint, s) == 0) {
                jpos_err(d, &m,
                         "unknown method \"%s\"; methods are case-sensitive: did you mean "
                         "\"%s\"?",
                         s, hint);
                break;
            }
            if (!is_token(s, len)) {
                jpos_err(d, &m, "\"%s\" is not a valid method name (RFC 9110 token)", s);
                break;
            }
            if (strcmp(s, "CONNECT") == 0) {
                jpos_err(d, &m, "a step cannot send CONNECT (it opens a tunnel)");
                break;
            }
            if (!(rq->method = wf__strndup(c->a, s, len)))
                return -ENOMEM;
            break;
        }
        case WF__K_PATH:
            has_path = true;
            if (json_is_string(m.v) && json_string_value(m.v)[0] != '/') {
                jpos_err(d, &m, "path must start with '/', got \"%s\"", json_string_value(m.v));
                break;
            }
            if (json_is_string(m.v)) {
                s = json_string_value(m.v);
                len = json_string_length(m.v);
                bool bad = false;
                for (size_t i = 0; i < len && !bad; i++)
                    bad = (unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '#';
                if (bad) {
                    jpos_err(d, &m, "path must not contain spaces, control characters or '#'");
                    break;
                }
            }
            if ((q = wf__tmpl_string(sc, &m, WF__ENC_PATH, &rq->path, d)) == -ENOMEM)
                return q;
            break;
        case WF__K_HEADERS: {
            if (!jpos_object(d, &m))
                break;
            size_t n = json_object_size(m.v);
            if (n > WF_MAX_HEADERS) {
                jpos_err(d, &m, "has %zu headers; at most %d", n, WF_MAX_HEADERS);
                break;
            }
            struct wf_header *hs = wf__alloc(c->a, (n ? n : 1) * sizeof(*hs));
            if (!hs)
                return -ENOMEM;
            size_t nh = 0;
            struct jpos_iter it2;
            struct jpos_val h;
            jpos_iter_init(&it2, &m);
            while (jpos_iter_next(&it2, &h)) {
                size_t hl = strlen(h.key);
                if (!is_token(h.key, hl) || hl > 256) {
                    jpos_err_key(d, &h, "\"%s\" is not a valid header name", h.key);
                    continue;
                }
                if (in_list(h.key, managed_headers)) {
                    jpos_err_key(d, &h,
                                 "\"%s\" is written by the gateway (framing, Host, "
                                 "Content-Type, X-Request-Id, X-Workflow-Id and the step's "
                                 "Idempotency-Key) and cannot be set",
                                 h.key);
                    continue;
                }
                bool dup = false;
                for (size_t i = 0; i < nh; i++)
                    dup = dup || strcasecmp(hs[i].name, h.key) == 0;
                if (dup) {
                    jpos_err_key(d, &h,
                                 "header \"%s\" is listed twice (names are "
                                 "case-insensitive)",
                                 h.key);
                    continue;
                }
                if (json_is_string(h.v)) {
                    s = json_string_value(h.v);
                    len = json_string_length(h.v);
                    bool bad = false;
                    for (size_t i = 0; i < len && !bad; i++)
                        bad = ((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f;
                    if (bad) {
                        jpos_err(d, &h, "header value must not contain control characters");
                        continue;
                    }
                }
                struct wf_header hd = {0};
                if ((q = wf__tmpl_string(sc, &h, WF__ENC_HEADER, &hd.value, d)) == -ENOMEM)
                    return q;
                if (q < 0)
                    continue;
                if (!(hd.name = lower_dup(c->a, h.key, hl)))
                    return -ENOMEM;
                hs[nh++] = hd;
            }
            rq->headers = hs;
            rq->nheaders = nh;
            break;
        }
        case WF__K_BODY:
            if ((q = wf__tmpl_json(sc, &m, &rq->body, d)) == -ENOMEM)
                return q;
            break;
        default:
            jpos_keys_unknown(d, &m, &wf__request_keys);
        }
    }
    if (!has_path)
        jpos_err(d, v, "a request needs \"path\" (\"/accounts/${input.from}/debit\")");
    return 0;
}

static int parse_retry(const struct jpos_val *v, const struct jpos_section *s, struct wf_retry *r,
                       struct jpos_diags *d)
{
    if (!jpos_object(d, v))
        return 0;
    int q = jpos_keys_parse(d, v, s, r, NULL, NULL, NULL);
    if (q == 0 && r->backoff_max_ms < r->backoff_ms)
        jpos_err(d, v, "backoff_max_ms (%u) is below backoff_ms (%u)", r->backoff_max_ms,
                 r->backoff_ms);
    return q;
}

struct cstep {
    struct cdef *c;
    struct wf_step *st;
    struct jpos_val self, name, upstream, request, compensate, retry, cretry, success, failure;
    bool has_name, has_upstream, has_request, has_compensate, has_retry, has_cretry, has_success,
        has_failure;
};

static int step_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                    struct jpos_diags *d)
{
    struct cstep *s = ctx;
    (void)d;
#define SLOT(id, f)                                                                                \
    case id:                                                                                       \
        s->f = *m;                                                                                 \
        s->has_##f = true;                                                                         \
        break;
    switch (k->id) {
        SLOT(WF__K_STEP_NAME, name)
        SLOT(WF__K_UPSTREAM, upstream)
        SLOT(WF__K_REQUEST, request)
        SLOT(WF__K_COMPENSATE, compensate)
        SLOT(WF__K_RETRY, retry)
        SLOT(WF__K_COMPENSATE_RETRY, cretry)
        SLOT(WF__K_SUCCESS, success)
        SLOT(WF__K_FAILURE, failure)
    }
#undef SLOT
    return 0;
}

/* The steps' names first (templates refer to any of them, earlier or not,
 * and are told which), then each step. */
static int parse_steps(struct cdef *c, struct jpos_diags *d)
{
    const struct jpos_val *v = &c->steps;
    if (!jpos_array(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (n == 0) {
        jpos_err(d, v, "a workflow needs at least one step");
        return 0;
    }
    if (n > WF_MAX_STEPS) {
        jpos_err(d, v, "has %zu steps; at most %d", n, WF_MAX_STEPS);
        return 0;
    }
    struct wf_step *steps = wf__alloc(c->a, n * sizeof(*steps));
    const char **names = wf__alloc(c->a, n * sizeof(*names));
    struct cstep *cs = calloc(n, sizeof(*cs));
    int r = 0;
    if (!steps || !names || !cs) {
        r = -ENOMEM;
        goto out;
    }
    /* Members keep a pointer to their parent cursor: each step's cursor
     * lives in cs[] while the steps are compiled. */
    struct jpos_iter it;
    size_t i = 0;
    jpos_iter_init(&it, v);
    while (i < n && jpos_iter_next(&it, &cs[i].self)) {
        struct cstep *s = &cs[i];
        const struct jpos_val sv = s->self;
        s->c = c;
        s->st = &steps[i];
        s->st->file = c->file;
        s->st->upstream_index = -1;
        jpos_val_pos(&sv, &s->st->line, &s->st->column);
        jpos_keys_defaults(&wf__step_keys, s->st);
        if (!json_is_object(sv.v)) {
            jpos_err(d, &sv, "each step must be an object, got %s", jpos_type_name(sv.v));
            i++;
            continue;
        }
        if ((r = jpos_keys_parse(d, &s->self, &wf__step_keys, s->st, step_key, s, NULL)) < 0)
            goto out;
        if (!s->has_name) {
            jpos_err(d, &s->self,
                     "step has no \"name\"; templates name it (${steps.NAME.body...})");
        } else {
            const char *nm;
            size_t len;
            if (jpos_string(d, &s->name, WF_MAX_NAME_BYTES, &nm, &len)) {
                bool dup = false;
                for (size_t j = 0; j < i && !dup; j++)
                    dup = names[j] && strcmp(names[j], nm) == 0;
                if (!valid_ident(nm, len))
                    jpos_err(d, &s->name,
                             "step name \"%s\" must start with a letter or '_' and hold only "
                             "letters, digits, '_' and '-'",
                             nm);
                else if (dup)
                    jpos_err(d, &s->name, "step \"%s\" is defined twice in this workflow", nm);
                else if (!(names[i] = wf__strndup(c->a, nm, len))) {
                    r = -ENOMEM;
                    goto out;
                }
                if (names[i])
                    s->st->name = names[i];
            }
        }
        i++;
    }
    for (i = 0; i < n; i++) {
        struct cstep *s = &cs[i];
        struct wf_step *st = s->st;
        if (!json_is_object(s->self.v))
            continue;
        char where[WF_MAX_NAME_BYTES + 32];
        if (st->name)
            snprintf(where, sizeof where, "step \"%s\"", st->name);
        else
            snprintf(where, sizeof where, "step %zu", i + 1);
        struct wf__scope sc = {
            .arena = c->a,
            .input = c->w->d.input,
            .ninput = c->w->d.ninput,
            .steps = names,
            .nsteps = n,
            .cur = (int)i,
            .where = where,
        };
        if (!s->has_upstream) {
            jpos_err(d, &s->self, "step has no \"upstream\"");
        } else {
            const char *u;
            size_t len;
            if (jpos_string(d, &s->upstream, 256, &u, &len)) {
                for (size_t j = 0; j < c->nupstreams && st->upstream_index < 0; j++)
                    if (strcmp(c->upstreams[j], u) == 0)
                        st->upstream_index = (int)j;
                if (st->upstream_index < 0) {
                    c->unknown_upstreams++;
                    const char *hint = jpos_suggest(u, c->upstreams, c->nupstreams);
                    char list[512];
                    if (hint) {
                        jpos_err(d, &s->upstream, "unknown upstream \"%s\"; did you mean \"%s\"?",
                                 u, hint);
                    } else if (c->nupstreams == 0) {
                        jpos_err(d, &s->upstream,
                                 "unknown upstream \"%s\": the configuration defines no "
                                 "upstreams",
                                 u);
                    } else {
                        name_list(list, sizeof list, c->upstreams, c->nupstreams);
                        jpos_err(d, &s->upstream, "unknown upstream \"%s\" (defined: %s)", u, list);
                    }
                }
                if (!(st->upstream = wf__strndup(c->a, u, len))) {
                    r = -ENOMEM;
                    goto out;
                }
            }
        }
        if (!s->has_request)
            jpos_err(d, &s->self, "step has no \"request\"");
        else if ((r = parse_request(c, &sc, &s->request, &st->request, d)) < 0)
            goto out;
        if (s->has_compensate) {
            struct wf_request *cq = wf__alloc(c->a, sizeof(*cq));
            if (!cq) {
                r = -ENOMEM;
                goto out;
            }
            sc.self_ok = true;
            if ((r = parse_request(c, &sc, &s->compensate, cq, d)) < 0)
                goto out;
            st->compensate = cq;
        }
        if (s->has_retry && (r = parse_retry(&s->retry, &wf__retry_keys, &st->retry, d)) < 0)
            goto out;
        if (s->has_cretry &&
            (r = parse_retry(&s->cretry, &wf__compensate_retry_keys, &st->compensate_retry, d)) < 0)
            goto out;
        if (s->has_cretry && !s->has_compensate)
            jpos_err_key(d, &s->cretry, "compensate_retry without \"compensate\" has no effect");
        bool ok[500] = {0}, bad[500] = {0};
        if (s->has_success)
            parse_statuses(&s->success, row(&wf__step_keys, WF__K_SUCCESS), ok, d);
        else
            for (int k = 200; k < 300; k++)
                ok[k - 100] = true;
        if (s->has_failure) {
            parse_statuses(&s->failure, row(&wf__step_keys, WF__K_FAILURE), bad, d);
        } else {
            /* 4xx says the request was refused, so nothing was done; but
             * 408 (the server gave up waiting), 425 (too early) and 429
             * (slow down) ask for the same request again. */
            for (int k = 400; k < 500; k++)
                bad[k - 100] = k != 408 && k != 425 && k != 429 && !ok[k - 100];
        }
        for (int k = 0; k < 500; k++) {
            if (ok[k] && bad[k] && s->has_failure) {
                jpos_err(d, &s->failure, "status %d is listed both in success and failure",
                         k + 100);
                break;
            }
            st->outcome[k] = ok[k] ? WF_OUT_SUCCESS : bad[k] ? WF_OUT_FAILURE : WF_OUT_UNKNOWN;
        }
    }
    c->w->d.steps = steps;
    c->w->d.nsteps = n;
out:
    free(cs);
    return r;
}

static int parse_response(struct cdef *c, struct jpos_diags *d)
{
    if (!jpos_object(d, &c->response))
        return 0;
    const char *names[WF_MAX_STEPS];
    for (size_t i = 0; i < c->w->d.nsteps; i++)
        names[i] = c->w->d.steps[i].name;
    struct wf__scope sc = {
        .arena = c->a,
        .input = c->w->d.input,
        .ninput = c->w->d.ninput,
        .steps = names,
        .nsteps = c->w->d.nsteps,
        .cur = -1,
        .where = "the response",
    };
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, &c->response);
    while (jpos_iter_next(&it, &m)) {
        const struct jpos_key *k = jpos_key_find(&wf__response_keys, m.key);
        struct wf_answer *a = NULL;
        if (!k) {
            jpos_keys_unknown(d, &m, &wf__response_keys);
            continue;
        }
        a = k->id == WF__K_COMPLETED     ? &c->w->d.completed
            : k->id == WF__K_COMPENSATED ? &c->w->d.compensated
                                         : &c->w->d.failed;
        if (!jpos_object(d, &m))
            continue;
        struct jpos_iter it2;
        struct jpos_val x;
        jpos_iter_init(&it2, &m);
        while (jpos_iter_next(&it2, &x)) {
            const struct jpos_key *ak = jpos_key_find(&wf__answer_keys, x.key);
            long long st;
            if (!ak) {
                jpos_keys_unknown(d, &x, &wf__answer_keys);
            } else if (ak->id == WF__K_STATUS) {
                if (jpos_int(d, &x, ak->min, ak->max, &st))
                    a->status = (int)st;
            } else if (wf__tmpl_json(&sc, &x, &a->body, d) == -ENOMEM) {
                return -ENOMEM;
            }
        }
        if ((a->status == 204 || a->status == 304) && a->body)
            jpos_err(d, &m, "a %d answer has no body; remove \"body\" or change the status",
                     a->status);
    }
    return 0;
}

/* Compiles the definition at `v` into *out: 0, -EINVAL (every problem in d;
 * *out not written), -ENOMEM. *unknown_upstreams (when non-NULL) counts the
 * steps naming an upstream not in `upstreams`. */
static int compile_def(const struct jpos_val *v, const char *file, const char *const *upstreams,
                       size_t nupstreams, struct wf__def **out, size_t *unknown_upstreams,
                       struct jpos_diags *d)
{
    size_t before = d->nerrors;
    struct wf__def *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    struct cdef c = {.w = w, .a = &w->arena, .upstreams = upstreams, .nupstreams = nupstreams};
    int r = 0;
    char *text = NULL;
    if (!(c.file = wf__strndup(c.a, file, strlen(file)))) {
        r = -ENOMEM;
        goto out;
    }
    w->d.file = c.file;
    jpos_val_pos(v, &w->d.line, &w->d.column);
    jpos_keys_defaults(&wf__def_keys, &w->d);
    jpos_keys_defaults(&wf__idem_keys, &w->d);
    w->d.key_header = "idempotency-key";
    w->d.completed.status = 200;
    w->d.compensated.status = 409;
    w->d.failed.status = 500;
    if (!json_is_object(v->v)) {
        jpos_err(d, v, "each workflow must be an object, got %s", jpos_type_name(v->v));
        goto out;
    }
    uint64_t seen = 0;
    if ((r = jpos_keys_parse(d, v, &wf__def_keys, &w->d, def_key, &c, &seen)) < 0)
        goto out;
    if (!c.has_name) {
        jpos_err(d, v, "workflow has no \"name\"; routes name it (\"workflow\": \"NAME\")");
    } else {
        const char *s;
        size_t len;
        if (jpos_string(d, &c.name, WF_MAX_NAME_BYTES, &s, &len)) {
            if (len == 0 || !valid_def_name(s))
                jpos_err(d, &c.name,
                         "workflow name \"%s\" must be non-empty and hold only letters, digits, "
                         "'.', '_' and '-'",
                         s);
            else if (!(w->d.name = wf__strndup(c.a, s, len))) {
                r = -ENOMEM;
                goto out;
            }
        }
    }
    if (c.has_input && (r = parse_input(&c, d)) < 0)
        goto out;
    if (c.has_idem && (r = parse_idem(&c, d)) < 0)
        goto out;
    if (c.has_mode) {
        static const char *const modes[] = {"sync", "async", NULL};
        int mode = jpos_string(d, &c.mode, 16, &(const char *){0}, NULL)
                       ? jpos_choice(d, &c.mode, "mode", modes, NULL)
                       : -1;
        if (mode == 1) {
            if (seen & jpos_key_bit(&wf__def_keys, "wait_ms"))
                jpos_err(d, &c.mode,
                         "an async workflow answers 202 at once; remove \"wait_ms\" or use "
                         "\"mode\": \"sync\"");
            w->d.wait_ms = 0;
        }
    }
    if (!c.has_steps)
        jpos_err(d, v, "workflow has no \"steps\"");
    else if ((r = parse_steps(&c, d)) < 0)
        goto out;
    if (c.has_response && (r = parse_response(&c, d)) < 0)
        goto out;
    if (!(text = json_dumps(v->v, JSON_SORT_KEYS | JSON_COMPACT))) {
        r = -ENOMEM;
        goto out;
    }
    w->d.text_len = strlen(text);
    if (!(w->d.text = wf__strndup(c.a, text, w->d.text_len))) {
        r = -ENOMEM;
        goto out;
    }
    w->d.version = fnv1a64(text, w->d.text_len);
out:
    free(text);
    if (unknown_upstreams)
        *unknown_upstreams += c.unknown_upstreams;
    if (r < 0 || d->nerrors != before) {
        wf__arena_free(&w->arena);
        free(w);
        return r < 0 ? r : -EINVAL;
    }
    *out = w;
    return 0;
}

/* ---- sets ------------------------------------------------------------------- */

struct wf_set {
    _Atomic long refs;
    struct wf__def **defs;
    size_t n, cap;
    const char **names; /* n + 1, NULL-terminated */
    bool too_many;
};

static void set_free(struct wf_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        wf__arena_free(&s->defs[i]->arena);
        free(s->defs[i]);
    }
    free(s->defs);
    free(s->names);
    free(s);
}

struct wf_set *wf_set_ref(struct wf_set *s)
{
    /* Relaxed: taking a reference needs one already held, which orders it. */
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void wf_set_unref(struct wf_set *s)
{
    if (!s)
        return;
    /* acq_rel: every owner's use of the set happens before the free. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        set_free(s);
}

size_t wf_set_count(const struct wf_set *s)
{
    return s ? s->n : 0;
}

const struct wf_def *wf_set_def(const struct wf_set *s, size_t i)
{
    return s && i < s->n ? &s->defs[i]->d : NULL;
}

const struct wf_def *wf_set_find(const struct wf_set *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->defs[i]->d.name, name) == 0)
            return &s->defs[i]->d;
    return NULL;
}

const char *const *wf_set_names(const struct wf_set *s)
{
    return s->names;
}

/* Adds the definitions of one file's text to `s`. */
static int add_text(struct wf_set *s, const char *label, const char *text, size_t len,
                    const char *const *upstreams, size_t n, struct jpos_diags *d)
{
    struct jpos_doc doc;
    int r = jpos_doc_parse(&doc, label, text, len, d);
    if (r < 0)
        goto out;
    struct jpos_val root, m, wfs;
    bool has = false;
    jpos_val_root(&doc, &root);
    if (!json_is_object(root.v)) {
        jpos_err(d, &root, "a workflow file holds an object {\"workflows\": [...]}, got %s",
                 jpos_type_name(root.v));
        goto out;
    }
    struct jpos_iter it;
    jpos_iter_init(&it, &root);
    while (jpos_iter_next(&it, &m)) {
        const struct jpos_key *k = jpos_key_find(&wf_file_keys, m.key);
        if (k && k->id == WF__K_WORKFLOWS) {
            wfs = m;
            has = true;
        } else if (k) {
            jpos_string(d, &m, (size_t)k->max, &(const char *){0}, NULL);
        } else {
            jpos_keys_unknown(d, &m, &wf_file_keys);
        }
    }
    if (!has) {
        jpos_err(d, &root, "workflow file has no \"workflows\" array");
        goto out;
    }
    if (!jpos_array(d, &wfs))
        goto out;
    struct jpos_val v;
    jpos_iter_init(&it, &wfs);
    while (jpos_iter_next(&it, &v)) {
        if (s->n >= WF_MAX_DEFS) {
            if (!s->too_many)
                jpos_err(d, &v, "too many workflows: at most %d", WF_MAX_DEFS);
            s->too_many = true;
            break;
        }
        struct wf__def *w = NULL;
        r = compile_def(&v, doc.file, upstreams, n, &w, NULL, d);
        if (r == -ENOMEM)
            goto out;
        r = 0;
        if (!w)
            continue;
        const struct wf_def *prev = w->d.name ? wf_set_find(s, w->d.name) : NULL;
        if (prev) {
            struct jpos_val nv;
            if (!jpos_obj_get(&v, "name", &nv))
                nv = v;
            jpos_err(d, &nv, "workflow \"%s\" is already defined at %s:%u:%u", w->d.name,
                     prev->file, prev->line, prev->column);
            wf__arena_free(&w->arena);
            free(w);
            continue;
        }
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            struct wf__def **x = realloc(s->defs, cap * sizeof(*x));
            if (!x) {
                wf__arena_free(&w->arena);
                free(w);
                r = -ENOMEM;
                goto out;
            }
            s->defs = x;
            s->cap = cap;
        }
        s->defs[s->n++] = w;
    }
out:
    jpos_doc_done(&doc);
    return r;
}

static int set_new(struct wf_set **out)
{
    struct wf_set *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    atomic_init(&s->refs, 1);
    *out = s;
    return 0;
}

/* Checks the set and publishes its names; consumes `s` on failure. */
static int set_finish(struct wf_set *s, size_t before, struct wf_set **out, struct jpos_diags *d)
{
    if (d->nerrors != before) {
        set_free(s);
        return -EINVAL;
    }
    if (!(s->names = calloc(s->n + 1, sizeof(*s->names)))) {
        set_free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->n; i++)
        s->names[i] = s->defs[i]->d.name;
    *out = s;
    return 0;
}

int wf_set_load_text(const char *label, const char *text, size_t len, const char *const *upstreams,
                     size_t n, struct wf_set **out, struct jpos_diags *d)
{
    size_t before = d->nerrors;
    struct wf_set *s;
    int r = set_new(&s);
    if (r < 0)
        return r;
    if ((r = add_text(s, label, text, len, upstreams, n, d)) == -ENOMEM) {
        set_free(s);
        return r;
    }
    return set_finish(s, before, out, d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int wf_set_load_dir(const char *dir, const char *const *upstreams, size_t n, struct wf_set **out,
                    struct jpos_diags *d)
{
    size_t before = d->nerrors;
    struct wf_set *s;
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int r = set_new(&s);
    if (r < 0)
        return r;
    DIR *dp = opendir(dir);
    if (!dp) {
        if (errno != ENOENT)
            jpos_diag_add(d, JPOS_DIAG_ERROR, dir, 0, 0, NULL,
                          "cannot open workflows directory: %s", strerror(errno));
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        /* Each file holds at least one definition to count. */
        if (nn == WF_MAX_DEFS) {
            jpos_diag_add(d, JPOS_DIAG_ERROR, dir, 0, 0, NULL,
                          "more than %d workflow files in the directory", WF_MAX_DEFS);
            goto out;
        }
        if (nn == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = realloc(names, cap * sizeof(*v));
            if (!v) {
                r = -ENOMEM;
                goto out;
            }
            names = v;
        }
        if (asprintf(&names[nn], "%s/%s", dir, de->d_name) < 0) {
            r = -ENOMEM;
            goto out;
        }
        nn++;
    }
    qsort(names, nn, sizeof(*names), cmp_str);
    for (size_t i = 0; i < nn; i++) {
        char *text;
        size_t len;
        if ((r = jpos_file_load(names[i], WF_MAX_FILE_BYTES, &text, &len, d)) == -ENOMEM)
            goto out;
        if (r < 0) {
            r = 0;
            continue;
        }
        r = add_text(s, names[i], text, len, upstreams, n, d);
        free(text);
        if (r == -ENOMEM)
            goto out;
    }
out:
    if (dp)
        closedir(dp);
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (r < 0) {
        set_free(s);
        return r;
    }
    return set_finish(s, before, out, d);
}

/* ---- one definition from its text ------------------------------------------- */

int wf_def_from_text(const char *text, size_t len, const char *const *upstreams, size_t n,
                     struct wf_def **out, struct jpos_diags *d)
{
    struct jpos_doc doc;
    struct wf__def *w = NULL;
    size_t unknown_up = 0, before = d->nerrors;
    int r = jpos_doc_parse(&doc, "<definition>", text, len, d);
    if (r == 0) {
        struct jpos_val root;
        jpos_val_root(&doc, &root);
        r = compile_def(&root, "<definition>", upstreams, n, &w, &unknown_up, d);
    }
    jpos_doc_done(&doc);
    if (r == -EINVAL && unknown_up && d->nerrors - before == unknown_up)
        return -ENOENT;
    if (r < 0)
        return r;
    *out = &w->d;
    return 0;
}

void wf_def_free(struct wf_def *def)
{
    if (!def)
        return;
    struct wf__def *w = (struct wf__def *)def;
    wf__arena_free(&w->arena);
    free(w);
}

/* ---- input ------------------------------------------------------------------ */

static bool type_ok(enum wf_json_type t, const json_t *v)
{
    switch (t) {
    case WF_JT_STRING:
        return json_is_string(v);
    case WF_JT_INTEGER:
        return json_is_integer(v);
    case WF_JT_NUMBER:
        return json_is_number(v);
    case WF_JT_BOOLEAN:
        return json_is_boolean(v);
    case WF_JT_OBJECT:
        return json_is_object(v);
    case WF_JT_ARRAY:
        return json_is_array(v);
    }
    return false;
}

int wf_input_check(const struct wf_def *def, const json_t *input, char *err, size_t errcap)
{
    /* A workflow without input may be started by a request without a body. */
    if (!input && def->ninput == 0)
        return 0;
    if (!json_is_object(input)) {
        snprintf(err, errcap, "input: expected a JSON object, got %s",
                 input ? jpos_type_name(input) : "no body");
        return -EINVAL;
    }
    for (size_t i = 0; i < def->ninput; i++) {
        const struct wf_input_key *k = &def->input[i];
        const json_t *v = json_object_get(input, k->name);
        if (!v) {
            if (k->required) {
                snprintf(err, errcap, "input.%s: required (%s)", k->name, wf__type_names[k->type]);
                return -EINVAL;
            }
            continue;
        }
        if (!type_ok(k->type, v)) {
            snprintf(err, errcap, "input.%s: expected %s, got %s", k->name, wf__type_names[k->type],
                     jpos_type_name(v));
            return -EINVAL;
        }
    }
    /* A key the definition does not declare is refused rather than
     * ignored: a misspelt optional key would otherwise vanish silently. */
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)input, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < def->ninput && !known; i++)
            known = strcmp(def->input[i].name, key) == 0;
        if (known)
            continue;
        const char *names[WF_MAX_INPUT_KEYS];
        for (size_t i = 0; i < def->ninput; i++)
            names[i] = def->input[i].name;
        const char *hint = jpos_suggest(key, names, def->ninput);
        if (hint)
            snprintf(err, errcap, "input.%s: unknown key; did you mean \"%s\"?", key, hint);
        else
            snprintf(err, errcap, "input.%s: unknown key", key);
        return -EINVAL;
    }
    return 0;
}
