/* history.h - the history of common/history.h read from the JetStream
 * stream: on an edge node, a client resuming from further back than the
 * ring gets the older entries from the stream (fanout/deep.h).
 *
 * Each fanout worker that needs it opens its own NATS connection (on the
 * first deep resume) and one ordered consumer per resuming client, starting
 * at the wanted stream sequence. Opening runs on a thread of its own, so the
 * worker's event loop never waits for NATS; reading takes only what the
 * client library already holds (NextMsg with no wait). */
#ifndef CS_NATS_HISTORY_H
#define CS_NATS_HISTORY_H

#include "conf/config.h"

struct history_ops;

/* Composition root, before forking the workers, on an edge node: the reader
 * to install with history_install (fanout/deep.h), with its counters in
 * shared memory. NULL on another node, or when they cannot be mapped. */
const struct history_ops *nats_history_ops(const struct config *cfg);

#endif
