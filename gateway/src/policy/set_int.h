/*
 * set_int.h: what the policy module's files share beyond policy.h (the
 * loader's checks, for the kinds and the tests; the configuration's hold on
 * a set before it is published).
 */
#ifndef GW_POLICY_SET_INT_H
#define GW_POLICY_SET_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

/* The route-name alphabet, 1..GW_POL_NAME_MAX bytes. */
bool gw__pol_name_ok(const char *s, size_t len);
/* A field name a consumer or a policy may set upstream: a token, not one
 * the gateway writes itself (Host, framing, X-Forwarded-*, ...). *why
 * (static) when not. */
bool gw__pol_field_name_ok(const char *s, size_t len, const char **why);
/* "sha256:<64 hex>" into its 32 bytes; 0 or -EINVAL. */
int gw__pol_parse_key_hash(const char *s, size_t len, unsigned char out[32]);
/* "pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>" (limits in policy.h);
 * 0 or -EINVAL with *why (static). */
int gw__pol_parse_pbkdf2(const char *s, size_t len, struct gw_pol_pbkdf2 *out, const char **why);

/* Configuration the set carries once loaded, before it is published (the
 * loader's caller, config.c): the upstream field naming the authenticated
 * consumer (tandem.json policies.consumer_header), owned like the rest.
 * 0, -EINVAL (more than GW_POL_MAX_OWNED names), -ENOMEM. */
int gw__pol_set_consumer_header(struct gw_pol_set *s, const char *name);
/* The configured field, or NULL. */
const char *gw__pol_set_consumer_field(const struct gw_pol_set *s);

#endif
