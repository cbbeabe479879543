/* accesslog.c - see accesslog.h. Written by hand: a buffer and an
 * O_APPEND descriptor are all it takes; stdio's FILE would flush at its own
 * moments, possibly in the middle of a line. */
#include "fanout/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct accesslog {
    char *path;          /* NULL: the server's log */
    int fd;
    size_t len;
    bool failing;        /* the last write failed (logged once until one works) */
    char buf[ACCESSLOG_BUF];
};

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

struct accesslog *accesslog_open(const char *path, char *why, size_t whyn)
{
    struct accesslog *a = malloc(sizeof *a);
    if (!a) return snprintf(why, whyn, "out of memory"), NULL;
    a->len = 0;
    a->failing = false;
    a->fd = -1;
    a->path = NULL;
    if (path && path[0]) {
        a->path = strdup(path);
        a->fd = a->path ? open_path(path) : -1;
        if (a->fd < 0) {
            snprintf(why, whyn, "%s: %s", path, a->path ? strerror(errno) : "out of memory");
            free(a->path);
            free(a);
            return NULL;
        }
    }
    return a;
}

void accesslog_flush(struct accesslog *a)
{
    if (!a || a->len == 0) return;
    size_t off = 0;
    while (off < a->len) {
        ssize_t n = write(a->fd, a->buf + off, a->len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            /* a full disk must not stop the streams: the lines are lost, said once */
            if (!a->failing) log_error("access log %s: %s; lines are dropped", a->path, strerror(errno));
            a->failing = true;
            break;
        }
        off += (size_t)n;
    }
    if (off == a->len && a->failing) {
        log_info("access log %s: writing again", a->path);
        a->failing = false;
    }
    a->len = 0;
}

void accesslog_line(struct accesslog *a, const char *line, size_t n)
{
    if (!a) return;
    if (!a->path) {
        log_info("access %.*s", (int)n, line);
        return;
    }
    if (n + 1 > sizeof a->buf) n = sizeof a->buf - 1;
    if (a->len + n + 1 > sizeof a->buf) accesslog_flush(a);
    memcpy(a->buf + a->len, line, n);
    a->buf[a->len + n] = '\n';
    a->len += n + 1;
    if (a->len > sizeof a->buf - ACCESSLOG_LINE_MAX) accesslog_flush(a);
}

int accesslog_reopen(struct accesslog *a, char *why, size_t whyn)
{
    if (!a || !a->path) return 0;
    accesslog_flush(a);
    int fd = open_path(a->path);
    if (fd < 0) {
        snprintf(why, whyn, "%s: %s", a->path, strerror(errno));
        return -1;
    }
    if (close(a->fd) != 0) log_debug("close access log: %s", strerror(errno));
    a->fd = fd;
    return 0;
}

void accesslog_free(struct accesslog *a)
{
    if (!a) return;
    accesslog_flush(a);
    if (a->fd >= 0 && close(a->fd) != 0) log_debug("close access log: %s", strerror(errno));
    free(a->path);
    free(a);
}

/* ---- the request target ------------------------------------------------------ */

/* Appends p escaped at *o while it fits below lim; false when cut. */
static bool put_escaped(char *out, size_t *o, size_t lim, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            if (*o + 1 > lim) return false;
            out[(*o)++] = (char)ch;
        } else {
            if (*o + 3 > lim) return false;
            out[(*o)++] = '%';
            out[(*o)++] = hex[ch >> 4];
            out[(*o)++] = hex[ch & 15];
        }
    }
    return true;
}

size_t accesslog_target(char *out, size_t cap, const char *target, size_t len)
{
    if (cap < 4) {
        if (cap) out[0] = '\0';
        return 0;
    }
    size_t lim = cap - 4, o = 0;   /* room kept for "..." and the NUL */
    const char *q = memchr(target, '?', len);
    size_t plen = q ? (size_t)(q - target) : len;
    bool ok = put_escaped(out, &o, lim, target, plen), first = true;
    if (q && ok) {
        /* the query's parameters, in order, except token[=...] */
        const char *p = q + 1, *end = target + len;
        for (;;) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *pe = amp ? amp : end;
            size_t n = (size_t)(pe - p);
            bool token = n >= 5 && memcmp(p, "token", 5) == 0 && (n == 5 || p[5] == '=');
            if (!token && n > 0) {
                if (o + 1 > lim) {
                    ok = false;
                    break;
                }
                out[o++] = first ? '?' : '&';
                first = false;
                if (!(ok = put_escaped(out, &o, lim, p, n))) break;
            }
            if (!amp) break;
            p = amp + 1;
        }
    }
    if (!ok) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return o;
}
