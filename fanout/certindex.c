/* certindex.c - /api/cert/{hash}: which ring record holds a certificate.
 *
 * Per worker, built lazily: nothing is indexed until the first lookup; from
 * then on the worker's tick (once a second) and every lookup index the
 * records committed since the previous pass, so each record is read once per
 * worker and a lookup never walks the ring. The walk starts at the oldest
 * message the worker remembers (recent[]) and follows record boundaries to
 * the worker's head; a walk that was lapped, or more than half a table of
 * certificates behind, starts over there (so a pass is bounded by the
 * table, whatever the stream's rate).
 *
 * The table is a bounded cache: CI_SLOTS slots of (key, position) in 4-way
 * buckets, two keys per certificate (SHA-256 and SHA-1 of the leaf, read from
 * the record's full JSON). A full bucket evicts its oldest position, and a
 * stale entry is harmless: a lookup re-reads the record, compares the whole
 * hash, and checks after copying that the record was not overwritten. */
#include "fanout/certindex.h"
#include "fanout/certhash.h"

#include "fanout/fanout_internal.h"

#include <stdlib.h>
#include <string.h>

#define CI_SLOTS 65536u        /* 1 MiB per worker once used */
#define CI_WAYS 4u

struct certindex {
    uint64_t key[CI_SLOTS];
    uint64_t pos[CI_SLOTS];    /* ring position + 1; 0 = empty */
    uint64_t next;             /* next record to index */
    uint64_t seen_count;       /* the worker's recent_count when next was reached */
    bool started;
    char *json;                /* a full message the ring holds in pieces, copied */
    size_t json_cap;
};

static uint64_t key_of(const uint8_t *h, size_t hlen)
{
    uint64_t k = 0;
    memcpy(&k, h, 8);
    return k ^ (uint64_t)hlen;   /* a SHA-1 and a SHA-256 never share a key */
}

/* The full JSON of a message record, or NULL: in the ring, or copied into
 * ci->json when the ring holds it in pieces (chain elements are kept once,
 * shm/chaintab.h). Validate after use. */
static const char *record_json(struct certindex *ci, const struct ring *r, const struct ring_record *rec,
                               size_t *len)
{
    if (rec->kind != RING_KIND_MESSAGE) return NULL;
    size_t want = rec->json[RING_FULL].len;
    if (rec->segs[RING_FULL].len && want > ci->json_cap) {
        if (want > ring_size(r) / 4) return NULL;   /* torn: being overwritten */
        char *nj = realloc(ci->json, want);
        if (!nj) return NULL;
        ci->json = nj;
        ci->json_cap = want;
    }
    return ring_record_json(r, rec, RING_FULL, ci->json, ci->json_cap, len);
}

static void put(struct certindex *ci, uint64_t key, uint64_t pos)
{
    uint32_t b = (uint32_t)(key * 0x9E3779B97F4A7C15ull >> 40) & (CI_SLOTS - 1) & ~(CI_WAYS - 1);
    uint32_t victim = b;
    for (uint32_t i = b; i < b + CI_WAYS; i++) {
        if (ci->pos[i] == 0 || ci->key[i] == key) {
            victim = i;
            break;
        }
        if (ci->pos[i] < ci->pos[victim]) victim = i;
    }
    ci->key[victim] = key;
    ci->pos[victim] = pos + 1;
}

static void index_record(struct certindex *ci, const struct ring *r, const struct ring_record *rec, uint64_t pos)
{
    size_t len;
    uint8_t h[32];
    const char *json = record_json(ci, r, rec, &len);
    if (!json) return;
    if (certhash_leaf(json, len, "sha256", h) == 32) put(ci, key_of(h, 32), pos);
    if (certhash_leaf(json, len, "sha1", h) == 20) put(ci, key_of(h, 20), pos);
}

/* Indexes the records between ci->next and the worker's head. */
static void catch_up(struct worker *w)
{
    struct certindex *ci = w->certindex;
    worker_scan(w);
    uint64_t oldest;
    /* More new certificates than the table holds (a replay at full speed):
     * indexing them all would only evict each other; start at the newest
     * the worker remembers instead. */
    bool flood = w->recent_count - ci->seen_count > CI_SLOTS / 2;
    if (!ci->started || flood || ring_lapped_since(w->ring, ci->next)) {
        uint64_t n = worker_recent_n(w);
        if (n == 0 || !worker_recent_at(w, n - 1, &oldest)) return;
        ci->next = oldest;
        ci->started = true;
    }
    while (ci->next < w->head) {
        const struct ring_record *rec;
        if (ring_peek(w->ring, ci->next, &rec) != RING_OK) break;
        uint64_t next = ring_next(rec);
        if (next <= ci->next) break;
        index_record(ci, w->ring, rec, ci->next);
        if (ring_lapped_since(w->ring, ci->next)) {   /* read while overwritten: start over */
            ci->started = false;
            return;
        }
        ci->next = next;
    }
    ci->seen_count = w->recent_count;
}

void certindex_tick(struct worker *w)
{
    if (w->certindex) catch_up(w);
}

bool certindex_lookup(struct worker *w, const uint8_t *hash, size_t hlen, struct jbuf *b)
{
    if (!w->certindex) {
        w->certindex = calloc(1, sizeof *w->certindex);
        if (!w->certindex) return false;
    }
    struct certindex *ci = w->certindex;
    catch_up(w);
    uint64_t key = key_of(hash, hlen);
    uint32_t bk = (uint32_t)(key * 0x9E3779B97F4A7C15ull >> 40) & (CI_SLOTS - 1) & ~(CI_WAYS - 1);
    for (uint32_t i = bk; i < bk + CI_WAYS; i++) {
        if (ci->pos[i] == 0 || ci->key[i] != key) continue;
        uint64_t pos = ci->pos[i] - 1;
        const struct ring_record *rec;
        size_t len, mark = b->len;
        uint8_t h[32];
        if (ring_peek(w->ring, pos, &rec) != RING_OK) return false;
        const char *json = record_json(ci, w->ring, rec, &len);
        if (!json || certhash_leaf(json, len, hlen == 32 ? "sha256" : "sha1", h) != hlen || memcmp(h, hash, hlen) != 0)
            return false;
        jb_put(b, json, len);
        if (ring_lapped_since(w->ring, pos)) {
            b->len = mark;
            return false;
        }
        return true;
    }
    return false;
}

void certindex_free(struct certindex *ci)
{
    if (ci) free(ci->json);
    free(ci);
}
