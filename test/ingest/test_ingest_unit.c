/* test_ingest_unit.c - unit tests of ingest's log list, state file, response
 * parsers and tile paths, against the real fixtures in test/data.
 * Usage: test_ingest_unit <testdata dir> <scratch dir> */
#include <cjson/cJSON.h>
#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ctapi.h"
#include "ingest/ctentry.h"
#include "common/file.h"
#include "ingest/listsig.h"
#include "ingest/loglist.h"
#include "ingest/state.h"

static int failures, checks;
static const char *testdata, *scratch;

#define CHECK(cond, ...) do { \
    checks++; \
    if (!(cond)) { failures++; fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond); \
        fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

static char *slurp(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", testdata, rel);
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno)); exit(2); }
    char *buf = NULL;
    size_t n = 0, cap = 0, r;
    do {
        if (n + 65536 + 1 > cap) { cap = cap ? cap * 2 : 131072; buf = realloc(buf, cap); if (!buf) exit(2); }
        r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
    } while (r > 0);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void base_config(struct config *cfg, const char *group_by)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->ingest.group_by = (char *)group_by;
    cfg->ct_log.list_enabled = cfg->ct_log.rfc6962_enabled = cfg->ct_log.static_enabled = true;
}

/* ct_log.list_enabled / rfc6962_enabled / static_enabled. */
static void test_loglist_switches(void)
{
    struct config cfg;
    struct loglist ll;
    char path[1024], err[256], *json = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/loglist/all_logs_list.v3.json", testdata);
    FILE *f = fopen(path, "rb");
    CHECK(f && file_read_all(f, &json, &len) == 0, "read %s", path);
    if (f) fclose(f);
    base_config(&cfg, "log");
    cfg.static_logs[0] = (struct config_log){.name = "Tiled", .url = "https://tiles.example.net/"};
    cfg.n_static_logs = 1;
    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0 && ll.n_logs == 35, "all: %zu", ll.n_logs);
    loglist_free(&ll);
    cfg.ct_log.rfc6962_enabled = false;
    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0 && ll.n_logs == 1 &&
          ll.logs[0].kind == LOGLIST_TILED, "rfc6962 off: %zu", ll.n_logs);
    loglist_free(&ll);
    cfg.ct_log.rfc6962_enabled = true;
    cfg.ct_log.static_enabled = false;
    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0 && ll.n_logs == 34, "static off: %zu", ll.n_logs);
    loglist_free(&ll);
    free(json);
    json = NULL;
    cfg.ct_log.list_enabled = false;
    cfg.ct_logs_url = "https://127.0.0.1:9/never-fetched.json";
    CHECK(loglist_fetch(&cfg, &json, &len, err, sizeof err) == 0 && json && strcmp(json, "{\"operators\":[]}") == 0,
          "list off: %s", json ? json : err);
    free(json);
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int rc = fwrite(p, 1, n, f) == n ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* The log list signature: Google's built-in key is a well-formed RSA-4096
 * key; a key made here signs a copy of the real list, and
 * ct_logs_signature required / optional / off behave as documented. */
static void test_loglist_signature(void)
{
    mbedtls_pk_context pk;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    unsigned char hash[32], sig[512], pem[4096];
    size_t siglen = 0, len = 0;
    char path[1024], list_path[1100], sig_path[1100], key_path[1100], url[1200], err[512], *json = NULL, *got = NULL;
    struct config cfg;

    mbedtls_pk_init(&pk);
    CHECK(mbedtls_pk_parse_public_key(&pk, (const unsigned char *)listsig_google_key_pem,
                                      strlen(listsig_google_key_pem) + 1) == 0 &&
          mbedtls_pk_get_type(&pk) == MBEDTLS_PK_RSA && mbedtls_pk_get_bitlen(&pk) == 4096, "Google's key");
    mbedtls_pk_free(&pk);

    snprintf(path, sizeof path, "%s/loglist/all_logs_list.v3.json", testdata);
    FILE *f = fopen(path, "rb");
    CHECK(f && file_read_all(f, &json, &len) == 0, "read %s", path);
    if (f) fclose(f);
    if (!json) return;
    mbedtls_pk_init(&pk);
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    int ok = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, (const unsigned char *)"listsig", 7) == 0 &&
             mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) == 0 &&
             mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), mbedtls_ctr_drbg_random, &drbg, 2048, 65537) == 0 &&
             mbedtls_sha256_ret((const unsigned char *)json, len, hash, 0) == 0 &&
             mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, hash, 32, sig, &siglen, mbedtls_ctr_drbg_random, &drbg) == 0 &&
             mbedtls_pk_write_pubkey_pem(&pk, pem, sizeof pem) == 0;
    CHECK(ok, "test key and signature");
    snprintf(list_path, sizeof list_path, "%s/signed_list.json", scratch);
    snprintf(sig_path, sizeof sig_path, "%s/signed_list.sig", scratch);
    snprintf(key_path, sizeof key_path, "%s/list_key.pem", scratch);
    CHECK(write_file(list_path, json, len) == 0 && write_file(sig_path, sig, siglen) == 0 &&
          write_file(key_path, pem, strlen((char *)pem)) == 0, "scratch files");
    CHECK(listsig_verify((const uint8_t *)json, len, sig, siglen, (const char *)pem, err, sizeof err) == 0, "%s", err);
    CHECK(listsig_verify((const uint8_t *)json, len, sig, siglen, NULL, err, sizeof err) == -1,
          "a list signed by another key passed with Google's");
    CHECK(listsig_url("https://www.gstatic.com/ct/log_list/v3/all_logs_list.json", url, sizeof url) == 0 &&
          strcmp(url, "https://www.gstatic.com/ct/log_list/v3/all_logs_list.sig") == 0, "sig url %s", url);

    base_config(&cfg, "operator");
    snprintf(url, sizeof url, "file://%s", list_path);
    cfg.ct_logs_url = url;
    cfg.ct_logs_public_key = key_path;
    cfg.ct_log.request_timeout_secs = 5;
    cfg.ct_logs_signature = "required";
    CHECK(loglist_fetch(&cfg, &got, &len, err, sizeof err) == 0 && got, "required, valid: %s", err);
    free(got);
    got = NULL;
    /* One byte of the list changed: refused. */
    json[100] ^= 1;
    CHECK(write_file(list_path, json, len) == 0, "tampered copy");
    CHECK(loglist_fetch(&cfg, &got, &len, err, sizeof err) == -1 && !got && strstr(err, "refused"),
          "required, tampered: %s", err);
    cfg.ct_logs_signature = "optional";
    CHECK(loglist_fetch(&cfg, &got, &len, err, sizeof err) == 0 && got, "optional, tampered: used");
    free(got);
    got = NULL;
    cfg.ct_logs_signature = "off";
    CHECK(loglist_fetch(&cfg, &got, &len, err, sizeof err) == 0 && got, "off");
    free(got);
    got = NULL;
    /* No signature at all. */
    unlink(sig_path);
    cfg.ct_logs_signature = "required";
    CHECK(loglist_fetch(&cfg, &got, &len, err, sizeof err) == -1 && !got, "required, no signature");
    unlink(list_path);
    unlink(key_path);
    free(json);
    mbedtls_pk_free(&pk);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
}

static struct loglist_group *group_named(struct loglist *ll, const char *name)
{
    for (size_t i = 0; i < ll->n_groups; i++)
        if (strcmp(ll->groups[i].name, name) == 0) return &ll->groups[i];
    return NULL;
}

static void test_loglist_real(void)
{
    size_t len;
    char *json = slurp("loglist/all_logs_list.v3.json", &len);
    struct config cfg;
    struct loglist ll;
    char err[256];
    base_config(&cfg, "operator");

    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0, "%s", err);
    /* 33 usable + 1 readonly RFC 6962 logs; the 6 tiled logs have no state
     * (Let's Encrypt test logs) and are not followed. */
    size_t rfc = 0, tiled = 0;
    for (size_t i = 0; i < ll.n_logs; i++) {
        if (ll.logs[i].kind == LOGLIST_RFC6962) rfc++;
        else tiled++;
        CHECK(ll.logs[i].log_id == i, "log_id %u at %zu", ll.logs[i].log_id, i);
        size_t ul = strlen(ll.logs[i].url);
        CHECK(ul > 9 && strncmp(ll.logs[i].url, "https://", 8) == 0 && ll.logs[i].url[ul - 1] == '/',
              "url %s", ll.logs[i].url);
    }
    CHECK(rfc == 34, "rfc6962 logs %zu", rfc);
    CHECK(tiled == 0, "tiled logs %zu", tiled);
    /* Operators with followed logs: Google 8, Cloudflare 2, DigiCert 7,
     * Sectigo 9, Let's Encrypt 4, TrustAsia 4. */
    CHECK(ll.n_groups == 6, "groups %zu", ll.n_groups);
    struct { const char *name; size_t n; } want[] = {
        {"Google", 8}, {"Cloudflare", 2}, {"DigiCert", 7}, {"Sectigo", 9}, {"Let's Encrypt", 4}, {"TrustAsia", 4},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct loglist_group *g = group_named(&ll, want[i].name);
        CHECK(g && g->n_logs == want[i].n, "group %s: %zu logs", want[i].name, g ? g->n_logs : 0);
        for (size_t k = 0; g && k < g->n_logs; k++)
            CHECK(strcmp(g->logs[k]->operator_name, want[i].name) == 0, "%s in %s", g->logs[k]->name, want[i].name);
    }
    /* A known log, verbatim from the list. */
    int found = 0;
    for (size_t i = 0; i < ll.n_logs; i++) {
        if (strcmp(ll.logs[i].name, "Google 'Argon2026h2' log") == 0) {
            found = 1;
            CHECK(strcmp(ll.logs[i].url, "https://ct.googleapis.com/logs/us1/argon2026h2/") == 0, "%s", ll.logs[i].url);
            CHECK(strcmp(ll.logs[i].operator_name, "Google") == 0, "%s", ll.logs[i].operator_name);
        }
        CHECK(strcmp(ll.logs[i].name, "Cloudflare 'Nimbus2026'") != 0 ||
              strcmp(ll.logs[i].url, "https://ct.cloudflare.com/logs/nimbus2026/") == 0, "nimbus url");
    }
    CHECK(found, "Argon2026h2 followed");
    loglist_free(&ll);

    /* group_by log / single, and max_processes merging. */
    base_config(&cfg, "log");
    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0, "%s", err);
    CHECK(ll.n_groups == 34, "log groups %zu", ll.n_groups);
    loglist_free(&ll);
    base_config(&cfg, "single");
    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0, "%s", err);
    CHECK(ll.n_groups == 1 && ll.groups[0].n_logs == 34, "single");
    loglist_free(&ll);
    base_config(&cfg, "operator");
    cfg.ingest.max_processes = 4;
    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0, "%s", err);
    CHECK(ll.n_groups == 4, "merged groups %zu", ll.n_groups);
    size_t total = 0;
    for (size_t i = 0; i < ll.n_groups; i++) total += ll.groups[i].n_logs;
    CHECK(total == 34, "merged total %zu", total);
    /* round-robin: group 0 gets Google + Let's Encrypt (operators 0 and 4) */
    CHECK(strcmp(ll.groups[0].name, "Google+Let's Encrypt") == 0 && ll.groups[0].n_logs == 12, "%s %zu",
          ll.groups[0].name, ll.groups[0].n_logs);
    loglist_free(&ll);
    base_config(&cfg, "bogus");
    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == -1 && strstr(err, "group_by"), "%s", err);
    free(json);
}

static void test_loglist_sample_and_config(void)
{
    size_t len;
    char *json = slurp("loglist/ctgo-testdata-loglist3-sample.json", &len);
    struct config cfg;
    struct loglist ll;
    char err[256];
    base_config(&cfg, "operator");
    /* config logs: operator = host; a duplicate of a list URL is dropped */
    cfg.custom_logs[0] = (struct config_log){.name = "My log", .url = "https://ct.example.net/log"};
    cfg.custom_logs[1] = (struct config_log){.name = "Dup", .url = "https://ct.googleapis.com/icarus/"};
    cfg.n_custom_logs = 2;
    cfg.static_logs[0] = (struct config_log){.name = "Tiled", .url = "https://mon.example.org/2026h1/"};
    cfg.n_static_logs = 1;
    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0, "%s", err);
    /* Aviator (readonly), Icarus, Rocketeer (usable), Argon2020 (qualified);
     * Racketeer (no state) and Bob's (retired) skipped. */
    CHECK(ll.n_logs == 6, "n_logs %zu", ll.n_logs);
    CHECK(ll.n_logs == 6 && strcmp(ll.logs[4].url, "https://ct.example.net/log/") == 0 &&
          strcmp(ll.logs[4].operator_name, "ct.example.net") == 0, "custom log");
    CHECK(ll.n_logs == 6 && ll.logs[5].kind == LOGLIST_TILED && strcmp(ll.logs[5].operator_name, "mon.example.org") == 0,
          "static log");
    CHECK(ll.n_groups == 3, "groups %zu", ll.n_groups);
    loglist_free(&ll);
    free(json);

    /* No list at all: config logs only; nothing at all is an error. */
    CHECK(loglist_build(&cfg, NULL, 0, &ll, err, sizeof err) == 0 && ll.n_logs == 3, "config only");
    loglist_free(&ll);
    base_config(&cfg, NULL);
    CHECK(loglist_build(&cfg, NULL, 0, &ll, err, sizeof err) == -1, "empty accepted");
    CHECK(loglist_build(&cfg, "{\"operators\":5}", 15, &ll, err, sizeof err) == -1 && strstr(err, "operators"), "%s", err);
    CHECK(loglist_build(&cfg, "[1,2", 4, &ll, err, sizeof err) == -1, "bad json accepted");

    /* Tiled log from a list: origin from the submission URL. */
    const char *tl = "{\"operators\":[{\"name\":\"Op\",\"logs\":[],\"tiled_logs\":[{\"description\":\"T\","
                     "\"submission_url\":\"https://log.example/2026h1/\",\"monitoring_url\":\"https://mon.example/2026h1/\","
                     "\"state\":{\"usable\":{\"timestamp\":\"2026-01-01T00:00:00Z\"}}}]}]}";
    base_config(&cfg, "operator");
    CHECK(loglist_build(&cfg, tl, strlen(tl), &ll, err, sizeof err) == 0 && ll.n_logs == 1 &&
          ll.logs[0].kind == LOGLIST_TILED && strcmp(ll.logs[0].origin, "log.example/2026h1") == 0 &&
          strcmp(ll.logs[0].url, "https://mon.example/2026h1/") == 0, "tiled list log");
    loglist_free(&ll);
}

static void test_loglist_fetch_file(void)
{
    struct config cfg;
    char url[1200], err[256], *json = NULL;
    size_t len = 0;
    base_config(&cfg, "operator");
    snprintf(url, sizeof url, "file://%s/loglist/all_logs_list.v3.json", testdata);
    cfg.ct_logs_url = url;
    cfg.ct_log.request_timeout_secs = 5;
    CHECK(loglist_fetch(&cfg, &json, &len, err, sizeof err) == 0 && len > 100000, "%s", err);
    free(json);
    json = NULL;
    snprintf(url, sizeof url, "file://%s/loglist/does-not-exist.json", testdata);
    CHECK(loglist_fetch(&cfg, &json, &len, err, sizeof err) == -1 && json == NULL, "missing file fetched");
}

static void test_state(void)
{
    char path[1024], err[512];
    struct state st = {0}, back;
    snprintf(path, sizeof path, "%s/state_test.json", scratch);
    unlink(path);
    CHECK(state_load(path, &back, err, sizeof err) == 0 && back.n == 0, "missing file: %s", err);
    state_free(&back);
    CHECK(state_set(&st, "https://ct.googleapis.com/logs/us1/argon2026h2/", 1111014110ull, 1111014200ull) == 0, "set");
    CHECK(state_set(&st, "https://ct.cloudflare.com/logs/nimbus2026/", 4354630060ull, 4354630060ull) == 0, "set");
    CHECK(state_set(&st, "https://big.\"example\\/", 9007199254740000ull, 9007199254740991ull) == 0, "set");
    CHECK(state_set(&st, "https://ct.cloudflare.com/logs/nimbus2026/", 4354630061ull, 4354630070ull) == 0, "update");
    CHECK(st.n == 3, "n %zu", st.n);
    CHECK(state_save(path, &st, err, sizeof err) == 0, "%s", err);
    CHECK(access(path, F_OK) == 0, "saved file exists");
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "temp file left behind");
    CHECK(state_load(path, &back, err, sizeof err) == 0, "%s", err);
    CHECK(back.n == 3, "loaded %zu", back.n);
    const struct state_entry *e = state_find(&back, "https://ct.cloudflare.com/logs/nimbus2026/");
    CHECK(e && e->next_index == 4354630061ull && e->tree_size == 4354630070ull, "nimbus entry");
    e = state_find(&back, "https://big.\"example\\/");
    CHECK(e && e->next_index == 9007199254740000ull && e->tree_size == 9007199254740991ull, "2^53 entry");
    state_free(&back);
    state_free(&st);

    /* Corrupt files are refused with the path and the reason. */
    const char *bad[] = {
        "{\"logs\":{\"https://a/\":{\"next_index\":1",           /* truncated */
        "[]",                                                    /* not an object */
        "{\"logs\":{\"https://a/\":{\"next_index\":-5,\"tree_size\":1}}}",
        "{\"logs\":{\"https://a/\":{\"next_index\":1.5,\"tree_size\":2}}}",
        "{\"logs\":{\"https://a/\":{\"next_index\":\"7\",\"tree_size\":2}}}",
        "{\"positions\":{}}",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        if (!f) { perror(path); exit(2); }
        fputs(bad[i], f);
        fclose(f);
        err[0] = '\0';
        CHECK(state_load(path, &back, err, sizeof err) == -1 && strstr(err, "corrupt") && strstr(err, path),
              "bad state %zu accepted or unclear: '%s'", i, err);
    }
    unlink(path);
}

static void test_tile_paths(void)
{
    struct { uint64_t n; unsigned w; const char *want; } cases[] = {
        {0, 0, "tile/data/000"}, {7, 0, "tile/data/007"}, {255, 0, "tile/data/255"},
        {1000, 0, "tile/data/x001/000"}, {1234067, 0, "tile/data/x001/x234/067"},
        {3, 10, "tile/data/003.p/10"}, {3, 256, "tile/data/003"}, {1234, 255, "tile/data/x001/234.p/255"},
        {18446744073709551615ull, 0, "tile/data/x018/x446/x744/x073/x709/x551/615"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        ct_data_tile_path(buf, sizeof buf, cases[i].n, cases[i].w);
        CHECK(strcmp(buf, cases[i].want) == 0, "tile %llu w %u: %s", (unsigned long long)cases[i].n, cases[i].w, buf);
    }
}

static void test_checkpoints(void)
{
    struct { const char *file, *origin; uint64_t size; const char *root_b64; unsigned sigs; } cases[] = {
        {"static-ct/checkpoints/rome.ct.filippo.io_2024h1_115474666.checkpoint", "rome.ct.filippo.io/2024h1",
         115474666, "2q1K6aiIJR+F7TyhiWOghoWOjY0/3dVBLsBbAvB4xCw=", 1},
        {"static-ct/checkpoints/arche2025h1.staging.ct.transparency.dev_1432088532_multisig.checkpoint",
         "arche2025h1.staging.ct.transparency.dev", 1432088532, "U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=", 6},
        {"static-ct/checkpoints/skylight-test_rome2026h1.example.org_300.checkpoint", "rome2026h1.example.org", 300,
         "lCkHUpkmVBEms2r2T1K6Og69+wUuuN3MIEW1/ezu2v0=", 1},
        {"static-ct/checkpoints/tessera-testdata_example.com_log_testdata_15.checkpoint", "example.com/log/testdata", 15,
         "rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *t = slurp(cases[i].file, &len), err[256] = "";
        struct ctapi_checkpoint cp;
        CHECK(ctapi_checkpoint_parse(t, len, &cp, err, sizeof err) == 0, "%s: %s", cases[i].file, err);
        CHECK(strcmp(cp.origin, cases[i].origin) == 0, "origin %s", cp.origin);
        CHECK(cp.tree_size == cases[i].size, "size %llu", (unsigned long long)cp.tree_size);
        CHECK(cp.n_signatures == cases[i].sigs, "sigs %u", cp.n_signatures);
        /* root hash: compare with the base64 in the file via a re-parse of the line */
        const char *hl = strchr(strchr(t, '\n') + 1, '\n') + 1;
        CHECK(strncmp(hl, cases[i].root_b64, strlen(cases[i].root_b64)) == 0, "root line");
        /* Mutations: every prefix that drops the last newline is refused. */
        CHECK(ctapi_checkpoint_parse(t, len - 1, &cp, err, sizeof err) == -1, "unterminated accepted");
        free(t);
    }
    struct ctapi_checkpoint cp;
    char err[256];
    const char *bad[] = {
        "o\n0012\nyFPVEhEEE1qF+KZqnRbWIjTVQUc+14QkAyYiVkut3d8=\n\n\xe2\x80\x94 o AAAAAAAA\n",   /* leading zero */
        "o\n12\nyFPVEhEEE1qF+KZqnRbWIjTVQUc+14QkAyYiVkut3d8=\n\n",                           /* no signature */
        "o\n12\nyFPVEhEEE1qF+KZqnRbWIjTVQUc+14QkAyYiVkut3d8=\n\n- o AAAAAAAA\n",             /* ASCII dash */
        "o\n12\nshort\n\n\xe2\x80\x94 o AAAAAAAA\n",                                        /* bad hash */
        "o\n99999999999999999999\nyFPVEhEEE1qF+KZqnRbWIjTVQUc+14QkAyYiVkut3d8=\n\n\xe2\x80\x94 o AAAAAAAA\n",
        "\n12\nyFPVEhEEE1qF+KZqnRbWIjTVQUc+14QkAyYiVkut3d8=\n\n\xe2\x80\x94 o AAAAAAAA\n",  /* empty origin */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(ctapi_checkpoint_parse(bad[i], strlen(bad[i]), &cp, err, sizeof err) == -1, "bad checkpoint %zu accepted", i);
    const char *ok = "o\n12\nyFPVEhEEE1qF+KZqnRbWIjTVQUc+14QkAyYiVkut3d8=\nextension line\n\n\xe2\x80\x94 o AAAAAAAA\n";
    CHECK(ctapi_checkpoint_parse(ok, strlen(ok), &cp, err, sizeof err) == 0 && cp.tree_size == 12, "%s", err);
}

static void test_sth_and_entries(void)
{
    struct { const char *file; uint64_t size; } sths[] = {
        {"rfc6962/get-sth/google-pilot_344104340.json", 344104340},
        {"rfc6962/get-sth/google-icarus_129721434.json", 129721434},
        {"rfc6962/get-sth/digicert-yeti2018_90785920.json", 90785920},
    };
    for (size_t i = 0; i < sizeof sths / sizeof sths[0]; i++) {
        size_t len;
        char *j = slurp(sths[i].file, &len), err[256] = "";
        struct ctapi_sth sth;
        CHECK(ctapi_sth_parse(j, len, &sth, err, sizeof err) == 0 && sth.tree_size == sths[i].size,
              "%s: %s %llu", sths[i].file, err, (unsigned long long)sth.tree_size);
        CHECK(sth.timestamp > 1300000000000ull, "timestamp");
        free(j);
    }
    struct ctapi_sth sth;
    char err[256];
    const char *bad_sth[] = {
        "{\"tree_size\":-1,\"timestamp\":1,\"sha256_root_hash\":\"yFPVEhEEE1qF+KZqnRbWIjTVQUc+14QkAyYiVkut3d8=\"}",
        "{\"tree_size\":1.5,\"timestamp\":1,\"sha256_root_hash\":\"yFPVEhEEE1qF+KZqnRbWIjTVQUc+14QkAyYiVkut3d8=\"}",
        "{\"tree_size\":1,\"timestamp\":1,\"sha256_root_hash\":\"AAAA\"}",
        "{\"tree_size\":1,\"timestamp\":1}",
        "{\"tree_size\":1,\"timest",
    };
    for (size_t i = 0; i < sizeof bad_sth / sizeof bad_sth[0]; i++)
        CHECK(ctapi_sth_parse(bad_sth[i], strlen(bad_sth[i]), &sth, err, sizeof err) == -1, "bad sth %zu accepted", i);

    /* get-entries: decode, then check the leaf decodes as the fixture says. */
    size_t len;
    char *j = slurp("rfc6962/get-entries/google-pilot_2013_four-x509-entries.json", &len);
    struct ctapi_entries es;
    CHECK(ctapi_entries_parse(j, len, 100, &es, err, sizeof err) == 0 && es.n == 4, "%s n=%zu", err, es.n);
    for (size_t i = 0; i < es.n; i++) {
        struct ct_entry e;
        CHECK(!es.v[i].bad && es.v[i].leaf_len > 12 && es.v[i].leaf_input[0] == 0 && es.v[i].leaf_input[1] == 0,
              "entry %zu", i);
        CHECK(ct_decode_rfc6962(es.v[i].leaf_input, es.v[i].leaf_len, es.v[i].extra_data, es.v[i].extra_len, &e, err,
                                sizeof err) == 0 && e.type == CT_X509_ENTRY, "entry %zu decode: %s", i, err);
    }
    ctapi_entries_free(&es);
    CHECK(ctapi_entries_parse(j, len, 2, &es, err, sizeof err) == 0 && es.n == 2, "max");
    ctapi_entries_free(&es);
    CHECK(ctapi_entries_parse(j, len / 2, 100, &es, err, sizeof err) == -1, "truncated accepted");
    free(j);
    const char *one_bad = "{\"entries\":[{\"leaf_input\":\"!!!\",\"extra_data\":\"\"},{\"leaf_input\":\"AAAA\",\"extra_data\":\"\"}]}";
    CHECK(ctapi_entries_parse(one_bad, strlen(one_bad), 10, &es, err, sizeof err) == 0 && es.n == 2 && es.v[0].bad &&
          !es.v[1].bad && es.v[1].leaf_len == 3, "bad base64 entry");
    ctapi_entries_free(&es);
    CHECK(ctapi_entries_parse("{\"entries\":{}}", 14, 10, &es, err, sizeof err) == -1, "non-array accepted");

    /* The in-place scanner and the cJSON path give the same entries: every
     * get-entries fixture, and answers the scanner hands to cJSON (an
     * escaped '/', extra members, a duplicate member, an empty object). */
    const char *files[] = {
        "rfc6962/get-entries/google-pilot_2013_four-x509-entries.json",
        "rfc6962/get-entries/ctgo-logclient_precert-and-x509.json",
        "rfc6962/get-entries/navigli2025h2_0-31_derived-from-tiles.json",
        "rfc6962/get-entries/scrape-ct-log_precert_MISMATCHED-leaf-and-extra-data.json",
        "rfc6962/get-entries/scrape-ct-log_x509.json",
    };
    const char *inline_docs[] = {
        "{\"entries\":[{\"leaf_input\":\"AA\\/A\",\"extra_data\":\"\"}]}",
        " {\"x\":[1,-2.5e+3,{\"a\":null,\"b\":true,\"c\":\"\\n\"}],\"entries\":[{\"leaf_input\":\"AAAA\",\"y\":false,\"extra_data\":\"AA==\"},{}]} \n",
        "{\"entries\":[],\"entries\":[{\"leaf_input\":\"AAAA\"}]}",
        "{\"entries\":[{\"leaf_input\":\"AAAA\",\"leaf_input\":\"BBBB\"}]}",
        "{\"entries\":[{\"leaf_input\":5}]}",
        "{\"entries\":[1]}",
        "{}",
        "{\"entries\":[{\"leaf_input\":\"AAAA\"}]}trailing",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0] + sizeof inline_docs / sizeof inline_docs[0]; i++) {
        size_t nf = sizeof files / sizeof files[0], dl;
        char *doc = i < nf ? slurp(files[i], &dl) : strdup(inline_docs[i - nf]);
        if (i >= nf) dl = strlen(doc);
        struct ctapi_entries a, b;
        int ra = ctapi_entries_parse(doc, dl, 1000, &a, err, sizeof err);
        int rb = ctapi_entries_parse_cjson(doc, dl, 1000, &b, err, sizeof err);
        CHECK(ra == rb, "doc %zu: scanner %d, cJSON %d", i, ra, rb);
        if (ra == 0 && rb == 0) {
            CHECK(a.n == b.n, "doc %zu: %zu vs %zu entries", i, a.n, b.n);
            for (size_t k = 0; k < a.n && k < b.n; k++)
                CHECK(a.v[k].bad == b.v[k].bad && (a.v[k].bad ||
                      (a.v[k].leaf_len == b.v[k].leaf_len && a.v[k].extra_len == b.v[k].extra_len &&
                       memcmp(a.v[k].leaf_input, b.v[k].leaf_input, a.v[k].leaf_len) == 0 &&
                       memcmp(a.v[k].extra_data, b.v[k].extra_data, a.v[k].extra_len) == 0)),
                      "doc %zu entry %zu differs", i, k);
            CHECK(a.n >= 1 || i == nf + 2, "doc %zu: %zu entries", i, a.n);   /* nf + 2: cJSON reads the first, empty "entries" */
        }
        /* the fixtures and the plain extra members are read by the scanner;
         * escapes, duplicates, other types and trailing bytes go to cJSON */
        struct ctapi_entries c;
        int rs = ctapi_entries_parse_scan(doc, dl, 1000, &c);
        CHECK(rs == (i < nf || i == nf + 1 ? 0 : -2), "doc %zu: scanner %d", i, rs);
        if (rs == 0) ctapi_entries_free(&c);
        if (ra == 0) ctapi_entries_free(&a);
        if (rb == 0) ctapi_entries_free(&b);
        free(doc);
    }
}

static size_t b64(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (mbedtls_base64_decode(out, cap, &n, (const unsigned char *)s, strlen(s)) != 0) return 0;
    return n;
}

/* Real STHs and checkpoints verify with their logs' keys (from the log list
 * and keys.json); any change to size, root or key does not. */
static void test_signatures(void)
{
    static const char *pilot = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfahLEimAoz2t01p3uMziiLOl/fHTDM0YDOhBRuiBARsV4UvxG2LdNgoIGLrtCzWE0J5APC2em4JlvR8EEEFMoA==";
    static const char *icarus = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAETtK8v7MICve56qTHHDhhBOuV4IlUaESxZryCfk9QbG9co/CqPvTsgPDbCpp6oFtyAHwlDhnvr7JijXRD9Cb2FA==";
    static const char *yeti = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAESYlKFDLLFmA9JScaiaNnqlU8oWDytxIYMfswHy9Esg0aiX+WnP/yj4O0ViEHtLwbmOQeSWBGkIu9YK9CLeer+g==";
    struct { const char *file, *key; } sths[] = {
        {"rfc6962/get-sth/google-pilot_344104340.json", pilot},
        {"rfc6962/get-sth/google-pilot_3721782.json", pilot},
        {"rfc6962/get-sth/google-icarus_129596132.json", icarus},
        {"rfc6962/get-sth/google-icarus_129721434.json", icarus},
        {"rfc6962/get-sth/digicert-yeti2018_90785920.json", yeti},
    };
    uint8_t key[200], other[200];
    char err[256];
    size_t ol = b64(icarus, other, sizeof other);
    for (size_t i = 0; i < sizeof sths / sizeof sths[0]; i++) {
        size_t len, kl = b64(sths[i].key, key, sizeof key);
        char *j = slurp(sths[i].file, &len);
        struct ctapi_sth s;
        CHECK(ctapi_sth_parse(j, len, &s, err, sizeof err) == 0 && s.signature_len > 4, "%s", sths[i].file);
        CHECK(ctapi_verify_tree_head(key, kl, s.timestamp, s.tree_size, s.root_hash, s.signature, s.signature_len, err,
                                     sizeof err) == 0, "%s: %s", sths[i].file, err);
        CHECK(ctapi_verify_tree_head(key, kl, s.timestamp, s.tree_size + 1, s.root_hash, s.signature, s.signature_len,
                                     err, sizeof err) == -1, "%s: size+1 verified", sths[i].file);
        s.root_hash[5] ^= 1;
        CHECK(ctapi_verify_tree_head(key, kl, s.timestamp, s.tree_size, s.root_hash, s.signature, s.signature_len, err,
                                     sizeof err) == -1, "%s: changed root verified", sths[i].file);
        s.root_hash[5] ^= 1;
        if (sths[i].key != icarus)
            CHECK(ctapi_verify_tree_head(other, ol, s.timestamp, s.tree_size, s.root_hash, s.signature, s.signature_len,
                                         err, sizeof err) == -1, "%s: other key verified", sths[i].file);
        free(j);
    }
    struct { const char *file, *key; } cps[] = {
        {"static-ct/checkpoints/rome.ct.filippo.io_2024h1_115474666.checkpoint",
         "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAXM8Ld9qn64g1zVFDh5FtgxS3zj5sqQDwYMs3wrBV3MCBiFhK/iRLxdKF4YsAcJaEglMlu4Lewvzxs0xO2uwEw=="},
        {"static-ct/checkpoints/arche2025h1.staging.ct.transparency.dev_1432088532_multisig.checkpoint",
         "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEn7khjUQH1H3NJ/C8QmmBgzoNTptlH6hT5bgiQ6mQcYYg5KZoe4ZK4xCszXu4NH5NiLaDH0wHKsvg3RIQ+TTaag=="},
        {"static-ct/checkpoints/skylight-test_rome2026h1.example.org_300.checkpoint",
         "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPIcer7RB32jt4bTEbhgUKLKvOctFD+I2hoDItFxUBlJiGFvftBuRk3fO7e1T7gC2ekyfL7XoO2oN/ObcZyc4EA=="},
    };
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        size_t len, kl = b64(cps[i].key, key, sizeof key);
        char *t = slurp(cps[i].file, &len);
        struct ctapi_checkpoint cp;
        CHECK(ctapi_checkpoint_parse(t, len, &cp, err, sizeof err) == 0, "%s", cps[i].file);
        CHECK(ctapi_checkpoint_verify(t, len, &cp, key, kl, err, sizeof err) == 0, "%s: %s", cps[i].file, err);
        cp.tree_size++;
        CHECK(ctapi_checkpoint_verify(t, len, &cp, key, kl, err, sizeof err) == -1, "%s: size+1 verified", cps[i].file);
        cp.tree_size--;
        CHECK(ctapi_checkpoint_verify(t, len, &cp, other, ol, err, sizeof err) == -1, "%s: other key verified", cps[i].file);
        free(t);
    }
    /* The log list carries the key: Argon2026h2's decodes to a P-256 SPKI. */
    size_t len;
    char *json = slurp("loglist/all_logs_list.v3.json", &len);
    struct config cfg;
    struct loglist ll;
    base_config(&cfg, "operator");
    CHECK(loglist_build(&cfg, json, len, &ll, err, sizeof err) == 0, "%s", err);
    for (size_t i = 0; i < ll.n_logs; i++)
        CHECK(ll.logs[i].key && ll.logs[i].key_len >= 91, "%s: key %zu bytes", ll.logs[i].name, ll.logs[i].key_len);
    loglist_free(&ll);
    free(json);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TESTDATA SCRATCH\n", argv[0]);
        return 2;
    }
    testdata = argv[1];
    scratch = argv[2];
    test_loglist_real();
    test_loglist_sample_and_config();
    test_loglist_fetch_file();
    test_loglist_switches();
    test_loglist_signature();
    test_state();
    test_tile_paths();
    test_checkpoints();
    test_sth_and_entries();
    test_signatures();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
