/* writev_ceiling.c - writev-ceiling: the bare-loop reference for fanout.
 *
 * Accepts WebSocket (or SSE) clients on loopback, then writes the golden
 * corpus' messages, pre-framed, to every client with one writev per client
 * per batch, as fast as the sockets take them, and reports the messages per
 * second delivered and the CPU it used. It does nothing a server could skip
 * (no ring, no JSON, no parsing), so its rate is the ceiling of one process
 * on this machine; benchmarks report the server's delivered rate as a
 * fraction of it, measured with the same load generator as the reader.
 *
 * With --rate R it is instead a small stand-in server for developing and
 * testing the load generator: R messages/s published into a ring of pre-
 * framed records with a bench-mode `seen` stamp (microseconds) and SSE ids;
 * every client gets what lies between its cursor and the head in one
 * writev, and a client lapped by the ring is closed with 1008, like the
 * real server. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "lg_clock.h"
#include "lg_parse.h"

#define MAX_CORPUS 4096
#define REQ_MAX 2048
#define MAX_IOV 64

/* Formats: WebSocket or SSE framing of lite, full, domains. */
enum { F_WS_LITE = 0, F_WS_FULL, F_WS_DOM, F_SSE_LITE, F_SSE_FULL, F_SSE_DOM, F_COUNT };

struct msg {                 /* one corpus JSON message split around "seen": */
    char *json;
    size_t len;
    size_t seen_at;          /* offset after "seen":, or (size_t)-1 */
    size_t seen_len;         /* length of the original number */
};

struct rec {
    uint8_t *buf[F_COUNT];
    uint32_t len[F_COUNT];
};

struct client {
    int fd;
    int fmt;                 /* -1 while the request is being read */
    uint64_t cursor;         /* sequence of the next record to send */
    uint32_t offset;         /* bytes of that record already sent */
    uint16_t req_len;
    char *req;
};

static struct {
    struct msg corpus[3][MAX_CORPUS];  /* lite, full, domains */
    int ncorpus;
    size_t maxlen[3];
    struct rec *recs;        /* ceiling: ncorpus records; stand-in: ring */
    uint64_t nrecs;
    uint64_t head;           /* stand-in: next sequence to publish */
    struct client *cl;
    int ncl, capcl;
    int open;                /* clients past the handshake */
    int peak_open;           /* most clients open at once */
    int ep, lfd;
    char *spare;             /* spare stand-in ring buffers */
    double rate;
    uint64_t drop_every;     /* stand-in: skip every k-th corpus entry (tests gap detection) */
    uint64_t dropped;
    uint64_t delivered, bytes, lapped;
} g;

static volatile sig_atomic_t g_stop;

static void on_signal(int s)
{
    (void)s;
    g_stop = 1;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f) goto err;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) goto err;
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) goto err;
    buf[n] = 0;
    *len = (size_t)n;
    fclose(f);
    return buf;
err:
    if (f) fclose(f);
    free(buf);
    return NULL;
}

static int load_corpus(const char *path)
{
    static const char *keys[3] = {"expected_lite", "expected_full", "expected_domains_only"};
    size_t len;
    char *text = read_file(path, &len);
    cJSON *root = NULL;
    if (!text) {
        fprintf(stderr, "writev-ceiling: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsArray(root)) goto err;
    cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        if (g.ncorpus == MAX_CORPUS) break;
        for (int k = 0; k < 3; k++) {
            cJSON *s = cJSON_GetObjectItemCaseSensitive(it, keys[k]);
            if (!cJSON_IsString(s)) goto err;
            struct msg *m = &g.corpus[k][g.ncorpus];
            m->json = strdup(s->valuestring);
            if (!m->json) goto err;
            m->len = strlen(m->json);
            m->seen_at = (size_t)-1;
            char *p = strstr(m->json, "\"seen\":");
            if (p) {
                m->seen_at = (size_t)(p - m->json) + 7;
                size_t e = m->seen_at;
                while (e < m->len && ((m->json[e] >= '0' && m->json[e] <= '9') || m->json[e] == '.')) e++;
                m->seen_len = e - m->seen_at;
            }
            if (m->len + 32 > g.maxlen[k]) g.maxlen[k] = m->len + 32;
        }
        g.ncorpus++;
    }
    cJSON_Delete(root);
    if (g.ncorpus == 0) goto err_empty;
    return 0;
err:
    cJSON_Delete(root);
err_empty:
    fprintf(stderr, "writev-ceiling: %s: not a golden corpus (array of records with expected_*)\n", path);
    return -1;
}

/* Writes one framed record of message m into out; stamp_us >= 0 replaces
 * seen by the bench-mode form (10 digits '.' 6 digits). Returns length. */
static size_t frame(uint8_t *out, int fmt, const struct msg *m, int64_t stamp_us, uint64_t seq)
{
    char stamp[32];
    size_t sl = 0, body;
    int patch = stamp_us >= 0 && m->seen_at != (size_t)-1;
    if (patch) sl = (size_t)snprintf(stamp, sizeof stamp, "%lld.%06lld", (long long)(stamp_us / 1000000),
                                     (long long)(stamp_us % 1000000));
    body = patch ? m->len - m->seen_len + sl : m->len;
    size_t o = 0;
    if (fmt < F_SSE_LITE) {
        out[o++] = 0x81;
        if (body < 126) {
            out[o++] = (uint8_t)body;
        } else if (body < 65536) {
            out[o++] = 126;
            out[o++] = (uint8_t)(body >> 8);
            out[o++] = (uint8_t)body;
        } else {
            out[o++] = 127;
            for (int k = 7; k >= 0; k--) out[o++] = (uint8_t)((uint64_t)body >> (8 * k));
        }
    } else {
        o += (size_t)sprintf((char *)out, "id: %llu\ndata: ", (unsigned long long)seq);
    }
    if (patch) {
        memcpy(out + o, m->json, m->seen_at);
        o += m->seen_at;
        memcpy(out + o, stamp, sl);
        o += sl;
        size_t rest = m->seen_at + m->seen_len;
        memcpy(out + o, m->json + rest, m->len - rest);
        o += m->len - rest;
    } else {
        memcpy(out + o, m->json, m->len);
        o += m->len;
    }
    if (fmt >= F_SSE_LITE) {
        out[o++] = '\n';
        out[o++] = '\n';
    }
    return o;
}

static size_t fmt_cap(int fmt)
{
    return g.maxlen[fmt % 3] + 48;
}

static int alloc_recs(uint64_t n)
{
    size_t per = 0;
    for (int f = 0; f < F_COUNT; f++) per += fmt_cap(f);
    g.recs = calloc(n, sizeof *g.recs);
    g.spare = malloc(per * n);
    if (!g.recs || !g.spare) return -1;
    g.nrecs = n;
    char *p = g.spare;
    for (uint64_t i = 0; i < n; i++)
        for (int f = 0; f < F_COUNT; f++) {
            g.recs[i].buf[f] = (uint8_t *)p;
            p += fmt_cap(f);
        }
    return 0;
}

static void publish(int64_t stamp_us)
{
    struct rec *r = &g.recs[g.head % g.nrecs];
    if (g.drop_every && (g.head + g.dropped) % g.drop_every == g.drop_every - 1) g.dropped++;
    int ci = (int)((g.head + g.dropped) % (uint64_t)g.ncorpus);
    for (int f = 0; f < F_COUNT; f++)
        r->len[f] = (uint32_t)frame(r->buf[f], f, &g.corpus[f % 3][ci], f % 3 == 2 ? -1 : stamp_us, g.head);
    g.head++;
}

static void client_close(struct client *c)
{
    if (c->fd < 0) return;
    close(c->fd);
    c->fd = -1;
    if (c->fmt >= 0) g.open--;
    free(c->req);
    c->req = NULL;
}

static int path_fmt(const char *path, size_t len, int *is_ws)
{
#define IS(s) (len == sizeof(s) - 1 && memcmp(path, s, len) == 0)
    *is_ws = 1;
    if (IS("/")) return F_WS_LITE;
    if (IS("/full-stream") || IS("/full-stream/")) return F_WS_FULL;
    if (IS("/domains-only") || IS("/domains-only/")) return F_WS_DOM;
    *is_ws = 0;
    if (IS("/sse") || IS("/sse?stream=lite")) return F_SSE_LITE;
    if (IS("/sse?stream=full")) return F_SSE_FULL;
    if (IS("/sse?stream=domains") || IS("/sse?stream=domains-only")) return F_SSE_DOM;
#undef IS
    return -1;
}

/* A response head on a fresh socket: it fits the empty send buffer, and if
 * the peer is gone the next read or writev reports it. */
static void send_text(struct client *c, const char *s)
{
    ssize_t n = write(c->fd, s, strlen(s));
    (void)n;
}

/* Reads the request; answers the upgrade or the event-stream head. */
static void client_request(struct client *c)
{
    ssize_t n = read(c->fd, c->req + c->req_len, REQ_MAX - 1 - c->req_len);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        client_close(c);
        return;
    }
    c->req_len = (uint16_t)(c->req_len + n);
    c->req[c->req_len] = 0;
    char *end = strstr(c->req, "\r\n\r\n");
    if (!end) {
        if (c->req_len >= REQ_MAX - 1) client_close(c);
        return;
    }
    char *sp1 = strchr(c->req, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    int is_ws, fmt = sp2 ? path_fmt(sp1 + 1, (size_t)(sp2 - sp1 - 1), &is_ws) : -1;
    if (fmt < 0) {
        send_text(c, "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 21\r\n\r\n"
                     "{\"error\":\"Not Found\"}");
        client_close(c);
        return;
    }
    char resp[256];
    if (is_ws) {
        char *k = strcasestr(c->req, "\r\nsec-websocket-key:"), key[64], acc[29];
        if (!k || sscanf(k + 20, " %63[^\r\n ]", key) != 1 || lg_ws_accept(key, acc) != 0) {
            send_text(c, "HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n");
            client_close(c);
            return;
        }
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n\r\n",
                 acc);
    } else {
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n");
    }
    send_text(c, resp);
    free(c->req);
    c->req = NULL;
    c->fmt = fmt;
    c->cursor = g.rate > 0 ? g.head : 0;
    c->offset = 0;
    if (++g.open > g.peak_open) g.peak_open = g.open;
}

/* One writev for a client: from its cursor, up to MAX_IOV records or the
 * head. Returns bytes written (0 if blocked or nothing to send). */
static size_t client_write(struct client *c, uint64_t head)
{
    struct iovec iov[MAX_IOV];
    int n = 0;
    uint64_t s = c->cursor;
    if (g.rate > 0 && head > g.nrecs && s < head - g.nrecs) {
        static const uint8_t close1008[] = {0x88, 0x0b, 0x03, 0xf0, 't', 'o', 'o', ' ', 's', 'l', 'o', 'w', '!'};
        if (c->fmt < F_SSE_LITE) {
            /* Best effort, like the server: a lapped client's buffer may be full. */
            ssize_t w = write(c->fd, close1008, sizeof close1008);
            (void)w;
        }
        g.lapped++;
        client_close(c);
        return 0;
    }
    for (; n < MAX_IOV && s < head; s++, n++) {
        const struct rec *r = &g.recs[s % g.nrecs];
        iov[n].iov_base = r->buf[c->fmt];
        iov[n].iov_len = r->len[c->fmt];
    }
    if (n == 0) return 0;
    iov[0].iov_base = (uint8_t *)iov[0].iov_base + c->offset;
    iov[0].iov_len -= c->offset;
    ssize_t w = writev(c->fd, iov, n);
    if (w < 0) {
        if (errno != EAGAIN) client_close(c);
        return 0;
    }
    size_t left = (size_t)w;
    for (int i = 0; i < n && left; i++) {
        if (left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            c->cursor++;
            c->offset = 0;
            g.delivered++;
        } else {
            c->offset += (uint32_t)left;
            left = 0;
        }
    }
    g.bytes += (uint64_t)w;
    return (size_t)w;
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(g.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "writev-ceiling: accept: %s\n", strerror(errno));
            return;
        }
        if (g.ncl == g.capcl) {
            /* Grows only while clients connect, never while sending. */
            int cap = g.capcl ? g.capcl * 2 : 1024;
            struct client *nc = realloc(g.cl, sizeof *nc * (size_t)cap);
            if (!nc) {
                close(fd);
                return;
            }
            g.cl = nc;
            g.capcl = cap;
        }
        struct client *c = &g.cl[g.ncl];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->fmt = -1;
        c->req = malloc(REQ_MAX);
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)g.ncl};
        if (!c->req || epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            free(c->req);
            close(fd);
            continue;
        }
        g.ncl++;
    }
}

static void handle_events(int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(g.ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u32 == UINT32_MAX) {
            accept_all();
            continue;
        }
        struct client *c = &g.cl[evs[i].data.u32];
        if (c->fd < 0 || !(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
        if (c->fmt < 0) client_request(c);
        else {
            /* Edge-triggered: drain until EAGAIN. */
            while (c->fd >= 0) {
                char buf[4096];
                ssize_t r = read(c->fd, buf, sizeof buf);
                if (r > 0) continue;
                if (r == 0 || errno != EAGAIN) client_close(c);
                break;
            }
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: writev-ceiling --corpus FILE [options]\n"
            "  --port P        listen on 127.0.0.1:P (default 8090)\n"
            "  --clients N     ceiling: start once N clients completed the handshake (default 1)\n"
            "  --wait S        ceiling: start after S seconds anyway (default 60)\n"
            "  --duration S    seconds of sending, then report and exit (default 10)\n"
            "  --rate R        stand-in mode: publish R messages/s with bench-mode seen stamps\n"
            "  --ring M        stand-in ring size in records (default 4096)\n"
            "  --drop-every K  stand-in: leave out every K-th corpus entry (a gap for tests)\n"
            "Prints one JSON line: messages/s delivered, bytes/s, CPU.\n");
}

int main(int argc, char **argv)
{
    const char *corpus = NULL;
    int port = 8090, want_clients = 1;
    double wait_s = 60, duration = 10;
    uint64_t ring = 4096;
    static const struct option opts[] = {{"corpus", 1, 0, 'c'},  {"port", 1, 0, 'p'}, {"clients", 1, 0, 'n'},
                                         {"wait", 1, 0, 'w'},    {"duration", 1, 0, 'd'}, {"rate", 1, 0, 'r'},
                                         {"ring", 1, 0, 'R'},    {"drop-every", 1, 0, 'D'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': corpus = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': want_clients = atoi(optarg); break;
        case 'w': wait_s = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'r': g.rate = atof(optarg); break;
        case 'R': ring = (uint64_t)strtoull(optarg, NULL, 10); break;
        case 'D': g.drop_every = (uint64_t)strtoull(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!corpus || port <= 0 || port > 65535 || duration <= 0 || g.rate < 0 || ring < 16 || ring > (1u << 20)) {
        usage(stderr);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("setrlimit (continuing)");
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || signal(SIGINT, on_signal) == SIG_ERR ||
        signal(SIGTERM, on_signal) == SIG_ERR) {
        perror("signal");
        return 1;
    }
    if (load_corpus(corpus) != 0) return 1;
    if (alloc_recs(g.rate > 0 ? ring : (uint64_t)g.ncorpus) != 0) {
        fprintf(stderr, "writev-ceiling: out of memory\n");
        return 1;
    }
    if (g.rate == 0) {
        /* Ceiling: the same bytes every time (seen as in the corpus). */
        for (g.head = 0; g.head < (uint64_t)g.ncorpus;) publish(-1);
    }

    struct sockaddr_in a;
    int one = 1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.lfd < 0 || g.ep < 0 || setsockopt(g.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(g.lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(g.lfd, 4096) != 0) {
        fprintf(stderr, "writev-ceiling: listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    struct epoll_event le = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, g.lfd, &le) != 0) {
        perror("epoll_ctl");
        return 1;
    }
    fprintf(stderr, "writev-ceiling: listening on 127.0.0.1:%d (%s)\n", port, g.rate > 0 ? "stand-in" : "ceiling");

    int64_t t0 = clock_us(CLOCK_MONOTONIC), start = -1, end = -1;
    double cpu0 = 0;
    if (g.rate > 0) start = t0;
    while (!g_stop) {
        int64_t t = clock_us(CLOCK_MONOTONIC);
        if (start < 0 && (g.open >= want_clients || t - t0 > (int64_t)(wait_s * 1e6))) start = t;
        if (start >= 0 && end < 0) {
            end = start + (int64_t)(duration * 1e6);
            cpu0 = cpu_seconds();
            g.delivered = g.bytes = 0;
        }
        if (end >= 0 && t >= end) break;
        if (start < 0) {
            handle_events(10);
            continue;
        }
        uint64_t head = UINT64_MAX;
        if (g.rate > 0) {
            uint64_t due = (uint64_t)((double)(t - start) / 1e6 * g.rate);
            int64_t rt = clock_us(CLOCK_REALTIME);
            while (g.head < due) publish(rt);
            head = g.head;
        }
        size_t progress = 0;
        for (int i = 0; i < g.ncl; i++) {
            struct client *c = &g.cl[i];
            if (c->fd < 0 || c->fmt < 0) continue;
            if (g.rate > 0) progress += client_write(c, head);
            else progress += client_write(c, c->cursor + MAX_IOV); /* endless: records repeat */
        }
        handle_events(g.rate > 0 ? 1 : (progress ? 0 : 5));
    }
    double cpu = cpu_seconds() - cpu0;
    double secs = end >= 0 ? (double)(clock_us(CLOCK_MONOTONIC) - start) / 1e6 : 0;
    printf("{\"tool\":\"writev-ceiling\",\"mode\":\"%s\",\"clients\":%d,\"window_s\":%.3f,\"msgs\":%llu,"
           "\"msgs_per_s\":%.1f,\"bytes_per_s\":%.1f,\"cpu_s\":%.3f,\"cpu_pct\":%.1f,\"lapped\":%llu}\n",
           g.rate > 0 ? "stand-in" : "ceiling", g.peak_open, secs, (unsigned long long)g.delivered,
           secs > 0 ? (double)g.delivered / secs : 0.0, secs > 0 ? (double)g.bytes / secs : 0.0, cpu,
           secs > 0 ? 100 * cpu / secs : 0.0, (unsigned long long)g.lapped);
    fflush(stdout);
    for (int i = 0; i < g.ncl; i++) client_close(&g.cl[i]);
    return 0;
}
