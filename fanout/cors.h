/* cors.h - CORS preflight: the OPTIONS answer for the endpoints that pages
 * on other origins may read (cors.allowed_origins; docs/wire-format.md). */
#ifndef CS_FANOUT_CORS_H
#define CS_FANOUT_CORS_H

#include "fanout/conn.h"
#include "fanout/http_parser.h"

/* Answers an OPTIONS request: 204 with the Access-Control-Allow-* headers
 * (when its Origin is allowed) for /api/..., <stream>/example.json and
 * /latest.json; 404 for such an endpoint that is switched off; 405 for
 * every other path (streams included: browsers never preflight a
 * WebSocket upgrade, and an EventSource sends only simple requests). */
void cors_preflight(struct conn *c, const struct http_request *req);

#endif
