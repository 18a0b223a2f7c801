/*
 * watcher.c: a directory watcher, a process linked to the router: one for
 * the routes directory and one for the workflows directory, whose
 * definitions are loaded with the routes (a change in either reloads both).
 *
 * It owns one inotify descriptor (non-blocking, read with rt_read so that a
 * quiet directory costs a parked process) with two watches:
 *  - the routes directory: files closed after writing, moved in or out,
 *    created or deleted, and the directory itself deleted or moved away;
 *  - its parent, for entries created, moved or deleted there, so that a
 *    directory (or a symlink to one) put in place of it is watched again.
 *    Any name counts, not only the routes directory's own: with Kubernetes'
 *    layout `routes -> ..data/routes`, swapping the sibling `..data` changes
 *    what the path leads to.
 * Only names that can change the route set count: `*.json` not starting
 * with '.', plus Kubernetes' `..data` symlink, which its atomic writer swaps
 * to replace every file at once.
 *
 * A burst of events becomes one reload cast to the router (see the timing
 * constants in router_int.h): editors that write a temporary file and
 * rename it over the original produce a burst ending in IN_MOVED_TO, which
 * is a completed write. When the directory disappears the watcher looks for
 * it again every GW__WATCH_REWATCH_MS and reloads when it is back.
 *
 * Re-arming (rearm) asks inotify for a watch on what the path leads to now:
 * the same directory gives back the same watch; another one gets a new
 * watch and a reload. The watcher re-arms on every parent event, after a
 * queue overflow (the parent's events may be among those lost) and right
 * before it casts a reload, so every reload reads the directory after the
 * watch on it is in place: a change made between a swap and the new watch is
 * read by that reload, a change made after it comes as an event.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "router_int.h"
#include "rt/proc_lib.h"
#include "rt/gen_server.h"

#define DIR_EVENTS                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_DELETE_SELF |       \
     IN_MOVE_SELF | IN_ONLYDIR)
#define PARENT_EVENTS (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR)

/* Process-owned (rt_alloc), freed with the watcher. */
struct watcher {
    char *dir;
    char *parent;
    int fd;
    int wd;  /* on dir, -1 while it is missing */
    int pwd; /* on parent, -1 if it could not be watched */
    rt_pid router;
    bool pending;
    uint64_t first_ms; /* first event of the pending burst */
    uint64_t due_ms;   /* when the pending reload is cast */
};

/* What the watcher is started with (owned by it once started). */
struct watch_arg {
    bool optional; /* the directory may be missing: no warning then */
    char dir[];
};

static void close_fd(void *arg)
{
    struct watcher *w = arg;
    if (w->fd >= 0)
        rt_close(w->fd);
    free(w->dir);
}

static bool relevant(const char *name)
{
    size_t len = strlen(name);
    if (strcmp(name, "..data") == 0)
        return true;
    return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

/* An event of the burst: `wait` is how long the directory must stay quiet. */
static void note(struct watcher *w, uint64_t wait)
{
    uint64_t now = rt_now_ms();
    if (!w->pending) {
        w->pending = true;
        w->first_ms = now;
        w->due_ms = now + wait;
    } else if (wait == GW__WATCH_QUIET_MS) {
        /* A completed write: only a short quiet spell is needed now. */
        w->due_ms = now + wait;
    } else if (now + wait > w->due_ms) {
        w->due_ms = now + wait;
    }
    if (w->due_ms > w->first_ms + GW__WATCH_BURST_MS)
        w->due_ms = w->first_ms + GW__WATCH_BURST_MS;
}

/* Watches what the path leads to now; true when that is a directory not
 * watched before (a reload is then noted). */
static bool rearm(struct watcher *w)
{
    int wd = inotify_add_watch(w->fd, w->dir, DIR_EVENTS);
    if (wd < 0 || wd == w->wd)
        return false;
    if (w->wd >= 0)
        inotify_rm_watch(w->fd, w->wd); /* EINVAL if already gone: fine */
    w->wd = wd;
    /* A different directory (or the same one back): its files may differ. */
    note(w, GW__WATCH_QUIET_MS);
    return true;
}

static void cast_reload(struct watcher *w)
{
    static const char source[] = "inotify";
    struct rt_msg *m = rt_msg_copy(GW__ROUTER_RELOAD, source, sizeof source - 1);
    if (m)
        rt_gen_server_cast(w->router, m);
}

static void handle(struct watcher *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        rearm(w);
        note(w, GW__WATCH_QUIET_MS);
        return;
    }
    if (ev->wd == w->pwd && w->pwd >= 0) {
        rearm(w);
        return;
    }
    if (ev->wd != w->wd || w->wd < 0)
        return; /* a watch removed earlier */
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
        if (!(ev->mask & IN_IGNORED))
            inotify_rm_watch(w->fd, w->wd);
        w->wd = -1;
        note(w, GW__WATCH_QUIET_MS);
        rearm(w); /* something may already be in its place */
        return;
    }
    if (!ev->len || !relevant(ev->name))
        return;
    if ((ev->mask & IN_ISDIR) && strcmp(ev->name, "..data") != 0)
        return;
    note(w, (ev->mask & IN_CREATE) ? GW__WATCH_CREATE_MS : GW__WATCH_QUIET_MS);
}

static void watcher_main(void *arg, const struct rt_proc_starter *starter)
{
    struct watcher *w = rt_calloc(1, sizeof(*w));
    if (!w) {
        free(arg);
        rt_exit(rt_atom_intern("enomem"));
    }
    struct watch_arg *wa = arg;
    bool optional = wa->optional;
    memmove(wa, wa->dir, strlen(wa->dir) + 1); /* `arg` becomes the name alone */
    w->dir = arg;
    w->fd = -1;
    w->wd = w->pwd = -1;
    if (!rt_defer(close_fd, w)) {
        free(arg);
        rt_exit(rt_atom_intern("enomem"));
    }
    w->router = rt_parent();
    char *a = rt_strdup(w->dir);
    if (!a)
        rt_exit(rt_atom_intern("enomem"));
    w->parent = dirname(a);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        rt_log(RT_LOG_ERROR, "routes: inotify_init1: %s", strerror(errno));
        rt_exit(rt_atom_intern("inotify_failed"));
    }
    rt_fd_nonblock(w->fd);
    w->pwd = inotify_add_watch(w->fd, w->parent, PARENT_EVENTS);
    w->wd = inotify_add_watch(w->fd, w->dir, DIR_EVENTS);
    /* The workflows directory is optional: its absence is not worth a
     * warning (it is watched for all the same, through its parent). */
    if (w->wd < 0 && !(optional && errno == ENOENT))
        rt_log(RT_LOG_WARNING, "routes: cannot watch %s (%s); looking again every %d ms", w->dir,
               strerror(errno), GW__WATCH_REWATCH_MS);
    rt_set_state_name("watching");
    rt_set_detail("%s", w->dir);
    /* The start returns only now: a file written right after the router
     * (re)starts is seen. */
    rt_proc_init_ack(starter);
    alignas(struct inotify_event) char buf[4096];
    for (;;) {
        int64_t timeout = RT_INFINITY;
        uint64_t now = rt_now_ms();
        if (w->pending)
            timeout = w->due_ms > now ? (int64_t)(w->due_ms - now) : 0;
        if (w->wd < 0 && (timeout == RT_INFINITY || timeout > GW__WATCH_REWATCH_MS))
            timeout = GW__WATCH_REWATCH_MS;
        ssize_t n = timeout == 0 ? -ETIMEDOUT : rt_read(w->fd, buf, sizeof buf, timeout);
        if (n == -ETIMEDOUT) {
            if (w->wd < 0)
                rearm(w);
            if (w->pending && rt_now_ms() >= w->due_ms) {
                /* Parent events may still be queued unread: the reload reads
                 * what the path leads to, so the watch must be on it first. */
                rearm(w);
                w->pending = false;
                cast_reload(w);
            }
            continue;
        }
        if (n < 0 && n != -EAGAIN && n != -EINTR) {
            rt_log(RT_LOG_ERROR, "routes: reading inotify events: %s", strerror((int)-n));
            rt_exit(rt_atom_intern("inotify_failed"));
        }
        for (ssize_t off = 0; n > 0 && off < n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            handle(w, ev);
            off += (ssize_t)(sizeof(*ev) + ev->len);
        }
    }
}

int gw__router_watcher_spawn(const char *dir, bool optional, rt_pid *out)
{
    size_t len = strlen(dir);
    struct watch_arg *copy = malloc(sizeof(*copy) + len + 1);
    if (!copy)
        return -ENOMEM;
    copy->optional = optional;
    memcpy(copy->dir, dir, len + 1);
    struct rt_start_opts so = {.initial_call = "gw_router:watcher", .timeout_ms = 5000};
    rt_atom reason;
    int r = rt_proc_start_link(watcher_main, copy, &so, out, &reason);
    if (r == -EAGAIN || r == -ENOMEM)
        free(copy); /* never started; otherwise the watcher owned it */
    return r == -ECHILD ? -EIO : r;
}
