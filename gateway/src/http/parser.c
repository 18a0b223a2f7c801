/* parser.c: the strict HTTP/1.1 message parser (requests and responses).
 *
 * Our own scanner checks the head against the RFC 9112 grammar as bytes
 * arrive and copies it into bounded storage; only a head it accepted is
 * handed to llhttp 8.1.0 (no lenient flags), rewritten from what the
 * scanner read, and llhttp must agree on it. llhttp then decodes the body,
 * with a chunk scanner checking chunked framing ahead of it. So every place
 * where llhttp 8.1.0 is laxer than llhttp 9.4.2 or the RFCs (bare CR, bare
 * LF, obs-fold, whitespace before the colon, empty names, CTLs in values,
 * chunk extensions) is refused before llhttp sees it. Debian builds llhttp
 * without LLHTTP_STRICT_MODE; the scanner makes that irrelevant.
 *
 * Bytes are classified by the lexical layer (lex.c, http_int.h); the head
 * handed out is built here and read through head.c.
 *
 * Invariants: the parser never keeps a pointer into a fed buffer after
 * gw_http_parser_feed returns; storage for one head is bounded by the
 * limits (header bytes and count); after an error every call fails.
 */
#include "gw/http1.h"
#include "http_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

/* --- limits ------------------------------------------------------------- */

void gw_http_limits_default(struct gw_http_limits *l)
{
    l->max_header_bytes = GW_HTTP_PARSER_MAX_HEADER_BYTES;
    l->max_header_count = GW_HTTP_PARSER_MAX_HEADER_COUNT;
    l->max_uri_bytes = GW_HTTP_PARSER_MAX_URI_BYTES;
    l->max_body_bytes = GW_HTTP_PARSER_MAX_BODY_BYTES;
    l->max_chunk_ext_bytes = GW_HTTP_PARSER_MAX_CHUNK_EXT_BYTES;
    l->require_host = true;
}

/* --- parser state -------------------------------------------------------- */

enum hstate {
    H_START,    /* before the start line; requests may send empty lines */
    H_START_LF, /* CR of an empty line seen */
    H_METHOD,
    H_TARGET,
    H_VERSION, /* request: after the target; response: first token */
    H_STATUS,  /* response: three digits */
    H_REASON,
    H_LINE_LF, /* CR ending the start line seen */
    H_FIELD,   /* at the start of a field line or of the final CRLF */
    H_NAME,
    H_OWS,
    H_VALUE,
    H_FIELD_LF, /* CR ending a field line seen */
    H_END_LF,   /* CR of the empty line seen */
    H_DONE,
};

enum cstate {
    C_SIZE, /* chunk-size hex digits */
    C_EXT,  /* chunk extensions, up to CR */
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TRAILER, /* start of a trailer line or of the final CRLF */
    C_TNAME,
    C_TVALUE,
    C_TLF,
    C_END_LF,
    C_DONE,
};

enum xstate { X_NAME0, X_NAME, X_VAL0, X_TOK, X_Q, X_QE, X_QEND };

enum pstate { P_HEAD, P_BODY, P_UPGRADED, P_CLOSED, P_ERROR };

/* Fields the parser itself interprets, recognised once per field. */
enum fkind { FK_OTHER, FK_HOST, FK_CL, FK_TE, FK_CONNECTION, FK_UPGRADE, FK_EXPECT };

struct field {
    size_t name_off, name_len, value_off, value_len;
    enum fkind kind;
};

struct gw_http_parser {
    llhttp_t ll;
    enum gw_http_kind kind;
    struct gw_http_limits lim;
    enum pstate state;
    uint64_t offset;

    /* head scanner */
    enum hstate hs;
    size_t head_bytes;
    size_t uri_bytes;
    char *raw; /* the head rewritten for llhttp, only while it runs */
    size_t rawlen;
    char *sbuf; /* strings of the head being read, NUL-separated */
    size_t slen, scap, smax;
    struct field *fields;
    size_t nfields, fcap;
    bool oom;
    size_t method_off, method_len, target_off, target_len;
    size_t version_off, version_len, reason_off, reason_len;
    size_t value_trim; /* value length without trailing OWS */
    int status_code;
    int status_digits;

    /* what llhttp said about the current message */
    bool ll_headers_done;
    bool ll_msg_done;
    const char *piece;
    size_t piece_len;

    /* the current message */
    enum gw_http_framing framing;
    uint64_t content_length;
    uint64_t body_limit;
    uint64_t body_seen;
    bool keep_alive;
    bool upgrade;
    bool expect_head;
    bool expect_connect;

    /* chunk scanner */
    enum cstate cs;
    enum xstate xs;
    uint64_t chunk_left;
    int size_digits;
    size_t ext_bytes;
    size_t trailer_bytes;
    size_t trailer_count;

    /* pending events */
    struct gw_http_head *head_out;
    bool done_pending;

    int err_status;
    const char *err_reason;
};

static int fail(struct gw_http_parser *p, int status, const char *reason)
{
    p->state = P_ERROR;
    p->err_status = status;
    p->err_reason = reason;
    return -EPROTO;
}

/* --- llhttp callbacks ----------------------------------------------------- */

static int on_headers_complete(llhttp_t *ll)
{
    struct gw_http_parser *p = ll->data;
    p->ll_headers_done = true;
    /* The scanner has already decided the framing (RFC 9112 §6.3); llhttp
     * 8.1.0 would read a body after a 304 that carries Content-Length. */
    if (p->kind == GW_HTTP_RESPONSE) {
        int st = ll->status_code;
        if (p->expect_connect && st >= 200 && st < 300)
            return 2;
        if (p->framing == GW_HTTP_BODY_NONE)
            return 1;
    }
    return 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    struct gw_http_parser *p = ll->data;
    if (!len)
        return 0;
    p->piece = at;
    p->piece_len = len;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *ll)
{
    struct gw_http_parser *p = ll->data;
    p->ll_msg_done = true;
    return HPE_PAUSED;
}

/* The method table is llhttp 8.1.0's whichever llhttp the build links (an
 * unknown method is answered 501, README): Debian 13 links llhttp 9, which
 * added QUERY. llhttp appends methods to its enum, so every method after
 * FLUSH, 8.1.0's last, is one 8.1.0 does not know. */
static int on_method_complete(llhttp_t *ll)
{
    return llhttp_get_method(ll) > HTTP_FLUSH ? -1 : 0;
}

static const llhttp_settings_t settings = {
    .on_method_complete = on_method_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Runs llhttp over buf[0..len) until it pauses; *used gets the bytes it took.
 * Returns 0 or -EPROTO. */
static int ll_run(struct gw_http_parser *p, const char *buf, size_t len, size_t *used)
{
    llhttp_errno_t e = llhttp_execute(&p->ll, buf, len);
    if (e == HPE_OK) {
        *used = len;
        return 0;
    }
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&p->ll);
        *used = pos ? (size_t)(pos - buf) : 0;
        if (e == HPE_PAUSED)
            llhttp_resume(&p->ll);
        else
            llhttp_resume_after_upgrade(&p->ll);
        return 0;
    }
    if ((e == HPE_INVALID_METHOD || e == HPE_CB_METHOD_COMPLETE) && p->kind == GW_HTTP_REQUEST)
        return fail(p, 501, "unknown method");
    /* llhttp's reasons are string literals, valid for the program's life. */
    const char *why = llhttp_get_error_reason(&p->ll);
    return fail(p, p->kind == GW_HTTP_REQUEST ? 400 : 502, why ? why : "malformed message");
}

/* --- the parser object ---------------------------------------------------- */

static void message_reset(struct gw_http_parser *p)
{
    p->hs = H_START;
    p->head_bytes = 0;
    p->rawlen = 0;
    p->uri_bytes = 0;
    p->slen = 0;
    p->nfields = 0;
    p->method_len = p->target_len = p->version_len = p->reason_len = 0;
    p->status_code = 0;
    p->status_digits = 0;
    p->ll_headers_done = false;
    p->ll_msg_done = false;
    p->piece = NULL;
    p->piece_len = 0;
    p->framing = GW_HTTP_BODY_NONE;
    p->content_length = 0;
    p->body_limit = p->lim.max_body_bytes;
    p->body_seen = 0;
    p->keep_alive = false;
    p->upgrade = false;
    p->cs = C_SIZE;
    p->chunk_left = 0;
    p->size_digits = 0;
    p->ext_bytes = 0;
    p->trailer_bytes = 0;
    p->trailer_count = 0;
}

int gw_http_parser_new(struct gw_http_parser **ret, enum gw_http_kind kind,
                       const struct gw_http_limits *limits)
{
    /* malloc and memset, not calloc: glibc's calloc (2.36) never takes a
     * block from the thread's cache, and one parser is made per proxied
     * response. The empty asm keeps the compiler from fusing the two back
     * into calloc. */
    struct gw_http_parser *p = malloc(sizeof(*p));
    int r = -ENOMEM;
    if (!p)
        goto out;
    __asm__("" : "+r"(p));
    memset(p, 0, sizeof(*p));
    if (limits)
        p->lim = *limits;
    else
        gw_http_limits_default(&p->lim);
    r = -EINVAL;
    if (!p->lim.max_header_bytes || !p->lim.max_header_count || !p->lim.max_uri_bytes ||
        !p->lim.max_chunk_ext_bytes || p->lim.max_header_bytes > (size_t)INT_MAX / 4)
        goto out;
    /* Every head byte is stored at most once, plus a NUL per string. The
     * storage grows up to that bound while a head is read and is given
     * back by gw_http_parser_trim between messages. */
    p->smax = p->lim.max_header_bytes + 2 * p->lim.max_header_count + 8;
    p->kind = kind;
    llhttp_init(&p->ll, kind == GW_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    p->ll.data = p;
    message_reset(p);
    *ret = p;
    p = NULL;
    r = 0;
out:
    gw_http_parser_free(p);
    return r;
}

struct gw_http_parser *gw_http_parser_free(struct gw_http_parser *p)
{
    if (p) {
        gw_http_head_free(p->head_out);
        free(p->sbuf);
        free(p->fields);
        free(p);
    }
    return NULL;
}

void gw_http_parser_expect(struct gw_http_parser *p, bool head_request, bool connect_request)
{
    p->expect_head = head_request;
    p->expect_connect = connect_request;
}

int gw_http_parser_set_body_limit(struct gw_http_parser *p, uint64_t max_body_bytes)
{
    if (max_body_bytes && p->framing == GW_HTTP_BODY_LENGTH && p->content_length > max_body_bytes) {
        fail(p, 413, "body exceeds the limit");
        return -EMSGSIZE;
    }
    p->body_limit = max_body_bytes;
    return 0;
}

void gw_http_parser_resume_after_upgrade(struct gw_http_parser *p)
{
    if (p->state == P_UPGRADED) {
        /* llhttp stops for good after an upgrade; the next message starts
         * from a fresh llhttp state, as every message is independent. */
        llhttp_init(&p->ll, p->kind == GW_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
        p->ll.data = p;
        p->state = P_HEAD;
        message_reset(p);
    }
}

int gw_http_parser_status(const struct gw_http_parser *p)
{
    return p->err_status;
}

const char *gw_http_parser_reason(const struct gw_http_parser *p)
{
    return p->err_reason ? p->err_reason : "";
}

const char *gw_http_parser_method(const struct gw_http_parser *p, size_t *len)
{
    /* Past H_METHOD the token is whole; storage that failed (oom) may
     * hold a cut one, which must not pass for a method. hs goes back to
     * H_START when a message ends, and stays where it was on an error. */
    if (p->kind != GW_HTTP_REQUEST || p->hs <= H_METHOD || p->oom || !p->sbuf)
        return NULL;
    *len = p->method_len;
    return p->sbuf + p->method_off;
}

void gw_http_parser_trim(struct gw_http_parser *p)
{
    if (gw_http_parser_in_message(p))
        return;
    free(p->sbuf);
    free(p->fields);
    p->sbuf = NULL;
    p->fields = NULL;
    p->scap = p->fcap = 0;
    p->slen = p->nfields = 0;
}

bool gw_http_parser_in_message(const struct gw_http_parser *p)
{
    return (p->state == P_HEAD && p->hs != H_START) || p->state == P_BODY;
}

uint64_t gw_http_parser_offset(const struct gw_http_parser *p)
{
    return p->offset;
}

/* --- the head scanner ------------------------------------------------------ */

/* Makes room for k more string bytes; false (and oom set) when it cannot. */
static bool sreserve(struct gw_http_parser *p, size_t k)
{
    if (p->slen + k <= p->scap)
        return true;
    /* smax bounds every head the limits admit (head_bytes is checked
     * before bytes are stored), so this never grows past it. */
    size_t cap = p->scap ? p->scap : 512;
    while (cap < p->slen + k)
        cap *= 2;
    if (cap > p->smax)
        cap = p->smax;
    char *n = cap >= p->slen + k ? realloc(p->sbuf, cap) : NULL;
    if (!n) {
        p->oom = true;
        return false;
    }
    p->sbuf = n;
    p->scap = cap;
    return true;
}

static inline void sput(struct gw_http_parser *p, char c)
{
    if (p->slen < p->scap || sreserve(p, 1))
        p->sbuf[p->slen++] = c;
}

static int field_begin(struct gw_http_parser *p)
{
    if (p->nfields >= p->lim.max_header_count)
        return fail(p, p->kind == GW_HTTP_REQUEST ? 431 : 502, "too many header fields");
    if (p->nfields == p->fcap) {
        size_t cap = p->fcap ? p->fcap * 2 : 16;
        if (cap > p->lim.max_header_count)
            cap = p->lim.max_header_count;
        struct field *n = realloc(p->fields, cap * sizeof(*n));
        if (!n) {
            p->oom = true;
            return -ENOMEM;
        }
        p->fields = n;
        p->fcap = cap;
    }
    struct field *f = &p->fields[p->nfields++];
    f->name_off = p->slen;
    f->name_len = 0;
    f->value_off = 0;
    f->value_len = 0;
    return 0;
}

/* Checks a complete field line at once where the verdict cannot change
 * later: names that look like framing fields are refused, Content-Length
 * must be 1*DIGIT and appear once. Records what kind of field it is. */
static enum fkind field_kind(const char *n, size_t len);
static bool framing_lookalike(const char *name, size_t n);

static int field_done(struct gw_http_parser *p)
{
    bool req = p->kind == GW_HTTP_REQUEST;
    struct field *f = &p->fields[p->nfields - 1];
    f->kind = field_kind(p->sbuf + f->name_off, f->name_len);
    if (f->kind == FK_OTHER && framing_lookalike(p->sbuf + f->name_off, f->name_len))
        return fail(p, req ? 400 : 502, "header name resembles a framing header");
    if (f->kind != FK_CL)
        return 0;
    for (size_t i = 0; i + 1 < p->nfields; i++)
        if (p->fields[i].kind == FK_CL)
            return fail(p, req ? 400 : 502, "duplicate Content-Length");
    const char *v = p->sbuf + f->value_off;
    if (!f->value_len)
        return fail(p, req ? 400 : 502, "empty Content-Length");
    if (f->value_len > 19)
        return fail(p, req ? 400 : 502, "Content-Length too large");
    for (size_t i = 0; i < f->value_len; i++)
        if (v[i] < '0' || v[i] > '9')
            return fail(p, req ? 400 : 502, "invalid Content-Length");
    return 0;
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT, checked as it arrives so that
 * the verdict does not depend on where the input is split. 1.0 and 1.1 are
 * spoken; a higher 1.x is read as 1.1 (RFC 9110 §2.5: the highest minor
 * version implemented) and stored so, for llhttp, the head and every
 * decision after; a major version above 1 is 505, anything else 400. */
static int version_byte(struct gw_http_parser *p, unsigned char c)
{
    bool req = p->kind == GW_HTTP_REQUEST;
    size_t i = p->version_len;
    bool ok = i < 5 ? c == (unsigned char)"HTTP/"[i] : i == 6 ? c == '.' : (c >= '0' && c <= '9');
    if (!ok)
        return fail(p, req ? 400 : 502, "invalid HTTP version");
    sput(p, (char)c);
    if (p->oom)
        return 0; /* not stored: nothing to look at (the caller stops on oom) */
    p->version_len++;
    if (p->version_len == 8) {
        const char *v = p->sbuf + p->version_off;
        if (v[5] >= '2')
            return fail(p, req ? 505 : 502, "unsupported HTTP version");
        if (v[5] != '1')
            return fail(p, req ? 400 : 502, "invalid HTTP version");
        if (v[7] > '1')
            p->sbuf[p->version_off + 7] = '1';
    }
    return 0;
}

static int scan_head_byte(struct gw_http_parser *p, unsigned char c)
{
    bool req = p->kind == GW_HTTP_REQUEST;
    struct field *f = p->nfields ? &p->fields[p->nfields - 1] : NULL;

    if (++p->head_bytes > p->lim.max_header_bytes) {
        if (p->hs == H_TARGET)
            return fail(p, 414, "request-target too long");
        return fail(p, req ? 431 : 502, "header section too large");
    }
    switch (p->hs) {
    case H_START:
        /* RFC 9112 §2.2: empty lines before a start line are ignored. */
        if (c == '\r') {
            p->hs = H_START_LF;
            return 0;
        }
        if (req) {
            if (!gw__http_is_tchar(c))
                return fail(p, 400, "invalid method");
            p->method_off = p->slen;
            sput(p, (char)c);
            p->method_len = 1;
            p->hs = H_METHOD;
        } else {
            p->version_off = p->slen;
            p->hs = H_VERSION;
            return version_byte(p, c);
        }
        return 0;
    case H_START_LF:
        if (c != '\n')
            return fail(p, req ? 400 : 502, "bare CR");
        p->hs = H_START;
        return 0;
    case H_METHOD:
        if (c == ' ') {
            sput(p, 0);
            p->target_off = p->slen;
            p->hs = H_TARGET;
            return 0;
        }
        if (!gw__http_is_tchar(c))
            return fail(p, 400, "invalid method");
        sput(p, (char)c);
        p->method_len++;
        return 0;
    case H_TARGET:
        if (c == ' ') {
            if (!p->target_len)
                return fail(p, 400, "empty request-target");
            sput(p, 0);
            p->version_off = p->slen;
            p->hs = H_VERSION;
            return 0;
        }
        /* Bytes >= 0x80 pass here: the listener's path policy refuses
         * them or encodes valid UTF-8 (target.c). */
        if (c <= 0x20 || c == 0x7f)
            return fail(p, 400, "invalid character in request-target");
        if (++p->uri_bytes > p->lim.max_uri_bytes)
            return fail(p, 414, "request-target too long");
        sput(p, (char)c);
        p->target_len++;
        return 0;
    case H_VERSION:
        if (p->version_len == 8) {
            if (req && c == '\r') {
                sput(p, 0);
                p->hs = H_LINE_LF;
                return 0;
            }
            if (!req && c == ' ') {
                sput(p, 0);
                p->hs = H_STATUS;
                return 0;
            }
            return fail(p, req ? 400 : 502, "invalid HTTP version");
        }
        return version_byte(p, c);
    case H_STATUS:
        if (p->status_digits == 3) {
            if (c == ' ') {
                p->reason_off = p->slen;
                p->hs = H_REASON;
                return 0;
            }
            if (c == '\r') {
                p->reason_off = p->slen;
                sput(p, 0);
                p->hs = H_LINE_LF;
                return 0;
            }
            return fail(p, 502, "invalid status line");
        }
        if (c < '0' || c > '9')
            return fail(p, 502, "invalid status code");
        p->status_code = p->status_code * 10 + (c - '0');
        p->status_digits++;
        return 0;
    case H_REASON:
        if (c == '\r') {
            sput(p, 0);
            p->hs = H_LINE_LF;
            return 0;
        }
        if (!gw__http_is_value_char(c))
            return fail(p, 502, "invalid reason phrase");
        sput(p, (char)c);
        p->reason_len++;
        return 0;
    case H_LINE_LF:
        if (c != '\n')
            return fail(p, req ? 400 : 502, "bare CR");
        p->hs = H_FIELD;
        return 0;
    case H_FIELD:
        if (c == '\r') {
            p->hs = H_END_LF;
            return 0;
        }
        if (c == ' ' || c == '\t')
            return fail(p, req ? 400 : 502, "obsolete line folding");
        if (c == ':')
            return fail(p, req ? 400 : 502, "empty header name");
        if (c == '\n')
            return fail(p, req ? 400 : 502, "bare LF");
        if (!gw__http_is_tchar(c))
            return fail(p, req ? 400 : 502, "invalid character in header name");
        if (field_begin(p) < 0)
            return -EPROTO;
        sput(p, (char)c);
        p->fields[p->nfields - 1].name_len = 1;
        p->hs = H_NAME;
        return 0;
    case H_NAME:
        if (c == ':') {
            sput(p, 0);
            f->value_off = p->slen;
            p->value_trim = 0;
            p->hs = H_OWS;
            return 0;
        }
        if (c == ' ' || c == '\t')
            return fail(p, req ? 400 : 502, "whitespace before colon");
        if (!gw__http_is_tchar(c))
            return fail(p, req ? 400 : 502, "invalid character in header name");
        sput(p, (char)c);
        f->name_len++;
        return 0;
    case H_OWS:
        if (c == ' ' || c == '\t')
            return 0;
        p->hs = H_VALUE;
        __attribute__((fallthrough)); /* clang does not take the comment */
    case H_VALUE:
        if (c == '\r') {
            f->value_len = p->value_trim;
            p->slen = f->value_off + f->value_len;
            sput(p, 0);
            p->hs = H_FIELD_LF;
            return 0;
        }
        if (c == '\n')
            return fail(p, req ? 400 : 502, "bare LF");
        if (!gw__http_is_value_char(c))
            return fail(p, req ? 400 : 502, "invalid character in header value");
        sput(p, (char)c);
        if (c != ' ' && c != '\t')
            p->value_trim = p->slen - f->value_off;
        return 0;
    case H_FIELD_LF:
        if (c != '\n')
            return fail(p, req ? 400 : 502, "bare CR");
        p->hs = H_FIELD;
        return field_done(p);
    case H_END_LF:
        if (c != '\n')
            return fail(p, req ? 400 : 502, "bare CR");
        p->hs = H_DONE;
        return 0;
    case H_DONE:
        break;
    }
    return fail(p, 400, "internal parser state");
}

/* --- head semantics -------------------------------------------------------- */

static const char *sstr(const struct gw_http_parser *p, size_t off)
{
    return p->sbuf + off;
}

static enum fkind field_kind(const char *n, size_t len)
{
    switch (len) {
    case 4:
        return gw__http_ieq(n, len, "host") ? FK_HOST : FK_OTHER;
    case 6:
        return gw__http_ieq(n, len, "expect") ? FK_EXPECT : FK_OTHER;
    case 7:
        return gw__http_ieq(n, len, "upgrade") ? FK_UPGRADE : FK_OTHER;
    case 10:
        return gw__http_ieq(n, len, "connection") ? FK_CONNECTION : FK_OTHER;
    case 14:
        return gw__http_ieq(n, len, "content-length") ? FK_CL : FK_OTHER;
    case 17:
        return gw__http_ieq(n, len, "transfer-encoding") ? FK_TE : FK_OTHER;
    default:
        return FK_OTHER;
    }
}

/* Content-Length: field_done() has refused duplicates and anything but
 * 1..19 digits as each field arrived (RFC 9112 §6.3 allows refusing or
 * merging equal duplicates; refusing leaves nothing for a peer to read
 * differently). Here the value is only read. */
static void read_content_length(struct gw_http_parser *p, bool *present, uint64_t *out)
{
    *present = false;
    for (size_t i = 0; i < p->nfields; i++) {
        const struct field *f = &p->fields[i];
        if (f->kind != FK_CL)
            continue;
        uint64_t n = 0;
        const char *v = sstr(p, f->value_off);
        for (size_t k = 0; k < f->value_len; k++)
            n = n * 10 + (uint64_t)(v[k] - '0');
        *present = true;
        *out = n;
    }
}

/* Transfer-Encoding: a list of tokens ending in exactly one "chunked".
 * Sets *present and *chunked. Status 400 when chunked is not last (the body
 * length cannot be known, RFC 9112 §6.3) or a coding carries parameters;
 * 501 for a coding we do not know. Known codings before chunked (gzip,
 * deflate, compress, identity) are passed on: the gateway removes and
 * re-applies only the chunked framing. */
static int check_transfer_encoding(struct gw_http_parser *p, bool *present, bool *chunked)
{
    bool req = p->kind == GW_HTTP_REQUEST;
    size_t ncodings = 0, nchunked = 0;
    bool last_chunked = false, other = false, seen = false;
    for (size_t i = 0; i < p->nfields; i++) {
        const struct field *f = &p->fields[i];
        if (f->kind != FK_TE)
            continue;
        seen = true;
        const char *v = sstr(p, f->value_off);
        size_t pos = 0, tl, before = ncodings;
        const char *t;
        while (gw__http_list_next(v, f->value_len, &pos, &t, &tl)) {
            for (size_t k = 0; k < tl; k++)
                if (!gw__http_is_tchar((unsigned char)t[k]))
                    return fail(p, req ? 400 : 502, "invalid Transfer-Encoding");
            ncodings++;
            last_chunked = gw__http_ieq(t, tl, "chunked");
            if (last_chunked)
                nchunked++;
            else if (!gw__http_coding_known(t, tl))
                other = true;
        }
        if (ncodings == before)
            return fail(p, req ? 400 : 502, "empty Transfer-Encoding");
    }
    *present = seen;
    *chunked = false;
    if (!seen)
        return 0;
    if (nchunked > 1)
        return fail(p, req ? 400 : 502, "chunked applied twice");
    if (!last_chunked) {
        if (req)
            return fail(p, 400, "Transfer-Encoding does not end in chunked");
        return 0; /* response: read until close (RFC 9112 §6.3 item 4) */
    }
    if (other)
        return fail(p, req ? 501 : 502, "unknown transfer coding");
    *chunked = true;
    return 0;
}

static bool fields_have_token(const struct gw_http_parser *p, enum fkind kind, const char *tok)
{
    for (size_t i = 0; i < p->nfields; i++) {
        const struct field *f = &p->fields[i];
        if (f->kind != kind)
            continue;
        size_t pos = 0, tl;
        const char *t;
        while (gw__http_list_next(sstr(p, f->value_off), f->value_len, &pos, &t, &tl))
            if (gw__http_ieq(t, tl, tok))
                return true;
    }
    return false;
}

/* Names that some servers fold into Content-Length or Transfer-Encoding
 * ("Content_Length", "Transfer--Encoding") while others do not: a request
 * carrying one has two readings, so it has none. */
static bool framing_lookalike(const char *name, size_t n)
{
    char folded[32];
    size_t k = 0;
    if (n < 13 || n >= sizeof(folded)) /* "contentlength" has 13 letters */
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = gw__http_lower(name[i]);
        if (c == '-' || c == '_' || c == '.')
            continue;
        if (k == sizeof(folded) - 1)
            return false;
        folded[k++] = c;
    }
    folded[k] = 0;
    if (!strcmp(folded, "contentlength"))
        return !gw__http_ieq(name, n, "content-length");
    if (!strcmp(folded, "transferencoding"))
        return !gw__http_ieq(name, n, "transfer-encoding");
    return false;
}

static int head_semantics(struct gw_http_parser *p)
{
    bool req = p->kind == GW_HTTP_REQUEST;
    const char *ver = sstr(p, p->version_off);
    unsigned minor = (unsigned)(ver[7] - '0');
    if (!req && p->status_code < 100)
        return fail(p, 502, "invalid status code");

    bool has_cl = false, has_te = false, chunked = false;
    uint64_t cl = 0;
    read_content_length(p, &has_cl, &cl);
    if (check_transfer_encoding(p, &has_te, &chunked) < 0)
        return -EPROTO;
    if (has_te && has_cl)
        return fail(p, req ? 400 : 502, "both Content-Length and Transfer-Encoding");
    if (has_te && minor == 0)
        return fail(p, req ? 400 : 502, "Transfer-Encoding in HTTP/1.0");

    bool close_tok = fields_have_token(p, FK_CONNECTION, "close");
    p->keep_alive = minor == 1 ? !close_tok : fields_have_token(p, FK_CONNECTION, "keep-alive");
    bool upgrade_field = false;
    for (size_t i = 0; i < p->nfields; i++)
        if (p->fields[i].kind == FK_UPGRADE)
            upgrade_field = true;

    if (req) {
        if (p->lim.require_host) {
            /* HTTP/1.1 needs exactly one; HTTP/1.0 may have none, but one
             * it has is checked alike: it is routed on and sent upstream
             * in an HTTP/1.1 request. */
            size_t nhost = 0;
            const struct field *host = NULL;
            for (size_t i = 0; i < p->nfields; i++)
                if (p->fields[i].kind == FK_HOST) {
                    nhost++;
                    host = &p->fields[i];
                }
            if (nhost > 1 || (nhost == 0 && minor == 1))
                return fail(p, 400, nhost ? "duplicate Host" : "missing Host");
            if (host && !gw__http_host_valid(sstr(p, host->value_off), host->value_len))
                return fail(p, 400, "invalid Host");
        }
        const char *m = sstr(p, p->method_off);
        /* A body on GET or HEAD has no meaning (RFC 9110 §9.3.1-2) and
         * servers that ignore it leave it to be read as the next request. */
        if ((gw__http_ieq(m, p->method_len, "GET") || gw__http_ieq(m, p->method_len, "HEAD")) &&
            (chunked || (has_cl && cl > 0)))
            return fail(p, 400, "body in a GET or HEAD request");
        bool connect = gw__http_ieq(m, p->method_len, "CONNECT");
        p->upgrade = connect || (upgrade_field && fields_have_token(p, FK_CONNECTION, "upgrade"));
        if (chunked)
            p->framing = GW_HTTP_BODY_CHUNKED;
        else if (has_cl)
            p->framing = GW_HTTP_BODY_LENGTH;
        else
            p->framing = GW_HTTP_BODY_NONE;
        p->content_length = cl;
        if (has_cl && p->body_limit && cl > p->body_limit)
            return fail(p, 413, "body exceeds the limit");
        return 0;
    }

    int st = p->status_code;
    if (p->expect_connect && st >= 200 && st < 300) {
        p->framing = GW_HTTP_BODY_NONE;
        p->upgrade = true;
    } else if (st == 101) {
        p->framing = GW_HTTP_BODY_NONE;
        p->upgrade = true;
    } else if (p->expect_head || (st >= 100 && st < 200) || st == 204 || st == 304) {
        p->framing = GW_HTTP_BODY_NONE;
    } else if (chunked) {
        p->framing = GW_HTTP_BODY_CHUNKED;
    } else if (has_te) {
        p->framing = GW_HTTP_BODY_CLOSE;
    } else if (has_cl) {
        p->framing = GW_HTTP_BODY_LENGTH;
    } else {
        p->framing = GW_HTTP_BODY_CLOSE;
    }
    p->content_length = p->framing == GW_HTTP_BODY_LENGTH ? cl : 0;
    if (p->framing == GW_HTTP_BODY_CLOSE)
        p->keep_alive = false;
    if (st == 204 && (has_cl || has_te))
        return fail(p, 502, "framing fields in a response without body");
    return 0;
}

/* Builds the caller's head block from the scanner's storage. */
static int head_build(struct gw_http_parser *p, struct gw_http_head **ret)
{
    size_t hdr = (sizeof(struct gw_http_head) + 15) & ~(size_t)15;
    size_t arr = p->nfields * sizeof(struct gw_http_header);
    size_t total = hdr + arr + p->slen + 1;
    char *blk = malloc(total);
    if (!blk)
        return -ENOMEM;
    struct gw_http_head *h = (struct gw_http_head *)(void *)blk;
    memset(h, 0, sizeof(*h));
    char *strs = blk + hdr + arr;
    memcpy(strs, p->sbuf, p->slen);
    strs[p->slen] = 0;
    h->is_response = p->kind == GW_HTTP_RESPONSE;
    const char *ver = sstr(p, p->version_off);
    h->version_major = (unsigned)(ver[5] - '0');
    h->version_minor = (unsigned)(ver[7] - '0');
    if (!h->is_response) {
        h->method = strs + p->method_off;
        h->method_len = p->method_len;
        h->target = strs + p->target_off;
        h->target_len = p->target_len;
    } else {
        h->status = p->status_code;
        h->reason = strs + p->reason_off;
        h->reason_len = p->reason_len;
    }
    h->headers = (struct gw_http_header *)(void *)(blk + hdr);
    h->nheaders = p->nfields;
    for (size_t i = 0; i < p->nfields; i++) {
        h->headers[i].name = strs + p->fields[i].name_off;
        h->headers[i].name_len = p->fields[i].name_len;
        h->headers[i].value = strs + p->fields[i].value_off;
        h->headers[i].value_len = p->fields[i].value_len;
    }
    h->framing = p->framing;
    h->content_length = p->content_length;
    h->keep_alive = p->keep_alive;
    h->upgrade = p->upgrade;
    h->expect_continue = !h->is_response && fields_have_token(p, FK_EXPECT, "100-continue");
    /* Looked for once here, where most heads are known to have no
     * Connection field, rather than by every writer of every copy. */
    size_t conn = p->nfields;
    for (size_t i = 0; i < p->nfields; i++)
        if (p->fields[i].kind == FK_CONNECTION) {
            conn = gw__http_first_connection(h);
            break;
        }
    h->connection_at = conn + 1;
    h->size = total;
    *ret = h;
    return 0;
}

/* --- the chunk scanner ----------------------------------------------------- */

/* chunk-ext = *( ";" name [ "=" ( token / quoted-string ) ] ), without the
 * BWS RFC 9112 tolerates, as llhttp 9 does. Returns 0 or -1. */
static int scan_ext_byte(struct gw_http_parser *p, unsigned char c)
{
    switch (p->xs) {
    case X_NAME0:
        if (!gw__http_is_tchar(c))
            return -1;
        p->xs = X_NAME;
        return 0;
    case X_NAME:
        if (c == ';')
            p->xs = X_NAME0;
        else if (c == '=')
            p->xs = X_VAL0;
        else if (!gw__http_is_tchar(c))
            return -1;
        return 0;
    case X_VAL0:
        if (c == '"')
            p->xs = X_Q;
        else if (gw__http_is_tchar(c))
            p->xs = X_TOK;
        else
            return -1;
        return 0;
    case X_TOK:
        if (c == ';')
            p->xs = X_NAME0;
        else if (!gw__http_is_tchar(c))
            return -1;
        return 0;
    case X_Q:
        if (c == '"')
            p->xs = X_QEND;
        else if (c == '\\')
            p->xs = X_QE;
        else if (!gw__http_is_value_char(c))
            return -1;
        return 0;
    case X_QE:
        if (!gw__http_is_value_char(c))
            return -1;
        p->xs = X_Q;
        return 0;
    case X_QEND:
        if (c != ';')
            return -1;
        p->xs = X_NAME0;
        return 0;
    }
    return -1;
}

/* Checks chunked framing byte by byte: chunk-size is 1*HEXDIG (at most 16
 * digits), extensions are ;name[=value] with token or quoted-string parts
 * and bounded in size (CVE-2024-22019), every line ends in CRLF, chunk data
 * is followed by CRLF, trailers are field lines within the head limits. */
static int scan_chunk_byte(struct gw_http_parser *p, unsigned char c)
{
    bool req = p->kind == GW_HTTP_REQUEST;
    int bad = req ? 400 : 502;
    switch (p->cs) {
    case C_SIZE:
        if (gw_http_hexval(c) >= 0) {
            if (++p->size_digits > 16)
                return fail(p, bad, "chunk size too large");
            p->chunk_left = p->chunk_left * 16 + (uint64_t)gw_http_hexval(c);
            return 0;
        }
        if (!p->size_digits)
            return fail(p, bad, "invalid chunk size");
        if (c == '\r') {
            p->cs = C_SIZE_LF;
            return 0;
        }
        if (c == ';') {
            p->ext_bytes = 1;
            p->xs = X_NAME0;
            p->cs = C_EXT;
            return 0;
        }
        return fail(p, bad, "invalid chunk size");
    case C_EXT:
        if (c == '\r' && (p->xs == X_NAME || p->xs == X_TOK || p->xs == X_QEND)) {
            p->cs = C_SIZE_LF;
            return 0;
        }
        if (++p->ext_bytes > p->lim.max_chunk_ext_bytes)
            return fail(p, bad, "chunk extensions too long");
        if (scan_ext_byte(p, c) < 0)
            return fail(p, bad, "invalid chunk extension");
        return 0;
    case C_SIZE_LF:
        if (c != '\n')
            return fail(p, bad, "bare CR in chunk line");
        p->size_digits = 0;
        p->ext_bytes = 0;
        if (p->chunk_left == 0) {
            p->cs = C_TRAILER;
            return 0;
        }
        p->cs = C_DATA;
        return 0;
    case C_DATA:
        if (--p->chunk_left == 0)
            p->cs = C_DATA_CR;
        return 0;
    case C_DATA_CR:
        if (c != '\r')
            return fail(p, bad, "missing CRLF after chunk data");
        p->cs = C_DATA_LF;
        return 0;
    case C_DATA_LF:
        if (c != '\n')
            return fail(p, bad, "missing CRLF after chunk data");
        p->cs = C_SIZE;
        return 0;
    case C_TRAILER:
        if (++p->trailer_bytes > p->lim.max_header_bytes)
            return fail(p, req ? 431 : 502, "trailer section too large");
        if (c == '\r') {
            p->cs = C_END_LF;
            return 0;
        }
        if (!gw__http_is_tchar(c))
            return fail(p, bad, "invalid trailer field");
        if (++p->trailer_count > p->lim.max_header_count)
            return fail(p, req ? 431 : 502, "too many trailer fields");
        p->cs = C_TNAME;
        return 0;
    case C_TNAME:
        if (++p->trailer_bytes > p->lim.max_header_bytes)
            return fail(p, req ? 431 : 502, "trailer section too large");
        if (c == ':') {
            p->cs = C_TVALUE;
            return 0;
        }
        if (!gw__http_is_tchar(c))
            return fail(p, bad, "invalid trailer field");
        return 0;
    case C_TVALUE:
        if (++p->trailer_bytes > p->lim.max_header_bytes)
            return fail(p, req ? 431 : 502, "trailer section too large");
        if (c == '\r') {
            p->cs = C_TLF;
            return 0;
        }
        if (!gw__http_is_value_char(c))
            return fail(p, bad, "invalid trailer field");
        return 0;
    case C_TLF:
        if (c != '\n')
            return fail(p, bad, "bare CR in trailer");
        p->cs = C_TRAILER;
        return 0;
    case C_END_LF:
        if (c != '\n')
            return fail(p, bad, "bare CR after trailers");
        p->cs = C_DONE;
        return 0;
    case C_DONE:
        break;
    }
    return fail(p, bad, "data after the last chunk");
}

/* --- feeding ------------------------------------------------------------- */

static void take_done(struct gw_http_parser *p, struct gw_http_event *ev)
{
    ev->type = GW_HTTP_EV_DONE;
    p->done_pending = false;
    if (p->upgrade) {
        p->state = P_UPGRADED;
    } else if (!p->keep_alive) {
        p->state = P_CLOSED;
    } else {
        p->state = P_HEAD;
        message_reset(p);
    }
}

static void raw_put(struct gw_http_parser *p, const char *s, size_t n)
{
    memcpy(p->raw + p->rawlen, s, n);
    p->rawlen += n;
}

/* Start line and fields as "name:value" lines: never longer than the bytes
 * the scanner accepted, but for the space a status line without reason
 * phrase gains, so raw (head_bytes + 8) always holds it. */
static void head_serialise(struct gw_http_parser *p)
{
    p->rawlen = 0;
    if (p->kind == GW_HTTP_REQUEST) {
        raw_put(p, sstr(p, p->method_off), p->method_len);
        raw_put(p, " ", 1);
        raw_put(p, sstr(p, p->target_off), p->target_len);
        raw_put(p, " ", 1);
        raw_put(p, sstr(p, p->version_off), p->version_len);
    } else {
        char st[8];
        raw_put(p, sstr(p, p->version_off), p->version_len);
        st[0] = ' ';
        st[1] = (char)('0' + p->status_code / 100);
        st[2] = (char)('0' + p->status_code / 10 % 10);
        st[3] = (char)('0' + p->status_code % 10);
        st[4] = ' ';
        raw_put(p, st, 5);
        raw_put(p, sstr(p, p->reason_off), p->reason_len);
    }
    raw_put(p, "\r\n", 2);
    for (size_t i = 0; i < p->nfields; i++) {
        const struct field *f = &p->fields[i];
        raw_put(p, sstr(p, f->name_off), f->name_len);
        raw_put(p, ":", 1);
        raw_put(p, sstr(p, f->value_off), f->value_len);
        raw_put(p, "\r\n", 2);
    }
    raw_put(p, "\r\n", 2);
}

/* A whole HTTP-version at s (n bytes available) from where version_byte
 * stands, when every byte of it is there and it is one version_byte would
 * accept ("HTTP/1." DIGIT): stored at once (a 1.x above 1.1 as 1.1, as
 * version_byte does). Returns the bytes taken; 0 sends the bytes one by one
 * through version_byte, which reports every error. */
static size_t version_span(struct gw_http_parser *p, const unsigned char *s, size_t n)
{
    static const char pat[] = "HTTP/1.";
    size_t have = p->version_len, k = 8 - have;
    /* From the major digit on only: one already stored is judged whole by
     * version_byte at the eighth byte. */
    if (have > 5 || n < k || p->head_bytes + k > p->lim.max_header_bytes)
        return 0;
    for (size_t i = have; i < 7; i++)
        if (s[i - have] != (unsigned char)pat[i])
            return 0;
    if (s[k - 1] < '0' || s[k - 1] > '9' || !sreserve(p, k))
        return 0;
    memcpy(p->sbuf + p->slen, s, k);
    if (s[k - 1] > '1')
        p->sbuf[p->slen + k - 1] = '1';
    p->slen += k;
    p->head_bytes += k;
    p->version_len = 8;
    return k;
}

/* The scanner's fast path: inside a method, target, name, value or reason
 * phrase, takes the run of bytes that scan_head_byte would accept one by
 * one without changing state, and stores it at once; skips a run of OWS
 * after a colon; takes a whole HTTP-version (version_span). Returns the
 * bytes taken (0: use the byte path, which also reports every error and
 * limit). */
static size_t fast_span(struct gw_http_parser *p, const unsigned char *s, size_t n)
{
    unsigned char cls;
    switch (p->hs) {
    case H_METHOD:
        cls = GW__HTTP_CL_TCHAR;
        break;
    case H_TARGET:
        cls = GW__HTTP_CL_TARGET;
        break;
    case H_NAME:
        cls = GW__HTTP_CL_TCHAR;
        break;
    case H_VALUE:
    case H_REASON:
        cls = GW__HTTP_CL_VALUE;
        break;
    case H_START:
        /* A response's first byte starts its version, as scan_head_byte
         * does before its version_byte. */
        if (p->kind != GW_HTTP_RESPONSE || s[0] == '\r')
            return 0;
        p->version_off = p->slen;
        p->hs = H_VERSION;
        return version_span(p, s, n);
    case H_VERSION:
        return version_span(p, s, n);
    case H_OWS: {
        size_t k = 0;
        while (k < n && (s[k] == ' ' || s[k] == '\t'))
            k++;
        if (p->head_bytes + k > p->lim.max_header_bytes)
            return 0;
        p->head_bytes += k;
        if (k < n)
            p->hs = H_VALUE; /* as scan_head_byte does at the value's first byte */
        return k;
    }
    default:
        return 0;
    }
    size_t k = 0;
    while (k < n && (gw__http_byte_class[s[k]] & cls))
        k++;
    if (!k || p->head_bytes + k > p->lim.max_header_bytes)
        return 0;
    if (p->hs == H_TARGET && p->uri_bytes + k > p->lim.max_uri_bytes)
        return 0;
    if (!sreserve(p, k))
        return 0;
    memcpy(p->sbuf + p->slen, s, k);
    p->slen += k;
    p->head_bytes += k;
    struct field *f = p->nfields ? &p->fields[p->nfields - 1] : NULL;
    if (p->hs == H_METHOD) {
        p->method_len += k;
    } else if (p->hs == H_TARGET) {
        p->uri_bytes += k;
        p->target_len += k;
    } else if (p->hs == H_NAME) {
        f->name_len += k;
        /* The colon that ends the name, as scan_head_byte takes it. */
        if (k < n && s[k] == ':' && p->head_bytes < p->lim.max_header_bytes && sreserve(p, 1)) {
            p->sbuf[p->slen++] = 0;
            p->head_bytes++;
            f->value_off = p->slen;
            p->value_trim = 0;
            p->hs = H_OWS;
            k++;
        }
    } else if (p->hs == H_REASON) {
        p->reason_len += k;
    } else {
        size_t j = k;
        while (j > 0 && (s[j - 1] == ' ' || s[j - 1] == '\t'))
            j--;
        if (j)
            p->value_trim = p->slen - (k - j) - f->value_off;
        /* The CR that ends the value, as scan_head_byte takes it (its LF,
         * which completes the field line, goes through field_done there). */
        if (k < n && s[k] == '\r' && p->head_bytes < p->lim.max_header_bytes) {
            f->value_len = p->value_trim;
            p->slen = f->value_off + f->value_len;
            if (sreserve(p, 1)) { /* the value may end where the storage does */
                p->sbuf[p->slen++] = 0;
                p->head_bytes++;
                p->hs = H_FIELD_LF;
                k++;
            }
        }
    }
    return k;
}

static int feed_head(struct gw_http_parser *p, const char *buf, size_t len, size_t *consumed,
                     struct gw_http_event *ev)
{
    bool req = p->kind == GW_HTTP_REQUEST;
    size_t n = 0;
    while (n < len && p->hs != H_DONE) {
        size_t k = fast_span(p, (const unsigned char *)buf + n, len - n);
        if (k) {
            n += k;
            continue;
        }
        if (p->oom)
            break;
        if (scan_head_byte(p, (unsigned char)buf[n]) < 0 || p->oom) {
            if (p->oom) {
                p->state = P_ERROR;
                p->err_status = req ? 503 : 502;
                p->err_reason = "out of memory";
                return -ENOMEM;
            }
            return -EPROTO;
        }
        n++;
    }
    if (p->oom) {
        p->state = P_ERROR;
        p->err_status = req ? 503 : 502;
        p->err_reason = "out of memory";
        return -ENOMEM;
    }
    p->offset += n;
    *consumed = n;
    if (p->hs != H_DONE) {
        ev->type = GW_HTTP_EV_NEED_MORE;
        return 0;
    }
    if (head_semantics(p) < 0)
        return -EPROTO;

    /* Only a head the scanner accepted reaches llhttp, whole, and rewritten
     * from what the scanner read: llhttp judges framing on exactly the
     * fields we hand on, and no whitespace quirk of 8.1.0 is reached. */
    /* Most heads fit the stack buffer: no malloc and free per head. */
    char small[1024];
    p->raw = p->head_bytes + 8 <= sizeof small ? small : malloc(p->head_bytes + 8);
    if (!p->raw) {
        p->state = P_ERROR;
        p->err_status = req ? 503 : 502;
        p->err_reason = "out of memory";
        return -ENOMEM;
    }
    head_serialise(p);
    size_t used = 0;
    int lr = ll_run(p, p->raw, p->rawlen, &used);
    size_t rawlen = p->rawlen;
    if (p->raw != small)
        free(p->raw);
    p->raw = NULL;
    if (lr < 0)
        return -EPROTO;
    if (!p->ll_headers_done || used != rawlen)
        return fail(p, req ? 400 : 502, "malformed message");
    if (!req && llhttp_get_status_code(&p->ll) != p->status_code)
        return fail(p, 502, "malformed status line");
    if (p->framing == GW_HTTP_BODY_NONE && !p->ll_msg_done)
        return fail(p, req ? 400 : 502, "malformed message");

    struct gw_http_head *h;
    int r = head_build(p, &h);
    if (r < 0) {
        p->state = P_ERROR;
        p->err_status = req ? 503 : 502;
        p->err_reason = "out of memory";
        return r;
    }
    p->state = P_BODY;
    p->done_pending = p->ll_msg_done;
    ev->type = GW_HTTP_EV_HEAD;
    ev->head = h;
    return 0;
}

/* Chunked bodies: the scanner walks the bytes first and llhttp is given
 * them in runs that end where chunk data or the message ends, so that it
 * pauses exactly at a run's end. Chunk extensions, once the scanner has
 * checked them, are not shown to llhttp at all: 8.1.0 mis-parses a second
 * extension, and no extension is ever passed on. */
static int run_chunked(struct gw_http_parser *p, const char *buf, size_t len, size_t *used_out)
{
    bool req = p->kind == GW_HTTP_REQUEST;
    size_t pos = 0, run = 0;
    while (pos < len) {
        unsigned char c = (unsigned char)buf[pos];
        bool ext = (p->cs == C_SIZE && c == ';' && p->size_digits) || (p->cs == C_EXT && c != '\r');
        if (ext && pos > run)
            break; /* hand llhttp the bytes before the extension first */
        if (scan_chunk_byte(p, c) < 0)
            return -EPROTO;
        pos++;
        if (ext) {
            run = pos;
            continue;
        }
        if (p->cs == C_DATA_CR || p->cs == C_DONE)
            break;
    }
    if (pos > run) {
        size_t used = 0;
        if (ll_run(p, buf + run, pos - run, &used) < 0)
            return -EPROTO;
        if (used != pos - run)
            return fail(p, req ? 400 : 502, "malformed chunked body");
    }
    if (p->ll_msg_done != (p->cs == C_DONE))
        return fail(p, req ? 400 : 502, "malformed chunked body");
    *used_out = pos;
    return 0;
}

static int feed_body(struct gw_http_parser *p, const char *buf, size_t len, size_t *consumed,
                     struct gw_http_event *ev)
{
    bool req = p->kind == GW_HTTP_REQUEST;
    p->piece = NULL;
    p->piece_len = 0;
    size_t used = 0;
    if (p->framing == GW_HTTP_BODY_CHUNKED) {
        while (used < len && !p->piece && !p->ll_msg_done) {
            size_t n = 0;
            if (run_chunked(p, buf + used, len - used, &n) < 0)
                return -EPROTO;
            used += n;
        }
    } else if (ll_run(p, buf ? buf : "", len, &used) < 0) {
        /* Even with no bytes llhttp may have a completion pending after a
         * paused body piece. */
        return -EPROTO;
    }
    p->offset += used;
    *consumed = used;
    if (p->piece && p->piece_len) {
        p->body_seen += p->piece_len;
        if (p->body_limit && p->body_seen > p->body_limit)
            return fail(p, req ? 413 : 502, "body exceeds the limit");
        ev->type = GW_HTTP_EV_BODY;
        ev->data = p->piece;
        ev->len = p->piece_len;
        if (p->ll_msg_done)
            p->done_pending = true;
        return 0;
    }
    if (p->ll_msg_done) {
        take_done(p, ev);
        return 0;
    }
    ev->type = GW_HTTP_EV_NEED_MORE;
    return 0;
}

int gw_http_parser_feed(struct gw_http_parser *p, const char *buf, size_t len, size_t *consumed,
                        struct gw_http_event *ev)
{
    struct gw_http_event e = {.type = GW_HTTP_EV_NEED_MORE};
    size_t used = 0;
    int r;
    switch (p->state) {
    case P_ERROR:
        return -EPROTO;
    case P_UPGRADED:
        return -EBUSY;
    case P_CLOSED:
        if (len == 0)
            break;
        return fail(p, p->kind == GW_HTTP_REQUEST ? 400 : 502, "data after Connection: close");
    case P_HEAD:
        r = feed_head(p, buf, len, &used, &e);
        if (r < 0)
            return r;
        break;
    case P_BODY:
        if (p->done_pending) {
            take_done(p, &e);
            break;
        }
        r = feed_body(p, buf, len, &used, &e);
        if (r < 0)
            return r;
        break;
    }
    *consumed = used;
    *ev = e;
    return 0;
}

int gw_http_parser_finish(struct gw_http_parser *p, struct gw_http_event *ev)
{
    struct gw_http_event e = {.type = GW_HTTP_EV_NEED_MORE};
    bool req = p->kind == GW_HTTP_REQUEST;
    switch (p->state) {
    case P_ERROR:
        return -EPROTO;
    case P_UPGRADED:
    case P_CLOSED:
        break;
    case P_HEAD:
        if (p->hs != H_START)
            return fail(p, req ? 400 : 502, "connection closed inside a head");
        break;
    case P_BODY:
        if (p->done_pending) {
            take_done(p, &e);
            break;
        }
        if (p->framing != GW_HTTP_BODY_CLOSE)
            return fail(p, req ? 400 : 502, "connection closed inside a body");
        if (llhttp_finish(&p->ll) != HPE_OK && !p->ll_msg_done)
            return fail(p, 502, "connection closed inside a body");
        e.type = GW_HTTP_EV_DONE;
        p->state = P_CLOSED;
        break;
    }
    *ev = e;
    return 0;
}
