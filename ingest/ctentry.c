/* ctentry.c - RFC 6962 and static-ct-api entry decoding (see ctentry.h and
 * test/data/PROTOCOLS.md for the byte layouts). */
#include "ingest/ctentry.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A bounds-checked reader over one buffer. */
struct rd { const uint8_t *p, *end; };

int ct_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int rd_uint(struct rd *r, size_t n, uint64_t *v)
{
    if ((size_t)(r->end - r->p) < n) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x = x << 8 | r->p[i];
    r->p += n;
    *v = x;
    return 0;
}

/* A vector with an n-byte length prefix. */
static int rd_vec(struct rd *r, size_t n, struct ct_span *s)
{
    uint64_t len;
    if (rd_uint(r, n, &len) < 0) return -1;
    if ((uint64_t)(r->end - r->p) < len) return -1;
    s->p = r->p;
    s->len = (size_t)len;
    r->p += len;
    return 0;
}

static int64_t leaf_index_ext(struct ct_span ext)
{
    struct rd r = {ext.p, ext.p + ext.len};
    while (r.p < r.end) {
        uint64_t type;
        struct ct_span data;
        if (rd_uint(&r, 1, &type) < 0 || rd_vec(&r, 2, &data) < 0) return -1;
        if (type == 0 && data.len == 5) {
            uint64_t v = 0;
            for (size_t i = 0; i < 5; i++) v = v << 8 | data.p[i];
            return (int64_t)v;
        }
    }
    return -1;
}

/* The part of a TimestampedEntry after the timestamp: entry_type, signed
 * entry and extensions. */
static int rd_signed_entry(struct rd *r, struct ct_entry *e, char *err, size_t errlen)
{
    uint64_t type;
    if (rd_uint(r, 2, &type) < 0) return ct_fail(err, errlen, "truncated entry_type");
    if (type == CT_X509_ENTRY) {
        if (rd_vec(r, 3, &e->cert) < 0) return ct_fail(err, errlen, "x509_entry certificate length exceeds data");
        if (e->cert.len == 0) return ct_fail(err, errlen, "empty x509_entry certificate");
    } else if (type == CT_PRECERT_ENTRY) {
        if (r->end - r->p < 32) return ct_fail(err, errlen, "truncated issuer_key_hash");
        e->issuer_key_hash = r->p;
        r->p += 32;
        if (rd_vec(r, 3, &e->tbs) < 0) return ct_fail(err, errlen, "tbs_certificate length exceeds data");
    } else {
        return ct_fail(err, errlen, "unknown entry_type %" PRIu64, type);
    }
    e->type = (int)type;
    if (rd_vec(r, 2, &e->extensions) < 0) return ct_fail(err, errlen, "extensions length exceeds data");
    e->leaf_index = leaf_index_ext(e->extensions);
    return 0;
}

/* A vec3 list of vec3 certificates, filling e->chain. */
static int rd_chain(struct rd *r, struct ct_entry *e, char *err, size_t errlen)
{
    struct ct_span list;
    if (rd_vec(r, 3, &list) < 0) return ct_fail(err, errlen, "chain length exceeds data");
    struct rd l = {list.p, list.p + list.len};
    while (l.p < l.end) {
        struct ct_span c;
        if (rd_vec(&l, 3, &c) < 0) return ct_fail(err, errlen, "chain certificate %zu length exceeds chain", e->nchain_total);
        if (e->nchain < CT_MAX_CHAIN) e->chain[e->nchain++] = c;
        e->nchain_total++;
    }
    return 0;
}

int ct_decode_rfc6962(const uint8_t *leaf_input, size_t leaf_len,
                      const uint8_t *extra_data, size_t extra_len,
                      struct ct_entry *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    e->leaf_index = -1;
    if (!leaf_input) leaf_len = 0;
    struct rd r = {leaf_input, leaf_input ? leaf_input + leaf_len : NULL};
    uint64_t version, leaf_type;
    if (rd_uint(&r, 1, &version) < 0 || rd_uint(&r, 1, &leaf_type) < 0)
        return ct_fail(err, errlen, "leaf_input too short");
    if (version != 0) return ct_fail(err, errlen, "unknown MerkleTreeLeaf version %" PRIu64, version);
    if (leaf_type != 0) return ct_fail(err, errlen, "unknown leaf_type %" PRIu64, leaf_type);
    const uint8_t *te = r.p;
    if (rd_uint(&r, 8, &e->timestamp_ms) < 0) return ct_fail(err, errlen, "truncated timestamp");
    if (rd_signed_entry(&r, e, err, errlen) < 0) return -1;
    if (r.p != r.end) return ct_fail(err, errlen, "%zu trailing bytes in leaf_input", (size_t)(r.end - r.p));
    e->timestamped_entry.p = te;
    e->timestamped_entry.len = (size_t)(r.p - te);

    if (!extra_data) extra_len = 0;
    struct rd x = {extra_data, extra_data ? extra_data + extra_len : NULL};
    if (e->type == CT_PRECERT_ENTRY) {
        if (rd_vec(&x, 3, &e->cert) < 0) return ct_fail(err, errlen, "pre_certificate length exceeds extra_data");
        if (e->cert.len == 0) return ct_fail(err, errlen, "empty pre_certificate");
    }
    /* An x509_entry whose extra_data is empty has no chain. */
    if (!(e->type == CT_X509_ENTRY && extra_len == 0)) {
        if (rd_chain(&x, e, err, errlen) < 0) return -1;
    }
    if (x.p != x.end) return ct_fail(err, errlen, "%zu trailing bytes in extra_data", (size_t)(x.end - x.p));
    return 0;
}

int ct_decode_tile_entry(const uint8_t *p, size_t n, size_t *consumed,
                         struct ct_entry *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    e->leaf_index = -1;
    *consumed = 0;
    if (!p) n = 0;
    struct rd r = {p, p ? p + n : NULL};
    if (rd_uint(&r, 8, &e->timestamp_ms) < 0) return ct_fail(err, errlen, "truncated timestamp");
    if (rd_signed_entry(&r, e, err, errlen) < 0) return -1;
    e->timestamped_entry.p = p;
    e->timestamped_entry.len = (size_t)(r.p - p);
    if (e->type == CT_PRECERT_ENTRY) {
        if (rd_vec(&r, 3, &e->cert) < 0) return ct_fail(err, errlen, "pre_certificate length exceeds tile");
        if (e->cert.len == 0) return ct_fail(err, errlen, "empty pre_certificate");
    }
    struct ct_span fps;
    if (rd_vec(&r, 2, &fps) < 0) return ct_fail(err, errlen, "certificate_chain length exceeds tile");
    if (fps.len % 32) return ct_fail(err, errlen, "certificate_chain length %zu not a multiple of 32", fps.len);
    e->fingerprints = fps.p;
    e->nfingerprints = fps.len / 32;
    *consumed = (size_t)(r.p - p);
    return 0;
}

int ct_data_tile_path(char *buf, size_t len, uint64_t n, unsigned width)
{
    char groups[16][4];
    int ng = 0;
    do {
        snprintf(groups[ng++], sizeof groups[0], "%03u", (unsigned)(n % 1000));
        n /= 1000;
    } while (n && ng < 16);
    char path[96] = "tile/data";
    size_t o = strlen(path);
    for (int i = ng - 1; i >= 0; i--)
        o += (size_t)snprintf(path + o, sizeof path - o, "/%s%s", i ? "x" : "", groups[i]);
    if (width > 0 && width < 256)
        return snprintf(buf, len, "%s.p/%u", path, width);
    return snprintf(buf, len, "%s", path);
}
