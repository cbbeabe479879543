/* fuzz_ctapi.c - libFuzzer target for the CT response parsers (ctapi.h).
 * The first byte picks the parser: 0 get-sth (+ signature check), 1
 * get-entries, 2 checkpoint (+ signature check with Rome 2024h1's key). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ctapi.h"

/* rome.ct.filippo.io/2024h1's P-256 key (static-ct/checkpoints/keys.json) */
static const uint8_t rome_key[] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x01, 0x73, 0x3c, 0x2d, 0xdf,
    0x6a, 0x9f, 0xae, 0x20, 0xd7, 0x35, 0x45, 0x0e, 0x1e, 0x45, 0xb6, 0x0c, 0x52, 0xdf, 0x38, 0xf9,
    0xb2, 0xa4, 0x03, 0xc1, 0x83, 0x2c, 0xdf, 0x0a, 0xc1, 0x57, 0x73, 0x02, 0x06, 0x21, 0x61, 0x2b,
    0xf8, 0x91, 0x2f, 0x17, 0x4a, 0x17, 0x86, 0x2c, 0x01, 0xc2, 0x5a, 0x12, 0x09, 0x4c, 0x96, 0xee,
    0x0b, 0x7b, 0x0b, 0xf3, 0xc6, 0xcd, 0x31, 0x3b, 0x6b, 0xb0, 0x13,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern volatile uint8_t fuzz_ctapi_sink;
volatile uint8_t fuzz_ctapi_sink;   /* keeps the read loop below */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (size < 1) return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0: {
        struct ctapi_sth sth;
        if (ctapi_sth_parse(p, n, &sth, err, sizeof err) == 0)
            ctapi_verify_tree_head(rome_key, sizeof rome_key, sth.timestamp, sth.tree_size, sth.root_hash,
                                   sth.signature, sth.signature_len, err, sizeof err);
        break;
    }
    case 1: {
        struct ctapi_entries es, ref;
        /* the scanner and cJSON must agree on every input (ctapi.c) */
        int rc = ctapi_entries_parse(p, n, 1000, &es, err, sizeof err);
        int rr = ctapi_entries_parse_cjson(p, n, 1000, &ref, err, sizeof err);
        if (rc != rr) abort();
        if (rc == 0) {
            if (es.n != ref.n) abort();
            for (size_t i = 0; i < es.n; i++) {
                const struct ctapi_entry *a = &es.v[i], *b = &ref.v[i];
                if (a->bad != b->bad) abort();
                if (a->bad) continue;
                if (a->leaf_len != b->leaf_len || a->extra_len != b->extra_len ||
                    memcmp(a->leaf_input, b->leaf_input, a->leaf_len) != 0 ||
                    memcmp(a->extra_data, b->extra_data, a->extra_len) != 0)
                    abort();
            }
            ctapi_entries_free(&ref);
        }
        if (rc == 0) {
            /* touch every decoded byte so ASan sees any bad pointer */
            uint8_t x = 0;
            for (size_t i = 0; i < es.n; i++) {
                for (size_t k = 0; k < es.v[i].leaf_len; k++) x ^= es.v[i].leaf_input[k];
                for (size_t k = 0; k < es.v[i].extra_len; k++) x ^= es.v[i].extra_data[k];
            }
            fuzz_ctapi_sink = x;
            ctapi_entries_free(&es);
        }
        break;
    }
    default: {
        struct ctapi_checkpoint cp;
        if (ctapi_checkpoint_parse(p, n, &cp, err, sizeof err) == 0)
            ctapi_checkpoint_verify(p, n, &cp, rome_key, sizeof rome_key, err, sizeof err);
        break;
    }
    }
    return 0;
}
