/*
 * path_settle.c: the route a path holding "%2F", ";" or "%3B" goes to, and
 * the path forwarded (gateway/src/http/README.md, "Path policies").
 *
 * Routing happens on the canonical path, and the canonical path depends on
 * the path policy, which a route only gives once it is found. So the target
 * is first canonicalised with those bytes opaque and matched; the route
 * found (else the listener) then says what they may be. Two invariants:
 *
 *  - the path matched is the path forwarded: the target is canonicalised
 *    last under the policy settled, and must give the very bytes matched;
 *  - a path kept opaque routes as every backend reading routes. A backend
 *    may decode "%2F" into "/" and strip ";params" (at ";" or "%3B",
 *    before or after decoding): each such reading of the forwarded path
 *    must match the same route, or none. Else "/admin%2Fx" (one segment
 *    under `keep`) would pass a deny route for /admin on the catch-all and
 *    be served as /admin/x, and "/internal;x" would escape /internal's
 *    `refuse`.
 */
#include "path_settle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct gw_http_path_policy gw__path_first_policy(const struct gw_http_path_policy *lis)
{
    struct gw_http_path_policy p = *lis;
    p.slashes = GW_HTTP_SLASHES_OPAQUE;
    p.params = GW_HTTP_PARAMS_OPAQUE;
    return p;
}

struct gw_http_path_policy gw__path_route_policy(const struct gw_http_path_policy *lis,
                                                 const struct route *r)
{
    struct gw_http_path_policy p = *lis;
    if (!r)
        return p;
    switch (r->escaped_slashes) {
    case ROUTE_SLASHES_LISTENER:
        break;
    case ROUTE_SLASHES_REFUSE:
        p.slashes = GW_HTTP_SLASHES_REFUSE;
        break;
    case ROUTE_SLASHES_KEEP:
        p.slashes = GW_HTTP_SLASHES_KEEP;
        break;
    case ROUTE_SLASHES_REDIRECT:
        p.slashes = GW_HTTP_SLASHES_REDIRECT;
        break;
    case ROUTE_SLASHES_DECODE:
        p.slashes = GW_HTTP_SLASHES_DECODE;
        break;
    }
    switch (r->path_params) {
    case ROUTE_PARAMS_LISTENER:
        break;
    case ROUTE_PARAMS_REFUSE:
        p.params = GW_HTTP_PARAMS_REFUSE;
        break;
    case ROUTE_PARAMS_KEEP:
        p.params = GW_HTTP_PARAMS_KEEP;
        break;
    }
    return p;
}

/* How a backend may read a forwarded path: one or two canonicalisations in
 * turn (the second of the first's output). */
struct reading {
    struct gw_http_path_policy first, then;
    bool two;
};

static const struct reading slashes_decoded = {
    .first = {.slashes = GW_HTTP_SLASHES_DECODE, .params = GW_HTTP_PARAMS_OPAQUE}};
/* decoded, then ";params" stripped up to the next "/" */
static const struct reading params_stripped_after = {
    .first = {.slashes = GW_HTTP_SLASHES_DECODE, .params = GW_HTTP_PARAMS_STRIP}};
/* stripped up to the next raw "/", then decoded (Tomcat's order) */
static const struct reading params_stripped_before = {
    .first = {.slashes = GW_HTTP_SLASHES_OPAQUE, .params = GW_HTTP_PARAMS_STRIP},
    .then = {.slashes = GW_HTTP_SLASHES_DECODE, .params = GW_HTTP_PARAMS_OPAQUE},
    .two = true};

/* Room for one reading of a canonical path of n bytes: a reading never
 * grows it by more than a "/" (a segment stripped to nothing), and the
 * canonicaliser wants 3 * len + 2. */
#define READING_CAP(n) (3 * ((n) + 1) + 2)

/* Whether reading `rd` of path p[0..n) (canonical) matches the route that
 * the path itself matched (res0, m0), or no route. scratch holds
 * 2 * READING_CAP(n) bytes. */
static bool reading_agrees(const struct reading *rd, const struct route_table *table,
                           const struct route_request *rr, const char *p, size_t n,
                           enum route_match_result res0, const struct route_match *m0,
                           char *scratch)
{
    size_t cap = READING_CAP(n);
    struct gw_http_target a, b;
    /* Trailing dots are judged by the policy that forwards the path, not
     * again here: a reading only changes how "%2F" and ";" are read. */
    struct gw_http_path_policy first = rd->first, then = rd->then;
    first.keep_trailing_dots = then.keep_trailing_dots = true;
    if (gw_http_target_canon_policy(&first, NULL, p, n, scratch, cap, &a) < 0)
        return false;
    if (rd->two &&
        gw_http_target_canon_policy(&then, NULL, a.path, a.path_len, scratch + cap, cap, &b) < 0)
        return false;
    const struct gw_http_target *r = rd->two ? &b : &a;
    struct route_request q = *rr;
    q.path = r->path;
    q.path_len = r->path_len;
    struct route_match m;
    enum route_match_result res = route_table_match(table, &q, &m);
    if (res == ROUTE_NOT_FOUND)
        return true; /* no route claims it: none is bypassed */
    if (res != res0)
        return false;
    if (res == ROUTE_MATCHED)
        return m.route == m0->route;
    return m.allowed == m0->allowed;
}

/* Every backend reading of the forwarded path t->path routes as it does. */
static int readings_agree(const struct gw_http_path_policy *eff, const struct route_table *table,
                          const struct route_request *rr, const struct gw_http_target *t,
                          enum route_match_result res, const struct route_match *m)
{
    bool slashes = eff->slashes == GW_HTTP_SLASHES_KEEP && t->escaped_slash;
    bool params = eff->params == GW_HTTP_PARAMS_KEEP && t->params;
    if (res != ROUTE_MATCHED || (!slashes && !params))
        return 0;
    char *scratch = malloc(2 * READING_CAP(t->path_len));
    if (!scratch)
        return -ENOMEM;
    bool ok = true;
    if (slashes)
        ok = reading_agrees(&slashes_decoded, table, rr, t->path, t->path_len, res, m, scratch);
    if (ok && params)
        ok = reading_agrees(&params_stripped_after, table, rr, t->path, t->path_len, res, m,
                            scratch);
    if (ok && params && slashes)
        ok = reading_agrees(&params_stripped_before, table, rr, t->path, t->path_len, res, m,
                            scratch);
    free(scratch);
    return ok ? 0 : -EINVAL;
}

int gw__path_settle(const struct gw_http_path_policy *lis, const struct route_table *table,
                    struct route_request *rr, const char *method, const char *target,
                    size_t target_len, char *buf, size_t cap, struct gw_http_target *t,
                    enum route_match_result *res, struct route_match *m)
{
    struct gw_http_path_policy eff =
        gw__path_route_policy(lis, *res == ROUTE_MATCHED ? m->route : NULL);
    struct gw_http_target t2;
    char *check = NULL;
    int rc = -EINVAL;
    if (t->escaped_slash && eff.slashes == GW_HTTP_SLASHES_REFUSE)
        goto out;
    if (t->escaped_slash &&
        (eff.slashes == GW_HTTP_SLASHES_REDIRECT || eff.slashes == GW_HTTP_SLASHES_DECODE)) {
        struct gw_http_path_policy dp = eff;
        if (eff.slashes == GW_HTTP_SLASHES_DECODE)
            dp.params = GW_HTTP_PARAMS_OPAQUE; /* the decoded path's route decides */
        if (gw_http_target_canon_policy(&dp, method, target, target_len, buf, cap, &t2) < 0)
            goto out;
        *t = t2;
        rc = 1;
        if (eff.slashes == GW_HTTP_SLASHES_REDIRECT)
            goto out;
        rr->path = t->path;
        rr->path_len = t->path_len;
        *res = route_table_match(table, rr, m);
        /* The decoded path's route has the last word on both: it may refuse
         * "%2F" (or redirect) as if the client had sent it to it directly. */
        struct gw_http_path_policy second =
            gw__path_route_policy(lis, *res == ROUTE_MATCHED ? m->route : NULL);
        rc = -EINVAL;
        if (second.slashes == GW_HTTP_SLASHES_REFUSE)
            goto out;
        rc = 1;
        if (second.slashes == GW_HTTP_SLASHES_REDIRECT)
            goto out;
        eff.params = second.params;
    }
    rc = -ENOMEM;
    if (!(check = malloc(cap)))
        goto out;
    rc = -EINVAL;
    if (gw_http_target_canon_policy(&eff, method, target, target_len, check, cap, &t2) < 0)
        goto out;
    /* KEEP emits the bytes of the opaque pass, DECODE those of the decoding
     * pass: the path matched is the path forwarded. Were it ever not so,
     * refusing keeps that true. */
    if (t2.path_len != t->path_len || memcmp(t2.path, t->path, t->path_len) != 0)
        goto out;
    rc = readings_agree(&eff, table, rr, t, *res, m);
out:
    free(check);
    return rc;
}
