/*
 * request_detail.c: the request process's detail line, written and read
 * in one place (see request_detail.h for the layout and why the path is
 * last).
 */
#include "request_detail.h"

#include <string.h>

#include "rt/rt.h"

void gw__request_detail_set(const char *method, const char *path, size_t path_len,
                            const char *route, const char *target)
{
    /* rt_set_detail cuts the line at the runtime's size; %.*s keeps a path
     * that is not NUL-terminated (a view into a parser's buffer) bounded. */
    int plen = path_len > GW__REQUEST_DETAIL_LINE ? GW__REQUEST_DETAIL_LINE : (int)path_len;
    rt_set_detail("%s\t%s\t%s\t%.*s", method ? method : "", route ? route : "",
                  target ? target : "", plen, path ? path : "");
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
