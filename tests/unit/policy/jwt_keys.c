/* jwt_keys.c: see jwt_keys.h. */
#include "jwt_keys.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

static size_t slurp(const char *path, unsigned char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

const char *tk_dir(void)
{
    if (dir[0])
        return dir;
    snprintf(dir, sizeof dir, "/tmp/tandem-jwt-XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    atexit(cleanup);
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s/rsa.pem 2>/dev/null",
        dir);
    run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s/ec256.pem", dir);
    run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out %s/ec384.pem", dir);
    const char *stems[] = {"rsa", "ec256", "ec384"};
    for (int i = 0; i < 3; i++) {
        run("openssl pkey -in %s/%s.pem -pubout -out %s/%s.pub", dir, stems[i], dir, stems[i]);
        run("openssl pkey -in %s/%s.pem -pubout -outform DER -out %s/%s.der", dir, stems[i], dir,
            stems[i]);
    }
    run("openssl rsa -pubin -in %s/rsa.pub -noout -modulus | sed 's/^Modulus=//' > %s/rsa.mod", dir,
        dir);
    return dir;
}

void tk_b64url(const void *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = a[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = 0;
}

static int hexval(int c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

const char *tk_jwk(const char *stem, const char *kid, const char *alg)
{
    static char out[4][4096];
    static int slot;
    char *o = out[slot++ % 4];
    char path[512], extra[512] = "";
    unsigned char buf[2048];
    char b1[1024], b2[1024];
    tk_dir();
    if (kid)
        snprintf(extra, sizeof extra, ",\"kid\":\"%s\"", kid);
    if (alg)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",\"alg\":\"%s\"", alg);
    if (strcmp(stem, "rsa") == 0) {
        snprintf(path, sizeof path, "%s/rsa.mod", dir);
        char hex[1100];
        size_t n = slurp(path, (unsigned char *)hex, sizeof hex - 1);
        while (n && (hex[n - 1] == '\n' || hex[n - 1] == '\r'))
            n--;
        for (size_t i = 0; i + 1 < n; i += 2)
            buf[i / 2] = (unsigned char)(hexval(hex[i]) << 4 | hexval(hex[i + 1]));
        tk_b64url(buf, n / 2, b1);
        snprintf(o, 4096, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"%s}", b1, extra);
    } else {
        size_t clen = strcmp(stem, "ec256") == 0 ? 32 : 48;
        snprintf(path, sizeof path, "%s/%s.der", dir, stem);
        size_t n = slurp(path, buf, sizeof buf);
        /* The DER ends with the uncompressed point 04 || x || y. */
        tk_b64url(buf + n - 2 * clen, clen, b1);
        tk_b64url(buf + n - clen, clen, b2);
        snprintf(o, 4096, "{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}",
                 clen == 32 ? "P-256" : "P-384", b1, b2, extra);
    }
    return o;
}

/* An ECDSA DER signature as JWS's r || s of clen bytes each. */
static size_t der_to_raw(const unsigned char *der, size_t n, size_t clen, unsigned char *raw)
{
    ck_assert(n > 2 && der[0] == 0x30);
    size_t p = 2;
    if (der[1] & 0x80)
        p += der[1] & 0x7f;
    memset(raw, 0, 2 * clen);
    for (int k = 0; k < 2; k++) {
        ck_assert(der[p] == 0x02);
        size_t l = der[p + 1];
        const unsigned char *v = der + p + 2;
        p += 2 + l;
        while (l > clen) {
            v++;
            l--;
        }
        memcpy(raw + k * clen + (clen - l), v, l);
    }
    return 2 * clen;
}

char *tk_token(const char *alg, const char *header, const char *claims, const char *stem,
               const void *secret, size_t secret_len)
{
    tk_dir();
    size_t hl = strlen(header), cl = strlen(claims);
    char *tok = malloc((hl + cl) * 2 + 2048);
    tk_b64url(header, hl, tok);
    strcat(tok, ".");
    tk_b64url(claims, cl, tok + strlen(tok));
    char in[300], sig[300];
    snprintf(in, sizeof in, "%s/in.%d", dir, (int)getpid());
    snprintf(sig, sizeof sig, "%s/sig.%d", dir, (int)getpid());
    FILE *f = fopen(in, "wb");
    fwrite(tok, 1, strlen(tok), f);
    fclose(f);
    const char *bits = alg + 2;
    if (strncmp(alg, "HS", 2) == 0) {
        char hex[2 * 1024 + 1];
        for (size_t i = 0; i < secret_len; i++)
            sprintf(hex + 2 * i, "%02x", ((const unsigned char *)secret)[i]);
        hex[2 * secret_len] = 0;
        run("openssl dgst -sha%s -mac HMAC -macopt hexkey:%s -binary -out %s %s", bits, hex, sig,
            in);
    } else if (strncmp(alg, "PS", 2) == 0) {
        run("openssl dgst -sha%s -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest "
            "-sign %s/%s.pem -out %s %s",
            bits, dir, stem, sig, in);
    } else {
        run("openssl dgst -sha%s -sign %s/%s.pem -out %s %s", bits, dir, stem, sig, in);
    }
    unsigned char s[1024], raw[128];
    size_t n = slurp(sig, s, sizeof s);
    const unsigned char *use = s;
    if (strncmp(alg, "ES", 2) == 0) {
        n = der_to_raw(s, n, strcmp(alg, "ES256") == 0 ? 32 : 48, raw);
        use = raw;
    }
    strcat(tok, ".");
    tk_b64url(use, n, tok + strlen(tok));
    unlink(in);
    unlink(sig);
    return tok;
}
