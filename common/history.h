/* history.h - reading entries older than the ring, for a resume from further
 * back than it holds (an edge node's deep resume, fanout/deep.h).
 *
 * The interface between the two sides, here so that neither depends on the
 * other: fanout reads through it, nats/history.c implements it (JetStream),
 * and the composition root installs one before it forks the workers
 * (deep.h: history_install). */
#ifndef CS_COMMON_HISTORY_H
#define CS_COMMON_HISTORY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* full, lite, domains-only: the ring's formats, in its order (RING_NFORMATS;
 * checked where both are seen, fanout/deep.c and nats/history.c) */
#define HISTORY_NFORMATS 3

struct config;

struct history_entry {
    uint64_t seq;                       /* the entry's SSE id (stream sequence) */
    const char *json[HISTORY_NFORMATS]; /* valid until the next call on the reader */
    size_t len[HISTORY_NFORMATS];
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

#endif
