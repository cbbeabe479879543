/* fuzz_http_parser.c - libFuzzer target for the HTTP request parser: any
 * input must parse to a status without reading outside the buffer, and every
 * string of an OK result must lie inside the head. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/http_parser.h"

static struct http_request req;

static void inside(struct http_str s, const char *buf, size_t len)
{
    if (s.len && (s.p < buf || s.p + s.len > buf + len)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* copy into an exact-size heap buffer so ASan sees any over-read */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    struct http_limits lim = { 1024, 16 };
    enum http_status st = http_parse_request(buf, size, &lim, &req);
    if (st == HTTP_OK) {
        if (req.head_len > size || req.head_len > lim.max_request_bytes || req.n_headers > 16) abort();
        inside(req.method, buf, req.head_len);
        /* absolute form without a path ("http://h") maps to a static "/" */
        if (!http_str_eq(req.path, "/")) inside(req.path, buf, req.head_len);
        inside(req.query, buf, req.head_len);
        for (size_t i = 0; i < req.n_headers; i++) {
            inside(req.headers[i].name, buf, req.head_len);
            inside(req.headers[i].value, buf, req.head_len);
            (void)http_list_has_token(req.headers[i].value, "upgrade");
        }
        struct http_str v;
        (void)http_query_param(req.query, "stream", &v);
        (void)http_header_get(&req, "Sec-WebSocket-Key");
    }
    /* incremental use must agree with the one-shot result */
    size_t end = http_head_end(buf, size, size / 2);
    if (end > size) abort();
    free(buf);
    return 0;
}
