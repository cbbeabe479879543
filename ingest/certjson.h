/* certjson.h - the JSON of one certificate as certstream messages show it
 * (leaf_cert and chain elements; see docs/wire-format.md). */
#ifndef CS_CERTJSON_H
#define CS_CERTJSON_H

#include <stdint.h>

#include "common/jsonw.h"
#include "ingest/x509.h"

/* From '{' through "is_ca":bool (no closing brace): the keys a leaf and a
 * chain element share, in message order. absent_null: subject and issuer
 * carry every name key, null when absent (else absent keys are left out). */
void certjson_head(struct jbuf *b, const struct x509_cert *c, const uint8_t sha1[20], const uint8_t sha256[32],
                   bool absent_null);
/* ,"extensions":{...} (ctlPoisonByte when poison is true). */
void certjson_extensions(struct jbuf *b, const struct x509_cert *c, bool poison);
/* The all_domains array: subject CN (when non-empty and not a CA), then
 * SAN dNSNames in order, exact duplicates removed. */
void certjson_domains(struct jbuf *b, const struct x509_cert *c);
/* A whole chain element: head + extensions + '}'. */
void certjson_chain_element(struct jbuf *b, const struct x509_cert *c, const uint8_t sha1[20], const uint8_t sha256[32],
                            bool absent_null);

#endif
