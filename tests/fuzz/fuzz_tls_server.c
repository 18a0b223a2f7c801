/*
 * fuzz_tls_server.c: libFuzzer target for the server side of a TLS
 * listener: raw client bytes (handshake and other records) fed to a session
 * on the listener's own configuration (gateway/src/tls/server.c: versions,
 * suites, ALPN, the server name callback choosing among the certificate
 * set, session tickets, client certificates), with the same per-handshake
 * state the connection process keeps (gw__tls_hs_begin/end) and, once a
 * handshake completes, what it established (gw__tls_peer_fill) and the
 * application data read after it.
 *
 * Input: one byte choosing the listener configuration (below, modulo
 * their count), one byte giving the size of the pieces the client bytes
 * arrive in (0: all at once; else 1..255 bytes per read, the library
 * seeing "would block" between pieces as on a non-blocking socket), then
 * the client bytes. What the server writes is discarded.
 *
 * Checks, any failure aborting: no crash, leak or sanitizer report; the
 * handshake ends (success or an error) without reading past the input; a
 * handshake that succeeds has a protocol version of 1.2 or later and
 * offered no suite outside the listener's list; a refused name never
 * completes a handshake; a listener with client_auth required never
 * completes a full handshake without a verified client certificate.
 *
 * The certificates come from a directory named by TANDEM_FUZZ_TLS_CERTS,
 * holding ca.pem, ec.pem/ec.key and rsa.pem/rsa.key (chains then keys,
 * for the names api.example.com and *.example.com), and client-ca.pem;
 * tests/fuzz/run.py makes them with tests/lib/tlscerts.py:
 *
 *   tests/fuzz/run.py --tls-server build-fuzz/tests/fuzz/fuzz_tls_server --keep DIR
 *   TANDEM_FUZZ_TLS_CERTS=DIR/tls_server/certs build-fuzz/tests/fuzz/fuzz_tls_server CRASH
 *
 * The server's random numbers come from a generator seeded by the variant
 * (not gw_tls_rng) and the clock can be fixed (TANDEM_FUZZ_TLS_TIME), so
 * that an input replays the same handshake; with TANDEM_FUZZ_TLS_RECORD
 * the target records a real client's side of a conversation as an input
 * instead (record(), below): run.py seeds the fuzzer with whole
 * handshakes that way, so mutations reach the key exchange, Finished,
 * tickets and encrypted records, not only the hello.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tls_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_tls_server: %s\n", what);
    abort();
}

/* ---- the listener configurations ------------------------------------------ */

enum { NVARIANTS = 4 };

struct variant {
    const char *what;
    struct gw_tls_listener_config cfg;
    struct gw_tls_server *srv;
};

static struct variant variants[NVARIANTS];
static char certs_dir[4096];

static char *path_of(const char *file)
{
    size_t n = strlen(certs_dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (!p)
        fail("out of memory");
    snprintf(p, n, "%s/%s", certs_dir, file);
    return p;
}

static char *names_example[] = {"api.example.com", "*.example.com"};
static char *suites_narrow[] = {"TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
                                "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"};

static void build(struct variant *v)
{
    struct gw_tls_certset *set = NULL;
    char err[512] = "";
    if (gw_tls_certset_load(&v->cfg, &set, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_tls_server: %s: %s\n", v->what, err);
        fail("the certificates do not load (TANDEM_FUZZ_TLS_CERTS)");
    }
    if (gw_tls_server_new(&v->cfg, set, &v->srv, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_tls_server: %s: %s\n", v->what, err);
        fail("the server configuration does not build");
    }
    gw_tls_certset_unref(set);
}

static void record(const char *spec);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("TANDEM_FUZZ_TLS_CERTS");
    if (!dir || !*dir || strlen(dir) >= sizeof certs_dir)
        fail("TANDEM_FUZZ_TLS_CERTS names no directory (see the header of fuzz_tls_server.c)");
    strcpy(certs_dir, dir);

    static struct gw_tls_cert_config both[2], rsa_only[1];
    both[0] = (struct gw_tls_cert_config){path_of("ec.pem"), path_of("ec.key"), names_example, 2};
    both[1] = (struct gw_tls_cert_config){path_of("rsa.pem"), path_of("rsa.key"), names_example, 2};
    rsa_only[0] = both[1];
    rsa_only[0].names = NULL;
    rsa_only[0].nnames = 0;
    char *client_ca = path_of("client-ca.pem");

    /* The defaults: an ECDSA and an RSA certificate, tickets, the default
     * certificates for an unknown name. */
    variants[0].what = "defaults";
    variants[0].cfg = (struct gw_tls_listener_config){.enabled = true,
                                                      .certs = both,
                                                      .ncerts = 2,
                                                      .session_tickets = true,
                                                      .ticket_lifetime_s = 3600,
                                                      .max_version = GW_TLS_1_3};
    /* Unknown names refused; client certificates asked for. */
    variants[1].what = "refuse, client_auth optional";
    variants[1].cfg = variants[0].cfg;
    variants[1].cfg.unknown_name = GW_TLS_UNKNOWN_REFUSE;
    variants[1].cfg.client_auth = GW_TLS_CLIENT_AUTH_OPTIONAL;
    variants[1].cfg.client_ca = client_ca;
    /* Client certificates required, no tickets, TLS 1.2 only. */
    variants[2].what = "client_auth required, no tickets";
    variants[2].cfg = variants[0].cfg;
    variants[2].cfg.session_tickets = false;
    variants[2].cfg.max_version = GW_TLS_1_2;
    variants[2].cfg.client_auth = GW_TLS_CLIENT_AUTH_REQUIRED;
    variants[2].cfg.client_ca = client_ca;
    /* One RSA certificate named by its own names, two suites. */
    variants[3].what = "RSA only, two suites";
    variants[3].cfg = variants[0].cfg;
    variants[3].cfg.certs = rsa_only;
    variants[3].cfg.ncerts = 1;
    variants[3].cfg.ciphersuites = suites_narrow;
    variants[3].cfg.nciphersuites = 2;
    for (int i = 0; i < NVARIANTS; i++)
        build(&variants[i]);
    const char *rec = getenv("TANDEM_FUZZ_TLS_RECORD");
    if (rec && *rec)
        record(rec);
    return 0;
}

/* ---- one input ---------------------------------------------------------------- */

/* A small deterministic generator (xorshift64*) seeded by the variant: the
 * same input, the same server randoms and ephemeral keys. */
static uint64_t rng_state;
static size_t handshakes_done;

static int fuzz_rng(void *p, unsigned char *buf, size_t len)
{
    (void)p;
    for (size_t i = 0; i < len; i++) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        buf[i] = (unsigned char)((rng_state * 0x2545F4914F6CDD1DULL) >> 56);
    }
    return 0;
}

struct feed {
    const uint8_t *p;
    size_t len, off;
    size_t piece; /* 0: whatever is asked */
    bool starve;  /* the next read says "would block" */
};

static int feed_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct feed *f = ctx;
    if (f->off == f->len)
        return 0; /* the client closed */
    if (f->starve) {
        f->starve = false;
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    size_t n = f->len - f->off;
    if (n > len)
        n = len;
    if (f->piece && n > f->piece)
        n = f->piece;
    memcpy(buf, f->p + f->off, n);
    f->off += n;
    f->starve = f->piece != 0;
    return (int)n;
}

static int sink_send(void *ctx, const unsigned char *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    return (int)len;
}

static bool suite_listed(const struct gw_tls_server *srv, int id)
{
    for (const int *s = srv->suites; *s; s++)
        if (*s == id)
            return true;
    return false;
}

/* One connection on variant v's configuration, reading and writing
 * through recv_cb and send_cb with ctx, as gw_tls_accept runs it (the
 * per-handshake state around each call into the handshake), then the
 * checks of the header and the application data after it. `budget`
 * bounds the calls: more than that is a handshake that never ends. */
static void serve(struct variant *v, void *ctx, mbedtls_ssl_send_t *send_cb,
                  mbedtls_ssl_recv_t *recv_cb, size_t budget)
{
    rng_state = 0x9E3779B97F4A7C15ULL + (uint64_t)(v - variants);
    /* The configuration is this target's alone: one thread. */
    mbedtls_ssl_conf_rng(&v->srv->conf, fuzz_rng, NULL);

    mbedtls_ssl_context ssl;
    mbedtls_ssl_init(&ssl);
    if (mbedtls_ssl_setup(&ssl, &v->srv->conf) != 0)
        fail("mbedtls_ssl_setup");
    mbedtls_ssl_set_bio(&ssl, ctx, send_cb, recv_cb, NULL);

    struct gw__tls_hs hs = {.srv = v->srv};
    int rc;
    size_t calls = 0;
    do {
        gw__tls_hs_begin(&hs);
        rc = mbedtls_ssl_handshake(&ssl);
        gw__tls_hs_end();
        if (++calls > budget)
            fail("the handshake neither finishes nor fails on a finite input");
    } while (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
    if (rc == 0) {
        /* What the connection process would log and forward. */
        struct gw_tls_peer peer;
        memset(&peer, 0, sizeof peer);
        gw__tls_peer_fill(&ssl, &hs, &peer);
        handshakes_done++;
        if (strcmp(peer.version, "1.2") != 0 && strcmp(peer.version, "1.3") != 0)
            fail("a handshake completed below TLS 1.2");
        const char *suite = mbedtls_ssl_get_ciphersuite(&ssl);
        if (!suite || !suite_listed(v->srv, mbedtls_ssl_get_ciphersuite_id(suite)))
            fail("a handshake completed with a suite the listener does not offer");
        if (hs.sni_unknown)
            fail("a handshake completed for a refused server name");
        if (v->cfg.client_auth == GW_TLS_CLIENT_AUTH_REQUIRED && !hs.resumed && !peer.client_cert)
            fail("client_auth required, yet a full handshake completed without a certificate");
        unsigned char buf[4096];
        for (calls = 0; calls < budget; calls++) {
            int n = mbedtls_ssl_read(&ssl, buf, sizeof buf);
            if (n == MBEDTLS_ERR_SSL_WANT_READ || n > 0)
                continue;
            break;
        }
    } else {
        (void)gw__tls_fail_of(rc); /* the reason the counters would get */
    }
    mbedtls_ssl_free(&ssl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct feed f = {.p = data + 2, .len = size - 2, .piece = data[1]};
    /* Each "would block" is followed by more bytes or the end, and each
     * read takes at least one byte: the handshake finishes or fails within
     * two calls per input byte and a few more. */
    serve(&variants[data[0] % NVARIANTS], &f, sink_send, feed_recv, 2 * f.len + 64);
    if (f.off > f.len)
        fail("read past the input");
    return 0;
}

/* ---- recording a real client's bytes ------------------------------------------- */

/* TANDEM_FUZZ_TLS_RECORD="VARIANT FILE": instead of fuzzing, serve one real
 * client on 127.0.0.1 (the port is printed on stdout) with variant
 * VARIANT's configuration and this target's generator, and write what the
 * client sent to FILE as an input of this target. The server's messages
 * depend only on the variant and the clock (the random in ServerHello
 * carries the time), so a conversation recorded with the same
 * certificates and TANDEM_FUZZ_TLS_TIME replays to a finished handshake:
 * the fuzzer starts from whole conversations, not only hellos. */
struct recorder {
    int fd;
    unsigned char *buf;
    size_t len, cap;
};

static int rec_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct recorder *r = ctx;
    ssize_t n = recv(r->fd, buf, len, 0);
    if (n < 0)
        return MBEDTLS_ERR_NET_RECV_FAILED;
    if (r->len + (size_t)n > r->cap) {
        size_t cap = (r->cap ? r->cap * 2 : 65536) + (size_t)n;
        unsigned char *nb = realloc(r->buf, cap);
        if (!nb)
            fail("out of memory");
        r->buf = nb;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, buf, (size_t)n);
    r->len += (size_t)n;
    return (int)n;
}

static int rec_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct recorder *r = ctx;
    ssize_t n = send(r->fd, buf, len, MSG_NOSIGNAL);
    return n < 0 ? MBEDTLS_ERR_NET_SEND_FAILED : (int)n;
}

static void record(const char *spec)
{
    unsigned variant;
    char file[4096];
    if (sscanf(spec, "%u %4095s", &variant, file) != 2 || variant >= NVARIANTS)
        fail("TANDEM_FUZZ_TLS_RECORD is \"VARIANT FILE\"");
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
        fail("record: no listening socket");
    printf("%u\n", ntohs(a.sin_port));
    fflush(stdout);
    struct recorder r = {.fd = accept(ls, NULL, NULL)};
    if (r.fd < 0)
        fail("record: accept");
    struct timeval tv = {.tv_sec = 5};
    setsockopt(r.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    serve(&variants[variant], &r, rec_send, rec_recv, 1000);
    close(r.fd);
    close(ls);
    FILE *out = fopen(file, "wb");
    unsigned char head[2] = {(unsigned char)variant, 0};
    if (!out || fwrite(head, 1, 2, out) != 2 || fwrite(r.buf, 1, r.len, out) != r.len ||
        fclose(out) != 0)
        fail("record: cannot write the file");
    fprintf(stderr, "fuzz_tls_server: recorded %zu bytes, %s handshake\n", r.len,
            handshakes_done ? "a finished" : "an unfinished");
    free(r.buf);
    exit(0);
}

/* The clock mbedtls reads (the ServerHello random, certificate dates):
 * TANDEM_FUZZ_TLS_TIME when set, so that recorded conversations replay.
 * The library calls time() through the dynamic linker, which finds this
 * definition first. */
time_t time(time_t *t)
{
    static time_t fixed = -1;
    if (fixed == -1) {
        const char *e = getenv("TANDEM_FUZZ_TLS_TIME");
        fixed = e && *e ? (time_t)strtoll(e, NULL, 10) : 0;
    }
    time_t now = fixed;
    if (!now) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = ts.tv_sec;
    }
    if (t)
        *t = now;
    return now;
}
