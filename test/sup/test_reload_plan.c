/* test_reload_plan.c - reload planning (reload_plan.c): the running
 * configuration and a new one, both loaded from YAML as the server loads
 * them, give the exact plan docs/operations.md ("Reload") promises for each
 * kind of change. Prints "N passed, N failed". */
#include "conf/config.h"
#include "conf/config_internal.h"
#include "reload_plan.h"
#include "test/unit_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The expected plan, field by field (keys: the changed keys in order). */
struct want {
    const char *keys[8];
    enum reload_apply how[8];
    const char *refused;
    bool workers, address, ring, fanout, resignal, ingest, url, settings, dedup, watch, log_output;
};

static void load(struct config *c, const char *yaml)
{
    struct config_error err;
    if (config_load_buffer(c, yaml, strlen(yaml), "config.yaml", &err) != 0) {
        fprintf(stderr, "config refused: %s\n%s", err.message, yaml);
        exit(2);
    }
}

/* Plans the reload from cur_yaml to new_yaml and compares every field. */
static void expect(int line, const char *cur_yaml, const char *new_yaml, const struct want *w)
{
    struct config cur, fresh;
    struct reload_plan p;
    load(&cur, cur_yaml);
    load(&fresh, new_yaml);
    reload_plan_make(&p, &cur, &fresh);
    int before = unit_failed;
    size_t n = 0;
    while (n < 8 && w->keys[n])
        n++;
    CHECK(p.n_keys == n);
    for (size_t i = 0; i < n && i < p.n_keys; i++) {
        CHECK_STR(p.keys[i], w->keys[i]);
        CHECK(p.how[i] == w->how[i]);
    }
    if (w->refused)
        CHECK_STR(p.refused, w->refused);
    else
        CHECK(p.refused == NULL);
    CHECK(p.workers == w->workers);
    CHECK(p.address == w->address);
    CHECK(p.ring == w->ring);
    CHECK(p.fanout == w->fanout);
    CHECK(p.resignal == w->resignal);
    CHECK(p.ingest == w->ingest);
    CHECK(p.url == w->url);
    CHECK(p.settings == w->settings);
    CHECK(p.dedup == w->dedup);
    CHECK(p.watch == w->watch);
    CHECK(p.log_output == w->log_output);
    if (unit_failed != before)
        fprintf(stderr, "  (the case at line %d)\n", line);
    config_free(&cur);
    config_free(&fresh);
}
#define EXPECT(cur, fresh, ...) expect(__LINE__, cur, fresh, &(struct want){__VA_ARGS__})

static const char *const base = "port: 8080\nworkers: 2\n";

static void test_unchanged(void)
{
    EXPECT(base, base, .keys = {NULL});
    EXPECT(base, "workers: 2\nport: 8080\nlog_level: info\n", .keys = {NULL}); /* the default, written out */
}

static void test_in_place(void)
{
    EXPECT(base, "port: 8080\nworkers: 2\nlog_level: debug\n", .keys = {"log_level"}, .how = {RELOAD_IN_PLACE});
    EXPECT(base, "port: 8080\nworkers: 2\nwatchdog_secs: 30\nring_claim_timeout_ms: 5000\n",
           .keys = {"watchdog_secs", "ring_claim_timeout_ms"}, .how = {RELOAD_IN_PLACE, RELOAD_IN_PLACE});
    /* the supervisor's own file: no ingest process restarts */
    EXPECT(base, "port: 8080\nworkers: 2\nct_log:\n  state_file: state.json\n", .keys = {"ct_log.state_file"},
           .how = {RELOAD_IN_PLACE});
    EXPECT(base, "port: 8080\nworkers: 2\nlog_format: json\n", .keys = {"log_format"}, .how = {RELOAD_IN_PLACE},
           .log_output = true);
    EXPECT(base, "port: 8080\nworkers: 2\nhot_reload:\n  enabled: true\n  watch_path: config.yaml\n",
           .keys = {"hot_reload.enabled", "hot_reload.watch_path"}, .how = {RELOAD_IN_PLACE, RELOAD_IN_PLACE},
           .watch = true);
}

static void test_fanout_in_place(void)
{
    EXPECT(base, "port: 8080\nworkers: 2\nlimits:\n  max_headers: 50\nauth:\n  enabled: true\n  tokens: [abc]\n",
           .keys = {"auth.enabled", "auth.tokens", "limits.max_headers"},
           .how = {RELOAD_FANOUT, RELOAD_FANOUT, RELOAD_FANOUT}, .fanout = true);
    /* kept workers with an access log reopen it (SIGHUP), also on a reload that changed nothing */
    const char *logged = "port: 8080\nworkers: 2\naccess_log:\n  enabled: true\n  path: access.log\n";
    EXPECT(logged, "port: 8080\nworkers: 2\naccess_log:\n  enabled: true\n  path: access.log\n"
                   "keepalive:\n  idle_timeout_secs: 120\n",
           .keys = {"keepalive.idle_timeout_secs"}, .how = {RELOAD_FANOUT}, .fanout = true, .resignal = true);
    EXPECT(logged, logged, .keys = {NULL}, .resignal = true);
}

static void test_workers(void)
{
    EXPECT(base, "port: 8080\nworkers: 3\n", .keys = {"workers"}, .how = {RELOAD_WORKERS}, .workers = true);
    EXPECT(base, "port: 8081\nworkers: 2\n", .keys = {"port"}, .how = {RELOAD_WORKERS}, .workers = true,
           .address = true);
    EXPECT(base, "host: 127.0.0.1\nport: 8080\nworkers: 2\n", .keys = {"host"}, .how = {RELOAD_WORKERS},
           .workers = true, .address = true);
    EXPECT(base, "port: 8080\nworkers: 2\nring_size: 64MiB\n", .keys = {"ring_size"}, .how = {RELOAD_WORKERS},
           .workers = true, .ring = true);
    /* a key the running workers would load in place goes with the new workers
     * instead; the new workers open the access log themselves */
    EXPECT("port: 8080\nworkers: 2\naccess_log:\n  enabled: true\n  path: access.log\n",
           "port: 8080\nworkers: 4\naccess_log:\n  enabled: true\n  path: access.log\nlimits:\n  max_headers: 50\n",
           .keys = {"workers", "limits.max_headers"}, .how = {RELOAD_WORKERS, RELOAD_FANOUT}, .workers = true);
    /* producers compress, workers negotiate: both */
    EXPECT(base, "port: 8080\nworkers: 2\ncompression:\n  level: 1\n", .keys = {"compression.level"},
           .how = {RELOAD_BOTH}, .workers = true, .ingest = true, .settings = true);
}

static void test_ingest(void)
{
    EXPECT(base, "port: 8080\nworkers: 2\nct_logs_url: http://127.0.0.1:9/list.json\n", .keys = {"ct_logs_url"},
           .how = {RELOAD_INGEST}, .ingest = true, .url = true);
    /* which logs, not how they are followed: only changed groups restart */
    EXPECT(base, "port: 8080\nworkers: 2\ncustom_logs:\n  - url: http://127.0.0.1:9/log/\n    name: one\n",
           .keys = {"custom_logs"}, .how = {RELOAD_INGEST}, .ingest = true);
    EXPECT(base, "port: 8080\nworkers: 2\nct_log:\n  batch_size: 64\n", .keys = {"ct_log.batch_size"},
           .how = {RELOAD_INGEST}, .ingest = true, .settings = true);
    EXPECT(base, "port: 8080\nworkers: 2\ndedup:\n  capacity: 4096\n", .keys = {"dedup.capacity"},
           .how = {RELOAD_INGEST}, .ingest = true, .settings = true, .dedup = true);
    EXPECT(base, "port: 8080\nworkers: 2\ndedup:\n  ttl_secs: 60\n", .keys = {"dedup.ttl_secs"},
           .how = {RELOAD_INGEST}, .ingest = true, .settings = true, .dedup = true);
}

static void test_nats_refused(void)
{
    const char *pub = "port: 8080\nworkers: 2\nnats:\n  publish: true\n";
    EXPECT(pub, "port: 8080\nworkers: 2\nnats:\n  publish: true\n  max_age: 2h\n", .keys = {"nats.max_age"},
           .how = {RELOAD_WORKERS}, .refused = "nats.max_age", .workers = true);
    EXPECT(pub, "port: 8080\nworkers: 2\nnats:\n  publish: true\nring_size: 64MiB\n", .keys = {"ring_size"},
           .how = {RELOAD_WORKERS}, .refused = "ring_size", .workers = true, .ring = true);
    /* turning the NATS role off is refused too */
    EXPECT(pub, base, .keys = {"nats.publish"}, .how = {RELOAD_WORKERS}, .refused = "nats.publish",
           .workers = true);
    EXPECT(base, "port: 8080\nworkers: 2\ningest:\n  source: nats\n", .keys = {"ingest.source"},
           .how = {RELOAD_INGEST}, .refused = "ingest.source", .ingest = true, .settings = true);
    /* other keys on a NATS node apply as anywhere */
    EXPECT(pub, "port: 8080\nworkers: 2\nnats:\n  publish: true\nlog_level: debug\n", .keys = {"log_level"},
           .how = {RELOAD_IN_PLACE});
}

static void test_names(void)
{
    CHECK_STR(reload_apply_name(RELOAD_IN_PLACE), "applied in place");
    CHECK_STR(reload_apply_name(RELOAD_WORKERS),
              "applied by replacing the fanout workers (new connections use it now; "
              "connected clients stay on the old workers until they leave)");
    CHECK_STR(reload_apply_name(RELOAD_INGEST),
              "applied by rebuilding the log list; changed ingest groups restart from their positions");
    CHECK(reload_apply_of("operator_pacing") == RELOAD_INGEST && reload_apply_of("filters.enabled") == RELOAD_WORKERS &&
          reload_apply_of("tls.cert_file") == RELOAD_WORKERS && reload_apply_of("shutdown.drain_timeout_secs") == RELOAD_FANOUT);
}

int main(void)
{
    static const struct unit_test tests[] = {
        {"unchanged", test_unchanged},
        {"in_place", test_in_place},
        {"fanout_in_place", test_fanout_in_place},
        {"workers", test_workers},
        {"ingest", test_ingest},
        {"nats_refused", test_nats_refused},
        {"names", test_names},
    };
    return run_unit_tests(tests, sizeof tests / sizeof tests[0]);
}
