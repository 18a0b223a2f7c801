/* date.c: the Date field (RFC 9110 §6.6.1) the gateway writes on its own
 * answers and on relayed responses whose origin sent none.
 *
 * The value is an IMF-fixdate (§5.6.7), which changes once a second, so each
 * thread keeps the text of the current second and formats it again only
 * when the second has moved on: a head writer pays for a time() call and a
 * compare, never for formatting. The cache is per thread (no lock, no
 * atomics): a scheduler thread writes many heads a second, and two threads
 * formatting the same second each once costs nothing worth sharing. The
 * conversion is done here rather than with gmtime_r/strftime so that no
 * locale or time zone state is touched.
 */
#include "gw/http1.h"

#include <string.h>
#include <time.h>

struct date_cache {
    int64_t sec; /* the second `text` spells; -1 before the first call */
    char text[GW_HTTP_DATE_LEN + 1];
    uint64_t formats;
};

static _Thread_local struct date_cache cache = {.sec = -1};

/* Writes `pre`, then v in exactly `width` decimal digits; returns the end. */
static char *put_digits(char *p, const char *pre, int64_t v, int width)
{
    while (*pre)
        *p++ = *pre++;
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

void gw_http_date_format(int64_t unix_sec, char out[GW_HTTP_DATE_LEN + 1])
{
    static const char wday[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t days = unix_sec / 86400, rem = unix_sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    /* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm; the
     * era is 400 years, which repeat exactly in the Gregorian calendar). */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    int64_t wd = days % 7;
    if (wd < 0)
        wd += 7;
    /* IMF-fixdate has a four-digit year: clamp what cannot be spelled. */
    if (y < 0)
        y = 0;
    if (y > 9999)
        y = 9999;
    char *p = out;
    memcpy(p, wday[wd], 3);
    p = put_digits(p + 3, ", ", 0, 0);
    p = put_digits(p, "", d, 2);
    *p++ = ' ';
    memcpy(p, mon[m - 1], 3);
    p = put_digits(p + 3, " ", y, 4);
    p = put_digits(p, " ", rem / 3600, 2);
    p = put_digits(p, ":", rem / 60 % 60, 2);
    p = put_digits(p, ":", rem % 60, 2);
    memcpy(p, " GMT", 5);
}

const char *gw_http_date_now(void)
{
    int64_t now = (int64_t)time(NULL);
    if (now != cache.sec) {
        gw_http_date_format(now, cache.text);
        cache.sec = now;
        cache.formats++;
    }
    return cache.text;
}

uint64_t gw_http_date_formats(void)
{
    return cache.formats;
}
