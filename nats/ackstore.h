/* ackstore.h - an ingest node's CT positions as far as JetStream acknowledged
 * them ("<state_file>.nats-acked").
 *
 * The position store (shm/positions.h) advances as entries enter the ring,
 * and the ring dies with the server; the publisher acknowledges them to
 * JetStream later. Without this store, a server restarted after losing its
 * machine (or after kill -9 of all its processes) resumes every log after
 * entries it never got into the stream: up to half a ring (the back-pressure
 * gate) while NATS was unreachable, a few milliseconds' worth otherwise.
 *
 * This store keeps, per log URL, the next index such that every entry before
 * it is in the stream (acknowledged) or was never meant to be (a cross-log
 * duplicate, a skipped entry). The publisher writes it; at a server start
 * (a fresh ring) the supervisor moves each log's position back to it, so the
 * entries not acknowledged are fetched and published again: JetStream's
 * duplicate window drops those it did store (same message id), so each
 * entry reaches the stream once when the restart comes within
 * nats.duplicate_window. Same file format and crash behaviour as the
 * position store (a MAP_SHARED file, rows claimed by the supervisor only).
 *
 * Uses common, conf and shm. */
#ifndef CS_NATS_ACKSTORE_H
#define CS_NATS_ACKSTORE_H

#include <stdint.h>

#include "conf/config.h"
#include "shm/positions.h"
#include "shm/stats.h"

/* Supervisor, at start, when the position store is open and nats.publish is
 * on: opens (creating) the store beside the state file. 0, or -1 (logged;
 * the server then runs without it, as before). */
int ackstore_open(const struct config *cfg);
/* Supervisor, after each log's position was taken from the position store
 * (state_positions_apply): claims missing rows (seeded with the log's
 * position) and, the first time after start only, moves each log's position
 * back to what JetStream acknowledged. */
void ackstore_apply(struct positions *pos, struct stats *stats);
void ackstore_close(void);
/* The store itself (NULL when not open), for the ingest processes: a log
 * started fresh (no saved position) has its starting index recorded in its
 * row before any entry of it enters the ring (ingest_params.start_marks), so
 * a crash before JetStream acknowledged its first entries resumes there
 * rather than at wherever the position store had got to. */
struct positions *ackstore_positions(void);

/* Publisher (nats[0]): every entry of log_id before next is acknowledged. */
void ackstore_note(struct stats *stats, uint32_t log_id, uint64_t next);
/* Publisher: every entry in the ring is acknowledged (checked by the caller
 * between the two calls, see natsnode.c): each log's ingest position is
 * then acknowledged as a whole: _read takes the positions, _commit stores them. */
void ackstore_caught_up_read(struct stats *stats);
void ackstore_caught_up_commit(struct stats *stats);
/* msync, once a second from the publisher. */
void ackstore_sync(void);

#endif
