/* conn.h - connection lifecycle below the protocols (conn.c): streaming
 * lists, teardown, read re-arming, lingering close, the control-byte queue
 * and the write event, plus small helpers every layer above uses. */
#ifndef CS_FANOUT_CONN_H
#define CS_FANOUT_CONN_H

#include <errno.h>

#include "common/clock.h"
#include "fanout/fanout_internal.h"

#define READ_CHUNK 16384
#define REQUEST_SLACK 2048          /* early WebSocket bytes read along with the request */
#define CLOSING_TIMEOUT_SECS 5      /* wait for our last bytes to drain */
#define LINGER_TIMEOUT_SECS 2

/* Low 32 bits of the monotonic clock in ms: differences stay exact for 49
 * days, far longer than any gap compared here (heartbeats refresh it). */
static inline uint32_t mono_ms32(void) { return (uint32_t)mono_ms(); }

static inline struct timeval tv_secs(uint32_t s) { return (struct timeval){ .tv_sec = s, .tv_usec = 0 }; }

static inline bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

void conn_list_add(struct conn **head, struct conn *c);
void conn_list_del(struct conn **head, struct conn *c);
/* the streaming list c belongs in: its filter's, or the worker's */
struct conn **conn_list_head(struct conn *c);
/* the connection gauge a streaming client counts in */
enum stat_id conn_gauge_id(const struct conn *c);

/* Closes the socket and frees c (and stops the loop when a stopping worker
 * has no connection left). */
void conn_free(struct conn *c);
/* Re-arm the read event with new flags/timeout, keeping its callback.
 * -1: the connection was freed. */
int rearm_read(struct conn *c, short flags, const struct timeval *tv);
int rearm_read_timeout(struct conn *c, const struct timeval *tv);
/* shut the write side and drain input until EOF or timeout */
int conn_linger(struct conn *c);
/* leave the streaming list; close after what is queued */
void enter_closing(struct conn *c);
bool ctl_append(struct conn *c, const void *p, size_t n, bool may_use_reserve);
void arm_write(struct conn *c);
void disarm_write(struct conn *c);
/* wait for the next request on a kept-alive connection */
int conn_keepalive(struct conn *c);

#endif
