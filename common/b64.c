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

/* 0..63 for the alphabet, 64 for '=', 255 for anything else. */
static const uint8_t dec[256] = {
#define X255 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255
    X255, X255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 62, 255, 255, 255, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 255, 255, 255, 64, 255, 255,
    255, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 255, 255, 255, 255, 255,
    255, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 255, 255, 255, 255, 255,
    X255, X255, X255, X255, X255, X255, X255, X255,
#undef X255
};

int b64_decode(uint8_t *dst, size_t dlen, size_t *olen, const char *src, size_t slen)
{
    const uint8_t *s = (const uint8_t *)src;
    if (slen == 0) {
        *olen = 0;
        return 0;
    }
    if (slen % 4 != 0) goto slow;
    size_t pad = (s[slen - 1] == '=') + (s[slen - 1] == '=' && s[slen - 2] == '=');
    size_t need = slen / 4 * 3 - pad;
    size_t full = (pad ? slen - 4 : slen);    /* groups without padding */
    /* Validate and decode in one pass; on any surprise start over slowly. */
    if (!dst || dlen < need) {
        for (size_t i = 0; i < slen - pad; i++)
            if (dec[s[i]] > 63) goto slow;
        *olen = need;
        return MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL;
    }
    uint8_t *p = dst;
    for (size_t i = 0; i < full; i += 4) {
        uint32_t a = dec[s[i]], b = dec[s[i + 1]], c = dec[s[i + 2]], d = dec[s[i + 3]];
        if ((a | b | c | d) > 63) goto slow;
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        p[0] = (uint8_t)(v >> 16);
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)v;
        p += 3;
    }
    if (pad) {
        const uint8_t *q = s + full;
        uint32_t a = dec[q[0]], b = dec[q[1]], c = pad == 1 ? dec[q[2]] : 0;
        if ((a | b | c) > 63) goto slow;
        uint32_t v = a << 18 | b << 12 | c << 6;
        *p++ = (uint8_t)(v >> 16);
        if (pad == 1) *p++ = (uint8_t)(v >> 8);
    }
    *olen = (size_t)(p - dst);
    return 0;
slow:
    return mbedtls_base64_decode(dst, dlen, olen, (const unsigned char *)src, slen);
}

int b64_decode_alloc(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    size_t need = 0;
    *out = NULL;
    *outlen = 0;
    int rc = b64_decode(NULL, 0, &need, s, n);
    if (rc != 0 && rc != MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL) return -1;
    uint8_t *buf = malloc(need ? need : 1);
    if (!buf) return -1;
    if (b64_decode(buf, need ? need : 1, outlen, s, n) != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}
