/*
 * kinds.c: the table of policy kinds, by type. Each kind lives in its own
 * file and adds one line here (and its extern above).
 */
#include <string.h>

#include "policy.h"

extern const struct gw_pol_kind gw__pol_kind_acl;
extern const struct gw_pol_kind gw__pol_kind_basic_auth;
extern const struct gw_pol_kind gw__pol_kind_key_auth;
extern const struct gw_pol_kind gw__pol_kind_jwt;
extern const struct gw_pol_kind gw__pol_kind_cors;
extern const struct gw_pol_kind gw__pol_kind_ip_rules;
extern const struct gw_pol_kind gw__pol_kind_rate_limit;
extern const struct gw_pol_kind gw__pol_kind_concurrency;

const struct gw_pol_kind *const gw_pol_kinds[] = {
    &gw__pol_kind_acl,        &gw__pol_kind_basic_auth,  &gw__pol_kind_key_auth,
    &gw__pol_kind_jwt,        &gw__pol_kind_cors,        &gw__pol_kind_ip_rules,
    &gw__pol_kind_rate_limit, &gw__pol_kind_concurrency,
};
const size_t gw_pol_nkinds = sizeof gw_pol_kinds / sizeof gw_pol_kinds[0];

const struct gw_pol_kind *gw_pol_kind_find(const char *type)
{
    for (size_t i = 0; i < gw_pol_nkinds; i++)
        if (strcmp(gw_pol_kinds[i]->type, type) == 0)
            return gw_pol_kinds[i];
    return NULL;
}
