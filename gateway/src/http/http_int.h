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

#endif
