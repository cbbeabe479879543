/* lg_lws.c - a sample of load-test clients driven by libwebsockets.
 *
 * Why only a sample: libwebsockets is an independent RFC 6455 client, so
 * the same numbers from it and from the epoll clients show that the epoll
 * clients parse the stream right. But libwebsockets is the bottleneck when
 * it carries the load: 200 full-stream clients offered 200,000 msg/s
 * (1.1 GB/s) by writev-ceiling --rate 1000 were all read by the epoll
 * clients at 43 % of one core (p99 1 ms), while 200 libwebsockets clients
 * used 100 % of a core for 42,000 msg/s and fell seconds behind. So the
 * bulk of the clients is the epoll client (loadgen.c). */
#include "lg_lws.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "lg_parse.h"

struct lg_lws {
    struct lg_lws_cfg cfg;
    struct lws_context *ctx;
    pthread_t thread;
    atomic_int stop;
    int started;
};

struct sess {
    char *buf;
    size_t len, cap;
    int open;
    int reason; /* disconnect reason seen before CLOSED, -1 none */
};

static int64_t now_rt_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_message(struct lg_lws *l, const char *m, size_t len)
{
    struct lg_class *c = l->cfg.out;
    static const char hb[] = "{\"message_type\":\"heartbeat\"";
    static const char cu[] = "{\"message_type\":\"certificate_update\"";
    if (len >= sizeof hb - 1 && memcmp(m, hb, sizeof hb - 1) == 0) {
        c->heartbeats++;
        return;
    }
    int measuring = atomic_load_explicit(l->cfg.measuring, memory_order_relaxed);
    c->msgs_total++;
    c->bytes_total += len;
    if (measuring) {
        c->msgs++;
        c->bytes += len;
    }
    if (len >= sizeof cu - 1 && memcmp(m, cu, sizeof cu - 1) == 0) {
        size_t t = len > LG_TAIL ? len - LG_TAIL : 0;
        int64_t seen;
        if (lg_find_seen_us(m + t, len - t, &seen)) {
            if (measuring) lg_hist_add(&c->lat, now_rt_us() - seen);
        } else {
            c->no_stamp++;
        }
    }
}

static int close_reason(const unsigned char *in, size_t len)
{
    int code = len >= 2 ? (in[0] << 8) | in[1] : 1005;
    switch (code) {
    case 1000: return LG_R_CLOSE_1000;
    case 1001: return LG_R_CLOSE_1001;
    case 1008: return LG_R_CLOSE_1008;
    case 1011: return LG_R_CLOSE_1011;
    default: return LG_R_CLOSE_OTHER;
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct lg_lws *l = lws_context_user(lws_get_context(wsi));
    struct sess *s = user;
    int stopping = l ? atomic_load(&l->stop) : 1;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        s->open = 1;
        s->reason = -1;
        l->cfg.out->established++;
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        l->cfg.out->failed++;
        l->cfg.out->reasons[LG_R_CONNECT]++;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (lws_is_first_fragment(wsi)) s->len = 0;
        if (s->len + len > s->cap) {
            size_t cap = s->cap ? s->cap : 16384;
            while (cap < s->len + len) cap *= 2;
            char *nb = realloc(s->buf, cap);
            if (!nb) return -1;
            s->buf = nb;
            s->cap = cap;
        }
        memcpy(s->buf + s->len, in, len);
        s->len += len;
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) on_message(l, s->buf, s->len);
        break;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        s->reason = close_reason(in, len);
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (s->open && !stopping) {
            l->cfg.out->disconnected++;
            l->cfg.out->reasons[s->reason >= 0 ? s->reason : LG_R_EOF]++;
        }
        s->open = 0;
        free(s->buf);
        s->buf = NULL;
        s->cap = s->len = 0;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"certstream", callback, sizeof(struct sess), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *run(void *arg)
{
    struct lg_lws *l = arg;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int opened = 0;
    while (!atomic_load(&l->stop)) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        double el = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
        int want = (int)(el * l->cfg.ramp) + 1;
        if (want > l->cfg.clients) want = l->cfg.clients;
        while (opened < want) {
            struct lws_client_connect_info ci;
            memset(&ci, 0, sizeof ci);
            ci.context = l->ctx;
            ci.address = l->cfg.host;
            ci.port = l->cfg.port;
            ci.path = l->cfg.path;
            ci.host = l->cfg.host;
            ci.origin = l->cfg.host;
            ci.protocol = NULL;
            ci.local_protocol_name = protocols[0].name;
            l->cfg.out->clients++;
            /* A NULL return was already reported through CONNECTION_ERROR
             * (counted there) or failed before any socket existed; either
             * way the client shows up as not established. */
            (void)lws_client_connect_via_info(&ci);
            opened++;
        }
        /* lws 4.1 ignores the timeout unless the loop is idle; cancel wakes it. */
        if (lws_service(l->ctx, 50) < 0) break;
    }
    return NULL;
}

struct lg_lws *lg_lws_start(const struct lg_lws_cfg *cfg)
{
    struct lg_lws *l = calloc(1, sizeof *l);
    struct lws_context_creation_info info;
    if (!l) return NULL;
    l->cfg = *cfg;
    atomic_init(&l->stop, 0);
    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = l;
    info.fd_limit_per_thread = (unsigned int)cfg->clients + 16;
    l->ctx = lws_create_context(&info);
    if (!l->ctx) goto err;
    if (pthread_create(&l->thread, NULL, run, l) != 0) goto err;
    l->started = 1;
    return l;
err:
    if (l->ctx) lws_context_destroy(l->ctx);
    free(l);
    return NULL;
}

void lg_lws_stop(struct lg_lws *l)
{
    if (!l) return;
    atomic_store(&l->stop, 1);
    lws_cancel_service(l->ctx);
    if (l->started) pthread_join(l->thread, NULL);
    lws_context_destroy(l->ctx);
    free(l);
}
