/* web_page.c - the live page: a self-contained HTML file (web/index.html,
 * compiled in by web/embed.cmake) that connects to this server's own
 * WebSocket streams. The only thing filled in per server is one JSON object
 * after the marker: the stream paths and whether a token is needed. */
#include "fanout/web_page.h"

#include <string.h>

extern const unsigned char web_page_html[];
extern const size_t web_page_html_len;

void route_web_page(struct worker *w, struct jbuf *b)
{
    static const char marker[] = "/*CS_CONFIG*/";
    const struct config *cfg = w->cfg;
    const char *page = (const char *)web_page_html;
    const char *m = memmem(page, web_page_html_len, marker, sizeof marker - 1);
    const char *end = m ? memchr(m, ';', web_page_html_len - (size_t)(m - page)) : NULL;
    if (!m || !end) {   /* the page as built always has them */
        jb_put(b, page, web_page_html_len);
        return;
    }
    jb_put(b, page, (size_t)(m - page));
    jb_lit(b, "{\"lite\":");
    jb_cstr(b, cfg->streams.lite_path);
    jb_lit(b, ",\"full\":");
    jb_cstr(b, cfg->streams.full_path);
    jb_lit(b, ",\"domains\":");
    jb_cstr(b, cfg->streams.domains_path);
    const char *auth = cfg->auth.enabled ? ",\"auth\":true" : ",\"auth\":false";
    const char *qt = cfg->auth.allow_query_token ? ",\"query_token\":true}" : ",\"query_token\":false}";
    jb_put(b, auth, strlen(auth));
    jb_put(b, qt, strlen(qt));
    jb_put(b, end, web_page_html_len - (size_t)(end - page));
}
