/* lg_lws.h - the libwebsockets sample of certstream-loadgen: a few clients
 * driven by libwebsockets in their own thread, as an independent WebSocket
 * implementation whose numbers can be compared with the epoll clients'. */
#ifndef CS_LG_LWS_H
#define CS_LG_LWS_H

#include <stdatomic.h>

#include "lg_stats.h"

struct lg_lws_cfg {
    const char *host;       /* numeric loopback address */
    int port;
    const char *path;
    int clients;
    double ramp;            /* connections per second */
    struct lg_class *out;   /* written only by the lws thread until joined */
    atomic_int *measuring;  /* set by the main loop while the window is open */
};

struct lg_lws;

/* Starts the thread; NULL on failure (the caller reports it). */
struct lg_lws *lg_lws_start(const struct lg_lws_cfg *cfg);
/* Closes the clients, joins the thread, frees everything. */
void lg_lws_stop(struct lg_lws *l);

#endif
