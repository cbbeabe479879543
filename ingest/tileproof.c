/* tileproof.c - data tile entries proven against a checkpoint (tileproof.h). */
#include "ingest/tileproof.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/sha256.h>

#include "ingest/ctentry.h"

void tileproof_leaf_hash(const struct ct_entry *e, uint8_t out[32])
{
    /* MerkleTreeLeaf = version 0, leaf type 0 (timestamped_entry), TimestampedEntry. */
    static const uint8_t prefix[3] = {0x00, 0x00, 0x00};
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts_ret(&c, 0);
    mbedtls_sha256_update_ret(&c, prefix, sizeof prefix);
    mbedtls_sha256_update_ret(&c, e->timestamped_entry.p, e->timestamped_entry.len);
    mbedtls_sha256_finish_ret(&c, out);
    mbedtls_sha256_free(&c);
}

int tileproof_path(char *buf, size_t len, unsigned level, uint64_t n, unsigned width)
{
    char data[96];
    /* Same encoding as data tiles; only the directory differs. */
    ct_data_tile_path(data, sizeof data, n, width);
    return snprintf(buf, len, "tile/%u%s", level, data + strlen("tile/data"));
}

static void node(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
    uint8_t buf[65];
    buf[0] = 0x01;
    memcpy(buf + 1, l, 32);
    memcpy(buf + 33, r, 32);
    mbedtls_sha256_ret(buf, sizeof buf, out, 0);
}

/* Root of the complete subtree over n (a power of two, <= 256) hashes. */
static void subtree(const uint8_t *h, unsigned n, uint8_t out[32])
{
    uint8_t level[128][32];
    if (n == 1) {
        memcpy(out, h, 32);
        return;
    }
    for (unsigned i = 0; i < n / 2; i++) node(h + 64 * i, h + 64 * i + 32, level[i]);
    for (n /= 2; n > 1; n /= 2)
        for (unsigned i = 0; i < n / 2; i++) node(level[2 * i], level[2 * i + 1], level[i]);
    memcpy(out, level[0], 32);
}

#define NEED(l, nn, w) do { need->level = (l); need->n = (nn); need->width = (w); return 1; } while (0)

int tileproof_check(uint64_t size, const uint8_t root[32], uint64_t data_tile, unsigned width,
                    const uint8_t *leaf_hashes, tileproof_get get, void *ctx, struct tileproof_need *need,
                    char *err, size_t errlen)
{
    uint8_t subs[64][32], acc[32], cur[32];
    int ns = 0;
    unsigned top = 0;
    if (size == 0 || width == 0 || width > 256 || data_tile * 256 + width > size) {
        snprintf(err, errlen, "data tile %llu (%u entries) is not inside a tree of %llu",
                 (unsigned long long)data_tile, width, (unsigned long long)size);
        return -1;
    }
    while (top < 7 && (size >> (8 * (top + 1))) != 0) top++;
    /* 1. The right edge of every level, highest first: S's complete subtrees
     * from left to right, folded into the root. */
    for (int L = (int)top; L >= 0; L--) {
        unsigned w = (unsigned)((size >> (8 * L)) & 255);
        uint64_t t = size >> (8 * L + 8);
        if (!w) continue;
        const uint8_t *h = get(ctx, (unsigned)L, t, w);
        if (!h) NEED((unsigned)L, t, w);
        unsigned off = 0;
        for (int j = 7; j >= 0; j--)
            if (w & (1u << j)) {
                subtree(h + 32 * off, 1u << j, subs[ns++]);
                off += 1u << j;
            }
    }
    memcpy(acc, subs[ns - 1], 32);
    for (int k = ns - 2; k >= 0; k--) node(subs[k], acc, acc);
    if (memcmp(acc, root, 32) != 0) {
        snprintf(err, errlen, "the hash tiles at the right edge do not give the checkpoint's root (size %llu)",
                 (unsigned long long)size);
        return -1;
    }
    /* 2. The data tile's leaves, then up one full tile per level until a
     * right-edge tile (checked above) holds the node. */
    uint64_t idx = data_tile;
    const uint8_t *h;
    if (idx == size >> 8) {
        h = get(ctx, 0, idx, (unsigned)(size & 255));     /* fetched in step 1 */
    } else {
        if (!(h = get(ctx, 0, idx, 256))) NEED(0, idx, 256);
    }
    if (memcmp(h, leaf_hashes, 32u * width) != 0) {
        snprintf(err, errlen, "entries of data tile %llu do not match the log's level-0 hash tile",
                 (unsigned long long)data_tile);
        return -1;
    }
    if (idx == size >> 8) return 0;
    subtree(h, 256, cur);
    for (unsigned L = 1; L <= 7; L++) {
        uint64_t t = idx >> 8;
        unsigned e = (unsigned)(idx & 255);
        if (t == size >> (8 * L + 8)) {
            unsigned w = (unsigned)((size >> (8 * L)) & 255);
            h = w > e ? get(ctx, L, t, w) : NULL;
            if (!h || memcmp(h + 32 * e, cur, 32) != 0) {
                snprintf(err, errlen, "data tile %llu does not chain to the checkpoint (level %u)",
                         (unsigned long long)data_tile, L);
                return -1;
            }
            return 0;
        }
        if (!(h = get(ctx, L, t, 256))) NEED(L, t, 256);
        if (memcmp(h + 32 * e, cur, 32) != 0) {
            snprintf(err, errlen, "data tile %llu does not chain to the checkpoint (level %u)",
                     (unsigned long long)data_tile, L);
            return -1;
        }
        subtree(h, 256, cur);
        idx = t;
    }
    snprintf(err, errlen, "tree too large");
    return -1;
}
