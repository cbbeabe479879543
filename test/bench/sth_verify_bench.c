/* sth_verify_bench.c - CPU cost of verifying one RFC 6962 tree head
 * signature: ctapi_verify_tree_head (libcrypto, keys parsed once) against
 * mbedTLS 2.28 as the ingest process did it before (key parsed and
 * signature verified with mbedtls_pk_*), on real signed STHs from
 * test/data, in the same run. Not a test: prints microseconds per verify.
 *
 *   build-rel/test/ingest/sth_verify_bench test/data [iterations]
 */
#include <mbedtls/base64.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/ctapi.h"

static double cpu_secs(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* The code before: mbedTLS parses the key and verifies, every time. */
static int verify_mbedtls(const uint8_t *key, size_t kl, const struct ctapi_sth *s)
{
    uint8_t tbs[50], hash[32];
    mbedtls_pk_context pk;
    tbs[0] = 0;
    tbs[1] = 1;
    put_u64(tbs + 2, s->timestamp);
    put_u64(tbs + 10, s->tree_size);
    memcpy(tbs + 18, s->root_hash, 32);
    mbedtls_sha256_ret(tbs, sizeof tbs, hash, 0);
    mbedtls_pk_init(&pk);
    int rc = mbedtls_pk_parse_public_key(&pk, key, kl) != 0 ||
             mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, hash, sizeof hash, s->signature + 4, s->signature_len - 4) != 0;
    mbedtls_pk_free(&pk);
    return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
    static const struct { const char *file, *key; } sths[] = {
        {"rfc6962/get-sth/google-pilot_344104340.json",
         "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfahLEimAoz2t01p3uMziiLOl/fHTDM0YDOhBRuiBARsV4UvxG2LdNgoIGLrtCzWE0J5APC2em4JlvR8EEEFMoA=="},
        {"rfc6962/get-sth/google-icarus_129596132.json",
         "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAETtK8v7MICve56qTHHDhhBOuV4IlUaESxZryCfk9QbG9co/CqPvTsgPDbCpp6oFtyAHwlDhnvr7JijXRD9Cb2FA=="},
        {"rfc6962/get-sth/digicert-yeti2018_90785920.json",
         "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAESYlKFDLLFmA9JScaiaNnqlU8oWDytxIYMfswHy9Esg0aiX+WnP/yj4O0ViEHtLwbmOQeSWBGkIu9YK9CLeer+g=="},
    };
    enum { N_STH = sizeof sths / sizeof sths[0] };
    if (argc < 2) {
        fprintf(stderr, "usage: %s TESTDATA_DIR [iterations]\n", argv[0]);
        return 2;
    }
    int iters = argc > 2 ? atoi(argv[2]) : 300;
    uint8_t key[N_STH][200];
    size_t kl[N_STH];
    struct ctapi_sth s[N_STH];
    char err[256];
    for (int i = 0; i < N_STH; i++) {
        char path[1024], buf[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], sths[i].file);
        FILE *f = fopen(path, "rb");
        if (!f) {
            perror(path);
            return 1;
        }
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (mbedtls_base64_decode(key[i], sizeof key[i], &kl[i], (const unsigned char *)sths[i].key,
                                  strlen(sths[i].key)) != 0 ||
            ctapi_sth_parse(buf, n, &s[i], err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", path, err);
            return 1;
        }
    }
    for (int round = 0; round < 3; round++) {
        double t0 = cpu_secs();
        for (int k = 0; k < iters; k++)
            for (int i = 0; i < N_STH; i++)
                if (verify_mbedtls(key[i], kl[i], &s[i]) != 0) {
                    fprintf(stderr, "mbedTLS: %s does not verify\n", sths[i].file);
                    return 1;
                }
        double t1 = cpu_secs();
        for (int k = 0; k < iters; k++)
            for (int i = 0; i < N_STH; i++)
                if (ctapi_verify_tree_head(key[i], kl[i], s[i].timestamp, s[i].tree_size, s[i].root_hash,
                                           s[i].signature, s[i].signature_len, err, sizeof err) != 0) {
                    fprintf(stderr, "ctapi: %s: %s\n", sths[i].file, err);
                    return 1;
                }
        double t2 = cpu_secs();
        double a = (t1 - t0) / (iters * N_STH) * 1e6, b = (t2 - t1) / (iters * N_STH) * 1e6;
        printf("round %d: ECDSA P-256 tree head verify: mbedTLS (before) %.1f us, ctapi_verify_tree_head %.1f us "
               "(%.1fx less CPU)\n", round + 1, a, b, a / b);
    }
    return 0;
}
