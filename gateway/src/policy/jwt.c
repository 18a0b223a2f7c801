/*
 * jwt.c: the `jwt` policy kind: a bearer token (RFC 6750) verified against
 * the keys of a JWKS file, a JWKS URL (jwks_fetch.c) and/or an HMAC secret
 * from the environment, its claims checked (jws.c), the consumer or
 * subject it names set, and claims forwarded upstream as owned fields.
 *
 *   {"name": "idp", "type": "jwt", "algorithms": ["RS256", "ES256"],
 *    "jwks_url": "https://idp/keys", "jwks_ca": "idp-ca.pem", "issuer": "https://idp",
 *    "audiences": ["api"], "leeway_s": 30, "required_claims": ["sub"],
 *    "forward_claims": {"sub": "x-jwt-sub"}, "consumer_claim": "sub"}
 *
 * A refusal is a 401 with WWW-Authenticate: Bearer (error="invalid_token"
 * and a fixed error_description when a token was presented), counted by
 * reason; a key set of a URL not fetched yet answers 503.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "jpos/file.h"
#include "jpos/keys.h"
#include "jwt_int.h"
#include "policy.h"
#include "set_int.h"
#include "stats.h"

/* Claims forwarded upstream, at most (each a field of the chain's
 * GW_POL_MAX_FIELDS). A forwarded value's bytes, at most. */
#define JWT_MAX_FORWARD 8
#define JWT_MAX_FORWARD_VALUE 1024
#define JWT_MAX_LIST 64
#define JWT_STR_MAX 1024
/* How long a request waits for its issuer's keys to be fetched. */
#define JWT_FETCH_WAIT_MS 4000

struct jwt_pol {
    char *name;
    unsigned algs;
    char *issuer;
    char **auds;
    size_t naud;
    char **req;
    size_t nreq;
    int64_t leeway_s;
    char *header; /* lower case */
    bool bearer;  /* the Authorization field: "Bearer <token>" */
    char *jwks_file;
    struct gw_jwks *file_keys;
    struct gw_jwks_src *src;
    char *jwks_ca, *jwks_server_name; /* for what /admin/policies shows */
    uint64_t refresh_ms, min_interval_ms;
    char *secret_env;
    struct gw_jwks *secret_keys;
    char *fwd_claim[JWT_MAX_FORWARD];
    char *fwd_field[JWT_MAX_FORWARD];
    size_t nfwd;
    char *consumer_claim;
};

static void jwt_free(void *state)
{
    struct jwt_pol *p = state;
    if (!p)
        return;
    free(p->name);
    free(p->issuer);
    gw__pol_strv_free(p->auds, p->naud);
    gw__pol_strv_free(p->req, p->nreq);
    free(p->header);
    free(p->jwks_file);
    free(p->jwks_ca);
    free(p->jwks_server_name);
    gw_jwks_unref(p->file_keys);
    free(p->secret_env);
    gw_jwks_unref(p->secret_keys);
    for (size_t i = 0; i < p->nfwd; i++) {
        free(p->fwd_claim[i]);
        free(p->fwd_field[i]);
    }
    free(p->consumer_claim);
    free(p);
}

static int dup_string(struct jpos_diags *d, const struct jpos_val *v, char **out)
{
    const char *s;
    size_t len;
    if (!jpos_string(d, v, JWT_STR_MAX, &s, &len))
        return 0;
    if (len == 0) {
        jpos_err(d, v, "an empty string");
        return 0;
    }
    free(*out);
    return (*out = strdup(s)) ? 0 : -ENOMEM;
}

static int string_list(struct jpos_diags *d, const struct jpos_val *v, char ***out, size_t *n)
{
    int r = gw__pol_strv_start(d, v, JWT_MAX_LIST, "strings", out, n);
    if (r <= 0)
        return r;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        char *s = NULL;
        r = dup_string(d, &m, &s);
        if (r < 0)
            return r;
        if (s)
            (*out)[(*n)++] = s;
    }
    return 0;
}

static int read_algorithms(struct jpos_diags *d, const struct jpos_val *v, unsigned *out)
{
    if (!jpos_array(d, v))
        return 0;
    if (json_array_size(v->v) == 0) {
        jpos_err(d, v, "name at least one algorithm");
        return 0;
    }
    static const char *const names[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                        "RS512", "PS256", "ES256", "ES384", NULL};
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, 16, &s, &len))
            continue;
        int a = gw_jwt_alg_from_name(s, len);
        if (a < 0) {
            if (strcasecmp(s, "none") == 0)
                jpos_err(d, &m, "\"none\" is never accepted: a token must be signed");
            else
                jpos_choice(d, &m, "algorithm", names, NULL);
            continue;
        }
        *out |= GW_JWT_ALG_BIT(a);
    }
    return 0;
}

static int read_forward(struct jpos_diags *d, const struct jpos_val *v, struct jwt_pol *p)
{
    if (!jpos_object(d, v))
        return 0;
    if (json_object_size(v->v) > JWT_MAX_FORWARD) {
        jpos_err(d, v, "at most %d claims are forwarded", JWT_MAX_FORWARD);
        return 0;
    }
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *field, *why;
        size_t len;
        if (!jpos_string(d, &m, GW_POL_NAME_MAX, &field, &len))
            continue;
        if (!gw__pol_field_name_ok(field, len, &why)) {
            jpos_err(d, &m, "field \"%s\": %s", field, why);
            continue;
        }
        char *c = strdup(m.key), *f = strdup(field);
        if (!c || !f) {
            free(c);
            free(f);
            return -ENOMEM;
        }
        for (char *q = f; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
        p->fwd_claim[p->nfwd] = c;
        p->fwd_field[p->nfwd++] = f;
    }
    return 0;
}

/* Reads the JWKS file `path` (relative to the policies directory). */
static int load_file(struct jpos_diags *d, const struct jpos_val *at, const char *dir,
                     const char *path, struct gw_jwks **out)
{
    char full[4096];
    if (path[0] == '/' || !dir)
        snprintf(full, sizeof full, "%s", path);
    else
        snprintf(full, sizeof full, "%s/%s", dir, path);
    char *text = NULL;
    size_t len = 0;
    int rc = jpos_file_read(full, GW_JWKS_MAX_BYTES, &text, &len);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        jpos_err(d, at, "%s: %s", full,
                 rc == -EFBIG ? "larger than the 256 KiB a key set may be" : strerror(-rc));
        return 0;
    }
    char err[256] = "";
    rc = gw_jwks_parse(text, len, out, err, sizeof err);
    free(text);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        jpos_err(d, at, "%s: %s", full, err);
    else if ((*out)->nkeys == 0)
        jpos_err(d, at, "%s: no key the gateway can verify with", full);
    return 0;
}

/* A server name as a certificate may carry it: a host name's letters,
 * digits, hyphens and dots, or an address (IPv6 with colons). */
static bool server_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '.' || *c == ':'))
            return false;
    return true;
}

/* The jwks_ca bundle `path` (relative to the policies directory): it must
 * be readable and hold a PEM certificate. The fetcher parses it whole, at
 * each fetch (a bundle that does not parse then fails the fetch): the
 * configuration's builds carry no X.509 code. 1 with the full path, 0
 * after an error, -ENOMEM. */
static int check_ca(struct jpos_diags *d, const struct jpos_val *at, const char *dir,
                    const char *path, char *full, size_t cap)
{
    if (path[0] == '/' || !dir)
        snprintf(full, cap, "%s", path);
    else
        snprintf(full, cap, "%s/%s", dir, path);
    char *text = NULL;
    size_t len = 0;
    int rc = jpos_file_read(full, GW_JWKS_MAX_CA_BYTES, &text, &len);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        jpos_err(d, at, "%s: %s", full,
                 rc == -EFBIG ? "larger than the 1 MiB a CA bundle may be" : strerror(-rc));
        return 0;
    }
    bool pem = memmem(text, len, "-----BEGIN CERTIFICATE-----", 27) != NULL;
    free(text);
    if (!pem) {
        jpos_err(d, at, "%s: no PEM certificate in the CA bundle", full);
        return 0;
    }
    return 1;
}

static int jwt_compile(struct jpos_diags *d, const struct jpos_val *obj,
                       const struct gw_pol_env *env, void **state)
{
    static const char *const keys[] = {"name",
                                       "type",
                                       "issuer",
                                       "audiences",
                                       "algorithms",
                                       "jwks_file",
                                       "jwks_url",
                                       "jwks_ca",
                                       "jwks_server_name",
                                       "secret_env",
                                       "leeway_s",
                                       "required_claims",
                                       "forward_claims",
                                       "consumer_claim",
                                       "header",
                                       "refresh_s",
                                       "refresh_min_interval_s",
                                       NULL};
    size_t before = d->nerrors;
    struct jwt_pol *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->leeway_s = 30;
    p->refresh_ms = 300 * 1000;
    p->min_interval_ms = 10 * 1000;
    struct jpos_val m, file_at = {0}, url_at = {0}, secret_at = {0}, ca_at = {0}, sn_at = {0};
    bool has_algs = false, has_file = false, has_url = false, has_secret = false;
    const char *url = NULL, *ca = NULL, *sn = NULL;
    char ca_full[4096];
    int r = 0;
    long long n;
    struct jpos_iter it;
    jpos_iter_init(&it, obj);
    while (r == 0 && jpos_iter_next(&it, &m)) {
        const char *k = m.key;
        if (strcmp(k, "name") == 0) {
            if (json_is_string(m.v) && !(p->name = strdup(json_string_value(m.v))))
                r = -ENOMEM;
        } else if (strcmp(k, "type") == 0) {
            continue;
        } else if (strcmp(k, "issuer") == 0) {
            r = dup_string(d, &m, &p->issuer);
        } else if (strcmp(k, "audiences") == 0) {
            r = string_list(d, &m, &p->auds, &p->naud);
        } else if (strcmp(k, "required_claims") == 0) {
            r = string_list(d, &m, &p->req, &p->nreq);
        } else if (strcmp(k, "algorithms") == 0) {
            has_algs = true;
            r = read_algorithms(d, &m, &p->algs);
        } else if (strcmp(k, "jwks_file") == 0) {
            has_file = true;
            file_at = m;
            r = dup_string(d, &m, &p->jwks_file);
        } else if (strcmp(k, "jwks_url") == 0) {
            has_url = true;
            url_at = m;
            if (!jpos_string(d, &m, GW_JWKS_MAX_URL, &url, NULL))
                url = NULL;
        } else if (strcmp(k, "jwks_ca") == 0) {
            const char *v;
            ca_at = m;
            ca = NULL;
            if (jpos_string(d, &m, GW_JWKS_MAX_URL, &v, NULL)) {
                if (v[0])
                    ca = v;
                else
                    jpos_err(d, &m, "an empty string");
            }
        } else if (strcmp(k, "jwks_server_name") == 0) {
            const char *v;
            sn_at = m;
            sn = NULL;
            if (jpos_string(d, &m, 253, &v, NULL)) {
                if (server_name_ok(v))
                    sn = v;
                else
                    jpos_err(d, &m, "a server name is a host name or an address, 1 to 253 bytes");
            }
        } else if (strcmp(k, "secret_env") == 0) {
            has_secret = true;
            secret_at = m;
            r = dup_string(d, &m, &p->secret_env);
        } else if (strcmp(k, "leeway_s") == 0) {
            if (jpos_int(d, &m, 0, 600, &n))
                p->leeway_s = n;
        } else if (strcmp(k, "refresh_s") == 0) {
            if (jpos_int(d, &m, 1, 86400, &n))
                p->refresh_ms = (uint64_t)n * 1000;
        } else if (strcmp(k, "refresh_min_interval_s") == 0) {
            if (jpos_int(d, &m, 1, 3600, &n))
                p->min_interval_ms = (uint64_t)n * 1000;
        } else if (strcmp(k, "forward_claims") == 0) {
            r = read_forward(d, &m, p);
        } else if (strcmp(k, "consumer_claim") == 0) {
            r = dup_string(d, &m, &p->consumer_claim);
        } else if (strcmp(k, "header") == 0) {
            const char *why;
            r = dup_string(d, &m, &p->header);
            if (r == 0 && p->header && !gw__pol_field_name_ok(p->header, strlen(p->header), &why) &&
                strcasecmp(p->header, "authorization") != 0)
                jpos_err(d, &m, "%s", why);
        } else {
            jpos_unknown(d, &m, "jwt policy", keys);
        }
    }
    if (r < 0)
        goto out;
    if (!has_algs)
        jpos_err(d, obj, "a jwt policy needs \"algorithms\" (the ones its issuer signs with)");
    if (has_file && has_url)
        jpos_err(d, &url_at, "\"jwks_file\" and \"jwks_url\" are exclusive");
    if (!has_file && !has_url && !has_secret)
        jpos_err(d, obj, "a jwt policy needs keys: \"jwks_file\", \"jwks_url\" or \"secret_env\"");
    if (has_file && p->jwks_file)
        r = load_file(d, &file_at, env ? env->dir : NULL, p->jwks_file, &p->file_keys);
    if ((ca || sn) && !has_url)
        jpos_err(d, ca ? &ca_at : &sn_at,
                 "\"jwks_ca\" and \"jwks_server_name\" go with \"jwks_url\"");
    if (r == 0 && ca) {
        r = check_ca(d, &ca_at, env ? env->dir : NULL, ca, ca_full, sizeof ca_full);
        if (r == 1) {
            r = 0;
            ca = ca_full;
        } else {
            ca = NULL;
        }
    }
    if (r == 0 && has_url && url && d->nerrors == before) {
        char err[256] = "";
        int rc = gw_jwks_src_get(url, ca, sn, &p->src, err, sizeof err);
        if (rc == -ENOMEM)
            r = rc;
        else if (rc < 0)
            jpos_err(d, !strstr(err, "jwks_ca") ? &url_at : ca ? &ca_at : &sn_at, "%s", err);
        else if ((ca && !(p->jwks_ca = strdup(ca_full))) ||
                 (sn && !(p->jwks_server_name = strdup(sn))))
            r = -ENOMEM;
    }
    if (r == 0 && has_secret && p->secret_env) {
        const char *sec = getenv(p->secret_env);
        size_t sl = sec ? strlen(sec) : 0;
        if (!sec)
            jpos_err(d, &secret_at, "the environment variable %s is not set", p->secret_env);
        else if (sl < 32 || sl > GW_JWT_MAX_SECRET)
            jpos_err(d, &secret_at,
                     "the secret in %s must be 32 to %d bytes (RFC 7518: at least "
                     "the hash's length)",
                     p->secret_env, GW_JWT_MAX_SECRET);
        else
            r = gw_jwks_from_secret(sec, sl, &p->secret_keys);
    }
    if (r < 0)
        goto out;
    if (!p->header && !(p->header = strdup("authorization"))) {
        r = -ENOMEM;
        goto out;
    }
    for (char *q = p->header; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    p->bearer = strcmp(p->header, "authorization") == 0;
    if (!p->consumer_claim && !(p->consumer_claim = strdup("sub")))
        r = -ENOMEM;
out:
    if (r == 0 && d->nerrors != before)
        r = -EINVAL;
    if (r < 0) {
        jwt_free(p);
        return r;
    }
    *state = p;
    return 0;
}

/* ---- verification ----------------------------------------------------------- */

static int sig_any(const struct gw_jwt *t, const struct gw_jwks *a, const struct gw_jwks *b)
{
    int ra = a ? gw_jwt_check_sig(t, a) : -ENOKEY;
    if (ra == 0)
        return 0;
    int rb = b ? gw_jwt_check_sig(t, b) : -ENOKEY;
    if (rb == 0)
        return 0;
    return ra == -EBADMSG || rb == -EBADMSG ? -EBADMSG : -ENOKEY;
}

int gw__jwt_authenticate(const void *state, const char *tok, size_t len, int64_t now,
                         struct gw_jwt *t, struct gw_jwt_refusal *f)
{
    const struct jwt_pol *p = state;
    struct gw_jwks *keys = NULL;
    const char *why;
    int rc = gw_jwt_parse(t, tok, len, p->algs, &why);
    *f = (struct gw_jwt_refusal){.reason = "invalid_token", .why = why, .status = 401};
    if (rc < 0)
        return -EACCES;
    if (p->src) {
        uint64_t age;
        keys = gw_jwks_src_keys(p->src, &age);
        /* No keys yet, or a kid they lack: the issuer may have rotated.
         * The fetcher decides whether it may fetch again so soon. */
        if (!keys || (t->kid && !gw_jwks_has_kid(keys, t->kid))) {
            gw_jwks_unref(keys);
            gw_jwks_src_refresh(p->src, p->min_interval_ms, JWT_FETCH_WAIT_MS);
            keys = gw_jwks_src_keys(p->src, &age);
        } else if (age >= p->refresh_ms) {
            gw_jwks_src_refresh_async(p->src, p->min_interval_ms);
        }
        if (!keys && !p->secret_keys) {
            *f = (struct gw_jwt_refusal){.reason = "keys_unavailable",
                                         .why = "the issuer's keys are unavailable",
                                         .status = 503};
            return -EACCES;
        }
    } else {
        keys = gw_jwks_ref(p->file_keys);
    }
    rc = sig_any(t, keys, p->secret_keys);
    gw_jwks_unref(keys);
    if (rc == -ENOKEY) {
        f->reason = t->kid ? "unknown_kid" : "invalid_token";
        f->why = t->kid ? "unknown key id" : "no key for the token's algorithm";
        return -EACCES;
    }
    if (rc < 0) {
        f->why = "bad signature";
        return -EACCES;
    }
    const struct gw_jwt_rules rules = {.issuer = p->issuer,
                                       .audiences = (const char *const *)p->auds,
                                       .naudiences = p->naud,
                                       .required = (const char *const *)p->req,
                                       .nrequired = p->nreq,
                                       .leeway_s = p->leeway_s};
    if (gw_jwt_check_claims(t, &rules, now, &why) < 0) {
        f->why = why;
        if (strcmp(why, "token expired") == 0)
            f->reason = "expired_token";
        else if (strcmp(why, "token not yet valid") == 0)
            f->reason = "not_yet_valid";
        return -EACCES;
    }
    return 0;
}

/* ---- the request path -------------------------------------------------------- */

static int refuse(const struct jwt_pol *p, struct gw_pol_req *rq, const struct gw_jwt_refusal *f,
                  bool presented)
{
    char www[256];
    gw_pol_count_denial(p->name, f->reason);
    if (f->status != 401)
        return gw_pol_refuse(rq, f->status, f->why, NULL, 0);
    /* RFC 6750 section 3: no error code when no token was presented. */
    if (presented)
        snprintf(www, sizeof www, "Bearer error=\"invalid_token\", error_description=\"%s\"",
                 f->why);
    else
        snprintf(www, sizeof www, "Bearer");
    const struct gw_http_kv extra = {.name = "WWW-Authenticate", .value = www};
    return gw_pol_refuse(rq, 401, presented ? f->why : "a bearer token is required", &extra, 1);
}

/* The token in the request: 1 with *tok, 0 when none was presented, -1
 * when the field is there but holds no token, or is there more than once. */
static int find_token(const struct jwt_pol *p, const struct gw_http_head *h, const char **tok,
                      size_t *len)
{
    const char *v = NULL;
    size_t vl = 0, count = 0;
    for (size_t i = 0; i < h->nheaders; i++)
        if (strlen(p->header) == h->headers[i].name_len &&
            strncasecmp(h->headers[i].name, p->header, h->headers[i].name_len) == 0) {
            v = h->headers[i].value;
            vl = h->headers[i].value_len;
            count++;
        }
    if (count == 0)
        return 0;
    if (count > 1)
        return -1;
    if (p->bearer) {
        /* Another scheme (Basic, say) is no bearer token. */
        if (vl == 6 && strncasecmp(v, "bearer", 6) == 0)
            return -1;
        if (vl < 7 || strncasecmp(v, "bearer ", 7) != 0)
            return 0;
        v += 7;
        vl -= 7;
        while (vl && *v == ' ') {
            v++;
            vl--;
        }
    }
    if (vl == 0)
        return -1;
    *tok = v;
    *len = vl;
    return 1;
}

/* A claim's value as a field value: a string as it is, a number or a
 * boolean as JSON writes it; NULL for other types, and for a value with
 * characters a field may not carry or longer than JWT_MAX_FORWARD_VALUE
 * (not forwarded: the field is the gateway's, so none arrives). */
static char *claim_text(json_t *v)
{
    char buf[64];
    const char *s = NULL;
    if (json_is_string(v)) {
        s = json_string_value(v);
        if (json_string_length(v) > JWT_MAX_FORWARD_VALUE)
            return NULL;
        for (const char *c = s; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                return NULL;
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = buf;
    } else if (json_is_real(v)) {
        snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
        s = buf;
    } else if (json_is_boolean(v)) {
        s = json_is_true(v) ? "true" : "false";
    } else {
        return NULL;
    }
    return rt_strdup(s);
}

static int jwt_run(void *state, struct gw_pol_req *rq)
{
    const struct jwt_pol *p = state;
    const char *tok = NULL;
    size_t len = 0;
    struct gw_jwt_refusal f = {.reason = "missing_credentials", .status = 401};
    int found = find_token(p, rq->head, &tok, &len);
    if (found == 0)
        return refuse(p, rq, &f, false);
    if (found < 0) {
        f = (struct gw_jwt_refusal){
            .reason = "invalid_token", .why = "malformed token", .status = 401};
        return refuse(p, rq, &f, true);
    }
    struct gw_jwt t;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int rc = gw__jwt_authenticate(p, tok, len, (int64_t)ts.tv_sec, &t, &f);
    if (rc < 0) {
        gw_jwt_done(&t);
        return refuse(p, rq, &f, true);
    }
    json_t *who = json_object_get(t.claims, p->consumer_claim);
    if (json_is_string(who)) {
        const struct gw_pol_set *set = gw_pol_table_set(rq->table);
        const struct gw_pol_consumer *c =
            set ? gw_pol_set_consumer_find(set, json_string_value(who)) : NULL;
        if (c)
            rq->consumer = c;
        else
            rq->subject = rt_strdup(json_string_value(who));
    }
    for (size_t i = 0; i < p->nfwd; i++) {
        char *v = claim_text(json_object_get(t.claims, p->fwd_claim[i]));
        if (v && !gw_pol_up_add(rq, p->fwd_field[i], v)) {
            gw_jwt_done(&t);
            gw_pol_count_denial(p->name, "internal");
            return gw_pol_refuse(rq, 500, "too many upstream fields", NULL, 0);
        }
    }
    gw_jwt_done(&t);
    return GW_POL_NEXT;
}

static json_t *jwt_describe(const void *state)
{
    const struct jwt_pol *p = state;
    json_t *o = json_object(), *algs = json_array(), *auds = json_array(), *req = json_array(),
           *fwd = json_object();
    for (int a = 0; a < GW_JWT_NALGS; a++)
        if (p->algs & GW_JWT_ALG_BIT(a))
            json_array_append_new(algs, json_string(gw_jwt_alg_name((enum gw_jwt_alg)a)));
    for (size_t i = 0; i < p->naud; i++)
        json_array_append_new(auds, json_string(p->auds[i]));
    for (size_t i = 0; i < p->nreq; i++)
        json_array_append_new(req, json_string(p->req[i]));
    for (size_t i = 0; i < p->nfwd; i++)
        json_object_set_new(fwd, p->fwd_claim[i], json_string(p->fwd_field[i]));
    json_object_set_new(o, "algorithms", algs);
    if (p->issuer)
        json_object_set_new(o, "issuer", json_string(p->issuer));
    json_object_set_new(o, "audiences", auds);
    json_object_set_new(o, "required_claims", req);
    json_object_set_new(o, "forward_claims", fwd);
    json_object_set_new(o, "consumer_claim", json_string(p->consumer_claim));
    json_object_set_new(o, "header", json_string(p->header));
    json_object_set_new(o, "leeway_s", json_integer(p->leeway_s));
    if (p->jwks_file) {
        json_object_set_new(o, "jwks_file", json_string(p->jwks_file));
        json_object_set_new(o, "keys", json_integer((json_int_t)p->file_keys->nkeys));
    }
    if (p->src) {
        uint64_t age;
        struct gw_jwks *k = gw_jwks_src_keys(p->src, &age);
        json_object_set_new(o, "jwks_url", json_string(gw_jwks_src_url(p->src)));
        json_object_set_new(o, "refresh_s", json_integer((json_int_t)(p->refresh_ms / 1000)));
        json_object_set_new(o, "refresh_min_interval_s",
                            json_integer((json_int_t)(p->min_interval_ms / 1000)));
        json_object_set_new(o, "keys", k ? json_integer((json_int_t)k->nkeys) : json_null());
        json_object_set_new(o, "fetches", json_integer((json_int_t)gw_jwks_src_fetches(p->src)));
        if (k)
            json_object_set_new(o, "keys_age_s", json_integer((json_int_t)(age / 1000)));
        gw_jwks_unref(k);
        if (p->jwks_ca)
            json_object_set_new(o, "jwks_ca", json_string(p->jwks_ca));
        if (p->jwks_server_name)
            json_object_set_new(o, "jwks_server_name", json_string(p->jwks_server_name));
        char why[256];
        json_object_set_new(o, "last_fetch_error",
                            gw_jwks_src_last_error(p->src, why, sizeof why) ? json_string(why)
                                                                            : json_null());
    }
    /* The variable's name only, never the secret. */
    if (p->secret_env)
        json_object_set_new(o, "secret_env", json_string(p->secret_env));
    return o;
}

static size_t jwt_owned(const void *state, const char **names, size_t cap)
{
    const struct jwt_pol *p = state;
    size_t n = 0;
    for (size_t i = 0; i < p->nfwd && n < cap; i++)
        names[n++] = p->fwd_field[i];
    return n;
}

const struct gw_pol_kind gw__pol_kind_jwt = {
    .type = "jwt",
    .compile = jwt_compile,
    .free = jwt_free,
    .run = jwt_run,
    .describe = jwt_describe,
    .owned = jwt_owned,
};
