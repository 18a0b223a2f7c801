/*
 * linebuf.c: the bounded line writer (see linebuf.h). Every append checks
 * the room left before it writes a byte; numbers are formatted into a small
 * local array first so that they too are written whole or not at all.
 */
#include "linebuf.h"

#include <string.h>

void gw__linebuf_init(struct gw__linebuf *b, char *buf, size_t cap)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->full = false;
}

bool gw__linebuf_put(struct gw__linebuf *b, const char *s, size_t n)
{
    if (b->full || n > b->cap - b->len) {
        b->full = true;
        return false;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    return true;
}

bool gw__linebuf_puts(struct gw__linebuf *b, const char *s)
{
    return gw__linebuf_put(b, s, strlen(s));
}

/* Writes v in decimal, right-aligned, ending at end; returns the first byte. */
static char *decimal(char *end, uint64_t v)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

bool gw__linebuf_u64(struct gw__linebuf *b, uint64_t v)
{
    return gw__linebuf_u64_pad(b, v, 1);
}

bool gw__linebuf_i64(struct gw__linebuf *b, int64_t v)
{
    char tmp[24];
    char *end = tmp + sizeof tmp;
    /* Negated in unsigned arithmetic so that INT64_MIN has a magnitude. */
    char *p = decimal(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    if (v < 0)
        *--p = '-';
    return gw__linebuf_put(b, p, (size_t)(end - p));
}

bool gw__linebuf_u64_pad(struct gw__linebuf *b, uint64_t v, unsigned width)
{
    char tmp[24]; /* 20 digits at most */
    char *end = tmp + sizeof tmp;
    char *p = decimal(end, v);
    if (width > 20)
        width = 20;
    while ((size_t)(end - p) < width)
        *--p = '0';
    return gw__linebuf_put(b, p, (size_t)(end - p));
}

bool gw__linebuf_milli(struct gw__linebuf *b, uint64_t v)
{
    char tmp[32];
    char *end = tmp + sizeof tmp;
    char *p = decimal(end, v % 1000);
    while (end - p < 3)
        *--p = '0';
    *--p = '.';
    p = decimal(p, v / 1000);
    return gw__linebuf_put(b, p, (size_t)(end - p));
}

/* Length of the well-formed UTF-8 sequence starting at s (n bytes
 * available), or 0 when the byte at s starts none (Unicode Table 3-7). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* shorter forms are overlong */
        else if (c == 0xed)
            hi = 0x9f; /* U+D800..U+DFFF are surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

size_t gw__linebuf_utf8_len(const char *s, size_t n)
{
    return n ? utf8_len((const unsigned char *)s, n) : 0;
}

bool gw__linebuf_json(struct gw__linebuf *b, const char *s, size_t n, size_t max, bool *cut)
{
    static const char hex[] = "0123456789abcdef";
    if (!s) {
        if (max < 4) {
            b->full = true;
            return false;
        }
        return gw__linebuf_put(b, "null", 4);
    }
    size_t room = b->cap - b->len;
    if (b->full || room < 2 || max < 2) {
        b->full = true;
        return false;
    }
    /* The opening quote and the content end at `limit`: the closing quote
     * always has its byte. */
    size_t limit = (room < max ? room : max) - 1;
    const unsigned char *in = (const unsigned char *)s;
    char *o = b->buf + b->len;
    size_t w = 0, i = 0;
    o[w++] = '"';
    while (i < n) {
        unsigned char c = in[i];
        char esc[6];
        const char *piece = esc;
        size_t plen, used = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            plen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            plen = 6;
        } else if (c < 0x80) {
            piece = s + i;
            plen = 1;
        } else if ((used = utf8_len(in + i, n - i)) > 0) {
            piece = s + i;
            plen = used;
        } else {
            piece = "\\ufffd";
            plen = 6;
            used = 1;
        }
        if (plen > limit - w) {
            if (cut)
                *cut = true;
            break;
        }
        memcpy(o + w, piece, plen);
        w += plen;
        i += used;
    }
    o[w++] = '"';
    b->len += w;
    return true;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (the civil_from_days
 * algorithm of H. Hinnant, "chrono-Compatible Low-Level Date Algorithms"):
 * a few integer operations. gmtime_r would do, but glibc's takes a
 * process-wide lock on every call, which every request process would then
 * contend for with its access-log line; the arithmetic needs neither that
 * nor a per-second cache. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468; /* days from 0000-03-01 to 1970-01-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153;                                    /* March is 0 */
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Writes v as exactly `width` digits ending at end (v < 10^width). */
static void digits(char *end, unsigned v, unsigned width)
{
    while (width--) {
        *--end = (char)('0' + v % 10);
        v /= 10;
    }
}

bool gw__linebuf_time(struct gw__linebuf *b, int64_t sec, uint32_t nsec)
{
    /* RFC 3339 has four-digit years: 0000-01-01T00:00:00 .. 9999-12-31T23:59:59. */
    const int64_t lo = -62167219200, hi = 253402300799;
    if (sec < lo || sec > hi) {
        nsec = sec < lo ? 0 : 999999999;
        sec = sec < lo ? lo : hi;
    }
    if (nsec > 999999999)
        nsec = 999999999;
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    char t[] = "0000-00-00T00:00:00.000Z";
    digits(t + 4, (unsigned)y, 4);
    digits(t + 7, mo, 2);
    digits(t + 10, d, 2);
    digits(t + 13, (unsigned)(rem / 3600), 2);
    digits(t + 16, (unsigned)(rem / 60 % 60), 2);
    digits(t + 19, (unsigned)(rem % 60), 2);
    digits(t + 23, nsec / 1000000, 3);
    return gw__linebuf_put(b, t, sizeof t - 1);
}
