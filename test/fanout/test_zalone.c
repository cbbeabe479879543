/* test_zalone.c - the frames compressed alone by the worker
 * (fanout/zalone.c) without sockets: a real ring of records that carry no
 * compressed frame (as ingest publishes them), JSON that compresses badly
 * (so a few thousand frames fill the 4 MiB cache several times), and
 * checks that
 * - every frame inflates, with an inflater of its own, to exactly the
 *   published JSON;
 * - a client that wrote part of a frame, which the cache then let go,
 *   gets the rest as the very bytes it would have got (a miss compresses
 *   again), and the whole inflates to the JSON;
 * - an old frame still in the cache is copied to the head before it is
 *   handed out, and keeps its bytes;
 * - nothing handed out in a walk (up to the pump's per-walk budget and
 *   the records around it) is overwritten before that walk ends, and the
 *   bytes of a walk kept for other clients (the pump's memo) are intact
 *   for as long as zalone_intact says so, while other walks compress. */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "check.h"
#include "fanout/zalone.h"
#include "shm/ring.h"

#define NMSG 3000
#define JSON_LEN 6000

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static uint64_t seq[NMSG];
static char *json[NMSG];
static size_t jlen[NMSG];

static void publish_all(struct ring *r)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < NMSG; i++) {
        size_t cap = JSON_LEN + 600, n = 0;
        char *s = malloc(cap);
        n += (size_t)snprintf(s, cap, "{\"i\":%d,\"der\":\"", i);
        size_t want = JSON_LEN - 500 + rnd(1000);
        while (n < want) s[n++] = hex[rnd(16)];
        n += (size_t)snprintf(s + n, cap - n, "\"}");
        json[i] = s;
        jlen[i] = n;
        struct ring_message m;
        memset(&m, 0, sizeof m);
        static const char short_json[] = "{\"short\":1}";
        for (int f = 0; f < RING_NFORMATS; f++) {
            m.json[f] = f == RING_FULL ? s : short_json;
            m.json_len[f] = f == RING_FULL ? n : sizeof short_json - 1;
            m.bench_stamp_off[f] = -1;
        }
        seq[i] = ring_publish(r, 0, &m);
        CHECK(seq[i] != 0);
    }
}

static const struct ring_record *rec_of(struct ring *r, int i)
{
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, seq[i], &rec) == RING_OK);
    return rec;
}

/* the payload of one whole frame (FIN, RSV1, Text) inflated alone equals message i */
static bool inflates_to(const uint8_t *f, size_t n, int i)
{
    if (n < 2 || f[0] != 0xC1) return false;
    size_t hl = 2, plen = f[1] & 0x7f;
    if (plen == 126) {
        hl = 4;
        plen = (size_t)f[2] << 8 | f[3];
    } else if (plen == 127) {
        hl = 10;
        plen = 0;
        for (int k = 0; k < 8; k++) plen = plen << 8 | f[2 + k];
    }
    if (hl + plen != n) return false;
    uint8_t *in = malloc(plen + 4), *out = malloc(jlen[i] + 16);
    memcpy(in, f + hl, plen);
    memcpy(in + plen, "\x00\x00\xff\xff", 4);
    z_stream z;
    memset(&z, 0, sizeof z);
    bool ok = inflateInit2(&z, -15) == Z_OK;
    z.next_in = in;
    z.avail_in = (uInt)(plen + 4);
    z.next_out = out;
    z.avail_out = (uInt)(jlen[i] + 16);
    int rc = inflate(&z, Z_SYNC_FLUSH);
    ok = ok && (rc == Z_OK || rc == Z_STREAM_END) && z.avail_in == 0 && z.total_out == jlen[i] &&
         memcmp(out, json[i], jlen[i]) == 0;
    inflateEnd(&z);
    free(in);
    free(out);
    return ok;
}

/* the whole frame of message i, as zalone hands it out (skip 0) */
static uint32_t frame(struct zalone *za, struct ring *r, int i, uint32_t skip, struct iovec *iov)
{
    return zalone_iov(za, r, rec_of(r, i), RING_FULL, skip, iov);
}

static void test_partial_after_eviction(struct ring *r)
{
    struct zalone *za = zalone_new(6);
    CHECK(za != NULL);
    struct iovec iov;
    uint32_t n = frame(za, r, 0, 0, &iov);
    CHECK(n > 1000 && n < jlen[0]);
    CHECK(inflates_to(iov.iov_base, n, 0));
    /* the client's socket took k bytes */
    uint32_t k = n / 3;
    uint8_t *got = malloc(n);
    memcpy(got, iov.iov_base, k);
    /* other walks fill the cache more than once: message 0's frame is gone */
    struct zalone_stats before, after;
    uint64_t written = 0;
    for (int i = 1; i < NMSG && written < 2ull * ZALONE_ARENA; i++) {
        struct iovec v;
        uint32_t m = frame(za, r, i, 0, &v);
        CHECK(m > 0);
        written += m;
    }
    CHECK(written >= 2ull * ZALONE_ARENA);
    /* the rest, on the next flush: a miss, compressed again */
    zalone_get_stats(za, RING_FULL, &before);
    uint32_t rest = frame(za, r, 0, k, &iov);
    zalone_get_stats(za, RING_FULL, &after);
    CHECK(after.misses == before.misses + 1 && after.hits == before.hits && after.copies == before.copies);
    CHECK_MSG(rest == n - k, "rest %u, frame %u, sent %u", rest, n, k);
    if (rest == n - k) {
        memcpy(got + k, iov.iov_base, rest);
        CHECK(inflates_to(got, n, 0));
    }
    /* and it is cached again */
    struct zalone_stats s0 = after;
    frame(za, r, 0, k, &iov);
    zalone_get_stats(za, RING_FULL, &after);
    CHECK(after.hits == s0.hits + 1);   /* now cached again */
    free(got);
    zalone_free(za);
}

static void test_old_half_copied(struct ring *r)
{
    struct zalone *za = zalone_new(6);
    struct iovec iov;
    uint32_t n = frame(za, r, 5, 0, &iov);
    uint8_t *first = malloc(n);
    memcpy(first, iov.iov_base, n);
    /* push message 5 into the older half of the arena, not out of it */
    uint64_t written = 0;
    for (int i = 100; written < ZALONE_ARENA / 2 + ZALONE_ARENA / 8; i++) {
        struct iovec v;
        written += frame(za, r, i, 0, &v);
    }
    struct zalone_stats s0, s1;
    zalone_get_stats(za, RING_FULL, &s0);
    uint32_t m = frame(za, r, 5, 0, &iov);
    zalone_get_stats(za, RING_FULL, &s1);
    CHECK(s1.copies == s0.copies + 1 && s1.misses == s0.misses);
    CHECK(m == n && memcmp(iov.iov_base, first, n) == 0);
    free(first);
    zalone_free(za);
}

/* A walk hands out frames up to the pump's budget; its iovecs must keep
 * their bytes until its writev, and, as the memo, while zalone_intact. */
#define WALK_BUDGET (512u * 1024u)
static void test_walks_not_overwritten(struct ring *r)
{
    struct zalone *za = zalone_new(6);
    struct iovec *memo = calloc(NMSG, sizeof *memo);
    uint8_t **snap = calloc(NMSG, sizeof *snap);
    int rounds = 0, checked_memo = 0;
    int next = 0;
    while (next < NMSG - 400 && rounds < 40) {
        /* the memo walk: from a random earlier position, so some frames
         * are hits, some copies, some misses */
        uint64_t mark = zalone_mark(za, RING_FULL);
        int from = next > 300 && rnd(2) ? next - (int)rnd(300) : next;
        int nm = 0;
        size_t total = 0;
        for (int i = from; i < NMSG && total < WALK_BUDGET; i++) {
            uint32_t m = frame(za, r, i, 0, &memo[nm]);
            CHECK(m > 0);
            snap[nm] = malloc(m);
            memcpy(snap[nm], memo[nm].iov_base, m);
            total += m;
            nm++;
        }
        if (from + nm > next) next = from + nm;
        /* the walk's own iovecs, at its end (its "writev") */
        for (int j = 0; j < nm; j++) CHECK(memcmp(memo[j].iov_base, snap[j], memo[j].iov_len) == 0);
        /* other clients' walks (non-memo: a record partly sent first) at
         * other positions, while the memo may be reused */
        for (;;) {
            int at = (int)rnd(NMSG);
            struct iovec v[2];
            uint32_t a = frame(za, r, at, 1 + rnd(100), &v[0]);
            CHECK(a > 0);
            size_t t = 0;
            for (int i = (at + 1) % NMSG; t < WALK_BUDGET / 8; i = (i + 1) % NMSG) t += frame(za, r, i, 0, &v[1]);
            /* the pump asks before it reuses the memo */
            if (!zalone_intact(za, RING_FULL, mark)) break;
            for (int j = 0; j < nm; j++) CHECK(memcmp(memo[j].iov_base, snap[j], memo[j].iov_len) == 0);
            checked_memo++;
        }
        for (int j = 0; j < nm; j++) free(snap[j]);
        rounds++;
    }
    CHECK(rounds >= 10);
    CHECK(checked_memo > rounds);   /* the memo outlived several walks */
    struct zalone_stats st;
    zalone_get_stats(za, RING_FULL, &st);
    CHECK(st.hits > 0 && st.misses > 0 && st.copies > 0);
    CHECK(st.bytes_written > 4ull * ZALONE_ARENA);   /* the arena went round several times */
    free(memo);
    free(snap);
    zalone_free(za);
}

int main(void)
{
    struct ring *r = ring_create(64u << 20);
    CHECK(r != NULL);
    if (!r) return check_report();
    publish_all(r);
    /* every frame inflates to its message */
    struct zalone *za = zalone_new(6);
    int ok = 0;
    for (int i = 0; i < NMSG; i++) {
        struct iovec v;
        uint32_t n = frame(za, r, i, 0, &v);
        ok += n > 0 && inflates_to(v.iov_base, n, i);
    }
    CHECK(ok == NMSG);
    /* the decision: carried frame, or enabled and long enough */
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    const struct ring_record *rec = rec_of(r, 0);
    CHECK(!zalone_wanted(&cfg, rec, RING_FULL));
    cfg.compression.enabled = true;
    cfg.compression.min_size = (uint32_t)jlen[0];
    CHECK(zalone_wanted(&cfg, rec, RING_FULL));
    cfg.compression.min_size = (uint32_t)jlen[0] + 1;
    CHECK(!zalone_wanted(&cfg, rec, RING_FULL));
    CHECK(!zalone_wanted(NULL, rec, RING_FULL));
    zalone_free(za);
    test_partial_after_eviction(r);
    test_old_half_copied(r);
    test_walks_not_overwritten(r);
    for (int i = 0; i < NMSG; i++) free(json[i]);
    ring_destroy(r);
    return check_report();
}
