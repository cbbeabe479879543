/* position.c - see position.h. */
#include "nats/position.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define POS_MAGIC 0x31736f706e736363ULL   /* "ccsnpos1" */
#define POS_FILE_LEN 4096

struct pos_copy {
    _Atomic uint64_t seq;
    _Atomic uint64_t check;      /* seq ^ POS_MAGIC ^ gen; written after seq */
    _Atomic uint64_t gen;        /* which store this is; the newer good copy wins */
};

struct pos_file {
    uint64_t magic;
    struct pos_copy copy[2];
};

struct position {
    int fd;
    struct pos_file *map;
    uint64_t gen;
};

static uint64_t check_of(uint64_t seq, uint64_t gen) { return seq ^ POS_MAGIC ^ (gen * 0x9e3779b97f4a7c15ULL); }

struct position *natspos_open(const char *path, uint64_t *seq, char *err, size_t errlen)
{
    struct position *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    p->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p->fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(p);
        return NULL;
    }
    struct stat st;
    if (fstat(p->fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    bool fresh = st.st_size == 0;
    if (!fresh && st.st_size != POS_FILE_LEN) {
        snprintf(err, errlen, "%s: %lld bytes, not a position file (remove it to start from the stream's newest entry)",
                 path, (long long)st.st_size);
        goto fail;
    }
    if (fresh && ftruncate(p->fd, POS_FILE_LEN) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    void *m = mmap(NULL, POS_FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    p->map = m;
    if (fresh) {
        p->map->magic = POS_MAGIC;
        for (int i = 0; i < 2; i++) {
            atomic_store(&p->map->copy[i].seq, 0);
            atomic_store(&p->map->copy[i].gen, 0);
            atomic_store(&p->map->copy[i].check, check_of(0, 0));
        }
        if (msync(m, POS_FILE_LEN, MS_SYNC) != 0)
            log_warn("%s: msync: %s", path, strerror(errno));
    } else if (p->map->magic != POS_MAGIC) {
        snprintf(err, errlen, "%s: not a position file (bad magic; remove it to start from the stream's newest entry)", path);
        munmap(m, POS_FILE_LEN);
        goto fail;
    }
    int best = -1;
    for (int i = 0; i < 2; i++) {
        const struct pos_copy *c = &p->map->copy[i];
        uint64_t s = atomic_load(&c->seq), g = atomic_load(&c->gen);
        if (atomic_load(&c->check) != check_of(s, g))
            continue;
        if (best < 0 || g > atomic_load(&p->map->copy[best].gen))
            best = i;
    }
    if (best < 0) {
        snprintf(err, errlen, "%s: both copies are damaged (remove it to start from the stream's newest entry)", path);
        munmap(m, POS_FILE_LEN);
        goto fail;
    }
    *seq = atomic_load(&p->map->copy[best].seq);
    p->gen = atomic_load(&p->map->copy[best].gen);
    return p;
fail:
    if (close(p->fd) != 0)
        log_warn("%s: close: %s", path, strerror(errno));
    free(p);
    return NULL;
}

void natspos_store(struct position *p, uint64_t seq)
{
    uint64_t gen = ++p->gen;
    struct pos_copy *c = &p->map->copy[gen & 1];
    /* Invalidate, write, validate: a copy is either the old value, the new
     * one, or rejected by its check word; the other copy holds the previous. */
    atomic_store_explicit(&c->check, 0, memory_order_release);
    atomic_store_explicit(&c->seq, seq, memory_order_release);
    atomic_store_explicit(&c->gen, gen, memory_order_release);
    atomic_store_explicit(&c->check, check_of(seq, gen), memory_order_release);
}

int natspos_sync(struct position *p)
{
    return msync(p->map, POS_FILE_LEN, MS_ASYNC);
}

void natspos_close(struct position *p)
{
    if (!p)
        return;
    if (msync(p->map, POS_FILE_LEN, MS_SYNC) != 0)
        log_warn("position file: msync: %s", strerror(errno));
    if (munmap(p->map, POS_FILE_LEN) != 0)
        log_warn("position file: munmap: %s", strerror(errno));
    if (close(p->fd) != 0)
        log_warn("position file: close: %s", strerror(errno));
    free(p);
}
