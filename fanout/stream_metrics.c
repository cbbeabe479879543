/* stream_metrics.c - the /metrics families of the stream features
 * (filters, permessage-deflate), appended after route_metrics()'s. */
#include "fanout/stream_metrics.h"

#include <inttypes.h>
#include <string.h>

#include "fanout/filter.h"
#include "fanout/pump.h"

/* One unlabelled sample with its HELP and TYPE; in OpenMetrics a counter's
 * family is named without its _total suffix (docs/monitoring.md). */
static void sample(struct jbuf *b, bool om, const char *name, const char *type, const char *help, uint64_t v)
{
    int n = (int)strlen(name);
    if (om && strcmp(type, "counter") == 0 && n > 6 && strcmp(name + n - 6, "_total") == 0) n -= 6;
    jb_printf(b, "# HELP %.*s %s\n# TYPE %.*s %s\n%s %" PRIu64 "\n", n, name, help, n, name, type, name, v);
}

void route_metrics_stream(struct worker *w, struct jbuf *b, bool om)
{
    struct stats *s = w->stats;
    worker_publish_all(w);
    sample(b, om, "certstream_filters_distinct", "gauge",
           "Distinct server-side filters in use, summed over workers (each worker interns its own).",
           stats_sum(s, ST_FILTERS_DISTINCT));
    sample(b, om, "certstream_clients_filtered", "gauge", "Streaming clients with a server-side filter.",
           stats_sum(s, ST_CLIENTS_FILTERED));
    sample(b, om, "certstream_filter_evaluations_total", "counter",
           "Filter evaluations: at most one per distinct filter per message per worker.",
           stats_sum(s, ST_FILTER_EVALUATIONS));
    sample(b, om, "certstream_filter_matches_total", "counter", "Filter evaluations that matched.",
           stats_sum(s, ST_FILTER_MATCHES));
    sample(b, om, "certstream_filter_rejected_total", "counter",
           "Stream requests refused for their filter (400 bad filter, 429 too many distinct filters).",
           stats_sum(s, ST_FILTER_REJECTED));
    sample(b, om, "certstream_filter_regex_limit_hits_total", "counter",
           "Regex matches stopped by a PCRE2 limit (counted as no match).",
           stats_sum(s, ST_FILTER_REGEX_LIMIT));
    sample(b, om, "certstream_clients_deflate", "gauge",
           "WebSocket clients that negotiated permessage-deflate.", stats_sum(s, ST_CLIENTS_DEFLATE));
    sample(b, om, "certstream_deflate_negotiated_total", "counter",
           "WebSocket handshakes that negotiated permessage-deflate.", stats_sum(s, ST_DEFLATE_NEGOTIATED));
    sample(b, om, "certstream_deflate_messages_sent_total", "counter",
           "Messages delivered to permessage-deflate clients (messages under compression.min_size go "
           "uncompressed).", stats_sum(s, ST_DEFLATE_MESSAGES));
    sample(b, om, "certstream_clients_deflate_shared", "gauge",
           "WebSocket clients with permessage-deflate and the stream's shared context (chained frames).",
           stats_sum(s, ST_CLIENTS_DEFLATE_SHARED));
    sample(b, om, "certstream_deflate_chained_frames_total", "counter",
           "Messages compressed into a worker's shared context (one per message, format in use and worker).",
           stats_sum(s, ST_DEFLATE_CHAINED_FRAMES));
    sample(b, om, "certstream_deflate_alone_cache_hits_total", "counter",
           "Frames compressed alone (no shared context) taken from a worker's frame cache.",
           stats_sum(s, ST_DEFLATE_ALONE_HITS));
    sample(b, om, "certstream_deflate_alone_compressed_total", "counter",
           "Frames compressed alone that a worker compressed (first use, or gone from its cache).",
           stats_sum(s, ST_DEFLATE_ALONE_COMPRESSED));
}
