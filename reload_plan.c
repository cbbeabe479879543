/* reload_plan.c - from the running configuration and the new one to what a
 * reload does (see reload_plan.h). */
#include "reload_plan.h"

#include <string.h>

#include "nats/natsnode.h"

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

enum reload_apply reload_apply_of(const char *key)
{
    static const char *const in_place[] = {"log_level", "watchdog_secs", "ring_claim_timeout_ms",
                                           "hot_reload.", "ct_log.state_file", "log_format", "log_file"};
    static const char *const ingest[] = {"ct_logs_url", "custom_logs", "static_logs", "ct_log.", "ingest.",
                                         "dedup.", "message_format.",
                                         "apple_logs_url", "log_overrides", "operator_pacing"};
    /* what a running worker reads per connection or per request */
    static const char *const fanout[] = {"auth.", "connection_limit.", "limits.", "keepalive.",
                                         "protocols.", "streams.", "shutdown."};
    if (starts_with(key, "compression.")) /* producers compress, workers negotiate */
        return RELOAD_BOTH;
    for (size_t i = 0; i < sizeof fanout / sizeof fanout[0]; i++)
        if (starts_with(key, fanout[i]))
            return RELOAD_FANOUT;
    for (size_t i = 0; i < sizeof in_place / sizeof in_place[0]; i++)
        if (starts_with(key, in_place[i]))
            return RELOAD_IN_PLACE;
    for (size_t i = 0; i < sizeof ingest / sizeof ingest[0]; i++)
        if (starts_with(key, ingest[i]))
            return RELOAD_INGEST;
    return RELOAD_WORKERS; /* host, port, workers, ring_size, buffer_size, filters */
}

const char *reload_apply_name(enum reload_apply how)
{
    switch (how) {
    case RELOAD_IN_PLACE: return "applied in place";
    case RELOAD_FANOUT: return "applied in place by every fanout worker (new connections use it; "
                               "connected clients keep what they were admitted with)";
    case RELOAD_BOTH: return "applied by replacing the fanout workers and restarting the producers "
                             "from their positions";
    case RELOAD_WORKERS: return "applied by replacing the fanout workers (new connections use it now; "
                                "connected clients stay on the old workers until they leave)";
    default: return "applied by rebuilding the log list; changed ingest groups restart from their positions";
    }
}

/* The NATS process (its role, its stream settings, the ring it reads or
 * feeds) is set up once, at start: a reload that would change it is refused
 * as a whole. The key that forbids it, or NULL. */
static const char *nats_refused(const struct config *cur, const struct config *fresh,
                                const char *const *names, size_t n)
{
    if (!natsnode_wanted(cur) && !natsnode_wanted(fresh))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (starts_with(names[i], "nats.") || strcmp(names[i], "ingest.source") == 0 ||
            strcmp(names[i], "ring_size") == 0)
            return names[i];
    return NULL;
}

void reload_plan_make(struct reload_plan *p, const struct config *cur, const struct config *fresh)
{
    *p = (struct reload_plan){0};
    size_t n = config_changed_keys(cur, fresh, p->keys, RELOAD_PLAN_MAX_KEYS);
    p->n_keys = n < RELOAD_PLAN_MAX_KEYS ? n : RELOAD_PLAN_MAX_KEYS;
    p->refused = nats_refused(cur, fresh, p->keys, p->n_keys);
    bool fanout = false;
    for (size_t i = 0; i < p->n_keys; i++) {
        const char *k = p->keys[i];
        enum reload_apply h = p->how[i] = reload_apply_of(k);
        p->workers |= h == RELOAD_WORKERS || h == RELOAD_BOTH;
        fanout |= h == RELOAD_FANOUT;
        p->ingest |= h == RELOAD_INGEST || h == RELOAD_BOTH;
        p->url |= strcmp(k, "ct_logs_url") == 0 || strcmp(k, "apple_logs_url") == 0;
        /* what every ingest process runs with (not which logs): all restart */
        p->settings |= (starts_with(k, "ct_log.") && strcmp(k, "ct_log.state_file") != 0) ||
                       starts_with(k, "ingest.") || starts_with(k, "dedup.") ||
                       starts_with(k, "message_format.") || starts_with(k, "compression.") ||
                       strcmp(k, "operator_pacing") == 0;
        p->watch |= starts_with(k, "hot_reload.");
        p->address |= strcmp(k, "host") == 0 || strcmp(k, "port") == 0;
    }
    p->ring = fresh->ring_size != cur->ring_size;
    p->dedup = fresh->dedup.capacity != cur->dedup.capacity || fresh->dedup.ttl_secs != cur->dedup.ttl_secs;
    p->log_output = strcmp(cur->log_file, fresh->log_file) != 0 || strcmp(cur->log_format, fresh->log_format) != 0;
    /* replaced workers start with the new configuration and files; kept ones
     * load it in place, and re-read their certificate and access log files */
    p->fanout = !p->workers && fanout;
    p->resignal = !p->workers && (fresh->tls.cert_file[0] ||
                                  (fresh->access_log.enabled && fresh->access_log.path[0]));
}
