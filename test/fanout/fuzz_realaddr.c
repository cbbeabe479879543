/* fuzz_realaddr.c - libFuzzer target for the network edge's parsers: the
 * PROXY protocol header (v1 and v2), X-Forwarded-For chains, X-Real-IP and
 * CIDR lists. The first byte picks the parser.
 *
 * Properties checked besides memory safety: a PROXY header's length never
 * exceeds its input or PROXY_V2_MAX; a complete header parses the same when
 * more bytes follow it, and every strict prefix of it is "need more" (so a
 * header split over segments is read the same way); an XFF result is an
 * address the chain contains; a parsed CIDR list matches its own entries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cidr.h"
#include "fanout/realaddr.h"

static void proxy(const uint8_t *p, size_t n)
{
    struct proxy_result r, r2;
    int used = proxy_parse(p, n, &r);
    if (used < -1 || used > (int)n || used > PROXY_V2_MAX) abort();
    if (used > 0) {
        for (size_t k = 0; k < (size_t)used; k++)
            if (proxy_parse(p, k, &r2) != 0) abort();
        uint8_t more[PROXY_V2_MAX + 8];
        memcpy(more, p, (size_t)used);
        memcpy(more + used, "GET / HT", 8);
        if (proxy_parse(more, (size_t)used + 8, &r2) != used || r2.local != r.local ||
            (!r.local && memcmp(r.src, r2.src, 16) != 0))
            abort();
    }
}

static void xff(const uint8_t *p, size_t n)
{
    /* the first byte splits the rest into trusted list | header values */
    if (n < 1) return;
    size_t cut = n > 1 ? p[0] % n : 0;
    const char *s = (const char *)p + 1;
    size_t len = n - 1;
    if (cut > len) cut = len;
    static struct cidr_list trusted;
    char why[128];
    if (cidr_list_parse(s, cut, &trusted, why, sizeof why) != 0) trusted.n = 0;
    for (size_t i = 0; i < trusted.n; i++)
        if (!cidr_match(&trusted.v[i], trusted.v[i].addr)) abort();
    const char *vals[2] = { s + cut, s + cut };
    size_t lens[2] = { (len - cut) / 2, len - cut - (len - cut) / 2 };
    vals[1] = s + cut + lens[0];
    uint8_t out[16];
    if (xff_client(vals, lens, 2, &trusted, out) == 0) {
        /* the answer is one of the hops */
        int found = 0;
        for (int h = 0; h < 2 && !found; h++) {
            size_t b = 0;
            for (size_t i = 0; i <= lens[h] && !found; i++) {
                if (i < lens[h] && vals[h][i] != ',') continue;
                uint8_t hop[16];
                if (real_ip_parse(vals[h] + b, i - b, hop) == 0 && memcmp(hop, out, 16) == 0) found = 1;
                b = i + 1;
            }
        }
        if (!found) abort();
    }
    real_ip_parse(s + cut, len - cut, out);
    char text[CIDR_ADDR_TEXT];
    cidr_addr_format(out, text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1) proxy(data + 1, size - 1);
    else xff(data + 1, size - 1);
    return 0;
}
