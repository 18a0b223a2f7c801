/*
 * suites.c: ciphersuite names, apart from the rest of the module so that
 * the configuration's checks (config.c) link only this and libmbedtls.
 */
#include <string.h>

#include "tls_int.h"

/* mbedtls' id of suite `name` in either spelling (tls.h), or 0. */
int gw__tls_suite_id(const char *name)
{
    char n[128];
    size_t len = strlen(name);
    if (len >= sizeof n - 4)
        return 0;
    /* IANA's TLS 1.3 names have no key exchange: TLS_AES_128_GCM_SHA256
     * is mbedtls' TLS1-3-AES-128-GCM-SHA256. */
    size_t o = 0;
    if (strncmp(name, "TLS_", 4) == 0 && !strstr(name, "_WITH_")) {
        memcpy(n, "TLS1-3-", 7);
        o = 7;
        name += 4;
        len -= 4;
    }
    for (size_t i = 0; i <= len; i++)
        n[o + i] = name[i] == '_' ? '-' : name[i];
    return mbedtls_ssl_get_ciphersuite_id(n);
}

bool gw_tls_suite_known(const char *name)
{
    return gw__tls_suite_id(name) != 0;
}
