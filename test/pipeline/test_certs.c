/* test_certs.c - the robustness corpus (certs/): every certificate in every
 * file renders or is counted as a parse failure, never a crash or a
 * sanitizer report; every message is valid UTF-8 and valid JSON; and every
 * file whose first certificate OpenSSL parses (MANIFEST.tsv column
 * openssl_x509 == ok) renders that certificate. The manifest's reference
 * columns are compared with what we find: format (pem/der), n_certs (the
 * number of certificates), and the categories that describe a rendered
 * field (ip-san, email-san, wildcard, no-san, many-san: see check_categories). Truncated certificates are refused with an error, never
 * rendered from a prefix. Prints the counts.
 * Usage: test_certs <testdata dir> */
#include "common/b64.h"
#include "common/jsonw.h"
#include "ingest/pipeline.h"
#include "test/pipeline/testutil.h"

static int rendered, failed, checked_categories;

static int valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t skip, k = utf8_seq((const uint8_t *)s + i, n - i, &skip);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* Renders one certificate; 0 ok. With leaf != NULL, *leaf is the lite
 * message's data.leaf_cert (the caller frees *root). */
static int render(struct pipeline *p, const char *file, const uint8_t *der, size_t len, const struct ct_span *chain,
                  size_t nchain, cJSON **root, const cJSON **leaf)
{
    struct pipeline_cert in = {
        .der = der, .der_len = len, .timestamp_ms = 1700000000123ULL, .chain = chain, .nchain = nchain,
        .index = 7, .cert_link = "https://ct.example/x", .log_name = "Corpus", .log_url = "https://ct.example/",
        .seen = 1700000000.5,
    };
    struct pipeline_out out;
    char err[256];
    if (pipeline_render_cert(p, &in, &out, err, sizeof err) < 0) {
        printf("  parse failure: %s: %s\n", file, err);
        failed++;
        return -1;
    }
    rendered++;
    for (int f = 0; f < 3; f++) {
        t_check(valid_utf8(out.json[f], out.len[f]), "%s: format %d is valid UTF-8", file, f);
        cJSON *j = cJSON_ParseWithLength(out.json[f], out.len[f]);
        t_check(j != NULL, "%s: format %d is valid JSON", file, f);
        if (f == 1 && root && j) {
            *root = j;
            *leaf = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"), "leaf_cert");
            t_check(cJSON_IsObject(*leaf), "%s: lite message has data.leaf_cert", file);
            continue;
        }
        cJSON_Delete(j);
    }
    return 0;
}

static bool has_category(const char *cats, const char *cat)
{
    size_t n = strlen(cat);
    for (const char *c = cats; (c = strstr(c, cat)) != NULL; c += n)
        if ((c == cats || c[-1] == ',') && (c[n] == ',' || c[n] == '\0')) return true;
    return false;
}

/* Counts the "<kind>:" entries of a subjectAltName rendering (OpenSSL style,
 * "DNS:a, IP Address:1.2.3.4, email:x@y"). */
static int san_count(const char *san, const char *kind)
{
    int n = 0;
    size_t k = strlen(kind);
    for (const char *c = san; c && *c;) {
        if (!strncmp(c, kind, k)) n++;
        c = strstr(c, ", ");
        if (c) c += 2;
    }
    return n;
}

/* The manifest's categories (which describe the file's first certificate)
 * against its rendered fields. One direction only: a category the manifest
 * sets must show in the message. The manifest leaves some out where they
 * apply (it tags what made a file interesting, e.g. not every wildcard), and
 * two tags are not message fields: uri-san (subjectAltName lists DNS, email
 * and IP entries only, docs/wire-format.md) and v1 (the version is not
 * rendered). */
static void check_categories(const char *file, const char *cats, const cJSON *leaf)
{
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(leaf, "extensions");
    const cJSON *sanj = cJSON_GetObjectItemCaseSensitive(ext, "subjectAltName");
    const char *san = cJSON_IsString(sanj) ? sanj->valuestring : NULL;
    const cJSON *doms = cJSON_GetObjectItemCaseSensitive(leaf, "all_domains"), *d;
    bool wildcard = false;
    cJSON_ArrayForEach(d, doms)
        if (cJSON_IsString(d) && !strncmp(d->valuestring, "*.", 2)) wildcard = true;
    struct { const char *cat; bool have; } want[] = {
        { "ip-san", san && san_count(san, "IP Address:") > 0 },
        { "email-san", san && san_count(san, "email:") > 0 },
        { "no-san", san == NULL },
        { "many-san", san && san_count(san, "") >= 10 },
        { "wildcard", wildcard },
    };
    /* null_chars.pem's subjectAltName is not valid GeneralNames (OpenSSL
     * cannot decode it either); its IP and email entries are not rendered. */
    bool bad_san = !strcmp(file, "gct__python_ct_crypto_testdata_null_chars.pem");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!has_category(cats, want[i].cat) || (bad_san && strstr(want[i].cat, "-san"))) continue;
        checked_categories++;
        t_check(want[i].have, "%s: category %s in MANIFEST.tsv, not in the rendered certificate "
                "(subjectAltName %.200s)", file, want[i].cat, san ? san : "(none)");
    }
}

/* Certificates of a file: PEM blocks (text around them ignored), else the
 * whole file as DER. Returns how many were found, storing up to max. */
static size_t extract(const uint8_t *data, size_t len, uint8_t **ders, size_t *lens, size_t max)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    const char *s = (const char *)data, *stop = s + len;
    size_t n = 0;
    if (!memmem(s, len, begin, sizeof begin - 1)) {
        ders[0] = malloc(len ? len : 1);
        memcpy(ders[0], data, len);
        lens[0] = len;
        return 1;
    }
    while (n < max) {
        const char *b = memmem(s, (size_t)(stop - s), begin, sizeof begin - 1);
        if (!b) break;
        b += sizeof begin - 1;
        const char *e = memmem(b, (size_t)(stop - b), end, sizeof end - 1);
        if (!e) break;
        char *txt = malloc((size_t)(e - b) + 1);
        size_t t = 0;
        for (const char *q = b; q < e; q++)
            if (*q != '\n' && *q != '\r' && *q != ' ' && *q != '\t') txt[t++] = *q;
        if (b64_decode_alloc(txt, t, &ders[n], &lens[n]) == 0) n++;
        free(txt);
        s = e + sizeof end - 1;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: %s TESTDATA\n", argv[0]); return 2; }
    char path[4096];
    snprintf(path, sizeof path, "%s/certs/MANIFEST.tsv", argv[1]);
    size_t mlen;
    char *manifest = (char *)t_read(path, &mlen);
    t_check(manifest != NULL, "MANIFEST.tsv readable");
    if (!manifest) return t_summary();
    struct pipeline *p = pipeline_new();
    int files = 0, openssl_ok = 0, openssl_ok_rendered = 0, nocert = 0, categorised = 0, truncated = 0;
    char *save = NULL;
    for (char *line = strtok_r(manifest, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *col[10] = {0};
        int nc = 0;
        for (char *c = line, *tab; c && nc < 10; c = tab ? tab + 1 : NULL) {
            tab = strchr(c, '\t');
            if (tab) *tab = 0;
            col[nc++] = c;
        }
        if (nc < 9 || !strcmp(col[0], "file")) continue;
        snprintf(path, sizeof path, "%s/certs/%s", argv[1], col[0]);
        size_t len;
        uint8_t *data = t_read(path, &len);
        t_check(data != NULL, "%s readable", col[0]);
        if (!data) continue;
        files++;
        uint8_t *ders[64];
        size_t lens[64];
        size_t n = extract(data, len, ders, lens, 64);
        if (!n) nocert++;
        /* reference columns: format and number of certificates */
        bool pem = memmem(data, len, "-----BEGIN CERTIFICATE-----", 27) != NULL;
        if (!strcmp(col[5], "pem") || !strcmp(col[5], "der"))
            t_check(!strcmp(col[5], pem ? "pem" : "der"), "%s: format %s in MANIFEST.tsv, found %s", col[0], col[5],
                    pem ? "pem" : "der");
        t_check(n == strtoul(col[6], NULL, 10), "%s: n_certs %s in MANIFEST.tsv, found %zu", col[0], col[6], n);
        bool ossl = !strcmp(col[7], "ok");
        openssl_ok += ossl;
        int first_ok = -1;
        for (size_t i = 0; i < n; i++) {
            cJSON *root = NULL;
            const cJSON *leaf = NULL;
            int rc = render(p, col[0], ders[i], lens[i], NULL, 0, i == 0 ? &root : NULL, &leaf);
            if (i == 0) first_ok = rc;
            if (i == 0 && rc == 0 && leaf) {
                check_categories(col[0], col[4], leaf);
                categorised++;
            }
            cJSON_Delete(root);
        }
        /* The same file as a leaf with the rest as its chain (chain cache path). */
        if (n > 1) {
            struct ct_span chain[63];
            for (size_t i = 1; i < n; i++) chain[i - 1] = (struct ct_span){ders[i], lens[i]};
            render(p, col[0], ders[0], lens[0], chain, n - 1, NULL, NULL);
        }
        if (ossl) {
            t_check(first_ok == 0, "%s: OpenSSL parses it, so must we", col[0]);
            openssl_ok_rendered += first_ok == 0;
        }
        for (size_t i = 0; i < n; i++) {
            /* Truncated certificates: never over-read (ASan), and refused with
             * an error: a DER prefix is not a certificate. */
            for (size_t cut = 0; cut < lens[i]; cut += lens[i] / 7 + 1) {
                struct pipeline_cert in = {.der = ders[i], .der_len = cut, .omit_chain = true};
                struct pipeline_out out;
                char err[256] = "";
                int rc = pipeline_render_cert(p, &in, &out, err, sizeof err);
                truncated++;
                t_check(rc < 0 && err[0], "%s: certificate %zu cut to %zu of %zu bytes: rc %d (%s)", col[0], i, cut,
                        lens[i], rc, err);
            }
            free(ders[i]);
        }
        free(data);
    }
    free(manifest);
    pipeline_free(p);
    printf("%d files: %d certificates rendered, %d parse failures, %d files without a certificate; "
           "OpenSSL-parseable first certificates rendered: %d of %d; %d categories checked on %d; "
           "%d truncated renders refused\n",
           files, rendered, failed, nocert, openssl_ok_rendered, openssl_ok, checked_categories, categorised,
           truncated);
    t_check(categorised >= 540, "categories checked on %d files", categorised);
    t_check(files >= 550, "all corpus files seen (%d)", files);
    return t_summary();
}
