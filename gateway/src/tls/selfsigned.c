/*
 * selfsigned.c: `tandem tls self-signed`, a key and a self-signed
 * certificate for a demo or a first run (the container image makes one
 * this way, so it ships no private key and needs no openssl).
 *
 * The certificate is an end-entity certificate signed by its own key:
 * subject and issuer "CN=<first name>,O=Tandem self-signed", the names as
 * subjectAltName entries (DNS names, wildcards, IPv4 and IPv6 addresses),
 * basicConstraints CA:FALSE, keyUsage digitalSignature (and
 * keyEncipherment for RSA), extendedKeyUsage serverAuth, SHA-256
 * signature, a random 128-bit serial, valid from an hour ago (clocks
 * disagree) for the given number of days. Clients trust it by being given
 * the certificate itself (curl --cacert, Python's cafile).
 *
 * Files. DIR/cert.pem and DIR/key.pem, each written to a temporary file in
 * DIR and renamed over the final name, so a reader never sees half a file;
 * the key is created 0600 and never exists with a wider mode. Existing
 * files are kept unless --force is given, also those another run writes
 * while this one makes its key (two containers starting at once on one
 * volume): without --force a file takes its name by link(), which never
 * replaces, and the key goes first, so only the run whose key took the
 * name writes a certificate.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/x509_crt.h>

#include "compat.h"
#include "tls.h"

#define NAME_MAX_LEN 253
#define DAYS_DEFAULT 365
#define DAYS_MAX 3650
/* Room for the subjectAltName extension: every name with its tag and a
 * length of up to three bytes, and the sequence around them. */
#define SAN_MAX (GW_TLS_MAX_NAMES * (NAME_MAX_LEN + 4) + 8)
/* A PEM certificate or key: an RSA 4096 key is about 3.3 KB, a certificate
 * with 64 names of 253 bytes about 24 KB. */
#define PEM_MAX (48 * 1024)

/* ---- names ------------------------------------------------------------------ */

/* The binary form of an IP address literal: 4 or 16 bytes, 0 if not one. */
static size_t ip_literal(const char *s, unsigned char out[16])
{
    if (inet_pton(AF_INET, s, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, s, out) == 1)
        return 16;
    return 0;
}

/* A DNS name as certificates carry it: letters, digits and '-' in labels
 * of 1 to 63 bytes separated by '.', optionally "*." in front. */
static bool dns_name_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    if (s[0] == '*') {
        if (s[1] != '.')
            return false;
        s += 2;
    }
    size_t label = 0;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == 0) {
            if (label == 0 || label > 63)
                return false;
            if (*p == 0)
                return true;
            label = 0;
        } else if (isalnum((unsigned char)*p) || *p == '-') {
            label++;
        } else {
            return false;
        }
    }
}

/* ---- the certificate ---------------------------------------------------------- */

/* The subjectAltName extension's value, written at the end of buf (ASN.1
 * is written backwards); *len its length. */
static int write_san(const struct gw_tls_self_signed *o, unsigned char *buf, size_t cap,
                     unsigned char **start, size_t *len)
{
    unsigned char *p = buf + cap;
    size_t total = 0;
    int rc;
    for (size_t i = o->nnames; i-- > 0;) {
        unsigned char ip[16];
        size_t iplen = ip_literal(o->names[i], ip);
        if (iplen) {
            /* iPAddress [7] OCTET STRING */
            if ((rc = mbedtls_asn1_write_raw_buffer(&p, buf, ip, iplen)) < 0)
                return rc;
            total += (size_t)rc;
            if ((rc = mbedtls_asn1_write_len(&p, buf, iplen)) < 0)
                return rc;
            total += (size_t)rc;
            if ((rc = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)) < 0)
                return rc;
            total += (size_t)rc;
        } else {
            /* dNSName [2] IA5String */
            if ((rc = mbedtls_asn1_write_tagged_string(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2,
                                                       o->names[i], strlen(o->names[i]))) < 0)
                return rc;
            total += (size_t)rc;
        }
    }
    if ((rc = mbedtls_asn1_write_len(&p, buf, total)) < 0)
        return rc;
    total += (size_t)rc;
    if ((rc = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) <
        0)
        return rc;
    total += (size_t)rc;
    *start = p;
    *len = total;
    return 0;
}

/* extendedKeyUsage: SEQUENCE { id-kp-serverAuth }. */
static int write_eku(unsigned char *buf, size_t cap, unsigned char **start, size_t *len)
{
    unsigned char *p = buf + cap;
    size_t total = 0;
    int rc;
    if ((rc = mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH))) < 0)
        return rc;
    total += (size_t)rc;
    if ((rc = mbedtls_asn1_write_len(&p, buf, total)) < 0)
        return rc;
    total += (size_t)rc;
    if ((rc = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) <
        0)
        return rc;
    total += (size_t)rc;
    *start = p;
    *len = total;
    return 0;
}

/* "YYYYMMDDhhmmss" in UTC, as mbedtls_x509write_crt_set_validity takes. */
static void x509_time(time_t t, char out[16])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

static void mbed_reason(int rc, const char *what, char *err, size_t errlen)
{
    char why[128];
    mbedtls_strerror(rc, why, sizeof why);
    snprintf(err, errlen, "%s: %s (-0x%04x)", what, why, (unsigned)-rc);
}

/* Generates the key into pk. */
static int make_key(const struct gw_tls_self_signed *o, mbedtls_pk_context *pk, char *err,
                    size_t errlen)
{
    int rc;
    if (o->key == GW_TLS_KEY_RSA) {
        rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
        if (rc == 0)
            rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(*pk), gw_tls_rng, NULL, o->rsa_bits, 65537);
    } else {
        rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
        if (rc == 0)
            rc =
                mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk), gw_tls_rng, NULL);
    }
    if (rc != 0)
        mbed_reason(rc, "generating the key", err, errlen);
    return rc == 0 ? 0 : -EIO;
}

/* The certificate over pk, as PEM into out (cap bytes). */
static int make_cert(const struct gw_tls_self_signed *o, mbedtls_pk_context *pk, time_t now,
                     unsigned char *out, size_t cap, char *err, size_t errlen)
{
    mbedtls_x509write_cert crt;
    mbedtls_x509write_crt_init(&crt);
    unsigned char *san = malloc(SAN_MAX), *sanp = NULL, eku[32], *ekup = NULL;
    size_t sanlen = 0, ekulen = 0;
    char dn[NAME_MAX_LEN + 40], from[16], until[16];
    unsigned char serial[16];
    int rc = -ENOMEM;
    if (!san) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* The names were checked: no character in them needs escaping in a
     * distinguished name. */
    snprintf(dn, sizeof dn, "CN=%s,O=Tandem self-signed", o->names[0]);
    x509_time(now - 3600, from);
    x509_time(now + (time_t)o->days * 86400, until);
    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&crt, pk);
    mbedtls_x509write_crt_set_issuer_key(&crt, pk);
    const char *step = "the serial number";
    /* Positive and not zero: the top bit clear, the lowest set. */
    if ((rc = gw_tls_rng(NULL, serial, sizeof serial)) != 0)
        goto fail;
    serial[0] &= 0x7f;
    serial[sizeof serial - 1] |= 1;
    if ((rc = gw_tls_x509write_crt_set_serial(&crt, serial, sizeof serial)) != 0)
        goto fail;
    step = "the names";
    if ((rc = mbedtls_x509write_crt_set_subject_name(&crt, dn)) != 0 ||
        (rc = mbedtls_x509write_crt_set_issuer_name(&crt, dn)) != 0)
        goto fail;
    step = "the validity";
    if ((rc = mbedtls_x509write_crt_set_validity(&crt, from, until)) != 0)
        goto fail;
    step = "the extensions";
    if ((rc = mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1)) != 0)
        goto fail;
    unsigned ku = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
    if (o->key == GW_TLS_KEY_RSA)
        ku |= MBEDTLS_X509_KU_KEY_ENCIPHERMENT;
    if ((rc = mbedtls_x509write_crt_set_key_usage(&crt, ku)) != 0)
        goto fail;
    if ((rc = write_san(o, san, SAN_MAX, &sanp, &sanlen)) != 0 ||
        (rc = mbedtls_x509write_crt_set_extension(&crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
                                                  sanp, sanlen)) != 0)
        goto fail;
    if ((rc = write_eku(eku, sizeof eku, &ekup, &ekulen)) != 0 ||
        (rc = mbedtls_x509write_crt_set_extension(&crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
                                                  0, ekup, ekulen)) != 0)
        goto fail;
    step = "signing the certificate";
    if ((rc = mbedtls_x509write_crt_pem(&crt, out, cap, gw_tls_rng, NULL)) != 0)
        goto fail;
    rc = 0;
    goto out;
fail:
    mbed_reason(rc, step, err, errlen);
    rc = -EIO;
out:
    mbedtls_x509write_crt_free(&crt);
    free(san);
    return rc;
}

/* ---- files -------------------------------------------------------------------- */

/* Writes the NUL-terminated text to DIR/NAME through a temporary file in
 * DIR created 0600, given `mode` before it takes the name: renamed over
 * an existing file with `replace`, else linked, which fails with -EEXIST
 * when the name exists by then (another run writing the same directory
 * meanwhile: its files are kept, never mixed with these). */
static int write_file(const char *dir, const char *name, const unsigned char *text, mode_t mode,
                      bool replace, char *err, size_t errlen)
{
    char tmp[4096], path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, name) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -ENAMETOOLONG;
    }
    int fd = mkstemp(tmp), rc = 0;
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return rc;
    }
    size_t len = strlen((const char *)text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        off += (size_t)n;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0)
        rc = -errno;
out:
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && (replace ? rename(tmp, path) : link(tmp, path)) != 0)
        rc = -errno;
    if (rc == -EEXIST)
        snprintf(err, errlen, "%s exists (--force replaces it)", path);
    else if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
    if (rc != 0 || !replace)
        unlink(tmp);
    return rc;
}

/* DIR, created 0755 when absent (its parent must exist). */
static int out_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return rc;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", dir);
        return -ENOTDIR;
    }
    return 0;
}

static int check_options(const struct gw_tls_self_signed *o, char *err, size_t errlen)
{
    if (o->nnames == 0) {
        snprintf(err, errlen, "at least one name is needed");
        return -EINVAL;
    }
    if (o->nnames > GW_TLS_MAX_NAMES) {
        snprintf(err, errlen, "%zu names: at most %d", o->nnames, GW_TLS_MAX_NAMES);
        return -EINVAL;
    }
    for (size_t i = 0; i < o->nnames; i++) {
        unsigned char ip[16];
        if (!ip_literal(o->names[i], ip) && !dns_name_ok(o->names[i])) {
            snprintf(err, errlen,
                     "\"%.*s\" is neither a DNS name (letters, digits, '-', labels of 1 to 63 "
                     "bytes, optionally \"*.\" in front, at most %d bytes) nor an IP address",
                     NAME_MAX_LEN, o->names[i], NAME_MAX_LEN);
            return -EINVAL;
        }
    }
    if (o->key == GW_TLS_KEY_RSA && o->rsa_bits != 2048 && o->rsa_bits != 3072 &&
        o->rsa_bits != 4096) {
        snprintf(err, errlen, "RSA keys are 2048, 3072 or 4096 bits, not %u", o->rsa_bits);
        return -EINVAL;
    }
    if (o->days < 1 || o->days > DAYS_MAX) {
        snprintf(err, errlen, "days: %u is not in 1..%d", o->days, DAYS_MAX);
        return -EINVAL;
    }
    return 0;
}

int gw_tls_self_signed_write(const struct gw_tls_self_signed *o, const char *dir, char *err,
                             size_t errlen)
{
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    unsigned char *cert = NULL, *key = NULL;
    char path[4096];
    int rc = check_options(o, err, errlen);
    if (rc < 0)
        goto out;
    if ((rc = out_dir(dir, err, errlen)) < 0)
        goto out;
    for (int i = 0; i < 2 && !o->force; i++) {
        snprintf(path, sizeof path, "%s/%s", dir,
                 i == 0 ? GW_TLS_SELF_SIGNED_CERT : GW_TLS_SELF_SIGNED_KEY);
        if (access(path, F_OK) == 0) {
            snprintf(err, errlen, "%s exists (--force replaces it)", path);
            rc = -EEXIST;
            goto out;
        }
    }
    cert = malloc(PEM_MAX);
    key = malloc(PEM_MAX);
    if (!cert || !key) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = gw_tls_compat_init()) < 0) {
        snprintf(err, errlen, "the crypto library did not start");
        goto out;
    }
    if ((rc = make_key(o, &pk, err, errlen)) < 0)
        goto out;
    if ((rc = make_cert(o, &pk, time(NULL), cert, PEM_MAX, err, errlen)) < 0)
        goto out;
    int mrc = mbedtls_pk_write_key_pem(&pk, key, PEM_MAX);
    if (mrc != 0) {
        mbed_reason(mrc, "writing the key", err, errlen);
        rc = -EIO;
        goto out;
    }
    /* The key first: a certificate is never there without its key. */
    if ((rc = write_file(dir, GW_TLS_SELF_SIGNED_KEY, key, 0600, o->force, err, errlen)) < 0)
        goto out;
    rc = write_file(dir, GW_TLS_SELF_SIGNED_CERT, cert, 0644, o->force, err, errlen);
out:
    if (key)
        mbedtls_platform_zeroize(key, PEM_MAX);
    free(key);
    free(cert);
    mbedtls_pk_free(&pk);
    return rc;
}

/* ---- the command -------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tandem tls self-signed --name NAME [--name NAME ...] --out DIR\n"
            "                              [--key ecdsa|rsa] [--rsa-bits 2048|3072|4096]\n"
            "                              [--days N] [--force]\n"
            "  Writes DIR/" GW_TLS_SELF_SIGNED_CERT " (a self-signed certificate for the names, "
            "the first\n"
            "  one its subject) and DIR/" GW_TLS_SELF_SIGNED_KEY " (its key, mode 0600). A NAME "
            "is a DNS\n"
            "  name (\"*.example.com\" too) or an IP address; --name a,b gives two. The key is\n"
            "  ECDSA P-256 unless --key rsa (2048 bits unless --rsa-bits); the certificate is\n"
            "  valid for %d days unless --days (at most %d). Existing files are kept\n"
            "  unless --force.\n",
            DAYS_DEFAULT, DAYS_MAX);
}

/* A decimal number in 1..max. */
static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!isdigit((unsigned char)*s) || *end || errno || v == 0 || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

int gw_tls_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "self-signed") != 0) {
        bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        if (!help)
            fprintf(stderr, "tandem: tls needs a command: self-signed\n");
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    struct gw_tls_self_signed o = {
        .key = GW_TLS_KEY_ECDSA_P256, .rsa_bits = 2048, .days = DAYS_DEFAULT};
    const char *names[GW_TLS_MAX_NAMES], *dir = NULL;
    char *copies[GW_TLS_MAX_NAMES]; /* the --name values, split at commas in place */
    size_t ncopies = 0;
    int rc = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = strcmp(a, "--name") == 0 || strcmp(a, "--names") == 0 ||
                     strcmp(a, "--out") == 0 || strcmp(a, "--key") == 0 ||
                     strcmp(a, "--rsa-bits") == 0 || strcmp(a, "--days") == 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(a, "--force") == 0) {
            o.force = true;
            continue;
        } else if (!takes) {
            fprintf(stderr, "tandem: tls self-signed: unknown argument \"%s\"\n", a);
            goto usage;
        } else if (!v) {
            fprintf(stderr, "tandem: tls self-signed: %s needs a value\n", a);
            goto usage;
        }
        i++;
        if (strcmp(a, "--out") == 0) {
            dir = v;
        } else if (strcmp(a, "--key") == 0) {
            if (strcmp(v, "ecdsa") == 0 || strcmp(v, "ec") == 0)
                o.key = GW_TLS_KEY_ECDSA_P256;
            else if (strcmp(v, "rsa") == 0)
                o.key = GW_TLS_KEY_RSA;
            else {
                fprintf(stderr, "tandem: tls self-signed: --key is ecdsa or rsa, not \"%s\"\n", v);
                goto usage;
            }
        } else if (strcmp(a, "--rsa-bits") == 0) {
            if (!parse_uint(v, 1u << 16, &o.rsa_bits)) {
                fprintf(stderr, "tandem: tls self-signed: --rsa-bits: \"%s\" is not a number\n", v);
                goto usage;
            }
        } else if (strcmp(a, "--days") == 0) {
            if (!parse_uint(v, DAYS_MAX, &o.days)) {
                fprintf(stderr, "tandem: tls self-signed: --days: \"%s\" is not in 1..%d\n", v,
                        DAYS_MAX);
                goto usage;
            }
        } else {
            if (ncopies == GW_TLS_MAX_NAMES || !(copies[ncopies] = strdup(v))) {
                fprintf(stderr, "tandem: tls self-signed: at most %d names\n", GW_TLS_MAX_NAMES);
                rc = 1;
                goto out;
            }
            char *save = NULL;
            for (char *n = strtok_r(copies[ncopies++], ",", &save); n;
                 n = strtok_r(NULL, ",", &save)) {
                if (o.nnames == GW_TLS_MAX_NAMES) {
                    fprintf(stderr, "tandem: tls self-signed: at most %d names\n",
                            GW_TLS_MAX_NAMES);
                    rc = 1;
                    goto out;
                }
                names[o.nnames++] = n;
            }
        }
    }
    if (o.nnames == 0 || !dir) {
        fprintf(stderr, "tandem: tls self-signed needs --name and --out\n");
        goto usage;
    }
    o.names = names;
    char err[512];
    if (gw_tls_self_signed_write(&o, dir, err, sizeof err) < 0) {
        fprintf(stderr, "tandem: tls self-signed: %s\n", err);
        rc = 1;
        goto out;
    }
    printf("%s/%s: self-signed %s certificate for", dir, GW_TLS_SELF_SIGNED_CERT,
           o.key == GW_TLS_KEY_RSA ? "RSA" : "ECDSA P-256");
    for (size_t i = 0; i < o.nnames; i++)
        printf("%s%s", i ? ", " : " ", names[i]);
    printf(", valid for %u days\n%s/%s: its private key (mode 0600)\n", o.days, dir,
           GW_TLS_SELF_SIGNED_KEY);
    rc = 0;
    goto out;
usage:
    usage(stderr);
    rc = 2;
out:
    for (size_t i = 0; i < ncopies; i++)
        free(copies[i]);
    return rc;
}
