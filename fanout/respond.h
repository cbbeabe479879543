/* respond.h - one-shot HTTP responses (respond.c). */
#ifndef CS_FANOUT_RESPOND_H
#define CS_FANOUT_RESPOND_H

#include "fanout/conn.h"

/* A whole response; head_only leaves out the body (HEAD). */
void respond(struct conn *c, int status, const char *ctype, const char *extra, const char *body,
             size_t blen, bool head_only);
void respond_text(struct conn *c, int status, const char *extra, const char *text, bool head);
void respond_not_found(struct conn *c, bool head);
/* responds with b's bytes and frees b (an out-of-memory b drops c) */
void respond_jbuf(struct conn *c, int status, const char *ctype, struct jbuf *b, bool head);

#endif
