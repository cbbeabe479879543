/* fanout.c - the fanout worker process: its listener, accept path and
 * event loop, the read side of every connection (dispatched by state), the
 * keep-alive timers, and the graceful stop. The top of fanout/'s layers:
 *
 *   fanout.c                    worker main loop, accept, read dispatch, timers
 *   request.c                   request head and routing
 *   session.c  | http_routes.c  WebSocket/SSE sessions | the small endpoints' bodies
 *   respond.c  | auth.c         one-shot responses | token check
 *   pump.c                      the hot path: streaming records to clients
 *   conn.c                      connection lifecycle below the protocols
 *   ring_walk.c                 the worker's walk of the ring
 *
 * Each file calls only files below it; fanout_internal.h holds the shared
 * structures. */
#include "fanout/fanout_internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/wsdeflate.h"
#include "fanout/certindex.h"
#include "fanout/conn.h"
#include "fanout/deep.h"
#include "fanout/edge.h"
#include "fanout/filter.h"
#include "fanout/pump.h"
#include "fanout/request.h"
#include "fanout/session.h"
#include "shm/proctable.h"

#define SHUTDOWN_GRACE_SECS 2
#define ACCEPT_BATCH 64

static void drain_input(struct conn *c)
{
    char buf[READ_CHUNK];
    ssize_t n = edge_recv(c, buf, sizeof buf);
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
            ssize_t n = edge_recv(c, buf, sizeof buf);
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

/* ---- keep-alive timers --------------------------------------------------- */

static void heartbeat_break(struct conn *c, void *arg)
{
    (void)arg;
    if (c->zc.on) zchain_break(c);
}

/* Sends the heartbeat frame; permessage-deflate clients get it compressed
 * (once per heartbeat), so that they only ever see compressed messages. */
static void heartbeat_send(struct worker *w, const uint8_t *frame, size_t n)
{
    const uint8_t *z;
    uint8_t zf[2 + 125];
    /* the compressor (~256 KiB of zlib state) only once a client needs it */
    if (w->deflate_clients && !w->zd) w->zd = wsdeflate_new((int)w->cfg->compression.level);
    size_t zn = w->deflate_clients && w->zd ? wsdeflate_message_always(w->zd, frame + 2, n - 2, &z) : 0;
    if (zn == 0 || zn > 125) {
        broadcast_ws_control(w, frame, n);
        return;
    }
    zf[0] = 0x80 | 0x40 | WS_OP_TEXT;   /* FIN, RSV1 (compressed), Text */
    zf[1] = (uint8_t)zn;
    memcpy(zf + 2, z, zn);
    /* it enters the windows of clients with chained frames, not the stream */
    if (w->zchain) worker_each_stream(w, PROTO_WS, heartbeat_break, NULL);
    broadcast_ws_message(w, frame, n, zf, zn + 2);
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
            heartbeat_send(arg, (const uint8_t *)b.p, b.len);
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

static void drain_check(struct worker *w);

struct sse_tick { uint32_t now, every; };

static void sse_heartbeat(struct conn *c, void *arg)
{
    static const char hb[] = ":heartbeat\n\n";
    const struct sse_tick *t = arg;
    if (t->now - c->last_send < t->every) return;
    c->last_send = t->now;
    if (ctl_append(c, hb, sizeof hb - 1, false) && !(c->flags & CF_WRITE_ARMED)) conn_flush(c);
}

/* Once a second: SSE comment heartbeats after silence, and a safety pump in
 * case a wakeup was coalesced away. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    struct sse_tick t = { mono_ms32(), w->cfg->keepalive.sse_heartbeat_secs * 1000u };
    worker_pump(w);
    certindex_tick(w);
    drain_check(w);
    if (t.every == 0) return;
    worker_each_stream(w, PROTO_SSE, sse_heartbeat, &t);
}

/* ---- accepting ------------------------------------------------------------ */

static void conn_new(struct worker *w, int fd, const void *peer, socklen_t plen, bool tls)
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
    if (event_assign(&c->wev, w->base, fd, EV_WRITE, conn_on_write, c) != 0 ||
        event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, on_read, c) != 0 ||
        event_add(&c->rev, &tv) != 0) {
        conn_free(c);
        return;
    }
    stats_add(w->stats, w->slot, ST_CONN_ACCEPTED, 1);
    if (edge_conn_start(c, tls) != 0) conn_free(c);
}

void fanout_on_accept(evutil_socket_t lfd, short what, void *arg)
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
                log_every(LOG_WARN, 10, "accept: %s; pausing for 100 ms", strerror(errno));
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
        if (!edge_accept(w, fd, &peer.sa)) {
            if (close(fd) != 0) log_debug("close: %s", strerror(errno));
            continue;
        }
        conn_new(w, fd, &peer, plen, lfd == w->listen_fd);
    }
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    if (!w->stopping && event_add(w->listen_ev, NULL) != 0) log_error("cannot resume accepting");
}

int fanout_listen_socket(const char *host, uint16_t port)
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
    edge_worker_stop(w);
    struct conn *next;
    for (struct conn *c = w->all; c; c = next) {
        next = c->all_next;
        if (c->state == CS_WS) ws_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
        else if (c->state == CS_SSE) sse_end(c);
        else if (c->state == CS_DEEP) deep_shutdown(c);
        else if (c->state == CS_REQUEST) conn_free(c);
    }
    worker_publish_all(w);
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

/* Replaced by a reload (SIGUSR2 from the supervisor once the new workers
 * accept, as nginx's old workers do): stop accepting, keep streaming to the
 * clients already here until they leave or shutdown.drain_timeout_secs
 * passes, then stop as on SIGTERM (WebSocket Close 1001). One worker per
 * process, so the drain state is the file's. */
static bool g_draining;
static struct event *g_drain_ev, *g_sig_drain;

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    log_info("drain: shutdown.drain_timeout_secs passed; closing %u connections (1001)", w->nconns);
    worker_stop(w);
}

static void on_drain(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct worker *w = arg;
    if (w->stopping || g_draining) return;
    g_draining = true;
    proctable_set_state(PROC_DRAINING);
    /* connections already queued on our listener are taken first: closing a
     * SO_REUSEPORT listener resets what is still in its accept queue */
    if (w->listen_fd >= 0) fanout_on_accept(w->listen_fd, EV_READ, w);
    if (w->listen_ev) event_del(w->listen_ev);
    if (w->accept_retry_ev) event_del(w->accept_retry_ev);
    if (w->listen_fd >= 0 && close(w->listen_fd) != 0) log_debug("close listener: %s", strerror(errno));
    w->listen_fd = -1;
    edge_worker_drain(w);   /* the same for the tls.plain_port listener */
    uint32_t secs = w->cfg->shutdown.drain_timeout_secs;
    log_info("replaced: no longer accepting; serving %u connections until they leave or %u s pass",
             w->nconns, secs);
    struct timeval tv = tv_secs(secs);
    if (secs == 0 || !(g_drain_ev = evtimer_new(w->base, on_drain_timeout, w)) || event_add(g_drain_ev, &tv) != 0)
        worker_stop(w);
}

/* While draining, the worker exits once its last client is gone. */
static void drain_check(struct worker *w)
{
    if (g_draining && !w->stopping && w->nconns == 0) {
        log_info("drain: every client has left");
        worker_stop(w);
    }
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

/* Reload in place (the supervisor validated the file and bumped
 * PROC_GEN_CONFIG): this worker loads the same file with the same command
 * line and environment, and new connections use it at once; connected
 * clients keep what they were admitted with (except the keep-alive timers,
 * which are the worker's). What only a new worker can change (listen address,
 * buffer_size, filters, compression) is kept as the worker started with it;
 * the supervisor replaces the workers for those. The file is read again here,
 * so an edit in the 250 ms between the supervisor's check and this load is
 * what the worker gets; a file that became invalid keeps the running
 * configuration (logged). The first configuration is the fork's copy and the
 * filter set keeps pointing at it; later ones are this worker's. */
static uint32_t g_config_gen;
static struct config *g_owned_cfg;
static const struct config_flags *g_flags;

static void rearm(struct event *ev, uint32_t secs)
{
    struct timeval tv = tv_secs(secs);
    if (ev && (event_del(ev) != 0 || event_add(ev, &tv) != 0)) log_error("cannot re-arm a keep-alive timer");
}

static void worker_reload(struct worker *w)
{
    uint32_t gen = proctable_generation(proctable_get(), PROC_GEN_CONFIG);
    if (gen == g_config_gen) return;
    g_config_gen = gen;
    proctable_set_config_gen(gen); /* tried: the supervisor counts the reload when all have */
    extern char **environ;
    char path[4096];
    struct config_error err;
    struct config_flags flags = g_flags ? *g_flags : (struct config_flags){0};
    proctable_config_path(proctable_get(), path, sizeof path);
    flags.config_path = path[0] ? path : NULL;
    struct config *fresh = malloc(sizeof *fresh);
    if (!fresh || config_load(fresh, &flags, environ, &err) != 0) {
        log_error("reload in place: %s; keeping the running configuration",
                  fresh ? err.message : "out of memory");
        free(fresh);
        return;
    }
    const struct config *old = w->cfg;
    fresh->buffer_size = old->buffer_size;      /* sizes this worker's recent[] */
    fresh->filters = old->filters;              /* the filter set's limits */
    fresh->compression.enabled = old->compression.enabled; /* the producers' framing */
    /* which records go compressed (zalone_wanted) must not change under
     * clients' windows and the shared stream */
    fresh->compression.min_size = old->compression.min_size;
    bool hb = fresh->keepalive.websocket_heartbeat_secs != old->keepalive.websocket_heartbeat_secs,
         ping = fresh->keepalive.ping_interval_secs != old->keepalive.ping_interval_secs,
         idle = fresh->keepalive.idle_timeout_secs != old->keepalive.idle_timeout_secs;
    w->cfg = fresh;
    if (g_owned_cfg) {
        /* strings shared with fresh by the field copies above: none (all scalar) */
        config_free(g_owned_cfg);
        free(g_owned_cfg);
    }
    g_owned_cfg = fresh;
    if (hb) rearm(w->hb_ev, fresh->keepalive.websocket_heartbeat_secs);
    if (ping) rearm(w->ping_ev, fresh->keepalive.ping_interval_secs);
    if (idle) {
        struct timeval tv = tv_secs(fresh->keepalive.idle_timeout_secs);
        const struct timeval *t = event_base_init_common_timeout(w->base, &tv);
        if (t) w->idle_tv = t;
    }
    log_info("configuration reloaded in place; new connections use it");
}

/* The heartbeat the supervisor's watchdog reads (shm/proctable.h): it beats
 * only while this event loop turns. */
static void on_beat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    proctable_beat();
    worker_reload(arg);
}

int fanout_run(const struct fanout_params *p)
{
    struct event *beat_ev = NULL;
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

    w->recent_cap = pow2_at_least((uint64_t)config_history_messages(p->cfg) + 1);
    w->recent = calloc(w->recent_cap, sizeof *w->recent);
    if (!w->recent) goto err;
    w->filters = filter_set_new(p->cfg);
    if (!w->filters) goto err;
    w->head = first_record(w->ring);
    worker_scan(w);

    ecfg = event_config_new();
    if (!ecfg || event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER) != 0 ||
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK) != 0)
        goto err;
    w->base = event_base_new_with_config(ecfg);
    if (!w->base) goto err;

    w->listen_fd = fanout_listen_socket(p->cfg->host, p->cfg->port);
    if (w->listen_fd < 0) goto err;
    struct timeval idle = tv_secs(p->cfg->keepalive.idle_timeout_secs ? p->cfg->keepalive.idle_timeout_secs : 60);
    w->idle_tv = event_base_init_common_timeout(w->base, &idle);
    w->listen_ev = event_new(w->base, w->listen_fd, EV_READ | EV_PERSIST, fanout_on_accept, w);
    w->accept_retry_ev = evtimer_new(w->base, on_accept_retry, w);
    w->stop_ev = evtimer_new(w->base, on_stop_timer, w);
    w->sig_term = evsignal_new(w->base, SIGTERM, on_signal, w);
    w->sig_int = evsignal_new(w->base, SIGINT, on_signal, w);
    if (!w->idle_tv || !w->listen_ev || !w->accept_retry_ev || !w->stop_ev || !w->sig_term ||
        !w->sig_int || event_add(w->listen_ev, NULL) != 0 || event_add(w->sig_term, NULL) != 0 ||
        event_add(w->sig_int, NULL) != 0)
        goto err;
    if (w->wake_fd >= 0) {
        w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, worker_on_wake, w);
        if (!w->wake_ev || event_add(w->wake_ev, NULL) != 0) goto err;
    }
    w->hb_ev = timer(w, p->cfg->keepalive.websocket_heartbeat_secs, on_heartbeat);
    w->ping_ev = timer(w, p->cfg->keepalive.ping_interval_secs, on_ping);
    w->tick_ev = timer(w, 1, on_tick);
    if (!w->tick_ev) goto err;
    if (edge_worker_init(w, p) != 0) goto err;

    struct timeval beat_tv = {0, PROCTABLE_BEAT_MS * 1000};
    g_flags = p->flags;
    g_config_gen = proctable_generation(proctable_get(), PROC_GEN_CONFIG);
    beat_ev = event_new(w->base, -1, EV_PERSIST, on_beat, w);
    if (!beat_ev || event_add(beat_ev, &beat_tv) != 0) goto err;
    g_sig_drain = evsignal_new(w->base, SIGUSR2, on_drain, w);
    if (!g_sig_drain || event_add(g_sig_drain, NULL) != 0) goto err;
    proctable_beat();
    proctable_set_state(PROC_RUNNING); /* listening and accepting */
    log_info("listening on %s:%u", p->cfg->host ? p->cfg->host : "0.0.0.0", (unsigned)p->cfg->port);
    if (event_base_dispatch(w->base) < 0) goto err;
    status = 0;
err:
    if (beat_ev) event_free(beat_ev);
    if (g_sig_drain) event_free(g_sig_drain);
    if (g_drain_ev) event_free(g_drain_ev);
    if (status != 0) log_error("fanout worker %u failed to run", p->index);
    while (w->all) {
        w->stopping = false;
        conn_free(w->all);
    }
    worker_publish_all(w);
    edge_worker_free(w);
    struct event *evs[] = { w->listen_ev, w->wake_ev, w->hb_ev, w->ping_ev, w->tick_ev, w->sig_term,
                            w->sig_int, w->stop_ev, w->accept_retry_ev };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i]) event_free(evs[i]);
    if (w->listen_fd >= 0 && close(w->listen_fd) != 0) log_debug("close listener: %s", strerror(errno));
    if (w->base) event_base_free(w->base);
    if (ecfg) event_config_free(ecfg);
    free(w->recent);
    certindex_free(w->certindex);
    filter_set_free(w->filters);
    wsdeflate_free(w->zd);
    zchain_free(w->zchain);
    zalone_free(w->zalone);
    free(w);
    if (g_owned_cfg) {
        config_free(g_owned_cfg);
        free(g_owned_cfg);
        g_owned_cfg = NULL;
    }
    return status;
}
