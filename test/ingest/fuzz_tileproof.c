/* fuzz_tileproof.c - libFuzzer target for tileproof_check: the input gives
 * the tree size, the root, the data tile and its width, and a pool of bytes
 * from which every hash tile asked for is served (or found missing), so any
 * shape of tree and any content of the tiles is explored for over-reads. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ingest/tileproof.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct pool { const uint8_t *p; size_t n; };

static const uint8_t *get(void *ctx, unsigned level, uint64_t n, unsigned width)
{
    const struct pool *pl = ctx;
    size_t need = 32u * width, at = (size_t)((level * 7919u + n * 31u) % 97u);
    if (at + need > pl->n) return NULL;     /* "not fetched yet" */
    return pl->p + at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t leaves[256 * 32];
    uint64_t tree, tile;
    struct tileproof_need need;
    char err[256];
    if (size < 8 + 32 + 4 + 2) return 0;
    memcpy(&tree, data, 8);
    tree &= (1ull << 40) - 1;
    memcpy(&tile, data + 40, 4);
    tile &= 0xffffffu;
    unsigned width = 1u + data[44];
    struct pool pl = {data + 46, size - 46};
    memset(leaves, 0, sizeof leaves);
    memcpy(leaves, pl.p, pl.n < sizeof leaves ? pl.n : sizeof leaves);
    (void)tileproof_check(tree, data + 8, tile, width, leaves, get, &pl, &need, err, sizeof err);
    return 0;
}
