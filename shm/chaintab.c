/* chaintab.c - the shared chain table (see chaintab.h for the contract).
 *
 * Layout: one memfd of a metadata array (one 32-byte struct ct_meta per
 * entry, page-rounded) followed by the data area (n_entries * entry_bytes).
 * The metadata is separate from the data so that a probe touches only the
 * small array: an entry's data pages become resident when it is written.
 *
 * An entry is found by its 64-bit content hash: the probe window is the
 * CT_WINDOW entries from hash & (n - 1) (wrapping). A hit needs the same
 * hash, the same length and the same bytes (compared), so a hash collision
 * costs sharing, never correctness.
 *
 * last_ref states: 0 never written; LOCKED | pos being written by the
 * producer of the record at pos; otherwise the newest position of a record
 * that references the entry (positions are >= the ring size > 0 and below
 * 2^63). */
#include "shm/chaintab.h"

#include "common/hash64.h"
#include "common/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CT_WINDOW 8u
#define CT_LOCKED ((uint64_t)1 << 63)

struct ct_meta {
    _Atomic uint64_t last_ref;
    _Atomic uint64_t hash;
    _Atomic uint32_t len;
    uint32_t pad[3];
};

struct chaintab {
    struct ct_meta *meta;
    uint8_t *data;
    size_t meta_len, data_len;
    uint32_t n, entry_bytes;
};

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to work across processes");

struct chaintab *chaintab_create(uint32_t n_entries, uint32_t entry_bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || n_entries < 16 || (n_entries & (n_entries - 1)) != 0 || entry_bytes == 0 ||
        entry_bytes % (uint32_t)page != 0 || entry_bytes > (1u << 24) || n_entries > (1u << 20)) {
        errno = EINVAL;
        return NULL;
    }
    struct chaintab *ct = calloc(1, sizeof *ct);
    if (!ct) return NULL;
    ct->n = n_entries;
    ct->entry_bytes = entry_bytes;
    ct->meta_len = ((size_t)n_entries * sizeof(struct ct_meta) + (size_t)page - 1) & ~((size_t)page - 1);
    ct->data_len = (size_t)n_entries * entry_bytes;
    int fd = memfd_create("certstream-chaintab", MFD_CLOEXEC);
    if (fd < 0) goto err;
    if (ftruncate(fd, (off_t)(ct->meta_len + ct->data_len)) != 0) goto err_fd;
    void *p = mmap(NULL, ct->meta_len + ct->data_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) goto err_fd;
    if (close(fd) != 0) {
        int saved = errno;
        munmap(p, ct->meta_len + ct->data_len);
        errno = saved;
        goto err;
    }
    ct->meta = p;
    ct->data = (uint8_t *)p + ct->meta_len;
    return ct;
err_fd:;
    int saved = errno;
    close(fd);
    errno = saved;
err:
    saved = errno;
    free(ct);
    errno = saved;
    return NULL;
}

void chaintab_destroy(struct chaintab *ct)
{
    if (!ct) return;
    if (munmap(ct->meta, ct->meta_len + ct->data_len) != 0) log_warn("chaintab: munmap: %s", strerror(errno));
    free(ct);
}

uint64_t chaintab_data_size(const struct chaintab *ct) { return ct->data_len; }
uint32_t chaintab_entry_bytes(const struct chaintab *ct) { return ct->entry_bytes; }

/* common/hash64.h; 0 marks "no bytes" */
static uint64_t piece_hash(const uint8_t *p, size_t n)
{
    uint64_t h = hash64_bytes(p, n);
    return h ? h : 1;
}

/* Moves last_ref from seen up to pos (never down). False if it changed
 * meanwhile (rewritten, locked, or moved by another producer: look again). */
static bool stamp(struct ct_meta *m, uint64_t seen, uint64_t pos)
{
    if (seen >= pos) return true;
    return atomic_compare_exchange_strong_explicit(&m->last_ref, &seen, pos, memory_order_acq_rel,
                                                   memory_order_relaxed);
}

int64_t chaintab_ref(struct chaintab *ct, const void *p, uint32_t len, uint64_t pos, uint64_t reuse_below)
{
    if (!ct || len == 0 || len > ct->entry_bytes || pos == 0 || (pos & CT_LOCKED)) return -1;
    uint64_t h = piece_hash(p, len);
    uint32_t first = (uint32_t)h & (ct->n - 1);
    for (int attempt = 0; attempt < 4; attempt++) {
        bool retry = false;
        /* 1. an entry with these bytes */
        for (uint32_t k = 0; k < CT_WINDOW; k++) {
            uint32_t i = (first + k) & (ct->n - 1);
            struct ct_meta *m = &ct->meta[i];
            uint64_t seen = atomic_load_explicit(&m->last_ref, memory_order_acquire);
            if (seen == 0 || (seen & CT_LOCKED)) continue;
            if (atomic_load_explicit(&m->hash, memory_order_relaxed) != h ||
                atomic_load_explicit(&m->len, memory_order_relaxed) != len)
                continue;
            const uint8_t *d = ct->data + (size_t)i * ct->entry_bytes;
            if (memcmp(d, p, len) != 0) continue;
            /* even when the stamp is old enough for reuse: a producer that
             * reuses it CASes the same value we read, so only one wins */
            if (stamp(m, seen, pos)) return (int64_t)((size_t)i * ct->entry_bytes);
            retry = true;
        }
        if (retry) continue;
        /* 2. a free entry, a reusable one, or one a dead producer left locked */
        for (uint32_t k = 0; k < CT_WINDOW; k++) {
            uint32_t i = (first + k) & (ct->n - 1);
            struct ct_meta *m = &ct->meta[i];
            uint64_t seen = atomic_load_explicit(&m->last_ref, memory_order_acquire);
            bool free_ = seen == 0 || (seen & ~CT_LOCKED) < reuse_below;
            if (!free_) continue;
            if (!atomic_compare_exchange_strong_explicit(&m->last_ref, &seen, CT_LOCKED | pos,
                                                         memory_order_acq_rel, memory_order_relaxed))
                continue;
            /* The claim that made it reusable is visible before its bytes change. */
            atomic_thread_fence(memory_order_release);
            atomic_store_explicit(&m->hash, 0, memory_order_relaxed);
            uint8_t *d = ct->data + (size_t)i * ct->entry_bytes;
            memcpy(d, p, len);
            atomic_store_explicit(&m->len, len, memory_order_relaxed);
            atomic_store_explicit(&m->hash, h, memory_order_relaxed);
            atomic_store_explicit(&m->last_ref, pos, memory_order_release);
            return (int64_t)((size_t)i * ct->entry_bytes);
        }
        return -1;
    }
    return -1;
}

bool chaintab_probe(const struct chaintab *ct, const void *p, uint32_t len, uint64_t reuse_below)
{
    if (!ct || len == 0 || len > ct->entry_bytes) return false;
    uint64_t h = piece_hash(p, len);
    uint32_t first = (uint32_t)h & (ct->n - 1);
    for (uint32_t k = 0; k < CT_WINDOW; k++) {
        const struct ct_meta *m = &ct->meta[(first + k) & (ct->n - 1)];
        uint64_t seen = atomic_load_explicit(&m->last_ref, memory_order_acquire);
        if (seen == 0 || (seen & ~CT_LOCKED) < reuse_below) return true;
        if (!(seen & CT_LOCKED) && atomic_load_explicit(&m->hash, memory_order_relaxed) == h &&
            atomic_load_explicit(&m->len, memory_order_relaxed) == len)
            return true;   /* most likely these bytes (chaintab_ref compares them) */
    }
    return false;
}

const uint8_t *chaintab_bytes(const struct chaintab *ct, uint64_t off, uint32_t len)
{
    if (!ct || off > ct->data_len || len > ct->data_len - off) return NULL;
    return ct->data + off;
}

uint32_t chaintab_used(const struct chaintab *ct)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < ct->n; i++) {
        uint64_t v = atomic_load_explicit(&ct->meta[i].last_ref, memory_order_relaxed);
        if (v != 0 && !(v & CT_LOCKED)) n++;
    }
    return n;
}
