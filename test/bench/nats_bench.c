/* nats_bench.c - the ingest -> NATS JetStream -> edge ring leg, measured with
 * the server's own NATS code (nats/natsnode.c) against a real nats-server.
 *
 * Two rings stand for an ingest node's and an edge node's; the publisher and
 * the consumer run as child processes exactly as the supervisor runs them.
 * Messages are the golden corpus's real rendered messages, each made a
 * distinct certificate (its sha256 field, hence its message id, carries a
 * counter) so JetStream's duplicate window does not drop them.
 *
 *   nats_bench --url nats://127.0.0.1:4222 --testdata test/data throughput [-n 10000]
 *   nats_bench --url ... --testdata ... latency [--rate 300] [--seconds 10] [--stream NAME]
 * (--stream: a fixed stream and subject prefix, so that a real edge server can
 * consume the same entries, e.g. for the fanout comparison in bench_nats.py)
 *
 * throughput: ring A is filled first, then published and consumed as fast as
 *   they go: entries/s from the publisher's start to the last entry in ring B,
 *   CPU (user+sys) per 1,000 entries of each process.
 * latency: entries enter ring A at a steady rate; for each, the time from its
 *   commit in ring A to its commit in ring B (both stamped by the ring), p50 /
 *   p99 / max, and CPU per 1,000 entries at that rate.
 * Not a test; see docs/benchmarks.md. */
#include "conf/config.h"
#include "nats/natsnode.h"
#include "shm/ring.h"
#include "shm/stats.h"
#include "common/clock.h"
#include "common/log.h"

#include <cjson/cJSON.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define NGOLD 28

static char *gold[NGOLD][RING_NFORMATS];
static size_t gold_len[NGOLD][RING_NFORMATS];

static void load_golden(const char *testdata)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/live_ct.json", testdata);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc((size_t)n + 1);
    if (!t || fread(t, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(2); }
    t[n] = 0;
    fclose(f);
    cJSON *a = cJSON_Parse(t);
    const char *names[RING_NFORMATS] = {"expected_full", "expected_lite", "expected_domains_only"};
    for (int i = 0; i < NGOLD; i++)
        for (int fm = 0; fm < RING_NFORMATS; fm++) {
            gold[i][fm] = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(a, i), names[fm])));
            gold_len[i][fm] = strlen(gold[i][fm]);
        }
    cJSON_Delete(a);
    free(t);
}

/* Writes k into the first four bytes of every "sha256":"AB:CD:.." in s. */
static void stamp_id(char *s, size_t len, uint32_t k)
{
    static const char hex[] = "0123456789ABCDEF";
    char *p = s, *end = s + len;
    while ((p = memmem(p, (size_t)(end - p), "\"sha256\":\"", 10)) != NULL) {
        p += 10;
        for (int b = 0; b < 4 && p + 3 * b + 1 < end; b++) {
            uint8_t v = (uint8_t)(k >> (24 - 8 * b));
            p[3 * b] = hex[v >> 4];
            p[3 * b + 1] = hex[v & 15];
        }
    }
}

static uint64_t publish_one(struct ring *r, uint32_t k, uint32_t salt)
{
    int g = (int)(k % NGOLD);
    char *j[RING_NFORMATS];
    struct ring_message m = {.cert_index = k, .bench_stamp_off = {-1, -1, -1}};
    for (int f = 0; f < RING_NFORMATS; f++) {
        j[f] = malloc(gold_len[g][f]);
        memcpy(j[f], gold[g][f], gold_len[g][f]);
        stamp_id(j[f], gold_len[g][f], k ^ salt);
        m.json[f] = j[f];
        m.json_len[f] = gold_len[g][f];
    }
    uint64_t pos = ring_publish(r, 0, &m);
    for (int f = 0; f < RING_NFORMATS; f++) free(j[f]);
    return pos;
}

static pid_t start_node(const struct config *cfg, struct ring *r, struct stats *s)
{
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(2); }
    if (pid == 0) {
        struct natsnode_params p = {.cfg = cfg, .ring = r, .stats = s, .producer_id = 1, .stats_slot = 1};
        _exit(natsnode_run(&p));
    }
    return pid;
}

static double stop_node(pid_t pid)
{
    struct rusage ru;
    int st;
    kill(pid, SIGTERM);
    if (wait4(pid, &st, 0, &ru) != pid) { perror("wait4"); exit(2); }
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *testdata = NULL, *mode = NULL, *stream_name = NULL;
    unsigned n = 10000, seconds = 10;
    double rate = 300;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--url") && i + 1 < argc) url = argv[++i];
        else if (!strcmp(argv[i], "--testdata") && i + 1 < argc) testdata = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rate") && i + 1 < argc) rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--stream") && i + 1 < argc) stream_name = argv[++i];
        else mode = argv[i];
    }
    if (!url || !testdata || !mode || (strcmp(mode, "throughput") && strcmp(mode, "latency"))) {
        fprintf(stderr, "usage: nats_bench --url URL --testdata DIR throughput [-n N] | latency [--rate R] [--seconds S]\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    load_golden(testdata);
    uint32_t salt = (uint32_t)getpid() << 16;
    char stream[64], pos_path[128];
    snprintf(stream, sizeof stream, "%s", stream_name ? stream_name : "BENCH");
    if (!stream_name) snprintf(stream, sizeof stream, "BENCH%d", (int)getpid());
    snprintf(pos_path, sizeof pos_path, "/tmp/nats_bench_pos.%d", (int)getpid());

    struct config ca, cb;
    config_defaults(&ca);
    free(ca.nats.url);
    ca.nats.url = strdup(url);
    free(ca.nats.stream);
    ca.nats.stream = strdup(stream);
    free(ca.nats.subject_prefix);
    ca.nats.subject_prefix = strdup(stream);
    ca.nats.publish = true;
    cb = ca;   /* shares the strings; neither is freed */
    cb.nats.publish = false;
    cb.ingest.source = "nats";
    cb.nats.position_file = pos_path;

    size_t rsz = (size_t)256 << 20;
    struct ring *ra = ring_create(rsz), *rb = ring_create(rsz);
    struct stats *sa = stats_create(), *sb = stats_create();
    if (!ra || !rb || !sa || !sb) { perror("ring/stats"); return 2; }
    if (natsnode_prepare(&ca, sa, ra) != 0 || natsnode_prepare(&cb, sb, rb) != 0) { perror("prepare"); return 2; }
    atomic_store(&stats_nats(sa)->gate_bytes, 0);   /* the producer here is this program */
    struct stats_nats *nb = stats_nats(sb);
    uint64_t a_start = ring_start_position(ra), b_start = ring_start_position(rb);

    pid_t cons = start_node(&cb, rb, sb);
    uint64_t dl = mono_ms() + 30000;
    while (!atomic_load(&nb->ready) && mono_ms() < dl) usleep(1000);
    if (!atomic_load(&nb->ready)) { fprintf(stderr, "consumer not ready\n"); return 1; }

    unsigned count = 0;
    double wall = 0;
    pid_t pub;
    if (!strcmp(mode, "throughput")) {
        for (; count < n; count++)
            if (publish_one(ra, count, salt) == 0) { fprintf(stderr, "ring full\n"); return 1; }
        uint64_t t0 = mono_ns();
        pub = start_node(&ca, ra, sa);
        while (atomic_load(&nb->consumed) < count) usleep(200);
        wall = (double)(mono_ns() - t0) / 1e9;
    } else {
        pub = start_node(&ca, ra, sa);
        uint64_t t0 = mono_ns(), end = t0 + (uint64_t)seconds * 1000000000ull;
        for (;;) {
            uint64_t now = mono_ns();
            if (now >= end) break;
            unsigned due = (unsigned)((double)(now - t0) / 1e9 * rate) + 1;
            unsigned before = count;
            while (count < due) publish_one(ra, count++, salt);
            if (count != before) ring_notify(ra);
            usleep(200);
        }
        dl = mono_ms() + 30000;
        while (atomic_load(&nb->consumed) < count && mono_ms() < dl) usleep(200);
        wall = (double)(mono_ns() - t0) / 1e9;
    }
    double cpu_pub = stop_node(pub), cpu_cons = stop_node(cons);
    uint64_t got = atomic_load(&nb->consumed);

    /* latency per entry: ring B commit - ring A commit, in order */
    uint64_t *lat = calloc(count ? count : 1, sizeof *lat);
    uint64_t pa = a_start, pb = b_start;
    unsigned k = 0;
    const struct ring_record *x, *y;
    while (k < count && ring_peek(ra, pa, &x) == RING_OK && ring_peek(rb, pb, &y) == RING_OK) {
        if (x->cert_index != y->cert_index) { fprintf(stderr, "order differs at %u\n", k); return 1; }
        lat[k++] = y->commit_ns > x->commit_ns ? y->commit_ns - x->commit_ns : 0;
        pa = ring_next(x);
        pb = ring_next(y);
    }
    qsort(lat, k, sizeof *lat, cmp_u64);
    printf("mode=%s entries=%u consumed=%llu wall_s=%.3f entries_per_s=%.0f "
           "cpu_ms_per_1000_publisher=%.1f cpu_ms_per_1000_consumer=%.1f "
           "latency_ms_p50=%.2f p99=%.2f max=%.2f bytes_per_entry=%zu\n",
           mode, count, (unsigned long long)got, wall, count / wall, cpu_pub * 1e6 / count, cpu_cons * 1e6 / count,
           k ? lat[k / 2] / 1e6 : 0, k ? lat[(size_t)(k * 0.99)] / 1e6 : 0, k ? lat[k - 1] / 1e6 : 0,
           (size_t)(36 + (gold_len[0][0] + gold_len[0][1] + gold_len[0][2])));
    unlink(pos_path);
    free(lat);
    return got == count ? 0 : 1;
}
