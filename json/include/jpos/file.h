/*
 * file.h: reading a whole file with a size cap.
 *
 * Configuration and route files, and anything else read whole into memory,
 * go through this one reader so that every such read is bounded the same
 * way: a file larger than the cap is refused, also when it grows while it is
 * read. Blocking: call where blocking is allowed (the main thread, a
 * blocking-pool thread, a command-line tool).
 */
#ifndef JPOS_FILE_H
#define JPOS_FILE_H

#include <stddef.h>

#include "jpos/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads the regular file `path` whole, at most `max` bytes. On success
 * *out gets a malloc'ed copy, NUL-terminated (the caller frees it), and
 * *len its length. Returns 0, -ENOMEM, -EFBIG (over `max`), -EINVAL (not a
 * regular file) or the -errno of open or read. */
int jpos_file_read(const char *path, size_t max, char **out, size_t *len);

/* The same, reporting a failure other than -ENOMEM to `d` as
 * `PATH: cannot open: ...`, `not a regular file`, `file is too large (N
 * bytes; at most MAX)` or `cannot read: ...`, and returning -EINVAL for it. */
int jpos_file_load(const char *path, size_t max, char **out, size_t *len, struct jpos_diags *d);

#ifdef __cplusplus
}
#endif

#endif
