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
/* Decodes base64 exactly as mbedtls_base64_decode does (same bytes, *olen
 * and return codes: 0, MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL with *olen = the
 * size needed, MBEDTLS_ERR_BASE64_INVALID_CHARACTER), but fast. mbedTLS's
 * decoder is constant-time (it must not leak secret keys through timing) and
 * costs ~65 % of ingesting an entry; CT log answers are public, so a plain
 * table lookup is safe here. Input that is whole 4-character groups of the
 * alphabet with at most two trailing '=' is decoded here; anything else
 * (line breaks, spaces, odd lengths, junk) is handed to mbedTLS, so the two
 * never disagree (checked on the corpus, on random input and by fuzz_b64). */
int b64_decode(uint8_t *dst, size_t dlen, size_t *olen, const char *src, size_t slen);
/* Decodes standard base64 into a malloc'd buffer (*out, *outlen).
 * 0 ok, -1 invalid input or no memory. */
int b64_decode_alloc(const char *s, size_t n, uint8_t **out, size_t *outlen);

#endif
