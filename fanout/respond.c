/* respond.c - one-shot HTTP responses (errors, the small endpoints): the
 * whole answer is built in one buffer and written by the pump. */
#include "fanout/respond.h"

#include <stdlib.h>
#include <string.h>

#include "fanout/pump.h"

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* A whole response. Successful answers (and 404/503) keep the connection
 * for another request when the client allows it (health checkers, metric
 * scrapers); errors close it. */
void respond(struct conn *c, int status, const char *ctype, const char *extra,
                    const char *body, size_t blen, bool head_only)
{
    struct jbuf b;
    jb_init(&b);
    bool keep = (c->flags & CF_KEEPALIVE) && (status == 200 || status == 404 || status == 503);
    if (!keep) c->flags &= (uint8_t)~CF_KEEPALIVE;
    jb_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Cache-Control: no-cache\r\nConnection: %s\r\n%s\r\n",
              status, reason_phrase(status), ctype, blen, keep ? "keep-alive" : "close",
              extra ? extra : "");
    if (!head_only) jb_put(&b, body, blen);
    if (b.oom) {
        jb_free(&b);
        conn_free(c);
        return;
    }
    free(c->rbuf);
    c->rbuf = NULL;
    c->out = b.p;
    c->out_len = b.len;
    c->out_off = 0;
    c->state = CS_RESPONSE;
    if (!keep) c->flags |= CF_CLOSE_AFTER;
    /* a client that never reads is dropped; input is ignored, except that
     * a kept-alive connection leaves its next request in the socket */
    struct timeval tv = tv_secs(CLOSING_TIMEOUT_SECS);
    if ((keep ? rearm_read_timeout(c, &tv) : rearm_read(c, EV_READ | EV_PERSIST, &tv)) != 0) return;
    conn_flush(c);
}

void respond_head(struct conn *c, const char *head, size_t len)
{
    char *out = malloc(len);
    if (!out) {
        conn_free(c);
        return;
    }
    memcpy(out, head, len);
    free(c->rbuf);
    c->rbuf = NULL;
    c->out = out;
    c->out_len = len;
    c->out_off = 0;
    c->state = CS_RESPONSE;
    c->flags = (uint8_t)((c->flags & ~CF_KEEPALIVE) | CF_CLOSE_AFTER);
    struct timeval tv = tv_secs(CLOSING_TIMEOUT_SECS);
    if (rearm_read(c, EV_READ | EV_PERSIST, &tv) != 0) return;
    conn_flush(c);
}

void respond_text(struct conn *c, int status, const char *extra, const char *text, bool head)
{
    respond(c, status, "text/plain; charset=utf-8", extra, text, strlen(text), head);
}

void respond_not_found(struct conn *c, bool head)
{
    static const char body[] = "{\"error\":\"Not Found\"}";
    respond(c, 404, "application/json", NULL, body, sizeof body - 1, head);
}

void respond_jbuf(struct conn *c, int status, const char *ctype, struct jbuf *b, bool head)
{
    if (b->oom) {
        jb_free(b);
        conn_free(c);
        return;
    }
    respond(c, status, ctype, NULL, b->p ? b->p : "", b->len, head);
    jb_free(b);
}

void respond_jbuf_extra(struct conn *c, int status, const char *ctype, const char *extra, struct jbuf *b,
                        bool head)
{
    if (b->oom) {
        jb_free(b);
        conn_free(c);
        return;
    }
    respond(c, status, ctype, extra, b->p ? b->p : "", b->len, head);
    jb_free(b);
}
