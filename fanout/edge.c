/* edge.c - see edge.h. */
#include "fanout/edge.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cidr.h"
#include "common/clock.h"
#include "common/log.h"
#include "fanout/accesslog.h"
#include "fanout/conn.h"
#include "fanout/fanout_internal.h"
#include "fanout/realaddr.h"
#include "fanout/respond.h"
#include "fanout/tls.h"
#include "shm/addrtable.h"
#include "shm/ratelimit.h"


/* ---- worker --------------------------------------------------------------- */

static int parse_list(const char *key, const char *text, struct cidr_list *l)
{
    char why[200];
    if (cidr_list_parse(text, strlen(text), l, why, sizeof why) == 0) return 0;
    log_error("%s: %s", key, why);   /* the configuration check has already refused this */
    return -1;
}

static void on_alog_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct edge_worker *e = arg;
    accesslog_flush(e->alog);
}

static void on_hup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    char why[300];
    if (w->edge->alog) {   /* logrotate moved the file: a new one at the path */
        if (accesslog_reopen(w->edge->alog, why, sizeof why) == 0)
            log_debug("access log reopened");
        else
            log_error("access log: cannot reopen %s; still writing to the old file", why);
    }
    if (!w->edge->tls) return;
    if (tls_server_reload(w->edge->tls, w->cfg->tls.cert_file, w->cfg->tls.key_file, why, sizeof why) == 0)
        log_info("TLS: certificate reloaded from %s; new handshakes use it", w->cfg->tls.cert_file);
    else
        log_error("TLS: certificate reload refused, keeping the old one: %s", why);
}

int edge_worker_init(struct worker *w, const struct fanout_params *p)
{
    struct edge_worker *e = calloc(1, sizeof *e);
    if (!e) return -1;
    w->edge = e;
    e->plain_fd = -1;
    e->at = p->addrs;
    e->rl = p->ratelimit;
    const struct config *cfg = w->cfg;
    if (parse_list("trusted_proxies", cfg->trusted_proxies, &e->trusted) < 0 ||
        parse_list("access.streams_allow", cfg->access.streams_allow, &e->streams_allow) < 0 ||
        parse_list("access.metrics_allow", cfg->access.metrics_allow, &e->metrics_allow) < 0)
        return -1;
    /* SIGHUP: the supervisor forwards it when TLS is on; a new certificate
     * for new handshakes (without TLS it is ignored, never fatal) */
    e->hup_ev = evsignal_new(w->base, SIGHUP, on_hup, w);
    if (!e->hup_ev || event_add(e->hup_ev, NULL) != 0) return -1;
    if (cfg->access_log.enabled) {
        char why[300];
        e->alog = accesslog_open(cfg->access_log.path, why, sizeof why);
        if (!e->alog) {
            log_error("access log: %s", why);
            return -1;
        }
        struct timeval sec = {1, 0};
        e->alog_ev = event_new(w->base, -1, EV_PERSIST, on_alog_timer, e);
        if (!e->alog_ev || event_add(e->alog_ev, &sec) != 0) return -1;
    }
    if (cfg->tls.cert_file && cfg->tls.cert_file[0]) {
        char why[300];
        e->tls = tls_server_new(cfg->tls.cert_file, cfg->tls.key_file,
                                cfg->tls.session_tickets ? cfg->tls.ticket_rotate_secs : 0, why, sizeof why);
        if (!e->tls) {
            log_error("TLS: %s", why);
            return -1;
        }
        if (cfg->tls.plain_port) {
            e->plain_fd = fanout_listen_socket(cfg->host, cfg->tls.plain_port);
            if (e->plain_fd < 0) return -1;
            e->plain_ev = event_new(w->base, e->plain_fd, EV_READ | EV_PERSIST, fanout_on_accept, w);
            if (!e->plain_ev || event_add(e->plain_ev, NULL) != 0) return -1;
            log_info("plain HTTP listener on %s:%u beside TLS", cfg->host, (unsigned)cfg->tls.plain_port);
        }
    }
    return 0;
}

int edge_worker_reload(struct worker *w)
{
    struct edge_worker *e = w->edge;
    if (!e) return -1;
    struct cidr_list *l = malloc(3 * sizeof *l);
    if (!l) return -1;
    const struct config *cfg = w->cfg;
    int rc = -1;
    if (parse_list("trusted_proxies", cfg->trusted_proxies, &l[0]) == 0 &&
        parse_list("access.streams_allow", cfg->access.streams_allow, &l[1]) == 0 &&
        parse_list("access.metrics_allow", cfg->access.metrics_allow, &l[2]) == 0) {
        e->trusted = l[0];
        e->streams_allow = l[1];
        e->metrics_allow = l[2];
        rc = 0;
    }
    free(l);
    return rc;
}

void edge_worker_drain(struct worker *w)
{
    struct edge_worker *e = w->edge;
    if (e && e->plain_fd >= 0) fanout_on_accept(e->plain_fd, EV_READ, w);
    edge_worker_stop(w);
}

void edge_worker_stop(struct worker *w)
{
    struct edge_worker *e = w->edge;
    if (!e) return;
    if (e->plain_ev) event_del(e->plain_ev);
    if (e->plain_fd >= 0 && close(e->plain_fd) != 0) log_debug("close: %s", strerror(errno));
    e->plain_fd = -1;
}

void edge_worker_free(struct worker *w)
{
    struct edge_worker *e = w->edge;
    if (!e) return;
    edge_worker_stop(w);
    if (e->plain_ev) event_free(e->plain_ev);
    if (e->hup_ev) event_free(e->hup_ev);
    if (e->alog_ev) event_free(e->alog_ev);
    accesslog_free(e->alog);   /* flushes: every connection has ended */
    tls_server_free(e->tls);
    free(e);
    w->edge = NULL;
}

/* ---- connections ------------------------------------------------------------ */

bool edge_accept(struct worker *w, int fd, const struct sockaddr *peer)
{
    (void)fd;
    struct edge_worker *e = w->edge;
    if (!e || !w->cfg->proxy_protocol) return true;
    uint8_t a[16];
    /* the PROXY header is believed only from the proxies we trust, and it is
     * required: anyone else could claim any address */
    if (cidr_addr_from_sockaddr(peer, a) == 0 && cidr_list_match(&e->trusted, a)) return true;
    edge_count(e->at, w->slot, EDGE_PROXY_REJECTED);
    char t[CIDR_ADDR_TEXT];
    cidr_addr_format(a, t);
    log_debug("refused %s: proxy_protocol is on and it is not in trusted_proxies", t);
    return false;
}

int edge_conn_start(struct conn *c, bool tls)
{
    struct worker *w = c->w;
    cidr_addr_from_sockaddr(&c->peer.sa, c->edge.peer);
    memcpy(c->edge.addr, c->edge.peer, 16);
    c->edge.start_ms = mono_ms();
    if (w->cfg->proxy_protocol) c->edge.flags |= EF_PROXY_WAIT;
    if (tls && w->edge && w->edge->tls) {
        c->edge.tls = tls_conn_new(w->edge->tls, c->fd);
        if (!c->edge.tls) {
            log_warn("out of memory for a TLS connection");
            return -1;
        }
    }
    return 0;
}

/* ---- requests ------------------------------------------------------------------- */

static void real_address(struct conn *c, const struct http_request *req)
{
    struct edge_worker *e = c->w->edge;
    memcpy(c->edge.addr, c->edge.peer, 16);
    if (!e || e->trusted.n == 0 || !cidr_list_match(&e->trusted, c->edge.peer)) return;
    const char *vals[HTTP_HEADERS_CAP];
    size_t lens[HTTP_HEADERS_CAP], n = 0;
    for (size_t i = 0; i < req->n_headers; i++)
        if (http_str_ieq(req->headers[i].name, "X-Forwarded-For")) {
            vals[n] = req->headers[i].value.p;
            lens[n++] = req->headers[i].value.len;
        }
    uint8_t a[16];
    if (n > 0) {
        if (xff_client(vals, lens, n, &e->trusted, a) == 0) memcpy(c->edge.addr, a, 16);
        return;
    }
    const struct http_str *xr = http_header_get(req, "X-Real-IP");
    if (xr && real_ip_parse(xr->p, xr->len, a) == 0) memcpy(c->edge.addr, a, 16);
}

static void refuse_log(struct conn *c, const char *what)
{
    if (log_get_level() <= LOG_DEBUG) {
        char t[CIDR_ADDR_TEXT];
        cidr_addr_format(c->edge.addr, t);
        log_debug("%s: %s", t, what);
    }
}

bool edge_request(struct conn *c, const struct http_request *req)
{
    struct worker *w = c->w;
    struct edge_worker *e = w->edge;
    bool first = c->edge.requests++ == 0;
    real_address(c, req);
    if (e && e->alog) {
        /* the access log names the last request of the connection */
        char *r = realloc(c->edge.req, req->method.len + 1 + ACCESSLOG_LINE_MAX / 2);
        if (r) {
            size_t m = req->method.len < 16 ? req->method.len : 16;
            memcpy(r, req->method.p, m);
            r[m] = ' ';
            accesslog_target(r + m + 1, ACCESSLOG_LINE_MAX / 2, req->target.p, req->target.len);
            c->edge.req = r;
        }
        c->edge.status = 0;
    }
    if (!e) return true;
    struct http_str path = req->path;
    /* /health stays open for load balancers: no list, no rate limit */
    if (http_str_eq(path, "/health") || http_str_eq(path, "/health/deep")) return true;
    bool metrics = http_str_eq(path, "/metrics");
    const struct cidr_list *allow = metrics ? &e->metrics_allow : &e->streams_allow;
    if (allow->n && !cidr_list_match(allow, c->edge.addr)) {
        edge_count(e->at, w->slot, metrics ? EDGE_REJECT_METRICS_ACL : EDGE_REJECT_STREAMS_ACL);
        refuse_log(c, metrics ? "not in access.metrics_allow" : "not in access.streams_allow");
        respond_text(c, 403, NULL, "Forbidden.\n", false);
        return false;
    }
    uint32_t cpm = w->cfg->rate_limit.connections_per_minute, retry = 1;
    if (first && cpm && e->rl &&
        !ratelimit_take(e->rl, c->edge.addr, mono_ms() * 1000u, cpm, w->cfg->rate_limit.burst, &retry)) {
        edge_count(e->at, w->slot, EDGE_REJECT_RATE);
        refuse_log(c, "rate limit");
        char hdr[48];
        snprintf(hdr, sizeof hdr, "Retry-After: %" PRIu32 "\r\n", retry);
        respond_text(c, 429, hdr, "Too many new connections; retry later.\n", false);
        return false;
    }
    return true;
}

int edge_limit_acquire(struct conn *c)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    if (!cfg->connection_limit.enabled) return 0;
    struct addrtable *at = w->edge ? w->edge->at : NULL;
    if (!at) {   /* no shared table (unit tests): the old bucketed count */
        if (!stats_conn_acquire(w->stats, w->slot, &c->peer.sa, cfg->connection_limit.max_connections,
                                cfg->connection_limit.per_ip_limit)) {
            stats_add(w->stats, w->slot, ST_CONN_REJECTED_LIMIT, 1);
            return 429;
        }
        c->flags |= CF_LIMIT_HELD;
        return 0;
    }
    if (!stats_conn_acquire(w->stats, w->slot, NULL, cfg->connection_limit.max_connections, 0)) {
        stats_add(w->stats, w->slot, ST_CONN_REJECTED_LIMIT, 1);
        refuse_log(c, "max_connections reached");
        return 429;
    }
    c->flags |= CF_LIMIT_HELD;
    uint8_t key[16];
    memcpy(key, c->edge.addr, 16);
    if (!cidr_addr_is_v4(key)) cidr_mask(key, cfg->connection_limit.ipv6_prefix);
    enum addr_result r = addrtable_acquire(at, w->slot, key, cfg->connection_limit.per_ip_limit, &c->edge.entry);
    if (r == ADDR_OK) {
        c->edge.flags |= EF_ADDR_HELD;
        return 0;
    }
    stats_conn_release(w->stats, w->slot, NULL);
    c->flags &= (uint8_t)~CF_LIMIT_HELD;
    if (r == ADDR_TABLE_FULL) {
        edge_count(at, w->slot, EDGE_REJECT_TABLE_FULL);
        refuse_log(c, "address table full");
        return 503;
    }
    stats_add(w->stats, w->slot, ST_CONN_REJECTED_LIMIT, 1);
    edge_count(at, w->slot, EDGE_REJECT_PER_ADDRESS);
    refuse_log(c, "per_ip_limit reached");
    return 429;
}

/* ---- metrics --------------------------------------------------------------------- */

/* One unlabelled sample with its HELP and TYPE; in OpenMetrics a counter's
 * family is named without its _total suffix (as stream_metrics.c). */
static void sample(struct jbuf *b, bool om, const char *name, const char *type, const char *help, uint64_t v)
{
    int n = (int)strlen(name);
    if (om && strcmp(type, "counter") == 0 && n > 6 && strcmp(name + n - 6, "_total") == 0) n -= 6;
    jb_printf(b, "# HELP %.*s %s\n# TYPE %.*s %s\n%s %" PRIu64 "\n", n, name, help, n, name, type, name, v);
}

void edge_metrics(struct worker *w, struct jbuf *b, bool om)
{
    struct edge_worker *e = w->edge;
    if (!e || !e->at) return;
    static const struct { enum edge_counter id; const char *name, *help; } m[] = {
        { EDGE_REJECT_TABLE_FULL, "certstream_edge_address_table_full_total",
          "Streams refused with 503 because the per-address table had no room for a new address." },
        { EDGE_REJECT_PER_ADDRESS, "certstream_edge_per_address_rejected_total",
          "Streams refused with 429 because their address reached connection_limit.per_ip_limit." },
        { EDGE_REJECT_RATE, "certstream_edge_rate_limited_total",
          "New connections refused with 429 by rate_limit.connections_per_minute." },
        { EDGE_REJECT_STREAMS_ACL, "certstream_edge_streams_forbidden_total",
          "Requests refused with 403 by access.streams_allow." },
        { EDGE_REJECT_METRICS_ACL, "certstream_edge_metrics_forbidden_total",
          "Requests refused with 403 by access.metrics_allow." },
        { EDGE_PROXY_REJECTED, "certstream_edge_proxy_rejected_total",
          "Connections closed for a missing or bad PROXY header, or from a peer not in trusted_proxies." },
        { EDGE_TLS_HANDSHAKES, "certstream_edge_tls_handshakes_total", "Completed TLS handshakes." },
        { EDGE_TLS_FAILURES, "certstream_edge_tls_handshake_failures_total",
          "TLS handshakes that failed (plain HTTP to the TLS port included)." },
        { EDGE_TLS_RESUMED, "certstream_edge_tls_resumed_total",
          "TLS handshakes that resumed a session from a ticket (counted in the handshakes too)." },
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        sample(b, om, m[i].name, "counter", m[i].help, edge_counter_sum(e->at, m[i].id));
    sample(b, om, "certstream_edge_addresses", "gauge", "Client addresses holding at least one stream.",
           addrtable_used(e->at));
}
