/* chaincache.c - bounded set-associative cache of chain-element JSON. */
#include "ingest/chaincache.h"

#include "common/hash64.h"

#include <stdlib.h>
#include <string.h>

struct cc_slot {
    uint64_t hash;
    uint64_t used;        /* LRU stamp; 0 = empty */
    uint8_t *der;         /* owned copy (verifies hits) */
    size_t derlen;
    char *json;           /* owned */
    size_t jsonlen;
    bool bad;
};

struct chaincache {
    uint64_t clock;
    struct chaincache_stats st;
    struct cc_slot slot[CHAINCACHE_SETS][CHAINCACHE_WAYS];
};

static uint64_t der_hash(const uint8_t *p, size_t n) { return hash64_bytes(p, n); }

struct chaincache *chaincache_new(void)
{
    return calloc(1, sizeof(struct chaincache));
}

static void slot_clear(struct cc_slot *s)
{
    free(s->der);
    free(s->json);
    memset(s, 0, sizeof *s);
}

void chaincache_free(struct chaincache *cc)
{
    if (!cc) return;
    for (size_t i = 0; i < CHAINCACHE_SETS; i++)
        for (size_t w = 0; w < CHAINCACHE_WAYS; w++) slot_clear(&cc->slot[i][w]);
    free(cc);
}

bool chaincache_get(struct chaincache *cc, const uint8_t *der, size_t derlen,
                    const char **json, size_t *len, bool *bad)
{
    uint64_t h = der_hash(der, derlen);
    struct cc_slot *set = cc->slot[h % CHAINCACHE_SETS];
    for (size_t w = 0; w < CHAINCACHE_WAYS; w++) {
        struct cc_slot *s = &set[w];
        if (s->used && s->hash == h && s->derlen == derlen && memcmp(s->der, der, derlen) == 0) {
            s->used = ++cc->clock;
            *json = s->json;
            *len = s->jsonlen;
            *bad = s->bad;
            cc->st.hits++;
            return true;
        }
    }
    cc->st.misses++;
    return false;
}

void chaincache_put(struct chaincache *cc, const uint8_t *der, size_t derlen,
                    const char *json, size_t len, bool bad)
{
    if (derlen > CHAINCACHE_MAX_DER) return;
    uint64_t h = der_hash(der, derlen);
    struct cc_slot *set = cc->slot[h % CHAINCACHE_SETS], *victim = &set[0];
    for (size_t w = 0; w < CHAINCACHE_WAYS; w++) {
        if (!set[w].used) { victim = &set[w]; break; }
        if (set[w].used < victim->used) victim = &set[w];
    }
    if (victim->used) cc->st.evictions++;
    slot_clear(victim);
    uint8_t *d = malloc(derlen ? derlen : 1);
    char *j = malloc(len ? len : 1);
    if (!d || !j) { free(d); free(j); return; }
    memcpy(d, der, derlen);
    if (len) memcpy(j, json, len);
    *victim = (struct cc_slot){h, ++cc->clock, d, derlen, j, bad ? 0 : len, bad};
}

void chaincache_stats(const struct chaincache *cc, struct chaincache_stats *st)
{
    *st = cc->st;
}
