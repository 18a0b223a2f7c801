/* websocket.c: the WebSocket opening handshake (RFC 6455 §4) as the
 * gateway checks it in both directions, and the SHA-1 (RFC 3174) and
 * base64 that Sec-WebSocket-Accept is made of.
 *
 * A request asking to upgrade to websocket must carry one Sec-WebSocket-Key
 * (base64 of 16 bytes) and Sec-WebSocket-Version: 13, or it is refused
 * before anything is forwarded; the upstream's 101 must carry the one
 * Sec-WebSocket-Accept that key calls for, or the client gets 502 and no
 * tunnel opens (an upstream that did not take part in the handshake is not
 * a WebSocket server, and the client would find out only later, if at all).
 *
 * SHA-1 is used here only as RFC 6455 prescribes, to prove that the
 * upstream read this handshake; nothing relies on its collision
 * resistance. Plain data, no runtime calls: any thread.
 */
#include "gw/http1.h"
#include "http_int.h"

#include <errno.h>
#include <string.h>

/* ---- SHA-1 (RFC 3174) ------------------------------------------------------ */

static uint32_t rol(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t tmp = rol(a, 5) + f + e + w[t] + k;
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void gw__http_sha1_init(struct gw__http_sha1 *s)
{
    static const uint32_t iv[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    memcpy(s->h, iv, sizeof iv);
    s->bytes = 0;
}

void gw__http_sha1_update(struct gw__http_sha1 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        size_t have = (size_t)(s->bytes % 64);
        size_t take = 64 - have < len ? 64 - have : len;
        memcpy(s->block + have, p, take);
        s->bytes += take;
        p += take;
        len -= take;
        if (have + take == 64)
            sha1_block(s->h, s->block);
    }
}

void gw__http_sha1_final(struct gw__http_sha1 *s, unsigned char out[20])
{
    uint64_t bits = s->bytes * 8;
    static const unsigned char pad[64] = {0x80};
    size_t have = (size_t)(s->bytes % 64);
    /* 0x80, zeros up to 56 bytes in the last block, then the length. */
    gw__http_sha1_update(s, pad, have < 56 ? 56 - have : 120 - have);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    gw__http_sha1_update(s, len, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

/* ---- the handshake ---------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 of 20 bytes: 27 characters and one '=' (RFC 4648 §4), NUL-ended. */
static void base64_20(const unsigned char in[20], char out[GW_HTTP_WS_ACCEPT_SIZE])
{
    size_t o = 0;
    for (size_t i = 0; i < 18; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        out[o++] = b64[v & 63];
    }
    uint32_t v = (uint32_t)in[18] << 16 | (uint32_t)in[19] << 8;
    out[o++] = b64[v >> 18 & 63];
    out[o++] = b64[v >> 12 & 63];
    out[o++] = b64[v >> 6 & 63];
    out[o++] = '=';
    out[o] = 0;
}

void gw_http_websocket_accept(const char *key, size_t key_len, char out[GW_HTTP_WS_ACCEPT_SIZE])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* RFC 6455 §1.3 */
    struct gw__http_sha1 s;
    unsigned char d[20];
    gw__http_sha1_init(&s);
    gw__http_sha1_update(&s, key, key_len);
    gw__http_sha1_update(&s, guid, sizeof guid - 1);
    gw__http_sha1_final(&s, d);
    base64_20(d, out);
}

/* A key is base64 of 16 bytes (RFC 6455 §4.1): 22 characters of the
 * alphabet, the last holding only 2 bits, then "==". */
static bool key_valid(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        const char *c = memchr(b64, k[i], 64);
        if (!k[i] || !c)
            return false;
        if (i == 21 && ((c - b64) & 15) != 0)
            return false;
    }
    return true;
}

int gw_http_websocket_request_check(const struct gw_http_head *req,
                                    char accept[GW_HTTP_WS_ACCEPT_SIZE], const char **why)
{
    accept[0] = 0;
    if (req->is_response || !req->upgrade || !gw_http_head_has_token(req, "upgrade", "websocket"))
        return 0;
    size_t kn = 0, vn = 0;
    const char *key = gw_http_head_get(req, "sec-websocket-key", &kn);
    const char *ver = gw_http_head_get(req, "sec-websocket-version", &vn);
    if (strcmp(req->method, "GET") != 0) {
        *why = "a WebSocket handshake is a GET (RFC 6455 4.1)";
        return -EINVAL;
    }
    if (!key || gw_http_head_count(req, "sec-websocket-key") != 1 || !key_valid(key, kn)) {
        *why = "a WebSocket handshake needs one Sec-WebSocket-Key of 16 bytes in base64";
        return -EINVAL;
    }
    if (!ver || gw_http_head_count(req, "sec-websocket-version") != 1 ||
        !gw__http_ieq(ver, vn, "13")) {
        *why = "a WebSocket handshake needs Sec-WebSocket-Version: 13";
        return -EINVAL;
    }
    gw_http_websocket_accept(key, kn, accept);
    return 1;
}

bool gw_http_websocket_response_ok(const struct gw_http_head *resp, const char *accept)
{
    size_t n = 0;
    const char *v = gw_http_head_get(resp, "sec-websocket-accept", &n);
    return resp->status == 101 && v && gw_http_head_count(resp, "sec-websocket-accept") == 1 &&
           gw_http_head_has_token(resp, "upgrade", "websocket") && n == strlen(accept) &&
           memcmp(v, accept, n) == 0;
}
