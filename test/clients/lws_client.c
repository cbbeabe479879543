/* lws_client.c - cs-lws-client: a WebSocket test client built on
 * libwebsockets, an implementation independent of the server's own.
 *
 *   cs-lws-client [--heartbeats] [--timeout S] [--deflate] URL COUNT
 *
 * Connects to URL (ws://host:port/path), prints every received text
 * message on its own line until COUNT messages have arrived (heartbeats are
 * not printed or counted unless --heartbeats; --deflate offers
 * permessage-deflate with libwebsockets' own RFC 7692 extension), then closes with 1000 and
 * exits 0. Exit 1: connection failed or closed early (the close code is
 * printed on stderr); 2: usage; 3: timeout. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

static struct {
    long want, got;
    int heartbeats;
    int done;        /* 1 when the loop should end */
    int rc;
    int closing;     /* our close was requested */
    char *buf;
    size_t len, cap;
} g = {.rc = 1};

static int is_heartbeat(const char *m, size_t len)
{
    static const char hb[] = "{\"message_type\":\"heartbeat\"";
    return len >= sizeof hb - 1 && memcmp(m, hb, sizeof hb - 1) == 0;
}

static int on_message(struct lws *wsi)
{
    if (!g.heartbeats && is_heartbeat(g.buf, g.len)) return 0;
    if (fwrite(g.buf, 1, g.len, stdout) != g.len || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "cs-lws-client: write to stdout failed\n");
        g.rc = 1;
        g.done = 1;
        return -1;
    }
    if (++g.got >= g.want) {
        g.rc = 0;
        g.closing = 1;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"done", 4);
        return -1; /* lws sends the close frame and ends the connection */
    }
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        fprintf(stderr, "cs-lws-client: connection error: %s\n", in ? (const char *)in : "(unknown)");
        g.rc = 1;
        g.done = 1;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (lws_is_first_fragment(wsi)) g.len = 0;
        if (g.len + len > g.cap) {
            size_t cap = g.cap ? g.cap : 65536;
            while (cap < g.len + len) cap *= 2;
            char *nb = realloc(g.buf, cap);
            if (!nb) {
                fprintf(stderr, "cs-lws-client: out of memory\n");
                g.done = 1;
                return -1;
            }
            g.buf = nb;
            g.cap = cap;
        }
        memcpy(g.buf + g.len, in, len);
        g.len += len;
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0 && lws_frame_is_binary(wsi) == 0)
            return on_message(wsi);
        break;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (!g.closing)
            fprintf(stderr, "cs-lws-client: server closed with code %d after %ld messages\n",
                    len >= 2 ? (((const unsigned char *)in)[0] << 8) | ((const unsigned char *)in)[1] : 1005, g.got);
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!g.closing) fprintf(stderr, "cs-lws-client: connection closed after %ld messages\n", g.got);
        g.done = 1;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"cs-lws-client", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const struct lws_extension deflate_exts[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
    {NULL, NULL, NULL},
};

static void usage(void)
{
    fprintf(stderr, "usage: cs-lws-client [--heartbeats] [--timeout S] [--deflate] ws://HOST:PORT/PATH COUNT\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"heartbeats", 0, 0, 'b'}, {"timeout", 1, 0, 't'}, {"help", 0, 0, 'h'}, {"deflate", 0, 0, 'z'},
        {0, 0, 0, 0}};
    double timeout = 60;
    int o, deflate = 0;
    while ((o = getopt_long(argc, argv, "bt:hz", opts, NULL)) != -1) {
        switch (o) {
        case 'b': g.heartbeats = 1; break;
        case 'z': deflate = 1; break;
        case 't': timeout = atof(optarg); break;
        default: usage(); return 2;
        }
    }
    if (argc - optind != 2 || timeout <= 0) {
        usage();
        return 2;
    }
    char *end;
    g.want = strtol(argv[optind + 1], &end, 10);
    if (*end || g.want <= 0) {
        usage();
        return 2;
    }
    char url[1024];
    const char *proto, *addr, *path;
    int port;
    snprintf(url, sizeof url, "%s", argv[optind]);
    if (lws_parse_uri(url, &proto, &addr, &port, &path) != 0 || strcmp(proto, "ws") != 0) {
        fprintf(stderr, "cs-lws-client: want a ws:// URL\n");
        return 2;
    }
    char fullpath[1040];
    /* lws_parse_uri cuts the '/' off to end the address, except for "/". */
    snprintf(fullpath, sizeof fullpath, "%s%s", path[0] == '/' ? "" : "/", path);

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    if (deflate) info.extensions = deflate_exts;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "cs-lws-client: lws_create_context failed\n");
        return 1;
    }
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = ctx;
    ci.address = addr;
    ci.port = port;
    ci.path = fullpath;
    ci.host = addr;
    ci.origin = addr;
    ci.local_protocol_name = protocols[0].name;
    if (!lws_client_connect_via_info(&ci)) g.done = 1;

    struct timespec t0, t;
    double closing_at = -1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!g.done) {
        if (lws_service(ctx, 100) < 0) break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        double el = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
        /* Our close frame is out; give the server a second to answer it. */
        if (g.closing && closing_at < 0) closing_at = el;
        if (closing_at >= 0 && el - closing_at > 1.0) break;
        if (!g.closing && el > timeout) {
            fprintf(stderr, "cs-lws-client: timeout after %ld of %ld messages\n", g.got, g.want);
            g.rc = 3;
            break;
        }
    }
    lws_context_destroy(ctx);
    free(g.buf);
    return g.rc;
}
