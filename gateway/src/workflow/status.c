/*
 * status.c: the instance as a client sees it (status.h).
 */
#include "status.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

bool gw_wf_id_valid(const char *id, size_t len)
{
    if (len != WF_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return true;
}

int gw_wf_status_path_match(const char *status_path, const char *path, size_t len,
                            const char **rest, size_t *rest_len)
{
    size_t plen = status_path ? strlen(status_path) : 0;
    if (plen == 0 || len < plen || memcmp(path, status_path, plen) != 0)
        return 0;
    *rest = path + plen;
    *rest_len = len - plen;
    return 1;
}

void gw_wf_time_format(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&s, &tm)) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

json_t *gw_wf_status_json(const struct wf_record *r)
{
    char created[32], updated[32];
    gw_wf_time_format(r->created_ms, created);
    gw_wf_time_format(r->updated_ms, updated);
    json_t *o =
        json_pack("{s:s, s:s?, s:s?, s:b, s:s, s:s}", "id", r->id, "workflow", r->def_name, "state",
                  r->state, "terminal", r->terminal, "created", created, "updated", updated);
    if (!o || !r->terminal)
        return o;
    json_t *body = NULL;
    if (r->answer_body && r->answer_body_len) {
        json_error_t err;
        body = json_loadb(r->answer_body, r->answer_body_len, JSON_DECODE_ANY, &err);
        if (!body)
            body = json_stringn(r->answer_body, r->answer_body_len);
    }
    json_object_set_new(
        o, "result",
        json_pack("{s:i, s:o}", "status", r->answer_status, "body", body ? body : json_null()));
    return o;
}
