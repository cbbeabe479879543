/* web_page.h - the live page served at `/` (web_page.c). */
#ifndef CS_FANOUT_WEB_PAGE_H
#define CS_FANOUT_WEB_PAGE_H

#include "fanout/fanout_internal.h"

/* The page (web/index.html, compiled in) with this server's stream paths
 * and auth settings filled in. */
void route_web_page(struct worker *w, struct jbuf *b);

#endif
