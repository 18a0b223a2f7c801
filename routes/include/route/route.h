/* route.h: route tables — parse, validate, compile, match. */
#ifndef ROUTE_ROUTE_H
#define ROUTE_ROUTE_H

const char *route_layer_name(void);

#endif
