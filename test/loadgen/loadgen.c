/* loadgen.c - certstream-loadgen: opens many WebSocket or SSE clients to a
 * certstream server on loopback and measures what they receive: messages
 * and bytes per second, overall and per client, per-message latency (from
 * each message's `seen`, in microseconds with the server's benchmark stamp),
 * connection failures, disconnects by reason, ordering and gaps, and its own
 * CPU time. Prints a human summary and, as the last line, one JSON object.
 * It reads any certstream server's messages (message_type and seen found
 * wherever they are in the object).
 *
 * The bulk of the clients is a lean non-blocking epoll client (one process
 * holds tens of thousands at under 1 KB each); --lws-sample adds a few
 * libwebsockets clients as an independent check (see lg_lws.c for why lws
 * is not used for the bulk). When one process cannot hold all clients
 * (RLIMIT_NOFILE), --procs splits them over forked workers whose results
 * are summed through a shared mapping.
 *
 * Only loopback targets are accepted (127.0.0.0/8 or "localhost") unless
 * --allow-remote is given: this tool floods its target. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "lg_clock.h"
#include "lg_lws.h"
#include "lg_parse.h"
#include "lg_stats.h"
#include "lg_tls.h"

#define MAX_URLS 16
#define MAX_LOGS 64        /* distinct source urls tracked per worker */
#define CLIENT_LOGS 4      /* logs tracked per client for ordering */
#define SCRATCH (256 * 1024)
#define MAX_PENDING 1024   /* connections in flight during the ramp */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="

struct target {
    int proto;             /* LG_PROTO_WS or LG_PROTO_SSE */
    int tls;               /* wss:// or https:// */
    char host[64];         /* numeric IPv4 */
    int loopback;          /* 127.0.0.0/8: clients spread over --src-addrs */
    int port;
    char path[256];
    char request[512];
    size_t request_len;
};

struct config {
    int clients;
    struct target urls[MAX_URLS];
    int nurls;
    double ramp;
    double duration;
    double warmup;
    double hs_timeout;
    int src_addrs;
    double slow_fraction;
    double slow_rate;
    double stall_fraction;
    int lws_sample;
    int procs;
    int quiet;
    const char *corpus;
    const char *mark;      /* file told when the window starts and ends */
    const char *query;     /* --query: appended to every client's path, %u = index mod query_count */
    int query_count;
    int deflate;           /* --deflate: offer permessage-deflate */
    int dense;             /* --dense: every log's cert_index runs without holes */
    double reconnect;      /* --reconnect S: reopen each client after about S seconds */
    double progress;       /* --progress S: a counters line on stderr every S seconds */
    double target_rate;    /* --target-rate R: a client is fully fed at >= 99 % of R msg/s */
    int allow_remote;      /* --allow-remote: targets off loopback are allowed */
    double *client_rates;  /* shared: msg/s of each client (by global index) in the window; NAN = not counted */
};

enum { CS_FREE = 0, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN, CS_DONE, CS_TLS };

struct client_log {
    uint16_t id;           /* 1 + index in the worker's url table; 0 = free */
    uint64_t last, min;
};

struct client {
    int fd;
    uint8_t state;
    uint8_t cls;
    uint8_t target;
    uint8_t paused;
    int64_t tokens;        /* slow clients: bytes they may read now */
    int64_t started_us;    /* monotonic, for the handshake timeout */
    int64_t last_sse_id;
    uint32_t gidx;         /* index over all workers (for --query) */
    int64_t reconnect_at;  /* --reconnect: monotonic time to close and reopen */
    uint64_t wmsgs;        /* messages inside the measured window (per-client rate) */
    struct client_log logs[CLIENT_LOGS];
    struct lg_parser p;
    struct lg_tls *tls;    /* wss:// / https:// */
};

struct worker {
    const struct config *cfg;
    struct lg_report *rep;
    int ep;
    struct client *cl;
    int n;                 /* clients of this worker */
    int opened, pending, resolved;
    int *slow_idx;
    int nslow;
    int measuring;
    atomic_int measuring_flag;
    int64_t now_rt_us;     /* CLOCK_REALTIME at the last epoll_wait return */
    int64_t now_us;        /* CLOCK_MONOTONIC likewise */
    char accept[29];
    int errors_logged;
    uint64_t *dense_next;  /* --dense: per client, per log id: next cert_index + 1 (0: none yet) */
    unsigned rng;          /* --reconnect: target and delay choice */
    uint8_t scratch[SCRATCH];
};

static volatile sig_atomic_t g_stop;

/* Logs seen in messages (source url); with --corpus, pre-filled with the
 * corpus' logs and their entries' cert_index in corpus order, so that a
 * skipped entry is found exactly. Filled before fork; each worker appends
 * logs the corpus lacks to its own copy. */
struct log_info {
    char url[160];
    uint16_t url_len;
    int n;               /* corpus entries of this log, 0 = not in the corpus */
    uint64_t *idx;       /* sorted ascending (the corpus order within a log) */
};
static struct log_info g_logs[MAX_LOGS];
static int g_nlogs;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* ---- targets ---- */

/* Parses ws://HOST:PORT/PATH or http://HOST:PORT/sse?... ; HOST must be
 * loopback unless allow_remote (then a name is resolved, IPv4). Returns 0 or
 * -1 with a message on stderr. */
static int parse_url(const char *url, struct target *t, int allow_remote)
{
    const char *rest;
    if (strncmp(url, "ws://", 5) == 0) {
        t->proto = LG_PROTO_WS;
        rest = url + 5;
    } else if (strncmp(url, "http://", 7) == 0) {
        t->proto = LG_PROTO_SSE;
        rest = url + 7;
    } else if (strncmp(url, "wss://", 6) == 0) {
        t->proto = LG_PROTO_WS;
        t->tls = 1;
        rest = url + 6;
    } else if (strncmp(url, "https://", 8) == 0) {
        t->proto = LG_PROTO_SSE;
        t->tls = 1;
        rest = url + 8;
    } else {
        fprintf(stderr, "loadgen: %s: only ws:// and http:// (SSE) URLs\n", url);
        return -1;
    }
    const char *slash = strchr(rest, '/');
    size_t hl = slash ? (size_t)(slash - rest) : strlen(rest);
    char hp[128];
    if (hl == 0 || hl >= sizeof hp) goto bad;
    memcpy(hp, rest, hl);
    hp[hl] = 0;
    t->port = 80;
    char *colon = strrchr(hp, ':');
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p <= 0 || p > 65535) goto bad;
        t->port = (int)p;
        *colon = 0;
    }
    if (strcmp(hp, "localhost") == 0) strcpy(hp, "127.0.0.1");
    struct in_addr a;
    if (inet_pton(AF_INET, hp, &a) != 1) {
        if (!allow_remote) {
            fprintf(stderr, "loadgen: %s: refusing a non-loopback target (only 127.0.0.0/8 and localhost; "
                            "--allow-remote lifts this)\n", url);
            return -1;
        }
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
        int e = getaddrinfo(hp, NULL, &hints, &res);
        if (e != 0 || !res) {
            fprintf(stderr, "loadgen: %s: cannot resolve %s: %s\n", url, hp, gai_strerror(e));
            return -1;
        }
        a = ((const struct sockaddr_in *)(const void *)res->ai_addr)->sin_addr;
        freeaddrinfo(res);
    }
    t->loopback = (ntohl(a.s_addr) >> 24) == 127;
    if (!t->loopback && !allow_remote) {
        fprintf(stderr, "loadgen: %s: refusing a non-loopback target (only 127.0.0.0/8 and localhost; "
                        "--allow-remote lifts this)\n", url);
        return -1;
    }
    /* the canonical dotted form of the parsed address (at most 15 bytes) */
    if (!inet_ntop(AF_INET, &a, t->host, sizeof t->host)) goto bad;
    snprintf(t->path, sizeof t->path, "%s", slash ? slash : "/");
    int n;
    if (t->proto == LG_PROTO_WS)
        n = snprintf(t->request, sizeof t->request,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n"
                     "User-Agent: certstream-loadgen\r\n\r\n",
                     t->path, t->host, t->port);
    else
        n = snprintf(t->request, sizeof t->request,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\nUser-Agent: certstream-loadgen\r\n\r\n",
                     t->path, t->host, t->port);
    if (n < 0 || (size_t)n >= sizeof t->request) goto bad;
    t->request_len = (size_t)n;
    return 0;
bad:
    fprintf(stderr, "loadgen: bad URL %s (want ws://127.0.0.1:PORT/PATH or http://127.0.0.1:PORT/sse?stream=S)\n",
            url);
    return -1;
}

/* ---- client lifecycle ---- */

static struct lg_class *cls_of(struct worker *w, struct client *c)
{
    return &w->rep->cls[c->cls];
}

static void log_error_once(struct worker *w, const char *what, int err)
{
    if (w->errors_logged++ < 5) fprintf(stderr, "loadgen: %s: %s\n", what, err ? strerror(err) : "");
}

/* Ends a client. reason < 0: the run ended (not a disconnect). */
static void client_end(struct worker *w, struct client *c, int reason)
{
    struct lg_class *k = cls_of(w, c);
    if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE || c->state == CS_TLS) {
        k->failed++;
        if (reason >= 0) k->reasons[reason]++;
        w->pending--;
        w->resolved++;
    } else if (c->state == CS_OPEN && reason >= 0) {
        k->disconnected++;
        k->reasons[reason]++;
    }
    lg_tls_free(c->tls);
    c->tls = NULL;
    if (c->fd >= 0) close(c->fd); /* close() also removes it from epoll */
    c->fd = -1;
    c->state = CS_DONE;
}

static int set_events(struct worker *w, struct client *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.u32 = (uint32_t)(c - w->cl)};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &e) != 0) {
        log_error_once(w, "epoll_ctl", errno);
        return -1;
    }
    return 0;
}

static void client_open(struct worker *w, struct client *c, int global_idx)
{
    const struct config *cfg = w->cfg;
    struct sockaddr_in src, dst;
    int one = 1;
    c->state = CS_CONNECTING;
    c->started_us = w->now_us;
    c->last_sse_id = -1;
    c->gidx = (uint32_t)global_idx;
    memset(c->logs, 0, sizeof c->logs);
    if (w->dense_next) memset(&w->dense_next[(size_t)(c - w->cl) * MAX_LOGS], 0, MAX_LOGS * sizeof(uint64_t));
    if (cfg->reconnect > 0) {
        /* uniform in [S/2, 3S/2): reconnects spread instead of in waves */
        double f = 0.5 + (double)rand_r(&w->rng) / ((double)RAND_MAX + 1.0);
        c->reconnect_at = w->now_us + (int64_t)(cfg->reconnect * f * 1e6);
    }
    w->pending++;
    cls_of(w, c)->clients++;
    const struct target *t = &cfg->urls[c->target];
    lg_parser_init(&c->p, (enum lg_proto)t->proto, w->accept);
    c->p.rsv1_ok = (uint8_t)cfg->deflate;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        log_error_once(w, "socket", errno);
        goto err;
    }
    /* Spread over 127.0.0.1..K so each source address has its own
     * ephemeral port range; NO_PORT lets connect() pick the port per
     * 4-tuple instead of reserving it at bind(). */
    if (t->loopback) {
        if (setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0) goto err_errno;
        memset(&src, 0, sizeof src);
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(global_idx % cfg->src_addrs));
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) goto err_errno;
    }
    memset(&dst, 0, sizeof dst);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)t->port);
    if (inet_pton(AF_INET, t->host, &dst.sin_addr) != 1) goto err;
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) goto err_errno;
    struct epoll_event e = {.events = EPOLLOUT, .data.u32 = (uint32_t)(c - w->cl)};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &e) != 0) goto err_errno;
    return;
err_errno:
    log_error_once(w, "connect", errno);
err:
    client_end(w, c, LG_R_CONNECT);
}

/* A client's own request: the target's path plus --query (every "%u"
 * replaced by the client's index modulo --query-count, so K distinct
 * server-side filters can be spread over the clients), plus the
 * permessage-deflate offer with --deflate. Length, or -1. */
static int client_request(const struct config *cfg, const struct target *t, uint32_t gidx, char *out, size_t cap)
{
    char q[600];
    size_t o = 0;
    if (cfg->query) {
        q[o++] = strchr(t->path, '?') ? '&' : '?';
        for (const char *s = cfg->query; *s && o + 12 < sizeof q; s++) {
            if (s[0] == '%' && s[1] == 'u') {
                o += (size_t)snprintf(q + o, sizeof q - o, "%u", gidx % (uint32_t)cfg->query_count);
                s++;
            } else {
                q[o++] = *s;
            }
        }
    }
    q[o] = 0;
    int n;
    if (t->proto == LG_PROTO_WS)
        n = snprintf(out, cap,
                     "GET %s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n%s"
                     "User-Agent: certstream-loadgen\r\n\r\n",
                     t->path, q, t->host, t->port,
                     cfg->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
    else
        n = snprintf(out, cap,
                     "GET %s%s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\nUser-Agent: certstream-loadgen\r\n\r\n",
                     t->path, q, t->host, t->port);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* Connected: send the request. */
static void client_connected(struct worker *w, struct client *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
    if (err) {
        log_error_once(w, "connect", err);
        client_end(w, c, LG_R_CONNECT);
        return;
    }
    const struct target *t = &w->cfg->urls[c->target];
    if (t->tls && c->state == CS_CONNECTING) {
        c->tls = lg_tls_new(c->fd);
        if (!c->tls) {
            client_end(w, c, LG_R_CONNECT);
            return;
        }
        c->state = CS_TLS;
    }
    if (c->state == CS_TLS) {
        int h = lg_tls_handshake(c->tls);
        if (h < 0) {
            log_error_once(w, "TLS handshake", 0);
            client_end(w, c, LG_R_CONNECT);
        } else if (h > 0) {
            set_events(w, c, h == 1 ? EPOLLIN | EPOLLRDHUP : EPOLLOUT);
            return;
        }
        if (h != 0) return;
    }
    const char *req = t->request;
    size_t req_len = t->request_len;
    char own[1536];
    if (w->cfg->query || w->cfg->deflate) {
        int k = client_request(w->cfg, t, c->gidx, own, sizeof own);
        if (k < 0) {
            log_error_once(w, "request too long", 0);
            client_end(w, c, LG_R_CONNECT);
            return;
        }
        req = own;
        req_len = (size_t)k;
    }
    ssize_t n = c->tls ? lg_tls_write(c->tls, req, req_len) : write(c->fd, req, req_len);
    if (n != (ssize_t)req_len) {
        /* A fresh socket takes 300 bytes whole; anything else is an error. */
        log_error_once(w, "write request", n < 0 ? errno : 0);
        client_end(w, c, LG_R_CONNECT);
        return;
    }
    c->state = CS_HANDSHAKE;
    set_events(w, c, EPOLLIN | EPOLLRDHUP);
}

static void send_ctl(struct client *c, uint8_t opcode, const uint8_t *payload, size_t len)
{
    uint8_t f[2 + 4 + 125];
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (len > 125) len = 125;
    f[0] = (uint8_t)(0x80 | opcode);
    f[1] = (uint8_t)(0x80 | len);
    memcpy(f + 2, mask, 4);
    for (size_t i = 0; i < len; i++) f[6 + i] = payload[i] ^ mask[i & 3];
    /* Best effort: a control frame this small fits unless the peer is gone. */
    ssize_t n = c->tls ? lg_tls_write(c->tls, f, 6 + len) : write(c->fd, f, 6 + len);
    (void)n;
}

static int url_id(const char *u, size_t len)
{
    for (int i = 0; i < g_nlogs; i++)
        if (g_logs[i].url_len == len && memcmp(g_logs[i].url, u, len) == 0) return i + 1;
    if (g_nlogs == MAX_LOGS || len >= sizeof g_logs[0].url) return 0;
    memcpy(g_logs[g_nlogs].url, u, len);
    g_logs[g_nlogs].url_len = (uint16_t)len;
    return ++g_nlogs;
}

/* Position of cert_index v among the log's corpus entries, or -1. */
static long corpus_pos(const struct log_info *L, uint64_t v)
{
    long lo = 0, hi = L->n - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        if (L->idx[mid] == v) return mid;
        if (L->idx[mid] < v) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* With --corpus: the next entry of a log must be the next one in the
 * corpus; a jump forward is a gap; a jump back from the second half of the
 * log's entries into the first half is a new pass of the looping replay
 * (entries skipped around it are gaps); any other step back is out of
 * order. Without it: cert_index must rise per log within one
 * pass; a fall to or below the smallest index this client has seen for that
 * log is a new pass (the corpus starts again), any other fall or a repeat is
 * out of order, and gaps are not known. */
static void order_step(struct lg_class *k, const struct log_info *L, struct client_log *l, uint64_t idx)
{
    if (L->n) {
        long pn = corpus_pos(L, idx), pl = corpus_pos(L, l->last);
        if (pn < 0 || pl < 0) {
            k->unparsed++;
        } else if (pn == pl + 1) {
        } else if (pn > pl + 1) {
            k->gaps += (uint64_t)(pn - pl - 1);
        } else if (pl >= L->n / 2 && pn < (L->n + 1) / 2) {
            k->loop_restarts++;
            k->gaps += (uint64_t)(L->n - 1 - pl + pn);
        } else {
            k->out_of_order++;
        }
    } else if (idx > l->last) {
    } else if (idx <= l->min) {
        k->loop_restarts++;
        l->min = idx;
    } else {
        k->out_of_order++;
    }
    l->last = idx;
}

/* --dense (a growing log: every index exists and is published): per log,
 * each message must carry the index after the previous one; a jump forward
 * is a gap of that many entries, anything else is out of order. The first
 * message of a log on a connection sets where it starts. */
static void dense_step(uint64_t *next, struct lg_class *k, uint64_t idx)
{
    if (*next == 0) {
    } else if (idx + 1 > *next) {
        k->gaps += idx + 1 - *next;
    } else if (idx + 1 < *next) {
        k->out_of_order++;
    }
    *next = idx + 2;
}

static void check_order(struct worker *w, struct client *c, struct lg_class *k, const struct lg_result *r)
{
    uint64_t idx;
    const char *u;
    size_t ul;
    if (!lg_find_cert_index(r->tail, r->tail_len, &idx) || !lg_find_source_url(r->tail, r->tail_len, &u, &ul)) {
        k->unparsed++;
        return;
    }
    int id = url_id(u, ul);
    if (!id) return;
    if (w->dense_next) {
        dense_step(&w->dense_next[(size_t)(c - w->cl) * MAX_LOGS + (size_t)(id - 1)], k, idx);
        return;
    }
    struct client_log *free_slot = NULL;
    for (int i = 0; i < CLIENT_LOGS; i++) {
        struct client_log *l = &c->logs[i];
        if (l->id == id) {
            order_step(k, &g_logs[id - 1], l, idx);
            return;
        }
        if (!l->id && !free_slot) free_slot = l;
    }
    if (free_slot) {
        if (g_logs[id - 1].n && corpus_pos(&g_logs[id - 1], idx) < 0) k->unparsed++;
        free_slot->id = (uint16_t)id;
        free_slot->last = free_slot->min = idx;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reads a corpus (JSON array of records with log_url and cert_index). */
static int load_corpus(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    cJSON *root = NULL, *it;
    long n;
    if (!f) goto err_io;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) goto err_io;
    text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) goto err_io;
    fclose(f);
    f = NULL;
    root = cJSON_ParseWithLength(text, (size_t)n);
    if (!cJSON_IsArray(root)) goto err_fmt;
    cJSON_ArrayForEach(it, root)
    {
        const char *u = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "log_url"));
        cJSON *ci = cJSON_GetObjectItemCaseSensitive(it, "cert_index");
        if (!u || !cJSON_IsNumber(ci) || ci->valuedouble < 0) goto err_fmt;
        int id = url_id(u, strlen(u));
        if (!id) goto err_fmt;
        struct log_info *L = &g_logs[id - 1];
        uint64_t *ni = realloc(L->idx, sizeof *ni * (size_t)(L->n + 1));
        if (!ni) goto err_fmt;
        L->idx = ni;
        /* cert_index exceeds 2^31 but stays far below 2^53: exact in a double. */
        L->idx[L->n++] = (uint64_t)ci->valuedouble;
    }
    for (int i = 0; i < g_nlogs; i++) qsort(g_logs[i].idx, (size_t)g_logs[i].n, sizeof(uint64_t), cmp_u64);
    cJSON_Delete(root);
    free(text);
    return 0;
err_io:
    fprintf(stderr, "loadgen: cannot read %s: %s\n", path, strerror(errno));
    goto err;
err_fmt:
    fprintf(stderr, "loadgen: %s: want a JSON array of records with log_url and cert_index\n", path);
err:
    if (f) fclose(f);
    cJSON_Delete(root);
    free(text);
    return -1;
}

static int type_is(const char *t, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(t, want, len) == 0;
}

static void on_message(struct worker *w, struct client *c, const struct lg_result *r)
{
    struct lg_class *k = cls_of(w, c);
    const char *type = NULL;
    size_t tlen = 0;
    /* message_type wherever the server puts it (compressed bytes have none) */
    int typed = !r->compressed && lg_msg_type(r, &type, &tlen);
    if (typed && type_is(type, tlen, "heartbeat")) {
        k->heartbeats++;
        return;
    }
    k->msgs_total++;
    k->bytes_total += r->len;
    if (w->measuring) {
        k->msgs++;
        k->bytes += r->len;
        c->wmsgs++;
    }
    if (r->compressed) {   /* not inflated: no stamp or order to read */
        k->compressed++;
        return;
    }
    if (r->sse_id >= 0) {
        if (c->last_sse_id >= 0) {
            /* The server's ids rise but need not be consecutive (they may be
             * ring positions), so they show reordering, not gaps. */
            if (r->sse_id <= c->last_sse_id) k->sse_id_back++;
        }
        c->last_sse_id = r->sse_id;
    }
    if (typed && type_is(type, tlen, "certificate_update")) {
        int64_t seen;
        int exact;
        if (lg_msg_seen_us(r, &seen, &exact)) {
            if (w->measuring) {
                lg_hist_add(&k->lat, w->now_rt_us - seen);
                if (!exact) k->seen_ms++;
            }
        } else {
            k->no_stamp++;
            /* "seen" is neither near the start nor near the end: this
             * server puts it in the middle; look there from now on */
            if (r->len > LG_HEAD + LG_TAIL) c->p.scan_mid = 1;
        }
        check_order(w, c, k, r);
    }
}

static int close_reason(int code)
{
    switch (code) {
    case 0: return LG_R_SSE_END;
    case 1000: return LG_R_CLOSE_1000;
    case 1001: return LG_R_CLOSE_1001;
    case 1006: return LG_R_CLOSE_1006;
    case 1008: return LG_R_CLOSE_1008;
    case 1011: return LG_R_CLOSE_1011;
    default: return LG_R_CLOSE_OTHER;
    }
}

static int http_reason(int code)
{
    switch (code) {
    case 401: return LG_R_HTTP_401;
    case 404: return LG_R_HTTP_404;
    case 429: return LG_R_HTTP_429;
    case 503: return LG_R_HTTP_503;
    default: return LG_R_HTTP_OTHER;
    }
}

/* Feeds bytes to the parser and acts on every event. Returns -1 when the
 * client ended. */
static int client_feed(struct worker *w, struct client *c, const uint8_t *b, size_t n)
{
    size_t off = 0;
    while (off < n) {
        struct lg_result r;
        size_t used;
        enum lg_event ev = lg_parse(&c->p, b + off, n - off, &used, &r);
        off += used;
        switch (ev) {
        case LG_EV_NONE:
            if (used == 0) return 0;
            break;
        case LG_EV_OPEN:
            c->state = CS_OPEN;
            cls_of(w, c)->established++;
            w->pending--;
            w->resolved++;
            if (c->cls == LG_CLASS_STALLED) {
                /* Never read again; only notice when the server drops it. */
                if (set_events(w, c, EPOLLRDHUP) != 0) return client_end(w, c, LG_R_ERROR), -1;
                return 0;
            }
            break;
        case LG_EV_HTTP_FAIL:
            client_end(w, c, http_reason(r.code));
            return -1;
        case LG_EV_MSG:
            on_message(w, c, &r);
            break;
        case LG_EV_HEARTBEAT:
            cls_of(w, c)->heartbeats++;
            break;
        case LG_EV_PING:
            cls_of(w, c)->pings++;
            send_ctl(c, 0xA, r.ctl, r.ctl_len);
            break;
        case LG_EV_PONG:
            break;
        case LG_EV_CLOSE:
            if (c->p.proto == LG_PROTO_WS) send_ctl(c, 0x8, r.ctl, r.ctl_len >= 2 ? 2 : 0);
            client_end(w, c, close_reason(r.code));
            return -1;
        case LG_EV_ERROR:
            if (w->errors_logged++ < 5) fprintf(stderr, "loadgen: protocol error: %s\n", r.err);
            client_end(w, c, c->state == CS_OPEN ? LG_R_PROTOCOL : LG_R_HANDSHAKE_BAD);
            return -1;
        }
    }
    return 0;
}

static void client_readable(struct worker *w, struct client *c, uint32_t events)
{
    size_t max = SCRATCH;
    if (c->cls == LG_CLASS_SLOW && c->state == CS_OPEN) {
        /* Out of tokens: pause, unless the socket failed (EPOLLHUP and
         * EPOLLERR are reported even when paused): then read at full speed
         * to reach the error instead of spinning until the next refill. */
        if (events & (EPOLLHUP | EPOLLERR)) {
        } else if (c->tokens <= 0) {
            if (set_events(w, c, 0) == 0) c->paused = 1;
            return;
        } else if ((int64_t)max > c->tokens) {
            max = (size_t)c->tokens;
        }
    }
    ssize_t n = c->tls ? lg_tls_read(c->tls, w->scratch, max) : read(c->fd, w->scratch, max);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        client_end(w, c, c->state == CS_OPEN ? LG_R_ERROR : LG_R_HANDSHAKE_EOF);
        return;
    }
    if (n == 0) {
        client_end(w, c, c->state == CS_OPEN ? LG_R_EOF : LG_R_HANDSHAKE_EOF);
        return;
    }
    if (c->cls == LG_CLASS_SLOW && c->state == CS_OPEN) c->tokens -= n;
    if (w->measuring && c->state == CS_OPEN) cls_of(w, c)->wire_bytes += (uint64_t)n;
    int fed = client_feed(w, c, w->scratch, (size_t)n);
    /* TLS: a record read whole may hold more than max; epoll will not say so */
    if (fed == 0 && c->tls && c->state != CS_DONE && lg_tls_pending(c->tls)) client_readable(w, c, events);
}

static void on_event(struct worker *w, struct epoll_event *e)
{
    struct client *c = &w->cl[e->data.u32];
    if (c->state == CS_DONE || c->fd < 0) return;
    if (c->state == CS_CONNECTING || c->state == CS_TLS) {
        client_connected(w, c);
        return;
    }
    if (c->cls == LG_CLASS_STALLED && c->state == CS_OPEN) {
        client_end(w, c, LG_R_STALLED_DROPPED);
        return;
    }
    if (e->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) client_readable(w, c, e->events);
}

/* Slow clients: refill the token bucket, resume the paused ones. */
static void refill(struct worker *w, int64_t dt_us)
{
    const struct config *cfg = w->cfg;
    int64_t add = (int64_t)(cfg->slow_rate * (double)dt_us / 1e6);
    int64_t cap = (int64_t)(cfg->slow_rate / 10);
    if (cap < 4096) cap = 4096;
    for (int i = 0; i < w->nslow; i++) {
        struct client *c = &w->cl[w->slow_idx[i]];
        if (c->state != CS_OPEN) continue;
        c->tokens += add;
        if (c->tokens > cap) c->tokens = cap;
        if (c->paused && c->tokens > 0 && set_events(w, c, EPOLLIN | EPOLLRDHUP) == 0) c->paused = 0;
    }
}

static void check_timeouts(struct worker *w)
{
    int64_t limit = (int64_t)(w->cfg->hs_timeout * 1e6);
    for (int i = 0; i < w->opened; i++) {
        struct client *c = &w->cl[i];
        if ((c->state == CS_CONNECTING || c->state == CS_HANDSHAKE || c->state == CS_TLS) &&
            w->now_us - c->started_us > limit)
            client_end(w, c, LG_R_TIMEOUT);
    }
}

/* Appends a line to the --mark file; best effort (a script polls it). */
static void mark(const struct config *cfg, int widx, const char *what)
{
    if (!cfg->mark || widx != 0) return;
    FILE *f = fopen(cfg->mark, "a");
    if (!f) {
        fprintf(stderr, "loadgen: %s: %s\n", cfg->mark, strerror(errno));
        return;
    }
    fprintf(f, "%s\n", what);
    if (fclose(f) != 0) fprintf(stderr, "loadgen: %s: %s\n", cfg->mark, strerror(errno));
}

/* Spreads the slow and stalled clients evenly over the index range (and so
 * over targets and workers): the fractional parts of i * golden ratio are
 * evenly distributed in [0,1), so "below F" picks about N*F clients. */
static int client_class(int i, double stall_f, double slow_f)
{
    double u = fmod((double)i * 0.6180339887498949, 1.0);
    if (u < stall_f) return LG_CLASS_STALLED;
    if (u < stall_f + slow_f) return LG_CLASS_SLOW;
    return LG_CLASS_NORMAL;
}

/* --reconnect: a client whose time is up leaves politely and opens a new
 * connection to a target picked at random; one that failed or was dropped
 * is reopened at its time too. */
static void reconnect_due(struct worker *w)
{
    for (int i = 0; i < w->opened; i++) {
        struct client *c = &w->cl[i];
        if (w->now_us < c->reconnect_at) continue;
        if (c->state == CS_OPEN) {
            if (c->p.proto == LG_PROTO_WS) {
                static const uint8_t code[2] = {0x03, 0xe8};
                send_ctl(c, 0x8, code, 2);
            }
            cls_of(w, c)->reconnects++;
            client_end(w, c, -1);
        } else if (c->state != CS_DONE) {
            continue;   /* still connecting: the handshake timeout decides */
        }
        c->target = (uint8_t)(rand_r(&w->rng) % (unsigned)w->cfg->nurls);
        client_open(w, c, (int)c->gidx);
    }
}

/* --progress: one JSON line of running totals on stderr (per worker), so a
 * long run shows its state before it ends (latency: normal clients, since
 * the window opened). */
static void progress_line(struct worker *w, int widx, double t)
{
    const struct lg_class *k0 = &w->rep->cls[LG_CLASS_NORMAL], *k1 = &w->rep->cls[LG_CLASS_SLOW];
    int open = 0;
    for (int i = 0; i < w->opened; i++) open += w->cl[i].state == CS_OPEN;
    fprintf(stderr,
            "{\"progress_s\":%.1f,\"worker\":%d,\"open\":%d,\"established\":%llu,\"failed\":%llu,"
            "\"disconnected\":%llu,\"reconnects\":%llu,\"msgs\":%llu,\"gaps\":%llu,\"out_of_order\":%llu,"
            "\"close_1008\":%llu,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f}\n",
            t, widx, open, (unsigned long long)(k0->established + k1->established),
            (unsigned long long)(k0->failed + k1->failed), (unsigned long long)(k0->disconnected + k1->disconnected),
            (unsigned long long)(k0->reconnects + k1->reconnects), (unsigned long long)(k0->msgs_total + k1->msgs_total),
            (unsigned long long)(k0->gaps + k1->gaps), (unsigned long long)(k0->out_of_order + k1->out_of_order),
            (unsigned long long)(k0->reasons[LG_R_CLOSE_1008] + k1->reasons[LG_R_CLOSE_1008]),
            lg_hist_quantile(&k0->lat, 0.99) / 1e3, (double)k0->lat.max_us / 1e3);
}

/* The event loop of one worker: its share is every procs-th client. */
static int run_worker(const struct config *cfg, int widx, struct lg_report *rep)
{
    struct worker *w = calloc(1, sizeof *w);
    struct lg_lws *lws = NULL;
    int rc = -1;
    if (!w) return -1;
    w->cfg = cfg;
    w->rep = rep;
    w->ep = -1;
    atomic_init(&w->measuring_flag, 0);
    if (lg_ws_accept(WS_KEY, w->accept) != 0) goto err;
    for (int i = widx; i < cfg->clients; i += cfg->procs) w->n++;
    w->cl = calloc((size_t)(w->n ? w->n : 1), sizeof *w->cl);
    w->slow_idx = calloc((size_t)(w->n ? w->n : 1), sizeof *w->slow_idx);
    if (!w->cl || !w->slow_idx) goto err;
    if (cfg->dense && !(w->dense_next = calloc((size_t)(w->n ? w->n : 1) * MAX_LOGS, sizeof(uint64_t)))) goto err;
    w->rng = 0x9e3779b9u ^ (unsigned)widx ^ (unsigned)getpid();
    for (int j = 0; j < w->n; j++) {
        int gi = widx + j * cfg->procs;
        struct client *c = &w->cl[j];
        c->fd = -1;
        c->target = (uint8_t)(gi % cfg->nurls);
        c->cls = (uint8_t)client_class(gi, cfg->stall_fraction, cfg->slow_fraction);
        if (c->cls == LG_CLASS_SLOW) w->slow_idx[w->nslow++] = j;
    }
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep < 0) goto err;
    for (int u = 0; u < cfg->nurls; u++)
        if (cfg->urls[u].tls && lg_tls_global_init() != 0) {
            fprintf(stderr, "loadgen: TLS setup failed\n");
            goto err;
        }

    if (widx == 0 && cfg->lws_sample > 0) {
        if (cfg->urls[0].proto != LG_PROTO_WS) {
            rep->lws_sample_disabled = 1;
        } else {
            struct lg_lws_cfg lc = {.host = cfg->urls[0].host, .port = cfg->urls[0].port,
                                    .path = cfg->urls[0].path, .clients = cfg->lws_sample,
                                    .ramp = cfg->ramp, .out = &rep->cls[LG_CLASS_LWS],
                                    .measuring = &w->measuring_flag};
            lws = lg_lws_start(&lc);
            if (!lws) {
                fprintf(stderr, "loadgen: libwebsockets sample failed to start\n");
                rep->lws_sample_disabled = 1;
            }
        }
    }

    double rate = cfg->ramp / cfg->procs;
    int64_t t0 = clock_us(CLOCK_MONOTONIC);
    int64_t ramp_bound = t0 + (int64_t)(((double)w->n / rate + cfg->hs_timeout + 5) * 1e6);
    int64_t measure_start = -1, measure_end = -1, ramp_done = -1;
    int64_t last_refill = t0, last_timeout_scan = t0, last_reconnect_scan = t0, last_progress = t0;
    double cpu0 = cpu_seconds(), cpu_m0 = 0;
    struct epoll_event evs[512];

    for (;;) {
        w->now_us = clock_us(CLOCK_MONOTONIC);
        if (g_stop) break;
        /* Ramp. */
        int64_t want = (int64_t)((double)(w->now_us - t0) / 1e6 * rate) + 1;
        if (want > w->n) want = w->n;
        while (w->opened < want && w->pending < MAX_PENDING) {
            int j = w->opened++;
            client_open(w, &w->cl[j], widx + j * cfg->procs);
        }
        if (ramp_done < 0 && w->opened == w->n && (w->pending == 0 || cfg->reconnect > 0)) {
            ramp_done = w->now_us;
            measure_start = ramp_done + (int64_t)(cfg->warmup * 1e6);
        }
        if (ramp_done < 0 && w->now_us > ramp_bound) {
            /* Cannot happen with the timeouts, but never run unbounded. */
            ramp_done = w->now_us;
            measure_start = ramp_done;
        }
        if (measure_start >= 0 && !w->measuring && w->now_us >= measure_start) {
            w->measuring = 1;
            atomic_store(&w->measuring_flag, 1);
            measure_start = w->now_us;
            measure_end = measure_start + (int64_t)(cfg->duration * 1e6);
            cpu_m0 = cpu_seconds();
            rep->ramp_unresolved = (uint64_t)(w->n - w->resolved);
            mark(cfg, widx, "start");
        }
        if (w->measuring && w->now_us >= measure_end) break;
        if (w->nslow && w->now_us - last_refill >= 10000) {
            refill(w, w->now_us - last_refill);
            last_refill = w->now_us;
        }
        if (w->pending && w->now_us - last_timeout_scan >= 200000) {
            check_timeouts(w);
            last_timeout_scan = w->now_us;
        }
        if (cfg->reconnect > 0 && w->now_us - last_reconnect_scan >= 50000) {
            reconnect_due(w);
            last_reconnect_scan = w->now_us;
        }
        if (cfg->progress > 0 && w->now_us - last_progress >= (int64_t)(cfg->progress * 1e6)) {
            last_progress = w->now_us;
            progress_line(w, widx, (double)(w->now_us - t0) / 1e6);
        }
        int timeout = w->nslow ? 10 : (w->opened < w->n ? 5 : 100);
        int ne = epoll_wait(w->ep, evs, 512, timeout);
        if (ne < 0) {
            if (errno == EINTR) continue;
            log_error_once(w, "epoll_wait", errno);
            goto err;
        }
        w->now_rt_us = clock_us(CLOCK_REALTIME);
        w->now_us = clock_us(CLOCK_MONOTONIC);
        for (int i = 0; i < ne; i++) on_event(w, &evs[i]);
    }
    int64_t end = clock_us(CLOCK_MONOTONIC);
    atomic_store(&w->measuring_flag, 0);
    mark(cfg, widx, "end");
    double cpu1 = cpu_seconds();
    rep->ramp_s = ramp_done >= 0 ? (double)(ramp_done - t0) / 1e6 : (double)(end - t0) / 1e6;
    rep->window_s = w->measuring ? (double)(end - measure_start) / 1e6 : 0;
    rep->cpu_s = w->measuring ? cpu1 - cpu_m0 : 0;
    rep->cpu_total_s = cpu1 - cpu0;
    if (lws) lg_lws_stop(lws);
    lws = NULL;
    for (int c = 0; c < LG_CLASS_COUNT; c++) {
        if (rep->window_s > 0) {
            rep->msg_rate[c] = (double)rep->cls[c].msgs / rep->window_s;
            rep->byte_rate[c] = (double)rep->cls[c].bytes / rep->window_s;
        }
    }
    /* Per-client rates (stalled clients read nothing by design: left out) */
    for (int i = 0; i < w->n; i++) {
        struct client *c = &w->cl[i];
        cfg->client_rates[widx + i * cfg->procs] =
            c->cls == LG_CLASS_STALLED || rep->window_s <= 0 ? NAN : (double)c->wmsgs / rep->window_s;
    }
    /* Leave politely: a close frame to every open WebSocket. */
    for (int i = 0; i < w->opened; i++) {
        struct client *c = &w->cl[i];
        if (c->state == CS_OPEN && c->p.proto == LG_PROTO_WS) {
            static const uint8_t code[2] = {0x03, 0xe8};
            send_ctl(c, 0x8, code, 2);
        }
        if (c->state != CS_DONE && c->state != CS_FREE) client_end(w, c, -1);
    }
    rc = 0;
err:
    if (lws) lg_lws_stop(lws);
    if (w->ep >= 0) close(w->ep);
    free(w->cl);
    free(w->slow_idx);
    free(w->dense_next);
    free(w);
    return rc;
}

/* ---- output ---- */

static void print_latency_json(FILE *f, const struct lg_hist *h)
{
    fprintf(f,
            "{\"n\":%llu,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
            "\"mean_ms\":%.3f}",
            (unsigned long long)h->n, lg_hist_quantile(h, 0.5) / 1e3, lg_hist_quantile(h, 0.9) / 1e3,
            lg_hist_quantile(h, 0.99) / 1e3, lg_hist_quantile(h, 0.999) / 1e3, (double)h->max_us / 1e3,
            h->n ? (double)h->sum_us / (double)h->n / 1e3 : 0.0);
}

static void print_class_json(FILE *f, const struct lg_report *r, int ci)
{
    const struct lg_class *c = &r->cls[ci];
    fprintf(f,
            "{\"clients\":%llu,\"established\":%llu,\"failed\":%llu,\"disconnected\":%llu,"
            "\"msgs\":%llu,\"msgs_total\":%llu,\"msgs_per_s\":%.1f,\"bytes_per_s\":%.1f,"
            "\"heartbeats\":%llu,\"pings\":%llu,\"no_stamp\":%llu,\"unparsed\":%llu,"
            "\"out_of_order\":%llu,\"loop_restarts\":%llu,\"gaps\":%llu,\"sse_id_back\":%llu,\"latency\":",
            (unsigned long long)c->clients, (unsigned long long)c->established, (unsigned long long)c->failed,
            (unsigned long long)c->disconnected, (unsigned long long)c->msgs, (unsigned long long)c->msgs_total,
            r->msg_rate[ci], r->byte_rate[ci], (unsigned long long)c->heartbeats, (unsigned long long)c->pings,
            (unsigned long long)c->no_stamp, (unsigned long long)c->unparsed, (unsigned long long)c->out_of_order,
            (unsigned long long)c->loop_restarts, (unsigned long long)c->gaps,
            (unsigned long long)c->sse_id_back);
    print_latency_json(f, &c->lat);
    fprintf(f, ",\"reasons\":{");
    int first = 1;
    for (int k = 0; k < LG_R_COUNT; k++) {
        if (!c->reasons[k]) continue;
        fprintf(f, "%s\"%s\":%llu", first ? "" : ",", lg_reason_name[k], (unsigned long long)c->reasons[k]);
        first = 0;
    }
    fprintf(f, "}}");
}

/* Per-client rates over the window: order statistics and a histogram of
 * PC_BINS equal bins from 0 to the largest rate (or the target, if larger). */
#define PC_BINS 10
struct per_client {
    int n;
    double min, p10, median, p90, max, mean;
    double bin_w;
    int bins[PC_BINS];
    int fed;               /* >= 99 % of --target-rate */
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void per_client_stats(const struct config *cfg, struct per_client *pc)
{
    memset(pc, 0, sizeof *pc);
    double *v = malloc(sizeof *v * (size_t)(cfg->clients ? cfg->clients : 1));
    if (!v) return;
    double sum = 0;
    for (int i = 0; i < cfg->clients; i++)
        if (!isnan(cfg->client_rates[i])) sum += v[pc->n++] = cfg->client_rates[i];
    if (pc->n) {
        qsort(v, (size_t)pc->n, sizeof *v, cmp_double);
        pc->min = v[0];
        pc->max = v[pc->n - 1];
        pc->p10 = v[(pc->n - 1) / 10];
        pc->median = pc->n % 2 ? v[pc->n / 2] : (v[pc->n / 2 - 1] + v[pc->n / 2]) / 2;
        pc->p90 = v[(pc->n - 1) - (pc->n - 1) / 10];
        pc->mean = sum / pc->n;
        double top = pc->max > cfg->target_rate ? pc->max : cfg->target_rate;
        pc->bin_w = top > 0 ? top / PC_BINS : 1;
        for (int i = 0; i < pc->n; i++) {
            int b = (int)(v[i] / pc->bin_w);
            pc->bins[b >= PC_BINS ? PC_BINS - 1 : b]++;
            if (cfg->target_rate > 0 && v[i] >= 0.99 * cfg->target_rate) pc->fed++;
        }
    }
    free(v);
}

static void print_per_client_human(const struct config *cfg, const struct per_client *pc)
{
    if (!pc->n) return;
    printf("  per client (%d): msg/s min %.1f p10 %.1f median %.1f p90 %.1f max %.1f\n", pc->n, pc->min, pc->p10,
           pc->median, pc->p90, pc->max);
    if (cfg->target_rate > 0)
        printf("  fully fed (>= 99%% of %.1f msg/s): %d of %d\n", cfg->target_rate, pc->fed, pc->n);
    for (int b = 0; b < PC_BINS; b++)
        printf("    %8.1f - %8.1f%s msg/s: %d\n", b * pc->bin_w, (b + 1) * pc->bin_w, b == PC_BINS - 1 ? "+" : " ",
               pc->bins[b]);
}

static void print_per_client_json(const struct config *cfg, const struct per_client *pc)
{
    printf(",\"per_client\":{\"n\":%d,\"min\":%.2f,\"p10\":%.2f,\"median\":%.2f,\"p90\":%.2f,\"max\":%.2f,"
           "\"mean\":%.2f,",
           pc->n, pc->min, pc->p10, pc->median, pc->p90, pc->max, pc->mean);
    if (cfg->target_rate > 0) printf("\"target_rate\":%.2f,\"fully_fed\":%d,", cfg->target_rate, pc->fed);
    printf("\"histogram\":[");
    for (int b = 0; b < PC_BINS; b++)
        printf("%s{\"from\":%.2f,\"to\":%.2f,\"clients\":%d}", b ? "," : "", b * pc->bin_w, (b + 1) * pc->bin_w,
               pc->bins[b]);
    printf("]}");
}

static void print_human(const struct config *cfg, const struct lg_report *r, const struct lg_class *live,
                        double live_rate, double live_brate)
{
    printf("certstream-loadgen: %d clients (+%d lws) to %d target(s), %d worker process(es)\n", cfg->clients,
           cfg->lws_sample, cfg->nurls, cfg->procs);
    printf("  ramp %.2f s, measured window %.2f s\n", r->ramp_s, r->window_s);
    if (r->ramp_unresolved)
        printf("  WARNING: %llu clients were still connecting when the window opened (ramp bound hit)\n",
               (unsigned long long)r->ramp_unresolved);
    for (int ci = 0; ci < LG_CLASS_COUNT; ci++) {
        const struct lg_class *c = &r->cls[ci];
        if (!c->clients) continue;
        printf("  %-8s clients %llu established %llu failed %llu disconnected %llu | %.0f msg/s %.2f MB/s |"
               " lat p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms (n=%llu)\n",
               lg_class_name[ci], (unsigned long long)c->clients, (unsigned long long)c->established,
               (unsigned long long)c->failed, (unsigned long long)c->disconnected, r->msg_rate[ci],
               r->byte_rate[ci] / 1e6, lg_hist_quantile(&c->lat, 0.5) / 1e3, lg_hist_quantile(&c->lat, 0.99) / 1e3,
               lg_hist_quantile(&c->lat, 0.999) / 1e3, (double)c->lat.max_us / 1e3, (unsigned long long)c->lat.n);
        for (int k = 0; k < LG_R_COUNT; k++)
            if (c->reasons[k]) printf("           %s: %llu\n", lg_reason_name[k], (unsigned long long)c->reasons[k]);
    }
    printf("  non-stalled: %.0f msg/s, %.2f MB/s, out-of-order %llu, gaps %llu, loop restarts %llu,"
           " no seen %llu, latencies from a millisecond seen %llu\n",
           live_rate, live_brate / 1e6, (unsigned long long)live->out_of_order, (unsigned long long)live->gaps,
           (unsigned long long)live->loop_restarts, (unsigned long long)live->no_stamp,
           (unsigned long long)live->seen_ms);
    if (live->reconnects) printf("  reconnects %llu\n", (unsigned long long)live->reconnects);
    struct per_client pc;
    per_client_stats(cfg, &pc);
    print_per_client_human(cfg, &pc);
    printf("  loadgen CPU %.2f s in window (%.0f%% of one core), %.2f s total\n", r->cpu_s,
           r->window_s > 0 ? 100 * r->cpu_s / r->window_s : 0.0, r->cpu_total_s);
}

static void print_json(const struct config *cfg, const struct lg_report *r, const struct lg_class *live,
                       double live_rate, double live_brate)
{
    printf("{\"tool\":\"certstream-loadgen\",\"clients\":%d,\"procs\":%d,\"urls\":[", cfg->clients, cfg->procs);
    for (int i = 0; i < cfg->nurls; i++)
        printf("%s\"%s%s://%s:%d%s\"", i ? "," : "", cfg->urls[i].proto == LG_PROTO_WS ? "ws" : "http",
               cfg->urls[i].tls ? "s" : "",
               cfg->urls[i].host, cfg->urls[i].port, cfg->urls[i].path);
    printf("],\"ramp_s\":%.3f,\"window_s\":%.3f,\"cpu_s\":%.3f,\"cpu_pct\":%.1f,\"cpu_total_s\":%.3f,", r->ramp_s,
           r->window_s, r->cpu_s, r->window_s > 0 ? 100 * r->cpu_s / r->window_s : 0.0, r->cpu_total_s);
    printf("\"established\":%llu,\"failed\":%llu,\"disconnected\":%llu,\"msgs\":%llu,\"msgs_per_s\":%.1f,"
           "\"bytes_per_s\":%.1f,\"out_of_order\":%llu,\"gaps\":%llu,\"sse_id_back\":%llu,\"loop_restarts\":%llu,"
           "\"wire_bytes\":%llu,\"compressed\":%llu,\"latency\":",
           (unsigned long long)(r->cls[0].established + r->cls[1].established + r->cls[2].established),
           (unsigned long long)(r->cls[0].failed + r->cls[1].failed + r->cls[2].failed),
           (unsigned long long)live->disconnected, (unsigned long long)live->msgs, live_rate, live_brate,
           (unsigned long long)live->out_of_order, (unsigned long long)live->gaps,
           (unsigned long long)live->sse_id_back, (unsigned long long)live->loop_restarts,
           (unsigned long long)live->wire_bytes, (unsigned long long)live->compressed);
    print_latency_json(stdout, &live->lat);
    struct per_client pc;
    per_client_stats(cfg, &pc);
    print_per_client_json(cfg, &pc);
    printf(",\"seen_ms\":%llu,\"reconnects\":%llu,\"unparsed\":%llu,\"ramp_unresolved\":%llu,"
           "\"lws_sample_disabled\":%s,\"classes\":{",
           (unsigned long long)live->seen_ms, (unsigned long long)live->reconnects, (unsigned long long)live->unparsed,
           (unsigned long long)r->ramp_unresolved, r->lws_sample_disabled ? "true" : "false");
    for (int ci = 0; ci < LG_CLASS_COUNT; ci++) {
        printf("%s\"%s\":", ci ? "," : "", lg_class_name[ci]);
        print_class_json(stdout, r, ci);
    }
    printf("}}\n");
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: certstream-loadgen [options]\n"
            "  -n, --clients N         epoll clients (default 100)\n"
            "  -u, --url URL           ws://127.0.0.1:PORT/PATH or http://127.0.0.1:PORT/sse?stream=S;\n"
            "                          wss:// and https:// speak TLS (certificate not verified)\n"
            "                          repeatable, clients are spread round-robin (max %d)\n"
            "      --host H --port P   target when no --url (default 127.0.0.1:8080)\n"
            "      --stream S          lite|full|domains (default lite)\n"
            "      --sse               use SSE (/sse?stream=S) instead of WebSocket\n"
            "      --path P            request path (overrides --stream)\n"
            "  -r, --ramp R            new connections per second (default 1000)\n"
            "  -d, --duration S        measured window in seconds (default 10); the run also\n"
            "                          includes the ramp and --warmup, and is bounded\n"
            "      --warmup S          seconds between the end of the ramp and the window (default 1)\n"
            "      --src-addrs K       source addresses 127.0.0.1..127.0.0.K (default 16)\n"
            "      --slow-fraction F   fraction of clients reading at --slow-rate bytes/s\n"
            "      --slow-rate B       default 20000\n"
            "      --stall-fraction F  fraction of clients that stop reading after the handshake\n"
            "      --lws-sample K      K more clients through libwebsockets (WebSocket only)\n"
            "      --procs P           worker processes (default: enough for RLIMIT_NOFILE)\n"
            "      --handshake-timeout S  default 10\n"
            "      --mark FILE         append \"start\" / \"end\" lines when the window opens and\n"
            "                          closes (worker 0), for scripts sampling the server\n"
            "      --corpus FILE       the replayed corpus (golden JSON): finds skipped entries\n"
            "                          exactly; without it only reordering is detected\n"
            "      --query Q           append Q to every client's path (server-side filters); each\n"
            "                          %%u becomes the client's index modulo --query-count\n"
            "      --query-count K     distinct values of %%u (default 1)\n"
            "      --deflate           offer permessage-deflate; compressed messages are counted\n"
            "                          (and their bytes), not inflated, so they carry no latency\n"
            "      --dense             a growing log (every cert_index exists and is published, as\n"
            "                          from the fake log's --synthetic logs): count gaps exactly\n"
            "                          per connection and log, for any number of logs\n"
            "      --reconnect S       each client closes after S/2..3S/2 seconds (random) and\n"
            "                          reconnects to a --url picked at random; a failed or\n"
            "                          dropped client is reopened likewise (counted: reconnects)\n"
            "      --progress S        every S seconds, one JSON line of running totals on stderr\n"
            "                          per worker process (open, established, failed,\n"
            "                          disconnected, reconnects, msgs, gaps, out_of_order)\n"
            "      --target-rate R     the server's rate in msg/s: count the clients \"fully fed\"\n"
            "                          (at least 99 %% of R over the window)\n"
            "      --allow-remote      allow a target off loopback (a server on another machine;\n"
            "                          IPv4 or a name); the default refuses it: this tool floods\n"
            "  -q, --quiet             only the JSON line\n"
            "Targets must be loopback (127.0.0.0/8 or localhost) unless --allow-remote.\n"
            "Latency is taken from each message's \"seen\" wherever it is in the object: in\n"
            "microseconds with the server's --bench-stamp, else as precise as the server writes it\n"
            "(certstream servers: milliseconds).\n",
            MAX_URLS);
}

int main(int argc, char **argv)
{
    static struct config cfg = {.clients = 100, .ramp = 1000, .duration = 10, .warmup = 1, .hs_timeout = 10,
                                .src_addrs = 16, .slow_rate = 20000, .query_count = 1};
    const char *host = "127.0.0.1", *stream = "lite", *path = NULL;
    int port = 8080, sse = 0;
    enum { O_HOST = 256, O_PORT, O_STREAM, O_SSE, O_PATH, O_WARMUP, O_SRC, O_SLOWF, O_SLOWR, O_STALL, O_LWS,
           O_PROCS, O_HST, O_CORPUS, O_MARK, O_QUERY, O_QCOUNT, O_DEFLATE, O_DENSE, O_RECONNECT, O_PROGRESS,
           O_TARGET_RATE, O_ALLOW_REMOTE };
    static const struct option opts[] = {
        {"clients", 1, 0, 'n'}, {"url", 1, 0, 'u'}, {"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT},
        {"stream", 1, 0, O_STREAM}, {"sse", 0, 0, O_SSE}, {"path", 1, 0, O_PATH}, {"ramp", 1, 0, 'r'},
        {"duration", 1, 0, 'd'}, {"warmup", 1, 0, O_WARMUP}, {"src-addrs", 1, 0, O_SRC},
        {"slow-fraction", 1, 0, O_SLOWF}, {"slow-rate", 1, 0, O_SLOWR}, {"stall-fraction", 1, 0, O_STALL},
        {"lws-sample", 1, 0, O_LWS}, {"procs", 1, 0, O_PROCS}, {"handshake-timeout", 1, 0, O_HST},
        {"corpus", 1, 0, O_CORPUS}, {"mark", 1, 0, O_MARK}, {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'},
        {"query", 1, 0, O_QUERY}, {"query-count", 1, 0, O_QCOUNT}, {"deflate", 0, 0, O_DEFLATE},
        {"dense", 0, 0, O_DENSE}, {"reconnect", 1, 0, O_RECONNECT}, {"progress", 1, 0, O_PROGRESS},
        {"target-rate", 1, 0, O_TARGET_RATE}, {"allow-remote", 0, 0, O_ALLOW_REMOTE}, {0, 0, 0, 0}};
    const char *url_arg[MAX_URLS];
    int nurl_arg = 0;
    int o;
    while ((o = getopt_long(argc, argv, "n:u:r:d:qh", opts, NULL)) != -1) {
        switch (o) {
        case 'n': cfg.clients = atoi(optarg); break;
        case 'u':   /* parsed after the options: --allow-remote may come later */
            if (nurl_arg == MAX_URLS) {
                fprintf(stderr, "loadgen: at most %d --url\n", MAX_URLS);
                return 2;
            }
            url_arg[nurl_arg++] = optarg;
            break;
        case O_HOST: host = optarg; break;
        case O_PORT: port = atoi(optarg); break;
        case O_STREAM: stream = optarg; break;
        case O_SSE: sse = 1; break;
        case O_PATH: path = optarg; break;
        case 'r': cfg.ramp = atof(optarg); break;
        case 'd': cfg.duration = atof(optarg); break;
        case O_WARMUP: cfg.warmup = atof(optarg); break;
        case O_SRC: cfg.src_addrs = atoi(optarg); break;
        case O_SLOWF: cfg.slow_fraction = atof(optarg); break;
        case O_SLOWR: cfg.slow_rate = atof(optarg); break;
        case O_STALL: cfg.stall_fraction = atof(optarg); break;
        case O_LWS: cfg.lws_sample = atoi(optarg); break;
        case O_PROCS: cfg.procs = atoi(optarg); break;
        case O_HST: cfg.hs_timeout = atof(optarg); break;
        case O_CORPUS: cfg.corpus = optarg; break;
        case O_MARK: cfg.mark = optarg; break;
        case O_QUERY: cfg.query = optarg; break;
        case O_QCOUNT: cfg.query_count = atoi(optarg); break;
        case O_DEFLATE: cfg.deflate = 1; break;
        case O_DENSE: cfg.dense = 1; break;
        case O_RECONNECT: cfg.reconnect = atof(optarg); break;
        case O_PROGRESS: cfg.progress = atof(optarg); break;
        case O_TARGET_RATE: cfg.target_rate = atof(optarg); break;
        case O_ALLOW_REMOTE: cfg.allow_remote = 1; break;
        case 'q': cfg.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    for (int i = 0; i < nurl_arg; i++)
        if (parse_url(url_arg[i], &cfg.urls[cfg.nurls++], cfg.allow_remote) != 0) return 2;
    if (cfg.nurls == 0) {
        char url[512];
        const char *p = path;
        char pbuf[64];
        int is_full = strcmp(stream, "full") == 0, is_dom = strncmp(stream, "domains", 7) == 0;
        if (!is_full && !is_dom && strcmp(stream, "lite") != 0) {
            fprintf(stderr, "loadgen: --stream lite|full|domains\n");
            return 2;
        }
        if (!p && sse) {
            snprintf(pbuf, sizeof pbuf, "/sse?stream=%s", is_full ? "full" : is_dom ? "domains" : "lite");
            p = pbuf;
        } else if (!p) {
            p = is_full ? "/full-stream" : is_dom ? "/domains-only" : "/";
        }
        snprintf(url, sizeof url, "%s://%s:%d%s", sse ? "http" : "ws", host, port, p);
        if (parse_url(url, &cfg.urls[0], cfg.allow_remote) != 0) return 2;
        cfg.nurls = 1;
    }
    if (cfg.clients < 0 || cfg.clients > 10000000 || cfg.ramp <= 0 || cfg.duration <= 0 || cfg.duration > 86400 ||
        cfg.warmup < 0 || cfg.src_addrs < 1 || cfg.src_addrs > 250 || cfg.slow_fraction < 0 ||
        cfg.stall_fraction < 0 || cfg.slow_fraction + cfg.stall_fraction > 1 || cfg.slow_rate <= 0 ||
        cfg.lws_sample < 0 || cfg.lws_sample > 10000 || cfg.procs < 0 || cfg.procs > 64 || cfg.hs_timeout <= 0 ||
        cfg.query_count < 0 || cfg.query_count > 10000000 || (cfg.query && strlen(cfg.query) > 400) ||
        cfg.reconnect < 0 || cfg.reconnect > 86400 || cfg.progress < 0 || (cfg.dense && cfg.corpus) ||
        !(cfg.target_rate >= 0) || cfg.target_rate > 1e9) {
        fprintf(stderr, "loadgen: an option is out of range (see --help)\n");
        return 2;
    }

    if (cfg.corpus && load_corpus(cfg.corpus) != 0) return 2;

    /* Raise the descriptor limit to the hard limit; split over processes
     * when one cannot hold every client. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("getrlimit");
        return 1;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("setrlimit (continuing)");
    long per_proc = (long)rl.rlim_cur - 64 - cfg.lws_sample;
    if (per_proc < 16) per_proc = 16;
    if (cfg.procs == 0) cfg.procs = (int)((cfg.clients + per_proc - 1) / per_proc);
    if (cfg.procs < 1) cfg.procs = 1;
    if ((long)cfg.clients / cfg.procs + 1 > per_proc)
        fprintf(stderr, "loadgen: warning: %d clients per process exceed the descriptor limit %ld\n",
                cfg.clients / cfg.procs + 1, (long)rl.rlim_cur);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("sigaction");
        return 1;
    }

    size_t rsz = sizeof(struct lg_report) * (size_t)cfg.procs;
    struct lg_report *reps = mmap(NULL, rsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (reps == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    size_t csz = sizeof(double) * (size_t)(cfg.clients ? cfg.clients : 1);
    cfg.client_rates = mmap(NULL, csz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (cfg.client_rates == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (int i = 0; i < cfg.clients; i++) cfg.client_rates[i] = NAN;
    int rc = 0;
    if (cfg.procs == 1) {
        rc = run_worker(&cfg, 0, &reps[0]) == 0 ? 0 : 1;
    } else {
        pid_t pids[64];
        fflush(NULL);
        for (int i = 0; i < cfg.procs; i++) {
            pids[i] = fork();
            if (pids[i] < 0) {
                perror("fork");
                g_stop = 1;
                cfg.procs = i;
                rc = 1;
                break;
            }
            if (pids[i] == 0) _exit(run_worker(&cfg, i, &reps[i]) == 0 ? 0 : 1);
        }
        for (int i = 0; i < cfg.procs; i++) {
            int st;
            while (waitpid(pids[i], &st, 0) < 0) {
                if (errno != EINTR) {
                    perror("waitpid");
                    rc = 1;
                    break;
                }
                if (g_stop) kill(pids[i], SIGTERM);
            }
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
        }
    }
    struct lg_report *sum = calloc(1, sizeof *sum);
    struct lg_class *live = calloc(1, sizeof *live);
    if (!sum || !live) {
        perror("calloc");
        return 1;
    }
    for (int i = 0; i < cfg.procs; i++) lg_report_merge(sum, &reps[i]);
    lg_class_merge(live, &sum->cls[LG_CLASS_NORMAL]);
    lg_class_merge(live, &sum->cls[LG_CLASS_SLOW]);
    double live_rate = sum->msg_rate[LG_CLASS_NORMAL] + sum->msg_rate[LG_CLASS_SLOW];
    double live_brate = sum->byte_rate[LG_CLASS_NORMAL] + sum->byte_rate[LG_CLASS_SLOW];
    if (!cfg.quiet) print_human(&cfg, sum, live, live_rate, live_brate);
    print_json(&cfg, sum, live, live_rate, live_brate);
    fflush(stdout);
    free(sum);
    free(live);
    munmap(reps, rsz);
    munmap(cfg.client_rates, csz);
    return rc;
}
