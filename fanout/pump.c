/* pump.c - the hot path that streams the ring to clients, and the ends of
 * a stream.
 *
 * A streaming client is a socket, a cursor into the ring and an offset into
 * the record at the cursor. On every wakeup each client gets everything from
 * its cursor to the head in one writev() of iovecs pointing into the ring;
 * nothing is copied or buffered per client except a few control bytes
 * (Pong, Ping, Close, heartbeat) in a fixed array. The bytes sent are
 * validated against lapping after the write (Aeron style).
 *
 * Fair bursts: a get-entries answer or a tile lands up to 256 entries at
 * once. A pump goes round the ready clients giving each at most
 * FLUSH_QUANTUM (64 KiB) per round (still one writev per client per round, and
 * the round's walk shared through the memo), until all are at the head or
 * had FLUSH_BYTE_BUDGET in this wakeup. So the first entries of a burst
 * reach every client before the rest of it reaches anyone, instead of the
 * last client waiting for the whole burst to be written to all the others.
 *
 * Slow clients: a client whose socket is full and that is more than
 * limits.slow_client_seconds (by commit time) or the byte bound (3/4 of
 * ring_size by default) behind the head, or buffer_size messages when that
 * older key is set (worker_too_far_behind), is closed cleanly (WebSocket 1008 "client too slow" after the record in flight;
 * SSE: the response ends). One whose unsent bytes were overwritten anyway
 * is dropped at the TCP level (what it got may be corrupt). Both count in
 * ST_SLOW_DISCONNECTS. Lag is judged only while the client's socket is
 * full, so a client that drains everything it is given survives a burst. */
#include "fanout/pump.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "fanout/edge.h"
#include "fanout/filter.h"
#include "fanout/zalone.h"
#include "fanout/zchain.h"

#define FLUSH_BYTE_BUDGET (512u * 1024u)
#define FLUSH_BLOCKED_BUDGET (64u * 1024u)
#define FLUSH_SKIP_BUDGET 4096u   /* records a filter skips in one walk */
/* Bytes per client per round of a pump: about 40 lite or 10 full messages.
 * Each round costs every client with more one more writev (a syscall and a
 * wakeup of the reader). With 16 KiB (a 10-entry lite burst is already two
 * rounds) the server used 7-41 % more CPU than with one writev per burst,
 * with 64 KiB 0-13 % (1,000 lite clients, bursts of 10-256 entries,
 * docs/benchmarks.md). Rounds stop at the wakeup's FLUSH_BYTE_BUDGET per
 * client, as before. */
#define FLUSH_QUANTUM (64u * 1024u)
#define FLUSH_ROUNDS (FLUSH_BYTE_BUDGET / FLUSH_QUANTUM)

/* Sends a Close frame (code 0: an empty one) after anything in flight and
 * closes. Returns -1 if the connection is gone. */
int ws_close(struct conn *c, uint16_t code, const char *reason)
{
    if (c->state == CS_CLOSING || c->state == CS_LINGER) return 0;
    edge_note_ws_close(c, code, reason == NULL);   /* access log; NULL reason: an echo */
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
int sse_end(struct conn *c)
{
    if (c->state == CS_CLOSING || c->state == CS_LINGER) return 0;
    enter_closing(c);
    struct timeval tv = tv_secs(CLOSING_TIMEOUT_SECS);
    if (rearm_read(c, EV_READ | EV_PERSIST, &tv) != 0) return -1;
    return conn_flush(c);
}

static bool too_slow(const struct worker *w, const struct conn *c)
{
    return worker_too_far_behind(w, c->cursor);
}

/* iovecs for the client's format of one record, skipping `skip` bytes already
 * sent (at most RING_RECORD_MAX_IOV). Returns the bytes added, 0 if the
 * record's spans are not sane (it is being overwritten: the caller treats
 * that as lapped). The layout of a record is the ring's business
 * (shm/ring.h): WebSocket clients get the frame (or, for permessage-deflate,
 * the chained frame, or the frame compressed alone by this worker, zalone.h),
 * SSE clients the id/data lines. */
static uint32_t record_iov(const struct conn *c, const struct ring_record *rec, uint32_t skip,
                           struct iovec *iov, int *niov)
{
    if (c->proto == PROTO_WS && c->zc.on) {
        uint32_t zn;   /* compression.shared_context: the stream's chained frame (zchain.h) */
        if (zchain_iov((struct conn *)c, rec, skip, &iov[*niov], &zn)) return zn ? ((*niov)++, zn) : 0;
    }
    enum ring_wire wire = RING_WIRE_SSE;
    if (c->proto == PROTO_WS) {
        wire = RING_WIRE_WS;
        if (c->deflate && zalone_wanted(c->w->cfg, rec, c->fmt)) {
            /* compressed alone, here, on first use (zalone.h) */
            struct worker *w = c->w;
            if (!w->zalone && !(w->zalone = zalone_new((int)w->cfg->compression.level))) return 0;
            uint32_t n = zalone_iov(w->zalone, w->ring, rec, c->fmt, skip, &iov[*niov]);
            if (n) (*niov)++;
            return n;
        }
    }
    return ring_record_iov(c->w->ring, rec, c->fmt, wire, skip, iov, niov);
}

/* A client whose unsent bytes were overwritten: what it got may be corrupt,
 * so no close frame can follow; drop the TCP connection. */
static int drop_lapped(struct conn *c)
{
    if (c->state == CS_WS || c->state == CS_SSE)   /* else already counted */
        stats_add(c->w->stats, c->w->slot, ST_SLOW_DISCONNECTS, 1);
    c->edge.end = EDGE_END_SLOW;
    log_debug("fd %d lapped by the ring: dropped", c->fd);
    conn_free(c);
    return -1;
}

/* A client too far behind: close it cleanly while the stream is still intact. */
static int slow_close(struct conn *c)
{
    stats_add(c->w->stats, c->w->slot, ST_SLOW_DISCONNECTS, 1);
    c->edge.end = EDGE_END_SLOW;
    log_debug("fd %d too slow: closing", c->fd);
    return c->proto == PROTO_WS ? ws_close(c, WS_CLOSE_POLICY, "client too slow") : sse_end(c);
}

/* A pass stopped at a budget (FLUSH_BYTE_BUDGET, or TLS's bounded
 * ciphertext buffer) and the socket took every byte: continue at the next
 * turn of the event loop (others go first), or sooner if writable. Not a
 * plain wait for writability: the kernel reports a TCP socket writable only
 * while its send queue is below 2/3 of the buffer, and a pass the socket took
 * whole can leave it above that mark. A client that does not read would then
 * wait forever without being CF_BLOCKED, so it was never judged too slow.
 * Only a write the socket refused (partly) waits for writability, and that
 * client is CF_BLOCKED, so the pump judges it. */
static void write_again(struct conn *c)
{
    static const struct timeval now = { 0, 0 };
    if (event_add(&c->wev, &now) == 0) c->flags |= CF_WRITE_ARMED;
}

/* Writes what the client is owed, in stream order: a one-shot response, the
 * rest of a partially sent record, queued control bytes, then records from
 * the cursor towards the head (one writev). Returns -1 if c was freed. */
int conn_flush(struct conn *c)
{
    struct worker *w = c->w;
    struct iovec *iov = w->iov;
    struct flush_rec *recs = w->recs;
    int niov = 0, nrec = 0;
    size_t total = 0;
    uint64_t start = c->cursor, pos = c->cursor;
    bool more = false;
    const struct ring_record *rec;

    /* TLS: ciphertext of the previous pass goes first */
    if (edge_out_pending(c)) {
        if (edge_writev(c, NULL, 0) < 0) {
            conn_free(c);
            return -1;
        }
        if (edge_out_pending(c)) {
            c->flags |= CF_BLOCKED;
            arm_write(c);
            return 0;
        }
    }
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
        uint64_t zkey = c->zc.on ? zchain_walk_key(c, pos) : 0;
        if (memo && w->memo_valid && w->memo_from == pos && w->memo_proto == c->proto &&
            w->memo_fmt == c->fmt && w->memo_filter == c->filter && w->memo_deflate == c->deflate &&
            w->memo_zkey == zkey &&
            (!c->deflate || zalone_intact(w->zalone, c->fmt, w->memo_zmark))) {
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
            w->memo_zmark = zalone_mark(w->zalone, c->fmt);   /* before the walk compresses */
            iov = w->memo_iov;
            recs = w->memo_recs;
        }
        /* a client whose socket was full gets a small walk: its buffer
         * rarely has room for more, and the walk would be wasted */
        size_t budget = (c->flags & CF_BLOCKED) ? FLUSH_BLOCKED_BUDGET : FLUSH_BYTE_BUDGET;
        if (w->pump_quantum && budget > w->pump_quantum) budget = w->pump_quantum;
        uint32_t skipped = 0;   /* records a filter left out: a walk has a budget of them too */
        while (niov < IOV_MAX - RING_RECORD_MAX_IOV && total < budget && skipped < FLUSH_SKIP_BUDGET) {
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
                /* a filtered client skips what its filter rejects (shared
                 * result per filter and record); unfiltered ones pay this
                 * one test per record of a walk, and walks are shared */
                if (c->filter && !filter_match(w->filters, c->filter, rec, pos)) {
                    skipped++;
                    pos = next;
                    continue;
                }
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
        more = niov >= IOV_MAX - RING_RECORD_MAX_IOV || total >= budget || skipped >= FLUSH_SKIP_BUDGET;
        if (memo) {
            w->memo_valid = true;
            w->memo_from = start;
            w->memo_proto = c->proto;
            w->memo_fmt = c->fmt;
            w->memo_filter = c->filter;
            w->memo_deflate = c->deflate;
            w->memo_zkey = zkey;
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

    ssize_t wr = edge_writev(c, iov, niov);   /* writev, or TLS (fanout/tls.h) */
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
    c->edge.msgs += msgs;   /* access log */
    if (c->deflate) w->pend_deflate_msgs += msgs;
    if (c->proto == PROTO_SSE && wr > 0) c->last_send = mono_ms32();

    if ((size_t)wr < total || edge_out_pending(c)) {
        /* blocked = the socket is full. TLS also stops at its bounded
         * ciphertext buffer (fanout/tls.h) with room left in the socket:
         * that client is not blocked, it continues (see write_again) */
        if (!c->edge.tls || edge_out_pending(c)) {
            c->flags |= CF_BLOCKED;
            arm_write(c);
        } else {
            c->flags &= (uint8_t)~CF_BLOCKED;
            write_again(c);
        }
        return 0;
    }
    c->flags &= (uint8_t)~CF_BLOCKED;
    if (more && w->pump_quantum && !w->pump_last_round) {
        w->pump_more = true;   /* quantum used up: the next round of this pump continues */
        return 0;
    }
    if (more) {
        write_again(c);   /* budget used up: continue, others go first */
        return 0;
    }
    disarm_write(c);
    if ((c->flags & CF_CLOSE_AFTER) && !c->out && c->rec_off == 0 && c->ctl_len == c->ctl_off)
        return conn_linger(c);
    if (c->state == CS_RESPONSE && (c->flags & CF_KEEPALIVE) && !c->out) return conn_keepalive(c);
    return 0;
}

void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    c->flags &= (uint8_t)~CF_WRITE_ARMED;
    conn_flush(c);
}

static void pump_lists(struct worker *w, struct conn *lists[3][RING_NFORMATS])
{
    for (int p = PROTO_WS; p <= PROTO_SSE; p++) {
        for (int f = 0; f < RING_NFORMATS; f++) {
            struct conn *next;
            for (struct conn *c = lists[p][f]; c; c = next) {
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
}

void worker_publish_all(struct worker *w)
{
    worker_publish_counters(w);
    if (w->filters) filter_publish_counters(w->filters, w->stats, w->slot);
    if (w->pend_deflate_msgs) {
        stats_add(w->stats, w->slot, ST_DEFLATE_MESSAGES, (int64_t)w->pend_deflate_msgs);
        w->pend_deflate_msgs = 0;
    }
    if (w->zalone) {
        /* a frame copied within the cache counts as a hit: not compressed again */
        uint64_t hits = 0, made = 0;
        for (int f = 0; f < RING_NFORMATS; f++) {
            struct zalone_stats st;
            zalone_get_stats(w->zalone, f, &st);
            hits += st.hits + st.copies;
            made += st.misses;
        }
        if (hits != w->za_hits_published)
            stats_add(w->stats, w->slot, ST_DEFLATE_ALONE_HITS, (int64_t)(hits - w->za_hits_published));
        if (made != w->za_made_published)
            stats_add(w->stats, w->slot, ST_DEFLATE_ALONE_COMPRESSED, (int64_t)(made - w->za_made_published));
        w->za_hits_published = hits;
        w->za_made_published = made;
    }
}

/* One round: every ready client once, the unfiltered ones, then each
 * filter's (clients of one filter are listed together, so they share the
 * walk memo and the filter's result). */
static void pump_round(struct worker *w)
{
    w->memo_valid = false;
    pump_lists(w, w->streams);
    struct filter *fnext;
    for (struct filter *f = filter_first(w->filters); f; f = fnext) {
        /* a client closed while its lists are walked may drop the filter's
         * last reference: hold one until the walk is done */
        filter_hold(f);
        pump_lists(w, f->streams);
        fnext = f->next;
        filter_unhold(w->filters, f);
    }
}

/* New records: bring every streaming client up to the head, FLUSH_QUANTUM
 * bytes per client per round, round after round while anyone has more (see
 * the top of this file); in the last round a client with more yet waits
 * for its socket like one whose budget ran out. */
void worker_pump(struct worker *w)
{
    worker_scan(w);
    w->memo_on = true;
    w->pump_quantum = FLUSH_QUANTUM;
    for (unsigned r = 0; r < FLUSH_ROUNDS; r++) {
        w->pump_more = false;
        w->pump_last_round = r + 1 == FLUSH_ROUNDS;
        pump_round(w);
        if (!w->pump_more) break;
    }
    w->pump_quantum = 0;
    w->pump_last_round = w->pump_more = false;
    w->memo_on = false;
    worker_publish_all(w);
}

void worker_on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t v;
    if (read(fd, &v, sizeof v) < 0 && !would_block(errno))
        log_warn("eventfd read: %s", strerror(errno));
    worker_pump(arg);
}

void worker_each_stream(struct worker *w, int proto, void (*fn)(struct conn *c, void *arg), void *arg)
{
    for (int f = 0; f < RING_NFORMATS; f++) {
        struct conn *next;
        for (struct conn *c = w->streams[proto][f]; c; c = next) {
            next = c->next;
            fn(c, arg);
        }
    }
    struct filter *fnext;
    for (struct filter *fl = filter_first(w->filters); fl; fl = fnext) {
        filter_hold(fl);
        for (int f = 0; f < RING_NFORMATS; f++) {
            struct conn *next;
            for (struct conn *c = fl->streams[proto][f]; c; c = next) {
                next = c->next;
                fn(c, arg);
            }
        }
        fnext = fl->next;
        filter_unhold(w->filters, fl);
    }
}

struct ctl_frame { const uint8_t *p, *zp; size_t n, zn; };

static void send_control(struct conn *c, void *arg)
{
    const struct ctl_frame *fr = arg;
    bool z = c->deflate && fr->zp;
    if (ctl_append(c, z ? fr->zp : fr->p, z ? fr->zn : fr->n, false) && !(c->flags & CF_WRITE_ARMED))
        conn_flush(c);
}

void broadcast_ws_message(struct worker *w, const uint8_t *frame, size_t n, const uint8_t *zframe, size_t zn)
{
    struct ctl_frame fr = { frame, zframe, n, zn };
    worker_each_stream(w, PROTO_WS, send_control, &fr);
    worker_publish_all(w);
}

void broadcast_ws_control(struct worker *w, const uint8_t *frame, size_t n)
{
    broadcast_ws_message(w, frame, n, NULL, 0);
}
