/* tls_test.h: what the TLS unit tests share: paths into the certificate
 * set tests/lib/tlscerts.py makes (its "standard set"). */
#ifndef TLS_TEST_H
#define TLS_TEST_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* A path in the standard set's directory; the last 32 stay valid. */
static inline char *P(const char *name)
{
    static char paths[32][4096];
    static int npaths;
    const char *dir = getenv("TANDEM_TEST_CERTS");
    ck_assert_msg(dir != NULL, "run under tests/lib/tlscerts.py run");
    char *p = paths[npaths++ % 32];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

#endif
