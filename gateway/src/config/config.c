/*
 * config.c: tandem.json -> `struct gw_config` (shape and defaults in
 * gw/config.h).
 *
 * Validation reports every problem through the routes layer's positioned
 * JSON cursors, then the routes directory is loaded even when tandem.json had
 * errors (as long as it parsed), so that one `tandem check` shows all there
 * is to fix. Upstream names are collected even from upstreams with errors so
 * that routes are not blamed for a typo elsewhere.
 */
#include "gw/config.h"
#include "gw/http1.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tls/tls.h"
#include "../policy/set_int.h"
#include "../policy/table.h"
#include "../workflow/def.h"
#include "config_int.h"
#include "jpos/file.h"
#include "jpos/json.h"
#include "jpos/keys.h"

/* ---- addresses -------------------------------------------------------------- */

void gw_address_done(struct gw_address *a)
{
    if (!a)
        return;
    free(a->text);
    free(a->host);
    memset(a, 0, sizeof(*a));
}

int gw_address_parse(const char *text, bool port_zero_ok, struct gw_address *out, const char **msg)
{
    const char *m = NULL;
    const char *colon, *host = text;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            m = "an IPv6 address is written \"[::1]:8080\"";
            goto bad;
        }
        host = text + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
        for (size_t i = 0; i < hlen; i++)
            if (!(isxdigit((unsigned char)host[i]) || host[i] == ':' || host[i] == '.')) {
                m = "not a valid IPv6 address";
                goto bad;
            }
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            m = "address needs a port: \"host:port\"";
            goto bad;
        }
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen)) {
            m = "an IPv6 address must be in brackets: \"[::1]:8080\"";
            goto bad;
        }
        for (size_t i = 0; i < hlen; i++)
            if (!(isalnum((unsigned char)host[i]) || host[i] == '.' || host[i] == '-' ||
                  host[i] == '_')) {
                m = "host may hold only letters, digits, '.', '-' and '_'";
                goto bad;
            }
    }
    if (hlen == 0 || hlen > 253) {
        m = "address needs a host before the port (\"0.0.0.0:8080\" for every interface)";
        goto bad;
    }
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5) {
        m = "port must be a number from 1 to 65535";
        goto bad;
    }
    long port = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            m = "port must be a number from 1 to 65535";
            goto bad;
        }
        port = port * 10 + (*p - '0');
    }
    if (port > 65535 || (port == 0 && !port_zero_ok)) {
        m = port_zero_ok ? "port must be a number from 0 to 65535"
                         : "port must be a number from 1 to 65535";
        goto bad;
    }
    struct gw_address a = {.port = (uint16_t)port};
    a.text = strdup(text);
    a.host = strndup(host, hlen);
    if (!a.text || !a.host) {
        gw_address_done(&a);
        return -ENOMEM;
    }
    *out = a;
    return 0;
bad:
    if (msg)
        *msg = m;
    return -EINVAL;
}

bool gw_sockaddr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            return s6->sin6_addr.s6_addr[12] == 127;
        return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
    }
    return false;
}

/* With `resolve` false only literals are decided (no lookup, so that parsing
 * never blocks on a resolver unless asked to): a name gives -ENOENT. */
static int address_loopback(const struct gw_address *a, bool resolve, bool *loopback,
                            const char **why)
{
    /* The hints listener.c binds with, so that the answer is about the same
     * addresses. */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags =
                                 AI_PASSIVE | AI_NUMERICSERV | (resolve ? 0 : AI_NUMERICHOST)};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", a->port);
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc == EAI_NONAME && !resolve)
        return -ENOENT;
    if (rc != 0) {
        if (why)
            *why = gai_strerror(rc);
        return -EADDRNOTAVAIL;
    }
    bool all = res != NULL;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (!gw_sockaddr_is_loopback(ai->ai_addr))
            all = false;
    freeaddrinfo(res);
    *loopback = all;
    return 0;
}

int gw_address_loopback(const struct gw_address *a, bool *loopback, const char **why)
{
    return address_loopback(a, true, loopback, why);
}

int gw_hostport_parse(const char *v, size_t n, struct gw_hostport *out)
{
    struct gw_hostport h;
    memset(&h, 0, sizeof h);
    const char *host = v;
    size_t hl, i;
    if (n && v[0] == '[') {
        const char *close = memchr(v, ']', n);
        if (!close)
            return -EINVAL;
        host = v + 1;
        hl = (size_t)(close - host);
        i = hl + 2;
        h.ipv6 = true;
    } else {
        for (i = 0; i < n && v[i] != ':'; i++)
            ;
        hl = i;
    }
    if (hl == 0 || hl >= sizeof h.name)
        return -EINVAL;
    for (size_t k = 0; k < hl; k++) {
        unsigned char c = (unsigned char)host[k];
        bool ok = h.ipv6 ? isxdigit(c) || c == ':' || c == '.'
                         : isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
        if (!ok)
            return -EINVAL;
        h.name[k] = (char)tolower(c);
    }
    struct in6_addr a6;
    if (h.ipv6 && inet_pton(AF_INET6, h.name, &a6) != 1)
        return -EINVAL;
    if (i < n) {
        if (v[i] != ':' || i + 1 == n || n - i - 1 > 5)
            return -EINVAL;
        unsigned long port = 0;
        for (i++; i < n; i++) {
            if (!isdigit((unsigned char)v[i]))
                return -EINVAL;
            port = port * 10 + (unsigned long)(v[i] - '0');
        }
        if (port == 0 || port > 65535)
            return -EINVAL;
        h.port = (uint16_t)port;
    }
    *out = h;
    return 0;
}

/* ---- small readers ----------------------------------------------------------- */

static void strings_free(char **a)
{
    if (!a)
        return;
    for (char **p = a; *p; p++)
        free(*p);
    free(a);
}

static int get_address(struct jpos_diags *d, const struct jpos_val *v, bool port_zero_ok,
                       struct gw_address *out)
{
    const char *s;
    if (!jpos_string(d, v, 300, &s, NULL))
        return -EINVAL;
    const char *msg = NULL;
    int r = gw_address_parse(s, port_zero_ok, out, &msg);
    if (r == -EINVAL)
        jpos_err(d, v, "bad address \"%s\": %s", s, msg);
    return r;
}

#define NOMEM_GUARD(expr)                                                                          \
    do {                                                                                           \
        if ((expr) == -ENOMEM)                                                                     \
            return -ENOMEM;                                                                        \
    } while (0)

/* Sections hand their custom rows to these callbacks (jpos_keys_parse); the
 * rows' ids (config_int.h) say which key a member is. */

static int nomem_only(int r)
{
    return r == -ENOMEM ? -ENOMEM : 0;
}

/* ---- a listener's tls ------------------------------------------------------- */

/* A copy of string member `m` (at most max bytes, not empty) into *dst. */
static int dup_string(struct jpos_diags *d, const struct jpos_val *m, size_t max, const char *what,
                      char **dst)
{
    const char *s;
    if (!jpos_string(d, m, max, &s, NULL))
        return 0;
    if (!*s) {
        jpos_err(d, m, "%s is empty", what);
        return 0;
    }
    free(*dst);
    return (*dst = strdup(s)) ? 0 : -ENOMEM;
}

/* An array of strings of at most `max` elements of at most maxlen bytes
 * each into *out (NULL-terminated, for freeing) and *n. */
static int dup_strings(struct jpos_diags *d, const struct jpos_key *k, const struct jpos_val *v,
                       size_t maxlen, char ***out, size_t *n)
{
    if (!jpos_array(d, v))
        return 0;
    size_t len = json_array_size(v->v);
    if (len < (size_t)k->min || len > (size_t)k->max) {
        jpos_err(d, v, "needs %lld to %lld entries, got %zu", k->min, k->max, len);
        return 0;
    }
    char **a = calloc(len + 1, sizeof *a);
    if (!a)
        return -ENOMEM;
    size_t i = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        if (!jpos_string(d, &m, maxlen, &s, NULL))
            continue;
        if (!(a[i++] = strdup(s))) {
            strings_free(a);
            return -ENOMEM;
        }
    }
    strings_free(*out);
    *out = a;
    *n = i;
    return 0;
}

struct tls_cert_ctx {
    struct gw_tls_cert_config *c;
};

static int tls_cert_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                        struct jpos_diags *d)
{
    struct gw_tls_cert_config *c = ((struct tls_cert_ctx *)ctx)->c;
    switch (k->id) {
    case GW__K_TLS_CERT:
        return dup_string(d, m, (size_t)k->max, "cert", &c->cert);
    case GW__K_TLS_KEY:
        return dup_string(d, m, (size_t)k->max, "key", &c->key);
    case GW__K_TLS_NAMES:
        return dup_strings(d, k, m, 253, &c->names, &c->nnames);
    }
    return 0;
}

static int parse_tls_certs(struct gw_tls_listener_config *t, const struct jpos_key *row,
                           const struct jpos_val *v, struct jpos_diags *d)
{
    if (!jpos_array(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (n < (size_t)row->min || n > (size_t)row->max) {
        jpos_err(d, v, "needs %lld to %lld certificates, got %zu", row->min, row->max, n);
        return 0;
    }
    if (t->certs)
        return 0; /* a repeated key: jansson keeps the last, reported there */
    if (!(t->certs = calloc(n, sizeof *t->certs)))
        return -ENOMEM;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        struct gw_tls_cert_config *c = &t->certs[t->ncerts++];
        if (!jpos_object(d, &m))
            continue;
        struct tls_cert_ctx cc = {.c = c};
        NOMEM_GUARD(jpos_keys_parse(d, &m, row->sub, c, tls_cert_key, &cc, NULL));
        if (!c->cert)
            jpos_err(d, &m, "a certificate needs \"cert\" (its PEM chain file)");
        if (!c->key)
            jpos_err(d, &m, "a certificate needs \"key\" (its PEM private key file)");
    }
    return 0;
}

static bool header_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+.^_`|~-", *s))
            return false;
    return true;
}

struct tls_ctx {
    struct gw_tls_listener_config *t;
    bool has_certs, has_client_auth;
    struct jpos_val client_auth_v;
};

static int tls_client_auth_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                               struct jpos_diags *d)
{
    struct gw_tls_listener_config *t = ((struct tls_ctx *)ctx)->t;
    char **dst = NULL;
    switch (k->id) {
    case GW__K_TLS_CLIENT_CA:
        return dup_string(d, m, (size_t)k->max, "ca", &t->client_ca);
    case GW__K_TLS_SUBJECT_HEADER:
        dst = &t->client_subject_header;
        break;
    case GW__K_TLS_FINGERPRINT_HEADER:
        dst = &t->client_fingerprint_header;
        break;
    default:
        return 0;
    }
    const char *s;
    if (!jpos_string(d, m, (size_t)k->max, &s, NULL))
        return 0;
    if (!header_name_ok(s)) {
        jpos_err(d, m, "\"%s\" is not a header field name", s);
        return 0;
    }
    free(*dst);
    return (*dst = strdup(s)) ? 0 : -ENOMEM;
}

static int tls_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                   struct jpos_diags *d)
{
    struct tls_ctx *c = ctx;
    struct gw_tls_listener_config *t = c->t;
    switch (k->id) {
    case GW__K_TLS_CERTIFICATES:
        c->has_certs = true;
        return parse_tls_certs(t, k, m, d);
    case GW__K_TLS_CIPHERSUITES: {
        NOMEM_GUARD(dup_strings(d, k, m, 100, &t->ciphersuites, &t->nciphersuites));
        if (!json_is_array(m->v))
            return 0;
        struct jpos_iter it;
        struct jpos_val e;
        jpos_iter_init(&it, m);
        while (jpos_iter_next(&it, &e))
            if (json_is_string(e.v) && !gw_tls_suite_known(json_string_value(e.v)))
                jpos_err(d, &e,
                         "unknown ciphersuite \"%s\" (names as mbedtls writes them, "
                         "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256, or with '_')",
                         json_string_value(e.v));
        return 0;
    }
    case GW__K_TLS_CLIENT_AUTH:
        c->has_client_auth = true;
        c->client_auth_v = *m;
        if (jpos_object(d, m))
            return jpos_keys_parse(d, m, k->sub, t, tls_client_auth_key, c, NULL);
        return 0;
    }
    return 0;
}

static int parse_tls(struct gw_tls_listener_config *t, const struct jpos_key *row,
                     const struct jpos_val *v, struct jpos_diags *d)
{
    if (!jpos_object(d, v))
        return 0;
    t->enabled = true;
    struct tls_ctx c = {.t = t};
    NOMEM_GUARD(jpos_keys_parse(d, v, row->sub, t, tls_key, &c, NULL));
    if (!c.has_certs)
        jpos_err(d, v,
                 "tls needs \"certificates\": [{\"cert\": \"certs/site.pem\", \"key\": "
                 "\"certs/site.key\"}]");
    if (t->min_version > t->max_version)
        jpos_err(d, v, "min_version is above max_version");
    if (t->client_auth != GW_TLS_CLIENT_AUTH_OFF && !t->client_ca)
        jpos_err(d, c.has_client_auth ? &c.client_auth_v : v,
                 "client_auth needs \"ca\": the PEM bundle client certificates must chain to");
    return 0;
}

/* Certificate, key and CA paths relative to the configuration file's
 * directory. */
static char *resolve_dir(const char *config_path, const char *dir);
static int resolve_in_place(const char *config_path, char **p)
{
    if (!*p)
        return 0;
    char *r = resolve_dir(config_path, *p);
    if (!r)
        return -ENOMEM;
    free(*p);
    *p = r;
    return 0;
}

static int tls_resolve(const char *config_path, struct gw_tls_listener_config *t)
{
    for (size_t i = 0; i < t->ncerts; i++)
        if (resolve_in_place(config_path, &t->certs[i].cert) < 0 ||
            resolve_in_place(config_path, &t->certs[i].key) < 0)
            return -ENOMEM;
    return resolve_in_place(config_path, &t->client_ca);
}

static void tls_config_done(struct gw_tls_listener_config *t)
{
    for (size_t i = 0; i < t->ncerts; i++) {
        free(t->certs[i].cert);
        free(t->certs[i].key);
        strings_free(t->certs[i].names);
    }
    free(t->certs);
    strings_free(t->ciphersuites);
    free(t->client_ca);
    free(t->client_subject_header);
    free(t->client_fingerprint_header);
    memset(t, 0, sizeof *t);
}

/* ---- sections ---------------------------------------------------------------- */

struct listener_ctx {
    struct gw_listener_config *l;
    bool has_address;
};

static int listener_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                        struct jpos_diags *d)
{
    struct listener_ctx *c = ctx;
    struct gw_listener_config *l = c->l;
    const char *s;
    switch (k->id) {
    case GW__K_LISTENER_NAME:
        if (jpos_string(d, m, (size_t)k->max, &s, NULL)) {
            if (!*s)
                jpos_err(d, m, "listener name is empty");
            free(l->name);
            if (!(l->name = strdup(s)))
                return -ENOMEM;
        }
        return 0;
    case GW__K_LISTENER_ADDRESS:
        c->has_address = true;
        return nomem_only(get_address(d, m, true, &l->address));
    case GW__K_PATH_POLICY:
        if (jpos_object(d, m))
            return jpos_keys_parse(d, m, k->sub, &l->path_policy, NULL, NULL, NULL);
        return 0;
    case GW__K_LIMITS:
        if (jpos_object(d, m))
            return jpos_keys_parse(d, m, k->sub, &l->limits, NULL, NULL, NULL);
        return 0;
    case GW__K_TLS:
        return parse_tls(&l->tls, k, m, d);
    case GW__K_TRUSTED_PROXIES:
        free(l->trusted_proxies);
        l->trusted_proxies = NULL;
        l->ntrusted_proxies = 0;
        return gw_cidr_list_read(d, m, (size_t)k->max, &l->trusted_proxies, &l->ntrusted_proxies);
    }
    return 0;
}

static int parse_listener(struct gw_listener_config *l, const struct jpos_key *row,
                          const struct jpos_val *v, size_t index, struct jpos_diags *d)
{
    jpos_keys_defaults(row->sub, l);
    if (!jpos_object(d, v))
        return 0;
    struct listener_ctx c = {.l = l};
    NOMEM_GUARD(jpos_keys_parse(d, v, row->sub, l, listener_key, &c, NULL));
    if (!c.has_address)
        jpos_err(d, v, "listener needs an \"address\", e.g. \"0.0.0.0:8080\"");
    if (!l->name) {
        char buf[32];
        snprintf(buf, sizeof(buf), "listener%zu", index);
        if (!(l->name = strdup(l->address.text ? l->address.text : buf)))
            return -ENOMEM;
    }
    return 0;
}

/* The distinct client_auth header names the listeners configure. Each is
 * dropped from every listener's requests (proxy.c), which carry at most
 * GW_HTTP_MAX_CERT_FIELDS such names. */
static size_t client_cert_header_names(const struct gw_config *cfg)
{
    const char *seen[2 * GW_HTTP_MAX_CERT_FIELDS + 2];
    size_t n = 0;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct gw_tls_listener_config *t = &cfg->listeners[i].tls;
        const char *names[2] = {t->client_subject_header, t->client_fingerprint_header};
        for (size_t k = 0; k < 2; k++) {
            bool dup = !names[k];
            for (size_t j = 0; j < n && !dup; j++)
                dup = strcasecmp(seen[j], names[k]) == 0;
            if (dup)
                continue;
            if (n == sizeof seen / sizeof seen[0])
                return n;
            seen[n++] = names[k];
        }
    }
    return n;
}

static int parse_listeners(struct gw_config *cfg, const struct jpos_key *row,
                           const struct jpos_val *v, struct jpos_diags *d)
{
    if (!jpos_array(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (n < (size_t)row->min || n > (size_t)row->max) {
        jpos_err(d, v, "needs %lld to %lld listeners, got %zu", row->min, row->max, n);
        return 0;
    }
    cfg->listeners = calloc(n, sizeof(*cfg->listeners));
    if (!cfg->listeners)
        return -ENOMEM;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        size_t i = cfg->nlisteners++;
        struct gw_listener_config *l = &cfg->listeners[i];
        NOMEM_GUARD(parse_listener(l, row, &m, i, d));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->listeners[j].name, l->name) == 0)
                jpos_err(d, &m, "duplicate listener name \"%s\"", l->name);
            else if (l->address.text && cfg->listeners[j].address.text && l->address.port &&
                     l->address.port == cfg->listeners[j].address.port &&
                     strcmp(l->address.host, cfg->listeners[j].address.host) == 0)
                jpos_err(d, &m, "listeners \"%s\" and \"%s\" use the same address %s",
                         cfg->listeners[j].name, l->name, l->address.text);
        }
    }
    if (client_cert_header_names(cfg) > GW_HTTP_MAX_CERT_FIELDS)
        jpos_err(d, v,
                 "listeners name more than %d distinct client_auth subject_header and "
                 "fingerprint_header fields",
                 GW_HTTP_MAX_CERT_FIELDS);
    return 0;
}

static int parse_allowed_hosts(struct gw_admin_config *a, const struct jpos_key *row,
                               const struct jpos_val *v, struct jpos_diags *d)
{
    if (!jpos_array(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (n > (size_t)row->max) {
        jpos_err(d, v, "has %zu entries; at most %lld", n, row->max);
        return 0;
    }
    free(a->allowed_hosts);
    a->nallowed_hosts = 0;
    if (!(a->allowed_hosts = calloc(n ? n : 1, sizeof *a->allowed_hosts)))
        return -ENOMEM;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, 300, &s, &len))
            continue;
        if (gw_hostport_parse(s, len, &a->allowed_hosts[a->nallowed_hosts]) < 0) {
            jpos_err(d, &m,
                     "\"%s\" is not a Host value: a name, an IPv4 address or an IPv6 address "
                     "in brackets, then optionally \":port\" (\"admin.example.com\", "
                     "\"localhost:19901\", \"[::1]:9901\")",
                     s);
            continue;
        }
        a->nallowed_hosts++;
    }
    return 0;
}

struct admin_ctx {
    struct gw_admin_config *a;
    struct jpos_val addr_v, token_v;
    bool has_addr, addr_given;
};

/* An environment variable name: a letter or '_', then letters, digits and '_'. */
static bool env_name_ok(const char *s)
{
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

static int admin_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                     struct jpos_diags *d)
{
    struct admin_ctx *c = ctx;
    struct gw_admin_config *a = c->a;
    const char *s;
    switch (k->id) {
    case GW__K_ADMIN_ADDRESS: {
        c->addr_given = true;
        struct gw_address x;
        int r = get_address(d, m, true, &x);
        NOMEM_GUARD(r);
        if (r == 0) {
            gw_address_done(&a->address);
            a->address = x;
            c->addr_v = *m;
            c->has_addr = true;
        }
        return 0;
    }
    case GW__K_TOKEN_ENV: {
        if (!jpos_string(d, m, (size_t)k->max, &s, NULL))
            return 0;
        if (!env_name_ok(s)) {
            jpos_err(d, m,
                     "token_env names an environment variable (letters, digits, '_'), "
                     "not the token itself");
            return 0;
        }
        free(a->token_env);
        if (!(a->token_env = strdup(s)))
            return -ENOMEM;
        c->token_v = *m;
        return 0;
    }
    case GW__K_ALLOWED_HOSTS:
        return parse_allowed_hosts(a, k, m, d);
    }
    return 0;
}

static int parse_admin(struct gw_config *cfg, const struct jpos_key *row, const struct jpos_val *v,
                       struct jpos_diags *d, unsigned flags)
{
    struct gw_admin_config *a = &cfg->admin;
    if (json_is_false(v->v)) {
        a->enabled = false;
        return 0;
    }
    if (!json_is_object(v->v)) {
        jpos_err(d, v, "expected an object (or false to turn the admin API off), got %s",
                 jpos_type_name(v->v));
        return 0;
    }
    struct admin_ctx c = {.a = a, .addr_v = *v, .token_v = *v};
    NOMEM_GUARD(jpos_keys_parse(d, v, row->sub, a, admin_key, &c, NULL));
    if (!c.addr_given) {
        if (gw_address_parse(gw__admin_address_key->def_str, false, &a->address, NULL) < 0)
            return -ENOMEM;
        c.has_addr = true;
    }
    /* A set but empty variable would be a token nobody can present; the
     * gateway refuses to start either way, so `tandem check` says so too. */
    if (a->token_env && (flags & GW_CONFIG_ENV)) {
        const char *val = getenv(a->token_env);
        if (!val || !*val)
            jpos_err(d, &c.token_v,
                     "environment variable %s (admin.token_env) is %s: the gateway will not "
                     "start without its admin token; set it, or remove token_env to run the "
                     "admin API on loopback without a token",
                     a->token_env, val ? "empty" : "not set");
    }
    /* No valid address (already reported): not loopback, and no crash. The
     * decision is made on the addresses the host resolves to, not on its
     * text: "127.attacker.example" is a name like any other. */
    a->loopback = false;
    if (!c.has_addr)
        return 0;
    const char *why = NULL;
    int lr = address_loopback(&a->address, (flags & GW_CONFIG_ENV) != 0, &a->loopback, &why);
    if (lr == -ENOENT || a->loopback || a->token_env)
        return 0; /* a name not looked up is decided when the gateway binds it */
    if (lr == -EADDRNOTAVAIL)
        jpos_err(d, &c.addr_v,
                 "the admin address %s does not resolve (%s), so it cannot be known to be "
                 "loopback: set \"token_env\" to the name of an environment variable "
                 "holding a bearer token, or listen on 127.0.0.1",
                 a->address.text, why ? why : "no address");
    else
        jpos_err(d, &c.addr_v,
                 "the admin API on %s is reachable from other hosts: set \"token_env\" to the "
                 "name of an environment variable holding a bearer token, or listen on "
                 "127.0.0.1",
                 a->address.text);
    return 0;
}

struct active_ctx {
    struct gw_upstream_config *u;
    bool has_path;
};

static int active_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                      struct jpos_diags *d)
{
    struct active_ctx *c = ctx;
    const char *s;
    if (k->id != GW__K_ACTIVE_PATH)
        return 0;
    c->has_path = true;
    if (!jpos_string(d, m, (size_t)k->max, &s, NULL))
        return 0;
    bool ok = s[0] == '/';
    for (const char *p = s; ok && *p; p++)
        ok = (unsigned char)*p > 0x20 && *p != 0x7f;
    if (!ok) {
        jpos_err(d, m,
                 "health check path must start with '/' and hold no "
                 "spaces or control characters");
        return 0;
    }
    free(c->u->active_path);
    if (!(c->u->active_path = strdup(s)))
        return -ENOMEM;
    return 0;
}

static int health_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                      struct jpos_diags *d)
{
    struct gw_upstream_config *u = ctx;
    if (!jpos_object(d, m))
        return 0;
    if (k->id == GW__K_PASSIVE)
        return jpos_keys_parse(d, m, k->sub, u, NULL, NULL, NULL);
    if (k->id != GW__K_ACTIVE)
        return 0;
    u->active_health = true;
    struct active_ctx c = {.u = u};
    NOMEM_GUARD(jpos_keys_parse(d, m, k->sub, u, active_key, &c, NULL));
    if (!c.has_path)
        jpos_err(d, m, "active health checks need a \"path\", e.g. \"/healthz\"");
    return 0;
}

struct target_ctx {
    struct gw_target_config *t;
    bool has_addr;
};

static int target_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                      struct jpos_diags *d)
{
    struct target_ctx *c = ctx;
    if (k->id != GW__K_TARGET_ADDRESS)
        return 0;
    c->has_addr = true;
    return nomem_only(get_address(d, m, false, &c->t->address));
}

static int parse_targets(struct gw_upstream_config *u, const struct jpos_key *row,
                         const struct jpos_val *v, struct jpos_diags *d)
{
    if (!jpos_array(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (n < (size_t)row->min || n > (size_t)row->max) {
        jpos_err(d, v, "needs %lld to %lld targets, got %zu", row->min, row->max, n);
        return 0;
    }
    u->targets = calloc(n, sizeof(*u->targets));
    if (!u->targets)
        return -ENOMEM;
    struct jpos_iter it;
    struct jpos_val t;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &t)) {
        struct gw_target_config *tc = &u->targets[u->ntargets++];
        jpos_keys_defaults(row->sub, tc);
        if (!jpos_object(d, &t))
            continue;
        struct target_ctx c = {.t = tc};
        NOMEM_GUARD(jpos_keys_parse(d, &t, row->sub, tc, target_key, &c, NULL));
        if (!c.has_addr)
            jpos_err(d, &t, "target needs an \"address\", e.g. \"127.0.0.1:9000\"");
    }
    return 0;
}

struct upstream_ctx {
    struct gw_upstream_config *u;
    bool has_targets;
};

/* A server name as SNI carries it: DNS labels of letters, digits, '-' and
 * '_', dot-separated, none empty (an IP address literal is not sent as
 * SNI, but is checked against the certificate all the same). */
static bool server_name_ok(const char *s)
{
    size_t label = 0;
    for (; *s; s++) {
        if (*s == '.') {
            if (!label)
                return false;
            label = 0;
        } else if (isalnum((unsigned char)*s) || *s == '-' || *s == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

static int upstream_tls_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                            struct jpos_diags *d)
{
    struct gw_tls_upstream_config *t = ctx;
    switch (k->id) {
    case GW__K_UTLS_CA:
        return dup_string(d, m, (size_t)k->max, "ca", &t->ca);
    case GW__K_UTLS_CERT:
        return dup_string(d, m, (size_t)k->max, "cert", &t->cert);
    case GW__K_UTLS_KEY:
        return dup_string(d, m, (size_t)k->max, "key", &t->key);
    case GW__K_UTLS_SERVER_NAME: {
        const char *s;
        if (!jpos_string(d, m, (size_t)k->max, &s, NULL))
            return 0;
        if (!server_name_ok(s)) {
            jpos_err(d, m, "\"%s\" is not a server name (DNS labels: letters, digits, '-')", s);
            return 0;
        }
        free(t->server_name);
        return (t->server_name = strdup(s)) ? 0 : -ENOMEM;
    }
    }
    return 0;
}

static int parse_upstream_tls(struct gw_tls_upstream_config *t, const struct jpos_key *row,
                              const struct jpos_val *v, struct jpos_diags *d)
{
    if (!jpos_object(d, v))
        return 0;
    t->enabled = true;
    NOMEM_GUARD(jpos_keys_parse(d, v, row->sub, t, upstream_tls_key, t, NULL));
    if (!t->cert != !t->key)
        jpos_err(d, v, "a client certificate needs both \"cert\" and \"key\"");
    return 0;
}

static int upstream_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                        struct jpos_diags *d)
{
    struct upstream_ctx *c = ctx;
    switch (k->id) {
    case GW__K_UPSTREAM_TLS:
        return parse_upstream_tls(&c->u->tls, k, m, d);
    case GW__K_TARGETS:
        c->has_targets = true;
        return parse_targets(c->u, k, m, d);
    case GW__K_HEALTH:
        if (jpos_object(d, m))
            return jpos_keys_parse(d, m, k->sub, c->u, health_key, c->u, NULL);
        return 0;
    }
    return 0;
}

static int parse_upstream(struct gw_upstream_config *u, const struct jpos_key *row,
                          const struct jpos_val *v, struct jpos_diags *d)
{
    jpos_keys_defaults(row->sub, u); /* health's sections write into the upstream too */
    if (!jpos_object(d, v))
        return 0;
    struct upstream_ctx c = {.u = u};
    NOMEM_GUARD(jpos_keys_parse(d, v, row->sub, u, upstream_key, &c, NULL));
    if (!c.has_targets)
        jpos_err(d, v, "upstream \"%s\" needs \"targets\": [{\"address\": \"host:port\"}]",
                 u->name);
    return 0;
}

static int parse_upstreams(struct gw_config *cfg, const struct jpos_key *row,
                           const struct jpos_val *v, struct jpos_diags *d)
{
    if (!jpos_object(d, v))
        return 0;
    size_t n = json_object_size(v->v);
    if (n > (size_t)row->max) {
        jpos_err(d, v, "has %zu upstreams; at most %lld", n, row->max);
        return 0;
    }
    cfg->upstreams = calloc(n ? n : 1, sizeof(*cfg->upstreams));
    cfg->upstream_names = calloc(n ? n : 1, sizeof(*cfg->upstream_names));
    if (!cfg->upstreams || !cfg->upstream_names)
        return -ENOMEM;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        struct gw_upstream_config *u = &cfg->upstreams[cfg->nupstreams];
        if (!(u->name = strdup(m.key)))
            return -ENOMEM;
        cfg->upstream_names[cfg->nupstreams++] = u->name;
        bool ok = *m.key && strlen(m.key) <= 128;
        for (const char *p = m.key; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || strchr("._-", *p);
        if (!ok)
            jpos_err_key(d, &m,
                         "upstream name \"%s\" may hold only letters, digits, '.', '_' and '-'",
                         m.key);
        NOMEM_GUARD(parse_upstream(u, row, &m, d));
    }
    return 0;
}

/* ---- workflows ---------------------------------------------------------------- */

/* What the workflows section names, resolved once the whole file is read. */
struct wf_section {
    unsigned flags;
    struct gw_workflows_config *w;
    const char *dir, *data_dir, *sqlite_path; /* as written; point into the document */
};

static int wf_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                  struct jpos_diags *d)
{
    struct wf_section *c = ctx;
    const char *s;
    size_t len;
    switch (k->id) {
    case GW__K_WF_DIR:
    case GW__K_WF_DATA_DIR:
    case GW__K_WF_SQLITE_PATH:
        if (!jpos_string(d, m, (size_t)k->max, &s, NULL))
            return 0;
        if (!*s) {
            jpos_err(d, m, "%s names a path; it is empty", k->name);
            return 0;
        }
        *(k->id == GW__K_WF_DIR        ? &c->dir
          : k->id == GW__K_WF_DATA_DIR ? &c->data_dir
                                       : &c->sqlite_path) = s;
        return 0;
    case GW__K_WF_STATUS_PATH: {
        if (!jpos_string(d, m, (size_t)k->max, &s, &len))
            return 0;
        bool ok = len >= 1 && s[0] == '/' && s[len - 1] == '/';
        for (size_t i = 0; ok && i < len; i++)
            ok = (unsigned char)s[i] > 0x20 && s[i] != 0x7f && s[i] != '?' && s[i] != '#';
        if (!ok) {
            jpos_err(d, m,
                     "status_path must start and end with '/' and hold no spaces, control "
                     "characters, '?' or '#' (\"/workflows/\")");
            return 0;
        }
        free(c->w->status_path);
        return (c->w->status_path = strdup(s)) ? 0 : -ENOMEM;
    }
    case GW__K_WF_JOURNAL: {
        if (!jpos_object(d, m))
            return 0;
        int r = jpos_keys_parse(d, m, k->sub, c->w, wf_key, c, NULL);
        if (r < 0 || c->w->backend != GW_WF_POSTGRES)
            return r;
        /* Checked once the whole object is read: "backend" may come after
         * "postgres". */
        if (!c->w->pg_conninfo_env) {
            jpos_err(d, m,
                     "the postgres journal needs \"postgres\": {\"conninfo_env\": \"NAME\"}: "
                     "the environment variable holding its libpq conninfo");
        } else if (c->flags & GW_CONFIG_ENV) {
            const char *v = getenv(c->w->pg_conninfo_env);
            if (!v || !*v)
                jpos_err(d, m,
                         "the environment variable %s named by postgres.conninfo_env is not set "
                         "(it holds the libpq conninfo of the journal)",
                         c->w->pg_conninfo_env);
        }
        return 0;
    }
    case GW__K_WF_POSTGRES:
        if (jpos_object(d, m))
            return jpos_keys_parse(d, m, k->sub, c->w, wf_key, c, NULL);
        return 0;
    case GW__K_WF_CONNINFO_ENV:
        if (!jpos_string(d, m, (size_t)k->max, &s, NULL))
            return 0;
        if (!env_name_ok(s)) {
            jpos_err(d, m, "\"%s\" is not an environment variable name", s);
            return 0;
        }
        free(c->w->pg_conninfo_env);
        return (c->w->pg_conninfo_env = strdup(s)) ? 0 : -ENOMEM;
    case GW__K_WF_REPLICA_ID: {
        if (!jpos_string(d, m, (size_t)k->max, &s, &len))
            return 0;
        bool ok = len > 0;
        for (size_t i = 0; ok && i < len; i++)
            ok = isalnum((unsigned char)s[i]) || strchr("._-", s[i]);
        if (!ok) {
            jpos_err(d, m, "replica_id \"%s\" may hold only letters, digits, '.', '_' and '-'", s);
            return 0;
        }
        free(c->w->replica_id);
        return (c->w->replica_id = strdup(s)) ? 0 : -ENOMEM;
    }
    }
    return 0;
}

/* The host name as a replica id: letters, digits, '.', '_' and '-' kept,
 * anything else written as '-'. */
static char *host_replica_id(void)
{
    char h[256];
    if (gethostname(h, sizeof h - 1) < 0 || !h[0])
        snprintf(h, sizeof h, "tandem");
    h[sizeof h - 1] = '\0';
    h[128] = '\0';
    for (char *p = h; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("._-", *p)))
            *p = '-';
    return strdup(h);
}

static char *resolve_dir(const char *config_path, const char *dir);

/* Defaults that depend on others, and paths resolved against the
 * configuration file's directory. */
static int wf_finish(struct wf_section *c, const char *path)
{
    struct gw_workflows_config *w = c->w;
    if (!w->status_path && !(w->status_path = strdup("/workflows/")))
        return -ENOMEM;
    if (!w->replica_id && !(w->replica_id = host_replica_id()))
        return -ENOMEM;
    if (!(w->dir = resolve_dir(path, c->dir ? c->dir : "workflows")))
        return -ENOMEM;
    if (!(w->data_dir = resolve_dir(path, c->data_dir ? c->data_dir : "data")))
        return -ENOMEM;
    const char *sp = c->sqlite_path ? c->sqlite_path : "workflows.db";
    if (sp[0] == '/')
        w->sqlite_path = strdup(sp);
    else if (asprintf(&w->sqlite_path, "%s/%s", w->data_dir, sp) < 0)
        w->sqlite_path = NULL;
    return w->sqlite_path ? 0 : -ENOMEM;
}

/* ---- the whole file ---------------------------------------------------------- */

/* What the policies section names, resolved once the whole file is read. */
struct pol_section {
    const char *dir; /* as written; points into the document */
};

struct top_ctx {
    struct gw_config *cfg;
    unsigned flags;
    const char *routes;
    struct pol_section pol;
    bool has_listeners, has_admin;
    struct wf_section wf;
};

static int pol_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                   struct jpos_diags *d)
{
    struct top_ctx *c = ctx;
    const char *s, *why;
    size_t len;
    switch (k->id) {
    case GW__K_POL_DIR:
        if (!jpos_string(d, m, (size_t)k->max, &s, NULL))
            return 0;
        if (!*s)
            jpos_err(d, m, "policies.dir names a directory; it is empty");
        else
            c->pol.dir = s;
        return 0;
    case GW__K_POL_CONSUMER_HEADER:
        if (!jpos_string(d, m, (size_t)k->max, &s, &len))
            return 0;
        if (!gw__pol_field_name_ok(s, len, &why)) {
            jpos_err(d, m, "consumer_header \"%s\": %s", s, why);
            return 0;
        }
        free(c->cfg->policies.consumer_header);
        if (!(c->cfg->policies.consumer_header = strdup(s)))
            return -ENOMEM;
        for (char *p = c->cfg->policies.consumer_header; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        return 0;
    case GW__K_POL_REDIS: {
        struct gw_redis_config *rc = &c->cfg->policies.redis;
        rc->enabled = true;
        if (!jpos_object(d, m))
            return 0;
        int r = jpos_keys_parse(d, m, k->sub, rc, pol_key, c, NULL);
        if (r < 0)
            return r;
        /* Checked once the whole object is read. */
        if (rc->password_env && (c->flags & GW_CONFIG_ENV)) {
            const char *v = getenv(rc->password_env);
            if (!v || !*v)
                jpos_err(d, m,
                         "the environment variable %s named by redis.password_env is not set "
                         "(it holds the password Redis is sent with AUTH)",
                         rc->password_env);
        }
        if (!rc->address.text) {
            const char *msg = NULL;
            r = gw_address_parse("127.0.0.1:6379", false, &rc->address, &msg);
            if (r < 0)
                return r == -ENOMEM ? -ENOMEM : 0;
        }
        return 0;
    }
    case GW__K_REDIS_ADDRESS: {
        struct gw_address a = {0};
        int r = get_address(d, m, false, &a);
        if (r < 0)
            return r == -ENOMEM ? -ENOMEM : 0;
        gw_address_done(&c->cfg->policies.redis.address);
        c->cfg->policies.redis.address = a;
        return 0;
    }
    case GW__K_REDIS_PASSWORD_ENV:
        if (!jpos_string(d, m, (size_t)k->max, &s, NULL))
            return 0;
        if (!env_name_ok(s)) {
            jpos_err(d, m, "\"%s\" is not an environment variable name", s);
            return 0;
        }
        free(c->cfg->policies.redis.password_env);
        return (c->cfg->policies.redis.password_env = strdup(s)) ? 0 : -ENOMEM;
    }
    return 0;
}

static int top_key(void *ctx, const struct jpos_key *k, const struct jpos_val *m,
                   struct jpos_diags *d)
{
    struct top_ctx *c = ctx;
    const char *s;
    switch (k->id) {
    case GW__K_SCHEMA:
        jpos_string(d, m, (size_t)k->max, &s, NULL);
        return 0;
    case GW__K_RUNTIME:
        if (jpos_object(d, m))
            return jpos_keys_parse(d, m, k->sub, c->cfg, NULL, NULL, NULL);
        return 0;
    case GW__K_LISTENERS:
        c->has_listeners = true;
        return parse_listeners(c->cfg, k, m, d);
    case GW__K_ADMIN:
        c->has_admin = true;
        return parse_admin(c->cfg, k, m, d, c->flags);
    case GW__K_UPSTREAMS:
        return parse_upstreams(c->cfg, k, m, d);
    case GW__K_WORKFLOWS:
        c->cfg->workflows.enabled = true;
        if (jpos_object(d, m))
            return jpos_keys_parse(d, m, k->sub, &c->cfg->workflows, wf_key, &c->wf, NULL);
        return 0;
    case GW__K_POLICIES:
        if (jpos_object(d, m))
            return jpos_keys_parse(d, m, k->sub, &c->cfg->policies, pol_key, c, NULL);
        return 0;
    case GW__K_ROUTES:
        if (jpos_string(d, m, (size_t)k->max, &s, NULL)) {
            if (!*s)
                jpos_err(d, m, "routes names a directory; it is empty");
            else
                c->routes = s;
        }
        return 0;
    }
    return 0;
}

/* The admin listener: the listener defaults, then its own fixed values. */
static void admin_listener_defaults(struct gw_listener_config *l)
{
    jpos_keys_defaults(&gw__listener_keys, l);
    for (size_t i = 0; i < gw_admin_listener_keys.nkeys; i++) {
        const struct jpos_key *k = &gw_admin_listener_keys.keys[i];
        jpos_key_store(k, l, k->def);
    }
}

static char *resolve_dir(const char *config_path, const char *dir)
{
    const char *slash = strrchr(config_path, '/');
    char *out;
    if (dir[0] == '/' || !slash)
        return strdup(dir);
    if (asprintf(&out, "%.*s/%s", (int)(slash - config_path), config_path, dir) < 0)
        return NULL;
    return out;
}

int gw_config_parse(const char *path, const char *text, size_t len, unsigned flags,
                    struct gw_config **out, struct jpos_diags *d)
{
    size_t before = d->nerrors;
    int r = 0;
    struct jpos_doc doc;
    struct gw_config *cfg = calloc(1, sizeof(*cfg));
    memset(&doc, 0, sizeof(doc));
    if (!cfg || !(cfg->path = strdup(path))) {
        r = -ENOMEM;
        goto out;
    }
    /* The admin API is on unless "admin": false. */
    cfg->admin.enabled = true;
    jpos_keys_defaults(&gw_config_keys, cfg);
    admin_listener_defaults(&cfg->admin.listener);
    struct top_ctx c = {.cfg = cfg, .flags = flags, .routes = gw__routes_key->def_str};
    c.wf.flags = flags;
    c.wf.w = &cfg->workflows;

    r = jpos_doc_parse(&doc, path, text, len, d);
    if (r < 0)
        goto out;
    struct jpos_val root;
    jpos_val_root(&doc, &root);
    if (!json_is_object(root.v)) {
        jpos_err(d, &root, "the configuration is an object, got %s", jpos_type_name(root.v));
        goto out;
    }
    r = jpos_keys_parse(d, &root, &gw_config_keys, cfg, top_key, &c, NULL);
    if (r < 0)
        goto out;
    if (!c.has_listeners)
        jpos_err(d, &root,
                 "no \"listeners\": add one, e.g. \"listeners\": [{\"name\": \"public\", "
                 "\"address\": \"0.0.0.0:8080\"}]");
    if (!c.has_admin) {
        cfg->admin.loopback = true;
        if (gw_address_parse(gw__admin_address_key->def_str, false, &cfg->admin.address, NULL) <
            0) {
            r = -ENOMEM;
            goto out;
        }
    }
    if (!cfg->upstream_names && !(cfg->upstream_names = calloc(1, sizeof(char *)))) {
        r = -ENOMEM;
        goto out;
    }
    if (!(cfg->routes_dir = resolve_dir(path, c.routes))) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = wf_finish(&c.wf, path)) < 0)
        goto out;
    if (!(cfg->policies.dir = resolve_dir(path, c.pol.dir ? c.pol.dir : "policies")) ||
        (!cfg->policies.consumer_header &&
         !(cfg->policies.consumer_header = strdup("x-consumer")))) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if ((r = tls_resolve(path, &cfg->listeners[i].tls)) < 0)
            goto out;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        struct gw_tls_upstream_config *t = &cfg->upstreams[i].tls;
        if (resolve_in_place(path, &t->ca) < 0 || resolve_in_place(path, &t->cert) < 0 ||
            resolve_in_place(path, &t->key) < 0) {
            r = -ENOMEM;
            goto out;
        }
    }
    if (flags & GW_CONFIG_ROUTES) {
        /* Without memory for the cache the routes are read without one. */
        if (route_cache_new(&cfg->routes_cache) < 0)
            cfg->routes_cache = NULL;
        struct gw_routes_source src = {.dir = cfg->routes_dir,
                                       .workflows_dir = cfg->workflows.dir,
                                       .policies_dir = cfg->policies.dir,
                                       .consumer_header = cfg->policies.consumer_header,
                                       .cache = cfg->routes_cache};
        r = gw_config_load_routes(&src, cfg->upstream_names, cfg->nupstreams, &cfg->routes, d);
        if (r == -ENOMEM)
            goto out;
        r = 0;
        /* Definitions in the (default) directory turn the service on too. */
        const struct wf_set *wfs = cfg->routes ? gw__table_wf_set(cfg->routes) : NULL;
        if (wfs && wf_set_count(wfs) > 0)
            cfg->workflows.enabled = true;
    }
out:
    jpos_doc_done(&doc);
    if (r == 0 && d->nerrors != before)
        r = -EINVAL;
    if (r < 0) {
        gw_config_free(cfg);
        return r;
    }
    *out = cfg;
    return 0;
}

/* The policy set the routes are checked against and published with:
 * `src`'s directory, else the one `src->keep` carries, else none. 0 with
 * *out, or *out NULL when the files had errors (in d), -ENOMEM. */
static int load_policies(const struct gw_routes_source *src, struct gw_pol_set **out,
                         struct jpos_diags *d)
{
    static const char none[] = "{}";
    int r;
    *out = NULL;
    if (!src->policies_dir && src->keep && gw_pol_table_set(src->keep)) {
        *out = gw_pol_set_ref((struct gw_pol_set *)gw_pol_table_set(src->keep));
        return 0;
    }
    if (src->policies_dir)
        r = gw_pol_set_load_dir(src->policies_dir, out, d);
    else
        r = gw_pol_set_load_text("<none>", none, sizeof none - 1, ".", out, d);
    if (r < 0)
        return r == -ENOMEM ? r : 0;
    if (src->consumer_header &&
        (r = gw__pol_set_consumer_header(*out, src->consumer_header, d)) < 0) {
        gw_pol_set_unref(*out);
        *out = NULL;
        return r == -ENOMEM ? r : 0;
    }
    return 0;
}

int gw_config_load_routes(const struct gw_routes_source *src, const char *const *upstreams,
                          size_t n, struct route_table **out, struct jpos_diags *d)
{
    struct wf_set *wfs = NULL;
    struct gw_pol_set *pols = NULL;
    struct route_builder *b = NULL;
    struct route_table *t = NULL;
    int r;
    /* The definitions first: routes are checked against their names. */
    if (src->workflows_dir) {
        r = wf_set_load_dir(src->workflows_dir, upstreams, n, &wfs, d);
    } else if (src->keep && gw__table_wf_set(src->keep)) {
        wfs = wf_set_ref(gw__table_wf_set(src->keep));
        r = 0;
    } else {
        static const char none[] = "{\"workflows\": []}";
        r = wf_set_load_text("<none>", none, sizeof none - 1, upstreams, n, &wfs, d);
    }
    if (r == -ENOMEM)
        goto out;
    if ((r = load_policies(src, &pols, d)) < 0)
        goto out;
    if ((r = route_builder_new(&b, upstreams, n)) < 0)
        goto out;
    /* Definitions with errors (reported) still let the routes be checked,
     * with any workflow or policy name accepted, so that one run reports
     * both and routes are not blamed for a definition's typo. */
    r = wfs ? route_builder_set_workflows(b, wf_set_names(wfs), wf_set_count(wfs))
            : route_builder_set_workflows(b, NULL, 0);
    if (r == 0)
        r = pols ? route_builder_set_policies(b, gw_pol_set_names(pols), gw_pol_set_count(pols))
                 : route_builder_set_policies(b, NULL, 0);
    if (r < 0)
        goto out;
    if (src->dir && src->cache)
        route_builder_set_cache(b, src->cache);
    if (src->dir)
        r = route_builder_add_dir(b, src->dir, d);
    else
        r = route_builder_add_text(b, src->label, src->text, src->len, d);
    if (r != -ENOMEM)
        r = route_builder_compile(b, &t, d); /* fails if anything before reported errors */
    if (r < 0)
        goto out;
    if (!wfs || !pols) {
        r = -EINVAL; /* the workflows' or policies' errors are in d */
        goto out;
    }
    if (src->workflows_off && wf_set_count(wfs) > 0) {
        const struct wf_def *w = wf_set_def(wfs, 0);
        jpos_diag_add(d, JPOS_DIAG_ERROR, w->file, w->line, w->column, NULL,
                      "workflow \"%s\" cannot run: this gateway started without workflows "
                      "(no \"workflows\" section in its configuration, no definitions), so "
                      "its workflow service is not running; restart it to run workflows",
                      w->name);
        r = -EINVAL;
        goto out;
    }
    r = gw__table_attach_sets(t, wfs, pols);
    wfs = NULL;
    pols = NULL;
    if (r < 0)
        goto out;
    *out = t;
    t = NULL;
out:
    route_table_unref(t);
    route_builder_free(b);
    wf_set_unref(wfs);
    gw_pol_set_unref(pols);
    return r;
}

int gw_config_load(const char *path, struct gw_config **out, struct jpos_diags *d)
{
    char *text = NULL;
    size_t n = 0;
    int r = jpos_file_load(path, GW_CONFIG_MAX_BYTES, &text, &n, d);
    if (r == 0)
        r = gw_config_parse(path, text, n, GW_CONFIG_ROUTES | GW_CONFIG_ENV, out, d);
    free(text);
    return r;
}

void gw_config_free(struct gw_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].name);
        gw_address_done(&cfg->listeners[i].address);
        tls_config_done(&cfg->listeners[i].tls);
        free(cfg->listeners[i].trusted_proxies);
    }
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        struct gw_upstream_config *u = &cfg->upstreams[i];
        free(u->name);
        for (size_t j = 0; j < u->ntargets; j++)
            gw_address_done(&u->targets[j].address);
        free(u->targets);
        free(u->active_path);
        free(u->tls.ca);
        free(u->tls.server_name);
        free(u->tls.cert);
        free(u->tls.key);
    }
    free(cfg->upstreams);
    free(cfg->upstream_names);
    gw_address_done(&cfg->admin.address);
    free(cfg->admin.token_env);
    free(cfg->admin.allowed_hosts);
    free(cfg->routes_dir);
    route_table_unref(cfg->routes);
    route_cache_unref(cfg->routes_cache);
    free(cfg->workflows.dir);
    free(cfg->workflows.status_path);
    free(cfg->workflows.data_dir);
    free(cfg->workflows.sqlite_path);
    free(cfg->workflows.pg_conninfo_env);
    free(cfg->workflows.replica_id);
    free(cfg->policies.dir);
    free(cfg->policies.consumer_header);
    gw_address_done(&cfg->policies.redis.address);
    free(cfg->policies.redis.password_env);
    free(cfg->path);
    free(cfg);
}
