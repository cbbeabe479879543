/* clock.h - the clocks every process reads: monotonic for timeouts and
 * pacing, wall clock for what messages and metrics say. clock_gettime on
 * these clocks cannot fail with a valid clock id (vDSO, no syscall). */
#ifndef CS_CLOCK_H
#define CS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static inline uint64_t mono_ms(void) { return mono_ns() / 1000000u; }
static inline uint64_t wall_ns(void) { return clock_ns(CLOCK_REALTIME); }
static inline uint64_t wall_ms(void) { return wall_ns() / 1000000u; }
static inline double wall_secs(void) { return (double)wall_ns() / 1e9; }

#endif
