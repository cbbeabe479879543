/* testutil.h - small helpers shared by the pipeline test programs: reading
 * fixtures, hex, counting results. Header-only (each test is one program). */
#ifndef CS_TEST_PIPELINE_UTIL_H
#define CS_TEST_PIPELINE_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

static int t_passed, t_failed;

static inline void t_check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void t_check(int ok, const char *fmt, ...)
{
    if (ok) { t_passed++; return; }
    t_failed++;
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

static inline int t_summary(void)
{
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed || !t_passed ? 1 : 0;
}

static inline uint8_t *t_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

static inline cJSON *t_json(const char *path)
{
    size_t len;
    uint8_t *b = t_read(path, &len);
    if (!b) { printf("FAIL: cannot read %s\n", path); t_failed++; return NULL; }
    cJSON *j = cJSON_ParseWithLength((const char *)b, len);
    free(b);
    if (!j) { printf("FAIL: %s is not JSON\n", path); t_failed++; }
    return j;
}

static inline void t_hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
    out[2 * n] = 0;
}

static inline const char *t_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "YYYY-MM-DDTHH:MM:SS..." (UTC) -> Unix seconds; -1 if unreadable. */
static inline int64_t t_iso_time(const char *s)
{
    struct tm tm = {0};
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* Prints where two byte strings first differ. */
static inline void t_diff(const char *what, const char *got, size_t glen, const char *want, size_t wlen)
{
    size_t i = 0;
    while (i < glen && i < wlen && got[i] == want[i]) i++;
    size_t from = i > 60 ? i - 60 : 0;
    printf("  %s differs at byte %zu (got %zu bytes, want %zu)\n", what, i, glen, wlen);
    printf("    got:  ...%.*s\n", (int)((glen - from) > 160 ? 160 : glen - from), got + from);
    printf("    want: ...%.*s\n", (int)((wlen - from) > 160 ? 160 : wlen - from), want + from);
}

#endif
