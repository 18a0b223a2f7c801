/*
 * http.c: the ledger's HTTP/1.1 API.
 *
 * An acceptor process (registered "acceptor") takes connections on the
 * listening socket and spawns one process per connection, linked to it:
 * when the acceptor stops (the application's supervisor shuts it down),
 * its connections go with it. The acceptor traps exits to count its
 * connections and to notice its parent's shutdown while it waits.
 *
 * A connection reads into a fixed buffer and runs llhttp over it; the
 * parser pauses at the end of each request, which is then handled and
 * answered before the next one (pipelined requests are answered in
 * order). Everything a peer controls is bounded: the head (431), the
 * header count (431), the target (414), the body (413), the JSON nesting
 * (400), the time from one answer to the last byte of the next request
 * (--request-timeout-ms, the idle wait included), and the number of connections (LEDGER_CONNS_MAX:
 * past it a connection is answered 503 and closed).
 *
 * Answers carry no Date: a replayed answer is byte for byte the first one.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <llhttp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include "jpos/json.h"
#include "ledger.h"
#include "rt/proc_lib.h"

#define LEDGER_HEAD_MAX 8192   /* target + header names and values + 4 per field */
#define LEDGER_HEADERS_MAX 64  /* header fields per request */
#define LEDGER_TARGET_MAX 2048 /* request target */
#define LEDGER_BODY_MAX 16384  /* request body */
#define LEDGER_JSON_DEPTH 8    /* nesting of a request's JSON */
#define LEDGER_CONNS_MAX 1024  /* connections at once */
#define LEDGER_STOP_MS 4000    /* a connection's wait to stop (under the acceptor's 5 s) */
/* Descriptors kept out of the connections' share of RLIMIT_NOFILE: the
 * database and its WAL files, the listener, the runtime's pollers, the
 * socket a 503 is written on. */
#define LEDGER_FDS_RESERVE 64
#define LEDGER_ACCEPT_BACKOFF_MS 50 /* after accept fails for want of descriptors */
#define READ_BUF 16384

struct conn {
    int fd;
    llhttp_t ll;
    /* The request being read; reset by on_message_begin. */
    char target[LEDGER_TARGET_MAX + 1];
    size_t target_len;
    char field[32]; /* a header name, lower case; longer names are not ours */
    size_t field_len;
    bool field_long;
    char value[LEDGER_KEY_MAX + 1];
    size_t value_len;
    bool value_long;
    char key[LEDGER_KEY_MAX + 1];
    bool has_key, key_bad;
    bool expect_continue, continue_sent;
    bool headers_done, complete;
    size_t head_bytes;
    unsigned nheaders;
    char *body; /* LEDGER_BODY_MAX bytes, rt_alloc'd */
    size_t body_len;
    int error; /* a status for a request refused while it was read */
    char buf[READ_BUF];
};

/* ---- parsing -------------------------------------------------------------- */

static int refuse(struct conn *c, int status)
{
    if (!c->error)
        c->error = status;
    return -1; /* llhttp stops with HPE_USER */
}

static int count_head(struct conn *c, size_t len)
{
    c->head_bytes += len;
    return c->head_bytes > LEDGER_HEAD_MAX ? refuse(c, 431) : 0;
}

static int on_message_begin(llhttp_t *ll)
{
    struct conn *c = ll->data;
    c->target_len = c->field_len = c->value_len = c->body_len = c->head_bytes = 0;
    c->field_long = c->value_long = c->has_key = c->key_bad = false;
    c->expect_continue = c->continue_sent = c->headers_done = c->complete = false;
    c->nheaders = 0;
    c->error = 0;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    struct conn *c = ll->data;
    if (len > LEDGER_TARGET_MAX - c->target_len)
        return refuse(c, 414);
    memcpy(c->target + c->target_len, at, len);
    c->target_len += len;
    c->target[c->target_len] = 0;
    return count_head(c, len);
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    struct conn *c = ll->data;
    for (size_t i = 0; i < len; i++) {
        if (c->field_len == sizeof c->field - 1)
            c->field_long = true;
        else
            c->field[c->field_len++] = (char)tolower((unsigned char)at[i]);
    }
    c->field[c->field_len] = 0;
    return count_head(c, len);
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    struct conn *c = ll->data;
    if (len > sizeof c->value - 1 - c->value_len) {
        c->value_long = true;
    } else {
        memcpy(c->value + c->value_len, at, len);
        c->value_len += len;
        c->value[c->value_len] = 0;
    }
    return count_head(c, len);
}

static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static int on_header_value_complete(llhttp_t *ll)
{
    struct conn *c = ll->data;
    int rc = 0;
    if (++c->nheaders > LEDGER_HEADERS_MAX)
        rc = refuse(c, 431);
    else if (c->headers_done) {
        /* A trailer field (after a chunked body): counted against the
         * bounds, never taken as the request's key or expectation, which
         * the head alone carries (RFC 9110, 6.5.1). */
    } else if (!c->field_long && strcmp(c->field, "idempotency-key") == 0) {
        /* One key, 1..LEDGER_KEY_MAX printable bytes; anything else is 400. */
        if (c->has_key || c->value_long || c->value_len == 0 || !printable(c->value, c->value_len))
            c->key_bad = true;
        memcpy(c->key, c->value, c->value_len + 1);
        c->has_key = true;
    } else if (!c->field_long && strcmp(c->field, "expect") == 0 && !c->value_long &&
               strcasecmp(c->value, "100-continue") == 0) {
        c->expect_continue = true;
    }
    c->field_len = c->value_len = 0;
    c->field[0] = c->value[0] = 0;
    c->field_long = c->value_long = false;
    return rc < 0 ? rc : count_head(c, 4);
}

static int on_headers_complete(llhttp_t *ll)
{
    struct conn *c = ll->data;
    c->headers_done = true;
    if ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > LEDGER_BODY_MAX)
        return refuse(c, 413);
    return 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    struct conn *c = ll->data;
    if (len > LEDGER_BODY_MAX - c->body_len)
        return refuse(c, 413);
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    struct conn *c = ll->data;
    c->complete = true;
    return HPE_PAUSED; /* handle this request before reading the next */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- answering --------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 402:
        return "Payment Required";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 422:
        return "Unprocessable Content";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* Writes one answer; `allow` adds an Allow field (405). */
static int respond(struct conn *c, int status, const char *body, size_t len, bool close_after,
                   const char *allow)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s%s%s%s\r\n",
                     status, reason(status), len, allow ? "Allow: " : "", allow ? allow : "",
                     allow ? "\r\n" : "", close_after ? "Connection: close\r\n" : "");
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, len}};
    ssize_t w = rt_writev(c->fd, iov, 2, (int64_t)ledger_app.request_timeout_ms);
    return w < 0 ? (int)w : 0;
}

static int respond_text(struct conn *c, int status, const char *body, bool close_after,
                        const char *allow)
{
    return respond(c, status, body, strlen(body), close_after, allow);
}

static int respond_error(struct conn *c, int status, const char *code, bool close_after)
{
    char body[128];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", code);
    return respond(c, status, body, (size_t)n, close_after, NULL);
}

/* ---- requests ------------------------------------------------------------------ */

static bool valid_id(const char *s, size_t len)
{
    if (len == 0 || len > LEDGER_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

/* jansson parses nesting recursively; a process's stack is small, so the
 * depth is checked before (strings skipped). */
static bool shallow(const char *s, size_t len)
{
    unsigned line, column;
    return jpos_depth_check(s, len, LEDGER_JSON_DEPTH, &line, &column) == 0;
}

/* An integer member within [min, max]; absent gives `def` (or, with def
 * < 0, an error). */
static int int_member(json_t *doc, const char *name, int64_t min, int64_t max, int64_t def,
                      int64_t *out)
{
    json_t *v = json_object_get(doc, name);
    if (!v) {
        if (def < 0)
            return -EINVAL;
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return -EINVAL;
    *out = json_integer_value(v);
    return 0;
}

static int str_member(json_t *doc, const char *name, size_t max, char *out, const char *def)
{
    json_t *v = json_object_get(doc, name);
    if (!v) {
        snprintf(out, max + 1, "%s", def);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > max ||
        !printable(json_string_value(v), json_string_length(v)))
        return -EINVAL;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

struct faults_rng {
    _Atomic uint64_t state;
};
static struct faults_rng rng = {0x9e3779b97f4a7c15ull};

/* A uniform number in [0, 1), from any process. */
static double rng_next(void)
{
    /* relaxed: the draws need no order with anything else. */
    uint64_t x = atomic_fetch_add_explicit(&rng.state, 0x9e3779b97f4a7c15ull, memory_order_relaxed);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (double)(x >> 11) / 9007199254740992.0;
}

/* What change() holds outside rt_alloc, released on its way out or when
 * its process is killed. */
struct change_hold {
    json_t *doc;
    char *body;
};

static void change_free(void *arg)
{
    struct change_hold *h = arg;
    json_decref(h->doc);
    free(h->body);
    h->doc = NULL;
    h->body = NULL;
}

/* POST /accounts, /accounts/{id}/debit, /accounts/{id}/credit. Returns 1
 * when the connection is to be dropped unanswered (fault injection). */
static int change(struct conn *c, enum ledger_op_kind kind, const char *id, size_t id_len,
                  bool close_after)
{
    static const char *const names[] = {"", "create", "debit", "credit"};
    struct ledger_op op = {.kind = kind};
    char *fp = NULL;
    struct ledger_answer ans = {0};
    int rc = 0;
    /* The process may be killed while it waits for the account or writes
     * the answer (a shutdown): what it holds outside rt_alloc is released
     * then by a deferred cleanup, which reads the holder (rt_alloc'd: it
     * outlives the cleanups), not the stack. */
    struct change_hold *hold = rt_calloc(1, sizeof *hold);
    uint64_t d = hold ? rt_defer(change_free, hold) : 0;
    if (!d) {
        rt_free(hold);
        return respond_error(c, 503, "out_of_memory", true);
    }
    if (c->key_bad) {
        rc = respond_error(c, 400, "bad_idempotency_key", close_after);
        goto out;
    }
    json_error_t jerr;
    if (shallow(c->body, c->body_len))
        hold->doc = json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *doc = hold->doc;
    if (!json_is_object(doc)) {
        rc = respond_error(c, 400, "body_must_be_a_json_object", close_after);
        goto out;
    }
    if (kind == LEDGER_OP_CREATE) {
        json_t *v = json_object_get(doc, "id");
        if (!json_is_string(v) || !valid_id(json_string_value(v), json_string_length(v)) ||
            int_member(doc, "balance", 0, LEDGER_BALANCE_MAX, 0, &op.amount) < 0 ||
            str_member(doc, "ref", LEDGER_REF_MAX, op.ref, "open") < 0) {
            rc = respond_error(c, 400, "bad_account", close_after);
            goto out;
        }
        memcpy(op.account, json_string_value(v), json_string_length(v) + 1);
    } else {
        if (int_member(doc, "amount", 1, LEDGER_AMOUNT_MAX, -1, &op.amount) < 0 ||
            str_member(doc, "ref", LEDGER_REF_MAX, op.ref, names[kind]) < 0) {
            rc = respond_error(c, 400, "bad_amount_or_ref", close_after);
            goto out;
        }
        memcpy(op.account, id, id_len);
        op.account[id_len] = 0;
    }
    if (c->has_key) {
        memcpy(op.key, c->key, strlen(c->key) + 1);
        /* The fingerprint: method, target and the body's bytes. */
        size_t tlen = c->target_len;
        op.fingerprint_len = 5 + tlen + 1 + c->body_len;
        fp = rt_alloc(op.fingerprint_len);
        if (!fp) {
            rc = respond_error(c, 503, "out_of_memory", true);
            goto out;
        }
        memcpy(fp, "POST ", 5);
        memcpy(fp + 5, c->target, tlen);
        fp[5 + tlen] = '\n';
        memcpy(fp + 6 + tlen, c->body, c->body_len);
        op.fingerprint = fp;
    }
    int arc = ledger_account_apply(&op, &ans);
    hold->body = arc < 0 ? NULL : ans.body;
    if (arc < 0) {
        /* The change may or may not have been made (the account's process
         * died or timed out mid-way): say so, never success or failure. */
        rc = respond_error(c, 503, "outcome_unknown", close_after);
        goto out;
    }
    /* Only a change made now waits: a replay of a stored answer commits
     * nothing and is answered at once. */
    if (ans.applied && ledger_app.faults.delay_ms)
        rt_sleep(ledger_app.faults.delay_ms);
    if (ans.applied && ledger_app.faults.fail_after_commit > 0 &&
        rng_next() < ledger_app.faults.fail_after_commit) {
        rc = 1;
        goto out;
    }
    rc = respond(c, ans.status, ans.body, ans.body_len, close_after, NULL);
out:
    rt_free(fp);
    rt_undefer(d, true);
    rt_free(hold);
    return rc;
}

/* A GET's read on the blocking pool; the id and the answer live in the job
 * (a connection killed meanwhile leaves them to the worker). */
struct read_job {
    struct ledger_job base;
    int (*read)(struct ledger_store *, const char *, char **, size_t *);
    char id[LEDGER_ID_MAX + 1];
    char *json;
    size_t len;
};

static int read_fn(struct ledger_job *j)
{
    struct read_job *r = (struct read_job *)j;
    return r->read(ledger_app.store, r->id, &r->json, &r->len);
}

static void read_free(struct ledger_job *j)
{
    free(((struct read_job *)j)->json);
    free(j);
}

static int list_adapter(struct ledger_store *s, const char *id, char **j, size_t *l)
{
    return ledger_store_list(s, j, l);
}

static int total_adapter(struct ledger_store *s, const char *id, char **j, size_t *l)
{
    return ledger_store_total(s, j, l);
}

/* A GET answered from the database. */
static int read_doc(struct conn *c,
                    int (*read)(struct ledger_store *, const char *, char **, size_t *),
                    const char *id, bool close_after)
{
    struct read_job *r = calloc(1, sizeof *r);
    if (!r)
        return respond_error(c, 503, "out_of_memory", true);
    r->base = (struct ledger_job){.fn = read_fn, .free_fn = read_free};
    r->read = read;
    snprintf(r->id, sizeof r->id, "%s", id ? id : "");
    int rc = ledger_blocking(&r->base);
    if (rc == -ENOENT)
        rc = respond_error(c, 404, "no_such_account", close_after);
    else if (rc < 0)
        rc = respond_error(c, 503, "storage_error", close_after);
    else
        rc = respond(c, 200, r->json, r->len, close_after, NULL);
    ledger_job_put(&r->base);
    return rc;
}

static int balance(struct conn *c, const char *id, bool close_after)
{
    int64_t bal = 0;
    int rc = ledger_account_balance(id, &bal);
    if (rc == -ENOENT)
        return respond_error(c, 404, "no_such_account", close_after);
    if (rc < 0)
        return respond_error(c, 503, "unavailable", close_after);
    char body[LEDGER_ID_MAX + 64];
    int n = snprintf(body, sizeof body, "{\"id\":\"%s\",\"balance\":%lld}", id, (long long)bal);
    return respond(c, 200, body, (size_t)n, close_after, NULL);
}

/* Routes a complete request. 0 to go on, 1 to close (unanswered or
 * answered with Connection: close), <0 on a write error. */
static int handle(struct conn *c)
{
    bool keep = llhttp_should_keep_alive(&c->ll);
    bool close_after = !keep;
    int method = llhttp_get_method(&c->ll);
    bool get = method == HTTP_GET, post = method == HTTP_POST;
    /* The path, without a query. */
    size_t plen = strcspn(c->target, "?");
    char path[LEDGER_TARGET_MAX + 1];
    memcpy(path, c->target, plen);
    path[plen] = 0;
    int rc;
    const char *allow = NULL;

    if (strcmp(path, "/healthz") == 0) {
        allow = "GET";
        rc = get ? respond_text(c, 200, "{\"status\":\"ok\"}", close_after, NULL) : 0;
    } else if (strcmp(path, "/total") == 0) {
        allow = "GET";
        rc = get ? read_doc(c, total_adapter, NULL, close_after) : 0;
    } else if (strcmp(path, "/accounts") == 0) {
        allow = "GET, POST";
        rc = get    ? read_doc(c, list_adapter, NULL, close_after)
             : post ? change(c, LEDGER_OP_CREATE, NULL, 0, close_after)
                    : 0;
    } else if (strncmp(path, "/accounts/", 10) == 0) {
        const char *id = path + 10;
        size_t id_len = strcspn(id, "/");
        const char *rest = id + id_len;
        if (!valid_id(id, id_len))
            return respond_error(c, 404, "no_such_account", close_after) < 0 ? -1 : close_after;
        char idz[LEDGER_ID_MAX + 1];
        memcpy(idz, id, id_len);
        idz[id_len] = 0;
        if (*rest == 0) {
            allow = "GET";
            rc = get ? balance(c, idz, close_after) : 0;
        } else if (strcmp(rest, "/entries") == 0) {
            allow = "GET";
            rc = get ? read_doc(c, ledger_store_entries, idz, close_after) : 0;
        } else if (strcmp(rest, "/debit") == 0 || strcmp(rest, "/credit") == 0) {
            allow = "POST";
            rc = post ? change(c, rest[1] == 'd' ? LEDGER_OP_DEBIT : LEDGER_OP_CREDIT, idz, id_len,
                               close_after)
                      : 0;
        } else {
            return respond_error(c, 404, "not_found", close_after) < 0 ? -1 : close_after;
        }
    } else {
        return respond_error(c, 404, "not_found", close_after) < 0 ? -1 : close_after;
    }
    bool method_ok = (get && strstr(allow, "GET")) || (post && strstr(allow, "POST"));
    if (!method_ok)
        rc = respond_text(c, 405, "{\"error\":\"method_not_allowed\"}", close_after, allow);
    if (rc < 0)
        return rc;
    return rc == 1 || close_after ? 1 : 0;
}

/* ---- the connection process ----------------------------------------------------- */

static void close_fd(void *arg)
{
    close((int)(intptr_t)arg);
}

static void conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    rt_defer(close_fd, arg);
    struct conn *c = rt_calloc(1, sizeof *c);
    if (!c || !(c->body = rt_alloc(LEDGER_BODY_MAX)))
        return;
    c->fd = fd;
    llhttp_init(&c->ll, HTTP_REQUEST, &settings);
    c->ll.data = c;
    size_t pos = 0, len = 0;
    /* One deadline for the wait and the whole request, so a client that
     * trickles bytes holds the connection no longer than an idle one. */
    uint64_t deadline = rt_now_ms() + ledger_app.request_timeout_ms;
    for (;;) {
        if (pos == len) {
            uint64_t now = rt_now_ms();
            if (now >= deadline)
                return;
            ssize_t n = rt_read(fd, c->buf, sizeof c->buf, (int64_t)(deadline - now));
            if (n <= 0)
                return; /* closed, reset or out of time */
            pos = 0;
            len = (size_t)n;
        }
        llhttp_errno_t e = llhttp_execute(&c->ll, c->buf + pos, len - pos);
        if (e == HPE_OK) {
            pos = len;
            if (c->headers_done && !c->complete && c->expect_continue && !c->continue_sent) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (rt_write(fd, cont, sizeof cont - 1, (int64_t)ledger_app.request_timeout_ms) < 0)
                    return;
                c->continue_sent = true;
            }
            continue;
        }
        if (e == HPE_PAUSED && c->complete) {
            const char *at = llhttp_get_error_pos(&c->ll);
            pos = at ? (size_t)(at - c->buf) : len;
            llhttp_resume(&c->ll);
            if (handle(c) != 0)
                return;
            deadline = rt_now_ms() + ledger_app.request_timeout_ms;
            continue;
        }
        int status = c->error ? c->error : 400;
        respond_error(c, status,
                      status == 413   ? "body_too_large"
                      : status == 431 ? "head_too_large"
                      : status == 414 ? "target_too_long"
                                      : "malformed_request",
                      true);
        return;
    }
}

static void conn_arg_free(void *arg)
{
    close((int)(intptr_t)arg);
}

/* ---- the acceptor ------------------------------------------------------------------ */

/* Stops the connections (the processes linked to the acceptor, its
 * parent aside) and waits for them to be gone, so that when the acceptor
 * has exited nothing of the HTTP side is left running. */
static void stop_connections(rt_pid parent, rt_atom why)
{
    rt_pid pids[64];
    int n;
    while ((n = rt_proc_links(rt_self(), pids, 64)) > 1) {
        for (int i = 0; i < n && i < 64; i++)
            if (pids[i] != parent)
                rt_exit_signal(pids[i], why);
        struct rt_msg *m = rt_receive(LEDGER_STOP_MS);
        if (!m)
            break; /* the supervisor kills the acceptor after its shutdown time */
        rt_msg_free(m);
    }
}

/* LEDGER_CONNS_MAX, or fewer if the descriptor limit would be reached
 * first: past it accept fails, and the refusal with 503 needs a
 * descriptor too. */
static size_t conns_max(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur >= LEDGER_CONNS_MAX + LEDGER_FDS_RESERVE)
        return LEDGER_CONNS_MAX;
    if (rl.rlim_cur <= 2 * LEDGER_FDS_RESERVE)
        return rl.rlim_cur / 2;
    return rl.rlim_cur - LEDGER_FDS_RESERVE;
}

static void acceptor(void *arg, const struct rt_proc_starter *st)
{
    int lfd = ledger_app.lfd;
    rt_pid parent = st->pid;
    size_t conns = 0, max = conns_max();
    rt_trap_exit(true);
    rt_proc_init_ack(st);
    for (;;) {
        int ready = rt_poll(lfd, RT_POLL_IN | RT_POLL_MSG, RT_INFINITY);
        struct rt_msg *m;
        while ((m = rt_receive(0))) {
            if (m->type == RT_MSG_EXIT && m->from == parent) {
                rt_atom why = (rt_atom)m->u64;
                rt_msg_free(m);
                stop_connections(parent, why);
                rt_exit(why);
            }
            if (m->type == RT_MSG_EXIT && conns > 0)
                conns--;
            rt_msg_free(m);
        }
        if (ready < 0 || !(ready & RT_POLL_IN))
            continue;
        int fd = rt_accept(lfd, NULL, NULL, 0);
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            /* The listener stays readable: without a pause this would
             * spin until a descriptor is freed. */
            rt_sleep(LEDGER_ACCEPT_BACKOFF_MS);
            continue;
        }
        if (fd < 0)
            continue;
        if (conns >= max) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                       "application/json\r\nContent-Length: 20\r\nConnection: "
                                       "close\r\n\r\n{\"error\":\"too_busy\"}";
            (void)!write(fd, busy, sizeof busy - 1);
            close(fd);
            continue;
        }
        struct rt_spawn_opts o = {
            .link = true, .initial_call = "ledger_conn", .arg_free = conn_arg_free};
        if (rt_spawn(conn_main, (void *)(intptr_t)fd, &o, NULL) < 0) {
            close(fd);
            continue;
        }
        conns++;
    }
}

int ledger_http_start(void *arg, const void *extra, size_t extra_size, rt_pid *out, rt_atom *reason)
{
    struct rt_start_opts o = {.name = "acceptor", .initial_call = "ledger_acceptor"};
    return rt_proc_start_link(acceptor, NULL, &o, out, reason);
}
