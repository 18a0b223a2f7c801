/* resp_wire.h: whether a policy's answer fields (rq->resp) may go on a
 * relayed response unchecked, as the proxy sends them (gw_http_edits
 * .checked, policy.h's gw_pol_resp_add): written on an upstream's response
 * with and without the check, the two heads must be the same bytes. A
 * field the check would drop (a CR or LF in its value, a name that is no
 * token or a protected one) makes them differ, or, in a debug build,
 * aborts the checked write. For the kinds' tests. */
#ifndef TEST_RESP_WIRE_H
#define TEST_RESP_WIRE_H

#include <stdbool.h>
#include <string.h>

#include "gw/http1.h"
#include "policy/policy.h"

static inline bool resp_fields_need_no_check(const struct gw_pol_req *rq)
{
    /* With a Date of the upstream's, which is kept: no clock in the heads. */
    static const char up[] =
        "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n";
    char out[2][4096];
    size_t n[2] = {0, 0};
    for (int checked = 0; checked < 2; checked++) {
        struct gw_http_parser *p;
        if (gw_http_parser_new(&p, GW_HTTP_RESPONSE, NULL) < 0)
            return false;
        size_t used;
        struct gw_http_event ev;
        int r = gw_http_parser_feed(p, up, sizeof up - 1, &used, &ev);
        gw_http_parser_free(p);
        if (r < 0 || ev.type != GW_HTTP_EV_HEAD)
            return false;
        struct gw_http_edits e = {.add = rq->resp, .nadd = rq->nresp, .checked = checked};
        enum gw_http_out_framing fr;
        bool ka;
        r = gw_http_response_head_write_edited(ev.head, NULL, "rid", true, &e, out[checked],
                                               sizeof out[checked], &n[checked], &fr, &ka);
        gw_http_head_free(ev.head);
        if (r < 0)
            return false;
    }
    return n[0] == n[1] && memcmp(out[0], out[1], n[0]) == 0;
}

#endif
