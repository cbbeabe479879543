/* test_zchain.c - chained permessage-deflate frames (fanout/zchain.c)
 * without sockets: a real ring, real records (some without a compressed
 * frame, like compression.min_size leaves them), and simulated clients
 * that do what the pump does (a walk from the cursor handing out one frame
 * per record, writes of random length that stop in the middle of frames,
 * the rest of a record first on the next flush, heartbeats compressed
 * alone between records). Every client inflates its bytes with ONE zlib
 * inflater, as RFC 7692 says for server context takeover, and must get
 * exactly the published messages, whether it keeps up, joins late, falls
 * behind the small cache, or is lapped by the ring and comes back, with
 * padding records among the messages (a producer that died between claim
 * and commit, repaired by ring_repair as the supervisor does). The records
 * carry no compressed frames, as every producer publishes them: the worker
 * makes the frames compressed alone on first use (fanout/zalone.c). Run
 * twice: with compression.min_size 140, leaving the short messages plain
 * (for the chained stream too), and with 0 (every message compressed). Also
 * the negotiation: which offers leave the server its context. */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "check.h"
#include "common/wsdeflate.h"
#include "fanout/fanout_internal.h"
#include "fanout/http_parser.h"
#include "fanout/ws_handshake.h"
#include "fanout/zalone.h"
#include "fanout/zchain.h"
#include "shm/ring_test.h"

#define NMSG 6000
#define NCLIENT 15
#define HB "{\"message_type\":\"heartbeat\",\"timestamp\":1700000000.5}"
static uint32_t min_size;   /* compression.min_size of the run */

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* what was published: seq and the JSON of each format */
static uint64_t pub_seq[NMSG];
static char *pub_json[NMSG][RING_NFORMATS];
static size_t pub_len[NMSG][RING_NFORMATS];
static int npub;

static char *make_json(int i, int f, size_t *len)
{
    static const char *const words[] = { "example", "cloudflare", "letsencrypt", "workday", "amazonaws",
                                         "prd", "staging", "mail", "www", "api", "cdn", "shop" };
    size_t cap = 6000, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "{\"message_type\":\"certificate_update\",\"format\":%d,\"i\":%d,\"domains\":[", f, i);
    int nd = f == RING_DOMAINS ? 1 + (int)rnd(3) : 2 + (int)rnd(f == RING_FULL ? 40 : 12);
    for (int d = 0; d < nd && n < cap - 200; d++)
        n += (size_t)snprintf(s + n, cap - n, "%s\"%s%u.%s.%s.com\"", d ? "," : "", words[rnd(12)], rnd(100000),
                              words[rnd(12)], words[rnd(12)]);
    n += (size_t)snprintf(s + n, cap - n, "],\"cert_index\":%u}", rnd(1u << 30));
    *len = n;
    return s;
}

/* A producer "dies" after writing its record, before the commit: the hook
 * jumps out of ring_publish, and ring_repair turns the claim into padding. */
static jmp_buf die_here;
static void die_hook(enum ring_test_phase phase, uint64_t pos, void *arg)
{
    (void)pos;
    (void)arg;
    if (phase == RING_TEST_WRITTEN) longjmp(die_here, 1);
}

static int npad;
static void publish_pad(struct ring *r)
{
    static char junk[3000];
    memset(junk, 'x', sizeof junk);
    struct ring_message m;
    memset(&m, 0, sizeof m);
    for (int f = 0; f < RING_NFORMATS; f++) {
        m.json[f] = junk;
        m.json_len[f] = 1000 + 500 * (size_t)f;
        m.bench_stamp_off[f] = -1;
    }
    ring_test_set_hook(die_hook, NULL);
    if (setjmp(die_here) == 0) {
        ring_publish(r, 1, &m);
        CHECK(!"the hook did not stop the producer");
    }
    ring_test_set_hook(NULL, NULL);
    ring_repair(r, 1);
    npad++;
}

static void publish(struct ring *r)
{
    if (npub >= NMSG) return;
    if (rnd(40) == 0) publish_pad(r);
    struct ring_message m;
    memset(&m, 0, sizeof m);
    for (int f = 0; f < RING_NFORMATS; f++) {
        pub_json[npub][f] = make_json(npub, f, &pub_len[npub][f]);
        m.json[f] = pub_json[npub][f];
        m.json_len[f] = pub_len[npub][f];
        m.bench_stamp_off[f] = -1;
    }
    pub_seq[npub] = ring_publish(r, 0, &m);
    CHECK(pub_seq[npub] != 0);
    npub++;
}

/* a simulated client: a conn the zchain functions see, its bytes, its inflater */
struct sim {
    struct conn *c;
    z_stream inf;
    uint8_t *in;            /* bytes received, not yet parsed */
    size_t in_len, in_cap;
    int next;               /* index of the message it must get next */
    bool hb_pending;        /* a heartbeat waits in its control queue */
    int hb_expected;        /* heartbeats queued and not yet parsed */
    int period;             /* flushes every period steps */
    long msgs, chained, hbs, reconnects, behind;
};

static void sim_start(struct sim *s, struct worker *w, int fmt)
{
    if (!s->c) {
        s->c = calloc(1, sizeof *s->c);
        s->c->all_next = w->all;
        w->all = s->c;
        CHECK(inflateInit2(&s->inf, -15) == Z_OK);
    } else {
        CHECK(inflateReset(&s->inf) == Z_OK);
        zchain_client_free(s->c);
        s->reconnects++;
    }
    s->c->w = w;
    s->c->fmt = (uint8_t)fmt;
    s->c->state = CS_WS;
    s->c->proto = PROTO_WS;
    s->c->deflate = true;
    s->c->cursor = ring_start_position(w->ring);
    s->c->rec_off = 0;
    s->in_len = 0;
    s->next = npub;
    s->hb_pending = false;
    s->hb_expected = 0;
    zchain_client_init(&s->c->zc, s->c->cursor);
}

static void take(struct sim *s, const void *p, size_t n)
{
    if (s->in_len + n > s->in_cap) {
        s->in_cap = (s->in_len + n) * 2;
        s->in = realloc(s->in, s->in_cap);
    }
    memcpy(s->in + s->in_len, p, n);
    s->in_len += n;
}

/* parses and checks every whole frame received */
static void parse(struct sim *s)
{
    static uint8_t out[1 << 17];
    size_t off = 0;
    if (!s->in) return;
    while (s->in_len - off >= 2) {
        const uint8_t *p = s->in + off;
        size_t hl = 2, n = p[1] & 0x7f;
        if (n == 126) {
            if (s->in_len - off < 4) break;
            n = (size_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (n == 127) {
            if (s->in_len - off < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = n << 8 | p[2 + i];
            hl = 10;
        }
        if (s->in_len - off < hl + n) break;
        CHECK((p[0] & 0x8f) == 0x81);   /* FIN, Text */
        const uint8_t *msg = p + hl;
        size_t mlen = n;
        if (p[0] & 0x40) {
            static uint8_t z[1 << 17];
            memcpy(z, p + hl, n);
            memcpy(z + n, "\x00\x00\xff\xff", 4);
            s->inf.next_in = z;
            s->inf.avail_in = (uInt)(n + 4);
            s->inf.next_out = out;
            s->inf.avail_out = sizeof out;
            int rc = inflate(&s->inf, Z_SYNC_FLUSH);
            CHECK_MSG(rc == Z_OK && s->inf.avail_in == 0, "inflate %d: %s", rc, s->inf.msg ? s->inf.msg : "");
            msg = out;
            mlen = sizeof out - s->inf.avail_out;
            /* a frame that does not inflate alone was chained */
            z_stream one;
            memset(&one, 0, sizeof one);
            static uint8_t o2[1 << 17];
            if (inflateInit2(&one, -15) == Z_OK) {
                one.next_in = z;
                one.avail_in = (uInt)(n + 4);
                one.next_out = o2;
                one.avail_out = sizeof o2;
                int r2 = inflate(&one, Z_SYNC_FLUSH);
                if (r2 != Z_OK || sizeof o2 - one.avail_out != mlen || memcmp(o2, out, mlen) != 0) s->chained++;
                inflateEnd(&one);
            }
        }
        if (mlen == sizeof HB - 1 && memcmp(msg, HB, mlen) == 0) {
            CHECK(s->hb_expected > 0);
            s->hb_expected--;
            s->hbs++;
        } else {
            int f = s->c->fmt;
            /* compressed exactly when not under min_size */
            CHECK((p[0] & 0x40) ? mlen >= min_size : mlen < min_size);
            CHECK_MSG(s->next < npub && mlen == pub_len[s->next][f] && memcmp(msg, pub_json[s->next][f], mlen) == 0,
                      "client fmt %d message %d of %d differs (len %zu)", f, s->next, npub, mlen);
            s->next++;
            s->msgs++;
        }
        off += hl + n;
    }
    memmove(s->in, s->in + off, s->in_len - off);
    s->in_len -= off;
}

/* the frame the pump would hand for rec (zchain first, as record_iov) */
static bool frame_of(struct sim *s, const struct ring_record *rec, uint32_t skip, const uint8_t **p, size_t *n)
{
    struct conn *c = s->c;
    struct iovec iov;
    uint32_t zn;
    if (zchain_iov(c, rec, skip, &iov, &zn)) {
        *p = iov.iov_base;
        *n = zn;
        return zn != 0;
    }
    /* ready, but below the walk's key: behind the cache's floor */
    if (!skip && c->zc.ready != ZCHAIN_UNKNOWN && rec->seq >= c->zc.ready && rec->seq < c->zc.key) s->behind++;
    if (zalone_wanted(c->w->cfg, rec, c->fmt)) {
        /* as record_iov: compressed alone by the worker; also the rest of
         * one partly sent (made again when the cache let it go) */
        uint32_t zn2 = zalone_iov(c->w->zalone, c->w->ring, rec, c->fmt, skip, &iov);
        *p = iov.iov_base;
        *n = zn2;
        return zn2 != 0;
    }
    struct ring_span sp = rec->ws[c->fmt];
    if (skip >= sp.len) return false;
    *p = ring_record_bytes(rec) + sp.off + skip;
    *n = sp.len - skip;
    return true;
}

/* One flush: the rest of the record in flight, queued control bytes, then a
 * walk; the "socket" takes a random number of bytes, copied at once (as
 * writev does). */
static void flush(struct sim *s, struct wsdeflate *hz)
{
    struct conn *c = s->c;
    struct worker *w = c->w;
    size_t room = rnd(4) == 0 ? rnd(300) : rnd(200000);
    const struct ring_record *rec;
    if (c->rec_off) {
        const uint8_t *p;
        size_t n;
        if (ring_peek(w->ring, c->cursor, &rec) != RING_OK || !frame_of(s, rec, c->rec_off, &p, &n)) {
            sim_start(s, w, c->fmt);   /* lapped or dropped: a new connection */
            return;
        }
        size_t k = n < room ? n : room;
        take(s, p, k);
        room -= k;
        if (k < n) {
            c->rec_off += (uint32_t)k;
            return;
        }
        c->rec_off = 0;
        c->cursor = ring_next(rec);
    }
    if (s->hb_pending) {
        const uint8_t *z;
        size_t zn = wsdeflate_message_always(hz, HB, sizeof HB - 1, &z);
        uint8_t f[2 + 125] = { 0xC1, (uint8_t)zn };
        memcpy(f + 2, z, zn);
        take(s, f, zn + 2);   /* control bytes: always whole here */
        s->hb_pending = false;
    }
    zchain_walk_key(c, c->cursor);
    uint64_t pos = c->cursor;
    for (int i = 0; i < 64 && room; i++) {
        enum ring_status st = ring_peek(w->ring, pos, &rec);
        if (st == RING_EMPTY) break;
        if (st != RING_OK) {
            sim_start(s, w, c->fmt);
            return;
        }
        if (rec->kind != RING_KIND_MESSAGE) {
            pos = ring_next(rec);
            c->cursor = pos;
            continue;
        }
        const uint8_t *p;
        size_t n;
        if (!frame_of(s, rec, 0, &p, &n)) {
            sim_start(s, w, c->fmt);
            return;
        }
        size_t k = n < room ? n : room;
        take(s, p, k);
        room -= k;
        if (k < n) {
            c->cursor = pos;
            c->rec_off = (uint32_t)k;
            return;
        }
        pos = ring_next(rec);
        c->cursor = pos;
    }
}

static void test_streams(void)
{
    struct ring *r = ring_create(2u << 20);
    struct wsdeflate *hz = wsdeflate_new(6);
    struct worker *w = calloc(1, sizeof *w);
    CHECK(r && hz && w);
    if (!r || !hz || !w) return;
    w->ring = r;
    w->zchain = zchain_new(65536, 6);   /* a small cache: evictions, floor moves, pins */
    static struct config cfg;
    cfg.compression.enabled = true;
    cfg.compression.min_size = min_size;
    cfg.compression.level = 6;
    w->cfg = &cfg;
    w->zalone = zalone_new(6);
    npub = npad = 0;
    static struct sim sims[NCLIENT];
    memset(sims, 0, sizeof sims);   /* the second run starts afresh */
    for (int i = 0; i < NCLIENT; i++) {
        /* keeping up, lagging, further behind, behind the cache (and lapped) */
        sims[i].period = i < 6 ? 1 : i < 9 ? 7 : i < 12 ? 40 : 150;
        if (i % 4 != 3) sim_start(&sims[i], w, i % 3);
    }
    for (int step = 0; step < NMSG; step++) {
        publish(r);
        if (step == NMSG / 3)   /* late joiners, mid-stream */
            for (int i = 3; i < NCLIENT; i += 4) sim_start(&sims[i], w, i % 3);
        for (int i = 0; i < NCLIENT; i++) {
            struct sim *s = &sims[i];
            if (!s->c || step % s->period) continue;
            if (rnd(200) == 0 && !s->hb_pending) {   /* a heartbeat: compressed alone, outside the stream */
                zchain_break(s->c);
                s->hb_pending = true;
                s->hb_expected++;
            }
            flush(s, hz);
            parse(s);
        }
    }
    /* drain whoever is still within the ring */
    for (int round = 0; round < 2000; round++)
        for (int i = 0; i < NCLIENT; i++)
            if (sims[i].c) {
                flush(&sims[i], hz);
                parse(&sims[i]);
            }
    long total = 0, chained = 0, behind = 0;
    for (int i = 0; i < NCLIENT; i++) {
        struct sim *s = &sims[i];
        if (!s->c) continue;
        printf("client %2d fmt %d every %3d: %6ld messages, %6ld chained, %3ld heartbeats, %ld reconnects, "
               "%ld behind the cache\n", i, s->c->fmt, s->period, s->msgs, s->chained, s->hbs, s->reconnects, s->behind);
        behind += s->behind;
        CHECK(s->msgs > 100);
        CHECK(s->next == npub);
        total += s->msgs;
        chained += s->chained;
        /* 32 KiB of history is ~200 domains-only messages: heartbeats
         * (every ~200 flushes) keep those clients on independent frames
         * more often; with min_size 140 about half of them are shorter
         * and go plain, which ends a chain too */
        if (s->period == 1 && s->c->fmt != RING_DOMAINS) CHECK(s->chained > s->msgs / 3);
        if (s->period == 1 && s->c->fmt == RING_DOMAINS) CHECK(s->chained > s->msgs / (min_size ? 20 : 10));
    }
    CHECK(chained > total / 3);
    CHECK(behind > 0);
    struct zchain_stats st;
    uint64_t pinned = 0;
    for (int f = 0; f < RING_NFORMATS; f++) {
        zchain_get_stats(w->zchain, f, &st);
        printf("format %d: fed %llu, resets %llu, evicted %llu, pinned %llu, %llu -> %llu bytes\n", f,
               (unsigned long long)st.fed, (unsigned long long)st.resets, (unsigned long long)st.evicted,
               (unsigned long long)st.pinned, (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out);
        pinned += st.pinned;
        CHECK(st.fed > 1000 && st.evicted > 0);
    }
    CHECK(pinned > 0);   /* frames in flight that the cache let go were kept */
    printf("%d padding records among %d messages\n", npad, npub);
    CHECK(npad > 50);
    for (int i = 0; i < NCLIENT; i++)
        if (sims[i].c) {
            inflateEnd(&sims[i].inf);
            zchain_client_free(sims[i].c);
            free(sims[i].c);
            free(sims[i].in);
        }
    {
        struct zalone_stats za[RING_NFORMATS];
        for (int f = 0; f < RING_NFORMATS; f++) zalone_get_stats(w->zalone, f, &za[f]);
        printf("alone frames made by the worker: misses %llu, hits %llu\n",
               (unsigned long long)(za[0].misses + za[1].misses + za[2].misses),
               (unsigned long long)(za[0].hits + za[1].hits + za[2].hits));
        CHECK(za[0].misses > 1000 && za[0].hits > 1000);
    }
    zalone_free(w->zalone);
    zchain_free(w->zchain);
    free(w);
    wsdeflate_free(hz);
    ring_destroy(r);
    for (int i = 0; i < npub; i++)
        for (int f = 0; f < RING_NFORMATS; f++) free(pub_json[i][f]);
}

static int takeover(const char *ext, bool *ok)
{
    static char buf[2048];
    static struct http_request req;
    snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n", ext);
    struct http_limits lim = { sizeof buf, 32 };
    if (http_parse_request(buf, strlen(buf), &lim, &req) != HTTP_OK) return -1;
    return ws_deflate_offer(&req, ok);
}

static void test_negotiation(void)
{
    bool t;
    CHECK(takeover("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n", &t) == 1 && t);
    CHECK(takeover("Sec-WebSocket-Extensions: permessage-deflate\r\n", &t) == 1 && t);
    CHECK(takeover("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
                   "server_max_window_bits=15\r\n", &t) == 1 && t);
    CHECK(takeover("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n", &t) == 1 && !t);
    /* the first acceptable offer decides */
    CHECK(takeover("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, "
                   "permessage-deflate; server_no_context_takeover, permessage-deflate\r\n", &t) == 1 && !t);
    CHECK(takeover("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n", &t) == 0 && !t);
    struct ws_handshake hs = { .deflate = true, .takeover = true };
    strcpy(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    char out[512];
    size_t n = ws_handshake_response(out, sizeof out, &hs);
    CHECK(n > 0 && strstr(out, "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n") != NULL);
    hs.takeover = false;
    n = ws_handshake_response(out, sizeof out, &hs);
    CHECK(n > 0 && strstr(out, "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n") != NULL);
}

int main(void)
{
    test_negotiation();
    min_size = 140;
    test_streams();
    min_size = 0;
    test_streams();
    return check_report();
}
