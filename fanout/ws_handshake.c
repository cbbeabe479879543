/* ws_handshake.c - RFC 6455 opening handshake, server side. See ws_handshake.h. */
#include "fanout/ws_handshake.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool ws_is_upgrade(const struct http_request *req)
{
    const struct http_str *up = http_header_get(req, "Upgrade");
    return up && http_list_has_token(*up, "websocket");
}

int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char buf[128], sha[20];
    size_t olen = 0;
    if (key_len + sizeof ws_guid - 1 > sizeof buf) return -1;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, ws_guid, sizeof ws_guid - 1);
    if (mbedtls_sha1_ret(buf, key_len + sizeof ws_guid - 1, sha) != 0) return -1;
    if (mbedtls_base64_encode((unsigned char *)out, WS_ACCEPT_LEN + 1, &olen, sha, sizeof sha) != 0 ||
        olen != WS_ACCEPT_LEN)
        return -1;
    out[WS_ACCEPT_LEN] = '\0';
    return 0;
}

/* The first token of the first Sec-WebSocket-Protocol header, if it is a
 * plausible token; the server speaks no subprotocol of its own, so echoing
 * one keeps clients that insist on a subprotocol working. */
static void pick_protocol(const struct http_request *req, struct ws_handshake *hs)
{
    hs->protocol[0] = '\0';
    const struct http_str *v = http_header_get(req, "Sec-WebSocket-Protocol");
    if (!v) return;
    size_t i = 0, s;
    while (i < v->len && (v->p[i] == ' ' || v->p[i] == ',')) i++;
    s = i;
    while (i < v->len && v->p[i] != ',' && v->p[i] != ' ' && v->p[i] != '\t') {
        char c = v->p[i];
        if (c <= 0x20 || c >= 0x7f || strchr("()<>@;:\\\"/[]?={}", c)) return;
        i++;
    }
    if (i == s || i - s > WS_PROTOCOL_MAX) return;
    memcpy(hs->protocol, v->p + s, i - s);
    hs->protocol[i - s] = '\0';
}

int ws_handshake_check(const struct http_request *req, struct ws_handshake *hs)
{
    if (!http_str_eq(req->method, "GET") || req->minor < 1) return 400;
    if (!ws_is_upgrade(req)) return 400;
    const struct http_str *conn = http_header_get(req, "Connection");
    if (!conn || !http_list_has_token(*conn, "upgrade")) return 400;
    const struct http_str *ver = http_header_get(req, "Sec-WebSocket-Version");
    if (!ver || !http_str_eq(*ver, "13")) return 426;
    if (http_header_count(req, "Sec-WebSocket-Key") != 1) return 400;
    const struct http_str *key = http_header_get(req, "Sec-WebSocket-Key");
    unsigned char raw[32];
    size_t olen = 0;
    if (key->len != 24 ||
        mbedtls_base64_decode(raw, sizeof raw, &olen, (const unsigned char *)key->p, key->len) != 0 ||
        olen != 16)
        return 400;
    if (ws_accept_key(key->p, key->len, hs->accept) != 0) return 400;
    pick_protocol(req, hs);
    return 0;
}

size_t ws_handshake_response(char *out, size_t cap, const struct ws_handshake *hs)
{
    int n;
    if (hs->protocol[0])
        n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n\r\n", hs->accept, hs->protocol);
    else
        n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", hs->accept);
    if (n < 0 || (size_t)n >= cap) return 0;
    return (size_t)n;
}
