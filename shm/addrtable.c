/* addrtable.c - see addrtable.h.
 *
 * Layout of the shared mapping:
 *   struct at_shm     the mutex, sizes, the edge counters
 *   entries[cap]      key, in-use flag
 *   hold[slots][cap]  uint16 connections held per slot and entry
 * The hold rows are MAP_NORESERVE: a slot's row is charged only for the
 * pages its clients touch (2 bytes per entry). */
#include "shm/addrtable.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct at_entry {
    uint8_t key[16];
    uint32_t in_use;       /* 1 while some slot may hold it (under the mutex) */
};

struct at_shm {
    pthread_mutex_t mu;
    uint32_t cap;          /* power of two */
    uint32_t used;         /* entries in use */
    uint32_t nslots;       /* 1 + the highest slot that ever held an entry */
    _Atomic uint64_t counters[ADDRTABLE_MAX_SLOTS][EDGE_COUNT];
};

struct addrtable {
    struct at_shm *shm;
    struct at_entry *ent;
    uint16_t *hold;
    size_t map_len;
};

static uint32_t pow2(uint32_t n)
{
    uint32_t p = 16;
    while (p < n && p < (1u << 30)) p <<= 1;
    return p;
}

struct addrtable *addrtable_create(uint32_t capacity)
{
    struct addrtable *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    uint32_t cap = pow2(capacity);
    size_t ent_off = (sizeof(struct at_shm) + 63) & ~(size_t)63;
    size_t hold_off = ent_off + (size_t)cap * sizeof(struct at_entry);
    t->map_len = hold_off + (size_t)ADDRTABLE_MAX_SLOTS * cap * sizeof(uint16_t);
    void *p = mmap(NULL, t->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        free(t);
        return NULL;
    }
    t->shm = p;
    t->ent = (struct at_entry *)((uint8_t *)p + ent_off);
    t->hold = (uint16_t *)((uint8_t *)p + hold_off);
    t->shm->cap = cap;
    pthread_mutexattr_t a;
    int e = pthread_mutexattr_init(&a);
    if (e == 0) e = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (e == 0) e = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (e == 0) e = pthread_mutex_init(&t->shm->mu, &a);
    pthread_mutexattr_destroy(&a);
    if (e != 0) {
        munmap(p, t->map_len);
        free(t);
        errno = e;
        return NULL;
    }
    return t;
}

void addrtable_destroy(struct addrtable *t)
{
    if (!t) return;
    munmap(t->shm, t->map_len);
    free(t);
}

/* A holder killed inside the section left the table consistent (see the
 * header): only the mutex needs repair. */
static void lock(struct addrtable *t)
{
    int e = pthread_mutex_lock(&t->shm->mu);
    if (e == EOWNERDEAD) pthread_mutex_consistent(&t->shm->mu);
}

static void unlock(struct addrtable *t)
{
    pthread_mutex_unlock(&t->shm->mu);
}

static uint16_t *hold_at(struct addrtable *t, unsigned slot, uint32_t i)
{
    return &t->hold[(size_t)slot * t->shm->cap + i];
}

static uint32_t held(struct addrtable *t, uint32_t i)
{
    uint32_t sum = 0;
    for (unsigned s = 0; s < t->shm->nslots; s++) sum += *hold_at(t, s, i);
    return sum;
}

/* FNV-1a then a final mix over the 16 bytes. The hash only picks where to
 * look: entries are matched by the whole key. */
static uint32_t hash16(const uint8_t k[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++) {
        h ^= k[i];
        h *= 16777619u;
    }
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return h;
}

/* Under the mutex: the entry of key, or (if absent and `make`) a free entry
 * in its window now holding key. UINT32_MAX when absent / no room. */
static uint32_t find(struct addrtable *t, const uint8_t key[16], bool make)
{
    uint32_t cap = t->shm->cap, mask = cap - 1, h = hash16(key), free_i = UINT32_MAX;
    uint32_t window = cap < ADDRTABLE_PROBE ? cap : ADDRTABLE_PROBE;
    for (uint32_t k = 0; k < window; k++) {
        uint32_t i = (h + k) & mask;
        struct at_entry *e = &t->ent[i];
        if (e->in_use && memcmp(e->key, key, 16) == 0) return i;
        if (!e->in_use && free_i == UINT32_MAX) free_i = i;
    }
    if (!make || free_i == UINT32_MAX) return UINT32_MAX;
    memcpy(t->ent[free_i].key, key, 16);
    t->ent[free_i].in_use = 1;
    t->shm->used++;
    return free_i;
}

static void drop_if_empty(struct addrtable *t, uint32_t i)
{
    if (t->ent[i].in_use && held(t, i) == 0) {
        t->ent[i].in_use = 0;
        t->shm->used--;
    }
}

enum addr_result addrtable_acquire(struct addrtable *t, unsigned slot, const uint8_t key[16],
                                   uint32_t limit, uint32_t *entry)
{
    if (!t || slot >= ADDRTABLE_MAX_SLOTS) return ADDR_ERROR;
    enum addr_result r = ADDR_OK;
    lock(t);
    if (t->shm->nslots < slot + 1) t->shm->nslots = slot + 1;
    uint32_t i = find(t, key, true);
    if (i == UINT32_MAX) {
        r = ADDR_TABLE_FULL;
    } else if ((limit && held(t, i) >= limit) || *hold_at(t, slot, i) == UINT16_MAX) {
        r = ADDR_OVER_LIMIT;
        drop_if_empty(t, i);   /* a new entry for nobody */
    } else {
        (*hold_at(t, slot, i))++;   /* the commit point */
        *entry = i;
    }
    unlock(t);
    return r;
}

void addrtable_release(struct addrtable *t, unsigned slot, uint32_t entry)
{
    if (!t || slot >= ADDRTABLE_MAX_SLOTS || entry >= t->shm->cap) return;
    lock(t);
    uint16_t *h = hold_at(t, slot, entry);
    if (*h > 0) (*h)--;
    drop_if_empty(t, entry);
    unlock(t);
}

uint32_t addrtable_count(struct addrtable *t, const uint8_t key[16])
{
    lock(t);
    uint32_t i = find(t, key, false), n = i == UINT32_MAX ? 0 : held(t, i);
    unlock(t);
    return n;
}

uint32_t addrtable_used(struct addrtable *t)
{
    lock(t);
    uint32_t n = t->shm->used;
    unlock(t);
    return n;
}

void addrtable_slot_reset(struct addrtable *t, unsigned slot)
{
    if (!t || slot >= ADDRTABLE_MAX_SLOTS) return;
    lock(t);
    if (slot < t->shm->nslots) {
        for (uint32_t i = 0; i < t->shm->cap; i++) {
            uint16_t *h = hold_at(t, slot, i);
            if (*h == 0) continue;
            *h = 0;
            drop_if_empty(t, i);
        }
    }
    unlock(t);
}

void edge_count(struct addrtable *t, unsigned slot, enum edge_counter c)
{
    if (!t || slot >= ADDRTABLE_MAX_SLOTS || c >= EDGE_COUNT) return;
    atomic_fetch_add_explicit(&t->shm->counters[slot][c], 1, memory_order_relaxed);
}

uint64_t edge_counter_sum(const struct addrtable *t, enum edge_counter c)
{
    uint64_t sum = 0;
    if (!t || c >= EDGE_COUNT) return 0;
    for (unsigned s = 0; s < ADDRTABLE_MAX_SLOTS; s++)
        sum += atomic_load_explicit(&t->shm->counters[s][c], memory_order_relaxed);
    return sum;
}
