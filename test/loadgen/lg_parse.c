/* lg_parse.c - the load-test client's incremental parser: HTTP response
 * head, WebSocket server frames, SSE events (optionally chunked). See
 * lg_parse.h. Written as a byte-exact state machine so that any split of
 * the input into reads gives the same events (the fuzz target checks that
 * nothing is read out of bounds whatever the input). */
#include "lg_parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>

enum { ST_HTTP = 0, ST_WS, ST_SSE, ST_DEAD };
enum { WS_HDR = 0, WS_PAYLOAD };
enum { L_FIELD = 0, L_SPACE, L_VALUE };
enum { F_NONE = 0, F_DATA, F_ID, F_COMMENT, F_OTHER };
enum { C_SIZE = 0, C_EXT, C_DATA, C_DATA_END, C_DONE };

#define HTTP_HEAD_MAX 16384

void lg_parser_init(struct lg_parser *p, enum lg_proto proto, const char *expect_accept)
{
    memset(p, 0, offsetof(struct lg_parser, line));
    p->proto = (uint8_t)proto;
    p->state = ST_HTTP;
    p->sse_id = -1;
    p->expect_accept = expect_accept;
}

static void msg_reset(struct lg_parser *p)
{
    p->head_len = 0;
    p->tail_len = 0;
    p->msg_len = 0;
    p->mid_match = 0;
    p->mid_state = 0;
    p->mid_len = 0;
}

/* scan_mid: finds the first "seen": of a message in a stream of pieces (a
 * match may span pieces), and keeps the value after it. Jumps between
 * quotes with memchr: the scan touches each byte about once. */
static void mid_scan(struct lg_parser *p, const uint8_t *d, size_t n)
{
    static const char needle[] = "\"seen\":";
    size_t i = 0;
    while (i < n && p->mid_state < 2) {
        if (p->mid_state == 1) {
            uint8_t ch = d[i];
            if ((ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+' || ch == 'e' || ch == 'E' ||
                ((ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') && p->mid_len == 0)) {
                if (p->mid_len == LG_SEEN_MAX) {
                    p->mid_state = 2;   /* too long: not a time */
                    p->mid_len = 0;
                    break;
                }
                p->mid_seen[p->mid_len++] = (char)ch;
                i++;
                continue;
            }
            p->mid_state = 2;
            break;
        }
        if (p->mid_match == 0) {
            const uint8_t *q = memchr(d + i, '"', n - i);
            if (!q) return;
            i = (size_t)(q - d) + 1;
            p->mid_match = 1;
            continue;
        }
        if (d[i] == (uint8_t)needle[p->mid_match]) {
            i++;
            if (++p->mid_match == sizeof needle - 1) p->mid_state = 1;
        } else {
            /* the needle has no other '"' that could start a match here
             * except its own closing quote, which is followed by ':' */
            p->mid_match = d[i] == '"' ? 1 : 0;
            i++;
        }
    }
}

/* Keeps the first LG_HEAD and last LG_TAIL bytes of the message. */
static void msg_append(struct lg_parser *p, const uint8_t *d, size_t n)
{
    if (p->head_len < LG_HEAD) {
        size_t k = LG_HEAD - p->head_len;
        if (k > n) k = n;
        memcpy(p->head + p->head_len, d, k);
        p->head_len = (uint16_t)(p->head_len + k);
    }
    if (n >= LG_TAIL) {
        memcpy(p->tail, d + n - LG_TAIL, LG_TAIL);
        p->tail_len = LG_TAIL;
    } else if (p->tail_len + n <= LG_TAIL) {
        memcpy(p->tail + p->tail_len, d, n);
        p->tail_len = (uint16_t)(p->tail_len + n);
    } else {
        size_t keep = LG_TAIL - n;
        memmove(p->tail, p->tail + p->tail_len - keep, keep);
        memcpy(p->tail + keep, d, n);
        p->tail_len = LG_TAIL;
    }
    p->msg_len += n;
    if (p->scan_mid && p->mid_state < 2) mid_scan(p, d, n);
}

static void fill_msg(struct lg_parser *p, struct lg_result *r)
{
    r->head = p->head;
    r->head_len = p->head_len;
    r->tail = p->tail;
    r->tail_len = p->tail_len;
    r->len = p->msg_len;
    r->compressed = p->compressed;
    r->mid_seen = p->scan_mid && p->mid_len && p->mid_state ? p->mid_seen : NULL;
    r->mid_seen_len = p->mid_len;
}

static enum lg_event fail(struct lg_parser *p, struct lg_result *r, const char *why)
{
    p->state = ST_DEAD;
    r->err = why;
    return LG_EV_ERROR;
}

static int header_is(const char *line, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') return 0;
    size_t i = n + 1;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t e = len;
    while (e > i && (line[e - 1] == ' ' || line[e - 1] == '\t' || line[e - 1] == '\r')) e--;
    *val = line + i;
    *vlen = e - i;
    return 1;
}

/* One complete response-head line (without '\n'). Returns an event when
 * the head ends. */
static enum lg_event http_line(struct lg_parser *p, struct lg_result *r)
{
    size_t len = p->line_len;
    const char *v;
    size_t vl;
    if (len > 0 && p->line[len - 1] == '\r') len--;
    if (p->status == 0) {
        if (len < 12 || strncmp(p->line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)p->line[9]) ||
            !isdigit((unsigned char)p->line[10]) || !isdigit((unsigned char)p->line[11]))
            return fail(p, r, "bad status line");
        p->status = (p->line[9] - '0') * 100 + (p->line[10] - '0') * 10 + (p->line[11] - '0');
        return LG_EV_NONE;
    }
    if (len > 0) {
        if (header_is(p->line, len, "sec-websocket-accept", &v, &vl)) {
            if (p->expect_accept && vl == strlen(p->expect_accept) && memcmp(v, p->expect_accept, vl) == 0)
                p->accept_ok = 1;
        } else if (header_is(p->line, len, "content-type", &v, &vl)) {
            if (vl >= 17 && strncasecmp(v, "text/event-stream", 17) == 0) p->ctype_ok = 1;
        } else if (header_is(p->line, len, "transfer-encoding", &v, &vl)) {
            if (vl >= 7 && strncasecmp(v + vl - 7, "chunked", 7) == 0) p->chunked = 1;
        }
        return LG_EV_NONE;
    }
    /* End of the head. */
    r->code = p->status;
    if (p->proto == LG_PROTO_WS) {
        if (p->status != 101) return p->state = ST_DEAD, LG_EV_HTTP_FAIL;
        if (p->expect_accept && !p->accept_ok) return fail(p, r, "bad Sec-WebSocket-Accept");
        p->state = ST_WS;
        p->sub = WS_HDR;
        p->hdr_len = 0;
    } else {
        if (p->status != 200) return p->state = ST_DEAD, LG_EV_HTTP_FAIL;
        if (!p->ctype_ok) return fail(p, r, "not text/event-stream");
        p->state = ST_SSE;
        p->sub = L_FIELD;
        p->line_len = 0;
        p->cstate = C_SIZE;
        p->remain = 0;
    }
    return LG_EV_OPEN;
}

static enum lg_event parse_http(struct lg_parser *p, const uint8_t *b, size_t len, size_t *used,
                                struct lg_result *r)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = b[i++];
        if (++p->msg_len > HTTP_HEAD_MAX) {
            *used = i;
            return fail(p, r, "response head too long");
        }
        if (c != '\n') {
            if (p->line_len < LG_LINE) p->line[p->line_len++] = (char)c;
            continue;
        }
        enum lg_event ev = http_line(p, r);
        p->line_len = 0;
        if (ev != LG_EV_NONE) {
            if (ev == LG_EV_OPEN) msg_reset(p);
            *used = i;
            return ev;
        }
    }
    *used = i;
    return LG_EV_NONE;
}

/* Frame header complete: validate and set up the payload. */
static enum lg_event ws_header_done(struct lg_parser *p, struct lg_result *r)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    uint64_t plen = b1 & 0x7f;
    if (plen == 126) plen = ((uint64_t)p->hdr[2] << 8) | p->hdr[3];
    else if (plen == 127) {
        plen = 0;
        for (int k = 0; k < 8; k++) plen = (plen << 8) | p->hdr[2 + k];
        if (plen >> 63) return fail(p, r, "frame length has top bit set");
    }
    p->opcode = b0 & 0x0f;
    p->fin = b0 >> 7;
    p->remain = plen;
    switch (p->opcode) {
    case 0:
        if (!p->in_msg) return fail(p, r, "continuation without a message");
        break;
    case 1:
    case 2:
        if (p->in_msg) return fail(p, r, "new message inside a fragmented one");
        p->in_msg = 1;
        msg_reset(p);
        break;
    case 8:
    case 9:
    case 10:
        if (!p->fin || plen > 125) return fail(p, r, "bad control frame");
        p->ctl_len = 0;
        break;
    default:
        return fail(p, r, "unknown opcode");
    }
    p->sub = WS_PAYLOAD;
    return LG_EV_NONE;
}

/* Frame payload complete: report what it was. */
static enum lg_event ws_frame_done(struct lg_parser *p, struct lg_result *r)
{
    p->sub = WS_HDR;
    p->hdr_len = 0;
    switch (p->opcode) {
    case 8:
        if (p->ctl_len == 1) return fail(p, r, "close payload of one byte");
        r->code = p->ctl_len >= 2 ? (p->ctl[0] << 8) | p->ctl[1] : 1005;
        r->ctl = p->ctl;
        r->ctl_len = p->ctl_len;
        p->state = ST_DEAD;
        return LG_EV_CLOSE;
    case 9:
        r->ctl = p->ctl;
        r->ctl_len = p->ctl_len;
        return LG_EV_PING;
    case 10:
        return LG_EV_PONG;
    default:
        if (!p->fin) return LG_EV_NONE;
        p->in_msg = 0;
        fill_msg(p, r);
        r->sse_id = -1;
        return LG_EV_MSG;
    }
}

static enum lg_event parse_ws(struct lg_parser *p, const uint8_t *b, size_t len, size_t *used,
                              struct lg_result *r)
{
    size_t i = 0;
    enum lg_event ev = LG_EV_NONE;
    while (i < len && ev == LG_EV_NONE) {
        if (p->sub == WS_HDR) {
            p->hdr[p->hdr_len++] = b[i++];
            if (p->hdr_len == 2) {
                uint8_t rsv = p->hdr[0] & 0x70, op = p->hdr[0] & 0x0f;
                if (rsv && (rsv != 0x40 || !p->rsv1_ok || (op != 1 && op != 2))) {
                    ev = fail(p, r, "reserved bits set");
                    break;
                }
                if (op == 1 || op == 2) p->compressed = rsv != 0;
                if (p->hdr[1] & 0x80) { ev = fail(p, r, "masked server frame"); break; }
            }
            if (p->hdr_len < 2) continue;
            uint8_t l7 = p->hdr[1] & 0x7f;
            size_t need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
            if (p->hdr_len < need) continue;
            ev = ws_header_done(p, r);
            if (ev == LG_EV_NONE && p->remain == 0) ev = ws_frame_done(p, r);
            continue;
        }
        size_t n = len - i;
        if (n > p->remain) n = (size_t)p->remain;
        if (p->opcode >= 8) {
            memcpy(p->ctl + p->ctl_len, b + i, n);
            p->ctl_len = (uint8_t)(p->ctl_len + n);
        } else {
            msg_append(p, b + i, n);
        }
        i += n;
        p->remain -= n;
        if (p->remain == 0) ev = ws_frame_done(p, r);
    }
    *used = i;
    return ev;
}

/* End of one SSE line. */
static enum lg_event sse_line_end(struct lg_parser *p, struct lg_result *r)
{
    enum lg_event ev = LG_EV_NONE;
    if (p->sub == L_FIELD && p->line_len == 0) {
        /* Blank line: dispatch. */
        if (p->in_msg) {
            p->in_msg = 0;
            fill_msg(p, r);
            r->sse_id = p->sse_id;
            ev = LG_EV_MSG;
        }
        p->sse_id = -1;
    } else if (p->sse_field == F_COMMENT) {
        ev = LG_EV_HEARTBEAT;
    } else if (p->sse_field == F_ID) {
        p->sse_id = p->sse_next_id;
    }
    p->sub = L_FIELD;
    p->line_len = 0;
    p->sse_field = F_NONE;
    return ev;
}

static void sse_field_start(struct lg_parser *p)
{
    size_t n = p->line_len;
    if (n == 4 && memcmp(p->line, "data", 4) == 0) {
        p->sse_field = F_DATA;
        if (p->in_msg) msg_append(p, (const uint8_t *)"\n", 1);
        else {
            p->in_msg = 1;
            msg_reset(p);
        }
    } else if (n == 2 && memcmp(p->line, "id", 2) == 0) {
        p->sse_field = F_ID;
        p->sse_next_id = 0;
    } else {
        p->sse_field = F_OTHER;
    }
}

/* SSE event-stream bytes (already de-chunked). */
static enum lg_event sse_bytes(struct lg_parser *p, const uint8_t *b, size_t len, size_t *used,
                               struct lg_result *r)
{
    size_t i = 0;
    enum lg_event ev = LG_EV_NONE;
    while (i < len && ev == LG_EV_NONE) {
        uint8_t c = b[i];
        /* Lines end with CRLF, LF or CR (the SSE grammar). */
        if (p->skip_lf) {
            p->skip_lf = 0;
            if (c == '\n') {
                i++;
                continue;
            }
        }
        if (p->sub == L_VALUE && p->sse_field == F_DATA) {
            size_t n = 0;
            while (i + n < len && b[i + n] != '\n' && b[i + n] != '\r') n++;
            if (n) msg_append(p, b + i, n);
            i += n;
            if (i < len) {
                p->skip_lf = b[i] == '\r';
                i++;
                ev = sse_line_end(p, r);
            }
            continue;
        }
        i++;
        if (c == '\n' || c == '\r') {
            p->skip_lf = c == '\r';
            ev = sse_line_end(p, r);
            continue;
        }
        switch (p->sub) {
        case L_FIELD:
            if (c == ':' && p->line_len > 0) {
                sse_field_start(p);
                p->sub = L_SPACE;
            } else if (c == ':') {
                p->sse_field = F_COMMENT;
                p->line[0] = ':';
                p->line_len = 1;
                p->sub = L_VALUE;
            } else if (p->line_len < LG_LINE) {
                p->line[p->line_len++] = (char)c;
            }
            break;
        case L_SPACE:
            p->sub = L_VALUE;
            if (c == ' ') break;
            /* fall through: first value byte */
            if (p->sse_field == F_DATA) {
                msg_append(p, &c, 1);
                break;
            }
            /* fall through */
        default:
            if (p->sse_field == F_ID) {
                if (c >= '0' && c <= '9' && p->sse_next_id < (INT64_MAX - 9) / 10)
                    p->sse_next_id = p->sse_next_id * 10 + (c - '0');
                else
                    p->sse_next_id = -1, p->sse_field = F_OTHER;
            }
            break;
        }
    }
    *used = i;
    return ev;
}

static enum lg_event parse_sse(struct lg_parser *p, const uint8_t *b, size_t len, size_t *used,
                               struct lg_result *r)
{
    if (!p->chunked) return sse_bytes(p, b, len, used, r);
    size_t i = 0;
    enum lg_event ev = LG_EV_NONE;
    while (i < len && ev == LG_EV_NONE) {
        uint8_t c = b[i];
        switch (p->cstate) {
        case C_SIZE:
            i++;
            if (isxdigit(c)) {
                if (p->remain >> 59) return *used = i, fail(p, r, "chunk size overflow");
                p->remain = p->remain * 16 + (uint64_t)(isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
            } else if (c == ';' || c == '\r' || c == ' ') {
                p->cstate = C_EXT;
            } else if (c == '\n') {
                p->cstate = p->remain ? C_DATA : C_DONE;
            } else {
                return *used = i, fail(p, r, "bad chunk size");
            }
            if (p->cstate == C_DONE) {
                p->state = ST_DEAD;
                r->code = 0;
                ev = LG_EV_CLOSE;
            }
            break;
        case C_EXT:
            i++;
            if (c == '\n') {
                p->cstate = p->remain ? C_DATA : C_DONE;
                if (p->cstate == C_DONE) {
                    p->state = ST_DEAD;
                    r->code = 0;
                    ev = LG_EV_CLOSE;
                }
            }
            break;
        case C_DATA: {
            size_t n = len - i, k;
            if (n > p->remain) n = (size_t)p->remain;
            ev = sse_bytes(p, b + i, n, &k, r);
            i += k;
            p->remain -= k;
            if (p->remain == 0) p->cstate = C_DATA_END;
            break;
        }
        case C_DATA_END:
            i++;
            if (c == '\n') p->cstate = C_SIZE;
            else if (c != '\r') return *used = i, fail(p, r, "chunk not followed by CRLF");
            break;
        default:
            return *used = i, fail(p, r, "data after last chunk");
        }
    }
    *used = i;
    return ev;
}

enum lg_event lg_parse(struct lg_parser *p, const uint8_t *buf, size_t len, size_t *used,
                       struct lg_result *res)
{
    *used = 0;
    switch (p->state) {
    case ST_HTTP:
        return parse_http(p, buf, len, used, res);
    case ST_WS:
        return parse_ws(p, buf, len, used, res);
    case ST_SSE:
        return parse_sse(p, buf, len, used, res);
    default:
        *used = len; /* after close/error: ignore whatever follows */
        return LG_EV_NONE;
    }
}

/* memmem limited to the tail; returns the offset after the needle of its
 * LAST occurrence, or -1. The last one, because the fields we look for sit
 * at the end of the message. */
static long find_last(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (len < n) return -1;
    for (size_t i = len - n + 1; i-- > 0;)
        if (s[i] == needle[0] && memcmp(s + i, needle, n) == 0) return (long)(i + n);
    return -1;
}

int lg_find_seen_us(const char *t, size_t len, int64_t *seen_us)
{
    long o = find_last(t, len, "\"seen\":");
    if (o < 0 || (size_t)o + 17 > len) return 0;
    const char *s = t + o;
    int64_t v = 0;
    for (int k = 0; k < 17; k++) {
        if (k == 10) {
            if (s[k] != '.') return 0;
            continue;
        }
        if (s[k] < '0' || s[k] > '9') return 0;
        v = v * 10 + (s[k] - '0');
    }
    /* Exactly six decimals: the next byte ends the number. */
    if ((size_t)o + 17 < len && s[17] >= '0' && s[17] <= '9') return 0;
    *seen_us = v;
    return 1;
}

int lg_parse_seen(const char *s, size_t len, int64_t *seen_us)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    int64_t sec = 0, frac = 0;
    size_t d0 = i;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i - d0 < 12) sec = sec * 10 + (s[i++] - '0');
    if (i == d0 || (i < len && s[i] >= '0' && s[i] <= '9')) return 0;
    int fd = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t f0 = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (fd < 6) {
                frac = frac * 10 + (s[i] - '0');
                fd++;
            }
            i++;
        }
        if (i == f0) return 0;
    }
    /* the number must end inside what we hold: a cut one may be longer */
    if (i >= len || s[i] == 'e' || s[i] == 'E') return 0;
    for (; fd < 6; fd++) frac *= 10;
    *seen_us = sec * 1000000 + frac;
    return 1;
}

static long find_first(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (s[i] == needle[0] && memcmp(s + i, needle, n) == 0) return (long)(i + n);
    return -1;
}

int lg_msg_seen_us(const struct lg_result *r, int64_t *seen_us, int *exact)
{
    long o;
    *exact = 0;
    if (lg_find_seen_us(r->tail, r->tail_len, seen_us)) {
        *exact = 1;
        return 1;
    }
    if ((o = find_last(r->tail, r->tail_len, "\"seen\":")) >= 0 &&
        lg_parse_seen(r->tail + o, r->tail_len - (size_t)o, seen_us))
        return 1;
    if ((o = find_first(r->head, r->head_len, "\"seen\":")) >= 0 &&
        lg_parse_seen(r->head + o, r->head_len - (size_t)o, seen_us))
        return 1;
    if (r->mid_seen) {
        /* the captured value ends where the number did: give the parser its end */
        char b[LG_SEEN_MAX + 1];
        memcpy(b, r->mid_seen, r->mid_seen_len);
        b[r->mid_seen_len] = ',';
        return lg_parse_seen(b, r->mid_seen_len + 1, seen_us);
    }
    return 0;
}

static int type_at(const char *s, size_t len, long o, const char **type, size_t *tlen)
{
    size_t i = (size_t)o;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    if (i >= len || s[i] != '"') return 0;
    const char *e = memchr(s + i + 1, '"', len - i - 1);
    if (!e) return 0;
    *type = s + i + 1;
    *tlen = (size_t)(e - (s + i + 1));
    return 1;
}

int lg_msg_type(const struct lg_result *r, const char **type, size_t *len)
{
    long o = find_first(r->head, r->head_len, "\"message_type\":");
    if (o >= 0 && type_at(r->head, r->head_len, o, type, len)) return 1;
    o = find_last(r->tail, r->tail_len, "\"message_type\":");
    return o >= 0 && type_at(r->tail, r->tail_len, o, type, len);
}

int lg_find_cert_index(const char *t, size_t len, uint64_t *index)
{
    long o = find_last(t, len, "\"cert_index\":");
    if (o < 0) return 0;
    uint64_t v = 0;
    size_t i = (size_t)o, start = i;
    while (i < len && t[i] >= '0' && t[i] <= '9' && i - start < 19) v = v * 10 + (uint64_t)(t[i++] - '0');
    if (i == start) return 0;
    *index = v;
    return 1;
}

int lg_find_source_url(const char *t, size_t len, const char **url, size_t *url_len)
{
    long o = find_last(t, len, "\"url\":\"");
    if (o < 0) return 0;
    const char *e = memchr(t + o, '"', len - (size_t)o);
    if (!e) return 0;
    *url = t + o;
    *url_len = (size_t)(e - (t + o));
    return 1;
}

int lg_ws_accept(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char cat[128], dig[20];
    size_t kl = strlen(key), olen = 0;
    if (kl + sizeof guid > sizeof cat) return -1;
    memcpy(cat, key, kl);
    memcpy(cat + kl, guid, sizeof guid - 1);
    if (mbedtls_sha1_ret(cat, kl + sizeof guid - 1, dig) != 0) return -1;
    if (mbedtls_base64_encode((unsigned char *)out, 29, &olen, dig, 20) != 0 || olen != 28) return -1;
    out[28] = 0;
    return 0;
}
