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

/* Walks a comma-separated list: skips OWS and empty elements, returns the
 * next element in [*tok, *tok + *toklen) (trailing OWS removed) and advances
 * *pos; false at the end. */
bool gw__http_list_next(const char *s, size_t len, size_t *pos, const char **tok, size_t *toklen);

/* Host field value or absolute-form authority: reg-name (unreserved
 * characters) or [IP-literal], optional :port of up to 5 digits. */
bool gw__http_host_valid(const char *v, size_t n);

#endif
