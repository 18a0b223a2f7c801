/*
 * client_addr.h: who the client of a request is, as the gateway believes
 * it: the peer, or behind a trusted proxy the right-most X-Forwarded-For
 * hop that is not one (client_addr.c).
 */
#ifndef GW_CLIENT_ADDR_H
#define GW_CLIENT_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "gw/cidr.h"
#include "gw/http1.h"

/* X-Forwarded-For hops looked at, from the right, and the longest hop read
 * (an address with brackets and a port); both bounded because the field is
 * the client's to write. */
#define GW_XFF_MAX_HOPS 32
#define GW_XFF_HOP_MAX 64

/* The client of request h from peer `peer` (text, as the connection has
 * it) on a listener trusting the n blocks `trusted`. When the peer is not
 * trusted (or not an IP address), the peer. Else X-Forwarded-For (every
 * line, in order, as one list) is walked from the right: each hop that is
 * trusted is passed over, the first one that is not is the client; when
 * every hop is trusted, the left-most; without the field, the peer. A hop
 * that is not an address ("unknown", garbage) ends the walk at the last
 * address believed. Hops are an address, "[v6]", or either with ":port";
 * empty list elements are skipped; at most GW_XFF_MAX_HOPS hops are read
 * (the walk ends at the last one read) and a hop longer than GW_XFF_HOP_MAX
 * bytes is garbage. Writes the client's text (gw_ip_text's form, or the
 * peer's as given) into out[0..cap), cap >= GW_IP_TEXT_SIZE, and whether
 * the peer is trusted into *peer_trusted. Pure; any thread. */
void gw__client_resolve(const struct gw_cidr *trusted, size_t n, const char *peer,
                        const struct gw_http_head *h, char *out, size_t cap, bool *peer_trusted);

#endif
