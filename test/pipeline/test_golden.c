/* test_golden.c - every record of golden/live_ct.json and golden/synthetic.json
 * renders to exactly its expected full, lite and domains-only bytes (seen
 * pinned to 1700000000). Usage: test_golden <testdata dir> */
#include <math.h>

#include "common/b64.h"
#include "ingest/pipeline.h"
#include "test/pipeline/testutil.h"

static const char *keys[3] = {"expected_full", "expected_lite", "expected_domains_only"};

static bool fixed_seen;

static void compare(const char *name, const struct pipeline_out *out, const cJSON *rec)
{
    static char buf[1 << 20];
    for (int f = 0; f < 3; f++) {
        const char *want = t_str(rec, keys[f]);
        /* Benchmark mode: the same bytes, seen printed with 6 decimals. */
        const char *at = want && fixed_seen ? strstr(want, "\"seen\":1700000000.0,") : NULL;
        if (at && strlen(want) + 8 < sizeof buf) {
            snprintf(buf, sizeof buf, "%.*s\"seen\":1700000000.000000,%s", (int)(at - want), want, at + 20);
            want = buf;
        }
        int same = want && out->len[f] == strlen(want) && memcmp(out->json[f], want, out->len[f]) == 0;
        t_check(same, "%s: %s%s", name, keys[f], fixed_seen ? " (fixed seen)" : "");
        if (!same && want) t_diff(keys[f], out->json[f], out->len[f], want, strlen(want));
        const char *seen = fixed_seen ? "1700000000.000000," : "1700000000.0,";
        if (f < 2)
            t_check(out->seen_off[f] > 0 && strncmp(out->json[f] + out->seen_off[f], seen, strlen(seen)) == 0,
                    "%s: seen_off[%d] points at seen", name, f);
        else
            t_check(out->seen_off[f] == -1, "%s: no seen in domains-only", name);
    }
}

static void live(struct pipeline *p, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/live_ct.json", dir);
    cJSON *root = t_json(path);
    const cJSON *rec;
    int n = 0;
    cJSON_ArrayForEach(rec, root) {
        const char *name = t_str(rec, "name");
        const char *li = t_str(rec, "leaf_input"), *ed = t_str(rec, "extra_data");
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(rec, "cert_index");
        uint8_t *leaf = NULL, *extra = NULL;
        size_t llen = 0, elen = 0;
        t_check(li && ed && cJSON_IsNumber(idx), "%s: record fields", name);
        if (!li || !ed || !cJSON_IsNumber(idx)) continue;
        t_check(b64_decode_alloc(li, strlen(li), &leaf, &llen) == 0 &&
                b64_decode_alloc(ed, strlen(ed), &extra, &elen) == 0, "%s: base64", name);
        struct pipeline_out out;
        char err[256];
        int rc = pipeline_render_rfc6962(p, leaf, llen, extra, elen, (uint64_t)idx->valuedouble,
                                         t_str(rec, "log_name"), t_str(rec, "log_url"), 1700000000.0,
                                         &out, err, sizeof err);
        t_check(rc == 0, "%s: render (%s)", name, rc ? err : "");
        if (rc == 0) compare(name, &out, rec);
        free(leaf);
        free(extra);
        n++;
    }
    t_check(n >= 28, "live_ct.json has %d records", n);
    cJSON_Delete(root);
}

static void synthetic(struct pipeline *p, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/synthetic.json", dir);
    cJSON *root = t_json(path);
    const cJSON *rec;
    int n = 0;
    cJSON_ArrayForEach(rec, root) {
        const char *name = t_str(rec, "name"), *d = t_str(rec, "der_b64");
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(rec, "submission_timestamp");
        uint8_t *der = NULL;
        size_t dlen = 0;
        if (!d || !cJSON_IsNumber(ts) || b64_decode_alloc(d, strlen(d), &der, &dlen) < 0) {
            t_check(0, "%s: record fields", name);
            continue;
        }
        struct pipeline_cert in = {
            .der = der, .der_len = dlen,
            .timestamp_ms = (uint64_t)floor(ts->valuedouble * 1000.0 + 0.5),
            .omit_chain = true,
            .index = 42, .cert_link = "https://test.example/entry/42",
            .log_name = "Snapshot Test Log", .log_url = "https://test.example/",
            .seen = 1700000000.0,
        };
        struct pipeline_out out;
        char err[256];
        int rc = pipeline_render_cert(p, &in, &out, err, sizeof err);
        t_check(rc == 0, "%s: render (%s)", name, rc ? err : "");
        if (rc == 0) compare(name, &out, rec);
        free(der);
        n++;
    }
    t_check(n >= 11, "synthetic.json has %d records", n);
    cJSON_Delete(root);
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: %s TESTDATA\n", argv[0]); return 2; }
    struct pipeline *p = pipeline_new();
    if (!p) return 2;
    /* Twice: the second pass renders chains from the warm cache. */
    for (int pass = 0; pass < 2; pass++) {
        live(p, argv[1]);
        synthetic(p, argv[1]);
    }
    fixed_seen = true;
    pipeline_set_fixed_seen(p, true);
    live(p, argv[1]);
    synthetic(p, argv[1]);
    pipeline_free(p);
    return t_summary();
}
