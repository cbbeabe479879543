/* test_ring_layout.c - the record layout that stores each byte once
 * (shm/ring.h "split formats", shm/chaintab.h).
 *
 * Messages are built here in the shape the renderer gives them
 * (full = A B C D E with chain elements in D, lite = A C E), and every
 * expectation is written from the outside: a client's bytes are RFC 6455's
 * frame header + the JSON, or WIRE.md's "id: <seq>\ndata: <json>\n\n",
 * built here from the message and compared with what the ring hands to
 * writev() through a real socket. Checksums are recomputed with an
 * independent FNV-1a over the record's bytes and the chain-table bytes it
 * references. Producers killed mid-record are real forked processes. */
#include "shm/chaintab.h"
#include "common/wshdr.h"
#include "shm/ring.h"
#include "shm/ring_test.h"
#include "test/shm/shm_test.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define HDR sizeof(struct ring_record)
#define MAXMSG 16384

/* One message in the renderer's shape, with what it shares. */
struct tmsg {
    char full[MAXMSG], lite[MAXMSG], dom[256];
    size_t flen, llen, dlen;
    struct ring_span lite_of_full[3];
    struct ring_span shared[RING_MAX_SHARED];
    size_t nshared;
    struct ring_message m;
};

/* Chain element k: ~900 bytes of JSON, distinct per k. */
static size_t chain_el(char *out, unsigned k)
{
    int n = sprintf(out, "{\"subject\":{\"CN\":\"Intermediate %u\"},\"serial_number\":\"%016" PRIx64 "\",\"as_der\":\"",
                    k, mix(k));
    for (int i = 0; i < 800; i++)
        out[n++] = (char)('A' + (mix(k * 1000u + (unsigned)i) % 26));
    n += sprintf(out + n, "\"}");
    return (size_t)n;
}

static void put(char *buf, size_t *len, const char *s, size_t n)
{
    memcpy(buf + *len, s, n);
    *len += n;
}

/* Message i with chain elements ks[0..nk). */
static void tmsg_make(struct tmsg *t, unsigned i, const unsigned *ks, size_t nk)
{
    char tmp[4096];
    memset(&t->m, 0, sizeof t->m);
    t->flen = t->llen = 0;
    t->nshared = 0;
    int n = sprintf(tmp, "{\"message_type\":\"certificate_update\",\"data\":{\"update_type\":\"X509LogEntry\","
                         "\"leaf_cert\":{\"subject\":{\"CN\":\"host%u.example\"},\"all_domains\":[\"host%u.example\"]",
                    i, i);
    size_t a0 = t->flen;
    put(t->full, &t->flen, tmp, (size_t)n);
    size_t b0 = t->flen;
    n = sprintf(tmp, ",\"as_der\":\"");
    for (unsigned k = 0; k < 1200; k++)
        tmp[n++] = (char)('a' + (mix(i * 7919u + k) % 26));
    tmp[n++] = '"';
    put(t->full, &t->flen, tmp, (size_t)n);
    size_t c0 = t->flen;
    n = sprintf(tmp, ",\"extensions\":{\"subjectAltName\":\"DNS:host%u.example\"}}", i);
    put(t->full, &t->flen, tmp, (size_t)n);
    size_t d0 = t->flen;
    put(t->full, &t->flen, ",\"chain\":[", 10);
    for (size_t k = 0; k < nk; k++) {
        if (k) put(t->full, &t->flen, ",", 1);
        size_t el = chain_el(tmp, ks[k]);
        t->shared[t->nshared++] = (struct ring_span){(uint32_t)t->flen, (uint32_t)el};
        put(t->full, &t->flen, tmp, el);
    }
    put(t->full, &t->flen, "]", 1);
    size_t e0 = t->flen;
    n = sprintf(tmp, ",\"cert_index\":%u,\"seen\":1700000000.000000,\"source\":{\"name\":\"log\"}}}", i);
    put(t->full, &t->flen, tmp, (size_t)n);
    size_t e1 = t->flen;
    put(t->lite, &t->llen, t->full + a0, b0 - a0);
    put(t->lite, &t->llen, t->full + c0, d0 - c0);
    put(t->lite, &t->llen, t->full + e0, e1 - e0);
    t->lite_of_full[0] = (struct ring_span){(uint32_t)a0, (uint32_t)(b0 - a0)};
    t->lite_of_full[1] = (struct ring_span){(uint32_t)c0, (uint32_t)(d0 - c0)};
    t->lite_of_full[2] = (struct ring_span){(uint32_t)e0, (uint32_t)(e1 - e0)};
    t->dlen = (size_t)sprintf(t->dom, "{\"message_type\":\"dns_entries\",\"data\":[\"host%u.example\"]}", i);
    t->m.json[RING_FULL] = t->full;
    t->m.json_len[RING_FULL] = t->flen;
    t->m.json[RING_LITE] = t->lite;
    t->m.json_len[RING_LITE] = t->llen;
    t->m.json[RING_DOMAINS] = t->dom;
    t->m.json_len[RING_DOMAINS] = t->dlen;
    for (int f = 0; f < RING_NFORMATS; f++)
        t->m.bench_stamp_off[f] = -1;
    t->m.cert_index = i;
    t->m.lite = t->lite_of_full;
    t->m.n_lite = 3;
    t->m.shared = nk ? t->shared : NULL;
    t->m.n_shared = nk;
}

static const char *json_of(const struct tmsg *t, int f, size_t *len)
{
    *len = f == RING_FULL ? t->flen : f == RING_LITE ? t->llen : t->dlen;
    return f == RING_FULL ? t->full : f == RING_LITE ? t->lite : t->dom;
}

static size_t ws_hdr(uint8_t *p, size_t n) { return wshdr_put(p, WSHDR_TEXT, n); }

/* What a client of (f, wire) must receive for record seq of t. */
static size_t expected(const struct tmsg *t, int f, enum ring_wire w, uint64_t seq, uint8_t *out)
{
    size_t n, o = 0;
    const char *j = json_of(t, f, &n);
    if (w == RING_WIRE_WS) o = ws_hdr(out, n);
    if (w == RING_WIRE_SSE) o = (size_t)sprintf((char *)out, "id: %" PRIu64 "\ndata: ", seq);
    memcpy(out + o, j, n);
    o += n;
    if (w == RING_WIRE_SSE) {
        memcpy(out + o, "\n\n", 2);
        o += 2;
    }
    return o;
}

/* The bytes ring_record_iov gives, sent through a socketpair with writev. */
static size_t via_socket(const struct ring *r, const struct ring_record *rec, int f, enum ring_wire w,
                         uint32_t skip, uint8_t *out, size_t cap)
{
    struct iovec iov[RING_RECORD_MAX_IOV];
    int niov = 0, sv[2];
    uint32_t n = ring_record_iov(r, rec, (enum ring_format)f, w, skip, iov, &niov);
    if (n == 0 || n > cap || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 0;
    int sz = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    ssize_t wr = writev(sv[0], iov, niov);
    size_t got = 0;
    while (wr > 0 && got < (size_t)wr) {
        ssize_t k = read(sv[1], out + got, cap - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(sv[0]);
    close(sv[1]);
    return wr == (ssize_t)n ? got : 0;
}

/* FNV-1a over the record after its header, then the chain-table bytes of
 * its split formats in order: written from the definition in ring.h. */
static uint32_t indep_checksum(const struct ring *r, const struct ring_record *rec)
{
    const uint8_t *base = ring_record_bytes(rec);
    uint32_t h = test_fnv1a(base + HDR, rec->total_len - HDR);
    for (int f = 0; f < RING_NFORMATS; f++) {
        const struct ring_seg *s = (const struct ring_seg *)(base + rec->segs[f].off);
        for (uint32_t i = 0; i < rec->segs[f].len; i++) {
            if (!(s[i].len & RING_SEG_SHARED)) continue;
            uint32_t n = s[i].len & ~RING_SEG_SHARED;
            const uint8_t *p = chaintab_bytes(ring_chaintab(r), s[i].off, n);
            for (uint32_t k = 0; p && k < n; k++)
                h = (h ^ p[k]) * 0x01000193u;
        }
    }
    return h;
}

/* Pieces of full that are lite's bytes (lite is stored whole, one span). */
static int lite_refs(const struct ring_record *rec)
{
    const struct ring_seg *s = (const struct ring_seg *)(ring_record_bytes(rec) + rec->segs[RING_FULL].off);
    struct ring_span lj = rec->json[RING_LITE];
    int n = 0;
    for (uint32_t k = 0; k < rec->segs[RING_FULL].len; k++)
        n += !(s[k].len & RING_SEG_SHARED) && s[k].off >= lj.off && s[k].off + s[k].len <= lj.off + lj.len;
    return n;
}

/* Every form of rec is what t says, through a socket, at several skips. */
static void check_forms(const struct ring *r, const struct ring_record *rec, uint64_t seq, const struct tmsg *t)
{
    static uint8_t want[MAXMSG + 64], got[MAXMSG + 64];
    CHECK(rec->kind == RING_KIND_MESSAGE && rec->seq == seq);
    CHECK(rec->checksum == indep_checksum(r, rec));
    CHECK(rec->checksum == ring_test_checksum(r, rec));
    enum ring_wire wires[] = {RING_WIRE_WS, RING_WIRE_SSE, RING_WIRE_JSON};
    for (int f = 0; f < RING_NFORMATS; f++) {
        for (int k = 0; k < 3; k++) {
            size_t n = expected(t, f, wires[k], seq, want);
            uint32_t skips[] = {0, 1, 2, 3, 11, (uint32_t)n / 2, (uint32_t)n - 1};
            for (size_t s = 0; s < sizeof skips / sizeof skips[0]; s++) {
                if (skips[s] >= n) continue;
                size_t g = via_socket(r, rec, f, wires[k], skips[s], got, sizeof got);
                CHECK(g == n - skips[s]);
                if (g == n - skips[s]) CHECK(memcmp(got, want + skips[s], g) == 0);
            }
            struct iovec iov[RING_RECORD_MAX_IOV];
            int niov = 0;
            CHECK(ring_record_iov(r, rec, (enum ring_format)f, wires[k], (uint32_t)n, iov, &niov) == 0);
        }
        size_t jl = 0, n;
        const char *j = ring_record_json(r, rec, (enum ring_format)f, (char *)got, sizeof got, &jl);
        const char *e = json_of(t, f, &n);
        CHECK(j != NULL && jl == n && memcmp(j, e, n) == 0);
    }
}

/* A split record stores each byte once: lite whole, full as pieces of lite,
 * its own bytes and chain elements in the chain table; every form is
 * byte-exact, lite's WebSocket frame is one iovec. */
static void test_split_forms(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    static struct tmsg t;
    unsigned ks[][3] = {{1, 2, 0}, {1, 2, 0}, {3, 0, 0}, {1, 3, 2}};
    size_t nk[] = {2, 2, 1, 3};
    int64_t first_off = -1;
    for (unsigned i = 0; i < 4; i++) {
        tmsg_make(&t, 100 + i, ks[i], nk[i]);
        uint64_t seq = ring_publish(r, 0, &t.m);
        CHECK(seq != 0);
        const struct ring_record *rec = NULL;
        CHECK(ring_peek(r, seq, &rec) == RING_OK);
        CHECK(rec->segs[RING_FULL].len != 0 && rec->segs[RING_LITE].len == 0 && rec->segs[RING_DOMAINS].len == 0);
        CHECK(lite_refs(rec) == 3);   /* full refers to lite's bytes for A, C, E */
        /* the record holds full minus its chain elements, lite's header and
         * "\n\n" only, domains whole, the segment table and the SSE head */
        size_t chain = 0;
        for (size_t k = 0; k < nk[i]; k++) chain += t.shared[k].len;
        size_t local = HDR + t.flen - chain + 4 + 2 + 4 + (t.dlen + 4) + 8 * (rec->segs[RING_FULL].len + 3) + 32;
        CHECK(rec->total_len <= (local + RING_ALIGN - 1) / RING_ALIGN * RING_ALIGN);
        CHECK(rec->total_len < t.flen);
        check_forms(r, rec, seq, &t);
        struct iovec one[RING_RECORD_MAX_IOV];
        int n1 = 0;
        CHECK(ring_record_iov(r, rec, RING_LITE, RING_WIRE_WS, 0, one, &n1) > 0 && n1 == 1);
        /* the same chain element is the same chain-table entry */
        const struct ring_seg *s = (const struct ring_seg *)(ring_record_bytes(rec) + rec->segs[RING_FULL].off);
        for (uint32_t k = 0; k < rec->segs[RING_FULL].len; k++) {
            if ((s[k].len & RING_SEG_SHARED) && ks[i][0] == 1 && first_off < 0) first_off = s[k].off;
            if ((s[k].len & RING_SEG_SHARED) && ks[i][0] == 1 && k == 1) CHECK(s[k].off == first_off);
        }
    }
    CHECK(chaintab_used(ring_chaintab(r)) == 3);
    ring_destroy(r);
}

/* Lite pieces that do not match lite are refused (lite stored whole), and a
 * message without hints is stored whole: both still exact. */
static void test_fallbacks(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    static struct tmsg t;
    unsigned ks[] = {5, 6};
    tmsg_make(&t, 7, ks, 2);
    t.lite_of_full[1].len -= 1;   /* one byte short: not lite */
    uint64_t seq = ring_publish(r, 0, &t.m);
    const struct ring_record *rec = NULL;
    CHECK(seq && ring_peek(r, seq, &rec) == RING_OK);
    CHECK(rec->segs[RING_LITE].len == 0 && rec->segs[RING_FULL].len != 0);
    t.lite_of_full[1].len += 1;
    check_forms(r, rec, seq, &t);
    /* overlapping a shared range: refused too */
    t.lite_of_full[1] = t.shared[0];
    seq = ring_publish(r, 0, &t.m);
    CHECK(seq && ring_peek(r, seq, &rec) == RING_OK && rec->segs[RING_LITE].len == 0);
    /* no hints at all: the classic whole layout */
    tmsg_make(&t, 8, ks, 2);
    t.m.lite = NULL;
    t.m.n_lite = 0;
    t.m.shared = NULL;
    t.m.n_shared = 0;
    seq = ring_publish(r, 0, &t.m);
    CHECK(seq && ring_peek(r, seq, &rec) == RING_OK);
    CHECK(rec->segs[RING_FULL].len == 0 && rec->segs[RING_LITE].len == 0);
    CHECK(rec->json[RING_FULL].len == t.flen &&
          memcmp(ring_record_bytes(rec) + rec->json[RING_FULL].off, t.full, t.flen) == 0);
    check_forms(r, rec, seq, &t);
    /* a shared range larger than a chain-table entry stays in the record */
    static struct tmsg big;
    tmsg_make(&big, 9, ks, 1);
    big.shared[0] = (struct ring_span){0, (uint32_t)big.flen};   /* all of full: > 4 KiB */
    big.m.lite = NULL;
    big.m.n_lite = 0;
    seq = ring_publish(r, 0, &big.m);
    CHECK(seq && ring_peek(r, seq, &rec) == RING_OK);
    check_forms(r, rec, seq, &big);
    ring_destroy(r);
}

/* SSE resume: ring_find gives a split record by its id, and the record after it. */
static void test_resume(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    static struct tmsg t;
    unsigned ks[] = {1, 2};
    uint64_t seqs[20];
    for (unsigned i = 0; i < 20; i++) {
        tmsg_make(&t, i, ks, 2);
        seqs[i] = ring_publish(r, 0, &t.m);
    }
    for (unsigned i = 0; i + 1 < 20; i++) {
        const struct ring_record *rec = NULL;
        CHECK(ring_find(r, seqs[i], &rec) == RING_OK);
        CHECK(ring_record_sse_id(rec) == seqs[i]);
        CHECK(ring_next(rec) == seqs[i + 1]);
        CHECK(ring_find(r, seqs[i] + RING_ALIGN, &rec) != RING_OK || seqs[i] + RING_ALIGN == seqs[i + 1]);
        tmsg_make(&t, i, ks, 2);
        check_forms(r, rec, seqs[i], &t);
    }
    ring_destroy(r);
}

/* Readers far behind while the ring wraps many times and chain-table
 * entries are reused: a copy is either declared lapped by
 * ring_lapped_since, or it is exactly the message. 4,000 distinct chain
 * elements go through the 1,024-entry table. */
static void test_lifetime_under_wrap(void)
{
    struct ring *r = test_ring_create(MIB);
    static struct tmsg t, e;
    static char buf[MAXMSG];
    enum { N = 6000, LAGS = 5 };
    uint64_t *seq = calloc(N, sizeof *seq);
    unsigned lag[LAGS] = {1, 200, 500, 560, 570};   /* records behind; ~1.9 KB each: 1 MiB is ~565 */
    unsigned intact = 0, lapped = 0, wrong = 0;
    for (unsigned i = 0; i < N; i++) {
        unsigned ks[2] = {i % 4000, 4000 + i % 3};
        tmsg_make(&t, i, ks, 2);
        seq[i] = ring_publish(r, (unsigned)(i % 3), &t.m);
        CHECK(seq[i] != 0);
        for (int l = 0; l < LAGS; l++) {
            if (i < lag[l]) continue;
            unsigned j = i - lag[l];
            const struct ring_record *rec = NULL;
            enum ring_status st = ring_peek(r, seq[j], &rec);
            if (st == RING_LAPPED) {
                lapped++;
                continue;
            }
            CHECK(st == RING_OK);
            if (st != RING_OK) continue;
            size_t jl = 0;
            const char *js = ring_record_json(r, rec, RING_FULL, buf, sizeof buf, &jl);
            bool copied = js != NULL;
            if (copied && js != buf) memcpy(buf, js, jl);
            if (ring_lapped_since(r, seq[j])) {
                lapped++;
                continue;
            }
            intact++;
            unsigned eks[2] = {j % 4000, 4000 + j % 3};
            tmsg_make(&e, j, eks, 2);
            if (!copied || jl != e.flen || memcmp(buf, e.full, jl) != 0) wrong++;
        }
    }
    CHECK(wrong == 0);
    CHECK(intact > N * 2);
    CHECK(lapped > 0);   /* the readers near a whole ring behind were lapped at times */
    /* entries were reused: more distinct elements went through than the table has */
    CHECK(chaintab_used(ring_chaintab(r)) <= 1024);
    fprintf(stderr, "  %u intact copies, %u lapped, %u wrong\n", intact, lapped, wrong);
    free(seq);
    ring_destroy(r);
}

/* The chain table itself: content-addressed, reused only once its newest
 * reference is below the given position, full windows refused. */
static void test_chaintab_rules(void)
{
    struct chaintab *ct = chaintab_create(16, 4096);
    CHECK(ct != NULL);
    if (!ct) return;
    char a[100], b[100];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    int64_t oa = chaintab_ref(ct, a, sizeof a, 1000, 0);
    CHECK(oa >= 0);
    CHECK(chaintab_ref(ct, a, sizeof a, 1100, 0) == oa);            /* same bytes, same entry */
    CHECK(memcmp(chaintab_bytes(ct, (uint64_t)oa, sizeof a), a, sizeof a) == 0);
    CHECK(chaintab_ref(ct, a, 99, 1200, 0) != oa);                   /* other bytes, other entry */
    /* fill the table: 16 distinct pieces referenced at 2000 */
    int ok = 0;
    for (int i = 0; i < 64; i++) {
        char p[40];
        int n = sprintf(p, "piece-%d", i);
        if (chaintab_ref(ct, p, (uint32_t)n, 2000, 0) >= 0) ok++;
    }
    CHECK(ok <= 16 - 2);
    CHECK(chaintab_used(ct) == 16);
    /* nothing is reusable below 1000: the new piece finds no room */
    CHECK(chaintab_ref(ct, b, sizeof b, 3000, 1000) == -1);
    /* a (last referenced at 1100) is reusable once positions below 1101 may be gone */
    int64_t ob = chaintab_ref(ct, b, sizeof b, 3000, 1101);
    CHECK(ob == -1 || ob == oa);   /* only a's entry may go: the others are newer */
    if (ob < 0) ob = chaintab_ref(ct, b, sizeof b, 3000, 2001);   /* now every entry may go */
    CHECK(ob >= 0);
    if (ob >= 0) CHECK(memcmp(chaintab_bytes(ct, (uint64_t)ob, sizeof b), b, sizeof b) == 0);
    CHECK(chaintab_ref(ct, b, sizeof b, 3100, 0) == ob);             /* and is found again */
    CHECK(chaintab_bytes(ct, chaintab_data_size(ct), 1) == NULL);
    CHECK(chaintab_ref(ct, a, 5000, 4000, 0) == -1);                 /* larger than an entry */
    chaintab_destroy(ct);
}

/* Checksum mode covers the chain-table bytes: one changed byte there no
 * longer matches the record's checksum. */
static void test_checksum_covers_chain(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    static struct tmsg t;
    unsigned ks[] = {42};
    tmsg_make(&t, 1, ks, 1);
    uint64_t seq = ring_publish(r, 0, &t.m);
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, seq, &rec) == RING_OK);
    CHECK(rec->checksum == indep_checksum(r, rec));
    const struct ring_seg *s = (const struct ring_seg *)(ring_record_bytes(rec) + rec->segs[RING_FULL].off);
    bool found = false;
    for (uint32_t k = 0; k < rec->segs[RING_FULL].len; k++) {
        if (!(s[k].len & RING_SEG_SHARED)) continue;
        uint8_t *p = (uint8_t *)chaintab_bytes(ring_chaintab(r), s[k].off, 1);
        p[0] ^= 1;
        CHECK(rec->checksum != ring_test_checksum(r, rec));
        p[0] ^= 1;
        CHECK(rec->checksum == ring_test_checksum(r, rec));
        found = true;
    }
    CHECK(found);
    ring_destroy(r);
}

static struct ring *g_fill_ring;
static int g_fill_done;

/* At the claim of the next publish: fill the whole chain table with live
 * entries, as other producers could between its look and its claim. */
static void fill_hook(enum ring_test_phase phase, uint64_t pos, void *arg)
{
    (void)arg;
    if (phase != RING_TEST_CLAIMED || g_fill_done) return;
    g_fill_done = 1;
    for (unsigned i = 0; i < 20000; i++) {
        char p[32];
        int n = sprintf(p, "filler-%u", i);
        chaintab_ref(ring_chaintab(g_fill_ring), p, (uint32_t)n, pos + (1u << 30), 0);
    }
}

/* The chain table fills up between a producer's look and its claim: the
 * claim becomes a pad, and the message is published again right after it,
 * exact, with its chain elements kept in the record. */
static void test_table_changed_under_publish(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    static struct tmsg t;
    unsigned ks[] = {77, 78};
    tmsg_make(&t, 5, ks, 2);
    g_fill_ring = r;
    g_fill_done = 0;
    ring_test_set_hook(fill_hook, NULL);
    uint64_t before = ring_tail(r);
    uint64_t seq = ring_publish(r, 0, &t.m);
    ring_test_set_hook(NULL, NULL);
    CHECK(chaintab_used(ring_chaintab(r)) == 1024);
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, before, &rec) == RING_OK && rec->kind == RING_KIND_PAD);
    CHECK(seq != 0 && rec && ring_next(rec) == seq);
    CHECK(ring_peek(r, seq, &rec) == RING_OK);
    if (rec) {
        const struct ring_seg *s = (const struct ring_seg *)(ring_record_bytes(rec) + rec->segs[RING_FULL].off);
        for (uint32_t k = 0; k < rec->segs[RING_FULL].len; k++) CHECK(!(s[k].len & RING_SEG_SHARED));
        check_forms(r, rec, seq, &t);
    }
    ring_destroy(r);
}

/* --- a producer killed mid-record --- */

static volatile uint64_t *g_stop_pos;

static void stop_hook(enum ring_test_phase phase, uint64_t pos, void *arg)
{
    (void)arg;
    if (phase == RING_TEST_WRITTEN) {
        *g_stop_pos = pos;
        raise(SIGSTOP);
    }
}

/* Killed after its chain-table references and sections were written: the
 * record is padded by ring_repair, readers pass it, the entries it took stay
 * valid for the records that use them, and the producer id works again. */
static void test_repair_split(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    static struct tmsg t, u;
    unsigned ks[] = {7, 8}, ku[] = {7, 9};
    tmsg_make(&t, 1, ks, 2);
    tmsg_make(&u, 2, ku, 2);
    g_stop_pos = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(g_stop_pos != MAP_FAILED);
    *g_stop_pos = 0;
    pid_t pid = fork();
    if (pid == 0) {
        ring_test_set_hook(stop_hook, NULL);
        ring_publish(r, 4, &t.m);
        _exit(3);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st));
    uint64_t c = *g_stop_pos;
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, c, &rec) == RING_EMPTY);
    uint64_t later = ring_publish(r, 1, &u.m);   /* shares element 7 with the dead one */
    CHECK(kill_reap(pid));
    ring_repair(r, 4);
    CHECK(ring_peek(r, c, &rec) == RING_OK && rec->kind == RING_KIND_PAD && ring_next(rec) == later);
    CHECK(ring_peek(r, later, &rec) == RING_OK);
    check_forms(r, rec, later, &u);
    uint64_t again = ring_publish(r, 4, &t.m);
    CHECK(ring_peek(r, again, &rec) == RING_OK);
    check_forms(r, rec, again, &t);
    munmap((void *)g_stop_pos, 4096);
    ring_destroy(r);
}

/* Two producer processes and a reader process sharing the ring and the
 * chain table, with entries reused all the time: every copy the reader
 * validates is exact. */
static void test_concurrent(void)
{
    struct ring *r = test_ring_create(MIB);
    enum { PER = 3000 };
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            static struct tmsg t;
            for (unsigned i = 0; i < PER; i++) {
                unsigned id = (unsigned)p * PER + i, ks[2] = {id % 2500, 9000 + id % 2};
                tmsg_make(&t, id, ks, 2);
                if (ring_publish(r, (unsigned)p + 1, &t.m) == 0) _exit(2);
                ring_notify(r);
            }
            _exit(0);
        }
    }
    static struct tmsg e;
    static char buf[MAXMSG];
    uint64_t pos = 0;   /* 0: start at the tail */
    unsigned ok = 0, wrong = 0, lapped = 0;
    for (int done = 0; done < 2;) {
        int st;
        for (int p = 0; p < 2; p++) {
            if (pids[p] > 0 && waitpid(pids[p], &st, WNOHANG) == pids[p]) {
                CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
                pids[p] = 0;
                done++;
            }
        }
        /* read the record at the tail's neighbourhood: walk from a recent start */
        if (pos == 0) pos = ring_tail(r);
        const struct ring_record *rec = NULL;
        enum ring_status s = ring_peek(r, pos, &rec);
        if (s == RING_EMPTY) continue;
        if (s != RING_OK) {
            lapped++;
            pos = ring_tail(r);
            continue;
        }
        uint64_t next = ring_next(rec);
        if (rec->kind == RING_KIND_MESSAGE) {
            uint64_t idx = rec->cert_index;
            size_t jl = 0;
            const char *js = ring_record_json(r, rec, RING_FULL, buf, sizeof buf, &jl);
            if (js && js != buf) memcpy(buf, js, jl);
            if (ring_lapped_since(r, pos)) {
                lapped++;
                pos = ring_tail(r);
                continue;
            }
            unsigned ks[2] = {(unsigned)(idx % 2500), 9000 + (unsigned)(idx % 2)};
            tmsg_make(&e, (unsigned)idx, ks, 2);
            if (js && jl == e.flen && memcmp(buf, e.full, jl) == 0) ok++;
            else wrong++;
        }
        pos = next;
    }
    CHECK(wrong == 0);
    CHECK(ok > 100);
    fprintf(stderr, "  %u exact copies, %u lapped, %u wrong\n", ok, lapped, wrong);
    ring_destroy(r);
}

int main(void)
{
    RUN(test_split_forms);
    RUN(test_fallbacks);
    RUN(test_resume);
    RUN(test_chaintab_rules);
    RUN(test_checksum_covers_chain);
    RUN(test_table_changed_under_publish);
    RUN(test_lifetime_under_wrap);
    RUN(test_repair_split);
    RUN(test_concurrent);
    return test_report();
}
