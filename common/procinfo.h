/* procinfo.h - resource use of one process, read from Linux's /proc.
 *
 * For the process metrics of /metrics: a fanout worker reads the numbers of
 * every process of the server (same user, so /proc allows it) at scrape
 * time. Hand-written because it is three small files and one syscall; a
 * process library (libproc2) would add a dependency for five numbers. */
#ifndef CS_PROCINFO_H
#define CS_PROCINFO_H

#include <stdint.h>
#include <sys/types.h>

struct procinfo {
    uint64_t rss_bytes;      /* resident set (/proc/PID/stat) */
    uint64_t pss_bytes;      /* proportional set (/proc/PID/smaps_rollup); rss if unavailable */
    uint64_t cpu_us;         /* user + system CPU time */
    uint64_t open_fds;       /* entries of /proc/PID/fd */
    uint64_t max_fds;        /* soft RLIMIT_NOFILE */
};

/* 0, or -1 with errno when the process is gone or cannot be read. */
int procinfo_read(pid_t pid, struct procinfo *out);

#endif
