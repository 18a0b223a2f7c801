/* test_http_lex.c: the lexical layer's public part (gateway/src/http/lex.c):
 * the one hex-digit reader that chunk sizes, percent-escapes, IP literals
 * and the admin API's query strings all decode with. */
#include "gw/http1.h"
#include "../../../gateway/src/http/http_int.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Case-insensitive equality: every pair of bytes against the plain
 * definition (ASCII letters fold, nothing else does), a NUL inside a
 * against b's end, and lengths that differ. */
START_TEST(test_ieq_folds_ascii_letters_only)
{
    for (int x = 0; x < 256; x++)
        for (int y = 1; y < 256; y++) {
            char a[2] = {(char)x, 0}, b[2] = {(char)y, 0};
            bool want = gw__http_lower((char)x) == gw__http_lower((char)y);
            ck_assert_msg(gw__http_ieq(a, 1, b) == want, "%d %d", x, y);
        }
    ck_assert(gw__http_ieq("Content-LENGTH", 14, "content-length"));
    ck_assert(!gw__http_ieq("content-lengt", 13, "content-length"));
    ck_assert(!gw__http_ieq("content-lengthx", 15, "content-length"));
    ck_assert(!gw__http_ieq("a\0", 2, "a"));
    ck_assert(!gw__http_ieq("[", 1, "{")); /* 0x5b and 0x7b: no letters */
    ck_assert(gw__http_ieq("", 0, ""));
}
END_TEST

START_TEST(test_hexval_reads_every_hex_digit_in_either_case_and_nothing_else)
{
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    for (int c = 0; c < 256; c++) {
        const char *l = c ? memchr(lower, c, 16) : NULL;
        const char *u = c ? memchr(upper, c, 16) : NULL;
        int want = l ? (int)(l - lower) : u ? (int)(u - upper) : -1;
        ck_assert_msg(gw_http_hexval((unsigned char)c) == want, "byte 0x%02x: %d, expected %d", c,
                      gw_http_hexval((unsigned char)c), want);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http_lex");
    TCase *t = tcase_create("hex");
    tcase_add_test(t, test_hexval_reads_every_hex_digit_in_either_case_and_nothing_else);
    tcase_add_test(t, test_ieq_folds_ascii_letters_only);
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
