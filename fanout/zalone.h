/* zalone.h - the permessage-deflate frames compressed alone (no context:
 * deflateReset before each message), made lazily by the fanout worker.
 *
 * A record's alone frame is a pure function of its JSON and the level, so
 * the records in the ring carry none (ingest does not compress): a worker
 * compresses a record the first time one of its deflate clients needs it
 * (new, filtered, behind the chained cache, or server_no_context_takeover)
 * and keeps the frame in a bounded per-format cache keyed by ring position.
 * A miss (evicted, or a client finishing a frame it partly wrote) compresses
 * again and gets the same bytes, so nothing is pinned.
 *
 * Whether a record is sent compressed at all is zalone_wanted: a pure
 * function of the record, used both here and by the shared stream
 * (zchain.c), so clients' windows and the stream agree. */
#ifndef CS_FANOUT_ZALONE_H
#define CS_FANOUT_ZALONE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "conf/config.h"
#include "shm/ring.h"

/* Cache bytes per format (allocated when a format is first used): see
 * zalone.c for why iovecs handed out stay valid. */
#define ZALONE_ARENA (4u << 20)
/* Largest frame kept (ZALONE_ARENA / 16); a larger one fails (the client
 * is dropped as if lapped: a JSON of several hundred KB, never seen). */
#define ZALONE_MAX_FRAME (ZALONE_ARENA / 16)

struct zalone;

/* The record goes compressed to a permessage-deflate client: compression
 * is on and its JSON is at least min_size. cfg NULL: none. */
static inline bool zalone_wanted(const struct config *cfg, const struct ring_record *rec, int fmt)
{
    if (rec->kind != RING_KIND_MESSAGE) return false;
    return cfg && cfg->compression.enabled && rec->json[fmt].len > 0 && rec->json[fmt].len >= cfg->compression.min_size;
}

/* level 1..9. NULL: out of memory. */
struct zalone *zalone_new(int level);
void zalone_free(struct zalone *za);

/* The iovec of the alone frame of rec (format fmt), minus its first skip
 * bytes, at *iov. Returns the bytes, 0 when the frame cannot be made (the
 * record is being overwritten, out of memory, too large) or skip is not
 * below its length: the caller treats that as lapped. Validate after
 * sending (ring_lapped_since). */
uint32_t zalone_iov(struct zalone *za, const struct ring *ring, const struct ring_record *rec, int fmt,
                    uint32_t skip, struct iovec *iov);

/* For iovecs kept after a walk (the pump's memo): a mark taken before the
 * walk; the iovecs of format fmt handed out since are intact while
 * zalone_intact(mark) is true. */
uint64_t zalone_mark(const struct zalone *za, int fmt);
bool zalone_intact(const struct zalone *za, int fmt, uint64_t mark);

struct zalone_stats {
    uint64_t hits, misses, copies, bytes_written;
};
void zalone_get_stats(const struct zalone *za, int fmt, struct zalone_stats *st);

#endif
