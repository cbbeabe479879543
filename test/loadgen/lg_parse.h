/* lg_parse.h - incremental parser for what a certstream server sends to one
 * load-test client: the HTTP response head, then WebSocket server frames
 * (text, continuation, ping, close) or a Server-Sent-Events stream (plain or
 * chunked). It never holds a whole message: it keeps the first LG_HEAD and
 * the last LG_TAIL bytes of the current message, which is where the
 * message_type and the cert_index/seen/source fields live. That keeps a
 * client under 1 KB however large the full-stream messages are. */
#ifndef CS_LG_PARSE_H
#define CS_LG_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define LG_HEAD 48
#define LG_TAIL 480
#define LG_LINE 96
#define LG_SEEN_MAX 24

enum lg_proto { LG_PROTO_WS = 0, LG_PROTO_SSE = 1 };

enum lg_event {
    LG_EV_NONE = 0,   /* all input consumed, nothing to report */
    LG_EV_OPEN,       /* handshake done (101 for WS, 200 event-stream for SSE) */
    LG_EV_HTTP_FAIL,  /* response was not an upgrade/stream; code = status */
    LG_EV_MSG,        /* one complete text message (head/tail/len, sse_id) */
    LG_EV_HEARTBEAT,  /* SSE comment line (":heartbeat") */
    LG_EV_PING,       /* WS ping; payload in ctl/ctl_len */
    LG_EV_PONG,       /* WS pong from the server (ignored by callers) */
    LG_EV_CLOSE,      /* WS close; code (1005 when absent) */
    LG_EV_ERROR       /* protocol violation; err names it; parser is dead */
};

struct lg_parser {
    uint8_t proto;
    uint8_t state;
    uint8_t sub;          /* sub-state inside a state */
    uint8_t chunked;      /* SSE body uses chunked transfer coding */
    uint8_t accept_ok;    /* WS: Sec-WebSocket-Accept matched */
    uint8_t ctype_ok;     /* SSE: content-type text/event-stream */
    uint8_t in_msg;       /* a text message is being assembled */
    uint8_t hdr_len;      /* WS frame header bytes collected */
    uint8_t hdr[14];
    uint8_t opcode;       /* opcode of the current frame */
    uint8_t fin;
    uint8_t ctl_len;
    uint8_t sse_field;    /* SSE: field of the current line */
    uint8_t cstate;       /* SSE: chunked-coding state */
    uint8_t skip_lf;      /* SSE: last line ended with CR; skip a following LF */
    uint8_t rsv1_ok;      /* WS: permessage-deflate offered: RSV1 marks a compressed message */
    uint8_t compressed;   /* WS: the current message is compressed (not inflated) */
    uint8_t scan_mid;     /* look for "seen" in the middle of messages too (set by the caller) */
    uint8_t mid_match;    /* bytes of "seen": matched so far in the current message */
    uint8_t mid_state;    /* 0 looking, 1 in the value, 2 done (found or given up) */
    uint8_t mid_len;
    char mid_seen[LG_SEEN_MAX]; /* the value after the first "seen": of the message */
    uint16_t line_len;
    uint16_t head_len;
    uint16_t tail_len;
    int status;           /* HTTP status of the response */
    uint64_t remain;      /* WS: payload bytes left in frame; SSE: chunk bytes left */
    uint64_t msg_len;     /* bytes of the current message so far */
    int64_t sse_id;       /* SSE: id of the current event, -1 if none */
    int64_t sse_next_id;  /* SSE: id being parsed */
    const char *expect_accept; /* WS: expected Sec-WebSocket-Accept value */
    char line[LG_LINE];   /* current HTTP header line / SSE field name */
    uint8_t ctl[125];     /* control frame payload */
    char head[LG_HEAD];
    char tail[LG_TAIL];
};

/* The result of one lg_parse call that returned LG_EV_MSG etc. Pointers
 * point into the parser and stay valid until the next lg_parse call. */
struct lg_result {
    int code;             /* HTTP status or WS close code */
    const char *err;      /* LG_EV_ERROR: what was wrong */
    const char *head;     /* LG_EV_MSG: first bytes of the message */
    size_t head_len;
    const char *tail;     /* LG_EV_MSG: last bytes of the message */
    size_t tail_len;
    uint64_t len;         /* LG_EV_MSG: total message length */
    int64_t sse_id;       /* LG_EV_MSG over SSE: the event id, -1 if none */
    int compressed;       /* LG_EV_MSG: permessage-deflate payload (head/tail are compressed bytes) */
    const char *mid_seen; /* LG_EV_MSG with scan_mid: the "seen" value found anywhere, or NULL */
    size_t mid_seen_len;
    const uint8_t *ctl;   /* LG_EV_PING: payload */
    size_t ctl_len;
};

/* expect_accept: the Sec-WebSocket-Accept value the server must send (WS),
 * or NULL to skip that check. */
void lg_parser_init(struct lg_parser *p, enum lg_proto proto, const char *expect_accept);

/* Consumes input until one event happens or the input is used up.
 * *used is set to the number of bytes consumed. Call again with the rest
 * after an event. Never reads past len. */
enum lg_event lg_parse(struct lg_parser *p, const uint8_t *buf, size_t len, size_t *used,
                       struct lg_result *res);

/* Fields of a certstream message tail. Returns 1 if found.
 * lg_find_seen_us: the server's benchmark stamp only (exactly six decimals). */
int lg_find_seen_us(const char *tail, size_t len, int64_t *seen_us);
int lg_find_cert_index(const char *tail, size_t len, uint64_t *index);
int lg_find_source_url(const char *tail, size_t len, const char **url, size_t *url_len);

/* A "seen" in seconds with any number of decimals (a certstream server
 * writes milliseconds, some none, the benchmark stamp six; JSON spaces
 * allowed), in microseconds (decimals past the sixth are dropped); 1 if found. */
int lg_parse_seen(const char *s, size_t len, int64_t *seen_us);

/* The "seen" of a message wherever it is: the last one in the tail, the
 * first one in the head, else the one found in the middle (scan_mid).
 * *exact is 1 when it is the benchmark stamp (microseconds). */
int lg_msg_seen_us(const struct lg_result *r, int64_t *seen_us, int *exact);

/* The message_type of a message wherever it is in the object: the first one
 * in the head (certstream servers written after the Python one put it
 * first), else the last one in the tail (those that write "data" first).
 * Sets the value (without quotes); 1 if found. */
int lg_msg_type(const struct lg_result *r, const char **type, size_t *len);

/* Sec-WebSocket-Accept for a key (RFC 6455 4.2.2); out needs 29 bytes. */
int lg_ws_accept(const char *key, char out[29]);

#endif
