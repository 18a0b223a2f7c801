/*
 * keys.c: key tables (see jpos/keys.h): dispatch, unknown keys, defaults,
 * the key listing and JSON Schema generation, all from the same rows.
 */
#include "jpos/keys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SECTION_KEYS 64

const struct jpos_key *jpos_key_find(const struct jpos_section *s, const char *name)
{
    /* The first byte first: most keys of a section differ there. */
    for (size_t i = 0; i < s->nkeys; i++)
        if (s->keys[i].name[0] == name[0] && !(s->keys[i].flags & JPOS_KEY_INTERNAL) &&
            strcmp(s->keys[i].name, name) == 0)
            return &s->keys[i];
    return NULL;
}

uint64_t jpos_key_bit(const struct jpos_section *s, const char *name)
{
    const struct jpos_key *k = jpos_key_find(s, name);
    return k ? 1ull << (k - s->keys) : 0;
}

void jpos_key_store(const struct jpos_key *k, void *base, long long value)
{
    if (k->offset == JPOS_NO_FIELD)
        return;
    char *p = (char *)base + k->offset;
    switch (k->size) {
    case 1: {
        bool b = value != 0;
        memcpy(p, &b, 1);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)value;
        memcpy(p, &x, 4);
        break;
    }
    case 8: {
        int64_t x = value;
        memcpy(p, &x, 8);
        break;
    }
    }
}

void jpos_keys_defaults(const struct jpos_section *s, void *base)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct jpos_key *k = &s->keys[i];
        if (k->type == JPOS_T_INT || k->type == JPOS_T_BOOL || k->type == JPOS_T_CHOICE)
            jpos_key_store(k, base, k->def);
        else if (k->type == JPOS_T_OBJECT && k->sub)
            jpos_keys_defaults(k->sub,
                               k->offset == JPOS_NO_FIELD ? base : (char *)base + k->offset);
    }
}

void jpos_keys_unknown(struct jpos_diags *d, const struct jpos_val *m, const struct jpos_section *s)
{
    const char *names[MAX_SECTION_KEYS + 1];
    size_t n = 0;
    for (size_t i = 0; i < s->nkeys && n < MAX_SECTION_KEYS; i++)
        if (!(s->keys[i].flags & JPOS_KEY_INTERNAL))
            names[n++] = s->keys[i].name;
    names[n] = NULL;
    jpos_unknown(d, m, s->where, names);
}

int jpos_choice(struct jpos_diags *d, const struct jpos_val *v, const char *what,
                const char *const *names, const char *listed)
{
    const char *s;
    if (!jpos_string(d, v, 64, &s, NULL))
        return -1;
    size_t count = 0;
    for (; names[count]; count++)
        if (strcmp(names[count], s) == 0)
            return (int)count;
    const char *hint = jpos_suggest(s, names, count);
    if (hint) {
        jpos_err(d, v, "unknown %s \"%s\"; did you mean \"%s\"?", what, s, hint);
        return -1;
    }
    if (listed) {
        jpos_err(d, v, "unknown %s \"%s\" (%s)", what, s, listed);
        return -1;
    }
    char list[256] = "";
    size_t n = 0;
    for (size_t i = 0; i < count && i < 8 && n < sizeof list; i++) {
        int w = snprintf(list + n, sizeof list - n, "%s\"%s\"", i ? ", " : "", names[i]);
        if (w > 0)
            n += (size_t)w;
    }
    if (count > 8 && n < sizeof list)
        snprintf(list + n, sizeof list - n, ", ... (%zu in all)", count);
    jpos_err(d, v, "unknown %s \"%s\" (one of %s)", what, s, list);
    return -1;
}

bool jpos_key_read(struct jpos_diags *d, const struct jpos_key *k, const struct jpos_val *m,
                   void *base)
{
    long long x;
    bool b;
    int c;
    switch (k->type) {
    case JPOS_T_INT:
        if (!jpos_int(d, m, k->min, k->max, &x))
            return false;
        jpos_key_store(k, base, x);
        return true;
    case JPOS_T_BOOL:
        if (!jpos_bool(d, m, &b))
            return false;
        jpos_key_store(k, base, b);
        return true;
    case JPOS_T_CHOICE:
        if ((c = jpos_choice(d, m, k->name, k->choices, k->listed)) < 0)
            return false;
        jpos_key_store(k, base, c);
        return true;
    default:
        return false;
    }
}

static bool table_reads(const struct jpos_key *k)
{
    return !(k->flags & JPOS_KEY_CUSTOM) && k->offset != JPOS_NO_FIELD &&
           (k->type == JPOS_T_INT || k->type == JPOS_T_BOOL || k->type == JPOS_T_CHOICE);
}

int jpos_keys_parse(struct jpos_diags *d, const struct jpos_val *v, const struct jpos_section *s,
                    void *base, jpos_key_fn fn, void *ctx, uint64_t *seen)
{
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const struct jpos_key *k = jpos_key_find(s, m.key);
        if (!k) {
            jpos_keys_unknown(d, &m, s);
            continue;
        }
        if (seen)
            *seen |= 1ull << (k - s->keys);
        if (table_reads(k))
            jpos_key_read(d, k, &m, base);
        else if (fn && fn(ctx, k, &m, d) == -ENOMEM)
            return -ENOMEM;
    }
    return 0;
}

/* ---- documentation ------------------------------------------------------------ */

void jpos_key_default_text(const struct jpos_key *k, char *buf, size_t cap)
{
    const long long mib = 1ll << 20;
    if (k->flags & JPOS_KEY_REQUIRED) {
        snprintf(buf, cap, "required");
        return;
    }
    if (k->flags & JPOS_KEY_DEF_TEXT) {
        snprintf(buf, cap, "%s", k->def_str);
        return;
    }
    switch (k->type) {
    case JPOS_T_INT:
        if (k->def >= mib && k->def % mib == 0)
            snprintf(buf, cap, "%lld MiB", k->def / mib);
        else
            snprintf(buf, cap, "%lld", k->def);
        return;
    case JPOS_T_BOOL:
        snprintf(buf, cap, "%s", k->def ? "true" : "false");
        return;
    case JPOS_T_CHOICE:
        snprintf(buf, cap, "`%s`", k->choices[k->def]);
        return;
    case JPOS_T_STRING:
        if (k->def_str)
            snprintf(buf, cap, "`%s`", k->def_str);
        else
            snprintf(buf, cap, "none");
        return;
    default:
        snprintf(buf, cap, "%s", k->def_str ? k->def_str : "");
        return;
    }
}

static const char *type_text(const struct jpos_key *k)
{
    if (k->flags & JPOS_KEY_INTERNAL)
        return "internal";
    static const char *const names[] = {"integer", "boolean", "string", "choice",
                                        "object",  "array",   "map",    "other"};
    return names[k->type];
}

void jpos_keys_print(FILE *out, const struct jpos_section *s, const char *prefix)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct jpos_key *k = &s->keys[i];
        char path[512], def[128], range[64] = "";
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k->name);
        jpos_key_default_text(k, def, sizeof def);
        if (k->type == JPOS_T_INT || k->type == JPOS_T_ARRAY)
            snprintf(range, sizeof range, "%lld..%lld", k->min, k->max);
        fprintf(out, "%s\t%s\t%s\t%s\t%s\n", path, type_text(k), def, range, k->why ? k->why : "");
        if (!k->sub)
            continue;
        char sub[520];
        snprintf(sub, sizeof sub, "%s%s", path,
                 k->type == JPOS_T_ARRAY ? "[]"
                 : k->type == JPOS_T_MAP ? ".NAME"
                                         : "");
        jpos_keys_print(out, k->sub, sub);
    }
}

/* ---- JSON Schema ---------------------------------------------------------------- */

static json_t *section_schema(const struct jpos_section *s);

/* Adds `key: value` to `o`, taking the reference; false when out of memory. */
static bool put(json_t *o, const char *key, json_t *value)
{
    return value && json_object_set_new(o, key, value) == 0;
}

static json_t *key_schema(const struct jpos_key *k)
{
    json_t *o = json_object();
    json_t *items = NULL;
    bool ok = o != NULL;
    switch (k->type) {
    case JPOS_T_INT:
        ok = ok && put(o, "type", json_string("integer")) &&
             put(o, "minimum", json_integer(k->min)) && put(o, "maximum", json_integer(k->max));
        if (!(k->flags & (JPOS_KEY_REQUIRED | JPOS_KEY_DEF_TEXT)))
            ok = ok && put(o, "default", json_integer(k->def));
        break;
    case JPOS_T_BOOL:
        ok =
            ok && put(o, "type", json_string("boolean")) && put(o, "default", json_boolean(k->def));
        break;
    case JPOS_T_STRING:
        /* maxLength counts characters, the gateway bytes: never stricter. */
        ok = ok && put(o, "type", json_string("string")) &&
             put(o, "maxLength", json_integer(k->max));
        if (k->def_str && !(k->flags & JPOS_KEY_DEF_TEXT))
            ok = ok && put(o, "default", json_string(k->def_str));
        break;
    case JPOS_T_CHOICE: {
        json_t *e = json_array();
        ok = ok && put(o, "enum", e);
        for (size_t i = 0; ok && k->choices[i]; i++)
            ok = json_array_append_new(e, json_string(k->choices[i])) == 0;
        if (!(k->flags & JPOS_KEY_DEF_TEXT))
            ok = ok && put(o, "default", json_string(k->choices[k->def]));
        break;
    }
    case JPOS_T_OBJECT:
        json_decref(o);
        o = section_schema(k->sub);
        ok = o != NULL;
        break;
    case JPOS_T_ARRAY:
        ok = ok && put(o, "type", json_string("array"));
        if (k->min > 0)
            ok = ok && put(o, "minItems", json_integer(k->min));
        ok = ok && put(o, "maxItems", json_integer(k->max));
        if (k->sub)
            ok = ok && put(o, "items", (items = section_schema(k->sub)));
        break;
    case JPOS_T_MAP:
        ok = ok && put(o, "type", json_string("object")) &&
             put(o, "maxProperties", json_integer(k->max)) &&
             put(o, "additionalProperties", section_schema(k->sub));
        break;
    case JPOS_T_OTHER:
        break;
    }
    if (ok && k->schema) {
        json_error_t err;
        json_t *extra = json_loads(k->schema, 0, &err);
        ok = extra && json_object_update(o, extra) == 0;
        json_decref(extra);
    }
    if (ok && k->why)
        ok = put(o, "description", json_string(k->why));
    if (ok && (k->flags & JPOS_KEY_OR_FALSE)) {
        json_t *any = json_pack("{s:[{s:b}, O]}", "anyOf", "const", 0, o);
        json_decref(o);
        o = any;
        ok = o && (!k->why || put(o, "description", json_string(k->why)));
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *section_schema(const struct jpos_section *s)
{
    json_t *o = json_object(), *props = json_object(), *req = json_array();
    bool ok = o && props && req && put(o, "type", json_string("object"));
    if (ok && s->why)
        ok = put(o, "description", json_string(s->why));
    for (size_t i = 0; ok && i < s->nkeys; i++) {
        const struct jpos_key *k = &s->keys[i];
        if (k->flags & JPOS_KEY_INTERNAL)
            continue;
        ok = put(props, k->name, key_schema(k));
        if (ok && (k->flags & JPOS_KEY_REQUIRED))
            ok = json_array_append_new(req, json_string(k->name)) == 0;
    }
    ok = ok && json_object_set(o, "properties", props) == 0;
    if (ok && json_array_size(req))
        ok = json_object_set(o, "required", req) == 0;
    ok = ok && put(o, "additionalProperties", json_false());
    json_decref(props);
    json_decref(req);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *jpos_keys_schema(const struct jpos_section *s, const char *id, const char *title)
{
    json_t *body = section_schema(s);
    json_t *o = json_object();
    bool ok = body && o &&
              put(o, "$schema", json_string("https://json-schema.org/draft/2020-12/schema")) &&
              put(o, "$id", json_string(id)) && put(o, "title", json_string(title)) &&
              json_object_update(o, body) == 0;
    json_decref(body);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}
