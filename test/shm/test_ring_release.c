/* test_ring_release.c - giving back the pages of old records (ring_release,
 * shm/ring.h).
 *
 * Records are built here from a counter, so every byte a reader gets can be
 * regenerated and compared. What is checked:
 * - under wrap, the kept history is exactly the bound (bytes, or commit
 *   time against the newest record), the pages below it are really gone
 *   (mincore on the shared mapping: not in memory; the ring's resident size
 *   follows the bound, not the ring size), and every kept record reads back
 *   byte for byte;
 * - a reader at a given-back record gets RING_LAPPED from ring_peek (it
 *   never reads the zeros), and a reader that copied a record before it was
 *   given back is told by ring_lapped_since after the copy;
 * - a resume (ring_find, ring_oldest_position) from a given-back id is
 *   refused as lapped, and the oldest kept record is found;
 * - hold: nothing at or after it is given back (the NATS publisher);
 * - chain-table entries of kept records stay intact (their lifetime is tied
 *   to claim - size, not to the release);
 * - concurrently: forked producers, a reader that copies slowly and a
 *   releaser process: no record accepted after validation is wrong, the
 *   slow reader is told it lost records, and producers never stall.
 * Prints "N passed, N failed". */
#include "shm/chaintab.h"
#include "shm/ring.h"
#include "shm/ring_test.h"
#include "test/shm/shm_test.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define JSON_LEN 3000u

static size_t g_page;

/* The JSON of message n, format f: '{', letters from (n, f, i), '}'. */
static void gen(char *buf, size_t len, uint64_t n, int f)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (mix(n * 3 + (uint64_t)f) + i) % 26);
    buf[0] = '{';
    buf[len - 1] = '}';
}

static size_t gen_len(uint64_t n, int f)
{
    return f == RING_FULL ? JSON_LEN : f == RING_LITE ? 700 + n % 300 : 90 + n % 10;
}

static char g_json[RING_NFORMATS][JSON_LEN];

static uint64_t publish_n(struct ring *r, unsigned producer, uint64_t n)
{
    struct ring_message m;
    memset(&m, 0, sizeof m);
    for (int f = 0; f < RING_NFORMATS; f++) {
        gen(g_json[f], gen_len(n, f), n, f);
        m.json[f] = g_json[f];
        m.json_len[f] = gen_len(n, f);
        m.bench_stamp_off[f] = -1;
    }
    m.cert_index = n;
    return ring_publish(r, producer, &m);
}

/* The record's JSON of every format equals message cert_index's. */
static bool record_right(const struct ring *r, const struct ring_record *rec)
{
    static char want[JSON_LEN], buf[JSON_LEN];
    for (int f = 0; f < RING_NFORMATS; f++) {
        size_t len = 0, wl = gen_len(rec->cert_index, f);
        const char *j = ring_record_json(r, rec, (enum ring_format)f, buf, sizeof buf, &len);
        gen(want, wl, rec->cert_index, f);
        if (!j || len != wl || memcmp(j, want, wl) != 0)
            return false;
    }
    return true;
}

/* Pages of the data area in memory (the memfd's pages: shared). */
static size_t resident(struct ring *r)
{
    size_t size = ring_size(r), n = size / g_page, in = 0;
    unsigned char *vec = malloc(n);
    if (!vec || mincore(ring_test_data(r), size, vec) != 0) {
        free(vec);
        return (size_t)-1;
    }
    for (size_t i = 0; i < n; i++)
        in += vec[i] & 1;
    free(vec);
    return in * g_page;
}

/* Byte bound under wrap: 4 laps of a 4 MiB ring, releasing as it goes. */
static void test_release_bytes_wrap(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    CHECK(r != NULL);
    if (!r)
        return;
    struct ring_keep keep = {.ns = 0, .bytes = MIB, .hold = 0};
    uint64_t first = publish_n(r, 0, 0), n = 1, given = 0;
    const struct ring_record *rec;
    CHECK(first != 0 && ring_peek(r, first, &rec) == RING_OK);
    const uint64_t maxrec = 5000;   /* a record here: 192 + ~30 + 3000 + < 1000 + < 100 bytes */
    size_t worst = 0;
    while (ring_tail(r) < first + 4 * 4 * MIB) {
        for (int k = 0; k < 50; k++)
            CHECK(publish_n(r, 0, n++) != 0);
        given += ring_release(r, &keep);
        uint64_t tail = ring_tail(r), rel = ring_released(r);
        /* exactly: the oldest record kept is the first within keep.bytes */
        CHECK(tail - rel <= keep.bytes);
        if (tail - first > keep.bytes)
            CHECK(tail - rel + maxrec > keep.bytes);
        size_t res = resident(r);
        if (tail - first > 4 * MIB && res > worst)
            worst = res;
        /* the kept history is resident, the rest is not: keep.bytes plus the
         * partial pages at both ends and the chain table's nothing */
        if (tail - first > 4 * MIB)
            CHECK(res <= keep.bytes + 2 * g_page && res + 2 * g_page >= tail - rel);
    }
    printf("  ring 4 MiB, keep 1 MiB: %zu KiB resident at most after the first lap; %" PRIu64
           " MiB given back in all\n", worst / 1024, given / MIB);
    CHECK(worst <= keep.bytes + 2 * g_page);
    CHECK(given > 3 * 4 * MIB);
    /* every record kept reads back; every one before is lapped, without
     * its bytes being read */
    uint64_t rel = ring_released(r), tail = ring_tail(r), p = rel;
    int kept = 0;
    while (p < tail) {
        CHECK(ring_peek(r, p, &rec) == RING_OK);
        if (ring_peek(r, p, &rec) != RING_OK)
            break;
        CHECK(record_right(r, rec));
        CHECK(!ring_lapped_since(r, p));
        kept++;
        p = ring_next(rec);
    }
    CHECK(p == tail && kept > 100);
    int gone = 0;
    for (uint64_t q = rel - 4096; q > tail - ring_size(r) && gone < 200; q -= 4096, gone++) {
        CHECK(ring_peek(r, q, &rec) == RING_LAPPED);
        CHECK(ring_lapped_since(r, q));
    }
    CHECK(gone == 200);
    CHECK(resident(r) <= keep.bytes + 2 * g_page);   /* the peeks mapped nothing back */
    ring_destroy(r);
}

/* A reader that copied a record, then the record is given back: the
 * validation after the copy says so, and the page really is gone (the
 * header reads as zeros now: what a writev of it would have sent). */
static void test_reader_behind(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    CHECK(r != NULL);
    if (!r)
        return;
    uint64_t n = 0, old = 0;
    while (ring_tail(r) < 2 * 4 * MIB + MIB) {   /* more than a lap */
        uint64_t s = publish_n(r, 0, n++);
        CHECK(s != 0);
        if (ring_tail(r) < 2 * 4 * MIB - MIB)
            old = s;   /* a reader far behind: 2 MiB back at the end */
    }
    const struct ring_record *rec;
    CHECK(ring_peek(r, old, &rec) == RING_OK && record_right(r, rec));
    static uint8_t copy[8192];
    uint32_t len = rec->total_len;
    memcpy(copy, rec, len);
    CHECK(!ring_lapped_since(r, old));   /* the copy counts */
    struct ring_keep keep = {.ns = 0, .bytes = MIB / 2, .hold = 0};
    CHECK(ring_release(r, &keep) > 0);
    /* what it copied before is fine; anything it reads now is not */
    CHECK(ring_lapped_since(r, old));
    CHECK(ring_peek(r, old, &rec) == RING_LAPPED);
    const struct ring_record *raw = (const struct ring_record *)(ring_test_data(r) + (old & (ring_size(r) - 1)));
    CHECK(raw->seq == 0 && raw->committed == 0);   /* the page is gone: zeros */
    ring_destroy(r);
}

/* Resume (SSE Last-Event-ID) from an id that was given back. */
static void test_resume_released(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    CHECK(r != NULL);
    if (!r)
        return;
    uint64_t n = 0, ids[4000];
    size_t nid = 0;
    while (ring_tail(r) < 4 * MIB + 3 * MIB) {
        uint64_t s = publish_n(r, 0, n++);
        CHECK(s != 0);
        if (nid < 4000)
            ids[nid++] = s;
    }
    uint64_t before = ring_oldest_position(r);
    struct ring_keep keep = {.ns = 0, .bytes = MIB, .hold = 0};
    CHECK(ring_release(r, &keep) > 0);
    uint64_t rel = ring_released(r);
    CHECK(rel > before);
    CHECK(ring_oldest_position(r) == rel);
    const struct ring_record *rec;
    int lapped = 0, ok = 0;
    for (size_t i = 0; i < nid; i++) {
        enum ring_status st = ring_find(r, ids[i], &rec);
        if (ids[i] < rel) {
            CHECK(st == RING_LAPPED);
            lapped += st == RING_LAPPED;
        } else {
            CHECK(st == RING_OK && rec->seq == ids[i] && record_right(r, rec));
            ok += st == RING_OK;
        }
    }
    CHECK(lapped > 100 && ok > 100);
    /* the oldest kept record is where a resume from a lost id starts */
    CHECK(ring_find(r, rel, &rec) == RING_OK && record_right(r, rec));
    ring_destroy(r);
}

/* The time bound: records more than keep.ns older than the newest go, the
 * newer stay (the gap between the two batches is far above keep.ns). And
 * hold: nothing at or after it goes. */
static void test_release_time_and_hold(void)
{
    struct ring *r = test_ring_create(4 * MIB);
    CHECK(r != NULL);
    if (!r)
        return;
    uint64_t n = 0, a0 = 0, b0 = 0;
    for (int k = 0; k < 300; k++) {
        uint64_t s = publish_n(r, 0, n++);
        if (k == 0)
            a0 = s;
    }
    struct timespec ts = {2, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    for (int k = 0; k < 100; k++) {
        uint64_t s = publish_n(r, 0, n++);
        if (k == 0)
            b0 = s;
    }
    CHECK(a0 != 0 && b0 > a0);
    /* hold at a record of the first batch: the release stops there */
    const struct ring_record *rec;
    uint64_t hold = a0;
    for (int k = 0; k < 100 && ring_peek(r, hold, &rec) == RING_OK; k++)
        hold = ring_next(rec);
    /* 1 s: the second batch (100 publishes, a millisecond) is within it
     * even on a loaded machine, the first one is 2 s older */
    struct ring_keep keep = {.ns = 1000000000ull, .bytes = 0, .hold = hold};
    ring_release(r, &keep);
    CHECK(ring_released(r) == hold);
    /* without the hold: exactly the first batch goes (the time bound) */
    keep.hold = 0;
    ring_release(r, &keep);
    CHECK(ring_released(r) == b0);
    CHECK(ring_peek(r, b0, &rec) == RING_OK && record_right(r, rec));
    ring_destroy(r);
}

/* Split records referencing chain-table entries, under wrap with releases:
 * every kept record's full JSON (pieces in the chain table) reads back. */
static void test_chaintab_kept(void)
{
    struct ring *r = test_ring_create(2 * MIB);
    CHECK(r != NULL);
    if (!r)
        return;
    static char chain[8][1200], full[6000];
    for (int c = 0; c < 8; c++) {
        gen(chain[c], sizeof chain[c], 1000000 + (uint64_t)c, 0);
        chain[c][0] = '"';
        chain[c][1] = (char)('0' + c);   /* eight different elements */
        chain[c][sizeof chain[c] - 1] = '"';
    }
    struct ring_keep keep = {.ns = 0, .bytes = MIB / 2, .hold = 0};
    uint64_t n = 0;
    int checked = 0;
    while (ring_tail(r) < 2 * MIB * 5) {
        /* full = head + [chain a, chain b] + tail; lite, domains small */
        int a = (int)(n % 8), b = (int)((n / 8) % 8);
        size_t fl = (size_t)snprintf(full, sizeof full, "{\"n\":%" PRIu64 ",\"chain\":[", n);
        struct ring_span sh[2];
        sh[0] = (struct ring_span){(uint32_t)fl, sizeof chain[a]};
        memcpy(full + fl, chain[a], sizeof chain[a]);
        fl += sizeof chain[a];
        full[fl++] = ',';
        sh[1] = (struct ring_span){(uint32_t)fl, sizeof chain[b]};
        memcpy(full + fl, chain[b], sizeof chain[b]);
        fl += sizeof chain[b];
        fl += (size_t)snprintf(full + fl, sizeof full - fl, "]}");
        struct ring_message m;
        memset(&m, 0, sizeof m);
        m.json[RING_FULL] = full;
        m.json_len[RING_FULL] = fl;
        m.json[RING_LITE] = "{\"lite\":1}";
        m.json_len[RING_LITE] = 10;
        m.json[RING_DOMAINS] = "{\"d\":1}";
        m.json_len[RING_DOMAINS] = 7;
        for (int f = 0; f < RING_NFORMATS; f++)
            m.bench_stamp_off[f] = -1;
        m.shared = sh;
        m.n_shared = 2;
        m.cert_index = n;
        uint64_t s = ring_publish(r, 0, &m);
        CHECK(s != 0);
        n++;
        if (n % 64)
            continue;
        ring_release(r, &keep);
        /* every kept record, full JSON byte for byte */
        uint64_t p = ring_released(r), tail = ring_tail(r);
        const struct ring_record *rec;
        static char buf[6000], want[6000];
        while (p < tail && ring_peek(r, p, &rec) == RING_OK) {
            uint64_t k = rec->cert_index;
            int ka = (int)(k % 8), kb = (int)((k / 8) % 8);
            size_t wl = (size_t)snprintf(want, sizeof want, "{\"n\":%" PRIu64 ",\"chain\":[", k);
            memcpy(want + wl, chain[ka], sizeof chain[ka]);
            wl += sizeof chain[ka];
            want[wl++] = ',';
            memcpy(want + wl, chain[kb], sizeof chain[kb]);
            wl += sizeof chain[kb];
            wl += (size_t)snprintf(want + wl, sizeof want - wl, "]}");
            size_t len = 0;
            const char *j = ring_record_json(r, rec, RING_FULL, buf, sizeof buf, &len);
            CHECK(rec->segs[RING_FULL].len != 0);   /* split: the chain is in the table */
            CHECK(j && len == wl && memcmp(j, want, wl) == 0);
            CHECK(!ring_lapped_since(r, p));
            checked++;
            p = ring_next(rec);
        }
        CHECK(p == tail);
    }
    CHECK(checked > 1000);
    ring_release(r, &keep);
    printf("  chain table: %u entries, ring %zu KiB resident\n", chaintab_used(ring_chaintab(r)), resident(r) / 1024);
    CHECK(chaintab_used(ring_chaintab(r)) == 8);   /* one entry per distinct chain element */
    CHECK(resident(r) <= keep.bytes + 2 * g_page);
    ring_destroy(r);
}

/* --- concurrently: producers, a slow reader, a releaser --- */

#define C_WRITERS 2
#define C_SECONDS 4

struct cshared {
    atomic_int stop;
    atomic_ullong published[C_WRITERS];
    atomic_ullong ok, lapped, corrupt, releases, given;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_concurrent(void)
{
    struct cshared *g = mmap(NULL, sizeof *g, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct ring *r = test_ring_create(2 * MIB);
    CHECK(g != MAP_FAILED && r != NULL);
    if (g == MAP_FAILED || !r)
        return;
    memset(g, 0, sizeof *g);
    pid_t pids[C_WRITERS + 2];
    for (int i = 0; i < C_WRITERS + 2; i++) {
        pids[i] = fork();
        if (pids[i] != 0)
            continue;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (i < C_WRITERS) {
            /* producer: message numbers i, i + C_WRITERS, ... */
            for (uint64_t k = (uint64_t)i; !atomic_load(&g->stop); k += C_WRITERS) {
                if (publish_n(r, (unsigned)i, k) == 0)
                    _exit(3);
                atomic_fetch_add(&g->published[i], 1);
                usleep(100);
            }
            _exit(0);
        }
        if (i == C_WRITERS) {
            /* releaser: a small history, every millisecond */
            struct ring_keep keep = {.ns = 0, .bytes = 256 * 1024, .hold = 0};
            while (!atomic_load(&g->stop)) {
                size_t d = ring_release(r, &keep);
                if (d)
                    atomic_fetch_add(&g->releases, 1);
                atomic_fetch_add(&g->given, d);
                usleep(1000);
            }
            _exit(0);
        }
        /* reader: copies slowly, validates, then checks every byte */
        static uint8_t copy[16384];
        uint64_t pos = ring_start_position(r);
        while (!atomic_load(&g->stop)) {
            const struct ring_record *rec;
            enum ring_status st = ring_peek(r, pos, &rec);
            if (st == RING_EMPTY) {
                usleep(100);
                continue;
            }
            if (st != RING_OK) {
                atomic_fetch_add(&g->lapped, 1);
                pos = ring_start_position(r);
                continue;
            }
            uint32_t len = rec->total_len < sizeof copy ? rec->total_len : sizeof copy;
            for (uint32_t o = 0; o < len; o += 1024) {
                memcpy(copy + o, (const uint8_t *)rec + o, len - o < 1024 ? len - o : 1024);
                usleep(30);
            }
            if (ring_lapped_since(r, pos)) {
                atomic_fetch_add(&g->lapped, 1);
                pos = ring_start_position(r);
                continue;
            }
            const struct ring_record *h = (const struct ring_record *)copy;
            bool good = h->seq == pos && h->committed == 1 && h->total_len == len &&
                        h->checksum == test_fnv1a(copy + sizeof *h, len - sizeof *h);
            if (good && h->kind == RING_KIND_MESSAGE) {
                static char want[JSON_LEN];
                for (int f = 0; f < RING_NFORMATS && good; f++) {
                    size_t wl = gen_len(h->cert_index, f);
                    gen(want, wl, h->cert_index, f);
                    good = h->json[f].len == wl && h->json[f].off + wl <= len &&
                           memcmp(copy + h->json[f].off, want, wl) == 0;
                }
            }
            if (good)
                atomic_fetch_add(&g->ok, 1);
            else
                atomic_fetch_add(&g->corrupt, 1);
            pos += h->total_len;
        }
        _exit(0);
    }
    uint64_t t0 = mono_ms();
    while (mono_ms() - t0 < C_SECONDS * 1000u)
        usleep(50000);
    atomic_store(&g->stop, 1);
    bool exited = true;
    for (int i = 0; i < C_WRITERS + 2; i++) {
        int st = 0;
        exited = exited && waitpid(pids[i], &st, 0) == pids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    CHECK(exited);
    unsigned long long pub = g->published[0] + g->published[1];
    printf("  concurrent: %llu published, %llu read intact, %llu lapped (given back), %llu corrupt, "
           "%llu releases, %llu MiB given back\n", pub, (unsigned long long)g->ok,
           (unsigned long long)g->lapped, (unsigned long long)g->corrupt, (unsigned long long)g->releases,
           (unsigned long long)(g->given / MIB));
    CHECK(g->corrupt == 0);
    CHECK(g->ok > 100);
    CHECK(g->lapped > 0);
    CHECK(g->releases > 10);
    CHECK(pub > 2000);
    ring_destroy(r);
    munmap(g, sizeof *g);
}

int main(void)
{
    long page = sysconf(_SC_PAGESIZE);
    g_page = page > 0 ? (size_t)page : 4096;
    alarm(120);
    RUN(test_release_bytes_wrap);
    RUN(test_reader_behind);
    RUN(test_resume_released);
    RUN(test_release_time_and_hold);
    RUN(test_chaintab_kept);
    RUN(test_concurrent);
    return test_report();
}
