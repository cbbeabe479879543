/* replay.h - the replay source: publishes recorded CT entries into the ring at
 * a fixed rate through the same pipeline as live ingest. For demos, offline
 * use, tests and benchmarks (docs/operations.md).
 *
 * The supervisor opens the file once, before it forks: a bad file is refused
 * before anything starts, the logs are registered for /health/deep, and the
 * replay process inherits the decoded entries through fork. */
#ifndef CS_REPLAY_H
#define CS_REPLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/config.h"
#include "shm/ring.h"
#include "shm/stats.h"

struct replay_source;          /* the decoded file: entries and their logs */

/* Reads a get-entries response ({"entries":[...]}, replayed as the log
 * "Replay" with indexes from 0) or a golden corpus ([{log_name, log_url,
 * cert_index, leaf_input, extra_data}, ...]). NULL with err filled when the
 * file cannot be read or is neither. */
struct replay_source *replay_open(const char *file, char *err, size_t errlen);
void replay_close(struct replay_source *src);
size_t replay_count(const struct replay_source *src);

/* Fills the stats per-log table with the file's logs (supervisor, before fork). */
void replay_register_logs(const struct replay_source *src, struct stats *stats);

struct replay_params {
    const struct config *cfg;
    struct ring *ring;
    struct stats *stats;
    unsigned producer_id;     /* ring claim slot */
    unsigned stats_slot;
    const struct replay_source *src;
    double rate;              /* entries per second */
    bool loop;                /* start again at the end */
    bool bench_stamp;         /* seen = ring commit time, microseconds */
};

/* Runs until SIGTERM/SIGINT (idle after the last entry without loop). */
int replay_run(const struct replay_params *p);

#endif
