/* ws_frame.h - RFC 6455 framing: the incremental reader of client frames and
 * the encoders of server frames.
 *
 * The reader is a pure state machine fed with whatever bytes arrived; it keeps
 * no copy of data frames (no feature defines client messages, so they are
 * reassembled logically: order of fragments, total size and UTF-8 validity are
 * checked, the payload is dropped). Only a control frame's payload (<= 125
 * bytes) is kept, so a Pong can echo a Ping. That keeps a client's read state
 * small and fixed, whatever the client sends. */
#ifndef CS_WS_FRAME_H
#define CS_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
    WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8, WS_OP_PING = 0x9, WS_OP_PONG = 0xA,
};

/* Close codes used by the server (RFC 6455 7.4.1). */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_BAD_DATA = 1007, WS_CLOSE_POLICY = 1008, WS_CLOSE_TOO_BIG = 1009,
};

#define WS_MAX_CONTROL 125

enum ws_event_type {
    WS_EV_NONE = 0,     /* all input consumed, nothing complete yet */
    WS_EV_MESSAGE,      /* a whole data message arrived (payload dropped) */
    WS_EV_PING,         /* payload/payload_len: echo them in a Pong */
    WS_EV_PONG,
    WS_EV_CLOSE,        /* close_code: the client's code, 0 if it sent none */
    WS_EV_ERROR,        /* close_code: what to send (1002, 1007, 1009) */
};

struct ws_event {
    enum ws_event_type type;
    uint16_t close_code;
    const uint8_t *payload;   /* control payload (unmasked); valid until the next feed */
    size_t payload_len;
    uint8_t msg_opcode;       /* MESSAGE: WS_OP_TEXT or WS_OP_BINARY */
    uint64_t msg_len;         /* MESSAGE: total payload bytes */
    const char *reason;       /* ERROR: a short reason for the log and the close frame */
};

struct ws_reader {
    uint32_t max_frame, max_message;  /* limits.max_frame_bytes / max_message_bytes */
    uint8_t state;
    uint8_t hdr_len, hdr_need;
    uint8_t opcode, fin;
    uint8_t msg_opcode;               /* 0: no fragmented message in progress */
    uint8_t mask_idx;
    uint8_t ctl_len;
    uint8_t rsv1_ok;                  /* permessage-deflate negotiated: RSV1 marks a compressed message */
    uint8_t msg_compressed;           /* the current message is compressed (not inflated: ignored) */
    uint8_t hdr[14];
    uint8_t mask[4];
    uint32_t utf8;                    /* incremental UTF-8 validator state */
    uint64_t remaining;               /* payload bytes left in the current frame */
    uint64_t msg_len;
    uint8_t ctl[WS_MAX_CONTROL];
};

void ws_reader_init(struct ws_reader *r, uint32_t max_frame, uint32_t max_message);

/* Consumes bytes from data[0..len) until an event completes or the input is
 * used up; returns how many bytes were consumed and fills *ev (WS_EV_NONE if
 * no event). Call again with the rest. After WS_EV_ERROR or WS_EV_CLOSE the
 * reader consumes nothing more. */
size_t ws_reader_feed(struct ws_reader *r, const uint8_t *data, size_t len, struct ws_event *ev);

/* Server frame header (FIN set, unmasked) into out[10]; returns its length. */
size_t ws_frame_header(uint8_t *out, enum ws_opcode op, uint64_t payload_len);
/* A whole Close frame with code and reason (reason cut to fit 125 bytes) into
 * out[2 + WS_MAX_CONTROL]; returns its length. */
size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason);

/* Whether a received close code may appear on the wire (RFC 6455 7.4). */
bool ws_close_code_valid(uint16_t code);
/* Whole-buffer UTF-8 validation (RFC 3629: no overlongs, surrogates, > U+10FFFF). */
bool ws_utf8_valid(const uint8_t *s, size_t len);

#endif
