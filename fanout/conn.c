/* conn.c - the life of one connection below the protocols: the streaming
 * lists, teardown, re-arming the read side, the lingering close, the queue
 * of control bytes and the write event. Calls nothing above it in fanout/
 * (the layers are listed in fanout.c). */
#include "fanout/conn.h"
#include "fanout/deep.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "fanout/edge.h"
#include "fanout/filter.h"

/* ---- streaming lists --------------------------------------------------- */

void conn_list_add(struct conn **head, struct conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head) (*head)->prev = c;
    *head = c;
}

void conn_list_del(struct conn **head, struct conn *c)
{
    if (c->prev) c->prev->next = c->next;
    else *head = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

struct conn **conn_list_head(struct conn *c)
{
    return c->filter ? &c->filter->streams[c->proto][c->fmt] : &c->w->streams[c->proto][c->fmt];
}

enum stat_id conn_gauge_id(const struct conn *c)
{
    return (enum stat_id)((c->proto == PROTO_WS ? ST_CONN_WS_FULL : ST_CONN_SSE_FULL) + c->fmt);
}

/* ---- teardown ----------------------------------------------------------- */

void conn_free(struct conn *c)
{
    struct worker *w = c->w;
    if (c->state == CS_DEEP) deep_forget(c);
    event_del(&c->rev);
    event_del(&c->wev);
    if (c->flags & CF_LISTED) conn_list_del(conn_list_head(c), c);
    if (c->flags & CF_GAUGED) stats_add(w->stats, w->slot, conn_gauge_id(c), -1);
    if (c->filter) filter_release(w->filters, c->filter);
    if (c->deflate) {
        stats_add(w->stats, w->slot, ST_CLIENTS_DEFLATE, -1);
        w->deflate_clients--;
    }
    edge_conn_free(c);   /* limits held, TLS session */
    if (c->all_prev) c->all_prev->all_next = c->all_next;
    else w->all = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    if (close(c->fd) != 0) log_debug("close: %s", strerror(errno));
    free(c->rbuf);
    free(c->out);
    free(c);
    w->nconns--;
    if (w->stopping && w->nconns == 0) event_base_loopexit(w->base, NULL);
}

/* Stops the read side's normal handling and re-arms it with a timeout. The
 * callback stays the one the connection was created with (fanout.c's
 * on_read), so this layer does not depend on the ones above it. */
int rearm_read(struct conn *c, short flags, const struct timeval *tv)
{
    event_del(&c->rev);
    if (event_assign(&c->rev, c->w->base, c->fd, flags, event_get_callback(&c->rev), c) != 0 ||
        event_add(&c->rev, tv) != 0) {
        conn_free(c);
        return -1;
    }
    return 0;
}

/* Only a timer: the peer's input is finished but our output is not. */
int rearm_read_timeout(struct conn *c, const struct timeval *tv)
{
    event_del(&c->rev);
    if (event_assign(&c->rev, c->w->base, -1, 0, event_get_callback(&c->rev), c) != 0 || event_add(&c->rev, tv) != 0) {
        conn_free(c);
        return -1;
    }
    return 0;
}

/* Lingering close: shut the write side so the peer sees our last bytes and
 * EOF, then drain its input until it closes too (closing with unread input
 * would send a RST that can destroy our last bytes in flight). */
int conn_linger(struct conn *c)
{
    event_del(&c->wev);
    c->flags &= (uint8_t)~CF_WRITE_ARMED;
    edge_shutdown(c);    /* TLS: close_notify */
    if (shutdown(c->fd, SHUT_WR) != 0) {
        conn_free(c);
        return -1;
    }
    c->state = CS_LINGER;
    struct timeval tv = tv_secs(LINGER_TIMEOUT_SECS);
    return rearm_read(c, EV_READ | EV_PERSIST, &tv);
}

/* No more records for this client: what is queued (the rest of a partial
 * record, then control bytes) is written, then the connection lingers out. */
void enter_closing(struct conn *c)
{
    if (c->flags & CF_LISTED) {
        conn_list_del(conn_list_head(c), c);
        c->flags &= (uint8_t)~CF_LISTED;
    }
    c->state = CS_CLOSING;
    c->flags |= CF_CLOSE_AFTER;
}

/* Appends control bytes. Non-close frames may not use the reserve kept for a
 * Close frame; they are dropped when there is no room (a Ping or heartbeat is
 * redundant if the previous one has not left yet; RFC 6455 5.5.3 allows
 * answering only the latest Ping). */
bool ctl_append(struct conn *c, const void *p, size_t n, bool may_use_reserve)
{
    size_t limit = may_use_reserve ? CONN_CTL_CAP : CONN_CTL_CAP - WS_CLOSE_RESERVE;
    if (c->ctl_off == c->ctl_len) c->ctl_off = c->ctl_len = 0;
    if (c->ctl_len + n > limit && c->ctl_off > 0) {
        memmove(c->ctl, c->ctl + c->ctl_off, (size_t)(c->ctl_len - c->ctl_off));
        c->ctl_len = (uint16_t)(c->ctl_len - c->ctl_off);
        c->ctl_off = 0;
    }
    if (c->ctl_len + n > limit) return false;
    memcpy(c->ctl + c->ctl_len, p, n);
    c->ctl_len = (uint16_t)(c->ctl_len + n);
    return true;
}

void arm_write(struct conn *c)
{
    if (c->flags & CF_WRITE_ARMED) return;
    if (event_add(&c->wev, NULL) == 0) c->flags |= CF_WRITE_ARMED;
}

void disarm_write(struct conn *c)
{
    if (!(c->flags & CF_WRITE_ARMED)) return;
    event_del(&c->wev);
    c->flags &= (uint8_t)~CF_WRITE_ARMED;
}

/* The response is out: wait for the next request on the same connection. */
int conn_keepalive(struct conn *c)
{
    if (c->w->stopping) return conn_linger(c);
    uint32_t rt = c->w->cfg->limits.request_timeout_secs ? c->w->cfg->limits.request_timeout_secs : 10;
    c->state = CS_REQUEST;
    c->flags = (uint8_t)((c->flags & ~CF_KEEPALIVE) | CF_REUSED);
    c->deadline_ms = mono_ms() + rt * 1000u;
    struct timeval tv = tv_secs(rt);
    return rearm_read(c, EV_READ | EV_PERSIST, &tv);
}
