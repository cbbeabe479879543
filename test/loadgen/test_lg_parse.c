/* test_lg_parse.c - tests the load generator's stream parser with the real
 * golden corpus: each record's lite/full/domains message framed as the
 * server may send it (WebSocket: 7/16/64-bit lengths, fragmented; SSE:
 * plain and chunked), fed in pieces of 1, 7, 1000 bytes and whole. The
 * fields the parser reports must equal the fixture's values (cert_index,
 * log URL, length, first and last bytes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "lg_parse.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

static int failures, checks;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        checks++;                                                \
        if (!(cond)) {                                           \
            failures++;                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fputc('\n', stderr);                                 \
        }                                                        \
    } while (0)

struct ev {
    enum lg_event type;
    int code;
    uint64_t len;
    int64_t sse_id;
    char head[LG_HEAD];
    size_t head_len;
    char tail[LG_TAIL];
    size_t tail_len;
};

struct buf {
    uint8_t *d;
    size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 1024;
        b->d = realloc(b->d, b->cap);
        if (!b->d) abort();
    }
    memcpy(b->d + b->len, p, n);
    b->len += n;
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Unmasked server frame; force64 uses the 8-byte length form. */
static void ws_frame(struct buf *b, int fin, int op, const void *p, size_t n, int force64)
{
    uint8_t h[10];
    size_t hl = 0;
    h[hl++] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (n < 126 && !force64) h[hl++] = (uint8_t)n;
    else if (n < 65536 && !force64) {
        h[hl++] = 126;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = 127;
        for (int k = 7; k >= 0; k--) h[hl++] = (uint8_t)((uint64_t)n >> (8 * k));
    }
    put(b, h, hl);
    put(b, p, n);
}

static size_t run(enum lg_proto proto, const char *accept, const struct buf *in, size_t chunk, struct ev *out,
                  size_t max)
{
    struct lg_parser *p = malloc(sizeof *p);
    size_t nev = 0, off = 0;
    if (!p) abort();
    lg_parser_init(p, proto, accept);
    while (off < in->len) {
        size_t n = in->len - off < chunk ? in->len - off : chunk, o = 0;
        while (o < n) {
            struct lg_result r;
            size_t used;
            enum lg_event e = lg_parse(p, in->d + off + o, n - o, &used, &r);
            o += used;
            if (e == LG_EV_NONE) {
                if (used == 0) break;
                continue;
            }
            if (nev < max) {
                struct ev *v = &out[nev];
                memset(v, 0, sizeof *v);
                v->type = e;
                v->code = r.code;
                if (e == LG_EV_MSG) {
                    v->len = r.len;
                    v->sse_id = r.sse_id;
                    memcpy(v->head, r.head, r.head_len);
                    v->head_len = r.head_len;
                    memcpy(v->tail, r.tail, r.tail_len);
                    v->tail_len = r.tail_len;
                }
            }
            nev++;
        }
        off += n;
    }
    free(p);
    return nev;
}

static void check_msg(const struct ev *v, const char *json, long long idx, const char *url, const char *what)
{
    size_t len = strlen(json);
    size_t hl = len < LG_HEAD ? len : LG_HEAD, tl = len < LG_TAIL ? len : LG_TAIL;
    CHECK(v->type == LG_EV_MSG, "%s: event %d, want MSG", what, v->type);
    CHECK(v->len == len, "%s: len %llu want %zu", what, (unsigned long long)v->len, len);
    CHECK(v->head_len == hl && memcmp(v->head, json, hl) == 0, "%s: head differs", what);
    CHECK(v->tail_len == tl && memcmp(v->tail, json + len - tl, tl) == 0, "%s: tail differs", what);
    if (idx < 0) return;
    uint64_t ci = 0;
    const char *u = NULL;
    size_t ul = 0;
    CHECK(lg_find_cert_index(v->tail, v->tail_len, &ci) && ci == (uint64_t)idx, "%s: cert_index %llu want %lld",
          what, (unsigned long long)ci, idx);
    size_t want_ul = strlen(url); /* the corpus keeps the log URL as the log list has it */
    CHECK(lg_find_source_url(v->tail, v->tail_len, &u, &ul) && ul == want_ul && memcmp(u, url, ul) == 0,
          "%s: source url differs", what);
    int64_t seen;
    CHECK(!lg_find_seen_us(v->tail, v->tail_len, &seen), "%s: corpus seen is not a bench stamp", what);
}

static const size_t chunks[] = {1, 7, 1000, (size_t)1 << 30};

static void test_record(cJSON *rec, int ri)
{
    static const char *keys[3] = {"expected_lite", "expected_full", "expected_domains_only"};
    char accept[29], what[128];
    long long idx = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(rec, "cert_index"));
    const char *url = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "log_url"));
    if (lg_ws_accept(KEY, accept) != 0) abort();
    for (int k = 0; k < 3; k++) {
        const char *json = cJSON_GetStringValue(cJSON_GetObjectItem(rec, keys[k]));
        long long want_idx = k == 2 ? -1 : idx;
        size_t len = strlen(json);
        struct ev evs[8];
        /* WebSocket */
        struct buf ws = {0};
        puts_(&ws, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "sec-websocket-accept: ");
        puts_(&ws, accept);
        puts_(&ws, "\r\n\r\n");
        ws_frame(&ws, 1, 9, "hb", 2, 0);
        ws_frame(&ws, 1, 1, json, len, 0);
        ws_frame(&ws, 1, 1, json, len, 1);
        ws_frame(&ws, 0, 1, json, len / 3, 0);
        ws_frame(&ws, 1, 9, "x", 1, 0); /* a control frame between fragments */
        ws_frame(&ws, 0, 0, json + len / 3, len / 3, 0);
        ws_frame(&ws, 1, 0, json + 2 * (len / 3), len - 2 * (len / 3), 0);
        ws_frame(&ws, 1, 8, "\x03\xf0slow", 6, 0);
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
            size_t n = run(LG_PROTO_WS, accept, &ws, chunks[c], evs, 8);
            snprintf(what, sizeof what, "rec %d %s ws chunk %zu", ri, keys[k], chunks[c]);
            CHECK(n == 7, "%s: %zu events", what, n);
            if (n != 7) continue;
            CHECK(evs[0].type == LG_EV_OPEN && evs[0].code == 101, "%s: open", what);
            CHECK(evs[1].type == LG_EV_PING, "%s: ping", what);
            check_msg(&evs[2], json, want_idx, url, what);
            check_msg(&evs[3], json, want_idx, url, what);
            CHECK(evs[4].type == LG_EV_PING, "%s: ping between fragments", what);
            check_msg(&evs[5], json, want_idx, url, what);
            CHECK(evs[6].type == LG_EV_CLOSE && evs[6].code == 1008, "%s: close 1008", what);
        }
        /* SSE, plain and chunked */
        struct buf body = {0};
        puts_(&body, ":heartbeat\n\n");
        puts_(&body, "id: 41\ndata: ");
        puts_(&body, json);
        puts_(&body, "\n\nid: 42\r\ndata:");
        puts_(&body, json);
        puts_(&body, "\r\n\r\n");
        for (int chunked = 0; chunked < 2; chunked++) {
            struct buf s = {0};
            puts_(&s, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n");
            if (chunked) {
                puts_(&s, "Transfer-Encoding: chunked\r\n\r\n");
                for (size_t o = 0; o < body.len; o += 100) {
                    size_t n = body.len - o < 100 ? body.len - o : 100;
                    char h[16];
                    snprintf(h, sizeof h, "%zx\r\n", n);
                    puts_(&s, h);
                    put(&s, body.d + o, n);
                    puts_(&s, "\r\n");
                }
                puts_(&s, "0\r\n\r\n");
            } else {
                puts_(&s, "\r\n");
                put(&s, body.d, body.len);
            }
            for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
                size_t n = run(LG_PROTO_SSE, NULL, &s, chunks[c], evs, 8);
                size_t want = chunked ? 5 : 4;
                snprintf(what, sizeof what, "rec %d %s sse%s chunk %zu", ri, keys[k], chunked ? " chunked" : "",
                         chunks[c]);
                CHECK(n == want, "%s: %zu events", what, n);
                if (n != want) continue;
                CHECK(evs[0].type == LG_EV_OPEN && evs[0].code == 200, "%s: open", what);
                CHECK(evs[1].type == LG_EV_HEARTBEAT, "%s: heartbeat", what);
                check_msg(&evs[2], json, want_idx, url, what);
                CHECK(evs[2].sse_id == 41, "%s: id %lld", what, (long long)evs[2].sse_id);
                check_msg(&evs[3], json, want_idx, url, what);
                CHECK(evs[3].sse_id == 42, "%s: id %lld", what, (long long)evs[3].sse_id);
                if (chunked) CHECK(evs[4].type == LG_EV_CLOSE && evs[4].code == 0, "%s: end of stream", what);
            }
            free(s.d);
        }
        free(body.d);
        free(ws.d);
    }
}

static void test_bad(void)
{
    char accept[29];
    struct ev evs[4];
    if (lg_ws_accept(KEY, accept) != 0) abort();
    /* RFC 6455 section 1.3's example key and accept value. */
    CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "accept value %s", accept);
    struct buf b = {0};
    puts_(&b, "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n");
    CHECK(run(LG_PROTO_WS, accept, &b, 5, evs, 4) == 1 && evs[0].type == LG_EV_ERROR, "wrong accept must fail");
    b.len = 0;
    puts_(&b, "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n");
    CHECK(run(LG_PROTO_WS, accept, &b, 3, evs, 4) == 1 && evs[0].type == LG_EV_HTTP_FAIL && evs[0].code == 429,
          "429 must be reported");
    b.len = 0;
    puts_(&b, "HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: ");
    puts_(&b, accept);
    puts_(&b, "\r\n\r\n\x81\x82\x01\x02\x03\x04" "ab");
    CHECK(run(LG_PROTO_WS, accept, &b, 1, evs, 4) == 2 && evs[1].type == LG_EV_ERROR, "masked frame must fail");
    b.len = 0;
    puts_(&b, "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\r\n");
    CHECK(run(LG_PROTO_SSE, NULL, &b, 1, evs, 4) == 1 && evs[0].type == LG_EV_ERROR, "SSE needs event-stream");
    free(b.d);
    /* Bench-mode seen: exactly 10 digits, '.', 6 digits. */
    int64_t s;
    const char *t1 = "\"cert_link\":\"x\",\"seen\":1732460000.123456,\"submission_timestamp\":1.0";
    const char *t2 = "\"seen\":1732460000.123,\"x\":1";
    CHECK(lg_find_seen_us(t1, strlen(t1), &s) && s == 1732460000123456LL, "bench seen parsed");
    CHECK(!lg_find_seen_us(t2, strlen(t2), &s), "millisecond seen is not a stamp");
}

/* Feeds a whole stream in pieces of `chunk` bytes with scan_mid set as
 * given; for the last message: its "seen" (-1 if none found) and its
 * message_type (copied into type, "" if none). */
static void run_fields(const struct buf *in, const char *accept, size_t chunk, int scan_mid, int64_t *seen,
                       char *type, size_t type_cap)
{
    struct lg_parser *p = malloc(sizeof *p);
    size_t off = 0;
    if (!p) abort();
    lg_parser_init(p, LG_PROTO_WS, accept);
    p->scan_mid = (uint8_t)scan_mid;
    *seen = -1;
    type[0] = 0;
    while (off < in->len) {
        size_t n = in->len - off < chunk ? in->len - off : chunk, o = 0;
        while (o < n) {
            struct lg_result r;
            size_t used;
            enum lg_event e = lg_parse(p, in->d + off + o, n - o, &used, &r);
            o += used;
            if (e == LG_EV_NONE && used == 0) break;
            if (e != LG_EV_MSG) continue;
            int exact;
            const char *t;
            size_t tl;
            if (!lg_msg_seen_us(&r, seen, &exact)) *seen = -1;
            if (lg_msg_type(&r, &t, &tl) && tl < type_cap) {
                memcpy(type, t, tl);
                type[tl] = 0;
            } else {
                type[0] = 0;
            }
        }
        off += n;
    }
    free(p);
}

/* Other certstream servers write "data" first and "message_type" last, and
 * "seen" wherever their encoder puts it: the corpus' full messages rebuilt
 * that way, with "seen" right after leaf_cert (the middle of the message,
 * in neither the kept head nor the kept tail), must give the same seen and
 * message_type, in any split of the input; without scan_mid the middle is
 * not searched (so the value really came from there). */
static void test_seen_anywhere(cJSON *root, const char *accept)
{
    int tested = 0;
    cJSON *rec;
    cJSON_ArrayForEach(rec, root)
    {
        const char *full = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "expected_full"));
        cJSON *msg = full ? cJSON_Parse(full) : NULL;
        cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(msg, "data");
        if (!data) {
            cJSON_Delete(msg);
            continue;
        }
        cJSON *out = cJSON_CreateObject(), *nd = cJSON_CreateObject();
        while (data->child) {
            cJSON *it = cJSON_DetachItemViaPointer(data, data->child);
            if (strcmp(it->string, "seen") == 0) {
                cJSON_Delete(it);
                continue;
            }
            cJSON_AddItemToObject(nd, it->string, it);
            if (strcmp(it->string, "leaf_cert") == 0) cJSON_AddRawToObject(nd, "seen", "1733000000.789");
        }
        cJSON_AddItemToObject(out, "data", nd);
        cJSON_AddStringToObject(out, "message_type", "certificate_update");
        char *text = cJSON_PrintUnformatted(out);
        const char *at = strstr(text, "\"seen\":1733000000.789");
        size_t len = strlen(text);
        if (at && at - text > LG_HEAD && len - (size_t)(at - text) > LG_TAIL + 32) {
            struct buf b = {0};
            puts_(&b, "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: ");
            puts_(&b, accept);
            puts_(&b, "\r\n\r\n");
            ws_frame(&b, 1, 1, text, len, 0);
            for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
                int64_t seen;
                char type[32];
                run_fields(&b, accept, chunks[c], 1, &seen, type, sizeof type);
                CHECK(seen == 1733000000789000LL, "data-first message %d, chunk %zu: seen %lld", tested,
                      chunks[c], (long long)seen);
                CHECK(strcmp(type, "certificate_update") == 0, "data-first message: type '%s'", type);
                run_fields(&b, accept, chunks[c], 0, &seen, type, sizeof type);
                CHECK(seen == -1, "without scan_mid the middle is not searched (got %lld)", (long long)seen);
            }
            free(b.d);
            tested++;
        }
        cJSON_free(text);
        cJSON_Delete(out);
        cJSON_Delete(data);
        cJSON_Delete(msg);
    }
    CHECK(tested >= 20, "only %d corpus messages had seen in the middle", tested);

    /* The values a certstream server may write for seen. */
    static const struct {
        const char *text;
        int ok;
        int64_t us;
    } v[] = {
        {"1733000000.789,", 1, 1733000000789000LL},  {" 1733000000,", 1, 1733000000000000LL},
        {"1733000000.1234567}", 1, 1733000000123456LL}, {"1733000000.5 ,", 1, 1733000000500000LL},
        {"1733000000.789", 0, 0} /* cut: may go on */, {"1.7e9,", 0, 0}, {"\"x\",", 0, 0}, {".5,", 0, 0},
        {"1733000000.,", 0, 0},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int64_t us = -1;
        int ok = lg_parse_seen(v[i].text, strlen(v[i].text), &us);
        CHECK(ok == v[i].ok && (!ok || us == v[i].us), "lg_parse_seen(%s): %d %lld", v[i].text, ok, (long long)us);
    }
    /* message_type at the start (with a JSON space), at the end, or absent */
    static const struct {
        const char *msg;
        const char *type;
    } m[] = {
        {"{\"message_type\": \"heartbeat\", \"timestamp\": 1733000000.1}", "heartbeat"},
        {"{\"data\":[\"a.example\"],\"message_type\":\"dns_entries\"}", "dns_entries"},
        {"{\"data\":{\"seen\":1733000000.25,\"x\":1}}", ""},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        struct buf b = {0};
        puts_(&b, "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: ");
        puts_(&b, accept);
        puts_(&b, "\r\n\r\n");
        ws_frame(&b, 1, 1, m[i].msg, strlen(m[i].msg), 0);
        int64_t seen;
        char type[32];
        run_fields(&b, accept, 3, 0, &seen, type, sizeof type);
        CHECK(strcmp(type, m[i].type) == 0, "message_type of %s: '%s'", m[i].msg, type);
        if (i == 2) CHECK(seen == 1733000000250000LL, "seen in the head: %lld", (long long)seen);
        free(b.d);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_lg_parse live_ct.json\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static char text[4 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    cJSON *root = cJSON_ParseWithLength(text, n);
    if (!cJSON_IsArray(root) || cJSON_GetArraySize(root) == 0) {
        fprintf(stderr, "%s: not a corpus\n", argv[1]);
        return 1;
    }
    int ri = 0;
    cJSON *rec;
    cJSON_ArrayForEach(rec, root) test_record(rec, ri++);
    test_bad();
    char accept[29];
    if (lg_ws_accept(KEY, accept) != 0) abort();
    test_seen_anywhere(root, accept);
    cJSON_Delete(root);
    printf("test_lg_parse: %d records, %d checks, %d failures\n", ri, checks, failures);
    return failures ? 1 : 0;
}
