/*
 * route_lookup.c: route-table figures over 10,000 generated routes.
 *
 *   ninja -C build tests/bench/routes/route_lookup && build/tests/bench/routes/route_lookup
 *
 * Prints, side by side in one run: the median time of one lookup through the
 * compiled trie, the same through acquire/match/release on a holder, and a
 * linear scan of the same routes (first match in precedence order, the way a
 * table without an index is searched); then the time to parse, validate and
 * compile the 10,000 routes from JSON, and to publish the result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/holder.h"
#include "route/route.h"

#define NROUTES 10000
#define NREQ 4096
#define BATCH 256
#define ROUNDS 200

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* The same mix as the unit test: exact, parameter, wildcard, prefix; one in
 * five on one of seven hosts. */
static char *generate(size_t *len)
{
    size_t cap = 4u << 20, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "{\"routes\":[");
    for (int i = 0; i < NROUTES; i++) {
        char host[64] = "";
        if (i % 5 == 0)
            snprintf(host, sizeof(host), ",\"host\":\"h%d.example.com\"", i % 7);
        const char *sep = i ? "," : "";
        switch (i % 4) {
        case 0:
            n += (size_t)snprintf(s + n, cap - n,
                                  "%s{\"name\":\"r%d\",\"match\":{\"path\":\"/svc%d/items\"%s},"
                                  "\"upstream\":\"demo\"}",
                                  sep, i, i, host);
            break;
        case 1:
            n += (size_t)snprintf(s + n, cap - n,
                                  "%s{\"name\":\"r%d\",\"match\":{\"path\":\"/svc%d/items/:id\"%s,"
                                  "\"methods\":[\"GET\"]},\"upstream\":\"demo\"}",
                                  sep, i, i, host);
            break;
        case 2:
            n += (size_t)snprintf(
                s + n, cap - n,
                "%s{\"name\":\"r%d\",\"match\":{\"path\":\"/svc%d/files/*rest\"%s},"
                "\"upstream\":\"demo\"}",
                sep, i, i, host);
            break;
        default:
            n += (size_t)snprintf(s + n, cap - n,
                                  "%s{\"name\":\"r%d\",\"match\":{\"path_prefix\":\"/svc%d\"%s},"
                                  "\"upstream\":\"demo\"}",
                                  sep, i, i, host);
            break;
        }
    }
    n += (size_t)snprintf(s + n, cap - n, "]}");
    *len = n;
    return s;
}

struct req {
    char path[64];
    char host[32];
    int has_host;
    int expect;
};

/* ---- the linear scan baseline ----------------------------------------------- */

/* Does `pattern` (a route's path) match `path` the way the route's kind says? */
static int pattern_match(const struct route *r, const char *path)
{
    const char *p = r->path, *q = path;
    while (*p) {
        if (*p == '/' && *q == '/') {
            p++;
            q++;
            continue;
        }
        if (*p == ':') {
            if (*q == '/' || !*q)
                return 0;
            while (*p && *p != '/')
                p++;
            while (*q && *q != '/')
                q++;
            continue;
        }
        if (*p == '*')
            return 1;
        if (*p != *q)
            return 0;
        p++;
        q++;
    }
    if (r->path_kind == ROUTE_PATH_PREFIX)
        return *q == '\0' || *q == '/';
    return *q == '\0';
}

static int host_match(const struct route *r, const struct req *q)
{
    if (r->host_kind == ROUTE_HOST_ANY)
        return 1;
    if (!q->has_host)
        return 0;
    if (r->host_kind == ROUTE_HOST_EXACT)
        return strcmp(r->host, q->host) == 0;
    size_t hl = strlen(q->host), sl = strlen(r->host + 1);
    return hl > sl && strcmp(q->host + hl - sl, r->host + 1) == 0;
}

static int precedence(const void *pa, const void *pb)
{
    const struct route *a = *(const struct route *const *)pa, *b = *(const struct route *const *)pb;
    int ka = a->host_kind == ROUTE_HOST_EXACT ? 0 : a->host_kind == ROUTE_HOST_SUFFIX ? 1 : 2;
    int kb = b->host_kind == ROUTE_HOST_EXACT ? 0 : b->host_kind == ROUTE_HOST_SUFFIX ? 1 : 2;
    if (ka != kb)
        return ka - kb;
    int pa_ = a->path_kind == ROUTE_PATH_PREFIX ? 3 : a->path_kind == ROUTE_PATH_WILDCARD ? 2 : 1;
    int pb_ = b->path_kind == ROUTE_PATH_PREFIX ? 3 : b->path_kind == ROUTE_PATH_WILDCARD ? 2 : 1;
    if (pa_ != pb_)
        return pa_ - pb_;
    return (int)(strlen(b->path) - strlen(a->path));
}

static const struct route *linear(const struct route *const *v, size_t n, const struct req *q)
{
    for (size_t i = 0; i < n; i++)
        if (host_match(v[i], q) && pattern_match(v[i], q->path))
            return v[i];
    return NULL;
}

int main(void)
{
    const char *ups[] = {"demo"};
    size_t len;
    char *json = generate(&len);

    /* compile (+ publish) */
    double tc[11], tp[11];
    struct route_holder *h;
    route_holder_new(&h);
    struct route_table *t = NULL;
    for (int k = 0; k < 11; k++) {
        struct jpos_diags d;
        jpos_diags_init(&d);
        double t0 = now_ns();
        struct route_builder *b;
        route_builder_new(&b, ups, 1);
        route_builder_add_text(b, "gen.json", json, len, &d);
        struct route_table *nt;
        if (route_builder_compile(b, &nt, &d) != 0) {
            jpos_diags_print(&d, stderr);
            return 1;
        }
        route_builder_free(b);
        double t1 = now_ns();
        route_holder_publish(h, nt);
        double t2 = now_ns();
        tc[k] = (t1 - t0) / 1e6;
        tp[k] = (t2 - t1) / 1e6;
        jpos_diags_done(&d);
    }
    t = (struct route_table *)route_holder_acquire(h);

    /* requests: one per route kind, spread over all routes */
    static struct req reqs[NREQ];
    srand(42);
    for (int i = 0; i < NREQ; i++) {
        int r = rand() % NROUTES;
        const char *suffix[] = {"/items", "/items/7", "/files/a/b.css", "/other/x"};
        snprintf(reqs[i].path, sizeof(reqs[i].path), "/svc%d%s", r, suffix[r % 4]);
        reqs[i].has_host = r % 5 == 0;
        snprintf(reqs[i].host, sizeof(reqs[i].host), "h%d.example.com", r % 7);
        reqs[i].expect = r;
    }

    size_t n = route_table_count(t);
    const struct route **sorted = malloc(n * sizeof(*sorted));
    for (size_t i = 0; i < n; i++)
        sorted[i] = route_table_route(t, i);
    qsort(sorted, n, sizeof(*sorted), precedence);

    static double trie[ROUNDS], held[ROUNDS], lin[ROUNDS / 10];
    unsigned long sink = 0;
    struct route_match m;
    struct route_request rq;
    memset(&rq, 0, sizeof(rq));
    rq.method = "GET";
    rq.method_len = 3;
    int wrong = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int base = (round * BATCH) % NREQ;
        /* alternate which goes first, so that neither always runs warm */
        for (int pass = 0; pass < 2; pass++) {
            if ((pass == 0) == (round % 2 == 0)) {
                double t0 = now_ns();
                for (int i = 0; i < BATCH; i++) {
                    const struct req *q = &reqs[(base + i) % NREQ];
                    rq.path = q->path;
                    rq.path_len = strlen(q->path);
                    rq.host = q->has_host ? q->host : NULL;
                    rq.host_len = q->has_host ? strlen(q->host) : 0;
                    if (route_table_match(t, &rq, &m) == ROUTE_MATCHED)
                        sink += m.route->index;
                }
                trie[round] = (now_ns() - t0) / BATCH;
            } else {
                double t0 = now_ns();
                for (int i = 0; i < BATCH; i++) {
                    const struct req *q = &reqs[(base + i) % NREQ];
                    rq.path = q->path;
                    rq.path_len = strlen(q->path);
                    rq.host = q->has_host ? q->host : NULL;
                    rq.host_len = q->has_host ? strlen(q->host) : 0;
                    const struct route_table *ht = route_holder_acquire(h);
                    if (route_table_match(ht, &rq, &m) == ROUTE_MATCHED)
                        sink += m.route->index;
                    route_table_release(ht);
                }
                held[round] = (now_ns() - t0) / BATCH;
            }
        }
    }
    for (int round = 0; round < ROUNDS / 10; round++) {
        int base = (round * 16) % NREQ;
        double t0 = now_ns();
        for (int i = 0; i < 16; i++) {
            const struct route *r = linear(sorted, n, &reqs[base + i]);
            if (r)
                sink += r->index;
        }
        lin[round] = (now_ns() - t0) / 16;
    }
    /* correctness of what was timed: both find the generated route */
    for (int i = 0; i < NREQ; i++) {
        const struct req *q = &reqs[i];
        rq.path = q->path;
        rq.path_len = strlen(q->path);
        rq.host = q->has_host ? q->host : NULL;
        rq.host_len = q->has_host ? strlen(q->host) : 0;
        char name[16];
        snprintf(name, sizeof(name), "r%d", q->expect);
        const struct route *lr = linear(sorted, n, q);
        if (route_table_match(t, &rq, &m) != ROUTE_MATCHED || strcmp(m.route->name, name) || !lr ||
            strcmp(lr->name, name))
            wrong++;
    }

    double mt = median(trie, ROUNDS), mh = median(held, ROUNDS), ml = median(lin, ROUNDS / 10);
    printf("route table, %d routes (exact, :param, *wildcard, prefix; 1 in 5 on a host)\n",
           NROUTES);
    printf("  %-36s %10s\n", "", "median");
    printf("  %-36s %8.0f ns\n", "lookup, compiled trie", mt);
    printf("  %-36s %8.0f ns\n", "acquire + lookup + release (holder)", mh);
    printf("  %-36s %8.0f ns\n", "lookup, linear scan (same routes)", ml);
    printf("  %-36s %8.0fx\n", "trie speed-up over linear scan", ml / mt);
    printf("  %-36s %8.2f ms\n", "parse + validate + compile (JSON)", median(tc, 11));
    printf("  %-36s %8.4f ms\n", "publish (atomic swap + reclaim)", median(tp, 11));
    printf("  %-36s %8.2f ms\n", "compile + publish", median(tc, 11) + median(tp, 11));
    printf("  (%d wrong answers; sink %lu)\n", wrong, sink % 10);
    route_table_release(t);
    route_holder_free(h);
    free(sorted);
    free(json);
    return wrong ? 1 : 0;
}
