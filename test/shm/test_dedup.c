/* test_dedup.c - tests of the shared dedup table (shm/dedup.c): seen/TTL,
 * bounded capacity with oldest-first eviction, and processes racing to
 * insert the same keys. */
#include "shm/dedup.h"
#include "test/shm/shm_test.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* A SHA-256-like (uniform) key for number i. */
static void key_of(uint8_t k[32], uint64_t i)
{
    for (int w = 0; w < 4; w++) {
        uint64_t v = mix(i * 4 + (uint64_t)w + 1);
        memcpy(k + 8 * w, &v, 8);
    }
}

/* Keys sharing their first 8 bytes land in one bucket. */
static void key_same_bucket(uint8_t k[32], uint64_t i)
{
    key_of(k, i);
    memset(k, 0x5a, 8);
}

static void test_create(void)
{
    errno = 0;
    CHECK(dedup_create(0, 10) == NULL && errno == EINVAL);
    CHECK(dedup_create(100, 0) == NULL);
    CHECK(dedup_create(100, (1u << 23) + 1) == NULL);
    CHECK(dedup_create(0x80000001u, 10) == NULL);
    struct dedup *d = dedup_create(1000, 3600);
    CHECK(d != NULL);
    if (d)
        CHECK(dedup_capacity(d) == 1024);
    dedup_destroy(d);
    d = dedup_create(1, 1);
    CHECK(d && dedup_capacity(d) == 64);
    dedup_destroy(d);
}

static void test_seen_and_ttl(void)
{
    struct dedup *d = dedup_create(1 << 16, 3600);
    if (!d) {
        CHECK(d != NULL);
        return;
    }
    uint8_t a[32], b[32];
    key_of(a, 1);
    key_of(b, 2);
    uint64_t t = 1779302893;
    CHECK(!dedup_seen_or_insert(d, a, t));
    CHECK(dedup_seen_or_insert(d, a, t));
    CHECK(dedup_seen_or_insert(d, a, t + 3599));
    CHECK(!dedup_seen_or_insert(d, b, t + 10));
    CHECK(!dedup_seen_or_insert(d, a, t + 3600));   /* expired: publish again */
    CHECK(dedup_seen_or_insert(d, a, t + 3601));    /* and it counts from now */
    CHECK(dedup_seen_or_insert(d, a, t + 7199));
    CHECK(dedup_seen_or_insert(d, b, t + 3609));
    CHECK(!dedup_seen_or_insert(d, b, t + 3610));
    /* Keys differing only in bytes the table does not store are distinct
     * as long as the bucket or tag bytes differ. */
    uint8_t c[32];
    memcpy(c, a, 32);
    c[13] ^= 1;                                     /* tag byte */
    CHECK(!dedup_seen_or_insert(d, c, t + 3700));
    c[13] ^= 1;
    c[0] ^= 1;                                      /* bucket byte */
    CHECK(!dedup_seen_or_insert(d, c, t + 3700));
    dedup_destroy(d);

    /* A long TTL uses coarser stamps: still about the TTL. */
    d = dedup_create(1024, 86400);
    if (!d) {
        CHECK(d != NULL);
        return;
    }
    CHECK(!dedup_seen_or_insert(d, a, t));
    CHECK(dedup_seen_or_insert(d, a, t + 86000));
    CHECK(!dedup_seen_or_insert(d, a, t + 86400 + 60));
    dedup_destroy(d);
}

static void test_many_keys(void)
{
    struct dedup *d = dedup_create(1 << 20, 3600);
    if (!d) {
        CHECK(d != NULL);
        return;
    }
    uint8_t k[32];
    unsigned wrong_first = 0, wrong_again = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        key_of(k, i);
        wrong_first += dedup_seen_or_insert(d, k, 1000 + i / 1000);
    }
    for (uint64_t i = 0; i < 100000; i++) {
        key_of(k, i);
        wrong_again += !dedup_seen_or_insert(d, k, 1200);
    }
    CHECK(wrong_first == 0);   /* no false "seen" */
    CHECK(wrong_again == 0);   /* nothing evicted at 10% load */
    dedup_destroy(d);
}

/* The table is one mapping named "certstream-dedup" of capacity x 8 bytes,
 * so /proc/PID/smaps (and test/bench/idle_mem.py) can tell it apart. */
static void test_named_mapping(void)
{
    struct dedup *d = dedup_create(131072, 300);
    if (!d) {
        CHECK(d != NULL);
        return;
    }
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL);
    char line[512];
    unsigned found = 0;
    unsigned long size = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (!strstr(line, "/memfd:certstream-dedup"))
            continue;
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
            found++;
            size = hi - lo;
        }
    }
    if (f)
        fclose(f);
    CHECK(found == 1);
    CHECK(size == 131072ul * 8);
    dedup_destroy(d);
}

/* A full table keeps the newest keys of each bucket: with more keys than it
 * holds (10,000 into 4,096 entries, TTL not reached) the recent ones are all
 * still "seen", the oldest were forgotten (they would be published again: a
 * duplicate, never a loss), and a key never inserted is never "seen". */
static void test_full_table_history(void)
{
    struct dedup *d = dedup_create(4096, 3600);
    if (!d) {
        CHECK(d != NULL);
        return;
    }
    uint8_t k[32];
    for (uint64_t i = 0; i < 10000; i++) {   /* 100 keys/s for 100 s */
        key_of(k, i);
        CHECK(!dedup_seen_or_insert(d, k, 1000 + i / 100));
    }
    unsigned recent_seen = 0, old_forgotten = 0, fresh_seen = 0;
    for (uint64_t i = 10000 - 512; i < 10000; i++) {
        key_of(k, i);
        recent_seen += dedup_seen_or_insert(d, k, 1100);
    }
    for (uint64_t i = 0; i < 2000; i++) {
        key_of(k, i);
        old_forgotten += !dedup_seen_or_insert(d, k, 1100);
    }
    for (uint64_t i = 20000; i < 30000; i++) {
        key_of(k, i);
        fresh_seen += dedup_seen_or_insert(d, k, 1100);
    }
    CHECK(recent_seen == 512);
    CHECK(old_forgotten >= 1900);   /* 8,000+ newer keys over 512 buckets of 8 */
    CHECK(fresh_seen == 0);
    dedup_destroy(d);
}

static void test_bounded_eviction(void)
{
    struct dedup *d = dedup_create(64, 3600);
    if (!d) {
        CHECK(d != NULL);
        return;
    }
    uint8_t k[32];
    /* One bucket, 8 ways: k0 at t=0, k1..k7 at t=10, k8 at t=20 evicts k0. */
    key_same_bucket(k, 0);
    CHECK(!dedup_seen_or_insert(d, k, 0));
    for (uint64_t i = 1; i < 8; i++) {
        key_same_bucket(k, i);
        CHECK(!dedup_seen_or_insert(d, k, 10));
    }
    key_same_bucket(k, 8);
    CHECK(!dedup_seen_or_insert(d, k, 20));
    for (uint64_t i = 1; i <= 8; i++) {
        key_same_bucket(k, i);
        CHECK(dedup_seen_or_insert(d, k, 30));
    }
    key_same_bucket(k, 0);
    CHECK(!dedup_seen_or_insert(d, k, 30));        /* k0 was the one evicted */
    /* Expired entries go before live ones, even younger than the oldest live. */
    key_same_bucket(k, 100);                       /* at 3615 k1..k6 (t=10) have expired */
    CHECK(!dedup_seen_or_insert(d, k, 3615));
    key_same_bucket(k, 8);
    CHECK(dedup_seen_or_insert(d, k, 3615));       /* k8 (t=20) is older than k100 but live */
    key_same_bucket(k, 0);
    CHECK(dedup_seen_or_insert(d, k, 3615));       /* k0 (t=30) too */
    key_same_bucket(k, 100);
    CHECK(dedup_seen_or_insert(d, k, 3616));
    /* A flood of distinct keys never grows the table. */
    for (uint64_t i = 0; i < 20000; i++) {
        key_of(k, 1000 + i);
        dedup_seen_or_insert(d, k, 5000);
    }
    CHECK(dedup_capacity(d) == 64);
    key_of(k, 1000 + 19999);
    CHECK(dedup_seen_or_insert(d, k, 5000));       /* the newest is there */
    dedup_destroy(d);
}

/* Four processes insert the same keys concurrently: each key is "new" for
 * exactly one of them. */
static void test_processes(void)
{
    enum { KIDS = 4, KEYS = 20000 };
    struct dedup *d = dedup_create(1 << 18, 3600);
    atomic_int *firsts = mmap(NULL, KEYS * sizeof *firsts, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(d != NULL && firsts != MAP_FAILED);
    if (!d || firsts == MAP_FAILED)
        return;
    pid_t pids[KIDS];
    for (int c = 0; c < KIDS; c++) {
        pids[c] = fork();
        if (pids[c] == 0) {
            uint8_t k[32];
            for (uint64_t i = 0; i < KEYS; i++) {
                uint64_t j = (i * (uint64_t)(2 * c + 1)) % KEYS;   /* different orders */
                key_of(k, j);
                if (!dedup_seen_or_insert(d, k, 777))
                    atomic_fetch_add(&firsts[j], 1);
            }
            _exit(0);
        }
    }
    bool ok = true;
    for (int c = 0; c < KIDS; c++) {
        int st = 0;
        ok = ok && pids[c] > 0 && waitpid(pids[c], &st, 0) == pids[c] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    CHECK(ok);
    unsigned bad = 0;
    for (int j = 0; j < KEYS; j++)
        bad += atomic_load(&firsts[j]) != 1;
    CHECK(bad == 0);
    munmap(firsts, KEYS * sizeof *firsts);
    dedup_destroy(d);
}

int main(void)
{
    RUN(test_create);
    RUN(test_seen_and_ttl);
    RUN(test_many_keys);
    RUN(test_named_mapping);
    RUN(test_full_table_history);
    RUN(test_bounded_eviction);
    RUN(test_processes);
    return test_report();
}
