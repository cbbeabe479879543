/* auth.c - the token check for streams and /latest.json. */
#include "fanout/auth.h"

#include <string.h>
#include <strings.h>

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

/* The configured header with one of the tokens, with or without "Bearer ";
 * every token is compared in full, so timing does not reveal which or how
 * much matched. */
bool auth_ok(const struct worker *w, const struct http_request *req)
{
    const struct config *cfg = w->cfg;
    if (!cfg->auth.enabled) return true;
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
    bool ok = false;
    for (size_t i = 0; i < cfg->auth.n_tokens; i++)
        if (cfg->auth.tokens[i]) ok |= token_equal(t, cfg->auth.tokens[i]);
    return ok;
}
