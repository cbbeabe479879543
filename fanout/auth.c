/* auth.c - the token check for streams and /latest.json. */
#include "fanout/auth.h"

#include <string.h>
#include <strings.h>

#include "fanout/filter_query.h"

static bool token_equal(struct http_str a, const char *tok)
{
    size_t tl = strlen(tok), n = a.len > tl ? a.len : tl;
    unsigned char d = (unsigned char)(a.len != tl || tl == 0);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < a.len ? (unsigned char)a.p[i] : 0;
        unsigned char y = i < tl ? (unsigned char)tok[i] : 0;
        d |= x ^ y;
    }
    return d == 0;
}

/* Every token is compared in full, so timing does not reveal which or how
 * much matched. */
static bool any_token(const struct config *cfg, struct http_str t)
{
    bool ok = false;
    for (size_t i = 0; i < cfg->auth.n_tokens; i++)
        if (cfg->auth.tokens[i]) ok |= token_equal(t, cfg->auth.tokens[i]);
    return ok;
}

/* auth.allow_query_token: ?token=... (percent-decoded) is accepted too, for
 * browsers, which cannot set headers on a WebSocket. Off by default: a
 * token in a URL ends up in access logs, proxy logs and browser history. */
static bool query_token_ok(const struct config *cfg, const struct http_request *req)
{
    struct http_str v;
    char buf[1100];
    if (!cfg->auth.allow_query_token || !http_query_param(req->query, "token", &v) || v.len == 0 ||
        v.len >= sizeof buf)
        return false;
    long n = filter_query_unescape(v.p, v.len, buf, sizeof buf);
    return n > 0 && any_token(cfg, (struct http_str){ buf, (size_t)n });
}

/* The configured header with one of the tokens, with or without "Bearer ". */
bool auth_ok(const struct worker *w, const struct http_request *req)
{
    const struct config *cfg = w->cfg;
    if (!cfg->auth.enabled) return true;
    if (query_token_ok(cfg, req)) return true;
    const char *name = cfg->auth.header_name && *cfg->auth.header_name ? cfg->auth.header_name
                                                                        : "Authorization";
    const struct http_str *v = http_header_get(req, name);
    if (!v) return false;
    struct http_str t = *v;
    if (t.len >= 7 && strncasecmp(t.p, "Bearer ", 7) == 0) {
        t.p += 7;
        t.len -= 7;
        while (t.len && *t.p == ' ') { t.p++; t.len--; }
    }
    return any_token(cfg, t);
}
