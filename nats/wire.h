/* wire.h - what goes between an ingest node and the edge nodes on NATS.
 *
 * One JetStream message per ring record: the three rendered messages (full,
 * lite, domains-only) exactly as the ingest node put them in its own ring,
 * `seen` included, so an edge emits the same bytes as the ingest node without
 * rendering anything (docs/scale-out.md explains the choice and its cost).
 *
 * Layout (integers little-endian):
 *   "CSN1"          magic and version
 *   u32 flags       0
 *   u64 cert_index  the entry's index in its log
 *   u64 commit_ns   wall clock of the ingest node's ring commit (latency metrics)
 *   u32 len[3]      lengths of full, lite, domains-only JSON
 *   the three JSON texts, back to back
 * The message id (Nats-Msg-Id) is the certificate's SHA-256 (the cross-log
 * dedup key), so JetStream's duplicate window keeps one copy when several
 * ingest nodes publish the same certificate. */
#ifndef CS_NATS_WIRE_H
#define CS_NATS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "shm/ring.h"

#define WIRE_HEADER_LEN 36u
#define WIRE_MAX_JSON (1u << 22)   /* 4 MiB a format: far above any certificate */
#define WIRE_MSG_ID_LEN 64u        /* lowercase hex SHA-256 */

struct wire_entry {
    uint64_t cert_index;
    uint64_t commit_ns;
    const char *json[RING_NFORMATS];
    size_t len[RING_NFORMATS];
};

/* Bytes wire_encode needs for e. */
size_t wire_size(const struct wire_entry *e);
/* Writes e into out (wire_size(e) bytes). Returns the length. */
size_t wire_encode(const struct wire_entry *e, uint8_t *out);
/* Parses a message; json[] point into buf. 0, or -1 with why set. */
int wire_decode(const uint8_t *buf, size_t len, struct wire_entry *e, const char **why);

/* The message id of a record: the leaf's SHA-256 taken from the full JSON's
 * first "sha256" field ("AB:CD:...", the leaf comes before the chain), as 64
 * lowercase hex digits + NUL. 0, or -1 when the JSON has no such field. */
int wire_msg_id(const char *full_json, size_t len, char id[WIRE_MSG_ID_LEN + 1]);

#endif
