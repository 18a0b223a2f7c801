/*
 * redis.c: the policies' Redis client (redis.h): the supervisor
 * "redis_sup", its connection process "gw_redis", the rate-limit script
 * and the call request processes make (gw_redis_ratelimit).
 *
 * One connection, owned by one process, pipelined. Redis runs commands one
 * at a time, so several connections buy no parallelism at the server; what
 * a connection costs per command is a write and a read, and pipelining
 * shares them among every command that arrived meanwhile: under load one
 * write carries a whole batch and one read brings its answers. A request
 * process sends its call (a gen_server call: alias and monitor, so a late
 * answer is dropped and a dead client is noticed) and parks; the
 * connection process drains its mailbox, appends each command to hiredis's
 * output buffer, writes once, and parks on the socket and its mailbox at
 * once (rt_poll with RT_POLL_MSG). Checking a connection out per request
 * would serialise each request on its own round trip and cost a pool's
 * bookkeeping for nothing Redis can use.
 *
 * hiredis's asynchronous context does the protocol; its event hooks only
 * record whether it wants to write, and the process calls
 * redisAsyncHandleRead/Write when rt_poll says the socket is ready. No
 * runtime call is made inside a hiredis callback: callbacks record answers
 * on a list, which the loop sends once hiredis has returned, so an exit
 * signal never finds the process inside hiredis. Host names are resolved on
 * the blocking pool (getaddrinfo); hiredis is given the numeric address.
 * hiredis writes with write(2): a write to a connection Redis has closed
 * fails with EPIPE because the gateway ignores SIGPIPE (gateway.c).
 *
 * States: disconnected (waiting out a backoff), connecting (TCP, AUTH,
 * SELECT and SCRIPT LOAD pipelined; ready when the script's SHA-1 comes
 * back), ready. Calls that arrive when not ready are answered -ENOTCONN at
 * once; a caller that finds the published flag down does not even call.
 * The connection is dropped (and remade after a backoff, jittered so that
 * replicas do not reconnect in step) when it fails, when setting it up
 * takes longer than connect_timeout_ms, or when its oldest command has
 * waited STALL_FACTOR × timeout_ms (at least STALL_MIN_MS): its callers
 * gave up long ago, and a stopped server should not hold the queue.
 */
#include "policy/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "gw/metrics.h"
#include "rt/gen_server.h"
#include "rt/proc_lib.h"
#include "rt/supervisor.h"
#include "tls/compat.h"

#define STALL_FACTOR 4
#define STALL_MIN_MS 1000
/* Calls taken from the mailbox before the socket is served again. */
#define BATCH 512

/* KEYS[1] the window's key, ARGV[1] its length in ms. The first hit of a
 * window sets its expiry; a key found without one (written by something
 * else) gets one, so that no window lasts for ever. */
const char gw__redis_script[] = "local c = redis.call('INCR', KEYS[1])\n"
                                "local t\n"
                                "if c == 1 then\n"
                                "  redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
                                "  t = tonumber(ARGV[1])\n"
                                "else\n"
                                "  t = redis.call('PTTL', KEYS[1])\n"
                                "  if t < 0 then\n"
                                "    redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
                                "    t = tonumber(ARGV[1])\n"
                                "  end\n"
                                "end\n"
                                "return {c, t}\n";

/* The call's message (type MSG_WINDOW; `key` is the Redis key, prefix
 * included) and its answer. */
enum { MSG_WINDOW = 1 };
struct window_req {
    uint32_t window_ms;
    uint32_t key_len;
    char key[];
};
struct window_ans {
    int32_t rc;
    uint32_t count, reset_ms;
};

/* Published by the connection process for callers on any scheduler. */
static _Atomic rt_pid client_pid;
static _Atomic bool client_ready;
static _Atomic uint32_t client_timeout_ms;

/* ---- the script's answer and the backoff (pure) ---------------------------- */

int gw__redis_parse_window(const struct redisReply *r, uint32_t *count, uint32_t *reset_ms)
{
    if (!r)
        return -EPROTO;
    if (r->type == REDIS_REPLY_ERROR)
        return r->str && strncmp(r->str, "NOSCRIPT", 8) == 0 ? -ENOENT : -EPROTO;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element)
        return -EPROTO;
    const struct redisReply *c = r->element[0], *t = r->element[1];
    if (!c || !t || c->type != REDIS_REPLY_INTEGER || t->type != REDIS_REPLY_INTEGER ||
        c->integer < 1)
        return -EPROTO;
    *count = c->integer > (long long)UINT32_MAX ? UINT32_MAX : (uint32_t)c->integer;
    *reset_ms = t->integer < 0                       ? 0
                : t->integer > (long long)UINT32_MAX ? UINT32_MAX
                                                     : (uint32_t)t->integer;
    return 0;
}

uint32_t gw__redis_backoff_ms(unsigned failures, uint32_t rnd)
{
    uint32_t cap = GW_REDIS_BACKOFF_MAX_MS;
    if (failures >= 1 && failures - 1 < 16) {
        uint32_t v = (uint32_t)GW_REDIS_BACKOFF_MIN_MS << (failures - 1);
        if (v < cap)
            cap = v;
    }
    uint32_t half = cap / 2;
    return half + rnd % (cap - half + 1);
}

/* ---- the connection process ------------------------------------------------- */

enum cmd_kind { CMD_WINDOW, CMD_SETUP, CMD_LOAD };

/* A command hiredis holds a callback for (or, on the done list, an answer
 * waiting to be sent). Process-owned memory. */
struct cmd {
    struct cmd *prev, *next;
    struct client *c;
    enum cmd_kind kind;
    struct rt_gs_from from; /* CMD_WINDOW: the caller */
    uint64_t sent_ms;
    bool resent; /* sent whole (EVAL) after a NOSCRIPT */
    struct window_ans ans;
    char window[12]; /* decimal */
    size_t key_len;
    char key[]; /* the Redis key, as the caller made it */
};

struct client {
    char *host;     /* as configured */
    char *address;  /* host:port, for logs */
    char *password; /* NULL: no AUTH; never logged */
    uint16_t port;
    uint32_t database, timeout_ms, connect_timeout_ms;
    redisAsyncContext *ac; /* NULL: disconnected */
    bool want_write;
    bool ready;
    bool exiting;            /* the deferred cleanup runs: callbacks only return */
    bool lost;               /* the context was freed: schedule a reconnection */
    bool drop;               /* a callback asks the loop to drop the connection */
    uint64_t deadline;       /* connecting: set up by then */
    uint64_t next_try;       /* disconnected: connect again then */
    unsigned failures;       /* consecutive failed attempts */
    uint32_t rnd;            /* jitter state (xorshift) */
    char sha[41];            /* the script's, from SCRIPT LOAD */
    struct cmd *head, *tail; /* in flight, oldest first */
    size_t inflight;
    struct cmd *done; /* answered calls, sent by the loop (LIFO is fine) */
    char why[GW_METRICS_REDIS_ERROR_TEXT];
};

static void link_tail(struct client *c, struct cmd *k)
{
    k->next = NULL;
    k->prev = c->tail;
    if (c->tail)
        c->tail->next = k;
    else
        c->head = k;
    c->tail = k;
    c->inflight++;
}

static void unlink_cmd(struct client *c, struct cmd *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        c->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        c->tail = k->prev;
    k->prev = k->next = NULL;
    c->inflight--;
}

/* Records why the connection goes: "what: detail" (or "what"). */
static void set_why(struct client *c, const char *what, const char *detail)
{
    if (c->why[0])
        return; /* the first reason is the one that counts */
    snprintf(c->why, sizeof c->why, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

/* hiredis's event hooks: the loop polls by itself, so only the wish to
 * write is recorded; the cleanup hook says the context is being freed. */
static void ev_nop(void *priv)
{
    (void)priv;
}
static void ev_add_write(void *priv)
{
    ((struct client *)priv)->want_write = true;
}
static void ev_del_write(void *priv)
{
    ((struct client *)priv)->want_write = false;
}
static void ev_cleanup(void *priv)
{
    struct client *c = priv;
    if (c->ac && c->ac->err)
        set_why(c, c->ac->errstr, NULL);
    c->ac = NULL;
    c->want_write = false;
    c->lost = true;
}

static void send_window_cmd(struct client *c, struct cmd *k, bool whole);

/* A reply, or NULL when the context is freed with the command in flight. */
static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct cmd *k = priv;
    struct client *c = k->c;
    const redisReply *r = reply;
    if (c->exiting)
        return;
    unlink_cmd(c, k);
    switch (k->kind) {
    case CMD_SETUP:
        if (r && r->type == REDIS_REPLY_ERROR) {
            set_why(c, "setting the connection up", r->str);
            c->drop = true;
        }
        rt_free(k);
        return;
    case CMD_LOAD:
        if (r && r->type == REDIS_REPLY_STRING && r->len == 40) {
            memcpy(c->sha, r->str, 40);
            c->sha[40] = '\0';
            c->ready = true;
        } else if (r) {
            set_why(c, "SCRIPT LOAD", r->type == REDIS_REPLY_ERROR ? r->str : "an odd answer");
            c->drop = true;
        }
        rt_free(k);
        return;
    case CMD_WINDOW:
        if (!r) {
            k->ans.rc = -ECONNRESET;
        } else {
            int rc = gw__redis_parse_window(r, &k->ans.count, &k->ans.reset_ms);
            if (rc == -ENOENT && !k->resent) {
                /* The script cache was flushed: send it whole, once. */
                k->resent = true;
                send_window_cmd(c, k, true);
                if (k->prev || c->tail == k)
                    return; /* in flight again */
                rc = -ENOTCONN;
            }
            k->ans.rc = rc == -ENOENT ? -EPROTO : rc;
        }
        k->next = c->done;
        c->done = k;
        return;
    }
}

/* Queues the window command k (EVALSHA, or EVAL with `whole`) and links
 * it in flight; on failure k is left unlinked. */
static void send_window_cmd(struct client *c, struct cmd *k, bool whole)
{
    const char *argv[5] = {whole ? "EVAL" : "EVALSHA", whole ? gw__redis_script : c->sha, "1",
                           k->key, k->window};
    size_t lens[5] = {strlen(argv[0]), strlen(argv[1]), 1, k->key_len, strlen(k->window)};
    if (c->ac && redisAsyncCommandArgv(c->ac, on_reply, k, 5, argv, lens) == REDIS_OK)
        link_tail(c, k);
}

static void answer(const struct rt_gs_from *from, int rc, uint32_t count, uint32_t reset_ms)
{
    struct window_ans a = {.rc = rc, .count = count, .reset_ms = reset_ms};
    struct rt_msg *m = rt_msg_copy(0, &a, sizeof a);
    if (m)
        rt_gen_server_reply(from, m);
    /* Out of memory: the caller times out and applies on_redis_error. */
}

/* Sends the answers callbacks recorded. */
static void flush_done(struct client *c)
{
    while (c->done) {
        struct cmd *k = c->done;
        c->done = k->next;
        answer(&k->from, k->ans.rc, k->ans.count, k->ans.reset_ms);
        rt_free(k);
    }
}

static void publish_ready(struct client *c, bool ready)
{
    c->ready = ready;
    /* relaxed: a hint for callers; the process itself checks again. */
    atomic_store_explicit(&client_ready, ready, memory_order_relaxed);
    gw_metrics_redis_up(ready);
}

static uint32_t next_rnd(struct client *c)
{
    uint32_t x = c->rnd;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return c->rnd = x;
}

/* The context is gone (failed, dropped or lost): count it, log it once per
 * outage, and schedule the next attempt. */
static void after_loss(struct client *c)
{
    bool was_ready = c->ready;
    c->lost = false;
    c->drop = false;
    if (was_ready)
        publish_ready(c, false);
    c->failures++;
    uint64_t wait = gw__redis_backoff_ms(c->failures, next_rnd(c));
    c->next_try = rt_now_ms() + wait;
    const char *why = c->why[0] ? c->why : "connection closed";
    gw_metrics_redis_error(GW_METRICS_REDIS_CONNECTION, why);
    if (was_ready || c->failures == 1)
        rt_log(RT_LOG_WARNING, "redis %s: %s%s; connecting again in %llu ms (and backing off)",
               c->address, was_ready ? "connection lost: " : "", why, (unsigned long long)wait);
    c->why[0] = '\0';
}

/* Drops the connection now (not from a callback). */
static void drop(struct client *c)
{
    if (c->ac)
        redisAsyncFree(c->ac); /* callbacks with NULL, then ev_cleanup */
    flush_done(c);
    if (c->lost || !c->ac)
        after_loss(c);
}

/* A name resolution on the blocking pool, shared by the client and the
 * pool's thread with a count: a client stopped while getaddrinfo runs
 * drops its reference in its deferred cleanup, and the thread, done, frees
 * the job; it never writes to the client's memory, gone by then. */
struct resolve {
    _Atomic int refs;
    char resolved[INET6_ADDRSTRLEN];
    char host[];
};

static void resolve_unref(void *arg)
{
    struct resolve *j = arg;
    /* acq_rel: the last owner sees everything the other wrote. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1)
        free(j);
}

static intptr_t resolve_job(void *arg)
{
    struct resolve *j = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(j->host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        resolve_unref(j);
        return rc ? rc : EAI_NONAME;
    }
    const void *a = res->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    if (!inet_ntop(res->ai_family, a, j->resolved, sizeof j->resolved))
        rc = EAI_FAIL;
    freeaddrinfo(res);
    resolve_unref(j);
    return rc;
}

/* Resolves c->host into ip on the blocking pool: 0, or -1 with the reason
 * recorded. Parks. */
static int resolve(struct client *c, char ip[INET6_ADDRSTRLEN])
{
    size_t n = strlen(c->host) + 1;
    struct resolve *j = malloc(sizeof *j + n);
    uint64_t d = 0;
    if (!j || !(d = rt_defer(resolve_unref, j))) {
        free(j);
        set_why(c, "resolving the host", "out of memory");
        return -1;
    }
    atomic_init(&j->refs, 2);
    j->resolved[0] = '\0';
    memcpy(j->host, c->host, n);
    intptr_t rc = 0;
    int r = rt_blocking(resolve_job, j, &rc);
    if (r < 0)
        resolve_unref(j); /* the pool's reference: the job never ran */
    else if (rc == 0)
        memcpy(ip, j->resolved, INET6_ADDRSTRLEN);
    rt_undefer(d, true);
    if (r < 0 || rc != 0) {
        set_why(c, "resolving the host", r < 0 ? strerror(-r) : gai_strerror((int)rc));
        return -1;
    }
    return 0;
}

static bool queue_setup(struct client *c, enum cmd_kind kind, int argc, const char **argv,
                        const size_t *lens)
{
    struct cmd *k = rt_calloc(1, sizeof(*k));
    if (!k)
        return false;
    k->c = c;
    k->kind = kind;
    k->sent_ms = rt_now_ms();
    if (redisAsyncCommandArgv(c->ac, on_reply, k, argc, argv, lens) != REDIS_OK) {
        rt_free(k);
        return false;
    }
    link_tail(c, k);
    return true;
}

/* Starts a connection: TCP, then AUTH, SELECT and SCRIPT LOAD pipelined. */
static void connect_start(struct client *c)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned char bin[16];
    c->why[0] = '\0';
    if (inet_pton(AF_INET, c->host, bin) == 1 || inet_pton(AF_INET6, c->host, bin) == 1) {
        snprintf(ip, sizeof ip, "%s", c->host);
    } else {
        if (resolve(c, ip) < 0) {
            c->lost = true;
            return;
        }
    }
    redisAsyncContext *ac = redisAsyncConnect(ip, c->port);
    if (!ac || ac->err) {
        set_why(c, "connecting", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        c->lost = true;
        return;
    }
    c->ac = ac;
    ac->ev.data = c;
    ac->ev.addRead = ev_nop;
    ac->ev.delRead = ev_nop;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    c->want_write = true; /* the connect completes when the socket is writable */
    c->deadline = rt_now_ms() + c->connect_timeout_ms;
    bool ok = true;
    if (c->password) {
        const char *argv[2] = {"AUTH", c->password};
        size_t lens[2] = {4, strlen(c->password)};
        ok = queue_setup(c, CMD_SETUP, 2, argv, lens);
    }
    if (ok && c->database) {
        char db[12];
        snprintf(db, sizeof db, "%u", c->database);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        ok = queue_setup(c, CMD_SETUP, 2, argv, lens);
    }
    if (ok) {
        const char *argv[3] = {"SCRIPT", "LOAD", gw__redis_script};
        size_t lens[3] = {6, 4, sizeof gw__redis_script - 1};
        ok = queue_setup(c, CMD_LOAD, 3, argv, lens);
    }
    if (!ok) {
        set_why(c, "queueing the connection's setup", "out of memory");
        drop(c);
    }
}

static void take_call(struct client *c, struct rt_msg *m)
{
    struct rt_gs_from from = {.pid = m->from, .alias = m->ref};
    const struct window_req *q = (const void *)m->data;
    if (m->size < sizeof(*q) || q->key_len == 0 || m->size - sizeof(*q) < q->key_len) {
        answer(&from, -EINVAL, 0, 0);
        return;
    }
    if (!c->ready || !c->ac) {
        answer(&from, -ENOTCONN, 0, 0);
        return;
    }
    if (c->inflight >= GW_REDIS_MAX_INFLIGHT) {
        answer(&from, -EAGAIN, 0, 0);
        return;
    }
    struct cmd *k = rt_calloc(1, sizeof(*k) + q->key_len);
    if (!k) {
        answer(&from, -ENOMEM, 0, 0);
        return;
    }
    k->c = c;
    k->kind = CMD_WINDOW;
    k->from = from;
    k->sent_ms = rt_now_ms();
    snprintf(k->window, sizeof k->window, "%u", q->window_ms);
    memcpy(k->key, q->key, q->key_len);
    k->key_len = q->key_len;
    send_window_cmd(c, k, false);
    if (!k->prev && c->tail != k) {
        rt_free(k);
        answer(&from, -ENOTCONN, 0, 0);
    }
}

static void client_cleanup(void *arg)
{
    struct client *c = arg;
    c->exiting = true;
    if (c->ac)
        redisAsyncFree(c->ac);
    rt_pid self = rt_self();
    /* relaxed: hints; a caller that still reaches this pid gets -ESRCH. */
    atomic_compare_exchange_strong_explicit(&client_pid, &self, 0, memory_order_relaxed,
                                            memory_order_relaxed);
    atomic_store_explicit(&client_ready, false, memory_order_relaxed);
    gw_metrics_redis_up(false);
}

static int64_t until(uint64_t when, uint64_t now)
{
    return when > now ? (int64_t)(when - now) : 0;
}

static void client_main(void *arg, const struct rt_proc_starter *starter)
{
    const struct gw_redis_config *cfg = arg;
    struct client *c = rt_calloc(1, sizeof(*c));
    if (!c)
        rt_proc_init_fail(starter, rt_atom_intern("enomem"), rt_atom_intern("enomem"));
    c->host = rt_strdup(cfg->address.host);
    c->address = rt_strdup(cfg->address.text);
    c->port = cfg->address.port;
    c->database = cfg->database;
    c->timeout_ms = cfg->timeout_ms;
    c->connect_timeout_ms = cfg->connect_timeout_ms;
    c->rnd = (uint32_t)(rt_self() ^ rt_now_ns()) | 1u;
    const char *pw = cfg->password_env ? getenv(cfg->password_env) : NULL;
    if (pw && *pw)
        c->password = rt_strdup(pw);
    if (!c->host || !c->address || (pw && *pw && !c->password) || !rt_defer(client_cleanup, c))
        rt_proc_init_fail(starter, rt_atom_intern("enomem"), rt_atom_intern("enomem"));
    /* relaxed: configuration and a pid, each read on its own. */
    atomic_store_explicit(&client_timeout_ms, c->timeout_ms, memory_order_relaxed);
    atomic_store_explicit(&client_pid, rt_self(), memory_order_relaxed);
    gw_metrics_redis_configured(c->address);
    rt_set_state_name("connecting");
    rt_set_detail("%s", c->address);
    rt_proc_init_ack(starter);

    uint64_t stall_ms = (uint64_t)c->timeout_ms * STALL_FACTOR;
    if (stall_ms < STALL_MIN_MS)
        stall_ms = STALL_MIN_MS;
    for (;;) {
        uint64_t now = rt_now_ms();
        if (!c->ac && now >= c->next_try) {
            rt_set_state_name("connecting");
            connect_start(c);
            if (c->lost) {
                after_loss(c);
                rt_set_state_name("disconnected");
            }
            continue;
        }
        /* Checked on every turn, not only when the poll times out: a socket
         * that keeps being ready must not keep a dead connection. */
        if (c->ac && !c->ready && now >= c->deadline) {
            char t[80];
            snprintf(t, sizeof t, "not ready within connect_timeout_ms (%u ms)",
                     c->connect_timeout_ms);
            set_why(c, t, NULL);
            drop(c);
            rt_set_state_name("disconnected");
            continue;
        }
        if (c->ac && c->ready && c->head && now >= c->head->sent_ms + stall_ms) {
            char t[80];
            snprintf(t, sizeof t, "no answer for %llu ms", (unsigned long long)stall_ms);
            set_why(c, t, NULL);
            drop(c);
            rt_set_state_name("disconnected");
            continue;
        }
        int64_t timeout = RT_INFINITY;
        if (!c->ac)
            timeout = until(c->next_try, now);
        else if (!c->ready)
            timeout = until(c->deadline, now);
        else if (c->head)
            timeout = until(c->head->sent_ms + stall_ms, now);
        unsigned events = RT_POLL_MSG;
        if (c->ac)
            events |= RT_POLL_IN | (c->want_write ? RT_POLL_OUT : 0);
        int r = rt_poll(c->ac ? c->ac->c.fd : -1, events, timeout);
        if (r == -ETIMEDOUT)
            continue;
        if (r < 0) {
            set_why(c, "waiting on the socket", strerror(-r));
            drop(c);
            rt_set_state_name("disconnected");
            continue;
        }
        bool was_ready = c->ready;
        if ((r & RT_POLL_OUT) && c->ac)
            redisAsyncHandleWrite(c->ac);
        if ((r & RT_POLL_IN) && c->ac)
            redisAsyncHandleRead(c->ac);
        if (r & RT_POLL_MSG) {
            for (int n = 0; n < BATCH; n++) {
                struct rt_msg *m = rt_receive(0);
                if (!m)
                    break;
                if (m->type == (MSG_WINDOW | RT_GS_CALL_BIT))
                    take_call(c, m);
                rt_msg_free(m);
            }
            /* Answers may be waiting while the mailbox keeps the poll busy. */
            if (c->ac && c->head && (c->ac->c.flags & REDIS_CONNECTED))
                redisAsyncHandleRead(c->ac);
        }
        if (c->ac && c->want_write && (c->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(c->ac);
        if (c->drop && c->ac) {
            drop(c);
        } else {
            flush_done(c);
            if (c->lost)
                after_loss(c);
        }
        if (c->ready && !was_ready) {
            c->failures = 0;
            publish_ready(c, true);
            rt_log(RT_LOG_INFO, "redis %s: connected", c->address);
            rt_set_state_name("ready");
        } else if (!c->ac) {
            rt_set_state_name("disconnected");
        }
    }
}

static int client_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                        rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    struct rt_start_opts o = {.name = GW_REDIS_NAME,
                              .initial_call = "gw_redis:client",
                              .timeout_ms = 5000,
                              /* hiredis reads into a 16 KiB buffer on the stack */
                              .stack_size = 256 << 10};
    return rt_proc_start_link(client_main, arg, &o, out, reason);
}

static int redis_sup_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    /* The client handles Redis's failures itself; a crash of it is a bug,
     * restarted a few times before the gateway gives up. */
    *flags = (struct rt_sup_flags){RT_ONE_FOR_ONE, 5, 10, RT_AUTO_NEVER};
    struct rt_child_spec spec = {.id = "client",
                                 .start = client_start,
                                 .arg = arg,
                                 .restart = RT_PERMANENT,
                                 .shutdown = 2000,
                                 .type = RT_WORKER};
    return rt_sup_init_child(init, &spec);
}

int gw_redis_sup_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                       rt_atom *reason)
{
    (void)extra;
    (void)extra_size;
    struct rt_start_opts o = {.name = "redis_sup", .initial_call = "redis_sup"};
    return rt_sup_start_link(redis_sup_init, arg, &o, out, reason);
}

/* ---- the call ---------------------------------------------------------------- */

int gw_redis_ratelimit(const char *key, size_t key_len, uint32_t limit, uint32_t window_ms,
                       uint32_t *count, uint32_t *reset_ms)
{
    if (!key || key_len == 0 || window_ms == 0 || limit == 0)
        return -EINVAL;
    /* relaxed: hints; the connection process answers for itself. */
    rt_pid pid = atomic_load_explicit(&client_pid, memory_order_relaxed);
    if (!pid || !atomic_load_explicit(&client_ready, memory_order_relaxed)) {
        gw_metrics_redis_error(GW_METRICS_REDIS_UNAVAILABLE, NULL);
        return -ENOTCONN;
    }
    bool hashed = key_len > GW_REDIS_KEY_MAX;
    size_t plen = sizeof GW_REDIS_KEY_PREFIX - 1;
    size_t klen = plen + (hashed ? 64 : key_len);
    struct rt_msg *m = rt_msg_new(MSG_WINDOW, sizeof(struct window_req) + klen);
    if (!m)
        return -ENOMEM;
    struct window_req *q = (void *)m->data;
    q->window_ms = window_ms;
    q->key_len = (uint32_t)klen;
    memcpy(q->key, hashed ? GW_REDIS_HASH_PREFIX : GW_REDIS_KEY_PREFIX, plen);
    if (hashed) {
        unsigned char d[32];
        static const char hex[] = "0123456789abcdef";
        gw_tls_sha256(key, key_len, d);
        for (int i = 0; i < 32; i++) {
            q->key[plen + 2 * i] = hex[d[i] >> 4];
            q->key[plen + 2 * i + 1] = hex[d[i] & 15];
        }
    } else {
        memcpy(q->key + plen, key, key_len);
    }
    struct rt_msg *reply = NULL;
    int64_t timeout = atomic_load_explicit(&client_timeout_ms, memory_order_relaxed);
    int rc = rt_gen_server_call(pid, m, timeout, &reply, NULL);
    if (rc == -ETIMEDOUT) {
        gw_metrics_redis_error(GW_METRICS_REDIS_TIMEOUT, NULL);
        return -ETIMEDOUT;
    }
    if (rc < 0 || !reply || reply->size < sizeof(struct window_ans)) {
        rt_msg_free(reply);
        gw_metrics_redis_error(GW_METRICS_REDIS_UNAVAILABLE, NULL);
        return rc == -ENOMEM ? -ENOMEM : -ENOTCONN;
    }
    struct window_ans a;
    memcpy(&a, reply->data, sizeof a);
    rt_msg_free(reply);
    if (a.rc < 0) {
        gw_metrics_redis_error(
            a.rc == -EPROTO ? GW_METRICS_REDIS_REPLY : GW_METRICS_REDIS_UNAVAILABLE, NULL);
        return a.rc;
    }
    gw_metrics_redis_round_trip();
    *count = a.count;
    *reset_ms = a.reset_ms;
    return 0;
}
