/* driver.c: runs raw HTTP/1.1 bytes through the wire module and prints the
 * verdict as one JSON object, for tests/conformance/replay.py.
 *
 *   http_conformance_driver [--response] [--head] [--connect] [--finish]
 *                           [--split N] [--no-host-check] [FILE]
 *
 * Requests: each complete request is canonicalised and its upstream head
 * written as the gateway would forward it (client 192.0.2.1, untrusted,
 * request id "req-<n>"); the decoded body is re-framed (Content-Length or
 * chunked). Responses: the client head is written for a plain GET. The
 * verdict is "accepted" (every byte consumed, or the rest left after a
 * closing or upgraded message), "incomplete" (input ended inside a message)
 * or "refused" with the status the gateway answers and a reason.
 */
#include "gw/http1.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT (8u * 1024 * 1024)
#define MAX_OUT (16u * 1024 * 1024)

struct sbuf {
    char *p;
    size_t len, cap;
};

static int sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > MAX_OUT)
            return -ENOSPC;
        char *np = realloc(b->p, cap);
        if (!np)
            return -ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static void json_str(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

struct opts {
    bool response, head, connect, finish, no_host;
    size_t split;
    const char *file;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--response"))
            o->response = true;
        else if (!strcmp(argv[i], "--head"))
            o->head = true;
        else if (!strcmp(argv[i], "--connect"))
            o->connect = true;
        else if (!strcmp(argv[i], "--finish"))
            o->finish = true;
        else if (!strcmp(argv[i], "--no-host-check"))
            o->no_host = true;
        else if (!strcmp(argv[i], "--split") && i + 1 < argc)
            o->split = (size_t)strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !o->file)
            o->file = argv[i];
        else
            return -EINVAL;
    }
    return 0;
}

static int read_input(const char *file, struct sbuf *in)
{
    FILE *f = file ? fopen(file, "rb") : stdin;
    int r = 0;
    if (!f)
        return -errno;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if (in->len + n > MAX_INPUT) {
            r = -EFBIG;
            break;
        }
        r = sb_add(in, tmp, n);
        if (r < 0)
            break;
    }
    if (file)
        fclose(f);
    return r;
}

struct run {
    struct opts o;
    struct gw_http_parser *p;
    struct gw_http_head *head; /* message in progress */
    struct sbuf body;
    int nmsg;
    bool stop; /* closing or upgraded message done: the rest is not HTTP */
    FILE *out;
    const char *refuse_stage;
    int refuse_status;
    const char *refuse_reason;
};

static int emit_message_to(struct run *R);

/* Prints one finished message as a JSON object, unless the gateway refuses
 * it after parsing (target canonicalisation): then -EINVAL and nothing is
 * listed, as nothing would be forwarded. */
static int emit_message(struct run *R)
{
    char *text = NULL;
    size_t tlen = 0;
    FILE *mem = open_memstream(&text, &tlen);
    if (!mem)
        return -ENOMEM;
    R->out = mem;
    int r = emit_message_to(R);
    fclose(mem);
    R->out = stdout;
    if (r == 0) {
        fputs(R->nmsg ? "," : "", stdout);
        fwrite(text, 1, tlen, stdout);
        R->nmsg++;
    }
    free(text);
    return r;
}

static int emit_message_to(struct run *R)
{
    struct gw_http_head *h = R->head;
    char fwd[65536];
    size_t fl = 0;
    int r = 0;
    fputc('{', R->out);
    if (!h->is_response) {
        size_t cap = 3 * h->target_len + 2;
        char *tb = malloc(cap);
        struct gw_http_target t;
        char id[32];
        snprintf(id, sizeof(id), "req-%d", R->nmsg + 1);
        if (!tb)
            return -ENOMEM;
        r = gw_http_target_canon(h->method, h->target, h->target_len, tb, cap, &t);
        fprintf(R->out, "\"method\":");
        json_str(R->out, h->method, h->method_len);
        fprintf(R->out, ",\"target\":");
        json_str(R->out, h->target, h->target_len);
        if (r == 0) {
            char path[16384];
            int pl = snprintf(path, sizeof(path), "%s%s%s", t.path, t.query ? "?" : "",
                              t.query ? t.query : "");
            struct gw_http_fwd f = {
                .client_addr = "192.0.2.1",
                .request_id = gw_http_request_id(h, id, NULL),
                .path = path,
                .path_len = (size_t)pl,
                .host_override = t.authority,
            };
            /* --no-host-check: what the Host rule would have demanded. */
            if (!f.host_override && !gw_http_head_get(h, "host", NULL))
                f.host_override = "example.com";
            fprintf(R->out, ",\"canonical\":");
            json_str(R->out, path, (size_t)pl);
            if (t.authority) {
                fprintf(R->out, ",\"authority\":");
                json_str(R->out, t.authority, t.authority_len);
            }
            r = gw_http_request_head_write(h, &f, fwd, sizeof(fwd), &fl);
        }
        free(tb);
    } else {
        enum gw_http_out_framing fr;
        bool ka;
        fprintf(R->out, "\"status\":%d", h->status);
        r = gw_http_response_head_write(h, NULL, "req-1", true, fwd, sizeof(fwd), &fl, &fr, &ka);
    }
    static const char *const fnames[] = {"none", "length", "chunked", "close"};
    fprintf(R->out, ",\"framing\":\"%s\",\"keep_alive\":%s,\"upgrade\":%s", fnames[h->framing],
            h->keep_alive ? "true" : "false", h->upgrade ? "true" : "false");
    fprintf(R->out, ",\"headers\":[");
    for (size_t i = 0; i < h->nheaders; i++) {
        fprintf(R->out, "%s[", i ? "," : "");
        json_str(R->out, h->headers[i].name, h->headers[i].name_len);
        fputc(',', R->out);
        json_str(R->out, h->headers[i].value, h->headers[i].value_len);
        fputc(']', R->out);
    }
    fprintf(R->out, "],\"body\":");
    json_str(R->out, R->body.p ? R->body.p : "", R->body.len);
    if (r == 0) {
        /* What the upstream (or client) receives: the head, then the body
         * re-framed the way the head announces. */
        struct sbuf wire = {0};
        sb_add(&wire, fwd, fl);
        bool chunk = (!h->is_response && h->framing == GW_HTTP_BODY_CHUNKED) ||
                     (h->is_response &&
                      (h->framing == GW_HTTP_BODY_CHUNKED || h->framing == GW_HTTP_BODY_CLOSE));
        char line[32];
        if (chunk) {
            if (R->body.len) {
                int n = gw_http_chunk_start(R->body.len, line, sizeof(line));
                sb_add(&wire, line, (size_t)n);
                sb_add(&wire, R->body.p, R->body.len);
                n = gw_http_chunk_end(line, sizeof(line));
                sb_add(&wire, line, (size_t)n);
            }
            int n = gw_http_chunk_last(line, sizeof(line));
            sb_add(&wire, line, (size_t)n);
        } else if (R->body.len) {
            sb_add(&wire, R->body.p, R->body.len);
        }
        fprintf(R->out, ",\"forward\":");
        json_str(R->out, wire.p, wire.len);
        free(wire.p);
    }
    fputc('}', R->out);
    if (r == -EINVAL) {
        R->refuse_stage = "target";
        R->refuse_status = 400;
        R->refuse_reason = "request-target refused";
    } else if (r < 0) {
        R->refuse_stage = "write";
        R->refuse_status = 500;
        R->refuse_reason = strerror(-r);
    }
    return r;
}

/* Feeds buf[0..len) completely; returns 0, 1 when the run must stop, or <0. */
static int feed(struct run *R, const char *buf, size_t len)
{
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        struct gw_http_event ev;
        int r = gw_http_parser_feed(R->p, buf + off, len - off, &used, &ev);
        if (r < 0) {
            R->refuse_stage = "parse";
            R->refuse_status = gw_http_parser_status(R->p);
            R->refuse_reason = gw_http_parser_reason(R->p);
            return r;
        }
        off += used;
        switch (ev.type) {
        case GW_HTTP_EV_NEED_MORE:
            if (off < len) {
                R->refuse_stage = "driver";
                R->refuse_status = 500;
                R->refuse_reason = "parser stalled";
                return -EIO;
            }
            return 0;
        case GW_HTTP_EV_HEAD:
            R->head = ev.head;
            R->body.len = 0;
            break;
        case GW_HTTP_EV_BODY:
            if (sb_add(&R->body, ev.data, ev.len) < 0)
                return -ENOSPC;
            break;
        case GW_HTTP_EV_DONE: {
            /* After an upgrade the bytes belong to the tunnel. After a
             * closing message they are still fed: the parser refuses them,
             * which is what the connection process does before it closes. */
            bool stop = R->head->upgrade;
            r = emit_message(R);
            gw_http_head_free(R->head);
            R->head = NULL;
            if (r < 0)
                return r;
            if (R->o.response)
                gw_http_parser_expect(R->p, R->o.head, R->o.connect);
            if (stop) {
                R->stop = true;
                return 1;
            }
            break;
        }
        }
    }
}

int main(int argc, char **argv)
{
    struct run R = {.out = stdout};
    struct sbuf in = {0};
    struct gw_http_limits lim;
    int r;

    if (parse_args(argc, argv, &R.o) < 0) {
        fprintf(stderr,
                "usage: %s [--response] [--head] [--connect] [--finish] [--split N] "
                "[--no-host-check] [FILE]\n",
                argv[0]);
        return 2;
    }
    if ((r = read_input(R.o.file, &in)) < 0) {
        fprintf(stderr, "%s: %s\n", R.o.file ? R.o.file : "stdin", strerror(-r));
        return 2;
    }
    gw_http_limits_default(&lim);
    lim.require_host = !R.o.no_host;
    if (R.o.response)
        lim.max_body_bytes = 0;
    if (gw_http_parser_new(&R.p, R.o.response ? GW_HTTP_RESPONSE : GW_HTTP_REQUEST, &lim) < 0)
        return 2;
    if (R.o.response)
        gw_http_parser_expect(R.p, R.o.head, R.o.connect);

    printf("{\"messages\":[");
    size_t step = R.o.split ? R.o.split : (in.len ? in.len : 1);
    size_t pos = 0;
    r = 0;
    while (pos < in.len) {
        size_t n = in.len - pos < step ? in.len - pos : step;
        r = feed(&R, in.p + pos, n);
        if (r != 0)
            break;
        pos += n;
    }
    /* Where the parser stopped: bytes it consumed across all pieces. */
    uint64_t consumed = gw_http_parser_offset(R.p);
    const char *verdict = "accepted";
    if (r < 0) {
        verdict = "refused";
    } else if (r == 0 && R.o.finish) {
        struct gw_http_event ev;
        if (gw_http_parser_finish(R.p, &ev) < 0) {
            verdict = "refused";
            R.refuse_stage = "parse";
            R.refuse_status = gw_http_parser_status(R.p);
            R.refuse_reason = gw_http_parser_reason(R.p);
        } else if (ev.type == GW_HTTP_EV_DONE && R.head) {
            emit_message(&R);
        }
    } else if (r == 0 && gw_http_parser_in_message(R.p)) {
        verdict = "incomplete";
    }
    printf("],\"verdict\":\"%s\"", verdict);
    if (!strcmp(verdict, "refused")) {
        printf(",\"status\":%d,\"stage\":\"%s\",\"reason\":", R.refuse_status, R.refuse_stage);
        json_str(stdout, R.refuse_reason, strlen(R.refuse_reason));
    }
    printf(",\"consumed\":%llu,\"length\":%zu}\n", (unsigned long long)consumed, in.len);
    gw_http_head_free(R.head);
    gw_http_parser_free(R.p);
    free(R.body.p);
    free(in.p);
    return 0;
}
