/* state.h - the state file: where each log's ingest stopped.
 *
 *   {"logs":{"<log url>":{"next_index":N,"tree_size":N}, ...}}
 *
 * The supervisor owns it: state_load at start, state_apply to seed the
 * shared per-log table (stats_log) before forking ingest processes, then
 * state_update + state_save periodically and at exit. Ingest processes never
 * touch the file; their positions live in shared memory (stats_log).
 * Saving is atomic: write to "<path>.tmp", fsync, rename, fsync the
 * directory, so a crash leaves the old or the new file, never half of one.
 * Entries for logs no longer followed are kept, so a log that leaves and
 * returns to the list resumes where it was. */
#ifndef CS_STATE_H
#define CS_STATE_H

#include <stddef.h>
#include <stdint.h>

struct loglist;
struct loglist_log;
struct stats;

struct state_entry {
    char *url;
    uint64_t next_index;
    uint64_t tree_size;
};

struct state {
    struct state_entry *v;
    size_t n, cap;
};

/* Reads path. A missing file is not an error (empty state, returns 0). A
 * file that exists but is not a valid state file returns -1 with err naming
 * the file and the problem; the caller should refuse to start rather than
 * overwrite it (docs/ingest.md). */
int state_load(const char *path, struct state *st, char *err, size_t errlen);
/* Parses state JSON from memory (state_load's core; the fuzz target). */
int state_parse(const char *json, size_t len, struct state *st, char *err, size_t errlen);

/* Atomically writes st to path. Returns 0 or -1 with err filled. */
int state_save(const char *path, const struct state *st, char *err, size_t errlen);

const struct state_entry *state_find(const struct state *st, const char *url);
/* Adds or updates url's entry. Returns 0 or -1 (out of memory). */
int state_set(struct state *st, const char *url, uint64_t next_index, uint64_t tree_size);

/* Supervisor, before forking ingest: sets the per-log table to the loglist
 * (count, name, url) and seeds next_index/tree_size from st (0/0 = no saved
 * position: the log's ingest starts at its current tree size). */
void state_apply(const struct state *st, const struct loglist *ll, struct stats *stats);
/* Supervisor, right after state_apply: the position store (shm/positions.h)
 * wins over the file for every log it knows; a log it does not know yet
 * gets its row, seeded from the file's position (the import on first start).
 * pos NULL: nothing to do. */
struct positions;
void state_positions_apply(struct positions *pos, const struct loglist *ll, struct stats *stats);
/* The same for one log (a log list change that keeps other groups running). */
void state_positions_apply_log(struct positions *pos, const struct loglist_log *l, struct stats *stats);
/* The same for one log's row (a log list change that keeps other groups running). */
void state_apply_log(const struct state *st, const struct loglist_log *l, struct stats *stats);
/* Supervisor, before state_save: copies every known position from the
 * per-log table into st. Returns 0 or -1 (out of memory). */
int state_update(struct state *st, struct stats *stats);

void state_free(struct state *st);

#endif
