/* accesslog.h - the access log (access_log.*): one line per finished
 * connection, written when the connection ends, never per message.
 *
 * Each worker keeps its lines in a buffer (ACCESSLOG_BUF) and appends it to
 * the file with one write() when it is nearly full, once a second, and when
 * the worker stops; the file is opened O_APPEND, so the workers' writes do
 * not mix within a line. SIGHUP reopens the path (logrotate). With no path
 * the lines go to the server's own log (stderr, the journal under systemd,
 * or log_file). The line format is in docs/operations.md ("Access log"). */
#ifndef CS_FANOUT_ACCESSLOG_H
#define CS_FANOUT_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#define ACCESSLOG_BUF (64 * 1024)
#define ACCESSLOG_LINE_MAX 1024      /* a longer path is cut (and ends in "...") */

struct accesslog;

/* path "": the server's log. NULL (why) if the file cannot be opened. */
struct accesslog *accesslog_open(const char *path, char *why, size_t whyn);
/* Appends one line (without its newline). */
void accesslog_line(struct accesslog *a, const char *line, size_t n);
/* Writes what is buffered. */
void accesslog_flush(struct accesslog *a);
/* Flushes, then opens the path again (logrotate moved the file). 0, or -1
 * (why; the old file is kept). */
int accesslog_reopen(struct accesslog *a, char *why, size_t whyn);
void accesslog_free(struct accesslog *a);

/* Appends to out (at most cap bytes, NUL-terminated; returns the length) the
 * request target `target` without the query parameter `token` (its value is
 * a secret), with bytes other than printable ASCII, '"' and '\\' as %XX. */
size_t accesslog_target(char *out, size_t cap, const char *target, size_t len);

#endif
