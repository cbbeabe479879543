/* fanout.h - the fanout worker: one process that accepts clients on its own
 * SO_REUSEPORT listener and streams the ring to them over WebSocket and SSE,
 * and answers the small HTTP endpoints (health, metrics, examples).
 * The supervisor calls fanout_run() in the forked child. */
#ifndef CS_FANOUT_H
#define CS_FANOUT_H

struct config;
struct ring;
struct stats;
struct addrtable;
struct ratelimit;

struct fanout_params {
    const struct config *cfg;
    struct ring *ring;
    struct stats *stats;
    unsigned index;        /* 0..workers-1 */
    unsigned stats_slot;   /* this process's counter slot */
    int wake_fd;           /* this worker's eventfd (ring_waiter_fd(ring, index)) */
    const struct config_flags *flags; /* the command line's overrides, for a reload in place */
    /* network edge (shared, created before fork; NULL: per-address limits
     * fall back to shm/stats' buckets, no rate limit) */
    struct addrtable *addrs;
    struct ratelimit *ratelimit;
};

/* Runs the worker until SIGTERM/SIGINT (WebSocket clients get close 1001, SSE
 * responses end). Returns the process exit status: 0 after a clean stop, 1 if
 * it could not start (e.g. the port cannot be bound). */
int fanout_run(const struct fanout_params *p);

#endif
