/* dedup.c - the shared dedup table (see dedup.h).
 *
 * Layout: one MAP_SHARED array of 64-bit entries in a memfd named
 * "certstream-dedup" (so /proc/PID/smaps and test/bench/idle_mem.py can tell
 * it from the other shared regions), grouped in
 * buckets of 8 (one cache line). Key bits 0..63 pick the bucket, bits 64..111
 * are the tag kept in the entry. SHA-256 output is uniform, so no further
 * hashing is needed.
 *
 * Entry word: tag << 16 | stamp, where stamp = (now_secs / gran) mod 2^16 and
 * gran = ceil(ttl / 4096), so a TTL is at most 4096 stamps and the stamp
 * wraps only after 16 TTLs. 0 is an empty entry (tags are never 0).
 *
 * Insert: scan the bucket; a live entry with our tag means "seen". Otherwise
 * CAS our word into the first empty entry, else the first expired one, else
 * the oldest; if the CAS loses, rescan (the winner may have inserted our key).
 * Every process picks its victim in the same order, so two processes racing
 * to insert the same new key CAS the same entry and only one wins. */
#include "shm/dedup.h"

#include "common/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEDUP_WAYS 8
#define DEDUP_STAMP_BITS 16
#define DEDUP_STAMP_MASK ((1u << DEDUP_STAMP_BITS) - 1)
#define DEDUP_MAX_TTL_STAMPS 4096u
#define DEDUP_MAX_RETRIES 16

struct dedup {
    _Atomic uint64_t *entries;
    size_t n_entries;
    size_t bucket_mask;       /* number of buckets - 1 */
    uint32_t gran;            /* seconds per stamp */
    uint32_t ttl_stamps;
};

struct dedup *dedup_create(uint32_t capacity, uint32_t ttl_secs)
{
    if (capacity == 0 || capacity > (1u << 31) || ttl_secs == 0 || ttl_secs > (1u << 23)) {
        errno = EINVAL;
        return NULL;
    }
    struct dedup *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    size_t n = 64;
    while (n < capacity)
        n <<= 1;
    d->n_entries = n;
    d->bucket_mask = n / DEDUP_WAYS - 1;
    d->gran = (ttl_secs + DEDUP_MAX_TTL_STAMPS - 1) / DEDUP_MAX_TTL_STAMPS;
    d->ttl_stamps = (ttl_secs + d->gran - 1) / d->gran;
    int fd = memfd_create("certstream-dedup", MFD_CLOEXEC);
    if (fd < 0)
        goto err;
    void *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)(n * sizeof(uint64_t))) == 0)
        p = mmap(NULL, n * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    int saved_map = errno;
    if (close(fd) != 0)
        log_warn("dedup: close: %s", strerror(errno));
    if (p == MAP_FAILED) {
        errno = saved_map;
        goto err;
    }
    d->entries = p;
    return d;

err:;
    int saved = errno;
    free(d);
    errno = saved;
    return NULL;
}

void dedup_destroy(struct dedup *d)
{
    if (d == NULL)
        return;
    if (munmap((void *)d->entries, d->n_entries * sizeof(uint64_t)) != 0)
        log_warn("dedup: munmap: %s", strerror(errno));
    free(d);
}

size_t dedup_capacity(const struct dedup *d) { return d->n_entries; }

size_t dedup_live(const struct dedup *d, uint64_t now_secs)
{
    uint32_t now = (uint32_t)((now_secs / d->gran) & DEDUP_STAMP_MASK);
    size_t n = 0;
    for (size_t i = 0; i < d->n_entries; i++) {
        uint64_t w = atomic_load_explicit(&d->entries[i], memory_order_relaxed);
        if (w != 0 && ((now - (uint32_t)(w & DEDUP_STAMP_MASK)) & DEDUP_STAMP_MASK) < d->ttl_stamps)
            n++;
    }
    return n;
}

static uint64_t key_u64(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

bool dedup_seen_or_insert(struct dedup *d, const uint8_t key[32], uint64_t now_secs)
{
    _Atomic uint64_t *b = d->entries + (key_u64(key, 8) & d->bucket_mask) * DEDUP_WAYS;
    uint64_t tag = key_u64(key + 8, 6);
    if (tag == 0)
        tag = 1;
    uint32_t now = (uint32_t)((now_secs / d->gran) & DEDUP_STAMP_MASK);
    uint64_t mine = tag << DEDUP_STAMP_BITS | now;

    for (int tries = 0; tries < DEDUP_MAX_RETRIES; tries++) {
        int empty = -1, expired = -1, oldest = 0;
        uint32_t oldest_age = 0;
        uint64_t seen[DEDUP_WAYS];
        for (int i = 0; i < DEDUP_WAYS; i++) {
            uint64_t w = atomic_load_explicit(&b[i], memory_order_acquire);
            seen[i] = w;
            if (w == 0) {
                if (empty < 0)
                    empty = i;
                continue;
            }
            uint32_t age = (now - (uint32_t)(w & DEDUP_STAMP_MASK)) & DEDUP_STAMP_MASK;
            bool live = age < d->ttl_stamps;
            if ((w >> DEDUP_STAMP_BITS) == tag) {
                if (live)
                    return true;
                expired = i;   /* our own stale entry: renew it in place */
                empty = -1;
                break;
            }
            if (!live && expired < 0)
                expired = i;
            if (age >= oldest_age) {
                oldest_age = age;
                oldest = i;
            }
        }
        int victim = empty >= 0 ? empty : expired >= 0 ? expired : oldest;
        uint64_t expect = seen[victim];
        if (atomic_compare_exchange_strong_explicit(&b[victim], &expect, mine, memory_order_acq_rel,
                                                    memory_order_acquire))
            return false;
    }
    /* Constant contention on one bucket: publish rather than risk dropping. */
    return false;
}
