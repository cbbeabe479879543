/* ingest.c - the ingest process: a libevent loop driving libcurl's
 * multi-socket API, one state machine per CT log (RFC 6962 or static-ct-api),
 * publishing rendered entries into the ring. See ingest.h and docs/ingest.md.
 *
 * Shape of the code:
 *   curl glue      sock_cb / timer_cb / check_done: the standard
 *                  multi-socket-on-libevent wiring.
 *   operators      every request goes through its operator's queue, which
 *                  spaces requests by operator_rate_limit_ms and pauses for
 *                  a 429's Retry-After.
 *   logs           pump() is the whole state machine of one log: called after
 *                  every completion and on the log's timer, it decides what to
 *                  request next and applies finished work in index order. */
#include "ingest/ingest.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <event2/event.h>
#include <mbedtls/sha256.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sanitize.h"
#include "ingest/ctapi.h"
#include "ingest/ctentry.h"
#include "ingest/pipeline.h"
#include "ingest/tileproof.h"
#include "shm/proctable.h"

#define MAX_WINDOWS 32
#define ENTRY_BYTES_MAX (64u << 10)  /* per entry, for the automatic max_response_bytes: the
                                        * largest entry of the test corpus is 7.9 KB of JSON */
#define BODY_KEEP (2u << 20)         /* a body buffer larger than this is freed after use (a
                                        * normal answer of 256 entries, ~1.3 MB, fits) */
#define TRIM_DELAY_MS 1000u          /* malloc_trim at most once a second, after frees */
#define ISSUER_CACHE_MAX 4096
#define TILE_WIDTH 256u

enum req_kind { REQ_STH, REQ_ENTRIES, REQ_CHECKPOINT, REQ_TILE, REQ_ISSUER, REQ_HASH_TILE };
#define HASH_TILE_CACHE 16
enum req_state { RS_IDLE, RS_QUEUED, RS_INFLIGHT, RS_DONE };

struct ingest;
struct ilog;
struct op;

/* One HTTP request slot. Slots are fixed per log (STH/checkpoint, each
 * window, the tile, the issuer) and keep their easy handle for the life of
 * the process; the body buffer is kept only while the log is catching up
 * (see body_release). */
struct req {
    struct ilog *log;
    enum req_kind kind;
    enum req_state state;
    CURL *easy;
    char url[1024];
    char *body;
    size_t len, cap;
    bool too_big;                     /* over max_response_bytes */
    bool over_budget;                 /* over max_inflight_bytes */
    CURLcode cc;
    long status;
    long retry_after_s;               /* -1 = none */
    char errbuf[CURL_ERROR_SIZE];
    struct req *qnext;                /* operator queue */
};

struct window {                       /* get-entries [start, end], inclusive */
    uint64_t start, end;
    unsigned undecodable_tries;       /* fetches of this window that held undecodable entries */
    struct req r;
};

struct op {
    char *name;
    uint64_t next_us;                 /* earliest time for the next request (monotonic) */
    uint64_t gap_us;                  /* operator_pacing or ct_log.operator_rate_limit_ms */
    struct req *qhead, *qtail;
    struct event *timer;
    struct ingest *in;
};

struct ilog {
    struct ingest *in;
    const struct loglist_log *cfg;
    struct op *op;
    struct stats_log *sl;
    struct position_row *pos;         /* crash-proof position (NULL: none) */
    const char *base;                 /* where requests go (fetch_url or url) */
    bool have_pos, have_size;
    uint64_t tree_size;               /* latest STH / checkpoint size */
    uint64_t next_index;              /* next entry to publish */
    uint64_t fetch_next;              /* RFC 6962: next index not yet requested */
    uint64_t next_poll_ms;
    uint64_t retry_at_ms;             /* backoff: no request before this */
    uint32_t failures;                /* consecutive */
    bool ahead;                       /* saved position beyond the tree size (position_ahead: wait) */
    bool resume_pending;              /* the entry at resume_index not yet handled */
    uint64_t resume_index;            /* where this process resumed a saved position */
    uint64_t resume_tag;              /* the position store's pending leaf tag there */
    bool resume_in_ring;              /* ... and the ring already holds that entry */
    struct event *timer;
    /* per-log settings (log_overrides; else the ct_log.* keys) */
    unsigned windows;                 /* fetch_concurrency, 1..MAX_WINDOWS */
    unsigned batch;                   /* batch_size */
    uint64_t poll_ms;                 /* poll_interval_ms */
    struct req head;                  /* get-sth / checkpoint */
    /* RFC 6962 windows, a FIFO in index order */
    struct window win[MAX_WINDOWS];
    unsigned win_head, n_win;
    /* static-ct-api */
    struct req tile;
    uint64_t tile_n;                  /* index of the tile in tile.body */
    unsigned tile_width;              /* entries wanted from it */
    bool tile_ready;                  /* body holds the tile, issuers pending */
    bool tile_full_fallback;          /* partial 404: full tile asked instead */
    unsigned tile_attempts;
    char tile_path[96];
    struct req issuer;
    uint8_t issuer_fp[32];
    unsigned issuer_attempts;
    /* ct_log.verify_tiles: the checkpoint tiles are proven against */
    uint64_t cp_size;                 /* latest checkpoint */
    uint8_t cp_root[32];
    bool vhave;
    uint64_t vsize;                   /* the one in use for proofs */
    uint8_t vroot[32];
    struct req htile;                 /* hash tile being fetched */
    struct tileproof_need hneed;
    struct { unsigned level; uint64_t n; unsigned width; uint8_t *h; } hcache[HASH_TILE_CACHE];
    unsigned hcache_next;
};

struct issuer {
    uint8_t fp[32];
    uint8_t *der;                     /* NULL: the log could not serve it */
    size_t len;
};

struct ingest {
    const struct ingest_params *p;
    const struct config *cfg;
    struct event_base *base;
    CURLM *multi;
    struct event *curl_timer;
    struct event *sig_term, *sig_int;
    struct event *trim_timer;         /* pending malloc_trim after buffers were freed */
    struct ilog *logs;
    size_t n_logs;
    struct op *ops;
    size_t n_ops;
    struct issuer *issuers;
    size_t n_issuers;
    struct pipeline *pipe;
    unsigned windows;                 /* fetch_concurrency, 1..MAX_WINDOWS */
    unsigned batch;
    unsigned published_since_notify;
    unsigned rng;
    int journal_fd;                   /* tests: publish journal, -1 = none */
    long journal_server;              /* ... and the supervisor's pid at start */
    size_t max_body;                  /* ct_log.max_response_bytes (resolved) */
    size_t budget;                    /* ct_log.max_inflight_bytes */
    size_t held;                      /* bytes of answers held (received, not yet reset) */
    bool curl_due;                    /* curl asked for a 0 ms timeout: see curl_drive */
    struct event *beat_ev;            /* heartbeat when nothing else ran: see turn_end */
    uint64_t skip_log_window_ms;      /* rate limit of "entry skipped" lines */
    unsigned skip_logged, skip_suppressed;
};

static void pump(struct ilog *l);

/* ---- time ---- */

/* Arms ev to fire at at_ms on the monotonic clock, to the microsecond:
 * libevent counts a timeout from the time it cached when the loop turn began,
 * so that cache is refreshed first. Timers set for the same millisecond (the
 * polls of every log of a process, see next_poll) then end at the same
 * instant and run in one wakeup instead of one each, a few microseconds
 * apart. */
static void timer_at(struct event *ev, uint64_t at_ms)
{
    event_base_update_cache_time(event_get_base(ev));
    uint64_t now = mono_ns() / 1000u, at = at_ms * 1000u, d = at > now ? at - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(d / 1000000u), .tv_usec = (suseconds_t)(d % 1000000u)};
    evtimer_add(ev, &tv);
}

/* ---- shared per-log row (read by fanout for /health/deep) ---- */

static void sl_store(uint64_t *field, uint64_t v) { __atomic_store_n(field, v, __ATOMIC_RELAXED); }
static void sl_store32(uint32_t *field, uint32_t v) { __atomic_store_n(field, v, __ATOMIC_RELAXED); }

static void count(struct ingest *in, enum stat_id id, int64_t d)
{
    stats_add(in->p->stats, in->p->stats_slot, id, d);
}

/* Health from the failure streak: healthy after a success, degraded while
 * retrying, unhealthy after retry_max_attempts failures in a row (or when a
 * log was never reached and is failing). */
static void set_reason(struct ilog *l, const char *reason)
{
    if (strncmp(l->sl->reason, reason, sizeof l->sl->reason - 1) != 0)
        snprintf(l->sl->reason, sizeof l->sl->reason, "%s", reason);
}

static void set_health(struct ilog *l)
{
    uint32_t max = l->in->cfg->ct_log.retry_max_attempts ? l->in->cfg->ct_log.retry_max_attempts : 3;
    uint32_t h;
    if (l->failures == 0 && l->ahead) h = LOG_DEGRADED;   /* reason set by got_size */
    else if (l->failures == 0) h = LOG_HEALTHY;
    else if (l->failures >= max) h = LOG_UNHEALTHY;
    else h = LOG_DEGRADED;
    if (h == LOG_UNHEALTHY && l->sl->health != LOG_UNHEALTHY)
        log_warn("%s: unhealthy after %u failed requests", l->cfg->name, l->failures);
    sl_store32(&l->sl->health, h);
    sl_store32(&l->sl->consecutive_failures, l->failures);
}

static void on_success(struct ilog *l)
{
    if (l->failures >= 3) log_info("%s: reachable again", l->cfg->name);
    if (l->failures && !l->ahead) set_reason(l, "");
    l->failures = 0;
    l->retry_at_ms = 0;
    sl_store(&l->sl->last_success_ms, wall_ms());
    set_health(l);
}

/* The per-log failure counter a failed request goes to (docs/monitoring.md). */
static unsigned fail_reason(const struct req *r)
{
    if (!r) return STATS_FAIL_MALFORMED;
    if (r->too_big) return STATS_FAIL_TOO_LARGE;
    if (r->cc == CURLE_OPERATION_TIMEDOUT) return STATS_FAIL_TIMEOUT;
    if (r->cc != CURLE_OK) return STATS_FAIL_NETWORK;
    if (r->status == 429) return STATS_FAIL_RATE_LIMITED;
    if (r->status != 200) return STATS_FAIL_HTTP_STATUS;
    return STATS_FAIL_MALFORMED;
}

/* Exponential backoff with +-12% jitter; a Retry-After (seconds) wins when
 * longer and also pauses every log of the operator. */
static void on_failure(struct ilog *l, struct req *r, const char *what)
{
    const struct config *cfg = l->in->cfg;
    if (r && r->over_budget) {
        /* Our memory limit, not the log's fault: try again soon, health unchanged. */
        count(l->in, ST_INFLIGHT_BUDGET_HITS, 1);
        l->retry_at_ms = mono_ms() + 200;
        return;
    }
    if (r && r->too_big) count(l->in, ST_ANSWERS_TOO_LARGE, 1);
    uint64_t lo = cfg->ct_log.retry_initial_delay_ms ? cfg->ct_log.retry_initial_delay_ms : 1000;
    uint64_t hi = cfg->ct_log.retry_max_delay_ms ? cfg->ct_log.retry_max_delay_ms : 60000;
    uint64_t d = lo;
    if (hi < lo) hi = lo;
    l->failures++;
    for (uint32_t i = 1; i < l->failures && d < hi; i++) d *= 2;
    if (d > hi) d = hi;
    l->in->rng = l->in->rng * 1103515245u + 12345u;
    d = d - d / 8 + (uint64_t)((l->in->rng >> 8) % (d / 4 + 1));
    if (r && r->retry_after_s > 0) {
        uint64_t ra = (uint64_t)(r->retry_after_s > 3600 ? 3600 : r->retry_after_s) * 1000u;
        if (ra > d) d = ra;
        if (l->op->next_us < mono_ns() / 1000u + ra * 1000u) l->op->next_us = mono_ns() / 1000u + ra * 1000u;
    }
    l->retry_at_ms = mono_ms() + d;
    count(l->in, ST_CT_REQUEST_FAILURES, 1);
    stats_log_add(&l->sl->failures[fail_reason(r)], 1);
    if (r == &l->head && l->cfg->kind == LOGLIST_TILED) stats_log_add(&l->sl->checkpoint_errors, 1);
    if (l->failures <= 3 || l->failures % 20 == 0)
        log_warn("%s: %s failed (%s); retry %u in %llu ms", l->cfg->name,
                 r ? r->url : "request", what, l->failures, (unsigned long long)d);
    if (!l->ahead) set_reason(l, what);
    set_health(l);
}

/* ---- curl glue ---- */

static size_t body_write(char *data, size_t sz, size_t nm, void *ud)
{
    struct req *r = ud;
    struct ingest *in = r->log->in;
    size_t n = sz * nm;
    /* Checked while receiving (after gzip decoding), so a hostile or broken
     * log never makes us hold more than these limits. */
    if (r->len + n + 1 > in->max_body) {
        r->too_big = true;
        return 0;
    }
    if (in->held + n > in->budget) {
        r->over_budget = true;
        return 0;
    }
    in->held += n;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 65536;
        while (cap < r->len + n + 1) cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb) return 0;
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* The curl handle of a slot. Like the body buffer it is kept only while the
 * log catches up (easy_release); op_kick makes a new one for the next request
 * of a log at its head. A used handle holds ~20 KiB of heap (its state and
 * receive buffer); with the answer buffers, the slots of 35 logs held ~2 MB
 * at idle. Connections stay in the multi handle's cache. */
static int easy_setup(struct ingest *in, struct req *r)
{
    r->easy = curl_easy_init();
    if (!r->easy) return -1;
    CURL *e = r->easy;
    long t = in->cfg->ct_log.request_timeout_secs ? (long)in->cfg->ct_log.request_timeout_secs : 30;
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, t);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, t < 10 ? t : 10L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");       /* tiles may come gzip'd */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "certstream-server/" CERTSTREAM_VERSION);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)in->max_body);  /* by Content-Length */
    return 0;
}

static int req_init(struct ingest *in, struct ilog *l, struct req *r, enum req_kind kind)
{
    memset(r, 0, sizeof *r);
    r->log = l;
    r->kind = kind;
    return easy_setup(in, r);
}

static void req_cleanup(struct ingest *in, struct req *r)
{
    if (r->easy) {
        if (r->state == RS_INFLIGHT) curl_multi_remove_handle(in->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Returns freed heap to the system: once, TRIM_DELAY_MS after the first
 * free of a large buffer, so the frees of a burst of answers cost one trim. */
static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    malloc_trim(0);
}

static void trim_soon(struct ingest *in)
{
    if (!in->trim_timer || evtimer_pending(in->trim_timer, NULL)) return;
    struct timeval tv = {.tv_sec = TRIM_DELAY_MS / 1000u, .tv_usec = (suseconds_t)(TRIM_DELAY_MS % 1000u) * 1000};
    evtimer_add(in->trim_timer, &tv);
}

static void easy_release(struct req *r)
{
    if (!r->easy || r->state == RS_INFLIGHT) return;
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    trim_soon(r->log->in);
}

/* The answer in r is used up. A log that is catching up (its answer was a
 * full batch or tile: the next one will be as large) keeps its buffer and
 * curl handle for the next request, unless an unusually large answer grew the
 * buffer past BODY_KEEP. A log at the head of its tree gets small answers now
 * and then: its buffer and handle go back at once, so a process following
 * many logs holds only the answers in flight rather than a buffer and a
 * handle per request slot (35 logs x 4 windows x ~1.3 MB were most of the
 * idle heap; then the 64 KiB buffers and the handles of the slots in turn,
 * ~2 MB). */
static void body_release(struct req *r, bool catching_up)
{
    if (!catching_up) easy_release(r);
    if (!r->body || (catching_up && r->cap <= BODY_KEEP)) return;
    free(r->body);
    r->body = NULL;
    r->cap = 0;
    r->len = 0;
    trim_soon(r->log->in);
}

/* An answer that is not used (an error, a refused answer). */
static void body_trim(struct req *r) { body_release(r, false); }

static void op_kick(struct op *op);

static void turn_end(struct ingest *in);

static void op_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct op *op = arg;
    op_kick(op);
    turn_end(op->in);
}

/* Starts queued requests while the operator's pacing allows. */
static void op_kick(struct op *op)
{
    struct ingest *in = op->in;
    while (op->qhead) {
        uint64_t now = mono_ns() / 1000u;
        if (now < op->next_us) {
            timer_at(op->timer, (op->next_us + 999) / 1000u);
            return;
        }
        struct req *r = op->qhead;
        op->qhead = r->qnext;
        if (!op->qhead) op->qtail = NULL;
        r->qnext = NULL;
        r->len = 0;
        r->too_big = false;
        r->over_budget = false;
        r->status = 0;
        r->retry_after_s = -1;
        r->errbuf[0] = '\0';
        CURLMcode mc = CURLM_OUT_OF_MEMORY;
        if (r->easy || easy_setup(in, r) == 0) {
            curl_easy_setopt(r->easy, CURLOPT_URL, r->url);
            mc = curl_multi_add_handle(in->multi, r->easy);
        }
        if (mc != CURLM_OK) {
            log_warn("%s: cannot start request: %s", r->log->cfg->name, curl_multi_strerror(mc));
            r->state = RS_DONE;
            r->cc = CURLE_FAILED_INIT;
            continue;   /* reported as a failure by the next pump */
        }
        r->state = RS_INFLIGHT;
        count(in, ST_CT_REQUESTS, 1);
        stats_log_add(&r->log->sl->requests, 1);
        if (r->log->failures) stats_log_add(&r->log->sl->retries, 1);
        op->next_us = now + op->gap_us;
    }
}

static void submit(struct ilog *l, struct req *r)
{
    struct op *op = l->op;
    r->state = RS_QUEUED;
    r->qnext = NULL;
    if (op->qtail) op->qtail->qnext = r;
    else op->qhead = r;
    op->qtail = r;
    op_kick(op);
}

static void check_done(struct ingest *in)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(in->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct req *r = NULL;
        CURL *e = m->easy_handle;
        CURLcode cc = m->data.result;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(in->multi, e);
        if (!r) continue;
        r->cc = cc;
        /* Received in full: no longer "in flight" for the budget. */
        in->held -= r->len < in->held ? r->len : in->held;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
        curl_off_t ra = -1;
        if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            r->retry_after_s = (long)ra;
        r->state = RS_DONE;
        if (cc != CURLE_OK || r->status != 200) body_trim(r);   /* the body is not used */
        pump(r->log);
    }
}

/* Runs what curl asked to run at once (timer_cb with 0 ms: a request just
 * queued by op_kick, or one that completed and freed its connection for the
 * next) before the event loop sleeps again. Without it each request cost one
 * more loop turn (a zero timeout, epoll_wait and, with timerfd, a
 * timerfd_settime) between being queued and being sent. Called at the end of
 * every event callback, never from inside curl (socket_action must not
 * recurse). Bounded: a transfer that keeps asking is left to the timer. */
static void curl_drive(struct ingest *in)
{
    for (int i = 0; i < 4 && in->curl_due; i++) {
        int running = 0;
        in->curl_due = false;
        curl_multi_socket_action(in->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(in);
    }
}

/* The heartbeat the supervisor's watchdog reads (shm/proctable.h): beaten
 * at the end of every event callback, so its own timer fires only after
 * PROCTABLE_BEAT_MS without any other (a process following slow logs wakes
 * every few tens of ms anyway; the timer alone was 4 more wakeups a second
 * per process). */
static int beat(struct ingest *in)
{
    static const struct timeval tv = {0, PROCTABLE_BEAT_MS * 1000};
    proctable_beat();
    return in->beat_ev ? evtimer_add(in->beat_ev, &tv) : 0;
}

/* The tail of every event callback: curl's due work, then the heartbeat. */
static void turn_end(struct ingest *in)
{
    curl_drive(in);
    (void)beat(in);   /* fails only without memory: the next callback tries again */
}

static void curl_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ingest *in = arg;
    int running = 0;
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(in->multi, fd, flags, &running);
    check_done(in);
    turn_end(in);
}

static void curl_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ingest *in = arg;
    int running = 0;
    in->curl_due = false;
    curl_multi_socket_action(in->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(in);
    turn_end(in);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    struct ingest *in = userp;
    struct event *ev = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (ev) event_free(ev);
        curl_multi_assign(in->multi, s, NULL);
        return 0;
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (ev) {
        event_del(ev);
        event_assign(ev, in->base, s, kind, curl_event_cb, in);
    } else {
        ev = event_new(in->base, s, kind, curl_event_cb, in);
        if (!ev) return -1;
        curl_multi_assign(in->multi, s, ev);
    }
    return event_add(ev, NULL);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct ingest *in = userp;
    if (timeout_ms < 0) {
        evtimer_del(in->curl_timer);
        return 0;
    }
    /* "Now" (a handle was just added, or a transfer has more to do): run
     * by curl_drive before the loop sleeps, not one loop turn later. The
     * timer below stays the fallback. */
    if (timeout_ms == 0) in->curl_due = true;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    return evtimer_add(in->curl_timer, &tv);
}

/* 0 when the request got a 200; else fills err with why not. */
static int req_failed(struct req *r, char *err, size_t errlen)
{
    if (r->cc != CURLE_OK) {
        if (r->too_big || r->cc == CURLE_FILESIZE_EXCEEDED) {
            r->too_big = true;
            snprintf(err, errlen, "answer larger than ct_log.max_response_bytes (%zu)", r->log->in->max_body);
        } else if (r->over_budget) {
            snprintf(err, errlen, "ct_log.max_inflight_bytes (%zu) in use", r->log->in->budget);
        } else {
            snprintf(err, errlen, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->cc));
        }
        return -1;
    }
    if (r->status != 200) {
        snprintf(err, errlen, "HTTP %ld", r->status);
        return -1;
    }
    return 0;
}

/* ---- publishing ---- */

static double seen_now(struct ingest *in)
{
    if (in->p->pin_seen > 0) return in->p->pin_seen;
    return (double)wall_ms() / 1000.0;
}

/* Tests only (CERTSTREAM_TEST_PUBLISH_JOURNAL=path): "B <url> <index>" just
 * before an entry goes into the ring, "A <url> <index>" just after (before
 * its position is stored) and "S <url> <index>" when a log resumes at a saved
 * position, each line ending with the writer's pid and its supervisor's pid
 * at start (one server, one ring) and written with one write(2) with O_APPEND, so a
 * crash test can check across kills that every entry went out exactly once:
 * two A lines are a duplicate, no line a gap, and a B without its A marks a
 * kill inside the publish of that entry (docs/ingest.md). */
static void journal_write(struct ilog *l, char what, uint64_t index)
{
    char line[600];
    int n = snprintf(line, sizeof line, "%c %s %llu %ld %ld\n", what, l->cfg->url, (unsigned long long)index,
                     (long)getpid(), l->in->journal_server);
    if (n > 0 && (size_t)n < sizeof line && write(l->in->journal_fd, line, (size_t)n) != n)
        log_warn("publish journal: %s", strerror(errno));
}

/* At start: whether the last record the previous process of this group
 * committed (the producer slot is the group's) is entry `index` of the log:
 * then it died after the commit and before storing the position. A ring
 * that is new (the whole server restarted) holds nothing of it. */
static bool predecessor_published(struct ingest *in, uint32_t log_id, uint64_t index)
{
    uint64_t pos = ring_producer_last(in->p->ring, in->p->producer_id);
    const struct ring_record *rec;
    if (pos == 0 || ring_find(in->p->ring, pos, &rec) != RING_OK)
        return false;
    bool same = rec->kind == RING_KIND_MESSAGE && rec->log_id == log_id && rec->cert_index == index;
    return same && !ring_lapped_since(in->p->ring, pos);
}

static void publish(struct ilog *l, const struct pipeline_out *o, uint64_t index)
{
    struct ingest *in = l->in;
    struct ring_message m;
    stats_log_store(&l->sl->position_timestamp_ms, o->timestamp_ms);
    uint64_t tag;
    memcpy(&tag, o->leaf_sha256, sizeof tag);
    tag |= 1;   /* never 0 (= none) */
    position_store_pending(l->pos, tag);
    bool seen = in->p->dedup && dedup_seen_or_insert(in->p->dedup, o->leaf_sha256, wall_ms() / 1000u);
    if (l->resume_pending && index == l->resume_index && tag == l->resume_tag) {
        /* The previous process of this group got this very entry (the
         * stored leaf tag says so; with dedup on, it is in the table) and was
         * killed before its position was stored: before the entry reached
         * the ring (publish it rather than lose it), or after (the ring
         * holds it as that process's last record: publishing it again would
         * send it twice). */
        if (l->resume_in_ring) {
            l->resume_pending = false;
            log_info("%s: entry %llu reached the ring before the previous process stopped; not sent again",
                     l->cfg->name, (unsigned long long)index);
            return;
        }
        log_info("%s: entry %llu was being published when the previous process stopped and is not in "
                 "this ring; sent", l->cfg->name, (unsigned long long)index);
        seen = false;
    }
    l->resume_pending = false;
    if (seen) {
        count(in, ST_DEDUP_DROPPED, 1);
        stats_log_add(&l->sl->duplicates, 1);
        return;
    }
    pipeline_message(o, index, l->cfg->log_id, false, &m);
    if (in->journal_fd >= 0) journal_write(l, 'B', index);
    if (ring_publish(in->p->ring, in->p->producer_id, &m) == 0) {
        log_warn("%s: entry %llu not published (message larger than the ring allows)",
                 l->cfg->name, (unsigned long long)index);
        count(in, ST_PARSE_FAILURES, 1);
        stats_log_add(&l->sl->parse_failures, 1);
        return;
    }
    if (in->journal_fd >= 0) journal_write(l, 'A', index);
    count(in, ST_ENTRIES_PUBLISHED, 1);
    __atomic_add_fetch(&l->sl->entries, 1, __ATOMIC_RELAXED);
    in->published_since_notify++;
}

static void notify(struct ingest *in)
{
    if (in->published_since_notify) {
        ring_notify(in->p->ring);
        in->published_since_notify = 0;
    }
}

enum skip_reason { SKIP_UNDECODABLE, SKIP_UNPARSEABLE };

/* An entry that cannot be published: counted (in total and by reason) and
 * logged with log, index and reason, at most 20 lines a minute per process
 * (a broken log could otherwise fill the disk); the rest are summed up. */
static void skip_entry(struct ilog *l, uint64_t index, enum skip_reason why, const char *err)
{
    struct ingest *in = l->in;
    uint64_t now = mono_ms();
    count(in, ST_PARSE_FAILURES, 1);
    stats_log_add(&l->sl->parse_failures, 1);
    count(in, why == SKIP_UNDECODABLE ? ST_ENTRIES_SKIPPED_UNDECODABLE : ST_ENTRIES_SKIPPED_UNPARSEABLE, 1);
    if (now - in->skip_log_window_ms >= 60000) {
        if (in->skip_suppressed)
            log_warn("%u more skipped entries were not logged in the last minute", in->skip_suppressed);
        in->skip_log_window_ms = now;
        in->skip_logged = in->skip_suppressed = 0;
    }
    if (in->skip_logged < 20) {
        in->skip_logged++;
        log_warn("%s: entry %llu skipped (%s): %s", l->cfg->name, (unsigned long long)index,
                 why == SKIP_UNDECODABLE ? "undecodable" : "unparseable", err);
    } else {
        in->skip_suppressed++;
    }
}

static void render_rfc6962(struct ilog *l, const struct ctapi_entry *e, uint64_t index)
{
    struct ingest *in = l->in;
    char err[256] = "";
    if (e->bad) {
        skip_entry(l, index, SKIP_UNDECODABLE, "bad base64 or missing field, also when fetched again");
        return;
    }
    struct pipeline_out o;
    if (pipeline_render_rfc6962(in->pipe, e->leaf_input, e->leaf_len, e->extra_data, e->extra_len,
                                index, l->cfg->name, l->cfg->url, seen_now(in), &o, err, sizeof err) == 0) {
        publish(l, &o, index);
        return;
    }
    skip_entry(l, index, SKIP_UNPARSEABLE, err);
}

/* ---- RFC 6962 ---- */

static struct window *win_at(struct ilog *l, unsigned k)
{
    return &l->win[(l->win_head + k) % l->windows];
}

static void win_send(struct ilog *l, struct window *w)
{
    snprintf(w->r.url, sizeof w->r.url, "%sct/v1/get-entries?start=%llu&end=%llu", l->base,
             (unsigned long long)w->start, (unsigned long long)w->end);
    submit(l, &w->r);
}

/* Called after every entry (published, deduplicated or skipped): the
 * position store then never lags the ring by more than the entry in hand. */
static void set_position(struct ilog *l, uint64_t next)
{
    l->next_index = next;
    sl_store(&l->sl->next_index, next);
    position_store(l->pos, next);
}

/* A saved position beyond the tree size (the log was reset, its URL reused,
 * or a backup of our state restored): ct_log.position_ahead says whether to
 * wait for the log to grow past it (default) or to start again at its head. */
static void check_ahead(struct ilog *l, uint64_t size)
{
    char why[96];
    if (!l->have_pos || l->next_index <= size) {
        if (l->ahead) {
            log_info("%s: tree size %llu reached the saved position; following again", l->cfg->name,
                     (unsigned long long)size);
            l->ahead = false;
            set_reason(l, "");
            set_health(l);
        }
        return;
    }
    if (strcmp(l->in->cfg->ct_log.position_ahead ? l->in->cfg->ct_log.position_ahead : "wait",
               "restart_at_head") == 0) {
        log_warn("%s: saved position %llu is beyond the tree size %llu; restarting at the head "
                 "(ct_log.position_ahead: restart_at_head)", l->cfg->name,
                 (unsigned long long)l->next_index, (unsigned long long)size);
        count(l->in, ST_POSITION_AHEAD, 1);
        set_position(l, size);
        l->fetch_next = size;
        return;
    }
    if (!l->ahead) {
        log_warn("%s: saved position %llu is beyond the tree size %llu; waiting for the log to grow "
                 "(ct_log.position_ahead: wait)", l->cfg->name, (unsigned long long)l->next_index,
                 (unsigned long long)size);
        count(l->in, ST_POSITION_AHEAD, 1);
        l->ahead = true;
    }
    snprintf(why, sizeof why, "saved position %llu beyond tree size %llu", (unsigned long long)l->next_index,
             (unsigned long long)size);
    set_reason(l, why);
    set_health(l);
}

static void got_size(struct ilog *l, uint64_t size)
{
    bool first = !l->have_size;
    if (first || size > l->tree_size) {
        /* The first head of this process sets the size even when smaller
         * than the saved one: that is the log as it is now. */
        l->tree_size = size;
        sl_store(&l->sl->tree_size, size);
        position_store_size(l->pos, size);
    } else if (size < l->tree_size) {
        count(l->in, ST_TREE_SIZE_SHRANK, 1);   /* a stale frontend: ignored */
    }
    l->have_size = true;
    if (first || l->ahead) check_ahead(l, l->tree_size);
    if (!l->have_pos) {
        uint64_t ov = l->in->cfg->ct_log.start_overlap;
        uint64_t start = size > ov ? size - ov : 0;
        struct position_row *mark = positions_row(l->in->p->start_marks, l->cfg->url, false);
        if (mark && !position_known(mark)) {
            position_store_size(mark, size);
            position_store(mark, start);
        }
        set_position(l, start);
        l->fetch_next = l->next_index;
        l->have_pos = true;
        log_info("%s: starting at index %llu (tree size %llu)", l->cfg->name,
                 (unsigned long long)l->next_index, (unsigned long long)size);
    }
}

static void sth_done(struct ilog *l)
{
    struct req *r = &l->head;
    char err[256];
    struct ctapi_sth sth;
    r->state = RS_IDLE;
    if (req_failed(r, err, sizeof err)) {
        on_failure(l, r, err);
        return;
    }
    if (ctapi_sth_parse(r->body ? r->body : "", r->len, &sth, err, sizeof err) != 0) {
        on_failure(l, r, err);
        return;
    }
    /* Verify what would move us forward (a repeated head was checked before). */
    if (l->cfg->key && (!l->have_size || sth.tree_size > l->tree_size) &&
        ctapi_verify_tree_head(l->cfg->key, l->cfg->key_len, sth.timestamp, sth.tree_size, sth.root_hash,
                               sth.signature, sth.signature_len, err, sizeof err) != 0) {
        on_failure(l, r, err);
        return;
    }
    on_success(l);
    stats_log_store(&l->sl->head_timestamp_ms, sth.timestamp);
    got_size(l, sth.tree_size);
}

/* The next tree-head poll: the next multiple of the interval on the
 * monotonic clock (never later than now + interval). Logs with the same
 * interval then poll in the same instant, so a process following many slow
 * logs wakes once per interval for all of them rather than once per log (at
 * 50 logs and 500 entries/s the wakeups were most of the ingest CPU). */
static uint64_t next_poll(uint64_t now, uint64_t poll_ms)
{
    if (poll_ms == 0) return now;
    return now / poll_ms * poll_ms + poll_ms;
}

/* Applies finished windows at the head of the FIFO, in index order. */
static void apply_windows(struct ilog *l)
{
    while (l->n_win > 0) {
        struct window *w = win_at(l, 0);
        struct req *r = &w->r;
        char err[256];
        struct ctapi_entries es;
        if (r->state != RS_DONE) return;
        r->state = RS_IDLE;
        if (req_failed(r, err, sizeof err)) {
            on_failure(l, r, err);
            return;   /* resent by pump once the backoff is over */
        }
        uint64_t want = w->end - w->start + 1;
        if (ctapi_entries_parse(r->body ? r->body : "", r->len, (size_t)want, &es, err, sizeof err) != 0) {
            on_failure(l, r, err);
            return;
        }
        if (es.n == 0) {
            ctapi_entries_free(&es);
            on_failure(l, r, "no entries in the answer");
            return;
        }
        size_t got = es.n, first_bad = got;
        uint32_t max = l->in->cfg->ct_log.retry_max_attempts ? l->in->cfg->ct_log.retry_max_attempts : 3;
        for (size_t i = 0; i < got && first_bad == got; i++)
            if (es.v[i].bad) first_bad = i;
        if (first_bad < got && w->undecodable_tries + 1 < max) {
            /* Maybe corrupted on the way: publish what comes before it, then
             * ask again from that entry (after a backoff). Only after
             * retry_max_attempts fetches is it skipped, alone. */
            w->undecodable_tries++;
            for (size_t i = 0; i < first_bad; i++) {
                render_rfc6962(l, &es.v[i], w->start + i);
                set_position(l, w->start + i + 1);
            }
            if (first_bad) w->undecodable_tries = 1;   /* progress: a fresh count for the new head */
            w->start += first_bad;
            ctapi_entries_free(&es);
            body_trim(r);
            notify(l->in);
            count(l->in, ST_ANSWERS_REFETCHED, 1);
            snprintf(err, sizeof err, "entry %llu does not decode (bad base64 or missing field); fetching it again",
                     (unsigned long long)w->start);
            on_failure(l, r, err);
            return;
        }
        w->undecodable_tries = 0;
        on_success(l);
        for (size_t i = 0; i < got; i++) {
            render_rfc6962(l, &es.v[i], w->start + i);
            set_position(l, w->start + i + 1);
        }
        ctapi_entries_free(&es);
        /* Still catching up unless the window stopped at the tree head (a
         * short answer is a log's own cap: more of the same size follows). */
        body_release(r, got < want || want >= l->batch);
        notify(l->in);
        if (got < want) {                 /* short answer: ask for the rest */
            w->start += got;
            continue;                     /* stays at the head, resent by pump */
        }
        l->win_head = (l->win_head + 1) % l->windows;
        l->n_win--;
    }
}

static void pump_rfc6962(struct ilog *l, uint64_t now)
{
    if (l->head.state == RS_DONE) {
        sth_done(l);
        body_trim(&l->head);
    }
    apply_windows(l);
    if (now < l->retry_at_ms) return;
    if (l->head.state == RS_IDLE && now >= l->next_poll_ms) {
        snprintf(l->head.url, sizeof l->head.url, "%sct/v1/get-sth", l->base);
        l->next_poll_ms = next_poll(now, l->poll_ms);
        submit(l, &l->head);
    }
    if (!l->have_pos || !l->have_size) return;   /* a saved size may be stale: wait for a head */
    /* Resend windows that failed or came back short. */
    for (unsigned k = 0; k < l->n_win; k++) {
        struct window *w = win_at(l, k);
        if (w->r.state == RS_IDLE) win_send(l, w);
    }
    while (l->n_win < l->windows && l->fetch_next < l->tree_size) {
        struct window *w = win_at(l, l->n_win);
        uint64_t end = l->fetch_next + l->batch - 1;
        if (end > l->tree_size - 1) end = l->tree_size - 1;
        w->start = l->fetch_next;
        w->end = end;
        w->undecodable_tries = 0;
        l->fetch_next = end + 1;
        l->n_win++;
        win_send(l, w);
    }
}

/* ---- static-ct-api ---- */

static struct issuer *issuer_find(struct ingest *in, const uint8_t *fp)
{
    for (size_t i = 0; i < in->n_issuers; i++)
        if (memcmp(in->issuers[i].fp, fp, 32) == 0) return &in->issuers[i];
    return NULL;
}

/* Issuers are few (a handful per log) and immutable: a flat array searched
 * linearly is enough. Past ISSUER_CACHE_MAX it starts over. */
static int issuer_add(struct ingest *in, const uint8_t *fp, const char *der, size_t len)
{
    if (in->n_issuers == ISSUER_CACHE_MAX) {
        for (size_t i = 0; i < in->n_issuers; i++) free(in->issuers[i].der);
        count(in, ST_ISSUER_CACHE_SIZE, -(int64_t)in->n_issuers);
        in->n_issuers = 0;
    }
    if (!in->issuers) {
        in->issuers = calloc(ISSUER_CACHE_MAX, sizeof *in->issuers);
        if (!in->issuers) return -1;
    }
    struct issuer *is = &in->issuers[in->n_issuers];
    is->der = NULL;
    if (der) {
        is->der = malloc(len ? len : 1);
        if (!is->der) return -1;
        memcpy(is->der, der, len);
    }
    memcpy(is->fp, fp, 32);
    is->len = len;
    in->n_issuers++;
    count(in, ST_ISSUER_CACHE_SIZE, 1);
    return 0;
}

/* The pipeline's view of the issuer cache. */
static int issuer_lookup(void *ctx, const uint8_t fingerprint[32], const uint8_t **der, size_t *len)
{
    struct issuer *is = issuer_find(ctx, fingerprint);
    if (!is || !is->der) return -1;
    *der = is->der;
    *len = is->len;
    return 0;
}

static void checkpoint_done(struct ilog *l)
{
    struct req *r = &l->head;
    char err[256];
    struct ctapi_checkpoint cp;
    r->state = RS_IDLE;
    if (req_failed(r, err, sizeof err)) {
        on_failure(l, r, err);
        return;
    }
    if (ctapi_checkpoint_parse(r->body ? r->body : "", r->len, &cp, err, sizeof err) != 0) {
        on_failure(l, r, err);
        return;
    }
    if (l->cfg->origin && strcmp(l->cfg->origin, cp.origin) != 0) {
        snprintf(err, sizeof err, "checkpoint origin '%.100s', expected '%.100s'", cp.origin, l->cfg->origin);
        on_failure(l, r, err);
        return;
    }
    if (l->cfg->key && (!l->have_size || cp.tree_size > l->tree_size) &&
        ctapi_checkpoint_verify(r->body, r->len, &cp, l->cfg->key, l->cfg->key_len, err, sizeof err) != 0) {
        on_failure(l, r, err);
        return;
    }
    on_success(l);
    if (!l->cp_size || cp.tree_size > l->cp_size) {
        l->cp_size = cp.tree_size;
        memcpy(l->cp_root, cp.root_hash, 32);
    }
    stats_log_store(&l->sl->head_timestamp_ms, wall_ms());
    got_size(l, cp.tree_size);
}

/* Renders the entries [next_index, tile end) of the tile in l->tile. Every
 * issuer they name is in the cache (tile_need_issuer said so). */
static void tile_render(struct ilog *l, const size_t *off, const size_t *len, unsigned n_decoded)
{
    struct ingest *in = l->in;
    uint64_t first = l->tile_n * TILE_WIDTH;
    char link[1400];
    snprintf(link, sizeof link, "%s%s", l->cfg->url, l->tile_path);
    for (uint64_t i = l->next_index - first; i < l->tile_width; i++) {
        uint64_t index = first + i;
        char err[256] = "";
        if (i >= n_decoded) {
            skip_entry(l, index, SKIP_UNDECODABLE, "undecodable tile data, also when fetched again");
            set_position(l, index + 1);
            continue;
        } else {
            struct pipeline_out o;
            const uint8_t *p = (const uint8_t *)l->tile.body + off[i];
            if (pipeline_render_tile_entry(in->pipe, p, len[i], index, l->cfg->name, l->cfg->url, link,
                                           seen_now(in), &o, err, sizeof err) == 0) {
                stats_log_add(&l->sl->entries_parsed, 1);
                publish(l, &o, index);
                set_position(l, index + 1);
                continue;
            }
        }
        skip_entry(l, index, SKIP_UNPARSEABLE, err);
        set_position(l, index + 1);
    }
    notify(in);
}

/* Splits the tile into entries; returns how many decoded (stops at the first
 * malformed one) and fills off/len. */
static unsigned tile_split(struct ilog *l, size_t *off, size_t *len)
{
    const uint8_t *p = (const uint8_t *)l->tile.body;
    size_t pos = 0, n = l->tile.len;
    unsigned k = 0;
    while (k < l->tile_width && pos < n) {
        struct ct_entry e;
        size_t used = 0;
        char err[128];
        if (ct_decode_tile_entry(p + pos, n - pos, &used, &e, err, sizeof err) != 0 || used == 0) break;
        off[k] = pos;
        len[k] = used;
        pos += used;
        k++;
    }
    return k;
}

/* The first chain fingerprint of the wanted entries that is not cached. */
static const uint8_t *tile_need_issuer(struct ilog *l, const size_t *off, const size_t *len, unsigned n)
{
    uint64_t first = l->tile_n * TILE_WIDTH;
    for (uint64_t i = l->next_index - first; i < n; i++) {
        struct ct_entry e;
        size_t used = 0;
        char err[128];
        if (ct_decode_tile_entry((const uint8_t *)l->tile.body + off[i], len[i], &used, &e, err, sizeof err) != 0)
            continue;
        for (size_t c = 0; c < e.nfingerprints; c++)
            if (!issuer_find(l->in, e.fingerprints + 32 * c)) return e.fingerprints + 32 * c;
    }
    return NULL;
}

static void tile_request(struct ilog *l)
{
    uint64_t n = l->next_index / TILE_WIDTH;
    uint64_t end = (n + 1) * TILE_WIDTH;
    unsigned width = end <= l->tree_size ? TILE_WIDTH : (unsigned)(l->tree_size - n * TILE_WIDTH);
    if (n != l->tile_n || width != l->tile_width) {
        l->tile_attempts = 0;
        l->tile_full_fallback = false;
    }
    l->tile_n = n;
    l->tile_width = width;
    ct_data_tile_path(l->tile_path, sizeof l->tile_path, n,
                      l->tile_full_fallback ? TILE_WIDTH : (width == TILE_WIDTH ? 0 : width));
    snprintf(l->tile.url, sizeof l->tile.url, "%s%s", l->base, l->tile_path);
    submit(l, &l->tile);
}

static void tile_done(struct ilog *l)
{
    struct req *r = &l->tile;
    char err[256];
    r->state = RS_IDLE;
    if (r->cc == CURLE_OK && r->status == 404 && l->tile_width < TILE_WIDTH && !l->tile_full_fallback) {
        /* Logs may delete a partial tile once the full one exists. */
        l->tile_full_fallback = true;
        return;
    }
    if (req_failed(r, err, sizeof err)) {
        l->tile_full_fallback = false;
        on_failure(l, r, err);
        return;
    }
    on_success(l);
    stats_log_add(&l->sl->tiles_fetched, 1);
    l->tile_ready = true;
}

static void issuer_done(struct ilog *l)
{
    struct req *r = &l->issuer;
    uint8_t h[32];
    char err[256];
    r->state = RS_IDLE;
    if (req_failed(r, err, sizeof err) == 0) {
        mbedtls_sha256_ret((const unsigned char *)(r->body ? r->body : ""), r->len, h, 0);
        if (memcmp(h, l->issuer_fp, 32) != 0) snprintf(err, sizeof err, "issuer certificate does not match its fingerprint");
        else err[0] = '\0';
    }
    if (err[0]) {
        /* An issuer the log cannot serve must not stall the log: after
         * retry_max_attempts it is remembered as missing and the entries are
         * rendered without it (their chain lacks that element). */
        uint32_t max = l->in->cfg->ct_log.retry_max_attempts ? l->in->cfg->ct_log.retry_max_attempts : 3;
        on_failure(l, r, err);
        if (++l->issuer_attempts >= max) {
            log_warn("%s: issuer %s unavailable; its entries go out without it", l->cfg->name, r->url);
            l->issuer_attempts = 0;
            if (issuer_add(l->in, l->issuer_fp, NULL, 0) != 0) log_error("%s: out of memory", l->cfg->name);
        }
        return;
    }
    l->issuer_attempts = 0;
    on_success(l);
    if (issuer_add(l->in, l->issuer_fp, r->body, r->len) != 0) log_error("%s: out of memory caching an issuer", l->cfg->name);
}

/* With a tile in hand: fetch missing issuers one by one, then render. A tile
 * that does not decode is refetched; after retry_max_attempts the entries
 * that cannot be located are counted as parse failures and skipped, so a
 * broken tile never stalls the log. */
/* ---- verified tiles (ct_log.verify_tiles; ingest/tileproof.h) ---- */

static const uint8_t *hcache_get(void *ctx, unsigned level, uint64_t n, unsigned width)
{
    struct ilog *l = ctx;
    for (unsigned i = 0; i < HASH_TILE_CACHE; i++)
        if (l->hcache[i].h && l->hcache[i].level == level && l->hcache[i].n == n && l->hcache[i].width == width)
            return l->hcache[i].h;
    return NULL;
}

static void hcache_clear(struct ilog *l)
{
    for (unsigned i = 0; i < HASH_TILE_CACHE; i++) {
        free(l->hcache[i].h);
        l->hcache[i].h = NULL;
    }
}

static void htile_done(struct ilog *l)
{
    struct req *r = &l->htile;
    char err[256];
    r->state = RS_IDLE;
    if (req_failed(r, err, sizeof err) != 0) {
        on_failure(l, r, err);
        return;
    }
    if (r->len != 32u * l->hneed.width) {
        snprintf(err, sizeof err, "hash tile of %zu bytes, expected %u", r->len, 32u * l->hneed.width);
        on_failure(l, r, err);
        return;
    }
    unsigned k = l->hcache_next++ % HASH_TILE_CACHE;
    free(l->hcache[k].h);
    l->hcache[k].h = malloc(r->len);
    if (!l->hcache[k].h) return;
    memcpy(l->hcache[k].h, r->body, r->len);
    l->hcache[k].level = l->hneed.level;
    l->hcache[k].n = l->hneed.n;
    l->hcache[k].width = l->hneed.width;
    on_success(l);
}

/* 0: the n decoded entries of the tile are proven in the checkpoint's tree;
 * 1: a hash tile is being fetched; -1: they are not (alarm, refetch later). */
static int tile_verify(struct ilog *l, const size_t *off, const size_t *len, unsigned n)
{
    uint8_t hashes[TILE_WIDTH][32];
    struct tileproof_need need;
    char err[256];
    if (n == 0) return 0;
    if (!l->vhave || l->tile_n * TILE_WIDTH + n > l->vsize) {
        /* A newer checkpoint only when the one in use does not cover the
         * tile: the right-edge hash tiles stay cached meanwhile. */
        l->vsize = l->cp_size;
        memcpy(l->vroot, l->cp_root, 32);
        l->vhave = true;
    }
    for (unsigned i = 0; i < n; i++) {
        struct ct_entry e;
        size_t used;
        char derr[128];
        if (ct_decode_tile_entry((const uint8_t *)l->tile.body + off[i], len[i], &used, &e, derr, sizeof derr) != 0)
            return -1;
        tileproof_leaf_hash(&e, hashes[i]);
    }
    int rc = tileproof_check(l->vsize, l->vroot, l->tile_n, n, &hashes[0][0], hcache_get, l, &need, err, sizeof err);
    if (rc == 1) {
        if (l->htile.state == RS_IDLE) {
            char path[128];
            l->hneed = need;
            tileproof_path(path, sizeof path, need.level, need.n, need.width == TILE_WIDTH ? 0 : need.width);
            snprintf(l->htile.url, sizeof l->htile.url, "%s%s", l->base, path);
            submit(l, &l->htile);
        }
        return 1;
    }
    if (rc == 0) {
        count(l->in, ST_TILES_VERIFIED, 1);
        return 0;
    }
    count(l->in, ST_TILE_VERIFY_FAILURES, 1);
    log_error("%s: ALARM: %s (checkpoint size %llu); entries held back, fetched again", l->cfg->name, err,
              (unsigned long long)l->vsize);
    hcache_clear(l);
    l->vhave = false;
    return -1;
}

static void tile_process(struct ilog *l)
{
    static size_t off[TILE_WIDTH], len[TILE_WIDTH];
    unsigned n = tile_split(l, off, len);
    uint32_t max = l->in->cfg->ct_log.retry_max_attempts ? l->in->cfg->ct_log.retry_max_attempts : 3;
    if (n < l->tile_width && ++l->tile_attempts < max) {
        l->tile_ready = false;
        on_failure(l, &l->tile, "truncated or malformed data tile");
        return;
    }
    const uint8_t *fp = tile_need_issuer(l, off, len, n);
    if (fp) {
        if (l->issuer.state != RS_IDLE) return;
        char hex[65];
        ctapi_hex32(fp, hex);
        memcpy(l->issuer_fp, fp, 32);
        snprintf(l->issuer.url, sizeof l->issuer.url, "%sissuer/%s", l->base, hex);
        submit(l, &l->issuer);
        return;
    }
    if (l->in->cfg->ct_log.verify_tiles) {
        int v = tile_verify(l, off, len, n);
        if (v == 1) return;
        if (v < 0) {
            char why[96];
            snprintf(why, sizeof why, "data tile %llu does not verify against the checkpoint",
                     (unsigned long long)l->tile_n);
            l->tile_ready = false;
            on_failure(l, &l->tile, why);
            return;
        }
    }
    tile_render(l, off, len, n);
    body_release(&l->tile, l->tile_width == TILE_WIDTH);   /* a full tile: still catching up */
    l->tile_ready = false;
    l->tile_attempts = 0;
    l->tile_full_fallback = false;
}

static void pump_tiled(struct ilog *l, uint64_t now)
{
    if (l->head.state == RS_DONE) {
        checkpoint_done(l);
        body_trim(&l->head);
    }
    if (l->tile.state == RS_DONE) tile_done(l);
    if (l->issuer.state == RS_DONE) {
        issuer_done(l);
        body_trim(&l->issuer);
    }
    if (l->htile.state == RS_DONE) htile_done(l);
    if (now < l->retry_at_ms) return;
    if (l->head.state == RS_IDLE && now >= l->next_poll_ms) {
        snprintf(l->head.url, sizeof l->head.url, "%scheckpoint", l->base);
        l->next_poll_ms = next_poll(now, l->poll_ms);
        submit(l, &l->head);
    }
    if (l->tile_ready) {
        tile_process(l);
        if (l->tile_ready || mono_ms() < l->retry_at_ms) return;
    }
    if (!l->have_pos || !l->have_size || l->tile.state != RS_IDLE || l->next_index >= l->tree_size) return;
    tile_request(l);
}

/* ---- the per-log driver ---- */

static void log_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ilog *l = arg;
    pump(l);
    turn_end(l->in);
}

static void pump(struct ilog *l)
{
    uint64_t now = mono_ms();
    if (l->cfg->refused) return;   /* expected_log_id: never fetched */
    /* NATS publisher behind (NATS unreachable): fetch nothing more, keep the
     * position (docs/scale-out.md) */
    if (stats_nats_gate_closed(l->in->p->stats, ring_tail(l->in->p->ring))) {
        timer_at(l->timer, now + 100);
        return;
    }
    if (l->cfg->kind == LOGLIST_TILED) pump_tiled(l, now);
    else pump_rfc6962(l, now);
    /* Wake for the next poll, or when the backoff ends. */
    uint64_t poll = l->poll_ms > 10 ? l->poll_ms : 10;
    uint64_t at = l->next_poll_ms;
    if (l->retry_at_ms > now) at = l->retry_at_ms;   /* nothing is sent before */
    /* A request still in flight past its poll time: its completion pumps. */
    if (at <= now) at = now + poll;
    timer_at(l->timer, at);
}

/* ---- setup ---- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct ingest *in = arg;
    log_info("signal %d: stopping", (int)sig);
    event_base_loopbreak(in->base);
}

/* Gap between two requests to one operator: operator_pacing's rate for it,
 * split across the ingest processes that hold its logs (each paces its own
 * requests, so N processes at rate/N each make the configured rate), or
 * ct_log.operator_rate_limit_ms. */
static uint64_t op_gap_us(const struct config *cfg, const char *name, unsigned processes)
{
    for (size_t i = 0; i < cfg->n_operator_pacing; i++) {
        const struct config_pacing *pc = &cfg->operator_pacing[i];
        if (!pc->operator_name || strcmp(pc->operator_name, name) != 0) continue;
        if (pc->milli_rps == 0) return 0;
        return (uint64_t)1000000000u * (processes ? processes : 1) / pc->milli_rps;
    }
    return (uint64_t)cfg->ct_log.operator_rate_limit_ms * 1000u;
}

static struct op *op_get(struct ingest *in, const char *name, unsigned processes)
{
    for (size_t i = 0; i < in->n_ops; i++)
        if (strcmp(in->ops[i].name, name) == 0) return &in->ops[i];
    struct op *op = &in->ops[in->n_ops];
    op->name = strdup(name);
    op->gap_us = op_gap_us(in->cfg, name, processes);
    if (op->gap_us != (uint64_t)in->cfg->ct_log.operator_rate_limit_ms * 1000u)
        log_info("operator %s: one request every %.1f ms (operator_pacing, %u process%s)", name,
                 (double)op->gap_us / 1000.0, processes ? processes : 1, processes > 1 ? "es" : "");
    op->in = in;
    op->timer = evtimer_new(in->base, op_timer_cb, op);
    if (!op->name || !op->timer) return NULL;
    in->n_ops++;
    return op;
}

static int log_init(struct ingest *in, struct ilog *l, const struct loglist_log *cfg)
{
    l->in = in;
    l->cfg = cfg;
    l->base = cfg->fetch_url ? cfg->fetch_url : cfg->url;
    l->sl = stats_log(in->p->stats, cfg->log_id);
    if (!l->sl) {
        log_error("%s: log_id %u has no row in the per-log table", cfg->name, cfg->log_id);
        return -1;
    }
    l->op = op_get(in, cfg->operator_name ? cfg->operator_name : cfg->url, cfg->operator_processes);
    l->windows = cfg->fetch_concurrency ? cfg->fetch_concurrency : in->windows;
    if (l->windows > MAX_WINDOWS) l->windows = MAX_WINDOWS;
    l->batch = cfg->batch_size ? cfg->batch_size : in->batch;
    l->poll_ms = cfg->poll_interval_ms ? cfg->poll_interval_ms : in->cfg->ct_log.poll_interval_ms;
    l->timer = evtimer_new(in->base, log_timer_cb, l);
    if (!l->op || !l->timer) return -1;
    if (req_init(in, l, &l->head, cfg->kind == LOGLIST_TILED ? REQ_CHECKPOINT : REQ_STH) != 0) return -1;
    if (cfg->kind == LOGLIST_TILED) {
        if (req_init(in, l, &l->tile, REQ_TILE) != 0 || req_init(in, l, &l->issuer, REQ_ISSUER) != 0 ||
            req_init(in, l, &l->htile, REQ_HASH_TILE) != 0)
            return -1;
    } else {
        for (unsigned k = 0; k < l->windows; k++)
            if (req_init(in, l, &l->win[k].r, REQ_ENTRIES) != 0) return -1;
    }
    if (cfg->refused) {
        /* expected_log_id does not match: shown, counted, never fetched */
        log_error("%s (%s): refused: %s", cfg->name, cfg->url, cfg->refused);
        set_reason(l, cfg->refused);
        sl_store32(&l->sl->health, LOG_UNHEALTHY);
        count(in, ST_LOGS_REFUSED, 1);
        return 0;
    }
    /* Resume from the shared row (seeded from the state file, or left by an
     * earlier run of this group). */
    uint64_t next = l->sl->next_index, size = l->sl->tree_size;
    l->pos = positions_row(in->p->positions, cfg->url, false);
    if (position_known(l->pos)) {     /* the store is exact, even at 0/0 */
        next = position_next(l->pos);
        size = position_size(l->pos);
    }
    if (next != 0 || size != 0 || position_known(l->pos)) {
        uint64_t ov = in->cfg->ct_log.start_overlap;
        l->have_pos = true;
        /* Not stored: a crash before the first entry must not move the
         * saved position back by the overlap again. */
        l->next_index = next > ov ? next - ov : 0;
        l->resume_index = next;
        l->resume_tag = position_pending(l->pos);
        l->resume_pending = l->resume_tag != 0;
        l->resume_in_ring = l->resume_pending && predecessor_published(in, cfg->log_id, next);
        l->fetch_next = l->next_index;
        l->tree_size = size;
        log_info("%s: resuming at index %llu", cfg->name, (unsigned long long)l->next_index);
        if (in->journal_fd >= 0) journal_write(l, 'S', next);
    }
    return 0;
}

static void ingest_free(struct ingest *in)
{
    for (size_t i = 0; i < in->n_logs; i++) {
        struct ilog *l = &in->logs[i];
        req_cleanup(in, &l->head);
        req_cleanup(in, &l->tile);
        req_cleanup(in, &l->issuer);
        req_cleanup(in, &l->htile);
        hcache_clear(l);
        for (unsigned k = 0; k < MAX_WINDOWS; k++) req_cleanup(in, &l->win[k].r);
        if (l->timer) event_free(l->timer);
    }
    for (size_t i = 0; i < in->n_ops; i++) {
        free(in->ops[i].name);
        if (in->ops[i].timer) event_free(in->ops[i].timer);
    }
    for (size_t i = 0; i < in->n_issuers; i++) free(in->issuers[i].der);
    free(in->issuers);
    free(in->logs);
    free(in->ops);
    if (in->multi) curl_multi_cleanup(in->multi);
    if (in->curl_timer) event_free(in->curl_timer);
    if (in->sig_term) event_free(in->sig_term);
    if (in->trim_timer) event_free(in->trim_timer);
    if (in->sig_int) event_free(in->sig_int);
    if (in->base) event_base_free(in->base);
    if (in->pipe) pipeline_free(in->pipe);
    if (in->journal_fd >= 0) (void)close(in->journal_fd);
}

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (beat(arg) != 0) log_warn("cannot arm the heartbeat timer");
}

int ingest_run(const struct ingest_params *p)
{
    struct ingest in;
    struct event_config *ec = NULL;
    int rc = -1;

    memset(&in, 0, sizeof in);
    in.p = p;
    in.cfg = p->cfg;
    in.rng = (unsigned)getpid() * 2654435761u;
    in.journal_fd = -1;
    const char *journal = getenv("CERTSTREAM_TEST_PUBLISH_JOURNAL");
    if (journal && *journal) {
        in.journal_fd = open(journal, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        in.journal_server = (long)getppid();
        if (in.journal_fd < 0) log_warn("publish journal %s: %s", journal, strerror(errno));
    }
    in.windows = p->cfg->ct_log.fetch_concurrency;
    if (in.windows < 1) in.windows = 1;
    if (in.windows > MAX_WINDOWS) in.windows = MAX_WINDOWS;
    in.batch = p->cfg->ct_log.batch_size ? p->cfg->ct_log.batch_size : 256;
    in.max_body = p->cfg->ct_log.max_response_bytes;
    unsigned max_batch = in.batch;   /* the largest of the group's logs (batch_size overrides) */
    for (size_t i = 0; i < p->n_logs; i++)
        if (p->logs[i]->batch_size > max_batch) max_batch = p->logs[i]->batch_size;
    if (!in.max_body) in.max_body = (size_t)(max_batch > TILE_WIDTH ? max_batch : TILE_WIDTH) * ENTRY_BYTES_MAX;
    in.budget = p->cfg->ct_log.max_inflight_bytes ? p->cfg->ct_log.max_inflight_bytes : (64u << 20);
    if (in.budget < in.max_body) in.budget = in.max_body;   /* one answer must always fit */
    /* Buffers above 4 MiB (more than a normal answer of 256 entries and its
     * decoded arena) come from mmap and go back on free, so a burst of huge
     * answers does not leave the heap grown (glibc would otherwise raise its
     * threshold after the first such free). Smaller ones stay on the heap
     * and are reused batch after batch (256 KiB cost ~5 % of CPU in page
     * faults) while a log catches up; body_release frees them once it is at
     * the head and trim_cb returns the freed pages to the system. */
#if !CS_ASAN   /* AddressSanitizer's allocator has no mallopt: it would only warn */
    if (mallopt(M_MMAP_THRESHOLD, 4 << 20) != 1) log_warn("mallopt(M_MMAP_THRESHOLD) failed");
#endif

    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) log_warn("cannot ignore SIGPIPE: %s", strerror(errno));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        return -1;
    }
    /* Precise timers (a timerfd, one more syscall per loop turn): libevent's
     * default clock here is CLOCK_MONOTONIC_COARSE, 4 ms steps, and its
     * timers then end before it has moved far enough, so it wakes 1-6
     * times more at each deadline (measured: more wakeups, not fewer). */
    ec = event_config_new();
    if (!ec || event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER) != 0) goto err;
    in.base = event_base_new_with_config(ec);
    event_config_free(ec);
    ec = NULL;
    if (!in.base) goto err;
    in.pipe = pipeline_new();
    /* no permessage-deflate frames here: the fanout workers compress on
     * first use (fanout/zalone.h) */
    if (!in.pipe || pipeline_set_absent_names(in.pipe, config_absent_names_null(p->cfg)) != 0)
        goto err;
    pipeline_set_issuer_lookup(in.pipe, issuer_lookup, &in);
    in.multi = curl_multi_init();
    in.curl_timer = evtimer_new(in.base, curl_timer_cb, &in);
    in.sig_term = evsignal_new(in.base, SIGTERM, on_signal, &in);
    in.sig_int = evsignal_new(in.base, SIGINT, on_signal, &in);
    in.trim_timer = evtimer_new(in.base, trim_cb, &in);
    if (!in.multi || !in.curl_timer || !in.sig_term || !in.sig_int || !in.trim_timer) goto err;
    if (evsignal_add(in.sig_term, NULL) != 0 || evsignal_add(in.sig_int, NULL) != 0) goto err;
    curl_multi_setopt(in.multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(in.multi, CURLMOPT_SOCKETDATA, &in);
    curl_multi_setopt(in.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(in.multi, CURLMOPT_TIMERDATA, &in);
    curl_multi_setopt(in.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);

    in.logs = calloc(p->n_logs ? p->n_logs : 1, sizeof *in.logs);
    in.ops = calloc(p->n_logs ? p->n_logs : 1, sizeof *in.ops);
    if (!in.logs || !in.ops) goto err;
    for (size_t i = 0; i < p->n_logs; i++) {
        in.n_logs = i + 1;
        if (log_init(&in, &in.logs[i], p->logs[i]) != 0) goto err;
    }
    log_info("following %zu logs of %zu operators", in.n_logs, in.n_ops);
    for (size_t i = 0; i < in.n_logs; i++) pump(&in.logs[i]);
    /* the supervisor's watchdog reads this heartbeat (shm/proctable.h) */
    in.beat_ev = evtimer_new(in.base, on_beat, &in);
    if (!in.beat_ev || beat(&in) != 0) goto err;
    proctable_set_state(PROC_RUNNING);
    if (event_base_dispatch(in.base) < 0) {
        log_error("event loop failed");
        goto err;
    }
    rc = 0;
err:
    if (in.beat_ev) event_free(in.beat_ev);
    in.beat_ev = NULL;
    if (rc != 0) log_error("ingest cannot run (out of memory or event loop setup failed)");
    if (ec) event_config_free(ec);
    ingest_free(&in);
    curl_global_cleanup();
    return rc;
}
