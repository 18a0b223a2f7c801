/* admin_double.h: what the router/upstream and TLS test doubles record. */
#ifndef ADMIN_DOUBLE_H
#define ADMIN_DOUBLE_H

#include <stdint.h>

extern char t_double_replaced[256]; /* last text given to gw_router_replace */
extern uint64_t t_double_rollback;  /* last version given to gw_router_rollback */
/* The table gw_router_kept_get answers as version 3 (NULL: none kept). */
extern struct route_table *t_double_kept_table;

/* Seconds before the TLS double's certificate expires (tls_double.c). */
#define T_TLS_LEFT_S 864000

#endif
