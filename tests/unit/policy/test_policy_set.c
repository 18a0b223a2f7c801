/* test_policy_set.c: the policy set (gateway/src/policy/set.c) — files of a
 * directory and text, every loader message at its line and column, names
 * unique across files, the credential formats of consumers, the limits of
 * policy.h, the owned upstream field names; the acl kind's checks; and the
 * routes library's "policies" key with the table attachment that resolves
 * each route's chain once. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw/config.h"
#include "policy/set_int.h"
#include "policy/table.h"
#include "route/route.h"

#define KEY_A "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
#define KEY_B "sha256:FCDE2B2EDBA56BF408601FB721FE9B5C338D10EE429EA04FAE5511B68FBF8FB9"
/* PBKDF2-HMAC-SHA256 of "secret", 10000 iterations, salt of 16 zero bytes */
#define PBKDF2_OK                                                                                  \
    "pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$"                                                \
    "yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MDE5vM="

static struct gw_pol_set *load_ok(const char *text)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_pol_set *s = NULL;
    int r = gw_pol_set_load_text("p.json", text, strlen(text), ".", &s, &d);
    if (r)
        jpos_diags_print(&d, stderr);
    ck_assert_int_eq(r, 0);
    ck_assert_uint_eq(d.nerrors, 0);
    jpos_diags_done(&d);
    return s;
}

static struct jpos_diags load_bad(const char *text)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_pol_set *s = NULL;
    ck_assert_int_eq(gw_pol_set_load_text("p.json", text, strlen(text), ".", &s, &d), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_uint_gt(d.nerrors, 0);
    return d;
}

/* The line and column (from 1) where `marker` first starts in `text`. */
static void pos_of(const char *text, const char *marker, unsigned *line, unsigned *col)
{
    const char *at = strstr(text, marker);
    ck_assert_msg(at, "marker %s not in text", marker);
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* The diagnostic holding `msg`, checked to be at `marker` of `text` (or
 * anywhere when marker is NULL). */
static const struct jpos_diag *find_at(const struct jpos_diags *d, const char *text,
                                       const char *marker, const char *msg)
{
    for (size_t i = 0; i < d->n; i++) {
        if (!strstr(d->items[i].message, msg))
            continue;
        if (marker) {
            unsigned l, c;
            pos_of(text, marker, &l, &c);
            ck_assert_msg(d->items[i].line == l && d->items[i].column == c,
                          "\"%s\" at %u:%u, expected %u:%u", msg, d->items[i].line,
                          d->items[i].column, l, c);
        }
        return &d->items[i];
    }
    jpos_diags_print(d, stderr);
    ck_abort_msg("no diagnostic holding \"%s\"", msg);
    return NULL;
}

/* ---- a directory -------------------------------------------------------------- */

static char tmpdir[64];

static void mkdir_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tandem-pol-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(directory_files_are_read_in_name_order_with_consumers_of_every_file)
{
    mkdir_tmp();
    /* b.json's acl names a consumer of c.json: consumers of every file are
     * known before any policy is compiled (no warning). */
    write_file("b.json", "{\"policies\": [{\"name\": \"staff\", \"type\": \"acl\", "
                         "\"allow\": [\"carol\"]}]}");
    write_file("a.json", "{\"policies\": [{\"name\": \"first\", \"type\": \"acl\"}]}");
    write_file("c.json", "{\"consumers\": [{\"name\": \"carol\", \"api_keys\": [\"" KEY_A "\"]}]}");
    write_file(".hidden.json", "not json");
    write_file("notes.txt", "not json");
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_pol_set *s = NULL;
    ck_assert_int_eq(gw_pol_set_load_dir(tmpdir, &s, &d), 0);
    ck_assert_uint_eq(d.nerrors, 0);
    ck_assert_uint_eq(d.nwarnings, 0);
    ck_assert_uint_eq(gw_pol_set_count(s), 2);
    ck_assert_str_eq(gw_pol_set_def(s, 0)->name, "first");
    ck_assert_str_eq(gw_pol_set_def(s, 1)->name, "staff");
    ck_assert_str_eq(gw_pol_set_names(s)[1], "staff");
    ck_assert_ptr_eq(gw_pol_set_def(s, 1)->kind, gw_pol_kind_find("acl"));
    ck_assert_uint_eq(gw_pol_set_nconsumers(s), 1);
    const struct gw_pol_consumer *c = gw_pol_set_consumer_find(s, "carol");
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->line, 1);
    ck_assert_uint_eq(c->column, 16);
    ck_assert_ptr_nonnull(strstr(c->file, "/c.json"));
    gw_pol_set_unref(s);
    jpos_diags_done(&d);
    rm_tmp();
}
END_TEST

START_TEST(missing_directory_is_an_empty_set)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_pol_set *s = NULL;
    ck_assert_int_eq(gw_pol_set_load_dir("/nonexistent/tandem-policies", &s, &d), 0);
    ck_assert_uint_eq(d.n, 0);
    ck_assert_uint_eq(gw_pol_set_count(s), 0);
    ck_assert_uint_eq(gw_pol_set_nconsumers(s), 0);
    size_t n = 9;
    gw_pol_set_owned(s, &n);
    ck_assert_uint_eq(n, 0);
    gw_pol_set_unref(s);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(duplicate_names_across_files_name_the_first_definition)
{
    mkdir_tmp();
    write_file("a.json", "{\"policies\": [{\"name\": \"keys\", \"type\": \"acl\"}],\n"
                         " \"consumers\": [{\"name\": \"alice\"}]}");
    write_file("b.json", "{\"consumers\": [\n  {\"name\": \"alice\"}],\n"
                         " \"policies\": [{\"name\": \"keys\", \"type\": \"acl\"}]}");
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_pol_set *s = NULL;
    ck_assert_int_eq(gw_pol_set_load_dir(tmpdir, &s, &d), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_uint_eq(d.nerrors, 2);
    const struct jpos_diag *g = find_at(&d, NULL, NULL, "policy \"keys\" is already defined at ");
    ck_assert_ptr_nonnull(strstr(g->file, "/b.json"));
    ck_assert_uint_eq(g->line, 3);
    ck_assert_uint_eq(g->column, 24);
    ck_assert_ptr_nonnull(strstr(g->message, "/a.json:1:15"));
    g = find_at(&d, NULL, NULL, "consumer \"alice\" is already defined at ");
    ck_assert_uint_eq(g->line, 2);
    ck_assert_uint_eq(g->column, 12);
    ck_assert_ptr_nonnull(strstr(g->message, "/a.json:2:16"));
    jpos_diags_done(&d);
    rm_tmp();
}
END_TEST

START_TEST(syntax_errors_and_bad_shapes_are_reported_at_their_position)
{
    const char *t = "{\"policies\": [1, {\"name\": \"a\", \"type\": \"acl\"}]\n  ,}";
    struct jpos_diags d = load_bad(t);
    ck_assert_uint_eq(d.n, 1);
    ck_assert_uint_eq(d.items[0].line, 2);
    jpos_diags_done(&d);

    t = "{\"policies\": [7], \"consumers\": {}, \"polices\": []}";
    d = load_bad(t);
    find_at(&d, t, "7]", "a policy is an object");
    find_at(&d, t, "{}", "expected an array");
    find_at(&d, t, "\"polices\"", "did you mean \"policies\"?");
    jpos_diags_done(&d);

    t = "[]";
    d = load_bad(t);
    find_at(&d, t, "[]", "a policy file holds an object");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(policy_name_and_type_are_checked_with_did_you_mean)
{
    const char *t = "{\"policies\": [\n"
                    " {\"type\": \"acl\"},\n"
                    " {\"name\": \"no spaces\", \"type\": \"acl\"},\n"
                    " {\"name\": \"x\"},\n"
                    " {\"name\": \"y\", \"type\": \"acll\"},\n"
                    " {\"name\": \"z\", \"type\": \"acl\", \"alow\": []}]}";
    struct jpos_diags d = load_bad(t);
    find_at(&d, t, "{\"type\": \"acl\"}", "a policy needs a \"name\"");
    find_at(&d, t, "\"no spaces\"", "letters, digits and . _ - : / @");
    find_at(&d, t, "{\"name\": \"x\"}", "a policy needs a \"type\" (one of \"acl\"");
    find_at(&d, t, "\"acll\"", "unknown policy type \"acll\"; did you mean \"acl\"?");
    find_at(&d, t, "\"alow\"", "unknown key \"alow\" in acl policy; did you mean \"allow\"?");
    ck_assert_uint_eq(d.nerrors, 5);
    jpos_diags_done(&d);

    char longname[200];
    memset(longname, 'n', 129);
    longname[129] = 0;
    char text[512];
    snprintf(text, sizeof text, "{\"policies\": [{\"name\": \"%s\", \"type\": \"acl\"}]}",
             longname);
    d = load_bad(text);
    ck_assert_uint_eq(d.nerrors, 1);
    jpos_diags_done(&d);
    longname[128] = 0; /* 128 bytes: the limit, taken */
    snprintf(text, sizeof text, "{\"policies\": [{\"name\": \"%s\", \"type\": \"acl\"}]}",
             longname);
    gw_pol_set_unref(load_ok(text));
}
END_TEST

START_TEST(api_keys_are_sha256_hex_parsed_once)
{
    struct gw_pol_set *s = load_ok("{\"consumers\": [{\"name\": \"alice\", \"api_keys\": [\"" KEY_A
                                   "\", \"" KEY_B "\"]}]}");
    const struct gw_pol_consumer *c = gw_pol_set_consumer(s, 0);
    ck_assert_uint_eq(c->napi_keys, 2);
    ck_assert_uint_eq(c->api_keys[0][0], 0x2c);
    ck_assert_uint_eq(c->api_keys[0][31], 0xae);
    ck_assert_uint_eq(c->api_keys[1][0], 0xfc); /* upper-case hex taken too */
    ck_assert_ptr_null(c->basic_user);
    gw_pol_set_unref(s);

    const char *t =
        "{\"consumers\": [{\"name\": \"a\", \"api_keys\": [\n"
        "  \"plaintext-key\",\n"
        "  \"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7a\",\n"
        "  \"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ag\",\n"
        "  \"sha512:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"]}]}";
    struct jpos_diags d = load_bad(t);
    ck_assert_uint_eq(d.nerrors, 4);
    find_at(&d, t, "\"plaintext-key\"", "an API key is stored as \"sha256:<64 hex digits>\"");
    ck_assert_uint_eq(d.items[3].line, 5);
    ck_assert_uint_eq(d.items[3].column, 3);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(basic_passwords_are_pbkdf2_records_parsed_once)
{
    struct gw_pol_set *s = load_ok("{\"consumers\": [{\"name\": \"bob\", \"basic\": {\"username\": "
                                   "\"bob\", \"password\": \"" PBKDF2_OK "\"}}]}");
    const struct gw_pol_consumer *c = gw_pol_set_consumer(s, 0);
    ck_assert_str_eq(c->basic_user, "bob");
    ck_assert_uint_eq(c->basic.iterations, 10000);
    ck_assert_uint_eq(c->basic.salt_len, 16);
    ck_assert_uint_eq(c->basic.salt[0], 0);
    ck_assert_uint_eq(c->basic.hash[0], 0xc8);
    gw_pol_set_unref(s);

    static const struct {
        const char *record, *why;
    } bad[] = {
        {"secret", "never the password itself"},
        {"pbkdf2-sha256$9999$AAAAAAAAAAAAAAAAAAAAAA==$yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MDE5vM=",
         "iterations must be a number from 10000 to 10000000"},
        {"pbkdf2-sha256$10000001$AAAAAAAAAAAAAAAAAAAAAA==$"
         "yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MDE5vM"
         "=",
         "iterations must be"},
        {"pbkdf2-sha256$1e5$AAAAAAAAAAAAAAAAAAAAAA==$yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MDE5vM=",
         "iterations must be"},
        {"pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAA$yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MDE5vM=",
         "the salt must be 16 to 64 bytes"},
        {"pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAA*AA==$"
         "yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MDE5vM=",
         "the salt must be"},
        {"pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MD=",
         "the hash must be 32 bytes"},
        {"pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==", "four parts"},
        {"pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$yNqqTxkfrXNMKh5Oh9ZgPAnAw6ziUGOFqc9K6MDE5vM="
         "$x",
         "four parts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char t[512];
        snprintf(t, sizeof t,
                 "{\"consumers\": [{\"name\": \"bob\", \"basic\": {\"username\": \"bob\",\n"
                 "   \"password\": \"%s\"}}]}",
                 bad[i].record);
        struct jpos_diags d = load_bad(t);
        ck_assert_uint_eq(d.nerrors, 1);
        char marker[300];
        snprintf(marker, sizeof marker, "\"%s", bad[i].record);
        find_at(&d, t, marker, bad[i].why);
        jpos_diags_done(&d);
    }
    const char *t = "{\"consumers\": [{\"name\": \"b\", \"basic\": {\"username\": \"a:b\", "
                    "\"password\": \"" PBKDF2_OK "\", \"pasword\": 1}}, "
                    "{\"name\": \"c\", \"basic\": {\"password\": \"" PBKDF2_OK "\"}}]}";
    struct jpos_diags d = load_bad(t);
    find_at(&d, t, "\"a:b\"", "without ':'");
    find_at(&d, t, "\"pasword\"", "did you mean \"password\"?");
    find_at(&d, t, "{\"password\"", "basic needs \"username\" and \"password\"");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(a_credential_names_one_consumer)
{
    const char *t =
        "{\"consumers\": [\n"
        " {\"name\": \"a\", \"api_keys\": [\"" KEY_A "\"],\n"
        "  \"basic\": {\"username\": \"u\", \"password\": \"" PBKDF2_OK "\"}},\n"
        " {\"name\": \"b\", \"api_keys\": [\"" KEY_B "\", \"" KEY_A "\"]},\n"
        " {\"name\": \"c\", \"basic\": {\"username\": \"u\", \"password\": \"" PBKDF2_OK "\"}}]}";
    struct jpos_diags d = load_bad(t);
    ck_assert_uint_eq(d.nerrors, 2);
    find_at(&d, t, "{\"name\": \"b\"",
            "consumer \"b\" has an API key of consumer \"a\" (p.json:2:2)");
    find_at(&d, t, "{\"name\": \"c\"", "consumer \"c\" has the basic username of consumer \"a\"");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(consumer_limits_are_errors)
{
    char t[8192];
    size_t n = (size_t)snprintf(t, sizeof t, "{\"consumers\": [{\"name\": \"a\", \"api_keys\": [");
    for (int i = 0; i <= GW_POL_MAX_API_KEYS; i++)
        n += (size_t)snprintf(t + n, sizeof t - n, "%s\"sha256:%064x\"", i ? ", " : "", i);
    snprintf(t + n, sizeof t - n, "]}]}");
    struct jpos_diags d = load_bad(t);
    find_at(&d, t, "[\"sha256", "at most 16 api_keys, got 17");
    jpos_diags_done(&d);

    n = (size_t)snprintf(t, sizeof t, "{\"consumers\": [{\"name\": \"a\", \"headers\": {");
    for (int i = 0; i <= GW_POL_MAX_CONSUMER_HEADERS; i++)
        n += (size_t)snprintf(t + n, sizeof t - n, "%s\"x-h%d\": \"v\"", i ? ", " : "", i);
    snprintf(t + n, sizeof t - n, "}}]}");
    d = load_bad(t);
    find_at(&d, t, "{\"x-h0", "at most 8 headers, got 9");
    jpos_diags_done(&d);

    /* Owned names across consumers: at most GW_POL_MAX_OWNED distinct. */
    n = (size_t)snprintf(t, sizeof t, "{\"consumers\": [");
    for (int i = 0; i <= GW_POL_MAX_OWNED; i++)
        n += (size_t)snprintf(t + n, sizeof t - n,
                              "%s{\"name\": \"c%d\", \"headers\": {\"x-o%d\": "
                              "\"v\"}}",
                              i ? ", " : "", i, i);
    snprintf(t + n, sizeof t - n, "]}");
    d = load_bad(t);
    ck_assert_uint_eq(d.nerrors, 1);
    find_at(&d, t, "\"v\"}}]}", "more than 32 distinct upstream field names");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(consumer_headers_are_owned_and_checked)
{
    const char *t =
        "{\"consumers\": [\n"
        " {\"name\": \"a\", \"headers\": {\"X-Tier\": \"gold\", \"x-team\": \"core\"}},\n"
        " {\"name\": \"b\", \"headers\": {\"x-tier\": \"silver\"}}]}";
    struct gw_pol_set *s = load_ok(t);
    const struct gw_pol_consumer *a = gw_pol_set_consumer_find(s, "a");
    ck_assert_uint_eq(a->nheaders, 2);
    ck_assert_str_eq(a->headers[0].name, "x-tier");
    ck_assert_str_eq(a->headers[0].value, "gold");
    size_t n;
    const char *const *own = gw_pol_set_owned(s, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(own[0], "x-tier");
    ck_assert_str_eq(own[1], "x-team");
    struct jpos_diags d;
    jpos_diags_init(&d);
    ck_assert_int_eq(gw__pol_set_consumer_header(s, "x-consumer", &d), 0);
    ck_assert_uint_eq(d.n, 0);
    own = gw_pol_set_owned(s, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(own[2], "x-consumer");
    ck_assert_str_eq(gw__pol_set_consumer_field(s), "x-consumer");
    gw_pol_set_unref(s);

    /* The consumer field is the gateway's alone. */
    s = load_ok("{\"consumers\": [{\"name\": \"a\"},\n {\"name\": \"b\", \"headers\": "
                "{\"X-User\": \"b\"}}]}");
    ck_assert_int_eq(gw__pol_set_consumer_header(s, "x-user", &d), -EINVAL);
    ck_assert_uint_eq(d.nerrors, 1);
    ck_assert_str_eq(d.items[0].file, "p.json");
    ck_assert_uint_eq(d.items[0].line, 2);
    ck_assert_uint_eq(d.items[0].column, 2);
    ck_assert_ptr_nonnull(strstr(d.items[0].message, "consumer \"b\" sets header \"x-user\""));
    jpos_diags_done(&d);
    gw_pol_set_unref(s);

    t = "{\"consumers\": [{\"name\": \"a\", \"headers\": {\n"
        "  \"Host\": \"x\", \"x-forwarded-user\": \"x\", \"bad name\": \"x\",\n"
        "  \"x-ok\": \"line\\nbreak\", \"x-num\": 3}}]}";
    d = load_bad(t);
    ck_assert_uint_eq(d.nerrors, 5);
    find_at(&d, t, "\"Host\"", "the gateway writes this field itself");
    find_at(&d, t, "\"x-forwarded-user\"", "X-Forwarded-* fields");
    find_at(&d, t, "\"bad name\"", "a field name holds");
    find_at(&d, t, "\"line", "visible ASCII");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(acl_lists_are_checked_and_names_outside_the_consumers_warned)
{
    const char *t = "{\"consumers\": [{\"name\": \"alice\"}],\n"
                    " \"policies\": [{\"name\": \"a\", \"type\": \"acl\", \"allow\": [\"alcie\", "
                    "\"jwt-subject-7\"], \"deny\": [\"\", 4]}]}";
    struct jpos_diags d = load_bad(t);
    ck_assert_uint_eq(d.nerrors, 2);
    ck_assert_uint_eq(d.nwarnings, 1);
    find_at(&d, t, "\"alcie\"", "did you mean \"alice\"?");
    find_at(&d, t, "\"\", 4", "an empty name");
    find_at(&d, t, "4]", "expected a string");
    jpos_diags_done(&d);
}
END_TEST

/* ---- routes and the table ------------------------------------------------------ */

static const char policies_text[] =
    "{\"policies\": [{\"name\": \"keys\", \"type\": \"acl\"},\n"
    "  {\"name\": \"staff\", \"type\": \"acl\", \"allow\": [\"a\"]}]}";

static int load_routes(const char *routes, struct route_table **t, struct jpos_diags *d)
{
    mkdir_tmp();
    write_file("p.json", policies_text);
    struct gw_routes_source src = {.label = "r.json",
                                   .text = routes,
                                   .len = strlen(routes),
                                   .policies_dir = tmpdir,
                                   .consumer_header = "x-consumer"};
    int r = gw_config_load_routes(&src, NULL, 0, t, d);
    rm_tmp();
    return r;
}

START_TEST(route_chains_are_resolved_once_in_order)
{
    const char *routes =
        "{\"routes\": [\n"
        " {\"name\": \"a\", \"match\": {\"path\": \"/a\"}, \"policies\": [\"staff\", \"keys\"],\n"
        "  \"respond\": {}},\n"
        " {\"name\": \"b\", \"match\": {\"path\": \"/b\"}, \"respond\": {}},\n"
        " {\"name\": \"c\", \"match\": {\"path\": \"/c\"}, \"policies\": [\"keys\"], \"respond\": "
        "{}}]}";
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct route_table *t = NULL;
    ck_assert_int_eq(load_routes(routes, &t, &d), 0);
    const struct gw_pol_set *s = gw_pol_table_set(t);
    ck_assert_ptr_nonnull(s);
    const struct route *a = route_table_find(t, "a"), *b = route_table_find(t, "b"),
                       *c = route_table_find(t, "c");
    ck_assert_uint_eq(a->npolicies, 2);
    ck_assert_str_eq(a->policies[0], "staff");
    const struct gw_pol_def *const *ch = gw__pol_table_chain(t, a);
    ck_assert_ptr_eq(ch[0], gw_pol_set_find(s, "staff"));
    ck_assert_ptr_eq(ch[1], gw_pol_set_find(s, "keys"));
    ck_assert_uint_eq(b->npolicies, 0);
    ck_assert_ptr_null(gw__pol_table_chain(t, b));
    ck_assert_ptr_eq(gw__pol_table_chain(t, c)[0], gw_pol_set_find(s, "keys"));
    /* the workflow set is still carried */
    ck_assert_ptr_nonnull(gw__table_wf_set(t));
    size_t n;
    const char *const *own = gw_pol_set_owned(s, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(own[0], "x-consumer");
    route_table_unref(t);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(route_policies_are_checked_with_did_you_mean)
{
    const char *routes =
        "{\"routes\": [\n"
        " {\"name\": \"a\", \"match\": {\"path\": \"/a\"}, \"policies\": [\"kyes\", "
        "\"keys\", \"keys\", \"nothing-like-it\", 5], \"respond\": {}},\n"
        " {\"name\": \"b\", \"match\": {\"path\": \"/b\"}, \"policies\": "
        "{}, \"respond\": {}}]}";
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct route_table *t = NULL;
    ck_assert_int_eq(load_routes(routes, &t, &d), -EINVAL);
    ck_assert_ptr_null(t);
    find_at(&d, routes, "\"kyes\"", "unknown policy \"kyes\"; did you mean \"keys\"?");
    find_at(&d, routes, "\"keys\", \"nothing", "policy \"keys\" is listed twice");
    find_at(&d, routes, "\"nothing-like-it\"",
            "unknown policy \"nothing-like-it\" (defined: \"keys\", \"staff\")");
    find_at(&d, routes, "5]", "expected a string");
    find_at(&d, routes, "{}, \"respond\": {}}]", "expected an array");
    jpos_diags_done(&d);

    char big[2048];
    size_t n = (size_t)snprintf(big, sizeof big,
                                "{\"routes\": [{\"name\": \"a\", \"match\": {\"path\": \"/a\"}, "
                                "\"respond\": {}, \"policies\": [");
    for (int i = 0; i <= ROUTE_MAX_POLICIES; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s\"keys\"", i ? ", " : "");
    snprintf(big + n, sizeof big - n, "]}]}");
    jpos_diags_init(&d);
    ck_assert_int_eq(load_routes(big, &t, &d), -EINVAL);
    find_at(&d, big, "[\"keys\"", "a route names at most 16 policies, got 17");
    jpos_diags_done(&d);
}
END_TEST

START_TEST(policy_errors_accept_any_name_in_routes)
{
    /* A policy file with errors fails the load, but routes are not blamed
     * for names it would have defined. */
    mkdir_tmp();
    write_file("p.json", "{\"policies\": [{\"name\": \"keys\", \"type\": \"nope\"}]}");
    const char *routes = "{\"routes\": [{\"name\": \"a\", \"match\": {\"path\": \"/a\"}, "
                         "\"policies\": [\"keys\"], \"respond\": {}}]}";
    struct gw_routes_source src = {
        .label = "r.json", .text = routes, .len = strlen(routes), .policies_dir = tmpdir};
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct route_table *t = NULL;
    ck_assert_int_eq(gw_config_load_routes(&src, NULL, 0, &t, &d), -EINVAL);
    ck_assert_uint_eq(d.nerrors, 1);
    ck_assert_ptr_nonnull(strstr(d.items[0].message, "unknown policy type \"nope\""));
    jpos_diags_done(&d);
    rm_tmp();
}
END_TEST

START_TEST(a_table_given_as_text_keeps_the_policies_it_replaces)
{
    const char *routes = "{\"routes\": [{\"name\": \"a\", \"match\": {\"path\": \"/a\"}, "
                         "\"policies\": [\"keys\"], \"respond\": {}}]}";
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct route_table *t = NULL, *t2 = NULL;
    ck_assert_int_eq(load_routes(routes, &t, &d), 0);
    /* the directory is gone: the replacement reads no policy file */
    struct gw_routes_source src = {
        .label = "<admin>", .text = routes, .len = strlen(routes), .keep = t};
    ck_assert_int_eq(gw_config_load_routes(&src, NULL, 0, &t2, &d), 0);
    ck_assert_ptr_eq(gw_pol_table_set(t2), gw_pol_table_set(t));
    route_table_unref(t);
    ck_assert_ptr_eq(gw__pol_table_chain(t2, route_table_find(t2, "a"))[0],
                     gw_pol_set_find(gw_pol_table_set(t2), "keys"));
    route_table_unref(t2);
    jpos_diags_done(&d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy_set");
    TCase *tc = tcase_create("set");
    tcase_add_test(tc, directory_files_are_read_in_name_order_with_consumers_of_every_file);
    tcase_add_test(tc, missing_directory_is_an_empty_set);
    tcase_add_test(tc, duplicate_names_across_files_name_the_first_definition);
    tcase_add_test(tc, syntax_errors_and_bad_shapes_are_reported_at_their_position);
    tcase_add_test(tc, policy_name_and_type_are_checked_with_did_you_mean);
    tcase_add_test(tc, api_keys_are_sha256_hex_parsed_once);
    tcase_add_test(tc, basic_passwords_are_pbkdf2_records_parsed_once);
    tcase_add_test(tc, a_credential_names_one_consumer);
    tcase_add_test(tc, consumer_limits_are_errors);
    tcase_add_test(tc, consumer_headers_are_owned_and_checked);
    tcase_add_test(tc, acl_lists_are_checked_and_names_outside_the_consumers_warned);
    tcase_add_test(tc, route_chains_are_resolved_once_in_order);
    tcase_add_test(tc, route_policies_are_checked_with_did_you_mean);
    tcase_add_test(tc, policy_errors_accept_any_name_in_routes);
    tcase_add_test(tc, a_table_given_as_text_keeps_the_policies_it_replaces);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
