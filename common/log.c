/* log.c - role-tagged log lines on stderr (or log_file).
 * One write(2) per line so lines from several processes never interleave.
 *
 * Three shapes, chosen once at start and inherited by every child:
 *   text     2026-11-24T15:20:01.123Z INFO  fanout[3] pid=1234: message
 *   journal  <6>fanout[3] pid=1234: message   (stderr is the journal: the
 *            journal stamps the time and reads the priority, so
 *            `journalctl -p err` works)
 *   json     {"time":"...","level":"info","role":"fanout","index":3,"pid":1234,"msg":"..."} */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/jsonw.h"

static enum log_level g_level = LOG_INFO;
static char g_role[32] = "certstream";
static int g_index = -1;
static bool g_journal;
static bool g_json;
static char *g_file;                       /* log_file, or NULL for stderr as inherited */
static uint32_t (*g_generation)(void);     /* reopen when this moves (SIGUSR1, reload) */
static void (*g_refresh)(void);            /* ... after fetching the settings again */
static uint32_t g_seen_generation;
static int g_stderr = -1;                  /* the original stderr, to go back to */

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

/* JOURNAL_STREAM is "dev:ino" of the journal's stream; it only counts when
 * stderr is still that stream (not redirected by a wrapper script). */
bool log_detect_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    g_journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
    return g_journal;
}

void log_set_json(bool json) { g_json = json; }

static int open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return -1;
    if (fd != STDERR_FILENO) {
        int rc = dup2(fd, STDERR_FILENO);
        int e = errno;
        close(fd);
        if (rc < 0) {
            errno = e;
            return -1;
        }
    }
    return 0;
}

int log_set_file(const char *path, uint32_t (*generation)(void))
{
    free(g_file);
    g_file = NULL;
    g_generation = generation;
    g_seen_generation = generation ? generation() : 0;
    if (g_stderr < 0)
        g_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3); /* -1 if stderr is closed */
    if (!path || !*path)
        return 0;
    if (!(g_file = strdup(path)) || open_file(path) != 0)
        return -1;
    g_journal = false; /* the file is not the journal even if stderr was */
    return 0;
}

void log_set_refresh(void (*refresh)(void)) { g_refresh = refresh; }

int log_set_path(const char *path)
{
    char *p = path && *path ? strdup(path) : NULL;
    if (path && *path && !p)
        return -1;
    bool was_file = g_file != NULL;
    free(g_file);
    g_file = p;
    if (!g_file && was_file && g_stderr >= 0) { /* back to the original stderr */
        if (dup2(g_stderr, STDERR_FILENO) < 0)
            return -1;
        log_detect_journal();
    }
    if (g_file)
        g_journal = false;
    return 0;
}

int log_reopen(void)
{
    if (g_generation)
        g_seen_generation = g_generation();
    return g_file ? open_file(g_file) : 0;
}

static void reopen_if_moved(void)
{
    if (!g_generation || g_generation() == g_seen_generation)
        return;
    g_seen_generation = g_generation();
    int saved = errno;
    if (g_refresh)
        g_refresh(); /* log_format and log_file as reloaded */
    if (g_file && open_file(g_file) != 0) {
        char line[512];
        int n = snprintf(line, sizeof line, "log_file %s: cannot reopen: %s\n", g_file, strerror(errno));
        ssize_t w = write(STDERR_FILENO, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : 0);
        (void)w;
    }
    errno = saved;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    if (level < g_level || level >= LOG_OFF)
        return;
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    static const int prio[] = {7, 6, 4, 3}; /* syslog: debug, info, warning, err */
    int saved = errno;
    reopen_if_moved();
    char line[2048], msg[1800];
    char who[48];
    if (g_index >= 0)
        snprintf(who, sizeof who, "%s[%d]", g_role, g_index);
    else
        snprintf(who, sizeof who, "%s", g_role);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    size_t len;
    if (g_journal && !g_json) {
        int n = snprintf(line, sizeof line, "<%d>%s pid=%ld: %.*s", prio[level], who, (long)getpid(),
                         (int)mlen, msg);
        len = n < 0 ? 0 : (size_t)n;
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        char stamp[40];
        size_t sl = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + sl, sizeof stamp - sl, ".%03ldZ", ts.tv_nsec / 1000000);
        if (g_json) {
            /* A static buffer: logging allocates once per process, not per line. */
            static struct jbuf jb;
            static bool jb_ready;
            if (!jb_ready) {
                jb_init(&jb);
                jb_ready = true;
            }
            jb_reset(&jb);
            jb_printf(&jb, "{\"time\":\"%s\",\"level\":\"%s\",\"role\":", stamp, log_level_name(level));
            jb_cstr(&jb, g_role);
            if (g_index >= 0)
                jb_printf(&jb, ",\"index\":%d", g_index);
            jb_printf(&jb, ",\"pid\":%ld,\"msg\":", (long)getpid());
            jb_str(&jb, msg, mlen);
            jb_putc(&jb, '}');
            len = jb.oom ? 0 : jb.len < sizeof line - 1 ? jb.len : 0;
            if (len)
                memcpy(line, jb.p, len);
            else
                len = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"(line too long)\"}",
                                       stamp, log_level_name(level));
        } else {
            int n = snprintf(line, sizeof line, "%s %s %s pid=%ld: %.*s", stamp, tags[level], who,
                             (long)getpid(), (int)mlen, msg);
            len = n < 0 ? 0 : (size_t)n;
        }
    }
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

void log_limited(struct log_limit *lim, enum log_level level, unsigned interval_secs, const char *fmt, ...)
{
    if (level < g_level)
        return;
    uint64_t now = mono_ms();
    if (lim->window_ms && now - lim->window_ms < (uint64_t)interval_secs * 1000) {
        lim->suppressed++;
        return;
    }
    char msg[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lim->suppressed)
        log_msg(level, "%s (and %llu more like it in the last %u s)", msg,
                (unsigned long long)lim->suppressed, interval_secs);
    else
        log_msg(level, "%s", msg);
    lim->window_ms = now;
    lim->suppressed = 0;
}
