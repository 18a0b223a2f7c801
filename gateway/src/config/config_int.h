/*
 * config_int.h: what config.c and keys.c share: the names config.c's
 * callbacks know the custom rows of the key tables by.
 */
#ifndef GW_CONFIG_INT_H
#define GW_CONFIG_INT_H

#include "gw/config.h"

enum gw__config_key {
    GW__K_NONE = 0,
    GW__K_SCHEMA,
    GW__K_RUNTIME,
    GW__K_LISTENERS,
    GW__K_ADMIN,
    GW__K_UPSTREAMS,
    GW__K_ROUTES,
    GW__K_LISTENER_NAME,
    GW__K_LISTENER_ADDRESS,
    GW__K_PATH_POLICY,
    GW__K_LIMITS,
    GW__K_ADMIN_ADDRESS,
    GW__K_TOKEN_ENV,
    GW__K_ALLOWED_HOSTS,
    GW__K_TARGETS,
    GW__K_TARGET_ADDRESS,
    GW__K_HEALTH,
    GW__K_PASSIVE,
    GW__K_ACTIVE,
    GW__K_ACTIVE_PATH,
    GW__K_WORKFLOWS,
    GW__K_WF_DIR,
    GW__K_WF_STATUS_PATH,
    GW__K_WF_JOURNAL,
    GW__K_WF_DATA_DIR,
    GW__K_WF_SQLITE_PATH,
    GW__K_WF_POSTGRES,
    GW__K_WF_CONNINFO_ENV,
    GW__K_WF_REPLICA_ID,
    GW__K_TLS,
    GW__K_TLS_CERTIFICATES,
    GW__K_TLS_CERT,
    GW__K_TLS_KEY,
    GW__K_TLS_NAMES,
    GW__K_TLS_CIPHERSUITES,
    GW__K_TLS_CLIENT_AUTH,
    GW__K_TLS_CLIENT_CA,
    GW__K_TLS_SUBJECT_HEADER,
    GW__K_TLS_FINGERPRINT_HEADER,
    GW__K_UPSTREAM_TLS,
    GW__K_UTLS_CA,
    GW__K_UTLS_SERVER_NAME,
    GW__K_UTLS_CERT,
    GW__K_UTLS_KEY,
    GW__K_POLICIES,
    GW__K_POL_DIR,
    GW__K_POL_CONSUMER_HEADER,
    GW__K_POL_REDIS,
    GW__K_REDIS_ADDRESS,
    GW__K_REDIS_PASSWORD_ENV,
    GW__K_TRUSTED_PROXIES,
};

/* Rows and sections config.c needs by themselves: the admin.address row
 * (its def_str is the admin API's default address), the routes row (its
 * def_str the default directory) and the section of a listener (whose
 * defaults the admin listener starts from). */
extern const struct jpos_key *const gw__admin_address_key;
extern const struct jpos_key *const gw__routes_key;
extern const struct jpos_section gw__listener_keys;

#endif
