/*
 * siphash.h: SipHash-2-4 (Aumasson and Bernstein), the keyed hash the
 * policies use where a peer chooses what is hashed: the rate-limit table's
 * buckets and long keys, and key_auth's tags of keys already verified.
 * Under a secret key it is a pseudorandom function: without the key, a
 * peer can neither aim inputs at one bucket nor find two inputs with the
 * same 128-bit tag (two hashes under independent keys).
 */
#ifndef GW_POL_SIPHASH_H
#define GW_POL_SIPHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GW__SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define GW__SIP_ROUND                                                                              \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = GW__SIP_ROTL(v1, 13);                                                                 \
        v1 ^= v0;                                                                                  \
        v0 = GW__SIP_ROTL(v0, 32);                                                                 \
        v2 += v3;                                                                                  \
        v3 = GW__SIP_ROTL(v3, 16);                                                                 \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = GW__SIP_ROTL(v3, 21);                                                                 \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = GW__SIP_ROTL(v1, 17);                                                                 \
        v1 ^= v2;                                                                                  \
        v2 = GW__SIP_ROTL(v2, 32);                                                                 \
    } while (0)

/* The little-endian word at p, at any alignment: one load where the
 * machine is little-endian (memcpy of a constant size is a move). */
static inline uint64_t gw__sip_le64(const unsigned char *p)
{
    uint64_t m;
    memcpy(&m, p, sizeof m);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    m = __builtin_bswap64(m);
#endif
    return m;
}

/* SipHash-2-4 of len bytes at data under the key (k0, k1). */
static inline uint64_t gw__pol_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = gw__sip_le64(p + i);
        v3 ^= m;
        GW__SIP_ROUND;
        GW__SIP_ROUND;
        v0 ^= m;
    }
    /* The tail's bytes, by falling through from the first one there is. */
    uint64_t b = (uint64_t)len << 56;
    switch (len - i) {
    case 7:
        b |= (uint64_t)p[i + 6] << 48;
        __attribute__((fallthrough));
    case 6:
        b |= (uint64_t)p[i + 5] << 40;
        __attribute__((fallthrough));
    case 5:
        b |= (uint64_t)p[i + 4] << 32;
        __attribute__((fallthrough));
    case 4:
        b |= (uint64_t)p[i + 3] << 24;
        __attribute__((fallthrough));
    case 3:
        b |= (uint64_t)p[i + 2] << 16;
        __attribute__((fallthrough));
    case 2:
        b |= (uint64_t)p[i + 1] << 8;
        __attribute__((fallthrough));
    case 1:
        b |= (uint64_t)p[i];
        break;
    default:
        break;
    }
    v3 ^= b;
    GW__SIP_ROUND;
    GW__SIP_ROUND;
    v0 ^= b;
    v2 ^= 0xff;
    GW__SIP_ROUND;
    GW__SIP_ROUND;
    GW__SIP_ROUND;
    GW__SIP_ROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

#endif
