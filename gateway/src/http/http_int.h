/* http_int.h: helpers shared by the files of gateway/src/http/.
 *
 * Character classes from RFC 9110 §5.6.2 (tchar) and §5.5 (field-vchar),
 * ASCII case-insensitive comparisons, and the list walker used for
 * Connection, Transfer-Encoding and similar comma-separated fields. No
 * state, no allocation: safe from any thread.
 */
#ifndef GW_HTTP_INT_H
#define GW_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/http1.h"

/* tchar: "!#$%&'*+-.^_`|~" DIGIT ALPHA */
bool gw__http_is_tchar(unsigned char c);

/* field-vchar or SP/HTAB: what may appear inside a field value. */
bool gw__http_is_value_char(unsigned char c);

char gw__http_lower(char c);

/* A transfer coding other than chunked that the gateway passes on. */
bool gw__http_coding_known(const char *t, size_t n);

/* ASCII case-insensitive equality of a[0..alen) and NUL-terminated b. */
bool gw__http_ieq(const char *a, size_t alen, const char *b);

/* Walks a comma-separated list: skips OWS and empty elements, returns the
 * next element in [*tok, *tok + *toklen) (trailing OWS removed) and advances
 * *pos; false at the end. */
bool gw__http_list_next(const char *s, size_t len, size_t *pos, const char **tok, size_t *toklen);

/* Host field value or absolute-form authority: reg-name (unreserved
 * characters) or [IP-literal], optional :port of up to 5 digits. */
bool gw__http_host_valid(const char *v, size_t n);

/* The head writers' output: a caller's buffer that is never written past.
 * An append that does not fit sets `overflow`, and nothing is written
 * after it (the writer then fails with -ENOSPC rather than truncate). */
struct gw__http_out {
    char *buf;
    size_t cap, len;
    bool overflow;
};

void gw__http_put(struct gw__http_out *o, const char *s, size_t n);
void gw__http_puts(struct gw__http_out *o, const char *s);
void gw__http_put_u64(struct gw__http_out *o, uint64_t v);
/* "name: value\r\n" */
void gw__http_field(struct gw__http_out *o, const char *name, const char *v, size_t vn);

/* What becomes of a field a head writer copies (forward.c, field_rules:
 * one row per field name). */
enum {
    GW__HTTP_F_HOP = 1u,     /* hop-by-hop (RFC 9110 §7.6.1): never crosses the gateway */
    GW__HTTP_F_OWNED = 2u,   /* written by the gateway from its own knowledge: never copied, never
                              * removable by a Connection field or set by a route edit */
    GW__HTTP_F_DROPPED = 4u, /* about the client or what it addressed (scheme, host, address,
                              * path), which frameworks trust: a client's copy is never passed on;
                              * the gateway does not write it, a route edit may */
};

/* Copies the end-to-end fields of h, skipping those with a flag in `skip`,
 * Connection-named ones and those a route edit drops; `keep_upgrade` keeps
 * Upgrade for a tunnel (forward.c). */
void gw__http_copy_fields(struct gw__http_out *o, const struct gw_http_head *h, bool keep_upgrade,
                          const struct gw_http_edits *e, unsigned skip);
/* Writes a route's `set` and `add` fields. */
void gw__http_put_edits(struct gw__http_out *o, const struct gw_http_edits *e);
/* Writes Transfer-Encoding: <codings of h other than chunked>, chunked. */
void gw__http_put_te_chunked(struct gw__http_out *o, const struct gw_http_head *h);

#endif
