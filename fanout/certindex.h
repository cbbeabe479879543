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

/* Once a second (the worker's tick): indexes the records published since
 * the last call. Does nothing until the first lookup asked for the index. */
void certindex_tick(struct worker *w);

/* The full-stream message of the newest certificate with that hash still in
 * the ring, appended to b: true; false when unknown (404). */
bool certindex_lookup(struct worker *w, const uint8_t *hash, size_t hlen, struct jbuf *b);

void certindex_free(struct certindex *ci);

#endif
