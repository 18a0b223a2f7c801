/*
 * fdlimit.c: file descriptors — the process limit, the budget that client
 * and upstream connections share, the reserve that keeps the admin API and
 * 503 answers working when the budget is spent, and the spare descriptor
 * for when even accept fails.
 *
 * At start the soft RLIMIT_NOFILE is raised to the hard limit: the soft one
 * is often 1,024, far below a listener's default max_connections.
 *
 * The limit is split three ways:
 *  - `own`: what the gateway holds all along (gw_fd_budget's estimate:
 *    standard streams, log files, schedulers, listening sockets and their
 *    acceptors' descriptors, one health-check probe per upstream that has
 *    active checks), plus anything the process inherited;
 *  - `reserve` (gw_fd_reserve): the admin listener's connections, 503
 *    answers and passing needs such as a route reload reading its files;
 *  - `budget`, the rest, shared by public client connections and upstream
 *    connections and counted, not inferred from descriptor numbers (the
 *    lowest free number is handed out, so a low number says nothing about
 *    how many are open above it).
 *
 * The count. A public client connection costs one descriptor, plus one for
 * the upstream connection a request on it may hold (one at a time), as long
 * as fewer than `slots` clients already have that second one: `slots` is the
 * upstreams' max_connections summed over their targets, more than which can
 * never be busy at once (upstream.c reserves a target's slot before it
 * connects or reuses a pooled connection). An idle pooled upstream
 * connection costs one. So the count is always
 *     clients + min(clients, slots) + idle,
 * which bounds what those connections really hold, and a client or a pooled
 * connection that would take it past the budget is refused: the client gets
 * 503, the upstream connection is closed rather than pooled. The clients and
 * the count share one atomic word, so that admitting is a single
 * compare-and-swap. (A connection process killed while its request still
 * runs gives its count back a moment before the request's descriptors
 * close; the reserve absorbs that.)
 *
 * The spare descriptor. When accept itself fails (EMFILE: the reserve used
 * up by admin connections, or ENFILE system-wide), the spare, held open on
 * /dev/null, is closed to free exactly one number, the waiting client is
 * accepted with it, answered 503, and its number turned back into the spare
 * at once (dup3 of a second /dev/null descriptor that is never given up, so
 * that no other thread can take the number meanwhile). Another thread may
 * still take the number between the close and the accept; the spare is then
 * lost, and comes back as soon as a number is free: the next successful
 * accept on any listener reopens it or, when no other number is free, turns
 * its client's number into the spare (that client gets 503), and every
 * connection that closes tries to reopen it.
 *
 * Everything in gw__fds is written by the main thread before the runtime
 * starts and read-only afterwards; the count and the spare are atomics.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gw_int.h"

struct gw__fds gw__fds;

/* The spare descriptor, or: SPARE_BUSY while one thread has it out (to
 * answer a client, or to reopen it), SPARE_LOST when it could not be
 * reopened for want of a free number. */
#define SPARE_BUSY (-1)
#define SPARE_LOST (-2)
static _Atomic int spare = SPARE_LOST;
/* Kept open on /dev/null from init to done, never given up: the source of
 * dup3, which turns a number the caller holds into the spare without
 * freeing it in between. */
static int null_fd = -1;

/* Public client connections (high half) and the descriptors counted for
 * client and upstream connections (low half); see the file comment. Both
 * stay below 2^32: the count never passes the budget, which is below the
 * limit, which the kernel keeps below 2^31 (nr_open). */
static _Atomic uint64_t use;
#define USE_COUNT_MASK 0xffffffffu

/* What the gateway holds besides connections: standard streams, the log
 * files, the route watcher, the spare and the descriptor it is restored
 * from, the blocking pool and a margin; per scheduler its epoll set and
 * wake-up eventfd. */
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

/* Upstream connections that can be busy at once: max_connections summed
 * over every upstream's targets. */
static uint64_t upstream_slots(const struct gw_config *cfg)
{
    uint64_t n = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        n += (uint64_t)cfg->upstreams[i].ntargets * cfg->upstreams[i].max_connections;
    return n;
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
     * (a request, or a tunnel), and no more than the targets'
     * max_connections are busy at once; idle pooled ones come on top. A
     * health-checked upstream probes its targets one after another. */
    uint64_t idle = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct gw_upstream_config *u = &cfg->upstreams[i];
        idle += (uint64_t)u->ntargets * u->max_idle;
        if (u->active_health)
            x.own++;
    }
    uint64_t slots = upstream_slots(cfg);
    x.upstream = (slots < x.clients ? slots : x.clients) + idle;
    x.need = x.own + x.clients + x.upstream;
    *b = x;
    bool short_of = x.need + x.reserve > limit;
    if (short_of && cap)
        snprintf(msg, cap,
                 "listeners allow %llu client connections; with up to %llu upstream connections "
                 "and %llu of the gateway's own, that is %llu file descriptors, but the limit is "
                 "%llu and %llu of them are kept for the admin API and 503 answers: raise the "
                 "hard limit (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=) or "
                 "lower listeners[].max_connections; until then clients over the limit get 503",
                 (unsigned long long)x.clients, (unsigned long long)x.upstream,
                 (unsigned long long)x.own, (unsigned long long)x.need, (unsigned long long)limit,
                 (unsigned long long)x.reserve);
    return short_of;
}

/* Descriptors open now beyond the three standard streams: inherited from
 * whoever started the process. 0 when /proc cannot tell. */
static uint64_t inherited(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    uint64_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 4 ? n - 4 : 0; /* the streams, and the directory being read */
}

int gw__fds_init(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    uint64_t extra = inherited();
    gw__fds.found = rl.rlim_cur;
    uint64_t target = gw_fd_limit_target();
    if (rl.rlim_cur != RLIM_INFINITY && target > rl.rlim_cur) {
        /* An unlimited hard limit is lowered to the target as well: Linux
         * refuses any RLIMIT_NOFILE above nr_open. */
        struct rlimit want = {.rlim_cur = target,
                              .rlim_max = rl.rlim_max == RLIM_INFINITY ? target : rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl.rlim_cur = target;
        else
            gw__fds.raise_error = errno;
    }
    gw__fds.limit = rl.rlim_cur == RLIM_INFINITY ? target : rl.rlim_cur;
    gw__fds.hard = target;
    gw__fds.reserve = gw_fd_reserve(gw__fds.limit);
    gw__fds.line = gw__fds.limit > gw__fds.reserve ? gw__fds.limit - gw__fds.reserve : 0;
    struct gw_fd_budget b;
    gw_fd_budget(gw.cfg, gw__fds.limit, &b, NULL, 0);
    gw__fds.own = b.own + extra;
    uint64_t kept = gw__fds.reserve + gw__fds.own;
    gw__fds.budget = gw__fds.limit > kept ? gw__fds.limit - kept : 0;
    if (gw__fds.budget > USE_COUNT_MASK)
        gw__fds.budget = USE_COUNT_MASK;
    gw__fds.slots = upstream_slots(gw.cfg);
    atomic_store_explicit(&use, 0, memory_order_relaxed); /* no other thread yet */
    /* Opened first, so that they take low numbers, valid whatever the
     * limit. */
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0)
        return -errno;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    atomic_store_explicit(&spare, fd, memory_order_relaxed); /* no other thread yet */
    return 0;
}

void gw__fds_report(const struct gw_config *cfg)
{
    if (gw__fds.raise_error)
        rt_log(RT_LOG_WARNING, "file descriptors: cannot raise the limit from %llu to %llu: %s",
               (unsigned long long)gw__fds.found, (unsigned long long)gw__fds.hard,
               strerror(gw__fds.raise_error));
    char raised[64] = "";
    if (gw__fds.limit != gw__fds.found)
        snprintf(raised, sizeof raised, " (raised from %llu)", (unsigned long long)gw__fds.found);
    rt_log(RT_LOG_INFO,
           "file descriptors: limit %llu%s; %llu for client and upstream connections, %llu kept "
           "for the admin API and 503 answers, %llu the gateway's own",
           (unsigned long long)gw__fds.limit, raised, (unsigned long long)gw__fds.budget,
           (unsigned long long)gw__fds.reserve, (unsigned long long)gw__fds.own);
    struct gw_fd_budget b;
    char msg[640];
    if (gw_fd_budget(cfg, gw__fds.limit, &b, msg, sizeof msg))
        rt_log(RT_LOG_WARNING, "file descriptors: %s", msg);
}

void gw__fds_done(void)
{
    /* Relaxed: the runtime has stopped; this is the only thread left. */
    int fd = atomic_exchange_explicit(&spare, SPARE_LOST, memory_order_relaxed);
    if (fd >= 0)
        close(fd);
    if (null_fd >= 0)
        close(null_fd);
    null_fd = -1;
}

/* ---- the count -------------------------------------------------------------- */

/* The count's memory order is relaxed throughout: the word is the only state
 * it guards, and read-modify-writes of one atomic are ordered among
 * themselves whatever the order chosen. */

bool gw__fds_client_admit(void)
{
    uint64_t w = atomic_load_explicit(&use, memory_order_relaxed);
    for (;;) {
        uint64_t clients = w >> 32, count = w & USE_COUNT_MASK;
        uint64_t cost = 1 + (clients < gw__fds.slots ? 1 : 0);
        if (count + cost > gw__fds.budget)
            return false;
        uint64_t next = (clients + 1) << 32 | (count + cost);
        if (atomic_compare_exchange_weak_explicit(&use, &w, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

void gw__fds_client_leave(void)
{
    uint64_t w = atomic_load_explicit(&use, memory_order_relaxed);
    for (;;) {
        uint64_t clients = w >> 32, count = w & USE_COUNT_MASK;
        if (clients == 0)
            return; /* not admitted: a caller's bug, but the count stays sound */
        uint64_t cost = 1 + (clients - 1 < gw__fds.slots ? 1 : 0);
        uint64_t next = (clients - 1) << 32 | (count - cost);
        if (atomic_compare_exchange_weak_explicit(&use, &w, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

bool gw__fds_idle_admit(void)
{
    uint64_t w = atomic_load_explicit(&use, memory_order_relaxed);
    for (;;) {
        if ((w & USE_COUNT_MASK) + 1 > gw__fds.budget)
            return false;
        if (atomic_compare_exchange_weak_explicit(&use, &w, w + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

void gw__fds_idle_leave(void)
{
    /* The count includes this connection, so the low half does not borrow
     * from the high one. */
    atomic_fetch_sub_explicit(&use, 1, memory_order_relaxed);
}

uint64_t gw__fds_counted(void)
{
    return atomic_load_explicit(&use, memory_order_relaxed) & USE_COUNT_MASK;
}

/* ---- the spare descriptor ----------------------------------------------------- */

/* The spare's memory order is relaxed throughout: the word holds a number
 * and two states, and whoever swaps in SPARE_BUSY owns the descriptor (and
 * restoring it) alone; no other memory is published through it. */

int gw__fds_spare_take(void)
{
    int fd = atomic_exchange_explicit(&spare, SPARE_BUSY, memory_order_relaxed);
    if (fd == SPARE_BUSY)
        return -EAGAIN;
    if (fd >= 0)
        close(fd);
    /* SPARE_LOST: nothing to close, but this caller now restores it, and
     * accept may find a free number anyway. */
    return 0;
}

void gw__fds_spare_put(int fd)
{
    if (fd >= 0 && dup3(null_fd, fd, O_CLOEXEC) == fd) {
        atomic_store_explicit(&spare, fd, memory_order_relaxed);
        return;
    }
    if (fd >= 0)
        close(fd);
    /* A fresh open rather than a dup of null_fd, so that every reopening
     * makes a new open file: whether the spare was given up shows from
     * outside (kcmp(2); the integration test looks). */
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    atomic_store_explicit(&spare, fd >= 0 ? fd : SPARE_LOST, memory_order_relaxed);
}

int gw__fds_spare_check(void)
{
    int s = atomic_load_explicit(&spare, memory_order_relaxed);
    if (s >= 0)
        return 0;
    if (s == SPARE_BUSY)
        return -EBUSY;
    if (!atomic_compare_exchange_strong_explicit(&spare, &s, SPARE_BUSY, memory_order_relaxed,
                                                 memory_order_relaxed))
        return s >= 0 ? 0 : -EBUSY;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        atomic_store_explicit(&spare, fd, memory_order_relaxed);
        return 0;
    }
    return -EMFILE; /* the caller holds it now: gw__fds_spare_put */
}

void gw__fds_spare_retry(void)
{
    int s = SPARE_LOST;
    if (!atomic_compare_exchange_strong_explicit(&spare, &s, SPARE_BUSY, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    gw__fds_spare_put(-1);
}
