/* fuzz_accesslog.c - libFuzzer target for the access log's rendering of a
 * request target (accesslog_target): the client's bytes become part of a
 * log line. The first byte picks the output room.
 *
 * Properties checked besides memory safety: the result fits the room and is
 * NUL-terminated at the returned length; it holds only printable ASCII
 * without space, '"' or '\'; no query parameter named token survives; with
 * enough room and input that needs no escaping, the path part is kept as is. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/accesslog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t cap = (size_t)data[0] * 8 + 1;    /* 1..2041 */
    const char *t = (const char *)data + 1;
    size_t len = size - 1;
    char *out = malloc(cap);
    if (!out) return 0;
    size_t n = accesslog_target(out, cap, t, len);
    if (n >= cap || out[n] != '\0' || strlen(out) != n) abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') abort();
    }
    const char *q = strchr(out, '?');
    for (const char *p = q; p; p = strchr(p + 1, '&')) {
        const char *seg = p + 1;
        if (strncmp(seg, "token", 5) == 0 && (seg[5] == '=' || seg[5] == '&' || seg[5] == '\0')) abort();
    }
    /* a clean path (no escaping, no query) that fits comes back unchanged */
    bool clean = len + 4 <= cap;
    for (size_t i = 0; clean && i < len; i++) {
        unsigned char ch = (unsigned char)t[i];
        clean = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\' && ch != '?';
    }
    if (clean && (n != len || memcmp(out, t, len) != 0)) abort();
    free(out);
    return 0;
}
