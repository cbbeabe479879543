/* zchain.h - permessage-deflate with a context shared by the stream, not
 * by the client (compression.shared_context).
 *
 * RFC 7692 with server context takeover: the client inflates every
 * compressed message with one inflater, so its window is the concatenation
 * of the uncompressed payloads of the compressed messages it received
 * (frames with RSV1 clear, and nothing else, stay out of it). Each worker
 * keeps one zlib deflate stream per format and feeds it the messages of the
 * ring in ring order (a sync flush per message, its 00 00 ff ff tail
 * removed, 7.2.1). The frame of message k then refers back only to the
 * payloads of the messages before k, so every client that received all of
 * those (in any compressed form) for at least the window (32 KiB) can
 * inflate it: one "chained" frame per message, format and worker, shared
 * by all such clients, several times smaller than a frame compressed on
 * its own.
 *
 * A client whose history is shorter (new, or after a compressed heartbeat,
 * which is not part of the stream) gets the frames compressed alone
 * (zalone.h, made lazily by the worker), which keep its history
 * contiguous; so does a client behind the cache of chained frames. Records
 * that zalone_wanted leaves plain (compression.min_size) are sent plain to
 * every client and stay out of the stream too, so windows and stream agree.
 *
 * Chained frames live in a bounded per-worker, per-format cache indexed by
 * ring position, filled lazily by the walks of chain-capable clients. A
 * client's state is a few integers (no allocation). Which frame a walk
 * hands out is decided by one number per walk, the key (zchain_walk_key):
 * a record at pos >= key that has a chained frame gets it, any other gets
 * its independent frame. Clients with the same key share the walk (the
 * pump's memo). Cache bytes below the "floor" may be overwritten; a key is
 * never below the floor, and a walk never overwrites bytes above it, so
 * every iovec handed out stays valid until it is written. */
#ifndef CS_FANOUT_ZCHAIN_H
#define CS_FANOUT_ZCHAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "shm/ring.h"

#define ZCHAIN_WINDOW 32768u          /* window bits 15 */
#define ZCHAIN_UNKNOWN UINT64_MAX

struct zchain;                        /* per worker */

/* Per client (in struct conn). */
struct zchain_client {
    bool on;                          /* chain-capable: takeover negotiated, unfiltered */
    uint64_t start;                   /* its run of compressed messages is contiguous from the first record >= start */
    uint64_t ready;                   /* first position chained frames may be sent from; ZCHAIN_UNKNOWN */
    uint64_t key;                     /* of its last walk */
    uint64_t keep_pos;                /* the record partly sent, and whether it was chained */
    bool keep_chained;
    uint8_t *pin;                     /* the frame at pin_pos when the cache let it go (rare) */
    uint32_t pin_len;
    uint64_t pin_pos;
};

struct conn;

/* Cache of cache_bytes per format (allocated when a format is first
 * used), zlib level 1..9. NULL: out of memory. */
struct zchain *zchain_new(size_t cache_bytes, int level);
void zchain_free(struct zchain *z);

/* A client that negotiated server context takeover, starting at ring
 * position cursor. */
void zchain_client_init(struct zchain_client *zc, uint64_t cursor);

/* The client (c->zc.on) is about to get a compressed message that is not
 * part of the stream (a heartbeat), after the record partly sent, if any:
 * its run of history starts again after it. */
void zchain_break(struct conn *c);
/* At teardown. */
void zchain_client_free(struct conn *c);

/* Before a walk of c (c->zc.on) from pos: settles the client's readiness
 * and the cache's floor, and returns the walk's key (also in c->zc.key).
 * When the floor moves, a client in the middle of a chained frame that the
 * cache may now overwrite gets its own copy of the frame (pin): allocated
 * only for such a blocked client, once per cache quarter. */
uint64_t zchain_walk_key(struct conn *c, uint64_t pos);

/* For record_iov: if c (c->zc.on) gets the record's chained frame, true
 * with *iov set and *n the bytes after skip (0: the frame is gone, which
 * the caller treats as lapped); false: send the record's ordinary frame. */
bool zchain_iov(struct conn *c, const struct ring_record *rec, uint32_t skip, struct iovec *iov, uint32_t *n);

/* Counters for tests and metrics. */
struct zchain_stats {
    uint64_t fed, resets, evicted, bytes_in, bytes_out, pinned;
};
void zchain_get_stats(const struct zchain *z, int fmt, struct zchain_stats *st);

#endif
