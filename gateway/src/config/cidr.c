/*
 * cidr.c: IP addresses and CIDR blocks (gw/cidr.h). Parsing goes through
 * inet_pton, which takes only the canonical forms (four decimal parts for
 * IPv4: no octal, hex or short forms that other parsers read differently);
 * IPv4-mapped IPv6 is folded into IPv4 so that a dual-stack listener's
 * clients match the IPv4 blocks written for them.
 */
#include "gw/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int gw_ip_parse(const char *s, size_t n, struct gw_ip *out)
{
    char buf[GW_CIDR_TEXT_MAX + 1];
    if (!n || n > GW_CIDR_TEXT_MAX || memchr(s, 0, n))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = 0;
    struct gw_ip ip = {0};
    if (inet_pton(AF_INET, buf, ip.addr) == 1) {
        ip.family = 4;
    } else if (inet_pton(AF_INET6, buf, ip.addr) == 1) {
        ip.family = 6;
        if (memcmp(ip.addr, v4mapped, sizeof v4mapped) == 0) {
            memmove(ip.addr, ip.addr + 12, 4);
            memset(ip.addr + 4, 0, 12);
            ip.family = 4;
        }
    } else {
        return -EINVAL;
    }
    *out = ip;
    return 0;
}

/* Clears the bits of ip past `bits`; true when some were set. */
static bool mask(struct gw_ip *ip, unsigned bits)
{
    bool dirty = false;
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
        uint8_t m = (uint8_t)(keep ? 0xff << (8 - keep) : 0);
        dirty |= (ip->addr[i] & (uint8_t)~m) != 0;
        ip->addr[i] &= m;
    }
    return dirty;
}

int gw_cidr_parse(const char *s, size_t n, struct gw_cidr *out)
{
    const char *slash = memchr(s, '/', n);
    size_t alen = slash ? (size_t)(slash - s) : n;
    struct gw_ip ip;
    if (gw_ip_parse(s, alen, &ip) < 0)
        return -EINVAL;
    bool mapped = ip.family == 4 && memchr(s, ':', alen);
    unsigned max = ip.family == 4 && !mapped ? 32 : 128;
    unsigned bits = max;
    if (slash) {
        const char *d = slash + 1, *end = s + n;
        if (d == end || end - d > 3 || (*d == '0' && end - d > 1))
            return -EINVAL;
        bits = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return -EINVAL;
            bits = bits * 10 + (unsigned)(*d - '0');
        }
        if (bits > max)
            return -EINVAL;
    }
    int rc = 0;
    if (mapped) {
        if (bits < 96) {
            /* Spans IPv4 and IPv6 space at once: not what anyone means. */
            return -ERANGE;
        }
        bits -= 96;
    }
    if (mask(&ip, bits))
        rc = -EDOM;
    *out = (struct gw_cidr){.ip = ip, .bits = (uint8_t)bits};
    return rc;
}

static bool in_block(const struct gw_cidr *c, const struct gw_ip *ip)
{
    if (c->ip.family != ip->family)
        return false;
    unsigned whole = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->ip.addr, ip->addr, whole) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    return (ip->addr[whole] & m) == c->ip.addr[whole];
}

bool gw_cidr_match(const struct gw_cidr *blocks, size_t n, const struct gw_ip *ip)
{
    for (size_t i = 0; i < n; i++)
        if (in_block(&blocks[i], ip))
            return true;
    return false;
}

int gw_ip_text(const struct gw_ip *ip, char *buf, size_t cap)
{
    char tmp[GW_IP_TEXT_SIZE];
    if (!inet_ntop(ip->family == 4 ? AF_INET : AF_INET6, ip->addr, tmp, sizeof tmp))
        return -EINVAL;
    size_t n = strlen(tmp);
    if (n >= cap)
        return -ENOSPC;
    memcpy(buf, tmp, n + 1);
    return 0;
}

int gw_cidr_text(const struct gw_cidr *c, char *buf, size_t cap)
{
    char a[GW_IP_TEXT_SIZE];
    if (gw_ip_text(&c->ip, a, sizeof a) < 0)
        return -EINVAL;
    int n = snprintf(buf, cap, "%s/%u", a, (unsigned)c->bits);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

int gw_cidr_list_read(struct jpos_diags *d, const struct jpos_val *v, size_t max,
                      struct gw_cidr **out, size_t *nout)
{
    if (!jpos_array(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (n > max) {
        jpos_err(d, v, "has %zu entries; at most %zu", n, max);
        return 0;
    }
    if (!n)
        return 0;
    struct gw_cidr *list = calloc(n, sizeof *list);
    if (!list)
        return -ENOMEM;
    size_t k = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, GW_CIDR_TEXT_MAX, &s, &len))
            continue;
        struct gw_cidr c;
        int rc = gw_cidr_parse(s, len, &c);
        if (rc == -EDOM) {
            char hint[GW_CIDR_TEXT_MAX + 8];
            gw_cidr_text(&c, hint, sizeof hint);
            jpos_err(d, &m, "\"%s\" has address bits set past its prefix; did you mean \"%s\"?", s,
                     hint);
        } else if (rc == -ERANGE) {
            jpos_err(d, &m,
                     "\"%s\" is an IPv4-mapped block shorter than /96, which would span IPv4 "
                     "and IPv6; write the IPv4 block (\"10.0.0.0/8\")",
                     s);
        } else if (rc < 0) {
            jpos_err(d, &m,
                     "\"%s\" is not a CIDR block: an IPv4 or IPv6 address, optionally with "
                     "\"/bits\" (\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\")",
                     s);
        } else {
            list[k++] = c;
        }
    }
    if (!k) {
        free(list);
        list = NULL;
    }
    *out = list;
    *nout = k;
    return 0;
}
