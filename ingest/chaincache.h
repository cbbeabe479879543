/* chaincache.h - rendered chain-element JSON, keyed by certificate DER.
 *
 * Most entries of a log chain to the same few intermediates and roots, so a
 * chain certificate is parsed, hashed and rendered once and its JSON reused.
 * Bounded: a fixed number of 4-way sets with LRU replacement inside a set;
 * memory is at most CHAINCACHE_SETS * 4 * (DER + JSON) of chain certificates.
 *
 * The key is a fast 64-bit hash of the DER plus the DER itself (compared on
 * a hit), not SHA-256: hashing 1-2 KB with SHA-256 for every chain
 * certificate of every entry would cost more than the rest of the lookup,
 * and comparing the stored DER makes a hit exact anyway. */
#ifndef CS_CHAINCACHE_H
#define CS_CHAINCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAINCACHE_SETS 256
#define CHAINCACHE_WAYS 4
/* Certificates larger than this are rendered every time, not cached. */
#define CHAINCACHE_MAX_DER 65536

struct chaincache;

struct chaincache *chaincache_new(void);
void chaincache_free(struct chaincache *cc);

/* A hit sets json and len (or bad: the certificate is known to be
 * unparseable) and returns true; false on a miss. */
bool chaincache_get(struct chaincache *cc, const uint8_t *der, size_t derlen,
                    const char **json, size_t *len, bool *bad);
/* Stores a rendering (bad = unparseable, json ignored). Best effort. */
void chaincache_put(struct chaincache *cc, const uint8_t *der, size_t derlen,
                    const char *json, size_t len, bool bad);

struct chaincache_stats { uint64_t hits, misses, evictions; };
void chaincache_stats(const struct chaincache *cc, struct chaincache_stats *st);

#endif
