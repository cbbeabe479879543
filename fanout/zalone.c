/* zalone.c - see zalone.h.
 *
 * The cache of one format is a byte arena used as a FIFO (a logical write
 * position wr that only grows; a frame at logical offset at lives at
 * at % ZALONE_ARENA, never split: a frame that does not fit before the end
 * starts at the next lap) plus a direct-mapped table of slots keyed by ring
 * position. The bytes of a frame at `at` are intact while wr <= at + arena.
 *
 * Why an iovec handed out stays valid as long as needed, without pins or a
 * generation per entry:
 * - a frame is handed out only while it is in the newer half of the arena
 *   (wr - at <= arena/2); an older one still intact is first copied to the
 *   head (a memcpy, cheaper than compressing again), a lost one compressed
 *   again (same bytes);
 * - every byte written is a frame handed out (or the unused end of a lap,
 *   shorter than a frame), and one walk hands out at most its byte budget
 *   (FLUSH_BYTE_BUDGET, 512 KiB) plus the partly sent record and the record
 *   that crosses the budget, each at most ZALONE_MAX_FRAME: under 1.5 MiB,
 *   less than the half of the arena that is left. So nothing a walk hands
 *   out is overwritten before its writev;
 * - the pump's memo keeps a walk's iovecs for the other clients of a round,
 *   while other walks write: it is reused only while zalone_intact (the
 *   arena has not advanced half its size since the walk began).
 * No allocation per message: the arena and table are allocated once per
 * format, the JSON buffer and the compressor's output grow to the largest
 * message. */
#include "fanout/zalone.h"

#include <stdlib.h>
#include <string.h>

#include "common/wsdeflate.h"
#include "common/wshdr.h"

#define ZALONE_SLOTS 8192u   /* power of two; ~4 MiB / the average frame */

struct zslot {
    uint64_t pos;            /* ring position; 0 = empty */
    uint64_t at;             /* logical offset in the arena */
    uint32_t len;            /* the whole frame */
};

struct zafmt {
    bool ready, broken;
    uint8_t *buf;            /* ZALONE_ARENA bytes */
    uint64_t wr;             /* logical write position */
    struct zslot *slot;
    char *json;              /* a split JSON gathered */
    size_t jcap;
    struct zalone_stats st;
};

struct zalone {
    int level;
    struct wsdeflate *d;
    struct zafmt f[RING_NFORMATS];
};

struct zalone *zalone_new(int level)
{
    struct zalone *za = calloc(1, sizeof *za);
    if (!za) return NULL;
    za->level = level >= 1 && level <= 9 ? level : 6;
    za->d = wsdeflate_new(za->level);
    if (!za->d) {
        free(za);
        return NULL;
    }
    return za;
}

void zalone_free(struct zalone *za)
{
    if (!za) return;
    for (int f = 0; f < RING_NFORMATS; f++) {
        free(za->f[f].buf);
        free(za->f[f].slot);
        free(za->f[f].json);
    }
    wsdeflate_free(za->d);
    free(za);
}

static struct zafmt *fmt_state(struct zalone *za, int fmt)
{
    struct zafmt *fz = &za->f[fmt];
    if (fz->ready) return fz;
    if (fz->broken) return NULL;
    fz->buf = malloc(ZALONE_ARENA);
    fz->slot = calloc(ZALONE_SLOTS, sizeof *fz->slot);
    if (!fz->buf || !fz->slot) {
        free(fz->buf);
        free(fz->slot);
        fz->buf = NULL;
        fz->slot = NULL;
        fz->broken = true;
        return NULL;
    }
    fz->ready = true;
    return fz;
}

static struct zslot *slot_of(struct zafmt *fz, uint64_t pos)
{
    uint64_t h = (pos / RING_ALIGN) * 0x9E3779B97F4A7C15ull;
    return &fz->slot[(h >> 40) & (ZALONE_SLOTS - 1)];
}

/* Room for len bytes at the head: the logical offset where they go. */
static uint64_t take_room(struct zafmt *fz, uint32_t len)
{
    uint64_t phys = fz->wr % ZALONE_ARENA;
    if (phys + len > ZALONE_ARENA) fz->wr += ZALONE_ARENA - phys;   /* the lap's end stays unused */
    uint64_t at = fz->wr;
    fz->wr += len;
    fz->st.bytes_written += len;
    return at;
}

static uint32_t set_iov(const struct zafmt *fz, const struct zslot *s, uint32_t skip, struct iovec *iov)
{
    if (skip >= s->len) return 0;
    *iov = (struct iovec){ fz->buf + s->at % ZALONE_ARENA + skip, s->len - skip };
    return s->len - skip;
}

uint32_t zalone_iov(struct zalone *za, const struct ring *ring, const struct ring_record *rec, int fmt,
                    uint32_t skip, struct iovec *iov)
{
    if (!za || fmt < 0 || fmt >= RING_NFORMATS) return 0;
    struct zafmt *fz = fmt_state(za, fmt);
    if (!fz) return 0;
    struct zslot *s = slot_of(fz, rec->seq);
    if (s->pos == rec->seq && s->len && fz->wr <= s->at + ZALONE_ARENA) {
        if (fz->wr - s->at <= ZALONE_ARENA / 2) {
            fz->st.hits++;
            return set_iov(fz, s, skip, iov);
        }
        /* in the older half: copy it to the head if that does not
         * overwrite it (the regions are then apart) */
        uint64_t src = s->at;
        uint64_t save = fz->wr, saved_bytes = fz->st.bytes_written;
        uint64_t at = take_room(fz, s->len);
        if (at + s->len <= src + ZALONE_ARENA) {
            memcpy(fz->buf + at % ZALONE_ARENA, fz->buf + src % ZALONE_ARENA, s->len);
            s->at = at;
            fz->st.copies++;
            return set_iov(fz, s, skip, iov);
        }
        fz->wr = save;   /* nothing written: compress again below */
        fz->st.bytes_written = saved_bytes;
    }
    fz->st.misses++;
    /* the JSON, contiguous (split formats are gathered) */
    uint32_t jlen = rec->json[fmt].len;
    if (jlen == 0 || jlen > ZALONE_ARENA) return 0;
    if (jlen > fz->jcap) {
        char *nb = realloc(fz->json, jlen);
        if (!nb) return 0;
        fz->json = nb;
        fz->jcap = jlen;
    }
    size_t n;
    const char *j = ring_record_json(ring, rec, (enum ring_format)fmt, fz->json, fz->jcap, &n);
    if (!j || n == 0) return 0;
    const uint8_t *z;
    size_t zn = wsdeflate_message_always(za->d, j, n, &z);
    /* the input must have been the record's */
    if (zn == 0 || ring_lapped_since(ring, rec->seq)) return 0;
    uint8_t h[WSHDR_MAX];
    size_t hl = wshdr_put(h, WSHDR_TEXT_DEFLATE, zn);
    if (hl + zn > ZALONE_MAX_FRAME) return 0;
    uint32_t len = (uint32_t)(hl + zn);
    uint64_t at = take_room(fz, len);
    uint8_t *p = fz->buf + at % ZALONE_ARENA;
    memcpy(p, h, hl);
    memcpy(p + hl, z, zn);
    *s = (struct zslot){ rec->seq, at, len };
    return set_iov(fz, s, skip, iov);
}

uint64_t zalone_mark(const struct zalone *za, int fmt)
{
    return za && fmt >= 0 && fmt < RING_NFORMATS ? za->f[fmt].wr : 0;
}

bool zalone_intact(const struct zalone *za, int fmt, uint64_t mark)
{
    if (!za || fmt < 0 || fmt >= RING_NFORMATS) return true;
    return za->f[fmt].wr - mark <= ZALONE_ARENA / 2;
}

void zalone_get_stats(const struct zalone *za, int fmt, struct zalone_stats *st)
{
    if (!za || fmt < 0 || fmt >= RING_NFORMATS) {
        *st = (struct zalone_stats){ 0 };
        return;
    }
    *st = za->f[fmt].st;
}
