/*
 * fdlimit.c: file descriptors — the process limit, what a configuration may
 * need, and the reserve that keeps the admin API and 503 answers working
 * when the limit is reached.
 *
 * At start the soft RLIMIT_NOFILE is raised to the hard limit: the soft one
 * is often 1,024, far below a listener's default max_connections.
 *
 * The reserve. Linux hands out the lowest free descriptor number, so a
 * socket accepted as descriptor n means n descriptors below it are open.
 * Public listeners refuse (503, then close) a connection whose descriptor is
 * at or above `line` = limit - reserve; the admin listener, upstream
 * connections and those refusals use the reserve. When even accept fails
 * (EMFILE, ENFILE), the spare descriptor kept open on /dev/null is closed
 * for a moment, which frees exactly one number to accept the waiting client
 * with, answer it 503 and close it, then opened again: a client gets an
 * answer instead of waiting in the backlog, and the acceptor parks rather
 * than spins (listener.c).
 *
 * Everything here is written by the main thread before the runtime starts
 * and read-only afterwards, except the spare descriptor (an atomic).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gw_int.h"

struct gw__fds gw__fds;

/* The spare descriptor, or: SPARE_BUSY while one acceptor has it closed to
 * answer a client, SPARE_LOST when it could not be reopened (the next
 * release tries again). */
#define SPARE_BUSY (-1)
#define SPARE_LOST (-2)
static _Atomic int spare = SPARE_LOST;

/* What the gateway holds besides connections: standard streams, the log
 * files, the route watcher, the spare, the blocking pool and a margin; per
 * scheduler its epoll set and wake-up eventfd. */
#define OWN_FIXED 32
#define OWN_PER_SCHEDULER 2

uint64_t gw_fd_reserve(uint64_t limit)
{
    uint64_t r = limit / 16;
    return r < 16 ? 16 : r > 1024 ? 1024 : r;
}

uint64_t gw_fd_limit_target(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY)
        return rl.rlim_max;
    /* An unlimited hard limit still stops at the kernel's nr_open. */
    unsigned long long nr_open = 1u << 20;
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (f) {
        if (fscanf(f, "%llu", &nr_open) != 1)
            nr_open = 1u << 20;
        fclose(f);
    }
    return nr_open;
}

unsigned gw__schedulers(const struct gw_config *cfg)
{
    /* As the runtime chooses (rt_start). */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cfg->schedulers ? cfg->schedulers : ncpu > 0 ? (unsigned)ncpu : 1;
    return n > RT_MAX_SCHEDULERS ? RT_MAX_SCHEDULERS : n;
}

bool gw_fd_budget(const struct gw_config *cfg, uint64_t limit, struct gw_fd_budget *b, char *msg,
                  size_t cap)
{
    uint64_t sched = gw__schedulers(cfg);
    struct gw_fd_budget x = {.limit = limit, .reserve = gw_fd_reserve(limit)};
    x.own = OWN_FIXED + OWN_PER_SCHEDULER * sched;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct gw_listener_config *c = &cfg->listeners[i];
        x.clients += c->max_connections;
        uint64_t na = c->acceptors ? c->acceptors : sched;
        x.own +=
            1 + (na < GW__MAX_ACCEPTORS ? na : GW__MAX_ACCEPTORS); /* socket, acceptors' dups */
    }
    if (cfg->admin.enabled)
        x.own += 2; /* its socket and acceptor; its connections live in the reserve */
    /* A client connection holds at most one upstream connection at a time
     * (a request, or a tunnel); idle pooled ones and health checks come on
     * top. */
    uint64_t busy = 0, idle = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct gw_upstream_config *u = &cfg->upstreams[i];
        busy += (uint64_t)u->ntargets * u->max_connections;
        idle += (uint64_t)u->ntargets * (u->max_idle + (u->active_health ? 1 : 0));
    }
    x.upstream = (busy < x.clients ? busy : x.clients) + idle;
    x.need = x.own + x.clients + x.upstream;
    *b = x;
    bool short_of = x.need + x.reserve > limit;
    if (short_of && cap)
        snprintf(msg, cap,
                 "listeners allow %llu client connections; with up to %llu upstream connections "
                 "and %llu of the gateway's own, that is %llu file descriptors, but the limit is "
                 "%llu and %llu of them are kept for the admin API, upstream connections and 503 "
                 "answers: raise the hard limit (ulimit -Hn, systemd LimitNOFILE=, docker "
                 "--ulimit nofile=) or lower listeners[].max_connections; until then clients "
                 "over the limit get 503",
                 (unsigned long long)x.clients, (unsigned long long)x.upstream,
                 (unsigned long long)x.own, (unsigned long long)x.need, (unsigned long long)limit,
                 (unsigned long long)x.reserve);
    return short_of;
}

int gw__fds_init(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    gw__fds.found = rl.rlim_cur;
    uint64_t target = gw_fd_limit_target();
    if (rl.rlim_cur != RLIM_INFINITY && target > rl.rlim_cur) {
        struct rlimit want = {.rlim_cur = target, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl.rlim_cur = target;
        else
            gw__fds.raise_error = errno;
    }
    gw__fds.limit = rl.rlim_cur == RLIM_INFINITY ? target : rl.rlim_cur;
    gw__fds.hard = target;
    gw__fds.reserve = gw_fd_reserve(gw__fds.limit);
    gw__fds.line = gw__fds.limit > gw__fds.reserve ? gw__fds.limit - gw__fds.reserve : 0;
    /* Opened first, so it takes a low number that stays valid whatever the
     * limit. */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    atomic_store_explicit(&spare, fd, memory_order_relaxed);
    return 0;
}

void gw__fds_report(const struct gw_config *cfg)
{
    if (gw__fds.raise_error)
        rt_log(RT_LOG_WARNING, "file descriptors: cannot raise the limit from %llu to %llu: %s",
               (unsigned long long)gw__fds.found, (unsigned long long)gw__fds.hard,
               strerror(gw__fds.raise_error));
    if (gw__fds.limit != gw__fds.found)
        rt_log(RT_LOG_INFO,
               "file descriptors: limit %llu (raised from %llu); %llu kept for the admin API, "
               "upstream connections and 503 answers",
               (unsigned long long)gw__fds.limit, (unsigned long long)gw__fds.found,
               (unsigned long long)gw__fds.reserve);
    else
        rt_log(RT_LOG_INFO,
               "file descriptors: limit %llu; %llu kept for the admin API, upstream connections "
               "and 503 answers",
               (unsigned long long)gw__fds.limit, (unsigned long long)gw__fds.reserve);
    struct gw_fd_budget b;
    char msg[640];
    if (gw_fd_budget(cfg, gw__fds.limit, &b, msg, sizeof msg))
        rt_log(RT_LOG_WARNING, "file descriptors: %s", msg);
}

void gw__fds_done(void)
{
    int fd = atomic_exchange_explicit(&spare, SPARE_LOST, memory_order_relaxed);
    if (fd >= 0)
        close(fd);
}

int gw__fds_spare_release(void)
{
    /* Relaxed: only the state is shared; the acceptor that swaps in
     * SPARE_BUSY owns the descriptor (and restoring it) alone. */
    int fd = atomic_exchange_explicit(&spare, SPARE_BUSY, memory_order_relaxed);
    if (fd == SPARE_BUSY)
        return -EAGAIN;
    if (fd >= 0)
        close(fd);
    /* SPARE_LOST: there is nothing to close, but this caller now restores
     * it, and accept may find a free number anyway. */
    return 0;
}

void gw__fds_spare_restore(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    atomic_store_explicit(&spare, fd >= 0 ? fd : SPARE_LOST, memory_order_relaxed);
}
