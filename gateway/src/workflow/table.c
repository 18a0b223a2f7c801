/*
 * table.c: the workflow definitions a route table carries. The router
 * compiles the set with the routes that name its definitions and publishes
 * both together; a request reads them from the table it holds, so a
 * reload never pairs a route with a definition of another table.
 */
#include "../policy/table.h"
#include "http.h"

const struct wf_set *gw__wf_table_set(const struct route_table *t)
{
    return gw__table_wf_set(t);
}
