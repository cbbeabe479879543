/* test_config_logctl.c - apple_logs_url, log_overrides, operator_pacing and
 * the per-log settings of custom_logs / static_logs items: values read from
 * the file and the environment, and every bad value refused with
 * file:line:key (or the environment variable) and the exact message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config_internal.h"
#include "test/unit_check.h"

static const char *const no_env[] = {NULL};
static char dir[64];

static int load(struct config *c, const char *doc, struct config_error *err)
{
    return config_load_buffer(c, doc, strlen(doc), "config.yaml", err);
}

static void refused(const char *doc, const char *want)
{
    struct config c;
    struct config_error err;
    if (load(&c, doc, &err) == 0) {
        config_free(&c);
        fprintf(stderr, "accepted:\n%s\n", doc);
        unit_failed++;
        return;
    }
    if (strcmp(err.message, want) != 0) {
        fprintf(stderr, "for:\n%s\n got: %s\nwant: %s\n", doc, err.message, want);
        unit_failed++;
    }
}

static int load_env(struct config *c, const char *var, struct config_error *err)
{
    char *env[] = {(char *)var, NULL};
    return config_load_search(c, NULL, env, NULL, err);
}

static void refused_env(const char *var, const char *want)
{
    struct config c;
    struct config_error err;
    if (load_env(&c, var, &err) == 0) {
        config_free(&c);
        fprintf(stderr, "accepted env %s\n", var);
        unit_failed++;
        return;
    }
    if (strcmp(err.message, want) != 0) {
        fprintf(stderr, "for env %s\n got: %s\nwant: %s\n", var, err.message, want);
        unit_failed++;
    }
}

static void test_defaults(void)
{
    struct config c;
    struct config_error err;
    CHECK(config_load_search(&c, NULL, (char *const *)no_env, NULL, &err) == 0);
    CHECK_STR(c.apple_logs_url, "");
    CHECK(c.n_log_overrides == 0 && c.n_operator_pacing == 0);
    config_free(&c);
}

static const char doc[] =
    "apple_logs_url: https://valid.apple.com/ct/log_list/current_log_list.json\n"
    "custom_logs:\n"
    "  - name: one\n"
    "    url: https://ct.example.com/one/\n"
    "    batch_size: 32\n"
    "    poll_interval_ms: 250\n"
    "    fetch_concurrency: 2\n"
    "    enabled: false\n"
    "  - {name: two, url: \"https://ct.example.com/two/\"}\n"
    "static_logs:\n"
    "  - {name: tiled, url: \"https://t.example.com/\", expected_log_id: \"DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE=\"}\n"
    "log_overrides:\n"
    "  \"https://ct.googleapis.com/logs/us1/argon2026h2/\":\n"
    "    fetch_concurrency: 8\n"
    "    expected_log_id: \"DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE=\"\n"
    "  \"Sectigo 'Elephant2026h2'\": {enabled: no}\n"
    "operator_pacing:\n"
    "  Google: {requests_per_second: 20}\n"
    "  \"Let's Encrypt\":\n"
    "    requests_per_second: 2.5\n"
    "  Idle: {requests_per_second: 0}\n";

static void test_file_values(void)
{
    struct config c, d;
    struct config_error err;
    int rc = load(&c, doc, &err);
    if (rc != 0) fprintf(stderr, "  %s\n", err.message);
    CHECK(rc == 0);
    if (rc != 0) return;
    CHECK_STR(c.apple_logs_url, "https://valid.apple.com/ct/log_list/current_log_list.json");
    CHECK(c.n_custom_logs == 2 && c.n_static_logs == 1);
    const struct config_log_override *o = &c.custom_logs[0].o;
    CHECK(o->batch_size == 32 && o->poll_interval_ms == 250 && o->fetch_concurrency == 2 && o->enabled == -1 &&
          o->expected_log_id == NULL);
    o = &c.custom_logs[1].o;
    CHECK(o->batch_size == 0 && o->poll_interval_ms == 0 && o->fetch_concurrency == 0 && o->enabled == 0);
    CHECK_STR(c.static_logs[0].o.expected_log_id, "DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE=");
    CHECK(c.n_log_overrides == 2);
    CHECK_STR(c.log_overrides[0].match, "https://ct.googleapis.com/logs/us1/argon2026h2/");
    CHECK(c.log_overrides[0].fetch_concurrency == 8 && c.log_overrides[0].enabled == 0 &&
          c.log_overrides[0].batch_size == 0);
    CHECK_STR(c.log_overrides[0].expected_log_id, "DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE=");
    CHECK_STR(c.log_overrides[1].match, "Sectigo 'Elephant2026h2'");
    CHECK(c.log_overrides[1].enabled == -1);
    CHECK(c.n_operator_pacing == 3);
    CHECK_STR(c.operator_pacing[0].operator_name, "Google");
    CHECK(c.operator_pacing[0].milli_rps == 20000);
    CHECK_STR(c.operator_pacing[1].operator_name, "Let's Encrypt");
    CHECK(c.operator_pacing[1].milli_rps == 2500);
    CHECK(c.operator_pacing[2].milli_rps == 0);

    /* --check-config's output reads back to the same settings */
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    CHECK(f != NULL);
    if (f) {
        config_print(&c, f);
        fclose(f);
        rc = config_load_buffer(&d, text, tlen, "printed.yaml", &err);
        if (rc != 0) fprintf(stderr, "  printed: %s\n", err.message);
        CHECK(rc == 0);
        if (rc == 0) {
            const char *diff = config_diff(&c, &d, 0);
            if (diff) fprintf(stderr, "  printed differs at %s\n", diff);
            CHECK(diff == NULL);
            /* and a changed override is a difference */
            d.log_overrides[1].enabled = 1;
            CHECK(config_diff(&c, &d, 0) && strcmp(config_diff(&c, &d, 0), "log_overrides") == 0);
            d.log_overrides[1].enabled = -1;
            d.custom_logs[0].o.batch_size = 33;
            CHECK(config_diff(&c, &d, 0) && strcmp(config_diff(&c, &d, 0), "custom_logs") == 0);
            d.custom_logs[0].o.batch_size = 32;
            d.operator_pacing[1].milli_rps = 2501;
            CHECK(config_diff(&c, &d, 0) && strcmp(config_diff(&c, &d, 0), "operator_pacing") == 0);
            config_free(&d);
        }
        free(text);
    }
    config_free(&c);
}

static void test_file_errors(void)
{
    refused("apple_logs_url: ftp://x\n",
            "config.yaml:1: key 'apple_logs_url': expected an http:// or https:// URL (or file:///path), got \"ftp://x\"");
    refused("log_overrides: [a]\n",
            "config.yaml:1: key 'log_overrides': expected a mapping of log URL or name to settings ({} for none), got a sequence");
    refused("log_overrides:\n  x: 5\n",
            "config.yaml:2: key 'log_overrides.\"x\"': expected a mapping of settings (batch_size, poll_interval_ms, "
            "fetch_concurrency, expected_log_id, enabled), got a single value");
    refused("log_overrides:\n  x:\n    batch_size: 0\n",
            "config.yaml:3: key 'log_overrides.\"x\".batch_size': value 0 out of range 1..10000");
    refused("log_overrides:\n  x:\n    poll_interval_ms: 86400001\n",
            "config.yaml:3: key 'log_overrides.\"x\".poll_interval_ms': value 86400001 out of range 1..86400000");
    refused("log_overrides:\n  x:\n    fetch_concurrency: 33\n",
            "config.yaml:3: key 'log_overrides.\"x\".fetch_concurrency': value 33 out of range 1..32");
    refused("log_overrides:\n  x:\n    enabled: maybe\n",
            "config.yaml:3: key 'log_overrides.\"x\".enabled': expected true or false (or yes/no, on/off, 1/0), got \"maybe\"");
    refused("log_overrides:\n  x:\n    expected_log_id: \"DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE\"\n",
            "config.yaml:3: key 'log_overrides.\"x\".expected_log_id': expected a log id: 32 bytes in base64 "
            "(44 characters, as the log list's log_id), got \"DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHF...\"");
    refused("log_overrides:\n  x:\n    batch: 1\n",
            "config.yaml:3: key 'log_overrides.\"x\"': unknown setting \"batch\" (one of batch_size, "
            "poll_interval_ms, fetch_concurrency, expected_log_id, enabled)");
    refused("log_overrides:\n  x:\n    batch_size: 1\n    batch_size: 2\n",
            "config.yaml:4: key 'log_overrides.\"x\".batch_size': is given twice");
    refused("log_overrides:\n  x: {enabled: true}\n  x: {enabled: false}\n",
            "config.yaml:3: key 'log_overrides.\"x\"': is given twice");
    refused("custom_logs:\n  - name: a\n    url: https://a.example/\n    batch_size: 10001\n",
            "config.yaml:4: key 'custom_logs[0].batch_size': value 10001 out of range 1..10000");
    refused("static_logs:\n  - name: a\n    url: https://a.example/\n    enabled: 2\n",
            "config.yaml:4: key 'static_logs[0].enabled': expected true or false (or yes/no, on/off, 1/0), got \"2\"");
    refused("custom_logs:\n  - name: a\n    url: https://a.example/\n    pacing: 1\n",
            "config.yaml:4: key 'custom_logs[0]': unknown key \"pacing\" (an entry has name and url, and "
            "optionally batch_size, poll_interval_ms, fetch_concurrency, expected_log_id, enabled)");
    refused("operator_pacing:\n  Google: 5\n",
            "config.yaml:2: key 'operator_pacing.\"Google\"': expected {requests_per_second: N}, got a single value");
    refused("operator_pacing:\n  Google: {requests_per_second: -1}\n",
            "config.yaml:2: key 'operator_pacing.\"Google\"': requests_per_second: expected requests per second "
            "0..10000 (up to 3 decimals, 0 = not paced), got \"-1\"");
    refused("operator_pacing:\n  Google: {requests_per_second: 10001}\n",
            "config.yaml:2: key 'operator_pacing.\"Google\"': requests_per_second: expected requests per second "
            "0..10000 (up to 3 decimals, 0 = not paced), got \"10001\"");
    refused("operator_pacing:\n  Google: {rps: 1}\n",
            "config.yaml:2: key 'operator_pacing.\"Google\"': unknown setting \"rps\" (the one setting is "
            "requests_per_second)");
    refused("operator_pacing:\n  Google: {}\n",
            "config.yaml:2: key 'operator_pacing.\"Google\"': missing requests_per_second");
}

static void test_env(void)
{
    struct config c;
    struct config_error err;
    int rc = load_env(&c, "CERTSTREAM_LOG_OVERRIDES=https://a.example/{batch_size=32,enabled=false};"
                          " Argon 2026h2{poll_interval_ms=70, fetch_concurrency=3,"
                          "expected_log_id=DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE=}", &err);
    if (rc != 0) fprintf(stderr, "  %s\n", err.message);
    CHECK(rc == 0 && c.n_log_overrides == 2);
    if (rc == 0 && c.n_log_overrides == 2) {
        CHECK_STR(c.log_overrides[0].match, "https://a.example/");
        CHECK(c.log_overrides[0].batch_size == 32 && c.log_overrides[0].enabled == -1);
        CHECK_STR(c.log_overrides[1].match, "Argon 2026h2");
        CHECK(c.log_overrides[1].poll_interval_ms == 70 && c.log_overrides[1].fetch_concurrency == 3 &&
              c.log_overrides[1].enabled == 0);
        CHECK_STR(c.log_overrides[1].expected_log_id, "DleUvPOuqT4zGyyZB7P3kN+bwj1xMiXdIaklrGHFTiE=");
    }
    if (rc == 0) config_free(&c);
    rc = load_env(&c, "CERTSTREAM_OPERATOR_PACING=Google=3, Let's Encrypt=0.5", &err);
    CHECK(rc == 0 && c.n_operator_pacing == 2);
    if (rc == 0 && c.n_operator_pacing == 2) {
        CHECK_STR(c.operator_pacing[1].operator_name, "Let's Encrypt");
        CHECK(c.operator_pacing[0].milli_rps == 3000 && c.operator_pacing[1].milli_rps == 500);
    }
    if (rc == 0) config_free(&c);
    rc = load_env(&c, "CERTSTREAM_APPLE_LOGS_URL=file:///srv/apple.json", &err);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK_STR(c.apple_logs_url, "file:///srv/apple.json");
        config_free(&c);
    }
    refused_env("CERTSTREAM_LOG_OVERRIDES=https://a.example/{batch=32}",
                "environment variable CERTSTREAM_LOG_OVERRIDES: entry 0: unknown setting 'batch' (one of "
                "batch_size, poll_interval_ms, fetch_concurrency, expected_log_id, enabled)");
    refused_env("CERTSTREAM_LOG_OVERRIDES=https://a.example/{enabled=nope}",
                "environment variable CERTSTREAM_LOG_OVERRIDES: entry 0: enabled: expected true or false "
                "(or yes/no, on/off, 1/0), got \"nope\"");
    refused_env("CERTSTREAM_LOG_OVERRIDES=https://a.example/",
                "environment variable CERTSTREAM_LOG_OVERRIDES: entry 0: expected <log URL or name>{setting=value,...}");
    refused_env("CERTSTREAM_OPERATOR_PACING=Google",
                "environment variable CERTSTREAM_OPERATOR_PACING: entry 0: expected operator=requests_per_second");
    refused_env("CERTSTREAM_OPERATOR_PACING=Google=fast",
                "environment variable CERTSTREAM_OPERATOR_PACING: entry 0: expected requests per second 0..10000 "
                "(up to 3 decimals, 0 = not paced), got \"fast\"");
    refused_env("CERTSTREAM_APPLE_LOGS_URL=apple.json",
                "environment variable CERTSTREAM_APPLE_LOGS_URL: expected an http:// or https:// URL (or "
                "file:///path), got \"apple.json\"");
}

int main(void)
{
    /* config_load_search looks for ./config.yaml: run in an empty directory */
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cs-conf-logctl-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(dir) || chdir(dir) != 0) {
        perror("mkdtemp");
        return 1;
    }
    static const struct unit_test tests[] = {
        {"defaults", test_defaults},
        {"file_values", test_file_values},
        {"file_errors", test_file_errors},
        {"env", test_env},
    };
    int rc = run_unit_tests(tests, sizeof tests / sizeof tests[0]);
    if (chdir("/") != 0 || rmdir(dir) != 0) perror("rmdir");
    return rc;
}
