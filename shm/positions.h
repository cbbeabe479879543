/* positions.h - the crash-proof position store: each log's next index in a
 * file-backed MAP_SHARED mapping beside the state file.
 *
 * The ingest process stores a log's position into the mapping after every
 * entry it publishes (or skips), with a plain 8-byte store: no syscall. The
 * pages belong to the kernel's page cache, so the position survives kill -9
 * of any process, of the whole process group, or an OOM kill; only a power
 * loss or kernel crash can lose what was not yet written back (see
 * positions_sync for the fsync policy). The JSON state file (ingest/state.h)
 * stays the portable, human-readable form: imported when this file is
 * created, exported by the supervisor periodically and at exit.
 *
 * Layout: a header, then POSITIONS_MAX_ROWS fixed rows keyed by log URL.
 * Rows are claimed only by the supervisor before fork (positions_row with
 * create); ingest processes only look rows up and store into them.
 *
 * One server per file: positions_open takes an exclusive flock on the open
 * file description, which every child inherits, so the lock is free only
 * when every process of an earlier server has exited. A restarted server
 * waits for that (an old ingest process still finishing its batch after its
 * supervisor was killed would otherwise advance positions behind its back). */
#ifndef CS_POSITIONS_H
#define CS_POSITIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POSITIONS_MAX_ROWS 1024
#define POSITIONS_URL_MAX 480

struct position_row {
    char url[POSITIONS_URL_MAX];   /* NUL-terminated; "" = free row */
    uint64_t next_index;           /* next entry to publish */
    uint64_t tree_size;            /* last tree size seen */
    uint64_t flags;                /* POSITION_KNOWN */
    uint64_t pending_leaf;         /* 8 bytes of the leaf hash of the entry at
                                    * next_index, stored before it is recorded
                                    * in the dedup table (see ingest.c) */
};

#define POSITION_KNOWN 1u          /* next_index holds a real position */

struct positions;

/* Opens (or creates, mode 0600) path. Waits up to wait_ms for the lock
 * (another server's processes still alive); *created tells whether the file
 * is new (the caller then imports the JSON state). NULL with err filled on
 * failure (a file of the wrong size or magic is refused, not overwritten). */
struct positions *positions_open(const char *path, unsigned wait_ms, bool *created, char *err, size_t errlen);
/* Writes dirty pages back and waits (msync MS_SYNC), then unmaps. */
void positions_close(struct positions *p);

/* The row of url, or NULL. create: claim a free row when there is none
 * (supervisor only, before fork). */
struct position_row *positions_row(struct positions *p, const char *url, bool create);

/* Position stores, safe against concurrent readers (relaxed atomics). */
void position_store(struct position_row *r, uint64_t next_index);
void position_store_size(struct position_row *r, uint64_t tree_size);
bool position_known(const struct position_row *r);
void position_store_pending(struct position_row *r, uint64_t leaf_tag);
uint64_t position_pending(const struct position_row *r);
uint64_t position_next(const struct position_row *r);
uint64_t position_size(const struct position_row *r);

/* msync(MS_SYNC): called by the supervisor on the state-file period and at
 * exit. 0 or -1 (errno). */
int positions_sync(struct positions *p);

/* "<state_file>.positions" into buf; -1 if it does not fit. */
int positions_path_for(const char *state_file, char *buf, size_t len);

#endif
