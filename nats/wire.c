/* wire.c - encoding and decoding of the NATS message (see wire.h). Written by
 * hand because it is 36 bytes of fixed header: a serialization library would
 * cost more than it saves, and the decoder is fuzzed (test/nats/fuzz_wire.c). */
#include "nats/wire.h"

#include <string.h>

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

size_t wire_size(const struct wire_entry *e)
{
    return WIRE_HEADER_LEN + e->len[0] + e->len[1] + e->len[2];
}

size_t wire_encode(const struct wire_entry *e, uint8_t *out)
{
    memcpy(out, "CSN1", 4);
    put32(out + 4, 0);
    put64(out + 8, e->cert_index);
    put64(out + 16, e->commit_ns);
    size_t off = WIRE_HEADER_LEN;
    for (int f = 0; f < RING_NFORMATS; f++) {
        put32(out + 24 + 4 * f, (uint32_t)e->len[f]);
        memcpy(out + off, e->json[f], e->len[f]);
        off += e->len[f];
    }
    return off;
}

int wire_decode(const uint8_t *buf, size_t len, struct wire_entry *e, const char **why)
{
    if (len < WIRE_HEADER_LEN || memcmp(buf, "CSN1", 4) != 0) {
        *why = "not a certstream entry (no CSN1 header)";
        return -1;
    }
    if (get32(buf + 4) != 0) {
        *why = "unknown flags (a newer format?)";
        return -1;
    }
    e->cert_index = get64(buf + 8);
    e->commit_ns = get64(buf + 16);
    size_t off = WIRE_HEADER_LEN;
    for (int f = 0; f < RING_NFORMATS; f++) {
        uint32_t l = get32(buf + 24 + 4 * f);
        if (l < 2 || l > WIRE_MAX_JSON || l > len - off) {
            *why = "a message length is out of range";
            return -1;
        }
        const char *j = (const char *)buf + off;
        if (j[0] != '{' || j[l - 1] != '}') {
            *why = "a message is not a JSON object";
            return -1;
        }
        e->json[f] = j;
        e->len[f] = l;
        off += l;
    }
    if (off != len) {
        *why = "trailing bytes after the three messages";
        return -1;
    }
    return 0;
}

int wire_msg_id(const char *full_json, size_t len, char id[WIRE_MSG_ID_LEN + 1])
{
    static const char key[] = "\"sha256\":\"";
    const size_t klen = sizeof key - 1, vlen = 32 * 3 - 1;   /* "AB:..:EF" */
    const char *p = full_json, *end = full_json + len;
    while ((p = memmem(p, (size_t)(end - p), key, klen)) != NULL) {
        p += klen;
        if ((size_t)(end - p) < vlen + 1 || p[vlen] != '"')
            continue;
        size_t n = 0;
        for (size_t i = 0; i < vlen; i++) {
            char c = p[i];
            if (i % 3 == 2) {
                if (c != ':') break;
                continue;
            }
            if (c >= '0' && c <= '9') id[n++] = c;
            else if (c >= 'A' && c <= 'F') id[n++] = (char)(c - 'A' + 'a');
            else if (c >= 'a' && c <= 'f') id[n++] = c;
            else break;
        }
        if (n == WIRE_MSG_ID_LEN) {
            id[n] = '\0';
            return 0;
        }
    }
    return -1;
}
