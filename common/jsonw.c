/* jsonw.c - the JSON writer behind every certstream message (see jsonw.h). */
#include "common/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void jb_init(struct jbuf *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

void jb_free(struct jbuf *b)
{
    free(b->p);
    jb_init(b);
}

void jb_printf(struct jbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !jb_reserve(b, (size_t)n + 1)) /* + 1: vsnprintf's NUL */
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

bool jb_grow(struct jbuf *b, size_t need)
{
    if (b->oom) return false;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < need) {
        if (cap > ((size_t)1 << 40)) { b->oom = true; return false; }
        cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (!np) { b->oom = true; return false; }
    b->p = np;
    b->cap = cap;
    return true;
}

size_t utf8_seq(const uint8_t *s, size_t n, size_t *skip)
{
    uint8_t c = s[0];
    *skip = 1;
    if (c < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;   /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;       /* no overlongs */
        else if (c == 0xED) hi = 0x9F;  /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;  /* <= U+10FFFF */
    } else return 0;
    for (size_t i = 1; i < need; i++) {
        if (i >= n) { *skip = i; return 0; }
        uint8_t x = s[i];
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (x < l || x > h) { *skip = i; return 0; }
    }
    return need;
}

/* 1 = copy as is; 0 = needs escaping or UTF-8 checking. */
static const uint8_t plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x22 '"' */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,  /* 0x5c '\\' */
    R16(1), R16(1),
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};

void jb_str_body(struct jbuf *b, const void *sv, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    const uint8_t *s = sv;
    /* Worst case 6 output bytes per input byte (\u00xx); reserve once. */
    if (!jb_reserve(b, n * 6 + 8)) return;
    char *o = b->p + b->len;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && plain[s[j]]) j++;
        if (j > i) { memcpy(o, s + i, j - i); o += j - i; i = j; }
        if (i >= n) break;
        uint8_t c = s[i];
        if (c >= 0x80) {
            size_t skip, k = utf8_seq(s + i, n - i, &skip);
            if (k) { memcpy(o, s + i, k); o += k; i += k; }
            else { memcpy(o, "\xEF\xBF\xBD", 3); o += 3; i += skip; }
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            memcpy(o, "u00", 3); o += 3;
            *o++ = hexd[c >> 4];
            *o++ = hexd[c & 15];
        }
        i++;
    }
    b->len = (size_t)(o - b->p);
}

void jb_str(struct jbuf *b, const void *s, size_t n)
{
    jb_putc(b, '"');
    jb_str_body(b, s, n);
    jb_putc(b, '"');
}

void jb_u64(struct jbuf *b, uint64_t v)
{
    char t[24];
    int i = sizeof t;
    do { t[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    jb_put(b, t + i, sizeof t - (size_t)i);
}

void jb_i64(struct jbuf *b, int64_t v)
{
    if (v < 0) {
        jb_putc(b, '-');
        jb_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        jb_u64(b, (uint64_t)v);
    }
}

/* Lays out the shortest digits d (len digits, value = d * 10^k) the way
 * the compact JSON convention does. */
static void put_digits(struct jbuf *b, bool neg, const char *d, int len, int k)
{
    char t[64];
    int o = 0, kk = len + k;
    if (neg) t[o++] = '-';
    if (k >= 0 && kk <= 16) {
        memcpy(t + o, d, (size_t)len); o += len;
        for (int i = 0; i < k; i++) t[o++] = '0';
        t[o++] = '.'; t[o++] = '0';
    } else if (kk > 0 && kk <= 16) {
        memcpy(t + o, d, (size_t)kk); o += kk;
        t[o++] = '.';
        memcpy(t + o, d + kk, (size_t)(len - kk)); o += len - kk;
    } else if (kk > -5 && kk <= 0) {
        t[o++] = '0'; t[o++] = '.';
        for (int i = 0; i < -kk; i++) t[o++] = '0';
        memcpy(t + o, d, (size_t)len); o += len;
    } else {
        t[o++] = d[0];
        if (len > 1) { t[o++] = '.'; memcpy(t + o, d + 1, (size_t)len - 1); o += len - 1; }
        o += snprintf(t + o, sizeof t - (size_t)o, "e%d", kk - 1);
    }
    jb_put(b, t, (size_t)o);
}

void jb_double(struct jbuf *b, double v)
{
    if (!isfinite(v)) { jb_lit(b, "null"); return; }
    if (v == 0) {
        if (signbit(v)) jb_lit(b, "-0.0");
        else jb_lit(b, "0.0");
        return;
    }
    bool neg = v < 0;
    double a = neg ? -v : v;
    char e[40];
    int prec;
    for (prec = 0; prec < 17; prec++) {       /* shortest that round-trips */
        snprintf(e, sizeof e, "%.*e", prec, a);
        if (strtod(e, NULL) == a) break;
    }
    /* e = "d[.ddd]e[+-]xx" */
    char d[24];
    int len = 0;
    const char *q = e;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') d[len++] = *q;
    int exp10 = atoi(q + 1);
    while (len > 1 && d[len - 1] == '0') len--;
    put_digits(b, neg, d, len, exp10 - (len - 1));
}

void jb_ms_seconds(struct jbuf *b, int64_t ms)
{
    /* Fast path: below 1e15 ms a double has far more than millisecond
     * resolution, so the exact decimal "S.mmm" (trailing zeros dropped) is
     * the shortest string that reads back as ms / 1000.0. */
    if (ms >= 0 && ms < 1000000000000000LL) {
        jb_u64(b, (uint64_t)(ms / 1000));
        int f = (int)(ms % 1000);
        char t[5] = {'.', (char)('0' + f / 100), (char)('0' + f / 10 % 10), (char)('0' + f % 10), 0};
        size_t n = 4;
        while (n > 2 && t[n - 1] == '0') n--;
        jb_put(b, t, n);
        return;
    }
    jb_double(b, (double)ms / 1000.0);
}

void jb_fixed6(struct jbuf *b, double v)
{
    if (!(v >= 0)) v = 0;
    if (v > 9999999999.999999) v = 9999999999.999999;
    uint64_t us = (uint64_t)(v * 1e6 + 0.5);
    if (us > 9999999999999999ULL) us = 9999999999999999ULL;
    char t[18];
    uint64_t s = us / 1000000, f = us % 1000000;
    for (int i = 9; i >= 0; i--) { t[i] = (char)('0' + s % 10); s /= 10; }
    t[10] = '.';
    for (int i = 16; i >= 11; i--) { t[i] = (char)('0' + f % 10); f /= 10; }
    jb_put(b, t, 17);
}

void jb_hex(struct jbuf *b, const uint8_t *d, size_t n, char sep, bool upper)
{
    const char *hx = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    if (!jb_reserve(b, n * 3)) return;
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        if (sep && i) *o++ = sep;
        *o++ = hx[d[i] >> 4];
        *o++ = hx[d[i] & 15];
    }
    b->len = (size_t)(o - b->p);
}
