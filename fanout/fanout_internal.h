/* fanout_internal.h - what the files of fanout/ share: the worker and
 * connection structures, and the functions that build HTTP answers.
 * Not an interface for anything outside fanout/. */
#ifndef CS_FANOUT_INTERNAL_H
#define CS_FANOUT_INTERNAL_H

#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "common/jsonw.h"
#include "conf/config.h"
#include "fanout/edge.h"
#include "fanout/fanout.h"
#include "fanout/http_parser.h"
#include "fanout/ws_frame.h"
#include "fanout/zalone.h"
#include "fanout/zchain.h"
#include "shm/ring.h"
#include "shm/stats.h"

#ifndef IOV_MAX
#define IOV_MAX 1024   /* Linux's UIO_MAXIOV */
#endif

/* A growable byte buffer for one-shot responses (metrics, JSON). */

enum conn_state {
    CS_REQUEST = 0,   /* reading the request head */
    CS_RESPONSE,      /* writing a one-shot response, then closing */
    CS_WS,            /* streaming WebSocket */
    CS_SSE,           /* streaming SSE */
    CS_CLOSING,       /* final bytes queued (close frame, end of SSE): no more records */
    CS_LINGER,        /* write side shut; draining input until EOF or timeout */
    CS_DEEP,          /* a stream resuming from further back than the ring (deep.h) */
};

enum conn_proto { PROTO_NONE = 0, PROTO_WS = 1, PROTO_SSE = 2 };

/* conn flags */
#define CF_WRITE_ARMED  0x01  /* wev is pending */
#define CF_BLOCKED      0x02  /* the last write did not take everything: the client may be slow */
#define CF_LIMIT_HELD   0x04  /* stats_conn_acquire succeeded: release at close */
#define CF_GAUGED       0x08  /* counted in a connection gauge */
#define CF_LISTED       0x10  /* in a streaming list */
#define CF_CLOSE_AFTER  0x20  /* linger-close once everything queued is written */
#define CF_KEEPALIVE    0x40  /* the current request allows a persistent connection */
#define CF_REUSED       0x80  /* waiting for a further request on a kept-alive connection */

/* Control bytes queued per client: the 101 or SSE response head, then
 * Pong/Ping/Close/heartbeat frames. Small and fixed, never grown. The last
 * WS_CLOSE_RESERVE bytes are kept free so a Close frame always fits. */
#define CONN_CTL_CAP 384
#define WS_CLOSE_RESERVE (2 + WS_MAX_CONTROL)

struct worker;
struct filter;
struct filter_set;

struct conn {
    struct conn *next, *prev;          /* streaming list of its protocol and format */
    struct conn *all_next, *all_prev;  /* every connection of the worker */
    struct worker *w;
    int fd;
    uint8_t state, proto, fmt, flags;
    uint32_t rec_off;                  /* bytes of the record at cursor already sent */
    uint64_t cursor;                   /* ring position of the next record to send */
    uint32_t last_send;                /* monotonic ms (low 32 bits): SSE heartbeat */
    uint16_t ctl_len, ctl_off;
    bool deflate;                      /* permessage-deflate negotiated: compressed frames (zalone.h, zchain.h) */
    struct event rev, wev;
    /* request phase only (NULL afterwards) */
    char *rbuf;
    uint32_t rlen;
    uint64_t deadline_ms;
    /* one-shot response */
    char *out;
    size_t out_len, out_off;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    struct conn_edge edge;             /* network edge: real address, limits held, TLS */
    struct ws_reader rd;               /* WebSocket only */
    struct filter *filter;             /* server-side filter (filter.h), NULL: unfiltered */
    struct zchain_client zc;           /* permessage-deflate with the stream's context (zchain.h) */
    uint8_t ctl[CONN_CTL_CAP];
};

/* what a flush sends of one record */
struct flush_rec {
    uint64_t pos, next;
    uint32_t len;
};

struct certindex;

struct worker {
    struct certindex *certindex;       /* /api/cert lookups; NULL until the first */
    const struct config *cfg;
    struct ring *ring;
    struct stats *stats;
    unsigned index, slot;
    struct event_base *base;
    int listen_fd;
    struct event *listen_ev, *wake_ev, *hb_ev, *ping_ev, *tick_ev, *sig_term, *sig_int, *stop_ev,
        *accept_retry_ev;
    int wake_fd;
    bool stopping;
    const struct timeval *idle_tv;     /* common timeout for WebSocket idleness */

    struct conn *streams[3][RING_NFORMATS];   /* [proto][format] */
    struct conn *all;
    unsigned nconns;

    /* The worker's own walk of the ring: head is the position after the last
     * committed record seen; recent[] the positions of the last message
     * records (for lag in records, /latest.json, /example.json, resume). */
    uint64_t head;
    uint64_t *recent;
    uint64_t recent_count;             /* message records seen in total */
    uint32_t recent_cap;               /* power of two */
    uint64_t last_seq;                 /* seq of the newest record seen, 0 if none */
    uint64_t head_commit_ns;           /* commit_ns of that record (slow-client seconds) */

    uint64_t pend_msgs[RING_NFORMATS], pend_bytes;  /* published to stats per round */
    uint64_t pend_deflate_msgs;                     /* of those, to permessage-deflate clients */

    /* During a pump, the record walk of the previous client is reused by
     * the next one at the same cursor in the same list (the common case: all
     * caught-up clients share a cursor), so the ring is walked once per
     * wakeup and format, not once per client. */
    struct filter_set *filters;        /* interned filters (filter.h) */
    struct wsdeflate *zd;              /* heartbeats for permessage-deflate clients; made on first use */
    uint32_t deflate_clients;          /* this worker's clients with permessage-deflate */
    struct zchain *zchain;             /* compression.shared_context: chained frames; made on first use */
    struct zalone *zalone;             /* permessage-deflate frames compressed alone (zalone.h); made on first use */
    uint64_t za_hits_published, za_made_published; /* its counters as far as put in the stats region */

    bool memo_on, memo_valid, memo_more;
    uint8_t memo_proto, memo_fmt;
    const struct filter *memo_filter;
    bool memo_deflate;
    uint64_t memo_zkey;                /* zchain_walk_key of the walk (0: not chained) */
    uint64_t memo_zmark;               /* zalone_mark before the walk: its alone frames are intact while zalone_intact */
    int memo_niov, memo_nrec;
    size_t memo_total;
    uint64_t memo_from, memo_end;
    struct iovec memo_iov[IOV_MAX];
    struct flush_rec memo_recs[IOV_MAX];

    /* Fair delivery of a burst (fanout/pump.c): during a pump, each client
     * gets at most pump_quantum bytes per round and the rounds go on until
     * everyone is at the head; pump_more says a client still has more. */
    size_t pump_quantum;               /* 0 outside a pump: conn_flush's own budgets */
    bool pump_last_round, pump_more;

    /* scratch, one at a time (the worker is single-threaded) */
    struct iovec iov[IOV_MAX];
    struct flush_rec recs[IOV_MAX];
    struct http_request req;

    struct edge_worker *edge;          /* network edge (edge.c) */
};

/* fanout.c, for the edge's extra listener */
int fanout_listen_socket(const char *host, uint16_t port);
void fanout_on_accept(evutil_socket_t lfd, short what, void *arg);

/* /metrics and /health/deep (metrics.c) */
#define STATE_FAILING_DEGRADED_SECS 60   /* state file unwritable this long: degraded */
struct health_summary {
    const char *status;                  /* healthy, degraded, unhealthy */
    int http_status;                     /* 200 or 503 */
    unsigned logs_total, healthy, degraded, unhealthy;
    bool loglist_ok, state_ok;
    uint64_t state_failing_secs;
};
void health_evaluate(struct stats *s, struct health_summary *h);
void route_health_deep(struct worker *w, struct jbuf *b, int *status);
/* Prometheus text format, or OpenMetrics 1.0 when openmetrics */
void route_metrics(struct worker *w, struct jbuf *b, bool openmetrics);
bool metrics_wants_openmetrics(const struct http_request *req);

/* /api (api.c) */
void route_api_stats(struct worker *w, struct jbuf *b);
void route_api_logs(struct worker *w, struct jbuf *b);
/* 200 (the full-stream message), 400 (not a hash) or 404; b holds the body */
int route_api_cert(struct worker *w, struct http_str hash, struct jbuf *b);
/* CORS response headers for this request (cors.allowed_origins), or "" */
const char *api_cors_headers(const struct config *cfg, const struct http_request *req, char *buf, size_t n);

/* endpoints (http_routes.c) */
/* the newest message of format f, copied and checked against lapping;
 * falls back to the built-in sample */
void route_example(struct worker *w, enum ring_format f, struct jbuf *b);
void route_latest(struct worker *w, struct jbuf *b);

/* ring_walk.c */
void worker_scan(struct worker *w);
/* moves this worker's pending message/byte counts into the shared stats */
void worker_publish_counters(struct worker *w);
/* positions of message records, newest first: recent_at(w, 0) is the newest */
bool worker_recent_at(const struct worker *w, uint64_t back, uint64_t *pos);
/* how many positions recent[] holds */
uint64_t worker_recent_n(const struct worker *w);
/* message records from cursor (inclusive) to the head */
uint64_t worker_records_behind(const struct worker *w, uint64_t cursor);
/* A client at cursor is too far behind the head to keep: more than
 * limits.slow_client_seconds by commit time, more than the byte bound
 * (config_slow_client_bytes), or more than buffer_size messages when that
 * older key is set. Also true when the record at cursor is gone. */
bool worker_too_far_behind(const struct worker *w, uint64_t cursor);
/* The same without the byte bound: seconds (and buffer_size messages). */
bool worker_lags_too_long(const struct worker *w, uint64_t cursor);

/* example_sample.c */
extern const char example_sample_full[], example_sample_lite[], example_sample_domains[];
extern const size_t example_sample_len[RING_NFORMATS];

#endif
