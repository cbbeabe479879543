/* certhash.h - certificate hashes in text (certhash.c). */
#ifndef CS_FANOUT_CERTHASH_H
#define CS_FANOUT_CERTHASH_H

#include <stddef.h>
#include <stdint.h>

/* Parses a SHA-256 (64 hex digits) or SHA-1 (40: the "sha1" and
 * "fingerprint" fields) hash, with or without ':' between bytes, any case.
 * Returns the byte length (32 or 20), or 0 if it is neither. */
size_t certhash_parse(const char *s, size_t len, uint8_t out[32]);

/* The leaf certificate's hash named field ("sha1" or "sha256") in a
 * full-stream or lite message; its byte length (20 or 32), or 0. */
size_t certhash_leaf(const char *json, size_t len, const char *field, uint8_t out[32]);

#endif
