/* certindex.h - a worker's bounded index from certificate hash to ring
 * position, for /api/cert/{hash} (certindex.c). */
#ifndef CS_FANOUT_CERTINDEX_H
#define CS_FANOUT_CERTINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;
struct jbuf;
struct certindex;

/* Parses a SHA-256 (64 hex digits) or SHA-1 (40: the "sha1" and
 * "fingerprint" fields) hash, with or without ':' between bytes, any case.
 * Returns the byte length (32 or 20), or 0 if it is neither. */
size_t certindex_parse_hash(const char *s, size_t len, uint8_t out[32]);

/* Once a second (the worker's tick): indexes the records published since
 * the last call. Does nothing until the first lookup asked for the index. */
void certindex_tick(struct worker *w);

/* The full-stream message of the newest certificate with that hash still in
 * the ring, appended to b: true; false when unknown (404). */
bool certindex_lookup(struct worker *w, const uint8_t *hash, size_t hlen, struct jbuf *b);

void certindex_free(struct certindex *ci);

#endif
