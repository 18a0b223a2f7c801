/*
 * procs.c: the admin API's view of processes — the process list (a snapshot
 * filtered while it is taken, then sorted and paged), one process in detail
 * (with its behaviour's sys status, statistics and log), kill and restart,
 * and the supervision tree.
 *
 * A snapshot keeps a compact record per matching process and its strings in
 * one arena, so that 100,000 processes cost a few megabytes for the length
 * of one request. The walk charges reductions as it goes: a large snapshot
 * yields its scheduler like any other long-running process.
 *
 * Calls into other processes are bounded: sys calls time out after
 * GW_ADMIN_SYS_TIMEOUT_MS; supervisor calls are only made to processes
 * whose kind is supervisor (a plain process would never answer) and share
 * one deadline per request (GW_ADMIN_CALL_TIMEOUT_MS, restart's terminate
 * and restart GW_ADMIN_RESTART_TIMEOUT_MS), past which the answer is 504
 * "timeout" naming the process that did not answer; and kill waits at most
 * GW_ADMIN_KILL_WAIT_MS for the DOWN.
 *
 * Kill reasons become atoms; the set of distinct ones is capped
 * (GW_ADMIN_MAX_KILL_REASONS) and guarded by a mutex held for a few string
 * compares, never across a runtime call.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "gw/gateway.h"
#include "gw_int.h"
#include "linebuf.h"
#include "request_detail.h"
#include "rt/supervisor.h"
#include "rt/sys.h"

/* What is left of a deadline (rt_now_ms() time), never negative: a call
 * given 0 still asks, and times out at once if there is no answer. */
static int64_t ms_left(uint64_t deadline)
{
    uint64_t now = rt_now_ms();
    return deadline > now ? (int64_t)(deadline - now) : 0;
}

/* ---- snapshots ------------------------------------------------------------- */

struct prec {
    rt_pid pid, parent;
    uint64_t reductions, started_ms;
    uint64_t mailbox_len, memory;
    uint32_t links, monitors, monitored;
    uint32_t name, initial_call, state, detail; /* arena offsets; 0 is "" */
    uint8_t kind, status;
    bool trap_exit;
};

struct snap {
    struct prec *recs;
    size_t n, cap;
    char *arena;
    size_t alen, acap;
    size_t total; /* every live process seen */
    const char *name_filter;
    uint32_t kind_mask; /* bit per rt_kind; 0: all kinds */
    bool oom;
};

static uint32_t arena_add(struct snap *s, const char *str)
{
    size_t len = strlen(str);
    if (len == 0 || s->oom)
        return 0;
    if (s->alen + len + 1 > s->acap) {
        size_t cap = s->acap ? s->acap * 2 : 65536;
        while (cap < s->alen + len + 1)
            cap *= 2;
        if (cap > UINT32_MAX) {
            s->oom = true;
            return 0;
        }
        char *a = realloc(s->arena, cap);
        if (!a) {
            s->oom = true;
            return 0;
        }
        if (!s->arena)
            a[s->alen++] = 0; /* offset 0 is the empty string */
        s->arena = a;
        s->acap = cap;
    }
    uint32_t off = (uint32_t)s->alen;
    memcpy(s->arena + s->alen, str, len + 1);
    s->alen += len + 1;
    return off;
}

static int snap_add(struct snap *s, const struct rt_proc_info *i)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        struct prec *r = realloc(s->recs, cap * sizeof *r);
        if (!r) {
            s->oom = true;
            return -ENOMEM;
        }
        s->recs = r;
        s->cap = cap;
    }
    struct prec *r = &s->recs[s->n];
    *r = (struct prec){
        .pid = i->pid,
        .parent = i->parent,
        .reductions = i->reductions,
        .started_ms = i->started_ms,
        .mailbox_len = i->mailbox_len,
        .memory = i->memory,
        .links = i->links,
        .monitors = i->monitors,
        .monitored = i->monitored,
        .kind = (uint8_t)i->kind,
        .status = (uint8_t)i->status,
        .trap_exit = i->trap_exit,
    };
    r->name = arena_add(s, i->name);
    r->initial_call = arena_add(s, i->initial_call);
    r->state = arena_add(s, i->state);
    r->detail = arena_add(s, i->detail);
    if (s->oom)
        return -ENOMEM;
    s->n++;
    return 0;
}

static int visit(const struct rt_proc_info *i, void *ctx)
{
    struct snap *s = ctx;
    s->total++;
    /* A long walk is work like any other: let the scheduler run others. */
    if ((s->total & 63) == 0)
        rt_reductions(64);
    if (s->kind_mask && !(s->kind_mask & ((uint32_t)1 << i->kind)))
        return 0;
    if (s->name_filter && !strstr(i->name, s->name_filter))
        return 0;
    return snap_add(s, i) < 0 ? 1 : 0;
}

static void snap_done(struct snap *s)
{
    free(s->recs);
    free(s->arena);
}

enum sort_key { SORT_NONE, SORT_MAILBOX, SORT_REDUCTIONS, SORT_MEMORY, SORT_AGE };

static int cmp_pid(const struct prec *a, const struct prec *b)
{
    return (a->pid > b->pid) - (a->pid < b->pid);
}

/* Largest first; ties in pid order. */
#define DESC(field)                                                                                \
    static int cmp_##field(const void *x, const void *y)                                           \
    {                                                                                              \
        const struct prec *a = x, *b = y;                                                          \
        if (a->field != b->field)                                                                  \
            return a->field < b->field ? 1 : -1;                                                   \
        return cmp_pid(a, b);                                                                      \
    }
DESC(mailbox_len)
DESC(reductions)
DESC(memory)

/* Oldest first. */
static int cmp_age(const void *x, const void *y)
{
    const struct prec *a = x, *b = y;
    if (a->started_ms != b->started_ms)
        return a->started_ms < b->started_ms ? -1 : 1;
    return cmp_pid(a, b);
}

/* A JSON string of the first n bytes of s for jansson, which takes only
 * valid UTF-8: bytes that are not are replaced by U+FFFD, one per byte, by
 * the rule the process-record writer's escaper (gw__linebuf_json) follows,
 * so that both give the same value; null when empty. */
static json_t *text_json(const char *s, size_t n)
{
    if (!s || n == 0)
        return json_null();
    char *t = malloc(n * 3 + 1);
    if (!t)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = gw__linebuf_utf8_len(s + i, n - i);
        if (k) {
            memcpy(t + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(t + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    json_t *v = json_stringn(t, o);
    free(t);
    return v;
}

static json_t *str_or_null(const char *s)
{
    return text_json(s, s ? strlen(s) : 0);
}

_Static_assert(RT_KIND_MAX <= 32, "a kind filter is a 32-bit mask");

static int parse_kinds(const char *list, uint32_t *mask)
{
    uint32_t m = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        rt_kind k;
        if (rt_kind_find(p, n, &k) < 0)
            return -EINVAL;
        m |= (uint32_t)1 << k;
        p = comma ? comma + 1 : p + n;
    }
    if (!m)
        return -EINVAL;
    *mask = m;
    return 0;
}

static int query_u64(const struct gw_admin_request *req, const char *key, uint64_t *out)
{
    char buf[32];
    int rc = gw__admin_query(req->query, key, buf, sizeof buf);
    if (rc < 0)
        return rc;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (!buf[0] || *end || errno || buf[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

/* ---- the process-record writer ----------------------------------------------------
 * The process list is the one answer that can hold 100,000 objects. Built as
 * jansson values it takes seconds (an object, a hash table and an allocation
 * per field); written straight into one buffer it takes milliseconds. So a
 * process record is written here, once, for the list and for the one-process
 * answer alike (which adds its own members after the record's). Strings go
 * through the gateway's one JSON escaper (gw__linebuf_json, linebuf.h): bytes
 * that are not valid UTF-8 become U+FFFD so that the output is always valid
 * JSON. */

struct wbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static bool wreserve(struct wbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void wraw(struct wbuf *b, const char *s, size_t n)
{
    if (wreserve(b, n)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

#define WLIT(b, lit) wraw((b), (lit), sizeof(lit) - 1)

static void wu64(struct wbuf *b, uint64_t v)
{
    struct gw__linebuf l;
    if (!wreserve(b, 20))
        return;
    gw__linebuf_init(&l, b->p + b->len, b->cap - b->len);
    gw__linebuf_u64(&l, v);
    b->len += l.len;
}

/* A jansson value (stolen) as compact JSON text. */
static void wjson(struct wbuf *b, json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (!text) {
        b->oom = true;
        return;
    }
    wraw(b, text, strlen(text));
    free(text);
}

/* Hands the text written as the 200 answer (NUL-terminated; the response
 * takes the buffer), or answers 503 when any write ran out of memory. */
static void wanswer(struct wbuf *b, struct gw_admin_response *resp)
{
    if (!wreserve(b, 1)) {
        gw__admin_errorf(resp, 503, "out_of_memory", "no memory for the answer");
        return;
    }
    b->p[b->len] = 0;
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = b->p;
    resp->body_len = b->len;
    b->p = NULL;
}

#define LIT(l, lit) gw__linebuf_put((l), (lit), sizeof(lit) - 1)

static void put_str_or_null(struct gw__linebuf *l, const char *s)
{
    size_t n = strlen(s);
    if (n)
        gw__linebuf_json(l, s, n, SIZE_MAX, NULL);
    else
        LIT(l, "null");
}

static void put_pid(struct gw__linebuf *l, rt_pid pid)
{
    if (!pid) {
        LIT(l, "null");
        return;
    }
    /* gw_admin_pid_format's "<0.SLOT.GEN>", without snprintf's cost. */
    LIT(l, "\"<0.");
    gw__linebuf_u64(l, pid & 0xffffffffu);
    LIT(l, ".");
    gw__linebuf_u64(l, pid >> 32);
    LIT(l, ">\"");
}

/* Writes the record's object without its closing brace, so that the
 * one-process answer can add members; the caller closes it. */
static void prec_write(struct wbuf *b, const struct prec *r, const char *arena, uint64_t now)
{
    const char *A = arena ? arena : "";
    const char *name = A + r->name, *ic = A + r->initial_call, *state = A + r->state;
    const char *detail = A + r->detail;
    size_t ln = strlen(name), li = strlen(ic), ls = strlen(state), ld = strlen(detail);
    /* Fixed text, names and numbers fit in 1024 bytes; strings grow at most 6x (a
     * request's four fields together are the detail line's bytes). */
    size_t room = 1024 + 6 * (ln + li + ls + ld);
    if (!wreserve(b, room))
        return;
    struct gw__linebuf l;
    gw__linebuf_init(&l, b->p + b->len, room);
    uint64_t age = now > r->started_ms ? now - r->started_ms : 0;
    LIT(&l, "{\"pid\":");
    put_pid(&l, r->pid);
    LIT(&l, ",\"name\":");
    put_str_or_null(&l, name);
    LIT(&l, ",\"kind\":");
    const char *kind = rt_kind_name(r->kind);
    put_str_or_null(&l, kind);
    LIT(&l, ",\"initial_call\":");
    put_str_or_null(&l, ic);
    LIT(&l, ",\"status\":");
    put_str_or_null(&l, rt_status_name((enum rt_status)r->status));
    LIT(&l, ",\"state\":");
    put_str_or_null(&l, state);
    LIT(&l, ",\"mailbox_len\":");
    gw__linebuf_u64(&l, r->mailbox_len);
    LIT(&l, ",\"reductions\":");
    gw__linebuf_u64(&l, r->reductions);
    LIT(&l, ",\"memory\":");
    gw__linebuf_u64(&l, r->memory);
    LIT(&l, ",\"links\":");
    gw__linebuf_u64(&l, r->links);
    LIT(&l, ",\"monitors\":");
    gw__linebuf_u64(&l, r->monitors);
    LIT(&l, ",\"monitored_by\":");
    gw__linebuf_u64(&l, r->monitored);
    LIT(&l, ",\"parent\":");
    put_pid(&l, r->parent);
    if (r->trap_exit)
        LIT(&l, ",\"trap_exit\":true");
    else
        LIT(&l, ",\"trap_exit\":false");
    LIT(&l, ",\"age_ms\":");
    gw__linebuf_u64(&l, age);
    if (strcmp(kind, "request") == 0) {
        struct gw__request_detail d;
        gw__request_detail_read(detail, &d);
        LIT(&l, ",\"method\":");
        put_str_or_null(&l, d.method);
        LIT(&l, ",\"path\":");
        put_str_or_null(&l, d.path);
        LIT(&l, ",\"route\":");
        put_str_or_null(&l, d.route);
        LIT(&l, ",\"upstream_target\":");
        put_str_or_null(&l, d.target);
        LIT(&l, ",\"elapsed_ms\":");
        gw__linebuf_u64(&l, age);
    } else {
        LIT(&l, ",\"detail\":");
        put_str_or_null(&l, detail);
    }
    /* The room was counted above: a record that did not fit is a bug. */
    assert(!gw__linebuf_full(&l));
    b->len += l.len;
}

void gw__admin_processes(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    struct snap s = {0};
    char name[128], kind[128], sort[32];
    enum sort_key key = SORT_NONE;
    uint64_t limit = UINT64_MAX, offset = 0;
    struct wbuf w = {0};
    int rc;

    rc = gw__admin_query(req->query, "sort", sort, sizeof sort);
    if (rc == 0) {
        if (strcmp(sort, "mailbox") == 0)
            key = SORT_MAILBOX;
        else if (strcmp(sort, "reductions") == 0)
            key = SORT_REDUCTIONS;
        else if (strcmp(sort, "memory") == 0)
            key = SORT_MEMORY;
        else if (strcmp(sort, "age") == 0)
            key = SORT_AGE;
        else
            rc = -EINVAL;
    }
    if (rc == -EINVAL) {
        gw__admin_errorf(resp, 400, "bad_request",
                         "sort must be one of mailbox, reductions, memory, age");
        goto out;
    }
    rc = query_u64(req, "limit", &limit);
    if (rc == -EINVAL || (rc == 0 && limit == 0)) {
        gw__admin_errorf(resp, 400, "bad_request", "limit must be a positive integer");
        goto out;
    }
    rc = query_u64(req, "offset", &offset);
    if (rc == -EINVAL) {
        gw__admin_errorf(resp, 400, "bad_request", "offset must be a non-negative integer");
        goto out;
    }
    rc = gw__admin_query(req->query, "name", name, sizeof name);
    if (rc == -EINVAL) {
        gw__admin_errorf(resp, 400, "bad_request", "name must be at most 127 bytes");
        goto out;
    }
    s.name_filter = rc == 0 && name[0] ? name : NULL;
    rc = gw__admin_query(req->query, "kind", kind, sizeof kind);
    if (rc == 0 && parse_kinds(kind, &s.kind_mask) < 0)
        rc = -EINVAL;
    if (rc == -EINVAL) {
        gw__admin_errorf(resp, 400, "bad_request",
                         "kind must be a comma-separated list of process, server, supervisor, "
                         "statem, task, acceptor, connection, request");
        goto out;
    }

    rt_processes_foreach(visit, &s);
    if (s.oom) {
        gw__admin_errorf(resp, 503, "out_of_memory", "the snapshot did not fit in memory");
        goto out;
    }
    if (key == SORT_MAILBOX)
        qsort(s.recs, s.n, sizeof *s.recs, cmp_mailbox_len);
    else if (key == SORT_REDUCTIONS)
        qsort(s.recs, s.n, sizeof *s.recs, cmp_reductions);
    else if (key == SORT_MEMORY)
        qsort(s.recs, s.n, sizeof *s.recs, cmp_memory);
    else if (key == SORT_AGE)
        qsort(s.recs, s.n, sizeof *s.recs, cmp_age);

    uint64_t now = rt_now_ms();
    size_t first = offset < s.n ? (size_t)offset : s.n;
    size_t count = s.n - first;
    if (limit < count)
        count = (size_t)limit;
    wreserve(&w, 128 + count * 320);
    WLIT(&w, "{\"total\":");
    wu64(&w, s.total);
    WLIT(&w, ",\"matched\":");
    wu64(&w, s.n);
    WLIT(&w, ",\"offset\":");
    wu64(&w, first);
    WLIT(&w, ",\"returned\":");
    wu64(&w, count);
    WLIT(&w, ",\"processes\":[");
    for (size_t i = first; i < first + count && !w.oom; i++) {
        if (i > first)
            WLIT(&w, ",");
        prec_write(&w, &s.recs[i], s.arena, now);
        WLIT(&w, "}");
        /* A large answer is work like any other: let the scheduler run others. */
        if ((i & 255) == 255)
            rt_reductions(256);
    }
    WLIT(&w, "]}\n");
    wanswer(&w, resp);
out:
    free(w.p);
    snap_done(&s);
}

/* ---- one process ---------------------------------------------------------- */

static bool is_behaviour(rt_kind k)
{
    return k == RT_KIND_SERVER || k == RT_KIND_SUPERVISOR || k == RT_KIND_STATEM;
}

static json_t *sys_json(rt_pid pid)
{
    struct rt_sys_status st;
    int rc = rt_sys_get_status(pid, GW_ADMIN_SYS_TIMEOUT_MS, &st);
    if (rc < 0)
        return json_pack("{s:s}", "error", rc == -ETIMEDOUT ? "timeout" : strerror(-rc));
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "module", json_string(st.module));
    json_object_set_new(o, "behaviour", json_string(st.behaviour));
    json_object_set_new(o, "status",
                        json_string(st.status == RT_SYS_SUSPENDED ? "suspended" : "running"));
    json_object_set_new(o, "suspended", json_boolean(st.status == RT_SYS_SUSPENDED));
    json_object_set_new(o, "state_name", str_or_null(st.state_name));
    json_object_set_new(o, "state", str_or_null(st.formatted));
    json_object_set_new(o, "debug", json_integer(st.debug));
    json_object_set_new(o, "log_len", json_integer((json_int_t)st.log_len));

    struct rt_sys_statistics stats;
    rc = rt_sys_statistics(pid, RT_SYS_GET, GW_ADMIN_SYS_TIMEOUT_MS, &stats);
    if (rc == 0)
        json_object_set_new(
            o, "statistics",
            json_pack("{s:I,s:I,s:I,s:I,s:I}", "start_time_ms", (json_int_t)stats.start_time_ms,
                      "current_time_ms", (json_int_t)stats.current_time_ms, "reductions",
                      (json_int_t)stats.reductions, "messages_in", (json_int_t)stats.messages_in,
                      "messages_out", (json_int_t)stats.messages_out));
    else
        json_object_set_new(o, "statistics", json_null());

    json_t *log = json_null();
    if (st.debug & RT_DEBUG_LOG) {
        enum { LOG_MAX = 64 };
        struct rt_sys_event ev[LOG_MAX];
        size_t count = 0;
        if (rt_sys_log_get(pid, ev, LOG_MAX, &count, GW_ADMIN_SYS_TIMEOUT_MS) == 0) {
            json_decref(log);
            log = json_array();
            for (size_t i = 0; i < count && i < LOG_MAX; i++)
                json_array_append_new(
                    log, json_pack("{s:I,s:s,s:I,s:o,s:i}", "time_ms", (json_int_t)ev[i].time_ms,
                                   "event", rt_sys_event_name(ev[i].kind), "msg_type",
                                   (json_int_t)ev[i].msg_type, "peer",
                                   gw__admin_pid_json(ev[i].peer), "state", ev[i].state));
        }
    }
    json_object_set_new(o, "log", log);
    return o;
}

void gw__admin_process(const struct gw_admin_request *req, struct gw_admin_response *resp,
                       rt_pid pid)
{
    struct rt_proc_info info;
    struct snap s = {0};
    struct wbuf w = {0};
    rt_pid *links = NULL;
    if (rt_proc_info(pid, &info) < 0) {
        gw__admin_error(resp, 404, "no_such_process",
                        json_pack("{s:o}", "pid", gw__admin_pid_json(pid)));
        goto out;
    }
    /* The record as the list writes it, then this answer's own members. */
    if (snap_add(&s, &info) == 0)
        prec_write(&w, &s.recs[0], s.arena, rt_now_ms());
    else
        w.oom = true;
    enum { LINKS_MAX = 1024 };
    links = malloc(LINKS_MAX * sizeof *links);
    int nl = links ? rt_proc_links(pid, links, LINKS_MAX) : -ENOMEM;
    json_t *la = json_array();
    for (int i = 0; la && i < nl && i < LINKS_MAX; i++)
        json_array_append_new(la, gw__admin_pid_json(links[i]));
    WLIT(&w, ",\"linked\":");
    wjson(&w, la);
    if (info.name[0])
        WLIT(&w, ",\"registered\":true,\"sys\":");
    else
        WLIT(&w, ",\"registered\":false,\"sys\":");
    wjson(&w, is_behaviour(info.kind) && pid != rt_self() ? sys_json(pid) : json_null());
    WLIT(&w, "}\n");
    wanswer(&w, resp);
out:
    free(links);
    free(w.p);
    snap_done(&s);
}

/* ---- kill ------------------------------------------------------------------ */

static pthread_mutex_t reasons_lock = PTHREAD_MUTEX_INITIALIZER;
static char reasons[GW_ADMIN_MAX_KILL_REASONS][33] = {"killed_by_admin"};
static size_t nreasons = 1;

static bool reason_chars_ok(const char *r)
{
    size_t n = strlen(r);
    if (n < 1 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || r[i] == '_'))
            return false;
    return true;
}

/* 0 when `r` is one of the kill reasons in use or could be added. */
static int reason_admit(const char *r)
{
    int rc = -ENOSPC;
    pthread_mutex_lock(&reasons_lock);
    for (size_t i = 0; i < nreasons; i++) {
        if (strcmp(reasons[i], r) == 0) {
            rc = 0;
            goto out;
        }
    }
    if (nreasons < GW_ADMIN_MAX_KILL_REASONS) {
        snprintf(reasons[nreasons++], sizeof reasons[0], "%s", r);
        rc = 0;
    }
out:
    pthread_mutex_unlock(&reasons_lock);
    return rc;
}

bool gw__admin_kill_reason(rt_atom reason)
{
    const char *name = rt_atom_name(reason);
    bool found = false;
    pthread_mutex_lock(&reasons_lock);
    for (size_t i = 0; i < nreasons && !found; i++)
        found = strcmp(reasons[i], name) == 0;
    pthread_mutex_unlock(&reasons_lock);
    return found;
}

void gw__admin_kill(const struct gw_admin_request *req, struct gw_admin_response *resp, rt_pid pid)
{
    char reason[33] = "killed_by_admin";
    json_t *body = NULL;
    if (req->body_len > 0) {
        json_error_t err;
        body = json_loadb(req->body, req->body_len, 0, &err);
        json_t *r = json_object_get(body, "reason");
        if (!json_is_object(body) || (r && !json_is_string(r))) {
            gw__admin_errorf(resp, 400, "bad_request",
                             "expected an empty body or {\"reason\": \"...\"}");
            goto out;
        }
        if (r) {
            const char *rs = json_string_value(r);
            if (!reason_chars_ok(rs)) {
                gw__admin_errorf(resp, 400, "bad_reason",
                                 "a reason is 1 to 32 characters of a-z and _");
                goto out;
            }
            if (strcmp(rs, "normal") == 0) {
                gw__admin_errorf(resp, 400, "bad_reason",
                                 "normal does not stop a process; use another reason");
                goto out;
            }
            snprintf(reason, sizeof reason, "%s", rs);
        }
        /* The reason is copied: the body is not kept across the wait below,
         * where this process may itself be killed (when it kills the tree
         * it belongs to) and would leak it. */
        json_decref(body);
        body = NULL;
    }
    if (reason_admit(reason) < 0) {
        gw__admin_errorf(resp, 400, "bad_reason",
                         "too many distinct kill reasons in use (at most %d); reuse one",
                         GW_ADMIN_MAX_KILL_REASONS);
        goto out;
    }
    if (pid == rt_self() || pid == rt_parent()) {
        gw__admin_errorf(resp, 409, "conflict",
                         "that is the process answering this request, or its connection");
        goto out;
    }
    if (!rt_is_alive(pid)) {
        gw__admin_error(resp, 404, "no_such_process",
                        json_pack("{s:o}", "pid", gw__admin_pid_json(pid)));
        goto out;
    }
    rt_ref mref = rt_monitor(pid);
    rt_atom ra = rt_atom_intern(reason);
    if (rt_exit_signal(pid, ra) < 0) {
        rt_demonitor(mref, true);
        gw__admin_error(resp, 404, "no_such_process",
                        json_pack("{s:o}", "pid", gw__admin_pid_json(pid)));
        goto out;
    }
    struct rt_msg *down = rt_receive_ref(mref, GW_ADMIN_KILL_WAIT_MS);
    json_t *o = json_object();
    json_object_set_new(o, "pid", gw__admin_pid_json(pid));
    json_object_set_new(o, "reason", json_string(reason));
    if (down) {
        json_object_set_new(o, "exited", json_true());
        json_object_set_new(o, "exit_reason", json_string(rt_atom_name((rt_atom)down->u64)));
        rt_msg_free(down);
        gw__admin_json(resp, 200, o);
    } else {
        rt_demonitor(mref, true);
        json_object_set_new(o, "exited", json_false());
        json_object_set_new(o, "exit_reason", json_null());
        json_object_set_new(o, "note",
                            json_string("still alive: it traps exits and chose to go on"));
        gw__admin_json(resp, 202, o);
    }
out:
    json_decref(body);
}

/* ---- restart --------------------------------------------------------------- */

void gw__admin_restart(const struct gw_admin_request *req, struct gw_admin_response *resp,
                       rt_pid pid)
{
    struct rt_proc_info info, sinfo;
    struct rt_child_info *children = NULL;
    size_t count = 0;
    int rc;
    if (rt_proc_info(pid, &info) < 0) {
        gw__admin_error(resp, 404, "no_such_process",
                        json_pack("{s:o}", "pid", gw__admin_pid_json(pid)));
        goto out;
    }
    /* Only a supervisor answers supervisor calls; anything else would leave
     * the call waiting until its deadline. */
    if (!info.parent || rt_proc_info(info.parent, &sinfo) < 0 || sinfo.kind != RT_KIND_SUPERVISOR) {
        gw__admin_errorf(resp, 409, "not_supervised", "the process has no supervisor");
        goto out;
    }
    children = calloc(GW_ADMIN_TREE_MAX_CHILDREN, sizeof *children);
    if (!children) {
        gw__admin_errorf(resp, 503, "out_of_memory", "no memory for the children list");
        goto out;
    }
    rc = rt_sup_which_children_timeout(info.parent, GW_ADMIN_CALL_TIMEOUT_MS, children,
                                       GW_ADMIN_TREE_MAX_CHILDREN, &count);
    if (rc == -ETIMEDOUT) {
        gw__admin_timeout(resp, info.parent, NULL, "which_children", GW_ADMIN_CALL_TIMEOUT_MS);
        goto out;
    }
    if (rc < 0) {
        gw__admin_errorf(resp, 503, "supervisor_unavailable", "which_children: %s", strerror(-rc));
        goto out;
    }
    const struct rt_child_info *c = NULL;
    for (size_t i = 0; i < count && i < GW_ADMIN_TREE_MAX_CHILDREN; i++)
        if (children[i].pid == pid)
            c = &children[i];
    if (!c || !c->id[0]) {
        gw__admin_errorf(resp, 409, "not_restartable",
                         "not a child with an id of its supervisor (simple_one_for_one "
                         "children have none); kill it instead");
        goto out;
    }
    if (c->restart == RT_TEMPORARY) {
        gw__admin_errorf(resp, 409, "not_restartable",
                         "child \"%s\" is temporary: its supervisor forgets it when it stops",
                         c->id);
        goto out;
    }
    char id[sizeof c->id];
    memcpy(id, c->id, sizeof id);
    uint64_t deadline = rt_now_ms() + GW_ADMIN_RESTART_TIMEOUT_MS;
    rc = rt_sup_terminate_child_timeout(info.parent, id, ms_left(deadline));
    if (rc == -ETIMEDOUT) {
        gw__admin_timeout(resp, info.parent, NULL, "terminate_child", GW_ADMIN_RESTART_TIMEOUT_MS);
        goto out;
    }
    if (rc < 0) {
        gw__admin_errorf(resp, 409, "conflict", "terminate_child(%s): %s", id, strerror(-rc));
        goto out;
    }
    rt_pid newpid = 0;
    rt_atom why = 0;
    rc = rt_sup_restart_child_timeout(info.parent, id, ms_left(deadline), &newpid, &why);
    if (rc == -ETIMEDOUT) {
        gw__admin_timeout(resp, info.parent, NULL, "restart_child", GW_ADMIN_RESTART_TIMEOUT_MS);
        goto out;
    }
    if (rc < 0) {
        gw__admin_error(resp, 500, "restart_failed",
                        json_pack("{s:s,s:s,s:s}", "id", id, "error", strerror(-rc), "reason",
                                  rc == -ECHILD ? rt_atom_name(why) : ""));
        goto out;
    }
    gw__admin_json(resp, 200,
                   json_pack("{s:o,s:o,s:o,s:s}", "pid", gw__admin_pid_json(pid), "new_pid",
                             gw__admin_pid_json(newpid), "supervisor",
                             gw__admin_pid_json(info.parent), "id", id));
out:
    free(children);
}

/* ---- supervision tree ------------------------------------------------------ */

/* One walk of the tree: every describe call shares the deadline, and the
 * first one that passes it ends the walk (timed_out names that
 * supervisor). Each level's children are read into a block of its own,
 * sized to them (sup_children). */
struct tree_walk {
    uint64_t deadline;
    bool out_of_memory; /* a level's block could not be had: answer 503 */
    rt_pid timed_out;
};

static json_t *sup_json(rt_pid sup, int depth, struct tree_walk *tw);

static json_t *child_json(const struct rt_child_info *c, int depth, struct tree_walk *tw)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    struct rt_proc_info info;
    bool alive = c->pid && rt_proc_info(c->pid, &info) == 0;
    json_object_set_new(o, "id", str_or_null(c->id));
    json_object_set_new(o, "pid", gw__admin_pid_json(c->pid));
    json_object_set_new(o, "name", alive ? str_or_null(info.name) : json_null());
    json_object_set_new(o, "type", json_string(rt_child_type_name(c->type)));
    json_object_set_new(o, "restart", json_string(rt_restart_name(c->restart)));
    json_object_set_new(o, "status", json_string(rt_child_status_name(c->status)));
    json_object_set_new(o, "restarts", json_integer((json_int_t)c->restarts));
    json_object_set_new(o, "significant", json_boolean(c->significant));
    if (c->shutdown == RT_SHUTDOWN_BRUTAL_KILL)
        json_object_set_new(o, "shutdown", json_string("brutal_kill"));
    else if (c->shutdown == RT_SHUTDOWN_INFINITY)
        json_object_set_new(o, "shutdown", json_string("infinity"));
    else if (c->shutdown == RT_SHUTDOWN_ZERO)
        json_object_set_new(o, "shutdown", json_integer(0)); /* a timeout of 0 ms */
    else
        json_object_set_new(o, "shutdown", json_integer((json_int_t)c->shutdown));
    if (c->type == RT_SUPERVISOR && alive && info.kind == RT_KIND_SUPERVISOR &&
        depth < GW_ADMIN_TREE_MAX_DEPTH) {
        json_t *sub = sup_json(c->pid, depth + 1, tw);
        if (sub) {
            json_object_set(o, "supervisor", json_object_get(sub, "supervisor"));
            json_object_set(o, "children", json_object_get(sub, "children"));
            json_decref(sub);
        }
    }
    return o;
}

/* Describes sup into *d with its first min(d->children,
 * GW_ADMIN_TREE_MAX_CHILDREN) children in *out (malloc'd, to free; NULL on
 * an error). A block for the most children a level may show is over
 * 100 KiB, per level, per call, and most supervisors have a few: the first
 * call has room for TREE_FIRST_CHILDREN (7 KiB); when there are more (a
 * connection supervisor with its connections), the second has room for
 * twice as many as there were (they may have grown meanwhile), and a
 * third, if needed, for the most. */
#define TREE_FIRST_CHILDREN 64
static int sup_children(rt_pid sup, struct tree_walk *tw, struct rt_sup_description *d,
                        struct rt_child_info **out)
{
    size_t room = TREE_FIRST_CHILDREN;
    *out = NULL;
    for (int attempt = 0;; attempt++) {
        struct rt_child_info *c = malloc(room * sizeof *c);
        if (!c) {
            tw->out_of_memory = true;
            return -ENOMEM;
        }
        int rc = rt_sup_describe_timeout(sup, ms_left(tw->deadline), d, c, room);
        if (rc < 0) {
            free(c);
            return rc;
        }
        if (d->children <= room || room == GW_ADMIN_TREE_MAX_CHILDREN) {
            *out = c;
            return rc;
        }
        free(c);
        room = attempt == 0 && d->children < GW_ADMIN_TREE_MAX_CHILDREN / 2
                   ? 2 * d->children
                   : GW_ADMIN_TREE_MAX_CHILDREN;
    }
}

/* {"pid","name","supervisor": {strategy, intensity, period_s, restarts,
 * restarts_in_period, children_total, children_truncated, children_order},
 * "children": [...]}. Children come as rt_sup_describe gives them: in start
 * order, oldest first, which children_order states ("start"; OTP's own
 * which_children lists static children newest first). NULL once the walk
 * has timed out (or out of memory). */
static json_t *sup_json(rt_pid sup, int depth, struct tree_walk *tw)
{
    struct rt_sup_description d;
    struct rt_child_info *mine = NULL;
    if (tw->timed_out)
        return NULL;
    int rc = sup_children(sup, tw, &d, &mine);
    if (rc == -ETIMEDOUT) {
        tw->timed_out = sup;
        return NULL;
    }
    json_t *o = json_object();
    if (!o) {
        free(mine);
        return NULL;
    }
    struct rt_proc_info info;
    json_object_set_new(o, "pid", gw__admin_pid_json(sup));
    json_object_set_new(o, "name",
                        rt_proc_info(sup, &info) == 0 ? str_or_null(info.name) : json_null());
    if (rc < 0) {
        json_object_set_new(o, "supervisor", json_pack("{s:s}", "error", strerror(-rc)));
        json_object_set_new(o, "children", json_array());
        return o;
    }
    size_t n = d.children < GW_ADMIN_TREE_MAX_CHILDREN ? d.children : GW_ADMIN_TREE_MAX_CHILDREN;
    json_object_set_new(o, "supervisor",
                        json_pack("{s:s,s:i,s:i,s:I,s:I,s:I,s:b,s:s}", "strategy",
                                  rt_sup_strategy_name(d.flags.strategy), "intensity",
                                  d.flags.intensity, "period_s", d.flags.period_s, "restarts",
                                  (json_int_t)d.restarts, "restarts_in_period",
                                  (json_int_t)d.restarts_in_period, "children_total",
                                  (json_int_t)d.children, "children_truncated", d.children > n,
                                  "children_order", "start"));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, child_json(&mine[i], depth, tw));
    free(mine);
    json_object_set_new(o, "children", arr);
    return o;
}

void gw__admin_supervisors(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    /* gw.sup is written once rt_sup_start_link has returned, but the admin
     * listener is one of the children it starts and may answer before that:
     * the registered name is there from the supervisor's spawn on. */
    rt_pid sup = gw.sup ? gw.sup : rt_whereis("tandem_sup");
    if (!sup) {
        gw__admin_errorf(resp, 503, "not_started", "the supervision tree is not running");
        return;
    }
    struct tree_walk tw = {.deadline = rt_now_ms() + GW_ADMIN_CALL_TIMEOUT_MS};
    json_t *root = sup_json(sup, 0, &tw);
    if (tw.out_of_memory) {
        json_decref(root);
        gw__admin_errorf(resp, 503, "out_of_memory", "no memory for the tree");
        return;
    }
    if (tw.timed_out) {
        json_decref(root);
        gw__admin_timeout(resp, tw.timed_out, NULL, "describe", GW_ADMIN_CALL_TIMEOUT_MS);
        return;
    }
    gw__admin_json(resp, 200, json_pack("{s:o*}", "tree", root));
}
