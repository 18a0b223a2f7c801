/*
 * main.c: tandem-ledger, the bank of examples/ledger.
 *
 *   tandem-ledger --listen 127.0.0.1:PORT --db PATH [--schedulers N]
 *                 [--request-timeout-ms MS] [--fail-after-commit RATE] [--delay-ms MS]
 *
 * The main thread parses the command line, opens the database and the
 * listening socket (so that a bad path or a taken port fails at once, exit
 * 1), starts the runtime and a root process that starts the application's
 * supervisor, then waits for SIGTERM or SIGINT. The root process stops the
 * supervision tree in order (the acceptor and its connections first, then
 * the accounts) and the program exits 0. If the tree dies by itself (a
 * storage that keeps failing), the program exits 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ledger.h"
#include "rt/supervisor.h"

struct ledger_app ledger_app = {.lfd = -1, .request_timeout_ms = 30000};

static void job_unref(void *arg)
{
    struct ledger_job *j = arg;
    /* acq_rel: the last owner sees everything the other wrote. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1)
        j->free_fn(j);
}

static intptr_t blocking_tramp(void *arg)
{
    struct ledger_job *j = arg;
    int rc = j->fn(j);
    job_unref(j); /* the worker's reference */
    return rc;
}

int ledger_blocking(struct ledger_job *j)
{
    atomic_store_explicit(&j->refs, 1, memory_order_relaxed);
    j->defer = rt_defer(job_unref, j);
    if (!j->defer)
        return -ENOMEM;
    atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
    intptr_t result = 0;
    int rc = rt_blocking(blocking_tramp, j, &result);
    if (rc < 0) {
        job_unref(j); /* never queued: the worker's reference is ours to drop */
        return rc;
    }
    return (int)result;
}

void ledger_job_put(struct ledger_job *j)
{
    if (!j)
        return;
    if (j->defer)
        rt_undefer(j->defer, true);
    else
        job_unref(j);
}

/* ---- the root process ------------------------------------------------------ */

#define MSG_STOP 1u

static pthread_mutex_t root_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t root_cond = PTHREAD_COND_INITIALIZER;
static int root_state; /* 0 starting, 1 running, -1 failed; under root_lock */
static int exit_code;  /* under root_lock */

static void set_root_state(int state, int code)
{
    pthread_mutex_lock(&root_lock);
    root_state = state;
    exit_code = code;
    pthread_cond_broadcast(&root_cond);
    pthread_mutex_unlock(&root_lock);
}

static int app_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    const struct rt_child_spec specs[] = {
        {.id = "accounts", .start = ledger_accounts_start, .type = RT_SUPERVISOR},
        {.id = "acceptor", .start = ledger_http_start, .shutdown = 5000},
    };
    /* rest_for_one: if the accounts' supervisor goes, the acceptor (whose
     * connections talk to accounts) is restarted after it. */
    *flags = (struct rt_sup_flags){RT_REST_FOR_ONE, 3, 5, RT_AUTO_NEVER};
    return rt_sup_init_children(init, specs, sizeof specs / sizeof specs[0]);
}

static void root_main(void *arg)
{
    rt_trap_exit(true);
    rt_pid sup = 0;
    rt_atom why = RT_NORMAL;
    struct rt_start_opts o = {.name = "ledger_sup"};
    if (rt_sup_start_link(app_init, NULL, &o, &sup, &why) != 0) {
        fprintf(stderr, "tandem-ledger: cannot start: %s\n", rt_atom_name(why));
        set_root_state(-1, 1);
        return;
    }
    set_root_state(1, 0);
    for (;;) {
        struct rt_msg *m = rt_receive(RT_INFINITY);
        if (m->type == MSG_STOP) {
            rt_msg_free(m);
            rt_exit_signal(sup, RT_SHUTDOWN);
            continue;
        }
        if (m->type == RT_MSG_EXIT && m->from == sup) {
            rt_atom reason = (rt_atom)m->u64;
            rt_msg_free(m);
            if (!rt_reason_is_shutdown(reason)) {
                fprintf(stderr, "tandem-ledger: the application stopped: %s\n",
                        rt_atom_name(reason));
                set_root_state(-1, 1);
                kill(getpid(), SIGTERM); /* wake the main thread */
            }
            return;
        }
        rt_msg_free(m);
    }
}

/* ---- command line ----------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: tandem-ledger --listen HOST:PORT --db PATH [--schedulers N]\n"
                    "                     [--request-timeout-ms MS] [--fail-after-commit RATE]\n"
                    "                     [--delay-ms MS]\n");
}

static int parse_listen(const char *text, struct sockaddr_in *sa)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || colon - text > 63)
        return -EINVAL;
    char host[64];
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -EINVAL;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

static int open_listener(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 || listen(fd, 512) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *listen_at = NULL, *db = NULL;
    unsigned schedulers = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (strcmp(a, "--listen") == 0) {
            listen_at = v;
        } else if (strcmp(a, "--db") == 0) {
            db = v;
        } else if (strcmp(a, "--schedulers") == 0) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > RT_MAX_SCHEDULERS) {
                fprintf(stderr, "tandem-ledger: --schedulers: 1..%d\n", RT_MAX_SCHEDULERS);
                return 2;
            }
            schedulers = (unsigned)n;
        } else if (strcmp(a, "--fail-after-commit") == 0) {
            double r = strtod(v, &end);
            if (*end || !(r >= 0 && r <= 1)) {
                fprintf(stderr, "tandem-ledger: --fail-after-commit: a rate in 0..1\n");
                return 2;
            }
            ledger_app.faults.fail_after_commit = r;
        } else if (strcmp(a, "--request-timeout-ms") == 0) {
            long n = strtol(v, &end, 10);
            if (*end || n < 100 || n > 3600000) {
                fprintf(stderr, "tandem-ledger: --request-timeout-ms: 100..3600000\n");
                return 2;
            }
            ledger_app.request_timeout_ms = (unsigned)n;
        } else if (strcmp(a, "--delay-ms") == 0) {
            long n = strtol(v, &end, 10);
            if (*end || n < 0 || n > 600000) {
                fprintf(stderr, "tandem-ledger: --delay-ms: 0..600000\n");
                return 2;
            }
            ledger_app.faults.delay_ms = (unsigned)n;
        } else {
            usage();
            return 2;
        }
        i++;
    }
    struct sockaddr_in sa;
    if (!listen_at || !db || parse_listen(listen_at, &sa) < 0) {
        usage();
        return 2;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread started later inherits it */
    signal(SIGPIPE, SIG_IGN);
    json_object_seed(0); /* before any thread: jansson's hash seed */

    int code = 1;
    if (ledger_store_open(db, &ledger_app.store) < 0)
        return 1;
    ledger_app.lfd = open_listener(&sa);
    if (ledger_app.lfd < 0) {
        fprintf(stderr, "tandem-ledger: %s: %s\n", listen_at, strerror(-ledger_app.lfd));
        goto out_store;
    }

    struct rt_config rc;
    rt_config_default(&rc);
    rc.schedulers = schedulers;
    if (rt_start(&rc) < 0) {
        fprintf(stderr, "tandem-ledger: cannot start the runtime\n");
        goto out_listener;
    }
    rt_pid root = 0;
    struct rt_spawn_opts ro = {.initial_call = "ledger:root"};
    if (rt_spawn(root_main, NULL, &ro, &root) < 0)
        goto out_runtime;
    pthread_mutex_lock(&root_lock);
    while (root_state == 0)
        pthread_cond_wait(&root_cond, &root_lock);
    int state = root_state;
    pthread_mutex_unlock(&root_lock);
    if (state < 0)
        goto out_runtime;
    fprintf(stderr, "tandem-ledger: listening on %s, database %s\n", listen_at, db);

    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    rt_send(root, rt_msg_new(MSG_STOP, 0));
    rt_join(root, 30000, NULL);
    rt_wait_idle(5000);
    pthread_mutex_lock(&root_lock);
    code = exit_code;
    pthread_mutex_unlock(&root_lock);
out_runtime:
    if (rt_stop() != 0 && code == 0)
        code = 1; /* something did not stop by itself */
out_listener:
    close(ledger_app.lfd);
out_store:
    ledger_store_close(ledger_app.store);
    return code;
}
