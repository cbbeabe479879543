/* hash64.h - a fast 64-bit hash of bytes for in-memory tables (the chain
 * table, the renderer's chain cache). Not cryptographic and not stable
 * across versions: a hit always compares the bytes. 8 bytes per multiply,
 * so ~1 KB costs ~0.1 us. */
#ifndef CS_HASH64_H
#define CS_HASH64_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t hash64_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ULL;
    h ^= h >> 29;
    h *= 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 32);
}

#endif
