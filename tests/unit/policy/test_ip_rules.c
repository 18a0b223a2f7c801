/* test_ip_rules.c: CIDR blocks (gw/cidr.h), the `ip_rules` policy kind
 * (gateway/src/policy/ip_rules.c) and the client address behind trusted
 * proxies (gateway/src/client_addr.c). */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_addr.h"
#include "gw/cidr.h"
#include "gw/http1.h"
#include "jpos/json.h"
#include "policy/ip_rules.h"
#include "policy/policy.h"

static struct gw_cidr block(const char *s)
{
    struct gw_cidr c;
    ck_assert_msg(gw_cidr_parse(s, strlen(s), &c) == 0, "%s", s);
    return c;
}

static struct gw_ip ip(const char *s)
{
    struct gw_ip a;
    ck_assert_msg(gw_ip_parse(s, strlen(s), &a) == 0, "%s", s);
    return a;
}

static bool in(const char *blk, const char *addr)
{
    struct gw_cidr c = block(blk);
    struct gw_ip a = ip(addr);
    return gw_cidr_match(&c, 1, &a);
}

START_TEST(test_cidr_blocks_parse_in_canonical_forms_only)
{
    struct gw_cidr c;
    char buf[64];
    static const char *const good[] = {"10.0.0.0/8",          "192.0.2.7", "0.0.0.0/0",
                                       "2001:db8::/32",       "::/0",      "::1",
                                       "::ffff:10.0.0.0/104", "1.2.3.4/32"};
    static const char *const text[] = {"10.0.0.0/8", "192.0.2.7/32", "0.0.0.0/0",  "2001:db8::/32",
                                       "::/0",       "::1/128",      "10.0.0.0/8", "1.2.3.4/32"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_msg(gw_cidr_parse(good[i], strlen(good[i]), &c) == 0, "%s", good[i]);
        ck_assert_int_eq(gw_cidr_text(&c, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, text[i]);
    }
    /* forms other parsers read differently, and nonsense */
    static const char *const bad[] = {
        "10.0.0.0/33",  "2001:db8::/129", "1.2.3", "010.1.2.3",  "0x0a.1.2.3",
        "10.0.0.0/08",  "10.0.0.0/",      "/8",    "",           "10.0.0.0/8 ",
        "fe80::1%eth0", "10.0.0.0/-1",    "[::1]", "1.2.3.4/1x", "2001:db8::/3 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(gw_cidr_parse(bad[i], strlen(bad[i]), &c) == -EINVAL, "%s", bad[i]);
    /* bits past the prefix: refused, with the block meant */
    ck_assert_int_eq(gw_cidr_parse("10.1.2.3/8", 10, &c), -EDOM);
    ck_assert_int_eq(gw_cidr_text(&c, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "10.0.0.0/8");
    ck_assert_int_eq(gw_cidr_parse("2001:db8::1/32", 14, &c), -EDOM);
    /* an IPv4-mapped block reaching into IPv6 space */
    ck_assert_int_eq(gw_cidr_parse("::ffff:0.0.0.0/95", 17, &c), -ERANGE);
}
END_TEST

START_TEST(test_cidr_match_by_family_with_ipv4_mapped_as_ipv4)
{
    ck_assert(in("10.0.0.0/8", "10.255.1.2"));
    ck_assert(!in("10.0.0.0/8", "11.0.0.1"));
    ck_assert(in("192.0.2.0/25", "192.0.2.127"));
    ck_assert(!in("192.0.2.0/25", "192.0.2.128"));
    ck_assert(in("0.0.0.0/0", "203.0.113.5"));
    ck_assert(in("2001:db8::/32", "2001:db8:ffff::1"));
    ck_assert(!in("2001:db8::/32", "2001:db9::1"));
    ck_assert(in("2001:db8:0:0:8000::/65", "2001:db8::8000:0:0:1"));
    ck_assert(!in("2001:db8::/65", "2001:db8::8000:0:0:1"));
    /* a dual-stack listener's IPv4 client is judged as IPv4 */
    ck_assert(in("10.0.0.0/8", "::ffff:10.1.2.3"));
    ck_assert(in("::ffff:10.0.0.0/104", "10.9.9.9"));
    /* IPv6 space is not IPv4's */
    ck_assert(!in("::/0", "10.1.2.3"));
    ck_assert(!in("::/0", "::ffff:10.1.2.3"));
    ck_assert(!in("0.0.0.0/0", "::1"));
    ck_assert(in("::1", "::1"));
    ck_assert(!in("::1", "::2"));
}
END_TEST

/* ---- the ip_rules kind ---------------------------------------------------- */

static int compile(const char *text, void **state, struct jpos_diags *d)
{
    const struct gw_pol_kind *k = gw_pol_kind_find("ip_rules");
    ck_assert_ptr_nonnull(k);
    struct jpos_doc doc;
    int rc = jpos_doc_parse(&doc, "ip.json", text, strlen(text), d);
    if (rc == 0) {
        struct jpos_val root;
        jpos_val_root(&doc, &root);
        struct gw_pol_env env = {0};
        rc = k->compile(d, &root, &env, state);
    }
    jpos_doc_done(&doc);
    return rc;
}

static void *rules(const char *text)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *st = NULL;
    int rc = compile(text, &st, &d);
    if (rc != 0)
        jpos_diags_print(&d, stderr);
    ck_assert_int_eq(rc, 0);
    jpos_diags_done(&d);
    return st;
}

static void rules_free(void *st)
{
    gw_pol_kind_find("ip_rules")->free(st);
}

/* The first error's message for a policy that does not load. */
static char *load_error(const char *text, unsigned *line)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    void *st = NULL;
    ck_assert_int_eq(compile(text, &st, &d), -EINVAL);
    ck_assert_uint_ge(d.n, 1);
    char *m = strdup(d.items[0].message);
    if (line)
        *line = d.items[0].line;
    jpos_diags_done(&d);
    return m;
}

START_TEST(test_ip_rules_allow_list_refuses_everyone_else)
{
    void *st = rules("{\"name\": \"office\", \"type\": \"ip_rules\", "
                     "\"allow\": [\"10.0.0.0/8\", \"2001:db8::/32\"]}");
    ck_assert(gw__ip_rules_allow(st, "10.1.2.3"));
    ck_assert(gw__ip_rules_allow(st, "::ffff:10.1.2.3"));
    ck_assert(gw__ip_rules_allow(st, "2001:db8::5"));
    ck_assert(!gw__ip_rules_allow(st, "192.0.2.7"));
    ck_assert(!gw__ip_rules_allow(st, "2001:db9::5"));
    ck_assert(!gw__ip_rules_allow(st, "::ffff:192.0.2.7"));
    /* no address at all (a Unix socket): in no block */
    ck_assert(!gw__ip_rules_allow(st, "unix"));
    ck_assert(!gw__ip_rules_allow(st, ""));
    ck_assert(!gw__ip_rules_allow(st, NULL));
    rules_free(st);
}
END_TEST

START_TEST(test_ip_rules_deny_wins_over_allow)
{
    void *st = rules("{\"name\": \"x\", \"type\": \"ip_rules\", \"allow\": [\"10.0.0.0/8\"], "
                     "\"deny\": [\"10.6.6.0/24\", \"::ffff:10.7.0.0/112\"]}");
    ck_assert(gw__ip_rules_allow(st, "10.6.7.1"));
    ck_assert(!gw__ip_rules_allow(st, "10.6.6.1"));
    ck_assert(!gw__ip_rules_allow(st, "10.7.3.3"));
    ck_assert(!gw__ip_rules_allow(st, "::ffff:10.6.6.200"));
    rules_free(st);
    st = rules("{\"name\": \"y\", \"type\": \"ip_rules\", \"deny\": [\"192.0.2.0/24\", \"::/0\"]}");
    ck_assert(gw__ip_rules_allow(st, "198.51.100.1"));
    ck_assert(!gw__ip_rules_allow(st, "192.0.2.9"));
    ck_assert(!gw__ip_rules_allow(st, "2001:db8::1"));
    /* deny only: what is no address is in no deny block */
    ck_assert(gw__ip_rules_allow(st, "unix"));
    rules_free(st);
}
END_TEST

START_TEST(test_ip_rules_load_errors_say_where_and_why)
{
    unsigned line = 0;
    char *m = load_error("{\"name\": \"x\", \"type\": \"ip_rules\",\n"
                         " \"allow\": [\"10.0.0.0/8\",\n \"10.1.2.3/16\"]}",
                         &line);
    ck_assert_uint_eq(line, 3);
    ck_assert_ptr_nonnull(strstr(m, "did you mean \"10.1.0.0/16\""));
    free(m);
    m = load_error("{\"name\": \"x\", \"type\": \"ip_rules\", \"allow\": [\"10.0.0.0/33\"]}", NULL);
    ck_assert_ptr_nonnull(strstr(m, "not a CIDR block"));
    free(m);
    m = load_error("{\"name\": \"x\", \"type\": \"ip_rules\", \"allow\": []}", NULL);
    ck_assert_ptr_nonnull(strstr(m, "refuses every client"));
    free(m);
    m = load_error("{\"name\": \"x\", \"type\": \"ip_rules\"}", NULL);
    ck_assert_ptr_nonnull(strstr(m, "needs \"allow\" or \"deny\""));
    free(m);
    m = load_error("{\"name\": \"x\", \"type\": \"ip_rules\", \"dney\": [\"10.0.0.0/8\"]}", NULL);
    ck_assert_ptr_nonnull(strstr(m, "did you mean \"deny\""));
    free(m);
}
END_TEST

START_TEST(test_ip_rules_describe_shows_the_blocks)
{
    void *st =
        rules("{\"name\": \"x\", \"type\": \"ip_rules\", \"deny\": [\"::ffff:10.7.0.0/112\", "
              "\"2001:db8::/32\"]}");
    json_t *o = gw_pol_kind_find("ip_rules")->describe(st);
    char *text = json_dumps(o, JSON_COMPACT);
    ck_assert_str_eq(text, "{\"deny\":[\"10.7.0.0/16\",\"2001:db8::/32\"]}");
    free(text);
    json_decref(o);
    rules_free(st);
}
END_TEST

/* ---- the client behind trusted proxies ------------------------------------- */

static struct gw_http_head *request(const char *in)
{
    struct gw_http_parser *p;
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, &lim), 0);
    size_t used;
    struct gw_http_event ev;
    ck_assert_int_eq(gw_http_parser_feed(p, in, strlen(in), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_parser_free(p);
    return ev.head;
}

/* The client of a request carrying `fields` from `peer`, trusting the
 * blocks of `trusted` (comma-separated). */
static const char *client_of(const char *trusted, const char *peer, const char *fields,
                             bool *peer_trusted)
{
    struct gw_cidr list[8];
    size_t n = 0;
    char tbuf[256];
    snprintf(tbuf, sizeof tbuf, "%s", trusted);
    for (char *save, *t = strtok_r(tbuf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        list[n++] = block(t);
    char req[2048];
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", fields);
    struct gw_http_head *h = request(req);
    static char out[64];
    bool pt = false;
    gw__client_resolve(list, n, peer, h, out, sizeof out, &pt);
    if (peer_trusted)
        *peer_trusted = pt;
    gw_http_head_free(h);
    return out;
}

START_TEST(test_forwarded_for_is_ignored_from_an_untrusted_peer)
{
    bool pt = true;
    ck_assert_str_eq(client_of("10.0.0.0/8", "192.0.2.7", "X-Forwarded-For: 1.1.1.1\r\n", &pt),
                     "192.0.2.7");
    ck_assert(!pt);
    /* no trusted proxies at all */
    ck_assert_str_eq(client_of("", "10.0.0.1", "X-Forwarded-For: 1.1.1.1\r\n", &pt), "10.0.0.1");
    ck_assert(!pt);
    /* no address to judge: as given */
    ck_assert_str_eq(client_of("0.0.0.0/0", "unix", "X-Forwarded-For: 1.1.1.1\r\n", &pt), "unix");
    ck_assert(!pt);
}
END_TEST

START_TEST(test_client_is_the_rightmost_untrusted_hop)
{
    bool pt = false;
    /* the client spoofs a hop on the left; the proxy appended the real one */
    ck_assert_str_eq(
        client_of("10.0.0.0/8", "10.0.0.1", "X-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n", &pt),
        "203.0.113.9");
    ck_assert(pt);
    /* two trusted proxies in a row */
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.1",
                               "X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.0.0.2\r\n", NULL),
                     "203.0.113.9");
    /* several lines are one list, in order */
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.1",
                               "X-Forwarded-For: 6.6.6.6\r\nx-forwarded-for: 198.51.100.4, "
                               "10.9.9.9\r\nX-Forwarded-For: 10.0.0.3\r\n",
                               NULL),
                     "198.51.100.4");
    /* every hop trusted: the left-most */
    ck_assert_str_eq(
        client_of("10.0.0.0/8", "10.0.0.1", "X-Forwarded-For: 10.1.1.1, 10.2.2.2\r\n", NULL),
        "10.1.1.1");
    /* a trusted peer without the field: the peer */
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.1", "", &pt), "10.0.0.1");
    ck_assert(pt);
    /* IPv6, brackets and ports as some proxies write them; mapped peers */
    ck_assert_str_eq(client_of("2001:db8::/32,10.0.0.0/8", "::ffff:10.0.0.1",
                               "X-Forwarded-For: [2001:db9::7]:4711, [2001:db8::2]\r\n", NULL),
                     "2001:db9::7");
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.1",
                               "X-Forwarded-For: 192.0.2.1:5555, 10.0.0.8:80\r\n", NULL),
                     "192.0.2.1");
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.1",
                               "X-Forwarded-For: ::ffff:192.0.2.1 ,, \t10.0.0.8\r\n", NULL),
                     "192.0.2.1");
}
END_TEST

START_TEST(test_bracketed_ipv4_mapped_hop_is_its_ipv4_address)
{
    /* an IPv6 literal in brackets, as a dual-stack proxy writes its IPv4
     * clients; the walk goes on past it when it is trusted */
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.1",
                               "X-Forwarded-For: 6.6.6.6, [::ffff:192.0.2.1]:4711\r\n", NULL),
                     "192.0.2.1");
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.1",
                               "X-Forwarded-For: 198.51.100.4, [::ffff:10.0.0.9]\r\n", NULL),
                     "198.51.100.4");
}
END_TEST

START_TEST(test_garbage_hop_ends_the_walk_at_the_last_address_believed)
{
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.1",
                               "X-Forwarded-For: 6.6.6.6, unknown, 10.0.0.2\r\n", NULL),
                     "10.0.0.2");
    ck_assert_str_eq(
        client_of("10.0.0.0/8", "10.0.0.1", "X-Forwarded-For: 6.6.6.6, 1.2.3\r\n", NULL),
        "10.0.0.1");
    ck_assert_str_eq(
        client_of("10.0.0.0/8", "10.0.0.1", "X-Forwarded-For: 6.6.6.6, [1.2.3.4]\r\n", NULL),
        "10.0.0.1");
    ck_assert_str_eq(
        client_of("10.0.0.0/8", "10.0.0.1", "X-Forwarded-For: 6.6.6.6, 1.2.3.4:99999x\r\n", NULL),
        "10.0.0.1");
    /* a hop longer than GW_XFF_HOP_MAX is garbage however it starts */
    char f[256];
    snprintf(f, sizeof f, "X-Forwarded-For: 6.6.6.6, 192.0.2.1%*s\r\n", GW_XFF_HOP_MAX, "x");
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.1", f, NULL), "10.0.0.1");
}
END_TEST

START_TEST(test_forwarded_for_walk_is_bounded)
{
    /* GW_XFF_MAX_HOPS + 8 trusted hops with an untrusted client on the
     * left: the walk stops at the last hop it reads */
    char f[1024] = "X-Forwarded-For: 203.0.113.1";
    for (int i = GW_XFF_MAX_HOPS + 8; i >= 1; i--) {
        char hop[24];
        snprintf(hop, sizeof hop, ", 10.0.0.%d", i);
        strcat(f, hop);
    }
    strcat(f, "\r\n");
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.250", f, NULL), "10.0.0.32");
    /* within the bound the client is found */
    ck_assert_str_eq(client_of("10.0.0.0/8", "10.0.0.250",
                               "X-Forwarded-For: 203.0.113.1, 10.0.0.3, 10.0.0.2, 10.0.0.1\r\n",
                               NULL),
                     "203.0.113.1");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ip_rules");
    TCase *t = tcase_create("cidr");
    tcase_add_test(t, test_cidr_blocks_parse_in_canonical_forms_only);
    tcase_add_test(t, test_cidr_match_by_family_with_ipv4_mapped_as_ipv4);
    suite_add_tcase(s, t);
    t = tcase_create("kind");
    tcase_add_test(t, test_ip_rules_allow_list_refuses_everyone_else);
    tcase_add_test(t, test_ip_rules_deny_wins_over_allow);
    tcase_add_test(t, test_ip_rules_load_errors_say_where_and_why);
    tcase_add_test(t, test_ip_rules_describe_shows_the_blocks);
    suite_add_tcase(s, t);
    t = tcase_create("trusted_proxies");
    tcase_add_test(t, test_forwarded_for_is_ignored_from_an_untrusted_peer);
    tcase_add_test(t, test_client_is_the_rightmost_untrusted_hop);
    tcase_add_test(t, test_garbage_hop_ends_the_walk_at_the_last_address_believed);
    tcase_add_test(t, test_forwarded_for_walk_is_bounded);
    tcase_add_test(t, test_bracketed_ipv4_mapped_hop_is_its_ipv4_address);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
