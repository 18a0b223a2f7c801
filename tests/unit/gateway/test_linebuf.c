/* test_linebuf.c: the bounded line writer. Buffers are allocated at their
 * exact size (so a sanitizer build sees any write past the end) and
 * followed, in the plain build, by a check that the bytes after the
 * capacity are untouched. */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "linebuf.h"

#define CANARY 0x5a
#define SLACK 16

/* A buffer of `cap` writable bytes followed by canary bytes. */
static char *area(size_t cap)
{
    char *p = malloc(cap + SLACK);
    ck_assert_ptr_nonnull(p);
    memset(p, CANARY, cap + SLACK);
    return p;
}

static void assert_canary(const char *p, size_t cap)
{
    for (size_t i = cap; i < cap + SLACK; i++)
        ck_assert_int_eq((unsigned char)p[i], CANARY);
}

static void assert_text(const struct gw__linebuf *b, const char *want)
{
    size_t n = strlen(want);
    ck_assert_msg(b->len == n && memcmp(b->buf, want, n) == 0, "got \"%.*s\", want \"%s\"",
                  (int)b->len, b->buf, want);
}

START_TEST(put_fills_to_the_exact_capacity_and_refuses_one_more_byte)
{
    char *p = area(5);
    struct gw__linebuf b;
    gw__linebuf_init(&b, p, 5);
    ck_assert(gw__linebuf_puts(&b, "abc"));
    ck_assert(gw__linebuf_puts(&b, "de"));
    assert_text(&b, "abcde");
    ck_assert(!gw__linebuf_full(&b));
    ck_assert(!gw__linebuf_puts(&b, "f"));
    ck_assert(gw__linebuf_full(&b));
    assert_text(&b, "abcde");
    assert_canary(p, 5);
    free(p);
}
END_TEST

START_TEST(put_that_does_not_fit_writes_nothing_and_later_appends_are_refused)
{
    char *p = area(4);
    struct gw__linebuf b;
    gw__linebuf_init(&b, p, 4);
    ck_assert(gw__linebuf_puts(&b, "ab"));
    ck_assert(!gw__linebuf_puts(&b, "cde"));
    assert_text(&b, "ab");
    /* Sticky: what is in the buffer stays a prefix with no hole in it. */
    ck_assert(!gw__linebuf_puts(&b, "c"));
    ck_assert(!gw__linebuf_puts(&b, ""));
    ck_assert(!gw__linebuf_u64(&b, 1));
    ck_assert(!gw__linebuf_json(&b, "", 0, 100, NULL));
    assert_text(&b, "ab");
    assert_canary(p, 4);
    free(p);
}
END_TEST

START_TEST(zero_capacity_buffer_takes_nothing)
{
    char *p = area(0);
    struct gw__linebuf b;
    gw__linebuf_init(&b, p, 0);
    ck_assert(gw__linebuf_puts(&b, ""));
    ck_assert(!gw__linebuf_puts(&b, "a"));
    ck_assert_uint_eq(b.len, 0);
    assert_canary(p, 0);
    free(p);
}
END_TEST

START_TEST(numbers_are_written_whole_or_not_at_all)
{
    char *p = area(3);
    struct gw__linebuf b;
    gw__linebuf_init(&b, p, 3);
    ck_assert(gw__linebuf_u64(&b, 123));
    assert_text(&b, "123");
    gw__linebuf_init(&b, p, 3);
    ck_assert(!gw__linebuf_u64(&b, 1234));
    ck_assert_uint_eq(b.len, 0);
    gw__linebuf_init(&b, p, 3);
    ck_assert(!gw__linebuf_i64(&b, -123));
    ck_assert_uint_eq(b.len, 0);
    gw__linebuf_init(&b, p, 3);
    ck_assert(!gw__linebuf_milli(&b, 1));
    ck_assert_uint_eq(b.len, 0);
    assert_canary(p, 3);
    free(p);
}
END_TEST

START_TEST(numbers_have_printf_text)
{
    char buf[64], want[64];
    struct gw__linebuf b;
    const uint64_t u[] = {0, 1, 9, 10, 999, 1000, 4294967296ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        gw__linebuf_init(&b, buf, sizeof buf);
        ck_assert(gw__linebuf_u64(&b, u[i]));
        snprintf(want, sizeof want, "%llu", (unsigned long long)u[i]);
        assert_text(&b, want);
    }
    const int64_t s[] = {0, -1, 42, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        gw__linebuf_init(&b, buf, sizeof buf);
        ck_assert(gw__linebuf_i64(&b, s[i]));
        snprintf(want, sizeof want, "%lld", (long long)s[i]);
        assert_text(&b, want);
    }
    gw__linebuf_init(&b, buf, sizeof buf);
    gw__linebuf_u64_pad(&b, 7, 3);
    gw__linebuf_u64_pad(&b, 1234, 3);
    gw__linebuf_u64_pad(&b, 0, 2);
    gw__linebuf_u64_pad(&b, 5, 0);
    assert_text(&b, "0071234005");
    /* milli is "%.3f" of v / 1000.0, exactly (no floating point). */
    const uint64_t m[] = {0, 1, 12, 999, 1000, 12045, 123456789, 4503599627370495ull};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        gw__linebuf_init(&b, buf, sizeof buf);
        ck_assert(gw__linebuf_milli(&b, m[i]));
        snprintf(want, sizeof want, "%.3f", (double)m[i] / 1000.0);
        assert_text(&b, want);
    }
    gw__linebuf_init(&b, buf, sizeof buf);
    ck_assert(gw__linebuf_milli(&b, UINT64_MAX));
    assert_text(&b, "18446744073709551.615");
}
END_TEST

/* Appends s (n bytes) as JSON into a buffer of `cap` with cap `max`; checks
 * the result, the cut flag and the canary. */
static void check_json(size_t cap, size_t max, const char *s, size_t n, const char *want,
                       bool want_cut)
{
    char *p = area(cap);
    struct gw__linebuf b;
    gw__linebuf_init(&b, p, cap);
    bool cut = false;
    ck_assert(gw__linebuf_json(&b, s, n, max, &cut));
    assert_text(&b, want);
    ck_assert_msg(cut == want_cut, "cut %d for \"%s\"", cut, want);
    ck_assert(!gw__linebuf_full(&b));
    assert_canary(p, cap);
    free(p);
}

#define J(cap, max, lit, want, cut) check_json(cap, max, lit, sizeof(lit) - 1, want, cut)

START_TEST(json_escapes_quotes_backslashes_and_controls)
{
    J(64, 64, "a\"b\\c", "\"a\\\"b\\\\c\"", false);
    J(64, 64, "\x01\x1f\n\x7f", "\"\\u0001\\u001f\\u000a\\u007f\"", false);
    J(64, 64, "a\0b", "\"a\\u0000b\"", false);
    J(64, 64, "", "\"\"", false);
    J(64, 64, "/path?q=1&r=~", "\"/path?q=1&r=~\"", false);
}
END_TEST

START_TEST(json_copies_valid_utf8_and_replaces_each_invalid_byte)
{
    /* 2-, 3- and 4-byte sequences, the extremes of each range. */
    J(64, 64, "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
      "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"", false);
    J(64, 64, "\xed\x9f\xbf\xee\x80\x80", "\"\xed\x9f\xbf\xee\x80\x80\"", false);
    /* A stray continuation byte; bytes that never start a sequence. */
    J(64, 64, "\x80", "\"\\ufffd\"", false);
    J(64, 64, "\xc0\xc1\xf5\xff", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"", false);
    /* Overlong forms: each byte is replaced. */
    J(64, 64, "\xc0\xaf", "\"\\ufffd\\ufffd\"", false);
    J(64, 64, "\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"", false);
    J(64, 64, "\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"", false);
    /* A surrogate (U+D800) and a code point above U+10FFFF. */
    J(64, 64, "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"", false);
    J(64, 64, "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"", false);
    /* A sequence cut short, mid-string and at the end of the input. */
    J(64, 64, "\xe2\x82(", "\"\\ufffd\\ufffd(\"", false);
    J(64, 64, "a\xe2\x82", "\"a\\ufffd\\ufffd\"", false);
    /* Only n bytes are read: a valid sequence past n is not looked at. */
    check_json(64, 64, "a\xc3\xa9", 2, "\"a\\ufffd\"", false);
}
END_TEST

START_TEST(json_cap_is_exact_and_counts_the_quotes)
{
    J(64, 8, "abcdef", "\"abcdef\"", false);
    J(64, 7, "abcdef", "\"abcde\"", true);
    J(64, 2, "abcdef", "\"\"", true);
    J(64, 2, "", "\"\"", false);
    /* The buffer's own end cuts the same way, and the buffer is not full. */
    J(8, 100, "abcdef", "\"abcdef\"", false);
    J(7, 100, "abcdef", "\"abcde\"", true);
    J(2, 100, "abcdef", "\"\"", true);
}
END_TEST

START_TEST(json_cut_never_splits_an_escape_or_a_character)
{
    J(64, 5, "ab\"", "\"ab\"", true);
    J(64, 6, "ab\"", "\"ab\\\"\"", false);
    J(64, 8, "a\x01", "\"a\"", true);
    J(64, 9, "a\x01", "\"a\\u0001\"", false);
    J(64, 4, "a\xc3\xa9", "\"a\"", true);
    J(64, 5, "a\xc3\xa9", "\"a\xc3\xa9\"", false);
    J(64, 5, "\xf0\x9f\x98\x80", "\"\"", true);
    J(64, 6, "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"", false);
    J(64, 7, "\xff", "\"\"", true);
    J(64, 8, "\xff", "\"\\ufffd\"", false);
    J(7, 100, "\xff", "\"\"", true);
}
END_TEST

START_TEST(json_without_room_for_its_quotes_fails_and_marks_the_buffer_full)
{
    char *p = area(3);
    struct gw__linebuf b;
    gw__linebuf_init(&b, p, 3);
    ck_assert(gw__linebuf_puts(&b, "ab"));
    bool cut = false;
    ck_assert(!gw__linebuf_json(&b, "x", 1, 100, &cut));
    ck_assert(gw__linebuf_full(&b));
    ck_assert(!cut);
    assert_text(&b, "ab");
    gw__linebuf_init(&b, p, 3);
    ck_assert(!gw__linebuf_json(&b, "x", 1, 1, &cut));
    ck_assert(gw__linebuf_full(&b));
    ck_assert_uint_eq(b.len, 0);
    assert_canary(p, 3);
    free(p);
}
END_TEST

START_TEST(json_null_is_written_as_null_within_the_cap)
{
    char *p = area(8);
    struct gw__linebuf b;
    gw__linebuf_init(&b, p, 8);
    ck_assert(gw__linebuf_json(&b, NULL, 0, 4, NULL));
    assert_text(&b, "null");
    ck_assert(!gw__linebuf_json(&b, NULL, 0, 3, NULL));
    ck_assert(gw__linebuf_full(&b));
    gw__linebuf_init(&b, p, 7);
    ck_assert(gw__linebuf_puts(&b, "abcd"));
    ck_assert(!gw__linebuf_json(&b, NULL, 0, 4, NULL));
    assert_text(&b, "abcd");
    assert_canary(p, 8);
    free(p);
}
END_TEST

/* The documented rule, one code point at a time, for the check below. */
static size_t reference_decode(const unsigned char *s, size_t n, uint32_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        uint32_t cp = 0xfffd;
        size_t len = 1;
        if (c < 0x80) {
            cp = c;
        } else {
            size_t l = c >= 0xf8 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
            uint32_t v = l == 4 ? c & 7u : l == 3 ? c & 15u : c & 31u;
            bool ok = l && i + l <= n;
            for (size_t j = 1; ok && j < l; j++) {
                ok = (s[i + j] & 0xc0) == 0x80;
                v = v << 6 | (s[i + j] & 0x3fu);
            }
            uint32_t min = l == 2 ? 0x80 : l == 3 ? 0x800 : 0x10000;
            if (ok && v >= min && v <= 0x10ffff && (v < 0xd800 || v > 0xdfff)) {
                cp = v;
                len = l;
            }
        }
        out[k++] = cp;
        i += len;
    }
    return k;
}

/* Appends the UTF-8 of cp to o. */
static size_t utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

START_TEST(any_bytes_give_valid_utf8_json_that_decodes_to_a_prefix_of_the_rule)
{
    /* Random strings weighted towards the interesting bytes, random caps:
     * the output must be a JSON string jansson accepts (it checks UTF-8),
     * decoding to a prefix of what the rule gives, cut only when needed. */
    static const unsigned char pick[] = {'a',  '"',  '\\', 0x00, 0x1f, 0x7f, 0x80, 0xbf,
                                         0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4,
                                         0xf5, 0xff, 0xa0, 0x90, 0x8f, 0x9f, 'z',  '/'};
    srand(12345);
    unsigned char in[64];
    uint32_t cps[64];
    char expect[64 * 4 + 1];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand() % 40);
        for (size_t i = 0; i < n; i++)
            in[i] = rand() % 3 ? pick[rand() % sizeof pick] : (unsigned char)rand();
        size_t cap = (size_t)(rand() % 300);
        size_t max = (size_t)(rand() % 300);
        char *p = area(cap);
        struct gw__linebuf b;
        gw__linebuf_init(&b, p, cap);
        bool cut = false;
        bool ok = gw__linebuf_json(&b, (const char *)in, n, max, &cut);
        size_t limit = cap < max ? cap : max;
        assert_canary(p, cap);
        if (limit < 2) {
            ck_assert(!ok && gw__linebuf_full(&b) && b.len == 0);
            free(p);
            continue;
        }
        ck_assert(ok && !gw__linebuf_full(&b));
        ck_assert_uint_le(b.len, limit);
        json_error_t err;
        json_t *v = json_loadb(p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        ck_assert_msg(v && json_is_string(v), "not a JSON string: %s (%.*s)", err.text, (int)b.len,
                      p);
        size_t k = reference_decode(in, n, cps), e = 0;
        for (size_t i = 0; i < k; i++)
            e += utf8_put(cps[i], expect + e);
        size_t got = json_string_length(v);
        ck_assert(got <= e && memcmp(json_string_value(v), expect, got) == 0);
        ck_assert(cut == (got < e));
        /* A cut leaves no room for the next character's escape. */
        if (cut)
            ck_assert_uint_gt(b.len + 6, limit);
        json_decref(v);
        free(p);
    }
}
END_TEST

static void assert_time(int64_t sec, uint32_t nsec, const char *want)
{
    char buf[24];
    struct gw__linebuf b;
    gw__linebuf_init(&b, buf, sizeof buf);
    ck_assert(gw__linebuf_time(&b, sec, nsec));
    assert_text(&b, want);
}

START_TEST(time_is_rfc3339_utc_with_milliseconds)
{
    assert_time(0, 0, "1970-01-01T00:00:00.000Z");
    assert_time(1796549126, 123999999, "2026-12-06T09:25:26.123Z");
    assert_time(951782400, 1000000, "2000-02-29T00:00:00.001Z"); /* a 400-year leap day */
    assert_time(4107542400, 0, "2100-03-01T00:00:00.000Z");      /* 2100 is not a leap year */
    assert_time(-1, 999999999, "1969-12-31T23:59:59.999Z");      /* before the epoch */
    assert_time(-62167219200, 0, "0000-01-01T00:00:00.000Z");    /* the first RFC 3339 instant */
    assert_time(253402300799, 999000000, "9999-12-31T23:59:59.999Z"); /* and the last */
    /* Beyond them: clamped, never a fifth digit or a sign. */
    assert_time(253402300800, 0, "9999-12-31T23:59:59.999Z");
    assert_time(INT64_MAX, 0, "9999-12-31T23:59:59.999Z");
    assert_time(INT64_MIN, 5, "0000-01-01T00:00:00.000Z");
}
END_TEST

START_TEST(time_agrees_with_gmtime_over_four_centuries)
{
    /* Every 19 hours and 13 seconds from 1850 to 2250 (about 185 000
     * instants: each day of the 400-year cycle, at varying times of day). */
    for (int64_t t = -3786825600; t < 8836128000; t += 19 * 3600 + 13) {
        time_t tt = (time_t)t;
        struct tm tm;
        ck_assert_ptr_nonnull(gmtime_r(&tt, &tm));
        char want[96];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(t % 1000 + 1000) % 1000);
        assert_time(t, (uint32_t)((t % 1000 + 1000) % 1000) * 1000000, want);
    }
}
END_TEST

START_TEST(time_is_written_whole_or_not_at_all)
{
    char *p = area(23);
    struct gw__linebuf b;
    gw__linebuf_init(&b, p, 23);
    ck_assert(!gw__linebuf_time(&b, 0, 0));
    ck_assert(gw__linebuf_full(&b));
    ck_assert_uint_eq(b.len, 0);
    assert_canary(p, 23);
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("linebuf");
    TCase *tc = tcase_create("linebuf");
    tcase_add_test(tc, put_fills_to_the_exact_capacity_and_refuses_one_more_byte);
    tcase_add_test(tc, put_that_does_not_fit_writes_nothing_and_later_appends_are_refused);
    tcase_add_test(tc, zero_capacity_buffer_takes_nothing);
    tcase_add_test(tc, numbers_are_written_whole_or_not_at_all);
    tcase_add_test(tc, numbers_have_printf_text);
    tcase_add_test(tc, json_escapes_quotes_backslashes_and_controls);
    tcase_add_test(tc, json_copies_valid_utf8_and_replaces_each_invalid_byte);
    tcase_add_test(tc, json_cap_is_exact_and_counts_the_quotes);
    tcase_add_test(tc, json_cut_never_splits_an_escape_or_a_character);
    tcase_add_test(tc, json_without_room_for_its_quotes_fails_and_marks_the_buffer_full);
    tcase_add_test(tc, json_null_is_written_as_null_within_the_cap);
    tcase_add_test(tc, any_bytes_give_valid_utf8_json_that_decodes_to_a_prefix_of_the_rule);
    tcase_add_test(tc, time_is_rfc3339_utc_with_milliseconds);
    tcase_add_test(tc, time_agrees_with_gmtime_over_four_centuries);
    tcase_add_test(tc, time_is_written_whole_or_not_at_all);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
