/* fuzz_ws_frame.c - libFuzzer target for the WebSocket frame reader. The
 * first byte picks a chunk size, so the same frames are also fed in pieces;
 * the events must not depend on how the bytes were split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/ws_frame.h"

struct trace { int n; uint32_t h; };

static void run(const uint8_t *p, size_t n, size_t chunk, struct trace *t)
{
    struct ws_reader r;
    ws_reader_init(&r, 4096, 16384);
    memset(t, 0, sizeof *t);
    size_t i = 0;
    while (i < n) {
        struct ws_event ev;
        size_t len = n - i < chunk ? n - i : chunk;
        size_t used = ws_reader_feed(&r, p + i, len, &ev);
        if (used > len) abort();
        i += used;
        if (ev.type != WS_EV_NONE) {
            if (ev.payload_len > WS_MAX_CONTROL) abort();
            t->n++;
            t->h = t->h * 31 + (uint32_t)ev.type * 7 + ev.close_code;
            for (size_t k = 0; k < ev.payload_len; k++) t->h = t->h * 131 + ev.payload[k];
            if (ev.type == WS_EV_ERROR || ev.type == WS_EV_CLOSE) break;
        } else if (used == 0) {
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t chunk = (size_t)(data[0] % 16) + 1;
    uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    struct trace whole, pieces;
    run(buf, size - 1, size, &whole);
    run(buf, size - 1, chunk, &pieces);
    if (whole.n != pieces.n || whole.h != pieces.h) abort();
    uint8_t out[2 + WS_MAX_CONTROL];
    if (size >= 3) ws_close_frame(out, (uint16_t)(data[1] << 8 | data[2]), (const char *)"fuzz");
    free(buf);
    return 0;
}
