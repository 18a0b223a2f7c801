/* Placeholder translation unit so the routes layer links before it has code. */
#include "route/route.h"

const char *route_layer_name(void)
{
    return "routes";
}
