/* test_rfc6962.c - every RFC 6962 fixture (every rfc6962/get-entries file and
 * get-entry-and-proof) decodes to the facts in rfc6962/expected/: entry
 * type, timestamp, leaf hash, extensions, issuer_key_hash, TBS, the
 * certificate and every chain certificate (hash, names, serial, validity,
 * DNS names, CA flag, poison, key hash); the precert consistency checks
 * agree, so the deliberately mismatched fixture is detected; and every
 * entry renders. Usage: test_rfc6962 <testdata dir> */
#include <mbedtls/sha256.h>

#include "common/b64.h"
#include "common/jsonw.h"
#include "ingest/ctentry.h"
#include "ingest/pipeline.h"
#include "ingest/x509.h"
#include "test/pipeline/testutil.h"

static struct x509_cert cert;

static void sha256_hex(const uint8_t *d, size_t n, char out[65])
{
    uint8_t h[32];
    mbedtls_sha256_ret(d, n, h, 0);
    t_hex(h, 32, out);
}

/* The name attribute rendered, or NULL when absent. */
static const char *attr(struct jbuf *b, const struct x509_name *n, int i)
{
    if (!n->a[i].set) return NULL;
    jb_reset(b);
    x509_str_json(b, &n->a[i]);
    jb_putc(b, 0);
    return b->p;
}

static int same_str(const char *got, const cJSON *want)
{
    if (cJSON_IsNull(want) || !want) return got == NULL;
    return got && cJSON_IsString(want) && strcmp(got, want->valuestring) == 0;
}

/* One certificate against its expected facts. */
static void check_cert(const char *what, const uint8_t *der, size_t len, const cJSON *x)
{
    char hex[65], err[160];
    struct jbuf b;
    jb_init(&b);
    sha256_hex(der, len, hex);
    t_check(same_str(hex, cJSON_GetObjectItem(x, "sha256")), "%s: sha256", what);
    t_check((double)len == cJSON_GetNumberValue(cJSON_GetObjectItem(x, "len")), "%s: len", what);
    int rc = x509_parse(der, len, &cert, err, sizeof err);
    t_check(rc == 0, "%s: parses (%s)", what, rc ? err : "");
    if (rc) { jb_free(&b); return; }
    t_check(same_str(attr(&b, &cert.subject, X509_CN), cJSON_GetObjectItem(x, "subject_cn")), "%s: subject CN", what);
    t_check(same_str(attr(&b, &cert.issuer, X509_CN), cJSON_GetObjectItem(x, "issuer_cn")), "%s: issuer CN", what);
    /* serial: lowercase hex without leading zeros, as the expectations hold */
    jb_reset(&b);
    jb_hex(&b, cert.serial.p, cert.serial.len, 0, false);
    jb_putc(&b, 0);
    const char *s = b.p;
    while (s[0] == '0' && s[1]) s++;
    t_check(same_str(s, cJSON_GetObjectItem(x, "serial_hex")), "%s: serial %s", what, s);
    t_check(cert.not_before == t_iso_time(t_str(x, "not_before")), "%s: not_before %lld", what, (long long)cert.not_before);
    t_check(cert.not_after == t_iso_time(t_str(x, "not_after")), "%s: not_after %lld", what, (long long)cert.not_after);
    const cJSON *dns = cJSON_GetObjectItem(x, "dns_names"), *d;
    size_t k = 0, ndns = 0;
    for (size_t i = 0; i < cert.nsan; i++) ndns += cert.san[i].kind == X509_GN_DNS;
    t_check((size_t)cJSON_GetArraySize(dns) == ndns, "%s: %zu DNS names", what, ndns);
    cJSON_ArrayForEach(d, dns) {
        while (k < cert.nsan && cert.san[k].kind != X509_GN_DNS) k++;
        int ok = k < cert.nsan && cJSON_IsString(d) && strlen(d->valuestring) == cert.san[k].len &&
                 memcmp(d->valuestring, cert.san[k].p, cert.san[k].len) == 0;
        t_check(ok, "%s: DNS name %s", what, cJSON_IsString(d) ? d->valuestring : "?");
        k++;
    }
    t_check(cert.is_ca == cJSON_IsTrue(cJSON_GetObjectItem(x, "is_ca")), "%s: is_ca", what);
    t_check(cert.has_poison == cJSON_IsTrue(cJSON_GetObjectItem(x, "has_ct_poison")), "%s: poison", what);
    sha256_hex(cert.spki.p, cert.spki.len, hex);
    t_check(same_str(hex, cJSON_GetObjectItem(x, "spki_sha256")), "%s: spki sha256", what);
    jb_free(&b);
}

static void check_entry(struct pipeline *p, const char *name, int i, const cJSON *item, const cJSON *x)
{
    char what[256], err[256], hex[4096];
    snprintf(what, sizeof what, "%s[%d]", name, i);
    const char *li = t_str(item, "leaf_input"), *ed = t_str(item, "extra_data");
    uint8_t *leaf = NULL, *extra = NULL;
    size_t llen = 0, elen = 0;
    if (!li || !ed || b64_decode_alloc(li, strlen(li), &leaf, &llen) < 0 || b64_decode_alloc(ed, strlen(ed), &extra, &elen) < 0) {
        t_check(0, "%s: base64", what);
        goto out;
    }
    struct ct_entry e;
    int rc = ct_decode_rfc6962(leaf, llen, extra, elen, &e, err, sizeof err);
    t_check(rc == 0, "%s: decodes (%s)", what, rc ? err : "");
    if (rc) goto out;
    const char *type = t_str(x, "entry_type");
    t_check(type && !strcmp(type, e.type == CT_PRECERT_ENTRY ? "precert_entry" : "x509_entry"), "%s: entry_type", what);
    t_check((double)e.timestamp_ms == cJSON_GetNumberValue(cJSON_GetObjectItem(x, "timestamp_ms")), "%s: timestamp", what);
    {
        uint8_t *buf = malloc(llen + 1);
        buf[0] = 0;
        memcpy(buf + 1, leaf, llen);
        sha256_hex(buf, llen + 1, hex);
        free(buf);
        t_check(same_str(hex, cJSON_GetObjectItem(x, "leaf_hash_hex")), "%s: leaf hash", what);
    }
    if (e.extensions.len < 2000) {
        t_hex(e.extensions.p, e.extensions.len, hex);
        t_check(same_str(hex, cJSON_GetObjectItem(x, "ct_extensions_hex")), "%s: extensions", what);
    }
    const cJSON *li_x = cJSON_GetObjectItem(x, "static_ct_leaf_index");
    if (li_x) t_check((double)e.leaf_index == cJSON_GetNumberValue(li_x), "%s: leaf_index extension", what);
    const cJSON *leafx = cJSON_GetObjectItem(x, e.type == CT_PRECERT_ENTRY ? "pre_certificate" : "leaf_cert");
    if (leafx) check_cert(what, e.cert.p, e.cert.len, leafx);
    const cJSON *chain = cJSON_GetObjectItem(x, "chain"), *c;
    if (chain) {
        t_check((size_t)cJSON_GetArraySize(chain) == e.nchain_total, "%s: chain length %zu", what, e.nchain_total);
        size_t k = 0;
        cJSON_ArrayForEach(c, chain) {
            char w2[300];
            snprintf(w2, sizeof w2, "%s chain[%zu]", what, k);
            if (k < e.nchain) check_cert(w2, e.chain[k].p, e.chain[k].len, c);
            k++;
        }
    }
    if (e.type == CT_PRECERT_ENTRY) {
        t_hex(e.issuer_key_hash, 32, hex);
        t_check(same_str(hex, cJSON_GetObjectItem(x, "issuer_key_hash_hex")), "%s: issuer_key_hash", what);
        t_check((double)e.tbs.len == cJSON_GetNumberValue(cJSON_GetObjectItem(x, "tbs_certificate_len")), "%s: tbs len", what);
        sha256_hex(e.tbs.p, e.tbs.len, hex);
        t_check(same_str(hex, cJSON_GetObjectItem(x, "tbs_certificate_sha256")), "%s: tbs sha256", what);
        int tbs_ok = x509_tbs_matches_precert(e.tbs.p, e.tbs.len, e.cert.p, e.cert.len);
        t_check(tbs_ok == cJSON_IsTrue(cJSON_GetObjectItem(x, "tbs_matches_pre_certificate_without_poison")),
                "%s: TBS vs pre_certificate without poison (got %d)", what, tbs_ok);
        int ikh_ok = 0;
        if (e.nchain && x509_parse(e.chain[0].p, e.chain[0].len, &cert, NULL, 0) == 0) {
            uint8_t h[32];
            mbedtls_sha256_ret(cert.spki.p, cert.spki.len, h, 0);
            ikh_ok = memcmp(h, e.issuer_key_hash, 32) == 0;
        }
        t_check(ikh_ok == cJSON_IsTrue(cJSON_GetObjectItem(x, "issuer_key_hash_matches_chain0_spki")),
                "%s: issuer_key_hash vs chain[0] key (got %d)", what, ikh_ok);
        if (strstr(name, "MISMATCHED"))
            t_check(!tbs_ok && !ikh_ok, "%s: mismatched precert detected", what);
    }
    struct pipeline_out out;
    rc = pipeline_render_rfc6962(p, leaf, llen, extra, elen, (uint64_t)i, "Test", "https://ct.example/", 1700000000.0,
                                 &out, err, sizeof err);
    t_check(rc == 0 && out.len[0] > out.len[1] && out.len[1] > out.len[2], "%s: renders (%s)", what, rc ? err : "");
    /* Every prefix of leaf_input / extra_data is rejected or decodes, never over-reads. */
    for (size_t cut = 0; cut < llen; cut += 7) ct_decode_rfc6962(leaf, cut, extra, elen, &e, err, sizeof err);
    for (size_t cut = 0; cut < elen; cut += 97) ct_decode_rfc6962(leaf, llen, extra, cut, &e, err, sizeof err);
    t_check(ct_decode_rfc6962(leaf, llen - 1, extra, elen, &e, err, sizeof err) < 0, "%s: truncated leaf rejected", what);
out:
    free(leaf);
    free(extra);
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: %s TESTDATA\n", argv[0]); return 2; }
    static const char *fixtures[] = {
        "get-entries/ctgo-logclient_precert-and-x509",
        "get-entries/google-pilot_2013_four-x509-entries",
        "get-entries/navigli2025h2_0-31_derived-from-tiles",
        "get-entries/scrape-ct-log_precert_MISMATCHED-leaf-and-extra-data",
        "get-entries/scrape-ct-log_x509",
        "get-entry-and-proof/google-icarus_120000000_129721434",
    };
    struct pipeline *p = pipeline_new();
    int entries = 0;
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        char path[4096], epath[4096];
        snprintf(path, sizeof path, "%s/rfc6962/%s.json", argv[1], fixtures[f]);
        snprintf(epath, sizeof epath, "%s/rfc6962/expected/%s.expected.json", argv[1], strchr(fixtures[f], '/') + 1);
        cJSON *in = t_json(path), *ex = t_json(epath);
        if (!in || !ex) { cJSON_Delete(in); cJSON_Delete(ex); continue; }
        const cJSON *items = cJSON_GetObjectItem(in, "entries");
        const cJSON *xs = cJSON_GetObjectItem(ex, "entries");
        if (!items) {   /* get-entry-and-proof: one entry, one expectation */
            check_entry(p, fixtures[f], 0, in, ex);
            entries++;
        } else {
            t_check(cJSON_GetArraySize(items) == cJSON_GetArraySize(xs), "%s: entry count", fixtures[f]);
            for (int i = 0; i < cJSON_GetArraySize(items) && i < cJSON_GetArraySize(xs); i++) {
                check_entry(p, fixtures[f], i, cJSON_GetArrayItem(items, i), cJSON_GetArrayItem(xs, i));
                entries++;
            }
        }
        cJSON_Delete(in);
        cJSON_Delete(ex);
    }
    {   /* Empty and absent input is an error value, not a crash. */
        struct ct_entry e;
        struct pipeline_out out;
        char err[256];
        t_check(ct_decode_rfc6962(NULL, 0, NULL, 0, &e, err, sizeof err) < 0, "NULL entry rejected");
        t_check(pipeline_render_rfc6962(p, NULL, 0, NULL, 0, 0, NULL, NULL, 0, &out, err, sizeof err) < 0, "NULL render rejected");
        static const uint8_t x509_empty_chain[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0x30, 0, 0, 0};
        t_check(ct_decode_rfc6962(x509_empty_chain, sizeof x509_empty_chain, NULL, 0, &e, err, sizeof err) == 0 && e.nchain == 0,
                "x509_entry without extra_data decodes");
        t_check(pipeline_render_rfc6962(p, x509_empty_chain, sizeof x509_empty_chain, NULL, 0, 0, NULL, NULL, 0, &out, err, sizeof err) < 0,
                "an empty SEQUENCE is not a certificate (%s)", err);
        static const uint8_t bad_type[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0};
        t_check(ct_decode_rfc6962(bad_type, sizeof bad_type, NULL, 0, &e, err, sizeof err) < 0 && strstr(err, "entry_type"),
                "unknown entry_type rejected");
        static const uint8_t version1[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
        t_check(ct_decode_rfc6962(version1, sizeof version1, NULL, 0, &e, err, sizeof err) < 0, "version 1 rejected");
        static const uint8_t huge[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0x30, 0};
        t_check(ct_decode_rfc6962(huge, sizeof huge, NULL, 0, &e, err, sizeof err) < 0, "length past the end rejected");
    }
    printf("%d entries checked\n", entries);
    t_check(entries == 41, "all fixture entries seen");
    pipeline_free(p);
    return t_summary();
}
