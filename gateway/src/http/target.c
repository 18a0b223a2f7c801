/* target.c: request-target canonicalisation.
 *
 * The canonical path computed here is the one the router matches AND the
 * one sent upstream, so no backend can read a path the route table did not
 * see. Policy (also in README.md); the choices a listener or route may make
 * are in `struct gw_http_path_policy`, the default is the strictest:
 *
 *   forms      origin-form "/p?q"; absolute-form "http[s]://authority/p?q"
 *              (authority lowercased and returned for Host checks, userinfo
 *              refused); "*" for OPTIONS only; authority-form (CONNECT) and
 *              anything else refused.
 *   characters the path holds only pchar and "/" (RFC 3986): raw space,
 *              "#", "\", quotes, "<>", "{}", "|", "^", "`", "[]" are
 *              refused, and so are raw bytes >= 0x80 (RFC 9112 §3.2 allows
 *              none) unless the policy encodes raw UTF-8 for legacy
 *              clients: then valid UTF-8 is percent-encoded. ";" and "%3B"
 *              are refused by default because servlet containers strip
 *              ";params" from segments ("/admin;x" would reach /admin), some
 *              after decoding; params KEEP routes and forwards them as bytes
 *              (STRIP drops them with the rest of their segment: a backend's
 *              reading, never forwarded).
 *   escapes    %HH must be well formed. Escapes of unreserved characters
 *              (ALPHA DIGIT - . _ ~) are decoded ("/%61dmin" is "/admin",
 *              "%2e%2e" is ".."). Escapes of NUL and "\" are refused;
 *              "%2F" is refused, kept, or decoded into a "/" as the policy
 *              says. Escaped bytes >= 0x80 must form valid UTF-8 (overlong
 *              forms such as %C0%AE and surrogates are refused). Every other
 *              escape, other controls included, is kept with uppercase hex:
 *              the gateway never decodes it, so only a backend could.
 *   edges      no segment, and no piece of one between ";", "%2F" and
 *              "%3B", begins or ends with a control or a character some
 *              backend's trim removes ("/admin%20", "/%09admin",
 *              "/admin%C2%A0"), or ends with "." ("/admin.", which Windows
 *              and IIS serve as "/admin"; a listener may keep trailing
 *              dots): trimmed, they would name another resource than the
 *              one routed.
 *   segments   empty segments are merged ("//admin" is "/admin"); "." is
 *              removed; ".." removes the previous segment, and ".." above
 *              the root is refused. A trailing "/" is kept.
 *   query      not used for routing, kept as received: any visible ASCII
 *              but "#", escapes well formed; raw bytes >= 0x80 as in the
 *              path.
 */
#include "gw/http1.h"
#include "http_int.h"

#include <errno.h>
#include <string.h>
#include <sys/types.h>

static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* pchar minus ";" and "%" (escapes are handled apart). */
static bool is_path_char(unsigned char c)
{
    return is_unreserved(c) || (c != 0 && strchr("!$&'()*+,=:@", c) != NULL);
}

/* Length of a valid UTF-8 sequence starting at s[0] (n bytes available), 0
 * when invalid: overlong, surrogate, above U+10FFFF or truncated. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Checks that the escaped bytes >= 0x80 starting at in[i] (a run of %HH)
 * form valid UTF-8. Returns the number of input bytes of the run or 0. */
static size_t check_utf8_run(const char *in, size_t n, size_t i)
{
    unsigned char bytes[4];
    int h, l;
    size_t k = 0;
    while (k < 4 && i + 3 * k + 2 < n + 0 && in[i + 3 * k] == '%') {
        h = gw_http_hexval((unsigned char)in[i + 3 * k + 1]);
        l = gw_http_hexval((unsigned char)in[i + 3 * k + 2]);
        if (h < 0 || l < 0)
            break;
        bytes[k] = (unsigned char)(h * 16 + l);
        if (k > 0 && bytes[k] < 0x80)
            break;
        k++;
        size_t need = utf8_len(bytes, k);
        if (need)
            return 3 * k;
    }
    return 0;
}

static const char hexdig[] = "0123456789ABCDEF";

/* Characters that some backend's trim function removes, or that are
 * controls: a segment may neither begin nor end with one (README.md, "Path
 * segment edges"). C0 controls, space, DEL and C1 controls; the rest is
 * Unicode White_Space (Go's strings.TrimSpace, Python's str.strip, .NET's
 * Trim, JavaScript's trim) plus U+180E, U+200B and U+FEFF, which older
 * versions of those trim too. */
static bool is_edge_trimmed(unsigned cp)
{
    if (cp <= 0x20 || (cp >= 0x7f && cp <= 0xa0))
        return true;
    if (cp == 0x1680 || cp == 0x180e || (cp >= 0x2000 && cp <= 0x200b))
        return true;
    return cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 ||
           cp == 0xfeff;
}

/* The character at s[j] of a canonical segment s[0..n) (pchar, ";" and %HH
 * only, escaped bytes >= 0x80 forming valid UTF-8): its code point in *cp,
 * whether it delimits a piece of the segment for a backend in *delim (";",
 * "%2F" and "%3B": path parameters are split off, by some backends after
 * decoding), and its length in bytes. */
static size_t seg_char(const char *s, size_t n, size_t j, unsigned *cp, bool *delim)
{
    if (s[j] != '%') {
        *cp = (unsigned char)s[j];
        *delim = s[j] == ';';
        return 1;
    }
    unsigned v = (unsigned)(gw_http_hexval((unsigned char)s[j + 1]) * 16 +
                            gw_http_hexval((unsigned char)s[j + 2]));
    *delim = v == '/' || v == ';';
    if (v < 0x80) {
        *cp = v;
        return 3;
    }
    size_t len = v >= 0xf0 ? 4 : v >= 0xe0 ? 3 : 2;
    unsigned c = v & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
    for (size_t k = 1; k < len && j + 3 * k + 2 < n + 0; k++)
        c = (c << 6) | ((unsigned)(gw_http_hexval((unsigned char)s[j + 3 * k + 1]) * 16 +
                                   gw_http_hexval((unsigned char)s[j + 3 * k + 2])) &
                        0x3f);
    *cp = c;
    return 3 * len;
}

/* A piece of a segment that a backend which decodes "%2F" or strips
 * ";params" would read as a segment of its own: empty, "." or "..". */
static bool is_ambiguous_name(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

/* A piece of a segment that ends with "." (not "." or ".." themselves,
 * which are dot segments): Windows and IIS strip trailing dots, so
 * "/admin." would be served as "/admin". */
static bool ends_with_dot(const char *s, size_t n, const struct gw_http_path_policy *pol)
{
    return !pol->keep_trailing_dots && n > 0 && s[n - 1] == '.' && !is_ambiguous_name(s, n);
}

/* s[j..) starts the canonical escape "%3B" (an escaped ";"). */
static bool is_escaped_semicolon(const char *s, size_t n, size_t j)
{
    return j + 2 < n && s[j] == '%' && s[j + 1] == '3' && s[j + 2] == 'B';
}

/* Checks one canonical segment s[0..n) before dot segments are resolved:
 * no piece (between the segment's ends, ";", "%2F" and "%3B") begins or
 * ends with a trimmed character, or ends with "." (unless the policy keeps
 * trailing dots); under KEEP, no part between escaped slashes (slashes
 * KEEP), and no name before a ";" or "%3B" (params KEEP), is empty, "." or
 * "..". A segment with none of these delimiters needs no such check: it is
 * never empty here, and "." and ".." are resolved as dot segments. */
static int check_segment(const char *s, size_t n, const struct gw_http_path_policy *pol)
{
    bool at_start = true, prev_trimmed = false, has_delim = false;
    size_t piece = 0;
    for (size_t j = 0; j < n;) {
        unsigned cp;
        bool delim;
        size_t at = j;
        j += seg_char(s, n, j, &cp, &delim);
        if (delim) {
            if (prev_trimmed || ends_with_dot(s + piece, at - piece, pol))
                return -EINVAL;
            at_start = true;
            prev_trimmed = false;
            has_delim = true;
            piece = j;
            continue;
        }
        bool t = is_edge_trimmed(cp);
        if (at_start && t)
            return -EINVAL;
        at_start = false;
        prev_trimmed = t;
    }
    if (prev_trimmed || ends_with_dot(s + piece, n - piece, pol))
        return -EINVAL;
    bool split_slashes = pol->slashes == GW_HTTP_SLASHES_KEEP;
    bool split_params = pol->params == GW_HTTP_PARAMS_KEEP;
    if (!has_delim || (!split_slashes && !split_params))
        return 0;
    /* parts between escaped slashes; in each, the name before ";" */
    size_t part = 0, name_end = SIZE_MAX;
    for (size_t j = 0;; j++) {
        bool slash =
            split_slashes && j + 2 < n && s[j] == '%' && s[j + 1] == '2' && s[j + 2] == 'F';
        if (j == n || slash) {
            size_t end = name_end == SIZE_MAX ? j : name_end;
            if (is_ambiguous_name(s + part, end - part))
                return -EINVAL;
            if (j == n)
                break;
            j += 2;
            part = j + 1;
            name_end = SIZE_MAX;
        } else if (split_params && name_end == SIZE_MAX &&
                   (s[j] == ';' || is_escaped_semicolon(s, n, j))) {
            name_end = j;
        }
    }
    return 0;
}

/* STRIP: the end of the path parameters starting at in[i] (";" or "%3B"):
 * the next "/", or with decoded slashes the next "%2F", or n. -1 when an
 * escape in them is malformed. */
static ssize_t params_end(const char *in, size_t n, size_t i, bool decode_slashes)
{
    for (i++; i < n && in[i] != '/'; i++) {
        if (in[i] != '%')
            continue;
        int h = i + 2 < n ? gw_http_hexval((unsigned char)in[i + 1]) : -1;
        int l = i + 2 < n ? gw_http_hexval((unsigned char)in[i + 2]) : -1;
        if (h < 0 || l < 0)
            return -1;
        if (decode_slashes && h * 16 + l == '/')
            break;
        i += 2;
    }
    return (ssize_t)i;
}

/* Canonicalises path in[0..n) (starting with "/") into out under pol;
 * returns the length written or -EINVAL. out has room for 3 * n + 1 bytes.
 * Sets t->escaped_slash and t->params when the input held them. */
static int canon_path(const char *in, size_t n, char *out, const struct gw_http_path_policy *pol,
                      struct gw_http_target *t)
{
    size_t o = 0;
    size_t seg_start = 0; /* offset in out of the current segment's "/" */
    bool trailing = false;
    size_t i = 1;
    bool decode_slashes =
        pol->slashes == GW_HTTP_SLASHES_DECODE || pol->slashes == GW_HTTP_SLASHES_REDIRECT;

    for (;;) {
        /* one segment: in[i..) up to "/" (or a decoded "%2F") or the end */
        size_t sep = 0;
        seg_start = o;
        out[o++] = '/';
        while (i < n) {
            unsigned char c = (unsigned char)in[i];
            if (c == '/') {
                sep = 1;
                break;
            }
            if (c == '%') {
                int h = i + 2 < n ? gw_http_hexval((unsigned char)in[i + 1]) : -1;
                int l = i + 2 < n ? gw_http_hexval((unsigned char)in[i + 2]) : -1;
                if (h < 0 || l < 0)
                    return -EINVAL;
                unsigned char d = (unsigned char)(h * 16 + l);
                if (d == '/') {
                    if (pol->slashes == GW_HTTP_SLASHES_REFUSE)
                        return -EINVAL;
                    t->escaped_slash = true;
                    if (decode_slashes) {
                        sep = 3;
                        break;
                    }
                    out[o++] = '%';
                    out[o++] = '2';
                    out[o++] = 'F';
                    i += 3;
                } else if (is_unreserved(d)) {
                    out[o++] = (char)d;
                    i += 3;
                } else if (d == ';') {
                    /* an escaped ";": path parameters to the backends that
                     * decode before they split them off */
                    if (pol->params == GW_HTTP_PARAMS_REFUSE)
                        return -EINVAL;
                    t->params = true;
                    if (pol->params == GW_HTTP_PARAMS_STRIP) {
                        ssize_t e = params_end(in, n, i + 2, decode_slashes);
                        if (e < 0)
                            return -EINVAL;
                        i = (size_t)e;
                        continue;
                    }
                    out[o++] = '%';
                    out[o++] = '3';
                    out[o++] = 'B';
                    i += 3;
                } else if (d >= 0x80) {
                    size_t run = check_utf8_run(in, n, i);
                    if (!run)
                        return -EINVAL;
                    for (size_t k = 0; k < run; k += 3) {
                        int b = gw_http_hexval((unsigned char)in[i + k + 1]) * 16 +
                                gw_http_hexval((unsigned char)in[i + k + 2]);
                        out[o++] = '%';
                        out[o++] = hexdig[b >> 4];
                        out[o++] = hexdig[b & 15];
                    }
                    i += run;
                } else if (d == 0 || d == '\\' ||
                           (pol->refuse_controls && (d < 0x20 || d == 0x7f))) {
                    /* NUL truncates the path in C-string backends; "\" is a
                     * separator on some. Other controls are data (RFC 3986
                     * allows any escaped octet); at a segment's edge
                     * check_segment refuses them. */
                    return -EINVAL;
                } else {
                    out[o++] = '%';
                    out[o++] = hexdig[d >> 4];
                    out[o++] = hexdig[d & 15];
                    i += 3;
                }
            } else if (c >= 0x80) {
                /* raw bytes are not HTTP (RFC 9112 §3.2): refused, or for
                 * legacy clients, as valid UTF-8, escaped here */
                size_t ul =
                    pol->encode_raw_utf8 ? utf8_len((const unsigned char *)in + i, n - i) : 0;
                if (!ul)
                    return -EINVAL;
                for (size_t k = 0; k < ul; k++) {
                    unsigned char b = (unsigned char)in[i + k];
                    out[o++] = '%';
                    out[o++] = hexdig[b >> 4];
                    out[o++] = hexdig[b & 15];
                }
                i += ul;
            } else if (c == ';') {
                if (pol->params == GW_HTTP_PARAMS_REFUSE)
                    return -EINVAL;
                t->params = true;
                if (pol->params == GW_HTTP_PARAMS_STRIP) {
                    ssize_t e = params_end(in, n, i, decode_slashes);
                    if (e < 0)
                        return -EINVAL;
                    i = (size_t)e;
                    continue;
                }
                out[o++] = ';';
                i++;
            } else if (is_path_char(c)) {
                out[o++] = (char)c;
                i++;
            } else {
                return -EINVAL;
            }
        }
        size_t seg_len = o - seg_start - 1;
        const char *seg = out + seg_start + 1;
        if (check_segment(seg, seg_len, pol) < 0)
            return -EINVAL;
        trailing = false;
        if (seg_len == 0) {
            o = seg_start; /* empty segment: merged */
            trailing = true;
        } else if (seg_len == 1 && seg[0] == '.') {
            o = seg_start;
            trailing = true;
        } else if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
            o = seg_start;
            if (o == 0)
                return -EINVAL; /* above the root */
            while (o > 0 && out[o - 1] != '/')
                o--;
            o--; /* drop the "/" of the removed segment */
            trailing = true;
        }
        if (sep == 0)
            break;
        i += sep;
        if (i >= n) {
            trailing = true;
            break;
        }
    }
    if (trailing || o == 0)
        out[o++] = '/';
    return (int)o;
}

/* The query is not used for routing: any visible ASCII but "#" passes,
 * escapes must be well formed, raw bytes >= 0x80 are refused unless the
 * policy encodes raw UTF-8. Returns the length written to out (room for
 * 3 * n bytes) or -EINVAL. */
static int canon_query(const char *q, size_t n, char *out, bool encode_raw_utf8)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)q[i];
        if (c == '%') {
            if (i + 2 >= n || gw_http_hexval((unsigned char)q[i + 1]) < 0 ||
                gw_http_hexval((unsigned char)q[i + 2]) < 0)
                return -EINVAL;
        } else if (c >= 0x80) {
            size_t ul = encode_raw_utf8 ? utf8_len((const unsigned char *)q + i, n - i) : 0;
            if (!ul)
                return -EINVAL;
            for (size_t k = 0; k < ul; k++) {
                unsigned char b = (unsigned char)q[i + k];
                out[o++] = '%';
                out[o++] = hexdig[b >> 4];
                out[o++] = hexdig[b & 15];
            }
            i += ul - 1;
            continue;
        } else if (c <= 0x20 || c == 0x7f || c == '#') {
            return -EINVAL;
        }
        out[o++] = (char)c;
    }
    return (int)o;
}

int gw_http_target_canon(const char *method, const char *target, size_t len, char *buf, size_t cap,
                         struct gw_http_target *out)
{
    return gw_http_target_canon_policy(NULL, method, target, len, buf, cap, out);
}

int gw_http_target_canon_policy(const struct gw_http_path_policy *policy, const char *method,
                                const char *target, size_t len, char *buf, size_t cap,
                                struct gw_http_target *out)
{
    static const struct gw_http_path_policy strict;
    const struct gw_http_path_policy *pol = policy ? policy : &strict;
    struct gw_http_target t = {.form = GW_HTTP_ORIGIN_FORM};
    size_t pos = 0, o = 0;

    if (cap < 3 * len + 2)
        return -ENOSPC;
    /* A gateway, not a forward proxy: CONNECT is refused whatever its
     * target (its authority form is refused below anyway). */
    if (method && strcmp(method, "CONNECT") == 0)
        return -EINVAL;
    if (len == 1 && target[0] == '*') {
        if (!method || strcmp(method, "OPTIONS") != 0)
            return -EINVAL;
        buf[0] = '*';
        buf[1] = 0;
        t.form = GW_HTTP_ASTERISK_FORM;
        t.path = buf;
        t.path_len = 1;
        *out = t;
        return 0;
    }
    if (len == 0)
        return -EINVAL;
    if (target[0] != '/') {
        size_t skip;
        if (len > 7 && gw__http_ieq(target, 7, "http://"))
            skip = 7;
        else if (len > 8 && gw__http_ieq(target, 8, "https://"))
            skip = 8;
        else
            return -EINVAL;
        size_t a = skip;
        while (a < len && target[a] != '/' && target[a] != '?' && target[a] != '#')
            a++;
        if (!gw__http_host_valid(target + skip, a - skip))
            return -EINVAL;
        for (size_t k = skip; k < a; k++)
            buf[o++] = gw__http_lower(target[k]);
        buf[o++] = 0;
        t.form = GW_HTTP_ABSOLUTE_FORM;
        t.authority = buf;
        t.authority_len = a - skip;
        pos = a;
    }
    /* The path: from pos up to "?" (or the end). */
    size_t q = pos;
    while (q < len && target[q] != '?')
        q++;
    char *path = buf + o;
    if (q == pos) {
        if (t.form != GW_HTTP_ABSOLUTE_FORM)
            return -EINVAL;
        path[0] = '/';
        path[1] = 0;
        t.path_len = 1;
    } else {
        int r = canon_path(target + pos, q - pos, path, pol, &t);
        if (r < 0)
            return r;
        path[r] = 0;
        t.path_len = (size_t)r;
    }
    t.path = path;
    o += t.path_len + 1;
    if (q < len) {
        size_t qn = len - q - 1;
        if (o + 3 * qn + 1 > cap)
            return -ENOSPC;
        int r = canon_query(target + q + 1, qn, buf + o, pol->encode_raw_utf8);
        if (r < 0)
            return r;
        buf[o + (size_t)r] = 0;
        t.query = buf + o;
        t.query_len = (size_t)r;
    }
    *out = t;
    return 0;
}
