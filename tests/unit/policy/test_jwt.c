/* test_jwt.c: the jwt policy's verification: every algorithm with a good
 * and a bad signature (tokens signed by the openssl command), claims (exp,
 * nbf and the leeway, iss, aud, required), "none" and algorithm confusion
 * refused, strict base64url and the bounds on what a token may hold, key
 * sets; and the fetcher of key sets by URL: an unknown kid triggers one
 * fetch within the refresh interval, and a failed fetch keeps the last
 * good keys. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt_keys.h"
#include "policy/jwt_int.h"
#include "tls/compat.h"

#define ALL_ALGS ((1u << GW_JWT_NALGS) - 1)
#define NOW 1700000000

static const unsigned char secret64[64] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

static struct gw_jwks *jwks(const char *keys_json)
{
    char text[16384 + 16];
    int n = snprintf(text, sizeof text, "{\"keys\":[%s]}", keys_json);
    ck_assert(n > 0 && (size_t)n < sizeof text);
    struct gw_jwks *s = NULL;
    char err[256] = "";
    int rc = gw_jwks_parse(text, strlen(text), &s, err, sizeof err);
    ck_assert_msg(rc == 0, "jwks: %s", err);
    return s;
}

/* The full set of test keys, each with its kid. */
static struct gw_jwks *all_keys(void)
{
    char text[16384], sec[200];
    tk_b64url(secret64, sizeof secret64, sec);
    snprintf(text, sizeof text, "%s,%s,%s,{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"%s\"}",
             tk_jwk("rsa", "rsa", NULL), tk_jwk("ec256", "ec256", NULL),
             tk_jwk("ec384", "ec384", NULL), sec);
    return jwks(text);
}

static const char *stem_of(const char *alg)
{
    if (alg[0] == 'R' || alg[0] == 'P')
        return "rsa";
    if (strcmp(alg, "ES256") == 0)
        return "ec256";
    if (strcmp(alg, "ES384") == 0)
        return "ec384";
    return NULL;
}

static char *token_for(const char *alg, const char *claims)
{
    char header[200];
    const char *stem = stem_of(alg);
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg,
             stem ? stem : "hs");
    return tk_token(alg, header, claims, stem, secret64, sizeof secret64);
}

static int verify(const char *tok, const struct gw_jwks *keys, unsigned allowed)
{
    struct gw_jwt t;
    const char *why;
    int rc = gw_jwt_parse(&t, tok, strlen(tok), allowed, &why);
    if (rc == 0)
        rc = gw_jwt_check_sig(&t, keys);
    gw_jwt_done(&t);
    return rc;
}

static const char *const algs[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                   "RS512", "PS256", "ES256", "ES384"};

START_TEST(every_algorithm_verifies_a_good_signature_and_refuses_a_bad_one)
{
    struct gw_jwks *keys = all_keys();
    const char *alg = algs[_i];
    char *tok = token_for(alg, "{\"sub\":\"alice\"}");
    ck_assert_msg(verify(tok, keys, ALL_ALGS) == 0, "%s: good signature refused", alg);
    /* A flipped bit in the signature's first byte. */
    char *sig = strrchr(tok, '.') + 1;
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    ck_assert_msg(verify(tok, keys, ALL_ALGS) == -EBADMSG, "%s: bad signature accepted", alg);
    free(tok);
    /* The claims changed after signing. */
    tok = token_for(alg, "{\"sub\":\"alice\"}");
    char *forged = token_for(alg, "{\"sub\":\"admin\"}");
    char mixed[8192];
    const char *d1 = strchr(forged, '.');
    snprintf(mixed, sizeof mixed, "%.*s%s", (int)(strrchr(forged, '.') - forged), forged,
             strrchr(tok, '.'));
    (void)d1;
    ck_assert_msg(verify(mixed, keys, ALL_ALGS) == -EBADMSG, "%s: forged claims accepted", alg);
    /* Only algorithms of the allow-list are verified. */
    ck_assert_int_eq(verify(tok, keys, ALL_ALGS & ~GW_JWT_ALG_BIT(_i)), -EPERM);
    free(tok);
    free(forged);
    gw_jwks_unref(keys);
}
END_TEST

START_TEST(alg_none_is_refused)
{
    struct gw_jwks *keys = all_keys();
    char h[64], c[64], tok[256];
    tk_b64url("{\"alg\":\"none\"}", 14, h);
    tk_b64url("{\"sub\":\"a\"}", 11, c);
    snprintf(tok, sizeof tok, "%s.%s.", h, c);
    ck_assert_int_ne(verify(tok, keys, ALL_ALGS), 0);
    snprintf(tok, sizeof tok, "%s.%s.AAAA", h, c);
    ck_assert_int_eq(verify(tok, keys, ALL_ALGS), -EPERM);
    tk_b64url("{\"alg\":\"NONE\"}", 14, h);
    snprintf(tok, sizeof tok, "%s.%s.AAAA", h, c);
    ck_assert_int_eq(verify(tok, keys, ALL_ALGS), -EPERM);
    gw_jwks_unref(keys);
}
END_TEST

/* The classic confusion: an HS256 token whose HMAC key is the RSA public
 * key's PEM text, which the attacker knows. */
START_TEST(hmac_token_signed_with_an_rsa_public_key_is_refused)
{
    char path[300];
    snprintf(path, sizeof path, "%s/rsa.pub", tk_dir());
    FILE *f = fopen(path, "rb");
    unsigned char pem[2048];
    size_t n = fread(pem, 1, sizeof pem, f);
    fclose(f);
    char *tok =
        tk_token("HS256", "{\"alg\":\"HS256\",\"kid\":\"rsa\"}", "{\"sub\":\"a\"}", NULL, pem, n);
    struct gw_jwks *rsa = jwks(tk_jwk("rsa", "rsa", NULL));
    ck_assert_int_eq(verify(tok, rsa, ALL_ALGS), -ENOKEY);
    free(tok);
    tok = tk_token("HS256", "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", NULL, pem, n);
    ck_assert_int_eq(verify(tok, rsa, ALL_ALGS), -ENOKEY);
    free(tok);
    gw_jwks_unref(rsa);
}
END_TEST

START_TEST(a_key_verifies_only_algorithms_of_its_type_and_alg)
{
    /* An RS256 token against a set of secrets and EC keys only. */
    char sec[200], text[8192];
    tk_b64url(secret64, sizeof secret64, sec);
    snprintf(text, sizeof text, "{\"kty\":\"oct\",\"k\":\"%s\"},%s", sec,
             tk_jwk("ec256", NULL, NULL));
    struct gw_jwks *no_rsa = jwks(text);
    char *tok = tk_token("RS256", "{\"alg\":\"RS256\"}", "{}", "rsa", NULL, 0);
    ck_assert_int_eq(verify(tok, no_rsa, ALL_ALGS), -ENOKEY);
    free(tok);
    /* ES384 never meets a P-256 key. */
    tok = tk_token("ES384", "{\"alg\":\"ES384\"}", "{}", "ec384", NULL, 0);
    ck_assert_int_eq(verify(tok, no_rsa, ALL_ALGS), -ENOKEY);
    free(tok);
    gw_jwks_unref(no_rsa);
    /* A key whose alg is RS256 does not verify PS256. */
    struct gw_jwks *rs = jwks(tk_jwk("rsa", NULL, "RS256"));
    tok = tk_token("PS256", "{\"alg\":\"PS256\"}", "{}", "rsa", NULL, 0);
    ck_assert_int_eq(verify(tok, rs, ALL_ALGS), -ENOKEY);
    free(tok);
    gw_jwks_unref(rs);
    /* An HMAC secret shorter than the hash is never used. */
    struct gw_jwks *short_secret = NULL;
    ck_assert_int_eq(gw_jwks_from_secret(secret64, 20, &short_secret), 0);
    tok = tk_token("HS256", "{\"alg\":\"HS256\"}", "{}", NULL, secret64, 20);
    ck_assert_int_eq(verify(tok, short_secret, ALL_ALGS), -ENOKEY);
    free(tok);
    gw_jwks_unref(short_secret);
}
END_TEST

START_TEST(a_kid_selects_its_key)
{
    struct gw_jwks *keys = all_keys();
    char *tok = tk_token("RS256", "{\"alg\":\"RS256\",\"kid\":\"other\"}", "{}", "rsa", NULL, 0);
    ck_assert_int_eq(verify(tok, keys, ALL_ALGS), -ENOKEY);
    ck_assert(gw_jwks_has_kid(keys, "rsa"));
    ck_assert(!gw_jwks_has_kid(keys, "other"));
    free(tok);
    gw_jwks_unref(keys);
}
END_TEST

static int claims(const char *json, const struct gw_jwt_rules *r, int64_t now, const char **why)
{
    char *tok = token_for("HS256", json);
    struct gw_jwt t;
    int rc = gw_jwt_parse(&t, tok, strlen(tok), ALL_ALGS, why);
    ck_assert_int_eq(rc, 0);
    rc = gw_jwt_check_claims(&t, r, now, why);
    gw_jwt_done(&t);
    free(tok);
    return rc;
}

START_TEST(expired_and_not_yet_valid_tokens_are_refused_with_leeway)
{
    struct gw_jwt_rules r = {.leeway_s = 0};
    const char *why = NULL;
    ck_assert_int_eq(claims("{\"exp\":1700000000}", &r, NOW - 1, &why), 0);
    ck_assert_int_eq(claims("{\"exp\":1700000000}", &r, NOW, &why), -EACCES);
    ck_assert_str_eq(why, "token expired");
    ck_assert_int_eq(claims("{\"nbf\":1700000000}", &r, NOW, &why), 0);
    ck_assert_int_eq(claims("{\"nbf\":1700000000}", &r, NOW - 1, &why), -EACCES);
    ck_assert_str_eq(why, "token not yet valid");
    ck_assert_int_eq(claims("{\"exp\":\"1700000000\"}", &r, NOW - 10, &why), -EACCES);
    r.leeway_s = 30;
    ck_assert_int_eq(claims("{\"exp\":1700000000}", &r, NOW + 29, &why), 0);
    ck_assert_int_eq(claims("{\"exp\":1700000000}", &r, NOW + 30, &why), -EACCES);
    ck_assert_int_eq(claims("{\"nbf\":1700000000}", &r, NOW - 30, &why), 0);
    ck_assert_int_eq(claims("{\"nbf\":1700000000}", &r, NOW - 31, &why), -EACCES);
}
END_TEST

START_TEST(issuer_audience_and_required_claims_are_checked)
{
    const char *auds[] = {"api", "billing"};
    const char *req[] = {"sub"};
    struct gw_jwt_rules r = {.issuer = "https://idp.example.com",
                             .audiences = auds,
                             .naudiences = 2,
                             .required = req,
                             .nrequired = 1};
    const char *why = NULL;
    ck_assert_int_eq(claims("{\"iss\":\"https://idp.example.com\",\"aud\":\"api\",\"sub\":\"a\"}",
                            &r, NOW, &why),
                     0);
    ck_assert_int_eq(claims("{\"iss\":\"https://idp.example.com\",\"aud\":[\"x\",\"billing\"],"
                            "\"sub\":\"a\"}",
                            &r, NOW, &why),
                     0);
    ck_assert_int_eq(claims("{\"iss\":\"https://evil.example.com\",\"aud\":\"api\",\"sub\":\"a\"}",
                            &r, NOW, &why),
                     -EACCES);
    ck_assert_str_eq(why, "issuer not accepted");
    ck_assert_int_eq(claims("{\"aud\":\"api\",\"sub\":\"a\"}", &r, NOW, &why), -EACCES);
    ck_assert_int_eq(claims("{\"iss\":\"https://idp.example.com\",\"aud\":\"web\",\"sub\":\"a\"}",
                            &r, NOW, &why),
                     -EACCES);
    ck_assert_str_eq(why, "audience not accepted");
    ck_assert_int_eq(claims("{\"iss\":\"https://idp.example.com\",\"aud\":[\"web\"],\"sub\":\"a\"}",
                            &r, NOW, &why),
                     -EACCES);
    ck_assert_int_eq(claims("{\"iss\":\"https://idp.example.com\",\"sub\":\"a\"}", &r, NOW, &why),
                     -EACCES);
    ck_assert_int_eq(claims("{\"iss\":\"https://idp.example.com\",\"aud\":\"api\"}", &r, NOW, &why),
                     -EACCES);
    ck_assert_str_eq(why, "a required claim is missing");
}
END_TEST

START_TEST(base64url_is_decoded_strictly)
{
    unsigned char out[16];
    ck_assert_int_eq(gw_b64url_decode("YWJj", 4, out), 3);
    ck_assert_int_eq(gw_b64url_decode("YWI", 3, out), 2);
    ck_assert_int_eq(gw_b64url_decode("YQ", 2, out), 1);
    ck_assert_int_eq(gw_b64url_decode("YQ==", 4, out), -EINVAL); /* padding */
    ck_assert_int_eq(gw_b64url_decode("YR", 2, out), -EINVAL);   /* stray bits */
    ck_assert_int_eq(gw_b64url_decode("YWJ", 3, out), -EINVAL);  /* stray bits */
    ck_assert_int_eq(gw_b64url_decode("Y", 1, out), -EINVAL);
    ck_assert_int_eq(gw_b64url_decode("a+b/", 4, out), -EINVAL); /* base64, not base64url */
    ck_assert_int_eq(gw_b64url_decode("a-b_", 4, out), 3);
    ck_assert_int_eq(gw_b64url_decode("YW c", 4, out), -EINVAL);
}
END_TEST

START_TEST(oversized_or_deeply_nested_tokens_are_refused)
{
    struct gw_jwks *keys = all_keys();
    char big[7000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    char claims_json[7100];
    snprintf(claims_json, sizeof claims_json, "{\"pad\":\"%s\"}", big);
    char *tok = token_for("HS256", claims_json);
    ck_assert_uint_gt(strlen(tok), GW_JWT_MAX_TOKEN);
    ck_assert_int_eq(verify(tok, keys, ALL_ALGS), -EINVAL);
    free(tok);
    tok = token_for("HS256", "{\"a\":[[[[[[[[[[1]]]]]]]]]]}");
    ck_assert_int_eq(verify(tok, keys, ALL_ALGS), -EINVAL);
    free(tok);
    tok = token_for("HS256", "{\"a\":[[[[[1]]]]]}");
    ck_assert_int_eq(verify(tok, keys, ALL_ALGS), 0);
    free(tok);
    /* Not three parts; a header that is not an object. */
    ck_assert_int_eq(verify("abc.def", keys, ALL_ALGS), -EINVAL);
    ck_assert_int_eq(verify("a.b.c.d.e", keys, ALL_ALGS), -EINVAL);
    char h[64], t2[128];
    tk_b64url("[1]", 3, h);
    snprintf(t2, sizeof t2, "%s.e30.AAAA", h);
    ck_assert_int_eq(verify(t2, keys, ALL_ALGS), -EINVAL);
    gw_jwks_unref(keys);
}
END_TEST

START_TEST(an_rsa_8192_signature_fits_and_a_longer_one_is_refused)
{
    /* 1024 bytes (RSA-8192) are 1366 base64url characters; 1025 bytes
     * would overflow the signature's buffer. */
    static unsigned char raw[1025];
    memset(raw, 0xa5, sizeof raw);
    char h[128], sig[1400], tok[1600];
    const char *header = "{\"alg\":\"RS256\"}";
    tk_b64url(header, strlen(header), h);
    struct gw_jwt t;
    const char *why;
    tk_b64url(raw, 1024, sig);
    ck_assert_uint_eq(strlen(sig), 1366);
    snprintf(tok, sizeof tok, "%s.e30.%s", h, sig);
    ck_assert_int_eq(gw_jwt_parse(&t, tok, strlen(tok), ALL_ALGS, &why), 0);
    ck_assert_uint_eq(t.sig_len, 1024);
    ck_assert(memcmp(t.sig, raw, 1024) == 0);
    gw_jwt_done(&t);
    tk_b64url(raw, sizeof raw, sig);
    snprintf(tok, sizeof tok, "%s.e30.%s", h, sig);
    ck_assert_int_eq(gw_jwt_parse(&t, tok, strlen(tok), ALL_ALGS, &why), -EINVAL);
    ck_assert_str_eq(why, "bad signature");
    gw_jwt_done(&t);
}
END_TEST

START_TEST(key_sets_skip_foreign_keys_and_refuse_broken_ones)
{
    struct gw_jwks *s = NULL;
    char err[256];
    const char *ok = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
                     "{\"kty\":\"oct\",\"use\":\"enc\",\"k\":\"AAAA\"},"
                     "{\"kty\":\"oct\",\"k\":\"AAAA\",\"kid\":\"a\"}]}";
    ck_assert_int_eq(gw_jwks_parse(ok, strlen(ok), &s, err, sizeof err), 0);
    ck_assert_uint_eq(s->nkeys, 1);
    gw_jwks_unref(s);
    const char *bad[] = {
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", /* 24 bits */
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"A+\"}]}",
        "{\"keys\":{}}",
        "[]",
        "{\"keys\":[[[[[[[[[[]]]]]]]]]]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(gw_jwks_parse(bad[i], strlen(bad[i]), &s, err, sizeof err) == -EINVAL,
                      "accepted %s", bad[i]);
    /* A point off the curve. */
    char text[4096];
    snprintf(text, sizeof text, "{\"keys\":[%s]}", tk_jwk("ec256", NULL, NULL));
    char *y = strstr(text, "\"y\":\"") + 5;
    y[3] = y[3] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(gw_jwks_parse(text, strlen(text), &s, err, sizeof err), -EINVAL);
}
END_TEST

Suite *jwt_fetch_suite(void);

int main(void)
{
    if (gw_tls_compat_init() != 0) {
        fprintf(stderr, "mbedtls did not start\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("verify");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, every_algorithm_verifies_a_good_signature_and_refuses_a_bad_one, 0,
                        GW_JWT_NALGS);
    tcase_add_test(tc, alg_none_is_refused);
    tcase_add_test(tc, hmac_token_signed_with_an_rsa_public_key_is_refused);
    tcase_add_test(tc, a_key_verifies_only_algorithms_of_its_type_and_alg);
    tcase_add_test(tc, a_kid_selects_its_key);
    tcase_add_test(tc, expired_and_not_yet_valid_tokens_are_refused_with_leeway);
    tcase_add_test(tc, issuer_audience_and_required_claims_are_checked);
    tcase_add_test(tc, base64url_is_decoded_strictly);
    tcase_add_test(tc, oversized_or_deeply_nested_tokens_are_refused);
    tcase_add_test(tc, an_rsa_8192_signature_fits_and_a_longer_one_is_refused);
    tcase_add_test(tc, key_sets_skip_foreign_keys_and_refuse_broken_ones);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
#ifdef JWT_TEST_FETCH
    srunner_add_suite(sr, jwt_fetch_suite());
#endif
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
