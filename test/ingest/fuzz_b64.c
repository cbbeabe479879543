/* fuzz_b64.c - libFuzzer target: b64_decode (common/b64.h) must agree with
 * mbedtls_base64_decode on every input: return code, length and bytes, with
 * a buffer large enough and with one too small. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>

#include "common/b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const uint8_t *data, size_t size, size_t cap)
{
    uint8_t *a = malloc(cap + 1), *b = malloc(cap + 1);
    size_t la = 12345, lb = 12345;
    if (!a || !b) abort();
    int ra = b64_decode(cap ? a : NULL, cap, &la, (const char *)data, size);
    int rb = mbedtls_base64_decode(cap ? b : NULL, cap, &lb, data, size);
    if (ra != rb) abort();
    if (ra == 0 || ra == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL) {
        if (la != lb) abort();
    }
    if (ra == 0 && memcmp(a, b, la) != 0) abort();
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    same(data, size, size);           /* always enough: 3/4 of the input */
    same(data, size, size / 2);
    same(data, size, 0);
    return 0;
}
