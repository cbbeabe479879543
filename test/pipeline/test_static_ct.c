/* test_static_ct.c - all 1,034 entries of the Navigli data tiles (4 full +
 * the partial 003.p/10) decode; each chain fingerprint resolves to a file in
 * static-ct/navigli2025h2/issuer/ whose SHA-256 is its name; the fields
 * agree with navigli2025h2.computed/expected_entries.jsonl; the precert TBS
 * and issuer_key_hash are consistent; and every entry renders with its
 * issuers as the chain. Usage: test_static_ct <testdata dir> */
#include <mbedtls/sha256.h>

#include "common/jsonw.h"
#include "ingest/ctentry.h"
#include "ingest/pipeline.h"
#include "ingest/x509.h"
#include "test/pipeline/testutil.h"

static struct x509_cert cert;
static const char *g_dir;

struct issuer { uint8_t fp[32]; uint8_t *der; size_t len; };
static struct issuer issuers[16];
static size_t nissuers;

static int lookup(void *ctx, const uint8_t fp[32], const uint8_t **der, size_t *len)
{
    (void)ctx;
    for (size_t i = 0; i < nissuers; i++)
        if (!memcmp(issuers[i].fp, fp, 32)) { *der = issuers[i].der; *len = issuers[i].len; return 0; }
    if (nissuers == 16) return -1;
    char hex[65], path[4096];
    t_hex(fp, 32, hex);
    snprintf(path, sizeof path, "%s/static-ct/navigli2025h2/issuer/%s", g_dir, hex);
    size_t n;
    uint8_t *d = t_read(path, &n), h[32];
    if (!d) return -1;
    mbedtls_sha256_ret(d, n, h, 0);
    t_check(!memcmp(h, fp, 32), "issuer %s: SHA-256 equals its name", hex);
    memcpy(issuers[nissuers].fp, fp, 32);
    issuers[nissuers].der = d;
    issuers[nissuers].len = n;
    nissuers++;
    *der = d;
    *len = n;
    return 0;
}

static int str_is(struct jbuf *b, const struct x509_str *s, const char *want)
{
    if (!want) return !s->set;
    if (!s->set) return 0;
    jb_reset(b);
    x509_str_json(b, s);
    return b->len == strlen(want) && !memcmp(b->p, want, b->len);
}

static void check(struct pipeline *p, const uint8_t *ent, size_t len, uint64_t index, const cJSON *x,
                  const char *link)
{
    char what[64], hex[65], err[256];
    struct jbuf b;
    jb_init(&b);
    snprintf(what, sizeof what, "entry %llu", (unsigned long long)index);
    struct ct_entry e;
    size_t used;
    t_check(ct_decode_tile_entry(ent, len, &used, &e, err, sizeof err) == 0 && used == len, "%s: decodes", what);
    t_check(x != NULL, "%s: has an expectation", what);
    if (!x) goto out;
    t_check((double)e.leaf_index == cJSON_GetNumberValue(cJSON_GetObjectItem(x, "leaf_index")) &&
            e.leaf_index == (int64_t)index, "%s: leaf_index extension", what);
    t_check((double)e.timestamp_ms == cJSON_GetNumberValue(cJSON_GetObjectItem(x, "timestamp_ms")), "%s: timestamp", what);
    t_check(e.type == CT_PRECERT_ENTRY && !strcmp(t_str(x, "entry_type"), "precert_entry"), "%s: precert", what);
    t_hex(e.issuer_key_hash, 32, hex);
    t_check(!strcmp(hex, t_str(x, "issuer_key_hash_hex")), "%s: issuer_key_hash", what);
    uint8_t h[32];
    mbedtls_sha256_ret(e.cert.p, e.cert.len, h, 0);
    t_hex(h, 32, hex);
    t_check(!strcmp(hex, t_str(x, "pre_certificate_sha256")), "%s: pre_certificate sha256", what);
    const cJSON *fps = cJSON_GetObjectItem(x, "chain_fingerprints"), *f;
    t_check((size_t)cJSON_GetArraySize(fps) == e.nfingerprints, "%s: fingerprint count", what);
    size_t k = 0;
    cJSON_ArrayForEach(f, fps) {
        if (k < e.nfingerprints) t_hex(e.fingerprints + 32 * k, 32, hex);
        t_check(k < e.nfingerprints && !strcmp(hex, f->valuestring), "%s: fingerprint %zu", what, k);
        const uint8_t *der;
        size_t dlen;
        t_check(k < e.nfingerprints && lookup(NULL, e.fingerprints + 32 * k, &der, &dlen) == 0, "%s: issuer %zu resolves", what, k);
        k++;
    }
    if (x509_parse(e.cert.p, e.cert.len, &cert, err, sizeof err) == 0) {
        t_check(str_is(&b, &cert.subject.a[X509_CN], t_str(x, "subject_cn")), "%s: subject CN", what);
        t_check(str_is(&b, &cert.issuer.a[X509_CN], t_str(x, "issuer_cn")), "%s: issuer CN", what);
        jb_reset(&b);
        jb_hex(&b, cert.serial.p, cert.serial.len, 0, false);
        jb_putc(&b, 0);
        const char *s = b.p;
        while (s[0] == '0' && s[1]) s++;
        t_check(!strcmp(s, t_str(x, "serial_hex")), "%s: serial", what);
        t_check(cert.not_before == t_iso_time(t_str(x, "not_before")) && cert.not_after == t_iso_time(t_str(x, "not_after")),
                "%s: validity", what);
        const cJSON *dns = cJSON_GetObjectItem(x, "dns_names"), *d;
        size_t j = 0, ok = 1, n = 0;
        cJSON_ArrayForEach(d, dns) {
            while (j < cert.nsan && cert.san[j].kind != X509_GN_DNS) j++;
            if (j >= cert.nsan || strlen(d->valuestring) != cert.san[j].len || memcmp(d->valuestring, cert.san[j].p, cert.san[j].len)) ok = 0;
            j++;
            n++;
        }
        for (size_t i = 0; i < cert.nsan; i++) n -= cert.san[i].kind == X509_GN_DNS;
        t_check(ok && n == 0, "%s: DNS names", what);
        t_check(cert.has_poison, "%s: poison extension", what);
        t_check(x509_tbs_matches_precert(e.tbs.p, e.tbs.len, e.cert.p, e.cert.len) == 1, "%s: TBS = pre_certificate minus poison", what);
        if (e.nfingerprints) {
            const uint8_t *der;
            size_t dlen;
            if (lookup(NULL, e.fingerprints, &der, &dlen) == 0 && x509_parse(der, dlen, &cert, NULL, 0) == 0) {
                mbedtls_sha256_ret(cert.spki.p, cert.spki.len, h, 0);
                t_check(!memcmp(h, e.issuer_key_hash, 32), "%s: issuer_key_hash = SHA-256(issuer key)", what);
            }
        }
    } else {
        t_check(0, "%s: pre_certificate parses (%s)", what, err);
    }
    struct pipeline_out out;
    int rc = pipeline_render_tile_entry(p, ent, len, index, "Navigli", "https://navigli2025h2.skylight.geomys.org/",
                                        link, 1700000000.0, &out, err, sizeof err);
    t_check(rc == 0, "%s: renders (%s)", what, rc ? err : "");
    if (rc == 0) {
        /* Every issuer appears in the chain, in order, by its sha256. */
        const char *at = out.json[0];
        for (size_t i = 0; i < e.nfingerprints; i++) {
            jb_reset(&b);
            jb_lit(&b, "\"sha256\":\"");
            jb_hex(&b, e.fingerprints + 32 * i, 32, ':', true);
            jb_putc(&b, 0);
            const char *hit = strstr(at, b.p);
            t_check(hit != NULL, "%s: chain element %zu", what, i);
            if (hit) at = hit + 1;
        }
        jb_reset(&b);
        jb_lit(&b, "\"cert_link\":\"");
        jb_put(&b, link, strlen(link));
        jb_putc(&b, 0);
        t_check(strstr(out.json[1], b.p) != NULL, "%s: cert_link is the tile URL", what);
        t_check(strstr(out.json[1], "\"update_type\":\"PrecertLogEntry\"") && strstr(out.json[1], "\"ctlPoisonByte\":true}"),
                "%s: precert message", what);
    }
out:
    jb_free(&b);
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: %s TESTDATA\n", argv[0]); return 2; }
    g_dir = argv[1];
    char path[4096];
    cJSON *expect[1024] = {0};
    snprintf(path, sizeof path, "%s/static-ct/navigli2025h2.computed/expected_entries.jsonl", g_dir);
    size_t n;
    char *all = (char *)t_read(path, &n);
    t_check(all != NULL, "expected_entries.jsonl readable");
    for (char *line = all, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *j = cJSON_Parse(line);
        double li = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "leaf_index"));
        if (j && li >= 0 && li < 1024 && !expect[(int)li]) expect[(int)li] = j;
        else cJSON_Delete(j);
    }
    free(all);
    struct pipeline *p = pipeline_new();
    pipeline_set_issuer_lookup(p, lookup, NULL);
    static const struct { const char *file; uint64_t tile; unsigned width; } tiles[] = {
        {"000", 0, 0}, {"001", 1, 0}, {"002", 2, 0}, {"003", 3, 0}, {"003.p/10", 3, 10},
    };
    int total = 0;
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        snprintf(path, sizeof path, "%s/static-ct/navigli2025h2/tile/data/%s", g_dir, tiles[t].file);
        size_t len;
        uint8_t *tile = t_read(path, &len);
        t_check(tile != NULL, "tile %s readable", tiles[t].file);
        if (!tile) continue;
        char rel[128], link[256];
        ct_data_tile_path(rel, sizeof rel, tiles[t].tile, tiles[t].width);
        snprintf(link, sizeof link, "https://navigli2025h2.skylight.geomys.org/%s", rel);
        size_t off = 0, count = 0;
        while (off < len) {
            struct ct_entry e;
            size_t used;
            char err[256];
            if (ct_decode_tile_entry(tile + off, len - off, &used, &e, err, sizeof err) < 0) {
                t_check(0, "tile %s entry %zu: %s", tiles[t].file, count, err);
                break;
            }
            uint64_t index = tiles[t].tile * 256 + count;
            check(p, tile + off, used, index, index < 1024 ? expect[index] : NULL, link);
            off += used;
            count++;
            total++;
        }
        t_check(count == (tiles[t].width ? tiles[t].width : 256), "tile %s: %zu entries", tiles[t].file, count);
        /* Truncations of the tile never over-read. */
        for (size_t cut = 0; cut < 4096 && cut < len; cut += 13) {
            struct ct_entry e;
            size_t used;
            ct_decode_tile_entry(tile, cut, &used, &e, NULL, 0);
        }
        free(tile);
    }
    char buf[64];
    ct_data_tile_path(buf, sizeof buf, 1234067, 0);
    t_check(!strcmp(buf, "tile/data/x001/x234/067"), "tile path 1234067: %s", buf);
    ct_data_tile_path(buf, sizeof buf, 1000, 5);
    t_check(!strcmp(buf, "tile/data/x001/000.p/5"), "tile path 1000.p/5: %s", buf);
    ct_data_tile_path(buf, sizeof buf, 7, 0);
    t_check(!strcmp(buf, "tile/data/007"), "tile path 7: %s", buf);
    printf("%d tile entries decoded, %zu issuers resolved\n", total, nissuers);
    t_check(total == 1034, "1034 entries");
    t_check(nissuers == 5, "5 issuers");
    for (size_t i = 0; i < nissuers; i++) free(issuers[i].der);
    for (int i = 0; i < 1024; i++) cJSON_Delete(expect[i]);
    pipeline_free(p);
    return t_summary();
}
