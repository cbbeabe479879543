/* test_ring_golden.c - the golden corpus through the renderer and the ring:
 * every record of golden/live_ct.json, published as the server publishes it
 * (pipeline_message), reads back from the ring byte for byte as its
 * expected full, lite and domains-only message, in every form a client
 * gets: the JSON, the WebSocket frame (RFC 6455 header built here), the
 * SSE event ("id: <seq>\ndata: <json>\n\n") and the permessage-deflate
 * frame a fanout worker makes from the record (fanout/zalone.h), inflated
 * here with zlib (RFC 7692). And each byte is stored once: full
 * refers to lite's bytes, chain elements are chain-table entries shared by
 * the records of the same chain. Usage: test_ring_golden <testdata dir> */
#include <inttypes.h>
#include <sys/uio.h>

#include <zlib.h>

#include "common/b64.h"
#include "fanout/zalone.h"
#include "ingest/pipeline.h"
#include "shm/chaintab.h"
#include "common/wshdr.h"
#include "shm/ring.h"
#include "test/pipeline/testutil.h"

static const char *keys[3] = {"expected_full", "expected_lite", "expected_domains_only"};

static size_t ws_hdr(uint8_t *p, size_t n) { return wshdr_put(p, WSHDR_TEXT, n); }

/* The bytes of one form, gathered from ring_record_iov. */
static size_t gather(const struct ring *r, const struct ring_record *rec, int f, enum ring_wire w, uint8_t *out,
                     size_t cap)
{
    struct iovec iov[RING_RECORD_MAX_IOV];
    int n = 0;
    if (ring_record_iov(r, rec, (enum ring_format)f, w, 0, iov, &n) == 0) return 0;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (at + iov[i].iov_len > cap) return 0;
        memcpy(out + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    return at;
}

/* The JSON in a permessage-deflate frame (RSV1 set, compressed alone):
 * RFC 6455 header, then RFC 7692 section 7.2.2: inflate the payload with
 * 00 00 ff ff appended. Returns the length, 0 when not such a frame. */
static size_t inflate_frame(const uint8_t *fr, size_t n, uint8_t *out, size_t cap)
{
    if (n < 2 || fr[0] != 0xc1 || (fr[1] & 0x80)) return 0;
    size_t h = 2, len = fr[1] & 0x7f;
    if (len == 126) {
        if (n < 4) return 0;
        len = (size_t)fr[2] << 8 | fr[3];
        h = 4;
    } else if (len == 127) {
        if (n < 10) return 0;
        len = 0;
        for (int i = 2; i < 10; i++) len = len << 8 | fr[i];
        h = 10;
    }
    static uint8_t in[1 << 16];
    if (h + len != n || len + 4 > sizeof in) return 0;
    memcpy(in, fr + h, len);
    memcpy(in + len, "\x00\x00\xff\xff", 4);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK) return 0;
    z.next_in = in;
    z.avail_in = (uInt)(len + 4);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_SYNC_FLUSH);
    size_t got = cap - z.avail_out;
    inflateEnd(&z);
    return (rc == Z_OK || rc == Z_STREAM_END) && z.avail_in == 0 ? got : 0;
}

static void run(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/live_ct.json", dir);
    cJSON *root = t_json(path);
    struct pipeline *p = pipeline_new();
    struct ring *r = ring_create((size_t)4 << 20);
    t_check(p && r && root, "setup");
    if (!p || !r || !root) return;
    ring_set_checksums(r, true);
    struct zalone *za = zalone_new(6);   /* what a fanout worker compresses with */
    t_check(za != NULL, "zalone");
    if (!za) return;
    static uint8_t want[1 << 16], got[1 << 16];
    size_t whole = 0, stored = 0, refs = 0;
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const char *name = t_str(e, "name"), *li = t_str(e, "leaf_input"), *ed = t_str(e, "extra_data");
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(e, "cert_index");
        uint8_t *leaf = NULL, *extra = NULL;
        size_t llen = 0, elen = 0;
        if (!li || !ed || !cJSON_IsNumber(idx) || b64_decode_alloc(li, strlen(li), &leaf, &llen) < 0 ||
            b64_decode_alloc(ed, strlen(ed), &extra, &elen) < 0) {
            t_check(0, "%s: record fields", name);
            continue;
        }
        struct pipeline_out out;
        char err[256];
        int rc = pipeline_render_rfc6962(p, leaf, llen, extra, elen, (uint64_t)idx->valuedouble, t_str(e, "log_name"),
                                         t_str(e, "log_url"), 1700000000.0, &out, err, sizeof err);
        t_check(rc == 0, "%s: render (%s)", name, rc ? err : "");
        free(leaf);
        free(extra);
        if (rc) continue;
        struct ring_message m;
        pipeline_message(&out, (uint64_t)idx->valuedouble, 3, false, &m);
        uint64_t seq = ring_publish(r, 0, &m);
        const struct ring_record *rec = NULL;
        t_check(seq != 0 && ring_peek(r, seq, &rec) == RING_OK, "%s: published", name);
        if (!rec) continue;
        const struct ring_seg *sg = (const struct ring_seg *)(ring_record_bytes(rec) + rec->segs[RING_FULL].off);
        struct ring_span lj = rec->json[RING_LITE];
        int in_lite = 0;
        for (uint32_t k = 0; k < rec->segs[RING_FULL].len; k++)
            in_lite += !(sg[k].len & RING_SEG_SHARED) && sg[k].off >= lj.off && sg[k].off + sg[k].len <= lj.off + lj.len;
        t_check(rec->segs[RING_LITE].len == 0 && in_lite == 3, "%s: lite whole, full refers to its 3 pieces", name);
        t_check(rec->segs[RING_FULL].len >= 1 + 2 * out.n_chain_el && out.n_chain_el >= 1,
                "%s: full references its %zu chain elements", name, out.n_chain_el);
        for (int f = 0; f < 3; f++) {
            const char *w = t_str(e, keys[f]);
            size_t wl = w ? strlen(w) : 0;
            if (!w) continue;
            size_t g = gather(r, rec, f, RING_WIRE_JSON, got, sizeof got);
            t_check(g == wl && memcmp(got, w, wl) == 0, "%s: %s from the ring", name, keys[f]);
            size_t h = ws_hdr(want, wl);
            memcpy(want + h, w, wl);
            g = gather(r, rec, f, RING_WIRE_WS, got, sizeof got);
            t_check(g == h + wl && memcmp(got, want, h + wl) == 0, "%s: %s as a WebSocket frame", name, keys[f]);
            int sh = snprintf((char *)want, sizeof want, "id: %" PRIu64 "\ndata: ", seq);
            memcpy(want + sh, w, wl);
            memcpy(want + sh + wl, "\n\n", 2);
            g = gather(r, rec, f, RING_WIRE_SSE, got, sizeof got);
            t_check(g == (size_t)sh + wl + 2 && memcmp(got, want, g) == 0, "%s: %s as an SSE event", name, keys[f]);
            /* no compressed frame in the record: the worker's, from it */
            struct iovec zv;
            uint32_t zn = zalone_iov(za, r, rec, f, 0, &zv);
            g = zn ? inflate_frame(zv.iov_base, zn, got, sizeof got) : 0;
            t_check(g == wl && memcmp(got, w, wl) == 0, "%s: %s as a permessage-deflate frame", name, keys[f]);
            whole += wl;
        }
        stored += rec->total_len;
        refs += out.n_chain_el;
        n++;
    }
    t_check(n >= 28, "%d records", n);
    /* the corpus's chain elements repeat: one entry per distinct element */
    uint32_t used = chaintab_used(ring_chaintab(r));
    t_check(used > 0 && used < refs, "chain table: %u entries for %zu references", used, refs);
    t_check(stored < whole * 6 / 10, "records hold %zu bytes for %zu bytes of messages", stored, whole);
    printf("%d records, %zu bytes of JSON in three formats, %zu bytes of records, %u chain entries\n", n, whole,
           stored, used);
    zalone_free(za);
    ring_destroy(r);
    pipeline_free(p);
    cJSON_Delete(root);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s TESTDATA\n", argv[0]);
        return 2;
    }
    run(argv[1]);
    return t_summary();
}
