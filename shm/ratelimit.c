/* ratelimit.c - see ratelimit.h. */
#include "shm/ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RL_PROBE 16

struct rl_entry {
    uint8_t key[16];
    uint64_t tat_us;       /* theoretical arrival time; <= now: bucket full (entry free) */
};

struct rl_shm {
    pthread_mutex_t mu;
    uint32_t cap;
    struct rl_entry e[];
};

struct ratelimit {
    struct rl_shm *shm;
    size_t map_len;
};

struct ratelimit *ratelimit_create(uint32_t capacity)
{
    uint32_t cap = 16;
    while (cap < capacity && cap < (1u << 26)) cap <<= 1;
    struct ratelimit *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->map_len = sizeof(struct rl_shm) + (size_t)cap * sizeof(struct rl_entry);
    void *p = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        free(r);
        return NULL;
    }
    r->shm = p;
    r->shm->cap = cap;
    pthread_mutexattr_t a;
    int e = pthread_mutexattr_init(&a);
    if (e == 0) e = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (e == 0) e = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (e == 0) e = pthread_mutex_init(&r->shm->mu, &a);
    pthread_mutexattr_destroy(&a);
    if (e != 0) {
        munmap(p, r->map_len);
        free(r);
        errno = e;
        return NULL;
    }
    return r;
}

void ratelimit_destroy(struct ratelimit *r)
{
    if (!r) return;
    munmap(r->shm, r->map_len);
    free(r);
}

static uint32_t hash16(const uint8_t k[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++) {
        h ^= k[i];
        h *= 16777619u;
    }
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return h;
}

bool ratelimit_take(struct ratelimit *r, const uint8_t key[16], uint64_t now_us,
                    uint32_t per_minute, uint32_t burst, uint32_t *retry_after_s)
{
    if (!r || per_minute == 0) return true;
    if (burst == 0) burst = 1;
    uint64_t interval = 60000000u / per_minute;   /* µs per token */
    if (interval == 0) interval = 1;
    uint64_t tolerance = interval * (burst - 1);
    bool ok = true;
    /* only one word changes per call (tat_us), so a process killed inside
     * the section leaves nothing half-done */
    if (pthread_mutex_lock(&r->shm->mu) == EOWNERDEAD) pthread_mutex_consistent(&r->shm->mu);
    uint32_t mask = r->shm->cap - 1, h = hash16(key), found = UINT32_MAX, victim = UINT32_MAX;
    uint32_t window = r->shm->cap < RL_PROBE ? r->shm->cap : RL_PROBE;
    for (uint32_t k = 0; k < window; k++) {
        uint32_t i = (h + k) & mask;
        struct rl_entry *e = &r->shm->e[i];
        if (e->tat_us > now_us && memcmp(e->key, key, 16) == 0) {
            found = i;
            break;
        }
        if (victim == UINT32_MAX || e->tat_us < r->shm->e[victim].tat_us) victim = i;
    }
    struct rl_entry *e;
    if (found != UINT32_MAX) {
        e = &r->shm->e[found];
    } else {
        e = &r->shm->e[victim];
        memcpy(e->key, key, 16);
        e->tat_us = now_us;
    }
    uint64_t tat = e->tat_us > now_us ? e->tat_us : now_us;
    if (tat - now_us > tolerance) {
        uint64_t wait = tat - now_us - tolerance;
        *retry_after_s = (uint32_t)((wait + 999999) / 1000000);
        if (*retry_after_s == 0) *retry_after_s = 1;
        ok = false;
    } else {
        e->tat_us = tat + interval;
    }
    pthread_mutex_unlock(&r->shm->mu);
    return ok;
}
