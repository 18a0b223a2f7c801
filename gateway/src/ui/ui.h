/*
 * ui.h: the dashboard's static files, embedded in the binary at build time
 * (embed.py writes the table from www/) and served on the admin listener
 * under /ui/. The files hold no data: everything they show they fetch from
 * the admin API with the operator's token, so they are served without it.
 * Every /ui answer carries the same strict headers (no inline script or
 * style, no framing, no sniffing, no referrer) and an ETag.
 */
#ifndef GW_UI_H
#define GW_UI_H

#include <stdbool.h>
#include <stddef.h>

#include "gw/admin.h"

/* One embedded file: `name` relative to www/ ("index.html",
 * "views/overview.js"), its media type, bytes and strong entity tag (quoted,
 * derived from the bytes). Static storage. */
struct gw_ui_file {
    const char *name;
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag;
};

/* The generated table (ui_files.c), in byte order of names. */
extern const struct gw_ui_file gw__ui_files[];
extern const size_t gw__ui_nfiles;

/* Any thread. True when `path` (a canonical path) is the dashboard's: "/ui"
 * or under "/ui/". */
bool gw_ui_owns(const char *path);

/* Any thread; does not block. The file `name` (relative to www/), or NULL.
 * Only names of the table are found: no path is ever opened. */
const struct gw_ui_file *gw_ui_find(const char *name, size_t len);

/* Any thread; does not block. Answers a request for a path gw_ui_owns:
 * GET/HEAD "/ui/" (index.html) and "/ui/<file>", "/ui" redirected to
 * "/ui/", 304 when If-None-Match names the file's tag, 404 for any other
 * name, 405 for other methods. Fills *resp always (the body malloc'd, as
 * every admin answer's, the fields static), with the headers of every /ui
 * answer. The caller has applied the admin API's Host and origin checks. */
void gw_ui_serve(const struct gw_admin_request *req, struct gw_admin_response *resp);

/* Any thread. Adds the headers of every /ui answer to *resp (which holds
 * a refusal of the admin API's checks, say). */
void gw_ui_fields(struct gw_admin_response *resp);

#endif
