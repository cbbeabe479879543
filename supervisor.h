/* supervisor.h - the master process: owns shared memory, forks and restarts
 * the ingest (or replay) processes and the fanout workers, stops them
 * gracefully. It never serves clients and never fetches CT logs. */
#ifndef CS_SUPERVISOR_H
#define CS_SUPERVISOR_H

#include <stdbool.h>

#include "conf/config.h"

struct supervisor_opts {
    const char *replay_file;  /* NULL: follow CT logs */
    double replay_rate;       /* entries per second */
    bool replay_loop;
    bool bench_stamp;
    const struct config_flags *flags; /* the command line's overrides, applied again on reload */
};

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int supervisor_run(struct config *cfg, const struct supervisor_opts *opts);

/* True when every child's heartbeat is fresh (none has missed it for
 * watchdog_secs; always true with watchdog_secs: 0). For the service
 * manager's watchdog: feed it only while this holds. */
bool supervisor_children_fresh(void);

#endif
