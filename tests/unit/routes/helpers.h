/* helpers.h: building tables from JSON text and matching in tests. */
#ifndef TEST_ROUTES_HELPERS_H
#define TEST_ROUTES_HELPERS_H

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "route/route.h"

static const char *const test_upstreams[] = {"demo", "payments", "users"};

/* Compiles one route file's text; NULL (and diagnostics in d) on errors. */
static inline struct route_table *build_table(const char *json, struct jpos_diags *d)
{
    struct route_builder *b;
    ck_assert_int_eq(route_builder_new(&b, test_upstreams, 3), 0);
    route_builder_add_text(b, "t.json", json, strlen(json), d);
    struct route_table *t = NULL;
    int r = route_builder_compile(b, &t, d);
    route_builder_free(b);
    return r == 0 ? t : NULL;
}

static inline struct route_table *build_ok(const char *json)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct route_table *t = build_table(json, &d);
    if (!t || d.nerrors)
        jpos_diags_print(&d, stderr);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(d.nerrors, 0);
    jpos_diags_done(&d);
    return t;
}

/* Fields in order of arrival; a name may appear more than once. */
struct test_headers {
    const char *names[8];
    const char *values[8];
};

static inline const char *test_header(void *ctx, const char *name, size_t len, size_t *pos,
                                      size_t *vlen)
{
    struct test_headers *h = ctx;
    for (size_t i = *pos; i < 8 && h->names[i]; i++)
        if (strlen(h->names[i]) == len && strncasecmp(h->names[i], name, len) == 0) {
            *vlen = strlen(h->values[i]);
            *pos = i + 1;
            return h->values[i];
        }
    return NULL;
}

static inline void make_req(struct route_request *req, const char *method, const char *host,
                            const char *path, struct test_headers *h)
{
    memset(req, 0, sizeof(*req));
    req->method = method;
    req->method_len = strlen(method);
    req->host = host;
    req->host_len = host ? strlen(host) : 0;
    req->path = path;
    req->path_len = strlen(path);
    if (h) {
        req->header = test_header;
        req->header_ctx = h;
    }
}

/* The name of the route that wins, "404" or "405". */
static inline const char *winner_h(const struct route_table *t, const char *method,
                                   const char *host, const char *path, struct test_headers *h)
{
    struct route_request req;
    struct route_match m;
    make_req(&req, method, host, path, h);
    switch (route_table_match(t, &req, &m)) {
    case ROUTE_MATCHED:
        return m.route->name;
    case ROUTE_NO_METHOD:
        return "405";
    default:
        return "404";
    }
}

static inline const char *winner(const struct route_table *t, const char *method, const char *host,
                                 const char *path)
{
    return winner_h(t, method, host, path, NULL);
}

#endif
