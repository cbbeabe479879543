/* test_ingest_live.c - ingest_run against the fake CT log on loopback.
 *
 * Each scenario starts test/fakelog/fakelog.py, forks ingest_run with a real
 * ring and stats region, reads the ring and checks what was published:
 *   golden   RFC 6962: the golden live_ct entries (Argon 2026h2 and Nimbus
 *            2026 at their real indexes, gaps holding malformed entries)
 *            through 429/500/truncated/short answers: every message is
 *            byte-identical to expected_full/lite/domains_only (seen pinned),
 *            in order, the gaps counted as parse failures.
 *   tiled    static-ct-api: the Navigli tiles at tree size 778 (partial data
 *            tile), then grown to 1024; gzip'd tiles, a 500, a truncated tile
 *            and a 429 on an issuer; 1024 messages in order, checked against
 *            navigli2025h2.computed/expected_entries.jsonl; each issuer
 *            fetched once.
 *   fresh    no saved position: starts at the tree size, publishes only what
 *            the log grows by afterwards.
 *   dedup    two logs with the same certificates and one dedup table:
 *            each certificate published once.
 *   pacing   two logs of one operator: requests spaced by
 *            operator_rate_limit_ms.
 *   loglist  the log list fetched over http from the fake log, built,
 *            and followed (origin checked on the tiled log).
 *   timeout  a get-sth slower than request_timeout_secs times out and is
 *            retried.
 *   verify   a real signed STH verifies with the log's key; an unsigned
 *            one is refused and its log publishes nothing.
 *   noissuer issuers that always 404 are given up after retry_max_attempts;
 *            the entries go out without them.
 *   offline  nothing listens: logs go unhealthy, retries back off, the
 *            process neither exits nor spins, SIGTERM exits 0.
 * Usage: test_ingest_live SCENARIO TESTDATA FAKELOG_PY SCRATCH_DIR */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <mbedtls/base64.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "ingest/ingest.h"
#include "shm/dedup.h"
#include "shm/ring.h"
#include "shm/stats.h"

#define ARGON_URL "https://ct.googleapis.com/logs/us1/argon2026h2/"
#define NIMBUS_URL "https://ct.cloudflare.com/logs/nimbus2026/"
#define NAVIGLI_URL "https://navigli2025h2.skylight.geomys.org/"
#define PINNED_SEEN 1700000000.0

static int failures, checks;
static const char *testdata, *fakelog_py, *scratch;
static pid_t fake_pid = -1, ingest_pid = -1;
static int fake_port;

#define CHECK(cond, ...) do { \
    checks++; \
    if (!(cond)) { failures++; fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond); \
        fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void cleanup(void)
{
    if (ingest_pid > 0) { kill(ingest_pid, SIGKILL); waitpid(ingest_pid, NULL, 0); }
    if (fake_pid > 0) { kill(fake_pid, SIGTERM); waitpid(fake_pid, NULL, 0); }
}

static void die(const char *msg)
{
    fprintf(stderr, "fatal: %s\n", msg);
    cleanup();
    exit(2);
}

/* ---- fake log ---- */

static void fakelog_start(const char *const *args)
{
    char portfile[1024];
    snprintf(portfile, sizeof portfile, "%s/fakelog.%d.port", scratch, (int)getpid());
    unlink(portfile);
    const char *argv[64];
    int n = 0;
    argv[n++] = "python3";
    argv[n++] = fakelog_py;
    argv[n++] = "--testdata";
    argv[n++] = testdata;
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    for (int i = 0; args[i] && n < 62; i++) argv[n++] = args[i];
    argv[n] = NULL;
    fake_pid = fork();
    if (fake_pid < 0) die("fork");
    if (fake_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive the test */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    for (double t0 = now_s(); now_s() - t0 < 15;) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            int ok = fscanf(f, "%d", &fake_port) == 1;
            fclose(f);
            unlink(portfile);
            if (ok) return;
        }
        if (waitpid(fake_pid, NULL, WNOHANG) == fake_pid) { fake_pid = -1; die("fakelog exited"); }
        usleep(20000);
    }
    die("fakelog did not start");
}

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
    char **out = ud;
    size_t have = *out ? strlen(*out) : 0;
    char *np = realloc(*out, have + s * n + 1);
    if (!np) return 0;
    memcpy(np + have, p, s * n);
    np[have + s * n] = '\0';
    *out = np;
    return s * n;
}

/* GET http://127.0.0.1:<port>/control/<what>; returns the body (malloc'd). */
static char *control(const char *what)
{
    char url[512], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/control/%s", fake_port, what);
    CURL *c = curl_easy_init();
    if (!c) die("curl");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    if (curl_easy_perform(c) != CURLE_OK) die("control request failed");
    curl_easy_cleanup(c);
    return body;
}

static long fake_count(const char *key)
{
    char *b = control("stats");
    cJSON *j = cJSON_Parse(b);
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, key);
    long v = cJSON_IsNumber(it) ? (long)it->valuedouble : 0;
    cJSON_Delete(j);
    free(b);
    return v;
}

/* ---- ring reading ---- */

struct msg {
    uint64_t index;
    uint32_t log_id;
    double at;                  /* now_s() when it was read from the ring */
    char *json[RING_NFORMATS];
    size_t len[RING_NFORMATS];
};

static struct msg *msgs;
static size_t n_msgs, cap_msgs;
static uint64_t ring_pos;

/* Reads the ring until `want` messages in all, or the deadline. */
static void read_ring(struct ring *r, size_t want, double seconds)
{
    double t0 = now_s();
    while (n_msgs < want && now_s() - t0 < seconds) {
        const struct ring_record *rec;
        enum ring_status st = ring_peek(r, ring_pos, &rec);
        if (st == RING_EMPTY) {
            usleep(2000);
            continue;
        }
        if (st != RING_OK) die("ring lapped or broken");
        if (rec->kind == RING_KIND_MESSAGE) {
            if (n_msgs == cap_msgs) {
                cap_msgs = cap_msgs ? cap_msgs * 2 : 256;
                msgs = realloc(msgs, cap_msgs * sizeof *msgs);
                if (!msgs) die("oom");
            }
            struct msg *m = &msgs[n_msgs++];
            m->index = rec->cert_index;
            m->log_id = rec->log_id;
            m->at = now_s();
            for (int f = 0; f < RING_NFORMATS; f++) {
                /* the ring may hold the message in pieces (shm/ring.h) */
                size_t want = rec->json[f].len, got = 0;
                m->json[f] = malloc(want + 1);
                if (!m->json[f]) die("oom");
                const char *j = ring_record_json(r, rec, (enum ring_format)f, m->json[f], want, &got);
                if (!j || got != want) die("record without sane JSON");
                if (j != m->json[f]) memcpy(m->json[f], j, got);
                m->len[f] = got;
                m->json[f][m->len[f]] = '\0';
            }
            if (ring_lapped_since(r, ring_pos)) die("lapped while copying");
        }
        ring_pos = ring_next(rec);
    }
}

/* ---- ingest child ---- */

static struct config cfg;
static struct dedup *test_dedup;

static void test_config(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.ct_log.list_enabled = cfg.ct_log.rfc6962_enabled = cfg.ct_log.static_enabled = true;
    cfg.ct_log.batch_size = 4;
    cfg.message_format.absent_name_fields = (char *)"omit";   /* the golden corpus's form */
    cfg.ct_log.poll_interval_ms = 200;
    cfg.ct_log.retry_max_attempts = 3;
    cfg.ct_log.request_timeout_secs = 5;
    cfg.ct_log.fetch_concurrency = 3;
    cfg.ct_log.retry_initial_delay_ms = 50;
    cfg.ct_log.retry_max_delay_ms = 400;
    cfg.ct_log.operator_rate_limit_ms = 5;
    cfg.ingest.group_by = "operator";
}

static void ingest_start(struct ring *ring, struct stats *stats, struct loglist_log **logs, size_t n)
{
    ring_pos = ring_start_position(ring);
    ingest_pid = fork();
    if (ingest_pid < 0) die("fork");
    if (ingest_pid == 0) {
        struct ingest_params p = {
            .cfg = &cfg, .ring = ring, .stats = stats, .producer_id = 1, .stats_slot = 1,
            .logs = logs, .n_logs = n, .pin_seen = PINNED_SEEN, .dedup = test_dedup,
        };
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        log_set_role("ingest", 0);
        _exit(ingest_run(&p) == 0 ? 0 : 1);
    }
}

/* SIGTERM must stop it with status 0. Returns its CPU seconds. */
static double ingest_stop(void)
{
    struct rusage ru;
    int status = 0;
    CHECK(kill(ingest_pid, SIGTERM) == 0, "kill: %s", strerror(errno));
    double t0 = now_s();
    pid_t w;
    while ((w = wait4(ingest_pid, &status, WNOHANG, &ru)) == 0 && now_s() - t0 < 10) usleep(10000);
    CHECK(w == ingest_pid, "ingest did not exit on SIGTERM");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ingest exit status %d", status);
    ingest_pid = -1;
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static struct loglist_log mklog(unsigned id, const char *name, const char *url, const char *path,
                                const char *op, enum loglist_kind kind)
{
    struct loglist_log l = {0};
    char fetch[256];
    snprintf(fetch, sizeof fetch, "http://127.0.0.1:%d/%s/", fake_port, path);
    l.name = strdup(name);
    l.url = strdup(url);
    l.fetch_url = strdup(fetch);
    l.operator_name = strdup(op);
    l.kind = kind;
    l.log_id = id;
    return l;
}

static void freelog(struct loglist_log *l)
{
    free(l->name);
    free(l->url);
    free(l->fetch_url);
    free(l->operator_name);
}

static void setup_row(struct stats *stats, const struct loglist_log *l, uint64_t next, uint64_t size)
{
    struct stats_log *sl = stats_log(stats, l->log_id);
    memset(sl, 0, sizeof *sl);
    snprintf(sl->name, sizeof sl->name, "%s", l->name);
    snprintf(sl->url, sizeof sl->url, "%s", l->url);
    sl->next_index = next;
    sl->tree_size = size;
}

/* ---- golden corpus ---- */

static cJSON *golden;

static void load_golden(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/live_ct.json", testdata);
    FILE *f = fopen(path, "rb");
    if (!f) die("golden/live_ct.json");
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    golden = cJSON_Parse(buf);
    if (!cJSON_IsArray(golden)) die("golden parse");
}

static uint64_t rec_index(const cJSON *r)
{
    return (uint64_t)cJSON_GetObjectItemCaseSensitive(r, "cert_index")->valuedouble;   /* exact below 2^53 */
}

/* Compares the messages of log_id (in ring order) with the golden records of
 * url whose index is >= from. */
static void compare_golden(uint32_t log_id, const char *url, uint64_t from)
{
    static const char *keys[RING_NFORMATS] = {"expected_full", "expected_lite", "expected_domains_only"};
    size_t k = 0, matched = 0;
    const cJSON *r;
    struct msg *mine[64];
    size_t n_mine = 0;
    for (size_t i = 0; i < n_msgs && n_mine < 64; i++)
        if (msgs[i].log_id == log_id) mine[n_mine++] = &msgs[i];
    cJSON_ArrayForEach(r, golden) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(r, "log_url")->valuestring, url) != 0) continue;
        if (rec_index(r) < from) continue;
        if (k >= n_mine) {
            CHECK(0, "%s: no message for index %llu", url, (unsigned long long)rec_index(r));
            k++;
            continue;
        }
        struct msg *m = mine[k++];
        CHECK(m->index == rec_index(r), "%s: message %zu has index %llu, want %llu", url, k - 1,
              (unsigned long long)m->index, (unsigned long long)rec_index(r));
        int same = 1;
        for (int f = 0; f < RING_NFORMATS; f++) {
            const char *want = cJSON_GetObjectItemCaseSensitive(r, keys[f])->valuestring;
            if (strlen(want) != m->len[f] || memcmp(want, m->json[f], m->len[f]) != 0) {
                same = 0;
                CHECK(0, "%s index %llu %s differs:\n got  %.300s\n want %.300s", url,
                      (unsigned long long)m->index, keys[f], m->json[f], want);
            }
        }
        matched += same;
    }
    CHECK(k == n_mine, "%s: %zu messages, %zu golden records", url, n_mine, k);
    printf("%s: %zu/%zu messages byte-identical to golden\n", url, matched, k);
}

/* ---- scenarios ---- */

static int scenario_golden(struct ring *ring, struct stats *stats)
{
    const char *args[] = {
        "--golden", "argon=" ARGON_URL, "--golden", "nimbus=" NIMBUS_URL,
        "--max-batch", "argon=3",                       /* short answers */
        "--fault", "argon:429:entries:1:1",             /* Retry-After: 1 */
        "--fault", "argon:500:sth:1",
        "--fault", "nimbus:500:entries:2",
        "--fault", "nimbus:truncated:entries:1",
        "--fault", "nimbus:short:entries:2:1",
        "--fault", "nimbus:malformed:entries:1",
        "--fault", "nimbus:slow:sth:1:0.3",
        "--fault", "argon:drop:sth:1",              /* connection closed, no answer */
        NULL,
    };
    fakelog_start(args);
    const uint64_t argon0 = 1111014090ull, nimbus0 = 4354630040ull;
    struct loglist_log l[2] = {
        mklog(0, "Google 'Argon2026h2'", ARGON_URL, "argon", "Google", LOGLIST_RFC6962),
        mklog(1, "Cloudflare 'Nimbus2026'", NIMBUS_URL, "nimbus", "Cloudflare", LOGLIST_RFC6962),
    };
    struct loglist_log *lp[2] = {&l[0], &l[1]};
    stats_set_log_count(stats, 2);
    setup_row(stats, &l[0], argon0, argon0);   /* saved position: the first golden entry */
    setup_row(stats, &l[1], nimbus0, nimbus0);
    double t0 = now_s();
    ingest_start(ring, stats, lp, 2);
    read_ring(ring, 28, 30);
    /* let any stray extra message show up */
    for (double t1 = now_s(); now_s() - t1 < 0.5;) read_ring(ring, n_msgs + 1, 0.05);
    double took = now_s() - t0;
    double cpu = ingest_stop();
    CHECK(n_msgs == 28, "published %zu messages, want 28", n_msgs);
    compare_golden(0, ARGON_URL, 0);
    compare_golden(1, NIMBUS_URL, 0);
    /* 20 indexes per log: 13 + 15 golden entries, 7 + 5 malformed. */
    CHECK(stats_sum(stats, ST_ENTRIES_PUBLISHED) == 28, "ST_ENTRIES_PUBLISHED %llu",
          (unsigned long long)stats_sum(stats, ST_ENTRIES_PUBLISHED));
    CHECK(stats_sum(stats, ST_PARSE_FAILURES) == 12, "ST_PARSE_FAILURES %llu",
          (unsigned long long)stats_sum(stats, ST_PARSE_FAILURES));
    /* 429, 2 x 500 on entries, 500 on sth, truncated, malformed; the dropped
     * connection may be retried inside libcurl (a reused connection that
     * dies before answering is retried once), so it is not counted here. */
    CHECK(stats_sum(stats, ST_CT_REQUEST_FAILURES) >= 6, "ST_CT_REQUEST_FAILURES %llu",
          (unsigned long long)stats_sum(stats, ST_CT_REQUEST_FAILURES));
    CHECK(stats_log(stats, 0)->next_index == argon0 + 20, "argon next_index %llu",
          (unsigned long long)stats_log(stats, 0)->next_index);
    CHECK(stats_log(stats, 1)->next_index == nimbus0 + 20, "nimbus next_index %llu",
          (unsigned long long)stats_log(stats, 1)->next_index);
    CHECK(stats_log(stats, 0)->tree_size == argon0 + 20, "argon tree_size");
    CHECK(stats_log(stats, 0)->entries == 13 && stats_log(stats, 1)->entries == 15, "per-log entries %llu %llu",
          (unsigned long long)stats_log(stats, 0)->entries, (unsigned long long)stats_log(stats, 1)->entries);
    CHECK(stats_log(stats, 0)->health == LOG_HEALTHY && stats_log(stats, 1)->health == LOG_HEALTHY, "health %u %u",
          stats_log(stats, 0)->health, stats_log(stats, 1)->health);
    CHECK(stats_log(stats, 0)->last_success_ms > 1700000000000ull, "last_success_ms");
    /* Retry-After: 1 on argon's first get-entries: no argon message before
     * a second has passed (the backoff alone would be about 0.2 s here).
     * Measured at the first argon message, not at the end of the drain. */
    double first_argon = -1;
    for (size_t i = 0; i < n_msgs && first_argon < 0; i++)
        if (msgs[i].log_id == 0) first_argon = msgs[i].at - t0;
    CHECK(first_argon >= 1.0, "first argon message after %.2f s despite Retry-After: 1", first_argon);
    /* max-batch 3 with windows of 4: every window needed a second request */
    CHECK(fake_count("argon entries") >= 7 + 1, "argon entries requests %ld", fake_count("argon entries"));
    printf("golden: %zu messages in %.2f s, ingest cpu %.2f s\n", n_msgs, took, cpu);
    freelog(&l[0]);
    freelog(&l[1]);
    return 0;
}

static void hexcolon_upper(const char *hex, char *out)
{
    size_t n = strlen(hex), o = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        if (i) out[o++] = ':';
        out[o++] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
        out[o++] = (char)(hex[i + 1] >= 'a' ? hex[i + 1] - 32 : hex[i + 1]);
    }
    out[o] = '\0';
}

static int scenario_tiled(struct ring *ring, struct stats *stats)
{
    const char *args[] = {
        "--tiled", "navigli=static-ct/navigli2025h2", "--size", "navigli=778", "--gzip-tiles",
        "--fault", "navigli:500:tile:1",
        "--fault", "navigli:truncated:tile:1",
        "--fault", "navigli:429:issuer:1:1",
        "--fault", "navigli:malformed:checkpoint:1",
        NULL,
    };
    fakelog_start(args);
    struct loglist_log l = mklog(0, "Navigli 2025h2", NAVIGLI_URL, "navigli", "Geomys", LOGLIST_TILED);
    struct loglist_log *lp[1] = {&l};
    stats_set_log_count(stats, 1);
    setup_row(stats, &l, 0, 778);              /* saved position: entry 0 */
    double t0 = now_s();
    ingest_start(ring, stats, lp, 1);
    read_ring(ring, 778, 30);
    CHECK(n_msgs == 778, "at size 778: %zu messages", n_msgs);
    free(control("size?log=navigli&size=1024"));
    read_ring(ring, 1024, 30);
    for (double t1 = now_s(); now_s() - t1 < 0.5;) read_ring(ring, n_msgs + 1, 0.05);
    double took = now_s() - t0;
    double cpu = ingest_stop();
    CHECK(n_msgs == 1024, "published %zu messages, want 1024", n_msgs);

    char path[1024], line[65536];
    snprintf(path, sizeof path, "%s/static-ct/navigli2025h2.computed/expected_entries.jsonl", testdata);
    FILE *f = fopen(path, "r");
    if (!f) die("expected_entries.jsonl");
    size_t i = 0, good = 0;
    while (fgets(line, sizeof line, f) && i < n_msgs) {
        cJSON *e = cJSON_Parse(line);
        struct msg *m = &msgs[i];
        uint64_t want = (uint64_t)cJSON_GetObjectItemCaseSensitive(e, "leaf_index")->valuedouble;
        char sha[200], serial[200], link[300], idx[64], needle[300];
        hexcolon_upper(cJSON_GetObjectItemCaseSensitive(e, "pre_certificate_sha256")->valuestring, sha);
        char hexs[100];
        snprintf(hexs, sizeof hexs, "%s", cJSON_GetObjectItemCaseSensitive(e, "serial_hex")->valuestring);
        for (char *p = hexs; *p; p++) if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
        snprintf(serial, sizeof serial, "\"serial_number\":\"%s\"", hexs);
        /* the chain is the issuers the fingerprints name, in order */
        char chain_fp[2][200];
        const cJSON *fps = cJSON_GetObjectItemCaseSensitive(e, "chain_fingerprints");
        int nfp = cJSON_GetArraySize(fps);
        for (int k = 0; k < 2 && k < nfp; k++) hexcolon_upper(cJSON_GetArrayItem(fps, k)->valuestring, chain_fp[k]);
        const char *c0 = nfp > 0 ? strstr(m->json[0], chain_fp[0]) : NULL;
        const char *c1 = nfp > 1 ? strstr(m->json[0], chain_fp[1]) : NULL;
        /* entries 768..777 came from the partial tile, the rest from full tiles */
        if (want >= 768 && want < 778) snprintf(link, sizeof link, "\"cert_link\":\"%stile/data/003.p/10\"", NAVIGLI_URL);
        else snprintf(link, sizeof link, "\"cert_link\":\"%stile/data/%03llu\"", NAVIGLI_URL, (unsigned long long)(want / 256));
        snprintf(idx, sizeof idx, "\"cert_index\":%llu,", (unsigned long long)want);
        snprintf(needle, sizeof needle, "\"sha256\":\"%s\"", sha);
        const char *miss = m->index != want ? "index" : !strstr(m->json[0], idx) ? idx
                         : !strstr(m->json[0], needle) ? needle : !strstr(m->json[0], serial) ? serial
                         : !strstr(m->json[0], link) ? link : !strstr(m->json[1], idx) ? "lite cert_index"
                         : strstr(m->json[1], "\"as_der\"") ? "as_der in lite"
                         : !strstr(m->json[0], "\"chain\":[{") ? "chain"
                         : nfp != 2 || !c0 || !c1 || c1 < c0 ? "chain fingerprints in order" : NULL;
        int ok = miss == NULL;
        CHECK(ok, "navigli message %zu (index %llu), expected entry %llu: no %s in %s", i,
              (unsigned long long)m->index, (unsigned long long)want, miss, m->json[0]);
        good += ok;
        cJSON_Delete(e);
        i++;
    }
    fclose(f);
    CHECK(i == 1024, "expected entries read %zu", i);
    CHECK(stats_sum(stats, ST_PARSE_FAILURES) == 0, "parse failures %llu", (unsigned long long)stats_sum(stats, ST_PARSE_FAILURES));
    CHECK(stats_log(stats, 0)->next_index == 1024 && stats_log(stats, 0)->tree_size == 1024, "navigli position %llu/%llu",
          (unsigned long long)stats_log(stats, 0)->next_index, (unsigned long long)stats_log(stats, 0)->tree_size);
    /* 5 distinct issuers, each fetched once (+1 for the 429): the cache works */
    CHECK(fake_count("navigli issuer") == 6, "issuer requests %ld", fake_count("navigli issuer"));
    CHECK(stats_sum(stats, ST_CT_REQUEST_FAILURES) >= 4, "request failures %llu",
          (unsigned long long)stats_sum(stats, ST_CT_REQUEST_FAILURES));
    printf("tiled: %zu messages (%zu checked against expected_entries) in %.2f s, ingest cpu %.2f s\n", n_msgs, good,
           took, cpu);
    freelog(&l);
    return 0;
}

static int scenario_fresh(struct ring *ring, struct stats *stats)
{
    const char *args[] = {"--golden", "argon=" ARGON_URL, "--size", "argon=5", NULL};
    fakelog_start(args);
    const uint64_t argon0 = 1111014090ull;
    struct loglist_log l = mklog(0, "Google 'Argon2026h2'", ARGON_URL, "argon", "Google", LOGLIST_RFC6962);
    struct loglist_log *lp[1] = {&l};
    stats_set_log_count(stats, 1);
    setup_row(stats, &l, 0, 0);                /* no saved position */
    ingest_start(ring, stats, lp, 1);
    double t0 = now_s();
    while (stats_log(stats, 0)->next_index == 0 && now_s() - t0 < 10) usleep(10000);
    CHECK(stats_log(stats, 0)->next_index == argon0 + 5, "started at %llu, want the tree size %llu",
          (unsigned long long)stats_log(stats, 0)->next_index, (unsigned long long)(argon0 + 5));
    read_ring(ring, 1, 0.5);
    CHECK(n_msgs == 0, "%zu messages before the log grew", n_msgs);
    free(control("size?log=argon&size=20"));
    /* golden entries at >= argon0+5: ...097 to ...109 = 9 */
    read_ring(ring, 9, 15);
    for (double t1 = now_s(); now_s() - t1 < 0.5;) read_ring(ring, n_msgs + 1, 0.05);
    ingest_stop();
    CHECK(n_msgs == 9, "published %zu, want 9", n_msgs);
    compare_golden(0, ARGON_URL, argon0 + 5);
    CHECK(stats_sum(stats, ST_PARSE_FAILURES) == 6, "parse failures %llu (gaps 095 096 102 103 105 106)",
          (unsigned long long)stats_sum(stats, ST_PARSE_FAILURES));
    freelog(&l);
    return 0;
}

/* Two logs serving the same 13 certificates, one shared dedup table: each
 * certificate is published once. */
static int scenario_dedup(struct ring *ring, struct stats *stats)
{
    const char *args[] = {"--golden", "a=" ARGON_URL, "--golden", "b=" ARGON_URL, NULL};
    fakelog_start(args);
    const uint64_t argon0 = 1111014090ull;
    struct loglist_log l[2] = {
        mklog(0, "Google 'Argon2026h2'", ARGON_URL, "a", "Google", LOGLIST_RFC6962),
        mklog(1, "Mirror", "https://mirror.example/argon2026h2/", "b", "Mirror", LOGLIST_RFC6962),
    };
    struct loglist_log *lp[2] = {&l[0], &l[1]};
    stats_set_log_count(stats, 2);
    setup_row(stats, &l[0], argon0, argon0);
    setup_row(stats, &l[1], argon0, argon0);
    struct dedup *d = dedup_create(1024, 3600);
    if (!d) die("dedup_create");
    test_dedup = d;
    ingest_start(ring, stats, lp, 2);
    double t0 = now_s();
    while ((stats_log(stats, 0)->next_index < argon0 + 20 || stats_log(stats, 1)->next_index < argon0 + 20) &&
           now_s() - t0 < 20)
        read_ring(ring, 1000, 0.05);
    read_ring(ring, 1000, 0.3);
    ingest_stop();
    CHECK(n_msgs == 13, "published %zu, want 13 (each certificate once)", n_msgs);
    CHECK(stats_sum(stats, ST_DEDUP_DROPPED) == 13, "dedup dropped %llu", (unsigned long long)stats_sum(stats, ST_DEDUP_DROPPED));
    CHECK(stats_sum(stats, ST_ENTRIES_PUBLISHED) == 13, "published counter %llu",
          (unsigned long long)stats_sum(stats, ST_ENTRIES_PUBLISHED));
    dedup_destroy(d);
    freelog(&l[0]);
    freelog(&l[1]);
    return 0;
}

/* Two logs of one operator, operator_rate_limit_ms = 100: however many
 * requests the logs want, the operator sees at most one per 100 ms. */
static int scenario_pacing(struct ring *ring, struct stats *stats)
{
    const char *args[] = {"--golden", "argon=" ARGON_URL, "--golden", "nimbus=" NIMBUS_URL, NULL};
    fakelog_start(args);
    cfg.ct_log.operator_rate_limit_ms = 100;
    struct loglist_log l[2] = {
        mklog(0, "Google 'Argon2026h2'", ARGON_URL, "argon", "One operator", LOGLIST_RFC6962),
        mklog(1, "Cloudflare 'Nimbus2026'", NIMBUS_URL, "nimbus", "One operator", LOGLIST_RFC6962),
    };
    struct loglist_log *lp[2] = {&l[0], &l[1]};
    stats_set_log_count(stats, 2);
    setup_row(stats, &l[0], 1111014090ull, 1111014090ull);
    setup_row(stats, &l[1], 4354630040ull, 4354630040ull);
    double t0 = now_s();
    ingest_start(ring, stats, lp, 2);
    read_ring(ring, 28, 30);
    double took = now_s() - t0;
    uint64_t reqs = stats_sum(stats, ST_CT_REQUESTS);
    ingest_stop();
    CHECK(n_msgs == 28, "published %zu, want 28", n_msgs);
    /* 10 get-entries windows + 2 get-sth at least */
    CHECK(reqs >= 12, "requests %llu", (unsigned long long)reqs);
    CHECK(took >= (double)(reqs - 1) * 0.1 * 0.9, "%llu requests in %.2f s: pacing not applied",
          (unsigned long long)reqs, took);
    printf("pacing: %llu requests to one operator in %.2f s\n", (unsigned long long)reqs, took);
    freelog(&l[0]);
    freelog(&l[1]);
    return 0;
}

/* The log list over http: loglist_fetch + loglist_build against the fake
 * log's /loglist.json, then ingest_run on what it built. */
static int scenario_loglist(struct ring *ring, struct stats *stats)
{
    const char *args[] = {"--golden", "argon=" ARGON_URL, "--tiled", "navigli=static-ct/navigli2025h2",
                          "--size", "navigli=300", NULL};
    fakelog_start(args);
    char url[128], err[256], *json = NULL, want[128];
    size_t len = 0;
    struct loglist ll;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/loglist.json", fake_port);
    cfg.ct_logs_url = url;
    CHECK(loglist_fetch(&cfg, &json, &len, err, sizeof err) == 0, "fetch: %s", err);
    CHECK(json && loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0, "build: %s", err);
    free(json);
    CHECK(ll.n_logs == 2 && ll.n_groups == 2, "%zu logs, %zu groups (retired log must be skipped)", ll.n_logs, ll.n_groups);
    if (ll.n_logs != 2) return 0;
    snprintf(want, sizeof want, "http://127.0.0.1:%d/argon/", fake_port);
    CHECK(ll.logs[0].kind == LOGLIST_RFC6962 && strcmp(ll.logs[0].url, want) == 0 &&
          strcmp(ll.logs[0].name, "Fake log argon") == 0, "log 0 %s %s", ll.logs[0].name, ll.logs[0].url);
    CHECK(ll.logs[1].kind == LOGLIST_TILED && ll.logs[1].origin && strcmp(ll.logs[1].origin, "fakelog.test/navigli") == 0,
          "log 1 origin %s", ll.logs[1].origin ? ll.logs[1].origin : "(none)");
    /* Follow both in one process from their saved starts: 20 argon indexes
     * (13 certificates) and navigli entries 0..299. The checkpoint origin is
     * checked against the list's submission URL. */
    struct loglist_log *lp[2] = {&ll.logs[0], &ll.logs[1]};
    stats_set_log_count(stats, 2);
    setup_row(stats, &ll.logs[0], 1111014090ull, 1111014090ull);
    setup_row(stats, &ll.logs[1], 0, 300);
    ingest_start(ring, stats, lp, 2);
    read_ring(ring, 313, 30);
    for (double t1 = now_s(); now_s() - t1 < 0.3;) read_ring(ring, n_msgs + 1, 0.05);
    ingest_stop();
    CHECK(n_msgs == 313, "published %zu, want 13 + 300", n_msgs);
    CHECK(stats_log(stats, 1)->next_index == 300 && stats_log(stats, 1)->health == LOG_HEALTHY, "navigli %llu health %u",
          (unsigned long long)stats_log(stats, 1)->next_index, stats_log(stats, 1)->health);
    loglist_free(&ll);
    return 0;
}

/* request_timeout_secs = 1 and a get-sth that takes 3 s: the request times
 * out, is retried, and the log still delivers everything. */
static int scenario_timeout(struct ring *ring, struct stats *stats)
{
    const char *args[] = {"--golden", "argon=" ARGON_URL, "--fault", "argon:slow:sth:1:3", NULL};
    fakelog_start(args);
    cfg.ct_log.request_timeout_secs = 1;
    struct loglist_log l = mklog(0, "Google 'Argon2026h2'", ARGON_URL, "argon", "Google", LOGLIST_RFC6962);
    struct loglist_log *lp[1] = {&l};
    stats_set_log_count(stats, 1);
    setup_row(stats, &l, 1111014090ull, 1111014090ull);
    double t0 = now_s();
    ingest_start(ring, stats, lp, 1);
    read_ring(ring, 13, 20);
    double took = now_s() - t0;
    ingest_stop();
    CHECK(n_msgs == 13, "published %zu, want 13", n_msgs);
    CHECK(stats_sum(stats, ST_CT_REQUEST_FAILURES) >= 1, "the slow get-sth did not time out");
    CHECK(took < 3.0, "took %.2f s: the 1 s timeout was not applied", took);
    compare_golden(0, ARGON_URL, 0);
    freelog(&l);
    return 0;
}

/* Signed tree heads: "pilot" serves a real Pilot STH (size 3721782) and 4
 * real entries below it, with the Pilot key from the log list: verified,
 * the 4 entries published. "argon" serves an unsigned STH but is given the
 * same key: refused, nothing published, the log goes unhealthy. */
static int scenario_verify(struct ring *ring, struct stats *stats)
{
    const char *args[] = {
        "--entries", "pilot=rfc6962/get-entries/google-pilot_2013_four-x509-entries.json@3721778",
        "--sth", "pilot=rfc6962/get-sth/google-pilot_3721782.json",
        "--golden", "argon=" ARGON_URL, NULL,
    };
    fakelog_start(args);
    static const char *pilot_key =
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfahLEimAoz2t01p3uMziiLOl/fHTDM0YDOhBRuiBARsV4UvxG2LdNgoIGLrtCzWE0J5APC2em4JlvR8EEEFMoA==";
    uint8_t key[128];
    size_t kl = 0;
    if (mbedtls_base64_decode(key, sizeof key, &kl, (const unsigned char *)pilot_key, strlen(pilot_key)) != 0) die("key");
    struct loglist_log l[2] = {
        mklog(0, "Google 'Pilot' log", "https://ct.googleapis.com/pilot/", "pilot", "Google", LOGLIST_RFC6962),
        mklog(1, "Google 'Argon2026h2'", ARGON_URL, "argon", "Google", LOGLIST_RFC6962),
    };
    l[0].key = key;
    l[0].key_len = kl;
    l[1].key = key;
    l[1].key_len = kl;
    struct loglist_log *lp[2] = {&l[0], &l[1]};
    stats_set_log_count(stats, 2);
    setup_row(stats, &l[0], 3721778ull, 3721778ull);
    setup_row(stats, &l[1], 1111014090ull, 1111014090ull);
    ingest_start(ring, stats, lp, 2);
    read_ring(ring, 4, 15);
    double t0 = now_s();
    while (stats_log(stats, 1)->health != LOG_UNHEALTHY && now_s() - t0 < 10) read_ring(ring, 100, 0.05);
    ingest_stop();
    size_t pilot = 0, argon = 0;
    for (size_t i = 0; i < n_msgs; i++) {
        if (msgs[i].log_id == 0) {
            CHECK(msgs[i].index == 3721778ull + pilot, "pilot message %zu index %llu", pilot,
                  (unsigned long long)msgs[i].index);
            pilot++;
        } else {
            argon++;
        }
    }
    CHECK(pilot == 4, "pilot published %zu, want 4", pilot);
    CHECK(argon == 0, "argon published %zu with an unverifiable STH", argon);
    CHECK(stats_log(stats, 0)->tree_size == 3721782ull && stats_log(stats, 0)->next_index == 3721782ull,
          "pilot position %llu/%llu", (unsigned long long)stats_log(stats, 0)->next_index,
          (unsigned long long)stats_log(stats, 0)->tree_size);
    CHECK(stats_log(stats, 1)->health == LOG_UNHEALTHY && stats_log(stats, 1)->next_index == 1111014090ull,
          "argon health %u next %llu", stats_log(stats, 1)->health, (unsigned long long)stats_log(stats, 1)->next_index);
    l[0].key = l[1].key = NULL;
    freelog(&l[0]);
    freelog(&l[1]);
    return 0;
}

/* The log cannot serve its issuers (404): after retry_max_attempts each is
 * given up and the entries go out without chain elements; the log does not
 * stall. */
static int scenario_noissuer(struct ring *ring, struct stats *stats)
{
    const char *args[] = {"--tiled", "navigli=static-ct/navigli2025h2", "--size", "navigli=10",
                          "--fault", "navigli:404:issuer:1000", NULL};
    fakelog_start(args);
    struct loglist_log l = mklog(0, "Navigli 2025h2", NAVIGLI_URL, "navigli", "Geomys", LOGLIST_TILED);
    struct loglist_log *lp[1] = {&l};
    stats_set_log_count(stats, 1);
    setup_row(stats, &l, 0, 10);
    ingest_start(ring, stats, lp, 1);
    read_ring(ring, 10, 20);
    ingest_stop();
    CHECK(n_msgs == 10, "published %zu, want 10", n_msgs);
    for (size_t i = 0; i < n_msgs; i++)
        CHECK(msgs[i].index == i && strstr(msgs[i].json[0], "\"chain\":[]"), "message %zu: index %llu, chain not empty",
              i, (unsigned long long)msgs[i].index);
    CHECK(stats_sum(stats, ST_PARSE_FAILURES) == 0, "parse failures %llu", (unsigned long long)stats_sum(stats, ST_PARSE_FAILURES));
    freelog(&l);
    return 0;
}

static int scenario_offline(struct ring *ring, struct stats *stats)
{
    /* Port 1 on loopback: nothing listens, every connect is refused at once. */
    struct loglist_log l[2] = {0};
    l[0].name = "offline rfc6962";
    l[0].url = "https://ct.example.invalid/log/";
    l[0].fetch_url = "http://127.0.0.1:1/log/";
    l[0].operator_name = "nobody";
    l[0].kind = LOGLIST_RFC6962;
    l[0].log_id = 0;
    l[1] = l[0];
    l[1].name = "offline tiled";
    l[1].url = "https://tiles.example.invalid/";
    l[1].fetch_url = "http://127.0.0.1:1/tiles/";
    l[1].kind = LOGLIST_TILED;
    l[1].log_id = 1;
    struct loglist_log *lp[2] = {&l[0], &l[1]};
    stats_set_log_count(stats, 2);
    setup_row(stats, &l[0], 0, 0);
    setup_row(stats, &l[1], 0, 0);
    ingest_start(ring, stats, lp, 2);
    usleep(2500000);
    CHECK(waitpid(ingest_pid, NULL, WNOHANG) == 0, "ingest exited while offline");
    for (unsigned i = 0; i < 2; i++) {
        struct stats_log *sl = stats_log(stats, i);
        CHECK(sl->health == LOG_UNHEALTHY, "%s health %u", l[i].name, sl->health);
        CHECK(sl->consecutive_failures >= 3, "%s failures %u", l[i].name, sl->consecutive_failures);
        CHECK(sl->last_success_ms == 0, "%s success?", l[i].name);
    }
    uint64_t fails = stats_sum(stats, ST_CT_REQUEST_FAILURES);
    /* backoff 50..400 ms +-12% over 2.5 s: about 6-10 attempts per log */
    CHECK(fails >= 6 && fails <= 30, "request failures %llu: no backoff?", (unsigned long long)fails);
    double cpu = ingest_stop();
    CHECK(cpu < 1.5, "ingest used %.2f s CPU in 2.5 s offline: spinning?", cpu);
    printf("offline: %llu failed requests in 2.5 s, cpu %.2f s\n", (unsigned long long)fails, cpu);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s golden|tiled|fresh|dedup|pacing|loglist|timeout|verify|noissuer|offline TESTDATA FAKELOG_PY SCRATCH\n", argv[0]);
        return 2;
    }
    testdata = argv[2];
    fakelog_py = argv[3];
    scratch = argv[4];
    log_set_level(LOG_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_config();
    load_golden();
    struct ring *ring = ring_create(64u << 20);
    struct stats *stats = stats_create();
    if (!ring || !stats) die("ring/stats");
    alarm(120);   /* bounded, whatever happens */
    if (strcmp(argv[1], "golden") == 0) scenario_golden(ring, stats);
    else if (strcmp(argv[1], "tiled") == 0) scenario_tiled(ring, stats);
    else if (strcmp(argv[1], "fresh") == 0) scenario_fresh(ring, stats);
    else if (strcmp(argv[1], "offline") == 0) scenario_offline(ring, stats);
    else if (strcmp(argv[1], "dedup") == 0) scenario_dedup(ring, stats);
    else if (strcmp(argv[1], "pacing") == 0) scenario_pacing(ring, stats);
    else if (strcmp(argv[1], "loglist") == 0) scenario_loglist(ring, stats);
    else if (strcmp(argv[1], "timeout") == 0) scenario_timeout(ring, stats);
    else if (strcmp(argv[1], "verify") == 0) scenario_verify(ring, stats);
    else if (strcmp(argv[1], "noissuer") == 0) scenario_noissuer(ring, stats);
    else die("unknown scenario");
    cleanup();
    for (size_t i = 0; i < n_msgs; i++)
        for (int f = 0; f < RING_NFORMATS; f++) free(msgs[i].json[f]);
    free(msgs);
    cJSON_Delete(golden);
    ring_destroy(ring);
    stats_destroy(stats);
    curl_global_cleanup();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
