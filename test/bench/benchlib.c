/* benchlib.c - the C benchmarks' shared pieces (see benchlib.h). */
#include "benchlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/b64.h"

double bench_cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof v[0], cmp_double);
    return v[n / 2];
}

/* The whole file, NUL-terminated, in *len bytes (without the NUL). */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    char *buf = NULL;
    long size;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        perror(path);
        goto err;
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", path);
        goto err;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: short read\n", path);
        goto err;
    }
    buf[size] = 0;
    *len = (size_t)size;
    fclose(f);
    return buf;
err:
    free(buf);
    fclose(f);
    return NULL;
}

int bench_corpus_load(struct bench_corpus *c, const char *testdata)
{
    memset(c, 0, sizeof *c);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/golden/live_ct.json", testdata) >= (int)sizeof path) {
        fprintf(stderr, "%s: path too long\n", testdata);
        return -1;
    }
    size_t len;
    char *buf = read_file(path, &len);
    if (!buf) return -1;
    c->json = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!cJSON_IsArray(c->json)) {
        fprintf(stderr, "%s: not a JSON array\n", path);
        goto err;
    }
    int n = cJSON_GetArraySize(c->json);
    c->entries = calloc(n > 0 ? (size_t)n : 1, sizeof *c->entries);
    if (!c->entries) {
        fprintf(stderr, "%s: out of memory\n", path);
        goto err;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, c->json) {
        struct bench_entry *e = &c->entries[c->n];
        const char *li = cJSON_GetStringValue(cJSON_GetObjectItem(r, "leaf_input"));
        const char *ed = cJSON_GetStringValue(cJSON_GetObjectItem(r, "extra_data"));
        if (!li || !ed || b64_decode_alloc(li, strlen(li), &e->leaf, &e->leaf_len) < 0 ||
            b64_decode_alloc(ed, strlen(ed), &e->extra, &e->extra_len) < 0) {
            fprintf(stderr, "%s: bad record %zu\n", path, c->n);
            free(e->leaf);
            goto err;
        }
        e->index = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "cert_index"));
        e->log_name = cJSON_GetStringValue(cJSON_GetObjectItem(r, "log_name"));
        e->log_url = cJSON_GetStringValue(cJSON_GetObjectItem(r, "log_url"));
        c->n++;
    }
    return 0;
err:
    bench_corpus_free(c);
    return -1;
}

void bench_corpus_free(struct bench_corpus *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].leaf);
        free(c->entries[i].extra);
    }
    free(c->entries);
    cJSON_Delete(c->json);
    memset(c, 0, sizeof *c);
}
