/* bench_ring.c - publish and read costs of the ring, single process.
 *
 *   bench_ring [messages] [full_bytes] [lite_bytes] [domains_bytes] [checksums 1|0]
 *
 * Publishes messages of the given JSON sizes into a 64 MiB ring (one
 * producer) and reports ns per publish and MB/s; then walks every record
 * still in the ring the way a fanout worker does (peek, next, lapped check)
 * and reports ns per record. Not a test: numbers for docs and tuning. */
#include "shm/ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    size_t len[RING_NFORMATS] = {5000, 1500, 300};
    for (int f = 0; f < RING_NFORMATS; f++)
        if (argc > 2 + f)
            len[f] = (size_t)atol(argv[2 + f]);
    struct ring *r = ring_create((size_t)64 << 20);
    if (!r) {
        perror("ring_create");
        return 1;
    }
    ring_set_checksums(r, !(argc > 5 && atoi(argv[5]) == 0));
    struct ring_message m;
    memset(&m, 0, sizeof m);
    char *buf[RING_NFORMATS];
    for (int f = 0; f < RING_NFORMATS; f++) {
        buf[f] = malloc(len[f]);
        if (!buf[f])
            return 1;
        memset(buf[f], 'x', len[f]);
        m.json[f] = buf[f];
        m.json_len[f] = len[f];
        m.bench_stamp_off[f] = -1;
    }
    uint64_t first = ring_tail(r);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        m.cert_index = (uint64_t)i;
        if (ring_publish(r, 0, &m) == 0) {
            fprintf(stderr, "publish failed\n");
            return 1;
        }
    }
    double t1 = now_s();
    uint64_t bytes = ring_tail(r) - first;
    printf("publish: %ld records of %zu+%zu+%zu JSON bytes, checksums %s: %.0f ns/record, %.0f MB/s into the ring\n",
           n, len[0], len[1], len[2], argc > 5 && atoi(argv[5]) == 0 ? "off" : "on",
           (t1 - t0) * 1e9 / (double)n, (double)bytes / (t1 - t0) / 1e6);

    uint64_t pos = ring_oldest_position(r), live = ring_tail(r);
    const struct ring_record *rec;
    while (pos < live && ring_find(r, pos, &rec) != RING_OK)
        pos += RING_ALIGN;
    long walked = 0;
    uint64_t sum = 0;
    double t2 = now_s();
    while (ring_peek(r, pos, &rec) == RING_OK) {
        sum += rec->ws[RING_LITE].len;
        pos = ring_next(rec);
        walked++;
    }
    int lapped = ring_lapped_since(r, pos);
    double t3 = now_s();
    printf("walk: %ld records: %.1f ns/record (checksum of lengths %llu, lapped %d)\n", walked,
           walked ? (t3 - t2) * 1e9 / (double)walked : 0.0, (unsigned long long)sum, lapped);
    for (int f = 0; f < RING_NFORMATS; f++)
        free(buf[f]);
    ring_destroy(r);
    return 0;
}
