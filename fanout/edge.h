/* edge.h - the network edge of a fanout worker: who the client really is
 * (PROXY header, X-Forwarded-For / X-Real-IP from trusted proxies), the
 * allow-lists, the rate limit on new connections, exact per-address
 * connection limits (shm/addrtable.h), and TLS (fanout/tls.h). The rest of
 * fanout/ calls in at a few points: accept, the first bytes of a
 * connection, each request, stream admission, every read and write, and
 * teardown. See docs/operations.md. */
#ifndef CS_FANOUT_EDGE_H
#define CS_FANOUT_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/cidr.h"

struct conn;
struct worker;
struct http_request;
struct fanout_params;
struct tls_conn;
struct tls_server;
struct addrtable;
struct ratelimit;
struct event;

/* the worker's edge state (edge.c sets it up; edge_io.c reads it) */
struct edge_worker {
    struct addrtable *at;
    struct ratelimit *rl;
    struct cidr_list trusted, streams_allow, metrics_allow;
    struct tls_server *tls;        /* NULL: the main listener is plain */
    int plain_fd;                  /* tls.plain_port listener, or -1 */
    struct event *plain_ev, *hup_ev;
    struct accesslog *alog;        /* access_log.enabled, else NULL */
    struct event *alog_ev;         /* flushes the access log once a second */
};

/* per-connection state, a member of struct conn */
struct conn_edge {
    uint8_t addr[16];          /* the real client (cidr.h form): limits, lists, logs */
    uint8_t peer[16];          /* the TCP peer, or the PROXY header's source */
    uint8_t flags;             /* EF_* */
    uint32_t entry;            /* shm/addrtable entry held (EF_ADDR_HELD) */
    uint32_t requests;         /* requests seen on this connection */
    uint8_t *pbuf;             /* a PROXY header split over segments, so far */
    uint16_t pbuf_len;
    struct tls_conn *tls;      /* NULL: plain */
    /* for the access log (fanout/accesslog.h); counted at each write, not
     * per message */
    uint64_t start_ms;         /* accepted (monotonic) */
    uint64_t sent;             /* bytes written (before TLS) */
    uint64_t msgs;             /* certificate messages delivered */
    char *req;                 /* "METHOD target" of the last request (access log on) */
    uint16_t status;           /* of the last response, 0 until it is written */
    uint16_t ws_close;         /* WebSocket close code sent, 0 if none */
    uint8_t end;               /* EDGE_END_*: why the connection ended, 0 until known */
};

enum {
    EDGE_END_DONE = 1,         /* the server finished the response or the close handshake */
    EDGE_END_CLIENT,           /* the client closed (EOF, or its WebSocket Close) */
    EDGE_END_SLOW,             /* dropped as too slow */
    EDGE_END_SHUTDOWN,         /* the worker stopped or was replaced */
    EDGE_END_TIMEOUT,          /* request, idle or closing timeout */
    EDGE_END_ERROR,            /* socket, TLS or protocol error */
};
/* the close code a WebSocket Close we send carries (pump.c's ws_close);
 * echo: the client's Close is answered */
void edge_note_ws_close(struct conn *c, uint16_t code, bool echo);

#define EF_PROXY_WAIT 0x01     /* the PROXY header has not arrived yet */
#define EF_ADDR_HELD  0x02

/* worker setup/teardown; -1 if it cannot start (bad TLS files, no plain port) */
int edge_worker_init(struct worker *w, const struct fanout_params *p);
void edge_worker_free(struct worker *w);
/* After w->cfg changed in place (a reload): the CIDR lists are read again
 * (all or nothing; -1 keeps the old ones). Limits and the rate are read
 * from w->cfg at each use; TLS files are re-read on SIGHUP (on_hup). */
int edge_worker_reload(struct worker *w);
/* drain (replaced worker): take what is queued on the extra listener, then
 * close it */
void edge_worker_drain(struct worker *w);
/* stop accepting on the edge's extra listener (tls.plain_port) */
void edge_worker_stop(struct worker *w);

/* accept: false = refuse (the caller closes fd). from_tls_listener: the main
 * listener while TLS is on. */
bool edge_accept(struct worker *w, int fd, const struct sockaddr *peer);
/* a new conn: fills c->edge (and starts TLS on the TLS listener). -1: out of
 * memory (the caller frees c) */
int edge_conn_start(struct conn *c, bool tls);
/* before the write side is shut: TLS close_notify */
void edge_shutdown(struct conn *c);
/* teardown: releases what the edge holds for c (limits, TLS) */
void edge_conn_free(struct conn *c);

/* After the request head: the real address, allow-lists, rate limit.
 * false: refused, the answer is sent. */
bool edge_request(struct conn *c, const struct http_request *req);
/* Stream admission: 0, 429 (total or per-address limit) or 503 (address
 * table full). Counts the rejection. */
int edge_limit_acquire(struct conn *c);

/* I/O of a connection: TLS or the socket. Same contract as recv/writev
 * (-1 with errno EAGAIN when nothing can move now). edge_recv first reads
 * the PROXY header when one is due (-1 with EPROTO if it is bad). */
ssize_t edge_recv(struct conn *c, void *buf, size_t n);
ssize_t edge_writev(struct conn *c, const struct iovec *iov, int niov);
/* TLS: encrypted bytes still waiting for the socket. */
bool edge_out_pending(const struct conn *c);
/* TLS: decrypted bytes already read from the socket and waiting for us. */
bool edge_in_pending(const struct conn *c);

/* /metrics families of the edge (om: OpenMetrics names, docs/monitoring.md) */
struct jbuf;
void edge_metrics(struct worker *w, struct jbuf *b, bool om);

#endif
