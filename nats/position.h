/* position.h - the edge node's resume point: the last stream sequence it put
 * in its ring, in a small memory-mapped file.
 *
 * A store is one aligned 64-bit write into a MAP_SHARED page, so it survives
 * a crash of any process (the kernel owns the page) at the cost of a plain
 * memory write per message; natspos_sync() (msync, once a second and at
 * exit) bounds what a crash of the whole machine can lose. Two copies with a
 * check word each, written alternately, so a torn page after a power loss
 * still leaves one good copy. Self-contained on purpose: it stores one
 * number for one process. */
#ifndef CS_NATS_POSITION_H
#define CS_NATS_POSITION_H

#include <stddef.h>
#include <stdint.h>

struct position;

/* Opens (creating) path. *seq = the stored sequence (0 = none yet).
 * NULL with err filled when the file cannot be used (it is never replaced:
 * a position file that exists but is not ours is refused). */
struct position *natspos_open(const char *path, uint64_t *seq, char *err, size_t errlen);
void natspos_store(struct position *p, uint64_t seq);
int natspos_sync(struct position *p);   /* 0 or -1 (errno) */
void natspos_close(struct position *p);

#endif
