/* wshdr.h - the header of an unmasked server-to-client WebSocket frame
 * (RFC 6455 5.2): FIN + opcode in the first byte (with RSV1 for a
 * permessage-deflate message, RFC 7692 6), the payload length in its
 * minimal encoding. Shared by the ring (frames written at publish), the
 * fanout worker's compressed frames and the edge's history reader. */
#ifndef CS_WSHDR_H
#define CS_WSHDR_H

#include <stddef.h>
#include <stdint.h>

#define WSHDR_TEXT 0x81u          /* FIN, Text */
#define WSHDR_TEXT_DEFLATE 0xC1u  /* FIN, RSV1 (compressed), Text */
#define WSHDR_MAX 10u

/* Writes the header at p (room for WSHDR_MAX bytes); returns its length. */
static inline size_t wshdr_put(uint8_t *p, uint8_t first, uint64_t n)
{
    p[0] = first;
    if (n < 126) {
        p[1] = (uint8_t)n;
        return 2;
    }
    if (n <= 0xffff) {
        p[1] = 126;
        p[2] = (uint8_t)(n >> 8);
        p[3] = (uint8_t)n;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++) p[2 + i] = (uint8_t)(n >> (56 - 8 * i));
    return 10;
}

#endif
