/* replay.c - the replay source.
 *
 * Reads a recorded get-entries response ({"entries":[{leaf_input,extra_data}]})
 * or a golden corpus file ([{log_name,log_url,cert_index,leaf_input,extra_data}])
 * and publishes its entries into the ring at a fixed rate, rendering each one
 * through the same pipeline as live ingest (so `seen` is the real time of
 * publication). The whole file is decoded once at start; per entry the cost is
 * one render and one ring_publish.
 *
 * Pacing: entry k is due at t0 + k/rate. Each tick publishes every entry that
 * is due (as one batch, one wakeup of the fanout workers) and sleeps until the
 * next one is due, but never less than 100 us, so high rates become batches
 * instead of a busy loop. */
#include "ingest/replay.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <mbedtls/base64.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "ingest/pipeline.h"

#define REPLAY_MAX_BATCH 4096

struct replay_log {
    char *name;
    char *url;
};

struct replay_entry {
    uint8_t *leaf, *extra;
    size_t leaf_len, extra_len;
    uint64_t index;
    unsigned log;            /* index into replay_file.logs */
};

struct replay_file {
    struct replay_entry *entries;
    size_t n;
    struct replay_log logs[STATS_MAX_LOGS];
    unsigned n_logs;
};

static volatile sig_atomic_t g_stop;

static void on_stop(int sig) { (void)sig; g_stop = 1; }

static char *read_all(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 1 >= cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto err;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto err;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
err:
    free(buf);
    fclose(f);
    return NULL;
}

static int b64_field(const cJSON *obj, const char *key, uint8_t **out, size_t *out_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v))
        return -1;
    size_t in_len = strlen(v->valuestring), need = 0;
    mbedtls_base64_decode(NULL, 0, &need, (const unsigned char *)v->valuestring, in_len);
    uint8_t *buf = malloc(need ? need : 1);
    if (!buf)
        return -1;
    if (mbedtls_base64_decode(buf, need, out_len, (const unsigned char *)v->valuestring, in_len) != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

static int find_or_add_log(struct replay_file *rf, const char *name, const char *url)
{
    for (unsigned i = 0; i < rf->n_logs; i++)
        if (strcmp(rf->logs[i].name, name) == 0 && strcmp(rf->logs[i].url, url) == 0)
            return (int)i;
    if (rf->n_logs >= STATS_MAX_LOGS)
        return -1;
    rf->logs[rf->n_logs].name = strdup(name);
    rf->logs[rf->n_logs].url = strdup(url);
    if (!rf->logs[rf->n_logs].name || !rf->logs[rf->n_logs].url)
        return -1;
    return (int)rf->n_logs++;
}

static void replay_file_free(struct replay_file *rf)
{
    for (size_t i = 0; i < rf->n; i++) {
        free(rf->entries[i].leaf);
        free(rf->entries[i].extra);
    }
    free(rf->entries);
    for (unsigned i = 0; i < rf->n_logs; i++) {
        free(rf->logs[i].name);
        free(rf->logs[i].url);
    }
    memset(rf, 0, sizeof *rf);
}

/* A get-entries response has no log identity: it is replayed as the log
 * "Replay" at a URL naming the file, indexes from 0. */
static int replay_file_load(struct replay_file *rf, const char *path, char *err, size_t errlen)
{
    memset(rf, 0, sizeof *rf);
    size_t len;
    char *text = read_all(path, &len, err, errlen);
    if (!text)
        return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) {
        snprintf(err, errlen, "%s: not valid JSON", path);
        return -1;
    }
    const cJSON *arr = root;
    bool golden = cJSON_IsArray(root);
    if (!golden) {
        arr = cJSON_GetObjectItemCaseSensitive(root, "entries");
        if (!cJSON_IsArray(arr)) {
            snprintf(err, errlen, "%s: expected a get-entries response {\"entries\":[...]} or a corpus array", path);
            goto err;
        }
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0) {
        snprintf(err, errlen, "%s: no entries", path);
        goto err;
    }
    rf->entries = calloc(n, sizeof *rf->entries);
    if (!rf->entries) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char default_url[512];
    snprintf(default_url, sizeof default_url, "https://replay.invalid/%s", base);
    size_t i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr) {
        struct replay_entry *e = &rf->entries[i];
        const char *name = "Replay", *url = default_url;
        e->index = i;
        if (golden) {
            const cJSON *ln = cJSON_GetObjectItemCaseSensitive(item, "log_name");
            const cJSON *lu = cJSON_GetObjectItemCaseSensitive(item, "log_url");
            const cJSON *ci = cJSON_GetObjectItemCaseSensitive(item, "cert_index");
            if (!cJSON_IsString(ln) || !cJSON_IsString(lu) || !cJSON_IsNumber(ci) ||
                ci->valuedouble < 0 || ci->valuedouble > 9007199254740992.0) {
                snprintf(err, errlen, "%s: record %zu: needs log_name, log_url, cert_index, leaf_input, extra_data", path, i);
                goto err;
            }
            name = ln->valuestring;
            url = lu->valuestring;
            e->index = (uint64_t)ci->valuedouble; /* CT indexes exceed 2^31: never valueint */
        }
        int log = find_or_add_log(rf, name, url);
        if (log < 0) {
            snprintf(err, errlen, "%s: too many distinct logs (max %d)", path, STATS_MAX_LOGS);
            goto err;
        }
        e->log = (unsigned)log;
        rf->n = i + 1; /* so replay_file_free frees what this record took */
        if (b64_field(item, "leaf_input", &e->leaf, &e->leaf_len) != 0 ||
            b64_field(item, "extra_data", &e->extra, &e->extra_len) != 0) {
            snprintf(err, errlen, "%s: entry %zu: leaf_input and extra_data must be base64 strings", path, i);
            goto err;
        }
        i++;
    }
    cJSON_Delete(root);
    return 0;
err:
    cJSON_Delete(root);
    replay_file_free(rf);
    return -1;
}

long replay_check_file(const char *file, char *err, size_t errlen)
{
    struct replay_file rf;
    if (replay_file_load(&rf, file, err, errlen) != 0)
        return -1;
    long n = (long)rf.n;
    replay_file_free(&rf);
    return n;
}

int replay_register_logs(struct stats *stats, const char *file, char *err, size_t errlen)
{
    struct replay_file rf;
    if (replay_file_load(&rf, file, err, errlen) != 0)
        return -1;
    stats_set_log_count(stats, rf.n_logs);
    for (unsigned i = 0; i < rf.n_logs; i++) {
        struct stats_log *l = stats_log(stats, i);
        snprintf(l->name, sizeof l->name, "%s", rf.logs[i].name);
        snprintf(l->url, sizeof l->url, "%s", rf.logs[i].url);
        l->health = LOG_HEALTH_UNKNOWN;
    }
    replay_file_free(&rf);
    return 0;
}

static double now_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Renders and publishes entry e; false when it could not be rendered. */
static bool publish_one(const struct replay_params *p, struct pipeline *pl,
                        const struct replay_file *rf, const struct replay_entry *e, bool first_pass)
{
    struct pipeline_out out;
    char perr[256];
    const struct replay_log *log = &rf->logs[e->log];
    if (pipeline_render_rfc6962(pl, e->leaf, e->leaf_len, e->extra, e->extra_len, e->index,
                                log->name, log->url, now_secs(), &out, perr, sizeof perr) != 0) {
        if (first_pass)
            log_warn("replay: entry %llu of %s: %s (counted, skipped)",
                     (unsigned long long)e->index, log->url, perr);
        stats_add(p->stats, p->stats_slot, ST_PARSE_FAILURES, 1);
        return false;
    }
    struct ring_message m = {.cert_index = e->index, .log_id = e->log};
    for (int f = 0; f < RING_NFORMATS; f++) {
        m.json[f] = out.json[f];
        m.json_len[f] = out.len[f];
        m.bench_stamp_off[f] = p->bench_stamp ? out.seen_off[f] : -1;
    }
    if (ring_publish(p->ring, p->producer_id, &m) == 0) {
        log_warn("replay: entry %llu too large for the ring (counted, skipped)", (unsigned long long)e->index);
        stats_add(p->stats, p->stats_slot, ST_PARSE_FAILURES, 1);
        return false;
    }
    stats_add(p->stats, p->stats_slot, ST_ENTRIES_PUBLISHED, 1);
    struct stats_log *sl = stats_log(p->stats, e->log);
    if (sl) {
        sl->next_index = e->index + 1;
        if (e->index + 1 > sl->tree_size)
            sl->tree_size = e->index + 1;
        sl->last_success_ms = (uint64_t)(now_secs() * 1000);
        sl->health = LOG_HEALTHY;
        sl->entries++;
    }
    return true;
}

int replay_run(const struct replay_params *p)
{
    struct replay_file rf;
    char err[512];
    int rc = 1;
    struct pipeline *pl = NULL;
    if (replay_file_load(&rf, p->file, err, sizeof err) != 0) {
        log_error("replay: %s", err);
        return 1;
    }
    pl = pipeline_new();
    if (!pl) {
        log_error("replay: out of memory");
        goto out;
    }
    pipeline_set_fixed_seen(pl, p->bench_stamp);
    malloc_trim(0); /* the JSON tree of the file is freed; keep only the entries */

    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        log_error("replay: sigaction: %s", strerror(errno));
        goto out;
    }
    log_info("replay: %zu entries from %s at %.1f/s%s%s", rf.n, p->file, p->rate,
             p->loop ? ", looping" : "", p->bench_stamp ? ", benchmark stamps" : "");

    uint64_t t0 = mono_ns(), published = 0;
    const uint64_t min_sleep_ns = 100000;
    while (!g_stop) {
        uint64_t now = mono_ns();
        uint64_t due = (uint64_t)((double)(now - t0) / 1e9 * p->rate) + 1;
        unsigned batch = 0;
        while (published < due && batch < REPLAY_MAX_BATCH && !g_stop) {
            size_t k = (size_t)(published % rf.n);
            if (!p->loop && published >= rf.n)
                break;
            publish_one(p, pl, &rf, &rf.entries[k], published < rf.n);
            published++;
            batch++;
        }
        if (batch)
            ring_notify(p->ring);
        if (!p->loop && published >= rf.n) {
            log_info("replay: end of %s after %llu entries; idle until stopped", p->file,
                     (unsigned long long)published);
            while (!g_stop)
                pause();
            break;
        }
        /* sleep until the next entry is due */
        uint64_t next_due = t0 + (uint64_t)((double)published / p->rate * 1e9);
        now = mono_ns();
        uint64_t wait = next_due > now ? next_due - now : 0;
        if (wait < min_sleep_ns)
            wait = batch == REPLAY_MAX_BATCH ? 0 : min_sleep_ns;
        if (wait) {
            struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull)};
            nanosleep(&ts, NULL); /* EINTR on SIGTERM is how we stop */
        }
    }
    rc = 0;
out:
    pipeline_free(pl);
    replay_file_free(&rf);
    return rc;
}
