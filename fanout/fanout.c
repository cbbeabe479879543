/* fanout.c - the fanout worker process: its listener and event loop, the
 * life of a connection (request, upgrade, streaming, close), and the hot path
 * that streams the ring to clients.
 *
 * A streaming client is a socket, a cursor into the ring and an offset into
 * the record at the cursor. On every wakeup each client gets everything from
 * its cursor to the head in one writev() of iovecs pointing into the ring;
 * nothing is copied or buffered per client except a few control bytes
 * (Pong, Ping, Close, heartbeat) in a fixed array. The bytes sent are
 * validated against lapping after the write (Aeron style).
 *
 * Policies:
 * - Slow clients: a client whose socket is full and that is more than
 *   buffer_size records or ring_size/2 bytes behind the head is closed
 *   cleanly (WebSocket 1008 "client too slow" after the record in flight;
 *   SSE: the response ends). One whose unsent bytes were overwritten anyway
 *   is dropped at the TCP level (what it got may be corrupt). Both count in
 *   ST_SLOW_DISCONNECTS. Lag is judged only while the client's socket is
 *   full, so a client that drains everything it is given survives a burst.
 * - SSE resume (Last-Event-ID): see sse_start().
 * - Connection limits apply to streaming clients (WebSocket, SSE); the small
 *   endpoints are not counted.
 * - The small endpoints keep HTTP/1.1 connections alive; pipelined requests
 *   are not supported (a request followed by more bytes is answered and the
 *   connection closed). Streams and errors always close. */
#include "fanout/fanout_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "fanout/ws_handshake.h"

#define READ_CHUNK 16384
#define REQUEST_SLACK 2048          /* early WebSocket bytes read along with the request */
#define FLUSH_BYTE_BUDGET (512u * 1024u)
#define FLUSH_BLOCKED_BUDGET (64u * 1024u)
#define CLOSING_TIMEOUT_SECS 5      /* wait for our last bytes to drain */
#define LINGER_TIMEOUT_SECS 2
#define SHUTDOWN_GRACE_SECS 2
#define ACCEPT_BATCH 64

static int conn_flush(struct conn *c);

/* Low 32 bits of the monotonic clock in ms: differences stay exact for 49
 * days, far longer than any gap compared here (heartbeats refresh it). */
static uint32_t mono_ms32(void) { return (uint32_t)mono_ms(); }

static struct timeval tv_secs(uint32_t s) { return (struct timeval){ .tv_sec = s, .tv_usec = 0 }; }

static bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

/* ---- streaming lists --------------------------------------------------- */

static void list_add(struct conn **head, struct conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head) (*head)->prev = c;
    *head = c;
}

static void list_del(struct conn **head, struct conn *c)
{
    if (c->prev) c->prev->next = c->next;
    else *head = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static enum stat_id gauge_id(const struct conn *c)
{
    return (enum stat_id)((c->proto == PROTO_WS ? ST_CONN_WS_FULL : ST_CONN_SSE_FULL) + c->fmt);
}

/* ---- teardown ----------------------------------------------------------- */

static void conn_free(struct conn *c)
{
    struct worker *w = c->w;
    event_del(&c->rev);
    event_del(&c->wev);
    if (c->flags & CF_LISTED) list_del(&w->streams[c->proto][c->fmt], c);
    if (c->flags & CF_GAUGED) stats_add(w->stats, w->slot, gauge_id(c), -1);
    if (c->flags & CF_LIMIT_HELD) stats_conn_release(w->stats, w->slot, &c->peer.sa);
    if (c->all_prev) c->all_prev->all_next = c->all_next;
    else w->all = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    if (close(c->fd) != 0) log_debug("close: %s", strerror(errno));
    free(c->rbuf);
    free(c->out);
    free(c);
    w->nconns--;
    if (w->stopping && w->nconns == 0) event_base_loopexit(w->base, NULL);
}

static void on_read(evutil_socket_t fd, short what, void *arg);

/* Stops the read side's normal handling and re-arms it with a timeout. */
static int rearm_read(struct conn *c, short flags, const struct timeval *tv)
{
    event_del(&c->rev);
    if (event_assign(&c->rev, c->w->base, c->fd, flags, on_read, c) != 0 ||
        event_add(&c->rev, tv) != 0) {
        conn_free(c);
        return -1;
    }
    return 0;
}

/* Only a timer: the peer's input is finished but our output is not. */
static int rearm_read_timeout(struct conn *c, const struct timeval *tv)
{
    event_del(&c->rev);
    if (event_assign(&c->rev, c->w->base, -1, 0, on_read, c) != 0 || event_add(&c->rev, tv) != 0) {
        conn_free(c);
        return -1;
    }
    return 0;
}

/* Lingering close: shut the write side so the peer sees our last bytes and
 * EOF, then drain its input until it closes too (closing with unread input
 * would send a RST that can destroy our last bytes in flight). */
static int conn_linger(struct conn *c)
{
    event_del(&c->wev);
    c->flags &= (uint8_t)~CF_WRITE_ARMED;
    if (shutdown(c->fd, SHUT_WR) != 0) {
        conn_free(c);
        return -1;
    }
    c->state = CS_LINGER;
    struct timeval tv = tv_secs(LINGER_TIMEOUT_SECS);
    return rearm_read(c, EV_READ | EV_PERSIST, &tv);
}

/* No more records for this client: what is queued (the rest of a partial
 * record, then control bytes) is written, then the connection lingers out. */
static void enter_closing(struct conn *c)
{
    if (c->flags & CF_LISTED) {
        list_del(&c->w->streams[c->proto][c->fmt], c);
        c->flags &= (uint8_t)~CF_LISTED;
    }
    c->state = CS_CLOSING;
    c->flags |= CF_CLOSE_AFTER;
}

/* Appends control bytes. Non-close frames may not use the reserve kept for a
 * Close frame; they are dropped when there is no room (a Ping or heartbeat is
 * redundant if the previous one has not left yet; RFC 6455 5.5.3 allows
 * answering only the latest Ping). */
static bool ctl_append(struct conn *c, const void *p, size_t n, bool may_use_reserve)
{
    size_t limit = may_use_reserve ? CONN_CTL_CAP : CONN_CTL_CAP - WS_CLOSE_RESERVE;
    if (c->ctl_off == c->ctl_len) c->ctl_off = c->ctl_len = 0;
    if (c->ctl_len + n > limit && c->ctl_off > 0) {
        memmove(c->ctl, c->ctl + c->ctl_off, (size_t)(c->ctl_len - c->ctl_off));
        c->ctl_len = (uint16_t)(c->ctl_len - c->ctl_off);
        c->ctl_off = 0;
    }
    if (c->ctl_len + n > limit) return false;
    memcpy(c->ctl + c->ctl_len, p, n);
    c->ctl_len = (uint16_t)(c->ctl_len + n);
    return true;
}

/* Sends a Close frame (code 0: an empty one) after anything in flight and
 * closes. Returns -1 if the connection is gone. */
static int ws_close(struct conn *c, uint16_t code, const char *reason)
{
    if (c->state == CS_CLOSING || c->state == CS_LINGER) return 0;
    uint8_t f[2 + WS_MAX_CONTROL];
    size_t n;
    if (code) {
        n = ws_close_frame(f, code, reason);
    } else {
        f[0] = 0x80 | WS_OP_CLOSE;
        f[1] = 0;
        n = 2;
    }
    ctl_append(c, f, n, true);
    enter_closing(c);
    struct timeval tv = tv_secs(CLOSING_TIMEOUT_SECS);
    if (rearm_read(c, EV_READ | EV_PERSIST, &tv) != 0) return -1;
    return conn_flush(c);
}

/* SSE has no close message: the response ends when the connection does. */
static int sse_end(struct conn *c)
{
    if (c->state == CS_CLOSING || c->state == CS_LINGER) return 0;
    enter_closing(c);
    struct timeval tv = tv_secs(CLOSING_TIMEOUT_SECS);
    if (rearm_read(c, EV_READ | EV_PERSIST, &tv) != 0) return -1;
    return conn_flush(c);
}

/* ---- the worker's walk of the ring ------------------------------------- */

static void recent_push(struct worker *w, uint64_t pos)
{
    w->recent[w->recent_count & (w->recent_cap - 1)] = pos;
    w->recent_count++;
}

static uint64_t recent_n(const struct worker *w)
{
    return w->recent_count < w->recent_cap ? w->recent_count : w->recent_cap;
}

bool worker_recent_at(const struct worker *w, uint64_t back, uint64_t *pos)
{
    if (back >= recent_n(w)) return false;
    *pos = w->recent[(w->recent_count - 1 - back) & (w->recent_cap - 1)];
    return true;
}

/* Message records from cursor (inclusive) to the head, found by binary search
 * over recent[] (positions only grow). A cursor older than everything known
 * counts as all of recent[]. */
static uint64_t records_behind(const struct worker *w, uint64_t cursor)
{
    uint64_t n = recent_n(w), lo = 0, hi = n;   /* index back from newest */
    uint64_t pos;
    if (n == 0 || !worker_recent_at(w, 0, &pos) || cursor > pos) return 0;
    /* find the smallest `back` whose position is < cursor */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        worker_recent_at(w, mid, &pos);
        if (pos < cursor) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Advances the worker's head over newly committed records. */
void worker_scan(struct worker *w)
{
    size_t size = ring_size(w->ring);
    for (;;) {
        const struct ring_record *rec;
        enum ring_status st = ring_peek(w->ring, w->head, &rec);
        if (st == RING_EMPTY) return;
        uint64_t next = 0;
        uint32_t kind = 0;
        if (st == RING_OK) {
            next = ring_next(rec);
            kind = rec->kind;
        }
        if (st != RING_OK || next <= w->head || next - w->head > size ||
            ring_lapped_since(w->ring, w->head)) {
            /* this worker fell a whole ring behind (or the ring was reset):
             * start over at the live position; clients behind will be
             * found lapped on their own */
            log_warn("ring walk lost its place at %" PRIu64 "; resyncing", w->head);
            w->head = ring_start_position(w->ring);
            return;
        }
        if (kind == RING_KIND_MESSAGE) {
            recent_push(w, w->head);
            w->last_seq = w->head;
        }
        w->head = next;
    }
}

static bool too_slow(const struct worker *w, const struct conn *c)
{
    if (w->head > c->cursor && w->head - c->cursor > ring_size(w->ring) / 2) return true;
    return w->cfg->buffer_size && records_behind(w, c->cursor) > w->cfg->buffer_size;
}

void worker_publish_counters(struct worker *w)
{
    for (int f = 0; f < RING_NFORMATS; f++) {
        if (w->pend_msgs[f]) {
            stats_add(w->stats, w->slot, (enum stat_id)(ST_MSG_SENT_FULL + f), (int64_t)w->pend_msgs[f]);
            w->pend_msgs[f] = 0;
        }
    }
    if (w->pend_bytes) {
        stats_add(w->stats, w->slot, ST_BYTES_SENT, (int64_t)w->pend_bytes);
        w->pend_bytes = 0;
    }
}

/* ---- the hot path -------------------------------------------------------- */

/* iovecs for the client's format of one record, skipping `skip` bytes already
 * sent. Returns the bytes added, 0 if the record's spans are not sane (it is
 * being overwritten: the caller treats that as lapped). */
static uint32_t record_iov(const struct conn *c, const struct ring_record *rec, uint32_t skip,
                           struct iovec *iov, int *niov)
{
    const uint8_t *base = ring_record_bytes(rec);
    uint32_t total = rec->total_len;
    if (c->proto == PROTO_WS) {
        struct ring_span s = rec->ws[c->fmt];
        if (s.len == 0 || s.off > total || s.len > total - s.off || skip >= s.len) return 0;
        iov[(*niov)++] = (struct iovec){ (void *)(base + s.off + skip), s.len - skip };
        return s.len - skip;
    }
    struct ring_span h = rec->sse_head, t = rec->sse_tail[c->fmt];
    if (h.len == 0 || t.len == 0 || h.off > total || h.len > total - h.off || t.off > total ||
        t.len > total - t.off || skip >= h.len + t.len)
        return 0;
    if (skip < h.len)
        iov[(*niov)++] = (struct iovec){ (void *)(base + h.off + skip), h.len - skip };
    uint32_t tskip = skip > h.len ? skip - h.len : 0;
    iov[(*niov)++] = (struct iovec){ (void *)(base + t.off + tskip), t.len - tskip };
    return h.len + t.len - skip;
}

/* A client whose unsent bytes were overwritten: what it got may be corrupt,
 * so no close frame can follow; drop the TCP connection. */
static int drop_lapped(struct conn *c)
{
    if (c->state == CS_WS || c->state == CS_SSE)   /* else already counted */
        stats_add(c->w->stats, c->w->slot, ST_SLOW_DISCONNECTS, 1);
    log_debug("fd %d lapped by the ring: dropped", c->fd);
    conn_free(c);
    return -1;
}

/* A client too far behind: close it cleanly while the stream is still intact. */
static int slow_close(struct conn *c)
{
    stats_add(c->w->stats, c->w->slot, ST_SLOW_DISCONNECTS, 1);
    log_debug("fd %d too slow: closing", c->fd);
    return c->proto == PROTO_WS ? ws_close(c, WS_CLOSE_POLICY, "client too slow") : sse_end(c);
}

static void arm_write(struct conn *c)
{
    if (c->flags & CF_WRITE_ARMED) return;
    if (event_add(&c->wev, NULL) == 0) c->flags |= CF_WRITE_ARMED;
}

static void disarm_write(struct conn *c)
{
    if (!(c->flags & CF_WRITE_ARMED)) return;
    event_del(&c->wev);
    c->flags &= (uint8_t)~CF_WRITE_ARMED;
}

/* The response is out: wait for the next request on the same connection. */
static int conn_keepalive(struct conn *c)
{
    if (c->w->stopping) return conn_linger(c);
    uint32_t rt = c->w->cfg->limits.request_timeout_secs ? c->w->cfg->limits.request_timeout_secs : 10;
    c->state = CS_REQUEST;
    c->flags = (uint8_t)((c->flags & ~CF_KEEPALIVE) | CF_REUSED);
    c->deadline_ms = mono_ms() + rt * 1000u;
    struct timeval tv = tv_secs(rt);
    return rearm_read(c, EV_READ | EV_PERSIST, &tv);
}

/* Writes what the client is owed, in stream order: a one-shot response, the
 * rest of a partially sent record, queued control bytes, then records from
 * the cursor towards the head (one writev). Returns -1 if c was freed. */
static int conn_flush(struct conn *c)
{
    struct worker *w = c->w;
    struct iovec *iov = w->iov;
    struct flush_rec *recs = w->recs;
    int niov = 0, nrec = 0;
    size_t total = 0;
    uint64_t start = c->cursor, pos = c->cursor;
    bool more = false;
    const struct ring_record *rec;

    if (c->out) {
        iov[niov++] = (struct iovec){ c->out + c->out_off, c->out_len - c->out_off };
        total += c->out_len - c->out_off;
    }
    if (c->rec_off) {
        uint32_t n;
        if (ring_peek(w->ring, pos, &rec) != RING_OK ||
            (n = record_iov(c, rec, c->rec_off, iov, &niov)) == 0)
            return drop_lapped(c);
        recs[nrec++] = (struct flush_rec){ pos, ring_next(rec), n };
        pos = ring_next(rec);
        total += n;
    }
    if (c->ctl_len > c->ctl_off) {
        iov[niov++] = (struct iovec){ c->ctl + c->ctl_off, (size_t)(c->ctl_len - c->ctl_off) };
        total += (size_t)(c->ctl_len - c->ctl_off);
    }
    if (c->state == CS_WS || c->state == CS_SSE) {
        if ((c->flags & CF_BLOCKED) && too_slow(w, c)) return slow_close(c);
        bool memo = w->memo_on && niov == 0;
        if (memo && w->memo_valid && w->memo_from == pos && w->memo_proto == c->proto &&
            w->memo_fmt == c->fmt) {
            iov = w->memo_iov;
            recs = w->memo_recs;
            niov = w->memo_niov;
            nrec = w->memo_nrec;
            total = w->memo_total;
            pos = w->memo_end;
            more = w->memo_more;
            goto write;
        }
        if (memo) {
            /* nothing precedes the records: walk straight into the memo */
            w->memo_valid = false;
            iov = w->memo_iov;
            recs = w->memo_recs;
        }
        /* a client whose socket was full gets a small walk: its buffer
         * rarely has room for more, and the walk would be wasted */
        size_t budget = (c->flags & CF_BLOCKED) ? FLUSH_BLOCKED_BUDGET : FLUSH_BYTE_BUDGET;
        while (niov < IOV_MAX - 2 && total < budget) {
            enum ring_status st = ring_peek(w->ring, pos, &rec);
            if (st == RING_EMPTY) break;
            if (st != RING_OK) {
                if (nrec == 0 && c->rec_off == 0) return slow_close(c);
                break;  /* send what is ready; the next flush sees the lap */
            }
            uint64_t next = ring_next(rec);
            if (next <= pos) {
                if (nrec == 0 && c->rec_off == 0) return slow_close(c);
                break;
            }
            if (rec->kind == RING_KIND_MESSAGE) {
                uint32_t n = record_iov(c, rec, 0, iov, &niov);
                if (n == 0) {
                    if (nrec == 0 && c->rec_off == 0) return slow_close(c);
                    break;
                }
                recs[nrec++] = (struct flush_rec){ pos, next, n };
                total += n;
            }
            pos = next;
        }
        more = niov >= IOV_MAX - 2 || total >= budget;
        if (memo) {
            w->memo_valid = true;
            w->memo_from = start;
            w->memo_proto = c->proto;
            w->memo_fmt = c->fmt;
            w->memo_niov = niov;
            w->memo_nrec = nrec;
            w->memo_total = total;
            w->memo_end = pos;
            w->memo_more = more;
        }
    }

write:
    if (niov == 0) {
        c->cursor = pos;   /* skipped padding */
        disarm_write(c);
        c->flags &= (uint8_t)~CF_BLOCKED;
        if (c->flags & CF_CLOSE_AFTER) return conn_linger(c);
        return 0;
    }

    ssize_t wr = writev(c->fd, iov, niov);
    if (wr < 0) {
        if (would_block(errno)) {
            c->flags |= CF_BLOCKED;
            arm_write(c);
            return 0;
        }
        log_debug("writev fd %d: %s", c->fd, strerror(errno));
        conn_free(c);
        return -1;
    }
    if (nrec && ring_lapped_since(w->ring, start)) return drop_lapped(c);

    /* account for what left, in the same order the iovecs were built */
    size_t left = (size_t)wr;
    int ri = 0;
    uint64_t msgs = 0;
    w->pend_bytes += left;
    if (c->out) {
        size_t r = c->out_len - c->out_off;
        if (left < r) {
            c->out_off += left;
            left = 0;
        } else {
            left -= r;
            free(c->out);
            c->out = NULL;
            c->out_len = c->out_off = 0;
        }
    }
    bool stuck = false;   /* a partial record blocks everything after it */
    if (c->rec_off) {
        if (left < recs[0].len) {
            c->rec_off += (uint32_t)left;
            left = 0;
            stuck = true;
        } else {
            left -= recs[0].len;
            c->cursor = recs[0].next;
            c->rec_off = 0;
            msgs++;
        }
        ri = 1;
    }
    if (!stuck && c->ctl_len > c->ctl_off) {
        size_t r = (size_t)(c->ctl_len - c->ctl_off);
        if (left < r) {
            c->ctl_off = (uint16_t)(c->ctl_off + left);
            left = 0;
            stuck = true;
        } else {
            left -= r;
            c->ctl_off = c->ctl_len = 0;
        }
    }
    for (; !stuck && ri < nrec; ri++) {
        if (left >= recs[ri].len) {
            left -= recs[ri].len;
            c->cursor = recs[ri].next;
            msgs++;
        } else {
            c->cursor = recs[ri].pos;
            c->rec_off = (uint32_t)left;
            left = 0;
            stuck = true;
        }
    }
    if (!stuck && (size_t)wr == total) c->cursor = pos;   /* past trailing padding */
    w->pend_msgs[c->fmt] += msgs;
    if (c->proto == PROTO_SSE && wr > 0) c->last_send = mono_ms32();

    if ((size_t)wr < total) {
        c->flags |= CF_BLOCKED;
        arm_write(c);
        return 0;
    }
    c->flags &= (uint8_t)~CF_BLOCKED;
    if (more) {
        arm_write(c);   /* budget used up: continue when writable, others go first */
        return 0;
    }
    disarm_write(c);
    if ((c->flags & CF_CLOSE_AFTER) && !c->out && c->rec_off == 0 && c->ctl_len == c->ctl_off)
        return conn_linger(c);
    if (c->state == CS_RESPONSE && (c->flags & CF_KEEPALIVE) && !c->out) return conn_keepalive(c);
    return 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    c->flags &= (uint8_t)~CF_WRITE_ARMED;
    conn_flush(c);
}

/* New records: bring every streaming client up to the head. */
static void worker_pump(struct worker *w)
{
    worker_scan(w);
    w->memo_on = true;
    w->memo_valid = false;
    for (int p = PROTO_WS; p <= PROTO_SSE; p++) {
        for (int f = 0; f < RING_NFORMATS; f++) {
            struct conn *next;
            for (struct conn *c = w->streams[p][f]; c; c = next) {
                next = c->next;
                if (c->flags & CF_WRITE_ARMED) {
                    /* waiting for the socket: only check that it is not too far behind */
                    if ((c->flags & CF_BLOCKED) && too_slow(w, c)) slow_close(c);
                    continue;
                }
                if (c->cursor >= w->head && c->rec_off == 0) continue;
                conn_flush(c);
            }
        }
    }
    w->memo_on = false;
    worker_publish_counters(w);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t v;
    if (read(fd, &v, sizeof v) < 0 && !would_block(errno))
        log_warn("eventfd read: %s", strerror(errno));
    worker_pump(arg);
}

/* ---- keep-alive timers --------------------------------------------------- */

static void broadcast_ws_control(struct worker *w, const uint8_t *frame, size_t n)
{
    for (int f = 0; f < RING_NFORMATS; f++) {
        struct conn *next;
        for (struct conn *c = w->streams[PROTO_WS][f]; c; c = next) {
            next = c->next;
            if (ctl_append(c, frame, n, false) && !(c->flags & CF_WRITE_ARMED)) conn_flush(c);
        }
    }
    worker_publish_counters(w);
}

/* Every heartbeat_secs, not per message: the frame is built in a jbuf with
 * the same float format as the certificate messages' timestamps. */
static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct jbuf b;
    jb_init(&b);
    uint8_t hdr[10];
    jb_put(&b, hdr, 2); /* room for the 2-byte header of a short text frame */
    static const char head[] = "{\"message_type\":\"heartbeat\",\"timestamp\":";
    jb_put(&b, head, sizeof head - 1);
    jb_ms_seconds(&b, (int64_t)wall_ms());
    jb_putc(&b, '}');
    if (!b.oom) {
        size_t jn = b.len - 2;
        size_t h = ws_frame_header(hdr, WS_OP_TEXT, jn);
        if (h == 2) {
            memcpy(b.p, hdr, 2);
            broadcast_ws_control(arg, (const uint8_t *)b.p, b.len);
        }
    }
    jb_free(&b);
}

static void on_ping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    static const uint8_t ping[2] = { 0x80 | WS_OP_PING, 0 };
    broadcast_ws_control(arg, ping, sizeof ping);
}

/* Once a second: SSE comment heartbeats after silence, and a safety pump in
 * case a wakeup was coalesced away. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    uint32_t now = mono_ms32(), every = w->cfg->keepalive.sse_heartbeat_secs * 1000u;
    worker_pump(w);
    if (every == 0) return;
    static const char hb[] = ":heartbeat\n\n";
    for (int f = 0; f < RING_NFORMATS; f++) {
        struct conn *next;
        for (struct conn *c = w->streams[PROTO_SSE][f]; c; c = next) {
            next = c->next;
            if (now - c->last_send < every) continue;
            c->last_send = now;
            if (ctl_append(c, hb, sizeof hb - 1, false) && !(c->flags & CF_WRITE_ARMED)) conn_flush(c);
        }
    }
}

/* ---- HTTP ----------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* A whole response. Successful answers (and 404/503) keep the connection
 * for another request when the client allows it (health checkers, metric
 * scrapers); errors close it. */
static void respond(struct conn *c, int status, const char *ctype, const char *extra,
                    const char *body, size_t blen, bool head_only)
{
    struct jbuf b;
    jb_init(&b);
    bool keep = (c->flags & CF_KEEPALIVE) && (status == 200 || status == 404 || status == 503);
    if (!keep) c->flags &= (uint8_t)~CF_KEEPALIVE;
    jb_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Cache-Control: no-cache\r\nConnection: %s\r\n%s\r\n",
              status, reason_phrase(status), ctype, blen, keep ? "keep-alive" : "close",
              extra ? extra : "");
    if (!head_only) jb_put(&b, body, blen);
    if (b.oom) {
        jb_free(&b);
        conn_free(c);
        return;
    }
    free(c->rbuf);
    c->rbuf = NULL;
    c->out = b.p;
    c->out_len = b.len;
    c->out_off = 0;
    c->state = CS_RESPONSE;
    if (!keep) c->flags |= CF_CLOSE_AFTER;
    /* a client that never reads is dropped; input is ignored, except that
     * a kept-alive connection leaves its next request in the socket */
    struct timeval tv = tv_secs(CLOSING_TIMEOUT_SECS);
    if ((keep ? rearm_read_timeout(c, &tv) : rearm_read(c, EV_READ | EV_PERSIST, &tv)) != 0) return;
    conn_flush(c);
}

static void respond_text(struct conn *c, int status, const char *extra, const char *text, bool head)
{
    respond(c, status, "text/plain; charset=utf-8", extra, text, strlen(text), head);
}

static void respond_not_found(struct conn *c, bool head)
{
    static const char body[] = "{\"error\":\"Not Found\"}";
    respond(c, 404, "application/json", NULL, body, sizeof body - 1, head);
}

static void respond_jbuf(struct conn *c, int status, const char *ctype, struct jbuf *b, bool head)
{
    if (b->oom) {
        jb_free(b);
        conn_free(c);
        return;
    }
    respond(c, status, ctype, NULL, b->p ? b->p : "", b->len, head);
    jb_free(b);
}

static bool token_equal(struct http_str a, const char *tok)
{
    size_t tl = strlen(tok), n = a.len > tl ? a.len : tl;
    unsigned char d = (unsigned char)(a.len != tl || tl == 0);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < a.len ? (unsigned char)a.p[i] : 0;
        unsigned char y = i < tl ? (unsigned char)tok[i] : 0;
        d |= x ^ y;
    }
    return d == 0;
}

/* The configured header with one of the tokens, with or without "Bearer ";
 * every token is compared in full, so timing does not reveal which or how
 * much matched. */
static bool auth_ok(const struct worker *w, const struct http_request *req)
{
    const struct config *cfg = w->cfg;
    if (!cfg->auth.enabled) return true;
    const char *name = cfg->auth.header_name && *cfg->auth.header_name ? cfg->auth.header_name
                                                                        : "Authorization";
    const struct http_str *v = http_header_get(req, name);
    if (!v) return false;
    struct http_str t = *v;
    if (t.len >= 7 && strncasecmp(t.p, "Bearer ", 7) == 0) {
        t.p += 7;
        t.len -= 7;
        while (t.len && *t.p == ' ') { t.p++; t.len--; }
    }
    bool ok = false;
    for (size_t i = 0; i < cfg->auth.n_tokens; i++)
        if (cfg->auth.tokens[i]) ok |= token_equal(t, cfg->auth.tokens[i]);
    return ok;
}

static bool stream_enabled(const struct config *cfg, enum ring_format f)
{
    return f == RING_FULL ? cfg->streams.full : f == RING_LITE ? cfg->streams.lite : cfg->streams.domains_only;
}

static bool limit_ok(struct conn *c)
{
    struct worker *w = c->w;
    if (!w->cfg->connection_limit.enabled) return true;
    if (!stats_conn_acquire(w->stats, w->slot, &c->peer.sa, w->cfg->connection_limit.max_connections,
                            w->cfg->connection_limit.per_ip_limit)) {
        stats_add(w->stats, w->slot, ST_CONN_REJECTED_LIMIT, 1);
        return false;
    }
    c->flags |= CF_LIMIT_HELD;
    return true;
}

/* Shared by both protocols once the request is accepted. */
static int start_stream(struct conn *c, int proto, enum ring_format f, uint64_t cursor)
{
    struct worker *w = c->w;
    free(c->rbuf);
    c->rbuf = NULL;
    c->proto = (uint8_t)proto;
    c->fmt = (uint8_t)f;
    c->cursor = cursor;
    c->rec_off = 0;
    c->last_send = mono_ms32();
    c->state = proto == PROTO_WS ? CS_WS : CS_SSE;
    list_add(&w->streams[proto][f], c);
    c->flags |= CF_LISTED | CF_GAUGED;
    stats_add(w->stats, w->slot, gauge_id(c), 1);
    /* WebSocket: idle timeout via a common timeout (O(1) re-arm per read);
     * SSE clients send nothing, so only EOF matters */
    if (proto == PROTO_WS) return rearm_read(c, EV_READ | EV_PERSIST, w->idle_tv);
    return rearm_read(c, EV_READ | EV_PERSIST, NULL);
}

static int ws_consume(struct conn *c, const uint8_t *p, size_t n);


/* A stream (WebSocket or SSE) needs the token when auth is on (401) and a
 * free place under the shared connection limits (429, before the upgrade).
 * False: the answer has been sent. */
static bool admit_stream(struct worker *w, struct conn *c, const struct http_request *req)
{
    if (!auth_ok(w, req)) {
        stats_add(w->stats, w->slot, ST_AUTH_FAILURES, 1);
        respond_text(c, 401, "WWW-Authenticate: Bearer\r\n", "Unauthorized.\n", false);
        return false;
    }
    if (!limit_ok(c)) {
        respond_text(c, 429, "Retry-After: 5\r\n", "Too many connections.\n", false);
        return false;
    }
    return true;
}

static void start_websocket(struct conn *c, const struct http_request *req, enum ring_format f,
                            const uint8_t *early, size_t early_len)
{
    struct worker *w = c->w;
    struct ws_handshake hs;
    int st = ws_handshake_check(req, &hs);
    if (st == 426) {
        stats_add(w->stats, w->slot, ST_HTTP_BAD_REQUESTS, 1);
        respond_text(c, 426, "Sec-WebSocket-Version: 13\r\n", "Unsupported WebSocket version: use 13.\n", false);
        return;
    }
    if (st != 0) {
        stats_add(w->stats, w->slot, ST_HTTP_BAD_REQUESTS, 1);
        respond_text(c, 400, NULL, "Bad WebSocket handshake.\n", false);
        return;
    }
    if (!admit_stream(w, c, req))
        return;
    char resp[CONN_CTL_CAP];
    size_t n = ws_handshake_response(resp, sizeof resp, &hs);
    if (n == 0 || !ctl_append(c, resp, n, true)) {
        conn_free(c);
        return;
    }
    ws_reader_init(&c->rd, w->cfg->limits.max_frame_bytes, w->cfg->limits.max_message_bytes);
    /* early bytes may live in c->rbuf, which start_stream frees: keep a copy */
    uint8_t early_copy[REQUEST_SLACK + READ_CHUNK];
    if (early_len > sizeof early_copy) early_len = sizeof early_copy;
    if (early_len) memcpy(early_copy, early, early_len);
    if (start_stream(c, PROTO_WS, f, ring_start_position(w->ring)) != 0) return;
    if (conn_flush(c) != 0) return;
    if (early_len) ws_consume(c, early_copy, early_len);
}

/* Where an SSE client starts: the live position, or after its Last-Event-ID
 * if that record is still in the ring. An id that was already overwritten
 * resumes at the oldest intact record this worker knows; an id that is not a
 * record (or in the future) starts live. A resume never starts more than
 * buffer_size records back (the client would be dropped as slow at once). */
static uint64_t sse_start(struct worker *w, const struct http_request *req)
{
    uint64_t live = ring_start_position(w->ring), seq = 0, start;
    const struct http_str *v = http_header_get(req, "Last-Event-ID");
    if (!v || v->len == 0 || v->len > 20) return live;
    for (size_t i = 0; i < v->len; i++) {
        if (v->p[i] < '0' || v->p[i] > '9') return live;
        uint64_t d = (uint64_t)(v->p[i] - '0');
        if (seq > (UINT64_MAX - d) / 10) return live;
        seq = seq * 10 + d;
    }
    worker_scan(w);
    const struct ring_record *rec;
    enum ring_status st = ring_find(w->ring, seq, &rec);
    if (st == RING_OK) {
        start = ring_next(rec);
        if (ring_lapped_since(w->ring, seq)) st = RING_LAPPED;
    }
    if (st == RING_LAPPED) {
        uint64_t n = recent_n(w), pos = live;
        start = live;
        uint64_t oldest = ring_oldest_position(w->ring);
        for (uint64_t back = n; back-- > 0;) {
            if (worker_recent_at(w, back, &pos) && pos >= oldest) {
                start = pos;
                break;
            }
        }
    } else if (st != RING_OK) {
        return live;
    }
    uint64_t limit_pos;
    if (w->cfg->buffer_size && worker_recent_at(w, w->cfg->buffer_size - 1, &limit_pos) &&
        start < limit_pos)
        start = limit_pos;
    return start;
}

static bool parse_sse_stream(struct http_str q, enum ring_format *f)
{
    struct http_str v;
    *f = RING_LITE;
    if (!http_query_param(q, "stream", &v) || v.len == 0) return true;
    if (http_str_eq(v, "lite")) *f = RING_LITE;
    else if (http_str_eq(v, "full")) *f = RING_FULL;
    else if (http_str_eq(v, "domains") || http_str_eq(v, "domains-only")) *f = RING_DOMAINS;
    else return false;
    return true;
}

static void start_sse(struct conn *c, const struct http_request *req)
{
    struct worker *w = c->w;
    enum ring_format f;
    if (!parse_sse_stream(req->query, &f)) {
        respond_text(c, 400, NULL, "Unknown stream: use stream=lite, full or domains.\n", false);
        return;
    }
    if (!stream_enabled(w->cfg, f)) {
        respond_not_found(c, false);
        return;
    }
    if (!admit_stream(w, c, req))
        return;
    static const char head[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Connection: close\r\nX-Accel-Buffering: no\r\n\r\n";
    uint64_t cursor = sse_start(w, req);
    if (!ctl_append(c, head, sizeof head - 1, true)) {
        conn_free(c);
        return;
    }
    if (start_stream(c, PROTO_SSE, f, cursor) != 0) return;
    conn_flush(c);
}

struct ws_route { const char *path, *name; enum ring_format f; };
static const struct ws_route ws_routes[] = {
    { "/", "/ (lite stream)", RING_LITE },
    { "/full-stream", "/full-stream (full stream)", RING_FULL },
    { "/full-stream/", "/full-stream (full stream)", RING_FULL },
    { "/domains-only", "/domains-only (domains-only stream)", RING_DOMAINS },
    { "/domains-only/", "/domains-only (domains-only stream)", RING_DOMAINS },
};

static void handle_request(struct conn *c, const struct http_request *req, const uint8_t *early,
                           size_t early_len)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    struct http_str path = req->path;
    bool head = http_str_eq(req->method, "HEAD");

    stats_add(w->stats, w->slot, ST_HTTP_REQUESTS, 1);
    if (!head && !http_str_eq(req->method, "GET")) {
        respond_text(c, 405, "Allow: GET, HEAD\r\n", "Method Not Allowed.\n", false);
        return;
    }
    for (size_t i = 0; i < sizeof ws_routes / sizeof ws_routes[0]; i++) {
        if (!http_str_eq(path, ws_routes[i].path)) continue;
        if (!cfg->protocols.websocket || !stream_enabled(cfg, ws_routes[i].f)) {
            respond_not_found(c, head);
            return;
        }
        if (head || !ws_is_upgrade(req)) {
            char text[200];
            snprintf(text, sizeof text,
                     "Upgrade Required: %s is a WebSocket endpoint; connect with a WebSocket client.\n",
                     ws_routes[i].name);
            respond_text(c, 426, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", text, head);
            return;
        }
        start_websocket(c, req, ws_routes[i].f, early, early_len);
        return;
    }
    if (http_str_eq(path, "/sse") || http_str_eq(path, "/sse/")) {
        if (!cfg->protocols.sse) respond_not_found(c, head);
        else if (head) respond_text(c, 405, "Allow: GET\r\n", "Method Not Allowed.\n", false);
        else start_sse(c, req);
        return;
    }
    if (http_str_eq(path, "/health")) {
        if (!cfg->protocols.health) respond_not_found(c, head);
        else respond_text(c, 200, NULL, "OK", head);
        return;
    }
    if (http_str_eq(path, "/health/deep")) {
        if (!cfg->protocols.health) {
            respond_not_found(c, head);
            return;
        }
        struct jbuf b;
        jb_init(&b);
        int status = 200;
        route_health_deep(w, &b, &status);
        respond_jbuf(c, status, "application/json", &b, head);
        return;
    }
    if (http_str_eq(path, "/metrics")) {
        if (!cfg->protocols.metrics) {
            respond_not_found(c, head);
            return;
        }
        struct jbuf b;
        jb_init(&b);
        bool om = metrics_wants_openmetrics(req);
        route_metrics(w, &b, om);
        respond_jbuf(c, 200, om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                : "text/plain; version=0.0.4; charset=utf-8", &b, head);
        return;
    }
    static const struct { const char *path; enum ring_format f; } examples[] = {
        { "/example.json", RING_LITE },
        { "/full-stream/example.json", RING_FULL },
        { "/domains-only/example.json", RING_DOMAINS },
    };
    for (size_t i = 0; i < 3; i++) {
        if (!http_str_eq(path, examples[i].path)) continue;
        if (!cfg->protocols.example_json || !stream_enabled(cfg, examples[i].f)) {
            respond_not_found(c, head);
            return;
        }
        struct jbuf b;
        jb_init(&b);
        route_example(w, examples[i].f, &b);
        respond_jbuf(c, 200, "application/json", &b, head);
        return;
    }
    if (http_str_eq(path, "/latest.json")) {
        if (!auth_ok(w, req)) {
            stats_add(w->stats, w->slot, ST_AUTH_FAILURES, 1);
            respond_text(c, 401, "WWW-Authenticate: Bearer\r\n", "Unauthorized.\n", head);
            return;
        }
        struct jbuf b;
        jb_init(&b);
        route_latest(w, &b);
        respond_jbuf(c, 200, "application/json", &b, head);
        return;
    }
    respond_not_found(c, head);
}

static void request_error(struct conn *c, int status)
{
    stats_add(c->w->stats, c->w->slot, ST_HTTP_BAD_REQUESTS, 1);
    const char *text = status == 431 ? "Request header fields too large.\n"
                     : status == 408 ? "Request timeout.\n"
                     : status == 505 ? "HTTP version not supported.\n"
                                     : "Bad request.\n";
    respond_text(c, status, NULL, text, false);
}

static void request_read(struct conn *c)
{
    struct worker *w = c->w;
    size_t max = w->cfg->limits.max_request_bytes ? w->cfg->limits.max_request_bytes : 8192;
    size_t cap = max + REQUEST_SLACK, old = 0, have;
    char stack[READ_CHUNK];
    char *buf;
    ssize_t n;

    if (!c->rbuf) {
        n = recv(c->fd, stack, cap < sizeof stack ? cap : sizeof stack, 0);
        buf = stack;
    } else {
        old = c->rlen;
        n = recv(c->fd, c->rbuf + old, cap - old, 0);
        buf = c->rbuf;
    }
    if (n == 0 || (n < 0 && !would_block(errno))) {
        conn_free(c);
        return;
    }
    if (n < 0) return;
    have = old + (size_t)n;
    if (c->rbuf) c->rlen = (uint32_t)have;

    struct http_limits lim = { max, w->cfg->limits.max_headers ? w->cfg->limits.max_headers : 64 };
    enum http_status st = HTTP_INCOMPLETE;
    /* parse only when the head may be complete (or for early rejection of
     * the first bytes), so a byte-at-a-time client costs linear time */
    if (old < 16 || have >= max || http_head_end(buf, have, old))
        st = http_parse_request(buf, have, &lim, &w->req);
    if (st == HTTP_INCOMPLETE) {
        if (!c->rbuf) {
            c->rbuf = malloc(cap);
            if (!c->rbuf) {
                conn_free(c);
                return;
            }
            memcpy(c->rbuf, stack, have);
            c->rlen = (uint32_t)have;
        }
        uint64_t now = mono_ms();
        if (now >= c->deadline_ms) {
            request_error(c, 408);
            return;
        }
        uint64_t left = c->deadline_ms - now;
        struct timeval tv = { .tv_sec = (time_t)(left / 1000), .tv_usec = (suseconds_t)(left % 1000) * 1000 };
        if (event_add(&c->rev, &tv) != 0) conn_free(c);
        return;
    }
    if (st != HTTP_OK) {
        request_error(c, st == HTTP_TOO_LARGE ? 431 : st == HTTP_BAD_VERSION ? 505 : 400);
        return;
    }
    /* persistent connection (RFC 9112 9.3), but no pipelining: a request
     * followed by more bytes is answered and the connection closed */
    const struct http_str *conn_hdr = http_header_get(&w->req, "Connection");
    bool keep = w->req.minor >= 1 ? !(conn_hdr && http_list_has_token(*conn_hdr, "close"))
                                  : (conn_hdr && http_list_has_token(*conn_hdr, "keep-alive"));
    c->flags &= (uint8_t)~(CF_KEEPALIVE | CF_REUSED);
    if (keep && have == w->req.head_len && !w->stopping) c->flags |= CF_KEEPALIVE;
    handle_request(c, &w->req, (const uint8_t *)buf + w->req.head_len, have - w->req.head_len);
}

/* ---- WebSocket input ---------------------------------------------------- */

static int ws_consume(struct conn *c, const uint8_t *p, size_t n)
{
    while (n > 0 && c->state == CS_WS) {
        struct ws_event ev;
        size_t used = ws_reader_feed(&c->rd, p, n, &ev);
        p += used;
        n -= used;
        switch (ev.type) {
        case WS_EV_NONE:
            if (used == 0) return 0;
            break;
        case WS_EV_MESSAGE:
        case WS_EV_PONG:
            break;
        case WS_EV_PING: {
            uint8_t f[2 + WS_MAX_CONTROL];
            size_t h = ws_frame_header(f, WS_OP_PONG, ev.payload_len);
            memcpy(f + h, ev.payload, ev.payload_len);
            if (ctl_append(c, f, h + ev.payload_len, false) && !(c->flags & CF_WRITE_ARMED) &&
                conn_flush(c) != 0)
                return -1;
            break;
        }
        case WS_EV_CLOSE:
            return ws_close(c, ev.close_code, NULL);   /* echo the client's code */
        case WS_EV_ERROR:
            stats_add(c->w->stats, c->w->slot, ST_WS_PROTOCOL_ERRORS, 1);
            log_debug("fd %d: %s", c->fd, ev.reason);
            return ws_close(c, ev.close_code, ev.reason);
        }
    }
    return 0;
}

static void drain_input(struct conn *c)
{
    char buf[READ_CHUNK];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && !would_block(errno)) {
        conn_free(c);
    } else if (n == 0) {
        /* A client that half-closed after its request still gets the rest
         * of its response: stop reading, keep only the timeout. */
        if (c->state == CS_RESPONSE || c->state == CS_CLOSING) {
            struct timeval tv = tv_secs(CLOSING_TIMEOUT_SECS);
            rearm_read_timeout(c, &tv);
        } else {
            conn_free(c);
        }
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct conn *c = arg;
    switch (c->state) {
    case CS_REQUEST:
        if (what & EV_TIMEOUT) {
            if ((c->flags & CF_REUSED) && !c->rbuf) conn_free(c);   /* idle kept-alive connection */
            else request_error(c, 408);                            /* slow or silent client */
        } else {
            request_read(c);
        }
        return;
    case CS_WS:
        if (what & EV_TIMEOUT) {
            stats_add(c->w->stats, c->w->slot, ST_IDLE_DISCONNECTS, 1);
            ws_close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
            return;
        }
        {
            uint8_t buf[READ_CHUNK];
            ssize_t n = recv(c->fd, buf, sizeof buf, 0);
            if (n == 0 || (n < 0 && !would_block(errno))) conn_free(c);
            else if (n > 0) ws_consume(c, buf, (size_t)n);
        }
        return;
    default:   /* SSE, closing, lingering: input is ignored */
        if (what & EV_TIMEOUT) conn_free(c);
        else drain_input(c);
        return;
    }
}

/* ---- accepting ------------------------------------------------------------ */

static void conn_new(struct worker *w, int fd, const void *peer, socklen_t plen)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        log_warn("out of memory for a connection");
        if (close(fd) != 0) log_debug("close: %s", strerror(errno));
        return;
    }
    c->w = w;
    c->fd = fd;
    memcpy(&c->peer, peer, plen < sizeof c->peer ? plen : sizeof c->peer);
    uint32_t rt = w->cfg->limits.request_timeout_secs ? w->cfg->limits.request_timeout_secs : 10;
    c->deadline_ms = mono_ms() + rt * 1000u;
    c->all_next = w->all;
    if (w->all) w->all->all_prev = c;
    w->all = c;
    w->nconns++;
    struct timeval tv = tv_secs(rt);
    if (event_assign(&c->wev, w->base, fd, EV_WRITE, on_write, c) != 0 ||
        event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, on_read, c) != 0 ||
        event_add(&c->rev, &tv) != 0) {
        conn_free(c);
        return;
    }
    stats_add(w->stats, w->slot, ST_CONN_ACCEPTED, 1);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        union { struct sockaddr sa; struct sockaddr_in6 in6; struct sockaddr_storage ss; } peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: pause accepting instead of spinning */
                log_warn("accept: %s; pausing for 100 ms", strerror(errno));
                struct timeval tv = { 0, 100000 };
                /* if the retry timer cannot be armed, keep accepting rather
                 * than stop listening for good */
                if (event_add(w->accept_retry_ev, &tv) == 0)
                    event_del(w->listen_ev);
                else
                    log_error("cannot arm the accept retry timer; accepting on");
                return;
            }
            log_warn("accept: %s", strerror(errno));
            return;
        }
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            log_debug("TCP_NODELAY: %s", strerror(errno));
        /* A capped send buffer: a client that stops reading holds at most this
         * much in the kernel, fills it quickly and is then judged by its lag
         * (autotuned buffers of several MB each measurably slowed everyone
         * else, docs/benchmarks.md). */
        int sb = (int)w->cfg->limits.send_buffer_bytes;
        if (sb > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb) != 0)
            log_debug("SO_SNDBUF: %s", strerror(errno));
        conn_new(w, fd, &peer, plen);
    }
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    if (!w->stopping && event_add(w->listen_ev, NULL) != 0) log_error("cannot resume accepting");
}

static int listen_socket(const char *host, uint16_t port)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
    char portstr[8];
    int fd = -1, one = 1, zero = 0;
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    if (!host || !*host) host = "0.0.0.0";
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        log_error("listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) goto err;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        goto err;
    /* "::" means both families; a specific IPv6 address only itself */
    if (res->ai_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, strcmp(host, "::") == 0 ? &zero : &one, sizeof one) != 0)
        goto err;
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) goto err;
    freeaddrinfo(res);
    return fd;
err:
    log_error("listen on %s:%u: %s", host, (unsigned)port, strerror(errno));
    if (fd >= 0 && close(fd) != 0) log_debug("close: %s", strerror(errno));
    freeaddrinfo(res);
    return -1;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    event_base_loopexit(w->base, NULL);
}

/* Graceful stop: no new clients; WebSocket clients get Close 1001 after the
 * record in flight; SSE responses end; then exit after a short grace. */
static void worker_stop(struct worker *w)
{
    if (w->stopping) return;
    w->stopping = true;
    log_info("stopping: %u connections", w->nconns);
    if (w->listen_ev) event_del(w->listen_ev);
    if (w->accept_retry_ev) event_del(w->accept_retry_ev);
    if (w->listen_fd >= 0 && close(w->listen_fd) != 0) log_debug("close listener: %s", strerror(errno));
    w->listen_fd = -1;
    struct conn *next;
    for (struct conn *c = w->all; c; c = next) {
        next = c->all_next;
        if (c->state == CS_WS) ws_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
        else if (c->state == CS_SSE) sse_end(c);
        else if (c->state == CS_REQUEST) conn_free(c);
    }
    worker_publish_counters(w);
    if (w->nconns == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    struct timeval tv = tv_secs(SHUTDOWN_GRACE_SECS);
    if (event_add(w->stop_ev, &tv) != 0) {
        log_error("cannot arm the shutdown timer: stopping now");
        event_base_loopexit(w->base, NULL);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    worker_stop(arg);
}

/* The oldest record still safe to resume from, so that a worker that
 * (re)starts can serve /latest.json and Last-Event-ID at once: record
 * boundaries are found by probing aligned positions with ring_find (which
 * checks a header's seq, check word and spans). Falls back to the live
 * position. */
static uint64_t first_record(const struct ring *r)
{
    uint64_t live = ring_start_position(r), pos = ring_oldest_position(r);
    pos = (pos + RING_ALIGN - 1) / RING_ALIGN * RING_ALIGN;
    for (uint64_t probes = ring_size(r) / 4 / RING_ALIGN; pos < live && probes; probes--, pos += RING_ALIGN) {
        const struct ring_record *rec;
        if (ring_find(r, pos, &rec) == RING_OK) return pos;
    }
    return live;
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 32;
    while (p < n && p < (1u << 20)) p <<= 1;
    return p;
}

static struct event *timer(struct worker *w, uint32_t secs, event_callback_fn cb)
{
    if (secs == 0) return NULL;
    struct event *ev = event_new(w->base, -1, EV_PERSIST, cb, w);
    struct timeval tv = tv_secs(secs);
    if (ev && event_add(ev, &tv) != 0) {
        event_free(ev);
        return NULL;
    }
    return ev;
}

int fanout_run(const struct fanout_params *p)
{
    struct worker *w = calloc(1, sizeof *w);
    struct event_config *ecfg = NULL;
    int status = 1;
    if (!w) return 1;
    log_set_role("fanout", (int)p->index);
    w->cfg = p->cfg;
    w->ring = p->ring;
    w->stats = p->stats;
    w->index = p->index;
    w->slot = p->stats_slot;
    w->wake_fd = p->wake_fd;
    w->listen_fd = -1;
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) goto err;

    w->recent_cap = pow2_at_least((uint64_t)p->cfg->buffer_size + 1);
    w->recent = calloc(w->recent_cap, sizeof *w->recent);
    if (!w->recent) goto err;
    w->head = first_record(w->ring);
    worker_scan(w);

    ecfg = event_config_new();
    if (!ecfg || event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER) != 0 ||
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK) != 0)
        goto err;
    w->base = event_base_new_with_config(ecfg);
    if (!w->base) goto err;

    w->listen_fd = listen_socket(p->cfg->host, p->cfg->port);
    if (w->listen_fd < 0) goto err;
    struct timeval idle = tv_secs(p->cfg->keepalive.idle_timeout_secs ? p->cfg->keepalive.idle_timeout_secs : 60);
    w->idle_tv = event_base_init_common_timeout(w->base, &idle);
    w->listen_ev = event_new(w->base, w->listen_fd, EV_READ | EV_PERSIST, on_accept, w);
    w->accept_retry_ev = evtimer_new(w->base, on_accept_retry, w);
    w->stop_ev = evtimer_new(w->base, on_stop_timer, w);
    w->sig_term = evsignal_new(w->base, SIGTERM, on_signal, w);
    w->sig_int = evsignal_new(w->base, SIGINT, on_signal, w);
    if (!w->idle_tv || !w->listen_ev || !w->accept_retry_ev || !w->stop_ev || !w->sig_term ||
        !w->sig_int || event_add(w->listen_ev, NULL) != 0 || event_add(w->sig_term, NULL) != 0 ||
        event_add(w->sig_int, NULL) != 0)
        goto err;
    if (w->wake_fd >= 0) {
        w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
        if (!w->wake_ev || event_add(w->wake_ev, NULL) != 0) goto err;
    }
    w->hb_ev = timer(w, p->cfg->keepalive.websocket_heartbeat_secs, on_heartbeat);
    w->ping_ev = timer(w, p->cfg->keepalive.ping_interval_secs, on_ping);
    w->tick_ev = timer(w, 1, on_tick);
    if (!w->tick_ev) goto err;

    log_info("listening on %s:%u", p->cfg->host ? p->cfg->host : "0.0.0.0", (unsigned)p->cfg->port);
    if (event_base_dispatch(w->base) < 0) goto err;
    status = 0;
err:
    if (status != 0) log_error("fanout worker %u failed to run", p->index);
    while (w->all) {
        w->stopping = false;
        conn_free(w->all);
    }
    worker_publish_counters(w);
    struct event *evs[] = { w->listen_ev, w->wake_ev, w->hb_ev, w->ping_ev, w->tick_ev, w->sig_term,
                            w->sig_int, w->stop_ev, w->accept_retry_ev };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i]) event_free(evs[i]);
    if (w->listen_fd >= 0 && close(w->listen_fd) != 0) log_debug("close listener: %s", strerror(errno));
    if (w->base) event_base_free(w->base);
    if (ecfg) event_config_free(ecfg);
    free(w->recent);
    free(w);
    return status;
}
