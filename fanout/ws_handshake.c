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

/* One parameter of an extension offer: name[=value], value maybe quoted. */
struct ext_param { struct http_str name, value; bool has_value; };

static struct http_str trim(struct http_str s)
{
    while (s.len && (*s.p == ' ' || *s.p == '\t')) { s.p++; s.len--; }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t')) s.len--;
    return s;
}

static struct ext_param ext_param(struct http_str s)
{
    struct ext_param p = { trim(s), { "", 0 }, false };
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] != '=') continue;
        p.name = trim((struct http_str){ s.p, i });
        p.value = trim((struct http_str){ s.p + i + 1, s.len - i - 1 });
        if (p.value.len >= 2 && p.value.p[0] == '"' && p.value.p[p.value.len - 1] == '"') {
            p.value.p++;
            p.value.len -= 2;
        }
        p.has_value = true;
        break;
    }
    return p;
}

/* window bits: "8".."15" */
static int window_bits(struct http_str v)
{
    if (v.len == 1 && v.p[0] >= '8' && v.p[0] <= '9') return v.p[0] - '0';
    if (v.len == 2 && v.p[0] == '1' && v.p[1] >= '0' && v.p[1] <= '5') return 10 + v.p[1] - '0';
    return -1;
}

/* One offer: "permessage-deflate; p1; p2=v". *takeover: no
 * server_no_context_takeover in it. */
static bool offer_ok(struct http_str offer, bool *takeover)
{
    size_t i = 0, s = 0;
    bool first = true, seen[4] = { false, false, false, false };
    for (;; i++) {
        if (i < offer.len && offer.p[i] != ';') continue;
        struct http_str part = trim((struct http_str){ offer.p + s, i - s });
        if (first) {
            if (!http_str_ieq(part, "permessage-deflate")) return false;
            first = false;
        } else {
            struct ext_param p = ext_param(part);
            static const char *const known[4] = { "server_no_context_takeover", "client_no_context_takeover",
                                                  "server_max_window_bits", "client_max_window_bits" };
            int k = -1;
            for (int j = 0; j < 4; j++)
                if (http_str_ieq(p.name, known[j])) k = j;
            if (k < 0 || seen[k]) return false;   /* unknown or repeated: decline the offer */
            seen[k] = true;
            if (k <= 1 && p.has_value) return false;
            /* the server compresses with a 32 KiB window: a smaller one
             * cannot be honoured */
            if (k == 2 && (!p.has_value || window_bits(p.value) != 15)) return false;
            if (k == 3 && p.has_value && window_bits(p.value) < 0) return false;
        }
        if (i >= offer.len) break;
        s = i + 1;
    }
    *takeover = !seen[0];
    return !first;
}

bool ws_deflate_offer_ok(const struct http_request *req)
{
    bool takeover;
    return ws_deflate_offer(req, &takeover);
}

bool ws_deflate_offer(const struct http_request *req, bool *takeover)
{
    *takeover = false;
    for (size_t h = 0; h < req->n_headers; h++) {
        if (!http_str_ieq(req->headers[h].name, "Sec-WebSocket-Extensions")) continue;
        struct http_str v = req->headers[h].value;
        size_t s = 0;
        bool quoted = false;
        for (size_t i = 0; i <= v.len; i++) {
            if (i < v.len && v.p[i] == '"') quoted = !quoted;
            if (i < v.len && (v.p[i] != ',' || quoted)) continue;
            if (offer_ok((struct http_str){ v.p + s, i - s }, takeover)) return true;
            s = i + 1;
        }
    }
    return false;
}

int ws_handshake_check(const struct http_request *req, struct ws_handshake *hs)
{
    hs->deflate = false;
    hs->takeover = false;
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
    static const char ext_own[] = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n";
    static const char ext_takeover[] = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    const char *ext = hs->takeover ? ext_takeover : ext_own;
    int n;
    if (hs->protocol[0])
        n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n%s\r\n", hs->accept, hs->protocol, hs->deflate ? ext : "");
    else
        n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n", hs->accept,
                     hs->deflate ? ext : "");
    if (n < 0 || (size_t)n >= cap) return 0;
    return (size_t)n;
}
