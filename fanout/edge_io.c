/* edge_io.c - the network edge below conn.c: reading the PROXY header,
 * recv/writev through TLS or the socket, and releasing what a connection
 * holds (limits, TLS session) at teardown. Calls only tls.c, realaddr.c and
 * shm/; edge.c (the admission side) is above conn.c. See edge.h. */
#include "fanout/edge.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/cidr.h"
#include "common/clock.h"
#include "common/log.h"
#include "fanout/accesslog.h"
#include "fanout/conn.h"
#include "fanout/fanout_internal.h"
#include "fanout/realaddr.h"
#include "fanout/tls.h"
#include "shm/addrtable.h"

/* ---- access log ------------------------------------------------------------------ */

static const char *end_name(const struct conn *c)
{
    switch (c->edge.end) {
    case EDGE_END_DONE: return "done";
    case EDGE_END_CLIENT: return "client";
    case EDGE_END_SLOW: return "slow";
    case EDGE_END_SHUTDOWN: return "shutdown";
    case EDGE_END_TIMEOUT: return "timeout";
    case EDGE_END_ERROR: return "error";
    default: break;
    }
    /* not said by the path that ended it: what the state tells */
    if (c->w->stopping) return "shutdown";
    if (c->state == CS_CLOSING || c->state == CS_REQUEST || c->state == CS_RESPONSE) return "timeout";
    return "error";
}

static void set_end(struct conn *c, uint8_t end)
{
    if (!c->edge.end) c->edge.end = end;
}

void edge_note_ws_close(struct conn *c, uint16_t code, bool echo)
{
    if (!c->edge.ws_close) c->edge.ws_close = code ? code : 1005;
    if (echo) set_end(c, EDGE_END_CLIENT);
    else if (c->w->stopping) set_end(c, EDGE_END_SHUTDOWN);
    else if (code == 1001) set_end(c, EDGE_END_TIMEOUT);   /* idle: the only other 1001 */
    else if (code != 1008) set_end(c, EDGE_END_ERROR);     /* 1002, 1007, 1009: the client's frames */
}

/* One line: time, real address, TCP peer, request, status, bytes, duration,
 * messages, how it ended, the WebSocket close code (docs/operations.md). */
static void access_line(struct conn *c)
{
    struct timespec ts;
    struct tm tm;
    char t[40], addr[CIDR_ADDR_TEXT], peer[CIDR_ADDR_TEXT], line[ACCESSLOG_LINE_MAX + 256], status[8], code[8];
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm) ||
        strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf(t, sizeof t, "-");
    cidr_addr_format(c->edge.addr, addr);
    cidr_addr_format(c->edge.peer, peer);
    const char *req = c->edge.req ? c->edge.req : "- -", *sp = strchr(req, ' ');
    if (c->edge.status) snprintf(status, sizeof status, "%u", (unsigned)c->edge.status);
    else snprintf(status, sizeof status, "-");
    if (c->edge.ws_close) snprintf(code, sizeof code, "%u", (unsigned)c->edge.ws_close);
    else snprintf(code, sizeof code, "-");
    uint64_t dur = c->edge.start_ms ? mono_ms() - c->edge.start_ms : 0;
    int n = snprintf(line, sizeof line,
                     "time=%s.%03ldZ addr=%s peer=%s tls=%d method=%.*s path=%s status=%s bytes=%" PRIu64
                     " duration_ms=%" PRIu64 " messages=%" PRIu64 " end=%s ws_close=%s requests=%" PRIu32,
                     t, ts.tv_nsec / 1000000, addr, peer, c->edge.tls ? 1 : 0, (int)(sp - req), req, sp + 1,
                     status, c->edge.sent, dur, c->edge.msgs, end_name(c), code, c->edge.requests);
    if (n > 0) accesslog_line(c->w->edge->alog, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ---- teardown ---------------------------------------------------------------- */

void edge_conn_free(struct conn *c)
{
    struct worker *w = c->w;
    if (w->edge && w->edge->alog) access_line(c);
    free(c->edge.req);
    c->edge.req = NULL;
    if (c->flags & CF_LIMIT_HELD) {
        /* the total is in shm/stats; the address in shm/addrtable (or, with
         * no table, in shm/stats' buckets as before) */
        stats_conn_release(w->stats, w->slot, (w->edge && w->edge->at) ? NULL : &c->peer.sa);
        c->flags &= (uint8_t)~CF_LIMIT_HELD;
    }
    if (c->edge.flags & EF_ADDR_HELD) {
        addrtable_release(w->edge->at, w->slot, c->edge.entry);
        c->edge.flags &= (uint8_t)~EF_ADDR_HELD;
    }
    free(c->edge.pbuf);
    c->edge.pbuf = NULL;
    if (c->edge.tls) {
        tls_conn_free(c->edge.tls);
        c->edge.tls = NULL;
    }
}

void edge_shutdown(struct conn *c)
{
    set_end(c, c->w->stopping ? EDGE_END_SHUTDOWN : EDGE_END_DONE);
    if (c->edge.tls) tls_close_notify(c->edge.tls);
}

/* ---- PROXY header ------------------------------------------------------------ */

/* The header is read with MSG_PEEK, then exactly its bytes are consumed, so
 * what follows (HTTP or a TLS ClientHello) stays in the socket for the
 * normal path. A header split over several segments is consumed as it
 * arrives into a small buffer (nothing else can be in the socket before the
 * header is complete). 1 done, 0 wait, -1 refused. */
static int proxy_step(struct conn *c)
{
    struct worker *w = c->w;
    uint8_t buf[PROXY_V2_MAX];
    size_t have = c->edge.pbuf_len;
    if (have) memcpy(buf, c->edge.pbuf, have);
    ssize_t n = recv(c->fd, buf + have, sizeof buf - have, MSG_PEEK);
    if (n == 0) {
        errno = ECONNRESET;
        return -1;
    }
    if (n < 0) return would_block(errno) ? 0 : -1;
    struct proxy_result r;
    int used = proxy_parse(buf, have + (size_t)n, &r);
    if (used < 0 || (used == 0 && have + (size_t)n >= sizeof buf)) {
        edge_count(w->edge ? w->edge->at : NULL, w->slot, EDGE_PROXY_REJECTED);
        log_debug("fd %d: no valid PROXY header", c->fd);
        errno = EPROTO;
        return -1;
    }
    size_t take = used > 0 ? (size_t)used - have : (size_t)n;
    if (take) {
        uint8_t sink[PROXY_V2_MAX];
        ssize_t got = recv(c->fd, sink, take, 0);
        if (got != (ssize_t)take) {   /* peeked bytes are there: anything else is an error */
            if (got >= 0) errno = EPROTO;
            return -1;
        }
    }
    if (used == 0) {                 /* incomplete: keep what we consumed */
        if (!c->edge.pbuf) {
            c->edge.pbuf = malloc(PROXY_V2_MAX);
            if (!c->edge.pbuf) return -1;
        }
        memcpy(c->edge.pbuf, buf, have + (size_t)n);
        c->edge.pbuf_len = (uint16_t)(have + (size_t)n);
        return 0;
    }
    free(c->edge.pbuf);
    c->edge.pbuf = NULL;
    c->edge.pbuf_len = 0;
    c->edge.flags &= (uint8_t)~EF_PROXY_WAIT;
    if (!r.local) {
        memcpy(c->edge.peer, r.src, 16);
        memcpy(c->edge.addr, r.src, 16);
    }
    return 1;
}

/* ---- I/O ------------------------------------------------------------------------ */

ssize_t edge_recv(struct conn *c, void *buf, size_t n)
{
    if (c->edge.flags & EF_PROXY_WAIT) {
        int r = proxy_step(c);
        if (r <= 0) {
            if (r == 0) errno = EAGAIN;
            return -1;
        }
    }
    if (!c->edge.tls) {
        ssize_t got = recv(c->fd, buf, n, 0);
        if (got == 0) set_end(c, EDGE_END_CLIENT);
        else if (got < 0 && !would_block(errno)) set_end(c, EDGE_END_ERROR);
        return got;
    }
    bool was_up = tls_conn_established(c->edge.tls);
    ssize_t got = tls_recv(c->edge.tls, buf, n);
    struct worker *w = c->w;
    if (!was_up && tls_conn_established(c->edge.tls)) {
        edge_count(w->edge->at, w->slot, EDGE_TLS_HANDSHAKES);
        if (tls_conn_resumed(c->edge.tls)) edge_count(w->edge->at, w->slot, EDGE_TLS_RESUMED);
    }
    if (got == 0) set_end(c, EDGE_END_CLIENT);
    if (got < 0 && !would_block(errno)) {
        if (!tls_conn_established(c->edge.tls)) edge_count(w->edge->at, w->slot, EDGE_TLS_FAILURES);
        set_end(c, errno == ECONNRESET || errno == EPIPE ? EDGE_END_CLIENT : EDGE_END_ERROR);
        return -1;
    }
    /* the handshake may have queued our flight of records (as arm_write;
     * conn.c is above this file) */
    if (tls_out_pending(c->edge.tls) && !(c->flags & CF_WRITE_ARMED) && event_add(&c->wev, NULL) == 0)
        c->flags |= CF_WRITE_ARMED;
    /* decrypted bytes mbedTLS holds do not wake the socket: come back */
    if (got > 0 && tls_in_pending(c->edge.tls)) event_active(&c->rev, EV_READ, 0);
    return got;
}

/* the status of a response head about to be written ("HTTP/1.1 NNN ") */
static void note_status(struct conn *c, const struct iovec *iov)
{
    const char *p = iov->iov_base;
    if (iov->iov_len >= 13 && memcmp(p, "HTTP/1.1 ", 9) == 0 && p[9] >= '1' && p[9] <= '5' &&
        p[10] >= '0' && p[10] <= '9' && p[11] >= '0' && p[11] <= '9')
        c->edge.status = (uint16_t)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
}

ssize_t edge_writev(struct conn *c, const struct iovec *iov, int niov)
{
    /* access log: one test per write (not per message) */
    if (niov && !c->edge.status && c->edge.req) note_status(c, &iov[0]);
    ssize_t n = !c->edge.tls ? (niov ? writev(c->fd, iov, niov) : 0) : tls_writev(c->edge.tls, iov, niov);
    if (n > 0) c->edge.sent += (uint64_t)n;
    return n;
}

bool edge_out_pending(const struct conn *c)
{
    return c->edge.tls && tls_out_pending(c->edge.tls);
}

bool edge_in_pending(const struct conn *c)
{
    return c->edge.tls && tls_in_pending(c->edge.tls);
}
