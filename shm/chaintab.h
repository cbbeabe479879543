/* chaintab.h - the shared chain table: byte strings that many ring records
 * carry (the rendered JSON of chain certificates: a few dozen intermediates
 * and roots sign nearly every certificate), kept once and referenced.
 *
 * Owned by the ring (shm/ring.c creates one with each ring, in its own memfd
 * "certstream-chaintab", before fork). Content-addressed: a producer asks
 * for the bytes of a piece and gets the offset of an entry holding exactly
 * those bytes, an existing one or a new one.
 *
 * Lifetime is tied to ring positions: each entry stamps the newest position
 * of a record that references it (last_ref). An entry is reused for other
 * bytes only when last_ref is older than the ring's oldest intact position
 * (claim - size), that is when every record that references it may already
 * be overwritten. So a reader that validates a record after copying it
 * (ring_lapped_since: the record at pos was intact) also knows the entries
 * the record referenced were intact: they could only change after a claim
 * that laps pos.
 *
 * Lock-free between producers: an entry is taken for writing by a CAS of
 * last_ref to LOCKED|pos, written, then published with last_ref = pos
 * (release). A producer that references an existing entry compares the bytes
 * and then moves last_ref forward with a CAS from the value it read before
 * comparing, so a concurrent rewrite makes its CAS fail. A producer killed
 * while writing leaves its entry LOCKED; the lock is taken over once its
 * position is lapped (a live producer writes an entry in microseconds while
 * it holds an open ring claim, and the supervisor kills a producer that
 * holds a claim for long).
 *
 * When no entry can be had (the probe window is full of live entries, or the
 * piece is larger than an entry), the caller keeps the piece in its record:
 * nothing is lost, only shared less. */
#ifndef CS_CHAINTAB_H
#define CS_CHAINTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chaintab;

/* n_entries (power of two, >= 16) entries of entry_bytes (a multiple of the
 * page size) each. Pages are resident only once an entry is written.
 * Returns NULL + errno. */
struct chaintab *chaintab_create(uint32_t n_entries, uint32_t entry_bytes);
void chaintab_destroy(struct chaintab *ct);

/* Size of the data area: offsets returned by chaintab_ref are below it. */
uint64_t chaintab_data_size(const struct chaintab *ct);
uint32_t chaintab_entry_bytes(const struct chaintab *ct);

/* Producer: the offset in the data area of an entry holding exactly the len
 * bytes at p, referenced by the record at position pos; entries whose newest
 * reference is below reuse_below may be rewritten (pass claim - ring size).
 * -1 when there is no room (keep the bytes in the record). */
int64_t chaintab_ref(struct chaintab *ct, const void *p, uint32_t len, uint64_t pos, uint64_t reuse_below);

/* Producer, before claiming ring space: would chaintab_ref most likely
 * succeed (an entry with these bytes, or room)? Writes nothing, so a
 * producer stopped here holds nothing. */
bool chaintab_probe(const struct chaintab *ct, const void *p, uint32_t len, uint64_t reuse_below);

/* Reader: the bytes at off (len bytes), or NULL when the range is outside the
 * data area. Validate after copying (ring_lapped_since on the record). */
const uint8_t *chaintab_bytes(const struct chaintab *ct, uint64_t off, uint32_t len);

/* Entries holding bytes now (written and not locked): for metrics and tests. */
uint32_t chaintab_used(const struct chaintab *ct);

#endif
