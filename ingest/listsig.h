/* listsig.h - the log list's signature: Chrome signs all_logs_list.json and
 * log_list.json (RSA, PKCS#1 v1.5, SHA-256) and publishes the signature
 * beside each (all_logs_list.sig, log_list.sig) and the public key at
 * https://www.gstatic.com/ct/log_list/v3/log_list_pubkey.pem. */
#ifndef CS_LISTSIG_H
#define CS_LISTSIG_H

#include <stddef.h>
#include <stdint.h>

/* Google's log list key (PEM), built in; see listsig.c for its provenance. */
extern const char listsig_google_key_pem[];

/* Verifies sig over the list's exact bytes with a PEM public key (NULL =
 * Google's). 0 = valid; -1 with err filled (bad key, bad signature). */
int listsig_verify(const uint8_t *list, size_t len, const uint8_t *sig, size_t siglen, const char *pem,
                   char *err, size_t errlen);

/* The signature's URL: the list URL with its ".json" ending replaced by
 * ".sig" (or ".sig" appended). -1 if it does not fit. */
int listsig_url(const char *list_url, char *out, size_t outlen);

#endif
