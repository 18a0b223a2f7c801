/* http_int.h: the lexical layer (lex.c) shared by the files of
 * gateway/src/http/.
 *
 * Character classes from RFC 9110 §5.6.2 (tchar) and §5.5 (field-vchar),
 * ASCII case-insensitive comparisons, and the list walker used for
 * Connection, Transfer-Encoding and similar comma-separated fields. No
 * state, no allocation: safe from any thread. Hex digits are public
 * (gw_http_hexval in gw/http1.h): code outside this layer decodes escapes
 * too.
 */
#ifndef GW_HTTP_INT_H
#define GW_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gw/http1.h"

/* Byte classes, one table for the layer (lex.c): bit GW__HTTP_CL_TCHAR
 * tchar, GW__HTTP_CL_VALUE field value (field-vchar, SP, HTAB),
 * GW__HTTP_CL_TARGET request-target (any byte but CTLs, SP and DEL; bytes
 * >= 0x80 are judged by target.c). The scanner's fast paths test runs of
 * bytes against it directly. */
enum { GW__HTTP_CL_TCHAR = 1, GW__HTTP_CL_VALUE = 2, GW__HTTP_CL_TARGET = 4 };
extern const unsigned char gw__http_byte_class[256];

/* The classifiers below are inline because the head scanner calls them for
 * each byte it cannot take in a run. */

/* tchar: "!#$%&'*+-.^_`|~" DIGIT ALPHA */
static inline bool gw__http_is_tchar(unsigned char c)
{
    return (gw__http_byte_class[c] & GW__HTTP_CL_TCHAR) != 0;
}

/* field-vchar or SP/HTAB: what may appear inside a field value. */
static inline bool gw__http_is_value_char(unsigned char c)
{
    return (gw__http_byte_class[c] & GW__HTTP_CL_VALUE) != 0;
}

static inline char gw__http_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* A transfer coding other than chunked that the gateway passes on. */
bool gw__http_coding_known(const char *t, size_t n);

/* ASCII case-insensitive equality of a[0..alen) and NUL-terminated b. */
bool gw__http_ieq(const char *a, size_t alen, const char *b);

/* The same with a string literal as b: its length is compared first, so
 * that most fields are told apart without a call. */
#define GW__HTTP_IEQ_LIT(a, alen, lit) ((alen) == sizeof(lit) - 1 && gw__http_ieq(a, alen, lit))

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

/* Inline: a head is some seventy appends, most of them literals (": ",
 * "\r\n") whose length and copy the compiler then knows. */
static inline void gw__http_put(struct gw__http_out *o, const char *s, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static inline void gw__http_puts(struct gw__http_out *o, const char *s)
{
    gw__http_put(o, s, strlen(s));
}

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
/* Where the Connection fields of h that name fields to drop start: the
 * index of the first such field, or h->nheaders (forward.c). The parser
 * stores it in the head (connection_at); the writers read it from there. */
size_t gw__http_first_connection(const struct gw_http_head *h);

void gw__http_copy_fields(struct gw__http_out *o, const struct gw_http_head *h, bool keep_upgrade,
                          const struct gw_http_edits *e, unsigned skip);
/* Writes a route's `set` and `add` fields. */
void gw__http_put_edits(struct gw__http_out *o, const struct gw_http_edits *e);
/* Writes "Date: <now>" (date.c's per-thread cache). */
void gw__http_put_date(struct gw__http_out *o);
/* Writes a Date unless the fields copied from h with route edit e carry
 * one: the origin's Date is passed on (RFC 9110 §6.6.1); when it sent none,
 * or its own Connection field or the edit dropped it, the gateway's clock
 * stands in. */
void gw__http_put_date_unless_copied(struct gw__http_out *o, const struct gw_http_head *h,
                                     const struct gw_http_edits *e);
/* Writes Transfer-Encoding: <codings of h other than chunked>, chunked. */
void gw__http_put_te_chunked(struct gw__http_out *o, const struct gw_http_head *h);

/* SHA-1 (RFC 3174; websocket.c), for Sec-WebSocket-Accept only. Any
 * length; init, update as often as needed, final writes the 20 bytes. */
struct gw__http_sha1 {
    uint32_t h[5];
    uint64_t bytes;
    unsigned char block[64];
};
void gw__http_sha1_init(struct gw__http_sha1 *s);
void gw__http_sha1_update(struct gw__http_sha1 *s, const void *data, size_t len);
void gw__http_sha1_final(struct gw__http_sha1 *s, unsigned char out[20]);

#endif
