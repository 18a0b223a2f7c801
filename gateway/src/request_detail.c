/*
 * request_detail.c: the request process's detail line, written and read
 * in one place (see request_detail.h for the layout and why the path is
 * last).
 */
#include "request_detail.h"

#include <string.h>

#include "rt/rt.h"

/* Appends n bytes of s to line (at *len), as many as fit before its last
 * byte. */
static void put(char *line, size_t *len, const char *s, size_t n)
{
    size_t room = GW__REQUEST_DETAIL_LINE - 1 - *len;
    if (n > room)
        n = room;
    memcpy(line + *len, s, n);
    *len += n;
}

static void put_str(char *line, size_t *len, const char *s)
{
    if (s)
        put(line, len, s, strnlen(s, GW__REQUEST_DETAIL_LINE));
}

void gw__request_detail_set(const char *method, const char *path, size_t path_len,
                            const char *route, const char *target)
{
    /* Set on every request, twice: joined by hand, as a format costs more
     * than the rest of a small request's bookkeeping. `path` need not be
     * NUL-terminated (a view into a parser's buffer); the line is cut at
     * the runtime's size. */
    char line[GW__REQUEST_DETAIL_LINE];
    size_t len = 0;
    put_str(line, &len, method);
    put(line, &len, "\t", 1);
    put_str(line, &len, route);
    put(line, &len, "\t", 1);
    put_str(line, &len, target);
    put(line, &len, "\t", 1);
    if (path)
        put(line, &len, path, path_len);
    rt_set_detail_text(line, len);
}

/* Copies the bytes up to the next tab (or the end) into `field`; returns
 * where the next field starts. `field` has room for the whole line. */
static const char *take(const char *p, char field[GW__REQUEST_DETAIL_LINE])
{
    size_t n = strcspn(p, "\t");
    if (n >= GW__REQUEST_DETAIL_LINE)
        n = GW__REQUEST_DETAIL_LINE - 1;
    memcpy(field, p, n);
    field[n] = 0;
    return p[n] == '\t' ? p + n + 1 : p + n;
}

void gw__request_detail_read(const char *line, struct gw__request_detail *out)
{
    const char *p = line ? line : "";
    p = take(p, out->method);
    p = take(p, out->route);
    p = take(p, out->target);
    /* The path is the rest of the line, tabs and all. */
    size_t n = strnlen(p, GW__REQUEST_DETAIL_LINE - 1);
    memcpy(out->path, p, n);
    out->path[n] = 0;
}
