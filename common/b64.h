/* b64.h - standard base64 (RFC 4648, with padding) encoding into a JSON
 * buffer. Encoding a certificate for `as_der` happens once per entry, so
 * it is table-driven and writes straight into the output buffer; decoding
 * (of log responses) uses mbedTLS. */
#ifndef CS_B64_H
#define CS_B64_H

#include <stddef.h>
#include <stdint.h>

#include "common/jsonw.h"

/* Appends base64(d) to b (no quotes). */
void b64_append(struct jbuf *b, const uint8_t *d, size_t n);
/* Decodes standard base64 into a malloc'd buffer (*out, *outlen).
 * 0 ok, -1 invalid input or no memory. */
int b64_decode_alloc(const char *s, size_t n, uint8_t **out, size_t *outlen);

#endif
