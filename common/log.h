/* log.h - the process-wide logger.
 *
 * Every line goes to stderr as
 *   2026-11-24T15:20:01.123Z INFO  fanout[3] pid=1234: message
 * so lines from the supervisor and its children can be told apart in one
 * journal. The role is set once after fork (log_set_role). */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* role: "supervisor", "ingest", "fanout", "render"...; index < 0 prints none. */
void log_set_role(const char *role, int index);
/* Parses "debug|info|warn|warning|error|off" (case-insensitive); -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* Called once at start (main), inherited by children: */
/* stderr is the journal (JOURNAL_STREAM matches): "<3>" prefixes, no timestamp. */
bool log_detect_journal(void);
/* log_format: json: one JSON object per line. */
void log_set_json(bool json);
/* log_file: append to path (dup'ed onto stderr, so children and libraries
 * write there too). Every process reopens it when generation() changes
 * (SIGUSR1 after rotation). path NULL/"" = stderr as inherited. 0 or -1 + errno. */
int log_set_file(const char *path, uint32_t (*generation)(void));
/* Reopen now (the supervisor, on SIGUSR1). 0 or -1 + errno. */
int log_reopen(void);
/* A reload: the file to use from now on (NULL/"" = back to the original
 * stderr); takes effect at log_reopen() or, in a child, when generation()
 * moves. 0 or -1 + errno. */
int log_set_path(const char *path);
/* Called (in every process) when generation() moves, before reopening: it
 * fetches log_format and log_file again (log_set_json, log_set_path). */
void log_set_refresh(void (*refresh)(void));

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

/* Rate-limited lines (EMFILE, a state file that cannot be written): the first
 * line of an interval is written, the rest counted and reported with the
 * next one ("... (and 41 more like it in the last 10 s)"). One struct per call
 * site (log_every keeps it static there). */
struct log_limit { uint64_t window_ms; uint64_t suppressed; };
void log_limited(struct log_limit *lim, enum log_level level, unsigned interval_secs, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define log_every(level, secs, ...) do { static struct log_limit lim_; log_limited(&lim_, level, secs, __VA_ARGS__); } while (0)

#define log_debug(...) do { if (log_get_level() <= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
