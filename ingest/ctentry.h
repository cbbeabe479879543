/* ctentry.h - decoding of CT log entries: RFC 6962 get-entries items
 * (leaf_input = MerkleTreeLeaf, extra_data = chain or PrecertChainEntry) and
 * static-ct-api data tile entries (TileLeaf).
 *
 * Decoding copies nothing: a ct_entry points into the caller's buffers.
 * Every length field is checked against what remains before it is used, and
 * a structure must end exactly where its enclosing length says; anything
 * else is an error with a reason in err, never an over-read. */
#ifndef CS_CTENTRY_H
#define CS_CTENTRY_H

#include <stddef.h>
#include <stdint.h>

enum ct_entry_type { CT_X509_ENTRY = 0, CT_PRECERT_ENTRY = 1 };

/* More chain certificates than this are decoded (bounds-checked) but not kept. */
#define CT_MAX_CHAIN 16

struct ct_span { const uint8_t *p; size_t len; };

struct ct_entry {
    uint64_t timestamp_ms;          /* the log's timestamp of the entry */
    int type;                       /* enum ct_entry_type */
    struct ct_span timestamped_entry; /* the RFC 6962 TimestampedEntry bytes */
    const uint8_t *issuer_key_hash; /* precert: 32 bytes; else NULL */
    struct ct_span tbs;             /* precert: TBSCertificate from the leaf */
    struct ct_span extensions;      /* CtExtensions (may be empty) */
    int64_t leaf_index;             /* leaf_index extension, -1 if absent */
    /* The certificate the message describes: x509 leaf, or pre_certificate. */
    struct ct_span cert;
    /* RFC 6962: chain certificates (DER). */
    size_t nchain;                  /* number kept in chain[] */
    size_t nchain_total;            /* number in the entry */
    struct ct_span chain[CT_MAX_CHAIN];
    /* Tiles: chain fingerprints, 32 bytes each. */
    const uint8_t *fingerprints;
    size_t nfingerprints;
};

/* Formats a reason into err (when err is not NULL); returns -1, so error
 * paths can `return ct_fail(...)`. Shared by the decoders and the X.509 walker. */
int ct_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* 0 ok, -1 malformed (err says why). */
int ct_decode_rfc6962(const uint8_t *leaf_input, size_t leaf_len,
                      const uint8_t *extra_data, size_t extra_len,
                      struct ct_entry *e, char *err, size_t errlen);

/* Decodes the TileLeaf at p (at most n bytes); *consumed = its length. */
int ct_decode_tile_entry(const uint8_t *p, size_t n, size_t *consumed,
                         struct ct_entry *e, char *err, size_t errlen);

/* Path of data tile N relative to the monitoring prefix:
 * "tile/data/x001/234" or, for width 1..255, "tile/data/x001/234.p/W".
 * Returns snprintf's result. */
int ct_data_tile_path(char *buf, size_t len, uint64_t tile_index, unsigned width);

#endif
