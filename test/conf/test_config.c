/* test_config.c - unit tests for conf/: defaults, every key from YAML, the
 * environment and flag layers, the search order, refused files with their
 * exact messages, size limits, non-UTF-8 input, the print -> load round trip,
 * and that packaging/config.example.yaml and docs/configuration.md stay true.
 *
 * Usage: test_config SOURCE_DIR. Prints "N passed, N failed". */
#include "conf/config.h"
#include "conf/config_internal.h"
#include "test/unit_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *source_dir;
static char tmpdir[256];

static char *const no_env[] = {NULL};

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (fwrite(data, 1, len, f) != len || fclose(f) != 0) { perror(path); exit(2); }
}

static void write_str(const char *path, const char *s) { write_file(path, s, strlen(s)); }

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) { cap *= 2; buf = realloc(buf, cap + 1); }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* Loads YAML text named "config.yaml"; returns 0/-1, message in err. */
static int load_text(struct config *cfg, const char *yaml, struct config_error *err)
{
    return config_load_buffer(cfg, yaml, strlen(yaml), "config.yaml", err);
}

/* A fresh empty directory to chdir into, so ./config.yaml is under control. */
static void enter_empty_dir(const char *name)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) { perror(dir); exit(2); }
    if (chdir(dir) < 0) { perror(dir); exit(2); }
}

/* ------------------------------------------------------------- cases */

static void test_defaults(void)
{
    struct config d;
    config_defaults(&d);
    CHECK_STR(d.host, "0.0.0.0");
    CHECK(d.port == 8080);
    CHECK_STR(d.log_level, "info");
    CHECK(d.buffer_size == 0);
    CHECK(d.limits.slow_client_seconds == 10);
    CHECK(d.limits.slow_client_bytes == 0);
    CHECK(config_history_messages(&d) == 5000);
    CHECK(config_slow_client_bytes(&d) == 24u * 1024 * 1024);
    CHECK_STR(d.ct_logs_url, "https://www.gstatic.com/ct/log_list/v3/all_logs_list.json");
    CHECK(d.protocols.websocket && d.protocols.sse && d.protocols.metrics &&
          d.protocols.health && d.protocols.example_json && d.protocols.api);
    CHECK_STR(d.cors.allowed_origins, "");
    CHECK_STR(d.ct_log.state_file, "certstream_state.json");
    CHECK(d.ct_log.batch_size == 256);
    CHECK(d.ct_log.poll_interval_ms == 1000);
    CHECK(d.ct_log.retry_max_attempts == 3);
    CHECK(d.ct_log.request_timeout_secs == 30);
    CHECK(d.ct_log.fetch_concurrency == 4);
    CHECK(d.ct_log.start_overlap == 0);
    CHECK(d.ct_log.retry_initial_delay_ms == 1000);
    CHECK(d.ct_log.retry_max_delay_ms == 60000);
    CHECK(d.ct_log.operator_rate_limit_ms == 100);
    CHECK_STR(d.ct_log.position_ahead, "wait");
    CHECK(d.ct_log.max_response_bytes == 0);
    CHECK(d.ct_log.max_inflight_bytes == 64u << 20);
    CHECK(d.ct_log.list_enabled && d.ct_log.rfc6962_enabled && d.ct_log.static_enabled);
    CHECK(!d.ct_log.verify_tiles);
    CHECK_STR(d.ct_logs_signature, "optional");
    CHECK_STR(d.ct_logs_public_key, "");
    CHECK(!d.connection_limit.enabled);
    CHECK(d.connection_limit.max_connections == 10000);
    CHECK(d.connection_limit.per_ip_limit == 100);
    CHECK(!d.auth.enabled);
    CHECK(d.auth.n_tokens == 0);
    CHECK_STR(d.auth.header_name, "Authorization");
    CHECK(!d.hot_reload.enabled);
    CHECK_STR(d.hot_reload.watch_path, "");
    CHECK(d.n_custom_logs == 0 && d.n_static_logs == 0);
    CHECK(d.workers == 0);
    CHECK(d.ring_size == 32u * 1024 * 1024);
    CHECK(d.streams.full && d.streams.lite && d.streams.domains_only);
    CHECK_STR(d.ingest.group_by, "operator");
    CHECK(d.ingest.max_processes == 0);
    CHECK(d.keepalive.websocket_heartbeat_secs == 10);
    CHECK(d.keepalive.ping_interval_secs == 15);
    CHECK(d.keepalive.idle_timeout_secs == 60);
    CHECK(d.keepalive.sse_heartbeat_secs == 15);
    CHECK(d.dedup.capacity == 131072);
    CHECK(d.dedup.ttl_secs == 300);
    CHECK(d.limits.max_request_bytes == 8192);
    CHECK(d.limits.max_headers == 64);
    CHECK(d.limits.request_timeout_secs == 10);
    CHECK(d.limits.max_frame_bytes == 65536);
    CHECK(d.limits.max_message_bytes == 262144);
    CHECK(d.limits.send_buffer_bytes == 1048576);
    CHECK(d.watchdog_secs == 10);
    CHECK(d.ring_claim_timeout_ms == 1000);
    CHECK_STR(d.log_format, "text");
    CHECK_STR(d.log_file, "");
    CHECK(d.shutdown.drain_timeout_secs == 300);
    CHECK(d.source_path == NULL);

    /* No file anywhere in the search order: built-in defaults only. */
    struct config c;
    struct config_error err;
    enter_empty_dir("defaults");
    CHECK(config_load_search(&c, NULL, no_env, NULL, &err) == 0);
    CHECK(c.source_path == NULL);
    CHECK(config_diff(&c, &d, 0) == NULL);
    config_free(&c);
    config_free(&d);
    config_free(&d);   /* idempotent */
}

/* Every key set to a value other than its default. */
static const char every_key_yaml[] =
    "host: 127.0.0.1\n"
    "port: 9443\n"
    "log_level: debug\n"
    "buffer_size: 5000\n"
    "ct_logs_url: http://127.0.0.1:9/list.json\n"
    "ct_logs_signature: required\n"
    "ct_logs_public_key: /etc/certstream/list.pem\n"
    "protocols:\n"
    "  websocket: false\n"
    "  sse: no\n"
    "  metrics: off\n"
    "  health: 0\n"
    "  example_json: False\n"
    "  web_page: false\n"
    "  api: false\n"
    "cors:\n"
    "  allowed_origins: https://a.example, http://127.0.0.1:3000\n"
    "ct_log:\n"
    "  state_file: /var/lib/certstream/state.json\n"
    "  batch_size: 1024\n"
    "  poll_interval_ms: 2500\n"
    "  retry_max_attempts: 7\n"
    "  request_timeout_secs: 12\n"
    "  fetch_concurrency: 8\n"
    "  start_overlap: 100\n"
    "  retry_initial_delay_ms: 250\n"
    "  retry_max_delay_ms: 30000\n"
    "  operator_rate_limit_ms: 0\n"
    "  position_ahead: restart_at_head\n"
    "  max_response_bytes: 8388608\n"
    "  max_inflight_bytes: 33554432\n"
    "  list_enabled: false\n"
    "  rfc6962_enabled: no\n"
    "  static_enabled: off\n"
    "  verify_tiles: true\n"
    "connection_limit:\n"
    "  enabled: yes\n"
    "  max_connections: 500\n"
    "  per_ip_limit: 5\n"
    "  ipv6_prefix: 56\n"
    "  address_table_size: 1024\n"
    "auth:\n"
    "  enabled: on\n"
    "  tokens:\n"
    "    - secret-one\n"
    "    - \"secret-two\"\n"
    "  header_name: X-Api-Key\n"
    "  allow_query_token: yes\n"
    "hot_reload:\n"
    "  enabled: true\n"
    "  watch_path: /etc/certstream/extra.yaml\n"
    "custom_logs:\n"
    "  - name: Local log\n"
    "    url: https://127.0.0.1:8443/ct/\n"
    "  - {name: Second, url: \"http://127.0.0.1:9/b/\"}\n"
    "static_logs:\n"
    "  - name: Tiled\n"
    "    url: https://127.0.0.1:8444/tiles/\n"
    "workers: 3\n"
    "ring_size: 256MiB\n"
    "streams:\n"
    "  full: false\n"
    "  lite: FALSE\n"
    "  domains_only: no\n"
    "  lite_path: /lite\n"
    "  full_path: /v1/full\n"
    "  domains_path: /v1/domains\n"
    "  sse_path: /events\n"
    "ingest:\n"
    "  group_by: single\n"
    "  max_processes: 2\n"
    "  source: nats\n"
    "keepalive:\n"
    "  websocket_heartbeat_secs: 5\n"
    "  ping_interval_secs: 20\n"
    "  idle_timeout_secs: 90\n"
    "  sse_heartbeat_secs: 25\n"
    "dedup:\n"
    "  capacity: 4096\n"
    "  ttl_secs: 60\n"
    "limits:\n"
    "  max_request_bytes: 4096\n"
    "  max_headers: 32\n"
    "  request_timeout_secs: 5\n"
    "  max_frame_bytes: 1024\n"
    "  max_message_bytes: 2048\n"
    "  send_buffer_bytes: 65536\n"
    "  slow_client_seconds: 30\n"
    "  slow_client_bytes: 16777216\n"
    "watchdog_secs: 3\n"
    "ring_claim_timeout_ms: 250\n"
    "log_format: json\n"
    "log_file: /var/log/certstream.log\n"
    "shutdown:\n"
    "  drain_timeout_secs: 30\n"
    "message_format:\n"
    "  absent_name_fields: omit\n"
    "filters:\n"
    "  enabled: false\n"
    "  max_per_worker: 50\n"
    "  max_patterns: 8\n"
    "  max_pattern_bytes: 100\n"
    "  regex_match_limit: 5000\n"
    "compression:\n"
    "  enabled: no\n"
    "  min_size: 1000\n"
    "  level: 1\n"
    "  shared_context: true\n"
    "  shared_cache_size: 65536\n"
    /* network edge */
    "trusted_proxies: 10.0.0.0/8, ::1\n"
    "proxy_protocol: true\n"
    "access:\n"
    "  streams_allow: 192.0.2.0/24\n"
    "  metrics_allow: \"127.0.0.1\"\n"
    "rate_limit:\n"
    "  connections_per_minute: 120\n"
    "  burst: 7\n"
    "tls:\n"
    "  cert_file: \"\"\n"
    "  key_file: \"\"\n"
    "  plain_port: 0\n"
    "nats:\n"
    "  url: \"nats://10.0.0.1:4222,tls://10.0.0.2:4222\"\n"
    "  stream: CT_1\n"
    "  subject_prefix: ct.prod\n"
    "  publish: false\n"
    "  max_age: 7d\n"
    "  duplicate_window: 90s\n"
    "  replicas: 3\n"
    "  creds_file: /etc/certstream/nats.creds\n"
    "  position_file: /var/lib/certstream/nats.pos\n"
    "  max_pending: 500\n"
    "  max_lag_secs: 30\n";

static void check_every_key(const struct config *c)
{
    CHECK_STR(c->host, "127.0.0.1");
    CHECK(c->port == 9443);
    CHECK_STR(c->log_level, "debug");
    CHECK(c->buffer_size == 5000);
    CHECK_STR(c->ct_logs_url, "http://127.0.0.1:9/list.json");
    CHECK(!c->protocols.websocket && !c->protocols.sse && !c->protocols.metrics &&
          !c->protocols.health && !c->protocols.example_json && !c->protocols.api);
    CHECK_STR(c->cors.allowed_origins, "https://a.example, http://127.0.0.1:3000");
    CHECK_STR(c->ct_log.state_file, "/var/lib/certstream/state.json");
    CHECK(c->ct_log.batch_size == 1024);
    CHECK(c->ct_log.poll_interval_ms == 2500);
    CHECK(c->ct_log.retry_max_attempts == 7);
    CHECK(c->ct_log.request_timeout_secs == 12);
    CHECK(c->ct_log.fetch_concurrency == 8);
    CHECK(c->ct_log.start_overlap == 100);
    CHECK(c->ct_log.retry_initial_delay_ms == 250);
    CHECK(c->ct_log.retry_max_delay_ms == 30000);
    CHECK(c->ct_log.operator_rate_limit_ms == 0);
    CHECK_STR(c->ct_log.position_ahead, "restart_at_head");
    CHECK(c->ct_log.max_response_bytes == 8388608);
    CHECK(c->ct_log.max_inflight_bytes == 33554432);
    CHECK(!c->ct_log.list_enabled && !c->ct_log.rfc6962_enabled && !c->ct_log.static_enabled);
    CHECK(c->ct_log.verify_tiles);
    CHECK_STR(c->ct_logs_signature, "required");
    CHECK_STR(c->ct_logs_public_key, "/etc/certstream/list.pem");
    CHECK(c->connection_limit.enabled);
    CHECK(c->connection_limit.max_connections == 500);
    CHECK(c->connection_limit.per_ip_limit == 5);
    CHECK(c->auth.enabled);
    CHECK(c->auth.n_tokens == 2);
    if (c->auth.n_tokens == 2) {
        CHECK_STR(c->auth.tokens[0], "secret-one");
        CHECK_STR(c->auth.tokens[1], "secret-two");
    }
    CHECK_STR(c->auth.header_name, "X-Api-Key");
    CHECK(c->hot_reload.enabled);
    CHECK_STR(c->hot_reload.watch_path, "/etc/certstream/extra.yaml");
    CHECK(c->n_custom_logs == 2);
    if (c->n_custom_logs == 2) {
        CHECK_STR(c->custom_logs[0].name, "Local log");
        CHECK_STR(c->custom_logs[0].url, "https://127.0.0.1:8443/ct/");
        CHECK_STR(c->custom_logs[1].name, "Second");
        CHECK_STR(c->custom_logs[1].url, "http://127.0.0.1:9/b/");
    }
    CHECK(c->n_static_logs == 1);
    if (c->n_static_logs == 1) {
        CHECK_STR(c->static_logs[0].name, "Tiled");
        CHECK_STR(c->static_logs[0].url, "https://127.0.0.1:8444/tiles/");
    }
    CHECK(c->workers == 3);
    CHECK(c->ring_size == 256u * 1024 * 1024);
    CHECK_STR(c->ingest.source, "nats");
    CHECK_STR(c->nats.url, "nats://10.0.0.1:4222,tls://10.0.0.2:4222");
    CHECK_STR(c->nats.stream, "CT_1");
    CHECK_STR(c->nats.subject_prefix, "ct.prod");
    CHECK(!c->nats.publish);
    CHECK_STR(c->nats.max_age, "7d");
    CHECK_STR(c->nats.duplicate_window, "90s");
    CHECK(c->nats.replicas == 3);
    CHECK_STR(c->nats.creds_file, "/etc/certstream/nats.creds");
    CHECK_STR(c->nats.position_file, "/var/lib/certstream/nats.pos");
    CHECK(c->nats.max_pending == 500 && c->nats.max_lag_secs == 30);
    CHECK(!c->streams.full && !c->streams.lite && !c->streams.domains_only);
    CHECK_STR(c->ingest.group_by, "single");
    CHECK(c->ingest.max_processes == 2);
    CHECK(c->keepalive.websocket_heartbeat_secs == 5);
    CHECK(c->keepalive.ping_interval_secs == 20);
    CHECK(c->keepalive.idle_timeout_secs == 90);
    CHECK(c->keepalive.sse_heartbeat_secs == 25);
    CHECK(c->dedup.capacity == 4096);
    CHECK(c->dedup.ttl_secs == 60);
    CHECK(c->limits.max_request_bytes == 4096);
    CHECK(c->limits.max_headers == 32);
    CHECK(c->limits.request_timeout_secs == 5);
    CHECK(c->limits.max_frame_bytes == 1024);
    CHECK(c->limits.max_message_bytes == 2048);
    CHECK(c->limits.send_buffer_bytes == 65536);
    CHECK(c->limits.slow_client_seconds == 30);
    CHECK(c->limits.slow_client_bytes == 16777216);
    CHECK(c->watchdog_secs == 3);
    CHECK(c->ring_claim_timeout_ms == 250);
    CHECK_STR(c->log_format, "json");
    CHECK_STR(c->log_file, "/var/log/certstream.log");
    CHECK(c->shutdown.drain_timeout_secs == 30);
    CHECK_STR(c->message_format.absent_name_fields, "omit");
    CHECK_STR(c->streams.lite_path, "/lite");
    CHECK_STR(c->streams.full_path, "/v1/full");
    CHECK_STR(c->streams.domains_path, "/v1/domains");
    CHECK_STR(c->streams.sse_path, "/events");
    CHECK(!c->filters.enabled && c->filters.max_per_worker == 50 && c->filters.max_patterns == 8 &&
          c->filters.max_pattern_bytes == 100 && c->filters.regex_match_limit == 5000);
    CHECK(!c->compression.enabled && c->compression.min_size == 1000 && c->compression.level == 1);
    CHECK(c->compression.shared_context && c->compression.shared_cache_size == 65536);
    CHECK(!c->protocols.web_page && c->auth.allow_query_token);
    /* network edge */
    CHECK(c->connection_limit.ipv6_prefix == 56);
    CHECK(c->connection_limit.address_table_size == 1024);
    CHECK_STR(c->trusted_proxies, "10.0.0.0/8, ::1");
    CHECK(c->proxy_protocol);
    CHECK_STR(c->access.streams_allow, "192.0.2.0/24");
    CHECK_STR(c->access.metrics_allow, "127.0.0.1");
    CHECK(c->rate_limit.connections_per_minute == 120);
    CHECK(c->rate_limit.burst == 7);
    CHECK_STR(c->tls.cert_file, "");
    CHECK(c->tls.plain_port == 0);
}

static void test_every_key_from_yaml(void)
{
    struct config c;
    struct config_error err;
    char path[512];
    snprintf(path, sizeof path, "%s/every.yaml", tmpdir);
    write_str(path, every_key_yaml);
    struct config_flags flags = {.config_path = path};
    int rc = config_load(&c, &flags, no_env, &err);
    if (rc != 0) fprintf(stderr, "  %s\n", err.message);
    CHECK(rc == 0);
    if (rc != 0) return;
    check_every_key(&c);
    CHECK_STR(c.source_path, path);
    config_free(&c);
}

/* One key at a time, so a key missing from the libcyaml schema or the walk
 * shows up by name; values the file leaves out keep their defaults. */
static void test_partial_file_keeps_defaults(void)
{
    struct config c, d;
    struct config_error err;
    CHECK(load_text(&c, "ct_log:\n  batch_size: 17\n", &err) == 0);
    config_defaults(&d);
    d.ct_log.batch_size = 17;
    CHECK(config_diff(&c, &d, 0) == NULL);
    config_free(&c);
    config_free(&d);

    /* Empty sections and lists are written {} and []. */
    CHECK(load_text(&c, "auth: {}\ncustom_logs: []\nport: 81\nstatic_logs: []\n", &err) == 0);
    CHECK(c.port == 81 && !c.auth.enabled && c.n_custom_logs == 0);
    config_free(&c);
}

/* cors.allowed_origins as a YAML sequence: the same as the comma string. */
static void test_cors_origins_list(void)
{
    struct config c;
    struct config_error err = {{0}};
    CHECK(load_text(&c, "cors:\n  allowed_origins:\n    - https://a.example\n    - http://127.0.0.1:3000\n"
                        "    - \"http://[::1]:8080\"\n", &err) == 0);
    CHECK_STR(c.cors.allowed_origins, "https://a.example, http://127.0.0.1:3000, http://[::1]:8080");
    config_free(&c);
    CHECK(load_text(&c, "cors:\n  allowed_origins: [\"*\"]\n", &err) == 0);
    CHECK_STR(c.cors.allowed_origins, "*");
    config_free(&c);
    /* an empty sequence is CORS off, like "" */
    CHECK(load_text(&c, "cors:\n  allowed_origins: []\n", &err) == 0);
    CHECK_STR(c.cors.allowed_origins, "");
    config_free(&c);
    CHECK(load_text(&c, "cors:\n  allowed_origins: https://a.example http://b.example:81\n", &err) == 0);
    CHECK_STR(c.cors.allowed_origins, "https://a.example http://b.example:81");
    config_free(&c);
}

/* Every key set through its environment variable. */
static void test_every_key_from_env(void)
{
    char *env[] = {
        "CERTSTREAM_HOST=127.0.0.1", "CERTSTREAM_PORT=9443", "CERTSTREAM_LOG_LEVEL=debug",
        "CERTSTREAM_BUFFER_SIZE=5000", "CERTSTREAM_CT_LOGS_URL=http://127.0.0.1:9/list.json",
        "CERTSTREAM_WS_ENABLED=false", "CERTSTREAM_SSE_ENABLED=no",
        "CERTSTREAM_METRICS_ENABLED=off", "CERTSTREAM_HEALTH_ENABLED=0",
        "CERTSTREAM_EXAMPLE_JSON_ENABLED=False",
        "CERTSTREAM_API_ENABLED=false",
        "CERTSTREAM_CORS_ALLOWED_ORIGINS=https://a.example, http://127.0.0.1:3000",
        "CERTSTREAM_CT_LOG_STATE_FILE=/var/lib/certstream/state.json",
        "CERTSTREAM_CT_LOG_BATCH_SIZE=1024", "CERTSTREAM_CT_LOG_POLL_INTERVAL_MS=2500",
        "CERTSTREAM_CT_LOG_RETRY_MAX_ATTEMPTS=7", "CERTSTREAM_CT_LOG_REQUEST_TIMEOUT_SECS=12",
        "CERTSTREAM_CT_LOG_FETCH_CONCURRENCY=8", "CERTSTREAM_CT_LOG_START_OVERLAP=100",
        "CERTSTREAM_CT_LOG_RETRY_INITIAL_DELAY_MS=250", "CERTSTREAM_CT_LOG_RETRY_MAX_DELAY_MS=30000",
        "CERTSTREAM_CT_LOG_OPERATOR_RATE_LIMIT_MS=0",
        "CERTSTREAM_CT_LOG_POSITION_AHEAD=restart_at_head",
        "CERTSTREAM_CT_LOG_MAX_RESPONSE_BYTES=8388608",
        "CERTSTREAM_CT_LOG_MAX_INFLIGHT_BYTES=33554432",
        "CERTSTREAM_CT_LOG_LIST_ENABLED=false", "CERTSTREAM_CT_LOG_RFC6962_ENABLED=no",
        "CERTSTREAM_CT_LOG_STATIC_ENABLED=off", "CERTSTREAM_CT_LOG_VERIFY_TILES=true",
        "CERTSTREAM_CT_LOGS_SIGNATURE=required", "CERTSTREAM_CT_LOGS_PUBLIC_KEY=/etc/certstream/list.pem",
        "CERTSTREAM_CONNECTION_LIMIT_ENABLED=yes", "CERTSTREAM_CONNECTION_LIMIT_MAX_CONNECTIONS=500",
        "CERTSTREAM_CONNECTION_LIMIT_PER_IP_LIMIT=5",
        "CERTSTREAM_AUTH_ENABLED=on", "CERTSTREAM_AUTH_TOKENS=secret-one, secret-two",
        "CERTSTREAM_AUTH_HEADER_NAME=X-Api-Key",
        "CERTSTREAM_HOT_RELOAD_ENABLED=true",
        "CERTSTREAM_HOT_RELOAD_WATCH_PATH=/etc/certstream/extra.yaml",
        "CERTSTREAM_CUSTOM_LOGS=Local log=https://127.0.0.1:8443/ct/,Second=http://127.0.0.1:9/b/",
        "CERTSTREAM_STATIC_LOGS=Tiled=https://127.0.0.1:8444/tiles/",
        "CERTSTREAM_WORKERS=3", "CERTSTREAM_RING_SIZE=256MiB",
        "CERTSTREAM_STREAMS_FULL=false", "CERTSTREAM_STREAMS_LITE=FALSE",
        "CERTSTREAM_STREAMS_DOMAINS_ONLY=no",
        "CERTSTREAM_INGEST_GROUP_BY=single", "CERTSTREAM_INGEST_MAX_PROCESSES=2",
        "CERTSTREAM_KEEPALIVE_WEBSOCKET_HEARTBEAT_SECS=5",
        "CERTSTREAM_KEEPALIVE_PING_INTERVAL_SECS=20",
        "CERTSTREAM_KEEPALIVE_IDLE_TIMEOUT_SECS=90",
        "CERTSTREAM_KEEPALIVE_SSE_HEARTBEAT_SECS=25",
        "CERTSTREAM_DEDUP_CAPACITY=4096", "CERTSTREAM_DEDUP_TTL_SECS=60",
        "CERTSTREAM_LIMITS_MAX_REQUEST_BYTES=4096", "CERTSTREAM_LIMITS_MAX_HEADERS=32",
        "CERTSTREAM_LIMITS_REQUEST_TIMEOUT_SECS=5", "CERTSTREAM_LIMITS_MAX_FRAME_BYTES=1024",
        "CERTSTREAM_LIMITS_MAX_MESSAGE_BYTES=2048",
        "CERTSTREAM_LIMITS_SEND_BUFFER_BYTES=65536",
        "CERTSTREAM_LIMITS_SLOW_CLIENT_SECONDS=30", "CERTSTREAM_LIMITS_SLOW_CLIENT_BYTES=16777216",
        "CERTSTREAM_INGEST_SOURCE=nats", "CERTSTREAM_NATS_URL=nats://10.0.0.1:4222,tls://10.0.0.2:4222",
        "CERTSTREAM_NATS_STREAM=CT_1", "CERTSTREAM_NATS_SUBJECT_PREFIX=ct.prod",
        "CERTSTREAM_NATS_PUBLISH=false", "CERTSTREAM_NATS_MAX_AGE=7d",
        "CERTSTREAM_NATS_DUPLICATE_WINDOW=90s", "CERTSTREAM_NATS_REPLICAS=3",
        "CERTSTREAM_NATS_CREDS_FILE=/etc/certstream/nats.creds",
        "CERTSTREAM_NATS_POSITION_FILE=/var/lib/certstream/nats.pos",
        "CERTSTREAM_NATS_MAX_PENDING=500", "CERTSTREAM_NATS_MAX_LAG_SECS=30",
        "CERTSTREAM_WATCHDOG_SECS=3", "CERTSTREAM_RING_CLAIM_TIMEOUT_MS=250",
        "CERTSTREAM_LOG_FORMAT=json", "CERTSTREAM_LOG_FILE=/var/log/certstream.log",
        "CERTSTREAM_SHUTDOWN_DRAIN_TIMEOUT_SECS=30",
        "CERTSTREAM_MESSAGE_FORMAT_ABSENT_NAME_FIELDS=omit",
        "CERTSTREAM_STREAMS_LITE_PATH=/lite", "CERTSTREAM_STREAMS_FULL_PATH=/v1/full",
        "CERTSTREAM_STREAMS_DOMAINS_PATH=/v1/domains", "CERTSTREAM_STREAMS_SSE_PATH=/events",
        "CERTSTREAM_FILTERS_ENABLED=false", "CERTSTREAM_FILTERS_MAX_PER_WORKER=50",
        "CERTSTREAM_FILTERS_MAX_PATTERNS=8", "CERTSTREAM_FILTERS_MAX_PATTERN_BYTES=100",
        "CERTSTREAM_FILTERS_REGEX_MATCH_LIMIT=5000",
        "CERTSTREAM_COMPRESSION_ENABLED=no", "CERTSTREAM_COMPRESSION_MIN_SIZE=1000",
        "CERTSTREAM_COMPRESSION_LEVEL=1", "CERTSTREAM_COMPRESSION_SHARED_CONTEXT=true",
        "CERTSTREAM_COMPRESSION_SHARED_CACHE_SIZE=65536",
        "CERTSTREAM_WEB_PAGE_ENABLED=false", "CERTSTREAM_AUTH_ALLOW_QUERY_TOKEN=yes",
        /* network edge (TLS files: test_config_edge.c and test/e2e/test_edge.py) */
        "CERTSTREAM_CONNECTION_LIMIT_IPV6_PREFIX=56",
        "CERTSTREAM_CONNECTION_LIMIT_ADDRESS_TABLE_SIZE=1024",
        "CERTSTREAM_TRUSTED_PROXIES=10.0.0.0/8, ::1",
        "CERTSTREAM_PROXY_PROTOCOL=true",
        "CERTSTREAM_ACCESS_STREAMS_ALLOW=192.0.2.0/24",
        "CERTSTREAM_ACCESS_METRICS_ALLOW=127.0.0.1",
        "CERTSTREAM_RATE_LIMIT_CONNECTIONS_PER_MINUTE=120",
        "CERTSTREAM_RATE_LIMIT_BURST=7",
        "CERTSTREAM_TLS_CERT_FILE=", "CERTSTREAM_TLS_KEY_FILE=", "CERTSTREAM_TLS_PLAIN_PORT=0",
        /* log list and per-log control (values checked in test_config_logctl.c) */
        "CERTSTREAM_APPLE_LOGS_URL=file:///tmp/apple.json",
        "CERTSTREAM_LOG_OVERRIDES=https://a.example/{batch_size=32}",
        "CERTSTREAM_OPERATOR_PACING=Google=2",
        "CERTSTREAM_TLS_SESSION_TICKETS=true", "CERTSTREAM_TLS_TICKET_ROTATE_SECS=3600",
        "CERTSTREAM_ACCESS_LOG_ENABLED=false", "CERTSTREAM_ACCESS_LOG_PATH=",
        "UNRELATED=1",
        NULL,
    };
    struct config c;
    struct config_error err;
    enter_empty_dir("env");
    int rc = config_load_search(&c, NULL, env, NULL, &err);
    if (rc != 0) fprintf(stderr, "  %s\n", err.message);
    CHECK(rc == 0);
    if (rc != 0) return;
    check_every_key(&c);
    CHECK(c.source_path == NULL);
    config_free(&c);

    /* The table of keys has an environment variable for each key, and every
     * one of them appears above. */
    for (size_t i = 0; i < config_key_count(); i++) {
        bool found = false;
        size_t n = strlen(config_key_env(i));
        for (char **e = env; *e; e++)
            found = found || (strncmp(*e, config_key_env(i), n) == 0 && (*e)[n] == '=');
        if (!found) fprintf(stderr, "  no env test for %s\n", config_key_env(i));
        CHECK(found);
    }
}

/* File < environment < flags. */
static void test_precedence(void)
{
    struct config c;
    struct config_error err;
    enter_empty_dir("precedence");
    write_str("config.yaml", "port: 1111\nworkers: 2\nlog_level: warn\nhost: 10.0.0.1\n");

    CHECK(config_load_search(&c, NULL, no_env, NULL, &err) == 0);
    CHECK(c.port == 1111 && c.workers == 2);
    CHECK_STR(c.source_path, "config.yaml");
    config_free(&c);

    char *env[] = {"CERTSTREAM_PORT=2222", "CERTSTREAM_WORKERS=4", NULL};
    CHECK(config_load_search(&c, NULL, env, NULL, &err) == 0);
    CHECK(c.port == 2222);           /* env over file */
    CHECK(c.workers == 4);
    CHECK_STR(c.log_level, "warn");  /* file over default */
    config_free(&c);

    struct config_flags flags = {.port = "3333", .log_level = "error", .host = "::1",
                                 .ring_size = "2MiB"};
    CHECK(config_load_search(&c, &flags, env, NULL, &err) == 0);
    CHECK(c.port == 3333);           /* flag over env */
    CHECK(c.workers == 4);           /* env kept where no flag */
    CHECK_STR(c.log_level, "error");
    CHECK_STR(c.host, "::1");
    CHECK(c.ring_size == 2u << 20);
    config_free(&c);

    struct config_flags wflags = {.workers = "0"};
    CHECK(config_load_search(&c, &wflags, env, NULL, &err) == 0);
    CHECK(c.workers == 0);
    config_free(&c);

    /* Empty CERTSTREAM_AUTH_TOKENS clears the file's tokens. */
    write_str("config.yaml", "auth:\n  tokens: [a, b]\n");
    char *clear[] = {"CERTSTREAM_AUTH_TOKENS=", NULL};
    CHECK(config_load_search(&c, NULL, clear, NULL, &err) == 0);
    CHECK(c.auth.n_tokens == 0);
    config_free(&c);
}

static void test_search_order(void)
{
    struct config c;
    struct config_error err;
    char sys[512], envfile[512], flagfile[512], envvar[600];
    snprintf(sys, sizeof sys, "%s/system.yaml", tmpdir);
    snprintf(envfile, sizeof envfile, "%s/fromenv.yaml", tmpdir);
    snprintf(flagfile, sizeof flagfile, "%s/fromflag.yaml", tmpdir);
    snprintf(envvar, sizeof envvar, "CERTSTREAM_CONFIG=%s", envfile);
    write_str(sys, "port: 5\n");
    write_str(envfile, "port: 4\n");
    write_str(flagfile, "port: 3\n");
    char *env[] = {envvar, NULL};
    struct config_flags flags = {.config_path = flagfile};

    enter_empty_dir("search");
    /* Only the system file. */
    CHECK(config_load_search(&c, NULL, no_env, sys, &err) == 0);
    CHECK(c.port == 5);
    CHECK_STR(c.source_path, sys);
    config_free(&c);
    /* ./config.yml beats the system file. */
    write_str("config.yml", "port: 2\n");
    CHECK(config_load_search(&c, NULL, no_env, sys, &err) == 0);
    CHECK(c.port == 2);
    CHECK_STR(c.source_path, "config.yml");
    config_free(&c);
    /* ./config.yaml beats ./config.yml. */
    write_str("config.yaml", "port: 1\n");
    CHECK(config_load_search(&c, NULL, no_env, sys, &err) == 0);
    CHECK(c.port == 1);
    config_free(&c);
    /* $CERTSTREAM_CONFIG beats ./config.yaml. */
    CHECK(config_load_search(&c, NULL, env, sys, &err) == 0);
    CHECK(c.port == 4);
    CHECK_STR(c.source_path, envfile);
    config_free(&c);
    /* --config beats $CERTSTREAM_CONFIG. */
    CHECK(config_load_search(&c, &flags, env, sys, &err) == 0);
    CHECK(c.port == 3);
    config_free(&c);

    /* An explicit path that does not exist is an error, not a fallback. */
    char missing[600], want[800];
    snprintf(missing, sizeof missing, "%s/nope.yaml", tmpdir);
    struct config_flags mflags = {.config_path = missing};
    CHECK(config_load_search(&c, &mflags, no_env, sys, &err) == -1);
    snprintf(want, sizeof want, "--config %s: No such file or directory", missing);
    CHECK_STR(err.message, want);
    char mvar[700];
    snprintf(mvar, sizeof mvar, "CERTSTREAM_CONFIG=%s", missing);
    char *menv[] = {mvar, NULL};
    CHECK(config_load_search(&c, NULL, menv, sys, &err) == -1);
    snprintf(want, sizeof want, "environment variable CERTSTREAM_CONFIG: %s: No such file or directory",
             missing);
    CHECK_STR(err.message, want);
    char *eenv[] = {"CERTSTREAM_CONFIG=", NULL};
    CHECK(config_load_search(&c, NULL, eenv, sys, &err) == -1);
    CHECK_STR(err.message, "environment variable CERTSTREAM_CONFIG: empty path");
    struct config_flags dflags = {.config_path = tmpdir};
    CHECK(config_load_search(&c, &dflags, no_env, sys, &err) == -1);
    snprintf(want, sizeof want, "--config %s: is a directory", tmpdir);
    CHECK_STR(err.message, want);

    /* Errors in a found file name that file. */
    write_str("config.yaml", "port: 1\nworkers: lots\n");
    CHECK(config_load_search(&c, NULL, no_env, sys, &err) == -1);
    CHECK_STR(err.message, "config.yaml:2: key 'workers': expected an integer 0..1024, got \"lots\"");
    unlink("config.yaml");
    unlink("config.yml");
}

struct bad_case {
    const char *yaml;
    const char *message;
};

static const struct bad_case bad_files[] = {
    /* unknown keys */
    {"port: 1\nprot: 2\n", "config.yaml:2: unknown key 'prot' (did you mean 'port'?)"},
    {"connection_limit:\n  enabled: true\n  per_ip_limt: 5\n",
     "config.yaml:3: unknown key 'connection_limit.per_ip_limt' (did you mean 'connection_limit.per_ip_limit'?)"},
    {"frobnicate: 1\n", "config.yaml:1: unknown key 'frobnicate'"},
    {"auth.header_name: X-Key\n",
     "config.yaml:1: unknown key 'auth.header_name' (write it nested: 'auth:', then 'header_name:' indented below it)"},
    {"auth:\n  tokens.x: 1\n", "config.yaml:2: unknown key 'auth.tokens.x' (did you mean 'auth.tokens'?)"},
    {"custom_logs:\n  - name: a\n    url: https://x/\n    id: 3\n",
     "config.yaml:4: key 'custom_logs[0]': unknown key \"id\" (an entry has name and url, and optionally batch_size, poll_interval_ms, fetch_concurrency, expected_log_id, enabled)"},
    /* wrong types */
    {"connection_limit:\n  per_ip_limit: lots\n",
     "config.yaml:2: key 'connection_limit.per_ip_limit': expected an integer 1..10000000, got \"lots\""},
    {"port: [80, 81]\n", "config.yaml:1: key 'port': expected a single value, got a sequence"},
    {"ct_log: 5\n", "config.yaml:1: key 'ct_log': expected a mapping of keys ({} for none), got a single value"},
    {"auth:\n#  enabled: true\n", "config.yaml:1: key 'auth': expected a mapping of keys ({} for none), got no value"},
    {"auth:\n  tokens:\n", "config.yaml:2: key 'auth.tokens': expected a sequence of strings ([] for none), got no value"},
    {"protocols:\n  sse: maybe\n",
     "config.yaml:2: key 'protocols.sse': expected true or false (or yes/no, on/off, 1/0), got \"maybe\""},
    {"auth:\n  tokens: abc\n", "config.yaml:2: key 'auth.tokens': expected a sequence of strings ([] for none), got a single value"},
    {"custom_logs:\n  name: a\n",
     "config.yaml:2: key 'custom_logs': expected a sequence of {name, url} entries ([] for none), got a mapping"},
    {"port: 1e3\n", "config.yaml:1: key 'port': expected an integer 1..65535, got \"1e3\""},
    {"port: 010\n",
     "config.yaml:1: key 'port': expected a decimal integer 1..65535 without leading zeros (YAML reads 010 as octal), got \"010\""},
    {"port: -1\n", "config.yaml:1: key 'port': expected an integer 1..65535, got \"-1\""},
    {"host:\n", "config.yaml:1: key 'host': has no value (write \"\" for an empty string)"},
    /* out of range */
    {"# comment\n\nport: 70000\n", "config.yaml:3: key 'port': value 70000 out of range 1..65535"},
    {"port: 0\n", "config.yaml:1: key 'port': value 0 out of range 1..65535"},
    {"workers: 1025\n", "config.yaml:1: key 'workers': value 1025 out of range 0..1024"},
    {"dedup:\n  capacity: 99999999999999999999999\n",
     "config.yaml:2: key 'dedup.capacity': expected an integer 1..268435456, got \"99999999999999999999999\""},
    {"ring_size: 100000000\n", "config.yaml:1: key 'ring_size': value 100000000 is not a power of two"},
    {"ring_size: 512KiB\n", "config.yaml:1: key 'ring_size': value 512KiB out of range 1MiB..16GiB"},
    {"ring_size: 32GiB\n", "config.yaml:1: key 'ring_size': value 32GiB out of range 1MiB..16GiB"},
    {"ring_size: big\n",
     "config.yaml:1: key 'ring_size': expected a size in bytes such as 67108864 or 64MiB, got \"big\""},
    {"log_level: verbose\n",
     "config.yaml:1: key 'log_level': expected one of debug, info, warn, error; got \"verbose\""},
    {"ingest:\n  group_by: region\n",
     "config.yaml:2: key 'ingest.group_by': expected one of operator, log, single; got \"region\""},
    {"ct_logs_url: ftp://example/list.json\n",
     "config.yaml:1: key 'ct_logs_url': expected an http:// or https:// URL (or file:///path), got \"ftp://example/list.json\""},
    {"ct_log:\n  poll_interval_ms: 0\n",
     "config.yaml:2: key 'ct_log.poll_interval_ms': value 0 out of range 1..86400000"},
    {"auth:\n  header_name: \"X Key\"\n",
     "config.yaml:2: key 'auth.header_name': expected an HTTP header name (letters, digits, -), got \"X Key\""},
    {"auth:\n  tokens: [\"\"]\n", "config.yaml:2: key 'auth.tokens[0]': a token must not be empty"},
    {"host: \"a\\tb\"\n", "config.yaml:1: key 'host': contains a control character (0x09)"},
    {"ct_log:\n  state_file: \"\"\n", "config.yaml:2: key 'ct_log.state_file': must not be empty"},
    {"ct_logs_signature: maybe\n", "config.yaml:1: key 'ct_logs_signature': expected one of required, optional, off; got \"maybe\""},
    {"ct_log:\n  position_ahead: skip\n", "config.yaml:2: key 'ct_log.position_ahead': expected one of wait, restart_at_head; got \"skip\""},
    {"ct_log:\n  max_inflight_bytes: 1000\n", "config.yaml:2: key 'ct_log.max_inflight_bytes': value 1000 out of range 1048576..4294967295"},
    {"custom_logs:\n  - name: a\n", "config.yaml:2: key 'custom_logs[0]': missing 'url' (an entry needs name and url)"},
    {"custom_logs:\n  - name: a\n    url: https://x/\n  - name: a\n    url: https://y/\n",
     "config.yaml:4: key 'custom_logs[1].name': duplicate name \"a\" (also custom_logs[0], line 2)"},
    /* structure */
    {"port: 1\nport: 2\n", "config.yaml:2: key 'port': is given twice (first on line 1)"},
    {"auth:\n  enabled: false\nauth:\n  enabled: true\n",
     "config.yaml:3: key 'auth': is given twice (first on line 1)"},
    {"- port\n", "config.yaml:1: the top level must be a mapping of keys (key: value), got a sequence"},
    {"port: 1\n---\nport: 2\n",
     "config.yaml:2: more than one YAML document (---); put every key in one document"},
    {"base: &b 1\n", "config.yaml:1: unknown key 'base'"},
    {"port: &p 80\n", "config.yaml:1: key 'port': YAML anchors and aliases (&, *) are not supported"},
    /* malformed YAML */
    {"port: 80\nhost: [a\n",
     "config.yaml:2: key 'host': expected a single value, got a sequence"},
    {"port: 80\nct_log:\n  batch_size: 3\n bad\n",
     "config.yaml:4: malformed YAML after key 'ct_log.batch_size': did not find expected key while parsing a block mapping"},
    {"port: \"80\n", "config.yaml:2: malformed YAML after key 'port': found unexpected end of stream while scanning a quoted scalar"},
    {"port: 80\n\tworkers: 2\n",
     "config.yaml:2: malformed YAML after key 'port': found a tab character that violates indentation while scanning a plain scalar"},
    /* cross-field checks */
    {"auth:\n  enabled: true\n",
     "config.yaml:2: key 'auth.enabled': auth is enabled but auth.tokens is empty; add a token (auth.tokens or CERTSTREAM_AUTH_TOKENS)"},
    {"ct_log:\n  retry_max_delay_ms: 500\n",
     "config.yaml:2: key 'ct_log.retry_max_delay_ms': ct_log.retry_initial_delay_ms (1000) is greater than ct_log.retry_max_delay_ms (500)"},
    {"keepalive:\n  idle_timeout_secs: 15\n",
     "config.yaml:2: key 'keepalive.idle_timeout_secs': keepalive.idle_timeout_secs (15) must be greater than keepalive.ping_interval_secs (15), or healthy clients are closed"},
    {"ring_size: 16MiB\nlimits:\n  slow_client_bytes: 16777216\n",
     "config.yaml:3: key 'limits.slow_client_bytes': limits.slow_client_bytes (16777216) must be below ring_size (16777216): a client that far behind is overwritten before it can be closed"},
    {"limits:\n  slow_client_seconds: 86401\n",
     "config.yaml:2: key 'limits.slow_client_seconds': value 86401 out of range 0..86400"},
    {"limits:\n  max_frame_bytes: 1048576\n",
     "config.yaml:2: key 'limits.max_frame_bytes': limits.max_message_bytes (262144) is less than limits.max_frame_bytes (1048576)"},
    {"connection_limit:\n  enabled: true\n  max_connections: 10\n",
     "config.yaml:3: key 'connection_limit.max_connections': connection_limit.per_ip_limit (100) is greater than connection_limit.max_connections (10)"},
    {"hot_reload:\n  enabled: true\n",
     "config.yaml:2: key 'hot_reload.enabled': hot_reload.enabled is true but there is no configuration file to watch; set hot_reload.watch_path"},
    {"cors:\n  allowed_origins: https://a.example/app\n",
     "config.yaml:2: key 'cors.allowed_origins': cors.allowed_origins: \"https://a.example/app\" is not an origin (\"*\" or \"https://host[:port]\", no path)"},
    {"protocols:\n  api: true\ncors:\n  allowed_origins: \"*, https://a.example\"\n",
     "config.yaml:4: key 'cors.allowed_origins': cors.allowed_origins: \"*\" allows every origin; list no others with it"},
    {"compression:\n  shared_context: maybe\n",
     "config.yaml:2: key 'compression.shared_context': expected true or false (or yes/no, on/off, 1/0), got \"maybe\""},
    {"compression:\n  shared_cache_size: 4096\n",
     "config.yaml:2: key 'compression.shared_cache_size': value 4096 out of range 65536..1073741824"},
    {"cors:\n  allowed_origins:\n    - https://a.example\n    - https://b.example/app\n",
     "config.yaml:4: key 'cors.allowed_origins[1]': \"https://b.example/app\" is not an origin (\"*\" or \"https://host[:port]\", no path; one origin per item)"},
    {"cors:\n  allowed_origins: [\"https://a.example, https://b.example\"]\n",
     "config.yaml:2: key 'cors.allowed_origins[0]': \"https://a.example, https://b.example\" is not an origin (\"*\" or \"https://host[:port]\", no path; one origin per item)"},
    {"cors:\n  allowed_origins: [https://a.example, {x: 1}]\n",
     "config.yaml:2: key 'cors.allowed_origins[1]': expected an origin, got a mapping"},
    {"cors:\n  allowed_origins: {a: 1}\n",
     "config.yaml:2: key 'cors.allowed_origins': expected an origin, origins separated by commas, or a sequence of origins, got a mapping"},
    {"cors:\n  allowed_origins: [\"*\", https://a.example]\n",
     "config.yaml:2: key 'cors.allowed_origins': cors.allowed_origins: \"*\" allows every origin; list no others with it"},
};

static void test_bad_files(void)
{
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        struct config c;
        struct config_error err = {{0}};
        int rc = load_text(&c, bad_files[i].yaml, &err);
        if (rc != -1) {
            fprintf(stderr, "  case %zu accepted:\n%s", i, bad_files[i].yaml);
            config_free(&c);
        }
        CHECK(rc == -1);
        CHECK_STR(err.message, bad_files[i].message);
    }
}

static void test_bad_env_and_flags(void)
{
    static const struct { const char *var; const char *message; } env_cases[] = {
        {"CERTSTREAM_PORT=abc", "environment variable CERTSTREAM_PORT: expected an integer 1..65535, got \"abc\""},
        {"CERTSTREAM_PORT=", "environment variable CERTSTREAM_PORT: expected an integer 1..65535, got \"\""},
        {"CERTSTREAM_PORT=65536", "environment variable CERTSTREAM_PORT: value 65536 out of range 1..65535"},
        {"CERTSTREAM_SSE_ENABLED=maybe",
         "environment variable CERTSTREAM_SSE_ENABLED: expected true or false (or yes/no, on/off, 1/0), got \"maybe\""},
        {"CERTSTREAM_LOG_LEVEL=trace",
         "environment variable CERTSTREAM_LOG_LEVEL: expected one of debug, info, warn, error; got \"trace\""},
        {"CERTSTREAM_RING_SIZE=3MiB", "environment variable CERTSTREAM_RING_SIZE: value 3MiB is not a power of two"},
        {"CERTSTREAM_AUTH_TOKENS=a,,b", "environment variable CERTSTREAM_AUTH_TOKENS: a token must not be empty"},
        {"CERTSTREAM_CUSTOM_LOGS=x=https://a/,y", "environment variable CERTSTREAM_CUSTOM_LOGS: entry 1: expected name=url"},
        {"CERTSTREAM_CUSTOM_LOGS=x=gopher://a/",
         "environment variable CERTSTREAM_CUSTOM_LOGS: entry 0: url: expected an http:// or https:// URL, got \"gopher://a/\""},
        {"CERTSTREAM_CUSTOM_LOGS=x=https://a/,x=https://b/",
         "environment variable CERTSTREAM_CUSTOM_LOGS: duplicate name \"x\" (entries 0 and 1)"},
        {"CERTSTREAM_HOST=\xff", "environment variable CERTSTREAM_HOST: is not valid UTF-8 (byte 0xff at offset 0)"},
        {"CERTSTREAM_AUTH_ENABLED=1",
         "environment variable CERTSTREAM_AUTH_ENABLED: auth is enabled but auth.tokens is empty; add a token (auth.tokens or CERTSTREAM_AUTH_TOKENS)"},
    };
    struct config c;
    struct config_error err;
    enter_empty_dir("badenv");
    for (size_t i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++) {
        char *env[] = {(char *)env_cases[i].var, NULL};
        int rc = config_load_search(&c, NULL, env, NULL, &err);
        if (rc == 0) config_free(&c);
        CHECK(rc == -1);
        CHECK_STR(err.message, env_cases[i].message);
    }

    static const struct { struct config_flags flags; const char *message; } flag_cases[] = {
        {{.port = "http"}, "--port: expected an integer 1..65535, got \"http\""},
        {{.port = "0"}, "--port: value 0 out of range 1..65535"},
        {{.workers = "-2"}, "--workers: expected an integer 0..1024, got \"-2\""},
        {{.log_level = "loud"}, "--log-level: expected one of debug, info, warn, error; got \"loud\""},
        {{.ring_size = "1000"}, "--ring-size: value 1000 out of range 1MiB..16GiB"},
        {{.host = ""}, "--host: must not be empty"},
        {{.config_path = ""}, "--config: empty path"},
    };
    for (size_t i = 0; i < sizeof flag_cases / sizeof flag_cases[0]; i++) {
        int rc = config_load_search(&c, &flag_cases[i].flags, no_env, NULL, &err);
        if (rc == 0) config_free(&c);
        CHECK(rc == -1);
        CHECK_STR(err.message, flag_cases[i].message);
    }

    /* A flag that fixes what the environment broke is blamed on neither:
     * the cross check runs once, after every layer. */
    char *env[] = {"CERTSTREAM_KEEPALIVE_PING_INTERVAL_SECS=100", NULL};
    CHECK(config_load_search(&c, NULL, env, NULL, &err) == -1);
    CHECK_STR(err.message, "environment variable CERTSTREAM_KEEPALIVE_PING_INTERVAL_SECS: "
              "keepalive.idle_timeout_secs (60) must be greater than keepalive.ping_interval_secs (100), "
              "or healthy clients are closed");
}

static void test_spellings(void)
{
    static const struct { const char *yaml; bool value; } bools[] = {
        {"true", 1}, {"True", 1}, {"TRUE", 1}, {"yes", 1}, {"on", 1}, {"1", 1}, {"\"true\"", 1},
        {"false", 0}, {"False", 0}, {"no", 0}, {"off", 0}, {"0", 0}, {"OFF", 0},
    };
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        char yaml[128];
        struct config c;
        struct config_error err;
        /* streams.full starts true, connection_limit.enabled starts false */
        snprintf(yaml, sizeof yaml, "streams:\n  full: %s\nconnection_limit:\n  enabled: %s\n",
                 bools[i].yaml, bools[i].yaml);
        CHECK(load_text(&c, yaml, &err) == 0);
        CHECK(c.streams.full == bools[i].value);
        CHECK(c.connection_limit.enabled == bools[i].value);
        config_free(&c);
    }
    static const struct { const char *yaml; uint64_t bytes; } sizes[] = {
        {"1048576", 1u << 20}, {"1MiB", 1u << 20}, {"2048KiB", 2u << 20}, {"64 MiB", 64u << 20},
        {"1GiB", 1u << 30}, {"16GiB", 16ull << 30}, {"\"128MiB\"", 128u << 20},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char yaml[64];
        struct config c;
        struct config_error err;
        snprintf(yaml, sizeof yaml, "ring_size: %s\n", sizes[i].yaml);
        int rc = load_text(&c, yaml, &err);
        CHECK(rc == 0);
        if (rc == 0) { CHECK(c.ring_size == sizes[i].bytes); config_free(&c); }
    }
    /* Quoted numbers, flow style and comments are fine. */
    struct config c;
    struct config_error err;
    CHECK(load_text(&c, "{port: \"8081\", limits: {max_headers: 10}}  # flow\n", &err) == 0);
    CHECK(c.port == 8081 && c.limits.max_headers == 10);
    config_free(&c);
    /* Windows line ends. */
    CHECK(load_text(&c, "port: 8082\r\nct_log:\r\n  batch_size: 9\r\n", &err) == 0);
    CHECK(c.port == 8082 && c.ct_log.batch_size == 9);
    config_free(&c);
    /* UTF-8 text is kept byte for byte. */
    CHECK(load_text(&c, "custom_logs:\n  - name: \"Журнал \\\"№1\\\" \\\\ ✓\"\n    url: https://127.0.0.1/\n", &err) == 0);
    CHECK(c.n_custom_logs == 1);
    if (c.n_custom_logs == 1) CHECK_STR(c.custom_logs[0].name, "Журнал \"№1\" \\ ✓");
    config_free(&c);
}

static void test_empty_files(void)
{
    static const char *const empties[] = {"", "\n\n", "# only a comment\n", "---\n", "---\n...\n", "{}\n", "~\n"};
    struct config d;
    config_defaults(&d);
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        struct config c;
        struct config_error err;
        int rc = load_text(&c, empties[i], &err);
        if (rc != 0) fprintf(stderr, "  empty case %zu: %s\n", i, err.message);
        CHECK(rc == 0);
        if (rc == 0) { CHECK(config_diff(&c, &d, 0) == NULL); config_free(&c); }
    }
    /* An empty file found by the search is used (source_path set), = defaults. */
    struct config c;
    struct config_error err;
    enter_empty_dir("emptyfile");
    write_str("config.yaml", "");
    CHECK(config_load_search(&c, NULL, no_env, NULL, &err) == 0);
    CHECK_STR(c.source_path, "config.yaml");
    CHECK(config_diff(&c, &d, 0) == NULL);
    config_free(&c);
    unlink("config.yaml");
    config_free(&d);
}

static void test_huge_files(void)
{
    struct config c;
    struct config_error err;
    char path[512], want[700];

    /* 5 MB of comments: refused by size before parsing. */
    size_t big = 5 * 1024 * 1024;
    char *buf = malloc(big);
    for (size_t i = 0; i < big; i++) buf[i] = (i % 64 == 63) ? '\n' : '#';
    snprintf(path, sizeof path, "%s/huge.yaml", tmpdir);
    write_file(path, buf, big);
    struct config_flags flags = {.config_path = path};
    CHECK(config_load_search(&c, &flags, no_env, NULL, &err) == -1);
    snprintf(want, sizeof want, "--config %s: file is 5242880 bytes, more than the 1048576-byte "
             "limit for a configuration file", path);
    CHECK_STR(err.message, want);
    CHECK(config_load_buffer(&c, buf, big, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml: file is 5242880 bytes, more than the 1048576-byte limit "
              "for a configuration file");
    free(buf);

    /* 10,000 custom logs (under the byte limit): refused at entry 257. */
    size_t cap = 900 * 1024, n = 0;
    buf = malloc(cap);
    n += (size_t)snprintf(buf + n, cap - n, "custom_logs:\n");
    for (int i = 0; i < 10000; i++)
        n += (size_t)snprintf(buf + n, cap - n, "  - {name: l%d, url: \"https://h/%d/\"}\n", i, i);
    CHECK(n < cap - 1);
    CHECK(config_load_buffer(&c, buf, n, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml:258: key 'custom_logs': more than 256 entries");

    /* Exactly 256 is fine. */
    n = (size_t)snprintf(buf, cap, "static_logs:\n");
    for (int i = 0; i < 256; i++)
        n += (size_t)snprintf(buf + n, cap - n, "  - {name: l%d, url: \"https://h/%d/\"}\n", i, i);
    CHECK(config_load_buffer(&c, buf, n, "config.yaml", &err) == 0);
    CHECK(c.n_static_logs == 256);
    if (c.n_static_logs == 256) CHECK_STR(c.static_logs[255].url, "https://h/255/");
    config_free(&c);

    /* 65 tokens */
    n = (size_t)snprintf(buf, cap, "auth:\n  tokens:\n");
    for (int i = 0; i < 65; i++) n += (size_t)snprintf(buf + n, cap - n, "    - t%d\n", i);
    CHECK(config_load_buffer(&c, buf, n, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml:67: key 'auth.tokens': more than 64 tokens");

    /* Deep nesting inside a value: refused at the first wrong event. */
    n = (size_t)snprintf(buf, cap, "port: ");
    for (int i = 0; i < 100000; i++) buf[n++] = '[';
    buf[n++] = '\n';
    CHECK(config_load_buffer(&c, buf, n, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml:1: key 'port': expected a single value, got a sequence");
    free(buf);
}

static void test_non_utf8(void)
{
    struct config c;
    struct config_error err;
    static const char latin1[] = "host: 0.0.0.0\n# caf\xe9\nport: 80\n";
    CHECK(config_load_buffer(&c, latin1, sizeof latin1 - 1, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml:2: invalid UTF-8 (byte 0xe9 at column 6); the file must be UTF-8 text");
    static const char nul[] = "port: 80\nhost: a\0b\n";
    CHECK(config_load_buffer(&c, nul, sizeof nul - 1, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml:2: NUL byte (byte 0x00 at column 8); the file must be UTF-8 text");
    static const char overlong[] = "port: 80\n\n\nhost: \xc0\xae\n";
    CHECK(config_load_buffer(&c, overlong, sizeof overlong - 1, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml:4: invalid UTF-8 (byte 0xc0 at column 7); the file must be UTF-8 text");
    static const char utf16[] = "\xff\xfep\0o\0r\0t\0:\0 \0" "8\0\n\0";
    CHECK(config_load_buffer(&c, utf16, sizeof utf16 - 1, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml:1: invalid UTF-8 (byte 0xff at column 1); the file must be UTF-8 text");
    static const char ctl[] = "port: 80\nhost: a\x01" "b\n";
    CHECK(config_load_buffer(&c, ctl, sizeof ctl - 1, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml:2: control character (byte 0x01 at column 8); the file must be UTF-8 text");
    /* U+0080 is valid UTF-8 but YAML does not allow C1 controls: libyaml's
     * reader refuses it, and the message still has the right line. */
    static const char c1[] = "port: 80\nworkers: 2\nhost: a\xc2\x80\n";
    CHECK(config_load_buffer(&c, c1, sizeof c1 - 1, "config.yaml", &err) == -1);
    CHECK_STR(err.message, "config.yaml:3: malformed YAML: control characters are not allowed");
    /* A UTF-8 byte order mark is fine. */
    static const char bom[] = "\xef\xbb\xbfport: 81\n";
    CHECK(config_load_buffer(&c, bom, sizeof bom - 1, "config.yaml", &err) == 0);
    CHECK(c.port == 81);
    config_free(&c);
}

static void test_round_trip(void)
{
    struct config c, back;
    struct config_error err;
    char path[512];
    snprintf(path, sizeof path, "%s/printed.yaml", tmpdir);

    /* Everything changed, plus strings that need quoting. */
    static const char extra[] =
        "custom_logs:\n"
        "  - name: \"quote \\\" backslash \\\\ colon: hash # ✓\"\n"
        "    url: \"https://127.0.0.1/a?b=c&d=#e\"\n";
    char *yaml = malloc(sizeof every_key_yaml + sizeof extra);
    strcpy(yaml, every_key_yaml);
    /* replace the custom_logs block of every_key_yaml with `extra` */
    char *cl = strstr(yaml, "custom_logs:");
    char *sl = strstr(yaml, "static_logs:");
    size_t tail = strlen(sl);
    char *rest = malloc(tail + 1);
    memcpy(rest, sl, tail + 1);
    strcpy(cl, extra);
    strcat(cl, rest);
    free(rest);
    int rc = load_text(&c, yaml, &err);
    free(yaml);
    if (rc != 0) fprintf(stderr, "  %s\n", err.message);
    CHECK(rc == 0);
    if (rc != 0) return;

    FILE *f = fopen(path, "w");
    config_print(&c, f);
    fclose(f);
    struct config_flags flags = {.config_path = path};
    rc = config_load(&back, &flags, no_env, &err);
    if (rc != 0) fprintf(stderr, "  %s\n", err.message);
    CHECK(rc == 0);
    if (rc == 0) {
        const char *d = config_diff(&c, &back, 1);
        if (d) fprintf(stderr, "  round trip differs at %s\n", d);
        CHECK(d == NULL);
        /* tokens are redacted, not printed */
        CHECK(back.auth.n_tokens == 2);
        if (back.auth.n_tokens == 2) CHECK_STR(back.auth.tokens[0], "***");
        CHECK(config_diff(&c, &back, 0) != NULL);
        config_free(&back);
    }
    char *text = read_all(path, NULL);
    CHECK(text && strstr(text, "secret-one") == NULL && strstr(text, "secret-two") == NULL);
    CHECK(text && strstr(text, "ring_size: 256MiB\n") != NULL);
    free(text);
    config_free(&c);

    /* Defaults print and load back to defaults. */
    struct config d;
    config_defaults(&d);
    f = fopen(path, "w");
    config_print(&d, f);
    fclose(f);
    rc = config_load(&back, &flags, no_env, &err);
    CHECK(rc == 0);
    if (rc == 0) { CHECK(config_diff(&d, &back, 0) == NULL); config_free(&back); }
    config_free(&d);
}

/* packaging/config.example.yaml documents every key with its default: it
 * must load, equal the defaults, and mention every key. */
static void test_example_file(void)
{
    char path[1024];
    struct config c, d;
    struct config_error err;
    snprintf(path, sizeof path, "%s/packaging/config.example.yaml", source_dir);
    struct config_flags flags = {.config_path = path};
    int rc = config_load(&c, &flags, no_env, &err);
    if (rc != 0) fprintf(stderr, "  %s\n", err.message);
    CHECK(rc == 0);
    if (rc != 0) return;
    config_defaults(&d);
    const char *diff = config_diff(&c, &d, 0);
    if (diff) fprintf(stderr, "  example differs from defaults at %s\n", diff);
    CHECK(diff == NULL);
    config_free(&c);
    config_free(&d);

    char *text = read_all(path, NULL);
    CHECK(text != NULL);
    for (size_t i = 0; text && i < config_key_count(); i++) {
        const char *name = config_key_name(i), *dot = strchr(name, '.');
        char leaf[80];
        snprintf(leaf, sizeof leaf, "%s:", dot ? dot + 1 : name);
        if (!strstr(text, leaf) || !strstr(text, config_key_env(i))) {
            fprintf(stderr, "  example file lacks %s or %s\n", leaf, config_key_env(i));
            unit_failed++;
        }
    }
    free(text);
}

/* docs/configuration.md lists every key and its environment variable. */
static void test_docs_list_every_key(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/configuration.md", source_dir);
    char *text = read_all(path, NULL);
    CHECK(text != NULL);
    for (size_t i = 0; text && i < config_key_count(); i++) {
        char cell[100];
        snprintf(cell, sizeof cell, "`%s`", config_key_name(i));
        if (!strstr(text, cell) || !strstr(text, config_key_env(i))) {
            fprintf(stderr, "  docs lack %s or %s\n", cell, config_key_env(i));
            unit_failed++;
        }
    }
    CHECK(text && strstr(text, "--check-config"));
    free(text);
}

/* ------------------------------------------------------------- runner */

static const struct { const char *name; void (*fn)(void); } cases[] = {
    {"defaults", test_defaults},
    {"every_key_from_yaml", test_every_key_from_yaml},
    {"partial_file_keeps_defaults", test_partial_file_keeps_defaults},
    {"cors_origins_list", test_cors_origins_list},
    {"every_key_from_env", test_every_key_from_env},
    {"precedence", test_precedence},
    {"search_order", test_search_order},
    {"bad_files", test_bad_files},
    {"bad_env_and_flags", test_bad_env_and_flags},
    {"spellings", test_spellings},
    {"empty_files", test_empty_files},
    {"huge_files", test_huge_files},
    {"non_utf8", test_non_utf8},
    {"round_trip", test_round_trip},
    {"example_file", test_example_file},
    {"docs_list_every_key", test_docs_list_every_key},
};

static void rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    source_dir = argc > 1 ? argv[1] : ".";
    char cwd[1024];
    if (!getcwd(cwd, sizeof cwd)) return 2;
    if (source_dir[0] != '/') {
        static char abs[2048];
        snprintf(abs, sizeof abs, "%s/%s", cwd, source_dir);
        source_dir = abs;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cs_conf_test.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int before = unit_failed;
        cases[i].fn();
        if (chdir(cwd) < 0) return 2;
        if (unit_failed == before) {
            passed++;
            printf("ok   %s\n", cases[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", cases[i].name);
        }
    }
    rm_tree(tmpdir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
