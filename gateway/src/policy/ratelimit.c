/*
 * ratelimit.c: the rate_limit policy kind: its definition's keys, the key a
 * request counts under, the answer's RateLimit-Policy and RateLimit fields
 * (draft-ietf-httpapi-ratelimit-headers) and the 429 with Retry-After. The
 * counting is ratelimit_table.c's (local mode) or Redis's (redis mode,
 * through redis.c's gw_redis_ratelimit).
 *
 * A compiled definition holds a reference to its counters' space, found by
 * (policy name, counting identity): a reload that compiles the same
 * definition again gets the same space, so its counts go on.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/ratelimit.h"
#include "policy/redis.h"
#include "policy/stats.h"
#include "route/route.h"
#include "rt/rt.h"

/* The configuration's sources carry the kinds (kinds.c) into builds
 * without the Redis client (the admin API's unit tests): there a
 * redis-mode policy finds no client and applies on_redis_error, as it does
 * when Redis is unreachable. The gateway links redis.c. */
#pragma weak gw_redis_ratelimit

struct rl_state {
    char *name;
    uint32_t limit, window_ms, max_keys;
    enum gw__rl_by by;
    char *header; /* GW_RL_BY_HEADER: the field name, lower case */
    bool redis;
    bool redis_error_allow;
    struct gw__rl_space *space; /* local mode */
    char *policy_field;         /* RateLimit-Policy's value, built once */
    char *field_start;          /* RateLimit's value up to its figures: "<name>";r= */
    size_t field_start_len;
};

static const char *const known_keys[] = {"name", "type",     "limit",          "window_s", "by",
                                         "mode", "max_keys", "on_redis_error", NULL};

static const char *by_name(const struct rl_state *s)
{
    static const char *const names[] = {"route", "consumer", "client", "header"};
    return names[s->by];
}

static void rl_free(void *p)
{
    struct rl_state *s = p;
    if (!s)
        return;
    gw__rl_space_put(s->space);
    free(s->name);
    free(s->header);
    free(s->policy_field);
    free(s->field_start);
    free(s);
}

/* A header name as the by key takes it: a token (RFC 9110). */
static bool token_ok(const char *p)
{
    if (!*p)
        return false;
    for (; *p; p++)
        if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p)))
            return false;
    return true;
}

static int rl_compile(struct jpos_diags *d, const struct jpos_val *obj,
                      const struct gw_pol_env *env, void **state)
{
    (void)env;
    int rc = -EINVAL;
    size_t errors = d->nerrors;
    struct rl_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->window_ms = 1000;
    s->max_keys = GW_RL_MAX_KEYS_DEFAULT;
    bool have_limit = false;
    const char *name = NULL;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, obj);
    while (jpos_iter_next(&it, &m)) {
        long long n;
        const char *str;
        if (strcmp(m.key, "name") == 0) {
            if (json_is_string(m.v))
                name = json_string_value(m.v);
        } else if (strcmp(m.key, "type") == 0) {
        } else if (strcmp(m.key, "limit") == 0) {
            if (jpos_int(d, &m, 1, GW_RL_LIMIT_MAX, &n)) {
                s->limit = (uint32_t)n;
                have_limit = true;
            }
        } else if (strcmp(m.key, "window_s") == 0) {
            if (jpos_int(d, &m, 1, GW_RL_WINDOW_S_MAX, &n))
                s->window_ms = (uint32_t)n * 1000u;
        } else if (strcmp(m.key, "max_keys") == 0) {
            if (jpos_int(d, &m, 1, GW_RL_MAX_KEYS_MAX, &n))
                s->max_keys = (uint32_t)n;
        } else if (strcmp(m.key, "by") == 0) {
            if (!jpos_string(d, &m, 8 + ROUTE_MAX_NAME_BYTES, &str, NULL))
                continue;
            if (strcmp(str, "route") == 0)
                s->by = GW_RL_BY_ROUTE;
            else if (strcmp(str, "consumer") == 0)
                s->by = GW_RL_BY_CONSUMER;
            else if (strcmp(str, "client") == 0)
                s->by = GW_RL_BY_CLIENT;
            else if (strncmp(str, "header:", 7) == 0 && token_ok(str + 7)) {
                s->by = GW_RL_BY_HEADER;
                free(s->header);
                if (!(s->header = strdup(str + 7))) {
                    rc = -ENOMEM;
                    goto out;
                }
                for (char *p = s->header; *p; p++)
                    if ('A' <= *p && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
            } else
                jpos_err(
                    d, &m,
                    "\"by\" is \"route\", \"consumer\", \"client\" or \"header:<field name>\"");
        } else if (strcmp(m.key, "mode") == 0) {
            if (!jpos_string(d, &m, 16, &str, NULL))
                continue;
            if (strcmp(str, "local") == 0)
                s->redis = false;
            else if (strcmp(str, "redis") == 0)
                s->redis = true;
            else
                jpos_err(d, &m, "\"mode\" is \"local\" or \"redis\"");
        } else if (strcmp(m.key, "on_redis_error") == 0) {
            if (!jpos_string(d, &m, 16, &str, NULL))
                continue;
            if (strcmp(str, "allow") == 0)
                s->redis_error_allow = true;
            else if (strcmp(str, "deny") == 0)
                s->redis_error_allow = false;
            else
                jpos_err(d, &m, "\"on_redis_error\" is \"allow\" or \"deny\"");
        } else
            jpos_unknown(d, &m, "rate_limit policy", known_keys);
    }
    if (!have_limit)
        jpos_err(d, obj, "a rate_limit policy needs \"limit\" (requests per window)");
    if (!name)
        jpos_err(d, obj, "a policy needs a \"name\"");
    if (d->nerrors != errors)
        goto out;
    rc = -ENOMEM;
    if (!(s->name = strdup(name)))
        goto out;
    /* The fields' quoted strings are the policy's name: the set keeps names
     * to the route-name alphabet, which needs no escaping there. */
    char buf[GW_POL_NAME_MAX + 64];
    snprintf(buf, sizeof buf, "\"%s\";q=%" PRIu32 ";w=%" PRIu32, name, s->limit,
             s->window_ms / 1000);
    if (!(s->policy_field = strdup(buf)))
        goto out;
    snprintf(buf, sizeof buf, "\"%s\";r=", name);
    if (!(s->field_start = strdup(buf)))
        goto out;
    s->field_start_len = strlen(buf);
    if (!s->redis) {
        /* What makes two definitions count alike: a change of limit keeps
         * the counts (the new limit applies to them), a change of window,
         * key or bound starts afresh. */
        char id[64 + ROUTE_MAX_NAME_BYTES];
        snprintf(id, sizeof id, "w=%" PRIu32 ";by=%s%s%s;max=%" PRIu32, s->window_ms, by_name(s),
                 s->header ? ":" : "", s->header ? s->header : "", s->max_keys);
        if (gw__rl_space_get(name, id, s->window_ms, s->max_keys, &s->space) < 0)
            goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        rl_free(s);
        return rc;
    }
    *state = s;
    return 0;
}

/* Writes n in decimal at p; returns the end. */
static char *put_u32(char *p, uint32_t n)
{
    char d[10];
    size_t k = 0;
    do {
        d[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (k)
        *p++ = d[--k];
    return p;
}

static int add_fields(const struct rl_state *s, struct gw_pol_req *rq, uint32_t remaining,
                      uint32_t reset_s)
{
    /* "<name>";r=<remaining>;t=<reset>, written directly into the
     * request's own room: this runs on every request, where snprintf and
     * an allocation would cost more than the count. */
    size_t cap = s->field_start_len + 10 + 3 + 10 + 1;
    char *v = gw_pol_req_text(rq, cap);
    if (!v)
        v = rt_alloc(cap);
    if (v) {
        memcpy(v, s->field_start, s->field_start_len);
        char *p = put_u32(v + s->field_start_len, remaining);
        memcpy(p, ";t=", 3);
        p = put_u32(p + 3, reset_s);
        *p = 0;
    }
    if (!v || !gw_pol_resp_add(rq, "RateLimit-Policy", s->policy_field) ||
        !gw_pol_resp_add(rq, "RateLimit", v))
        return -ENOMEM;
    return 0;
}

static int refuse(const struct rl_state *s, struct gw_pol_req *rq, int status, const char *message,
                  const char *reason, uint32_t retry_ms)
{
    gw_pol_count_denial(s->name, reason);
    char ra[16];
    uint32_t secs = (retry_ms + 999) / 1000;
    snprintf(ra, sizeof ra, "%" PRIu32, secs ? secs : 1);
    struct gw_http_kv extra[] = {{"Retry-After", ra}};
    return gw_pol_refuse(rq, status, message, extra, 1);
}

static int internal_error(const struct rl_state *s, struct gw_pol_req *rq)
{
    gw_pol_count_denial(s->name, "internal");
    return gw_pol_refuse(rq, 500, "internal error in a rate limit", NULL, 0);
}

static int run_redis(const struct rl_state *s, struct gw_pol_req *rq, char prefix, const char *k,
                     size_t len)
{
    /* The Redis key names the policy too: "<policy>\0<prefix><key>". */
    size_t nlen = strlen(s->name);
    size_t rlen = nlen + 2 + len;
    char *rk = rt_alloc(rlen);
    if (!rk)
        return internal_error(s, rq);
    memcpy(rk, s->name, nlen + 1);
    rk[nlen + 1] = prefix;
    memcpy(rk + nlen + 2, k, len);
    uint32_t count = 0, reset_ms = 0;
    int rc = gw_redis_ratelimit
                 ? gw_redis_ratelimit(rk, rlen, s->limit, s->window_ms, &count, &reset_ms)
                 : -ENOTCONN;
    rt_free(rk);
    if (rc < 0) {
        if (s->redis_error_allow)
            return GW_POL_NEXT;
        return refuse(s, rq, 503, "rate limit store unavailable", "redis_unavailable", 1000);
    }
    uint32_t reset_s = (reset_ms + 999) / 1000;
    if (count > s->limit) {
        if (add_fields(s, rq, 0, reset_s) < 0)
            return internal_error(s, rq);
        return refuse(s, rq, 429, "rate limit exceeded", "rate_limited", reset_ms);
    }
    if (add_fields(s, rq, s->limit - count, reset_s) < 0)
        return internal_error(s, rq);
    return GW_POL_NEXT;
}

static int rl_run(void *state, struct gw_pol_req *rq)
{
    const struct rl_state *s = state;
    char prefix = 0;
    size_t len = 0;
    const char *k = gw__rl_request_key(s->by, s->header, rq, &prefix, &len);
    if (s->redis)
        return run_redis(s, rq, prefix, k, len);
    struct gw__rl_result r;
    if (gw__rl_check(s->space, prefix, k, len, s->limit, rt_now_ms(), &r) < 0)
        return internal_error(s, rq);
    if (add_fields(s, rq, r.remaining, r.allowed ? r.reset_s : (r.retry_ms + 999) / 1000) < 0)
        return internal_error(s, rq);
    if (r.allowed)
        return GW_POL_NEXT;
    return refuse(s, rq, 429, r.table_full ? "rate limit table full" : "rate limit exceeded",
                  "rate_limited", r.retry_ms);
}

static json_t *rl_describe(const void *state)
{
    const struct rl_state *s = state;
    json_t *o = json_pack("{s:I, s:I, s:s, s:s}", "limit", (json_int_t)s->limit, "window_s",
                          (json_int_t)(s->window_ms / 1000), "mode", s->redis ? "redis" : "local",
                          "by", by_name(s));
    if (!o)
        return NULL;
    if (s->header)
        json_object_set_new(o, "header", json_string(s->header));
    if (s->redis)
        json_object_set_new(o, "on_redis_error",
                            json_string(s->redis_error_allow ? "allow" : "deny"));
    else {
        struct gw__rl_stats st;
        gw__rl_space_stats(s->space, &st);
        json_object_set_new(o, "max_keys", json_integer(s->max_keys));
        json_object_set_new(o, "keys", json_integer((json_int_t)st.keys));
        json_object_set_new(o, "evicted", json_integer((json_int_t)st.evicted));
        json_object_set_new(o, "table_full", json_integer((json_int_t)st.full));
    }
    return o;
}

json_t *gw_pol_rate_state(const struct gw_pol_def *def, const char *key)
{
    if (!def || def->kind != &gw__pol_kind_rate_limit || !key)
        return NULL;
    const struct rl_state *s = def->state;
    json_t *o = rl_describe(s);
    if (!o)
        return NULL;
    json_object_set_new(o, "policy", json_string(s->name));
    json_object_set_new(o, "key", json_string(key));
    if (s->redis)
        return o; /* the counts are Redis's */
    /* The admin's key is what `by` names; a consumer policy also counts
     * anonymous requests by address, asked for as "client:<address>". */
    char prefix = "rcah"[s->by];
    const char *k = key;
    if (s->by == GW_RL_BY_CONSUMER && strncmp(key, "client:", 7) == 0) {
        prefix = 'a';
        k = key + 7;
    }
    struct gw__rl_result r;
    bool present = gw__rl_peek(s->space, prefix, k, strlen(k), s->limit, rt_now_ms(), &r);
    json_object_set_new(o, "present", json_boolean(present));
    if (!present) {
        r.prev = r.cur = 0;
        r.remaining = s->limit;
        r.reset_s = 0;
        r.retry_ms = 0;
    }
    json_object_set_new(o, "count", json_integer(r.cur));
    json_object_set_new(o, "previous", json_integer(r.prev));
    json_object_set_new(o, "remaining", json_integer(r.remaining));
    json_object_set_new(o, "reset_s", json_integer(r.reset_s));
    json_object_set_new(o, "retry_after_ms", json_integer(r.retry_ms));
    return o;
}

const struct gw_pol_kind gw__pol_kind_rate_limit = {
    .type = "rate_limit",
    .compile = rl_compile,
    .free = rl_free,
    .run = rl_run,
    .describe = rl_describe,
};
