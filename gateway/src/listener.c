/*
 * listener.c: listening sockets, acceptor pools and the per-listener
 * supervisors.
 *
 * Sockets are opened by the main thread before the runtime starts serving,
 * so that an address in use is a clear start-up error. Each listener gets
 * a supervisor (rest_for_one): its connection supervisor
 * (simple_one_for_one, temporary children) first, then its acceptors, so
 * that acceptors restart if the connection supervisor does. Acceptors share
 * the listening socket, each through its own descriptor of it, duplicated
 * when the listener opens; each accepts, applies the connection limit and
 * the file descriptor budget (fdlimit.c), answering 503 over either, and
 * starts a connection process under the connection supervisor, handing it
 * the socket. An acceptor with nobody waiting parks until a client or a
 * message comes: a binary upgrade (upgrade.c) stops the acceptors so,
 * leaving the sockets, shared with the new gateway, open and never shut
 * down.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_int.h"
#include "tls/tls.h"
#include "upgrade.h"
#include "rt/supervisor.h"

struct gw__listener *gw__listeners;
size_t gw__nlisteners;

static int open_socket(const struct gw_address *a, uint32_t backlog, const char *what)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", a->port);
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "tandem: %s address %s: %s\n", what, a->text, gai_strerror(rc));
        return -EINVAL;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6) {
            int zero = 0; /* "[::]" takes IPv4 too */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, (int)backlog) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "tandem: cannot listen on %s (%s): %s\n", a->text, what, strerror(err));
        return -err;
    }
    return fd;
}

/* The port `fd` is bound to, 0 if it cannot be told. */
static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static void limits_for(struct gw__listener *l, const struct gw_listener_config *c)
{
    gw_http_limits_default(&l->limits);
    l->limits.max_header_bytes = c->max_header_bytes;
    l->limits.max_header_count = c->max_headers;
    l->limits.max_uri_bytes = c->max_uri_bytes;
    l->limits.max_body_bytes = c->max_body_bytes;
    l->max_connections = c->max_connections;
    l->header_timeout_ms = c->header_timeout_ms;
    l->idle_timeout_ms = c->idle_timeout_ms;
    l->request_timeout_ms = c->request_timeout_ms;
    l->body_timeout_ms = c->body_timeout_ms;
    l->tunnel_idle_timeout_ms = c->tunnel_idle_timeout_ms;
    l->max_body_bytes = c->max_body_bytes;
    l->caps = c->limits;
    l->path_policy = c->path_policy;
    l->trusted = c->trusted_proxies;
    l->ntrusted = c->ntrusted_proxies;
}

/* Gives each of the listener's `n` acceptors its own descriptor of the
 * socket. */
static int acceptors_open(struct gw__listener *l, unsigned n)
{
    if (n > GW__MAX_ACCEPTORS)
        n = GW__MAX_ACCEPTORS;
    l->acceptors = calloc(n, sizeof(*l->acceptors));
    if (!l->acceptors)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        struct gw__acceptor *a = &l->acceptors[i];
        a->self = a;
        a->lis = l;
        a->fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0);
        if (a->fd < 0) {
            int err = errno;
            fprintf(stderr, "tandem: listener %s: dup: %s\n", l->name, strerror(err));
            return -err;
        }
        l->nacceptors = i + 1;
    }
    return 0;
}

int gw__listeners_open(void)
{
    const struct gw_config *cfg = gw.cfg;
    size_t n = cfg->nlisteners + (cfg->admin.enabled ? 1 : 0);
    gw__listeners = calloc(n, sizeof(*gw__listeners));
    gw.listener_stats = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*gw.listener_stats));
    if (!gw__listeners || !gw.listener_stats)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct gw_listener_config *c = &cfg->listeners[i];
        struct gw__listener *l = &gw__listeners[i];
        l->self = l;
        l->index = (int)i;
        l->name = c->name;
        l->stats = &gw.listener_stats[i];
        l->handler = gw__routes_handle;
        limits_for(l, c);
        /* Handed over by the gateway this one upgrades, or opened here. */
        l->fd = gw__upgrade_take(c->name, false, &c->address);
        if (l->fd < 0)
            l->fd = open_socket(&c->address, c->backlog, c->name);
        gw__nlisteners = i + 1;
        if (l->fd < 0)
            return l->fd;
        l->port = bound_port(l->fd);
        if (c->tls.enabled) {
            /* Every certificate loads and validates, or the gateway does
             * not start. */
            char err[512];
            int rc = gw_tls_listener_init(c, &l->tls, err, sizeof err);
            if (rc < 0) {
                fprintf(stderr, "tandem: listener %s: tls: %s\n", l->name,
                        rc == -ENOMEM ? "out of memory" : err);
                return rc;
            }
        }
        int rc = acceptors_open(l, c->acceptors ? c->acceptors : gw__schedulers(cfg));
        if (rc < 0)
            return rc;
    }
    if (cfg->admin.enabled) {
        struct gw__listener *l = &gw__listeners[cfg->nlisteners];
        const struct gw_listener_config c = cfg->admin.listener; /* gw_admin_listener_keys */
        l->self = l;
        l->index = -1;
        l->name = "admin";
        l->admin = true;
        l->handler = gw__admin_serve;
        l->stats = &gw.admin_stats;
        limits_for(l, &c);
        l->fd = gw__upgrade_take("admin", true, &cfg->admin.address);
        if (l->fd < 0)
            l->fd = open_socket(&cfg->admin.address, c.backlog, "admin");
        gw__nlisteners++;
        if (l->fd < 0)
            return l->fd;
        /* Who the admin listener is, for its Host and Origin checks, from
         * the socket as bound: the port when 0 was asked for, and loopback
         * from the address itself rather than from how it was written. */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0)
            return -errno;
        uint16_t port = ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port;
        gw.admin_site = (struct gw_admin_site){
            .host = cfg->admin.address.host,
            .port = ntohs(port),
            .loopback = gw_sockaddr_is_loopback((struct sockaddr *)&ss),
            .allowed_hosts = cfg->admin.allowed_hosts,
            .nallowed_hosts = cfg->admin.nallowed_hosts,
        };
        int rc = acceptors_open(l, c.acceptors);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void gw__listeners_close(void)
{
    for (size_t i = 0; i < gw__nlisteners; i++) {
        struct gw__listener *l = &gw__listeners[i];
        for (unsigned k = 0; k < l->nacceptors; k++)
            close(l->acceptors[k].fd);
        free(l->acceptors);
        if (l->fd >= 0)
            close(l->fd);
        gw_tls_listener_free(l->tls);
    }
    free(gw__listeners);
    gw__listeners = NULL;
    gw__nlisteners = 0;
}

uint64_t gw__connections_open(void)
{
    uint64_t n = 0;
    for (size_t i = 0; i < gw__nlisteners; i++)
        if (!gw__listeners[i].admin)
            n += atomic_load(&gw__listeners[i].stats->connections);
    return n;
}

/* ---- acceptors ------------------------------------------------------------ */

void gw__addr_text(const struct sockaddr *sa, char *buf, size_t cap, bool *loopback)
{
    buf[0] = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)cap);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, (socklen_t)cap);
        else
            inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)cap);
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(buf, cap, "unix");
    }
    *loopback = sa->sa_family == AF_UNIX || gw_sockaddr_is_loopback(sa);
}

/* Writes a line about `l` unless one of the same kind went out less than
 * GW__LOG_EVERY_MS ago; the next line written says how many were left out.
 * Relaxed: the compare-and-swap alone decides which thread writes, and the
 * two counters publish nothing else (a line left out may be counted in the
 * line after next rather than the next one). */
__attribute__((format(printf, 4, 5))) static void
log_limited(struct gw__listener *l, int kind, enum rt_log_level level, const char *fmt, ...)
{
    struct gw__log_limit *ll = &l->logs[kind];
    uint64_t now = rt_now_ms();
    uint64_t next = atomic_load_explicit(&ll->next_ms, memory_order_relaxed);
    if (now < next ||
        !atomic_compare_exchange_strong_explicit(&ll->next_ms, &next, now + GW__LOG_EVERY_MS,
                                                 memory_order_relaxed, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&ll->left_out, 1, memory_order_relaxed);
        return;
    }
    uint64_t n = atomic_exchange_explicit(&ll->left_out, 0, memory_order_relaxed);
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n)
        rt_log(level, "%s (%llu more since the last such line)", line, (unsigned long long)n);
    else
        rt_log(level, "%s", line);
}

#define MAX_REFUSING 256

/* Refusals lingering now. Relaxed: a count alone, changed only by
 * read-modify-writes, which stay exact whatever the order. */
static _Atomic int refusing;

static void refusing_done(void *arg)
{
    (void)arg;
    atomic_fetch_sub_explicit(&refusing, 1, memory_order_relaxed);
}

/* Answers 503 and closes gracefully (gw__ex_refuse, lingering a second
 * each way). Plaintext listeners only: a TLS client gets no answer to
 * linger for. */
static void refuse_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    rt_defer(refusing_done, NULL);
    gw__ex_refuse(fd, false, 1000);
    rt_close(fd);
}

/* Answers 503 without waiting, for when neither a process nor a descriptor
 * can be spared for long, or closes without an answer on a TLS listener
 * (gw__ex_refuse). The caller closes fd, or turns it into the spare
 * descriptor. */
static void answer_now(bool tls, int fd)
{
    gw__ex_refuse(fd, tls, 0);
}

static void refuse_now(bool tls, int fd)
{
    answer_now(tls, fd);
    close(fd);
}

/* A refusing process that never ran (no stack for it): its client is
 * answered at once and its place among the lingering ones given back. */
static void refuse_never_ran(void *arg)
{
    refusing_done(NULL);
    refuse_now(false, (int)(intptr_t)arg);
}

/* Refuses a client with 503. A lingering refusal holds a descriptor from the
 * reserve, so at most a quarter of the reserve lingers at once; beyond,
 * refusals answer without lingering. */
static void refuse(struct gw__listener *l, int fd)
{
    atomic_fetch_add_explicit(&l->stats->refused, 1, memory_order_relaxed);
    if (l->tls) {
        refuse_now(true, fd); /* no answer, so nothing to linger for */
        return;
    }
    int most = MAX_REFUSING;
    if (gw__fds.reserve / 4 < (uint64_t)most)
        most = (int)(gw__fds.reserve / 4);
    if (atomic_fetch_add_explicit(&refusing, 1, memory_order_relaxed) >= most) {
        atomic_fetch_sub_explicit(&refusing, 1, memory_order_relaxed);
        refuse_now(false, fd); /* under a flood: no lingering */
        return;
    }
    struct rt_spawn_opts o = {.initial_call = "gw_listener:refuse", .arg_free = refuse_never_ran};
    if (rt_spawn(refuse_main, (void *)(intptr_t)fd, &o, NULL) < 0) {
        atomic_fetch_sub_explicit(&refusing, 1, memory_order_relaxed);
        refuse_now(false, fd);
    }
}

/* After a successful accept, on any listener. While another acceptor has
 * the spare descriptor out, this client may hold the very number it freed:
 * answered 503 at once, the number is free again for that acceptor. When
 * the spare is lost and no other number is free, this client's number
 * becomes the spare. Either way the client is refused (false). */
static bool spare_kept(struct gw__listener *l, int fd)
{
    int rc = gw__fds_spare_check();
    if (rc == 0)
        return true;
    atomic_fetch_add_explicit(&l->stats->refused, 1, memory_order_relaxed);
    if (rc == -EMFILE) {
        answer_now(l->tls != NULL, fd);
        gw__fds_spare_put(fd);
    } else {
        refuse_now(l->tls != NULL, fd);
    }
    return false;
}

/* At the descriptor limit accept fails before it looks at the queue
 * (EMFILE), so waiting clients would sit in the backlog unanswered while
 * the socket stays readable. First parks until a client waits (`waited`
 * false), so that accept is tried again in case descriptors were freed
 * meanwhile; when it fails again, takes the spare descriptor out to accept
 * the client, answer 503 and turn the client's number back into the spare
 * (fdlimit.c). The spare is taken out only for a client known to wait: each
 * time it is out, another thread may take its number. */
static void answer_at_limit(struct gw__listener *l, int lfd, bool *waited)
{
    if (!*waited) {
        int rc = rt_poll(lfd, RT_POLL_IN, 1000);
        if (rc == -ETIMEDOUT)
            return; /* nobody waits: accept tries again, and parks here again */
        if (rc < 0) {
            rt_sleep(100); /* cannot wait for the socket (epoll_ctl): do not spin */
            return;
        }
        *waited = true;
        return;
    }
    *waited = false;
    if (gw__fds_spare_take() < 0) {
        rt_sleep(10); /* another acceptor is answering with it */
        return;
    }
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int err = errno;
    if (fd >= 0) {
        atomic_fetch_add_explicit(&l->stats->accepted, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&l->stats->refused, 1, memory_order_relaxed);
        answer_now(l->tls != NULL, fd);
    }
    gw__fds_spare_put(fd);
    if (fd < 0 && err != EAGAIN && err != ECONNABORTED && err != EINTR)
        rt_sleep(100); /* even the spare's number was taken: wait, do not spin */
}

/* Public listeners only: whether the client fits in the descriptor budget
 * (fdlimit.c); refuses it when not. */
static bool budget_admits(struct gw__listener *l, int fd)
{
    /* Descriptors are numbered lowest free first, so this one proves at
     * least fd + 1 open: a safety net for descriptors the count does not
     * see. */
    if ((uint64_t)fd >= gw__fds.line) {
        log_limited(l, GW__LOG_FULL, RT_LOG_WARNING,
                    "listener %s: descriptor %d is among the last %llu of %llu, kept for the "
                    "admin API and 503 answers; answering new clients 503",
                    l->name, fd, (unsigned long long)gw__fds.reserve,
                    (unsigned long long)gw__fds.limit);
        refuse(l, fd);
        return false;
    }
    if (!gw__fds_client_admit()) {
        log_limited(l, GW__LOG_FULL, RT_LOG_WARNING,
                    "listener %s: %llu of %llu file descriptors for client and upstream "
                    "connections in use; answering new clients 503 to keep %llu for the admin "
                    "API and 503 answers",
                    l->name, (unsigned long long)gw__fds_counted(),
                    (unsigned long long)gw__fds.budget, (unsigned long long)gw__fds.reserve);
        refuse(l, fd);
        return false;
    }
    return true;
}

static void acceptor_main(void *arg)
{
    struct gw__acceptor *a = arg;
    struct gw__listener *l = a->lis;
    int lfd = a->fd; /* the listener's, closed with it */
    rt_set_detail("listener %s", l->name);
    bool waited = false;
    for (;;) {
        /* Relaxed: gw__listeners_handover stores it before it sends the
         * message that wakes this process, and the wait below looks at the
         * mailbox before it parks. */
        if (atomic_load_explicit(&gw.handover, memory_order_relaxed))
            break; /* a new gateway accepts from the same socket now */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = rt_accept(lfd, (struct sockaddr *)&ss, &sl, 0);
        if (fd == -ETIMEDOUT) {
            /* Nobody waits: park until a client does, or until a message
             * (a handover) comes. */
            int r = rt_poll(lfd, RT_POLL_IN | RT_POLL_MSG, RT_INFINITY);
            struct rt_msg *m;
            while (r == (int)RT_POLL_MSG && (m = rt_receive(0)))
                rt_msg_free(m);
            if (r < 0) {
                log_limited(l, GW__LOG_ACCEPT, RT_LOG_ERROR, "listener %s: waiting: %s", l->name,
                            strerror(-r));
                rt_sleep(10);
            }
            continue;
        }
        if (fd < 0) {
            /* Relaxed: a flag read alone; the shutdown that follows the
             * store makes accept fail with EINVAL whether or not the store
             * is seen yet. */
            if (atomic_load_explicit(&gw.draining, memory_order_relaxed) || fd == -EINVAL ||
                fd == -EBADF)
                return; /* listening socket shut down: drain */
            if (fd == -EMFILE || fd == -ENFILE) {
                log_limited(l, GW__LOG_LIMIT, RT_LOG_ERROR,
                            "listener %s: accept: %s; answering new clients 503 until "
                            "descriptors are free",
                            l->name, strerror(-fd));
                answer_at_limit(l, lfd, &waited);
                continue;
            }
            if (fd == -ENOBUFS || fd == -ENOMEM) {
                log_limited(l, GW__LOG_ACCEPT, RT_LOG_ERROR, "listener %s: accept: %s; pausing",
                            l->name, strerror(-fd));
                rt_sleep(100);
                continue;
            }
            log_limited(l, GW__LOG_ACCEPT, RT_LOG_ERROR, "listener %s: accept: %s", l->name,
                        strerror(-fd));
            rt_sleep(10);
            continue;
        }
        waited = false;
        /* Relaxed, as every statistic: counters read one by one, for
         * reports. */
        atomic_fetch_add_explicit(&l->stats->accepted, 1, memory_order_relaxed);
        if (!spare_kept(l, fd))
            continue;
        if (atomic_load_explicit(&l->stats->connections, memory_order_relaxed) >=
            l->max_connections) {
            refuse(l, fd);
            continue;
        }
        /* The admin listener's connections live in the reserve. */
        if (!l->admin && !budget_admits(l, fd))
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* Counted here, before the connection process exists, so that a
         * burst of accepts cannot pass the limit; the connection process
         * gives it back when it ends, and its place in the descriptor
         * budget with it. */
        atomic_fetch_add_explicit(&l->stats->connections, 1, memory_order_relaxed);
        struct gw__conn_arg cs = {.fd = fd, .lis = l};
        rt_pid pid;
        rt_atom reason;
        int rc = rt_sup_start_child_extra(l->conns_sup, &cs, sizeof cs, &pid, &reason);
        if (rc < 0) {
            atomic_fetch_sub_explicit(&l->stats->connections, 1, memory_order_relaxed);
            if (!l->admin)
                gw__fds_client_leave();
            log_limited(l, GW__LOG_START, RT_LOG_ERROR,
                        "listener %s: cannot start a connection process: %s", l->name,
                        rc == -ECHILD ? rt_atom_name(reason) : strerror(-rc));
            close(fd);
        }
    }
    /* Handed over: waits for the tree's shutdown rather than ending now,
     * so that its supervisor sees it end at the time it stops it, as the
     * other children. */
    for (;;)
        rt_msg_free(rt_receive(RT_INFINITY));
}

static int acceptor_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    struct gw__acceptor *a = *(struct gw__acceptor **)arg;
    /* High priority, with the connection supervisor (conns_sup_init):
     * each accept is a call to it, and at normal priority both would wait
     * behind every busy connection for each client accepted, one at a
     * time, while the clients queue in the backlog. Both run briefly per
     * client; the connection itself runs at normal priority. */
    struct rt_spawn_opts o = {.link = true,
                              .kind = gw__kinds.acceptor,
                              .initial_call = "gw_listener:acceptor",
                              .priority = RT_PRIORITY_HIGH};
    int rc = rt_spawn(acceptor_main, a, &o, out);
    if (rc < 0)
        *reason = RT_SYSTEM_LIMIT;
    return rc;
}

/* ---- connection supervisor ------------------------------------------------ */

static int conns_sup_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    const struct rt_child_spec spec = {
        .id = "conn",
        .start = gw__conn_start,
        .restart = RT_TEMPORARY,
        .shutdown = 1000, /* exits with `shutdown` (no crash report); drain came first */
        .type = RT_WORKER,
    };
    (void)arg;
    /* Answers the acceptors' calls without waiting behind the connections
     * (acceptor_start). */
    rt_set_priority(RT_PRIORITY_HIGH);
    flags->strategy = RT_SIMPLE_ONE_FOR_ONE;
    flags->intensity = 0;
    flags->period_s = 1;
    return rt_sup_init_child(init, &spec);
}

static int conns_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                           rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    struct gw__listener *l = *(struct gw__listener **)arg;
    struct rt_start_opts o = {.initial_call = "gw_listener:conns_sup"};
    int rc = rt_sup_start_link(conns_sup_init, l, &o, out, reason);
    if (rc == 0)
        l->conns_sup = *out;
    return rc;
}

/* ---- per-listener supervisor ---------------------------------------------- */

static int listener_sup_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    struct gw__listener *l = arg;
    unsigned na = l->nacceptors; /* at most GW__MAX_ACCEPTORS (acceptors_open) */
    if (na > GW__MAX_ACCEPTORS)
        na = GW__MAX_ACCEPTORS; /* and the compiler sees each id fits */
    flags->strategy = RT_REST_FOR_ONE;
    flags->intensity = 10;
    flags->period_s = 10;
    /* Each spec is copied as it is added, so one local spec and id do. */
    struct rt_child_spec spec = {
        .id = "conns_sup",
        .start = conns_sup_start,
        .arg = &l->self,
        .arg_size = sizeof l->self,
        .restart = RT_PERMANENT,
        .shutdown = RT_SHUTDOWN_INFINITY,
        .type = RT_SUPERVISOR,
    };
    int rc = rt_sup_init_child(init, &spec);
    for (unsigned i = 0; i < na && rc == 0; i++) {
        char id[16];
        snprintf(id, sizeof id, "acceptor_%u", i + 1);
        spec = (struct rt_child_spec){
            .id = id,
            .start = acceptor_start,
            .arg = &l->acceptors[i].self,
            .arg_size = sizeof l->acceptors[i].self,
            .restart = RT_TRANSIENT,
            .shutdown = 1000,
            .type = RT_WORKER,
        };
        rc = rt_sup_init_child(init, &spec);
    }
    return rc;
}

static int listener_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                              rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    struct gw__listener *l = *(struct gw__listener **)arg;
    char label[96];
    snprintf(label, sizeof label, "gw_listener:%s", l->name);
    struct rt_start_opts o = {.initial_call = label};
    return rt_sup_start_link(listener_sup_init, l, &o, out, reason);
}

/* The admin listener is a direct child of tandem_sup ("admin"); the public
 * ones sit under listeners_sup. `arg` NULL: listeners_sup; else the admin
 * listener's own supervisor. */
static int listeners_sup_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    (void)arg;
    int rc = 0;
    size_t k = 0;
    for (size_t i = 0; i < gw__nlisteners && k < 64 && rc == 0; i++) {
        if (gw__listeners[i].admin)
            continue;
        struct gw__listener *l = &gw__listeners[i]; /* the arg's bytes are copied */
        struct rt_child_spec spec = {
            .id = l->name,
            .start = listener_sup_start,
            .arg = &l,
            .arg_size = sizeof l,
            .restart = RT_PERMANENT,
            .shutdown = RT_SHUTDOWN_INFINITY,
            .type = RT_SUPERVISOR,
        };
        rc = rt_sup_init_child(init, &spec);
        k++;
    }
    flags->strategy = RT_ONE_FOR_ONE;
    flags->intensity = 10;
    flags->period_s = 10;
    return rc;
}

int gw__listeners_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                            rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    if (arg) {
        struct gw__listener *admin = *(struct gw__listener **)arg;
        struct gw__listener *p = admin;
        return listener_sup_start(&p, NULL, 0, out, reason);
    }
    struct rt_start_opts o = {.initial_call = "gw_listeners_sup"};
    return rt_sup_start_link(listeners_sup_init, NULL, &o, out, reason);
}

/* ---- drain ------------------------------------------------------------------ */

static int drain_visit(const struct rt_proc_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind == gw__kinds.connection)
        rt_send(info->pid, rt_msg_new(GW__MSG_DRAIN, 0));
    return 0;
}

/* Connections told to close after their next request rather than at once
 * when idle: the handover's drain (gw__listeners_handover). */
static int drain_linger_visit(const struct rt_proc_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind == gw__kinds.connection) {
        struct rt_msg *m = rt_msg_new(GW__MSG_DRAIN, 0);
        if (m) {
            m->u64 = GW__DRAIN_LINGER;
            rt_send(info->pid, m);
        }
    }
    return 0;
}

static int stop_visit(const struct rt_proc_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind == gw__kinds.acceptor)
        rt_send(info->pid, rt_msg_new(GW__MSG_DRAIN, 0));
    return 0;
}

void gw__listeners_handover(void)
{
    /* The sockets stay open and are never shut down: shutdown() acts on
     * the socket the new gateway accepts from too. Each acceptor ends
     * between two accepts; a client it accepted is served here. */
    atomic_store_explicit(&gw.handover, 1, memory_order_relaxed);
    rt_processes_foreach(stop_visit, NULL);
    rt_processes_foreach(drain_linger_visit, NULL);
}

uint64_t gw__connections_open_all(void)
{
    uint64_t n = 0;
    for (size_t i = 0; i < gw__nlisteners; i++)
        n += atomic_load(&gw__listeners[i].stats->connections);
    return n;
}

void gw__listeners_drain(void)
{
    for (size_t i = 0; i < gw__nlisteners; i++)
        if (!gw__listeners[i].admin && gw__listeners[i].fd >= 0)
            shutdown(gw__listeners[i].fd, SHUT_RDWR);
    rt_processes_foreach(drain_visit, NULL);
}
