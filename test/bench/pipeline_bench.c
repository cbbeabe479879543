/* pipeline_bench.c - throughput of the certificate pipeline on one core.
 *
 * Replays the golden live CT entries (decoded from base64 once, up front)
 * through decode + X.509 walk + SHA-1/SHA-256 + rendering of all three
 * messages, for several runs, and prints entries/s of CPU time per run
 * (CLOCK_PROCESS_CPUTIME_ID), their median, and peak RSS. The chain cache is
 * warm after the first few entries, as it is in a running server.
 *
 * usage: pipeline_bench TESTDATA [runs (default 7)] [entries per run (default 200000)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/b64.h"
#include "ingest/pipeline.h"

struct ent { uint8_t *leaf, *extra; size_t llen, elen; uint64_t index; const char *name, *url; };

static double cpu_seconds(void)
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

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TESTDATA [runs] [entries per run]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    long per_run = argc > 3 ? atol(argv[3]) : 200000;
    if (runs < 1 || runs > 101 || per_run < 1) return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/live_ct.json", argv[1]);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 2; }
    static char buf[8 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    cJSON *root = cJSON_ParseWithLength(buf, n);
    if (!cJSON_IsArray(root)) { fprintf(stderr, "bad %s\n", path); return 2; }
    int nent = cJSON_GetArraySize(root);
    struct ent *ents = calloc((size_t)nent, sizeof *ents);
    if (!ents) return 2;
    for (int i = 0; i < nent; i++) {
        const cJSON *r = cJSON_GetArrayItem(root, i);
        const char *li = cJSON_GetStringValue(cJSON_GetObjectItem(r, "leaf_input"));
        const char *ed = cJSON_GetStringValue(cJSON_GetObjectItem(r, "extra_data"));
        if (!li || !ed || b64_decode_alloc(li, strlen(li), &ents[i].leaf, &ents[i].llen) < 0 ||
            b64_decode_alloc(ed, strlen(ed), &ents[i].extra, &ents[i].elen) < 0) {
            fprintf(stderr, "bad record %d\n", i);
            return 2;
        }
        ents[i].index = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "cert_index"));
        ents[i].name = cJSON_GetStringValue(cJSON_GetObjectItem(r, "log_name"));
        ents[i].url = cJSON_GetStringValue(cJSON_GetObjectItem(r, "log_url"));
    }
    struct pipeline *p = pipeline_new();
    if (!p) return 2;
    double rate[101];
    size_t bytes = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = cpu_seconds();
        for (long k = 0; k < per_run; k++) {
            const struct ent *e = &ents[k % nent];
            struct pipeline_out out;
            char err[256];
            if (pipeline_render_rfc6962(p, e->leaf, e->llen, e->extra, e->elen, e->index, e->name, e->url,
                                        1700000000.0 + (double)k / 1000.0, &out, err, sizeof err) < 0) {
                fprintf(stderr, "render failed: %s\n", err);
                return 1;
            }
            bytes += out.len[0] + out.len[1] + out.len[2];
        }
        double dt = cpu_seconds() - t0;
        rate[r] = (double)per_run / dt;
        printf("run %d: %ld entries in %.3f s CPU = %.0f entries/s (%.2f us/entry)\n", r + 1, per_run, dt, rate[r],
               dt / (double)per_run * 1e6);
    }
    qsort(rate, (size_t)runs, sizeof rate[0], cmp_double);
    uint64_t hits, misses;
    pipeline_cache_stats(p, &hits, &misses);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("median: %.0f entries/s per core (%.2f us/entry); min %.0f, max %.0f\n", rate[runs / 2],
           1e6 / rate[runs / 2], rate[0], rate[runs - 1]);
    printf("chain cache: %llu hits, %llu misses; output %.1f MB; peak RSS %ld KB\n", (unsigned long long)hits,
           (unsigned long long)misses, (double)bytes / 1e6, ru.ru_maxrss);
    pipeline_free(p);
    for (int i = 0; i < nent; i++) { free(ents[i].leaf); free(ents[i].extra); }
    free(ents);
    cJSON_Delete(root);
    return 0;
}
