/* reload_plan.h - what a configuration reload does (docs/operations.md,
 * "Reload"), decided from the running configuration and the new one: the
 * keys that changed and how each applies, whether new fanout workers, a new
 * ring, a new dedup table or restarted ingest processes are needed, or
 * whether the reload is refused as a whole. Pure: no fork, no I/O, no shared
 * memory; supervisor.c carries the plan out. Part of the composition root
 * (it reads nats/ to know whether the node has a NATS role). */
#ifndef CS_RELOAD_PLAN_H
#define CS_RELOAD_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/config.h"

/* How a changed key is applied. */
enum reload_apply {
    RELOAD_IN_PLACE,     /* the supervisor, or every process at its next heartbeat */
    RELOAD_FANOUT,       /* every fanout worker loads it at its next heartbeat (in place) */
    RELOAD_WORKERS,      /* new fanout workers; the old ones drain their clients */
    RELOAD_INGEST,       /* ingest processes restart from their positions */
    RELOAD_BOTH,         /* new fanout workers, and the producers restart (compression) */
};

#define RELOAD_PLAN_MAX_KEYS 128   /* changed keys named (and logged) at most */

struct reload_plan {
    size_t n_keys;                 /* 0: the configuration is unchanged */
    const char *keys[RELOAD_PLAN_MAX_KEYS];       /* the changed keys (config_changed_keys) */
    enum reload_apply how[RELOAD_PLAN_MAX_KEYS];  /* how each applies */
    /* On a node with a NATS role (before or after), a key that cannot change
     * by reload (nats.*, ingest.source, ring_size): the whole reload is
     * refused and nothing else of the plan applies. NULL: allowed. */
    const char *refused;
    bool workers;      /* a new generation of fanout workers replaces the running one */
    bool address;      /* host or port: the new address is claimed (lock + probe) first */
    bool ring;         /* ring_size: a new ring for the new workers, then the producers */
    bool fanout;       /* workers kept: they load the new file in place (PROC_GEN_CONFIG) */
    bool resignal;     /* workers kept: SIGHUP them to re-read the TLS certificate files and
                        * reopen the access log (rotation in place) */
    bool ingest;       /* the log list is rebuilt; changed ingest groups restart */
    bool url;          /* ... a log list URL changed: downloaded again */
    bool settings;     /* ... what every ingest (or replay) process runs with: all restart */
    bool dedup;        /* dedup.capacity or dedup.ttl_secs: a new, empty dedup table */
    bool watch;        /* hot_reload.*: the watch is opened again */
    bool log_output;   /* log_file or log_format: every process reopens its log */
};

/* The plan for going from cur to fresh (both valid configurations). */
void reload_plan_make(struct reload_plan *p, const struct config *cur, const struct config *fresh);
/* How one changed key applies, and the words the log says it with. */
enum reload_apply reload_apply_of(const char *key);
const char *reload_apply_name(enum reload_apply how);

#endif
