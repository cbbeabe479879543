/* config.h - the whole configuration model.
 *
 * Defaults live in code (config_defaults), so the server runs with no file.
 * Precedence: built-in defaults < YAML file < CERTSTREAM_* environment < flags.
 * Every field here is a documented key (docs/configuration.md). */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_TOKENS 64
#define CONFIG_MAX_LOGS 256

/* Per-log overrides (docs/ingest.md "Per-log control"): in a custom_logs /
 * static_logs item, or in log_overrides (keyed by the log's URL or name).
 * 0 / NULL / -1 = not set: the ct_log.* value applies. */
struct config_log_override {
    char *match;                 /* log_overrides: the log's URL or name; NULL in an item */
    uint32_t batch_size;         /* 1..10000 */
    uint32_t poll_interval_ms;   /* 1..86400000 */
    uint32_t fetch_concurrency;  /* 1..32 */
    char *expected_log_id;       /* base64 of the 32-byte log id (SHA-256 of its key) */
    int8_t enabled;              /* 0 not set, 1 true, -1 false */
};

/* operator_pacing: requests per second to one operator, across its logs. */
struct config_pacing {
    char *operator_name;         /* as the log list names it (config logs: their URL's host) */
    uint32_t milli_rps;          /* requests per second x 1000; 0 = not paced */
};

#define CONFIG_MAX_PACING 64

struct config_log {          /* custom_logs[] / static_logs[] item */
    char *name;
    char *url;
    struct config_log_override o;   /* match unused */
};

struct config {
    /* product keys */
    char *host;              /* "0.0.0.0" */
    uint16_t port;           /* 8080 */
    char *log_level;         /* "info": debug|info|warn|error */
    uint32_t buffer_size;    /* 0 = unset; older key: a message-count slow bound and the history
                              * depth (config_history_messages), docs/configuration.md */
    char *ct_logs_url;       /* Google's v3 all_logs_list.json */
    char *ct_logs_signature; /* "optional": required|optional|off (docs/ingest.md) */
    char *ct_logs_public_key;/* "": Google's key (embedded); else a PEM file */

    struct {
        bool websocket, sse, metrics, health, example_json; /* all true */
        bool api;                     /* true: /api/stats, /api/logs, /api/cert/{hash} */
        bool web_page;                /* true: the live page at / */
    } protocols;

    struct {
        char *allowed_origins;        /* "": no CORS; "*" or origins separated by commas/spaces */
    } cors;

    struct {
        char *state_file;             /* "certstream_state.json" */
        uint32_t batch_size;          /* 256: get-entries window */
        uint32_t poll_interval_ms;    /* 1000 */
        uint32_t retry_max_attempts;  /* 3 */
        uint32_t request_timeout_secs;/* 30 */
        /* ours */
        uint32_t fetch_concurrency;   /* 4: get-entries requests in flight per log */
        uint32_t start_overlap;       /* 0: entries re-read behind the saved position at start */
        uint32_t retry_initial_delay_ms; /* 1000 */
        uint32_t retry_max_delay_ms;  /* 60000 */
        uint32_t operator_rate_limit_ms; /* 100: minimum gap between requests to one operator */
        /* positions and memory (docs/ingest.md) */
        char *position_ahead;         /* "wait": saved position beyond the tree size: wait|restart_at_head */
        uint32_t max_response_bytes;  /* 0 = auto (max(batch_size, 256) * 64 KiB): one answer, checked while receiving */
        uint32_t max_inflight_bytes;  /* 64 MiB: all answers held by one ingest process */
        bool list_enabled;            /* true: follow the logs of ct_logs_url */
        bool rfc6962_enabled;         /* true: follow RFC 6962 logs (list and custom_logs) */
        bool static_enabled;          /* true: follow static-ct-api logs (list and static_logs) */
        bool verify_tiles;            /* false: prove tiled entries against the checkpoint (hash tiles) */
    } ct_log;

    struct {
        bool enabled;                 /* false */
        uint32_t max_connections;     /* 10000: across all workers */
        uint32_t per_ip_limit;        /* 100 */
        /* network edge: exact per-address accounting (shm/addrtable.h) */
        uint32_t ipv6_prefix;         /* 64: IPv6 clients are counted per /64 */
        uint32_t address_table_size;  /* 65536: distinct addresses tracked at once */
    } connection_limit;

    struct {
        bool enabled;                 /* false */
        char *tokens[CONFIG_MAX_TOKENS];
        size_t n_tokens;
        char *header_name;            /* "Authorization" */
        bool allow_query_token;       /* false: ?token= also accepted (for browsers) */
    } auth;

    struct {
        bool enabled;                 /* false */
        char *watch_path;             /* "" = the loaded config file */
    } hot_reload;

    struct config_log custom_logs[CONFIG_MAX_LOGS];
    size_t n_custom_logs;
    struct config_log static_logs[CONFIG_MAX_LOGS]; /* static-ct-api (tiled) logs */
    size_t n_static_logs;

    /* log list and per-log control (docs/ingest.md) */
    char *apple_logs_url;             /* "": off; else Apple's log list, merged with ct_logs_url's */
    struct config_log_override log_overrides[CONFIG_MAX_LOGS];
    size_t n_log_overrides;
    struct config_pacing operator_pacing[CONFIG_MAX_PACING];
    size_t n_operator_pacing;

    /* ours */
    uint32_t workers;                 /* 0 = one fanout process per CPU */
    uint64_t ring_size;               /* 64 MiB; power of two, >= 1 MiB */

    struct {
        bool full, lite, domains_only; /* all true */
        /* WebSocket paths (and "<path>/example.json") and the SSE path */
        char *lite_path;              /* "/" */
        char *full_path;              /* "/full-stream" */
        char *domains_path;           /* "/domains-only" */
        char *sse_path;               /* "/sse" */
    } streams;

    struct {
        char *group_by;               /* "operator" | "log" | "single" */
        uint32_t max_processes;       /* 0 = no cap; groups are merged to fit */
        char *source;                 /* "logs" | "nats": where the ring is fed from */
    } ingest;

    struct {
        uint32_t websocket_heartbeat_secs; /* 10: heartbeat text frame */
        uint32_t ping_interval_secs;       /* 15: server Ping */
        uint32_t idle_timeout_secs;        /* 60: close a silent WebSocket client */
        uint32_t sse_heartbeat_secs;       /* 15: ":heartbeat" comment after silence */
    } keepalive;

    struct {
        uint32_t capacity;            /* 1048576 entries */
        uint32_t ttl_secs;            /* 3600 */
    } dedup;

    struct {
        uint32_t max_request_bytes;   /* 8192: request line + headers */
        uint32_t max_headers;         /* 64 */
        uint32_t request_timeout_secs;/* 10: whole request must arrive (slowloris) */
        uint32_t max_frame_bytes;     /* 65536: client WebSocket frame payload */
        uint32_t max_message_bytes;   /* 262144: reassembled client message */
        uint32_t send_buffer_bytes;   /* 1048576: SO_SNDBUF per client; 0 = kernel autotuning */
        /* slow clients (docs/operations.md): a client whose socket is full
         * while it is more than this far behind the newest message is closed */
        uint32_t slow_client_seconds; /* 10: by commit time; 0 = no time bound */
        uint32_t slow_client_bytes;   /* 0 = 3/4 of ring_size: by ring bytes */
    } limits;

    struct {                          /* scale-out, docs/scale-out.md */
        char *url;                    /* "nats://127.0.0.1:4222"; several joined by commas */
        char *stream;                 /* "CERTSTREAM" */
        char *subject_prefix;         /* "certstream" */
        bool publish;                 /* false; true on ingest nodes */
        char *max_age;                /* "24h": stream retention */
        char *duplicate_window;       /* "2m" */
        uint32_t replicas;            /* 1 */
        char *creds_file;             /* "": NATS credentials file (JWT + nkey seed) */
        char *position_file;          /* "certstream_nats_position": edge resume point */
        uint32_t max_pending;         /* 10000: publishes in flight awaiting acknowledgement */
        uint32_t max_lag_secs;        /* 60: edge lag that makes /health/deep degraded */
    } nats;

    /* operations (docs/operations.md) */
    uint32_t watchdog_secs;           /* 10: a child silent this long is killed and replaced; 0 = off */
    uint32_t ring_claim_timeout_ms;   /* 1000: a producer holding a ring claim this long is killed; 0 = off */
    char *log_format;                 /* "text" | "json" */
    char *log_file;                   /* "" = stderr; reopened on SIGUSR1 */
    struct {
        uint32_t drain_timeout_secs;  /* 300: replaced workers close their clients (1001) after this */
    } shutdown;
    struct {
        bool enabled;                 /* true: permessage-deflate offered to WebSocket clients */
        uint32_t min_size;            /* 0: shorter messages are sent uncompressed */
        uint32_t level;               /* 6: zlib level, 1..9 */
        bool shared_context;          /* true: server context takeover with the stream's context (fanout/zchain.h) */
        uint32_t shared_cache_size;   /* 4 MiB: chained frames cached per format in use, per worker */
    } compression;

    struct {
        bool enabled;                 /* true: streams take filter query parameters */
        uint32_t max_per_worker;      /* 4096 distinct filters per worker (429 beyond) */
        uint32_t max_patterns;        /* 64 filter values per client (400 beyond) */
        uint32_t max_pattern_bytes;   /* 256 bytes per value (400 beyond) */
        uint32_t regex_match_limit;   /* 100000: PCRE2 match and depth limit */
    } filters;

    struct {
        char *absent_name_fields;     /* "null" (every name key, null when absent) | "omit" */
    } message_format;
    /* ---- network edge (docs/operations.md): real client address, allow-lists,
     * rate limit on new connections, TLS. CIDR lists are text: entries
     * separated by commas or spaces ("10.0.0.0/8, ::1"); "" = empty. */
    char *trusted_proxies;            /* "": peers whose X-Forwarded-For / X-Real-IP / PROXY header is believed */
    bool proxy_protocol;              /* false: PROXY v1/v2 header required on every connection */
    struct {
        char *streams_allow;          /* "": everyone may stream (and read the JSON endpoints) */
        char *metrics_allow;          /* "": everyone may read /metrics */
    } access;
    struct {
        uint32_t connections_per_minute; /* 0 = off */
        uint32_t burst;               /* 10 */
    } rate_limit;
    struct {
        char *cert_file;              /* "": no TLS; else host:port speaks TLS */
        char *key_file;               /* "" */
        uint16_t plain_port;          /* 0: with TLS, an extra plain listener on this port */
        bool session_tickets;         /* true: RFC 5077 tickets, resumable on any worker */
        uint32_t ticket_rotate_secs;  /* 3600: ticket key rotation period */
    } tls;
    struct {
        bool enabled;                 /* false: no access log */
        char *path;                   /* "": lines go to the server's log (stderr/journal) */
    } access_log;

    /* where it came from: NULL when built-in defaults only */
    char *source_path;
};

/* Error detail for a refused configuration. `message` is one line a person can
 * act on, e.g. "config.yaml:12: key 'port': value 70000 out of range 1..65535". */
struct config_error {
    char message[512];
};

/* Command-line overrides (flags win over env and file). NULL/0 = not given. */
struct config_flags {
    const char *config_path;          /* --config FILE */
    const char *host;                 /* --host */
    const char *port;                 /* --port */
    const char *workers;              /* --workers */
    const char *log_level;            /* --log-level */
    const char *ring_size;            /* --ring-size */
};

/* message_format.absent_name_fields is "null" (the default; also when cfg
 * or the value is missing). */
bool config_absent_names_null(const struct config *cfg);
/* Messages of history a fanout worker indexes (resume, lag, the NATS edge's
 * fill): buffer_size when set, else 500 x limits.slow_client_seconds (the
 * real rate's upper end; 5,000 by default), at least 1,000. */
uint32_t config_history_messages(const struct config *cfg);
/* The byte bound of a slow client: limits.slow_client_bytes, or 3/4 of
 * ring_size when 0. */
uint64_t config_slow_client_bytes(const struct config *cfg);

/* Fills *cfg with built-in defaults (allocates strings). */
void config_defaults(struct config *cfg);

/* Loads the effective configuration: defaults, then the file found by the
 * search order ($CERTSTREAM_CONFIG, ./config.yaml, ./config.yml,
 * /etc/certstream/config.yaml; flags->config_path wins), then env, then flags.
 * env is an environ-style NULL-terminated array (pass `environ`).
 * Returns 0, or -1 with err filled; *cfg is then freed/undefined. */
int config_load(struct config *cfg, const struct config_flags *flags,
                char *const *env, struct config_error *err);

/* Seconds of a duration key ("90s", "2m", "24h", "7d", or plain seconds).
 * 0, or -1 when s is not a duration (a loaded configuration never has one). */
int config_duration_secs(const char *s, uint64_t *secs);

/* Prints the effective configuration as YAML (for --check-config). */
void config_print(const struct config *cfg, void *file /* FILE* */);

void config_free(struct config *cfg);

/* Reload: the names of the keys whose values differ between a and b (at most
 * max are stored; the return value is the full count). Token values are
 * compared but never named beyond "auth.tokens". */
size_t config_changed_keys(const struct config *a, const struct config *b, const char **names,
                           size_t max);

#endif
