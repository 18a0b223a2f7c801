/* response.c: every response head the gateway writes to a client.
 *
 * Two kinds of answer leave the gateway: an upstream's response relayed
 * (gw_http_response_head_write: its end-to-end fields copied, framing
 * re-decided, chunk framing re-applied by gw_http_chunk_*), and answers the
 * gateway makes itself (struct gw_http_answer: errors, respond routes, the
 * admin API, redirects, 100 Continue, the over-limit 503), plus the 101 head
 * that opens a tunnel. Each is built here and nowhere else, so the status
 * line, framing and the gateway's own fields are decided in one place.
 *
 * Writers fill a caller's buffer and fail with -ENOSPC rather than
 * truncate. Plain data, no runtime calls: any thread.
 */
#include "gw/http1.h"
#include "http_int.h"

#include "../linebuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The status line: the only place a status line is spelled. */
static void status_line(struct gw__http_out *o, int status, const char *reason, size_t reason_len)
{
    char line[32];
    int n;
    if (status >= 0 && status <= 999) { /* every status there is: no format on each response */
        memcpy(line, "HTTP/1.1 ", 9);
        line[9] = (char)('0' + status / 100);
        line[10] = (char)('0' + status / 10 % 10);
        line[11] = (char)('0' + status % 10);
        line[12] = ' ';
        n = 13;
    } else {
        n = snprintf(line, sizeof line, "HTTP/1.1 %03d ", status);
    }
    gw__http_put(o, line, (size_t)n);
    gw__http_put(o, reason, reason_len);
    gw__http_put(o, "\r\n", 2);
}

/* An X-Request-Id fit to write as it is: visible ASCII, no spaces. */
static bool request_id_ok(const char *id)
{
    if (!id || !*id)
        return false;
    for (const char *s = id; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

int gw_http_response_head_write(const struct gw_http_head *r, const struct gw_http_head *req,
                                const char *request_id, bool keep_alive, char *buf, size_t cap,
                                size_t *out_len, enum gw_http_out_framing *framing,
                                bool *keep_alive_out)
{
    return gw_http_response_head_write_edited(r, req, request_id, keep_alive, NULL, buf, cap,
                                              out_len, framing, keep_alive_out);
}

int gw_http_response_head_write_edited(const struct gw_http_head *r, const struct gw_http_head *req,
                                       const char *request_id, bool keep_alive,
                                       const struct gw_http_edits *edits, char *buf, size_t cap,
                                       size_t *out_len, enum gw_http_out_framing *framing,
                                       bool *keep_alive_out)
{
    struct gw__http_out o = {.buf = buf, .cap = cap};
    if (!r->is_response || (req && req->is_response))
        return -EINVAL;
    bool client10 = req && req->version_minor == 0;
    bool head_req = req && gw__http_ieq(req->method, req->method_len, "HEAD");
    bool ka = keep_alive && (!req || req->keep_alive);
    bool upgrade = r->status == 101 && r->upgrade;
    enum gw_http_out_framing fr;

    status_line(&o, r->status, r->reason, r->reason_len);

    gw__http_copy_fields(&o, r, upgrade, edits, GW__HTTP_F_HOP | GW__HTTP_F_OWNED);
    gw__http_put_edits(&o, edits);
    if (r->status >= 200) /* RFC 9110 §6.6.1: a final response carries a Date */
        gw__http_put_date_unless_copied(&o, r, edits);

    if (head_req || r->status == 204 || r->status == 304 || r->status < 200) {
        fr = GW_HTTP_OUT_NONE;
        /* A HEAD or 304 answer may state the length the body would have. */
        if (r->status != 204 && r->status >= 200) {
            size_t vn;
            const char *v = gw_http_head_get(r, "content-length", &vn);
            if (v)
                gw__http_field(&o, "Content-Length", v, vn);
        }
    } else if (r->framing == GW_HTTP_BODY_LENGTH) {
        fr = GW_HTTP_OUT_LENGTH;
        gw__http_puts(&o, "Content-Length: ");
        gw__http_put_u64(&o, r->content_length);
        gw__http_put(&o, "\r\n", 2);
    } else if ((r->framing == GW_HTTP_BODY_CHUNKED || r->framing == GW_HTTP_BODY_CLOSE) &&
               !client10) {
        fr = GW_HTTP_OUT_CHUNKED;
        gw__http_put_te_chunked(&o, r);
    } else if (r->framing == GW_HTTP_BODY_NONE) {
        fr = GW_HTTP_OUT_NONE;
        gw__http_puts(&o, "Content-Length: 0\r\n");
    } else {
        fr = GW_HTTP_OUT_CLOSE;
        ka = false;
    }
    if (upgrade) {
        gw__http_puts(&o, "Connection: upgrade\r\n");
        ka = false;
    } else if (!ka) {
        gw__http_puts(&o, "Connection: close\r\n");
    } else if (client10) {
        gw__http_puts(&o, "Connection: keep-alive\r\n");
    }
    if (request_id) {
        gw__http_field(&o, "X-Request-Id", request_id, strlen(request_id));
    }
    gw__http_put(&o, "\r\n", 2);
    if (o.overflow)
        return -ENOSPC;
    *out_len = o.len;
    *framing = fr;
    *keep_alive_out = ka;
    return 0;
}

int gw_http_chunk_start(uint64_t len, char *buf, size_t cap)
{
    char tmp[24];
    if (len == 0)
        return -EINVAL;
    int n = snprintf(tmp, sizeof(tmp), "%" PRIx64 "\r\n", len);
    if ((size_t)n > cap)
        return -ENOSPC;
    memcpy(buf, tmp, (size_t)n);
    return n;
}

int gw_http_chunk_end(char *buf, size_t cap)
{
    if (cap < 2)
        return -ENOSPC;
    memcpy(buf, "\r\n", 2);
    return 2;
}

int gw_http_chunk_last(char *buf, size_t cap)
{
    if (cap < 5)
        return -ENOSPC;
    memcpy(buf, "0\r\n\r\n", 5);
    return 5;
}

const char *gw_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

bool gw_http_status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

int gw_http_https_location(const char *host, size_t hlen, uint16_t port, const char *path,
                           char *buf, size_t cap)
{
    if (!host || !gw__http_host_valid(host, hlen) || !path || path[0] != '/')
        return -EINVAL;
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return -EINVAL;
    /* The name without the request's port: up to ']' for an IP literal,
     * else up to ':' (gw__http_host_valid allows no other ':'). */
    size_t nlen = 0;
    if (host[0] == '[') {
        while (host[nlen] != ']')
            nlen++;
        nlen++;
    } else {
        while (nlen < hlen && host[nlen] != ':')
            nlen++;
    }
    int n = port == 443
                ? snprintf(buf, cap, "https://%.*s%s", (int)nlen, host, path)
                : snprintf(buf, cap, "https://%.*s:%u%s", (int)nlen, host, (unsigned)port, path);
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

int gw_http_answer_head_write(const struct gw_http_answer *a, char *buf, size_t cap,
                              size_t *out_len)
{
    struct gw__http_out o = {.buf = buf, .cap = cap};
    if (a->status < 100 || a->status > 999)
        return -EINVAL;
    const char *reason = gw_http_status_text(a->status);
    status_line(&o, a->status, reason, strlen(reason));
    if (a->status >= 200) /* RFC 9110 §6.6.1; optional on 1xx, which stay minimal */
        gw__http_put_date(&o);
    if (a->location) {
        gw__http_puts(&o, "Location: ");
        gw__http_puts(&o, a->location);
        if (a->location_query) {
            gw__http_put(&o, "?", 1);
            gw__http_puts(&o, a->location_query);
        }
        gw__http_put(&o, "\r\n", 2);
    }
    if (a->allow) {
        gw__http_puts(&o, "Allow: ");
        gw__http_puts(&o, a->allow);
        gw__http_put(&o, "\r\n", 2);
    }
    for (size_t i = 0; i < a->nfields; i++)
        gw__http_field(&o, a->fields[i].name, a->fields[i].value, strlen(a->fields[i].value));
    if (a->content_type) {
        gw__http_puts(&o, "Content-Type: ");
        gw__http_puts(&o, a->content_type);
        gw__http_put(&o, "\r\n", 2);
    }
    /* 1xx, 204 and 304 have no body and state no length (RFC 9110 §8.6). */
    if (gw_http_status_has_body(a->status) && !a->until_close) {
        gw__http_puts(&o, "Content-Length: ");
        gw__http_put_u64(&o, a->content_length);
        gw__http_put(&o, "\r\n", 2);
    }
    if (a->no_store)
        gw__http_puts(&o, "Cache-Control: no-store\r\n");
    if (request_id_ok(a->request_id)) {
        gw__http_field(&o, "X-Request-Id", a->request_id, strlen(a->request_id));
    }
    if (a->close || a->until_close)
        gw__http_puts(&o, "Connection: close\r\n");
    gw__http_put(&o, "\r\n", 2);
    if (o.overflow)
        return -ENOSPC;
    *out_len = o.len;
    return 0;
}

/* The error body's room, and the most of it a message may take: a longer
 * message is cut (linebuf.h) so that the request id still fits. */
#define ERROR_BODY_MAX 512
#define ERROR_MESSAGE_MAX 320

int gw_http_error_answer(const struct gw_http_answer *a, const char *message, char *buf, size_t cap,
                         size_t *out_len)
{
    char body[ERROR_BODY_MAX];
    struct gw__linebuf b;
    gw__linebuf_init(&b, body, sizeof body);
    const char *m = message ? message : gw_http_status_text(a->status);
    gw__linebuf_puts(&b, "{\"error\": ");
    gw__linebuf_json(&b, m, strlen(m), ERROR_MESSAGE_MAX, NULL);
    gw__linebuf_puts(&b, ", \"request_id\": ");
    const char *id = a->request_id && *a->request_id ? a->request_id : NULL;
    gw__linebuf_json(&b, id, id ? strlen(id) : 0, sizeof body, NULL);
    gw__linebuf_puts(&b, "}\n");
    if (gw__linebuf_full(&b))
        return -ENOSPC;
    struct gw_http_answer h = *a;
    /* A 204 (a CORS preflight's answer) carries no body to have a type. */
    h.content_type = gw_http_status_has_body(a->status) ? "application/json" : NULL;
    h.content_length = b.len;
    size_t n = 0;
    int rc = gw_http_answer_head_write(&h, buf, cap, &n);
    if (rc < 0)
        return rc;
    /* No body may follow such a head, nor any answer to a HEAD (RFC 9112
     * §6.3): a keep-alive client would read it as the next response. */
    if (!gw_http_status_has_body(a->status) || a->head_only)
        b.len = 0;
    if (b.len > cap - n)
        return -ENOSPC;
    memcpy(buf + n, body, b.len);
    *out_len = n + b.len;
    return 0;
}

int gw_http_error_write(int status, const char *message, const char *request_id, bool close,
                        char *buf, size_t cap, size_t *out_len)
{
    struct gw_http_answer a = {.status = status, .request_id = request_id, .close = close};
    return gw_http_error_answer(&a, message, buf, cap, out_len);
}

int gw_http_busy_write(char *buf, size_t cap, size_t *out_len)
{
    static const char body[] = "{\"error\": \"too many connections\"}\n";
    struct gw_http_answer a = {.status = 503,
                               .close = true,
                               .content_type = "application/json",
                               .content_length = sizeof body - 1};
    size_t n = 0;
    int rc = gw_http_answer_head_write(&a, buf, cap, &n);
    if (rc < 0)
        return rc;
    if (cap - n < sizeof body - 1)
        return -ENOSPC;
    memcpy(buf + n, body, sizeof body - 1);
    *out_len = n + sizeof body - 1;
    return 0;
}

/* Whether one of the gateway's `set` fields replaces field name[0..n). */
static bool replaced(const struct gw_http_edits *e, const char *name, size_t n)
{
    for (size_t i = 0; e && i < e->nset; i++)
        if (gw__http_ieq(name, n, e->set[i].name))
            return true;
    return false;
}

int gw_http_switching_head_write(const struct gw_http_head *r, const char *request_id,
                                 const struct gw_http_edits *extra, char *buf, size_t cap,
                                 size_t *out_len)
{
    struct gw__http_out o = {.buf = buf, .cap = cap};
    if (!r->is_response || r->status != 101)
        return -EINVAL;
    const char *reason = gw_http_status_text(101);
    status_line(&o, 101, reason, strlen(reason));
    /* As the upstream sent it: Upgrade and Connection are what the client
     * asked to switch to. But no framing field: a 1xx has no content, and
     * Content-Length (RFC 9110 §8.6) and Transfer-Encoding (RFC 9112 §6.1)
     * must not be sent in one, whatever the upstream put there. */
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct gw_http_header *f = &r->headers[i];
        if (GW__HTTP_IEQ_LIT(f->name, f->name_len, "content-length") ||
            GW__HTTP_IEQ_LIT(f->name, f->name_len, "transfer-encoding"))
            continue;
        /* The gateway's own id replaces the upstream's, as on any response
         * it relays: one X-Request-Id. */
        if (request_id_ok(request_id) && GW__HTTP_IEQ_LIT(f->name, f->name_len, "x-request-id"))
            continue;
        if (replaced(extra, f->name, f->name_len))
            continue;
        gw__http_put(&o, f->name, f->name_len);
        gw__http_put(&o, ": ", 2);
        gw__http_put(&o, f->value, f->value_len);
        gw__http_put(&o, "\r\n", 2);
    }
    if (extra) {
        struct gw_http_edits fields = {.set = extra->set,
                                       .nset = extra->nset,
                                       .add = extra->add,
                                       .nadd = extra->nadd,
                                       .checked = extra->checked};
        gw__http_put_edits(&o, &fields);
    }
    if (request_id_ok(request_id)) {
        gw__http_field(&o, "X-Request-Id", request_id, strlen(request_id));
    }
    gw__http_put(&o, "\r\n", 2);
    if (o.overflow)
        return -ENOSPC;
    *out_len = o.len;
    return 0;
}
