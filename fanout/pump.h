/* pump.h - the hot path (pump.c): writing what each client is owed, from
 * the ring, and the ends of a stream. */
#ifndef CS_FANOUT_PUMP_H
#define CS_FANOUT_PUMP_H

#include "fanout/conn.h"

/* Writes what the client is owed. Returns -1 if c was freed. */
int conn_flush(struct conn *c);
/* Close frame (code 0: an empty one) after anything in flight, then close. */
int ws_close(struct conn *c, uint16_t code, const char *reason);
/* SSE: end the response after anything in flight. */
int sse_end(struct conn *c);
/* New records: bring every streaming client up to the head. */
void worker_pump(struct worker *w);
/* event callbacks: a connection's write event; the worker's eventfd */
void conn_on_write(evutil_socket_t fd, short what, void *arg);
void worker_on_wake(evutil_socket_t fd, short what, void *arg);
/* fn for every streaming client of proto (PROTO_WS or PROTO_SSE), filtered
 * or not; fn may close c. */
void worker_each_stream(struct worker *w, int proto, void (*fn)(struct conn *c, void *arg), void *arg);
/* worker_publish_counters plus the filters' counters */
void worker_publish_all(struct worker *w);
/* queue a control frame for every WebSocket client and flush */
void broadcast_ws_control(struct worker *w, const uint8_t *frame, size_t n);
/* the same with a second form for permessage-deflate clients (zframe, or
 * frame when zframe is NULL) */
void broadcast_ws_message(struct worker *w, const uint8_t *frame, size_t n, const uint8_t *zframe, size_t zn);

#endif
