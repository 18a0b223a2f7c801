/* admin_double.h: what the router/upstream test double records. */
#ifndef ADMIN_DOUBLE_H
#define ADMIN_DOUBLE_H

#include <stdint.h>

extern char t_double_replaced[256]; /* last text given to gw_router_replace */
extern uint64_t t_double_rollback;  /* last version given to gw_router_rollback */

#endif
