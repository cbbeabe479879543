/* procinfo.c - resource use of one process from /proc (see procinfo.h). */
#include "common/procinfo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Reads a small /proc file into buf (NUL-terminated); bytes read or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off + 1 < cap) {
        ssize_t n = read(fd, buf + off, cap - 1 - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            (void)close(fd);
            errno = saved;
            return -1;
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    buf[off] = '\0';
    if (close(fd) != 0)
        return -1;
    return (ssize_t)off;
}

/* utime, stime (fields 14, 15) and rss (field 24) of /proc/PID/stat; the
 * fields are counted after the last ')' since the command name may hold
 * spaces and parentheses. */
static int read_stat(pid_t pid, struct procinfo *pi)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (read_small(path, buf, sizeof buf) < 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p) {
        errno = EINVAL;
        return -1;
    }
    p++;
    uint64_t v[23] = {0};   /* fields 3..25 */
    for (int f = 0; f < 23; f++) {
        while (*p == ' ')
            p++;
        if (f == 0) {       /* state: a letter */
            while (*p && *p != ' ')
                p++;
            continue;
        }
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p)
            break;
        v[f] = x > 0 ? (uint64_t)x : 0;
        p = end;
    }
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (hz <= 0)
        hz = 100;
    if (page <= 0)
        page = 4096;
    pi->cpu_us = (v[11] + v[12]) * (1000000u / (uint64_t)hz);  /* fields 14, 15 */
    pi->rss_bytes = v[21] * (uint64_t)page;                      /* field 24 */
    return 0;
}

static void read_pss(pid_t pid, struct procinfo *pi)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", (long)pid);
    pi->pss_bytes = pi->rss_bytes;
    if (read_small(path, buf, sizeof buf) < 0)
        return;
    const char *p = strstr(buf, "\nPss:");
    if (p)
        pi->pss_bytes = strtoull(p + 5, NULL, 10) * 1024u;
}

static int count_fds(pid_t pid, uint64_t *n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    uint64_t k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        k += e->d_name[0] != '.';
    if (closedir(d) != 0)
        return -1;
    *n = pid == getpid() && k > 0 ? k - 1 : k;   /* our own count includes the DIR's fd */
    return 0;
}

int procinfo_read(pid_t pid, struct procinfo *out)
{
    struct procinfo pi = {0};
    if (read_stat(pid, &pi) != 0)
        return -1;
    read_pss(pid, &pi);
    if (count_fds(pid, &pi.open_fds) != 0)
        pi.open_fds = 0;
    struct rlimit rl;
    if (prlimit(pid, RLIMIT_NOFILE, NULL, &rl) == 0)
        pi.max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (uint64_t)rl.rlim_cur;
    *out = pi;
    return 0;
}
