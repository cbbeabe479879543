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
    /* supervisor */
    ST_CHILD_RESTARTS, ST_WORKER_PANICS, ST_INGEST_RESTARTS,
    ST_COUNT
};

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
};

struct stats;  /* opaque mapping */

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
