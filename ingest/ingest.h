/* ingest.h - one ingest process: follows a group of CT logs and publishes
 * every new entry, rendered, into the ring.
 *
 * libevent loop + libcurl multi-socket. One state machine per log:
 *  - RFC 6962: get-sth every poll_interval_ms; get-entries windows of
 *    batch_size, up to fetch_concurrency in flight, applied in index order
 *    (a short answer is continued from where it stopped);
 *  - static-ct-api: checkpoint every poll_interval_ms; data tiles (partial
 *    tiles at the right edge); issuers by fingerprint, cached.
 * Requests to one operator are spaced by operator_rate_limit_ms; errors back
 * off exponentially (retry_initial_delay_ms..retry_max_delay_ms), 429/503
 * honour Retry-After for the whole operator. Positions and health are kept in
 * the shared per-log table (stats_log), which the supervisor persists.
 * Details and numbers: docs/ingest.md. */
#ifndef CS_INGEST_H
#define CS_INGEST_H

#include <stddef.h>

#include "conf/config.h"
#include "ingest/loglist.h"
#include "shm/dedup.h"
#include "shm/positions.h"
#include "shm/ring.h"
#include "shm/stats.h"

struct ingest_params {
    const struct config *cfg;
    struct ring *ring;
    struct stats *stats;
    unsigned producer_id;            /* ring claim slot, < RING_MAX_PRODUCERS */
    unsigned stats_slot;             /* this process's counter slot */
    struct loglist_log *const *logs; /* the group's logs (loglist.groups[g].logs) */
    size_t n_logs;
    /* Shared dedup table (shm/dedup.h), created by the supervisor before
     * fork; NULL = no dedup. A certificate seen within its TTL (from any
     * log, any ingest process) is counted in ST_DEDUP_DROPPED, not published. */
    struct dedup *dedup;
    /* Crash-proof position store (shm/positions.h), opened by the
     * supervisor; NULL = positions only in shared memory (tests, no state
     * file). Each log's row is written after every entry it publishes. */
    struct positions *positions;
    /* NULL, or a store of the same format whose row of a log, while not yet
     * known, receives the index this process starts the log at when it has
     * no saved position, before any entry of it is published (the NATS
     * acknowledged positions, see nats/ackstore.h). */
    struct positions *start_marks;
    /* Tests only: when > 0, every message's "seen" is this value instead of
     * the wall clock, so output can be compared byte for byte. */
    double pin_seen;
};

/* Runs the group until SIGTERM or SIGINT, then returns 0. Where each log
 * starts: stats_log(log_id)->next_index when that row holds a position
 * (next_index or tree_size non-zero, as state_apply or an earlier run of
 * this group left it), else the log's current tree size; minus
 * ct_log.start_overlap either way. Returns -1 only if it cannot start
 * (no memory, no event loop). */
int ingest_run(const struct ingest_params *p);

#endif
