/* session.h - WebSocket and SSE sessions (session.c). */
#ifndef CS_FANOUT_SESSION_H
#define CS_FANOUT_SESSION_H

#include "fanout/conn.h"

bool stream_enabled(const struct config *cfg, enum ring_format f);
/* Upgrade (or refuse) a WebSocket request for format f; early: bytes that
 * followed the request head. */
void start_websocket(struct conn *c, const struct http_request *req, enum ring_format f,
                     const uint8_t *early, size_t early_len);
/* GET /sse streams; head_only (HEAD) answers the same head and closes. */
void start_sse(struct conn *c, const struct http_request *req, bool head_only);
/* WebSocket input. Returns -1 if c was freed. */
int ws_consume(struct conn *c, const uint8_t *p, size_t n);

#endif
