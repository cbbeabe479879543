/* b64.c - base64 for certificate DER (see b64.h). */
#include "common/b64.h"

#include <stdlib.h>

#include <mbedtls/base64.h>

void b64_append(struct jbuf *b, const uint8_t *d, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t olen = (n + 2) / 3 * 4;
    if (!jb_reserve(b, olen)) return;
    char *o = b->p + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        o[0] = t[v >> 18];
        o[1] = t[(v >> 12) & 63];
        o[2] = t[(v >> 6) & 63];
        o[3] = t[v & 63];
        o += 4;
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)d[i] << 16;
        o[0] = t[v >> 18]; o[1] = t[(v >> 12) & 63]; o[2] = '='; o[3] = '=';
        o += 4;
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
        o[0] = t[v >> 18]; o[1] = t[(v >> 12) & 63]; o[2] = t[(v >> 6) & 63]; o[3] = '=';
        o += 4;
    }
    b->len = (size_t)(o - b->p);
}

int b64_decode_alloc(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    size_t need = 0;
    *out = NULL;
    *outlen = 0;
    int rc = mbedtls_base64_decode(NULL, 0, &need, (const unsigned char *)s, n);
    if (rc != 0 && rc != MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL) return -1;
    uint8_t *buf = malloc(need ? need : 1);
    if (!buf) return -1;
    if (mbedtls_base64_decode(buf, need ? need : 1, outlen, (const unsigned char *)s, n) != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}
