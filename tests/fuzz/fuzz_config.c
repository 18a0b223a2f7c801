/*
 * fuzz_config.c: libFuzzer target for the configuration loader
 * (gw_config_parse on tandem.json text, routes not read) and, when the input
 * holds a NUL byte, the route loader on the text after it, compiled against
 * the upstreams the configuration part defined.
 *
 * Whatever the input, the loaders must return 0 or -EINVAL with
 * diagnostics, never crash, leak or read out of bounds (ASan, LeakSanitizer).
 * Build: tests/fuzz/meson.build (-Dfuzz=true).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/config.h"
#include "route/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, 0, size);
    size_t clen = nul ? (size_t)(nul - text) : size;

    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_config *cfg = NULL;
    int rc = gw_config_parse("/nonexistent/tandem.json", text, clen, false, &cfg, &d);
    if (rc != 0 && rc != -EINVAL && rc != -ENOMEM) {
        fprintf(stderr, "gw_config_parse returned %d\n", rc);
        abort();
    }
    if (rc == -EINVAL && d.nerrors == 0) {
        fprintf(stderr, "refused without a diagnostic\n");
        abort();
    }
    jpos_diags_done(&d);

    if (nul) {
        static const char *const fallback[] = {"demo", "users"};
        const char *names[16];
        size_t n = 0;
        if (cfg)
            for (; n < cfg->nupstreams && n < 16; n++)
                names[n] = cfg->upstreams[n].name;
        jpos_diags_init(&d);
        struct route_builder *b = NULL;
        if (route_builder_new(&b, n ? names : fallback, n ? n : 2) == 0) {
            route_builder_add_text(b, "fuzz.json", nul + 1, size - clen - 1, &d);
            struct route_table *t = NULL;
            if (route_builder_compile(b, &t, &d) == 0)
                route_table_unref(t);
            route_builder_free(b);
        }
        jpos_diags_done(&d);
    }
    gw_config_free(cfg);
    return 0;
}
