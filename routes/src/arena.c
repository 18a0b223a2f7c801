/*
 * arena.c: a bump allocator for everything a route table keeps. A table is
 * built once and freed whole, so individual frees are never needed; chunks
 * grow geometrically up to 1 MiB and larger requests get a chunk of their own.
 */
#include <stdlib.h>
#include <string.h>

#include "route_int.h"

struct route__chunk {
    struct route__chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define CHUNK_MIN 4096
#define CHUNK_MAX (1u << 20)

void *route__arena_alloc(struct route__arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct route__chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = c ? c->size * 2 : CHUNK_MIN;
        if (size > CHUNK_MAX)
            size = CHUNK_MAX;
        if (size < n)
            size = n;
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->size = size;
        c->used = 0;
        /* A big one-off chunk goes behind the current one so that the rest
         * of the current chunk stays usable. */
        if (a->head && size == n && a->head->size - a->head->used >= 16) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
        a->bytes += size;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *route__arena_strndup(struct route__arena *a, const char *s, size_t n)
{
    char *p = route__arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *route__arena_strdup(struct route__arena *a, const char *s)
{
    return route__arena_strndup(a, s, strlen(s));
}

void route__arena_free(struct route__arena *a)
{
    struct route__chunk *c = a->head;
    while (c) {
        struct route__chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->bytes = 0;
}
