/*
 * auth.h: what the authentication kinds (key_auth.c, basic_auth.c) and
 * `tandem hash` (hash_cli.c) share: the limits on credentials, the kinds
 * themselves, and the pieces their tests look at.
 *
 * The formats of the credentials consumers hold are policy.h's:
 * "sha256:<64 hex>" for an API key, "pbkdf2-sha256$<iterations>$<salt>$<hash>"
 * for a basic-auth password.
 */
#ifndef GW_POLICY_AUTH_H
#define GW_POLICY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

/* An API key a client presents: longer ones are refused (401) before they
 * are hashed. `tandem hash key` takes keys of GW_POL_KEY_MIN..GW_POL_KEY_MAX
 * bytes: keys are stored as an unsalted SHA-256 (so that a request finds
 * its consumer by the hash alone), which is only safe for keys with the
 * entropy of a random string, not for words a person picks. */
#define GW_POL_KEY_MIN 16
#define GW_POL_KEY_MAX 512
/* Header and query parameter names a key_auth policy reads, and realms. */
#define GW_POL_AUTH_NAME_MAX 64
#define GW_POL_REALM_MAX 128

/* Basic credentials: a user-id and a password, at most these many bytes
 * once decoded; an Authorization field longer than their base64 is refused
 * (401) before anything is decoded. */
#define GW_POL_USER_MAX 256
#define GW_POL_PASSWORD_MAX 1024
#define GW_POL_BASIC_B64_MAX (4 * ((GW_POL_USER_MAX + 1 + GW_POL_PASSWORD_MAX + 2) / 3))

/* PBKDF2-HMAC-SHA256 iterations: the bounds policy.h gives the record and
 * the count `tandem hash password` writes unless told otherwise (the
 * choice is argued in gateway/src/policy/README.md). */
#define GW_POL_PBKDF2_MIN_ITERATIONS 10000u
#define GW_POL_PBKDF2_MAX_ITERATIONS 10000000u
#define GW_POL_PBKDF2_DEFAULT_ITERATIONS 100000u
#define GW_POL_PBKDF2_SALT_BYTES 16

/* Password verifications queued on or running in the blocking pool at
 * once, gateway-wide. The pool is shared with the log writer and the
 * route loader: a flood of basic-auth attempts must not hold them up
 * behind an unbounded queue of hashes. Over the bound a request is
 * answered 503 with Retry-After. */
#define GW_POL_BASIC_MAX_PENDING 32

/* The verification cache's defaults and bounds (basic_auth keys
 * "cache_ttl_s", "cache_size"). */
#define GW_POL_BASIC_CACHE_TTL_S 60
#define GW_POL_BASIC_CACHE_TTL_MAX_S 3600
#define GW_POL_BASIC_CACHE_SIZE 1024
#define GW_POL_BASIC_CACHE_SIZE_MAX 65536

extern const struct gw_pol_kind gw__pol_kind_key_auth;
extern const struct gw_pol_kind gw__pol_kind_basic_auth;

/* Finds query parameter `name` in query[0..qlen) (the bytes after '?').
 * Names are compared after percent-decoding; a value is percent-decoded
 * into val[0..valcap) ('+' stays a plus: this is a URL's query, not a
 * form). *nfound gets how many parameters had the name (only the first
 * one's value is written). `rest` (capacity qlen) gets the query without
 * any of them, other parameters kept in order, *rest_len its length.
 * 0, or -EINVAL for a broken percent-escape or a value over valcap (of a
 * parameter with the name). Pure; any thread. */
int gw__pol_query_take(const char *query, size_t qlen, const char *name, char *val, size_t valcap,
                       size_t *vlen, size_t *nfound, char *rest, size_t *rest_len);

/* Reads a policy's "realm" member m into realm: a string of
 * 1..GW_POL_REALM_MAX bytes of visible ASCII and spaces without '"' or
 * '\\', so that it is written inside a quoted-string as it is. A bad value
 * is reported in d and leaves realm as it was. */
void gw__pol_read_realm(struct jpos_diags *d, const struct jpos_val *m,
                        char realm[GW_POL_REALM_MAX + 1]);

/* What basic_auth has done since the process started, for tests: PBKDF2
 * computations (real and dummy), those that ran on a scheduler thread
 * (never, by design), and requests answered from the cache. Any thread. */
struct gw__pol_basic_counts {
    uint64_t hashes;
    uint64_t on_scheduler;
    uint64_t cache_hits;
};
void gw__pol_basic_counts(struct gw__pol_basic_counts *out);

/* What key_auth has done since the process started, for tests: keys
 * looked up by their SHA-256 (every key not remembered) and keys known by
 * their tag. Any thread. */
struct gw__pol_key_counts {
    uint64_t hashed;
    uint64_t remembered;
};
void gw__pol_key_counts(struct gw__pol_key_counts *out);

/* `tandem hash key` / `tandem hash password [--iterations N]`: reads the
 * secret from standard input (never from the command line, which other
 * users of the machine can read in the process list) and prints the
 * record a consumer holds. Exit codes as cli.c's. */
int gw_pol_hash_cli_main(int argc, char **argv);

#endif
