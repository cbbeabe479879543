/* replay.h - the replay source: publishes recorded CT entries into the ring at
 * a fixed rate through the same pipeline as live ingest. For demos, offline
 * use, tests and benchmarks (docs/operations.md). */
#ifndef CS_REPLAY_H
#define CS_REPLAY_H

#include <stdbool.h>

#include "conf/config.h"
#include "shm/ring.h"
#include "shm/stats.h"

struct replay_params {
    const struct config *cfg;
    struct ring *ring;
    struct stats *stats;
    unsigned producer_id;     /* ring claim slot */
    unsigned stats_slot;
    const char *file;         /* get-entries response or golden corpus (JSON) */
    double rate;              /* entries per second */
    bool loop;                /* start again at the end */
    bool bench_stamp;         /* seen = ring commit time, microseconds */
};

/* Loads and checks the file (so the supervisor can refuse a bad one before it
 * forks anything). Returns the number of entries, or -1 with err filled. */
long replay_check_file(const char *file, char *err, size_t errlen);

/* Registers the file's logs in the stats per-log table (supervisor, before
 * fork), so /health/deep knows them from the start. Returns 0 or -1. */
int replay_register_logs(struct stats *stats, const char *file, char *err, size_t errlen);

/* Runs until SIGTERM/SIGINT (or the end of the file without loop). */
int replay_run(const struct replay_params *p);

#endif
