/* ctapi.h - parsers for what CT logs serve: get-sth, get-entries, checkpoint.
 *
 * Pure functions over byte buffers (no I/O, no globals), so each one has a
 * fuzz target. The HTTP side lives in ingest.c.
 *   RFC 6962:        get-sth and get-entries JSON responses.
 *   static-ct-api:   the checkpoint (a signed note).
 * (Tile paths and TileLeaf decoding are in ctentry.h.)
 * Wire formats: test/data/PROTOCOLS.md sections 3-5. */
#ifndef CS_CTAPI_H
#define CS_CTAPI_H

#include <stddef.h>
#include <stdint.h>

#define CTAPI_ORIGIN_MAX 256

/* ---- RFC 6962 ---- */

struct ctapi_sth {
    uint64_t tree_size;
    uint64_t timestamp;          /* ms */
    uint8_t root_hash[32];
    uint8_t signature[600];      /* tree_head_signature: a DigitallySigned */
    size_t signature_len;
};

/* Parses a get-sth response. tree_size and timestamp are read as exact
 * integers (sizes exceed 2^31 and a double holds them only to 2^53). */
int ctapi_sth_parse(const char *json, size_t len, struct ctapi_sth *sth, char *err, size_t errlen);

struct ctapi_entry {
    const uint8_t *leaf_input;   /* decoded; points into the entries arena */
    size_t leaf_len;
    const uint8_t *extra_data;
    size_t extra_len;
    int bad;                     /* 1: missing field or bad base64 (count, skip) */
};

struct ctapi_entries {
    struct ctapi_entry *v;
    size_t n;
    uint8_t *arena;              /* decoded bytes of every entry */
};

/* Parses a get-entries response, keeping at most max entries. A response
 * that is not the expected JSON object is an error (-1: the request is
 * retried); a single entry with bad base64 is returned with bad = 1 so the
 * caller counts it and advances past it. Free with ctapi_entries_free. */
int ctapi_entries_parse(const char *json, size_t len, size_t max, struct ctapi_entries *out,
                        char *err, size_t errlen);
/* The scanner alone: 0, or -2 when the answer is not in the strict form it
 * reads (ctapi_entries_parse then uses cJSON). For tests. */
int ctapi_entries_parse_scan(const char *json, size_t len, size_t max, struct ctapi_entries *out);
/* The same with cJSON only: what ctapi_entries_parse falls back to for
 * answers outside the strict form its scanner reads. For tests. */
int ctapi_entries_parse_cjson(const char *json, size_t len, size_t max, struct ctapi_entries *out,
                              char *err, size_t errlen);
void ctapi_entries_free(struct ctapi_entries *e);

/* ---- static-ct-api ---- */

struct ctapi_checkpoint {
    char origin[CTAPI_ORIGIN_MAX];
    uint64_t tree_size;
    uint8_t root_hash[32];
    unsigned n_signatures;       /* signature lines seen (not verified) */
};

/* Parses a checkpoint note: origin line, decimal size (no leading zeros),
 * base64 32-byte root hash, optional extension lines, a blank line, then at
 * least one "\u2014 <name> <base64>" signature line. Signatures are checked
 * for form only; see docs/ingest.md. */
int ctapi_checkpoint_parse(const char *text, size_t len, struct ctapi_checkpoint *cp,
                           char *err, size_t errlen);

/* Verifies an RFC 6962 tree head signature: sig is a DigitallySigned
 * (hash 4 = SHA-256, signature 1 = RSA PKCS#1 v1.5 or 3 = ECDSA, vec2
 * signature) over TreeHeadSignature(v1, tree_hash, timestamp, tree_size,
 * root), checked with the log's DER SubjectPublicKeyInfo (the log list's
 * `key`). Returns 0 when valid, -1 otherwise (err says why). */
int ctapi_verify_tree_head(const uint8_t *spki, size_t spki_len, uint64_t timestamp, uint64_t tree_size,
                           const uint8_t root_hash[32], const uint8_t *sig, size_t sig_len,
                           char *err, size_t errlen);

/* Verifies a static-ct-api checkpoint with the log's key: finds the
 * signature line named `origin` whose key id is SHA-256(origin || 0x0A ||
 * 0x05 || SHA-256(spki))[0:4], and checks its RFC6962NoteSignature
 * (timestamp u64 || DigitallySigned) over the checkpoint's size and root.
 * Other signature lines (Ed25519, witnesses, grease) are ignored. */
int ctapi_checkpoint_verify(const char *text, size_t len, const struct ctapi_checkpoint *cp,
                            const uint8_t *spki, size_t spki_len, char *err, size_t errlen);

/* Lowercase hex of 32 bytes into out[65]. */
void ctapi_hex32(const uint8_t *in, char out[65]);

#endif
