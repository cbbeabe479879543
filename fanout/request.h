/* request.h - reading and routing an HTTP request (request.c). */
#ifndef CS_FANOUT_REQUEST_H
#define CS_FANOUT_REQUEST_H

#include "fanout/conn.h"

/* reads from the socket; answers once the head is complete */
void request_read(struct conn *c);
/* answers a malformed, oversized or timed-out request and closes */
void request_error(struct conn *c, int status);

#endif
