/* zchain.c - see zchain.h. zlib: the chained frames need a deflate stream
 * that keeps its window across messages (a sync flush per message), which
 * libdeflate (whole buffers only) does not offer. The cache is a byte ring
 * plus a ring of entries in ring-position order, written only here. */
#include "fanout/zchain.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/wshdr.h"
#include "fanout/fanout_internal.h"

#define ZCHAIN_ENTRIES 16384u         /* power of two */
#define ZCHAIN_CATCHUP (256u * 1024u) /* ring bytes the stream feeds to catch up; beyond, it restarts */

struct zent {
    uint64_t pos;                     /* ring position of the record */
    uint64_t cum;                     /* payload bytes fed to the stream before it */
    uint32_t off, len;                /* the frame in the byte ring */
};

struct zfmt {
    bool ready;                       /* allocated and initialised */
    bool broken;                      /* allocation failed: never chained */
    z_stream zs;
    uint8_t *buf;                     /* cache bytes */
    size_t cap, wr;                   /* size; next write offset */
    struct zent *ent;                 /* entries [tail, head), index & (ZCHAIN_ENTRIES - 1) */
    uint64_t tail, head;
    uint64_t next;                    /* the stream: position of the next record to feed, 0 = none */
    uint64_t cum;                     /* payload bytes fed */
    uint64_t floor;                   /* entries at pos >= floor are never overwritten */
    uint64_t floor_checked;           /* head when the floor was last checked */
    uint8_t *scratch;
    size_t scap;
    struct zchain_stats st;
};

struct zchain {
    size_t cache_bytes;
    int level;
    struct zfmt f[RING_NFORMATS];
};

struct zchain *zchain_new(size_t cache_bytes, int level)
{
    struct zchain *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    z->cache_bytes = cache_bytes < 65536 ? 65536 : cache_bytes;
    z->level = level >= 1 && level <= 9 ? level : Z_DEFAULT_COMPRESSION;
    return z;
}

void zchain_free(struct zchain *z)
{
    if (!z) return;
    for (int f = 0; f < RING_NFORMATS; f++) {
        struct zfmt *fz = &z->f[f];
        if (fz->ready) deflateEnd(&fz->zs);
        free(fz->buf);
        free(fz->ent);
        free(fz->scratch);
    }
    free(z);
}

/* The first chain-capable client of a format allocates its state. */
static struct zfmt *fmt_state(struct zchain *z, int fmt)
{
    if (!z || fmt < 0 || fmt >= RING_NFORMATS) return NULL;
    struct zfmt *fz = &z->f[fmt];
    if (fz->ready) return fz;
    if (fz->broken) return NULL;
    fz->buf = malloc(z->cache_bytes);
    fz->ent = malloc(ZCHAIN_ENTRIES * sizeof *fz->ent);
    /* raw deflate, 32 KiB window (the only one negotiated), memLevel 8 */
    if (!fz->buf || !fz->ent || deflateInit2(&fz->zs, z->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(fz->buf);
        free(fz->ent);
        fz->buf = NULL;
        fz->ent = NULL;
        fz->broken = true;
        return NULL;
    }
    fz->cap = z->cache_bytes;
    fz->ready = true;
    return fz;
}

static inline struct zent *ent_at(struct zfmt *fz, uint64_t i) { return &fz->ent[i & (ZCHAIN_ENTRIES - 1)]; }

/* first index in [tail, head) whose entry has pos >= p (head if none) */
static uint64_t lower_bound_pos(struct zfmt *fz, uint64_t p)
{
    uint64_t lo = fz->tail, hi = fz->head;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ent_at(fz, mid)->pos < p) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* first index in [from, head) whose entry has cum >= c */
static uint64_t lower_bound_cum(struct zfmt *fz, uint64_t from, uint64_t c)
{
    uint64_t lo = from, hi = fz->head;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ent_at(fz, mid)->cum < c) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static const struct zent *lookup(struct zfmt *fz, uint64_t pos)
{
    if (fz->tail == fz->head) return NULL;
    /* a walk asks for consecutive records: try the newest first */
    const struct zent *e = ent_at(fz, fz->head - 1);
    if (e->pos == pos) return e;
    if (e->pos < pos || ent_at(fz, fz->tail)->pos > pos) return NULL;
    uint64_t i = lower_bound_pos(fz, pos);
    if (i == fz->head) return NULL;
    e = ent_at(fz, i);
    return e->pos == pos ? e : NULL;
}

/* bytes that can be written from wr before reaching the frame of entry i */
static size_t room_before(const struct zfmt *fz, const struct zent *e)
{
    return e->off >= fz->wr ? e->off - fz->wr : fz->cap - fz->wr + e->off;
}

/* Clients in the middle of a chained frame at [from, to) that the cache
 * may overwrite from now on get their own copy of the rest of it. */
static void pin_partials(struct worker *w, struct zfmt *fz, int fmt, uint64_t from, uint64_t to)
{
    for (struct conn *c = w->all; c; c = c->all_next) {
        struct zchain_client *zc = &c->zc;
        if (!zc->on || c->fmt != fmt || c->rec_off == 0 || c->cursor < from || c->cursor >= to) continue;
        if (zc->pin && zc->pin_pos == c->cursor) continue;
        free(zc->pin);   /* of a frame sent since */
        zc->pin = NULL;
        bool chained = zc->keep_pos == c->cursor ? zc->keep_chained : c->cursor >= zc->key;
        const struct zent *e = chained ? lookup(fz, c->cursor) : NULL;
        if (!e) continue;
        zc->pin = malloc(e->len);
        if (!zc->pin) continue;   /* it is dropped at its next write, as if lapped */
        memcpy(zc->pin, fz->buf + e->off, e->len);
        zc->pin_len = e->len;
        fz->st.pinned++;
        zc->pin_pos = c->cursor;
        zc->keep_pos = c->cursor;
        zc->keep_chained = true;
    }
}

/* Keeps a margin of cache below the floor, so that the writes of one walk
 * never reach an entry above it: called between walks. */
static void advance_floor(struct worker *w, struct zfmt *fz, int fmt)
{
    /* the margin only shrinks when frames are added: once per new frame,
     * not once per client walk */
    if (fz->floor_checked == fz->head) return;
    fz->floor_checked = fz->head;
    uint64_t i = lower_bound_pos(fz, fz->floor);
    if (i == fz->head) return;
    if (room_before(fz, ent_at(fz, i)) >= fz->cap / 4 && ZCHAIN_ENTRIES - (fz->head - i) >= ZCHAIN_ENTRIES / 4)
        return;
    while (i < fz->head &&
           (room_before(fz, ent_at(fz, i)) < fz->cap / 2 || ZCHAIN_ENTRIES - (fz->head - i) < ZCHAIN_ENTRIES / 2))
        i++;
    uint64_t nf = i < fz->head ? ent_at(fz, i)->pos : fz->next;
    pin_partials(w, fz, fmt, fz->floor, nf);
    fz->floor = nf;
}

/* The stream starts again empty: nothing after this refers to what came
 * before. Clients keep their histories (a superset of what is needed). */
static void stream_reset(struct zfmt *fz, uint64_t next)
{
    deflateReset(&fz->zs);
    fz->next = next;
    fz->st.resets++;
}

/* Makes room for len bytes; false when that would overwrite an entry at or
 * above the floor. */
static bool make_room(struct zfmt *fz, size_t len, size_t *off)
{
    size_t wr = fz->wr;
    if (len > fz->cap / 8) return false;
    if (wr + len > fz->cap) {
        /* wrap: the oldest entries, at the end of the buffer, go first */
        while (fz->tail < fz->head && ent_at(fz, fz->tail)->off >= wr) {
            if (ent_at(fz, fz->tail)->pos >= fz->floor) return false;
            fz->tail++;
            fz->st.evicted++;
        }
        wr = 0;
    }
    while (fz->tail < fz->head) {
        const struct zent *o = ent_at(fz, fz->tail);
        bool overlaps = o->off >= wr && o->off < wr + len;
        if (!overlaps && fz->head - fz->tail < ZCHAIN_ENTRIES) break;
        if (o->pos >= fz->floor) return false;
        fz->tail++;
        fz->st.evicted++;
    }
    *off = wr;
    return true;
}

/* Feeds one record's payload to the stream and caches its chained frame.
 * False when the record could not be added (the caller restarts the
 * stream after it). */
static bool feed_one(struct zfmt *fz, const struct ring *ring, const struct ring_record *r, int fmt)
{
    /* the JSON may be in pieces (full: its own bytes, lite's, chain
     * elements from the chain table, shm/ring.h): deflate them in order */
    struct iovec jv[RING_RECORD_MAX_IOV];
    int nj = 0;
    uint32_t jlen = ring_record_iov(ring, r, (enum ring_format)fmt, RING_WIRE_JSON, 0, jv, &nj);
    if (jlen == 0 || nj == 0) return false;
    size_t need = deflateBound(&fz->zs, jlen) + 64;
    if (need > fz->scap) {
        uint8_t *nb = realloc(fz->scratch, need);
        if (!nb) return false;
        fz->scratch = nb;
        fz->scap = need;
    }
    uint8_t *out = fz->scratch + 10;   /* room for the frame header */
    size_t ocap = fz->scap - 10;
    fz->zs.next_out = out;
    fz->zs.avail_out = (uInt)ocap;
    int rc = Z_OK;
    for (int i = 0; i < nj && rc == Z_OK; i++) {
        fz->zs.next_in = (Bytef *)jv[i].iov_base;
        fz->zs.avail_in = (uInt)jv[i].iov_len;
        rc = deflate(&fz->zs, i + 1 == nj ? Z_SYNC_FLUSH : Z_NO_FLUSH);
        if (fz->zs.avail_in != 0) rc = Z_BUF_ERROR;
    }
    size_t plen = ocap - fz->zs.avail_out;
    if (rc != Z_OK || fz->zs.avail_out == 0 || plen < 4 ||
        memcmp(out + plen - 4, "\x00\x00\xff\xff", 4) != 0)
        return false;
    /* the stream now holds these bytes: they must be the record's */
    if (ring_lapped_since(ring, r->seq)) return false;
    plen -= 4;
    /* FIN, RSV1 (compressed), Text; RFC 6455 5.2 length */
    uint8_t h[WSHDR_MAX];
    size_t hl = wshdr_put(h, WSHDR_TEXT_DEFLATE, plen);
    size_t off;
    if (!make_room(fz, hl + plen, &off)) return false;
    memcpy(fz->buf + off, h, hl);
    memcpy(fz->buf + off + hl, out, plen);
    *ent_at(fz, fz->head) = (struct zent){ r->seq, fz->cum, (uint32_t)off, (uint32_t)(hl + plen) };
    fz->head++;
    fz->wr = off + hl + plen;
    fz->cum += jlen;
    fz->st.fed++;
    fz->st.bytes_in += jlen;
    fz->st.bytes_out += hl + plen;
    return true;
}

/* Brings the stream up to and including rec (the walk's record). Records
 * are fed in ring order; padding and records without a compressed frame
 * are sent plain (or not at all) to every client and stay out
 * (zalone_wanted, the same test as for the frames compressed alone). */
static void feed_to(struct zfmt *fz, const struct config *cfg, const struct ring *ring, const struct ring_record *rec,
                    int fmt)
{
    uint64_t pos = rec->seq;
    if (fz->next > pos) return;
    if (fz->next == 0 || pos - fz->next > ZCHAIN_CATCHUP) stream_reset(fz, pos);
    while (fz->next <= pos) {
        const struct ring_record *r = rec;
        if (fz->next != pos && ring_peek(ring, fz->next, &r) != RING_OK) {
            stream_reset(fz, pos);
            continue;
        }
        uint64_t nx = ring_next(r);
        if (fz->next == pos && nx <= pos) {   /* rec itself is not sane: skip it */
            stream_reset(fz, pos + 1);
            return;
        }
        if (fz->next != pos && (nx <= fz->next || nx > pos)) {   /* not a walk to rec: start at it */
            stream_reset(fz, pos);
            continue;
        }
        if (zalone_wanted(cfg, r, fmt) && !feed_one(fz, ring, r, fmt)) {
            stream_reset(fz, nx);
            continue;
        }
        fz->next = nx;
    }
}

void zchain_client_init(struct zchain_client *zc, uint64_t cursor)
{
    *zc = (struct zchain_client){ .on = true, .start = cursor, .ready = ZCHAIN_UNKNOWN, .key = ZCHAIN_UNKNOWN };
}

void zchain_break(struct conn *c)
{
    struct zchain_client *zc = &c->zc;
    /* the record partly sent arrives before the message: not part of the new run */
    zc->start = c->rec_off ? c->cursor + 1 : c->cursor;
    zc->ready = ZCHAIN_UNKNOWN;
}

void zchain_client_free(struct conn *c)
{
    free(c->zc.pin);
    c->zc.pin = NULL;
}

uint64_t zchain_walk_key(struct conn *c, uint64_t pos)
{
    struct zchain_client *zc = &c->zc;
    if (zc->pin && (c->rec_off == 0 || c->cursor != zc->pin_pos)) {   /* that frame is sent */
        free(zc->pin);
        zc->pin = NULL;
    }
    struct zfmt *fz = fmt_state(c->w->zchain, c->fmt);
    if (!fz) return zc->key = ZCHAIN_UNKNOWN;
    advance_floor(c->w, fz, c->fmt);
    if (zc->ready == ZCHAIN_UNKNOWN) {
        /* the run's first cached record, then the first one with a window
         * of history before it (cum counts only what the stream was fed:
         * never more than the client has) */
        uint64_t i = lower_bound_pos(fz, zc->start);
        if (i < fz->head) {
            uint64_t k = lower_bound_cum(fz, i, ent_at(fz, i)->cum + ZCHAIN_WINDOW);
            if (k < fz->head) zc->ready = ent_at(fz, k)->pos;
        }
    }
    uint64_t key = zc->ready;
    if (key != ZCHAIN_UNKNOWN) {
        if (key < fz->floor) key = fz->floor;
        if (key < pos) key = pos;
    }
    return zc->key = key;
}

static bool set_iov(const struct zfmt *fz, const struct zent *e, uint32_t skip, struct iovec *iov, uint32_t *n)
{
    if (!e || skip >= e->len) {
        *n = 0;
        return true;
    }
    *iov = (struct iovec){ fz->buf + e->off + skip, e->len - skip };
    *n = e->len - skip;
    return true;
}

bool zchain_iov(struct conn *c, const struct ring_record *rec, uint32_t skip, struct iovec *iov, uint32_t *n)
{
    struct zchain *z = c->w->zchain;
    int fmt = c->fmt;
    struct zchain_client *zc = &c->zc;
    if (!z || fmt < 0 || fmt >= RING_NFORMATS || !z->f[fmt].ready) return false;
    struct zfmt *fz = &z->f[fmt];
    uint64_t pos = rec->seq;
    if (skip) {
        /* the rest of a record: the same frame as its first bytes */
        if (zc->keep_pos != pos) {
            bool chained = false;
            if (pos >= zc->key) {
                if (lookup(fz, pos)) chained = true;
                else if (fz->tail == fz->head || pos < ent_at(fz, fz->tail)->pos)
                    return set_iov(fz, NULL, 0, iov, n);   /* gone from the cache: cannot tell */
            }
            zc->keep_pos = pos;
            zc->keep_chained = chained;
        }
        if (!zc->keep_chained) return false;
        if (zc->pin && zc->pin_pos == pos) {
            if (skip >= zc->pin_len) return set_iov(fz, NULL, 0, iov, n);
            *iov = (struct iovec){ zc->pin + skip, zc->pin_len - skip };
            *n = zc->pin_len - skip;
            return true;
        }
        return set_iov(fz, lookup(fz, pos), skip, iov, n);
    }
    if (!zalone_wanted(c->w->cfg, rec, fmt)) return false;
    uint64_t fed = fz->st.fed;
    feed_to(fz, c->w->cfg, c->w->ring, rec, fmt);
    if (fz->st.fed != fed && c->w->stats)
        stats_add(c->w->stats, c->w->slot, ST_DEFLATE_CHAINED_FRAMES, (int64_t)(fz->st.fed - fed));
    if (pos < zc->key) return false;
    const struct zent *e = lookup(fz, pos);
    if (!e) return false;
    return set_iov(fz, e, 0, iov, n);
}

void zchain_get_stats(const struct zchain *z, int fmt, struct zchain_stats *st)
{
    if (!z || fmt < 0 || fmt >= RING_NFORMATS) {
        *st = (struct zchain_stats){ 0 };
        return;
    }
    *st = z->f[fmt].st;
}
