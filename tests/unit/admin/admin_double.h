/* admin_double.h: what the router/upstream and TLS test doubles record. */
#ifndef ADMIN_DOUBLE_H
#define ADMIN_DOUBLE_H

#include <stdint.h>

extern char t_double_replaced[256]; /* last text given to gw_router_replace */
extern uint64_t t_double_rollback;  /* last version given to gw_router_rollback */

/* Seconds before the TLS double's certificate expires (tls_double.c). */
#define T_TLS_LEFT_S 864000

#endif
