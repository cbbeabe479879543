/* dedup.h - the shared "seen this certificate lately?" table of the ingest processes.
 *
 * Created by the supervisor before fork and shared by every ingest process,
 * so a certificate logged to several CT logs is published once. Keys are the
 * SHA-256 of the leaf (or precertificate) DER. Bounded: a full bucket evicts
 * its oldest entry. Time-limited: an entry older than ttl_secs no longer
 * counts (the certificate is published again).
 *
 * Lock-free: each entry is one 64-bit word (48-bit tag + 16-bit time) updated
 * with CAS, so a process killed at any instant leaves the table consistent.
 * A false "seen" needs a 48-bit tag collision inside one 8-entry bucket
 * (~3e-14 per lookup); two processes inserting the same new key at the same
 * instant may rarely both get "not seen" (a duplicate is sent, nothing lost). */
#ifndef CS_DEDUP_H
#define CS_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dedup;

/* capacity entries (rounded up to a power of two, at least 64); ttl_secs in
 * [1, 2^23]. Returns NULL + errno (EINVAL, ENOMEM). */
struct dedup *dedup_create(uint32_t capacity, uint32_t ttl_secs);
void dedup_destroy(struct dedup *d);
size_t dedup_capacity(const struct dedup *d);
/* Entries still live (younger than ttl_secs) at now_secs: a scan of the
 * whole table, for metrics only. */
size_t dedup_live(const struct dedup *d, uint64_t now_secs);

/* true: key was inserted less than ttl_secs before now_secs (drop the entry);
 * false: it was not, and is now recorded as seen at now_secs (publish it). */
bool dedup_seen_or_insert(struct dedup *d, const uint8_t key[32], uint64_t now_secs);

#endif
