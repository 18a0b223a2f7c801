/*
 * ctl_int.h: what the files of `tandem ctl` share. ctl.c parses the command
 * line, finds the admin API and runs the one-request commands; top.c is
 * `tandem ctl top`, which holds the event stream open and refreshes a
 * full-screen view. Both are plain blocking code on the main thread: no
 * runtime, no other threads.
 */
#ifndef GW_CTL_INT_H
#define GW_CTL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest answer read whole (a process list of the largest gateway). */
#define CTL_MAX_RESPONSE (256u << 20)
#define CTL_DEFAULT_TIMEOUT_MS 10000

/* The command line, the admin address and the token, as found. */
struct ctl {
    const char *config;
    const char *admin; /* HOST:PORT from --admin */
    const char *token;
    char host[256];
    char port[8];
    bool json;
    bool once; /* top: one frame as plain text */
    int timeout_ms;
    const char *sort, *limit, *name, *kind, *reason;
    const char *offset;                            /* policies, consumers */
    const char *state, *definition, *after, *note; /* workflows */
    const char *binary;                            /* upgrade */
    bool timeout_set;
};

/* One answer, read whole. `body` is NUL-terminated and the caller's. */
struct reply {
    int status;
    char *body;
    size_t len;
};

/* CLOCK_MONOTONIC in milliseconds. */
int64_t gw__ctl_now_ms(void);

/* Connects to the admin address by `deadline` (gw__ctl_now_ms time);
 * *out is a non-blocking socket, the caller's. 0 or -errno (a name that
 * does not resolve is reported on stderr). */
int gw__ctl_dial(const struct ctl *c, int64_t deadline, int *out);

/* Writes all of p to the non-blocking socket fd by `deadline`. */
int gw__ctl_send_all(int fd, const char *p, size_t n, int64_t deadline);

/* One request (Connection: close; Host the admin address; the token as a
 * bearer header) and its whole answer, at most CTL_MAX_RESPONSE bytes, by
 * timeout_ms. 0 with *out filled, or -errno (nothing to free). */
int gw__ctl_request(const struct ctl *c, const char *method, const char *target, const char *body,
                    int timeout_ms, struct reply *out);

/* 1234, 12K, 12M, 12G; and 850ms, 1.5s, 3m07s, 2h05m, 1d03h. */
void gw__ctl_human_bytes(long long b, char *buf, size_t cap);
void gw__ctl_human_ms(long long ms, char *buf, size_t cap);

/* `s` percent-encoded (all but unreserved characters) into buf; 0, or
 * -ENAMETOOLONG when it does not fit. */
int gw__ctl_url_encode(const char *s, char *buf, size_t cap);

/* top.c: `tandem ctl top` (c->once: `top --once`). Returns the exit code:
 * 0, 1 (the gateway refused or could not be reached), 2 (usage: stdout is
 * not a terminal without --once). */
int gw__ctl_top(const struct ctl *c);

#endif
