/* edge_io.c - the network edge below conn.c: reading the PROXY header,
 * recv/writev through TLS or the socket, and releasing what a connection
 * holds (limits, TLS session) at teardown. Calls only tls.c, realaddr.c and
 * shm/; edge.c (the admission side) is above conn.c. See edge.h. */
#include "fanout/edge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cidr.h"
#include "common/log.h"
#include "fanout/conn.h"
#include "fanout/fanout_internal.h"
#include "fanout/realaddr.h"
#include "fanout/tls.h"
#include "shm/addrtable.h"

/* ---- teardown ---------------------------------------------------------------- */

void edge_conn_free(struct conn *c)
{
    struct worker *w = c->w;
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
    if (!c->edge.tls) return recv(c->fd, buf, n, 0);
    bool was_up = tls_conn_established(c->edge.tls);
    ssize_t got = tls_recv(c->edge.tls, buf, n);
    struct worker *w = c->w;
    if (!was_up && tls_conn_established(c->edge.tls)) {
        edge_count(w->edge->at, w->slot, EDGE_TLS_HANDSHAKES);
        if (tls_conn_resumed(c->edge.tls)) edge_count(w->edge->at, w->slot, EDGE_TLS_RESUMED);
    }
    if (got < 0 && !would_block(errno)) {
        if (!tls_conn_established(c->edge.tls)) edge_count(w->edge->at, w->slot, EDGE_TLS_FAILURES);
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

ssize_t edge_writev(struct conn *c, const struct iovec *iov, int niov)
{
    if (!c->edge.tls) return niov ? writev(c->fd, iov, niov) : 0;
    return tls_writev(c->edge.tls, iov, niov);
}

bool edge_out_pending(const struct conn *c)
{
    return c->edge.tls && tls_out_pending(c->edge.tls);
}

bool edge_in_pending(const struct conn *c)
{
    return c->edge.tls && tls_in_pending(c->edge.tls);
}
