/* ackstore.c - see ackstore.h. A second file of the position store's format
 * (shm/positions.h), reused rather than another format: the same row per log
 * URL, crash behaviour and locking. */
#include "nats/ackstore.h"

#include "common/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static struct positions *g_store;   /* opened by the supervisor, inherited by nats[0] */
static bool g_applied;               /* positions moved back once: only at start (fresh ring) */

/* publisher: each log_id's row, checked against the log's URL */
static struct position_row *g_rows[STATS_MAX_LOGS];
static uint64_t g_snap[STATS_MAX_LOGS];

int ackstore_open(const struct config *cfg)
{
    const char *sf = cfg->ct_log.state_file;
    if (!cfg->nats.publish || !sf || !*sf)
        return 0;
    char path[4200], err[4608];
    if (snprintf(path, sizeof path, "%s.nats-acked", sf) >= (int)sizeof path) {
        log_error("state file path too long: %s", sf);
        return -1;
    }
    bool created = false;
    g_store = positions_open(path, 30000, &created, err, sizeof err);
    if (!g_store) {
        log_warn("NATS acknowledged positions: %s; a restart after losing this machine may skip "
                 "entries JetStream did not acknowledge", err);
        return -1;
    }
    if (created)
        log_info("NATS acknowledged positions: %s created", path);
    return 0;
}

struct positions *ackstore_positions(void)
{
    return g_store;
}

void ackstore_close(void)
{
    if (g_store)
        positions_close(g_store);
    g_store = NULL;
}

void ackstore_apply(struct positions *pos, struct stats *stats)
{
    if (!g_store || !pos)
        return;
    unsigned n = stats_log_count(stats);
    for (unsigned i = 0; i < n; i++) {
        struct stats_log *sl = stats_log(stats, i);
        if (!sl || !sl->url[0])
            continue;
        struct position_row *p = positions_row(pos, sl->url, false);
        struct position_row *a = positions_row(g_store, sl->url, true);
        if (!a || !position_known(p))
            continue;
        uint64_t have = position_next(p), acked = position_next(a);
        if (!position_known(a)) {
            /* first time this log is published from here (nats.publish just
             * turned on: a log started with this store open has its start
             * recorded in it by the ingest process): nothing of it is in
             * the ring yet */
            position_store_size(a, position_size(p));
            position_store(a, have);
        } else if (!g_applied && acked < have) {
            log_warn("%s: resuming at index %llu, the last one JetStream acknowledged, rather than %llu: "
                     "entries %llu..%llu were ingested but not acknowledged before the server stopped "
                     "(they are published again; the duplicate window drops those JetStream had)",
                     sl->name[0] ? sl->name : sl->url, (unsigned long long)acked, (unsigned long long)have,
                     (unsigned long long)acked, (unsigned long long)have - 1);
            position_store(p, acked);
            sl->next_index = acked;
        } else if (acked > have) {
            /* the position store was moved back (ct_log.position_ahead, an
             * operator): follow it */
            position_store(a, have);
        }
    }
    g_applied = true;
}

static struct position_row *row_of(struct stats *stats, uint32_t log_id)
{
    if (!g_store || log_id >= STATS_MAX_LOGS)
        return NULL;
    struct stats_log *sl = stats_log(stats, log_id);
    if (!sl || !sl->url[0])
        return NULL;
    struct position_row *r = g_rows[log_id];
    if (!r || strcmp(r->url, sl->url) != 0)
        r = g_rows[log_id] = positions_row(g_store, sl->url, false);
    return r;
}

void ackstore_note(struct stats *stats, uint32_t log_id, uint64_t next)
{
    struct position_row *r = row_of(stats, log_id);
    if (r && next > position_next(r))
        position_store(r, next);
}

void ackstore_caught_up_read(struct stats *stats)
{
    unsigned n = stats_log_count(stats);
    for (unsigned i = 0; i < n && i < STATS_MAX_LOGS; i++) {
        struct stats_log *sl = stats_log(stats, i);
        g_snap[i] = sl ? __atomic_load_n(&sl->next_index, __ATOMIC_ACQUIRE) : 0;
    }
}

void ackstore_caught_up_commit(struct stats *stats)
{
    unsigned n = stats_log_count(stats);
    for (unsigned i = 0; i < n && i < STATS_MAX_LOGS; i++)
        if (g_snap[i])
            ackstore_note(stats, i, g_snap[i]);
}

void ackstore_sync(void)
{
    if (g_store && positions_sync(g_store) != 0)
        log_warn("NATS acknowledged positions: msync: %s", strerror(errno));
}
