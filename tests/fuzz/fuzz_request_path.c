/*
 * fuzz_request_path.c: libFuzzer target for the request path as the gateway
 * runs it, built on the wire module (parser, target canonicalisation,
 * forwarding heads, chunked encoder) rather than the whole binary.
 *
 * Input: two bytes (little-endian) giving the length of the client bytes,
 * then the client bytes, then what the upstream replies. A third byte before
 * the client bytes gives a split size: the client bytes are fed whole and in
 * pieces of that size, and both runs must forward the same bytes.
 *
 * The client bytes go through a request parser; each complete request is
 * canonicalised (refused targets end the connection, as the gateway answers
 * 400), its upstream head written and its decoded body re-framed, exactly as
 * proxy.c does. Checks, any failure aborting:
 *  - the bytes sent upstream re-parse strictly (a fresh request parser) into
 *    exactly the requests the gateway forwarded: same count, method, target
 *    and body, and nothing left over;
 *  - the forwarded target is a fixed point of canonicalisation: the path the
 *    router matched is the path the upstream receives; the same holds under
 *    every path policy (escaped slashes kept, decoded, opaque; params kept;
 *    raw UTF-8 encoded),
 *    KEEP gives the bytes of the opaque first pass the gateway routes on,
 *    and a target the strict default accepts is the same path under all;
 *  - routed as the request process routes (gateway/src/path_settle.c, on a
 *    table with a deny route for /admin, a catch-all and routes that keep
 *    or decode "%2F" and ";"), under several listener policies: a target
 *    forwarded is forwarded as the path it was routed on, re-matching that
 *    path finds the same route, and no path reaches a route other than the
 *    deny route when a backend's reading of it (escapes of "/", ";" and
 *    whitespace decoded, ";params" stripped before or after, trailing dots
 *    and whitespace trimmed, dot segments resolved) is under /admin;
 *  - feeding whole or in pieces forwards the same bytes;
 *  - the upstream reply, parsed as the answer to the first request, gives a
 *    client response that re-parses to the same status and body.
 *
 * Build with meson (-Dfuzz=true, clang, -Db_sanitize=address; see
 * tests/fuzz/meson.build) or by hand from the repository root:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
 *       -Igateway/include -Igateway/src -Iroutes/include -Iroutes/src \
 *       -I/usr/share/include/llhttp tests/fuzz/fuzz_request_path.c \
 *       gateway/src/http/[a-z]*.c gateway/src/path_settle.c routes/src/[a-z]*.c \
 *       /usr/share/llhttp/[a-z]*.c -ljansson -lpthread -o fuzz-request-path
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/http1.h"
#include "path_settle.h"
#include "jpos/diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 64
#define OUT_CAP (1u << 20)

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            abort();
        b->p = np;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
}

struct fwd_msg {
    char method[32];
    struct buf target; /* what the head writer sent */
    struct buf head;   /* the upstream head written */
    struct buf body;   /* decoded body */
    bool is_head;
};

struct run {
    struct buf wire; /* every byte sent upstream */
    struct fwd_msg msgs[MAX_MSGS];
    size_t nmsgs;
};

static void run_done(struct run *r)
{
    free(r->wire.p);
    for (size_t i = 0; i < r->nmsgs; i++) {
        free(r->msgs[i].target.p);
        free(r->msgs[i].head.p);
        free(r->msgs[i].body.p);
    }
}

/* buf->p + off, also for an empty buffer */
static const char *at(const struct buf *b, size_t off)
{
    return b->p ? b->p + off : "";
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_request_path: %s\n", what);
    abort();
}

/* One message in progress: its upstream head and body bytes, sent only once
 * the request is complete (proxy.c pre-reads small bodies before anything
 * goes upstream; for this check, a message is forwarded whole or not at
 * all). */
struct pending {
    struct gw_http_head *h;
    struct buf out;
    struct fwd_msg msg;
};

/* The canonical path under `pol`, or NULL when refused: malloc'd, with
 * its length in *len. */
static char *canon_with(const struct gw_http_path_policy *pol, const char *method,
                        const char *target, size_t tlen, size_t *len, bool *slash)
{
    size_t cap = 3 * tlen + 2;
    char *tb = malloc(cap);
    struct gw_http_target t;
    if (!tb || gw_http_target_canon_policy(pol, method, target, tlen, tb, cap, &t) < 0) {
        free(tb);
        return NULL;
    }
    struct buf path = {0};
    put(&path, t.path, t.path_len);
    if (t.query) {
        put(&path, "?", 1);
        put(&path, t.query, t.query_len);
    }
    put(&path, "", 1);
    free(tb);
    *len = path.len - 1;
    if (slash)
        *slash = t.escaped_slash;
    return path.p;
}

static void check_policies(const struct gw_http_head *h)
{
    static const struct gw_http_path_policy pols[] = {
        {0},
        {.slashes = GW_HTTP_SLASHES_OPAQUE, .params = GW_HTTP_PARAMS_OPAQUE},
        {.slashes = GW_HTTP_SLASHES_KEEP, .params = GW_HTTP_PARAMS_KEEP},
        {.slashes = GW_HTTP_SLASHES_DECODE, .params = GW_HTTP_PARAMS_KEEP},
        {.slashes = GW_HTTP_SLASHES_REDIRECT},
        {.refuse_controls = true},
        {.encode_raw_utf8 = true},
    };
    enum { STRICT, OPAQUE, KEEP, DECODE, REDIRECT, NPOLS = 7 };
    char *out[NPOLS];
    size_t len[NPOLS];
    for (int i = 0; i < NPOLS; i++) {
        out[i] = canon_with(&pols[i], h->method, h->target, h->target_len, &len[i], NULL);
        if (!out[i])
            continue;
        size_t l2;
        char *again = canon_with(&pols[i], h->method, out[i], len[i], &l2, NULL);
        if (!again)
            fail("a canonical target is refused under its own policy");
        if (l2 != len[i] || memcmp(again, out[i], l2) != 0)
            fail("a canonical path is not a fixed point under its policy");
        free(again);
    }
    /* the gateway routes on the opaque pass and forwards KEEP's bytes */
    if (out[KEEP] && (!out[OPAQUE] || len[KEEP] != len[OPAQUE] ||
                      memcmp(out[KEEP], out[OPAQUE], len[KEEP]) != 0))
        fail("KEEP and the opaque pass disagree");
    if (out[DECODE] && out[REDIRECT] &&
        (len[DECODE] != len[REDIRECT] || memcmp(out[DECODE], out[REDIRECT], len[DECODE]) != 0))
        fail("DECODE and REDIRECT disagree");
    /* no "%2F" and no ";": every policy reads the path alike */
    if (out[STRICT])
        for (int i = 1; i < NPOLS; i++)
            if (out[i] && (len[i] != len[STRICT] || memcmp(out[i], out[STRICT], len[i]) != 0))
                fail("a policy changes a path the strict default accepts");
    if (out[STRICT] && (!out[OPAQUE] || !out[KEEP] || !out[DECODE] || !out[REDIRECT]))
        fail("a policy refuses a path the strict default accepts");
    for (int i = 0; i < NPOLS; i++)
        free(out[i]);
}

/* ---- routing: path_settle.c on a small table ---------------------------- */

static const char routes_json[] =
    "{\"routes\": ["
    "{\"name\": \"deny\", \"priority\": 10, \"match\": {\"path_prefix\": \"/admin\"},"
    " \"respond\": {\"status\": 403}},"
    "{\"name\": \"keep\", \"priority\": 5, \"match\": {\"path_prefix\": \"/k\"},"
    " \"upstream\": \"up\", \"path_policy\": {\"escaped_slashes\": \"keep\", \"params\": "
    "\"keep\"}},"
    "{\"name\": \"decode\", \"priority\": 5, \"match\": {\"path_prefix\": \"/d\"},"
    " \"upstream\": \"up\", \"path_policy\": {\"escaped_slashes\": \"decode\"}},"
    "{\"name\": \"param\", \"priority\": 5, \"match\": {\"path\": \"/p/:id\"}, \"upstream\": "
    "\"up\"},"
    "{\"name\": \"all\", \"match\": {\"path\": \"/*rest\"}, \"upstream\": \"up\"}"
    "]}";

static struct route_table *fuzz_table(void)
{
    static struct route_table *table;
    if (table)
        return table;
    const char *up[] = {"up"};
    struct route_builder *b = NULL;
    struct jpos_diags d;
    jpos_diags_init(&d);
    if (route_builder_new(&b, up, 1) < 0 ||
        route_builder_add_text(b, "fuzz.json", routes_json, strlen(routes_json), &d) < 0 ||
        route_builder_compile(b, &table, &d) < 0) {
        jpos_diags_print(&d, stderr);
        fail("the fuzz route table does not build");
    }
    route_builder_free(b);
    jpos_diags_done(&d);
    return table;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The escaped byte at p[i] ("%HH"), or -1. */
static int escaped_at(const char *p, size_t n, size_t i)
{
    if (i + 2 >= n || p[i] != '%' || hex_digit(p[i + 1]) < 0 || hex_digit(p[i + 2]) < 0)
        return -1;
    return hex_digit(p[i + 1]) * 16 + hex_digit(p[i + 2]);
}

/* Decodes the escapes of "/", ";" (when `semi`) and whitespace and controls
 * below 0x21 in p[0..n) into out; the rest is copied. */
static size_t decode_some(const char *p, size_t n, bool semi, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = escaped_at(p, n, i);
        if (v == '/' || (semi && v == ';') || (v >= 0 && v <= 0x20)) {
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    return o;
}

/* Strips ";params" (from ";" or "%3B" to the next "/") from p[0..n). */
static size_t strip_params(const char *p, size_t n, char *out)
{
    size_t o = 0;
    bool in_params = false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '/')
            in_params = false;
        else if (p[i] == ';' || escaped_at(p, n, i) == ';')
            in_params = true;
        if (!in_params)
            out[o++] = p[i];
    }
    return o;
}

/* Whether path p[0..n), its segments trimmed (whitespace both ends, dots at
 * the end unless kept) and dot segments resolved, starts with the segment
 * "admin". */
static bool under_admin(const char *p, size_t n, bool keep_dots)
{
    const char *first = NULL;
    size_t first_len = 0, depth = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && p[i] == '/')
            i++;
        size_t a = i;
        while (i < n && p[i] != '/')
            i++;
        size_t b = i;
        while (a < b && (unsigned char)p[a] <= 0x20)
            a++;
        while (b > a && ((unsigned char)p[b - 1] <= 0x20 || (!keep_dots && p[b - 1] == '.')))
            b--;
        bool dot = b - a == 1 && p[a] == '.', dotdot = b - a == 2 && p[a] == '.' && p[a + 1] == '.';
        if (b == a || dot)
            continue;
        if (dotdot) {
            if (depth)
                depth--;
            if (!depth)
                first = NULL;
            continue;
        }
        if (!depth++) {
            first = p + a;
            first_len = b - a;
        }
    }
    return first && first_len == 5 && memcmp(first, "admin", 5) == 0;
}

/* A backend's readings of the forwarded path p[0..n): "%2F" decoded;
 * decoded then ";params" stripped; stripped then decoded. */
static bool some_reading_under_admin(const char *p, size_t n, bool keep_dots)
{
    char *a = malloc(n + 1), *b = malloc(n + 1);
    if (!a || !b)
        abort();
    size_t la = decode_some(p, n, false, a);
    bool hit = under_admin(a, la, keep_dots);
    la = decode_some(p, n, true, a);
    size_t lb = strip_params(a, la, b);
    hit = hit || under_admin(b, lb, keep_dots);
    la = strip_params(p, n, a);
    lb = decode_some(a, la, true, b);
    hit = hit || under_admin(b, lb, keep_dots);
    free(a);
    free(b);
    return hit;
}

/* Routes h's target as the request process does under listener policy
 * `lis`, and checks what is forwarded. */
static void check_route(const struct gw_http_head *h, const struct gw_http_path_policy *lis)
{
    const struct route_table *table = fuzz_table();
    size_t cap = 3 * h->target_len + 2;
    char *tbuf = malloc(cap), *sbuf = malloc(cap);
    if (!tbuf || !sbuf)
        abort();
    struct gw_http_path_policy first = gw__path_first_policy(lis);
    struct gw_http_target t;
    if (gw_http_target_canon_policy(&first, h->method, h->target, h->target_len, tbuf, cap, &t) <
            0 ||
        t.form == GW_HTTP_ASTERISK_FORM)
        goto out;
    struct route_request rr = {
        .method = h->method, .method_len = h->method_len, .path = t.path, .path_len = t.path_len};
    struct route_match m;
    enum route_match_result res = route_table_match(table, &rr, &m);
    if (t.escaped_slash || t.params) {
        int sr = gw__path_settle(lis, table, &rr, h->method, h->target, h->target_len, sbuf, cap,
                                 &t, &res, &m);
        if (sr == 1) {
            /* a redirect's target holds no "%2F" */
            struct gw_http_target t2;
            char *rb = malloc(3 * t.path_len + 2);
            if (!rb)
                abort();
            if (gw_http_target_canon_policy(&first, NULL, t.path, t.path_len, rb,
                                            3 * t.path_len + 2, &t2) == 0 &&
                t2.escaped_slash)
                fail("a redirect to a path that holds %2F");
            free(rb);
            goto out;
        }
        if (sr < 0)
            goto out;
        if (rr.path != t.path || rr.path_len != t.path_len)
            fail("the path forwarded is not the path routed");
    }
    if (res != ROUTE_MATCHED)
        goto out;
    /* the path forwarded routes where it was routed */
    struct route_match m2;
    struct route_request again = rr;
    if (route_table_match(table, &again, &m2) != ROUTE_MATCHED || m2.route != m.route)
        fail("the path forwarded matches another route");
    if (strcmp(m.route->name, "deny") != 0 &&
        some_reading_under_admin(t.path, t.path_len, lis->keep_trailing_dots)) {
        fprintf(stderr, "target %.*s forwarded as %s on route %s\n", (int)h->target_len, h->target,
                t.path, m.route->name);
        fail("a path a backend reads as /admin passes the deny route");
    }
out:
    free(tbuf);
    free(sbuf);
}

static void check_routes(const struct gw_http_head *h)
{
    static const struct gw_http_path_policy lis[] = {
        {0},
        {.slashes = GW_HTTP_SLASHES_KEEP},
        {.params = GW_HTTP_PARAMS_KEEP},
        {.slashes = GW_HTTP_SLASHES_KEEP, .params = GW_HTTP_PARAMS_KEEP},
        {.slashes = GW_HTTP_SLASHES_DECODE, .params = GW_HTTP_PARAMS_KEEP},
        {.slashes = GW_HTTP_SLASHES_REDIRECT},
        {.slashes = GW_HTTP_SLASHES_KEEP,
         .params = GW_HTTP_PARAMS_KEEP,
         .keep_trailing_dots = true},
    };
    for (size_t i = 0; i < sizeof lis / sizeof lis[0]; i++)
        check_route(h, &lis[i]);
}

static bool start_message(struct pending *pm, struct gw_http_head *h)
{
    check_policies(h);
    check_routes(h);
    memset(pm, 0, sizeof(*pm));
    pm->h = h;
    size_t cap = 3 * h->target_len + 2;
    char *tb = malloc(cap);
    struct gw_http_target t;
    if (!tb || gw_http_target_canon(h->method, h->target, h->target_len, tb, cap, &t) < 0) {
        free(tb);
        return false; /* 400: the connection ends */
    }
    /* The path the router matched, with the query, is what goes upstream
     * (a route without rewrite). */
    struct buf path = {0};
    put(&path, t.path, t.path_len);
    if (t.query) {
        put(&path, "?", 1);
        put(&path, t.query, t.query_len);
    }
    /* canonicalisation is idempotent: routing and upstream agree */
    char *tb2 = malloc(3 * path.len + 2);
    struct gw_http_target t2;
    if (!tb2 || gw_http_target_canon(h->method, path.p, path.len, tb2, 3 * path.len + 2, &t2) < 0)
        fail("the canonical target is refused when canonicalised again");
    if (t2.path_len != t.path_len || memcmp(t2.path, t.path, t.path_len) != 0)
        fail("the canonical path is not a fixed point");
    free(tb2);
    struct gw_http_fwd f = {.client_addr = "192.0.2.1",
                            .keep_forwarded_for = true,
                            .request_id = "fuzz-1",
                            .path = path.p,
                            .path_len = path.len,
                            .port = 8080};
    /* as a strip_prefix route would: its first segment was stripped */
    if (t.path_len > 1) {
        f.prefix = t.path;
        f.prefix_len = 1 + strcspn(t.path + 1, "/");
        if (f.prefix_len > t.path_len)
            f.prefix_len = t.path_len;
    }
    /* as proxy.c: a request without Host gets the target's address */
    if (!gw_http_head_get(h, "host", NULL) && !t.authority)
        f.host_override = "upstream.test:80";
    static char head[65536];
    size_t hl = 0;
    int rc = gw_http_request_head_write(h, &f, head, sizeof head, &hl);
    free(tb);
    if (rc < 0) {
        free(path.p);
        return false; /* 431 */
    }
    put(&pm->out, head, hl);
    put(&pm->msg.head, head, hl);
    snprintf(pm->msg.method, sizeof pm->msg.method, "%s", h->method);
    pm->msg.target = path;
    pm->msg.is_head = strcmp(h->method, "HEAD") == 0;
    return true;
}

static void body_piece(struct pending *pm, const char *d, size_t n)
{
    if (!n)
        return;
    put(&pm->msg.body, d, n);
    if (pm->h->framing == GW_HTTP_BODY_CHUNKED) {
        char pre[32], post[8];
        int a = gw_http_chunk_start(n, pre, sizeof pre);
        int b = gw_http_chunk_end(post, sizeof post);
        if (a < 0 || b < 0)
            fail("chunk encoder");
        put(&pm->out, pre, (size_t)a);
        put(&pm->out, d, n);
        put(&pm->out, post, (size_t)b);
    } else {
        put(&pm->out, d, n);
    }
}

/* Runs the client bytes through the request side, `piece` bytes at a time. */
static void client_side(const char *in, size_t len, size_t piece, struct run *r)
{
    struct gw_http_parser *p = NULL;
    if (gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL) < 0)
        return;
    struct pending pm = {0};
    bool in_msg = false, stop = false;
    for (size_t off = 0; off < len && !stop;) {
        size_t n = len - off < piece ? len - off : piece;
        size_t pos = 0;
        /* Fed until it needs more: an end of message may be pending after
         * the last byte was consumed. */
        while (!stop) {
            size_t used = 0;
            struct gw_http_event ev;
            int rc = gw_http_parser_feed(p, in + off + pos, n - pos, &used, &ev);
            if (rc < 0) {
                stop = true;
                break;
            }
            pos += used;
            if (ev.type == GW_HTTP_EV_NEED_MORE)
                break;
            if (ev.type == GW_HTTP_EV_HEAD) {
                if (in_msg)
                    fail("a head inside a message");
                if (!start_message(&pm, ev.head)) {
                    gw_http_head_free(ev.head);
                    stop = true;
                    break;
                }
                in_msg = true;
            } else if (ev.type == GW_HTTP_EV_BODY) {
                if (!in_msg)
                    fail("a body piece outside a message");
                body_piece(&pm, ev.data, ev.len);
            } else if (ev.type == GW_HTTP_EV_DONE) {
                if (!in_msg)
                    fail("an end outside a message");
                if (pm.h->framing == GW_HTTP_BODY_CHUNKED) {
                    char last[8];
                    int a = gw_http_chunk_last(last, sizeof last);
                    put(&pm.out, last, (size_t)a);
                }
                put(&r->wire, pm.out.p, pm.out.len);
                free(pm.out.p);
                bool keep = pm.h->keep_alive && !pm.h->upgrade;
                gw_http_head_free(pm.h);
                if (r->nmsgs < MAX_MSGS)
                    r->msgs[r->nmsgs++] = pm.msg;
                else
                    stop = true, free(pm.msg.target.p), free(pm.msg.head.p), free(pm.msg.body.p);
                memset(&pm, 0, sizeof pm);
                in_msg = false;
                if (!keep)
                    stop = true;
            }
        }
        off += n;
    }
    if (in_msg) {
        gw_http_head_free(pm.h);
        free(pm.out.p);
        free(pm.msg.target.p);
        free(pm.msg.head.p);
        free(pm.msg.body.p);
    }
    gw_http_parser_free(p);
}

/* Re-parses the upstream wire strictly; it must hold exactly r's messages. */
static void check_wire(const struct run *r)
{
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    lim.max_body_bytes = 0;
    lim.max_header_bytes = 65536;
    lim.max_header_count = 1000;
    lim.max_uri_bytes = 65536;
    struct gw_http_parser *p = NULL;
    if (gw_http_parser_new(&p, GW_HTTP_REQUEST, &lim) < 0)
        return;
    size_t got = 0, pos = 0;
    struct buf body = {0};
    struct gw_http_head *h = NULL;
    for (;;) {
        size_t used = 0;
        struct gw_http_event ev;
        if (gw_http_parser_feed(p, at(&r->wire, pos), r->wire.len - pos, &used, &ev) < 0) {
            fprintf(stderr, "upstream bytes refused: %s\n%.*s\n", gw_http_parser_reason(p),
                    (int)r->wire.len, r->wire.p);
            fail("what the gateway sent upstream does not re-parse");
        }
        pos += used;
        if (ev.type == GW_HTTP_EV_NEED_MORE)
            break;
        if (ev.type == GW_HTTP_EV_HEAD) {
            h = ev.head;
            body.len = 0;
        } else if (ev.type == GW_HTTP_EV_BODY) {
            put(&body, ev.data, ev.len);
        } else if (ev.type == GW_HTTP_EV_DONE) {
            if (got >= r->nmsgs)
                fail("more requests upstream than were forwarded");
            const struct fwd_msg *m = &r->msgs[got];
            if (strcmp(h->method, m->method) != 0)
                fail("method changed upstream");
            if (h->target_len != m->target.len || memcmp(h->target, m->target.p, h->target_len))
                fail("target changed upstream");
            if (body.len != m->body.len || (body.len && memcmp(body.p, m->body.p, body.len)))
                fail("body changed upstream");
            if (h->nheaders && gw_http_head_count(h, "x-forwarded-for") != 1)
                fail("X-Forwarded-For not exactly once");
            gw_http_head_free(h);
            h = NULL;
            got++;
        }
    }
    if (pos != r->wire.len || h || gw_http_parser_in_message(p))
        fail("upstream bytes end inside a message");
    if (got != r->nmsgs)
        fail("fewer requests upstream than were forwarded");
    free(body.p);
    gw_http_parser_free(p);
}

/* The upstream reply to the first forwarded request, relayed to the client
 * and parsed back. */
static void upstream_side(const struct run *r, const char *in, size_t len)
{
    if (!r->nmsgs)
        return;
    bool head_req = r->msgs[0].is_head;
    struct gw_http_limits lim;
    gw_http_limits_default(&lim);
    lim.max_body_bytes = 0;
    lim.require_host = false;
    struct gw_http_parser *p = NULL;
    if (gw_http_parser_new(&p, GW_HTTP_RESPONSE, &lim) < 0)
        return;
    gw_http_parser_expect(p, head_req, false);
    /* a request head the response answers, for the response writer */
    struct gw_http_parser *rq = NULL;
    struct gw_http_head *req = NULL;
    char reqtext[128];
    int rl = snprintf(reqtext, sizeof reqtext, "%s / HTTP/1.1\r\nHost: a\r\n\r\n",
                      head_req ? "HEAD" : "GET");
    if (gw_http_parser_new(&rq, GW_HTTP_REQUEST, NULL) == 0) {
        size_t used;
        struct gw_http_event ev;
        if (gw_http_parser_feed(rq, reqtext, (size_t)rl, &used, &ev) == 0 &&
            ev.type == GW_HTTP_EV_HEAD)
            req = ev.head;
    }
    gw_http_parser_free(rq);
    if (!req) {
        gw_http_parser_free(p);
        return;
    }
    struct buf client = {0}, body = {0};
    struct gw_http_head *resp = NULL;
    enum gw_http_out_framing fr = GW_HTTP_OUT_NONE;
    bool done = false, bad = false, sent = false;
    int status = 0;
    size_t pos = 0;
    static char obuf[65536];
    bool finished = false;
    for (;;) {
        size_t used = 0;
        struct gw_http_event ev;
        int rc = gw_http_parser_feed(p, in + pos, len - pos, &used, &ev);
        if (rc == 0 && ev.type == GW_HTTP_EV_NEED_MORE) {
            /* all fed: the upstream closes, as for a read-until-close body */
            if (finished)
                break;
            finished = true;
            rc = gw_http_parser_finish(p, &ev);
        }
        if (rc < 0) {
            bad = true;
            break;
        }
        pos += used;
        if (ev.type == GW_HTTP_EV_NEED_MORE)
            break;
        if (ev.type == GW_HTTP_EV_HEAD) {
            if (ev.head->status < 200 || ev.head->status == 101 || sent) {
                gw_http_head_free(ev.head);
                if (sent)
                    fail("a second final head");
                continue;
            }
            resp = ev.head;
            size_t olen = 0;
            bool ka = false;
            if (gw_http_response_head_write(resp, req, "fuzz-1", true, obuf, sizeof obuf, &olen,
                                            &fr, &ka) < 0) {
                bad = true;
                break;
            }
            put(&client, obuf, olen);
            status = resp->status;
            sent = true;
        } else if (ev.type == GW_HTTP_EV_BODY && sent) {
            put(&body, ev.data, ev.len);
            if (!ev.len)
                continue;
            if (fr == GW_HTTP_OUT_CHUNKED) {
                char pre[32], post[8];
                int a = gw_http_chunk_start(ev.len, pre, sizeof pre);
                int b = gw_http_chunk_end(post, sizeof post);
                put(&client, pre, (size_t)a);
                put(&client, ev.data, ev.len);
                put(&client, post, (size_t)b);
            } else if (fr != GW_HTTP_OUT_NONE) {
                put(&client, ev.data, ev.len);
            }
        } else if (ev.type == GW_HTTP_EV_DONE && sent) {
            if (fr == GW_HTTP_OUT_CHUNKED) {
                char last[8];
                int a = gw_http_chunk_last(last, sizeof last);
                put(&client, last, (size_t)a);
            }
            done = true;
            break;
        }
    }
    if (done && !bad) {
        /* The client's view: one response, same status, same body. */
        struct gw_http_parser *cp = NULL;
        /* The gateway adds its own fields (X-Request-Id, framing) to a head
         * already at the field limit: the client's re-parse allows more. */
        struct gw_http_limits clim = lim;
        clim.max_header_count = 1000;
        clim.max_header_bytes = 1u << 17;
        if (gw_http_parser_new(&cp, GW_HTTP_RESPONSE, &clim) == 0) {
            gw_http_parser_expect(cp, head_req, false);
            size_t cpos = 0;
            struct buf cbody = {0};
            bool cdone = false;
            int cstatus = 0;
            bool cfinished = false;
            while (!cdone) {
                size_t used = 0;
                struct gw_http_event ev;
                int rc = gw_http_parser_feed(cp, at(&client, cpos), client.len - cpos, &used, &ev);
                if (rc == 0 && ev.type == GW_HTTP_EV_NEED_MORE) {
                    if (cfinished)
                        break;
                    cfinished = true;
                    rc = gw_http_parser_finish(cp, &ev);
                }
                if (rc < 0) {
                    fprintf(stderr, "client response refused: %s\n%.*s\n",
                            gw_http_parser_reason(cp), (int)client.len, client.p);
                    fail("the response relayed to the client does not re-parse");
                }
                cpos += used;
                if (ev.type == GW_HTTP_EV_HEAD) {
                    cstatus = ev.head->status;
                    gw_http_head_free(ev.head);
                } else if (ev.type == GW_HTTP_EV_BODY) {
                    put(&cbody, ev.data, ev.len);
                } else if (ev.type == GW_HTTP_EV_DONE) {
                    cdone = true;
                } else if (ev.type == GW_HTTP_EV_NEED_MORE) {
                    break;
                }
            }
            if (!cdone)
                fail("the relayed response does not end");
            if (cstatus != status)
                fail("status changed on the way to the client");
            if (!head_req && status != 204 && status != 304 &&
                (cbody.len != body.len || (body.len && memcmp(cbody.p, body.p, body.len))))
                fail("body changed on the way to the client");
            free(cbody.p);
            gw_http_parser_free(cp);
        }
    }
    gw_http_head_free(resp);
    gw_http_head_free(req);
    free(client.p);
    free(body.p);
    gw_http_parser_free(p);
}

static bool same(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (!a->len || memcmp(a->p, b->p, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t clen = (size_t)data[0] | (size_t)data[1] << 8;
    size_t piece = (size_t)(data[2] % 16) + 1;
    data += 3;
    size -= 3;
    if (clen > size)
        clen = size;
    const char *client = (const char *)data;
    const char *reply = (const char *)data + clen;
    size_t rlen = size - clen;

    struct run whole = {0}, split = {0};
    client_side(client, clen, clen ? clen : 1, &whole);
    client_side(client, clen, piece, &split);
    /* Chunk boundaries follow the reads; heads and decoded bodies may not. */
    if (whole.nmsgs != split.nmsgs)
        fail("whole and piecewise feeding forward different numbers of requests");
    for (size_t i = 0; i < whole.nmsgs; i++)
        if (!same(&whole.msgs[i].head, &split.msgs[i].head) ||
            !same(&whole.msgs[i].body, &split.msgs[i].body))
            fail("whole and piecewise feeding forward different requests");
    check_wire(&whole);
    upstream_side(&whole, reply, rlen);
    run_done(&whole);
    run_done(&split);
    return 0;
}
