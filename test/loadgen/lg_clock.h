/* lg_clock.h - clocks and CPU time for the load-test tools (certstream-loadgen
 * and writev-ceiling measure the same way). */
#ifndef LG_CLOCK_H
#define LG_CLOCK_H

#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

static inline int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* User + system CPU seconds of this process; 0 if getrusage fails. */
static inline double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

#endif
