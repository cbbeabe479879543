/* test_config_nats.c - the scale-out keys (ingest.source, nats.*): defaults,
 * durations, URL lists, names, and refused values with their exact
 * file:line:key messages, from a file and from the environment.
 *
 * Usage: test_config_nats. Prints "N passed, N failed". */
#include "conf/config.h"
#include "conf/config_internal.h"

#include "test/unit_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load_text(struct config *c, const char *yaml, struct config_error *err)
{
    return config_load_buffer(c, yaml, strlen(yaml), "nats.yaml", err);
}

static void test_defaults(void)
{
    struct config c;
    struct config_error err;
    CHECK(load_text(&c, "port: 8080\n", &err) == 0);
    CHECK_STR(c.ingest.source, "logs");
    CHECK_STR(c.nats.url, "nats://127.0.0.1:4222");
    CHECK_STR(c.nats.stream, "CERTSTREAM");
    CHECK_STR(c.nats.subject_prefix, "certstream");
    CHECK(!c.nats.publish);
    CHECK_STR(c.nats.max_age, "24h");
    CHECK_STR(c.nats.duplicate_window, "2m");
    CHECK(c.nats.replicas == 1);
    CHECK_STR(c.nats.creds_file, "");
    CHECK(c.nats.max_pending == 10000 && c.nats.max_lag_secs == 60);
    config_free(&c);
}

static void test_durations(void)
{
    static const struct { const char *s; uint64_t secs; } ok[] = {
        {"90", 90}, {"90s", 90}, {"2m", 120}, {"24h", 86400}, {"7d", 604800}, {"1s", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 0;
        CHECK(config_duration_secs(ok[i].s, &v) == 0 && v == ok[i].secs);
    }
    static const char *const bad[] = {"", "h", "2x", "2 m", "-1s", "1.5h", "02m", "2mm", "99999999999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 0;
        CHECK(config_duration_secs(bad[i], &v) == -1);
    }
    struct config c;
    struct config_error err;
    CHECK(load_text(&c, "nats:\n  max_age: 30d\n  duplicate_window: 10m\n  publish: true\n", &err) == 0);
    CHECK_STR(c.nats.max_age, "30d");
    CHECK_STR(c.nats.duplicate_window, "10m");
    CHECK(c.nats.publish);
    config_free(&c);
    /* nats.url as a YAML sequence: joined as the environment variable takes it */
    CHECK(load_text(&c, "nats:\n  url:\n    - nats://10.0.0.1:4222\n    - tls://10.0.0.2:4222\n  replicas: 3\n", &err) == 0);
    CHECK_STR(c.nats.url, "nats://10.0.0.1:4222,tls://10.0.0.2:4222");
    CHECK(c.nats.replicas == 3);
    config_free(&c);
    CHECK(load_text(&c, "nats:\n  url: [\"nats://a:4222\"]\n", &err) == 0);
    CHECK_STR(c.nats.url, "nats://a:4222");
    config_free(&c);
}

struct bad_case { const char *yaml, *message; };

static const struct bad_case bad_files[] = {
    {"ingest:\n  source: kafka\n",
     "nats.yaml:2: key 'ingest.source': expected one of logs, nats; got \"kafka\""},
    {"nats:\n  url: http://127.0.0.1:4222\n",
     "nats.yaml:2: key 'nats.url': expected nats://host:port or tls://host:port (several joined by commas), got \"http://127.0.0.1:4222\""},
    {"nats:\n  url: \"nats://a:4222,\"\n",
     "nats.yaml:2: key 'nats.url': expected nats://host:port or tls://host:port (several joined by commas), got \"\""},
    {"nats:\n  url: \"\"\n", "nats.yaml:2: key 'nats.url': must not be empty"},
    {"nats:\n  url: []\n", "nats.yaml:2: key 'nats.url': an empty sequence: give at least one server"},
    {"nats:\n  url:\n    - nats://a:4222\n    - http://b:80\n",
     "nats.yaml:4: key 'nats.url[1]': expected nats://host:port or tls://host:port (several joined by commas), got \"http://b:80\""},
    {"nats:\n  url:\n    - \"nats://a:1,nats://b:2\"\n", "nats.yaml:3: key 'nats.url[0]': one server per item (no commas)"},
    {"nats:\n  url: {a: 1}\n", "nats.yaml:2: key 'nats.url': expected a server URL or a sequence of them, got a mapping"},
    {"nats:\n  stream: \"CT.ALL\"\n",
     "nats.yaml:2: key 'nats.stream': expected a NATS stream name (letters, digits, - and _, at most 64 bytes), got \"CT.ALL\""},
    {"nats:\n  subject_prefix: \"ct.*\"\n",
     "nats.yaml:2: key 'nats.subject_prefix': expected a NATS subject prefix (letters, digits, - and _, tokens joined by dots, at most 200 bytes), got \"ct.*\""},
    {"nats:\n  subject_prefix: \"ct..x\"\n",
     "nats.yaml:2: key 'nats.subject_prefix': expected a NATS subject prefix (letters, digits, - and _, tokens joined by dots, at most 200 bytes), got \"ct..x\""},
    {"nats:\n  max_age: 1 day\n",
     "nats.yaml:2: key 'nats.max_age': expected a duration such as 90s, 2m, 24h or 7d, got \"1 day\""},
    {"nats:\n  duplicate_window: 8d\n",
     "nats.yaml:2: key 'nats.duplicate_window': duration 8d out of range 1s..604800s"},
    {"nats:\n  max_age: 0s\n",
     "nats.yaml:2: key 'nats.max_age': duration 0s out of range 1s..31622400s"},
    {"nats:\n  replicas: 7\n", "nats.yaml:2: key 'nats.replicas': value 7 out of range 1..5"},
    {"nats:\n  publish: sometimes\n",
     "nats.yaml:2: key 'nats.publish': expected true or false (or yes/no, on/off, 1/0), got \"sometimes\""},
    {"nats:\n  replica: 3\n", "nats.yaml:2: unknown key 'nats.replica' (did you mean 'nats.replicas'?)"},
    {"nats:\n  max_pending: 1\n", "nats.yaml:2: key 'nats.max_pending': value 1 out of range 16..1000000"},
    /* across keys: the later key is blamed */
    {"ingest:\n  source: nats\nnats:\n  publish: true\n",
     "nats.yaml:4: key 'nats.publish': nats.publish is true but ingest.source is nats: an edge node consumes the stream and does not publish to it"},
    {"nats:\n  max_age: 1m\n  duplicate_window: 2m\n",
     "nats.yaml:3: key 'nats.duplicate_window': nats.duplicate_window (2m) is longer than nats.max_age (1m)"},
};

static void test_bad_files(void)
{
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        struct config c;
        struct config_error err = {{0}};
        int rc = load_text(&c, bad_files[i].yaml, &err);
        if (rc == 0) config_free(&c);
        CHECK(rc == -1);
        CHECK_STR(err.message, bad_files[i].message);
    }
}

static void test_env(void)
{
    struct config c;
    struct config_error err;
    char *good[] = {"CERTSTREAM_INGEST_SOURCE=nats", "CERTSTREAM_NATS_URL=nats://h1:4222,nats://h2:4222",
                    "CERTSTREAM_NATS_DUPLICATE_WINDOW=5m", NULL};
    char path[] = "/tmp/test_config_nats.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, "port: 8080\n", 11) != 11 || close(fd) != 0) {
        perror("mkstemp");
        unit_failed++;
        return;
    }
    struct config_flags flags = {.config_path = path};
    int rc = config_load(&c, &flags, good, &err);
    if (rc != 0) fprintf(stderr, "  %s\n", err.message);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK_STR(c.ingest.source, "nats");
        CHECK_STR(c.nats.url, "nats://h1:4222,nats://h2:4222");
        CHECK_STR(c.nats.duplicate_window, "5m");
        config_free(&c);
    }
    static const struct { const char *var, *message; } bad[] = {
        {"CERTSTREAM_NATS_MAX_AGE=forever",
         "environment variable CERTSTREAM_NATS_MAX_AGE: expected a duration such as 90s, 2m, 24h or 7d, got \"forever\""},
        {"CERTSTREAM_INGEST_SOURCE=log",
         "environment variable CERTSTREAM_INGEST_SOURCE: expected one of logs, nats; got \"log\""},
        {"CERTSTREAM_NATS_REPLICAS=0", "environment variable CERTSTREAM_NATS_REPLICAS: value 0 out of range 1..5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *env[] = {(char *)bad[i].var, NULL};
        rc = config_load(&c, &flags, env, &err);
        if (rc == 0) config_free(&c);
        CHECK(rc == -1);
        CHECK_STR(err.message, bad[i].message);
    }
    /* a cross-key problem set in the environment names the variable */
    char *cross[] = {"CERTSTREAM_INGEST_SOURCE=nats", "CERTSTREAM_NATS_PUBLISH=true", NULL};
    rc = config_load(&c, &flags, cross, &err);
    if (rc == 0) config_free(&c);
    CHECK(rc == -1);
    CHECK(strncmp(err.message, "environment variable CERTSTREAM_", 32) == 0);
    unlink(path);
}

int main(void)
{
    static const struct unit_test tests[] = {
        {"defaults", test_defaults},
        {"durations", test_durations},
        {"bad_files", test_bad_files},
        {"env", test_env},
    };
    return run_unit_tests(tests, sizeof tests / sizeof tests[0]);
}
