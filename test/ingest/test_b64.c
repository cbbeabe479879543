/* test_b64.c - b64_decode (common/b64.h) gives exactly what
 * mbedtls_base64_decode gives: every base64 string of the test corpus
 * (get-entries fixtures, the golden corpus, every PEM body with and without
 * its line breaks) and 300,000 random strings (valid, padded, truncated,
 * with junk, line breaks and spaces), each with a large, an exact, a short
 * and no buffer. */
#include <dirent.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mbedtls/base64.h>

#include "common/b64.h"
#include "common/file.h"

static int failures, checked, fast_ok;

/* --bench: the corpus strings kept for timing both decoders. */
static struct { char *s; size_t n; } kept[8192];
static size_t n_kept;

static char *read_path(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *t = NULL;
    if (!f) return NULL;
    if (file_read_all(f, &t, n) != 0) t = NULL;
    fclose(f);
    return t;
}

static void compare(const char *s, size_t n, const char *what)
{
    /* Kept for --bench: one-line strings, as CT log answers carry them. */
    if (n_kept < 8192 && strcmp(what, "random") != 0 && !memchr(s, '\n', n) && (kept[n_kept].s = malloc(n + 1))) {
        memcpy(kept[n_kept].s, s, n);
        kept[n_kept++].n = n;
    }
    size_t caps[4] = {n, n / 4 * 3, n / 2, 0};
    for (int k = 0; k < 4; k++) {
        size_t cap = caps[k];
        unsigned char *a = malloc(cap + 1), *b = malloc(cap + 1);
        size_t la = 7, lb = 7;
        int ra = b64_decode(cap ? a : NULL, cap, &la, s, n);
        int rb = mbedtls_base64_decode(cap ? b : NULL, cap, &lb, (const unsigned char *)s, n);
        int bad = ra != rb || ((ra == 0 || ra == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL) && la != lb) ||
                  (ra == 0 && memcmp(a, b, la) != 0);
        if (bad && failures++ < 10)
            fprintf(stderr, "FAIL %s (cap %zu): ours %d/%zu, mbedTLS %d/%zu: %.60s\n", what, cap, ra, la, rb, lb, s);
        if (ra == 0 && k == 0 && la > 0) fast_ok++;
        checked++;
        free(a);
        free(b);
    }
}

static void json_strings(const cJSON *j, const char *what)
{
    for (const cJSON *c = j ? j->child : NULL; c; c = c->next) {
        if (cJSON_IsString(c) && c->string &&
            (!strcmp(c->string, "leaf_input") || !strcmp(c->string, "extra_data")))
            compare(c->valuestring, strlen(c->valuestring), what);
        json_strings(c, what);
    }
}

static void json_file(const char *path)
{
    size_t n;
    char *t = read_path(path, &n);
    if (!t) {
        fprintf(stderr, "FAIL cannot read %s\n", path);
        failures++;
        return;
    }
    cJSON *j = cJSON_ParseWithLength(t, n);
    json_strings(j, path);
    cJSON_Delete(j);
    free(t);
}

static void pem_file(const char *path)
{
    size_t n;
    char *t = read_path(path, &n);
    if (!t) return;
    for (char *p = t; (p = strstr(p, "-----BEGIN ")); ) {
        char *body = strstr(p, "-----\n"), *end;
        if (!body || !(end = strstr(body + 6, "-----END "))) break;
        body += 6;
        compare(body, (size_t)(end - body), path);                  /* with line breaks */
        char *flat = malloc((size_t)(end - body) + 1);
        size_t k = 0;
        for (char *q = body; q < end; q++)
            if (*q != '\n' && *q != '\r') flat[k++] = *q;
        compare(flat, k, path);                                      /* one line */
        free(flat);
        p = end + 9;
    }
    free(t);
}

static unsigned long long rng = 88172645463325252ull;
static unsigned rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 16);
}

int main(int argc, char **argv)
{
    char path[4096];
    if (argc < 2) {
        fprintf(stderr, "usage: test_b64 TESTDATA\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/golden/live_ct.json", argv[1]);
    json_file(path);
    snprintf(path, sizeof path, "%s/rfc6962/get-entries", argv[1]);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".json")) {
            snprintf(path, sizeof path, "%s/rfc6962/get-entries/%s", argv[1], e->d_name);
            json_file(path);
        }
    if (d) closedir(d);
    snprintf(path, sizeof path, "%s/certs", argv[1]);
    d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".pem")) {
            snprintf(path, sizeof path, "%s/certs/%s", argv[1], e->d_name);
            pem_file(path);
        }
    if (d) closedir(d);
    int corpus = checked, corpus_fast = fast_ok;
    if (argc > 2 && strcmp(argv[2], "--bench") == 0) {
        /* CPU time of both decoders over every corpus string, 200 times. */
        static unsigned char out[1 << 16];
        size_t olen, bytes = 0;
        double t[2];
        for (int which = 0; which < 2; which++) {
            struct timespec a, b;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
            for (int r = 0; r < 200; r++)
                for (size_t i = 0; i < n_kept; i++) {
                    if (kept[i].n / 4 * 3 > sizeof out) continue;
                    if (which == 0) b64_decode(out, sizeof out, &olen, kept[i].s, kept[i].n);
                    else mbedtls_base64_decode(out, sizeof out, &olen, (const unsigned char *)kept[i].s, kept[i].n);
                    if (which == 0) bytes += kept[i].n;
                }
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
            t[which] = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        }
        printf("decoding %zu MB of corpus base64: b64_decode %.3f s (%.0f MB/s), mbedtls_base64_decode %.3f s "
               "(%.0f MB/s): %.1fx\n", bytes >> 20, t[0], (double)bytes / 1e6 / t[0], t[1],
               (double)bytes / 1e6 / t[1], t[1] / t[0]);
    }

    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char odd[] = "= \r\n-_!\x80\xff\0.";
    char buf[200];
    for (int i = 0; i < 300000; i++) {
        size_t n = rnd() % 40;
        if (i % 3 == 0) n = n / 4 * 4;                       /* mostly well-formed lengths */
        for (size_t k = 0; k < n; k++) buf[k] = alpha[rnd() % 64];
        switch (rnd() % 6) {
        case 0: break;                                        /* clean */
        case 1: if (n >= 1) buf[n - 1] = '='; break;
        case 2: if (n >= 2) buf[n - 1] = buf[n - 2] = '='; break;
        case 3: if (n >= 3) buf[n - 1] = buf[n - 2] = buf[n - 3] = '='; break;
        default: if (n) buf[rnd() % n] = odd[rnd() % (sizeof odd - 1)]; break;
        }
        compare(buf, n, "random");
    }
    printf("%d corpus comparisons (%d decoded), %d in total; %d failures\n", corpus, corpus_fast, checked, failures);
    for (size_t i = 0; i < n_kept; i++) free(kept[i].s);
    if (corpus < 1000) {
        fprintf(stderr, "FAIL: only %d corpus strings found under %s\n", corpus, argv[1]);
        return 1;
    }
    return failures ? 1 : 0;
}
