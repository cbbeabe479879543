/* request.c - reading an HTTP request head and routing it: streams go to
 * session.c, the small endpoints to http_routes.c, answers out through
 * respond.c.
 *
 * The small endpoints keep HTTP/1.1 connections alive; pipelined requests
 * are not supported (a request followed by more bytes is answered and the
 * connection closed). Streams and errors always close. */
#include "fanout/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fanout/auth.h"
#include "fanout/cors.h"
#include "fanout/edge.h"
#include "fanout/respond.h"
#include "fanout/session.h"
#include "fanout/stream_metrics.h"
#include "fanout/web_page.h"
#include "fanout/ws_handshake.h"

/* The configured path p (streams.*_path), or p with a trailing "/". */
static bool path_matches(struct http_str path, const char *p)
{
    size_t n = strlen(p);
    if (path.len < n || memcmp(path.p, p, n) != 0) return false;
    return path.len == n || (n > 1 && path.len == n + 1 && path.p[n] == '/');
}

/* "<p>/example.json" ("/example.json" for "/"). */
static bool example_matches(struct http_str path, const char *p)
{
    static const char ex[] = "/example.json";
    size_t n = strcmp(p, "/") == 0 ? 0 : strlen(p);
    return path.len == n + sizeof ex - 1 && memcmp(path.p, p, n) == 0 &&
           memcmp(path.p + n, ex, sizeof ex - 1) == 0;
}

struct ws_route { const char *path, *name; enum ring_format f; };

static void stream_routes(const struct config *cfg, struct ws_route r[3])
{
    r[0] = (struct ws_route){ cfg->streams.lite_path, "lite stream", RING_LITE };
    r[1] = (struct ws_route){ cfg->streams.full_path, "full stream", RING_FULL };
    r[2] = (struct ws_route){ cfg->streams.domains_path, "domains-only stream", RING_DOMAINS };
}

/* /api/stats, /api/logs, /api/cert/{hash}: read-only JSON, no token needed
 * (like /health/deep), behind protocols.api, with CORS headers when the
 * request's Origin is allowed. */
static void handle_api(struct conn *c, const struct http_request *req, bool head)
{
    struct worker *w = c->w;
    struct http_str path = req->path;
    static const char cert_prefix[] = "/api/cert/";
    char cors[512];
    const char *extra = api_cors_headers(w->cfg, req, cors, sizeof cors);
    struct jbuf b;
    int status = 200;
    if (!w->cfg->protocols.api) {
        respond_not_found(c, head);
        return;
    }
    jb_init(&b);
    if (http_str_eq(path, "/api/stats")) {
        route_api_stats(w, &b);
    } else if (http_str_eq(path, "/api/logs")) {
        route_api_logs(w, &b);
    } else if (path.len > sizeof cert_prefix - 1 && memcmp(path.p, cert_prefix, sizeof cert_prefix - 1) == 0) {
        struct http_str h = { path.p + sizeof cert_prefix - 1, path.len - (sizeof cert_prefix - 1) };
        status = route_api_cert(w, h, &b);
    } else {
        status = 404;
        jb_lit(&b, "{\"error\":\"Not Found\"}");
    }
    respond_jbuf_extra(c, status, "application/json", extra, &b, head);
}

static void handle_request(struct conn *c, const struct http_request *req, const uint8_t *early,
                           size_t early_len)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    struct http_str path = req->path;
    bool head = http_str_eq(req->method, "HEAD");

    stats_add(w->stats, w->slot, ST_HTTP_REQUESTS, 1);
    if (http_str_eq(req->method, "OPTIONS")) {   /* CORS preflight */
        cors_preflight(c, req);
        return;
    }
    if (!head && !http_str_eq(req->method, "GET")) {
        respond_text(c, 405, "Allow: GET, HEAD\r\n", "Method Not Allowed.\n", false);
        return;
    }
    /* the live page: a plain GET (or HEAD) of "/"; an upgrade of "/" is
     * the lite stream */
    if (http_str_eq(path, "/") && cfg->protocols.web_page && (head || !ws_is_upgrade(req))) {
        struct jbuf b;
        jb_init(&b);
        route_web_page(w, &b);
        if (b.oom) {
            jb_free(&b);
            conn_free(c);
            return;
        }
        respond(c, 200, "text/html; charset=utf-8",
                "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
                "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
                "style-src 'unsafe-inline'; connect-src 'self' ws: wss:\r\n",
                b.p, b.len, head);
        jb_free(&b);
        return;
    }
    struct ws_route ws_routes[3];
    stream_routes(cfg, ws_routes);
    for (size_t i = 0; i < 3; i++) {
        if (!path_matches(path, ws_routes[i].path)) continue;
        if (!cfg->protocols.websocket || !stream_enabled(cfg, ws_routes[i].f)) {
            respond_not_found(c, head);
            return;
        }
        if (head || !ws_is_upgrade(req)) {
            char text[200];
            snprintf(text, sizeof text,
                     "Upgrade Required: %s (%s) is a WebSocket endpoint; connect with a WebSocket client.\n",
                     ws_routes[i].path, ws_routes[i].name);
            respond_text(c, 426, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", text, head);
            return;
        }
        start_websocket(c, req, ws_routes[i].f, early, early_len);
        return;
    }
    if (path_matches(path, cfg->streams.sse_path)) {
        if (!cfg->protocols.sse) respond_not_found(c, head);
        else start_sse(c, req, head);
        return;
    }
    if (http_str_eq(path, "/health")) {
        if (!cfg->protocols.health) respond_not_found(c, head);
        else respond_text(c, 200, NULL, "OK", head);
        return;
    }
    if (http_str_eq(path, "/health/deep")) {
        if (!cfg->protocols.health) {
            respond_not_found(c, head);
            return;
        }
        struct jbuf b;
        jb_init(&b);
        int status = 200;
        route_health_deep(w, &b, &status);
        respond_jbuf(c, status, "application/json", &b, head);
        return;
    }
    if (http_str_eq(path, "/metrics")) {
        if (!cfg->protocols.metrics) {
            respond_not_found(c, head);
            return;
        }
        struct jbuf b;
        jb_init(&b);
        bool om = metrics_wants_openmetrics(req);
        route_metrics(w, &b, om);
        respond_jbuf(c, 200, om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                : "text/plain; version=0.0.4; charset=utf-8", &b, head);
        return;
    }
    if (path.len >= 4 && memcmp(path.p, "/api", 4) == 0 && (path.len == 4 || path.p[4] == '/')) {
        handle_api(c, req, head);
        return;
    }
    for (size_t i = 0; i < 3; i++) {
        if (!example_matches(path, ws_routes[i].path)) continue;
        if (!cfg->protocols.example_json || !stream_enabled(cfg, ws_routes[i].f)) {
            respond_not_found(c, head);
            return;
        }
        struct jbuf b;
        char cors[512];
        jb_init(&b);
        route_example(w, ws_routes[i].f, &b);
        respond_jbuf_extra(c, 200, "application/json", api_cors_headers(cfg, req, cors, sizeof cors), &b, head);
        return;
    }
    if (http_str_eq(path, "/latest.json")) {
        /* CORS as for /api: a page sending its token is preflighted (cors.c) */
        char cors[512], extra[600];
        const char *ch = api_cors_headers(cfg, req, cors, sizeof cors);
        if (!auth_ok(w, req)) {
            stats_add(w->stats, w->slot, ST_AUTH_FAILURES, 1);
            snprintf(extra, sizeof extra, "WWW-Authenticate: Bearer\r\n%s", ch);
            respond_text(c, 401, extra, "Unauthorized.\n", head);
            return;
        }
        struct jbuf b;
        jb_init(&b);
        route_latest(w, &b);
        respond_jbuf_extra(c, 200, "application/json", ch, &b, head);
        return;
    }
    respond_not_found(c, head);
}

void request_error(struct conn *c, int status)
{
    stats_add(c->w->stats, c->w->slot, ST_HTTP_BAD_REQUESTS, 1);
    const char *text = status == 431 ? "Request header fields too large.\n"
                     : status == 408 ? "Request timeout.\n"
                     : status == 505 ? "HTTP version not supported.\n"
                                     : "Bad request.\n";
    respond_text(c, status, NULL, text, false);
}

void request_read(struct conn *c)
{
    struct worker *w = c->w;
    size_t max = w->cfg->limits.max_request_bytes ? w->cfg->limits.max_request_bytes : 8192;
    size_t cap = max + REQUEST_SLACK, old = 0, have;
    char stack[READ_CHUNK];
    char *buf;
    ssize_t n;

    if (!c->rbuf) {
        n = edge_recv(c, stack, cap < sizeof stack ? cap : sizeof stack);
        buf = stack;
    } else {
        old = c->rlen;
        n = edge_recv(c, c->rbuf + old, cap - old);
        buf = c->rbuf;
    }
    if (n == 0 || (n < 0 && !would_block(errno))) {
        conn_free(c);
        return;
    }
    if (n < 0) return;
    have = old + (size_t)n;
    if (c->rbuf) c->rlen = (uint32_t)have;

    struct http_limits lim = { max, w->cfg->limits.max_headers ? w->cfg->limits.max_headers : 64 };
    enum http_status st = HTTP_INCOMPLETE;
    /* parse only when the head may be complete (or for early rejection of
     * the first bytes), so a byte-at-a-time client costs linear time */
    if (old < 16 || have >= max || http_head_end(buf, have, old))
        st = http_parse_request(buf, have, &lim, &w->req);
    if (st == HTTP_INCOMPLETE) {
        if (!c->rbuf) {
            c->rbuf = malloc(cap);
            if (!c->rbuf) {
                conn_free(c);
                return;
            }
            memcpy(c->rbuf, stack, have);
            c->rlen = (uint32_t)have;
        }
        uint64_t now = mono_ms();
        if (now >= c->deadline_ms) {
            request_error(c, 408);
            return;
        }
        uint64_t left = c->deadline_ms - now;
        struct timeval tv = { .tv_sec = (time_t)(left / 1000), .tv_usec = (suseconds_t)(left % 1000) * 1000 };
        if (event_add(&c->rev, &tv) != 0) conn_free(c);
        return;
    }
    if (st != HTTP_OK) {
        request_error(c, st == HTTP_TOO_LARGE ? 431 : st == HTTP_BAD_VERSION ? 505 : 400);
        return;
    }
    /* persistent connection (RFC 9112 9.3), but no pipelining: a request
     * followed by more bytes is answered and the connection closed */
    const struct http_str *conn_hdr = http_header_get(&w->req, "Connection");
    bool keep = w->req.minor >= 1 ? !(conn_hdr && http_list_has_token(*conn_hdr, "close"))
                                  : (conn_hdr && http_list_has_token(*conn_hdr, "keep-alive"));
    c->flags &= (uint8_t)~(CF_KEEPALIVE | CF_REUSED);
    if (keep && have == w->req.head_len && !w->stopping) c->flags |= CF_KEEPALIVE;
    /* network edge: real address, allow-lists, rate limit */
    if (!edge_request(c, &w->req)) return;
    handle_request(c, &w->req, (const uint8_t *)buf + w->req.head_len, have - w->req.head_len);
}
