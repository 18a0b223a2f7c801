/* http1.h: HTTP/1.1 on the wire — strict request and response parsing,
 * request-target canonicalisation, and the heads a proxy writes.
 *
 * Everything here works on byte buffers and knows nothing of processes or
 * sockets: a connection process feeds it the bytes it read and writes out
 * the bytes it is given. No function blocks, none keeps a pointer into a
 * caller's input buffer after it returns (body pieces excepted: they point
 * into the buffer just fed, see gw_http_parser_feed). Any thread may call
 * any function on objects it owns; objects are not shared between threads.
 *
 * Errors are 0 or a negative errno. A refused message is -EPROTO from the
 * parser, with the HTTP status to answer and a short reason available from
 * gw_http_parser_status()/gw_http_parser_reason().
 */
#ifndef GW_HTTP1_H
#define GW_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- limits -------------------------------------------------------------- */

/* Hard limits on everything a peer controls. Zero in max_body_bytes means
 * "no limit" (responses streamed to clients); every other field must be
 * non-zero. */
struct gw_http_limits {
    size_t max_header_bytes;    /* whole head: start line, fields, CRLFs (431) */
    size_t max_header_count;    /* field lines in the head or trailers (431) */
    size_t max_uri_bytes;       /* request-target (414) */
    uint64_t max_body_bytes;    /* decoded body bytes (413); 0 = unlimited */
    size_t max_chunk_ext_bytes; /* extension bytes on one chunk-size line (400) */
    bool require_host;          /* HTTP/1.1 requests must carry exactly one Host */
};

/* The parser's own limits, for heads no configuration covers: upstream
 * responses (whose body the proxy streams without a limit) and the answers
 * `tandem ctl` reads. A listener's requests never use them: every configured
 * limit and its default is a row of the configuration's key table
 * (gateway/src/config/keys.c). */
#define GW_HTTP_PARSER_MAX_HEADER_BYTES 16384
#define GW_HTTP_PARSER_MAX_HEADER_COUNT 100
#define GW_HTTP_PARSER_MAX_URI_BYTES 8192
#define GW_HTTP_PARSER_MAX_BODY_BYTES (8u * 1024 * 1024)
#define GW_HTTP_PARSER_MAX_CHUNK_EXT_BYTES 256

/* Fills `l` with the parser's own limits above and require_host = true. */
void gw_http_limits_default(struct gw_http_limits *l);

/* --- parsed heads -------------------------------------------------------- */

enum gw_http_framing {
    GW_HTTP_BODY_NONE,    /* no body follows the head */
    GW_HTTP_BODY_LENGTH,  /* content_length bytes follow */
    GW_HTTP_BODY_CHUNKED, /* chunked; pieces are delivered decoded */
    GW_HTTP_BODY_CLOSE,   /* responses only: the body runs to end of input */
};

struct gw_http_header {
    const char *name;  /* NUL-terminated, as received (case kept) */
    const char *value; /* NUL-terminated, leading/trailing OWS removed */
    size_t name_len;
    size_t value_len;
};

/* One parsed head in a single heap block: every pointer points inside it,
 * so it can be handed to another process whole and freed with one call. */
struct gw_http_head {
    bool is_response;
    unsigned version_major, version_minor;
    /* requests */
    const char *method; /* NUL-terminated */
    const char *target; /* NUL-terminated, as received */
    size_t method_len, target_len;
    /* responses */
    int status;
    const char *reason; /* NUL-terminated, may be empty */
    size_t reason_len;
    /* fields in order of arrival */
    struct gw_http_header *headers;
    size_t nheaders;
    /* framing and connection semantics, decided by the parser */
    enum gw_http_framing framing;
    uint64_t content_length; /* GW_HTTP_BODY_LENGTH only */
    bool keep_alive;         /* the connection may carry another message */
    bool expect_continue;    /* request carried Expect: 100-continue */
    bool upgrade;            /* request asks for (or response grants) Upgrade */
    /* 1 + the index of the first Connection field naming a field that a
     * copy must drop besides the hop-by-hop ones, or nheaders + 1 when no
     * field does: set once by the parser, so that the head writers do not
     * look for it again per head written; 0 in a head built by hand (then
     * each writer looks). */
    size_t connection_at;
    size_t size; /* bytes in the block */
};

/* Frees a head; accepts NULL. */
void gw_http_head_free(struct gw_http_head *h);

/* Returns a copy of `h` in a new block (NULL when out of memory). */
struct gw_http_head *gw_http_head_dup(const struct gw_http_head *h);

/* Returns the value of the first field named `name` (ASCII case-insensitive)
 * or NULL; `*len` gets its length when len is not NULL. */
const char *gw_http_head_get(const struct gw_http_head *h, const char *name, size_t *len);

/* Number of fields named `name`. */
size_t gw_http_head_count(const struct gw_http_head *h, const char *name);

/* The value of field `name` when h has it exactly once, else NULL (`*len`
 * gets its length when len is not NULL); `*count` gets how many fields
 * have the name. gw_http_head_count and gw_http_head_get in one pass. */
const char *gw_http_head_get_only(const struct gw_http_head *h, const char *name, size_t *len,
                                  size_t *count);

/* True when the comma-separated field `name` holds `token` (case-insensitive). */
bool gw_http_head_has_token(const struct gw_http_head *h, const char *name, const char *token);

/* --- the parser ---------------------------------------------------------- */

enum gw_http_kind { GW_HTTP_REQUEST, GW_HTTP_RESPONSE };

enum gw_http_ev_type {
    GW_HTTP_EV_NEED_MORE, /* everything fed was consumed; feed more */
    GW_HTTP_EV_HEAD,      /* ev.head: a complete head, now owned by the caller */
    GW_HTTP_EV_BODY,      /* ev.data/ev.len: decoded body bytes */
    GW_HTTP_EV_DONE,      /* the message is complete */
};

struct gw_http_event {
    enum gw_http_ev_type type;
    struct gw_http_head *head; /* EV_HEAD: caller frees with gw_http_head_free */
    const char *data;          /* EV_BODY: points into the buffer just fed */
    size_t len;
};

struct gw_http_parser; /* opaque; one per connection direction */

/* Allocates a parser for requests (from clients) or responses (from an
 * upstream). `limits` is copied; NULL means the defaults. */
int gw_http_parser_new(struct gw_http_parser **ret, enum gw_http_kind kind,
                       const struct gw_http_limits *limits);

/* Frees a parser and anything it holds; accepts NULL. Returns NULL. */
struct gw_http_parser *gw_http_parser_free(struct gw_http_parser *p);

/* Parses from `buf` until the next event and returns it in `*ev`, with the
 * number of bytes used in `*consumed` (0 ≤ consumed ≤ len). Call again with
 * the rest of the buffer until EV_NEED_MORE. Body pieces (EV_BODY) point
 * into `buf` and are valid as long as it is. After EV_DONE, the bytes from
 * `consumed` on belong to the next message (pipelining) — or, after an
 * upgrade the caller accepts, to the tunnel: the caller then stops feeding.
 *
 * Returns 0, or -EPROTO when the input is refused (status and reason from
 * the accessors below; the connection must be closed: for requests answer
 * that status, for responses answer 502 and drop the upstream connection),
 * -ENOMEM (the connection must be closed: status 503), or -EBUSY after
 * an upgrade not yet resumed. After any error every call fails. */
int gw_http_parser_feed(struct gw_http_parser *p, const char *buf, size_t len, size_t *consumed,
                        struct gw_http_event *ev);

/* The peer closed its side. Completes a read-until-close response body
 * (EV_DONE); returns 0 with EV_NEED_MORE when between messages, -EPROTO when
 * a message was cut short. */
int gw_http_parser_finish(struct gw_http_parser *p, struct gw_http_event *ev);

/* Responses only: tells the parser what the next response answers, before
 * its first byte is fed; it holds until changed, so call it per request on
 * a pooled connection. A response to HEAD has no body; a 2xx to CONNECT is
 * a tunnel. */
void gw_http_parser_expect(struct gw_http_parser *p, bool head_request, bool connect_request);

/* After EV_HEAD: lowers the body limit for this message (the route's limit).
 * Returns -EMSGSIZE (status 413) when the declared length already exceeds it. */
int gw_http_parser_set_body_limit(struct gw_http_parser *p, uint64_t max_body_bytes);

/* After EV_DONE for an upgrade the upstream refused: parse on as HTTP. */
void gw_http_parser_resume_after_upgrade(struct gw_http_parser *p);

/* After -EPROTO: the status to answer (400, 413, 414, 431, 501, 505; for
 * responses the caller answers 502 whatever this says) and a short reason
 * (static string). */
int gw_http_parser_status(const struct gw_http_parser *p);
const char *gw_http_parser_reason(const struct gw_http_parser *p);

/* The method of the request being read, or of the one just refused, once
 * its token is complete (the space after it seen): so that an answer to a
 * request refused before its head was handed out (a 400, a 408) can still
 * be framed by its method (RFC 9112 §6.3: no body for HEAD). NULL before
 * that, between messages and for a response parser. Points into the
 * parser's storage: valid until the next call on p. */
const char *gw_http_parser_method(const struct gw_http_parser *p, size_t *len);

/* True between the first byte of a message and its end: the connection
 * process runs its header/body timeouts then, its idle timeout otherwise. */
bool gw_http_parser_in_message(const struct gw_http_parser *p);

/* Gives back the head storage (which grows up to the header limits while
 * a head is read) when no message is in progress; an idle keep-alive
 * connection then holds only the parser itself (a few hundred bytes). A
 * no-op inside a message. */
void gw_http_parser_trim(struct gw_http_parser *p);

/* Total bytes the parser has accepted since it was created. */
uint64_t gw_http_parser_offset(const struct gw_http_parser *p);

/* --- request-target canonicalisation -------------------------------------
 * One canonical path is used both for routing and upstream; the policy is in
 * gateway/src/http/README.md and at the top of gateway/src/http/target.c. */

enum gw_http_target_form { GW_HTTP_ORIGIN_FORM, GW_HTTP_ABSOLUTE_FORM, GW_HTTP_ASTERISK_FORM };

/* What becomes of "%2F" in a path (a listener's or a route's
 * `path_policy.escaped_slashes`). */
enum gw_http_slashes {
    GW_HTTP_SLASHES_REFUSE = 0, /* the target is refused (the default) */
    GW_HTTP_SLASHES_KEEP,       /* an opaque byte of its segment, routed and forwarded as
                                 * "%2F"; a piece between escaped slashes may not be empty,
                                 * "." or ".." (backends that decode it would see those) */
    GW_HTTP_SLASHES_REDIRECT,   /* canonicalised as DECODE; the caller answers a redirect to
                                 * that path when `escaped_slash` is set */
    GW_HTTP_SLASHES_DECODE,     /* a "/" like any other: dot segments and merging follow */
    GW_HTTP_SLASHES_OPAQUE,     /* as KEEP without its piece checks: only for a first pass
                                 * whose route then decides (gateway/src/request.c) */
};

/* What becomes of ";" in a path (`path_policy.params`). */
enum gw_http_params {
    GW_HTTP_PARAMS_REFUSE = 0, /* the target is refused (the default) */
    GW_HTTP_PARAMS_KEEP,       /* a byte of its segment, routed and forwarded as is; the
                                * part of a segment before its first ";" may not be empty,
                                * "." or ".." (servlet containers strip the rest) */
    GW_HTTP_PARAMS_OPAQUE,     /* as KEEP without its check: a first pass, as above */
    GW_HTTP_PARAMS_STRIP,      /* ";" or "%3B" and the rest of its segment are dropped, the
                                * segment ending at the next "/" (or decoded "%2F"): how a
                                * backend that strips path parameters reads the path. Only to
                                * find the route of that reading, never forwarded */
};

/* How a path is canonicalised. All zero is the strict default. */
struct gw_http_path_policy {
    enum gw_http_slashes slashes;
    enum gw_http_params params;
    bool refuse_controls;    /* refuse escaped controls (%01-%1F, %7F) anywhere in the path;
                              * by default they are forwarded, except at the edge of a segment */
    bool keep_trailing_dots; /* allow a segment (or a piece of one) to end with "."; by
                              * default refused: Windows and IIS strip trailing dots */
    bool encode_raw_utf8;    /* accept raw UTF-8 in the path and query and percent-encode it
                              * (legacy clients); by default raw bytes >= 0x80 are refused
                              * (RFC 9112 §3.2) */
};

struct gw_http_target {
    enum gw_http_target_form form;
    const char *path;      /* canonical path, NUL-terminated ("*" for asterisk-form) */
    const char *query;     /* after '?', NUL-terminated, NULL when absent */
    const char *authority; /* absolute-form: lowercased host[:port], else NULL */
    size_t path_len, query_len, authority_len;
    bool escaped_slash; /* the path held "%2F" (kept or decoded, as the policy says),
                         * even in a segment a ".." then removed */
    bool params;        /* the path held ";" or "%3B", likewise */
};

/* Canonicalises `target` (len bytes) into `buf` (cap bytes, at least
 * 3 * len + 2: raw UTF-8 may be percent-encoded) and points `out`'s fields into it. `method`
 * decides whether asterisk-form is allowed (OPTIONS only). Returns 0, -EINVAL when the target is
 * refused (answer 400), -ENOSPC when buf is too small. Uses the strict default policy. */
int gw_http_target_canon(const char *method, const char *target, size_t len, char *buf, size_t cap,
                         struct gw_http_target *out);

/* The same under `policy` (NULL: the strict default). The result is a fixed point: the path
 * (with its query) canonicalised again under the same policy gives the same path. */
int gw_http_target_canon_policy(const struct gw_http_path_policy *policy, const char *method,
                                const char *target, size_t len, char *buf, size_t cap,
                                struct gw_http_target *out);

/* The value of the hex digit c (RFC 5234 HEXDIG, either case: 0-15), or -1
 * when c is not one. Percent-escapes, chunk sizes and IP literals are read
 * with it, here and in the admin API's query strings. */
int gw_http_hexval(unsigned char c);

/* --- writing heads -------------------------------------------------------- */

/* Field edits a route asks for (request_headers / response_headers in
 * routes/README.md). Names match case-insensitively. Copied fields named in
 * `remove` or `set` are dropped; then `set` and `add` are written. Fields
 * the gateway writes itself (Host, Content-Length, Transfer-Encoding,
 * X-Forwarded-*, X-Request-Id), hop-by-hop fields and values holding CR, LF
 * or NUL are never written by an edit, nor removed by one. */
struct gw_http_kv {
    const char *name;
    const char *value;
};

struct gw_http_edits {
    const struct gw_http_kv *set;
    size_t nset;
    const struct gw_http_kv *add;
    size_t nadd;
    const char *const *remove;
    size_t nremove;
    /* `set` and `add` were made by the gateway from parts it checked (a
     * policy chain's answer fields, policy.h): each name a token that no
     * rule above keeps from an edit, each value free of CR and LF. They
     * are written without being checked again byte by byte (debug builds
     * still check, and abort on a field that fails). A listener's own
     * names (gw_http_fwd.owned) are still looked for. */
    bool checked;
};

/* What a proxy adds to a request it forwards. */
struct gw_http_fwd {
    const char *client_addr; /* the peer's address, e.g. "192.0.2.7" or "2001:db8::1" */
    const char *client;      /* the client as the gateway believes it (behind a trusted
                              * proxy, from X-Forwarded-For): X-Real-IP; NULL: client_addr */
    bool peer_trusted;       /* the peer is a configured trusted hop */
    bool keep_forwarded_for; /* append the peer's address to the client's
                              * X-Forwarded-For chain even from an untrusted
                              * peer (the gateway's policy: the chain is kept
                              * for the upstream to judge, and the gateway
                              * itself never trusts it); false restarts the
                              * chain at the peer unless peer_trusted. A value
                              * the client names in Connection is dropped. */
    bool tls;                /* the client connection is TLS */
    const char *request_id;  /* the request's id (gw_http_request_id) */
    const char *path;        /* rewritten path to send, incl. "?query"; NULL = target */
    size_t path_len;
    const char *host_override;         /* Host to send instead of the one the client
                                        * addressed (its Host, or the authority of an
                                        * absolute-form target); NULL keeps that. An
                                        * HTTP/1.0 request with neither gets none
                                        * unless given here. */
    bool tunnel;                       /* forward Upgrade (the route tunnels) */
    const struct gw_http_edits *edits; /* the route's request field edits; NULL: none */
    uint16_t port;                     /* the port the client connected to: X-Forwarded-Port when it
                                        * addressed no host (else that host's port); 0: none */
    const char *prefix;                /* the path prefix the route stripped, e.g. "/api"
                                        * (X-Forwarded-Prefix); NULL: none */
    size_t prefix_len;
    /* Fields the listener owns (a TLS listener's client_auth subject_header
     * and fingerprint_header): what a client sends under these names is
     * never forwarded, whether or not a value is written, and a route's
     * edits cannot set them. Each is written with its value, or left out
     * when the value is NULL (no verified certificate). A value is written
     * as visible ASCII and spaces only, any other byte (CR, LF, controls,
     * non-ASCII) as '?', and cut at GW_HTTP_OWNED_VALUE_MAX bytes. At most
     * GW_HTTP_MAX_OWNED; names that are not tokens or are the gateway's own
     * fields are ignored. */
    const struct gw_http_kv *owned;
    size_t nowned;
};

/* Distinct client-certificate field names the listeners configure
 * (client_auth subject_header and fingerprint_header) at most. */
#define GW_HTTP_MAX_CERT_FIELDS 4
/* Those, a policy chain's fields for the upstream (16) and the names a
 * policy set owns (32): gateway/src/policy/policy.h. */
#define GW_HTTP_MAX_OWNED 64
#define GW_HTTP_OWNED_VALUE_MAX 1024

/* The request id to use and echo: the client's X-Request-Id when it is
 * 1..128 characters of [A-Za-z0-9._:-], else `generated`. Points into `h`
 * or is `generated`. */
const char *gw_http_request_id(const struct gw_http_head *h, const char *generated, size_t *len);

/* Writes the upstream request head for `h` into buf[0..cap) as HTTP/1.1,
 * always keep-alive towards the upstream: hop-by-hop fields removed
 * (Connection, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding,
 * Upgrade unless f->tunnel, and anything named in Connection except Host,
 * framing and gateway fields), framing from h->framing (Content-Length, or
 * Transfer-Encoding: chunked for which the body is re-chunked with
 * gw_http_chunk_*), then the gateway's own fields: X-Forwarded-For,
 * -Proto, -Host, -Port, -Prefix, X-Real-IP, Forwarded and X-Request-Id
 * (what a client sends under those names is never copied as sent; see
 * gateway/src/http/README.md). X-Forwarded-Host is the host the client
 * addressed, even with an override.
 * `*out_len` gets the length. Returns 0, -ENOSPC, -EINVAL. */
int gw_http_request_head_write(const struct gw_http_head *h, const struct gw_http_fwd *f, char *buf,
                               size_t cap, size_t *out_len);

/* How the client response body is to be written. */
enum gw_http_out_framing {
    GW_HTTP_OUT_NONE,    /* no body */
    GW_HTTP_OUT_LENGTH,  /* copy content_length bytes */
    GW_HTTP_OUT_CHUNKED, /* re-chunk decoded pieces with gw_http_chunk_* */
    GW_HTTP_OUT_CLOSE,   /* copy until the upstream closes, then close the client */
};

/* Writes the client response head for upstream response `r` to a request
 * with head `req` (request id `request_id`; `keep_alive` false forces
 * Connection: close). Hop-by-hop fields are removed, X-Request-Id set, and
 * a Date written when the upstream's is missing (or removed by its own
 * Connection field or a route edit) on a final response.
 * `*framing` tells how to write the body; `*keep_alive_out` whether the
 * client connection may carry another request afterwards. */
int gw_http_response_head_write(const struct gw_http_head *r, const struct gw_http_head *req,
                                const char *request_id, bool keep_alive, char *buf, size_t cap,
                                size_t *out_len, enum gw_http_out_framing *framing,
                                bool *keep_alive_out);

/* The same, with the route's response field edits applied (`edits` may be
 * NULL). */
int gw_http_response_head_write_edited(const struct gw_http_head *r, const struct gw_http_head *req,
                                       const char *request_id, bool keep_alive,
                                       const struct gw_http_edits *edits, char *buf, size_t cap,
                                       size_t *out_len, enum gw_http_out_framing *framing,
                                       bool *keep_alive_out);

/* Chunked encoder: the line before `len` data bytes ("%zx\r\n"), the CRLF
 * after them, and the last chunk ("0\r\n\r\n"). Return bytes written or
 * -ENOSPC; `len` 0 is refused (-EINVAL) as it would end the body. */
int gw_http_chunk_start(uint64_t len, char *buf, size_t cap);
int gw_http_chunk_end(char *buf, size_t cap);
int gw_http_chunk_last(char *buf, size_t cap);

/* --- answers the gateway makes itself (response.c) ----------------------- */

/* The head of an answer that is the gateway's own: an error, a respond
 * route, the admin API, a redirect, 100 Continue, a refusal. Fields are
 * written in this order, each only when set: Date (always, but on 1xx),
 * Location, Allow, `fields` as given, Content-Type, Content-Length (always,
 * unless the status has no body: 1xx, 204, 304), Cache-Control: no-store, X-Request-Id (only when
 * visible ASCII), `lines`, Connection: close. The caller vouches for the
 * strings it passes (no CR or LF inside a value). */
struct gw_http_answer {
    int status;
    const char *request_id;   /* X-Request-Id; NULL or "": none */
    bool close;               /* Connection: close */
    const char *content_type; /* NULL: none */
    uint64_t content_length;
    bool no_store;                   /* Cache-Control: no-store */
    const char *allow;               /* Allow (a 405's methods), or NULL */
    const char *location;            /* Location (a redirect), or NULL */
    const char *location_query;      /* appended to Location after '?', or NULL */
    const struct gw_http_kv *fields; /* further fields, as given */
    size_t nfields;
    bool head_only;   /* the answer to a HEAD: Content-Length as for GET, no body
                       * follows (gw_http_error_answer leaves it out) */
    bool until_close; /* the body ends when the connection closes (RFC 9112 §6.3,
                       * last rule: an event stream): no Content-Length, and
                       * Connection: close whatever `close` says */
};

/* The https:// URL a request for `host` (hlen bytes: a Host field or an
 * absolute-form authority, "name[:port]" or "[v6][:port]") and `path` (a
 * canonical path) is redirected to: "https://name[:port]path", the
 * request's port replaced by `port` and left out when it is 443. Without
 * the query (gw_http_answer.location_query appends it). Writes at most cap
 * bytes plus a NUL; returns the length, -EINVAL when host is missing or not
 * a valid host (the Location would point elsewhere than the client asked),
 * -ENOSPC. */
int gw_http_https_location(const char *host, size_t hlen, uint16_t port, const char *path,
                           char *buf, size_t cap);

/* Writes the head of answer `a`. `*out_len` gets the length. Returns 0,
 * -ENOSPC or -EINVAL (a status outside 100..999). */
int gw_http_answer_head_write(const struct gw_http_answer *a, char *buf, size_t cap,
                              size_t *out_len);

/* Writes a complete JSON error answer: the head of `a` (its content type and
 * length are set here) and the body
 *   {"error": "<message>", "request_id": "<id>"}\n
 * (the id null when `a` has none; `message` NULL gives the reason phrase).
 * Strings are escaped by the gateway's one JSON escaper (linebuf.h: any
 * bytes give valid UTF-8 JSON); a message longer than 320 escaped bytes is
 * cut at a character boundary. Returns 0/-ENOSPC. */
int gw_http_error_answer(const struct gw_http_answer *a, const char *message, char *buf, size_t cap,
                         size_t *out_len);

/* The same for an answer with no field but the request id and Connection:
 * close when `close`. `request_id` may be NULL. */
int gw_http_error_write(int status, const char *message, const char *request_id, bool close,
                        char *buf, size_t cap, size_t *out_len);

/* Writes the whole over-limit answer a refused client gets (503, Connection:
 * close, {"error": "too many connections"}; no request yet, so no id).
 * Returns 0/-ENOSPC. */
int gw_http_busy_write(char *buf, size_t cap, size_t *out_len);

/* Writes the 101 head that opens a tunnel from upstream response `r` (a
 * 101): its fields as the upstream sent them (Upgrade and Connection say
 * what the client switches to), then the gateway's `extra` fields (NULL:
 * none; a policy chain's answer fields: `set` replaces the upstream's field
 * of the same name, `add` goes besides it; `remove` is not read), then
 * X-Request-Id. Returns 0, -ENOSPC, -EINVAL (not a 101 response). */
int gw_http_switching_head_write(const struct gw_http_head *r, const char *request_id,
                                 const struct gw_http_edits *extra, char *buf, size_t cap,
                                 size_t *out_len);

/* --- the WebSocket handshake (websocket.c) ------------------------------ */

/* Room for a Sec-WebSocket-Accept value: 28 characters and a NUL. */
#define GW_HTTP_WS_ACCEPT_SIZE 29

/* The Sec-WebSocket-Accept value for `key` (RFC 6455 §4.2.2: base64 of the
 * SHA-1 of the key and the protocol's GUID). */
void gw_http_websocket_accept(const char *key, size_t key_len, char out[GW_HTTP_WS_ACCEPT_SIZE]);

/* Checks request `req` before it is forwarded: 0 when it does not ask to
 * upgrade to websocket (accept ""), 1 when its handshake is valid (a GET
 * with one Sec-WebSocket-Key, base64 of 16 bytes, and
 * Sec-WebSocket-Version: 13) with the Sec-WebSocket-Accept the upstream
 * must answer in `accept`, -EINVAL when it is not (*why: a static reason;
 * answer 400). */
int gw_http_websocket_request_check(const struct gw_http_head *req,
                                    char accept[GW_HTTP_WS_ACCEPT_SIZE], const char **why);

/* Whether upstream response `resp` completes the handshake: a 101 with
 * Upgrade: websocket and exactly one Sec-WebSocket-Accept equal to
 * `accept` (from gw_http_websocket_request_check). */
bool gw_http_websocket_response_ok(const struct gw_http_head *resp, const char *accept);

/* --- the Date field (date.c) -------------------------------------------- */

/* The length of an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT". */
#define GW_HTTP_DATE_LEN 29

/* Writes `unix_sec` (seconds since 1970, UTC) as an IMF-fixdate (RFC 9110
 * §5.6.7) into out: GW_HTTP_DATE_LEN characters and a NUL. Years outside
 * 0..9999 are clamped. */
void gw_http_date_format(int64_t unix_sec, char out[GW_HTTP_DATE_LEN + 1]);

/* The current time as an IMF-fixdate, from the calling thread's cache: it
 * is formatted again only when the second has changed since the thread's
 * last call. Points into that cache: use it before the thread calls again
 * (never across a yield). Does not block. */
const char *gw_http_date_now(void);

/* How many times the calling thread has formatted its cached Date. */
uint64_t gw_http_date_formats(void);

/* Reason phrase for a status code ("" when unknown). */
const char *gw_http_status_text(int status);

/* Whether a response with this status carries a body (not 1xx, 204, 304). */
bool gw_http_status_has_body(int status);

#endif
