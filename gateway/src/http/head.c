/* head.c: the parsed head object (struct gw_http_head, gw/http1.h).
 *
 * A head is one heap block: the struct, its field array and the strings it
 * points to (built by parser.c's head_build), so it is freed with one
 * free() and copied by rebasing its pointers. Lookups compare names ASCII
 * case-insensitively and walk list values with the lexing helpers. A head
 * is read-only once built: any thread may read one it was handed.
 */
#include "gw/http1.h"
#include "http_int.h"

#include <stdlib.h>
#include <string.h>

void gw_http_head_free(struct gw_http_head *h)
{
    free(h);
}

static const char *rebase(const char *s, const struct gw_http_head *from, struct gw_http_head *to)
{
    return s ? (const char *)to + (s - (const char *)from) : NULL;
}

struct gw_http_head *gw_http_head_dup(const struct gw_http_head *h)
{
    struct gw_http_head *c = malloc(h->size);
    if (!c)
        return NULL;
    memcpy(c, h, h->size);
    c->method = rebase(h->method, h, c);
    c->target = rebase(h->target, h, c);
    c->reason = rebase(h->reason, h, c);
    c->headers = (struct gw_http_header *)(void *)((char *)c + ((char *)h->headers - (char *)h));
    for (size_t i = 0; i < c->nheaders; i++) {
        c->headers[i].name = rebase(h->headers[i].name, h, c);
        c->headers[i].value = rebase(h->headers[i].value, h, c);
    }
    return c;
}

const char *gw_http_head_get(const struct gw_http_head *h, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < h->nheaders; i++) {
        if (h->headers[i].name_len == nl &&
            gw__http_ieq(h->headers[i].name, h->headers[i].name_len, name)) {
            if (len)
                *len = h->headers[i].value_len;
            return h->headers[i].value;
        }
    }
    return NULL;
}

size_t gw_http_head_count(const struct gw_http_head *h, const char *name)
{
    size_t n = 0, nl = strlen(name);
    for (size_t i = 0; i < h->nheaders; i++)
        if (h->headers[i].name_len == nl &&
            gw__http_ieq(h->headers[i].name, h->headers[i].name_len, name))
            n++;
    return n;
}

const char *gw_http_head_get_only(const struct gw_http_head *h, const char *name, size_t *len,
                                  size_t *count)
{
    size_t n = 0, nl = strlen(name);
    const struct gw_http_header *first = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (h->headers[i].name_len == nl &&
            gw__http_ieq(h->headers[i].name, h->headers[i].name_len, name) && n++ == 0)
            first = &h->headers[i];
    }
    *count = n;
    if (n != 1)
        return NULL;
    if (len)
        *len = first->value_len;
    return first->value;
}

bool gw_http_head_has_token(const struct gw_http_head *h, const char *name, const char *token)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct gw_http_header *f = &h->headers[i];
        if (!gw__http_ieq(f->name, f->name_len, name))
            continue;
        size_t pos = 0, tl;
        const char *t;
        while (gw__http_list_next(f->value, f->value_len, &pos, &t, &tl))
            if (gw__http_ieq(t, tl, token))
                return true;
    }
    return false;
}
