/* fuzz_tile.c - libFuzzer target: a static-ct-api data tile, entry by entry
 * (decode + X.509 + render), with an issuer lookup that answers every
 * fingerprint with a slice of the input. */
#include <stddef.h>
#include <stdint.h>

#include "ingest/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *g_data;
static size_t g_size;

static int lookup(void *ctx, const uint8_t fp[32], const uint8_t **der, size_t *len)
{
    (void)ctx;
    if (fp[0] & 1) return -1;            /* some issuers are unknown */
    size_t off = fp[1] < g_size ? fp[1] : 0;
    *der = g_data + off;
    *len = g_size - off;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pipeline *p;
    if (!p && !(p = pipeline_new())) return 0;
    g_data = data;
    g_size = size;
    pipeline_set_issuer_lookup(p, lookup, NULL);
    size_t off = 0;
    for (uint64_t i = 0; off < size && i < 256; i++) {
        struct ct_entry e;
        size_t used;
        char err[256];
        if (ct_decode_tile_entry(data + off, size - off, &used, &e, err, sizeof err) < 0) break;
        struct pipeline_out out;
        pipeline_render_tile_entry(p, data + off, used, i, "Tile", "https://tile.example/",
                                   "https://tile.example/tile/data/000", 1.5, &out, err, sizeof err);
        off += used;
    }
    return 0;
}
