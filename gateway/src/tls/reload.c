/*
 * reload.c: reloading the TLS listeners' certificates without a restart,
 * and the record of it that the admin API shows (tls.h).
 *
 * Three ways in, one way through. The directory watcher (inotify), SIGHUP
 * (gateway.c, with the route reload) and POST /admin/tls/reload all end in
 * the reloader, a gen_server child of tandem_sup registered as
 * GW_TLS_RELOADER_NAME (started only when a listener speaks TLS). It runs one reload at a time: the
 * listeners' files are read and validated on the blocking pool (no scheduler waits on a disk or on
 * a key check), each by gw_tls_listener_reload (server.c), which publishes a new set only when all
 * of it is valid. Handshakes take a reference on the configuration they start with, so a connection
 * already open keeps what it negotiated and a handshake in progress finishes on the set it began
 * with; a refused set changes nothing that serves.
 *
 * Reload requests that queue while one runs are folded into the next: the
 * next reads the files after they were sent.
 *
 * The watcher (a plain process linked to the reloader) holds one inotify
 * descriptor with a watch on each directory that holds a listener's
 * certificate, key or client CA. Watching the directory, not the file,
 * sees a file replaced by rename (editors, certbot's symlinks in live/)
 * and Kubernetes' `..data` swap, which replaces every file of a secret at
 * once. Only names of configured files (and `..data`) count. A burst of
 * events becomes one reload of the listeners concerned once their
 * directories have been quiet for QUIET_MS: a certificate and its key are
 * often written one after the other, and reloading between the two would
 * report a mismatched pair that is only half written. A directory that
 * disappears is looked for again every REWATCH_MS and reloaded when back.
 *
 * The records (when each listener's set was loaded, its last reload and
 * its outcome) live in this file's static table, written by the reloader
 * and read by the admin API under `lock`, so a restarted reloader keeps
 * them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gw_int.h"
#include "linebuf.h"
#include "rt/gen_server.h"
#include "rt/proc_lib.h"
#include "tls.h"

/* Watcher timing (see the file comment): quiet spell after a completed
 * write, after a file was only created (its writer may still be filling
 * it), the longest a burst can delay its reload, and how often a missing
 * directory is looked for. */
#define QUIET_MS 100
#define CREATE_MS 250
#define BURST_MS 1000
#define REWATCH_MS 500
/* A watcher that died is started again after this long. */
#define REWATCH_AFTER_MS 1000

/* Listeners a gateway can have: the public ones (keys.c caps them at 64)
 * and the admin listener, which never speaks TLS. */
#define MAX_LISTENERS 65
#define SOURCE_MAX 32

enum {
    MSG_RELOAD = 1, /* cast or call; payload: struct reload_req */
    MSG_REPLY,      /* reply: struct reply */
    MSG_REWATCH,    /* info: timer, start the watcher again */
};

/* A reload asked for: of every TLS listener (n == 0) or of those listed
 * (indices into gw__listeners). */
struct reload_req {
    char source[SOURCE_MAX];
    uint32_t n;
    uint32_t idx[];
};

struct reply {
    int32_t rc;
    struct gw_tls_reload_outcome *outcome;
};

/* ---- records ------------------------------------------------------------------ */

struct record {
    char loaded_at[40];
    char loaded_by[SOURCE_MAX];
    uint64_t ok, failed;
    bool has_last;
    struct gw_tls_reload_result last;
    char last_time[40];
    char last_source[SOURCE_MAX];
};

/* Guards records and records_run. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct record records[MAX_LISTENERS];
/* The gw_run the records belong to (its start time): a gateway run again
 * in the same process (tests) starts from empty records. */
static uint64_t records_run;
/* One reload on the blocking pool at a time, even when a killed reloader's
 * job still runs there while its successor starts another. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

/* What each listener's files were (files_note), by index into
 * gw.cfg->listeners: written by the main thread before the runtime starts,
 * then only by the watcher (one at a time). */
static uint64_t notes[MAX_LISTENERS];

/* Now as RFC 3339 UTC with milliseconds (the log's format). */
static void wall_time(char *buf, size_t cap)
{
    struct timespec ts;
    struct gw__linebuf b;
    clock_gettime(CLOCK_REALTIME, &ts);
    gw__linebuf_init(&b, buf, cap - 1);
    gw__linebuf_time(&b, (int64_t)ts.tv_sec, (uint32_t)ts.tv_nsec);
    buf[b.len] = '\0';
}

static bool is_tls(size_t i)
{
    return i < gw__nlisteners && i < MAX_LISTENERS && !gw__listeners[i].admin &&
           gw__listeners[i].tls;
}

static const struct gw_tls_listener_config *config_of(size_t i)
{
    return &gw.cfg->listeners[gw__listeners[i].index].tls;
}

/* Called by the reloader's init: the sets serving were loaded by the
 * listeners' start, unless this run's records say otherwise. */
static void records_start(void)
{
    pthread_mutex_lock(&lock);
    if (records_run != gw.start_ms + 1) {
        memset(records, 0, sizeof records);
        records_run = gw.start_ms + 1;
        char now[40];
        wall_time(now, sizeof now);
        for (size_t i = 0; i < MAX_LISTENERS; i++) {
            snprintf(records[i].loaded_at, sizeof records[i].loaded_at, "%s", now);
            snprintf(records[i].loaded_by, sizeof records[i].loaded_by, "start");
        }
    }
    pthread_mutex_unlock(&lock);
}

/* Splits gw_tls_listener_reload's "FILE: reason" into its parts, when FILE
 * is one of the listener's files (a path may itself hold ": "). */
static void split_error(size_t i, const char *err, struct gw_tls_reload_result *r)
{
    const struct gw_tls_listener_config *c = config_of(i);
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t k = 0; k <= 2 * c->ncerts; k++) {
        const char *p =
            k < 2 * c->ncerts ? (k % 2 ? c->certs[k / 2].key : c->certs[k / 2].cert) : c->client_ca;
        size_t n = p ? strlen(p) : 0;
        if (n > best_len && strncmp(err, p, n) == 0 && err[n] == ':') {
            best = p;
            best_len = n;
        }
    }
    const char *reason = err;
    if (best) {
        reason = err + best_len + 1;
        while (*reason == ' ')
            reason++;
    }
    snprintf(r->file, sizeof r->file, "%s", best ? best : "");
    snprintf(r->reason, sizeof r->reason, "%s", reason[0] ? reason : "refused");
}

/* A hash of what the files of `c` are now: inode, size and change time of
 * each (stat follows symlinks, so a `..data` swap changes it), or the error
 * for one that cannot be read. FNV-1a over the fields. */
static uint64_t files_note(const struct gw_tls_listener_config *c)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t k = 0; k <= 2 * c->ncerts; k++) {
        const char *p =
            k < 2 * c->ncerts ? (k % 2 ? c->certs[k / 2].key : c->certs[k / 2].cert) : c->client_ca;
        if (!p)
            continue;
        struct stat st;
        uint64_t f[6] = {0};
        if (stat(p, &st) == 0) {
            f[0] = (uint64_t)st.st_dev;
            f[1] = (uint64_t)st.st_ino;
            f[2] = (uint64_t)st.st_size;
            f[3] = (uint64_t)st.st_ctim.tv_sec;
            f[4] = (uint64_t)st.st_ctim.tv_nsec;
        } else {
            f[5] = (uint64_t)errno;
        }
        const unsigned char *b = (const unsigned char *)f;
        for (size_t i = 0; i < sizeof f; i++)
            h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

void gw_tls_reload_snapshot(const struct gw_config *cfg)
{
    for (size_t i = 0; i < cfg->nlisteners && i < MAX_LISTENERS; i++)
        notes[i] = cfg->listeners[i].tls.enabled ? files_note(&cfg->listeners[i].tls) : 0;
}

/* ---- the job on the blocking pool -------------------------------------------
 * Shared by the reloader and a blocking thread, each with a reference: a
 * reloader killed while the job runs leaves it to the thread, which frees
 * it when done. */
struct job {
    _Atomic int refs;
    size_t n;
    struct gw_tls_listener **tls; /* the listeners', alive while the gateway runs */
    int *rc;
    char (*err)[4608];
};

static void job_unref(void *arg)
{
    struct job *j = arg;
    /* acq_rel: the last owner sees everything the other one wrote. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(j->tls);
    free(j->rc);
    free(j->err);
    free(j);
}

static intptr_t job_run(void *arg)
{
    struct job *j = arg;
    pthread_mutex_lock(&reload_lock);
    for (size_t k = 0; k < j->n; k++) {
        j->err[k][0] = '\0';
        j->rc[k] = gw_tls_listener_reload(j->tls[k], j->err[k], sizeof j->err[k]);
    }
    pthread_mutex_unlock(&reload_lock);
    job_unref(j);
    return 0;
}

/* Reloads listeners idx[0..n) on the blocking pool; on return *out is the
 * job (done; the caller owns one reference, dropped by rt_undefer(*handle,
 * true)). */
static int job_start(const uint32_t *idx, size_t n, struct job **out, uint64_t *handle)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    atomic_init(&j->refs, 2);
    j->n = n;
    j->tls = calloc(n, sizeof(*j->tls));
    j->rc = calloc(n, sizeof(*j->rc));
    j->err = calloc(n, sizeof(*j->err));
    uint64_t d = 0;
    if (!j->tls || !j->rc || !j->err || !(d = rt_defer(job_unref, j))) {
        free(j->tls);
        free(j->rc);
        free(j->err);
        free(j);
        return -ENOMEM;
    }
    for (size_t k = 0; k < n; k++)
        j->tls[k] = gw__listeners[idx[k]].tls;
    intptr_t res;
    int r = rt_blocking(job_run, j, &res);
    if (r) {
        job_unref(j); /* the blocking thread's reference: it never ran */
        rt_undefer(d, true);
        return r;
    }
    *out = j;
    *handle = d;
    return 0;
}

/* ---- the reloader --------------------------------------------------------------- */

/* Owned by the reloader process; freed by its exit cleanup. */
struct reloader {
    rt_pid watcher;
};

static int watcher_spawn(rt_pid *out);

static bool is_reload_cast(const struct rt_msg *m, void *ctx)
{
    (void)ctx;
    return m->type == (RT_GS_CAST_BIT | MSG_RELOAD);
}

/* Marks the listeners `m` asks for in want[]. */
static void want_from(const struct rt_msg *m, bool *want)
{
    struct reload_req h;
    if (m->size < sizeof h)
        return;
    memcpy(&h, m->data, sizeof h);
    if (h.n == 0 || m->size < sizeof h + h.n * sizeof(uint32_t)) {
        for (size_t i = 0; i < MAX_LISTENERS; i++)
            want[i] = is_tls(i);
        return;
    }
    for (uint32_t k = 0; k < h.n; k++) {
        uint32_t i;
        memcpy(&i, (const char *)m->data + sizeof h + k * sizeof i, sizeof i);
        if (is_tls(i))
            want[i] = true;
    }
}

static void record_result(size_t i, const char *source, const char *when,
                          const struct gw_tls_reload_result *r)
{
    pthread_mutex_lock(&lock);
    struct record *rec = &records[i];
    rec->has_last = true;
    rec->last = *r;
    snprintf(rec->last_time, sizeof rec->last_time, "%s", when);
    snprintf(rec->last_source, sizeof rec->last_source, "%s", source);
    if (r->ok) {
        rec->ok++;
        snprintf(rec->loaded_at, sizeof rec->loaded_at, "%s", when);
        snprintf(rec->loaded_by, sizeof rec->loaded_by, "%s", source);
    } else {
        rec->failed++;
    }
    pthread_mutex_unlock(&lock);
}

/* Reloads the listeners of `m` and of every reload cast queued behind it.
 * 0, -EINVAL (one or more refused), -ENOENT (nothing to reload), -errno;
 * *out gets the outcome for 0 and -EINVAL. */
static int reload(const struct rt_msg *m, struct gw_tls_reload_outcome **out)
{
    bool want[MAX_LISTENERS] = {0};
    uint32_t idx[MAX_LISTENERS];
    char source[SOURCE_MAX] = "reload";
    struct reload_req h;
    if (m->size >= sizeof h) {
        memcpy(&h, m->data, sizeof h);
        snprintf(source, sizeof source, "%.*s", (int)strnlen(h.source, sizeof h.source), h.source);
    }
    want_from(m, want);
    struct rt_msg *q;
    while ((q = rt_receive_match(is_reload_cast, NULL, 0))) {
        want_from(q, want);
        rt_msg_free(q);
    }
    size_t n = 0;
    for (size_t i = 0; i < MAX_LISTENERS; i++)
        if (want[i])
            idx[n++] = (uint32_t)i;
    if (n == 0)
        return -ENOENT;
    char when[40];
    wall_time(when, sizeof when);
    struct job *j = NULL;
    uint64_t handle = 0;
    int r = job_start(idx, n, &j, &handle);
    if (r) {
        rt_log(RT_LOG_ERROR, "tls (%s): reload failed: %s", source, strerror(-r));
        return r;
    }
    struct gw_tls_reload_outcome *o = calloc(1, sizeof(*o) + n * sizeof(o->results[0]));
    int rc = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[k];
        struct gw_tls_reload_result res = {.listener = gw__listeners[i].name, .ok = j->rc[k] == 0};
        const char *name = res.listener ? res.listener : "";
        if (res.ok) {
            rt_log(RT_LOG_INFO, "tls (%s): listener %s: certificates reloaded", source, name);
        } else {
            if (j->rc[k] == -EINVAL && j->err[k][0])
                split_error(i, j->err[k], &res);
            else
                snprintf(res.reason, sizeof res.reason, "%s",
                         j->err[k][0] ? j->err[k] : strerror(-j->rc[k]));
            rt_log(RT_LOG_ERROR,
                   "tls (%s): listener %s: reload refused, the certificates loaded before keep "
                   "serving: %s%s%s",
                   source, name, res.file, res.file[0] ? ": " : "", res.reason);
            rc = -EINVAL;
        }
        record_result(i, source, when, &res);
        if (o)
            o->results[o->n++] = res;
    }
    rt_undefer(handle, true);
    if (!o)
        return -ENOMEM;
    *out = o;
    return rc;
}

static void reply_free(struct rt_msg *m)
{
    struct reply h;
    memcpy(&h, m->data, sizeof h);
    gw_tls_reload_outcome_free(h.outcome);
}

static void start_watcher(struct reloader *s)
{
    if (s->watcher)
        return;
    bool any = false;
    for (size_t i = 0; i < MAX_LISTENERS; i++)
        any = any || is_tls(i);
    if (!any)
        return;
    int r = watcher_spawn(&s->watcher);
    if (r == 0)
        return;
    rt_log(RT_LOG_ERROR, "tls: cannot start the certificate watcher: %s; trying again",
           strerror(-r));
    struct rt_msg *m = rt_msg_new(MSG_REWATCH, 0);
    if (m)
        rt_send_after(rt_self(), REWATCH_AFTER_MS, m, NULL);
}

static void reloader_free(void *arg)
{
    struct reloader *s = arg;
    if (s->watcher)
        rt_exit_signal(s->watcher, RT_SHUTDOWN);
    free(s);
}

static void reloader_init(void *arg, struct rt_gs_result *r)
{
    (void)arg;
    struct reloader *s = calloc(1, sizeof(*s));
    if (!s || !rt_defer(reloader_free, s)) {
        free(s);
        rt_gs_stop(r, rt_atom_intern("enomem"));
        return;
    }
    r->state = s;
    /* The watcher's exit comes as a message: a watcher crash costs a
     * restarted watcher, not the reloader. */
    rt_trap_exit(true);
    records_start();
    start_watcher(s);
}

static void reloader_call(struct rt_msg *req, const struct rt_gs_from *from, void *state,
                          struct rt_gs_result *r)
{
    (void)from;
    (void)state;
    struct gw_tls_reload_outcome *o = NULL;
    int rc = req->type == MSG_RELOAD ? reload(req, &o) : -EOPNOTSUPP;
    struct rt_msg *m = rt_msg_new(MSG_REPLY, sizeof(struct reply));
    if (!m) {
        gw_tls_reload_outcome_free(o);
        rt_gs_reply(r, NULL);
        return;
    }
    struct reply h = {.rc = rc, .outcome = o};
    memcpy(m->data, &h, sizeof h);
    m->dtor = reply_free;
    rt_gs_reply(r, m);
}

static void reloader_cast(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    (void)state;
    (void)r;
    if (msg->type != MSG_RELOAD)
        return;
    struct gw_tls_reload_outcome *o = NULL;
    reload(msg, &o);
    gw_tls_reload_outcome_free(o);
}

static void reloader_info(struct rt_msg *msg, void *state, struct rt_gs_result *r)
{
    (void)r;
    struct reloader *s = state;
    if (msg->type == MSG_REWATCH) {
        start_watcher(s); /* it reloads what changed while none ran */
    } else if (msg->type == RT_MSG_EXIT && msg->from && msg->from == s->watcher) {
        rt_log(RT_LOG_ERROR, "tls: the certificate watcher exited (%s); restarting it",
               rt_atom_name((rt_atom)msg->u64));
        s->watcher = 0;
        struct rt_msg *m = rt_msg_new(MSG_REWATCH, 0);
        if (m)
            rt_send_after(rt_self(), REWATCH_AFTER_MS, m, NULL);
    }
}

static const struct rt_gen_server_ops reloader_ops = {
    .name = "gw_tls_reloader",
    .init = reloader_init,
    .handle_call = reloader_call,
    .handle_cast = reloader_cast,
    .handle_info = reloader_info,
};

int gw_tls_reloader_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason)
{
    (void)arg;
    (void)extra;
    (void)extra_size;
    struct rt_start_opts o = {.name = GW_TLS_RELOADER_NAME, .initial_call = "gw_tls_reloader:init"};
    return rt_gen_server_start_link(&reloader_ops, NULL, &o, out, reason);
}

/* ---- the watcher ------------------------------------------------------------------ */

struct wdir {
    char *path;
    int wd; /* -1 while missing */
};

/* A configured file: its directory and name, and its listener. */
struct wfile {
    size_t dir;
    const char *base;
    uint32_t listener;
};

/* Process-owned (rt_alloc), freed with the watcher. */
struct watcher {
    int fd;
    struct wdir *dirs;
    size_t ndirs;
    struct wfile *files;
    size_t nfiles;
    bool pending[MAX_LISTENERS];
    bool any_pending;
    bool missing; /* a directory is not watched */
    uint64_t first_ms, due_ms;
    rt_pid reloader;
};

static void watcher_close(void *arg)
{
    struct watcher *w = arg;
    if (w->fd >= 0)
        rt_close(w->fd);
}

/* Adds `path` of listener i (a path resolved when the configuration was
 * loaded) to the watcher's lists. */
static int add_file(struct watcher *w, const char *path, uint32_t i, size_t cap)
{
    if (!path || !*path)
        return 0;
    char *dir = rt_strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!slash)
        snprintf(dir, strlen(path) + 1, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    size_t d = 0;
    while (d < w->ndirs && strcmp(w->dirs[d].path, dir) != 0)
        d++;
    if (d == w->ndirs) {
        w->dirs[d] = (struct wdir){.path = dir, .wd = -1};
        w->ndirs++;
    }
    if (w->nfiles < cap)
        w->files[w->nfiles++] = (struct wfile){.dir = d, .base = base, .listener = i};
    return 0;
}

#define DIR_EVENTS                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_DELETE_SELF |       \
     IN_MOVE_SELF | IN_ONLYDIR)

/* An event concerning listener i: `wait` is how long things must stay
 * quiet before its reload. */
static void note(struct watcher *w, uint32_t i, uint64_t wait)
{
    uint64_t now = rt_now_ms();
    w->pending[i] = true;
    if (!w->any_pending) {
        w->any_pending = true;
        w->first_ms = now;
        w->due_ms = now + wait;
    } else if (now + wait > w->due_ms || wait == QUIET_MS) {
        w->due_ms = now + wait;
    }
    if (w->due_ms > w->first_ms + BURST_MS)
        w->due_ms = w->first_ms + BURST_MS;
}

static void note_dir(struct watcher *w, size_t d, const char *name, uint64_t wait)
{
    for (size_t k = 0; k < w->nfiles; k++)
        if (w->files[k].dir == d && (!name || strcmp(name, w->files[k].base) == 0))
            note(w, w->files[k].listener, wait);
}

/* Watches every directory not watched; one back gets its reload. */
static void rearm(struct watcher *w, bool quiet)
{
    w->missing = false;
    for (size_t d = 0; d < w->ndirs; d++) {
        if (w->dirs[d].wd >= 0)
            continue;
        int wd = inotify_add_watch(w->fd, w->dirs[d].path, DIR_EVENTS);
        if (wd < 0) {
            if (!quiet)
                rt_log(RT_LOG_WARNING, "tls: cannot watch %s (%s); looking again every %d ms",
                       w->dirs[d].path, strerror(errno), REWATCH_MS);
            w->missing = true;
            continue;
        }
        w->dirs[d].wd = wd;
        if (quiet)
            note_dir(w, d, NULL, QUIET_MS); /* back: its files may differ */
    }
}

static void handle(struct watcher *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        for (size_t d = 0; d < w->ndirs; d++)
            note_dir(w, d, NULL, QUIET_MS);
        return;
    }
    size_t d = 0;
    while (d < w->ndirs && w->dirs[d].wd != ev->wd)
        d++;
    if (d == w->ndirs)
        return; /* a watch removed earlier */
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
        if (!(ev->mask & IN_IGNORED))
            inotify_rm_watch(w->fd, w->dirs[d].wd);
        w->dirs[d].wd = -1;
        w->missing = true;
        return;
    }
    if (!ev->len)
        return;
    /* Kubernetes swaps `..data` to replace every file of a secret. */
    if (strcmp(ev->name, "..data") == 0) {
        note_dir(w, d, NULL, QUIET_MS);
        return;
    }
    if (ev->mask & IN_ISDIR)
        return;
    note_dir(w, d, ev->name, (ev->mask & IN_CREATE) ? CREATE_MS : QUIET_MS);
}

static void cast_pending(struct watcher *w)
{
    uint32_t idx[MAX_LISTENERS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < MAX_LISTENERS; i++)
        if (w->pending[i])
            idx[n++] = i;
    memset(w->pending, 0, sizeof w->pending);
    w->any_pending = false;
    if (n == 0)
        return;
    struct reload_req h = {.n = n};
    snprintf(h.source, sizeof h.source, "inotify");
    struct rt_msg *m = rt_msg_new(MSG_RELOAD, sizeof h + n * sizeof(uint32_t));
    if (!m)
        return;
    memcpy(m->data, &h, sizeof h);
    memcpy((char *)m->data + sizeof h, idx, n * sizeof(uint32_t));
    rt_gen_server_cast(w->reloader, m);
}

static void watcher_main(void *arg, const struct rt_proc_starter *starter)
{
    (void)arg;
    struct watcher *w = rt_calloc(1, sizeof(*w));
    if (!w)
        rt_exit(rt_atom_intern("enomem"));
    w->fd = -1;
    if (!rt_defer(watcher_close, w))
        rt_exit(rt_atom_intern("enomem"));
    w->reloader = rt_parent();
    size_t cap = 0;
    for (size_t i = 0; i < MAX_LISTENERS; i++)
        if (is_tls(i))
            cap += 2 * config_of(i)->ncerts + 1;
    w->dirs = rt_calloc(cap ? cap : 1, sizeof(*w->dirs));
    w->files = rt_calloc(cap ? cap : 1, sizeof(*w->files));
    if (!w->dirs || !w->files)
        rt_exit(rt_atom_intern("enomem"));
    for (uint32_t i = 0; i < MAX_LISTENERS; i++) {
        if (!is_tls(i))
            continue;
        const struct gw_tls_listener_config *c = config_of(i);
        for (size_t k = 0; k < c->ncerts; k++)
            if (add_file(w, c->certs[k].cert, i, cap) < 0 ||
                add_file(w, c->certs[k].key, i, cap) < 0)
                rt_exit(rt_atom_intern("enomem"));
        if (add_file(w, c->client_ca, i, cap) < 0)
            rt_exit(rt_atom_intern("enomem"));
    }
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        rt_log(RT_LOG_ERROR, "tls: inotify_init1: %s", strerror(errno));
        rt_exit(rt_atom_intern("inotify_failed"));
    }
    rt_fd_nonblock(w->fd);
    rearm(w, false);
    /* Changes made before the watches were in place gave no event. */
    for (uint32_t i = 0; i < MAX_LISTENERS; i++) {
        if (!is_tls(i))
            continue;
        uint64_t now = files_note(config_of(i));
        if (now != notes[gw__listeners[i].index])
            note(w, i, QUIET_MS);
        notes[gw__listeners[i].index] = now;
    }
    rt_set_state_name("watching");
    rt_set_detail("%zu certificate directories", w->ndirs);
    /* The start returns only now: a file written right after is seen. */
    rt_proc_init_ack(starter);
    alignas(struct inotify_event) char buf[4096];
    for (;;) {
        int64_t timeout = RT_INFINITY;
        uint64_t now = rt_now_ms();
        if (w->any_pending)
            timeout = w->due_ms > now ? (int64_t)(w->due_ms - now) : 0;
        if (w->missing && (timeout == RT_INFINITY || timeout > REWATCH_MS))
            timeout = REWATCH_MS;
        ssize_t n = timeout == 0 ? -ETIMEDOUT : rt_read(w->fd, buf, sizeof buf, timeout);
        if (n == -ETIMEDOUT) {
            if (w->missing)
                rearm(w, true);
            if (w->any_pending && rt_now_ms() >= w->due_ms)
                cast_pending(w);
            continue;
        }
        if (n < 0 && n != -EAGAIN && n != -EINTR) {
            rt_log(RT_LOG_ERROR, "tls: reading inotify events: %s", strerror((int)-n));
            rt_exit(rt_atom_intern("inotify_failed"));
        }
        for (ssize_t off = 0; n > 0 && off < n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            handle(w, ev);
            off += (ssize_t)(sizeof(*ev) + ev->len);
        }
    }
}

static int watcher_spawn(rt_pid *out)
{
    struct rt_start_opts so = {.initial_call = "gw_tls_reloader:watcher", .timeout_ms = 5000};
    rt_atom reason;
    int r = rt_proc_start_link(watcher_main, NULL, &so, out, &reason);
    return r == -ECHILD ? -EIO : r;
}

/* ---- API ------------------------------------------------------------------------ */

void gw_tls_reload_outcome_free(struct gw_tls_reload_outcome *o)
{
    free(o);
}

void gw_tls_reload_async(const char *source)
{
    struct reload_req h = {.n = 0};
    snprintf(h.source, sizeof h.source, "%s", source ? source : "");
    struct rt_msg *m = rt_msg_copy(MSG_RELOAD, &h, sizeof h);
    if (m)
        rt_gen_server_cast_name(GW_TLS_RELOADER_NAME, m);
}

int gw_tls_reload(const char *source, const char *listener, struct gw_tls_reload_outcome **out)
{
    struct reload_req h = {.n = 0};
    uint32_t idx = 0;
    snprintf(h.source, sizeof h.source, "%s", source ? source : "");
    while (idx < MAX_LISTENERS && !is_tls(idx))
        idx++;
    if (idx == MAX_LISTENERS)
        return -ENOENT; /* no TLS listener, and no reloader then */
    idx = 0;
    if (listener) {
        while (idx < MAX_LISTENERS && !(is_tls(idx) && gw__listeners[idx].name &&
                                        strcmp(gw__listeners[idx].name, listener) == 0))
            idx++;
        if (idx == MAX_LISTENERS)
            return -ENOENT;
        h.n = 1;
    }
    struct rt_msg *req = rt_msg_new(MSG_RELOAD, sizeof h + h.n * sizeof idx);
    if (!req)
        return -ENOMEM;
    memcpy(req->data, &h, sizeof h);
    if (h.n)
        memcpy((char *)req->data + sizeof h, &idx, sizeof idx);
    struct rt_msg *rep = NULL;
    int r = rt_gen_server_call_name(GW_TLS_RELOADER_NAME, req, GW_TLS_RELOAD_CALL_TIMEOUT_MS, &rep,
                                    NULL);
    if (r)
        return r;
    if (!rep || rep->size < sizeof(struct reply)) {
        rt_msg_free(rep);
        return -ENOMEM;
    }
    struct reply rh;
    memcpy(&rh, rep->data, sizeof rh);
    rt_msg_free(rep); /* runs no dtor: the outcome is taken */
    if (rh.rc == 0 || rh.rc == -EINVAL) {
        *out = rh.outcome;
        return rh.rc;
    }
    gw_tls_reload_outcome_free(rh.outcome);
    return rh.rc;
}

void gw_tls_desc_free(struct gw_tls_desc *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->listeners[i].certs);
    free(d->listeners);
    free(d);
}

int gw_tls_describe(struct gw_tls_desc **out)
{
    struct gw_tls_desc *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    for (int side = 0; side < 2; side++) {
        for (int res = 0; res < 2; res++)
            d->handshakes[side][res] = gw_tls_handshakes(side == 1, res == 1);
        for (int f = 0; f < GW_TLS_FAIL_KINDS; f++)
            d->failures[side][f] = gw_tls_failures(side == 1, (enum gw_tls_fail)f);
    }
    size_t n = 0;
    for (size_t i = 0; i < MAX_LISTENERS; i++)
        n += is_tls(i);
    d->listeners = calloc(n ? n : 1, sizeof(*d->listeners));
    if (!d->listeners) {
        free(d);
        return -ENOMEM;
    }
    /* The records of this run, also when asked before the reloader's
     * init made them (the admin listener answers while the rest of the
     * tree is still starting). */
    records_start();
    for (size_t i = 0; i < MAX_LISTENERS; i++) {
        if (!is_tls(i))
            continue;
        struct gw_tls_listener_desc *l = &d->listeners[d->n++];
        const struct gw_listener_config *lc = &gw.cfg->listeners[gw__listeners[i].index];
        l->name = lc->name;
        l->address = lc->address.text;
        pthread_mutex_lock(&lock);
        const struct record *rec = &records[i];
        memcpy(l->loaded_at, rec->loaded_at, sizeof l->loaded_at);
        memcpy(l->loaded_by, rec->loaded_by, sizeof l->loaded_by);
        l->reloads_ok = rec->ok;
        l->reloads_failed = rec->failed;
        l->has_last = rec->has_last;
        l->last = rec->last;
        memcpy(l->last_time, rec->last_time, sizeof l->last_time);
        memcpy(l->last_source, rec->last_source, sizeof l->last_source);
        pthread_mutex_unlock(&lock);
        struct gw_tls_server *srv = gw_tls_listener_acquire(gw__listeners[i].tls);
        const struct gw_tls_certset *set = srv ? gw_tls_server_certs(srv) : NULL;
        size_t nc = set ? gw_tls_certset_count(set) : 0;
        l->certs = nc ? calloc(nc, sizeof(*l->certs)) : NULL;
        for (size_t k = 0; l->certs && k < nc; k++)
            l->certs[l->ncerts++] = *gw_tls_certset_info(set, k);
        gw_tls_server_unref(srv);
        if (nc && !l->certs) {
            gw_tls_desc_free(d);
            return -ENOMEM;
        }
    }
    *out = d;
    return 0;
}
