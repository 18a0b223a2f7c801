/* test_config.c: tandem.json validation and defaults. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw/config.h"

static const struct jpos_diag *find(const struct jpos_diags *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->items[i].message, needle))
            return &d->items[i];
    jpos_diags_print(d, stderr);
    ck_abort_msg("no diagnostic contains \"%s\"", needle);
    return NULL;
}

static struct gw_config *parse_flags_ok(const char *json, unsigned flags)
{
    struct jpos_diags d;
    struct gw_config *cfg = NULL;
    jpos_diags_init(&d);
    int r = gw_config_parse("conf/tandem.json", json, strlen(json), flags, &cfg, &d);
    if (r)
        jpos_diags_print(&d, stderr);
    ck_assert_int_eq(r, 0);
    jpos_diags_done(&d);
    return cfg;
}

static struct gw_config *parse_ok(const char *json)
{
    return parse_flags_ok(json, 0);
}

static struct jpos_diags parse_flags_bad(const char *json, unsigned flags)
{
    struct jpos_diags d;
    struct gw_config *cfg = NULL;
    jpos_diags_init(&d);
    ck_assert_int_eq(gw_config_parse("conf/tandem.json", json, strlen(json), flags, &cfg, &d),
                     -EINVAL);
    ck_assert_ptr_null(cfg);
    return d;
}

static struct jpos_diags parse_bad(const char *json)
{
    return parse_flags_bad(json, 0);
}

/* The admin listener's values come from the key tables: the listener
 * defaults, then the fixed rows of gw_admin_listener_keys, each of which
 * names a listener key and writes the same field. */
START_TEST(admin_listener_takes_its_values_from_the_key_table)
{
    struct gw_config *cfg = parse_ok("{\"listeners\": [{\"address\": \"127.0.0.1:0\"}]}");
    const struct gw_listener_config *a = &cfg->admin.listener, *l = &cfg->listeners[0];
    ck_assert_uint_eq(a->max_connections, 256);
    ck_assert_uint_eq(a->max_body_bytes, 4u << 20);
    ck_assert_uint_eq(a->acceptors, 1);
    ck_assert_uint_eq(a->backlog, 128);
    ck_assert_uint_eq(a->body_timeout_ms, 60000);
    ck_assert_uint_eq(a->max_header_bytes, l->max_header_bytes);
    ck_assert_uint_eq(a->header_timeout_ms, l->header_timeout_ms);
    ck_assert_uint_eq(a->tunnel_idle_timeout_ms, l->tunnel_idle_timeout_ms);
    const struct jpos_section *ls = jpos_key_find(&gw_config_keys, "listeners")->sub;
    for (size_t i = 0; i < gw_admin_listener_keys.nkeys; i++) {
        const struct jpos_key *k = &gw_admin_listener_keys.keys[i];
        const struct jpos_key *row = jpos_key_find(ls, k->name);
        ck_assert_msg(row, "admin listener row %s names no listener key", k->name);
        ck_assert_uint_eq(row->offset, k->offset);
        ck_assert_uint_eq(row->size, k->size);
    }
    gw_config_free(cfg);
}
END_TEST

/* Every defaulted listener field is the table's default. */
START_TEST(listener_defaults_are_the_key_table_rows)
{
    struct gw_config *cfg = parse_ok("{\"listeners\": [{\"address\": \"127.0.0.1:0\"}]}");
    const struct jpos_section *ls = jpos_key_find(&gw_config_keys, "listeners")->sub;
    for (size_t i = 0; i < ls->nkeys; i++) {
        const struct jpos_key *k = &ls->keys[i];
        if (k->type != JPOS_T_INT)
            continue;
        long long v = 0;
        const char *p = (const char *)&cfg->listeners[0] + k->offset;
        if (k->size == 4)
            v = *(const uint32_t *)(const void *)p;
        else
            v = *(const int64_t *)(const void *)p;
        ck_assert_msg(v == k->def, "%s: %lld, table %lld", k->name, v, k->def);
    }
    gw_config_free(cfg);
}
END_TEST

/* The value of row k's field in base (INT, BOOL, CHOICE). */
static long long field_value(const struct jpos_key *k, const void *base)
{
    const char *p = (const char *)base + k->offset;
    switch (k->size) {
    case 1:
        return *(const bool *)(const void *)p;
    case 4:
        return *(const uint32_t *)(const void *)p;
    default:
        return *(const int64_t *)(const void *)p;
    }
}

/* Every field of section s in base holds its row's default, nested
 * sections too (at their row's field, or in base itself). */
static void check_defaults(const struct jpos_section *s, const void *base)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct jpos_key *k = &s->keys[i];
        if (k->type == JPOS_T_OBJECT && k->sub)
            check_defaults(k->sub,
                           k->offset == JPOS_NO_FIELD ? base : (const char *)base + k->offset);
        if ((k->type != JPOS_T_INT && k->type != JPOS_T_BOOL && k->type != JPOS_T_CHOICE) ||
            k->offset == JPOS_NO_FIELD)
            continue;
        ck_assert_msg(field_value(k, base) == k->def, "%s.%s: %lld, the table says %lld", s->where,
                      k->name, field_value(k, base), k->def);
    }
}

/* A configuration that leaves every key out gets each row's default, in
 * nested sections (runtime, path_policy, health) as in the others. */
START_TEST(every_default_is_its_key_table_row)
{
    struct gw_config *cfg =
        parse_ok("{\"listeners\": [{\"address\": \"127.0.0.1:0\"}], \"upstreams\": "
                 "{\"u\": {\"targets\": [{\"address\": \"127.0.0.1:1\"}]}}}");
    const struct jpos_section *ls = jpos_key_find(&gw_config_keys, "listeners")->sub;
    const struct jpos_section *us = jpos_key_find(&gw_config_keys, "upstreams")->sub;
    const struct jpos_section *ts = jpos_key_find(us, "targets")->sub;
    check_defaults(&gw_config_keys, cfg);
    check_defaults(ls, &cfg->listeners[0]);
    check_defaults(us, &cfg->upstreams[0]);
    check_defaults(ts, &cfg->upstreams[0].targets[0]);
    gw_config_free(cfg);
}
END_TEST

START_TEST(workflows_section_defaults_and_paths)
{
    struct gw_config *cfg = parse_ok("{\"listeners\":[{\"address\":\"0.0.0.0:8080\"}]}");
    const struct gw_workflows_config *w = &cfg->workflows;
    ck_assert_str_eq(w->dir, "conf/workflows");
    ck_assert_str_eq(w->status_path, "/workflows/");
    ck_assert_str_eq(w->data_dir, "conf/data");
    ck_assert_str_eq(w->sqlite_path, "conf/data/workflows.db");
    ck_assert_int_eq(w->backend, GW_WF_SQLITE);
    ck_assert(w->durable);
    ck_assert_uint_eq(w->lease_ms, 15000);
    ck_assert_uint_eq(w->max_running, 10000);
    ck_assert_ptr_null(w->pg_conninfo_env);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    ck_assert_ptr_nonnull(w->replica_id);
    if (host[0] && strlen(host) <= 128 && !strpbrk(host, " /"))
        ck_assert_str_eq(w->replica_id, host);
    gw_config_free(cfg);

    cfg = parse_ok("{\"listeners\":[{\"address\":\"0.0.0.0:8080\"}], \"workflows\": {\"dir\": "
                   "\"/etc/flows\", \"status_path\": \"/w/\", \"max_running\": 5, \"journal\": "
                   "{\"postgres\": {\"conninfo_env\": \"PGX\", \"lease_ms\": 2000}, \"backend\": "
                   "\"postgres\", \"data_dir\": \"/var/lib/tandem\", \"sqlite_path\": \"j.db\", "
                   "\"durable\": false, \"replica_id\": \"gw-1\"}}}");
    w = &cfg->workflows;
    ck_assert_str_eq(w->dir, "/etc/flows");
    ck_assert_str_eq(w->status_path, "/w/");
    ck_assert_uint_eq(w->max_running, 5);
    ck_assert_int_eq(w->backend, GW_WF_POSTGRES);
    ck_assert_str_eq(w->pg_conninfo_env, "PGX");
    ck_assert_uint_eq(w->lease_ms, 2000);
    ck_assert_str_eq(w->sqlite_path, "/var/lib/tandem/j.db");
    ck_assert(!w->durable);
    ck_assert_str_eq(w->replica_id, "gw-1");
    gw_config_free(cfg);

    /* the environment is checked only with GW_CONFIG_ENV, after the whole
     * journal object is read ("backend" comes after "postgres" here) */
    unsetenv("TANDEM_TEST_PG_UNSET");
    struct jpos_diags d = parse_flags_bad(
        "{\"listeners\":[{\"address\":\"0.0.0.0:8080\"}], \"workflows\": {\"journal\": "
        "{\"postgres\": {\"conninfo_env\": \"TANDEM_TEST_PG_UNSET\"}, \"backend\": "
        "\"postgres\"}, \"replica_id\": 1}}",
        GW_CONFIG_ENV);
    find(&d, "the environment variable TANDEM_TEST_PG_UNSET named by postgres.conninfo_env is "
             "not set");
    find(&d, "unknown key \"replica_id\" in workflows");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(minimal_config_gets_documented_defaults)
{
    struct gw_config *cfg = parse_ok("{\"listeners\":[{\"address\":\"0.0.0.0:8080\"}]}");
    ck_assert_uint_eq(cfg->nlisteners, 1);
    const struct gw_listener_config *l = &cfg->listeners[0];
    ck_assert_str_eq(l->name, "0.0.0.0:8080");
    ck_assert_str_eq(l->address.host, "0.0.0.0");
    ck_assert_uint_eq(l->address.port, 8080);
    ck_assert_uint_eq(l->max_connections, 10000);
    ck_assert_uint_eq(l->max_header_bytes, 32768);
    ck_assert_uint_eq(l->max_headers, 100);
    ck_assert_uint_eq(l->max_uri_bytes, 8192);
    ck_assert_uint_eq(l->max_body_bytes, 100u << 20);
    ck_assert_uint_eq(l->header_timeout_ms, 10000);
    ck_assert_uint_eq(l->idle_timeout_ms, 60000);
    ck_assert_uint_eq(l->request_timeout_ms, 60000);
    ck_assert_uint_eq(l->body_timeout_ms, 300000);
    ck_assert_uint_eq(l->tunnel_idle_timeout_ms, 60000);
    ck_assert(cfg->admin.enabled && cfg->admin.loopback);
    ck_assert_str_eq(cfg->admin.address.text, "127.0.0.1:9901");
    ck_assert(cfg->access_log);
    ck_assert_uint_eq(cfg->drain_timeout_ms, 30000);
    ck_assert_str_eq(cfg->routes_dir, "conf/routes");
    ck_assert_uint_eq(cfg->nupstreams, 0);
    gw_config_free(cfg);
}
END_TEST

START_TEST(upstreams_keep_file_order_and_defaults)
{
    struct gw_config *cfg =
        parse_ok("{\"listeners\":[{\"name\":\"p\",\"address\":\"[::]:80\"}],"
                 "\"upstreams\":{\"b\":{\"targets\":[{\"address\":\"10.0.0.1:80\",\"weight\":3},"
                 "{\"address\":\"backend:81\"}],\"balance\":\"weighted\"},"
                 "\"a\":{\"targets\":[{\"address\":\"127.0.0.1:9\"}],"
                 "\"health\":{\"active\":{\"path\":\"/healthz\"}}}},"
                 "\"routes\":\"/etc/tandem/routes\",\"access_log\":false}");
    ck_assert_str_eq(cfg->listeners[0].address.host, "::");
    ck_assert_uint_eq(cfg->nupstreams, 2);
    ck_assert_str_eq(cfg->upstream_names[0], "b");
    ck_assert_str_eq(cfg->upstream_names[1], "a");
    const struct gw_upstream_config *b = &cfg->upstreams[0], *a = &cfg->upstreams[1];
    ck_assert_int_eq(b->balance, GW_BALANCE_WEIGHTED);
    ck_assert_uint_eq(b->ntargets, 2);
    ck_assert_uint_eq(b->targets[0].weight, 3);
    ck_assert_uint_eq(b->targets[1].weight, 1);
    ck_assert_str_eq(b->targets[1].address.host, "backend");
    ck_assert_uint_eq(b->connect_timeout_ms, 5000);
    ck_assert_uint_eq(b->passive_failures, 5);
    ck_assert(!b->active_health);
    ck_assert(a->active_health);
    ck_assert_str_eq(a->active_path, "/healthz");
    ck_assert_uint_eq(a->active_interval_ms, 5000);
    ck_assert_str_eq(cfg->routes_dir, "/etc/tandem/routes");
    ck_assert(!cfg->access_log);
    gw_config_free(cfg);
}
END_TEST

START_TEST(unknown_keys_are_errors_with_suggestions)
{
    struct jpos_diags d = parse_bad("{\n"
                                    "  \"listeners\": [{\"address\": \"0.0.0.0:80\", "
                                    "\"max_header\": 10}],\n"
                                    "  \"upstream\": {}\n"
                                    "}");
    const struct jpos_diag *g =
        find(&d, "unknown key \"max_header\" in listener; did you mean \"max_headers\"?");
    ck_assert_uint_eq(g->line, 2);
    ck_assert_uint_eq(g->column, 43);
    ck_assert_str_eq(g->path, "listeners[0].max_header");
    g = find(&d, "unknown key \"upstream\" in the configuration; did you mean \"upstreams\"?");
    ck_assert_uint_eq(g->line, 3);
    ck_assert_uint_eq(g->column, 3);
    ck_assert_uint_eq(d.nerrors, 2);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(bad_values_are_all_reported)
{
    struct jpos_diags d =
        parse_bad("{\"listeners\":[{\"address\":\"0.0.0.0\"},{\"address\":\"a:99999\"},"
                  "{\"address\":\"::1:80\"},{\"address\":\"x:1\",\"max_headers\":0}],"
                  "\"runtime\":{\"schedulers\":-1},"
                  "\"upstreams\":{\"u\":{\"balance\":\"random\"},\"bad name\":{\"targets\":[]}},"
                  "\"drain_timeout_ms\":\"5s\"}");
    find(&d, "address needs a port");
    find(&d, "port must be a number from 0 to 65535");
    find(&d, "an IPv6 address must be in brackets");
    find(&d, "must be between 1 and 10000, got 0");
    find(&d, "must be between 0 and 1024, got -1");
    find(&d, "unknown balance \"random\" (round_robin, least_conn or weighted)");
    find(&d, "upstream \"u\" needs \"targets\"");
    find(&d, "upstream name \"bad name\" may hold only");
    find(&d, "needs 1 to 256 targets, got 0");
    find(&d, "expected an integer, got a string");
    ck_assert_uint_eq(d.nerrors, 10);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(body_and_tunnel_timeouts_are_read_and_range_checked)
{
    struct gw_config *cfg =
        parse_ok("{\"listeners\":[{\"address\":\"0.0.0.0:80\",\"body_timeout_ms\":1,"
                 "\"tunnel_idle_timeout_ms\":86400000}]}");
    ck_assert_uint_eq(cfg->listeners[0].body_timeout_ms, 1);
    ck_assert_uint_eq(cfg->listeners[0].tunnel_idle_timeout_ms, 86400000);
    gw_config_free(cfg);
    struct jpos_diags d =
        parse_bad("{\"listeners\":[{\"address\":\"0.0.0.0:80\",\"body_timeout_ms\":0,"
                  "\"tunnel_idle_timeout_ms\":86400001}]}");
    ck_assert_str_eq(find(&d, "must be between 1 and 86400000, got 0")->path,
                     "listeners[0].body_timeout_ms");
    ck_assert_str_eq(find(&d, "must be between 1 and 86400000, got 86400001")->path,
                     "listeners[0].tunnel_idle_timeout_ms");
    ck_assert_uint_eq(d.nerrors, 2);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(listeners_are_required)
{
    struct jpos_diags d = parse_bad("{}");
    const struct jpos_diag *g = find(&d, "no \"listeners\"");
    ck_assert_uint_eq(g->line, 1);
    ck_assert_uint_eq(g->column, 1);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(public_admin_needs_a_token)
{
    struct jpos_diags d = parse_bad("{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],"
                                    "\"admin\":{\"address\":\"0.0.0.0:9901\"}}");
    find(&d, "set \"token_env\"");
    jpos_diags_done(&d);
    setenv("TANDEM_TEST_TOKEN", "secret", 1);
    struct gw_config *cfg = parse_ok("{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],"
                                     "\"admin\":{\"address\":\"0.0.0.0:9901\","
                                     "\"token_env\":\"TANDEM_TEST_TOKEN\"}}");
    ck_assert(!cfg->admin.loopback);
    ck_assert_str_eq(cfg->admin.token_env, "TANDEM_TEST_TOKEN");
    gw_config_free(cfg);
    cfg = parse_ok("{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],\"admin\":false}");
    ck_assert(!cfg->admin.enabled);
    gw_config_free(cfg);
}
END_TEST

START_TEST(admin_without_a_valid_address_is_an_error_not_a_crash)
{
    static const char *const bad[] = {
        "{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],\"admin\":{\"address\":7}}",
        "{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],\"admin\":{\"address\":\"nope\"}}",
        "{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],\"admin\":{\"token_env\":\"X\","
        "\"address\":null}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct jpos_diags d = parse_bad(bad[i]);
        ck_assert_uint_gt(d.n, 0);
        jpos_diags_done(&d);
    }
}
END_TEST

START_TEST(token_env_naming_an_unset_or_empty_variable_is_an_error)
{
    static const char json[] = "{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],\n"
                               "\"admin\":{\"address\":\"127.0.0.1:9901\",\n"
                               "  \"token_env\":\"TANDEM_TEST_NO_SUCH_TOKEN\"}}";
    unsetenv("TANDEM_TEST_NO_SUCH_TOKEN");
    struct jpos_diags d = parse_flags_bad(json, GW_CONFIG_ENV);
    const struct jpos_diag *g = find(&d, "TANDEM_TEST_NO_SUCH_TOKEN (admin.token_env) is not set");
    ck_assert_uint_eq(g->line, 3);
    ck_assert_uint_eq(g->column, 15);
    ck_assert_int_eq(g->level, JPOS_DIAG_ERROR);
    find(&d, "will not start");
    jpos_diags_done(&d);
    setenv("TANDEM_TEST_NO_SUCH_TOKEN", "", 1);
    d = parse_flags_bad(json, GW_CONFIG_ENV);
    find(&d, "TANDEM_TEST_NO_SUCH_TOKEN (admin.token_env) is empty");
    jpos_diags_done(&d);
    setenv("TANDEM_TEST_NO_SUCH_TOKEN", "t0ken", 1);
    gw_config_free(parse_flags_ok(json, GW_CONFIG_ENV));
    /* `tandem ctl` does not look at the environment through the loader. */
    unsetenv("TANDEM_TEST_NO_SUCH_TOKEN");
    gw_config_free(parse_ok(json));
}
END_TEST

static bool loopback4(const char *a)
{
    struct sockaddr_in s = {.sin_family = AF_INET};
    ck_assert_int_eq(inet_pton(AF_INET, a, &s.sin_addr), 1);
    return gw_sockaddr_is_loopback((struct sockaddr *)&s);
}

static bool loopback6(const char *a)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6};
    ck_assert_int_eq(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
    return gw_sockaddr_is_loopback((struct sockaddr *)&s);
}

static bool address_loopback(const char *text)
{
    struct gw_address a;
    ck_assert_int_eq(gw_address_parse(text, true, &a, NULL), 0);
    bool lo = false;
    ck_assert_int_eq(gw_address_loopback(&a, &lo, NULL), 0);
    gw_address_done(&a);
    return lo;
}

START_TEST(loopback_is_decided_from_the_resolved_address)
{
    ck_assert(loopback4("127.0.0.1"));
    ck_assert(loopback4("127.255.1.2"));
    ck_assert(!loopback4("128.0.0.1"));
    ck_assert(!loopback4("0.0.0.0"));
    ck_assert(!loopback4("10.0.0.1"));
    ck_assert(loopback6("::1"));
    ck_assert(loopback6("::ffff:127.0.0.1"));
    ck_assert(loopback6("::ffff:127.1.2.3"));
    ck_assert(!loopback6("::ffff:10.0.0.1"));
    ck_assert(!loopback6("::"));
    ck_assert(!loopback6("::2"));
    ck_assert(!loopback6("fe80::1"));
    struct sockaddr sun = {.sa_family = AF_UNIX};
    ck_assert(!gw_sockaddr_is_loopback(&sun));

    /* Every spelling the resolver takes for 127.0.0.1, and localhost (from
     * the hosts file: no name server is asked). */
    ck_assert(address_loopback("127.0.0.1:9901"));
    ck_assert(address_loopback("0x7f.1:9901"));
    ck_assert(address_loopback("2130706433:9901"));
    ck_assert(address_loopback("[::ffff:127.0.0.1]:9901"));
    ck_assert(address_loopback("localhost:9901"));
    ck_assert(!address_loopback("0.0.0.0:9901"));
    ck_assert(!address_loopback("[::]:9901"));
    ck_assert(!address_loopback("192.0.2.1:9901"));

    /* The configuration follows: no token needed where the address is
     * loopback however it is written, one needed where it is not. */
    static const char *const lo[] = {"0x7f.1:9901", "[::ffff:127.0.0.1]:9901", "127.0.0.1:9901",
                                     "localhost:9901"};
    for (size_t i = 0; i < sizeof lo / sizeof lo[0]; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],\"admin\":{\"address\":\"%s\"}}",
                 lo[i]);
        struct gw_config *cfg = parse_flags_ok(json, GW_CONFIG_ENV);
        ck_assert_msg(cfg->admin.loopback, "%s", lo[i]);
        gw_config_free(cfg);
    }
    struct jpos_diags d = parse_flags_bad("{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],"
                                          "\"admin\":{\"address\":\"[::ffff:10.0.0.1]:9901\"}}",
                                          GW_CONFIG_ENV);
    find(&d, "reachable from other hosts");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(listener_trusted_proxies_are_cidr_blocks)
{
    struct gw_config *cfg =
        parse_ok("{\"listeners\":[{\"address\":\"0.0.0.0:80\",\"trusted_proxies\":"
                 "[\"10.0.0.0/8\",\"192.0.2.7\",\"2001:db8::/32\",\"::ffff:172.16.0.0/108\"]},"
                 "{\"address\":\"0.0.0.0:81\"}]}");
    const struct gw_listener_config *l = &cfg->listeners[0];
    ck_assert_uint_eq(l->ntrusted_proxies, 4);
    char buf[64];
    static const char *const want[] = {"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32",
                                       "172.16.0.0/12"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(gw_cidr_text(&l->trusted_proxies[i], buf, sizeof buf), 0);
        ck_assert_str_eq(buf, want[i]);
    }
    /* none given: none trusted */
    ck_assert_uint_eq(cfg->listeners[1].ntrusted_proxies, 0);
    ck_assert_ptr_null(cfg->listeners[1].trusted_proxies);
    gw_config_free(cfg);

    static const struct {
        const char *v, *says;
    } bad[] = {
        {"\"10.0.0.1/8\"", "did you mean \"10.0.0.0/8\""},
        {"\"10.0.0.0/33\"", "not a CIDR block"},
        {"\"example.com\"", "not a CIDR block"},
        {"\"::ffff:0.0.0.0/64\"", "IPv4-mapped"},
        {"8", "string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"listeners\":[{\"address\":\"0.0.0.0:80\",\"trusted_proxies\":[%s]}]}",
                 bad[i].v);
        struct jpos_diags d = parse_bad(json);
        ck_assert_uint_eq(d.nerrors, 1);
        ck_assert_str_eq(d.items[0].path, "listeners[0].trusted_proxies[0]");
        find(&d, bad[i].says);
        jpos_diags_done(&d);
    }
}
END_TEST

START_TEST(admin_allowed_hosts_are_host_values)
{
    struct gw_config *cfg =
        parse_ok("{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],"
                 "\"admin\":{\"allowed_hosts\":[\"Admin.Example.com\",\"localhost:19901\","
                 "\"[::1]:9901\",\"10.0.0.5\"]}}");
    /* No address given: the default one, loopback. */
    ck_assert_str_eq(cfg->admin.address.text, "127.0.0.1:9901");
    ck_assert(cfg->admin.loopback);
    ck_assert_uint_eq(cfg->admin.nallowed_hosts, 4);
    ck_assert_str_eq(cfg->admin.allowed_hosts[0].name, "admin.example.com");
    ck_assert_uint_eq(cfg->admin.allowed_hosts[0].port, 0);
    ck_assert_str_eq(cfg->admin.allowed_hosts[1].name, "localhost");
    ck_assert_uint_eq(cfg->admin.allowed_hosts[1].port, 19901);
    ck_assert_str_eq(cfg->admin.allowed_hosts[2].name, "::1");
    ck_assert(cfg->admin.allowed_hosts[2].ipv6);
    ck_assert_uint_eq(cfg->admin.allowed_hosts[2].port, 9901);
    gw_config_free(cfg);

    static const char *const bad[] = {"\"*\"",    "\"http://x\"", "\"a b\"", "\"x:0\"", "\"x:\"",
                                      "\"[::1\"", "\"[zz::1]\"",  "\"\"",    "7"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[256];
        snprintf(
            json, sizeof json,
            "{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],\"admin\":{\"allowed_hosts\":[%s]}}",
            bad[i]);
        struct jpos_diags d = parse_bad(json);
        ck_assert_uint_eq(d.nerrors, 1);
        ck_assert_str_eq(d.items[0].path, "admin.allowed_hosts[0]");
        jpos_diags_done(&d);
    }
    char json[4096];
    size_t n = (size_t)snprintf(json, sizeof json,
                                "{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],"
                                "\"admin\":{\"allowed_hosts\":[");
    for (int i = 0; i <= GW_ADMIN_MAX_ALLOWED_HOSTS; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "%s\"h%d\"", i ? "," : "", i);
    snprintf(json + n, sizeof json - n, "]}}");
    struct jpos_diags d = parse_bad(json);
    find(&d, "has 65 entries; at most 64");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(config_nested_too_deep_is_refused_with_its_position)
{
    char json[8192];
    size_t n = (size_t)snprintf(json, sizeof json, "{\"listeners\":\n  ");
    for (int i = 0; i < 3000; i++)
        json[n++] = '[';
    for (int i = 0; i < 3000; i++)
        json[n++] = ']';
    snprintf(json + n, sizeof json - n, "}");
    struct jpos_diags d = parse_bad(json);
    const struct jpos_diag *g = find(&d, "JSON nested deeper than 64 levels");
    ck_assert_uint_eq(g->line, 2);
    ck_assert_uint_eq(g->column, 3 + 63);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(duplicate_listeners_are_errors)
{
    struct jpos_diags d = parse_bad("{\"listeners\":[{\"name\":\"a\",\"address\":\"0.0.0.0:80\"},"
                                    "{\"name\":\"a\",\"address\":\"0.0.0.0:81\"},"
                                    "{\"name\":\"c\",\"address\":\"0.0.0.0:80\"}]}");
    find(&d, "duplicate listener name \"a\"");
    find(&d, "use the same address 0.0.0.0:80");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(routes_load_against_upstream_names_with_their_own_file)
{
    char dir[] = "/tmp/tandem-config-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], rdir[256], rfile[300];
    snprintf(path, sizeof(path), "%s/tandem.json", dir);
    snprintf(rdir, sizeof(rdir), "%s/r", dir);
    snprintf(rfile, sizeof(rfile), "%s/r/x.json", dir);
    ck_assert_int_eq(mkdir(rdir, 0755), 0);
    FILE *f = fopen(path, "w");
    fputs("{\"listeners\":[{\"address\":\"127.0.0.1:0\"}],\"routes\":\"r\","
          "\"upstreams\":{\"users\":{\"targets\":[{\"address\":\"127.0.0.1:1\"}]}}}",
          f);
    fclose(f);
    f = fopen(rfile, "w");
    fputs("{\"routes\":[{\"name\":\"u\",\"match\":{\"path\":\"/u\"},\"upstream\":\"user\"}]}", f);
    fclose(f);
    struct jpos_diags d;
    struct gw_config *cfg = NULL;
    jpos_diags_init(&d);
    ck_assert_int_eq(gw_config_load(path, &cfg, &d), -EINVAL);
    const struct jpos_diag *g = find(&d, "unknown upstream \"user\"; did you mean \"users\"?");
    ck_assert_str_eq(g->file, rfile);
    ck_assert_uint_eq(g->line, 1);
    ck_assert_uint_eq(g->column, 57);
    jpos_diags_done(&d);

    f = fopen(rfile, "w");
    fputs("{\"routes\":[{\"name\":\"u\",\"match\":{\"path\":\"/u\"},\"upstream\":\"users\"}]}", f);
    fclose(f);
    jpos_diags_init(&d);
    ck_assert_int_eq(gw_config_load(path, &cfg, &d), 0);
    ck_assert_uint_eq(route_table_count(cfg->routes), 1);
    ck_assert_int_eq(route_table_route(cfg->routes, 0)->upstream_index, 0);
    gw_config_free(cfg);
    jpos_diags_done(&d);
    unlink(rfile);
    rmdir(rdir);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(health_check_path_is_bounded_and_a_longer_one_is_an_error_at_its_position)
{
    /* The check's request is built in a buffer sized from the bound. */
    char path[GW_HEALTH_PATH_MAX + 2];
    memset(path, 'h', sizeof path - 1);
    path[0] = '/';
    path[GW_HEALTH_PATH_MAX] = '\0';
    char json[GW_HEALTH_PATH_MAX + 256];
#define HEALTH_CONFIG                                                                              \
    "{\"listeners\":[{\"address\":\"0.0.0.0:80\"}],\n"                                             \
    "\"upstreams\":{\"u\":{\"targets\":[{\"address\":\"127.0.0.1:9\"}],\n"                         \
    "  \"health\":{\"active\":{\"path\": \"%s\"}}}}}"
    snprintf(json, sizeof json, HEALTH_CONFIG, path);
    struct gw_config *cfg = parse_ok(json);
    ck_assert_uint_eq(strlen(cfg->upstreams[0].active_path), GW_HEALTH_PATH_MAX);
    gw_config_free(cfg);

    path[GW_HEALTH_PATH_MAX] = 'h';
    path[GW_HEALTH_PATH_MAX + 1] = '\0';
    snprintf(json, sizeof json, HEALTH_CONFIG, path);
#undef HEALTH_CONFIG
    struct jpos_diags d = parse_bad(json);
    const struct jpos_diag *g = find(&d, "string is too long (1025 bytes; at most 1024)");
    ck_assert_uint_eq(g->line, 3);
    ck_assert_uint_eq(g->column, 31);
    ck_assert_str_eq(g->path, "upstreams.u.health.active.path");
    ck_assert_uint_eq(d.nerrors, 1);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(shipped_config_is_valid)
{
    const char *src = getenv("TANDEM_SRC");
    char path[1024];
    snprintf(path, sizeof(path), "%s/config/tandem.json", src ? src : ".");
    struct jpos_diags d;
    struct gw_config *cfg = NULL;
    jpos_diags_init(&d);
    int r = gw_config_load(path, &cfg, &d);
    jpos_diags_print(&d, stderr);
    ck_assert_int_eq(r, 0);
    const struct route *hello = route_table_find(cfg->routes, "hello");
    ck_assert_ptr_nonnull(hello);
    ck_assert_ptr_nonnull(hello->respond);
    ck_assert_str_eq(hello->respond->body, "hello from tandem\n");
    gw_config_free(cfg);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(listener_path_policy_is_strict_by_default_and_configurable)
{
    struct gw_config *cfg =
        parse_ok("{\"listeners\":[{\"name\":\"a\",\"address\":\"0.0.0.0:80\"},"
                 "{\"name\":\"b\",\"address\":\"0.0.0.0:81\",\"path_policy\":"
                 "{\"escaped_slashes\":\"keep\",\"params\":\"keep\","
                 "\"escaped_controls\":\"refuse\",\"trailing_dots\":\"keep\"}},"
                 "{\"name\":\"c\",\"address\":\"0.0.0.0:82\",\"path_policy\":"
                 "{\"escaped_slashes\":\"redirect\"}},"
                 "{\"name\":\"d\",\"address\":\"0.0.0.0:83\",\"path_policy\":"
                 "{\"escaped_slashes\":\"decode\",\"escaped_controls\":\"forward\"}}]}");
    const struct gw_http_path_policy *a = &cfg->listeners[0].path_policy;
    ck_assert_int_eq(a->slashes, GW_HTTP_SLASHES_REFUSE);
    ck_assert_int_eq(a->params, GW_HTTP_PARAMS_REFUSE);
    ck_assert(!a->refuse_controls);
    ck_assert(!a->keep_trailing_dots);
    const struct gw_http_path_policy *b = &cfg->listeners[1].path_policy;
    ck_assert_int_eq(b->slashes, GW_HTTP_SLASHES_KEEP);
    ck_assert_int_eq(b->params, GW_HTTP_PARAMS_KEEP);
    ck_assert(b->refuse_controls);
    ck_assert(b->keep_trailing_dots);
    ck_assert_int_eq(cfg->listeners[2].path_policy.slashes, GW_HTTP_SLASHES_REDIRECT);
    ck_assert_int_eq(cfg->listeners[3].path_policy.slashes, GW_HTTP_SLASHES_DECODE);
    ck_assert(!cfg->listeners[3].path_policy.refuse_controls);
    gw_config_free(cfg);
}
END_TEST

START_TEST(listener_path_policy_values_are_checked)
{
    struct jpos_diags d = parse_bad("{\"listeners\":[{\"address\":\"0.0.0.0:80\",\"path_policy\":"
                                    "{\"escaped_slashes\":\"kepp\",\"params\":\"strip\","
                                    "\"escaped_controls\":true,\"slashes\":\"keep\"}}]}");
    const struct jpos_diag *g =
        find(&d, "unknown escaped_slashes \"kepp\"; did you mean \"keep\"?");
    ck_assert_str_eq(g->path, "listeners[0].path_policy.escaped_slashes");
    find(&d, "unknown params \"strip\" (one of \"refuse\", \"keep\")");
    find(&d, "expected a string, got true");
    find(&d, "unknown key \"slashes\" in path_policy");
    ck_assert_uint_eq(d.nerrors, 4);
    jpos_diags_done(&d);
    /* the first-pass mode is not a setting */
    d = parse_bad("{\"listeners\":[{\"address\":\"0.0.0.0:80\",\"path_policy\":"
                  "{\"escaped_slashes\":\"opaque\"}}]}");
    find(&d, "unknown escaped_slashes \"opaque\"");
    jpos_diags_done(&d);
}
END_TEST

#define TLS_LISTENER(tls) "{\"listeners\": [{\"address\": \"127.0.0.1:0\", \"tls\": " tls "}]}"

START_TEST(listener_tls_is_parsed_with_defaults_and_paths_resolved)
{
    struct gw_config *cfg = parse_ok(
        TLS_LISTENER("{\"certificates\": [{\"cert\": \"certs/a.pem\", \"key\": \"/abs/a.key\", "
                     "\"names\": [\"a.example.com\", \"*.example.com\"]}, "
                     "{\"cert\": \"b.pem\", \"key\": \"b.key\"}]}"));
    const struct gw_tls_listener_config *t = &cfg->listeners[0].tls;
    ck_assert(t->enabled);
    ck_assert_uint_eq(t->ncerts, 2);
    ck_assert_str_eq(t->certs[0].cert, "conf/certs/a.pem");
    ck_assert_str_eq(t->certs[0].key, "/abs/a.key");
    ck_assert_uint_eq(t->certs[0].nnames, 2);
    ck_assert_str_eq(t->certs[0].names[1], "*.example.com");
    ck_assert_uint_eq(t->certs[1].nnames, 0);
    ck_assert_str_eq(t->certs[1].cert, "conf/b.pem");
    ck_assert_int_eq(t->unknown_name, GW_TLS_UNKNOWN_DEFAULT);
    ck_assert_int_eq(t->min_version, GW_TLS_1_2);
    ck_assert_int_eq(t->max_version, GW_TLS_1_3);
    ck_assert_ptr_null(t->ciphersuites);
    ck_assert(t->session_tickets);
    ck_assert_uint_eq(t->ticket_lifetime_s, 3600);
    ck_assert_int_eq(t->client_auth, GW_TLS_CLIENT_AUTH_OFF);
    ck_assert(!cfg->admin.listener.tls.enabled);
    gw_config_free(cfg);

    cfg = parse_ok(TLS_LISTENER(
        "{\"certificates\": [{\"cert\": \"a.pem\", \"key\": \"a.key\"}], "
        "\"unknown_name\": \"refuse\", \"min_version\": \"1.3\", \"session_tickets\": false, "
        "\"ticket_lifetime_s\": 60, \"ciphersuites\": [\"TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256\", "
        "\"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\"], \"client_auth\": {\"mode\": "
        "\"required\", \"ca\": \"ca.pem\", \"subject_header\": \"X-Client-Subject\", "
        "\"fingerprint_header\": \"X-Client-Cert-Sha256\"}}"));
    t = &cfg->listeners[0].tls;
    ck_assert_int_eq(t->unknown_name, GW_TLS_UNKNOWN_REFUSE);
    ck_assert_int_eq(t->min_version, GW_TLS_1_3);
    ck_assert(!t->session_tickets);
    ck_assert_uint_eq(t->ticket_lifetime_s, 60);
    ck_assert_uint_eq(t->nciphersuites, 2);
    ck_assert_str_eq(t->ciphersuites[1], "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
    ck_assert_int_eq(t->client_auth, GW_TLS_CLIENT_AUTH_REQUIRED);
    ck_assert_str_eq(t->client_ca, "conf/ca.pem");
    ck_assert_str_eq(t->client_subject_header, "X-Client-Subject");
    ck_assert_str_eq(t->client_fingerprint_header, "X-Client-Cert-Sha256");
    gw_config_free(cfg);
}
END_TEST

/* Each client_auth header name is dropped from every listener's requests;
 * the listeners together may name at most GW_HTTP_MAX_OWNED. */
#define MTLS_LISTENER(port, subj, fp)                                                              \
    "{\"address\": \"127.0.0.1:" port "\", \"tls\": {\"certificates\": [{\"cert\": \"a\", "        \
    "\"key\": \"b\"}], \"client_auth\": {\"mode\": \"optional\", \"ca\": \"ca.pem\", "             \
    "\"subject_header\": \"" subj "\", \"fingerprint_header\": \"" fp "\"}}}"

START_TEST(listeners_client_auth_header_names_are_bounded_together)
{
    /* Four distinct names (a repeat in another case counts once). */
    struct gw_config *cfg =
        parse_ok("{\"listeners\": [" MTLS_LISTENER("1", "X-S1", "X-F1") ", " MTLS_LISTENER(
            "2", "x-s1", "X-F2") ", " MTLS_LISTENER("3", "X-S3", "X-F1") "]}");
    ck_assert_uint_eq(cfg->nlisteners, 3);
    gw_config_free(cfg);
    struct jpos_diags d =
        parse_bad("{\"listeners\": [" MTLS_LISTENER("1", "X-S1", "X-F1") ", " MTLS_LISTENER(
            "2", "X-S2", "X-F2") ", " MTLS_LISTENER("3", "X-S3", "X-F1") "]}");
    find(&d, "more than 4 distinct client_auth subject_header and fingerprint_header");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(listener_tls_errors_are_reported_at_their_position)
{
    struct jpos_diags d = parse_bad(TLS_LISTENER("{}"));
    find(&d, "tls needs \"certificates\"");
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": []}"));
    find(&d, "needs 1 to 64 certificates");
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": [{\"cert\": \"a.pem\"}]}"));
    find(&d, "needs \"key\"");
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": [{\"cert\": \"\", \"key\": \"a.key\"}]}"));
    find(&d, "cert is empty");
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": [{\"cert\": \"a\", \"key\": \"b\"}], "
                               "\"ciphersuites\": [\"TLS-RSA-WITH-NOTHING\"]}"));
    const struct jpos_diag *x = find(&d, "unknown ciphersuite \"TLS-RSA-WITH-NOTHING\"");
    ck_assert_int_eq(x->line, 1);
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": [{\"cert\": \"a\", \"key\": \"b\"}], "
                               "\"client_auth\": {\"mode\": \"optional\"}}"));
    find(&d, "client_auth needs \"ca\"");
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": [{\"cert\": \"a\", \"key\": \"b\"}], "
                               "\"min_version\": \"1.3\", \"max_version\": \"1.2\"}"));
    find(&d, "min_version is above max_version");
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": [{\"cert\": \"a\", \"key\": \"b\"}], "
                               "\"min_version\": \"1.1\"}"));
    find(&d, "1.1");
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": [{\"cert\": \"a\", \"key\": \"b\"}], "
                               "\"ticket_lifetime_s\": 10}"));
    find(&d, "between 60 and 86400");
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": [{\"cert\": \"a\", \"key\": \"b\"}], "
                               "\"client_auth\": {\"mode\": \"off\", \"subject_header\": "
                               "\"X Bad\"}}"));
    find(&d, "is not a header field name");
    jpos_diags_done(&d);
    d = parse_bad(TLS_LISTENER("{\"certificates\": [{\"cert\": \"a\", \"key\": \"b\"}], "
                               "\"certificate\": 1}"));
    find(&d, "certificate");
    jpos_diags_done(&d);
}
END_TEST

#define TLS_UPSTREAM(tls)                                                                          \
    "{\"listeners\": [{\"address\": \"127.0.0.1:0\"}], \"upstreams\": {\"up\": {\"targets\": "     \
    "[{\"address\": \"127.0.0.1:1\"}], \"tls\": " tls "}}}"

START_TEST(upstream_tls_is_parsed_with_defaults_and_paths_resolved)
{
    struct gw_config *cfg = parse_ok("{\"listeners\": [{\"address\": \"127.0.0.1:0\"}], "
                                     "\"upstreams\": {\"up\": {\"targets\": [{\"address\": "
                                     "\"127.0.0.1:1\"}]}}}");
    ck_assert(!cfg->upstreams[0].tls.enabled);
    gw_config_free(cfg);

    cfg = parse_ok(TLS_UPSTREAM("{}"));
    const struct gw_tls_upstream_config *t = &cfg->upstreams[0].tls;
    ck_assert(t->enabled);
    ck_assert(t->verify);
    ck_assert_ptr_null(t->ca);
    ck_assert_ptr_null(t->server_name);
    ck_assert_ptr_null(t->cert);
    ck_assert_ptr_null(t->key);
    ck_assert_int_eq(t->min_version, GW_TLS_1_2);
    gw_config_free(cfg);

    cfg = parse_ok(TLS_UPSTREAM("{\"verify\": false, \"ca\": \"certs/ca.pem\", "
                                "\"server_name\": \"backend.internal\", \"cert\": \"/abs/c.pem\", "
                                "\"key\": \"c.key\", \"min_version\": \"1.3\"}"));
    t = &cfg->upstreams[0].tls;
    ck_assert(!t->verify);
    ck_assert_str_eq(t->ca, "conf/certs/ca.pem");
    ck_assert_str_eq(t->server_name, "backend.internal");
    ck_assert_str_eq(t->cert, "/abs/c.pem");
    ck_assert_str_eq(t->key, "conf/c.key");
    ck_assert_int_eq(t->min_version, GW_TLS_1_3);
    gw_config_free(cfg);
}
END_TEST

START_TEST(upstream_tls_errors_are_reported)
{
    struct jpos_diags d = parse_bad(TLS_UPSTREAM("{\"cert\": \"c.pem\"}"));
    find(&d, "needs both \"cert\" and \"key\"");
    jpos_diags_done(&d);
    d = parse_bad(TLS_UPSTREAM("{\"key\": \"c.key\"}"));
    find(&d, "needs both \"cert\" and \"key\"");
    jpos_diags_done(&d);
    d = parse_bad(TLS_UPSTREAM("{\"server_name\": \"bad name\"}"));
    find(&d, "is not a server name");
    jpos_diags_done(&d);
    d = parse_bad(TLS_UPSTREAM("{\"server_name\": \"a..b\"}"));
    find(&d, "is not a server name");
    jpos_diags_done(&d);
    d = parse_bad(TLS_UPSTREAM("{\"ca\": \"\"}"));
    find(&d, "ca is empty");
    jpos_diags_done(&d);
    d = parse_bad(TLS_UPSTREAM("{\"min_version\": \"1.1\"}"));
    find(&d, "1.1");
    jpos_diags_done(&d);
    d = parse_bad(TLS_UPSTREAM("{\"verfy\": true}"));
    find(&d, "verfy");
    jpos_diags_done(&d);
    d = parse_bad(TLS_UPSTREAM("true"));
    find(&d, "object");
    jpos_diags_done(&d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, minimal_config_gets_documented_defaults);
    tcase_add_test(tc, every_default_is_its_key_table_row);
    tcase_add_test(tc, upstreams_keep_file_order_and_defaults);
    tcase_add_test(tc, unknown_keys_are_errors_with_suggestions);
    tcase_add_test(tc, bad_values_are_all_reported);
    tcase_add_test(tc, body_and_tunnel_timeouts_are_read_and_range_checked);
    tcase_add_test(tc, listeners_are_required);
    tcase_add_test(tc, public_admin_needs_a_token);
    tcase_add_test(tc, duplicate_listeners_are_errors);
    tcase_add_test(tc, routes_load_against_upstream_names_with_their_own_file);
    tcase_add_test(tc, shipped_config_is_valid);
    tcase_add_test(tc, health_check_path_is_bounded_and_a_longer_one_is_an_error_at_its_position);
    tcase_add_test(tc, admin_without_a_valid_address_is_an_error_not_a_crash);
    tcase_add_test(tc, listener_path_policy_is_strict_by_default_and_configurable);
    tcase_add_test(tc, listener_path_policy_values_are_checked);
    tcase_add_test(tc, token_env_naming_an_unset_or_empty_variable_is_an_error);
    tcase_add_test(tc, loopback_is_decided_from_the_resolved_address);
    tcase_add_test(tc, listener_trusted_proxies_are_cidr_blocks);
    tcase_add_test(tc, admin_allowed_hosts_are_host_values);
    tcase_add_test(tc, config_nested_too_deep_is_refused_with_its_position);
    tcase_add_test(tc, admin_listener_takes_its_values_from_the_key_table);
    tcase_add_test(tc, listener_defaults_are_the_key_table_rows);
    tcase_add_test(tc, workflows_section_defaults_and_paths);
    tcase_add_test(tc, listener_tls_is_parsed_with_defaults_and_paths_resolved);
    tcase_add_test(tc, listener_tls_errors_are_reported_at_their_position);
    tcase_add_test(tc, listeners_client_auth_header_names_are_bounded_together);
    tcase_add_test(tc, upstream_tls_is_parsed_with_defaults_and_paths_resolved);
    tcase_add_test(tc, upstream_tls_errors_are_reported);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
