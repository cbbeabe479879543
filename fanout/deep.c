/* deep.c - see deep.h. */
#include "fanout/deep.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/wsdeflate.h"
#include "common/wshdr.h"
#include "fanout/filter.h"
#include "fanout/pump.h"

_Static_assert(HISTORY_NFORMATS == RING_NFORMATS, "history entries carry the ring's formats");

#define DEEP_CHUNK (256u * 1024u)   /* bytes queued per resuming client at a time */
#define DEEP_MAX 64                 /* resuming clients per worker reading history at once */
#define DEEP_TICK_MS 10             /* refill period */
#define DEEP_ROUNDS 8               /* chunks a client may get per tick when its socket takes them */
#define DEEP_EXAMINE 4096           /* entries looked at per chunk (a filter may reject most) */

static const struct history_ops *g_ops;

void history_install(const struct history_ops *ops)
{
    g_ops = ops;
}

const struct history_ops *history_get(void)
{
    return g_ops;
}

struct deep {
    struct conn *c;
    void *rd;                   /* history reader */
    uint64_t from;              /* first sequence asked for */
    uint64_t next;              /* next sequence the client needs */
    bool have;                  /* e holds an entry not yet placed */
    bool started;               /* history gave its first entry */
    uint64_t sent;              /* entries sent from history */
    struct history_entry e;
};

/* One worker per process: its resuming clients. */
static struct deep g_deep[DEEP_MAX];
static unsigned g_n;
static struct event *g_tick;
static struct wsdeflate *g_zd;

static struct deep *deep_of(const struct conn *c)
{
    for (unsigned i = 0; i < g_n; i++)
        if (g_deep[i].c == c) return &g_deep[i];
    return NULL;
}

static void deep_drop(struct deep *d)
{
    if (d->rd) g_ops->close(d->rd);
    *d = g_deep[--g_n];
    memset(&g_deep[g_n], 0, sizeof g_deep[g_n]);
    if (g_n == 0 && g_tick) event_del(g_tick);
}

/* The sse id of the record at pos, or 0. */
static uint64_t id_at(struct worker *w, uint64_t pos)
{
    const struct ring_record *rec;
    if (ring_peek(w->ring, pos, &rec) != RING_OK || rec->kind != RING_KIND_MESSAGE) return 0;
    uint64_t id = ring_record_sse_id(rec);
    return ring_lapped_since(w->ring, pos) ? 0 : id;
}

/* Where this worker's ring stands for sequence seq: -1 older than every
 * record it knows, 1 newer than all, 0 held: *pos its record (or the first
 * after it), *back how many records are newer. */
static int ring_place(struct worker *w, uint64_t seq, uint64_t *pos, uint64_t *back)
{
    uint64_t n = worker_recent_n(w), p;
    if (n == 0 || !worker_recent_at(w, 0, &p)) return 1;
    uint64_t newest = id_at(w, p);
    if (newest == 0 || seq > newest) return 1;
    /* the oldest record still intact (overwriting takes the oldest first) */
    uint64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (worker_recent_at(w, mid, &p) && id_at(w, p) != 0) lo = mid;
        else hi = mid - 1;
    }
    worker_recent_at(w, lo, &p);
    if (seq < id_at(w, p)) return -1;
    /* ids fall as `back` grows: the largest back whose id >= seq */
    hi = lo;
    lo = 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        worker_recent_at(w, mid, &p);
        if (id_at(w, p) >= seq) lo = mid;
        else hi = mid - 1;
    }
    worker_recent_at(w, lo, pos);
    *back = lo;
    return 0;
}

/* The client continues on the ring at pos. */
static void join(struct deep *d, uint64_t pos)
{
    struct conn *c = d->c;
    log_info("resume from id %" PRIu64 ": %" PRIu64 " entries sent from the stream; continuing on the ring at %" PRIu64,
             d->from - 1, d->sent, d->e.seq);
    deep_drop(d);
    c->state = c->proto == PROTO_WS ? CS_WS : CS_SSE;
    c->cursor = pos;
    c->rec_off = 0;
    conn_list_add(conn_list_head(c), c);
    c->flags |= CF_LISTED;
    conn_flush(c);
}

/* Appends entry e as the client's format gives it: the bytes a ring record
 * of it gives (shm/ring.c: SSE "id: N\ndata: JSON\n\n"; a WebSocket text
 * frame, compressed when the ring would have a compressed one). */
static bool put_entry(struct worker *w, struct conn *c, const struct history_entry *e, char **buf, size_t *len,
                      size_t *cap)
{
    const char *j = e->json[c->fmt];
    size_t n = e->len[c->fmt];
    const uint8_t *z = NULL;
    size_t zn = 0;
    if (c->proto == PROTO_WS && c->deflate && w->cfg->compression.enabled && n >= w->cfg->compression.min_size) {
        if (!g_zd) g_zd = wsdeflate_new((int)w->cfg->compression.level);
        zn = g_zd ? wsdeflate_message(g_zd, j, n, &z) : 0;
    }
    size_t need = *len + n + 48 + zn;
    if (need > *cap) {
        size_t nc = *cap ? *cap : DEEP_CHUNK + 64 * 1024;
        while (nc < need) nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return false;
        *buf = nb;
        *cap = nc;
    }
    char *p = *buf + *len;
    if (c->proto == PROTO_SSE) {
        p += sprintf(p, "id: %" PRIu64 "\ndata: ", e->seq);
        memcpy(p, j, n);
        p += n;
        memcpy(p, "\n\n", 2);
        p += 2;
    } else {
        const void *payload = zn ? (const void *)z : (const void *)j;
        size_t pl = zn ? zn : n;
        size_t h = wshdr_put((uint8_t *)p, zn ? WSHDR_TEXT_DEFLATE : WSHDR_TEXT, pl);
        p += h;
        memcpy(p, payload, pl);
        p += pl;
    }
    *len = (size_t)(p - *buf);
    return true;
}

/* Gives one resuming client its next chunk (or joins it to the ring).
 * Returns false when d is gone (joined, or the client freed). */
static bool refill(struct worker *w, struct deep *d)
{
    struct conn *c = d->c;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    unsigned msgs = 0, examined = 0;
    struct history_counters *hc = g_ops->counters;
    while (len < DEEP_CHUNK) {
        if (!d->have) {
            if (examined++ == DEEP_EXAMINE) break;   /* a filter rejecting a long run: the next tick goes on */
            int r = d->rd ? g_ops->next(d->rd, &d->e) : -1;
            if (r < 0) {
                /* the reader broke (NATS gone, a slow-consumer reset): a
                 * new one continues where this one stopped */
                if (d->rd) g_ops->close(d->rd);
                d->rd = g_ops->open(w->cfg, d->next);
                break;
            }
            if (r == 0) break;
            if (d->e.seq < d->next) continue;        /* a restarted reader repeating one */
            if (!d->started) {
                d->started = true;
                if (d->e.seq > d->next) {
                    uint64_t gone = d->e.seq - d->next;
                    if (hc) atomic_fetch_add(&hc->gone, gone);
                    log_warn("resume from id %" PRIu64 ": entries %" PRIu64 "..%" PRIu64 " (%" PRIu64
                             ") are no longer in the stream (retention, nats.max_age); starting at %" PRIu64,
                             d->from - 1, d->next, d->e.seq - 1, gone, d->e.seq);
                }
            } else if (d->e.seq > d->next) {
                /* a gap in what the reader gave (messages the client library
                 * dropped): read again from the next one; what the stream
                 * really no longer holds is then reported as above */
                g_ops->close(d->rd);
                d->rd = g_ops->open(w->cfg, d->next);
                d->started = false;
                break;
            }
            d->have = true;
        }
        uint64_t pos = 0, back = 0;
        worker_scan(w);
        int place = ring_place(w, d->e.seq, &pos, &back);
        if (place > 0) break;   /* not in this ring yet: the consumer brings it soon */
        uint64_t margin = w->cfg->buffer_size ? w->cfg->buffer_size / 2 : worker_recent_n(w) / 2;
        /* join among the newest records (by count and by bytes), so the
         * client does not start out as a slow one (pump.c: too_slow) */
        if (place == 0 && back <= margin && w->head - pos <= ring_size(w->ring) / 4 &&
            id_at(w, pos) == d->e.seq) {
            if (len) {   /* what is queued goes first; join at the next refill */
                break;
            }
            free(buf);
            join(d, pos);
            return false;
        }
        d->have = false;
        d->next = d->e.seq + 1;
        const char *fj = d->e.len[RING_LITE] ? d->e.json[RING_LITE] : d->e.json[RING_FULL];
        size_t fl = d->e.len[RING_LITE] ? d->e.len[RING_LITE] : d->e.len[RING_FULL];
        if (c->filter && !filter_match_json(w->filters, c->filter, fj, fl)) continue;
        if (!put_entry(w, c, &d->e, &buf, &len, &cap)) break;
        msgs++;
        d->sent++;
    }
    if (len == 0) {
        free(buf);
        return true;
    }
    if (hc) atomic_fetch_add(&hc->entries, msgs);
    w->pend_msgs[c->fmt] += msgs;
    c->out = buf;
    c->out_len = len;
    c->out_off = 0;
    /* conn_flush frees c when the socket fails: find d again after it */
    if (conn_flush(c) != 0) return false;
    return deep_of(c) != NULL;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    for (unsigned i = 0; i < g_n;) {
        struct deep *d = &g_deep[i];
        struct conn *c = d->c;
        bool alive = true;
        for (unsigned r = 0; r < DEEP_ROUNDS && alive && !c->out && c->ctl_len == c->ctl_off; r++) {
            alive = refill(w, d);
            if (alive && c->out) break;   /* the socket is full: wait for it */
        }
        /* d now holds another client when this one left the list */
        if (alive && i < g_n && g_deep[i].c == c) i++;
    }
}

bool deep_resume(struct conn *c, uint64_t id)
{
    struct worker *w = c->w;
    uint64_t pos, back;
    if (!g_ops || strcmp(w->cfg->ingest.source, "nats") != 0 || id == UINT64_MAX)
        return false;
    worker_scan(w);
    if (ring_place(w, id + 1, &pos, &back) >= 0) return false;   /* the ring has it (or it is new) */
    if (g_n == DEEP_MAX) {
        log_warn("resume from id %" PRIu64 ": %u clients already read history in this worker; "
                 "starting at the oldest entry the ring holds", id, DEEP_MAX);
        return false;
    }
    if (!g_tick) {
        g_tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
        if (!g_tick) return false;
    }
    void *rd = g_ops->open(w->cfg, id + 1);
    if (!rd) return false;
    if (g_n == 0) {
        struct timeval tv = {0, DEEP_TICK_MS * 1000};
        if (event_add(g_tick, &tv) != 0) {
            g_ops->close(rd);
            return false;
        }
    }
    struct deep *d = &g_deep[g_n++];
    *d = (struct deep){.c = c, .rd = rd, .from = id + 1, .next = id + 1};
    if (c->flags & CF_LISTED) {
        conn_list_del(conn_list_head(c), c);
        c->flags &= (uint8_t)~CF_LISTED;
    }
    c->state = CS_DEEP;
    if (g_ops->counters) atomic_fetch_add(&g_ops->counters->resumes, 1);
    log_debug("fd %d: resume from id %" PRIu64 ", older than this ring: reading history", c->fd, id);
    return true;
}

void deep_forget(struct conn *c)
{
    struct deep *d = deep_of(c);
    if (d) deep_drop(d);
}

void deep_shutdown(struct conn *c)
{
    deep_forget(c);
    c->state = c->proto == PROTO_WS ? CS_WS : CS_SSE;
    if (c->proto == PROTO_WS) ws_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
    else sse_end(c);
}
