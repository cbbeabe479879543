/* config.c - loads the configuration: built-in defaults, then one YAML file,
 * then CERTSTREAM_* environment variables, then command-line flags, then the
 * checks that involve several keys. See docs/configuration.md.
 *
 * One table (keys[]) names every key once: its YAML path, environment
 * variable, type, range and place in struct config. The environment, the
 * flags, config_print and the docs check are all driven by it.
 *
 * The file is read in two passes over the same bytes:
 *  1. a libyaml event walk (vp_*) that checks the document against keys[]:
 *     unknown keys, wrong types, ranges, duplicates, anchors. It exists
 *     because libcyaml 1.3 cannot do this job well: it reports positions only
 *     inside log backtraces, reads `1e3` as 1 and `010` as 8, and takes any
 *     unknown word (`enabled: maybe`) as true. The walk refuses all of those
 *     with "file:line: key 'k': problem" before libcyaml sees the file.
 *  2. libcyaml maps the (now known good) document onto a struct config
 *     (cy_* schema). libcyaml has no defaults, so it loads into a zeroed
 *     scratch struct, and only the keys the walk saw in the file are copied
 *     over the defaults (merge_file). */
#include "conf/config.h"
#include "conf/config_internal.h"
#include "common/cidr.h"
#include "conf/tls_files.h"

#include <cyaml/cyaml.h>
#include <yaml.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CT_LOGS_URL "https://www.gstatic.com/ct/log_list/v3/all_logs_list.json"
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define MAX_STRING 4096   /* any string value, in bytes */
#define MAX_TOKEN 1024
#define MAX_NAME 256      /* log names, header name, host */
#define MAX_PATH 200      /* endpoint paths (streams.*_path) */
#define WHY 256           /* room for the problem part of a message */

/* ---------------------------------------------------------------- keys */

enum ktype {
    K_BOOL, K_U16, K_U32, K_SIZE,  /* numbers */
    K_STR,                         /* non-empty text */
    K_PATH_OPT,                    /* text, may be empty */
    K_URL, K_URL_OR_FILE, K_URL_OPT, K_ENUM, K_CIDRS,
    K_DURATION, K_NATS_URL, K_NATS_NAME,  /* nats.*: text checked as such */
    K_HTTP_PATH,                   /* an endpoint path: "/" or "/a/b", no query */
    K_ORIGINS,                     /* cors.allowed_origins: text, or a sequence (joined by ", ") */
    K_HEADER,
    K_TOKENS, K_LOGS,              /* sequences */
    K_OVERRIDES, K_PACING,         /* mappings of mappings (log_overrides, operator_pacing) */
};

struct key {
    const char *name;              /* YAML path, "ct_log.batch_size" */
    const char *env;               /* CERTSTREAM_... */
    enum ktype type;
    size_t off;                    /* offsetof(struct config, ...) */
    size_t count_off;              /* K_TOKENS, K_LOGS: the count member */
    uint64_t min, max;             /* numbers; max length for text */
    const char *const *choices;    /* K_ENUM */
    const char *flag;              /* command-line flag, or NULL */
};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const group_bys[] = {"operator", "log", "single", NULL};
static const char *const ingest_sources[] = {"logs", "nats", NULL};
static const char *const position_aheads[] = {"wait", "restart_at_head", NULL};
static const char *const signature_modes[] = {"required", "optional", "off", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const absent_name_modes[] = {"null", "omit", NULL};

#define OFF(m) offsetof(struct config, m)
#define NUM(n, e, t, m, lo, hi) {n, e, t, OFF(m), 0, lo, hi, NULL, NULL}
#define BOOL(n, e, m) {n, e, K_BOOL, OFF(m), 0, 0, 1, NULL, NULL}
#define TEXT(n, e, t, m, len) {n, e, t, OFF(m), 0, 0, len, NULL, NULL}

static const struct key keys[] = {
    {"host", "CERTSTREAM_HOST", K_STR, OFF(host), 0, 0, MAX_NAME, NULL, "--host"},
    {"port", "CERTSTREAM_PORT", K_U16, OFF(port), 0, 1, 65535, NULL, "--port"},
    {"log_level", "CERTSTREAM_LOG_LEVEL", K_ENUM, OFF(log_level), 0, 0, 0, log_levels, "--log-level"},
    NUM("buffer_size", "CERTSTREAM_BUFFER_SIZE", K_U32, buffer_size, 0, 1000000),
    TEXT("ct_logs_url", "CERTSTREAM_CT_LOGS_URL", K_URL_OR_FILE, ct_logs_url, MAX_STRING),
    {"ct_logs_signature", "CERTSTREAM_CT_LOGS_SIGNATURE", K_ENUM, OFF(ct_logs_signature), 0, 0, 0, signature_modes, NULL},
    TEXT("ct_logs_public_key", "CERTSTREAM_CT_LOGS_PUBLIC_KEY", K_PATH_OPT, ct_logs_public_key, MAX_STRING),
    BOOL("protocols.websocket", "CERTSTREAM_WS_ENABLED", protocols.websocket),
    BOOL("protocols.sse", "CERTSTREAM_SSE_ENABLED", protocols.sse),
    BOOL("protocols.metrics", "CERTSTREAM_METRICS_ENABLED", protocols.metrics),
    BOOL("protocols.health", "CERTSTREAM_HEALTH_ENABLED", protocols.health),
    BOOL("protocols.example_json", "CERTSTREAM_EXAMPLE_JSON_ENABLED", protocols.example_json),
    BOOL("protocols.web_page", "CERTSTREAM_WEB_PAGE_ENABLED", protocols.web_page),
    BOOL("protocols.api", "CERTSTREAM_API_ENABLED", protocols.api),
    TEXT("cors.allowed_origins", "CERTSTREAM_CORS_ALLOWED_ORIGINS", K_ORIGINS, cors.allowed_origins, MAX_STRING),
    TEXT("ct_log.state_file", "CERTSTREAM_CT_LOG_STATE_FILE", K_STR, ct_log.state_file, MAX_STRING),
    NUM("ct_log.batch_size", "CERTSTREAM_CT_LOG_BATCH_SIZE", K_U32, ct_log.batch_size, 1, 10000),
    NUM("ct_log.poll_interval_ms", "CERTSTREAM_CT_LOG_POLL_INTERVAL_MS", K_U32, ct_log.poll_interval_ms, 1, 86400000),
    NUM("ct_log.retry_max_attempts", "CERTSTREAM_CT_LOG_RETRY_MAX_ATTEMPTS", K_U32, ct_log.retry_max_attempts, 0, 1000),
    NUM("ct_log.request_timeout_secs", "CERTSTREAM_CT_LOG_REQUEST_TIMEOUT_SECS", K_U32, ct_log.request_timeout_secs, 1, 3600),
    NUM("ct_log.fetch_concurrency", "CERTSTREAM_CT_LOG_FETCH_CONCURRENCY", K_U32, ct_log.fetch_concurrency, 1, 64),
    NUM("ct_log.start_overlap", "CERTSTREAM_CT_LOG_START_OVERLAP", K_U32, ct_log.start_overlap, 0, 10000000),
    NUM("ct_log.retry_initial_delay_ms", "CERTSTREAM_CT_LOG_RETRY_INITIAL_DELAY_MS", K_U32, ct_log.retry_initial_delay_ms, 1, 3600000),
    NUM("ct_log.retry_max_delay_ms", "CERTSTREAM_CT_LOG_RETRY_MAX_DELAY_MS", K_U32, ct_log.retry_max_delay_ms, 1, 86400000),
    NUM("ct_log.operator_rate_limit_ms", "CERTSTREAM_CT_LOG_OPERATOR_RATE_LIMIT_MS", K_U32, ct_log.operator_rate_limit_ms, 0, 60000),
    {"ct_log.position_ahead", "CERTSTREAM_CT_LOG_POSITION_AHEAD", K_ENUM, OFF(ct_log.position_ahead), 0, 0, 0, position_aheads, NULL},
    NUM("ct_log.max_response_bytes", "CERTSTREAM_CT_LOG_MAX_RESPONSE_BYTES", K_U32, ct_log.max_response_bytes, 0, 1073741824),
    NUM("ct_log.max_inflight_bytes", "CERTSTREAM_CT_LOG_MAX_INFLIGHT_BYTES", K_U32, ct_log.max_inflight_bytes, 1048576, 4294967295u),
    BOOL("ct_log.list_enabled", "CERTSTREAM_CT_LOG_LIST_ENABLED", ct_log.list_enabled),
    BOOL("ct_log.rfc6962_enabled", "CERTSTREAM_CT_LOG_RFC6962_ENABLED", ct_log.rfc6962_enabled),
    BOOL("ct_log.static_enabled", "CERTSTREAM_CT_LOG_STATIC_ENABLED", ct_log.static_enabled),
    BOOL("ct_log.verify_tiles", "CERTSTREAM_CT_LOG_VERIFY_TILES", ct_log.verify_tiles),
    BOOL("connection_limit.enabled", "CERTSTREAM_CONNECTION_LIMIT_ENABLED", connection_limit.enabled),
    NUM("connection_limit.max_connections", "CERTSTREAM_CONNECTION_LIMIT_MAX_CONNECTIONS", K_U32, connection_limit.max_connections, 1, 10000000),
    NUM("connection_limit.per_ip_limit", "CERTSTREAM_CONNECTION_LIMIT_PER_IP_LIMIT", K_U32, connection_limit.per_ip_limit, 1, 10000000),
    /* network edge: exact per-address accounting */
    NUM("connection_limit.ipv6_prefix", "CERTSTREAM_CONNECTION_LIMIT_IPV6_PREFIX", K_U32, connection_limit.ipv6_prefix, 1, 128),
    NUM("connection_limit.address_table_size", "CERTSTREAM_CONNECTION_LIMIT_ADDRESS_TABLE_SIZE", K_U32, connection_limit.address_table_size, 16, 16777216),
    BOOL("auth.enabled", "CERTSTREAM_AUTH_ENABLED", auth.enabled),
    {"auth.tokens", "CERTSTREAM_AUTH_TOKENS", K_TOKENS, OFF(auth.tokens), OFF(auth.n_tokens), 0, MAX_TOKEN, NULL, NULL},
    TEXT("auth.header_name", "CERTSTREAM_AUTH_HEADER_NAME", K_HEADER, auth.header_name, MAX_NAME),
    BOOL("auth.allow_query_token", "CERTSTREAM_AUTH_ALLOW_QUERY_TOKEN", auth.allow_query_token),
    BOOL("hot_reload.enabled", "CERTSTREAM_HOT_RELOAD_ENABLED", hot_reload.enabled),
    TEXT("hot_reload.watch_path", "CERTSTREAM_HOT_RELOAD_WATCH_PATH", K_PATH_OPT, hot_reload.watch_path, MAX_STRING),
    {"custom_logs", "CERTSTREAM_CUSTOM_LOGS", K_LOGS, OFF(custom_logs), OFF(n_custom_logs), 0, MAX_STRING, NULL, NULL},
    {"static_logs", "CERTSTREAM_STATIC_LOGS", K_LOGS, OFF(static_logs), OFF(n_static_logs), 0, MAX_STRING, NULL, NULL},
    /* log list and per-log control (docs/ingest.md) */
    TEXT("apple_logs_url", "CERTSTREAM_APPLE_LOGS_URL", K_URL_OPT, apple_logs_url, MAX_STRING),
    {"log_overrides", "CERTSTREAM_LOG_OVERRIDES", K_OVERRIDES, OFF(log_overrides), OFF(n_log_overrides), 0, 0, NULL, NULL},
    {"operator_pacing", "CERTSTREAM_OPERATOR_PACING", K_PACING, OFF(operator_pacing), OFF(n_operator_pacing), 0, 0, NULL, NULL},
    {"workers", "CERTSTREAM_WORKERS", K_U32, OFF(workers), 0, 0, 1024, NULL, "--workers"},
    {"ring_size", "CERTSTREAM_RING_SIZE", K_SIZE, OFF(ring_size), 0, MIB, 16 * GIB, NULL, "--ring-size"},
    BOOL("streams.full", "CERTSTREAM_STREAMS_FULL", streams.full),
    BOOL("streams.lite", "CERTSTREAM_STREAMS_LITE", streams.lite),
    BOOL("streams.domains_only", "CERTSTREAM_STREAMS_DOMAINS_ONLY", streams.domains_only),
    TEXT("streams.lite_path", "CERTSTREAM_STREAMS_LITE_PATH", K_HTTP_PATH, streams.lite_path, MAX_PATH),
    TEXT("streams.full_path", "CERTSTREAM_STREAMS_FULL_PATH", K_HTTP_PATH, streams.full_path, MAX_PATH),
    TEXT("streams.domains_path", "CERTSTREAM_STREAMS_DOMAINS_PATH", K_HTTP_PATH, streams.domains_path, MAX_PATH),
    TEXT("streams.sse_path", "CERTSTREAM_STREAMS_SSE_PATH", K_HTTP_PATH, streams.sse_path, MAX_PATH),
    {"ingest.group_by", "CERTSTREAM_INGEST_GROUP_BY", K_ENUM, OFF(ingest.group_by), 0, 0, 0, group_bys, NULL},
    NUM("ingest.max_processes", "CERTSTREAM_INGEST_MAX_PROCESSES", K_U32, ingest.max_processes, 0, 1024),
    {"ingest.source", "CERTSTREAM_INGEST_SOURCE", K_ENUM, OFF(ingest.source), 0, 0, 0, ingest_sources, NULL},
    NUM("keepalive.websocket_heartbeat_secs", "CERTSTREAM_KEEPALIVE_WEBSOCKET_HEARTBEAT_SECS", K_U32, keepalive.websocket_heartbeat_secs, 1, 3600),
    NUM("keepalive.ping_interval_secs", "CERTSTREAM_KEEPALIVE_PING_INTERVAL_SECS", K_U32, keepalive.ping_interval_secs, 1, 3600),
    NUM("keepalive.idle_timeout_secs", "CERTSTREAM_KEEPALIVE_IDLE_TIMEOUT_SECS", K_U32, keepalive.idle_timeout_secs, 1, 86400),
    NUM("keepalive.sse_heartbeat_secs", "CERTSTREAM_KEEPALIVE_SSE_HEARTBEAT_SECS", K_U32, keepalive.sse_heartbeat_secs, 1, 3600),
    NUM("dedup.capacity", "CERTSTREAM_DEDUP_CAPACITY", K_U32, dedup.capacity, 1, 268435456),
    NUM("dedup.ttl_secs", "CERTSTREAM_DEDUP_TTL_SECS", K_U32, dedup.ttl_secs, 1, 604800),
    NUM("limits.max_request_bytes", "CERTSTREAM_LIMITS_MAX_REQUEST_BYTES", K_U32, limits.max_request_bytes, 1024, 1048576),
    NUM("limits.max_headers", "CERTSTREAM_LIMITS_MAX_HEADERS", K_U32, limits.max_headers, 1, 1024),
    NUM("limits.request_timeout_secs", "CERTSTREAM_LIMITS_REQUEST_TIMEOUT_SECS", K_U32, limits.request_timeout_secs, 1, 3600),
    NUM("limits.max_frame_bytes", "CERTSTREAM_LIMITS_MAX_FRAME_BYTES", K_U32, limits.max_frame_bytes, 125, 16777216),
    NUM("limits.max_message_bytes", "CERTSTREAM_LIMITS_MAX_MESSAGE_BYTES", K_U32, limits.max_message_bytes, 125, 67108864),
    NUM("limits.send_buffer_bytes", "CERTSTREAM_LIMITS_SEND_BUFFER_BYTES", K_U32, limits.send_buffer_bytes, 0, 268435456),
    NUM("limits.slow_client_seconds", "CERTSTREAM_LIMITS_SLOW_CLIENT_SECONDS", K_U32, limits.slow_client_seconds, 0, 86400),
    NUM("limits.slow_client_bytes", "CERTSTREAM_LIMITS_SLOW_CLIENT_BYTES", K_U32, limits.slow_client_bytes, 0, 4294967295u),
    /* scale-out over NATS JetStream (docs/scale-out.md); nats.stream and
     * nats.subject_prefix: min 0 = a plain name, 1 = dot-separated tokens;
     * durations: min..max in seconds */
    TEXT("nats.url", "CERTSTREAM_NATS_URL", K_NATS_URL, nats.url, MAX_STRING),
    {"nats.stream", "CERTSTREAM_NATS_STREAM", K_NATS_NAME, OFF(nats.stream), 0, 0, 64, NULL, NULL},
    {"nats.subject_prefix", "CERTSTREAM_NATS_SUBJECT_PREFIX", K_NATS_NAME, OFF(nats.subject_prefix), 0, 1, 200, NULL, NULL},
    BOOL("nats.publish", "CERTSTREAM_NATS_PUBLISH", nats.publish),
    {"nats.max_age", "CERTSTREAM_NATS_MAX_AGE", K_DURATION, OFF(nats.max_age), 0, 1, 366 * 86400ull, NULL, NULL},
    {"nats.duplicate_window", "CERTSTREAM_NATS_DUPLICATE_WINDOW", K_DURATION, OFF(nats.duplicate_window), 0, 1, 7 * 86400ull, NULL, NULL},
    NUM("nats.replicas", "CERTSTREAM_NATS_REPLICAS", K_U32, nats.replicas, 1, 5),
    TEXT("nats.creds_file", "CERTSTREAM_NATS_CREDS_FILE", K_PATH_OPT, nats.creds_file, MAX_STRING),
    TEXT("nats.position_file", "CERTSTREAM_NATS_POSITION_FILE", K_STR, nats.position_file, MAX_STRING),
    NUM("nats.max_pending", "CERTSTREAM_NATS_MAX_PENDING", K_U32, nats.max_pending, 16, 1000000),
    NUM("nats.max_lag_secs", "CERTSTREAM_NATS_MAX_LAG_SECS", K_U32, nats.max_lag_secs, 1, 86400),
    /* operations */
    NUM("watchdog_secs", "CERTSTREAM_WATCHDOG_SECS", K_U32, watchdog_secs, 0, 3600),
    NUM("ring_claim_timeout_ms", "CERTSTREAM_RING_CLAIM_TIMEOUT_MS", K_U32, ring_claim_timeout_ms, 0, 600000),
    {"log_format", "CERTSTREAM_LOG_FORMAT", K_ENUM, OFF(log_format), 0, 0, 0, log_formats, NULL},
    TEXT("log_file", "CERTSTREAM_LOG_FILE", K_PATH_OPT, log_file, MAX_STRING),
    NUM("shutdown.drain_timeout_secs", "CERTSTREAM_SHUTDOWN_DRAIN_TIMEOUT_SECS", K_U32, shutdown.drain_timeout_secs, 0, 86400),
    BOOL("filters.enabled", "CERTSTREAM_FILTERS_ENABLED", filters.enabled),
    NUM("filters.max_per_worker", "CERTSTREAM_FILTERS_MAX_PER_WORKER", K_U32, filters.max_per_worker, 1, 1000000),
    NUM("filters.max_patterns", "CERTSTREAM_FILTERS_MAX_PATTERNS", K_U32, filters.max_patterns, 1, 1024),
    NUM("filters.max_pattern_bytes", "CERTSTREAM_FILTERS_MAX_PATTERN_BYTES", K_U32, filters.max_pattern_bytes, 8, 4096),
    NUM("filters.regex_match_limit", "CERTSTREAM_FILTERS_REGEX_MATCH_LIMIT", K_U32, filters.regex_match_limit, 100, 100000000),
    BOOL("compression.enabled", "CERTSTREAM_COMPRESSION_ENABLED", compression.enabled),
    NUM("compression.min_size", "CERTSTREAM_COMPRESSION_MIN_SIZE", K_U32, compression.min_size, 0, 16777216),
    NUM("compression.level", "CERTSTREAM_COMPRESSION_LEVEL", K_U32, compression.level, 1, 9),
    BOOL("compression.shared_context", "CERTSTREAM_COMPRESSION_SHARED_CONTEXT", compression.shared_context),
    NUM("compression.shared_cache_size", "CERTSTREAM_COMPRESSION_SHARED_CACHE_SIZE", K_U32, compression.shared_cache_size, 65536, 1073741824),
    {"message_format.absent_name_fields", "CERTSTREAM_MESSAGE_FORMAT_ABSENT_NAME_FIELDS", K_ENUM, OFF(message_format.absent_name_fields), 0, 0, 0, absent_name_modes, NULL},
    /* network edge */
    TEXT("trusted_proxies", "CERTSTREAM_TRUSTED_PROXIES", K_CIDRS, trusted_proxies, MAX_STRING),
    BOOL("proxy_protocol", "CERTSTREAM_PROXY_PROTOCOL", proxy_protocol),
    TEXT("access.streams_allow", "CERTSTREAM_ACCESS_STREAMS_ALLOW", K_CIDRS, access.streams_allow, MAX_STRING),
    TEXT("access.metrics_allow", "CERTSTREAM_ACCESS_METRICS_ALLOW", K_CIDRS, access.metrics_allow, MAX_STRING),
    NUM("rate_limit.connections_per_minute", "CERTSTREAM_RATE_LIMIT_CONNECTIONS_PER_MINUTE", K_U32, rate_limit.connections_per_minute, 0, 6000000),
    NUM("rate_limit.burst", "CERTSTREAM_RATE_LIMIT_BURST", K_U32, rate_limit.burst, 1, 1000000),
    TEXT("tls.cert_file", "CERTSTREAM_TLS_CERT_FILE", K_PATH_OPT, tls.cert_file, MAX_STRING),
    TEXT("tls.key_file", "CERTSTREAM_TLS_KEY_FILE", K_PATH_OPT, tls.key_file, MAX_STRING),
    NUM("tls.plain_port", "CERTSTREAM_TLS_PLAIN_PORT", K_U16, tls.plain_port, 0, 65535),
    BOOL("tls.session_tickets", "CERTSTREAM_TLS_SESSION_TICKETS", tls.session_tickets),
    NUM("tls.ticket_rotate_secs", "CERTSTREAM_TLS_TICKET_ROTATE_SECS", K_U32, tls.ticket_rotate_secs, 60, 604800),
    BOOL("access_log.enabled", "CERTSTREAM_ACCESS_LOG_ENABLED", access_log.enabled),
    TEXT("access_log.path", "CERTSTREAM_ACCESS_LOG_PATH", K_PATH_OPT, access_log.path, MAX_STRING),
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* The mappings that group keys ("ct_log: {batch_size: ...}"). */
static const char *const sections[] = {
    "protocols", "ct_log", "connection_limit", "auth", "hot_reload",
    "streams", "ingest", "keepalive", "dedup", "limits", "shutdown",
    "message_format", "filters", "compression",
    "cors",
    "access", "rate_limit", "tls",
    "access_log",
    "nats",
};
#define NSECTIONS (sizeof sections / sizeof sections[0])

size_t config_key_count(void) { return NKEYS; }
const char *config_key_name(size_t i) { return i < NKEYS ? keys[i].name : NULL; }
const char *config_key_env(size_t i) { return i < NKEYS ? keys[i].env : NULL; }

static const struct key *key_by_name(const char *name, size_t *idx)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0) {
            if (idx) *idx = i;
            return &keys[i];
        }
    return NULL;
}

static void *field(struct config *cfg, size_t off) { return (char *)cfg + off; }
static const void *cfield(const struct config *cfg, size_t off) { return (const char *)cfg + off; }

/* --------------------------------------------------------- load context */

/* Which layer last set a key: error messages about several keys blame the
 * one set most recently, where the operator will look first. */
enum layer { L_DEFAULT, L_FILE, L_ENV, L_FLAG };

struct load {
    struct config *cfg;
    struct config_error *err;
    const char *path;                      /* file name as given, for messages */
    uint8_t layer[NKEYS];
    uint32_t line[NKEYS];                  /* file line of the key, L_FILE */
    uint32_t item_line[2][CONFIG_MAX_LOGS]; /* custom_logs[i] / static_logs[i] */
    /* what the walk read and libcyaml does not: per-item overrides of
     * custom_logs / static_logs, log_overrides, operator_pacing */
    struct config_log_override item_ov[2][CONFIG_MAX_LOGS];
    struct config_log_override ov[CONFIG_MAX_LOGS];
    size_t n_ov;
    struct config_pacing pacing[CONFIG_MAX_PACING];
    size_t n_pacing;
    uint64_t num[NKEYS];                   /* numbers and booleans as the walk read them */
    char *nats_url;                        /* nats.url as the walk read it (a list joined by commas) */
    char origins[MAX_STRING + 1];          /* cors.allowed_origins as the walk read it (a list joined) */
};

static int fail(struct config_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct config_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Quotes a value for a message: at most 40 bytes, non-printable bytes as \xNN. */
static const char *quoted(char *out, size_t n, const char *s, size_t len)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len && o + 8 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 40) { memcpy(out + o, "...", 3); o += 3; break; }
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* -------------------------------------------------------- value checks */

/* Returns the length of the UTF-8 sequence at s (1..4), or 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* Offset of the first byte that is not valid UTF-8 (or is NUL), or len. */
static size_t utf8_bad(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;
        if (n == 0) return i;
        i += n;
    }
    return len;
}

/* Offset of the first byte that cannot be in a YAML file: invalid UTF-8,
 * NUL, or an ASCII control character other than tab, LF and CR. */
static size_t text_bad(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') || p[i] == 0x7f)
            return i;
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) return i;
        i += n;
    }
    return len;
}

static int parse_uint(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20) return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"};
    static const char *const f[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) { *out = true; return 0; }
        if (strcasecmp(s, f[i]) == 0) { *out = false; return 0; }
    }
    return -1;
}

/* "67108864", "64MiB", "64 MiB", "1GiB", "512KiB". */
static int parse_size(const char *s, size_t len, uint64_t *out)
{
    static const struct { const char *unit; unsigned shift; } units[] = {
        {"KiB", 10}, {"MiB", 20}, {"GiB", 30},
    };
    size_t digits = 0;
    while (digits < len && s[digits] >= '0' && s[digits] <= '9') digits++;
    uint64_t v;
    if (digits == 0 || (digits > 1 && s[0] == '0') || parse_uint(s, digits, &v) < 0) return -1;
    size_t rest = digits;
    if (rest < len && s[rest] == ' ') rest++;
    if (rest == len) {
        if (rest != digits) return -1;
        *out = v;
        return 0;
    }
    for (size_t i = 0; i < 3; i++)
        if (len - rest == 3 && memcmp(s + rest, units[i].unit, 3) == 0) {
            if (v > (UINT64_MAX >> units[i].shift)) return -1;
            *out = v << units[i].shift;
            return 0;
        }
    return -1;
}

static void size_str(char *out, size_t n, uint64_t v)
{
    if (v >= GIB && v % GIB == 0) snprintf(out, n, "%" PRIu64 "GiB", v / GIB);
    else if (v >= MIB && v % MIB == 0) snprintf(out, n, "%" PRIu64 "MiB", v / MIB);
    else snprintf(out, n, "%" PRIu64, v);
}

/* "90", "90s", "2m", "24h", "7d": seconds, or a number with one unit. */
static int parse_duration(const char *s, size_t len, uint64_t *out)
{
    size_t digits = 0;
    while (digits < len && s[digits] >= '0' && s[digits] <= '9') digits++;
    uint64_t v, mul = 1;
    if (digits == 0 || (digits > 1 && s[0] == '0') || parse_uint(s, digits, &v) < 0) return -1;
    if (len == digits + 1) {
        switch (s[digits]) {
        case 's': mul = 1; break;
        case 'm': mul = 60; break;
        case 'h': mul = 3600; break;
        case 'd': mul = 86400; break;
        default: return -1;
        }
    } else if (len != digits) {
        return -1;
    }
    if (v > UINT64_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}

int config_duration_secs(const char *s, uint64_t *secs)
{
    return s ? parse_duration(s, strlen(s), secs) : -1;
}

/* A NATS stream name (tokens = 0) or subject prefix (tokens = 1: tokens of
 * letters, digits, - and _ joined by dots; no wildcards, no empty token). */
static int check_nats_name(const char *s, size_t len, size_t max, bool tokens, char *why, size_t whyn)
{
    char q[64];
    bool ok = len > 0 && len <= max && s[0] != '.' && s[len - 1] != '.';
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' && tokens && s[i + 1] != '.') continue;
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             c == '-' || c == '_';
    }
    if (!ok)
        return snprintf(why, whyn, "expected %s (letters, digits, - and _%s, at most %zu bytes), got %s",
                        tokens ? "a NATS subject prefix" : "a NATS stream name",
                        tokens ? ", tokens joined by dots" : "", max, quoted(q, sizeof q, s, len)), -1;
    return 0;
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Checks one value for text types; what is a "string" for every text key. */
static int check_text(const char *s, size_t len, size_t max, bool may_be_empty,
                      char *why, size_t whyn)
{
    if (len == 0 && !may_be_empty) return snprintf(why, whyn, "must not be empty"), -1;
    if (len > max) return snprintf(why, whyn, "is longer than %zu bytes", max), -1;
    size_t bad = utf8_bad(s, len);
    if (bad < len)
        return snprintf(why, whyn, "is not valid UTF-8 (byte 0x%02x at offset %zu)",
                        (unsigned char)s[bad], bad), -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return snprintf(why, whyn, "contains a control character (0x%02x)", c), -1;
    }
    return 0;
}

/* allow_file: the log list may also be a local file (file:///path), for
 * offline installs and tests; CT logs themselves are always http(s). */
static int check_url(const char *s, size_t len, bool allow_file, char *why, size_t whyn)
{
    char q[64];
    if (check_text(s, len, MAX_STRING, false, why, whyn) < 0) return -1;
    size_t skip = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (allow_file && skip == 0 && strncmp(s, "file:///", 8) == 0)
        skip = 7;
    if (skip == 0 || len == skip || memchr(s, ' ', len))
        return snprintf(why, whyn, "expected an http:// or https:// URL%s, got %s",
                        allow_file ? " (or file:///path)" : "", quoted(q, sizeof q, s, len)), -1;
    return 0;
}

static int check_token(const char *s, size_t len, char *why, size_t whyn)
{
    if (len == 0) return snprintf(why, whyn, "a token must not be empty"), -1;
    if (len > MAX_TOKEN) return snprintf(why, whyn, "a token is longer than %d bytes", MAX_TOKEN), -1;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return snprintf(why, whyn, "a token must be printable ASCII without spaces"), -1;
    return 0;
}

/* An endpoint path as a request line carries it: "/" or "/seg/seg", no
 * trailing "/", no query or fragment, no "." or ".." segment, only RFC 3986
 * path characters without percent-escapes (the server compares paths as
 * bytes). */
static int check_http_path(const char *s, size_t len, size_t max, char *why, size_t whyn)
{
    char q[64];
    if (len == 0 || s[0] != '/')
        return snprintf(why, whyn, "expected a path starting with /, got %s", quoted(q, sizeof q, s, len)), -1;
    if (len > max) return snprintf(why, whyn, "is longer than %zu bytes", max), -1;
    if (len > 1 && s[len - 1] == '/')
        return snprintf(why, whyn, "must not end with / (the path with a trailing / is served too), got %s",
                        quoted(q, sizeof q, s, len)), -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c && strchr("/-._~!$&'()*+,;=:@", c));
        if (!ok) {
            char ch[8];
            if (c > 0x20 && c < 0x7f) snprintf(ch, sizeof ch, "'%c'", c);
            else snprintf(ch, sizeof ch, "0x%02x", c);
            return snprintf(why, whyn, "character %s is not allowed in a path (letters, digits and "
                            "-._~!$&'()*+,;=:@ only), got %s", ch, quoted(q, sizeof q, s, len)), -1;
        }
        if (c == '/' && i + 1 < len && (s[i + 1] == '/' ||
            (s[i + 1] == '.' && (i + 2 == len || s[i + 2] == '/' ||
                                 (s[i + 2] == '.' && (i + 3 == len || s[i + 3] == '/'))))))
            return snprintf(why, whyn, "empty, . or .. segments are not allowed, got %s",
                            quoted(q, sizeof q, s, len)), -1;
    }
    return 0;
}

/* Checks the scalar s[0..len) for key k. Numbers and booleans are returned
 * in *num. why receives the problem ("expected ..., got ..."). */
static int check_scalar(const struct key *k, const char *s, size_t len, uint64_t *num,
                        char *why, size_t whyn)
{
    char q[64];
    switch (k->type) {
    case K_BOOL: {
        bool b = false;
        if (len > 5 || memchr(s, 0, len) || parse_bool(s, &b) < 0)
            return snprintf(why, whyn, "expected true or false (or yes/no, on/off, 1/0), got %s",
                            quoted(q, sizeof q, s, len)), -1;
        *num = b;
        return 0;
    }
    case K_U16:
    case K_U32: {
        uint64_t v;
        if (parse_uint(s, len, &v) < 0) {
            bool digits = len > 0;
            for (size_t i = 0; i < len; i++) digits = digits && s[i] >= '0' && s[i] <= '9';
            if (digits && len <= 20)
                return snprintf(why, whyn, "value %.*s out of range %" PRIu64 "..%" PRIu64,
                                (int)len, s, k->min, k->max), -1;
            return snprintf(why, whyn, "expected an integer %" PRIu64 "..%" PRIu64 ", got %s",
                            k->min, k->max, quoted(q, sizeof q, s, len)), -1;
        }
        if (len > 1 && s[0] == '0')
            return snprintf(why, whyn, "expected a decimal integer %" PRIu64 "..%" PRIu64
                            " without leading zeros (YAML reads 010 as octal), got %s",
                            k->min, k->max, quoted(q, sizeof q, s, len)), -1;
        if (v < k->min || v > k->max)
            return snprintf(why, whyn, "value %" PRIu64 " out of range %" PRIu64 "..%" PRIu64,
                            v, k->min, k->max), -1;
        *num = v;
        return 0;
    }
    case K_SIZE: {
        uint64_t v;
        char lo[32], hi[32];
        size_str(lo, sizeof lo, k->min);
        size_str(hi, sizeof hi, k->max);
        if (parse_size(s, len, &v) < 0)
            return snprintf(why, whyn, "expected a size in bytes such as 67108864 or 64MiB, got %s",
                            quoted(q, sizeof q, s, len)), -1;
        if (v < k->min || v > k->max)
            return snprintf(why, whyn, "value %.*s out of range %s..%s", (int)len, s, lo, hi), -1;
        if (v & (v - 1))
            return snprintf(why, whyn, "value %.*s is not a power of two", (int)len, s), -1;
        *num = v;
        return 0;
    }
    case K_STR:
        return check_text(s, len, k->max, false, why, whyn);
    case K_PATH_OPT:
    case K_ORIGINS:
        return check_text(s, len, k->max, true, why, whyn);
    case K_URL:
    case K_URL_OR_FILE:
        return check_url(s, len, k->type == K_URL_OR_FILE, why, whyn);
    case K_URL_OPT:   /* "" = off */
        return len == 0 ? 0 : check_url(s, len, true, why, whyn);
    case K_ENUM:
        for (const char *const *c = k->choices; *c; c++)
            if (strlen(*c) == len && memcmp(*c, s, len) == 0) return 0;
        {
            char list[96] = "";
            size_t o = 0;
            for (const char *const *c = k->choices; *c; c++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", *c);
            return snprintf(why, whyn, "expected one of %s; got %s", list,
                            quoted(q, sizeof q, s, len)), -1;
        }
    case K_DURATION: {
        uint64_t v;
        if (parse_duration(s, len, &v) < 0)
            return snprintf(why, whyn, "expected a duration such as 90s, 2m, 24h or 7d, got %s",
                            quoted(q, sizeof q, s, len)), -1;
        if (v < k->min || v > k->max)
            return snprintf(why, whyn, "duration %.*s out of range %" PRIu64 "s..%" PRIu64 "s",
                            (int)len, s, k->min, k->max), -1;
        return 0;
    }
    case K_NATS_URL: {
        /* one server or several, comma-separated, as the NATS client takes them */
        if (check_text(s, len, k->max, false, why, whyn) < 0) return -1;
        size_t i = 0;
        while (i <= len) {
            size_t e = i;
            while (e < len && s[e] != ',') e++;
            size_t skip = 0;
            static const char *const schemes[] = {"nats://", "tls://", NULL};
            for (const char *const *sc = schemes; *sc; sc++)
                if (e - i > strlen(*sc) && strncmp(s + i, *sc, strlen(*sc)) == 0) skip = strlen(*sc);
            if (skip == 0 || memchr(s + i, ' ', e - i))
                return snprintf(why, whyn, "expected nats://host:port or tls://host:port "
                                "(several joined by commas), got %s",
                                quoted(q, sizeof q, s + i, e - i)), -1;
            i = e + 1;
        }
        return 0;
    }
    case K_NATS_NAME:
        return check_nats_name(s, len, k->max, k->min != 0, why, whyn);
    case K_HTTP_PATH:
        return check_http_path(s, len, k->max, why, whyn);
    case K_CIDRS: {
        struct cidr_list *l = malloc(sizeof *l);
        if (!l) return snprintf(why, whyn, "out of memory"), -1;
        int rc = check_text(s, len, k->max, true, why, whyn);
        if (rc == 0) rc = cidr_list_parse(s, len, l, why, whyn);
        free(l);
        return rc;
    }
    case K_HEADER:
        if (len == 0 || len > k->max) goto bad_header;
        for (size_t i = 0; i < len; i++)
            if (!is_tchar((unsigned char)s[i])) goto bad_header;
        return 0;
    bad_header:
        return snprintf(why, whyn, "expected an HTTP header name (letters, digits, -), got %s",
                        quoted(q, sizeof q, s, len)), -1;
    case K_TOKENS:
    case K_LOGS:
        break;
    case K_OVERRIDES:
    case K_PACING:
        return snprintf(why, whyn, "expected a mapping"), -1;
    }
    return snprintf(why, whyn, "expected a sequence"), -1;
}

/* ------------------------------------------------------- storing values */

static int set_str(char **dst, const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d) return -1;
    memcpy(d, s, len);
    d[len] = '\0';
    free(*dst);
    *dst = d;
    return 0;
}

/* Stores a checked scalar into cfg (environment and flags). */
static int store_scalar(struct config *cfg, const struct key *k, const char *s, uint64_t num)
{
    void *p = field(cfg, k->off);
    switch (k->type) {
    case K_BOOL: *(bool *)p = num != 0; return 0;
    case K_U16: *(uint16_t *)p = (uint16_t)num; return 0;
    case K_U32: *(uint32_t *)p = (uint32_t)num; return 0;
    case K_SIZE: *(uint64_t *)p = num; return 0;
    case K_TOKENS: case K_LOGS: case K_OVERRIDES: case K_PACING: return -1;
    default: return set_str((char **)p, s, strlen(s));
    }
}

static void free_tokens(struct config *cfg)
{
    for (size_t i = 0; i < cfg->auth.n_tokens && i < CONFIG_MAX_TOKENS; i++) {
        free(cfg->auth.tokens[i]);
        cfg->auth.tokens[i] = NULL;
    }
    cfg->auth.n_tokens = 0;
}

static void override_clear(struct config_log_override *o)
{
    free(o->match);
    free(o->expected_log_id);
    memset(o, 0, sizeof *o);
}

static void free_logs(struct config_log *logs, size_t *n)
{
    for (size_t i = 0; i < *n && i < CONFIG_MAX_LOGS; i++) {
        free(logs[i].name);
        free(logs[i].url);
        logs[i].name = logs[i].url = NULL;
        override_clear(&logs[i].o);
    }
    *n = 0;
}

uint32_t config_history_messages(const struct config *cfg)
{
    if (cfg->buffer_size) return cfg->buffer_size;
    uint64_t n = (uint64_t)cfg->limits.slow_client_seconds * 500u;
    return n < 1000 ? 1000 : n > 1000000 ? 1000000 : (uint32_t)n;
}

uint64_t config_slow_client_bytes(const struct config *cfg)
{
    if (cfg->limits.slow_client_bytes) return cfg->limits.slow_client_bytes;
    return cfg->ring_size - cfg->ring_size / 4;
}

static void free_overrides(struct config_log_override *ov, size_t *n)
{
    for (size_t i = 0; i < *n && i < CONFIG_MAX_LOGS; i++) override_clear(&ov[i]);
    *n = 0;
}

static void free_pacing(struct config_pacing *p, size_t *n)
{
    for (size_t i = 0; i < *n && i < CONFIG_MAX_PACING; i++) {
        free(p[i].operator_name);
        p[i].operator_name = NULL;
        p[i].milli_rps = 0;
    }
    *n = 0;
}

/* ---- per-log overrides and operator pacing (docs/ingest.md) ----
 * One setting of a log override: 0, -1 (unknown setting: why names the
 * known ones) or -2 (a bad value: why says so). Shared by the YAML walk and
 * the environment. */
static const char override_keys[] = "batch_size, poll_interval_ms, fetch_concurrency, expected_log_id, enabled";

static int check_log_id(const char *s, size_t len, char *why, size_t whyn)
{
    char q[64];
    /* 32 bytes in base64: 43 characters and one '=' */
    bool ok = len == 44 && s[43] == '=';
    for (size_t i = 0; ok && i < 43; i++) {
        unsigned char c = (unsigned char)s[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    }
    if (!ok)
        return snprintf(why, whyn, "expected a log id: 32 bytes in base64 (44 characters, as the log "
                        "list's log_id), got %s", quoted(q, sizeof q, s, len)), -1;
    return 0;
}

static int set_override(struct config_log_override *o, const char *key, size_t klen, const char *v, size_t vlen,
                        char *why, size_t whyn)
{
    static const struct key kbatch = {"batch_size", NULL, K_U32, 0, 0, 1, 10000, NULL, NULL};
    static const struct key kpoll = {"poll_interval_ms", NULL, K_U32, 0, 0, 1, 86400000, NULL, NULL};
    static const struct key kconc = {"fetch_concurrency", NULL, K_U32, 0, 0, 1, 32, NULL, NULL};
    static const struct key kbool = {"enabled", NULL, K_BOOL, 0, 0, 0, 1, NULL, NULL};
    const struct key *k = NULL;
    uint64_t num = 0;
#define KEY_IS(lit) (klen == sizeof lit - 1 && memcmp(key, lit, klen) == 0)
    if (KEY_IS("batch_size")) k = &kbatch;
    else if (KEY_IS("poll_interval_ms")) k = &kpoll;
    else if (KEY_IS("fetch_concurrency")) k = &kconc;
    else if (KEY_IS("enabled")) k = &kbool;
    else if (KEY_IS("expected_log_id")) {
        if (check_log_id(v, vlen, why, whyn) < 0) return -2;
        return set_str(&o->expected_log_id, v, vlen) < 0 ? (snprintf(why, whyn, "out of memory"), -2) : 0;
    } else {
        return -1;
    }
#undef KEY_IS
    char vz[32];   /* parse_bool reads a NUL-terminated string */
    size_t zl = vlen < sizeof vz - 1 ? vlen : sizeof vz - 1;
    memcpy(vz, v, zl);
    vz[zl] = '\0';
    if (check_scalar(k, vlen == zl ? vz : v, vlen, &num, why, whyn) < 0) return -2;
    if (k == &kbatch) o->batch_size = (uint32_t)num;
    else if (k == &kpoll) o->poll_interval_ms = (uint32_t)num;
    else if (k == &kconc) o->fetch_concurrency = (uint32_t)num;
    else o->enabled = num ? 1 : -1;
    return 0;
}

/* requests_per_second: 0..10000 with up to 3 decimals ("2.5"). */
static int parse_rps(const char *s, size_t len, uint32_t *milli, char *why, size_t whyn)
{
    char q[64];
    uint64_t v = 0;
    size_t i = 0, frac = 0;
    bool dot = false, digits = false;
    for (; i < len; i++) {
        if (s[i] == '.' && !dot) { dot = true; continue; }
        if (s[i] < '0' || s[i] > '9' || (dot && ++frac > 3) || v > 100000000) goto bad;
        v = v * 10 + (uint64_t)(s[i] - '0');
        digits = true;
    }
    if (!digits || (dot && frac == 0)) goto bad;
    for (; frac < 3; frac++) v *= 10;
    if (v > 10000000) goto bad;
    *milli = (uint32_t)v;
    return 0;
bad:
    return snprintf(why, whyn, "expected requests per second 0..10000 (up to 3 decimals, 0 = not "
                    "paced), got %s", quoted(q, sizeof q, s, len)), -1;
}

bool config_absent_names_null(const struct config *cfg)
{
    return !cfg || !cfg->message_format.absent_name_fields ||
           strcmp(cfg->message_format.absent_name_fields, "omit") != 0;
}

/* --------------------------------------------------- defaults and free */

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    /* strdup failing here is left as NULL: config_load checks (defaults_ok). */
    cfg->host = strdup("0.0.0.0");
    cfg->port = 8080;
    cfg->log_level = strdup("info");
    cfg->buffer_size = 0;   /* unset: limits.slow_client_* decide (config_history_messages) */
    cfg->ct_logs_url = strdup(DEFAULT_CT_LOGS_URL);
    cfg->ct_logs_signature = strdup("optional");
    cfg->ct_logs_public_key = strdup("");
    cfg->protocols.websocket = cfg->protocols.sse = cfg->protocols.metrics = true;
    cfg->protocols.health = cfg->protocols.example_json = true;
    cfg->protocols.web_page = true;
    cfg->protocols.api = true;
    cfg->cors.allowed_origins = strdup("");
    cfg->ct_log.state_file = strdup("certstream_state.json");
    cfg->ct_log.batch_size = 256;
    cfg->ct_log.poll_interval_ms = 1000;
    cfg->ct_log.retry_max_attempts = 3;
    cfg->ct_log.request_timeout_secs = 30;
    cfg->ct_log.fetch_concurrency = 4;
    cfg->ct_log.start_overlap = 0;
    cfg->ct_log.retry_initial_delay_ms = 1000;
    cfg->ct_log.retry_max_delay_ms = 60000;
    cfg->ct_log.operator_rate_limit_ms = 100;
    cfg->ct_log.position_ahead = strdup("wait");
    cfg->ct_log.max_response_bytes = 0;
    cfg->ct_log.max_inflight_bytes = 64u << 20;
    cfg->ct_log.list_enabled = cfg->ct_log.rfc6962_enabled = cfg->ct_log.static_enabled = true;
    cfg->apple_logs_url = strdup("");
    cfg->connection_limit.enabled = false;
    cfg->connection_limit.max_connections = 10000;
    cfg->connection_limit.per_ip_limit = 100;
    cfg->auth.enabled = false;
    cfg->auth.header_name = strdup("Authorization");
    cfg->hot_reload.enabled = false;
    cfg->hot_reload.watch_path = strdup("");
    cfg->workers = 0;
    cfg->ring_size = 32 * MIB;
    cfg->streams.full = cfg->streams.lite = cfg->streams.domains_only = true;
    cfg->streams.lite_path = strdup("/");
    cfg->streams.full_path = strdup("/full-stream");
    cfg->streams.domains_path = strdup("/domains-only");
    cfg->streams.sse_path = strdup("/sse");
    cfg->ingest.group_by = strdup("operator");
    cfg->ingest.max_processes = 0;
    cfg->ingest.source = strdup("logs");
    cfg->nats.url = strdup("nats://127.0.0.1:4222");
    cfg->nats.stream = strdup("CERTSTREAM");
    cfg->nats.subject_prefix = strdup("certstream");
    cfg->nats.publish = false;
    cfg->nats.max_age = strdup("24h");
    cfg->nats.duplicate_window = strdup("2m");
    cfg->nats.replicas = 1;
    cfg->nats.creds_file = strdup("");
    cfg->nats.position_file = strdup("certstream_nats_position");
    cfg->nats.max_pending = 10000;
    cfg->nats.max_lag_secs = 60;
    cfg->keepalive.websocket_heartbeat_secs = 10;
    cfg->keepalive.ping_interval_secs = 15;
    cfg->keepalive.idle_timeout_secs = 60;
    cfg->keepalive.sse_heartbeat_secs = 15;
    /* 5 min of distinct certificates at up to ~400/s, 1 MiB
     * (docs/configuration.md, "dedup") */
    cfg->dedup.capacity = 131072;
    cfg->dedup.ttl_secs = 300;
    cfg->limits.max_request_bytes = 8192;
    cfg->limits.max_headers = 64;
    cfg->limits.request_timeout_secs = 10;
    cfg->limits.max_frame_bytes = 65536;
    cfg->limits.max_message_bytes = 262144;
    cfg->limits.send_buffer_bytes = 1048576;
    cfg->limits.slow_client_seconds = 10;
    cfg->limits.slow_client_bytes = 0;
    cfg->watchdog_secs = 10;
    cfg->ring_claim_timeout_ms = 1000;
    cfg->log_format = strdup("text");
    cfg->log_file = strdup("");
    cfg->shutdown.drain_timeout_secs = 300;
    cfg->message_format.absent_name_fields = strdup("null");
    cfg->compression.enabled = true;
    cfg->compression.min_size = 0;
    cfg->compression.level = 6;
    cfg->compression.shared_context = true;
    cfg->compression.shared_cache_size = 4u << 20;
    cfg->filters.enabled = true;
    cfg->filters.max_per_worker = 4096;
    cfg->filters.max_patterns = 64;
    cfg->filters.max_pattern_bytes = 256;
    cfg->filters.regex_match_limit = 100000;
    cfg->source_path = NULL;
    /* network edge */
    cfg->connection_limit.ipv6_prefix = 64;
    cfg->connection_limit.address_table_size = 65536;
    cfg->trusted_proxies = strdup("");
    cfg->proxy_protocol = false;
    cfg->access.streams_allow = strdup("");
    cfg->access.metrics_allow = strdup("");
    cfg->rate_limit.connections_per_minute = 0;
    cfg->rate_limit.burst = 10;
    cfg->tls.cert_file = strdup("");
    cfg->tls.key_file = strdup("");
    cfg->tls.plain_port = 0;
    cfg->tls.session_tickets = true;
    cfg->tls.ticket_rotate_secs = 3600;
    cfg->access_log.enabled = false;
    cfg->access_log.path = strdup("");
}

static bool defaults_ok(const struct config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type >= K_STR && keys[i].type <= K_HEADER &&
            !*(char *const *)cfield(cfg, keys[i].off))
            return false;
    return true;
}

void config_free(struct config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type >= K_STR && keys[i].type <= K_HEADER) {
            char **p = field(cfg, keys[i].off);
            free(*p);
            *p = NULL;
        }
    }
    free_tokens(cfg);
    free_logs(cfg->custom_logs, &cfg->n_custom_logs);
    free_logs(cfg->static_logs, &cfg->n_static_logs);
    free_overrides(cfg->log_overrides, &cfg->n_log_overrides);
    free_pacing(cfg->operator_pacing, &cfg->n_operator_pacing);
    free(cfg->source_path);
    cfg->source_path = NULL;
}

/* ------------------------------------------------ pass 1: libyaml walk */

struct vpass {
    yaml_parser_t parser;
    yaml_event_t ev;
    bool have;                /* ev must be deleted */
    struct load *ld;
    const char *buf;
    size_t len;
    char near[160];           /* last key read, for syntax errors */
    uint32_t section_line[NSECTIONS];
};

static uint32_t ev_line(const struct vpass *v) { return (uint32_t)v->ev.start_mark.line + 1; }

static int vp_fail(struct vpass *v, uint32_t line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int vp_fail(struct vpass *v, uint32_t line, const char *key, const char *fmt, ...)
{
    char why[WHY * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (key)
        return fail(v->ld->err, "%s:%" PRIu32 ": key '%s': %s", v->ld->path, line, key, why);
    return fail(v->ld->err, "%s:%" PRIu32 ": %s", v->ld->path, line, why);
}

static uint32_t line_of_offset(const char *buf, size_t len, size_t off)
{
    uint32_t line = 1;
    for (size_t i = 0; i < off && i < len; i++)
        if (buf[i] == '\n') line++;
    return line;
}

static int vp_syntax(struct vpass *v)
{
    yaml_parser_t *p = &v->parser;
    uint32_t line;
    if (p->error == YAML_MEMORY_ERROR) return fail(v->ld->err, "%s: out of memory", v->ld->path);
    /* The reader decodes ahead of the parser: the last key read says nothing
     * about where a reader error is, so only its offset is used. */
    if (p->error == YAML_READER_ERROR) {
        line = line_of_offset(v->buf, v->len, p->problem_offset);
        v->near[0] = '\0';
    } else {
        line = (uint32_t)p->problem_mark.line + 1;
    }
    const char *problem = p->problem ? p->problem : "syntax error";
    if (v->near[0])
        return fail(v->ld->err, "%s:%" PRIu32 ": malformed YAML after key '%s': %s%s%s",
                    v->ld->path, line, v->near, problem, p->context ? " " : "",
                    p->context ? p->context : "");
    return fail(v->ld->err, "%s:%" PRIu32 ": malformed YAML: %s%s%s", v->ld->path, line,
                problem, p->context ? " " : "", p->context ? p->context : "");
}

/* An empty plain scalar, ~ or null: the YAML spellings of "no value". */
static bool ev_is_null(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    return n == 0 || (n == 1 && s[0] == '~') ||
           (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

static const char *ev_kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_SCALAR_EVENT: return ev_is_null(ev) ? "no value" : "a single value";
    default: return "nothing";
    }
}

/* Next event; refuses anchors and aliases (libcyaml 1.3 cannot load them,
 * and refusing them rules out alias bombs). */
static int vp_next(struct vpass *v)
{
    if (v->have) {
        yaml_event_delete(&v->ev);
        v->have = false;
    }
    if (!yaml_parser_parse(&v->parser, &v->ev)) return vp_syntax(v);
    v->have = true;
    const yaml_char_t *anchor = NULL;
    if (v->ev.type == YAML_SCALAR_EVENT) anchor = v->ev.data.scalar.anchor;
    if (v->ev.type == YAML_MAPPING_START_EVENT) anchor = v->ev.data.mapping_start.anchor;
    if (v->ev.type == YAML_SEQUENCE_START_EVENT) anchor = v->ev.data.sequence_start.anchor;
    if (v->ev.type == YAML_ALIAS_EVENT || anchor)
        return vp_fail(v, ev_line(v), v->near[0] ? v->near : NULL,
                       "YAML anchors and aliases (&, *) are not supported");
    return 0;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 63 || lb >= 63) return 99;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* A known key close to `path` (a typo), for the unknown-key message. */
static const char *suggest(const char *path)
{
    const char *best = NULL;
    size_t bestd = 3;
    for (size_t i = 0; i < NKEYS; i++) {
        size_t d = edit_distance(path, keys[i].name);
        if (d < bestd) { bestd = d; best = keys[i].name; }
    }
    for (size_t i = 0; i < NSECTIONS; i++) {
        size_t d = edit_distance(path, sections[i]);
        if (d < bestd) { bestd = d; best = sections[i]; }
    }
    return best;
}

/* A choice spelled "null" (message_format.absent_name_fields: null) is the
 * word, not YAML's null: `key: null` must mean what it says. */
static bool enum_word_null(const struct key *k, const yaml_event_t *ev)
{
    if (k->type != K_ENUM || ev->data.scalar.length != 4 ||
        memcmp(ev->data.scalar.value, "null", 4) != 0)
        return false;
    for (const char *const *c = k->choices; *c; c++)
        if (strcmp(*c, "null") == 0) return true;
    return false;
}

static int vp_scalar_value(struct vpass *v, const struct key *k, const char *path, uint64_t *num)
{
    char why[WHY];
    if (v->ev.type != YAML_SCALAR_EVENT)
        return vp_fail(v, ev_line(v), path, "expected a single value, got %s", ev_kind(&v->ev));
    if (ev_is_null(&v->ev) && !enum_word_null(k, &v->ev))
        return vp_fail(v, ev_line(v), path, "has no value (write \"\" for an empty string)");
    if (check_scalar(k, (const char *)v->ev.data.scalar.value, v->ev.data.scalar.length,
                     num, why, sizeof why) < 0)
        return vp_fail(v, ev_line(v), path, "%s", why);
    return 0;
}

static int vp_tokens(struct vpass *v, const struct key *k)
{
    char why[WHY], path[64];
    size_t n = 0;
    if (v->ev.type != YAML_SEQUENCE_START_EVENT)
        return vp_fail(v, ev_line(v), k->name, "expected a sequence of strings ([] for none), got %s",
                       ev_kind(&v->ev));
    for (;;) {
        if (vp_next(v) < 0) return -1;
        if (v->ev.type == YAML_SEQUENCE_END_EVENT) return 0;
        snprintf(path, sizeof path, "%s[%zu]", k->name, n);
        if (v->ev.type != YAML_SCALAR_EVENT || ev_is_null(&v->ev))
            return vp_fail(v, ev_line(v), path, "expected a token string, got %s",
                           v->ev.type == YAML_SCALAR_EVENT ? "no value" : ev_kind(&v->ev));
        if (++n > CONFIG_MAX_TOKENS)
            return vp_fail(v, ev_line(v), k->name, "more than %d tokens", CONFIG_MAX_TOKENS);
        if (check_token((const char *)v->ev.data.scalar.value, v->ev.data.scalar.length,
                        why, sizeof why) < 0)
            return vp_fail(v, ev_line(v), path, "%s", why);
    }
}

/* One setting of a per-log override at the current key event (kn, a copy
 * of it): reads the value. 0 = set; -1 with the error filled = a bad value
 * or a setting given twice; -1 with no error = kn is not a setting. */
static int vp_override_setting(struct vpass *v, struct config_log_override *o, const char *where,
                               size_t idx, const char *kn)
{
    char path[400], why[WHY];
    uint32_t line = ev_line(v);
    struct config_log_override probe = {0};
    if (set_override(&probe, kn, strlen(kn), "1", 1, why, sizeof why) == -1) return -1;
    override_clear(&probe);
    if (idx == SIZE_MAX) snprintf(path, sizeof path, "%s.%s", where, kn);
    else snprintf(path, sizeof path, "%s[%zu].%s", where, idx, kn);
    snprintf(v->near, sizeof v->near, "%.150s", path);
    bool given = (!strcmp(kn, "batch_size") && o->batch_size) ||
                 (!strcmp(kn, "poll_interval_ms") && o->poll_interval_ms) ||
                 (!strcmp(kn, "fetch_concurrency") && o->fetch_concurrency) ||
                 (!strcmp(kn, "expected_log_id") && o->expected_log_id) ||
                 (!strcmp(kn, "enabled") && o->enabled != 0);
    if (given) return vp_fail(v, line, path, "is given twice");
    if (vp_next(v) < 0) return -1;
    if (v->ev.type != YAML_SCALAR_EVENT || ev_is_null(&v->ev))
        return vp_fail(v, ev_line(v), path, "expected a single value, got %s", ev_kind(&v->ev));
    if (set_override(o, kn, strlen(kn), (const char *)v->ev.data.scalar.value, v->ev.data.scalar.length,
                     why, sizeof why) != 0)
        return vp_fail(v, ev_line(v), path, "%s", why);
    return 0;
}

/* log_overrides: {<log URL or name>: {batch_size: .., enabled: .., ...}, ...} */
static int vp_overrides(struct vpass *v, const struct key *k)
{
    char path[400], q[64], why[WHY];
    if (v->ev.type != YAML_MAPPING_START_EVENT)
        return vp_fail(v, ev_line(v), k->name, "expected a mapping of log URL or name to settings "
                       "({} for none), got %s", ev_kind(&v->ev));
    for (;;) {
        if (vp_next(v) < 0) return -1;
        if (v->ev.type == YAML_MAPPING_END_EVENT) return 0;
        if (v->ev.type != YAML_SCALAR_EVENT || ev_is_null(&v->ev))
            return vp_fail(v, ev_line(v), k->name, "a key must be a log URL or name, got %s", ev_kind(&v->ev));
        const char *m = (const char *)v->ev.data.scalar.value;
        size_t ml = v->ev.data.scalar.length;
        uint32_t line = ev_line(v);
        snprintf(path, sizeof path, "%s.%s", k->name, quoted(q, sizeof q, m, ml));
        if (check_text(m, ml, MAX_STRING, false, why, sizeof why) < 0)
            return vp_fail(v, line, path, "the log URL or name %s", why);
        if (v->ld->n_ov == CONFIG_MAX_LOGS)
            return vp_fail(v, line, k->name, "more than %d logs", CONFIG_MAX_LOGS);
        for (size_t i = 0; i < v->ld->n_ov; i++)
            if (strlen(v->ld->ov[i].match) == ml && memcmp(v->ld->ov[i].match, m, ml) == 0)
                return vp_fail(v, line, path, "is given twice");
        struct config_log_override *o = &v->ld->ov[v->ld->n_ov];
        override_clear(o);
        if (set_str(&o->match, m, ml) < 0) return vp_fail(v, line, path, "out of memory");
        v->ld->n_ov++;
        if (vp_next(v) < 0) return -1;
        if (v->ev.type != YAML_MAPPING_START_EVENT)
            return vp_fail(v, ev_line(v), path, "expected a mapping of settings (%s), got %s",
                           override_keys, ev_kind(&v->ev));
        for (;;) {
            if (vp_next(v) < 0) return -1;
            if (v->ev.type == YAML_MAPPING_END_EVENT) break;
            char kn[40];
            size_t kl = v->ev.data.scalar.length;
            if (v->ev.type != YAML_SCALAR_EVENT || kl >= sizeof kn ||
                kl != strlen((const char *)v->ev.data.scalar.value))
                return vp_fail(v, ev_line(v), path, "expected a setting (%s)", override_keys);
            memcpy(kn, v->ev.data.scalar.value, kl + 1);
            if (vp_override_setting(v, o, path, SIZE_MAX, kn) == 0) continue;
            if (v->ld->err->message[0]) return -1;
            return vp_fail(v, ev_line(v), path, "unknown setting %s (one of %s)", quoted(q, sizeof q, kn, kl),
                           override_keys);
        }
    }
}

/* operator_pacing: {<operator name>: {requests_per_second: N}, ...} */
static int vp_pacing(struct vpass *v, const struct key *k)
{
    char path[400], q[64], why[WHY];
    if (v->ev.type != YAML_MAPPING_START_EVENT)
        return vp_fail(v, ev_line(v), k->name, "expected a mapping of operator name to "
                       "{requests_per_second: N} ({} for none), got %s", ev_kind(&v->ev));
    for (;;) {
        if (vp_next(v) < 0) return -1;
        if (v->ev.type == YAML_MAPPING_END_EVENT) return 0;
        if (v->ev.type != YAML_SCALAR_EVENT || ev_is_null(&v->ev))
            return vp_fail(v, ev_line(v), k->name, "a key must be an operator name, got %s", ev_kind(&v->ev));
        const char *m = (const char *)v->ev.data.scalar.value;
        size_t ml = v->ev.data.scalar.length;
        uint32_t line = ev_line(v);
        snprintf(path, sizeof path, "%s.%s", k->name, quoted(q, sizeof q, m, ml));
        if (check_text(m, ml, MAX_NAME, false, why, sizeof why) < 0)
            return vp_fail(v, line, path, "the operator name %s", why);
        if (v->ld->n_pacing == CONFIG_MAX_PACING)
            return vp_fail(v, line, k->name, "more than %d operators", CONFIG_MAX_PACING);
        for (size_t i = 0; i < v->ld->n_pacing; i++)
            if (strlen(v->ld->pacing[i].operator_name) == ml && memcmp(v->ld->pacing[i].operator_name, m, ml) == 0)
                return vp_fail(v, line, path, "is given twice");
        struct config_pacing *pc = &v->ld->pacing[v->ld->n_pacing];
        if (set_str(&pc->operator_name, m, ml) < 0) return vp_fail(v, line, path, "out of memory");
        v->ld->n_pacing++;
        if (vp_next(v) < 0) return -1;
        if (v->ev.type != YAML_MAPPING_START_EVENT)
            return vp_fail(v, ev_line(v), path, "expected {requests_per_second: N}, got %s", ev_kind(&v->ev));
        bool seen = false;
        for (;;) {
            if (vp_next(v) < 0) return -1;
            if (v->ev.type == YAML_MAPPING_END_EVENT) break;
            if (v->ev.type != YAML_SCALAR_EVENT ||
                strcmp((const char *)v->ev.data.scalar.value, "requests_per_second") != 0)
                return vp_fail(v, ev_line(v), path, "unknown setting %s (the one setting is "
                               "requests_per_second)", v->ev.type == YAML_SCALAR_EVENT ?
                               quoted(q, sizeof q, (const char *)v->ev.data.scalar.value,
                                      v->ev.data.scalar.length) : ev_kind(&v->ev));
            if (seen) return vp_fail(v, ev_line(v), path, "requests_per_second is given twice");
            seen = true;
            if (vp_next(v) < 0) return -1;
            if (v->ev.type != YAML_SCALAR_EVENT ||
                parse_rps((const char *)v->ev.data.scalar.value, v->ev.data.scalar.length, &pc->milli_rps,
                          why, sizeof why) < 0)
                return vp_fail(v, ev_line(v), path, "requests_per_second: %s",
                               v->ev.type == YAML_SCALAR_EVENT ? why : "expected a number");
        }
        if (!seen) return vp_fail(v, line, path, "missing requests_per_second");
    }
}

/* One {name: ..., url: ...} item of custom_logs / static_logs. */
static int vp_log_item(struct vpass *v, const struct key *k, size_t idx)
{
    static const struct key name_key = {"name", NULL, K_STR, 0, 0, 0, MAX_NAME, NULL, NULL};
    static const struct key url_key = {"url", NULL, K_URL, 0, 0, 0, MAX_STRING, NULL, NULL};
    char path[96];
    uint32_t item_line = ev_line(v), seen[2] = {0, 0};
    uint64_t num;
    int list = k->off == OFF(static_logs);

    v->ld->item_line[list][idx] = item_line;
    for (;;) {
        if (vp_next(v) < 0) return -1;
        if (v->ev.type == YAML_MAPPING_END_EVENT) break;
        if (v->ev.type != YAML_SCALAR_EVENT)
            return vp_fail(v, ev_line(v), NULL, "key '%s[%zu]': a key must be a plain name, got %s",
                           k->name, idx, ev_kind(&v->ev));
        const char *kn = (const char *)v->ev.data.scalar.value;
        int which = strcmp(kn, "name") == 0 ? 0 : strcmp(kn, "url") == 0 ? 1 : -1;
        char q[64];
        if (which < 0 && v->ev.data.scalar.length == strlen(kn) && strlen(kn) < 40) {
            /* a per-log override (docs/ingest.md) */
            char kcopy[40];
            memcpy(kcopy, kn, strlen(kn) + 1);
            if (vp_override_setting(v, &v->ld->item_ov[list][idx], k->name, idx, kcopy) == 0) continue;
            if (v->ld->err->message[0]) return -1;
        }
        if (which < 0 || v->ev.data.scalar.length != strlen(kn)) {
            snprintf(path, sizeof path, "%s[%zu]", k->name, idx);
            return vp_fail(v, ev_line(v), path, "unknown key %s (an entry has name and url, and "
                           "optionally %s)", quoted(q, sizeof q, kn, v->ev.data.scalar.length), override_keys);
        }
        snprintf(path, sizeof path, "%s[%zu].%s", k->name, idx, kn);
        snprintf(v->near, sizeof v->near, "%s", path);
        if (seen[which])
            return vp_fail(v, ev_line(v), path, "is given twice (first on line %" PRIu32 ")",
                           seen[which]);
        seen[which] = ev_line(v);
        if (vp_next(v) < 0) return -1;
        if (vp_scalar_value(v, which ? &url_key : &name_key, path, &num) < 0) return -1;
    }
    for (int i = 0; i < 2; i++)
        if (!seen[i]) {
            snprintf(path, sizeof path, "%s[%zu]", k->name, idx);
            return vp_fail(v, item_line, path, "missing '%s' (an entry needs name and url)",
                           i ? "url" : "name");
        }
    return 0;
}

static int vp_logs(struct vpass *v, const struct key *k)
{
    size_t n = 0;
    if (v->ev.type != YAML_SEQUENCE_START_EVENT)
        return vp_fail(v, ev_line(v), k->name,
                       "expected a sequence of {name, url} entries ([] for none), got %s",
                       ev_kind(&v->ev));
    for (;;) {
        if (vp_next(v) < 0) return -1;
        if (v->ev.type == YAML_SEQUENCE_END_EVENT) return 0;
        if (n == CONFIG_MAX_LOGS)
            return vp_fail(v, ev_line(v), k->name, "more than %d entries", CONFIG_MAX_LOGS);
        if (v->ev.type != YAML_MAPPING_START_EVENT)
            return vp_fail(v, ev_line(v), k->name, "entry %zu: expected {name, url}, got %s",
                           n, ev_kind(&v->ev));
        if (vp_log_item(v, k, n) < 0) return -1;
        n++;
    }
}

/* nats.url: one server, or a sequence of them; kept joined by commas (the
 * form the environment variable takes), which is what libcyaml cannot map. */
static int vp_nats_url(struct vpass *v, const struct key *k)
{
    char path[64];
    uint64_t num;
    size_t n = 0, len = 0;
    if (v->ev.type == YAML_SCALAR_EVENT) {
        if (vp_scalar_value(v, k, k->name, &num) < 0) return -1;
        return set_str(&v->ld->nats_url, (const char *)v->ev.data.scalar.value, v->ev.data.scalar.length) < 0
                   ? vp_fail(v, ev_line(v), k->name, "out of memory") : 0;
    }
    if (v->ev.type != YAML_SEQUENCE_START_EVENT)
        return vp_fail(v, ev_line(v), k->name, "expected a server URL or a sequence of them, got %s",
                       ev_kind(&v->ev));
    char joined[MAX_STRING + 1];
    uint32_t line = ev_line(v);
    for (;;) {
        if (vp_next(v) < 0) return -1;
        if (v->ev.type == YAML_SEQUENCE_END_EVENT) break;
        snprintf(path, sizeof path, "%s[%zu]", k->name, n);
        if (v->ev.type != YAML_SCALAR_EVENT)
            return vp_fail(v, ev_line(v), path, "expected a server URL, got %s", ev_kind(&v->ev));
        size_t l = v->ev.data.scalar.length;
        if (memchr(v->ev.data.scalar.value, ',', l))
            return vp_fail(v, ev_line(v), path, "one server per item (no commas)");
        if (vp_scalar_value(v, k, path, &num) < 0) return -1;
        if (len + (n ? 1 : 0) + l > MAX_STRING)
            return vp_fail(v, ev_line(v), k->name, "the servers are longer than %d bytes in all", MAX_STRING);
        if (n) joined[len++] = ',';
        memcpy(joined + len, v->ev.data.scalar.value, l);
        len += l;
        n++;
    }
    if (n == 0)
        return vp_fail(v, line, k->name, "an empty sequence: give at least one server");
    return set_str(&v->ld->nats_url, joined, len) < 0 ? vp_fail(v, line, k->name, "out of memory") : 0;
}

/* One entry of cors.allowed_origins: "*", or "http[s]://host[:port]" with
 * no path (a browser's Origin header never has one). */
static bool origin_ok(const char *p, size_t len)
{
    const char *sep = memchr(p, ':', len);
    bool ok = len == 1 && *p == '*';
    if (!ok && sep && (size_t)(sep - p) + 3 < len && sep[1] == '/' && sep[2] == '/') {
        ok = (sep - p == 4 && strncmp(p, "http", 4) == 0) || (sep - p == 5 && strncmp(p, "https", 5) == 0);
        for (const char *c = sep + 3; ok && c < p + len; c++)
            ok = isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == ':' || *c == '[' || *c == ']';
    }
    return ok;
}

/* cors.allowed_origins: one string (origins separated by commas or spaces,
 * as the environment variable takes them) or a sequence of origins, one per
 * item; kept as one string, joined by ", ". libcyaml cannot map both forms
 * to one field, so the walk reads it (see cy_cors). */
static int vp_origins(struct vpass *v, const struct key *k)
{
    char path[64], q[80];
    uint64_t num;
    size_t n = 0, len = 0;
    if (v->ev.type == YAML_SCALAR_EVENT) {
        if (vp_scalar_value(v, k, k->name, &num) < 0) return -1;
        len = v->ev.data.scalar.length;
        memcpy(v->ld->origins, v->ev.data.scalar.value, len);
        v->ld->origins[len] = 0;
        return 0;
    }
    if (v->ev.type != YAML_SEQUENCE_START_EVENT)
        return vp_fail(v, ev_line(v), k->name, "expected an origin, origins separated by commas, or a "
                       "sequence of origins, got %s", ev_kind(&v->ev));
    for (;;) {
        if (vp_next(v) < 0) return -1;
        if (v->ev.type == YAML_SEQUENCE_END_EVENT) break;
        snprintf(path, sizeof path, "%s[%zu]", k->name, n);
        if (v->ev.type != YAML_SCALAR_EVENT || ev_is_null(&v->ev))
            return vp_fail(v, ev_line(v), path, "expected an origin, got %s",
                           v->ev.type == YAML_SCALAR_EVENT ? "no value" : ev_kind(&v->ev));
        const char *s = (const char *)v->ev.data.scalar.value;
        size_t l = v->ev.data.scalar.length;
        if (!origin_ok(s, l))
            return vp_fail(v, ev_line(v), path, "%s is not an origin (\"*\" or \"https://host[:port]\", "
                           "no path; one origin per item)", quoted(q, sizeof q, s, l));
        if (len + (n ? 2 : 0) + l > MAX_STRING)
            return vp_fail(v, ev_line(v), k->name, "the origins are longer than %d bytes in all", MAX_STRING);
        if (n) {
            memcpy(v->ld->origins + len, ", ", 2);
            len += 2;
        }
        memcpy(v->ld->origins + len, s, l);
        len += l;
        n++;
    }
    v->ld->origins[len] = 0;   /* [] is "": CORS off */
    return 0;
}

static int vp_value(struct vpass *v, const struct key *k)
{
    uint64_t num = 0;
    if (vp_next(v) < 0) return -1;
    if (k->type == K_TOKENS) return vp_tokens(v, k);
    if (k->type == K_LOGS) return vp_logs(v, k);
    if (k->type == K_OVERRIDES) return vp_overrides(v, k);
    if (k->type == K_PACING) return vp_pacing(v, k);
    if (k->type == K_NATS_URL) return vp_nats_url(v, k);
    if (k->type == K_ORIGINS) return vp_origins(v, k);
    if (vp_scalar_value(v, k, k->name, &num) < 0) return -1;
    v->ld->num[k - keys] = num;
    return 0;
}

static int section_index(const char *name)
{
    for (size_t i = 0; i < NSECTIONS; i++)
        if (strcmp(sections[i], name) == 0) return (int)i;
    return -1;
}

/* The keys of the top level (section NULL) or of one section. */
static int vp_mapping(struct vpass *v, const char *section)
{
    char path[160], q[64];
    for (;;) {
        if (vp_next(v) < 0) return -1;
        if (v->ev.type == YAML_MAPPING_END_EVENT) return 0;
        if (v->ev.type != YAML_SCALAR_EVENT)
            return vp_fail(v, ev_line(v), section, "a key must be a plain name, got %s",
                           ev_kind(&v->ev));
        const char *raw = (const char *)v->ev.data.scalar.value;
        size_t nlen = v->ev.data.scalar.length;
        uint32_t line = ev_line(v);
        char name[72];   /* a copy: the event is gone after the next vp_next */
        if (nlen != strlen(raw) || nlen >= sizeof name || utf8_bad(raw, nlen) < nlen)
            return vp_fail(v, line, NULL, "unknown key %s", quoted(q, sizeof q, raw, nlen));
        memcpy(name, raw, nlen + 1);
        if (section) snprintf(path, sizeof path, "%s.%s", section, name);
        else snprintf(path, sizeof path, "%s", name);
        snprintf(v->near, sizeof v->near, "%s", path);

        int sec = section ? -1 : section_index(name);
        if (sec >= 0) {
            if (v->section_line[sec])
                return vp_fail(v, line, path, "is given twice (first on line %" PRIu32 ")",
                               v->section_line[sec]);
            v->section_line[sec] = line;
            if (vp_next(v) < 0) return -1;
            /* "auth:" with every key commented out is refused too: libcyaml
             * 1.3 cannot read a null where it expects a mapping. */
            if (v->ev.type != YAML_MAPPING_START_EVENT)
                return vp_fail(v, ev_line(v), path, "expected a mapping of keys ({} for none), got %s",
                               ev_kind(&v->ev));
            if (vp_mapping(v, name) < 0) return -1;
            continue;
        }
        size_t idx;
        const struct key *k = strchr(name, '.') ? NULL : key_by_name(path, &idx);
        if (!k && strchr(name, '.') && key_by_name(path, NULL))
            return vp_fail(v, line, NULL, "unknown key '%s' (write it nested: '%.*s:', then "
                           "'%s:' indented below it)", path, (int)(strchr(path, '.') - path),
                           path, strchr(path, '.') + 1);
        if (!k) {
            const char *s = suggest(path);
            if (s) return vp_fail(v, line, NULL, "unknown key '%s' (did you mean '%s'?)", path, s);
            return vp_fail(v, line, NULL, "unknown key '%s'", path);
        }
        if (v->ld->layer[idx] == L_FILE)
            return vp_fail(v, line, path, "is given twice (first on line %" PRIu32 ")",
                           v->ld->line[idx]);
        v->ld->layer[idx] = L_FILE;
        v->ld->line[idx] = line;
        if (vp_value(v, k) < 0) return -1;
    }
}

/* Walks the whole document; returns the number of keys set, or -1. */
static int vp_run(struct vpass *v)
{
    if (vp_next(v) < 0) return -1;                      /* STREAM_START */
    if (vp_next(v) < 0) return -1;
    if (v->ev.type == YAML_STREAM_END_EVENT) return 0;  /* empty file, or comments only */
    if (vp_next(v) < 0) return -1;                      /* past DOCUMENT_START */
    if (v->ev.type == YAML_MAPPING_START_EVENT) {
        if (vp_mapping(v, NULL) < 0) return -1;
    } else if (!ev_is_null(&v->ev)) {
        return vp_fail(v, ev_line(v), NULL,
                       "the top level must be a mapping of keys (key: value), got %s",
                       ev_kind(&v->ev));
    }
    if (vp_next(v) < 0) return -1;                      /* DOCUMENT_END */
    if (vp_next(v) < 0) return -1;
    if (v->ev.type != YAML_STREAM_END_EVENT)
        return vp_fail(v, ev_line(v), NULL, "more than one YAML document (---); "
                       "put every key in one document");
    int n = 0;
    for (size_t i = 0; i < NKEYS; i++) n += v->ld->layer[i] == L_FILE;
    return n;
}

static int validate_yaml(struct load *ld, const char *buf, size_t len)
{
    struct vpass v;
    memset(&v, 0, sizeof v);
    v.ld = ld;
    v.buf = buf;
    v.len = len;
    if (!yaml_parser_initialize(&v.parser)) return fail(ld->err, "%s: out of memory", ld->path);
    yaml_parser_set_input_string(&v.parser, (const unsigned char *)buf, len);
    yaml_parser_set_encoding(&v.parser, YAML_UTF8_ENCODING);
    int rc = vp_run(&v);
    if (v.have) yaml_event_delete(&v.ev);
    yaml_parser_delete(&v.parser);
    return rc;
}

/* ------------------------------------------------ pass 2: libcyaml load */

/* Offsets inside a section's struct, for the section's own schema. */
#define IN(sec, m) (offsetof(struct config, sec.m) - offsetof(struct config, sec))
#define MSIZE(m) sizeof(((struct config *)0)->m)
#define CY_UINT(k, off, size) \
    { .key = k, .data_offset = (uint32_t)(off), \
      .value = { .type = CYAML_UINT, .flags = CYAML_FLAG_OPTIONAL, .data_size = (uint32_t)(size) } }
#define CY_BOOL(k, off) \
    { .key = k, .data_offset = (uint32_t)(off), \
      .value = { .type = CYAML_BOOL, .flags = CYAML_FLAG_OPTIONAL, .data_size = sizeof(bool) } }
#define CY_STR(k, off) \
    { .key = k, .data_offset = (uint32_t)(off), \
      .value = { .type = CYAML_STRING, .flags = CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER, \
                 .data_size = 1, .string = { .min = 0, .max = CYAML_UNLIMITED } } }
#define CY_SECTION(k, sec, fields_) \
    { .key = k, .data_offset = (uint32_t)OFF(sec), \
      .value = { .type = CYAML_MAPPING, .flags = CYAML_FLAG_OPTIONAL, \
                 .data_size = (uint32_t)MSIZE(sec), .mapping = { .fields = fields_ } } }
#define CY_SU(sec, m) CY_UINT(#m, IN(sec, m), MSIZE(sec.m))
#define CY_SB(sec, m) CY_BOOL(#m, IN(sec, m))
#define CY_SS(sec, m) CY_STR(#m, IN(sec, m))

static const cyaml_schema_field_t cy_protocols[] = {
    CY_SB(protocols, websocket), CY_SB(protocols, sse), CY_SB(protocols, metrics),
    CY_SB(protocols, health), CY_SB(protocols, example_json), CY_SB(protocols, web_page),
    CY_SB(protocols, api), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_cors[] = {
    /* a string or a sequence: the walk has read it (load.origins, vp_origins) */
    { .key = "allowed_origins", .value = { .type = CYAML_IGNORE, .flags = CYAML_FLAG_OPTIONAL } },
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_ct_log[] = {
    CY_SS(ct_log, state_file), CY_SU(ct_log, batch_size), CY_SU(ct_log, poll_interval_ms),
    CY_SU(ct_log, retry_max_attempts), CY_SU(ct_log, request_timeout_secs),
    CY_SU(ct_log, fetch_concurrency), CY_SU(ct_log, start_overlap),
    CY_SU(ct_log, retry_initial_delay_ms), CY_SU(ct_log, retry_max_delay_ms),
    CY_SU(ct_log, operator_rate_limit_ms),
    CY_SS(ct_log, position_ahead), CY_SU(ct_log, max_response_bytes), CY_SU(ct_log, max_inflight_bytes),
    CY_SB(ct_log, list_enabled), CY_SB(ct_log, rfc6962_enabled), CY_SB(ct_log, static_enabled),
    CY_SB(ct_log, verify_tiles),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_connection_limit[] = {
    CY_SB(connection_limit, enabled), CY_SU(connection_limit, max_connections),
    CY_SU(connection_limit, per_ip_limit), CY_SU(connection_limit, ipv6_prefix),
    CY_SU(connection_limit, address_table_size), CYAML_FIELD_END,
};
static const cyaml_schema_value_t cy_token = {
    .type = CYAML_STRING, .flags = CYAML_FLAG_POINTER, .data_size = 1,
    .string = { .min = 1, .max = MAX_TOKEN },
};
static const cyaml_schema_field_t cy_auth[] = {
    CY_SB(auth, enabled),
    { .key = "tokens", .data_offset = (uint32_t)IN(auth, tokens),
      .count_offset = (uint32_t)IN(auth, n_tokens), .count_size = (uint8_t)MSIZE(auth.n_tokens),
      .value = { .type = CYAML_SEQUENCE, .flags = CYAML_FLAG_OPTIONAL, .data_size = sizeof(char *),
                 .sequence = { .entry = &cy_token, .min = 0, .max = CONFIG_MAX_TOKENS } } },
    CY_SS(auth, header_name), CY_SB(auth, allow_query_token), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_hot_reload[] = {
    CY_SB(hot_reload, enabled), CY_SS(hot_reload, watch_path), CYAML_FIELD_END,
};
#define CY_IGNORE(k) { .key = k, .value = { .type = CYAML_IGNORE, .flags = CYAML_FLAG_OPTIONAL } }
static const cyaml_schema_field_t cy_log_fields[] = {
    CY_STR("name", offsetof(struct config_log, name)),
    CY_STR("url", offsetof(struct config_log, url)),
    /* per-log overrides: read by the walk (load.item_ov) */
    CY_IGNORE("batch_size"), CY_IGNORE("poll_interval_ms"), CY_IGNORE("fetch_concurrency"),
    CY_IGNORE("expected_log_id"), CY_IGNORE("enabled"),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t cy_log = {
    .type = CYAML_MAPPING, .flags = CYAML_FLAG_DEFAULT, .data_size = sizeof(struct config_log),
    .mapping = { .fields = cy_log_fields },
};
static const cyaml_schema_field_t cy_streams[] = {
    CY_SB(streams, full), CY_SB(streams, lite), CY_SB(streams, domains_only),
    CY_SS(streams, lite_path), CY_SS(streams, full_path), CY_SS(streams, domains_path),
    CY_SS(streams, sse_path), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_ingest[] = {
    CY_SS(ingest, group_by), CY_SU(ingest, max_processes), CY_SS(ingest, source), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_nats[] = {
    /* nats.url may be a sequence: the walk has joined it (load.nats_url) */
    { .key = "url", .value = { .type = CYAML_IGNORE, .flags = CYAML_FLAG_OPTIONAL } },
    CY_SS(nats, stream), CY_SS(nats, subject_prefix), CY_SB(nats, publish),
    CY_SS(nats, max_age), CY_SS(nats, duplicate_window), CY_SU(nats, replicas),
    CY_SS(nats, creds_file), CY_SS(nats, position_file), CY_SU(nats, max_pending),
    CY_SU(nats, max_lag_secs), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_keepalive[] = {
    CY_SU(keepalive, websocket_heartbeat_secs), CY_SU(keepalive, ping_interval_secs),
    CY_SU(keepalive, idle_timeout_secs), CY_SU(keepalive, sse_heartbeat_secs), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_dedup[] = {
    CY_SU(dedup, capacity), CY_SU(dedup, ttl_secs), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_limits[] = {
    CY_SU(limits, max_request_bytes), CY_SU(limits, max_headers),
    CY_SU(limits, request_timeout_secs), CY_SU(limits, max_frame_bytes),
    CY_SU(limits, max_message_bytes), CY_SU(limits, send_buffer_bytes),
    CY_SU(limits, slow_client_seconds), CY_SU(limits, slow_client_bytes), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_shutdown[] = {
    CY_SU(shutdown, drain_timeout_secs), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_message_format[] = {
    CY_SS(message_format, absent_name_fields), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_filters[] = {
    CY_SB(filters, enabled), CY_SU(filters, max_per_worker), CY_SU(filters, max_patterns),
    CY_SU(filters, max_pattern_bytes), CY_SU(filters, regex_match_limit), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_compression[] = {
    CY_SB(compression, enabled), CY_SU(compression, min_size), CY_SU(compression, level),
    CY_SB(compression, shared_context), CY_SU(compression, shared_cache_size), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_access[] = {
    CY_SS(access, streams_allow), CY_SS(access, metrics_allow), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_rate_limit[] = {
    CY_SU(rate_limit, connections_per_minute), CY_SU(rate_limit, burst), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_tls[] = {
    CY_SS(tls, cert_file), CY_SS(tls, key_file), CY_SU(tls, plain_port),
    CY_SB(tls, session_tickets), CY_SU(tls, ticket_rotate_secs), CYAML_FIELD_END,
};
static const cyaml_schema_field_t cy_access_log[] = {
    CY_SB(access_log, enabled), CY_SS(access_log, path), CYAML_FIELD_END,
};
#define CY_LOGS(k, m, n) \
    { .key = k, .data_offset = (uint32_t)OFF(m), .count_offset = (uint32_t)OFF(n), \
      .count_size = (uint8_t)MSIZE(n), \
      .value = { .type = CYAML_SEQUENCE, .flags = CYAML_FLAG_OPTIONAL, \
                 .data_size = sizeof(struct config_log), \
                 .sequence = { .entry = &cy_log, .min = 0, .max = CONFIG_MAX_LOGS } } }

static const cyaml_schema_field_t cy_top[] = {
    CY_STR("host", OFF(host)),
    CY_UINT("port", OFF(port), MSIZE(port)),
    CY_STR("log_level", OFF(log_level)),
    CY_UINT("buffer_size", OFF(buffer_size), MSIZE(buffer_size)),
    CY_STR("ct_logs_url", OFF(ct_logs_url)),
    CY_STR("ct_logs_signature", OFF(ct_logs_signature)),
    CY_STR("ct_logs_public_key", OFF(ct_logs_public_key)),
    CY_SECTION("protocols", protocols, cy_protocols),
    CY_SECTION("ct_log", ct_log, cy_ct_log),
    CY_SECTION("connection_limit", connection_limit, cy_connection_limit),
    CY_SECTION("auth", auth, cy_auth),
    CY_SECTION("hot_reload", hot_reload, cy_hot_reload),
    CY_SECTION("cors", cors, cy_cors),
    CY_LOGS("custom_logs", custom_logs, n_custom_logs),
    CY_LOGS("static_logs", static_logs, n_static_logs),
    CY_STR("apple_logs_url", OFF(apple_logs_url)),
    /* maps keyed by log or operator: read by the walk (load.ov, load.pacing) */
    CY_IGNORE("log_overrides"), CY_IGNORE("operator_pacing"),
    CY_UINT("workers", OFF(workers), MSIZE(workers)),
    /* ring_size takes unit suffixes ("64MiB") that CYAML_UINT cannot read;
     * the walk has already parsed it (load.num). */
    { .key = "ring_size", .value = { .type = CYAML_IGNORE, .flags = CYAML_FLAG_OPTIONAL } },
    CY_SECTION("streams", streams, cy_streams),
    CY_SECTION("ingest", ingest, cy_ingest),
    CY_SECTION("keepalive", keepalive, cy_keepalive),
    CY_SECTION("dedup", dedup, cy_dedup),
    CY_SECTION("limits", limits, cy_limits),
    CY_SECTION("nats", nats, cy_nats),
    CY_UINT("watchdog_secs", OFF(watchdog_secs), MSIZE(watchdog_secs)),
    CY_UINT("ring_claim_timeout_ms", OFF(ring_claim_timeout_ms), MSIZE(ring_claim_timeout_ms)),
    CY_STR("log_format", OFF(log_format)),
    CY_STR("log_file", OFF(log_file)),
    CY_SECTION("shutdown", shutdown, cy_shutdown),
    CY_SECTION("message_format", message_format, cy_message_format),
    CY_SECTION("filters", filters, cy_filters),
    CY_SECTION("compression", compression, cy_compression),
    /* network edge */
    CY_STR("trusted_proxies", OFF(trusted_proxies)),
    CY_BOOL("proxy_protocol", OFF(proxy_protocol)),
    CY_SECTION("access", access, cy_access),
    CY_SECTION("rate_limit", rate_limit, cy_rate_limit),
    CY_SECTION("tls", tls, cy_tls),
    CY_SECTION("access_log", access_log, cy_access_log),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t cy_config = {
    .type = CYAML_MAPPING, .flags = CYAML_FLAG_POINTER, .data_size = sizeof(struct config),
    .mapping = { .fields = cy_top },
};

/* libcyaml logs its errors; keep the first one for the message. */
static void cy_log_capture(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    char *buf = ctx;
    if (level >= CYAML_LOG_ERROR && buf[0] == '\0') {
        vsnprintf(buf, WHY, fmt, args);
        buf[strcspn(buf, "\n")] = '\0';
    }
}

/* Copies the keys the walk saw in the file from libcyaml's struct over the
 * defaults. Strings are copied, so libcyaml frees all of its own memory.
 * A number libcyaml read differently from the walk is refused rather than
 * used: the two parsers must never silently disagree. */
static int merge_file(struct load *ld, const struct config *from)
{
    struct config *cfg = ld->cfg;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (ld->layer[i] != L_FILE) continue;
        void *dst = field(cfg, k->off);
        const void *src = cfield(from, k->off);
        uint64_t got = 0;
        switch (k->type) {
        case K_BOOL: got = *(const bool *)src; *(bool *)dst = got != 0; break;
        case K_U16: got = *(const uint16_t *)src; *(uint16_t *)dst = (uint16_t)got; break;
        case K_U32: got = *(const uint32_t *)src; *(uint32_t *)dst = (uint32_t)got; break;
        /* the walk's value: libcyaml cannot read unit suffixes (see cy_top) */
        case K_SIZE: got = ld->num[i]; *(uint64_t *)dst = got; break;
        /* the walk's value: it may have been a sequence (see vp_nats_url) */
        case K_NATS_URL:
            if (!ld->nats_url || set_str(dst, ld->nats_url, strlen(ld->nats_url)) < 0) return -1;
            continue;
        case K_ORIGINS:   /* the walk's value: it may have been a sequence (see vp_origins) */
            if (set_str(dst, ld->origins, strlen(ld->origins)) < 0) return -1;
            continue;
        case K_TOKENS:
            free_tokens(cfg);
            for (size_t t = 0; t < from->auth.n_tokens && t < CONFIG_MAX_TOKENS; t++) {
                const char *s = from->auth.tokens[t];
                if (set_str(&cfg->auth.tokens[t], s, strlen(s)) < 0) return -1;
                cfg->auth.n_tokens = t + 1;
            }
            break;
        case K_LOGS: {
            const struct config_log *sl = src;
            struct config_log *dl = dst;
            size_t sn = *(const size_t *)cfield(from, k->count_off);
            size_t *dn = field(cfg, k->count_off);
            free_logs(dl, dn);
            for (size_t t = 0; t < sn && t < CONFIG_MAX_LOGS; t++) {
                if (set_str(&dl[t].name, sl[t].name, strlen(sl[t].name)) < 0 ||
                    set_str(&dl[t].url, sl[t].url, strlen(sl[t].url)) < 0) {
                    *dn = t + 1;
                    return -1;
                }
                /* the walk's per-item overrides move over */
                struct config_log_override *io = &ld->item_ov[k->off == OFF(static_logs)][t];
                dl[t].o = *io;
                memset(io, 0, sizeof *io);
                *dn = t + 1;
            }
            break;
        }
        case K_OVERRIDES:
            free_overrides(cfg->log_overrides, &cfg->n_log_overrides);
            for (size_t t = 0; t < ld->n_ov; t++) {
                cfg->log_overrides[t] = ld->ov[t];
                memset(&ld->ov[t], 0, sizeof ld->ov[t]);
            }
            cfg->n_log_overrides = ld->n_ov;
            ld->n_ov = 0;
            continue;
        case K_PACING:
            free_pacing(cfg->operator_pacing, &cfg->n_operator_pacing);
            for (size_t t = 0; t < ld->n_pacing; t++) {
                cfg->operator_pacing[t] = ld->pacing[t];
                ld->pacing[t].operator_name = NULL;
            }
            cfg->n_operator_pacing = ld->n_pacing;
            ld->n_pacing = 0;
            continue;
        default: {
            const char *s = *(char *const *)src;
            if (s && set_str(dst, s, strlen(s)) < 0) return -1;
            break;
        }
        }
        if (k->type <= K_SIZE && got != ld->num[i])
            return fail(ld->err, "%s:%" PRIu32 ": key '%s': libcyaml read %" PRIu64
                        " where the check read %" PRIu64, ld->path, ld->line[i], k->name,
                        got, ld->num[i]), -2;
    }
    return 0;
}

static int load_document(struct load *ld, const char *buf, size_t len)
{
    char cylog[WHY] = "";
    cyaml_config_t cy = {
        .log_fn = cy_log_capture, .log_ctx = cylog, .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR, .flags = CYAML_CFG_NO_ALIAS,
    };
    struct config *loaded = NULL;

    /* Checked here rather than left to libyaml, whose reader reports only a
     * byte offset and may trip over it before earlier lines are parsed. */
    size_t bad = text_bad(buf, len);
    if (bad < len) {
        uint32_t line = line_of_offset(buf, len, bad);
        unsigned char c = (unsigned char)buf[bad];
        size_t col = bad;
        while (col > 0 && buf[col - 1] != '\n') col--;
        return fail(ld->err, "%s:%" PRIu32 ": %s (byte 0x%02x at column %zu); "
                    "the file must be UTF-8 text", ld->path, line,
                    c == 0 ? "NUL byte" : c < 0x80 ? "control character" : "invalid UTF-8",
                    c, bad - col + 1);
    }
    int n = validate_yaml(ld, buf, len);
    if (n <= 0) return n;   /* error, or nothing set (empty file, comments only) */

    cyaml_err_t e = cyaml_load_data((const uint8_t *)buf, len, &cy, &cy_config,
                                    (cyaml_data_t **)&loaded, NULL);
    if (e != CYAML_OK || !loaded)
        return fail(ld->err, "%s: libcyaml could not load the file: %s%s%s", ld->path,
                    cyaml_strerror(e), cylog[0] ? ": " : "", cylog), -2;
    int rc = merge_file(ld, loaded);
    cyaml_free(&cy, &cy_config, loaded, 0);
    if (rc == -1) return fail(ld->err, "%s: out of memory", ld->path);
    return rc;
}

/* Reads a whole configuration file of at most CONFIG_MAX_FILE_BYTES without
 * ever blocking for long: the supervisor re-reads it on SIGHUP and must keep
 * reaping, restarting and saving state. Opened with O_NONBLOCK and checked
 * with fstat first:
 *   - a regular file is read;
 *   - a named FIFO is refused at once (it would wait for a writer);
 *   - a pipe (`--config <(...)`, /dev/stdin) or a character device
 *     (/dev/null) is read until it ends, for at most CONFIG_READ_WAIT_MS:
 *     /dev/null and a pipe that ends empty are an empty file;
 *   - anything else (socket, block device) is refused. */
#define CONFIG_READ_WAIT_MS 1000
#define CONFIG_PIPEFS_MAGIC 0x50495045  /* linux/magic.h PIPEFS_MAGIC: anonymous pipes */

static int read_file(const char *path, const char *label, char **out, size_t *outlen,
                     struct config_error *err)
{
    struct stat st;
    struct statfs sfs;
    char *buf = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return fail(err, "%s%s: %s", label, path, strerror(errno));
    if (fstat(fd, &st) < 0) { fail(err, "%s%s: %s", label, path, strerror(errno)); goto err; }
    if (S_ISDIR(st.st_mode)) { fail(err, "%s%s: is a directory", label, path); goto err; }
    bool regular = S_ISREG(st.st_mode);
    if (S_ISFIFO(st.st_mode)) {
        if (fstatfs(fd, &sfs) < 0) { fail(err, "%s%s: %s", label, path, strerror(errno)); goto err; }
        if (sfs.f_type != CONFIG_PIPEFS_MAGIC) {
            fail(err, "%s%s: is a FIFO; refused (reading it would wait for a writer): "
                 "use a regular file", label, path);
            goto err;
        }
    } else if (!regular && !S_ISCHR(st.st_mode)) {
        fail(err, "%s%s: not a regular file, a pipe or a character device", label, path);
        goto err;
    }
    if (regular && st.st_size > CONFIG_MAX_FILE_BYTES) {
        fail(err, "%s%s: file is %jd bytes, more than the %d-byte limit for a configuration file",
             label, path, (intmax_t)st.st_size, CONFIG_MAX_FILE_BYTES);
        goto err;
    }
    buf = malloc(CONFIG_MAX_FILE_BYTES + 1);
    if (!buf) { fail(err, "%s%s: out of memory", label, path); goto err; }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        ssize_t r = read(fd, buf + len, CONFIG_MAX_FILE_BYTES + 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !regular) {
            struct timespec t1;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            long waited = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
            if (waited >= CONFIG_READ_WAIT_MS) {
                fail(err, "%s%s: did not end within %d ms (a pipe or device whose writer has "
                     "not finished); refused", label, path, CONFIG_READ_WAIT_MS);
                goto err;
            }
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (poll(&pfd, 1, (int)(CONFIG_READ_WAIT_MS - waited)) < 0 && errno != EINTR) {
                fail(err, "%s%s: poll: %s", label, path, strerror(errno));
                goto err;
            }
            continue;
        }
        if (r < 0) { fail(err, "%s%s: %s", label, path, strerror(errno)); goto err; }
        if (r == 0) break;
        len += (size_t)r;
        if (len > CONFIG_MAX_FILE_BYTES) {
            fail(err, "%s%s: file is more than the %d-byte limit for a configuration file",
                 label, path, CONFIG_MAX_FILE_BYTES);
            goto err;
        }
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
err:
    free(buf);
    close(fd);
    return -1;
}

/* -------------------------------------------------- environment, flags */

static const char *env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = env; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

/* Next item of a comma-separated list, spaces around it trimmed. */
static const char *next_item(const char *s, const char **start, size_t *len)
{
    const char *end = strchr(s, ',');
    if (!end) end = s + strlen(s);
    const char *b = s, *e = end;
    while (b < e && (*b == ' ' || *b == '\t')) b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *start = b;
    *len = (size_t)(e - b);
    return *end ? end + 1 : NULL;
}

static int env_tokens(struct config *cfg, const char *val, char *why, size_t whyn)
{
    free_tokens(cfg);
    if (*val == '\0') return 0;    /* "" clears the list */
    for (const char *s = val; s;) {
        const char *b;
        size_t n;
        s = next_item(s, &b, &n);
        if (cfg->auth.n_tokens == CONFIG_MAX_TOKENS)
            return snprintf(why, whyn, "more than %d tokens", CONFIG_MAX_TOKENS), -1;
        if (check_token(b, n, why, whyn) < 0) return -1;
        if (set_str(&cfg->auth.tokens[cfg->auth.n_tokens], b, n) < 0)
            return snprintf(why, whyn, "out of memory"), -1;
        cfg->auth.n_tokens++;
    }
    return 0;
}

/* "name=url,name=url" */
static int env_logs(struct config *cfg, const struct key *k, const char *val, char *why, size_t whyn)
{
    struct config_log *logs = field(cfg, k->off);
    size_t *n = field(cfg, k->count_off);
    free_logs(logs, n);
    if (*val == '\0') return 0;
    for (const char *s = val; s;) {
        const char *b, *eq;
        size_t len;
        char sub[WHY - 56];  /* room for the "entry N: url: " prefix */
        s = next_item(s, &b, &len);
        if (*n == CONFIG_MAX_LOGS)
            return snprintf(why, whyn, "more than %d entries", CONFIG_MAX_LOGS), -1;
        eq = memchr(b, '=', len);
        if (!eq)
            return snprintf(why, whyn, "entry %zu: expected name=url", *n), -1;
        size_t nl = (size_t)(eq - b), ul = len - nl - 1;
        if (check_text(b, nl, MAX_NAME, false, sub, sizeof sub) < 0)
            return snprintf(why, whyn, "entry %zu: name %s", *n, sub), -1;
        if (check_url(eq + 1, ul, false, sub, sizeof sub) < 0)
            return snprintf(why, whyn, "entry %zu: url: %s", *n, sub), -1;
        if (set_str(&logs[*n].name, b, nl) < 0 || set_str(&logs[*n].url, eq + 1, ul) < 0) {
            (*n)++;
            return snprintf(why, whyn, "out of memory"), -1;
        }
        (*n)++;
    }
    return 0;
}

/* CERTSTREAM_OPERATOR_PACING: "Google=20,Cloudflare=2.5" (requests per second) */
static int env_pacing(struct config *cfg, const char *val, char *why, size_t whyn)
{
    free_pacing(cfg->operator_pacing, &cfg->n_operator_pacing);
    if (*val == '\0') return 0;
    for (const char *s = val; s;) {
        const char *b, *eq;
        size_t len;
        char sub[WHY - 56];
        s = next_item(s, &b, &len);
        size_t *n = &cfg->n_operator_pacing;
        if (*n == CONFIG_MAX_PACING) return snprintf(why, whyn, "more than %d operators", CONFIG_MAX_PACING), -1;
        eq = len ? memrchr(b, '=', len) : NULL;
        if (!eq) return snprintf(why, whyn, "entry %zu: expected operator=requests_per_second", *n), -1;
        size_t nl = (size_t)(eq - b);
        if (check_text(b, nl, MAX_NAME, false, sub, sizeof sub) < 0)
            return snprintf(why, whyn, "entry %zu: operator name %s", *n, sub), -1;
        if (parse_rps(eq + 1, len - nl - 1, &cfg->operator_pacing[*n].milli_rps, sub, sizeof sub) < 0)
            return snprintf(why, whyn, "entry %zu: %s", *n, sub), -1;
        if (set_str(&cfg->operator_pacing[*n].operator_name, b, nl) < 0)
            return snprintf(why, whyn, "out of memory"), -1;
        (*n)++;
    }
    return 0;
}

/* CERTSTREAM_LOG_OVERRIDES: "<URL or name>{setting=value,...};<URL or name>{...}" */
static int env_overrides(struct config *cfg, const char *val, char *why, size_t whyn)
{
    free_overrides(cfg->log_overrides, &cfg->n_log_overrides);
    const char *s = val;
    while (*s == ' ' || *s == ';') s++;
    while (*s) {
        size_t *n = &cfg->n_log_overrides;
        char sub[WHY - 56];
        const char *open = strchr(s, '{'), *close = open ? strchr(open, '}') : NULL;
        if (*n == CONFIG_MAX_LOGS) return snprintf(why, whyn, "more than %d logs", CONFIG_MAX_LOGS), -1;
        if (!open || !close || open == s)
            return snprintf(why, whyn, "entry %zu: expected <log URL or name>{setting=value,...}", *n), -1;
        struct config_log_override *o = &cfg->log_overrides[*n];
        override_clear(o);
        if (check_text(s, (size_t)(open - s), MAX_STRING, false, sub, sizeof sub) < 0)
            return snprintf(why, whyn, "entry %zu: log URL or name %s", *n, sub), -1;
        if (set_str(&o->match, s, (size_t)(open - s)) < 0) return snprintf(why, whyn, "out of memory"), -1;
        (*n)++;
        for (const char *p = open + 1; p < close;) {
            const char *e = memchr(p, ',', (size_t)(close - p));
            if (!e) e = close;
            while (p < e && *p == ' ') p++;
            const char *eq = memchr(p, '=', (size_t)(e - p));
            if (!eq) return snprintf(why, whyn, "entry %zu: expected setting=value", *n - 1), -1;
            int rc = set_override(o, p, (size_t)(eq - p), eq + 1, (size_t)(e - eq - 1), sub, sizeof sub);
            if (rc == -1)
                return snprintf(why, whyn, "entry %zu: unknown setting '%.*s' (one of %s)", *n - 1,
                                (int)(eq - p), p, override_keys), -1;
            if (rc < 0) return snprintf(why, whyn, "entry %zu: %.*s: %s", *n - 1, (int)(eq - p), p, sub), -1;
            p = e + 1;
        }
        s = close + 1;
        while (*s == ' ' || *s == ';') s++;
    }
    return 0;
}

static int apply_env(struct load *ld, char *const *env)
{
    char why[WHY];
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *val = env_get(env, k->env);
        uint64_t num = 0;
        if (!val) continue;
        ld->layer[i] = L_ENV;
        if (k->type == K_TOKENS) {
            if (env_tokens(ld->cfg, val, why, sizeof why) < 0) goto bad;
        } else if (k->type == K_LOGS) {
            if (env_logs(ld->cfg, k, val, why, sizeof why) < 0) goto bad;
        } else if (k->type == K_OVERRIDES) {
            if (env_overrides(ld->cfg, val, why, sizeof why) < 0) goto bad;
        } else if (k->type == K_PACING) {
            if (env_pacing(ld->cfg, val, why, sizeof why) < 0) goto bad;
        } else {
            if (check_scalar(k, val, strlen(val), &num, why, sizeof why) < 0) goto bad;
            if (store_scalar(ld->cfg, k, val, num) < 0) {
                snprintf(why, sizeof why, "out of memory");
                goto bad;
            }
        }
        continue;
    bad:
        return fail(ld->err, "environment variable %s: %s", k->env, why);
    }
    return 0;
}

static int apply_flags(struct load *ld, const struct config_flags *flags)
{
    const struct { const char *name; const char *val; } given[] = {
        {"host", flags->host}, {"port", flags->port}, {"workers", flags->workers},
        {"log_level", flags->log_level}, {"ring_size", flags->ring_size},
    };
    char why[WHY];
    for (size_t g = 0; g < sizeof given / sizeof given[0]; g++) {
        size_t idx;
        const struct key *k = key_by_name(given[g].name, &idx);
        uint64_t num = 0;
        if (!given[g].val || !k) continue;
        if (check_scalar(k, given[g].val, strlen(given[g].val), &num, why, sizeof why) < 0)
            return fail(ld->err, "%s: %s", k->flag, why);
        if (store_scalar(ld->cfg, k, given[g].val, num) < 0)
            return fail(ld->err, "%s: out of memory", k->flag);
        ld->layer[idx] = L_FLAG;
    }
    return 0;
}

/* ---------------------------------------------------- cross-field checks */

/* "where key `name` was set: " for messages about several keys. */
static void blame(const struct load *ld, const char *name, char *out, size_t n)
{
    size_t i;
    const struct key *k = key_by_name(name, &i);
    switch (k ? ld->layer[i] : L_DEFAULT) {
    case L_FILE: snprintf(out, n, "%s:%" PRIu32 ": key '%s'", ld->path, ld->line[i], name); break;
    case L_ENV: snprintf(out, n, "environment variable %s", k->env); break;
    case L_FLAG: snprintf(out, n, "%s", k->flag); break;
    default: snprintf(out, n, "configuration: key '%s'", name); break;
    }
}

/* Of two keys, the one set by the later layer (flags > env > file > default). */
static const char *later(const struct load *ld, const char *a, const char *b)
{
    size_t ia = 0, ib = 0;
    key_by_name(a, &ia);
    key_by_name(b, &ib);
    return ld->layer[ib] > ld->layer[ia] ? b : a;
}

static int cross_fail(const struct load *ld, const char *a, const char *b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cross_fail(const struct load *ld, const char *a, const char *b, const char *fmt, ...)
{
    char where[200], why[WHY];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    blame(ld, b ? later(ld, a, b) : a, where, sizeof where);
    return fail(ld->err, "%s: %s", where, why);
}

static int check_log_names(const struct load *ld, const struct key *k, int list)
{
    const struct config_log *logs = cfield(ld->cfg, k->off);
    size_t n = *(const size_t *)cfield(ld->cfg, k->count_off), idx = 0;
    key_by_name(k->name, &idx);
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            if (strcmp(logs[i].name, logs[j].name) != 0) continue;
            char q[64];
            quoted(q, sizeof q, logs[i].name, strlen(logs[i].name));
            if (ld->layer[idx] == L_FILE)
                return fail(ld->err, "%s:%" PRIu32 ": key '%s[%zu].name': duplicate name %s "
                            "(also %s[%zu], line %" PRIu32 ")", ld->path,
                            ld->item_line[list][i], k->name, i, q, k->name, j,
                            ld->item_line[list][j]);
            return fail(ld->err, "environment variable %s: duplicate name %s (entries %zu and %zu)",
                        k->env, q, j, i);
        }
    return 0;
}

/* cors.allowed_origins: "*" alone, or origins "scheme://host[:port]" (no
 * path, no trailing slash: a browser's Origin header never has one). */
static int check_origins(const struct load *ld)
{
    const char *p = ld->cfg->cors.allowed_origins;
    size_t n = 0;
    bool star = false;
    while (p && *p) {
        size_t len = strcspn(p, ", \t");
        if (len == 0) {
            p++;
            continue;
        }
        char q[80];
        quoted(q, sizeof q, p, len);
        if (!origin_ok(p, len))
            return cross_fail(ld, "cors.allowed_origins", NULL,
                              "cors.allowed_origins: %s is not an origin (\"*\" or "
                              "\"https://host[:port]\", no path)", q);
        star |= len == 1 && *p == '*';
        n++;
        p += len;
    }
    if (star && n > 1)
        return cross_fail(ld, "cors.allowed_origins", NULL,
                          "cors.allowed_origins: \"*\" allows every origin; list no others with it");
    return 0;
}

/* The stream paths, their "/example.json" companions and the fixed
 * endpoints must all differ: a request path names one thing. */
static int check_stream_paths(const struct load *ld)
{
    static const char *const names[] = {"streams.lite_path", "streams.full_path",
                                        "streams.domains_path", "streams.sse_path"};
    static const char *const fixed[] = {"/health", "/health/deep", "/metrics", "/latest.json"};
    const struct config *c = ld->cfg;
    const char *p[4] = {c->streams.lite_path, c->streams.full_path, c->streams.domains_path,
                        c->streams.sse_path};
    char ex[3][MAX_PATH + 16];
    for (int i = 0; i < 3; i++)
        snprintf(ex[i], sizeof ex[i], "%s/example.json", strcmp(p[i], "/") == 0 ? "" : p[i]);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < i; j++)
            if (strcmp(p[i], p[j]) == 0)
                return cross_fail(ld, names[i], names[j], "%s and %s are both \"%s\"", names[j],
                                  names[i], p[i]);
        for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
            if (strcmp(p[i], fixed[k]) == 0)
                return cross_fail(ld, names[i], NULL, "%s \"%s\" is a fixed endpoint", names[i], p[i]);
        for (int j = 0; j < 3; j++)
            if (strcmp(p[i], ex[j]) == 0)
                return cross_fail(ld, names[i], names[j], "%s \"%s\" is the example of %s", names[i],
                                  p[i], names[j]);
    }
    return 0;
}

/* The network edge's keys that depend on each other, and the TLS files
 * (read and matched here, so a bad certificate is refused at start and on
 * reload with the key that names it). */
static int edge_cross_check(const struct load *ld)
{
    const struct config *c = ld->cfg;
    if (c->proxy_protocol && c->trusted_proxies[0] == '\0')
        return cross_fail(ld, "proxy_protocol", "trusted_proxies",
                          "proxy_protocol is true but trusted_proxies is empty; list the "
                          "addresses of the proxies that send the PROXY header");
    bool cert = c->tls.cert_file[0] != '\0', key = c->tls.key_file[0] != '\0';
    if (cert != key)
        return cross_fail(ld, cert ? "tls.cert_file" : "tls.key_file", NULL,
                          "tls.cert_file and tls.key_file must be set together");
    if (c->tls.plain_port && !cert)
        return cross_fail(ld, "tls.plain_port", NULL,
                          "tls.plain_port is set but TLS is off (no tls.cert_file)");
    if (c->tls.plain_port && c->tls.plain_port == c->port)
        return cross_fail(ld, "tls.plain_port", "port", "tls.plain_port must differ from port");
    if (cert) {
        char why[WHY];
        const char *bad = NULL;
        if (tls_files_check(c->tls.cert_file, c->tls.key_file, &bad, why, sizeof why) < 0)
            return cross_fail(ld, bad, NULL, "%s", why);
    }
    /* the access log file: not a directory; it, or its directory when it
     * does not exist yet, writable (the workers open it with O_CREAT) */
    const char *ap = c->access_log.path;
    if (c->access_log.enabled && ap[0]) {
        struct stat st;
        if (stat(ap, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                return cross_fail(ld, "access_log.path", NULL, "%s is a directory; name a file", ap);
            if (access(ap, W_OK) != 0)
                return cross_fail(ld, "access_log.path", NULL, "%s: %s", ap, strerror(errno));
        } else {
            char dir[4096];
            const char *slash = strrchr(ap, '/');
            size_t n = slash ? (size_t)(slash - ap) : 0;
            if (n >= sizeof dir)
                return cross_fail(ld, "access_log.path", NULL, "%s: path too long", ap);
            memcpy(dir, slash ? ap : ".", slash ? n : 1);
            dir[slash ? (n ? n : 1) : 1] = '\0';   /* "/x" -> "/" */
            if (access(dir, W_OK) != 0)
                return cross_fail(ld, "access_log.path", NULL, "cannot create %s: directory %s: %s", ap, dir,
                                  strerror(errno));
        }
    }
    return 0;
}

static int cross_check(const struct load *ld)
{
    const struct config *c = ld->cfg;
    if (c->auth.enabled && c->auth.n_tokens == 0)
        return cross_fail(ld, "auth.enabled", NULL,
                          "auth is enabled but auth.tokens is empty; add a token "
                          "(auth.tokens or CERTSTREAM_AUTH_TOKENS)");
    if (c->ct_log.retry_initial_delay_ms > c->ct_log.retry_max_delay_ms)
        return cross_fail(ld, "ct_log.retry_initial_delay_ms", "ct_log.retry_max_delay_ms",
                          "ct_log.retry_initial_delay_ms (%" PRIu32 ") is greater than "
                          "ct_log.retry_max_delay_ms (%" PRIu32 ")",
                          c->ct_log.retry_initial_delay_ms, c->ct_log.retry_max_delay_ms);
    if (c->keepalive.idle_timeout_secs <= c->keepalive.ping_interval_secs)
        return cross_fail(ld, "keepalive.idle_timeout_secs", "keepalive.ping_interval_secs",
                          "keepalive.idle_timeout_secs (%" PRIu32 ") must be greater than "
                          "keepalive.ping_interval_secs (%" PRIu32 "), or healthy clients "
                          "are closed", c->keepalive.idle_timeout_secs,
                          c->keepalive.ping_interval_secs);
    if (c->limits.slow_client_bytes && c->limits.slow_client_bytes >= c->ring_size)
        return cross_fail(ld, "limits.slow_client_bytes", "ring_size",
                          "limits.slow_client_bytes (%" PRIu32 ") must be below ring_size (%" PRIu64 "): "
                          "a client that far behind is overwritten before it can be closed",
                          c->limits.slow_client_bytes, c->ring_size);
    if (c->limits.max_message_bytes < c->limits.max_frame_bytes)
        return cross_fail(ld, "limits.max_message_bytes", "limits.max_frame_bytes",
                          "limits.max_message_bytes (%" PRIu32 ") is less than "
                          "limits.max_frame_bytes (%" PRIu32 ")",
                          c->limits.max_message_bytes, c->limits.max_frame_bytes);
    if (c->connection_limit.enabled &&
        c->connection_limit.per_ip_limit > c->connection_limit.max_connections)
        return cross_fail(ld, "connection_limit.per_ip_limit", "connection_limit.max_connections",
                          "connection_limit.per_ip_limit (%" PRIu32 ") is greater than "
                          "connection_limit.max_connections (%" PRIu32 ")",
                          c->connection_limit.per_ip_limit, c->connection_limit.max_connections);
    if (c->hot_reload.enabled && c->hot_reload.watch_path[0] == '\0' && !c->source_path)
        return cross_fail(ld, "hot_reload.enabled", NULL,
                          "hot_reload.enabled is true but there is no configuration file to "
                          "watch; set hot_reload.watch_path");
    if (strcmp(c->ingest.source, "nats") == 0 && c->nats.publish)
        return cross_fail(ld, "nats.publish", "ingest.source",
                          "nats.publish is true but ingest.source is nats: an edge node "
                          "consumes the stream and does not publish to it");
    uint64_t age = 0, window = 0;
    if (config_duration_secs(c->nats.max_age, &age) == 0 &&
        config_duration_secs(c->nats.duplicate_window, &window) == 0 && window > age)
        return cross_fail(ld, "nats.duplicate_window", "nats.max_age",
                          "nats.duplicate_window (%s) is longer than nats.max_age (%s)",
                          c->nats.duplicate_window, c->nats.max_age);
    if (check_stream_paths(ld) < 0) return -1;
    if (check_origins(ld) < 0)
        return -1;
    if (edge_cross_check(ld) < 0) return -1;
    size_t ic, is;
    if (check_log_names(ld, key_by_name("custom_logs", &ic), 0) < 0 ||
        check_log_names(ld, key_by_name("static_logs", &is), 1) < 0)
        return -1;
    return 0;
}

/* --------------------------------------------------------------- loading */

/* Frees what the walk read and merge_file did not move into the config. */
static void load_release(struct load *ld)
{
    free(ld->nats_url);
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < CONFIG_MAX_LOGS; i++) override_clear(&ld->item_ov[l][i]);
    free_overrides(ld->ov, &ld->n_ov);
    free_pacing(ld->pacing, &ld->n_pacing);
    free(ld);
}

static int load_init(struct load *ld, struct config *cfg, struct config_error *err)
{
    memset(ld, 0, sizeof *ld);
    ld->cfg = cfg;
    ld->err = err;
    err->message[0] = '\0';
    config_defaults(cfg);
    if (!defaults_ok(cfg)) return fail(err, "configuration: out of memory");
    return 0;
}

int config_load_buffer(struct config *cfg, const char *data, size_t len, const char *name,
                       struct config_error *err)
{
    struct load *ld = malloc(sizeof *ld);
    int rc = -1;
    if (!ld) { memset(cfg, 0, sizeof *cfg); return fail(err, "configuration: out of memory"); }
    if (load_init(ld, cfg, err) < 0) goto err;
    ld->path = name;
    if (len > CONFIG_MAX_FILE_BYTES) {
        fail(err, "%s: file is %zu bytes, more than the %d-byte limit for a configuration file",
             name, len, CONFIG_MAX_FILE_BYTES);
        goto err;
    }
    rc = load_document(ld, data, len);
    if (rc < 0 || (rc = cross_check(ld)) < 0) goto err;
    load_release(ld);
    return 0;
err:
    load_release(ld);
    config_free(cfg);
    return rc == -2 ? -2 : -1;
}

/* Finds the file: --config, $CERTSTREAM_CONFIG, ./config.yaml, ./config.yml,
 * system_path. *path is NULL when none exists (built-in defaults only);
 * *label prefixes messages about an explicitly named path. */
static int find_file(const struct config_flags *flags, char *const *env, const char *system_path,
                     const char **path, const char **label, struct config_error *err)
{
    const char *search[] = {"config.yaml", "config.yml", system_path};
    struct stat st;
    *path = NULL;
    *label = "";
    if (flags && flags->config_path) {
        *label = "--config ";
        if (!flags->config_path[0]) return fail(err, "--config: empty path");
        *path = flags->config_path;
        return 0;
    }
    const char *e = env_get(env, "CERTSTREAM_CONFIG");
    if (e) {
        *label = "environment variable CERTSTREAM_CONFIG: ";
        if (!e[0]) return fail(err, "environment variable CERTSTREAM_CONFIG: empty path");
        *path = e;
        return 0;
    }
    for (size_t i = 0; i < 3; i++) {
        if (!search[i]) continue;
        if (stat(search[i], &st) == 0) { *path = search[i]; return 0; }
        if (errno != ENOENT && errno != ENOTDIR)
            return fail(err, "%s: %s", search[i], strerror(errno));
    }
    return 0;
}

int config_load_search(struct config *cfg, const struct config_flags *flags, char *const *env,
                       const char *system_path, struct config_error *err)
{
    static const struct config_flags none;
    const char *path, *label;
    char *buf = NULL;
    size_t len = 0;
    struct load *ld = malloc(sizeof *ld);
    if (!flags) flags = &none;
    if (!ld) { memset(cfg, 0, sizeof *cfg); return fail(err, "configuration: out of memory"); }
    if (load_init(ld, cfg, err) < 0) goto err;
    if (find_file(flags, env, system_path, &path, &label, err) < 0) goto err;
    if (path) {
        if (read_file(path, label, &buf, &len, err) < 0) goto err;
        if (!(cfg->source_path = strdup(path))) { fail(err, "%s: out of memory", path); goto err; }
        ld->path = cfg->source_path;
        if (load_document(ld, buf, len) < 0) goto err;
        free(buf);
        buf = NULL;
    }
    if (apply_env(ld, env) < 0 || apply_flags(ld, flags) < 0 || cross_check(ld) < 0) goto err;
    load_release(ld);
    return 0;
err:
    free(buf);
    load_release(ld);
    config_free(cfg);
    return -1;
}

int config_load(struct config *cfg, const struct config_flags *flags, char *const *env,
                struct config_error *err)
{
    return config_load_search(cfg, flags, env, "/etc/certstream/config.yaml", err);
}

/* -------------------------------------------------------------- printing */

static void print_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void print_override(FILE *f, const struct config_log_override *o, const char *indent)
{
    if (o->batch_size) fprintf(f, "%sbatch_size: %" PRIu32 "\n", indent, o->batch_size);
    if (o->poll_interval_ms) fprintf(f, "%spoll_interval_ms: %" PRIu32 "\n", indent, o->poll_interval_ms);
    if (o->fetch_concurrency) fprintf(f, "%sfetch_concurrency: %" PRIu32 "\n", indent, o->fetch_concurrency);
    if (o->expected_log_id) fprintf(f, "%sexpected_log_id: \"%s\"\n", indent, o->expected_log_id);
    if (o->enabled) fprintf(f, "%senabled: %s\n", indent, o->enabled > 0 ? "true" : "false");
}

static void print_logs(FILE *f, const struct config_log *logs, size_t n)
{
    if (n == 0) { fputs(" []\n", f); return; }
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        fputs("  - name: ", f);
        print_str(f, logs[i].name);
        fputs("\n    url: ", f);
        print_str(f, logs[i].url);
        fputc('\n', f);
        print_override(f, &logs[i].o, "    ");
    }
}

static void print_maps(FILE *f, const struct config *cfg, enum ktype t)
{
    size_t n = t == K_OVERRIDES ? cfg->n_log_overrides : cfg->n_operator_pacing;
    if (n == 0) { fputs(" {}\n", f); return; }
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        fputs("  ", f);
        print_str(f, t == K_OVERRIDES ? cfg->log_overrides[i].match : cfg->operator_pacing[i].operator_name);
        fputs(":\n", f);
        if (t == K_OVERRIDES) {
            print_override(f, &cfg->log_overrides[i], "    ");
        } else {
            uint32_t m = cfg->operator_pacing[i].milli_rps;
            fprintf(f, "    requests_per_second: %" PRIu32 ".%03" PRIu32 "\n", m / 1000, m % 1000);
        }
    }
}

/* YAML that config_load reads back to the same settings, except that auth
 * tokens are printed as "***": --check-config output ends up in terminals,
 * logs and bug reports, and must not leak credentials. */
void config_print(const struct config *cfg, void *file)
{
    FILE *f = file;
    char section[40] = "";
    fprintf(f, "# certstream-server effective configuration\n# source: %s\n",
            cfg->source_path ? cfg->source_path : "built-in defaults");
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *dot = strchr(k->name, '.'), *leaf = k->name;
        const void *p = cfield(cfg, k->off);
        if (dot) {
            size_t sl = (size_t)(dot - k->name);
            if (strlen(section) != sl || strncmp(section, k->name, sl) != 0) {
                snprintf(section, sizeof section, "%.*s", (int)sl, k->name);
                fprintf(f, "%s:\n", section);
            }
            leaf = dot + 1;
            fputs("  ", f);
        } else {
            section[0] = '\0';
        }
        fprintf(f, "%s:", leaf);
        switch (k->type) {
        case K_BOOL: fprintf(f, " %s\n", *(const bool *)p ? "true" : "false"); break;
        case K_U16: fprintf(f, " %u\n", (unsigned)*(const uint16_t *)p); break;
        case K_U32: fprintf(f, " %" PRIu32 "\n", *(const uint32_t *)p); break;
        case K_SIZE: {
            char sz[32];
            size_str(sz, sizeof sz, *(const uint64_t *)p);
            fprintf(f, " %s\n", sz);
            break;
        }
        case K_TOKENS:
            if (cfg->auth.n_tokens == 0) { fputs(" []\n", f); break; }
            fputs("  # redacted\n", f);
            for (size_t t = 0; t < cfg->auth.n_tokens; t++) fputs("    - \"***\"\n", f);
            break;
        case K_LOGS:
            print_logs(f, p, *(const size_t *)cfield(cfg, k->count_off));
            break;
        case K_OVERRIDES:
        case K_PACING:
            print_maps(f, cfg, k->type);
            break;
        default:
            fputc(' ', f);
            print_str(f, *(char *const *)p ? *(char *const *)p : "");
            fputc('\n', f);
            break;
        }
    }
}

/* ------------------------------------------------------------- comparing */

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool override_same(const struct config_log_override *a, const struct config_log_override *b)
{
    return str_eq(a->match, b->match) && a->batch_size == b->batch_size &&
           a->poll_interval_ms == b->poll_interval_ms && a->fetch_concurrency == b->fetch_concurrency &&
           str_eq(a->expected_log_id, b->expected_log_id) && a->enabled == b->enabled;
}

static bool key_same(const struct key *k, const struct config *a, const struct config *b,
                     int ignore_tokens)
{
    const void *pa = cfield(a, k->off), *pb = cfield(b, k->off);
    bool same = true;
    switch (k->type) {
    case K_BOOL: same = *(const bool *)pa == *(const bool *)pb; break;
    case K_U16: same = *(const uint16_t *)pa == *(const uint16_t *)pb; break;
    case K_U32: same = *(const uint32_t *)pa == *(const uint32_t *)pb; break;
    case K_SIZE: same = *(const uint64_t *)pa == *(const uint64_t *)pb; break;
    case K_TOKENS:
        same = a->auth.n_tokens == b->auth.n_tokens;
        for (size_t t = 0; same && !ignore_tokens && t < a->auth.n_tokens; t++)
            same = str_eq(a->auth.tokens[t], b->auth.tokens[t]);
        break;
    case K_LOGS: {
        size_t n = *(const size_t *)cfield(a, k->count_off);
        const struct config_log *la = pa, *lb = pb;
        same = n == *(const size_t *)cfield(b, k->count_off);
        for (size_t t = 0; same && t < n; t++)
            same = str_eq(la[t].name, lb[t].name) && str_eq(la[t].url, lb[t].url) &&
                   override_same(&la[t].o, &lb[t].o);
        break;
    }
    case K_OVERRIDES:
        same = a->n_log_overrides == b->n_log_overrides;
        for (size_t t = 0; same && t < a->n_log_overrides; t++)
            same = override_same(&a->log_overrides[t], &b->log_overrides[t]);
        break;
    case K_PACING:
        same = a->n_operator_pacing == b->n_operator_pacing;
        for (size_t t = 0; same && t < a->n_operator_pacing; t++)
            same = str_eq(a->operator_pacing[t].operator_name, b->operator_pacing[t].operator_name) &&
                   a->operator_pacing[t].milli_rps == b->operator_pacing[t].milli_rps;
        break;
    default: same = str_eq(*(char *const *)pa, *(char *const *)pb); break;
    }
    return same;
}

const char *config_diff(const struct config *a, const struct config *b, int ignore_tokens)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!key_same(&keys[i], a, b, ignore_tokens))
            return keys[i].name;
    return NULL;
}

size_t config_changed_keys(const struct config *a, const struct config *b, const char **names,
                           size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < NKEYS; i++)
        if (!key_same(&keys[i], a, b, 0)) {
            if (n < max) names[n] = keys[i].name;
            n++;
        }
    return n;
}
