/* auth.h - the token check (auth.c). */
#ifndef CS_FANOUT_AUTH_H
#define CS_FANOUT_AUTH_H

#include "fanout/fanout_internal.h"

/* true when auth is off or the request carries one of the tokens */
bool auth_ok(const struct worker *w, const struct http_request *req);

#endif
