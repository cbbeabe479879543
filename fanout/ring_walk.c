/* ring_walk.c - the worker's own walk of the ring: the head it has seen,
 * the positions of the last message records (lag in records, resume,
 * /latest.json, /example.json), and the per-round counters it publishes.
 * The lowest layer of fanout/: it calls nothing else in the folder. */
#include "fanout/fanout_internal.h"

#include <inttypes.h>

#include "common/log.h"

static void recent_push(struct worker *w, uint64_t pos)
{
    w->recent[w->recent_count & (w->recent_cap - 1)] = pos;
    w->recent_count++;
}

uint64_t worker_recent_n(const struct worker *w)
{
    return w->recent_count < w->recent_cap ? w->recent_count : w->recent_cap;
}

bool worker_recent_at(const struct worker *w, uint64_t back, uint64_t *pos)
{
    if (back >= worker_recent_n(w)) return false;
    *pos = w->recent[(w->recent_count - 1 - back) & (w->recent_cap - 1)];
    return true;
}

/* Message records from cursor (inclusive) to the head, found by binary search
 * over recent[] (positions only grow). A cursor older than everything known
 * counts as all of recent[]. */
uint64_t worker_records_behind(const struct worker *w, uint64_t cursor)
{
    uint64_t n = worker_recent_n(w), lo = 0, hi = n;   /* index back from newest */
    uint64_t pos;
    if (n == 0 || !worker_recent_at(w, 0, &pos) || cursor > pos) return 0;
    /* find the smallest `back` whose position is < cursor */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        worker_recent_at(w, mid, &pos);
        if (pos < cursor) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

bool worker_too_far_behind(const struct worker *w, uint64_t cursor)
{
    if (w->head <= cursor) return false;
    uint64_t bytes = config_slow_client_bytes(w->cfg), ring_bound = ring_size(w->ring) - ring_size(w->ring) / 4;
    if (w->head - cursor > (bytes < ring_bound ? bytes : ring_bound)) return true;
    return worker_lags_too_long(w, cursor);
}

bool worker_lags_too_long(const struct worker *w, uint64_t cursor)
{
    if (w->head <= cursor) return false;
    if (w->cfg->buffer_size && worker_records_behind(w, cursor) > w->cfg->buffer_size) return true;
    uint32_t secs = w->cfg->limits.slow_client_seconds;
    if (secs == 0) return false;
    /* seconds behind = the newest record's commit time - the client's
     * oldest unsent record's (both stamped by the ring at commit) */
    const struct ring_record *rec;
    enum ring_status st = ring_peek(w->ring, cursor, &rec);
    if (st == RING_EMPTY) return false;
    if (st != RING_OK) return true;   /* overwritten: certainly too far */
    uint64_t at = rec->commit_ns;
    if (ring_lapped_since(w->ring, cursor)) return true;
    return w->head_commit_ns > at && w->head_commit_ns - at > (uint64_t)secs * 1000000000u;
}

/* Advances the worker's head over newly committed records. */
void worker_scan(struct worker *w)
{
    size_t size = ring_size(w->ring);
    for (;;) {
        const struct ring_record *rec;
        enum ring_status st = ring_peek(w->ring, w->head, &rec);
        if (st == RING_EMPTY) return;
        uint64_t next = 0, commit_ns = 0;
        uint32_t kind = 0;
        if (st == RING_OK) {
            next = ring_next(rec);
            kind = rec->kind;
            commit_ns = rec->commit_ns;
        }
        if (st != RING_OK || next <= w->head || next - w->head > size ||
            ring_lapped_since(w->ring, w->head)) {
            /* this worker fell a whole ring behind (or the ring was reset):
             * start over at the live position; clients behind will be
             * found lapped on their own */
            log_warn("ring walk lost its place at %" PRIu64 "; resyncing", w->head);
            w->head = ring_start_position(w->ring);
            return;
        }
        if (kind == RING_KIND_MESSAGE) {
            recent_push(w, w->head);
            w->last_seq = w->head;
            w->head_commit_ns = commit_ns;
        }
        w->head = next;
    }
}

void worker_publish_counters(struct worker *w)
{
    for (int f = 0; f < RING_NFORMATS; f++) {
        if (w->pend_msgs[f]) {
            stats_add(w->stats, w->slot, (enum stat_id)(ST_MSG_SENT_FULL + f), (int64_t)w->pend_msgs[f]);
            w->pend_msgs[f] = 0;
        }
    }
    if (w->pend_bytes) {
        stats_add(w->stats, w->slot, ST_BYTES_SENT, (int64_t)w->pend_bytes);
        w->pend_bytes = 0;
    }
}
