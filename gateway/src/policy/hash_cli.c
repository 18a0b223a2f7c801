/*
 * hash_cli.c: `tandem hash key` and `tandem hash password`, which turn a
 * secret into the record a consumer holds in a policies file:
 *
 *   tandem hash key             sha256:<64 hex>
 *   tandem hash key --generate  a new random key on the first line, its
 *                               record on the second
 *   tandem hash password [--iterations N]
 *                               pbkdf2-sha256$<N>$<salt>$<hash>
 *
 * The secret is read from standard input, never from the command line
 * (which any user of the machine can read in the process list): one line,
 * its line ending dropped. From a terminal the input is not echoed, and a
 * password is asked for twice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/platform_util.h>

#include "policy/auth.h"
#include "tls/compat.h"

/* Bytes of a generated key: 256 bits, written as 43 base64url characters. */
#define GEN_BYTES 32

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tandem hash key [--generate]\n"
            "       tandem hash password [--iterations N]\n"
            "  Reads the API key or the password from standard input (one line) and prints\n"
            "  the record a consumer holds: \"sha256:<hex>\" for \"api_keys\",\n"
            "  \"pbkdf2-sha256$<iterations>$<salt>$<hash>\" for \"basic\".\"password\".\n"
            "  --generate      make a random key: prints it, then its record\n"
            "  --iterations N  PBKDF2 iterations, %u..%u (default %u)\n",
            GW_POL_PBKDF2_MIN_ITERATIONS, GW_POL_PBKDF2_MAX_ITERATIONS,
            GW_POL_PBKDF2_DEFAULT_ITERATIONS);
}

/* Reads one line of at most `max` bytes into buf (capacity max + 2): its
 * length without the line ending, -E2BIG when longer, -EIO on a read error.
 * `prompt` is written to stderr and echo turned off when stdin is a
 * terminal. */
static long read_secret(const char *prompt, char *buf, size_t max)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    size_t n = 0;
    long rc = 0;
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        if (n == max + 1) {
            rc = -E2BIG;
            continue; /* read the rest of the line, keep nothing */
        }
        buf[n++] = (char)c;
    }
    if (ferror(stdin))
        rc = -EIO;
    if (tty)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    if (n && buf[n - 1] == '\r')
        n--;
    if (rc == 0 && n > max)
        rc = -E2BIG;
    return rc < 0 ? rc : (long)n;
}

static int cmd_key(bool generate)
{
    char key[GW_POL_KEY_MAX + 2];
    size_t len;
    int rc = 1;
    if (generate) {
        unsigned char raw[GEN_BYTES];
        size_t olen = 0;
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw ||
            mbedtls_base64_encode((unsigned char *)key, sizeof key, &olen, raw, sizeof raw) != 0) {
            fprintf(stderr, "tandem: hash key: no random bytes\n");
            return 1;
        }
        mbedtls_platform_zeroize(raw, sizeof raw);
        /* base64url without padding: safe in a header and a query as is. */
        while (olen && key[olen - 1] == '=')
            olen--;
        for (size_t i = 0; i < olen; i++)
            key[i] = key[i] == '+' ? '-' : key[i] == '/' ? '_' : key[i];
        len = olen;
    } else {
        long n = read_secret("API key: ", key, GW_POL_KEY_MAX);
        if (n < 0) {
            fprintf(stderr, "tandem: hash key: %s\n",
                    n == -E2BIG ? "the key is longer than 512 bytes" : "cannot read the key");
            goto out;
        }
        len = (size_t)n;
        if (len < GW_POL_KEY_MIN) {
            fprintf(stderr,
                    "tandem: hash key: the key is shorter than %d bytes (use a random key: "
                    "tandem hash key --generate)\n",
                    GW_POL_KEY_MIN);
            goto out;
        }
    }
    unsigned char h[32];
    if (gw_tls_sha256(key, len, h) != 0) {
        fprintf(stderr, "tandem: hash key: SHA-256 failed\n");
        goto out;
    }
    if (generate)
        printf("%.*s\n", (int)len, key);
    printf("sha256:");
    for (int i = 0; i < 32; i++)
        printf("%02x", h[i]);
    printf("\n");
    rc = 0;
out:
    mbedtls_platform_zeroize(key, sizeof key);
    return rc;
}

static int cmd_password(uint32_t iterations)
{
    char pw[GW_POL_PASSWORD_MAX + 2], again[GW_POL_PASSWORD_MAX + 2];
    unsigned char salt[GW_POL_PBKDF2_SALT_BYTES], h[32];
    int rc = 1;
    long n = read_secret("Password: ", pw, GW_POL_PASSWORD_MAX);
    if (n < 0) {
        fprintf(stderr, "tandem: hash password: %s\n",
                n == -E2BIG ? "the password is longer than 1024 bytes" : "cannot read it");
        goto out;
    }
    if (n == 0) {
        fprintf(stderr, "tandem: hash password: the password is empty\n");
        goto out;
    }
    for (long i = 0; i < n; i++)
        if ((unsigned char)pw[i] < 0x20 || pw[i] == 0x7f) {
            /* RFC 7617: a client cannot send one. */
            fprintf(stderr, "tandem: hash password: the password holds a control character\n");
            goto out;
        }
    if (isatty(STDIN_FILENO)) {
        long m = read_secret("Again: ", again, GW_POL_PASSWORD_MAX);
        if (m != n || memcmp(pw, again, (size_t)n) != 0) {
            fprintf(stderr, "tandem: hash password: the two passwords differ\n");
            goto out;
        }
    }
    if (getrandom(salt, sizeof salt, 0) != (ssize_t)sizeof salt) {
        fprintf(stderr, "tandem: hash password: no random bytes\n");
        goto out;
    }
    if (gw_tls_pbkdf2_sha256(pw, (size_t)n, salt, sizeof salt, iterations, h, sizeof h) != 0) {
        fprintf(stderr, "tandem: hash password: PBKDF2 failed\n");
        goto out;
    }
    unsigned char s64[64], h64[64];
    size_t slen = 0, hlen = 0;
    if (mbedtls_base64_encode(s64, sizeof s64, &slen, salt, sizeof salt) != 0 ||
        mbedtls_base64_encode(h64, sizeof h64, &hlen, h, sizeof h) != 0)
        goto out;
    printf("pbkdf2-sha256$%u$%.*s$%.*s\n", (unsigned)iterations, (int)slen, (const char *)s64,
           (int)hlen, (const char *)h64);
    rc = 0;
out:
    mbedtls_platform_zeroize(pw, sizeof pw);
    mbedtls_platform_zeroize(again, sizeof again);
    mbedtls_platform_zeroize(h, sizeof h);
    return rc;
}

int gw_pol_hash_cli_main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (!cmd)
            fprintf(stderr, "tandem: hash needs a command: key or password\n");
        usage(cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    /* mbedtls 3.x hashes through PSA, which wants initialising first. */
    if (gw_tls_compat_init() < 0) {
        fprintf(stderr, "tandem: hash: the crypto library did not start\n");
        return 1;
    }
    if (strcmp(cmd, "key") == 0) {
        bool generate = false;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--generate") == 0) {
                generate = true;
            } else {
                fprintf(stderr,
                        "tandem: hash key: unknown argument \"%s\" (the key is read from "
                        "standard input)\n",
                        argv[i]);
                usage(stderr);
                return 2;
            }
        }
        return cmd_key(generate);
    }
    if (strcmp(cmd, "password") == 0) {
        uint32_t iterations = GW_POL_PBKDF2_DEFAULT_ITERATIONS;
        for (int i = 2; i < argc; i++) {
            const char *a = argv[i], *v = NULL;
            if (strcmp(a, "--iterations") == 0 && i + 1 < argc)
                v = argv[++i];
            else if (strncmp(a, "--iterations=", 13) == 0)
                v = a + 13;
            if (!v) {
                fprintf(stderr,
                        "tandem: hash password: unknown argument \"%s\" (the password is read "
                        "from standard input)\n",
                        a);
                usage(stderr);
                return 2;
            }
            char *end;
            errno = 0;
            unsigned long long it = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-' || it < GW_POL_PBKDF2_MIN_ITERATIONS ||
                it > GW_POL_PBKDF2_MAX_ITERATIONS) {
                fprintf(stderr, "tandem: hash password: --iterations is %u..%u, not \"%s\"\n",
                        GW_POL_PBKDF2_MIN_ITERATIONS, GW_POL_PBKDF2_MAX_ITERATIONS, v);
                return 2;
            }
            iterations = (uint32_t)it;
        }
        return cmd_password(iterations);
    }
    fprintf(stderr, "tandem: hash: unknown command \"%s\" (key or password)\n", cmd);
    usage(stderr);
    return 2;
}
