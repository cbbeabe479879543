/* test_deflate.c - permessage-deflate pieces without sockets: which offers
 * are accepted (RFC 7692 parameters), the 101 answer, the compressor's
 * payload (inflated by zlib to the exact input, no 00 00 ff ff tail), and
 * the frame reader's RSV1 rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/wsdeflate.h"
#include "fanout/http_parser.h"
#include "fanout/ws_frame.h"
#include "fanout/ws_handshake.h"

static int passed, failed;
#define CHECK(c) do { if (c) passed++; else { failed++; printf("FAIL line %d: %s\n", __LINE__, #c); } } while (0)

static int offer(const char *ext_headers)
{
    static char buf[2048];
    static struct http_request req;
    snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n", ext_headers);
    struct http_limits lim = { sizeof buf, 32 };
    if (http_parse_request(buf, strlen(buf), &lim, &req) != HTTP_OK) return -1;
    return ws_deflate_offer_ok(&req);
}

static void test_offers(void)
{
    CHECK(offer("") == 0);
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate\r\n") == 1);
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n") == 1);   /* Chromium */
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15; "
                "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15\r\n") == 1);
    CHECK(offer("Sec-WebSocket-Extensions: PerMessage-Deflate ;  server_max_window_bits=\"15\"\r\n") == 1);
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n") == 0);
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits\r\n") == 0);
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=7\r\n") == 0);
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=16\r\n") == 0);
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover=1\r\n") == 0);
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; mystery\r\n") == 0);
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
                "client_no_context_takeover\r\n") == 0);
    CHECK(offer("Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n") == 0);
    /* a list: the first acceptable offer, in this header or a later one */
    CHECK(offer("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8, permessage-deflate\r\n") == 1);
    CHECK(offer("Sec-WebSocket-Extensions: foo; a=\"x,y\"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n") == 1);

    struct ws_handshake hs;
    memset(&hs, 0, sizeof hs);
    strcpy(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    hs.deflate = true;
    char out[512];
    size_t n = ws_handshake_response(out, sizeof out, &hs);
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n";
    CHECK(n == sizeof want - 1 && memcmp(out, want, n) == 0);
}

static void test_compressor(void)
{
    struct wsdeflate *d = wsdeflate_new(6);
    CHECK(d != NULL);
    if (!d) return;
    char msg[4096];
    for (int round = 0; round < 3; round++) {
        size_t n = (size_t)snprintf(msg, sizeof msg,
                                    "{\"message_type\":\"certificate_update\",\"data\":{\"all_domains\":"
                                    "[\"a%d.example.com\",\"www.a%d.example.com\",\"mail.a%d.example.com\"],"
                                    "\"source\":{\"name\":\"Example log\",\"url\":\"https://ct.example/\"}}}",
                                    round, round, round);
        const uint8_t *z;
        size_t zn = wsdeflate_message(d, msg, n, &z);
        CHECK(zn > 0 && zn < n);
        CHECK(zn < 4 || memcmp(z + zn - 4, "\x00\x00\xff\xff", 4) != 0);
        /* the receiver's procedure (RFC 7692 7.2.2), each message alone */
        uint8_t in[4096], back[4096];
        memcpy(in, z, zn);
        memcpy(in + zn, "\x00\x00\xff\xff", 4);
        z_stream s;
        memset(&s, 0, sizeof s);
        CHECK(inflateInit2(&s, -15) == Z_OK);
        s.next_in = in;
        s.avail_in = (uInt)(zn + 4);
        s.next_out = back;
        s.avail_out = sizeof back;
        int rc = inflate(&s, Z_SYNC_FLUSH);
        CHECK(rc == Z_OK && s.total_out == n && memcmp(back, msg, n) == 0);
        inflateEnd(&s);
    }
    /* incompressible or tiny: 0, send it plain */
    const uint8_t *z;
    CHECK(wsdeflate_message(d, "ab", 2, &z) == 0);
    wsdeflate_free(d);
}

static int feed(struct ws_reader *r, const uint8_t *f, size_t n, struct ws_event *ev)
{
    size_t used = ws_reader_feed(r, f, n, ev);
    return (int)used;
}

static void test_reader(void)
{
    /* masked (zero mask) frames: a compressed text message, RSV1 on a ping */
    static const uint8_t text_z[] = { 0xC1, 0x85, 0, 0, 0, 0, 0xf2, 0x48, 0xcd, 0xc9, 0xc9 };
    static const uint8_t ping_z[] = { 0xC9, 0x80, 0, 0, 0, 0 };
    static const uint8_t cont_z[] = { 0x01, 0x80, 0, 0, 0, 0, 0xC0, 0x80, 0, 0, 0, 0 };
    struct ws_reader r;
    struct ws_event ev;
    ws_reader_init(&r, 1024, 4096);
    feed(&r, text_z, sizeof text_z, &ev);
    CHECK(ev.type == WS_EV_ERROR && !strcmp(ev.reason, "reserved bits set"));   /* not negotiated */
    ws_reader_init(&r, 1024, 4096);
    r.rsv1_ok = 1;
    feed(&r, text_z, sizeof text_z, &ev);
    CHECK(ev.type == WS_EV_MESSAGE && ev.msg_len == 5);   /* not UTF-8, but compressed: accepted */
    ws_reader_init(&r, 1024, 4096);
    r.rsv1_ok = 1;
    feed(&r, ping_z, sizeof ping_z, &ev);
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == WS_CLOSE_PROTOCOL);   /* never on control frames */
    ws_reader_init(&r, 1024, 4096);
    r.rsv1_ok = 1;
    size_t u = ws_reader_feed(&r, cont_z, sizeof cont_z, &ev);
    if (ev.type == WS_EV_NONE) ws_reader_feed(&r, cont_z + u, sizeof cont_z - u, &ev);
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == WS_CLOSE_PROTOCOL);   /* nor on continuations */
}

int main(void)
{
    test_offers();
    test_compressor();
    test_reader();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
