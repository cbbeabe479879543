/* metrics.c - /metrics (Prometheus text or OpenMetrics) and /health/deep.
 *
 * Both read the shared counters (shm/stats.h) and answer for the whole
 * server, whichever worker is asked. Every family, its type, labels and
 * meaning are listed in docs/monitoring.md; keep the two in step.
 *
 * Naming: every family follows Prometheus conventions (counters end in
 * _total, units in the name, a family is either unlabelled or labelled),
 * except the eleven names of the product this server replaces
 * (certstream_messages_sent, ...), which dashboards already query and are
 * kept exactly. In OpenMetrics a counter's samples must end in _total, so
 * those eleven counters are declared "unknown" there: the sample name stays
 * what dashboards expect. Label values are bounded: log names, URLs and
 * operators come from the log list (at most STATS_MAX_LOGS rows), workers
 * and roles from the process table; client addresses are never labels. */
#include "fanout/deep.h"
#include "fanout/edge.h"
#include "fanout/fanout_internal.h"

#include "common/clock.h"
#include "common/procinfo.h"
#include "fanout/http_ops.h"
#include "fanout/stream_metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

static const char *kind_name(uint32_t kind)
{
    return kind == 0 ? "rfc6962" : kind == 1 ? "static" : "loglist";
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

static uint64_t lag_entries(const struct stats_log *l)
{
    uint64_t tree = stats_log_load(&l->tree_size), next = stats_log_load(&l->next_index);
    return tree > next ? tree - next : 0;
}

/* Seconds between the newest entry the log has (its tree head's timestamp)
 * and the last entry processed; 0 when caught up or not known yet. */
static double lag_seconds(const struct stats_log *l)
{
    uint64_t head = stats_log_load(&l->head_timestamp_ms), pos = stats_log_load(&l->position_timestamp_ms);
    if (lag_entries(l) == 0 || head == 0 || pos == 0 || head <= pos) return 0;
    return (double)(head - pos) / 1000.0;
}

void health_evaluate(struct stats *s, struct health_summary *h)
{
    memset(h, 0, sizeof *h);
    const struct stats_server *sv = stats_server(s);
    unsigned n = log_count(s);
    h->logs_total = n;
    for (unsigned i = 0; i < n; i++) {
        uint32_t st = __atomic_load_n(&stats_log(s, i)->health, __ATOMIC_RELAXED);
        if (st == LOG_HEALTHY) h->healthy++;
        else if (st == LOG_UNHEALTHY) h->unhealthy++;
        else h->degraded++;
    }
    uint64_t since = stats_log_load(&sv->state_failing_since_ms), now = wall_ms();
    h->state_failing_secs = since && now > since ? (now - since) / 1000 : 0;
    h->state_ok = since == 0;
    h->loglist_ok = !(sv->loglist_configured && __atomic_load_n(&sv->loglist_failing, __ATOMIC_RELAXED));
    h->status = "healthy";
    h->http_status = 200;
    if (n > 0 && h->unhealthy * 2 > n) {
        h->status = "unhealthy";
        h->http_status = 503;
    } else if (n == 0 || h->degraded || h->unhealthy || !h->loglist_ok || ops_stale_processes() ||
               stats_nats_degraded(s) ||
               (since && h->state_failing_secs >= STATE_FAILING_DEGRADED_SECS)) {
        h->status = "degraded";
    }
}

/* ---- NATS (docs/scale-out.md) ------------------------------------------------- */

static const char *nats_role_name(uint32_t role)
{
    return role == NATS_ROLE_PUBLISHER ? "publisher" : "consumer";
}

/* "nats":{...} in /health/deep on a node with a NATS role. */
static void nats_health(struct stats *s, struct jbuf *b)
{
    struct stats_nats *n = stats_nats(s);
    uint32_t role = atomic_load_explicit(&n->role, memory_order_relaxed);
    if (role == NATS_ROLE_NONE) return;
    jb_printf(b, ",\"nats\":{\"role\":\"%s\",\"connected\":%s,\"ready\":%s,\"stream_sequence\":%" PRIu64
                 ",\"lag_messages\":%" PRIu64 ",\"lag_seconds\":%.3f}",
              nats_role_name(role), atomic_load_explicit(&n->connected, memory_order_relaxed) ? "true" : "false",
              role == NATS_ROLE_PUBLISHER || atomic_load_explicit(&n->ready, memory_order_relaxed) ? "true" : "false",
              (uint64_t)atomic_load_explicit(&n->stream_seq, memory_order_relaxed),
              (uint64_t)atomic_load_explicit(&n->lag_msgs, memory_order_relaxed),
              (double)atomic_load_explicit(&n->lag_ms, memory_order_relaxed) / 1000.0);
}

/* ---- /health/deep ------------------------------------------------------------ */

/* Status: "unhealthy" (503) when more than half of the logs are unhealthy;
 * "degraded" when any log is degraded, unhealthy or not yet polled, when no
 * log is known yet (the server is up but has nothing to follow: 200, so a
 * load balancer does not pull a freshly started box), when the log list
 * cannot be fetched (only configured logs are followed), when a child's
 * heartbeat is stale (http_ops.c), or when the state file could not be
 * written for a minute; else "healthy". */
void route_health_deep(struct worker *w, struct jbuf *b, int *status)
{
    struct stats *s = w->stats;
    struct health_summary h;
    health_evaluate(s, &h);
    *status = h.http_status;
    unsigned fanout = 0, ingest = 0;
    stats_get_workers(s, &fanout, &ingest);
    worker_scan(w);
    jb_printf(b, "{\"status\":\"%s\",\"logs_healthy\":%u,\"logs_degraded\":%u,\"logs_unhealthy\":%u,"
                 "\"logs_total\":%u,\"active_connections\":%" PRIu64 ",\"uptime_secs\":%" PRIu64 ","
                 "\"workers\":{\"fanout\":%u,\"ingest\":%u},"
                 "\"ring\":{\"head_sequence\":%" PRIu64 ",\"tail\":%" PRIu64 ",\"size\":%zu,\"oldest\":%" PRIu64 "},"
                 "\"log_list\":{\"ok\":%s},\"state_file\":{\"ok\":%s,\"failing_secs\":%" PRIu64 "},\"logs\":[",
              h.status, h.healthy, h.degraded, h.unhealthy, h.logs_total, active_connections(s), uptime_secs(s),
              fanout, ingest, w->last_seq, ring_tail(w->ring), ring_size(w->ring), ring_oldest_position(w->ring), h.loglist_ok ? "true" : "false",
              h.state_ok ? "true" : "false", h.state_failing_secs);
    for (unsigned i = 0; i < h.logs_total; i++) {
        const struct stats_log *l = stats_log(s, i);
        if (i) jb_put(b, ",", 1);
        jb_lit(b, "{\"name\":");
        jb_str(b, l->name, strnlen(l->name, sizeof l->name));
        jb_lit(b, ",\"url\":");
        jb_str(b, l->url, strnlen(l->url, sizeof l->url));
        jb_printf(b, ",\"health\":\"%s\",\"tree_size\":%" PRIu64 ",\"next_index\":%" PRIu64
                     ",\"lag\":%" PRIu64 ",\"entries\":%" PRIu64,
                  health_name(l->health), stats_log_load(&l->tree_size), stats_log_load(&l->next_index),
                  lag_entries(l), stats_log_load(&l->entries));
        if (l->reason[0]) {   /* why the log is not healthy (docs/ingest.md) */
            jb_lit(b, ",\"reason\":");
            jb_str(b, l->reason, strnlen(l->reason, sizeof l->reason));
        }
        jb_put(b, "}", 1);
    }
    jb_lit(b, "]");
    ops_health_deep(b);
    nats_health(s, b);
    jb_lit(b, "}");
}

/* ---- /metrics: the writer ------------------------------------------------------ */

struct mw {
    struct jbuf *b;
    bool om;              /* OpenMetrics 1.0 */
};

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

enum mtype { M_COUNTER, M_GAUGE, M_PRODUCT_COUNTER };

/* HELP and TYPE of a family. A counter is named with its _total suffix; in
 * OpenMetrics the family name drops it (the samples keep it). */
static void family(struct mw *m, const char *name, enum mtype t, const char *help)
{
    size_t n = strlen(name);
    if (m->om && t == M_COUNTER && n > 6 && strcmp(name + n - 6, "_total") == 0) n -= 6;
    const char *type = t == M_GAUGE ? "gauge" : t == M_COUNTER || !m->om ? "counter" : "unknown";
    jb_printf(m->b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)n, name, help, (int)n, name, type);
}

static void sample_u(struct mw *m, const char *name, uint64_t v)
{
    jb_printf(m->b, "%s %" PRIu64 "\n", name, v);
}

static void sample_d(struct mw *m, const char *name, double v)
{
    jb_printf(m->b, "%s %.3f\n", name, v);
}

/* The labels of a log: log, url, operator, kind. Opens the brace and leaves
 * it open so the caller can add labels or close it. */
static void log_labels_open(struct mw *m, const char *name, const struct stats_log *l)
{
    jb_printf(m->b, "%s{log=\"", name);
    label_value(m->b, l->name, sizeof l->name);
    jb_lit(m->b, "\",url=\"");
    label_value(m->b, l->url, sizeof l->url);
    jb_lit(m->b, "\",operator=\"");
    label_value(m->b, l->operator_name, sizeof l->operator_name);
    jb_printf(m->b, "\",kind=\"%s\"", kind_name(l->kind));
}

/* The product's per-log label set: log only. */
static void log_only_label(struct mw *m, const char *name, const struct stats_log *l)
{
    jb_printf(m->b, "%s{log=\"", name);
    label_value(m->b, l->name, sizeof l->name);
    jb_lit(m->b, "\"}");
}

/* ---- /metrics: the families ------------------------------------------------------ */

static const char *const fmt_names[RING_NFORMATS] = { "full", "lite", "domains" };

/* The eleven names of the product this server replaces, exactly. */
static void render_product(struct mw *m, struct stats *s)
{
    unsigned n = log_count(s), rfc = 0, tiled = 0;
    for (unsigned i = 0; i < n; i++) {
        uint32_t k = stats_log(s, i)->kind;
        rfc += k == 0;
        tiled += k == 1;
    }
    static const struct {
        const char *name, *help;
        size_t off;
        bool static_only;
    } per_log[] = {
        { "certstream_messages_sent", "Certificate messages sent to the stream, by source log.",
          offsetof(struct stats_log, entries), false },
        { "certstream_parse_failures", "Log entries that could not be parsed (skipped), by log.",
          offsetof(struct stats_log, parse_failures), false },
        { "certstream_static_ct_tiles_fetched", "Data tiles fetched from static-ct-api logs.",
          offsetof(struct stats_log, tiles_fetched), true },
        { "certstream_static_ct_entries_parsed", "Entries parsed from static-ct-api data tiles.",
          offsetof(struct stats_log, entries_parsed), true },
        { "certstream_static_ct_checkpoint_errors", "Checkpoints of static-ct-api logs that failed to fetch, parse or verify.",
          offsetof(struct stats_log, checkpoint_errors), true },
    };
    for (size_t k = 0; k < sizeof per_log / sizeof per_log[0]; k++) {
        family(m, per_log[k].name, M_PRODUCT_COUNTER, per_log[k].help);
        for (unsigned i = 0; i < n; i++) {
            const struct stats_log *l = stats_log(s, i);
            if (l->kind > 1 || (per_log[k].static_only && l->kind != 1)) continue;
            log_only_label(m, per_log[k].name, l);
            jb_printf(m->b, " %" PRIu64 "\n", stats_log_load((const uint64_t *)((const char *)l + per_log[k].off)));
        }
    }
    family(m, "certstream_worker_panics", M_PRODUCT_COUNTER, "Fanout workers that died abnormally (and were restarted).");
    sample_u(m, "certstream_worker_panics", stats_sum(s, ST_WORKER_PANICS));
    family(m, "certstream_ct_logs_count", M_GAUGE, "RFC 6962 CT logs followed.");
    sample_u(m, "certstream_ct_logs_count", rfc);
    family(m, "certstream_static_ct_logs_count", M_GAUGE, "Static-ct-api (tiled) CT logs followed.");
    sample_u(m, "certstream_static_ct_logs_count", tiled);
    family(m, "certstream_issuer_cache_size", M_GAUGE, "Issuer certificates cached by the ingest processes.");
    sample_u(m, "certstream_issuer_cache_size", stats_sum(s, ST_ISSUER_CACHE_SIZE));
    family(m, "certstream_ct_logs_refused", M_GAUGE,
           "CT logs not followed because their log id does not match expected_log_id.");
    sample_u(m, "certstream_ct_logs_refused", stats_sum(s, ST_LOGS_REFUSED));
    family(m, "certstream_duplicates_filtered", M_PRODUCT_COUNTER,
           "Entries dropped as duplicates of a certificate already sent.");
    sample_u(m, "certstream_duplicates_filtered", stats_sum(s, ST_DEDUP_DROPPED));
    family(m, "certstream_dedup_cache_size", M_GAUGE, "Live entries in the shared deduplication table.");
    sample_u(m, "certstream_dedup_cache_size", stats_log_load(&stats_server(s)->dedup_size));
    /* Ingest robustness (docs/ingest.md): skips by reason, refetches,
     * positions, bounded answers, verified tiles. */
    static const struct { const char *name; enum stat_id id; const char *help; } ingest_counters[] = {
        { "certstream_entries_skipped_undecodable_total", ST_ENTRIES_SKIPPED_UNDECODABLE,
          "Log entries skipped because they did not decode after the answer was fetched again." },
        { "certstream_entries_skipped_unparseable_total", ST_ENTRIES_SKIPPED_UNPARSEABLE,
          "Log entries skipped because their certificate could not be rendered." },
        { "certstream_ct_answers_refetched_total", ST_ANSWERS_REFETCHED,
          "CT log answers requested again because some entries did not decode." },
        { "certstream_ct_position_ahead_total", ST_POSITION_AHEAD,
          "Saved positions found beyond the log's tree size." },
        { "certstream_ct_tree_size_shrank_total", ST_TREE_SIZE_SHRANK,
          "Tree heads smaller than one already seen (ignored)." },
        { "certstream_ct_answers_too_large_total", ST_ANSWERS_TOO_LARGE,
          "CT log answers refused for exceeding ct_log.max_response_bytes." },
        { "certstream_ct_inflight_budget_hits_total", ST_INFLIGHT_BUDGET_HITS,
          "CT log answers dropped because ct_log.max_inflight_bytes was in use." },
        { "certstream_ct_tiles_verified_total", ST_TILES_VERIFIED,
          "Data tiles proven against the checkpoint's root hash (ct_log.verify_tiles)." },
        { "certstream_ct_tile_verify_failures_total", ST_TILE_VERIFY_FAILURES,
          "Data tiles whose entries did not verify against the checkpoint (held back, alarm)." },
    };
    for (size_t k = 0; k < sizeof ingest_counters / sizeof ingest_counters[0]; k++) {
        family(m, ingest_counters[k].name, M_COUNTER, ingest_counters[k].help);
        sample_u(m, ingest_counters[k].name, stats_sum(s, ingest_counters[k].id));
    }
}

static void render_logs(struct mw *m, struct stats *s)
{
    unsigned n = log_count(s);
    unsigned by_health[4] = { 0 };
    for (unsigned i = 0; i < n; i++) by_health[stats_log(s, i)->health & 3]++;
    family(m, "certstream_logs", M_GAUGE, "CT logs followed, by health.");
    for (unsigned h = 0; h < 4; h++)
        jb_printf(m->b, "certstream_logs{health=\"%s\"} %u\n", health_name(h), by_health[h]);

    enum { V_TREE, V_NEXT, V_LAG, V_LAG_S, V_PUB, V_REQ, V_RETRY, V_DUP, V_LAST_OK, V_FAILS };
    static const struct { const char *name; enum mtype t; const char *help; int v; } fams[] = {
        { "certstream_log_tree_size", M_GAUGE, "Tree size from the log's latest STH or checkpoint.", V_TREE },
        { "certstream_log_next_index", M_GAUGE, "Next entry index to fetch from the log.", V_NEXT },
        { "certstream_log_lag_entries", M_GAUGE, "Entries the log has that were not processed yet.", V_LAG },
        { "certstream_log_lag_seconds", M_GAUGE,
          "Seconds between the log's newest tree head and the last entry processed (0 when caught up).", V_LAG_S },
        { "certstream_log_entries_published_total", M_COUNTER, "Entries of the log published to the stream.", V_PUB },
        { "certstream_log_requests_total", M_COUNTER, "HTTP requests made to the log.", V_REQ },
        { "certstream_log_retries_total", M_COUNTER, "Requests to the log sent again after a failure.", V_RETRY },
        { "certstream_log_duplicates_filtered_total", M_COUNTER,
          "Entries of the log dropped as duplicates of a certificate already sent.", V_DUP },
        { "certstream_log_last_success_timestamp_seconds", M_GAUGE,
          "Unix time of the last successful answer from the log (0: never).", V_LAST_OK },
        { "certstream_log_consecutive_failures", M_GAUGE, "Failed requests to the log since its last success.", V_FAILS },
    };
    for (size_t k = 0; k < sizeof fams / sizeof fams[0]; k++) {
        family(m, fams[k].name, fams[k].t, fams[k].help);
        for (unsigned i = 0; i < n; i++) {
            const struct stats_log *l = stats_log(s, i);
            log_labels_open(m, fams[k].name, l);
            switch (fams[k].v) {
            case V_TREE: jb_printf(m->b, "} %" PRIu64 "\n", stats_log_load(&l->tree_size)); break;
            case V_NEXT: jb_printf(m->b, "} %" PRIu64 "\n", stats_log_load(&l->next_index)); break;
            case V_LAG: jb_printf(m->b, "} %" PRIu64 "\n", lag_entries(l)); break;
            case V_LAG_S: jb_printf(m->b, "} %.3f\n", lag_seconds(l)); break;
            case V_PUB: jb_printf(m->b, "} %" PRIu64 "\n", stats_log_load(&l->entries)); break;
            case V_REQ: jb_printf(m->b, "} %" PRIu64 "\n", stats_log_load(&l->requests)); break;
            case V_RETRY: jb_printf(m->b, "} %" PRIu64 "\n", stats_log_load(&l->retries)); break;
            case V_DUP: jb_printf(m->b, "} %" PRIu64 "\n", stats_log_load(&l->duplicates)); break;
            case V_LAST_OK: jb_printf(m->b, "} %.3f\n", (double)stats_log_load(&l->last_success_ms) / 1000.0); break;
            default: jb_printf(m->b, "} %u\n", __atomic_load_n(&l->consecutive_failures, __ATOMIC_RELAXED)); break;
            }
        }
    }
    family(m, "certstream_log_request_failures_total", M_COUNTER,
           "Failed requests to the log, by reason (timeout, network, http_status, rate_limited, malformed, too_large).");
    for (unsigned i = 0; i < n; i++) {
        const struct stats_log *l = stats_log(s, i);
        for (unsigned r = 0; r < STATS_NFAIL; r++) {
            log_labels_open(m, "certstream_log_request_failures_total", l);
            jb_printf(m->b, ",reason=\"%s\"} %" PRIu64 "\n", stats_fail_name(r), stats_log_load(&l->failures[r]));
        }
    }
    family(m, "certstream_log_health", M_GAUGE, "1 for the log's current health state, 0 for the others.");
    for (unsigned i = 0; i < n; i++) {
        const struct stats_log *l = stats_log(s, i);
        uint32_t cur = __atomic_load_n(&l->health, __ATOMIC_RELAXED) & 3;
        for (unsigned h = 0; h < 4; h++) {
            log_labels_open(m, "certstream_log_health", l);
            jb_printf(m->b, ",state=\"%s\"} %d\n", health_name(h), cur == h);
        }
    }
}

static void render_server(struct mw *m, struct stats *s)
{
    const struct stats_server *sv = stats_server(s);
    family(m, "certstream_loglist_last_success_timestamp_seconds", M_GAUGE,
           "Unix time of the last successful fetch of the CT log list (0: never).");
    sample_d(m, "certstream_loglist_last_success_timestamp_seconds",
             (double)stats_log_load(&sv->loglist_last_success_ms) / 1000.0);
    family(m, "certstream_loglist_fetch_failures_total", M_COUNTER, "Failed fetches of the CT log list.");
    sample_u(m, "certstream_loglist_fetch_failures_total", stats_log_load(&sv->loglist_failures));
    family(m, "certstream_loglist_logs", M_GAUGE,
           "Logs in the fetched list (listed), of those not followed (skipped), and followed in all (followed, "
           "configured logs included).");
    jb_printf(m->b, "certstream_loglist_logs{state=\"listed\"} %" PRIu64 "\n", stats_log_load(&sv->loglist_listed));
    jb_printf(m->b, "certstream_loglist_logs{state=\"skipped\"} %" PRIu64 "\n", stats_log_load(&sv->loglist_skipped));
    jb_printf(m->b, "certstream_loglist_logs{state=\"followed\"} %" PRIu64 "\n", stats_log_load(&sv->loglist_followed));

    family(m, "certstream_state_file_last_write_timestamp_seconds", M_GAUGE,
           "Unix time of the last successful write of the state file (0: never).");
    sample_d(m, "certstream_state_file_last_write_timestamp_seconds",
             (double)stats_log_load(&sv->state_last_write_ms) / 1000.0);
    family(m, "certstream_state_file_write_failures_total", M_COUNTER, "Failed writes of the state file.");
    sample_u(m, "certstream_state_file_write_failures_total", stats_log_load(&sv->state_write_failures));

    family(m, "certstream_entries_published_total", M_COUNTER, "Certificates published into the ring, all logs.");
    sample_u(m, "certstream_entries_published_total", stats_sum(s, ST_ENTRIES_PUBLISHED));
    family(m, "certstream_dedup_cache_capacity", M_GAUGE, "Entries the shared deduplication table holds at most.");
    sample_u(m, "certstream_dedup_cache_capacity", stats_log_load(&sv->dedup_capacity));
}

/* Per fanout worker: the counters of its slot (reset when it restarts). */
static void render_workers(struct mw *m, struct stats *s)
{
    unsigned slots[STATS_MAX_SLOTS], idx[STATS_MAX_SLOTS], nw = 0;
    for (unsigned slot = 0; slot < STATS_MAX_SLOTS; slot++) {
        enum proc_role role;
        unsigned index;
        int pid;
        if (stats_proc_get(s, slot, &role, &index, &pid) && role == ROLE_FANOUT) {
            slots[nw] = slot;
            idx[nw++] = index;
        }
    }
    family(m, "certstream_active_connections", M_GAUGE, "Open WebSocket and SSE clients, all workers.");
    sample_u(m, "certstream_active_connections", active_connections(s));
    family(m, "certstream_clients", M_GAUGE, "Open streaming clients by worker, protocol and stream.");
    for (unsigned i = 0; i < nw; i++)
        for (int p = 0; p < 2; p++)
            for (int f = 0; f < RING_NFORMATS; f++)
                jb_printf(m->b, "certstream_clients{worker=\"%u\",protocol=\"%s\",stream=\"%s\"} %" PRId64 "\n",
                          idx[i], p ? "sse" : "websocket", fmt_names[f],
                          stats_slot_value(s, slots[i], (enum stat_id)((p ? ST_CONN_SSE_FULL : ST_CONN_WS_FULL) + f)));
    family(m, "certstream_client_messages_sent_total", M_COUNTER, "Messages written to clients, by worker and stream.");
    for (unsigned i = 0; i < nw; i++)
        for (int f = 0; f < RING_NFORMATS; f++)
            jb_printf(m->b, "certstream_client_messages_sent_total{worker=\"%u\",stream=\"%s\"} %" PRId64 "\n", idx[i],
                      fmt_names[f], stats_slot_value(s, slots[i], (enum stat_id)(ST_MSG_SENT_FULL + f)));
    static const struct { const char *name, *help; enum stat_id id; } per_worker[] = {
        { "certstream_client_bytes_sent_total", "Bytes written to streaming clients, by worker.", ST_BYTES_SENT },
        { "certstream_slow_client_drops_total", "Clients dropped for falling too far behind the ring.",
          ST_SLOW_DISCONNECTS },
        { "certstream_idle_client_disconnects_total", "WebSocket clients closed after sending nothing for the idle timeout.",
          ST_IDLE_DISCONNECTS },
        { "certstream_connections_accepted_total", "TCP connections accepted, by worker.", ST_CONN_ACCEPTED },
        { "certstream_http_requests_total", "HTTP requests parsed, by worker.", ST_HTTP_REQUESTS },
        { "certstream_websocket_protocol_errors_total", "WebSocket connections closed for a protocol violation.",
          ST_WS_PROTOCOL_ERRORS },
    };
    for (size_t k = 0; k < sizeof per_worker / sizeof per_worker[0]; k++) {
        family(m, per_worker[k].name, M_COUNTER, per_worker[k].help);
        for (unsigned i = 0; i < nw; i++)
            jb_printf(m->b, "%s{worker=\"%u\"} %" PRId64 "\n", per_worker[k].name, idx[i],
                      stats_slot_value(s, slots[i], per_worker[k].id));
    }
    static const struct { const char *reason; enum stat_id id; } hs[] = {
        { "unauthorized", ST_AUTH_FAILURES },
        { "connection_limit", ST_CONN_REJECTED_LIMIT },
        { "bad_request", ST_HTTP_BAD_REQUESTS },
    };
    family(m, "certstream_handshake_failures_total", M_COUNTER,
           "Requests refused before streaming, by worker and reason (unauthorized 401, connection_limit 429, "
           "bad_request 400/408/431/505).");
    for (unsigned i = 0; i < nw; i++)
        for (size_t k = 0; k < sizeof hs / sizeof hs[0]; k++)
            jb_printf(m->b, "certstream_handshake_failures_total{worker=\"%u\",reason=\"%s\"} %" PRId64 "\n", idx[i],
                      hs[k].reason, stats_slot_value(s, slots[i], hs[k].id));
}

/* Process metrics from /proc, summed per role over the live processes. */
/* The per-role sums are read from /proc at most once a second per worker
 * (a scraper polling faster sees the same figures): reading every process's
 * files is most of what a scrape costs. The cached snapshot includes the
 * CPU of exited processes as it was then, so the CPU counter never goes
 * back between snapshots. */
#define PROC_CACHE_MS 1000

struct role_sums {
    uint64_t n, rss, pss, cpu_us, fds, max_fds;
    double fd_ratio;
};

static void read_processes(struct stats *s, struct role_sums r[ROLE_NREPORTED])
{
    memset(r, 0, sizeof(struct role_sums) * ROLE_NREPORTED);
    const struct stats_server *sv = stats_server(s);
    for (unsigned role = 0; role < ROLE_NREPORTED; role++) r[role].cpu_us = stats_log_load(&sv->retired_cpu_us[role]);
    for (unsigned slot = 0; slot < STATS_MAX_SLOTS; slot++) {
        enum proc_role role;
        unsigned index;
        int pid;
        struct procinfo pi;
        if (!stats_proc_get(s, slot, &role, &index, &pid) || pid <= 0 || (unsigned)role >= ROLE_NREPORTED) continue;
        if (procinfo_read(pid, &pi) != 0) continue;   /* just exited */
        r[role].n++;
        r[role].rss += pi.rss_bytes;
        r[role].pss += pi.pss_bytes;
        r[role].cpu_us += pi.cpu_us;
        r[role].fds += pi.open_fds;
        r[role].max_fds += pi.max_fds;
        if (pi.max_fds && (double)pi.open_fds / (double)pi.max_fds > r[role].fd_ratio)
            r[role].fd_ratio = (double)pi.open_fds / (double)pi.max_fds;
    }
}

static void render_processes(struct mw *m, struct stats *s)
{
    static struct role_sums r[ROLE_NREPORTED];
    static uint64_t read_at_ms;
    const struct stats_server *sv = stats_server(s);
    uint64_t now = mono_ms();
    if (read_at_ms == 0 || now - read_at_ms >= PROC_CACHE_MS) {
        read_processes(s, r);
        read_at_ms = now ? now : 1;
    }
    static const struct { const char *name; enum mtype t; const char *help; } fams[] = {
        { "certstream_processes", M_GAUGE, "Running processes of the server, by role." },
        { "certstream_process_resident_memory_bytes", M_GAUGE, "Resident memory, summed over the role's processes." },
        { "certstream_process_proportional_memory_bytes", M_GAUGE,
          "Proportional set size (shared pages divided among their users), summed over the role's processes." },
        { "certstream_process_cpu_seconds_total", M_COUNTER,
          "User and system CPU time of the role's processes, those already exited included." },
        { "certstream_process_open_fds", M_GAUGE, "Open file descriptors, summed over the role's processes." },
        { "certstream_process_max_fds", M_GAUGE, "Descriptor limits (soft RLIMIT_NOFILE), summed over the role's processes." },
        { "certstream_process_fd_usage_ratio", M_GAUGE,
          "Highest open/limit descriptor ratio among the role's processes." },
    };
    for (size_t k = 0; k < sizeof fams / sizeof fams[0]; k++) {
        family(m, fams[k].name, fams[k].t, fams[k].help);
        for (unsigned role = 0; role < ROLE_NREPORTED; role++) {
            jb_printf(m->b, "%s{role=\"%s\"} ", fams[k].name, proc_role_name((enum proc_role)role));
            switch (k) {
            case 0: jb_printf(m->b, "%" PRIu64 "\n", r[role].n); break;
            case 1: jb_printf(m->b, "%" PRIu64 "\n", r[role].rss); break;
            case 2: jb_printf(m->b, "%" PRIu64 "\n", r[role].pss); break;
            case 3: jb_printf(m->b, "%.3f\n", (double)r[role].cpu_us / 1e6); break;
            case 4: jb_printf(m->b, "%" PRIu64 "\n", r[role].fds); break;
            case 5: jb_printf(m->b, "%" PRIu64 "\n", r[role].max_fds); break;
            default: jb_printf(m->b, "%.6f\n", r[role].fd_ratio); break;
            }
        }
    }
    family(m, "certstream_process_starts_total", M_COUNTER, "Processes started, by role.");
    for (unsigned role = 0; role < ROLE_NREPORTED; role++)
        jb_printf(m->b, "certstream_process_starts_total{role=\"%s\"} %" PRIu64 "\n", proc_role_name((enum proc_role)role),
                  stats_log_load(&sv->starts[role]));
    family(m, "certstream_process_restarts_total", M_COUNTER,
           "Child processes restarted by the supervisor, by role and cause (clean_exit, error_exit, signal).");
    for (unsigned role = ROLE_FANOUT; role < ROLE_NREPORTED; role++) {
        if (role == ROLE_LOGLIST) continue;    /* fetched again on a schedule, not restarted */
        for (unsigned c = 0; c < STATS_NCAUSES; c++)
            jb_printf(m->b, "certstream_process_restarts_total{role=\"%s\",cause=\"%s\"} %" PRIu64 "\n",
                      proc_role_name((enum proc_role)role), stats_cause_name(c), stats_log_load(&sv->restarts[role][c]));
    }
    family(m, "certstream_start_time_seconds", M_GAUGE, "Unix time the server started.");
    sample_u(m, "certstream_start_time_seconds", stats_started(s));
    family(m, "certstream_uptime_seconds", M_GAUGE, "Seconds since the server started.");
    sample_u(m, "certstream_uptime_seconds", uptime_secs(s));
}

static void render_ring(struct mw *m, struct worker *w)
{
    worker_scan(w);
    family(m, "certstream_ring_head_sequence", M_GAUGE, "Sequence number of the newest record in the ring.");
    sample_u(m, "certstream_ring_head_sequence", w->last_seq);
    family(m, "certstream_ring_size_bytes", M_GAUGE, "Size of the shared ring.");
    sample_u(m, "certstream_ring_size_bytes", ring_size(w->ring));
}

/* Families of the operations layer (configuration reloads, watchdog:
 * http_ops.c) and of the stream features (filters, permessage-deflate:
 * stream_metrics.c). */
static void render_operations(struct mw *m, struct worker *w)
{
    ops_metrics(m->b, m->om);
    route_metrics_stream(w, m->b, m->om);
    edge_metrics(w, m->b, m->om);   /* network edge (fanout/edge.c) */
}

/* The NATS process's state, on a node with a NATS role (docs/scale-out.md). */
static void render_nats(struct mw *m, struct stats *s)
{
    struct stats_nats *n = stats_nats(s);
    uint32_t role = atomic_load_explicit(&n->role, memory_order_relaxed);
    if (role == NATS_ROLE_NONE) return;
    static const struct { const char *name; enum mtype t; const char *help; size_t off; bool u32; } f[] = {
        { "certstream_nats_connected", M_GAUGE, "1 while the NATS connection is up.", offsetof(struct stats_nats, connected), true },
        { "certstream_nats_stream_sequence", M_GAUGE, "Last stream sequence acknowledged (ingest node) or put in the ring (edge node).", offsetof(struct stats_nats, stream_seq), false },
        { "certstream_nats_lag_messages", M_GAUGE, "Ingest node: ring records not yet acknowledged by JetStream; edge node: stream messages not yet consumed.", offsetof(struct stats_nats, lag_msgs), false },
        { "certstream_nats_published_total", M_COUNTER, "Messages JetStream stored as new.", offsetof(struct stats_nats, published), false },
        { "certstream_nats_duplicates_total", M_COUNTER, "Publishes JetStream dropped as duplicates within the duplicate window.", offsetof(struct stats_nats, duplicates), false },
        { "certstream_nats_publish_errors_total", M_COUNTER, "Publish batches not fully acknowledged (sent again).", offsetof(struct stats_nats, publish_errors), false },
        { "certstream_nats_consumed_total", M_COUNTER, "Stream messages put in the ring.", offsetof(struct stats_nats, consumed), false },
        { "certstream_nats_backfilled_total", M_COUNTER, "Entries before the resume point put in a fresh ring, so clients can resume from it.", offsetof(struct stats_nats, backfilled), false },
        { "certstream_nats_redeliveries_total", M_COUNTER, "Stream messages delivered more than once (dropped).", offsetof(struct stats_nats, redeliveries), false },
        { "certstream_nats_missed_total", M_COUNTER, "Entries lost: gone from the stream before consumed (edge behind retention), or overwritten in the ring before published.", offsetof(struct stats_nats, missed), false },
        { "certstream_nats_bad_messages_total", M_COUNTER, "Stream messages or ring records that were not certstream entries (skipped).", offsetof(struct stats_nats, bad_messages), false },
        { "certstream_nats_disconnects_total", M_COUNTER, "NATS connection losses.", offsetof(struct stats_nats, disconnects), false },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        const void *p = (const char *)n + f[i].off;
        uint64_t v = f[i].u32 ? atomic_load_explicit((_Atomic uint32_t *)p, memory_order_relaxed)
                              : atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed);
        family(m, f[i].name, f[i].t, f[i].help);
        jb_printf(m->b, "%s{role=\"%s\"} %" PRIu64 "\n", f[i].name, nats_role_name(role), v);
    }
    /* edge node: resumes from further back than the ring (fanout/deep.h) */
    const struct history_ops *h = history_get();
    const struct history_counters *hc = h ? h->counters : NULL;
    static const struct { const char *name; const char *help; size_t off; } d[] = {
        { "certstream_nats_resumes_from_stream_total", "Clients that resumed from further back than the ring (read from the stream).", offsetof(struct history_counters, resumes) },
        { "certstream_nats_resume_entries_total", "Entries those clients were sent from the stream.", offsetof(struct history_counters, entries) },
        { "certstream_nats_resume_gone_total", "Entries resuming clients asked for that the stream no longer held (retention).", offsetof(struct history_counters, gone) },
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        uint64_t v = hc ? atomic_load_explicit((const _Atomic uint64_t *)((const char *)hc + d[i].off),
                                               memory_order_relaxed) : 0;
        family(m, d[i].name, M_COUNTER, d[i].help);
        jb_printf(m->b, "%s{role=\"%s\"} %" PRIu64 "\n", d[i].name, nats_role_name(role), v);
    }
    family(m, "certstream_nats_lag_seconds", M_GAUGE,
           "Age of the oldest entry not yet acknowledged (ingest node) or consumed (edge node).");
    jb_printf(m->b, "certstream_nats_lag_seconds{role=\"%s\"} %.3f\n", nats_role_name(role),
              (double)atomic_load_explicit(&n->lag_ms, memory_order_relaxed) / 1000.0);
}

void route_metrics(struct worker *w, struct jbuf *b, bool openmetrics)
{
    struct stats *s = w->stats;
    struct mw m = { .b = b, .om = openmetrics };
    worker_publish_counters(w);
    render_product(&m, s);
    render_logs(&m, s);
    render_server(&m, s);
    render_workers(&m, s);
    render_processes(&m, s);
    render_ring(&m, w);
    render_operations(&m, w);
    render_nats(&m, s);
    if (m.om) jb_lit(b, "# EOF\n");
}

/* Does the Accept header ask for OpenMetrics? */
bool metrics_wants_openmetrics(const struct http_request *req)
{
    const struct http_str *a = http_header_get(req, "Accept");
    if (!a) return false;
    static const char want[] = "application/openmetrics-text";
    for (size_t i = 0; i + sizeof want - 1 <= a->len; i++)
        if (http_str_ieq((struct http_str){ a->p + i, sizeof want - 1 }, want)) return true;
    return false;
}
