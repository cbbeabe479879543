/* lg_stats.h - counters and the latency histogram of certstream-loadgen.
 * Everything is flat (no pointers) so that worker processes can write
 * their results into a shared mapping that the parent sums. */
#ifndef CS_LG_STATS_H
#define CS_LG_STATS_H

#include <stdint.h>
#include <stdio.h>

/* 1 us buckets up to 100 ms, then buckets 1% wide up to ~16 min. */
#define LG_HIST_LIN 100000
#define LG_HIST_LOG 1000
#define LG_HIST_STEP 1.01

struct lg_hist {
    uint64_t n;
    uint64_t max_us;
    uint64_t sum_us;
    uint64_t b[LG_HIST_LIN + LG_HIST_LOG];
};

void lg_hist_add(struct lg_hist *h, int64_t us);
void lg_hist_merge(struct lg_hist *to, const struct lg_hist *from);
/* q in [0,1]; value in microseconds (lower edge of the bucket). */
double lg_hist_quantile(const struct lg_hist *h, double q);

/* Disconnect and failure reasons. */
enum lg_reason {
    LG_R_CLOSE_1000 = 0, LG_R_CLOSE_1001, LG_R_CLOSE_1006, LG_R_CLOSE_1008, LG_R_CLOSE_1011,
    LG_R_CLOSE_OTHER, LG_R_SSE_END, LG_R_EOF, LG_R_ERROR, LG_R_PROTOCOL, LG_R_STALLED_DROPPED,
    /* failures before the stream opened */
    LG_R_CONNECT, LG_R_TIMEOUT, LG_R_HTTP_401, LG_R_HTTP_404, LG_R_HTTP_429, LG_R_HTTP_503,
    LG_R_HTTP_OTHER, LG_R_HANDSHAKE_EOF, LG_R_HANDSHAKE_BAD,
    LG_R_COUNT
};
extern const char *const lg_reason_name[LG_R_COUNT];

/* One class of clients: normal, slow, stalled, or the libwebsockets sample. */
struct lg_class {
    uint64_t clients;       /* clients of this class started */
    uint64_t established;   /* handshakes completed */
    uint64_t failed;        /* never established */
    uint64_t disconnected;  /* established, then lost before the end */
    uint64_t msgs_total;    /* messages over the whole run */
    uint64_t bytes_total;   /* payload bytes over the whole run */
    uint64_t msgs;          /* messages inside the measured window */
    uint64_t bytes;         /* payload bytes (message bodies) inside the window */
    uint64_t wire_bytes;    /* bytes read from sockets inside the window */
    uint64_t heartbeats;
    uint64_t pings;
    uint64_t no_stamp;      /* certificate messages without a "seen" found */
    uint64_t seen_ms;       /* latencies from a non-benchmark "seen" (millisecond precision) */
    uint64_t compressed;    /* permessage-deflate messages (counted, not inflated or checked) */
    uint64_t unparsed;      /* certificate messages without cert_index/source url,
                               or (with --corpus) an entry the corpus lacks */
    uint64_t out_of_order;  /* cert_index not above the last one for its log */
    uint64_t loop_restarts; /* cert_index fell back to this client's first pass */
    uint64_t gaps;          /* entries of a log skipped (needs --corpus) */
    uint64_t sse_id_back;   /* SSE id not above the previous one (ids must rise) */
    uint64_t reconnects;    /* --reconnect: connections closed by the client to open a new one */
    uint64_t reasons[LG_R_COUNT];
    struct lg_hist lat;
};

enum { LG_CLASS_NORMAL = 0, LG_CLASS_SLOW, LG_CLASS_STALLED, LG_CLASS_LWS, LG_CLASS_COUNT };
extern const char *const lg_class_name[LG_CLASS_COUNT];

/* What one worker process reports. */
struct lg_report {
    double window_s;        /* length of the measured window */
    double cpu_s;           /* user+system CPU inside the window */
    double cpu_total_s;     /* over the whole run */
    double ramp_s;          /* time until every connection was resolved */
    uint64_t lws_sample_disabled;
    uint64_t ramp_unresolved; /* clients not yet open or failed when the window opened */
    /* Rates inside the window, per class; summed across workers. */
    double msg_rate[LG_CLASS_COUNT];
    double byte_rate[LG_CLASS_COUNT];
    struct lg_class cls[LG_CLASS_COUNT];
};

void lg_class_merge(struct lg_class *to, const struct lg_class *from);
void lg_report_merge(struct lg_report *to, const struct lg_report *from);

#endif
