/*
 * request_detail.h: what a request process is doing, as the admin API's
 * process list shows it (method, path, route, upstream target).
 *
 * The runtime keeps one free-form detail line per process (rt_set_detail,
 * at most RT's 127 bytes) and copies it into every snapshot, which is what
 * lets 100,000 processes be listed without calling any of them. This file
 * alone knows how the four fields are laid out in that line: the request
 * side writes them with gw__request_detail_set, the admin API reads them
 * back with gw__request_detail_read; nothing else splits the line.
 *
 * Layout: "METHOD\tROUTE\tTARGET\tPATH". The path is last: when the line is
 * full it is the path that is cut, never the route or target after it, and
 * a path needs no separator of its own (whatever bytes it holds end the
 * line). Method, route name and target address hold no tab (a method is an
 * HTTP token, route names and addresses are checked when loaded).
 */
#ifndef GW_REQUEST_DETAIL_H
#define GW_REQUEST_DETAIL_H

#include <stddef.h>

/* The runtime's detail line, NUL included (struct rt_proc_info.detail). */
#define GW__REQUEST_DETAIL_LINE 128

/* A request's detail, read back. Every field is NUL-terminated and ""
 * when not known (yet); none can be longer than the line that held it. */
struct gw__request_detail {
    char method[GW__REQUEST_DETAIL_LINE];
    char route[GW__REQUEST_DETAIL_LINE];
    char target[GW__REQUEST_DETAIL_LINE];
    char path[GW__REQUEST_DETAIL_LINE];
};

/* Process context (the request process). Publishes what the caller is
 * doing; route and target may be NULL (not chosen yet). The strings are
 * copied; the line is cut at GW__REQUEST_DETAIL_LINE - 1 bytes. */
void gw__request_detail_set(const char *method, const char *path, size_t path_len,
                            const char *route, const char *target);

/* Any thread, plain data. Reads a line written by gw__request_detail_set
 * (NUL-terminated, any bytes) into *out; a line cut short gives empty
 * fields for what is missing. */
void gw__request_detail_read(const char *line, struct gw__request_detail *out);

#endif
