/* ws_frame.c - RFC 6455 frame reader (client to server) and frame encoders
 * (server to client). See ws_frame.h. */
#include "fanout/ws_frame.h"

#include "common/wshdr.h"

#include <string.h>

enum { RS_HEADER = 0, RS_PAYLOAD, RS_DONE };

/* UTF-8 validator state: bits 0-7 continuation bytes still expected, bits
 * 8-15 and 16-23 the allowed range of the next byte (the first continuation
 * byte has a narrower range for E0, ED, F0, F4: no overlongs, no surrogates,
 * nothing above U+10FFFF). */
#define U8(need, lo, hi) ((uint32_t)(need) | (uint32_t)(lo) << 8 | (uint32_t)(hi) << 16)

static bool utf8_step(uint32_t *st, uint8_t c)
{
    uint32_t need = *st & 0xff;
    if (need == 0) {
        if (c < 0x80) return true;
        if (c >= 0xc2 && c <= 0xdf) *st = U8(1, 0x80, 0xbf);
        else if (c == 0xe0) *st = U8(2, 0xa0, 0xbf);
        else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) *st = U8(2, 0x80, 0xbf);
        else if (c == 0xed) *st = U8(2, 0x80, 0x9f);
        else if (c == 0xf0) *st = U8(3, 0x90, 0xbf);
        else if (c >= 0xf1 && c <= 0xf3) *st = U8(3, 0x80, 0xbf);
        else if (c == 0xf4) *st = U8(3, 0x80, 0x8f);
        else return false;
        return true;
    }
    uint8_t lo = (uint8_t)(*st >> 8), hi = (uint8_t)(*st >> 16);
    if (c < lo || c > hi) return false;
    *st = need > 1 ? U8(need - 1, 0x80, 0xbf) : 0;
    return true;
}

bool ws_utf8_valid(const uint8_t *s, size_t len)
{
    uint32_t st = 0;
    for (size_t i = 0; i < len; i++)
        if (!utf8_step(&st, s[i])) return false;
    return st == 0;
}

bool ws_close_code_valid(uint16_t code)
{
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1014) return true;  /* 1012-1014: IANA registry */
    return code >= 3000 && code <= 4999;
}

void ws_reader_init(struct ws_reader *r, uint32_t max_frame, uint32_t max_message)
{
    memset(r, 0, sizeof *r);
    r->max_frame = max_frame;
    r->max_message = max_message;
    r->hdr_need = 2;
}

static size_t fail(struct ws_reader *r, struct ws_event *ev, uint16_t code, const char *why,
                   size_t consumed)
{
    r->state = RS_DONE;
    ev->type = WS_EV_ERROR;
    ev->close_code = code;
    ev->reason = why;
    return consumed;
}

static bool is_control(uint8_t op) { return op & 0x8; }

/* The first two header bytes are checked before the rest arrives. */
static const char *check_first_bytes(struct ws_reader *r)
{
    uint8_t b0 = r->hdr[0], b1 = r->hdr[1];
    uint8_t op = b0 & 0x0f;
    /* RSV1 only with permessage-deflate, on the first frame of a data message */
    if ((b0 & 0x70) && ((b0 & 0x70) != 0x40 || !r->rsv1_ok || (op != WS_OP_TEXT && op != WS_OP_BINARY)))
        return "reserved bits set";
    if (op != WS_OP_CONT && op != WS_OP_TEXT && op != WS_OP_BINARY && op != WS_OP_CLOSE &&
        op != WS_OP_PING && op != WS_OP_PONG)
        return "unknown opcode";
    if (!(b1 & 0x80)) return "unmasked client frame";
    if (is_control(op) && (!(b0 & 0x80) || (b1 & 0x7f) > WS_MAX_CONTROL))
        return "fragmented or oversized control frame";
    if (op == WS_OP_CONT && r->msg_opcode == 0) return "continuation without a message";
    if ((op == WS_OP_TEXT || op == WS_OP_BINARY) && r->msg_opcode != 0)
        return "new message inside a fragmented one";
    uint8_t len7 = b1 & 0x7f;
    r->hdr_need = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
    return NULL;
}

/* The whole header is in r->hdr: set up the payload. 0, or a close code. */
static uint16_t start_payload(struct ws_reader *r, const char **why)
{
    uint8_t len7 = r->hdr[1] & 0x7f;
    uint64_t len = len7;
    size_t p = 2;
    if (len7 == 126) {
        len = (uint64_t)r->hdr[2] << 8 | r->hdr[3];
        p = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | r->hdr[2 + i];
        p = 10;
        if (len >> 63) { *why = "payload length has the top bit set"; return WS_CLOSE_PROTOCOL; }
    }
    memcpy(r->mask, r->hdr + p, 4);
    r->opcode = r->hdr[0] & 0x0f;
    r->fin = (r->hdr[0] & 0x80) != 0;
    r->remaining = len;
    r->mask_idx = 0;
    r->ctl_len = 0;
    if (is_control(r->opcode)) return 0;
    if (len > r->max_frame) { *why = "frame too large"; return WS_CLOSE_TOO_BIG; }
    if (r->opcode != WS_OP_CONT) {
        r->msg_opcode = r->opcode;
        r->msg_len = 0;
        r->utf8 = 0;
        r->msg_compressed = (r->hdr[0] & 0x40) != 0;
    }
    if (len > (uint64_t)r->max_message - r->msg_len) { *why = "message too large"; return WS_CLOSE_TOO_BIG; }
    r->msg_len += len;
    return 0;
}

/* A frame's payload is complete. Returns true if it produced an event. */
static bool finish_frame(struct ws_reader *r, struct ws_event *ev)
{
    r->state = RS_HEADER;
    r->hdr_len = 0;
    r->hdr_need = 2;
    switch (r->opcode) {
    case WS_OP_PING:
    case WS_OP_PONG:
        ev->type = r->opcode == WS_OP_PING ? WS_EV_PING : WS_EV_PONG;
        ev->payload = r->ctl;
        ev->payload_len = r->ctl_len;
        return true;
    case WS_OP_CLOSE:
        r->state = RS_DONE;
        if (r->ctl_len == 1) {
            ev->type = WS_EV_ERROR; ev->close_code = WS_CLOSE_PROTOCOL;
            ev->reason = "one-byte close payload";
            return true;
        }
        ev->close_code = r->ctl_len ? (uint16_t)(r->ctl[0] << 8 | r->ctl[1]) : 0;
        if (r->ctl_len && !ws_close_code_valid(ev->close_code)) {
            ev->type = WS_EV_ERROR; ev->close_code = WS_CLOSE_PROTOCOL;
            ev->reason = "invalid close code";
            return true;
        }
        if (r->ctl_len > 2 && !ws_utf8_valid(r->ctl + 2, r->ctl_len - 2u)) {
            ev->type = WS_EV_ERROR; ev->close_code = WS_CLOSE_BAD_DATA;
            ev->reason = "close reason is not UTF-8";
            return true;
        }
        ev->type = WS_EV_CLOSE;
        ev->payload = r->ctl_len > 2 ? r->ctl + 2 : r->ctl;
        ev->payload_len = r->ctl_len > 2 ? r->ctl_len - 2u : 0;
        return true;
    default:
        if (!r->fin) return false;
        if (r->msg_opcode == WS_OP_TEXT && !r->msg_compressed && r->utf8 != 0) {
            r->state = RS_DONE;
            ev->type = WS_EV_ERROR; ev->close_code = WS_CLOSE_BAD_DATA;
            ev->reason = "text message is not UTF-8";
            return true;
        }
        ev->type = WS_EV_MESSAGE;
        ev->msg_opcode = r->msg_opcode;
        ev->msg_len = r->msg_len;
        r->msg_opcode = 0;
        r->msg_len = 0;
        return true;
    }
}

size_t ws_reader_feed(struct ws_reader *r, const uint8_t *data, size_t len, struct ws_event *ev)
{
    size_t i = 0;
    memset(ev, 0, sizeof *ev);
    if (r->state == RS_DONE) return 0;
    while (i < len) {
        if (r->state == RS_HEADER) {
            while (i < len && r->hdr_len < r->hdr_need) {
                r->hdr[r->hdr_len++] = data[i++];
                if (r->hdr_len == 2) {
                    const char *why = check_first_bytes(r);
                    if (why) return fail(r, ev, WS_CLOSE_PROTOCOL, why, i);
                }
            }
            if (r->hdr_len < r->hdr_need) break;
            const char *why = NULL;
            uint16_t code = start_payload(r, &why);
            if (code) return fail(r, ev, code, why, i);
            r->state = RS_PAYLOAD;
            if (r->remaining == 0 && finish_frame(r, ev)) return i;
            continue;
        }
        /* RS_PAYLOAD */
        size_t n = len - i;
        if (n > r->remaining) n = (size_t)r->remaining;
        if (is_control(r->opcode)) {
            for (size_t k = 0; k < n; k++)
                r->ctl[r->ctl_len++] = data[i + k] ^ r->mask[r->mask_idx++ & 3];
        } else if (r->msg_opcode == WS_OP_TEXT && !r->msg_compressed) {
            for (size_t k = 0; k < n; k++) {
                uint8_t c = data[i + k] ^ r->mask[r->mask_idx++ & 3];
                if (!utf8_step(&r->utf8, c))
                    return fail(r, ev, WS_CLOSE_BAD_DATA, "text message is not UTF-8", i + k + 1);
            }
        }
        i += n;
        r->remaining -= n;
        if (r->remaining == 0 && finish_frame(r, ev)) return i;
    }
    return i;
}

size_t ws_frame_header(uint8_t *out, enum ws_opcode op, uint64_t len)
{
    return wshdr_put(out, (uint8_t)(0x80 | op), len);
}

size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_MAX_CONTROL - 2) rlen = WS_MAX_CONTROL - 2;
    size_t h = ws_frame_header(out, WS_OP_CLOSE, rlen + 2);
    out[h] = (uint8_t)(code >> 8);
    out[h + 1] = (uint8_t)code;
    if (rlen) memcpy(out + h + 2, reason, rlen);
    return h + 2 + rlen;
}
