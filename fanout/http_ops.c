/* http_ops.c - the process table and the reload counters as /metrics
 * families and /health/deep members. Read-only: the supervisor writes them. */
#include "fanout/http_ops.h"

#include <inttypes.h>

#include "common/clock.h"
#include "shm/proctable.h"

static const char *state_name(enum proc_state s)
{
    switch (s) {
    case PROC_RUNNING: return "running";
    case PROC_DRAINING: return "draining";
    default: return "starting";
    }
}

/* /health/deep calls a process unhealthy once it missed 8 beats (2 s), or
 * watchdog_secs if that is shorter: before the watchdog kills it (default
 * 10 s), and also with the watchdog off. */
#define OPS_UNHEALTHY_MS 2000

static uint32_t unhealthy_ms(const struct proctable *t)
{
    uint32_t wd = proctable_watchdog_ms(t);
    return wd && wd < OPS_UNHEALTHY_MS ? wd : OPS_UNHEALTHY_MS;
}

unsigned ops_stale_processes(void)
{
    const struct proctable *t = proctable_get();
    uint64_t now = mono_ms();
    uint32_t wd = unhealthy_ms(t);
    unsigned n = 0;
    struct proc_row row;
    for (unsigned i = 0; t && i < PROCTABLE_SLOTS; i++)
        n += proctable_row(t, i, &row) && !proctable_fresh(&row, now, wd);
    return n;
}

void ops_health_deep(struct jbuf *b)
{
    const struct proctable *t = proctable_get();
    uint64_t now = mono_ms();
    uint32_t wd = unhealthy_ms(t);
    struct proc_row row;
    jb_printf(b, ",\"processes\":[");
    bool first = true;
    for (unsigned i = 0; t && i < PROCTABLE_SLOTS; i++) {
        if (!proctable_row(t, i, &row))
            continue;
        uint64_t last = row.beat_ms ? row.beat_ms : row.started_ms;
        jb_printf(b, "%s{\"role\":\"%s\",\"index\":%u,\"pid\":%d,\"state\":\"%s\",\"healthy\":%s,"
                     "\"heartbeat_age_ms\":%" PRIu64 "}",
                  first ? "" : ",", proc_role_name(row.role), row.index, (int)row.pid,
                  state_name(row.state), proctable_fresh(&row, now, wd) ? "true" : "false",
                  now > last ? now - last : 0);
        first = false;
    }
    uint64_t ok, err, last_ok;
    proctable_reloads(t, &ok, &err, &last_ok);
    jb_printf(b, "],\"watchdog\":{\"watchdog_secs\":%u,\"kills\":{\"fanout\":%" PRIu64 ",\"ingest\":%" PRIu64
                 ",\"replay\":%" PRIu64 "}},\"config_reloads\":{\"ok\":%" PRIu64 ",\"error\":%" PRIu64
                 ",\"last_success_timestamp_seconds\":%" PRIu64 "}",
              proctable_watchdog_ms(t) / 1000, proctable_watchdog_kills(t, ROLE_FANOUT), proctable_watchdog_kills(t, ROLE_INGEST),
              proctable_watchdog_kills(t, ROLE_REPLAY), ok, err, last_ok);
}

void ops_metrics(struct jbuf *b, bool om)
{
    const char *tot = om ? "" : "_total";   /* OpenMetrics: counter families without _total */
    const struct proctable *t = proctable_get();
    uint64_t ok, err, last_ok;
    proctable_reloads(t, &ok, &err, &last_ok);
    jb_printf(b, "# HELP certstream_config_reloads%s Configuration reloads (SIGHUP, hot_reload) by result.\n"
                 "# TYPE certstream_config_reloads%s counter\n"
                 "certstream_config_reloads_total{result=\"ok\"} %" PRIu64 "\n"
                 "certstream_config_reloads_total{result=\"error\"} %" PRIu64 "\n"
                 "# HELP certstream_config_last_reload_success_timestamp_seconds When the running configuration was loaded (start or reload).\n"
                 "# TYPE certstream_config_last_reload_success_timestamp_seconds gauge\n"
                 "certstream_config_last_reload_success_timestamp_seconds %" PRIu64 "\n"
                 "# HELP certstream_watchdog_kills%s Child processes killed by the watchdogs (missed heartbeat, stuck ring claim).\n"
                 "# TYPE certstream_watchdog_kills%s counter\n",
              tot, tot, ok, err, last_ok, tot, tot);
    static const enum proc_role roles[] = {ROLE_FANOUT, ROLE_INGEST, ROLE_REPLAY};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        jb_printf(b, "certstream_watchdog_kills_total{role=\"%s\"} %" PRIu64 "\n", proc_role_name(roles[i]),
                  proctable_watchdog_kills(t, roles[i]));
}
