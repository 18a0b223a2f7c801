/*
 * tmpl.c: templates of workflow requests and answers — compile and expand.
 *
 * A string template is a list of parts, each literal text or a placeholder
 * `${ROOT.a.b}` resolved at compile time into a `struct ref` (where the
 * value comes from and the member path below it). `$${` writes a literal
 * `${`; a `$` anywhere else is itself. A JSON template mirrors the value as
 * written: objects and arrays of templates, literal subtrees kept whole,
 * strings compiled as string templates, and a string that is exactly one
 * placeholder kept as a reference so that it expands to the value itself (a
 * number stays a number).
 *
 * Every reference is checked when compiled (wf__scope says what the
 * template may see), so at run time only values missing from a step's
 * answer or an optional input key can be absent: that is -ENOENT, never a
 * silent null or empty string.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "def_int.h"

#define MAX_REF_KEYS 16
/* An expanded string (path, header value, JSON string) is at most this
 * long: a body member can be as large as the input, but a template that
 * grows beyond it is a mistake. */
#define MAX_EXPANDED_BYTES (1u << 20)
/* An expanded JSON body is at most this long as compact JSON: it may hold
 * the whole input (GW_WF_MAX_INPUT_BYTES) and more, but a template that
 * refers to the same large value many times would otherwise write a copy
 * of it for each reference. */
#define MAX_EXPANDED_BODY_BYTES (4u << 20)

enum src { SRC_INPUT = 0, SRC_WF_ID, SRC_WF_NAME, SRC_STEP_STATUS, SRC_STEP_BODY };

struct ref {
    enum src src;
    int step;
    const char *const *keys; /* member names (or array indexes written as digits) */
    size_t nkeys;
    const char *text; /* "${...}" as written, for messages */
};

struct part {
    const char *lit; /* NULL: a reference */
    size_t len;
    const struct ref *ref;
};

enum kind { T_STR = 0, T_LIT, T_REF, T_OBJ, T_ARR };

struct wf_tmpl {
    enum kind kind;
    enum wf__enc enc;
    const struct part *parts; /* T_STR */
    size_t nparts;
    const struct ref *ref;              /* T_REF */
    json_t *lit;                        /* T_LIT (held by the arena) */
    const char *const *keys;            /* T_OBJ */
    const struct wf_tmpl *const *items; /* T_OBJ, T_ARR */
    size_t n;
};

/* ---- compiling ------------------------------------------------------------- */

static const char *const roots[] = {"input", "workflow", "steps", NULL};
static const char *const wf_fields[] = {"id", "name", NULL};
static const char *const step_fields[] = {"status", "body", NULL};

static bool is_key_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '-';
}

static const char *suggest(const char *w, const char *const *names, size_t n)
{
    return jpos_suggest(w, names, n);
}

static size_t count(const char *const *names)
{
    size_t n = 0;
    while (names[n])
        n++;
    return n;
}

/* Reports "${x}: unknown WHAT "w"; did you mean "y"?" or "... (one of ...)". */
static void unknown(struct jpos_diags *d, const struct jpos_val *v, const char *text,
                    const char *what, const char *w, const char *const *names, size_t n)
{
    const char *hint = suggest(w, names, n);
    if (hint) {
        jpos_err(d, v, "%s: unknown %s \"%s\"; did you mean \"%s\"?", text, what, w, hint);
        return;
    }
    /* A step whose own name was refused is NULL in `names`. */
    char list[512];
    size_t len = 0, listed = 0, known = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!names[i])
            continue;
        known++;
        if (listed == 8 || len >= sizeof list)
            continue;
        int k = snprintf(list + len, sizeof list - len, "%s\"%s\"", listed ? ", " : "", names[i]);
        if (k > 0)
            len += (size_t)k;
        listed++;
    }
    if (known == 0)
        jpos_err(d, v, "%s: unknown %s \"%s\" (there is none)", text, what, w);
    else
        jpos_err(d, v, "%s: unknown %s \"%s\" (known: %s%s)", text, what, w, list,
                 known > listed ? ", ..." : "");
}

/* Compiles the placeholder whose inside is s[0..len) into *out. */
static int compile_ref(const struct wf__scope *sc, const struct jpos_val *v, const char *s,
                       size_t len, const struct ref **out, struct jpos_diags *d)
{
    char text[WF_MAX_NAME_BYTES * 4 + 64];
    snprintf(text, sizeof text, "${%.*s}", (int)(len < 200 ? len : 200), s);
    /* Split on '.'; every key non-empty, of letters, digits, '_' and '-'. */
    char *keys[MAX_REF_KEYS + 2];
    size_t nk = 0, at = 0;
    while (at <= len) {
        size_t e = at;
        while (e < len && s[e] != '.')
            e++;
        if (e == at) {
            jpos_err(d, v,
                     "%s: a placeholder is written ${input.KEY}, ${workflow.id}, "
                     "${steps.STEP.body.KEY}...; it has an empty name",
                     text);
            goto bad_free;
        }
        for (size_t i = at; i < e; i++)
            if (!is_key_char((unsigned char)s[i])) {
                jpos_err(d, v,
                         "%s: names in a placeholder hold letters, digits, '_' and '-' "
                         "(found '%c')",
                         text, s[i]);
                goto bad_free;
            }
        if (nk == MAX_REF_KEYS + 2) {
            jpos_err(d, v, "%s: a placeholder has at most %d names below its root", text,
                     MAX_REF_KEYS);
            goto bad_free;
        }
        if (!(keys[nk++] = strndup(s + at, e - at))) {
            for (size_t i = 0; i + 1 < nk; i++)
                free(keys[i]);
            return -ENOMEM;
        }
        at = e + 1;
    }
    struct ref *r = wf__alloc(sc->arena, sizeof(*r));
    if (!r || !(r->text = wf__strndup(sc->arena, text, strlen(text))))
        goto nomem;
    r->step = -1;
    size_t rest = 1; /* first key below the root's fixed part */
    if (strcmp(keys[0], "input") == 0) {
        r->src = SRC_INPUT;
        if (nk < 2) {
            jpos_err(d, v, "%s: name an input key: ${input.KEY}", text);
            goto bad_free;
        }
        int found = -1;
        for (size_t i = 0; i < sc->ninput && found < 0; i++)
            if (strcmp(sc->input[i].name, keys[1]) == 0)
                found = (int)i;
        if (found < 0) {
            const char *names[WF_MAX_INPUT_KEYS];
            for (size_t i = 0; i < sc->ninput; i++)
                names[i] = sc->input[i].name;
            unknown(d, v, text, "input key", keys[1], names, sc->ninput);
            goto bad_free;
        }
        enum wf_json_type t = sc->input[found].type;
        if (nk > 2 && t != WF_JT_OBJECT && t != WF_JT_ARRAY) {
            jpos_err(d, v, "%s: input.%s is declared %s; it has no member \"%s\"", text, keys[1],
                     wf__type_names[t], keys[2]);
            goto bad_free;
        }
        rest = 1;
    } else if (strcmp(keys[0], "workflow") == 0) {
        if (nk != 2 || (strcmp(keys[1], "id") != 0 && strcmp(keys[1], "name") != 0)) {
            if (nk < 2)
                jpos_err(d, v, "%s: write ${workflow.id} or ${workflow.name}", text);
            else if (nk > 2)
                jpos_err(d, v, "%s: workflow.%s has no members", text, keys[1]);
            else
                unknown(d, v, text, "workflow field", keys[1], wf_fields, 2);
            goto bad_free;
        }
        r->src = keys[1][0] == 'i' ? SRC_WF_ID : SRC_WF_NAME;
        rest = nk;
    } else if (strcmp(keys[0], "steps") == 0) {
        if (nk < 3) {
            jpos_err(d, v, "%s: write ${steps.STEP.status} or ${steps.STEP.body.KEY}", text);
            goto bad_free;
        }
        int found = -1;
        for (size_t i = 0; i < sc->nsteps && found < 0; i++)
            if (sc->steps[i] && strcmp(sc->steps[i], keys[1]) == 0)
                found = (int)i;
        if (found < 0) {
            unknown(d, v, text, "step", keys[1], sc->steps, sc->nsteps);
            goto bad_free;
        }
        if (sc->cur >= 0 && found == sc->cur && !sc->self_ok) {
            jpos_err(d, v,
                     "%s: %s refers to its own result; a request may use only the steps "
                     "before it (its compensation may use its own)",
                     text, sc->where);
            goto bad_free;
        }
        if (sc->cur >= 0 && found > sc->cur) {
            jpos_err(d, v, "%s: %s refers to step \"%s\", which runs after it", text, sc->where,
                     keys[1]);
            goto bad_free;
        }
        r->step = found;
        if (strcmp(keys[2], "status") == 0) {
            if (nk > 3) {
                jpos_err(d, v, "%s: status is a number; it has no member \"%s\"", text, keys[3]);
                goto bad_free;
            }
            r->src = SRC_STEP_STATUS;
        } else if (strcmp(keys[2], "body") == 0) {
            r->src = SRC_STEP_BODY;
        } else {
            unknown(d, v, text, "step field", keys[2], step_fields, 2);
            goto bad_free;
        }
        rest = 3;
    } else {
        unknown(d, v, text, "placeholder root", keys[0], roots, count(roots));
        goto bad_free;
    }
    if (rest < nk) {
        const char **ks = wf__alloc(sc->arena, (nk - rest) * sizeof(*ks));
        if (!ks)
            goto nomem;
        for (size_t i = rest; i < nk; i++)
            if (!(ks[i - rest] = wf__strndup(sc->arena, keys[i], strlen(keys[i]))))
                goto nomem;
        r->keys = ks;
        r->nkeys = nk - rest;
    }
    for (size_t i = 0; i < nk; i++)
        free(keys[i]);
    *out = r;
    return 0;
nomem:
    for (size_t i = 0; i < nk; i++)
        free(keys[i]);
    return -ENOMEM;
bad_free:
    for (size_t i = 0; i < nk; i++)
        free(keys[i]);
    return -EINVAL;
}

/* Compiles s[0..len) into a string template; *single is the reference when
 * the whole string is exactly one placeholder. */
static int compile_string(const struct wf__scope *sc, const struct jpos_val *v, const char *s,
                          size_t len, enum wf__enc enc, struct wf_tmpl **out,
                          const struct ref **single, struct jpos_diags *d)
{
    *single = NULL;
    /* Parts: at most one literal and one reference per "${". */
    size_t cap = 1;
    for (size_t i = 0; i + 1 < len; i++)
        if (s[i] == '$' && s[i + 1] == '{')
            cap += 2;
    struct part *parts = wf__alloc(sc->arena, cap * sizeof(*parts));
    char *lit = wf__alloc(sc->arena, len + 1);
    struct wf_tmpl *t = wf__alloc(sc->arena, sizeof(*t));
    if (!parts || !lit || !t)
        return -ENOMEM;
    size_t n = 0, litlen = 0, i = 0;
    int r = 0;
    char *litstart = lit;
    while (i < len) {
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            lit[litlen++] = '$';
            lit[litlen++] = '{';
            i += 3;
            continue;
        }
        if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            const char *close = memchr(s + i + 2, '}', len - i - 2);
            if (!close) {
                jpos_err(d, v,
                         "\"${\" at byte %zu has no closing '}' (write \"$${\" for a "
                         "literal \"${\")",
                         i);
                return -EINVAL;
            }
            size_t run = litlen - (size_t)(litstart - lit);
            if (run) {
                parts[n++] = (struct part){.lit = litstart, .len = run};
                litstart = lit + litlen;
            }
            const struct ref *rf;
            int q = compile_ref(sc, v, s + i + 2, (size_t)(close - s) - i - 2, &rf, d);
            if (q == -ENOMEM)
                return q;
            if (q < 0)
                r = q;
            else
                parts[n++] = (struct part){.ref = rf};
            i = (size_t)(close - s) + 1;
            continue;
        }
        lit[litlen++] = s[i++];
    }
    size_t run = litlen - (size_t)(litstart - lit);
    if (run)
        parts[n++] = (struct part){.lit = litstart, .len = run};
    if (r < 0)
        return r;
    t->kind = T_STR;
    t->enc = enc;
    t->parts = parts;
    t->nparts = n;
    if (n == 1 && parts[0].ref)
        *single = parts[0].ref;
    *out = t;
    return 0;
}

int wf__tmpl_string(const struct wf__scope *sc, const struct jpos_val *v, enum wf__enc enc,
                    const struct wf_tmpl **out, struct jpos_diags *d)
{
    const char *s;
    size_t len;
    if (!jpos_string(d, v, WF_MAX_TEMPLATE_BYTES, &s, &len))
        return -EINVAL;
    struct wf_tmpl *t;
    const struct ref *single;
    int r = compile_string(sc, v, s, len, enc, &t, &single, d);
    if (r == 0)
        *out = t;
    return r;
}

static bool has_placeholder(const json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        for (size_t i = 0; i + 1 < len; i++)
            if (s[i] == '$' && (s[i + 1] == '{' || s[i + 1] == '$'))
                return true;
        return false;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) if (has_placeholder(x)) return true;
        return false;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) if (has_placeholder(x)) return true;
    }
    return false;
}

static int compile_json(const struct wf__scope *sc, const struct jpos_val *v,
                        const struct wf_tmpl **out, struct jpos_diags *d)
{
    struct wf_tmpl *t;
    if (!has_placeholder(v->v)) {
        if (!(t = wf__alloc(sc->arena, sizeof(*t))))
            return -ENOMEM;
        t->kind = T_LIT;
        json_t *c = json_deep_copy(v->v);
        if (!c || wf__arena_json(sc->arena, c) < 0)
            return -ENOMEM;
        t->lit = c;
        *out = t;
        return 0;
    }
    if (json_is_string(v->v)) {
        const struct ref *single;
        int r = compile_string(sc, v, json_string_value(v->v), json_string_length(v->v),
                               WF__ENC_TEXT, &t, &single, d);
        if (r < 0)
            return r;
        if (single) {
            t->kind = T_REF;
            t->ref = single;
        }
        *out = t;
        return 0;
    }
    size_t n = json_is_object(v->v) ? json_object_size(v->v) : json_array_size(v->v);
    if (!(t = wf__alloc(sc->arena, sizeof(*t))))
        return -ENOMEM;
    const struct wf_tmpl **items = wf__alloc(sc->arena, (n ? n : 1) * sizeof(*items));
    const char **keys = wf__alloc(sc->arena, (n ? n : 1) * sizeof(*keys));
    if (!items || !keys)
        return -ENOMEM;
    t->kind = json_is_object(v->v) ? T_OBJ : T_ARR;
    int r = 0;
    size_t k = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        if (t->kind == T_OBJ && !(keys[k] = wf__strndup(sc->arena, m.key, strlen(m.key))))
            return -ENOMEM;
        int q = compile_json(sc, &m, &items[k], d);
        if (q == -ENOMEM)
            return q;
        if (q < 0)
            r = q;
        k++;
    }
    t->keys = keys;
    t->items = items;
    t->n = k;
    if (r == 0)
        *out = t;
    return r;
}

int wf__tmpl_json(const struct wf__scope *sc, const struct jpos_val *v, const struct wf_tmpl **out,
                  struct jpos_diags *d)
{
    char *text = json_dumps(v->v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    size_t len = strlen(text);
    free(text);
    if (len > WF_MAX_TEMPLATE_BYTES) {
        jpos_err(d, v, "the body is %zu bytes as JSON; at most %u", len, WF_MAX_TEMPLATE_BYTES);
        return -EINVAL;
    }
    return compile_json(sc, v, out, d);
}

/* ---- expanding -------------------------------------------------------------- */

/* The value of `r` in `c`: a new reference, or -ENOENT with a message. */
static int ref_value(const struct ref *r, const struct wf_ctx *c, json_t **out, char *err,
                     size_t errcap)
{
    json_t *v = NULL;
    switch (r->src) {
    case SRC_WF_ID:
        v = json_string(c->id ? c->id : "");
        break;
    case SRC_WF_NAME:
        v = json_string(c->name ? c->name : "");
        break;
    case SRC_STEP_STATUS:
        if (!c->steps || c->steps[r->step].status == 0) {
            snprintf(err, errcap, "%s: the step has no answer", r->text);
            return -ENOENT;
        }
        v = json_integer(c->steps[r->step].status);
        break;
    case SRC_INPUT:
    case SRC_STEP_BODY: {
        const json_t *cur;
        if (r->src == SRC_INPUT) {
            cur = c->input;
        } else {
            cur = c->steps ? c->steps[r->step].body : NULL;
            if (!cur) {
                snprintf(err, errcap, "%s: the step's answer has no JSON body", r->text);
                return -ENOENT;
            }
        }
        for (size_t i = 0; i < r->nkeys && cur; i++) {
            const char *k = r->keys[i];
            if (json_is_object(cur)) {
                cur = json_object_get(cur, k);
            } else if (json_is_array(cur) && isdigit((unsigned char)k[0])) {
                char *end;
                unsigned long idx = strtoul(k, &end, 10);
                cur = *end ? NULL : json_array_get(cur, idx);
            } else {
                cur = NULL;
            }
        }
        if (!cur) {
            snprintf(err, errcap, "%s: no such value", r->text);
            return -ENOENT;
        }
        v = json_incref((json_t *)cur);
        break;
    }
    }
    if (!v)
        return -ENOMEM;
    *out = v;
    return 0;
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static int sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n > MAX_EXPANDED_BYTES)
        return -E2BIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* Writes value `v` as text per `enc`. */
static int put_value(struct sbuf *b, const json_t *v, enum wf__enc enc, const struct ref *r,
                     char *err, size_t errcap)
{
    char *dumped = NULL;
    const char *s;
    size_t n;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else {
        if (!(dumped = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)))
            return -ENOMEM;
        s = dumped;
        n = strlen(dumped);
    }
    int q = 0;
    if (enc == WF__ENC_PATH) {
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n && q == 0; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
                q = sb_put(b, (const char *)&s[i], 1);
            } else {
                char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
                q = sb_put(b, e, 3);
            }
        }
    } else {
        if (enc == WF__ENC_HEADER)
            for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)s[i];
                if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                    snprintf(err, errcap, "%s: a header value cannot hold control characters",
                             r->text);
                    free(dumped);
                    return -EINVAL;
                }
            }
        q = sb_put(b, s, n);
    }
    free(dumped);
    if (q == -E2BIG)
        snprintf(err, errcap, "%s: the expanded text is over %u bytes", r->text,
                 MAX_EXPANDED_BYTES);
    return q;
}

/* The segments of a path being expanded. A placeholder's value cannot hold
 * '/' or '?' (they are percent-encoded), so segments and the query start
 * only where the template's own text puts them; what a value can still do
 * is make a whole segment "..", "." or empty, which a backend resolves
 * (RFC 3986 5.2.4) or merges into another resource: "/accounts/../debit",
 * "/accounts//debit". A segment a placeholder wrote into is refused when it
 * is one of those; the query after '?' is data and is not checked. */
struct segs {
    size_t start;          /* where the current segment starts in the output */
    const struct ref *ref; /* the last placeholder written into it, or NULL */
    bool query;
};

static int seg_end(const struct segs *sg, const struct sbuf *b, size_t end, char *err,
                   size_t errcap)
{
    size_t n = end - sg->start;
    const char *p = b->p + sg->start;
    if (!sg->ref || n > 2 || (n == 1 && p[0] != '.') || (n == 2 && (p[0] != '.' || p[1] != '.')))
        return 0;
    snprintf(err, errcap,
             "%s: the value would make a path segment \"%.*s\"; a segment cannot be empty, "
             "\".\" or \"..\"",
             sg->ref->text, (int)n, p);
    return -EINVAL;
}

/* Follows the literal text b->p[from..b->len) just written. */
static int segs_lit(struct segs *sg, const struct sbuf *b, size_t from, char *err, size_t errcap)
{
    for (size_t i = from; i < b->len && !sg->query; i++) {
        if (b->p[i] != '/' && b->p[i] != '?')
            continue;
        int r = seg_end(sg, b, i, err, errcap);
        if (r < 0)
            return r;
        sg->start = i + 1;
        sg->ref = NULL;
        sg->query = b->p[i] == '?';
    }
    return 0;
}

static int expand_string(const struct wf_tmpl *t, const struct wf_ctx *c, struct sbuf *b, char *err,
                         size_t errcap)
{
    struct segs sg = {.start = b->len};
    bool path = t->enc == WF__ENC_PATH;
    int r = sb_put(b, "", 0);
    for (size_t i = 0; i < t->nparts && r == 0; i++) {
        const struct part *p = &t->parts[i];
        size_t from = b->len;
        if (p->lit) {
            if ((r = sb_put(b, p->lit, p->len)) == -E2BIG)
                snprintf(err, errcap, "the expanded text is over %u bytes", MAX_EXPANDED_BYTES);
            if (r == 0 && path)
                r = segs_lit(&sg, b, from, err, errcap);
            continue;
        }
        json_t *v;
        if ((r = ref_value(p->ref, c, &v, err, errcap)) < 0)
            break;
        r = put_value(b, v, t->enc, p->ref, err, errcap);
        json_decref(v);
        if (!sg.query)
            sg.ref = p->ref;
    }
    if (r == 0 && path && !sg.query)
        r = seg_end(&sg, b, b->len, err, errcap);
    return r;
}

int wf_expand_string(const struct wf_tmpl *t, const struct wf_ctx *c, char **out, size_t *len,
                     char *err, size_t errcap)
{
    struct sbuf b = {0};
    if (errcap)
        err[0] = '\0';
    int r = t->kind == T_STR ? expand_string(t, c, &b, err, errcap) : -EINVAL;
    if (r < 0) {
        free(b.p);
        return r;
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return 0;
}

static int expand_json(const struct wf_tmpl *t, const struct wf_ctx *c, json_t **out, char *err,
                       size_t errcap)
{
    json_t *v = NULL;
    int r = 0;
    switch (t->kind) {
    case T_LIT:
        v = json_incref(t->lit);
        break;
    case T_REF:
        return ref_value(t->ref, c, out, err, errcap);
    case T_STR: {
        struct sbuf b = {0};
        if ((r = expand_string(t, c, &b, err, errcap)) < 0) {
            free(b.p);
            return r;
        }
        v = json_stringn(b.p, b.len);
        free(b.p);
        break;
    }
    case T_OBJ:
    case T_ARR:
        if (!(v = t->kind == T_OBJ ? json_object() : json_array()))
            return -ENOMEM;
        for (size_t i = 0; i < t->n; i++) {
            json_t *x;
            if ((r = expand_json(t->items[i], c, &x, err, errcap)) < 0) {
                json_decref(v);
                return r;
            }
            if ((t->kind == T_OBJ ? json_object_set_new(v, t->keys[i], x)
                                  : json_array_append_new(v, x)) < 0) {
                json_decref(v);
                return -ENOMEM;
            }
        }
        break;
    }
    if (!v)
        return -ENOMEM;
    *out = v;
    return 0;
}

/* Counts the bytes json_dump_callback writes, stopping past the bound. */
static int count_bytes(const char *buf, size_t n, void *data)
{
    (void)buf;
    size_t *total = data;
    *total += n;
    return *total > MAX_EXPANDED_BODY_BYTES ? -1 : 0;
}

int wf_expand_json(const struct wf_tmpl *t, const struct wf_ctx *c, json_t **out, char *err,
                   size_t errcap)
{
    if (errcap)
        err[0] = '\0';
    json_t *v;
    int r = expand_json(t, c, &v, err, errcap);
    if (r < 0)
        return r;
    /* The expansion shares the values it refers to, so only its text can
     * be large: measured before anyone writes it out. */
    size_t total = 0;
    if (json_dump_callback(v, count_bytes, &total, JSON_COMPACT | JSON_ENCODE_ANY) < 0) {
        json_decref(v);
        if (total <= MAX_EXPANDED_BODY_BYTES)
            return -ENOMEM;
        snprintf(err, errcap, "the expanded body is over %u bytes", MAX_EXPANDED_BODY_BYTES);
        return -E2BIG;
    }
    *out = v;
    return 0;
}
