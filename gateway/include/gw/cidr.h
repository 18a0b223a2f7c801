/*
 * cidr.h: IP addresses and CIDR blocks as the configuration names them
 * (a listener's trusted_proxies, an ip_rules policy's allow and deny).
 *
 * An address is IPv4 or IPv6. An IPv4-mapped IPv6 address (::ffff:a.b.c.d,
 * which a dual-stack socket reports for an IPv4 client) is the IPv4 address
 * it carries, in an address and in a block alike: "::ffff:10.0.0.0/104" is
 * 10.0.0.0/8. A block of one family never matches an address of the other,
 * so "::/0" is every IPv6 client and no IPv4 one. Pure functions over
 * caller-owned data: any thread, never block, never allocate.
 */
#ifndef GW_CIDR_H
#define GW_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jpos/json.h"

struct gw_ip {
    uint8_t family;   /* 4 or 6 */
    uint8_t addr[16]; /* network order; IPv4 uses the first 4 bytes, the rest are 0 */
};

struct gw_cidr {
    struct gw_ip ip; /* bits past the prefix are 0 */
    uint8_t bits;    /* prefix length: 0..32 (IPv4), 0..128 (IPv6) */
};

/* Longest address or block text, brackets and zone excluded: an IPv6
 * address in its longest form ("ffff:...:255.255.255.255") and "/128". */
#define GW_CIDR_TEXT_MAX 50
/* gw_ip_text's output, NUL included (INET6_ADDRSTRLEN). */
#define GW_IP_TEXT_SIZE 46

/* Reads n bytes of s: an IPv4 address in dotted-quad form or an IPv6
 * address (no brackets, no zone). 0 or -EINVAL. */
int gw_ip_parse(const char *s, size_t n, struct gw_ip *out);

/* Reads "ADDRESS/BITS", or a bare address (one host: /32, /128). -EINVAL
 * when it is not one, -EDOM when the address has bits set past the prefix
 * ("10.0.0.1/8": *out still gets the block, 10.0.0.0/8, for a hint),
 * -ERANGE for an IPv4-mapped block shorter than /96 (it would span both
 * families). */
int gw_cidr_parse(const char *s, size_t n, struct gw_cidr *out);

/* Whether ip lies in one of the n blocks. */
bool gw_cidr_match(const struct gw_cidr *blocks, size_t n, const struct gw_ip *ip);

/* Writes ip in its usual text form (inet_ntop) into buf[0..cap); cap of
 * at least GW_IP_TEXT_SIZE always fits. 0 or -ENOSPC. */
int gw_ip_text(const struct gw_ip *ip, char *buf, size_t cap);
int gw_cidr_text(const struct gw_cidr *c, char *buf, size_t cap); /* "10.0.0.0/8" */

/* Reads array v of at most max blocks into a new array (*out, *n; NULL and
 * 0 when empty; the caller frees *out), reporting each element that is not
 * a block in d, at the element, with a hint where one helps. 0 (errors
 * reported: check d), -ENOMEM. */
int gw_cidr_list_read(struct jpos_diags *d, const struct jpos_val *v, size_t max,
                      struct gw_cidr **out, size_t *n);

#endif
