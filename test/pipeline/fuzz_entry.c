/* fuzz_entry.c - libFuzzer target: RFC 6962 entry decoding + X.509 walk +
 * rendering. Input: 2-byte big-endian length L, then L bytes of leaf_input,
 * then extra_data. The same bytes are also rendered as a bare certificate
 * with itself as chain (chain cache path) and run through the precert TBS
 * check. Any crash, over-read or leak is a bug. */
#include <stddef.h>
#include <stdint.h>

#include "ingest/pipeline.h"
#include "ingest/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pipeline *p;
    if (!p && !(p = pipeline_new())) return 0;
    struct pipeline_out out;
    char err[256];
    if (size >= 2) {
        size_t l = (size_t)data[0] << 8 | data[1];
        if (l > size - 2) l = size - 2;
        pipeline_render_rfc6962(p, data + 2, l, data + 2 + l, size - 2 - l, 1234567890123ULL, "Fuzz \"log\"",
                                "https://fuzz.example/", 1700000000.25, &out, err, sizeof err);
    }
    struct ct_span chain[2] = {{data, size}, {data, size / 2}};
    struct pipeline_cert in = {
        .precert = size & 1, .der = data, .der_len = size, .timestamp_ms = size * 999983ULL,
        .chain = chain, .nchain = 2, .index = size, .cert_link = "x", .log_name = "n", .log_url = "u",
        .seen = (double)size,
    };
    pipeline_render_cert(p, &in, &out, err, sizeof err);
    x509_tbs_matches_precert(data, size / 2, data + size / 2, size - size / 2);
    return 0;
}
