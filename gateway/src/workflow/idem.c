/*
 * idem.c: the client idempotency rules (idem.h), pure functions over a
 * request head, the journal's record of a key and the clock.
 */
#include "idem.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tls/compat.h"

int gw_idem_key(const struct gw_http_head *h, const char *name, const char **key, size_t *len)
{
    size_t n = gw_http_head_count(h, name);
    if (n == 0)
        return -ENOENT;
    if (n > 1)
        return -E2BIG;
    size_t vlen = 0;
    const char *v = gw_http_head_get(h, name, &vlen);
    if (!v || vlen == 0 || vlen > WF_KEY_MAX)
        return -EINVAL;
    for (size_t i = 0; i < vlen; i++)
        if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
            return -EINVAL;
    *key = v;
    *len = vlen;
    return 0;
}

int gw_idem_scope(const char *consumer, const char *route, char *out, size_t cap)
{
    int n = consumer ? snprintf(out, cap, "consumer:%s", consumer)
                     : snprintf(out, cap, "route:%s", route ? route : "");
    if (n < 0 || (size_t)n >= cap || n > WF_SCOPE_MAX)
        return -ENAMETOOLONG;
    return 0;
}

void gw_idem_fingerprint(const char *method, const char *path, size_t path_len, const char *query,
                         size_t query_len, const void *body, size_t body_len,
                         unsigned char out[WF_FINGERPRINT_LEN])
{
    static const unsigned char nul = 0, qmark = '?';
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    /* These fail only on a hardware accelerator's error, which the software
     * implementation linked here has not. */
    gw_tls_sha256_starts(&c);
    gw_tls_sha256_update(&c, method, strlen(method));
    gw_tls_sha256_update(&c, &nul, 1);
    gw_tls_sha256_update(&c, path, path_len);
    if (query) {
        gw_tls_sha256_update(&c, &qmark, 1);
        gw_tls_sha256_update(&c, query, query_len);
    }
    gw_tls_sha256_update(&c, &nul, 1);
    if (body_len)
        gw_tls_sha256_update(&c, body, body_len);
    gw_tls_sha256_finish(&c, out);
    mbedtls_sha256_free(&c);
}

enum gw_idem_verdict gw_idem_decide(bool required, bool have_key, const struct wf_record *existing,
                                    const unsigned char fp[WF_FINGERPRINT_LEN], int64_t now_ms)
{
    if (!have_key)
        return required ? GW_IDEM_MISSING : GW_IDEM_START;
    /* An instance still running keeps its key past its time: a retry of
     * it must not start a second one. */
    if (!existing ||
        (existing->terminal && existing->key_expires_ms && existing->key_expires_ms <= now_ms))
        return GW_IDEM_START;
    if (memcmp(existing->fingerprint, fp, WF_FINGERPRINT_LEN) != 0)
        return GW_IDEM_MISMATCH;
    return existing->terminal ? GW_IDEM_REPLAY : GW_IDEM_IN_PROGRESS;
}

int gw_idem_status(enum gw_idem_verdict v)
{
    switch (v) {
    case GW_IDEM_IN_PROGRESS:
        return 409;
    case GW_IDEM_MISMATCH:
        return 422;
    case GW_IDEM_MISSING:
        return 400;
    default:
        return 500;
    }
}

static bool is_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c && strchr(extra, c))))
            return false;
    }
    return true;
}

/* Fields the response writer writes itself: a stored copy would frame the
 * answer twice or carry another request's id. */
static bool writer_owned(const char *name)
{
    static const char *const owned[] = {
        "content-length", "transfer-encoding", "connection", "keep-alive", "x-request-id",
        "date",           "upgrade",           "trailer"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (strcasecmp(name, owned[i]) == 0)
            return true;
    return false;
}

int gw_idem_stored_fields(const char *text, struct gw_idem_fields *out)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text)
        return 0;
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    if (!doc)
        return -EINVAL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        return -EINVAL;
    }
    out->doc = doc;
    const char *name;
    json_t *v;
    json_object_foreach(doc, name, v)
    {
        const char *s = json_string_value(v);
        size_t slen = json_string_length(v);
        if (!s || strlen(name) > GW_IDEM_MAX_FIELD_NAME || !is_token(name) || writer_owned(name) ||
            slen > GW_IDEM_MAX_FIELD_VALUE || strlen(s) != slen || strpbrk(s, "\r\n"))
            continue;
        if (strcasecmp(name, "content-type") == 0)
            out->content_type = s;
        else if (strcasecmp(name, "location") == 0)
            out->location = s;
        else if (out->n < GW_IDEM_MAX_FIELDS)
            out->kv[out->n++] = (struct gw_http_kv){name, s};
    }
    return 0;
}

void gw_idem_fields_done(struct gw_idem_fields *f)
{
    if (!f)
        return;
    json_decref(f->doc);
    memset(f, 0, sizeof *f);
}
