/*
 * ip_rules.h: the `ip_rules` kind's decision, apart from answering, for
 * its tests (ip_rules.c says what the kind owns).
 */
#ifndef GW_POLICY_IP_RULES_H
#define GW_POLICY_IP_RULES_H

#include <stdbool.h>

/* Whether client address `client` (text; NULL or not an address: matches
 * no block) may pass the compiled policy `state`. Pure. */
bool gw__ip_rules_allow(const void *state, const char *client);

#endif
