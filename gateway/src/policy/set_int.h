/*
 * set_int.h: what the policy module's files share beyond policy.h (the
 * loader's checks, for the kinds and the tests; the configuration's hold on
 * a set before it is published).
 */
#ifndef GW_POLICY_SET_INT_H
#define GW_POLICY_SET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

#include "policy.h"

/* Frees a kind's list of n strings, each from malloc, and the array (v
 * may be NULL). */
void gw__pol_strv_free(char **v, size_t n);
/* Starts reading v, a JSON array of at most max strings, into a list:
 * drops the list in *out (of *n strings), then gives *out room for every element and
 * *n = 0, for the caller to append the ones it keeps. 1 to read them, 0
 * when v is not such an array (reported in d: "at most max what"),
 * -ENOMEM. */
int gw__pol_strv_start(struct jpos_diags *d, const struct jpos_val *v, int max, const char *what,
                       char ***out, size_t *n);

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
 * Called once per set. 0, -EINVAL (reported in d: a consumer's header or
 * a policy's field of that name, or more than GW_POL_MAX_OWNED names),
 * -ENOMEM. */
int gw__pol_set_consumer_header(struct gw_pol_set *s, const char *name, struct jpos_diags *d);
/* The configured field, or NULL. */
const char *gw__pol_set_consumer_field(const struct gw_pol_set *s);

/* The fields a forwarded request carries for the policies (gw_http_fwd's
 * owned list), appended to out[0..n) up to cap: rq's fields for the
 * upstream with their values (rq may be NULL: a route without policies),
 * then every name `pols` owns without a value, so that a client's copy
 * never passes, on any route. Returns the new count. */
size_t gw__pol_owned_fields(const struct gw_pol_req *rq, const struct gw_pol_set *pols,
                            struct gw_http_kv *out, size_t n, size_t cap);
/* Whether field name `name` is Vary (any case): the first byte before the
 * call, as the chain's other fields (RateLimit, Access-Control-*) are told
 * apart there on every request. */
static inline bool gw__pol_is_vary(const char *name)
{
    return (name[0] | 0x20) == 'v' && strcasecmp(name, "vary") == 0;
}

/* Splits a chain's response fields (n of `f`) into a relayed response's
 * edits: appended to set[0..*nset) (they replace the upstream's fields of
 * their names), but Vary, a list the upstream's own entries belong to,
 * appended to add[0..*nadd). Each array has room for n more. */
void gw__pol_resp_split(const struct gw_http_kv *f, size_t n, struct gw_http_kv *set, size_t *nset,
                        struct gw_http_kv *add, size_t *nadd);

#endif
