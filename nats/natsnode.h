/* natsnode.h - the server's NATS JetStream process (docs/scale-out.md).
 *
 * One child process of the supervisor, in one of two roles:
 *  - publisher (nats.publish: true, an ingest node): reads the ring like a
 *    fanout worker does and publishes every record to the stream, in order,
 *    with acknowledgements; it advances the shared "acknowledged" ring
 *    position only past acknowledged records, and the producers pause while
 *    it is too far behind (NATS unreachable), so nothing is lost.
 *  - consumer (ingest.source: nats, an edge node): consumes the stream from
 *    the sequence after the one in its position file into the ring, as a
 *    producer, exactly once per stream sequence.
 * A separate process rather than a call inside ingest: the NATS client has
 * its own threads, and a separate process keeps them (and a NATS outage)
 * away from the CT followers' event loops; the ring is already the one
 * channel every producer and reader shares, so the publisher needs no hook
 * in ingest beyond the back-pressure check (stats_nats_gate_closed).
 *
 * Uses common, conf, shm and libnats; nothing but the composition root uses it. */
#ifndef CS_NATSNODE_H
#define CS_NATSNODE_H

#include <stdbool.h>

#include "conf/config.h"
#include "shm/ring.h"
#include "shm/stats.h"

struct natsnode_params {
    const struct config *cfg;
    struct ring *ring;
    struct stats *stats;
    unsigned producer_id;   /* ring producer slot (consumer role) */
    unsigned stats_slot;
};

/* Does this configuration need the NATS process? */
bool natsnode_wanted(const struct config *cfg);
/* Supervisor, before fork and after the fanout workers' wakeups are
 * registered: sets the shared NATS state block up (role, the acknowledged
 * ring position = the ring's start, the back-pressure gate) and, on an
 * ingest node, registers the publisher's own ring wakeup. 0 or -1 (errno). */
int natsnode_prepare(const struct config *cfg, struct stats *stats, struct ring *ring);
/* The child's main: returns when stopped (SIGTERM); 0, or 1 on a fatal error. */
int natsnode_run(const struct natsnode_params *p);

#endif
