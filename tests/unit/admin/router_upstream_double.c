/*
 * router_upstream_double.c: TEST DOUBLE of the router (gw/router.h) and of
 * the upstream pools' description (gw/upstream.h) for the admin API's unit
 * tests. Not the real modules: every function answers fixed JSON carrying a
 * marker ("double": true) so the tests can assert that the admin handlers
 * pass what these modules say through, and records its arguments.
 *
 *   gw_router_reload      -EINVAL with one positioned error
 *   gw_router_replace     0, records the text it was given
 *   gw_router_validate    -EINVAL when the text is "bad", else 0
 *   gw_router_rollback    0 for versions 1..10 (recorded), else -ENOENT
 *   gw_router_status      a fixed table with two routes
 *   gw_upstreams_describe one upstream "demo" with two targets (as structs)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_double.h"
#include "gw/router.h"
#include "gw/upstream.h"

char t_double_replaced[256];
uint64_t t_double_rollback;

static int answer(char **json, const char *text)
{
    *json = strdup(text);
    return *json ? 0 : -ENOMEM;
}

int gw_router_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    return -ENOSYS;
}

void gw_router_reload_async(const char *source) {}

int gw_router_reload(const char *source, char **json)
{
    int rc = answer(json, "{\"double\": true, \"outcome\": \"error\", \"version\": 4, "
                          "\"routes\": 2, \"errors\": [{\"file\": \"routes/a.json\", "
                          "\"line\": 3, \"column\": 7, \"path\": \"$.routes[0]\", "
                          "\"message\": \"unknown upstream \\\"nope\\\"\"}]}");
    return rc < 0 ? rc : -EINVAL;
}

int gw_router_replace(const char *text, size_t len, char **json)
{
    snprintf(t_double_replaced, sizeof t_double_replaced, "%.*s", (int)len, text);
    return answer(json, "{\"double\": true, \"outcome\": \"ok\", \"version\": 5, "
                        "\"routes\": 1, \"errors\": []}");
}

int gw_router_validate(const char *text, size_t len, char **json)
{
    if (len == 3 && memcmp(text, "bad", 3) == 0) {
        int rc = answer(json, "{\"double\": true, \"outcome\": \"error\", \"version\": 4, "
                              "\"routes\": 0, \"errors\": [{\"file\": \"<body>\", \"line\": 1, "
                              "\"column\": 1, \"path\": \"$\", \"message\": \"not JSON\"}]}");
        return rc < 0 ? rc : -EINVAL;
    }
    return answer(json, "{\"double\": true, \"outcome\": \"ok\", \"version\": 4, "
                        "\"routes\": 1, \"errors\": []}");
}

int gw_router_rollback(uint64_t version, char **json)
{
    if (version < 1 || version > 10)
        return -ENOENT;
    t_double_rollback = version;
    char buf[160];
    snprintf(buf, sizeof buf,
             "{\"double\": true, \"outcome\": \"ok\", \"version\": %llu, \"routes\": 2, "
             "\"errors\": []}",
             (unsigned long long)version);
    return answer(json, buf);
}

int gw_router_status(char **json)
{
    return answer(json, "{\"double\": true, \"version\": 4, \"routes\": ["
                        "{\"name\": \"users\", \"file\": \"routes/a.json:2\"}, "
                        "{\"name\": \"orders\", \"file\": \"routes/a.json:9\"}], "
                        "\"versions\": [3, 4], \"last_reload\": {\"outcome\": \"ok\", "
                        "\"source\": \"startup\", \"errors\": []}}");
}

void gw_router_counts(struct gw_router_counts *out)
{
    out->reloads_ok = 7;
    out->reloads_failed = 2;
    out->version = 4;
}

static const struct gw_target_desc demo_targets[2] = {
    {.address = "127.0.0.1:9000",
     .weight = 1,
     .healthy = true,
     .active = 2,
     .idle = 3,
     .requests = 10},
    {.address = "127.0.0.1:9001",
     .weight = 1,
     .healthy = false,
     .ejected_until_ms = 123,
     .consecutive_failures = 5,
     .requests = 4,
     .failures = 5,
     .ejections = 1,
     .last_error = "connect: \"refused\""},
};

int gw_upstreams_describe(struct gw_upstreams_desc **out)
{
    struct gw_upstreams_desc *d = calloc(1, sizeof(*d) + sizeof(d->ups[0]));
    if (!d)
        return -ENOMEM;
    d->ups = (struct gw_upstream_desc *)(d + 1);
    d->n = 1;
    d->ups[0] = (struct gw_upstream_desc){
        .name = "demo", .balance = GW_BALANCE_LEAST_CONN, .targets = demo_targets, .ntargets = 2};
    *out = d;
    return 0;
}

void gw_upstreams_desc_free(struct gw_upstreams_desc *d)
{
    free(d);
}
