/* test_ring.c - unit tests of the broadcast ring (shm/ring.c).
 *
 * Every expectation is written from the outside: WebSocket frame headers are
 * compared with the bytes RFC 6455 section 5.2 prescribes, SSE framing with
 * WIRE.md's "id: <seq>\ndata: <json>\n\n", checksums with an independent
 * FNV-1a. Producers that die mid-record are real forked processes stopped by
 * the test hook and killed with SIGKILL. */
#include "shm/ring.h"
#include "shm/ring_test.h"
#include "test/shm/shm_test.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define HDR sizeof(struct ring_record)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Deterministic printable JSON-ish bytes: {"f":F,"n":N,"d":"...."} padded to len. */
static void fill_json(char *buf, size_t len, unsigned f, unsigned n)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (i * 7 + f * 3 + n) % 26);
    if (len >= 2) {
        buf[0] = '{';
        buf[len - 1] = '}';
    }
}

struct msgbuf {
    char *json[RING_NFORMATS];
    struct ring_message m;
};

static void msg_make(struct msgbuf *b, size_t l0, size_t l1, size_t l2, unsigned n)
{
    size_t lens[RING_NFORMATS] = {l0, l1, l2};
    memset(b, 0, sizeof *b);
    for (int f = 0; f < RING_NFORMATS; f++) {
        b->json[f] = malloc(lens[f] ? lens[f] : 1);
        fill_json(b->json[f], lens[f], (unsigned)f, n);
        b->m.json[f] = b->json[f];
        b->m.json_len[f] = lens[f];
        b->m.bench_stamp_off[f] = -1;
    }
    b->m.cert_index = 1000000000000ull + n;
    b->m.log_id = n % 7;
}

static void msg_free(struct msgbuf *b)
{
    for (int f = 0; f < RING_NFORMATS; f++)
        free(b->json[f]);
}

/* Checks every span of rec against msg b. */
static void check_record(const struct ring_record *rec, uint64_t seq, const struct msgbuf *b)
{
    const uint8_t *base = ring_record_bytes(rec);
    CHECK(rec->seq == seq);
    CHECK(rec->kind == RING_KIND_MESSAGE);
    CHECK(rec->committed == 1);
    CHECK(rec->total_len % RING_ALIGN == 0);
    CHECK(rec->cert_index == b->m.cert_index);
    CHECK(rec->log_id == b->m.log_id);
    CHECK(rec->checksum == test_fnv1a(base + HDR, rec->total_len - HDR));

    char head[64];
    int hl = snprintf(head, sizeof head, "id: %" PRIu64 "\ndata: ", seq);
    CHECK(rec->sse_head.len == (uint32_t)hl);
    CHECK(rec->sse_head.off >= HDR && rec->sse_head.off + rec->sse_head.len <= rec->total_len);
    CHECK(memcmp(base + rec->sse_head.off, head, (size_t)hl) == 0);

    for (int f = 0; f < RING_NFORMATS; f++) {
        size_t n = b->m.json_len[f];
        const struct ring_span *ws = &rec->ws[f], *js = &rec->json[f], *st = &rec->sse_tail[f];
        CHECK(ws->off >= HDR && (uint64_t)ws->off + ws->len <= rec->total_len);
        CHECK(st->off >= HDR && (uint64_t)st->off + st->len <= rec->total_len);
        uint64_t flen = 0;
        size_t h = ws_decode(base + ws->off, &flen);
        CHECK(h != 0);
        CHECK(flen == n);
        CHECK(ws->len == h + n);
        CHECK(js->off == ws->off + h && js->len == n);
        CHECK(memcmp(base + js->off, b->m.json[f], n) == 0);
        CHECK(st->off == js->off && st->len == n + 2);
        CHECK(memcmp(base + st->off + n, "\n\n", 2) == 0);
    }
}

static void test_create_sizes(void)
{
    size_t bad[] = {0, 4096, MIB / 2, MIB - 64, MIB + 4096, 3 * MIB};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        struct ring *r = test_ring_create(bad[i]);
        CHECK(r == NULL);
        CHECK(errno == EINVAL);
        ring_destroy(r);
    }
    struct ring *r = test_ring_create(4 * MIB);
    CHECK(r != NULL);
    if (!r)
        return;
    CHECK(ring_size(r) == 4 * MIB);
    CHECK(ring_tail(r) == ring_start_position(r));
    CHECK(ring_tail(r) != 0 && ring_tail(r) % RING_ALIGN == 0);
    CHECK(ring_oldest_position(r) <= ring_tail(r));
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, ring_tail(r), &rec) == RING_EMPTY);
    CHECK(ring_peek(r, ring_tail(r) + 64, &rec) == RING_ERROR);
    CHECK(ring_peek(r, ring_tail(r) + 1, &rec) == RING_ERROR);
    ring_destroy(r);
}

static void test_round_trip(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    struct msgbuf b;
    msg_make(&b, 1234, 300, 17, 1);
    uint64_t t0 = now_ns();
    uint64_t start = ring_tail(r);
    uint64_t seq = ring_publish(r, 0, &b.m);
    uint64_t t1 = now_ns();
    CHECK(seq == start);
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, seq, &rec) == RING_OK);
    if (rec) {
        check_record(rec, seq, &b);
        CHECK(rec->commit_ns >= t0 && rec->commit_ns <= t1);
        CHECK(ring_next(rec) == ring_tail(r));
        /* header + sse head + frames + "\n\n" x3, aligned */
        size_t raw = HDR + (size_t)rec->sse_head.len + (4 + 1234 + 2) + (4 + 300 + 2) + (2 + 17 + 2);
        CHECK(rec->total_len == ((raw + 63) & ~(size_t)63));
        const struct ring_record *again = NULL;
        CHECK(ring_peek(r, ring_next(rec), &again) == RING_EMPTY);
        CHECK(!ring_lapped_since(r, seq));
    }
    /* A second record follows the first. */
    struct msgbuf b2;
    msg_make(&b2, 0, 1, 2, 2);
    uint64_t seq2 = ring_publish(r, 3, &b2.m);
    CHECK(rec && seq2 == ring_next(rec));
    const struct ring_record *rec2 = NULL;
    CHECK(ring_peek(r, seq2, &rec2) == RING_OK);
    if (rec2)
        check_record(rec2, seq2, &b2);
    msg_free(&b);
    msg_free(&b2);
    ring_destroy(r);
}

/* RFC 6455 5.2: 7-bit length up to 125, 126 + 16-bit, 127 + 64-bit (MSB 0). */
static void test_frame_headers(void)
{
    struct { size_t n; uint8_t hdr[10]; size_t hl; } cases[] = {
        {0, {0x81, 0x00}, 2},
        {1, {0x81, 0x01}, 2},
        {125, {0x81, 0x7d}, 2},
        {126, {0x81, 0x7e, 0x00, 0x7e}, 4},
        {127, {0x81, 0x7e, 0x00, 0x7f}, 4},
        {65535, {0x81, 0x7e, 0xff, 0xff}, 4},
        {65536, {0x81, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}, 10},
        {70000, {0x81, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70}, 10},
    };
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct msgbuf b;
        msg_make(&b, cases[i].n, cases[i].n, 5, (unsigned)i);
        uint64_t seq = ring_publish(r, 1, &b.m);
        CHECK(seq != 0);
        const struct ring_record *rec = NULL;
        CHECK(ring_peek(r, seq, &rec) == RING_OK);
        if (rec) {
            const uint8_t *ws = ring_record_bytes(rec) + rec->ws[0].off;
            CHECK(memcmp(ws, cases[i].hdr, cases[i].hl) == 0);
            CHECK(rec->ws[0].len == cases[i].hl + cases[i].n);
            check_record(rec, seq, &b);
        }
        msg_free(&b);
    }
    ring_destroy(r);
}

/* Records that cross the end of the data area read as one contiguous block. */
static void test_wrap_contiguity(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    unsigned wrapped = 0, checked = 0;
    for (unsigned n = 0; n < 400; n++) {
        struct msgbuf b;
        msg_make(&b, 5000 + n * 37 % 9000, 777 + n, 33, n);
        uint64_t seq = ring_publish(r, 0, &b.m);
        const struct ring_record *rec = NULL;
        CHECK(ring_peek(r, seq, &rec) == RING_OK);
        if (rec) {
            check_record(rec, seq, &b);
            checked++;
            if ((seq % MIB) + rec->total_len > MIB)
                wrapped++;
        }
        msg_free(&b);
    }
    CHECK(checked == 400);
    CHECK(wrapped >= 2);
    ring_destroy(r);
}

/* What a client receives: a WebSocket client one iovec per record (ws span),
 * an SSE client two (sse_head, sse_tail), through the kernel with writev,
 * including records that wrap. A span that points past the ring (a torn
 * header) faults in the kernel instead of sending other memory. */
static void test_writev_wire(void)
{
    struct ring *r = test_ring_create(MIB);
    int sv[2];
    if (!r || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        CHECK(r != NULL);
        ring_destroy(r);
        return;
    }
    static uint8_t got[1 << 18];
    char want[1 << 16];
    unsigned wrapped = 0;
    for (unsigned n = 0; n < 120; n++) {
        struct msgbuf b;
        msg_make(&b, 9000 + n * 101 % 4000, 2000, 300, n);
        uint64_t seq = ring_publish(r, 0, &b.m);
        const struct ring_record *rec = NULL;
        CHECK(ring_peek(r, seq, &rec) == RING_OK);
        if (!rec) {
            msg_free(&b);
            break;
        }
        wrapped += (seq % MIB) + rec->total_len > MIB;
        const uint8_t *base = ring_record_bytes(rec);
        /* WebSocket, lite stream: one iovec. */
        struct iovec ws = {(void *)(base + rec->ws[RING_LITE].off), rec->ws[RING_LITE].len};
        CHECK(writev(sv[0], &ws, 1) == (ssize_t)ws.iov_len);
        CHECK(read(sv[1], got, sizeof got) == (ssize_t)(4 + 2000));
        CHECK(got[0] == 0x81 && got[1] == 126 && got[2] == 0x07 && got[3] == 0xd0);
        CHECK(memcmp(got + 4, b.json[RING_LITE], 2000) == 0);
        /* SSE, full stream: two iovecs. */
        struct iovec sse[2] = {{(void *)(base + rec->sse_head.off), rec->sse_head.len},
                               {(void *)(base + rec->sse_tail[RING_FULL].off), rec->sse_tail[RING_FULL].len}};
        size_t total = sse[0].iov_len + sse[1].iov_len;
        CHECK(writev(sv[0], sse, 2) == (ssize_t)total);
        size_t have = 0;
        while (have < total) {
            ssize_t k = read(sv[1], got + have, sizeof got - have);
            if (k <= 0)
                break;
            have += (size_t)k;
        }
        int wl = snprintf(want, sizeof want, "id: %" PRIu64 "\ndata: %.*s\n\n", seq, (int)b.m.json_len[RING_FULL],
                          b.json[RING_FULL]);
        CHECK(have == (size_t)wl && memcmp(got, want, (size_t)wl) == 0);
        if (n == 119) {
            /* A garbage span: past both mappings, into the guard. */
            struct iovec bad = {(void *)(base + 0xfffff000u + 0xfff00000u), 4096};
            errno = 0;
            CHECK(writev(sv[0], &bad, 1) == -1 && errno == EFAULT);
        }
        msg_free(&b);
    }
    CHECK(wrapped >= 1);
    close(sv[0]);
    close(sv[1]);
    ring_destroy(r);
}

static void test_lapping(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    struct msgbuf b;
    msg_make(&b, 9000, 3000, 100, 7);
    uint64_t first = ring_publish(r, 0, &b.m);
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, first, &rec) == RING_OK);
    uint32_t first_len = rec ? rec->total_len : 0;
    /* Validate-after-copy: copy while intact, then watch it get overwritten. */
    uint8_t *copy = malloc(first_len ? first_len : 1);
    if (rec)
        memcpy(copy, rec, first_len);
    CHECK(!ring_lapped_since(r, first));
    uint64_t seqs[200];
    unsigned n = 0;
    while (ring_tail(r) <= first + MIB && n < 200) {
        CHECK(!ring_lapped_since(r, first));
        CHECK(ring_peek(r, first, &rec) == RING_OK);
        CHECK(rec && memcmp(rec, copy, first_len) == 0);   /* still intact */
        CHECK(ring_find(r, first, &rec) == RING_OK || ring_oldest_position(r) > first);
        seqs[n++] = ring_publish(r, 0, &b.m);
    }
    CHECK(ring_tail(r) > first + MIB);
    CHECK(ring_lapped_since(r, first));
    CHECK(ring_peek(r, first, &rec) == RING_LAPPED);
    CHECK(ring_find(r, first, &rec) == RING_LAPPED);
    /* A record not yet overwritten is still readable and intact. */
    uint64_t last = seqs[n - 1];
    CHECK(ring_peek(r, last, &rec) == RING_OK);
    if (rec)
        check_record(rec, last, &b);
    CHECK(!ring_lapped_since(r, last));
    /* Every record below tail - size reports LAPPED, every one above is OK. */
    for (unsigned i = 0; i < n; i++) {
        enum ring_status st = ring_peek(r, seqs[i], &rec);
        bool over = ring_tail(r) - seqs[i] > MIB;
        CHECK(st == (over ? RING_LAPPED : RING_OK));
        CHECK(ring_lapped_since(r, seqs[i]) == over);
    }
    uint64_t oldest = ring_oldest_position(r);
    CHECK(oldest >= ring_tail(r) - MIB && oldest <= ring_tail(r));
    free(copy);
    msg_free(&b);
    ring_destroy(r);
}

static void test_find(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    const struct ring_record *rec = NULL;
    CHECK(ring_find(r, 0, &rec) == RING_ERROR);
    CHECK(ring_find(r, ring_tail(r), &rec) == RING_ERROR);   /* nothing there yet */
    uint64_t seqs[20];
    struct msgbuf b[20];
    for (unsigned i = 0; i < 20; i++) {
        msg_make(&b[i], 2000 + i, 500, 60, i);
        seqs[i] = ring_publish(r, i % 4, &b[i].m);
    }
    for (unsigned i = 0; i < 20; i++) {
        CHECK(ring_find(r, seqs[i], &rec) == RING_OK);
        if (rec) {
            CHECK(rec == (const struct ring_record *)NULL || rec->seq == seqs[i]);
            check_record(rec, seqs[i], &b[i]);
            if (i + 1 < 20)
                CHECK(ring_next(rec) == seqs[i + 1]);
        }
        CHECK(ring_find(r, seqs[i] + RING_ALIGN, &rec) == RING_ERROR);   /* inside a record */
        CHECK(ring_find(r, seqs[i] + 1, &rec) == RING_ERROR);            /* unaligned */
    }
    CHECK(ring_find(r, ring_tail(r), &rec) == RING_ERROR);
    CHECK(ring_find(r, ring_tail(r) + 4096, &rec) == RING_ERROR);
    CHECK(ring_find(r, seqs[0] - RING_ALIGN, &rec) == RING_ERROR);       /* before the start */
    /* Push them out: too old is LAPPED, never OK. */
    while (ring_oldest_position(r) <= seqs[19])
        ring_publish(r, 0, &b[0].m);
    for (unsigned i = 0; i < 20; i++)
        CHECK(ring_find(r, seqs[i], &rec) == RING_LAPPED);
    for (unsigned i = 0; i < 20; i++)
        msg_free(&b[i]);
    ring_destroy(r);
}

static void test_oversized(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    uint64_t tail = ring_tail(r);
    struct msgbuf b;
    msg_make(&b, MIB / 4, 10, 10, 1);                    /* clearly too big */
    CHECK(ring_publish(r, 0, &b.m) == 0);
    msg_free(&b);
    msg_make(&b, MIB / 12, MIB / 12, MIB / 12, 1);       /* sum of three > size/4 */
    CHECK(ring_publish(r, 0, &b.m) == 0);
    msg_free(&b);
    CHECK(ring_tail(r) == tail);
    msg_make(&b, MIB / 4 - 1024, 10, 10, 1);             /* just fits */
    uint64_t seq = ring_publish(r, 0, &b.m);
    CHECK(seq == tail);
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, seq, &rec) == RING_OK);
    if (rec) {
        CHECK(rec->total_len <= MIB / 4);
        check_record(rec, seq, &b);
    }
    CHECK(ring_publish(r, RING_MAX_PRODUCERS, &b.m) == 0);   /* bad producer id */
    CHECK(ring_publish(r, 0, NULL) == 0);
    struct ring_message bad = b.m;
    bad.json[1] = NULL;                                  /* NULL with a length */
    CHECK(ring_publish(r, 0, &bad) == 0);
    msg_free(&b);
    ring_destroy(r);
}

static void test_bench_stamp(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    const char *tmpl = "{\"seen\":XXXXXXXXXXXXXXXXX,\"a\":1}";   /* 17 X at offset 8 */
    size_t tl = strlen(tmpl);
    struct ring_message m;
    memset(&m, 0, sizeof m);
    for (int f = 0; f < RING_NFORMATS; f++) {
        m.json[f] = tmpl;
        m.json_len[f] = tl;
    }
    m.bench_stamp_off[0] = 8;                 /* stamped */
    m.bench_stamp_off[1] = -1;                /* not used */
    m.bench_stamp_off[2] = (long)tl - 16;     /* does not fit: ignored */
    uint64_t seq = ring_publish(r, 0, &m);
    CHECK(strcmp(m.json[0], tmpl) == 0);      /* caller's bytes untouched */
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, seq, &rec) == RING_OK);
    if (rec) {
        const char *j0 = (const char *)ring_record_bytes(rec) + rec->json[0].off;
        char want[32];
        uint64_t us = rec->commit_ns / 1000;
        snprintf(want, sizeof want, "%010llu.%06llu", (unsigned long long)(us / 1000000),
                 (unsigned long long)(us % 1000000));
        CHECK(strlen(want) == RING_BENCH_STAMP_LEN);
        CHECK(memcmp(j0, tmpl, 8) == 0);
        CHECK(memcmp(j0 + 8, want, RING_BENCH_STAMP_LEN) == 0);
        CHECK(memcmp(j0 + 25, tmpl + 25, tl - 25) == 0);
        for (int f = 1; f < RING_NFORMATS; f++)
            CHECK(memcmp(ring_record_bytes(rec) + rec->json[f].off, tmpl, tl) == 0);
        CHECK(rec->checksum == test_fnv1a(ring_record_bytes(rec) + HDR, rec->total_len - HDR));
    }
    ring_destroy(r);
}

static void test_checksums_switch(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    struct msgbuf b;
    msg_make(&b, 700, 70, 7, 3);
    ring_set_checksums(r, false);
    uint64_t s1 = ring_publish(r, 0, &b.m);
    ring_set_checksums(r, true);
    uint64_t s2 = ring_publish(r, 0, &b.m);
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, s1, &rec) == RING_OK);
    if (rec) {
        CHECK(rec->checksum == 0);
        CHECK(rec->json[0].len == 700 && memcmp(ring_record_bytes(rec) + rec->json[0].off, b.json[0], 700) == 0);
    }
    CHECK(ring_peek(r, s2, &rec) == RING_OK);
    if (rec)
        check_record(rec, s2, &b);
    msg_free(&b);
    ring_destroy(r);
}

static void test_notify(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        CHECK(fds[i] >= 0);
        CHECK(ring_add_waiter(r, fds[i]) == 0);
        CHECK(ring_waiter_fd(r, (unsigned)i) == fds[i]);
    }
    CHECK(ring_waiter_fd(r, 3) == -1);
    CHECK(ring_add_waiter(r, -1) == -1);
    ring_notify(r);
    ring_notify(r);
    for (int i = 0; i < 3; i++) {
        uint64_t v = 0;
        CHECK(read(fds[i], &v, sizeof v) == (ssize_t)sizeof v);
        CHECK(v == 2);
    }
    /* A saturated eventfd must not block the producer. */
    uint64_t big = UINT64_MAX - 1;
    CHECK(write(fds[1], &big, sizeof big) == (ssize_t)sizeof big);
    ring_notify(r);
    uint64_t v = 0;
    CHECK(read(fds[0], &v, sizeof v) == (ssize_t)sizeof v && v == 1);
    CHECK(read(fds[2], &v, sizeof v) == (ssize_t)sizeof v && v == 1);
    /* Waiters are inherited by a child: it can wake the parent. */
    pid_t pid = fork();
    if (pid == 0) {
        ring_notify(r);
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    CHECK(poll(&pfd, 1, 1000) == 1);
    CHECK(read(fds[0], &v, sizeof v) == (ssize_t)sizeof v && v == 1);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    ring_destroy(r);
}

/* --- dying producers --- */

struct stop_info {
    volatile uint64_t pos;
    volatile int phase;
};

static struct stop_info *g_stop;

static void stop_hook(enum ring_test_phase phase, uint64_t pos, void *arg)
{
    (void)arg;
    if ((int)phase == g_stop->phase) {
        g_stop->pos = pos;
        raise(SIGSTOP);
    }
}

/* Forks a producer `id` that stops at `phase` while publishing b; returns its pid (stopped). */
static pid_t spawn_stopped(struct ring *r, unsigned id, enum ring_test_phase phase, const struct msgbuf *b)
{
    g_stop->phase = (int)phase;
    g_stop->pos = 0;
    pid_t pid = fork();
    if (pid == 0) {
        ring_test_set_hook(stop_hook, NULL);
        ring_publish(r, id, &b->m);
        _exit(3);   /* never reached: the parent kills us */
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st))
        return -1;
    return pid;
}

/* A producer killed at each step between claim and commit: readers wait at
 * its record (EMPTY, even though later records are committed), and after
 * ring_repair they pass a PAD record and read on. */
static void test_repair_claimed(void)
{
    enum ring_test_phase phases[] = {RING_TEST_CLAIMED, RING_TEST_OPENED, RING_TEST_WRITTEN};
    for (size_t i = 0; i < 3; i++) {
        struct ring *r = test_ring_create(MIB);
        if (!r) {
            CHECK(r != NULL);
            return;
        }
        struct msgbuf b, after;
        msg_make(&b, 4000, 1000, 100, 1);
        msg_make(&after, 50, 50, 50, 2);
        uint64_t before = ring_publish(r, 1, &after.m);
        pid_t pid = spawn_stopped(r, 5, phases[i], &b);
        CHECK(pid > 0);
        if (pid <= 0) {
            ring_destroy(r);
            return;
        }
        uint64_t c = g_stop->pos;
        const struct ring_record *rec = NULL;
        CHECK(ring_peek(r, before, &rec) == RING_OK && ring_next(rec) == c);
        CHECK(ring_tail(r) > c);
        uint64_t claimed_end = ring_tail(r);
        uint64_t later = ring_publish(r, 2, &after.m);   /* committed after the stuck one */
        CHECK(later == claimed_end);
        CHECK(ring_peek(r, later, &rec) == RING_OK);
        CHECK(ring_peek(r, c, &rec) == RING_EMPTY);      /* readers wait here */
        CHECK(kill_reap(pid));
        CHECK(ring_peek(r, c, &rec) == RING_EMPTY);      /* still: nobody repaired it */
        ring_repair(r, 5);
        CHECK(ring_peek(r, c, &rec) == RING_OK);
        if (rec) {
            CHECK(rec->kind == RING_KIND_PAD);
            CHECK(rec->seq == c);
            CHECK(ring_next(rec) == later);
            CHECK(rec->checksum == test_fnv1a(ring_record_bytes(rec) + HDR, rec->total_len - HDR));
        }
        CHECK(ring_peek(r, later, &rec) == RING_OK);
        if (rec)
            check_record(rec, later, &after);
        ring_repair(r, 5);                               /* idempotent */
        CHECK(ring_peek(r, c, &rec) == RING_OK && rec->kind == RING_KIND_PAD);
        /* The producer id is reusable afterwards. */
        uint64_t s = ring_publish(r, 5, &b.m);
        CHECK(ring_peek(r, s, &rec) == RING_OK);
        if (rec)
            check_record(rec, s, &b);
        msg_free(&b);
        msg_free(&after);
        ring_destroy(r);
    }
}

/* Killed before its CAS: nothing was claimed, repair must not pad anything. */
static void test_repair_unclaimed(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    struct msgbuf b;
    msg_make(&b, 4000, 1000, 100, 1);
    pid_t pid = spawn_stopped(r, 7, RING_TEST_INTENT, &b);
    CHECK(pid > 0);
    uint64_t tail = ring_tail(r);
    CHECK(g_stop->pos == tail);
    CHECK(pid > 0 && kill_reap(pid));
    ring_repair(r, 7);
    CHECK(ring_tail(r) == tail);
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, tail, &rec) == RING_EMPTY);
    uint64_t s = ring_publish(r, 0, &b.m);
    CHECK(s == tail);
    CHECK(ring_peek(r, s, &rec) == RING_OK && rec->kind == RING_KIND_MESSAGE);
    msg_free(&b);
    ring_destroy(r);
}

/* Killed after announcing position c but before its CAS, and another
 * producer took c meanwhile: the record at c is the other's, keep it. */
static void test_repair_lost_race(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    struct msgbuf small, big;
    msg_make(&small, 100, 100, 100, 1);
    msg_make(&big, 9000, 9000, 9000, 2);
    pid_t pid = spawn_stopped(r, 7, RING_TEST_INTENT, &small);
    uint64_t c = g_stop->pos;
    uint64_t other = ring_publish(r, 0, &big.m);         /* wins position c */
    CHECK(other == c);
    CHECK(pid > 0 && kill_reap(pid));
    ring_repair(r, 7);
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, c, &rec) == RING_OK);
    if (rec) {
        CHECK(rec->kind == RING_KIND_MESSAGE);
        check_record(rec, c, &big);
    }
    msg_free(&small);
    msg_free(&big);
    ring_destroy(r);
}

/* Two producers die around the same CAS: A announced c and stopped before its
 * CAS, B won c and stopped before marking its slot CLAIMED. Both slots say
 * INTENT at c. Whatever the lengths, repairing both leaves one PAD that ends
 * exactly at the tail, so readers go on. */
static void test_repair_double_intent(void)
{
    for (int same = 0; same < 2; same++) {
        struct ring *r = test_ring_create(MIB);
        if (!r) {
            CHECK(r != NULL);
            return;
        }
        struct msgbuf a, b;
        msg_make(&a, 100, 100, 100, 1);
        msg_make(&b, same ? 100 : 5000, 100, 100, 1);
        pid_t pa = spawn_stopped(r, 10, RING_TEST_INTENT, &a);
        uint64_t c = g_stop->pos;
        pid_t pb = spawn_stopped(r, 11, RING_TEST_CLAIMED, &b);
        CHECK(pa > 0 && pb > 0 && g_stop->pos == c);
        uint64_t tail = ring_tail(r);
        CHECK(tail > c);
        CHECK(pa > 0 && kill_reap(pa));
        CHECK(pb > 0 && kill_reap(pb));
        ring_repair(r, 10);   /* ambiguous: waits, then decides by the lengths */
        ring_repair(r, 11);
        const struct ring_record *rec = NULL;
        CHECK(ring_peek(r, c, &rec) == RING_OK);
        if (rec) {
            CHECK(rec->kind == RING_KIND_PAD);
            CHECK(ring_next(rec) == tail);
        }
        uint64_t s2 = ring_publish(r, 10, &a.m);
        CHECK(s2 == tail && ring_peek(r, s2, &rec) == RING_OK);
        msg_free(&a);
        msg_free(&b);
        ring_destroy(r);
    }
}

/* A restarted producer whose slot was never repaired repairs it itself. */
static void test_repair_on_reuse(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    struct msgbuf b;
    msg_make(&b, 3000, 300, 30, 9);
    pid_t pid = spawn_stopped(r, 2, RING_TEST_WRITTEN, &b);
    uint64_t c = g_stop->pos;
    CHECK(pid > 0 && kill_reap(pid));
    uint64_t s = ring_publish(r, 2, &b.m);
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, c, &rec) == RING_OK && rec->kind == RING_KIND_PAD && ring_next(rec) == s);
    CHECK(ring_peek(r, s, &rec) == RING_OK);
    if (rec)
        check_record(rec, s, &b);
    msg_free(&b);
    ring_destroy(r);
}

/* A producer that committed but died before clearing its slot: nothing to pad. */
static void test_repair_committed(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    struct msgbuf b;
    msg_make(&b, 300, 300, 30, 4);
    /* The hook fires at WRITTEN; let it through, then stop at the next INTENT. */
    pid_t pid = spawn_stopped(r, 4, RING_TEST_WRITTEN, &b);
    uint64_t c = g_stop->pos;
    CHECK(pid > 0 && kill(pid, SIGCONT) == 0);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 3);
    ring_repair(r, 4);   /* slot is idle: no-op */
    const struct ring_record *rec = NULL;
    CHECK(ring_peek(r, c, &rec) == RING_OK);
    if (rec)
        check_record(rec, c, &b);
    msg_free(&b);
    ring_destroy(r);
}

/* ring_producer_last: the position of each slot's last committed record,
 * as a restarted producer reads it; a claim padded by ring_repair is not a
 * committed record and does not move it. */
static void test_producer_last(void)
{
    struct ring *r = test_ring_create(MIB);
    if (!r) {
        CHECK(r != NULL);
        return;
    }
    CHECK(ring_producer_last(r, 0) == 0 && ring_producer_last(r, 5) == 0);
    CHECK(ring_producer_last(r, RING_MAX_PRODUCERS) == 0 && ring_producer_last(NULL, 0) == 0);
    struct msgbuf a, b;
    msg_make(&a, 300, 200, 20, 1);
    msg_make(&b, 310, 210, 21, 2);
    uint64_t p0 = ring_publish(r, 0, &a.m);
    uint64_t p5 = ring_publish(r, 5, &b.m);
    uint64_t p0b = ring_publish(r, 0, &b.m);
    CHECK(p0 && p5 && p0b && p0 < p5 && p5 < p0b);
    CHECK(ring_producer_last(r, 0) == p0b && ring_producer_last(r, 5) == p5);
    const struct ring_record *rec = NULL;
    CHECK(ring_find(r, ring_producer_last(r, 5), &rec) == RING_OK && rec && rec->cert_index == b.m.cert_index &&
          rec->log_id == b.m.log_id);
    /* a producer killed between claim and commit: its slot's last stays the
     * record before (the claim is padded, not committed) */
    pid_t pid = spawn_stopped(r, 5, RING_TEST_OPENED, &a);
    CHECK(pid > 0 && kill(pid, SIGKILL) == 0 && waitpid(pid, NULL, 0) == pid);
    ring_repair(r, 5);
    CHECK(ring_producer_last(r, 5) == p5);
    msg_free(&a);
    msg_free(&b);
    ring_destroy(r);
}

int main(void)
{
    g_stop = mmap(NULL, sizeof *g_stop, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g_stop == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    RUN(test_create_sizes);
    RUN(test_round_trip);
    RUN(test_frame_headers);
    RUN(test_wrap_contiguity);
    RUN(test_writev_wire);
    RUN(test_lapping);
    RUN(test_find);
    RUN(test_oversized);
    RUN(test_bench_stamp);
    RUN(test_checksums_switch);
    RUN(test_notify);
    RUN(test_repair_claimed);
    RUN(test_repair_unclaimed);
    RUN(test_repair_lost_race);
    RUN(test_repair_double_intent);
    RUN(test_repair_on_reuse);
    RUN(test_repair_committed);
    RUN(test_producer_last);
    return test_report();
}
