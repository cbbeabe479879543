/* test_nats_unit.c - nats/ without a NATS server:
 *  - the wire format round-trips the golden corpus's three messages byte for
 *    byte, and refuses damaged messages with a reason;
 *  - the message id of every golden record is the SHA-256 of the certificate
 *    DER carried in its as_der (the cross-log dedup key), computed here
 *    independently with mbedTLS;
 *  - the position file keeps the last stored sequence across reopen, falls
 *    back to the other copy when one is torn, and refuses a foreign file;
 *  - the ring writes a producer-given SSE id (ring_message.sse_id).
 *
 * Usage: test_nats_unit TESTDATA_DIR. Prints "N passed, N failed". */
#include "nats/position.h"
#include "nats/wire.h"
#include "common/b64.h"
#include "shm/ring.h"

#include <cjson/cJSON.h>
#include <mbedtls/sha256.h>

#include "test/unit_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(2); }
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static const char *testdata;

/* The as_der value of the leaf in a full message. */
static int leaf_der(const char *full, uint8_t **der, size_t *len)
{
    cJSON *j = cJSON_Parse(full);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"), "leaf_cert"), "as_der");
    int rc = cJSON_IsString(v) ? b64_decode_alloc(v->valuestring, strlen(v->valuestring), der, len) : -1;
    cJSON_Delete(j);
    return rc;
}

static void test_golden(void)
{
    char path[1024];
    size_t n;
    snprintf(path, sizeof path, "%s/golden/live_ct.json", testdata);
    char *text = slurp(path, &n);
    cJSON *recs = cJSON_Parse(text);
    CHECK(cJSON_IsArray(recs) && cJSON_GetArraySize(recs) == 28);
    int done = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, recs) {
        const char *names[RING_NFORMATS] = {"expected_full", "expected_lite", "expected_domains_only"};
        struct wire_entry e = {.cert_index = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "cert_index")),
                               .commit_ns = 1796400000123456789ull};
        for (int f = 0; f < RING_NFORMATS; f++) {
            e.json[f] = cJSON_GetStringValue(cJSON_GetObjectItem(r, names[f]));
            e.len[f] = strlen(e.json[f]);
        }
        uint8_t *buf = malloc(wire_size(&e));
        size_t len = wire_encode(&e, buf);
        CHECK(len == WIRE_HEADER_LEN + e.len[0] + e.len[1] + e.len[2]);
        struct wire_entry d;
        const char *why = NULL;
        CHECK(wire_decode(buf, len, &d, &why) == 0);
        CHECK(d.cert_index == e.cert_index && d.commit_ns == e.commit_ns);
        for (int f = 0; f < RING_NFORMATS; f++)
            CHECK(d.len[f] == e.len[f] && memcmp(d.json[f], e.json[f], e.len[f]) == 0);
        /* damaged copies are refused with a reason */
        CHECK(wire_decode(buf, len - 1, &d, &why) == -1 && why && *why);
        buf[0] = 'X';
        CHECK(wire_decode(buf, len, &d, &why) == -1 && strstr(why, "CSN1"));
        buf[0] = 'C';
        buf[24] ^= 0x40;   /* full's length */
        CHECK(wire_decode(buf, len, &d, &why) == -1);
        free(buf);

        /* message id = SHA-256 of the leaf DER, lowercase hex */
        char id[WIRE_MSG_ID_LEN + 1];
        CHECK(wire_msg_id(e.json[RING_FULL], e.len[RING_FULL], id) == 0);
        uint8_t *der = NULL;
        size_t dlen = 0;
        CHECK(leaf_der(e.json[RING_FULL], &der, &dlen) == 0);
        uint8_t h[32];
        char want[WIRE_MSG_ID_LEN + 1];
        mbedtls_sha256_ret(der, dlen, h, 0);
        for (int i = 0; i < 32; i++) snprintf(want + 2 * i, 3, "%02x", h[i]);
        CHECK(strcmp(id, want) == 0);
        free(der);
        /* lite has no as_der but the same sha256 field: the same id */
        char lid[WIRE_MSG_ID_LEN + 1];
        CHECK(wire_msg_id(e.json[RING_LITE], e.len[RING_LITE], lid) == 0 && strcmp(lid, id) == 0);
        /* domains-only has none */
        CHECK(wire_msg_id(e.json[RING_DOMAINS], e.len[RING_DOMAINS], lid) == -1);
        done++;
    }
    CHECK(done == 28);
    cJSON_Delete(recs);
    free(text);
}

static void test_position(void)
{
    char path[] = "/tmp/test_nats_pos.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    unlink(path);
    char err[512];
    uint64_t seq = 99;
    struct position *p = natspos_open(path, &seq, err, sizeof err);
    CHECK(p && seq == 0);
    for (uint64_t s = 1; s <= 1001; s++) natspos_store(p, s);
    natspos_close(p);
    p = natspos_open(path, &seq, err, sizeof err);
    CHECK(p && seq == 1001);
    natspos_store(p, 1002);
    natspos_close(p);
    /* tear the newer copy (1002, generation 1002 -> copy 0): the older one wins */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, 8 + 8, SEEK_SET);   /* copy[0].check */
        uint64_t junk = 12345;
        fwrite(&junk, sizeof junk, 1, f);
        fclose(f);
    }
    p = natspos_open(path, &seq, err, sizeof err);
    CHECK(p && seq == 1001);
    natspos_close(p);
    /* not a position file: refused, and left alone */
    f = fopen(path, "wb");
    if (f) { fputs("hello", f); fclose(f); }
    p = natspos_open(path, &seq, err, sizeof err);
    CHECK(p == NULL && strstr(err, "not a position file"));
    size_t n;
    char *back = slurp(path, &n);
    CHECK(n == 5 && memcmp(back, "hello", 5) == 0);
    free(back);
    unlink(path);
}

static void test_ring_sse_id(void)
{
    struct ring *r = ring_create(1 << 20);
    CHECK(r != NULL);
    if (!r) return;
    struct ring_message m = {.json = {"{\"a\":1}", "{}", "{}"}, .json_len = {7, 2, 2},
                             .bench_stamp_off = {-1, -1, -1}};
    uint64_t pos = ring_publish(r, 0, &m);
    m.sse_id = 123456789012ull;
    uint64_t pos2 = ring_publish(r, 0, &m);
    const struct ring_record *rec;
    CHECK(ring_peek(r, pos, &rec) == RING_OK && ring_record_sse_id(rec) == pos);
    CHECK(ring_peek(r, pos2, &rec) == RING_OK && ring_record_sse_id(rec) == 123456789012ull);
    CHECK(rec->sse_head.len == strlen("id: 123456789012\ndata: ") &&
          memcmp(ring_record_bytes(rec) + rec->sse_head.off, "id: 123456789012\ndata: ", rec->sse_head.len) == 0);
    ring_destroy(r);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_nats_unit TESTDATA_DIR\n");
        return 2;
    }
    testdata = argv[1];
    static const struct unit_test tests[] = {
        {"golden_wire_and_ids", test_golden},
        {"position_file", test_position},
        {"ring_sse_id", test_ring_sse_id},
    };
    return run_unit_tests(tests, sizeof tests / sizeof tests[0]);
}
