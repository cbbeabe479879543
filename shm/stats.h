/* stats.h - shared counters, per-log state and connection accounting.
 *
 * One shared region created by the supervisor before fork. Each process owns
 * one slot of counters and writes only its own slot (relaxed atomics); readers
 * sum all slots, so any fanout worker can answer /metrics and /health/deep for
 * the whole server. Gauges (open connections) are counters that a process
 * increments and decrements in its own slot; a dead process's slot is zeroed
 * by the supervisor (stats_slot_reset) so its clients stop counting.
 *
 * Connection limits: each slot counts its own connections, in total and per
 * IP bucket (a hash of the address; a collision makes the limit stricter,
 * never looser); a limit is checked against the sum over all slots, so it
 * holds across workers and a dead worker's connections go with its slot. */
#ifndef CS_STATS_H
#define CS_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "shm/roles.h"

struct stats;  /* opaque mapping */

enum stat_id {
    /* fanout */
    ST_MSG_SENT_FULL, ST_MSG_SENT_LITE, ST_MSG_SENT_DOMAINS,   /* messages delivered to clients */
    ST_BYTES_SENT,
    ST_CONN_WS_FULL, ST_CONN_WS_LITE, ST_CONN_WS_DOMAINS,     /* gauges */
    ST_CONN_SSE_FULL, ST_CONN_SSE_LITE, ST_CONN_SSE_DOMAINS,  /* gauges */
    ST_CONN_ACCEPTED, ST_CONN_REJECTED_LIMIT, ST_AUTH_FAILURES,
    ST_SLOW_DISCONNECTS, ST_HTTP_REQUESTS, ST_HTTP_BAD_REQUESTS,
    ST_WS_PROTOCOL_ERRORS, ST_IDLE_DISCONNECTS,
    /* ingest */
    ST_ENTRIES_PUBLISHED, ST_PARSE_FAILURES, ST_DEDUP_DROPPED,
    ST_CT_REQUESTS, ST_CT_REQUEST_FAILURES,
    ST_ENTRIES_SKIPPED_UNDECODABLE,   /* bad base64/field or tile data, after the refetches */
    ST_ENTRIES_SKIPPED_UNPARSEABLE,   /* decoded, but the certificate cannot be rendered */
    ST_ANSWERS_REFETCHED,             /* answers asked again because entries did not decode */
    ST_POSITION_AHEAD,                /* saved position beyond the log's first tree head */
    ST_TREE_SIZE_SHRANK,              /* tree heads smaller than one seen before (ignored) */
    ST_ANSWERS_TOO_LARGE,             /* answers over ct_log.max_response_bytes */
    ST_INFLIGHT_BUDGET_HITS,          /* answers dropped: ct_log.max_inflight_bytes in use */
    ST_TILES_VERIFIED,                /* data tiles proven against a checkpoint */
    ST_TILE_VERIFY_FAILURES,          /* data tiles that did not verify (alarm) */
    ST_ISSUER_CACHE_SIZE,                                     /* gauge */
    ST_LOGS_REFUSED,                  /* gauge: logs refused by expected_log_id */
    /* supervisor */
    ST_CHILD_RESTARTS, ST_WORKER_PANICS, ST_INGEST_RESTARTS,
    /* fanout stream features: gauges, then counters */
    ST_FILTERS_DISTINCT, ST_CLIENTS_FILTERED, ST_CLIENTS_DEFLATE,        /* gauges */
    ST_FILTER_EVALUATIONS, ST_FILTER_MATCHES, ST_FILTER_REJECTED, ST_FILTER_REGEX_LIMIT,
    ST_DEFLATE_NEGOTIATED, ST_DEFLATE_MESSAGES,
    /* permessage-deflate with the stream's shared context (fanout/zchain.c) */
    ST_CLIENTS_DEFLATE_SHARED,                                /* gauge */
    ST_DEFLATE_CHAINED_FRAMES,        /* frames compressed into a worker's shared context */
    /* frames compressed alone (fanout/zalone.c): taken from a worker's cache, made */
    ST_DEFLATE_ALONE_HITS, ST_DEFLATE_ALONE_COMPRESSED,
    ST_COUNT
};

/* Why a child was restarted. Per-role rows are indexed by enum proc_role
 * (shm/roles.h), ROLE_NREPORTED of them. */
enum stats_exit_cause { STATS_EXIT_CLEAN = 0, STATS_EXIT_ERROR, STATS_EXIT_SIGNAL, STATS_NCAUSES };
const char *stats_cause_name(unsigned cause);

/* Why a request to a CT log failed (per-log failure counters). */
enum stats_fail_reason {
    STATS_FAIL_TIMEOUT = 0,   /* no answer within ct_log.request_timeout_secs */
    STATS_FAIL_NETWORK,       /* connect / TLS / transfer error */
    STATS_FAIL_HTTP_STATUS,   /* an HTTP status other than 200 and 429 */
    STATS_FAIL_RATE_LIMITED,  /* 429 */
    STATS_FAIL_MALFORMED,     /* the answer did not parse or verify */
    STATS_FAIL_TOO_LARGE,     /* the answer exceeded the size limit */
    STATS_NFAIL
};
const char *stats_fail_name(unsigned reason);

#define STATS_MAX_SLOTS 128
#define STATS_MAX_LOGS 256
#define STATS_IP_BUCKETS 65536

enum log_health { LOG_HEALTH_UNKNOWN = 0, LOG_HEALTHY, LOG_DEGRADED, LOG_UNHEALTHY };

/* Per-log state, written by the log's ingest process. */
struct stats_log {
    char name[128];
    char url[256];
    uint64_t tree_size;          /* last seen STH / checkpoint size */
    uint64_t next_index;         /* next entry to fetch */
    uint64_t last_success_ms;    /* wall clock of last good response */
    uint32_t health;             /* enum log_health */
    uint32_t consecutive_failures;
    uint64_t entries;            /* entries published from this log */
    char reason[96];             /* why not healthy ("" = the failure streak says it) */
    /* Written by the supervisor when the log set is built. */
    char operator_name[64];
    uint32_t kind;               /* 0 RFC 6962, 1 static-ct-api (tiled) */
    /* Written by the log's ingest process (relaxed atomics; stats_log_add). */
    uint64_t head_timestamp_ms;  /* STH timestamp; for a checkpoint, when it was fetched */
    uint64_t position_timestamp_ms; /* log timestamp of the last entry processed */
    uint64_t requests;           /* HTTP requests made to the log */
    uint64_t failures[STATS_NFAIL];
    uint64_t retries;            /* requests sent again after a failure */
    uint64_t parse_failures;     /* entries that could not be rendered */
    uint64_t duplicates;         /* entries dropped as already sent */
    uint64_t tiles_fetched;      /* data tiles received (static-ct-api) */
    uint64_t entries_parsed;     /* tile entries rendered (static-ct-api) */
    uint64_t checkpoint_errors;  /* checkpoints that failed to fetch, parse or verify */
};

/* Scale-out over NATS JetStream (nats/, docs/scale-out.md): written by the
 * one NATS process of the server (publisher on an ingest node, consumer on an
 * edge node), read by fanout for /metrics and /health/deep and by the
 * producers for back-pressure. In shared memory so that it outlives a
 * restart of the NATS process: the publisher resumes from ring_acked. */
enum stats_nats_role { NATS_ROLE_NONE = 0, NATS_ROLE_PUBLISHER = 1, NATS_ROLE_CONSUMER = 2 };
struct stats_nats {
    _Atomic uint32_t role;             /* enum stats_nats_role */
    _Atomic uint32_t connected;        /* 1 while the NATS connection is up */
    _Atomic uint64_t ring_acked;       /* publisher: ring position below which every record is acknowledged */
    _Atomic uint64_t gate_bytes;       /* publisher: producers pause while tail - ring_acked exceeds this */
    _Atomic uint64_t stream_seq;       /* last stream sequence acknowledged (publisher) / put in the ring (consumer) */
    _Atomic uint64_t lag_msgs;         /* publisher: records in the ring not yet acknowledged; consumer: stream messages not yet consumed */
    _Atomic uint64_t lag_ms;           /* age of the oldest of those */
    _Atomic uint64_t published;        /* messages acknowledged as new */
    _Atomic uint64_t duplicates;       /* publishes JetStream dropped as duplicates (another ingest node, or a retry) */
    _Atomic uint64_t publish_errors;   /* failed or timed-out publish batches (retried) */
    _Atomic uint64_t consumed;         /* messages put in the ring */
    _Atomic uint64_t redeliveries;     /* messages delivered more than once */
    _Atomic uint64_t missed;           /* stream messages skipped: gone from the stream (retention) before consumed */
    _Atomic uint64_t bad_messages;     /* messages that are not certstream entries */
    _Atomic uint64_t disconnects;      /* NATS connection losses */
    /* consumer: the last stream sequence in this server's ring, and the one
     * being published (with its ring position), so that a restarted consumer
     * process neither repeats nor skips one in the same ring */
    _Atomic uint64_t ring_seq;
    _Atomic uint64_t ring_pending_seq;
    _Atomic uint64_t ring_pending_pos;
    _Atomic uint64_t backfilled;       /* consumer: entries before its position put in a fresh ring (resume) */
    _Atomic uint32_t ready;            /* consumer: the ring is filled; stream clients are served */
    _Atomic uint64_t lag_limit_ms;     /* nats.max_lag_secs, for /health/deep */
};

/* Relaxed atomic add / store on a field of a shared per-log row. */
static inline void stats_log_add(uint64_t *field, uint64_t n)
{
    __atomic_add_fetch(field, n, __ATOMIC_RELAXED);
}
static inline void stats_log_store(uint64_t *field, uint64_t v)
{
    __atomic_store_n(field, v, __ATOMIC_RELAXED);
}
static inline uint64_t stats_log_load(const uint64_t *field)
{
    return __atomic_load_n(field, __ATOMIC_RELAXED);
}

#define STATS_RATE_SAMPLES 64

/* Server-wide values written by the supervisor (log list, state file,
 * dedup table) and read by /metrics and /health/deep. Times are Unix ms,
 * 0 = never. */
struct stats_server {
    uint64_t loglist_last_success_ms;
    uint64_t loglist_failures;
    uint64_t loglist_listed, loglist_followed, loglist_skipped;
    uint32_t loglist_configured;         /* 1: a log list URL is configured */
    uint32_t loglist_failing;            /* 1: the latest fetch of the list failed */
    uint32_t custom_logs;                /* logs configured by hand (custom/static) */
    uint64_t state_last_write_ms;
    uint64_t state_write_failures;
    uint64_t state_failing_since_ms;     /* first failure of the current streak, 0 = ok */
    uint32_t state_configured;
    uint64_t dedup_size, dedup_capacity;
    uint64_t starts[ROLE_NREPORTED];
    uint64_t restarts[ROLE_NREPORTED][STATS_NCAUSES];
    uint64_t retired_cpu_us[ROLE_NREPORTED]; /* CPU time of processes already reaped */
    /* Once a second, totals for the rates of /api/stats (slot = second % N). */
    struct stats_rate_sample {
        uint64_t ms;                     /* wall clock of the sample; 0 = none */
        uint64_t published, sent, bytes; /* entries published, messages and bytes to clients */
    } rate[STATS_RATE_SAMPLES];
};
struct stats_server *stats_server(struct stats *s);

/* Which process holds a counter slot (written by the supervisor); role: a
 * reported role (role_reported), others are ignored. */
void stats_proc_set(struct stats *s, unsigned slot, enum proc_role role, unsigned index);
void stats_proc_pid(struct stats *s, unsigned slot, int pid);   /* 0 = not running */
/* false if the slot was never given a role */
bool stats_proc_get(const struct stats *s, unsigned slot, enum proc_role *role, unsigned *index, int *pid);
/* One slot's counter (0 for an out-of-range slot or id). */
int64_t stats_slot_value(const struct stats *s, unsigned slot, enum stat_id id);

struct stats *stats_create(void);           /* supervisor, before fork */
void stats_destroy(struct stats *s);

/* Counters: slot = the calling process's slot index. */
void stats_add(struct stats *s, unsigned slot, enum stat_id id, int64_t delta);
uint64_t stats_sum(const struct stats *s, enum stat_id id);
/* Supervisor, after reaping: gauges and connections of the slot drop to zero;
 * its monotonic counters are kept (folded into a retired row) so sums never
 * go backwards. */
void stats_slot_reset(struct stats *s, unsigned slot);

/* Per-log table. */
unsigned stats_log_count(const struct stats *s);
void stats_set_log_count(struct stats *s, unsigned n);
struct stats_log *stats_log(struct stats *s, unsigned log_id);

/* Process start times and liveness for /health/deep. */
void stats_set_started(struct stats *s, uint64_t unix_secs);
uint64_t stats_started(const struct stats *s);
void stats_set_workers(struct stats *s, unsigned fanout_workers, unsigned ingest_procs);
void stats_get_workers(const struct stats *s, unsigned *fanout_workers, unsigned *ingest_procs);

/* The NATS state block (zeroed at creation). */
struct stats_nats *stats_nats(struct stats *s);
/* Producers (ingest, replay): true while the NATS publisher is too far
 * behind the ring (NATS unreachable): do not fetch or publish more now. */
bool stats_nats_gate_closed(struct stats *s, uint64_t ring_tail);
/* /health/deep: an ingest node's publisher cannot reach NATS or lags past
 * nats.max_lag_secs (an edge's state is its stream row in the per-log table). */
bool stats_nats_degraded(struct stats *s);

/* Connection limits across workers. A max of 0 means unlimited.
 * Returns true and counts the connection, or false (caller answers 429).
 * slot = the calling process's slot: its connections are counted there, so
 * stats_slot_reset() releases them when the process dies. Release with the
 * same slot and address. Addresses other than AF_INET/AF_INET6 count only
 * toward the total. */
bool stats_conn_acquire(struct stats *s, unsigned slot, const struct sockaddr *addr,
                        uint32_t max_total, uint32_t per_ip);
void stats_conn_release(struct stats *s, unsigned slot, const struct sockaddr *addr);
uint64_t stats_conn_total(const struct stats *s);

#endif
