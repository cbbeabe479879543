/* log.h - the process-wide logger.
 *
 * Every line goes to stderr as
 *   2026-11-24T15:20:01.123Z INFO  fanout[3] pid=1234: message
 * so lines from the supervisor and its children can be told apart in one
 * journal. The role is set once after fork (log_set_role). */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* role: "supervisor", "ingest", "fanout", "render"...; index < 0 prints none. */
void log_set_role(const char *role, int index);
/* Parses "debug|info|warn|warning|error|off" (case-insensitive); -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

#define log_debug(...) do { if (log_get_level() <= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
