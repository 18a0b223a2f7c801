/*
 * idle.c: a session's record buffers while its connection is idle.
 *
 * mbedtls keeps two record buffers per session (16 KiB and a little more
 * each: MBEDTLS_SSL_IN/OUT_CONTENT_LEN plus record overhead) for the
 * session's life, which is most of what an idle keep-alive connection
 * costs. Neither Debian build can shrink them: 2.28 has no variable buffer
 * length, 3.6 does not compile it in (and it would only shrink to a
 * negotiated maximum fragment length); neither has allocator hooks
 * (MBEDTLS_PLATFORM_MEMORY), and context save/load is DTLS-only.
 *
 * So the session gets buffers of whole pages of its own right after setup
 * (page-aligned, replacing the library's, every pointer into them moved;
 * free() releases them as it would the library's), and once the session is
 * quiet (gw_tls_quiet: nothing read, to send or being processed) every page
 * of both is given back to the system (madvise MADV_DONTNEED): they read
 * back as zeros when next touched, which costs a page fault per page used.
 * The one state they hold then, the incoming sequence number at the start
 * of the input buffer, is kept aside and put back before the session is
 * next used (gw__tls_idle_wake). The buffers themselves stay where they are:
 * no pointer of the context changes while idle.
 *
 * glibc keeps what free() gets for the next allocation, so freeing and
 * reallocating the buffers would not lower the process's memory; giving
 * back the pages of allocations that stay does.
 *
 * Callers hold the session's lock (transport.c).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tls_int.h"

static uintptr_t page_size(void)
{
    static uintptr_t page;
    if (!page) {
        long p = sysconf(_SC_PAGESIZE);
        page = p > 0 ? (uintptr_t)p : 4096;
    }
    return page;
}

static size_t round_up(size_t n, uintptr_t page)
{
    return (n + page - 1) & ~(page - 1);
}

void gw__tls_idle_setup(mbedtls_ssl_context *ssl, struct gw__tls_idle *idle)
{
    memset(idle, 0, sizeof *idle);
#if GW_TLS_TRIM
    unsigned char *in, *out;
    gw_tls_bufs_get(ssl, &in, &out);
    if (!in || !out)
        return;
    idle->in_len = malloc_usable_size(in);
    idle->out_len = malloc_usable_size(out);
    /* Whole pages of their own, so that all of each can be given back;
     * without them (no memory) the library's stay, and only the whole pages
     * inside those are. */
    uintptr_t page = page_size();
    size_t in_len = round_up(idle->in_len, page), out_len = round_up(idle->out_len, page);
    void *ni = NULL, *no = NULL;
    if (posix_memalign(&ni, page, in_len) != 0 || posix_memalign(&no, page, out_len) != 0) {
        free(ni);
        return;
    }
    /* as the library's calloc left them */
    memset(ni, 0, in_len);
    memset(no, 0, out_len);
    gw_tls_bufs_set(ssl, ni, idle->in_len, no, idle->out_len);
    free(in);
    free(out);
    idle->in_len = in_len;
    idle->out_len = out_len;
#else
    (void)ssl;
#endif
}

#if GW_TLS_TRIM
/* Gives back the whole pages inside [p, p + len). */
static size_t release(unsigned char *p, size_t len)
{
    uintptr_t page = page_size();
    uintptr_t a = round_up((uintptr_t)p, page), b = ((uintptr_t)p + len) & ~(page - 1);
    if (b <= a)
        return 0;
    /* The allocator's own bookkeeping lies outside [p, p + len): the pages
     * are the session's alone, and zeros are all it may read there next. */
    return madvise((void *)a, b - a, MADV_DONTNEED) == 0 ? b - a : 0;
}
#endif

size_t gw__tls_idle_trim(mbedtls_ssl_context *ssl, struct gw__tls_idle *idle)
{
#if GW_TLS_TRIM
    if (idle->trimmed || !idle->in_len || !gw_tls_quiet(ssl))
        return 0;
    unsigned char *in, *out;
    gw_tls_bufs_get(ssl, &in, &out);
    memcpy(idle->in_ctr, gw_tls_in_ctr(ssl), GW_TLS_IN_CTR_LEN);
    idle->trimmed = true;
    return release(in, idle->in_len) + release(out, idle->out_len);
#else
    (void)ssl;
    (void)idle;
    return 0;
#endif
}

void gw__tls_idle_wake(mbedtls_ssl_context *ssl, struct gw__tls_idle *idle)
{
    if (!idle->trimmed)
        return;
    memcpy(gw_tls_in_ctr(ssl), idle->in_ctr, GW_TLS_IN_CTR_LEN);
    memset(idle->in_ctr, 0, sizeof idle->in_ctr);
    idle->trimmed = false;
}

void gw__tls_idle_done(mbedtls_ssl_context *ssl, struct gw__tls_idle *idle)
{
    if (!idle->trimmed)
        return; /* mbedtls_ssl_free wipes and frees them */
    /* Already zero but for the page or so the allocator may write on
     * free(): freed here, so that mbedtls_ssl_free does not wipe (and so
     * fault in) every page just to free them. */
    unsigned char *in, *out;
    gw_tls_bufs_get(ssl, &in, &out);
    gw_tls_bufs_set(ssl, NULL, idle->in_len, NULL, idle->out_len);
    free(in);
    free(out);
    memset(idle->in_ctr, 0, sizeof idle->in_ctr);
    idle->trimmed = false;
}
