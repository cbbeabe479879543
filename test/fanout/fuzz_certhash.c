/* fuzz_certhash.c - libFuzzer target for the /api/cert hash parser and the
 * leaf-hash reader of full-stream messages (fanout/certhash.c). Checks that a
 * parsed hash prints back to a form that parses to the same bytes. */
#include "fanout/certhash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t h[32], again[32];
    size_t n = certhash_parse((const char *)data, size, h);
    if (n != 0 && n != 20 && n != 32) abort();
    if (n) {
        char hex[3 * 32];
        size_t o = 0;
        for (size_t i = 0; i < n; i++) o += (size_t)snprintf(hex + o, sizeof hex - o, i ? ":%02X" : "%02X", h[i]);
        if (certhash_parse(hex, o, again) != n || memcmp(h, again, n) != 0) abort();
    }
    size_t a = certhash_leaf((const char *)data, size, "sha256", h);
    size_t b = certhash_leaf((const char *)data, size, "sha1", h);
    if ((a != 0 && a != 20 && a != 32) || (b != 0 && b != 20 && b != 32)) abort();
    return 0;
}
