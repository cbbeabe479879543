/* tileproof.h - proving data tile entries against a checkpoint's root hash
 * with the log's hash tiles (static-ct-api, tlog-tiles).
 *
 * A hash tile at level L holds up to 256 consecutive node hashes of level L
 * of the Merkle tree, where a level-L node is the root of a complete subtree
 * of 256^L leaves (level 0: leaf hashes). tile/<L>/<N> is full, .p/<W> holds
 * the first W hashes of a tile at the right edge.
 *
 * For a checkpoint (size S, root R) and data tile N of width W:
 *  1. the tiles at the right edge of every level give the complete subtrees
 *     of S's binary decomposition; folded right to left they must give R;
 *  2. the leaf hashes of the data tile's entries must equal the level-0
 *     hashes of tile N, and that tile must chain up, one full tile per level,
 *     to an entry of a right-edge tile checked in step 1.
 * Hash tiles come from the caller (fetched and cached); tileproof_check
 * names the next one it lacks. */
#ifndef CS_TILEPROOF_H
#define CS_TILEPROOF_H

#include <stddef.h>
#include <stdint.h>

struct ct_entry;

/* SHA-256(0x00 || MerkleTreeLeaf) of a decoded TileLeaf. */
void tileproof_leaf_hash(const struct ct_entry *e, uint8_t out[32]);

/* "tile/<level>/x001/234[.p/W]" relative to the monitoring prefix. */
int tileproof_path(char *buf, size_t len, unsigned level, uint64_t n, unsigned width);

/* The caller's cache: the hashes of tile (level, n, width) (32 * width
 * bytes), or NULL when it has not been fetched. */
typedef const uint8_t *(*tileproof_get)(void *ctx, unsigned level, uint64_t n, unsigned width);

struct tileproof_need { unsigned level; uint64_t n; unsigned width; };

/* 0: the data tile's leaf hashes (width of them) are proven in the tree of
 * (size, root); 1: fetch *need and call again; -1: they are not (err). */
int tileproof_check(uint64_t size, const uint8_t root[32], uint64_t data_tile, unsigned width,
                    const uint8_t *leaf_hashes, tileproof_get get, void *ctx, struct tileproof_need *need,
                    char *err, size_t errlen);

#endif
