/*
 * upgrade.c: zero-downtime binary upgrade, both sides (upgrade.h).
 *
 * The old gateway's main thread forks and execs the new binary (the path
 * this one was started from, looked up again, so that a binary replaced on
 * disk or a moved symbolic link is followed; or the path the admin API was
 * given) with this one's arguments. Its listening sockets are inherited:
 * they are close-on-exec here, and the child clears the flag on exactly
 * those (and on the pipe's write end) between fork and exec. The sockets
 * are shared, not copied: both gateways accept from the same queue while
 * both run, so no client is refused during the overlap; the old one only
 * stops taking from the queue once the new one is ready.
 *
 * Nothing the new gateway does before its "ready" may take the sockets
 * away from the old one: a listening socket is shut down only by a drain
 * (SIGTERM), which a gateway reaches only after it started, and the old
 * one stops a new one that is late or failed with SIGKILL, never SIGTERM.
 */
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gw_int.h"
#include "workflow/workflow.h"

extern char **environ;

/* ---- the new gateway's side ------------------------------------------------ */

struct inherited {
    char key[3 * GW__UPGRADE_NAME_MAX + 1]; /* "@admin", or a name encoded (name_encode) */
    int fd;
    bool taken;
};

static struct inherited inh[GW__UPGRADE_MAX_FDS];
static size_t ninh;
static int ready_fd = -1;

/* The command line, for the next upgrade. */
static char **cmd_argv;
/* argv[0] made absolute against the directory this gateway started in
 * (symbolic links kept, so that the next upgrade follows them again); a
 * name without '/' is looked up in PATH at each upgrade instead. */
static char cmd_path[PATH_MAX];

/* A descriptor number from the environment: a small non-negative integer
 * that is open in this process. */
static int fd_of(const char *s)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 3 || v > INT_MAX)
        return -1;
    if (fcntl((int)v, F_GETFD) < 0)
        return -1;
    return (int)v;
}

/* A listener's name as the variable carries it: every byte but letters,
 * digits and "._:-[]" as %XX, so that ',' and '=' separate, and "@admin"
 * (the admin listener) is no public listener's key. Keys are compared as
 * encoded, never decoded. */
static int name_encode(const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                     (*c >= '0' && *c <= '9') || strchr("._:-[]", *c);
        if (n + (plain ? 1 : 3) >= cap)
            return -E2BIG;
        if (plain) {
            out[n++] = (char)*c;
        } else {
            out[n++] = '%';
            out[n++] = hex[*c >> 4];
            out[n++] = hex[*c & 15];
        }
    }
    out[n] = 0;
    return 0;
}

static void inherit_fds(const char *list)
{
    char buf[GW__UPGRADE_ENV_MAX];
    if (strlen(list) >= sizeof buf) {
        fprintf(stderr, "tandem: %s is too long; no socket is inherited\n", GW__UPGRADE_FDS_ENV);
        return;
    }
    strcpy(buf, list);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strrchr(item, '=');
        int fd = eq ? fd_of(eq + 1) : -1;
        if (!eq || fd < 0 || ninh >= GW__UPGRADE_MAX_FDS ||
            (size_t)(eq - item) >= sizeof inh[0].key) {
            fprintf(stderr, "tandem: %s: \"%s\" is not NAME=FD with FD open; left alone\n",
                    GW__UPGRADE_FDS_ENV, item);
            continue;
        }
        /* A number listed twice, or the readiness pipe's, is one
         * descriptor: adopted once, else the copy no listener takes would
         * be closed under the one that did (or under the pipe). */
        bool seen = fd == ready_fd;
        for (size_t i = 0; i < ninh && !seen; i++)
            seen = inh[i].fd == fd;
        if (seen) {
            fprintf(stderr, "tandem: %s: \"%s\": descriptor %d listed twice; left alone\n",
                    GW__UPGRADE_FDS_ENV, item, fd);
            continue;
        }
        struct inherited *h = &inh[ninh++];
        memcpy(h->key, item, (size_t)(eq - item));
        h->key[eq - item] = 0;
        h->fd = fd;
        h->taken = false;
        /* Close-on-exec again: only the next upgrade hands it on. */
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
}

void gw__upgrade_init(int argc, char **argv)
{
    (void)argc;
    cmd_argv = argv;
    const char *a0 = argv && argv[0] ? argv[0] : "tandem";
    if (strchr(a0, '/') && a0[0] != '/') {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) &&
            (size_t)snprintf(cmd_path, sizeof cmd_path, "%s/%s", cwd, a0) >= sizeof cmd_path)
            cmd_path[0] = 0;
    } else {
        snprintf(cmd_path, sizeof cmd_path, "%s", a0);
    }
    /* The pipe first: a socket listed at its number is refused. */
    const char *rfd = getenv(GW__UPGRADE_READY_ENV);
    if (rfd) {
        ready_fd = fd_of(rfd);
        if (ready_fd >= 0)
            fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
    }
    /* The workflows wait for the old gateway to exit before taking over
     * what it left unfinished (service.c). */
    const char *opid = getenv(GW__UPGRADE_PID_ENV);
    if (opid && ready_fd >= 0) {
        char *end = NULL;
        long v = strtol(opid, &end, 10);
        const char *owner = getenv(GW__UPGRADE_WF_OWNER_ENV);
        if (owner && strlen(owner) > GW__UPGRADE_OWNER_MAX)
            owner = NULL;
        if (end != opid && !*end && v > 1 && v <= INT_MAX)
            gw_workflows_upgraded_from((int)v, owner);
    }
    const char *list = getenv(GW__UPGRADE_FDS_ENV);
    if (list)
        inherit_fds(list);
    /* This gateway's own children (the next upgrade) get them anew. */
    unsetenv(GW__UPGRADE_FDS_ENV);
    unsetenv(GW__UPGRADE_READY_ENV);
    unsetenv(GW__UPGRADE_PID_ENV);
    unsetenv(GW__UPGRADE_WF_OWNER_ENV);
}

/* Whether the listening socket fd is bound where `a` asks: the same
 * address as one of the host's resolutions, and the same port unless 0 was
 * asked for (the port the old gateway was given is the one to keep). */
static bool bound_at(int fd, const struct gw_address *a)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return false;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(a->host, NULL, &hints, &res) != 0)
        return false;
    bool same = false;
    for (struct addrinfo *ai = res; ai && !same; ai = ai->ai_next) {
        if (ai->ai_family != ss.ss_family)
            continue;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *x = (const void *)&ss, *y = (const void *)ai->ai_addr;
            same = x->sin_addr.s_addr == y->sin_addr.s_addr &&
                   (a->port == 0 || ntohs(x->sin_port) == a->port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *x = (const void *)&ss, *y = (const void *)ai->ai_addr;
            same = memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 &&
                   (a->port == 0 || ntohs(x->sin6_port) == a->port);
        }
    }
    freeaddrinfo(res);
    return same;
}

static bool listening(int fd)
{
    int on = 0;
    socklen_t ol = sizeof on;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) == 0 && on;
}

int gw__upgrade_take(const char *name, bool admin, const struct gw_address *a)
{
    char key[sizeof inh[0].key] = "@admin";
    if (!admin && name_encode(name, key, sizeof key) < 0)
        return -1;
    struct inherited *h = NULL;
    for (size_t i = 0; i < ninh && !h; i++)
        if (!inh[i].taken && strcmp(inh[i].key, key) == 0 && listening(inh[i].fd) &&
            bound_at(inh[i].fd, a))
            h = &inh[i];
    /* A listener renamed at the same address: its socket by the address
     * (a fixed port only: port 0 takes whatever it is given). */
    for (size_t i = 0; i < ninh && !h && a->port != 0; i++)
        if (!inh[i].taken && listening(inh[i].fd) && bound_at(inh[i].fd, a))
            h = &inh[i];
    if (!h)
        return -1; /* opened anew; an address still held fails there, said so */
    /* As the sockets this gateway opens: an acceptor blocked in accept()
     * would hold its scheduler. A gateway hands its sockets over so
     * already; a socket from another process may come blocking. */
    int fl = fcntl(h->fd, F_GETFL);
    if (fl < 0 || fcntl(h->fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    h->taken = true;
    return h->fd;
}

/* Sockets taken over, for the line that says so once ready. */
static size_t adopted;

void gw__upgrade_close_unclaimed(void)
{
    for (size_t i = 0; i < ninh; i++) {
        if (inh[i].taken)
            adopted++;
        else
            close(inh[i].fd);
    }
    ninh = 0;
}

void gw__upgrade_notify(const char *state)
{
    /* systemd's readiness protocol (sd_notify(3)), without libsystemd: one
     * datagram to the socket NOTIFY_SOCKET names ('@': abstract). */
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@'))
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof sa.sun_path)
        return;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    char msg[128];
    int len = snprintf(msg, sizeof msg, "%s\nMAINPID=%ld", state, (long)getpid());
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (sendto(fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&sa, sl) < 0)
        rt_log(RT_LOG_WARNING, "NOTIFY_SOCKET %s: %s", path, strerror(errno));
    close(fd);
}

void gw__upgrade_report(const char *why)
{
    if (ready_fd < 0)
        return;
    if (!why)
        rt_log(RT_LOG_INFO, "upgrade: ready, accepting on %zu listening sockets of pid %ld",
               adopted, (long)getppid());
    char line[GW__UPGRADE_MSG_MAX];
    int n;
    if (why)
        n = snprintf(line, sizeof line, "error %s", why);
    else
        n = snprintf(line, sizeof line, "ready %ld", (long)getpid());
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' '; /* one line: the reason may hold several */
    line[n++] = '\n';
    ssize_t w = write(ready_fd, line, (size_t)n);
    (void)w; /* the old gateway gone: nobody to tell */
    close(ready_fd);
    ready_fd = -1;
}

/* ---- the old gateway's side ------------------------------------------------ */

/* One upgrade at a time, asked by SIGUSR2 or the admin API. `asked` is set
 * by an admin request (with its binary) before it raises SIGUSR2; the main
 * thread takes it, runs the upgrade and publishes the outcome as
 * generation `done`. */
static pthread_mutex_t ulock = PTHREAD_MUTEX_INITIALIZER;
static bool asked, running;
static char asked_binary[PATH_MAX];
static uint64_t done;
static int last_rc;
static int last_pid;
static char last_why[GW__UPGRADE_MSG_MAX];

/* The executable to start: `binary` when given, else cmd_path, a bare
 * name looked up in PATH now. */
static int resolve(const char *binary, char *out, size_t cap)
{
    const char *p = binary && *binary ? binary : cmd_path;
    if (!*p)
        return -ENOENT;
    if (strchr(p, '/')) {
        if ((size_t)snprintf(out, cap, "%s", p) >= cap)
            return -ENAMETOOLONG;
        return access(out, X_OK) == 0 ? 0 : -errno;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(out, cap, "%.*s/%s", (int)n, path, p) < cap &&
            access(out, X_OK) == 0)
            return 0;
        path += n;
        if (*path == ':')
            path++;
    }
    return -ENOENT;
}

/* "NAME=FD,..." of every listening socket: public listeners by name
 * (name_encode), the admin listener as "@admin". */
static int fds_env(char *out, size_t cap, int *fds, size_t *nfds)
{
    size_t len = (size_t)snprintf(out, cap, "%s=", GW__UPGRADE_FDS_ENV);
    *nfds = 0;
    for (size_t i = 0; i < gw__nlisteners && *nfds < GW__UPGRADE_MAX_FDS; i++) {
        const struct gw__listener *l = &gw__listeners[i];
        char name[3 * GW__UPGRADE_NAME_MAX + 1] = "@admin";
        if (l->fd < 0 || (!l->admin && name_encode(l->name ? l->name : "", name, sizeof name) < 0))
            continue;
        int n = snprintf(out + len, cap - len, "%s%s=%d", *nfds ? "," : "", name, l->fd);
        if (n < 0 || (size_t)n >= cap - len)
            return -E2BIG;
        len += (size_t)n;
        fds[(*nfds)++] = l->fd;
    }
    return 0;
}

static bool is_var(const char *e, const char *name)
{
    size_t l = strlen(name);
    return strncmp(e, name, l) == 0 && e[l] == '=';
}

/* The environment for the new gateway: this one's without the variables
 * of a handover, then theirs (owner_var "" when there is none). */
static char **child_env(char *fds_var, char *ready_var, char *pid_var, char *owner_var)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 5, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = environ[i];
        if (is_var(e, GW__UPGRADE_FDS_ENV) || is_var(e, GW__UPGRADE_READY_ENV) ||
            is_var(e, GW__UPGRADE_PID_ENV) || is_var(e, GW__UPGRADE_WF_OWNER_ENV))
            continue;
        env[k++] = environ[i];
    }
    env[k++] = fds_var;
    env[k++] = ready_var;
    env[k++] = pid_var;
    if (*owner_var)
        env[k++] = owner_var;
    env[k] = NULL;
    return env;
}

/* In the child between fork and exec: async-signal-safe calls only. */
static _Noreturn void child_exec(const char *path, char **env, const int *fds, size_t nfds, int wfd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* this gateway blocks its signals */
    signal(SIGPIPE, SIG_DFL);
    for (size_t i = 0; i < nfds; i++)
        fcntl(fds[i], F_SETFD, 0);
    fcntl(wfd, F_SETFD, 0);
    execve(path, cmd_argv, env);
    /* "error exec ERRNO": the parent says what it means. */
    char msg[32] = "error exec ";
    size_t n = strlen(msg);
    int e = errno, digits[12], nd = 0;
    do {
        digits[nd++] = e % 10;
        e /= 10;
    } while (e && nd < 12);
    while (nd > 0)
        msg[n++] = (char)('0' + digits[--nd]);
    msg[n++] = '\n';
    ssize_t w = write(wfd, msg, n);
    (void)w;
    _exit(127);
}

/* Waits up to ms for the child to end; its status, or -1 when it has not. */
static int reap(pid_t pid, int ms)
{
    for (int waited = 0;; waited += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 || waited >= ms)
            return -1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void exit_text(int st, char *why, size_t cap)
{
    if (st < 0)
        snprintf(why, cap, "the new gateway closed its readiness pipe without an answer");
    else if (WIFEXITED(st))
        snprintf(why, cap, "the new gateway exited with status %d before it was ready",
                 WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(why, cap, "the new gateway was killed by signal %d before it was ready",
                 WTERMSIG(st));
    else
        snprintf(why, cap, "the new gateway ended before it was ready");
}

/* Whether SIGTERM or SIGINT waits for the main thread (every thread blocks
 * them; gateway.c takes them with sigtimedwait). */
static bool stop_pending(void)
{
    sigset_t set;
    return sigpending(&set) == 0 &&
           (sigismember(&set, SIGTERM) == 1 || sigismember(&set, SIGINT) == 1);
}

/* Reads the new gateway's one line, at most until `end` (ms). 1 with the
 * line in buf, 0 at end of file (nothing, or no newline), -ETIMEDOUT, or
 * -ECANCELED when SIGTERM or SIGINT came meanwhile: a gateway asked to
 * stop does not hand its sockets to a new one, and does not wait for it
 * before it drains. */
static int read_answer(int rfd, uint64_t end, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        if (stop_pending())
            return -ECANCELED;
        uint64_t now = rt_now_ms();
        if (now >= end)
            return -ETIMEDOUT;
        uint64_t left = end - now;
        if (left > 50)
            left = 50; /* the signal is looked for between waits */
        struct pollfd p = {.fd = rfd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue; /* the deadline decides */
        ssize_t n = read(rfd, buf + len, cap - 1 - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = 0;
        char *nl = strchr(buf, '\n');
        if (nl) {
            *nl = 0;
            return 1;
        }
        if (len >= cap - 1)
            return 1; /* a line that long: take what came */
    }
}

/* Starts `binary` and waits for its answer. 0 with *new_pid, or a negative
 * errno with the reason in why. */
static int upgrade_to(const char *binary, int *new_pid, char *why, size_t cap)
{
    int rc = 0;
    int pfd[2] = {-1, -1};
    char **env = NULL;
    pid_t pid = -1;
    char path[PATH_MAX];
    char fds_var[GW__UPGRADE_ENV_MAX];
    char ready_var[64];
    char pid_var[64];
    char owner_var[sizeof GW__UPGRADE_WF_OWNER_ENV + GW__UPGRADE_OWNER_MAX + 1];
    int fds[GW__UPGRADE_MAX_FDS];
    size_t nfds = 0;

    rc = resolve(binary, path, sizeof path);
    if (rc < 0) {
        snprintf(why, cap, "cannot run %.900s: %s", binary && *binary ? binary : cmd_path,
                 strerror(-rc));
        goto out;
    }
    rc = fds_env(fds_var, sizeof fds_var, fds, &nfds);
    if (rc < 0) {
        snprintf(why, cap, "too many listeners to hand over");
        goto out;
    }
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        rc = -errno;
        snprintf(why, cap, "pipe: %s", strerror(-rc));
        goto out;
    }
    snprintf(ready_var, sizeof ready_var, "%s=%d", GW__UPGRADE_READY_ENV, pfd[1]);
    /* The new gateway's workflows wait for this one to exit before taking
     * over its unfinished instances (service.c). */
    snprintf(pid_var, sizeof pid_var, "%s=%ld", GW__UPGRADE_PID_ENV, (long)getpid());
    owner_var[0] = 0;
    if (gw_workflows_enabled(gw.cfg))
        snprintf(owner_var, sizeof owner_var, "%s=%s", GW__UPGRADE_WF_OWNER_ENV,
                 gw_workflows_owner());
    env = child_env(fds_var, ready_var, pid_var, owner_var);
    if (!env) {
        rc = -ENOMEM;
        snprintf(why, cap, "out of memory");
        goto out;
    }
    rt_log(RT_LOG_INFO, "upgrade: starting %s", path);
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        snprintf(why, cap, "fork: %s", strerror(-rc));
        goto out;
    }
    if (pid == 0)
        child_exec(path, env, fds, nfds, pfd[1]);
    close(pfd[1]);
    pfd[1] = -1;

    char line[GW__UPGRADE_MSG_MAX];
    int r = read_answer(pfd[0], rt_now_ms() + gw.cfg->upgrade_timeout_ms, line, sizeof line);
    if (r == 1 && strncmp(line, "ready ", 6) == 0) {
        *new_pid = (int)pid;
        rc = 0;
        goto out;
    }
    rc = -ECHILD;
    if (r == -ECANCELED) {
        rc = -ECANCELED;
        kill(pid, SIGKILL);
        reap(pid, 5000);
        snprintf(why, cap,
                 "SIGTERM or SIGINT came while the new gateway (pid %ld) was starting; it was "
                 "killed and this gateway drains",
                 (long)pid);
    } else if (r == -ETIMEDOUT) {
        rc = -ETIMEDOUT;
        kill(pid, SIGKILL);
        reap(pid, 5000);
        snprintf(why, cap, "the new gateway (pid %ld) was not ready within %u ms; it was killed",
                 (long)pid, gw.cfg->upgrade_timeout_ms);
    } else if (r == 1 && strncmp(line, "error exec ", 11) == 0) {
        reap(pid, 5000);
        snprintf(why, cap, "cannot execute %.900s: %s", path, strerror(atoi(line + 11)));
    } else if (r == 1 && strncmp(line, "error ", 6) == 0) {
        /* It said why; it exits by itself, or is made to. */
        if (reap(pid, 5000) < 0) {
            kill(pid, SIGKILL);
            reap(pid, 5000);
        }
        snprintf(why, cap, "the new gateway did not start: %.960s", line + 6);
    } else {
        int st = reap(pid, 5000);
        if (st < 0) {
            kill(pid, SIGKILL);
            reap(pid, 5000);
        }
        exit_text(st, why, cap);
    }
out:
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    free(env);
    return rc;
}

bool gw__upgrade_run(void)
{
    char binary[PATH_MAX] = "";
    pthread_mutex_lock(&ulock);
    if (asked)
        memcpy(binary, asked_binary, sizeof binary);
    asked = false;
    running = true;
    pthread_mutex_unlock(&ulock);

    int new_pid = 0;
    char why[GW__UPGRADE_MSG_MAX] = "";
    uint64_t t0 = rt_now_ms();
    int rc = upgrade_to(binary, &new_pid, why, sizeof why);
    if (rc == 0)
        rt_log(RT_LOG_INFO,
               "upgrade: the new gateway (pid %d) is ready after %llu ms; this one (pid %ld) "
               "stops accepting and drains",
               new_pid, (unsigned long long)(rt_now_ms() - t0), (long)getpid());
    else if (rc == -ECANCELED)
        rt_log(RT_LOG_WARNING, "upgrade abandoned: %s", why);
    else
        rt_log(RT_LOG_ERROR, "upgrade failed, this gateway keeps serving: %s", why);

    pthread_mutex_lock(&ulock);
    running = false;
    last_rc = rc;
    last_pid = new_pid;
    memcpy(last_why, why, sizeof last_why);
    done++;
    pthread_mutex_unlock(&ulock);
    return rc == 0;
}

int gw__upgrade_request(const char *binary, int *new_pid, char *why, size_t cap)
{
    if (binary && *binary && (binary[0] != '/' || strlen(binary) >= PATH_MAX)) {
        snprintf(why, cap, "\"binary\" takes an absolute path (at most %d bytes)", PATH_MAX - 1);
        return -EINVAL;
    }
    /* Draining, the main thread no longer waits for the signal. */
    if (atomic_load_explicit(&gw.draining, memory_order_relaxed)) {
        snprintf(why, cap, "the gateway is draining");
        return -EBUSY;
    }
    pthread_mutex_lock(&ulock);
    if (asked || running) {
        pthread_mutex_unlock(&ulock);
        snprintf(why, cap, "an upgrade is already under way");
        return -EBUSY;
    }
    asked = true;
    snprintf(asked_binary, sizeof asked_binary, "%s", binary ? binary : "");
    uint64_t mine = done + 1;
    pthread_mutex_unlock(&ulock);
    kill(getpid(), SIGUSR2); /* the main thread waits for it (gateway.c) */

    /* The main thread answers within the readiness deadline plus the time
     * to stop a failed child (reap: 5 s twice at most). */
    uint64_t end = rt_now_ms() + gw.cfg->upgrade_timeout_ms + 15000;
    for (;;) {
        pthread_mutex_lock(&ulock);
        bool over = done >= mine;
        int rc = last_rc;
        if (over) {
            *new_pid = last_pid;
            snprintf(why, cap, "%s", last_why);
        }
        pthread_mutex_unlock(&ulock);
        if (over)
            return rc;
        if (rt_now_ms() >= end) {
            snprintf(why, cap, "no outcome from the upgrade in time");
            return -ETIMEDOUT;
        }
        rt_sleep(20);
    }
}
