/* test_fanout_unit.c - unit tests of the fanout parsers: the HTTP request
 * parser, the WebSocket frame reader and encoders, and the handshake. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/certhash.h"
#include "fanout/http_parser.h"
#include "fanout/ws_frame.h"
#include "fanout/ws_handshake.h"
#include "check.h"

static const struct http_limits lim = { 8192, 64 };
static struct http_request req;

static enum http_status parse(const char *s)
{
    return http_parse_request(s, strlen(s), &lim, &req);
}

static void test_http_good(void)
{
    const char *r = "GET /sse?stream=full&x=1 HTTP/1.1\r\nHost: example\r\n"
                    "Upgrade:  websocket \r\nX-Empty:\r\n\r\nEXTRA";
    CHECK(parse(r) == HTTP_OK);
    CHECK(http_str_eq(req.method, "GET"));
    CHECK(http_str_eq(req.target, "/sse?stream=full&x=1"));
    CHECK(http_str_eq(req.path, "/sse"));
    CHECK(http_str_eq(req.query, "stream=full&x=1"));
    CHECK(req.minor == 1);
    CHECK(req.n_headers == 3);
    CHECK(req.head_len == strlen(r) - 5);
    const struct http_str *v = http_header_get(&req, "upgrade");
    CHECK(v && http_str_eq(*v, "websocket"));
    v = http_header_get(&req, "X-EMPTY");
    CHECK(v && v->len == 0);
    CHECK(http_header_get(&req, "Missing") == NULL);
    struct http_str q;
    CHECK(http_query_param(req.query, "stream", &q) && http_str_eq(q, "full"));
    CHECK(http_query_param(req.query, "x", &q) && http_str_eq(q, "1"));
    CHECK(!http_query_param(req.query, "stre", &q));

    /* bare LF line ends, HTTP/1.0, no headers */
    CHECK(parse("GET / HTTP/1.0\n\n") == HTTP_OK && req.minor == 0 && req.n_headers == 0);
    /* absolute form keeps the path */
    CHECK(parse("GET http://h:8080/full-stream?a HTTP/1.1\r\n\r\n") == HTTP_OK);
    CHECK(http_str_eq(req.path, "/full-stream") && http_str_eq(req.query, "a"));
    CHECK(parse("GET http://h:8080 HTTP/1.1\r\n\r\n") == HTTP_OK && http_str_eq(req.path, "/"));
    /* other methods parse; routing answers 405 */
    CHECK(parse("POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == HTTP_OK && http_str_eq(req.method, "POST"));

    CHECK(http_list_has_token((struct http_str){ "keep-alive, Upgrade", 19 }, "upgrade"));
    CHECK(!http_list_has_token((struct http_str){ "keep-alive, Upgrades", 20 }, "upgrade"));
    CHECK(http_header_count(&req, "content-length") == 1);
}

static void test_http_incremental(void)
{
    const char *r = "GET /full-stream HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: x\r\n\r\n";
    size_t n = strlen(r);
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (http_parse_request(r, i, &lim, &req) != HTTP_INCOMPLETE) bad++;
    CHECK_MSG(bad == 0, "%d prefixes were not INCOMPLETE", bad);
    CHECK(http_parse_request(r, n, &lim, &req) == HTTP_OK && req.head_len == n);
    /* the terminator search resumes where the previous one stopped */
    CHECK(http_head_end(r, n - 2, 0) == 0);
    CHECK(http_head_end(r, n, n - 2) == n);
    CHECK(http_head_end("a\n\nb", 4, 3) == 3);
}

static void test_http_bad(void)
{
    const char tls[] = { 0x16, 0x03, 0x01, 0x02, 0x00 };
    CHECK(http_parse_request(tls, sizeof tls, &lim, &req) == HTTP_BAD);       /* early, incomplete */
    CHECK(parse(" GET / HTTP/1.1\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET") == HTTP_INCOMPLETE);
    CHECK(parse("GET /") == HTTP_INCOMPLETE);
    CHECK(parse("G{T / HTTP/1.1") == HTTP_BAD);
    CHECK(parse("GET / HTTP/1.1 \r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET  / HTTP/1.1\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET / http/1.1\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET /\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET / HTTP/2.0\r\n\r\n") == HTTP_BAD_VERSION);
    CHECK(parse("GET / HTTP/1.10\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET x HTTP/1.1\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET /a#b HTTP/1.1\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET / HTTP/1.1\r\nName : v\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET / HTTP/1.1\r\n: v\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n") == HTTP_BAD);        /* obs-fold */
    CHECK(parse("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n") == HTTP_BAD);
    CHECK(parse("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n") == HTTP_BAD);           /* bare CR */
    CHECK(parse("GET /\r HTTP/1.1\r\n\r\n") == HTTP_BAD);
    CHECK(parse("\r\n\r\n") == HTTP_BAD);
    char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    CHECK(http_parse_request(nul, sizeof nul - 1, &lim, &req) == HTTP_BAD);
}

static void test_http_limits(void)
{
    struct http_limits small = { 64, 3 };
    const char *three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    const char *four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    CHECK(http_parse_request(three, strlen(three), &small, &req) == HTTP_OK);
    CHECK(http_parse_request(four, strlen(four), &small, &req) == HTTP_TOO_LARGE);
    /* 64 bytes without the end of the head */
    char big[200];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    CHECK(http_parse_request(big, 63, &small, &req) == HTTP_INCOMPLETE);
    CHECK(http_parse_request(big, 64, &small, &req) == HTTP_TOO_LARGE);
    /* complete, but the head itself is longer than the limit */
    memcpy(big + 100, "\r\n\r\n", 4);
    CHECK(http_parse_request(big, 104, &small, &req) == HTTP_TOO_LARGE);
    /* the limit counts the head only: a head of exactly 64 bytes plus early data is fine */
    char exact[80];
    memset(exact, 'b', sizeof exact);
    memcpy(exact, "GET / HTTP/1.1\r\nX: ", 19);
    memcpy(exact + 60, "\r\n\r\n", 4);
    CHECK(http_parse_request(exact, 80, &small, &req) == HTTP_OK && req.head_len == 64);
}

/* ---- WebSocket ---- */

static size_t mk_frame(uint8_t *out, int fin, int op, const void *payload, size_t len, const uint8_t mask[4])
{
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | op);
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[h++] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        out[h++] = m | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = m | 127;
        for (int i = 7; i >= 0; i--) out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(out + h, mask, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[h + i] = ((const uint8_t *)payload)[i] ^ (mask ? mask[i & 3] : 0);
    return h + len;
}

static const uint8_t M[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* Feeds all bytes (optionally one at a time) and collects events. */
struct evlog { int n; struct ws_event ev[16]; uint8_t payload[16][WS_MAX_CONTROL]; };

static void feed_all(struct ws_reader *r, const uint8_t *p, size_t n, int bytewise, struct evlog *log)
{
    memset(log, 0, sizeof *log);
    size_t i = 0;
    while (i < n && log->n < 16) {
        struct ws_event ev;
        size_t chunk = bytewise ? 1 : n - i;
        size_t used = ws_reader_feed(r, p + i, chunk, &ev);
        i += used;
        if (ev.type != WS_EV_NONE) {
            memcpy(log->payload[log->n], ev.payload ? ev.payload : (const uint8_t *)"", ev.payload_len);
            log->ev[log->n++] = ev;
            if (ev.type == WS_EV_ERROR || ev.type == WS_EV_CLOSE) break;
        } else if (used == 0) {
            break;
        }
    }
}

static struct ws_reader rd;

static void test_ws_rfc_examples(void)
{
    /* RFC 6455 5.7: masked "Hello" */
    const uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    struct evlog log;
    for (int bw = 0; bw < 2; bw++) {
        ws_reader_init(&rd, 65536, 262144);
        feed_all(&rd, hello, sizeof hello, bw, &log);
        CHECK(log.n == 1 && log.ev[0].type == WS_EV_MESSAGE && log.ev[0].msg_opcode == WS_OP_TEXT &&
              log.ev[0].msg_len == 5);
    }
    /* unmasked "Hello" from a client: 1002 */
    const uint8_t unmasked[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    ws_reader_init(&rd, 65536, 262144);
    feed_all(&rd, unmasked, sizeof unmasked, 0, &log);
    CHECK(log.n == 1 && log.ev[0].type == WS_EV_ERROR && log.ev[0].close_code == 1002);
    /* after an error the reader takes nothing more */
    struct ws_event ev;
    CHECK(ws_reader_feed(&rd, hello, sizeof hello, &ev) == 0 && ev.type == WS_EV_NONE);
}

static void test_ws_fragments_and_control(void)
{
    uint8_t buf[512];
    size_t n = 0;
    n += mk_frame(buf + n, 0, WS_OP_TEXT, "Hel", 3, M);
    n += mk_frame(buf + n, 1, WS_OP_PING, "ping!", 5, M);      /* control inside a message */
    n += mk_frame(buf + n, 0, WS_OP_CONT, "l", 1, M);
    n += mk_frame(buf + n, 1, WS_OP_CONT, "o", 1, M);
    n += mk_frame(buf + n, 1, WS_OP_PONG, "", 0, M);
    n += mk_frame(buf + n, 1, WS_OP_BINARY, "\xff\x00", 2, M);
    n += mk_frame(buf + n, 1, WS_OP_CLOSE, "\x03\xe8" "bye", 5, M);
    for (int bw = 0; bw < 2; bw++) {
        struct evlog log;
        ws_reader_init(&rd, 65536, 262144);
        feed_all(&rd, buf, n, bw, &log);
        CHECK(log.n == 5);
        CHECK(log.ev[0].type == WS_EV_PING && log.ev[0].payload_len == 5 && !memcmp(log.payload[0], "ping!", 5));
        CHECK(log.ev[1].type == WS_EV_MESSAGE && log.ev[1].msg_len == 5 && log.ev[1].msg_opcode == WS_OP_TEXT);
        CHECK(log.ev[2].type == WS_EV_PONG && log.ev[2].payload_len == 0);
        CHECK(log.ev[3].type == WS_EV_MESSAGE && log.ev[3].msg_opcode == WS_OP_BINARY && log.ev[3].msg_len == 2);
        CHECK(log.ev[4].type == WS_EV_CLOSE && log.ev[4].close_code == 1000 && log.ev[4].payload_len == 3 &&
              !memcmp(log.payload[4], "bye", 3));
    }
    /* 16-bit length, masked, 200 bytes */
    uint8_t big[300], payload[200];
    memset(payload, 'x', sizeof payload);
    n = mk_frame(big, 1, WS_OP_TEXT, payload, sizeof payload, M);
    struct evlog log;
    ws_reader_init(&rd, 65536, 262144);
    feed_all(&rd, big, n, 1, &log);
    CHECK(log.n == 1 && log.ev[0].type == WS_EV_MESSAGE && log.ev[0].msg_len == 200);
}

static uint16_t error_of(const uint8_t *buf, size_t n, uint32_t max_frame, uint32_t max_msg)
{
    struct evlog log;
    ws_reader_init(&rd, max_frame, max_msg);
    feed_all(&rd, buf, n, 0, &log);
    for (int i = 0; i < log.n; i++)
        if (log.ev[i].type == WS_EV_ERROR) return log.ev[i].close_code;
    return 0;
}

static void test_ws_errors(void)
{
    uint8_t b[512];
    size_t n;
    n = mk_frame(b, 1, WS_OP_CONT, "x", 1, M);
    CHECK(error_of(b, n, 65536, 262144) == 1002);                          /* continuation first */
    n = mk_frame(b, 0, WS_OP_TEXT, "a", 1, M);
    n += mk_frame(b + n, 1, WS_OP_TEXT, "b", 1, M);
    CHECK(error_of(b, n, 65536, 262144) == 1002);                          /* new message inside one */
    n = mk_frame(b, 0, WS_OP_PING, "a", 1, M);
    CHECK(error_of(b, n, 65536, 262144) == 1002);                          /* fragmented control */
    uint8_t p126[126] = { 0 };
    n = mk_frame(b, 1, WS_OP_PING, p126, 126, M);
    CHECK(error_of(b, n, 65536, 262144) == 1002);                          /* control > 125 */
    n = mk_frame(b, 1, WS_OP_TEXT, "a", 1, M);
    b[0] |= 0x40;
    CHECK(error_of(b, n, 65536, 262144) == 1002);                          /* RSV1 */
    n = mk_frame(b, 1, 3, "a", 1, M);
    CHECK(error_of(b, n, 65536, 262144) == 1002);                          /* reserved opcode */
    n = mk_frame(b, 1, 0xB, "a", 1, M);
    CHECK(error_of(b, n, 65536, 262144) == 1002);
    const uint8_t huge[] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4 };
    CHECK(error_of(huge, sizeof huge, 65536, 262144) == 1002);             /* top bit of 64-bit length */
    /* limits: a frame over max_frame fails on its header alone */
    const uint8_t hdr_only[] = { 0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4 };     /* 256 bytes announced */
    CHECK(error_of(hdr_only, sizeof hdr_only, 255, 262144) == 1009);
    CHECK(error_of(hdr_only, sizeof hdr_only, 256, 262144) == 0);
    uint8_t p100[100] = { 0 };
    n = mk_frame(b, 0, WS_OP_BINARY, p100, 100, M);
    n += mk_frame(b + n, 0, WS_OP_CONT, p100, 100, M);
    n += mk_frame(b + n, 1, WS_OP_CONT, p100, 100, M);
    CHECK(error_of(b, n, 100, 299) == 1009);                               /* message over max */
    CHECK(error_of(b, n, 100, 300) == 0);

    /* close frames */
    n = mk_frame(b, 1, WS_OP_CLOSE, "\x03", 1, M);
    CHECK(error_of(b, n, 65536, 262144) == 1002);                          /* 1-byte payload */
    const uint16_t bad_codes[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535 };
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        uint8_t p[2] = { (uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i] };
        n = mk_frame(b, 1, WS_OP_CLOSE, p, 2, M);
        CHECK_MSG(error_of(b, n, 65536, 262144) == 1002, "code %u", bad_codes[i]);
    }
    const uint16_t good_codes[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999 };
    for (size_t i = 0; i < sizeof good_codes / sizeof good_codes[0]; i++) {
        uint8_t p[2] = { (uint8_t)(good_codes[i] >> 8), (uint8_t)good_codes[i] };
        n = mk_frame(b, 1, WS_OP_CLOSE, p, 2, M);
        struct evlog log;
        ws_reader_init(&rd, 65536, 262144);
        feed_all(&rd, b, n, 0, &log);
        CHECK_MSG(log.n == 1 && log.ev[0].type == WS_EV_CLOSE && log.ev[0].close_code == good_codes[i],
                  "code %u", good_codes[i]);
    }
    n = mk_frame(b, 1, WS_OP_CLOSE, "\x03\xe8\xff", 3, M);
    CHECK(error_of(b, n, 65536, 262144) == 1007);                          /* reason not UTF-8 */
    n = mk_frame(b, 1, WS_OP_CLOSE, "", 0, M);
    {
        struct evlog log;
        ws_reader_init(&rd, 65536, 262144);
        feed_all(&rd, b, n, 0, &log);
        CHECK(log.n == 1 && log.ev[0].type == WS_EV_CLOSE && log.ev[0].close_code == 0);
    }

    /* UTF-8 in text messages */
    const char *bad_utf8[] = { "\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "a\x80" };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        n = mk_frame(b, 1, WS_OP_TEXT, bad_utf8[i], strlen(bad_utf8[i]), M);
        CHECK_MSG(error_of(b, n, 65536, 262144) == 1007, "case %zu", i);
    }
    /* a valid code point split across fragments */
    n = mk_frame(b, 0, WS_OP_TEXT, "\xe2\x82", 2, M);
    n += mk_frame(b + n, 1, WS_OP_CONT, "\xac", 1, M);
    CHECK(error_of(b, n, 65536, 262144) == 0);
    /* invalid bytes in binary messages are fine */
    n = mk_frame(b, 1, WS_OP_BINARY, "\xff\xfe", 2, M);
    CHECK(error_of(b, n, 65536, 262144) == 0);
    /* fail fast: the error comes before the message ends */
    n = mk_frame(b, 0, WS_OP_TEXT, "\xff", 1, M);
    CHECK(error_of(b, n, 65536, 262144) == 1007);

    CHECK(ws_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    CHECK(!ws_utf8_valid((const uint8_t *)"\xf0\x9f\x98", 3));
}

static void test_ws_encoders(void)
{
    uint8_t h[10];
    CHECK(ws_frame_header(h, WS_OP_TEXT, 0) == 2 && h[0] == 0x81 && h[1] == 0);
    CHECK(ws_frame_header(h, WS_OP_TEXT, 125) == 2 && h[1] == 125);
    CHECK(ws_frame_header(h, WS_OP_TEXT, 126) == 4 && h[1] == 126 && h[2] == 0 && h[3] == 126);
    CHECK(ws_frame_header(h, WS_OP_TEXT, 65535) == 4 && h[2] == 0xff && h[3] == 0xff);
    CHECK(ws_frame_header(h, WS_OP_BINARY, 65536) == 10 && h[0] == 0x82 && h[1] == 127 && h[7] == 1 && h[8] == 0);
    uint8_t c[2 + WS_MAX_CONTROL];
    size_t n = ws_close_frame(c, 1008, "client too slow");
    CHECK(n == 19 && c[0] == 0x88 && c[1] == 17 && c[2] == 0x03 && c[3] == 0xf0 && !memcmp(c + 4, "client too slow", 15));
    char longr[300];
    memset(longr, 'r', sizeof longr - 1);
    longr[sizeof longr - 1] = 0;
    n = ws_close_frame(c, 1000, longr);
    CHECK(n == 2 + 125 && c[1] == 125);
}

static void test_handshake(void)
{
    char acc[WS_ACCEPT_LEN + 1];
    CHECK(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, acc) == 0);
    CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);

    struct ws_handshake hs;
    CHECK(parse("GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n") == HTTP_OK);
    CHECK(ws_is_upgrade(&req));
    CHECK(ws_handshake_check(&req, &hs) == 0);
    CHECK(strcmp(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    CHECK(strcmp(hs.protocol, "chat") == 0);
    char resp[400];
    size_t n = ws_handshake_response(resp, sizeof resp, &hs);
    const char *want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
    CHECK(n == strlen(want) && memcmp(resp, want, n) == 0);
    CHECK(ws_handshake_response(resp, 20, &hs) == 0);

    /* Firefox style Connection list, case-insensitive Upgrade, no protocol */
    CHECK(parse("GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
                "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version: 13\r\n\r\n") == HTTP_OK);
    CHECK(ws_handshake_check(&req, &hs) == 0 && hs.protocol[0] == 0);

    CHECK(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version: 8\r\n\r\n") == HTTP_OK);
    CHECK(ws_handshake_check(&req, &hs) == 426);
    CHECK(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n") == HTTP_OK);
    CHECK(ws_handshake_check(&req, &hs) == 400);                          /* no key */
    CHECK(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P\r\nSec-WebSocket-Version: 13\r\n\r\n") == HTTP_OK);
    CHECK(ws_handshake_check(&req, &hs) == 400);                          /* key not 16 bytes */
    CHECK(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: close\r\n"
                "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version: 13\r\n\r\n") == HTTP_OK);
    CHECK(ws_handshake_check(&req, &hs) == 400);                          /* no Connection: upgrade */
    CHECK(parse("GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version: 13\r\n\r\n") == HTTP_OK);
    CHECK(ws_handshake_check(&req, &hs) == 400);                          /* HTTP/1.0 */
    CHECK(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n") == HTTP_OK);
    CHECK(ws_handshake_check(&req, &hs) == 400);                          /* two keys */
}

/* /api/cert hashes: the forms the messages print, plain hex, lower case;
 * anything else is refused. */
static void test_certhash(void)
{
    uint8_t h[32];
    static const uint8_t sha1[20] = { 0x30, 0xAF, 0x23, 0xFE, 0x9B, 0xE0, 0x77, 0x2E, 0xFF, 0x5C,
                                      0x05, 0x26, 0x70, 0x0B, 0x79, 0xFF, 0x56, 0x6B, 0xBE, 0x3A };
    static const char *const good1[] = { "30:AF:23:FE:9B:E0:77:2E:FF:5C:05:26:70:0B:79:FF:56:6B:BE:3A",
                                         "30af23fe9be0772eff5c0526700b79ff566bbe3a",
                                         "30AF23FE9BE0772EFF5C0526700B79FF566BBE3A" };
    for (size_t i = 0; i < 3; i++) {
        memset(h, 0, sizeof h);
        CHECK(certhash_parse(good1[i], strlen(good1[i]), h) == 20 && memcmp(h, sha1, 20) == 0);
    }
    const char *s256 = "DE:72:2A:58:26:7A:42:3C:AA:DF:F9:CB:59:A8:50:8B:C9:CC:61:6D:12:C0:A2:FF:93:27:B1:15:1B:5E:C3:86";
    CHECK(certhash_parse(s256, strlen(s256), h) == 32 && h[0] == 0xDE && h[31] == 0x86);
    static const char *const bad[] = { "", "3", "30:", ":30", "30::AF", "zz", "30af23fe9be0772eff5c0526700b79ff566bbe",
                                       "30af23fe9be0772eff5c0526700b79ff566bbe3a00",
                                       "de722a58267a423caadff9cb59a8508bc9cc616d12c0a2ff9327b1151b5ec38600" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK(certhash_parse(bad[i], strlen(bad[i]), h) == 0);
    /* the leaf's hashes, not the chain's */
    const char *msg = "{\"data\":{\"leaf_cert\":{\"subject\":{\"CN\":\"\\\"sha1\\\":\\\"00\"},"
                      "\"sha1\":\"30:AF:23:FE:9B:E0:77:2E:FF:5C:05:26:70:0B:79:FF:56:6B:BE:3A\"},"
                      "\"chain\":[{\"sha1\":\"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00\"}]}}";
    CHECK(certhash_leaf(msg, strlen(msg), "sha1", h) == 20 && memcmp(h, sha1, 20) == 0);
    CHECK(certhash_leaf(msg, strlen(msg), "sha256", h) == 0);
    CHECK(certhash_leaf("{}", 2, "sha1", h) == 0);
}

int main(void)
{
    test_certhash();
    test_http_good();
    test_http_incremental();
    test_http_bad();
    test_http_limits();
    test_ws_rfc_examples();
    test_ws_fragments_and_control();
    test_ws_errors();
    test_ws_encoders();
    test_handshake();
    return check_report();
}
