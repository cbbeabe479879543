/* natsnode.c - the NATS JetStream process: publisher on ingest nodes,
 * consumer on edge nodes (see natsnode.h and docs/scale-out.md).
 *
 * The loop of each role is a plain blocking loop with short timeouts: the
 * NATS C client runs its own I/O threads, so there is no event loop to share
 * and the process does one thing. Callbacks from the client's threads only
 * touch atomics. */
#include "nats/natsnode.h"

#include "common/clock.h"
#include "common/log.h"
#include "nats/ackstore.h"
#include "nats/position.h"
#include "nats/wire.h"
#include "shm/proctable.h"

#include <nats/nats.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PUB_ACK_WAIT_MS 2000       /* a record not acknowledged in this is sent again, with all after it */
#define PUB_BURST 256              /* records sent between two looks at the acknowledgements */
#define PUB_LINGER_MS 10           /* idle publisher woken by the ring: gather this long, then send
                                    * what came as one burst (one wakeup, one socket write) */
#define CONNECT_RETRY_MS 500
#define STALL_RESUBSCRIBE_MS 5000  /* stream has more, nothing arrives: subscribe again */
#define INFO_PERIOD_MS 1000        /* stream info, lag, position msync, health */
#define NOTIFY_EVERY 64            /* consumer: wake fanout at least this often */

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* EINTR on SIGTERM is how we stop */
}

bool natsnode_wanted(const struct config *cfg)
{
    return cfg->nats.publish || strcmp(cfg->ingest.source, "nats") == 0;
}

/* The publisher's ring wakeup (an eventfd the producers' ring_notify
 * writes), created by the supervisor and inherited through fork. */
static int g_wake_fd = -1;

int natsnode_prepare(const struct config *cfg, struct stats *stats, struct ring *ring)
{
    struct stats_nats *n = stats_nats(stats);
    atomic_store(&n->lag_limit_ms, (uint64_t)cfg->nats.max_lag_secs * 1000u);
    if (cfg->nats.publish) {
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (efd < 0)
            return -1;
        if (ring_add_waiter(ring, efd) != 0) {
            int e = errno;
            if (close(efd) != 0)
                log_warn("close: %s", strerror(errno));
            errno = e;
            return -1;
        }
        g_wake_fd = efd;
        /* Producers may run before the publisher: it starts at the ring's
         * first record, and the gate holds them at half a ring ahead. */
        atomic_store(&n->ring_acked, ring_start_position(ring));
        atomic_store(&n->gate_bytes, (uint64_t)ring_size(ring) / 2);
        atomic_store(&n->role, NATS_ROLE_PUBLISHER);
    } else if (natsnode_wanted(cfg)) {
        atomic_store(&n->role, NATS_ROLE_CONSUMER);
    }
    return 0;
}

/* Publisher, idle: until a producer publishes (true) or timeout_ms. */
static bool wait_ring(unsigned timeout_ms)
{
    if (g_wake_fd < 0) {
        sleep_ms(timeout_ms < 5 ? timeout_ms : 5);
        return false;
    }
    struct pollfd pfd = {.fd = g_wake_fd, .events = POLLIN};
    int rc = poll(&pfd, 1, (int)timeout_ms);
    if (rc < 0 && errno != EINTR) {
        log_warn("poll: %s", strerror(errno));
        sleep_ms(5);
    } else if (rc > 0) {
        uint64_t v;
        if (read(g_wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
            log_warn("read(eventfd): %s", strerror(errno));
        return true;
    }
    return false;
}

/* ------------------------------------------------------------- connection */

struct node {
    const struct natsnode_params *p;
    const struct config *cfg;
    struct stats_nats *st;
    natsConnection *nc;
    jsCtx *js;
    char subject[256];
    /* publisher: the records sent and not yet resolved, in ring order; the
     * ack handler (a client thread) marks them, the loop pops them */
    pthread_mutex_t fl_mu;
    struct inflight *fl;
    unsigned fl_cap;
    uint64_t fl_head, fl_tail;   /* counters; slot = counter % fl_cap */
    uint64_t fl_ack_next;        /* ack handler: first record it has not resolved */
    _Atomic uint64_t last_seq;
    natsStatistics *nstats;      /* publisher: the connection's counters (its reconnects) */
    uint64_t reconnects_seen;
    /* publisher: a message the ring holds in pieces, gathered (shm/ring.h) */
    char *json[RING_NFORMATS];
    size_t json_cap[RING_NFORMATS];
};

enum { FL_PENDING, FL_ACKED, FL_FAILED };

struct inflight {
    natsMsg *msg;          /* identity only: the ack handler gets this pointer back */
    uint64_t end;          /* ring position after the record */
    uint64_t sent_ms;
    uint64_t cert_index;
    uint32_t log_id;
    int state;             /* FL_*, under fl_mu */
};

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    struct node *n = closure;
    if (atomic_exchange(&n->st->connected, 0) == 1 && !g_stop) {
        atomic_fetch_add(&n->st->disconnects, 1);
        log_warn("NATS: disconnected; reconnecting");
    }
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    struct node *n = closure;
    atomic_store(&n->st->connected, 1);
    log_info("NATS: reconnected");
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    (void)closure;
    log_warn("NATS: %s", natsStatus_GetText(err));
}

/* One acknowledgement (or error) from JetStream, on a client thread: marks
 * the record in flight; the publisher's loop acts on it in its next round. */
static void ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    struct node *n = closure;
    if (pa) {
        atomic_fetch_add(pa->Duplicate ? &n->st->duplicates : &n->st->published, 1);
        /* A duplicate's acknowledgement carries the sequence the stream
         * stored the message at first: after a failover whose first
         * acknowledgements were lost, it is how the last sequence is known. */
        uint64_t prev = atomic_load(&n->last_seq);
        while (pa->Sequence > prev && !atomic_compare_exchange_weak(&n->last_seq, &prev, pa->Sequence)) {
        }
    } else if (pae) {
        log_warn("NATS: publish failed: %s%s%s", natsStatus_GetText(pae->Err),
                 pae->ErrText ? ": " : "", pae->ErrText ? pae->ErrText : "");
    }
    if (pthread_mutex_lock(&n->fl_mu) == 0) {
        /* Acknowledgements come in publish order: the search starts at the
         * first record not yet resolved, so it is one step (not a walk over
         * everything still waiting to be popped). */
        if (n->fl_ack_next < n->fl_head)
            n->fl_ack_next = n->fl_head;
        for (uint64_t u = n->fl_ack_next; u != n->fl_tail; u++) {
            struct inflight *e = &n->fl[u % n->fl_cap];
            if (e->msg == msg && e->state == FL_PENDING) {
                e->state = pa ? FL_ACKED : FL_FAILED;
                while (n->fl_ack_next != n->fl_tail && n->fl[n->fl_ack_next % n->fl_cap].state != FL_PENDING)
                    n->fl_ack_next++;
                break;
            }
        }
        pthread_mutex_unlock(&n->fl_mu);
    }
    natsMsg_Destroy(msg);   /* ours since libnats 3 (nats.h, jsPubAckHandler) */
}

static void connect_close(struct node *n)
{
    if (n->js)
        jsCtx_Destroy(n->js);
    n->js = NULL;
    if (n->nc) {
        natsConnection_Close(n->nc);
        natsConnection_Destroy(n->nc);
    }
    n->nc = NULL;
    atomic_store(&n->st->connected, 0);
}

/* Connects (retrying until stopped) and makes the JetStream context. */
static int connect_nats(struct node *n, bool publisher)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    /* nats.url: one server or several joined by commas */
    char urls[4096];
    const char *list[64];
    int nurl = 0;
    snprintf(urls, sizeof urls, "%s", n->cfg->nats.url);
    for (char *save = NULL, *u = strtok_r(urls, ",", &save); u && nurl < 64; u = strtok_r(NULL, ",", &save))
        list[nurl++] = u;
    if (s == NATS_OK) s = natsOptions_SetServers(o, list, nurl);
    if (s == NATS_OK) s = natsOptions_SetName(o, publisher ? "certstream-server ingest" : "certstream-server edge");
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 250);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK) s = natsOptions_SetPingInterval(o, 2000);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(o, on_disconnected, n);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(o, on_reconnected, n);
    if (s == NATS_OK) s = natsOptions_SetErrorHandler(o, on_async_error, n);
    /* The publisher keeps no reconnect buffer: what it publishes while the
     * connection is down fails at once instead of being sent after the
     * reconnect, ahead of the records lost with the old connection (those are
     * sent again from the acknowledged position first: see reconnected()).
     * 0 would mean libnats's default (8 MB). */
    if (s == NATS_OK && publisher) s = natsOptions_SetReconnectBufSize(o, 1);
    if (s == NATS_OK && n->cfg->nats.creds_file[0])
        s = natsOptions_SetUserCredentialsFromFiles(o, n->cfg->nats.creds_file, NULL);
    if (s != NATS_OK) {
        log_error("NATS options: %s (%s)", natsStatus_GetText(s), nats_GetLastError(NULL));
        natsOptions_Destroy(o);
        return -1;
    }
    unsigned tries = 0;
    while (!g_stop) {
        proctable_beat();
        s = natsConnection_Connect(&n->nc, o);
        if (s == NATS_OK)
            break;
        if (tries++ % 20 == 0)
            log_warn("NATS %s: %s; retrying", n->cfg->nats.url, natsStatus_GetText(s));
        sleep_ms(CONNECT_RETRY_MS);
    }
    natsOptions_Destroy(o);
    if (g_stop)
        return -1;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;   /* JetStream API calls; the loops beat the watchdog between them */
    if (publisher) {
        /* the publisher keeps at most nats.max_pending in flight itself; the
         * slack covers acknowledgements whose handler is still returning */
        jo.PublishAsync.MaxPending = (int64_t)n->cfg->nats.max_pending + 64;
        jo.PublishAsync.AckHandler = ack_handler;
        jo.PublishAsync.AckHandlerClosure = n;
    }
    s = natsConnection_JetStream(&n->js, n->nc, &jo);
    if (s != NATS_OK) {
        log_error("NATS JetStream context: %s", natsStatus_GetText(s));
        connect_close(n);
        return -1;
    }
    atomic_store(&n->st->connected, 1);
    log_info("NATS: connected to %s", n->cfg->nats.url);
    return 0;
}

/* The stream exists, or is created from the nats.* keys. Either role may
 * create it, so an edge started first does not miss the first entries.
 * 0, or -1 (NATS not reachable yet: the caller retries). */
static int ensure_stream(struct node *n)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, n->js, n->cfg->nats.stream, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        log_warn("NATS stream %s: %s (%d)", n->cfg->nats.stream, natsStatus_GetText(s), (int)jerr);
        return -1;
    }
    uint64_t age = 0, window = 0;
    config_duration_secs(n->cfg->nats.max_age, &age);
    config_duration_secs(n->cfg->nats.duplicate_window, &window);
    char subjects[260];
    snprintf(subjects, sizeof subjects, "%s.>", n->cfg->nats.subject_prefix);
    const char *subj[] = {subjects};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = n->cfg->nats.stream;
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    sc.Retention = js_LimitsPolicy;
    sc.Storage = js_FileStorage;
    sc.MaxAge = (int64_t)age * 1000000000LL;
    sc.Duplicates = (int64_t)window * 1000000000LL;
    sc.Replicas = n->cfg->nats.replicas;
    sc.Discard = js_DiscardOld;
    s = js_AddStream(&si, n->js, &sc, NULL, &jerr);
    if (s != NATS_OK) {
        /* another node may have created it meanwhile */
        if (js_GetStreamInfo(&si, n->js, n->cfg->nats.stream, NULL, NULL) == NATS_OK) {
            jsStreamInfo_Destroy(si);
            return 0;
        }
        log_warn("NATS: creating stream %s: %s (%d)", n->cfg->nats.stream, natsStatus_GetText(s), (int)jerr);
        return -1;
    }
    log_info("NATS: created stream %s (subjects %s, max age %s, duplicate window %s, %u replica(s))",
             sc.Name, subjects, n->cfg->nats.max_age, n->cfg->nats.duplicate_window, n->cfg->nats.replicas);
    jsStreamInfo_Destroy(si);
    return 0;
}

static bool connected(struct node *n)
{
    return n->nc && natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED;
}

/* Publisher: whether the connection was made again (to the same server or,
 * in a cluster, another) since the last call. libnats counts a reconnect
 * before the connection is usable, so a publisher that sees it connected sees
 * the count too. */
static bool reconnected(struct node *n)
{
    uint64_t count = 0;
    if (!n->nstats && natsStatistics_Create(&n->nstats) != NATS_OK)
        return false;
    if (natsConnection_GetStats(n->nc, n->nstats) != NATS_OK ||
        natsStatistics_GetCounts(n->nstats, NULL, NULL, NULL, NULL, &count) != NATS_OK)
        return false;
    bool again = count != n->reconnects_seen;
    n->reconnects_seen = count;
    return again;
}

/* -------------------------------------------------------------- publisher */

/* Builds the JetStream message of one ring record. 0, 1 (not a message:
 * skip it), -1 (out of memory). */
static int record_msg(struct node *n, const struct ring_record *rec, uint8_t **buf, size_t *cap,
                      natsMsg **out, char id[WIRE_MSG_ID_LEN + 1])
{
    struct wire_entry e = {.cert_index = rec->cert_index, .commit_ns = rec->commit_ns};
    for (int f = 0; f < RING_NFORMATS; f++) {
        size_t want = rec->json[f].len;
        if (rec->segs[f].len && want > n->json_cap[f] && want <= ring_size(n->p->ring) / 4) {
            char *nj = realloc(n->json[f], want);
            if (!nj)
                return -1;
            n->json[f] = nj;
            n->json_cap[f] = want;
        }
        e.json[f] = ring_record_json(n->p->ring, rec, (enum ring_format)f, n->json[f], n->json_cap[f], &e.len[f]);
        if (!e.json[f]) {   /* being overwritten: the caller's lap check drops it */
            e.json[f] = "";
            e.len[f] = 0;
        }
    }
    if (wire_msg_id(e.json[RING_FULL], e.len[RING_FULL], id) != 0)
        return 1;
    size_t need = wire_size(&e);
    if (need > *cap) {
        uint8_t *nb = realloc(*buf, need);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = need;
    }
    size_t len = wire_encode(&e, *buf);
    return natsMsg_Create(out, n->subject, NULL, (const char *)*buf, (int)len) == NATS_OK ? 0 : -1;
}

/* Forgets everything in flight (it is sent again from the acknowledged
 * position): what the client still holds is dropped, and records whose
 * acknowledgement comes later are no longer looked for. */
static void drop_inflight(struct node *n)
{
    natsMsgList pending;
    if (js_PublishAsyncGetPendingList(&pending, n->js) == NATS_OK)
        natsMsgList_Destroy(&pending);
    if (pthread_mutex_lock(&n->fl_mu) == 0) {
        n->fl_head = n->fl_tail = n->fl_ack_next = 0;
        pthread_mutex_unlock(&n->fl_mu);
    }
}

static void publisher_lag(struct node *n, const struct ring *r, uint64_t acked)
{
    uint64_t lag = 0, oldest_ns = 0;
    const struct ring_record *rec;
    uint64_t pos = acked;
    for (unsigned i = 0; i < 100000 && ring_peek(r, pos, &rec) == RING_OK; i++) {
        if (rec->kind == RING_KIND_MESSAGE) {
            if (!oldest_ns)
                oldest_ns = rec->commit_ns;
            lag++;
        }
        pos = ring_next(rec);
    }
    atomic_store(&n->st->lag_msgs, lag);
    uint64_t now = wall_ns();
    atomic_store(&n->st->lag_ms, oldest_ns && now > oldest_ns ? (now - oldest_ns) / 1000000u : 0);
}

/* Pops the resolved records at the head of the flight: the acknowledged
 * position moves past each acknowledged one (and the log's acknowledged CT
 * position with it). Returns true when the head failed or timed out: then
 * everything from the acknowledged position is sent again. */
static bool collect_acks(struct node *n, uint64_t *acked, uint64_t sent_to, uint64_t now)
{
    bool failed = false;
    if (pthread_mutex_lock(&n->fl_mu) != 0)
        return true;
    while (n->fl_head != n->fl_tail) {
        struct inflight *e = &n->fl[n->fl_head % n->fl_cap];
        if (e->state == FL_ACKED) {
            *acked = e->end;
            ackstore_note(n->p->stats, e->log_id, e->cert_index + 1);
            n->fl_head++;
            continue;
        }
        failed = e->state == FL_FAILED || now - e->sent_ms > PUB_ACK_WAIT_MS;
        break;
    }
    /* nothing in flight: the records after the last acknowledged one were
     * not sent at all (not messages, no certificate hash) */
    if (n->fl_head == n->fl_tail && !failed)
        *acked = sent_to;
    pthread_mutex_unlock(&n->fl_mu);
    return failed;
}

/* The publisher: records are sent as they come, up to nats.max_pending
 * unacknowledged, and acknowledged in bulk: the loop never waits for one
 * acknowledgement (measured in docs/benchmarks.md, NATS scale-out). */
static int run_publisher(struct node *n)
{
    struct ring *r = n->p->ring;
    uint64_t acked = atomic_load(&n->st->ring_acked);
    uint64_t send = acked;   /* next record to send */
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t next_info = 0;
    bool stream_ok = false;
    n->fl_cap = n->cfg->nats.max_pending;
    n->fl = calloc(n->fl_cap, sizeof *n->fl);
    if (!n->fl) {
        log_error("NATS publisher: out of memory");
        return 1;
    }
    log_info("NATS publisher: from ring position %" PRIu64 " to %s.entries", acked, n->cfg->nats.subject_prefix);
    while (!g_stop) {
        proctable_beat(); /* the supervisor's watchdog (shm/proctable.h) */
        uint64_t now = mono_ms();
        if (now >= next_info) {
            publisher_lag(n, r, acked);
            next_info = now + INFO_PERIOD_MS;
            /* Everything in the ring acknowledged: each log's ingest position
             * is (the positions are read first: an entry before them is in
             * the ring by then, so a tail still at `acked` proves it is
             * acknowledged). Covers logs whose last entries were duplicates
             * or skipped, which no acknowledgement reports. */
            if (n->fl_head == n->fl_tail && send == acked) {
                ackstore_caught_up_read(n->p->stats);
                if (ring_tail(r) == acked)
                    ackstore_caught_up_commit(n->p->stats);
            }
            ackstore_sync();
        }
        if (!connected(n)) {
            sleep_ms(100);
            continue;
        }
        if (!stream_ok && !(stream_ok = ensure_stream(n) == 0)) {
            sleep_ms(500);
            continue;
        }
        uint64_t before = acked;
        if (collect_acks(n, &acked, send, now)) {
            /* Not acknowledged: send again from the acknowledged position.
             * What JetStream did store comes back as a duplicate (same
             * message id), so nothing is stored twice and nothing skipped. */
            atomic_fetch_add(&n->st->publish_errors, 1);
            log_warn("NATS publisher: a record was not acknowledged; sending again from ring position %" PRIu64,
                     acked);
            drop_inflight(n);
            send = acked;
            stream_ok = false;
            sleep_ms(200);
            continue;
        }
        if (acked != before) {
            atomic_store_explicit(&n->st->ring_acked, acked, memory_order_release);
            atomic_store(&n->st->stream_seq, atomic_load(&n->last_seq));
        }
        if (reconnected(n) && (n->fl_head != n->fl_tail || send != acked)) {
            /* What was in flight on the old connection may be lost, and
             * JetStream stores in the order it receives: sending on from
             * `send` would store the later records ahead of the lost ones
             * (sent again only when their wait ran out). So everything from
             * the acknowledged position goes again, in ring order; what the
             * stream did store comes back as a duplicate. */
            log_info("NATS publisher: reconnected; sending again from ring position %" PRIu64, acked);
            drop_inflight(n);
            send = acked;
        }
        /* send what the ring has, up to the window */
        unsigned sent = 0;
        bool lapped = false;
        while (n->fl_tail - n->fl_head < n->fl_cap && sent < PUB_BURST) {
            const struct ring_record *rec;
            enum ring_status rs = ring_peek(r, send, &rec);
            if (rs == RING_EMPTY || rs == RING_ERROR)
                break;
            if (rs == RING_LAPPED) {
                lapped = true;
                break;
            }
            uint64_t next = ring_next(rec);
            if (rec->kind != RING_KIND_MESSAGE) {
                send = next;
                continue;
            }
            natsMsg *m = NULL;
            char id[WIRE_MSG_ID_LEN + 1];
            uint64_t cert_index = rec->cert_index;
            uint32_t log_id = rec->log_id;
            int rc = record_msg(n, rec, &buf, &cap, &m, id);
            if (ring_lapped_since(r, send)) {
                natsMsg_Destroy(m);
                lapped = true;
                break;
            }
            if (rc < 0) {
                log_error("NATS publisher: out of memory");
                natsMsg_Destroy(m);
                break;
            }
            if (rc == 1) {
                /* no certificate hash: not a certstream entry, nothing to publish */
                atomic_fetch_add(&n->st->bad_messages, 1);
                log_warn("NATS publisher: ring record at %" PRIu64 " has no leaf sha256; not published", send);
                send = next;
                continue;
            }
            /* in the flight before it is sent: its acknowledgement may come
             * back before js_PublishMsgAsync returns */
            struct inflight *e = NULL;
            if (pthread_mutex_lock(&n->fl_mu) == 0) {
                e = &n->fl[n->fl_tail % n->fl_cap];
                *e = (struct inflight){.msg = m, .end = next, .sent_ms = now, .cert_index = cert_index,
                                       .log_id = log_id, .state = FL_PENDING};
                n->fl_tail++;
                pthread_mutex_unlock(&n->fl_mu);
            }
            jsPubOptions po;
            jsPubOptions_Init(&po);
            po.MsgId = id;
            natsMsg *sent_msg = m;
            natsStatus s = e ? js_PublishMsgAsync(n->js, &m, &po) : NATS_NO_MEMORY;
            if (s != NATS_OK) {
                /* not taken by the client: still ours; the head check sends it again */
                if (e && pthread_mutex_lock(&n->fl_mu) == 0) {
                    if (e->msg == sent_msg && e->state == FL_PENDING)
                        e->state = FL_FAILED;
                    pthread_mutex_unlock(&n->fl_mu);
                }
                natsMsg_Destroy(m);
                break;
            }
            send = next;
            sent++;
        }
        if (lapped) {
            /* Only if the gate was bypassed (a producer without the check):
             * say so loudly and go on from what the ring still holds. */
            uint64_t oldest = ring_oldest_position(r);
            log_error("NATS publisher: the ring overwrote records not yet published (position %" PRIu64
                      " < %" PRIu64 "); they are lost to the stream", send, oldest);
            atomic_fetch_add(&n->st->missed, 1);
            drop_inflight(n);
            acked = send = oldest;
            atomic_store_explicit(&n->st->ring_acked, acked, memory_order_release);
            continue;
        }
        if (sent)
            continue;
        /* Idle: wait for the producers (acknowledgements in flight are
         * looked at again within PUB_LINGER_MS). Woken by a new record, give
         * the others arriving after it PUB_LINGER_MS to join one burst: at
         * the real CT rate that turns a wakeup of this loop, of the client's
         * flusher and of its reader (the acknowledgements) per entry into one
         * per few entries, for up to 2 x PUB_LINGER_MS of added latency. */
        if (wait_ring(n->fl_head != n->fl_tail ? PUB_LINGER_MS : 100))
            sleep_ms(PUB_LINGER_MS);
    }
    /* stopping: what is in flight gets a second to be acknowledged */
    if (connected(n) && n->fl_head != n->fl_tail) {
        jsPubOptions wait;
        jsPubOptions_Init(&wait);
        wait.MaxWait = 1000;
        js_PublishAsyncComplete(n->js, &wait);
    }
    if (!collect_acks(n, &acked, send, mono_ms()))
        atomic_store_explicit(&n->st->ring_acked, acked, memory_order_release);
    ackstore_sync();
    free(buf);
    return 0;
}

/* --------------------------------------------------------------- consumer */

struct consumer {
    struct node *n;
    struct position *pos_file;
    uint64_t pos;                /* resume point: last stream sequence consumed (position file) */
    uint64_t ring_last;          /* last stream sequence in this server's ring */
    uint64_t fill_to;            /* the ring is filled up to here: then ready */
    uint64_t fill_deadline_ms;   /* ready by then whatever came (entries gone from the stream) */
    natsSubscription *sub;
    uint64_t last_msg_ms;
    uint64_t stream_last;        /* from the latest stream info */
    int64_t last_ts_ns;          /* publish time of the last message consumed */
};

static void unsubscribe(struct consumer *c)
{
    if (c->sub) {
        natsSubscription_Unsubscribe(c->sub);
        natsSubscription_Destroy(c->sub);
    }
    c->sub = NULL;
}

static int subscribe(struct consumer *c)
{
    struct node *n = c->n;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = n->cfg->nats.stream;
    so.Ordered = true;
    jsErrCode jerr = 0;
    if (c->pos == 0) {
        /* no position yet: this edge serves from the stream's next entry */
        jsStreamInfo *si = NULL;
        if (js_GetStreamInfo(&si, n->js, n->cfg->nats.stream, NULL, &jerr) != NATS_OK)
            return -1;
        c->pos = si->State.LastSeq;
        jsStreamInfo_Destroy(si);
        natspos_store(c->pos_file, c->pos);
        log_info("NATS consumer: no position yet; starting with the next new entry of %s (after %" PRIu64 ")",
                 n->cfg->nats.stream, c->pos);
    }
    /* A fresh ring is first filled with the history (config_history_messages)
     * up to the position, so that a client resuming (Last-Event-ID, ?resume=)
     * that many entries back finds its id here, as on an edge that never
     * stopped; those are not counted as consumed. */
    uint64_t fill = config_history_messages(n->cfg);
    uint64_t start = c->pos + 1 > fill ? c->pos + 1 - fill : 1;
    if (start <= c->ring_last)
        start = c->ring_last + 1;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = start;
    c->fill_to = c->pos;
    c->fill_deadline_ms = mono_ms() + 10000;
    natsStatus s = js_SubscribeSync(&c->sub, n->js, n->subject, NULL, &so, &jerr);
    if (s != NATS_OK) {
        log_warn("NATS: subscribing to %s: %s (%d)", n->subject, natsStatus_GetText(s), (int)jerr);
        c->sub = NULL;
        return -1;
    }
    /* no client-side limit short of the ring's: the consumer keeps up or the
     * server's flow control holds it */
    if (natsSubscription_SetPendingLimits(c->sub, 1 << 20, 1 << 30) != NATS_OK)
        log_warn("NATS: cannot raise the subscription's pending limits; using the defaults");
    c->last_msg_ms = mono_ms();
    log_info("NATS consumer: resuming %s after stream sequence %" PRIu64 " (ring from %" PRIu64 ")",
             n->cfg->nats.stream, c->pos, start);
    return 0;
}

/* Stream clients are admitted once the ring holds what a fresh one should
 * (see subscribe), or when the stream cannot give more of it. */
static void consumer_check_ready(struct consumer *c)
{
    struct stats_nats *st = c->n->st;
    if (atomic_load_explicit(&st->ready, memory_order_relaxed))
        return;
    if (c->ring_last >= c->fill_to || (c->stream_last && c->stream_last <= c->ring_last) ||
        mono_ms() >= c->fill_deadline_ms) {
        atomic_store_explicit(&st->ready, 1, memory_order_release);
        log_info("NATS consumer: ring filled up to stream sequence %" PRIu64 "; serving clients", c->ring_last);
    }
}

/* The stream's state: lag, retention loss, and the edge's health row. */
static void consumer_info(struct consumer *c)
{
    struct node *n = c->n;
    struct stats_log *row = stats_log(n->p->stats, 0);
    jsStreamInfo *si = NULL;
    bool ok = connected(n) && js_GetStreamInfo(&si, n->js, n->cfg->nats.stream, NULL, NULL) == NATS_OK;
    uint64_t now_ms = wall_ms();
    if (ok) {
        c->stream_last = si->State.LastSeq;
        jsStreamInfo_Destroy(si);
        __atomic_store_n(&row->last_success_ms, now_ms, __ATOMIC_RELAXED);
    }
    uint64_t lag = c->stream_last > c->pos ? c->stream_last - c->pos : 0;
    uint64_t lag_ms = 0;
    if (lag && c->last_ts_ns > 0) {
        uint64_t now = wall_ns();
        lag_ms = now > (uint64_t)c->last_ts_ns ? (now - (uint64_t)c->last_ts_ns) / 1000000u : 0;
    }
    atomic_store(&n->st->lag_msgs, lag);
    atomic_store(&n->st->lag_ms, lag_ms);
    __atomic_store_n(&row->tree_size, c->stream_last > c->pos ? c->stream_last : c->pos, __ATOMIC_RELAXED);
    __atomic_store_n(&row->next_index, c->pos, __ATOMIC_RELAXED);
    uint32_t h = !ok ? LOG_DEGRADED
               : lag_ms > (uint64_t)n->cfg->nats.max_lag_secs * 1000u ? LOG_DEGRADED : LOG_HEALTHY;
    __atomic_store_n(&row->health, h, __ATOMIC_RELAXED);
    if (natspos_sync(c->pos_file) != 0)
        log_warn("NATS position file: msync: %s", strerror(errno));
    if (c->sub)
        consumer_check_ready(c);
}

/* One message from the stream into the ring. */
static void consume(struct consumer *c, natsMsg *m, unsigned *unnotified)
{
    struct node *n = c->n;
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
        atomic_fetch_add(&n->st->bad_messages, 1);
        return;
    }
    uint64_t seq = meta->Sequence.Stream;
    if (meta->NumDelivered > 1)
        atomic_fetch_add(&n->st->redeliveries, 1);
    c->last_ts_ns = meta->Timestamp;
    jsMsgMetaData_Destroy(meta);
    if (seq <= c->ring_last) {
        atomic_fetch_add(&n->st->redeliveries, 1);
        return; /* already in the ring */
    }
    bool fill = seq <= c->pos;   /* before the resume point: filling a fresh ring */
    if (!fill && seq > c->pos + 1) {
        uint64_t gone = seq - c->pos - 1;
        atomic_fetch_add(&n->st->missed, gone);
        log_error("NATS consumer: stream sequences %" PRIu64 "..%" PRIu64 " (%" PRIu64
                  " entries) are no longer in %s (retention, nats.max_age): this edge fell behind; "
                  "continuing at %" PRIu64, c->pos + 1, seq - 1, gone, n->cfg->nats.stream, seq);
    }
    struct wire_entry e;
    const char *why = "";
    if (wire_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &e, &why) != 0) {
        atomic_fetch_add(&n->st->bad_messages, 1);
        log_warn("NATS consumer: stream sequence %" PRIu64 " skipped: %s", seq, why);
    } else {
        /* SSE ids are stream sequences: the same on every edge */
        struct ring_message rm = {.cert_index = e.cert_index, .log_id = 0, .sse_id = seq};
        for (int f = 0; f < RING_NFORMATS; f++) {
            rm.json[f] = e.json[f];
            rm.json_len[f] = e.len[f];
            rm.bench_stamp_off[f] = -1;
        }
        atomic_store(&n->st->ring_pending_pos, ring_tail(n->p->ring));
        atomic_store(&n->st->ring_pending_seq, seq);
        if (ring_publish(n->p->ring, n->p->producer_id, &rm) == 0) {
            atomic_fetch_add(&n->st->bad_messages, 1);
            log_warn("NATS consumer: stream sequence %" PRIu64 " does not fit in the ring", seq);
        } else if (!fill) {
            stats_add(n->p->stats, n->p->stats_slot, ST_ENTRIES_PUBLISHED, 1);
            struct stats_log *row = stats_log(n->p->stats, 0);
            __atomic_fetch_add(&row->entries, 1, __ATOMIC_RELAXED);
            (*unnotified)++;
        }
    }
    c->ring_last = seq;
    atomic_store(&n->st->ring_seq, seq);
    if (fill) {
        atomic_fetch_add(&n->st->backfilled, 1);
        return;
    }
    /* After the ring commit: a crash of the server between the two repeats
     * this entry in a ring that no longer exists (the ring lives and dies
     * with the server), never skips one; a crash of this process alone is
     * covered by ring_seq / ring_pending_* (consumer_ring_last). */
    c->pos = seq;
    natspos_store(c->pos_file, seq);
    atomic_store(&n->st->stream_seq, seq);
    atomic_fetch_add(&n->st->consumed, 1);
}

/* The last stream sequence already in this server's ring: 0 for a fresh
 * server; after a restart of this process alone, what the previous one put
 * there, including a record committed just before it died. */
static uint64_t consumer_ring_last(struct node *n)
{
    uint64_t last = atomic_load(&n->st->ring_seq);
    uint64_t pend = atomic_load(&n->st->ring_pending_seq), pos = atomic_load(&n->st->ring_pending_pos);
    const struct ring_record *rec;
    if (pend > last && ring_peek(n->p->ring, pos, &rec) == RING_OK && rec->kind == RING_KIND_MESSAGE &&
        ring_record_sse_id(rec) == pend)
        last = pend;
    return last;
}

static int run_consumer(struct node *n)
{
    struct consumer c = {.n = n};
    char err[512];
    c.pos_file = natspos_open(n->cfg->nats.position_file, &c.pos, err, sizeof err);
    if (!c.pos_file) {
        log_error("nats.position_file: %s", err);
        return 1;
    }
    atomic_store(&n->st->stream_seq, c.pos);
    atomic_store(&n->st->ready, 0);
    c.ring_last = consumer_ring_last(n);
    atomic_store(&n->st->ring_seq, c.ring_last);
    if (c.ring_last > c.pos) {   /* committed to the ring, position not yet stored */
        c.pos = c.ring_last;
        natspos_store(c.pos_file, c.pos);
    }
    /* the edge's one "log": the stream */
    struct stats_log *row = stats_log(n->p->stats, 0);
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "NATS stream %s", n->cfg->nats.stream);
    snprintf(row->url, sizeof row->url, "%s", n->cfg->nats.url);
    row->next_index = c.pos;
    stats_set_log_count(n->p->stats, 1);

    uint64_t next_info = 0;
    unsigned unnotified = 0;
    bool stream_ok = false;
    while (!g_stop) {
        proctable_beat(); /* the supervisor's watchdog (shm/proctable.h) */
        uint64_t now = mono_ms();
        if (now >= next_info) {
            consumer_info(&c);
            next_info = now + INFO_PERIOD_MS;
            /* the stream has more and nothing came for a while (a NATS
             * restart the ordered consumer did not survive): start over
             * from our own position */
            if (c.sub && c.stream_last > c.pos && now - c.last_msg_ms > STALL_RESUBSCRIBE_MS) {
                log_warn("NATS consumer: no message for %u s while the stream is at %" PRIu64
                         " and we are at %" PRIu64 "; subscribing again",
                         STALL_RESUBSCRIBE_MS / 1000, c.stream_last, c.pos);
                unsubscribe(&c);
            }
        }
        if (!c.sub) {
            if (!connected(n)) {
                sleep_ms(100);
                continue;
            }
            if ((!stream_ok && !(stream_ok = ensure_stream(n) == 0)) || subscribe(&c) != 0) {
                stream_ok = false;
                sleep_ms(500);
                continue;
            }
            consumer_check_ready(&c);
        }
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, c.sub, 50);
        if (s == NATS_OK) {
            c.last_msg_ms = mono_ms();
            consume(&c, m, &unnotified);
            natsMsg_Destroy(m);
            if (c.ring_last >= c.fill_to && !atomic_load_explicit(&n->st->ready, memory_order_relaxed)) {
                ring_notify(n->p->ring);
                unnotified = 0;
                consumer_check_ready(&c);
            }
            if (unnotified >= NOTIFY_EVERY) {
                ring_notify(n->p->ring);
                unnotified = 0;
            }
            /* keep draining what is queued before waking the workers */
            int pm = 0;
            if (unnotified && (natsSubscription_GetPending(c.sub, &pm, NULL) != NATS_OK || pm == 0)) {
                ring_notify(n->p->ring);
                unnotified = 0;
            }
            continue;
        }
        if (unnotified) {
            ring_notify(n->p->ring);
            unnotified = 0;
        }
        if (s == NATS_TIMEOUT)
            continue;
        if (s == NATS_SLOW_CONSUMER || s == NATS_MISSED_HEARTBEAT || s == NATS_MISMATCH) {
            log_warn("NATS consumer: %s; subscribing again after %" PRIu64, natsStatus_GetText(s), c.pos);
        } else {
            log_warn("NATS consumer: %s; subscribing again", natsStatus_GetText(s));
            sleep_ms(200);
        }
        unsubscribe(&c);
    }
    unsubscribe(&c);
    natspos_close(c.pos_file);
    return 0;
}

/* ------------------------------------------------------------------ main */

int natsnode_run(const struct natsnode_params *p)
{
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        log_error("sigaction: %s", strerror(errno));
        return 1;
    }
    struct node n = {.p = p, .cfg = p->cfg, .st = stats_nats(p->stats)};
    if (pthread_mutex_init(&n.fl_mu, NULL) != 0) {
        log_error("pthread_mutex_init failed");
        return 1;
    }
    bool publisher = p->cfg->nats.publish;
    snprintf(n.subject, sizeof n.subject, "%s.entries", p->cfg->nats.subject_prefix);
    if (nats_Open(-1) != NATS_OK) {
        log_error("NATS library: %s", nats_GetLastError(NULL));
        return 1;
    }
    int rc = 0;
    if (connect_nats(&n, publisher) == 0)
        rc = publisher ? run_publisher(&n) : run_consumer(&n);
    if (publisher && n.js && connected(&n)) {
        jsPubOptions wait;
        jsPubOptions_Init(&wait);
        wait.MaxWait = 1000;
        js_PublishAsyncComplete(n.js, &wait);
    }
    connect_close(&n);   /* no acknowledgement handler runs after this */
    natsStatistics_Destroy(n.nstats);
    nats_Close();
    for (int f = 0; f < RING_NFORMATS; f++)
        free(n.json[f]);
    free(n.fl);
    pthread_mutex_destroy(&n.fl_mu);
    return rc;
}
