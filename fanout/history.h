/* history.h - reading entries older than the ring, for a resume from further
 * back than it holds (an edge node's deep resume, fanout/deep.h).
 *
 * fanout defines what it needs; the composition root installs an
 * implementation before it forks the workers (nats/history.c reads the
 * JetStream stream), so fanout does not depend on where history comes from. */
#ifndef CS_FANOUT_HISTORY_H
#define CS_FANOUT_HISTORY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/ring.h"

struct config;

struct history_entry {
    uint64_t seq;                       /* the entry's SSE id (stream sequence) */
    const char *json[RING_NFORMATS];    /* valid until the next call on the reader */
    size_t len[RING_NFORMATS];
};

/* Shared by every worker (created before fork): /metrics. */
struct history_counters {
    _Atomic uint64_t resumes;    /* clients resumed from further back than the ring */
    _Atomic uint64_t entries;    /* entries they were sent from history */
    _Atomic uint64_t gone;       /* entries asked for that history no longer holds */
};

struct history_ops {
    /* Starts reading at seq `from` (asynchronously: never blocks). NULL when
     * it cannot even start (logged). */
    void *(*open)(const struct config *cfg, uint64_t from);
    /* The next entry, without blocking: 1 (e filled), 0 (none yet), -1 (the
     * reader broke: close it; a new one may start where it stopped). */
    int (*next)(void *reader, struct history_entry *e);
    void (*close)(void *reader);
    struct history_counters *counters;
};

/* Composition root, before fork; NULL: no history (resume depth = the ring). */
void history_install(const struct history_ops *ops);
const struct history_ops *history_get(void);

#endif
