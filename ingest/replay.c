/* replay.c - the replay source.
 *
 * Reads a recorded get-entries response ({"entries":[{leaf_input,extra_data}]})
 * or a golden corpus file ([{log_name,log_url,cert_index,leaf_input,extra_data}])
 * and publishes its entries into the ring at a fixed rate, rendering each one
 * through the same pipeline as live ingest (so `seen` is the real time of
 * publication). The supervisor decodes the whole file once, before it forks
 * (replay_open); per entry the cost is one render and one ring_publish.
 *
 * Pacing: entry k is due at t0 + k/rate. Each tick publishes every entry that
 * is due (as one batch, one wakeup of the fanout workers) and sleeps until the
 * next one is due, but never less than 100 us, so high rates become batches
 * instead of a busy loop. */
#include "ingest/replay.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/b64.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"
#include "ingest/ctapi.h"
#include "ingest/pipeline.h"
#include "shm/proctable.h"

#define REPLAY_MAX_BATCH 4096

struct replay_log {
    char *name;
    char *url;
};

struct replay_entry {
    const uint8_t *leaf, *extra;  /* into the get-entries arena, or owned (golden) */
    size_t leaf_len, extra_len;
    uint64_t index;
    unsigned log;                 /* index into replay_source.logs */
    bool bad;                     /* undecodable: counted as a parse failure when due */
};

struct replay_source {
    struct replay_entry *entries;
    size_t n;
    bool owned;                   /* entries own their bytes (golden corpus) */
    struct ctapi_entries api;     /* get-entries: the decoded arena */
    struct replay_log logs[STATS_MAX_LOGS];
    unsigned n_logs;
};

static volatile sig_atomic_t g_stop;

static void on_stop(int sig) { (void)sig; g_stop = 1; }

static int find_or_add_log(struct replay_source *rs, const char *name, const char *url)
{
    for (unsigned i = 0; i < rs->n_logs; i++)
        if (strcmp(rs->logs[i].name, name) == 0 && strcmp(rs->logs[i].url, url) == 0)
            return (int)i;
    if (rs->n_logs >= STATS_MAX_LOGS)
        return -1;
    rs->logs[rs->n_logs].name = strdup(name);
    rs->logs[rs->n_logs].url = strdup(url);
    if (!rs->logs[rs->n_logs].name || !rs->logs[rs->n_logs].url)
        return -1;
    return (int)rs->n_logs++;
}

void replay_close(struct replay_source *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; rs->owned && i < rs->n; i++) {
        free((void *)rs->entries[i].leaf);
        free((void *)rs->entries[i].extra);
    }
    free(rs->entries);
    ctapi_entries_free(&rs->api);
    for (unsigned i = 0; i < rs->n_logs; i++) {
        free(rs->logs[i].name);
        free(rs->logs[i].url);
    }
    free(rs);
}

/* A get-entries response has no log identity: it is replayed as the log
 * "Replay" at a URL naming the file, indexes from 0. */
static int load_get_entries(struct replay_source *rs, const char *path, const char *json, size_t len,
                            char *err, size_t errlen)
{
    if (ctapi_entries_parse(json, len, SIZE_MAX, &rs->api, err, errlen) != 0)
        return -1;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char url[512];
    snprintf(url, sizeof url, "https://replay.invalid/%s", base);
    int log = find_or_add_log(rs, "Replay", url);
    rs->entries = calloc(rs->api.n ? rs->api.n : 1, sizeof *rs->entries);
    if (log < 0 || !rs->entries) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < rs->api.n; i++) {
        const struct ctapi_entry *a = &rs->api.v[i];
        rs->entries[i] = (struct replay_entry){.leaf = a->leaf_input, .leaf_len = a->leaf_len,
            .extra = a->extra_data, .extra_len = a->extra_len, .index = i, .log = (unsigned)log,
            .bad = a->bad != 0};
    }
    rs->n = rs->api.n;
    return 0;
}

static int load_corpus(struct replay_source *rs, const cJSON *arr, char *err, size_t errlen)
{
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    rs->owned = true;
    rs->entries = calloc(n ? n : 1, sizeof *rs->entries);
    if (!rs->entries) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, arr) {
        struct replay_entry *e = &rs->entries[i];
        const cJSON *ln = cJSON_GetObjectItemCaseSensitive(item, "log_name");
        const cJSON *lu = cJSON_GetObjectItemCaseSensitive(item, "log_url");
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(item, "cert_index");
        const cJSON *li = cJSON_GetObjectItemCaseSensitive(item, "leaf_input");
        const cJSON *ed = cJSON_GetObjectItemCaseSensitive(item, "extra_data");
        if (!cJSON_IsString(ln) || !cJSON_IsString(lu) || !cJSON_IsNumber(ci) || !cJSON_IsString(li) ||
            !cJSON_IsString(ed) || ci->valuedouble < 0 || ci->valuedouble > 9007199254740992.0) {
            snprintf(err, errlen, "record %zu: needs log_name, log_url, cert_index, leaf_input, extra_data", i);
            return -1;
        }
        int log = find_or_add_log(rs, ln->valuestring, lu->valuestring);
        if (log < 0) {
            snprintf(err, errlen, "too many distinct logs (max %d)", STATS_MAX_LOGS);
            return -1;
        }
        uint8_t *leaf = NULL, *extra = NULL;
        e->bad = b64_decode_alloc(li->valuestring, strlen(li->valuestring), &leaf, &e->leaf_len) != 0 ||
                 b64_decode_alloc(ed->valuestring, strlen(ed->valuestring), &extra, &e->extra_len) != 0;
        e->leaf = leaf;
        e->extra = extra;
        e->index = (uint64_t)ci->valuedouble; /* CT indexes exceed 2^31: never valueint */
        e->log = (unsigned)log;
        rs->n = ++i;                          /* so replay_close frees what it took */
    }
    return 0;
}

struct replay_source *replay_open(const char *path, char *err, size_t errlen)
{
    struct replay_source *rs = calloc(1, sizeof *rs);
    char *text = NULL, sub[384];
    size_t len;
    cJSON *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!rs || !f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto err;
    }
    int rc = file_read_all(f, &text, &len);
    fclose(f);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto err;
    }
    root = cJSON_ParseWithLength(text, len);
    if (cJSON_IsArray(root))
        rc = load_corpus(rs, root, sub, sizeof sub);
    else
        rc = load_get_entries(rs, path, text, len, sub, sizeof sub);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s (expected a get-entries response or a corpus array)", path, sub);
        goto err;
    }
    if (rs->n == 0) {
        snprintf(err, errlen, "%s: no entries", path);
        goto err;
    }
    cJSON_Delete(root);
    free(text);
    return rs;
err:
    cJSON_Delete(root);
    free(text);
    replay_close(rs);
    return NULL;
}

size_t replay_count(const struct replay_source *rs) { return rs->n; }

void replay_register_logs(const struct replay_source *rs, struct stats *stats)
{
    stats_set_log_count(stats, rs->n_logs);
    for (unsigned i = 0; i < rs->n_logs; i++) {
        struct stats_log *l = stats_log(stats, i);
        snprintf(l->name, sizeof l->name, "%s", rs->logs[i].name);
        snprintf(l->url, sizeof l->url, "%s", rs->logs[i].url);
        l->health = LOG_HEALTH_UNKNOWN;
    }
}

/* Renders and publishes entry e; false when it could not be rendered. */
static bool publish_one(const struct replay_params *p, struct pipeline *pl,
                        const struct replay_entry *e, bool first_pass)
{
    struct pipeline_out out;
    char perr[256] = "leaf_input or extra_data is not valid base64";
    const struct replay_log *log = &p->src->logs[e->log];
    if (e->bad || pipeline_render_rfc6962(pl, e->leaf, e->leaf_len, e->extra, e->extra_len, e->index,
                                          log->name, log->url, wall_secs(), &out, perr, sizeof perr) != 0) {
        if (first_pass)
            log_warn("replay: entry %llu of %s: %s (counted, skipped)",
                     (unsigned long long)e->index, log->url, perr);
        stats_add(p->stats, p->stats_slot, ST_PARSE_FAILURES, 1);
        if (stats_log(p->stats, e->log)) stats_log_add(&stats_log(p->stats, e->log)->parse_failures, 1);
        return false;
    }
    struct ring_message m;
    pipeline_message(&out, e->index, e->log, p->bench_stamp, &m);
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
        sl->last_success_ms = wall_ms();
        sl->health = LOG_HEALTHY;
        sl->entries++;
    }
    return true;
}

int replay_run(const struct replay_params *p)
{
    const struct replay_source *rs = p->src;
    struct pipeline *pl = pipeline_new();
    if (!pl) {
        log_error("replay: out of memory");
        return 1;
    }
    pipeline_set_fixed_seen(pl, p->bench_stamp);
    if (pipeline_set_absent_names(pl, config_absent_names_null(p->cfg)) != 0) {   /* no deflate: fanout/zalone.h */
        log_error("replay: out of memory");
        pipeline_free(pl);
        return 1;
    }

    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        log_error("replay: sigaction: %s", strerror(errno));
        pipeline_free(pl);
        return 1;
    }
    log_info("replay: %zu entries at %.1f/s%s%s", rs->n, p->rate, p->loop ? ", looping" : "",
             p->bench_stamp ? ", benchmark stamps" : "");

    uint64_t t0 = mono_ns(), published = 0;
    const uint64_t min_sleep_ns = 100000;
    proctable_set_state(PROC_RUNNING);
    while (!g_stop) {
        proctable_beat(); /* the supervisor's watchdog (shm/proctable.h) */
        uint64_t due = (uint64_t)((double)(mono_ns() - t0) / 1e9 * p->rate) + 1;
        unsigned batch = 0;
        while (published < due && batch < REPLAY_MAX_BATCH && !g_stop &&
               !stats_nats_gate_closed(p->stats, ring_tail(p->ring))) { /* NATS behind: wait */
            if (!p->loop && published >= rs->n)
                break;
            publish_one(p, pl, &rs->entries[published % rs->n], published < rs->n);
            published++;
            batch++;
        }
        if (batch)
            ring_notify(p->ring);
        if (!p->loop && published >= rs->n) {
            log_info("replay: end of the file after %llu entries; idle until stopped",
                     (unsigned long long)published);
            while (!g_stop) {
                proctable_beat();
                struct timespec beat = {0, PROCTABLE_BEAT_MS * 1000000L};
                nanosleep(&beat, NULL); /* EINTR on SIGTERM */
            }
            break;
        }
        /* sleep until the next entry is due */
        uint64_t next_due = t0 + (uint64_t)((double)published / p->rate * 1e9);
        uint64_t now = mono_ns();
        uint64_t wait = next_due > now ? next_due - now : 0;
        if (wait < min_sleep_ns)
            wait = batch == REPLAY_MAX_BATCH ? 0 : min_sleep_ns;
        if (wait > PROCTABLE_BEAT_MS * 1000000ull)
            wait = PROCTABLE_BEAT_MS * 1000000ull; /* beat at slow rates too */
        if (wait) {
            struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull)};
            nanosleep(&ts, NULL); /* EINTR on SIGTERM is how we stop */
        }
    }
    pipeline_free(pl);
    return 0;
}
