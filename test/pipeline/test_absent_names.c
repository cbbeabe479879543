/* test_absent_names.c - message_format.absent_name_fields, pinned with exact
 * bytes: in the null form subject and issuer carry C, CN, L, O, OU, ST,
 * aggregated, email_address in that order, null where the attribute is
 * absent, in the leaf and in chain elements; the omit form leaves absent
 * keys out (the golden corpus covers omit byte for byte, render_golden.py
 * the null form of the whole corpus). The expected objects are written from
 * `openssl x509 -subject -issuer` of the fixtures.
 * Usage: test_absent_names <testdata dir> */
#include "common/b64.h"
#include "ingest/pipeline.h"
#include "test/pipeline/testutil.h"

/* The DER of the first PEM block of a fixture. */
static uint8_t *pem_der(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/certs/%s", dir, name);
    size_t n;
    char *pem = (char *)t_read(path, &n);
    if (!pem) return NULL;
    char *b = strstr(pem, "-----BEGIN CERTIFICATE-----"), *e = b ? strstr(b, "-----END") : NULL;
    uint8_t *der = NULL;
    if (b && e) {
        b += strlen("-----BEGIN CERTIFICATE-----");
        char *clean = malloc((size_t)(e - b) + 1);
        size_t k = 0;
        for (char *p = b; p < e; p++)
            if (*p != '\n' && *p != '\r' && *p != ' ') clean[k++] = *p;
        if (b64_decode_alloc(clean, k, &der, len) < 0) der = NULL;
        free(clean);
    }
    free(pem);
    return der;
}

/* The bytes of `"key":{...}` at the first occurrence after from, or "". */
static char *object_at(const char *json, size_t len, const char *key, size_t from, size_t *end)
{
    static char out[2048];
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":{", key);
    const char *s = memmem(json + from, len - from, pat, strlen(pat));
    out[0] = 0;
    if (!s) return out;
    const char *e = memchr(s, '}', len - (size_t)(s - json));
    if (!e || (size_t)(e - s) + 2 > sizeof out) return out;
    memcpy(out, s, (size_t)(e - s) + 1);
    out[e - s + 1] = 0;
    *end = (size_t)(e - json) + 1;
    return out;
}

static void render(struct pipeline *p, const uint8_t *der, size_t len, const struct ct_span *chain, size_t nchain,
                   struct pipeline_out *out)
{
    struct pipeline_cert in = {
        .der = der, .der_len = len, .timestamp_ms = 1700000000123ULL, .chain = chain, .nchain = nchain,
        .index = 7, .cert_link = "https://ct.example/x", .log_name = "Corpus", .log_url = "https://ct.example/",
        .seen = 1700000000.5,
    };
    char err[256];
    t_check(pipeline_render_cert(p, &in, out, err, sizeof err) == 0, "render: %s", err);
}

#define GT_NULL                                                                                              \
    "{\"C\":\"AT\",\"CN\":\"GLOBALTRUST\",\"L\":\"Vienna\",\"O\":\"ARGE DATEN - Austrian Society for Data " \
    "Protection\",\"OU\":\"GLOBALTRUST Certification Service\",\"ST\":\"Austria\",\"aggregated\":\"/C=AT/"  \
    "CN=GLOBALTRUST/L=Vienna/O=ARGE DATEN - Austrian Society for Data Protection/OU=GLOBALTRUST "           \
    "Certification Service/ST=Austria\",\"email_address\":\"info@globaltrust.info\"}"
#define TC_NULL                                                                                              \
    "{\"C\":\"DE\",\"CN\":null,\"L\":\"Hamburg\",\"O\":\"TC TrustCenter for Security in Data Networks "      \
    "GmbH\",\"OU\":\"TC TrustCenter Class 1 CA\",\"ST\":\"Hamburg\",\"aggregated\":\"/C=DE/L=Hamburg/O=TC " \
    "TrustCenter for Security in Data Networks GmbH/OU=TC TrustCenter Class 1 CA/ST=Hamburg\","              \
    "\"email_address\":\"certificate@trustcenter.de\"}"
#define TC_OMIT                                                                                              \
    "{\"C\":\"DE\",\"L\":\"Hamburg\",\"O\":\"TC TrustCenter for Security in Data Networks "                 \
    "GmbH\",\"OU\":\"TC TrustCenter Class 1 CA\",\"ST\":\"Hamburg\",\"aggregated\":\"/C=DE/L=Hamburg/O=TC " \
    "TrustCenter for Security in Data Networks GmbH/OU=TC TrustCenter Class 1 CA/ST=Hamburg\","              \
    "\"email_address\":\"certificate@trustcenter.de\"}"

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "test/data";
    size_t gl, tl, end = 0;
    uint8_t *gt = pem_der(dir, "archeroots__000.pem", &gl), *tc = pem_der(dir, "archeroots__137.pem", &tl);
    t_check(gt && tc, "fixtures readable");
    if (!gt || !tc) return t_summary();
    struct pipeline *p = pipeline_new();
    struct pipeline_out out;

    /* a new pipeline renders the omit form */
    render(p, tc, tl, NULL, 0, &out);
    t_check(!strcmp(object_at(out.json[1], out.len[1], "subject", 0, &end), "\"subject\":" TC_OMIT),
            "omit form, no CN: %s", object_at(out.json[1], out.len[1], "subject", 0, &end));

    t_check(pipeline_set_absent_names(p, true) == 0, "switch to the null form");
    /* every attribute present, email_address last */
    render(p, gt, gl, NULL, 0, &out);
    for (int f = 0; f < 2; f++) {
        t_check(!strcmp(object_at(out.json[f], out.len[f], "subject", 0, &end), "\"subject\":" GT_NULL),
                "null form, all set (format %d): %s", f, object_at(out.json[f], out.len[f], "subject", 0, &end));
        t_check(!strcmp(object_at(out.json[f], out.len[f], "issuer", end, &end), "\"issuer\":" GT_NULL),
                "null form issuer (format %d)", f);
    }
    /* no CN: "CN":null in its place; the leaf's chain element in the same form */
    struct ct_span chain[1] = { { tc, tl } };
    render(p, tc, tl, chain, 1, &out);
    t_check(!strcmp(object_at(out.json[1], out.len[1], "subject", 0, &end), "\"subject\":" TC_NULL),
            "null form, no CN: %s", object_at(out.json[1], out.len[1], "subject", 0, &end));
    const char *ch = memmem(out.json[0], out.len[0], "\"chain\":[", 9);
    t_check(ch != NULL, "full has a chain");
    if (ch) {
        size_t off = (size_t)(ch - out.json[0]);
        t_check(!strcmp(object_at(out.json[0], out.len[0], "subject", off, &end), "\"subject\":" TC_NULL),
                "chain element subject in the null form");
        t_check(!strcmp(object_at(out.json[0], out.len[0], "issuer", end, &end), "\"issuer\":" TC_NULL),
                "chain element issuer in the null form");
    }
    /* domains-only has no names: identical in both forms */
    static const char dom[] = "{\"message_type\":\"dns_entries\",\"data\":[]}";
    t_check(out.len[2] == sizeof dom - 1 && !memcmp(out.json[2], dom, sizeof dom - 1), "domains: %.*s",
            (int)out.len[2], out.json[2]);

    /* back to omit: the chain cache must not serve null-form elements */
    t_check(pipeline_set_absent_names(p, false) == 0, "switch back");
    render(p, tc, tl, chain, 1, &out);
    ch = memmem(out.json[0], out.len[0], "\"chain\":[", 9);
    t_check(ch && !strcmp(object_at(out.json[0], out.len[0], "subject", (size_t)(ch - out.json[0]), &end),
                          "\"subject\":" TC_OMIT),
            "chain element back in the omit form");
    pipeline_free(p);
    free(gt);
    free(tc);
    return t_summary();
}
