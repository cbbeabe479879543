/* fuzz_ring.c - readers facing arbitrary ring contents and positions.
 *
 * A reader may see a header that was overwritten while it read it, and
 * ring_find gets sequence numbers from clients (Last-Event-ID). So whatever
 * bytes sit in the ring and whatever position is asked for, ring_peek and
 * ring_find must answer with a status, and a record they call RING_OK must
 * lie inside the ring: seq == position, sane length, every span inside the
 * record, record before the tail. Input: a few publishes (sizes and bytes
 * from the input, some with lite pieces and shared ranges so records are
 * split, shm/ring.h), then operations: scribble bytes at an offset, peek or
 * find a position, walk from the start. Every form of a record called
 * RING_OK is read through ring_record_iov: each iovec must lie inside the
 * record or inside the chain table, and its bytes are read (ASan checks). */
#include "shm/chaintab.h"
#include "shm/ring.h"
#include "shm/ring_test.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_RING_SIZE ((size_t)1 << 20)
#define HDR sizeof(struct ring_record)

static struct ring *g_ring;

static uint64_t take(const uint8_t **p, size_t *n, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes && *n > 0; i++, (*p)++, (*n)--)
        v |= (uint64_t)**p << (8 * i);
    return v;
}

static volatile uint8_t g_sink;

static void check_forms(const struct ring_record *rec)
{
    const uint8_t *base = ring_record_bytes(rec);
    const struct chaintab *ct = ring_chaintab(g_ring);
    const uint8_t *tab = chaintab_bytes(ct, 0, 0);
    uint64_t tab_len = chaintab_data_size(ct);
    for (int f = 0; f < RING_NFORMATS; f++) {
        for (int w = RING_WIRE_WS; w <= RING_WIRE_JSON; w++) {
            struct iovec iov[RING_RECORD_MAX_IOV];
            int n = 0;
            uint32_t got = ring_record_iov(g_ring, rec, (enum ring_format)f, (enum ring_wire)w, 0, iov, &n);
            uint64_t sum = 0;
            if (n < 0 || n > RING_RECORD_MAX_IOV)
                abort();
            for (int i = 0; i < n; i++) {
                const uint8_t *p = iov[i].iov_base;
                bool in_rec = p >= base + HDR && p + iov[i].iov_len <= base + rec->total_len;
                bool in_tab = p >= tab && p + iov[i].iov_len <= tab + tab_len;
                if (!in_rec && !in_tab)
                    abort();
                for (size_t k = 0; k < iov[i].iov_len; k++)
                    g_sink ^= p[k];
                sum += iov[i].iov_len;
            }
            if (sum != got)
                abort();
        }
    }
}

static void check_ok(const struct ring_record *rec, uint64_t pos)
{
    if (rec->seq != pos || rec->total_len < HDR || rec->total_len > FUZZ_RING_SIZE / 4 ||
        rec->total_len % RING_ALIGN != 0 || pos + rec->total_len > ring_tail(g_ring))
        abort();
    if (rec->kind == RING_KIND_MESSAGE) {
        const struct ring_span *spans[] = {&rec->ws[0], &rec->ws[1], &rec->ws[2], &rec->json[0],
                                           &rec->json[1], &rec->json[2], &rec->sse_tail[0],
                                           &rec->sse_tail[1], &rec->sse_tail[2], &rec->sse_head};
        for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++) {
            if (i >= 3 && i < 6 && rec->segs[i - 3].len != 0)
                continue;   /* a split format's json span is {0, length} */
            if (spans[i]->off < HDR || (uint64_t)spans[i]->off + spans[i]->len > rec->total_len)
                abort();
        }
        check_forms(rec);
    } else if (rec->kind != RING_KIND_PAD) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_ring == NULL) {
        g_ring = ring_create(FUZZ_RING_SIZE);
        if (g_ring == NULL)
            abort();
    }
    struct ring *r = g_ring;
    uint8_t *mem = ring_test_data(r);
    /* Start from a clean ring each time: zero it (positions keep growing). */
    memset(mem, 0, FUZZ_RING_SIZE);
    uint64_t start = ring_tail(r);

    unsigned n_pub = (unsigned)take(&data, &size, 1) % 16;
    for (unsigned i = 0; i < n_pub; i++) {
        struct ring_message m;
        struct ring_span lite[2], shared[2];
        memset(&m, 0, sizeof m);
        for (int f = 0; f < RING_NFORMATS; f++) {
            size_t len = (size_t)take(&data, &size, 2) % 4096;
            m.json[f] = (const char *)data;
            m.json_len[f] = len <= size ? len : size;
            m.bench_stamp_off[f] = (long)take(&data, &size, 1) - 128;
        }
        unsigned hints = (unsigned)take(&data, &size, 1);
        uint32_t fl = (uint32_t)m.json_len[RING_FULL];
        if ((hints & 1) && fl > 8) {
            /* shared: two ranges of full (bad ones are refused by the ring) */
            for (int k = 0; k < 2; k++)
                shared[k] = (struct ring_span){(uint32_t)take(&data, &size, 2) % fl,
                                               (uint32_t)take(&data, &size, 2) % fl};
            m.shared = shared;
            m.n_shared = 1 + (hints >> 2 & 1);
        }
        if ((hints & 2) && fl > 8) {
            /* lite = two ranges of full: make it so, or not (then refused) */
            lite[0] = (struct ring_span){0, fl / 4};
            lite[1] = (struct ring_span){fl / 2, fl / 4};
            m.lite = lite;
            m.n_lite = 2;
            static char lbuf[4096];
            memcpy(lbuf, m.json[RING_FULL], fl / 4);
            memcpy(lbuf + fl / 4, m.json[RING_FULL] + fl / 2, fl / 4);
            if (hints & 8) {
                m.json[RING_LITE] = lbuf;
                m.json_len[RING_LITE] = 2 * (fl / 4);
            }
        }
        if (ring_publish(r, i % RING_MAX_PRODUCERS, &m) == 0)
            abort();   /* sizes are far below size/4 */
    }
    uint64_t tail = ring_tail(r);
    while (size > 0) {
        unsigned op = (unsigned)take(&data, &size, 1) % 4;
        const struct ring_record *rec = NULL;
        if (op == 0) {            /* scribble */
            size_t off = (size_t)take(&data, &size, 3) % FUZZ_RING_SIZE;
            size_t len = (size_t)take(&data, &size, 1);
            for (size_t i = 0; i < len && size > 0; i++)
                mem[(off + i) % FUZZ_RING_SIZE] = (uint8_t)take(&data, &size, 1);
        } else if (op == 1) {     /* peek near the live area */
            uint64_t pos = start + take(&data, &size, 3) * RING_ALIGN / 8;
            if (ring_peek(r, pos, &rec) == RING_OK)
                check_ok(rec, pos);
        } else if (op == 2) {     /* find any sequence number */
            uint64_t seq = take(&data, &size, 8);
            if (size & 1)
                seq = start + seq % (tail - start + 4096);
            if (ring_find(r, seq, &rec) == RING_OK)
                check_ok(rec, seq);
        } else {                  /* walk: must end, never loop */
            uint64_t pos = start;
            for (unsigned steps = 0; steps < 64 && ring_peek(r, pos, &rec) == RING_OK; steps++) {
                check_ok(rec, pos);
                if (ring_next(rec) <= pos)
                    abort();
                pos = ring_next(rec);
            }
        }
    }
    return 0;
}
