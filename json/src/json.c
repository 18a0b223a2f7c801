/*
 * json.c: JSON documents with value positions (see jpos/json.h).
 *
 * jpos_depth_check first refuses nesting deeper than
 * JPOS_MAX_DEPTH, counting brackets outside strings whether or not the
 * text is valid (jansson's parser recurses once per level and we may be on
 * a small coroutine stack). One pass of a small scanner over the text then
 * records a node per value in document (pre-)order: where the value starts,
 * where its key starts when it is an object member, its first child and its
 * next sibling; jansson then parses and reports syntax errors. Once both succeed, the i-th member
 * of a jansson object is the i-th child node (jansson iterates objects in insertion order and
 * duplicate keys are refused), which cursors check against the raw key text and fall back to a
 * search when it ever disagrees.
 *
 * A compact document (jpos_doc_parse_compact) is parsed by a second, small
 * parser that builds only the nodes, each with its value (type, integer,
 * decoded string or number of children): no jansson value, so no allocation
 * per value and no hash table per object. It takes only what it can parse
 * exactly as jansson would (ASCII text, integers of at most 18 digits,
 * strings without \u escapes, objects without duplicate keys, an object or
 * array at the root, nesting within JPOS_MAX_DEPTH); on anything else it
 * gives up and the text goes through the jansson path above, whose errors
 * and values are then those of jpos_doc_parse. Cursors of a compact
 * document have `v` NULL; every reader below asks compact_node first (a
 * compact document is the one with `strs`).
 *
 * Invariants: nodes[0] is the root; first_child and next_sibling are 0 when
 * absent (0 can never be a child); every offset lies inside `text` (in a
 * compact document, key_off/key_len and str_off/str_len lie inside `strs`).
 */
#include "jpos/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jpos_node {
    uint32_t line, col;
    uint32_t key_line, key_col; /* 0 unless an object member */
    uint32_t key_off, key_len;  /* the key: its raw text between the quotes;
                                 * in a compact document, decoded in strs */
    uint32_t first_child;
    uint32_t next_sibling;
    /* compact documents only */
    uint32_t count;   /* members or elements */
    uint32_t str_len; /* decoded string length */
    uint8_t type;     /* json_type */
    union {
        json_int_t i;
        uint32_t str_off; /* decoded string in doc->strs */
    } val;
};

enum scan_state { S_VALUE, S_KEY_OR_END, S_KEY, S_VALUE_OR_END, S_AFTER };

struct scanner {
    const char *s;
    size_t n, i;
    uint32_t line, col;
    struct jpos_node *nodes;
    uint32_t nnodes, cap;
};

static void adv(struct scanner *sc)
{
    unsigned char c = (unsigned char)sc->s[sc->i++];
    if (c == '\n') {
        sc->line++;
        sc->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        sc->col++; /* count characters, not bytes, as jansson does */
    }
}

static void skip_ws(struct scanner *sc)
{
    while (sc->i < sc->n) {
        char c = sc->s[sc->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        adv(sc);
    }
}

/* At an opening quote: moves past the closing one. */
static int skip_string(struct scanner *sc)
{
    adv(sc);
    while (sc->i < sc->n) {
        char c = sc->s[sc->i];
        if (c == '"') {
            adv(sc);
            return 0;
        }
        adv(sc);
        if (c == '\\') {
            if (sc->i >= sc->n)
                return -EINVAL;
            adv(sc);
        }
    }
    return -EINVAL;
}

/* A new zeroed node at the end of nodes[0..*n) (grown by doubling from
 * `first` entries), its index in *out; NULL when out of memory. */
static struct jpos_node *node_push(struct jpos_node **nodes, uint32_t *n, uint32_t *cap,
                                   uint32_t first, uint32_t *out)
{
    if (*n == *cap) {
        uint32_t c = *cap ? *cap * 2 : first;
        struct jpos_node *grown = realloc(*nodes, (size_t)c * sizeof(*grown));
        if (!grown)
            return NULL;
        *nodes = grown;
        *cap = c;
    }
    *out = (*n)++;
    struct jpos_node *node = &(*nodes)[*out];
    memset(node, 0, sizeof(*node));
    return node;
}

static int new_node(struct scanner *sc, uint32_t *out)
{
    struct jpos_node *node = node_push(&sc->nodes, &sc->nnodes, &sc->cap, 64, out);
    if (!node)
        return -ENOMEM;
    node->line = sc->line;
    node->col = sc->col;
    return 0;
}

struct frame {
    uint32_t node, last_child;
    bool object;
};

/* Returns 0, -E2BIG (too deep; sc->line/col at the bracket), -EINVAL
 * (malformed: jansson will say how), -ENOMEM. */
static int scan(struct scanner *sc)
{
    struct frame stack[JPOS_MAX_DEPTH + 1];
    int sp = 0;
    enum scan_state st = S_VALUE;
    uint32_t key_line = 0, key_col = 0, key_off = 0, key_len = 0;
    bool have_key = false;
    int r;

    for (;;) {
        if (st == S_AFTER && sp == 0)
            return 0; /* the root value is complete */
        skip_ws(sc);
        if (sc->i >= sc->n)
            return -EINVAL;
        char c = sc->s[sc->i];
        switch (st) {
        case S_VALUE: {
            uint32_t idx;
            if ((r = new_node(sc, &idx)) < 0)
                return r;
            struct jpos_node *nd = &sc->nodes[idx];
            if (have_key) {
                nd->key_line = key_line;
                nd->key_col = key_col;
                nd->key_off = key_off;
                nd->key_len = key_len;
                have_key = false;
            }
            if (sp > 0) {
                struct frame *f = &stack[sp - 1];
                if (f->last_child == 0)
                    sc->nodes[f->node].first_child = idx;
                else
                    sc->nodes[f->last_child].next_sibling = idx;
                f->last_child = idx;
            }
            if (c == '{' || c == '[') {
                if (sp == JPOS_MAX_DEPTH)
                    return -E2BIG;
                stack[sp++] = (struct frame){.node = idx, .object = c == '{'};
                adv(sc);
                st = c == '{' ? S_KEY_OR_END : S_VALUE_OR_END;
            } else if (c == '"') {
                if ((r = skip_string(sc)) < 0)
                    return r;
                st = S_AFTER;
            } else {
                while (sc->i < sc->n && !strchr(",}] \t\r\n", sc->s[sc->i]))
                    adv(sc);
                st = S_AFTER;
            }
            break;
        }
        case S_KEY_OR_END:
        case S_VALUE_OR_END:
            if (c == (st == S_KEY_OR_END ? '}' : ']')) {
                adv(sc);
                sp--;
                st = S_AFTER;
            } else {
                st = st == S_KEY_OR_END ? S_KEY : S_VALUE;
            }
            break;
        case S_KEY:
            if (c != '"')
                return -EINVAL;
            key_line = sc->line;
            key_col = sc->col;
            key_off = (uint32_t)sc->i + 1;
            if ((r = skip_string(sc)) < 0)
                return r;
            key_len = (uint32_t)sc->i - 1 - key_off;
            have_key = true;
            skip_ws(sc);
            if (sc->i >= sc->n || sc->s[sc->i] != ':')
                return -EINVAL;
            adv(sc);
            st = S_VALUE;
            break;
        case S_AFTER:
            if (sp == 0)
                return 0;
            if (c == ',') {
                adv(sc);
                st = stack[sp - 1].object ? S_KEY : S_VALUE;
            } else if (c == (stack[sp - 1].object ? '}' : ']')) {
                adv(sc);
                sp--;
                if (sp == 0)
                    return 0;
            } else {
                return -EINVAL;
            }
            break;
        }
    }
}

int jpos_depth_check(const char *text, size_t len, unsigned max_depth, unsigned *line,
                     unsigned *column)
{
    unsigned depth = 0;
    bool in_string = false;
    size_t i = 0;
    for (; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (depth == max_depth)
                break;
            depth++;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    if (i >= len)
        return 0;
    /* Only a refusal pays for the position. */
    struct scanner sc = {.s = text, .n = len, .line = 1, .col = 1};
    while (sc.i < i)
        adv(&sc);
    *line = sc.line;
    *column = sc.col;
    return -E2BIG;
}

int jpos_doc_parse(struct jpos_doc *doc, const char *file, const char *text, size_t len,
                   struct jpos_diags *d)
{
    int r;
    memset(doc, 0, sizeof(*doc));
    doc->file = strdup(file ? file : "");
    if (!doc->file)
        return -ENOMEM;
    if (len > JPOS_MAX_BYTES) {
        jpos_diag_add(d, JPOS_DIAG_ERROR, doc->file, 0, 0, NULL,
                      "file is too large (%zu bytes; at most %u)", len, (unsigned)JPOS_MAX_BYTES);
        return -EINVAL;
    }

    struct scanner sc = {.s = text, .n = len, .line = 1, .col = 1};
    unsigned line = 0, col = 0;
    int scanned = jpos_depth_check(text, len, JPOS_MAX_DEPTH, &line, &col);
    if (scanned == 0) {
        scanned = scan(&sc);
        line = sc.line;
        col = sc.col;
    }
    if (scanned == -ENOMEM) {
        r = -ENOMEM;
        goto out;
    }
    if (scanned == -E2BIG) {
        jpos_diag_add(d, JPOS_DIAG_ERROR, doc->file, line, col, NULL,
                      "JSON nested deeper than %d levels", JPOS_MAX_DEPTH);
        r = -EINVAL;
        goto out;
    }

    json_error_t err;
    doc->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!doc->root) {
        if (json_error_code(&err) == json_error_out_of_memory) {
            r = -ENOMEM;
            goto out;
        }
        jpos_diag_add(d, JPOS_DIAG_ERROR, doc->file, err.line > 0 ? (unsigned)err.line : 1,
                      err.column > 0 ? (unsigned)err.column : 1, NULL, "invalid JSON: %s",
                      err.text);
        r = -EINVAL;
        goto out;
    }
    if (scanned == 0) {
        /* Positions are a help, not a must: on the (unexpected) event that
         * the scanner and jansson disagree, diagnostics lose positions. */
        doc->text = malloc(len + 1);
        if (!doc->text) {
            r = -ENOMEM;
            goto out;
        }
        memcpy(doc->text, text, len);
        doc->text[len] = '\0';
        doc->text_len = len;
        doc->nodes = sc.nodes;
        doc->nnodes = sc.nnodes;
        sc.nodes = NULL;
    }
    r = 0;
out:
    free(sc.nodes);
    if (r < 0) {
        json_decref(doc->root);
        doc->root = NULL;
    }
    return r;
}

/* ---- compact documents ---------------------------------------------------- */

struct cparser {
    const char *s;
    size_t n, i;
    uint32_t line;
    size_t line_start; /* offset of the current line's first byte */
    struct jpos_node *nodes;
    uint32_t nnodes, cap;
    char *strs; /* room for n + 1 bytes: a decoded string is shorter than its quotes and text */
    size_t nstrs;
};

/* Returned when the text is left to jansson. */
#define GIVE_UP (-EINVAL)

static void c_ws(struct cparser *p)
{
    const char *s = p->s;
    size_t i = p->i, n = p->n;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > ' ')
            break; /* every token starts above the space */
        if (c == '\n') {
            p->line++;
            p->line_start = i + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            break;
        }
    }
    p->i = i;
}

/* Columns count characters; the compact parser takes ASCII only, so bytes. */
static uint32_t c_col(const struct cparser *p)
{
    return (uint32_t)(p->i - p->line_start) + 1;
}

static int c_node(struct cparser *p, uint32_t *out)
{
    struct jpos_node *node = node_push(&p->nodes, &p->nnodes, &p->cap, 256, out);
    if (!node)
        return -ENOMEM;
    node->line = p->line;
    node->col = c_col(p);
    return 0;
}

/* At an opening quote: decodes the string into strs (NUL-terminated) and
 * moves past the closing quote. Gives up on \u escapes, on bytes jansson
 * refuses in a string (control characters) and on any byte outside ASCII
 * (jansson checks UTF-8; columns would count characters). */
static int c_string(struct cparser *p, uint32_t *off, uint32_t *len)
{
    /* Bytes copied as they are: ASCII from 0x20 but the quote and the
     * backslash (jansson takes DEL as it is too). */
    /* clang-format off: one row per 16 bytes */
    static const bool plain[256] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
        1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x70 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xa0 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xb0 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xc0 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xd0 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xe0 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xf0 */
    };
    /* clang-format on */
    const char *s = p->s;
    size_t i = p->i + 1, n = p->n;
    char *start = p->strs + p->nstrs, *o = start;
    for (;;) {
        while (i < n && plain[(unsigned char)s[i]])
            *o++ = s[i++];
        if (i >= n)
            return GIVE_UP;
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            break;
        if (c != '\\')
            return GIVE_UP; /* a control character or not ASCII */
        if (i + 1 >= n)
            return GIVE_UP;
        switch (s[i + 1]) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        default:
            return GIVE_UP; /* \u (jansson checks surrogates and NUL) or invalid */
        }
        i += 2;
    }
    *o = '\0';
    *off = (uint32_t)p->nstrs;
    *len = (uint32_t)(o - start);
    p->nstrs += (size_t)(o - start) + 1;
    p->i = i + 1;
    return 0;
}

/* An integer as jansson reads one: -?(0|[1-9][0-9]*); a fraction or an
 * exponent (a real), a leading zero before a digit and more than 18 digits
 * (which might not fit) are left to jansson. */
static int c_number(struct cparser *p, json_int_t *out)
{
    size_t i = p->i;
    bool neg = false;
    if (p->s[i] == '-') {
        neg = true;
        i++;
    }
    size_t d0 = i;
    json_int_t v = 0;
    while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') {
        if (i - d0 == 18)
            return GIVE_UP; /* checked before the digit is added: v stays below 10^18 */
        v = v * 10 + (p->s[i] - '0');
        i++;
    }
    if (i == d0 || (p->s[d0] == '0' && i - d0 > 1))
        return GIVE_UP;
    if (i < p->n && (p->s[i] == '.' || p->s[i] == 'e' || p->s[i] == 'E'))
        return GIVE_UP;
    *out = neg ? -v : v;
    p->i = i;
    return 0;
}

struct key_ref {
    const char *s;
    uint32_t len;
};

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

/* Whether two members of object `obj` have the same (decoded) key: jansson
 * refuses that with JSON_REJECT_DUPLICATES, so the text is left to it. */
static int c_dup_keys(const struct cparser *p, uint32_t obj)
{
    const struct jpos_node *nodes = p->nodes;
    uint32_t n = nodes[obj].count;
    if (n < 2)
        return 0;
    if (n <= 16) {
        for (uint32_t a = nodes[obj].first_child; a; a = nodes[a].next_sibling)
            for (uint32_t b = nodes[a].next_sibling; b; b = nodes[b].next_sibling)
                if (nodes[a].key_len == nodes[b].key_len &&
                    memcmp(p->strs + nodes[a].key_off, p->strs + nodes[b].key_off,
                           nodes[a].key_len) == 0)
                    return GIVE_UP;
        return 0;
    }
    struct key_ref *keys = malloc((size_t)n * sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    uint32_t k = 0;
    for (uint32_t c = nodes[obj].first_child; c; c = nodes[c].next_sibling)
        keys[k++] = (struct key_ref){p->strs + nodes[c].key_off, nodes[c].key_len};
    qsort(keys, k, sizeof(*keys), key_ref_cmp);
    int r = 0;
    for (uint32_t j = 1; j < k && r == 0; j++)
        if (key_ref_cmp(&keys[j - 1], &keys[j]) == 0)
            r = GIVE_UP;
    free(keys);
    return r;
}

/* Starts a value at p->i: its node, linked to its parent. */
static int c_value(struct cparser *p, struct frame *stack, int *sp, enum scan_state *st)
{
    uint32_t idx;
    int r;
    if ((r = c_node(p, &idx)) < 0)
        return r;
    struct jpos_node *nd = &p->nodes[idx];
    if (*sp > 0) {
        struct frame *f = &stack[*sp - 1];
        if (f->last_child == 0)
            p->nodes[f->node].first_child = idx;
        else
            p->nodes[f->last_child].next_sibling = idx;
        f->last_child = idx;
        p->nodes[f->node].count++;
    }
    char c = p->s[p->i];
    *st = S_AFTER;
    switch (c) {
    case '{':
    case '[':
        if (*sp == JPOS_MAX_DEPTH)
            return GIVE_UP;
        nd->type = c == '{' ? JSON_OBJECT : JSON_ARRAY;
        stack[(*sp)++] = (struct frame){.node = idx, .object = c == '{'};
        p->i++;
        *st = c == '{' ? S_KEY_OR_END : S_VALUE_OR_END;
        return 0;
    case '"':
        nd->type = JSON_STRING;
        return c_string(p, &nd->val.str_off, &nd->str_len);
    case 't':
    case 'f':
    case 'n': {
        const char *word = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t wl = strlen(word);
        if (p->n - p->i < wl || memcmp(p->s + p->i, word, wl) != 0)
            return GIVE_UP;
        nd->type = c == 't' ? JSON_TRUE : c == 'f' ? JSON_FALSE : JSON_NULL;
        p->i += wl; /* a letter right after it is refused in S_AFTER */
        return 0;
    }
    default:
        if (c != '-' && (c < '0' || c > '9'))
            return GIVE_UP;
        nd->type = JSON_INTEGER;
        return c_number(p, &nd->val.i);
    }
}

/* Parses the whole text into p's nodes, in the states of scan(). 0,
 * GIVE_UP or -ENOMEM. */
static int c_parse(struct cparser *p)
{
    struct frame stack[JPOS_MAX_DEPTH];
    int sp = 0;
    enum scan_state st = S_VALUE;
    uint32_t key_line = 0, key_col = 0, key_off = 0, key_len = 0;
    bool have_key = false;
    int r;

    c_ws(p);
    if (p->i >= p->n || (p->s[p->i] != '{' && p->s[p->i] != '['))
        return GIVE_UP; /* jansson wants an object or an array at the root */
    for (;;) {
        c_ws(p);
        if (st == S_AFTER && sp == 0)
            return p->i == p->n ? 0 : GIVE_UP; /* only whitespace after the root */
        if (p->i >= p->n)
            return GIVE_UP;
        char c = p->s[p->i];
        switch (st) {
        case S_VALUE: {
            uint32_t idx = p->nnodes;
            if ((r = c_value(p, stack, &sp, &st)) < 0)
                return r;
            if (have_key) {
                p->nodes[idx].key_line = key_line;
                p->nodes[idx].key_col = key_col;
                p->nodes[idx].key_off = key_off;
                p->nodes[idx].key_len = key_len;
                have_key = false;
            }
            break;
        }
        case S_KEY_OR_END:
        case S_VALUE_OR_END:
            if (c == (st == S_KEY_OR_END ? '}' : ']')) {
                p->i++;
                sp--;
                st = S_AFTER;
            } else {
                st = st == S_KEY_OR_END ? S_KEY : S_VALUE;
            }
            break;
        case S_KEY:
            if (c != '"')
                return GIVE_UP;
            key_line = p->line;
            key_col = c_col(p);
            if ((r = c_string(p, &key_off, &key_len)) < 0)
                return r;
            have_key = true;
            c_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':')
                return GIVE_UP;
            p->i++;
            st = S_VALUE;
            break;
        case S_AFTER: {
            struct frame *f = &stack[sp - 1];
            if (c == ',') {
                p->i++;
                st = f->object ? S_KEY : S_VALUE;
            } else if (c == (f->object ? '}' : ']')) {
                p->i++;
                if (f->object && (r = c_dup_keys(p, f->node)) < 0)
                    return r;
                sp--;
            } else {
                return GIVE_UP;
            }
            break;
        }
        }
    }
}

int jpos_doc_parse_compact(struct jpos_doc *doc, const char *file, const char *text, size_t len,
                           struct jpos_diags *d)
{
    if (len > JPOS_MAX_BYTES || len >= UINT32_MAX)
        return jpos_doc_parse(doc, file, text, len, d);
    memset(doc, 0, sizeof(*doc));
    struct cparser p = {.s = text, .n = len, .line = 1};
    int r = -ENOMEM;
    doc->file = strdup(file ? file : "");
    p.strs = malloc(len + 1);
    if (!doc->file || !p.strs)
        goto out;
    r = c_parse(&p);
    if (r == 0) {
        doc->nodes = p.nodes;
        doc->nnodes = p.nnodes;
        doc->strs = p.strs;
        return 0;
    }
out:
    free(p.nodes);
    free(p.strs);
    jpos_doc_done(doc);
    if (r == -ENOMEM)
        return r;
    return jpos_doc_parse(doc, file, text, len, d);
}

void jpos_doc_done(struct jpos_doc *doc)
{
    if (!doc)
        return;
    free(doc->text);
    free(doc->nodes);
    free(doc->strs);
    json_decref(doc->root);
    free(doc->file);
    memset(doc, 0, sizeof(*doc));
}

void jpos_val_root(const struct jpos_doc *doc, struct jpos_val *out)
{
    *out = (struct jpos_val){
        .doc = doc,
        .v = doc->root,
        .node = doc->nodes ? 0 : UINT32_MAX,
    };
}

/* The node holding v's value when v is in a compact document (whose
 * values are its nodes), else NULL: the value is then v->v, jansson's. */
static const struct jpos_node *compact_node(const struct jpos_val *v)
{
    return v->doc->strs && v->node != UINT32_MAX ? &v->doc->nodes[v->node] : NULL;
}

json_type jpos_typeof(const struct jpos_val *v)
{
    const struct jpos_node *nd = compact_node(v);
    if (nd)
        return (json_type)nd->type;
    /* No value (a document that did not parse): as json_is_*(NULL), no
     * type a reader asks for. */
    return v->v ? json_typeof(v->v) : JSON_NULL;
}

size_t jpos_size(const struct jpos_val *v)
{
    const struct jpos_node *nd = compact_node(v);
    if (nd)
        return nd->type == JSON_OBJECT || nd->type == JSON_ARRAY ? nd->count : 0;
    return json_is_object(v->v) ? json_object_size(v->v) : json_array_size(v->v);
}

json_int_t jpos_integer_value(const struct jpos_val *v)
{
    const struct jpos_node *nd = compact_node(v);
    if (nd)
        return nd->type == JSON_INTEGER ? nd->val.i : 0;
    return json_integer_value(v->v);
}

void jpos_iter_init(struct jpos_iter *it, const struct jpos_val *c)
{
    memset(it, 0, sizeof(*it));
    it->parent = c;
    it->child = UINT32_MAX;
    if (c->node != UINT32_MAX) {
        uint32_t fc = c->doc->nodes[c->node].first_child;
        it->child = fc ? fc : UINT32_MAX;
    }
    if (json_is_object(c->v))
        it->oit = json_object_iter(c->v);
}

/* jpos_iter_next in a compact document: the nodes are the values. */
static bool iter_next_compact(struct jpos_iter *it, struct jpos_val *out)
{
    const struct jpos_val *p = it->parent;
    const struct jpos_doc *doc = p->doc;
    json_type t = jpos_typeof(p);
    uint32_t node = it->child;
    if ((t != JSON_OBJECT && t != JSON_ARRAY) || node == UINT32_MAX)
        return false;
    const struct jpos_node *nd = &doc->nodes[node];
    *out = (struct jpos_val){.doc = doc,
                             .node = node,
                             .parent = p,
                             .key = t == JSON_OBJECT ? doc->strs + nd->key_off : NULL,
                             .index = it->i};
    it->child = nd->next_sibling ? nd->next_sibling : UINT32_MAX;
    it->i++;
    return true;
}

static bool raw_key_is(const struct jpos_doc *doc, uint32_t node, const char *key)
{
    const struct jpos_node *nd = &doc->nodes[node];
    const char *raw = doc->text + nd->key_off;
    if (memchr(raw, '\\', nd->key_len))
        return true; /* escaped: order is trusted; decoding is not worth it */
    return strlen(key) == nd->key_len && memcmp(raw, key, nd->key_len) == 0;
}

static uint32_t find_member_node(const struct jpos_val *obj, const char *key)
{
    if (obj->node == UINT32_MAX)
        return UINT32_MAX;
    const struct jpos_doc *doc = obj->doc;
    for (uint32_t c = doc->nodes[obj->node].first_child; c; c = doc->nodes[c].next_sibling)
        if (raw_key_is(doc, c, key))
            return c;
    return UINT32_MAX;
}

bool jpos_iter_next(struct jpos_iter *it, struct jpos_val *out)
{
    const struct jpos_val *p = it->parent;
    const struct jpos_doc *doc = p->doc;
    uint32_t node = it->child;
    if (compact_node(p))
        return iter_next_compact(it, out);
    if (json_is_object(p->v)) {
        if (!it->oit)
            return false;
        const char *key = json_object_iter_key(it->oit);
        *out = (struct jpos_val){.doc = doc,
                                 .v = json_object_iter_value(it->oit),
                                 .parent = p,
                                 .key = key,
                                 .index = it->i};
        it->oit = json_object_iter_next(p->v, it->oit);
        if (node != UINT32_MAX && !raw_key_is(doc, node, key))
            out->node = find_member_node(p, key);
        else
            out->node = node;
    } else if (json_is_array(p->v)) {
        if (it->i >= json_array_size(p->v))
            return false;
        *out = (struct jpos_val){
            .doc = doc, .v = json_array_get(p->v, it->i), .parent = p, .index = it->i};
        out->node = node;
    } else {
        return false;
    }
    if (node != UINT32_MAX) {
        uint32_t next = doc->nodes[node].next_sibling;
        it->child = next ? next : UINT32_MAX;
    }
    it->i++;
    return true;
}

bool jpos_obj_get(const struct jpos_val *obj, const char *key, struct jpos_val *out)
{
    struct jpos_iter it;
    jpos_iter_init(&it, obj);
    while (jpos_iter_next(&it, out))
        if (strcmp(out->key, key) == 0)
            return true;
    return false;
}

void jpos_val_pos(const struct jpos_val *v, unsigned *line, unsigned *column)
{
    if (v->node == UINT32_MAX) {
        *line = *column = 0;
        return;
    }
    *line = v->doc->nodes[v->node].line;
    *column = v->doc->nodes[v->node].col;
}

void jpos_val_key_pos(const struct jpos_val *v, unsigned *line, unsigned *column)
{
    if (v->node != UINT32_MAX && v->doc->nodes[v->node].key_line) {
        *line = v->doc->nodes[v->node].key_line;
        *column = v->doc->nodes[v->node].key_col;
        return;
    }
    jpos_val_pos(v, line, column);
}

static bool is_ident(const char *k)
{
    if (!*k)
        return false;
    for (const char *p = k; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
                  (p != k && ((c >= '0' && c <= '9') || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

size_t jpos_val_path(const struct jpos_val *v, char *buf, size_t cap)
{
    const struct jpos_val *chain[JPOS_MAX_DEPTH + 2];
    size_t n = 0;
    for (const struct jpos_val *p = v; p && p->parent && n < JPOS_MAX_DEPTH + 2; p = p->parent)
        chain[n++] = p;
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, __VA_ARGS__);   \
        if (w_ > 0)                                                                                \
            len += (size_t)w_;                                                                     \
    } while (0)
    while (n-- > 0) {
        const struct jpos_val *p = chain[n];
        if (!p->key) {
            PUT("[%zu]", p->index);
        } else if (is_ident(p->key)) {
            PUT("%s%s", len ? "." : "", p->key);
        } else {
            PUT("[\"");
            for (const char *k = p->key; *k; k++) {
                if (*k == '"' || *k == '\\')
                    PUT("\\%c", *k);
                else if ((unsigned char)*k < 0x20)
                    PUT("\\u%04x", (unsigned char)*k);
                else
                    PUT("%c", *k);
            }
            PUT("\"]");
        }
    }
#undef PUT
    return len;
}

static const char *type_name(json_type t)
{
    switch (t) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

const char *jpos_type_name(const json_t *v)
{
    return type_name(json_typeof(v));
}

const char *jpos_val_type_name(const struct jpos_val *v)
{
    return type_name(jpos_typeof(v));
}

static void report(struct jpos_diags *d, enum jpos_diag_level level, const struct jpos_val *at,
                   bool at_key, const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void report(struct jpos_diags *d, enum jpos_diag_level level, const struct jpos_val *at,
                   bool at_key, const char *fmt, va_list ap)
{
    unsigned line, col;
    if (at_key)
        jpos_val_key_pos(at, &line, &col);
    else
        jpos_val_pos(at, &line, &col);
    char small[256];
    char *path = small;
    size_t need = jpos_val_path(at, small, sizeof(small));
    if (need >= sizeof(small)) {
        path = malloc(need + 1);
        if (path)
            jpos_val_path(at, path, need + 1);
        else
            path = small; /* truncated is better than nothing */
    }
    jpos_diag_addv(d, level, at->doc->file, line, col, path, fmt, ap);
    if (path != small)
        free(path);
}

void jpos_err(struct jpos_diags *d, const struct jpos_val *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, JPOS_DIAG_ERROR, at, false, fmt, ap);
    va_end(ap);
}

void jpos_warn(struct jpos_diags *d, const struct jpos_val *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, JPOS_DIAG_WARNING, at, false, fmt, ap);
    va_end(ap);
}

void jpos_err_key(struct jpos_diags *d, const struct jpos_val *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, JPOS_DIAG_ERROR, at, true, fmt, ap);
    va_end(ap);
}

void jpos_unknown(struct jpos_diags *d, const struct jpos_val *m, const char *where,
                  const char *const *known)
{
    size_t n = 0;
    while (known[n])
        n++;
    const char *hint = jpos_suggest(m->key, known, n);
    if (hint) {
        jpos_err_key(d, m, "unknown key \"%s\" in %s; did you mean \"%s\"?", m->key, where, hint);
        return;
    }
    char list[512];
    size_t len = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n && len < sizeof(list); i++) {
        int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", known[i]);
        if (w > 0)
            len += (size_t)w;
    }
    jpos_err_key(d, m, "unknown key \"%s\" in %s (known keys: %s)", m->key, where, list);
}

bool jpos_string(struct jpos_diags *d, const struct jpos_val *v, size_t maxlen, const char **out,
                 size_t *len)
{
    if (jpos_typeof(v) != JSON_STRING) {
        jpos_err(d, v, "expected a string, got %s", jpos_val_type_name(v));
        return false;
    }
    const struct jpos_node *nd = compact_node(v);
    size_t l = nd ? nd->str_len : json_string_length(v->v);
    if (l > maxlen) {
        jpos_err(d, v, "string is too long (%zu bytes; at most %zu)", l, maxlen);
        return false;
    }
    *out = nd ? v->doc->strs + nd->val.str_off : json_string_value(v->v);
    if (len)
        *len = l;
    return true;
}

bool jpos_int(struct jpos_diags *d, const struct jpos_val *v, long long min, long long max,
              long long *out)
{
    if (jpos_typeof(v) != JSON_INTEGER) {
        jpos_err(d, v, "expected an integer, got %s", jpos_val_type_name(v));
        return false;
    }
    long long x = jpos_integer_value(v);
    if (x < min || x > max) {
        jpos_err(d, v, "must be between %lld and %lld, got %lld", min, max, x);
        return false;
    }
    *out = x;
    return true;
}

bool jpos_bool(struct jpos_diags *d, const struct jpos_val *v, bool *out)
{
    json_type t = jpos_typeof(v);
    if (t != JSON_TRUE && t != JSON_FALSE) {
        jpos_err(d, v, "expected true or false, got %s", jpos_val_type_name(v));
        return false;
    }
    *out = t == JSON_TRUE;
    return true;
}

bool jpos_object(struct jpos_diags *d, const struct jpos_val *v)
{
    if (jpos_typeof(v) != JSON_OBJECT) {
        jpos_err(d, v, "expected an object, got %s", jpos_val_type_name(v));
        return false;
    }
    return true;
}

bool jpos_array(struct jpos_diags *d, const struct jpos_val *v)
{
    if (jpos_typeof(v) != JSON_ARRAY) {
        jpos_err(d, v, "expected an array, got %s", jpos_val_type_name(v));
        return false;
    }
    return true;
}
