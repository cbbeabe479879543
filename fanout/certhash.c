/* certhash.c - certificate hashes as /api/cert and the full-stream JSON
 * write them (certhash.h). Pure functions over bytes: fuzzed directly
 * (test/fanout/fuzz_certhash.c). */
#include "fanout/certhash.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t certhash_parse(const char *s, size_t len, uint8_t out[32])
{
    size_t n = 0, i = 0;
    while (i < len) {
        if (n == 32 || i + 1 >= len) return 0;
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[n++] = (uint8_t)(hi << 4 | lo);
        i += 2;
        if (i < len && s[i] == ':') {
            if (i + 1 == len) return 0;
            i++;
        }
    }
    return n == 32 || n == 20 ? n : 0;
}

/* The leaf's hash named `field` ("sha1" or "sha256") in a full-stream
 * message: colon-separated uppercase hex right after the leaf_cert's
 * subject and issuer. A raw '"' cannot occur inside a JSON string, so the
 * first `"sha256":"` after `"leaf_cert":` is the leaf's own key. */
size_t certhash_leaf(const char *json, size_t len, const char *field, uint8_t out[32])
{
    const char *end = json + len;
    const char *lc = memmem(json, len, "\"leaf_cert\":", 12);
    if (!lc) return 0;
    char pat[16];
    int w = snprintf(pat, sizeof pat, "\"%s\":\"", field);
    if (w <= 0 || (size_t)w >= sizeof pat) return 0;
    size_t pl = (size_t)w;
    const char *p = memmem(lc, (size_t)(end - lc), pat, pl);
    if (!p) return 0;
    p += pl;
    const char *q = memchr(p, '"', (size_t)(end - p));
    return q ? certhash_parse(p, (size_t)(q - p), out) : 0;
}

