/* ratelimit.h - rate limit on new connections per address, across workers.
 *
 * A token bucket per address (rate_limit.connections_per_minute tokens a
 * minute, at most rate_limit.burst saved up), kept as its equivalent
 * "theoretical arrival time" (GCRA): one 64-bit time per address instead of
 * a token count and a timestamp. An address whose bucket is full again
 * needs no entry, so entries are reused freely; the table is bounded, and
 * when the probe window of a new address is all in use the entry closest to
 * full is taken over (that address's bucket refills early: the limit errs
 * towards letting a client in, never towards refusing a stranger).
 *
 * Shared mapping created by the supervisor before fork; a process-shared
 * robust mutex around a bounded probe (as shm/addrtable.h). */
#ifndef CS_RATELIMIT_H
#define CS_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit;

struct ratelimit *ratelimit_create(uint32_t capacity);
void ratelimit_destroy(struct ratelimit *r);

/* One new connection of `key` at now_us (CLOCK_MONOTONIC, µs). per_minute 0
 * allows everything. True: allowed (and counted). False: refused, with
 * *retry_after_s the whole seconds until one is allowed (>= 1). */
bool ratelimit_take(struct ratelimit *r, const uint8_t key[16], uint64_t now_us,
                    uint32_t per_minute, uint32_t burst, uint32_t *retry_after_s);

#endif
