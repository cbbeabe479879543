/* pipeline.c - CT entry -> full / lite / domains-only JSON (see pipeline.h).
 *
 * The three messages share most bytes, so the parts are rendered once into
 * a scratch buffer and assembled:
 *   A  {"message_type":...,"leaf_cert":{subject..is_ca,"all_domains":[..]
 *   B  ,"as_der":"..."                           (full only)
 *   C  ,"extensions":{..}}
 *   D  ,"chain":[..]                             (full only)
 *   E  ,"cert_index":..,"seen":..,"source":{..}}}
 * full = A B C D E, lite = A C E, domains = {"message_type":"dns_entries","data":[..]}. */
#include "ingest/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "common/b64.h"
#include "common/jsonw.h"
#include "ingest/certjson.h"
#include "ingest/chaincache.h"
#include "ingest/digest.h"
#include "ingest/x509.h"

struct pipeline {
    bool fixed_seen;
    bool absent_null;                 /* pipeline_set_absent_names */
    struct x509_cert *leaf, *other;   /* large: allocated once */
    struct jbuf parts, doms, elem, link;
    struct jbuf out[3];
    struct chaincache *cache;
    pipeline_issuer_fn lookup;
    void *lookup_ctx;
};

struct pipeline *pipeline_new(void)
{
    struct pipeline *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->leaf = malloc(sizeof *p->leaf);
    p->other = malloc(sizeof *p->other);
    p->cache = chaincache_new();
    if (!p->leaf || !p->other || !p->cache) goto err;
    jb_init(&p->parts);
    jb_init(&p->doms);
    jb_init(&p->elem);
    jb_init(&p->link);
    for (int i = 0; i < 3; i++) jb_init(&p->out[i]);
    return p;
err:
    free(p->leaf);
    free(p->other);
    chaincache_free(p->cache);
    free(p);
    return NULL;
}

void pipeline_free(struct pipeline *p)
{
    if (!p) return;
    free(p->leaf);
    free(p->other);
    chaincache_free(p->cache);
    jb_free(&p->parts);
    jb_free(&p->doms);
    jb_free(&p->elem);
    jb_free(&p->link);
    for (int i = 0; i < 3; i++) jb_free(&p->out[i]);
    free(p);
}

void pipeline_set_fixed_seen(struct pipeline *p, bool on) { p->fixed_seen = on; }

int pipeline_set_absent_names(struct pipeline *p, bool null_form)
{
    if (p->absent_null == null_form) return 0;
    /* cached chain elements were rendered the other way: start a new cache */
    struct chaincache *cc = chaincache_new();
    if (!cc) return -1;
    chaincache_free(p->cache);
    p->cache = cc;
    p->absent_null = null_form;
    return 0;
}

void pipeline_set_issuer_lookup(struct pipeline *p, pipeline_issuer_fn lookup, void *ctx)
{
    p->lookup = lookup;
    p->lookup_ctx = ctx;
}

void pipeline_cache_stats(const struct pipeline *p, uint64_t *hits, uint64_t *misses)
{
    struct chaincache_stats st;
    chaincache_stats(p->cache, &st);
    *hits = st.hits;
    *misses = st.misses;
}

static int errf(char *err, size_t errlen, const char *what, const char *why)
{
    if (err && errlen) snprintf(err, errlen, "%s: %s", what, why);
    return -1;
}

/* Appends the chain element for one DER certificate (nothing if it cannot
 * be parsed, as clients expect chains of what could be read). */
static void chain_element(struct pipeline *p, struct jbuf *b, const uint8_t *der, size_t len, bool *first,
                          struct pipeline_out *out, size_t a0)
{
    const char *json;
    size_t jlen;
    bool bad;
    if (!chaincache_get(p->cache, der, len, &json, &jlen, &bad)) {
        jb_reset(&p->elem);
        bad = x509_parse(der, len, p->other, NULL, 0) < 0;
        if (!bad) {
            uint8_t sha1[20], sha256[32];
            digest_cert(der, len, sha1, sha256);
            certjson_chain_element(&p->elem, p->other, sha1, sha256, p->absent_null);
            if (p->elem.oom) return;
        }
        chaincache_put(p->cache, der, len, p->elem.p, p->elem.len, bad);
        json = p->elem.p;
        jlen = p->elem.len;
    }
    if (bad) return;
    if (!*first) jb_putc(b, ',');
    *first = false;
    if (out->n_chain_el < CT_MAX_CHAIN && jlen > 0 && jlen <= UINT32_MAX)
        out->chain_el[out->n_chain_el++] = (struct ring_span){(uint32_t)(b->len - a0), (uint32_t)jlen};
    jb_put(b, json, jlen);
}

static void put_seen(struct pipeline *p, struct jbuf *b, double seen)
{
    if (p->fixed_seen) jb_fixed6(b, seen);
    else if (isfinite(seen) && fabs(seen) < 9e15) jb_ms_seconds(b, (int64_t)(seen * 1000.0 + (seen >= 0 ? 0.5 : -0.5)));
    else jb_double(b, seen);
}

int pipeline_render_cert(struct pipeline *p, const struct pipeline_cert *in, struct pipeline_out *out,
                         char *err, size_t errlen)
{
    struct x509_cert *c = p->leaf;
    char why[160];
    if (x509_parse(in->der, in->der_len, c, why, sizeof why) < 0)
        return errf(err, errlen, in->precert ? "pre-certificate" : "certificate", why);
    uint8_t sha1[20];
    digest_cert(in->der, in->der_len, sha1, out->leaf_sha256);

    struct jbuf *b = &p->parts;
    jb_reset(b);
    out->n_chain_el = 0;
    out->n_lite = 0;
    jb_reset(&p->doms);
    certjson_domains(&p->doms, c);

    size_t a0 = b->len;
    jb_lit(b, "{\"message_type\":\"certificate_update\",\"data\":{\"update_type\":\"");
    if (in->precert) jb_lit(b, "PrecertLogEntry");
    else jb_lit(b, "X509LogEntry");
    jb_lit(b, "\",\"leaf_cert\":");
    certjson_head(b, c, sha1, out->leaf_sha256, p->absent_null);
    jb_lit(b, ",\"all_domains\":");
    jb_put(b, p->doms.p, p->doms.len);
    size_t b0 = b->len;
    jb_lit(b, ",\"as_der\":\"");
    b64_append(b, in->der, in->der_len);
    jb_putc(b, '"');
    size_t c0 = b->len;
    certjson_extensions(b, c, in->precert);
    jb_putc(b, '}');
    size_t d0 = b->len;
    if (!in->omit_chain) {
        jb_lit(b, ",\"chain\":[");
        bool first = true;
        for (size_t i = 0; i < in->nchain; i++)
            chain_element(p, b, in->chain[i].p, in->chain[i].len, &first, out, a0);
        jb_putc(b, ']');
    }
    size_t e0 = b->len;
    jb_lit(b, ",\"cert_index\":");
    jb_u64(b, in->index);
    jb_lit(b, ",\"cert_link\":");
    jb_cstr(b, in->cert_link ? in->cert_link : "");
    jb_lit(b, ",\"seen\":");
    size_t seen_rel = b->len - e0;
    put_seen(p, b, in->seen);
    jb_lit(b, ",\"submission_timestamp\":");
    jb_ms_seconds(b, (int64_t)(in->timestamp_ms > INT64_MAX ? INT64_MAX : in->timestamp_ms));
    jb_lit(b, ",\"source\":{\"name\":");
    jb_cstr(b, in->log_name ? in->log_name : "");
    jb_lit(b, ",\"url\":");
    jb_cstr(b, in->log_url ? in->log_url : "");
    jb_lit(b, "}}}");
    size_t e1 = b->len;
    if (b->oom || p->doms.oom) return errf(err, errlen, "render", "out of memory");

    struct jbuf *full = &p->out[0], *lite = &p->out[1], *dom = &p->out[2];
    jb_reset(full);
    jb_reset(lite);
    jb_reset(dom);
    jb_put(full, b->p + a0, e1 - a0);                       /* A B C D E */
    jb_put(lite, b->p + a0, b0 - a0);                       /* A */
    jb_put(lite, b->p + c0, d0 - c0);                       /* C */
    jb_put(lite, b->p + e0, e1 - e0);                       /* E */
    jb_lit(dom, "{\"message_type\":\"dns_entries\",\"data\":");
    jb_put(dom, p->doms.p, p->doms.len);
    jb_putc(dom, '}');
    if (full->oom || lite->oom || dom->oom) return errf(err, errlen, "render", "out of memory");

    for (int i = 0; i < 3; i++) {
        out->json[i] = p->out[i].p;
        out->len[i] = p->out[i].len;
    }
    out->seen_off[0] = (long)(e0 - a0 + seen_rel);
    out->seen_off[1] = (long)((b0 - a0) + (d0 - c0) + seen_rel);
    out->seen_off[2] = -1;
    /* lite = A C E of full (see the top); empty parts are left out */
    const size_t cut[3][2] = {{a0, b0}, {c0, d0}, {e0, e1}};
    for (int i = 0; i < 3; i++) {
        if (cut[i][1] > cut[i][0] && e1 - a0 <= UINT32_MAX)
            out->lite_of_full[out->n_lite++] = (struct ring_span){(uint32_t)(cut[i][0] - a0),
                                                                  (uint32_t)(cut[i][1] - cut[i][0])};
    }
    out->timestamp_ms = in->timestamp_ms;
    out->entry_type = in->precert ? CT_PRECERT_ENTRY : CT_X509_ENTRY;
    return 0;
}

int pipeline_render_rfc6962(struct pipeline *p, const uint8_t *leaf_input, size_t leaf_len,
                            const uint8_t *extra_data, size_t extra_len,
                            uint64_t index, const char *log_name, const char *log_url, double seen,
                            struct pipeline_out *out, char *err, size_t errlen)
{
    struct ct_entry e;
    if (ct_decode_rfc6962(leaf_input, leaf_len, extra_data, extra_len, &e, err, errlen) < 0) return -1;
    const char *url = log_url ? log_url : "";
    size_t ulen = strlen(url);
    if (ulen && url[ulen - 1] == '/') ulen--;
    jb_reset(&p->link);
    jb_put(&p->link, url, ulen);
    char tail[80];
    int n = snprintf(tail, sizeof tail, "/ct/v1/get-entries?start=%llu&end=%llu",
                     (unsigned long long)index, (unsigned long long)index);
    jb_put(&p->link, tail, (size_t)n);
    jb_putc(&p->link, '\0');
    if (p->link.oom) return errf(err, errlen, "render", "out of memory");
    struct pipeline_cert in = {
        .precert = e.type == CT_PRECERT_ENTRY,
        .der = e.cert.p, .der_len = e.cert.len,
        .timestamp_ms = e.timestamp_ms,
        .chain = e.chain, .nchain = e.nchain,
        .index = index, .cert_link = p->link.p, .log_name = log_name, .log_url = log_url,
        .seen = seen,
    };
    return pipeline_render_cert(p, &in, out, err, errlen);
}

int pipeline_render_tile_entry(struct pipeline *p, const uint8_t *entry, size_t len, uint64_t index,
                               const char *log_name, const char *log_url, const char *tile_url,
                               double seen, struct pipeline_out *out, char *err, size_t errlen)
{
    struct ct_entry e;
    size_t used;
    if (ct_decode_tile_entry(entry, len, &used, &e, err, errlen) < 0) return -1;
    if (used != len) return errf(err, errlen, "tile entry", "trailing bytes");
    struct ct_span chain[CT_MAX_CHAIN];
    size_t nchain = 0;
    for (size_t i = 0; i < e.nfingerprints && nchain < CT_MAX_CHAIN; i++) {
        const uint8_t *der;
        size_t dlen;
        if (p->lookup && p->lookup(p->lookup_ctx, e.fingerprints + 32 * i, &der, &dlen) == 0)
            chain[nchain++] = (struct ct_span){der, dlen};
    }
    struct pipeline_cert in = {
        .precert = e.type == CT_PRECERT_ENTRY,
        .der = e.cert.p, .der_len = e.cert.len,
        .timestamp_ms = e.timestamp_ms,
        .chain = chain, .nchain = nchain,
        .index = index, .cert_link = tile_url, .log_name = log_name, .log_url = log_url,
        .seen = seen,
    };
    return pipeline_render_cert(p, &in, out, err, errlen);
}

void pipeline_message(const struct pipeline_out *o, uint64_t index, uint32_t log_id, bool bench_stamp,
                      struct ring_message *m)
{
    memset(m, 0, sizeof *m);
    for (int f = 0; f < RING_NFORMATS; f++) {
        m->json[f] = o->json[f];
        m->json_len[f] = o->len[f];
        m->bench_stamp_off[f] = bench_stamp ? o->seen_off[f] : -1;
    }
    m->cert_index = index;
    m->log_id = log_id;
    m->lite = o->n_lite ? o->lite_of_full : NULL;
    m->n_lite = o->n_lite;
    m->shared = o->n_chain_el ? o->chain_el : NULL;
    m->n_shared = o->n_chain_el;
}
