/* respond.h - one-shot HTTP responses (respond.c). */
#ifndef CS_FANOUT_RESPOND_H
#define CS_FANOUT_RESPOND_H

#include "fanout/conn.h"

/* A whole response; head_only leaves out the body (HEAD). */
void respond(struct conn *c, int status, const char *ctype, const char *extra, const char *body,
             size_t blen, bool head_only);
void respond_text(struct conn *c, int status, const char *extra, const char *text, bool head);
void respond_not_found(struct conn *c, bool head);
/* A response head given whole (no body follows), then close: HEAD on a
 * stream. */
void respond_head(struct conn *c, const char *head, size_t len);
/* responds with b's bytes and frees b (an out-of-memory b drops c) */
void respond_jbuf(struct conn *c, int status, const char *ctype, struct jbuf *b, bool head);
/* the same with extra header lines (each ending in CRLF) */
void respond_jbuf_extra(struct conn *c, int status, const char *ctype, const char *extra, struct jbuf *b,
                        bool head);

#endif
