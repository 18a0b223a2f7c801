/* lex.c: the lexical layer shared by the files of gateway/src/http/.
 *
 * Byte classes (RFC 9110 §5.6.2 tchar, §5.5 field-vchar, the bytes a
 * request-target may hold), ASCII case-insensitive comparison, the
 * comma-separated list walker, the Host syntax check and hex digits. The
 * scanner in parser.c, the head writers in forward.c and the target
 * canonicaliser in target.c all read bytes through these, so a byte means
 * the same thing everywhere. No state, no allocation: safe from any thread.
 */
#include "gw/http1.h"
#include "http_int.h"

#include <stddef.h>

/* --- character classes --------------------------------------------------- */

/* Bits as in http_int.h: 1 tchar, 2 field value, 4 request-target. */
const unsigned char gw__http_byte_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
};

bool gw__http_coding_known(const char *t, size_t n)
{
    static const char *const known[] = {"gzip",       "x-gzip",   "deflate", "compress",
                                        "x-compress", "identity", NULL};
    for (size_t i = 0; known[i]; i++)
        if (gw__http_ieq(t, n, known[i]))
            return true;
    return false;
}

bool gw__http_ieq(const char *a, size_t alen, const char *b)
{
    for (size_t i = 0; i < alen; i++) {
        /* b's end first, then equal bytes (the common case), then the one
         * difference case allows: bit 0x20 between two letters. */
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (!y)
            return false;
        if (x == y)
            continue;
        if ((x ^ y) != 0x20 || (unsigned char)((x | 0x20) - 'a') > 'z' - 'a')
            return false;
    }
    return b[alen] == 0;
}

bool gw__http_list_next(const char *s, size_t len, size_t *pos, const char **tok, size_t *toklen)
{
    size_t i = *pos;
    for (;;) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            i++;
        if (i >= len) {
            *pos = i;
            return false;
        }
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            end--;
        if (end > start) {
            *tok = s + start;
            *toklen = end - start;
            *pos = i;
            return true;
        }
    }
}

/* Host: reg-name / IP-literal, optional port; no userinfo, path or spaces. */
bool gw__http_host_valid(const char *v, size_t n)
{
    if (!n)
        return false;
    size_t i = 0;
    if (v[0] == '[') {
        while (i < n && v[i] != ']') {
            char c = v[i];
            if (i > 0 && !(gw_http_hexval((unsigned char)c) >= 0 || c == ':' || c == '.'))
                return false;
            i++;
        }
        if (i >= n)
            return false;
        i++;
    } else {
        while (i < n && v[i] != ':') {
            char c = v[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '.' || c == '_' || c == '~'))
                return false;
            i++;
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (v[i] != ':' || i + 1 == n || n - i - 1 > 5)
        return false;
    for (i++; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

int gw_http_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
