/* pipeline.h - one CT log entry in, three certstream messages out.
 *
 * decode (ctentry) -> X.509 walk (x509) -> SHA-1/SHA-256 -> render full,
 * lite and domains-only JSON in one pass (docs/wire-format.md). Chain
 * certificates are rendered once and reused from a bounded cache.
 *
 * A pipeline is single-threaded state: output buffers belong to it, stay
 * valid until the next render call on it, and are reused, so after warm-up
 * rendering an entry allocates nothing. */
#ifndef CS_PIPELINE_H
#define CS_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/ctentry.h"
#include "shm/ring.h"

struct pipeline;

struct pipeline_out {
    const char *json[3];     /* by enum ring_format: 0 full, 1 lite, 2 domains */
    size_t len[3];
    long seen_off[3];        /* offset of the seen number in json[f]; -1 if none */
    uint8_t leaf_sha256[32]; /* dedup key: SHA-256 of the leaf (or precert) DER */
    uint64_t timestamp_ms;   /* the log's timestamp of the entry */
    int entry_type;          /* enum ct_entry_type */
    /* Where the bytes repeat (ring_message.lite / .shared): lite is these
     * ranges of full (A C E of pipeline.c), and these ranges of full are
     * chain elements, the same bytes in every entry of that chain. */
    struct ring_span lite_of_full[3];
    size_t n_lite;
    struct ring_span chain_el[CT_MAX_CHAIN];
    size_t n_chain_el;
};

struct pipeline *pipeline_new(void);
void pipeline_free(struct pipeline *p);

/* Benchmark mode: seen is printed with exactly 6 decimals and fixed width
 * (10 digits '.' 6 digits, 17 bytes at seen_off) so it can be overwritten
 * in place. Off by default: seen is printed like every other float. */
void pipeline_set_fixed_seen(struct pipeline *p, bool on);

/* Absent subject/issuer name attributes (message_format.absent_name_fields):
 * true writes every key with null for absent ones (certstream-server-go and
 * the original server), false leaves them out (the Rust server's bytes, the
 * golden corpus). A new pipeline leaves them out. Set it before rendering.
 * 0, or -1 when out of memory (the setting is unchanged). */
int pipeline_set_absent_names(struct pipeline *p, bool null_form);

/* An RFC 6962 get-entries item (decoded from base64). log_url is printed as
 * source.url as given; cert_link is log_url without its trailing slash +
 * "/ct/v1/get-entries?start=<index>&end=<index>". 0 ok, -1 error. */
int pipeline_render_rfc6962(struct pipeline *p, const uint8_t *leaf_input, size_t leaf_len,
                            const uint8_t *extra_data, size_t extra_len,
                            uint64_t index, const char *log_name, const char *log_url, double seen,
                            struct pipeline_out *out, char *err, size_t errlen);

/* Finds an issuer certificate by SHA-256 fingerprint: 0 with der and len set
 * (valid until the render call returns), or -1 when unknown. */
typedef int (*pipeline_issuer_fn)(void *ctx, const uint8_t fingerprint[32], const uint8_t **der, size_t *len);
/* Where tile entries find the issuers their chain fingerprints name. */
void pipeline_set_issuer_lookup(struct pipeline *p, pipeline_issuer_fn lookup, void *ctx);

/* One static-ct-api TileLeaf: exactly the len bytes at entry (use
 * ct_decode_tile_entry to find the boundaries in a tile). Chain elements are
 * the issuers the lookup finds, in fingerprint order (an unknown one is left
 * out). cert_link is tile_url (the data tile URL) as given; source.url is
 * log_url as given. 0 ok, -1 error. */
int pipeline_render_tile_entry(struct pipeline *p, const uint8_t *entry, size_t len, uint64_t index,
                               const char *log_name, const char *log_url, const char *tile_url,
                               double seen, struct pipeline_out *out, char *err, size_t errlen);

/* The lower-level entry point: one certificate plus everything the message
 * says about it. */
struct pipeline_cert {
    bool precert;                 /* PrecertLogEntry (ctlPoisonByte) */
    const uint8_t *der;           /* the certificate (or pre-certificate) */
    size_t der_len;
    uint64_t timestamp_ms;        /* submission_timestamp */
    bool omit_chain;              /* no "chain" key at all in full */
    const struct ct_span *chain;  /* chain certificates' DER */
    size_t nchain;
    uint64_t index;
    const char *cert_link, *log_name, *log_url;
    double seen;
};
int pipeline_render_cert(struct pipeline *p, const struct pipeline_cert *in, struct pipeline_out *out,
                         char *err, size_t errlen);

/* What a producer hands to ring_publish for a rendered entry: the three
 * messages, the entry's index and log, and (bench_stamp) where the ring
 * stamps the commit time into `seen` (pipeline_set_fixed_seen must be on). */
void pipeline_message(const struct pipeline_out *o, uint64_t index, uint32_t log_id, bool bench_stamp,
                      struct ring_message *m);

/* Chain cache counters (for metrics and the benchmark). */
void pipeline_cache_stats(const struct pipeline *p, uint64_t *hits, uint64_t *misses);

#endif
