/* deep.h - an edge node's resume from further back than the ring
 * (docs/scale-out.md, "Resume depth").
 *
 * A client whose Last-Event-ID (or ?resume=ID) is older than every record
 * this worker's ring holds gets the entries between from history (the
 * JetStream stream, common/history.h) and then continues on the ring, at the
 * record after the last one history gave it: no gap, no duplicate. Its bytes
 * are those a ring record of the same entry gives (same SSE event, same
 * WebSocket frame, compressed alike), and its filter applies.
 *
 * Meanwhile the client is in state CS_DEEP: in no streaming list, its bytes
 * go through c->out one chunk at a time (bounded: DEEP_CHUNK per client,
 * plus what the history reader buffers), refilled by a timer of the worker
 * whenever the chunk before is written. It joins the ring once history
 * reaches an entry among the ring's newest buffer_size/2 records (so it does
 * not start out as a slow client). */
#ifndef CS_FANOUT_DEEP_H
#define CS_FANOUT_DEEP_H

#include <stdbool.h>

#include "common/history.h"
#include "fanout/conn.h"

/* Composition root, before fork; NULL: no history (resume depth = the ring). */
void history_install(const struct history_ops *ops);
const struct history_ops *history_get(void);

/* Called by a stream's start (after start_stream) with the request's resume
 * id: true when the client was taken over for a deep resume (the caller then
 * only flushes what is queued). */
bool deep_resume(struct conn *c, uint64_t id);
/* conn_free of a CS_DEEP connection. */
void deep_forget(struct conn *c);
/* Worker stop: a CS_DEEP client ends as a stream client would (1001 / end). */
void deep_shutdown(struct conn *c);

#endif
