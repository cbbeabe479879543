/* fuzz_lg_parse.c - libFuzzer target for the load generator's stream
 * parser. The first byte picks WebSocket or SSE, the search for "seen" in
 * the middle of messages (scan_mid) and a read size; the rest is what a
 * server sent. The parser must never read out of bounds, loop
 * without consuming, or report fields it did not see. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lg_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct lg_parser p;
    if (size < 1) return 0;
    enum lg_proto proto = (data[0] & 1) ? LG_PROTO_SSE : LG_PROTO_WS;
    size_t chunk = (size_t)(data[0] >> 2) + 1;
    int scan_mid = (data[0] >> 1) & 1;
    data++;
    size--;
    lg_parser_init(&p, proto, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    p.scan_mid = (uint8_t)scan_mid;
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk, o = 0;
        while (o < n) {
            struct lg_result r;
            size_t used;
            enum lg_event e = lg_parse(&p, data + off + o, n - o, &used, &r);
            if (used > n - o) abort();
            o += used;
            if (e == LG_EV_MSG) {
                uint64_t idx;
                int64_t seen;
                const char *u;
                size_t ul;
                if (r.head_len > LG_HEAD || r.tail_len > LG_TAIL || r.tail_len > r.len) abort();
                (void)lg_find_cert_index(r.tail, r.tail_len, &idx);
                (void)lg_find_seen_us(r.tail, r.tail_len, &seen);
                int exact;
                const char *t;
                size_t tl;
                (void)lg_msg_seen_us(&r, &seen, &exact);
                if (r.mid_seen && (r.mid_seen_len == 0 || r.mid_seen_len > LG_SEEN_MAX)) abort();
                if (lg_msg_type(&r, &t, &tl) && !((t >= r.head && t + tl <= r.head + r.head_len) ||
                                                  (t >= r.tail && t + tl <= r.tail + r.tail_len)))
                    abort();
                if (lg_find_source_url(r.tail, r.tail_len, &u, &ul) && (u < r.tail || u + ul > r.tail + r.tail_len))
                    abort();
            } else if (e == LG_EV_NONE && used == 0) {
                abort(); /* input left but nothing consumed */
            }
        }
        off += n;
    }
    return 0;
}
