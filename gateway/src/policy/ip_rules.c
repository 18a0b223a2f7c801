/*
 * ip_rules.c: the `ip_rules` policy kind: which client addresses may use a
 * route, by CIDR block.
 *
 *   {"name": "office", "type": "ip_rules",
 *    "allow": ["10.0.0.0/8", "2001:db8::/32"], "deny": ["10.6.6.0/24"]}
 *
 * The address judged is the request's client (policy.h, rq->client): the
 * peer's, or behind a listener's trusted_proxies the X-Forwarded-For hop
 * the gateway believes. A client in a `deny` block is refused; with an
 * `allow` list, a client in none of its blocks is refused; both 403. Deny
 * wins over allow, so an allowed network can have holes. An IPv4-mapped
 * IPv6 client (a dual-stack listener's IPv4 client) is judged as the IPv4
 * address it carries. A client that is no IP address (a Unix socket) is in
 * no block: refused when there is an allow list.
 */
#include "ip_rules.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gw/cidr.h"
#include "policy.h"
#include "stats.h"

/* Blocks in each list: matched one by one, so bounded. */
#define IP_RULES_MAX_BLOCKS 1024

struct ip_rules {
    char *name;
    struct gw_cidr *allow, *deny;
    size_t nallow, ndeny;
    bool has_allow;
};

static void ip_rules_free(void *p)
{
    struct ip_rules *r = p;
    if (!r)
        return;
    free(r->allow);
    free(r->deny);
    free(r->name);
    free(r);
}

static int ip_rules_compile(struct jpos_diags *d, const struct jpos_val *obj,
                            const struct gw_pol_env *env, void **state)
{
    (void)env;
    static const char *const keys[] = {"name", "type", "allow", "deny", NULL};
    size_t before = d->nerrors;
    struct ip_rules *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    struct jpos_val v;
    const char *name =
        jpos_obj_get(obj, "name", &v) && json_is_string(v.v) ? json_string_value(v.v) : "ip_rules";
    int rc = (r->name = strdup(name)) ? 0 : -ENOMEM;
    bool has_deny = false;
    struct jpos_iter it;
    struct jpos_val m;
    jpos_iter_init(&it, obj);
    while (rc == 0 && jpos_iter_next(&it, &m)) {
        if (strcmp(m.key, "name") == 0 || strcmp(m.key, "type") == 0)
            continue;
        if (strcmp(m.key, "allow") == 0) {
            r->has_allow = true;
            rc = gw_cidr_list_read(d, &m, IP_RULES_MAX_BLOCKS, &r->allow, &r->nallow);
            /* An empty allow list refuses everyone: say so rather than
             * guess whether that was meant. */
            if (rc == 0 && json_is_array(m.v) && json_array_size(m.v) == 0)
                jpos_err(d, &m,
                         "an empty \"allow\" refuses every client; leave \"allow\" out "
                         "to allow all but \"deny\"");
        } else if (strcmp(m.key, "deny") == 0) {
            has_deny = true;
            rc = gw_cidr_list_read(d, &m, IP_RULES_MAX_BLOCKS, &r->deny, &r->ndeny);
        } else {
            jpos_unknown(d, &m, "ip_rules policy", keys);
        }
    }
    if (rc == 0 && !r->has_allow && !has_deny)
        jpos_err(d, obj, "an ip_rules policy needs \"allow\" or \"deny\" (lists of CIDR blocks)");
    if (rc == 0 && d->nerrors != before)
        rc = -EINVAL;
    if (rc < 0) {
        ip_rules_free(r);
        return rc;
    }
    *state = r;
    return 0;
}

bool gw__ip_rules_allow(const void *state, const char *client)
{
    const struct ip_rules *r = state;
    struct gw_ip ip;
    if (!client || gw_ip_parse(client, strlen(client), &ip) < 0)
        return !r->has_allow;
    if (gw_cidr_match(r->deny, r->ndeny, &ip))
        return false;
    return !r->has_allow || gw_cidr_match(r->allow, r->nallow, &ip);
}

static int ip_rules_run(void *state, struct gw_pol_req *rq)
{
    const struct ip_rules *r = state;
    if (gw__ip_rules_allow(state, rq->client))
        return GW_POL_NEXT;
    gw_pol_count_denial(r->name, "ip_denied");
    return gw_pol_refuse(rq, 403, "client address not allowed", NULL, 0);
}

static json_t *blocks_json(const struct gw_cidr *b, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        char buf[GW_CIDR_TEXT_MAX + 8];
        if (gw_cidr_text(&b[i], buf, sizeof buf) == 0)
            json_array_append_new(a, json_string(buf));
    }
    return a;
}

static json_t *ip_rules_describe(const void *state)
{
    const struct ip_rules *r = state;
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (r->has_allow)
        json_object_set_new(o, "allow", blocks_json(r->allow, r->nallow));
    json_object_set_new(o, "deny", blocks_json(r->deny, r->ndeny));
    return o;
}

const struct gw_pol_kind gw__pol_kind_ip_rules = {
    .type = "ip_rules",
    .compile = ip_rules_compile,
    .free = ip_rules_free,
    .run = ip_rules_run,
    .describe = ip_rules_describe,
};
