/* record_bench.c - bytes per ring record, whole (each format stored on its
 * own, as before the split layout) and split (lite as pieces of full, chain
 * elements in the chain table), on the golden corpus; and the history a
 * ring holds at a rate. Records carry no compressed frames (the fanout
 * workers make them).
 *
 * Renders golden/live_ct.json round robin (as the server's pipeline does),
 * publishes each entry into two rings (hints dropped for "whole"), and
 * prints the mean record size and the publish CPU per record of both.
 *
 * usage: record_bench TESTDATA [entries (default 20000)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/b64.h"
#include "ingest/pipeline.h"
#include "shm/chaintab.h"
#include "shm/ring.h"

struct ent { uint8_t *leaf, *extra; size_t llen, elen; uint64_t index; const char *name, *url; };

static double cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TESTDATA [entries]\n", argv[0]);
        return 2;
    }
    long total = argc > 2 ? atol(argv[2]) : 20000;
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/live_ct.json", argv[1]);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 2; }
    static char buf[8 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    cJSON *root = cJSON_ParseWithLength(buf, n);
    if (!cJSON_IsArray(root)) return 2;
    int nent = cJSON_GetArraySize(root);
    struct ent *ents = calloc((size_t)nent, sizeof *ents);
    if (!ents) return 2;
    for (int i = 0; i < nent; i++) {
        const cJSON *r = cJSON_GetArrayItem(root, i);
        const char *li = cJSON_GetStringValue(cJSON_GetObjectItem(r, "leaf_input"));
        const char *ed = cJSON_GetStringValue(cJSON_GetObjectItem(r, "extra_data"));
        if (!li || !ed || b64_decode_alloc(li, strlen(li), &ents[i].leaf, &ents[i].llen) < 0 ||
            b64_decode_alloc(ed, strlen(ed), &ents[i].extra, &ents[i].elen) < 0)
            return 2;
        ents[i].index = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "cert_index"));
        ents[i].name = cJSON_GetStringValue(cJSON_GetObjectItem(r, "log_name"));
        ents[i].url = cJSON_GetStringValue(cJSON_GetObjectItem(r, "log_url"));
    }
    printf("golden corpus: %d entries, %ld published round robin per run\n", nent, total);
    {
        struct pipeline *p = pipeline_new();
        if (!p) return 2;
        struct ring *rw = ring_create((size_t)64 << 20), *rs = ring_create((size_t)64 << 20);
        if (!rw || !rs) return 2;
        double json[3] = {0}, whole = 0, split = 0, cpu_w = 0, cpu_s = 0;
        for (long k = 0; k < total; k++) {
            const struct ent *e = &ents[k % nent];
            struct pipeline_out out;
            char err[256];
            if (pipeline_render_rfc6962(p, e->leaf, e->llen, e->extra, e->elen, e->index + (uint64_t)k, e->name,
                                        e->url, 1700000000.0 + (double)k / 1000.0, &out, err, sizeof err) < 0)
                return 1;
            struct ring_message m;
            pipeline_message(&out, e->index, 0, false, &m);
            for (int i = 0; i < 3; i++) json[i] += (double)m.json_len[i];
            const struct ring_record *rec;
            double t0 = cpu_seconds();
            uint64_t a = ring_publish(rs, 0, &m);
            double t1 = cpu_seconds();
            m.lite = m.shared = NULL;
            m.n_lite = m.n_shared = 0;
            uint64_t b = ring_publish(rw, 0, &m);
            double t2 = cpu_seconds();
            cpu_s += t1 - t0;
            cpu_w += t2 - t1;
            if (!a || !b || ring_peek(rs, a, &rec) != RING_OK) return 1;
            split += rec->total_len;
            if (ring_peek(rw, b, &rec) != RING_OK) return 1;
            whole += rec->total_len;
        }
        double N = (double)total;
        printf("\n  JSON per message: full %.0f, lite %.0f, domains %.0f bytes", json[0] / N, json[1] / N, json[2] / N);
        printf("\n  record: whole %.0f bytes, split %.0f bytes (%.2fx); chain table %u entries (%u KiB)\n", whole / N,
               split / N, whole / split, chaintab_used(ring_chaintab(rs)),
               chaintab_used(ring_chaintab(rs)) * chaintab_entry_bytes(ring_chaintab(rs)) / 1024);
        printf("  publish CPU per record: whole %.2f us, split %.2f us\n", cpu_w / N * 1e6, cpu_s / N * 1e6);
        for (int mib = 8; mib <= 64; mib *= 2) {
            double bound = (double)mib * 1048576.0 * 3 / 4;   /* slow_client_bytes default */
            printf("  ring %2d MiB: slow bound %.1f MiB holds whole %4.1f s / split %4.1f s at 500/s, split %4.1f s at 300/s\n",
                   mib, bound / 1048576.0, bound / (whole / N) / 500, bound / (split / N) / 500,
                   bound / (split / N) / 300);
        }
        ring_destroy(rw);
        ring_destroy(rs);
        pipeline_free(p);
    }
    for (int i = 0; i < nent; i++) { free(ents[i].leaf); free(ents[i].extra); }
    free(ents);
    cJSON_Delete(root);
    return 0;
}
