/*
 * match.c: the hot path — find the route for a request in a compiled table.
 *
 * For each host group in order (exact host, `*.suffix` from the longest
 * suffix, any host) the path is walked down the group's trie, depth first:
 * at each node the literal child for the next segment (one hash lookup) and
 * the parameter child (when the segment is not empty) are both visited, since
 * a parameter route may beat a literal prefix route further down. A node
 * stands for a fixed number of segments, so each node is visited at most once
 * and the walk is bounded by the trie, not by the path (whose extra segments
 * only matter to prefix and wildcard routes). Every visited node offers its
 * lists' best route that passes the method and header tests; the best offer
 * by route__rank_cmp wins. The first group with a winner decides.
 *
 * Nothing here allocates, locks or writes shared memory: state lives on the
 * stack and in the caller's `struct route_match`.
 */
#include <errno.h>
#include <string.h>

#include "route_int.h"

uint64_t route__hash(const char *p, size_t n, uint64_t seed)
{
    /* A short multiply-xorshift hash: the keys are path segments and host
     * names from route files (lookups never insert, so a peer cannot build
     * long chains). */
    uint64_t h = seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 32;
    return h;
}

struct walk {
    const struct route_table *t;
    const struct route_request *req;
    unsigned mbit; /* 0: an extension method */
    const struct route__entry *best;
    uint32_t best_pos; /* path offset at the best route's node */
    unsigned allowed;  /* methods of routes that failed on the method only */
    bool method_miss;
    /* segment boundaries by depth: pos[d] is the offset of the '/' that
     * starts segment d (or the path length) */
    uint32_t pos[ROUTE_MAX_SEGMENTS + 2];
};

static bool method_ok(const struct walk *w, const struct route__entry *e)
{
    if (!e->r.methods)
        return true;
    if (w->mbit)
        return (e->r.match_methods & w->mbit) != 0;
    for (size_t i = 0; i < e->r.next_methods; i++) {
        const char *m = e->r.ext_methods[i];
        if (strlen(m) == w->req->method_len && memcmp(m, w->req->method, w->req->method_len) == 0)
            return true;
    }
    return false;
}

/* Whether one header condition holds. A field may arrive as several lines;
 * they are one field whose value is the lines joined by commas (RFC 9110
 * 5.3), and the gateway forwards every line, so an upstream may read the
 * first, the last or all of them. An exact-value condition therefore holds
 * only when every line has that value: whichever line the upstream reads, it
 * sees what the route matched, and `X-Role: admin` followed by `X-Role: user`
 * (or the reverse) does not pass for `"x-role": "admin"`. Present needs one
 * line at least, absent none. */
static bool cond_ok(const struct route_request *req, const struct route_header_cond *c)
{
    if (!req->header)
        return c->test == ROUTE_HDR_ABSENT;
    size_t name_len = strlen(c->name), pos = 0, len = 0, lines = 0;
    const char *v;
    while ((v = req->header(req->header_ctx, c->name, name_len, &pos, &len))) {
        if (c->test != ROUTE_HDR_EQUALS)
            return c->test == ROUTE_HDR_PRESENT;
        if (len != c->value_len || memcmp(v, c->value, len) != 0)
            return false;
        lines++;
    }
    return c->test == ROUTE_HDR_EQUALS ? lines > 0 : c->test == ROUTE_HDR_ABSENT;
}

static bool headers_ok(const struct walk *w, const struct route__entry *e)
{
    for (size_t i = 0; i < e->r.nheaders; i++)
        if (!cond_ok(w->req, &e->r.headers[i]))
            return false;
    return true;
}

static void offer(struct walk *w, uint32_t off, uint32_t n, uint32_t pos)
{
    const struct route__entry *const *list = w->t->lists + off;
    for (uint32_t i = 0; i < n; i++) {
        const struct route__entry *e = list[i];
        /* Lists are sorted best first: nothing after a loser can win. */
        if (w->best && route__rank_cmp(w->best, e) < 0)
            return;
        if (!headers_ok(w, e))
            continue;
        if (!method_ok(w, e)) {
            w->method_miss = true;
            w->allowed |= e->r.match_methods;
            continue;
        }
        w->best = e;
        w->best_pos = pos;
        return;
    }
}

static const struct route__edge *find_edge(const struct route_table *t, uint32_t parent,
                                           const char *seg, size_t len)
{
    uint64_t h = route__hash(seg, len, (uint64_t)parent * 0x9E3779B97F4A7C15ull);
    for (uint32_t j = (uint32_t)h & t->edge_mask; t->edges[j].child; j = (j + 1) & t->edge_mask) {
        const struct route__edge *e = &t->edges[j];
        if (e->hash == h && e->parent == parent && e->len == len && memcmp(e->seg, seg, len) == 0)
            return e;
    }
    return NULL;
}

static void walk_group(struct walk *w, uint32_t root)
{
    const struct route_table *t = w->t;
    const char *path = w->req->path;
    uint32_t plen = (uint32_t)w->req->path_len;
    struct {
        uint32_t node, pos;
    } stack[2 * ROUTE_MAX_SEGMENTS + 4];
    unsigned sp = 0;
    stack[sp++].node = root;
    stack[0].pos = 0;
    while (sp) {
        sp--;
        uint32_t n = stack[sp].node, pos = stack[sp].pos;
        const struct route__node *nd = &t->nodes[n];
        w->pos[nd->depth] = pos;
        bool at_end = pos == plen;
        if (at_end && nd->full_n)
            offer(w, nd->full_off, nd->full_n, pos);
        if (!at_end && nd->wild_n)
            offer(w, nd->wild_off, nd->wild_n, pos);
        if (nd->prefix_n)
            offer(w, nd->prefix_off, nd->prefix_n, pos);
        if (at_end || (!nd->param_child && !nd->nliteral))
            continue;
        /* path[pos] == '/': the next segment runs to the next '/' */
        const char *seg = path + pos + 1;
        const char *slash = memchr(seg, '/', plen - pos - 1);
        uint32_t end = slash ? (uint32_t)(slash - path) : plen;
        uint32_t slen = end - pos - 1;
        if (nd->param_child && slen > 0) {
            stack[sp].node = nd->param_child;
            stack[sp++].pos = end;
        }
        if (nd->nliteral) {
            const struct route__edge *e = find_edge(t, n, seg, slen);
            if (e) {
                stack[sp].node = e->child;
                stack[sp++].pos = end;
            }
        }
    }
}

static const struct route__host *find_host(const struct route__host *v, uint32_t mask,
                                           const char *name, size_t len)
{
    uint64_t h = route__hash(name, len, 0);
    for (uint32_t j = (uint32_t)h & mask; v[j].root; j = (j + 1) & mask)
        if (v[j].hash == h && v[j].len == len && memcmp(v[j].name, name, len) == 0)
            return &v[j];
    return NULL;
}

static void fill(struct walk *w, struct route_match *m)
{
    const struct route__entry *e = w->best;
    const char *path = w->req->path;
    uint32_t plen = (uint32_t)w->req->path_len;
    m->route = &e->r;
    m->nparams = e->r.nparams;
    m->allowed = 0;
    for (unsigned i = 0; i < e->r.nparams; i++) {
        unsigned s = e->param_seg[i];
        m->params[i].name = e->r.param_names[i];
        if (e->has_wildcard && i == e->r.nparams - 1) {
            uint32_t start = w->best_pos + 1;
            m->params[i].value = path + start;
            m->params[i].len = plen - start;
        } else {
            /* segment s runs from after the '/' at pos[s] to pos[s + 1] */
            m->params[i].value = path + w->pos[s] + 1;
            m->params[i].len = w->pos[s + 1] - w->pos[s] - 1;
        }
    }
    if (e->kind == ROUTE_KIND_PREFIX) {
        m->rest = path + w->best_pos;
        m->rest_len = plen - w->best_pos;
    } else if (e->kind == ROUTE_KIND_WILDCARD) {
        m->rest = path + w->best_pos + 1;
        m->rest_len = plen - w->best_pos - 1;
    } else {
        m->rest = path + plen;
        m->rest_len = 0;
    }
}

enum route_match_result route_table_match(const struct route_table *t,
                                          const struct route_request *req, struct route_match *m)
{
    struct walk w;
    w.t = t;
    w.req = req;
    w.mbit = route_method_bit(req->method, req->method_len);
    w.allowed = 0;
    w.method_miss = false;
    m->route = NULL;
    m->nparams = 0;
    m->rest = NULL;
    m->rest_len = 0;
    m->allowed = 0;
    if (req->path_len == 0 || req->path[0] != '/' || req->path_len > UINT32_MAX / 2)
        return ROUTE_NOT_FOUND;

    if (req->host && (t->nhosts || t->nsuffixes)) {
        /* Lower-case the host name, without port or trailing dot. Longer
         * than any DNS name: no host route can match it. */
        char host[256];
        size_t len = req->host_len;
        const char *h = req->host;
        if (len && h[0] == '[') {
            const char *close = memchr(h, ']', len);
            len = close ? (size_t)(close - h) + 1 : len;
        } else {
            const char *colon = memchr(h, ':', len);
            if (colon)
                len = (size_t)(colon - h);
        }
        if (len > 1 && h[len - 1] == '.')
            len--;
        if (len > 0 && len < sizeof(host)) {
            for (size_t i = 0; i < len; i++) {
                char c = h[i];
                host[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            const struct route__host *g;
            if (t->nhosts && (g = find_host(t->hosts, t->host_mask, host, len))) {
                w.best = NULL;
                walk_group(&w, g->root);
                if (w.best)
                    goto found;
            }
            /* "*.example.com" is stored as ".example.com": try each suffix
             * that starts at a dot, longest first. */
            for (size_t i = 1; t->nsuffixes && i < len; i++) {
                if (host[i] != '.')
                    continue;
                if ((g = find_host(t->suffixes, t->suffix_mask, host + i, len - i))) {
                    w.best = NULL;
                    walk_group(&w, g->root);
                    if (w.best)
                        goto found;
                }
            }
        }
    }
    if (t->any_root) {
        w.best = NULL;
        walk_group(&w, t->any_root);
        if (w.best)
            goto found;
    }
    if (w.method_miss) {
        m->allowed = w.allowed & ~(unsigned)ROUTE_M_EXTENSION;
        return ROUTE_NO_METHOD;
    }
    return ROUTE_NOT_FOUND;
found:
    fill(&w, m);
    return ROUTE_MATCHED;
}

/* ---- upstream path ---------------------------------------------------------- */

struct out {
    char *buf;
    size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n <= o->cap)
        memcpy(o->buf + o->len, s, n);
    o->len += n;
}

int route_upstream_path(const struct route_match *m, const struct route_request *req,
                        const char *query, size_t qlen, char *buf, size_t cap)
{
    const struct route__entry *e = route__entry_of(m->route);
    struct out o = {.buf = buf, .cap = cap ? cap - 1 : 0};
    if (e->ntpl) {
        for (unsigned i = 0; i < e->ntpl; i++) {
            const struct route__tpl_part *p = &e->tpl[i];
            if (p->param < 0)
                put(&o, p->text, p->len);
            else
                put(&o, m->params[p->param].value, m->params[p->param].len);
        }
        if (e->kind == ROUTE_KIND_PREFIX && m->rest_len) {
            const char *rest = m->rest;
            size_t rl = m->rest_len;
            if (o.len && o.len <= o.cap && buf[o.len - 1] == '/' && rest[0] == '/') {
                rest++;
                rl--;
            }
            put(&o, rest, rl);
        }
    } else if (e->r.strip_prefix && e->kind == ROUTE_KIND_PREFIX) {
        if (m->rest_len)
            put(&o, m->rest, m->rest_len);
        else
            put(&o, "/", 1);
    } else if (e->r.strip_prefix && e->kind == ROUTE_KIND_WILDCARD) {
        put(&o, "/", 1);
        put(&o, m->rest, m->rest_len);
    } else {
        put(&o, req->path, req->path_len);
    }
    if (qlen) {
        put(&o, "?", 1);
        put(&o, query, qlen);
    }
    if (o.len > o.cap || cap == 0)
        return -ENOSPC;
    buf[o.len] = '\0';
    return (int)o.len;
}
