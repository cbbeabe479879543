/* ws_handshake.h - the RFC 6455 opening handshake (section 4.2), server side:
 * validates an upgrade request and builds the 101 response. Pure functions,
 * so they are unit-tested without sockets. */
#ifndef CS_WS_HANDSHAKE_H
#define CS_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "fanout/http_parser.h"

#define WS_ACCEPT_LEN 28
#define WS_PROTOCOL_MAX 64  /* longest subprotocol name echoed back */

struct ws_handshake {
    char accept[WS_ACCEPT_LEN + 1];
    char protocol[WS_PROTOCOL_MAX + 1];  /* "" when the client offered none */
    bool deflate;                        /* answer with permessage-deflate */
    bool takeover;                       /* ... without server_no_context_takeover (zchain.h) */
};

/* Does the request ask for a WebSocket (an Upgrade header naming websocket)? */
bool ws_is_upgrade(const struct http_request *req);

/* Checks a WebSocket upgrade request: GET, HTTP/1.1, Upgrade: websocket,
 * Connection: upgrade, one Sec-WebSocket-Key of 16 base64 bytes,
 * Sec-WebSocket-Version 13. Returns 0 and fills *hs, or the HTTP status to
 * answer: 400 (bad request) or 426 (unsupported version; answer with
 * Sec-WebSocket-Version: 13). */
int ws_handshake_check(const struct http_request *req, struct ws_handshake *hs);

/* Is one of the request's permessage-deflate offers (RFC 7692) one the
 * server can honour with messages compressed once for every client: no
 * server context takeover, a 32 KiB server window (server_max_window_bits
 * absent or 15), client_no_context_takeover and client_max_window_bits
 * allowed, nothing else, no parameter twice? Offers are tried in order. */
bool ws_deflate_offer_ok(const struct http_request *req);
/* The same, and *takeover: the accepted offer leaves the server its
 * context takeover (it does not ask for server_no_context_takeover; its
 * window is 32 KiB as for every accepted offer), so the server may answer
 * without server_no_context_takeover (compression.shared_context). */
bool ws_deflate_offer(const struct http_request *req, bool *takeover);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)). 0 or -1. */
int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* The 101 response into out[cap]; returns its length, 0 if cap is too small. */
size_t ws_handshake_response(char *out, size_t cap, const struct ws_handshake *hs);

#endif
