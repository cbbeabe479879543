/* positions.c - the crash-proof position store (see positions.h). */
#include "shm/positions.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POSITIONS_MAGIC 0x534f5053544353ull   /* "CSTSPOS" */
#define POSITIONS_VERSION 1u

struct positions_header {
    uint64_t magic;
    uint32_t version;
    uint32_t rows;
    uint32_t row_size;
    uint8_t pad[512 - 20];
};

struct positions_file {
    struct positions_header h;
    struct position_row row[POSITIONS_MAX_ROWS];
};

struct positions {
    int fd;
    struct positions_file *map;
};

_Static_assert(sizeof(struct position_row) == 512, "position rows are 512 bytes");
_Static_assert(sizeof(struct positions_header) == 512, "header is 512 bytes");

int positions_path_for(const char *state_file, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s.positions", state_file);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Waits for the exclusive lock: an earlier server's processes may still be
 * stopping (they inherited the lock and release it only by exiting). */
static int lock_wait(int fd, unsigned wait_ms)
{
    unsigned waited = 0;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
        if (errno != EWOULDBLOCK && errno != EINTR) return -1;
        if (waited >= wait_ms) {
            errno = EWOULDBLOCK;
            return -1;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        nanosleep(&ts, NULL);
        waited += 50;
    }
}

struct positions *positions_open(const char *path, unsigned wait_ms, bool *created, char *err, size_t errlen)
{
    struct positions *p = calloc(1, sizeof *p);
    struct stat st;
    *created = false;
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    p->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (p->fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (lock_wait(p->fd, wait_ms) != 0) {
        snprintf(err, errlen, "%s: %s", path,
                 errno == EWOULDBLOCK ? "still locked by another certstream-server (its processes did not exit)"
                                      : strerror(errno));
        goto fail;
    }
    if (fstat(p->fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    bool fresh = st.st_size == 0;   /* ftruncate makes it read as zeros */
    if (fresh) {
        if (ftruncate(p->fd, (off_t)sizeof(struct positions_file)) != 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        *created = true;
    } else if ((size_t)st.st_size != sizeof(struct positions_file)) {
        snprintf(err, errlen, "%s: %lld bytes, not a position file of this version; move it away "
                 "(positions are then imported from the state file)", path, (long long)st.st_size);
        errno = EINVAL;
        goto fail;
    }
    void *m = mmap(NULL, sizeof(struct positions_file), PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    p->map = m;
    struct positions_header *h = &p->map->h;
    if (*created || h->magic == 0) {
        /* New, or created but never initialised (killed right after
         * ftruncate): nothing in it can be a position yet. A fresh file is
         * already zeros: writing them would make all 512 KiB resident (page
         * cache) and allocated on disk, where a server with 35 logs uses
         * 18 KiB of it. */
        if (!fresh) memset(p->map, 0, sizeof *p->map);
        h->version = POSITIONS_VERSION;
        h->rows = POSITIONS_MAX_ROWS;
        h->row_size = sizeof(struct position_row);
        __atomic_store_n(&h->magic, POSITIONS_MAGIC, __ATOMIC_RELEASE);
        *created = true;
    } else if (h->magic != POSITIONS_MAGIC || h->version != POSITIONS_VERSION || h->rows != POSITIONS_MAX_ROWS ||
               h->row_size != sizeof(struct position_row)) {
        snprintf(err, errlen, "%s: not a position file of this version; move it away "
                 "(positions are then imported from the state file)", path);
        errno = EINVAL;
        goto fail;
    }
    return p;
fail: {
    int saved = errno;
    if (p->map) munmap(p->map, sizeof *p->map);
    if (p->fd >= 0) close(p->fd);
    free(p);
    errno = saved;   /* EWOULDBLOCK: another server holds it */
    return NULL;
}
}

int positions_sync(struct positions *p)
{
    if (!p) return 0;
    return msync(p->map, sizeof *p->map, MS_SYNC);
}

void positions_close(struct positions *p)
{
    if (!p) return;
    positions_sync(p);
    munmap(p->map, sizeof *p->map);
    close(p->fd);
    free(p);
}

struct position_row *positions_row(struct positions *p, const char *url, bool create)
{
    if (!p || !url || strlen(url) >= POSITIONS_URL_MAX) return NULL;
    struct position_row *free_row = NULL;
    /* Rows are claimed first-free and never freed, so the first free row
     * ends the used ones: the search reads only the pages of rows in use
     * (the rest of the file stays out of memory). */
    for (unsigned i = 0; i < POSITIONS_MAX_ROWS; i++) {
        struct position_row *r = &p->map->row[i];
        if (!r->url[0]) {
            free_row = r;
            break;
        }
        if (strcmp(r->url, url) == 0) return r;
    }
    if (!create || !free_row) return NULL;
    memset(free_row, 0, sizeof *free_row);
    memcpy(free_row->url, url, strlen(url) + 1);
    return free_row;
}

void position_store(struct position_row *r, uint64_t next_index)
{
    if (!r) return;
    __atomic_store_n(&r->next_index, next_index, __ATOMIC_RELAXED);
    if (!(r->flags & POSITION_KNOWN)) __atomic_store_n(&r->flags, r->flags | POSITION_KNOWN, __ATOMIC_RELAXED);
}

void position_store_size(struct position_row *r, uint64_t tree_size)
{
    if (r) __atomic_store_n(&r->tree_size, tree_size, __ATOMIC_RELAXED);
}

void position_store_pending(struct position_row *r, uint64_t leaf_tag)
{
    if (r) __atomic_store_n(&r->pending_leaf, leaf_tag, __ATOMIC_RELAXED);
}

uint64_t position_pending(const struct position_row *r)
{
    return r ? __atomic_load_n(&r->pending_leaf, __ATOMIC_RELAXED) : 0;
}

bool position_known(const struct position_row *r)
{
    return r && (__atomic_load_n(&r->flags, __ATOMIC_RELAXED) & POSITION_KNOWN);
}

uint64_t position_next(const struct position_row *r)
{
    return r ? __atomic_load_n(&r->next_index, __ATOMIC_RELAXED) : 0;
}

uint64_t position_size(const struct position_row *r)
{
    return r ? __atomic_load_n(&r->tree_size, __ATOMIC_RELAXED) : 0;
}
