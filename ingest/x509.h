/* x509.h - a lenient X.509 certificate walker for certstream messages.
 *
 * Why not mbedtls_x509_crt_parse_der: it copies the certificate, rejects
 * much of what CT logs hold (Ed25519 / RSA-PSS / DSA / unknown keys and
 * signature algorithms, duplicate extensions, odd times, v1 with
 * extensions, unknown critical extensions), and its name output mangles
 * UTF-8, so every field would need a second walk anyway. One walker on
 * mbedTLS's ASN.1 length decoding handles every certificate the same way,
 * copies nothing, and is several times faster; mbedTLS does the hashing.
 *
 * Strict on structure (every TLV must fit inside its parent), lenient on
 * content: an unreadable time is 0, a malformed extension is ignored, an
 * unknown algorithm is "unknown". x509_parse fails only when the
 * certificate, TBS, serial, names, validity or key are not where DER says
 * they must be. The result points into the DER buffer. */
#ifndef CS_X509_H
#define CS_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/jsonw.h"
#include "ingest/ctentry.h"

/* Name attributes a message reports, in message key order. */
enum { X509_C, X509_CN, X509_L, X509_O, X509_OU, X509_ST, X509_EMAIL, X509_NATTR };

struct x509_str { const uint8_t *p; size_t len; uint8_t tag; bool set; };
struct x509_name { struct x509_str a[X509_NATTR]; };

/* GeneralName kinds kept from subjectAltName (the context tag number). */
enum { X509_GN_EMAIL = 1, X509_GN_DNS = 2, X509_GN_IP = 7 };
struct x509_gn { const uint8_t *p; uint32_t len; uint8_t kind; };

#define X509_MAX_SAN 2048

enum {
    X509_EKU_SERVER = 1, X509_EKU_CLIENT = 2, X509_EKU_CODE = 4, X509_EKU_EMAIL = 8,
    X509_EKU_TIME = 16, X509_EKU_OCSP = 32, X509_EKU_ANY = 64,
};

struct x509_cert {
    struct ct_span der;          /* the whole certificate */
    struct ct_span tbs;          /* the TBSCertificate TLV */
    struct ct_span serial;       /* INTEGER content */
    struct ct_span spki;         /* SubjectPublicKeyInfo TLV */
    struct ct_span extensions;   /* content of the extensions SEQUENCE */
    const char *sigalg;          /* message text, e.g. "sha256, rsa" */
    int64_t not_before, not_after;
    struct x509_name subject, issuer;
    bool is_ca;
    bool has_bc, has_ku, has_eku, has_aki, has_ski, has_cp, has_aia, has_san, has_poison;
    uint16_t ku_bits;            /* bit 0 = digitalSignature ... bit 8 = decipherOnly */
    uint8_t eku;                 /* X509_EKU_* */
    struct ct_span aki_keyid, ski;
    struct ct_span cp;           /* certificatePolicies SEQUENCE content */
    struct ct_span aia;          /* authorityInfoAccess SEQUENCE content */
    size_t nsan;                 /* kept GeneralNames (email, DNS, IP) */
    struct x509_gn san[X509_MAX_SAN];
};

/* 0 ok, -1 not a certificate we can describe (err says why). */
int x509_parse(const uint8_t *der, size_t len, struct x509_cert *c, char *err, size_t errlen);

/* A name attribute's value as UTF-8 into b (JSON string body: escaped,
 * invalid bytes replaced). BMPString and UniversalString are transcoded. */
void x509_str_json(struct jbuf *b, const struct x509_str *s);

/* One TLV at *pp (moved past it); -1 if it does not fit before end. */
int x509_tlv(const uint8_t **pp, const uint8_t *end, uint8_t *tag, const uint8_t **content, size_t *len);

/* Dotted text of an OID's content bytes (JSON-safe ASCII). */
void x509_oid_text(struct jbuf *b, const uint8_t *p, size_t len);

/* Precertificate checks (RFC 6962 3.2): does tbs equal the TBS of precert
 * with the poison extension removed? 1 yes, 0 no, -1 precert unreadable. */
int x509_tbs_matches_precert(const uint8_t *tbs, size_t tbs_len, const uint8_t *precert, size_t precert_len);

#endif
