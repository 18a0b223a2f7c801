/*
 * ctl.c: `tandem ctl`, the admin API's command-line client. It lives apart
 * from the admin API (gateway/src/admin/): it is a plain blocking program
 * that runs no runtime and shares nothing with the server but the wire
 * format, the configuration loader and the pid notation.
 *
 * Finds the admin address and token (flags, environment, tandem.json read
 * with load_routes=false), sends one HTTP/1.1 request per command over a
 * blocking socket with Connection: close, reads the whole answer (capped at
 * CTL_MAX_RESPONSE bytes) through the gateway's own response parser, and
 * prints it as a table (or raw with --json). Errors go to stderr once, from
 * here; the functions below return 0 or -errno.
 */
#include "gw/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "gw/admin.h"
#include "gw/config.h"
#include "gw/http1.h"
#include "jpos/json.h"
#include "jpos/file.h"
#include "ctl_int.h"
#include "workflow/status.h"

#define CTL_HEALTH_TIMEOUT_MS 2000
/* `upgrade` waits for the new gateway's readiness (upgrade_timeout_ms,
 * 30 s by default) plus the time to stop one that failed. */
#define CTL_UPGRADE_TIMEOUT_MS 60000

/* {"KEY": "VALUE"} as a request body (the caller frees it), or NULL when
 * out of memory. */
static char *one_member_body(const char *key, const char *value)
{
    json_t *o = json_pack("{s:s}", key, value);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return body;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tandem ctl [OPTIONS] COMMAND [ARGS]\n"
            "commands:\n"
            "  ps [--sort mailbox|reductions|memory|age] [--limit N] [--name S] [--kind K]\n"
            "                     processes, a top-like table (default --sort reductions)\n"
            "  tree               the supervision tree\n"
            "  system             version, uptime, schedulers, processes, memory, listeners\n"
            "  routes             the route table in use and the last reload\n"
            "  reload             reload the routes directory\n"
            "  rollback VERSION   publish an earlier route table again\n"
            "  upstreams          upstream targets, health and pooled connections\n"
            "  tls                TLS listeners: certificates serving, expiry, last reload\n"
            "  tls reload [LISTENER]   load the TLS listeners' certificates again\n"
            "  kill PID [--reason R]   send an exit signal (default reason killed_by_admin)\n"
            "  restart PID        restart a supervised child\n"
            "  upgrade [--binary PATH]   start the new binary on this gateway's sockets; once\n"
            "                     it is ready this one drains and exits (default: the\n"
            "                     binary the gateway was started from)\n"
            "  health             exit 0 when /healthz answers 200 within 2 s\n"
            "  top [--once] [--sort reductions|mailbox|memory] [--kind K] [--name S]\n"
            "                     live full-screen view from the event stream (keys: r m M\n"
            "                     Tab sort, k kind, / name, q quit); --once prints one frame\n"
            "  workflows [--state S] [--definition D] [--limit N] [--after ID]\n"
            "                     workflow instances (state: failed, active, step:, ...)\n"
            "  workflows ID       one instance with its transitions\n"
            "  workflows retry ID        retry a failed instance's compensation\n"
            "  workflows resolve ID [--note TEXT]   mark a failed instance resolved\n"
            "  policies [--limit N] [--offset N]\n"
            "                     policy definitions: type, routes naming them, denials\n"
            "  policies NAME      one definition with its configuration\n"
            "  policies NAME KEY  a rate_limit policy's counts for KEY\n"
            "  consumers [--limit N] [--offset N]\n"
            "                     consumers and the kinds of credential they have\n"
            "options:\n"
            "  -c FILE            configuration (default $TANDEM_CONFIG, else %s)\n"
            "  --admin HOST:PORT  admin address (default: from the configuration)\n"
            "  --token TOKEN      bearer token (default $TANDEM_ADMIN_TOKEN, else the\n"
            "                     variable named by admin.token_env)\n"
            "  --json             print the raw JSON answer\n"
            "  --timeout MS       request timeout (default %d)\n",
            GW_CONFIG_DEFAULT_PATH, CTL_DEFAULT_TIMEOUT_MS);
}

/* ---- where the admin API is -------------------------------------------------- */

static int set_hostport(struct ctl *c, const char *host, unsigned port)
{
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    if (strlen(host) >= sizeof c->host)
        return -EINVAL;
    snprintf(c->host, sizeof c->host, "%s", host);
    snprintf(c->port, sizeof c->port, "%u", port);
    return 0;
}

/* Admin address and token, from flags, environment and configuration. */
static int locate(struct ctl *c)
{
    const char *env_token = getenv("TANDEM_ADMIN_TOKEN");
    if (!c->token && env_token && *env_token)
        c->token = env_token;
    if (c->admin) {
        struct gw_address a;
        const char *msg = NULL;
        if (gw_address_parse(c->admin, false, &a, &msg) < 0) {
            fprintf(stderr, "tandem ctl: --admin %s: %s\n", c->admin, msg ? msg : "invalid");
            return -EINVAL;
        }
        int rc = set_hostport(c, a.host, a.port);
        gw_address_done(&a);
        if (rc < 0)
            fprintf(stderr, "tandem ctl: --admin %s: host name too long\n", c->admin);
        return rc;
    }
    bool explicit_config = c->config != NULL;
    const char *path = c->config;
    if (!path)
        path = getenv("TANDEM_CONFIG");
    if (path && *path)
        explicit_config = true;
    else
        path = GW_CONFIG_DEFAULT_PATH;
    char *text = NULL;
    size_t len = 0;
    int rc = jpos_file_read(path, GW_CONFIG_MAX_BYTES, &text, &len);
    if (rc == -ENOENT && !explicit_config)
        return set_hostport(c, "127.0.0.1", 9901);
    if (rc < 0) {
        fprintf(stderr, "tandem ctl: %s: %s\n", path, strerror(-rc));
        return rc;
    }
    struct jpos_diags d;
    struct gw_config *cfg = NULL;
    jpos_diags_init(&d);
    rc = gw_config_parse(path, text, len, false, &cfg, &d);
    free(text);
    if (rc < 0) {
        jpos_diags_print(&d, stderr);
        fprintf(stderr, "tandem ctl: %s: invalid configuration (or use --admin)\n", path);
        jpos_diags_done(&d);
        return rc;
    }
    jpos_diags_done(&d);
    if (!cfg->admin.enabled) {
        fprintf(stderr, "tandem ctl: %s: the admin API is disabled (\"admin\": false)\n", path);
        gw_config_free(cfg);
        return -ENOENT;
    }
    rc = set_hostport(c, cfg->admin.address.host, cfg->admin.address.port);
    if (!c->token && cfg->admin.token_env) {
        /* getenv's storage outlives the configuration. */
        const char *t = getenv(cfg->admin.token_env);
        if (t && *t)
            c->token = t;
    }
    gw_config_free(cfg);
    return rc;
}

/* ---- one HTTP exchange -------------------------------------------------------- */

int64_t gw__ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - gw__ctl_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r > 0)
            return 0;
    }
}

int gw__ctl_dial(const struct ctl *c, int64_t deadline, int *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(c->host, c->port, &hints, &res);
    if (gai != 0) {
        fprintf(stderr, "tandem ctl: %s: %s\n", c->host, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        int err = 0;
        socklen_t el = sizeof err;
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err)
            rc = -err;
        if (rc == 0) {
            *out = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

int gw__ctl_send_all(int fd, const char *p, size_t n, int64_t deadline)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Appends body bytes to r. */
static int body_add(struct reply *r, size_t *cap, const char *data, size_t len)
{
    if (r->len + len + 1 > CTL_MAX_RESPONSE)
        return -EFBIG;
    if (r->len + len + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 16384;
        while (nc < r->len + len + 1)
            nc *= 2;
        char *b = realloc(r->body, nc);
        if (!b)
            return -ENOMEM;
        r->body = b;
        *cap = nc;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = 0;
    return 0;
}

/* Feeds bytes to the response parser; *done set at the end of the message. */
static int feed(struct gw_http_parser *p, struct reply *r, size_t *cap, const char *buf, size_t n,
                bool *done)
{
    /* Fed on until NEED_MORE: the end of a message may come as an event
     * of its own after its last body bytes were consumed. */
    while (!*done) {
        struct gw_http_event ev;
        size_t used = 0;
        int rc = gw_http_parser_feed(p, buf, n, &used, &ev);
        if (rc < 0)
            return rc;
        buf += used;
        n -= used;
        if (ev.type == GW_HTTP_EV_HEAD) {
            r->status = ev.head->status;
            gw_http_head_free(ev.head);
        } else if (ev.type == GW_HTTP_EV_BODY) {
            rc = body_add(r, cap, ev.data, ev.len);
            if (rc < 0)
                return rc;
        } else if (ev.type == GW_HTTP_EV_DONE) {
            *done = true;
        } else if (ev.type == GW_HTTP_EV_NEED_MORE) {
            break;
        }
    }
    return 0;
}

int gw__ctl_request(const struct ctl *c, const char *method, const char *target, const char *body,
                    int timeout_ms, struct reply *out)
{
    int64_t deadline = gw__ctl_now_ms() + timeout_ms;
    int fd = -1;
    struct gw_http_parser *p = NULL;
    struct gw_http_limits lim;
    struct reply r = {0};
    size_t cap = 0;
    char *head = NULL;
    bool done = false;
    int rc = gw__ctl_dial(c, deadline, &fd);
    if (rc < 0)
        goto out;
    size_t blen = body ? strlen(body) : 0;
    bool v6 = strchr(c->host, ':') != NULL;
    int hn = asprintf(
        &head,
        "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: tandem-ctl\r\n"
        "Accept: application/json\r\nConnection: close\r\n%s%s%s"
        "%s%zu\r\n\r\n",
        method, target, v6 ? "[" : "", c->host, v6 ? "]" : "", c->port,
        c->token ? "Authorization: Bearer " : "", c->token ? c->token : "", c->token ? "\r\n" : "",
        body ? "Content-Type: application/json\r\nContent-Length: " : "Content-Length: ", blen);
    if (hn < 0) {
        head = NULL;
        rc = -ENOMEM;
        goto out;
    }
    rc = gw__ctl_send_all(fd, head, (size_t)hn, deadline);
    if (rc == 0 && blen)
        rc = gw__ctl_send_all(fd, body, blen, deadline);
    if (rc < 0)
        goto out;
    gw_http_limits_default(&lim);
    lim.max_body_bytes = CTL_MAX_RESPONSE;
    rc = gw_http_parser_new(&p, GW_HTTP_RESPONSE, &lim);
    if (rc < 0)
        goto out;
    gw_http_parser_expect(p, strcmp(method, "HEAD") == 0, false);
    char buf[65536];
    while (!done) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = wait_fd(fd, POLLIN, deadline);
            if (rc < 0)
                goto out;
            continue;
        }
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0) {
            struct gw_http_event ev;
            rc = gw_http_parser_finish(p, &ev);
            if (rc < 0 || ev.type != GW_HTTP_EV_DONE) {
                rc = rc < 0 ? rc : -ECONNRESET;
                goto out;
            }
            done = true;
            break;
        }
        rc = feed(p, &r, &cap, buf, (size_t)n, &done);
        if (rc < 0)
            goto out;
    }
    if (!r.body) {
        rc = body_add(&r, &cap, "", 0);
        if (rc < 0)
            goto out;
    }
    *out = r;
    r.body = NULL;
    rc = 0;
out:
    free(r.body);
    free(head);
    gw_http_parser_free(p);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---- printing ----------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long jint(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

void gw__ctl_human_bytes(long long b, char *buf, size_t cap)
{
    if (b < 10 * 1024)
        snprintf(buf, cap, "%lld", b);
    else if (b < 10 * 1024 * 1024)
        snprintf(buf, cap, "%lldK", b / 1024);
    else if (b < 10LL * 1024 * 1024 * 1024)
        snprintf(buf, cap, "%lldM", b / (1024 * 1024));
    else
        snprintf(buf, cap, "%lldG", b / (1024LL * 1024 * 1024));
}

void gw__ctl_human_ms(long long ms, char *buf, size_t cap)
{
    if (ms < 1000)
        snprintf(buf, cap, "%lldms", ms);
    else if (ms < 60000)
        snprintf(buf, cap, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, cap, "%lldm%02llds", ms / 60000, (ms / 1000) % 60);
    else if (ms < 86400000)
        snprintf(buf, cap, "%lldh%02lldm", ms / 3600000, (ms / 60000) % 60);
    else
        snprintf(buf, cap, "%lldd%02lldh", ms / 86400000, (ms / 3600000) % 24);
}

static void print_ps(json_t *v)
{
    json_t *procs = json_object_get(v, "processes");
    printf("%lld processes, %lld matched, %lld shown\n", jint(v, "total"), jint(v, "matched"),
           jint(v, "returned"));
    printf("%-18s %-28s %-10s %-11s %7s %12s %8s %9s\n", "PID", "NAME", "KIND", "STATUS", "MAILBOX",
           "REDUCTIONS", "MEMORY", "AGE");
    size_t i;
    json_t *p;
    json_array_foreach(procs, i, p)
    {
        char name[64], mem[32], age[48];
        const char *n = jstr(p, "name");
        if (!*n)
            n = jstr(p, "initial_call");
        if (strcmp(jstr(p, "kind"), "request") == 0 && json_is_string(json_object_get(p, "path")))
            snprintf(name, sizeof name, "%s %s", jstr(p, "method"), jstr(p, "path"));
        else if (strcmp(jstr(p, "kind"), "workflow") == 0 && *jstr(p, "detail"))
            /* "transfer step:debit attempt=1": the definition and its state
             * say more than the instance's name (`tandem ctl workflows`
             * lists ids). */
            snprintf(name, sizeof name, "%s", jstr(p, "detail"));
        else
            snprintf(name, sizeof name, "%s", n);
        gw__ctl_human_bytes(jint(p, "memory"), mem, sizeof mem);
        gw__ctl_human_ms(jint(p, "age_ms"), age, sizeof age);
        printf("%-18s %-28.28s %-10s %-11s %7lld %12lld %8s %9s\n", jstr(p, "pid"), name,
               jstr(p, "kind"), jstr(p, "status"), jint(p, "mailbox_len"), jint(p, "reductions"),
               mem, age);
    }
}

static void print_tree_children(json_t *children, const char *prefix)
{
    size_t n = json_array_size(children);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(children, i);
        bool last = i + 1 == n;
        const char *id = jstr(c, "id");
        json_t *sup = json_object_get(c, "supervisor");
        printf("%s%s %s %s", prefix, last ? "└──" : "├──", *id ? id : "(child)",
               json_is_string(json_object_get(c, "pid")) ? jstr(c, "pid") : "-");
        if (sup && json_object_get(sup, "strategy"))
            printf("  supervisor %s, %lld/%llds, %lld restarts, %lld children",
                   jstr(sup, "strategy"), jint(sup, "intensity"), jint(sup, "period_s"),
                   jint(sup, "restarts"), jint(sup, "children_total"));
        else
            printf("  %s %s", jstr(c, "type"), jstr(c, "restart"));
        printf("  %s", jstr(c, "status"));
        if (jint(c, "restarts"))
            printf(", restarted %lld times", jint(c, "restarts"));
        printf("\n");
        json_t *sub = json_object_get(c, "children");
        if (json_array_size(sub)) {
            char p2[256];
            snprintf(p2, sizeof p2, "%s%s", prefix, last ? "    " : "│   ");
            print_tree_children(sub, p2);
            if (json_is_true(json_object_get(sup, "children_truncated")))
                printf("%s    … %lld children in all\n", prefix, jint(sup, "children_total"));
        }
    }
}

static void print_tree(json_t *v)
{
    json_t *t = json_object_get(v, "tree");
    json_t *sup = json_object_get(t, "supervisor");
    const char *name = jstr(t, "name");
    printf("%s %s  supervisor %s, %lld/%llds, %lld restarts, %lld children\n",
           *name ? name : "(root)", jstr(t, "pid"), jstr(sup, "strategy"), jint(sup, "intensity"),
           jint(sup, "period_s"), jint(sup, "restarts"), jint(sup, "children_total"));
    print_tree_children(json_object_get(t, "children"), "");
}

static void print_system(json_t *v)
{
    char up[48], rss[32], pm[32];
    gw__ctl_human_ms(jint(v, "uptime_ms"), up, sizeof up);
    json_t *pr = json_object_get(v, "processes"), *mem = json_object_get(v, "memory");
    json_t *rq = json_object_get(v, "requests"), *rt = json_object_get(v, "routes");
    gw__ctl_human_bytes(jint(mem, "rss_bytes"), rss, sizeof rss);
    gw__ctl_human_bytes(jint(mem, "processes_bytes"), pm, sizeof pm);
    printf("version      %s\n", jstr(v, "version"));
    printf("uptime       %s\n", up);
    printf("ready        %s%s\n", json_is_true(json_object_get(v, "ready")) ? "yes" : "no",
           json_is_true(json_object_get(v, "draining")) ? " (draining)" : "");
    printf("processes    %lld of %lld (spawned %lld, exited %lld)\n", jint(pr, "count"),
           jint(pr, "limit"), jint(pr, "spawned"), jint(pr, "exited"));
    printf("memory       rss %s, processes %s, %lld messages live\n", rss, pm,
           jint(mem, "messages_live"));
    printf("requests     %lld in flight, %lld total\n", jint(rq, "in_flight"), jint(rq, "total"));
    printf("routes       version %lld (%lld reloads ok, %lld failed)\n", jint(rt, "version"),
           jint(rt, "reloads_ok"), jint(rt, "reloads_failed"));
    size_t i;
    json_t *x;
    printf("schedulers   ");
    json_array_foreach(json_object_get(v, "schedulers"), i, x)
    {
        printf("%s#%lld %.0f%% rq %lld", i ? ", " : "", jint(x, "id"),
               100.0 * json_number_value(json_object_get(x, "utilisation")), jint(x, "run_queue"));
    }
    printf("\n%-12s %-24s %11s %11s %9s %11s\n", "LISTENER", "ADDRESS", "CONNECTIONS", "ACCEPTED",
           "REFUSED", "REQUESTS");
    json_t *all = json_array();
    json_array_extend(all, json_object_get(v, "listeners"));
    if (json_object_get(v, "admin"))
        json_array_append(all, json_object_get(v, "admin"));
    json_array_foreach(all, i, x)
    {
        printf("%-12s %-24s %11lld %11lld %9lld %11lld\n", jstr(x, "name"), jstr(x, "address"),
               jint(x, "connections"), jint(x, "accepted"), jint(x, "refused"),
               jint(x, "requests"));
    }
    json_decref(all);
}

static void print_route_errors(json_t *v, FILE *out)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(v, "errors"), i, e)
    {
        fprintf(out, "%s:%lld:%lld: %s\n", jstr(e, "file"), jint(e, "line"), jint(e, "column"),
                jstr(e, "message"));
    }
}

static void print_routes(json_t *v)
{
    printf("version %lld\n", jint(v, "version"));
    json_t *last = json_object_get(v, "last_reload");
    if (json_is_object(last)) {
        printf("last reload: %s", jstr(last, "outcome"));
        if (*jstr(last, "source"))
            printf(" (%s)", jstr(last, "source"));
        printf("\n");
        print_route_errors(last, stdout);
    }
    printf("%-32s %s\n", "ROUTE", "DEFINITION");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(v, "routes"), i, r)
    {
        json_t *rest = json_deep_copy(r);
        json_object_del(rest, "name");
        char *t = json_dumps(rest, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%-32s %s\n", jstr(r, "name"), t ? t : "");
        free(t);
        json_decref(rest);
    }
}

static void print_reload(json_t *v)
{
    printf("%s: version %lld, %lld routes\n", jstr(v, "outcome"), jint(v, "version"),
           jint(v, "routes"));
}

static void print_upstreams(json_t *v)
{
    printf("%-16s %-24s %6s %-7s %7s %6s %10s %9s %s\n", "UPSTREAM", "TARGET", "WEIGHT", "HEALTHY",
           "ACTIVE", "IDLE", "REQUESTS", "FAILURES", "LAST_ERROR");
    size_t i, j;
    json_t *u, *t;
    json_array_foreach(json_object_get(v, "upstreams"), i, u)
    {
        json_array_foreach(json_object_get(u, "targets"), j, t)
        {
            printf("%-16s %-24s %6lld %-7s %7lld %6lld %10lld %9lld %s\n", jstr(u, "name"),
                   jstr(t, "address"), jint(t, "weight"),
                   json_is_true(json_object_get(t, "healthy")) ? "yes" : "no", jint(t, "active"),
                   jint(t, "idle"), jint(t, "requests"), jint(t, "failures"),
                   jstr(t, "last_error"));
        }
    }
}

/* "LISTENER: outcome[: FILE: reason]" per listener of a TLS reload. */
static void print_tls_results(json_t *v, FILE *out)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(v, "listeners"), i, l)
    {
        if (!json_is_string(json_object_get(l, "outcome")))
            continue;
        fprintf(out, "%s: %s", jstr(l, "listener"), jstr(l, "outcome"));
        if (*jstr(l, "file"))
            fprintf(out, ": %s", jstr(l, "file"));
        if (*jstr(l, "reason"))
            fprintf(out, ": %s", jstr(l, "reason"));
        fprintf(out, "\n");
    }
}

static void print_tls_reload(json_t *v)
{
    print_tls_results(v, stdout);
}

/* Days (or hours, under two days) until `s` seconds have passed. */
static void human_left(long long s, char *buf, size_t cap)
{
    if (s < 0)
        snprintf(buf, cap, "EXPIRED");
    else if (s < 2 * 86400)
        snprintf(buf, cap, "%lldh", s / 3600);
    else
        snprintf(buf, cap, "%lldd", s / 86400);
}

static void print_tls(json_t *v)
{
    size_t i, j, k;
    json_t *l, *c, *n;
    json_array_foreach(json_object_get(v, "listeners"), i, l)
    {
        printf("listener %s (%s): loaded %s (%s), reloads %lld ok, %lld failed\n", jstr(l, "name"),
               jstr(l, "address"), jstr(l, "loaded_at"), jstr(l, "loaded_by"),
               jint(l, "reloads_ok"), jint(l, "reloads_failed"));
        json_t *last = json_object_get(l, "last_reload");
        if (json_is_object(last)) {
            printf("last reload: %s (%s, %s)", jstr(last, "outcome"), jstr(last, "source"),
                   jstr(last, "time"));
            if (*jstr(last, "file"))
                printf(": %s", jstr(last, "file"));
            if (*jstr(last, "reason"))
                printf(": %s", jstr(last, "reason"));
            printf("\n");
        }
        printf("  %-32s %-40s %-20s %-8s %-10s %s\n", "NAMES", "SUBJECT", "NOT_AFTER", "LEFT",
               "KEY", "SHA256");
        json_array_foreach(json_object_get(l, "certificates"), j, c)
        {
            char names[256] = "", left[32];
            size_t len = 0;
            json_array_foreach(json_object_get(c, "names"), k, n)
            {
                int w = snprintf(names + len, sizeof names - len, "%s%s", k ? "," : "",
                                 json_string_value(n) ? json_string_value(n) : "");
                if (w < 0 || (size_t)w >= sizeof names - len)
                    break;
                len += (size_t)w;
            }
            human_left(jint(c, "expires_in_s"), left, sizeof left);
            printf("  %-32s %-40s %-20s %-8s %-10s %s\n", names, jstr(c, "subject"),
                   jstr(c, "not_after"), left, jstr(c, "key_type"), jstr(c, "fingerprint"));
        }
    }
    json_t *hs = json_object_get(v, "handshakes");
    json_t *srv = json_object_get(hs, "server");
    if (json_is_object(srv)) {
        printf("handshakes (server): %lld full, %lld resumed; failures:",
               jint(srv, "handshakes_full"), jint(srv, "handshakes_resumed"));
        const char *key;
        json_t *f;
        json_object_foreach(json_object_get(srv, "failures"), key, f)
        {
            if (json_integer_value(f))
                printf(" %s %lld", key, (long long)json_integer_value(f));
        }
        printf("\n");
    }
}

static void print_kill(json_t *v)
{
    if (json_is_true(json_object_get(v, "exited")))
        printf("%s exited: %s\n", jstr(v, "pid"), jstr(v, "exit_reason"));
    else
        printf("%s sent %s; still alive (it traps exits)\n", jstr(v, "pid"), jstr(v, "reason"));
}

static void print_restart(json_t *v)
{
    printf("%s (%s) restarted as %s\n", jstr(v, "pid"), jstr(v, "id"), jstr(v, "new_pid"));
}

static void print_upgrade(json_t *v)
{
    printf("upgraded: pid %lld serves now; pid %lld drains and exits\n", jint(v, "new_pid"),
           jint(v, "old_pid"));
}

static void print_workflows(json_t *v)
{
    json_t *ws = json_object_get(v, "workflows");
    printf("%-32s %-20s %-24s %-24s %s\n", "ID", "WORKFLOW", "STATE", "CREATED", "OWNER");
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w)
    {
        printf("%-32s %-20.20s %-24.24s %-24s %s\n", jstr(w, "id"), jstr(w, "workflow"),
               jstr(w, "state"), jstr(w, "created"), jstr(w, "owner"));
    }
    if (json_is_string(json_object_get(v, "next")))
        printf("more: --after %s\n", jstr(v, "next"));
}

static void print_workflow(json_t *v)
{
    json_t *def = json_object_get(v, "definition");
    printf("id:         %s\n", jstr(v, "id"));
    printf("workflow:   %s (version %s)\n", jstr(v, "workflow"), jstr(def, "version"));
    printf("state:      %s\n", jstr(v, "state"));
    printf("attempts:   %lld\n", jint(v, "attempts"));
    json_t *err = json_object_get(v, "last_error");
    if (err && !json_is_null(err)) {
        char *t = json_is_string(err) ? NULL : json_dumps(err, JSON_COMPACT);
        printf("last error: %s\n", t ? t : json_string_value(err));
        free(t);
    }
    printf("created:    %s\nupdated:    %s\n", jstr(v, "created"), jstr(v, "updated"));
    char *input = json_dumps(json_object_get(v, "input"), JSON_COMPACT | JSON_ENCODE_ANY);
    printf("input:      %s\n", input ? input : "");
    free(input);
    json_t *res = json_object_get(v, "result");
    if (res) {
        char *body = json_dumps(json_object_get(res, "body"), JSON_COMPACT | JSON_ENCODE_ANY);
        printf("result:     %lld %s\n", jint(res, "status"), body ? body : "");
        free(body);
    }
    printf("%5s %-24s %-24s %-16s %s\n", "SEQ", "AT", "STATE", "EVENT", "DETAIL");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(v, "transitions"), i, t)
    {
        char *d = json_dumps(json_object_get(t, "detail"), JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%5lld %-24s %-24.24s %-16.16s %s\n", jint(t, "seq"), jstr(t, "at"),
               jstr(t, "state"), jstr(t, "event"), d ? d : "");
        free(d);
    }
}

static void print_workflow_action(json_t *v)
{
    printf("%s %s\n", jstr(v, "id"), jstr(v, "outcome"));
}

/* "FILE:LINE" of an entry that has a position. */
static void position(json_t *v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s:%lld", jstr(v, "file"), jint(v, "line"));
}

/* "more: --offset N" when a page ends before the list does. */
static void print_more(json_t *v, size_t shown)
{
    long long next = jint(v, "offset") + (long long)shown;
    if (next < jint(v, "count"))
        printf("more: --offset %lld (%lld in all)\n", next, jint(v, "count"));
}

/* "reason n, reason n" of a {reason: n} object; "-" when empty. */
static void reasons_line(json_t *o, char *buf, size_t cap)
{
    const char *key;
    json_t *n;
    size_t len = 0;
    buf[0] = 0;
    json_object_foreach(o, key, n)
    {
        int w = snprintf(buf + len, cap - len, "%s%s %lld", len ? ", " : "", key,
                         (long long)json_integer_value(n));
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
    if (!len)
        snprintf(buf, cap, "-");
}

static void print_policies(json_t *v)
{
    json_t *ps = json_object_get(v, "policies");
    printf("%-24s %-12s %6s %-32s %s\n", "POLICY", "TYPE", "ROUTES", "WHERE", "DENIALS");
    size_t i;
    json_t *p;
    json_array_foreach(ps, i, p)
    {
        char where[320], denied[512];
        position(p, where, sizeof where);
        reasons_line(json_object_get(p, "denials"), denied, sizeof denied);
        printf("%-24s %-12s %6lld %-32s %s\n", jstr(p, "name"), jstr(p, "type"),
               jint(p, "route_count"), where, denied);
    }
    print_more(v, json_array_size(ps));
}

static void print_policy(json_t *v)
{
    char where[320], denied[512];
    position(v, where, sizeof where);
    reasons_line(json_object_get(v, "denials"), denied, sizeof denied);
    printf("policy:   %s\ntype:     %s\ndefined:  %s:%lld\n", jstr(v, "name"), jstr(v, "type"),
           where, jint(v, "column"));
    /* The routes listed (the answer lists at most 100), then "..." for the
     * rest. */
    json_t *routes = json_object_get(v, "routes");
    printf("routes:   %lld", jint(v, "route_count"));
    size_t i;
    json_t *r;
    json_array_foreach(routes, i, r)
    {
        printf("%s%s", i ? ", " : " (", json_string_value(r) ? json_string_value(r) : "");
    }
    bool more = (long long)json_array_size(routes) < jint(v, "route_count");
    if (json_array_size(routes))
        printf("%s)", more ? ", ..." : "");
    printf("\ndenials:  %s\n", denied);
    char *cfg = json_dumps(json_object_get(v, "config"), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("config:   %s\n", cfg ? cfg : "{}");
    free(cfg);
}

/* Every member of a policy's state, one per line. */
static void print_policy_state(json_t *v)
{
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x)
    {
        char *t = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        printf("%-12s %s\n", key, json_is_string(x) ? json_string_value(x) : t ? t : "");
        free(t);
    }
}

static void print_consumers(json_t *v)
{
    json_t *cs = json_object_get(v, "consumers");
    printf("%-24s %-20s %8s %-32s %s\n", "CONSUMER", "CREDENTIALS", "API_KEYS", "WHERE", "HEADERS");
    size_t i, k;
    json_t *c, *x;
    json_array_foreach(cs, i, c)
    {
        char where[320], kinds[64] = "", headers[512] = "";
        size_t len = 0;
        json_array_foreach(json_object_get(c, "credentials"), k, x)
        {
            int w = snprintf(kinds + len, sizeof kinds - len, "%s%s", k ? "," : "",
                             json_string_value(x) ? json_string_value(x) : "");
            if (w < 0 || (size_t)w >= sizeof kinds - len)
                break;
            len += (size_t)w;
        }
        len = 0;
        json_array_foreach(json_object_get(c, "headers"), k, x)
        {
            int w = snprintf(headers + len, sizeof headers - len, "%s%s", k ? "," : "",
                             json_string_value(x) ? json_string_value(x) : "");
            if (w < 0 || (size_t)w >= sizeof headers - len)
                break;
            len += (size_t)w;
        }
        position(c, where, sizeof where);
        printf("%-24s %-20s %8lld %-32s %s\n", jstr(c, "name"), kinds[0] ? kinds : "-",
               jint(c, "api_keys"), where, headers[0] ? headers : "-");
    }
    print_more(v, json_array_size(cs));
}

/* ---- commands ------------------------------------------------------------------ */

typedef void (*printer)(json_t *v);

/* Runs one request and prints the answer; returns the exit code. */
static int run(const struct ctl *c, const char *method, const char *target, const char *body,
               printer print)
{
    struct reply r = {0};
    int rc = gw__ctl_request(c, method, target, body, c->timeout_ms, &r);
    if (rc < 0) {
        fprintf(stderr, "tandem ctl: %s %s on %s:%s: %s\n", method, target, c->host, c->port,
                strerror(-rc));
        return 1;
    }
    int code = r.status >= 200 && r.status < 300 ? 0 : 1;
    /* The answer comes from whatever listens there: nesting beyond what the
     * admin API ever writes is not parsed (jansson recurses per level). */
    unsigned line, col;
    json_t *v = jpos_depth_check(r.body, r.len, GW_ADMIN_MAX_JSON_DEPTH, &line, &col) < 0
                    ? NULL
                    : json_loadb(r.body, r.len, 0, NULL);
    if (c->json) {
        fwrite(r.body, 1, r.len, stdout);
        if (r.len && r.body[r.len - 1] != '\n')
            putchar('\n');
    } else if (code != 0) {
        fprintf(stderr, "tandem ctl: %d %s", r.status, v ? jstr(v, "error") : "");
        json_t *d = json_object_get(v, "detail");
        if (json_is_string(d)) {
            fprintf(stderr, ": %s", json_string_value(d));
        } else if (d && !json_is_null(d)) {
            char *t = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
            fprintf(stderr, ": %s", t ? t : "");
            free(t);
        }
        fprintf(stderr, "\n");
        if (v) {
            print_route_errors(v, stderr);
            print_tls_results(v, stderr);
        }
    } else if (!v) {
        fprintf(stderr, "tandem ctl: the answer is not JSON\n");
        code = 1;
    } else {
        print(v);
    }
    json_decref(v);
    free(r.body);
    return code;
}

static int cmd_health(const struct ctl *c)
{
    struct reply r = {0};
    int rc = gw__ctl_request(c, "GET", "/healthz", NULL, CTL_HEALTH_TIMEOUT_MS, &r);
    if (rc < 0) {
        fprintf(stderr, "tandem ctl: health: %s:%s: %s\n", c->host, c->port, strerror(-rc));
        return 1;
    }
    int code = r.status == 200 ? 0 : 1;
    if (c->json)
        fwrite(r.body, 1, r.len, stdout);
    else if (code == 0)
        printf("ok\n");
    else
        fprintf(stderr, "tandem ctl: health: status %d\n", r.status);
    free(r.body);
    return code;
}

/* "<0.12.3>" -> "0.12.3" for the URL; anything else must be digits and dots. */
static int pid_segment(const char *pid, char *buf, size_t cap)
{
    size_t n = strlen(pid);
    if (n >= 2 && pid[0] == '<' && pid[n - 1] == '>') {
        pid++;
        n -= 2;
    }
    if (n == 0 || n >= cap)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!((pid[i] >= '0' && pid[i] <= '9') || pid[i] == '.'))
            return -EINVAL;
    memcpy(buf, pid, n);
    buf[n] = 0;
    return 0;
}

static bool query_safe(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("-._~,:", *s)))
            return false;
    return true;
}

/* `s` percent-encoded (all but unreserved characters) into buf; -ENAMETOOLONG
 * when it does not fit. */
int gw__ctl_url_encode(const char *s, char *buf, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || strchr("-._~", ch);
        if (n + (plain ? 1 : 3) >= cap)
            return -ENAMETOOLONG;
        if (plain) {
            buf[n++] = (char)ch;
        } else {
            buf[n++] = '%';
            buf[n++] = hex[ch >> 4];
            buf[n++] = hex[ch & 15];
        }
    }
    buf[n] = 0;
    return 0;
}

/* policies [NAME [KEY]] and consumers: words[0..] as given. */
static int cmd_policies(const struct ctl *c, const char *const *words, int nwords)
{
    char target[16384], name[3 * 128 + 1], key[3 * 4096 + 1];
    bool consumers = strcmp(words[0], "consumers") == 0;
    if (nwords == 1) {
        if ((c->limit && !query_safe(c->limit)) || (c->offset && !query_safe(c->offset))) {
            fprintf(stderr, "tandem ctl: %s: --limit and --offset take a number\n", words[0]);
            return 2;
        }
        snprintf(target, sizeof target, "/admin/%s%s%s%s%s%s", words[0],
                 c->limit || c->offset ? "?" : "", c->limit ? "limit=" : "",
                 c->limit ? c->limit : "", c->offset ? (c->limit ? "&offset=" : "offset=") : "",
                 c->offset ? c->offset : "");
        return run(c, "GET", target, NULL, consumers ? print_consumers : print_policies);
    }
    if (gw__ctl_url_encode(words[1], name, sizeof name) < 0 ||
        (nwords == 3 && gw__ctl_url_encode(words[2], key, sizeof key) < 0)) {
        fprintf(stderr, "tandem ctl: policies: a name or key too long\n");
        return 2;
    }
    if (nwords == 2) {
        snprintf(target, sizeof target, "/admin/policies/%s", name);
        return run(c, "GET", target, NULL, print_policy);
    }
    snprintf(target, sizeof target, "/admin/policies/%s/state?key=%s", name, key);
    return run(c, "GET", target, NULL, print_policy_state);
}

static int cmd_ps(const struct ctl *c)
{
    char target[512];
    const char *sort = c->sort ? c->sort : "reductions";
    if (!query_safe(sort) || (c->limit && !query_safe(c->limit)) ||
        (c->name && !query_safe(c->name)) || (c->kind && !query_safe(c->kind))) {
        fprintf(stderr, "tandem ctl: ps: --sort, --limit, --name and --kind take letters, "
                        "digits and - . _ ~ , : only\n");
        return 2;
    }
    snprintf(target, sizeof target, "/admin/processes?sort=%s%s%s%s%s%s%s", sort,
             c->limit ? "&limit=" : "", c->limit ? c->limit : "", c->name ? "&name=" : "",
             c->name ? c->name : "", c->kind ? "&kind=" : "", c->kind ? c->kind : "");
    return run(c, "GET", target, NULL, print_ps);
}

static bool is_workflow_id(const char *s)
{
    return gw_wf_id_valid(s, strlen(s));
}

/* workflows [ID | retry ID | resolve ID]: words[1..] as given. */
static int cmd_workflows(const struct ctl *c, const char *const *words, int nwords)
{
    char target[512];
    if (nwords == 1) {
        if ((c->state && !query_safe(c->state)) || (c->definition && !query_safe(c->definition)) ||
            (c->limit && !query_safe(c->limit)) || (c->after && !is_workflow_id(c->after))) {
            fprintf(stderr, "tandem ctl: workflows: --state, --definition and --limit take "
                            "letters, digits and - . _ ~ , : only; --after an instance id\n");
            return 2;
        }
        const char *keys[4] = {"state", "definition", "limit", "after"};
        const char *vals[4] = {c->state, c->definition, c->limit, c->after};
        size_t n = (size_t)snprintf(target, sizeof target, "/admin/workflows");
        for (int k = 0; k < 4; k++) {
            if (vals[k])
                n += (size_t)snprintf(target + n, sizeof target - n, "%c%s=%s",
                                      strchr(target, '?') ? '&' : '?', keys[k], vals[k]);
            if (n >= sizeof target) {
                fprintf(stderr, "tandem ctl: workflows: options too long\n");
                return 2;
            }
        }
        return run(c, "GET", target, NULL, print_workflows);
    }
    const char *action = nwords == 3 ? words[1] : NULL;
    const char *id = words[nwords - 1];
    if ((action && strcmp(action, "retry") != 0 && strcmp(action, "resolve") != 0) ||
        !is_workflow_id(id)) {
        fprintf(stderr, "tandem ctl: workflows takes [ID], retry ID or resolve ID (an id is 32 "
                        "lower-case hex digits)\n");
        return 2;
    }
    if (!action) {
        snprintf(target, sizeof target, "/admin/workflows/%s", id);
        return run(c, "GET", target, NULL, print_workflow);
    }
    snprintf(target, sizeof target, "/admin/workflows/%s/%s", id, action);
    char *body = NULL;
    if (c->note && strcmp(action, "resolve") == 0) {
        json_t *o = json_pack("{s:s}", "note", c->note);
        body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!body) {
            fprintf(stderr, "tandem ctl: out of memory\n");
            return 1;
        }
    }
    int code = run(c, "POST", target, body ? body : "", print_workflow_action);
    free(body);
    return code;
}

static int take_value(int argc, char **argv, int *i, const char **out)
{
    const char *a = argv[*i];
    const char *eq = strchr(a, '=');
    if (strncmp(a, "--", 2) == 0 && eq) {
        *out = eq + 1;
        return 0;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "tandem ctl: %s needs a value\n", a);
        return -EINVAL;
    }
    *out = argv[++*i];
    return 0;
}

static bool opt_is(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == 0 || (a[n] == '=' && name[1] == '-'));
}

int gw_ctl_main(int argc, char **argv)
{
    struct ctl c = {.timeout_ms = CTL_DEFAULT_TIMEOUT_MS};
    const char *words[4] = {0};
    int nwords = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int rc = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            c.json = true;
        } else if (strcmp(a, "--once") == 0) {
            c.once = true;
        } else if (opt_is(a, "-c") || opt_is(a, "--config")) {
            rc = take_value(argc, argv, &i, &c.config);
        } else if (opt_is(a, "--admin")) {
            rc = take_value(argc, argv, &i, &c.admin);
        } else if (opt_is(a, "--token")) {
            rc = take_value(argc, argv, &i, &c.token);
        } else if (opt_is(a, "--sort")) {
            rc = take_value(argc, argv, &i, &c.sort);
        } else if (opt_is(a, "--limit")) {
            rc = take_value(argc, argv, &i, &c.limit);
        } else if (opt_is(a, "--name")) {
            rc = take_value(argc, argv, &i, &c.name);
        } else if (opt_is(a, "--kind")) {
            rc = take_value(argc, argv, &i, &c.kind);
        } else if (opt_is(a, "--reason")) {
            rc = take_value(argc, argv, &i, &c.reason);
        } else if (opt_is(a, "--state")) {
            rc = take_value(argc, argv, &i, &c.state);
        } else if (opt_is(a, "--definition")) {
            rc = take_value(argc, argv, &i, &c.definition);
        } else if (opt_is(a, "--after")) {
            rc = take_value(argc, argv, &i, &c.after);
        } else if (opt_is(a, "--offset")) {
            rc = take_value(argc, argv, &i, &c.offset);
        } else if (opt_is(a, "--note")) {
            rc = take_value(argc, argv, &i, &c.note);
        } else if (opt_is(a, "--binary")) {
            rc = take_value(argc, argv, &i, &c.binary);
        } else if (opt_is(a, "--timeout")) {
            rc = take_value(argc, argv, &i, &val);
            if (rc == 0) {
                char *end = NULL;
                long t = strtol(val, &end, 10);
                if (!*val || *end || t <= 0 || t > 3600000) {
                    fprintf(stderr, "tandem ctl: --timeout takes milliseconds (1..3600000)\n");
                    return 2;
                }
                c.timeout_ms = (int)t;
                c.timeout_set = true;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tandem ctl: unknown option \"%s\"\n", a);
            usage(stderr);
            return 2;
        } else if (nwords < 4) {
            words[nwords++] = a;
        } else {
            fprintf(stderr, "tandem ctl: too many arguments\n");
            return 2;
        }
        if (rc < 0)
            return 2;
    }
    if (nwords == 0) {
        usage(stderr);
        return 2;
    }
    const char *cmd = words[0];
    static const char *const one_word[] = {"ps",        "tree",   "system", "routes", "reload",
                                           "upstreams", "health", "top",    NULL};
    bool known = false;
    for (int k = 0; one_word[k]; k++)
        if (strcmp(cmd, one_word[k]) == 0)
            known = true;
    bool with_arg =
        strcmp(cmd, "rollback") == 0 || strcmp(cmd, "kill") == 0 || strcmp(cmd, "restart") == 0;
    if (strcmp(cmd, "workflows") == 0) {
        if (nwords > 3) {
            fprintf(stderr, "tandem ctl: workflows takes [ID], retry ID or resolve ID\n");
            return 2;
        }
        if (locate(&c) < 0)
            return 1;
        return cmd_workflows(&c, words, nwords);
    }
    if (strcmp(cmd, "policies") == 0 || strcmp(cmd, "consumers") == 0) {
        if (nwords > (cmd[0] == 'p' ? 3 : 1)) {
            fprintf(stderr, "tandem ctl: %s\n",
                    cmd[0] == 'p' ? "policies takes [NAME [KEY]]" : "consumers takes no argument");
            return 2;
        }
        if (locate(&c) < 0)
            return 1;
        return cmd_policies(&c, words, nwords);
    }
    if (strcmp(cmd, "upgrade") == 0) {
        if (nwords != 1) {
            fprintf(stderr, "tandem ctl: upgrade takes no argument (--binary PATH)\n");
            return 2;
        }
        if (c.binary && c.binary[0] != '/') {
            fprintf(stderr, "tandem ctl: --binary takes an absolute path\n");
            return 2;
        }
        if (locate(&c) < 0)
            return 1;
        if (!c.timeout_set)
            c.timeout_ms = CTL_UPGRADE_TIMEOUT_MS;
        char *body = NULL;
        if (c.binary && !(body = one_member_body("binary", c.binary))) {
            fprintf(stderr, "tandem ctl: out of memory\n");
            return 1;
        }
        int code = run(&c, "POST", "/admin/upgrade", body ? body : "", print_upgrade);
        free(body);
        return code;
    }
    if (strcmp(cmd, "tls") == 0) {
        if (nwords > 3 || (nwords > 1 && strcmp(words[1], "reload") != 0)) {
            fprintf(stderr, "tandem ctl: tls takes nothing, or reload [LISTENER]\n");
            return 2;
        }
        if (nwords == 3 && !query_safe(words[2])) {
            fprintf(stderr, "tandem ctl: tls reload: a listener's name takes letters, digits "
                            "and - . _ ~ , : only\n");
            return 2;
        }
        if (locate(&c) < 0)
            return 1;
        if (nwords == 1)
            return run(&c, "GET", "/admin/tls", NULL, print_tls);
        char target[320];
        snprintf(target, sizeof target, "/admin/tls/reload%s%s", nwords == 3 ? "?listener=" : "",
                 nwords == 3 ? words[2] : "");
        return run(&c, "POST", target, "", print_tls_reload);
    }
    if ((!known && !with_arg) || (known && nwords != 1) || (with_arg && nwords != 2)) {
        if (!known && !with_arg)
            fprintf(stderr, "tandem ctl: unknown command \"%s\"\n", cmd);
        else
            fprintf(stderr, "tandem ctl: %s takes %s\n", cmd,
                    with_arg ? "one argument" : "no argument");
        usage(stderr);
        return 2;
    }
    if (locate(&c) < 0)
        return 1;

    if (strcmp(cmd, "health") == 0)
        return cmd_health(&c);
    if (strcmp(cmd, "top") == 0)
        return gw__ctl_top(&c);
    if (strcmp(cmd, "ps") == 0)
        return cmd_ps(&c);
    if (strcmp(cmd, "tree") == 0)
        return run(&c, "GET", "/admin/supervisors", NULL, print_tree);
    if (strcmp(cmd, "system") == 0)
        return run(&c, "GET", "/admin/system", NULL, print_system);
    if (strcmp(cmd, "routes") == 0)
        return run(&c, "GET", "/admin/routes", NULL, print_routes);
    if (strcmp(cmd, "reload") == 0)
        return run(&c, "POST", "/admin/routes/reload", "", print_reload);
    if (strcmp(cmd, "upstreams") == 0)
        return run(&c, "GET", "/admin/upstreams", NULL, print_upstreams);
    if (strcmp(cmd, "rollback") == 0) {
        char *end = NULL;
        unsigned long long v = strtoull(words[1], &end, 10);
        if (!*words[1] || *end || v == 0 || words[1][0] == '-') {
            fprintf(stderr, "tandem ctl: rollback takes a version number\n");
            return 2;
        }
        char body[64];
        snprintf(body, sizeof body, "{\"version\": %llu}", v);
        return run(&c, "POST", "/admin/routes/rollback", body, print_reload);
    }
    char seg[64], target[128];
    if (pid_segment(words[1], seg, sizeof seg) < 0) {
        fprintf(stderr, "tandem ctl: %s: \"%s\" is not a pid (<0.SLOT.GEN>)\n", cmd, words[1]);
        return 2;
    }
    if (strcmp(cmd, "kill") == 0) {
        snprintf(target, sizeof target, "/admin/processes/%s/kill", seg);
        char *body = NULL;
        if (c.reason && !(body = one_member_body("reason", c.reason))) {
            fprintf(stderr, "tandem ctl: out of memory\n");
            return 1;
        }
        int code = run(&c, "POST", target, body ? body : "", print_kill);
        free(body);
        return code;
    }
    snprintf(target, sizeof target, "/admin/processes/%s/restart", seg);
    return run(&c, "POST", target, "", print_restart);
}
