/*
 * client_addr.c: the client address a request is judged by (IP rules, rate
 * limits by client, the access log, X-Real-IP upstream). A listener's
 * trusted_proxies name the peers whose X-Forwarded-For is believed; the
 * field is the client's to write, so it is read from the right, where each
 * trusted proxy appended the address it saw, and only as far as trusted
 * proxies vouch for it.
 */
#include "client_addr.h"

#include <string.h>
#include <strings.h>

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool digits(const char *s, size_t n)
{
    if (!n || n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* One hop: "addr", "[v6]", "v4:port" or "[v6]:port". */
static bool hop_parse(const char *s, size_t n, struct gw_ip *ip)
{
    if (n > GW_XFF_HOP_MAX)
        return false;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return false;
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest && !(close[1] == ':' && digits(close + 2, rest - 1)))
            return false;
        /* An IPv6 literal, which may be IPv4-mapped (then parsed as the
         * IPv4 address it carries), never a bare IPv4 address. */
        size_t len = (size_t)(close - s - 1);
        return memchr(s + 1, ':', len) && gw_ip_parse(s + 1, len, ip) == 0;
    }
    const char *colon = memchr(s, ':', n);
    if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - s))) {
        /* one colon: an IPv4 address and a port */
        if (!digits(colon + 1, n - (size_t)(colon + 1 - s)))
            return false;
        return gw_ip_parse(s, (size_t)(colon - s), ip) == 0 && ip->family == 4;
    }
    return gw_ip_parse(s, n, ip) == 0;
}

static void copy_text(const char *s, char *out, size_t cap)
{
    size_t n = strnlen(s, cap - 1);
    memcpy(out, s, n);
    out[n] = 0;
}

void gw__client_resolve(const struct gw_cidr *trusted, size_t n, const char *peer,
                        const struct gw_http_head *h, char *out, size_t cap, bool *peer_trusted)
{
    struct gw_ip cur;
    *peer_trusted =
        n && gw_ip_parse(peer, strlen(peer), &cur) == 0 && gw_cidr_match(trusted, n, &cur);
    if (!*peer_trusted) {
        copy_text(peer, out, cap);
        return;
    }
    unsigned hops = 0;
    bool done = false;
    for (size_t i = h->nheaders; i-- > 0 && !done;) {
        const struct gw_http_header *f = &h->headers[i];
        if (f->name_len != 15 || strncasecmp(f->name, "x-forwarded-for", 15) != 0)
            continue;
        /* The list's elements from the right: [start, end) each. */
        size_t end = f->value_len;
        while (!done) {
            size_t start = end;
            while (start > 0 && f->value[start - 1] != ',')
                start--;
            size_t a = start, b = end;
            while (a < b && ows(f->value[a]))
                a++;
            while (b > a && ows(f->value[b - 1]))
                b--;
            if (a < b) {
                struct gw_ip hop;
                if (!hop_parse(f->value + a, b - a, &hop)) {
                    done = true; /* garbage: believe no further */
                    break;
                }
                cur = hop;
                if (++hops == GW_XFF_MAX_HOPS || !gw_cidr_match(trusted, n, &cur)) {
                    done = true;
                    break;
                }
            }
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    if (gw_ip_text(&cur, out, cap) < 0)
        copy_text(peer, out, cap);
}
