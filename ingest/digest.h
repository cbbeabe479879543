/* digest.h - SHA-1 and SHA-256 of a certificate, the two fingerprints every
 * message carries (and SHA-256 the dedup key). */
#ifndef CS_DIGEST_H
#define CS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

/* sha1 and/or sha256 may be NULL. */
void digest_cert(const uint8_t *p, size_t n, uint8_t sha1[20], uint8_t sha256[32]);

#endif
