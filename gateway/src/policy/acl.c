/*
 * acl.c: the `acl` policy kind, which decides who may use a route once an
 * authentication policy before it has said who the client is.
 *
 *   {"name": "staff-only", "type": "acl", "allow": ["alice"], "deny": ["bob"]}
 *
 * The identity is the authenticated consumer's name, or else the subject an
 * authentication policy set without a consumer (a JWT's). No identity: 401
 * (the chain lacks an authentication policy before this one, or it let an
 * anonymous request through). Named in `deny`: 403. With `allow`, absent
 * from it: 403. Lists are checked once at load; a name that is no consumer
 * of the set is a warning only (a JWT subject may be meant).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "set_int.h"
#include "stats.h"

/* Most names in each list. */
#define ACL_MAX_NAMES 10000

struct acl {
    char *name; /* the definition's, for its denial counts */
    char **allow, **deny;
    size_t nallow, ndeny;
    bool has_allow;
};

static void acl_free(void *p)
{
    struct acl *a = p;
    if (!a)
        return;
    gw__pol_strv_free(a->allow, a->nallow);
    gw__pol_strv_free(a->deny, a->ndeny);
    free(a->name);
    free(a);
}

static int read_list(struct jpos_diags *d, const struct jpos_val *v, const struct gw_pol_env *env,
                     char ***out, size_t *n)
{
    int r = gw__pol_strv_start(d, v, ACL_MAX_NAMES, "names", out, n);
    if (r <= 0)
        return r;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, v);
    while (jpos_iter_next(&it, &m)) {
        const char *s;
        size_t len;
        if (!jpos_string(d, &m, 1024, &s, &len))
            continue;
        if (len == 0) {
            jpos_err(d, &m, "an empty name");
            continue;
        }
        bool known = false;
        for (size_t i = 0; i < env->nconsumers && !known; i++)
            known = strcmp(env->consumers[i].name, s) == 0;
        if (!known) {
            const char *names[64];
            size_t k = 0;
            for (; k < env->nconsumers && k < 64; k++)
                names[k] = env->consumers[k].name;
            const char *hint = jpos_suggest(s, names, k);
            if (hint)
                jpos_warn(d, &m,
                          "\"%s\" is no consumer of the policies directory; did you mean "
                          "\"%s\"? (a subject without a consumer, from a JWT, may be meant)",
                          s, hint);
        }
        if (!((*out)[(*n)++] = strdup(s)))
            return -ENOMEM;
    }
    return 0;
}

static int acl_compile(struct jpos_diags *d, const struct jpos_val *obj,
                       const struct gw_pol_env *env, void **state)
{
    static const char *const keys[] = {"name", "type", "allow", "deny", NULL};
    size_t before = d->nerrors;
    struct acl *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    int r = 0;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, obj);
    while (r == 0 && jpos_iter_next(&it, &m)) {
        if (strcmp(m.key, "type") == 0)
            continue;
        if (strcmp(m.key, "name") == 0) {
            /* Checked by the set; kept for the denial counts. */
            const char *name = json_string_value(m.v);
            if (name && !a->name && !(a->name = strdup(name)))
                r = -ENOMEM;
        } else if (strcmp(m.key, "allow") == 0) {
            a->has_allow = true;
            r = read_list(d, &m, env, &a->allow, &a->nallow);
        } else if (strcmp(m.key, "deny") == 0) {
            r = read_list(d, &m, env, &a->deny, &a->ndeny);
        } else {
            jpos_unknown(d, &m, "acl policy", keys);
        }
    }
    if (r == 0 && d->nerrors != before)
        r = -EINVAL;
    if (r < 0) {
        acl_free(a);
        return r;
    }
    *state = a;
    return 0;
}

static bool listed(char *const *v, size_t n, const char *who)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], who) == 0)
            return true;
    return false;
}

static int acl_run(void *state, struct gw_pol_req *rq)
{
    const struct acl *a = state;
    const char *who = rq->consumer ? rq->consumer->name : rq->subject;
    if (!who) {
        gw_pol_count_denial(a->name, "unauthenticated");
        return gw_pol_refuse(rq, 401, "authentication required", NULL, 0);
    }
    if (listed(a->deny, a->ndeny, who) || (a->has_allow && !listed(a->allow, a->nallow, who))) {
        gw_pol_count_denial(a->name, "forbidden");
        return gw_pol_refuse(rq, 403, "not allowed", NULL, 0);
    }
    return GW_POL_NEXT;
}

static json_t *acl_describe(const void *state)
{
    const struct acl *a = state;
    json_t *o = json_object(), *allow = json_array(), *deny = json_array();
    for (size_t i = 0; i < a->nallow; i++)
        json_array_append_new(allow, json_string(a->allow[i]));
    for (size_t i = 0; i < a->ndeny; i++)
        json_array_append_new(deny, json_string(a->deny[i]));
    if (a->has_allow)
        json_object_set_new(o, "allow", allow);
    else
        json_decref(allow);
    json_object_set_new(o, "deny", deny);
    return o;
}

const struct gw_pol_kind gw__pol_kind_acl = {
    .type = "acl",
    .compile = acl_compile,
    .free = acl_free,
    .run = acl_run,
    .describe = acl_describe,
};
