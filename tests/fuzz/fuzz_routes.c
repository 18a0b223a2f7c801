/*
 * fuzz_routes.c: libFuzzer target for the route-file parser, validator and
 * compiler, and for matching against whatever compiles.
 *
 * Build and run (clang; from the repository root):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=c11 \
 *       -Iroutes/include -Iroutes/src tests/fuzz/fuzz_routes.c routes/src/[a-z]*.c \
 *       -ljansson -lpthread -o build-fuzz-routes
 *   mkdir -p /tmp/fuzz-routes && cp config/routes/[a-z]*.json /tmp/fuzz-routes/
 *   ./build-fuzz-routes -runs=200000 -max_len=4096 /tmp/fuzz-routes
 *
 * A bounded run (-runs=N) is what CI should use; crashes are written as
 * crash-* files (ignored by git).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "route/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const upstreams[] = {"demo", "payments", "users"};

static const char *const paths[] = {
    "/", "/hello", "/api", "/api/", "/api/x/y", "/users/42", "/static/a/b.css", "//", "/a//b",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jpos_diags d;
    struct route_builder *b;
    jpos_diags_init(&d);
    if (route_builder_new(&b, upstreams, 3) < 0)
        return 0;
    route_builder_add_text(b, "fuzz.json", (const char *)data, size, &d);
    struct route_table *t = NULL;
    if (route_builder_compile(b, &t, &d) == 0) {
        struct route_request req;
        struct route_match m;
        char buf[2048];
        memset(&req, 0, sizeof(req));
        req.method = "GET";
        req.method_len = 3;
        req.host = "api.example.com:8080";
        req.host_len = strlen(req.host);
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
            req.path = paths[i];
            req.path_len = strlen(paths[i]);
            if (route_table_match(t, &req, &m) == ROUTE_MATCHED)
                route_upstream_path(&m, &req, "q=1", 3, buf, sizeof(buf));
        }
        /* the input itself as a path, when it looks like one */
        if (size && data[0] == '/' && size < 1024) {
            req.path = (const char *)data;
            req.path_len = size;
            if (route_table_match(t, &req, &m) == ROUTE_MATCHED)
                route_upstream_path(&m, &req, NULL, 0, buf, sizeof(buf));
        }
        route_table_unref(t);
    }
    route_builder_free(b);
    jpos_diags_done(&d);
    return 0;
}
