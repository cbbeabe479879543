/* test_ring_stress.c - several producer and reader processes on one small ring.
 *
 * Writers (forked) publish records of random size whose content is a pure
 * function of (writer, counter), so a reader can regenerate every byte it
 * should have read. Readers peek, copy, check ring_lapped_since (validate
 * after copy) and only then verify the copy: checksum, frame headers, SSE
 * framing, JSON bytes, and that no record of a writer was skipped while the
 * reader was not lapped. A slow reader is lapped on purpose. Producers are
 * SIGKILLed between claim and commit (test hook) and the parent repairs the
 * ring: readers must wait at the dead record, not skip it, and must catch up
 * with the tail once it is repaired. The run is bounded (~15 s).
 * Prints "N passed, N failed". */
#include "shm/ring.h"
#include "shm/ring_test.h"
#include "test/shm/shm_test.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RING_SZ ((size_t)1 << 20)
#define HDR sizeof(struct ring_record)
#define WRITERS 3
#define FAST_READERS 3
#define READERS (FAST_READERS + 1)          /* the last one is slow */
#define KILLER_ID WRITERS                   /* producer id of the producers we kill */
#define MAIN_SECONDS 6
#define MAX_JSON 60000

struct rstat {
    atomic_ullong ok, msgs, pads, laps, late_laps, torn_caught, corrupt, lost, errors;
    atomic_ullong pos;
    atomic_int waiting;
};

struct shared {
    atomic_int stop;
    atomic_int pause;                 /* writers publish only from quota */
    atomic_int pause_gen;             /* bumped by the parent before each pause */
    atomic_int quota;
    atomic_int quota_done;
    atomic_int paused[WRITERS];       /* pause_gen seen by the writer, between records */
    atomic_ullong published[WRITERS];
    struct rstat r[READERS];
    atomic_ullong stop_pos;           /* killer: where it was stopped */
    atomic_int stop_phase;
};

static struct shared *g;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Length of format f of record (w, n): mostly small, sometimes large. */
static size_t gen_len(unsigned w, uint64_t n, int f)
{
    uint64_t h = mix((uint64_t)w << 48 ^ n);
    size_t base = (h % 20 == 0) ? 20000 + (size_t)(h >> 8) % (MAX_JSON - 20000) : 64 + (size_t)(h >> 8) % 2000;
    return base / (size_t)(f + 1) + 40;
}

/* The bytes of format f of record (w, n). Returns the length. */
static size_t gen_json(char *out, unsigned w, uint64_t n, int f)
{
    size_t len = gen_len(w, n, f);
    int p = snprintf(out, len, "{\"w\":%u,\"n\":%" PRIu64 ",\"f\":%d,\"d\":\"", w, n, f);
    uint64_t x = mix((uint64_t)w * 1000003u + n * 7u + (uint64_t)f);
    for (size_t i = (size_t)p; i < len - 2; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (char)('a' + x % 26);
    }
    out[len - 2] = '"';
    out[len - 1] = '}';
    return len;
}

static bool span_ok(const struct ring_span *s, uint32_t total)
{
    return s->off >= HDR && (uint64_t)s->off + s->len <= total;
}

/* Verifies a copied record against what was published at pos. Returns a
 * short reason or NULL. */
static const char *verify(const uint8_t *buf, uint64_t pos, char *gen)
{
    const struct ring_record *h = (const void *)buf;
    if (h->seq != pos || h->committed != 1)
        return "header seq/committed";
    if (h->total_len < HDR || h->total_len % RING_ALIGN != 0 || h->total_len > RING_SZ / 4)
        return "total_len";
    if (h->checksum != test_fnv1a(buf + HDR, h->total_len - HDR))
        return "checksum";
    if (h->kind == RING_KIND_PAD)
        return NULL;
    if (h->kind != RING_KIND_MESSAGE)
        return "kind";
    char head[48];
    int hl = snprintf(head, sizeof head, "id: %" PRIu64 "\ndata: ", pos);
    if (!span_ok(&h->sse_head, h->total_len) || h->sse_head.len != (uint32_t)hl ||
        memcmp(buf + h->sse_head.off, head, (size_t)hl) != 0)
        return "sse_head";
    for (int f = 0; f < RING_NFORMATS; f++) {
        if (!span_ok(&h->ws[f], h->total_len) || !span_ok(&h->json[f], h->total_len) ||
            !span_ok(&h->sse_tail[f], h->total_len))
            return "span bounds";
        uint64_t flen;
        size_t hlen = ws_decode(buf + h->ws[f].off, &flen);
        if (hlen == 0 || flen != h->json[f].len || h->ws[f].len != hlen + flen ||
            h->json[f].off != h->ws[f].off + hlen)
            return "ws frame";
        if (h->sse_tail[f].off != h->json[f].off || h->sse_tail[f].len != h->json[f].len + 2 ||
            memcmp(buf + h->json[f].off + h->json[f].len, "\n\n", 2) != 0)
            return "sse tail";
        size_t n = gen_json(gen, h->log_id, h->cert_index, f);
        if (n != h->json[f].len || memcmp(gen, buf + h->json[f].off, n) != 0)
            return "json bytes";
    }
    return NULL;
}

static void writer(struct ring *r, unsigned w)
{
    static char json[RING_NFORMATS][MAX_JSON + 64];
    uint64_t n = 0;
    while (!atomic_load(&g->stop)) {
        bool from_quota = false;
        if (atomic_load(&g->pause)) {
            atomic_store(&g->paused[w], atomic_load(&g->pause_gen));
            if (atomic_fetch_sub(&g->quota, 1) <= 0) {
                atomic_fetch_add(&g->quota, 1);
                sleep_us(200);
                continue;
            }
            from_quota = true;
        }
        struct ring_message m = {.cert_index = n, .log_id = w};
        for (int f = 0; f < RING_NFORMATS; f++) {
            m.json_len[f] = gen_json(json[f], w, n, f);
            m.json[f] = json[f];
            m.bench_stamp_off[f] = -1;
        }
        if (ring_publish(r, w, &m) == 0) {
            fprintf(stderr, "writer %u: publish failed\n", w);
            _exit(1);
        }
        atomic_fetch_add(&g->published[w], 1);
        if (from_quota)
            atomic_fetch_add(&g->quota_done, 1);
        n++;
        ring_notify(r);
        if (n % 4 == 0)
            sleep_us(1000);
    }
    _exit(0);
}

static void reader(struct ring *r, unsigned j, bool slow)
{
    static uint8_t buf[RING_SZ / 4];
    static char gen[MAX_JSON + 64];
    int64_t last_n[WRITERS];
    struct rstat *st = &g->r[j];
    int efd = ring_waiter_fd(r, j);
    uint64_t pos = ring_start_position(r);
    unsigned reported = 0;
    for (int w = 0; w < WRITERS; w++)
        last_n[w] = -1;
    for (;;) {
        atomic_store(&st->pos, pos);
        const struct ring_record *rec = NULL;
        enum ring_status s = ring_peek(r, pos, &rec);
        if (s == RING_EMPTY) {
            if (atomic_load(&g->stop) == 2 && pos == ring_tail(r))
                break;
            atomic_store(&st->waiting, 1);
            struct pollfd pfd = {.fd = efd, .events = POLLIN};
            if (poll(&pfd, 1, 5) == 1) {
                uint64_t v;
                if (read(efd, &v, sizeof v) != (ssize_t)sizeof v)
                    atomic_fetch_add(&st->errors, 1);
            }
            atomic_store(&st->waiting, 0);
            continue;
        }
        if (s == RING_LAPPED || s == RING_ERROR) {
            atomic_fetch_add(s == RING_LAPPED ? &st->laps : &st->errors, 1);
            pos = ring_start_position(r);
            for (int w = 0; w < WRITERS; w++)
                last_n[w] = -1;
            continue;
        }
        uint32_t len = rec->total_len;
        if (len > sizeof buf)
            len = sizeof buf;
        if (slow) {
            /* Copy slowly, so that writers often overwrite the record while
             * it is being copied: validate-after-copy must catch every one. */
            sleep_us(2000);
            for (uint32_t o = 0; o < len; o += 4096) {
                memcpy(buf + o, (const uint8_t *)rec + o, len - o < 4096 ? len - o : 4096);
                sleep_us(50);
            }
        } else {
            memcpy(buf, rec, len);
        }
        if (ring_lapped_since(r, pos)) {
            atomic_fetch_add(&st->late_laps, 1);
            if (verify(buf, pos, gen) != NULL)
                atomic_fetch_add(&st->torn_caught, 1);
            pos = ring_start_position(r);
            for (int w = 0; w < WRITERS; w++)
                last_n[w] = -1;
            continue;
        }
        const char *why = verify(buf, pos, gen);
        if (why) {
            atomic_fetch_add(&st->corrupt, 1);
            if (reported++ < 5)
                fprintf(stderr, "reader %u: corrupt record at %" PRIu64 ": %s\n", j, pos, why);
            pos = ring_start_position(r);
            continue;
        }
        const struct ring_record *h = (const void *)buf;
        atomic_fetch_add(&st->ok, 1);
        if (h->kind == RING_KIND_PAD) {
            atomic_fetch_add(&st->pads, 1);
        } else {
            atomic_fetch_add(&st->msgs, 1);
            unsigned w = h->log_id;
            if (w < WRITERS) {
                if (last_n[w] >= 0 && (int64_t)h->cert_index != last_n[w] + 1) {
                    atomic_fetch_add(&st->lost, 1);
                    if (reported++ < 5)
                        fprintf(stderr, "reader %u: writer %u jumped %" PRId64 " -> %" PRIu64 "\n", j, w,
                                last_n[w], h->cert_index);
                }
                last_n[w] = (int64_t)h->cert_index;
            }
        }
        pos += h->total_len;
    }
    _exit(0);
}

static void stop_hook(enum ring_test_phase phase, uint64_t pos, void *arg)
{
    (void)arg;
    if ((int)phase == atomic_load(&g->stop_phase)) {
        atomic_store(&g->stop_pos, pos);
        raise(SIGSTOP);
    }
}

/* A producer that publishes `before` records and stops at `phase` in the next. */
static pid_t spawn_killer(struct ring *r, enum ring_test_phase phase, unsigned before)
{
    atomic_store(&g->stop_phase, -1);
    pid_t pid = fork();
    if (pid == 0) {
        static char json[RING_NFORMATS][MAX_JSON + 64];
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        ring_test_set_hook(stop_hook, NULL);
        for (unsigned i = 0; i <= before; i++) {
            if (i == before)
                atomic_store(&g->stop_phase, (int)phase);
            struct ring_message m = {.cert_index = i, .log_id = 99};
            for (int f = 0; f < RING_NFORMATS; f++) {
                m.json_len[f] = gen_json(json[f], 99, i, f);
                m.json[f] = json[f];
                m.bench_stamp_off[f] = -1;
            }
            ring_publish(r, KILLER_ID, &m);
        }
        _exit(3);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st))
        return -1;
    return pid;
}

/* Waits up to ms for cond over all fast readers. */
static bool wait_readers(bool (*cond)(unsigned j, uint64_t arg), uint64_t arg, unsigned ms)
{
    uint64_t end = mono_ms() + ms;
    for (;;) {
        bool all = true;
        for (unsigned j = 0; j < FAST_READERS; j++)
            all = all && cond(j, arg);
        if (all)
            return true;
        if (mono_ms() > end)
            return false;
        sleep_us(2000);
    }
}

static bool at_pos(unsigned j, uint64_t pos)
{
    return atomic_load(&g->r[j].pos) == pos && atomic_load(&g->r[j].waiting);
}

static struct ring *g_ring;

static bool at_tail(unsigned j, uint64_t unused)
{
    (void)unused;
    return atomic_load(&g->r[j].pos) == ring_tail(g_ring) && atomic_load(&g->r[j].waiting);
}

/* Pauses the writers: true once each has acknowledged, between two records. */
static bool pause_writers(void)
{
    atomic_store(&g->quota, 0);
    int gen = atomic_fetch_add(&g->pause_gen, 1) + 1;
    atomic_store(&g->pause, 1);
    uint64_t end = mono_ms() + 30000;   /* awaited: generous for a loaded machine */
    for (;;) {
        bool all = true;
        for (unsigned w = 0; w < WRITERS; w++)
            all = all && atomic_load(&g->paused[w]) == gen;
        if (all)
            return true;
        if (mono_ms() > end)
            return false;
        sleep_us(1000);
    }
}

/* Paused writers publish exactly n more records between them. */
static bool writers_publish(int n)
{
    atomic_store(&g->quota_done, 0);
    atomic_store(&g->quota, n);
    uint64_t end = mono_ms() + 30000;   /* awaited: generous for a loaded machine */
    while (atomic_load(&g->quota_done) < n) {
        if (mono_ms() > end)
            return false;
        sleep_us(1000);
    }
    return true;
}

static void print_stats(void)
{
    for (unsigned j = 0; j < READERS; j++) {
        struct rstat *s = &g->r[j];
        fprintf(stderr,
                "  reader %u%s: ok %llu (msgs %llu, pads %llu), laps %llu, late laps %llu (torn copies "
                "caught %llu), corrupt %llu, lost %llu, errors %llu\n",
                j, j == READERS - 1 ? " (slow)" : "", (unsigned long long)s->ok, (unsigned long long)s->msgs,
                (unsigned long long)s->pads, (unsigned long long)s->laps, (unsigned long long)s->late_laps,
                (unsigned long long)s->torn_caught, (unsigned long long)s->corrupt, (unsigned long long)s->lost, (unsigned long long)s->errors);
    }
    for (unsigned w = 0; w < WRITERS; w++)
        fprintf(stderr, "  writer %u: published %llu\n", w, (unsigned long long)g->published[w]);
}

static pid_t g_pids[WRITERS + READERS];

static void run_main_phase(void)
{
    uint64_t t0 = mono_ms();
    /* One producer dies mid-record under full load, halfway through. */
    sleep_us(MAIN_SECONDS * 500000);
    pid_t k = spawn_killer(g_ring, RING_TEST_WRITTEN, 20);
    CHECK(k > 0);
    sleep_us(200000);
    CHECK(k > 0 && kill_reap(k));
    ring_repair(g_ring, KILLER_ID);
    ring_notify(g_ring);
    while (mono_ms() - t0 < MAIN_SECONDS * 1000u)
        sleep_us(50000);
    for (unsigned j = 0; j < READERS; j++)
        CHECK(atomic_load(&g->r[j].corrupt) == 0);
}

/* Writers paused, readers at the tail; a producer dies in `phase`, the
 * writers add records after it; readers must wait exactly there; after the
 * repair they must reach the tail. */
static void run_kill_phase(enum ring_test_phase phase)
{
    unsigned long long pads0[FAST_READERS];
    CHECK(pause_writers());
    CHECK(wait_readers(at_tail, 0, 30000));
    for (unsigned j = 0; j < FAST_READERS; j++)
        pads0[j] = atomic_load(&g->r[j].pads);
    uint64_t tail0 = ring_tail(g_ring);
    pid_t k = spawn_killer(g_ring, phase, 0);
    CHECK(k > 0);
    if (k <= 0)
        return;
    uint64_t c = atomic_load(&g->stop_pos);
    CHECK(c == tail0);
    CHECK(writers_publish(20));            /* 20 records committed after the dead one */
    CHECK(ring_tail(g_ring) > c);
    CHECK(wait_readers(at_pos, c, 30000));  /* they wait at the dead record... */
    sleep_us(50000);
    CHECK(wait_readers(at_pos, c, 10));    /* ...and stay there */
    CHECK(kill_reap(k));
    ring_repair(g_ring, KILLER_ID);
    ring_notify(g_ring);
    CHECK(wait_readers(at_tail, 0, 30000)); /* never stuck after the repair */
    for (unsigned j = 0; j < FAST_READERS; j++)
        CHECK(atomic_load(&g->r[j].pads) == pads0[j] + 1);
    atomic_store(&g->pause, 0);
}

static void run_kill_claimed(void) { run_kill_phase(RING_TEST_CLAIMED); }
static void run_kill_opened(void) { run_kill_phase(RING_TEST_OPENED); }
static void run_kill_written(void) { run_kill_phase(RING_TEST_WRITTEN); }

static void run_finish(void)
{
    sleep_us(1000000);
    atomic_store(&g->stop, 1);
    bool ok = true;
    for (unsigned w = 0; w < WRITERS; w++) {
        int st = 0;
        ok = ok && waitpid(g_pids[w], &st, 0) == g_pids[w] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    CHECK(ok);
    atomic_store(&g->stop, 2);   /* readers drain to the tail and exit */
    ring_notify(g_ring);
    for (unsigned j = 0; j < READERS; j++) {
        int st = 0;
        ok = waitpid(g_pids[WRITERS + j], &st, 0) == g_pids[WRITERS + j] && WIFEXITED(st) &&
             WEXITSTATUS(st) == 0;
        CHECK(ok);
    }
    print_stats();
    unsigned long long total = 0;
    for (unsigned w = 0; w < WRITERS; w++)
        total += g->published[w];
    CHECK(total > 3000);
    for (unsigned j = 0; j < READERS; j++) {
        struct rstat *s = &g->r[j];
        CHECK(s->corrupt == 0);   /* zero corrupt reads accepted */
        CHECK(s->lost == 0);      /* no record skipped while not lapped */
        CHECK(s->errors == 0);
        if (j < FAST_READERS) {
            CHECK(s->msgs > total / 10);
            CHECK(s->pads >= 3);
        } else {
            CHECK(s->laps + s->late_laps > 0);   /* the slow reader was lapped */
            CHECK(s->torn_caught > 0);   /* and copied torn records, all caught */
            CHECK(s->msgs > 100);
        }
    }
}

int main(void)
{
    g = mmap(NULL, sizeof *g, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(g, 0, sizeof *g);
    alarm(90);   /* a hang fails the test instead of blocking CI */
    g_ring = test_ring_create(RING_SZ);
    if (!g_ring) {
        perror("ring_create");
        return 1;
    }
    for (unsigned j = 0; j < READERS; j++) {
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (efd < 0 || ring_add_waiter(g_ring, efd) != 0) {
            perror("eventfd");
            return 1;
        }
    }
    for (unsigned i = 0; i < WRITERS + READERS; i++) {
        g_pids[i] = fork();
        if (g_pids[i] < 0) {
            perror("fork");
            return 1;
        }
        if (g_pids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (i < WRITERS)
                writer(g_ring, i);
            else
                reader(g_ring, i - WRITERS, i == WRITERS + READERS - 1);
        }
    }
    RUN(run_main_phase);
    RUN(run_kill_claimed);
    RUN(run_kill_opened);
    RUN(run_kill_written);
    RUN(run_finish);
    return test_report();
}
