/* http_routes.c - bodies of the small HTTP endpoints: /health/deep,
 * /metrics, /example.json, /latest.json. Each builds one response in an
 * jbuf; they read the shared counters and the ring, never write them. */
#include "fanout/fanout_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prometheus label value: backslash, quote and newline escaped. */
static void label_value(struct jbuf *b, const char *s, size_t maxlen)
{
    size_t n = strnlen(s, maxlen);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') jb_put(b, "\\\\", 2);
        else if (s[i] == '"') jb_put(b, "\\\"", 2);
        else if (s[i] == '\n') jb_put(b, "\\n", 2);
        else jb_put(b, &s[i], 1);
    }
}

/* ---- shared helpers --------------------------------------------------------- */

static const char *health_name(uint32_t h)
{
    switch (h) {
    case LOG_HEALTHY: return "healthy";
    case LOG_DEGRADED: return "degraded";
    case LOG_UNHEALTHY: return "unhealthy";
    default: return "unknown";
    }
}

static uint64_t active_connections(const struct stats *s)
{
    uint64_t n = 0;
    for (int id = ST_CONN_WS_FULL; id <= ST_CONN_SSE_DOMAINS; id++) n += stats_sum(s, (enum stat_id)id);
    return n;
}

static uint64_t uptime_secs(const struct stats *s)
{
    uint64_t started = stats_started(s), now = (uint64_t)time(NULL);
    return started && now > started ? now - started : 0;
}

static unsigned log_count(const struct stats *s)
{
    unsigned n = stats_log_count(s);
    return n > STATS_MAX_LOGS ? STATS_MAX_LOGS : n;
}

/* ---- /health/deep ------------------------------------------------------------ */

/* Status: "unhealthy" (503) when more than half of the logs are unhealthy;
 * "degraded" when any log is degraded, unhealthy or not yet polled, or when
 * no log is known yet (the server is up but has nothing to follow: 200, so
 * a load balancer does not pull a freshly started box); else "healthy". */
void route_health_deep(struct worker *w, struct jbuf *b, int *status)
{
    struct stats *s = w->stats;
    unsigned n = log_count(s), healthy = 0, degraded = 0, unhealthy = 0;
    for (unsigned i = 0; i < n; i++) {
        uint32_t h = __atomic_load_n(&stats_log(s, i)->health, __ATOMIC_RELAXED);
        if (h == LOG_HEALTHY) healthy++;
        else if (h == LOG_UNHEALTHY) unhealthy++;
        else degraded++;
    }
    const char *st = "healthy";
    *status = 200;
    if (n > 0 && unhealthy * 2 > n) {
        st = "unhealthy";
        *status = 503;
    } else if (n == 0 || degraded || unhealthy) {
        st = "degraded";
    }
    unsigned fanout = 0, ingest = 0;
    stats_get_workers(s, &fanout, &ingest);
    worker_scan(w);
    jb_printf(b, "{\"status\":\"%s\",\"logs_healthy\":%u,\"logs_degraded\":%u,\"logs_unhealthy\":%u,"
                 "\"logs_total\":%u,\"active_connections\":%" PRIu64 ",\"uptime_secs\":%" PRIu64 ","
                 "\"workers\":{\"fanout\":%u,\"ingest\":%u},"
                 "\"ring\":{\"head_sequence\":%" PRIu64 ",\"tail\":%" PRIu64 ",\"size\":%zu},\"logs\":[",
              st, healthy, degraded, unhealthy, n, active_connections(s), uptime_secs(s), fanout, ingest,
              w->last_seq, ring_tail(w->ring), ring_size(w->ring));
    for (unsigned i = 0; i < n; i++) {
        const struct stats_log *l = stats_log(s, i);
        uint64_t tree = l->tree_size, next = l->next_index;
        if (i) jb_put(b, ",", 1);
        jb_lit(b, "{\"name\":");
        jb_str(b, l->name, strnlen(l->name, sizeof l->name));
        jb_lit(b, ",\"url\":");
        jb_str(b, l->url, strnlen(l->url, sizeof l->url));
        jb_printf(b, ",\"health\":\"%s\",\"tree_size\":%" PRIu64 ",\"next_index\":%" PRIu64
                     ",\"lag\":%" PRIu64 ",\"entries\":%" PRIu64,
                  health_name(l->health), tree, next, tree > next ? tree - next : 0, l->entries);
        if (l->reason[0]) {
            jb_lit(b, ",\"reason\":");
            jb_str(b, l->reason, strnlen(l->reason, sizeof l->reason));
        }
        jb_put(b, "}", 1);
    }
    jb_lit(b, "]}");
}

/* ---- /metrics ------------------------------------------------------------------ */

struct metric {
    enum stat_id id;
    const char *name, *type, *help;
};

/* Counters and gauges with one sample each (the labelled families are below). */
static const struct metric plain_metrics[] = {
    { ST_BYTES_SENT, "certstream_bytes_sent", "counter", "Bytes written to streaming clients." },
    { ST_CONN_ACCEPTED, "certstream_connections_accepted", "counter", "TCP connections accepted." },
    { ST_CONN_REJECTED_LIMIT, "certstream_connections_rejected_limit", "counter",
      "Clients refused with 429 by the connection limits." },
    { ST_AUTH_FAILURES, "certstream_auth_failures", "counter", "Requests refused with 401." },
    { ST_SLOW_DISCONNECTS, "certstream_slow_client_disconnects", "counter",
      "Clients disconnected for falling too far behind the ring." },
    { ST_HTTP_REQUESTS, "certstream_http_requests", "counter", "HTTP requests parsed." },
    { ST_HTTP_BAD_REQUESTS, "certstream_http_bad_requests", "counter",
      "Requests refused as malformed, oversized or timed out." },
    { ST_WS_PROTOCOL_ERRORS, "certstream_websocket_protocol_errors", "counter",
      "WebSocket connections closed for a protocol violation." },
    { ST_IDLE_DISCONNECTS, "certstream_idle_disconnects", "counter",
      "WebSocket clients closed after sending nothing for the idle timeout." },
    { ST_ENTRIES_PUBLISHED, "certstream_entries_published", "counter",
      "Certificates published into the ring." },
    { ST_PARSE_FAILURES, "certstream_parse_failures", "counter",
      "Log entries that could not be parsed (skipped)." },
    { ST_DEDUP_DROPPED, "certstream_dedup_dropped", "counter",
      "Entries dropped as duplicates of a certificate already sent." },
    { ST_CT_REQUESTS, "certstream_ct_requests", "counter", "HTTP requests made to CT logs." },
    { ST_CT_REQUEST_FAILURES, "certstream_ct_request_failures", "counter",
      "Failed HTTP requests to CT logs." },
    { ST_ENTRIES_SKIPPED_UNDECODABLE, "certstream_entries_skipped_undecodable", "counter",
      "Log entries skipped because they did not decode after the answer was fetched again." },
    { ST_ENTRIES_SKIPPED_UNPARSEABLE, "certstream_entries_skipped_unparseable", "counter",
      "Log entries skipped because their certificate could not be rendered." },
    { ST_ANSWERS_REFETCHED, "certstream_ct_answers_refetched", "counter",
      "CT log answers requested again because some entries did not decode." },
    { ST_POSITION_AHEAD, "certstream_ct_position_ahead", "counter",
      "Saved positions found beyond the log's tree size." },
    { ST_TREE_SIZE_SHRANK, "certstream_ct_tree_size_shrank", "counter",
      "Tree heads smaller than one already seen (ignored)." },
    { ST_ANSWERS_TOO_LARGE, "certstream_ct_answers_too_large", "counter",
      "CT log answers refused for exceeding ct_log.max_response_bytes." },
    { ST_INFLIGHT_BUDGET_HITS, "certstream_ct_inflight_budget_hits", "counter",
      "CT log answers dropped because ct_log.max_inflight_bytes was in use." },
    { ST_TILES_VERIFIED, "certstream_ct_tiles_verified", "counter",
      "Data tiles proven against the checkpoint's root hash (ct_log.verify_tiles)." },
    { ST_TILE_VERIFY_FAILURES, "certstream_ct_tile_verify_failures", "counter",
      "Data tiles whose entries did not verify against the checkpoint (held back, alarm)." },
    { ST_CHILD_RESTARTS, "certstream_child_restarts", "counter",
      "Child processes restarted by the supervisor." },
    { ST_WORKER_PANICS, "certstream_worker_panics", "counter",
      "Child processes that died abnormally." },
    { ST_INGEST_RESTARTS, "certstream_ingest_restarts", "counter", "Ingest processes restarted." },
};

static const char *const fmt_names[RING_NFORMATS] = { "full", "lite", "domains" };

static void family(struct jbuf *b, const char *name, const char *type, const char *help)
{
    jb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void route_metrics(struct worker *w, struct jbuf *b)
{
    struct stats *s = w->stats;
    uint64_t total = 0, v[RING_NFORMATS];
    worker_publish_counters(w);
    for (int f = 0; f < RING_NFORMATS; f++) total += v[f] = stats_sum(s, (enum stat_id)(ST_MSG_SENT_FULL + f));
    family(b, "certstream_messages_sent", "counter",
           "Messages delivered to clients (unlabelled: all streams).");
    jb_printf(b, "certstream_messages_sent %" PRIu64 "\n", total);
    for (int f = 0; f < RING_NFORMATS; f++)
        jb_printf(b, "certstream_messages_sent{stream=\"%s\"} %" PRIu64 "\n", fmt_names[f], v[f]);

    family(b, "certstream_connections", "gauge", "Open streaming clients by protocol and stream.");
    for (int f = 0; f < RING_NFORMATS; f++)
        jb_printf(b, "certstream_connections{protocol=\"websocket\",stream=\"%s\"} %" PRId64 "\n",
                  fmt_names[f], (int64_t)stats_sum(s, (enum stat_id)(ST_CONN_WS_FULL + f)));
    for (int f = 0; f < RING_NFORMATS; f++)
        jb_printf(b, "certstream_connections{protocol=\"sse\",stream=\"%s\"} %" PRId64 "\n",
                  fmt_names[f], (int64_t)stats_sum(s, (enum stat_id)(ST_CONN_SSE_FULL + f)));
    family(b, "certstream_active_connections", "gauge", "Open WebSocket and SSE clients, all workers.");
    jb_printf(b, "certstream_active_connections %" PRIu64 "\n", active_connections(s));

    for (size_t i = 0; i < sizeof plain_metrics / sizeof plain_metrics[0]; i++) {
        const struct metric *m = &plain_metrics[i];
        family(b, m->name, m->type, m->help);
        jb_printf(b, "%s %" PRIu64 "\n", m->name, stats_sum(s, m->id));
    }

    worker_scan(w);
    family(b, "certstream_ring_head_sequence", "gauge", "Sequence number of the newest record in the ring.");
    jb_printf(b, "certstream_ring_head_sequence %" PRIu64 "\n", w->last_seq);
    family(b, "certstream_ring_size_bytes", "gauge", "Size of the shared ring.");
    jb_printf(b, "certstream_ring_size_bytes %zu\n", ring_size(w->ring));
    family(b, "certstream_uptime_seconds", "gauge", "Seconds since the server started.");
    jb_printf(b, "certstream_uptime_seconds %" PRIu64 "\n", uptime_secs(s));
    unsigned fanout = 0, ingest = 0;
    stats_get_workers(s, &fanout, &ingest);
    family(b, "certstream_workers", "gauge", "Running child processes by kind.");
    jb_printf(b, "certstream_workers{kind=\"fanout\"} %u\ncertstream_workers{kind=\"ingest\"} %u\n",
              fanout, ingest);

    unsigned n = log_count(s);
    unsigned by_health[4] = { 0 };
    for (unsigned i = 0; i < n; i++) by_health[stats_log(s, i)->health & 3]++;
    family(b, "certstream_logs", "gauge", "CT logs followed, by health.");
    for (unsigned h = 0; h < 4; h++)
        jb_printf(b, "certstream_logs{health=\"%s\"} %u\n", health_name(h), by_health[h]);

    static const char *const per_log[][3] = {
        { "certstream_log_tree_size", "gauge", "Tree size from the log's latest STH or checkpoint." },
        { "certstream_log_next_index", "gauge", "Next entry index to fetch from the log." },
        { "certstream_log_lag", "gauge", "Entries the log has that were not fetched yet." },
        { "certstream_log_entries", "counter", "Entries published from the log." },
        { "certstream_log_healthy", "gauge", "1 if the log is healthy, else 0." },
    };
    for (size_t k = 0; k < sizeof per_log / sizeof per_log[0]; k++) {
        family(b, per_log[k][0], per_log[k][1], per_log[k][2]);
        for (unsigned i = 0; i < n; i++) {
            const struct stats_log *l = stats_log(s, i);
            uint64_t tree = l->tree_size, next = l->next_index, val;
            switch (k) {
            case 0: val = tree; break;
            case 1: val = next; break;
            case 2: val = tree > next ? tree - next : 0; break;
            case 3: val = l->entries; break;
            default: val = l->health == LOG_HEALTHY; break;
            }
            jb_printf(b, "%s{log=\"", per_log[k][0]);
            label_value(b, l->name, sizeof l->name);
            jb_printf(b, "\"} %" PRIu64 "\n", val);
        }
    }
}

/* ---- /example.json and /latest.json ---------------------------------------------- */

/* Copies json[f] of the record at pos; false if it is not a sane record. The
 * caller validates the copy with ring_lapped_since afterwards. */
static bool copy_json(struct worker *w, uint64_t pos, enum ring_format f, struct jbuf *b)
{
    const struct ring_record *rec;
    if (ring_peek(w->ring, pos, &rec) != RING_OK || rec->kind != RING_KIND_MESSAGE) return false;
    struct ring_span sp = rec->json[f];
    uint32_t total = rec->total_len;
    if (sp.len == 0 || sp.off > total || sp.len > total - sp.off) return false;
    jb_put(b, ring_record_bytes(rec) + sp.off, sp.len);
    return true;
}

void route_example(struct worker *w, enum ring_format f, struct jbuf *b)
{
    static const char *const sample[RING_NFORMATS] = { example_sample_full, example_sample_lite,
                                                       example_sample_domains };
    uint64_t pos;
    worker_scan(w);
    if (worker_recent_at(w, 0, &pos) && copy_json(w, pos, f, b) && !ring_lapped_since(w->ring, pos))
        return;
    b->len = 0;
    jb_put(b, sample[f], example_sample_len[f]);
}

#define LATEST_COUNT 25

void route_latest(struct worker *w, struct jbuf *b)
{
    uint64_t pos[LATEST_COUNT];
    size_t mark[LATEST_COUNT];
    unsigned k = 0;
    worker_scan(w);
    jb_lit(b, "{\"messages\":[");
    for (uint64_t back = 0; k < LATEST_COUNT && worker_recent_at(w, back, &pos[k]); back++) {
        mark[k] = b->len;
        if (k) jb_put(b, ",", 1);
        if (!copy_json(w, pos[k], RING_LITE, b)) {
            b->len = mark[k];
            break;
        }
        k++;
    }
    /* newest first: once one copy is found lapped, every older one is too */
    for (unsigned i = 0; i < k; i++) {
        if (ring_lapped_since(w->ring, pos[i])) {
            b->len = mark[i];
            break;
        }
    }
    jb_lit(b, "]}");
}
