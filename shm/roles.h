/* roles.h - the roles of the server's processes: one enum for the
 * supervisor (which process to fork), the per-role counters of shm/stats
 * (starts, restarts, CPU, metric labels role="...") and the process table
 * (shm/proctable: heartbeats, /health/deep, watchdog kills). */
#ifndef CS_ROLES_H
#define CS_ROLES_H

enum proc_role {
    ROLE_SUPERVISOR = 0,
    ROLE_FANOUT,
    ROLE_INGEST,
    ROLE_REPLAY,
    ROLE_LOGLIST,
    ROLE_NREPORTED,               /* roles below this one have their own per-role rows
                                   * (arrays indexed by role are this long) */
    ROLE_NATS = ROLE_NREPORTED,   /* the NATS publisher/consumer: reported as ingest */
    ROLE_COUNT
};

/* The role a process is counted and shown under: its own, except the NATS
 * process, which feeds (edge) or drains (ingest node) the ring in place of
 * the ingest processes and has always been reported as role="ingest" in
 * /metrics and /health/deep. The one place this mapping lives. */
static inline enum proc_role role_reported(enum proc_role r)
{
    return r == ROLE_NATS ? ROLE_INGEST : r;
}

/* "supervisor", "fanout", "ingest", "replay", "loglist", "nats"; "unknown"
 * out of range. Metric labels use it on a reported role (role_reported), the
 * supervisor's log lines on the process's own. */
const char *proc_role_name(enum proc_role r);

#endif
