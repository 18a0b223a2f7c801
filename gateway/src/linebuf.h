/*
 * linebuf.h: a bounded writer for log lines.
 *
 * Every line the gateway's logger produces is built through one of these. A
 * line buffer is a caller-owned array plus what has been written to it; it
 * can never write past its end. An append either fits whole or writes
 * nothing and marks the buffer full, after which every append is refused:
 * what is in the buffer is then a prefix of the intended line with no hole
 * in it, and the caller can tell (gw__linebuf_full) rather than send a
 * record missing its fields.
 *
 * JSON strings are written with a cap of their own (gw__linebuf_json), so a
 * field a peer controls can be cut to leave room for the fields after it.
 * Escaping rule, so that any bytes give valid UTF-8 JSON:
 *  - '"' and '\' are escaped with a backslash;
 *  - bytes below 0x20 and DEL (0x7f) are written as \u00XX;
 *  - well-formed UTF-8 sequences (RFC 3629: shortest form, no surrogates,
 *    at most U+10FFFF) are copied as they are;
 *  - every other byte (a stray continuation byte, a lead byte whose
 *    sequence is cut short or overlong, 0xC0, 0xC1, 0xF5..0xFF) is written
 *    as \ufffd, one per byte;
 *  - a cut falls between characters, never inside an escape or a sequence.
 *
 * The content is buf[0, len); it is not NUL-terminated. Plain data, no
 * runtime calls: any thread.
 */
#ifndef GW_LINEBUF_H
#define GW_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw__linebuf {
    char *buf;
    size_t cap; /* bytes at buf */
    size_t len; /* bytes written */
    bool full;  /* an append did not fit; nothing more is written */
};

/* Starts an empty line in buf[0, cap). */
void gw__linebuf_init(struct gw__linebuf *b, char *buf, size_t cap);

/* Appends n bytes as they are. False (and the buffer marked full) when they
 * do not all fit; nothing is written then. */
bool gw__linebuf_put(struct gw__linebuf *b, const char *s, size_t n);
/* The same for a NUL-terminated string. */
bool gw__linebuf_puts(struct gw__linebuf *b, const char *s);

/* Appends v in decimal, or nothing (marking the buffer full). */
bool gw__linebuf_u64(struct gw__linebuf *b, uint64_t v);
bool gw__linebuf_i64(struct gw__linebuf *b, int64_t v);
/* Appends v in decimal with at least `width` digits (zero-padded). */
bool gw__linebuf_u64_pad(struct gw__linebuf *b, uint64_t v, unsigned width);
/* Appends v / 1000 with three decimals ("12.045" for 12045): the same text
 * as printf's "%.3f" of v / 1000.0, without going through floating point. */
bool gw__linebuf_milli(struct gw__linebuf *b, uint64_t v);

/* Appends s (n bytes) as a JSON string, quotes included, escaped as
 * described at the top of this file; NULL gives `null`. At most `max` bytes
 * are added: when the escaped string is longer, as many whole characters as
 * fit are written, the closing quote still follows, and *cut is set to true
 * (it is left alone otherwise; may be NULL). Returns false, writing nothing
 * and marking the buffer full, when not even the quotes (or `null`) fit in
 * `max` or in the buffer; a cut is not a failure. */
bool gw__linebuf_json(struct gw__linebuf *b, const char *s, size_t n, size_t max, bool *cut);

/* Appends the instant sec.nsec after the Unix epoch (nsec < 10^9) as an
 * RFC 3339 UTC time with milliseconds, "2026-12-06T09:18:46.123Z" (24
 * bytes, no quotes; milliseconds truncated, as clocks are read). Instants
 * outside years 0000..9999, which RFC 3339 cannot write, are clamped to
 * them. Whole or nothing, like every append. */
bool gw__linebuf_time(struct gw__linebuf *b, int64_t sec, uint32_t nsec);
/* Length of the well-formed UTF-8 sequence at s (n bytes available): 1
 * for an ASCII byte, 0 when s starts none. The rule gw__linebuf_json copies
 * by, for writers that must give the same text to another JSON library. */
size_t gw__linebuf_utf8_len(const char *s, size_t n);

/* Whether an append failed since init. */
static inline bool gw__linebuf_full(const struct gw__linebuf *b)
{
    return b->full;
}

#endif
