/* api.c - the read-only REST API: /api/stats, /api/logs, /api/cert/{hash}.
 *
 * JSON for people and scripts, from the same shared counters as /metrics
 * (docs/wire-format.md has the shapes). Each answer is built in one jbuf;
 * nothing here writes shared state. */
#include "fanout/fanout_internal.h"

#include "common/clock.h"
#include "fanout/certhash.h"
#include "fanout/certindex.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const fmt_names[RING_NFORMATS] = { "full", "lite", "domains" };

static const char *health_str(uint32_t h)
{
    switch (h) {
    case LOG_HEALTHY: return "healthy";
    case LOG_DEGRADED: return "degraded";
    case LOG_UNHEALTHY: return "unhealthy";
    default: return "unknown";
    }
}

/* The newest complete rate sample and the one closest to 60 s before it. */
static bool rate_window(const struct stats_server *sv, struct stats_rate_sample *now,
                        struct stats_rate_sample *then)
{
    struct stats_rate_sample v[STATS_RATE_SAMPLES];
    unsigned n = 0;
    for (unsigned i = 0; i < STATS_RATE_SAMPLES; i++) {
        const struct stats_rate_sample *r = &sv->rate[i];
        uint64_t ms = __atomic_load_n(&r->ms, __ATOMIC_ACQUIRE);
        if (ms == 0) continue;
        v[n] = (struct stats_rate_sample){ ms, stats_log_load(&r->published), stats_log_load(&r->sent),
                                          stats_log_load(&r->bytes) };
        if (__atomic_load_n(&r->ms, __ATOMIC_ACQUIRE) == ms) n++;
    }
    if (n < 2) return false;
    unsigned newest = 0;
    for (unsigned i = 1; i < n; i++)
        if (v[i].ms > v[newest].ms) newest = i;
    unsigned best = newest;
    for (unsigned i = 0; i < n; i++) {
        if (v[i].ms >= v[newest].ms || v[newest].ms - v[i].ms > 61000) continue;
        if (best == newest || v[i].ms < v[best].ms) best = i;
    }
    if (best == newest) return false;
    *now = v[newest];
    *then = v[best];
    return true;
}

static double per_sec(uint64_t a, uint64_t b, uint64_t ms)
{
    return b > a && ms ? (double)(b - a) * 1000.0 / (double)ms : 0.0;
}

void route_api_stats(struct worker *w, struct jbuf *b)
{
    struct stats *s = w->stats;
    const struct stats_server *sv = stats_server(s);
    struct health_summary h;
    health_evaluate(s, &h);
    worker_publish_counters(w);
    uint64_t started = stats_started(s), now = (uint64_t)time(NULL), sent = 0, clients = 0;
    for (int f = 0; f < RING_NFORMATS; f++) sent += stats_sum(s, (enum stat_id)(ST_MSG_SENT_FULL + f));
    for (int id = ST_CONN_WS_FULL; id <= ST_CONN_SSE_DOMAINS; id++) clients += stats_sum(s, (enum stat_id)id);
    jb_printf(b, "{\"status\":\"%s\",\"uptime_secs\":%" PRIu64 ",\"started\":%" PRIu64 ","
                 "\"totals\":{\"entries_published\":%" PRIu64 ",\"duplicates_filtered\":%" PRIu64
                 ",\"parse_failures\":%" PRIu64 ",\"messages_sent\":%" PRIu64 ",\"bytes_sent\":%" PRIu64
                 ",\"slow_client_drops\":%" PRIu64 "},",
              h.status, started && now > started ? now - started : 0, started, stats_sum(s, ST_ENTRIES_PUBLISHED),
              stats_sum(s, ST_DEDUP_DROPPED), stats_sum(s, ST_PARSE_FAILURES), sent, stats_sum(s, ST_BYTES_SENT),
              stats_sum(s, ST_SLOW_DISCONNECTS));
    struct stats_rate_sample a, z;
    if (rate_window(sv, &z, &a)) {
        uint64_t ms = z.ms - a.ms;
        jb_printf(b, "\"rates\":{\"window_secs\":%.1f,\"entries_published_per_sec\":%.2f,"
                     "\"messages_sent_per_sec\":%.2f,\"bytes_sent_per_sec\":%.1f},",
                  (double)ms / 1000.0, per_sec(a.published, z.published, ms), per_sec(a.sent, z.sent, ms),
                  per_sec(a.bytes, z.bytes, ms));
    } else {
        jb_lit(b, "\"rates\":null,");
    }
    jb_printf(b, "\"clients\":{\"total\":%" PRIu64, clients);
    for (int p = 0; p < 2; p++) {
        jb_printf(b, ",\"%s\":{", p ? "sse" : "websocket");
        for (int f = 0; f < RING_NFORMATS; f++)
            jb_printf(b, "%s\"%s\":%" PRIu64, f ? "," : "", fmt_names[f],
                      stats_sum(s, (enum stat_id)((p ? ST_CONN_SSE_FULL : ST_CONN_WS_FULL) + f)));
        jb_lit(b, "}");
    }
    unsigned fanout = 0, ingest = 0;
    stats_get_workers(s, &fanout, &ingest);
    jb_printf(b, "},\"logs\":{\"total\":%u,\"healthy\":%u,\"degraded\":%u,\"unhealthy\":%u},"
                 "\"workers\":{\"fanout\":%u,\"ingest\":%u}}",
              h.logs_total, h.healthy, h.degraded, h.unhealthy, fanout, ingest);
}

void route_api_logs(struct worker *w, struct jbuf *b)
{
    struct stats *s = w->stats;
    unsigned n = stats_log_count(s);
    if (n > STATS_MAX_LOGS) n = STATS_MAX_LOGS;
    jb_lit(b, "{\"logs\":[");
    for (unsigned i = 0; i < n; i++) {
        const struct stats_log *l = stats_log(s, i);
        uint64_t tree = stats_log_load(&l->tree_size), next = stats_log_load(&l->next_index);
        uint64_t head_ts = stats_log_load(&l->head_timestamp_ms), pos_ts = stats_log_load(&l->position_timestamp_ms);
        uint64_t lag = tree > next ? tree - next : 0;
        double lag_s = lag && head_ts > pos_ts && pos_ts ? (double)(head_ts - pos_ts) / 1000.0 : 0.0;
        if (i) jb_put(b, ",", 1);
        jb_lit(b, "{\"name\":");
        jb_str(b, l->name, strnlen(l->name, sizeof l->name));
        jb_lit(b, ",\"url\":");
        jb_str(b, l->url, strnlen(l->url, sizeof l->url));
        jb_lit(b, ",\"operator\":");
        jb_str(b, l->operator_name, strnlen(l->operator_name, sizeof l->operator_name));
        jb_printf(b, ",\"kind\":\"%s\",\"health\":\"%s\",\"tree_size\":%" PRIu64 ",\"next_index\":%" PRIu64
                     ",\"lag_entries\":%" PRIu64 ",\"lag_seconds\":%.3f,\"entries_published\":%" PRIu64
                     ",\"parse_failures\":%" PRIu64 ",\"duplicates_filtered\":%" PRIu64 ",\"requests\":%" PRIu64
                     ",\"retries\":%" PRIu64 ",\"consecutive_failures\":%u,\"last_success\":%.3f,\"failures\":{",
                  l->kind == 0 ? "rfc6962" : l->kind == 1 ? "static" : "loglist",
                  health_str(__atomic_load_n(&l->health, __ATOMIC_RELAXED)), tree, next, lag, lag_s,
                  stats_log_load(&l->entries), stats_log_load(&l->parse_failures), stats_log_load(&l->duplicates),
                  stats_log_load(&l->requests), stats_log_load(&l->retries),
                  __atomic_load_n(&l->consecutive_failures, __ATOMIC_RELAXED),
                  (double)stats_log_load(&l->last_success_ms) / 1000.0);
        for (unsigned r = 0; r < STATS_NFAIL; r++)
            jb_printf(b, "%s\"%s\":%" PRIu64, r ? "," : "", stats_fail_name(r), stats_log_load(&l->failures[r]));
        jb_lit(b, "}}");
    }
    jb_lit(b, "]}");
}

int route_api_cert(struct worker *w, struct http_str hash, struct jbuf *b)
{
    uint8_t h[32];
    size_t hl = certhash_parse(hash.p, hash.len, h);
    if (hl == 0) {
        jb_lit(b, "{\"error\":\"not a SHA-256 (64 hex digits) or SHA-1 (40 hex digits) hash\"}");
        return 400;
    }
    if (certindex_lookup(w, h, hl, b)) return 200;
    b->len = 0;
    jb_lit(b, "{\"error\":\"no certificate with this hash in the ring\"}");
    return 404;
}

/* Access-Control-Allow-Origin for an Origin listed in cors.allowed_origins
 * (or any, with "*"); nothing when CORS is off or the origin is not listed.
 * Only simple requests are supported (GET/HEAD without custom headers),
 * which browsers send without a preflight. */
const char *api_cors_headers(const struct config *cfg, const struct http_request *req, char *buf, size_t n)
{
    const char *list = cfg->cors.allowed_origins;
    if (!list || !*list) return "";
    const struct http_str *origin = http_header_get(req, "Origin");
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ", \t");
        if (len == 1 && *p == '*') {
            snprintf(buf, n, "Access-Control-Allow-Origin: *\r\n");
            return buf;
        }
        if (len && origin && origin->len == len && memcmp(origin->p, p, len) == 0 && len < n - 64) {
            snprintf(buf, n, "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n", (int)len, p);
            return buf;
        }
        p += len;
        if (*p) p++;
    }
    snprintf(buf, n, "Vary: Origin\r\n");
    return buf;
}
