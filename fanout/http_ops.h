/* http_ops.h - what /metrics and /health/deep say about the server's
 * processes and reloads (from the process table, shm/proctable.h). */
#ifndef CS_HTTP_OPS_H
#define CS_HTTP_OPS_H

#include <stdbool.h>

#include "common/jsonw.h"

/* Child processes whose heartbeat is stale right now. */
unsigned ops_stale_processes(void);
/* /health/deep: `,"processes":[...],"watchdog":{...},"config_reloads":{...}` */
void ops_health_deep(struct jbuf *b);
/* /metrics: certstream_config_reloads_total, certstream_config_last_reload_success_timestamp_seconds,
 * certstream_watchdog_kills_total, certstream_process_heartbeat_age_seconds */
void ops_metrics(struct jbuf *b, bool om);

#endif
