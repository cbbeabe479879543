/* cors.c - CORS preflight (cors.h). The Access-Control-Allow-Origin decision
 * is api_cors_headers' (api.c), the same for the preflight and for the
 * answer to the request that follows it. */
#include "fanout/cors.h"

#include <stdio.h>
#include <string.h>

#include "fanout/fanout_internal.h"
#include "fanout/respond.h"
#include "fanout/session.h"

/* How long a browser may reuse the answer: 2 hours, the most Chromium
 * honours (Firefox allows a day). */
#define CORS_MAX_AGE_SECS 7200

enum cors_target { CORS_NONE, CORS_ON, CORS_OFF };

/* "<stream path>/example.json" ("/example.json" for "/") of a stream. */
static bool is_example(struct http_str path, const char *p)
{
    static const char ex[] = "/example.json";
    size_t n = strcmp(p, "/") == 0 ? 0 : strlen(p);
    return path.len == n + sizeof ex - 1 && memcmp(path.p, p, n) == 0 &&
           memcmp(path.p + n, ex, sizeof ex - 1) == 0;
}

static enum cors_target target(const struct config *cfg, struct http_str path)
{
    if (http_str_eq(path, "/latest.json")) return CORS_ON;
    if (path.len >= 4 && memcmp(path.p, "/api", 4) == 0 && (path.len == 4 || path.p[4] == '/'))
        return cfg->protocols.api ? CORS_ON : CORS_OFF;
    const struct { const char *path; enum ring_format f; } ex[3] = {
        { cfg->streams.lite_path, RING_LITE }, { cfg->streams.full_path, RING_FULL },
        { cfg->streams.domains_path, RING_DOMAINS },
    };
    for (size_t i = 0; i < 3; i++)
        if (is_example(path, ex[i].path))
            return cfg->protocols.example_json && stream_enabled(cfg, ex[i].f) ? CORS_ON : CORS_OFF;
    return CORS_NONE;
}

void cors_preflight(struct conn *c, const struct http_request *req)
{
    const struct config *cfg = c->w->cfg;
    switch (target(cfg, req->path)) {
    case CORS_NONE:
        respond_text(c, 405, "Allow: GET, HEAD\r\n", "Method Not Allowed.\n", false);
        return;
    case CORS_OFF:
        respond_not_found(c, false);
        return;
    case CORS_ON:
        break;
    }
    char origin[600], head[1024];
    const char *allow = api_cors_headers(cfg, req, origin, sizeof origin);
    bool allowed = strncmp(allow, "Access-Control-Allow-Origin:", 28) == 0;
    int n;
    if (allowed)
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 204 No Content\r\n%s"
                     "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"
                     "Access-Control-Allow-Headers: %s\r\n"
                     "Access-Control-Max-Age: %d\r\n"
                     "Allow: GET, HEAD, OPTIONS\r\nConnection: close\r\n\r\n",
                     allow, cfg->auth.header_name, CORS_MAX_AGE_SECS);
    else   /* CORS off, or an Origin not listed: no Access-Control-* at all */
        n = snprintf(head, sizeof head, "HTTP/1.1 204 No Content\r\n%sAllow: GET, HEAD, OPTIONS\r\n"
                     "Connection: close\r\n\r\n", allow);
    if (n < 0 || (size_t)n >= sizeof head) {
        respond_text(c, 500, NULL, "Internal Server Error.\n", false);
        return;
    }
    respond_head(c, head, (size_t)n);
}
