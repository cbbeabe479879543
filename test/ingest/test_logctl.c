/* test_logctl.c - log list control: Apple's list merged with Chrome's
 * (deduplicated by log id and URL), per-log overrides (log_overrides and
 * custom_logs/static_logs items), expected_log_id, enabled: false, and the
 * split of operator_pacing across ingest processes. Against the real list in
 * test/data/loglist and the hand-made Apple-form list beside it.
 * Usage: test_logctl <testdata dir> */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "ingest/loglist.h"
#include "test/unit_check.h"

static const char *testdata;

static char *slurp(const char *rel, size_t *len)
{
    char path[1024];
    char *buf = NULL;
    snprintf(path, sizeof path, "%s/%s", testdata, rel);
    FILE *f = fopen(path, "rb");
    if (!f || file_read_all(f, &buf, len) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    return buf;
}

static void base_config(struct config *cfg, const char *group_by)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->ingest.group_by = (char *)group_by;
    cfg->ct_log.list_enabled = cfg->ct_log.rfc6962_enabled = cfg->ct_log.static_enabled = true;
    cfg->ct_logs_signature = (char *)"off";
    cfg->apple_logs_url = (char *)"";
}

static const struct loglist_log *find(const struct loglist *ll, const char *url)
{
    for (size_t i = 0; i < ll->n_logs; i++)
        if (strcmp(ll->logs[i].url, url) == 0) return &ll->logs[i];
    return NULL;
}

static size_t count_url(const struct loglist *ll, const char *url)
{
    size_t n = 0;
    for (size_t i = 0; i < ll->n_logs; i++) n += strcmp(ll->logs[i].url, url) == 0;
    return n;
}

/* The Chrome list of the fixtures follows 34 RFC 6962 logs; the Apple-form
 * list adds Solera2026h1 and the tiled Willow2025h2c; its Argon2026h1,
 * Xenon2026h2 (written without the trailing '/') and Oak2026h1 are the same
 * logs, and its Argon2020 is rejected. */
static void test_merge(void)
{
    size_t glen, alen, mlen = 0;
    char err[512], *g = slurp("loglist/all_logs_list.v3.json", &glen);
    char *a = slurp("loglist/apple_log_list.v4.json", &alen);
    char *m = loglist_merge(g, glen, a, alen, &mlen, err, sizeof err);
    struct config cfg;
    struct loglist ll;
    CHECK(m != NULL);
    base_config(&cfg, "operator");
    CHECK(m && loglist_build(&cfg, m, mlen, &ll, err, sizeof err) == 0);
    if (m) {
        CHECK(ll.n_logs == 36);
        CHECK(count_url(&ll, "https://ct.googleapis.com/logs/eu1/xenon2026h2/") == 1);
        CHECK(count_url(&ll, "https://ct.googleapis.com/logs/us1/argon2026h1/") == 1);
        CHECK(count_url(&ll, "https://oak.ct.letsencrypt.org/2026h1/") == 1);
        CHECK(find(&ll, "https://ct.googleapis.com/logs/argon2020/") == NULL);
        const struct loglist_log *s = find(&ll, "https://ct.googleapis.com/logs/eu1/solera2026h1/");
        CHECK(s && strcmp(s->operator_name, "Google") == 0 && s->kind == LOGLIST_RFC6962 && s->key && s->have_id);
        const struct loglist_log *w = find(&ll, "https://willow.ct.letsencrypt.org/2025h2c/");
        CHECK(w && w->kind == LOGLIST_TILED && w->origin && strcmp(w->origin, "willow.ct.letsencrypt.org/2025h2c") == 0);
        /* the Google group now has its 8 logs and Solera2026h1 */
        for (size_t i = 0; i < ll.n_groups; i++)
            if (strcmp(ll.groups[i].name, "Google") == 0) CHECK(ll.groups[i].n_logs == 9);
        loglist_free(&ll);
    }
    free(m);

    /* the same log under another URL, recognised by its log id */
    static const char other[] =
        "{\"operators\":[{\"name\":\"Mirror\",\"logs\":[{\"description\":\"Argon2026h1 mirror\","
        "\"log_id\":\"DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE=\",\"url\":\"https://mirror.example/argon2026h1/\","
        "\"state\":{\"usable\":{\"timestamp\":\"2025-01-01T00:00:00Z\"}}}]}]}";
    m = loglist_merge(g, glen, other, strlen(other), &mlen, err, sizeof err);
    CHECK(m && loglist_build(&cfg, m, mlen, &ll, err, sizeof err) == 0);
    if (m) {
        CHECK(ll.n_logs == 34 && find(&ll, "https://mirror.example/argon2026h1/") == NULL);
        loglist_free(&ll);
    }
    free(m);
    /* a second list that is not a list: refused (the caller keeps the first) */
    m = loglist_merge(g, glen, "{\"operators\":5}", 15, &mlen, err, sizeof err);
    CHECK(m == NULL && strcmp(err, "Apple's log list: no \"operators\" array") == 0);
    if (m || strcmp(err, "Apple's log list: no \"operators\" array") != 0) fprintf(stderr, "  %s\n", err);
    free(m);
    free(g);
    free(a);
}

/* apple_logs_url through loglist_fetch (file:// URLs, as an offline mirror) */
static void test_fetch_apple(void)
{
    char gurl[1100], aurl[1100], err[512];
    char *json = NULL;
    size_t len = 0;
    struct config cfg;
    struct loglist ll;
    base_config(&cfg, "operator");
    cfg.ct_log.request_timeout_secs = 10;
    snprintf(gurl, sizeof gurl, "file://%s/loglist/all_logs_list.v3.json", testdata);
    snprintf(aurl, sizeof aurl, "file://%s/loglist/apple_log_list.v4.json", testdata);
    cfg.ct_logs_url = gurl;
    cfg.apple_logs_url = aurl;
    CHECK(loglist_fetch(&cfg, &json, &len, err, sizeof err) == 0 && json);
    CHECK(json && loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0 && ll.n_logs == 36);
    if (json) loglist_free(&ll);
    free(json);
    json = NULL;
    /* Apple's list missing: Chrome's alone */
    snprintf(aurl, sizeof aurl, "file://%s/loglist/no-such-list.json", testdata);
    CHECK(loglist_fetch(&cfg, &json, &len, err, sizeof err) == 0 && json);
    CHECK(json && loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0 && ll.n_logs == 34);
    if (json) loglist_free(&ll);
    free(json);
}

static void test_overrides(void)
{
    size_t glen;
    char err[512], *g = slurp("loglist/all_logs_list.v3.json", &glen);
    struct config cfg;
    struct loglist ll;
    base_config(&cfg, "log");
    cfg.ct_log.batch_size = 256;
    cfg.custom_logs[0] = (struct config_log){.name = "Mine", .url = "https://ct.example.net/log",
                                             .o = {.batch_size = 16, .poll_interval_ms = 250}};
    cfg.custom_logs[1] = (struct config_log){.name = "Pinned", .url = "https://ct.example.net/pinned/",
                                             .o = {.expected_log_id = "DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE="}};
    /* an item naming a list log's URL sets that log's settings */
    cfg.custom_logs[2] = (struct config_log){.name = "Argon", .url = "https://ct.googleapis.com/logs/us1/argon2026h2",
                                             .o = {.batch_size = 64, .poll_interval_ms = 700}};
    cfg.n_custom_logs = 3;
    cfg.log_overrides[0] = (struct config_log_override){.match = "https://ct.googleapis.com/logs/us1/argon2026h2/",
                                                        .batch_size = 32, .fetch_concurrency = 2};
    cfg.log_overrides[1] = (struct config_log_override){.match = "Google 'Argon2026h2' log",
                                                        .batch_size = 1000, .poll_interval_ms = 5000};
    cfg.log_overrides[2] = (struct config_log_override){.match = "Cloudflare 'Nimbus2026'", .enabled = -1};
    cfg.log_overrides[3] = (struct config_log_override){.match = "https://ct.googleapis.com/logs/us1/argon2026h1/",
        .expected_log_id = "DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE="};
    cfg.log_overrides[4] = (struct config_log_override){.match = "Google 'Xenon2026h2' log",
        .expected_log_id = "DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE="};
    cfg.n_log_overrides = 5;
    CHECK(loglist_build(&cfg, g, glen, &ll, err, sizeof err) == 0);
    /* 34 list logs, Nimbus2026 disabled, 2 custom logs (the third is Argon2026h2) */
    CHECK(ll.n_logs == 35);
    CHECK(find(&ll, "https://ct.cloudflare.com/logs/nimbus2026/") == NULL);
    const struct loglist_log *l = find(&ll, "https://ct.googleapis.com/logs/us1/argon2026h2/");
    /* URL key (32, 2) over name key (1000 -> no, 5000 poll) over the item (64, 700) */
    CHECK(l && l->batch_size == 32 && l->fetch_concurrency == 2 && l->poll_interval_ms == 5000 && !l->refused);
    l = find(&ll, "https://ct.example.net/log/");
    CHECK(l && l->batch_size == 16 && l->poll_interval_ms == 250 && l->fetch_concurrency == 0 && !l->refused);
    l = find(&ll, "https://ct.googleapis.com/logs/us1/argon2026h1/");
    CHECK(l && !l->refused && l->batch_size == 0);
    l = find(&ll, "https://ct.googleapis.com/logs/eu1/xenon2026h2/");
    CHECK(l && l->refused && strcmp(l->refused, "expected_log_id mismatch: the log list gives "
                                    "2AlVO5RPev/IFhlvlE+Fq7D4/F6HVSYPFdEucrtFSxQ=") == 0);
    l = find(&ll, "https://ct.example.net/pinned/");
    CHECK(l && l->refused && strcmp(l->refused, "expected_log_id cannot be checked: no log list gives "
                                    "this log's id") == 0);
    /* untouched logs keep the ct_log.* values (0 = not overridden) */
    l = find(&ll, "https://oak.ct.letsencrypt.org/2026h1/");
    CHECK(l && l->batch_size == 0 && l->poll_interval_ms == 0 && l->fetch_concurrency == 0 && !l->refused);
    loglist_free(&ll);
    free(g);
}

/* operator_pacing is split across the processes holding an operator's logs */
static void test_operator_processes(void)
{
    size_t glen;
    char err[512], *g = slurp("loglist/all_logs_list.v3.json", &glen);
    struct config cfg;
    struct loglist ll;
    base_config(&cfg, "operator");
    CHECK(loglist_build(&cfg, g, glen, &ll, err, sizeof err) == 0);
    const struct loglist_log *l = find(&ll, "https://ct.googleapis.com/logs/us1/argon2026h2/");
    CHECK(l && l->operator_processes == 1);
    loglist_free(&ll);
    base_config(&cfg, "log");
    CHECK(loglist_build(&cfg, g, glen, &ll, err, sizeof err) == 0);
    l = find(&ll, "https://ct.googleapis.com/logs/us1/argon2026h2/");
    CHECK(l && l->operator_processes == 8);     /* Google's 8 followed logs, one process each */
    l = find(&ll, "https://ct.cloudflare.com/logs/nimbus2026/");
    CHECK(l && l->operator_processes == 2);
    loglist_free(&ll);
    base_config(&cfg, "log");
    cfg.ingest.max_processes = 3;               /* 34 logs round-robin into 3 processes */
    CHECK(loglist_build(&cfg, g, glen, &ll, err, sizeof err) == 0);
    l = find(&ll, "https://ct.googleapis.com/logs/us1/argon2026h2/");
    CHECK(l && l->operator_processes == 3);
    loglist_free(&ll);
    free(g);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_logctl <testdata dir>\n");
        return 2;
    }
    char *abs = realpath(argv[1], NULL);   /* file:// URLs need an absolute path */
    testdata = abs ? abs : argv[1];
    static const struct unit_test tests[] = {
        {"merge", test_merge},
        {"fetch_apple", test_fetch_apple},
        {"overrides", test_overrides},
        {"operator_processes", test_operator_processes},
    };
    int rc = run_unit_tests(tests, sizeof tests / sizeof tests[0]);
    free(abs);
    return rc;
}
