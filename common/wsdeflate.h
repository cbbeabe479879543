/* wsdeflate.h - one WebSocket message compressed for permessage-deflate
 * (RFC 7692) without context takeover: raw DEFLATE (zlib, 32 KiB window)
 * ended by a sync flush whose 00 00 ff ff tail is removed (7.2.1), so the
 * payload depends only on the message and can be sent to every client that
 * negotiated the extension. Used by each fanout worker's cache of frames
 * that stand alone (fanout/zalone.c): a message is compressed once per
 * format and worker. */
#ifndef CS_WSDEFLATE_H
#define CS_WSDEFLATE_H

#include <stddef.h>
#include <stdint.h>

struct wsdeflate;

/* level 1..9 (zlib). NULL when out of memory. */
struct wsdeflate *wsdeflate_new(int level);
void wsdeflate_free(struct wsdeflate *d);

/* Compresses in[0..n). Returns the payload length with *out pointing to it
 * (valid until the next call), or 0 when compression failed or would not
 * make the message smaller (send it uncompressed). No allocation after the
 * output buffer has grown to the largest message. */
size_t wsdeflate_message(struct wsdeflate *d, const void *in, size_t n, const uint8_t **out);
/* The same, also when the result is not smaller (a short message): for
 * streams where every message should be compressed. 0 only on failure. */
size_t wsdeflate_message_always(struct wsdeflate *d, const void *in, size_t n, const uint8_t **out);

#endif
