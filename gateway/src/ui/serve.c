/*
 * serve.c: the dashboard's files on the admin listener (ui.h). Names are
 * looked up in the embedded table and nothing else: no file is opened, so
 * no path (dot segments, escapes, a separator in any spelling) can reach
 * beyond the table; names outside the table's alphabet are refused before
 * the look-up all the same. Answers are built from static storage but the
 * body, which is copied because every admin answer's body is the caller's
 * to free (the files are a few kB each).
 */
#include "ui/ui.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The headers of every /ui answer. The policy allows the page's own
 * scripts, styles and calls and nothing else: no inline script or style
 * (a string the admin API returns can never run), no framing (no
 * clickjacking of Kill), no form posting, no base rewriting. */
static const struct gw_http_kv ui_fields[] = {
    {"Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
    {"X-Frame-Options", "DENY"},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
};
#define UI_NFIELDS (sizeof ui_fields / sizeof ui_fields[0])

bool gw_ui_owns(const char *path)
{
    return path && strncmp(path, "/ui", 3) == 0 && (path[3] == 0 || path[3] == '/');
}

/* A name of the table's alphabet: segments of [A-Za-z0-9_.-] separated by
 * single '/', none empty or starting with '.' (so no "..", no hidden file),
 * no '%' (nothing encoded). embed.py holds the files to the same rule. */
static bool name_valid(const char *name, size_t len)
{
    if (len == 0)
        return false;
    bool seg_start = true;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '/') {
            if (seg_start)
                return false;
            seg_start = true;
            continue;
        }
        if (seg_start && c == '.')
            return false;
        seg_start = false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return !seg_start;
}

const struct gw_ui_file *gw_ui_find(const char *name, size_t len)
{
    if (!name_valid(name, len))
        return NULL;
    size_t lo = 0, hi = gw__ui_nfiles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *m = gw__ui_files[mid].name;
        size_t mlen = strlen(m);
        int c = memcmp(name, m, len < mlen ? len : mlen);
        if (c == 0)
            c = len < mlen ? -1 : len > mlen ? 1 : 0;
        if (c == 0)
            return &gw__ui_files[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* True when an If-None-Match field of the request names `etag` (weak
 * comparison, RFC 9110 §13.1.2: a W/ prefix is ignored) or is "*". Every
 * field of that name counts, each a comma-separated list. */
static bool none_match(const struct gw_http_head *head, const char *etag)
{
    size_t elen = strlen(etag);
    for (size_t i = 0; head && i < head->nheaders; i++) {
        const struct gw_http_header *f = &head->headers[i];
        if (strcasecmp(f->name, "if-none-match") != 0)
            continue;
        const char *p = f->value, *end = f->value + f->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *q = p;
            while (q < end && *q != ',')
                q++;
            size_t n = (size_t)(q - p);
            while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                n--;
            if (n == 1 && p[0] == '*')
                return true;
            if (n >= 2 && p[0] == 'W' && p[1] == '/') {
                p += 2;
                n -= 2;
            }
            if (n == elen && memcmp(p, etag, n) == 0)
                return true;
            p = q;
        }
    }
    return false;
}

static void add_field(struct gw_admin_response *resp, const char *name, const char *value)
{
    if (resp->nfields < GW_ADMIN_MAX_FIELDS)
        resp->fields[resp->nfields++] = (struct gw_http_kv){name, value};
}

/* A static body, copied (the caller frees every body) and NUL-terminated
 * past its length as every admin answer's. */
static void set_text(struct gw_admin_response *resp, int status, const char *ct, const void *data,
                     size_t len)
{
    resp->status = status;
    resp->content_type = ct;
    resp->body = NULL;
    resp->body_len = 0;
    if (len == 0)
        return;
    char *b = malloc(len + 1);
    if (!b) {
        static const char oom[] = "{\"error\":\"out_of_memory\",\"detail\":null}\n";
        resp->status = 503;
        resp->content_type = "application/json";
        b = malloc(sizeof oom);
        if (!b)
            return;
        memcpy(b, oom, sizeof oom);
        resp->body = b;
        resp->body_len = sizeof oom - 1;
        return;
    }
    memcpy(b, data, len);
    b[len] = 0;
    resp->body = b;
    resp->body_len = len;
}

#define JSON_ERROR(code, detail) "{\"error\":\"" code "\",\"detail\":\"" detail "\"}\n"

void gw_ui_fields(struct gw_admin_response *resp)
{
    for (size_t i = 0; i < UI_NFIELDS; i++)
        add_field(resp, ui_fields[i].name, ui_fields[i].value);
    /* Revalidated on every load (a 304 when unchanged): an upgraded
     * gateway never serves a page whose scripts are from the old one. */
    resp->cache_control = "no-cache";
}

void gw_ui_serve(const struct gw_admin_request *req, struct gw_admin_response *resp)
{
    memset(resp, 0, sizeof *resp);
    gw_ui_fields(resp);
    const char *method = req->head && req->head->method ? req->head->method : "";
    const char *path = req->path ? req->path : "";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char text[] = JSON_ERROR("method_not_allowed", "the dashboard's files are "
                                                                    "read with GET or HEAD");
        set_text(resp, 405, "application/json", text, sizeof text - 1);
        resp->allow = "GET, HEAD";
        return;
    }
    if (strcmp(path, "/ui") == 0) {
        /* Relative references in index.html resolve against /ui/. */
        static const char text[] = JSON_ERROR("moved", "the dashboard is at /ui/");
        set_text(resp, 308, "application/json", text, sizeof text - 1);
        add_field(resp, "Location", "/ui/");
        return;
    }
    const struct gw_ui_file *f = NULL;
    if (strncmp(path, "/ui/", 4) == 0) {
        const char *name = path + 4;
        size_t len = strlen(name);
        f = len == 0 ? gw_ui_find("index.html", 10) : gw_ui_find(name, len);
    }
    if (!f) {
        static const char text[] = JSON_ERROR("not_found", "no such file in the dashboard");
        set_text(resp, 404, "application/json", text, sizeof text - 1);
        return;
    }
    add_field(resp, "ETag", f->etag);
    if (none_match(req->head, f->etag)) {
        set_text(resp, 304, NULL, NULL, 0);
        return;
    }
    set_text(resp, 200, f->content_type, f->data, f->len);
}
