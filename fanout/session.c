/* session.c - WebSocket and SSE sessions: admission (auth, connection
 * limits), the upgrade or the SSE response head, where a client starts in
 * the ring (SSE resume), and the WebSocket input (Ping, Close, errors).
 *
 * SSE resume (Last-Event-ID) and WebSocket ?resume=: see resume_start().
 * Connection limits apply to streaming clients (WebSocket, SSE); the small
 * endpoints are not counted. */
#include "fanout/session.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fanout/auth.h"
#include "fanout/deep.h"
#include "fanout/edge.h"
#include "fanout/filter.h"
#include "fanout/pump.h"
#include "fanout/respond.h"
#include "fanout/ws_handshake.h"

static uint64_t resume_start(struct worker *w, const struct http_str *v);
static bool resume_id(const struct http_str *v, uint64_t *id);

bool stream_enabled(const struct config *cfg, enum ring_format f)
{
    return f == RING_FULL ? cfg->streams.full : f == RING_LITE ? cfg->streams.lite : cfg->streams.domains_only;
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
    conn_list_add(conn_list_head(c), c);
    c->flags |= CF_LISTED | CF_GAUGED;
    stats_add(w->stats, w->slot, conn_gauge_id(c), 1);
    if (c->filter) log_debug("fd %d: filtered stream (%u distinct filters)", c->fd, filter_count(w->filters));
    /* WebSocket: idle timeout via a common timeout (O(1) re-arm per read);
     * SSE clients send nothing, so only EOF matters */
    if (proto == PROTO_WS) return rearm_read(c, EV_READ | EV_PERSIST, w->idle_tv);
    return rearm_read(c, EV_READ | EV_PERSIST, NULL);
}

/* A stream (WebSocket or SSE) needs the token when auth is on (401) and a
 * free place under the shared connection limits (429, before the upgrade).
 * False: the answer has been sent. */
/* An edge node (ingest.source: nats) serves stream clients once its NATS
 * consumer has filled its fresh ring (docs/scale-out.md): before that, a
 * live client would get old entries and a resuming one could not be placed. */
static bool edge_ready(const struct worker *w)
{
    struct stats_nats *n = stats_nats(w->stats);
    return atomic_load_explicit(&n->role, memory_order_relaxed) != NATS_ROLE_CONSUMER ||
           atomic_load_explicit(&n->ready, memory_order_acquire);
}

/* The request's server-side filter (filter.h), interned in c->filter: a bad
 * one is a 400 and one distinct filter too many a 429, both with the reason,
 * before the upgrade. False: the answer has been sent. */
static bool filter_ok(struct worker *w, struct conn *c, const struct http_request *req, bool head)
{
    char why[300], text[400];
    int status = 400;
    if (filter_acquire(w->filters, req->query, &c->filter, &status, why, sizeof why) >= 0) return true;
    stats_add(w->stats, w->slot, ST_FILTER_REJECTED, 1);
    snprintf(text, sizeof text, "%s: %s.\n", status == 429 ? "Too many filters" : "Bad filter", why);
    respond_text(c, status, status == 429 ? "Retry-After: 5\r\n" : NULL, text, head);
    return false;
}

static bool admit_stream(struct worker *w, struct conn *c, const struct http_request *req)
{
    if (!edge_ready(w)) {
        respond_text(c, 503, "Retry-After: 1\r\n", "Starting: filling the ring from NATS.\n", false);
        return false;
    }
    if (!auth_ok(w, req)) {
        stats_add(w->stats, w->slot, ST_AUTH_FAILURES, 1);
        respond_text(c, 401, "WWW-Authenticate: Bearer\r\n", "Unauthorized.\n", false);
        return false;
    }
    if (!filter_ok(w, c, req, false)) return false;
    /* limits count the real address, exactly (fanout/edge.c) */
    int lim = edge_limit_acquire(c);
    if (lim == 429) {
        respond_text(c, 429, "Retry-After: 5\r\n", "Too many connections.\n", false);
        return false;
    }
    if (lim == 503) {
        respond_text(c, 503, "Retry-After: 5\r\n", "Too many client addresses.\n", false);
        return false;
    }
    return true;
}

void start_websocket(struct conn *c, const struct http_request *req, enum ring_format f,
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
    bool takeover = false;
    hs.deflate = w->cfg->compression.enabled && ws_deflate_offer(req, &takeover);
    /* compression.shared_context: chained frames (zchain.h) for a client
     * that leaves the server its context and gets every record (no filter) */
    if (hs.deflate && takeover && w->cfg->compression.shared_context && !c->filter) {
        if (!w->zchain) w->zchain = zchain_new(w->cfg->compression.shared_cache_size, (int)w->cfg->compression.level);
        hs.takeover = w->zchain != NULL;
    }
    char resp[CONN_CTL_CAP];
    size_t n = ws_handshake_response(resp, sizeof resp, &hs);
    if (n == 0 || !ctl_append(c, resp, n, true)) {
        conn_free(c);
        return;
    }
    ws_reader_init(&c->rd, w->cfg->limits.max_frame_bytes, w->cfg->limits.max_message_bytes);
    if (hs.deflate) {
        c->deflate = true;
        c->rd.rsv1_ok = 1;
        w->deflate_clients++;
        stats_add(w->stats, w->slot, ST_CLIENTS_DEFLATE, 1);
        stats_add(w->stats, w->slot, ST_DEFLATE_NEGOTIATED, 1);
    }
    /* early bytes may live in c->rbuf, which start_stream frees: keep a copy */
    uint8_t early_copy[REQUEST_SLACK + READ_CHUNK];
    if (early_len > sizeof early_copy) early_len = sizeof early_copy;
    if (early_len) memcpy(early_copy, early, early_len);
    /* ?resume=ID: the same ids as SSE (docs/wire-format.md) */
    struct http_str rv;
    bool has_resume = http_query_param(req->query, "resume", &rv);
    uint64_t cursor = has_resume ? resume_start(w, &rv) : ring_start_position(w->ring);
    if (hs.takeover) {
        zchain_client_init(&c->zc, cursor);
        stats_add(w->stats, w->slot, ST_CLIENTS_DEFLATE_SHARED, 1);
    }
    if (start_stream(c, PROTO_WS, f, cursor) != 0) return;
    uint64_t rid;
    if (has_resume && resume_id(&rv, &rid) && deep_resume(c, rid)) {   /* older than the ring: from history (deep.h) */
        conn_flush(c);   /* the 101; input is ignored until the client joins the ring */
        return;
    }
    if (conn_flush(c) != 0) return;
    if (early_len) ws_consume(c, early_copy, early_len);
}

/* Edge node (ingest.source: nats): ids are stream sequences, the same on
 * every edge, so a client resumes on any of them. The record after `id`
 * among the records this worker knows (newest first; ids grow with
 * positions); an id older than all of them starts at the oldest known (the
 * entries between are not read back from JetStream: docs/scale-out.md); an
 * id in the future starts live. */
static uint64_t resume_stream_id(struct worker *w, uint64_t id, uint64_t live)
{
    uint64_t n = worker_recent_n(w), pos, start = live;
    for (uint64_t back = 0; back < n; back++) {
        const struct ring_record *rec;
        if (!worker_recent_at(w, back, &pos) || ring_peek(w->ring, pos, &rec) != RING_OK) break;
        uint64_t rid = ring_record_sse_id(rec);
        if (ring_lapped_since(w->ring, pos)) break;
        if (rid <= id) return rid == id ? ring_next(rec) : start;
        start = pos;
    }
    return start;
}

/* The oldest of start and the known records after it that a client may lag
 * from by time (worker_lags_too_long is monotonic in the position: older
 * records are further behind), by binary search over recent[]. The ring
 * bounds the depth in bytes (ring_oldest_position). */
static uint64_t resume_limit(struct worker *w, uint64_t start)
{
    if (!worker_lags_too_long(w, start)) return start;
    uint64_t n = worker_recent_n(w), lo = 0, hi = n, pos;   /* index back from newest */
    /* smallest `back` whose record is too far behind: the one before it is the limit */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (!worker_recent_at(w, mid, &pos)) break;
        if (pos > start && !worker_lags_too_long(w, pos)) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0 || !worker_recent_at(w, lo - 1, &pos)) return ring_start_position(w->ring);
    return pos;
}

/* The resume id of a request: SSE Last-Event-ID, or WebSocket ?resume=ID. */
static bool resume_id(const struct http_str *v, uint64_t *id)
{
    uint64_t seq = 0;
    if (!v || v->len == 0 || v->len > 20) return false;
    for (size_t i = 0; i < v->len; i++) {
        if (v->p[i] < '0' || v->p[i] > '9') return false;
        uint64_t d = (uint64_t)(v->p[i] - '0');
        if (seq > (UINT64_MAX - d) / 10) return false;
        seq = seq * 10 + d;
    }
    *id = seq;
    return true;
}

/* Where a resuming client starts (SSE Last-Event-ID, WebSocket ?resume=ID):
 * the live position, or after its id if that record is still in the ring. An id that was already overwritten
 * resumes at the oldest intact record this worker knows; an id that is not a
 * record (or in the future) starts live. A resume never starts further back
 * than a client may lag (limits.slow_client_seconds, or buffer_size messages
 * when set: it would be dropped as slow at once). */
static uint64_t resume_start(struct worker *w, const struct http_str *v)
{
    uint64_t live = ring_start_position(w->ring), seq = 0, start;
    if (!resume_id(v, &seq)) return live;
    worker_scan(w);
    if (strcmp(w->cfg->ingest.source, "nats") == 0) {
        start = resume_stream_id(w, seq, live);
        goto limit;
    }
    const struct ring_record *rec;
    enum ring_status st = ring_find(w->ring, seq, &rec);
    if (st == RING_OK) {
        start = ring_next(rec);
        if (ring_lapped_since(w->ring, seq)) st = RING_LAPPED;
    }
    if (st == RING_LAPPED) {
        uint64_t n = worker_recent_n(w), pos = live;
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
limit:
    return resume_limit(w, start);
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

void start_sse(struct conn *c, const struct http_request *req, bool head_only)
{
    struct worker *w = c->w;
    enum ring_format f;
    /* With cors.allowed_origins, an EventSource on a listed origin may read
     * the stream (docs/wire-format.md, "CORS"): it sends a simple GET, so no
     * preflight, only the allow header on the answer. */
    char cors[600], head[1024];
    int head_len = snprintf(head, sizeof head,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                            "%sConnection: close\r\nX-Accel-Buffering: no\r\n\r\n",
                            api_cors_headers(w->cfg, req, cors, sizeof cors));
    if (head_len < 0 || (size_t)head_len >= sizeof head) {
        respond_text(c, 500, NULL, "Internal error.\n", head_only);
        return;
    }
    if (!parse_sse_stream(req->query, &f)) {
        respond_text(c, 400, NULL, "Unknown stream: use stream=lite, full or domains.\n", head_only);
        return;
    }
    if (!stream_enabled(w->cfg, f)) {
        respond_not_found(c, head_only);
        return;
    }
    if (head_only) {
        /* HEAD: the GET answer's head (auth checked, nothing streamed, so no
         * place under the connection limits is taken) */
        if (!auth_ok(w, req)) {
            stats_add(w->stats, w->slot, ST_AUTH_FAILURES, 1);
            respond_text(c, 401, "WWW-Authenticate: Bearer\r\n", "Unauthorized.\n", true);
            return;
        }
        if (!filter_ok(w, c, req, true)) return;
        if (c->filter) {
            filter_release(w->filters, c->filter);
            c->filter = NULL;
        }
        respond_head(c, head, (size_t)head_len);
        return;
    }
    if (!admit_stream(w, c, req))
        return;
    uint64_t cursor = resume_start(w, http_header_get(req, "Last-Event-ID"));
    if (!ctl_append(c, head, (size_t)head_len, true)) {
        conn_free(c);
        return;
    }
    if (start_stream(c, PROTO_SSE, f, cursor) != 0) return;
    uint64_t rid;
    if (resume_id(http_header_get(req, "Last-Event-ID"), &rid))
        deep_resume(c, rid);   /* older than the ring: from history (deep.h) */
    conn_flush(c);
}

int ws_consume(struct conn *c, const uint8_t *p, size_t n)
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
