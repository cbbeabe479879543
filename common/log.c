/* log.c - timestamped, role-tagged lines on stderr.
 * One write(2) per line so lines from several processes never interleave. */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level g_level = LOG_INFO;
static char g_role[32] = "certstream";
static int g_index = -1;

void log_set_level(enum log_level level) { g_level = level; }
enum log_level log_get_level(void) { return g_level; }

void log_set_role(const char *role, int index)
{
    snprintf(g_role, sizeof g_role, "%s", role);
    g_index = index;
}

int log_level_parse(const char *name)
{
    static const struct { const char *n; enum log_level l; } names[] = {
        {"debug", LOG_DEBUG}, {"trace", LOG_DEBUG}, {"info", LOG_INFO},
        {"warn", LOG_WARN},   {"warning", LOG_WARN}, {"error", LOG_ERROR},
        {"off", LOG_OFF},
    };
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].n) == 0)
            return (int)names[i].l;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    switch (level) {
    case LOG_DEBUG: return "debug";
    case LOG_INFO: return "info";
    case LOG_WARN: return "warn";
    case LOG_ERROR: return "error";
    default: return "off";
    }
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    if (level < g_level || level >= LOG_OFF)
        return;
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    int saved = errno;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    char who[48];
    if (g_index >= 0)
        snprintf(who, sizeof who, "%s[%d]", g_role, g_index);
    else
        snprintf(who, sizeof who, "%s", g_role);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s %s pid=%ld: ",
                  ts.tv_nsec / 1000000, tags[level], who, (long)getpid());
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated: still one line */
    line[len++] = '\n';
    /* stderr may be closed or a full pipe; a lost log line is not an error worth more. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}
