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
#include <sys/stat.h>
#include <unistd.h>

#include "route/json.h"

#define MAX_LISTENERS 64
#define MAX_TARGETS 256
#define MAX_UPSTREAMS 10000
#define MAX_CONFIG_BYTES (4u << 20)
#define GW_ADMIN_DEFAULT_ADDRESS "127.0.0.1:9901"

static const char *const top_keys[] = {"$schema",    "runtime",          "listeners",
                                       "admin",      "upstreams",        "routes",
                                       "access_log", "drain_timeout_ms", NULL};
static const char *const runtime_keys[] = {"schedulers", NULL};
static const char *const listener_keys[] = {"name",
                                            "address",
                                            "acceptors",
                                            "backlog",
                                            "max_connections",
                                            "max_header_bytes",
                                            "max_headers",
                                            "max_uri_bytes",
                                            "max_body_bytes",
                                            "header_timeout_ms",
                                            "idle_timeout_ms",
                                            "request_timeout_ms",
                                            "path_policy",
                                            "body_timeout_ms",
                                            "tunnel_idle_timeout_ms",
                                            NULL};
static const char *const path_policy_keys[] = {"escaped_slashes", "params", "escaped_controls",
                                               "trailing_dots", NULL};
/* In enum gw_http_slashes order (OPAQUE is internal). */
static const char *const slashes_names[] = {"refuse", "keep", "redirect", "decode", NULL};
/* In enum gw_http_params order. */
static const char *const params_names[] = {"refuse", "keep", NULL};
static const char *const controls_names[] = {"forward", "refuse", NULL};
static const char *const trailing_dots_names[] = {"refuse", "keep", NULL};
static const char *const admin_keys[] = {"address", "token_env", "allowed_hosts", NULL};
static const char *const upstream_keys[] = {"targets",
                                            "balance",
                                            "connect_timeout_ms",
                                            "response_timeout_ms",
                                            "max_idle",
                                            "max_connections",
                                            "retries",
                                            "retry_idempotent",
                                            "health",
                                            NULL};
static const char *const target_keys[] = {"address", "weight", NULL};
static const char *const health_keys[] = {"passive", "active", NULL};
static const char *const passive_keys[] = {"failures", "eject_ms", NULL};
static const char *const active_keys[] = {"path", "interval_ms", "timeout_ms", NULL};
static const char *const balance_names[] = {"round_robin", "least_conn", "weighted", NULL};

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

static bool get_u32(struct route_diags *d, const struct route_jval *v, long long min, long long max,
                    uint32_t *out)
{
    long long x;
    if (!route_jint(d, v, min, max, &x))
        return false;
    *out = (uint32_t)x;
    return true;
}

static int get_address(struct route_diags *d, const struct route_jval *v, bool port_zero_ok,
                       struct gw_address *out)
{
    const char *s;
    if (!route_jstring(d, v, 300, &s, NULL))
        return -EINVAL;
    const char *msg = NULL;
    int r = gw_address_parse(s, port_zero_ok, out, &msg);
    if (r == -EINVAL)
        route_jerr(d, v, "bad address \"%s\": %s", s, msg);
    return r;
}

#define NOMEM_GUARD(expr)                                                                          \
    do {                                                                                           \
        if ((expr) == -ENOMEM)                                                                     \
            return -ENOMEM;                                                                        \
    } while (0)

/* One of `names` (a NULL-terminated list of a few short names): its index,
 * or -1 with an error that suggests the closest name. */
static int get_choice(struct route_diags *d, const struct route_jval *v, const char *what,
                      const char *const *names)
{
    const char *s;
    if (!route_jstring(d, v, 64, &s, NULL))
        return -1;
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    char list[128] = "";
    size_t n = 0, count = 0;
    for (; names[count]; count++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s\"%s\"", count ? ", " : "",
                              names[count]);
    const char *hint = route_suggest(s, names, count);
    if (hint)
        route_jerr(d, v, "unknown %s \"%s\"; did you mean \"%s\"?", what, s, hint);
    else
        route_jerr(d, v, "unknown %s \"%s\" (one of %s)", what, s, list);
    return -1;
}

/* ---- sections ---------------------------------------------------------------- */

static int parse_runtime(struct gw_config *cfg, const struct route_jval *v, struct route_diags *d)
{
    if (!route_jobject(d, v))
        return 0;
    struct route_jiter it;
    struct route_jval m;
    route_jiter_init(&it, v);
    while (route_jiter_next(&it, &m)) {
        if (strcmp(m.key, "schedulers") == 0)
            get_u32(d, &m, 0, 1024, &cfg->schedulers);
        else
            route_junknown(d, &m, "runtime", runtime_keys);
    }
    return 0;
}

static void parse_path_policy(struct gw_http_path_policy *p, const struct route_jval *v,
                              struct route_diags *d)
{
    if (!route_jobject(d, v))
        return;
    struct route_jiter it;
    struct route_jval m;
    route_jiter_init(&it, v);
    while (route_jiter_next(&it, &m)) {
        int k;
        if (strcmp(m.key, "escaped_slashes") == 0) {
            if ((k = get_choice(d, &m, "escaped_slashes", slashes_names)) >= 0)
                p->slashes = (enum gw_http_slashes)k;
        } else if (strcmp(m.key, "params") == 0) {
            if ((k = get_choice(d, &m, "params", params_names)) >= 0)
                p->params = (enum gw_http_params)k;
        } else if (strcmp(m.key, "escaped_controls") == 0) {
            if ((k = get_choice(d, &m, "escaped_controls", controls_names)) >= 0)
                p->refuse_controls = k == 1;
        } else if (strcmp(m.key, "trailing_dots") == 0) {
            if ((k = get_choice(d, &m, "trailing_dots", trailing_dots_names)) >= 0)
                p->keep_trailing_dots = k == 1;
        } else {
            route_junknown(d, &m, "path_policy", path_policy_keys);
        }
    }
}

static int parse_listener(struct gw_listener_config *l, const struct route_jval *v, size_t index,
                          struct route_diags *d)
{
    l->backlog = 1024;
    l->max_connections = 10000;
    l->max_header_bytes = 32768;
    l->max_headers = 100;
    l->max_uri_bytes = 8192;
    l->max_body_bytes = 100u << 20;
    l->header_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->request_timeout_ms = 60000;
    /* Long enough for a 100 MiB body (the default limit) at about 350 KiB/s,
     * short enough that a body trickled within the per-read timeout frees
     * its upstream connection within minutes. */
    l->body_timeout_ms = 300000;
    /* nginx (proxy_read_timeout) and the common cloud load balancers close a
     * silent WebSocket after 60 s, so clients in the wild already keep
     * theirs alive within it; the keep-alive idle timeout is the same. */
    l->tunnel_idle_timeout_ms = 60000;
    if (!route_jobject(d, v))
        return 0;
    bool has_address = false;
    struct route_jiter it;
    struct route_jval m;
    route_jiter_init(&it, v);
    while (route_jiter_next(&it, &m)) {
        const char *s;
        long long x;
        if (strcmp(m.key, "name") == 0) {
            if (route_jstring(d, &m, 128, &s, NULL)) {
                if (!*s)
                    route_jerr(d, &m, "listener name is empty");
                free(l->name);
                if (!(l->name = strdup(s)))
                    return -ENOMEM;
            }
        } else if (strcmp(m.key, "address") == 0) {
            has_address = true;
            NOMEM_GUARD(get_address(d, &m, true, &l->address));
        } else if (strcmp(m.key, "acceptors") == 0) {
            get_u32(d, &m, 0, 1024, &l->acceptors);
        } else if (strcmp(m.key, "backlog") == 0) {
            get_u32(d, &m, 1, 65535, &l->backlog);
        } else if (strcmp(m.key, "max_connections") == 0) {
            get_u32(d, &m, 1, 10000000, &l->max_connections);
        } else if (strcmp(m.key, "max_header_bytes") == 0) {
            get_u32(d, &m, 1024, 1048576, &l->max_header_bytes);
        } else if (strcmp(m.key, "max_headers") == 0) {
            get_u32(d, &m, 1, 10000, &l->max_headers);
        } else if (strcmp(m.key, "max_uri_bytes") == 0) {
            get_u32(d, &m, 64, 1048576, &l->max_uri_bytes);
        } else if (strcmp(m.key, "max_body_bytes") == 0) {
            if (route_jint(d, &m, 0, 1LL << 50, &x))
                l->max_body_bytes = (uint64_t)x;
        } else if (strcmp(m.key, "header_timeout_ms") == 0) {
            get_u32(d, &m, 1, 3600000, &l->header_timeout_ms);
        } else if (strcmp(m.key, "idle_timeout_ms") == 0) {
            get_u32(d, &m, 1, 86400000, &l->idle_timeout_ms);
        } else if (strcmp(m.key, "request_timeout_ms") == 0) {
            get_u32(d, &m, 1, 86400000, &l->request_timeout_ms);
        } else if (strcmp(m.key, "path_policy") == 0) {
            parse_path_policy(&l->path_policy, &m, d);
        } else if (strcmp(m.key, "body_timeout_ms") == 0) {
            get_u32(d, &m, 1, 86400000, &l->body_timeout_ms);
        } else if (strcmp(m.key, "tunnel_idle_timeout_ms") == 0) {
            get_u32(d, &m, 1, 86400000, &l->tunnel_idle_timeout_ms);
        } else {
            route_junknown(d, &m, "listener", listener_keys);
        }
    }
    if (!has_address)
        route_jerr(d, v, "listener needs an \"address\", e.g. \"0.0.0.0:8080\"");
    if (!l->name) {
        char buf[32];
        snprintf(buf, sizeof(buf), "listener%zu", index);
        if (!(l->name = strdup(l->address.text ? l->address.text : buf)))
            return -ENOMEM;
    }
    return 0;
}

static int parse_listeners(struct gw_config *cfg, const struct route_jval *v, struct route_diags *d)
{
    if (!route_jarray(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (n == 0 || n > MAX_LISTENERS) {
        route_jerr(d, v, "needs 1 to %d listeners, got %zu", MAX_LISTENERS, n);
        return 0;
    }
    cfg->listeners = calloc(n, sizeof(*cfg->listeners));
    if (!cfg->listeners)
        return -ENOMEM;
    struct route_jiter it;
    struct route_jval m;
    route_jiter_init(&it, v);
    while (route_jiter_next(&it, &m)) {
        size_t i = cfg->nlisteners++;
        struct gw_listener_config *l = &cfg->listeners[i];
        NOMEM_GUARD(parse_listener(l, &m, i, d));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->listeners[j].name, l->name) == 0)
                route_jerr(d, &m, "duplicate listener name \"%s\"", l->name);
            else if (l->address.text && cfg->listeners[j].address.text && l->address.port &&
                     l->address.port == cfg->listeners[j].address.port &&
                     strcmp(l->address.host, cfg->listeners[j].address.host) == 0)
                route_jerr(d, &m, "listeners \"%s\" and \"%s\" use the same address %s",
                           cfg->listeners[j].name, l->name, l->address.text);
        }
    }
    return 0;
}

static int parse_allowed_hosts(struct gw_admin_config *a, const struct route_jval *v,
                               struct route_diags *d)
{
    if (!route_jarray(d, v))
        return 0;
    size_t n = json_array_size(v->v);
    if (n > GW_ADMIN_MAX_ALLOWED_HOSTS) {
        route_jerr(d, v, "has %zu entries; at most %d", n, GW_ADMIN_MAX_ALLOWED_HOSTS);
        return 0;
    }
    free(a->allowed_hosts);
    a->nallowed_hosts = 0;
    if (!(a->allowed_hosts = calloc(n ? n : 1, sizeof *a->allowed_hosts)))
        return -ENOMEM;
    struct route_jiter it;
    struct route_jval m;
    route_jiter_init(&it, v);
    while (route_jiter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!route_jstring(d, &m, 300, &s, &len))
            continue;
        if (gw_hostport_parse(s, len, &a->allowed_hosts[a->nallowed_hosts]) < 0) {
            route_jerr(d, &m,
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

static int parse_admin(struct gw_config *cfg, const struct route_jval *v, struct route_diags *d,
                       unsigned flags)
{
    struct gw_admin_config *a = &cfg->admin;
    if (json_is_false(v->v)) {
        a->enabled = false;
        return 0;
    }
    if (!json_is_object(v->v)) {
        route_jerr(d, v, "expected an object (or false to turn the admin API off), got %s",
                   route_jtype_name(v->v));
        return 0;
    }
    struct route_jiter it;
    struct route_jval m, addr_v = *v, token_v = *v;
    bool has_addr = false, addr_given = false;
    route_jiter_init(&it, v);
    while (route_jiter_next(&it, &m)) {
        const char *s;
        if (strcmp(m.key, "address") == 0) {
            addr_given = true;
            struct gw_address x;
            int r = get_address(d, &m, true, &x);
            NOMEM_GUARD(r);
            if (r == 0) {
                gw_address_done(&a->address);
                a->address = x;
                addr_v = m;
                has_addr = true;
            }
        } else if (strcmp(m.key, "token_env") == 0) {
            if (!route_jstring(d, &m, 128, &s, NULL))
                continue;
            bool ok = *s && (isalpha((unsigned char)*s) || *s == '_');
            for (const char *p = s; ok && *p; p++)
                ok = isalnum((unsigned char)*p) || *p == '_';
            if (!ok) {
                route_jerr(d, &m,
                           "token_env names an environment variable (letters, digits, '_'), "
                           "not the token itself");
                continue;
            }
            free(a->token_env);
            if (!(a->token_env = strdup(s)))
                return -ENOMEM;
            token_v = m;
        } else if (strcmp(m.key, "allowed_hosts") == 0) {
            NOMEM_GUARD(parse_allowed_hosts(a, &m, d));
        } else {
            route_junknown(d, &m, "admin", admin_keys);
        }
    }
    if (!addr_given) {
        if (gw_address_parse(GW_ADMIN_DEFAULT_ADDRESS, false, &a->address, NULL) < 0)
            return -ENOMEM;
        has_addr = true;
    }
    /* A set but empty variable would be a token nobody can present; the
     * gateway refuses to start either way, so `tandem check` says so too. */
    if (a->token_env && (flags & GW_CONFIG_ENV)) {
        const char *val = getenv(a->token_env);
        if (!val || !*val)
            route_jerr(d, &token_v,
                       "environment variable %s (admin.token_env) is %s: the gateway will not "
                       "start without its admin token; set it, or remove token_env to run the "
                       "admin API on loopback without a token",
                       a->token_env, val ? "empty" : "not set");
    }
    /* No valid address (already reported): not loopback, and no crash. The
     * decision is made on the addresses the host resolves to, not on its
     * text: "127.attacker.example" is a name like any other. */
    a->loopback = false;
    if (!has_addr)
        return 0;
    const char *why = NULL;
    int lr = address_loopback(&a->address, (flags & GW_CONFIG_ENV) != 0, &a->loopback, &why);
    if (lr == -ENOENT || a->loopback || a->token_env)
        return 0; /* a name not looked up is decided when the gateway binds it */
    if (lr == -EADDRNOTAVAIL)
        route_jerr(d, &addr_v,
                   "the admin address %s does not resolve (%s), so it cannot be known to be "
                   "loopback: set \"token_env\" to the name of an environment variable "
                   "holding a bearer token, or listen on 127.0.0.1",
                   a->address.text, why ? why : "no address");
    else
        route_jerr(d, &addr_v,
                   "the admin API on %s is reachable from other hosts: set \"token_env\" to the "
                   "name of an environment variable holding a bearer token, or listen on "
                   "127.0.0.1",
                   a->address.text);
    return 0;
}

static int parse_health(struct gw_upstream_config *u, const struct route_jval *v,
                        struct route_diags *d)
{
    if (!route_jobject(d, v))
        return 0;
    struct route_jiter it, it2;
    struct route_jval m, x;
    route_jiter_init(&it, v);
    while (route_jiter_next(&it, &m)) {
        if (strcmp(m.key, "passive") == 0) {
            if (!route_jobject(d, &m))
                continue;
            route_jiter_init(&it2, &m);
            while (route_jiter_next(&it2, &x)) {
                if (strcmp(x.key, "failures") == 0)
                    get_u32(d, &x, 0, 1000, &u->passive_failures);
                else if (strcmp(x.key, "eject_ms") == 0)
                    get_u32(d, &x, 1, 86400000, &u->passive_eject_ms);
                else
                    route_junknown(d, &x, "passive health", passive_keys);
            }
        } else if (strcmp(m.key, "active") == 0) {
            if (!route_jobject(d, &m))
                continue;
            u->active_health = true;
            bool has_path = false;
            route_jiter_init(&it2, &m);
            while (route_jiter_next(&it2, &x)) {
                const char *s;
                if (strcmp(x.key, "path") == 0) {
                    has_path = true;
                    if (!route_jstring(d, &x, GW_HEALTH_PATH_MAX, &s, NULL))
                        continue;
                    bool ok = s[0] == '/';
                    for (const char *p = s; ok && *p; p++)
                        ok = (unsigned char)*p > 0x20 && *p != 0x7f;
                    if (!ok) {
                        route_jerr(d, &x,
                                   "health check path must start with '/' and hold no "
                                   "spaces or control characters");
                        continue;
                    }
                    free(u->active_path);
                    if (!(u->active_path = strdup(s)))
                        return -ENOMEM;
                } else if (strcmp(x.key, "interval_ms") == 0) {
                    get_u32(d, &x, 100, 86400000, &u->active_interval_ms);
                } else if (strcmp(x.key, "timeout_ms") == 0) {
                    get_u32(d, &x, 1, 3600000, &u->active_timeout_ms);
                } else {
                    route_junknown(d, &x, "active health", active_keys);
                }
            }
            if (!has_path)
                route_jerr(d, &m, "active health checks need a \"path\", e.g. \"/healthz\"");
        } else {
            route_junknown(d, &m, "health", health_keys);
        }
    }
    return 0;
}

static int parse_upstream(struct gw_upstream_config *u, const struct route_jval *v,
                          struct route_diags *d)
{
    u->connect_timeout_ms = 5000;
    u->response_timeout_ms = 30000;
    u->max_idle = 64;
    u->max_connections = 1024;
    u->retries = 1;
    u->passive_failures = 5;
    u->passive_eject_ms = 30000;
    u->active_interval_ms = 5000;
    u->active_timeout_ms = 2000;
    if (!route_jobject(d, v))
        return 0;
    bool has_targets = false;
    struct route_jiter it;
    struct route_jval m;
    route_jiter_init(&it, v);
    while (route_jiter_next(&it, &m)) {
        const char *s;
        bool b;
        if (strcmp(m.key, "targets") == 0) {
            has_targets = true;
            if (!route_jarray(d, &m))
                continue;
            size_t n = json_array_size(m.v);
            if (n == 0 || n > MAX_TARGETS) {
                route_jerr(d, &m, "needs 1 to %d targets, got %zu", MAX_TARGETS, n);
                continue;
            }
            u->targets = calloc(n, sizeof(*u->targets));
            if (!u->targets)
                return -ENOMEM;
            struct route_jiter it2;
            struct route_jval t, x;
            route_jiter_init(&it2, &m);
            while (route_jiter_next(&it2, &t)) {
                struct gw_target_config *tc = &u->targets[u->ntargets++];
                tc->weight = 1;
                if (!route_jobject(d, &t))
                    continue;
                bool has_addr = false;
                struct route_jiter it3;
                route_jiter_init(&it3, &t);
                while (route_jiter_next(&it3, &x)) {
                    if (strcmp(x.key, "address") == 0) {
                        has_addr = true;
                        NOMEM_GUARD(get_address(d, &x, false, &tc->address));
                    } else if (strcmp(x.key, "weight") == 0) {
                        get_u32(d, &x, 1, 1000, &tc->weight);
                    } else {
                        route_junknown(d, &x, "target", target_keys);
                    }
                }
                if (!has_addr)
                    route_jerr(d, &t, "target needs an \"address\", e.g. \"127.0.0.1:9000\"");
            }
        } else if (strcmp(m.key, "balance") == 0) {
            if (!route_jstring(d, &m, 64, &s, NULL))
                continue;
            int found = -1;
            for (int i = 0; balance_names[i]; i++)
                if (strcmp(balance_names[i], s) == 0)
                    found = i;
            if (found < 0) {
                const char *hint = route_suggest(s, balance_names, 3);
                if (hint)
                    route_jerr(d, &m, "unknown balance \"%s\"; did you mean \"%s\"?", s, hint);
                else
                    route_jerr(d, &m,
                               "unknown balance \"%s\" (round_robin, least_conn or weighted)", s);
                continue;
            }
            u->balance = (enum gw_balance)found;
        } else if (strcmp(m.key, "connect_timeout_ms") == 0) {
            get_u32(d, &m, 1, 3600000, &u->connect_timeout_ms);
        } else if (strcmp(m.key, "response_timeout_ms") == 0) {
            get_u32(d, &m, 1, 86400000, &u->response_timeout_ms);
        } else if (strcmp(m.key, "max_idle") == 0) {
            get_u32(d, &m, 0, 100000, &u->max_idle);
        } else if (strcmp(m.key, "max_connections") == 0) {
            get_u32(d, &m, 1, 1000000, &u->max_connections);
        } else if (strcmp(m.key, "retries") == 0) {
            get_u32(d, &m, 0, 10, &u->retries);
        } else if (strcmp(m.key, "retry_idempotent") == 0) {
            if (route_jbool(d, &m, &b))
                u->retry_idempotent = b;
        } else if (strcmp(m.key, "health") == 0) {
            NOMEM_GUARD(parse_health(u, &m, d));
        } else {
            route_junknown(d, &m, "upstream", upstream_keys);
        }
    }
    if (!has_targets)
        route_jerr(d, v, "upstream \"%s\" needs \"targets\": [{\"address\": \"host:port\"}]",
                   u->name);
    return 0;
}

static int parse_upstreams(struct gw_config *cfg, const struct route_jval *v, struct route_diags *d)
{
    if (!route_jobject(d, v))
        return 0;
    size_t n = json_object_size(v->v);
    if (n > MAX_UPSTREAMS) {
        route_jerr(d, v, "has %zu upstreams; at most %d", n, MAX_UPSTREAMS);
        return 0;
    }
    cfg->upstreams = calloc(n ? n : 1, sizeof(*cfg->upstreams));
    cfg->upstream_names = calloc(n ? n : 1, sizeof(*cfg->upstream_names));
    if (!cfg->upstreams || !cfg->upstream_names)
        return -ENOMEM;
    struct route_jiter it;
    struct route_jval m;
    route_jiter_init(&it, v);
    while (route_jiter_next(&it, &m)) {
        struct gw_upstream_config *u = &cfg->upstreams[cfg->nupstreams];
        if (!(u->name = strdup(m.key)))
            return -ENOMEM;
        cfg->upstream_names[cfg->nupstreams++] = u->name;
        bool ok = *m.key && strlen(m.key) <= 128;
        for (const char *p = m.key; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || strchr("._-", *p);
        if (!ok)
            route_jerr_key(d, &m,
                           "upstream name \"%s\" may hold only letters, digits, '.', '_' and '-'",
                           m.key);
        NOMEM_GUARD(parse_upstream(u, &m, d));
    }
    return 0;
}

/* ---- the whole file ---------------------------------------------------------- */

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
                    struct gw_config **out, struct route_diags *d)
{
    size_t before = d->nerrors;
    int r = 0;
    struct route_jdoc doc;
    struct gw_config *cfg = calloc(1, sizeof(*cfg));
    memset(&doc, 0, sizeof(doc));
    if (!cfg || !(cfg->path = strdup(path))) {
        r = -ENOMEM;
        goto out;
    }
    cfg->admin.enabled = true;
    cfg->access_log = true;
    cfg->drain_timeout_ms = 30000;
    const char *routes = "routes";

    r = route_jdoc_parse(&doc, path, text, len, d);
    if (r < 0)
        goto out;
    struct route_jval root, m, listeners_v;
    bool has_listeners = false, has_admin = false;
    route_jval_root(&doc, &root);
    if (!json_is_object(root.v)) {
        route_jerr(d, &root, "the configuration is an object, got %s", route_jtype_name(root.v));
        goto out;
    }
    struct route_jiter it;
    route_jiter_init(&it, &root);
    while (route_jiter_next(&it, &m)) {
        const char *s;
        long long x;
        bool b;
        if (strcmp(m.key, "$schema") == 0) {
            route_jstring(d, &m, 4096, &s, NULL);
        } else if (strcmp(m.key, "runtime") == 0) {
            r = parse_runtime(cfg, &m, d);
        } else if (strcmp(m.key, "listeners") == 0) {
            has_listeners = true;
            listeners_v = m;
            r = parse_listeners(cfg, &m, d);
        } else if (strcmp(m.key, "admin") == 0) {
            has_admin = true;
            r = parse_admin(cfg, &m, d, flags);
        } else if (strcmp(m.key, "upstreams") == 0) {
            r = parse_upstreams(cfg, &m, d);
        } else if (strcmp(m.key, "routes") == 0) {
            if (route_jstring(d, &m, PATH_MAX, &s, NULL)) {
                if (!*s)
                    route_jerr(d, &m, "routes names a directory; it is empty");
                else
                    routes = s;
            }
        } else if (strcmp(m.key, "access_log") == 0) {
            if (route_jbool(d, &m, &b))
                cfg->access_log = b;
        } else if (strcmp(m.key, "drain_timeout_ms") == 0) {
            if (route_jint(d, &m, 0, 3600000, &x))
                cfg->drain_timeout_ms = (uint32_t)x;
        } else {
            route_junknown(d, &m, "the configuration", top_keys);
        }
        if (r < 0)
            goto out;
    }
    (void)listeners_v;
    if (!has_listeners)
        route_jerr(d, &root,
                   "no \"listeners\": add one, e.g. \"listeners\": [{\"name\": \"public\", "
                   "\"address\": \"0.0.0.0:8080\"}]");
    if (!has_admin) {
        cfg->admin.loopback = true;
        if (gw_address_parse(GW_ADMIN_DEFAULT_ADDRESS, false, &cfg->admin.address, NULL) < 0) {
            r = -ENOMEM;
            goto out;
        }
    }
    if (!cfg->upstream_names && !(cfg->upstream_names = calloc(1, sizeof(char *)))) {
        r = -ENOMEM;
        goto out;
    }
    if (!(cfg->routes_dir = resolve_dir(path, routes))) {
        r = -ENOMEM;
        goto out;
    }
    if (flags & GW_CONFIG_ROUTES) {
        r = route_table_load_dir(cfg->routes_dir, cfg->upstream_names, cfg->nupstreams,
                                 &cfg->routes, d);
        if (r == -ENOMEM)
            goto out;
        r = 0;
    }
out:
    route_jdoc_done(&doc);
    if (r == 0 && d->nerrors != before)
        r = -EINVAL;
    if (r < 0) {
        gw_config_free(cfg);
        return r;
    }
    *out = cfg;
    return 0;
}

int gw_config_load(const char *path, struct gw_config **out, struct route_diags *d)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        route_diag_add(d, ROUTE_DIAG_ERROR, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -EINVAL;
    }
    int r;
    char *text = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        route_diag_add(d, ROUTE_DIAG_ERROR, path, 0, 0, NULL, "not a regular file");
        r = -EINVAL;
        goto out;
    }
    if ((uint64_t)st.st_size > MAX_CONFIG_BYTES) {
        route_diag_add(d, ROUTE_DIAG_ERROR, path, 0, 0, NULL,
                       "file is too large (%lld bytes; at most %u)", (long long)st.st_size,
                       (unsigned)MAX_CONFIG_BYTES);
        r = -EINVAL;
        goto out;
    }
    size_t cap = (size_t)st.st_size, n = 0;
    text = malloc(cap + 1);
    if (!text) {
        r = -ENOMEM;
        goto out;
    }
    while (n < cap) {
        ssize_t k = read(fd, text + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            route_diag_add(d, ROUTE_DIAG_ERROR, path, 0, 0, NULL, "cannot read: %s",
                           strerror(errno));
            r = -EINVAL;
            goto out;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    r = gw_config_parse(path, text, n, GW_CONFIG_ROUTES | GW_CONFIG_ENV, out, d);
out:
    free(text);
    close(fd);
    return r;
}

void gw_config_free(struct gw_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].name);
        gw_address_done(&cfg->listeners[i].address);
    }
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        struct gw_upstream_config *u = &cfg->upstreams[i];
        free(u->name);
        for (size_t j = 0; j < u->ntargets; j++)
            gw_address_done(&u->targets[j].address);
        free(u->targets);
        free(u->active_path);
    }
    free(cfg->upstreams);
    free(cfg->upstream_names);
    gw_address_done(&cfg->admin.address);
    free(cfg->admin.token_env);
    free(cfg->admin.allowed_hosts);
    free(cfg->routes_dir);
    route_table_unref(cfg->routes);
    free(cfg->path);
    free(cfg);
}
