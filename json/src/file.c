/*
 * file.c: the one capped whole-file reader (see jpos/file.h).
 *
 * The size from fstat is only a hint: the file is read until end of file,
 * one byte beyond the size seen, so that a file still being written is
 * noticed, and the cap holds whatever the file does meanwhile.
 */
#include "jpos/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reports through `d` when it is non-NULL; the return value is the same
 * -errno either way. */
static int read_capped(const char *path, size_t max, char **out, size_t *len, struct jpos_diags *d)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (d)
            jpos_diag_add(d, JPOS_DIAG_ERROR, path, 0, 0, NULL, "cannot open: %s", strerror(err));
        return -err;
    }
    int r = 0;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (d)
            jpos_diag_add(d, JPOS_DIAG_ERROR, path, 0, 0, NULL, "not a regular file");
        r = -EINVAL;
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        if (d)
            jpos_diag_add(d, JPOS_DIAG_ERROR, path, 0, 0, NULL,
                          "file is too large (%lld bytes; at most %zu)", (long long)st.st_size,
                          max);
        r = -EFBIG;
        goto out;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    buf = malloc(cap + 1);
    if (!buf) {
        r = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int err = errno;
            if (d)
                jpos_diag_add(d, JPOS_DIAG_ERROR, path, 0, 0, NULL, "cannot read: %s",
                              strerror(err));
            r = -err;
            goto out;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        if (n > max) {
            if (d)
                jpos_diag_add(d, JPOS_DIAG_ERROR, path, 0, 0, NULL, "file is too large");
            r = -EFBIG;
            goto out;
        }
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                r = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return r;
}

int jpos_file_read(const char *path, size_t max, char **out, size_t *len)
{
    return read_capped(path, max, out, len, NULL);
}

int jpos_file_load(const char *path, size_t max, char **out, size_t *len, struct jpos_diags *d)
{
    int r = read_capped(path, max, out, len, d);
    return r == -ENOMEM || r == 0 ? r : -EINVAL;
}
