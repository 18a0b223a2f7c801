/* test_http_lex.c: the lexical layer's public part (gateway/src/http/lex.c):
 * the one hex-digit reader that chunk sizes, percent-escapes, IP literals
 * and the admin API's query strings all decode with. */
#include "gw/http1.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

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
