/* test_certs.c: a listener's certificate set: loaded and validated whole
 * (chain, key, key against certificate, validity, names), and matched by
 * server name (exact, wildcard of one label, default or refusal). The
 * certificates come from tests/lib/tlscerts.py (its "standard set"). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/compat.h"
#include "tls/tls.h"
#include "tls_test.h"

struct one {
    struct gw_tls_listener_config cfg;
    struct gw_tls_cert_config certs[4];
    char *names[4][4];
};

/* A listener config with `n` certificates stems[i] ("ec" -> ec.pem,
 * ec.key). */
static void setup(struct one *o, size_t n, const char *const *stems)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < n; i++) {
        char f[64];
        snprintf(f, sizeof f, "%s.pem", stems[i]);
        o->certs[i].cert = P(f);
        snprintf(f, sizeof f, "%s.key", stems[i]);
        o->certs[i].key = P(f);
    }
    o->cfg.enabled = true;
    o->cfg.certs = o->certs;
    o->cfg.ncerts = n;
}

static struct gw_tls_certset *load_ok(struct one *o)
{
    struct gw_tls_certset *s = NULL;
    char err[512] = "";
    int rc = gw_tls_certset_load(&o->cfg, &s, err, sizeof err);
    ck_assert_msg(rc == 0, "load failed: %s", err);
    return s;
}

/* Loads and expects a refusal whose message names `file` and holds `what`. */
static void load_fails(struct one *o, const char *file, const char *what)
{
    struct gw_tls_certset *s = NULL;
    char err[512] = "";
    int rc = gw_tls_certset_load(&o->cfg, &s, err, sizeof err);
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, file) != NULL, "\"%s\" does not name %s", err, file);
    ck_assert_msg(strstr(err, what) != NULL, "\"%s\" does not say \"%s\"", err, what);
}

START_TEST(loaded_certificate_is_described_with_names_from_its_san)
{
    struct one o;
    setup(&o, 1, (const char *[]){"ec"});
    struct gw_tls_certset *s = load_ok(&o);
    ck_assert_uint_eq(gw_tls_certset_count(s), 1);
    const struct gw_tls_cert_info *i = gw_tls_certset_info(s, 0);
    ck_assert_str_eq(i->subject, "CN=api.example.com");
    ck_assert_str_eq(i->issuer, "CN=Tandem Test CA");
    ck_assert_str_eq(i->key_type, "EC P-256");
    ck_assert_uint_eq(i->nnames, 2);
    ck_assert_str_eq(i->names[0], "api.example.com");
    ck_assert_str_eq(i->names[1], "*.example.com");
    ck_assert_uint_eq(strlen(i->fingerprint), 64);
    ck_assert(i->not_before < i->not_after);
    ck_assert_str_eq(i->cert_path, o.certs[0].cert);
    ck_assert_ptr_null(gw_tls_certset_info(s, 1));
    gw_tls_certset_unref(s);
}
END_TEST

START_TEST(rsa_key_is_described_with_its_size)
{
    struct one o;
    setup(&o, 1, (const char *[]){"rsa"});
    struct gw_tls_certset *s = load_ok(&o);
    ck_assert_str_eq(gw_tls_certset_info(s, 0)->key_type, "RSA 2048");
    gw_tls_certset_unref(s);
}
END_TEST

START_TEST(fingerprint_is_sha256_of_the_leaf_der)
{
    /* tlscerts.py wrote the leaf's fingerprint nowhere the C side reads,
     * so compute it here with openssl over the same file. */
    struct one o;
    setup(&o, 1, (const char *[]){"default"});
    struct gw_tls_certset *s = load_ok(&o);
    char cmd[4200];
    snprintf(cmd, sizeof cmd,
             "openssl x509 -in '%s' -outform DER | openssl dgst -sha256 -r | cut -c1-64",
             o.certs[0].cert);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char want[80] = "";
    ck_assert_ptr_nonnull(fgets(want, sizeof want, p));
    pclose(p);
    want[64] = 0;
    ck_assert_str_eq(gw_tls_certset_info(s, 0)->fingerprint, want);
    gw_tls_certset_unref(s);
}
END_TEST

START_TEST(key_of_another_certificate_is_refused)
{
    struct one o;
    setup(&o, 1, (const char *[]){"ec"});
    o.certs[0].key = P("default.key");
    load_fails(&o, "default.key", "does not match");
}
END_TEST

START_TEST(expired_and_not_yet_valid_certificates_are_refused)
{
    struct one o;
    setup(&o, 1, (const char *[]){"expired"});
    load_fails(&o, "expired.pem", "expired");
    setup(&o, 1, (const char *[]){"notyet"});
    load_fails(&o, "notyet.pem", "not valid yet");
}
END_TEST

START_TEST(unparsable_and_missing_files_are_refused_with_the_file)
{
    struct one o;
    setup(&o, 1, (const char *[]){"ec"});
    o.certs[0].cert = P("garbage.pem");
    load_fails(&o, "garbage.pem", "does not parse");
    setup(&o, 1, (const char *[]){"ec"});
    o.certs[0].key = P("garbage.pem");
    load_fails(&o, "garbage.pem", "private key does not parse");
    setup(&o, 1, (const char *[]){"ec"});
    o.certs[0].cert = P("missing.pem");
    load_fails(&o, "missing.pem", "does not parse");
}
END_TEST

START_TEST(one_bad_certificate_refuses_the_whole_set)
{
    struct one o;
    setup(&o, 3, (const char *[]){"ec", "rsa", "expired"});
    load_fails(&o, "expired.pem", "expired");
}
END_TEST

START_TEST(configured_names_must_be_covered_by_the_certificate)
{
    struct one o;
    setup(&o, 1, (const char *[]){"ec"});
    o.names[0][0] = "www.example.com"; /* covered by *.example.com */
    o.names[0][1] = "API.Example.com"; /* exact, any case */
    o.certs[0].names = o.names[0];
    o.certs[0].nnames = 2;
    struct gw_tls_certset *s = load_ok(&o);
    ck_assert_uint_eq(gw_tls_certset_info(s, 0)->nnames, 2);
    ck_assert_str_eq(gw_tls_certset_info(s, 0)->names[1], "api.example.com");
    gw_tls_certset_unref(s);

    o.names[0][1] = "a.b.example.com"; /* a wildcard covers one label only */
    load_fails(&o, "ec.pem", "does not cover the name \"a.b.example.com\"");
    o.names[0][1] = "example.org";
    load_fails(&o, "ec.pem", "does not cover");
    o.names[0][1] = "bad name";
    load_fails(&o, "ec.pem", "is not a server name");
}
END_TEST

static size_t match(struct gw_tls_certset *s, const char *name, const struct gw_tls_cert **out)
{
    return gw_tls_certset_match(s, name, name ? strlen(name) : 0, out, 8);
}

START_TEST(exact_name_wins_over_wildcard_and_default)
{
    struct one o;
    setup(&o, 3, (const char *[]){"default", "ec", "other"});
    o.names[2][0] = "other.example.com";
    o.certs[2].names = o.names[2];
    o.certs[2].nnames = 1;
    struct gw_tls_certset *s = load_ok(&o);
    const struct gw_tls_cert *out[8];
    /* other.example.com is matched exactly by the third and by the
     * second's wildcard: the exact one alone. */
    const struct gw_tls_cert *third[8];
    ck_assert_uint_eq(match(s, "Other.Example.COM", third), 1);
    mbedtls_x509_crt *crt = gw_tls_cert_chain(third[0]);
    char subject[128];
    ck_assert_int_gt(mbedtls_x509_dn_gets(subject, sizeof subject, &crt->subject), 0);
    ck_assert_str_eq(subject, "CN=other.example.com");
    /* api.example.com: the second, exactly. */
    ck_assert_uint_eq(match(s, "api.example.com", out), 1);
    ck_assert_ptr_ne(out[0], third[0]);
    const struct gw_tls_cert *api = out[0];
    /* www.example.com: the second, by its wildcard. */
    ck_assert_uint_eq(match(s, "www.example.com", out), 1);
    ck_assert_ptr_eq(out[0], api);
    /* the wildcard takes one label: a.b.example.com and example.com get the
     * default (the first). */
    const struct gw_tls_cert *def[8];
    ck_assert_uint_eq(match(s, "default.example.com", def), 1);
    ck_assert_ptr_ne(def[0], api);
    ck_assert_uint_eq(match(s, "a.b.example.com", out), 1);
    ck_assert_ptr_eq(out[0], def[0]);
    ck_assert_uint_eq(match(s, "example.com", out), 1);
    ck_assert_ptr_eq(out[0], def[0]);
    ck_assert_uint_eq(match(s, "nothing.test", out), 1);
    ck_assert_ptr_eq(out[0], def[0]);
    ck_assert_uint_eq(match(s, NULL, out), 1);
    ck_assert_ptr_eq(out[0], def[0]);
    gw_tls_certset_unref(s);
}
END_TEST

START_TEST(refusing_set_matches_nothing_for_unknown_or_missing_names)
{
    struct one o;
    setup(&o, 2, (const char *[]){"default", "ec"});
    o.cfg.unknown_name = GW_TLS_UNKNOWN_REFUSE;
    struct gw_tls_certset *s = load_ok(&o);
    const struct gw_tls_cert *out[8];
    ck_assert_uint_eq(match(s, "nothing.test", out), 0);
    ck_assert_uint_eq(match(s, NULL, out), 0);
    ck_assert_uint_eq(match(s, "a.b.example.com", out), 0);
    ck_assert_uint_eq(match(s, "default.example.com", out), 1);
    ck_assert_uint_eq(match(s, "x.example.com", out), 1);
    gw_tls_certset_unref(s);
}
END_TEST

START_TEST(rsa_and_ecdsa_for_one_name_are_both_chosen)
{
    struct one o;
    setup(&o, 3, (const char *[]){"ec", "rsa", "default"});
    struct gw_tls_certset *s = load_ok(&o);
    const struct gw_tls_cert *out[8];
    ck_assert_uint_eq(match(s, "api.example.com", out), 2);
    ck_assert_uint_eq(match(s, "x.example.com", out), 2);
    /* the default: the first and the other with the same names */
    ck_assert_uint_eq(match(s, "unknown.test", out), 2);
    ck_assert_uint_eq(match(s, NULL, out), 2);
    ck_assert_uint_eq(match(s, "default.example.com", out), 1);
    /* at most `max` */
    ck_assert_uint_eq(gw_tls_certset_match(s, "api.example.com", 15, out, 1), 1);
    gw_tls_certset_unref(s);
}
END_TEST

START_TEST(names_with_nul_or_too_long_are_not_matched_by_name)
{
    struct one o;
    setup(&o, 2, (const char *[]){"default", "ec"});
    o.cfg.unknown_name = GW_TLS_UNKNOWN_REFUSE;
    struct gw_tls_certset *s = load_ok(&o);
    const struct gw_tls_cert *out[8];
    ck_assert_uint_eq(gw_tls_certset_match(s, "api.example.com\0x", 17, out, 8), 0);
    char longname[400];
    memset(longname, 'a', sizeof longname);
    memcpy(longname + sizeof longname - 12, ".example.com", 12);
    ck_assert_uint_eq(gw_tls_certset_match(s, longname, sizeof longname, out, 8), 0);
    gw_tls_certset_unref(s);
}
END_TEST

START_TEST(a_trailing_dot_matches_as_the_name_without_it)
{
    /* "api.example.com." is the same name written fully qualified, as the
     * routes take a Host with a trailing dot; one dot only. */
    struct one o;
    setup(&o, 2, (const char *[]){"default", "ec"});
    o.cfg.unknown_name = GW_TLS_UNKNOWN_REFUSE;
    struct gw_tls_certset *s = load_ok(&o);
    const struct gw_tls_cert *out[8], *api[8];
    ck_assert_uint_eq(match(s, "api.example.com", api), 1);
    ck_assert_uint_eq(match(s, "API.example.com.", out), 1);
    ck_assert_ptr_eq(out[0], api[0]);
    ck_assert_uint_eq(match(s, "x.example.com.", out), 1);
    ck_assert_ptr_eq(out[0], api[0]);
    ck_assert_uint_eq(match(s, "api.example.com..", out), 0);
    ck_assert_uint_eq(match(s, ".", out), 0);
    ck_assert_uint_eq(match(s, "example.com.", out), 0);
    gw_tls_certset_unref(s);
}
END_TEST

START_TEST(set_outlives_the_loader_while_referenced)
{
    struct one o;
    setup(&o, 1, (const char *[]){"ec"});
    struct gw_tls_certset *s = load_ok(&o);
    struct gw_tls_certset *held = gw_tls_certset_ref(s);
    gw_tls_certset_unref(s);
    const struct gw_tls_cert *out[2];
    ck_assert_uint_eq(match(held, "api.example.com", out), 1);
    ck_assert_ptr_nonnull(gw_tls_cert_key(out[0]));
    gw_tls_certset_unref(held);
    gw_tls_certset_unref(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls_certs");
    TCase *tc = tcase_create("certs");
    tcase_add_test(tc, loaded_certificate_is_described_with_names_from_its_san);
    tcase_add_test(tc, rsa_key_is_described_with_its_size);
    tcase_add_test(tc, fingerprint_is_sha256_of_the_leaf_der);
    tcase_add_test(tc, key_of_another_certificate_is_refused);
    tcase_add_test(tc, expired_and_not_yet_valid_certificates_are_refused);
    tcase_add_test(tc, unparsable_and_missing_files_are_refused_with_the_file);
    tcase_add_test(tc, one_bad_certificate_refuses_the_whole_set);
    tcase_add_test(tc, configured_names_must_be_covered_by_the_certificate);
    tcase_add_test(tc, exact_name_wins_over_wildcard_and_default);
    tcase_add_test(tc, refusing_set_matches_nothing_for_unknown_or_missing_names);
    tcase_add_test(tc, rsa_and_ecdsa_for_one_name_are_both_chosen);
    tcase_add_test(tc, names_with_nul_or_too_long_are_not_matched_by_name);
    tcase_add_test(tc, a_trailing_dot_matches_as_the_name_without_it);
    tcase_add_test(tc, set_outlives_the_loader_while_referenced);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
