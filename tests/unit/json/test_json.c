/* test_json.c: a compact document (jpos_doc_parse_compact) reads exactly as
 * the jansson-built one (jpos_doc_parse) does: the same result, the same
 * diagnostics, and for every value the same type, key, positions and
 * content. Common route-file text must take the compact path. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jpos/json.h"

static void same_diags(const struct jpos_diags *a, const struct jpos_diags *b)
{
    ck_assert_uint_eq(a->n, b->n);
    ck_assert_uint_eq(a->nerrors, b->nerrors);
    for (size_t i = 0; i < a->n; i++) {
        ck_assert_int_eq(a->items[i].level, b->items[i].level);
        ck_assert_str_eq(a->items[i].file, b->items[i].file);
        ck_assert_uint_eq(a->items[i].line, b->items[i].line);
        ck_assert_uint_eq(a->items[i].column, b->items[i].column);
        ck_assert_str_eq(a->items[i].path, b->items[i].path);
        ck_assert_str_eq(a->items[i].message, b->items[i].message);
    }
}

static void same_value(const struct jpos_val *a, const struct jpos_val *b)
{
    unsigned la, ca, lb, cb;
    json_type t = jpos_typeof(a);
    ck_assert_int_eq(t, jpos_typeof(b));
    ck_assert_str_eq(jpos_val_type_name(a), jpos_val_type_name(b));
    ck_assert_uint_eq(jpos_size(a), jpos_size(b));
    jpos_val_pos(a, &la, &ca);
    jpos_val_pos(b, &lb, &cb);
    ck_assert_uint_eq(la, lb);
    ck_assert_uint_eq(ca, cb);
    jpos_val_key_pos(a, &la, &ca);
    jpos_val_key_pos(b, &lb, &cb);
    ck_assert_uint_eq(la, lb);
    ck_assert_uint_eq(ca, cb);
    ck_assert_int_eq(a->key == NULL, b->key == NULL);
    if (a->key)
        ck_assert_str_eq(a->key, b->key);
    ck_assert_uint_eq(a->index, b->index);
    char pa[512], pb[512];
    jpos_val_path(a, pa, sizeof(pa));
    jpos_val_path(b, pb, sizeof(pb));
    ck_assert_str_eq(pa, pb);

    struct jpos_diags d;
    jpos_diags_init(&d);
    const char *sa, *sb;
    size_t na, nb;
    long long ia, ib;
    bool ba, bb;
    ck_assert_int_eq(jpos_string(&d, a, 1 << 20, &sa, &na), jpos_string(&d, b, 1 << 20, &sb, &nb));
    if (t == JSON_STRING) {
        ck_assert_uint_eq(na, nb);
        ck_assert_mem_eq(sa, sb, na);
        ck_assert_int_eq(sa[na], '\0');
    }
    ck_assert_int_eq(jpos_int(&d, a, -1000000, 1000000, &ia),
                     jpos_int(&d, b, -1000000, 1000000, &ib));
    ck_assert(jpos_integer_value(a) == jpos_integer_value(b));
    ck_assert_int_eq(jpos_bool(&d, a, &ba), jpos_bool(&d, b, &bb));
    if (t == JSON_TRUE || t == JSON_FALSE)
        ck_assert_int_eq(ba, bb);
    ck_assert_int_eq(jpos_object(&d, a), jpos_object(&d, b));
    ck_assert_int_eq(jpos_array(&d, a), jpos_array(&d, b));
    /* each reader reported (or not) the same thing at the same place */
    ck_assert_uint_eq(d.n % 2, 0);
    for (size_t i = 0; i < d.n; i += 2) {
        ck_assert_str_eq(d.items[i].message, d.items[i + 1].message);
        ck_assert_uint_eq(d.items[i].line, d.items[i + 1].line);
        ck_assert_uint_eq(d.items[i].column, d.items[i + 1].column);
        ck_assert_str_eq(d.items[i].path, d.items[i + 1].path);
    }
    jpos_diags_done(&d);

    struct jpos_iter ita, itb;
    struct jpos_val ea, eb;
    jpos_iter_init(&ita, a);
    jpos_iter_init(&itb, b);
    for (;;) {
        bool ma = jpos_iter_next(&ita, &ea), mb = jpos_iter_next(&itb, &eb);
        ck_assert_int_eq(ma, mb);
        if (!ma)
            break;
        same_value(&ea, &eb);
        if (ea.key) {
            struct jpos_val ga, gb;
            ck_assert(jpos_obj_get(a, ea.key, &ga));
            ck_assert(jpos_obj_get(b, ea.key, &gb));
            ck_assert_uint_eq(ga.node, gb.node);
        }
    }
}

/* Parses `text` both ways and checks they agree; returns whether the
 * compact document holds its own values (took the compact path). */
static bool agree(const char *text, size_t len)
{
    struct jpos_doc ja, co;
    struct jpos_diags da, dc;
    jpos_diags_init(&da);
    jpos_diags_init(&dc);
    int ra = jpos_doc_parse(&ja, "t.json", text, len, &da);
    int rc = jpos_doc_parse_compact(&co, "t.json", text, len, &dc);
    ck_assert_int_eq(ra, rc);
    same_diags(&da, &dc);
    bool compact = false;
    if (ra == 0) {
        struct jpos_val a, c;
        jpos_val_root(&ja, &a);
        jpos_val_root(&co, &c);
        compact = c.v == NULL;
        same_value(&a, &c);
    }
    jpos_doc_done(&ja);
    jpos_doc_done(&co);
    jpos_diags_done(&da);
    jpos_diags_done(&dc);
    return compact;
}

static bool agree_str(const char *text)
{
    return agree(text, strlen(text));
}

static const char route_file[] =
    "{\n"
    "  \"$schema\": \"https://tandem.example/routes.schema.json\",\n"
    "  \"routes\": [\n"
    "    {\"name\": \"users\", \"match\": {\"path\": \"/users/:id\", \"methods\": [\"GET\"],\n"
    "     \"headers\": {\"x-a\": true, \"x-b\": false, \"x-c\": "
    "\"v\\\"q\\\\\\/\\b\\f\\n\\r\\t\"}},\n"
    "     \"upstream\": \"api\", \"retries\": -3, \"timeout_ms\": 0, \"big\": 123456789012345678,\n"
    "\t\"n\": null, \"e\": {}, \"a\": [], \"x\": [1, -0, 20, [[]], {\"\": \"\"}]},\r\n"
    "    {\"name\": \"b\", \"respond\": {\"status\": 200, \"body\": \"ok\"}}\n"
    "  ]\n"
    "}\n";

/* The root of a text that did not parse, by either function: readers find
 * no value there (no type a reader asks for, no size, no members) and read
 * nothing out of the document. */
START_TEST(a_document_that_did_not_parse_has_no_value_to_read)
{
    static const char *const bad[] = {"{\"a\": }", "", "[1,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int compact = 0; compact < 2; compact++) {
            struct jpos_diags d;
            struct jpos_doc doc;
            jpos_diags_init(&d);
            int r = compact ? jpos_doc_parse_compact(&doc, "t.json", bad[i], strlen(bad[i]), &d)
                            : jpos_doc_parse(&doc, "t.json", bad[i], strlen(bad[i]), &d);
            ck_assert_int_lt(r, 0);
            struct jpos_val root, m;
            jpos_val_root(&doc, &root);
            ck_assert_int_eq(jpos_typeof(&root), JSON_NULL);
            ck_assert_uint_eq(jpos_size(&root), 0);
            ck_assert(jpos_integer_value(&root) == 0);
            struct jpos_iter it;
            jpos_iter_init(&it, &root);
            ck_assert(!jpos_iter_next(&it, &m));
            jpos_doc_done(&doc);
            jpos_diags_done(&d);
        }
    }
}
END_TEST

START_TEST(common_route_text_takes_the_compact_path)
{
    ck_assert(agree_str(route_file));
    ck_assert(agree_str("[]"));
    ck_assert(agree_str(" \n{} \n"));
    ck_assert(agree_str("[1,2,{\"a\":[3]}]"));
    ck_assert(agree_str("[\"del \x7f, tilde ~, space, bang !\"]"));
}
END_TEST

START_TEST(what_it_does_not_take_reads_as_jansson_reads_it)
{
    static const char *const texts[] = {
        /* left to jansson but valid */
        "{\"a\": 1.5}",
        "{\"a\": 1e3}",
        "{\"a\": 12345678901234567890}",
        "{\"a\": -9223372036854775808}",
        "{\"a\": 9223372036854775807}",
        "{\"a\": 1234567890123456789}",
        "{\"a\": 9999999999999999999}",
        "{\"a\": -9999999999999999999}",
        "{\"a\": \"\\u00e9\\ud83d\\ude00\"}",
        "{\"a\": \"caf\xc3\xa9\", \"b\": 1}",
        "{\"caf\xc3\xa9\": [\"\xe2\x82\xac\", 2]}",
        "{\"a\\u0062\": 1, \"ab\": 2}",
        /* errors */
        "",
        "   ",
        "1",
        "\"s\"",
        "null",
        "{\"a\": 1,}",
        "[1,]",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\": 01}",
        "{\"a\": -}",
        "{\"a\": -01}",
        "{\"a\": 1.}",
        "{\"a\": 1e}",
        "{\"a\": tru}",
        "{\"a\": truex}",
        "{\"a\": nul}",
        "{\"a\": 12abc}",
        "{\"a\": \"x\ty\"}",
        "{\"a\": \"\\x\"}",
        "{\"a\": \"\\u0000\"}",
        "{\"a\": \"\\ud800\"}",
        "{\"a\": \"unterminated}",
        "{\"a\": 1, \"a\": 2}",
        "{\"a\": 1, \"b\": {\"c\": 1, \"c\": 1}}",
        "{\"k1\":1,\"k2\":1,\"k3\":1,\"k4\":1,\"k5\":1,\"k6\":1,\"k7\":1,\"k8\":1,\"k9\":1,"
        "\"k10\":1,\"k11\":1,\"k12\":1,\"k13\":1,\"k14\":1,\"k15\":1,\"k16\":1,\"k17\":1,"
        "\"k18\":1,\"k3\":2}",
        "{\"k1\":1,\"k2\":1,\"k3\":1,\"k4\":1,\"k5\":1,\"k6\":1,\"k7\":1,\"k8\":1,\"k9\":1,"
        "\"k10\":1,\"k11\":1,\"k12\":1,\"k13\":1,\"k14\":1,\"k15\":1,\"k16\":1,\"k17\":1,"
        "\"k18\":1,\"k19\":2}",
        "{\"a\": \"\\\"\", \"\\\"\": 1, \"a\\/\": 2, \"a/\": 3}",
        "{} x",
        "{}}",
        "[[",
        "{\"a\":\n\n  [1,\n   \"\xff\"]}",
        "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        agree_str(texts[i]);
    /* an embedded NUL byte, and nesting at and past the limit */
    agree("{\"a\": \"x\0\"}", 10);
    agree("[1]\0", 4);
    char deep[2 * (JPOS_MAX_DEPTH + 2) + 1];
    for (int depth = JPOS_MAX_DEPTH - 1; depth <= JPOS_MAX_DEPTH + 1; depth++) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        deep[2 * depth] = '\0';
        bool compact = agree_str(deep);
        ck_assert_int_eq(compact, depth <= JPOS_MAX_DEPTH);
    }
}
END_TEST

/* Random edits of a route file (bytes that matter to JSON put in, taken out
 * or swapped): each result, valid or not, reads the same both ways. */
START_TEST(random_edits_read_the_same_both_ways)
{
    static const char alphabet[] = "{}[]\",:\\ \n\t\r0123456789-+.eEtrufalsn/bu\x01\x80\xc3\xa9";
    size_t base = strlen(route_file);
    char *buf = malloc(base + 16);
    ck_assert_ptr_nonnull(buf);
    unsigned seed = 12345;
    size_t compact = 0;
    for (int round = 0; round < 8000; round++) {
        memcpy(buf, route_file, base);
        size_t len = base;
        int edits = 1 + round % 3;
        for (int e = 0; e < edits; e++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            char c = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
            switch ((seed >> 4) % 3) {
            case 0:
                buf[at] = c;
                break;
            case 1:
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = c;
                len++;
                break;
            default:
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            }
        }
        compact += agree(buf, len);
    }
    /* the edits that leave valid common text are parsed compactly */
    ck_assert_uint_gt(compact, 400);
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("compact");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, common_route_text_takes_the_compact_path);
    tcase_add_test(tc, what_it_does_not_take_reads_as_jansson_reads_it);
    tcase_add_test(tc, random_edits_read_the_same_both_ways);
    tcase_add_test(tc, a_document_that_did_not_parse_has_no_value_to_read);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
