/* proctable.h - the process table in shared memory: one heartbeat per child
 * process, and the supervisor's own counters that workers report.
 *
 * Created by the supervisor before fork, next to the ring and the stats
 * region, and inherited by every child. A child's row is its stats slot.
 * Every child beats from its own event loop (proctable_beat, about 4 times a
 * second); the supervisor reads the beats, kills and replaces a child that
 * misses them for watchdog_secs, and feeds the systemd watchdog only while
 * every row is fresh. Fanout workers read the table for /metrics and
 * /health/deep. One writer per field: a child writes its beat and state, the
 * supervisor everything else. */
#ifndef CS_PROCTABLE_H
#define CS_PROCTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/log.h"
#include "shm/roles.h"

#define PROCTABLE_SLOTS 128          /* == STATS_MAX_SLOTS: row i is stats slot i */
#define PROCTABLE_BEAT_MS 250        /* how often a child beats */
#define PROCTABLE_START_GRACE_MS 15000 /* a child that has not beaten yet is fresh this long */

enum proc_state {
    PROC_STARTING = 0,               /* forked, not beating yet */
    PROC_RUNNING,                    /* beating; a fanout worker: listening and accepting */
    PROC_DRAINING,                   /* fanout: replaced, no longer accepting, serving its clients */
};

struct proc_row {                    /* a snapshot (proctable_row) */
    enum proc_role role;             /* a reported role (role_reported) */
    unsigned index;
    pid_t pid;
    enum proc_state state;
    uint64_t beat_ms;                /* CLOCK_MONOTONIC ms of the last beat; 0 = none yet */
    uint64_t started_ms;             /* CLOCK_MONOTONIC ms of the fork */
    uint32_t config_gen;             /* fanout: the PROC_GEN_CONFIG it has loaded */
};

struct proctable;

/* Supervisor, before fork. The table is process-global (one per server):
 * proctable_get() returns it in every process. NULL + errno on failure. */
struct proctable *proctable_create(void);
void proctable_destroy(struct proctable *t);
struct proctable *proctable_get(void);

/* Supervisor: a child is about to be forked into `slot` (pid 0), its pid
 * once forked, and it has been reaped. role: a reported role
 * (role_reported); a row with another one is never shown. */
void proctable_set_child(struct proctable *t, unsigned slot, enum proc_role role, unsigned index,
                         pid_t pid);
void proctable_set_pid(struct proctable *t, unsigned slot, pid_t pid);
void proctable_clear(struct proctable *t, unsigned slot);

/* In a child, once after fork: the row it beats. */
void proctable_set_self(unsigned slot);
/* In a child: "my event loop is turning" (cheap: one clock read, one store). */
void proctable_beat(void);
/* In a fanout worker: it has loaded (or tried to load) configuration
 * generation gen (a reload in place). */
void proctable_set_config_gen(uint32_t gen);
/* In a child: announce its state (a fanout worker: RUNNING once it accepts). */
void proctable_set_state(enum proc_state st);

bool proctable_row(const struct proctable *t, unsigned slot, struct proc_row *out);
/* A row is fresh when it beat within watchdog_ms (one that has not beaten
 * yet: forked within max(watchdog_ms, PROCTABLE_START_GRACE_MS)). watchdog_ms 0 = the watchdog is off: every row is fresh. */
bool proctable_fresh(const struct proc_row *row, uint64_t now_ms, uint32_t watchdog_ms);

/* Supervisor settings and counters, read by workers for /metrics and
 * /health/deep. Watchdog kills count per reported role (role_reported). */
void proctable_set_watchdog_ms(struct proctable *t, uint32_t ms);
uint32_t proctable_watchdog_ms(const struct proctable *t);
void proctable_count_watchdog_kill(struct proctable *t, enum proc_role role);
uint64_t proctable_watchdog_kills(const struct proctable *t, enum proc_role role);
void proctable_count_reload(struct proctable *t, bool ok, uint64_t unix_secs);
void proctable_reloads(const struct proctable *t, uint64_t *ok, uint64_t *error,
                       uint64_t *last_success_unix);

/* Supervisor: the log level every process follows (applied at its next beat). */
void proctable_set_log_level(struct proctable *t, enum log_level level);
/* Supervisor at start: the running configuration was loaded now. */
void proctable_set_loaded(struct proctable *t, uint64_t unix_secs);

/* Supervisor: where and how every process logs (log_file, log_format);
 * bump PROC_GEN_LOG_FILE afterwards. -1 when the path is too long. */
int proctable_set_log_output(struct proctable *t, const char *path, bool json);
/* In every process (log_set_refresh): apply what the supervisor set. */
void proctable_log_refresh(void);

/* Supervisor, before bumping PROC_GEN_CONFIG: the file the workers load for
 * a reload in place (NULL/"" = the search order). -1 when too long. */
int proctable_set_config_path(struct proctable *t, const char *path);
void proctable_config_path(const struct proctable *t, char *out, size_t len);

/* Generation counters: the supervisor bumps one, children notice it. */
enum proc_generation { PROC_GEN_LOG_FILE = 0, PROC_GEN_CONFIG = 1, PROC_GENS };
void proctable_bump(struct proctable *t, enum proc_generation g);
uint32_t proctable_generation(const struct proctable *t, enum proc_generation g);

#endif
